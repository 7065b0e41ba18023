//! The MSE handshake through its public API only, the way the peer engine
//! will use it: our initiator and our receiver on two ends of a loopback
//! TCP connection, each in its own thread, writing in small pieces so the
//! other side reads the handshake split at arbitrary points.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bt::mse::{
    classify_first_bytes, Established, FirstBytes, Handshake, Method, MseError, Policy, Progress,
};
use rand::{Rng, RngCore, SeedableRng};

const TORRENT: [u8; 20] = [0x5a; 20];
const LIMIT: Duration = Duration::from_secs(30);

fn bt_handshake() -> Vec<u8> {
    let mut v = b"\x13BitTorrent protocol".to_vec();
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&TORRENT);
    v.extend_from_slice(b"-BT0001-loopbacktest");
    v
}

/// Writes `bytes` in random pieces of 1..=97 bytes. A peer that gave up
/// (it found no common method and closed) may be gone before we finish:
/// the write then fails with a broken pipe or a reset, and the reader
/// below sees the end of stream.
fn write_in_pieces(sock: &mut TcpStream, bytes: &[u8], rng: &mut impl RngCore) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rng.gen_range(1..=97).min(rest.len());
        match sock.write_all(&rest[..n]) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return
            }
            Err(e) => panic!("write: {e}"),
        }
        rest = &rest[n..];
    }
}

fn read_some(sock: &mut TcpStream, deadline: Instant) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "timed out reading");
        match sock.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return buf;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A peer that gives up with our bytes unread resets the
            // connection rather than closing it: the same end of stream.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Vec::new(),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Runs a handshake to its end; `first` are bytes already read.
fn drive(
    hs: &mut Handshake,
    sock: &mut TcpStream,
    first: Vec<u8>,
    rng: &mut impl RngCore,
) -> Result<Established, MseError> {
    let deadline = Instant::now() + LIMIT;
    write_in_pieces(sock, &hs.take_output(), rng);
    let mut input = first;
    for _ in 0..100_000 {
        if !input.is_empty() {
            let progress = hs.receive(&input);
            write_in_pieces(sock, &hs.take_output(), rng);
            if let Progress::Done(est) = progress? {
                return Ok(est);
            }
        }
        input = read_some(sock, deadline);
        if input.is_empty() {
            // The peer gave up; report what our side knows.
            return Err(MseError::Finished);
        }
    }
    panic!("handshake did not end");
}

/// Reads `n` bytes of the stream after the handshake, decrypted.
fn read_stream(sock: &mut TcpStream, est: &mut Established, n: usize) -> Vec<u8> {
    let deadline = Instant::now() + LIMIT;
    let mut got = std::mem::take(&mut est.received);
    while got.len() < n {
        let mut more = read_some(sock, deadline);
        assert!(!more.is_empty(), "peer closed early");
        est.cipher.decrypt(&mut more);
        got.extend(more);
    }
    got
}

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.set_nodelay(true).unwrap();
    }
    (a, b)
}

/// A full exchange over TCP: returns the methods each side ended with.
fn exchange(initiator: Policy, receiver: Policy, seed: u64) -> Result<Method, MseError> {
    let (mut a_sock, mut b_sock) = pair();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let data_b = data.clone();
    let b = std::thread::spawn(move || -> Result<Method, MseError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1);
        let deadline = Instant::now() + LIMIT;
        let mut first = Vec::new();
        while classify_first_bytes(&first) == FirstBytes::NeedMore {
            let more = read_some(&mut b_sock, deadline);
            assert!(!more.is_empty());
            first.extend(more);
        }
        assert_eq!(classify_first_bytes(&first), FirstBytes::Encrypted);
        let mut hs = Handshake::receiver(receiver, &[TORRENT], &mut rng);
        let result = drive(&mut hs, &mut b_sock, first, &mut rng);
        let mut est = match result {
            Ok(est) => est,
            Err(e) => {
                drop(b_sock);
                return Err(e);
            }
        };
        // IA (the peer's BitTorrent handshake), then the peer's data.
        let hs_bytes = bt_handshake();
        let got = read_stream(&mut b_sock, &mut est, hs_bytes.len() + data_b.len());
        assert_eq!(&got[..hs_bytes.len()], &hs_bytes[..]);
        assert!(
            got[hs_bytes.len()..] == data_b[..],
            "receiver got corrupted data"
        );
        let mut reply = b"receiver done".to_vec();
        est.cipher.encrypt(&mut reply);
        b_sock.write_all(&reply).unwrap();
        Ok(est.method)
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut hs = Handshake::initiator(initiator, TORRENT, bt_handshake(), &mut rng).unwrap();
    let outcome = drive(&mut hs, &mut a_sock, Vec::new(), &mut rng);
    match outcome {
        Ok(mut est) => {
            let mut wire = data.clone();
            est.cipher.encrypt(&mut wire);
            assert_eq!(wire == data, est.method == Method::Plaintext);
            write_in_pieces(&mut a_sock, &wire, &mut rng);
            let reply = read_stream(&mut a_sock, &mut est, 13);
            assert_eq!(reply, b"receiver done");
            let theirs = b.join().expect("receiver thread");
            assert_eq!(theirs, Ok(est.method));
            theirs
        }
        Err(_) => b.join().expect("receiver thread"),
    }
}

#[test]
fn loopback_handshakes_for_each_policy_pair() {
    let cases = [
        (Policy::ALLOW, Policy::ALLOW, Ok(Method::Plaintext)),
        (Policy::ALLOW, Policy::REQUIRE_RC4, Ok(Method::Rc4)),
        (Policy::REQUIRE_RC4, Policy::ALLOW, Ok(Method::Rc4)),
        (Policy::PREFER_RC4, Policy::PREFER_RC4, Ok(Method::Rc4)),
        (Policy::REQUIRE_RC4, Policy::REQUIRE_RC4, Ok(Method::Rc4)),
        (Policy::PLAINTEXT_ONLY, Policy::ALLOW, Ok(Method::Plaintext)),
        (
            Policy::PLAINTEXT_ONLY,
            Policy::REQUIRE_RC4,
            Err(MseError::NoCommonMethod {
                provided: 1,
                allowed: 2,
            }),
        ),
    ];
    for (seed, (initiator, receiver, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            exchange(initiator, receiver, seed as u64),
            want,
            "{initiator:?} -> {receiver:?}"
        );
    }
}

#[test]
fn a_plaintext_handshake_is_told_apart() {
    let hs = bt_handshake();
    assert_eq!(classify_first_bytes(&hs[..1]), FirstBytes::NeedMore);
    assert_eq!(classify_first_bytes(&hs), FirstBytes::PlainBitTorrent);
}

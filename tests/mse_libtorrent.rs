//! The MSE handshake (src/mse) against real libtorrent (python3-libtorrent)
//! with encryption forced, in both roles: our initiator connects to a
//! libtorrent seeder, and a libtorrent leecher connects to our receiver.
//! The BitTorrent messages after the handshake travel through the
//! negotiated stream, so both keystreams are checked end to end.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use bt::mse::{
    classify_first_bytes, Established, FirstBytes, Handshake, Method, Policy, Progress,
    StreamCipher,
};
use common::peers::{make_torrent, single_file, temp, LtPeer};
use rand::SeedableRng;

/// Every wait in these tests ends by this.
const LIMIT: Duration = Duration::from_secs(60);

struct Lt {
    _peer: LtPeer,
    port: u16,
    info_hash: [u8; 20],
}

/// A libtorrent peer (tests/scripts/lt_peer.py, libtorrent's default
/// settings) with encryption forced in both directions, `level` rc4 or
/// both; its data in `dir/MODE-data`; it dials 127.0.0.1:`peer` if given.
fn start_libtorrent(dir: &Path, mode: &str, torrent: &Path, level: &str, peer: Option<u16>) -> Lt {
    let data = dir.join(format!("{mode}-data"));
    std::fs::create_dir_all(&data).unwrap();
    let peers: Vec<String> = peer.map(|p| format!("127.0.0.1:{p}")).into_iter().collect();
    // libtorrent's defaults but for the forced encryption.
    let env = [("LT_ENCRYPTION", level), ("LT_DEFAULTS", "1")];
    let lt = LtPeer::start_with_env(mode, torrent, &data, &peers, &env);
    let meta = bt::metainfo::Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    Lt {
        port: lt.port,
        info_hash: meta.info_hash,
        _peer: lt,
    }
}

fn bt_handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut v = b"\x13BitTorrent protocol".to_vec();
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(info_hash);
    v.extend_from_slice(b"-BT0001-mse-interop!");
    v
}

/// Reads one chunk (up to 64 KiB) or panics at the deadline; an empty
/// result means the peer closed.
fn read_some(sock: &mut TcpStream, deadline: Instant, what: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
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
            Err(e) => panic!("reading {what}: {e}"),
        }
    }
}

/// Runs `hs` over `sock` until it completes; `first` are bytes already
/// read (a receiver's classified start).
fn drive(hs: &mut Handshake, sock: &mut TcpStream, first: &[u8]) -> Established {
    let deadline = Instant::now() + LIMIT;
    sock.write_all(&hs.take_output()).unwrap();
    let mut input = first.to_vec();
    for _ in 0..100_000 {
        if !input.is_empty() {
            let progress = hs.receive(&input).expect("MSE handshake with libtorrent");
            sock.write_all(&hs.take_output()).unwrap();
            if let Progress::Done(est) = progress {
                return est;
            }
        }
        input = read_some(sock, deadline, "the MSE handshake");
        assert!(
            !input.is_empty(),
            "libtorrent closed during the MSE handshake"
        );
    }
    panic!("the MSE handshake did not end");
}

/// The BitTorrent stream after the handshake: decrypted input buffered.
struct BtStream {
    sock: TcpStream,
    cipher: StreamCipher,
    buffered: Vec<u8>,
}

impl BtStream {
    fn new(sock: TcpStream, est: Established) -> BtStream {
        BtStream {
            sock,
            cipher: est.cipher,
            buffered: est.received,
        }
    }

    fn read_exact(&mut self, n: usize, what: &str) -> Vec<u8> {
        let deadline = Instant::now() + LIMIT;
        while self.buffered.len() < n {
            let mut more = read_some(&mut self.sock, deadline, what);
            assert!(
                !more.is_empty(),
                "libtorrent closed while we waited for {what}"
            );
            self.cipher.decrypt(&mut more);
            self.buffered.extend(more);
        }
        self.buffered.drain(..n).collect()
    }

    /// The next message as (id, payload); keep-alives are skipped.
    fn read_message(&mut self, what: &str) -> (u8, Vec<u8>) {
        for _ in 0..1000 {
            let len = u32::from_be_bytes(self.read_exact(4, what).try_into().unwrap()) as usize;
            assert!(
                len <= 1 << 20,
                "message of {len} bytes while waiting for {what}"
            );
            if len == 0 {
                continue;
            }
            let body = self.read_exact(len, what);
            return (body[0], body[1..].to_vec());
        }
        panic!("only keep-alives while waiting for {what}");
    }

    /// Skips messages until one with `id` (bounded).
    fn wait_message(&mut self, id: u8, what: &str) -> Vec<u8> {
        for _ in 0..100 {
            let (got, payload) = self.read_message(what);
            if got == id {
                return payload;
            }
        }
        panic!("no message {id} ({what}) within 100 messages");
    }

    fn send(&mut self, bytes: &[u8]) {
        let mut bytes = bytes.to_vec();
        self.cipher.encrypt(&mut bytes);
        self.sock.write_all(&bytes).unwrap();
    }

    /// Reads and checks the peer's BitTorrent handshake.
    fn expect_handshake(&mut self, info_hash: &[u8; 20]) {
        let hs = self.read_exact(68, "libtorrent's BitTorrent handshake");
        assert_eq!(&hs[..20], b"\x13BitTorrent protocol", "{hs:02x?}");
        assert_eq!(
            &hs[28..48],
            info_hash,
            "the info-hash in libtorrent's handshake"
        );
    }
}

fn connect(port: u16) -> TcpStream {
    let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect to libtorrent");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.set_nodelay(true).unwrap();
    sock
}

/// With encryption forced, libtorrent drops a plaintext BitTorrent
/// handshake: the interop below does not pass by falling back to clear.
fn plaintext_is_refused(port: u16, info_hash: &[u8; 20]) {
    let mut sock = connect(port);
    sock.write_all(&bt_handshake(info_hash)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "libtorrent kept a plaintext connection open: is encryption forced?"
        );
    }
    assert!(
        !got.starts_with(b"\x13BitTorrent protocol"),
        "libtorrent answered a plaintext handshake"
    );
}

const PIECE_LEN: usize = 64 * 1024;
const FILE_LEN: usize = 16 * PIECE_LEN;

/// Our initiator against a libtorrent seeder: handshake, its handshake and
/// bitfield, then interested → unchoke → one block, compared with the file.
fn download_a_block_from_libtorrent(level: &str, policy: Policy, method: Method) {
    let tmp = temp(&format!("mse-lt-seed-{level}"));
    let data = single_file(&tmp.join("seed-data"), "mse.bin", FILE_LEN, 71);
    let torrent = make_torrent(&data, &tmp.join("mse.torrent"), "64K");
    let lt = start_libtorrent(tmp.path(), "seed", &torrent, level, None);

    if method == Method::Rc4 {
        plaintext_is_refused(lt.port, &lt.info_hash);
    }
    let mut sock = connect(lt.port);
    let mut rng = rand::rngs::StdRng::seed_from_u64(72);
    let mut hs =
        Handshake::initiator(policy, lt.info_hash, bt_handshake(&lt.info_hash), &mut rng).unwrap();
    let est = drive(&mut hs, &mut sock, &[]);
    assert_eq!(est.method, method);
    assert_eq!(est.info_hash, lt.info_hash);
    let mut stream = BtStream::new(sock, est);
    stream.expect_handshake(&lt.info_hash);
    let bitfield = stream.wait_message(5, "libtorrent's bitfield");
    assert_eq!(
        bitfield,
        vec![0xff, 0xff],
        "a seeder of 16 pieces has them all"
    );

    stream.send(&[0, 0, 0, 1, 2]); // interested
    stream.wait_message(1, "unchoke");
    let mut request = vec![0, 0, 0, 13, 6];
    request.extend_from_slice(&3u32.to_be_bytes()); // piece 3
    request.extend_from_slice(&16384u32.to_be_bytes()); // second block
    request.extend_from_slice(&16384u32.to_be_bytes());
    stream.send(&request);
    let piece = stream.wait_message(7, "the requested block");
    assert_eq!(&piece[..8], &[0, 0, 0, 3, 0, 0, 0x40, 0]);
    let file = std::fs::read(&data).unwrap();
    let start = 3 * PIECE_LEN + 16384;
    assert!(
        piece[8..] == file[start..start + 16384],
        "the block differs from the file"
    );
}

#[test]
fn initiator_downloads_from_libtorrent_over_rc4() {
    download_a_block_from_libtorrent("rc4", Policy::REQUIRE_RC4, Method::Rc4);
}

#[test]
fn initiator_gets_plaintext_from_libtorrent_when_both_allow_it() {
    // libtorrent allows both and does not prefer RC4: offered both, it
    // selects plaintext after the obfuscated handshake.
    download_a_block_from_libtorrent("both", Policy::ALLOW, Method::Plaintext);
}

/// A libtorrent leecher connects to our receiver: handshake, its handshake,
/// then our handshake and bitfield bring its "interested" through our
/// keystream.
fn libtorrent_connects_to_receiver(level: &str, policy: Policy, method: Method) {
    let tmp = temp(&format!("mse-lt-leech-{level}"));
    let data = single_file(&tmp.join("seed-data"), "mse.bin", FILE_LEN, 73);
    let torrent = make_torrent(&data, &tmp.join("mse.torrent"), "64K");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let lt = start_libtorrent(tmp.path(), "leech", &torrent, level, Some(port));

    let deadline = Instant::now() + LIMIT;
    let mut sock = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "libtorrent did not connect");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.set_nodelay(true).unwrap();

    // A receiver reads first: the start tells plaintext from MSE.
    let mut first = Vec::new();
    for _ in 0..1000 {
        match classify_first_bytes(&first) {
            FirstBytes::NeedMore => {
                let more = read_some(&mut sock, deadline, "libtorrent's first bytes");
                assert!(!more.is_empty(), "libtorrent closed at once");
                first.extend(more);
            }
            FirstBytes::Encrypted => break,
            FirstBytes::PlainBitTorrent => panic!("libtorrent sent a plaintext handshake"),
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(74);
    let mut hs = Handshake::receiver(policy, &[[7; 20], lt.info_hash], &mut rng);
    let est = drive(&mut hs, &mut sock, &first);
    assert_eq!(est.method, method);
    assert_eq!(est.info_hash, lt.info_hash);
    let mut stream = BtStream::new(sock, est);
    stream.expect_handshake(&lt.info_hash);

    let mut ours = bt_handshake(&lt.info_hash);
    ours.extend_from_slice(&[0, 0, 0, 3, 5, 0xff, 0xff]); // bitfield: all 16
    stream.send(&ours);
    stream.wait_message(2, "libtorrent's interested");
}

#[test]
fn receiver_accepts_libtorrent_over_rc4() {
    libtorrent_connects_to_receiver("rc4", Policy::REQUIRE_RC4, Method::Rc4);
}

#[test]
fn receiver_selects_plaintext_when_libtorrent_offers_both() {
    libtorrent_connects_to_receiver("both", Policy::ALLOW, Method::Plaintext);
}

#[test]
fn receiver_selects_rc4_when_libtorrent_offers_both() {
    libtorrent_connects_to_receiver("both", Policy::PREFER_RC4, Method::Rc4);
}

//! bt-fetch's encryption (MSE/PE) against reference clients: Transmission
//! in its default settings (it opens with MSE) downloading from a bt-fetch
//! seeder, libtorrent requiring RC4 in both directions, and a default
//! qBittorrent seeding to `bt-fetch --encryption require`.

mod common;

use std::io::Write;
use std::net::{SocketAddrV4, TcpListener};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::clients::*;
use common::netns::Netns;
use common::peers::*;

const LIMIT: Duration = Duration::from_secs(180);

/// An HTTP tracker on 127.0.0.1 that answers every announce with a fixed
/// compact peer list (set once the peers listen). Stops when dropped or
/// after 5 minutes.
struct PeerListTracker {
    port: u16,
    peers: Arc<Mutex<Vec<SocketAddrV4>>>,
    stop: Arc<AtomicBool>,
    announces: Arc<Mutex<usize>>,
}

impl PeerListTracker {
    fn start() -> PeerListTracker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let peers: Arc<Mutex<Vec<SocketAddrV4>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let announces: Arc<Mutex<usize>> = Arc::default();
        let (p, s, a) = (peers.clone(), stop.clone(), announces.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(300) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                // The request head (bounded); its content does not matter.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while head.len() < 16384 && !head.ends_with(b"\r\n\r\n") {
                    match std::io::Read::read(&mut conn, &mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                *a.lock().unwrap() += 1;
                let mut compact = Vec::new();
                for peer in p.lock().unwrap().iter() {
                    compact.extend_from_slice(&peer.ip().octets());
                    compact.extend_from_slice(&peer.port().to_be_bytes());
                }
                let mut body = format!(
                    "d8:intervali1800e12:min intervali60e5:peers{}:",
                    compact.len()
                )
                .into_bytes();
                body.extend_from_slice(&compact);
                body.push(b'e');
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            }
        });
        PeerListTracker {
            port,
            peers,
            stop,
            announces,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }
}

impl Drop for PeerListTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The `encryption` of each `peer_connected` event.
fn encryptions(fetch: &Fetch) -> Vec<String> {
    fetch
        .events_named("peer_connected")
        .iter()
        .map(|e| e["encryption"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Waits (bounded) for a `peer_connected` event; returns its encryption.
fn first_encryption(fetch: &mut Fetch) -> String {
    fetch.wait_event("peer_connected", Duration::from_secs(60));
    encryptions(fetch).remove(0)
}

#[test]
fn default_transmission_downloads_from_bt_seeder() {
    // Declared first, dropped last: the processes inside end before it.
    let ns = Netns::create("tr");
    let tmp = temp("enc-tr-default");
    let root = multi_file(&tmp.join("seed"), "tree", 92);
    let tracker = PeerListTracker::start();
    let torrent = tmp.join("t.torrent");
    common::run_ok(
        common::bt_meta()
            .args(["create", "-q", "--no-date", "-l", "256K", "-a"])
            .arg(tracker.url())
            .arg("-o")
            .arg(&torrent)
            .arg(&root),
    );
    // Our seeder inside the namespace, reached over the veth pair:
    // Transmission connects to it (it never dials 127.x tracker peers).
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_bt-fetch"));
    cmd.arg("--json")
        .arg(&torrent)
        .arg("-o")
        .arg(tmp.join("seed"))
        .args(["--bind", &ns.inner_ip.to_string(), "--seed"])
        .stdin(Stdio::piped());
    let mut seeder = Fetch::start_command("bt seeder in a namespace", cmd);
    let port = seeder.port();
    tracker
        .peers
        .lock()
        .unwrap()
        .push(SocketAddrV4::new(ns.inner_ip, port));
    let out = tmp.join("tr");
    std::fs::create_dir_all(&out).unwrap();
    let tr = transmission_default(&tmp.join("cfg"), &torrent, &out);
    tr.wait_finished(LIMIT);
    assert_same_but_empty(&root, &out.join("tree"));
    assert!(*tracker.announces.lock().unwrap() >= 1);
    // Transmission opened with MSE (encryption preferred) and the seeder
    // answered it.
    let enc = first_encryption(&mut seeder);
    assert_ne!(enc, "none", "Transmission's connection was MSE");
    let done = seeder.stop();
    assert!(done["uploaded"].as_u64().unwrap() >= 10_434_691, "{done}");
    drop(tr);
    drop(ns);
}

#[test]
fn download_from_libtorrent_requiring_rc4() {
    let tmp = temp("enc-lt-seed");
    let data = single_file(&tmp.join("seed"), "lt.bin", 12 << 20, 61);
    let torrent = make_torrent(&data, &tmp.join("lt.torrent"), "1M");
    let lt = LtPeer::start_with_env(
        "seed",
        &torrent,
        &tmp.join("seed"),
        &[],
        &[("LT_ENCRYPTION", "rc4")],
    );
    let out = tmp.join("leech");
    // The default mode: plaintext first, refused, then MSE with RC4.
    let mut leech = Fetch::leech_from("leecher", &torrent, &out, lt.port, &["--timeout", "170"]);
    let done = leech.finish(LIMIT);
    assert_same(&data, &out.join("lt.bin"));
    assert_eq!(done["wasted"], 0, "{done}");
    assert_eq!(encryptions(&leech), ["rc4"]);
}

#[test]
fn libtorrent_requiring_rc4_downloads_from_bt_seeder() {
    let tmp = temp("enc-lt-leech");
    let root = multi_file(&tmp.join("seed"), "tree", 62);
    let torrent = make_torrent(&root, &tmp.join("tree.torrent"), "256K");
    let mut seeder = Fetch::seeder(&torrent, &tmp.join("seed"), &[]);
    let port = seeder.port();
    let out = tmp.join("lt");
    std::fs::create_dir_all(&out).unwrap();
    let mut lt = LtPeer::start_with_env(
        "leech",
        &torrent,
        &out,
        &[format!("127.0.0.1:{port}")],
        &[("LT_ENCRYPTION", "rc4")],
    );
    lt.wait_line("done", LIMIT);
    assert_same(&root, &out.join("tree"));
    assert_eq!(first_encryption(&mut seeder), "rc4");
    let done = seeder.stop();
    assert!(done["uploaded"].as_u64().unwrap() >= 10_434_691, "{done}");
}

#[test]
fn require_downloads_from_default_qbittorrent() {
    let tmp = temp("enc-qbit-seed");
    let root = multi_file(&tmp.join("seed"), "tree", 63);
    let torrent = make_torrent(&root, &tmp.join("t.torrent"), "128K");
    let qb = qbittorrent(&tmp.join("profile"), &torrent, &tmp.join("seed"));
    qb.wait_seeding(LIMIT);
    let out = tmp.join("leech");
    let mut leech = Fetch::leech_from(
        "bt --encryption require from qBittorrent",
        &torrent,
        &out,
        qb.port,
        &["--encryption", "require", "--timeout", "170"],
    );
    leech.finish(LIMIT);
    assert_same(&root, &out.join("tree"));
    assert_eq!(encryptions(&leech), ["rc4"]);
}

#[test]
fn require_downloads_from_default_transmission() {
    // Our RC4 initiator against Transmission's receiver.
    let tmp = temp("enc-tr-seed");
    let data = single_file(&tmp.join("seed"), "t.bin", 6_000_000, 67);
    let torrent = make_torrent(&data, &tmp.join("t.torrent"), "256K");
    let tr = transmission_default(&tmp.join("cfg"), &torrent, &tmp.join("seed"));
    let out = tmp.join("leech");
    // Transmission checks its data before it seeds; bt-fetch retries.
    let mut leech = Fetch::leech_from(
        "bt --encryption require from Transmission",
        &torrent,
        &out,
        tr.port,
        &["--encryption", "require", "--timeout", "170"],
    );
    leech.finish(LIMIT);
    assert_same(&data, &out.join("t.bin"));
    assert!(encryptions(&leech).iter().all(|e| e == "rc4"));
}

#[test]
fn require_refuses_a_plaintext_only_peer() {
    // Our own seeder with encryption disabled: a require leecher cannot
    // connect and says why when it gives up.
    let tmp = temp("enc-refuse");
    let data = single_file(&tmp.join("seed"), "r.bin", 300_000, 64);
    let torrent = make_torrent(&data, &tmp.join("r.torrent"), "64K");
    let mut seeder = Fetch::local(
        "plaintext-only seeder",
        torrent.to_str().unwrap(),
        tmp.join("seed").to_str().unwrap(),
        &["--seed", "--encryption", "disable"],
    );
    let port = seeder.port();
    let mut leech = Fetch::leech_from(
        "require leecher",
        &torrent,
        &tmp.join("leech"),
        port,
        &["--encryption", "require", "--timeout", "3"],
    );
    let done = leech.wait_event("done", Duration::from_secs(30));
    assert_eq!(done["status"], "failed");
    assert!(leech.events_named("peer_connected").is_empty());
}

#[test]
fn seeder_drops_hostile_mse_input_quickly_and_keeps_serving() {
    use std::io::Read;
    let tmp = temp("enc-hostile");
    let data = single_file(&tmp.join("seed"), "h.bin", 500_000, 65);
    let torrent = make_torrent(&data, &tmp.join("h.torrent"), "64K");
    let mut seeder = Fetch::seeder(&torrent, &tmp.join("seed"), &[]);
    let port = seeder.port();
    let garbage = common::random_bytes(66, 96 + 700);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A public key (not a BitTorrent handshake: first byte not 19)...
    let mut key = garbage[..96].to_vec();
    key[0] = 0x42;
    conn.write_all(&key).unwrap();
    // ...answered with the seeder's key and padding (96 to 608 bytes).
    let mut answer = vec![0u8; 608];
    let mut got = 0;
    let started = Instant::now();
    while got < 96 && started.elapsed() < Duration::from_secs(5) {
        match conn.read(&mut answer[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got >= 96, "the seeder answered the MSE key ({got} bytes)");
    // Then more than the 512 bytes of padding the specification allows
    // before HASH('req1', S), which never comes: dropped at once.
    let _ = conn.write_all(&garbage[96..]);
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break false,
            Err(_) => break true, // reset
        }
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
    };
    assert!(closed, "the seeder did not drop the hostile connection");
    assert!(started.elapsed() < Duration::from_secs(3));
    // An honest leecher still gets everything.
    let out = tmp.join("leech");
    let mut leech = Fetch::leech_from("leecher", &torrent, &out, port, &["--timeout", "60"]);
    leech.finish(Duration::from_secs(70));
    assert_same(&data, &out.join("h.bin"));
    seeder.stop();
}

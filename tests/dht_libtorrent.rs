//! The DHT against libtorrent's (python3-libtorrent): bt-announce --dht
//! finds a libtorrent seeder through a DHT of libtorrent nodes and announces
//! itself there; libtorrent nodes take our node into their routing tables
//! and find, through it, a peer only our node stores. Everything on
//! 127.0.0.1; every wait is bounded.

mod common;
#[path = "common/dht_lt.rs"]
mod dht_lt;
#[path = "common/tracker.rs"]
mod tracker;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bt::dht::{Config, Driver, Id, Node};
use common::peers::{make_torrent, single_file, temp};
use common::{json, run_ok};
use dht_lt::LtDht;

const LIMIT: Duration = Duration::from_secs(60);

fn info_hash_of(torrent: &std::path::Path) -> String {
    let v = json(
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_bt-meta"))
                .arg("info")
                .arg(torrent),
        )
        .as_bytes(),
    );
    v["info_hash"].as_str().expect("info_hash").to_string()
}

#[test]
fn bt_announce_finds_libtorrent_seeder_through_the_dht() {
    let tmp = temp("dht-lt-announce");
    let data = single_file(&tmp.join("seed"), "dht.bin", 1 << 20, 31);
    let torrent = make_torrent(&data, &tmp.join("dht.torrent"), "256K");
    let ih = info_hash_of(&torrent);
    let mut lt = LtDht::start(5, Some((&torrent, &tmp.join("seed"))));
    let seeder = format!("127.0.0.1:{}", lt.seeder.unwrap());
    // First make sure libtorrent's own DHT knows the seeder.
    let peers = lt.get_peers(&ih, &seeder, LIMIT);
    assert!(
        peers.contains(&seeder),
        "libtorrent's DHT never found its own seeder {seeder}: {peers:?}"
    );

    let cache = tmp.join("cache");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_bt-announce"))
        .args([
            "--dht",
            "--info-hash",
            &ih,
            "--port",
            "45678",
            "--timeout",
            "30",
            "-vv",
        ])
        .args(["--dht-bootstrap", &format!("127.0.0.1:{}", lt.ports[0])])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("run bt-announce");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bt-announce failed ({}):\n{stderr}",
        out.status
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let want = serde_json::json!({"ip": "127.0.0.1", "port": lt.seeder.unwrap(), "source": "dht"});
    assert!(
        lines.contains(&want),
        "no {want} in:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("bt-announce found the seeder in {:?}", started.elapsed());
    // The table was saved for next time.
    let saved = cache.join("bt/dht.dat");
    let table = bt::dht::persist::SavedTable::load(&saved).expect("saved table");
    assert!(!table.nodes.is_empty());

    // bt-announce announced port 45678 to the libtorrent nodes: they hand it out.
    let us = "127.0.0.1:45678";
    let peers = lt.get_peers(&ih, us, LIMIT);
    assert!(
        peers.contains(&us.to_string()),
        "libtorrent does not know the peer bt-announce announced: {peers:?}\nbt-announce said:\n{stderr}"
    );

    // A second run bootstraps from the saved table alone (the bootstrap
    // address given is dead).
    let out = Command::new(env!("CARGO_BIN_EXE_bt-announce"))
        .args([
            "--dht",
            "--info-hash",
            &ih,
            "--event",
            "stopped",
            "--timeout",
            "30",
        ])
        .args(["--dht-bootstrap", "127.0.0.1:9"])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("run bt-announce");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("\"port\":{}", lt.seeder.unwrap())),
        "{stdout}"
    );
}

/// `--follow --dht`: trackers and the DHT together for the whole run; the
/// seeder comes from the DHT, bt-announce itself from opentracker, each
/// printed once, and SIGTERM ends it with exit 0.
#[test]
fn bt_announce_follow_combines_trackers_and_the_dht() {
    use std::io::{BufRead, BufReader};
    let tmp = temp("dht-lt-follow");
    let data = single_file(&tmp.join("seed"), "follow.bin", 1 << 20, 33);
    let torrent = make_torrent(&data, &tmp.join("follow.torrent"), "256K");
    let ih = info_hash_of(&torrent);
    let ot = tracker::Opentracker::start(&[&ih]);
    let mut lt = LtDht::start(4, Some((&torrent, &tmp.join("seed"))));
    let seeder = lt.seeder.unwrap();
    let seen = lt.get_peers(&ih, &format!("127.0.0.1:{seeder}"), LIMIT);
    assert!(!seen.is_empty(), "libtorrent's DHT knows its seeder");
    let child = Command::new(env!("CARGO_BIN_EXE_bt-announce"))
        .args(["--follow", "--dht", "--info-hash", &ih, "--port", "45679"])
        .args(["--tracker", &ot.http()])
        .args(["--dht-bootstrap", &format!("127.0.0.1:{}", lt.ports[0])])
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run bt-announce");
    let mut child = tracker::ChildGuard(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (mut from_dht, mut from_tracker) = (false, false);
    let mut lines = Vec::new();
    let end = Instant::now() + LIMIT;
    while !(from_dht && from_tracker) && Instant::now() < end {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        from_dht |= v["source"] == "dht" && v["port"] == seeder;
        from_tracker |= v["tracker"].is_string() && v["port"] == 45679;
        lines.push(line);
    }
    assert!(
        from_dht && from_tracker,
        "dht {from_dht}, tracker {from_tracker}: {lines:?}"
    );
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.wait_exit(Duration::from_secs(15), "bt-announce --follow --dht");
    assert!(status.success(), "{status}");
    let mut printed: Vec<&String> = lines.iter().collect();
    printed.sort();
    printed.dedup();
    assert_eq!(printed.len(), lines.len(), "each peer printed once");
}

#[test]
fn bt_announce_reports_when_no_node_answers() {
    let tmp = temp("dht-none");
    let out = Command::new(env!("CARGO_BIN_EXE_bt-announce"))
        .args(["--dht", "--info-hash", &"ab".repeat(20), "--timeout", "4"])
        .args(["--dht-bootstrap", "127.0.0.1:9"])
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .output()
        .expect("run bt-announce");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not bootstrap: no node answered"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn libtorrent_nodes_use_our_node() {
    let mut lt = LtDht::start(4, None);
    // Our node, in a thread, storing a peer for an info-hash nobody else has.
    let now = Instant::now();
    let mut node = Node::new(Config::default(), 2024, now);
    let ih = Id([0x5a; 20]);
    let peer = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 5555);
    node.store_peer(now, ih, peer);
    let mut driver = Driver::bind("127.0.0.1:0".parse().unwrap(), node).unwrap();
    let port = driver.local_addr().unwrap().port();
    let seeds: Vec<SocketAddr> = lt
        .ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    driver.node.bootstrap(now, &seeds, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let runner = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(150);
        let mut bootstrapped = None;
        while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
            driver
                .run_until(Instant::now() + Duration::from_millis(200), |_, e| {
                    if let bt::dht::Event::Bootstrapped { nodes, .. } = e {
                        bootstrapped = Some(nodes);
                    }
                    true
                })
                .unwrap();
        }
        (bootstrapped, driver.node.stats(Instant::now()))
    });

    // libtorrent nodes answered us and took us into their tables.
    let us = format!("127.0.0.1:{port}");
    let end = Instant::now() + LIMIT;
    let mut tables = Vec::new();
    while Instant::now() < end {
        tables = lt.tables();
        if tables.contains(&us) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        tables.contains(&us),
        "no libtorrent node has {us} in its routing table: {tables:?}"
    );

    // libtorrent's lookup asks our node and gets the peer only we store.
    let want = peer.to_string();
    let peers = lt.get_peers(&bt::hex::encode(&ih.0), &want, LIMIT);
    stop.store(true, Ordering::Relaxed);
    let (bootstrapped, stats) = runner.join().unwrap();
    assert!(
        peers.contains(&want),
        "libtorrent did not find {want} through our node: {peers:?}; our node: {stats:?}"
    );
    assert!(
        bootstrapped.is_some_and(|n| n > 0),
        "{bootstrapped:?} {stats:?}"
    );
    assert!(stats.queries_answered > 0, "{stats:?}");
}

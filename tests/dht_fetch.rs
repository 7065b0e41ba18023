//! `bt-fetch --dht` (BEP 5) against a DHT of libtorrent nodes
//! (python3-libtorrent) on 127.0.0.1: a trackerless magnet download with
//! the metadata through BEP 9, a bt-fetch seeder found by a libtorrent
//! leecher that knows only the info-hash, a warm second run from the saved
//! table, no bootstrap node reachable, and the "no source" advice. No
//! tracker anywhere, never the public routers; every wait is bounded.

mod common;
#[path = "common/dht_lt.rs"]
mod dht_lt;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{
    assert_same, bt_fetch_cmd, info_hash_of, make_torrent, single_file, temp, Fetch,
};
use common::run_ok;
use dht_lt::LtDht;

const LIMIT: Duration = Duration::from_secs(120);

/// `bt-fetch --json WHAT -o OUT --bind 127.0.0.1 --dht --dht-bootstrap
/// NODE EXTRA...` with `XDG_CACHE_HOME=cache` and stdin closed.
fn fetch_dht(
    label: &str,
    cache: &Path,
    what: &str,
    out: &Path,
    node: &str,
    extra: &[&str],
) -> Fetch {
    let out = out.to_str().unwrap();
    let mut cmd = bt_fetch_cmd();
    cmd.arg("--json")
        .args([what, "-o", out, "--bind", "127.0.0.1"])
        .args(["--dht", "--dht-bootstrap", node])
        .args(extra)
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null());
    Fetch::start_command(label, cmd)
}

#[test]
fn trackerless_magnet_download_then_a_warm_second_run() {
    let tmp = temp("dht-fetch-magnet");
    let data = single_file(&tmp.join("seed"), "trackerless.bin", 3 << 20, 77);
    let torrent = make_torrent(&data, &tmp.join("t.torrent"), "256K");
    let ih = info_hash_of(&torrent);
    let mut lt = LtDht::start(5, Some((&torrent, &tmp.join("seed"))));
    let seeder = format!("127.0.0.1:{}", lt.seeder.unwrap());
    // libtorrent's own DHT knows the seeder before we ask it.
    let peers = lt.get_peers(&ih, &seeder, Duration::from_secs(60));
    assert!(peers.contains(&seeder), "{peers:?}");

    let cache = tmp.join("cache");
    let link = format!("magnet:?xt=urn:btih:{ih}");
    let node = format!("127.0.0.1:{}", lt.ports[0]);
    let out = tmp.join("out1");
    let started = Instant::now();
    let mut f = fetch_dht(
        "bt-fetch --dht",
        &cache,
        &link,
        &out,
        &node,
        &["--timeout", "110", "-vv"],
    );
    let done = f.finish(LIMIT);
    assert_eq!(done["status"], "ok", "{done}");
    eprintln!("trackerless download in {:?}", started.elapsed());
    // BEP 5 port: libtorrent set the DHT bit, got our port and sent its
    // own (its DHT runs on its listen port), which our node pinged.
    let stderr = f.stderr_text();
    assert!(
        stderr.contains(&format!("dht: a peer advertises the node {seeder}")),
        "{stderr}"
    );
    assert_same(&data, &out.join("trackerless.bin"));
    let boot = f.events_named("dht_bootstrapped");
    assert!(
        boot.first()
            .is_some_and(|b| b["nodes"].as_u64() > Some(0) && b["saved_table"] == false),
        "{boot:?}"
    );
    let metadata = f.events_named("metadata");
    assert_eq!(metadata.len(), 1, "the metadata came through BEP 9");
    let found = f.events_named("dht_peers");
    assert!(
        found.iter().any(|v| v["peers"].as_u64() >= Some(1)),
        "{found:?}"
    );
    let connected = f.events_named("peer_connected");
    assert!(
        connected
            .iter()
            .any(|v| v["addr"] == seeder.as_str() && v["source"] == "dht"),
        "the seeder came from the DHT: {connected:?}"
    );
    assert!(
        connected
            .iter()
            .all(|v| v["source"] == "dht" || v["source"] == "incoming"),
        "{connected:?}"
    );
    let table = bt::dht::persist::SavedTable::load(&cache.join("bt/dht.dat"))
        .expect("the routing table was saved");
    assert!(!table.nodes.is_empty());

    // The second run joins through the saved table alone: the bootstrap
    // node given is dead.
    let out = tmp.join("out2");
    let mut f = fetch_dht(
        "bt-fetch --dht (warm)",
        &cache,
        &link,
        &out,
        "127.0.0.1:9",
        &["--timeout", "110"],
    );
    let done = f.finish(LIMIT);
    assert_eq!(done["status"], "ok", "{done}");
    assert_same(&data, &out.join("trackerless.bin"));
    let boot = f.events_named("dht_bootstrapped");
    assert!(
        boot.first()
            .is_some_and(|b| b["nodes"].as_u64() > Some(0) && b["saved_table"] == true),
        "{boot:?}\n{}",
        f.stderr_text()
    );
    assert!(f
        .events_named("peer_connected")
        .iter()
        .any(|v| v["addr"] == seeder.as_str() && v["source"] == "dht"));
}

#[test]
fn a_libtorrent_leecher_finds_a_bt_fetch_seeder_through_the_dht() {
    let tmp = temp("dht-fetch-found");
    let data = single_file(&tmp.join("seed"), "found.bin", 2 << 20, 78);
    let torrent = make_torrent(&data, &tmp.join("t.torrent"), "256K");
    let ih = info_hash_of(&torrent);
    let mut lt = LtDht::start(4, None);
    let node = format!("127.0.0.1:{}", lt.ports[1]);
    let cache = tmp.join("cache");
    let t = torrent.to_str().unwrap();
    let mut f = fetch_dht(
        "bt-fetch --seed --dht",
        &cache,
        t,
        &tmp.join("seed"),
        &node,
        &["--seed"],
    );
    let port = f.port();
    // Our first lookup ended, so our announce went out.
    f.wait_event("dht_bootstrapped", Duration::from_secs(60));
    f.wait_event("dht_peers", Duration::from_secs(90));
    let us = format!("127.0.0.1:{port}");

    let into = tmp.join("leech");
    std::fs::create_dir_all(&into).unwrap();
    let (ok, peers) = lt.leech(&ih, &into, LIMIT);
    assert!(
        ok,
        "libtorrent did not complete; peers {peers:?}\nbt-fetch:\n{}",
        f.stderr_text()
    );
    assert_same(&data, &into.join("found.bin"));
    // It came to us (the only seeder; it knew nothing but the info-hash).
    // The download may be over before libtorrent lists its peers, so ask
    // our side.
    f.pump(Duration::from_millis(500));
    let incoming: Vec<_> = f
        .events_named("peer_connected")
        .into_iter()
        .filter(|v| v["source"] == "incoming")
        .collect();
    assert!(
        !incoming.is_empty(),
        "libtorrent (peers it listed: {peers:?}) never connected to {us}"
    );
    f.proc.signal(libc::SIGTERM);
    let done = f.finish(Duration::from_secs(30));
    assert!(done["uploaded"].as_u64() >= Some(2 << 20), "{done}");
}

#[test]
fn no_bootstrap_node_costs_only_a_warning() {
    let tmp = temp("dht-fetch-none");
    let data = single_file(&tmp.join("seed"), "plain.bin", 2 << 20, 79);
    let torrent = make_torrent(&data, &tmp.join("t.torrent"), "64K");
    let t = torrent.to_str().unwrap();
    let mut seed = Fetch::seeder(t, &tmp.join("seed"), &["--max-upload-rate", "200K"]);
    let peer = seed.addr();
    let cache = tmp.join("cache");
    let out = tmp.join("out");
    let started = Instant::now();
    let extra = ["--peer", &peer, "--timeout", "60"];
    let mut f = fetch_dht(
        "bt-fetch --dht, no node",
        &cache,
        t,
        &out,
        "127.0.0.1:9",
        &extra,
    );
    let done = f.finish(Duration::from_secs(90));
    assert_eq!(done["status"], "ok");
    assert_same(&data, &out.join("plain.bin"));
    let secs = started.elapsed().as_secs_f64();
    let stderr = f.stderr_text();
    // About 10 s at 200 KB/s: long enough for the bootstrap to give up.
    assert!(
        stderr.contains("dht: could not bootstrap: no node answered"),
        "after {secs:.1} s:\n{stderr}"
    );
    assert!(f.events_named("dht_bootstrapped").is_empty());
    assert!(!cache.join("bt/dht.dat").exists(), "no node, nothing saved");
    seed.proc.signal(libc::SIGTERM);
    let _ = seed.proc.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_bare_magnet_link_without_dht_says_dht_would_find_peers() {
    let link = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    let tmp = temp("dht-fetch-advice");
    // Stdin a terminal: refused at once.
    let script = common::peers::require("script", "bsdutils");
    let cmdline = format!(
        "{} '{link}' -o {}",
        env!("CARGO_BIN_EXE_bt-fetch"),
        tmp.path().display()
    );
    let mut child = Command::new(script)
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("bt-fetch did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(
        text.contains("names no tracker (tr=) and no peer (x.pe=); --dht would find some"),
        "{text}"
    );

    // Stdin not a terminal (peers could come from it) and empty.
    let out = bt_fetch_cmd()
        .arg(&link)
        .arg("-o")
        .arg(tmp.path())
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("or --dht to find peers through the DHT"),
        "{stderr}"
    );
}

#[test]
fn never_on_for_private_torrents() {
    let tmp = temp("dht-fetch-private");
    let data = single_file(&tmp.join("seed"), "private.bin", 1 << 20, 80);
    let torrent = tmp.join("p.torrent");
    run_ok(
        common::bt_meta()
            .args(["create", "-q", "--no-date", "--private", "-l", "64K", "-o"])
            .arg(&torrent)
            .arg(&data),
    );
    let ih = info_hash_of(&torrent);
    let t = torrent.to_str().unwrap();
    let mut seed = Fetch::seeder(t, &tmp.join("seed"), &[]);
    let peer = seed.addr();
    let cache = tmp.join("cache");
    // TORRENT -o OUT, from the seeder, with --dht (and no DHT to reach)
    let run = |label: &str, what: &str, out: &Path| {
        let extra = ["--peer", &peer, "--timeout", "60", "-v"];
        fetch_dht(label, &cache, what, out, "127.0.0.1:9", &extra)
    };

    // A private torrent file: --dht is refused with a warning.
    let out = tmp.join("out1");
    let mut f = run("private torrent", t, &out);
    assert_eq!(f.finish(LIMIT)["status"], "ok");
    assert_same(&data, &out.join("private.bin"));
    let stderr = f.stderr_text();
    assert!(
        stderr.contains("the torrent is private: --dht is ignored (BEP 27)"),
        "{stderr}"
    );
    assert!(!stderr.contains("dht: node"), "{stderr}");

    // A magnet link: the DHT runs until the metadata says "private".
    let link = format!("magnet:?xt=urn:btih:{ih}");
    let out = tmp.join("out2");
    let mut f = run("private magnet", &link, &out);
    assert_eq!(f.finish(LIMIT)["status"], "ok");
    assert_same(&data, &out.join("private.bin"));
    let stderr = f.stderr_text();
    assert!(stderr.contains("dht: node"), "{stderr}");
    assert!(
        stderr.contains("the torrent is private: the DHT is stopped (BEP 27)"),
        "{stderr}"
    );
    seed.proc.signal(libc::SIGTERM);
    let _ = seed.proc.wait_exit(Duration::from_secs(10));
}

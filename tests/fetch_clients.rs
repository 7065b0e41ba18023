//! Interop with aria2, qBittorrent and Transmission in both directions.

mod common;

use std::path::Path;
use std::time::Duration;

use common::clients::*;
use common::peers::*;

const LIMIT: Duration = Duration::from_secs(180);

/// Downloads `torrent` with bt-fetch from a peer at `port`; checks the data.
fn fetch_from(port: u16, torrent: &Path, out: &Path, label: &str) -> serde_json::Value {
    let mut leech = Fetch::leech_from(label, torrent, out, port, &["--timeout", "170"]);
    leech.finish(LIMIT)
}

fn seed_with_bt(torrent: &Path, dir: &Path, peer_port: u16) -> Fetch {
    let peer = format!("127.0.0.1:{peer_port}");
    Fetch::local(
        "bt seeder",
        torrent.to_str().unwrap(),
        dir.to_str().unwrap(),
        &["--seed", "--peer", &peer],
    )
}

#[test]
fn download_from_aria2() {
    let tmp = temp("fetch-aria2-seed");
    let root = multi_file(&tmp.join("seed"), "tree", 50);
    let torrent = make_torrent(&root, &tmp.join("t.torrent"), "256K");
    let (_aria, port) = aria2(true, &torrent, &tmp.join("seed"));
    let out = tmp.join("leech");
    let done = fetch_from(port, &torrent, &out, "bt from aria2");
    assert_same(&root, &out.join("tree"));
    assert_eq!(done["status"], "ok");
}

#[test]
fn aria2_downloads_from_bt() {
    let tmp = temp("fetch-aria2-leech");
    let data = single_file(&tmp.join("seed"), "a.bin", 9_000_000, 51);
    let torrent = make_torrent(&data, &tmp.join("a.torrent"), "512K");
    let out = tmp.join("aria");
    std::fs::create_dir_all(&out).unwrap();
    let (mut aria, port) = aria2(false, &torrent, &out);
    let mut seeder = seed_with_bt(&torrent, &tmp.join("seed"), port);
    let status = aria.wait_exit(LIMIT).expect("aria2 finished in time");
    assert!(status.success(), "aria2 exited with {status}");
    assert_same(&data, &out.join("a.bin"));
    let done = seeder.stop();
    assert!(done["uploaded"].as_u64().unwrap() >= 9_000_000);
}

#[test]
fn download_from_qbittorrent() {
    let tmp = temp("fetch-qbit-seed");
    let root = multi_file(&tmp.join("seed"), "tree", 60);
    let torrent = make_torrent(&root, &tmp.join("t.torrent"), "128K");
    let qb = qbittorrent(&tmp.join("profile"), &torrent, &tmp.join("seed"));
    qb.wait_seeding(LIMIT);
    let out = tmp.join("leech");
    fetch_from(qb.port, &torrent, &out, "bt from qBittorrent");
    assert_same(&root, &out.join("tree"));
}

#[test]
fn qbittorrent_downloads_from_bt() {
    let tmp = temp("fetch-qbit-leech");
    let root = multi_file(&tmp.join("seed"), "tree", 70);
    let torrent = make_torrent(&root, &tmp.join("t.torrent"), "256K");
    let out = tmp.join("qb");
    std::fs::create_dir_all(&out).unwrap();
    let qb = qbittorrent(&tmp.join("profile"), &torrent, &out);
    let mut seeder = seed_with_bt(&torrent, &tmp.join("seed"), qb.port);
    qb.wait_seeding(LIMIT);
    assert_same(&root, &out.join("tree"));
    seeder.stop();
}

/// How a test starts Transmission: with `-et` (plaintext preferred) or with
/// its defaults (encryption preferred).
type StartTransmission = fn(&Path, &Path, &Path) -> Transmission;

/// bt-fetch downloads an 8 MB file from Transmission.
fn bt_downloads_from_transmission(label: &str, seed: u64, start: StartTransmission) {
    let tmp = temp(label);
    let data = single_file(&tmp.join("seed"), "t.bin", 8_000_000, seed);
    let torrent = make_torrent(&data, &tmp.join("t.torrent"), "256K");
    let tr = start(&tmp.join("cfg"), &torrent, &tmp.join("seed"));
    // Transmission verifies the data before it seeds; bt-fetch retries.
    let out = tmp.join("leech");
    fetch_from(tr.port, &torrent, &out, label);
    assert_same(&data, &out.join("t.bin"));
}

/// Transmission downloads a tree from a bt-fetch seeder that dials it (the
/// case where Transmission dials us with MSE is in tests/fetch_encryption.rs).
fn transmission_downloads_from_bt(label: &str, seed: u64, start: StartTransmission) {
    let tmp = temp(label);
    let root = multi_file(&tmp.join("seed"), "tree", seed);
    let torrent = make_torrent(&root, &tmp.join("t.torrent"), "256K");
    let out = tmp.join("tr");
    std::fs::create_dir_all(&out).unwrap();
    let tr = start(&tmp.join("cfg"), &torrent, &out);
    let mut seeder = seed_with_bt(&torrent, &tmp.join("seed"), tr.port);
    tr.wait_finished(LIMIT);
    assert_same_but_empty(&root, &out.join("tree"));
    seeder.stop();
}

#[test]
fn download_from_transmission() {
    bt_downloads_from_transmission("fetch-tr-seed", 80, transmission);
}

#[test]
fn download_from_default_transmission() {
    // Transmission with its default encryption setting (preferred) accepts
    // our plaintext handshake.
    bt_downloads_from_transmission("fetch-trd-seed", 81, transmission_default);
}

#[test]
fn transmission_downloads_from_bt_connecting_to_it() {
    transmission_downloads_from_bt("fetch-tr-leech", 90, transmission);
}

#[test]
fn default_transmission_downloads_from_bt_connecting_to_it() {
    transmission_downloads_from_bt("fetch-trd-leech", 91, transmission_default);
}

#[test]
fn download_from_mixed_swarm() {
    // libtorrent, aria2 and bt-fetch seeding at once: blocks come from
    // several of them.
    let tmp = temp("fetch-mixed");
    let data = single_file(&tmp.join("seed"), "m.bin", 40 << 20, 123);
    let torrent = make_torrent(&data, &tmp.join("m.torrent"), "256K");
    let lt = LtPeer::start("seed", &torrent, &tmp.join("seed"), &[]);
    let (_aria, aria_port) = aria2(true, &torrent, &tmp.join("seed"));
    let mut bt_seed = Fetch::local(
        "bt seeder",
        torrent.to_str().unwrap(),
        tmp.join("seed").to_str().unwrap(),
        &["--seed"],
    );
    let bt_port = bt_seed.port();
    let out = tmp.join("leech");
    let peers: Vec<String> = [lt.port, aria_port, bt_port]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut args = vec![
        torrent.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--bind",
        "127.0.0.1",
    ];
    for p in &peers {
        args.push("--peer");
        args.push(p);
    }
    let mut leech = Fetch::start("leecher", &args);
    let done = leech.finish(LIMIT);
    assert_same(&data, &out.join("m.bin"));
    let gave: Vec<(String, u64)> = leech
        .events_named("peer_disconnected")
        .iter()
        .map(|d| {
            (
                d["addr"].as_str().unwrap().to_string(),
                d["downloaded"].as_u64().unwrap(),
            )
        })
        .collect();
    let contributors = gave.iter().filter(|(_, n)| *n > 0).count();
    assert!(contributors >= 2, "data came from several peers: {gave:?}");
    let total: u64 = gave.iter().map(|(_, n)| n).sum();
    assert!(total >= 40 << 20, "{gave:?} {done}");
    bt_seed.stop();
}

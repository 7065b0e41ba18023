//! bt-fetch downloading from bt-fetch: single file, multi-file with nested
//! folders, and a swarm where leechers trade pieces among themselves.

mod common;

use std::time::Duration;

use common::peers::*;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn single_file_from_bt_seeder() {
    let tmp = temp("fetch-bt-single");
    let data = single_file(&tmp.join("seed"), "data.bin", 12_345_678, 1);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    let seed_dir = tmp.join("seed");
    let mut seeder = Fetch::seeder(t, &seed_dir, &[]);
    let port = seeder.port();
    let listening = &seeder.seen[0];
    assert_eq!(
        listening["have_pieces"], listening["pieces"],
        "seeder found its data"
    );
    let out = tmp.join("leech");
    let mut leech = Fetch::leech_from("leecher", t, &out, port, &[]);
    let done = leech.finish(LIMIT);
    assert_same(&data, &out.join("data.bin"));
    assert_eq!(done["downloaded"], 12_345_678);
    assert_eq!(done["status"], "ok");
    assert_eq!(leech.events_named("piece").len(), 48);
    let connected = leech.events_named("peer_connected");
    assert!(
        connected[0]["client"].as_str().unwrap().starts_with("bt "),
        "{connected:?}"
    );
    // SIGTERM stops the seeder cleanly with exit 0.
    let done = seeder.stop();
    assert_eq!(done["uploaded"], 12_345_678);
}

#[test]
fn multi_file_from_stdin_peer_and_resume() {
    let tmp = temp("fetch-bt-multi");
    let root = multi_file(&tmp.join("seed"), "tree", 10);
    let torrent = make_torrent(&root, &tmp.join("tree.torrent"), "64K");
    let t = torrent.to_str().unwrap();
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &[]);
    let port = seeder.port();
    let out = tmp.join("leech");
    // Half of one file already there, one file corrupt: resume rechecks.
    std::fs::create_dir_all(out.join("tree/sub/deeper")).unwrap();
    let c = std::fs::read(root.join("sub/deeper/c.bin")).unwrap();
    std::fs::write(out.join("tree/sub/deeper/c.bin"), &c[..c.len() / 2]).unwrap();
    let mut a = std::fs::read(root.join("a.bin")).unwrap();
    a[100] ^= 1;
    std::fs::write(out.join("tree/a.bin"), &a).unwrap();
    let mut leech = Fetch::local("leecher", t, out.to_str().unwrap(), &[]);
    leech.send_line(&format!(
        "{{\"ip\": \"127.0.0.1\", \"port\": {port}, \"peer_id\": \"{}\"}}",
        "00".repeat(20)
    ));
    let listening = leech.wait_event("listening", LIMIT);
    assert!(
        listening["have_pieces"].as_u64().unwrap() > 0,
        "resume found data"
    );
    let done = leech.finish(LIMIT);
    assert_same(&root, &out.join("tree"));
    let total: u64 = 3_000_001 + 700_000 + 5_500_123 + 1_234_567;
    assert!(done["downloaded"].as_u64().unwrap() < total, "{done}");
}

#[test]
fn swarm_leechers_trade_pieces() {
    let tmp = temp("fetch-bt-swarm");
    let data = single_file(&tmp.join("seed"), "swarm.bin", 24 << 20, 3);
    let torrent = make_torrent(&data, &tmp.join("s.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    // The seeder uploads slowly relative to demand: one slot, small memory,
    // so that leechers must also get pieces from each other.
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &["--upload-slots", "1"]);
    let seed_port = seeder.port();
    // Everyone learns about everyone, then the seeder; leechers still seed
    // up to ratio 0.3 when they are stopped.
    let flags = vec![vec!["--seed-ratio", "0.3"]; 4];
    let mut leechers = leecher_swarm(tmp.path(), t, seed_port, &flags);
    let uploaded = finish_swarm(&mut leechers, tmp.path(), &data, "swarm.bin", LIMIT);
    let uploaded_by_leechers: u64 = uploaded.iter().sum();
    assert!(
        uploaded_by_leechers > 4 << 20,
        "leechers traded only {uploaded_by_leechers} bytes"
    );
    seeder.proc.signal(libc::SIGINT);
    seeder.finish(Duration::from_secs(10));
}

#[test]
fn seed_ratio_ends_seeding() {
    let tmp = temp("fetch-bt-ratio");
    let data = single_file(&tmp.join("seed"), "r.bin", 3_000_000, 8);
    let torrent = make_torrent(&data, &tmp.join("r.torrent"), "64K");
    let t = torrent.to_str().unwrap();
    let mut seeder = Fetch::local(
        "seeder",
        t,
        tmp.join("seed").to_str().unwrap(),
        &["--seed-ratio", "1"],
    );
    let port = seeder.port();
    let out = tmp.join("leech");
    let mut leech = Fetch::leech_from("leecher", t, &out, port, &[]);
    leech.finish(LIMIT);
    assert_same(&data, &out.join("r.bin"));
    // Ratio 1 reached: the seeder leaves by itself.
    let done = seeder.finish(Duration::from_secs(20));
    assert!(done["uploaded"].as_u64().unwrap() >= 3_000_000, "{done}");
}

//! Misbehaving peers beside a good seeder: the download still completes
//! with correct data.

mod common;

use std::time::Duration;

use common::fake_peer::{Behaviour, FakePeer};
use common::peers::*;

fn hostile_run(behaviour: Behaviour, label: &str) -> (serde_json::Value, Fetch) {
    let tmp = temp(label);
    let data = single_file(&tmp.join("seed"), "h.bin", 6 << 20, 77);
    let torrent = make_torrent(&data, &tmp.join("h.torrent"), "64K");
    let meta = bt::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let fake = FakePeer::start(meta.info_hash, meta.info.piece_count(), behaviour);
    let t = torrent.to_str().unwrap();
    let mut seeder = Fetch::local("seeder", t, tmp.join("seed").to_str().unwrap(), &["--seed"]);
    let port = seeder.port();
    let out = tmp.join("leech");
    let fake_addr = format!("127.0.0.1:{}", fake.port);
    let good = format!("127.0.0.1:{port}");
    // The bad peer first, so that it gets requests before the good one.
    let mut leech = Fetch::local(
        "leecher",
        t,
        out.to_str().unwrap(),
        &["--peer", &fake_addr, "--timeout", "100"],
    );
    std::thread::sleep(Duration::from_millis(300));
    leech.send_line(&good);
    let done = leech.finish(Duration::from_secs(110));
    assert_same(&data, &out.join("h.bin"));
    if behaviour != Behaviour::BadBitfield {
        assert!(
            fake.requests_seen
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
    drop(fake);
    seeder.stop();
    (done, leech)
}

#[test]
fn corrupt_peer_is_banned_and_download_completes() {
    let (done, leech) = hostile_run(Behaviour::Corrupt, "hostile-corrupt");
    assert!(done["hash_failures"].as_u64().unwrap() >= 1, "{done}");
    assert!(!leech.events_named("hash_failed").is_empty());
    assert!(
        !leech.events_named("peer_banned").is_empty(),
        "{:?}",
        leech.seen
    );
}

#[test]
fn silent_peer_does_not_stall_the_download() {
    let (done, _) = hostile_run(Behaviour::Silent, "hostile-silent");
    assert!(done["seconds"].as_f64().unwrap() < 60.0, "{done}");
}

#[test]
fn peer_with_wrong_bitfield_size_is_dropped() {
    let (_, leech) = hostile_run(Behaviour::BadBitfield, "hostile-bitfield");
    let dropped = leech.events_named("peer_disconnected");
    assert!(
        dropped
            .iter()
            .any(|d| d["reason"].as_str().unwrap().contains("bitfield")),
        "{dropped:?}"
    );
}

#[test]
fn slow_peer_does_not_hold_up_the_end() {
    // One seeder at 100 KiB/s, one unlimited: the download ends at the
    // fast seeder's pace, not waiting for blocks queued at the slow one.
    let tmp = temp("hostile-slow");
    let data = single_file(&tmp.join("seed"), "s.bin", 8 << 20, 78);
    let torrent = make_torrent(&data, &tmp.join("s.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    let seed_dir = tmp.join("seed");
    let mut slow = Fetch::local(
        "slow seeder",
        t,
        seed_dir.to_str().unwrap(),
        &["--seed", "--max-upload-rate", "100K"],
    );
    let mut fast = Fetch::local("fast seeder", t, seed_dir.to_str().unwrap(), &["--seed"]);
    let (slow_port, fast_port) = (slow.port(), fast.port());
    let out = tmp.join("leech");
    let slow_addr = format!("127.0.0.1:{slow_port}");
    let fast_addr = format!("127.0.0.1:{fast_port}");
    let mut leech = Fetch::local("leecher", t, out.to_str().unwrap(), &["--peer", &slow_addr]);
    // The slow seeder first gets a head start with requests queued.
    std::thread::sleep(Duration::from_millis(500));
    leech.send_line(&fast_addr);
    let done = leech.finish(Duration::from_secs(60));
    assert_same(&data, &out.join("s.bin"));
    assert!(done["seconds"].as_f64().unwrap() < 15.0, "{done}");
    for s in [&mut slow, &mut fast] {
        s.stop();
    }
}

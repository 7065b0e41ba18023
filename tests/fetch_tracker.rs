//! bt-fetch --announce against a real opentracker: a seeder and a leecher
//! find each other through the tracker (HTTP and UDP).

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::time::Duration;

use common::peers::*;
use tracker::Opentracker;

fn swarm_through_tracker(udp: bool) {
    let tmp = temp("fetch-tracker");
    let data = single_file(&tmp.join("seed"), "t.bin", 5_000_000, 5);
    let plain = make_torrent(&data, &tmp.join("plain.torrent"), "256K");
    let meta = bt::metainfo::Metainfo::from_bytes(&std::fs::read(&plain).unwrap()).unwrap();
    let ot = Opentracker::start(&[&meta.info_hash_hex()]);
    let url = if udp { ot.udp() } else { ot.http() };
    let torrent = tmp.join("t.torrent");
    common::run_ok(
        common::bt_meta()
            .args(["create", "-q", "--no-date", "-l", "256K", "-a", &url, "-o"])
            .arg(&torrent)
            .arg(&data),
    );
    let t = torrent.to_str().unwrap();
    let mut seeder = Fetch::start(
        "seeder",
        &[
            t,
            "-o",
            tmp.join("seed").to_str().unwrap(),
            "--seed",
            "--announce",
            "--bind",
            "127.0.0.1",
        ],
    );
    let a = seeder.wait_event("announce", Duration::from_secs(30));
    assert_eq!(a["tracker"], url.as_str());
    let out = tmp.join("leech");
    let mut leech = Fetch::start(
        "leecher",
        &[
            t,
            "-o",
            out.to_str().unwrap(),
            "--announce",
            "--bind",
            "127.0.0.1",
            "--timeout",
            "60",
        ],
    );
    leech.close_stdin();
    let done = leech.finish(Duration::from_secs(70));
    assert_same(&data, &out.join("t.bin"));
    assert_eq!(done["status"], "ok");
    // The tracker handed each its own address too: dropped as ourselves.
    seeder.proc.signal(libc::SIGTERM);
    seeder.finish(Duration::from_secs(15));
}

#[test]
fn peers_from_http_tracker() {
    swarm_through_tracker(false);
}

#[test]
fn peers_from_udp_tracker() {
    swarm_through_tracker(true);
}

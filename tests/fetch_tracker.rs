//! bt-fetch --announce against a real opentracker: a seeder and a leecher
//! find each other through the tracker (HTTP and UDP).

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::time::Duration;

use common::peers::*;
use tracker::Opentracker;

/// A tracked swarm's start: a random file in `tmp/seed`, a fresh
/// opentracker that knows its info-hash, the torrent announcing to it
/// (UDP or HTTP), and a bt-fetch seeder that has announced.
struct Tracked {
    data: std::path::PathBuf,
    torrent: std::path::PathBuf,
    seeder: Fetch,
    /// Kept running while the swarm lives.
    _tracker: Opentracker,
}

fn tracked_seeder(
    tmp: &std::path::Path,
    name: &str,
    size: usize,
    content_seed: u64,
    piece: &str,
    udp: bool,
) -> Tracked {
    let data = single_file(&tmp.join("seed"), name, size, content_seed);
    let plain = make_torrent(&data, &tmp.join("plain.torrent"), piece);
    let meta = bt::metainfo::Metainfo::from_bytes(&std::fs::read(&plain).unwrap()).unwrap();
    let ot = Opentracker::start(&[&meta.info_hash_hex()]);
    let url = if udp { ot.udp() } else { ot.http() };
    let torrent = tmp.join("t.torrent");
    common::run_ok(
        common::bt_meta()
            .args(["create", "-q", "--no-date", "-l", piece, "-a", &url, "-o"])
            .arg(&torrent)
            .arg(&data),
    );
    let mut seeder = Fetch::local(
        "seeder",
        torrent.to_str().unwrap(),
        tmp.join("seed").to_str().unwrap(),
        &["--seed", "--announce"],
    );
    let a = seeder.wait_event("announce", Duration::from_secs(30));
    assert_eq!(a["tracker"], url.as_str());
    Tracked {
        data,
        torrent,
        seeder,
        _tracker: ot,
    }
}

fn swarm_through_tracker(udp: bool) {
    let tmp = temp("fetch-tracker");
    let mut swarm = tracked_seeder(tmp.path(), "t.bin", 5_000_000, 5, "256K", udp);
    let t = swarm.torrent.to_str().unwrap();
    let out = tmp.join("leech");
    let mut leech = Fetch::local(
        "leecher",
        t,
        out.to_str().unwrap(),
        &["--announce", "--timeout", "60"],
    );
    leech.close_stdin();
    let done = leech.finish(Duration::from_secs(70));
    assert_same(&swarm.data, &out.join("t.bin"));
    assert_eq!(done["status"], "ok");
    // The tracker handed each its own address too: dropped as ourselves.
    swarm.seeder.proc.signal(libc::SIGTERM);
    swarm.seeder.finish(Duration::from_secs(15));
}

#[test]
fn peers_from_http_tracker() {
    swarm_through_tracker(false);
}

#[test]
fn peers_from_udp_tracker() {
    swarm_through_tracker(true);
}

#[test]
fn bt_announce_follow_feeds_a_running_download() {
    let tmp = temp("fetch-follow");
    let mut swarm = tracked_seeder(tmp.path(), "f.bin", 4_000_000, 6, "128K", false);
    let t = swarm.torrent.to_str().unwrap();
    // bt-announce --follow | bt-fetch
    let mut follow = Proc::spawn(
        "bt-announce --follow",
        std::process::Command::new(env!("CARGO_BIN_EXE_bt-announce"))
            .args([t, "--follow", "--interval", "1", "--port", "1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    );
    let pipe = follow.child.stdout.take().unwrap();
    let out = tmp.join("leech");
    let mut leech = Fetch::start_with_stdin(
        "leecher",
        &[
            t,
            "-o",
            out.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--timeout",
            "60",
        ],
        std::process::Stdio::from(pipe),
    );
    leech.finish(Duration::from_secs(70));
    assert_same(&swarm.data, &out.join("f.bin"));
    drop(follow);
    swarm.seeder.proc.signal(libc::SIGTERM);
    swarm.seeder.finish(Duration::from_secs(15));
}

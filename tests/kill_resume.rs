//! kill -9 and restart, the short CI variant of `examples/kill-test.sh`:
//! a bt-fetch leecher downloading 32 MiB from a bt-fetch seeder limited to
//! 4 MiB/s is killed with SIGKILL 4 times mid-download and restarted.
//! Asserts: every piece a run reported (a `piece` event follows the
//! write) is found by the next run; the final data is byte-identical; the
//! bytes the seeder uploaded over all runs are at most the size plus, per
//! kill, the pieces the leecher can hold in flight (`--max-memory 4M` of
//! 256 KiB pieces: 16; a block is only requested into a piece holding a
//! buffer, so nothing else can be lost).

mod common;

use std::time::{Duration, Instant};

use common::peers::*;

const SIZE: usize = 32 << 20;
const PIECE: u64 = 256 << 10;
const KILLS: usize = 4;
const IN_FLIGHT: u64 = (4 << 20) / PIECE * PIECE;

#[test]
fn kill_9_mid_download_loses_at_most_the_pieces_in_flight() {
    let tmp = temp("kill-resume");
    let data = single_file(&tmp.join("seed"), "data.bin", SIZE, 11);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    let mut seeder = Fetch::local(
        "seeder",
        t,
        tmp.join("seed").to_str().unwrap(),
        &["--seed", "--max-upload-rate", "4M"],
    );
    let peer = format!("127.0.0.1:{}", seeder.port());
    let out = tmp.join("leech");
    let args = ["--peer", &peer, "--max-memory", "4M", "--timeout", "120"];
    // Kill moments from a seed printed for a rerun.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments from seed {seed}");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut reported = 0u64;
    for kill in 0..KILLS {
        let mut leech = Fetch::local("leecher", t, out.to_str().unwrap(), &args);
        let listening = leech.wait_event("listening", Duration::from_secs(60));
        let have = listening["have_pieces"].as_u64().unwrap();
        assert!(
            have >= reported,
            "run {kill}: {have} pieces found, {reported} were reported written"
        );
        // 0.4 to 1.2 s into the download (8 s at 4 MiB/s in all).
        let delay = Duration::from_millis(400 + next() % 800);
        let start = Instant::now();
        while start.elapsed() < delay {
            leech.pump(delay.saturating_sub(start.elapsed()));
        }
        assert!(
            leech.events_named("done").is_empty(),
            "run {kill} finished before its kill"
        );
        leech.proc.signal(libc::SIGKILL);
        let status = leech.proc.wait_exit(Duration::from_secs(10));
        assert!(status.is_some(), "the killed leecher did not exit");
        leech.pump(Duration::from_millis(100));
        let pieces = leech.events_named("piece").len() as u64;
        eprintln!("kill {kill} after {delay:?}: {have} pieces at start, {pieces} new");
        reported = have + pieces;
    }
    let mut leech = Fetch::local("leecher", t, out.to_str().unwrap(), &args);
    let listening = leech.wait_event("listening", Duration::from_secs(60));
    assert!(listening["have_pieces"].as_u64().unwrap() >= reported);
    leech.finish(Duration::from_secs(120));
    assert_same(&data, &out.join("data.bin"));
    let done = seeder.stop();
    let uploaded = done["uploaded"].as_u64().unwrap();
    let bound = SIZE as u64 + KILLS as u64 * IN_FLIGHT;
    eprintln!("uploaded {uploaded} for {SIZE} bytes (bound {bound})");
    assert!(uploaded >= SIZE as u64, "{done}");
    assert!(uploaded <= bound, "uploaded {uploaded} > bound {bound}");
}

//! kill -9 and restart, the short CI variant of `examples/kill-test.sh`:
//! a bt-fetch leecher downloading 32 MiB from a bt-fetch seeder limited to
//! 4 MiB/s is killed with SIGKILL 4 times mid-download and restarted.
//! Asserts: every piece a run reported (a `piece` event follows the
//! write) is found by the next run; the final data is byte-identical; the
//! bytes the seeder uploaded over all runs are at most the size plus, per
//! kill, the pieces the leecher can hold in flight (`--max-memory 4M` of
//! 256 KiB pieces: 16; a block is only requested into a piece holding a
//! buffer, so nothing else can be lost); the restart after the last kill
//! rechecks fewer than all pieces (the resume file's pieces stay trusted,
//! only those the killed run may have written since are hashed). A second
//! test: after a kill, a file changed by someone else is still rechecked
//! whole.

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
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &["--max-upload-rate", "4M"]);
    let peer = format!("127.0.0.1:{}", seeder.port());
    let out = tmp.join("leech");
    let args = ["--peer", &peer, "--max-memory", "4M", "--timeout", "120"];
    // Kill moments from a seed printed for a rerun.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments from seed {seed}");
    let mut rng = common::hostile::Xorshift(seed | 1);
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
        let delay = Duration::from_millis(400 + rng.next_u64() % 800);
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
    // Four runs in, the resume file vouches for pieces: not all rehashed.
    let pieces = listening["pieces"].as_u64().unwrap();
    let rechecked = listening["rechecked_pieces"].as_u64().unwrap();
    eprintln!("last restart: {listening}");
    assert!(rechecked < pieces, "{listening}");
    assert!(
        ["partial", "trusted"].contains(&listening["resume"].as_str().unwrap()),
        "{listening}"
    );
    leech.finish(Duration::from_secs(120));
    assert_same(&data, &out.join("data.bin"));
    let done = seeder.stop();
    let uploaded = done["uploaded"].as_u64().unwrap();
    let bound = SIZE as u64 + KILLS as u64 * IN_FLIGHT;
    eprintln!("uploaded {uploaded} for {SIZE} bytes (bound {bound})");
    assert!(uploaded >= SIZE as u64, "{done}");
    assert!(uploaded <= bound, "uploaded {uploaded} > bound {bound}");
}

#[test]
fn after_kill_9_a_file_changed_by_someone_else_is_rechecked_whole() {
    let tmp = temp("kill-tamper");
    let data = single_file(&tmp.join("seed"), "data.bin", SIZE, 12);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    // 2 MiB/s: 16 s for the file, so that the kill after 7 s (a periodic
    // save of the resume file came at 5 s) is mid-download.
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &["--max-upload-rate", "2M"]);
    let peer = format!("127.0.0.1:{}", seeder.port());
    let out = tmp.join("leech");
    let args = ["--peer", &peer, "--timeout", "120"];
    let mut leech = Fetch::local("leecher", t, out.to_str().unwrap(), &args);
    leech.wait_event("listening", Duration::from_secs(60));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(7) {
        leech.pump(Duration::from_secs(7).saturating_sub(start.elapsed()));
    }
    assert!(
        leech.events_named("done").is_empty(),
        "finished before the kill"
    );
    leech.proc.signal(libc::SIGKILL);
    assert!(leech.proc.wait_exit(Duration::from_secs(10)).is_some());
    let resume = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".bt-resume"))
        .expect("a resume file");
    let state = bt::resume::decode(&std::fs::read(&resume).unwrap()).unwrap();
    assert!(!state.clean, "a periodic save");
    let piece = state
        .have
        .ones()
        .next()
        .expect("a piece in the resume file");
    // Someone else damages a piece the resume file vouches for, later than
    // our writes could land (the mtime set forward stands for waiting).
    let path = out.join("data.bin");
    let mut content = std::fs::read(&path).unwrap();
    content[piece * PIECE as usize + 9] ^= 0x5a;
    std::fs::write(&path, &content).unwrap();
    let later =
        std::time::SystemTime::now() + bt::resume::OUR_WRITES_WITHIN + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let mut leech = Fetch::local("leecher 2", t, out.to_str().unwrap(), &args);
    let listening = leech.wait_event("listening", Duration::from_secs(60));
    assert_eq!(listening["resume"], "checked", "{listening}");
    assert_eq!(listening["resume_reason"], "file_changed", "{listening}");
    assert_eq!(listening["rechecked_pieces"], listening["pieces"]);
    leech.finish(Duration::from_secs(120));
    assert_same(&data, &path);
    seeder.stop();
}

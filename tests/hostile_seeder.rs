//! A bt-fetch seeder under attack keeps serving a good leecher, with
//! bounded memory. The attackers (tests/common/hostile.rs) drive raw
//! sockets and reconnect whenever the seeder closes them.
//!
//! Before the half-open budget and handshake deadlines, a slowloris or a
//! connection flood filled every peer slot and the good leecher timed out
//! at 60 s (0.2 s without the attack); the bounds below fail on that
//! build.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::hostile::{peak_rss, Attack, Attacker, Target};
use common::peers::*;

/// The good leecher's download, and the bound it must finish within
/// while an attack runs.
const FILE_LEN: usize = 16 << 20;
const DOWNLOAD_BOUND: Duration = Duration::from_secs(20);
/// The seeder's peak resident memory under attack.
const RSS_BOUND: u64 = 64 << 20;
/// How long the attack runs before the good leecher starts: long enough
/// for a flood to be in place.
const HEAD_START: Duration = Duration::from_secs(3);

struct Seeded {
    _tmp: common::TempDir,
    data: PathBuf,
    torrent: PathBuf,
    seeder: Fetch,
    target: Target,
}

fn seeder(label: &str) -> Seeded {
    let tmp = temp(label);
    let data = single_file(&tmp.join("seed"), "h.bin", FILE_LEN, 16);
    let torrent = make_torrent(&data, &tmp.join("h.torrent"), "256K");
    let meta = bt::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let mut seeder = Fetch::seeder(&torrent, &tmp.join("seed"), &[]);
    let port = seeder.port();
    let target = Target {
        addr: ([127, 0, 0, 1], port).into(),
        info_hash: meta.info_hash,
        pieces: meta.info.piece_count() as u32,
        piece_length: meta.info.piece_length as u32,
    };
    Seeded {
        _tmp: tmp,
        data,
        torrent,
        seeder,
        target,
    }
}

/// A good bt-fetch leecher against the seeder; returns how long it took.
fn bt_fetch_leech(s: &Seeded, out: &Path) -> Duration {
    let started = Instant::now();
    let peer = s.target.addr.to_string();
    let mut leech = Fetch::local(
        "good leecher",
        s.torrent.to_str().unwrap(),
        out.to_str().unwrap(),
        &["--peer", &peer, "--timeout", "60"],
    );
    leech.finish(Duration::from_secs(70));
    let took = started.elapsed();
    assert_same(&s.data, &out.join("h.bin"));
    took
}

/// Runs `attack` with `connections`, a good leecher in the middle of it,
/// and checks the download time and the seeder's peak memory; returns
/// how many attacking connections the seeder closed.
fn survives(attack: Attack, connections: usize) -> u64 {
    let mut s = seeder(&format!("hostile-{}", attack.name()));
    let mut attacker = Attacker::start(attack, s.target, connections);
    std::thread::sleep(HEAD_START);
    let out = s._tmp.join("leech");
    let took = bt_fetch_leech(&s, &out);
    let connects = attacker.connects();
    attacker.stop();
    let peak = peak_rss(s.seeder.proc.pid()).expect("seeder's /proc status");
    eprintln!(
        "{}: good leecher {:.2} s, seeder peak RSS {:.1} MiB, attacker connections {connects}, closed by the seeder {}",
        attack.name(),
        took.as_secs_f64(),
        peak as f64 / (1 << 20) as f64,
        attacker.closed_by_target()
    );
    assert!(connects > 0, "the attacker never connected");
    assert!(
        took <= DOWNLOAD_BOUND,
        "{}: the good leecher took {took:?} (bound {DOWNLOAD_BOUND:?})",
        attack.name()
    );
    assert!(
        peak <= RSS_BOUND,
        "{}: seeder peak RSS {peak} bytes (bound {RSS_BOUND})",
        attack.name()
    );
    s.seeder.proc.signal(libc::SIGTERM);
    s.seeder.finish(Duration::from_secs(15));
    attacker.closed_by_target()
}

#[test]
fn slowloris_of_1000_connections_does_not_starve_a_good_leecher() {
    survives(Attack::Slowloris, 1000);
}

#[test]
fn flood_of_1000_silent_connections_does_not_starve_a_good_leecher() {
    survives(Attack::Flood, 1000);
}

/// MSE is accepted at the default settings: every garbage opening costs
/// the seeder a Diffie-Hellman key before it can tell it is garbage.
#[test]
fn flood_of_garbage_mse_handshakes_does_not_starve_a_good_leecher() {
    let closed = survives(Attack::MseGarbage, 300);
    // The seeder saw through them (no sync marker within its bound) and
    // closed them, over and over, while the leecher was served.
    assert!(closed >= 300, "only {closed} garbage connections closed");
}

/// The single-connection attacks one after another against one seeder,
/// each with a good leecher downloading meanwhile.
#[test]
fn message_attacks_do_not_starve_a_good_leecher_nor_grow_memory() {
    let mut s = seeder("hostile-messages");
    for attack in Attack::ALL.into_iter().filter(|a| !a.is_mass()) {
        let mut attacker = Attacker::start(attack, s.target, 1);
        std::thread::sleep(Duration::from_millis(500));
        let out = s._tmp.join(format!("leech-{}", attack.name()));
        let took = bt_fetch_leech(&s, &out);
        let connects = attacker.connects();
        let sent = attacker
            .counts
            .sent
            .load(std::sync::atomic::Ordering::Relaxed);
        attacker.stop();
        eprintln!(
            "{}: good leecher {:.2} s, attacker connections {connects}, bytes sent {sent}",
            attack.name(),
            took.as_secs_f64()
        );
        assert!(
            connects > 0 && sent > 68,
            "{}: never attacked",
            attack.name()
        );
        assert!(
            took <= DOWNLOAD_BOUND,
            "{}: the good leecher took {took:?}",
            attack.name()
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    let peak = peak_rss(s.seeder.proc.pid()).expect("seeder's /proc status");
    assert!(peak <= RSS_BOUND, "seeder peak RSS {peak} bytes");
    s.seeder.proc.signal(libc::SIGTERM);
    s.seeder.finish(Duration::from_secs(15));
}

/// The same slowloris with a libtorrent leecher as the good peer.
#[test]
fn slowloris_does_not_starve_a_libtorrent_leecher() {
    let s = seeder("hostile-lt");
    let mut attacker = Attacker::start(Attack::Slowloris, s.target, 1000);
    std::thread::sleep(HEAD_START);
    let out = s._tmp.join("lt");
    std::fs::create_dir_all(&out).unwrap();
    let started = Instant::now();
    let mut lt = LtPeer::start("leech", &s.torrent, &out, &[s.target.addr.to_string()]);
    lt.wait_line("done", DOWNLOAD_BOUND + Duration::from_secs(30));
    let took = started.elapsed();
    attacker.stop();
    assert_same(&s.data, &out.join("h.bin"));
    eprintln!(
        "libtorrent leecher under slowloris: {:.2} s",
        took.as_secs_f64()
    );
    assert!(
        took <= DOWNLOAD_BOUND + Duration::from_secs(5),
        "the libtorrent leecher took {took:?}"
    );
}

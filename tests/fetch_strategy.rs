//! `bt-fetch --strategy bittyrant|propshare` against real peers: a
//! strategic leecher completes from a libtorrent seeder
//! (python3-libtorrent; missing, the test fails naming it), and strategic
//! leechers trade pieces with each other around a slow bt-fetch seeder,
//! with and without --max-upload-rate (then the strategy estimates its
//! capacity).

mod common;

use std::time::Duration;

use common::peers::*;

const LIMIT: Duration = Duration::from_secs(180);

fn from_libtorrent(strategy: &str) {
    let tmp = temp(&format!("fetch-strategy-lt-{strategy}"));
    let data = single_file(&tmp.join("seed"), "s.bin", 8 << 20, 31);
    let torrent = make_torrent(&data, &tmp.join("s.torrent"), "256K");
    let lt = LtPeer::start("seed", &torrent, &tmp.join("seed"), &[]);
    let out = tmp.join("leech");
    let mut leech = Fetch::leech_from(
        &format!("{strategy} leecher"),
        &torrent,
        &out,
        lt.port,
        &["--strategy", strategy],
    );
    let done = leech.finish(LIMIT);
    assert_eq!(done["status"], "ok", "{done}");
    assert_same(&data, &out.join("s.bin"));
}

#[test]
fn bittyrant_leecher_completes_from_libtorrent() {
    from_libtorrent("bittyrant");
}

#[test]
fn propshare_leecher_completes_from_libtorrent() {
    from_libtorrent("propshare");
}

#[test]
fn strategic_leechers_trade_with_each_other() {
    let tmp = temp("fetch-strategy-swarm");
    let data = single_file(&tmp.join("seed"), "swarm.bin", 16 << 20, 32);
    let torrent = make_torrent(&data, &tmp.join("s.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    // A slow seeder (one slot, 2 MB/s): leechers must trade.
    let mut seeder = Fetch::seeder(
        t,
        &tmp.join("seed"),
        &["--upload-slots", "1", "--max-upload-rate", "2M"],
    );
    let seed_port = seeder.port();
    let setups: [&[&str]; 4] = [
        &["--strategy", "bittyrant", "--max-upload-rate", "4M"],
        &["--strategy", "propshare", "--max-upload-rate", "4M"],
        &["--strategy", "bittyrant"],
        &["--strategy", "propshare"],
    ];
    let flags: Vec<Vec<&str>> = setups
        .iter()
        .map(|extra| [&["--seed-ratio", "0.5"][..], extra].concat())
        .collect();
    let mut leechers = leecher_swarm(tmp.path(), t, seed_port, &flags);
    let uploaded = finish_swarm(&mut leechers, tmp.path(), &data, "swarm.bin", LIMIT);
    let total: u64 = uploaded.iter().sum();
    assert!(total > 8 << 20, "leechers traded only {uploaded:?}");
    assert!(
        uploaded.iter().filter(|&&u| u > 0).count() >= 3,
        "most strategic leechers uploaded: {uploaded:?}"
    );
    seeder.proc.signal(libc::SIGINT);
    seeder.finish(Duration::from_secs(10));
}

//! bt-fetch and libtorrent (python3-libtorrent) in both directions.

mod common;

use std::time::Duration;

use common::peers::*;

const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn download_from_libtorrent_seeder_single_file() {
    let tmp = temp("fetch-lt-single");
    let data = single_file(&tmp.join("seed"), "lt.bin", 20 << 20, 21);
    let torrent = make_torrent(&data, &tmp.join("lt.torrent"), "1M");
    let lt = LtPeer::start("seed", &torrent, &tmp.join("seed"), &[]);
    let out = tmp.join("leech");
    let mut leech = Fetch::leech_from("leecher", &torrent, &out, lt.port, &[]);
    let done = leech.finish(LIMIT);
    assert_same(&data, &out.join("lt.bin"));
    assert_eq!(done["wasted"], 0, "{done}");
    let c = leech.events_named("peer_connected");
    assert!(
        c[0]["client"].as_str().unwrap().contains("libtorrent"),
        "{c:?}"
    );
}

#[test]
fn download_from_libtorrent_seeder_multi_file() {
    let tmp = temp("fetch-lt-multi");
    let root = multi_file(&tmp.join("seed"), "tree", 30);
    let torrent = make_torrent(&root, &tmp.join("tree.torrent"), "128K");
    let lt = LtPeer::start("seed", &torrent, &tmp.join("seed"), &[]);
    let out = tmp.join("leech");
    let mut leech = Fetch::local(
        "leecher",
        torrent.to_str().unwrap(),
        out.to_str().unwrap(),
        &[],
    );
    // The peer arrives on stdin as bt-announce prints it.
    leech.send_line(&format!(
        "{{\"ip\":\"127.0.0.1\",\"port\":{},\"tracker\":\"x\"}}",
        lt.port
    ));
    leech.finish(LIMIT);
    assert_same(&root, &out.join("tree"));
}

#[test]
fn libtorrent_downloads_from_bt_seeder() {
    let tmp = temp("fetch-lt-upload");
    let root = multi_file(&tmp.join("seed"), "tree", 40);
    let torrent = make_torrent(&root, &tmp.join("tree.torrent"), "256K");
    let mut seeder = Fetch::seeder(&torrent, &tmp.join("seed"), &[]);
    let port = seeder.port();
    let out = tmp.join("lt");
    std::fs::create_dir_all(&out).unwrap();
    let mut lt = LtPeer::start("leech", &torrent, &out, &[format!("127.0.0.1:{port}")]);
    lt.wait_line("done", LIMIT);
    assert_same(&root, &out.join("tree"));
    let done = seeder.stop();
    assert!(done["uploaded"].as_u64().unwrap() >= 10_434_691, "{done}");
}

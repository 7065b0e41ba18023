//! The test rig itself: each reference client downloads from libtorrent and
//! seeds to libtorrent, driven exactly as the interop tests drive them
//! (tests/common/clients.rs). When one of these fails, the interop tests'
//! failures with that client say nothing about bt.

mod common;

use common::clients::*;
use common::peers::*;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// A 3 MiB + 1 byte file and its torrent (64 KiB pieces) under `tmp/seed`.
fn setup(tmp: &TempDir) -> (PathBuf, PathBuf) {
    let file = single_file(&tmp.join("seed"), "payload.bin", 3 * 1024 * 1024 + 1, 99);
    let torrent = make_torrent(&file, &tmp.join("payload.torrent"), "64K");
    (torrent, file)
}

#[test]
fn aria2_downloads_from_libtorrent() {
    let tmp = TempDir::new("rig-aria2-leech");
    let (torrent, file) = setup(&tmp);
    let (mut leech, port) = aria2(false, &torrent, &tmp.join("out"));
    let _seed = LtPeer::start(
        "seed",
        &torrent,
        &tmp.join("seed"),
        &[format!("127.0.0.1:{port}")],
    );
    let status = leech.wait_exit(LIMIT).expect("aria2 finishes");
    assert!(status.success(), "aria2 exited with {status}");
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn libtorrent_downloads_from_aria2() {
    let tmp = TempDir::new("rig-aria2-seed");
    let (torrent, file) = setup(&tmp);
    let (_seed, port) = aria2(true, &torrent, &tmp.join("seed"));
    let mut leech = LtPeer::start(
        "leech",
        &torrent,
        &tmp.join("out"),
        &[format!("127.0.0.1:{port}")],
    );
    leech.wait_line("done", LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn transmission_downloads_from_libtorrent() {
    let tmp = TempDir::new("rig-tr-leech");
    let (torrent, file) = setup(&tmp);
    std::fs::create_dir_all(tmp.join("out")).unwrap();
    let tr = transmission(&tmp.join("cfg"), &torrent, &tmp.join("out"));
    let _seed = LtPeer::start(
        "seed",
        &torrent,
        &tmp.join("seed"),
        &[format!("127.0.0.1:{}", tr.port)],
    );
    tr.wait_finished(LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn libtorrent_downloads_from_transmission() {
    let tmp = TempDir::new("rig-tr-seed");
    let (torrent, file) = setup(&tmp);
    let tr = transmission(&tmp.join("cfg"), &torrent, &tmp.join("seed"));
    let mut leech = LtPeer::start(
        "leech",
        &torrent,
        &tmp.join("out"),
        &[format!("127.0.0.1:{}", tr.port)],
    );
    leech.wait_line("done", LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn default_transmission_downloads_from_libtorrent() {
    let tmp = TempDir::new("rig-trd-leech");
    let (torrent, file) = setup(&tmp);
    std::fs::create_dir_all(tmp.join("out")).unwrap();
    let tr = transmission_default(&tmp.join("cfg"), &torrent, &tmp.join("out"));
    let _seed = LtPeer::start(
        "seed",
        &torrent,
        &tmp.join("seed"),
        &[format!("127.0.0.1:{}", tr.port)],
    );
    tr.wait_finished(LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn libtorrent_downloads_from_default_transmission() {
    let tmp = TempDir::new("rig-trd-seed");
    let (torrent, file) = setup(&tmp);
    let tr = transmission_default(&tmp.join("cfg"), &torrent, &tmp.join("seed"));
    let mut leech = LtPeer::start(
        "leech",
        &torrent,
        &tmp.join("out"),
        &[format!("127.0.0.1:{}", tr.port)],
    );
    leech.wait_line("done", LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn qbittorrent_downloads_from_libtorrent() {
    let tmp = TempDir::new("rig-qb-leech");
    let (torrent, file) = setup(&tmp);
    let qb = qbittorrent(&tmp.join("qb"), &torrent, &tmp.join("out"));
    let _seed = LtPeer::start(
        "seed",
        &torrent,
        &tmp.join("seed"),
        &[format!("127.0.0.1:{}", qb.port)],
    );
    qb.wait_seeding(LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn libtorrent_downloads_from_qbittorrent() {
    let tmp = TempDir::new("rig-qb-seed");
    let (torrent, file) = setup(&tmp);
    let qb = qbittorrent(&tmp.join("qb"), &torrent, &tmp.join("seed"));
    qb.wait_seeding(LIMIT);
    let mut leech = LtPeer::start(
        "leech",
        &torrent,
        &tmp.join("out"),
        &[format!("127.0.0.1:{}", qb.port)],
    );
    leech.wait_line("done", LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

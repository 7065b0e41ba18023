//! The test rig itself: each reference client downloads from libtorrent and
//! seeds to libtorrent, driven exactly as the interop tests drive them. When
//! one of these fails, the interop tests' failures with that client say
//! nothing about bt.

mod common;

use common::clients::*;
use common::*;
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

/// A 3 MiB + 1 byte file and its torrent (64 KiB pieces) under `tmp/seed`.
fn make_torrent(tmp: &TempDir) -> (std::path::PathBuf, Vec<u8>) {
    let data = random_bytes(99, 3 * 1024 * 1024 + 1);
    std::fs::create_dir_all(tmp.join("seed")).unwrap();
    std::fs::write(tmp.join("seed/payload.bin"), &data).unwrap();
    let torrent = tmp.join("payload.torrent");
    run_ok(
        bt_meta()
            .arg("create")
            .arg(tmp.join("seed/payload.bin"))
            .args(["-l", "64K", "--no-date", "-q", "-o"])
            .arg(&torrent),
    );
    (torrent, data)
}

fn assert_same(path: &Path, data: &[u8]) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        got == data,
        "{} differs from the seeded data",
        path.display()
    );
}

#[test]
fn aria2_downloads_from_libtorrent() {
    let tmp = TempDir::new("ref-aria2-leech");
    let (torrent, data) = make_torrent(&tmp);
    let port = free_port();
    let mut leech = aria2_leech(&torrent, &tmp.join("out"), port);
    let (_seed, _) = libtorrent(
        &torrent,
        &tmp.join("seed"),
        true,
        &[format!("127.0.0.1:{port}")],
    );
    assert!(leech.wait_exit(TIMEOUT).success());
    assert_same(&tmp.join("out/payload.bin"), &data);
}

#[test]
fn libtorrent_downloads_from_aria2() {
    let tmp = TempDir::new("ref-aria2-seed");
    let (torrent, data) = make_torrent(&tmp);
    let port = free_port();
    let _seed = aria2_seed(&torrent, &tmp.join("seed"), port);
    let (mut leech, _) = libtorrent(
        &torrent,
        &tmp.join("out"),
        false,
        &[format!("127.0.0.1:{port}")],
    );
    libtorrent_wait_done(&mut leech, TIMEOUT);
    assert_same(&tmp.join("out/payload.bin"), &data);
}

#[test]
fn transmission_downloads_from_libtorrent() {
    let tmp = TempDir::new("ref-tr-leech");
    let (torrent, data) = make_torrent(&tmp);
    std::fs::create_dir_all(tmp.join("out")).unwrap();
    let tr = Transmission::start(&torrent, &tmp.join("out"), &tmp.join("tr-config"));
    let (_seed, _) = libtorrent(
        &torrent,
        &tmp.join("seed"),
        true,
        &[format!("127.0.0.1:{}", tr.port)],
    );
    wait_until("Transmission to finish", TIMEOUT, || tr.finished());
    assert_same(&tmp.join("out/payload.bin"), &data);
}

#[test]
fn libtorrent_downloads_from_transmission() {
    let tmp = TempDir::new("ref-tr-seed");
    let (torrent, data) = make_torrent(&tmp);
    let tr = Transmission::start(&torrent, &tmp.join("seed"), &tmp.join("tr-config"));
    let (mut leech, _) = libtorrent(
        &torrent,
        &tmp.join("out"),
        false,
        &[format!("127.0.0.1:{}", tr.port)],
    );
    libtorrent_wait_done(&mut leech, TIMEOUT);
    assert_same(&tmp.join("out/payload.bin"), &data);
}

#[test]
fn qbittorrent_downloads_from_libtorrent() {
    let tmp = TempDir::new("ref-qb-leech");
    let (torrent, data) = make_torrent(&tmp);
    let qb = Qbittorrent::start(&tmp.join("qb"));
    qb.add(&torrent, &tmp.join("out"));
    let (_seed, _) = libtorrent(
        &torrent,
        &tmp.join("seed"),
        true,
        &[format!("127.0.0.1:{}", qb.port)],
    );
    wait_until("qBittorrent to finish", TIMEOUT, || qb.complete());
    assert_same(&tmp.join("out/payload.bin"), &data);
}

#[test]
fn libtorrent_downloads_from_qbittorrent() {
    let tmp = TempDir::new("ref-qb-seed");
    let (torrent, data) = make_torrent(&tmp);
    let qb = Qbittorrent::start(&tmp.join("qb"));
    qb.add(&torrent, &tmp.join("seed"));
    wait_until("qBittorrent to check its data", TIMEOUT, || qb.complete());
    let (mut leech, _) = libtorrent(
        &torrent,
        &tmp.join("out"),
        false,
        &[format!("127.0.0.1:{}", qb.port)],
    );
    libtorrent_wait_done(&mut leech, TIMEOUT);
    assert_same(&tmp.join("out/payload.bin"), &data);
}

//! The test rig itself: each reference client downloads from libtorrent and
//! seeds to libtorrent, driven exactly as the interop tests drive them
//! (tests/common/clients.rs). When one of these fails, the interop tests'
//! failures with that client say nothing about bt.

mod common;

use common::clients::*;
use common::peers::*;
use common::*;
use std::any::Any;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// A client under test that is running: the port it listens on, and how to
/// wait until it has the whole file (after which it is dropped).
struct Running {
    port: u16,
    wait_done: Box<dyn FnOnce()>,
}

/// A client seeding: its port and the handle that keeps it alive.
struct Seeding {
    port: u16,
    _keep: Box<dyn Any>,
}

/// A 3 MiB + 1 byte file and its torrent (64 KiB pieces) under `tmp/seed`;
/// `start_client(torrent, out)` starts a leecher into `out`, a libtorrent
/// seeder is pointed at it, and the result must equal the file.
fn downloads_from_libtorrent(label: &str, start_client: impl FnOnce(&Path, &Path) -> Running) {
    let tmp = TempDir::new(label);
    let file = single_file(&tmp.join("seed"), "payload.bin", 3 * 1024 * 1024 + 1, 99);
    let torrent = make_torrent(&file, &tmp.join("payload.torrent"), "64K");
    std::fs::create_dir_all(tmp.join("out")).unwrap();
    let client = start_client(&torrent, &tmp.join("out"));
    let _seed = LtPeer::start(
        "seed",
        &torrent,
        &tmp.join("seed"),
        &[format!("127.0.0.1:{}", client.port)],
    );
    (client.wait_done)();
    assert_same(&file, &tmp.join("out/payload.bin"));
}

/// The same file seeded by `start_client(torrent, seed_dir)`; a libtorrent
/// leecher downloads it.
fn seeds_to_libtorrent(label: &str, start_client: impl FnOnce(&Path, &Path) -> Seeding) {
    let tmp = TempDir::new(label);
    let file = single_file(&tmp.join("seed"), "payload.bin", 3 * 1024 * 1024 + 1, 99);
    let torrent = make_torrent(&file, &tmp.join("payload.torrent"), "64K");
    let client = start_client(&torrent, &tmp.join("seed"));
    let mut leech = LtPeer::start(
        "leech",
        &torrent,
        &tmp.join("out"),
        &[format!("127.0.0.1:{}", client.port)],
    );
    leech.wait_line("done", LIMIT);
    assert_same(&file, &tmp.join("out/payload.bin"));
}

#[test]
fn aria2_downloads_from_libtorrent() {
    downloads_from_libtorrent("rig-aria2-leech", |torrent, out| {
        let (mut leech, port) = aria2(false, torrent, out);
        let wait_done = Box::new(move || {
            let status = leech.wait_exit(LIMIT).expect("aria2 finishes");
            assert!(status.success(), "aria2 exited with {status}");
        });
        Running { port, wait_done }
    });
}

#[test]
fn libtorrent_downloads_from_aria2() {
    seeds_to_libtorrent("rig-aria2-seed", |torrent, seed| {
        let (proc, port) = aria2(true, torrent, seed);
        Seeding {
            port,
            _keep: Box::new(proc),
        }
    });
}

fn transmission_leeching(tr: Transmission) -> Running {
    let port = tr.port;
    Running {
        port,
        wait_done: Box::new(move || tr.wait_finished(LIMIT)),
    }
}

fn transmission_seeding(tr: Transmission) -> Seeding {
    Seeding {
        port: tr.port,
        _keep: Box::new(tr),
    }
}

#[test]
fn transmission_downloads_from_libtorrent() {
    downloads_from_libtorrent("rig-tr-leech", |torrent, out| {
        transmission_leeching(transmission(&out.with_file_name("cfg"), torrent, out))
    });
}

#[test]
fn libtorrent_downloads_from_transmission() {
    seeds_to_libtorrent("rig-tr-seed", |torrent, seed| {
        transmission_seeding(transmission(&seed.with_file_name("cfg"), torrent, seed))
    });
}

#[test]
fn default_transmission_downloads_from_libtorrent() {
    downloads_from_libtorrent("rig-trd-leech", |torrent, out| {
        transmission_leeching(transmission_default(
            &out.with_file_name("cfg"),
            torrent,
            out,
        ))
    });
}

#[test]
fn libtorrent_downloads_from_default_transmission() {
    seeds_to_libtorrent("rig-trd-seed", |torrent, seed| {
        transmission_seeding(transmission_default(
            &seed.with_file_name("cfg"),
            torrent,
            seed,
        ))
    });
}

#[test]
fn qbittorrent_downloads_from_libtorrent() {
    downloads_from_libtorrent("rig-qb-leech", |torrent, out| {
        let qb = qbittorrent(&out.with_file_name("qb"), torrent, out);
        let port = qb.port;
        Running {
            port,
            wait_done: Box::new(move || qb.wait_seeding(LIMIT)),
        }
    });
}

#[test]
fn libtorrent_downloads_from_qbittorrent() {
    seeds_to_libtorrent("rig-qb-seed", |torrent, seed| {
        let qb = qbittorrent(&seed.with_file_name("qb"), torrent, seed);
        qb.wait_seeding(LIMIT);
        Seeding {
            port: qb.port,
            _keep: Box::new(qb),
        }
    });
}

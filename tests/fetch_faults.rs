//! Local faults are ours, never the peer's: a full disk, a read-only
//! folder and an output file deleted during the download each stop
//! bt-fetch at once with exit 6 and a reason naming the file and the OS
//! error; no piece is reported as failing its hash, no peer is banned, and
//! a rerun after the fault is fixed completes with the right data.
//!
//! The disk is a small tmpfs the test mounts (so it runs as root, as CI
//! does) and unmounts, also on failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::*;

const LIMIT: Duration = Duration::from_secs(60);
const SIZE: usize = 8 << 20;

/// A tmpfs mounted for the test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        require("mount", "mount");
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test mounts a tmpfs: run it as root (as .ci/run does in CI)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let opts = format!("size={size},mode=0755");
        mount(&["-t", "tmpfs", "-o", &opts, "tmpfs", dir.to_str().unwrap()]);
        Tmpfs(dir.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        mount(&["-o", &format!("remount,{opts}"), self.0.to_str().unwrap()]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str]) {
    let st = Command::new("mount")
        .args(args)
        .status()
        .expect("run mount");
    assert!(st.success(), "mount {args:?} failed");
}

/// A bt-fetch seeder of an 8 MiB file, upload limited to `rate` (bytes/s,
/// 0: unlimited); the torrent path and the seeder.
fn seeder(tmp: &Path, rate: &str) -> (PathBuf, PathBuf, Fetch) {
    let data = single_file(&tmp.join("seed"), "data.bin", SIZE, 7);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "256K");
    let mut extra = vec![];
    if rate != "0" {
        extra.extend(["--max-upload-rate", rate]);
    }
    let s = Fetch::seeder(&torrent, &tmp.join("seed"), &extra);
    (data, torrent, s)
}

fn leecher(torrent: &Path, out: &Path, port: u16) -> Fetch {
    Fetch::leech_from("leecher", torrent, out, port, &[])
}

/// Waits for the leecher to end with exit 6 and checks the fault was
/// reported as ours: the reason names `expect`, nobody was blamed.
fn assert_local_fault(l: &mut Fetch, expect: &str) {
    let done = l.wait_event("done", LIMIT);
    let status = l.proc.wait_exit(Duration::from_secs(10));
    let err = l.stderr_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(6),
        "exit 6 for a local fault\n{err}"
    );
    assert_eq!(done["status"], "failed");
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(expect),
        "reason {reason:?} names {expect:?}"
    );
    assert!(
        reason.contains("data.bin"),
        "reason {reason:?} names the file"
    );
    assert!(err.contains(expect), "stderr says {expect:?}:\n{err}");
    assert_eq!(done["hash_failures"], 0, "no piece blamed on a peer");
    assert!(l.events_named("hash_failed").is_empty(), "{err}");
    assert!(l.events_named("peer_banned").is_empty(), "{err}");
}

/// Waits until the leecher has verified at least one piece.
fn wait_first_piece(l: &mut Fetch) {
    l.wait_event("piece", LIMIT);
}

#[test]
fn full_disk_stops_blames_nobody_and_resumes() {
    let tmp = temp("fault-full");
    let (data, torrent, mut s) = seeder(tmp.path(), "0");
    let port = s.port();
    let out = tmp.join("out");
    let fs = Tmpfs::mount(&out, "3m");
    let mut l = leecher(&torrent, &out, port);
    assert_local_fault(&mut l, "No space left on device");
    // Room again: the rerun keeps what was written and completes.
    fs.remount("size=32m");
    let mut again = leecher(&torrent, &out, port);
    let started = again.wait_event("listening", LIMIT);
    assert!(
        started["have_pieces"].as_u64().unwrap() > 0,
        "pieces written before the fault were kept: {started}"
    );
    again.finish(LIMIT);
    assert_same(&data, &out.join("data.bin"));
    drop(fs);
}

/// The output folder is read-only when the file is first opened for
/// writing. (Making a folder read-only under a file already open for
/// writing cannot fail its writes: as root a remount is refused while
/// files are open, and an open descriptor keeps its access.)
#[test]
fn read_only_folder() {
    let tmp = temp("fault-ro");
    let (data, torrent, mut s) = seeder(tmp.path(), "0");
    let port = s.port();
    let out = tmp.join("out");
    let fs = Tmpfs::mount(&out, "32m");
    // A read-only view of the same tmpfs on top of it.
    let dir = out.to_str().unwrap();
    mount(&["--bind", dir, dir]);
    let ro = Tmpfs(out.clone());
    mount(&["-o", "remount,bind,ro", dir]);
    let mut l = leecher(&torrent, &out, port);
    assert_local_fault(&mut l, "Read-only file system");
    drop(ro); // the writable tmpfs shows again
    std::thread::sleep(Duration::from_millis(200));
    let mut again = leecher(&torrent, &out, port);
    again.finish(LIMIT);
    assert_same(&data, &out.join("data.bin"));
    drop(fs);
}

#[test]
fn output_file_deleted_mid_download() {
    let tmp = temp("fault-deleted");
    let (data, torrent, mut s) = seeder(tmp.path(), "2M");
    let port = s.port();
    let out = tmp.join("out");
    let mut l = leecher(&torrent, &out, port);
    wait_first_piece(&mut l);
    let deleted_at = Instant::now();
    std::fs::remove_file(out.join("data.bin")).unwrap();
    assert_local_fault(&mut l, "deleted");
    assert!(
        deleted_at.elapsed() < Duration::from_secs(5),
        "noticed within a few seconds"
    );
    let mut again = leecher(&torrent, &out, port);
    again.finish(LIMIT);
    assert_same(&data, &out.join("data.bin"));
}

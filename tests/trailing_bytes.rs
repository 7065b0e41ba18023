//! Leniency where real clients are lenient: a torrent file with bytes after
//! its top-level dictionary (a newline, say) is read with a warning by
//! bt-meta, bt-verify and bt-fetch, as Transmission and aria2 do; `--strict`
//! refuses it with exit 3.

mod common;

use std::process::{Output, Stdio};

use common::peers::bt_fetch_cmd;
use common::*;

/// alice.torrent with a newline appended, and a folder holding its data.
fn setup(label: &str) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = TempDir::new(label);
    let mut bytes = std::fs::read(fixtures().join("alice.torrent")).unwrap();
    bytes.extend_from_slice(b"\n");
    let torrent = tmp.join("alice.torrent");
    std::fs::write(&torrent, &bytes).unwrap();
    let data = tmp.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(fixtures().join("alice.txt"), data.join("alice.txt")).unwrap();
    (tmp, torrent, data)
}

fn lenient(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(
        err.contains("warning") && err.contains("1 byte after the torrent's top-level dictionary"),
        "{err}"
    );
}

fn strict(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("alice.torrent") && err.contains("trailing data"),
        "{err}"
    );
}

#[test]
fn bt_meta_reads_trailing_bytes_with_a_warning_and_strict_refuses() {
    let (_tmp, torrent, _) = setup("trail-meta");
    let out = run(bt_meta().arg("info").arg(&torrent));
    lenient(&out);
    let ours = json(&out.stdout);
    let clean = json(&run(bt_meta().arg("info").arg(fixtures().join("alice.torrent"))).stdout);
    assert_eq!(ours["info_hash"], clean["info_hash"]);
    strict(&run(bt_meta().args(["info", "--strict"]).arg(&torrent)));
}

#[test]
fn bt_verify_reads_trailing_bytes_with_a_warning_and_strict_refuses() {
    let (_tmp, torrent, data) = setup("trail-verify");
    let out = run(bt_verify().arg(&torrent).arg("-d").arg(&data));
    lenient(&out);
    assert_eq!(json(&out.stdout)["status"], "complete");
    strict(&run(bt_verify()
        .arg("--strict")
        .arg(&torrent)
        .arg("-d")
        .arg(&data)));
}

#[test]
fn bt_fetch_reads_trailing_bytes_with_a_warning_and_strict_refuses() {
    let (_tmp, torrent, data) = setup("trail-fetch");
    // The data is all there: the run ends at once, with no peer needed.
    let fetch = |extra: &[&str]| {
        run(bt_fetch_cmd()
            .args(extra)
            .arg(&torrent)
            .args(["--peer", "127.0.0.1:9", "--bind", "127.0.0.1", "-o"])
            .arg(&data)
            .stdin(Stdio::null()))
    };
    lenient(&fetch(&[]));
    strict(&fetch(&["--strict"]));
}

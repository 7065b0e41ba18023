//! Hybrid v1/v2 torrents with BEP 47 pad files, made by libtorrent 2.0
//! (as qBittorrent makes them), and pure v2 torrents.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Makes a torrent of `data_dir/name` with python3-libtorrent; `flags` are
/// libtorrent's create_torrent flags (0: hybrid, "lt.create_torrent.v2_only").
/// Returns the v1 info-hash libtorrent computed (empty for v2-only).
fn libtorrent_create(data_dir: &Path, name: &str, flags: &str, out: &Path) -> String {
    let python = Path::new("/usr/bin/python3");
    assert!(
        python.is_file(),
        "this test needs /usr/bin/python3 with libtorrent: apt-get install -y python3-libtorrent"
    );
    let script = format!(
        r#"
import sys
try:
    import libtorrent as lt
except ImportError:
    sys.exit("this test needs python3-libtorrent: apt-get install -y python3-libtorrent")
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1] + "/" + sys.argv[2])
t = lt.create_torrent(fs, 16384, flags={flags})
t.add_tracker("http://tracker.example/announce")
lt.set_piece_hashes(t, sys.argv[1])
data = lt.bencode(t.generate())
open(sys.argv[3], "wb").write(data)
ti = lt.torrent_info(data)
h = ti.info_hashes()
print(str(h.v1) if h.has_v1() else "")
"#
    );
    let out = run_ok(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(data_dir)
            .arg(name)
            .arg(out),
    );
    out.trim().to_string()
}

#[test]
fn hybrid_torrent_is_read_through_its_v1_part() {
    let tmp = TempDir::new("hybrid");
    let root = tmp.join("data/set");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    // Odd sizes so that libtorrent inserts pad files between them.
    std::fs::write(root.join("a.bin"), random_bytes(1, 20_000)).unwrap();
    std::fs::write(root.join("sub/b.bin"), random_bytes(2, 50_001)).unwrap();
    std::fs::write(root.join("c.txt"), random_bytes(3, 7)).unwrap();
    let torrent = tmp.join("hybrid.torrent");
    let v1 = libtorrent_create(&tmp.join("data"), "set", "0", &torrent);
    assert_eq!(v1.len(), 40, "libtorrent made no v1 part");

    let meta = json(run_ok(bt_meta().arg("info").arg(&torrent)).as_bytes());
    assert_eq!(meta["info_hash"], v1);
    assert_eq!(meta["hybrid"], true);
    let mut paths: Vec<&str> = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path_string"].as_str().unwrap())
        .collect();
    paths.sort();
    // Pad files count in the layout but are not user files.
    assert_eq!(paths, ["set/a.bin", "set/c.txt", "set/sub/b.bin"]);
    let listed: u64 = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["length"].as_u64().unwrap())
        .sum();
    assert_eq!(listed, 20_000 + 50_001 + 7);
    assert!(
        meta["total_length"].as_u64().unwrap() > listed,
        "the layout should include padding: {meta}"
    );

    // The data verifies, with pad files neither read nor required on disk.
    let out = run(bt_verify()
        .arg(&torrent)
        .arg("-d")
        .arg(tmp.join("data"))
        .arg("-q"));
    let report = json(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["files"].as_array().unwrap().len(), 3);
    assert!(!tmp.join("data/set/.pad").exists());
}

#[test]
fn pure_v2_torrent_is_refused_clearly() {
    let tmp = TempDir::new("v2");
    std::fs::create_dir_all(tmp.join("data")).unwrap();
    std::fs::write(tmp.join("data/f.bin"), random_bytes(4, 40_000)).unwrap();
    let torrent = tmp.join("v2.torrent");
    libtorrent_create(
        &tmp.join("data"),
        "f.bin",
        "lt.create_torrent.v2_only",
        &torrent,
    );
    let out = run(bt_meta().arg("info").arg(&torrent));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("v2-only torrents are not supported"), "{err}");
    assert!(err.contains("v2.torrent"), "{err}");
}

//! `bt-meta create` → `bt-meta info` → `bt-verify` round trips, and
//! agreement with `mktorrent` and `transmission-create`.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn create(path: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let stdout = run_ok(
        bt_meta()
            .arg("create")
            .arg(path)
            .arg("-o")
            .arg(out)
            .args(["--no-date", "-q"])
            .args(extra),
    );
    json(stdout.as_bytes())
}

fn info(torrent: &Path) -> serde_json::Value {
    json(run_ok(bt_meta().arg("info").arg(torrent)).as_bytes())
}

fn verify(torrent: &Path, dir: &Path) -> (Option<i32>, serde_json::Value) {
    let out = run(bt_verify()
        .arg(torrent)
        .arg("-d")
        .arg(dir)
        .arg("--pieces")
        .arg("-q"));
    (out.status.code(), json(&out.stdout))
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Creates a torrent of `data_root/name`, checks what `info` says about it and
/// that `verify` finds it complete; returns the info JSON.
fn round_trip(data_root: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let tmp = TempDir::new("rt");
    let torrent = tmp.join("t.torrent");
    let created = create(&data_root.join(name), &torrent, extra);
    let read = info(&torrent);
    assert_eq!(created["info_hash"], read["info_hash"]);
    assert_eq!(read["name"], name);
    let (code, report) = verify(&torrent, data_root);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["pieces_good"], read["piece_count"]);
    assert_eq!(report["bytes_verified"], read["total_length"]);
    read
}

#[test]
fn single_file_with_one_byte_last_piece() {
    let tmp = TempDir::new("single");
    write(&tmp.join("data.bin"), &random_bytes(1, 5 * 16384 + 1));
    let meta = round_trip(tmp.path(), "data.bin", &["-l", "16K"]);
    assert_eq!(meta["piece_count"], 6);
    assert_eq!(meta["total_length"], 5 * 16384 + 1);
    assert_eq!(meta["multi_file"], false);
}

/// mktorrent and imdl refuse piece lengths that are not a power of two
/// or below one block; so do we, as a usage error.
#[test]
fn piece_length_not_a_power_of_two_is_refused() {
    let tmp = TempDir::new("npot");
    write(&tmp.join("odd.bin"), &random_bytes(2, 100_000));
    for bad in ["12345", "3", "8K", "2G"] {
        let out = run(bt_meta()
            .args(["create", "-q", "-l", bad, "-o"])
            .arg(tmp.join("odd.torrent"))
            .arg(tmp.join("odd.bin")));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "-l {bad}: {err}");
        assert!(err.contains("piece length"), "{err}");
    }
    assert!(!tmp.join("odd.torrent").exists());
}

#[test]
fn nested_folders_zero_length_and_non_ascii_names() {
    let tmp = TempDir::new("tree");
    let root = tmp.join("Ünïcødé tree");
    write(&root.join("a/b/c/deep.bin"), &random_bytes(3, 40_000));
    write(&root.join("a/empty"), b"");
    write(&root.join("日本語/ファイル.txt"), &random_bytes(4, 777));
    write(&root.join("z.bin"), &random_bytes(5, 1));
    write(&root.join("zero-at-end"), b"");
    let meta = round_trip(tmp.path(), "Ünïcødé tree", &["-l", "16K"]);
    let paths: Vec<&str> = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path_string"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "Ünïcødé tree/a/b/c/deep.bin",
            "Ünïcødé tree/a/empty",
            "Ünïcødé tree/z.bin",
            "Ünïcødé tree/zero-at-end",
            "Ünïcødé tree/日本語/ファイル.txt",
        ]
    );
    assert_eq!(meta["total_length"], 40_000 + 777 + 1);
    // Files are laid out back to back.
    assert_eq!(meta["files"][2]["offset"], 40_000);
}

#[test]
fn announce_tiers_and_fields() {
    let tmp = TempDir::new("fields");
    write(&tmp.join("f"), &random_bytes(6, 1000));
    let torrent = tmp.join("t.torrent");
    create(
        &tmp.join("f"),
        &torrent,
        &[
            "-a",
            "http://a/announce,udp://b:80",
            "-a",
            "https://c/announce",
            "--private",
            "--comment",
            "hello",
            "--web-seed",
            "http://w/f",
        ],
    );
    let meta = info(&torrent);
    assert_eq!(
        meta["trackers"],
        serde_json::json!([["http://a/announce", "udp://b:80"], ["https://c/announce"]])
    );
    assert_eq!(meta["private"], true);
    assert_eq!(meta["comment"], "hello");
    assert_eq!(meta["url_list"], serde_json::json!(["http://w/f"]));
    assert_eq!(meta["creation_date"], serde_json::Value::Null);
    assert!(meta["magnet"]
        .as_str()
        .unwrap()
        .contains("&tr=http%3A%2F%2Fa%2Fannounce&tr=udp%3A%2F%2Fb%3A80"));
}

#[test]
fn one_flipped_byte_makes_exactly_that_piece_bad() {
    let tmp = TempDir::new("flip");
    let mut data = random_bytes(7, 10 * 16384 + 500);
    write(&tmp.join("f.bin"), &data);
    let torrent = tmp.join("t.torrent");
    create(&tmp.join("f.bin"), &torrent, &["-l", "16K"]);
    for &(offset, piece) in &[(0usize, 0u64), (3 * 16384 + 77, 3), (10 * 16384 + 499, 10)] {
        data[offset] ^= 0x40;
        write(&tmp.join("f.bin"), &data);
        let (code, report) = verify(&torrent, tmp.path());
        assert_eq!(code, Some(5), "{report}");
        assert_eq!(report["bad_pieces"], serde_json::json!([piece]));
        assert_eq!(report["pieces_good"], 10);
        assert_eq!(report["files"][0]["status"], "corrupt");
        data[offset] ^= 0x40;
    }
}

#[test]
fn missing_and_short_files_are_incomplete_not_corrupt() {
    let tmp = TempDir::new("missing");
    let root = tmp.join("d");
    write(&root.join("one"), &random_bytes(8, 3 * 16384));
    write(&root.join("two"), &random_bytes(9, 3 * 16384));
    let torrent = tmp.join("t.torrent");
    create(&root, &torrent, &["-l", "16K"]);
    // Truncate the second file to one and a half pieces and remove nothing else.
    let two = std::fs::read(root.join("two")).unwrap();
    write(&root.join("two"), &two[..16384 + 8192]);
    let (code, report) = verify(&torrent, tmp.path());
    assert_eq!(code, Some(4), "{report}");
    assert_eq!(report["status"], "incomplete");
    assert_eq!(report["missing_pieces"], serde_json::json!([4, 5]));
    assert_eq!(report["files"][0]["status"], "complete");
    assert_eq!(report["files"][1]["status"], "incomplete");
    assert_eq!(report["files"][1]["bytes_present"], 16384);
    // Space allocated but never written (zeros) counts as missing too.
    let mut sparse = two.clone();
    sparse[16384..2 * 16384].fill(0);
    write(&root.join("two"), &sparse);
    let (code, report) = verify(&torrent, tmp.path());
    assert_eq!(code, Some(4), "{report}");
    assert_eq!(report["missing_pieces"], serde_json::json!([4]));
    std::fs::remove_file(root.join("one")).unwrap();
    let (code, report) = verify(&torrent, tmp.path());
    assert_eq!(code, Some(4));
    assert_eq!(report["files"][0]["status"], "missing");
    assert_eq!(report["files"][0]["size_on_disk"], serde_json::Value::Null);
}

#[test]
fn same_info_hash_as_mktorrent() {
    let mktorrent = require_tool("mktorrent", "mktorrent");
    let tmp = TempDir::new("mktorrent");
    write(&tmp.join("file.bin"), &random_bytes(10, 1_000_001));
    let root = tmp.join("tree");
    write(&root.join("a.txt"), &random_bytes(11, 70_000));
    write(&root.join("B/x"), &random_bytes(12, 5));
    write(&root.join("empty"), b"");
    write(&root.join("sub/deeper/z"), &random_bytes(13, 100_000));
    for (path, private) in [("file.bin", false), ("file.bin", true), ("tree", false)] {
        let theirs = tmp.join(format!("mk-{path}-{private}.torrent"));
        let mut cmd = Command::new(&mktorrent);
        cmd.args(["-a", "http://tracker.example/announce", "-l", "16", "-o"])
            .arg(&theirs)
            .arg(tmp.join(path));
        if private {
            cmd.arg("-p");
        }
        run_ok(&mut cmd);
        let ours = tmp.join(format!("bt-{path}-{private}.torrent"));
        let mut extra = vec!["-a", "http://tracker.example/announce", "-l", "64K"];
        if private {
            extra.push("--private");
        }
        let made = create(&tmp.join(path), &ours, &extra);
        assert_eq!(
            made["info_hash"],
            info(&theirs)["info_hash"],
            "{path} private={private}"
        );
    }
}

/// transmission-create always writes `private` into the info dictionary
/// (0 or 1), where we and mktorrent leave it out when it is 0; with the
/// private flag set the dictionaries and so the info-hashes agree.
#[test]
fn same_info_hash_as_transmission_create() {
    let tc = require_tool("transmission-create", "transmission-cli");
    let tmp = TempDir::new("tcreate");
    for (size, kib) in [(1_000_001usize, 64u64), (5 * 32768, 32), (1, 16)] {
        let file = tmp.join(format!("f{size}.bin"));
        write(&file, &random_bytes(size as u64, size));
        let theirs = tmp.join(format!("tc{size}.torrent"));
        run_ok(
            Command::new(&tc)
                .args(["-p", "-t", "http://tracker.example/announce", "-s"])
                .arg(kib.to_string())
                .arg("-o")
                .arg(&theirs)
                .arg(&file),
        );
        let ours = tmp.join(format!("bt{size}.torrent"));
        let made = create(
            &file,
            &ours,
            &[
                "--private",
                "-a",
                "http://tracker.example/announce",
                "-l",
                &format!("{kib}K"),
            ],
        );
        assert_eq!(made["info_hash"], info(&theirs)["info_hash"], "size {size}");
    }
}

#[test]
fn strict_reports_irregular_bencode() {
    let tmp = TempDir::new("strict");
    // A valid torrent whose top-level keys are out of order ("info" before "announce").
    let body = b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae8:announce8:http://xe";
    write(&tmp.join("irregular.torrent"), body);
    let lenient = run(bt_meta().arg("info").arg(tmp.join("irregular.torrent")));
    assert!(lenient.status.success());
    let strict = run(bt_meta()
        .args(["info", "--strict"])
        .arg(tmp.join("irregular.torrent")));
    assert_eq!(strict.status.code(), Some(3));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("\"announce\" at byte offset 82 is out of order"),
        "{err}"
    );
}

#[test]
fn invalid_torrents_name_file_and_offset() {
    let tmp = TempDir::new("invalid");
    let cases: &[(&str, &[u8], &str)] = &[
        ("truncated", b"d4:infod6:lengthi1e", "input ended"),
        (
            "escape",
            b"d4:infod5:filesld6:lengthi1e4:pathl2:..eee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
            "info.files[0].path: path component is '.' or '..'",
        ),
        (
            "pieces",
            b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces19:aaaaaaaaaaaaaaaaaaaee",
            "info.pieces: length 19 is not a multiple of 20 (at byte offset",
        ),
    ];
    for (name, body, expected) in cases {
        let path = tmp.join(format!("{name}.torrent"));
        write(&path, body);
        let out = run(bt_meta().arg("info").arg(&path));
        assert_eq!(out.status.code(), Some(3), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains(&format!("{name}.torrent")), "{name}: {err}");
        assert!(out.stdout.is_empty());
    }
}

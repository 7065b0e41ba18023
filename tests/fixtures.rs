//! The shared fixture torrents: info-hashes against `transmission-show`, and
//! rechecks of the data that comes with them.

mod common;

use common::*;
use std::process::Command;

/// The info-hash `transmission-show` prints for a torrent.
fn transmission_hash(torrent: &std::path::Path) -> String {
    let tool = require_tool("transmission-show", "transmission-cli");
    let out = run_ok(Command::new(tool).arg(torrent));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Hash: "))
        .unwrap_or_else(|| panic!("no Hash line in transmission-show output:\n{out}"))
        .trim()
        .to_string()
}

fn our_info(torrent: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let out = run(bt_meta().arg("info").args(extra).arg(torrent));
    assert!(
        out.status.success(),
        "bt-meta info {} failed: {}",
        torrent.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

#[test]
fn info_hashes_match_transmission_show() {
    let dir = fixtures();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "torrent") {
            continue;
        }
        let ours = our_info(&path, &[]);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "corrupt.torrent" {
            // This torrent has no `name`. transmission-show inserts the file's
            // name into the info dictionary and hashes that re-encoding; the
            // info-hash peers use is the SHA-1 of the bytes in the file, which
            // is what we (and aria2) report. Check that both facts hold.
            assert_eq!(
                transmission_hash(&path),
                "2fd4e943526af035982a7a42acc78a948cb50db5"
            );
            let bytes = std::fs::read(&path).unwrap();
            let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
            let info_bytes = &bytes[start..bytes.len() - 1];
            let sha1sum = require_tool("sha1sum", "coreutils");
            let tmp = TempDir::new("info");
            std::fs::write(tmp.join("info"), info_bytes).unwrap();
            let out = run_ok(Command::new(sha1sum).arg(tmp.join("info")));
            assert_eq!(ours["info_hash"], out.split_whitespace().next().unwrap());
            assert_eq!(ours["name"], "corrupt");
        } else {
            assert_eq!(ours["info_hash"], transmission_hash(&path), "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} torrents in {}", dir.display());
}

#[test]
fn real_world_fields() {
    let sintel = our_info(&fixtures().join("sintel.torrent"), &["--pieces"]);
    assert_eq!(sintel["created_by"], "uTorrent/2040");
    assert_eq!(sintel["creation_date"], "2011-05-05T08:49:13Z");
    assert_eq!(sintel["total_length"], 5490455272u64);
    assert_eq!(
        sintel["pieces"].as_array().unwrap().len() as u64,
        sintel["piece_count"].as_u64().unwrap()
    );
    let magnet = sintel["magnet"].as_str().unwrap();
    assert_eq!(
        magnet,
        "magnet:?xt=urn:btih:c334138ef5bfc2d568ea7324e0e2a3a7ec229bdd\
         &dn=Sintel.2010.4K.DMRip.x264.DD.DTS.SRT-MaLLIeHbKa.mkv"
    );
    let bunny = our_info(&fixtures().join("bunny.torrent"), &[]);
    assert_eq!(
        bunny["url_list"][0],
        "http://distribution.bbb3d.renderfarming.net/video/mp4/bbb_sunflower_1080p_30fps_stereo_abl.mp4"
    );
    let leaves = our_info(&fixtures().join("leaves.torrent"), &[]);
    assert_eq!(leaves["name"], "Leaves of Grass by Walt Whitman.epub");
    assert_eq!(
        leaves["files"][0]["path"][0],
        "Leaves of Grass by Walt Whitman.epub"
    );
}

#[test]
fn fixture_data_verifies() {
    let dir = fixtures();
    for t in ["alice", "leaves", "folder", "numbers"] {
        let out = run(bt_verify()
            .arg(dir.join(format!("{t}.torrent")))
            .arg("-d")
            .arg(&dir));
        let report = json(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{t}: {report}");
        assert_eq!(report["status"], "complete");
        assert_eq!(report["pieces_good"], report["pieces_total"]);
        for f in report["files"].as_array().unwrap() {
            assert_eq!(f["status"], "complete", "{t}: {f}");
            assert_eq!(f["bytes_present"], f["length"]);
        }
    }
}

/// `corrupt.torrent` describes the Leaves epub under another name: the recheck
/// must name exactly the pieces whose hashes differ, as `sha1sum` finds them.
#[test]
fn corrupt_torrent_names_exactly_the_bad_pieces() {
    let dir = fixtures();
    let torrent = dir.join("corrupt.torrent");
    let meta = our_info(&torrent, &["--pieces"]);
    let piece_length = meta["piece_length"].as_u64().unwrap() as usize;
    let expected_hashes: Vec<String> = meta["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();

    let data = std::fs::read(dir.join("Leaves of Grass by Walt Whitman.epub")).unwrap();
    assert_eq!(data.len() as u64, meta["total_length"].as_u64().unwrap());
    let tmp = TempDir::new("corrupt");
    // Hash every piece with sha1sum, independently of our SHA-1.
    let mut paths = Vec::new();
    for (i, chunk) in data.chunks(piece_length).enumerate() {
        let p = tmp.join(format!("piece{i:05}"));
        std::fs::write(&p, chunk).unwrap();
        paths.push(p);
    }
    let out = run_ok(Command::new(require_tool("sha1sum", "coreutils")).args(&paths));
    let expected_bad: Vec<u64> = out
        .lines()
        .zip(&expected_hashes)
        .enumerate()
        .filter(|(_, (line, want))| !line.starts_with(want.as_str()))
        .map(|(i, _)| i as u64)
        .collect();
    assert!(!expected_bad.is_empty() && expected_bad.len() < expected_hashes.len());

    // The data under the name our reader gives this nameless torrent.
    let data_dir = TempDir::new("corrupt-data");
    std::fs::write(data_dir.join("corrupt"), &data).unwrap();
    let out = run(bt_verify()
        .arg(&torrent)
        .arg("-d")
        .arg(data_dir.path())
        .arg("--pieces"));
    let report = json(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "corrupt data exits 5: {report}");
    assert_eq!(report["status"], "corrupt");
    let bad: Vec<u64> = report["bad_pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(bad, expected_bad);
    assert_eq!(report["pieces_missing"], 0);
}

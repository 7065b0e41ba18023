//! bt-fetch's command line: exit codes, errors, rate limit, and resuming
//! after kill -9.

mod common;

use std::time::{Duration, Instant};

use common::peers::*;

#[test]
fn resume_after_kill_9_redownloads_only_missing_pieces() {
    let tmp = temp("fetch-kill9");
    let data = single_file(&tmp.join("seed"), "k.bin", 24 << 20, 9);
    let torrent = make_torrent(&data, &tmp.join("k.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    // A seeder limited to 8 MiB/s so that the download is still running
    // when it is killed.
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &["--max-upload-rate", "8M"]);
    let port = seeder.port();
    let out = tmp.join("leech");
    let mut first = Fetch::leech_from("leecher 1", t, &out, port, &[]);
    // Wait for some pieces, then kill -9.
    let end = Instant::now() + Duration::from_secs(60);
    while first.events_named("piece").len() < 20 {
        assert!(Instant::now() < end, "no progress: {:?}", first.seen);
        let _ = first.wait_event("progress", Duration::from_secs(30));
        first.seen.retain(|v| v["event"] != "progress");
    }
    first.proc.signal(libc::SIGKILL);
    first
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("killed");
    // Drain what it printed before dying.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        first.wait_event("never", Duration::from_millis(300))
    }));
    let verified = first.events_named("piece").len() as u64;
    assert!(verified < 96, "killed before the end ({verified} pieces)");

    let mut second = Fetch::leech_from("leecher 2", t, &out, port, &[]);
    let listening = second.wait_event("listening", Duration::from_secs(30));
    let had = listening["have_pieces"].as_u64().unwrap();
    assert!(
        had >= verified,
        "every verified piece survived: {had} < {verified}"
    );
    let done = second.finish(Duration::from_secs(60));
    assert_same(&data, &out.join("k.bin"));
    let downloaded = done["downloaded"].as_u64().unwrap();
    assert_eq!(
        downloaded,
        (96 - had) * (256 << 10),
        "only missing pieces fetched"
    );
    seeder.stop();
}

#[test]
fn invalid_torrent_exits_3() {
    let tmp = temp("fetch-invalid");
    let bad = tmp.join("bad.torrent");
    std::fs::write(&bad, b"d4:infod4:name1:xee").unwrap();
    let out = common::run(
        bt_fetch_cmd()
            .arg(&bad)
            .args(["--peer", "127.0.0.1:9", "-o"])
            .arg(tmp.join("o"))
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.torrent"));
}

#[test]
fn torrent_on_stdin_is_a_usage_error() {
    let out = common::run(bt_fetch_cmd().arg("-").stdin(std::process::Stdio::null()));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn timeout_without_a_usable_peer_exits_1() {
    let tmp = temp("fetch-timeout");
    let data = single_file(&tmp.join("src"), "x.bin", 100_000, 4);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "16K");
    // A port where nothing listens.
    let port = free_port();
    let started = Instant::now();
    let out = common::run(
        bt_fetch_cmd()
            .arg(&torrent)
            .args(["--json", "--timeout", "2", "--bind", "127.0.0.1", "--peer"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-o")
            .arg(tmp.join("o"))
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out"), "{err}");
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["status"], "failed");
}

#[test]
fn no_peer_source_exits_2_with_advice() {
    let tmp = temp("fetch-nosource");
    let data = single_file(&tmp.join("src"), "x.bin", 50_000, 4);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "16K");
    let out = common::run(
        bt_fetch_cmd()
            .arg(&torrent)
            .arg("-o")
            .arg(tmp.join("o"))
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--peer") && err.contains("--announce"),
        "{err}"
    );
}

#[test]
fn symlink_in_output_folder_is_refused() {
    let tmp = temp("fetch-symlink");
    let root = multi_file(&tmp.join("seed"), "tree", 44);
    let torrent = make_torrent(&root, &tmp.join("t.torrent"), "64K");
    let t = torrent.to_str().unwrap();
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &[]);
    let peer = format!("127.0.0.1:{}", seeder.port());
    // The output folder has tree/sub -> a folder outside it.
    let outside = tmp.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let out = tmp.join("leech");
    std::fs::create_dir_all(out.join("tree")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("tree/sub")).unwrap();
    let result = common::run(
        bt_fetch_cmd()
            .arg(t)
            .arg("-o")
            .arg(&out)
            .args(["--peer", &peer, "--bind", "127.0.0.1", "--timeout", "60"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(result.status.code(), Some(1));
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("symbolic link") && err.contains("tree/sub"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing written outside the output folder"
    );
    seeder.stop();
}

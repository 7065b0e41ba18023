//! Issue 13's headline: `bt-announce x.torrent | bt-fetch x.torrent -o out/`
//! works with both programs' defaults, against a real opentracker; and
//! `bt-fetch -t URL` announces to a tracker the torrent does not name.

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::*;
use tracker::Opentracker;

#[test]
fn the_headline_pipeline_works_with_the_defaults() {
    let tmp = temp("cli-pipeline");
    // A torrent that names no tracker: -t gives it one on each command line.
    let data = single_file(&tmp.join("seed"), "p.bin", 3_000_000, 13);
    let torrent = make_torrent(&data, &tmp.join("p.torrent"), "64K");
    let t = torrent.to_str().unwrap();
    let meta = bt::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let ot = Opentracker::start(&[&meta.info_hash_hex()]);
    let url = ot.http();

    // The seeder finds the tracker through -t (no --announce), on any port.
    let mut seeder = Fetch::local(
        "seeder",
        t,
        tmp.join("seed").to_str().unwrap(),
        &["--seed", "-p", "0", "-t", &url],
    );
    let a = seeder.wait_event("announce", Duration::from_secs(30));
    assert_eq!(a["tracker"], url.as_str());

    // The pipeline, flags as a user types them: no port anywhere.
    let mut announce = Command::new(env!("CARGO_BIN_EXE_bt-announce"))
        .args([t, "-t", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peers = announce.stdout.take().unwrap();
    let out = tmp.join("leech");
    let mut leech = Fetch::start_with_stdin(
        "leecher",
        &[t, "-o", out.to_str().unwrap(), "--timeout", "60"],
        Stdio::from(peers),
    );
    let port = leech.port();
    let done = leech.finish(Duration::from_secs(70));
    assert_eq!(done["status"], "ok", "{done}");
    assert_same(&data, &out.join("p.bin"));
    // bt-announce told the tracker port 6881; the leecher listened there,
    // or (6881 being taken by another program) said why peers would miss it.
    let warned = leech.stderr.lock().unwrap().clone();
    assert!(
        port == 6881 || warned.contains("port 6881 is in use") && warned.contains("-p PORT"),
        "listening on {port} without a warning: {warned}"
    );
    // bt-announce ended on its own after one announce.
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = announce.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = announce.kill();
            let _ = announce.wait();
            panic!("bt-announce still running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // The tracker now lists the leecher at 6881, where bt-announce said.
    let listed = tracker::announce(&["--info-hash", &meta.info_hash_hex(), "-t", &url, "-p", "1"]);
    let addrs = tracker::peer_addrs(&listed.stdout);
    assert!(addrs.contains(&"127.0.0.1:6881".to_string()), "{addrs:?}");
    seeder.proc.signal(libc::SIGTERM);
    seeder.finish(Duration::from_secs(15));
}

/// bt-fetch takes bt-announce's tracker flags: `-t` an https tracker the
/// torrent does not name, trusted through `--ca-file` (stunnel in front of
/// opentracker, a throw-away CA), announcing the port it listens on.
#[test]
fn bt_fetch_announces_to_an_https_tracker_given_with_t_and_ca_file() {
    let tmp = temp("cli-fetch-https");
    let (torrent, hash) = tracker::make_torrent(tmp.path(), "tls", &[]);
    let ot = Opentracker::start(&[&hash]);
    let ca = tracker::make_ca(tmp.path(), "ca");
    let (cert, key) = tracker::make_server_cert(tmp.path(), &ca, "IP:127.0.0.1");
    let tls = tracker::Stunnel::start(tmp.path(), &cert, &key, ot.port);
    let url = format!("https://127.0.0.1:{}/announce", tls.port);
    let ca_file = ca.0.to_str().unwrap();
    let mut seeder = Fetch::local(
        "https seeder",
        torrent.to_str().unwrap(),
        tmp.path().to_str().unwrap(),
        &["--seed", "-p", "0", "-t", &url, "--ca-file", ca_file],
    );
    seeder.close_stdin();
    let port = seeder.port();
    let a = seeder.wait_event("announce", Duration::from_secs(30));
    assert_eq!(a["tracker"], url.as_str(), "{a}");
    let out = tracker::announce(&[
        "--info-hash",
        &hash,
        "-t",
        &url,
        "--ca-file",
        ca_file,
        "-p",
        "1",
    ]);
    assert!(out.status.success(), "{}", tracker::stderr(&out));
    let addrs = tracker::peer_addrs(&out.stdout);
    assert!(addrs.contains(&format!("127.0.0.1:{port}")), "{addrs:?}");
    seeder.proc.signal(libc::SIGTERM);
    seeder.finish(Duration::from_secs(15));
}

//! bt-announce against a real opentracker (Debian's, closed mode) on
//! 127.0.0.1: announcers see each other over HTTP and UDP, scrape counts
//! match, refusals are reported, and --follow announces `stopped`.

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tracker::*;

fn see_each_other(url_of: impl Fn(&Opentracker) -> String) {
    let tmp = TempDir::new("ot-peers");
    let (torrent, hash) = make_torrent(tmp.path(), "peers", &[]);
    let ot = Opentracker::start(&[&hash]);
    let url = url_of(&ot);
    let t = torrent.to_str().unwrap();
    let a = announce(&[t, "-t", &url, "--port", "1111"]);
    assert!(a.status.success(), "{}", stderr(&a));
    // opentracker hands the announcer back to itself.
    assert!(peer_addrs(&a.stdout).contains(&"127.0.0.1:1111".to_string()));
    let b = announce(&[t, "-t", &url, "--port", "2222"]);
    assert!(b.status.success(), "{}", stderr(&b));
    let peers = peer_addrs(&b.stdout);
    assert!(peers.contains(&"127.0.0.1:1111".to_string()), "{peers:?}");
    assert!(peers.contains(&"127.0.0.1:2222".to_string()), "{peers:?}");
    for line in json_lines(&b.stdout) {
        assert_eq!(line["tracker"], url.as_str());
        assert!(line.get("peer_id").is_none(), "compact peers have no id");
    }
}

#[test]
fn http_announcers_see_each_other() {
    see_each_other(Opentracker::http);
}

#[test]
fn udp_announcers_see_each_other() {
    see_each_other(Opentracker::udp);
}

#[test]
fn trackers_of_the_torrent_and_all() {
    let tmp = TempDir::new("ot-all");
    let (_, hash) = make_torrent(tmp.path(), "all", &[]);
    let ot = Opentracker::start(&[&hash]);
    // A torrent whose tiers are the HTTP and UDP faces of the tracker.
    let (torrent, hash2) = {
        // Same data and name give the same info-hash whatever the trackers.
        let data = tmp.join("all.bin");
        let torrent = tmp.join("all2.torrent");
        run_ok(
            bt_meta()
                .arg("create")
                .arg(&data)
                .arg("-o")
                .arg(&torrent)
                .args(["-q", "-a", &ot.http(), "-a", &ot.udp()]),
        );
        let info = json(&run(bt_meta().arg("info").arg(&torrent)).stdout);
        (torrent, info["info_hash"].as_str().unwrap().to_string())
    };
    assert_eq!(hash, hash2);
    let t = torrent.to_str().unwrap();
    let first = announce(&[t, "--port", "3333"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(peer_addrs(&first.stdout), ["127.0.0.1:3333"]);
    // --all asks both faces; the same peer is printed once.
    let all = announce(&[t, "--port", "4444", "--all"]);
    assert!(all.status.success(), "{}", stderr(&all));
    let mut peers = peer_addrs(&all.stdout);
    peers.sort();
    assert_eq!(peers, ["127.0.0.1:3333", "127.0.0.1:4444"]);
    // --response: one object per tracker answer.
    let resp = announce(&[t, "--port", "4444", "--all", "--response"]);
    let lines = json_lines(&resp.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert!(l["interval"].as_u64().unwrap() > 0);
        assert_eq!(l["incomplete"], 2);
        assert_eq!(l["peers"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn scrape_counts_match_over_http_and_udp() {
    let tmp = TempDir::new("ot-scrape");
    let (torrent, hash) = make_torrent(tmp.path(), "scrape", &[]);
    let ot = Opentracker::start(&[&hash]);
    let t = torrent.to_str().unwrap();
    let http = ot.http();
    let udp = ot.udp();
    assert!(announce(&[t, "-t", &http, "--port", "1001"])
        .status
        .success());
    assert!(announce(&[t, "-t", &udp, "--port", "1002"])
        .status
        .success());
    let seeder = announce(&[
        t,
        "-t",
        &http,
        "--port",
        "1003",
        "--left",
        "0",
        "--event",
        "completed",
    ]);
    assert!(seeder.status.success(), "{}", stderr(&seeder));
    for url in [&http, &udp] {
        let out = announce(&[t, "-t", url, "--scrape"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1);
        let s = &lines[0];
        assert_eq!(s["tracker"], url.as_str());
        assert_eq!(s["info_hash"], hash.as_str());
        assert_eq!(
            (s["seeders"].as_u64(), s["leechers"].as_u64()),
            (Some(1), Some(2)),
            "{s}"
        );
        assert_eq!(s["completed"].as_u64(), Some(1), "{s}");
    }
    let both = announce(&[t, "-t", &http, "-t", &udp, "--scrape", "--all"]);
    assert_eq!(json_lines(&both.stdout).len(), 2);
}

#[test]
fn unknown_torrent_is_refused() {
    let ot = Opentracker::start(&[&"11".repeat(20)]);
    let hash = "22".repeat(20);
    for url in [ot.http(), ot.udp()] {
        let out = announce(&["--info-hash", &hash, "-t", &url, "--timeout", "10"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.contains(&url) && err.contains("refused"), "{err}");
    }
}

#[test]
fn follow_announces_stopped_on_sigterm() {
    let tmp = TempDir::new("ot-follow");
    let (torrent, hash) = make_torrent(tmp.path(), "follow", &[]);
    let ot = Opentracker::start(&[&hash]);
    let t = torrent.to_str().unwrap();
    for url in [ot.http(), ot.udp()] {
        let mut child = ChildGuard(
            bt_announce()
                .args([
                    t,
                    "-t",
                    &url,
                    "--port",
                    "5555",
                    "--follow",
                    "--interval",
                    "1",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a first peer line").unwrap();
        assert!(first.contains("5555"), "{first}");
        let during = announce(&[t, "-t", &url, "--scrape"]);
        assert_eq!(json_lines(&during.stdout)[0]["leechers"], 1);
        // SAFETY: the PID is our own child's.
        unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        let status = child.wait_exit(Duration::from_secs(20), "no exit after SIGTERM");
        assert!(status.success(), "{status}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let after = announce(&[t, "-t", &url, "--scrape"]);
        assert_eq!(
            json_lines(&after.stdout)[0]["leechers"],
            0,
            "stopped was announced to {url}"
        );
    }
}

//! Magnet links, metadata exchange (BEP 9) and PEX (BEP 11) against
//! libtorrent (python3-libtorrent, default settings but for loopback
//! needs) and against hostile raw-socket peers.

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fake_server::{read_handshake, read_message, FakeServer};
use common::peers::*;

const LIMIT: Duration = Duration::from_secs(180);

/// A libtorrent peer run by tests/scripts/lt_magnet.py.
struct Lt {
    proc: Proc,
    port: u16,
    lines: Lines,
}

impl Lt {
    /// `mode` "seed" or "leech" (what: a torrent file) or "magnet" (what:
    /// a link).
    fn start(mode: &str, what: &str, dir: &Path, upload_limit: u64, peers: &[String]) -> Lt {
        std::fs::create_dir_all(dir).unwrap();
        let (proc, lines, port) = start_lt_script("lt_magnet.py", mode, |cmd| {
            cmd.args([mode, what])
                .arg(dir)
                .arg(free_port().to_string())
                .arg(upload_limit.to_string())
                .args(peers);
        });
        Lt { proc, port, lines }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_line(&mut self, want: impl Fn(&str) -> bool, limit: Duration) -> String {
        self.lines.wait(&self.proc.name, "wanted", want, limit)
    }
}

#[test]
fn magnet_download_of_a_multi_file_torrent_from_libtorrent() {
    let tmp = temp("magnet-lt-seed");
    let root = multi_file(&tmp.join("seed"), "tree", 90);
    // 16 KiB pieces: an info dictionary of several metadata pieces.
    let torrent = make_torrent(&root, &tmp.join("tree.torrent"), "16K");
    let hash = info_hash_of(&torrent);
    let lt = Lt::start("seed", torrent.to_str().unwrap(), &tmp.join("seed"), 0, &[]);
    let out = tmp.join("leech");
    let saved = tmp.join("saved.torrent");
    let link = format!("magnet:?xt=urn:btih:{hash}&dn=tree&x.pe={}", lt.addr());
    let mut leech = Fetch::local(
        "magnet leecher",
        &link,
        out.to_str().unwrap(),
        &["--save-torrent", saved.to_str().unwrap()],
    );
    let meta = leech.wait_event("metadata", LIMIT);
    assert_eq!(meta["info_hash"], hash.as_str());
    assert!(meta["size"].as_u64().unwrap() > 10_000_000, "{meta}");
    leech.finish(LIMIT);
    assert_same(&root, &out.join("tree"));
    // The saved torrent has the same info dictionary.
    assert_eq!(info_hash_of(&saved), hash);
    let c = leech.events_named("peer_connected");
    assert!(
        c[0]["client"].as_str().unwrap().contains("libtorrent"),
        "{c:?}"
    );
}

#[test]
fn metadata_only_saves_the_torrent_and_stops() {
    let tmp = temp("magnet-meta-only");
    let data = single_file(&tmp.join("seed"), "one.bin", 3 << 20, 91);
    let torrent = make_torrent(&data, &tmp.join("one.torrent"), "16K");
    let hash = info_hash_of(&torrent);
    let mut seeder = Fetch::seeder(torrent.to_str().unwrap(), &tmp.join("seed"), &[]);
    let port = seeder.port();
    let saved = tmp.join("saved.torrent");
    let link = format!("magnet:?xt=urn:btih:{hash}");
    let peer = format!("127.0.0.1:{port}");
    let mut m = Fetch::local(
        "metadata only",
        &link,
        tmp.join("out").to_str().unwrap(),
        &[
            "--peer",
            &peer,
            "--save-torrent",
            saved.to_str().unwrap(),
            "--metadata-only",
        ],
    );
    m.finish(Duration::from_secs(60));
    assert_eq!(info_hash_of(&saved), hash);
    assert!(!tmp.join("out/one.bin").exists(), "nothing downloaded");
    // With a torrent file, --save-torrent writes a copy of the same
    // torrent (and --metadata-only does not connect at all).
    let copy = tmp.join("copy.torrent");
    let mut c = Fetch::local(
        "copy",
        torrent.to_str().unwrap(),
        tmp.join("out").to_str().unwrap(),
        &[
            "--peer",
            &peer,
            "--save-torrent",
            copy.to_str().unwrap(),
            "--metadata-only",
        ],
    );
    c.finish(Duration::from_secs(30));
    assert_eq!(info_hash_of(&copy), hash);
    assert!(c.events_named("peer_connected").is_empty());
    seeder.proc.signal(libc::SIGTERM);
}

#[test]
fn libtorrent_magnet_leecher_gets_metadata_from_bt_fetch() {
    let tmp = temp("magnet-lt-leech");
    let root = multi_file(&tmp.join("seed"), "tree", 92);
    let torrent = make_torrent(&root, &tmp.join("tree.torrent"), "32K");
    let hash = info_hash_of(&torrent);
    let mut seeder = Fetch::seeder(torrent.to_str().unwrap(), &tmp.join("seed"), &[]);
    let port = seeder.port();
    let out = tmp.join("lt");
    let link = format!("magnet:?xt=urn:btih:{hash}");
    let mut lt = Lt::start("magnet", &link, &out, 0, &[format!("127.0.0.1:{port}")]);
    lt.wait_line(|l| l.starts_with("metadata"), LIMIT);
    lt.wait_line(|l| l.starts_with("done"), LIMIT);
    assert_same(&root, &out.join("tree"));
    seeder.stop();
}

#[test]
fn pex_leads_bt_fetch_to_a_peer_only_its_first_peer_knew() {
    let tmp = temp("magnet-pex");
    let data = single_file(&tmp.join("b"), "pex.bin", 16 << 20, 93);
    let torrent = make_torrent(&data, &tmp.join("pex.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    // B seeds slowly (so that A is still downloading, and connected to
    // it, when bt-fetch arrives); A knows B; bt-fetch knows only A.
    // bt-fetch listens on 127.0.0.2, where B (told of it by A) cannot
    // reach it first: the connection to B is ours, from PEX.
    let b = Lt::start("seed", t, &tmp.join("b"), 100_000, &[]);
    let mut a = Lt::start("leech", t, &tmp.join("a"), 0, &[b.addr()]);
    let b_addr = b.addr();
    a.wait_line(
        |l| l.starts_with("peers") && l.contains(&b_addr),
        Duration::from_secs(60),
    );
    let dir = tmp.join("leech");
    let a_addr = a.addr();
    let mut leech = Fetch::start(
        "pex leecher",
        &[
            t,
            "-o",
            dir.to_str().unwrap(),
            "--bind",
            "127.0.0.2",
            "--peer",
            &a_addr,
        ],
    );
    let end = Instant::now() + Duration::from_secs(150);
    let found = loop {
        let c = leech.events_named("peer_connected");
        if let Some(e) = c.iter().find(|e| e["addr"] == b_addr.as_str()) {
            break e.clone();
        }
        assert!(
            Instant::now() < end,
            "bt-fetch never connected to {b_addr}; connections: {c:?}\n{}",
            leech.stderr_text()
        );
        leech.pump(Duration::from_millis(500));
    };
    assert_eq!(found["source"], "pex", "{found}");
    let first = leech.events_named("peer_connected");
    assert_eq!(first[0]["source"], "peer", "{first:?}");
}

/// How a fake metadata peer misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Meta {
    /// Announces the right size, sends bytes that do not hash right.
    WrongHash,
    /// Announces a `metadata_size` of 100 MiB.
    Oversize,
    /// Announces the right size, never answers.
    Silent,
    /// Sends data for pieces never asked for, one after another, from
    /// the handshake on.
    Endless,
}

/// A raw-socket peer that speaks just enough BEP 10 and BEP 9 to lie.
fn fake_meta(info_hash: [u8; 20], size: usize, how: Meta) -> FakeServer {
    FakeServer::start(
        10,
        Duration::from_secs(120),
        move |stream, stop, deadline| {
            let _ = fake_serve(stream, info_hash, size, how, stop, deadline);
        },
    )
}

fn extended(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
    m.push(20);
    m.push(id);
    m.extend_from_slice(payload);
    m
}

/// The number after `key` in a bencoded text (`...<key>i<n>e...`).
fn bencoded_int(text: &[u8], key: &[u8]) -> Option<i64> {
    let pos = text.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = text.get(pos..)?.strip_prefix(b"i")?;
    let end = rest.iter().position(|&c| c == b'e')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn fake_serve(
    mut s: TcpStream,
    info_hash: [u8; 20],
    size: usize,
    how: Meta,
    stop: &AtomicBool,
    end: Instant,
) -> std::io::Result<()> {
    let bep10 = [0, 0, 0, 0, 0, 0x10, 0, 0];
    let mut reply = read_handshake(&mut s, bep10, info_hash, stop, end)?;
    // Distinct peer ids (the same one twice is a duplicate connection).
    let id = format!(
        "-XX0001-fake{:08}",
        s.local_addr()?.port() as u32 * 4 + how as u32
    );
    reply.extend_from_slice(&id.as_bytes()[..20]);
    let announced = if how == Meta::Oversize {
        100 << 20
    } else {
        size
    };
    let ext = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{announced}ee");
    reply.extend(extended(0, ext.as_bytes()));
    s.write_all(&reply)?;
    let mut their_id = 0u8;
    while let Some(msg) = read_message(&mut s, stop, end)? {
        let len = msg.len();
        if msg[0] != 20 || len < 2 {
            continue;
        }
        if msg[1] == 0 {
            their_id = bencoded_int(&msg[2..], b"11:ut_metadata").unwrap_or(0) as u8;
            if how == Meta::Endless && their_id != 0 {
                // Piece after piece, never asked for, until dropped.
                for i in 0..10_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > end {
                        break;
                    }
                    let mut p =
                        format!("d8:msg_typei1e5:piecei{i}e10:total_sizei{size}ee").into_bytes();
                    p.extend(std::iter::repeat_n(b'y', 16384));
                    s.write_all(&extended(their_id, &p))?;
                }
                return Ok(());
            }
            continue;
        }
        if msg[1] != 3 || their_id == 0 {
            continue;
        }
        let Some(piece) = bencoded_int(&msg[2..], b"5:piece") else {
            continue;
        };
        let piece = piece as usize;
        match how {
            Meta::WrongHash => {
                let len = (size - piece * 16384).min(16384);
                let mut p =
                    format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{size}ee").into_bytes();
                p.extend(std::iter::repeat_n(b'x', len));
                s.write_all(&extended(their_id, &p))?;
            }
            Meta::Oversize | Meta::Silent | Meta::Endless => {}
        }
    }
    Ok(())
}

#[test]
fn hostile_metadata_peers_are_dropped_and_the_download_completes() {
    let tmp = temp("magnet-hostile");
    // 16 KiB pieces of 20 MiB: an info dictionary of two metadata pieces.
    let data = single_file(&tmp.join("seed"), "h.bin", 20 << 20, 94);
    let torrent = make_torrent(&data, &tmp.join("h.torrent"), "16K");
    let hash = info_hash_of(&torrent);
    let hash_bytes: [u8; 20] = (0..20)
        .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let size = {
        let bytes = std::fs::read(&torrent).unwrap();
        let start = bytes.windows(7).position(|w| w == b"4:infod").unwrap() + 6;
        bytes.len() - 1 - start
    };
    assert!(size > 16384, "two metadata pieces at least ({size})");
    let fakes: Vec<FakeServer> = [Meta::WrongHash, Meta::Oversize, Meta::Silent, Meta::Endless]
        .into_iter()
        .map(|how| fake_meta(hash_bytes, size, how))
        .collect();
    let mut seeder = Fetch::local(
        "honest seeder",
        torrent.to_str().unwrap(),
        tmp.join("seed").to_str().unwrap(),
        &["--seed"],
    );
    let honest = seeder.addr();
    let mut args: Vec<String> = Vec::new();
    for f in &fakes {
        args.push("--peer".into());
        args.push(format!("127.0.0.1:{}", f.port));
    }
    let out = tmp.join("leech");
    let link = format!("magnet:?xt=urn:btih:{hash}");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut leech = Fetch::local("magnet leecher", &link, out.to_str().unwrap(), &argv);
    // The honest peer comes 3 s later: the liars are dealt with first.
    leech.pump(Duration::from_secs(3));
    leech.send_line(&honest);
    leech.finish(LIMIT);
    assert_same(&data, &out.join("h.bin"));
    let gone = leech.events_named("peer_disconnected");
    let reason_for = |port: u16| -> String {
        gone.iter()
            .find(|e| e["addr"] == format!("127.0.0.1:{port}").as_str())
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let log = leech.stderr_text();
    assert!(reason_for(fakes[1].port).contains("cap"), "{gone:?}\n{log}");
    // Never-ending pieces: unasked for, or longer than the piece asked.
    let r = reason_for(fakes[3].port);
    assert!(
        r.contains("unrequested") || r.contains("bytes, expected"),
        "{r:?} in {gone:?}\n{log}"
    );
    assert!(reason_for(fakes[0].port).contains("info-hash"), "{gone:?}");
    // Liars are banned: never dialled again, in either phase.
    let banned: Vec<String> = leech
        .events_named("peer_banned")
        .iter()
        .map(|e| e["addr"].as_str().unwrap().to_string())
        .collect();
    for i in [0, 1, 3] {
        let a = format!("127.0.0.1:{}", fakes[i].port);
        assert!(banned.contains(&a), "{i}: {banned:?}");
        let times = leech
            .events_named("peer_connected")
            .iter()
            .filter(|e| e["addr"] == a.as_str())
            .count();
        assert_eq!(times, 1, "{a} connected {times} times");
    }
    // The silent peer is dropped if it was asked before the honest one
    // delivered.
    let r = reason_for(fakes[2].port);
    assert!(
        r.contains("unanswered") || r == "shutting down",
        "{r:?} in {gone:?}"
    );
    seeder.proc.signal(libc::SIGTERM);
}

#[test]
fn bt_meta_prints_a_magnet_link() {
    let out = common::run(common::bt_meta().args([
        "info",
        "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&dn=a+b&tr=udp%3A%2F%2Ft%3A1&x.pe=10.0.0.1:2",
    ]));
    assert!(out.status.success());
    let v = common::json(&out.stdout);
    assert_eq!(v["info_hash"], "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
    assert_eq!(v["name"], "a b");
    assert_eq!(v["trackers"][0], "udp://t:1");
    assert_eq!(v["peers"][0], "10.0.0.1:2");
    let bad = common::run(common::bt_meta().args(["info", "magnet:?xt=urn:btih:12"]));
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("xt:"));
}

#[test]
fn magnet_trackers_are_announced_by_bt_announce_and_bt_fetch() {
    let tmp = temp("magnet-tracker");
    let data = single_file(&tmp.join("seed"), "t.bin", 3_000_000, 95);
    let plain = make_torrent(&data, &tmp.join("plain.torrent"), "64K");
    let hash = info_hash_of(&plain);
    let ot = tracker::Opentracker::start(&[&hash]);
    let url = ot.udp();
    let torrent = tmp.join("t.torrent");
    common::run_ok(
        common::bt_meta()
            .args(["create", "-q", "--no-date", "-l", "64K", "-a", &url, "-o"])
            .arg(&torrent)
            .arg(&data),
    );
    let mut seeder = Fetch::seeder(
        torrent.to_str().unwrap(),
        &tmp.join("seed"),
        &["--announce"],
    );
    let port = seeder.port();
    seeder.wait_event("announce", Duration::from_secs(30));
    let link = format!(
        "magnet:?xt=urn:btih:{hash}&dn=t.bin&tr={}",
        url.replace(':', "%3A").replace('/', "%2F")
    );
    // bt-announce: the magnet's tracker knows the seeder.
    let out = tracker::announce(&[&link, "--port", "1"]);
    assert!(out.status.success(), "{}", tracker::stderr(&out));
    let peers = tracker::peer_addrs(&out.stdout);
    assert!(peers.contains(&format!("127.0.0.1:{port}")), "{peers:?}");
    // bt-fetch: peers from the magnet's tracker only (no --announce).
    let dir = tmp.join("leech");
    let mut leech = Fetch::local(
        "magnet leecher",
        &link,
        dir.to_str().unwrap(),
        &["--timeout", "60"],
    );
    leech.close_stdin();
    leech.finish(Duration::from_secs(70));
    assert_same(&data, &dir.join("t.bin"));
    let c = leech.events_named("peer_connected");
    assert!(c.iter().any(|e| e["source"] == "tracker"), "{c:?}");
    seeder.proc.signal(libc::SIGTERM);
    seeder.finish(Duration::from_secs(15));
}

#[test]
fn libtorrent_peers_meet_through_bt_fetch_pex() {
    let tmp = temp("magnet-pex-send");
    let data = single_file(&tmp.join("seed"), "s.bin", 16 << 20, 96);
    let torrent = make_torrent(&data, &tmp.join("s.torrent"), "256K");
    let t = torrent.to_str().unwrap();
    // A slow bt-fetch seeder, so that the two libtorrent leechers stay
    // leechers (and connected) for a while; they know only the seeder.
    let mut seeder = Fetch::seeder(t, &tmp.join("seed"), &["--max-upload-rate", "200K"]);
    let s = seeder.addr();
    let mut p = Lt::start("leech", t, &tmp.join("p"), 0, std::slice::from_ref(&s));
    p.wait_line(
        |l| l.starts_with("peers") && l.contains(&s),
        Duration::from_secs(60),
    );
    let mut l = Lt::start("leech", t, &tmp.join("l"), 0, std::slice::from_ref(&s));
    // The seeder's first PEX message to l (5 s after its handshake) names
    // p, and the other way round a minute later at most: one of them
    // dials the other.
    let (lp, pp) = (format!(":{}", l.port), format!(":{}", p.port));
    let end = Instant::now() + Duration::from_secs(100);
    loop {
        assert!(Instant::now() < end, "the libtorrent peers never met");
        let line = |x: &mut Lt| x.lines.next(Duration::from_millis(200));
        if line(&mut l).is_some_and(|x| x.starts_with("peers") && x.contains(&pp))
            || line(&mut p).is_some_and(|x| x.starts_with("peers") && x.contains(&lp))
        {
            break;
        }
    }
    seeder.proc.signal(libc::SIGTERM);
}

#[test]
fn every_fixture_magnet_round_trips_through_bt_meta() {
    let dir = common::fixtures();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap().take(200) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "torrent") {
            continue;
        }
        let out = common::run(common::bt_meta().arg("info").arg(&path));
        if !out.status.success() {
            continue; // the invalid fixtures
        }
        let v = common::json(&out.stdout);
        let link = v["magnet"].as_str().unwrap();
        let back = common::run(common::bt_meta().args(["info", link]));
        assert!(
            back.status.success(),
            "{link}: {}",
            String::from_utf8_lossy(&back.stderr)
        );
        let m = common::json(&back.stdout);
        assert_eq!(m["info_hash"], v["info_hash"], "{link}");
        assert_eq!(m["name"], v["name"], "{link}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} fixtures");
}

#[test]
fn magnet_download_with_encryption_required() {
    let tmp = temp("magnet-rc4");
    let data = single_file(&tmp.join("seed"), "e.bin", 3 << 20, 97);
    let torrent = make_torrent(&data, &tmp.join("e.torrent"), "16K");
    let hash = info_hash_of(&torrent);
    let mut seeder = Fetch::seeder(torrent.to_str().unwrap(), &tmp.join("seed"), &[]);
    let link = format!(
        "magnet:?xt=urn:btih:{hash}&x.pe=127.0.0.1:{}",
        seeder.port()
    );
    let out = tmp.join("leech");
    let mut leech = Fetch::local(
        "magnet leecher",
        &link,
        out.to_str().unwrap(),
        &["--encryption", "require"],
    );
    leech.finish(LIMIT);
    assert_same(&data, &out.join("e.bin"));
    // Both phases (metadata, then pieces) went over RC4.
    let c = leech.events_named("peer_connected");
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c.iter().all(|e| e["encryption"] == "rc4"), "{c:?}");
    seeder.proc.signal(libc::SIGTERM);
}

//! bt-announce against broken and hostile trackers: small fake servers on
//! threads in this test, each bounded in time. Nothing may hang or panic;
//! every failure must be a clear message naming the tracker, exit code 1.

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bt::bencode::OwnedValue;
use tracker::*;

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// bt-announce for HASH at `url` with extra args; 60 s at most.
fn ask(url: &str, extra: &[&str]) -> (std::process::Output, Duration) {
    run_bounded(
        bt_announce()
            .args(["--info-hash", HASH, "-t", url])
            .args(extra),
        Duration::from_secs(60),
    )
}

fn assert_fails(out: &std::process::Output, url: &str, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(out.stdout.is_empty(), "no data on stdout");
    assert!(err.contains(url), "error names the tracker: {err}");
    for w in words {
        assert!(err.contains(w), "error mentions '{w}': {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// A server answering every request with these bytes, then closing.
fn answering(bytes: Vec<u8>) -> FakeServer {
    FakeServer::start(move |mut conn, _| {
        read_request(&mut conn);
        let _ = conn.write_all(&bytes);
    })
}

fn http_ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn compact_answer(peers: &[u8]) -> Vec<u8> {
    let mut d = OwnedValue::dict();
    d.insert("interval", 1800i64).insert("peers", peers);
    d.encode()
}

#[test]
fn silent_tracker_is_bounded_by_timeout() {
    let server = FakeServer::start(|mut conn, _| {
        read_request(&mut conn);
        std::thread::sleep(Duration::from_secs(20));
    });
    let url = server.url("/announce");
    let (out, took) = ask(&url, &["--timeout", "2"]);
    assert_fails(&out, &url, &["timed out"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn garbage_answers() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"\x00\x01\x02garbage\r\n\r\n".to_vec(),
            "malformed HTTP response",
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n<html>not bencode</html>".to_vec(),
            "not bencoded",
        ),
        (http_ok(b"li1ei2ee"), "expected a dictionary"),
        (http_ok(b"d8:intervali-1ee"), "negative"),
        (
            b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "HTTP status 500",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nd8:interval".to_vec(),
            "connection closed",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nd8:in".to_vec(),
            "chunked",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n".to_vec(),
            "chunk size",
        ),
        (Vec::new(), "without sending a response"),
    ];
    for (bytes, words) in cases {
        let server = answering(bytes);
        let url = server.url("/announce");
        let (out, _) = ask(&url, &["--timeout", "10"]);
        assert_fails(&out, &url, &[words]);
    }
}

#[test]
fn failure_reason_and_warning_are_shown() {
    let mut d = OwnedValue::dict();
    d.insert("failure reason", "torrent not registered");
    let server = answering(http_ok(&d.encode()));
    let url = server.url("/announce");
    let (out, _) = ask(&url, &[]);
    assert_fails(&out, &url, &["tracker refused: torrent not registered"]);

    let mut d = OwnedValue::dict();
    d.insert("interval", 60i64)
        .insert("warning message", "please upgrade")
        .insert("peers", &[10u8, 0, 0, 1, 0, 80][..]);
    let server = answering(http_ok(&d.encode()));
    let (out, _) = ask(&server.url("/announce"), &[]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("please upgrade"), "{}", stderr(&out));
    assert_eq!(peer_addrs(&out.stdout), ["10.0.0.1:80"]);
}

/// A server that streams `total` bytes of body (or until the client
/// leaves) with the given head; counts what it wrote.
fn streaming(head: &'static str, chunked: bool, written: Arc<AtomicU64>) -> FakeServer {
    FakeServer::start(move |mut conn, _| {
        read_request(&mut conn);
        let _ = conn.write_all(head.as_bytes());
        let block = vec![b'x'; 64 << 10];
        let started = Instant::now();
        // At most 4 GiB or 60 s: the client must leave long before.
        while written.load(Ordering::SeqCst) < 4 << 30
            && started.elapsed() < Duration::from_secs(60)
        {
            let ok = if chunked {
                conn.write_all(format!("{:x}\r\n", block.len()).as_bytes())
                    .and_then(|_| conn.write_all(&block))
                    .and_then(|_| conn.write_all(b"\r\n"))
            } else {
                conn.write_all(&block)
            };
            if ok.is_err() {
                break;
            }
            written.fetch_add(block.len() as u64, Ordering::SeqCst);
        }
    })
}

#[test]
fn endless_bodies_are_cut_at_the_size_limit() {
    for (head, chunked) in [
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nd5:peers999999999:",
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        ),
    ] {
        let written = Arc::new(AtomicU64::new(0));
        let server = streaming(head, chunked, written.clone());
        let url = server.url("/announce");
        let (out, took) = ask(&url, &["--timeout", "30"]);
        assert_fails(&out, &url, &["larger than the limit of 4194304 bytes"]);
        assert!(took < Duration::from_secs(20), "{took:?}");
        // The client stopped reading at the cap: the server could only get
        // the cap plus what the socket buffers hold into the connection.
        std::thread::sleep(Duration::from_millis(200));
        let w = written.load(Ordering::SeqCst);
        assert!(w < 64 << 20, "the server wrote {w} bytes");
    }
    // A declared length over the limit is refused before reading it.
    let server = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\nd".to_vec());
    let url = server.url("/announce");
    let (out, _) = ask(&url, &[]);
    assert_fails(&out, &url, &["larger than the limit"]);
    // --max-response lowers the limit.
    let server = answering(http_ok(&compact_answer(&[1; 600])));
    let url = server.url("/announce");
    let (out, _) = ask(&url, &["--max-response", "100"]);
    assert_fails(&out, &url, &["larger than the limit of 100 bytes"]);
}

#[test]
fn redirects_are_followed_and_bounded() {
    // A loop: every answer redirects to the next path.
    let looping = FakeServer::start(|mut conn, n| {
        read_request(&mut conn);
        let _ = write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: /announce{n}\r\nContent-Length: 0\r\n\r\n"
        );
    });
    let url = looping.url("/announce");
    let (out, took) = ask(&url, &[]);
    assert_fails(&out, &url, &["too many redirects"]);
    assert!(took < Duration::from_secs(10));
    assert_eq!(looping.accepted(), 6, "the first request and 5 redirects");

    // Relative, absolute-path and absolute redirects reaching a real answer.
    let target = answering(http_ok(&compact_answer(&[10, 0, 0, 9, 0, 99])));
    let target_url = target.url("/real/announce");
    let hops = FakeServer::start(move |mut conn, _| {
        let line = read_request(&mut conn);
        let location = if line.starts_with("GET /a/announce") {
            "next?hop=1".to_string() // relative: /a/next?hop=1
        } else if line.starts_with("GET /a/next?hop=1") {
            "/b/last".to_string()
        } else {
            target_url.clone()
        };
        let _ = write!(conn, "HTTP/1.1 301 Moved\r\nLocation: {location}\r\n\r\n");
    });
    let (out, _) = ask(&hops.url("/a/announce"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer_addrs(&out.stdout), ["10.0.0.9:99"]);
}

#[test]
fn chunked_answer_in_small_writes() {
    let body = compact_answer(&[10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2]);
    let server = FakeServer::start(move |mut conn, _| {
        read_request(&mut conn);
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(5) {
            let _ = write!(conn, "{:x};ext=1\r\n", piece.len());
            let _ = conn.write_all(piece);
            let _ = conn.write_all(b"\r\n");
            let _ = conn.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = conn.write_all(b"0\r\n\r\n");
    });
    let (out, _) = ask(&server.url("/announce"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer_addrs(&out.stdout), ["10.0.0.1:6881", "10.0.0.2:6882"]);
}

#[test]
fn dictionary_peers_and_peers6() {
    let peer = |ip: &str, port: i64, id: &[u8]| {
        let mut p = OwnedValue::dict();
        p.insert("ip", ip)
            .insert("port", port)
            .insert("peer id", id);
        p
    };
    let mut v6 = vec![0u8; 16];
    v6[15] = 1;
    v6.extend_from_slice(&[0x1f, 0x90]);
    let mut d = OwnedValue::dict();
    d.insert("interval", 900i64)
        .insert("min interval", 60i64)
        .insert("complete", 5i64)
        .insert("incomplete", 6i64)
        .insert("tracker id", "T-1")
        .insert(
            "peers",
            vec![
                peer("10.1.2.3", 51413, b"-TR3000-abcdefghijkl"),
                peer("fe80::1", 7000, b"-qB4520-abcdefghijkl"),
            ],
        )
        .insert("peers6", v6);
    let server = answering(http_ok(&d.encode()));
    let url = server.url("/announce");
    let (out, _) = ask(&url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["ip"], "10.1.2.3");
    assert_eq!(lines[0]["port"], 51413);
    assert_eq!(
        lines[0]["peer_id"],
        bt::hex::encode(b"-TR3000-abcdefghijkl")
    );
    assert_eq!(lines[0]["tracker"], url.as_str());
    assert_eq!(lines[1]["ip"], "fe80::1");
    assert_eq!(
        (lines[2]["ip"].as_str(), lines[2]["port"].as_u64()),
        (Some("::1"), Some(8080))
    );
    assert!(lines[2].get("peer_id").is_none());

    let (out, _) = ask(&url, &["--response"]);
    let r = &json_lines(&out.stdout)[0];
    assert_eq!(r["interval"], 900);
    assert_eq!(r["min_interval"], 60);
    assert_eq!(
        (r["complete"].as_u64(), r["incomplete"].as_u64()),
        (Some(5), Some(6))
    );
    assert_eq!(r["tracker_id"], "T-1");
    assert_eq!(r["peers"].as_array().unwrap().len(), 3);
}

/// A tracker double that records request lines and answers from a list.
fn recording(answers: Vec<Vec<u8>>) -> (FakeServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let server = FakeServer::start(move |mut conn, n| {
        let line = read_request(&mut conn);
        s.lock().unwrap().push(line);
        let body = &answers[n.min(answers.len() - 1)];
        let _ = conn.write_all(&http_ok(body));
    });
    (server, seen)
}

#[test]
fn announce_url_carries_every_parameter() {
    let (server, seen) = recording(vec![compact_answer(&[])]);
    let url = server.url("/announce.php?passkey=abc");
    let (out, _) = ask(
        &url,
        &[
            "--port",
            "51413",
            "--peer-id",
            "-XX0001-a b~c.d_e-fg",
            "--numwant",
            "33",
            "--uploaded",
            "5",
            "--downloaded",
            "6",
            "--left",
            "7",
        ],
    );
    // An empty swarm is a success.
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let line = seen.lock().unwrap()[0].clone();
    let encoded_hash = "%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg";
    for part in [
        "GET /announce.php?passkey=abc&info_hash=",
        &format!("info_hash={encoded_hash}&"),
        "peer_id=-XX0001-a%20b~c.d_e-fg&",
        "port=51413&",
        "uploaded=5&",
        "downloaded=6&",
        "left=7&",
        "compact=1",
        "numwant=33",
        "event=started",
        "&key=",
        " HTTP/1.1",
    ] {
        assert!(line.contains(part), "'{part}' in {line}");
    }
}

#[test]
fn follow_prints_new_peers_sends_trackerid_and_stops_when_stdout_closes() {
    let answer = |peers: &[u8]| {
        let mut d = OwnedValue::dict();
        d.insert("interval", 1i64)
            .insert("tracker id", "tid 7")
            .insert("peers", peers);
        d.encode()
    };
    let (server, seen) = recording(vec![
        answer(&[10, 0, 0, 1, 0, 1, 10, 0, 0, 2, 0, 2]),
        answer(&[10, 0, 0, 2, 0, 2, 10, 0, 0, 3, 0, 3]),
        answer(&[10, 0, 0, 3, 0, 3]),
    ]);
    let url = server.url("/announce");
    let mut child = ChildGuard(
        bt_announce()
            .args([
                "--info-hash",
                HASH,
                "-t",
                &url,
                "--follow",
                "--interval",
                "1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    for _ in 0..3 {
        let line = lines.next().expect("a peer line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        got.push(format!("{}:{}", v["ip"].as_str().unwrap(), v["port"]));
    }
    assert_eq!(got, ["10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"]);
    drop(lines); // closes our end of the pipe
    let status = child.wait_exit(Duration::from_secs(20), "still running after stdout closed");
    assert!(status.success(), "{status}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen[0].contains("event=started") && !seen[0].contains("trackerid"),
        "{}",
        seen[0]
    );
    assert!(
        !seen[1].contains("event=") && seen[1].contains("trackerid=tid%207"),
        "{}",
        seen[1]
    );
    let last = seen.last().unwrap();
    assert!(
        last.contains("event=stopped") && last.contains("trackerid=tid%207"),
        "{last}"
    );
}

#[test]
fn tiers_fall_back_to_the_next_tracker() {
    // A port where nothing listens, a tracker that refuses, then a good one.
    let dead = format!("http://127.0.0.1:{}/announce", free_port());
    let mut d = OwnedValue::dict();
    d.insert("failure reason", "go away");
    let refusing = answering(http_ok(&d.encode()));
    let good = answering(http_ok(&compact_answer(&[10, 0, 0, 5, 0, 5])));
    let refusing_url = refusing.url("/announce");
    let good_url = good.url("/announce");
    let (out, _) = ask(
        &dead,
        &["-t", &refusing_url, "-t", &good_url, "--timeout", "5", "-v"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out.stdout)[0]["tracker"], good_url.as_str());
    // All failing: every error is told, exit 1.
    let (out, _) = ask(&dead, &["-t", &refusing_url, "--timeout", "5"]);
    assert_fails(&out, &dead, &["cannot connect", &refusing_url, "go away"]);
}

#[test]
fn ipv6_literal_hosts() {
    let listener = std::net::TcpListener::bind("[::1]:0").expect(
        "IPv6 loopback [::1] is needed for this test (enable IPv6 on lo: sysctl net.ipv6.conf.lo.disable_ipv6=0)",
    );
    let port = listener.local_addr().unwrap().port();
    let host_header = Arc::new(Mutex::new(String::new()));
    let h = host_header.clone();
    let thread = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n")
            && head.len() < 10000
            && conn.read(&mut byte).unwrap_or(0) == 1
        {
            head.push(byte[0]);
        }
        *h.lock().unwrap() = String::from_utf8_lossy(&head).into_owned();
        let _ = conn.write_all(&http_ok(&compact_answer(&[10, 0, 0, 6, 0, 6])));
    });
    let (out, _) = ask(&format!("http://[::1]:{port}/announce"), &[]);
    thread.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(host_header
        .lock()
        .unwrap()
        .contains(&format!("Host: [::1]:{port}\r\n")));
    assert_eq!(peer_addrs(&out.stdout), ["10.0.0.6:6"]);
}

#[test]
fn scrape_needs_an_announce_url() {
    let server = answering(http_ok(b"de"));
    let url = server.url("/tracker");
    let (out, _) = ask(&url, &["--scrape"]);
    assert_fails(&out, &url, &["no scrape URL"]);
    assert_eq!(server.accepted(), 0);
}

// ---- UDP ------------------------------------------------------------------

/// A fake UDP tracker: `handle` gets each datagram and returns the replies
/// to send. Stops after 60 s or when the returned guard drops.
struct FakeUdp {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    received: Arc<AtomicUsize>,
}

impl Drop for FakeUdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn fake_udp(handle: impl Fn(&[u8], usize) -> Vec<Vec<u8>> + Send + 'static) -> FakeUdp {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let (s, r) = (stop.clone(), received.clone());
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        while !s.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let count = r.fetch_add(1, Ordering::SeqCst);
                for reply in handle(&buf[..n], count) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        }
    });
    FakeUdp {
        port,
        stop,
        received,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn reply(action: u32, tid: u32, rest: &[u8]) -> Vec<u8> {
    let mut r = action.to_be_bytes().to_vec();
    r.extend_from_slice(&tid.to_be_bytes());
    r.extend_from_slice(rest);
    r
}

#[test]
fn udp_ignores_wrong_transaction_ids_and_short_packets() {
    let server = fake_udp(|p, _| {
        if p.len() < 16 {
            return vec![];
        }
        let action = be32(p, 8);
        let tid = be32(p, 12);
        match action {
            0 => vec![
                reply(0, tid ^ 1, &99u64.to_be_bytes()),
                vec![0, 0, 0],
                reply(0, tid, &[0, 0]),
                reply(0, tid, &99u64.to_be_bytes()),
            ],
            1 => {
                assert_eq!(&p[..8], &99u64.to_be_bytes());
                let mut good = vec![0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2];
                good.extend_from_slice(&[10, 0, 0, 7, 0x1a, 0xe1]);
                vec![
                    reply(1, tid.wrapping_add(1), &good),
                    reply(1, tid, &good[..5]),
                    b"\xff\xff\xff\xffjunk".to_vec(),
                    reply(1, tid, &good),
                ]
            }
            _ => vec![],
        }
    });
    let url = format!("udp://127.0.0.1:{}", server.port);
    let (out, took) = ask(&url, &["--timeout", "10", "--response"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &json_lines(&out.stdout)[0];
    assert_eq!(r["peers"][0]["ip"], "10.0.0.7");
    assert_eq!(
        (r["complete"].as_u64(), r["incomplete"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(took < Duration::from_secs(5));
}

#[test]
fn udp_retransmits_on_a_short_schedule() {
    // Drops the first two connects.
    let server = fake_udp(|p, n| {
        let tid = be32(p, 12);
        match (be32(p, 8), n) {
            (0, 0 | 1) => vec![],
            (0, _) => vec![reply(0, tid, &5u64.to_be_bytes())],
            (1, _) => vec![reply(1, tid, &[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0])],
            _ => vec![],
        }
    });
    let url = format!("udp://127.0.0.1:{}", server.port);
    let (out, took) = ask(&url, &["--timeout", "20", "--udp-retransmit-base", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Sent at 0, 100 ms and 300 ms.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(server.received.load(Ordering::SeqCst), 4);
}

#[test]
fn udp_error_action_and_silence() {
    let server = fake_udp(|p, _| {
        let tid = be32(p, 12);
        match be32(p, 8) {
            0 => vec![reply(0, tid, &5u64.to_be_bytes())],
            _ => vec![reply(3, tid, b"torrent banned")],
        }
    });
    let url = format!("udp://127.0.0.1:{}", server.port);
    let (out, _) = ask(&url, &[]);
    assert_fails(&out, &url, &["tracker refused: torrent banned"]);
    let (out, _) = ask(&url, &["--scrape"]);
    assert_fails(&out, &url, &["torrent banned"]);

    let silent = fake_udp(|_, _| vec![]);
    let url = format!("udp://127.0.0.1:{}", silent.port);
    let (out, took) = ask(&url, &["--timeout", "1.5", "--udp-retransmit-base", "200"]);
    assert_fails(&out, &url, &["timed out", "no UDP answer"]);
    assert!(took < Duration::from_secs(6), "{took:?}");
    // 0, 200, 600 ms (and 1400 ms) before the deadline.
    assert!((3..=4).contains(&silent.received.load(Ordering::SeqCst)));
}

#[test]
fn udp_scrape() {
    let server = fake_udp(|p, _| {
        let tid = be32(p, 12);
        match be32(p, 8) {
            0 => vec![reply(0, tid, &5u64.to_be_bytes())],
            2 => {
                assert_eq!(p.len(), 36);
                vec![reply(2, tid, &[0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 3])]
            }
            _ => vec![],
        }
    });
    let url = format!("udp://127.0.0.1:{}", server.port);
    let (out, _) = ask(&url, &["--scrape"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = &json_lines(&out.stdout)[0];
    assert_eq!(s["info_hash"], HASH);
    assert_eq!(
        (
            s["seeders"].as_u64(),
            s["leechers"].as_u64(),
            s["completed"].as_u64()
        ),
        (Some(4), Some(3), Some(9))
    );
}

#[test]
fn usage_errors() {
    let (out, _) = run_bounded(
        bt_announce().args(["--info-hash", "xyz", "-t", "http://h/announce"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let (out, _) = run_bounded(
        bt_announce().args(["--info-hash", HASH]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let (out, _) = run_bounded(
        bt_announce().args(["--info-hash", HASH, "-t", "ftp://h/"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let (out, _) = run_bounded(
        bt_announce().args(["--info-hash", HASH, "-t", "udp://h:1", "--peer-id", "x"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let tmp = common::TempDir::new("bad-torrent");
    std::fs::write(tmp.join("bad.torrent"), b"not a torrent").unwrap();
    let (out, _) = run_bounded(
        bt_announce().arg(tmp.join("bad.torrent")),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn udp_over_ipv6_reads_18_byte_peers() {
    let socket = UdpSocket::bind("[::1]:0").expect(
        "IPv6 loopback [::1] is needed for this test (enable IPv6 on lo: sysctl net.ipv6.conf.lo.disable_ipv6=0)",
    );
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..2 {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let p = &buf[..n];
            let tid = be32(p, 12);
            let answer = match be32(p, 8) {
                0 => reply(0, tid, &5u64.to_be_bytes()),
                _ => {
                    let mut rest = vec![0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2];
                    let mut peer = [0u8; 18];
                    peer[0] = 0x20;
                    peer[1] = 0x01;
                    peer[2] = 0x0d;
                    peer[3] = 0xb8;
                    peer[15] = 9;
                    peer[17] = 42;
                    rest.extend_from_slice(&peer);
                    reply(1, tid, &rest)
                }
            };
            let _ = socket.send_to(&answer, from);
        }
    });
    let (out, _) = ask(
        &format!("udp://[::1]:{port}/announce"),
        &["--timeout", "10"],
    );
    server.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer_addrs(&out.stdout), ["2001:db8::9:42"]);
}

#[test]
fn library_promotes_the_tracker_that_answers() {
    use bt::tracker::{AnnounceRequest, Event, TrackerOptions, Trackers};
    let dead = format!("http://127.0.0.1:{}/announce", free_port());
    let good = answering(http_ok(&compact_answer(&[10, 0, 0, 8, 0, 8])));
    let good_url = good.url("/announce");
    let backup = format!("udp://127.0.0.1:{}", free_port());
    let mut trackers = Trackers::in_order(vec![
        vec![dead.clone(), good_url.clone()],
        vec![backup.clone()],
    ]);
    let req = AnnounceRequest {
        info_hash: [1; 20],
        peer_id: *b"-BT0100-abcdefghijkl",
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        numwant: None,
        key: 7,
    };
    let opts = TrackerOptions::default().with_timeout(Duration::from_secs(5));
    let (url, answer) = trackers
        .announce(&req, &opts)
        .expect("the second tracker answers");
    assert_eq!(url, good_url);
    assert_eq!(answer.peers[0].addr.to_string(), "10.0.0.8:8");
    assert_eq!(
        trackers.urls(),
        [good_url.as_str(), dead.as_str(), backup.as_str()]
    );
    // Shuffling keeps every tracker in its tier.
    let shuffled = Trackers::new(
        vec![vec![dead.clone(), good_url.clone()], vec![backup.clone()]],
        &mut rand::thread_rng(),
    );
    assert_eq!(shuffled.urls()[2], backup);
}

//! Web seeds (BEP 19) against a real nginx (Debian `nginx-light`) on
//! loopback ports with a throw-away configuration: single- and multi-file
//! torrents from the web seed alone (plain and HTTPS with a throw-away
//! CA), a libtorrent seeder and a web seed together, and faulty servers
//! (a 404 for one file, Range ignored, truncated bodies, a corrupted
//! piece) beside an honest one. nginx runs in the foreground and is
//! killed by its PID when the test ends.

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::*;

const LIMIT: Duration = Duration::from_secs(120);

/// One nginx serving several `server` blocks, each on its own port.
struct Nginx {
    /// Killed by its PID when dropped.
    _proc: Proc,
    ports: Vec<u16>,
}

/// A `server` block: its root and extra directives.
struct Site {
    root: PathBuf,
    extra: String,
    tls: Option<(PathBuf, PathBuf)>,
}

impl Site {
    fn plain(root: &Path) -> Site {
        Site {
            root: root.to_path_buf(),
            extra: String::new(),
            tls: None,
        }
    }
    fn with(root: &Path, extra: &str) -> Site {
        Site {
            root: root.to_path_buf(),
            extra: extra.to_string(),
            tls: None,
        }
    }
}

impl Nginx {
    fn start(dir: &Path, sites: &[Site]) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| common::require_tool("nginx", "nginx-light"));
        let conf_dir = dir.join("nginx");
        std::fs::create_dir_all(conf_dir.join("tmp")).unwrap();
        let mut servers = String::new();
        let mut ports = Vec::new();
        for s in sites {
            let port = free_port();
            ports.push(port);
            let (listen, tls) = match &s.tls {
                Some((cert, key)) => (
                    format!("127.0.0.1:{port} ssl"),
                    format!(
                        "ssl_certificate {};\n ssl_certificate_key {};\n",
                        cert.display(),
                        key.display()
                    ),
                ),
                None => (format!("127.0.0.1:{port}"), String::new()),
            };
            servers.push_str(&format!(
                "server {{\n listen {listen};\n {tls} root {};\n {}\n}}\n",
                s.root.display(),
                s.extra
            ));
        }
        let d = conf_dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n sendfile on;\n keepalive_requests 100000;\n\
             client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n\
             fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
             default_type application/octet-stream;\n{servers}}}\n"
        );
        let conf_path = conf_dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(&conf_dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(conf_dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let proc = Proc::spawn("nginx", &mut cmd);
        for &p in &ports {
            common::clients::wait_port(p, Duration::from_secs(20));
        }
        Nginx { _proc: proc, ports }
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.ports[i])
    }
}

fn torrent_with_seeds(data: &Path, out: &Path, piece: &str, seeds: &[String]) -> PathBuf {
    let mut cmd = common::bt_meta();
    cmd.args(["create", "-q", "--no-date", "-l", piece, "-o"])
        .arg(out)
        .arg(data);
    for s in seeds {
        cmd.arg("-w").arg(s);
    }
    common::run_ok(&mut cmd);
    out.to_path_buf()
}

fn fetch(label: &str, torrent: &Path, out: &Path, extra: &[&str]) -> Fetch {
    let mut args = vec!["--rng-seed", "1"];
    args.extend_from_slice(extra);
    Fetch::local(
        label,
        torrent.to_str().unwrap(),
        out.to_str().unwrap(),
        &args,
    )
}

fn web_seed_bytes(done: &serde_json::Value, url: &str) -> u64 {
    done["web_seeds"]
        .as_array()
        .unwrap_or_else(|| panic!("no web_seeds in {done}"))
        .iter()
        .find(|w| w["url"] == url)
        .unwrap_or_else(|| panic!("{url} not in {done}"))["downloaded"]
        .as_u64()
        .unwrap()
}

#[test]
fn single_file_from_the_web_seed_alone() {
    let tmp = temp("ws-single");
    let root = tmp.join("www");
    let data = single_file(&root, "single file.bin", 3_000_017, 1);
    let ng = Nginx::start(tmp.path(), &[Site::plain(&root)]);
    // A URL ending in '/' gets the name appended.
    let base = ng.url(0, "");
    let torrent = torrent_with_seeds(
        &data,
        &tmp.join("s.torrent"),
        "256K",
        std::slice::from_ref(&base),
    );
    let out = tmp.join("out");
    let mut f = fetch("single", &torrent, &out, &[]);
    let done = f.finish(LIMIT);
    assert_same(&data, &out.join("single file.bin"));
    assert_eq!(web_seed_bytes(&done, &base), 3_000_017, "{done}");
    assert_eq!(done["hash_failures"], 0);
    let c = f.events_named("peer_connected");
    assert!(
        c.iter()
            .any(|e| e["source"] == "web_seed" && e["url"] == base),
        "{c:?}"
    );
    assert!(f.stderr_text().is_empty() || !f.stderr_text().contains("error"));
    drop(ng);
}

#[test]
fn multi_file_over_https_from_the_web_seed_alone() {
    let tmp = temp("ws-multi");
    let www = tmp.join("www");
    let tree = multi_file(&www, "the tree", 7);
    // Names with spaces and unicode, in a nested folder.
    let odd = tree.join("dossier été/sous dossier");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(
        odd.join("fichier ü #1.bin"),
        common::random_bytes(9, 333_333),
    )
    .unwrap();
    std::fs::write(odd.join("vide"), b"").unwrap();
    let ca = tracker::make_ca(tmp.path(), "ca");
    let (cert, key) = tracker::make_server_cert(tmp.path(), &ca, "IP:127.0.0.1,DNS:localhost");
    let ng = Nginx::start(
        tmp.path(),
        &[Site {
            root: www.clone(),
            extra: String::new(),
            tls: Some((cert, key)),
        }],
    );
    let base = format!("https://localhost:{}", ng.ports[0]);
    let torrent = torrent_with_seeds(
        &tree,
        &tmp.join("m.torrent"),
        "64K",
        std::slice::from_ref(&base),
    );
    let out = tmp.join("out");
    let mut f = fetch(
        "multi",
        &torrent,
        &out,
        &["--ca-file", ca.0.to_str().unwrap()],
    );
    let done = f.finish(LIMIT);
    assert_same(&tree, &out.join("the tree"));
    assert!(web_seed_bytes(&done, &base) > 10_000_000, "{done}");
    drop(ng);
}

/// A multi-file tree served honestly by server 1 and badly by server 0
/// (listed first, so it gets the first ranges); returns the done event and
/// the log.
fn with_a_bad_server(
    label: &str,
    bad: impl FnOnce(&Path, &Path) -> Site,
    corrupt_last_piece: bool,
    extra: &[&str],
    honest_rate: &str,
) -> (serde_json::Value, String, String, Fetch) {
    let tmp = temp(label);
    let www = tmp.join("www");
    let data = single_file(&www, "data.bin", 2_000_000, 3);
    let bad_root = tmp.join("bad");
    std::fs::create_dir_all(&bad_root).unwrap();
    std::fs::copy(&data, bad_root.join("data.bin")).unwrap();
    if corrupt_last_piece {
        let mut bytes = std::fs::read(bad_root.join("data.bin")).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff;
        std::fs::write(bad_root.join("data.bin"), bytes).unwrap();
    }
    // The honest server is slowed down so that the bad one gets its turn.
    let ng = Nginx::start(
        tmp.path(),
        &[
            bad(&www, &bad_root),
            Site::with(&www, &format!("limit_rate {honest_rate};")),
        ],
    );
    let bad_url = ng.url(0, "data.bin");
    let good_url = ng.url(1, "data.bin");
    let torrent = torrent_with_seeds(
        &data,
        &tmp.join("t.torrent"),
        "128K",
        &[bad_url.clone(), good_url],
    );
    let out = tmp.join("out");
    let mut args = vec!["-v"];
    args.extend_from_slice(extra);
    let mut f = fetch(label, &torrent, &out, &args);
    let done = f.finish(LIMIT);
    assert_same(&data, &out.join("data.bin"));
    let log = f.stderr_text();
    drop(ng);
    drop(tmp);
    (done, log, bad_url, f)
}

#[test]
fn a_server_ignoring_range_is_named_and_the_download_completes() {
    let (done, log, bad, _) = with_a_bad_server(
        "ws-norange",
        |www, _| Site::with(www, "max_ranges 0;"),
        false,
        // Small ranges: most do not start the file.
        &["--max-memory", "1M"],
        "1m",
    );
    assert!(
        log.contains(&bad) && log.contains("ignores Range"),
        "{log}\n{done}"
    );
}

#[test]
fn a_server_serving_a_corrupted_piece_is_named_and_not_asked_again() {
    let (done, log, bad, f) = with_a_bad_server(
        "ws-corrupt",
        |_, b| Site::plain(b),
        true,
        &[],
        // Slow enough that the bad copy of the last piece always comes first.
        "64k",
    );
    assert!(done["hash_failures"].as_u64().unwrap() >= 1, "{done}");
    let hf = f.events_named("web_seed_hash_failed");
    assert!(hf.iter().any(|e| e["url"] == bad.as_str()), "{hf:?}");
    // Never blamed on a peer.
    assert!(f.events_named("peer_banned").is_empty());
    assert!(
        log.contains(&bad) && log.contains("failed its hash check"),
        "{log}"
    );
}

#[test]
fn a_server_missing_one_file_is_named_and_the_rest_comes_from_another() {
    let tmp = temp("ws-404");
    let www = tmp.join("www");
    let tree = multi_file(&www, "tree", 11);
    let ng = Nginx::start(
        tmp.path(),
        &[
            Site::with(&www, "location = /tree/sub/deeper/c.bin { return 404; }"),
            Site::plain(&www),
        ],
    );
    let bad = ng.url(0, "");
    let good = ng.url(1, "");
    let torrent = torrent_with_seeds(&tree, &tmp.join("t.torrent"), "128K", &[bad.clone(), good]);
    let out = tmp.join("out");
    let mut f = fetch("ws-404", &torrent, &out, &[]);
    let done = f.finish(LIMIT);
    assert_same(&tree, &out.join("tree"));
    let log = f.stderr_text();
    assert!(log.contains(&bad) && log.contains("404"), "{log}\n{done}");
    assert!(
        web_seed_bytes(&done, &bad) > 0,
        "it served the other files: {done}"
    );
    drop(ng);
}

/// A server (on a thread) that answers range requests for one file with
/// the right head and then only half the body.
fn truncating_server(file: PathBuf, stop: Arc<AtomicBool>) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let data = std::fs::read(&file).unwrap();
        let end = Instant::now() + LIMIT;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
                match s.read(&mut b) {
                    Ok(n) if n > 0 => req.extend_from_slice(&b[..n]),
                    _ => break,
                }
            }
            let text = String::from_utf8_lossy(&req).to_string();
            let range = text
                .lines()
                .find_map(|l| l.strip_prefix("Range: bytes="))
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| {
                    Some((a.parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?))
                });
            let Some((a, b)) = range else { continue };
            let b = b.min(data.len() - 1);
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n\r\n",
                data.len(),
                b + 1 - a
            );
            let half = a + (b + 1 - a) / 2;
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&data[a..half]);
        }
    });
    (port, h)
}

#[test]
fn a_server_truncating_bodies_is_named_and_the_download_completes() {
    let tmp = temp("ws-trunc");
    let www = tmp.join("www");
    let data = single_file(&www, "data.bin", 1_000_000, 5);
    // nginx lets a second's worth through at once: 64k keeps the honest
    // server slower than the bad one.
    let ng = Nginx::start(tmp.path(), &[Site::with(&www, "limit_rate 64k;")]);
    let stop = Arc::new(AtomicBool::new(false));
    let (port, h) = truncating_server(data.clone(), stop.clone());
    let bad = format!("http://127.0.0.1:{port}/data.bin");
    let good = ng.url(0, "data.bin");
    let torrent = torrent_with_seeds(&data, &tmp.join("t.torrent"), "128K", &[bad.clone(), good]);
    let out = tmp.join("out");
    let mut f = fetch("ws-trunc", &torrent, &out, &["--max-memory", "1M"]);
    let done = f.finish(LIMIT);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert_same(&data, &out.join("data.bin"));
    let log = f.stderr_text();
    assert!(
        log.contains(&bad) && log.contains("short body"),
        "{log}\n{done}"
    );
    drop(ng);
}

#[test]
fn libtorrent_seeder_and_web_seed_both_contribute() {
    let tmp = temp("ws-lt");
    let www = tmp.join("www");
    let data = single_file(&www, "both.bin", 24 << 20, 13);
    // The web seed is rate-limited so that the peer has its share.
    let ng = Nginx::start(tmp.path(), &[Site::with(&www, "limit_rate 4m;")]);
    let url = ng.url(0, "both.bin");
    let torrent = torrent_with_seeds(
        &data,
        &tmp.join("t.torrent"),
        "1M",
        std::slice::from_ref(&url),
    );
    let lt = LtPeer::start("seed", &torrent, &www, &[]);
    let out = tmp.join("out");
    let peer = format!("127.0.0.1:{}", lt.port);
    let mut f = fetch("ws-lt", &torrent, &out, &["--peer", &peer]);
    let done = f.finish(LIMIT);
    assert_same(&data, &out.join("both.bin"));
    let from_web = web_seed_bytes(&done, &url);
    let from_peer: u64 = f
        .events_named("peer_disconnected")
        .iter()
        .filter(|e| e["source"] != "web_seed")
        .map(|e| e["downloaded"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        from_web > 0 && from_peer > 0,
        "web {from_web}, peer {from_peer}: {done}"
    );
    drop(ng);
}

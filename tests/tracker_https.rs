//! HTTPS announces through a real TLS terminator (stunnel4) in front of
//! opentracker, with throw-away certificate authorities made by openssl.

mod common;
#[path = "common/tracker.rs"]
mod tracker;

use std::path::Path;
use std::process::Output;

use common::*;
use tracker::*;

struct Setup {
    tmp: TempDir,
    torrent: String,
    ca: std::path::PathBuf,
    _ot: Opentracker,
    _tls: Stunnel,
    port: u16,
}

/// opentracker behind stunnel with a certificate for `sans`.
fn setup(sans: &str) -> Setup {
    let tmp = TempDir::new("https");
    let (torrent, hash) = make_torrent(tmp.path(), "tls", &[]);
    let ot = Opentracker::start(&[&hash]);
    let ca = make_ca(tmp.path(), "ca");
    let (cert, key) = make_server_cert(tmp.path(), &ca, sans);
    let tls = Stunnel::start(tmp.path(), &cert, &key, ot.port);
    Setup {
        port: tls.port,
        torrent: torrent.to_str().unwrap().to_string(),
        ca: ca.0,
        tmp,
        _ot: ot,
        _tls: tls,
    }
}

impl Setup {
    /// bt-announce of the torrent to `url`, trusting `ca`, with
    /// `--timeout SECONDS`.
    fn announce_trusting(&self, url: &str, ca: &Path, seconds: &str) -> Output {
        let ca = ca.to_str().unwrap();
        announce(&[
            &self.torrent,
            "-t",
            url,
            "--ca-file",
            ca,
            "--timeout",
            seconds,
        ])
    }
}

#[test]
fn announce_and_scrape_over_https_with_a_private_ca() {
    let s = setup("IP:127.0.0.1,DNS:localhost");
    let ca = s.ca.to_str().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/announce", s.port);
        let out = announce(&[&s.torrent, "-t", &url, "--ca-file", ca, "--port", "7777"]);
        assert!(out.status.success(), "{url}: {}", stderr(&out));
        assert_eq!(peer_addrs(&out.stdout), ["127.0.0.1:7777"]);
        let out = announce(&[&s.torrent, "-t", &url, "--ca-file", ca, "--scrape"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(json_lines(&out.stdout)[0]["leechers"], 1);
    }
}

#[test]
fn wrong_ca_is_refused_in_plain_words() {
    let s = setup("IP:127.0.0.1,DNS:localhost");
    let other = make_ca(s.tmp.path(), "other-ca");
    let url = format!("https://127.0.0.1:{}/announce", s.port);
    let out = s.announce_trusting(&url, &other.0, "10");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("certificate") && err.contains("unknown issuer"),
        "{err}"
    );
    // Without --ca-file the system store does not know the private CA either.
    let out = announce(&[&s.torrent, "-t", &url, "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown issuer"), "{}", stderr(&out));
}

#[test]
fn wrong_host_name_is_refused_in_plain_words() {
    let s = setup("DNS:tracker.invalid");
    let url = format!("https://127.0.0.1:{}/announce", s.port);
    let out = s.announce_trusting(&url, &s.ca, "10");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not valid for the host name 127.0.0.1"),
        "{err}"
    );
}

#[test]
fn plain_http_to_a_tls_port_and_tls_to_a_plain_port_fail_cleanly() {
    let s = setup("IP:127.0.0.1");
    let out = announce(&[
        &s.torrent,
        "-t",
        &format!("http://127.0.0.1:{}/announce", s.port),
        "--timeout",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let tls_to_plain = format!("https://127.0.0.1:{}/announce", s._ot.port);
    let out = s.announce_trusting(&tls_to_plain, &s.ca, "5");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
}

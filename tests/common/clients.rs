//! Driving the reference clients headless for the interop tests (see
//! /work/shared/docs/reference-clients.md): aria2, qBittorrent and
//! Transmission. A missing client fails the test naming its package.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::{free_port, Proc};
use super::require_tool;

/// Waits until something accepts connections on `port` (bounded).
pub fn wait_port(port: u16, limit: Duration) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port} after {limit:?}");
}

/// aria2 seeding `torrent` from `dir` (or downloading into it), listening
/// on a port of its own. Returns the process and the port.
pub fn aria2(seed: bool, torrent: &Path, dir: &Path) -> (Proc, u16) {
    let bin = require_tool("aria2c", "aria2");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--dir={}", dir.display()))
        .args([
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--follow-torrent=mem",
            "--file-allocation=falloc",
            "--no-conf=true",
            "--summary-interval=0",
            "--console-log-level=warn",
        ])
        .arg(format!("--listen-port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if seed {
        cmd.args(["-V", "--seed-ratio=0.0", "--seed-time=10"]);
    } else {
        cmd.args(["--seed-time=0"]);
    }
    cmd.arg(torrent);
    let p = Proc::spawn("aria2c", &mut cmd);
    wait_port(port, Duration::from_secs(30));
    (p, port)
}

/// A headless qBittorrent with its own profile; `torrent` is added with
/// `save` as its save path (seeding when the data is there).
pub struct Qbit {
    pub proc: Proc,
    pub port: u16,
    pub webui: u16,
}

pub fn qbittorrent(profile: &Path, torrent: &Path, save: &Path) -> Qbit {
    let bin = require_tool("qbittorrent-nox", "qbittorrent-nox");
    let port = free_port();
    let webui = free_port();
    let conf_dir = profile.join("qBittorrent/config");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("qBittorrent.conf"),
        format!(
            "[LegalNotice]\nAccepted=true\n\n[BitTorrent]\nSession\\DHTEnabled=false\n\
             Session\\LSDEnabled=false\nSession\\PeXEnabled=false\nSession\\BTProtocol=TCP\n\
             Session\\Port={port}\nSession\\QueueingSystemEnabled=false\n\
             Session\\MultiConnectionsPerIp=true\nSession\\Encryption=0\n\n[Network]\nPortForwardingEnabled=false\n\n\
             [Preferences]\nConnection\\UPnP=false\nWebUI\\Address=127.0.0.1\nWebUI\\Port={webui}\n\
             WebUI\\LocalHostAuth=false\nWebUI\\CSRFProtection=false\nWebUI\\HostHeaderValidation=false\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--profile={}", profile.display()))
        .arg(format!("--webui-port={webui}"))
        .arg(format!("--save-path={}", save.display()))
        .args(["--skip-dialog=true", "--add-paused=false"])
        .arg(torrent)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let proc = Proc::spawn("qbittorrent-nox", &mut cmd);
    wait_port(webui, Duration::from_secs(60));
    Qbit { proc, port, webui }
}

/// A plain HTTP GET on loopback; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect web UI");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

impl Qbit {
    /// The torrent's progress (0..1) and state from the web API.
    pub fn progress(&self) -> Option<(f64, String)> {
        let body = http_get(self.webui, "/api/v2/torrents/info");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let t = v.as_array()?.first()?;
        Some((t["progress"].as_f64()?, t["state"].as_str()?.to_string()))
    }

    /// Waits until the torrent is complete (and checked) and seeding.
    pub fn wait_seeding(&self, limit: Duration) {
        let end = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < end {
            last = self.progress();
            if let Some((p, state)) = &last {
                if *p >= 1.0 && (state == "uploading" || state == "stalledUP") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("qBittorrent did not finish within {limit:?}: {last:?}");
    }
}

/// transmission-cli on `torrent` with `dir` as download folder, started
/// with `-et` (encryption tolerated); a marker file is created when the
/// download completes.
pub struct Transmission {
    pub proc: Proc,
    pub port: u16,
    pub marker: std::path::PathBuf,
}

pub fn transmission(cfg: &Path, torrent: &Path, dir: &Path) -> Transmission {
    transmission_with(cfg, torrent, dir, &["-et"])
}

/// transmission-cli in its default settings (encryption preferred: it
/// opens its own connections with MSE).
pub fn transmission_default(cfg: &Path, torrent: &Path, dir: &Path) -> Transmission {
    transmission_with(cfg, torrent, dir, &[])
}

/// transmission-cli with `extra` options (e.g. `-et`) before the torrent.
pub fn transmission_with(cfg: &Path, torrent: &Path, dir: &Path, extra: &[&str]) -> Transmission {
    let bin = require_tool("transmission-cli", "transmission-cli");
    let port = free_port();
    std::fs::create_dir_all(cfg).unwrap();
    std::fs::write(
        cfg.join("settings.json"),
        format!(
            "{{\"dht-enabled\":false,\"lpd-enabled\":false,\"pex-enabled\":false,\"utp-enabled\":false,\
             \"port-forwarding-enabled\":false,\"peer-port\":{port},\"peer-port-random-on-start\":false,\
             \"speed-limit-down-enabled\":false,\"speed-limit-up-enabled\":false,\
             \"ratio-limit-enabled\":false,\"message-level\":1,\"encryption\":1}}"
        ),
    )
    .unwrap();
    let marker = cfg.join("finished");
    let script = cfg.join("finish.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-g")
        .arg(cfg)
        .arg("-w")
        .arg(dir)
        .args(["-p", &port.to_string(), "-M", "-D", "-U"])
        .args(extra)
        .arg("-f")
        .arg(&script)
        .arg(torrent)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let proc = Proc::spawn("transmission-cli", &mut cmd);
    wait_port(port, Duration::from_secs(30));
    Transmission { proc, port, marker }
}

impl Transmission {
    pub fn wait_finished(&self, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.marker.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Transmission did not finish within {limit:?}");
    }
}

//! Drivers for the reference clients the interop tests run against:
//! python3-libtorrent, aria2, Transmission (transmission-cli) and qBittorrent
//! (qbittorrent-nox). Each runs headless on 127.0.0.1 with DHT, LSD, PEX,
//! UPnP/NAT-PMP and uTP off, and is killed (by PID) when its guard drops.
//! How each is driven, and why, follows ../shared/docs/reference-clients.md.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::{require_tool, run};

/// A child process that is killed and reaped when dropped; its stdout lines
/// arrive on `lines` (read by a thread so the pipe never fills).
pub struct Proc {
    pub name: String,
    child: Child,
    pub lines: Receiver<String>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the next stdout line that `pick` accepts, up to `timeout`.
    pub fn wait_line<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return v;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "{} ended ({status:?}) before printing what the test waits for",
                        self.name
                    );
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not print what the test waits for within {timeout:?}",
                    self.name
                );
            }
        }
    }

    /// Waits for the process to end by itself, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!("{} did not finish within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Polls `done` every 100 ms until it holds, failing after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json_event(line: &str, event: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["event"] == event).then_some(v)
}

/// The libtorrent peer script shipped with the tests.
pub fn libtorrent_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/libtorrent_peer.py")
}

fn python_with_libtorrent() -> PathBuf {
    let python = PathBuf::from("/usr/bin/python3");
    let ok = python.is_file()
        && run(Command::new(&python).args(["-c", "import libtorrent"]))
            .status
            .success();
    assert!(
        ok,
        "this test needs /usr/bin/python3 with libtorrent: apt-get install -y python3-libtorrent"
    );
    python
}

/// A libtorrent peer: seeding `dir` (`seed`) or downloading into it,
/// connecting to `peers`. Returns the process and its listening port.
pub fn libtorrent(torrent: &Path, dir: &Path, seed: bool, peers: &[String]) -> (Proc, u16) {
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(libtorrent_script())
        .arg("--torrent")
        .arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--timeout", "120"]);
    if seed {
        cmd.arg("--seed");
    }
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let mut proc = Proc::spawn(
        if seed {
            "libtorrent seeder"
        } else {
            "libtorrent leecher"
        },
        &mut cmd,
    );
    let port = proc.wait_line(Duration::from_secs(20), |l| {
        json_event(l, "listening").and_then(|v| v["port"].as_u64())
    });
    (proc, port as u16)
}

/// Waits for a libtorrent leecher started by [`libtorrent`] to complete.
pub fn libtorrent_wait_done(proc: &mut Proc, timeout: Duration) -> serde_json::Value {
    proc.wait_line(timeout, |l| {
        if let Some(v) = json_event(l, "timeout") {
            panic!("libtorrent leecher timed out: {v}");
        }
        json_event(l, "done")
    })
}

fn aria2_command(torrent: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(require_tool("aria2c", "aria2"));
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
            "--bt-stop-timeout=120",
        ])
        .arg(format!("--listen-port={port}"))
        .arg(torrent);
    cmd
}

/// aria2 seeding the data in `dir` on `port` (it checks the data first).
pub fn aria2_seed(torrent: &Path, dir: &Path, port: u16) -> Proc {
    let mut cmd = aria2_command(torrent, dir, port);
    cmd.args(["-V", "--seed-ratio=0.0", "--seed-time=10"]);
    let proc = Proc::spawn("aria2 seeder", &mut cmd);
    wait_listening(port, Duration::from_secs(30), "aria2 to listen");
    proc
}

/// aria2 downloading into `dir`, listening on `port`; it exits 0 when done.
pub fn aria2_leech(torrent: &Path, dir: &Path, port: u16) -> Proc {
    let mut cmd = aria2_command(torrent, dir, port);
    cmd.arg("--seed-time=0");
    let proc = Proc::spawn("aria2 leecher", &mut cmd);
    wait_listening(port, Duration::from_secs(30), "aria2 to listen");
    proc
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, timeout: Duration, what: &str) {
    wait_until(what, timeout, || {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_ok()
    });
}

/// Transmission 3.00 (`transmission-cli`), seeding when `dir` holds the
/// data, downloading into it otherwise. `finished` tells when it completed.
pub struct Transmission {
    pub proc: Proc,
    pub port: u16,
    marker: PathBuf,
}

impl Transmission {
    pub fn start(torrent: &Path, dir: &Path, config: &Path) -> Transmission {
        let tool = require_tool("transmission-cli", "transmission-cli");
        let port = free_port();
        std::fs::create_dir_all(config).unwrap();
        let settings = serde_json::json!({
            "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
            "utp-enabled": false, "port-forwarding-enabled": false,
            "peer-port": port, "peer-port-random-on-start": false,
            "speed-limit-down-enabled": false, "speed-limit-up-enabled": false,
            "ratio-limit-enabled": false, "message-level": 1
        });
        std::fs::write(config.join("settings.json"), settings.to_string()).unwrap();
        let marker = config.join("finished");
        let script = config.join("on-finish.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let proc = Proc::spawn(
            "transmission-cli",
            Command::new(tool)
                .arg("-g")
                .arg(config)
                .arg("-w")
                .arg(dir)
                .arg("-p")
                .arg(port.to_string())
                .args(["-M", "-D", "-U", "-et", "-f"])
                .arg(&script)
                .arg(torrent)
                .stderr(Stdio::null()),
        );
        wait_listening(port, Duration::from_secs(30), "transmission-cli to listen");
        Transmission { proc, port, marker }
    }

    /// Whether the download finished (the finish script ran).
    pub fn finished(&self) -> bool {
        self.marker.exists()
    }
}

/// qBittorrent (`qbittorrent-nox`) driven through its Web API with curl.
pub struct Qbittorrent {
    pub proc: Proc,
    pub port: u16,
    webui: u16,
    curl: PathBuf,
}

impl Qbittorrent {
    pub fn start(profile: &Path) -> Qbittorrent {
        let tool = require_tool("qbittorrent-nox", "qbittorrent-nox");
        let curl = require_tool("curl", "curl");
        let port = free_port();
        let webui = free_port();
        let config_dir = profile.join("qBittorrent/config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let config = format!(
            "[LegalNotice]\nAccepted=true\n\n\
             [BitTorrent]\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n\
             Session\\PeXEnabled=false\nSession\\BTProtocol=TCP\nSession\\Port={port}\n\
             Session\\QueueingSystemEnabled=false\nSession\\MultiConnectionsPerIp=true\n\
             Session\\Interface=lo\nSession\\InterfaceName=lo\n\n\
             [Network]\nPortForwardingEnabled=false\n\n\
             [Preferences]\nConnection\\UPnP=false\nWebUI\\Address=127.0.0.1\nWebUI\\Port={webui}\n\
             WebUI\\LocalHostAuth=false\nWebUI\\CSRFProtection=false\nWebUI\\HostHeaderValidation=false\n"
        );
        std::fs::write(config_dir.join("qBittorrent.conf"), config).unwrap();
        let proc = Proc::spawn(
            "qbittorrent-nox",
            Command::new(tool)
                .arg(format!("--profile={}", profile.display()))
                .arg(format!("--webui-port={webui}"))
                .stderr(Stdio::null()),
        );
        let q = Qbittorrent {
            proc,
            port,
            webui,
            curl,
        };
        wait_until("the qBittorrent Web API", Duration::from_secs(30), || {
            q.api_get("app/version").is_some()
        });
        q
    }

    fn api_get(&self, path: &str) -> Option<String> {
        let out = run(Command::new(&self.curl).args([
            "-sf",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{}/api/v2/{path}", self.webui),
        ]));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Adds a torrent saving into (or seeding from) `save_path`.
    pub fn add(&self, torrent: &Path, save_path: &Path) {
        let out = run(Command::new(&self.curl)
            .args(["-sf", "--max-time", "10"])
            .arg("-F")
            .arg(format!("torrents=@{}", torrent.display()))
            .arg("-F")
            .arg(format!("savepath={}", save_path.display()))
            .arg(format!(
                "http://127.0.0.1:{}/api/v2/torrents/add",
                self.webui
            )));
        assert!(out.status.success(), "qBittorrent refused the torrent");
    }

    /// The torrent's entry in `torrents/info` (the only torrent added).
    pub fn info(&self) -> Option<serde_json::Value> {
        let text = self.api_get("torrents/info")?;
        let list: serde_json::Value = serde_json::from_str(&text).ok()?;
        list.get(0).cloned()
    }

    /// Whether it has every piece (progress 1, seeding).
    pub fn complete(&self) -> bool {
        self.info().is_some_and(|t| {
            t["progress"].as_f64() == Some(1.0)
                && ["uploading", "stalledUP", "forcedUP", "queuedUP", "pausedUP"]
                    .contains(&t["state"].as_str().unwrap_or(""))
        })
    }
}

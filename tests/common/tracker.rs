//! Helpers for the tracker tests: a real opentracker, a TLS terminator
//! (stunnel4) with throw-away certificates made by `openssl`, fake servers
//! on threads, and running `bt-announce` bounded in time. Everything binds
//! to 127.0.0.1 and is stopped when its guard drops, also on failure.

#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{require_tool, run_ok, TempDir};

pub fn bt_announce() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bt-announce"))
}

/// A child process killed (by its own PID) when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits (polling, bounded by `limit`) for the child to exit by itself;
    /// fails the test with `what` when it does not.
    pub fn wait_exit(&mut self, limit: Duration, what: &str) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(started.elapsed() < limit, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to its end, killing it and failing the test after `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.0.kill();
            let _ = child.0.wait();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} still running after {limit:?}; killed. stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let output = Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    };
    (output, elapsed)
}

/// Runs bt-announce with `args`, bounded to 60 s.
pub fn announce(args: &[&str]) -> Output {
    run_bounded(bt_announce().args(args), Duration::from_secs(60)).0
}

/// The JSON lines a program printed.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The `ip:port` of every peer line.
pub fn peer_addrs(stdout: &[u8]) -> Vec<String> {
    json_lines(stdout)
        .iter()
        .map(|v| format!("{}:{}", v["ip"].as_str().unwrap(), v["port"]))
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port that was free on 127.0.0.1 for both TCP and UDP a moment ago.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// Waits until something accepts TCP connections on `port`, or `child` exits.
fn wait_listening(port: u16, child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A torrent of random data announcing to `trackers` (one tier each);
/// returns its path and info-hash.
pub fn make_torrent(dir: &Path, name: &str, trackers: &[String]) -> (PathBuf, String) {
    let data = dir.join(format!("{name}.bin"));
    std::fs::write(
        &data,
        crate::common::random_bytes(
            name.len() as u64 * 7919 + rand::random::<u8>() as u64,
            50_000,
        ),
    )
    .unwrap();
    let torrent = dir.join(format!("{name}.torrent"));
    let mut cmd = crate::common::bt_meta();
    cmd.arg("create")
        .arg(&data)
        .arg("-o")
        .arg(&torrent)
        .arg("-q");
    for t in trackers {
        cmd.arg("-a").arg(t);
    }
    run_ok(&mut cmd);
    let info = crate::common::json(
        &crate::common::run(crate::common::bt_meta().arg("info").arg(&torrent)).stdout,
    );
    (torrent, info["info_hash"].as_str().unwrap().to_string())
}

/// opentracker on 127.0.0.1 (TCP and UDP on one port) in closed mode,
/// tracking only the whitelisted info-hashes.
pub struct Opentracker {
    pub port: u16,
    _child: ChildGuard,
    _dir: TempDir,
}

impl Opentracker {
    pub fn start(info_hashes: &[&str]) -> Opentracker {
        let bin = require_tool("opentracker", "opentracker");
        let dir = TempDir::new("opentracker");
        // The chroot must be readable by `nobody`.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("whitelist"), info_hashes.join("\n") + "\n").unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args([
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-P",
                    &port.to_string(),
                    "-d",
                ])
                .arg(dir.path())
                .args(["-w", "whitelist", "-u", "nobody"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start opentracker");
            if wait_listening(port, &mut child, Duration::from_secs(10))
                && whitelist_loaded(port, info_hashes.first().copied())
            {
                return Opentracker {
                    port,
                    _child: ChildGuard(child),
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("opentracker did not start (5 tries on different ports)");
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn udp(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port)
    }
}

/// opentracker loads its whitelist in the background after it listens:
/// waits (up to 10 s) until an `event=stopped` announce of a listed hash
/// is accepted (it adds no peer).
fn whitelist_loaded(port: u16, hash: Option<&str>) -> bool {
    use std::io::Write;
    let Some(hash) = hash else { return true };
    let encoded: String = hash
        .as_bytes()
        .chunks(2)
        .map(|p| format!("%{}", std::str::from_utf8(p).unwrap()))
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!(
                "GET /announce?info_hash={encoded}&peer_id=-PROBE-0000000000000&port=9&uploaded=0&downloaded=0&left=0&event=stopped&compact=1 HTTP/1.0\r\n\r\n"
            );
            let mut answer = Vec::new();
            if conn.write_all(request.as_bytes()).is_ok() {
                let _ = conn.take(1 << 20).read_to_end(&mut answer);
            }
            let text = String::from_utf8_lossy(&answer);
            if text.starts_with("HTTP/1.") && !text.contains("failure reason") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Makes a throw-away CA in `dir` named `name`: returns (cert, key).
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let openssl = require_tool("openssl", "openssl");
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    run_ok(
        Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", &format!("/CN=bt test {name}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    (cert, key)
}

/// Makes a server certificate for `sans` (e.g. `IP:127.0.0.1,DNS:localhost`)
/// signed by the CA: returns (cert, key).
pub fn make_server_cert(dir: &Path, ca: &(PathBuf, PathBuf), sans: &str) -> (PathBuf, PathBuf) {
    let openssl = require_tool("openssl", "openssl");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        format!("subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run_ok(
        Command::new(&openssl)
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", "/CN=127.0.0.1"]),
    );
    run_ok(
        Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca.0)
            .arg("-CAkey")
            .arg(&ca.1)
            .arg("-out")
            .arg(&cert)
            .arg("-extfile")
            .arg(&ext),
    );
    (cert, key)
}

/// stunnel4 terminating TLS on a free port and forwarding to `backend`.
pub struct Stunnel {
    pub port: u16,
    _child: ChildGuard,
}

impl Stunnel {
    pub fn start(dir: &Path, cert: &Path, key: &Path, backend: u16) -> Stunnel {
        let bin = require_tool("stunnel4", "stunnel4");
        for attempt in 0..5 {
            let port = free_port();
            let conf = dir.join(format!("stunnel-{attempt}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "foreground = yes\npid =\ndebug = 4\n[tracker]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\ncert = {}\nkey = {}\n",
                    cert.display(),
                    key.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(&bin)
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start stunnel4");
            if wait_listening(port, &mut child, Duration::from_secs(10)) {
                return Stunnel {
                    port,
                    _child: ChildGuard(child),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("stunnel4 did not start (5 tries)");
    }
}

/// A fake TCP server on 127.0.0.1: every connection is handed to `handle`
/// on its own thread. It stops accepting when dropped or after 2 minutes.
pub struct FakeServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeServer {
    pub fn start<F>(handle: F) -> FakeServer
    where
        F: Fn(TcpStream, usize) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handle = Arc::new(handle);
        let (s, a) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                        let _ = conn.set_write_timeout(Some(Duration::from_secs(30)));
                        let n = a.fetch_add(1, Ordering::SeqCst);
                        let h = handle.clone();
                        std::thread::spawn(move || h(conn, n));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeServer {
            port,
            stop,
            accepted,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads an HTTP request head (bounded); returns its first line.
pub fn read_request(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while buf.len() < 65536 && !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

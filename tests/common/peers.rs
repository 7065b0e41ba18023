//! Helpers for the bt-fetch tests: child processes killed on drop, bt-fetch
//! runs with their JSON events collected, test data and torrents, and the
//! reference clients (libtorrent, aria2, qBittorrent, Transmission).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::{random_bytes, require_tool, run_ok, TempDir};

/// A child's output as lines, read on a thread of their own so that a test
/// can wait for one with a deadline.
pub struct Lines(Receiver<String>);

impl Lines {
    pub fn read(out: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    /// The next line, if one comes within `limit`.
    pub fn next(&self, limit: Duration) -> Option<String> {
        self.0.recv_timeout(limit).ok()
    }

    /// The first line `want` accepts, within `limit`, skipping the others;
    /// panics naming `who` and `what` when the time is up or the output
    /// ends first.
    pub fn wait(
        &self,
        who: &str,
        what: &str,
        want: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{who}: no {what} line within {limit:?}");
            match self.0.recv_timeout(left) {
                Ok(l) if want(&l) => return l,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("{who} ended without printing a {what} line")
                }
            }
        }
    }
}

/// A child process killed (by its PID) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal to the process (by PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub fn bt_fetch_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bt-fetch"))
}

/// A running bt-fetch with `--json`, its events read on a thread.
pub struct Fetch {
    pub proc: Proc,
    events: Receiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    pub stdin: Option<std::process::ChildStdin>,
}

impl Fetch {
    /// Starts `bt-fetch --json -q ARGS` with stdin piped (kept open unless
    /// `close_stdin`), stdout and stderr captured.
    pub fn start(label: &str, args: &[&str]) -> Fetch {
        Fetch::start_with_stdin(label, args, Stdio::piped())
    }

    /// `bt-fetch TORRENT -o DIR --bind 127.0.0.1 EXTRA...`, the way most
    /// tests run it.
    pub fn local(label: &str, torrent: &str, dir: &str, extra: &[&str]) -> Fetch {
        let mut args = vec![torrent, "-o", dir, "--bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        Fetch::start(label, &args)
    }

    /// Like [`Fetch::start`] with stdin from `stdin` (e.g. another
    /// program's stdout).
    pub fn start_with_stdin(label: &str, args: &[&str], stdin: Stdio) -> Fetch {
        let mut cmd = bt_fetch_cmd();
        cmd.arg("--json").args(args).stdin(stdin);
        Fetch::start_command(label, cmd)
    }

    /// Runs `cmd`, a bt-fetch with `--json` (possibly behind a wrapper
    /// such as `ip netns exec`), stdin as set, stdout and stderr captured.
    pub fn start_command(label: &str, mut cmd: Command) -> Fetch {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut proc = Proc::spawn(label, &mut cmd);
        let stdout = proc.child.stdout.take().expect("stdout");
        let stderr = proc.child.stderr.take().expect("stderr");
        let stdin = proc.child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => panic!("bt-fetch printed a non-JSON line ({e}): {line}"),
                }
            }
        });
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err2 = err.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let mut e = err2.lock().unwrap();
                if e.len() < 1 << 20 {
                    e.push_str(&line);
                    e.push('\n');
                }
            }
        });
        Fetch {
            proc,
            events: rx,
            seen: Vec::new(),
            stderr: err,
            stdin,
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a line to its stdin (peers).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to bt-fetch stdin");
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The names of the events seen so far, for failure messages.
    fn event_names(&self) -> Vec<serde_json::Value> {
        self.seen.iter().map(|v| v["event"].clone()).collect()
    }

    /// Waits for an event named `name`, up to `limit`.
    pub fn wait_event(&mut self, name: &str, limit: Duration) -> serde_json::Value {
        let end = Instant::now() + limit;
        loop {
            if let Some(v) = self.seen.iter().find(|v| v["event"] == name) {
                return v.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "{}: no '{name}' event within {limit:?}; events: {:?}\nstderr:\n{}",
                    self.proc.name,
                    self.event_names(),
                    self.stderr_text()
                );
            }
            match self
                .events
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(v) => self.seen.push(v),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if !self.seen.iter().any(|v| v["event"] == name) {
                        std::thread::sleep(Duration::from_millis(100));
                        panic!(
                            "{}: exited without a '{name}' event; events: {:?}\nstderr:\n{}",
                            self.proc.name,
                            self.event_names(),
                            self.stderr_text()
                        );
                    }
                }
            }
        }
    }

    /// A seeder (`--seed`, more flags in `extra`) of `torrent` whose data is
    /// in `dir`.
    pub fn seeder(torrent: impl AsRef<Path>, dir: &Path, extra: &[&str]) -> Fetch {
        let mut args = vec!["--seed"];
        args.extend_from_slice(extra);
        let torrent = torrent.as_ref().to_str().unwrap();
        Fetch::local("seeder", torrent, dir.to_str().unwrap(), &args)
    }

    /// A leecher named `label` of `torrent` into `dir` from the peer at
    /// 127.0.0.1:`port` (`--peer`, more flags in `extra`).
    pub fn leech_from(
        label: &str,
        torrent: impl AsRef<Path>,
        dir: &Path,
        port: u16,
        extra: &[&str],
    ) -> Fetch {
        let peer = format!("127.0.0.1:{port}");
        let mut args = vec!["--peer", &peer];
        args.extend_from_slice(extra);
        let torrent = torrent.as_ref().to_str().unwrap();
        Fetch::local(label, torrent, dir.to_str().unwrap(), &args)
    }

    /// 127.0.0.1:PORT, the address it listens on, for `--peer`.
    pub fn addr(&mut self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The port from the `listening` event.
    pub fn port(&mut self) -> u16 {
        let v = self.wait_event("listening", Duration::from_secs(60));
        v["port"].as_u64().expect("port") as u16
    }

    /// Waits for the `done` event and the exit; asserts exit code 0.
    /// Stops it the way a user would (SIGTERM) and returns its `done` event.
    pub fn stop(&mut self) -> serde_json::Value {
        self.proc.signal(libc::SIGTERM);
        self.finish(Duration::from_secs(10))
    }

    pub fn finish(&mut self, limit: Duration) -> serde_json::Value {
        let done = self.wait_event("done", limit);
        let status = self.proc.wait_exit(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "{} exited with {status:?}\nstderr:\n{}",
            self.proc.name,
            self.stderr_text()
        );
        done
    }

    /// Collects the events that arrive within `limit` (no waiting for any
    /// one in particular).
    pub fn pump(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => return,
            }
        }
    }

    pub fn events_named(&self, name: &str) -> Vec<serde_json::Value> {
        self.seen
            .iter()
            .filter(|v| v["event"] == name)
            .cloned()
            .collect()
    }
}

/// A swarm of bt-fetch leechers of `torrent` around a seeder at
/// 127.0.0.1:`seed_port`: leecher i runs with `flags[i]`, writes to
/// `tmp/l{i}`, and is told of every other leecher, then of the seeder.
pub fn leecher_swarm(tmp: &Path, torrent: &str, seed_port: u16, flags: &[Vec<&str>]) -> Vec<Fetch> {
    let mut leechers = Vec::new();
    let mut ports = Vec::new();
    for (i, args) in flags.iter().enumerate() {
        let out = tmp.join(format!("l{i}"));
        let mut l = Fetch::local(
            &format!("leecher {i}"),
            torrent,
            out.to_str().unwrap(),
            args,
        );
        ports.push(l.port());
        leechers.push(l);
    }
    for (i, l) in leechers.iter_mut().enumerate() {
        for (j, p) in ports.iter().enumerate() {
            if i != j {
                l.send_line(&format!("127.0.0.1:{p}"));
            }
        }
        l.send_line(&format!("127.0.0.1:{seed_port}"));
    }
    leechers
}

/// Waits (up to `limit` each) until every leecher of [`leecher_swarm`] has
/// `name` complete and identical to `data`, then stops them (SIGTERM: they
/// still seed); returns what each uploaded.
pub fn finish_swarm(
    leechers: &mut [Fetch],
    tmp: &Path,
    data: &Path,
    name: &str,
    limit: Duration,
) -> Vec<u64> {
    for (i, l) in leechers.iter_mut().enumerate() {
        l.wait_event("complete", limit);
        assert_same(data, &tmp.join(format!("l{i}/{name}")));
    }
    let mut uploaded = Vec::new();
    for l in leechers.iter_mut() {
        l.proc.signal(libc::SIGTERM);
        let done = l.finish(Duration::from_secs(20));
        uploaded.push(done["uploaded"].as_u64().unwrap());
    }
    uploaded
}

/// Writes a single random file `name` of `len` bytes under `dir`.
pub fn single_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, random_bytes(seed, len)).unwrap();
    p
}

/// Writes a folder `name` with nested folders and files of various sizes
/// (one empty) under `dir`; returns its path.
pub fn multi_file(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let root = dir.join(name);
    let files: &[(&str, usize)] = &[
        ("a.bin", 3_000_001),
        ("sub/b.bin", 700_000),
        ("sub/deeper/c.bin", 5_500_123),
        ("sub/deeper/empty.txt", 0),
        ("z/last.dat", 1_234_567),
    ];
    for (i, (path, len)) in files.iter().enumerate() {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, random_bytes(seed + i as u64, *len)).unwrap();
    }
    root
}

/// Makes a torrent of `path` with bt-meta (piece length e.g. "256K").
pub fn make_torrent(path: &Path, out: &Path, piece_length: &str) -> PathBuf {
    run_ok(
        super::bt_meta()
            .args(["create", "-q", "--no-date", "-l", piece_length, "-o"])
            .arg(out)
            .arg(path),
    );
    out.to_path_buf()
}

/// Asserts that two files or folders hold identical content.
/// The info-hash (hex) of a torrent file, as `bt-meta info` reads it.
pub fn info_hash_of(torrent: &Path) -> String {
    let out = run_ok(super::bt_meta().arg("info").arg(torrent));
    let v = super::json(out.as_bytes());
    v["info_hash"].as_str().expect("info_hash").to_string()
}

pub fn assert_same(a: &Path, b: &Path) {
    compare(a, b, false)
}

/// Like [`assert_same`], but an empty file of `a` may be absent from `b`
/// (Transmission does not create empty files).
pub fn assert_same_but_empty(a: &Path, b: &Path) {
    compare(a, b, true)
}

fn compare(a: &Path, b: &Path, skip_empty: bool) {
    let ma = std::fs::metadata(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    if ma.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !skip_empty || e.metadata().unwrap().len() > 0 || e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        let mut other: Vec<_> = std::fs::read_dir(b)
            .unwrap_or_else(|e| panic!("{}: {e}", b.display()))
            .map(|e| e.unwrap())
            .filter(|e| !skip_empty || e.metadata().unwrap().len() > 0 || e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        other.sort();
        assert_eq!(
            names,
            other,
            "{} and {} list different files",
            a.display(),
            b.display()
        );
        for n in names {
            compare(&a.join(&n), &b.join(&n), skip_empty);
        }
    } else {
        let da = std::fs::read(a).unwrap();
        let db = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
        assert!(da == db, "{} and {} differ", a.display(), b.display());
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `/usr/bin/python3` with the libtorrent module, or a failure naming the
/// package.
pub fn require_libtorrent() -> PathBuf {
    let py = PathBuf::from("/usr/bin/python3");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import libtorrent"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs python3-libtorrent: install it with `apt-get install -y python3-libtorrent`"
    );
    py
}

/// Starts the libtorrent peer `python3 tests/scripts/SCRIPT`, its
/// arguments set by `args`, as the process "libtorrent MODE" with stdin
/// and stdout piped, and waits (2 min at most) for its "listening PORT"
/// line. Returns the process, its further lines and the port.
pub fn start_lt_script(
    script: &str,
    mode: &str,
    args: impl FnOnce(&mut Command),
) -> (Proc, Lines, u16) {
    let py = require_libtorrent();
    let mut cmd = Command::new(py);
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scripts")
            .join(script),
    );
    args(&mut cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut proc = Proc::spawn(&format!("libtorrent {mode}"), &mut cmd);
    let lines = Lines::read(proc.child.stdout.take().unwrap());
    let listening = |l: &str| l.starts_with("listening");
    let line = lines.wait(
        &proc.name,
        "'listening'",
        listening,
        Duration::from_secs(120),
    );
    let port = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    (proc, lines, port)
}

/// A libtorrent peer (tests/scripts/lt_peer.py): `mode` is "seed" or
/// "leech". Returns the process and its listening port once ready.
pub struct LtPeer {
    pub proc: Proc,
    pub port: u16,
    lines: Lines,
}

impl LtPeer {
    pub fn start(mode: &str, torrent: &Path, dir: &Path, peers: &[String]) -> LtPeer {
        LtPeer::start_with_env(mode, torrent, dir, peers, &[])
    }

    /// Like [`LtPeer::start`] with environment settings for the script
    /// (`LT_ENCRYPTION=rc4|both`: encryption forced in and out).
    pub fn start_with_env(
        mode: &str,
        torrent: &Path,
        dir: &Path,
        peers: &[String],
        env: &[(&str, &str)],
    ) -> LtPeer {
        let (proc, lines, port) = start_lt_script("lt_peer.py", mode, |cmd| {
            cmd.arg(mode)
                .arg(torrent)
                .arg(dir)
                .arg(free_port().to_string())
                .args(peers)
                .envs(env.iter().copied());
        });
        LtPeer { proc, port, lines }
    }

    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        let what = format!("'{prefix}'");
        self.lines
            .wait("libtorrent peer", &what, |l| l.starts_with(prefix), limit)
    }
}

/// A fresh temporary folder (re-exported for the tests).
pub fn temp(label: &str) -> TempDir {
    TempDir::new(label)
}

pub fn require(tool: &str, package: &str) -> PathBuf {
    require_tool(tool, package)
}

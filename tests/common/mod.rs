//! Helpers shared by the integration tests: temporary folders, running our
//! programs, and requiring external tools (a missing tool fails the test
//! with what to install; it never passes silently).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let p = base.join(format!("bt-test-{label}-{:016x}", rand::random::<u64>()));
            if std::fs::create_dir(&p).is_ok() {
                return TempDir(p);
            }
        }
        panic!("cannot create a temporary folder under {}", base.display());
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails the test unless `tool` is on PATH, naming the Debian package to install.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "this test needs `{tool}`: install it with `apt-get install -y {package}` (or run .ci/run)"
    );
}

pub fn bt_meta() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bt-meta"))
}

pub fn bt_verify() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bt-verify"))
}

/// Runs a command and returns its output, panicking with stderr if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Parses the single JSON object a program printed.
pub fn json(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}):\n{}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// The shared fixtures (`BT_FIXTURES` overrides `../shared/fixtures/webtorrent`).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("BT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/webtorrent")
        });
    assert!(
        dir.join("alice.torrent").is_file(),
        "the test fixtures are not at {} (set BT_FIXTURES to the webtorrent fixtures folder)",
        dir.display()
    );
    dir
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}
pub mod clients;
pub mod fake_peer;
pub mod fake_server;
pub mod hostile;
pub mod netns;
pub mod peers;

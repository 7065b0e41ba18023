//! Issue 13, where a real process is needed: a stdout whose reader is gone
//! (EPIPE), the port bt-fetch binds, and the documents (man pages rendered
//! by groff, the README).

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bt_meta, bt_verify, random_bytes, TempDir};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A pipe whose read end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// Runs `cmd` with stdin empty, stdout to `stdout` and stderr captured;
/// waits at most 30 s (then kills it by its own handle). Returns its exit
/// code and stderr.
fn run_to_end(cmd: &mut Command, stdout: Stdio) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(30);
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn torrent(tmp: &TempDir) {
    std::fs::write(tmp.join("f.bin"), random_bytes(7, 50_000)).unwrap();
    let out = bt_meta()
        .current_dir(tmp.path())
        .args([
            "create",
            "-q",
            "--no-date",
            "-l",
            "16K",
            "f.bin",
            "-o",
            "f.torrent",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_broken_pipe_ends_every_program_alike_with_141() {
    let tmp = TempDir::new("cli-epipe");
    torrent(&tmp);
    let commands: Vec<(&str, Command)> = vec![
        ("bt-meta info", {
            let mut c = bt_meta();
            c.args(["info", "f.torrent"]);
            c
        }),
        ("bt-meta create -o -", {
            let mut c = bt_meta();
            c.args(["create", "f.bin", "-o", "-"]);
            c
        }),
        ("bt-verify", {
            let mut c = bt_verify();
            c.arg("f.torrent");
            c
        }),
        ("bt-announce --help", {
            let mut c = Command::new(env!("CARGO_BIN_EXE_bt-announce"));
            c.arg("--help");
            c
        }),
        ("bt-fetch --json", {
            let mut c = Command::new(env!("CARGO_BIN_EXE_bt-fetch"));
            c.args([
                "f.torrent",
                "--json",
                "-o",
                "out",
                "--bind",
                "127.0.0.1",
                "-p",
                "0",
            ])
            .args(["--peer", "127.0.0.1:9", "--timeout", "60"]);
            c
        }),
        ("bt-sim --json", {
            let mut c = Command::new(env!("CARGO_BIN_EXE_bt-sim"));
            c.args(["--peers", "3", "--size", "1M", "--seed", "1", "--json"])
                .args(["--capacity-dist", "uniform:1M-1M"]);
            c
        }),
    ];
    for (label, mut cmd) in commands {
        cmd.current_dir(tmp.path())
            .env_remove("BT_LOG")
            .env("RUST_BACKTRACE", "1");
        let (code, err) = run_to_end(&mut cmd, closed_pipe());
        assert_eq!(code, Some(141), "{label}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{label}: {err}"
        );
        let lost: Vec<&str> = err.lines().filter(|l| l.contains("stdout")).collect();
        assert_eq!(lost.len(), 1, "{label}: one line says so: {err}");
        assert!(
            lost[0].contains("stdout closed by its reader; output lost"),
            "{label}: {err}"
        );
    }
}

/// Holds port 6881 (or finds it held by someone else) for the test.
fn hold_port_6881() -> Option<std::net::TcpListener> {
    for _ in 0..50 {
        match std::net::TcpListener::bind("0.0.0.0:6881") {
            Ok(l) => return Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                // Taken by another program: it may let go any moment, so
                // try to be the holder, but a held port is all we need.
                if std::net::TcpListener::bind("127.0.0.1:6881").is_err() {
                    return None;
                }
            }
            Err(e) => panic!("binding 0.0.0.0:6881: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("port 6881 is neither free nor busy");
}

/// Runs `bt-fetch f.torrent -o out --bind BIND -p PORT` in `tmp`, which
/// must fail to listen (exit 1); returns its stderr.
fn cannot_listen(tmp: &TempDir, bind: &str, port: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bt-fetch"));
    cmd.current_dir(tmp.path())
        .args(["f.torrent", "-o", "out", "--bind", bind, "-p", port])
        .args(["--peer", "127.0.0.1:9"]);
    let (code, err) = run_to_end(&mut cmd, Stdio::null());
    assert_eq!(code, Some(1), "{err}");
    err
}

#[test]
fn bt_fetch_gives_way_on_a_busy_default_port_but_not_on_an_asked_one() {
    let tmp = TempDir::new("cli-port");
    torrent(&tmp);
    let _held = hold_port_6881();
    // The default: another port, and a warning that says what breaks.
    let mut fetch = common::peers::Fetch::local(
        "default port",
        tmp.join("f.torrent").to_str().unwrap(),
        tmp.join("out").to_str().unwrap(),
        &["--peer", "127.0.0.1:9"],
    );
    let port = fetch.port();
    assert_ne!(port, 6881);
    let end = Instant::now() + Duration::from_secs(10);
    while !fetch.stderr.lock().unwrap().contains("port 6881 is in use") {
        assert!(
            Instant::now() < end,
            "no warning: {}",
            fetch.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let warning = fetch.stderr.lock().unwrap().clone();
    assert!(
        warning.contains(&format!("listening on port {port} instead"))
            && warning.contains("-p PORT"),
        "{warning}"
    );
    fetch.proc.signal(libc::SIGTERM);
    drop(fetch);
    // Asked for explicitly: an error naming the address and the OS's reason.
    let err = cannot_listen(&tmp, "127.0.0.1", "6881");
    assert!(
        err.contains("cannot listen on 127.0.0.1:6881: Address already in use"),
        "{err}"
    );
}

#[test]
fn a_bind_error_names_the_address_not_the_port() {
    let tmp = TempDir::new("cli-bind");
    torrent(&tmp);
    // 192.0.2.1 (TEST-NET-1) is on no interface of this machine.
    let err = cannot_listen(&tmp, "192.0.2.1", "0");
    assert!(err.contains("cannot listen on 192.0.2.1:0"), "{err}");
    assert!(
        err.contains("check --bind") && !err.contains("choose another"),
        "{err}"
    );
}

// ---- the documents -----------------------------------------------------------

const PROGRAMS: [&str; 4] = ["bt-meta", "bt-verify", "bt-announce", "bt-fetch"];

fn man_source(program: &str) -> String {
    std::fs::read_to_string(root().join("man").join(format!("{program}.1"))).unwrap()
}

#[test]
fn man_pages_agree_on_date_and_document_exit_codes_and_bt_log() {
    let mut dates = Vec::new();
    for program in PROGRAMS.iter().chain(&["bt-sim"]) {
        let page = man_source(program);
        let th = page
            .lines()
            .find(|l| l.starts_with(".TH"))
            .unwrap()
            .to_string();
        dates.push(th.split('"').nth(1).unwrap_or("").to_string());
        if *program == "bt-sim" {
            continue;
        }
        for needle in ["BT_LOG", "EXIT STATUS", "141"] {
            assert!(page.contains(needle), "{program}.1 lacks {needle}");
        }
    }
    dates.dedup();
    assert_eq!(dates.len(), 1, "man page dates differ: {dates:?}");
    let verify = man_source("bt-verify");
    assert!(verify.contains(".B 4") && verify.contains(".B 5"));
}

/// Renders a man page as `man -l` would, failing with what to install.
fn render(program: &str) -> String {
    let groff = common::require_tool("groff", "groff");
    let out = Command::new(groff)
        .args(["-man", "-Tutf8", "-rLL=200n", "-ww"])
        .arg(root().join("man").join(format!("{program}.1")))
        .env("GROFF_NO_SGR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        out.stderr.is_empty(),
        "{program}.1: groff warns: {}",
        stderr(&out)
    );
    // Strip overstrike bold/underline (x\bx, _\bx).
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        plain.push(c);
    }
    plain
}

#[test]
fn bt_fetch_man_page_shows_json_with_its_quotes() {
    let page = render("bt-fetch");
    assert!(
        page.contains(r#"{"event":"done","status":"ok""#),
        "the JSON example lost its quotes:\n{}",
        page.lines()
            .filter(|l| l.contains("event"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        page.contains(r#"{"ip": "1.2.3.4", "port": 6881"#),
        "peer line example"
    );
    for program in PROGRAMS {
        render(program);
    }
}

#[test]
fn readme_installs_uses_man_l_and_lists_every_event() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo install --path ."), "install step");
    assert!(readme.contains("man -l man/bt-fetch.1"));
    assert!(
        !readme.contains("man bt-"),
        "man bt-x needs the page installed"
    );
    // Every event bt-fetch emits is listed.
    let events: String = ["events.rs", "mod.rs", "driver.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(root().join("src/fetch").join(f)).unwrap())
        .collect();
    let mut names: Vec<&str> = events
        .split("\"event\": \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README lacks event `{name}`"
        );
    }
    // down_rate is a float of bytes per second, as printed.
    assert!(
        readme.contains("\"down_rate\": 41943040.0"),
        "down_rate as printed"
    );
    // The shared-flag table names the vocabulary.
    for flag in [
        "-t, --tracker",
        "-p, --port",
        "-o, --output",
        "--timeout",
        "-j, --threads",
    ] {
        assert!(readme.contains(flag), "README's flag table lacks {flag}");
    }
}

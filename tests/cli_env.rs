//! Issue 13, in-process: each program runs as a library function over an
//! `Env` (arguments, stdin, stdout, stderr and a working folder as values),
//! one fast test per finding. Subprocess checks are in `cli_process.rs`.

mod common;

use std::path::Path;
use std::time::Duration;

use bt::cli::env::{Env, Sink, Source};
use clap::Parser;
use common::{random_bytes, TempDir};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Runs `program` with `args` in `dir`; returns the exit code and the Env.
fn run(program: &'static str, dir: &Path, args: &[&str]) -> (i32, Env) {
    let mut env = Env::test(program, dir, args.iter().copied());
    let code = run_env(&mut env);
    (code, env)
}

fn run_env(env: &mut Env) -> i32 {
    match env.program() {
        "bt-meta" => bt::cli::meta::run(env),
        "bt-verify" => bt::cli::verify::run(env),
        "bt-announce" => bt::cli::announce::run(env),
        "bt-fetch" => bt::cli::fetch::run(env),
        "bt-sim" => bt::cli::sim::run(env),
        other => panic!("no program {other}"),
    }
}

fn json(env: &Env) -> serde_json::Value {
    serde_json::from_slice(env.out()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(env.out()),
            env.err()
        )
    })
}

/// A folder `data` with a file, a dotfile, a log and a nested folder.
fn tree(tmp: &TempDir) {
    write(&tmp.join("data/a.bin"), &random_bytes(1, 70_000));
    write(&tmp.join("data/.secret"), b"hidden");
    write(&tmp.join("data/.git/config"), b"[core]");
    write(&tmp.join("data/logs/x.log"), b"log");
    write(&tmp.join("data/sub/b.txt"), &random_bytes(2, 100));
}

/// A single-file torrent of 100 000 bytes in `tmp`, made in-process.
fn small_torrent(tmp: &TempDir, extra: &[&str]) -> serde_json::Value {
    write(&tmp.join("f.bin"), &random_bytes(3, 100_000));
    let mut args = vec![
        "create",
        "-q",
        "--no-date",
        "-l",
        "16K",
        "-o",
        "f.torrent",
        "f.bin",
    ];
    args.extend_from_slice(extra);
    let (code, env) = run("bt-meta", tmp.path(), &args);
    assert_eq!(code, 0, "{}", env.err());
    json(&env)
}

// ---- Found: exit codes follow one rule (2 for usage errors) ----------------

#[test]
fn usage_errors_exit_2_in_every_program() {
    let tmp = TempDir::new("cli-usage");
    small_torrent(&tmp, &[]);
    let cases: &[(&str, &[&str])] = &[
        ("bt-meta", &["create", "-l", "0", "f.bin"]),
        ("bt-meta", &["create", "-l", "2G", "f.bin"]),
        ("bt-meta", &["create", "-l", "3", "f.bin"]),
        ("bt-meta", &["create", "-l", "12345", "f.bin"]),
        ("bt-meta", &["create", "-n", "a/b", "f.bin"]),
        ("bt-meta", &["create", "-n", "..", "f.bin"]),
        ("bt-meta", &["create", "-j", "0", "f.bin"]),
        ("bt-meta", &["create", "-t", "ftp://x/announce", "f.bin"]),
        ("bt-meta", &["create", "-t", "not a url", "f.bin"]),
        ("bt-meta", &["info"]),
        ("bt-meta", &["frobnicate"]),
        ("bt-verify", &["f.torrent", "-j", "0"]),
        ("bt-verify", &["f.torrent", "--no-such-flag"]),
        // A torrent without trackers when trackers are required.
        ("bt-announce", &["f.torrent"]),
        ("bt-announce", &["f.torrent", "--timeout", "0"]),
        ("bt-announce", &["f.torrent", "-t", "gopher://x"]),
        ("bt-announce", &["f.torrent", "--peer-id", "short"]),
        ("bt-fetch", &["f.torrent", "--announce"]),
        (
            "bt-fetch",
            &["f.torrent", "--timeout", "0", "--peer", "127.0.0.1:9"],
        ),
        (
            "bt-fetch",
            &["f.torrent", "--max-peers", "0", "--peer", "127.0.0.1:9"],
        ),
        (
            "bt-fetch",
            &["f.torrent", "--upload-slots", "0", "--peer", "127.0.0.1:9"],
        ),
        (
            "bt-fetch",
            &["f.torrent", "--max-memory", "0", "--peer", "127.0.0.1:9"],
        ),
        ("bt-fetch", &["f.torrent", "-p", "70000"]),
        ("bt-fetch", &["-", "--peer", "127.0.0.1:9"]),
    ];
    // bt-sim: a valid command with one value made wrong.
    let sim = [
        "--peers",
        "3",
        "--size",
        "1M",
        "--capacity-dist",
        "uniform:1K-2K",
    ];
    let wrong = [
        ("--peers", "0"),
        ("--capacity-dist", "no-such-cdf"),
        ("-l", "20K"),
        ("--strategy-mix", "tyrant=1"),
        ("-j", "0"),
        ("--x-step", "0"),
        ("--x-latency", "50-5"),
        ("--x-latency", "5"),
        ("--x-propshare-optimistic", "1"),
    ];
    let sim_cases: Vec<Vec<&str>> = wrong
        .iter()
        .map(|&(flag, value)| match sim.iter().position(|a| *a == flag) {
            Some(i) => {
                let mut args = sim.to_vec();
                args[i + 1] = value;
                args
            }
            None => [&sim[..], &[flag, value]].concat(),
        })
        .collect();
    let sim_cases = sim_cases.iter().map(|a| ("bt-sim", a.as_slice()));
    for (program, args) in cases.iter().copied().chain(sim_cases) {
        let (code, env) = run(program, tmp.path(), args);
        assert_eq!(code, 2, "{program} {args:?}: {}", env.err());
        assert!(!env.err().is_empty(), "{program} {args:?} says why");
        assert!(env.out().is_empty(), "{program} {args:?} printed data");
    }
    assert!(!tmp.join("a").exists() && !tmp.join("f.bin.torrent").exists());
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let tmp = TempDir::new("cli-help");
    for program in ["bt-meta", "bt-verify", "bt-announce", "bt-fetch", "bt-sim"] {
        for flag in ["--help", "-h", "--version"] {
            let (code, env) = run(program, tmp.path(), &[flag]);
            assert_eq!(code, 0, "{program} {flag}: {}", env.err());
            assert!(!env.out().is_empty() && env.err().is_empty());
        }
    }
}

#[test]
fn an_invalid_torrent_exits_3_everywhere() {
    let tmp = TempDir::new("cli-invalid");
    write(&tmp.join("bad.torrent"), b"d4:infod4:name1:xee");
    for (program, args) in [
        ("bt-meta", vec!["info", "bad.torrent"]),
        ("bt-verify", vec!["bad.torrent"]),
        (
            "bt-announce",
            vec!["bad.torrent", "-t", "http://127.0.0.1:9/a"],
        ),
        ("bt-fetch", vec!["bad.torrent", "--peer", "127.0.0.1:9"]),
    ] {
        let (code, env) = run(program, tmp.path(), &args);
        assert_eq!(code, 3, "{program}: {}", env.err());
        assert!(
            env.err().contains("bad.torrent"),
            "{program}: {}",
            env.err()
        );
    }
}

// ---- Found: values are validated with the same rules -----------------------

#[test]
fn bt_fetch_values_follow_the_shared_rules() {
    let tmp = TempDir::new("cli-fetch-values");
    small_torrent(&tmp, &[]);
    let parse = |args: &[&str]| {
        let mut all = vec!["bt-fetch", "f.torrent", "--peer", "127.0.0.1:9"];
        all.extend_from_slice(args);
        let cli = bt::cli::fetch::Cli::try_parse_from(&all).expect("flags parse");
        let mut env = Env::test("bt-fetch", tmp.path(), Vec::<String>::new());
        env.stdin_is_tty = true;
        bt::cli::fetch::options(&mut env, cli).map_err(|code| (code, env.err()))
    };
    // Durations take decimals and units, as in bt-announce.
    let o = parse(&["--timeout", "1.5"]).unwrap();
    assert_eq!(o.timeout, Some(Duration::from_millis(1500)));
    let o = parse(&["--timeout", "2m"]).unwrap();
    assert_eq!(o.timeout, Some(Duration::from_secs(120)));
    // --max-upload-rate 0 is documented as unlimited.
    let o = parse(&["--max-upload-rate", "0"]).unwrap();
    assert_eq!(o.max_upload_rate, None);
    let o = parse(&["--max-upload-rate", "1G"]).unwrap();
    assert_eq!(o.max_upload_rate, Some(1 << 30));
    // The default port is bt-announce's, and may give way; -p may not.
    let o = parse(&[]).unwrap();
    assert_eq!(o.listen.port(), 6881);
    assert!(o.listen_fallback);
    let o = parse(&["-p", "7000"]).unwrap();
    assert_eq!(o.listen.port(), 7000);
    assert!(!o.listen_fallback);
    let o = parse(&["--listen", "7001"]).unwrap();
    assert_eq!(o.listen.port(), 7001, "the old spelling still works");
    // bt-announce's flags, on bt-fetch too.
    let o = parse(&[
        "-t",
        "http://127.0.0.1:9/announce",
        "--peer-id",
        "-XX0001-abcdefghijkl",
        "--numwant",
        "7",
    ])
    .unwrap();
    assert!(o.announce, "-t implies announcing");
    assert_eq!(o.peer_id, Some(*b"-XX0001-abcdefghijkl"));
    assert_eq!(o.numwant, Some(7));
    match &o.input {
        bt::fetch::Input::Torrent(m) => {
            assert_eq!(m.trackers, [["http://127.0.0.1:9/announce"]]);
        }
        _ => panic!("a torrent"),
    }
    // Paths are taken from the working folder.
    assert_eq!(parse(&["-o", "out"]).unwrap().output, tmp.join("out"));
}

#[test]
fn bt_announce_takes_the_shared_duration_syntax() {
    let parse = |args: &[&str]| {
        let mut all = vec!["bt-announce", "x.torrent"];
        all.extend_from_slice(args);
        bt::cli::announce::Cli::try_parse_from(&all)
    };
    assert_eq!(parse(&[]).unwrap().timeout, Duration::from_secs(30));
    assert_eq!(
        parse(&["--timeout", "0.25"]).unwrap().timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        parse(&["--follow", "--interval", "2m"]).unwrap().interval,
        Some(Duration::from_secs(120))
    );
    assert!(parse(&["--timeout", "0"]).is_err());
    assert!(parse(&["--follow", "--interval", "0"]).is_err());
}

#[test]
fn create_tracker_urls_are_checked_and_make_tiers() {
    let tmp = TempDir::new("cli-trackers");
    let made = small_torrent(
        &tmp,
        &[
            "-t",
            "http://a.example/announce,udp://b.example:80",
            "-a",
            "https://c.example/announce",
        ],
    );
    assert_eq!(
        made["trackers"],
        serde_json::json!([
            ["http://a.example/announce", "udp://b.example:80"],
            ["https://c.example/announce"]
        ])
    );
}

// ---- Found: output that is lost is an error; no binary on a TTY ------------

#[test]
fn lost_stdout_exits_141_in_every_program() {
    let tmp = TempDir::new("cli-lost");
    small_torrent(&tmp, &[]);
    let sim = [
        "--peers",
        "3",
        "--size",
        "1M",
        "--capacity-dist",
        "uniform:50K-60K",
    ];
    for (program, args) in [
        ("bt-meta", vec!["info", "f.torrent"]),
        ("bt-meta", vec!["info", "--text", "f.torrent"]),
        ("bt-meta", vec!["create", "f.bin", "-o", "-"]),
        ("bt-meta", vec!["create", "f.bin", "-o", "g.torrent"]),
        ("bt-meta", vec!["create", "f.bin", "--dry-run"]),
        ("bt-verify", vec!["f.torrent"]),
        ("bt-meta", vec!["--help"]),
        ("bt-sim", [&sim[..], &["--json"]].concat()),
        ("bt-sim", sim.to_vec()),
    ] {
        let mut env = Env::test(program, tmp.path(), args.iter().copied());
        env.stdout = Sink::Closed;
        let code = run_env(&mut env);
        assert_eq!(code, 141, "{program} {args:?}: {}", env.err());
        let err = env.err();
        assert!(
            err.lines().count() == 1 && err.contains("stdout closed"),
            "{program} {args:?}: one line: {err}"
        );
    }
}

#[test]
fn create_refuses_to_write_a_torrent_to_a_terminal() {
    let tmp = TempDir::new("cli-tty");
    write(&tmp.join("f.bin"), b"some data");
    let mut env = Env::test("bt-meta", tmp.path(), ["create", "f.bin", "-o", "-"]);
    env.stdout_is_tty = true;
    assert_eq!(bt::cli::meta::run(&mut env), 2);
    assert!(env.out().is_empty());
    assert!(env.err().contains("terminal") && env.err().contains("-o FILE"));
}

// ---- Found: smaller ones -----------------------------------------------------

#[test]
fn a_fifo_as_create_input_is_named_as_such() {
    let tmp = TempDir::new("cli-fifo");
    let fifo = tmp.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, env) = run("bt-meta", tmp.path(), &["create", "pipe"]);
    assert_eq!(code, 1);
    assert!(
        env.err()
            .contains("pipe: not a regular file or a folder (a FIFO"),
        "{}",
        env.err()
    );
    assert!(!env.err().contains("Not a directory"));
}

#[test]
fn verify_in_a_wrong_folder_says_nothing_was_found_there() {
    let tmp = TempDir::new("cli-verify-dir");
    small_torrent(&tmp, &[]);
    std::fs::create_dir(tmp.join("elsewhere")).unwrap();
    let (code, env) = run("bt-verify", tmp.path(), &["f.torrent", "-o", "elsewhere"]);
    assert_eq!(code, 4);
    assert!(
        env.err()
            .contains("nothing of the torrent was found under elsewhere"),
        "{}",
        env.err()
    );
    assert_eq!(json(&env)["files_found"], 0);
    // The old -d still works, and a right folder says nothing of the kind.
    let (code, env) = run("bt-verify", tmp.path(), &["f.torrent", "-d", "."]);
    assert_eq!(code, 0, "{}", env.err());
    assert!(env.err().is_empty(), "{}", env.err());
}

// ---- Controls: bt-meta create --source, --exclude, --include-hidden, --dry-run

#[test]
fn source_tag_changes_the_info_hash() {
    let tmp = TempDir::new("cli-source");
    let plain = small_torrent(&tmp, &["-f"]);
    let tagged = small_torrent(&tmp, &["-f", "--source", "TRACKER"]);
    assert_ne!(plain["info_hash"], tagged["info_hash"]);
    let (code, env) = run("bt-meta", tmp.path(), &["info", "f.torrent"]);
    assert_eq!(code, 0);
    assert_eq!(json(&env)["source_tag"], "TRACKER");
}

fn listed(env: &Env) -> Vec<String> {
    json(env)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path_string"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dotfiles_are_left_out_unless_asked_and_exclude_takes_globs() {
    let tmp = TempDir::new("cli-exclude");
    tree(&tmp);
    let (code, env) = run(
        "bt-meta",
        tmp.path(),
        &["create", "-q", "data", "--dry-run"],
    );
    assert_eq!(code, 0, "{}", env.err());
    assert_eq!(
        listed(&env),
        ["data/a.bin", "data/logs/x.log", "data/sub/b.txt"]
    );
    let (_, env) = run(
        "bt-meta",
        tmp.path(),
        &[
            "create",
            "data",
            "--dry-run",
            "--include-hidden",
            "--exclude",
            "*.log",
        ],
    );
    assert_eq!(
        listed(&env),
        [
            "data/.git/config",
            "data/.secret",
            "data/a.bin",
            "data/sub/b.txt"
        ]
    );
    let (_, env) = run(
        "bt-meta",
        tmp.path(),
        &[
            "create",
            "data",
            "--dry-run",
            "--exclude",
            "sub",
            "--exclude",
            "logs/[wx].log",
        ],
    );
    assert_eq!(listed(&env), ["data/a.bin"]);
    // What --dry-run says is what create makes; and it writes nothing.
    assert!(!tmp.join("data.torrent").exists());
    let (_, dry) = run(
        "bt-meta",
        tmp.path(),
        &["create", "data", "--dry-run", "-l", "32K"],
    );
    let dry = json(&dry);
    let (code, env) = run(
        "bt-meta",
        tmp.path(),
        &["create", "-q", "data", "-l", "32K"],
    );
    assert_eq!(code, 0, "{}", env.err());
    let made = json(&env);
    for key in ["piece_length", "piece_count", "total_length", "name"] {
        assert_eq!(dry[key], made[key], "{key}");
    }
    assert_eq!(dry["piece_count"], 3);
}

// ---- Controls: bt-meta info --text; creation dates in milliseconds ----------

#[test]
fn info_text_is_a_summary_for_people() {
    let tmp = TempDir::new("cli-text");
    let made = small_torrent(
        &tmp,
        &[
            "-t",
            "http://t.example/announce",
            "--private",
            "--source",
            "SRC",
            "-c",
            "hi",
        ],
    );
    let (code, env) = run("bt-meta", tmp.path(), &["info", "--text", "f.torrent"]);
    assert_eq!(code, 0, "{}", env.err());
    let text = String::from_utf8(env.out().to_vec()).unwrap();
    for needle in [
        "Name: f.bin",
        &format!("Hash: {}", made["info_hash"].as_str().unwrap()),
        "Total size: 97.7 KiB (100000 bytes)",
        "Piece count: 7",
        "Piece size: 16.0 KiB",
        "Privacy: Private torrent",
        "Source: SRC",
        "Comment: hi",
        "http://t.example/announce",
        "f.bin (97.7 KiB)",
        "Magnet: magnet:?xt=urn:btih:",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
}

#[test]
fn a_creation_date_in_milliseconds_is_read_as_such_with_a_warning() {
    let tmp = TempDir::new("cli-ms");
    // alice.torrent of the webtorrent fixtures stores 1452468725091.
    let alice = common::fixtures().join("alice.torrent");
    let (code, env) = run("bt-meta", tmp.path(), &["info", alice.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v = json(&env);
    assert_eq!(v["creation_date"], "2016-01-10T23:32:05Z");
    assert_eq!(v["creation_date_epoch"], 1_452_468_725);
    assert!(env.err().contains("read as milliseconds"), "{}", env.err());
    // A torrent from stdin, in seconds, gets no warning.
    small_torrent(&tmp, &[]);
    let mut env = Env::test("bt-meta", tmp.path(), ["info", "-"]);
    env.stdin = Source::Bytes(std::io::Cursor::new(
        std::fs::read(tmp.join("f.torrent")).unwrap(),
    ));
    assert_eq!(bt::cli::meta::run(&mut env), 0);
    assert!(env.err().is_empty(), "{}", env.err());
}

/// `--strict` refuses the same torrent in every program that reads one.
#[test]
fn strict_means_the_same_everywhere() {
    let tmp = TempDir::new("cli-strict");
    small_torrent(&tmp, &[]);
    let mut bytes = std::fs::read(tmp.join("f.torrent")).unwrap();
    bytes.push(b'\n');
    write(&tmp.join("nl.torrent"), &bytes);
    for (program, args) in [
        ("bt-meta", vec!["info", "nl.torrent"]),
        ("bt-verify", vec!["nl.torrent"]),
        (
            "bt-announce",
            vec!["nl.torrent", "-t", "http://127.0.0.1:9/a", "--timeout", "1"],
        ),
        (
            "bt-fetch",
            vec!["nl.torrent", "--peer", "127.0.0.1:9", "--timeout", "1"],
        ),
    ] {
        let mut strict = args.clone();
        strict.push("--strict");
        let (code, env) = run(program, tmp.path(), &strict);
        assert_eq!(code, 3, "{program} --strict: {}", env.err());
        assert!(env.err().contains("nl.torrent"), "{program}: {}", env.err());
        if program == "bt-meta" || program == "bt-verify" {
            let (code, env) = run(program, tmp.path(), &args);
            assert_eq!(code, 0, "{program} without --strict: {}", env.err());
            assert!(env
                .err()
                .contains("after the torrent's top-level dictionary"));
        }
    }
}

/// Errors say what and where: a tracker that does not answer is named.
#[test]
fn bt_announce_names_the_tracker_that_failed() {
    let tmp = TempDir::new("cli-announce-fail");
    small_torrent(&tmp, &[]);
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let (code, env) = run(
        "bt-announce",
        tmp.path(),
        &["f.torrent", "-t", &url, "--timeout", "2"],
    );
    assert_eq!(code, 1, "{}", env.err());
    assert!(env.out().is_empty());
    assert!(
        env.err().starts_with("bt-announce: error: ") && env.err().contains(&url),
        "{}",
        env.err()
    );
}

// ---- Library log lines reach the Env's stderr --------------------------------

/// A socket among the files: `create` (library code, `log::warn!`) leaves
/// it out with a warning, which lands on the Env's stderr in-process as on
/// the process's stderr; `-q` silences it, as it silences the Env's own.
#[test]
fn library_warnings_reach_the_env_stderr() {
    let tmp = TempDir::new("cli-log-create");
    write(&tmp.join("data/a.bin"), &random_bytes(4, 1000));
    let _socket = std::os::unix::net::UnixListener::bind(tmp.join("data/sock")).unwrap();
    let create = |extra: &[&str]| {
        let mut args = vec!["create", "--no-date", "-f", "data", "-o", "d.torrent"];
        args.extend_from_slice(extra);
        run("bt-meta", tmp.path(), &args)
    };
    let (code, env) = create(&[]);
    assert_eq!(code, 0, "{}", env.err());
    let err = env.err();
    assert!(
        err.contains("bt-meta: warning: ")
            && err.contains("data/sock: not a regular file")
            && err.contains("left out"),
        "{err}"
    );
    let (code, env) = create(&["-q"]);
    assert_eq!(code, 0, "{}", env.err());
    assert!(env.err().is_empty(), "-q: {}", env.err());
    // -vv: the logger's debug format, the program's name first
    let (code, env) = create(&["-vv"]);
    assert_eq!(code, 0, "{}", env.err());
    let line = env
        .err()
        .lines()
        .find(|l| l.contains("data/sock"))
        .map(String::from);
    assert!(
        line.as_deref()
            .is_some_and(|l| l.starts_with("bt-meta ") && l.contains("WARN")),
        "{}",
        env.err()
    );
}

/// bt-fetch's option checks warn through `log::warn!` too (a private
/// torrent with --dht, a web seed that is not HTTP); each Env gets its own
/// program's lines, even with several programs running at once.
#[test]
fn library_warnings_stay_with_their_env() {
    let tmp = TempDir::new("cli-log-fetch");
    small_torrent(&tmp, &["--private", "-w", "ftp://mirror.example/f.bin"]);
    let options = |args: &[&str]| {
        let mut all = vec!["bt-fetch", "f.torrent", "--peer", "127.0.0.1:9"];
        all.extend_from_slice(args);
        let cli = bt::cli::fetch::Cli::try_parse_from(&all).expect("flags parse");
        let mut env = Env::test("bt-fetch", tmp.path(), Vec::<String>::new());
        env.stdin_is_tty = true;
        env.set_verbosity(cli.verbosity.verbose, cli.verbosity.quiet);
        let ok = bt::cli::fetch::options(&mut env, cli).is_ok();
        (ok, env.err())
    };
    let (ok, err) = options(&["--dht"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("bt-fetch: warning: the torrent is private: --dht is ignored"),
        "{err}"
    );
    assert!(
        err.contains(
            "web seed ftp://mirror.example/f.bin: not an http:// or https:// URL (ignored)"
        ),
        "{err}"
    );
    // Envs on other threads at the same time: each sees only its own lines.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let dir = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                let mut env = Env::test("bt-meta", &dir, ["info", "f.torrent"]);
                let code = bt::cli::meta::run(&mut env);
                log::warn!("line of thread {i}");
                (i, code, env.err())
            })
        })
        .collect();
    for t in threads {
        let (i, code, err) = t.join().unwrap();
        assert_eq!(code, 0, "{err}");
        assert_eq!(err, format!("bt-meta: warning: line of thread {i}\n"));
    }
    // After its Env is gone, the thread's lines no longer go to its stderr.
    let mut env = Env::test("bt-meta", tmp.path(), ["info", "f.torrent"]);
    env.set_verbosity(0, 0);
    log::warn!("while the Env lives");
    let Sink::Shared(stderr) = &env.stderr else {
        panic!("a test Env's stderr is shared with the logger")
    };
    let stderr = std::sync::Arc::clone(stderr);
    drop(env);
    log::warn!("after the Env is gone");
    let text = String::from_utf8(stderr.lock().unwrap().clone()).unwrap();
    assert_eq!(text, "bt-meta: warning: while the Env lives\n");
}

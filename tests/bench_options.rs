//! The bench scripts' shared option parsing (`bench_options` in
//! examples/bench/lib.sh): every script answers `--help` with its header
//! comment, `--dry-run` with its options as parsed (running nothing), and
//! refuses unknown options and missing values with exit code 2. Needs only
//! bash: no root, no clients, no builds.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// The scripts that parse their options through `bench_options`, with one
/// option each takes and the variable it lands in.
const SCRIPTS: &[(&str, &str, &str)] = &[
    ("bench-ablation.sh", "--reps", "reps"),
    ("bench-many.sh", "--reps", "reps"),
    ("bench-trackers.sh", "--reps", "reps"),
    ("bench-latency.sh", "--reps", "reps"),
    ("bench-webseed.sh", "--runs", "runs"),
    ("bench-engine.sh", "--runs", "runs"),
    ("bench-encryption.sh", "--runs", "runs"),
    ("bench-arms.sh", "--reps", "reps"),
    ("bench-clients.sh", "--reps", "reps"),
    ("bench-swarm.sh", "--reps", "reps"),
];

/// Scripts configured by environment variables only: `--help`, and nothing
/// else, is accepted.
const ENV_ONLY: &[&str] = &["bench-sha1.sh", "bench-verify.sh"];

fn run(script: &str, args: &[&str]) -> Output {
    common::require_tool("bash", "bash");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(script);
    Command::new("bash")
        .arg(&path)
        .args(args)
        // no release binaries or results folder may be needed to parse
        .env("BT_FETCH", "/nonexistent/bt-fetch")
        .env("BT_META", "/nonexistent/bt-meta")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The header's first line, as the script file has it (after "# ").
fn header_first_line(script: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(script);
    let source = std::fs::read_to_string(&path).unwrap();
    source
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches('#')
        .trim()
        .to_string()
}

#[test]
fn help_prints_the_header_comment() {
    let all = SCRIPTS
        .iter()
        .map(|s| s.0)
        .chain(ENV_ONLY.iter().copied())
        .chain(["bench-hash.sh"]);
    for script in all {
        let out = run(script, &["--help"]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{script} --help: {}",
            text(&out.stderr)
        );
        assert!(
            stdout.starts_with(&header_first_line(script)),
            "{script} --help does not start with its header:\n{stdout}"
        );
        assert!(
            !stdout.contains("set -"),
            "{script} --help runs past the header:\n{stdout}"
        );
    }
}

#[test]
fn dry_run_shows_the_parsed_values_and_runs_nothing() {
    for (script, option, var) in SCRIPTS {
        let out = run(
            script,
            &["--dry-run", option, "3", "--out", "/nonexistent/out"],
        );
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{script}: {}",
            text(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines.contains(&format!("{var}=3").as_str()),
            "{script}: {stdout}"
        );
        assert!(
            lines.contains(&"out=/nonexistent/out"),
            "{script}: {stdout}"
        );
        // the same with --name=value
        let out = run(script, &[&format!("{option}=4"), "--dry-run"]);
        assert!(
            text(&out.stdout).lines().any(|l| l == format!("{var}=4")),
            "{script} {option}=4"
        );
    }
    // a switch sets its value; the others keep their defaults
    let out = run("bench-latency.sh", &["--check-only", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l == "check_only=1"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "summarize_only=0"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "TIMEOUT=120"), "{stdout}");
    // --quick changes defaults; options given explicitly win in any order
    for script in ["bench-clients.sh", "bench-swarm.sh"] {
        for args in [
            &["--quick", "--size", "64", "--dry-run"][..],
            &["--size", "64", "--quick", "--dry-run"][..],
        ] {
            let stdout = text(&run(script, args).stdout);
            let lines: Vec<&str> = stdout.lines().collect();
            for want in ["quick=1", "size=64", "reps=1"] {
                assert!(lines.contains(&want), "{script} {args:?}: {stdout}");
            }
        }
        let stdout = text(&run(script, &["--quick", "--dry-run"]).stdout);
        assert!(
            stdout.lines().any(|l| l == "size=128"),
            "{script}: {stdout}"
        );
        let stdout = text(&run(script, &["--dry-run"]).stdout);
        assert!(
            stdout.lines().any(|l| l == "size=1024"),
            "{script}: {stdout}"
        );
    }
    // positional arguments, where a script takes them
    let out = run(
        "bench-hash.sh",
        &["--dry-run", "some/dir", "main=/x/release"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "positional=some/dir main=/x/release\n");
}

#[test]
fn bad_options_exit_2_saying_what() {
    for script in SCRIPTS.iter().map(|s| s.0).chain(ENV_ONLY.iter().copied()) {
        let out = run(script, &["--no-such-option", "1"]);
        assert_eq!(out.status.code(), Some(2), "{script}");
        assert!(
            text(&out.stderr).contains("unknown option '--no-such-option'"),
            "{script}: {}",
            text(&out.stderr)
        );
        let out = run(script, &["stray"]);
        assert_eq!(out.status.code(), Some(2), "{script}");
        assert!(
            text(&out.stderr).contains("unexpected argument 'stray'"),
            "{script}"
        );
    }
    for (script, option, _) in SCRIPTS {
        let out = run(script, &[option]);
        assert_eq!(out.status.code(), Some(2), "{script}");
        assert!(
            text(&out.stderr).contains(&format!("option {option} needs a value")),
            "{script}: {}",
            text(&out.stderr)
        );
    }
    let out = run("bench-latency.sh", &["--check-only=yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("takes no value"),
        "{}",
        text(&out.stderr)
    );
}

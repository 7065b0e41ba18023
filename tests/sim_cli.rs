//! bt-sim as scripts use it: the same arguments and seed give
//! byte-identical output, another seed another run, and the JSON lines
//! carry the fields the experiment scripts read.

use std::process::Command;

fn bt_sim(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bt-sim"))
        .args(args)
        .output()
        .expect("run bt-sim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn args(seed: &'static str) -> Vec<&'static str> {
    vec![
        "--peers",
        "16",
        "--seeders",
        "1",
        "--size",
        "1M",
        "--piece-length",
        "64K",
        "--strategy-mix",
        "classic=0.5,bittyrant=0.25,propshare=0.25",
        "--capacity-dist",
        "uniform:20K-200K",
        "--arrival",
        "poisson:2",
        "--seed",
        seed,
        "--json",
    ]
}

#[test]
fn same_arguments_same_bytes() {
    let a = bt_sim(&args("4"));
    let b = bt_sim(&args("4"));
    assert_eq!(a, b, "byte-identical output for the same seed");
    let c = bt_sim(&args("5"));
    assert_ne!(a, c, "another seed, another run");
    let lines: Vec<serde_json::Value> = a
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 17, "16 peers and a summary");
    for l in &lines[..16] {
        for k in [
            "peer",
            "strategy",
            "upload_capacity",
            "download_seconds",
            "uploaded",
            "downloaded",
        ] {
            assert!(l.get(k).is_some(), "{k} in {l}");
        }
        assert_eq!(l["downloaded"], 1 << 20);
    }
    let s = &lines[16]["summary"];
    for k in ["classic", "bittyrant", "propshare"] {
        assert!(s[k]["median_download_seconds"].is_number(), "{s}");
    }
    assert_eq!(s["bittyrant"]["peers"], 4);
}

/// `--x-net-seed` reruns one swarm: the peers, capacities and strategies
/// that `--seed` drew stay, the run's own chance (latencies, the sessions'
/// choices) changes, and each pair of seeds is still deterministic.
#[test]
fn a_net_seed_reruns_the_same_swarm() {
    let peers = |out: &str| -> Vec<(u64, String, u64)> {
        let mut v: Vec<_> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .filter(|l| l.get("peer").is_some())
            .map(|l| {
                let strategy = l["strategy"].as_str().expect("strategy").to_string();
                (
                    l["peer"].as_u64().unwrap(),
                    strategy,
                    l["upload_capacity"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let with_net_seed = |k: &'static str| {
        let mut a = args("4");
        a.extend(["--x-net-seed", k]);
        bt_sim(&a)
    };
    let base = bt_sim(&args("4"));
    let (a, b) = (with_net_seed("11"), with_net_seed("12"));
    assert_eq!(a, with_net_seed("11"), "deterministic for a pair of seeds");
    assert_eq!(base, with_net_seed("4"), "the default net seed is --seed");
    assert_ne!(a, b, "another net seed, another run");
    assert_eq!(peers(&a), peers(&base), "the same swarm");
    assert_eq!(peers(&b), peers(&base), "the same swarm");
    assert_eq!(peers(&base).len(), 16);
}

/// `--x-propshare-optimistic` changes PropShare peers only: 0.2 is the
/// default, 0.1 another run; a classic swarm is the same either way.
/// (2 MiB: in 1 MiB most peers finish before PropShare's first round.)
#[test]
fn the_propshare_optimistic_share_reaches_propshare_peers() {
    let run = |mix: &'static str, share: Option<&'static str>| {
        let mut a = args("4");
        a[5] = "2M";
        a[9] = mix;
        if let Some(x) = share {
            a.extend(["--x-propshare-optimistic", x]);
        }
        bt_sim(&a)
    };
    let default = run("propshare=1", None);
    assert_eq!(default, run("propshare=1", Some("0.2")));
    assert_ne!(default, run("propshare=1", Some("0.1")));
    assert_eq!(run("classic=1", None), run("classic=1", Some("0.1")));
}

/// Threads change the cost, not the output: a swarm large enough to run
/// its steps on several threads prints the same bytes on 1, 2 and 3.
#[test]
fn threads_give_the_same_bytes() {
    let run = |threads: &'static str| {
        let mut a = args("6");
        a[1] = "80";
        a[13] = "flash";
        a.extend(["--threads", threads, "-v"]);
        let out = Command::new(env!("CARGO_BIN_EXE_bt-sim"))
            .args(&a)
            .output()
            .expect("run bt-sim");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (String::from_utf8(out.stdout).expect("utf-8"), err)
    };
    let (one, log) = run("1");
    assert_eq!(one.lines().count(), 81, "80 peers and a summary");
    assert!(log.contains(", 0 on several threads)"), "{log}");
    for threads in ["2", "3"] {
        let (many, log) = run(threads);
        assert!(
            !log.contains(", 0 on several threads)"),
            "never parallel: {log}"
        );
        assert_eq!(one, many, "{threads} threads");
    }
}

#[test]
fn table_without_json_and_usage_errors() {
    let mut a = args("4");
    a.pop();
    let t = bt_sim(&a);
    assert!(t.contains("median s"), "{t}");
    let bad = Command::new(env!("CARGO_BIN_EXE_bt-sim"))
        .args([
            "--peers",
            "3",
            "--size",
            "1M",
            "--capacity-dist",
            "uniform:9-1",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

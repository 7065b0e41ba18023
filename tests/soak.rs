//! A two-minute soak: `examples/soak.sh 120 10` with a 16 MiB file, ten
//! leechers (bt-fetch and libtorrent) joining, leaving and coming back
//! against one bt-fetch seeder. The script itself checks the seeder's
//! live heap with no peer connected after the warm-up against the end
//! (the exact leak check: bt-fetch counts its allocations), RSS growth
//! (10 %; in a run this short, RSS at the same two idle moments, as a
//! median of three samples moves with the leechers connected), fd leaks
//! and every download's bytes; this test runs it and checks what it
//! recorded.

mod common;

use std::process::Command;

use common::peers::{require_libtorrent, temp};

#[test]
fn two_minute_soak_keeps_memory_and_descriptors_flat() {
    require_libtorrent();
    let tmp = temp("soak");
    let out = tmp.join("results");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/soak.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(["120", "10"])
        .env("OUT", &out)
        .env("SOAK_FILE_MIB", "16")
        .env("BT_FETCH", env!("CARGO_BIN_EXE_bt-fetch"))
        .env("BT_META", env!("CARGO_BIN_EXE_bt-meta"))
        .status()
        .expect("cannot run examples/soak.sh");
    let samples = std::fs::read_to_string(out.join("samples.csv")).unwrap_or_default();
    let downloads = std::fs::read_to_string(out.join("downloads.csv")).unwrap_or_default();
    assert!(
        status.success(),
        "soak.sh failed ({status}); samples:\n{samples}\ndownloads:\n{downloads}"
    );
    // One sample every 10 s over 120 s, and real churn: downloads that
    // completed (checked byte for byte by the script) from both clients.
    assert!(samples.lines().count() >= 11, "samples:\n{samples}");
    for kind in ["bt-fetch", "libtorrent"] {
        assert!(
            downloads
                .lines()
                .any(|l| l.contains(&format!(",{kind},complete,"))),
            "no complete {kind} download:\n{downloads}"
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["pass"], true, "{meta}");
    // Both idle checkpoints happened and read a heap figure.
    for at in ["after_warm_up", "end"] {
        let bytes = meta["heap_idle_bytes"][at].as_u64().unwrap_or(0);
        assert!(bytes > 0, "no heap figure {at}: {meta}");
    }
}

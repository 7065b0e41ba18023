//! Runs one hostile peer from `tests/common/hostile.rs` against a seeder,
//! for `examples/hostile.sh`.
//!
//! usage: hostile_peer ATTACK IP:PORT TORRENT [CONNECTIONS] [SECONDS]
//!
//! ATTACK is one of huge-length, keep-alives, request-flood, out-of-range,
//! choked-requests, have-past-end, bad-bitfield, slowloris, flood.
//! CONNECTIONS (default 1000) is used by slowloris and flood; the attack
//! stops after SECONDS (default 300) or on SIGTERM/SIGINT, then prints its
//! counters as one JSON line.

#[path = "../tests/common/hostile.rs"]
mod hostile;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hostile::{Attack, Attacker, Target};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: hostile_peer ATTACK IP:PORT TORRENT [CONNECTIONS] [SECONDS]");
        return ExitCode::from(2);
    }
    let Some(attack) = Attack::by_name(&args[0]) else {
        eprintln!("hostile_peer: unknown attack '{}'", args[0]);
        return ExitCode::from(2);
    };
    let Ok(addr) = args[1].parse() else {
        eprintln!("hostile_peer: '{}' is not IP:PORT", args[1]);
        return ExitCode::from(2);
    };
    let meta = match std::fs::read(&args[2])
        .map_err(|e| e.to_string())
        .and_then(|b| bt::metainfo::Metainfo::from_bytes(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("hostile_peer: {}: {e}", args[2]);
            return ExitCode::from(2);
        }
    };
    let connections = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seconds = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(300);
    bt::signals::install_stop_handlers();
    let target = Target {
        addr,
        info_hash: meta.info_hash,
        pieces: meta.info.piece_count() as u32,
        piece_length: meta.info.piece_length as u32,
    };
    let mut attacker = Attacker::start(attack, target, connections);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end && !bt::signals::stop_requested() {
        std::thread::sleep(Duration::from_millis(50));
    }
    attacker.stop();
    println!(
        "{{\"attack\":\"{}\",\"connects\":{},\"closed_by_target\":{},\"bytes_sent\":{}}}",
        attack.name(),
        attacker.connects(),
        attacker.closed_by_target(),
        attacker.counts.sent.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

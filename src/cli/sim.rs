//! bt-sim's command line: a deterministic swarm simulator running the real
//! session code (picker, chokers, strategies) for many peers over a
//! simulated network. The engine is `crate::sim::net`; the scenario and
//! its output `crate::sim::scenario`.

use clap::Parser;

use super::{Env, Verbosity};
use crate::exit;
use crate::sim::net::Net;
use crate::sim::scenario::{self, Arrival, CapacityDist, Scenario};

#[derive(Parser)]
#[command(
    name = "bt-sim",
    version,
    about = "Simulate a BitTorrent swarm with the real session code: who finishes when, under which choking strategy",
    after_help = concat!(
        "The same arguments and --seed give byte-identical output.\n",
        "Exit status: 0 done; 2 usage error (unknown flag, bad value);\n",
        "141 stdout lost (closed by its reader).\n",
        "Set BT_LOG=debug (or info, trace) to see more on stderr."
    )
)]
pub struct Cli {
    /// Leechers (peers that download).
    #[arg(long, value_name = "N")]
    peers: usize,
    /// Seeders (they start complete and stay).
    #[arg(long, value_name = "S", default_value_t = 1)]
    seeders: usize,
    /// Content size in bytes (units K, M, G).
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size)]
    size: u64,
    /// Piece length in bytes, a multiple of 16K (units K, M, G).
    #[arg(short = 'l', long, value_name = "SIZE", default_value = "256K", value_parser = super::parse_size)]
    piece_length: u64,
    /// Strategies of the leechers and their shares, e.g. classic=0.9,bittyrant=0.1
    /// (classic, bittyrant, propshare, freerider).
    #[arg(long, value_name = "MIX", default_value = "classic=1")]
    strategy_mix: String,
    /// Leechers' upload capacity: a CDF file (lines BYTES_PER_S FRACTION) or uniform:LO-HI.
    #[arg(long, value_name = "FILE|uniform:LO-HI")]
    capacity_dist: String,
    /// flash (everyone at once) or poisson:RATE (arrivals per second).
    #[arg(long, value_name = "flash|poisson:RATE", default_value = "flash")]
    arrival: String,
    /// Upload capacity of each seeder in bytes per second (units K, M, G).
    #[arg(long, value_name = "RATE", default_value = "1M", value_parser = super::parse_size)]
    seeder_capacity: u64,
    /// Seed of the random numbers (arrivals, capacities, the strategies'
    /// choices): the same seed, the same output.
    #[arg(long, value_name = "K", default_value_t = 1)]
    seed: u64,
    /// Use bt-fetch's peer id prefix (its seed split on), to compare with
    /// real bt-fetch processes.
    #[arg(long, hide = true)]
    bt_peer_ids: bool,
    /// Carry blocks as real bytes through every buffer and check each
    /// piece (slower, the same output): to check the no-copy payload.
    #[arg(long, hide = true)]
    real_payload: bool,
    /// Tuning only: the seed split pauses when leechers pass pieces on at
    /// less than this fraction of the seed's rate (default 0.25; 0 never).
    #[arg(long, hide = true, value_name = "FRACTION")]
    x_split_threshold: Option<f64>,
    /// Model resolution, for checks against real processes: the length of
    /// a step in ms (default 100).
    #[arg(long, hide = true, value_name = "MS")]
    x_step: Option<u64>,
    /// Model, for checks against real processes: the range of a peer's
    /// distance in ms, LO-HI (default 5-50; a link's latency is the sum of
    /// its ends', at least one step).
    #[arg(long, hide = true, value_name = "LO-HI")]
    x_latency: Option<String>,
    /// Checks only: PropShare's share of upload kept for its optimistic
    /// unchoke, 0 to 0.9 (default 0.2, not verified against its paper).
    #[arg(long, hide = true, value_name = "FRACTION")]
    x_propshare_optimistic: Option<f64>,
    /// Checks only: seed of the run itself (the latencies and the
    /// sessions' random choices), leaving the swarm that --seed draws
    /// (capacities, strategies, arrivals) as it is, so that one swarm can
    /// be run several times, as a real one is (default: --seed).
    #[arg(long, hide = true, value_name = "K")]
    x_net_seed: Option<u64>,
    /// Threads that run the peers (default: the machine's cores, at most
    /// 8). The output does not depend on it.
    #[arg(short = 'j', long, value_name = "N")]
    threads: Option<usize>,
    /// JSON lines: one per leecher as it finishes, then a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    verbosity: Verbosity,
}

/// Runs bt-sim: parses its flags from `env`, runs the swarm, prints it.
pub fn run(env: &mut Env) -> i32 {
    env.run_program(
        |cli: &Cli| cli.verbosity,
        |env, cli| match simulate(env, &cli) {
            Ok(code) => code,
            Err(bad_value) => env.usage(bad_value),
        },
    )
}

/// Runs the swarm and prints it: the exit status, or the message of a bad
/// flag value (exit status 2).
fn simulate(env: &mut Env, cli: &Cli) -> Result<i32, String> {
    let mix = scenario::parse_mix(&cli.strategy_mix).map_err(|e| format!("--strategy-mix: {e}"))?;
    let capacity = if cli.capacity_dist.starts_with("uniform:") {
        CapacityDist::parse_uniform(&cli.capacity_dist)
    } else {
        match std::fs::read_to_string(env.path(&cli.capacity_dist)) {
            Ok(t) => CapacityDist::parse_cdf(&t),
            Err(e) => Err(format!("{}: {e}", cli.capacity_dist)),
        }
    };
    let capacity = capacity.map_err(|e| format!("--capacity-dist: {e}"))?;
    let arrival: Arrival = cli.arrival.parse().map_err(|e| format!("--arrival: {e}"))?;
    if cli.peers == 0 || cli.seeders == 0 || cli.size == 0 || cli.piece_length == 0 {
        return Err("--peers, --seeders, --size and --piece-length must be > 0".into());
    }
    if cli
        .x_split_threshold
        .is_some_and(|x| !(x.is_finite() && x >= 0.0))
    {
        return Err("--x-split-threshold must be a number >= 0".into());
    }
    if cli.piece_length % 16384 != 0 {
        return Err("--piece-length must be a multiple of 16 KiB".into());
    }
    let sc = Scenario {
        leechers: cli.peers,
        seeders: cli.seeders,
        size: cli.size,
        piece_length: cli.piece_length,
        mix,
        capacity,
        arrival,
        seeder_capacity: cli.seeder_capacity.max(1),
        bt_peer_ids: cli.bt_peer_ids,
        real_payload: cli.real_payload,
        split_threshold: cli.x_split_threshold,
        seed: cli.seed,
    };
    let started = std::time::Instant::now();
    let mut cfg = sc.build();
    cfg.threads = cli
        .threads
        .unwrap_or_else(|| crate::hashing::default_threads().min(8));
    if let Some(ms) = cli.x_step {
        if !(1..=1000).contains(&ms) {
            return Err("--x-step must be 1 to 1000 (ms)".into());
        }
        cfg.step = std::time::Duration::from_millis(ms);
    }
    if let Some(share) = cli.x_propshare_optimistic {
        if !(0.0..=0.9).contains(&share) {
            return Err("--x-propshare-optimistic must be 0 to 0.9".into());
        }
        cfg.propshare_optimistic_share = Some(share);
    }
    if let Some(k) = cli.x_net_seed {
        cfg.seed = k;
    }
    if let Some(range) = &cli.x_latency {
        let parsed = range
            .split_once('-')
            .and_then(|(lo, hi)| Some((lo.parse::<u64>().ok()?, hi.parse::<u64>().ok()?)));
        match parsed {
            Some((lo, hi)) if lo <= hi && hi <= 10_000 => cfg.latency_ms = (lo, hi),
            _ => {
                return Err(format!(
                    "--x-latency: {range}: want LO-HI in ms, LO <= HI <= 10000"
                ))
            }
        }
    }
    if cfg.threads == 0 {
        return Err("--threads must be > 0".into());
    }
    let time_limit = cfg.time_limit;
    let mut net = Net::new(cfg);
    let mut printed = 0;
    // A lost stdout ends the run as in the other programs: one line on
    // stderr and 141, not a simulation running on for nobody.
    while !net.done() && net.elapsed() < time_limit {
        net.step();
        if cli.json {
            while printed < net.finished().len() {
                let r = net.result(net.finished()[printed]);
                let line = format!("{}\n", scenario::peer_json(&r));
                if let Err(lost) = env.write_out(line.as_bytes()) {
                    return Ok(env.output_lost(lost));
                }
                printed += 1;
            }
        }
    }
    let results = net.results();
    let summary = scenario::summary(&results, net.elapsed());
    let text = if cli.json {
        let mut text = String::new();
        for r in results
            .iter()
            .filter(|r| !r.seeder && r.download_seconds.is_none())
        {
            text.push_str(&format!("{}\n", scenario::peer_json(r)));
        }
        text + &format!("{summary}\n")
    } else {
        scenario::table(&results, &summary).to_string()
    };
    if let Err(lost) = env.write_out(text.as_bytes()) {
        return Ok(env.output_lost(lost));
    }
    log::info!(
        "simulated {:.0} s in {:.2} s ({} steps, {} on several threads)",
        net.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        net.steps(),
        net.parallel_steps()
    );
    Ok(exit::OK)
}

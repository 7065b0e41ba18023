//! bt-fetch: download a torrent from its swarm (and upload while doing it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bt::cli::{self, Verbosity};
use bt::exit;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bt-fetch",
    version,
    about = "Download a torrent from its swarm, verify every piece, and upload to others meanwhile",
    after_help = "Peers come from stdin (JSON lines as bt-announce prints them, or IP:PORT lines), \
from --peer, or from the torrent's trackers with --announce."
)]
struct Cli {
    /// The torrent file (`-` is not allowed: stdin carries peers).
    torrent: String,
    /// Folder to download into (the torrent's name is created inside it).
    #[arg(short, long, default_value = ".")]
    output: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<SocketAddr>,
    /// Announce to the torrent's trackers for peers.
    #[arg(long)]
    announce: bool,
    /// Refuse a torrent file that is not canonical bencode (keys out of order
    /// or repeated, bytes after the top-level dictionary).
    #[arg(long)]
    strict: bool,
    /// Port to accept peers on (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    listen: u16,
    /// Address to listen on.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// Most peer connections at once.
    #[arg(long, default_value_t = 50)]
    max_peers: usize,
    /// Keep seeding after the download completes, until SIGINT/SIGTERM.
    #[arg(long)]
    seed: bool,
    /// Keep seeding until this much has been uploaded (times the torrent's size).
    #[arg(long, value_name = "R")]
    seed_ratio: Option<f64>,
    /// Give up (exit 1) if the download is not complete after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Print events as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    /// Memory for pieces in flight (being downloaded, hashed or written).
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = cli::parse_size)]
    max_memory: u64,
    /// Upload at most this many bytes per second (units K, M allowed).
    #[arg(long, value_name = "RATE", value_parser = cli::parse_size)]
    max_upload_rate: Option<u64>,
    /// Peers unchoked at once (besides the optimistic unchoke).
    #[arg(long, default_value_t = 4)]
    upload_slots: usize,
    /// Write pieces through the page cache instead of with O_DIRECT.
    #[arg(long)]
    buffered_writes: bool,
    /// Seed for the random choices (for reproducible runs).
    #[arg(long, hide = true)]
    rng_seed: Option<u64>,
    #[command(flatten)]
    verbosity: Verbosity,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.verbosity.init_logging("bt-fetch");
    ExitCode::from(run(cli) as u8)
}

fn run(cli: Cli) -> i32 {
    if cli.torrent == "-" {
        log::error!("the torrent must be a file: stdin is read for peers");
        return exit::USAGE;
    }
    let meta = match cli::load_torrent(&cli.torrent, cli.strict) {
        Ok(m) => m,
        Err(e) => {
            log::error!("{e}");
            return e.exit_code();
        }
    };
    if cli.announce && meta.trackers.is_empty() {
        log::error!(
            "--announce: {} names no tracker; give peers on stdin or with --peer IP:PORT",
            cli.torrent
        );
        return exit::USAGE;
    }
    if let Some(r) = cli.seed_ratio {
        if !(r >= 0.0 && r.is_finite()) {
            log::error!("--seed-ratio must be a number >= 0");
            return exit::USAGE;
        }
    }
    let stdin_tty = bt::fetch::stdin_is_tty();
    let stdin_peers = !stdin_tty;
    if cli.peers.is_empty() && !cli.announce && stdin_tty && !cli.seed && cli.seed_ratio.is_none() {
        log::error!(
            "no peers: pipe them on stdin (bt-announce --follow {t} | bt-fetch {t}), \
             give --peer IP:PORT, or use --announce",
            t = cli.torrent
        );
        return exit::USAGE;
    }
    let threads = bt::hashing::default_threads();
    bt::fetch::run(bt::fetch::Options {
        meta,
        output: cli.output,
        listen: SocketAddr::new(cli.bind, cli.listen),
        peers: cli.peers,
        stdin_peers,
        seed: cli.seed,
        seed_ratio: cli.seed_ratio,
        timeout: cli.timeout.map(Duration::from_secs),
        json: cli.json,
        progress: cli.verbosity.quiet == 0,
        max_peers: cli.max_peers.max(1),
        max_buffer: cli.max_memory,
        upload_slots: cli.upload_slots,
        disk_threads: 2,
        hash_threads: threads,
        rng_seed: cli.rng_seed,
        announce: cli.announce,
        max_upload_rate: cli.max_upload_rate.filter(|&r| r > 0),
        direct_io: !cli.buffered_writes,
    })
}

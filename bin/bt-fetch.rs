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
from --peer, from the torrent's trackers with --announce, or from the DHT with --dht. \
A magnet link's trackers (tr=) and peers (x.pe=) are used without asking. The DHT routing \
table is kept in $XDG_CACHE_HOME/bt/dht.dat (~/.cache/bt/dht.dat)."
)]
struct Cli {
    /// The torrent file, or a magnet link (`magnet:?xt=urn:btih:…`); `-` is
    /// not allowed: stdin carries peers.
    torrent: String,
    /// Write the .torrent file (rebuilt from a magnet link's metadata) here.
    #[arg(long, value_name = "FILE")]
    save_torrent: Option<PathBuf>,
    /// Stop once the metadata is fetched (with --save-torrent).
    #[arg(long)]
    metadata_only: bool,
    /// Folder to download into (the torrent's name is created inside it).
    #[arg(short, long, default_value = ".")]
    output: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<SocketAddr>,
    /// Announce to the torrent's trackers for peers.
    #[arg(long)]
    announce: bool,
    /// Also download from this HTTP(S) web seed (BEP 19; repeatable).
    #[arg(long = "web-seed", value_name = "URL")]
    web_seeds: Vec<String>,
    /// Ignore web seeds (the torrent's url-list and --web-seed).
    #[arg(long)]
    no_web_seeds: bool,
    /// Also trust the certificate authorities in this PEM file for https
    /// web seeds (repeatable; besides the system's).
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
    /// Find peers through the DHT (BEP 5) and announce there; never for
    /// private torrents.
    #[arg(long)]
    dht: bool,
    /// A DHT node to join through when the saved table fails (repeatable;
    /// default: the public routers).
    #[arg(long, value_name = "HOST:PORT", requires = "dht")]
    dht_bootstrap: Vec<String>,
    /// Refuse a torrent file that is not canonical bencode (keys out of order
    /// or repeated, bytes after the top-level dictionary).
    #[arg(long)]
    strict: bool,
    /// Port to accept peers on (0: any free port); the DHT uses the same
    /// UDP port when it is free.
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
    /// Choking strategy: classic (BEP 3), bittyrant or propshare; the
    /// last two divide --max-upload-rate (or an estimate) among peers.
    #[arg(long, value_name = "NAME", default_value = "classic",
          value_parser = clap::builder::PossibleValuesParser::new(bt::choker::STRATEGIES))]
    strategy: String,
    /// Peers unchoked at once (besides the optimistic unchoke).
    #[arg(long, default_value_t = 4)]
    upload_slots: usize,
    /// Encryption (MSE/PE): allow (accept both, connect in plaintext and
    /// retry with MSE), prefer (connect with MSE, retry in plaintext),
    /// require (RC4-encrypted connections only), disable (plaintext only).
    #[arg(long, value_name = "MODE", default_value = "allow", value_parser = clap::builder::PossibleValuesParser::new(bt::session::Encryption::NAMES))]
    encryption: String,
    /// Write pieces through the page cache instead of with O_DIRECT.
    #[arg(long)]
    buffered_writes: bool,
    /// Rehash the data already in the output folder even when the resume
    /// file says which pieces are there.
    #[arg(long)]
    recheck: bool,
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
    let input = if bt::magnet::is_magnet(&cli.torrent) {
        match bt::magnet::Magnet::parse(&cli.torrent) {
            Ok(m) => bt::fetch::Input::Magnet(m),
            Err(e) => {
                log::error!("magnet link: {e}");
                return exit::INVALID_INPUT;
            }
        }
    } else {
        match cli::load_torrent(&cli.torrent, cli.strict) {
            Ok(m) => bt::fetch::Input::Torrent(Box::new(m)),
            Err(e) => {
                log::error!("{e}");
                return e.exit_code();
            }
        }
    };
    let (no_trackers, link_peers) = match &input {
        bt::fetch::Input::Torrent(m) => (m.trackers.is_empty(), false),
        bt::fetch::Input::Magnet(m) => (
            m.trackers.is_empty(),
            !m.peers.is_empty() || !m.peer_hosts.is_empty(),
        ),
    };
    let private = matches!(&input, bt::fetch::Input::Torrent(m) if m.info.private);
    let dht = cli.dht && !private;
    if cli.dht && private {
        log::warn!("the torrent is private: --dht is ignored (BEP 27)");
    }
    let is_magnet = matches!(&input, bt::fetch::Input::Magnet(_));
    if cli.metadata_only && cli.save_torrent.is_none() {
        log::error!("--metadata-only needs --save-torrent FILE");
        return exit::USAGE;
    }
    // A magnet link's trackers are announced to without --announce: they
    // are where its peers come from.
    let announce = cli.announce || matches!(&input, bt::fetch::Input::Magnet(_)) && !no_trackers;
    if cli.announce && no_trackers {
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
    let mut web_seeds = Vec::new();
    if !cli.no_web_seeds {
        let url_list = match &input {
            bt::fetch::Input::Torrent(m) => m.url_list.clone(),
            bt::fetch::Input::Magnet(_) => Vec::new(),
        };
        for url in url_list.iter().chain(&cli.web_seeds) {
            match bt::tracker::url::Url::parse(url) {
                Ok(u) if u.scheme != bt::tracker::url::Scheme::Udp => {
                    if !web_seeds.contains(url) {
                        web_seeds.push(url.clone());
                    }
                }
                _ if cli.web_seeds.contains(url) => {
                    log::error!("--web-seed {url}: not an http:// or https:// URL");
                    return exit::USAGE;
                }
                _ => log::warn!("web seed {url}: not an http:// or https:// URL (ignored)"),
            }
        }
    }
    let stdin_tty = bt::fetch::stdin_is_tty();
    let stdin_peers = !stdin_tty;
    if cli.peers.is_empty()
        && web_seeds.is_empty()
        && !link_peers
        && !announce
        && !dht
        && stdin_tty
        && !cli.seed
        && cli.seed_ratio.is_none()
    {
        if is_magnet && no_trackers && !private {
            log::error!(
                "no peers: the magnet link names no tracker (tr=) and no peer (x.pe=); \
                 --dht would find some through the DHT (or give --peer IP:PORT, or pipe \
                 peers on stdin)"
            );
            return exit::USAGE;
        }
        log::error!(
            "no peers: pipe them on stdin (bt-announce --follow {t} | bt-fetch {t}), \
             give --peer IP:PORT, use --announce, or --dht",
            t = cli.torrent
        );
        return exit::USAGE;
    }
    let threads = bt::hashing::default_threads();
    bt::fetch::run(bt::fetch::Options {
        input,
        save_torrent: cli.save_torrent,
        metadata_only: cli.metadata_only,
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
        announce,
        max_upload_rate: cli.max_upload_rate.filter(|&r| r > 0),
        direct_io: !cli.buffered_writes,
        recheck: cli.recheck,
        web_seeds,
        ca_files: cli.ca_files,
        encryption: cli.encryption.parse().expect("clap checked the mode"),
        strategy: cli.strategy,
        dht: dht.then(|| {
            let mut d =
                bt::dht::SourceOptions::new([0; 20], 0, SocketAddr::new(cli.bind, cli.listen));
            d.bootstrap = bt::dht::bootstrap_or_default(&cli.dht_bootstrap);
            d.table_file = bt::dht::persist::default_path();
            d
        }),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

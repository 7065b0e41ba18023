//! bt-fetch's command line: its flags, and their checks turning them into
//! [`crate::fetch::Options`]. The download itself is `crate::fetch::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::values::{
    parse_count, parse_duration, parse_peer_id, parse_positive_size, parse_rate, parse_tracker_url,
};
use super::{Env, Verbosity};
use crate::exit;
use crate::fetch::Options;

/// The port bt-fetch listens on unless told otherwise: the one
/// bt-announce announces by default, so that the pipeline agrees.
pub const DEFAULT_PORT: u16 = 6881;

#[derive(Parser, Debug)]
#[command(
    name = "bt-fetch",
    version,
    about = "Download a torrent from its swarm, verify every piece, and upload to others meanwhile",
    after_help = concat!(
        "Peers come from stdin (JSON lines as bt-announce prints them, or IP:PORT lines), ",
        "from --peer, from trackers with --announce or -t, or from the DHT with --dht. ",
        "A magnet link's trackers (tr=) and peers (x.pe=) are used without asking. The DHT ",
        "routing table is kept in $XDG_CACHE_HOME/bt/dht.dat (~/.cache/bt/dht.dat).\n",
        "bt-fetch listens on port 6881, the port bt-announce announces by default; if 6881 is ",
        "taken and -p was not given, it listens on a free port and warns.\n",
        "Exit status: 0 done; 1 failure (network, timeout, no data); 2 usage error (unknown ",
        "flag, bad value); 3 invalid input (torrent or magnet link); 6 a local file could not ",
        "be written; 141 stdout lost (--json closed by its reader).\n",
        "Set BT_LOG=debug (or info, trace) to see more on stderr."
    )
)]
pub struct Cli {
    /// The torrent file, or a magnet link (`magnet:?xt=urn:btih:…`); `-` is
    /// not allowed: stdin carries peers.
    pub torrent: String,
    /// Write the .torrent file (rebuilt from a magnet link's metadata) here.
    #[arg(long, value_name = "FILE")]
    pub save_torrent: Option<PathBuf>,
    /// Stop once the metadata is fetched (with --save-torrent).
    #[arg(long)]
    pub metadata_only: bool,
    /// Folder to download into (the torrent's name is created inside it).
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// A peer to connect to: IP:PORT, [IPv6]:PORT or HOST:PORT (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT", value_parser = crate::peer_source::resolve_peer)]
    pub peers: Vec<SocketAddr>,
    /// Announce to the torrent's trackers (and -t's) for peers.
    #[arg(long)]
    pub announce: bool,
    /// Also announce to this tracker (repeatable; implies --announce).
    #[arg(short = 't', long = "tracker", value_name = "URL", value_parser = parse_tracker_url)]
    pub trackers: Vec<String>,
    /// Our peer id: 20 characters, or 40 hex digits (default: -BT0100- and 12 random characters).
    #[arg(long, value_name = "ID", allow_hyphen_values = true, value_parser = parse_peer_id)]
    pub peer_id: Option<[u8; 20]>,
    /// How many peers to ask trackers for (default 50).
    #[arg(long, value_name = "N")]
    pub numwant: Option<u32>,
    /// Also download from this HTTP(S) web seed (BEP 19; repeatable).
    #[arg(short, long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Ignore web seeds (the torrent's url-list and --web-seed).
    #[arg(long)]
    pub no_web_seeds: bool,
    /// Also trust the certificate authorities in this PEM file for https
    /// trackers and web seeds (repeatable; besides the system's).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// Find peers through the DHT (BEP 5) and announce there; never for
    /// private torrents.
    #[arg(long)]
    pub dht: bool,
    /// A DHT node to join through when the saved table fails (repeatable;
    /// default: the public routers).
    #[arg(long, value_name = "HOST:PORT", requires = "dht")]
    pub dht_bootstrap: Vec<String>,
    /// Refuse a torrent file that is not canonical bencode (keys out of order
    /// or repeated, bytes after the top-level dictionary).
    #[arg(long)]
    pub strict: bool,
    /// The port we accept peer connections on (0: any free port); default
    /// 6881, as bt-announce announces, or any free port if 6881 is taken.
    /// The DHT uses the same UDP port when it is free.
    #[arg(short, long, value_name = "PORT", alias = "listen")]
    pub port: Option<u16>,
    /// Address to listen on.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// Most peer connections at once (at least 1).
    #[arg(long, value_name = "N", default_value = "50", value_parser = parse_count)]
    pub max_peers: usize,
    /// Keep seeding after the download completes, until SIGINT/SIGTERM.
    #[arg(long)]
    pub seed: bool,
    /// Keep seeding until this much has been uploaded (times the torrent's size).
    #[arg(long, value_name = "RATIO")]
    pub seed_ratio: Option<f64>,
    /// Give up (exit 1) if the download is not complete after this long
    /// (seconds, or with a unit: 90s, 2m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Print events as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Memory for pieces in flight (being downloaded, hashed or written;
    /// units K, M, G; more than 0).
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_positive_size)]
    pub max_memory: u64,
    /// Upload at most this many bytes per second (units K, M, G; 0 means
    /// unlimited, the default).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_upload_rate: Option<u64>,
    /// Choking strategy: classic (BEP 3), bittyrant or propshare; the
    /// last two divide --max-upload-rate (or an estimate) among peers.
    #[arg(long, value_name = "NAME", default_value = "classic",
          value_parser = clap::builder::PossibleValuesParser::new(crate::choker::STRATEGIES))]
    pub strategy: String,
    /// Peers unchoked at once, besides the optimistic unchoke (at least 1).
    #[arg(long, value_name = "N", default_value = "4", value_parser = parse_count)]
    pub upload_slots: usize,
    /// Encryption (MSE/PE): allow (accept both, connect in plaintext and
    /// retry with MSE), prefer (connect with MSE, retry in plaintext),
    /// require (RC4-encrypted connections only), disable (plaintext only).
    #[arg(long, value_name = "MODE", default_value = "allow", value_parser = clap::builder::PossibleValuesParser::new(crate::session::Encryption::NAMES))]
    pub encryption: String,
    /// Write pieces through the page cache instead of with O_DIRECT.
    #[arg(long)]
    pub buffered_writes: bool,
    /// Rehash the data already in the output folder even when the resume
    /// file says which pieces are there.
    #[arg(long)]
    pub recheck: bool,
    /// Seed for the random choices (for reproducible runs).
    #[arg(long, hide = true)]
    pub rng_seed: Option<u64>,
    /// Download at most this many bytes per second from peers (units K,
    /// M, G; 0 means unlimited, the default); web seeds are not limited.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_download_rate: Option<u64>,
    /// Download only these files: numbers (1-based, in the order of
    /// `bt-meta info`'s files) or patterns on their paths (`*`, `?`);
    /// repeatable or comma-separated.
    #[arg(long, value_name = "PATTERN|INDEX,…")]
    pub select: Vec<String>,
    /// Fetch pieces in order (for playing media while it downloads).
    #[arg(long)]
    pub sequential: bool,
    /// Stop seeding this long after the download completes (30, 90s,
    /// 10m, 1h); with --seed-ratio, whichever comes first.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub seed_time: Option<Duration>,
    // Experiment-only switches (the ablations in docs/results/ablation/),
    // hidden from --help: each turns one design choice off.
    /// Pick new pieces at random instead of rarest first.
    #[arg(long, hide = true)]
    pub x_random_pieces: bool,
    /// No endgame: never request a block from a second peer.
    #[arg(long, hide = true)]
    pub x_no_endgame: bool,
    /// No seed split: ask a seed for any piece.
    #[arg(long, hide = true)]
    pub x_no_seed_split: bool,
    /// At most N requests outstanding to one peer (default 512).
    #[arg(long, hide = true, value_name = "N", value_parser = parse_count)]
    pub x_max_requests: Option<usize>,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Checks bt-fetch's flags and turns them into the download's options;
/// `Err` carries the exit code after a message on `env`'s stderr.
pub fn options(env: &mut Env, cli: Cli) -> Result<Options, i32> {
    if cli.torrent == "-" {
        env.error(format_args!(
            "the torrent must be a file: stdin is read for peers"
        ));
        return Err(exit::USAGE);
    }
    let input = if crate::magnet::is_magnet(&cli.torrent) {
        match crate::magnet::Magnet::parse(&cli.torrent) {
            Ok(m) => crate::fetch::Input::Magnet(m),
            Err(e) => {
                env.error(format_args!("magnet link: {e}"));
                return Err(exit::INVALID_INPUT);
            }
        }
    } else {
        match super::load_torrent_in(env, &cli.torrent, cli.strict) {
            Ok(m) => crate::fetch::Input::Torrent(Box::new(m)),
            Err(e) => {
                env.error(format_args!("{e}"));
                return Err(e.exit_code());
            }
        }
    };
    let mut input = input;
    // -t adds trackers, each a tier of its own after the torrent's.
    match &mut input {
        crate::fetch::Input::Torrent(m) => {
            for url in &cli.trackers {
                if !m.trackers.iter().flatten().any(|u| u == url) {
                    m.trackers.push(vec![url.clone()]);
                }
            }
        }
        crate::fetch::Input::Magnet(m) => {
            for url in &cli.trackers {
                if !m.trackers.contains(url) {
                    m.trackers.push(url.clone());
                }
            }
        }
    }
    let (no_trackers, link_peers) = match &input {
        crate::fetch::Input::Torrent(m) => (m.trackers.is_empty(), false),
        crate::fetch::Input::Magnet(m) => (
            m.trackers.is_empty(),
            !m.peers.is_empty() || !m.peer_hosts.is_empty(),
        ),
    };
    let private = matches!(&input, crate::fetch::Input::Torrent(m) if m.info.private);
    let dht = cli.dht && !private;
    if cli.dht && private {
        log::warn!("the torrent is private: --dht is ignored (BEP 27)");
    }
    let is_magnet = matches!(&input, crate::fetch::Input::Magnet(_));
    if cli.metadata_only && cli.save_torrent.is_none() {
        env.error(format_args!("--metadata-only needs --save-torrent FILE"));
        return Err(exit::USAGE);
    }
    // A magnet link's trackers are announced to without --announce: they
    // are where its peers come from.
    let announce = cli.announce
        || !cli.trackers.is_empty()
        || matches!(&input, crate::fetch::Input::Magnet(_)) && !no_trackers;
    if cli.announce && no_trackers {
        env.error(format_args!(
            "--announce: {} names no tracker; give one with -t URL, or peers on stdin or with --peer IP:PORT",
            cli.torrent
        ));
        return Err(exit::USAGE);
    }
    if let Some(r) = cli.seed_ratio {
        if !(r >= 0.0 && r.is_finite()) {
            env.error(format_args!("--seed-ratio must be a number >= 0"));
            return Err(exit::USAGE);
        }
    }
    let mut web_seeds = Vec::new();
    if !cli.no_web_seeds {
        let url_list = match &input {
            crate::fetch::Input::Torrent(m) => m.url_list.clone(),
            crate::fetch::Input::Magnet(_) => Vec::new(),
        };
        for url in url_list.iter().chain(&cli.web_seeds) {
            match crate::tracker::url::Url::parse(url) {
                Ok(u) if u.scheme != crate::tracker::url::Scheme::Udp => {
                    if !web_seeds.contains(url) {
                        web_seeds.push(url.clone());
                    }
                }
                _ if cli.web_seeds.contains(url) => {
                    env.error(format_args!(
                        "--web-seed {url}: not an http:// or https:// URL"
                    ));
                    return Err(exit::USAGE);
                }
                _ => log::warn!("web seed {url}: not an http:// or https:// URL (ignored)"),
            }
        }
    }
    let stdin_tty = env.stdin_is_tty;
    let stdin_peers = !stdin_tty;
    if cli.peers.is_empty()
        && web_seeds.is_empty()
        && !link_peers
        && !announce
        && !dht
        && stdin_tty
        && !cli.seed
        && cli.seed_ratio.is_none()
        && cli.seed_time.is_none()
    {
        if is_magnet && no_trackers && !private {
            env.error(format_args!(
                "no peers: the magnet link names no tracker (tr=) and no peer (x.pe=); \
                 --dht would find some through the DHT (or give --peer IP:PORT, or pipe \
                 peers on stdin)"
            ));
            return Err(exit::USAGE);
        }
        env.error(format_args!(
            "no peers: pipe them on stdin (bt-announce --follow {t} | bt-fetch {t}), \
             give --peer IP:PORT, use --announce, or --dht",
            t = cli.torrent
        ));
        return Err(exit::USAGE);
    }
    let threads = crate::hashing::default_threads();
    Ok(Options {
        input,
        save_torrent: cli.save_torrent.map(|p| env.path(p)),
        metadata_only: cli.metadata_only,
        output: env.path(&cli.output),
        listen: SocketAddr::new(cli.bind, cli.port.unwrap_or(DEFAULT_PORT)),
        listen_fallback: cli.port.is_none(),
        peer_id: cli.peer_id,
        numwant: cli.numwant,
        peers: cli.peers,
        stdin_peers,
        seed: cli.seed,
        seed_ratio: cli.seed_ratio,
        seed_time: cli.seed_time,
        max_download_rate: cli.max_download_rate.filter(|&r| r > 0),
        select: cli.select,
        sequential: cli.sequential,
        timeout: cli.timeout,
        json: cli.json,
        progress: cli.verbosity.quiet == 0,
        max_peers: cli.max_peers,
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
        ca_files: cli.ca_files.iter().map(|p| env.path(p)).collect(),
        encryption: cli.encryption.parse().expect("clap checked the mode"),
        strategy: cli.strategy,
        dht: dht.then(|| {
            // Port 0: the DHT takes the TCP listener's port, whichever it is.
            let mut d = crate::dht::SourceOptions::new([0; 20], 0, SocketAddr::new(cli.bind, 0));
            d.bootstrap = crate::dht::bootstrap_or_default(&cli.dht_bootstrap);
            d.table_file = crate::dht::persist::default_path();
            d
        }),
        ablation: crate::session::Ablation {
            random_pieces: cli.x_random_pieces,
            no_endgame: cli.x_no_endgame,
            no_seed_split: cli.x_no_seed_split,
            max_requests: cli.x_max_requests,
        },
    })
}

/// `bt-fetch` in `env`: parses and checks the flags, then downloads.
pub fn run(env: &mut Env) -> i32 {
    env.run_program(|cli: &Cli| cli.verbosity, run_parsed)
}

fn run_parsed(env: &mut Env, cli: Cli) -> i32 {
    let options = match options(env, cli) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let code = crate::fetch::run(options);
    if crate::fetch::output_lost() {
        return env.output_lost(super::OutputLost(std::io::ErrorKind::BrokenPipe.into()));
    }
    code
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

//! bt-announce: ask a torrent's trackers for peers and print them as JSON
//! lines (or scrape them). All protocol work is in `crate::tracker`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::values::{parse_duration, parse_peer_id, parse_size, parse_tracker_url};
use super::{Env, OutputLost, Verbosity};
use crate::exit;
use crate::tracker::{
    merge_peers, AnnounceRequest, AnnounceResponse, Event, Peer, ScrapeStats, TrackerError,
    TrackerOptions, Trackers,
};
use clap::Parser;
use rand::Rng;

#[derive(Parser, Debug)]
#[command(
    name = "bt-announce",
    version,
    about = "Ask a torrent's trackers for peers and print them as JSON lines",
    after_help = concat!(
        "Exit status: 0 done (also when the swarm is empty, and when the reader of --follow ",
        "closes stdout); 1 network failure or tracker refusal; 2 usage error (unknown flag, ",
        "bad value, no tracker to ask); 3 invalid input (torrent or magnet link); ",
        "141 stdout lost (closed by its reader).\n",
        "Example: bt-announce x.torrent | bt-fetch x.torrent -o out/ (both use port 6881 ",
        "unless -p says otherwise).\n",
        "Set BT_LOG=debug (or info, trace) to see more on stderr."
    )
)]
pub struct Cli {
    /// The torrent file (`-` reads it from stdin), or a magnet link (its tr= trackers).
    #[arg(required_unless_present = "info_hash")]
    pub torrent: Option<String>,
    /// Announce this info-hash (40 hex digits) instead of a torrent's; needs --tracker or --dht.
    #[arg(long, value_name = "HEX", conflicts_with = "torrent")]
    pub info_hash: Option<String>,
    /// Tracker URL to use instead of the torrent's (repeatable; tried in the order given).
    #[arg(short = 't', long = "tracker", value_name = "URL", value_parser = parse_tracker_url)]
    pub trackers: Vec<String>,
    /// The port we accept peer connections on (bt-fetch's default too).
    #[arg(short, long, value_name = "PORT", default_value_t = 6881)]
    pub port: u16,
    /// Our peer id: 20 characters, or 40 hex digits (default: -BT0100- and 12 random characters).
    #[arg(long, value_name = "ID", allow_hyphen_values = true, value_parser = parse_peer_id)]
    pub peer_id: Option<[u8; 20]>,
    /// The event of the (first) announce: started, completed, stopped or none.
    #[arg(long, default_value = "started")]
    pub event: Event,
    /// How many peers to ask for.
    #[arg(long, value_name = "N")]
    pub numwant: Option<u32>,
    /// Bytes uploaded so far (units K, M, G).
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = parse_size)]
    pub uploaded: u64,
    /// Bytes downloaded so far (units K, M, G).
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = parse_size)]
    pub downloaded: u64,
    /// Bytes left to download, units K, M, G (default: the torrent's total
    /// length; 16384 with --info-hash or a magnet link).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub left: Option<u64>,
    /// Limit on one exchange with one tracker (seconds, or with a unit:
    /// 500ms, 2m).
    #[arg(long, default_value = "30", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Also trust the certificate authorities in this PEM file (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Announce to every tracker at once and merge their peers.
    #[arg(long)]
    pub all: bool,
    /// Print seeders, leechers and completed counts instead of peers.
    #[arg(long, conflicts_with_all = ["follow", "response"])]
    pub scrape: bool,
    /// Keep announcing at the tracker's interval, printing new peers, until
    /// interrupted or stdout closes; then announce `stopped`.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: announce this often instead of at the tracker's
    /// interval (the tracker's min interval still applies).
    #[arg(long, value_name = "DURATION", requires = "follow", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Refuse a torrent file that is not canonical bencode (keys out of order
    /// or repeated, bytes after the top-level dictionary).
    #[arg(long)]
    pub strict: bool,
    /// Print each tracker answer as one JSON object instead of one line per peer.
    #[arg(long)]
    pub response: bool,
    /// Largest HTTP answer accepted (units K, M, G).
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
    pub max_response: u64,
    /// First UDP retransmission delay in milliseconds (BEP 15: 15000); for tests.
    #[arg(long, value_name = "MS", hide = true)]
    pub udp_retransmit_base: Option<u64>,
    /// Also ask the DHT (BEP 5) for peers, and announce --port there.
    #[arg(long, conflicts_with_all = ["scrape", "response"])]
    pub dht: bool,
    /// A DHT node to join through (repeatable; default: public routers).
    #[arg(long, value_name = "HOST:PORT", requires = "dht")]
    pub dht_bootstrap: Vec<String>,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `bt-announce` in `env`; returns the exit code.
pub fn run(env: &mut Env) -> i32 {
    env.run_program(|cli: &Cli| cli.verbosity, |env, cli| run_parsed(env, &cli))
}

fn run_parsed(env: &mut Env, cli: &Cli) -> i32 {
    let mut rng = rand::thread_rng();
    let (info_hash, torrent_trackers, total_length) = match (&cli.torrent, &cli.info_hash) {
        (Some(link), _) if crate::magnet::is_magnet(link) => {
            match crate::magnet::Magnet::parse(link) {
                Ok(m) => (m.info_hash, m.tracker_tiers(), None),
                Err(e) => {
                    env.error(format_args!("magnet link: {e}"));
                    return exit::INVALID_INPUT;
                }
            }
        }
        (Some(path), _) => match super::load_torrent_in(env, path, cli.strict) {
            Ok(meta) => (meta.info_hash, meta.trackers, Some(meta.info.total_length)),
            Err(e) => {
                env.error(&e);
                return e.exit_code();
            }
        },
        (None, Some(hex)) => match crate::hex::decode20(hex) {
            Some(h) => (h, Vec::new(), None),
            None => return env.usage(format_args!("--info-hash '{hex}' is not 40 hex digits")),
        },
        (None, None) => return env.usage("give a torrent file or --info-hash"),
    };
    if cli.info_hash.is_some() && cli.trackers.is_empty() && !cli.dht {
        return env.usage("--info-hash needs --tracker or --dht");
    }
    let mut trackers = if cli.trackers.is_empty() {
        Trackers::new(torrent_trackers, &mut rng)
    } else {
        Trackers::in_order(cli.trackers.iter().map(|u| vec![u.clone()]).collect())
    };
    if trackers.is_empty() && !cli.dht {
        // Nothing to ask: a usage error, as bt-fetch --announce says too.
        return env.usage(format_args!(
            "{}; give one with -t/--tracker URL (or use --dht)",
            TrackerError::NoTrackers
        ));
    }
    let peer_id = match cli.peer_id {
        Some(id) => id,
        None => crate::wire::make_peer_id(&mut rng),
    };
    let mut opts = TrackerOptions::default().with_timeout(cli.timeout);
    opts.ca_files.clone_from(&cli.ca_file);
    opts.max_response = usize::try_from(cli.max_response).unwrap_or(usize::MAX);
    if let Some(ms) = cli.udp_retransmit_base {
        opts.udp_retransmit_base = Duration::from_millis(ms.max(1));
    }
    log::debug!("trackers in order: {}", trackers.urls().join(", "));

    if cli.scrape {
        return scrape(env, cli, &mut trackers, info_hash, &opts);
    }
    let req = AnnounceRequest {
        info_hash,
        peer_id,
        port: cli.port,
        uploaded: cli.uploaded,
        downloaded: cli.downloaded,
        left: cli.left.or(total_length).unwrap_or(16384),
        event: cli.event,
        numwant: cli.numwant,
        key: rng.gen(),
    };
    if cli.follow {
        follow(env, cli, &mut trackers, req, &opts)
    } else {
        let dht = cli.dht.then(|| dht_start(cli, info_hash, rng.gen()));
        let mut out = Output::default();
        let answers = if trackers.is_empty() {
            Vec::new()
        } else {
            announce_round(env, cli, &mut trackers, &req, &opts)
        };
        let mut ok = !answers.is_empty();
        if let Err(lost) = out.print_answers(env, cli, &answers) {
            return env.output_lost(lost);
        }
        if let Some(dht) = dht {
            match dht_print(env, dht, &mut out) {
                Ok(answered) => ok |= answered,
                Err(lost) => return env.output_lost(lost),
            }
        }
        if ok {
            exit::OK
        } else {
            exit::FAILURE
        }
    }
}

/// Logs every single-tracker error of `e`.
fn report(env: &mut Env, e: &TrackerError) {
    for one in e.errors() {
        env.error(one);
    }
}

/// Announces once (to the first tracker that answers, or to all with
/// --all); returns the answers, having logged errors and warnings.
fn announce_round(
    env: &mut Env,
    cli: &Cli,
    trackers: &mut Trackers,
    req: &AnnounceRequest,
    opts: &TrackerOptions,
) -> Vec<(String, AnnounceResponse)> {
    let answers = if cli.all {
        let mut answers = Vec::new();
        let mut errors = Vec::new();
        for (url, result) in trackers.announce_all(req, opts) {
            match result {
                Ok(a) => answers.push((url, a)),
                Err(e) => errors.push(e),
            }
        }
        // With --all, a tracker failing is worth an error only when none answered.
        for e in &errors {
            if answers.is_empty() {
                report(env, e);
            } else {
                env.warn(e);
            }
        }
        answers
    } else {
        match trackers.announce(req, opts) {
            Ok(answer) => vec![answer],
            Err(e) => {
                report(env, &e);
                Vec::new()
            }
        }
    };
    for (url, a) in &answers {
        if let Some(w) = &a.warning {
            env.warn(format_args!("{url}: tracker warning: {w}"));
        }
        env.info(format_args!(
            "{url}: {} peers (seeders {}, leechers {}), next announce in {} s",
            a.peers.len(),
            a.complete.map_or("?".into(), |n| n.to_string()),
            a.incomplete.map_or("?".into(), |n| n.to_string()),
            a.interval.as_secs()
        ));
    }
    answers
}

#[derive(serde::Serialize)]
struct PeerLine<'a> {
    ip: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracker: Option<&'a str>,
}

impl<'a> PeerLine<'a> {
    fn new(p: &Peer, tracker: Option<&'a str>) -> Self {
        PeerLine {
            ip: p.addr.ip().to_string(),
            port: p.addr.port(),
            peer_id: p.peer_id.map(|id| crate::hex::encode(&id)),
            tracker,
        }
    }
}

#[derive(serde::Serialize)]
struct ResponseLine<'a> {
    tracker: &'a str,
    interval: u64,
    min_interval: Option<u64>,
    complete: Option<u64>,
    incomplete: Option<u64>,
    tracker_id: Option<String>,
    warning: Option<&'a str>,
    peers: Vec<PeerLine<'a>>,
}

/// What was printed so far (for --follow).
#[derive(Default)]
struct Output {
    printed: HashSet<SocketAddr>,
}

impl Output {
    /// Prints answers as peer lines (new peers only) or whole responses.
    /// `Err` when stdout is closed.
    fn print_answers(
        &mut self,
        env: &mut Env,
        cli: &Cli,
        answers: &[(String, AnnounceResponse)],
    ) -> Result<(), OutputLost> {
        let mut lines = Vec::new();
        if cli.response {
            for (url, a) in answers {
                let line = ResponseLine {
                    tracker: url,
                    interval: a.interval.as_secs(),
                    min_interval: a.min_interval.map(|d| d.as_secs()),
                    complete: a.complete,
                    incomplete: a.incomplete,
                    tracker_id: a
                        .tracker_id
                        .as_ref()
                        .map(|t| String::from_utf8_lossy(t).into_owned()),
                    warning: a.warning.as_deref(),
                    peers: a.peers.iter().map(|p| PeerLine::new(p, None)).collect(),
                };
                lines.push(to_line(&line));
            }
        } else {
            // Each peer once, credited to the first tracker that gave it.
            let mut source = std::collections::HashMap::new();
            for (url, a) in answers {
                for p in &a.peers {
                    source.entry(p.addr).or_insert(url.as_str());
                }
            }
            let merged = merge_peers(answers.iter().map(|(_, a)| &a.peers[..]));
            for p in merged {
                if self.printed.insert(p.addr) {
                    let line = PeerLine::new(&p, source.get(&p.addr).copied());
                    lines.push(to_line(&line));
                }
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        env.write_out(lines.concat().as_bytes())
    }
}

/// One JSON line (these types always serialize).
fn to_line(value: &impl serde::Serialize) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

#[derive(serde::Serialize)]
struct ScrapeLine<'a> {
    tracker: &'a str,
    info_hash: String,
    seeders: u64,
    leechers: u64,
    completed: u64,
}

fn scrape(
    env: &mut Env,
    cli: &Cli,
    trackers: &mut Trackers,
    info_hash: [u8; 20],
    opts: &TrackerOptions,
) -> i32 {
    let hashes = [info_hash];
    let results: Vec<(String, Vec<ScrapeStats>)> = if cli.all {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for (url, r) in trackers.scrape_all(&hashes, opts) {
            match r {
                Ok(s) => ok.push((url, s)),
                Err(e) => errors.push(e),
            }
        }
        for e in &errors {
            if ok.is_empty() {
                report(env, e);
            } else {
                env.warn(e);
            }
        }
        ok
    } else {
        match trackers.scrape(&hashes, opts) {
            Ok(r) => vec![r],
            Err(e) => {
                report(env, &e);
                Vec::new()
            }
        }
    };
    for (url, stats) in &results {
        for s in stats {
            let line = ScrapeLine {
                tracker: url,
                info_hash: crate::hex::encode(&s.info_hash),
                seeders: s.complete,
                leechers: s.incomplete,
                completed: s.downloaded,
            };
            if let Err(lost) = env.write_out(to_line(&line).as_bytes()) {
                return env.output_lost(lost);
            }
        }
    }
    if results.is_empty() {
        exit::FAILURE
    } else {
        exit::OK
    }
}

// ---- --follow -------------------------------------------------------------

/// Whether the reader of stdout went away (a pipe whose other end closed).
fn stdout_closed(env: &Env) -> bool {
    if !matches!(env.stdout, super::env::Sink::Stdout) {
        return matches!(env.stdout, super::env::Sink::Closed);
    }
    let mut fds = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
}

/// Sleeps until `until` in short slices, calling `each_slice` after each;
/// false when told to stop (or `each_slice` says so).
fn wait_until(env: &mut Env, until: Instant, mut each_slice: impl FnMut(&mut Env) -> bool) -> bool {
    loop {
        if !each_slice(env) {
            return false;
        }
        if crate::signals::stop_requested() {
            log::info!("stopping on a signal");
            return false;
        }
        if stdout_closed(env) {
            log::info!("stdout closed; stopping");
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

fn follow(
    env: &mut Env,
    cli: &Cli,
    trackers: &mut Trackers,
    mut req: AnnounceRequest,
    opts: &TrackerOptions,
) -> i32 {
    use crate::peer_source::PeerSource as _;
    use crate::tracker::schedule::{AnnounceSchedule, ScheduleConfig};
    crate::signals::install_stop_handlers();
    let mut out = Output::default();
    // Which event, when, retries and who hears `stopped`: the shared schedule decides.
    let config = ScheduleConfig {
        first_event: req.event,
        interval: cli.interval,
        ..Default::default()
    };
    let mut schedule = AnnounceSchedule::new(config, Instant::now());
    // With --dht, a DHT node runs beside the trackers for the whole run,
    // looking up (and announcing) again every few minutes.
    let mut dht = if cli.dht {
        match dht_follow_start(cli, req.info_hash, req.port) {
            Ok(d) => Some(d),
            Err(e) => {
                env.error(format_args!("dht: {e}"));
                return exit::FAILURE;
            }
        }
    } else {
        None
    };
    let mut dht_out = Vec::new();
    let mut print_dht = |env: &mut Env, out: &mut Output| -> bool {
        let Some(source) = dht.as_mut() else {
            return true;
        };
        source.poll(&mut dht_out);
        let peers: Vec<SocketAddr> = dht_out
            .drain(..)
            .filter_map(|l| match l {
                crate::peer_source::Learnt::Peer(a) => Some(a),
                crate::peer_source::Learnt::DhtPeers { peers } => {
                    log::info!("dht: a lookup found {peers} peers");
                    None
                }
                _ => None,
            })
            .collect();
        print_dht_peers(env, out, &peers).is_ok()
    };
    if trackers.is_empty() {
        // --dht alone: nothing to announce to trackers, only DHT lookups.
        while wait_until(env, Instant::now() + Duration::from_secs(3600), |env| {
            print_dht(env, &mut out)
        }) {}
        return exit::OK;
    }
    while let Some(at) = schedule.poll_timeout() {
        if !wait_until(env, at, |env| print_dht(env, &mut out)) {
            break;
        }
        let Some(event) = schedule.poll_announce(Instant::now()) else {
            continue;
        };
        req.event = event;
        let answers = announce_round(env, cli, trackers, &req, opts);
        let now = Instant::now();
        for (url, a) in &answers {
            schedule.on_success(now, url, a.interval, a.min_interval);
            if let (Some(every), Some(min)) = (cli.interval, a.min_interval) {
                if min > every {
                    log::info!("{url}: waiting its min interval of {} s", min.as_secs());
                }
            }
        }
        if answers.is_empty() {
            schedule.on_failure(now);
        }
        if out.print_answers(env, cli, &answers).is_err() {
            log::info!("stdout closed; stopping");
            break;
        }
        if let Some(at) = schedule.poll_timeout() {
            log::debug!(
                "next announce in {} s",
                at.saturating_duration_since(now).as_secs_f64()
            );
        }
    }
    if let Some(stop) = schedule.stop() {
        req.event = Event::Stopped;
        for (url, r) in trackers.announce_to(&stop.urls, &req, opts) {
            match r {
                Ok(_) => log::info!("{url}: announced stopped"),
                Err(e) => env.warn(e),
            }
        }
    }
    exit::OK
}

// ---- --dht ---------------------------------------------------------------

/// The DHT node of `--follow --dht`: a peer source that looks up and
/// announces `port` periodically (see `crate::dht::DhtPeers`).
fn dht_follow_start(
    cli: &Cli,
    info_hash: [u8; 20],
    port: u16,
) -> std::io::Result<crate::dht::DhtPeers> {
    let mut opts =
        crate::dht::SourceOptions::new(info_hash, port, SocketAddr::from(([0, 0, 0, 0], 0)));
    opts.bootstrap = crate::dht::bootstrap_or_default(&cli.dht_bootstrap);
    opts.table_file = crate::dht::persist::default_path();
    // The loop polls the source every 100 ms: no wake-up needed.
    crate::dht::DhtPeers::start(opts, std::sync::Arc::new(|| {}))
}

/// Prints DHT peers not printed yet; `Err` when stdout is closed.
fn print_dht_peers(
    env: &mut Env,
    out: &mut Output,
    peers: &[SocketAddr],
) -> Result<(), OutputLost> {
    let mut lines = String::new();
    for p in peers {
        if out.printed.insert(*p) {
            let line = DhtPeerLine {
                ip: p.ip().to_string(),
                port: p.port(),
                source: "dht",
            };
            lines.push_str(&to_line(&line));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    env.write_out(lines.as_bytes())
}

/// Starts the DHT lookup (and announce) in a thread, alongside the trackers.
fn dht_start(
    cli: &Cli,
    info_hash: [u8; 20],
    seed: u64,
) -> std::thread::JoinHandle<Result<Vec<std::net::SocketAddrV4>, crate::dht::DhtError>> {
    let opts = crate::dht::FindPeers {
        bootstrap: crate::dht::bootstrap_or_default(&cli.dht_bootstrap),
        info_hash,
        announce: (cli.event != Event::Stopped).then_some(Some(cli.port)),
        timeout: cli.timeout,
        bind: SocketAddr::from(([0, 0, 0, 0], 0)),
        table_file: crate::dht::persist::default_path(),
        seed,
    };
    std::thread::spawn(move || crate::dht::find_peers(&opts))
}

#[derive(serde::Serialize)]
struct DhtPeerLine {
    ip: String,
    port: u16,
    source: &'static str,
}

/// Waits for the DHT lookup and prints its peers not printed yet. `Ok(true)`
/// when the DHT answered, `Err` when stdout is closed.
fn dht_print(
    env: &mut Env,
    dht: std::thread::JoinHandle<Result<Vec<std::net::SocketAddrV4>, crate::dht::DhtError>>,
    out: &mut Output,
) -> Result<bool, OutputLost> {
    let peers = match dht.join() {
        Ok(Ok(peers)) => peers,
        Ok(Err(e)) => {
            env.error(format_args!("dht: {e}"));
            return Ok(false);
        }
        Err(_) => {
            env.error("dht: the lookup failed");
            return Ok(false);
        }
    };
    log::info!("dht: {} peers", peers.len());
    let peers: Vec<SocketAddr> = peers.into_iter().map(SocketAddr::V4).collect();
    print_dht_peers(env, out, &peers)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn default_peer_id() {
        let id = crate::wire::make_peer_id(&mut rand::thread_rng());
        assert!(id.starts_with(b"-BT0100-"));
        assert!(id[8..].iter().all(u8::is_ascii_alphanumeric));
    }
}

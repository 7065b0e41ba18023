//! The I/O edge of `bt-fetch`: one mio event loop driving a [`Session`],
//! disk threads for hashing, writing and reading, a reader thread for peers
//! arriving on stdin, and the user-facing output (JSON events on stdout, a
//! progress line on stderr).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::json;

use crate::announcer::{Announcer, Stats};
use crate::exit;
use crate::hex;
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::peer_source::{Learnt, Origin, PeerSource, StdinPeers, TrackerPeers};
use crate::pex::Pex;
use crate::progress::{self, ProgressLine};
use crate::session::{
    Action, CloseReason, Config, Encryption, Event, Extension, Session, MAX_READ,
};
use crate::storage::{DiskPool, Done, Job, Storage};
use crate::ut_metadata::{MetadataSlot, UtMetadata};
use crate::verify::{self, PieceState};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Bytes read from one socket per pass (then other sockets get a turn).
const READ_PER_PASS: usize = 1 << 20;
const READ_BUFFER: usize = 256 * 1024;
/// Upload read buffers (up to `MAX_READ` each) kept for reuse: enough for the
/// reads in flight to a few peers without holding megabytes when seeding
/// to many.
const UPLOAD_BUFFERS_KEPT: usize = 4;
/// How often the progress line is redrawn.
const PROGRESS_REDRAW: Duration = Duration::from_millis(200);
/// After completing, queued output (`have` messages) gets this long to go
/// out before bt-fetch exits.
const LINGER: Duration = Duration::from_millis(50);

/// What to download.
pub enum Input {
    Torrent(Box<Metainfo>),
    /// The info dictionary is fetched from peers first (BEP 9).
    Magnet(Magnet),
}

pub struct Options {
    pub input: Input,
    /// Write the `.torrent` (rebuilt from a magnet link's metadata) here.
    pub save_torrent: Option<PathBuf>,
    /// Stop once the metadata is fetched (and saved).
    pub metadata_only: bool,
    pub output: PathBuf,
    pub listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    pub stdin_peers: bool,
    pub seed: bool,
    pub seed_ratio: Option<f64>,
    pub timeout: Option<Duration>,
    pub json: bool,
    pub progress: bool,
    pub max_peers: usize,
    pub max_buffer: u64,
    pub upload_slots: usize,
    pub disk_threads: usize,
    pub hash_threads: usize,
    pub rng_seed: Option<u64>,
    /// Announce to the torrent's trackers for peers.
    pub announce: bool,
    pub max_upload_rate: Option<u64>,
    /// The choking strategy, by name (see [`crate::choker::by_name`]);
    /// `classic` is the default.
    pub strategy: String,
    /// Write pieces with `O_DIRECT` where the filesystem allows it.
    pub direct_io: bool,
    /// MSE/PE: what we accept and how we connect.
    pub encryption: Encryption,
    /// Run a DHT node as a peer source (BEP 5). `run` fills in the
    /// info-hash, the port to announce and the seed; a `bind` port of 0
    /// becomes the TCP listen port. Stopped when a magnet link's
    /// metadata says the torrent is private (BEP 27).
    pub dht: Option<crate::dht::SourceOptions>,
}

struct Conn {
    stream: TcpStream,
    connected: bool,
    readable: bool,
}

struct Output {
    json: bool,
}

impl Output {
    fn emit(&self, value: serde_json::Value) {
        if !self.json {
            return;
        }
        let mut line = value.to_string();
        line.push('\n');
        let mut out = io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    }
}

pub use crate::peer_source::parse_peer_line;

/// The BEP 10 extensions a session for a torrent with metadata runs:
/// `ut_metadata` serving its info dictionary, and `ut_pex` unless the
/// torrent is private (BEP 27).
pub fn torrent_extensions(meta: &Metainfo) -> Vec<Box<dyn Extension>> {
    let info = Arc::new(meta.info_bytes.clone());
    let mut v: Vec<Box<dyn Extension>> = vec![Box::new(UtMetadata::serving(meta.info_hash, info))];
    if !meta.info.private {
        v.push(Box::new(Pex::new()));
    }
    v
}

/// Whether stdin is a terminal (then it is not read for peers).
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// Runs a download (and seeding); returns the exit code.
///
/// For a magnet link, a first phase runs a session in
/// [`Phase::AwaitingMetadata`](crate::session::Phase) with `ut_metadata`
/// fetching the info dictionary (peers from the link, `--peer`, stdin
/// and its trackers, all kept for later). Once verified, that session
/// closes its connections and the download proceeds as from a `.torrent`:
/// a new session over the same listener, announcer and peer sources, with
/// every address the first one knew (the connections are made again).
pub fn run(mut opts: Options) -> i32 {
    crate::signals::install_stop_handlers();
    let started = Instant::now();
    let out = Output { json: opts.json };
    let mut rng_seed = opts.rng_seed.unwrap_or_else(rand::random);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(rng_seed);
    rng_seed = rng_seed.wrapping_add(1);
    let peer_id = crate::wire::make_peer_id(&mut rng);
    let (info_hash, trackers) = match &opts.input {
        Input::Torrent(m) => (m.info_hash, m.trackers.clone()),
        Input::Magnet(m) => {
            // x.pe= host names are resolved once, here.
            let resolved = m.peer_hosts.iter().flat_map(|h| {
                use std::net::ToSocketAddrs;
                match h.to_socket_addrs() {
                    Ok(addrs) => addrs.collect::<Vec<_>>(),
                    Err(e) => {
                        log::warn!("x.pe={h}: cannot resolve: {e}");
                        Vec::new()
                    }
                }
            });
            for p in m.peers.iter().copied().chain(resolved) {
                if !opts.peers.contains(&p) {
                    opts.peers.push(p);
                }
            }
            (m.info_hash, m.tracker_tiers())
        }
    };

    let listener = match TcpListener::bind(opts.listen) {
        Ok(l) => l,
        Err(e) => {
            log::error!(
                "cannot listen on {}: {e} (choose another --listen port)",
                opts.listen
            );
            return exit::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot create the event loop: {e}");
            return exit::FAILURE;
        }
    };
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("waker"));
    let mut listener = listener;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register listener");
    let mut sources: Vec<Box<dyn PeerSource>> = Vec::new();
    if opts.stdin_peers {
        let w = waker.clone();
        sources.push(Box::new(StdinPeers::spawn(Arc::new(move || {
            let _ = w.wake();
        }))));
    }
    let mut dht_port = None;
    if let Some(mut d) = opts.dht.clone() {
        d.info_hash = info_hash;
        d.announce_port = port;
        if d.bind.port() == 0 {
            d.bind.set_port(port);
        }
        d.seed = rng_seed.wrapping_add(2);
        let w = waker.clone();
        match crate::dht::DhtPeers::start(
            d,
            Arc::new(move || {
                let _ = w.wake();
            }),
        ) {
            Ok(source) => {
                dht_port = Some(source.port());
                sources.push(Box::new(source));
            }
            Err(e) => log::warn!("dht: cannot start the node: {e}; going on without it"),
        }
    }
    let stats = Arc::new(Stats::default());
    let (report_tx, report_rx) = mpsc::channel();
    if opts.announce {
        sources.push(Box::new(TrackerPeers { reports: report_rx }));
    }
    let announcer = if opts.announce {
        let w = waker.clone();
        // Unknown until the metadata is here: not a seed.
        stats.left.store(1, Ordering::Relaxed);
        Some(Announcer::start(
            trackers,
            info_hash,
            peer_id,
            port,
            stats.clone(),
            report_tx,
            Arc::new(move || {
                let _ = w.wake();
            }),
            rng_seed.wrapping_add(1),
        ))
    } else {
        None
    };
    let net = Net {
        poll,
        listener,
        sources,
        announcer,
        stats,
        stdin_peers: 0,
        stdin_ended: false,
        known: Vec::new(),
        banned: Vec::new(),
    };
    let mut cfg = Config::new(info_hash, peer_id);
    cfg.listen_port = port;
    cfg.max_peers = opts.max_peers;
    cfg.max_buffer_bytes = opts.max_buffer;
    cfg.upload_slots = opts.upload_slots;
    cfg.seed = rng_seed;
    cfg.max_upload_rate = opts.max_upload_rate;
    cfg.encryption = opts.encryption;
    cfg.dht_port = dht_port;

    let input = std::mem::replace(&mut opts.input, Input::Magnet(empty_magnet()));
    // The torrent, and its file as --save-torrent writes it.
    let (meta, mut net, file) = match input {
        Input::Torrent(meta) => {
            let file = crate::magnet::torrent_file(&meta.info_bytes, &meta.trackers);
            (*meta, net, file)
        }
        Input::Magnet(magnet) => {
            out.emit(json!({
                "event": "listening",
                "port": port,
                "peer_id": hex::encode(&peer_id),
                "info_hash": magnet.info_hash_hex(),
                "name": magnet.name,
                "metadata": false,
            }));
            if opts.progress {
                progress::with_line_cleared(|| {
                    eprintln!(
                        "bt-fetch: listening on port {port}, peer id {}; fetching the metadata",
                        String::from_utf8_lossy(&peer_id)
                    )
                });
            }
            match fetch_metadata(&magnet, cfg.clone(), net, &opts, &out, started) {
                Ok((meta, mut net)) => {
                    let meta = *meta;
                    if meta.info.private && cfg.dht_port.take().is_some() {
                        log::warn!("the torrent is private: the DHT is stopped (BEP 27)");
                        net.sources.retain(|s| s.origin() != Origin::Dht);
                    }
                    out.emit(json!({
                        "event": "metadata",
                        "info_hash": meta.info_hash_hex(),
                        "name": meta.info.name_lossy(),
                        "size": meta.info.total_length,
                        "pieces": meta.info.piece_count(),
                        "private": meta.info.private,
                        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                    }));
                    let file = magnet.torrent_bytes(&meta.info_bytes);
                    (meta, net, file)
                }
                Err(code) => return code,
            }
        }
    };
    if let Some(path) = &opts.save_torrent {
        if let Err(e) = std::fs::write(path, file) {
            log::error!("cannot write {}: {e}", path.display());
            if let Some(mut a) = net.announcer.take() {
                a.stop();
            }
            return exit::LOCAL_IO;
        }
        log::info!("torrent saved to {}", path.display());
    }
    if opts.metadata_only {
        if let Some(mut a) = net.announcer.take() {
            a.stop();
        }
        out.emit(json!({"event": "done", "status": "ok", "metadata_only": true}));
        return exit::OK;
    }
    let info = &meta.info;

    if let Err(e) = std::fs::create_dir_all(&opts.output) {
        log::error!(
            "cannot create the output folder {}: {e}",
            opts.output.display()
        );
        return exit::FAILURE;
    }
    // Recheck what is already there (resume).
    let checked = AtomicU64::new(0);
    let report = match crate::cli::with_progress(
        "checking",
        info.total_length,
        &checked,
        opts.progress,
        || verify::verify(info, &opts.output, opts.hash_threads, &checked),
    ) {
        Ok(r) => r,
        Err(e) => {
            log::error!("checking existing data: {e}");
            return exit::FAILURE;
        }
    };
    let good = report.count(PieceState::Good);
    if good > 0 {
        log::info!(
            "{good} of {} pieces already present and good",
            info.piece_count()
        );
    }

    let mut session = Session::new(
        cfg,
        info.piece_length,
        info.total_length,
        info.piece_count(),
    );
    for e in torrent_extensions(&meta) {
        session.register_extension(e);
    }
    match crate::choker::by_name(&opts.strategy, info.piece_length) {
        Some(c) => session.set_choker(c),
        None => {
            log::error!("unknown strategy {:?}", opts.strategy);
            return exit::USAGE;
        }
    }
    for (i, s) in report.pieces.iter().enumerate() {
        if *s == PieceState::Good {
            session.set_have(i);
        }
    }
    drop(report);
    net.stats.left.store(
        info.total_length
            .saturating_sub(session.picker().bytes_verified()),
        Ordering::Relaxed,
    );

    if opts.progress {
        progress::with_line_cleared(|| {
            eprintln!(
                "bt-fetch: listening on port {port}, peer id {}",
                String::from_utf8_lossy(&peer_id)
            )
        });
    }
    out.emit(json!({
        "event": "listening",
        "port": port,
        "peer_id": hex::encode(&peer_id),
        "info_hash": meta.info_hash_hex(),
        "name": info.name_lossy(),
        "size": info.total_length,
        "pieces": info.piece_count(),
        "have_pieces": good,
    }));

    let storage = Arc::new(Storage::new(info, &opts.output));
    storage.set_direct_io(opts.direct_io);
    if let Err(e) = storage.create_empty_files() {
        log::error!("{e}");
        return exit::FAILURE;
    }

    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let w = waker.clone();
    let mut disk = DiskPool::start(
        storage.clone(),
        opts.disk_threads,
        done_tx,
        Arc::new(move || {
            let _ = w.wake();
        }),
    );
    // Peers that lied about the metadata stay banned.
    for a in std::mem::take(&mut net.banned) {
        session.ban(a);
    }
    for p in &opts.peers {
        session.add_candidate(*p, Origin::CommandLine);
    }
    for (a, o) in std::mem::take(&mut net.known) {
        session.add_candidate(a, o);
    }
    let mut driver = Driver::new(
        net,
        session,
        Some(&disk),
        Some(storage.clone()),
        &out,
        done_rx,
        info.total_length,
    );
    if driver.session.is_complete() {
        driver.completed_at = Some(Instant::now());
    }
    let code = driver.run_loop(&opts, started);
    driver.session.shutdown(Instant::now());
    driver.do_actions(Instant::now());
    if let Some(mut a) = driver.announcer.take() {
        a.stop();
    }
    let totals = driver.session.totals();
    let reason = driver.reason.take();
    drop(driver);
    disk.shutdown();
    storage.close_all();
    let seconds = started.elapsed().as_secs_f64();
    let mut done = json!({
        "event": "done",
        "status": match code { 0 => "ok", _ => "failed" },
        "size": info.total_length,
        "downloaded": totals.downloaded,
        "uploaded": totals.uploaded,
        "wasted": totals.wasted,
        "hash_failures": totals.hash_failures,
        "seconds": (seconds * 1000.0).round() / 1000.0,
    });
    if let Some(why) = reason {
        done["reason"] = why.into();
    }
    out.emit(done);
    if code == exit::OK && opts.progress {
        let rate = totals.downloaded as f64 / seconds.max(1e-3);
        crate::progress::with_line_cleared(|| {
            eprintln!(
                "bt-fetch: {} in {:.1} s ({}), {} uploaded, {} wasted",
                progress::bytes(info.total_length),
                seconds,
                progress::rate(rate),
                progress::bytes(totals.uploaded),
                progress::bytes(totals.wasted)
            );
        });
    }
    code
}

fn empty_magnet() -> Magnet {
    Magnet {
        info_hash: [0; 20],
        name: None,
        trackers: Vec::new(),
        peers: Vec::new(),
        peer_hosts: Vec::new(),
    }
}

/// What outlives a session: the event loop and listener, the peer sources,
/// the announcer, and (between phases) the addresses known.
struct Net {
    poll: Poll,
    listener: TcpListener,
    sources: Vec<Box<dyn PeerSource>>,
    announcer: Option<Announcer>,
    stats: Arc<Stats>,
    stdin_peers: usize,
    stdin_ended: bool,
    known: Vec<(SocketAddr, Origin)>,
    banned: Vec<SocketAddr>,
}

/// The metadata phase: a session awaiting the metadata, with
/// `ut_metadata` fetching, until the info dictionary is verified (and
/// parses); then its connections are closed and what it learnt is handed
/// back. `Err` carries the exit code.
fn fetch_metadata(
    magnet: &Magnet,
    cfg: Config,
    net: Net,
    opts: &Options,
    out: &Output,
    started: Instant,
) -> Result<(Box<Metainfo>, Net), i32> {
    let slot = MetadataSlot::default();
    let mut session = Session::awaiting_metadata(cfg);
    session.register_extension(Box::new(UtMetadata::fetching(
        magnet.info_hash,
        slot.clone(),
    )));
    for p in &opts.peers {
        session.add_candidate(*p, Origin::CommandLine);
    }
    // No disk work in this phase: the channel stays empty.
    let (_done_tx, done_rx) = mpsc::channel::<Done>();
    let mut driver = Driver::new(net, session, None, None, out, done_rx, 0);
    driver.metadata = Some(slot.clone());
    let code = driver.run_loop(opts, started);
    let reason = driver.reason.take();
    let now = Instant::now();
    let known: Vec<(SocketAddr, Origin)> = driver
        .session
        .known_peers()
        .into_iter()
        .filter(|(_, o)| *o != Origin::Incoming)
        .collect();
    driver.session.shutdown(now);
    driver.do_actions(now);
    let banned = driver.session.banned_peers();
    let mut net = driver.into_net();
    net.known = known;
    net.banned = banned;
    let Some(bytes) = slot.take() else {
        if let Some(mut a) = net.announcer.take() {
            a.stop();
        }
        let mut done = json!({"event": "done", "status": "failed", "metadata": false});
        if let Some(why) = reason {
            done["reason"] = why.into();
        }
        out.emit(done);
        return Err(if code == exit::OK {
            exit::FAILURE
        } else {
            code
        });
    };
    let torrent = magnet.torrent_bytes(&bytes);
    match Metainfo::from_bytes(&torrent) {
        Ok(mut meta) => {
            if meta.info.name_missing {
                let fallback = magnet
                    .name
                    .clone()
                    .unwrap_or_else(|| magnet.info_hash_hex());
                meta.info.set_fallback_name(fallback.as_bytes());
            }
            Ok((Box::new(meta), net))
        }
        Err(e) => {
            // It hashes to the info-hash, so the link names a torrent we
            // cannot read: no other peer will have a better one.
            log::error!("the metadata matches the info-hash but is not a valid torrent: {e}");
            if let Some(mut a) = net.announcer.take() {
                a.stop();
            }
            Err(exit::INVALID_INPUT)
        }
    }
}

struct Driver<'a> {
    announcer: Option<Announcer>,
    sources: Vec<Box<dyn PeerSource>>,
    learnt: Vec<Learnt>,
    stats: Arc<Stats>,
    total: u64,
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    session: Session,
    /// None while fetching the metadata (no piece to hash, write or read).
    disk: Option<&'a DiskPool>,
    /// While fetching the metadata: where it lands (the loop ends then).
    metadata: Option<MetadataSlot>,
    out: &'a Output,
    read_buf: Vec<u8>,
    buf_pool: Vec<Vec<u8>>,
    /// A reason to stop at once, with the exit code.
    fatal: Option<(i32, String)>,
    /// Why the run ended, when it did not succeed (the `done` event's `reason`).
    reason: Option<String>,
    /// None while fetching the metadata.
    storage: Option<Arc<Storage>>,
    completed_at: Option<Instant>,
    done_rx: Receiver<Done>,
    stdin_peers: usize,
    stdin_ended: bool,
    tokens: Vec<usize>,
}

impl<'a> Driver<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        net: Net,
        session: Session,
        disk: Option<&'a DiskPool>,
        storage: Option<Arc<Storage>>,
        out: &'a Output,
        done_rx: Receiver<Done>,
        total: u64,
    ) -> Driver<'a> {
        Driver {
            announcer: net.announcer,
            sources: net.sources,
            learnt: Vec::new(),
            stats: net.stats,
            total,
            poll: net.poll,
            listener: net.listener,
            conns: Vec::new(),
            free: Vec::new(),
            session,
            disk,
            metadata: None,
            out,
            read_buf: vec![0u8; READ_BUFFER],
            buf_pool: Vec::new(),
            fatal: None,
            reason: None,
            storage,
            completed_at: None,
            done_rx,
            stdin_peers: net.stdin_peers,
            stdin_ended: net.stdin_ended,
            tokens: Vec::new(),
        }
    }

    /// Gives back what outlives the session (the connections are dropped).
    fn into_net(self) -> Net {
        Net {
            poll: self.poll,
            listener: self.listener,
            sources: self.sources,
            announcer: self.announcer,
            stats: self.stats,
            stdin_peers: self.stdin_peers,
            stdin_ended: self.stdin_ended,
            known: Vec::new(),
            banned: Vec::new(),
        }
    }

    fn run_loop(&mut self, opts: &Options, started: Instant) -> i32 {
        let mut events = Events::with_capacity(1024);
        let mut next_report = Instant::now() + Duration::from_secs(1);
        let mut line = ProgressLine::new(opts.progress);
        let total = self.total;
        let leaves_when_done = !opts.seed && opts.seed_ratio.is_none();
        loop {
            let busy = self
                .conns
                .iter()
                .flatten()
                .any(|c| c.readable && c.connected);
            // Sleep until the session needs the clock, or a report, a
            // redraw, the time-out or the end of the linger is due.
            let before = Instant::now();
            let mut wake_at = self.session.poll_timeout(before).min(next_report);
            if line.enabled() {
                wake_at = wake_at.min(before + PROGRESS_REDRAW);
            }
            if let Some(t) = opts.timeout {
                wake_at = wake_at.min(started + t);
            }
            if let Some(done_at) = self.completed_at.filter(|_| leaves_when_done) {
                wake_at = wake_at.min(done_at + LINGER);
            }
            let timeout = if busy {
                Duration::ZERO
            } else {
                wake_at.saturating_duration_since(before)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("event loop: {e}");
                    return exit::FAILURE;
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(t) => {
                        let Some(Some(c)) = self.conns.get_mut(t) else {
                            continue;
                        };
                        if !c.connected {
                            match c.stream.take_error() {
                                Ok(None) if c.stream.peer_addr().is_ok() => {
                                    c.connected = true;
                                    self.session.on_connected(t);
                                }
                                Ok(None) if ev.is_error() || ev.is_read_closed() => {
                                    self.close(t, CloseReason::ConnectFailed(String::new()), now);
                                    continue;
                                }
                                Ok(None) => {}
                                Ok(Some(e)) | Err(e) => {
                                    self.close(t, CloseReason::ConnectFailed(e.to_string()), now);
                                    continue;
                                }
                            }
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.readable = true;
                        }
                    }
                }
            }
            self.drain_channels(now);
            self.read_pass(now);
            if now >= self.session.poll_timeout(now) {
                self.session.tick(now);
            }
            self.do_actions(now);
            self.write_pass(now);
            self.do_actions(now);
            if self.metadata.as_ref().is_some_and(|m| m.is_ready()) {
                line.clear();
                return exit::OK;
            }
            let no_source = self.stdin_ended
                && self.stdin_peers == 0
                && opts.peers.is_empty()
                && !opts.announce
                && opts.dht.is_none()
                && !opts.seed
                && opts.seed_ratio.is_none()
                && !self.session.is_complete();
            if no_source {
                line.clear();
                log::error!(
                    "no peers: stdin ended without any; pipe peers in (bt-announce --follow \
                     x.torrent | bt-fetch x.torrent), give --peer IP:PORT, use --announce, \
                     or --dht to find peers through the DHT"
                );
                self.reason = Some("no peers: stdin ended without any".into());
                return exit::USAGE;
            }
            if let Some((code, why)) = self.fatal.take() {
                line.clear();
                log::error!(
                    "{why}; stopping (nothing already written is lost: run again to resume)"
                );
                self.reason = Some(why);
                return code;
            }
            if crate::signals::stop_requested() {
                log::info!("stopping on signal");
                if self.session.is_complete() || opts.seed {
                    return exit::OK;
                }
                self.reason = Some("interrupted by a signal".into());
                return exit::FAILURE;
            }
            if self.metadata.is_some() {
                if line.enabled() {
                    line.draw(
                        &format!("fetching the metadata  peers {}", self.session.peer_count()),
                        false,
                    );
                }
                if opts.timeout.is_some_and(|t| started.elapsed() >= t) {
                    line.clear();
                    let why = format!(
                        "timed out after {} s without the metadata (no peer sent it)",
                        opts.timeout.unwrap_or_default().as_secs()
                    );
                    log::error!("{why}");
                    self.reason = Some(why);
                    return exit::FAILURE;
                }
                continue;
            }
            let totals = self.session.totals();
            let have = self.session.picker().bytes_verified();
            self.stats
                .uploaded
                .store(totals.uploaded, Ordering::Relaxed);
            self.stats
                .downloaded
                .store(totals.downloaded, Ordering::Relaxed);
            self.stats
                .left
                .store(self.total.saturating_sub(have), Ordering::Relaxed);
            if now >= next_report {
                next_report = now + Duration::from_secs(1);
                if let Some(path) = self.storage.as_ref().and_then(|s| s.vanished_file()) {
                    let why = format!(
                        "{} was deleted or replaced during the download",
                        path.display()
                    );
                    self.fatal = Some((exit::LOCAL_IO, why));
                }
                let (down, up) = self.session.rates();
                let peers = self.session.peer_count();
                self.out.emit(json!({
                    "event": "progress",
                    "bytes": have.min(total),
                    "size": total,
                    "downloaded": totals.downloaded,
                    "uploaded": totals.uploaded,
                    "down_rate": down.round(),
                    "up_rate": up.round(),
                    "peers": peers,
                    "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                }));
            }
            if line.enabled() {
                let (down, up) = self.session.rates();
                let pct = if total == 0 {
                    100.0
                } else {
                    have.min(total) as f64 * 100.0 / total as f64
                };
                let eta = (down > 0.0 && have < total)
                    .then(|| Duration::from_secs_f64((total - have) as f64 / down));
                line.draw(
                    &format!(
                        "{pct:5.1}%  {} / {}  down {}  up {}  peers {}  ETA {}",
                        progress::bytes(have.min(total)),
                        progress::bytes(total),
                        progress::rate(down),
                        progress::rate(up),
                        self.session.peer_count(),
                        progress::duration(eta)
                    ),
                    false,
                );
            }
            if self.session.is_complete() {
                let done_at = *self.completed_at.get_or_insert(now);
                let ratio_met = opts
                    .seed_ratio
                    .is_some_and(|r| totals.uploaded as f64 >= r * total as f64);
                let leave = leaves_when_done || (!opts.seed && ratio_met);
                // Give queued output (have messages) a moment to go out.
                if leave && now.saturating_duration_since(done_at) >= LINGER {
                    line.clear();
                    return exit::OK;
                }
                if opts.seed && ratio_met {
                    line.clear();
                    return exit::OK;
                }
            } else if opts.timeout.is_some_and(|t| started.elapsed() >= t) {
                line.clear();
                let why = format!(
                    "timed out after {} s with {} of {} (no peer could supply the rest)",
                    opts.timeout.unwrap_or_default().as_secs(),
                    progress::bytes(have.min(total)),
                    progress::bytes(total)
                );
                log::error!("{why}");
                self.reason = Some(why);
                return exit::FAILURE;
            }
        }
    }

    fn alloc_token(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        })
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if !self.session.accepts(&addr) {
                        log::debug!("{addr}: refused (banned or too many peers)");
                        continue;
                    }
                    if let Some(t) = self.add_conn(stream, true) {
                        self.session.on_connection(t, addr, false, now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn connect(&mut self, addr: SocketAddr, now: Instant) {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                log::info!("{addr}: cannot connect: {e}");
                self.session.on_connect_failed(addr, e.to_string(), now);
                return;
            }
        };
        match self.add_conn(stream, false) {
            Some(t) => self.session.on_connection(t, addr, true, now),
            None => {
                let why = "cannot register the socket".to_string();
                self.session.on_connect_failed(addr, why, now)
            }
        }
    }

    /// Registers a socket with the poll under a fresh token; `None` when the
    /// poll refuses it. An accepted socket is `connected` (and may already
    /// hold data); an outgoing one is not until the poll says so.
    fn add_conn(&mut self, mut stream: TcpStream, connected: bool) -> Option<usize> {
        let t = self.alloc_token();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(t), interest)
            .is_err()
        {
            self.free.push(t);
            return None;
        }
        let _ = stream.set_nodelay(true);
        self.conns[t] = Some(Conn {
            stream,
            connected,
            readable: connected,
        });
        Some(t)
    }

    /// Closes a connection from our side (the session hears about it).
    fn close(&mut self, t: usize, reason: CloseReason, now: Instant) {
        self.drop_conn(t);
        self.session.on_closed(t, reason, now);
    }

    fn drop_conn(&mut self, t: usize) {
        if let Some(Some(mut c)) = self.conns.get_mut(t).map(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(t);
        }
    }

    /// Takes what the disk threads and the peer sources sent.
    fn drain_channels(&mut self, now: Instant) {
        loop {
            match self.done_rx.try_recv() {
                Ok(Done::Piece {
                    piece,
                    good,
                    buf,
                    error,
                }) => {
                    match error {
                        // Our disk's fault, not the peers': no strike, no ban.
                        Some(e) => {
                            self.session.on_write_failed(piece, buf);
                            let why = format!("cannot write piece {piece}: {e}");
                            self.fatal.get_or_insert((exit::LOCAL_IO, why));
                        }
                        None => self.session.on_verified(piece, good, buf, now),
                    }
                }
                Ok(Done::Read { read, data, error }) => {
                    if let Some(e) = error {
                        log::warn!("cannot read piece {} for an upload: {e}", read.piece);
                    }
                    self.session.on_read(&read, &data, now);
                    if self.buf_pool.len() < UPLOAD_BUFFERS_KEPT
                        && data.capacity() <= MAX_READ as usize
                    {
                        self.buf_pool.push(data);
                    }
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let mut learnt = std::mem::take(&mut self.learnt);
        for source in &mut self.sources {
            let origin = source.origin();
            source.poll(&mut learnt);
            for l in learnt.drain(..) {
                match l {
                    Learnt::Peer(addr) => {
                        if origin == Origin::Stdin {
                            self.stdin_peers += 1;
                        }
                        self.session.add_candidate(addr, origin);
                    }
                    Learnt::Ended => {
                        if origin == Origin::Stdin {
                            self.stdin_ended = true;
                        }
                    }
                    Learnt::Announced {
                        tracker,
                        peers,
                        interval,
                    } => {
                        log::info!("{tracker}: {peers} peers");
                        self.out.emit(json!({
                            "event": "announce",
                            "tracker": tracker,
                            "peers": peers,
                            "interval": interval.as_secs(),
                        }));
                    }
                    Learnt::TrackerError { error } => {
                        log::warn!("announce failed: {error}");
                        self.out
                            .emit(json!({"event": "tracker_error", "error": error}));
                    }
                    Learnt::DhtBootstrapped { nodes, from_saved } => {
                        self.out.emit(json!({
                            "event": "dht_bootstrapped",
                            "nodes": nodes,
                            "saved_table": from_saved,
                        }));
                    }
                    Learnt::DhtPeers { peers } => {
                        self.out.emit(json!({"event": "dht_peers", "peers": peers}));
                    }
                }
            }
        }
        self.learnt = learnt;
    }

    fn read_pass(&mut self, now: Instant) {
        for t in 0..self.conns.len() {
            let mut budget = READ_PER_PASS;
            while let Some(Some(c)) = self.conns.get_mut(t) {
                if !c.readable || !c.connected {
                    break;
                }
                if budget == 0 {
                    break; // more next pass
                }
                match c.stream.read(&mut self.read_buf) {
                    Ok(0) => {
                        self.close(t, CloseReason::ClosedByPeer, now);
                        break;
                    }
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        // Decrypted in place on RC4 connections.
                        self.session.on_data_mut(t, &mut self.read_buf[..n], now);
                        // The session may have asked to close it.
                        self.do_actions(now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        c.readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.close(t, CloseReason::Transport(format!("read error: {e}")), now);
                        break;
                    }
                }
            }
        }
    }

    fn write_pass(&mut self, now: Instant) {
        let mut tokens = std::mem::take(&mut self.tokens);
        self.session.tokens_with_output(&mut tokens);
        for &t in &tokens {
            let Some(Some(c)) = self.conns.get_mut(t) else {
                continue;
            };
            if !c.connected {
                continue;
            }
            let Some(out) = self.session.output(t) else {
                continue;
            };
            let mut failed = None;
            while !out.is_empty() {
                match c.stream.write(out.pending()) {
                    Ok(0) => {
                        failed = Some(CloseReason::Transport("connection closed".into()));
                        break;
                    }
                    Ok(n) => out.consume(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(CloseReason::Transport(format!("write error: {e}")));
                        break;
                    }
                }
            }
            match failed {
                Some(why) => self.close(t, why, now),
                None => self.session.on_sent(t),
            }
        }
        self.tokens = tokens;
    }

    fn do_actions(&mut self, now: Instant) {
        while let Some(a) = self.session.next_action() {
            match a {
                Action::Connect(addr) => self.connect(addr, now),
                Action::Close(t) => self.drop_conn(t),
                Action::Verify { piece, buf } => {
                    if let Some(disk) = self.disk {
                        disk.submit(Job::Piece { piece, buf });
                    }
                }
                Action::Read(read) => {
                    if let Some(disk) = self.disk {
                        let buf = self.buf_pool.pop().unwrap_or_default();
                        disk.submit(Job::Read { read, buf });
                    }
                }
                Action::Event(e) => self.event(e),
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::PeerConnected {
                addr,
                client,
                peer_id,
                source,
                encryption,
            } => {
                let encryption = crate::session::encryption::describe(encryption);
                log::info!("{addr}: connected ({client}, from {source}, encryption {encryption})");
                self.out.emit(json!({
                    "event": "peer_connected",
                    "addr": addr.to_string(),
                    "client": client,
                    "peer_id": hex::encode(&peer_id),
                    "source": source.as_str(),
                    "encryption": encryption,
                }));
            }
            Event::PeerDisconnected {
                addr,
                reason,
                downloaded,
                uploaded,
            } => {
                log::info!("{addr}: disconnected: {reason}");
                self.out.emit(json!({
                    "event": "peer_disconnected",
                    "addr": addr.to_string(),
                    "reason": reason.to_string(),
                    "downloaded": downloaded,
                    "uploaded": uploaded,
                }));
            }
            Event::PieceVerified { piece } => {
                self.out.emit(json!({"event": "piece", "index": piece}));
            }
            Event::HashFailed { piece, peers } => {
                let peers: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
                log::warn!(
                    "piece {piece} failed its hash check (data from {}); downloading it again",
                    peers.join(", ")
                );
                self.out.emit(json!({
                    "event": "hash_failed",
                    "index": piece,
                    "peers": peers,
                }));
            }
            Event::Banned { addr } => {
                log::warn!("{addr}: banned after repeated hash failures");
                self.out
                    .emit(json!({"event": "peer_banned", "addr": addr.to_string()}));
            }
            Event::DhtNode { addr } => {
                for s in &mut self.sources {
                    s.add_dht_node(addr);
                }
            }
            Event::Complete => {
                if let Some(a) = &self.announcer {
                    a.completed();
                }
                log::info!("download complete");
                self.out.emit(json!({"event": "complete"}));
            }
        }
    }
}

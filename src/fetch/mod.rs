//! The I/O edge of `bt-fetch`: setting up a run (checking what is on disk,
//! the listener, the disk threads, the peer sources, the announcer, the
//! metadata phase of a magnet link), then handing over to the event loop
//! in `driver` (sockets, disk results, deadlines) and printing what
//! happened through `events` (JSON events on stdout, a progress line on
//! stderr).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token, Waker};
use serde_json::json;

use crate::announcer::{Announcer, Stats};
use crate::exit;
use crate::hex;
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::peer_source::{Origin, PeerSource, StdinPeers, TrackerPeers};
use crate::pex::Pex;
use crate::progress;
use crate::resume::{Distrust, ResumeFile};
use crate::session::{Config, Encryption, Extension, Session};
use crate::storage::{DiskPool, Done, Storage};
use crate::ut_metadata::{MetadataSlot, UtMetadata};
use crate::verify::{self, PieceState};

mod driver;
mod events;
pub mod select;

use driver::Driver;

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
    /// The port of `listen` was a default, not asked for: if it is taken,
    /// listen on any free port (with a warning) rather than fail.
    pub listen_fallback: bool,
    /// Our peer id (default: `-BT0100-` and 12 random characters).
    pub peer_id: Option<[u8; 20]>,
    /// How many peers to ask trackers for (default 50).
    pub numwant: Option<u32>,
    pub peers: Vec<SocketAddr>,
    pub stdin_peers: bool,
    pub seed: bool,
    pub seed_ratio: Option<f64>,
    /// Stop seeding this long after the download completed (whichever of
    /// this and `seed_ratio` comes first).
    pub seed_time: Option<Duration>,
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
    /// Download rate limit from peers, bytes/s (see `session::rate`).
    pub max_download_rate: Option<u64>,
    /// `--select`: file numbers or patterns (see `select`); empty: all.
    pub select: Vec<String>,
    /// Start pieces in index order (`--sequential`).
    pub sequential: bool,
    /// The choking strategy, by name (see [`crate::choker::by_name`]);
    /// `classic` is the default.
    pub strategy: String,
    /// Write pieces with `O_DIRECT` where the filesystem allows it.
    pub direct_io: bool,
    /// Rehash what is on disk even when the resume file matches.
    pub recheck: bool,
    /// MSE/PE: what we accept and how we connect.
    pub encryption: Encryption,
    /// Run a DHT node as a peer source (BEP 5). `run` fills in the
    /// info-hash, the port to announce and the seed; a `bind` port of 0
    /// becomes the TCP listen port. Stopped when a magnet link's
    /// metadata says the torrent is private (BEP 27).
    pub dht: Option<crate::dht::SourceOptions>,
    /// Web seeds (BEP 19) to download from: the torrent's `url-list` and
    /// `--web-seed`s, unless `--no-web-seeds`.
    pub web_seeds: Vec<String>,
    /// Certificate authorities trusted for https web seeds and trackers
    /// besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Design choices turned off, for the ablation experiments only.
    pub ablation: crate::session::Ablation,
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
        if out
            .write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            // Lost output ends the run as SIGPIPE would, but cleanly; the
            // program exits with `exit::OUTPUT_LOST` (see `output_lost`).
            OUTPUT_LOST.store(true, Ordering::Relaxed);
            crate::signals::request_stop();
        }
    }
}

static OUTPUT_LOST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a `--json` line could not be written (stdout closed) during `run`.
pub fn output_lost() -> bool {
    OUTPUT_LOST.load(Ordering::Relaxed)
}

/// Binds the peer listener. A default port that is taken gives way to any
/// free port, with a warning saying what that breaks; an asked-for one is
/// an error naming the address and the OS's reason.
fn bind_listener(listen: SocketAddr, fallback: bool) -> Result<TcpListener, String> {
    match TcpListener::bind(listen) {
        Ok(l) => Ok(l),
        Err(e) if fallback && e.kind() == io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(listen.ip(), 0);
            let l = TcpListener::bind(any).map_err(|e| format!("cannot listen on {any}: {e}"))?;
            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
            log::warn!(
                "port {} is in use; listening on port {port} instead. Peers told port {} \
                 (by bt-announce, say) will not reach us: give both the same free port \
                 with -p PORT",
                listen.port(),
                listen.port()
            );
            Ok(l)
        }
        Err(e) => {
            let hint = match e.kind() {
                io::ErrorKind::AddrInUse => format!(
                    " (another program uses port {}; choose another with -p PORT)",
                    listen.port()
                ),
                io::ErrorKind::AddrNotAvailable => format!(
                    " (no interface of this machine has address {}; check --bind)",
                    listen.ip()
                ),
                io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need privileges; choose another with -p PORT)".into()
                }
                _ => String::new(),
            };
            Err(format!("cannot listen on {listen}: {e}{hint}"))
        }
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
    let peer_id = opts
        .peer_id
        .unwrap_or_else(|| crate::wire::make_peer_id(&mut rng));
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

    let listener = match bind_listener(opts.listen, opts.listen_fallback) {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
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
            crate::announcer::AnnounceSettings {
                numwant: opts.numwant,
                ca_files: opts.ca_files.clone(),
            },
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
        said_stuck: false,
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
    cfg.max_download_rate = opts.max_download_rate;
    cfg.encryption = opts.encryption;
    cfg.dht_port = dht_port;
    cfg.ablation = opts.ablation;
    if let Some(n) = opts.ablation.max_requests {
        cfg.max_outstanding = n;
    }

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
    let selection = if opts.select.is_empty() {
        None
    } else {
        match select::Selection::resolve(info, &opts.select) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("{e}");
                if let Some(mut a) = net.announcer.take() {
                    a.stop();
                }
                return exit::USAGE;
            }
        }
    };

    if let Err(e) = std::fs::create_dir_all(&opts.output) {
        log::error!(
            "cannot create the output folder {}: {e}",
            opts.output.display()
        );
        return exit::FAILURE;
    }
    // What is already there: the resume file's word when it matches the
    // files on disk, else a full recheck.
    let resume = ResumeFile::for_torrent(info, meta.info_hash, &opts.output);
    let trusted = match &resume {
        None => {
            log::warn!("the torrent is named like its resume file: no resume file");
            Err(Distrust::Absent)
        }
        Some(_) if opts.recheck => Err(Distrust::Forced),
        Some(r) => r.load(),
    };
    // "trusted": nothing hashed; "partial": the pieces the resume file
    // cannot vouch for hashed (`resume` module notes); "checked": all.
    let (good, resume_kind, resume_reason, rechecked) = match trusted {
        Ok(r) if r.recheck.count() == 0 => {
            log::info!(
                "resume file matches the files on disk: {} of {} pieces present, no recheck",
                r.trusted.count(),
                info.piece_count()
            );
            (r.trusted.ones().collect::<Vec<usize>>(), "trusted", None, 0)
        }
        Ok(r) => {
            let why = r.why.clone().unwrap_or(Distrust::UncleanStop);
            let kind = if r.recheck.count() == info.piece_count() {
                "checked"
            } else {
                "partial"
            };
            log::info!(
                "{why}: rechecking {} of {} pieces (trusting {})",
                r.recheck.count(),
                info.piece_count(),
                r.trusted.count()
            );
            let ranges = r.recheck_ranges();
            let bytes: u64 = r
                .recheck
                .ones()
                .map(|i| crate::metainfo::piece_size(info.piece_length, info.total_length, i))
                .sum();
            let checked = AtomicU64::new(0);
            let found =
                match crate::cli::with_progress("checking", bytes, &checked, opts.progress, || {
                    verify::good_pieces_among(
                        info,
                        &opts.output,
                        &ranges,
                        opts.hash_threads,
                        &checked,
                    )
                }) {
                    Ok(g) => g,
                    Err(e) => {
                        log::error!("checking existing data: {e}");
                        return exit::FAILURE;
                    }
                };
            let mut good: Vec<usize> = r.trusted.ones().chain(found).collect();
            good.sort_unstable();
            (good, kind, Some(why.code()), r.recheck.count())
        }
        Err(why) => {
            if why.is_warning() {
                log::warn!("{why}; rechecking the data on disk");
            } else {
                log::info!("{why}: rechecking the data on disk");
            }
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
            (
                report.indices(PieceState::Good),
                "checked",
                Some(why.code()),
                info.piece_count(),
            )
        }
    };
    if !good.is_empty() {
        log::info!(
            "{} of {} pieces already present and good",
            good.len(),
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
    session.set_sequential(opts.sequential);
    if let Some(sel) = &selection {
        for (i, plan) in sel.plan(info).into_iter().enumerate() {
            match plan {
                select::PiecePlan::Whole => {}
                select::PiecePlan::Partly => session.keep_partly(i),
                select::PiecePlan::Skipped => session.skip_piece(i),
            }
        }
        log::info!(
            "--select: {} of {} files, {} to download",
            sel.files.iter().filter(|&&on| on).count(),
            info.user_files().count(),
            progress::bytes(sel.bytes(info))
        );
    }
    // Set after the selection: a skipped piece found good stays had.
    for &i in &good {
        session.set_have(i);
    }
    let already_complete = session.is_complete();
    let wanted = session.picker().bytes_wanted();
    // Trackers hear what is left of the whole torrent (a selection never
    // makes us a seed).
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
    let mut listening = json!({
        "event": "listening",
        "port": port,
        "peer_id": hex::encode(&peer_id),
        "info_hash": meta.info_hash_hex(),
        "name": info.name_lossy(),
        "size": info.total_length,
        "pieces": info.piece_count(),
        "have_pieces": good.len(),
        // "trusted": the resume file matched; else "checked" and why not.
        "resume": resume_kind,
        "rechecked_pieces": rechecked,
        "resume_reason": resume_reason,
    });
    if selection.is_some() {
        // Bytes of the pieces to fetch (selected files and the pieces
        // they share with others): what `progress` counts towards.
        listening["selected_size"] = wanted.into();
    }
    out.emit(listening);

    let mut storage = Storage::new(info, &opts.output);
    if let Some(sel) = &selection {
        storage.select_files(sel.files.clone());
    }
    let storage = Arc::new(storage);
    storage.set_direct_io(opts.direct_io && crate::storage::direct_io_pays(info.piece_length));
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
        wanted,
    );
    if !opts.web_seeds.is_empty() {
        let w = waker.clone();
        let mut fetch_opts = crate::webseed::http::FetchOptions::default();
        fetch_opts.tracker.ca_files = opts.ca_files.clone();
        driver.web = Some(crate::webseed::WebSeedDriver::new(
            &opts.web_seeds,
            Arc::new(info.clone()),
            &mut driver.session,
            fetch_opts,
            opts.max_buffer,
            Arc::new(move || {
                let _ = w.wake();
            }),
        ));
    }
    let leaves_out = |sel: &select::Selection| {
        sel.files
            .iter()
            .zip(&info.files)
            .any(|(&on, f)| !on && !f.pad)
    };
    if selection.as_ref().is_some_and(leaves_out) {
        driver.partial_of = Some(info.total_length);
    }
    if driver.session.is_complete() {
        driver.completed_at = Some(Instant::now());
    }
    driver.resume = resume.clone();
    // What the recheck found, at once (a stale file must not outlive it).
    driver.save_resume(Instant::now(), true);
    let code = driver.run_loop(&opts, started);
    if let Some(w) = driver.web.as_mut() {
        w.stop();
    }
    driver.session.shutdown_web_seeds();
    driver.session.shutdown(Instant::now());
    driver.do_actions(Instant::now());
    if let Some(mut a) = driver.announcer.take() {
        a.stop();
    }
    let totals = driver.session.totals();
    let web_stats = driver.session.web_seed_stats();
    let reason = driver.reason.take();
    let interrupted = driver.interrupted;
    let have = driver.session.picker().have().clone();
    drop(driver);
    disk.shutdown();
    storage.close_all();
    // Pieces written during the shutdown are left out: rechecked or
    // fetched again next time, never claimed without a write.
    if let Some(r) = &resume {
        match r.save(&have, true) {
            Ok(()) => log::debug!("resume file {} written", r.path().display()),
            Err(e) => log::warn!("cannot write the resume file {}: {e}", r.path().display()),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut done = json!({
        "event": "done",
        "status": match code {
            0 => "ok",
            _ if interrupted => "interrupted",
            _ => "failed",
        },
        "size": info.total_length,
        "downloaded": totals.downloaded,
        "uploaded": totals.uploaded,
        "wasted": totals.wasted,
        "hash_failures": totals.hash_failures,
        "seconds": (seconds * 1000.0).round() / 1000.0,
    });
    if let Some(why) = reason {
        done["reason"] = why.into();
    } else if already_complete && code == exit::OK {
        done["reason"] = "already complete".into();
    }
    if selection.is_some() {
        done["selected_size"] = wanted.into();
    }
    if !web_stats.is_empty() {
        done["web_seeds"] = web_stats
            .iter()
            .map(|w| {
                json!({
                    "url": w.url,
                    "downloaded": w.downloaded,
                    "failures": w.failures,
                    "bad_pieces": w.bad_pieces,
                })
            })
            .collect();
    }
    out.emit(done);
    if code == exit::OK && opts.progress && already_complete && totals.uploaded == 0 {
        crate::progress::with_line_cleared(|| {
            eprintln!(
                "bt-fetch: already complete: {} checked in {:.1} s, nothing to download",
                progress::bytes(wanted),
                seconds
            )
        });
    } else if code == exit::OK && opts.progress {
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
            for w in &web_stats {
                eprintln!(
                    "bt-fetch: web seed {}: {} downloaded, {} failures",
                    w.url,
                    progress::bytes(w.downloaded),
                    w.failures
                );
            }
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
    /// "No peer reachable yet" was said (once per run, not per phase).
    said_stuck: bool,
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
    let interrupted = driver.interrupted;
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
        let status = if interrupted { "interrupted" } else { "failed" };
        let mut done = json!({"event": "done", "status": status, "metadata": false});
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

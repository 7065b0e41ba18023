//! The `bt-fetch` event loop: sockets registered with mio, a read pass and
//! a write pass over the connections, the session's actions carried out
//! (connect, close, disk jobs), the peer sources and disk results drained,
//! and the deadlines (the session's `poll_timeout`, reports, the progress
//! line, the time-out, the linger after completion).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use serde_json::json;

use super::{Conn, Net, Options, Output};
use super::{
    LINGER, LISTENER, PROGRESS_REDRAW, READ_BUFFER, READ_PER_PASS, UPLOAD_BUFFERS_KEPT, WAKER,
};
use crate::alloc_stats;
use crate::announcer::{Announcer, Stats};
use crate::exit;
use crate::peer_source::{Learnt, Origin, PeerSource};
use crate::progress::{self, ProgressLine};
use crate::resume::ResumeFile;
use crate::session::{Action, CloseReason, Session, MAX_READ};
use crate::storage::{DiskPool, Done, Job, Storage};
use crate::ut_metadata::MetadataSlot;

/// How often the resume file is rewritten while pieces complete (and at
/// least how often while pieces go to the disk: see `do_actions`).
const RESUME_EVERY: Duration = crate::resume::SAVE_EVERY;

pub(super) struct Driver<'a> {
    pub(super) announcer: Option<Announcer>,
    pub(super) sources: Vec<Box<dyn PeerSource>>,
    pub(super) learnt: Vec<Learnt>,
    pub(super) stats: Arc<Stats>,
    pub(super) total: u64,
    pub(super) poll: Poll,
    pub(super) listener: TcpListener,
    pub(super) conns: Vec<Option<Conn>>,
    pub(super) free: Vec<usize>,
    pub(super) session: Session,
    /// None while fetching the metadata (no piece to hash, write or read).
    pub(super) disk: Option<&'a DiskPool>,
    /// While fetching the metadata: where it lands (the loop ends then).
    pub(super) metadata: Option<MetadataSlot>,
    pub(super) out: &'a Output,
    pub(super) read_buf: Vec<u8>,
    pub(super) buf_pool: Vec<Vec<u8>>,
    /// Memory was given back since the last peer left (see `run`).
    pub(super) idle_trimmed: bool,
    /// A reason to stop at once, with the exit code.
    pub(super) fatal: Option<(i32, String)>,
    /// Why the run ended, when it did not succeed (the `done` event's `reason`).
    pub(super) reason: Option<String>,
    /// None while fetching the metadata.
    pub(super) storage: Option<Arc<Storage>>,
    pub(super) completed_at: Option<Instant>,
    pub(super) done_rx: Receiver<Done>,
    pub(super) stdin_peers: usize,
    pub(super) stdin_ended: bool,
    pub(super) tokens: Vec<usize>,
    /// The web seeds' threads (BEP 19), when the torrent has any.
    pub(super) web: Option<crate::webseed::WebSeedDriver>,
    /// Outgoing connections that failed before their handshake.
    pub(super) connect_failures: usize,
    /// Whether "no peer reachable yet" was said (it is said once).
    pub(super) said_stuck: bool,
    /// The port we accept peers on (for that message).
    pub(super) listen_port: u16,
    /// The run was stopped by SIGINT/SIGTERM before it was complete.
    pub(super) interrupted: bool,
    /// The torrent's size when `--select` leaves files out (`total` is
    /// then the selected pieces' bytes): trackers hear what is left of the
    /// whole torrent, and no `completed`, since we never become a seed.
    pub(super) partial_of: Option<u64>,
    /// Where the pieces written so far are recorded (None while fetching
    /// the metadata), and the count and time of the last save.
    pub(super) resume: Option<ResumeFile>,
    pub(super) resume_saved: Option<(usize, Instant)>,
    /// The listener may hold more connections than the last pass took.
    pub(super) accept_pending: bool,
}

/// With no peer connected for this long (or every attempt failed), say so.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// Connections accepted per loop pass, well under the half-open budget
/// (`session::MAX_HALF_OPEN`): what a pass accepts is read in the same
/// pass, so a real peer's handshake is in before a flood of newer
/// connections could push it out of the budget.
const MAX_ACCEPTS_PER_PASS: usize = 8;

impl<'a> Driver<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        net: Net,
        session: Session,
        disk: Option<&'a DiskPool>,
        storage: Option<Arc<Storage>>,
        out: &'a Output,
        done_rx: Receiver<Done>,
        total: u64,
    ) -> Driver<'a> {
        let listen_port = net.listener.local_addr().map_or(0, |a| a.port());
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
            idle_trimmed: false,
            fatal: None,
            reason: None,
            storage,
            completed_at: None,
            done_rx,
            stdin_peers: net.stdin_peers,
            stdin_ended: net.stdin_ended,
            said_stuck: net.said_stuck,
            tokens: Vec::new(),
            web: None,
            connect_failures: 0,
            listen_port,
            interrupted: false,
            partial_of: None,
            resume: None,
            resume_saved: None,
            accept_pending: true,
        }
    }

    /// Gives back what outlives the session (the connections are dropped).
    pub(super) fn into_net(self) -> Net {
        Net {
            poll: self.poll,
            listener: self.listener,
            sources: self.sources,
            announcer: self.announcer,
            stats: self.stats,
            stdin_peers: self.stdin_peers,
            stdin_ended: self.stdin_ended,
            said_stuck: self.said_stuck,
            known: Vec::new(),
            banned: Vec::new(),
        }
    }

    pub(super) fn run_loop(&mut self, opts: &Options, started: Instant) -> i32 {
        let mut events = Events::with_capacity(1024);
        let mut next_report = Instant::now() + Duration::from_secs(1);
        let mut line = ProgressLine::new(opts.progress);
        let total = self.total;
        let leaves_when_done = !opts.seed && opts.seed_ratio.is_none() && opts.seed_time.is_none();
        loop {
            let busy = self.accept_pending
                || self
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
            if let (Some(done_at), Some(t)) = (self.completed_at, opts.seed_time) {
                wake_at = wake_at.min(done_at + t.max(LINGER));
            }
            if !self.said_stuck && before < started + STUCK_AFTER {
                wake_at = wake_at.min(started + STUCK_AFTER);
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
                    LISTENER => self.accept_pending = true,
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
            if self.accept_pending {
                self.accept(now);
            }
            self.drain_channels(now);
            if let Some(w) = self.web.as_mut() {
                w.pump(&mut self.session, now);
            }
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
                && opts.seed_time.is_none()
                && !self.session.web_seeds_active()
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
                let cause = crate::signals::stop_cause().unwrap_or("a signal");
                self.reason = Some(format!("interrupted by {cause}"));
                self.interrupted = true;
                return exit::FAILURE;
            }
            self.say_if_stuck(now, started, &mut line);
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
            self.stats.left.store(
                self.partial_of.unwrap_or(self.total).saturating_sub(have),
                Ordering::Relaxed,
            );
            if now >= next_report {
                next_report = now + Duration::from_secs(1);
                if let Some(path) = self.storage.as_ref().and_then(|s| s.vanished_file()) {
                    let why = format!(
                        "{} was deleted or replaced during the download",
                        path.display()
                    );
                    self.fatal = Some((exit::LOCAL_IO, why));
                }
                self.save_resume(now, false);
                let (down, up) = self.session.rates();
                let down = down + self.session.web_seed_rate();
                let peers = self.session.peer_count();
                if peers == 0 {
                    // Idle: give the upload buffers (up to 1 MiB) and the
                    // free pages malloc keeps back, so that an idle seeder
                    // holds only its own state (which the soak compares
                    // over hours). Reads still in flight when the last
                    // peer left refill the pool: cleared again, and
                    // trimmed again, the next second.
                    if !self.buf_pool.is_empty() {
                        self.buf_pool = Vec::new();
                        self.idle_trimmed = false;
                    }
                    if !self.idle_trimmed {
                        alloc_stats::release_free_memory();
                        self.idle_trimmed = true;
                    }
                } else {
                    self.idle_trimmed = false;
                }
                let mut event = json!({
                    "event": "progress",
                    "bytes": have.min(total),
                    "size": total,
                    "downloaded": totals.downloaded,
                    "uploaded": totals.uploaded,
                    "down_rate": down.round(),
                    "up_rate": up.round(),
                    "peers": peers,
                    "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                });
                if let Some(heap) = alloc_stats::heap_stats() {
                    event["heap_bytes"] = heap.live.into();
                    event["heap_peak_bytes"] = heap.peak.into();
                }
                self.out.emit(event);
            }
            if line.enabled() {
                let (down, up) = self.session.rates();
                let down = down + self.session.web_seed_rate();
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
                // --seed-ratio and --seed-time: whichever comes first ends
                // seeding (even with --seed).
                let time_met = opts
                    .seed_time
                    .is_some_and(|t| now.saturating_duration_since(done_at) >= t);
                let leave = leaves_when_done || ratio_met || time_met;
                // Give queued output (have messages) a moment to go out.
                if leave && now.saturating_duration_since(done_at) >= LINGER {
                    line.clear();
                    if time_met && !ratio_met {
                        log::info!("seeded for --seed-time; stopping");
                    }
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

    /// Says once on stderr that nobody is reachable, when no peer is
    /// connected and either every connection attempt so far failed or
    /// `STUCK_AFTER` has passed: a download otherwise sits at 0 % in
    /// silence.
    fn say_if_stuck(&mut self, now: Instant, started: Instant, line: &mut ProgressLine) {
        if self.said_stuck || self.session.is_complete() || self.session.peer_count() > 0 {
            return;
        }
        let all_failed = self.connect_failures > 0 && self.session.connection_count() == 0;
        let waited = now.saturating_duration_since(started) >= STUCK_AFTER;
        if !(all_failed || waited) || self.session.web_seeds_active() {
            return;
        }
        self.said_stuck = true;
        line.clear();
        log::warn!(
            "no peer reachable yet; waiting for incoming connections on port {}",
            self.listen_port
        );
    }

    /// Saves the resume file when pieces were written since the last save
    /// and `RESUME_EVERY` has passed (or `now_anyway`). The picker's `Have`
    /// pieces are those whose write completed: `on_verified` runs on the
    /// disk thread's report, which comes after `write_piece` returned.
    pub(super) fn save_resume(&mut self, now: Instant, now_anyway: bool) {
        let Some(r) = &self.resume else { return };
        let have = self.session.picker().have();
        let due = match self.resume_saved {
            None => true,
            Some((count, at)) => count != have.count() && now >= at + RESUME_EVERY,
        };
        if !(due || now_anyway) {
            return;
        }
        if let Err(e) = r.save(have, false) {
            log::warn!("cannot write the resume file {}: {e}", r.path().display());
        }
        self.resume_saved = Some((have.count(), now));
    }

    pub(super) fn alloc_token(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        })
    }

    /// Accepts up to [`MAX_ACCEPTS_PER_PASS`] connections; the rest wait
    /// for the next pass (`accept_pending`: the listener is edge-triggered
    /// and would not report them again).
    pub(super) fn accept(&mut self, now: Instant) {
        self.accept_pending = false;
        for _ in 0..MAX_ACCEPTS_PER_PASS {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if !self.session.accepts(&addr) {
                        log::debug!("{addr}: refused (banned)");
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
        self.accept_pending = true;
    }

    pub(super) fn connect(&mut self, addr: SocketAddr, now: Instant) {
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
    pub(super) fn add_conn(&mut self, mut stream: TcpStream, connected: bool) -> Option<usize> {
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
    pub(super) fn close(&mut self, t: usize, reason: CloseReason, now: Instant) {
        self.drop_conn(t);
        self.session.on_closed(t, reason, now);
    }

    pub(super) fn drop_conn(&mut self, t: usize) {
        if let Some(Some(mut c)) = self.conns.get_mut(t).map(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(t);
        }
    }

    /// Takes what the disk threads and the peer sources sent.
    pub(super) fn drain_channels(&mut self, now: Instant) {
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

    pub(super) fn read_pass(&mut self, now: Instant) {
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

    pub(super) fn write_pass(&mut self, now: Instant) {
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

    pub(super) fn do_actions(&mut self, now: Instant) {
        while let Some(a) = self.session.next_action() {
            match a {
                Action::Connect(addr) => self.connect(addr, now),
                Action::Close(t) => self.drop_conn(t),
                Action::Verify { piece, buf } => {
                    // The resume file's trust rule after a kill: no write
                    // of ours lands much later than RESUME_EVERY after a
                    // save (`resume` module notes), so a write is never
                    // handed over later than that.
                    if self
                        .resume_saved
                        .is_none_or(|(_, at)| now >= at + RESUME_EVERY)
                    {
                        self.save_resume(now, true);
                    }
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
}

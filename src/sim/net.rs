//! The `bt-sim` engine: hundreds to thousands of real [`Session`]s (the
//! picker, chokers and upload scheduler of `bt-fetch`) over a simulated
//! network, deterministic for a given configuration.
//!
//! The model:
//! - **Time** advances in fixed steps ([`NetConfig::step`], 100 ms by
//!   default, the session's own rate-limit granularity); a session is ticked in a step only when its
//!   [`Session::poll_timeout`] has come, so idle sessions cost little.
//! - **Capacity.** Every peer has an upload and a download rate. Each step
//!   a peer's upload allowance (its rate times the step, fractions carried)
//!   is water-filled over its connections with bytes waiting — each gets an
//!   equal share, what one cannot use goes to the others, as TCP flows
//!   sharing an uplink roughly do — and each transfer is also bounded by
//!   the receiver's download allowance. Senders take turns starting from a
//!   rotating position, so no peer is always first.
//! - **Latency.** Peer i sits at a distance drawn once from the seed;
//!   bytes sent from a to b arrive (latency a + latency b) later, rounded
//!   up to whole steps (at least one), in order.
//!   Connection set-up is immediate.
//! - **Peers** join at their [`PeerSpec::join_at`], ask a tracker (the
//!   simulator) for [`NetConfig::tracker_peers`] random live peers, dial
//!   them through the session's own candidate logic, and ask again every
//!   [`NetConfig::reannounce`] while they have few connections. A
//!   leecher leaves [`NetConfig::linger`] after it completes (its
//!   connections close on both sides); seeders stay.
//! - **Content is trusted, not hashed.** The peers are honest, so the
//!   simulator answers every `Verify` with "good" without hashing, and
//!   answers reads with zero bytes: no data is stored or hashed.
//! - **Payload is not carried.** The links cut each direction's byte
//!   stream into whole frames ([`Framer`]); a frame is handed over when
//!   its last byte arrives. Small frames travel as bytes; a piece
//!   message travels as (piece, offset, length), since its payload is
//!   zeros, and is rebuilt as bytes on arrival. Each session still
//!   receives exactly the bytes the other sent, through its own parser;
//!   the simulator only saves copying (and holding) the payload in
//!   between.
//!
//! - **A step** is: the transmit plan (serial: who sends how many bytes
//!   to whom this step, within the sender's and the receiver's
//!   allowances, senders in turn from a rotating first one); then, for
//!   every peer on its own, its planned sends (cut into frames that wait
//!   in its outbox), the frames that arrive for it (in the order sent),
//!   its clock and the actions that concern it alone — this part runs on
//!   [`NetConfig::threads`] threads, over chunks of peers; then, serially
//!   in peer order, what crosses between peers (connections opened and
//!   closed, finishing) and the outboxes into the links (a link's delay
//!   is at least one step, so nothing sent in a step arrives in it).
//!
//! Everything is in vectors and ordered maps visited in index order; the
//! only randomness is a `StdRng` seeded from [`NetConfig::seed`], and no
//! peer's part of a step reads another's, so the same configuration gives
//! the same results byte for byte, on any number of threads.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::pool::Pool;
use super::{node_addr, node_peer_id};
use crate::choker;
use crate::session::{Action, CloseReason, Config, Event, Origin, OutPart, Session, Token};

/// Length of the BitTorrent handshake, the first frame of each direction.
const HANDSHAKE_LEN: usize = 68;
/// Length prefix, id, piece index and offset of a piece message.
const PIECE_HEADER_LEN: usize = 13;
const PIECE_ID: u8 = 7;

/// One simulated peer.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Its choking strategy (see [`choker::by_name`]).
    pub strategy: String,
    /// Bytes/s it can send and receive.
    pub upload: u64,
    pub download: u64,
    /// When it joins, from the start of the run.
    pub join_at: Duration,
    /// It starts with every piece (and never leaves).
    pub seeder: bool,
}

#[derive(Debug, Clone)]
pub struct NetConfig {
    pub peers: Vec<PeerSpec>,
    pub size: u64,
    pub piece_length: u64,
    pub step: Duration,
    /// Peers a tracker answer holds.
    pub tracker_peers: usize,
    /// Connections a session keeps at most.
    pub max_peers: usize,
    pub upload_slots: usize,
    /// How often a peer with fewer than `tracker_peers / 2` connections
    /// asks the tracker again.
    pub reannounce: Duration,
    /// How long a leecher stays (seeding) after it completes.
    pub linger: Duration,
    /// Range of a peer's distance; a link's latency is the sum of its ends'.
    pub latency_ms: (u64, u64),
    /// The run stops here even if some peers are not complete.
    pub time_limit: Duration,
    /// The first 8 bytes of every peer id. bt's own prefix (`-BT0100-`)
    /// turns on the seed split between bt peers; the default, a foreign
    /// prefix, leaves it off so that peers behave like generic clients.
    pub peer_id_prefix: [u8; 8],
    /// Payload as counted zeros, never stored or copied (the sessions'
    /// `virtual_payload`); off, blocks travel as real (zero) bytes through
    /// every buffer and each verified piece is checked to be whole zeros.
    /// Either way the results are the same (tested); off only costs more.
    pub virtual_payload: bool,
    /// The sessions' `split_min_passed_on` (None: the default), to tune it.
    pub split_threshold: Option<f64>,
    /// PropShare's optimistic share (None: [`choker::PropShare`]'s default),
    /// to see how much that unverified constant matters.
    pub propshare_optimistic_share: Option<f64>,
    /// Threads that run the sessions of a step. The results do not depend
    /// on it (tested): each thread takes a range of peers, and whatever
    /// crosses from one peer to another is done afterwards, in peer order.
    pub threads: usize,
    pub seed: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            peers: Vec::new(),
            size: 16 << 20,
            piece_length: 256 * 1024,
            step: Duration::from_millis(100),
            tracker_peers: 50,
            max_peers: 80,
            upload_slots: 4,
            reannounce: Duration::from_secs(60),
            linger: Duration::ZERO,
            latency_ms: (5, 50),
            time_limit: Duration::from_secs(24 * 3600),
            peer_id_prefix: *b"-SM0100-",
            virtual_payload: true,
            split_threshold: None,
            propshare_optimistic_share: None,
            threads: 1,
            seed: 1,
        }
    }
}

/// What became of one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerResult {
    pub peer: usize,
    pub strategy: String,
    pub seeder: bool,
    pub upload_capacity: u64,
    pub join_at: Duration,
    /// Seconds from joining to completion (None: did not complete).
    pub download_seconds: Option<f64>,
    /// Payload bytes sent and received over its life in the swarm.
    pub uploaded: u64,
    pub downloaded: u64,
}

/// One end of a connection.
struct Link {
    peer: usize,
    peer_token: Token,
    /// Steps bytes take to reach the other end.
    delay: usize,
    /// What this end sent, cut into frames.
    framer: Framer,
}

/// A whole frame, as the links carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `len` bytes from `start` of the bucket's arena.
    Bytes { start: usize, len: usize },
    /// A piece message with `len` bytes of (zero) payload.
    Piece { index: u32, begin: u32, len: u32 },
}

/// A frame on its way to `to`, for its connection `token`.
struct Flight {
    to: usize,
    token: Token,
    frame: Frame,
}

/// The frames that arrive in one step, in the order they were sent, and
/// the bytes of the small ones.
#[derive(Default)]
struct Arrivals {
    flights: Vec<Flight>,
    arena: Vec<u8>,
}

/// Cuts one direction of a connection's byte stream into whole frames:
/// first the 68-byte handshake, then length-prefixed messages. It keeps
/// the bytes of the frame under way, except a piece message's payload,
/// which it only counts.
#[derive(Debug, Default)]
struct Framer {
    handshake_done: bool,
    /// The current frame's bytes so far (a piece message's 13-byte header).
    head: Vec<u8>,
    /// Payload bytes of the current piece message still to come.
    payload_left: usize,
}

/// What [`Framer::feed`] found complete.
#[derive(Debug, PartialEq, Eq)]
enum Whole<'a> {
    Bytes(&'a [u8]),
    Piece { index: u32, begin: u32, len: u32 },
}

impl Framer {
    /// Bytes of `head` the current frame needs before it can go on.
    fn need(&self) -> usize {
        if !self.handshake_done {
            return HANDSHAKE_LEN;
        }
        if self.head.len() < 4 {
            return 4;
        }
        let len = u32::from_be_bytes(self.head[..4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            return 4;
        }
        if self.head.len() < 5 {
            return 5;
        }
        if self.head[4] == PIECE_ID && len >= 9 {
            return PIECE_HEADER_LEN;
        }
        4 + len
    }

    /// Takes the next bytes sent; `whole` gets each frame they complete.
    fn feed(&mut self, mut data: &[u8], mut whole: impl FnMut(Whole<'_>)) {
        loop {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                self.payload_left -= n;
                data = &data[n..];
                if self.payload_left > 0 {
                    return;
                }
                self.piece_done(&mut whole);
                continue;
            }
            let need = self.need();
            let take = (need - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.head.len() < need {
                return;
            }
            if !self.handshake_done {
                self.handshake_done = true;
            } else if need == PIECE_HEADER_LEN && self.head[4] == PIECE_ID {
                let len = u32::from_be_bytes(self.head[..4].try_into().expect("4 bytes"));
                self.payload_left = len as usize - 9;
                if self.payload_left == 0 {
                    self.piece_done(&mut whole);
                }
                continue;
            } else if need < 4 + self.frame_len() {
                // The length prefix or the id: read on.
                continue;
            }
            whole(Whole::Bytes(&self.head));
            self.head.clear();
        }
    }

    /// Takes `n` zero bytes sent (a queued block's payload, not stored).
    fn feed_zeros(&mut self, mut n: usize, mut whole: impl FnMut(Whole<'_>)) {
        const ZEROS: [u8; 64] = [0; 64];
        while n > 0 {
            if self.payload_left > 0 {
                let k = n.min(self.payload_left);
                self.payload_left -= k;
                n -= k;
                if self.payload_left == 0 {
                    self.piece_done(&mut whole);
                }
                continue;
            }
            // Zeros outside a payload (never sent by a session, but
            // handled as the bytes they are).
            let k = n.min(ZEROS.len());
            self.feed(&ZEROS[..k], &mut whole);
            n -= k;
        }
    }

    fn frame_len(&self) -> usize {
        u32::from_be_bytes(self.head[..4].try_into().expect("4 bytes")) as usize
    }

    fn piece_done(&mut self, whole: &mut impl FnMut(Whole<'_>)) {
        let word = |at: usize| u32::from_be_bytes(self.head[at..at + 4].try_into().expect("4"));
        let len = word(0) - 9;
        whole(Whole::Piece {
            index: word(5),
            begin: word(9),
            len,
        });
        self.head.clear();
    }
}

struct Node {
    spec: PeerSpec,
    session: Option<Session>,
    links: BTreeMap<Token, Link>,
    next_token: Token,
    up_allowance: f64,
    down_allowance: f64,
    distance: Duration,
    joined: bool,
    left: bool,
    completed_at: Option<Instant>,
    next_announce: Option<Instant>,
    uploaded: u64,
    downloaded: u64,
    /// The session may have output: it was handed something since the
    /// last transmit pass, or that pass left bytes behind. A session's
    /// output grows only when it is called, so one that is neither is
    /// skipped (saving a scan over its connections).
    may_have_output: bool,
    /// Its `poll_timeout`, while the session has not been called since
    /// (the answer is an absolute time that only a call can move).
    wake: Option<Instant>,
    /// An action of the session that reaches another peer, taken from its
    /// queue in the parallel part of a step: it and the actions after it
    /// run in the serial part.
    held: Option<Held>,
    /// Its connections with bytes to send, smallest first, when
    /// `demand_fresh`: gathered at the end of the parallel part, so that
    /// the serial transmit pass need not scan connections.
    demand: Vec<Demand>,
    demand_fresh: bool,
    /// What the transmit pass's plan lets it send this step, in order.
    sends: Vec<Transfer>,
    /// The frames those sends complete, with their delay, and the bytes
    /// of the small ones; moved into the flight ring in sender order.
    outbox: Vec<(usize, Flight)>,
    outbox_arena: Vec<u8>,
}

/// One connection's bytes waiting to be sent.
#[derive(Debug, Clone, Copy)]
struct Demand {
    len: usize,
    token: Token,
    /// The other end and the link's delay (None: no link, nothing sent).
    to: Option<(usize, Token, usize)>,
}

/// Bytes a connection sends in this step.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    token: Token,
    take: usize,
    to: usize,
    to_token: Token,
    delay: usize,
}

/// The actions that touch two peers (or the run's order of finishers).
#[derive(Debug)]
enum Held {
    Connect(std::net::SocketAddr),
    Close(Token),
    Complete,
}

impl Held {
    /// The action as held if it reaches beyond its peer; else the action.
    fn of(action: Action) -> Result<Held, Action> {
        match action {
            Action::Connect(addr) => Ok(Held::Connect(addr)),
            Action::Close(t) => Ok(Held::Close(t)),
            Action::Event(Event::Complete) => Ok(Held::Complete),
            local => Err(local),
        }
    }
}

impl Node {
    /// The session was called: its output and deadline may have changed.
    fn touch(&mut self) {
        self.may_have_output = true;
        self.wake = None;
        self.demand_fresh = false;
    }

    /// Runs the session's actions that concern this peer alone, until its
    /// queue is empty or an action reaches another peer (then held).
    fn run_local_actions(&mut self, i: usize, step: &StepContext<'_>) {
        while self.held.is_none() {
            let Some(action) = self.session.as_mut().and_then(|s| s.next_action()) else {
                return;
            };
            self.touch();
            match Held::of(action) {
                Ok(held) => self.held = Some(held),
                Err(local) => self.run_local(i, local, step),
            }
        }
    }

    /// An action that concerns this peer alone.
    fn run_local(&mut self, i: usize, action: Action, step: &StepContext<'_>) {
        let now = step.now;
        let s = self.session.as_mut().expect("live");
        match action {
            Action::Verify { piece, buf } => {
                // With real bytes, what arrived must be the whole piece
                // of zeros the uploaders read.
                let good = step.cfg.virtual_payload
                    || (buf.len() as u64
                        == crate::metainfo::piece_size(
                            step.cfg.piece_length,
                            step.cfg.size,
                            piece as usize,
                        )
                        && buf.iter().all(|&b| b == 0));
                s.on_verified(piece, good, buf, now);
            }
            Action::Read(read) => {
                let len = read.length as usize;
                s.on_read(&read, &step.zeros[..len], now);
            }
            Action::Event(e @ Event::PeerDisconnected { .. }) => {
                let elapsed = now.saturating_duration_since(step.t0);
                log::debug!("{:.1} s: peer {i}: {e:?}", elapsed.as_secs_f64());
            }
            Action::Event(_) => {}
            Action::Connect(_) | Action::Close(_) => unreachable!("held, not local"),
        }
    }

    /// Its connections with output, for the next transmit pass.
    fn gather_demand(&mut self, lengths: &mut Vec<(usize, Token)>) {
        self.demand.clear();
        self.demand_fresh = true;
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if !self.may_have_output {
            return;
        }
        s.output_lengths(lengths);
        lengths.sort_unstable();
        let links = &self.links;
        self.demand
            .extend(lengths.iter().map(|&(len, token)| Demand {
                len,
                token,
                to: links.get(&token).map(|l| (l.peer, l.peer_token, l.delay)),
            }));
        self.may_have_output = !self.demand.is_empty();
    }

    /// Carries out the plan's sends: their bytes leave the session's
    /// output and are cut into frames, which wait in the outbox.
    fn send_planned(&mut self) {
        let sends = std::mem::take(&mut self.sends);
        let s = self.session.as_mut().expect("live");
        for send in &sends {
            let framer = &mut self.links.get_mut(&send.token).expect("link").framer;
            let out = s.output(send.token).expect("has output");
            let (outbox, arena) = (&mut self.outbox, &mut self.outbox_arena);
            let mut land = |whole: Whole<'_>| {
                let frame = match whole {
                    Whole::Bytes(bytes) => {
                        let start = arena.len();
                        arena.extend_from_slice(bytes);
                        Frame::Bytes {
                            start,
                            len: bytes.len(),
                        }
                    }
                    Whole::Piece { index, begin, len } => Frame::Piece { index, begin, len },
                };
                let flight = Flight {
                    to: send.to,
                    token: send.to_token,
                    frame,
                };
                outbox.push((send.delay, flight));
            };
            let mut todo = send.take;
            out.parts(|part| {
                if todo == 0 {
                    return;
                }
                match part {
                    OutPart::Bytes(bytes) => {
                        let k = bytes.len().min(todo);
                        framer.feed(&bytes[..k], &mut land);
                        todo -= k;
                    }
                    OutPart::Zeros(n) => {
                        let k = n.min(todo);
                        framer.feed_zeros(k, &mut land);
                        todo -= k;
                    }
                }
            });
            out.consume(send.take);
            s.on_sent(send.token);
            // on_sent only turns requests into reads (actions, run later);
            // it adds no output, but it moves the deadline.
            self.wake = None;
        }
        self.sends = sends;
        self.sends.clear();
    }

    /// The parallel part of a step for this peer: the frames that arrive
    /// (delivered before), the clock, its own actions, its output.
    fn run_step(&mut self, i: usize, step: &StepContext<'_>, lengths: &mut Vec<(usize, Token)>) {
        let now = step.now;
        if let Some(s) = self.session.as_mut() {
            let wake = *self.wake.get_or_insert_with(|| s.poll_timeout(now));
            if now >= wake {
                s.tick(now);
                self.touch();
            }
        }
        self.run_local_actions(i, step);
        if self.held.is_none() {
            self.gather_demand(lengths);
        }
    }

    /// Hands one arriving frame to the session (lost if its connection
    /// closed meanwhile).
    fn deliver(&mut self, f: &Flight, arena: &[u8], piece_frame: &mut Vec<u8>, now: Instant) {
        if !self.links.contains_key(&f.token) {
            return;
        }
        self.touch();
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match f.frame {
            Frame::Bytes { start, len } => s.on_data(f.token, &arena[start..start + len], now),
            Frame::Piece { index, begin, len } => {
                let total = PIECE_HEADER_LEN + len as usize;
                if total > piece_frame.len() {
                    piece_frame.resize(total, 0);
                }
                piece_frame[..4].copy_from_slice(&(9 + len).to_be_bytes());
                piece_frame[4] = PIECE_ID;
                piece_frame[5..9].copy_from_slice(&index.to_be_bytes());
                piece_frame[9..13].copy_from_slice(&begin.to_be_bytes());
                s.on_data(f.token, &piece_frame[..total], now);
            }
        }
    }
}

/// What every thread of a step's parallel part reads.
struct StepContext<'a> {
    cfg: &'a NetConfig,
    zeros: &'a [u8],
    now: Instant,
    t0: Instant,
}

/// Scratch buffers of one thread.
struct Worker {
    piece_frame: Vec<u8>,
    lengths: Vec<(usize, Token)>,
}

/// The parallel part of a step over the peers `base..base + nodes.len()`:
/// the sends the plan gave them (to their outboxes), `flights` (the frames
/// that arrive for them, in the order they were sent), then each live
/// one's clock and own actions. It reads and writes only these peers.
fn run_range<'a>(
    nodes: &mut [Node],
    base: usize,
    live: &[usize],
    flights: impl Iterator<Item = &'a Flight>,
    arrivals: &Arrivals,
    step: &StepContext<'_>,
    worker: &mut Worker,
) {
    for &i in live {
        if !nodes[i - base].sends.is_empty() {
            nodes[i - base].send_planned();
        }
    }
    for f in flights {
        nodes[f.to - base].deliver(f, &arrivals.arena, &mut worker.piece_frame, step.now);
    }
    for &i in live {
        nodes[i - base].run_step(i, step, &mut worker.lengths);
    }
}

/// The chunk (of [`par_chunks`] over `peers`) that holds peer `i`.
fn chunk_of(peers: &[usize], i: usize) -> usize {
    peers.partition_point(|&p| p <= i).saturating_sub(1) / CHUNK_PEERS
}

/// Runs `f` over the peers `peers` (ascending indexes) in chunks of
/// [`CHUNK_PEERS`], on as many threads as `workers`: chunk k gets the
/// nodes from its first peer (from 0 for the first chunk) to the next
/// chunk's first (to the end for the last), with their base index and its
/// peers. Threads take the next chunk as they finish one, so a few busy
/// peers (a seeder) do not leave the others idle; `f` must touch only its
/// chunk's nodes, so the result does not depend on who ran what.
fn par_chunks<F>(
    nodes: &mut [Node],
    peers: &[usize],
    pool: &Pool,
    threads: usize,
    workers: &[Mutex<Worker>],
    f: F,
) where
    F: Fn(usize, &mut [Node], usize, &[usize], &mut Worker) + Sync,
{
    let chunks = peers.len().div_ceil(CHUNK_PEERS);
    let first = |k: usize| if k == 0 { 0 } else { peers[k * CHUNK_PEERS] };
    let peers_of = |k: usize| &peers[k * CHUNK_PEERS..((k + 1) * CHUNK_PEERS).min(peers.len())];
    let mut slices = Vec::with_capacity(chunks);
    let mut rest: &mut [Node] = nodes;
    for k in 0..chunks {
        let len = if k + 1 < chunks {
            first(k + 1) - first(k)
        } else {
            rest.len()
        };
        let (mine, tail) = rest.split_at_mut(len);
        rest = tail;
        slices.push(Mutex::new(Some(mine)));
    }
    let next = AtomicUsize::new(0);
    let work = |thread: usize| {
        if thread >= threads {
            return;
        }
        let mut worker = workers[thread].lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= chunks {
                return;
            }
            let nodes = slices[k]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("each chunk is taken once");
            f(k, nodes, first(k), peers_of(k), &mut worker);
        }
    };
    if threads <= 1 {
        work(0);
    } else {
        pool.run(&work);
    }
}

/// Peers a thread takes at least: below it, starting a thread costs more
/// than it saves.
const MIN_PEERS_PER_THREAD: usize = 16;
/// Live peers in a chunk of the parallel part (see `run_parallel_part`).
const CHUNK_PEERS: usize = 8;

pub struct Net {
    cfg: NetConfig,
    nodes: Vec<Node>,
    rng: StdRng,
    info_hash: [u8; 20],
    pieces: usize,
    zeros: Vec<u8>,
    t0: Instant,
    now: Instant,
    steps: u64,
    /// Indices of peers in the swarm now, in index order.
    live: Vec<usize>,
    /// Frames in flight, by the step they arrive in (a ring of buckets:
    /// the bucket of step k is `k % len`).
    flights: Vec<Arrivals>,
    /// The threads of the parallel part, and each one's scratch space
    /// (arriving piece messages are rebuilt in its `piece_frame`, a
    /// header followed by zeros).
    pool: Pool,
    workers: Vec<Mutex<Worker>>,
    /// Finished peers, in the order they finished.
    finished: Vec<usize>,
    /// Steps whose parallel part ran on more than one thread.
    parallel_steps: u64,
    /// Indexes of the arriving flights, by chunk of the parallel part.
    chunk_flights: Vec<Vec<usize>>,
    /// Peers with sends planned in this step, in the plan's order.
    senders: Vec<usize>,
}

/// The node index of a simulated address (the inverse of [`node_addr`]).
fn addr_index(addr: &std::net::SocketAddr) -> Option<usize> {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => Some(u32::from(ip).wrapping_sub(0x0a00_0001) as usize),
        _ => None,
    }
}

impl Net {
    pub fn new(cfg: NetConfig) -> Net {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let pieces = cfg.size.div_ceil(cfg.piece_length) as usize;
        let nodes = cfg
            .peers
            .iter()
            .map(|spec| {
                let ms = rng.gen_range(cfg.latency_ms.0..=cfg.latency_ms.1.max(cfg.latency_ms.0));
                Node {
                    spec: spec.clone(),
                    session: None,
                    links: BTreeMap::new(),
                    next_token: 0,
                    up_allowance: 0.0,
                    down_allowance: 0.0,
                    distance: Duration::from_millis(ms),
                    joined: false,
                    left: false,
                    completed_at: None,
                    next_announce: None,
                    uploaded: 0,
                    downloaded: 0,
                    may_have_output: true,
                    wake: None,
                    held: None,
                    demand: Vec::new(),
                    demand_fresh: false,
                    sends: Vec::new(),
                    outbox: Vec::new(),
                    outbox_arena: Vec::new(),
                }
            })
            .collect();
        let t0 = Instant::now();
        let step_ms = cfg.step.as_millis().max(1) as u64;
        let ring = (2 * cfg.latency_ms.1.max(cfg.latency_ms.0)).div_ceil(step_ms) as usize + 2;
        let mut info_hash = [0u8; 20];
        info_hash[..8].copy_from_slice(&cfg.seed.to_be_bytes());
        Net {
            zeros: vec![0; crate::session::MAX_READ as usize],
            pool: Pool::new(cfg.threads),
            workers: (0..cfg.threads.max(1))
                .map(|_| Worker {
                    piece_frame: vec![0; PIECE_HEADER_LEN + crate::wire::MAX_REQUEST_LEN as usize],
                    lengths: Vec::new(),
                })
                .map(Mutex::new)
                .collect(),
            nodes,
            rng,
            info_hash,
            pieces,
            t0,
            now: t0,
            steps: 0,
            live: Vec::new(),
            flights: (0..ring).map(|_| Arrivals::default()).collect(),
            finished: Vec::new(),
            parallel_steps: 0,
            chunk_flights: Vec::new(),
            senders: Vec::new(),
            cfg,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.t0)
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Steps whose parallel part ran on more than one thread.
    pub fn parallel_steps(&self) -> u64 {
        self.parallel_steps
    }

    /// Runs until every leecher completed (or the time limit).
    pub fn run(&mut self) {
        while !self.done() && self.elapsed() < self.cfg.time_limit {
            self.step();
        }
    }

    /// Whether every leecher has joined and completed.
    pub fn done(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.spec.seeder || n.completed_at.is_some())
    }

    /// Peers in the order they finished.
    pub fn finished(&self) -> &[usize] {
        &self.finished
    }

    /// The result of every peer, by index.
    pub fn results(&self) -> Vec<PeerResult> {
        (0..self.nodes.len()).map(|i| self.result(i)).collect()
    }

    pub fn result(&self, i: usize) -> PeerResult {
        let n = &self.nodes[i];
        let (mut up, mut down) = (n.uploaded, n.downloaded);
        if let Some(s) = &n.session {
            up = s.totals().uploaded;
            down = s.totals().downloaded;
        }
        PeerResult {
            peer: i,
            strategy: n.spec.strategy.clone(),
            seeder: n.spec.seeder,
            upload_capacity: n.spec.upload,
            join_at: n.spec.join_at,
            download_seconds: n.completed_at.map(|t| {
                t.saturating_duration_since(self.t0 + n.spec.join_at)
                    .as_secs_f64()
            }),
            uploaded: up,
            downloaded: down,
        }
    }

    /// One step of the simulation.
    ///
    /// Its parallel part (the frames that arrive, each peer's clock and
    /// the actions that concern it alone) runs on up to
    /// [`NetConfig::threads`] threads, each over a range of peers; what
    /// crosses between peers (connections made and closed, and the order
    /// in which peers finish) is held and done afterwards in peer order,
    /// so the run does not depend on the number of threads.
    pub fn step(&mut self) {
        self.steps += 1;
        self.now += self.cfg.step;
        self.joins();
        self.transmit();
        self.run_parallel_part();
        self.post_sends();
        // The serial part: held actions, in peer order.
        for k in 0..self.live.len() {
            let i = self.live[k];
            if self.nodes[i].held.is_some() {
                self.run_actions(i);
            }
        }
        self.announces();
        self.leaves();
    }

    /// Threads for a parallel pass over `peers` peers.
    fn threads_for(&self, peers: usize) -> usize {
        self.pool.threads().min(peers / MIN_PEERS_PER_THREAD).max(1)
    }

    fn run_parallel_part(&mut self) {
        let ring = self.flights.len();
        let bucket = self.steps as usize % ring;
        let arrivals = std::mem::take(&mut self.flights[bucket]);
        let step = StepContext {
            cfg: &self.cfg,
            zeros: &self.zeros,
            now: self.now,
            t0: self.t0,
        };
        let live = &self.live;
        let threads = self.threads_for(live.len());
        if threads > 1 {
            self.parallel_steps += 1;
        }
        // The arriving frames of each chunk's peers, in the order sent.
        let per_chunk = &mut self.chunk_flights;
        let chunks = live.len().div_ceil(CHUNK_PEERS);
        per_chunk.resize_with(chunks.max(per_chunk.len()), Vec::new);
        per_chunk.iter_mut().for_each(Vec::clear);
        for (j, f) in arrivals.flights.iter().enumerate() {
            per_chunk[chunk_of(live, f.to)].push(j);
        }
        let per_chunk = &*per_chunk;
        let (step, arrivals_ref) = (&step, &arrivals);
        let (pool, workers) = (&self.pool, &self.workers);
        par_chunks(
            &mut self.nodes,
            live,
            pool,
            threads,
            workers,
            |k, nodes, base, peers, worker| {
                let flights = per_chunk[k].iter().map(|&j| &arrivals_ref.flights[j]);
                run_range(nodes, base, peers, flights, arrivals_ref, step, worker);
            },
        );
        // The bucket's buffers are reused for a later step.
        let mut arrivals = arrivals;
        arrivals.flights.clear();
        arrivals.arena.clear();
        self.flights[bucket] = arrivals;
    }

    fn joins(&mut self) {
        let now = self.now;
        let elapsed = self.elapsed();
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.joined || n.spec.join_at > elapsed {
                continue;
            }
            let mut sc = Config::new(self.info_hash, node_peer_id(&self.cfg.peer_id_prefix, i));
            sc.seed = self.cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            sc.upload_slots = self.cfg.upload_slots;
            sc.max_peers = self.cfg.max_peers;
            sc.max_buffer_bytes = 8 * self.cfg.piece_length;
            sc.max_upload_rate = Some(n.spec.upload.max(1));
            // The links read frames from the clear stream.
            sc.encryption = crate::session::Encryption::Disable;
            // Honest peers, a trusted "disk": no payload is stored or copied.
            sc.virtual_payload = self.cfg.virtual_payload;
            if let Some(x) = self.cfg.split_threshold {
                sc.split_min_passed_on = x;
            }
            let mut s = Session::new(sc, self.cfg.piece_length, self.cfg.size, self.pieces);
            let c: Box<dyn choker::Choker> = match self.cfg.propshare_optimistic_share {
                Some(share) if n.spec.strategy == "propshare" => {
                    Box::new(choker::PropShare::with_optimistic_share(share))
                }
                _ => choker::by_name(&n.spec.strategy, self.cfg.piece_length)
                    .unwrap_or_else(|| Box::new(choker::Classic::new())),
            };
            s.set_choker(c);
            if n.spec.seeder {
                (0..self.pieces).for_each(|p| s.set_have(p));
            }
            let n = &mut self.nodes[i];
            n.session = Some(s);
            n.touch();
            n.joined = true;
            n.next_announce = Some(now);
            if let Err(at) = self.live.binary_search(&i) {
                self.live.insert(at, i);
            }
        }
    }

    /// The tracker: peers with few connections get a random sample of
    /// the live peers.
    fn announces(&mut self) {
        let now = self.now;
        for k in 0..self.live.len() {
            let i = self.live[k];
            let due = self.nodes[i].next_announce.is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            self.nodes[i].next_announce = Some(now + self.cfg.reannounce);
            let s = self.nodes[i].session.as_ref().expect("live");
            if s.connection_count() >= self.cfg.tracker_peers / 2 {
                continue;
            }
            let mut others: Vec<usize> = self.live.iter().copied().filter(|&j| j != i).collect();
            others.shuffle(&mut self.rng);
            others.truncate(self.cfg.tracker_peers);
            self.nodes[i].touch();
            let s = self.nodes[i].session.as_mut().expect("live");
            for j in others {
                s.add_candidate(node_addr(j), Origin::Tracker);
            }
        }
    }

    fn leaves(&mut self) {
        let now = self.now;
        let mut k = 0;
        while k < self.live.len() {
            let i = self.live[k];
            let n = &self.nodes[i];
            let go = !n.spec.seeder && n.completed_at.is_some_and(|t| t + self.cfg.linger <= now);
            if !go {
                k += 1;
                continue;
            }
            self.live.remove(k);
            let links = std::mem::take(&mut self.nodes[i].links);
            for (_, l) in links {
                self.close_remote(l.peer, l.peer_token);
            }
            let n = &mut self.nodes[i];
            if let Some(s) = n.session.take() {
                n.uploaded = s.totals().uploaded;
                n.downloaded = s.totals().downloaded;
            }
            n.left = true;
        }
    }

    /// The other end of a connection sees it close.
    fn close_remote(&mut self, peer: usize, token: Token) {
        let now = self.now;
        self.nodes[peer].links.remove(&token);
        self.nodes[peer].touch();
        if let Some(s) = self.nodes[peer].session.as_mut() {
            s.on_closed(token, CloseReason::ClosedByPeer, now);
        }
    }

    /// Moves bytes from output buffers onto links, within capacities.
    fn transmit(&mut self) {
        let dt = self.cfg.step.as_secs_f64();
        for &i in &self.live {
            let n = &mut self.nodes[i];
            let up = n.spec.upload as f64 * dt;
            let down = n.spec.download as f64 * dt;
            // Unused allowance carries over one step at most.
            n.up_allowance = (n.up_allowance + up).min(2.0 * up);
            n.down_allowance = (n.down_allowance + down).min(2.0 * down);
        }
        let count = self.live.len();
        if count == 0 {
            return;
        }
        let start = (self.steps as usize) % count;
        // The plan, in turn from a rotating first sender: what each
        // connection sends within its sender's and its receiver's
        // allowances.
        let mut senders = std::mem::take(&mut self.senders);
        senders.clear();
        for k in 0..count {
            let a = self.live[(start + k) % count];
            if !self.nodes[a].may_have_output {
                continue;
            }
            if !self.nodes[a].demand_fresh {
                let worker = self.workers[0].get_mut().unwrap_or_else(|e| e.into_inner());
                self.nodes[a].gather_demand(&mut worker.lengths);
            }
            // Stale after this pass, whatever it sends.
            self.nodes[a].demand_fresh = false;
            if self.nodes[a].demand.is_empty() {
                continue;
            }
            // Water-filling: smallest demands first, each up to an equal
            // share of what is left.
            let demand = std::mem::take(&mut self.nodes[a].demand);
            let mut sends = std::mem::take(&mut self.nodes[a].sends);
            let mut left = self.nodes[a].up_allowance.floor().max(0.0) as usize;
            let links = demand.len();
            let mut drained = 0;
            for (k, d) in demand.iter().enumerate() {
                if left == 0 {
                    break;
                }
                let Some((b, to_token, delay)) = d.to else {
                    continue;
                };
                let share = left / (links - k);
                let recv = self.nodes[b].down_allowance.floor().max(0.0) as usize;
                let take = d.len.min(share.max(1)).min(recv).min(left);
                if take == 0 {
                    continue;
                }
                sends.push(Transfer {
                    token: d.token,
                    take,
                    to: b,
                    to_token,
                    delay,
                });
                drained += usize::from(take == d.len);
                left -= take;
                self.nodes[a].up_allowance -= take as f64;
                self.nodes[b].down_allowance -= take as f64;
            }
            let n = &mut self.nodes[a];
            n.may_have_output = drained < links;
            n.demand = demand;
            if !sends.is_empty() {
                senders.push(a);
            }
            n.sends = sends;
        }
        self.senders = senders;
    }

    /// The frames of this step's sends into the flight ring, in the
    /// plan's order (none arrives in this step: a link's delay is at
    /// least one step).
    fn post_sends(&mut self) {
        let ring = self.flights.len();
        for &a in &self.senders {
            let n = &mut self.nodes[a];
            for (delay, mut flight) in n.outbox.drain(..) {
                let arrivals = &mut self.flights[(self.steps as usize + delay) % ring];
                if let Frame::Bytes { start, len } = flight.frame {
                    let at = arrivals.arena.len();
                    arrivals
                        .arena
                        .extend_from_slice(&n.outbox_arena[start..start + len]);
                    flight.frame = Frame::Bytes { start: at, len };
                }
                arrivals.flights.push(flight);
            }
            n.outbox_arena.clear();
        }
    }

    /// The serial part for peer `i`: its held action, then the rest of
    /// its queue, reaching other peers at once.
    fn run_actions(&mut self, i: usize) {
        let now = self.now;
        loop {
            let n = &mut self.nodes[i];
            let held = match n.held.take() {
                Some(h) => h,
                None => match n
                    .session
                    .as_mut()
                    .and_then(|s| s.next_action())
                    .map(Held::of)
                {
                    None => return,
                    Some(Ok(held)) => held,
                    Some(Err(local)) => {
                        n.touch();
                        let step = StepContext {
                            cfg: &self.cfg,
                            zeros: &self.zeros,
                            now,
                            t0: self.t0,
                        };
                        n.run_local(i, local, &step);
                        continue;
                    }
                },
            };
            self.nodes[i].touch();
            match held {
                Held::Close(t) => {
                    if let Some(l) = self.nodes[i].links.remove(&t) {
                        self.close_remote(l.peer, l.peer_token);
                    }
                }
                Held::Connect(addr) => self.connect(i, addr),
                Held::Complete => {
                    let n = &mut self.nodes[i];
                    if n.completed_at.is_none() && !n.spec.seeder {
                        n.completed_at = Some(now);
                        self.finished.push(i);
                    }
                }
            }
        }
    }

    fn connect(&mut self, i: usize, addr: std::net::SocketAddr) {
        let now = self.now;
        let j = addr_index(&addr).filter(|&j| j < self.nodes.len() && j != i);
        let me = node_addr(i);
        let ok = j.is_some_and(|j| {
            self.nodes[j]
                .session
                .as_ref()
                .is_some_and(|s| s.accepts(&me))
        });
        let Some(j) = j.filter(|_| ok) else {
            if let Some(s) = self.nodes[i].session.as_mut() {
                s.on_connect_failed(addr, "refused".into(), now);
            }
            return;
        };
        let latency = self.nodes[i].distance + self.nodes[j].distance;
        let delay = (latency.as_secs_f64() / self.cfg.step.as_secs_f64()).ceil() as usize;
        let delay = delay.clamp(1, self.flights.len() - 1);
        let ti = self.nodes[i].next_token;
        self.nodes[i].next_token += 1;
        let tj = self.nodes[j].next_token;
        self.nodes[j].next_token += 1;
        self.nodes[i].links.insert(
            ti,
            Link {
                peer: j,
                peer_token: tj,
                delay,
                framer: Framer::default(),
            },
        );
        self.nodes[j].links.insert(
            tj,
            Link {
                peer: i,
                peer_token: ti,
                delay,
                framer: Framer::default(),
            },
        );
        let si = self.nodes[i].session.as_mut().expect("live");
        si.on_connection(ti, addr, true, now);
        si.on_connected(ti);
        self.nodes[j].touch();
        let sj = self.nodes[j].session.as_mut().expect("live");
        sj.on_connection(tj, me, false, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm(leechers: usize, strategy: &str, seed: u64) -> NetConfig {
        let mut peers = vec![PeerSpec {
            strategy: "classic".into(),
            upload: 200_000,
            download: 2_000_000,
            join_at: Duration::ZERO,
            seeder: true,
        }];
        for i in 0..leechers {
            peers.push(PeerSpec {
                strategy: if i % 2 == 0 {
                    strategy.into()
                } else {
                    "classic".into()
                },
                upload: 50_000 + 10_000 * i as u64,
                download: 1_000_000,
                join_at: Duration::from_millis(100 * i as u64),
                seeder: false,
            });
        }
        NetConfig {
            peers,
            size: 2 << 20,
            piece_length: 64 * 1024,
            tracker_peers: 8,
            seed,
            time_limit: Duration::from_secs(3600),
            ..Default::default()
        }
    }

    #[test]
    fn a_small_swarm_completes_under_every_strategy() {
        for strategy in ["classic", "bittyrant", "propshare"] {
            let mut net = Net::new(swarm(12, strategy, 3));
            net.run();
            assert!(net.done(), "{strategy}: everyone completes");
            let r = net.results();
            let up: u64 = r.iter().map(|p| p.uploaded).sum();
            let down: u64 = r.iter().map(|p| p.downloaded).sum();
            assert!(up >= down, "{strategy}: no byte received that was not sent");
            assert!(r[1..].iter().all(|p| p.downloaded == 2 << 20));
        }
    }

    /// One leecher behind one seeder: the transfer runs at the seeder's
    /// upload rate (within 10 %), or at the leecher's download rate when
    /// that is lower; a later joiner starts later.
    #[test]
    fn capacities_bound_the_transfer() {
        let time = |seed_up: u64, down: u64| {
            let peers = vec![
                PeerSpec {
                    strategy: "classic".into(),
                    upload: seed_up,
                    download: seed_up,
                    join_at: Duration::ZERO,
                    seeder: true,
                },
                PeerSpec {
                    strategy: "classic".into(),
                    upload: 10_000,
                    download: down,
                    join_at: Duration::from_secs(5),
                    seeder: false,
                },
            ];
            let mut net = Net::new(NetConfig {
                peers,
                size: 4 << 20,
                piece_length: 256 * 1024,
                ..Default::default()
            });
            net.run();
            net.result(1).download_seconds.expect("completes")
        };
        let ideal = (4 << 20) as f64 / 200_000.0;
        let t = time(200_000, 1_000_000);
        assert!(t >= ideal && t < 1.1 * ideal, "{t} s for {ideal} s");
        let t = time(1_000_000, 200_000);
        assert!(t >= ideal && t < 1.1 * ideal, "{t} s for {ideal} s");
    }

    /// Regression: bt's seed split once made leechers far slower than the
    /// seed wait on each other for the pieces they did not own while the
    /// seed idled (5 leechers of 2 KB/s behind a 1 MB/s seed took 23×
    /// longer with bt's peer ids than without). With the split on, they
    /// now finish about as fast as without it.
    #[test]
    fn seed_split_does_not_starve_slow_leechers() {
        let median = |prefix: &[u8; 8]| {
            let mut peers = vec![PeerSpec {
                strategy: "classic".into(),
                upload: 1 << 20,
                download: 1 << 20,
                join_at: Duration::ZERO,
                seeder: true,
            }];
            peers.extend((0..5).map(|_| PeerSpec {
                strategy: "classic".into(),
                upload: 2048,
                download: 256 * 1024,
                join_at: Duration::ZERO,
                seeder: false,
            }));
            let mut net = Net::new(NetConfig {
                peers,
                size: 4 << 20,
                piece_length: 256 * 1024,
                peer_id_prefix: *prefix,
                time_limit: Duration::from_secs(2000),
                ..Default::default()
            });
            net.run();
            let mut t: Vec<f64> = net.results()[1..]
                .iter()
                .map(|r| r.download_seconds.unwrap_or(f64::INFINITY))
                .collect();
            t.sort_by(f64::total_cmp);
            t[2]
        };
        let generic = median(b"-SM0100-");
        let bt = median(b"-BT0100-");
        assert!(
            bt < 1.5 * generic,
            "median {bt:.0} s with the seed split, {generic:.0} s without"
        );
    }

    /// The framer finds every frame whatever the cuts: a handshake, a
    /// keep-alive, a have, a piece message (header kept, payload counted)
    /// and a piece message with no payload.
    #[test]
    fn framer_cuts_frames_anywhere() {
        let mut stream = vec![19u8];
        stream.extend_from_slice(&[1; 67]);
        stream.extend_from_slice(&[0, 0, 0, 0]);
        stream.extend_from_slice(&[0, 0, 0, 5, 4, 0, 0, 0, 9]);
        stream.extend_from_slice(&[0, 0, 0, 9 + 100, 7, 0, 0, 0, 3, 0, 0, 0x40, 0]);
        stream.extend_from_slice(&[0; 100]);
        stream.extend_from_slice(&[0, 0, 0, 9, 7, 0, 0, 0, 1, 0, 0, 0, 0]);
        let expected = |frames: &mut Vec<String>| {
            assert_eq!(
                frames.as_slice(),
                [
                    "bytes 68".to_string(),
                    "bytes 4".into(),
                    "bytes 9".into(),
                    "piece 3 16384 100".into(),
                    "piece 1 0 0".into(),
                ]
            );
            frames.clear();
        };
        let mut frames = Vec::new();
        for cut in [1, 2, 3, 5, 7, 13, 64, stream.len()] {
            let mut f = Framer::default();
            for chunk in stream.chunks(cut) {
                f.feed(chunk, |w| {
                    frames.push(match w {
                        Whole::Bytes(b) => format!("bytes {}", b.len()),
                        Whole::Piece { index, begin, len } => {
                            format!("piece {index} {begin} {len}")
                        }
                    })
                });
            }
            expected(&mut frames);
        }
    }

    /// The no-copy payload changes nothing but the cost: the same swarm
    /// with real (zero) bytes through every buffer, each piece checked on
    /// arrival, gives the same results, peer for peer.
    #[test]
    fn virtual_payload_gives_the_same_results_as_real_bytes() {
        let run = |virtual_payload| {
            let mut cfg = swarm(10, "propshare", 4);
            cfg.virtual_payload = virtual_payload;
            let mut net = Net::new(cfg);
            net.run();
            assert!(net.done());
            (net.results(), net.finished().to_vec(), net.steps())
        };
        assert_eq!(run(true), run(false));
    }

    /// Threads change the cost, not the run: peer for peer, step for step.
    #[test]
    fn threads_do_not_change_the_results() {
        let run = |threads| {
            let mut cfg = swarm(3 * MIN_PEERS_PER_THREAD, "bittyrant", 3);
            cfg.size = 1 << 20;
            cfg.threads = threads;
            let mut net = Net::new(cfg);
            net.run();
            assert!(net.done());
            let parallel = net.parallel_steps();
            (
                (net.results(), net.finished().to_vec(), net.steps()),
                parallel,
            )
        };
        let (one, parallel) = run(1);
        assert_eq!(parallel, 0);
        for threads in [2, 3] {
            let (many, parallel) = run(threads);
            assert!(parallel > 0, "{threads} threads never ran in parallel");
            assert_eq!(one, many, "{threads} threads");
        }
    }

    #[test]
    fn same_config_same_results() {
        let run = |seed| {
            let mut net = Net::new(swarm(10, "bittyrant", seed));
            net.run();
            (net.results(), net.finished().to_vec(), net.steps())
        };
        assert_eq!(run(7), run(7));
        // Another seed, another run (the finishing order alone can repeat
        // in a swarm this small).
        assert_ne!(run(7), run(8));
    }
}

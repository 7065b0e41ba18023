//! The per-torrent session: a sans-IO state machine holding every peer
//! connection's protocol state, the picker and the choker.
//!
//! The driver (see `fetch`) feeds it events — a connection opened, bytes
//! received, a connection closed, a piece verified, a block read from disk,
//! the clock ticking — always with the current time, and carries out the
//! [`Action`]s it queues: connect, close, verify-and-write a piece, read a
//! block. Bytes to send accumulate in each peer's output buffer, which the
//! driver drains into the socket. Nothing here touches a socket, a file or a
//! clock, and randomness comes from a seeded RNG, so tests (and a future
//! swarm simulator) can drive it deterministically.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::choker;
use crate::picker::{Bitfield, BlockRef, Picker, Received, Scope};
use crate::piecebuf::PieceBuf;
use crate::wire::{self, Handshake, Message, BLOCK_LEN, HANDSHAKE_LEN, MAX_REQUEST_LEN};

/// The driver's name for a connection.
pub type Token = usize;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(90);
/// A peer with requests outstanding that sends nothing for this long is
/// snubbing us: its requests go to other peers.
pub const SNUB_TIMEOUT: Duration = Duration::from_secs(15);
/// For this long after the first unchoke the request queue grows by one per
/// block received (slow start); afterwards it follows the measured rate.
const SLOW_START: Duration = Duration::from_secs(3);
/// Seconds of data at the measured rate kept on request from a peer.
const QUEUE_SECONDS: f64 = 3.0;
const MIN_QUEUE: usize = 4;
/// Incoming requests queued per peer before we reject (or disconnect):
/// room above the `reqq` we advertise (12 bytes each, 48 KiB per peer).
pub const MAX_QUEUED_REQUESTS: usize = 4096;
/// Upload: disk reads in flight per peer, and output bytes buffered.
const MAX_READS_PER_PEER: usize = 8;
const MAX_OUTPUT_BUFFERED: usize = 512 * 1024;
/// Largest single read for uploads (consecutive requests coalesced).
pub const MAX_READ: u32 = 256 * 1024;
/// Output a peer leaves unread before it is dropped.
const MAX_UNSENT: usize = 4 << 20;
/// Hash-failure strikes after which a peer is banned; a peer that alone
/// supplied a bad piece gets two strikes.
const BAN_STRIKES: u32 = 3;
/// Peer addresses remembered (connected, queued or waiting for a retry).
const MAX_KNOWN_PEERS: usize = 5000;
/// Retries of an outgoing connection that failed or dropped.
const MAX_CONNECT_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct Config {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub listen_port: u16,
    /// Client name sent in the BEP 10 handshake.
    pub client: String,
    pub max_peers: usize,
    /// Upper bound on memory for pieces being assembled, hashed or written.
    pub max_buffer_bytes: u64,
    pub upload_slots: usize,
    /// The request queue length we advertise (`reqq`).
    pub reqq: u32,
    /// Most requests we keep outstanding to one peer.
    pub max_outstanding: usize,
    /// Upload rate limit in bytes/s (None: unlimited).
    pub max_upload_rate: Option<u64>,
    pub seed: u64,
}

impl Config {
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        Config {
            info_hash,
            peer_id,
            listen_port: 0,
            client: format!("bt {}", env!("CARGO_PKG_VERSION")),
            max_peers: 50,
            max_buffer_bytes: 16 << 20,
            upload_slots: 4,
            // Transmission keeps at most `reqq` requests on one peer and
            // tops them up about once a second: 500 held it at 8.2 MB/s
            // from a bt-fetch seeder, 2000 lets it reach 32 MB/s.
            reqq: 2000,
            max_outstanding: 256,
            max_upload_rate: None,
            seed: 0,
        }
    }
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Action {
    Connect(SocketAddr),
    /// Close the connection (the session has already forgotten it).
    Close(Token),
    /// Hash the piece in `buf`; if it matches, write it; report back with
    /// [`Session::on_verified`].
    Verify {
        piece: u32,
        buf: PieceBuf,
    },
    /// Read a block for an upload; report with [`Session::on_read`].
    /// `blocks` are the lengths of the requests covered, in order, from
    /// `begin` (consecutive requests are read at once).
    Read {
        token: Token,
        uid: u64,
        piece: u32,
        begin: u32,
        length: u32,
        blocks: Vec<u32>,
    },
    Event(Event),
}

/// Things the user hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PeerConnected {
        addr: SocketAddr,
        client: String,
        peer_id: [u8; 20],
    },
    PeerDisconnected {
        addr: SocketAddr,
        reason: String,
        /// Payload bytes received from and sent to this peer.
        downloaded: u64,
        uploaded: u64,
    },
    PieceVerified {
        piece: u32,
    },
    HashFailed {
        piece: u32,
        peers: Vec<SocketAddr>,
    },
    Banned {
        addr: SocketAddr,
    },
    Complete,
}

/// An exponentially smoothed rate in bytes per second.
#[derive(Debug, Clone, Default)]
struct Rate {
    pending: u64,
    rate: f64,
}

impl Rate {
    fn add(&mut self, n: u64) {
        self.pending += n;
    }

    fn update(&mut self, seconds: f64) {
        let sample = self.pending as f64 / seconds.max(1e-3);
        self.rate = if self.rate == 0.0 {
            sample
        } else {
            0.6 * self.rate + 0.4 * sample
        };
        self.pending = 0;
    }
}

/// Bytes to send, drained by the driver from the front.
#[derive(Debug, Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` bytes were written to the socket.
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    block: BlockRef,
    sent: Instant,
}

struct Peer {
    uid: u64,
    addr: SocketAddr,
    outgoing: bool,
    /// For outgoing connections: the TCP connection is established.
    established: bool,
    connected_at: Instant,
    handshake: Option<Handshake>,
    /// The connected event was sent (deferred until the BEP 10 handshake
    /// so that it can carry the client name).
    announced: bool,
    client: Option<String>,
    inbuf: Vec<u8>,
    out: OutBuf,
    last_recv: Instant,
    last_send: Instant,
    have: Bitfield,
    reqq: usize,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    outstanding: Vec<Outstanding>,
    /// When we were first unchoked (slow start runs from then).
    first_unchoke: Option<Instant>,
    slow_start_queue: usize,
    last_block: Instant,
    snubbed: bool,
    allowed_fast: Vec<u32>,
    requests_in: VecDeque<(u32, u32, u32)>,
    reads_in_flight: usize,
    read_bytes_in_flight: usize,
    down: Rate,
    up: Rate,
    downloaded: u64,
    uploaded: u64,
}

impl Peer {
    /// Takes back every request outstanding to this peer: the picker may
    /// give the blocks to others, and the peer is told with cancels.
    fn withdraw_requests(&mut self, picker: &mut Picker) {
        for o in self.outstanding.drain(..) {
            picker.cancel_request(o.block);
            wire::encode(
                &Message::Cancel {
                    index: o.block.piece,
                    begin: o.block.begin(),
                    length: picker.block_len(o.block),
                },
                self.out.vec(),
            );
        }
    }

    fn fast(&self) -> bool {
        self.handshake.is_some_and(|h| h.fast())
    }

    fn send(&mut self, msg: &Message, now: Instant) {
        wire::encode(msg, self.out.vec());
        self.last_send = now;
    }

    fn queue_target(&self, now: Instant, cap: usize) -> usize {
        if self.snubbed {
            return 1;
        }
        let cap = cap.min(self.reqq).max(1);
        let in_slow_start = self
            .first_unchoke
            .is_none_or(|t| now.saturating_duration_since(t) < SLOW_START);
        let target = if in_slow_start {
            self.slow_start_queue
        } else {
            (self.down.rate * QUEUE_SECONDS / f64::from(BLOCK_LEN)) as usize
        };
        target.clamp(MIN_QUEUE.min(cap), cap)
    }
}

/// Nothing on request and no progress for this long turns the seed split
/// off for `SPLIT_PAUSE`.
const SPLIT_IDLE_GRACE: Duration = Duration::from_secs(2);
const SPLIT_PAUSE: Duration = Duration::from_secs(10);

/// Most leechers the seed split looks at (its cost is pieces × leechers
/// per piece started from a seed).
const MAX_SPLIT_PEERS: usize = 32;

struct SplitPeer {
    token: Token,
    /// Set for peers running this program, which follow the same split.
    key: Option<u64>,
    /// It unchokes us: what it has we can get from it.
    supplies: bool,
}

/// The seed split: every piece no leecher has yet is owned by the
/// cooperating leecher (this program, same peer id prefix) that scores
/// highest for it on a hash of its peer id and the piece index, the same
/// computation on every leecher. A leecher asks a seed only for its own
/// pieces and gets the others from their owners. Taking over others'
/// pieces early does not pay: an owner requests its pieces long before
/// the seed sends them (its queue holds seconds of data), so a helper
/// would only fetch them twice. Pieces a leecher already has are left to
/// it when it unchokes us or is one of ours.
struct SeedSplit {
    me: u64,
    leechers: Vec<SplitPeer>,
}

impl SeedSplit {
    /// Whether `piece` is not to be asked of the seed: another leecher
    /// owns it, or has it.
    fn leaves(&self, piece: usize, peers: &HashMap<Token, Peer>) -> bool {
        let mine = split_score(self.me, piece);
        self.leechers.iter().any(|l| {
            let Some(q) = peers.get(&l.token) else {
                return false;
            };
            if q.have.get(piece) {
                // From a peer that unchokes us now, or from one of ours,
                // which will (the choker rotates) or passes it on.
                l.supplies || l.key.is_some()
            } else {
                l.key.is_some_and(|key| split_score(key, piece) > mine)
            }
        })
    }
}

fn split_key(peer_id: &[u8; 20]) -> u64 {
    // FNV-1a: stable across builds and machines, unlike std's hasher.
    peer_id.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn split_score(key: u64, piece: usize) -> u64 {
    // splitmix64 of the key and the piece.
    let mut z = key ^ (piece as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Counters over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Payload bytes received and stored (not counting waste).
    pub downloaded: u64,
    pub uploaded: u64,
    /// Payload bytes received but thrown away (duplicates, unrequested,
    /// pieces that failed their hash).
    pub wasted: u64,
    pub hash_failures: u64,
}

pub struct Session {
    cfg: Config,
    picker: Picker,
    peers: HashMap<Token, Peer>,
    actions: VecDeque<Action>,
    rng: StdRng,
    next_uid: u64,
    candidates: VecDeque<SocketAddr>,
    /// Addresses connected, connecting or queued.
    known: HashSet<SocketAddr>,
    banned: HashSet<SocketAddr>,
    attempts: HashMap<SocketAddr, u32>,
    retry: Vec<(Instant, SocketAddr)>,
    strikes: HashMap<SocketAddr, u32>,
    /// Outgoing connections not yet established, by address.
    connecting: usize,
    totals: Totals,
    last_second: Option<Instant>,
    last_choke: Option<Instant>,
    last_optimistic: Option<Instant>,
    optimistic: Option<Token>,
    complete_reported: bool,
    /// Last time a block arrived or a peer announced a piece we want.
    last_progress: Option<Instant>,
    /// The seed split is off until then.
    unsplit_until: Option<Instant>,
    scratch: Vec<BlockRef>,
    /// Piece contributors, by peer uid, of pieces being verified.
    verifying: HashMap<u32, Vec<u64>>,
    uid_addr: HashMap<u64, SocketAddr>,
    /// Upload rate limit: bytes that may be read for uploads now.
    upload_allowance: f64,
    last_refill: Option<Instant>,
}

impl Session {
    pub fn new(cfg: Config, piece_length: u64, total: u64, pieces: usize) -> Self {
        let max_buffers = (cfg.max_buffer_bytes / piece_length.max(1)).max(2) as usize;
        let rng = StdRng::seed_from_u64(cfg.seed);
        Session {
            picker: Picker::new(piece_length, total, pieces, max_buffers),
            cfg,
            peers: HashMap::new(),
            actions: VecDeque::new(),
            rng,
            next_uid: 1,
            candidates: VecDeque::new(),
            known: HashSet::new(),
            banned: HashSet::new(),
            attempts: HashMap::new(),
            retry: Vec::new(),
            strikes: HashMap::new(),
            connecting: 0,
            totals: Totals::default(),
            last_second: None,
            last_choke: None,
            last_optimistic: None,
            optimistic: None,
            complete_reported: false,
            last_progress: None,
            unsplit_until: None,
            scratch: Vec::new(),
            verifying: HashMap::new(),
            uid_addr: HashMap::new(),
            upload_allowance: 0.0,
            last_refill: None,
        }
    }

    /// Marks a piece found good on disk before the start.
    pub fn set_have(&mut self, piece: usize) {
        self.picker.set_have(piece);
    }

    pub fn picker(&self) -> &Picker {
        &self.picker
    }

    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    pub fn peer_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.handshake.is_some())
            .count()
    }

    pub fn connection_count(&self) -> usize {
        self.peers.len()
    }

    /// Download and upload rates over all peers (bytes/s).
    pub fn rates(&self) -> (f64, f64) {
        self.peers
            .values()
            .fold((0.0, 0.0), |(d, u), p| (d + p.down.rate, u + p.up.rate))
    }

    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The bytes waiting to be sent to a peer.
    pub fn output(&mut self, token: Token) -> Option<&mut OutBuf> {
        self.peers.get_mut(&token).map(|p| &mut p.out)
    }

    /// Tokens of peers with bytes to send.
    pub fn tokens_with_output(&self, into: &mut Vec<Token>) {
        into.clear();
        into.extend(
            self.peers
                .iter()
                .filter(|(_, p)| !p.out.is_empty())
                .map(|(t, _)| *t),
        );
    }

    /// A peer address to try (from stdin, the command line or a tracker).
    pub fn add_candidate(&mut self, addr: SocketAddr) {
        // Bounded, whatever a tracker or stdin hands out.
        if self.known.len() >= MAX_KNOWN_PEERS
            || self.banned.contains(&addr)
            || !self.known.insert(addr)
        {
            return;
        }
        if addr.port() == 0 {
            return;
        }
        self.candidates.push_back(addr);
    }

    /// Whether `addr` may connect to us (not banned, room for it).
    pub fn accepts(&self, addr: &SocketAddr) -> bool {
        !self.banned.contains(addr) && self.peers.len() < self.cfg.max_peers
    }

    /// A connection was opened (outgoing: we asked to connect; the driver
    /// calls this when the socket exists, before it is established).
    pub fn on_connection(&mut self, token: Token, addr: SocketAddr, outgoing: bool, now: Instant) {
        let uid = self.next_uid;
        self.next_uid += 1;
        self.uid_addr.insert(uid, addr);
        let mut peer = Peer {
            uid,
            addr,
            outgoing,
            established: !outgoing,
            connected_at: now,
            handshake: None,
            announced: false,
            client: None,
            inbuf: Vec::new(),
            out: OutBuf::default(),
            last_recv: now,
            last_send: now,
            have: Bitfield::new(self.picker.piece_count()),
            reqq: self.cfg.max_outstanding,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            outstanding: Vec::new(),
            first_unchoke: None,
            slow_start_queue: MIN_QUEUE,
            last_block: now,
            snubbed: false,
            allowed_fast: Vec::new(),
            requests_in: VecDeque::new(),
            reads_in_flight: 0,
            read_bytes_in_flight: 0,
            down: Rate::default(),
            up: Rate::default(),
            downloaded: 0,
            uploaded: 0,
        };
        Handshake::ours(self.cfg.info_hash, self.cfg.peer_id).encode(peer.out.vec());
        if !outgoing {
            self.known.insert(addr);
        }
        self.peers.insert(token, peer);
    }

    /// An outgoing connection is established (or failed: call
    /// [`Session::on_closed`]).
    pub fn on_connected(&mut self, token: Token) {
        if let Some(p) = self.peers.get_mut(&token) {
            if p.outgoing && !p.established {
                p.established = true;
                self.connecting = self.connecting.saturating_sub(1);
            }
        }
    }

    /// A [`Action::Connect`] could not even start (no socket).
    pub fn on_connect_failed(&mut self, addr: SocketAddr, now: Instant) {
        self.connecting = self.connecting.saturating_sub(1);
        let tries = self.attempts.entry(addr).or_insert(0);
        *tries += 1;
        if *tries < MAX_CONNECT_ATTEMPTS {
            self.retry
                .push((now + Duration::from_secs(2u64 << (*tries).min(5)), addr));
        } else {
            self.known.remove(&addr);
        }
    }

    /// The connection closed or failed (the driver has dropped the socket).
    pub fn on_closed(&mut self, token: Token, reason: &str, now: Instant) {
        self.remove_peer(token, reason.to_string(), false, now);
    }

    /// Bytes arrived from a peer.
    pub fn on_data(&mut self, token: Token, mut data: &[u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        peer.last_recv = now;
        let mut pending = std::mem::take(&mut peer.inbuf);
        let max_len = self.max_message_len();
        // Complete a message split across reads, one at a time.
        while !pending.is_empty() {
            let need = if self.peers[&token].handshake.is_none() {
                HANDSHAKE_LEN
            } else {
                match wire::frame_len(&pending) {
                    Some(n) if n - 4 > max_len => {
                        let what = format!("message of {} bytes exceeds the limit", n - 4);
                        self.fail(token, what, now);
                        return;
                    }
                    Some(n) => n,
                    None => 4,
                }
            };
            if pending.len() < need {
                if data.is_empty() {
                    break;
                }
                let take = (need - pending.len()).min(data.len());
                pending.extend_from_slice(&data[..take]);
                data = &data[take..];
                continue;
            }
            match self.process(token, &pending, now) {
                Some(used) if used > 0 => {
                    pending.drain(..used);
                }
                Some(_) => break,
                None => return,
            }
        }
        if !self.peers.contains_key(&token) {
            return;
        }
        if pending.is_empty() {
            // Parse straight from the caller's buffer.
            let mut pos = 0;
            while pos < data.len() {
                match self.process(token, &data[pos..], now) {
                    Some(0) => break,
                    Some(used) => pos += used,
                    None => return,
                }
            }
            pending.extend_from_slice(&data[pos..]);
        }
        if let Some(peer) = self.peers.get_mut(&token) {
            peer.inbuf = pending;
            if peer.inbuf.capacity() > 4 * max_len {
                peer.inbuf.shrink_to(max_len);
            }
        }
        self.check_unsent(token, now);
    }

    fn max_message_len(&self) -> usize {
        let bitfield = self.picker.piece_count().div_ceil(8) + 1;
        (BLOCK_LEN as usize + 9)
            .max(bitfield)
            .max(wire::MAX_EXTENDED_LEN)
    }

    /// Handles the message (or handshake) at the start of `buf`. Returns the
    /// bytes used (0: incomplete), `None` when the peer was dropped.
    fn process(&mut self, token: Token, buf: &[u8], now: Instant) -> Option<usize> {
        let handshaken = self.peers.get(&token)?.handshake.is_some();
        if !handshaken {
            if buf.len() < HANDSHAKE_LEN {
                if buf.len() >= 20 && Handshake::parse_prefix_bad(buf) {
                    self.fail(token, "not a BitTorrent handshake".into(), now);
                    return None;
                }
                return Some(0);
            }
            match Handshake::parse(buf) {
                Ok(h) => {
                    self.on_handshake(token, h, now);
                    self.peers.get(&token)?;
                    return Some(HANDSHAKE_LEN);
                }
                Err(e) => {
                    self.fail(token, e.to_string(), now);
                    return None;
                }
            }
        }
        match wire::parse(buf, self.max_message_len()) {
            Ok(None) => Some(0),
            Ok(Some((msg, used))) => {
                self.on_message(token, msg, now);
                self.peers.get(&token)?;
                Some(used)
            }
            Err(e) => {
                self.fail(token, e.to_string(), now);
                None
            }
        }
    }

    fn on_handshake(&mut self, token: Token, h: Handshake, now: Instant) {
        if h.info_hash != self.cfg.info_hash {
            self.fail(
                token,
                format!("wrong info-hash {}", crate::hex::encode(&h.info_hash)),
                now,
            );
            return;
        }
        if h.peer_id == self.cfg.peer_id {
            let addr = self.peers[&token].addr;
            self.banned.insert(addr);
            self.remove_peer(token, "connected to ourselves".into(), true, now);
            return;
        }
        // A second connection to the same peer: keep the one opened by the
        // peer with the lower id (both ends decide alike).
        let me_lower = self.cfg.peer_id < h.peer_id;
        let dup = self
            .peers
            .iter()
            .find(|(t, p)| **t != token && p.handshake.is_some_and(|o| o.peer_id == h.peer_id))
            .map(|(t, p)| (*t, p.outgoing));
        let this_outgoing = self.peers[&token].outgoing;
        if let Some((other, other_outgoing)) = dup {
            let keep_outgoing = me_lower;
            if other_outgoing == keep_outgoing || this_outgoing != keep_outgoing {
                self.remove_peer(token, "duplicate connection".into(), true, now);
                return;
            }
            self.remove_peer(other, "duplicate connection".into(), true, now);
        }
        let have_bits = self.picker.have().clone();
        let ext_hs =
            wire::encode_ext_handshake(&self.cfg.client, self.cfg.listen_port, self.cfg.reqq);
        let peer = self.peers.get_mut(&token).expect("peer present");
        peer.handshake = Some(h);
        if h.extended() {
            peer.send(
                &Message::Extended {
                    id: wire::EXT_HANDSHAKE,
                    payload: &ext_hs,
                },
                now,
            );
        }
        if h.fast() && have_bits.is_full() {
            peer.send(&Message::HaveAll, now);
        } else if h.fast() && have_bits.count() == 0 {
            peer.send(&Message::HaveNone, now);
        } else if have_bits.count() > 0 {
            peer.send(&Message::Bitfield(have_bits.as_bytes()), now);
        }
        if !h.extended() {
            self.announce(token);
        }
    }

    fn announce(&mut self, token: Token) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if p.announced {
            return;
        }
        p.announced = true;
        let h = p.handshake.expect("handshaken");
        let client = p
            .client
            .clone()
            .unwrap_or_else(|| wire::client_from_peer_id(&h.peer_id));
        let ev = Event::PeerConnected {
            addr: p.addr,
            client,
            peer_id: h.peer_id,
        };
        self.actions.push_back(Action::Event(ev));
    }

    fn on_message(&mut self, token: Token, msg: Message, now: Instant) {
        let n = self.picker.piece_count();
        if !matches!(msg, Message::Extended { id: 0, .. }) {
            self.announce(token);
        }
        let fast = self.peers[&token].fast();
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::Suggest(_) => {}
            Message::Unknown { .. } => {}
            Message::Choke => {
                let p = self.peers.get_mut(&token).expect("peer");
                p.peer_choking = true;
                if !fast {
                    // Without the fast extension a choke drops our requests.
                    let gone: Vec<_> = p.outstanding.drain(..).collect();
                    for o in gone {
                        self.picker.cancel_request(o.block);
                    }
                }
            }
            Message::Unchoke => {
                let p = self.peers.get_mut(&token).expect("peer");
                p.peer_choking = false;
                p.first_unchoke.get_or_insert(now);
                p.last_block = now;
                self.fill_requests(token, now);
            }
            Message::Interested => {
                self.peers.get_mut(&token).expect("peer").peer_interested = true;
                self.maybe_unchoke_now(token, now);
            }
            Message::NotInterested => {
                self.peers.get_mut(&token).expect("peer").peer_interested = false;
            }
            Message::Have(i) => {
                if i as usize >= n {
                    self.fail(token, format!("have for piece {i} of {n}"), now);
                    return;
                }
                let p = self.peers.get_mut(&token).expect("peer");
                if p.have.set(i as usize) {
                    self.picker.add_have(i as usize);
                    if self.picker.wants(i as usize) {
                        self.last_progress = Some(now);
                        self.set_interested(token, true, now);
                        self.fill_requests(token, now);
                    }
                }
                self.check_both_seeds(token, now);
            }
            Message::Bitfield(bytes) => {
                // BEP 3 wants it first, but aria2 sends it after other
                // messages: accepted whenever it comes (it replaces).
                let Some(bits) = Bitfield::from_wire(bytes, n) else {
                    let what = format!(
                        "bitfield of {} bytes, expected {} for {n} pieces (or spare bits set)",
                        bytes.len(),
                        n.div_ceil(8)
                    );
                    self.fail(token, what, now);
                    return;
                };
                self.set_peer_bits(token, bits, now);
            }
            Message::HaveAll | Message::HaveNone => {
                if !fast {
                    self.fail(
                        token,
                        "have-all/none without the fast extension".into(),
                        now,
                    );
                    return;
                }
                let bits = if matches!(msg, Message::HaveAll) {
                    Bitfield::full(n)
                } else {
                    Bitfield::new(n)
                };
                self.set_peer_bits(token, bits, now);
            }
            Message::Request {
                index,
                begin,
                length,
            } => self.on_request(token, index, begin, length, now),
            Message::Cancel {
                index,
                begin,
                length,
            } => {
                let p = self.peers.get_mut(&token).expect("peer");
                p.requests_in.retain(|r| *r != (index, begin, length));
            }
            Message::Reject {
                index,
                begin,
                length: _,
            } => {
                if !fast {
                    self.fail(token, "reject without the fast extension".into(), now);
                    return;
                }
                let p = self.peers.get_mut(&token).expect("peer");
                if let Some(pos) = p
                    .outstanding
                    .iter()
                    .position(|o| o.block.piece == index && o.block.begin() == begin)
                {
                    let o = p.outstanding.remove(pos);
                    self.picker.cancel_request(o.block);
                }
            }
            Message::AllowedFast(i) => {
                let p = self.peers.get_mut(&token).expect("peer");
                if (i as usize) < n && p.allowed_fast.len() < 64 && !p.allowed_fast.contains(&i) {
                    p.allowed_fast.push(i);
                    self.fill_requests(token, now);
                }
            }
            Message::Piece { index, begin, data } => self.on_piece(token, index, begin, data, now),
            Message::Extended { id, payload } => {
                if id == wire::EXT_HANDSHAKE {
                    if let Some(ext) = wire::parse_ext_handshake(payload) {
                        let cap = self.cfg.max_outstanding;
                        let p = self.peers.get_mut(&token).expect("peer");
                        if let Some(q) = ext.reqq {
                            p.reqq = (q as usize).clamp(1, cap);
                        }
                        if let Some(c) = ext.client {
                            p.client = Some(c);
                        }
                        if let Some(port) = ext.listen_port {
                            let a = SocketAddr::new(p.addr.ip(), port);
                            self.known.insert(a);
                        }
                    }
                    self.announce(token);
                }
            }
        }
    }

    fn set_peer_bits(&mut self, token: Token, bits: Bitfield, now: Instant) {
        let old = std::mem::replace(
            &mut self.peers.get_mut(&token).expect("peer").have,
            Bitfield::new(0),
        );
        self.picker.remove_availability(&old);
        self.picker.add_availability(&bits);
        let interesting = self.picker.interesting(&bits);
        self.peers.get_mut(&token).expect("peer").have = bits;
        if !self.check_both_seeds(token, now) {
            self.set_interested(token, interesting, now);
        }
    }

    /// Two seeds have nothing to say to each other: disconnect.
    fn check_both_seeds(&mut self, token: Token, now: Instant) -> bool {
        let both =
            self.picker.is_complete() && self.peers.get(&token).is_some_and(|p| p.have.is_full());
        if both {
            self.remove_peer(token, "both complete".into(), true, now);
        }
        both
    }

    fn set_interested(&mut self, token: Token, yes: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if p.am_interested != yes {
            p.am_interested = yes;
            p.send(
                &if yes {
                    Message::Interested
                } else {
                    Message::NotInterested
                },
                now,
            );
        }
    }

    fn unchoked_count(&self) -> usize {
        self.peers.values().filter(|p| !p.am_choking).count()
    }

    fn maybe_unchoke_now(&mut self, token: Token, now: Instant) {
        // Free slots are filled at once rather than at the next round.
        if self.unchoked_count() < self.cfg.upload_slots + 1 {
            self.set_choke(token, false, now);
        }
    }

    fn set_choke(&mut self, token: Token, choke: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if p.am_choking == choke {
            return;
        }
        p.am_choking = choke;
        if choke {
            p.send(&Message::Choke, now);
            let fast = p.fast();
            let queued: Vec<_> = p.requests_in.drain(..).collect();
            if fast {
                for (index, begin, length) in queued {
                    p.send(
                        &Message::Reject {
                            index,
                            begin,
                            length,
                        },
                        now,
                    );
                }
            }
        } else {
            p.send(&Message::Unchoke, now);
        }
    }

    fn on_request(&mut self, token: Token, index: u32, begin: u32, length: u32, now: Instant) {
        let n = self.picker.piece_count();
        let valid = (index as usize) < n
            && (1..=MAX_REQUEST_LEN).contains(&length)
            && u64::from(begin) + u64::from(length) <= self.picker.piece_size(index as usize);
        if !valid {
            self.fail(
                token,
                format!("invalid request (piece {index}, offset {begin}, length {length})"),
                now,
            );
            return;
        }
        let have = self.picker.has(index as usize);
        let p = self.peers.get_mut(&token).expect("peer");
        let fast = p.fast();
        let refuse = p.am_choking || !have || p.requests_in.len() >= MAX_QUEUED_REQUESTS;
        if refuse {
            if fast {
                p.send(
                    &Message::Reject {
                        index,
                        begin,
                        length,
                    },
                    now,
                );
                return;
            }
            if !have {
                self.fail(
                    token,
                    format!("request for piece {index} we do not have"),
                    now,
                );
            } else if p.requests_in.len() >= MAX_QUEUED_REQUESTS {
                self.fail(token, "too many queued requests".into(), now);
            }
            // Requests while choked are ignored (BEP 3).
            return;
        }
        p.requests_in.push_back((index, begin, length));
        self.pump_uploads(token);
    }

    /// Issues disk reads for queued requests while the peer's output has
    /// room (bounded read-ahead).
    fn pump_uploads(&mut self, token: Token) {
        let limited = self.cfg.max_upload_rate.is_some();
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        while (!limited || self.upload_allowance > 0.0)
            && p.reads_in_flight < MAX_READS_PER_PEER
            && p.out.len() + p.read_bytes_in_flight <= MAX_OUTPUT_BUFFERED
        {
            let Some((piece, begin, length)) = p.requests_in.pop_front() else {
                break;
            };
            let mut blocks = vec![length];
            let mut total = length;
            while let Some(&(i, b, l)) = p.requests_in.front() {
                if i != piece || b != begin + total || total + l > MAX_READ {
                    break;
                }
                p.requests_in.pop_front();
                blocks.push(l);
                total += l;
            }
            p.reads_in_flight += 1;
            p.read_bytes_in_flight += total as usize;
            if limited {
                self.upload_allowance -= f64::from(total);
            }
            self.actions.push_back(Action::Read {
                token,
                uid: p.uid,
                piece,
                begin,
                length: total,
                blocks,
            });
        }
    }

    /// The driver wrote some of a peer's output: uploads may continue.
    pub fn on_sent(&mut self, token: Token) {
        self.pump_uploads(token);
    }

    /// Blocks read for an upload (an empty `data` means the read failed):
    /// `blocks` as in [`Action::Read`].
    #[allow(clippy::too_many_arguments)]
    pub fn on_read(
        &mut self,
        token: Token,
        uid: u64,
        piece: u32,
        begin: u32,
        data: &[u8],
        blocks: &[u32],
        now: Instant,
    ) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if p.uid != uid {
            return;
        }
        p.reads_in_flight = p.reads_in_flight.saturating_sub(1);
        let total: u32 = blocks.iter().sum();
        p.read_bytes_in_flight = p.read_bytes_in_flight.saturating_sub(total as usize);
        if data.len() != total as usize || p.am_choking {
            return;
        }
        let out = p.out.vec();
        let mut off = 0usize;
        for &len in blocks {
            let chunk = &data[off..off + len as usize];
            wire::piece_header(piece, begin + off as u32, len, out);
            out.extend_from_slice(chunk);
            off += len as usize;
        }
        p.last_send = now;
        p.uploaded += u64::from(total);
        p.up.add(u64::from(total));
        self.totals.uploaded += u64::from(total);
        self.pump_uploads(token);
    }

    fn on_piece(&mut self, token: Token, index: u32, begin: u32, data: &[u8], now: Instant) {
        let n = self.picker.piece_count();
        let len = data.len() as u64;
        let block = BlockRef {
            piece: index,
            block: begin / BLOCK_LEN,
        };
        let valid = (index as usize) < n
            && begin % BLOCK_LEN == 0
            && u64::from(begin) < self.picker.piece_size(index as usize)
            && len == u64::from(self.picker.block_len(block));
        if !valid {
            // Not a block we could have asked for.
            self.totals.wasted += len;
            self.fail(
                token,
                format!(
                    "sent a block we did not ask for (piece {index}, offset {begin}, {len} bytes)"
                ),
                now,
            );
            return;
        }
        let p = self.peers.get_mut(&token).expect("peer");
        let uid = p.uid;
        let was_requested = match p.outstanding.iter().position(|o| o.block == block) {
            Some(pos) => {
                p.outstanding.remove(pos);
                true
            }
            None => false,
        };
        p.last_block = now;
        p.snubbed = false;
        p.down.add(len);
        p.downloaded += len;
        if p.slow_start_queue < self.cfg.max_outstanding {
            p.slow_start_queue += 1;
        }
        match self.picker.received(block, data, uid) {
            Received::Wasted => {
                self.totals.wasted += len;
                if !was_requested {
                    log::debug!(
                        "{}: unrequested block {index}/{begin}",
                        self.peers[&token].addr
                    );
                }
            }
            Received::Stored {
                duplicates,
                complete,
            } => {
                self.totals.downloaded += len;
                self.last_progress = Some(now);
                if duplicates {
                    self.cancel_elsewhere(token, block, now);
                }
                if complete {
                    if let Some((buf, contributors)) = self.picker.take_complete(index) {
                        self.verifying.insert(index, contributors);
                        self.actions.push_back(Action::Verify { piece: index, buf });
                    }
                }
            }
        }
        self.fill_requests(token, now);
    }

    /// A block arrived: withdraw the duplicate requests other peers hold.
    fn cancel_elsewhere(&mut self, except: Token, block: BlockRef, now: Instant) {
        let len = self.picker.block_len(block);
        for (t, p) in self.peers.iter_mut() {
            if *t == except {
                continue;
            }
            if let Some(pos) = p.outstanding.iter().position(|o| o.block == block) {
                p.outstanding.remove(pos);
                self.picker.cancel_request(block);
                p.send(
                    &Message::Cancel {
                        index: block.piece,
                        begin: block.begin(),
                        length: len,
                    },
                    now,
                );
            }
        }
    }

    /// Tops up the requests outstanding to a peer.
    fn fill_requests(&mut self, token: Token, now: Instant) {
        let cap = self.cfg.max_outstanding;
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if !p.am_interested || p.handshake.is_none() {
            return;
        }
        let choked_only_fast = p.peer_choking;
        if choked_only_fast && p.allowed_fast.is_empty() {
            return;
        }
        let target = p.queue_target(now, cap);
        if p.outstanding.len() >= target {
            return;
        }
        // Top up in batches (an eighth of the queue) rather than one block
        // per block received: far fewer picker scans on fast links.
        let want = target - p.outstanding.len();
        if p.outstanding.len() > MIN_QUEUE && want < target / 8 {
            return;
        }
        // Out of the map while picking, so that the seed split below can
        // look at the other peers.
        let Some(mut p) = self.peers.remove(&token) else {
            return;
        };
        let mut picked = std::mem::take(&mut self.scratch);
        picked.clear();
        let split = if p.have.is_full() && !choked_only_fast {
            self.seed_split(&p, now)
        } else {
            None
        };
        let leave = split.as_ref().map(|s| {
            let peers = &self.peers;
            move |piece: usize| s.leaves(piece, peers)
        });
        let scope = Scope {
            only: choked_only_fast.then_some(p.allowed_fast.as_slice()),
            leave: leave.as_ref().map(|l| l as &dyn Fn(usize) -> bool),
        };
        let outstanding = &p.outstanding;
        self.picker.pick(
            &p.have,
            want,
            &mut self.rng,
            |b| outstanding.iter().any(|o| o.block == b),
            scope,
            &mut picked,
        );
        for b in &picked {
            let length = self.picker.block_len(*b);
            p.send(
                &Message::Request {
                    index: b.piece,
                    begin: b.begin(),
                    length,
                },
                now,
            );
            p.outstanding.push(Outstanding {
                block: *b,
                sent: now,
            });
        }
        self.peers.insert(token, p);
        self.scratch = picked;
    }

    /// How leechers running this program share out a seed's pieces, when
    /// asking `seed` (not in `self.peers` meanwhile) for more; `None` when
    /// no split applies. Without it, leechers that each pick the rarest
    /// pieces at random often fetch the same piece from the seed at the
    /// same time, and the seed's upload is the swarm's bottleneck.
    fn seed_split(&mut self, seed: &Peer, now: Instant) -> Option<SeedSplit> {
        // Waiting for pieces others fetch must not become a stall (an owner
        // the seed chokes, a holder that chokes us): when nothing is on
        // request and the swarm has shown no progress for a while (no
        // block received, no piece we want announced), ask the seed for
        // anything for a while. Idle alone is no sign: a leecher the seed
        // favours runs out of its own pieces long before the others.
        let busy =
            !seed.outstanding.is_empty() || self.peers.values().any(|q| !q.outstanding.is_empty());
        let last_progress = *self.last_progress.get_or_insert(now);
        if !busy
            && now.saturating_duration_since(last_progress) >= SPLIT_IDLE_GRACE
            && self.unsplit_until.is_none_or(|t| now >= t)
        {
            log::debug!(
                "no progress for {SPLIT_IDLE_GRACE:?}: asking seeds for any piece for {SPLIT_PAUSE:?}"
            );
            self.unsplit_until = Some(now + SPLIT_PAUSE);
        }
        if self.unsplit_until.is_some_and(|t| now < t) {
            return None;
        }
        let mut leechers = Vec::new();
        for (&t, q) in &self.peers {
            let Some(h) = q.handshake else { continue };
            if q.have.is_full() {
                continue;
            }
            let cooperates = wire::is_own_peer_id(&h.peer_id);
            let supplies = !q.peer_choking;
            if (cooperates || supplies) && leechers.len() < MAX_SPLIT_PEERS {
                leechers.push(SplitPeer {
                    token: t,
                    key: cooperates.then(|| split_key(&h.peer_id)),
                    supplies,
                });
            }
        }
        if leechers.is_empty() {
            return None;
        }
        Some(SeedSplit {
            me: split_key(&self.cfg.peer_id),
            leechers,
        })
    }

    /// A piece was hashed (and, when good, written). `buf` comes back.
    pub fn on_verified(&mut self, piece: u32, good: bool, buf: PieceBuf, now: Instant) {
        let size = self.picker.piece_size(piece as usize);
        self.picker.verified(piece, good, buf);
        let contributors = self.verifying.remove(&piece).unwrap_or_default();
        if good {
            self.actions
                .push_back(Action::Event(Event::PieceVerified { piece }));
            for p in self.peers.values_mut() {
                if p.handshake.is_some() && !p.have.get(piece as usize) {
                    p.send(&Message::Have(piece), now);
                }
            }
            let tokens: Vec<Token> = self.peers.keys().copied().collect();
            for t in tokens {
                self.check_unsent(t, now);
            }
            if self.picker.is_complete() && !self.complete_reported {
                self.complete_reported = true;
                self.actions.push_back(Action::Event(Event::Complete));
                let tokens: Vec<Token> = self.peers.keys().copied().collect();
                for t in tokens {
                    self.set_interested(t, false, now);
                    self.check_both_seeds(t, now);
                }
            }
        } else {
            self.totals.hash_failures += 1;
            self.totals.downloaded = self.totals.downloaded.saturating_sub(size);
            self.totals.wasted += size;
            let addrs: Vec<SocketAddr> = contributors
                .iter()
                .filter_map(|u| self.uid_addr.get(u).copied())
                .collect();
            self.actions.push_back(Action::Event(Event::HashFailed {
                piece,
                peers: addrs.clone(),
            }));
            let strike = if addrs.len() == 1 { 2 } else { 1 };
            for a in addrs {
                let s = self.strikes.entry(a).or_insert(0);
                *s += strike;
                if *s >= BAN_STRIKES && self.banned.insert(a) {
                    self.actions
                        .push_back(Action::Event(Event::Banned { addr: a }));
                    let victims: Vec<Token> = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.addr == a)
                        .map(|(t, _)| *t)
                        .collect();
                    for t in victims {
                        self.remove_peer(
                            t,
                            "sent data that failed the hash check".into(),
                            true,
                            now,
                        );
                    }
                }
            }
        }
        // Forget departed contributors no other piece refers to.
        for uid in contributors {
            let gone = !self.peers.values().any(|p| p.uid == uid);
            if gone
                && !self.picker.is_contributor(uid)
                && !self.verifying.values().any(|c| c.contains(&uid))
            {
                self.uid_addr.remove(&uid);
            }
        }
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }

    /// Tokens of all peers, those sending to us fastest first (so that in
    /// endgame the fast peers pick the blocks that were freed).
    fn tokens_fastest_first(&self) -> Vec<Token> {
        let mut v: Vec<(Token, f64)> = self.peers.iter().map(|(t, p)| (*t, p.down.rate)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().map(|(t, _)| t).collect()
    }

    /// A peer that does not read what we send (while sending us requests
    /// that we answer with rejects, say) would grow its output without
    /// bound: past a limit it is dropped.
    fn check_unsent(&mut self, token: Token, now: Instant) {
        if self
            .peers
            .get(&token)
            .is_some_and(|p| p.out.len() > MAX_UNSENT)
        {
            self.fail(token, "does not read what we send".into(), now);
        }
    }

    /// Drops a peer for a protocol violation.
    fn fail(&mut self, token: Token, what: String, now: Instant) {
        self.remove_peer(token, what, true, now);
    }

    fn remove_peer(&mut self, token: Token, reason: String, close: bool, now: Instant) {
        let Some(p) = self.peers.remove(&token) else {
            return;
        };
        if close {
            self.actions.push_back(Action::Close(token));
        }
        if p.outgoing && !p.established {
            self.connecting = self.connecting.saturating_sub(1);
        }
        for o in &p.outstanding {
            self.picker.cancel_request(o.block);
        }
        self.picker.remove_availability(&p.have);
        // Keep the address of a peer only while a piece it contributed to
        // may still fail its hash check (for banning).
        let referenced = self.picker.is_contributor(p.uid)
            || self.verifying.values().any(|c| c.contains(&p.uid));
        if !referenced {
            self.uid_addr.remove(&p.uid);
        }
        if self.optimistic == Some(token) {
            self.optimistic = None;
        }
        if let (Some(h), false) = (p.handshake, p.announced) {
            let client = p
                .client
                .clone()
                .unwrap_or_else(|| wire::client_from_peer_id(&h.peer_id));
            self.actions.push_back(Action::Event(Event::PeerConnected {
                addr: p.addr,
                client,
                peer_id: h.peer_id,
            }));
        }
        if p.handshake.is_some() {
            self.actions
                .push_back(Action::Event(Event::PeerDisconnected {
                    addr: p.addr,
                    reason: reason.clone(),
                    downloaded: p.downloaded,
                    uploaded: p.uploaded,
                }));
        } else {
            log::debug!("{}: {reason}", p.addr);
        }
        // Outgoing peers may be retried later (unless banned or pointless).
        if p.outgoing && !self.banned.contains(&p.addr) {
            let tries = self.attempts.entry(p.addr).or_insert(0);
            *tries += 1;
            let pointless = reason == "duplicate connection" || reason == "both complete";
            if *tries < MAX_CONNECT_ATTEMPTS && !pointless {
                let delay = Duration::from_secs(2u64 << (*tries).min(5));
                self.retry.push((now + delay, p.addr));
            } else if !pointless {
                self.known.remove(&p.addr);
            }
        } else if !p.outgoing {
            self.known.remove(&p.addr);
        }
        // Blocks freed: others can take them.
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }

    /// The clock: timeouts, rates, choking and new connections. Call it
    /// often (every 100 ms or so).
    pub fn tick(&mut self, now: Instant) {
        if let Some(rate) = self.cfg.max_upload_rate {
            let dt = self
                .last_refill
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.last_refill = Some(now);
            // At most a tenth of a second's worth accumulates.
            let rate = rate as f64;
            self.upload_allowance = (self.upload_allowance + rate * dt).min(rate / 10.0);
            let tokens: Vec<Token> = self.peers.keys().copied().collect();
            for t in tokens {
                self.pump_uploads(t);
            }
        }
        let second = self
            .last_second
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if second {
            let secs = self
                .last_second
                .map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.last_second = Some(now);
            self.every_second(now, secs);
        }
        // Retries that are due.
        let mut i = 0;
        while i < self.retry.len() {
            if self.retry[i].0 <= now {
                let (_, a) = self.retry.swap_remove(i);
                if !self.banned.contains(&a) {
                    self.candidates.push_back(a);
                }
            } else {
                i += 1;
            }
        }
        // New connections, a few per tick.
        let mut started = 0;
        // A bounded number of connection attempts in progress at once.
        while self.peers.len() < self.cfg.max_peers && started < 10 && self.connecting < 20 {
            let Some(a) = self.candidates.pop_front() else {
                break;
            };
            if self.banned.contains(&a) || self.peers.values().any(|p| p.addr == a) {
                continue;
            }
            self.actions.push_back(Action::Connect(a));
            started += 1;
            self.connecting += 1;
        }
    }

    fn every_second(&mut self, now: Instant, secs: f64) {
        let mut drop = Vec::new();
        let complete = self.picker.is_complete();
        for (t, p) in self.peers.iter_mut() {
            p.down.update(secs);
            p.up.update(secs);
            if p.handshake.is_none() {
                if now.saturating_duration_since(p.connected_at) > HANDSHAKE_TIMEOUT {
                    drop.push((*t, "no handshake in time".to_string()));
                }
                continue;
            }
            if now.saturating_duration_since(p.last_recv) > IDLE_TIMEOUT {
                drop.push((*t, "idle for too long".to_string()));
                continue;
            }
            if now.saturating_duration_since(p.last_send) > KEEPALIVE_INTERVAL {
                p.send(&Message::KeepAlive, now);
            }
            // Snubbing: requests unanswered for too long go elsewhere.
            if !p.outstanding.is_empty()
                && now.saturating_duration_since(p.last_block) > SNUB_TIMEOUT
                && p.outstanding
                    .iter()
                    .all(|o| now.saturating_duration_since(o.sent) > SNUB_TIMEOUT)
            {
                log::info!("{}: snubbed us, its requests go elsewhere", p.addr);
                p.snubbed = true;
                p.slow_start_queue = MIN_QUEUE;
                p.withdraw_requests(&mut self.picker);
            }
            // Interest can end as our pieces fill in.
            if p.am_interested && !complete && !self.picker.interesting(&p.have) {
                p.am_interested = false;
                p.send(&Message::NotInterested, now);
            }
        }
        for (t, why) in drop {
            self.remove_peer(t, why, true, now);
        }
        self.endgame_rebalance(now);
        let round = self
            .last_choke
            .is_none_or(|t| now.saturating_duration_since(t) >= choker::ROUND);
        if round {
            self.last_choke = Some(now);
            let rotate = self
                .last_optimistic
                .is_none_or(|t| now.saturating_duration_since(t) >= choker::OPTIMISTIC_ROUND);
            if rotate {
                self.last_optimistic = Some(now);
            }
            self.run_choker(rotate, now);
        }
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }

    /// In endgame, requests held by a peer much slower than the fastest
    /// are withdrawn from it so that faster peers get them.
    fn endgame_rebalance(&mut self, now: Instant) {
        if !self.picker.in_endgame() || self.picker.is_complete() {
            return;
        }
        let fastest = self
            .peers
            .values()
            .map(|p| p.down.rate)
            .fold(0.0f64, f64::max);
        if fastest <= 0.0 {
            return;
        }
        for p in self.peers.values_mut() {
            let slow = p.down.rate * 8.0 < fastest;
            let held_long = p
                .outstanding
                .first()
                .is_some_and(|o| now.saturating_duration_since(o.sent) > Duration::from_secs(2));
            if slow && held_long {
                p.withdraw_requests(&mut self.picker);
                p.slow_start_queue = MIN_QUEUE;
            }
        }
    }

    fn run_choker(&mut self, rotate: bool, now: Instant) {
        let seeding = self.picker.is_complete();
        let cands: Vec<choker::Candidate> = self
            .peers
            .iter()
            .filter(|(_, p)| p.handshake.is_some())
            .map(|(t, p)| choker::Candidate {
                id: *t,
                interested: p.peer_interested,
                rate: if seeding { p.up.rate } else { p.down.rate },
                snubbed: p.snubbed && !seeding,
                connected_at: p.connected_at,
            })
            .collect();
        let d = choker::choose(
            &cands,
            self.cfg.upload_slots,
            self.optimistic,
            rotate,
            now,
            &mut self.rng,
        );
        self.optimistic = d.optimistic;
        for c in &cands {
            let unchoke = d.unchoke.contains(&c.id);
            self.set_choke(c.id, !unchoke, now);
        }
    }

    /// Closes every connection (at exit), reporting each.
    pub fn shutdown(&mut self, now: Instant) {
        let tokens: Vec<Token> = self.peers.keys().copied().collect();
        for t in tokens {
            self.remove_peer(t, "shutting down".into(), true, now);
        }
        self.candidates.clear();
        self.retry.clear();
    }

    /// Per-peer figures for diagnostics: (address, downloaded, uploaded).
    pub fn peer_stats(&self) -> Vec<(SocketAddr, u64, u64)> {
        self.peers
            .values()
            .map(|p| (p.addr, p.downloaded, p.uploaded))
            .collect()
    }
}

impl Handshake {
    /// Whether a partial handshake already shows it is not BitTorrent.
    fn parse_prefix_bad(buf: &[u8]) -> bool {
        buf[0] != 19 || &buf[1..20] != wire::PROTOCOL
    }
}

#[cfg(test)]
mod tests;

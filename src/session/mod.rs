//! The torrent coordinator: a sans-IO state machine holding every peer
//! connection of one torrent, the picker, the choker, the upload
//! scheduler and the extensions.
//!
//! The driver (see `fetch`, or the simulator in `sim`) feeds it events — a
//! connection opened, bytes received, a connection closed, a piece
//! verified, a block read from disk, the clock — always with the current
//! time, and carries out the [`Action`]s it queues: connect, close,
//! verify-and-write a piece, read blocks for an upload. Bytes to send
//! accumulate in each peer's output buffer, which the driver drains into
//! the socket. [`Session::poll_timeout`] says when the session next needs
//! [`Session::tick`]. Nothing here touches a socket, a file or a clock,
//! randomness comes from a seeded RNG and peers live in ordered maps, so
//! the same inputs give the same outputs, byte for byte.
//!
//! The parts: `peer` (one connection: framing, handshake, flags, queues),
//! `download` (requests, blocks, verification), `serve` (choking and
//! answering requests), `upload` (read scheduling and rates),
//! `candidates` (addresses, retries, bans), `split` (the seed split) and
//! `extension` (BEP 10), `encryption` (MSE/PE before the BitTorrent
//! handshake), and `timers` (what the clock drives). `docs/DESIGN.md` walks through them.

mod candidates;
mod download;
pub mod encryption;
pub mod extension;
pub mod peer;
pub mod rate;
mod serve;
mod split;
mod timers;
pub mod upload;
pub mod webseed;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::choker::{self, Choker};
use crate::picker::{BlockRef, Picker};
use crate::piecebuf::PieceBuf;
use crate::wire::{self, Handshake, BLOCK_LEN};
use candidates::Candidates;
use peer::{Peer, PeerEvent};
use upload::Uploads;

pub use crate::peer_source::Origin;
pub use encryption::{Encryption, Opening};
pub use extension::{ExtContext, Extension};
pub use peer::{BlockRequest, CloseReason, Counters, OutBuf, OutPart, PeerState, Token};
pub use upload::{UploadRead, MAX_READ};
pub use webseed::{WebSeedEvent, WebSeedId, WebSeedRequest, WebSeedStats};

/// From accept (or TCP connect) to a complete BitTorrent handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An incoming connection that has sent nothing at all for this long is
/// closed: a real peer speaks first, at once.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(3);
/// Incoming connections not yet past the handshake, held apart from the
/// peer slots (`Config::max_peers`): when full, a new one replaces the
/// least advanced (fewest bytes received, then the oldest), so silent or
/// byte-by-byte connections cannot lock out real peers, whose handshake
/// (or MSE key) arrives with their first packet.
pub const MAX_HALF_OPEN: usize = 20;
/// A peer we upload to at least this fast is never evicted for a newcomer.
pub const GOOD_UPLOAD_RATE: f64 = 16.0 * 1024.0;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(90);
/// A peer with requests outstanding that sends nothing for this long is
/// snubbing us: its requests go to other peers.
pub const SNUB_TIMEOUT: Duration = Duration::from_secs(15);
/// Incoming requests queued per peer before we reject (or disconnect):
/// room above the `reqq` we advertise (12 bytes each, 48 KiB per peer).
pub const MAX_QUEUED_REQUESTS: usize = 4096;
/// Output a peer leaves unread before it is dropped.
const MAX_UNSENT: usize = 4 << 20;
/// Outgoing connections being established at once, and started per tick.
const MAX_CONNECTING: usize = 20;
const MAX_CONNECTS_PER_TICK: usize = 10;
/// How often the per-second work runs (rates, timeouts, keep-alives).
const SECOND: Duration = Duration::from_secs(1);

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
    /// Download rate limit in bytes/s from peers (None: unlimited), kept
    /// by pacing our block requests ([`rate::DownloadBucket`]).
    pub max_download_rate: Option<u64>,
    pub seed: u64,
    /// MSE/PE: what we accept and how we connect.
    pub encryption: Encryption,
    /// The UDP port of our DHT node (BEP 5): set, our handshake says we
    /// run one, peers that run one too get a `port` message, and the nodes
    /// peers advertise come back as [`Event::DhtNode`].
    pub dht_port: Option<u16>,
    /// Design choices turned off, for the ablation experiments only.
    pub ablation: Ablation,
    /// bt-sim only (honest simulated peers, a "disk" that answers every
    /// `Verify` good and every read with zeros): blocks received are not
    /// stored (the picker keeps block states, its piece buffers stay
    /// empty) and blocks sent are queued as counted runs of zeros, not
    /// bytes ([`OutBuf::push_zeros`]). Lengths, and so every decision, are
    /// as with real bytes; only the copies and the memory go.
    pub virtual_payload: bool,
    /// The seed split pauses when the leechers pass pieces on at less
    /// than this fraction of the seed's rate ([`split::SPLIT_MIN_PASSED_ON`],
    /// the default). Changed only to tune it (`bt-sim --x-split-threshold`).
    pub split_min_passed_on: f64,
}

/// Switches that turn a design choice off, for experiments that measure
/// what it is worth (`bt-fetch --x-…`, hidden from `--help`). All off by
/// default: the normal behaviour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ablation {
    /// New pieces at random instead of rarest first.
    pub random_pieces: bool,
    /// No endgame: never a block on request from two peers.
    pub no_endgame: bool,
    /// No seed split: every leecher asks a seed for any piece.
    pub no_seed_split: bool,
    /// Another cap on the requests outstanding to one peer than
    /// [`Config::max_outstanding`], to measure what the cap costs.
    pub max_requests: Option<usize>,
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
            // Transmission serves requests in rounds of about 500 ms: 256
            // held a bt-fetch leecher at 8.4 MB/s from it, 512 (its
            // `reqq`) let it reach 13 MB/s; on loopback from libtorrent
            // the two tie (docs/results/requests). A peer gets at most its
            // own `reqq`, and 250 until it says.
            max_outstanding: 512,
            max_upload_rate: None,
            max_download_rate: None,
            seed: 0,
            encryption: Encryption::Allow,
            dht_port: None,
            ablation: Ablation::default(),
            virtual_payload: false,
            split_min_passed_on: split::SPLIT_MIN_PASSED_ON,
        }
    }

    /// Our handshake: the fast extension, BEP 10, and the DHT (BEP 5) when
    /// we run a node.
    pub fn handshake(&self) -> Handshake {
        let mut h = Handshake::ours(self.info_hash, self.peer_id);
        if self.dht_port.is_some() {
            h.reserved[7] |= 0x01;
        }
        h
    }
}

/// Where the torrent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Only the info-hash is known; the info dictionary (and with it the
    /// piece geometry) is being fetched from peers (BEP 9, by the
    /// `ut_metadata` extension). The session has no pieces: it tells peers
    /// it has none, ignores their bitfields and haves, and is never
    /// complete. The driver replaces it with a full session once the info
    /// dictionary is verified.
    AwaitingMetadata,
    /// Pieces are missing.
    Downloading,
    /// Every piece is here; we only upload.
    Seeding,
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
    /// Read blocks for an upload; report with [`Session::on_read`].
    Read(UploadRead),
    Event(Event),
}

/// Things the user hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PeerConnected {
        addr: SocketAddr,
        client: String,
        peer_id: [u8; 20],
        source: Origin,
        /// How the stream is protected: `None` without MSE.
        encryption: Option<crate::mse::Method>,
    },
    PeerDisconnected {
        addr: SocketAddr,
        reason: CloseReason,
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
    /// An outgoing connection ended before its handshake (refused,
    /// unreachable, dropped): one per attempt, and attempts per address
    /// back off and end (see `candidates`), so these are bounded.
    ConnectFailed {
        addr: SocketAddr,
        error: String,
    },
    Complete,
    /// About a web seed (BEP 19).
    WebSeed(WebSeedEvent),
    /// A peer's DHT node (its address, the port from its BEP 5 `port`
    /// message); only with [`Config::dht_port`] set.
    DhtNode {
        addr: SocketAddr,
    },
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
    phase: Phase,
    picker: Picker,
    /// Live connections by token, in token order (never a hash map: the
    /// order peers are visited in decides who gets which block).
    peers: BTreeMap<Token, Peer>,
    actions: VecDeque<Action>,
    rng: StdRng,
    next_uid: u64,
    candidates: Candidates,
    /// Outgoing connections not yet established.
    connecting: usize,
    /// Peers that take one of the `max_peers` slots ([`Session::slots_used`]),
    /// counted as they come, establish and go: the clock asks often.
    slots: usize,
    /// Every peer with requests queued for upload, and maybe a few whose
    /// queue has emptied since (pruned at the next refill): the clock
    /// visits these rather than every peer.
    upload_queued: BTreeSet<Token>,
    totals: Totals,
    last_second: Option<Instant>,
    last_choke: Option<Instant>,
    last_optimistic: Option<Instant>,
    choker: Box<dyn Choker>,
    uploads: Uploads,
    /// Paces block requests under `Config::max_download_rate`.
    download_limit: Option<rate::DownloadBucket>,
    extensions: extension::Registry,
    /// Last time a block arrived or a peer announced a piece we want.
    last_progress: Option<Instant>,
    /// The seed split is off until then.
    unsplit_until: Option<Instant>,
    scratch: Vec<BlockRef>,
    /// The most blocks one peer may have on request while the peers we
    /// download from want more than piece memory holds (`None`: no
    /// limit); see `Session::share_piece_memory`.
    request_share: Option<usize>,
    /// Reused by `share_piece_memory`.
    demands: Vec<usize>,
    reads: Vec<UploadRead>,
    /// Piece contributors, by peer uid, of pieces being verified.
    verifying: BTreeMap<u32, Vec<u64>>,
    uid_addr: BTreeMap<u64, SocketAddr>,
    web_seeds: webseed::WebSeeds,
    /// Reused to decrypt reads handed over read-only ([`Session::on_data`]).
    decrypt_scratch: Vec<u8>,
    /// Why each connection ended, for tests (most are only logged).
    #[cfg(test)]
    closed_reasons: Vec<(Token, CloseReason)>,
}

impl Session {
    pub fn new(cfg: Config, piece_length: u64, total: u64, pieces: usize) -> Self {
        let max_buffers = (cfg.max_buffer_bytes / piece_length.max(1)).max(2) as usize;
        let rng = StdRng::seed_from_u64(cfg.seed);
        let mut picker = Picker::new(piece_length, total, pieces, max_buffers);
        picker.set_random_pieces(cfg.ablation.random_pieces);
        picker.set_endgame(!cfg.ablation.no_endgame);
        picker.set_discard_payload(cfg.virtual_payload);
        Session {
            picker,
            uploads: Uploads::new(cfg.max_upload_rate),
            download_limit: cfg.max_download_rate.map(rate::DownloadBucket::new),
            phase: if pieces == 0 {
                Phase::Seeding
            } else {
                Phase::Downloading
            },
            cfg,
            peers: BTreeMap::new(),
            slots: 0,
            upload_queued: BTreeSet::new(),
            actions: VecDeque::new(),
            rng,
            next_uid: 1,
            candidates: Candidates::default(),
            connecting: 0,
            totals: Totals::default(),
            last_second: None,
            last_choke: None,
            last_optimistic: None,
            choker: Box::new(choker::Classic::new()),
            extensions: extension::Registry::default(),
            last_progress: None,
            unsplit_until: None,
            scratch: Vec::new(),
            request_share: None,
            demands: Vec::new(),
            reads: Vec::new(),
            verifying: BTreeMap::new(),
            uid_addr: BTreeMap::new(),
            web_seeds: webseed::WebSeeds::default(),
            decrypt_scratch: Vec::new(),
            #[cfg(test)]
            closed_reasons: Vec::new(),
        }
    }

    /// A session for a magnet link: no pieces known until the metadata
    /// arrives ([`Phase::AwaitingMetadata`]).
    pub fn awaiting_metadata(cfg: Config) -> Self {
        let mut s = Session::new(cfg, wire::BLOCK_LEN as u64, 0, 0);
        s.phase = Phase::AwaitingMetadata;
        s
    }

    /// Every peer address known (connected, queued or to retry) and how we
    /// learnt of it: what a driver carries to the next session.
    pub fn known_peers(&self) -> Vec<(SocketAddr, Origin)> {
        self.candidates.known().collect()
    }

    /// Addresses banned (carried to the next session with
    /// [`Session::ban`]).
    pub fn banned_peers(&self) -> Vec<SocketAddr> {
        self.candidates.banned().collect()
    }

    /// Never connects to `addr` nor accepts it.
    pub fn ban(&mut self, addr: SocketAddr) {
        self.candidates.ban(addr);
    }

    /// Replaces the choker (the classic one by default).
    pub fn set_choker(&mut self, choker: Box<dyn Choker>) {
        self.choker = choker;
    }

    pub fn choker_name(&self) -> &'static str {
        self.choker.name()
    }

    /// Adds a BEP 10 extension (before any peer connects); false when its
    /// name is taken.
    pub fn register_extension(&mut self, ext: Box<dyn Extension>) -> bool {
        self.extensions.register(ext).is_some()
    }

    /// Marks a piece found good on disk before the start.
    pub fn set_have(&mut self, piece: usize) {
        self.picker.set_have(piece);
        if self.picker.is_complete() {
            self.phase = Phase::Seeding;
        }
    }

    /// Leaves a piece out of the download (`--select`; before any peer
    /// connects): never requested, not needed for completion.
    pub fn skip_piece(&mut self, piece: usize) {
        self.picker.skip(piece);
        if self.picker.is_complete() && self.phase == Phase::Downloading {
            self.phase = Phase::Seeding;
        }
    }

    /// Marks a piece we will keep only partly on disk (`--select`: it is
    /// shared with a file left out): once verified it is neither
    /// advertised nor served.
    pub fn keep_partly(&mut self, piece: usize) {
        self.picker.set_partly_kept(piece);
    }

    /// Starts new pieces in index order (`--sequential`).
    pub fn set_sequential(&mut self, on: bool) {
        self.picker.set_sequential(on);
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn picker(&self) -> &Picker {
        &self.picker
    }

    pub fn is_complete(&self) -> bool {
        self.phase != Phase::AwaitingMetadata && self.picker.is_complete()
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    pub fn peer_count(&self) -> usize {
        self.peers.values().filter(|p| p.is_established()).count()
    }

    pub fn connection_count(&self) -> usize {
        self.peers.len()
    }

    /// Download and upload rates over all peers (bytes/s).
    pub fn rates(&self) -> (f64, f64) {
        self.peers
            .values()
            .fold((0.0, 0.0), |(d, u), p| (d + p.down.get(), u + p.up.get()))
    }

    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The bytes waiting to be sent to a peer (encrypted, on an RC4
    /// connection, as they are handed out).
    pub fn output(&mut self, token: Token) -> Option<&mut OutBuf> {
        self.peers.get_mut(&token).map(|p| {
            p.out.seal();
            &mut p.out
        })
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

    /// Every peer with bytes to send, as (bytes waiting, token), sealed as
    /// [`Session::output`] seals them: one pass, for a driver that shares
    /// an uplink among them.
    pub fn output_lengths(&mut self, into: &mut Vec<(usize, Token)>) {
        into.clear();
        for (t, p) in self.peers.iter_mut() {
            if !p.out.is_empty() {
                p.out.seal();
                into.push((p.out.len(), *t));
            }
        }
    }

    /// A peer address to try, and how we learnt of it.
    pub fn add_candidate(&mut self, addr: SocketAddr, origin: Origin) {
        self.candidates.add(addr, origin);
    }

    /// Whether `addr` may connect to us (not banned). Room is made in
    /// [`Session::on_connection`] (the half-open budget) and at the
    /// handshake (the peer slots), so a full table never locks out a
    /// newcomer that could be more useful.
    pub fn accepts(&self, addr: &SocketAddr) -> bool {
        !self.candidates.is_banned(addr)
    }

    /// Peers that take one of the `max_peers` slots: every established
    /// peer and every outgoing connection (whose number in progress is
    /// bounded apart); incoming connections still in their handshake have
    /// their own budget ([`MAX_HALF_OPEN`]).
    fn slots_used(&self) -> usize {
        debug_assert_eq!(
            self.slots,
            self.peers.values().filter(|p| p.takes_slot()).count()
        );
        self.slots
    }

    /// Incoming connections not yet past the handshake, the least
    /// advanced first: fewest bytes received, then the oldest.
    fn half_open_incoming(&self) -> Vec<Token> {
        let mut v: Vec<(u64, Instant, Token)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.outgoing && !p.is_established())
            .map(|(t, p)| (p.received, p.connected_at, *t))
            .collect();
        v.sort();
        v.into_iter().map(|(_, _, t)| t).collect()
    }

    /// The established peer to close for a newcomer when every slot is
    /// taken, if any is expendable. Never one that sends us data, nor one
    /// we upload to at [`GOOD_UPLOAD_RATE`] or more. Among the rest: first
    /// those with no interest either way, then those that exchanged the
    /// fewest bytes with us, then the oldest (it had the longest chance to
    /// be useful).
    fn least_useful_peer(&self, except: Token) -> Option<Token> {
        self.peers
            .iter()
            .filter(|(t, p)| **t != except && p.is_established())
            .filter(|(_, p)| {
                let sends_us_data = p.down.get() > 0.0;
                let fed_by_us = !p.am_choking && p.up.get() >= GOOD_UPLOAD_RATE;
                !sends_us_data && !fed_by_us
            })
            .min_by_key(|(t, p)| {
                let interest = p.peer_interested || p.am_interested;
                let exchanged = p.counters.downloaded + p.counters.uploaded;
                (interest, exchanged, p.connected_at, **t)
            })
            .map(|(t, _)| *t)
    }

    /// A connection was opened (outgoing: we asked to connect; the driver
    /// calls this when the socket exists, before it is established).
    pub fn on_connection(&mut self, token: Token, addr: SocketAddr, outgoing: bool, now: Instant) {
        let uid = self.next_uid;
        self.next_uid += 1;
        self.uid_addr.insert(uid, addr);
        let peer = Peer::new(
            uid,
            addr,
            outgoing,
            self.picker.piece_count(),
            self.cfg.max_outstanding,
            now,
        );
        if !outgoing {
            self.candidates.note(addr, Origin::Incoming);
            // The half-open budget is full: the least advanced goes. A
            // real peer is past its handshake, or ahead in bytes, long
            // before MAX_HALF_OPEN newer connections arrive (the driver
            // accepts a few per pass and reads what they sent in the same
            // pass).
            let half_open = self.half_open_incoming();
            if half_open.len() >= MAX_HALF_OPEN {
                let excess = half_open.len() + 1 - MAX_HALF_OPEN;
                for t in half_open.into_iter().take(excess) {
                    self.remove_peer(t, CloseReason::Evicted, true, now);
                }
            }
        }
        self.slots += usize::from(peer.takes_slot());
        if let Some(old) = self.peers.insert(token, peer) {
            // A driver reusing a live token: the old peer is gone.
            self.slots -= usize::from(old.takes_slot());
        }
        // Outgoing, our opening waits in the output until the connection
        // is up. Incoming, we send nothing before the peer's first bytes
        // say whether it speaks plaintext or MSE.
        if outgoing {
            self.open_outgoing(token);
        }
    }

    /// An outgoing connection is established (or failed: call
    /// [`Session::on_closed`]).
    pub fn on_connected(&mut self, token: Token) {
        if let Some(p) = self.peers.get_mut(&token) {
            if p.on_established_tcp() {
                self.connecting = self.connecting.saturating_sub(1);
            }
        }
    }

    /// A [`Action::Connect`] could not even start (no socket).
    pub fn on_connect_failed(&mut self, addr: SocketAddr, why: String, now: Instant) {
        self.connecting = self.connecting.saturating_sub(1);
        let reason = CloseReason::ConnectFailed(why);
        self.actions.push_back(Action::Event(Event::ConnectFailed {
            addr,
            error: reason.to_string(),
        }));
        self.candidates.outgoing_ended(addr, &reason, now);
    }

    /// The connection closed or failed (the driver has dropped the socket).
    pub fn on_closed(&mut self, token: Token, reason: CloseReason, now: Instant) {
        self.remove_peer(token, reason, false, now);
    }

    /// Bytes arrived from a peer.
    pub fn on_data(&mut self, token: Token, data: &[u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        peer.last_recv = now;
        peer.received += data.len() as u64;
        if peer.mse.is_some() || peer.state == PeerState::Negotiating {
            self.on_negotiation_data(token, data, now);
        } else if let Some(decrypt) = &mut peer.decrypt {
            let mut clear = std::mem::take(&mut self.decrypt_scratch);
            clear.clear();
            clear.extend_from_slice(data);
            decrypt.apply(&mut clear);
            self.on_stream(token, &clear, now);
            self.decrypt_scratch = clear;
        } else {
            self.on_stream(token, data, now);
        }
    }

    /// Bytes arrived from a peer, in a buffer the session may overwrite:
    /// an RC4 connection decrypts them in place, without a copy.
    pub fn on_data_mut(&mut self, token: Token, data: &mut [u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        if peer.mse.is_some() || peer.state == PeerState::Negotiating {
            self.on_data(token, data, now);
            return;
        }
        peer.last_recv = now;
        peer.received += data.len() as u64;
        if let Some(decrypt) = &mut peer.decrypt {
            decrypt.apply(data);
        }
        self.on_stream(token, data, now);
    }

    /// Clear BitTorrent-stream bytes: handshake and message framing.
    fn on_stream(&mut self, token: Token, mut data: &[u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        let mut pending = std::mem::take(&mut peer.inbuf);
        let max_len = self.max_message_len();
        // Complete a frame split across reads, one at a time.
        while !pending.is_empty() {
            let need = match self.peers[&token].frame_need(&pending, max_len) {
                Ok(n) => n,
                Err(why) => {
                    self.fail(token, why, now);
                    return;
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

    /// Handles the frame at the start of `buf`. Returns the bytes used
    /// (0: incomplete), `None` when the peer was dropped.
    fn process(&mut self, token: Token, buf: &[u8], now: Instant) -> Option<usize> {
        let max_len = self.max_message_len();
        let decoded = self.peers.get_mut(&token)?.decode(buf, max_len, now);
        match decoded {
            Ok(None) => Some(0),
            Ok(Some((ev, used))) => {
                self.on_peer_event(token, ev, now);
                self.peers.get(&token)?;
                Some(used)
            }
            Err(why) => {
                self.fail(token, why, now);
                None
            }
        }
    }

    /// What a peer's message means for the torrent.
    fn on_peer_event(&mut self, token: Token, ev: PeerEvent, now: Instant) {
        if !matches!(ev, PeerEvent::Handshake(_) | PeerEvent::ExtHandshake(_)) {
            self.announce(token);
        }
        match ev {
            PeerEvent::Handled => {}
            PeerEvent::AllowedFast => self.fill_requests(token, now),
            PeerEvent::Handshake(h) => self.on_handshake(token, h, now),
            PeerEvent::Choked { dropped } => {
                for o in dropped {
                    self.picker.cancel_request(o.block);
                }
            }
            PeerEvent::Unchoked => self.fill_requests(token, now),
            PeerEvent::Interested => self.maybe_unchoke_now(token, now),
            PeerEvent::LeftSlot => self.fill_free_slot(now),
            PeerEvent::Have(i) => {
                self.picker.add_have(i as usize);
                if self.picker.wants(i as usize) {
                    self.last_progress = Some(now);
                    self.set_interested(token, true, now);
                    self.fill_requests(token, now);
                }
                self.check_both_seeds(token, now);
            }
            PeerEvent::Pieces(bits) => self.set_peer_bits(token, bits, now),
            PeerEvent::Request(r) => self.on_request(token, r, now),
            PeerEvent::Rejected(o) => self.picker.cancel_request(o.block),
            PeerEvent::Block { index, begin, data } => {
                self.on_piece(token, index, begin, data, now)
            }
            PeerEvent::ExtHandshake(ext) => {
                if let Some(p) = self.peers.get_mut(&token) {
                    p.ext_ids = self.extensions.peer_ids(&ext);
                    if let Some(port) = ext.listen_port {
                        // Its listen address is this connection: never
                        // dial it while the connection lasts.
                        let listen = SocketAddr::new(p.addr.ip(), port);
                        self.candidates.note_listen(p.addr, listen);
                    }
                }
                self.extensions_on_handshake(token, &ext, now);
                self.announce(token);
            }
            PeerEvent::Extended { id, payload } => self.on_extended(token, id, payload, now),
            PeerEvent::DhtPort(port) => {
                if let (Some(_), Some(p)) = (self.cfg.dht_port, self.peers.get(&token)) {
                    if port != 0 {
                        let addr = SocketAddr::new(p.addr.ip(), port);
                        self.actions
                            .push_back(Action::Event(Event::DhtNode { addr }));
                    }
                }
            }
        }
    }

    fn on_handshake(&mut self, token: Token, h: Handshake, now: Instant) {
        if h.info_hash != self.cfg.info_hash {
            self.fail(token, CloseReason::WrongInfoHash(h.info_hash), now);
            return;
        }
        if h.peer_id == self.cfg.peer_id {
            let addr = self.peers[&token].addr;
            self.candidates.ban(addr);
            self.remove_peer(token, CloseReason::ConnectedToSelf, true, now);
            return;
        }
        // A second connection to the same peer: keep the one opened by the
        // peer with the lower id (both ends decide alike).
        let me_lower = self.cfg.peer_id < h.peer_id;
        let dup = self
            .peers
            .iter()
            .find(|(t, p)| **t != token && p.handshake().is_some_and(|o| o.peer_id == h.peer_id))
            .map(|(t, p)| (*t, p.outgoing));
        let this_outgoing = self.peers[&token].outgoing;
        if let Some((other, other_outgoing)) = dup {
            let keep_outgoing = me_lower;
            if other_outgoing == keep_outgoing || this_outgoing != keep_outgoing {
                self.remove_peer(token, CloseReason::Duplicate, true, now);
                return;
            }
            self.remove_peer(other, CloseReason::Duplicate, true, now);
        }
        // An incoming peer past its handshake needs a peer slot: make room
        // by evicting the least useful established peer, or refuse it.
        if !this_outgoing && self.slots_used() >= self.cfg.max_peers {
            match self.least_useful_peer(token) {
                Some(victim) => self.remove_peer(victim, CloseReason::Evicted, true, now),
                None => {
                    self.remove_peer(token, CloseReason::TooManyPeers, true, now);
                    return;
                }
            }
        }
        let ext_hs = h.extended().then(|| {
            wire::encode_ext_handshake(
                &self.cfg.client,
                self.cfg.listen_port,
                self.cfg.reqq,
                &self.extensions.local_ids(),
                |d| self.extensions.handshake_fields(d),
            )
        });
        let have_bits = self.picker.servable();
        let peer = self.peers.get_mut(&token).expect("peer present");
        let had_slot = peer.takes_slot();
        peer.state = PeerState::Established(h);
        self.slots += usize::from(!had_slot);
        if let Some(payload) = &ext_hs {
            peer.send(
                &wire::Message::Extended {
                    id: wire::EXT_HANDSHAKE,
                    payload,
                },
                now,
            );
        }
        if self.phase == Phase::AwaitingMetadata {
            if h.fast() {
                peer.send(&wire::Message::HaveNone, now);
            }
        } else if h.fast() && have_bits.is_full() {
            peer.send(&wire::Message::HaveAll, now);
        } else if h.fast() && have_bits.count() == 0 {
            peer.send(&wire::Message::HaveNone, now);
        } else if have_bits.count() > 0 {
            peer.send(&wire::Message::Bitfield(have_bits.as_bytes()), now);
        }
        if let Some(port) = self.cfg.dht_port.filter(|_| h.dht()) {
            peer.send(&wire::Message::Port(port), now);
        }
        if !h.extended() {
            self.announce(token);
        }
    }

    /// Reports the peer as connected, once (deferred until its BEP 10
    /// handshake or first message so that the event names its client).
    fn announce(&mut self, token: Token) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        let Some(h) = p.handshake() else {
            return;
        };
        if p.announced {
            return;
        }
        p.announced = true;
        let ev = Event::PeerConnected {
            addr: p.addr,
            client: p.client_name(),
            peer_id: h.peer_id,
            source: self.candidates.origin(&p.addr).unwrap_or(Origin::Incoming),
            encryption: p.mse_method,
        };
        self.actions.push_back(Action::Event(ev));
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
            self.fail(token, CloseReason::Unread, now);
        }
    }

    /// Drops a peer for a protocol violation.
    fn fail(&mut self, token: Token, why: CloseReason, now: Instant) {
        self.remove_peer(token, why, true, now);
    }

    fn remove_peer(&mut self, token: Token, reason: CloseReason, close: bool, now: Instant) {
        // A peer that leaves before it was reported connected is reported
        // now, so that every disconnect has its connect.
        self.announce(token);
        let Some(p) = self.peers.remove(&token) else {
            return;
        };
        self.slots -= usize::from(p.takes_slot());
        self.upload_queued.remove(&token);
        #[cfg(test)]
        self.closed_reasons.push((token, reason.clone()));
        if close {
            self.actions.push_back(Action::Close(token));
        }
        if p.state == PeerState::Connecting {
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
        self.choker.peer_left(token);
        self.uploads.peer_left(token);
        if !p.am_choking && p.peer_interested {
            self.fill_free_slot(now);
        }
        for (_, e) in self.extensions.each() {
            e.on_peer_gone(token);
        }
        if p.handshake().is_some() {
            self.actions
                .push_back(Action::Event(Event::PeerDisconnected {
                    addr: p.addr,
                    reason: reason.clone(),
                    downloaded: p.counters.downloaded,
                    uploaded: p.counters.uploaded,
                }));
        } else {
            log::debug!("{}: {reason}", p.addr);
        }
        if p.outgoing {
            // Dropped during the handshake: the next attempt uses the
            // other opening (the first time at once). Back and forth, as
            // a peer may have dropped us for another reason (Transmission
            // resets connections while it checks its data, and with
            // "encryption tolerated" it refuses MSE).
            let switch = !p.is_established()
                && p.state != PeerState::Connecting
                && reason.suggests_other_opening()
                && self.cfg.encryption.switches_opening();
            let next = p.opening.other();
            let retried_at_once = switch && self.candidates.switch_opening(p.addr, next);
            if switch {
                log::debug!("{}: {reason}; next attempt: {next:?}", p.addr);
            }
            if !retried_at_once {
                if p.handshake().is_none() {
                    self.actions.push_back(Action::Event(Event::ConnectFailed {
                        addr: p.addr,
                        error: reason.to_string(),
                    }));
                }
                self.candidates.outgoing_ended(p.addr, &reason, now);
            }
        } else {
            self.candidates.incoming_ended(&p.addr);
        }
        // Blocks freed: others can take them.
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }

    /// Closes every connection (at exit), reporting each.
    pub fn shutdown(&mut self, now: Instant) {
        let tokens: Vec<Token> = self.peers.keys().copied().collect();
        for t in tokens {
            self.remove_peer(t, CloseReason::ShuttingDown, true, now);
        }
        self.candidates.clear_pending();
    }

    /// Per-peer figures for diagnostics: (address, downloaded, uploaded).
    pub fn peer_stats(&self) -> Vec<(SocketAddr, u64, u64)> {
        self.peers
            .values()
            .map(|p| (p.addr, p.counters.downloaded, p.counters.uploaded))
            .collect()
    }

    /// The length of every table that holds something per peer or per
    /// address (`len:…`), and the capacity of the buffers reused from call
    /// to call (`cap:…`, memory that stays once grown), by name: what a
    /// leak check compares after peers came and went.
    #[cfg(test)]
    pub(crate) fn table_sizes(&self) -> BTreeMap<&'static str, usize> {
        let mut t = BTreeMap::new();
        t.insert("peers", self.peers.len());
        t.insert("upload_queued", self.upload_queued.len());
        t.insert("verifying", self.verifying.len());
        t.insert("uid_addr", self.uid_addr.len());
        t.insert("actions", self.actions.len());
        t.insert("uploads.per_peer", self.uploads.rated_peers());
        self.candidates.table_sizes(&mut t);
        for e in self.extensions.each_ref() {
            e.table_sizes(&mut t);
        }
        t.insert("cap:actions", self.actions.capacity());
        t.insert("cap:reads", self.reads.capacity());
        t.insert("cap:scratch", self.scratch.capacity());
        t.insert("cap:decrypt_scratch", self.decrypt_scratch.capacity());
        t
    }

    /// Whether we unchoke the peer behind `token` now.
    pub fn unchokes(&self, token: Token) -> bool {
        self.peers.get(&token).is_some_and(|p| !p.am_choking)
    }
}

#[cfg(test)]
mod tests;

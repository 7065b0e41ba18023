//! One peer connection as a state machine: its life cycle
//! (connecting → negotiating encryption → handshaking → established), the
//! encryption and framing of its byte stream, the choke and interest flags
//! of both sides, the requests in flight in each direction, its rates, and
//! what it owes us to send.
//!
//! It validates what the peer says against the protocol (message lengths,
//! piece indexes, fast-extension rules) and turns each message into a
//! [`PeerEvent`] for the torrent, which owns everything shared between
//! peers (the picker, the choker, the upload budget). Errors are
//! [`CloseReason`]s: the torrent closes the connection, never by comparing
//! strings.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::encryption::Opening;
use crate::mse::{self, rc4::Rc4};
use crate::picker::{Bitfield, BlockRef, Picker};
use crate::wire::{self, Handshake, Message, BLOCK_LEN, HANDSHAKE_LEN};

/// The driver's name for a connection.
pub type Token = usize;

/// For this long after the first unchoke the request queue grows by one per
/// block received (slow start); afterwards it follows the measured rate.
const SLOW_START: Duration = Duration::from_secs(3);
/// Seconds of data at the measured rate kept on request from a peer.
const QUEUE_SECONDS: f64 = 3.0;
pub(super) const MIN_QUEUE: usize = 4;
/// Requests a peer is assumed to hold when it does not advertise `reqq`.
pub(super) const UNADVERTISED_REQQ: usize = 250;
/// Allowed-fast pieces remembered per peer (BEP 6 suggests about 10).
const MAX_ALLOWED_FAST: usize = 64;

/// Where a connection is in its life. A connection leaves the table when
/// it closes (with a [`CloseReason`]); there is no lingering closed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Outgoing: the TCP connection is not established yet.
    Connecting,
    /// Connected, before the BitTorrent handshake: the MSE handshake runs
    /// (either direction), or, incoming, the peer's first bytes have not
    /// told plaintext from MSE yet (we send nothing until they do).
    Negotiating,
    /// Connected; our handshake is queued, the peer's not yet read.
    Handshaking,
    /// Both handshakes exchanged: messages flow.
    Established(Handshake),
}

/// Why a connection ended. Its `Display` is the text users see (logs and
/// the `reason` of `peer_disconnected` events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The TCP connection could not be made.
    ConnectFailed(String),
    /// The peer closed the connection.
    ClosedByPeer,
    /// A socket error while reading or writing.
    Transport(String),
    NoHandshake,
    Idle,
    NotBitTorrent,
    /// The MSE handshake failed (hostile or broken input, no common
    /// crypto method, an info-hash we do not serve).
    Mse(mse::MseError),
    /// A plaintext BitTorrent handshake while we require encryption.
    PlaintextRefused,
    /// An MSE handshake while encryption is disabled.
    EncryptionRefused,
    WrongInfoHash([u8; 20]),
    ConnectedToSelf,
    /// A second connection to a peer we are already connected to.
    Duplicate,
    /// Both sides have everything.
    BothComplete,
    /// A message that breaks the protocol (what, in words).
    Protocol(String),
    /// Its data failed hash checks too often.
    Banned,
    /// It does not read what we send.
    Unread,
    /// Closed to make room: the oldest connection still in its handshake
    /// when the half-open budget is full, or the least useful established
    /// peer when every peer slot is taken.
    Evicted,
    /// Every peer slot is taken by peers too useful to evict.
    TooManyPeers,
    ShuttingDown,
}

impl CloseReason {
    /// Whether reconnecting to the peer later is pointless.
    pub fn final_for_address(&self) -> bool {
        matches!(self, CloseReason::Duplicate | CloseReason::BothComplete)
    }

    /// Whether an outgoing connection that ended this way before its
    /// BitTorrent handshake completed may work with the other opening
    /// (plaintext instead of MSE, or the reverse): the peer hung up, went
    /// silent, or answered with something our opening did not expect.
    pub fn suggests_other_opening(&self) -> bool {
        matches!(
            self,
            CloseReason::ClosedByPeer
                | CloseReason::Transport(_)
                | CloseReason::NoHandshake
                | CloseReason::NotBitTorrent
                | CloseReason::Mse(_)
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ConnectFailed(e) if e.is_empty() => write!(f, "cannot connect"),
            CloseReason::ConnectFailed(e) => write!(f, "cannot connect: {e}"),
            CloseReason::ClosedByPeer => write!(f, "connection closed by the peer"),
            CloseReason::Transport(e) => write!(f, "{e}"),
            CloseReason::NoHandshake => write!(f, "no handshake in time"),
            CloseReason::Idle => write!(f, "idle for too long"),
            CloseReason::NotBitTorrent => write!(f, "not a BitTorrent handshake"),
            CloseReason::Mse(e) => write!(f, "encryption handshake failed: {e}"),
            CloseReason::PlaintextRefused => {
                write!(f, "plaintext handshake refused (encryption required)")
            }
            CloseReason::EncryptionRefused => {
                write!(f, "encrypted handshake refused (encryption disabled)")
            }
            CloseReason::WrongInfoHash(h) => write!(f, "wrong info-hash {}", crate::hex::encode(h)),
            CloseReason::ConnectedToSelf => write!(f, "connected to ourselves"),
            CloseReason::Duplicate => write!(f, "duplicate connection"),
            CloseReason::BothComplete => write!(f, "both complete"),
            CloseReason::Protocol(what) => write!(f, "{what}"),
            CloseReason::Banned => write!(f, "sent data that failed the hash check"),
            CloseReason::Unread => write!(f, "does not read what we send"),
            CloseReason::Evicted => write!(f, "evicted to make room for another peer"),
            CloseReason::TooManyPeers => write!(f, "too many peers"),
            CloseReason::ShuttingDown => write!(f, "shutting down"),
        }
    }
}

/// What a message from the peer means for the torrent, once the peer's own
/// state is updated.
#[derive(Debug)]
pub enum PeerEvent<'a> {
    /// Nothing more to do (keep-alive, cancel, not-interested, a repeated
    /// have, a message we ignore).
    Handled,
    /// The peer's handshake (checked by the torrent: info-hash, self,
    /// duplicates).
    Handshake(Handshake),
    /// It choked us; without the fast extension our requests are void.
    Choked {
        dropped: Vec<Outstanding>,
    },
    Unchoked,
    Interested,
    /// An interested peer we unchoked is no longer interested: its upload
    /// slot is free.
    LeftSlot,
    /// It has a piece it did not have before.
    Have(u32),
    /// Its whole piece set (bitfield, have-all or have-none), replacing
    /// what we knew.
    Pieces(Bitfield),
    Request(BlockRequest),
    /// It will not send a block we asked for.
    Rejected(Outstanding),
    AllowedFast,
    Block {
        index: u32,
        begin: u32,
        data: &'a [u8],
    },
    /// Its BEP 10 handshake (already applied to the peer's own fields).
    ExtHandshake(wire::ExtHandshake),
    /// A BEP 10 message for one of our extensions (by our local id).
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    /// BEP 5 `port`: the UDP port of the peer's DHT node.
    DhtPort(u16),
}

/// An exponentially smoothed rate in bytes per second.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    pending: u64,
    rate: f64,
}

impl Rate {
    pub fn add(&mut self, n: u64) {
        self.pending += n;
    }

    pub fn update(&mut self, seconds: f64) {
        let sample = self.pending as f64 / seconds.max(1e-3);
        self.rate = if self.rate == 0.0 {
            sample
        } else {
            0.6 * self.rate + 0.4 * sample
        };
        self.pending = 0;
    }

    pub fn get(&self) -> f64 {
        self.rate
    }
}

/// Bytes to send, drained by the driver from the front.
///
/// On an RC4 connection the session appends clear bytes and the buffer
/// encrypts them once, in place, when they are handed to the driver
/// ([`OutBuf::seal`] from `Session::output`): `sealed` marks where the
/// encrypted bytes end, so no byte is encrypted twice or sent clear.
///
/// For bt-sim only (`Config::virtual_payload`), a block's payload can be
/// queued as a run of zeros that is counted but not stored
/// ([`OutBuf::push_zeros`]); the simulator reads such a buffer with
/// [`OutBuf::parts`]. Without runs (always, in bt-fetch) it is one
/// `Vec<u8>` and [`OutBuf::pending`] gives the bytes.
#[derive(Debug, Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
    cipher: Option<Box<Rc4>>,
    /// `buf[..sealed]` is ready to send (only tracked with a cipher).
    sealed: usize,
    /// Runs of zeros not stored: (offset in `buf` they come before,
    /// bytes), in stream order; the front one may be partly sent.
    zero_runs: VecDeque<(usize, usize)>,
    /// Unsent bytes in `zero_runs`.
    zero_bytes: usize,
}

/// A piece of an [`OutBuf`]'s unsent stream, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutPart<'a> {
    Bytes(&'a [u8]),
    Zeros(usize),
}

impl OutBuf {
    /// The bytes to send (sealed: `Session::output` hands the buffer out).
    /// Not for a buffer holding runs of zeros (bt-sim's): see
    /// [`OutBuf::parts`].
    pub fn pending(&self) -> &[u8] {
        debug_assert!(self.cipher.is_none() || self.sealed == self.buf.len());
        debug_assert!(self.zero_runs.is_empty(), "a virtual payload has no bytes");
        &self.buf[self.pos..]
    }

    /// The unsent stream as stored bytes and runs of zeros, in order.
    pub fn parts(&self, mut each: impl FnMut(OutPart<'_>)) {
        let mut pos = self.pos;
        for &(at, len) in &self.zero_runs {
            if at > pos {
                each(OutPart::Bytes(&self.buf[pos..at]));
                pos = at;
            }
            each(OutPart::Zeros(len));
        }
        if pos < self.buf.len() {
            each(OutPart::Bytes(&self.buf[pos..]));
        }
    }

    /// Queues `n` zero bytes without storing them (bt-sim's payload).
    pub(super) fn push_zeros(&mut self, n: usize) {
        debug_assert!(
            self.cipher.is_none(),
            "virtual payload is sent in the clear"
        );
        if n == 0 {
            return;
        }
        let at = self.buf.len();
        match self.zero_runs.back_mut() {
            Some(run) if run.0 == at => run.1 += n,
            _ => self.zero_runs.push_back((at, n)),
        }
        self.zero_bytes += n;
    }

    /// Encrypts what was appended since the last call.
    pub(super) fn seal(&mut self) {
        if let Some(c) = &mut self.cipher {
            c.apply(&mut self.buf[self.sealed..]);
            self.sealed = self.buf.len();
        }
    }

    /// From now on, bytes appended are encrypted; those already queued
    /// (the MSE handshake's own messages) go as they are.
    pub(super) fn encrypt_from_here(&mut self, cipher: Box<Rc4>) {
        self.sealed = self.buf.len();
        self.cipher = Some(cipher);
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.pos + self.zero_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` bytes were written to the socket.
    pub fn consume(&mut self, mut n: usize) {
        if self.zero_runs.is_empty() {
            self.pos += n;
        } else {
            while n > 0 {
                let Some(run) = self.zero_runs.front_mut() else {
                    self.pos += n;
                    break;
                };
                if self.pos < run.0 {
                    let k = n.min(run.0 - self.pos);
                    self.pos += k;
                    n -= k;
                    continue;
                }
                let k = n.min(run.1);
                run.1 -= k;
                self.zero_bytes -= k;
                n -= k;
                if run.1 == 0 {
                    self.zero_runs.pop_front();
                }
            }
        }
        if self.pos == self.buf.len() {
            // Runs left all sit at the end.
            self.zero_runs.iter_mut().for_each(|r| r.0 = 0);
            self.buf.clear();
            self.pos = 0;
            self.sealed = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.sealed = self.sealed.saturating_sub(self.pos);
            let pos = self.pos;
            self.zero_runs.iter_mut().for_each(|r| r.0 -= pos);
            self.pos = 0;
        }
    }

    pub(super) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

/// A block we asked the peer for.
#[derive(Debug, Clone, Copy)]
pub struct Outstanding {
    pub block: BlockRef,
    pub sent: Instant,
}

/// A request the peer made of us, queued until a disk read serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRequest {
    pub piece: u32,
    pub begin: u32,
    pub length: u32,
}

/// Byte counters of one peer: the current choke round and before it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Payload bytes received from / sent to the peer, in total.
    pub downloaded: u64,
    pub uploaded: u64,
    /// The same since the current choke round began.
    pub round_downloaded: u64,
    pub round_uploaded: u64,
    /// Pieces the peer announced (have) in the current round.
    pub round_haves: u32,
}

pub struct Peer {
    /// Unique over the session's life (tokens are reused by the driver).
    pub uid: u64,
    pub addr: SocketAddr,
    pub outgoing: bool,
    pub state: PeerState,
    pub connected_at: Instant,
    /// The connected event was sent (deferred until the BEP 10 handshake
    /// so that it can carry the client name).
    pub announced: bool,
    pub client: Option<String>,
    /// A partial frame carried over between reads (and, incoming, the
    /// first bytes until they tell plaintext from MSE).
    pub inbuf: Vec<u8>,
    /// How the connection opened: outgoing, what we sent first; incoming,
    /// what the peer sent (known once its first bytes are read).
    pub opening: Opening,
    /// The MSE handshake while it runs.
    pub(super) mse: Option<Box<mse::Handshake>>,
    /// Decrypts everything read after an MSE handshake that chose RC4.
    pub(super) decrypt: Option<Box<Rc4>>,
    /// The crypto method of an MSE connection (None: plaintext BitTorrent).
    pub mse_method: Option<mse::Method>,
    pub out: OutBuf,
    pub last_recv: Instant,
    /// Bytes read from the connection, handshakes included: among
    /// connections still in their handshake, the one with the fewest is
    /// the least advanced.
    pub received: u64,
    /// Last message other than a keep-alive: keep-alives alone do not
    /// keep an otherwise useless connection open.
    pub last_message: Instant,
    pub last_send: Instant,
    pub have: Bitfield,
    /// Most requests it wants queued on it (its `reqq`, capped by ours).
    pub reqq: usize,
    /// Our own cap on requests outstanding to one peer.
    reqq_cap: usize,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub outstanding: Vec<Outstanding>,
    /// When we were first unchoked (slow start runs from then).
    pub first_unchoke: Option<Instant>,
    pub slow_start_queue: usize,
    pub last_block: Instant,
    pub snubbed: bool,
    pub allowed_fast: Vec<u32>,
    pub requests_in: VecDeque<BlockRequest>,
    pub reads_in_flight: usize,
    pub read_bytes_in_flight: usize,
    pub down: Rate,
    pub up: Rate,
    pub counters: Counters,
    /// The peer's ids for our extensions (by extension index), from its
    /// BEP 10 handshake; 0 where it does not support one.
    pub ext_ids: Vec<u8>,
}

impl Peer {
    pub fn new(
        uid: u64,
        addr: SocketAddr,
        outgoing: bool,
        pieces: usize,
        reqq: usize,
        now: Instant,
    ) -> Peer {
        Peer {
            uid,
            addr,
            outgoing,
            state: if outgoing {
                PeerState::Connecting
            } else {
                PeerState::Negotiating
            },
            connected_at: now,
            announced: false,
            client: None,
            inbuf: Vec::new(),
            opening: Opening::Plaintext,
            mse: None,
            decrypt: None,
            mse_method: None,
            out: OutBuf::default(),
            last_recv: now,
            received: 0,
            last_message: now,
            last_send: now,
            have: Bitfield::new(pieces),
            // Until its BEP 10 handshake says otherwise, a peer takes what
            // BEP 10 names as the usual default (libtorrent's 250): more
            // could be dropped by a peer that never advertises `reqq`.
            reqq: reqq.min(UNADVERTISED_REQQ),
            reqq_cap: reqq,
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
            counters: Counters::default(),
            ext_ids: Vec::new(),
        }
    }

    pub fn handshake(&self) -> Option<Handshake> {
        match self.state {
            PeerState::Established(h) => Some(h),
            _ => None,
        }
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, PeerState::Established(_))
    }

    /// Whether we can ask it for blocks: it has something we want and
    /// lets us ask (unchoked, or allowed-fast pieces).
    pub fn is_downloading(&self) -> bool {
        self.is_established()
            && self.am_interested
            && (!self.peer_choking || !self.allowed_fast.is_empty())
    }

    /// Whether it takes one of the session's `max_peers` slots: every
    /// outgoing connection, and incoming ones past the handshake.
    pub fn takes_slot(&self) -> bool {
        self.outgoing || self.is_established()
    }

    pub fn fast(&self) -> bool {
        self.handshake().is_some_and(|h| h.fast())
    }

    /// The client name to show: from its BEP 10 handshake, else its peer id.
    pub fn client_name(&self) -> String {
        match (&self.client, self.handshake()) {
            (Some(c), _) => c.clone(),
            (None, Some(h)) => wire::client_from_peer_id(&h.peer_id),
            (None, None) => String::new(),
        }
    }

    /// The outgoing TCP connection is up.
    pub fn on_established_tcp(&mut self) -> bool {
        if self.state == PeerState::Connecting {
            self.state = if self.mse.is_some() {
                PeerState::Negotiating
            } else {
                PeerState::Handshaking
            };
            return true;
        }
        false
    }

    pub fn send(&mut self, msg: &Message, now: Instant) {
        wire::encode(msg, self.out.vec());
        self.last_send = now;
    }

    /// Tells the peer (fast extension) we will not serve a request.
    pub fn reject(&mut self, r: BlockRequest, now: Instant) {
        let msg = Message::Reject {
            index: r.piece,
            begin: r.begin,
            length: r.length,
        };
        self.send(&msg, now);
    }

    /// Payload bytes sent (a piece message) through a raw write.
    pub fn count_upload(&mut self, n: u64, now: Instant) {
        self.last_send = now;
        self.counters.uploaded += n;
        self.counters.round_uploaded += n;
        self.up.add(n);
    }

    /// Takes back every request outstanding to this peer: the picker may
    /// give the blocks to others, and the peer is told with cancels.
    pub fn withdraw_requests(&mut self, picker: &mut Picker) {
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

    /// How many requests to keep outstanding to it now.
    pub fn queue_target(&self, now: Instant, cap: usize) -> usize {
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
            (self.down.get() * QUEUE_SECONDS / f64::from(BLOCK_LEN)) as usize
        };
        target.clamp(MIN_QUEUE.min(cap), cap)
    }

    /// Bytes the next frame needs in full (the handshake, a length prefix,
    /// or a whole message); an error when it declares more than `max_len`.
    pub fn frame_need(&self, buf: &[u8], max_len: usize) -> Result<usize, CloseReason> {
        if !self.is_established() {
            return Ok(HANDSHAKE_LEN);
        }
        match wire::frame_len(buf) {
            Some(n) if n - 4 > max_len => Err(CloseReason::Protocol(format!(
                "message of {} bytes exceeds the limit",
                n - 4
            ))),
            Some(n) => Ok(n),
            None => Ok(4),
        }
    }

    /// Decodes the frame at the start of `buf`: the event and the bytes
    /// used, or `None` while incomplete.
    pub fn decode<'a>(
        &mut self,
        buf: &'a [u8],
        max_len: usize,
        now: Instant,
    ) -> Result<Option<(PeerEvent<'a>, usize)>, CloseReason> {
        if !self.is_established() {
            if buf.len() < HANDSHAKE_LEN {
                if buf.len() >= 20 && (buf[0] != 19 || &buf[1..20] != wire::PROTOCOL) {
                    return Err(CloseReason::NotBitTorrent);
                }
                return Ok(None);
            }
            let h = Handshake::parse(buf).map_err(|_| CloseReason::NotBitTorrent)?;
            return Ok(Some((PeerEvent::Handshake(h), HANDSHAKE_LEN)));
        }
        match wire::parse(buf, max_len) {
            Ok(None) => Ok(None),
            Ok(Some((msg, used))) => Ok(Some((self.on_message(msg, now)?, used))),
            Err(e) => Err(CloseReason::Protocol(e.to_string())),
        }
    }

    /// Applies a message to the peer's own state; what is left for the
    /// torrent to do comes back as an event.
    fn on_message<'a>(
        &mut self,
        msg: Message<'a>,
        now: Instant,
    ) -> Result<PeerEvent<'a>, CloseReason> {
        let n = self.have.len();
        let fast = self.fast();
        if !matches!(msg, Message::KeepAlive) {
            self.last_message = now;
        }
        let ev = match msg {
            Message::Port(port) => PeerEvent::DhtPort(port),
            Message::KeepAlive | Message::Suggest(_) | Message::Unknown { .. } => {
                PeerEvent::Handled
            }
            Message::Choke => {
                self.peer_choking = true;
                // Without the fast extension a choke voids our requests.
                let dropped = if fast {
                    Vec::new()
                } else {
                    self.outstanding.drain(..).collect()
                };
                PeerEvent::Choked { dropped }
            }
            Message::Unchoke => {
                self.peer_choking = false;
                self.first_unchoke.get_or_insert(now);
                self.last_block = now;
                PeerEvent::Unchoked
            }
            Message::Interested => {
                self.peer_interested = true;
                PeerEvent::Interested
            }
            Message::NotInterested => {
                let was = self.peer_interested;
                self.peer_interested = false;
                if was && !self.am_choking {
                    PeerEvent::LeftSlot
                } else {
                    PeerEvent::Handled
                }
            }
            Message::Cancel {
                index,
                begin,
                length,
            } => {
                let cancelled = BlockRequest {
                    piece: index,
                    begin,
                    length,
                };
                self.requests_in.retain(|r| *r != cancelled);
                PeerEvent::Handled
            }
            // No pieces known yet (awaiting the metadata): nothing to
            // record.
            Message::Have(_) | Message::Bitfield(_) if n == 0 => PeerEvent::Handled,
            Message::Have(i) => {
                if i as usize >= n {
                    return Err(CloseReason::Protocol(format!("have for piece {i} of {n}")));
                }
                if self.have.set(i as usize) {
                    self.counters.round_haves += 1;
                    PeerEvent::Have(i)
                } else {
                    PeerEvent::Handled
                }
            }
            Message::Bitfield(bytes) => {
                // BEP 3 wants it first, but aria2 sends it after other
                // messages: accepted whenever it comes (it replaces).
                let Some(bits) = Bitfield::from_wire(bytes, n) else {
                    return Err(CloseReason::Protocol(format!(
                        "bitfield of {} bytes, expected {} for {n} pieces (or spare bits set)",
                        bytes.len(),
                        n.div_ceil(8)
                    )));
                };
                PeerEvent::Pieces(bits)
            }
            Message::HaveAll | Message::HaveNone => {
                if !fast {
                    return Err(CloseReason::Protocol(
                        "have-all/none without the fast extension".into(),
                    ));
                }
                PeerEvent::Pieces(if matches!(msg, Message::HaveAll) {
                    Bitfield::full(n)
                } else {
                    Bitfield::new(n)
                })
            }
            Message::Request {
                index,
                begin,
                length,
            } => PeerEvent::Request(BlockRequest {
                piece: index,
                begin,
                length,
            }),
            Message::Reject { index, begin, .. } => {
                if !fast {
                    return Err(CloseReason::Protocol(
                        "reject without the fast extension".into(),
                    ));
                }
                match self
                    .outstanding
                    .iter()
                    .position(|o| o.block.piece == index && o.block.begin() == begin)
                {
                    Some(pos) => PeerEvent::Rejected(self.outstanding.remove(pos)),
                    None => PeerEvent::Handled,
                }
            }
            Message::AllowedFast(i) => {
                let fresh = (i as usize) < n
                    && self.allowed_fast.len() < MAX_ALLOWED_FAST
                    && !self.allowed_fast.contains(&i);
                if fresh {
                    self.allowed_fast.push(i);
                    PeerEvent::AllowedFast
                } else {
                    PeerEvent::Handled
                }
            }
            Message::Piece { index, begin, data } => PeerEvent::Block { index, begin, data },
            Message::Extended { id, payload } if id == wire::EXT_HANDSHAKE => {
                // Garbage in a handshake only costs the peer its extensions.
                let ext = wire::parse_ext_handshake(payload).unwrap_or_default();
                if let Some(q) = ext.reqq {
                    self.reqq = (q as usize).clamp(1, self.reqq_cap);
                }
                if let Some(c) = &ext.client {
                    self.client = Some(c.clone());
                }
                PeerEvent::ExtHandshake(ext)
            }
            Message::Extended { id, payload } => PeerEvent::Extended { id, payload },
        };
        Ok(ev)
    }
}

#[cfg(test)]
mod out_buf_tests {
    use super::{OutBuf, OutPart};

    /// Bytes and runs of zeros come out as one stream, whatever the cuts
    /// in which it is consumed, and `len` counts both.
    #[test]
    fn zero_runs_read_as_zeros_whatever_the_cuts() {
        for cut in [1, 3, 7, 100, 70_000, usize::MAX] {
            let mut out = OutBuf::default();
            let mut expected = Vec::new();
            for k in 0..40u8 {
                let bytes = vec![k + 1; 3 + 5 * k as usize];
                out.vec().extend_from_slice(&bytes);
                expected.extend_from_slice(&bytes);
                let zeros = 4000 * (k as usize % 3);
                out.push_zeros(zeros);
                expected.resize(expected.len() + zeros, 0);
            }
            assert_eq!(out.len(), expected.len());
            let mut got = Vec::new();
            while !out.is_empty() {
                let mut chunk = Vec::new();
                out.parts(|p| match p {
                    OutPart::Bytes(b) => chunk.extend_from_slice(b),
                    OutPart::Zeros(n) => chunk.resize(chunk.len() + n, 0),
                });
                assert_eq!(chunk.len(), out.len());
                let n = cut.min(chunk.len());
                got.extend_from_slice(&chunk[..n]);
                out.consume(n);
                // Appending while partly sent keeps the order.
                if got.len() < 9 {
                    out.push_zeros(1);
                    expected.push(0);
                }
            }
            assert_eq!(got, expected, "cut {cut}");
        }
    }
}

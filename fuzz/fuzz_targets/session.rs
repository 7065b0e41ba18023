//! A whole torrent session fed by one hostile peer: arbitrary bytes after
//! a valid handshake (or raw from the first byte), mixed with the clock,
//! the disk's answers, and well-formed blocks for what we requested (so
//! that downloads, verification and uploads are reached).
//!
//! Properties: no panic; what we send is well-formed peer wire (when it
//! starts with a plaintext handshake; an MSE handshake and what follows
//! it is only bounded); our output to the peer and the actions per step
//! stay bounded.
//!
//! Input: byte 0 sets the torrent's geometry, whether we seed, the
//! handshake prefix and its reserved bits, the direction, and whether MSE
//! is allowed (`--encryption allow`: an incoming connection whose first
//! bytes are not a BitTorrent handshake is taken as MSE) or not
//! (`disable`); then operations (see the loop).
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bt::session::{Action, CloseReason, Config, Encryption, Session, UploadRead};
use bt::wire::{self, Handshake, Message, HANDSHAKE_LEN};
use libfuzzer_sys::fuzz_target;

const HASH: [u8; 20] = [7; 20];
const ME: [u8; 20] = *b"-BT0100-aaaaaaaaaaaa";
const PEER: [u8; 20] = *b"-XX0001-bbbbbbbbbbbb";
const TOKEN: usize = 1;
/// Most output a peer may have waiting (the session drops it past 4 MiB;
/// one upload read or a bitfield may come on top).
const MAX_OUT: usize = 5 << 20;
const MAX_ACTIONS_PER_STEP: usize = 10_000;

struct Harness {
    s: Session,
    now: Instant,
    /// Everything the session sent to the peer, not yet parsed.
    sent: Vec<u8>,
    handshake_seen: bool,
    /// We answered with MSE: our bytes are not checked as wire.
    encrypted: bool,
    /// Requests we sent to the peer: (index, begin, length).
    requests: Vec<(u32, u32, u32)>,
    verifies: Vec<(u32, bt::piecebuf::PieceBuf)>,
    reads: Vec<UploadRead>,
    closed: bool,
    mse_allowed: bool,
}

impl Harness {
    /// Drains the actions and the output, checking both.
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(a) = self.s.next_action() {
            n += 1;
            assert!(n <= MAX_ACTIONS_PER_STEP, "unbounded actions");
            match a {
                Action::Close(t) => {
                    assert_eq!(t, TOKEN);
                    self.closed = true;
                }
                Action::Verify { piece, buf } => self.verifies.push((piece, buf)),
                Action::Read(r) => self.reads.push(r),
                Action::Connect(_) | Action::Event(_) => {}
            }
        }
        let Some(out) = self.s.output(TOKEN) else {
            return;
        };
        let pending = out.pending();
        assert!(
            pending.len() <= MAX_OUT,
            "output of {} bytes",
            pending.len()
        );
        self.sent.extend_from_slice(pending);
        let len = pending.len();
        out.consume(len);
        self.parse_sent();
    }

    fn parse_sent(&mut self) {
        let mut pos = 0;
        if self.encrypted {
            self.sent.clear();
            return;
        }
        if !self.handshake_seen {
            if self.sent.len() < HANDSHAKE_LEN {
                return;
            }
            if self.mse_allowed && !self.sent.starts_with(b"\x13BitTorrent protocol") {
                // Yb and PadB: 96 to 608 bytes that are not a handshake.
                self.encrypted = true;
                self.sent.clear();
                return;
            }
            let h = Handshake::parse(&self.sent).expect("our handshake is well-formed");
            assert_eq!(h.info_hash, HASH);
            self.handshake_seen = true;
            pos = HANDSHAKE_LEN;
        }
        loop {
            match wire::parse(&self.sent[pos..], 1 << 20) {
                Ok(Some((msg, used))) => {
                    match msg {
                        Message::Request {
                            index,
                            begin,
                            length,
                        } => {
                            if self.requests.len() < 4096 {
                                self.requests.push((index, begin, length));
                            }
                        }
                        Message::Extended { id: 0, payload } => {
                            assert!(wire::parse_ext_handshake(payload).is_some());
                        }
                        Message::Unknown { id } => panic!("we sent unknown message id {id}"),
                        _ => {}
                    }
                    pos += used;
                }
                Ok(None) => break,
                Err(e) => panic!("we sent a malformed message: {e}"),
            }
        }
        self.sent.drain(..pos);
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.s.on_data(TOKEN, bytes, self.now);
    }
}

fn geometry(g: u8) -> (u64, u64, usize) {
    match g & 3 {
        0 => (32768, 4 * 32768, 4),
        1 => (16384, 8 * 16384 + 100, 9),
        2 => (3 * 16384 + 5, 2 * (3 * 16384 + 5) + 1, 3),
        _ => (16384, 16384, 1),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut ops)) = data.split_first() else {
        return;
    };
    let (piece_length, total, pieces) = geometry(ctl);
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 1;
    let mse_allowed = ctl & 0x80 != 0;
    cfg.encryption = if mse_allowed {
        Encryption::Allow
    } else {
        Encryption::Disable
    };
    let mut s = Session::new(cfg, piece_length, total, pieces);
    if ctl & 4 != 0 {
        for p in 0..pieces {
            s.set_have(p);
        }
    } else if pieces > 1 {
        s.set_have(0);
    }
    let now = Instant::now();
    let outgoing = ctl & 0x40 != 0;
    let addr = SocketAddr::from(([10, 0, 0, 1], 6881));
    s.on_connection(TOKEN, addr, outgoing, now);
    if outgoing {
        s.on_connected(TOKEN);
    }
    let mut h = Harness {
        s,
        now,
        sent: Vec::new(),
        handshake_seen: false,
        encrypted: false,
        requests: Vec::new(),
        verifies: Vec::new(),
        reads: Vec::new(),
        closed: false,
        mse_allowed,
    };
    if ctl & 8 != 0 {
        let mut hs = Handshake::ours(HASH, PEER);
        hs.reserved = [0; 8];
        if ctl & 0x10 != 0 {
            hs.reserved[7] |= 0x04;
        }
        if ctl & 0x20 != 0 {
            hs.reserved[5] |= 0x10;
        }
        let mut v = Vec::new();
        hs.encode(&mut v);
        h.feed(&v);
    }
    h.drain();

    while !h.closed {
        let Some((&op, rest)) = ops.split_first() else {
            break;
        };
        ops = rest;
        let mut arg = || {
            let (&b, rest) = ops.split_first().unwrap_or((&0, &[]));
            ops = rest;
            b
        };
        match op % 8 {
            // Raw bytes from the peer.
            0..=3 => {
                let len = usize::from(arg()) * (usize::from(op >> 3) + 1);
                let len = len.min(ops.len());
                let (chunk, rest) = ops.split_at(len);
                ops = rest;
                h.feed(chunk);
            }
            // The clock.
            4 => {
                let step = u64::from(arg()) * (1 + u64::from(op >> 3)) * 100;
                h.now += Duration::from_millis(step);
                h.s.tick(h.now);
            }
            // A well-formed block for a request we sent (zeros, so the
            // piece fails its hash unless the disk says otherwise).
            5 => {
                if h.requests.is_empty() {
                    continue;
                }
                let i = usize::from(arg()) % h.requests.len();
                let (index, begin, length) = h.requests.swap_remove(i);
                let data = vec![0u8; length.min(1 << 17) as usize];
                let mut v = Vec::new();
                wire::encode(
                    &Message::Piece {
                        index,
                        begin,
                        data: &data,
                    },
                    &mut v,
                );
                h.feed(&v);
            }
            // The disk: a piece verified (good or bad), a read done (or failed).
            6 => {
                let a = arg();
                if let Some((piece, buf)) = h.verifies.pop() {
                    h.s.on_verified(piece, a & 1 != 0, buf, h.now);
                } else if let Some(r) = h.reads.pop() {
                    let len = if a & 1 != 0 { r.length as usize } else { 0 };
                    h.s.on_read(&r, &vec![0u8; len], h.now);
                }
            }
            // The socket drained, or the peer hung up.
            _ => {
                if op & 0x80 != 0 {
                    h.s.on_closed(TOKEN, CloseReason::ClosedByPeer, h.now);
                    h.closed = true;
                } else {
                    h.s.on_sent(TOKEN);
                }
            }
        }
        h.drain();
    }
    // The disk answers whatever is left, then the session shuts down.
    while let Some((piece, buf)) = h.verifies.pop() {
        h.s.on_verified(piece, true, buf, h.now);
        h.drain();
    }
    for r in std::mem::take(&mut h.reads) {
        h.s.on_read(&r, &vec![0u8; r.length as usize], h.now);
        h.drain();
    }
    h.s.shutdown(h.now);
    h.drain();
    assert_eq!(h.s.connection_count(), 0);
});

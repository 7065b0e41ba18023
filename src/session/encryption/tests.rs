//! Two sessions connected in memory, every pair of encryption modes, the
//! bytes carried between them in random pieces; and hostile MSE input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::*;
use crate::mse::{Method, MseError};
use crate::session::{Action, Config, Event, Origin, HANDSHAKE_TIMEOUT};
use crate::wire::Handshake;

const HASH: [u8; 20] = [0x5a; 20];
const PIECE: u64 = 32768;
const PIECES: usize = 4;

fn addr_a() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 5000))
}

fn addr_b() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 6881))
}

fn session(id: u8, mode: Encryption, seeding: bool) -> Session {
    let mut cfg = Config::new(HASH, [id; 20]);
    cfg.seed = u64::from(id);
    cfg.encryption = mode;
    let mut s = Session::new(cfg, PIECE, PIECE * PIECES as u64, PIECES);
    if seeding {
        for i in 0..PIECES {
            s.set_have(i);
        }
    }
    s
}

/// One end of the in-memory connection.
struct End {
    s: Session,
    /// The token of the live connection, if any.
    token: Option<Token>,
    next_token: Token,
    closes: Vec<CloseReason>,
}

impl End {
    fn new(s: Session) -> End {
        End {
            s,
            token: None,
            next_token: 1,
            closes: Vec::new(),
        }
    }

    fn established(&self) -> bool {
        self.token
            .and_then(|t| self.s.peers.get(&t))
            .is_some_and(|p| p.is_established())
    }

    fn method(&self) -> Option<Method> {
        self.token
            .and_then(|t| self.s.peers.get(&t))
            .and_then(|p| p.mse_method)
    }
}

/// Moves what `from` queued to `to` in random pieces; true if any moved.
fn carry(from: &mut End, to: &mut End, rng: &mut StdRng, now: Instant) -> bool {
    let (Some(ft), Some(tt)) = (from.token, to.token) else {
        return false;
    };
    let Some(out) = from.s.output(ft) else {
        return false;
    };
    let mut bytes = out.pending().to_vec();
    out.consume(bytes.len());
    let moved = !bytes.is_empty();
    let mut pos = 0;
    while pos < bytes.len() {
        let n = match rng.gen_range(0..4) {
            0 => 1,
            1 => rng.gen_range(1..=20),
            2 => rng.gen_range(1..=200),
            _ => bytes.len() - pos,
        }
        .min(bytes.len() - pos);
        // Both entry points: read-only and in place.
        if rng.gen_bool(0.5) {
            to.s.on_data(tt, &bytes[pos..pos + n], now);
        } else {
            to.s.on_data_mut(tt, &mut bytes[pos..pos + n], now);
        }
        pos += n;
        if !to.s.peers.contains_key(&tt) {
            break;
        }
    }
    moved
}

/// Applies the actions of `end`: a close tells the other end the peer hung
/// up. Returns addresses `end` wants to connect to.
fn drain(end: &mut End, other: &mut End, now: Instant) -> Vec<SocketAddr> {
    let mut connects = Vec::new();
    while let Some(a) = end.s.next_action() {
        match a {
            Action::Connect(addr) => connects.push(addr),
            Action::Close(t) if Some(t) == end.token => {
                end.token = None;
                if let Some(ot) = other.token.take() {
                    other.s.on_closed(ot, CloseReason::ClosedByPeer, now);
                }
            }
            Action::Event(Event::PeerDisconnected { reason, .. }) => end.closes.push(reason),
            _ => {}
        }
    }
    connects
}

/// A (outgoing) connects to B (incoming) until both are established, or
/// nothing moves any more (with fallback reconnects in between). Bounded.
fn connect(a: &mut End, b: &mut End, seed: u64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    a.s.add_candidate(addr_b(), Origin::CommandLine);
    for round in 0..200 {
        // A second per round: retries after back-off come due.
        let now = start + Duration::from_secs(round);
        a.s.tick(now);
        b.s.tick(now);
        for target in drain(a, b, now) {
            assert_eq!(target, addr_b());
            let (ta, tb) = (a.next_token, b.next_token);
            a.next_token += 1;
            b.next_token += 1;
            a.s.on_connection(ta, target, true, now);
            a.s.on_connected(ta);
            b.s.on_connection(tb, addr_a(), false, now);
            a.token = Some(ta);
            b.token = Some(tb);
        }
        let moved_ab = carry(a, b, &mut rng, now);
        drain(b, a, now);
        let moved_ba = carry(b, a, &mut rng, now);
        drain(b, a, now);
        let connects = drain(a, b, now);
        assert!(connects.is_empty() || a.token.is_none());
        for c in connects {
            a.s.actions.push_back(Action::Connect(c));
        }
        if a.established() && b.established() {
            return true;
        }
        if !moved_ab && !moved_ba && a.token.is_some() && a.s.actions.is_empty() {
            return false;
        }
        if a.token.is_none()
            && a.s.actions.is_empty()
            && !a.s.candidates.has_queued()
            && a.s.candidates.next_retry().is_none()
        {
            return false;
        }
    }
    panic!("no outcome after 200 rounds");
}

fn pair(a_mode: Encryption, b_mode: Encryption, seed: u64) -> (End, End, bool) {
    let mut a = End::new(session(1, a_mode, false));
    let mut b = End::new(session(2, b_mode, true));
    let ok = connect(&mut a, &mut b, seed);
    (a, b, ok)
}

use Encryption::{Allow, Disable, Prefer, Require};

#[test]
fn every_mode_pair_connects_or_is_refused_for_the_right_reason() {
    // (initiator, receiver, connects, method on the connection that works)
    let cases = [
        (Allow, Allow, true, None),
        (Allow, Prefer, true, None),
        (Allow, Require, true, Some(Method::Rc4)),
        (Allow, Disable, true, None),
        (Prefer, Allow, true, Some(Method::Plaintext)),
        (Prefer, Prefer, true, Some(Method::Rc4)),
        (Prefer, Require, true, Some(Method::Rc4)),
        (Prefer, Disable, true, None),
        (Require, Allow, true, Some(Method::Rc4)),
        (Require, Prefer, true, Some(Method::Rc4)),
        (Require, Require, true, Some(Method::Rc4)),
        (Require, Disable, false, None),
        (Disable, Allow, true, None),
        (Disable, Prefer, true, None),
        (Disable, Require, false, None),
        (Disable, Disable, true, None),
    ];
    for seed in 0..6 {
        for (am, bm, connects, method) in cases {
            let (a, b, ok) = pair(am, bm, seed);
            let what = format!("{am} -> {bm}, seed {seed}");
            assert_eq!(ok, connects, "{what}: a {:?}, b {:?}", a.closes, b.closes);
            if connects {
                assert_eq!(a.method(), method, "{what}");
                assert_eq!(b.method(), method, "{what}");
                assert_eq!(a.s.peer_count(), 1, "{what}");
                assert_eq!(b.s.peer_count(), 1, "{what}");
            }
        }
    }
}

#[test]
fn refusals_name_their_reason() {
    for (a_mode, b_mode, why) in [
        (Disable, Require, CloseReason::PlaintextRefused),
        (Require, Disable, CloseReason::EncryptionRefused),
    ] {
        let (_a, b, ok) = pair(a_mode, b_mode, 3);
        assert!(!ok);
        assert!(!b.s.closed_reasons.is_empty());
        for (_, reason) in &b.s.closed_reasons {
            assert_eq!(reason, &why, "{a_mode} -> {b_mode}");
        }
    }
}

#[test]
fn allow_falls_back_to_mse_once_and_remembers() {
    let (a, _b, ok) = pair(Allow, Require, 1);
    assert!(ok);
    assert_eq!(a.s.candidates.opening(&addr_b()), Some(Opening::Mse));
    assert_eq!(
        a.closes,
        [] as [CloseReason; 0],
        "the refused attempt had no handshake"
    );
    // The first attempt was plaintext and cost a connection: two tokens.
    assert_eq!(a.next_token, 3);
}

#[test]
fn allow_switches_back_to_plaintext_when_mse_is_refused_too() {
    // The first plaintext attempt is reset (the peer was busy), the MSE
    // retry is refused (the peer tolerates encryption only outgoing, as
    // Transmission with -et): the next retry is plaintext again.
    let t0 = Instant::now();
    let mut a = End::new(session(1, Allow, false));
    let mut b = End::new(session(2, Disable, true));
    a.s.add_candidate(addr_b(), Origin::CommandLine);
    a.s.tick(t0);
    assert!(matches!(a.s.next_action(), Some(Action::Connect(_))));
    a.s.on_connection(1, addr_b(), true, t0);
    a.s.on_connected(1);
    a.s.on_closed(1, CloseReason::Transport("read error: reset".into()), t0);
    assert_eq!(a.s.candidates.opening(&addr_b()), Some(Opening::Mse));
    a.next_token = 2;
    assert!(connect(&mut a, &mut b, 7), "a: {:?}", a.s.closed_reasons);
    assert_eq!(a.method(), None, "plaintext in the end");
    assert_eq!(
        b.s.closed_reasons[0].1,
        CloseReason::EncryptionRefused,
        "the MSE attempt was refused"
    );
}

#[test]
fn encrypted_stream_carries_messages_both_ways() {
    // After the handshakes, have-all, interest, unchoke and requests all
    // cross the RC4 stream (any corruption would drop the connection).
    let (mut a, mut b, ok) = pair(Require, Require, 5);
    assert!(ok);
    let mut rng = StdRng::seed_from_u64(5);
    let now = Instant::now();
    for _ in 0..20 {
        let moved = carry(&mut a, &mut b, &mut rng, now) | carry(&mut b, &mut a, &mut rng, now);
        drain(&mut a, &mut b, now);
        drain(&mut b, &mut a, now);
        if !moved {
            break;
        }
    }
    let ta = a.token.expect("a connected");
    let tb = b.token.expect("b connected");
    let pa = &a.s.peers[&ta];
    let pb = &b.s.peers[&tb];
    assert!(pa.have.is_full(), "the seeder's have-all arrived");
    assert!(pb.peer_interested, "the leecher's interest arrived");
    assert!(!pa.peer_choking, "the unchoke arrived");
}

#[test]
fn hostile_mse_input_ends_the_connection_quickly_with_bounded_buffers() {
    let now = Instant::now();
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut s = session(2, Allow, true);
        s.on_connection(1, addr_a(), false, now);
        // A public key then garbage: HASH('req1', S) never comes.
        let mut fed = 0;
        let mut dropped = false;
        for _ in 0..1000 {
            let mut chunk = vec![0u8; rng.gen_range(1..=300)];
            rng.fill_bytes(&mut chunk);
            if fed == 0 {
                chunk[0] = 0x42; // not "\x13BitTorrent protocol"
            }
            s.on_data(1, &chunk, now);
            fed += chunk.len();
            match s.peers.get(&1) {
                None => {
                    dropped = true;
                    break;
                }
                Some(p) => {
                    let held = p.inbuf.len() + p.mse.as_ref().map_or(0, |h| h.buffered_len());
                    assert!(held <= 96 + 512 + 20, "holds {held} bytes");
                }
            }
        }
        assert!(dropped, "seed {seed}: still connected after {fed} bytes");
        // Ya (96) + at most 512 bytes of padding + the 20-byte marker, and
        // the rest of the last read.
        assert!(
            fed <= 96 + 532 + 300,
            "seed {seed}: dropped only after {fed} bytes"
        );
        assert!(s.peers.is_empty());
    }
}

#[test]
fn a_bad_public_key_or_a_silent_peer_ends_the_handshake() {
    let t0 = Instant::now();
    let mut s = session(2, Allow, true);
    s.on_connection(1, addr_a(), false, t0);
    // Y = 0 is degenerate.
    s.on_data(1, &[0u8; 96], t0);
    assert!(s.peers.is_empty(), "a zero public key is refused");

    // An MSE initiator that stops after its key: the handshake time-out.
    let mut s = session(2, Allow, true);
    s.on_connection(1, addr_a(), false, t0);
    let mut a = session(1, Require, false);
    a.on_connection(1, addr_b(), true, t0);
    a.on_connected(1);
    let first = a.output(1).unwrap().pending().to_vec();
    s.on_data(1, &first, t0);
    assert!(!s.output(1).unwrap().is_empty(), "the receiver answered");
    s.tick(t0);
    s.tick(t0 + HANDSHAKE_TIMEOUT + Duration::from_secs(2));
    assert!(s.peers.is_empty(), "dropped by the handshake time-out");
}

#[test]
fn an_mse_error_from_the_peer_is_typed() {
    let t0 = Instant::now();
    let mut s = session(1, Require, false);
    s.add_candidate(addr_b(), Origin::CommandLine);
    s.tick(t0);
    while s.next_action().is_some() {}
    s.on_connection(1, addr_b(), true, t0);
    s.on_connected(1);
    // A plaintext-only receiver answers our MSE opening with its own
    // plaintext handshake: the VC never shows up within the padding.
    let mut reply = Vec::new();
    Handshake::ours(HASH, [9; 20]).encode(&mut reply);
    reply.resize(96 + 600, 0x13);
    s.on_data(1, &reply, t0);
    assert_eq!(
        s.closed_reasons,
        [(1, CloseReason::Mse(MseError::VcNotFound))]
    );
    assert_eq!(
        s.candidates.opening(&addr_b()),
        None,
        "require never falls back"
    );
}

#[test]
fn mutated_mse_handshakes_end_or_complete_with_bounded_buffers() {
    // A fuzz pass over the receiver: a real initiator whose bytes get one
    // byte flipped somewhere in the handshake. Whatever the flip hits (a
    // key, a pad, a hash, VC, crypto_provide, a length, the initial
    // payload), the receiver completes, refuses, or waits for the time-out;
    // it never panics nor holds more than the specification allows.
    let now = Instant::now();
    let limit = crate::mse::RECEIVER_MAX_HANDSHAKE_LEN + FIRST_BYTES;
    let mut outcomes = [0usize; 3];
    for seed in 0..400u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut a = End::new(session(1, Require, false));
        let mut b = End::new(session(2, Allow, true));
        a.s.on_connection(1, addr_b(), true, now);
        a.s.on_connected(1);
        b.s.on_connection(1, addr_a(), false, now);
        a.token = Some(1);
        b.token = Some(1);
        let flip_at = rng.gen_range(0..96 + 512 + 20 + 20 + 14 + 512 + 2 + 68);
        let flip: u8 = rng.gen_range(1..=255);
        let mut sent = 0usize;
        for _round in 0..10 {
            let mut moved = false;
            if let Some(out) = a.s.output(1) {
                let mut bytes = out.pending().to_vec();
                out.consume(bytes.len());
                if (sent..sent + bytes.len()).contains(&flip_at) {
                    bytes[flip_at - sent] ^= flip;
                }
                sent += bytes.len();
                moved |= !bytes.is_empty();
                for chunk in bytes.chunks(rng.gen_range(1..=700)) {
                    b.s.on_data(1, chunk, now);
                    if let Some(p) = b.s.peers.get(&1) {
                        let held = p.inbuf.len() + p.mse.as_ref().map_or(0, |h| h.buffered_len());
                        assert!(held <= limit, "seed {seed}: holds {held} bytes");
                    }
                }
            }
            moved |= carry(&mut b, &mut a, &mut rng, now);
            drain(&mut b, &mut a, now);
            drain(&mut a, &mut b, now);
            if !moved || b.token.is_none() || a.token.is_none() {
                break;
            }
        }
        let outcome = if b.established() {
            0
        } else if b.s.peers.is_empty() {
            1
        } else {
            // Waiting for bytes that will not come: the time-out ends it.
            b.s.tick(now);
            b.s.tick(now + HANDSHAKE_TIMEOUT + Duration::from_secs(2));
            assert!(b.s.peers.is_empty(), "seed {seed}: not timed out");
            2
        };
        outcomes[outcome] += 1;
    }
    // Flips in the pads are harmless; most others are caught.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

//! Deterministic tests of the session: synthetic time, seeded RNG, bytes
//! in and bytes out, no sockets.

use super::peer::{MIN_QUEUE, UNADVERTISED_REQQ};
use super::split::{split_key, split_score};
use super::*;
use crate::wire::{Handshake, Message, HANDSHAKE_LEN};

const HASH: [u8; 20] = [7; 20];
const ME: [u8; 20] = *b"-BT0100-aaaaaaaaaaaa";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// 4 pieces of 2 blocks (32 KiB pieces).
fn session() -> Session {
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 42;
    Session::new(cfg, 32768, 4 * 32768, 4)
}

/// Messages the session queued for a peer (handshake skipped if present).
fn sent(s: &mut Session, t: Token) -> Vec<Message<'static>> {
    let out = s.output(t).expect("peer exists");
    let mut bytes = out.pending().to_vec();
    let n = bytes.len();
    out.consume(n);
    if bytes.len() >= HANDSHAKE_LEN && bytes[0] == 19 && &bytes[1..20] == wire::PROTOCOL {
        bytes.drain(..HANDSHAKE_LEN);
    }
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let mut msgs = Vec::new();
    let mut pos = 0;
    while let Some((m, used)) = wire::parse(&bytes[pos..], 1 << 20).unwrap() {
        msgs.push(m);
        pos += used;
    }
    assert_eq!(pos, bytes.len(), "whole messages only");
    msgs
}

fn bytes_of(msgs: &[Message]) -> Vec<u8> {
    let mut v = Vec::new();
    for m in msgs {
        wire::encode(m, &mut v);
    }
    v
}

fn handshake(peer_id: [u8; 20], fast: bool) -> Vec<u8> {
    let mut h = Handshake::ours(HASH, peer_id);
    if !fast {
        h.reserved = [0; 8];
    }
    let mut v = Vec::new();
    h.encode(&mut v);
    v
}

fn actions(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.next_action()).collect()
}

fn closed(acts: &[Action], t: Token) -> bool {
    acts.iter()
        .any(|a| matches!(a, Action::Close(x) if *x == t))
}

fn disconnect_reason(acts: &[Action]) -> Option<String> {
    acts.iter().find_map(|a| match a {
        Action::Event(Event::PeerDisconnected { reason, .. }) => Some(reason.to_string()),
        _ => None,
    })
}

fn requests(msgs: &[Message]) -> Vec<(u32, u32)> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Request { index, begin, .. } => Some((*index, *begin)),
            _ => None,
        })
        .collect()
}

/// Peer `t` sends a 16 KiB block of zeros.
fn send_zero_block(s: &mut Session, t: Token, index: u32, begin: u32, now: Instant) {
    let data = [0u8; 16384];
    let m = Message::Piece {
        index,
        begin,
        data: &data,
    };
    s.on_data(t, &bytes_of(&[m]), now);
}

/// Peer `t` advertises `reqq` in its BEP 10 handshake.
fn advertise_reqq(s: &mut Session, t: Token, reqq: usize, now: Instant) {
    let payload = format!("d4:reqqi{reqq}ee");
    let ext = Message::Extended {
        id: 0,
        payload: payload.as_bytes(),
    };
    s.on_data(t, &bytes_of(&[ext]), now);
}

/// A connected, handshaken seeding peer (have-all) that unchoked us.
fn seeding_peer(s: &mut Session, t: Token, id: u8, now: Instant) {
    s.on_connection(t, addr(1000 + t as u16), true, now);
    s.on_connected(t);
    let mut pid = [id; 20];
    pid[0] = b'-';
    let mut bytes = handshake(pid, true);
    bytes.extend(bytes_of(&[Message::HaveAll, Message::Unchoke]));
    s.on_data(t, &bytes, now);
}

#[test]
fn handshake_split_byte_by_byte() {
    let mut s = session();
    let t0 = Instant::now();
    s.on_connection(1, addr(1), false, t0);
    let mut bytes = handshake([1; 20], true);
    bytes.extend(bytes_of(&[
        Message::Bitfield(&[0xf0]),
        Message::KeepAlive,
        Message::Unchoke,
    ]));
    for b in &bytes {
        s.on_data(1, std::slice::from_ref(b), t0);
    }
    let msgs = sent(&mut s, 1);
    assert!(msgs.contains(&Message::HaveNone));
    assert!(msgs.contains(&Message::Interested));
    // Slow start: the minimum queue of 4 requests to begin with.
    assert_eq!(requests(&msgs).len(), 4);
    let acts = actions(&mut s);
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Event(Event::PeerConnected { .. }))));
    assert!(!closed(&acts, 1));
}

#[test]
fn wrong_info_hash_and_self_are_dropped() {
    let mut s = session();
    let t0 = Instant::now();
    s.on_connection(1, addr(1), false, t0);
    let mut h = Handshake::ours([9; 20], [1; 20]);
    let mut v = Vec::new();
    h.encode(&mut v);
    s.on_data(1, &v, t0);
    assert!(closed(&actions(&mut s), 1));

    s.on_connection(2, addr(2), true, t0);
    h = Handshake::ours(HASH, ME);
    v.clear();
    h.encode(&mut v);
    s.on_data(2, &v, t0);
    assert!(closed(&actions(&mut s), 2));
    // Never reconnected.
    s.add_candidate(addr(2), Origin::Api);
    s.tick(t0 + Duration::from_secs(60));
    assert!(!actions(&mut s)
        .iter()
        .any(|a| matches!(a, Action::Connect(x) if *x == addr(2))));
}

#[test]
fn bitfield_of_wrong_size_drops_peer() {
    let mut s = session();
    let t0 = Instant::now();
    s.on_connection(1, addr(1), false, t0);
    let mut bytes = handshake([1; 20], true);
    bytes.extend(bytes_of(&[Message::Bitfield(&[0xf0, 0])]));
    s.on_data(1, &bytes, t0);
    let acts = actions(&mut s);
    assert!(closed(&acts, 1));
    let why = disconnect_reason(&acts).unwrap();
    assert!(why.contains("bitfield of 2 bytes, expected 1"), "{why}");
}

#[test]
fn oversized_message_is_refused_before_buffering() {
    let mut s = session();
    let t0 = Instant::now();
    s.on_connection(1, addr(1), false, t0);
    let mut bytes = handshake([1; 20], true);
    bytes.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 7]);
    s.on_data(1, &bytes, t0);
    let acts = actions(&mut s);
    assert!(closed(&acts, 1));
    assert!(disconnect_reason(&acts).unwrap().contains("limit"));
}

#[test]
fn full_download_verifies_and_completes() {
    let mut s = session();
    let t0 = Instant::now();
    seeding_peer(&mut s, 1, 1, t0);
    let mut now = t0;
    let mut verified = 0;
    for _round in 0..50 {
        let reqs = requests(&sent(&mut s, 1));
        for (index, begin) in reqs {
            let data = vec![index as u8; 16384];
            let m = Message::Piece {
                index,
                begin,
                data: &data,
            };
            s.on_data(1, &bytes_of(&[m]), now);
        }
        for a in actions(&mut s) {
            if let Action::Verify { piece, buf } = a {
                assert_eq!(buf.len(), 32768);
                assert!(buf.iter().all(|&b| b == piece as u8));
                s.on_verified(piece, true, buf, now);
                verified += 1;
            }
        }
        now += Duration::from_millis(10);
        if s.is_complete() {
            break;
        }
    }
    assert_eq!(verified, 4);
    assert!(s.is_complete());
    assert_eq!(s.totals().downloaded, 4 * 32768);
    assert_eq!(s.totals().wasted, 0);
}

#[test]
fn queue_grows_in_slow_start_then_follows_rate() {
    let mut cfg = Config::new(HASH, ME);
    cfg.max_buffer_bytes = 64 << 20;
    // 400 pieces of 16 KiB.
    let mut s = Session::new(cfg, 16384, 400 * 16384, 400);
    let t0 = Instant::now();
    seeding_peer(&mut s, 1, 1, t0);
    let mut outstanding = requests(&sent(&mut s, 1));
    assert_eq!(outstanding.len(), MIN_QUEUE);
    // Answer every request for 1 s: the queue doubles per round trip.
    let mut now = t0;
    for _ in 0..5 {
        now += Duration::from_millis(20);
        for (index, begin) in std::mem::take(&mut outstanding) {
            send_zero_block(&mut s, 1, index, begin, now);
        }
        outstanding = requests(&sent(&mut s, 1));
        for a in actions(&mut s) {
            if let Action::Verify { piece, buf } = a {
                s.on_verified(piece, true, buf, now);
            }
        }
    }
    assert!(
        outstanding.len() >= 64,
        "queue grew to {} after 5 round trips",
        outstanding.len()
    );
}

/// A peer is asked for at most 250 requests until its BEP 10 handshake
/// advertises `reqq`, then for at most that many, up to our own cap.
#[test]
fn queue_cap_follows_advertised_reqq() {
    for (advertised, want) in [
        (None, UNADVERTISED_REQQ),
        (Some(300), 300),
        (Some(512), 512),
        (Some(100_000), 512),
    ] {
        let mut cfg = Config::new(HASH, ME);
        cfg.max_buffer_bytes = 256 << 20;
        // 8000 pieces of one block each.
        let mut s = Session::new(cfg, 16384, 8000 * 16384, 8000);
        let t0 = Instant::now();
        seeding_peer(&mut s, 1, 1, t0);
        if let Some(q) = advertised {
            advertise_reqq(&mut s, 1, q, t0);
        }
        let mut outstanding = requests(&sent(&mut s, 1));
        let mut most = outstanding.len();
        // Answer everything each round trip (slow start doubles the
        // queue) until the cap holds it.
        let mut now = t0;
        for _ in 0..12 {
            now += Duration::from_millis(5);
            for (index, begin) in std::mem::take(&mut outstanding) {
                send_zero_block(&mut s, 1, index, begin, now);
            }
            outstanding = requests(&sent(&mut s, 1));
            most = most.max(outstanding.len());
            for a in actions(&mut s) {
                if let Action::Verify { piece, buf } = a {
                    s.on_verified(piece, true, buf, now);
                }
            }
        }
        // Top-ups come in batches of an eighth of the queue.
        assert!(
            most <= want && most >= want - want / 8,
            "advertised reqq {advertised:?}: at most {most} requests, want {want}"
        );
    }
}

/// Four seeds behind equal links that each could take more requests than
/// piece memory holds (a 512-request queue is 8 MiB of 1 MiB pieces; the
/// memory is 16 MiB): each must get a fair part of the download. Before
/// piece memory was shared, the two seeds topped up first took every
/// buffer freed and the other two sent nothing.
#[test]
fn piece_memory_is_shared_among_fast_seeds() {
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 3;
    cfg.max_buffer_bytes = 16 << 20;
    let pieces = 256;
    let mut s = Session::new(cfg, 1 << 20, pieces << 20, pieces as usize);
    let t0 = Instant::now();
    let seeds: Vec<Token> = (1..=4).collect();
    for &t in &seeds {
        seeding_peer(&mut s, t, t as u8, t0);
        advertise_reqq(&mut s, t, 2000, t0);
    }
    // Each link serves its requests in order, 4 blocks per 10 ms
    // (6.5 MB/s), and hashing and writing are instant.
    let mut queues: Vec<std::collections::VecDeque<(u32, u32)>> = vec![Default::default(); 4];
    let mut sent_blocks = [0usize; 4];
    let mut now = t0;
    for _step in 0..2000 {
        for (i, &t) in seeds.iter().enumerate() {
            queues[i].extend(requests(&sent(&mut s, t)));
            for _ in 0..4 {
                let Some((index, begin)) = queues[i].pop_front() else {
                    break;
                };
                send_zero_block(&mut s, t, index, begin, now);
                sent_blocks[i] += 1;
            }
        }
        for a in actions(&mut s) {
            if let Action::Verify { piece, buf } = a {
                s.on_verified(piece, true, buf, now);
            }
        }
        now += Duration::from_millis(10);
        s.tick(now);
        if s.is_complete() {
            break;
        }
    }
    assert!(
        s.is_complete(),
        "256 MiB in 20 s at 26 MB/s: {sent_blocks:?}"
    );
    let total: usize = sent_blocks.iter().sum();
    for (i, n) in sent_blocks.iter().enumerate() {
        assert!(
            *n * 5 >= total,
            "seed {} sent {n} of {total} blocks: {sent_blocks:?}",
            i + 1
        );
    }
}

#[test]
fn fair_level_divides_a_budget_max_min() {
    use super::download::fair_level;
    assert_eq!(fair_level(&mut [100, 200], 300), None, "everything fits");
    assert_eq!(fair_level(&mut [512, 512, 512, 512], 768), Some(192));
    // A small demand is met; the rest is divided among the others.
    assert_eq!(fair_level(&mut [512, 4, 512, 512], 768), Some(254));
    assert_eq!(fair_level(&mut [10, 20, 1000], 100), Some(70));
    assert_eq!(fair_level(&mut [], 0), None);
}

#[test]
fn snubbing_peer_loses_its_requests() {
    let mut s = session();
    let t0 = Instant::now();
    seeding_peer(&mut s, 1, 1, t0);
    let first = requests(&sent(&mut s, 1));
    assert!(!first.is_empty());
    // Peer 1 never answers: after the snub timeout its requests are
    // withdrawn, and a second peer is asked for those blocks first.
    let later = t0 + SNUB_TIMEOUT + Duration::from_secs(2);
    s.tick(later);
    seeding_peer(&mut s, 2, 2, later);
    let to1 = sent(&mut s, 1);
    assert!(
        to1.iter().any(|m| matches!(m, Message::Cancel { .. })),
        "cancels sent to the snubbing peer: {to1:?}"
    );
    // The snubbing peer keeps a single request; the others moved.
    let again = requests(&to1);
    assert!(again.len() <= 1, "{again:?}");
    // The withdrawn blocks are free again: peer 2 gets a full queue, none
    // of it what peer 1 still holds.
    let to2 = requests(&sent(&mut s, 2));
    assert_eq!(to2.len(), MIN_QUEUE, "{to2:?}");
    assert!(again.iter().all(|r| !to2.contains(r)));
}

#[test]
fn endgame_duplicates_and_cancels() {
    // One piece of two blocks.
    let cfg = Config::new(HASH, ME);
    let mut s = Session::new(cfg, 32768, 32768, 1);
    let t0 = Instant::now();
    seeding_peer(&mut s, 1, 1, t0);
    let r1 = requests(&sent(&mut s, 1));
    assert_eq!(r1.len(), 2);
    seeding_peer(&mut s, 2, 2, t0);
    let r2 = requests(&sent(&mut s, 2));
    assert_eq!(r2, r1, "endgame: the same blocks from the second peer");
    send_zero_block(&mut s, 1, r1[0].0, r1[0].1, t0);
    let to2 = sent(&mut s, 2);
    assert!(
        to2.contains(&Message::Cancel {
            index: r1[0].0,
            begin: r1[0].1,
            length: 16384
        }),
        "{to2:?}"
    );
}

#[test]
fn repeated_hash_failures_ban_the_peer() {
    let mut s = session();
    let t0 = Instant::now();
    seeding_peer(&mut s, 1, 1, t0);
    let mut banned = false;
    for _ in 0..4 {
        let reqs = requests(&sent(&mut s, 1));
        for (index, begin) in reqs {
            let data = [0xeeu8; 16384];
            let m = Message::Piece {
                index,
                begin,
                data: &data,
            };
            s.on_data(1, &bytes_of(&[m]), t0);
        }
        for a in actions(&mut s) {
            match a {
                Action::Verify { piece, buf } => s.on_verified(piece, false, buf, t0),
                Action::Event(Event::Banned { .. }) => banned = true,
                _ => {}
            }
        }
        if banned || s.output(1).is_none() {
            break;
        }
    }
    let acts = actions(&mut s);
    assert!(
        banned
            || acts
                .iter()
                .any(|a| matches!(a, Action::Event(Event::Banned { .. }))),
        "peer banned"
    );
    assert!(s.output(1).is_none(), "peer dropped");
    assert!(!s.accepts(&addr(1001)));
    assert!(s.totals().hash_failures >= 2);
}

#[test]
fn upload_requests_are_validated() {
    let mut s = session();
    for i in 0..4 {
        s.set_have(i);
    }
    let t0 = Instant::now();
    s.on_connection(1, addr(1), false, t0);
    let mut bytes = handshake([1; 20], true);
    bytes.extend(bytes_of(&[Message::HaveNone]));
    s.on_data(1, &bytes, t0);
    let msgs = sent(&mut s, 1);
    assert!(msgs.contains(&Message::HaveAll));
    // Choked: a request is rejected (fast extension).
    let req = Message::Request {
        index: 0,
        begin: 0,
        length: 16384,
    };
    s.on_data(1, &bytes_of(&[req]), t0);
    assert!(sent(&mut s, 1).contains(&Message::Reject {
        index: 0,
        begin: 0,
        length: 16384
    }));
    // Interested: unchoked at once (free slot); the request is served.
    s.on_data(1, &bytes_of(&[Message::Interested, req]), t0);
    assert!(sent(&mut s, 1).contains(&Message::Unchoke));
    let acts = actions(&mut s);
    let read = acts.iter().find_map(|a| match a {
        Action::Read(r) => Some(r.clone()),
        _ => None,
    });
    let read = read.expect("a disk read");
    assert_eq!(read.blocks, vec![16384]);
    s.on_read(&read, &[5u8; 16384], t0);
    assert!(matches!(
        sent(&mut s, 1).as_slice(),
        [Message::Piece { index: 0, begin: 0, data }] if data.len() == 16384
    ));
    assert_eq!(s.totals().uploaded, 16384);
    // A request outside the piece is abuse: disconnect.
    let bad = Message::Request {
        index: 0,
        begin: 32768 - 10,
        length: 16384,
    };
    s.on_data(1, &bytes_of(&[bad]), t0);
    let acts = actions(&mut s);
    assert!(closed(&acts, 1));
    assert!(disconnect_reason(&acts)
        .unwrap()
        .contains("invalid request"));
}

#[test]
fn choker_unchokes_best_uploaders() {
    let mut s = session();
    let t0 = Instant::now();
    for t in 1..=6 {
        s.on_connection(t, addr(t as u16), false, t0);
        let mut bytes = handshake([t as u8; 20], true);
        bytes.extend(bytes_of(&[Message::HaveNone]));
        s.on_data(t, &bytes, t0);
    }
    s.set_have(0);
    for t in 1..=6 {
        s.on_data(t, &bytes_of(&[Message::Interested]), t0);
    }
    // Free slots filled at once: 4 + 1 optimistic.
    let unchoked = (1..=6)
        .filter(|t| sent(&mut s, *t).contains(&Message::Unchoke))
        .count();
    assert_eq!(unchoked, 5);
    s.tick(t0);
    s.tick(t0 + Duration::from_secs(11));
    let _ = actions(&mut s);
    assert!(s.unchoked_interested() <= 5);
}

/// A seeder's unchoked peer that finishes (not interested any more) or
/// leaves frees its slot at once for a peer still waiting, instead of
/// leaving it idle until the next round; a peer that lost interest holds
/// no slot.
#[test]
fn freed_upload_slots_are_filled_before_the_next_round() {
    let mut s = session();
    let t0 = Instant::now();
    for piece in 0..4 {
        s.set_have(piece);
    }
    for t in 1..=8 {
        s.on_connection(t, addr(t as u16), false, t0);
        let mut bytes = handshake([t as u8; 20], true);
        bytes.extend(bytes_of(&[Message::HaveNone, Message::Interested]));
        s.on_data(t, &bytes, t0);
    }
    let mut unchoked: Vec<Token> = (1..=8)
        .filter(|t| sent(&mut s, *t).contains(&Message::Unchoke))
        .collect();
    assert_eq!(unchoked.len(), 5, "4 + 1 optimistic");
    let waiting = |s: &mut Session, unchoked: &[Token]| -> Vec<Token> {
        (1..=8)
            .filter(|t| !unchoked.contains(t) && s.output(*t).is_some())
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|t| sent(s, *t).contains(&Message::Unchoke))
            .collect()
    };
    // One finishes: a waiting peer takes its slot in the same instant.
    let done = unchoked[0];
    s.on_data(done, &bytes_of(&[Message::NotInterested]), t0);
    let now_in = waiting(&mut s, &unchoked);
    assert_eq!(now_in.len(), 1, "one waiting peer unchoked: {now_in:?}");
    unchoked.extend(&now_in);
    // One leaves: the same.
    let gone = unchoked[1];
    s.on_closed(gone, CloseReason::ClosedByPeer, t0);
    let now_in = waiting(&mut s, &unchoked);
    assert_eq!(now_in.len(), 1, "one waiting peer unchoked: {now_in:?}");
    unchoked.extend(&now_in);
    // A choked peer leaving frees nothing.
    let choked = (1..=8).find(|t| !unchoked.contains(t)).unwrap();
    s.on_closed(choked, CloseReason::ClosedByPeer, t0);
    assert!(waiting(&mut s, &unchoked).is_empty());
    assert_eq!(s.unchoked_interested(), 5);
}

#[test]
fn random_garbage_never_panics() {
    use rand::{Rng, RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    for round in 0..300 {
        let mut s = session();
        let t0 = Instant::now();
        s.on_connection(1, addr(1), round % 2 == 0, t0);
        let mut bytes = handshake([3; 20], round % 3 != 0);
        // Mostly well-framed messages with random ids and payloads, some
        // raw garbage, fed in random splits.
        for _ in 0..rng.gen_range(1..40) {
            if rng.gen_bool(0.8) {
                let len = rng.gen_range(1..40u32);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.push(rng.gen_range(0..22));
                let mut payload = vec![0u8; len as usize - 1];
                rng.fill_bytes(&mut payload);
                // Small numbers make indices valid more often.
                if rng.gen_bool(0.5) {
                    for b in payload.iter_mut().step_by(2) {
                        *b = 0;
                    }
                }
                bytes.extend_from_slice(&payload);
            } else {
                let mut junk = vec![0u8; rng.gen_range(1..20)];
                rng.fill_bytes(&mut junk);
                bytes.extend_from_slice(&junk);
            }
        }
        let mut pos = 0;
        let mut now = t0;
        while pos < bytes.len() {
            let n = rng.gen_range(1..=bytes.len() - pos);
            s.on_data(1, &bytes[pos..pos + n], now);
            pos += n;
            now += Duration::from_millis(rng.gen_range(0..3000));
            s.tick(now);
            for a in actions(&mut s) {
                if let Action::Verify { piece, buf } = a {
                    s.on_verified(piece, rng.gen_bool(0.5), buf, now);
                }
            }
        }
    }
}

/// Runs the in-memory swarm of `crate::sim` to the end and checks every
/// node got the content.
fn simulate_swarm(
    leechers: usize,
    pieces: usize,
    peer_id_prefix: &[u8; 8],
    seed_rate: usize,
    seeder_slots: usize,
) -> crate::sim::Swarm {
    let cfg = crate::sim::SimConfig {
        leechers,
        pieces,
        peer_id_prefix: *peer_id_prefix,
        seeder_rate: seed_rate,
        seeder_slots,
        ..Default::default()
    };
    let mut swarm = crate::sim::Swarm::new(cfg, |_| None);
    assert!(swarm.run(), "every node completes");
    for i in 0..=leechers {
        assert!(swarm.holds_content(i), "node {i} holds the right data");
    }
    swarm
}

/// Shows the core runs without any I/O and that leechers trade pieces
/// among themselves.
#[test]
fn simulated_swarm_completes_and_leechers_trade() {
    const PIECES: usize = 64;
    const PLEN: u64 = 32768;
    let swarm = simulate_swarm(4, PIECES, b"-BT0100-", 64 * 1024, 1);
    let nodes = &swarm.nodes;
    let leecher_upload: u64 = nodes[1..].iter().map(|n| n.session.totals().uploaded).sum();
    assert!(
        leecher_upload > PIECES as u64 * PLEN,
        "leechers uploaded to each other ({leecher_upload} bytes)"
    );
    let seeder_upload = nodes[0].session.totals().uploaded;
    assert!(
        seeder_upload < 4 * PIECES as u64 * PLEN,
        "the seeder did not have to send everything to everyone"
    );
}

/// The seed split: leechers running this program ask a slow seed for
/// different pieces and get the rest from each other, so the seed sends
/// little more than one copy; leechers with foreign peer ids (no split)
/// make it send many pieces twice.
#[test]
fn seed_split_keeps_a_slow_seed_from_sending_pieces_twice() {
    const PIECES: usize = 192;
    const PLEN: u64 = 32768;
    let file = PIECES as u64 * PLEN;
    let ratio = |prefix: &[u8; 8]| {
        let swarm = simulate_swarm(6, PIECES, prefix, 16 * 1024, 8);
        swarm.nodes[0].session.totals().uploaded as f64 / file as f64
    };
    let split = ratio(b"-BT0100-");
    let random = ratio(b"-XX0100-");
    assert!(
        split < 1.03,
        "with the split the seed sent {split:.3} x the file"
    );
    assert!(
        random > split + 0.05,
        "without it more ({random:.3} x against {split:.3} x)"
    );
}

/// The pieces of the seed-split tests' torrent.
const SPLIT_PIECES: usize = 64;
/// The cooperating leecher next to the session in the seed-split tests.
const OTHER_LEECHER: [u8; 20] = *b"-BT0100-bbbbbbbbbbbb";

/// A session of `SPLIT_PIECES` pieces (the seed split off if
/// `no_seed_split`) with `OTHER_LEECHER` on token 2, which has nothing
/// yet, and a seed on token 1; the time it starts.
fn split_beside_a_leecher_and_a_seed(no_seed_split: bool) -> (Session, Instant) {
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 3;
    cfg.ablation.no_seed_split = no_seed_split;
    let mut s = Session::new(cfg, 16384, SPLIT_PIECES as u64 * 16384, SPLIT_PIECES);
    let t0 = Instant::now();
    s.on_connection(2, addr(1002), true, t0);
    s.on_connected(2);
    let mut bytes = handshake(OTHER_LEECHER, true);
    bytes.extend(bytes_of(&[Message::HaveNone]));
    s.on_data(2, &bytes, t0);
    seeding_peer(&mut s, 1, 1, t0);
    (s, t0)
}

/// Whether the seed split gives `piece` to this session rather than to
/// `OTHER_LEECHER`.
fn split_mine(piece: u32) -> bool {
    split_score(split_key(&ME), piece as usize)
        > split_score(split_key(&OTHER_LEECHER), piece as usize)
}

/// The split in one session: a seed is asked first for the pieces this
/// leecher owns (the other cooperating leecher scores lower on them),
/// all of them; then, since the other leecher passes nothing on, for the
/// rest, so an owner that never fetches its share cannot stall the
/// download.
#[test]
fn seed_split_asks_only_for_own_pieces_until_idle() {
    let (mut s, t0) = split_beside_a_leecher_and_a_seed(false);
    let own: Vec<u32> = (0..SPLIT_PIECES as u32)
        .filter(|&p| split_mine(p))
        .collect();
    assert!(own.len() > 16 && own.len() < 48, "about half are ours");
    let mut got = Vec::new();
    let mut later = Vec::new();
    let mut now = t0;
    for _ in 0..200 {
        now += Duration::from_millis(20);
        let reqs = requests(&sent(&mut s, 1));
        for &(index, begin) in &reqs {
            if got.len() < own.len() {
                assert!(split_mine(index), "piece {index} is the other leecher's");
                got.push(index);
            } else {
                later.push((index, begin));
            }
            send_zero_block(&mut s, 1, index, begin, now);
        }
        actions(&mut s);
        if got.len() == own.len() {
            break;
        }
        s.tick(now);
    }
    got.sort_unstable();
    assert_eq!(got, own, "every own piece, once");
    // The other leecher never delivers.
    for _ in 0..200 {
        now += Duration::from_millis(100);
        s.tick(now);
        later.extend(requests(&sent(&mut s, 1)));
        if !later.is_empty() {
            break;
        }
    }
    let waited = now.saturating_duration_since(t0);
    assert!(
        later.iter().any(|&(p, _)| !split_mine(p)),
        "after {waited:?} the seed is asked for the other leecher's pieces too"
    );
}

/// The ablation switch `no_seed_split`: with the same cooperating leecher
/// next to it, the first requests to a seed include the other leecher's
/// pieces (with the split they never do, see the test above).
#[test]
fn seed_split_off_asks_a_seed_for_any_piece() {
    let (mut s, _) = split_beside_a_leecher_and_a_seed(true);
    let reqs = requests(&sent(&mut s, 1));
    assert!(!reqs.is_empty(), "the seed is asked at once");
    assert!(
        reqs.iter().any(|&(p, _)| !split_mine(p)),
        "without the split the other leecher's pieces are asked for too: {reqs:?}"
    );
}

/// The session says when it needs the clock: at once while it can start
/// connections, then at the next per-second round; a due retry brings
/// that forward.
#[test]
fn poll_timeout_says_when_to_tick() {
    let mut s = session();
    let t0 = Instant::now();
    assert_eq!(s.poll_timeout(t0), t0, "never ticked");
    s.tick(t0);
    assert_eq!(s.poll_timeout(t0), t0 + Duration::from_secs(1));
    s.add_candidate(addr(7), Origin::Api);
    assert_eq!(s.poll_timeout(t0), t0, "a peer to connect to");
    s.tick(t0);
    assert!(matches!(actions(&mut s).as_slice(), [Action::Connect(a)] if *a == addr(7)));
    // The connection fails: a retry 4 s later, after the next round.
    s.on_connection(1, addr(7), true, t0);
    s.on_closed(1, CloseReason::ConnectFailed("refused".into()), t0);
    let t1 = t0 + Duration::from_millis(1500);
    s.tick(t1);
    assert_eq!(s.poll_timeout(t1), t1 + Duration::from_secs(1));
    let t2 = t0 + Duration::from_millis(3500);
    s.tick(t2);
    assert_eq!(s.poll_timeout(t2), t0 + Duration::from_secs(4), "the retry");
    s.tick(t0 + Duration::from_secs(4));
    assert!(actions(&mut s)
        .iter()
        .any(|a| matches!(a, Action::Connect(x) if *x == addr(7))));
}

#[test]
fn awaiting_metadata_has_nothing_and_ignores_piece_messages() {
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 1;
    let mut s = Session::awaiting_metadata(cfg);
    assert_eq!(s.phase(), Phase::AwaitingMetadata);
    assert!(!s.is_complete());
    let now = Instant::now();
    s.on_connection(0, addr(1), true, now);
    s.on_connected(0);
    s.on_connection(1, addr(2), false, now);
    // A seed (have-all) and a leecher (a bitfield and haves of its own
    // torrent's size, which we cannot check yet).
    let mut seed = handshake(*b"-XX0001-seedseedseed", true);
    wire::encode(&Message::HaveAll, &mut seed);
    s.on_data(0, &seed, now);
    let mut leech = handshake(*b"-XX0001-leechleechle", false);
    wire::encode(&Message::Bitfield(&[0xff, 0x80]), &mut leech);
    wire::encode(&Message::Have(3), &mut leech);
    s.on_data(1, &leech, now);
    let acts = actions(&mut s);
    assert!(!closed(&acts, 0) && !closed(&acts, 1), "{acts:?}");
    assert_eq!(s.peer_count(), 2);
    // We say we have nothing, and want nothing (no interest, no request).
    let to_seed = sent(&mut s, 0);
    assert!(
        to_seed.iter().any(|m| matches!(m, Message::HaveNone)),
        "{to_seed:?}"
    );
    assert!(!to_seed.iter().any(|m| matches!(
        m,
        Message::Interested | Message::Request { .. } | Message::HaveAll
    )));
    assert!(
        sent(&mut s, 1).is_empty(),
        "no bitfield to a peer without the fast extension"
    );
    s.tick(now + Duration::from_secs(2));
    assert!(!closed(&actions(&mut s), 0), "two 'seeds' are not dropped");
}

#[test]
fn dht_port_message_both_ways() {
    // Without a DHT node: no DHT bit, no port message, a peer's port ignored.
    let t0 = Instant::now();
    let mut s = session();
    s.on_connection(1, addr(1), true, t0);
    s.on_connected(1);
    let out = s.output(1).unwrap().pending().to_vec();
    assert_eq!(out[27] & 0x01, 0);
    let mut hs = Handshake::ours(HASH, [1; 20]);
    hs.reserved[7] |= 0x01;
    let mut bytes = Vec::new();
    hs.encode(&mut bytes);
    s.on_data(1, &bytes, t0);
    s.on_data(1, &bytes_of(&[Message::Port(7000)]), t0);
    assert!(!sent(&mut s, 1)
        .iter()
        .any(|m| matches!(m, Message::Port(_))));
    assert!(!actions(&mut s)
        .iter()
        .any(|a| matches!(a, Action::Event(Event::DhtNode { .. }))));

    // With one: the DHT bit is set, a peer with the bit gets our port, a
    // peer's port becomes a node to add; a peer without the bit gets none.
    let mut cfg = Config::new(HASH, ME);
    cfg.dht_port = Some(6999);
    let mut s = Session::new(cfg, 32768, 4 * 32768, 4);
    s.on_connection(1, addr(1), true, t0);
    s.on_connected(1);
    let out = s.output(1).unwrap().pending().to_vec();
    assert_eq!(out[27] & 0x01, 0x01, "DHT bit in our handshake");
    s.on_data(1, &bytes, t0);
    assert!(sent(&mut s, 1).contains(&Message::Port(6999)));
    s.on_data(1, &bytes_of(&[Message::Port(7000)]), t0);
    let acts = actions(&mut s);
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Event(Event::DhtNode { addr: a }) if *a == addr(7000)
    )));
    s.on_connection(2, addr(2), true, t0);
    s.on_connected(2);
    s.on_data(2, &handshake([2; 20], true), t0);
    assert!(!sent(&mut s, 2)
        .iter()
        .any(|m| matches!(m, Message::Port(_))));
}

#[test]
fn download_limit_paces_requests_in_virtual_time() {
    // 64 pieces of 2 blocks; 64 KiB/s is four blocks a second, and the
    // bucket holds one block.
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 42;
    cfg.max_download_rate = Some(64 << 10);
    let mut s = Session::new(cfg, 32768, 64 * 32768, 64);
    let t0 = Instant::now();
    let mut now = t0;
    seeding_peer(&mut s, 1, 9, now);
    let mut requested = 0;
    // A peer that answers every request at once, for 5 virtual seconds.
    for _ in 0..100_000 {
        let reqs = requests(&sent(&mut s, 1));
        requested += reqs.len();
        for (i, b) in &reqs {
            send_zero_block(&mut s, 1, *i, *b, now);
        }
        actions(&mut s);
        if !reqs.is_empty() {
            continue;
        }
        let next = s.poll_timeout(now);
        now = next.max(now + Duration::from_millis(1));
        if now >= t0 + Duration::from_secs(5) {
            break;
        }
        s.tick(now);
    }
    // One block at once, then four a second: 21 at most; the wake-ups
    // must keep it close to that (not a block per one-second round).
    assert!(requested <= 21, "{requested} blocks requested in 5 s");
    assert!(requested >= 18, "only {requested} blocks in 5 s");
}

/// An incoming peer that sends its handshake (and, if `interested`, an
/// interested message) at `now`.
fn incoming_peer(s: &mut Session, t: Token, interested: bool, now: Instant) {
    s.on_connection(t, addr(2000 + t as u16), false, now);
    let mut pid = [t as u8; 20];
    pid[0] = b'-';
    let mut bytes = handshake(pid, true);
    if interested {
        bytes.extend(bytes_of(&[Message::Interested]));
    }
    s.on_data(t, &bytes, now);
}

fn reasons_of(s: &Session, t: Token) -> Vec<String> {
    s.closed_reasons
        .iter()
        .filter(|(x, _)| *x == t)
        .map(|(_, r)| r.to_string())
        .collect()
}

/// Connections still in their handshake have their own budget: past it
/// the least advanced is evicted (fewest bytes, then oldest), never a peer
/// slot, and a real peer arriving behind a thousand silent connections
/// gets in.
#[test]
fn half_open_budget_evicts_the_least_advanced_and_spares_the_peer_slots() {
    let mut s = session();
    let t0 = Instant::now();
    incoming_peer(&mut s, 1, true, t0);
    assert_eq!(s.peer_count(), 1);
    // An MSE peer in the middle of its handshake (its public key sent):
    // ahead of every silent connection, it is never the one evicted.
    s.on_connection(50, addr(50), false, t0);
    s.on_data(50, &[0xa5; 96], t0);
    for t in 100..1100 {
        s.on_connection(
            t,
            addr(t as u16),
            false,
            t0 + Duration::from_micros(t as u64),
        );
    }
    let live_half_open = s.half_open_incoming();
    assert_eq!(live_half_open.len(), MAX_HALF_OPEN);
    assert_eq!(
        live_half_open[0],
        1100 - MAX_HALF_OPEN + 1,
        "the newest stay"
    );
    assert_eq!(live_half_open.last(), Some(&50), "the MSE peer stays");
    assert_eq!(
        reasons_of(&s, 100),
        ["evicted to make room for another peer"]
    );
    assert!(closed(&actions(&mut s), 100));
    assert!(reasons_of(&s, 1).is_empty(), "the established peer stays");
    assert!(reasons_of(&s, 50).is_empty());
    incoming_peer(&mut s, 2000, false, t0 + Duration::from_millis(5));
    assert_eq!(s.peer_count(), 2, "a real peer gets in");
    assert_eq!(s.connection_count(), 2 + MAX_HALF_OPEN - 1);
}

/// A connection that sends nothing goes after FIRST_BYTES_TIMEOUT; one
/// that sends its handshake byte by byte after HANDSHAKE_TIMEOUT.
#[test]
fn silent_and_slowloris_connections_time_out() {
    let mut s = session();
    let t0 = Instant::now();
    s.tick(t0);
    s.on_connection(1, addr(1), false, t0);
    s.on_connection(2, addr(2), false, t0);
    let hs = handshake([2; 20], true);
    let mut now = t0;
    for (i, b) in hs.iter().take(HANDSHAKE_LEN - 1).enumerate() {
        now = t0 + Duration::from_millis(500 * i as u64);
        s.on_data(2, std::slice::from_ref(b), now);
        s.tick(now);
        if now > t0 + FIRST_BYTES_TIMEOUT + Duration::from_secs(1) {
            assert_eq!(reasons_of(&s, 1), ["no handshake in time"], "silent");
        }
        if now <= t0 + HANDSHAKE_TIMEOUT {
            assert!(reasons_of(&s, 2).is_empty(), "slow but in time");
        }
    }
    assert!(now > t0 + HANDSHAKE_TIMEOUT + Duration::from_secs(1));
    assert_eq!(reasons_of(&s, 2), ["no handshake in time"]);
}

/// A full table makes room for a newcomer past its handshake by evicting
/// the least useful peer: no interest either way first. Peers that send
/// us data or that we upload to at a good rate are never evicted; when
/// all are such, the newcomer is refused.
#[test]
fn full_table_evicts_the_least_useful_peer_or_refuses_the_newcomer() {
    let mut cfg = Config::new(HASH, ME);
    cfg.seed = 42;
    cfg.max_peers = 3;
    let mut s = Session::new(cfg, 32768, 4 * 32768, 4);
    let t0 = Instant::now();
    incoming_peer(&mut s, 1, true, t0);
    incoming_peer(&mut s, 2, false, t0);
    incoming_peer(&mut s, 3, true, t0);
    assert_eq!(s.peer_count(), 3);
    incoming_peer(&mut s, 4, false, t0 + Duration::from_secs(1));
    assert_eq!(
        reasons_of(&s, 2),
        ["evicted to make room for another peer"],
        "the one with no interest"
    );
    assert_eq!(s.peer_count(), 3);
    // Everyone useful now: 1 and 4 send us data, we feed 3 fast.
    for t in [1, 3, 4] {
        let p = s.peers.get_mut(&t).unwrap();
        if t == 3 {
            p.am_choking = false;
            p.up.add(1 << 20);
        } else {
            p.down.add(1 << 20);
        }
        p.up.update(1.0);
        p.down.update(1.0);
    }
    incoming_peer(&mut s, 5, true, t0 + Duration::from_secs(2));
    assert_eq!(reasons_of(&s, 5), ["too many peers"]);
    assert_eq!(s.peer_count(), 3);
    for t in [1, 3, 4] {
        assert!(reasons_of(&s, t).is_empty(), "peer {t} kept");
    }
    // Outgoing connections respect the table too: none started while full.
    s.add_candidate(addr(9), Origin::Api);
    s.tick(t0 + Duration::from_secs(3));
    assert!(!actions(&mut s)
        .iter()
        .any(|a| matches!(a, Action::Connect(_))));
}

/// Keep-alives alone do not keep a peer with no interest either way; an
/// interested peer waiting for an unchoke stays.
#[test]
fn keep_alive_only_peers_idle_out_unless_interested() {
    let mut s = session();
    let t0 = Instant::now();
    s.tick(t0);
    incoming_peer(&mut s, 1, false, t0);
    incoming_peer(&mut s, 2, true, t0);
    let mut now = t0;
    for i in 1..=200u64 {
        now = t0 + Duration::from_secs(i);
        for t in [1, 2] {
            s.on_data(t, &bytes_of(&[Message::KeepAlive]), now);
        }
        s.tick(now);
    }
    assert!(now > t0 + IDLE_TIMEOUT);
    assert_eq!(reasons_of(&s, 1), ["idle for too long"]);
    assert!(reasons_of(&s, 2).is_empty());
}

/// 100 000 requests from one peer: the queue stays at its cap, and the
/// peer is either answered with rejects (fast extension) or dropped.
#[test]
fn a_hundred_thousand_requests_stay_bounded() {
    let mut s = session();
    for i in 0..4 {
        s.set_have(i);
    }
    let t0 = Instant::now();
    s.tick(t0);
    incoming_peer(&mut s, 1, true, t0);
    s.set_choke(1, false, t0);
    let mut batch = Vec::new();
    for i in 0..100_000u32 {
        let m = Message::Request {
            index: i % 4,
            begin: (i / 4 % 2) * 16384,
            length: 16384,
        };
        wire::encode(&m, &mut batch);
        if batch.len() > 16 << 10 {
            s.on_data(1, &batch, t0);
            batch.clear();
            if let Some(p) = s.peers.get(&1) {
                assert!(p.requests_in.len() <= MAX_QUEUED_REQUESTS);
                assert!(p.out.len() <= MAX_UNSENT + (16 << 10));
            }
        }
    }
    s.on_data(1, &batch, t0);
    match s.peers.get(&1) {
        Some(p) => assert!(p.requests_in.len() <= MAX_QUEUED_REQUESTS),
        None => assert_eq!(reasons_of(&s, 1), ["does not read what we send"]),
    }
}

/// A seeder's stream of visitors, for the leak check: each connects from
/// a new port, says its listen port (or not), becomes interested, asks
/// for blocks, is served or killed mid-request, tells the seeder about
/// other peers through PEX, and goes. The test answers the seeder's
/// actions as a driver would: reads with zeros, dials to a visitor still
/// connected with that visitor's identity, dials to "seed" addresses with
/// a seed (both seeds: pointless), every other dial with a refusal.
struct Visits {
    s: Session,
    now: Instant,
    /// Tokens to reuse, as `fetch`'s driver does.
    free: Vec<Token>,
    next_token: Token,
    /// Live connections: which visitor is behind each (`usize::MAX`: a
    /// seed the seeder dialled).
    conns: BTreeMap<Token, usize>,
    /// Listen address and peer id of each visitor still here.
    here: BTreeMap<usize, (SocketAddr, [u8; 20])>,
    /// Reads held back while a visitor is being killed mid-request.
    held_reads: Vec<UploadRead>,
    serve_reads: bool,
    /// What happened, to show the test covers it: blocks and PEX
    /// messages sent, metadata answers, refused dials.
    seen: BTreeMap<&'static str, usize>,
}

/// Local ids of our extensions in the seeder (registration order).
const LEAK_UT_METADATA: u8 = 1;
const LEAK_UT_PEX: u8 = 2;

impl Visits {
    fn new() -> Visits {
        let mut cfg = Config::new(HASH, ME);
        cfg.seed = 7;
        cfg.listen_port = 6881;
        let mut s = Session::new(cfg, 32768, 4 * 32768, 4);
        for piece in 0..4 {
            s.set_have(piece);
        }
        assert_eq!(s.phase(), Phase::Seeding);
        let info = std::sync::Arc::new(vec![b'x'; 20_000]);
        assert!(
            s.register_extension(Box::new(crate::ut_metadata::UtMetadata::serving(
                HASH, info
            )))
        );
        assert!(s.register_extension(Box::new(crate::pex::Pex::new())));
        Visits {
            s,
            now: Instant::now(),
            free: Vec::new(),
            next_token: 1,
            conns: BTreeMap::new(),
            here: BTreeMap::new(),
            held_reads: Vec::new(),
            serve_reads: true,
            seen: BTreeMap::new(),
        }
    }

    fn token(&mut self) -> Token {
        self.free.pop().unwrap_or_else(|| {
            self.next_token += 1;
            self.next_token - 1
        })
    }

    fn listen_of(i: usize) -> SocketAddr {
        addr(10_000 + i as u16)
    }

    /// Half the visitors sort below our id, half above: both sides of the
    /// duplicate-connection rule.
    fn peer_id(i: usize) -> [u8; 20] {
        let mut id = [b'0' + (i % 10) as u8; 20];
        id[..2].copy_from_slice(if i % 2 == 0 { b"-A" } else { b"-Z" });
        id[2..10].copy_from_slice(&(i as u64).to_be_bytes());
        id
    }

    /// Addresses PEX hands out that are not visitors: even ones refuse
    /// connections, odd ones are seeds.
    fn stranger(i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], 20_000 + i as u16))
    }

    fn close_token(&mut self, t: Token) {
        if self.conns.remove(&t).is_some() {
            self.free.push(t);
        }
    }

    /// Carries out the seeder's actions until none is left; drains every
    /// output as if sent.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let Some(action) = self.s.next_action() else {
                break;
            };
            match action {
                Action::Read(r) if self.serve_reads => {
                    let data = vec![0u8; r.length as usize];
                    self.s.on_read(&r, &data, self.now);
                }
                Action::Read(r) => self.held_reads.push(r),
                Action::Close(t) => self.close_token(t),
                Action::Connect(a) => self.dial(a),
                Action::Verify { piece, .. } => panic!("a seeder verifies piece {piece}"),
                Action::Event(_) => {}
            }
        }
        assert!(self.s.next_action().is_none(), "actions without end");
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for t in tokens {
            let Some(out) = self.s.output(t) else {
                continue;
            };
            let mut bytes = out.pending();
            let n = bytes.len();
            if bytes.len() >= HANDSHAKE_LEN && bytes[0] == 19 {
                bytes = &bytes[HANDSHAKE_LEN..];
            }
            while let Ok(Some((m, used))) = wire::parse(bytes, 1 << 20) {
                let what = match m {
                    Message::Piece { .. } => "blocks sent",
                    Message::Extended { id: 1, .. } => "pex messages sent",
                    Message::Extended { id: 2, .. } => "metadata messages sent",
                    _ => "other messages sent",
                };
                *self.seen.entry(what).or_default() += 1;
                bytes = &bytes[used..];
            }
            out.consume(n);
            self.s.on_sent(t);
        }
    }

    fn dial(&mut self, a: SocketAddr) {
        let now = self.now;
        let visitor = self
            .here
            .iter()
            .find(|(_, (l, _))| *l == a)
            .map(|(i, v)| (*i, v.1));
        let seed = a.ip() == Self::stranger(0).ip() && a.port() % 2 == 1;
        if visitor.is_none() && !seed {
            *self.seen.entry("dials refused").or_default() += 1;
            self.s
                .on_connect_failed(a, "connection refused".into(), now);
            return;
        }
        let t = self.token();
        self.conns.insert(t, visitor.map_or(usize::MAX, |v| v.0));
        self.s.on_connection(t, a, true, now);
        self.s.on_connected(t);
        let mut bytes = match visitor {
            Some((_, id)) => handshake(id, true),
            None => handshake([b's'; 20], true),
        };
        bytes.extend(bytes_of(&[if seed {
            Message::HaveAll
        } else {
            Message::HaveNone
        }]));
        self.s.on_data(t, &bytes, now);
    }

    fn seconds(&mut self, n: u32) {
        for _ in 0..n {
            self.now += Duration::from_secs(1);
            self.s.tick(self.now);
            self.pump();
        }
    }

    /// Visitor `i` arrives, is served (or killed mid-request) and tells
    /// of others by PEX; visitor `i - 1` leaves meanwhile.
    fn visit(&mut self, i: usize) {
        let now = self.now;
        let t = self.token();
        self.conns.insert(t, i);
        let listen = Self::listen_of(i);
        let id = Self::peer_id(i);
        self.here.insert(i, (listen, id));
        self.s.on_connection(t, addr(30_000 + i as u16), false, now);
        // Every third visitor does not say its listen port (clients may
        // not): the seeder learns it only from PEX, and dials it.
        let port = if i % 3 == 2 { 0 } else { listen.port() };
        let ext = wire::encode_ext_handshake(
            "visitor",
            port,
            250,
            &[("ut_pex", 1), ("ut_metadata", 2)],
            |_| {},
        );
        let mut bytes = handshake(id, true);
        bytes.extend(bytes_of(&[
            Message::Extended {
                id: wire::EXT_HANDSHAKE,
                payload: &ext,
            },
            Message::HaveNone,
            Message::Interested,
        ]));
        self.s.on_data(t, &bytes, now);
        self.pump();
        assert!(self.s.unchokes(t), "visitor {i} unchoked on interest");
        // Killed mid-request: the reads are still with the disk when the
        // connection dies, and come back after.
        let killed = i % 4 == 1;
        self.serve_reads = !killed;
        let mut asks = Vec::new();
        for b in 0..6u32 {
            asks.push(Message::Request {
                index: (i as u32 + b / 2) % 4,
                begin: (b % 2) * 16384,
                length: 16384,
            });
        }
        let meta = crate::ut_metadata::encode(&crate::ut_metadata::Msg::Request { piece: 0 });
        asks.push(Message::Extended {
            id: LEAK_UT_METADATA,
            payload: &meta,
        });
        // PEX: the visitor before (still here), a stranger, and the one
        // before that as dropped.
        let mut added = vec![(Self::stranger(i), 0)];
        if i >= 1 {
            added.push((Self::listen_of(i - 1), 0));
        }
        let dropped = if i >= 2 {
            vec![Self::listen_of(i - 2)]
        } else {
            vec![]
        };
        let pex = crate::pex::encode(&crate::pex::PexMsg { added, dropped });
        asks.push(Message::Extended {
            id: LEAK_UT_PEX,
            payload: &pex,
        });
        self.s.on_data(t, &bytes_of(&asks), now);
        self.pump();
        // The seeder dials what PEX told it and sends PEX itself (5 s
        // after a handshake), and runs a choke round.
        self.seconds(12);
        if killed {
            self.s.on_closed(
                t,
                CloseReason::Transport("connection reset".into()),
                self.now,
            );
            self.close_token(t);
            self.serve_reads = true;
            for r in std::mem::take(&mut self.held_reads) {
                let data = vec![0u8; r.length as usize];
                self.s.on_read(&r, &data, self.now);
            }
            self.here.remove(&i);
        }
        // The one before leaves (closing every connection it has with us).
        if i >= 1 {
            self.leave(i - 1);
        }
        self.pump();
    }

    fn leave(&mut self, i: usize) {
        self.here.remove(&i);
        let tokens: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, v)| **v == i)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            self.s.on_closed(t, CloseReason::ClosedByPeer, self.now);
            self.close_token(t);
        }
    }

    /// Everyone leaves; 10 minutes pass (retries run out, PEX and the
    /// choker run with nobody).
    fn settle(&mut self) -> BTreeMap<&'static str, usize> {
        let everyone: Vec<usize> = self.here.keys().copied().collect();
        for i in everyone {
            self.leave(i);
        }
        self.pump();
        self.seconds(600);
        assert!(self.conns.is_empty(), "connections left: {:?}", self.conns);
        assert_eq!(self.s.connection_count(), 0);
        self.s.table_sizes()
    }
}

/// Nothing of a peer outlives it: after hundreds of visitors (served,
/// killed mid-request, telling of others by PEX, dialled back as
/// duplicates, seeds or refusals), every table holding something per peer
/// or per address is back to its size after the first visitor left.
#[test]
fn visitors_that_come_and_go_leave_nothing_behind() {
    let mut v = Visits::new();
    v.visit(0);
    let first = v.settle();
    for i in 1..300 {
        v.visit(i);
    }
    let last = v.settle();
    let lens = |m: &BTreeMap<&'static str, usize>| -> Vec<(&'static str, usize)> {
        m.iter()
            .filter(|(k, _)| !k.starts_with("cap:"))
            .map(|(k, n)| (*k, *n))
            .collect()
    };
    eprintln!("after 1 visitor: {first:?}\nafter 300: {last:?}");
    assert_eq!(
        lens(&first),
        lens(&last),
        "tables after 1 and after 300 visitors"
    );
    // Every path was taken, many times.
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r) in &v.s.closed_reasons {
        *reasons.entry(format!("{r:?}")).or_default() += 1;
    }
    eprintln!(
        "{:?}\nclosed: {reasons:?}\nbytes per queued action {}, per read {}",
        v.seen,
        std::mem::size_of::<Action>(),
        std::mem::size_of::<UploadRead>()
    );
    for (what, at_least) in [
        ("blocks sent", 300 * 4),
        ("pex messages sent", 100),
        ("metadata messages sent", 300),
        ("dials refused", 100),
    ] {
        assert!(v.seen.get(what).copied().unwrap_or(0) >= at_least, "{what}");
    }
    for (reason, at_least) in [
        ("Duplicate", 50),
        ("BothComplete", 100),
        ("ClosedByPeer", 100),
        ("Transport(\"connection reset\")", 50),
    ] {
        assert!(
            reasons.get(reason).copied().unwrap_or(0) >= at_least,
            "{reason}"
        );
    }
}

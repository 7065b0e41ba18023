//! Tests of the PEX codec and state machine, and an in-memory swarm of
//! real sessions where a magnet node fetches the metadata (BEP 9) and
//! then finds, through PEX, a peer only its first peer knew.

use super::*;
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::session::{Action, CloseReason, Config, Event, Origin, Session};
use crate::ut_metadata::{MetadataSlot, UtMetadata};

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn codec_round_trips_both_families() {
    let m = PexMsg {
        added: vec![(a("10.0.0.1:6881"), FLAG_REACHABLE), (a("[::1]:7"), 0)],
        dropped: vec![a("10.0.0.2:1"), a("[2001:db8::1]:2")],
    };
    let e = encode(&m);
    assert_eq!(decode(&e, 50).unwrap(), m);
    // Missing keys and a trailing partial entry.
    let d = decode(b"d5:added8:\x0a\x00\x00\x01\x1a\xe1\x01\x02e", 50).unwrap();
    assert_eq!(d.added, vec![(a("10.0.0.1:6881"), 0)]);
    assert!(decode(b"le", 50).is_err());
    assert!(decode(b"xx", 50).is_err());
    // The limit applies per family.
    let many = PexMsg {
        added: (1..=80)
            .map(|i| (SocketAddr::from(([10, 0, 1, i], 1)), 0))
            .collect(),
        dropped: vec![],
    };
    assert_eq!(decode(&encode(&many), 50).unwrap().added.len(), 50);
}

fn hs(port: Option<u16>) -> ExtHandshake {
    ExtHandshake {
        extensions: vec![(NAME.into(), 1)],
        listen_port: port,
        ..Default::default()
    }
}

#[test]
fn sends_connected_peers_then_drops_and_bounds() {
    let mut p = Pex::new();
    let t0 = Instant::now();
    let mut ctx = ExtContext::default();
    p.on_peer_addr(1, a("10.0.0.1:6881"), true);
    p.on_handshake(1, &hs(Some(6881)), true, t0, &mut ctx);
    // Incoming: its listen port comes from the handshake.
    p.on_peer_addr(2, a("10.0.0.2:40000"), false);
    p.on_handshake(2, &hs(Some(7000)), true, t0, &mut ctx);
    // Incoming without a listen port: never advertised.
    p.on_peer_addr(3, a("10.0.0.3:40000"), false);
    p.on_handshake(3, &hs(None), false, t0, &mut ctx);
    p.on_tick(t0 + FIRST_DELAY - Duration::from_millis(1), &mut ctx);
    assert!(ctx.outgoing.is_empty(), "not before the first delay");
    p.on_tick(t0 + FIRST_DELAY, &mut ctx);
    let sent: BTreeMap<Token, PexMsg> = ctx
        .outgoing
        .iter()
        .map(|(t, m)| (*t, decode(m, 50).unwrap()))
        .collect();
    assert_eq!(sent.len(), 2, "peer 3 does not support ut_pex");
    assert_eq!(sent[&1].added, vec![(a("10.0.0.2:7000"), 0)]);
    assert_eq!(sent[&2].added, vec![(a("10.0.0.1:6881"), FLAG_REACHABLE)]);
    // Peer 2 leaves: peer 1 hears it dropped, a minute later.
    p.on_peer_gone(2);
    let mut ctx = ExtContext::default();
    p.on_tick(t0 + FIRST_DELAY + INTERVAL / 2, &mut ctx);
    assert!(ctx.outgoing.is_empty(), "once a minute");
    p.on_tick(t0 + FIRST_DELAY + INTERVAL, &mut ctx);
    let m = decode(&ctx.outgoing[0].1, 50).unwrap();
    assert_eq!(m.dropped, vec![a("10.0.0.2:7000")]);
    assert!(m.added.is_empty());
}

#[test]
fn receiving_is_bounded_and_dropped_is_honoured() {
    let mut p = Pex::new();
    let t0 = Instant::now();
    let mut ctx = ExtContext::default();
    p.on_peer_addr(1, a("10.0.0.1:6881"), true);
    p.on_handshake(1, &hs(None), true, t0, &mut ctx);
    let msg = PexMsg {
        added: (1..=200)
            .map(|i| (SocketAddr::from(([10, 1, 0, i as u8], 1000 + i)), 0))
            .chain([(a("0.0.0.0:1"), 0), (a("10.9.9.9:0"), 0)])
            .collect(),
        dropped: vec![],
    };
    p.on_message(1, &encode(&msg), t0, &mut ctx);
    assert_eq!(ctx.candidates.len(), MAX_PER_MESSAGE);
    // Too soon: ignored.
    let mut ctx = ExtContext::default();
    p.on_message(1, &encode(&msg), t0 + MIN_GAP / 2, &mut ctx);
    assert!(ctx.candidates.is_empty());
    // Later, `dropped` forgets one we learnt; unknown ones are ignored.
    let gone = PexMsg {
        added: vec![],
        dropped: vec![a("10.1.0.1:1001"), a("10.7.7.7:1")],
    };
    p.on_message(1, &encode(&gone), t0 + MIN_GAP, &mut ctx);
    assert_eq!(ctx.dropped, vec![a("10.1.0.1:1001")]);
    assert_eq!(p.learnt(), MAX_PER_MESSAGE - 1);
    // Garbage ends the connection.
    let mut ctx = ExtContext::default();
    p.on_message(1, b"garbage", t0 + 2 * MIN_GAP, &mut ctx);
    assert_eq!(ctx.close.len(), 1);
}

/// What PEX took is remembered for `LEARNT_FOR`, not the whole run: the
/// total stays bounded (MAX_LEARNT within the window) yet, as the swarm
/// turns over, new addresses are taken again and old ones are forgotten.
#[test]
fn learnt_addresses_are_bounded_and_forgotten_after_a_while() {
    let mut p = Pex::new();
    let t0 = Instant::now();
    let mut ctx = ExtContext::default();
    for t in 0..4 {
        p.on_peer_addr(t, SocketAddr::from(([10, 0, 0, t as u8], 6881)), true);
        p.on_handshake(t, &hs(None), true, t0, &mut ctx);
    }
    // Four peers in turn, each once per MIN_GAP, each message with new
    // addresses, past the cap.
    let batch = |k: usize| PexMsg {
        added: (0..MAX_PER_MESSAGE)
            .map(|i| (SocketAddr::from(([10, 2, k as u8, i as u8], 7000)), 0))
            .collect(),
        dropped: vec![],
    };
    let mut now = t0;
    let mut taken = 0;
    for k in 0..MAX_LEARNT / MAX_PER_MESSAGE + 5 {
        let mut ctx = ExtContext::default();
        p.on_message(k % 4, &encode(&batch(k)), now, &mut ctx);
        p.on_tick(now, &mut ctx);
        taken += ctx.candidates.len();
        now += MIN_GAP / 4;
    }
    assert!(now < t0 + LEARNT_FOR, "all within the window");
    assert_eq!(taken, MAX_LEARNT, "the cap holds within the window");
    assert_eq!(p.learnt(), MAX_LEARNT);
    // Past the window (and the next sweep) everything is forgotten, and an
    // address seen before is taken again.
    let later = t0 + LEARNT_FOR + INTERVAL + MIN_GAP * 30;
    let mut ctx = ExtContext::default();
    p.on_tick(later, &mut ctx);
    assert_eq!(p.learnt(), 0);
    p.on_message(1, &encode(&batch(0)), later, &mut ctx);
    assert_eq!(ctx.candidates.len(), MAX_PER_MESSAGE);
}

/// Real sessions joined by in-memory connections: node `i` listens at
/// 10.0.0.(i+1):6881; a `Connect` to that address reaches it.
struct Net {
    nodes: Vec<Session>,
    links: BTreeMap<(usize, Token), (usize, Token)>,
    next_token: Vec<Token>,
    events: Vec<(usize, Event)>,
    now: Instant,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 6881))
}

impl Net {
    fn step(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            while let Some(act) = self.nodes[i].next_action() {
                match act {
                    Action::Connect(to) => {
                        let Some(j) = (0..self.nodes.len()).find(|&j| addr(j) == to) else {
                            self.nodes[i].on_connect_failed(to, "no such node".into(), now);
                            continue;
                        };
                        let (ti, tj) = (self.next_token[i], self.next_token[j]);
                        self.next_token[i] += 1;
                        self.next_token[j] += 1;
                        self.nodes[i].on_connection(ti, to, true, now);
                        self.nodes[i].on_connected(ti);
                        self.nodes[j].on_connection(tj, addr(i), false, now);
                        self.links.insert((i, ti), (j, tj));
                        self.links.insert((j, tj), (i, ti));
                    }
                    Action::Close(t) => {
                        if let Some((j, tj)) = self.links.remove(&(i, t)) {
                            self.links.remove(&(j, tj));
                            self.nodes[j].on_closed(tj, CloseReason::ClosedByPeer, now);
                        }
                    }
                    Action::Event(e) => self.events.push((i, e)),
                    Action::Verify { .. } | Action::Read(_) => {
                        panic!("no piece moves in this swarm")
                    }
                }
            }
        }
        let links: Vec<_> = self.links.iter().map(|(k, v)| (*k, *v)).collect();
        for ((i, ti), (j, tj)) in links {
            let Some(out) = self.nodes[i].output(ti) else {
                continue;
            };
            let bytes = out.pending().to_vec();
            out.consume(bytes.len());
            self.nodes[i].on_sent(ti);
            if !bytes.is_empty() && self.links.contains_key(&(j, tj)) {
                self.nodes[j].on_data(tj, &bytes, now);
            }
        }
        self.now += Duration::from_millis(100);
        for s in &mut self.nodes {
            if self.now >= s.poll_timeout(self.now) {
                s.tick(self.now);
            }
        }
    }

    fn connected(&self, i: usize, to: SocketAddr) -> Option<Origin> {
        self.events.iter().find_map(|(n, e)| match e {
            Event::PeerConnected { addr, source, .. } if *n == i && *addr == to => Some(*source),
            _ => None,
        })
    }
}

/// A small single-file info dictionary (4 pieces nobody has: no piece
/// moves, the peers stay connected).
fn info_dict() -> Vec<u8> {
    let mut d = b"d6:lengthi65536e4:name4:test12:piece lengthi16384e6:pieces80:".to_vec();
    d.extend((0..80u8).map(|i| i.wrapping_mul(7)));
    d.push(b'e');
    d
}

fn config(info_hash: [u8; 20], i: usize) -> Config {
    let mut c = Config::new(info_hash, crate::sim::node_peer_id(b"-BT0100-", i));
    c.listen_port = 6881;
    c.seed = i as u64;
    c
}

fn full_session(meta: &Metainfo, i: usize) -> Session {
    let info = &meta.info;
    let mut s = Session::new(
        config(meta.info_hash, i),
        info.piece_length,
        info.total_length,
        info.piece_count(),
    );
    for e in crate::fetch::torrent_extensions(meta) {
        assert!(s.register_extension(e));
    }
    s
}

#[test]
fn magnet_node_fetches_metadata_then_finds_a_peer_through_pex() {
    let info = info_dict();
    let hash = crate::sha1::sha1(&info);
    let link = format!("magnet:?xt=urn:btih:{}&dn=test", crate::hex::encode(&hash));
    let magnet = Magnet::parse(&link).unwrap();
    let meta = Metainfo::from_bytes(&magnet.torrent_bytes(&info)).unwrap();
    assert_eq!(meta.info_hash, hash);

    // Node 2 is the magnet: it knows node 0 only; node 0 knows node 1.
    // Node 1 runs no PEX (so it does not dial node 2 first).
    let mut node1 = Session::new(config(hash, 1), 16384, 65536, 4);
    let bytes = std::sync::Arc::new(meta.info_bytes.clone());
    assert!(node1.register_extension(Box::new(UtMetadata::serving(hash, bytes))));
    let slot = MetadataSlot::default();
    let mut magnet_session = Session::awaiting_metadata(config(hash, 2));
    assert!(magnet_session.register_extension(Box::new(UtMetadata::fetching(hash, slot.clone()))));
    magnet_session.add_candidate(addr(0), Origin::CommandLine);
    let mut net = Net {
        nodes: vec![full_session(&meta, 0), node1, magnet_session],
        links: BTreeMap::new(),
        next_token: vec![0; 3],
        events: Vec::new(),
        now: Instant::now(),
    };
    net.nodes[0].add_candidate(addr(1), Origin::CommandLine);
    let mut steps = 0;
    while !slot.is_ready() && steps < 300 {
        net.step();
        steps += 1;
    }
    let fetched = slot.take().expect("metadata fetched within 30 s");
    assert_eq!(fetched, info);
    assert!(
        !net.nodes[2].is_complete(),
        "awaiting metadata is never complete"
    );
    assert_eq!(net.connected(2, addr(0)), Some(Origin::CommandLine));
    assert_eq!(net.connected(2, addr(1)), None);

    // What the driver does: the full session replaces the metadata one,
    // with every address it knew.
    let known = net.nodes[2].known_peers();
    net.nodes[2].shutdown(net.now);
    net.step();
    let got = Metainfo::from_bytes(&magnet.torrent_bytes(&fetched)).unwrap();
    let mut s = full_session(&got, 2);
    for (a, o) in known {
        s.add_candidate(a, o);
    }
    net.nodes[2] = s;
    net.events.clear();
    let mut steps = 0;
    while net.connected(2, addr(1)).is_none() && steps < 1000 {
        net.step();
        steps += 1;
    }
    assert_eq!(net.connected(2, addr(0)), Some(Origin::CommandLine));
    assert_eq!(
        net.connected(2, addr(1)),
        Some(Origin::Pex),
        "node 2 learnt node 1 from node 0"
    );
}

#[test]
fn private_torrents_register_no_pex() {
    let mut d = b"d6:lengthi16384e4:name4:test12:piece lengthi16384e6:pieces20:".to_vec();
    d.extend([0u8; 20]);
    d.extend(b"7:privatei1ee");
    let mut t = b"d4:info".to_vec();
    t.extend(&d);
    t.push(b'e');
    let meta = Metainfo::from_bytes(&t).unwrap();
    assert!(meta.info.private);
    let names: Vec<&str> = crate::fetch::torrent_extensions(&meta)
        .iter()
        .map(|e| e.name())
        .collect();
    assert_eq!(names, [crate::ut_metadata::NAME]);
}

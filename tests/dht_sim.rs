//! A deterministic in-memory DHT: a few hundred sans-IO nodes exchanging
//! datagrams through a simulated network with latency and loss, on a
//! virtual clock, plus hostile nodes (garbage, and endless referrals to
//! fake nodes that never answer). Checks that nodes bootstrap, that a
//! get_peers lookup finds a peer announced by another node and converges
//! on the true k closest nodes, that every bound holds, and that the same
//! seed gives the same run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use bt::dht::krpc::{Body, Message, Query, Response};
use bt::dht::lookup::MAX_CANDIDATES;
use bt::dht::routing::{DEFAULT_MAX_NODES, K};
use bt::dht::{Announce, Config, Event, Id, LookupResult, Node, NodeInfo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, PartialEq, Eq)]
enum HostileKind {
    /// Answers every query (and pings nodes) with random bytes.
    Garbage,
    /// Answers every query properly, but always with 16 fresh fake nodes
    /// just next to the target, at addresses where nobody answers.
    Referrer,
}

struct Hostile {
    kind: HostileKind,
    id: Id,
    addr: SocketAddrV4,
}

enum Actor {
    Honest(usize),
    Hostile(usize),
}

struct Sim {
    now: Instant,
    rng: StdRng,
    nodes: Vec<Node>,
    addrs: Vec<SocketAddrV4>,
    hostile: Vec<Hostile>,
    actors: BTreeMap<SocketAddrV4, Actor>,
    queue: BTreeMap<(Instant, u64), (SocketAddrV4, SocketAddrV4, Vec<u8>)>,
    seq: u64,
    timers: BTreeSet<(Instant, usize)>,
    timer_of: Vec<Instant>,
    events: Vec<Vec<Event>>,
    fake_counter: u32,
    delivered: u64,
    lost: u64,
}

fn honest_addr(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(10, (i / 200) as u8, (i % 200) as u8 + 1, 1),
        6881,
    )
}

impl Sim {
    fn new(seed: u64, honest: usize, garbage: usize, referrers: usize) -> Sim {
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sim = Sim {
            now,
            nodes: Vec::new(),
            addrs: Vec::new(),
            hostile: Vec::new(),
            actors: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            timers: BTreeSet::new(),
            timer_of: Vec::new(),
            events: Vec::new(),
            fake_counter: 0,
            delivered: 0,
            lost: 0,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        };
        for i in 0..honest {
            let node = Node::new(Config::default(), rng.gen(), now);
            let addr = honest_addr(i);
            sim.actors.insert(addr, Actor::Honest(i));
            sim.addrs.push(addr);
            sim.timer_of.push(node.poll_timeout().unwrap());
            sim.timers.insert((node.poll_timeout().unwrap(), i));
            sim.nodes.push(node);
            sim.events.push(Vec::new());
        }
        for h in 0..garbage + referrers {
            let kind = if h < garbage {
                HostileKind::Garbage
            } else {
                HostileKind::Referrer
            };
            let addr = SocketAddrV4::new(Ipv4Addr::new(172, 16, 0, h as u8 + 1), 6881);
            sim.actors.insert(addr, Actor::Hostile(h));
            sim.hostile.push(Hostile {
                kind,
                id: Id(rng.gen()),
                addr,
            });
        }
        sim
    }

    fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, bytes: Vec<u8>) {
        if self.rng.gen_ratio(1, 100) {
            self.lost += 1;
            return;
        }
        let latency = Duration::from_millis(self.rng.gen_range(5..60));
        self.seq += 1;
        self.queue
            .insert((self.now + latency, self.seq), (from, to, bytes));
    }

    /// Collects what node `i` wants sent, its events and its next deadline.
    fn touch(&mut self, i: usize) {
        while let Some((to, bytes)) = self.nodes[i].poll_transmit() {
            let SocketAddr::V4(to) = to else { panic!() };
            self.send(self.addrs[i], to, bytes);
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events[i].push(e);
        }
        let t = self.nodes[i].poll_timeout().expect("a deadline");
        self.timers.remove(&(self.timer_of[i], i));
        self.timers.insert((t, i));
        self.timer_of[i] = t;
    }

    fn hostile_answer(&mut self, h: usize, from: SocketAddrV4, bytes: &[u8]) {
        let Ok(msg) = Message::decode(bytes) else {
            return;
        };
        let Body::Query(q) = msg.body else { return };
        let (kind, id, addr) = (
            self.hostile[h].kind,
            self.hostile[h].id,
            self.hostile[h].addr,
        );
        let reply = match kind {
            HostileKind::Garbage => {
                let len = self.rng.gen_range(1..400);
                (0..len).map(|_| self.rng.gen()).collect()
            }
            HostileKind::Referrer => {
                let target = match q {
                    Query::FindNode { target, .. } => target,
                    Query::GetPeers { info_hash, .. } => info_hash,
                    _ => Id(self.rng.gen()),
                };
                let nodes = (0..16)
                    .map(|_| {
                        self.fake_counter += 1;
                        let mut fake = target;
                        fake.0[16..].copy_from_slice(&self.rng.gen::<[u8; 4]>());
                        NodeInfo {
                            id: fake,
                            addr: SocketAddrV4::new(
                                Ipv4Addr::from(0xc612_0000 + self.fake_counter),
                                6881,
                            ),
                        }
                    })
                    .collect();
                Message {
                    tid: msg.tid,
                    version: None,
                    read_only: false,
                    body: Body::Response(Response {
                        id,
                        nodes,
                        values: Vec::new(),
                        token: Some(b"tok".to_vec()),
                    }),
                }
                .encode()
            }
        };
        self.send(addr, from, reply);
    }

    /// Hostile nodes make themselves known: each pings some honest nodes.
    fn hostile_hello(&mut self) {
        for h in 0..self.hostile.len() {
            for _ in 0..40 {
                let to = self.addrs[self.rng.gen_range(0..self.addrs.len())];
                let bytes = match self.hostile[h].kind {
                    HostileKind::Garbage => b"d1:y1:q1:q4:pinge garbage".to_vec(),
                    HostileKind::Referrer => Message {
                        tid: vec![1, 2],
                        version: None,
                        read_only: false,
                        body: Body::Query(Query::Ping {
                            id: self.hostile[h].id,
                        }),
                    }
                    .encode(),
                };
                self.send(self.hostile[h].addr, to, bytes);
            }
        }
    }

    /// Runs the network until `end` (virtual time), or until `stop` holds.
    fn run_until(&mut self, end: Instant, mut stop: impl FnMut(&Sim) -> bool) {
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 20_000_000, "simulation does not settle");
            if stop(self) {
                return;
            }
            let next_packet = self.queue.keys().next().map(|k| k.0);
            let next_timer = self.timers.iter().next().map(|t| t.0);
            let t = match (next_packet, next_timer) {
                (Some(p), Some(t)) => p.min(t),
                (p, t) => p.or(t).unwrap_or(end),
            };
            if t > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(t);
            if next_packet == Some(t) {
                let (_, (from, to, bytes)) = self.queue.pop_first().unwrap();
                self.delivered += 1;
                match self.actors.get(&to) {
                    Some(Actor::Honest(i)) => {
                        let i = *i;
                        self.nodes[i].handle_packet(self.now, SocketAddr::V4(from), &bytes);
                        self.touch(i);
                    }
                    Some(Actor::Hostile(h)) => {
                        let h = *h;
                        self.hostile_answer(h, from, &bytes);
                    }
                    None => {} // a fake address: nobody there
                }
            } else {
                let (_, i) = self.timers.pop_first().unwrap();
                self.timer_of[i] = self.now + Duration::from_secs(3600);
                self.nodes[i].handle_timeout(self.now);
                self.touch(i);
            }
        }
    }

    fn lookup_done(&self, i: usize, id: bt::dht::LookupId) -> Option<LookupResult> {
        self.events[i].iter().find_map(|e| match e {
            Event::LookupDone(r) if r.id == id => Some(r.clone()),
            _ => None,
        })
    }

    fn check_bounds(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.stats(self.now);
            let c = Config::default();
            assert!(s.outstanding <= c.max_outstanding, "node {i}: {s:?}");
            assert!(s.transmit_queue <= c.max_transmit_queue, "node {i}: {s:?}");
            assert!(s.lookups <= c.max_lookups, "node {i}: {s:?}");
            assert!(
                s.lookup_candidates <= s.lookups * (MAX_CANDIDATES + 1),
                "node {i}: {s:?}"
            );
            assert!(
                s.table.nodes + s.table.replacements <= DEFAULT_MAX_NODES,
                "node {i}: {s:?}"
            );
            assert!(s.table.nodes <= s.table.buckets * K, "node {i}: {s:?}");
            assert!(s.stored_peers <= c.max_peers_total, "node {i}: {s:?}");
        }
    }
}

/// Everything a run produced that should be the same for the same seed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    table_sizes: Vec<usize>,
    announce: LookupResult,
    search: LookupResult,
    found: Vec<SocketAddrV4>,
    delivered: u64,
}

fn run(seed: u64) -> Outcome {
    const HONEST: usize = 300;
    let mut sim = Sim::new(seed, HONEST, 2, 3);
    let router = sim.addrs[0];
    sim.hostile_hello();
    // Nodes join one after another, every 50 ms, through node 0.
    for i in 1..HONEST {
        let now = sim.now;
        sim.nodes[i].bootstrap(now, &[SocketAddr::V4(router)], &[]);
        sim.touch(i);
        sim.run_until(now + Duration::from_millis(50), |_| false);
    }
    sim.run_until(sim.now + Duration::from_secs(60), |_| false);
    let bootstrapped = sim
        .events
        .iter()
        .filter(|ev| {
            ev.iter()
                .any(|e| matches!(e, Event::Bootstrapped { nodes, .. } if *nodes > 0))
        })
        .count();
    for i in 1..HONEST {
        if !sim.events[i]
            .iter()
            .any(|e| matches!(e, Event::Bootstrapped { nodes, .. } if *nodes > 0))
        {
            eprintln!(
                "node {i}: {:?} {:?}",
                sim.events[i],
                sim.nodes[i].stats(sim.now)
            );
        }
    }
    assert_eq!(bootstrapped, HONEST - 1, "every joining node bootstrapped");
    // A second round, as nodes refresh: each looks itself up again.
    for i in 0..HONEST {
        let now = sim.now;
        sim.nodes[i].bootstrap(now, &[SocketAddr::V4(router)], &[]);
        sim.touch(i);
    }
    sim.run_until(sim.now + Duration::from_secs(90), |_| false);
    sim.check_bounds();
    let table_sizes: Vec<usize> = sim.nodes.iter().map(|n| n.table().len()).collect();
    assert!(table_sizes.iter().all(|&n| n >= K), "{table_sizes:?}");

    // Node 17 announces port 7777 for an info-hash.
    let info_hash = Id(StdRng::seed_from_u64(seed ^ 1).gen());
    let (a, b) = (17, 250);
    let now = sim.now;
    let la = sim.nodes[a].get_peers(now, info_hash, Some(Announce { port: Some(7777) }));
    sim.touch(a);
    sim.run_until(now + Duration::from_secs(120), |s| {
        s.lookup_done(a, la).is_some()
    });
    let announce = sim.lookup_done(a, la).expect("the announcing lookup ends");
    assert!(announce.announced >= K / 2, "{announce:?}");

    // Node 250 looks the peers up.
    let now = sim.now;
    let lb = sim.nodes[b].get_peers(now, info_hash, None);
    sim.touch(b);
    sim.run_until(now + Duration::from_secs(120), |s| {
        s.lookup_done(b, lb).is_some()
    });
    let search = sim.lookup_done(b, lb).expect("the lookup ends");
    let found: Vec<SocketAddrV4> = sim.events[b]
        .iter()
        .filter_map(|e| match e {
            Event::PeersFound { lookup, peers, .. } if *lookup == lb => Some(peers.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let expected_peer = SocketAddrV4::new(*sim.addrs[a].ip(), 7777);
    assert!(found.contains(&expected_peer), "{found:?}");
    assert_eq!(search.peers, found);

    // The true k closest of all nodes that answer queries (honest nodes and
    // the referrers; the fake nodes never answer).
    let mut all: Vec<NodeInfo> = (0..HONEST)
        .map(|i| NodeInfo {
            id: sim.nodes[i].id(),
            addr: sim.addrs[i],
        })
        .filter(|n| n.addr != sim.addrs[b])
        .collect();
    all.extend(
        sim.hostile
            .iter()
            .filter(|h| h.kind == HostileKind::Referrer)
            .map(|h| NodeInfo {
                id: h.id,
                addr: h.addr,
            }),
    );
    all.sort_by_key(|n| n.id.distance(&info_hash));
    all.truncate(K);
    assert_eq!(
        search.closest, all,
        "the lookup converged on the true k closest"
    );

    // Hostile traffic was dropped and counted, and every bound held.
    let dropped: u64 = sim.nodes.iter().map(|n| n.stats(sim.now).dropped).sum();
    assert!(dropped > 0);
    sim.check_bounds();
    eprintln!(
        "seed {seed}: {} datagrams delivered, {} lost, {dropped} dropped as invalid; \
         search: {} queries, {} answered",
        sim.delivered, sim.lost, search.queries, search.responded
    );
    Outcome {
        table_sizes,
        announce,
        search,
        found,
        delivered: sim.delivered,
    }
}

#[test]
fn simulated_network_finds_announced_peer_deterministically() {
    let first = run(42);
    let second = run(42);
    assert_eq!(first, second, "same seed, same run");
}

#[test]
fn lookup_survives_a_hostile_majority_of_referrals() {
    // Few honest nodes, many referrers: the lookup still ends, in time, and
    // the node's memory stays bounded.
    let mut sim = Sim::new(7, 40, 5, 20);
    let router = sim.addrs[0];
    sim.hostile_hello();
    for i in 1..40 {
        let now = sim.now;
        sim.nodes[i].bootstrap(now, &[SocketAddr::V4(router)], &[]);
        sim.touch(i);
    }
    sim.run_until(sim.now + Duration::from_secs(120), |_| false);
    let now = sim.now;
    let target = Id([0x42; 20]);
    let l = sim.nodes[5].get_peers(now, target, None);
    sim.touch(5);
    let limit = Config::default().lookup_timeout + Duration::from_secs(5);
    sim.run_until(now + limit, |s| s.lookup_done(5, l).is_some());
    let r = sim
        .lookup_done(5, l)
        .expect("the lookup ends within its time limit");
    assert!(r.queries <= bt::dht::lookup::MAX_QUERIES);
    sim.check_bounds();
}

//! A deterministic swarm in memory: real [`Session`]s (the same picker,
//! choker and upload scheduler as `bt-fetch`), bytes carried between them
//! by the simulator over links with a bounded rate, virtual time in fixed
//! steps, and a "disk" that hashes and stores at once. No sockets, no
//! clock, no threads: the same configuration gives the same run, byte for
//! byte, which [`Swarm::trace`] records.
//!
//! Node 0 is the seeder; nodes 1..=leechers start empty. Everyone is
//! connected to everyone from the start; at node `a` the connection to
//! node `b` has token `b`. Node `i` has address 10.x.y.z (its index
//! counted up from 10.0.0.1) and a peer id made of a prefix and its index,
//! so any number of nodes have distinct ids and addresses.
//!
//! [`net`] is the large-scale engine behind `bt-sim`: many peers joining
//! and leaving over a network with capacities and latency, content
//! trusted rather than hashed.

pub mod net;
mod pool;
pub mod scenario;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};

use crate::choker::Choker;
use crate::session::{Action, CloseReason, Config, Session};
use crate::sha1::{sha1, Sha1};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub leechers: usize,
    pub pieces: usize,
    pub piece_length: u64,
    /// The first 8 bytes of every node's peer id (`-BT0100-` makes the
    /// nodes follow the seed split).
    pub peer_id_prefix: [u8; 8],
    /// Bytes the seeder may send per step over all its links.
    pub seeder_rate: usize,
    /// Bytes any other link carries per step.
    pub link_rate: usize,
    pub seeder_slots: usize,
    pub leecher_slots: usize,
    pub step: Duration,
    pub max_steps: usize,
    /// Seeds the content and every node's RNG.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            leechers: 4,
            pieces: 64,
            piece_length: 32 * 1024,
            peer_id_prefix: *b"-BT0100-",
            seeder_rate: 64 * 1024,
            link_rate: 64 * 1024,
            seeder_slots: 1,
            leecher_slots: 4,
            step: Duration::from_millis(5),
            max_steps: 40_000,
            seed: 5,
        }
    }
}

/// The address of node `i`.
pub fn node_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0a00_0001u32.wrapping_add(i as u32));
    SocketAddr::new(ip.into(), 6881)
}

/// The peer id of node `i`: the prefix, then `i` in base 36 on 12 digits.
pub fn node_peer_id(prefix: &[u8; 8], i: usize) -> [u8; 20] {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = [b'0'; 20];
    id[..8].copy_from_slice(prefix);
    let mut n = i as u64;
    for b in id[8..].iter_mut().rev() {
        *b = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    id
}

pub struct Node {
    pub session: Session,
    store: Vec<u8>,
}

pub struct Swarm {
    cfg: SimConfig,
    pub nodes: Vec<Node>,
    content: Vec<u8>,
    hashes: Vec<[u8; 20]>,
    /// Payload and protocol bytes carried from node a to node b.
    carried: Vec<Vec<u64>>,
    closed: std::collections::BTreeSet<(usize, usize)>,
    trace: Vec<String>,
    wire_digest: Sha1,
    t0: Instant,
    now: Instant,
    steps: usize,
}

impl Swarm {
    /// Builds the swarm; `choker(i)` gives node `i` its choker (`None`:
    /// the classic one).
    pub fn new(cfg: SimConfig, choker: impl Fn(usize) -> Option<Box<dyn Choker>>) -> Swarm {
        let plen = cfg.piece_length as usize;
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let mut content = vec![0u8; cfg.pieces * plen];
        rng.fill_bytes(&mut content);
        let hashes: Vec<[u8; 20]> = content.chunks(plen).map(sha1).collect();
        let n = cfg.leechers + 1;
        let info_hash = sha1(&cfg.seed.to_be_bytes());
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut sc = Config::new(info_hash, node_peer_id(&cfg.peer_id_prefix, i));
                sc.seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                sc.upload_slots = if i == 0 {
                    cfg.seeder_slots
                } else {
                    cfg.leecher_slots
                };
                sc.max_buffer_bytes = 4 * cfg.piece_length;
                sc.max_peers = n;
                let total = content.len() as u64;
                let mut s = Session::new(sc, cfg.piece_length, total, cfg.pieces);
                if let Some(c) = choker(i) {
                    s.set_choker(c);
                }
                let store = if i == 0 {
                    (0..cfg.pieces).for_each(|p| s.set_have(p));
                    content.clone()
                } else {
                    vec![0; content.len()]
                };
                Node { session: s, store }
            })
            .collect();
        let t0 = Instant::now();
        let mut swarm = Swarm {
            carried: vec![vec![0; n]; n],
            cfg,
            nodes,
            content,
            hashes,
            closed: Default::default(),
            trace: Vec::new(),
            wire_digest: Sha1::new(),
            t0,
            now: t0,
            steps: 0,
        };
        for a in 0..n {
            for b in a + 1..n {
                swarm.nodes[a]
                    .session
                    .on_connection(b, node_addr(b), true, t0);
                swarm.nodes[a].session.on_connected(b);
                swarm.nodes[b]
                    .session
                    .on_connection(a, node_addr(a), false, t0);
            }
        }
        swarm
    }

    /// Runs until every node is complete or `max_steps` passed; whether
    /// all completed.
    pub fn run(&mut self) -> bool {
        while self.steps < self.cfg.max_steps {
            self.step();
            if self.all_complete() {
                break;
            }
        }
        let done = self.all_complete();
        let digest = std::mem::take(&mut self.wire_digest).finalize();
        self.trace.push(format!(
            "end {} ms, complete {done}, wire sha1 {}",
            self.elapsed_ms(),
            crate::hex::encode(&digest)
        ));
        done
    }

    pub fn all_complete(&self) -> bool {
        self.nodes.iter().all(|n| n.session.is_complete())
    }

    /// Whether node `i` holds exactly the content.
    pub fn holds_content(&self, i: usize) -> bool {
        self.nodes[i].store == self.content
    }

    /// Bytes (protocol included) node `a` sent to node `b`.
    pub fn carried(&self, a: usize, b: usize) -> u64 {
        self.carried[a][b]
    }

    /// The run as text: every event of every node with its virtual time,
    /// and at the end a digest of every byte carried, in order.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    pub fn elapsed_ms(&self) -> u128 {
        self.now.saturating_duration_since(self.t0).as_millis()
    }

    /// One step: carry bytes over every link, then let every node run.
    pub fn step(&mut self) {
        let n = self.nodes.len();
        let step = self.steps;
        self.steps += 1;
        self.now += self.cfg.step;
        let now = self.now;
        let leechers = self.cfg.leechers.max(1);
        // The seeder's budget is shared, its links served round robin
        // (from a different one each step).
        let mut seed_budget = self.cfg.seeder_rate;
        for a in 0..n {
            for k in 0..n {
                let b = if a == 0 { 1 + (k + step) % n } else { k };
                if b >= n || a == b || self.closed.contains(&(a.min(b), a.max(b))) {
                    continue;
                }
                let Some(out) = self.nodes[a].session.output(b) else {
                    continue;
                };
                let mut len = out.len().min(self.cfg.link_rate);
                if a == 0 {
                    // A fair share of what is left, at least a message's worth.
                    len = len.min(seed_budget.min(self.cfg.seeder_rate / leechers + 64));
                    seed_budget -= len;
                }
                if len == 0 {
                    continue;
                }
                let bytes = out.pending()[..len].to_vec();
                out.consume(len);
                self.carried[a][b] += len as u64;
                self.wire_digest.update(&bytes);
                self.nodes[a].session.on_sent(b);
                self.nodes[b].session.on_data(a, &bytes, now);
            }
        }
        for i in 0..n {
            if now >= self.nodes[i].session.poll_timeout(now) {
                self.nodes[i].session.tick(now);
            }
            self.run_actions(i);
        }
    }

    fn run_actions(&mut self, i: usize) {
        let now = self.now;
        let plen = self.cfg.piece_length as usize;
        while let Some(action) = self.nodes[i].session.next_action() {
            match action {
                Action::Verify { piece, buf } => {
                    let good = sha1(&buf) == self.hashes[piece as usize];
                    if good {
                        let at = piece as usize * plen;
                        self.nodes[i].store[at..at + buf.len()].copy_from_slice(&buf);
                    }
                    self.nodes[i].session.on_verified(piece, good, buf, now);
                }
                Action::Read(read) => {
                    let at = read.piece as usize * plen + read.begin as usize;
                    let data = self.nodes[i].store[at..at + read.length as usize].to_vec();
                    self.nodes[i].session.on_read(&read, &data, now);
                }
                Action::Close(t) => {
                    self.closed.insert((i.min(t), i.max(t)));
                    // The other side sees the connection close.
                    self.nodes[t]
                        .session
                        .on_closed(i, CloseReason::ClosedByPeer, now);
                }
                Action::Connect(_) => {}
                Action::Event(e) => {
                    let line = format!("{} ms node {i}: {e:?}", self.elapsed_ms());
                    self.trace.push(line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choker::{ChokeDecision, ChokeRound};

    fn small(seed: u64) -> SimConfig {
        SimConfig {
            leechers: 5,
            pieces: 48,
            seed,
            ..Default::default()
        }
    }

    /// Same configuration and seed: the same run, byte for byte (events,
    /// their times and every byte on every link). Another seed: another
    /// run.
    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        let run = |seed| {
            let mut s = Swarm::new(small(seed), |_| None);
            assert!(s.run());
            s.trace().join("\n")
        };
        let a = run(11);
        let b = run(11);
        assert!(a.lines().count() > 48, "the trace has the run's events");
        assert_eq!(a, b, "same seed, same trace");
        let c = run(12);
        assert_ne!(a, c, "another seed, another trace");
    }

    /// A choker that unchokes every interested peer at once.
    struct UnchokeAll;

    impl Choker for UnchokeAll {
        fn name(&self) -> &'static str {
            "unchoke-all"
        }

        fn round(&mut self, round: &ChokeRound, _rng: &mut dyn RngCore) -> ChokeDecision {
            ChokeDecision {
                unchoke: round
                    .peers
                    .iter()
                    .filter(|p| p.interested)
                    .map(|p| p.token)
                    .collect(),
                rates: Vec::new(),
            }
        }

        fn unchoke_on_interest(&self, _unchoked: usize, _slots: usize, _seeding: bool) -> bool {
            true
        }
    }

    /// A second choker plugged in through the trait: with one slot the
    /// classic seeder serves two leechers (one regular, one optimistic)
    /// during its first round; unchoking everyone, it serves them all
    /// from the start. Both swarms complete.
    #[test]
    fn a_second_choker_plugs_in_and_changes_who_is_served() {
        let served_early = |all: bool| {
            let cfg = SimConfig {
                leechers: 6,
                pieces: 96,
                seeder_rate: 4 * 1024,
                ..Default::default()
            };
            let mut s = Swarm::new(cfg, |i| {
                (all && i == 0).then(|| Box::new(UnchokeAll) as Box<dyn Choker>)
            });
            assert_eq!(
                s.nodes[0].session.choker_name(),
                if all { "unchoke-all" } else { "classic" }
            );
            // One second, well inside the first 10 s round.
            for _ in 0..200 {
                s.step();
            }
            let served = (1..=6).filter(|&b| s.carried(0, b) > 20_000).count();
            assert!(s.run(), "the swarm completes");
            for i in 0..=6 {
                assert!(s.holds_content(i));
            }
            served
        };
        assert_eq!(
            served_early(false),
            2,
            "classic: one slot and one optimistic"
        );
        assert_eq!(served_early(true), 6, "unchoke-all: everyone");
    }

    #[test]
    fn ids_and_addresses_are_distinct_for_many_nodes() {
        let ids: std::collections::BTreeSet<[u8; 20]> =
            (0..5000).map(|i| node_peer_id(b"-BT0100-", i)).collect();
        assert_eq!(ids.len(), 5000);
        let addrs: std::collections::BTreeSet<SocketAddr> = (0..70_000).map(node_addr).collect();
        assert_eq!(addrs.len(), 70_000, "past 65 535 too");
        assert_eq!(&node_peer_id(b"-BT0100-", 35)[8..], b"00000000000z");
    }
}

//! Iterative lookups (BEP 5 / Kademlia): `find_node` and `get_peers` with
//! α = 3 queries in flight, converging on the k closest nodes that answered;
//! for `get_peers`, peers collected (deduplicated, bounded) and optionally an
//! `announce_peer` to the closest nodes that gave a token. Sans-IO: the node
//! sends what [`Lookup::next_queries`] asks and reports answers and failures.
//!
//! Everything is bounded: candidates kept, queries sent, peers collected.
//! Candidates are ordered by XOR distance in a `BTreeMap`, so the order of
//! queries depends only on what was received.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;

use super::krpc::{Id, NodeInfo};
use super::routing::K;

/// Queries in flight per lookup.
pub const ALPHA: usize = 3;
/// Candidates kept (the closest ones) per lookup.
pub const MAX_CANDIDATES: usize = 64;
/// Queries sent per lookup, whatever the answers.
pub const MAX_QUERIES: usize = 256;
/// Peers collected per lookup.
pub const MAX_PEERS: usize = 1000;
/// Tries of a bootstrap address (a lost datagram must not end a bootstrap).
pub const SEED_TRIES: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// Whether and how to announce at the end of a `get_peers` lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// The port peers should connect to; `None` sends `implied_port` (the
    /// UDP source port of our DHT socket is the one to use).
    pub port: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    FindNode,
    GetPeers { announce: Option<Announce> },
}

/// Where the answer to a query goes back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// A bootstrap address whose id is not known.
    Seed(usize),
    /// A candidate, by its distance to the target.
    Known([u8; 20]),
    /// An `announce_peer` to the candidate at this distance.
    Announce([u8; 20]),
}

/// A query a lookup wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub slot: Slot,
    pub addr: SocketAddrV4,
    pub id: Option<Id>,
    pub what: QueryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryKind {
    FindNode,
    GetPeers,
    AnnouncePeer { token: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Pending,
    InFlight,
    /// Sent but slow: it no longer holds one of the α slots, yet may
    /// still answer (as libtorrent does, so that dead nodes cost little).
    Stalled,
    Responded {
        token: Option<Vec<u8>>,
    },
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    info: NodeInfo,
    state: State,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Search,
    Announce { waiting: usize },
    Done,
}

#[derive(Clone, Debug)]
pub struct Lookup {
    pub id: LookupId,
    pub target: Id,
    pub kind: LookupKind,
    own: Id,
    seeds: Vec<(SocketAddrV4, State)>,
    seed_tries: Vec<u8>,
    known: BTreeMap<[u8; 20], Candidate>,
    addrs: BTreeSet<SocketAddrV4>,
    peers: BTreeSet<SocketAddrV4>,
    in_flight: usize,
    queries: usize,
    responded: usize,
    announced: usize,
    phase: Phase,
}

/// What a finished lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResult {
    pub id: LookupId,
    pub target: Id,
    /// The k closest nodes that answered, closest first.
    pub closest: Vec<NodeInfo>,
    /// Nodes that answered at all.
    pub responded: usize,
    pub queries: usize,
    /// Peers found (get_peers).
    pub peers: Vec<SocketAddrV4>,
    /// Nodes that accepted our announce.
    pub announced: usize,
}

fn usable(addr: &SocketAddrV4) -> bool {
    addr.port() != 0
        && !addr.ip().is_unspecified()
        && !addr.ip().is_broadcast()
        && !addr.ip().is_multicast()
}

impl Lookup {
    /// A lookup of `target` starting from `start` (nodes of the routing
    /// table) and `seeds` (bootstrap addresses with unknown ids). `own` is
    /// our id, never queried.
    pub fn new(
        id: LookupId,
        own: Id,
        target: Id,
        kind: LookupKind,
        start: &[NodeInfo],
        seeds: &[SocketAddrV4],
    ) -> Lookup {
        let mut l = Lookup {
            id,
            target,
            kind,
            own,
            seeds: Vec::new(),
            seed_tries: Vec::new(),
            known: BTreeMap::new(),
            addrs: BTreeSet::new(),
            peers: BTreeSet::new(),
            in_flight: 0,
            queries: 0,
            responded: 0,
            announced: 0,
            phase: Phase::Search,
        };
        for n in start {
            l.add_candidate(*n);
        }
        for s in seeds.iter().filter(|s| usable(s)).take(MAX_CANDIDATES) {
            if !l.addrs.contains(s) && !l.seeds.iter().any(|(a, _)| a == s) {
                l.seeds.push((*s, State::Pending));
                l.seed_tries.push(0);
            }
        }
        l
    }

    fn add_candidate(&mut self, n: NodeInfo) {
        if n.id == self.own || !usable(&n.addr) || self.addrs.contains(&n.addr) {
            return;
        }
        let d = n.id.distance(&self.target);
        if self.known.contains_key(&d) {
            return;
        }
        if self.known.len() >= MAX_CANDIDATES {
            // Full: the new one must beat the farthest candidate not in flight.
            let Some(far) = self
                .known
                .iter()
                .rev()
                .find(|(_, c)| !matches!(c.state, State::InFlight | State::Stalled))
                .map(|(k, _)| *k)
            else {
                return;
            };
            if far < d {
                return;
            }
            if let Some(c) = self.known.remove(&far) {
                self.addrs.remove(&c.info.addr);
            }
        }
        self.addrs.insert(n.addr);
        self.known.insert(
            d,
            Candidate {
                info: n,
                state: State::Pending,
            },
        );
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Queries to send now, at most `budget` (the node's free transaction slots).
    pub fn next_queries(&mut self, budget: usize) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if self.phase != Phase::Search {
            return out;
        }
        let what = match self.kind {
            LookupKind::FindNode => QueryKind::FindNode,
            LookupKind::GetPeers { .. } => QueryKind::GetPeers,
        };
        while self.in_flight < ALPHA && out.len() < budget && self.queries < MAX_QUERIES {
            // Bootstrap addresses first: they are all we may have.
            if let Some(i) = self.seeds.iter().position(|(_, s)| *s == State::Pending) {
                self.seeds[i].1 = State::InFlight;
                self.seed_tries[i] += 1;
                self.in_flight += 1;
                self.queries += 1;
                out.push(Outgoing {
                    slot: Slot::Seed(i),
                    addr: self.seeds[i].0,
                    id: None,
                    what: what.clone(),
                });
                continue;
            }
            // The closest pending candidate among the k closest not failed.
            let pick = self
                .known
                .iter()
                .filter(|(_, c)| c.state != State::Failed)
                .take(K)
                .find(|(_, c)| c.state == State::Pending)
                .map(|(d, _)| *d);
            let Some(d) = pick else { break };
            let c = self.known.get_mut(&d).expect("picked");
            c.state = State::InFlight;
            self.in_flight += 1;
            self.queries += 1;
            out.push(Outgoing {
                slot: Slot::Known(d),
                addr: c.info.addr,
                id: Some(c.info.id),
                what: what.clone(),
            });
        }
        if out.is_empty() && self.in_flight == 0 && self.search_converged() {
            out = self.start_announce();
        }
        out
    }

    /// No query in flight can change the k closest: each of them answered,
    /// or nothing more can be asked.
    fn search_converged(&self) -> bool {
        if self.queries >= MAX_QUERIES {
            return true;
        }
        if self
            .seeds
            .iter()
            .any(|(_, s)| matches!(s, State::Pending | State::InFlight | State::Stalled))
        {
            return false;
        }
        self.known
            .values()
            .filter(|c| c.state != State::Failed)
            .take(K)
            .all(|c| matches!(c.state, State::Responded { .. }))
    }

    fn start_announce(&mut self) -> Vec<Outgoing> {
        let LookupKind::GetPeers {
            announce: Some(_), ..
        } = self.kind
        else {
            self.phase = Phase::Done;
            return Vec::new();
        };
        let out: Vec<Outgoing> = self
            .known
            .iter()
            .filter_map(|(d, c)| match &c.state {
                State::Responded { token: Some(t) } => Some(Outgoing {
                    slot: Slot::Announce(*d),
                    addr: c.info.addr,
                    id: Some(c.info.id),
                    what: QueryKind::AnnouncePeer { token: t.clone() },
                }),
                _ => None,
            })
            .take(K)
            .collect();
        self.phase = if out.is_empty() {
            Phase::Done
        } else {
            Phase::Announce { waiting: out.len() }
        };
        out
    }

    /// The announce port to send, for [`QueryKind::AnnouncePeer`].
    pub fn announce(&self) -> Option<Announce> {
        match self.kind {
            LookupKind::GetPeers { announce } => announce,
            LookupKind::FindNode => None,
        }
    }

    /// An answer to the query of `slot` from the node `from`. Returns the
    /// peers not seen before in this lookup.
    pub fn on_response(
        &mut self,
        slot: Slot,
        from: NodeInfo,
        nodes: &[NodeInfo],
        values: &[SocketAddrV4],
        token: Option<Vec<u8>>,
    ) -> Vec<SocketAddrV4> {
        match slot {
            Slot::Announce(_) => {
                self.announced += 1;
                self.announce_settled();
                return Vec::new();
            }
            Slot::Seed(i) => {
                match self.seeds.get(i).map(|s| &s.1) {
                    Some(State::InFlight) => self.in_flight -= 1,
                    Some(State::Stalled) => {}
                    _ => return Vec::new(),
                }
                self.seeds[i].1 = State::Responded { token: None };
                // Known now by its id.
                self.add_candidate(from);
                if let Some(c) = self.known.get_mut(&from.id.distance(&self.target)) {
                    if c.info.addr == from.addr {
                        // It may also have been asked as a candidate: that
                        // query no longer holds a slot.
                        if c.state == State::InFlight {
                            self.in_flight -= 1;
                        }
                        c.state = State::Responded { token };
                    }
                }
            }
            Slot::Known(d) => {
                let Some(c) = self.known.get_mut(&d) else {
                    return Vec::new();
                };
                match c.state {
                    State::InFlight => self.in_flight -= 1,
                    State::Stalled => {}
                    _ => return Vec::new(),
                }
                // The node at that address now has another id: forget it.
                c.state = if c.info.id == from.id {
                    State::Responded { token }
                } else {
                    State::Failed
                };
            }
        }
        self.responded += 1;
        if self.phase != Phase::Search {
            return Vec::new();
        }
        for n in nodes {
            self.add_candidate(*n);
        }
        let mut new = Vec::new();
        for p in values {
            if usable(p) && self.peers.len() < MAX_PEERS && self.peers.insert(*p) {
                new.push(*p);
            }
        }
        new
    }

    /// The query of `slot` went unanswered (or was answered with an error).
    pub fn on_failure(&mut self, slot: Slot) {
        match slot {
            Slot::Announce(_) => self.announce_settled(),
            Slot::Seed(i) => {
                if let Some(s) = self.seeds.get_mut(i) {
                    if s.1 == State::InFlight {
                        self.in_flight -= 1;
                    }
                    if matches!(s.1, State::InFlight | State::Stalled) {
                        s.1 = if self.seed_tries[i] < SEED_TRIES {
                            State::Pending
                        } else {
                            State::Failed
                        };
                    }
                }
            }
            Slot::Known(d) => {
                if let Some(c) = self.known.get_mut(&d) {
                    if c.state == State::InFlight {
                        self.in_flight -= 1;
                    }
                    if matches!(c.state, State::InFlight | State::Stalled) {
                        c.state = State::Failed;
                    }
                }
            }
        }
    }

    /// The query of `slot` is slow: free its α slot for another query
    /// while still accepting its answer.
    pub fn on_stall(&mut self, slot: Slot) {
        let state = match slot {
            Slot::Announce(_) => return,
            Slot::Seed(i) => self.seeds.get_mut(i).map(|s| &mut s.1),
            Slot::Known(d) => self.known.get_mut(&d).map(|c| &mut c.state),
        };
        if let Some(s) = state {
            if *s == State::InFlight {
                *s = State::Stalled;
                self.in_flight -= 1;
            }
        }
    }

    fn announce_settled(&mut self) {
        if let Phase::Announce { waiting } = &mut self.phase {
            *waiting -= 1;
            if *waiting == 0 {
                self.phase = Phase::Done;
            }
        }
    }

    /// Ends the lookup now (its time is up).
    pub fn finish(&mut self) {
        self.phase = Phase::Done;
    }

    /// Queries in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn candidates(&self) -> usize {
        self.known.len() + self.seeds.len()
    }

    pub fn peers_found(&self) -> usize {
        self.peers.len()
    }

    pub fn result(&self) -> LookupResult {
        LookupResult {
            id: self.id,
            target: self.target,
            closest: self
                .known
                .values()
                .filter(|c| matches!(c.state, State::Responded { .. }))
                .take(K)
                .map(|c| c.info)
                .collect(),
            responded: self.responded,
            queries: self.queries,
            peers: self.peers.iter().copied().collect(),
            announced: self.announced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn n(i: u8) -> NodeInfo {
        let mut id = [0u8; 20];
        id[0] = i;
        NodeInfo {
            id: Id(id),
            addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 1000),
        }
    }

    #[test]
    fn converges_with_alpha_in_flight() {
        let target = Id([0; 20]);
        let start: Vec<NodeInfo> = (100..110).map(n).collect();
        let mut l = Lookup::new(
            LookupId(1),
            Id([0xff; 20]),
            target,
            LookupKind::GetPeers {
                announce: Some(Announce { port: Some(5) }),
            },
            &start,
            &[],
        );
        let q = l.next_queries(10);
        assert_eq!(q.len(), ALPHA);
        assert_eq!(q[0].addr, n(100).addr);
        // The first answer knows closer nodes 1..=8 and a peer.
        let closer: Vec<NodeInfo> = (1..=8).map(n).collect();
        let p = SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 99);
        let new = l.on_response(q[0].slot, n(100), &closer, &[p, p], Some(b"t".to_vec()));
        assert_eq!(new, vec![p]);
        l.on_failure(q[1].slot);
        l.on_response(q[2].slot, n(102), &[], &[], None);
        // Now it asks the closer ones, 3 at a time, until all 8 answered.
        let mut rounds = 0;
        loop {
            let q = l.next_queries(10);
            if q.is_empty() || matches!(q[0].what, QueryKind::AnnouncePeer { .. }) {
                // Announce to those that gave tokens: the 8 closest.
                assert_eq!(q.len(), 8);
                for o in &q {
                    l.on_response(o.slot, n(0), &[], &[], None);
                }
                break;
            }
            assert!(q.len() <= ALPHA);
            for o in q {
                let i = o.id.unwrap().0[0];
                assert!((1..=8).contains(&i), "{i}");
                l.on_response(o.slot, n(i), &[], &[], Some(vec![i]));
            }
            rounds += 1;
            assert!(rounds < 10);
        }
        assert!(l.is_done());
        let r = l.result();
        assert_eq!(r.closest, closer);
        assert_eq!(r.peers, vec![p]);
        assert_eq!(r.announced, 8);
    }

    #[test]
    fn a_seed_also_referred_to_does_not_leak_a_slot() {
        let target = Id([0; 20]);
        let (a, b) = (n(1), n(2));
        let mut l = Lookup::new(
            LookupId(1),
            Id([0xff; 20]),
            target,
            LookupKind::FindNode,
            &[],
            &[a.addr, b.addr],
        );
        let q = l.next_queries(10);
        assert_eq!(q.len(), 2);
        // a answers first and refers to b, which is then asked again.
        l.on_response(q[0].slot, a, &[b], &[], None);
        let q2 = l.next_queries(10);
        assert_eq!(q2.len(), 1);
        assert_eq!(q2[0].addr, b.addr);
        // b's answer to the bootstrap query comes first, then the other.
        l.on_response(q[1].slot, b, &[a], &[], None);
        l.on_response(q2[0].slot, b, &[], &[], None);
        assert_eq!(l.in_flight(), 0);
        assert!(l.next_queries(10).is_empty());
        assert!(l.is_done());
        assert_eq!(l.result().closest, vec![a, b]);
    }

    #[test]
    fn bounded_against_endless_referrals() {
        let target = Id([0; 20]);
        let mut l = Lookup::new(
            LookupId(1),
            Id([0xff; 20]),
            target,
            LookupKind::FindNode,
            &[],
            &[SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 1)],
        );
        let mut fresh = 0u32;
        for _ in 0..10_000 {
            let q = l.next_queries(100);
            if q.is_empty() {
                break;
            }
            for o in q {
                // Every answer refers to 16 never-seen nodes, ever closer.
                let nodes: Vec<NodeInfo> = (0..16)
                    .map(|_| {
                        fresh += 1;
                        let mut id = [0u8; 20];
                        id[4..8].copy_from_slice(&(u32::MAX - fresh).to_be_bytes());
                        NodeInfo {
                            id: Id(id),
                            addr: SocketAddrV4::new(Ipv4Addr::from(fresh), 7),
                        }
                    })
                    .collect();
                let from = o.id.map_or(n(200), |id| NodeInfo { id, addr: o.addr });
                l.on_response(o.slot, from, &nodes, &[], None);
                assert!(l.candidates() <= MAX_CANDIDATES + 1);
            }
        }
        assert!(l.is_done());
        assert!(l.result().queries <= MAX_QUERIES);
    }
}

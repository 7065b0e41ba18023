//! The DHT node state machine, sans-IO: datagrams and the current time go
//! in ([`Node::handle_packet`], [`Node::handle_timeout`]), datagrams to send,
//! events and the next deadline come out ([`Node::poll_transmit`],
//! [`Node::poll_event`], [`Node::poll_timeout`]).
//!
//! It answers `ping`, `find_node`, `get_peers` and `announce_peer` (tokens
//! are the first 8 bytes of SHA-1(secret || IP), the secret changing every
//! 5 minutes and the previous one still accepted, so a token lives 5 to 10
//! minutes), and sends all four for its lookups and table upkeep. Everything
//! it holds is bounded, and it is deterministic for a given RNG seed: no
//! global state, and only ordered maps.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::krpc::{Body, Id, Message, NodeInfo, Query, Response};
use super::lookup::{Announce, Lookup, LookupId, LookupKind, LookupResult, QueryKind, Slot};
use super::routing::{Failed, Insert, RoutingTable, TableStats, K};
use super::storage::PeerStore;

// The answering side (queries from other nodes, tokens); this file keeps
// the node's state, its lookups and its own queries.
mod answer;

/// How often the token secret changes.
pub const TOKEN_ROTATION: Duration = Duration::from_secs(5 * 60);
/// Peers returned in one `get_peers` answer (8 bytes each in the packet).
pub const MAX_VALUES_SENT: usize = 50;
/// How often the table and store are looked after.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Config {
    /// Our node id (random when `None`).
    pub id: Option<Id>,
    /// How long to wait for an answer.
    pub query_timeout: Duration,
    /// After this long without an answer a lookup query stops holding one
    /// of the lookup's α slots (it may still answer until `query_timeout`).
    pub stall_timeout: Duration,
    /// Queries awaiting an answer, at most.
    pub max_outstanding: usize,
    /// Datagrams waiting in [`Node::poll_transmit`], at most (more are dropped).
    pub max_transmit_queue: usize,
    /// Events waiting in [`Node::poll_event`], at most (more are dropped).
    pub max_events: usize,
    /// Lookups running at once, at most.
    pub max_lookups: usize,
    /// A lookup ends after this long whatever it has found.
    pub lookup_timeout: Duration,
    /// Nodes held by the routing table, at most.
    pub max_nodes: usize,
    pub max_peers_per_hash: usize,
    pub max_peers_total: usize,
    /// The `v` field sent (client and version).
    pub version: Option<Vec<u8>>,
    /// BEP 43: tell others not to query us (and answer nothing).
    pub read_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: None,
            query_timeout: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(1),
            max_outstanding: 64,
            max_transmit_queue: 256,
            max_events: 256,
            max_lookups: 16,
            lookup_timeout: Duration::from_secs(60),
            max_nodes: super::routing::DEFAULT_MAX_NODES,
            max_peers_per_hash: super::storage::DEFAULT_MAX_PER_HASH,
            max_peers_total: super::storage::DEFAULT_MAX_TOTAL,
            version: Some(b"BT\x01\x00".to_vec()),
            read_only: false,
        }
    }
}

/// What the node reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The bootstrap lookup ended; `nodes` is the size of the routing table
    /// (0: no node answered).
    Bootstrapped { nodes: usize, responded: usize },
    /// A `get_peers` lookup found peers not reported before.
    PeersFound {
        lookup: LookupId,
        info_hash: Id,
        peers: Vec<SocketAddrV4>,
    },
    /// A lookup (other than the bootstrap) ended.
    LookupDone(LookupResult),
    /// Another node announced a peer to us.
    PeerAnnounced { info_hash: Id, peer: SocketAddrV4 },
}

/// Counters, for logs and for tests to check the bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub table: TableStats,
    pub outstanding: usize,
    pub transmit_queue: usize,
    pub events: usize,
    pub lookups: usize,
    pub lookup_candidates: usize,
    pub stored_peers: usize,
    pub stored_hashes: usize,
    pub packets_in: u64,
    pub dropped: u64,
    pub unsolicited: u64,
    pub queries_answered: u64,
    pub queries_sent: u64,
    pub timeouts: u64,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    Lookup(LookupId, Slot),
    Ping,
}

#[derive(Clone, Debug)]
struct Outstanding {
    addr: SocketAddrV4,
    id: Option<Id>,
    deadline: Instant,
    /// When a lookup query stalls (`None` once it has).
    stall: Option<Instant>,
    purpose: Purpose,
}

struct Running {
    lookup: Lookup,
    deadline: Instant,
    bootstrap: bool,
}

pub struct Node {
    config: Config,
    id: Id,
    rng: StdRng,
    table: RoutingTable,
    store: PeerStore,
    secret: [u8; 20],
    prev_secret: [u8; 20],
    next_rotation: Instant,
    next_maintenance: Instant,
    next_tid: u16,
    outstanding: BTreeMap<u16, Outstanding>,
    pinging: BTreeSet<SocketAddrV4>,
    lookups: BTreeMap<LookupId, Running>,
    next_lookup: u64,
    seeds: Vec<SocketAddrV4>,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    stats: NodeStats,
}

impl Node {
    /// A node whose every random choice comes from `seed`.
    pub fn new(config: Config, seed: u64, now: Instant) -> Node {
        let mut rng = StdRng::seed_from_u64(seed);
        let id = config.id.unwrap_or_else(|| Id(rng.gen()));
        let table = RoutingTable::with_cap(id, now, config.max_nodes);
        let store = PeerStore::new(config.max_peers_per_hash, config.max_peers_total);
        let secret = rng.gen();
        let prev_secret = rng.gen();
        let next_tid = rng.gen();
        Node {
            config,
            id,
            rng,
            table,
            store,
            secret,
            prev_secret,
            next_rotation: now + TOKEN_ROTATION,
            next_maintenance: now + MAINTENANCE_EVERY,
            next_tid,
            outstanding: BTreeMap::new(),
            pinging: BTreeSet::new(),
            lookups: BTreeMap::new(),
            next_lookup: 1,
            seeds: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
        }
    }

    pub fn id(&self) -> Id {
        self.id
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    pub fn stats(&self, now: Instant) -> NodeStats {
        let mut s = self.stats;
        s.table = self.table.stats(now);
        s.outstanding = self.outstanding.len();
        s.transmit_queue = self.transmit.len();
        s.events = self.events.len();
        s.lookups = self.lookups.len();
        s.lookup_candidates = self.lookups.values().map(|r| r.lookup.candidates()).sum();
        s.stored_peers = self.store.len();
        s.stored_hashes = self.store.info_hashes();
        s
    }

    /// Good nodes of the table, to save for the next run.
    pub fn good_nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.table.good_nodes(now)
    }

    /// Joins the DHT: a `find_node` for our own id, starting from `seeds`
    /// (addresses whose ids are unknown, e.g. routers) and `known` nodes
    /// (e.g. a saved table). Ends with [`Event::Bootstrapped`].
    pub fn bootstrap(
        &mut self,
        now: Instant,
        seeds: &[SocketAddr],
        known: &[NodeInfo],
    ) -> LookupId {
        self.seeds = seeds
            .iter()
            .filter_map(|a| match a {
                SocketAddr::V4(a) => Some(*a),
                SocketAddr::V6(_) => None,
            })
            .collect();
        let mut start = self.table.closest(&self.id, K * 2, now);
        start.extend_from_slice(known);
        let seeds = self.seeds.clone();
        let id = self.start(now, self.id, LookupKind::FindNode, &start, &seeds, true);
        self.pump(now);
        id
    }

    /// Looks up the nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> LookupId {
        let start = self.table.closest(&target, K * 2, now);
        let seeds = if start.is_empty() {
            self.seeds.clone()
        } else {
            Vec::new()
        };
        let id = self.start(now, target, LookupKind::FindNode, &start, &seeds, false);
        self.pump(now);
        id
    }

    /// Looks up peers of `info_hash`, announcing ourselves at the end when
    /// `announce` is given. Reports [`Event::PeersFound`] as peers arrive and
    /// [`Event::LookupDone`] at the end.
    pub fn get_peers(
        &mut self,
        now: Instant,
        info_hash: Id,
        announce: Option<Announce>,
    ) -> LookupId {
        let start = self.table.closest(&info_hash, K * 2, now);
        let seeds = if start.is_empty() {
            self.seeds.clone()
        } else {
            Vec::new()
        };
        let id = self.start(
            now,
            info_hash,
            LookupKind::GetPeers { announce },
            &start,
            &seeds,
            false,
        );
        self.pump(now);
        id
    }

    fn start(
        &mut self,
        now: Instant,
        target: Id,
        kind: LookupKind,
        start: &[NodeInfo],
        seeds: &[SocketAddrV4],
        bootstrap: bool,
    ) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        // Too many running: the oldest gives way.
        while self.lookups.len() >= self.config.max_lookups.max(1) {
            let oldest = *self.lookups.keys().next().expect("not empty");
            self.end_lookup(oldest);
        }
        let lookup = Lookup::new(id, self.id, target, kind, start, seeds);
        self.lookups.insert(
            id,
            Running {
                lookup,
                deadline: now + self.config.lookup_timeout,
                bootstrap,
            },
        );
        id
    }

    /// Records a peer as if it had been announced to us (e.g. ourselves).
    pub fn store_peer(&mut self, now: Instant, info_hash: Id, peer: SocketAddrV4) -> bool {
        self.store.add(info_hash, peer, now)
    }

    /// Sends a ping to `addr` (the node is added to the table if it answers).
    pub fn ping(&mut self, now: Instant, addr: SocketAddrV4) {
        self.send_ping(now, addr, None);
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_rotation.min(self.next_maintenance);
        for o in self.outstanding.values() {
            t = t.min(o.deadline);
            if let Some(s) = o.stall {
                t = t.min(s);
            }
        }
        for r in self.lookups.values() {
            t = t.min(r.deadline);
        }
        Some(t)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for o in self.outstanding.values_mut() {
            if o.stall.is_some_and(|s| s <= now) {
                o.stall = None;
                if let Purpose::Lookup(lid, slot) = o.purpose {
                    if let Some(r) = self.lookups.get_mut(&lid) {
                        r.lookup.on_stall(slot);
                    }
                }
            }
        }
        let expired: Vec<u16> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for tid in expired {
            let Some(o) = self.outstanding.remove(&tid) else {
                continue;
            };
            self.stats.timeouts += 1;
            self.pinging.remove(&o.addr);
            if let Some(id) = o.id {
                if let Failed::PingAgain(n) = self.table.failed(&id, o.addr, now) {
                    self.send_ping(now, n.addr, Some(n.id));
                }
            }
            if let Purpose::Lookup(lid, slot) = o.purpose {
                if let Some(r) = self.lookups.get_mut(&lid) {
                    r.lookup.on_failure(slot);
                }
            }
        }
        let late: Vec<LookupId> = self
            .lookups
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            log::debug!("dht: lookup {} timed out", id.0);
            self.end_lookup(id);
        }
        if now >= self.next_rotation {
            self.prev_secret = self.secret;
            self.secret = self.rng.gen();
            self.next_rotation = now + TOKEN_ROTATION;
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE_EVERY;
            self.store.expire(now);
            let rng = &mut self.rng;
            let targets = self.table.refresh_targets(now, &mut || Id(rng.gen()));
            for t in targets {
                if !self.table.is_empty() && self.lookups.len() < self.config.max_lookups {
                    self.find_node(now, t);
                }
            }
        }
        self.pump(now);
    }

    /// One datagram received from `from`.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.packets_in += 1;
        let SocketAddr::V4(from) = from else {
            self.stats.dropped += 1;
            return;
        };
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                log::trace!("dht: dropping a datagram from {from}: {e}");
                self.stats.dropped += 1;
                return;
            }
        };
        match msg.body {
            Body::Query(q) => self.handle_query(now, from, msg.tid, msg.read_only, q),
            Body::Response(r) => self.handle_response(now, from, &msg.tid, r),
            Body::Error { code, message } => {
                log::debug!("dht: error {code} from {from}: {message}");
                self.handle_error(now, from, &msg.tid);
            }
        }
        self.pump(now);
    }

    /// Takes the transaction `tid` if it was sent to `from`.
    fn take_outstanding(&mut self, from: SocketAddrV4, tid: &[u8]) -> Option<Outstanding> {
        let tid = u16::from_be_bytes(<[u8; 2]>::try_from(tid).ok()?);
        if self.outstanding.get(&tid)?.addr != from {
            return None;
        }
        let o = self.outstanding.remove(&tid)?;
        self.pinging.remove(&o.addr);
        Some(o)
    }

    fn handle_response(&mut self, now: Instant, from: SocketAddrV4, tid: &[u8], r: Response) {
        let Some(o) = self.take_outstanding(from, tid) else {
            self.stats.unsolicited += 1;
            return;
        };
        let info = NodeInfo {
            id: r.id,
            addr: from,
        };
        match o.id {
            Some(expected) if expected != r.id => {
                // Another node at that address now: the one we knew is gone.
                self.table.failed(&expected, from, now);
            }
            _ => {}
        }
        if r.id != self.id {
            match self.table.heard_response(info, now) {
                Insert::PingFirst(victim) => self.send_ping(now, victim.addr, Some(victim.id)),
                Insert::Added | Insert::Replaced(_) => {
                    log::trace!("dht: {} at {} joins the table", r.id, from)
                }
                _ => {}
            }
        }
        if let Purpose::Lookup(lid, slot) = o.purpose {
            let Some(run) = self.lookups.get_mut(&lid) else {
                return;
            };
            let new = run
                .lookup
                .on_response(slot, info, &r.nodes, &r.values, r.token);
            if !new.is_empty() {
                let info_hash = run.lookup.target;
                self.push_event(Event::PeersFound {
                    lookup: lid,
                    info_hash,
                    peers: new,
                });
            }
        }
    }

    fn handle_error(&mut self, now: Instant, from: SocketAddrV4, tid: &[u8]) {
        let Some(o) = self.take_outstanding(from, tid) else {
            self.stats.unsolicited += 1;
            return;
        };
        let _ = now;
        if let Purpose::Lookup(lid, slot) = o.purpose {
            if let Some(r) = self.lookups.get_mut(&lid) {
                r.lookup.on_failure(slot);
            }
        }
    }

    /// Sends what the lookups want sent and ends finished lookups.
    fn pump(&mut self, now: Instant) {
        let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
        for lid in ids {
            let budget = self
                .config
                .max_outstanding
                .saturating_sub(self.outstanding.len());
            let Some(run) = self.lookups.get_mut(&lid) else {
                continue;
            };
            let target = run.lookup.target;
            let announce = run.lookup.announce();
            let out = run.lookup.next_queries(budget);
            let done = run.lookup.is_done();
            for o in out {
                let body = match o.what {
                    QueryKind::FindNode => Query::FindNode {
                        id: self.id,
                        target,
                    },
                    QueryKind::GetPeers => Query::GetPeers {
                        id: self.id,
                        info_hash: target,
                    },
                    QueryKind::AnnouncePeer { token } => {
                        let port = announce.and_then(|a| a.port);
                        Query::AnnouncePeer {
                            id: self.id,
                            info_hash: target,
                            port: port.unwrap_or(0),
                            implied_port: port.is_none(),
                            token,
                        }
                    }
                };
                if !self.send_query(now, o.addr, o.id, body, Purpose::Lookup(lid, o.slot)) {
                    if let Some(run) = self.lookups.get_mut(&lid) {
                        run.lookup.on_failure(o.slot);
                    }
                }
            }
            if done {
                self.end_lookup(lid);
            }
        }
    }

    fn end_lookup(&mut self, lid: LookupId) {
        let Some(mut run) = self.lookups.remove(&lid) else {
            return;
        };
        run.lookup.finish();
        let result = run.lookup.result();
        log::debug!(
            "dht: lookup {} of {} done: {} queries, {} answered, {} peers, {} announces",
            lid.0,
            result.target,
            result.queries,
            result.responded,
            result.peers.len(),
            result.announced
        );
        if run.bootstrap {
            self.push_event(Event::Bootstrapped {
                nodes: self.table.len(),
                responded: result.responded,
            });
        } else {
            self.push_event(Event::LookupDone(result));
        }
    }

    fn send_ping(&mut self, now: Instant, addr: SocketAddrV4, id: Option<Id>) {
        if self.pinging.contains(&addr) {
            return;
        }
        // Leave room for lookups: pings take at most half of the slots.
        if self.outstanding.len() >= self.config.max_outstanding / 2 {
            return;
        }
        if self.send_query(now, addr, id, Query::Ping { id: self.id }, Purpose::Ping) {
            self.pinging.insert(addr);
        }
    }

    fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddrV4,
        id: Option<Id>,
        q: Query,
        purpose: Purpose,
    ) -> bool {
        if self.outstanding.len() >= self.config.max_outstanding {
            return false;
        }
        let mut tid = self.next_tid;
        while self.outstanding.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        self.outstanding.insert(
            tid,
            Outstanding {
                addr,
                id,
                deadline: now + self.config.query_timeout,
                stall: match purpose {
                    Purpose::Lookup(..) => Some(now + self.config.stall_timeout),
                    Purpose::Ping => None,
                },
                purpose,
            },
        );
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            version: self.config.version.clone(),
            read_only: self.config.read_only,
            body: Body::Query(q),
        };
        self.stats.queries_sent += 1;
        self.push_transmit(addr, msg.encode());
        true
    }

    fn push_transmit(&mut self, to: SocketAddrV4, bytes: Vec<u8>) {
        if self.transmit.len() >= self.config.max_transmit_queue {
            self.stats.dropped += 1;
            return;
        }
        self.transmit.push_back((SocketAddr::V4(to), bytes));
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= self.config.max_events {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

#[cfg(test)]
mod tests;

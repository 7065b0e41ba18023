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
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::krpc::{error_code, Body, Id, Message, NodeInfo, Query, Response};
use super::lookup::{Announce, Lookup, LookupId, LookupKind, LookupResult, QueryKind, Slot};
use super::routing::{Failed, Insert, RoutingTable, TableStats, K};
use super::storage::PeerStore;

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

/// The token for `ip` under `secret`.
fn token_for(secret: &[u8; 20], ip: &std::net::Ipv4Addr) -> Vec<u8> {
    let mut h = crate::sha1::Sha1::new();
    h.update(secret);
    h.update(&ip.octets());
    h.finalize()[..8].to_vec()
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

    fn handle_query(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        tid: Vec<u8>,
        read_only: bool,
        q: Query,
    ) {
        if self.config.read_only {
            return;
        }
        let sender = q.sender();
        if sender == self.id {
            self.stats.dropped += 1;
            return;
        }
        let body = match &q {
            Query::Ping { .. } => Body::Response(self.response()),
            Query::FindNode { target, .. } => Body::Response(Response {
                nodes: self.table.closest(target, K, now),
                ..self.response()
            }),
            Query::GetPeers { info_hash, .. } => {
                let values = self.store.get(info_hash, MAX_VALUES_SENT, now);
                let nodes = if values.is_empty() {
                    self.table.closest(info_hash, K, now)
                } else {
                    Vec::new()
                };
                Body::Response(Response {
                    nodes,
                    values,
                    token: Some(token_for(&self.secret, from.ip())),
                    ..self.response()
                })
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                let valid = *token == token_for(&self.secret, from.ip())
                    || *token == token_for(&self.prev_secret, from.ip());
                let port = if *implied_port { from.port() } else { *port };
                if !valid {
                    Body::Error {
                        code: error_code::PROTOCOL,
                        message: "bad token".into(),
                    }
                } else if port == 0 {
                    Body::Error {
                        code: error_code::PROTOCOL,
                        message: "bad port".into(),
                    }
                } else {
                    let peer = SocketAddrV4::new(*from.ip(), port);
                    if self.store.add(*info_hash, peer, now) {
                        self.push_event(Event::PeerAnnounced {
                            info_hash: *info_hash,
                            peer,
                        });
                    }
                    Body::Response(self.response())
                }
            }
            Query::Unknown { .. } => Body::Error {
                code: error_code::METHOD_UNKNOWN,
                message: "Method Unknown".into(),
            },
        };
        self.stats.queries_answered += 1;
        let reply = Message {
            tid,
            version: self.config.version.clone(),
            read_only: false,
            body,
        };
        self.push_transmit(from, reply.encode());
        // The querying node: note it, or check it with a ping if there is
        // room for it (only nodes that answer us get into the table).
        if !read_only {
            let info = NodeInfo {
                id: sender,
                addr: from,
            };
            if !self.table.heard_query(info, now) && self.table.has_room_for(&sender, now) {
                self.send_ping(now, from, Some(sender));
            }
        }
    }

    fn response(&self) -> Response {
        Response {
            id: self.id,
            ..Response::default()
        }
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

    /// Whether `token` would be accepted from `ip` now (for tests and logs).
    pub fn token_valid(&self, ip: IpAddr, token: &[u8]) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                token == token_for(&self.secret, &ip) || token == token_for(&self.prev_secret, &ip)
            }
            IpAddr::V6(_) => false,
        }
    }

    /// The token we give `ip` now.
    pub fn token(&self, ip: std::net::Ipv4Addr) -> Vec<u8> {
        token_for(&self.secret, &ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 6881)
    }

    fn query(tid: &[u8], q: Query) -> Vec<u8> {
        Message {
            tid: tid.to_vec(),
            version: None,
            read_only: false,
            body: Body::Query(q),
        }
        .encode()
    }

    fn reply(node: &mut Node) -> Message {
        let (_, bytes) = node.poll_transmit().expect("a reply");
        Message::decode(&bytes).unwrap()
    }

    #[test]
    fn tokens_rotate_and_last_ten_minutes_at_most() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), 7, t0);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let other = Ipv4Addr::new(10, 0, 0, 2);
        let tok = node.token(ip);
        assert!(node.token_valid(ip.into(), &tok));
        assert!(!node.token_valid(other.into(), &tok));
        node.handle_timeout(t0 + TOKEN_ROTATION);
        assert!(
            node.token_valid(ip.into(), &tok),
            "previous secret still accepted"
        );
        assert_ne!(node.token(ip), tok);
        node.handle_timeout(t0 + TOKEN_ROTATION * 2);
        assert!(
            !node.token_valid(ip.into(), &tok),
            "gone after two rotations"
        );
    }

    #[test]
    fn answers_the_four_queries() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), 1, t0);
        let me = node.id();
        let them = Id([3; 20]);
        let ih = Id([9; 20]);
        let from = SocketAddr::V4(addr(1));

        node.handle_packet(t0, from, &query(b"p1", Query::Ping { id: them }));
        let m = reply(&mut node);
        assert_eq!(m.tid, b"p1");
        let Body::Response(r) = m.body else { panic!() };
        assert_eq!(r.id, me);
        // It pings the unknown querier to check it.
        let (to, ping) = node.poll_transmit().expect("a ping");
        assert_eq!(to, from);
        assert!(matches!(
            Message::decode(&ping).unwrap().body,
            Body::Query(Query::Ping { .. })
        ));

        node.handle_packet(
            t0,
            from,
            &query(
                b"g1",
                Query::GetPeers {
                    id: them,
                    info_hash: ih,
                },
            ),
        );
        let Body::Response(r) = reply(&mut node).body else {
            panic!()
        };
        let token = r.token.expect("a token");
        assert!(r.values.is_empty());

        // A bad token is refused, a good one stores the peer (implied port).
        let ann = |token: Vec<u8>, implied: bool| {
            query(
                b"a1",
                Query::AnnouncePeer {
                    id: them,
                    info_hash: ih,
                    port: 4000,
                    implied_port: implied,
                    token,
                },
            )
        };
        node.handle_packet(t0, from, &ann(b"nope".to_vec(), false));
        assert!(matches!(
            reply(&mut node).body,
            Body::Error { code: 203, .. }
        ));
        node.handle_packet(t0, SocketAddr::V4(addr(2)), &ann(token.clone(), false));
        assert!(
            matches!(reply(&mut node).body, Body::Error { code: 203, .. }),
            "token of another IP"
        );
        while node.poll_transmit().is_some() {}
        node.handle_packet(t0, from, &ann(token.clone(), true));
        assert!(matches!(reply(&mut node).body, Body::Response(_)));
        node.handle_packet(t0, from, &ann(token, false));
        assert!(matches!(reply(&mut node).body, Body::Response(_)));
        assert_eq!(
            node.poll_event(),
            Some(Event::PeerAnnounced {
                info_hash: ih,
                peer: addr(1)
            })
        );

        node.handle_packet(
            t0,
            from,
            &query(
                b"g2",
                Query::GetPeers {
                    id: them,
                    info_hash: ih,
                },
            ),
        );
        let Body::Response(r) = reply(&mut node).body else {
            panic!()
        };
        assert_eq!(
            r.values,
            vec![SocketAddrV4::new(*addr(1).ip(), 4000), addr(1)]
        );

        node.handle_packet(
            t0,
            from,
            &query(
                b"f1",
                Query::FindNode {
                    id: them,
                    target: ih,
                },
            ),
        );
        assert!(matches!(reply(&mut node).body, Body::Response(_)));
        node.handle_packet(
            t0,
            from,
            &query(
                b"u1",
                Query::Unknown {
                    id: them,
                    method: "x".into(),
                },
            ),
        );
        assert!(matches!(
            reply(&mut node).body,
            Body::Error { code: 204, .. }
        ));
    }

    #[test]
    fn stale_buckets_are_refreshed() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), 3, t0);
        // One node in the table, by answering a ping.
        node.ping(t0, addr(1));
        let (_, bytes) = node.poll_transmit().unwrap();
        let tid = Message::decode(&bytes).unwrap().tid;
        let pong = Message {
            tid,
            version: None,
            read_only: false,
            body: Body::Response(Response {
                id: Id([5; 20]),
                ..Response::default()
            }),
        };
        node.handle_packet(t0, SocketAddr::V4(addr(1)), &pong.encode());
        assert_eq!(node.table().len(), 1);
        // Nothing for 15 minutes: the bucket is refreshed with a find_node.
        let mut now = t0;
        let mut refreshed = false;
        for _ in 0..100 {
            now = node.poll_timeout().unwrap();
            node.handle_timeout(now);
            while let Some((_, bytes)) = node.poll_transmit() {
                if let Body::Query(Query::FindNode { .. }) = Message::decode(&bytes).unwrap().body {
                    refreshed = true;
                }
            }
            if refreshed {
                break;
            }
        }
        assert!(refreshed);
        let waited = now - t0;
        assert!(waited >= super::super::routing::REFRESH_AFTER, "{waited:?}");
        assert!(waited <= super::super::routing::REFRESH_AFTER + MAINTENANCE_EVERY);
    }

    #[test]
    fn hostile_packets_are_dropped() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), 1, t0);
        let from = SocketAddr::V4(addr(1));
        let mut huge = b"d1:rd2:id20:abcdefghij01234567895:nodes".to_vec();
        huge.extend_from_slice(b"26000:");
        huge.extend_from_slice(&[b'x'; 26000]);
        huge.extend_from_slice(b"e1:t2:aa1:y1:re");
        let cases: Vec<Vec<u8>> = vec![
            b"garbage".to_vec(),
            huge,
            b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe".to_vec(),
            vec![0xff; 100],
        ];
        for c in &cases {
            node.handle_packet(t0, from, c);
        }
        assert_eq!(node.stats(t0).dropped, cases.len() as u64);
        // An answer nobody asked for.
        let unsolicited = Message {
            tid: vec![0, 1],
            version: None,
            read_only: false,
            body: Body::Response(Response {
                id: Id([5; 20]),
                nodes: vec![NodeInfo {
                    id: Id([6; 20]),
                    addr: addr(6),
                }],
                ..Response::default()
            }),
        };
        node.handle_packet(t0, from, &unsolicited.encode());
        let s = node.stats(t0);
        assert_eq!(s.unsolicited, 1);
        assert_eq!(s.table.nodes, 0);
        assert!(node.poll_transmit().is_none());
    }

    #[test]
    fn answers_only_from_the_address_asked() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), 1, t0);
        node.ping(t0, addr(1));
        let (_, bytes) = node.poll_transmit().unwrap();
        let tid = Message::decode(&bytes).unwrap().tid;
        let answer = Message {
            tid,
            version: None,
            read_only: false,
            body: Body::Response(Response {
                id: Id([5; 20]),
                ..Response::default()
            }),
        }
        .encode();
        node.handle_packet(t0, SocketAddr::V4(addr(2)), &answer);
        assert_eq!(node.stats(t0).unsolicited, 1);
        assert_eq!(node.table().len(), 0);
        node.handle_packet(t0, SocketAddr::V4(addr(1)), &answer);
        assert_eq!(node.table().len(), 1);
        // Outstanding queries time out.
        node.ping(t0, addr(3));
        assert_eq!(node.stats(t0).outstanding, 1);
        let t1 = node.poll_timeout().unwrap();
        assert!(t1 <= t0 + Config::default().query_timeout);
        node.handle_timeout(t1);
        assert_eq!(node.stats(t1).outstanding, 0);
        assert_eq!(node.stats(t1).timeouts, 1);
    }
}

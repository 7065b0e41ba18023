//! The routing table of BEP 5: k-buckets (k = 8) split around our own id,
//! node states (good, questionable, bad) from simulated time, replacement of
//! bad nodes, pinging of questionable nodes before evicting them, bucket
//! refresh, and a hard cap on how many nodes are held in all.
//!
//! Only nodes that answered one of our queries get into a bucket, so that
//! addresses handed out in `nodes` lists (possibly fake) cannot fill it.

use std::time::{Duration, Instant};

use super::krpc::{Id, NodeInfo};

/// Nodes per bucket.
pub const K: usize = 8;
/// A node is good while it answered us (or queried us, having answered
/// before) within this time.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Failed queries in a row after which a node is bad.
pub const MAX_FAILURES: u32 = 2;
/// A bucket unchanged for this long is refreshed.
pub const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Default cap on the nodes held, buckets and replacement caches together.
pub const DEFAULT_MAX_NODES: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Good,
    Questionable,
    Bad,
}

/// One node of the table.
#[derive(Clone, Debug)]
pub struct Entry {
    pub info: NodeInfo,
    pub last_response: Option<Instant>,
    pub last_query: Option<Instant>,
    /// Queries failed in a row.
    pub failures: u32,
    /// A ping was sent to decide whether to evict this node.
    pub eviction_ping: bool,
}

impl Entry {
    fn responded(info: NodeInfo, now: Instant) -> Entry {
        Entry {
            info,
            last_response: Some(now),
            last_query: None,
            failures: 0,
            eviction_ping: false,
        }
    }

    pub fn state(&self, now: Instant) -> NodeState {
        if self.failures >= MAX_FAILURES {
            return NodeState::Bad;
        }
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR);
        if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_response.max(self.last_query)
    }
}

#[derive(Clone, Debug)]
struct Bucket {
    nodes: Vec<Entry>,
    /// Nodes that answered us while the bucket was full, newest last.
    replacements: Vec<Entry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// What became of a node that answered us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insert {
    /// It was in the table; its times were updated.
    Updated,
    /// It was added to a bucket with room.
    Added,
    /// It replaced a bad node.
    Replaced(NodeInfo),
    /// The bucket is full; the node waits as a replacement. Ping the
    /// questionable node given (least recently seen): if it fails, the
    /// waiting node takes its place.
    PingFirst(NodeInfo),
    /// The bucket is full of good nodes (or of nodes already being pinged);
    /// the node waits as a replacement.
    Waiting,
    /// The table already holds as many nodes as allowed, or the id is ours,
    /// or a known id came from another address.
    Rejected,
}

/// What became of a node that failed to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Not in the table.
    Unknown,
    /// Its failure was counted.
    Counted,
    /// It was bad and a replacement took its place (or it was dropped).
    Evicted,
    /// It was being pinged for eviction and is not bad yet: ping it again.
    PingAgain(NodeInfo),
}

/// Counters for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub buckets: usize,
    pub nodes: usize,
    pub good: usize,
    pub replacements: usize,
}

#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: Id,
    buckets: Vec<Bucket>,
    max_nodes: usize,
}

impl RoutingTable {
    pub fn new(own: Id, now: Instant) -> RoutingTable {
        RoutingTable::with_cap(own, now, DEFAULT_MAX_NODES)
    }

    pub fn with_cap(own: Id, now: Instant, max_nodes: usize) -> RoutingTable {
        RoutingTable {
            own,
            buckets: vec![Bucket::new(now)],
            max_nodes,
        }
    }

    pub fn own_id(&self) -> Id {
        self.own
    }

    fn bucket_index(&self, id: &Id) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    fn held(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| b.nodes.len() + b.replacements.len())
            .sum()
    }

    pub fn stats(&self, now: Instant) -> TableStats {
        let mut s = TableStats {
            buckets: self.buckets.len(),
            ..TableStats::default()
        };
        for b in &self.buckets {
            s.nodes += b.nodes.len();
            s.replacements += b.replacements.len();
            s.good += b
                .nodes
                .iter()
                .filter(|e| e.state(now) == NodeState::Good)
                .count();
        }
        s
    }

    /// Nodes in buckets (not the replacements).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &Id) -> Option<&Entry> {
        self.buckets[self.bucket_index(id)]
            .nodes
            .iter()
            .find(|e| e.info.id == *id)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    /// Good nodes, e.g. to save the table.
    pub fn good_nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.entries()
            .filter(|e| e.state(now) == NodeState::Good)
            .map(|e| e.info)
            .collect()
    }

    /// The `n` nodes closest to `target` that are not bad, closest first.
    pub fn closest(&self, target: &Id, n: usize, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<(&Entry, [u8; 20])> = self
            .entries()
            .filter(|e| e.state(now) != NodeState::Bad)
            .map(|e| (e, e.info.id.distance(target)))
            .collect();
        all.sort_by_key(|a| a.1);
        all.into_iter().take(n).map(|(e, _)| e.info).collect()
    }

    /// `node` answered one of our queries.
    pub fn heard_response(&mut self, node: NodeInfo, now: Instant) -> Insert {
        if node.id == self.own {
            return Insert::Rejected;
        }
        let i = self.bucket_index(&node.id);
        let bucket = &mut self.buckets[i];
        if let Some(e) = bucket.nodes.iter_mut().find(|e| e.info.id == node.id) {
            if e.info.addr != node.addr {
                return Insert::Rejected;
            }
            e.last_response = Some(now);
            e.failures = 0;
            e.eviction_ping = false;
            bucket.last_changed = now;
            return Insert::Updated;
        }
        if let Some(r) = bucket
            .replacements
            .iter_mut()
            .find(|e| e.info.id == node.id)
        {
            if r.info.addr == node.addr {
                r.last_response = Some(now);
                r.failures = 0;
            }
            return Insert::Updated;
        }
        self.insert_new(node, now)
    }

    fn insert_new(&mut self, node: NodeInfo, now: Instant) -> Insert {
        // Splitting the bucket holding our id may be needed, once or more.
        for _ in 0..160 {
            let held = self.held();
            let i = self.bucket_index(&node.id);
            let last = self.buckets.len() - 1;
            let bucket = &mut self.buckets[i];
            if bucket.nodes.len() < K {
                if held >= self.max_nodes {
                    return Insert::Rejected;
                }
                bucket.nodes.push(Entry::responded(node, now));
                bucket.last_changed = now;
                return Insert::Added;
            }
            if let Some(pos) = bucket
                .nodes
                .iter()
                .position(|e| e.state(now) == NodeState::Bad)
            {
                let old = std::mem::replace(&mut bucket.nodes[pos], Entry::responded(node, now));
                bucket.last_changed = now;
                return Insert::Replaced(old.info);
            }
            if i == last && last < 159 {
                self.split(now);
                continue;
            }
            // Full of good or questionable nodes: keep it as a replacement
            // and ping the questionable node seen least recently.
            if held >= self.max_nodes {
                return Insert::Rejected;
            }
            let bucket = &mut self.buckets[i];
            if bucket.replacements.len() >= K {
                bucket.replacements.remove(0);
            }
            bucket.replacements.push(Entry::responded(node, now));
            let victim = bucket
                .nodes
                .iter_mut()
                .filter(|e| e.state(now) == NodeState::Questionable && !e.eviction_ping)
                .min_by_key(|e| e.last_seen());
            return match victim {
                Some(v) => {
                    v.eviction_ping = true;
                    Insert::PingFirst(v.info)
                }
                None => Insert::Waiting,
            };
        }
        Insert::Rejected
    }

    /// Splits the last bucket (the one holding our own id) in two.
    fn split(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let old = self.buckets.last_mut().expect("at least one bucket");
        let (far, near): (Vec<Entry>, Vec<Entry>) = old
            .nodes
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.info.id) == depth);
        let (rfar, rnear): (Vec<Entry>, Vec<Entry>) = old
            .replacements
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.info.id) == depth);
        old.nodes = far;
        old.replacements = rfar;
        old.last_changed = now;
        let mut new = Bucket::new(now);
        new.nodes = near;
        new.replacements = rnear;
        self.buckets.push(new);
    }

    /// `node` sent us a query. Returns whether it is in the table.
    pub fn heard_query(&mut self, node: NodeInfo, now: Instant) -> bool {
        let i = self.bucket_index(&node.id);
        match self.buckets[i]
            .nodes
            .iter_mut()
            .find(|e| e.info.id == node.id && e.info.addr == node.addr)
        {
            Some(e) => {
                e.last_query = Some(now);
                true
            }
            None => false,
        }
    }

    /// Whether a node with this id could get into the table now (its bucket
    /// has room or can split, or holds a bad node).
    pub fn has_room_for(&self, id: &Id, now: Instant) -> bool {
        if *id == self.own || self.held() >= self.max_nodes {
            return false;
        }
        let i = self.bucket_index(id);
        let b = &self.buckets[i];
        if b.nodes.iter().any(|e| e.info.id == *id) {
            return false;
        }
        b.nodes.len() < K
            || (i == self.buckets.len() - 1 && i < 159)
            || b.nodes.iter().any(|e| e.state(now) == NodeState::Bad)
    }

    /// A query to `id` at `addr` went unanswered.
    pub fn failed(&mut self, id: &Id, addr: std::net::SocketAddrV4, now: Instant) -> Failed {
        let i = self.bucket_index(id);
        let bucket = &mut self.buckets[i];
        bucket
            .replacements
            .retain(|e| !(e.info.id == *id && e.info.addr == addr));
        let Some(pos) = bucket
            .nodes
            .iter()
            .position(|e| e.info.id == *id && e.info.addr == addr)
        else {
            return Failed::Unknown;
        };
        let e = &mut bucket.nodes[pos];
        e.failures += 1;
        if e.state(now) != NodeState::Bad {
            return if e.eviction_ping {
                Failed::PingAgain(e.info)
            } else {
                Failed::Counted
            };
        }
        // Bad: give its place to the newest replacement, if any is waiting.
        if let Some(r) = bucket.replacements.pop() {
            bucket.nodes[pos] = r;
            bucket.last_changed = now;
            Failed::Evicted
        } else if e.eviction_ping {
            bucket.nodes.remove(pos);
            Failed::Evicted
        } else {
            Failed::Counted
        }
    }

    /// Buckets unchanged for [`REFRESH_AFTER`]: for each, a target id in
    /// its range (built from `random`), to be looked up. Marks them changed.
    pub fn refresh_targets(&mut self, now: Instant, random: &mut impl FnMut() -> Id) -> Vec<Id> {
        let mut out = Vec::new();
        let n = self.buckets.len();
        for i in 0..n {
            if now.saturating_duration_since(self.buckets[i].last_changed) < REFRESH_AFTER {
                continue;
            }
            self.buckets[i].last_changed = now;
            out.push(self.random_id_in_bucket(i, random()));
        }
        out
    }

    /// An id that falls in bucket `i`: our first `i` bits, then bit `i`
    /// flipped (except in the last bucket), then random bits.
    fn random_id_in_bucket(&self, i: usize, random: Id) -> Id {
        let mut id = random;
        for bit in 0..i.min(160) {
            if id.bit(bit) != self.own.bit(bit) {
                id = id.flip_bit(bit);
            }
        }
        if i < self.buckets.len() - 1 && id.bit(i) == self.own.bit(i) {
            id = id.flip_bit(i);
        }
        id
    }

    /// Removes every node; keeps the own id.
    pub fn clear(&mut self, now: Instant) {
        self.buckets = vec![Bucket::new(now)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn node(id: Id, n: u32) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + n), 6881),
        }
    }

    fn id_with_prefix(own: Id, cpl: usize, salt: u8) -> Id {
        let mut id = own.flip_bit(cpl);
        id.0[19] ^= salt;
        if cpl >= 152 {
            id.0[19] = own.flip_bit(cpl).0[19];
        }
        id
    }

    #[test]
    fn splits_around_own_id() {
        let t0 = Instant::now();
        let own = Id([0; 20]);
        let mut t = RoutingTable::new(own, t0);
        // 8 far nodes (first bit differs) fill the only bucket.
        for i in 0..8u8 {
            assert_eq!(
                t.heard_response(node(id_with_prefix(own, 0, i), u32::from(i)), t0),
                Insert::Added
            );
        }
        assert_eq!(t.stats(t0).buckets, 1);
        // A near node splits: bucket 0 keeps the far ones, the near one goes on.
        assert_eq!(
            t.heard_response(node(id_with_prefix(own, 5, 1), 100), t0),
            Insert::Added
        );
        assert_eq!(t.stats(t0).buckets, 2);
        // Another far node: bucket 0 is full of good nodes, it cannot split.
        let r = t.heard_response(node(id_with_prefix(own, 0, 50), 200), t0);
        assert_eq!(r, Insert::Waiting);
        assert_eq!(t.len(), 9);
        // Near nodes keep splitting the last bucket.
        for i in 0..20u8 {
            t.heard_response(
                node(
                    id_with_prefix(own, 6 + usize::from(i), 3),
                    300 + u32::from(i),
                ),
                t0,
            );
        }
        assert_eq!(t.len(), 29);
        assert!(t.stats(t0).buckets >= 3, "{:?}", t.stats(t0));
        // Own id is never added.
        assert_eq!(t.heard_response(node(own, 1), t0), Insert::Rejected);
    }

    #[test]
    fn states_follow_time_and_failures() {
        let t0 = Instant::now();
        let own = Id([0; 20]);
        let mut t = RoutingTable::new(own, t0);
        let n = node(Id([0xff; 20]), 1);
        t.heard_response(n, t0);
        assert_eq!(t.get(&n.id).unwrap().state(t0), NodeState::Good);
        let t1 = t0 + GOOD_FOR + Duration::from_secs(1);
        assert_eq!(t.get(&n.id).unwrap().state(t1), NodeState::Questionable);
        // A query from it (it answered before) makes it good again.
        assert!(t.heard_query(n, t1));
        assert_eq!(t.get(&n.id).unwrap().state(t1), NodeState::Good);
        // One failure: still good (recently seen); two: bad.
        assert_eq!(t.failed(&n.id, n.addr, t1), Failed::Counted);
        assert_eq!(t.get(&n.id).unwrap().state(t1), NodeState::Good);
        assert_eq!(t.failed(&n.id, n.addr, t1), Failed::Counted);
        assert_eq!(t.get(&n.id).unwrap().state(t1), NodeState::Bad);
        assert!(t.closest(&n.id, 8, t1).is_empty());
        // Answering again clears the failures.
        t.heard_response(n, t1);
        assert_eq!(t.get(&n.id).unwrap().state(t1), NodeState::Good);
        // A known id from another address is refused.
        let spoof = NodeInfo {
            id: n.id,
            addr: SocketAddrV4::new(Ipv4Addr::new(9, 9, 9, 9), 1),
        };
        assert_eq!(t.heard_response(spoof, t1), Insert::Rejected);
    }

    #[test]
    fn bad_nodes_are_replaced_and_questionable_pinged() {
        let t0 = Instant::now();
        let own = Id([0; 20]);
        let mut t = RoutingTable::new(own, t0);
        // Fill bucket 0 and split once so that bucket 0 cannot split again.
        for i in 0..8u8 {
            t.heard_response(node(id_with_prefix(own, 0, i), u32::from(i)), t0);
        }
        t.heard_response(node(id_with_prefix(own, 3, 0), 99), t0);
        let far0 = node(id_with_prefix(own, 0, 0), 0);
        // Make far0 bad: a newcomer replaces it.
        t.failed(&far0.id, far0.addr, t0);
        t.failed(&far0.id, far0.addr, t0);
        let newcomer = node(id_with_prefix(own, 0, 77), 77);
        assert_eq!(t.heard_response(newcomer, t0), Insert::Replaced(far0));
        // Later all are questionable: a newcomer waits, the least recently
        // seen is pinged.
        let t1 = t0 + GOOD_FOR + Duration::from_secs(5);
        let far1 = node(id_with_prefix(own, 0, 1), 1);
        t.heard_query(far1, t0 + Duration::from_secs(1)); // seen later than the others
        let late = node(id_with_prefix(own, 0, 88), 88);
        let Insert::PingFirst(victim) = t.heard_response(late, t1) else {
            panic!()
        };
        assert_ne!(victim, far1);
        // The victim answers: it stays good, the newcomer keeps waiting.
        assert_eq!(t.heard_response(victim, t1), Insert::Updated);
        assert_eq!(t.get(&victim.id).unwrap().state(t1), NodeState::Good);
        assert!(t.get(&late.id).is_none());
        // Another newcomer: another victim, which fails twice and is evicted.
        let late2 = node(id_with_prefix(own, 0, 99), 199);
        let Insert::PingFirst(victim2) = t.heard_response(late2, t1) else {
            panic!()
        };
        assert_eq!(
            t.failed(&victim2.id, victim2.addr, t1),
            Failed::PingAgain(victim2)
        );
        assert_eq!(t.failed(&victim2.id, victim2.addr, t1), Failed::Evicted);
        assert!(t.get(&victim2.id).is_none());
        assert!(t.get(&late2.id).is_some());
        assert_eq!(t.stats(t1).nodes, 9);
    }

    #[test]
    fn refresh_and_cap() {
        let t0 = Instant::now();
        let own = Id([0x55; 20]);
        let mut t = RoutingTable::with_cap(own, t0, 10);
        let mut seed = 1u8;
        let mut random = || {
            seed = seed.wrapping_mul(31).wrapping_add(7);
            Id([seed; 20])
        };
        assert!(t.refresh_targets(t0, &mut random).is_empty());
        let later = t0 + REFRESH_AFTER;
        let targets = t.refresh_targets(later, &mut random);
        assert_eq!(targets.len(), 1);
        assert!(t.refresh_targets(later, &mut random).is_empty());
        // The cap holds whatever arrives.
        for i in 0..500u32 {
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            t.heard_response(node(Id(id), i), t0);
        }
        let s = t.stats(t0);
        assert!(s.nodes + s.replacements <= 10, "{s:?}");
        // Refresh targets fall in their bucket.
        for _ in 0..5 {
            t.heard_response(node(own.flip_bit(40), 1000), t0);
        }
        let targets = t.refresh_targets(t0 + REFRESH_AFTER * 3, &mut random);
        for (i, target) in targets.iter().enumerate() {
            let cpl = own.common_prefix_len(target);
            if i + 1 < targets.len() {
                assert_eq!(cpl, i);
            } else {
                assert!(cpl >= i);
            }
        }
    }
}

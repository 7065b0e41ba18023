//! The addresses a torrent knows of: those waiting to be tried, those
//! waiting for a retry after a failure (with exponential back-off), the
//! banned ones and the hash-failure strikes that lead to a ban. Ordered
//! containers only, so that which peer is tried next never depends on a
//! hasher's seed.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::encryption::Opening;
use super::peer::CloseReason;
use crate::backoff::Backoff;
use crate::peer_source::Origin;

/// Peer addresses remembered (connected, queued or waiting for a retry).
const MAX_KNOWN_PEERS: usize = 5000;
/// Retries of an outgoing connection that failed or dropped.
const MAX_CONNECT_ATTEMPTS: u32 = 5;
/// Waits between retries: 4 s after the first failure, doubling to 64 s.
const RETRY: Backoff = Backoff::new(Duration::from_secs(4), Duration::from_secs(64));
/// Hash-failure strikes after which a peer is banned.
const BAN_STRIKES: u32 = 3;
/// Banned addresses, and addresses with strikes, each kept at most: past
/// it the oldest entry goes, so that a swarm of ever new addresses sending
/// bad pieces cannot grow either table without bound (an address banned
/// that long ago may come back, and is banned again if it misbehaves).
const MAX_BANNED: usize = 5000;
/// How long an address whose connection ended for good (a duplicate of
/// another connection, both seeds) stays known, so that sources naming it
/// again do not have it dialled again at once; then it is forgotten, or
/// a seeder dialled by ever new peers fills `known` one entry per visit.
pub const HOLD_FINAL: Duration = Duration::from_secs(180);

/// Addresses with a value each, at most [`MAX_BANNED`], the oldest entry
/// dropped first: the bans and the strike counts.
#[derive(Default)]
struct OldestFirst<V> {
    map: BTreeMap<SocketAddr, V>,
    /// `map`'s addresses in the order they came.
    order: VecDeque<SocketAddr>,
}

impl<V> OldestFirst<V> {
    fn contains(&self, addr: &SocketAddr) -> bool {
        self.map.contains_key(addr)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }

    /// The value of `addr`, inserted as `new` when absent (see [`trim`]).
    ///
    /// [`trim`]: OldestFirst::trim
    fn get_or_insert(&mut self, addr: SocketAddr, new: V) -> &mut V {
        match self.map.entry(addr) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.order.push_back(addr);
                e.insert(new)
            }
        }
    }

    fn remove(&mut self, addr: &SocketAddr) {
        if self.map.remove(addr).is_some() {
            self.order.retain(|a| a != addr);
        }
    }

    /// Drops the oldest entries past the cap.
    fn trim(&mut self) {
        while self.order.len() > MAX_BANNED {
            if let Some(oldest) = self.order.pop_front() {
                self.map.remove(&oldest);
            }
        }
    }
}

#[derive(Default)]
pub struct Candidates {
    queue: VecDeque<SocketAddr>,
    /// Addresses connected, connecting, queued or waiting for a retry, and
    /// how we learnt of each.
    known: BTreeMap<SocketAddr, Origin>,
    banned: OldestFirst<()>,
    attempts: BTreeMap<SocketAddr, u32>,
    /// Retries by due time (several may share one instant).
    retry: BTreeMap<(Instant, SocketAddr), ()>,
    strikes: OldestFirst<u32>,
    /// Addresses not to retry, by the time they are forgotten
    /// ([`HOLD_FINAL`]).
    held: BTreeMap<(Instant, SocketAddr), ()>,
    /// Addresses that dropped us during the handshake, and the opening
    /// their next connection uses.
    openings: BTreeMap<SocketAddr, Opening>,
    /// Addresses already retried at once after such a drop (once each).
    retried_at_once: BTreeSet<SocketAddr>,
    /// The listen address an incoming connection told us (BEP 10 `p`),
    /// by the connection's address: forgotten with the connection, or a
    /// seeder serving peers that come back on new ports fills `known`
    /// (and then refuses every new address) one entry per visit.
    listen_of: BTreeMap<SocketAddr, SocketAddr>,
}

impl Candidates {
    /// A new address to try; false when it is known, banned, unusable or
    /// the table is full (bounded whatever a tracker or stdin hands out).
    pub fn add(&mut self, addr: SocketAddr, origin: Origin) -> bool {
        if addr.port() == 0
            || self.known.len() >= MAX_KNOWN_PEERS
            || self.banned.contains(&addr)
            || self.known.contains_key(&addr)
        {
            return false;
        }
        self.known.insert(addr, origin);
        self.queue.push_back(addr);
        true
    }

    /// Marks an address as known without queueing it (a peer connected to
    /// us, or told us its listen address).
    pub fn note(&mut self, addr: SocketAddr, origin: Origin) {
        if self.known.len() < MAX_KNOWN_PEERS {
            self.known.entry(addr).or_insert(origin);
        }
    }

    /// An incoming connection from `conn` said it listens on `listen`:
    /// known (never dialled while connected) until the connection ends.
    pub fn note_listen(&mut self, conn: SocketAddr, listen: SocketAddr) {
        if listen == conn || self.known.len() >= MAX_KNOWN_PEERS {
            return;
        }
        if let Entry::Vacant(e) = self.known.entry(listen) {
            e.insert(Origin::Incoming);
            self.listen_of.insert(conn, listen);
        }
    }

    pub fn origin(&self, addr: &SocketAddr) -> Option<Origin> {
        self.known.get(addr).copied()
    }

    pub fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.banned.contains(addr)
    }

    /// Bans an address; true when it was not banned yet.
    pub fn ban(&mut self, addr: SocketAddr) -> bool {
        if self.banned.contains(&addr) {
            return false;
        }
        self.banned.get_or_insert(addr, ());
        self.banned.trim();
        true
    }

    /// Adds hash-failure strikes; true when the address is banned by them
    /// (for the first time). A banned address's strikes are forgotten.
    pub fn strike(&mut self, addr: SocketAddr, strikes: u32) -> bool {
        if self.banned.contains(&addr) {
            return false;
        }
        let s = self.strikes.get_or_insert(addr, 0);
        *s += strikes;
        if *s >= BAN_STRIKES {
            self.strikes.remove(&addr);
            return self.ban(addr);
        }
        self.strikes.trim();
        false
    }

    /// Forgets an address learnt through PEX that is still waiting in the
    /// queue (a peer said it is gone); connected or retried ones stay.
    pub fn forget_pex(&mut self, addr: &SocketAddr) {
        if self.known.get(addr) != Some(&Origin::Pex) {
            return;
        }
        let before = self.queue.len();
        self.queue.retain(|a| a != addr);
        if self.queue.len() != before {
            self.known.remove(addr);
        }
    }

    /// Every address known, with how we learnt of it (to carry them over
    /// to another session).
    pub fn known(&self) -> impl Iterator<Item = (SocketAddr, Origin)> + '_ {
        self.known
            .iter()
            .filter(|(a, _)| !self.banned.contains(a))
            .map(|(a, o)| (*a, *o))
    }

    pub fn banned(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.banned.map.keys().copied()
    }

    /// An outgoing connection failed or ended: retry it later, unless that
    /// is pointless or it failed too often.
    pub fn outgoing_ended(&mut self, addr: SocketAddr, reason: &CloseReason, now: Instant) {
        if self.banned.contains(&addr) {
            return;
        }
        let tries = self.attempts.entry(addr).or_insert(0);
        *tries += 1;
        if reason.final_for_address() {
            self.held.insert((now + HOLD_FINAL, addr), ());
            return;
        }
        if *tries < MAX_CONNECT_ATTEMPTS {
            self.retry.insert((now + RETRY.delay(*tries), addr), ());
        } else {
            self.forget(&addr);
        }
    }

    /// An incoming connection ended: the address, and the listen address
    /// it told us, may come again.
    pub fn incoming_ended(&mut self, addr: &SocketAddr) {
        self.forget(addr);
    }

    /// Drops everything kept about an address (its attempts too: a later
    /// tracker or PEX entry for it starts afresh) and the listen address
    /// its connection told us, so that nothing here grows with the number
    /// of addresses ever seen.
    fn forget(&mut self, addr: &SocketAddr) {
        self.known.remove(addr);
        self.attempts.remove(addr);
        self.openings.remove(addr);
        self.retried_at_once.remove(addr);
        if let Some(listen) = self.listen_of.remove(addr) {
            // Only if nothing else made it known since (a PEX or tracker
            // entry for the same address stays). One level: `note_listen`
            // never records a listen address as a connection.
            if self.known.get(&listen) == Some(&Origin::Incoming) {
                self.known.remove(&listen);
            }
        }
    }

    /// How to open connections to `addr`, if it fell back.
    pub fn opening(&self, addr: &SocketAddr) -> Option<Opening> {
        self.openings.get(addr).copied()
    }

    /// The peer dropped us during the handshake: its next connection uses
    /// `next`. The first time for an address it is queued at once (true);
    /// afterwards the caller schedules the retry as for any failure
    /// (false), so that a peer refusing both openings is not hammered.
    pub fn switch_opening(&mut self, addr: SocketAddr, next: Opening) -> bool {
        if self.banned.contains(&addr) || !self.known.contains_key(&addr) {
            return false;
        }
        self.openings.insert(addr, next);
        if self.retried_at_once.insert(addr) {
            self.queue.push_front(addr);
            return true;
        }
        false
    }

    /// Moves the retries due by `now` to the queue, and forgets the
    /// addresses held long enough.
    pub fn release_due(&mut self, now: Instant) {
        while let Some((&(at, addr), _)) = self.held.first_key_value() {
            if at > now {
                break;
            }
            self.held.pop_first();
            // Known all along, so never queued or dialled meanwhile.
            self.forget(&addr);
        }
        while let Some((&(at, addr), _)) = self.retry.first_key_value() {
            if at > now {
                break;
            }
            self.retry.pop_first();
            if !self.banned.contains(&addr) {
                self.queue.push_back(addr);
            }
        }
    }

    /// The next address to try, if any.
    pub fn pop(&mut self) -> Option<SocketAddr> {
        self.queue.pop_front()
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// When the next retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retry.first_key_value().map(|(&(at, _), _)| at)
    }

    /// The length of each table, by name (leak checks).
    #[cfg(test)]
    pub fn table_sizes(&self, into: &mut BTreeMap<&'static str, usize>) {
        into.insert("candidates.queue", self.queue.len());
        into.insert("candidates.known", self.known.len());
        into.insert("candidates.banned", self.banned.len());
        into.insert("candidates.attempts", self.attempts.len());
        into.insert("candidates.retry", self.retry.len());
        into.insert("candidates.strikes", self.strikes.len());
        into.insert("candidates.openings", self.openings.len());
        into.insert("candidates.retried_at_once", self.retried_at_once.len());
        into.insert("candidates.listen_of", self.listen_of.len());
        into.insert("candidates.held", self.held.len());
    }

    /// Forgets every queued address and retry (at exit).
    pub fn clear_pending(&mut self) {
        self.queue.clear();
        self.retry.clear();
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn known_banned_and_port_zero_are_not_queued() {
        let mut c = Candidates::default();
        assert!(c.add(a(1), Origin::Stdin));
        assert!(!c.add(a(1), Origin::Tracker), "known");
        assert!(!c.add(a(0), Origin::Stdin), "port 0");
        c.ban(a(2));
        assert!(!c.add(a(2), Origin::Stdin), "banned");
        assert_eq!(c.origin(&a(1)), Some(Origin::Stdin));
        assert_eq!(c.pop(), Some(a(1)));
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let mut c = Candidates::default();
        let t0 = Instant::now();
        c.add(a(1), Origin::Tracker);
        c.pop();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..MAX_CONNECT_ATTEMPTS {
            c.outgoing_ended(a(1), &CloseReason::ClosedByPeer, now);
            let Some(at) = c.next_retry() else { break };
            waits.push((at - now).as_secs());
            c.release_due(at - Duration::from_millis(1));
            assert!(!c.has_queued(), "not before it is due");
            c.release_due(at);
            assert_eq!(c.pop(), Some(a(1)));
            now = at;
        }
        assert_eq!(waits, [4, 8, 16, 32]);
        assert_eq!(c.origin(&a(1)), None, "forgotten after the last attempt");
        // A pointless retry is not scheduled, and the address stays known
        // for a while, then is forgotten.
        c.add(a(3), Origin::Tracker);
        c.pop();
        c.outgoing_ended(a(3), &CloseReason::Duplicate, now);
        assert_eq!(c.next_retry(), None);
        assert!(!c.add(a(3), Origin::Tracker));
        c.release_due(now + HOLD_FINAL - Duration::from_millis(1));
        assert!(!c.add(a(3), Origin::Tracker), "held");
        c.release_due(now + HOLD_FINAL);
        assert!(c.attempts.is_empty() && c.held.is_empty());
        assert!(c.add(a(3), Origin::Tracker), "forgotten after the hold");
        assert_eq!(c.pop(), Some(a(3)));
    }

    #[test]
    fn openings_switch_back_and_forth_retrying_at_once_only_the_first_time() {
        let mut c = Candidates::default();
        let now = Instant::now();
        c.add(a(1), Origin::Tracker);
        c.pop();
        assert_eq!(c.opening(&a(1)), None);
        assert!(c.switch_opening(a(1), Opening::Mse), "queued at once");
        assert_eq!(c.pop(), Some(a(1)));
        assert_eq!(c.opening(&a(1)), Some(Opening::Mse));
        assert!(
            !c.switch_opening(a(1), Opening::Plaintext),
            "not at once again"
        );
        assert_eq!(c.opening(&a(1)), Some(Opening::Plaintext));
        c.outgoing_ended(a(1), &CloseReason::ClosedByPeer, now);
        assert!(c.next_retry().is_some(), "a normal retry instead");
        assert!(!c.switch_opening(a(9), Opening::Mse), "unknown address");
    }

    #[test]
    fn peers_coming_back_on_new_ports_leave_nothing_behind() {
        // A seeder's day: incoming connections from ever new ports, each
        // telling a new listen port, some outgoing ones that end.
        let mut c = Candidates::default();
        let now = Instant::now();
        for visit in 0..2 * MAX_KNOWN_PEERS as u16 {
            let conn = a(10_000 + visit);
            c.note(conn, Origin::Incoming);
            c.note_listen(conn, a(40_000 + visit % 20_000));
            c.incoming_ended(&conn);
        }
        for port in 1..=50 {
            c.add(a(port), Origin::Pex);
            c.pop();
            for _ in 0..MAX_CONNECT_ATTEMPTS {
                c.outgoing_ended(a(port), &CloseReason::ClosedByPeer, now);
            }
        }
        assert!(c.known.is_empty(), "{} known", c.known.len());
        assert!(c.listen_of.is_empty() && c.attempts.is_empty());
        assert!(c.add(a(9), Origin::Tracker), "the table has room");
    }

    #[test]
    fn a_listen_address_known_otherwise_outlives_the_connection() {
        let mut c = Candidates::default();
        c.add(a(2), Origin::Pex);
        c.note(a(1), Origin::Incoming);
        c.note_listen(a(1), a(2));
        c.incoming_ended(&a(1));
        assert_eq!(c.origin(&a(2)), Some(Origin::Pex));
        // Noted by the connection alone: gone with it.
        c.note(a(3), Origin::Incoming);
        c.note_listen(a(3), a(4));
        assert_eq!(
            c.origin(&a(4)),
            Some(Origin::Incoming),
            "not dialled meanwhile"
        );
        c.incoming_ended(&a(3));
        assert_eq!(c.origin(&a(4)), None);
    }

    #[test]
    fn strikes_ban_once() {
        let mut c = Candidates::default();
        assert!(!c.strike(a(1), 2));
        assert!(c.strike(a(1), 1));
        assert!(!c.strike(a(1), 1), "already banned");
        assert!(c.is_banned(&a(1)));
        assert_eq!(c.strikes.len(), 0, "a ban ends the strikes");
    }

    /// Ever new guilty addresses cannot grow the ban and strike tables
    /// past their cap: the oldest entries go first.
    #[test]
    fn bans_and_strikes_are_bounded() {
        let mut c = Candidates::default();
        let addr =
            |i: usize| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
        for i in 0..MAX_BANNED + 10 {
            assert!(c.ban(addr(i)));
            assert!(!c.strike(addr(100_000 + i), 1));
        }
        assert_eq!(
            (c.banned.len(), c.banned.order.len()),
            (MAX_BANNED, MAX_BANNED)
        );
        assert_eq!(
            (c.strikes.len(), c.strikes.order.len()),
            (MAX_BANNED, MAX_BANNED)
        );
        assert!(!c.is_banned(&addr(9)), "the oldest bans went");
        assert!(c.is_banned(&addr(10)) && c.is_banned(&addr(MAX_BANNED + 9)));
        assert!(!c.strikes.contains(&addr(100_009)));
        assert_eq!(c.strikes.map.get(&addr(100_010)), Some(&1));
        // An old address banned again, then struck: no entry grows.
        assert!(c.ban(addr(0)));
        assert!(!c.strike(addr(0), 5));
        assert_eq!(c.banned.len(), MAX_BANNED);
    }
}

//! Peers announced to us (`announce_peer`), kept per info-hash: bounded per
//! info-hash and in total, each expiring [`PEER_TTL`] after its last announce.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::krpc::Id;

/// How long an announced peer is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_MAX_PER_HASH: usize = 100;
pub const DEFAULT_MAX_TOTAL: usize = 10_000;

#[derive(Clone, Debug)]
pub struct PeerStore {
    peers: BTreeMap<Id, BTreeMap<SocketAddrV4, Instant>>,
    total: usize,
    max_per_hash: usize,
    max_total: usize,
}

impl Default for PeerStore {
    fn default() -> Self {
        PeerStore::new(DEFAULT_MAX_PER_HASH, DEFAULT_MAX_TOTAL)
    }
}

impl PeerStore {
    pub fn new(max_per_hash: usize, max_total: usize) -> PeerStore {
        PeerStore {
            peers: BTreeMap::new(),
            total: 0,
            max_per_hash,
            max_total,
        }
    }

    /// Records `peer` for `info_hash`. A full info-hash drops its oldest
    /// peer; when the store is full, new peers are refused (false).
    pub fn add(&mut self, info_hash: Id, peer: SocketAddrV4, now: Instant) -> bool {
        // Expiry walks the whole store: only when it is needed to make room
        // (the node also expires peers once a minute).
        if self.total >= self.max_total {
            self.expire(now);
        }
        if let Some(set) = self.peers.get_mut(&info_hash) {
            if let Some(t) = set.get_mut(&peer) {
                *t = now;
                return true;
            }
            if set.len() >= self.max_per_hash {
                let oldest = set.iter().min_by_key(|(a, t)| (**t, **a)).map(|(a, _)| *a);
                if let Some(a) = oldest {
                    set.remove(&a);
                    self.total -= 1;
                }
            }
        }
        if self.total >= self.max_total {
            return false;
        }
        self.peers.entry(info_hash).or_default().insert(peer, now);
        self.total += 1;
        true
    }

    /// Up to `max` peers of `info_hash`, most recently announced first.
    pub fn get(&self, info_hash: &Id, max: usize, now: Instant) -> Vec<SocketAddrV4> {
        let Some(set) = self.peers.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<(Instant, SocketAddrV4)> = set
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) < PEER_TTL)
            .map(|(a, t)| (*t, *a))
            .collect();
        live.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        live.into_iter().take(max).map(|(_, a)| a).collect()
    }

    /// Drops expired peers.
    pub fn expire(&mut self, now: Instant) {
        let mut removed = 0;
        self.peers.retain(|_, set| {
            let before = set.len();
            set.retain(|_, t| now.saturating_duration_since(*t) < PEER_TTL);
            removed += before - set.len();
            !set.is_empty()
        });
        self.total -= removed;
    }

    /// Peers held in all.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn info_hashes(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn peer(n: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + n), 6881)
    }

    #[test]
    fn bounded_per_hash_and_in_total() {
        let t0 = Instant::now();
        let mut s = PeerStore::new(3, 5);
        let h = Id([1; 20]);
        for i in 0..10 {
            assert!(s.add(h, peer(i), t0 + Duration::from_secs(u64::from(i))));
        }
        assert_eq!(s.len(), 3);
        let now = t0 + Duration::from_secs(10);
        assert_eq!(s.get(&h, 10, now), vec![peer(9), peer(8), peer(7)]);
        assert_eq!(s.get(&h, 1, now), vec![peer(9)]);
        let h2 = Id([2; 20]);
        assert!(s.add(h2, peer(100), now));
        assert!(s.add(h2, peer(101), now));
        assert!(!s.add(h2, peer(102), now), "the store is full");
        assert_eq!(s.len(), 5);
        // Re-announcing a known peer refreshes it even when full.
        assert!(s.add(h2, peer(101), now));
        // Once peers expire there is room again.
        let later = now + PEER_TTL;
        assert!(s.add(h2, peer(103), later));
        assert_eq!(s.len(), 1, "all the others expired");
    }

    #[test]
    fn peers_expire() {
        let t0 = Instant::now();
        let mut s = PeerStore::default();
        let h = Id([1; 20]);
        s.add(h, peer(1), t0);
        s.add(h, peer(2), t0 + Duration::from_secs(600));
        let t1 = t0 + PEER_TTL;
        assert_eq!(s.get(&h, 10, t1), vec![peer(2)]);
        s.expire(t1);
        assert_eq!(s.len(), 1);
        s.expire(t1 + Duration::from_secs(600));
        assert!(s.is_empty());
        assert_eq!(s.info_hashes(), 0);
    }
}

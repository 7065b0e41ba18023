//! The seed split: how leechers running this program share out a seed's
//! pieces so that a slow seed sends each piece about once (see
//! [`SeedSplit`]). Pure functions of peer ids and piece indexes, the same
//! on every leecher.

use std::collections::BTreeMap;
use std::time::Duration;

use super::peer::{Peer, Token};

/// Nothing on request and no progress for this long turns the seed split
/// off for `SPLIT_PAUSE`.
pub(super) const SPLIT_IDLE_GRACE: Duration = Duration::from_secs(2);
pub(super) const SPLIT_PAUSE: Duration = Duration::from_secs(10);

/// The split is also paused (for `SPLIT_PAUSE`) when a seed has nothing
/// left for us under it and the cooperating leechers pass pieces on to us
/// at less than this fraction of the seed's rate to us: the leechers are
/// the bottleneck then, not the seed.
pub(super) const SPLIT_MIN_PASSED_ON: f64 = 0.25;

/// Most leechers the seed split looks at (its cost is pieces × leechers
/// per piece started from a seed).
pub(super) const MAX_SPLIT_PEERS: usize = 32;

pub(super) struct SplitPeer {
    pub token: Token,
    /// Set for peers running this program, which follow the same split.
    pub key: Option<u64>,
    /// It unchokes us: what it has we can get from it.
    pub supplies: bool,
}

/// The seed split: every piece no leecher has yet is owned by the
/// cooperating leecher (this program, same peer id prefix) that scores
/// highest for it on a hash of its peer id and the piece index, the same
/// computation on every leecher. A leecher asks a seed only for its own
/// pieces and gets the others from their owners. Taking over others'
/// pieces early does not pay: an owner requests its pieces long before
/// the seed sends them (its queue holds seconds of data), so a helper
/// would only fetch them twice. Pieces a leecher already has are left to
/// it when it unchokes us or is one of ours.
pub(super) struct SeedSplit {
    pub me: u64,
    pub leechers: Vec<SplitPeer>,
}

impl SeedSplit {
    /// Whether `piece` is not to be asked of the seed: another leecher
    /// owns it, or has it.
    pub fn leaves(&self, piece: usize, peers: &BTreeMap<Token, Peer>) -> bool {
        let mine = split_score(self.me, piece);
        self.leechers.iter().any(|l| {
            let Some(q) = peers.get(&l.token) else {
                return false;
            };
            if q.have.get(piece) {
                // From a peer that unchokes us now, or from one of ours,
                // which will (the choker rotates) or passes it on.
                l.supplies || l.key.is_some()
            } else {
                l.key.is_some_and(|key| split_score(key, piece) > mine)
            }
        })
    }
}

pub(super) fn split_key(peer_id: &[u8; 20]) -> u64 {
    // FNV-1a: stable across builds and machines, unlike std's hasher.
    peer_id.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(super) fn split_score(key: u64, piece: usize) -> u64 {
    // splitmix64 of the key and the piece.
    let mut z = key ^ (piece as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

//! Upload scheduling: which queued requests of a peer become disk reads
//! now, and at what rate. There is one overall budget (`--max-upload-rate`)
//! and, when the choker asks for it, a budget per peer, so a strategy can
//! give different peers different rates rather than only choke or unchoke
//! them. Reads are bounded per peer (in flight and buffered output), so a
//! peer that queues thousands of requests costs a few hundred KiB at most.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::peer::{Peer, Token};

/// Disk reads in flight per peer, and output bytes buffered.
const MAX_READS_PER_PEER: usize = 8;
const MAX_OUTPUT_BUFFERED: usize = 512 * 1024;
/// Largest single read for uploads (consecutive requests coalesced).
pub const MAX_READ: u32 = 256 * 1024;
/// How often budgets are refilled; at most this long's worth accumulates,
/// so an idle peer cannot save up a burst.
pub const REFILL: Duration = Duration::from_millis(100);

/// A disk read for an upload: `length` bytes of `piece` from `begin`,
/// covering the peer's requests of lengths `blocks`, in order
/// (consecutive requests are read at once). `uid` tells a reused token's
/// new connection from the one that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRead {
    pub token: Token,
    pub uid: u64,
    pub piece: u32,
    pub begin: u32,
    pub length: u32,
    pub blocks: Vec<u32>,
}

/// A token bucket in bytes.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    allowance: f64,
    last_refill: Option<Instant>,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Bucket {
            rate,
            allowance: 0.0,
            last_refill: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = self
            .last_refill
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last_refill = Some(now);
        self.allowance = (self.allowance + self.rate * dt).min(self.rate * REFILL.as_secs_f64());
    }
}

#[derive(Debug, Default)]
pub struct Uploads {
    overall: Option<Bucket>,
    per_peer: BTreeMap<Token, Bucket>,
}

impl Uploads {
    pub fn new(max_rate: Option<u64>) -> Self {
        Uploads {
            overall: max_rate.map(|r| Bucket::new(r as f64)),
            per_peer: BTreeMap::new(),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.overall.is_some() || !self.per_peer.is_empty()
    }

    /// Sets the per-peer rates a choker decided (bytes/s); peers not
    /// listed lose theirs.
    pub fn set_peer_rates(&mut self, rates: &[(Token, f64)]) {
        let old = std::mem::take(&mut self.per_peer);
        for &(t, rate) in rates {
            let mut b = old.get(&t).cloned().unwrap_or_else(|| Bucket::new(rate));
            b.rate = rate.max(0.0);
            self.per_peer.insert(t, b);
        }
    }

    pub fn peer_left(&mut self, token: Token) {
        self.per_peer.remove(&token);
    }

    /// Refills the budgets; true when any is limited (then `tick` is
    /// needed again after [`REFILL`]).
    pub fn refill(&mut self, now: Instant) -> bool {
        if let Some(b) = &mut self.overall {
            b.refill(now);
        }
        for b in self.per_peer.values_mut() {
            b.refill(now);
        }
        self.is_limited()
    }

    /// When the budgets next need a refill (`now` if never filled).
    pub fn next_refill(&self, now: Instant) -> Option<Instant> {
        let last = self
            .overall
            .iter()
            .chain(self.per_peer.values())
            .filter_map(|b| b.last_refill)
            .min();
        match last {
            Some(t) => Some(t + REFILL),
            None if self.is_limited() => Some(now),
            None => None,
        }
    }

    /// Turns the peer's queued requests into disk reads while its output
    /// has room and the budgets allow.
    pub fn pump(&mut self, token: Token, p: &mut Peer, reads: &mut Vec<UploadRead>) {
        loop {
            let overall_ok = self.overall.as_ref().is_none_or(|b| b.allowance > 0.0);
            let peer_ok = self.per_peer.get(&token).is_none_or(|b| b.allowance > 0.0);
            if !overall_ok
                || !peer_ok
                || p.reads_in_flight >= MAX_READS_PER_PEER
                || p.out.len() + p.read_bytes_in_flight > MAX_OUTPUT_BUFFERED
            {
                return;
            }
            let Some(first) = p.requests_in.pop_front() else {
                return;
            };
            let mut blocks = vec![first.length];
            let mut total = first.length;
            while let Some(next) = p.requests_in.front() {
                if next.piece != first.piece
                    || next.begin != first.begin + total
                    || total + next.length > MAX_READ
                {
                    break;
                }
                total += next.length;
                blocks.push(next.length);
                p.requests_in.pop_front();
            }
            p.reads_in_flight += 1;
            p.read_bytes_in_flight += total as usize;
            if let Some(b) = &mut self.overall {
                b.allowance -= f64::from(total);
            }
            if let Some(b) = self.per_peer.get_mut(&token) {
                b.allowance -= f64::from(total);
            }
            reads.push(UploadRead {
                token,
                uid: p.uid,
                piece: first.piece,
                begin: first.begin,
                length: total,
                blocks,
            });
        }
    }
}

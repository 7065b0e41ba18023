//! PropShare's choker (Levin, LaCurts, Spring and Bhattacharjee,
//! "BitTorrent is an Auction: Analyzing and Improving BitTorrent's
//! Incentives", SIGCOMM 2008; the client is its §5 as we know the
//! paper, not checked).
//!
//! The paper models a round as an auction in which peers bid with the
//! bytes they sent us; PropShare clears it with a proportional share:
//! each round, our upload (minus a fixed share for optimistic unchoking)
//! is divided among the interested peers that sent us anything in the
//! previous round, in proportion to what each sent. The
//! [`OPTIMISTIC_SHARE`] goes to one optimistic unchoke that rotates every
//! 30 s, favouring newcomers as in the classic choker (with nobody to
//! give it to, it joins the proportional shares). When we are a seed, or
//! no interested peer sent us anything, the classic choker decides and no
//! per-peer rates are set.

use rand::RngCore;

use super::{optimistic_among, CapacityEstimate, ChokeDecision, ChokeRound, Choker, Classic};
use crate::session::Token;

/// Share of our upload kept for optimistic unchoking: 20 %, BitTorrent's
/// one optimistic unchoke of five slots. NOT the paper's checked value:
/// neither its text past the abstract nor its client's source could be
/// found here, and nothing found quotes it (course assignments that
/// re-implement PropShare use "e.g. 10 %", their own example).
pub const OPTIMISTIC_SHARE: f64 = 0.2;

#[derive(Debug)]
pub struct PropShare {
    capacity: CapacityEstimate,
    optimistic: Option<Token>,
    classic: Classic,
    /// The share kept for the optimistic unchoke ([`OPTIMISTIC_SHARE`]
    /// unless a sensitivity run sets another).
    optimistic_share: f64,
}

impl Default for PropShare {
    fn default() -> Self {
        PropShare::with_optimistic_share(OPTIMISTIC_SHARE)
    }
}

impl PropShare {
    pub fn new() -> Self {
        PropShare::default()
    }

    /// PropShare keeping `share` (0 to below 1, clamped) of the upload
    /// for the optimistic unchoke: bt-sim's check of how much the
    /// unverified [`OPTIMISTIC_SHARE`] matters.
    pub fn with_optimistic_share(share: f64) -> Self {
        PropShare {
            capacity: CapacityEstimate::default(),
            optimistic: None,
            classic: Classic::default(),
            optimistic_share: if share.is_finite() {
                share.clamp(0.0, 0.99)
            } else {
                OPTIMISTIC_SHARE
            },
        }
    }
}

impl Choker for PropShare {
    fn name(&self) -> &'static str {
        "propshare"
    }

    fn round(&mut self, round: &ChokeRound, rng: &mut dyn RngCore) -> ChokeDecision {
        let cap = self.capacity.update(round);
        let bids: Vec<(Token, u64)> = round
            .peers
            .iter()
            .filter(|p| p.interested && p.counters.round_downloaded > 0)
            .map(|p| (p.token, p.counters.round_downloaded))
            .collect();
        if round.seeding || bids.is_empty() {
            self.optimistic = None;
            return self.classic.round(round, rng);
        }
        let bidder = |t: Token| bids.iter().any(|(b, _)| *b == t);
        let opt = optimistic_among(round, self.optimistic, bidder, rng);
        self.optimistic = opt;
        let shared = if opt.is_some() {
            cap * (1.0 - self.optimistic_share)
        } else {
            cap
        };
        let total: u64 = bids.iter().map(|(_, b)| b).sum();
        let mut decision = ChokeDecision::default();
        for &(t, b) in &bids {
            decision.unchoke.push(t);
            decision.rates.push((t, shared * b as f64 / total as f64));
        }
        if let Some(o) = opt {
            decision.unchoke.push(o);
            decision.rates.push((o, cap * self.optimistic_share));
        }
        decision
    }

    /// Between rounds only an idle uploader lets a peer in.
    fn unchoke_on_interest(&self, unchoked: usize, slots: usize, seeding: bool) -> bool {
        if seeding {
            return self.classic.unchoke_on_interest(unchoked, slots, true);
        }
        unchoked == 0
    }

    fn peer_left(&mut self, token: Token) {
        if self.optimistic == Some(token) {
            self.optimistic = None;
        }
        self.classic.peer_left(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choker::PeerView;
    use crate::session::Counters;
    use rand::SeedableRng;
    use std::time::{Duration, Instant};

    fn view(token: Token, got: u64, interested: bool, at: Instant) -> PeerView {
        PeerView {
            token,
            interested,
            snubbed: false,
            is_seed: false,
            am_choking: true,
            connected_at: at,
            down_rate: got as f64 / 10.0,
            up_rate: 0.0,
            counters: Counters {
                round_downloaded: got,
                ..Counters::default()
            },
        }
    }

    fn round<'a>(peers: &'a [PeerView], seeding: bool, now: Instant) -> ChokeRound<'a> {
        ChokeRound {
            now,
            seeding,
            slots: 4,
            rotate_optimistic: true,
            upload_capacity: Some(100_000),
            upload_rate: 0.0,
            peers,
        }
    }

    /// 80 % of 100 kB/s divided 3:1 between the two interested
    /// contributors; a contributor that is not interested gets nothing;
    /// the 20 % goes to one of the others.
    #[test]
    fn proportional_shares_and_an_optimistic_fifth() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let peers = vec![
            view(0, 300_000, true, t0),
            view(1, 100_000, true, t0),
            view(2, 500_000, false, t0),
            view(3, 0, true, t0),
        ];
        let mut ps = PropShare::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = ps.round(&round(&peers, false, now), &mut rng);
        assert_eq!(d.unchoke, vec![0, 1, 3]);
        assert_eq!(d.rates, vec![(0, 60_000.0), (1, 20_000.0), (3, 20_000.0)]);
        // Nobody left for an optimistic unchoke: all of it is shared.
        let peers = vec![view(0, 300_000, true, t0), view(1, 100_000, true, t0)];
        let d = ps.round(&round(&peers, false, now), &mut rng);
        assert_eq!(d.rates, vec![(0, 75_000.0), (1, 25_000.0)]);
    }

    /// Another optimistic share moves the split and nothing else.
    #[test]
    fn the_optimistic_share_can_be_set() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let peers = vec![
            view(0, 300_000, true, t0),
            view(1, 100_000, true, t0),
            view(3, 0, true, t0),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut ps = PropShare::with_optimistic_share(0.1);
        let d = ps.round(&round(&peers, false, now), &mut rng);
        assert_eq!(d.unchoke, vec![0, 1, 3]);
        assert_eq!(d.rates, vec![(0, 67_500.0), (1, 22_500.0), (3, 10_000.0)]);
        let mut ps = PropShare::with_optimistic_share(f64::NAN);
        let d = ps.round(&round(&peers, false, now), &mut rng);
        assert_eq!(d.rates[2], (3, 20_000.0), "not a number: the default");
    }

    #[test]
    fn falls_back_to_classic_when_seeding_or_nobody_gave() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let peers: Vec<PeerView> = (0..6).map(|i| view(i, 0, true, t0)).collect();
        let mut ps = PropShare::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let d = ps.round(&round(&peers, false, now), &mut rng);
        assert!(d.rates.is_empty());
        assert_eq!(d.unchoke.len(), 5, "4 slots and the optimistic unchoke");
        let peers = vec![view(0, 300_000, true, t0)];
        let d = ps.round(&round(&peers, true, now), &mut rng);
        assert!(d.rates.is_empty(), "a seed sets no rates");
        // Between rounds a seed fills free slots like the classic choker.
        assert!(ps.unchoke_on_interest(4, 4, true));
        assert!(!ps.unchoke_on_interest(5, 4, true));
        assert!(!ps.unchoke_on_interest(1, 4, false));
    }
}

//! BitTyrant's choker (Piatek, Isdal, Anderson, Krishnamurthy and
//! Venkataramani, "Do incentives build robustness in BitTorrent?",
//! NSDI 2007, §4.1 "Maximizing reciprocation" and its Figure 9, "BitTyrant
//! unchoke algorithm").
//!
//! For every peer p it keeps two estimates: d_p, the rate p gives us when
//! it reciprocates, and u_p, the rate we must give p to be reciprocated.
//! Both start from p's *equal split*: p's upload rate (guessed from the
//! rate at which p announces new pieces, since in a steady swarm a peer
//! downloads about as fast as it uploads, as §4.1 does) divided by the
//! size of the active set the reference client would use at that rate.
//! (The paper divides by Azureus's recommended active-set size instead,
//! and starts u_p at "the rate just above the step in the reciprocation
//! probability" of its model, not at the equal split; a peer that has
//! announced nothing, whose equal split cannot be guessed, starts there,
//! at [`UNKNOWN_START`].)
//! Each round peers are ranked by d_p/u_p and unchoked in that order
//! while the sum of their u_p stays within our capacity; each unchoked
//! peer is given exactly u_p (when every interested peer fits with
//! capacity to spare, the rates are scaled up to fill it: excess capacity
//! is given away, not wasted). After the round, for each peer we unchoked:
//! if it did not reciprocate, u_p grows by [`DELTA`]; once it has
//! reciprocated [`R`] rounds in a row, u_p shrinks by [`GAMMA`] each
//! further round it reciprocates; d_p
//! follows the rate measured from p whenever p sends.
//!
//! Besides that ranking, one optimistic unchoke rotates every 30 s as in
//! the classic choker (new peers announce nothing, so their d_p is 0 and
//! they would otherwise never be tried), and when we are a seed the
//! classic seeding choker runs (reciprocation means nothing to a seed).

use std::collections::BTreeMap;
use std::time::Instant;

use rand::RngCore;

use super::{optimistic_among, CapacityEstimate, ChokeDecision, ChokeRound, Choker, Classic};
use crate::session::Token;

// δ, γ and r are the paper's (§4.1, "Determining upload contributions"):
// u_p is decreased by γ = 10 % if the peer reciprocates for r = 3 rounds
// and increased by δ = 20 % if it fails to reciprocate after being
// unchoked in the previous round. The authors' released client
// (`GlobalTorrentAwareDownloadingUnchoker.java`) has the same: +0.2, ×0.9
// once a peer has unchoked us for 30 s (three 10 s rounds).
// As in Figure 9 (and the client), u_p shrinks at the end of *every*
// round in which p "has unchoked us for the last r rounds", not once per
// r rounds.

/// u_p grows by δ = 20 % each round p does not reciprocate.
pub const DELTA: f64 = 0.20;
/// u_p shrinks by γ = 10 % each round once p has reciprocated r rounds
/// in a row.
pub const GAMMA: f64 = 0.10;
/// r = 3 rounds of steady reciprocation before u_p shrinks.
pub const R: u32 = 3;
/// Smallest u_p we offer anyone (bytes/s): below a block per few seconds
/// a rate is not a rate.
pub const MIN_RATE: f64 = 2048.0;

/// u_p for a peer that has announced nothing yet, so that its equal split
/// cannot be guessed (bytes/s): the paper's own start, "the rate just
/// above the step in the reciprocation probability" (§4.1), which its
/// Figure 3 puts near 14 KB/s of equal split. Starting such peers at
/// [`MIN_RATE`] instead spread a new BitTyrant peer's upload over dozens
/// of peers at a few kB/s each, at which pieces complete slowly and
/// little is left to trade (REPORT §4.3, experiment 2).
pub const UNKNOWN_START: f64 = 14_000.0;

/// The active set size the reference client (mainline 4.x) uses at an
/// upload rate of `rate` bytes/s: ⌊√(0.6·kB/s)⌋ unchokes, at least 4 (the
/// paper's Appendix, Table 2: active(r) = ⌊√(0.6 r)⌋ − ω with ω = 2
/// optimistic unchokes, split(r) = r / (active(r) + ω)).
pub fn active_set_size(rate: f64) -> f64 {
    ((0.6 * rate / 1000.0).sqrt().floor()).max(4.0)
}

/// A peer's equal split: what it gives each peer of its active set when
/// it uploads at `rate` bytes/s.
pub fn equal_split(rate: f64) -> f64 {
    rate / active_set_size(rate)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Download rate we expect from the peer when it reciprocates.
    pub d: f64,
    /// Upload rate we believe it takes to be reciprocated.
    pub u: f64,
    /// Rounds in a row it reciprocated while we unchoked it.
    pub streak: u32,
    /// d is a measurement (not yet the announce-rate guess).
    pub measured: bool,
}

#[derive(Debug)]
pub struct BitTyrant {
    piece_length: u64,
    estimates: BTreeMap<Token, Estimate>,
    /// Whom we unchoked in the last round (judged in this one).
    unchoked: Vec<Token>,
    last_round: Option<Instant>,
    capacity: CapacityEstimate,
    optimistic: Option<Token>,
    seeding: Classic,
}

impl BitTyrant {
    pub fn new(piece_length: u64) -> Self {
        BitTyrant {
            piece_length,
            estimates: BTreeMap::new(),
            unchoked: Vec::new(),
            last_round: None,
            capacity: CapacityEstimate::default(),
            optimistic: None,
            seeding: Classic::new(),
        }
    }

    /// The estimates kept for a peer.
    pub fn estimate(&self, token: Token) -> Option<&Estimate> {
        self.estimates.get(&token)
    }

    /// Updates d_p and u_p from the round that ended (`secs` long).
    fn learn(&mut self, round: &ChokeRound, secs: f64, cap: f64) {
        for p in round.peers {
            let announced = f64::from(p.counters.round_haves) * self.piece_length as f64 / secs;
            let received = p.counters.round_downloaded as f64 / secs;
            let e = self.estimates.entry(p.token).or_insert_with(|| {
                let guess = if announced > 0.0 {
                    equal_split(announced).max(MIN_RATE)
                } else {
                    UNKNOWN_START
                };
                Estimate {
                    d: if announced > 0.0 { guess } else { 0.0 },
                    u: guess,
                    streak: 0,
                    measured: false,
                }
            });
            if received > 0.0 {
                e.d = received;
                e.measured = true;
            } else if !e.measured && announced > 0.0 {
                e.d = equal_split(announced);
            }
            if self.unchoked.contains(&p.token) && p.interested {
                if received > 0.0 {
                    e.streak += 1;
                    if e.streak >= R {
                        e.u = (e.u * (1.0 - GAMMA)).max(MIN_RATE);
                    }
                } else {
                    e.u = (e.u * (1.0 + DELTA)).min(cap.max(MIN_RATE));
                    e.streak = 0;
                }
            }
        }
    }
}

impl Choker for BitTyrant {
    fn name(&self) -> &'static str {
        "bittyrant"
    }

    fn round(&mut self, round: &ChokeRound, rng: &mut dyn RngCore) -> ChokeDecision {
        let secs = self
            .last_round
            .map_or(super::ROUND.as_secs_f64(), |t| {
                round.now.saturating_duration_since(t).as_secs_f64()
            })
            .max(1.0);
        self.last_round = Some(round.now);
        let cap = self.capacity.update(round);
        self.learn(round, secs, cap);
        if round.seeding {
            self.unchoked.clear();
            return self.seeding.round(round, rng);
        }
        let mut ranked: Vec<(Token, f64, f64)> = round
            .peers
            .iter()
            .filter(|p| p.interested)
            .map(|p| {
                let e = &self.estimates[&p.token];
                (p.token, e.d / e.u, e.u)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut decision = ChokeDecision::default();
        let mut sum = 0.0;
        for (token, _, u) in ranked {
            if sum >= cap {
                break;
            }
            sum += u;
            decision.unchoke.push(token);
            decision.rates.push((token, u));
        }
        // Every interested peer is in and capacity is left: the excess is
        // contributed too (the paper's client gives away what reciprocation
        // does not need), so rates grow in proportion to fill it.
        if sum > 0.0 && sum < cap {
            let scale = cap / sum;
            for r in &mut decision.rates {
                r.1 *= scale;
            }
        }
        // One optimistic unchoke among the rest, at its u_p.
        let unchoked = &decision.unchoke;
        let opt = optimistic_among(round, self.optimistic, |t| unchoked.contains(&t), rng);
        self.optimistic = opt;
        if let Some(o) = opt {
            decision.unchoke.push(o);
            decision.rates.push((o, self.estimates[&o].u));
        }
        self.unchoked = decision.unchoke.clone();
        decision
    }

    /// Between rounds only an idle uploader lets a peer in (its rate is
    /// set at the next round).
    fn unchoke_on_interest(&self, unchoked: usize, slots: usize, seeding: bool) -> bool {
        if seeding {
            return self.seeding.unchoke_on_interest(unchoked, slots, true);
        }
        unchoked == 0
    }

    fn peer_left(&mut self, token: Token) {
        self.estimates.remove(&token);
        self.unchoked.retain(|t| *t != token);
        if self.optimistic == Some(token) {
            self.optimistic = None;
        }
        self.seeding.peer_left(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choker::PeerView;
    use crate::session::Counters;
    use rand::SeedableRng;
    use std::time::Duration;

    const PIECE: u64 = 256 * 1024;

    /// δ, γ and r are the paper's and the released client's (see the
    /// comment above `DELTA`): changing one means leaving them.
    #[test]
    fn constants_are_the_released_clients() {
        assert_eq!((DELTA, GAMMA, R), (0.2, 0.1, 3));
        // r rounds of 10 s are the client's 30 s of reciprocation.
        assert_eq!(u64::from(R) * crate::choker::ROUND.as_secs(), 30);
    }

    fn view(token: Token, haves: u32, got: u64, at: Instant) -> PeerView {
        PeerView {
            token,
            interested: true,
            snubbed: false,
            is_seed: false,
            am_choking: true,
            connected_at: at,
            down_rate: 0.0,
            up_rate: 0.0,
            counters: Counters {
                round_haves: haves,
                round_downloaded: got,
                ..Counters::default()
            },
        }
    }

    fn round<'a>(now: Instant, cap: u64, peers: &'a [PeerView]) -> ChokeRound<'a> {
        ChokeRound {
            now,
            seeding: false,
            slots: 4,
            rotate_optimistic: false,
            upload_capacity: Some(cap),
            upload_rate: 0.0,
            peers,
        }
    }

    #[test]
    fn equal_split_follows_the_reference_active_set() {
        // 10 kB/s: sqrt(6) < 4, so 4 peers share it.
        assert_eq!(active_set_size(10_000.0), 4.0);
        // 1 MB/s: floor(sqrt(600)) = 24.
        assert_eq!(active_set_size(1_000_000.0), 24.0);
        assert!((equal_split(1_000_000.0) - 1_000_000.0 / 24.0).abs() < 1e-9);
    }

    /// First round: estimates from announced pieces; ranked by d/u (all
    /// equal-split guesses, so 1.0, ties by token), unchoked while the
    /// u_p fit in the capacity, each at its u_p; the rest are choked
    /// except one optimistic unchoke.
    #[test]
    fn first_round_unchokes_by_ratio_until_capacity() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        // Peer 0 announces 4 pieces in 10 s (~105 kB/s: active set 7 ->
        // ~15 kB/s), peer 1 and 2 one piece (~26 kB/s -> /4 = 6.5 kB/s),
        // peer 3 nothing.
        let peers = vec![
            view(0, 4, 0, t0),
            view(1, 1, 0, t0),
            view(2, 1, 0, t0),
            view(3, 0, 0, t0),
        ];
        let mut bt = BitTyrant::new(PIECE);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = bt.round(&round(now, 25_000, &peers), &mut rng);
        let u0 = equal_split(4.0 * PIECE as f64 / 10.0);
        let u1 = equal_split(PIECE as f64 / 10.0);
        assert!((bt.estimate(0).unwrap().u - u0).abs() < 1e-6);
        // 0 (u0 ~ 15 kB/s) then 1 (u1 ~ 6.5 kB/s): sum ~ 21.5 k < 25 k,
        // then 2 fits as the sum is still below the capacity.
        assert_eq!(&d.unchoke[..3], &[0, 1, 2]);
        assert_eq!(d.rates[0], (0, u0));
        assert_eq!(d.rates[1], (1, u1));
        // The optimistic unchoke is the only one left: 3.
        assert_eq!(d.unchoke.len(), 4);
        assert_eq!(d.unchoke[3], 3);
        // Peer 3 announced nothing: no equal split to guess, the paper's
        // start instead of our floor.
        assert_eq!(bt.estimate(3).unwrap().u, UNKNOWN_START);
        assert_eq!(bt.estimate(3).unwrap().d, 0.0);
    }

    /// After the round: a peer that did not reciprocate costs δ more; a
    /// peer that did gets d_p measured, and from the r-th round on u_p
    /// shrinks by γ each round; the ranking follows d/u.
    #[test]
    fn delta_gamma_and_r() {
        let t0 = Instant::now();
        let mut now = t0 + Duration::from_secs(600);
        let mut bt = BitTyrant::new(PIECE);
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let peers = vec![view(0, 1, 0, t0), view(1, 1, 0, t0)];
        let d = bt.round(&round(now, 1_000_000, &peers), &mut rng);
        assert_eq!(d.unchoke, vec![0, 1]);
        let u = bt.estimate(0).unwrap().u;
        // Both fit with room to spare: the excess is given away, the
        // rates (not the estimates) scaled to fill the capacity.
        assert_eq!(d.rates.len(), 2);
        assert!((d.rates[0].1 + d.rates[1].1 - 1_000_000.0).abs() < 1e-3);
        // Peer 0 reciprocates at 50 kB/s, peer 1 does not.
        let mut rounds = Vec::new();
        // Two rounds past r: u_p shrinks again in each (Figure 9), not
        // once per r rounds.
        for k in 1..=R + 2 {
            now += Duration::from_secs(10);
            let peers = vec![view(0, 1, 500_000, t0), view(1, 1, 0, t0)];
            let d = bt.round(&round(now, 1_000_000, &peers), &mut rng);
            rounds.push(d.unchoke.clone());
            let e0 = bt.estimate(0).unwrap().clone();
            let e1 = bt.estimate(1).unwrap().clone();
            assert_eq!(e0.d, 50_000.0);
            assert!(e0.measured);
            let expect0 = u * (1.0 - GAMMA).powi((k + 1).saturating_sub(R) as i32);
            assert!((e0.u - expect0).abs() < 1e-6, "round {k}: {}", e0.u);
            let expect1 = u * (1.0 + DELTA).powi(k as i32);
            assert!((e1.u - expect1).abs() < 1e-6, "round {k}: {}", e1.u);
        }
        // The reciprocating peer ranks first.
        assert!(rounds.iter().all(|u| u[0] == 0), "{rounds:?}");
    }

    #[test]
    fn seeding_is_classic_and_leaving_forgets() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let peers = vec![view(0, 1, 0, t0), view(1, 1, 0, t0)];
        let mut bt = BitTyrant::new(PIECE);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut r = round(now, 100_000, &peers);
        r.seeding = true;
        let d = bt.round(&r, &mut rng);
        assert!(d.rates.is_empty());
        assert_eq!(d.unchoke.len(), 2);
        bt.peer_left(0);
        assert!(bt.estimate(0).is_none());
        // Between rounds: a seed fills free slots like the classic choker;
        // a leecher lets a peer in only when it unchokes nobody.
        assert!(bt.unchoke_on_interest(4, 4, true));
        assert!(!bt.unchoke_on_interest(5, 4, true));
        assert!(!bt.unchoke_on_interest(1, 4, false));
        assert!(bt.unchoke_on_interest(0, 4, false));
    }
}

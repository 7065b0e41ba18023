//! Choking policy: the [`Choker`] seam and the classic choker.
//!
//! Every round (10 s) the torrent hands the choker a [`ChokeRound`]: one
//! [`PeerView`] per established peer with its byte counters for the round
//! that ends and before it. The choker answers with a [`ChokeDecision`]:
//! whom to unchoke (everyone else is choked) and, optionally, what share
//! of our upload each unchoked peer gets. A choker is stateful (it may
//! remember estimates across rounds) but pure: time comes in the round,
//! randomness from the RNG passed in, so runs are reproducible.
//!
//! [`Classic`] is BEP 3's "tit for tat": the `slots` best interested
//! peers are unchoked — best meaning fastest uploaders to us while
//! downloading, fastest takers of our data while seeding — peers that snub
//! us are left out, and one optimistic unchoke rotates every 30 s,
//! favouring newly connected peers.
//!
//! The strategic chokers live beside it: [`BitTyrant`] (Piatek et al.,
//! NSDI 2007) in `bittyrant`, [`PropShare`] (Levin et al., SIGCOMM 2008)
//! in `propshare`, both dividing an upload capacity that `capacity`
//! estimates when the user gave none, and [`FreeRider`] (uploads nothing,
//! for experiments). [`by_name`] builds any of them from its name.

mod bittyrant;
mod capacity;
mod propshare;

pub use bittyrant::BitTyrant;
pub use capacity::CapacityEstimate;
pub use propshare::PropShare;

use std::time::{Duration, Instant};

use rand::{Rng, RngCore};

use crate::session::{Counters, Token};

pub const ROUND: Duration = Duration::from_secs(10);
pub const OPTIMISTIC_ROUND: Duration = Duration::from_secs(30);
/// Peers connected more recently than this count as new (3x the chance).
const NEW_PEER: Duration = Duration::from_secs(60);

/// What the choker sees of one established peer.
#[derive(Debug, Clone)]
pub struct PeerView {
    pub token: Token,
    pub interested: bool,
    /// It has requests of ours outstanding and sent nothing for a while.
    pub snubbed: bool,
    /// It has every piece.
    pub is_seed: bool,
    pub am_choking: bool,
    pub connected_at: Instant,
    /// Smoothed rates in bytes/s, from it and to it.
    pub down_rate: f64,
    pub up_rate: f64,
    pub counters: Counters,
}

/// The input of one round.
#[derive(Debug, Clone)]
pub struct ChokeRound<'a> {
    pub now: Instant,
    /// We have every piece.
    pub seeding: bool,
    /// Regular unchoke slots (the optimistic one comes on top).
    pub slots: usize,
    /// Time to pick a new optimistic unchoke.
    pub rotate_optimistic: bool,
    /// Our upload capacity in bytes/s, when the user set one.
    pub upload_capacity: Option<u64>,
    /// Bytes we uploaded per second over the last round, all peers
    /// together (what a strategy can estimate capacity from).
    pub upload_rate: f64,
    pub peers: &'a [PeerView],
}

/// The outcome of a round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChokeDecision {
    /// Peers to unchoke; all others are choked.
    pub unchoke: Vec<Token>,
    /// Upload rate (bytes/s) for some of the unchoked peers; a peer not
    /// listed is limited only by the overall rate limit.
    pub rates: Vec<(Token, f64)>,
}

/// A choking strategy. See the module documentation.
pub trait Choker: Send {
    /// Its name, as on the command line and in logs.
    fn name(&self) -> &'static str;

    /// Decides a round.
    fn round(&mut self, round: &ChokeRound, rng: &mut dyn RngCore) -> ChokeDecision;

    /// Between rounds, whether one more interested peer may be unchoked
    /// at once, given how many interested peers are unchoked now (asked
    /// when a peer becomes interested, and when an unchoked one leaves or
    /// loses interest). The classic answer fills free slots rather than
    /// leaving them idle for up to a round.
    fn unchoke_on_interest(&self, unchoked: usize, slots: usize, _seeding: bool) -> bool {
        unchoked < slots + 1
    }

    /// A peer left (forget what is kept about it).
    fn peer_left(&mut self, _token: Token) {}
}

/// The strategies `bt-fetch --strategy` accepts.
pub const STRATEGIES: &[&str] = &["classic", "bittyrant", "propshare"];

/// Builds a choker by name: one of [`STRATEGIES`], or `freerider` (the
/// simulator's peer that uploads nothing). `piece_length` lets BitTyrant
/// turn announced pieces into bytes.
pub fn by_name(name: &str, piece_length: u64) -> Option<Box<dyn Choker>> {
    Some(match name {
        "classic" => Box::new(Classic::new()),
        "bittyrant" => Box::new(BitTyrant::new(piece_length)),
        "propshare" => Box::new(PropShare::new()),
        "freerider" => Box::new(FreeRider),
        _ => return None,
    })
}

/// A peer that never unchokes anyone: zero upload (experiment 4).
#[derive(Debug, Default)]
pub struct FreeRider;

impl Choker for FreeRider {
    fn name(&self) -> &'static str {
        "freerider"
    }

    fn round(&mut self, _round: &ChokeRound, _rng: &mut dyn RngCore) -> ChokeDecision {
        ChokeDecision::default()
    }

    fn unchoke_on_interest(&self, _unchoked: usize, _slots: usize, _seeding: bool) -> bool {
        false
    }
}

/// The BEP 3 choker (see the module documentation).
#[derive(Debug, Default)]
pub struct Classic {
    optimistic: Option<Token>,
}

impl Classic {
    pub fn new() -> Self {
        Classic::default()
    }
}

impl Choker for Classic {
    fn name(&self) -> &'static str {
        "classic"
    }

    fn round(&mut self, round: &ChokeRound, rng: &mut dyn RngCore) -> ChokeDecision {
        let cands: Vec<Candidate> = round
            .peers
            .iter()
            .map(|p| Candidate {
                id: p.token,
                interested: p.interested,
                rate: if round.seeding {
                    p.up_rate
                } else {
                    p.down_rate
                },
                snubbed: p.snubbed && !round.seeding,
                connected_at: p.connected_at,
            })
            .collect();
        let d = choose(
            &cands,
            round.slots,
            self.optimistic,
            round.rotate_optimistic,
            round.now,
            rng,
        );
        self.optimistic = d.optimistic;
        ChokeDecision {
            unchoke: d.unchoke,
            rates: Vec::new(),
        }
    }

    fn peer_left(&mut self, token: Token) {
        if self.optimistic == Some(token) {
            self.optimistic = None;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: usize,
    pub interested: bool,
    /// Bytes/s: from them while downloading, to them while seeding.
    pub rate: f64,
    pub snubbed: bool,
    pub connected_at: Instant,
}

/// The outcome of [`choose`]: peers to unchoke and the optimistic unchoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub unchoke: Vec<usize>,
    pub optimistic: Option<usize>,
}

/// One optimistic unchoke among the peers of `round` that `excluded` leaves
/// out (those a strategy already unchoked): `current` is kept unless it is
/// time to rotate or it left the pool, else one is drawn as in [`choose`],
/// newcomers favoured. Its rate is the strategy's to set.
pub(crate) fn optimistic_among(
    round: &ChokeRound,
    current: Option<Token>,
    excluded: impl Fn(Token) -> bool,
    rng: &mut dyn RngCore,
) -> Option<Token> {
    let pool: Vec<Candidate> = round
        .peers
        .iter()
        .filter(|p| !excluded(p.token))
        .map(|p| Candidate {
            id: p.token,
            interested: p.interested,
            rate: 0.0,
            snubbed: false,
            connected_at: p.connected_at,
        })
        .collect();
    choose(&pool, 0, current, round.rotate_optimistic, round.now, rng).optimistic
}

/// The classic round as a pure function. `optimistic` is the current
/// optimistic unchoke, replaced when `rotate` is true or it is gone or no
/// longer interested.
pub fn choose(
    peers: &[Candidate],
    slots: usize,
    optimistic: Option<usize>,
    rotate: bool,
    now: Instant,
    rng: &mut dyn RngCore,
) -> Decision {
    let mut ranked: Vec<&Candidate> = peers
        .iter()
        .filter(|p| p.interested && !p.snubbed)
        .collect();
    ranked.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.id.cmp(&b.id)));
    let mut unchoke: Vec<usize> = ranked.iter().take(slots).map(|p| p.id).collect();
    let keep = optimistic.filter(|id| {
        !rotate && !unchoke.contains(id) && peers.iter().any(|p| p.id == *id && p.interested)
    });
    let optimistic = keep.or_else(|| {
        let pool: Vec<&Candidate> = peers
            .iter()
            .filter(|p| p.interested && !unchoke.contains(&p.id))
            .collect();
        let weight = |p: &Candidate| {
            if now.saturating_duration_since(p.connected_at) < NEW_PEER {
                3
            } else {
                1
            }
        };
        let total: u32 = pool.iter().map(|p| weight(p)).sum();
        if total == 0 {
            return None;
        }
        let mut pick = rng.gen_range(0..total);
        for p in &pool {
            let w = weight(p);
            if pick < w {
                return Some(p.id);
            }
            pick -= w;
        }
        None
    });
    if let Some(o) = optimistic {
        unchoke.push(o);
    }
    Decision {
        unchoke,
        optimistic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cand(id: usize, rate: f64, interested: bool, snubbed: bool, at: Instant) -> Candidate {
        Candidate {
            id,
            interested,
            rate,
            snubbed,
            connected_at: at,
        }
    }

    #[test]
    fn best_four_and_one_optimistic() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let peers: Vec<Candidate> = (0..8)
            .map(|i| cand(i, i as f64 * 100.0, i != 6, i == 7, t0))
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = choose(&peers, 4, None, true, now, &mut rng);
        // 7 snubs us, 6 is not interested: the best are 5, 4, 3, 2.
        assert_eq!(&d.unchoke[..4], &[5, 4, 3, 2]);
        let o = d.optimistic.unwrap();
        assert!([0, 1, 7].contains(&o), "optimistic among the rest: {o}");
        assert_eq!(d.unchoke.len(), 5);
        // Without rotation the optimistic unchoke stays.
        let d2 = choose(&peers, 4, Some(o), false, now, &mut rng);
        assert_eq!(d2.optimistic, Some(o));
    }

    #[test]
    fn new_peers_favoured() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let mut peers = vec![cand(0, 0.0, true, false, now)];
        peers.extend((1..3).map(|i| cand(i, 0.0, true, false, t0)));
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut new = 0;
        for _ in 0..1000 {
            if choose(&peers, 0, None, true, now, &mut rng).optimistic == Some(0) {
                new += 1;
            }
        }
        // Weight 3 of 5: about 600 of 1000.
        assert!((500..700).contains(&new), "{new}");
    }

    fn view(token: Token, down: f64, up: f64, at: Instant) -> PeerView {
        PeerView {
            token,
            interested: true,
            snubbed: false,
            is_seed: false,
            am_choking: true,
            connected_at: at,
            down_rate: down,
            up_rate: up,
            counters: Counters::default(),
        }
    }

    /// Through the trait: downloading ranks by what peers send us, seeding
    /// by what they take; the optimistic unchoke is kept between rotations
    /// and forgotten when its peer leaves.
    #[test]
    fn classic_through_the_trait() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let peers: Vec<PeerView> = (0..6)
            .map(|i| view(i, i as f64, 10.0 - i as f64, t0))
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut c = Classic::new();
        let mut round = ChokeRound {
            now,
            seeding: false,
            slots: 2,
            rotate_optimistic: true,
            upload_capacity: None,
            upload_rate: 0.0,
            peers: &peers,
        };
        let d = c.round(&round, &mut rng);
        assert_eq!(&d.unchoke[..2], &[5, 4]);
        assert!(d.rates.is_empty(), "the classic choker sets no rates");
        let opt = d.unchoke[2];
        round.rotate_optimistic = false;
        assert_eq!(c.round(&round, &mut rng).unchoke[2], opt);
        round.seeding = true;
        assert_eq!(&c.round(&round, &mut rng).unchoke[..2], &[0, 1]);
        c.peer_left(opt);
        assert!(c.optimistic.is_none());
    }
}

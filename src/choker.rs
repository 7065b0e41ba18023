//! The classic choker (BEP 3 "tit for tat"): every 10 s the `slots` best
//! interested peers are unchoked — best meaning fastest uploaders to us
//! while downloading, fastest takers of our data while seeding — peers that
//! snub us are left out, and one optimistic unchoke rotates every 30 s,
//! favouring newly connected peers. Pure: the caller passes time and RNG.

use std::time::{Duration, Instant};

use rand::Rng;

pub const ROUND: Duration = Duration::from_secs(10);
pub const OPTIMISTIC_ROUND: Duration = Duration::from_secs(30);
/// Peers connected more recently than this count as new (3x the chance).
const NEW_PEER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: usize,
    pub interested: bool,
    /// Bytes/s: from them while downloading, to them while seeding.
    pub rate: f64,
    pub snubbed: bool,
    pub connected_at: Instant,
}

/// The outcome of a round: peers to unchoke (all others get choked) and
/// the optimistic unchoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub unchoke: Vec<usize>,
    pub optimistic: Option<usize>,
}

/// Runs a round. `optimistic` is the current optimistic unchoke, replaced
/// when `rotate` is true or it is gone or no longer interested.
pub fn choose(
    peers: &[Candidate],
    slots: usize,
    optimistic: Option<usize>,
    rotate: bool,
    now: Instant,
    rng: &mut impl Rng,
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
}

//! Our upload capacity as a strategy sees it: the user's
//! `--max-upload-rate` when given, otherwise an estimate from what we
//! have been able to send.
//!
//! The estimate probes upwards: a round that used most of the estimate
//! (we sent at least [`SATURATED`] of it) says the link may carry more,
//! so the estimate jumps to [`PROBE`] times what was sent; a round that
//! used less pulls it halfway towards [`PROBE`] times what was sent (it
//! was the link, or nobody wanted more: either way a smaller budget loses
//! nothing). It never drops below [`FLOOR`], so a quiet start still
//! unchokes someone.

use super::ChokeRound;

/// Lowest estimate, bytes/s.
pub const FLOOR: f64 = 16.0 * 1024.0;
/// Share of the estimate that, once sent, counts as "the link was full".
pub const SATURATED: f64 = 0.8;
/// How far above the rate achieved the estimate looks.
pub const PROBE: f64 = 1.5;

#[derive(Debug, Clone)]
pub struct CapacityEstimate {
    estimate: f64,
}

impl Default for CapacityEstimate {
    fn default() -> Self {
        CapacityEstimate { estimate: FLOOR }
    }
}

impl CapacityEstimate {
    /// The capacity for this round (bytes/s).
    pub fn update(&mut self, round: &ChokeRound) -> f64 {
        if let Some(c) = round.upload_capacity {
            return c as f64;
        }
        let sent = round.upload_rate.max(0.0);
        self.estimate = if sent >= SATURATED * self.estimate {
            (sent * PROBE).max(self.estimate)
        } else {
            0.5 * self.estimate + 0.5 * PROBE * sent
        }
        .max(FLOOR);
        self.estimate
    }

    pub fn get(&self) -> f64 {
        self.estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn round(cap: Option<u64>, rate: f64) -> ChokeRound<'static> {
        ChokeRound {
            now: Instant::now(),
            seeding: false,
            slots: 4,
            rotate_optimistic: false,
            upload_capacity: cap,
            upload_rate: rate,
            peers: &[],
        }
    }

    #[test]
    fn the_users_capacity_wins() {
        let mut c = CapacityEstimate::default();
        assert_eq!(c.update(&round(Some(50_000), 1e9)), 50_000.0);
    }

    #[test]
    fn grows_while_saturated_and_settles_on_the_link() {
        let mut c = CapacityEstimate::default();
        let link = 1_000_000.0;
        for _ in 0..40 {
            let sent = c.get().min(link);
            c.update(&round(None, sent));
        }
        // It settles between the link rate and PROBE times it.
        assert!(c.get() >= link && c.get() <= PROBE * link, "{}", c.get());
        // Nothing sent: it decays to the floor, not below.
        for _ in 0..60 {
            c.update(&round(None, 0.0));
        }
        assert_eq!(c.get(), FLOOR);
    }
}

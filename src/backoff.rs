//! Exponential back-off, shared by everything that retries: connections
//! to peers and announces to trackers.

use std::time::Duration;

/// `base × 2^failures`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The wait after `failures` failures in a row (0: the first retry
    /// waits `base`).
    pub fn delay(&self, failures: u32) -> Duration {
        // Past 2^16 the cap has long been reached; the shift stays defined.
        let factor = 1u32 << failures.min(16);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff::new(Duration::from_secs(15), Duration::from_secs(300));
        let got: Vec<u64> = (0..8).map(|f| b.delay(f).as_secs()).collect();
        assert_eq!(got, [15, 30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(300));
    }
}

//! Exponential back-off: how long to wait before trying again after some
//! consecutive failures. One helper for everything that retries (tracker
//! announces, peer connections), so that they all grow and cap alike.
//!
//! Pure arithmetic: no clock, no randomness. Callers count their
//! consecutive failures and reset the count after a success.

use std::time::Duration;

/// Waits `base` after the first failure, doubling after each further one,
/// never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after one failure.
    pub base: Duration,
    /// The longest wait, however many failures.
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max }
    }

    /// The wait after `failures` consecutive failures: zero for none, then
    /// `base`, `2·base`, `4·base`, … capped at `max` (also when `base`
    /// itself is above `max`). Saturates instead of overflowing.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // 2^31 times any base above 0 ns already passes a sane max; the
        // shift is bounded so that it cannot overflow.
        let factor = 1u32 << (failures - 1).min(31);
        self.base
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn doubles_from_base_to_max() {
        let b = Backoff::new(secs(15), secs(300));
        let waits: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(waits, [0, 15, 30, 60, 120, 240, 300, 300]);
    }

    #[test]
    fn saturates_on_many_failures() {
        let b = Backoff::new(secs(15), secs(300));
        assert_eq!(b.delay(31), secs(300));
        assert_eq!(b.delay(32), secs(300));
        assert_eq!(b.delay(u32::MAX), secs(300));
        // Even with no cap to speak of, no overflow panic.
        let huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(huge.delay(3), Duration::MAX);
        let ms = Backoff::new(Duration::from_millis(1), Duration::MAX);
        assert_eq!(ms.delay(u32::MAX), Duration::from_millis(1 << 31));
    }

    #[test]
    fn base_above_max_is_capped() {
        let b = Backoff::new(secs(60), secs(10));
        assert_eq!(b.delay(1), secs(10));
        assert_eq!(b.delay(0), Duration::ZERO);
    }

    #[test]
    fn zero_base_never_waits() {
        let b = Backoff::new(Duration::ZERO, secs(10));
        assert_eq!(b.delay(5), Duration::ZERO);
    }
}

//! The download rate limit (`bt-fetch --max-download-rate`): a token
//! bucket spent on block *requests*. A peer sends only what we ask for, so
//! asking for at most `rate` bytes a second bounds what arrives without
//! ever leaving a socket unread (an unread socket stalls everything behind
//! it on that connection, our own protocol messages included, and
//! edge-triggered readiness would have to be re-armed by hand). Time is
//! passed in: the session asks when the next block's worth of tokens is
//! due and the driver wakes it then.

use std::time::{Duration, Instant};

use crate::wire::BLOCK_LEN;

/// Tokens (bytes) earned at `rate` per second, held up to a quarter of a
/// second's worth (at least one block, so that any rate can request).
#[derive(Debug, Clone)]
pub struct DownloadBucket {
    rate: u64,
    capacity: u64,
    tokens: u64,
    last: Option<Instant>,
    /// A request was held back for want of tokens: wake when they return.
    starved: bool,
}

impl DownloadBucket {
    /// A bucket for `rate` bytes per second (at least 1), full at first.
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        let capacity = (rate / 4).max(u64::from(BLOCK_LEN));
        DownloadBucket {
            rate,
            capacity,
            tokens: capacity,
            last: None,
            starved: false,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Adds the tokens earned since the last call.
    pub fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last);
            let earned = (dt.as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64;
            // `last` advances by the time the whole tokens took, so that
            // the fraction carries over to the next call.
            let used = Duration::from_nanos(
                (u128::from(earned) * 1_000_000_000 / u128::from(self.rate)) as u64,
            );
            self.tokens = self.tokens.saturating_add(earned).min(self.capacity);
            self.last = Some(if self.tokens == self.capacity {
                now
            } else {
                last + used
            });
            return;
        }
        self.last = Some(now);
    }

    /// How many whole blocks may be requested now.
    pub fn blocks_affordable(&mut self, now: Instant) -> usize {
        self.refill(now);
        (self.tokens / u64::from(BLOCK_LEN)) as usize
    }

    /// Of `want` blocks, how many may be requested now; when that is fewer,
    /// the bucket remembers that requests wait (see
    /// [`DownloadBucket::wake_at`]).
    pub fn allow(&mut self, want: usize, now: Instant) -> usize {
        let n = self.blocks_affordable(now);
        if n < want {
            self.starved = true;
        }
        n.min(want)
    }

    /// Spends tokens on `bytes` of requests.
    pub fn spend(&mut self, bytes: u64) {
        self.tokens = self.tokens.saturating_sub(bytes);
    }

    /// When a held-back request can go: the moment one block's worth of
    /// tokens is back; `None` when nothing waits.
    pub fn wake_at(&self, now: Instant) -> Option<Instant> {
        if !self.starved {
            return None;
        }
        let need = u64::from(BLOCK_LEN).saturating_sub(self.tokens);
        let last = self.last.unwrap_or(now);
        let wait =
            Duration::from_nanos((need as u128 * 1_000_000_000 / u128::from(self.rate)) as u64);
        Some((last + wait).max(now))
    }

    /// Whether requests were held back and tokens have come back for one
    /// block (clears the flag: the caller tops up the peers' requests).
    pub fn take_wakeup(&mut self, now: Instant) -> bool {
        if !self.starved {
            return false;
        }
        self.refill(now);
        if self.tokens >= u64::from(BLOCK_LEN) {
            self.starved = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = BLOCK_LEN as u64;

    #[test]
    fn spends_no_more_than_the_rate_over_time() {
        let t0 = Instant::now();
        let rate = 2 << 20;
        let mut b = DownloadBucket::new(rate);
        // A greedy requester polling every 3 ms for 10 s.
        let mut spent = 0u64;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            let n = b.blocks_affordable(now) as u64;
            b.spend(n * B);
            spent += n * B;
            now += Duration::from_millis(3);
        }
        // 10 s of rate plus at most the initial burst (a quarter second).
        let bound = 10 * rate + rate / 4;
        assert!(spent <= bound, "{spent} > {bound}");
        assert!(spent >= 10 * rate - 2 * B, "{spent} far below the rate");
    }

    #[test]
    fn starved_bucket_says_when_to_wake() {
        let t0 = Instant::now();
        let mut b = DownloadBucket::new(B * 2); // two blocks a second
        assert_eq!(b.wake_at(t0), None, "nothing waits yet");
        let n = b.allow(1, t0);
        assert_eq!(n, 1, "capacity is one block at this rate");
        assert_eq!(b.wake_at(t0), None, "nothing waits yet");
        b.spend(B);
        assert_eq!(b.allow(3, t0), 0);
        let at = b.wake_at(t0).expect("a request waits");
        assert_eq!(at, t0 + Duration::from_millis(500));
        assert!(!b.take_wakeup(t0 + Duration::from_millis(250)));
        assert!(b.take_wakeup(at));
        assert_eq!(b.wake_at(at), None, "woken once");
        // Idle for long: the bucket holds at most its capacity.
        assert_eq!(b.blocks_affordable(at + Duration::from_secs(60)), 1);
    }

    #[test]
    fn tiny_steps_still_earn_tokens() {
        // Polled every millisecond at 1 KiB/s, each step earns 1.024
        // bytes: the fractions must carry over rather than be lost.
        let t0 = Instant::now();
        let mut b = DownloadBucket::new(1024);
        b.spend(B);
        let mut now = t0;
        b.refill(now);
        for _ in 0..2000 {
            now += Duration::from_micros(1000);
            b.refill(now);
        }
        assert_eq!(b.tokens, 2048);
    }
}

//! The announce life cycle, sans-IO: which event to send next (`started`,
//! then regular announces, `completed` once, `stopped` on exit), when the
//! next announce is due (the tracker's interval and min interval, an
//! optional override, one set of clamps, back-off after failures) and which
//! trackers know us. The caller passes the time in and does the talking;
//! `bt-fetch --announce` ([`crate::announcer`]) and `bt-announce --follow`
//! both drive this one [`AnnounceSchedule`].
//!
//! A driver loops:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bt::tracker::schedule::{AnnounceSchedule, ScheduleConfig};
//! use bt::tracker::Event;
//!
//! let start = Instant::now();
//! let mut s = AnnounceSchedule::new(ScheduleConfig::default(), start);
//! assert_eq!(s.poll_announce(start), Some(Event::Started));
//! // ... announce with that event; the tracker at `url` answered:
//! s.on_success(start, "udp://t:1", Duration::from_secs(1800), None);
//! assert_eq!(s.poll_timeout(), Some(start + Duration::from_secs(1800)));
//! // ... sleep until then (or until told the download completed) ...
//! let stop = s.stop().expect("the tracker knows us");
//! assert_eq!(stop.urls, ["udp://t:1"]); // announce `stopped` to these
//! ```

use std::time::{Duration, Instant};

use super::Event;
use crate::backoff::Backoff;

/// The shortest wait taken from a tracker's `interval`. Trackers ask for
/// about 30 minutes; one asking for less than this is misconfigured or
/// hostile (an `interval` of 0 would have us hammer it), and a peer list
/// renewed faster than this brings little. Both programs used 30 s before
/// they shared this code.
pub const INTERVAL_FLOOR: Duration = Duration::from_secs(30);

/// The longest wait taken from a tracker's `interval` or `min interval`.
/// Coming back sooner than asked never gets us dropped from the swarm, and
/// a tracker saying "10 years" (or garbage) must not silence us for the
/// rest of a long seed.
pub const INTERVAL_CEILING: Duration = Duration::from_secs(3600);

/// The shortest wait an override ([`ScheduleConfig::interval`]) can ask
/// for, so that `--interval 0` is not a busy loop.
pub const OVERRIDE_FLOOR: Duration = Duration::from_secs(1);

/// Retries after a round in which no tracker answered: 15 s doubling to
/// 5 minutes. Quick enough to get over a blip (a tracker restarting),
/// slow enough not to pound one that is down or refusing us; each round
/// of a failing tier may itself take minutes of timeouts.
pub const RETRY: Backoff = Backoff::new(Duration::from_secs(15), Duration::from_secs(300));

/// How to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// The event of the first announce, repeated until one succeeds (BEP 3:
    /// `started`).
    pub first_event: Event,
    /// Announce this often instead of at the tracker's interval. Neither
    /// clamp applies (it is the user's choice, e.g. 1 s in tests) except
    /// [`OVERRIDE_FLOOR`]; a tracker's min interval still wins.
    pub interval: Option<Duration>,
    /// Waits after rounds in which no tracker answered.
    pub retry: Backoff,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            first_event: Event::Started,
            interval: None,
            retry: RETRY,
        }
    }
}

/// Where `completed` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Not (yet) told the download completed.
    No,
    /// To be announced.
    Pending,
    /// A tracker acknowledged it.
    Sent,
}

/// One announce handed out by [`AnnounceSchedule::poll_announce`].
#[derive(Debug, Clone, Copy)]
struct Round {
    event: Event,
    /// Some tracker answered it (with `announce_all`, several may).
    answered: bool,
}

/// The `stopped` announce to make on exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopAnnounce {
    /// The trackers that know us, in the order they first answered.
    pub urls: Vec<String>,
}

/// The announce life cycle of one torrent.
///
/// A *round* begins when [`poll_announce`](Self::poll_announce) returns an
/// event: the driver announces it (to the first tracker that answers, or to
/// all), then calls [`on_success`](Self::on_success) once per tracker that
/// answered, or [`on_failure`](Self::on_failure) once if none did. No new
/// round begins before that.
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    config: ScheduleConfig,
    /// When the next round is due; `None` while one is under way or after
    /// [`stop`](Self::stop).
    next_at: Option<Instant>,
    /// The round under way or last answered.
    round: Option<Round>,
    /// A tracker acknowledged the first event (`started`).
    first_done: bool,
    completion: Completion,
    /// Rounds in a row in which no tracker answered.
    failures: u32,
    /// Trackers that answered (and so list us), for `stopped`.
    known: Vec<String>,
    stopped: bool,
}

impl AnnounceSchedule {
    /// A schedule whose first announce is due at `now`.
    pub fn new(config: ScheduleConfig, now: Instant) -> AnnounceSchedule {
        // A first event of `completed` (bt-announce --event completed) is
        // that announce, not a second one.
        let completion = if config.first_event == Event::Completed {
            Completion::Pending
        } else {
            Completion::No
        };
        AnnounceSchedule {
            config,
            next_at: Some(now),
            round: None,
            first_done: false,
            completion,
            failures: 0,
            known: Vec::new(),
            stopped: false,
        }
    }

    /// The event to announce now, if an announce is due; begins a round.
    /// `None` when it is not time yet, a round is under way, or after
    /// [`stop`](Self::stop).
    pub fn poll_announce(&mut self, now: Instant) -> Option<Event> {
        if now < self.next_at? {
            return None;
        }
        let event = if !self.first_done {
            self.config.first_event
        } else if self.completion == Completion::Pending {
            Event::Completed
        } else {
            Event::None
        };
        self.next_at = None;
        self.round = Some(Round {
            event,
            answered: false,
        });
        Some(event)
    }

    /// When the next announce is due (call [`poll_announce`](Self::poll_announce)
    /// then); `None` while a round is under way or after [`stop`](Self::stop).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// The tracker at `url` answered this round at `now`, asking for
    /// `interval` and at least `min_interval` between announces. Returns
    /// how long this answer has us wait; when several trackers answer one
    /// round, the next round is due after the shortest of their waits.
    pub fn on_success(
        &mut self,
        now: Instant,
        url: &str,
        interval: Duration,
        min_interval: Option<Duration>,
    ) -> Duration {
        let wait = self.wait_after(interval, min_interval);
        if self.stopped {
            return wait;
        }
        let event = self.round.map_or(Event::None, |r| r.event);
        // Until acknowledged, every round carries the first event.
        self.first_done = true;
        if event == Event::Completed {
            self.completion = Completion::Sent;
        }
        if event == Event::Stopped {
            // It dropped us.
            self.known.retain(|u| u != url);
        } else if !self.known.iter().any(|u| u == url) {
            self.known.push(url.to_string());
        }
        self.failures = 0;
        let mut at = later(now, wait);
        match &mut self.round {
            Some(r) if r.answered => {
                at = at.min(self.next_at.unwrap_or(at));
            }
            Some(r) => r.answered = true,
            None => {}
        }
        if self.completion == Completion::Pending {
            // Told while `started` was unacknowledged: send it right away
            // (see `completed`).
            at = now;
        }
        self.next_at = Some(at);
        wait
    }

    /// No tracker answered this round (`now`): retry after the back-off.
    /// Ignored when some tracker did answer the round. Returns the wait.
    pub fn on_failure(&mut self, now: Instant) -> Duration {
        if self.stopped {
            return Duration::ZERO;
        }
        if let Some(Round { answered: true, .. }) = self.round {
            return self
                .next_at
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        }
        self.round = None;
        self.failures = self.failures.saturating_add(1);
        let wait = self.config.retry.delay(self.failures);
        self.next_at = Some(later(now, wait));
        wait
    }

    /// The download completed (`now`): announce `completed` once a tracker
    /// acknowledged `started`. It is due at once, not at the next interval
    /// nor after the min interval: it is a one-time change of state, and
    /// bt-fetch usually exits right after completing, so waiting would
    /// mostly mean never telling. While retries back off after failures,
    /// the next retry carries it instead. Repeated calls change nothing.
    pub fn completed(&mut self, now: Instant) {
        if self.completion != Completion::No {
            return;
        }
        self.completion = Completion::Pending;
        if self.first_done && self.failures == 0 {
            if let Some(at) = &mut self.next_at {
                *at = (*at).min(now);
            }
        }
    }

    /// Ends the life cycle: no announce is due any more. Returns the
    /// `stopped` announce to make, if some tracker knows us (the first time
    /// only).
    pub fn stop(&mut self) -> Option<StopAnnounce> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        self.next_at = None;
        if self.known.is_empty() {
            return None;
        }
        Some(StopAnnounce {
            urls: std::mem::take(&mut self.known),
        })
    }

    /// The trackers that answered us, in the order they first did.
    pub fn known_urls(&self) -> &[String] {
        &self.known
    }

    /// Rounds in a row in which no tracker answered.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long an answer with this `interval` and `min_interval` has us
    /// wait: the override (at least [`OVERRIDE_FLOOR`]) or the interval
    /// clamped to [`INTERVAL_FLOOR`]..=[`INTERVAL_CEILING`], but never less
    /// than the min interval (itself capped at the ceiling).
    pub fn wait_after(&self, interval: Duration, min_interval: Option<Duration>) -> Duration {
        let wanted = match self.config.interval {
            Some(every) => every.max(OVERRIDE_FLOOR),
            None => interval.clamp(INTERVAL_FLOOR, INTERVAL_CEILING),
        };
        let min = min_interval.unwrap_or_default().min(INTERVAL_CEILING);
        wanted.max(min)
    }
}

/// `now + wait`, or a year on when that does not fit an `Instant` (an
/// absurd `--interval` must not panic; nobody waits that long anyway).
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 86400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const A: &str = "http://a/announce";
    const B: &str = "udp://b:1";

    fn schedule(interval: Option<u64>) -> (AnnounceSchedule, Instant) {
        let t0 = Instant::now();
        let config = ScheduleConfig {
            interval: interval.map(secs),
            ..ScheduleConfig::default()
        };
        (AnnounceSchedule::new(config, t0), t0)
    }

    /// Polls at `now` and answers from `url` with `interval` seconds.
    fn round_ok(s: &mut AnnounceSchedule, now: Instant, url: &str, interval: u64) -> Event {
        let e = s.poll_announce(now).expect("an announce due");
        s.on_success(now, url, secs(interval), None);
        e
    }

    #[test]
    fn first_announce_is_started_and_due_at_once() {
        let (mut s, t0) = schedule(None);
        assert_eq!(s.poll_timeout(), Some(t0));
        assert_eq!(s.poll_announce(t0), Some(Event::Started));
        // One round at a time.
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.poll_announce(t0 + secs(9999)), None);
    }

    #[test]
    fn interval_is_honoured_then_regular_announces() {
        let (mut s, t0) = schedule(None);
        assert_eq!(round_ok(&mut s, t0, A, 1800), Event::Started);
        assert_eq!(s.poll_timeout(), Some(t0 + secs(1800)));
        assert_eq!(s.poll_announce(t0 + secs(1799)), None);
        let t1 = t0 + secs(1800);
        assert_eq!(round_ok(&mut s, t1, A, 900), Event::None);
        assert_eq!(s.poll_timeout(), Some(t1 + secs(900)));
        // Late polls still announce (once).
        let late = t1 + secs(5000);
        assert_eq!(s.poll_announce(late), Some(Event::None));
        assert_eq!(s.poll_announce(late), None);
    }

    #[test]
    fn min_interval_wins_over_a_shorter_override() {
        let (mut s, t0) = schedule(Some(1));
        s.poll_announce(t0).unwrap();
        assert_eq!(s.on_success(t0, A, secs(1800), Some(secs(60))), secs(60));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(60)));
        // Without a min interval the override rules, below the floor too.
        let t1 = t0 + secs(60);
        s.poll_announce(t1).unwrap();
        assert_eq!(s.on_success(t1, A, secs(1800), None), secs(1));
        // A longer override is kept over a shorter min interval.
        let (mut s, t0) = schedule(Some(600));
        s.poll_announce(t0).unwrap();
        assert_eq!(s.on_success(t0, A, secs(1800), Some(secs(60))), secs(600));
        // And the min interval wins over the tracker's own shorter interval.
        let (mut s, t0) = schedule(None);
        s.poll_announce(t0).unwrap();
        assert_eq!(s.on_success(t0, A, secs(100), Some(secs(300))), secs(300));
    }

    #[test]
    fn clamps() {
        let (s, _) = schedule(None);
        assert_eq!(s.wait_after(Duration::ZERO, None), INTERVAL_FLOOR);
        assert_eq!(s.wait_after(secs(5), Some(secs(2))), INTERVAL_FLOOR);
        assert_eq!(s.wait_after(secs(100), None), secs(100));
        assert_eq!(s.wait_after(secs(86400 * 3650), None), INTERVAL_CEILING);
        assert_eq!(s.wait_after(secs(60), Some(secs(86400))), INTERVAL_CEILING);
        // The override is the user's: no tracker clamp, but never 0.
        let (s, _) = schedule(Some(0));
        assert_eq!(s.wait_after(secs(1800), None), OVERRIDE_FLOOR);
        let (s, _) = schedule(Some(7200));
        assert_eq!(s.wait_after(secs(1800), None), secs(7200));
        assert_eq!(s.wait_after(secs(1800), Some(secs(9000))), secs(7200));
    }

    #[test]
    fn back_off_grows_and_resets_after_success() {
        let (mut s, t0) = schedule(None);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert_eq!(s.poll_announce(now), Some(Event::Started));
            let wait = s.on_failure(now);
            assert_eq!(s.poll_timeout(), Some(now + wait));
            assert_eq!(s.poll_announce(now + wait - Duration::from_millis(1)), None);
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(s.failures(), 7);
        // Still `started`: it was never acknowledged.
        assert_eq!(round_ok(&mut s, now, A, 1800), Event::Started);
        assert_eq!(s.failures(), 0);
        now += secs(1800);
        assert_eq!(s.poll_announce(now), Some(Event::None));
        assert_eq!(s.on_failure(now), secs(15));
    }

    #[test]
    fn absurd_waits_do_not_overflow() {
        let (mut s, t0) = schedule(Some(u64::MAX));
        s.poll_announce(t0).unwrap();
        assert_eq!(s.on_success(t0, A, secs(1800), None), secs(u64::MAX));
        assert!(s.poll_timeout().unwrap() > t0 + secs(86400));
        let config = ScheduleConfig {
            retry: Backoff::new(Duration::MAX, Duration::MAX),
            ..ScheduleConfig::default()
        };
        let mut s = AnnounceSchedule::new(config, t0);
        s.poll_announce(t0).unwrap();
        assert_eq!(s.on_failure(t0), Duration::MAX);
        assert!(s.poll_timeout().unwrap() > t0 + secs(86400));
    }

    #[test]
    fn override_does_not_shorten_the_back_off() {
        let (mut s, t0) = schedule(Some(1));
        s.poll_announce(t0).unwrap();
        assert_eq!(s.on_failure(t0), secs(15));
    }

    #[test]
    fn completed_only_after_started_succeeded() {
        let (mut s, t0) = schedule(None);
        // Completed before anything was sent: `started` goes first.
        s.completed(t0);
        assert_eq!(s.poll_announce(t0), Some(Event::Started));
        s.on_failure(t0);
        // The retry is still `started`, at the back-off time.
        let t1 = t0 + secs(15);
        assert_eq!(s.poll_announce(t1 - secs(1)), None);
        assert_eq!(s.poll_announce(t1), Some(Event::Started));
        s.on_success(t1, A, secs(1800), Some(secs(900)));
        // The late `started` success: the pending `completed` is due now.
        assert_eq!(s.poll_timeout(), Some(t1));
        assert_eq!(s.poll_announce(t1), Some(Event::Completed));
        s.on_success(t1, A, secs(1800), None);
        assert_eq!(s.poll_timeout(), Some(t1 + secs(1800)));
        // Once only.
        s.completed(t1);
        assert_eq!(s.poll_timeout(), Some(t1 + secs(1800)));
        assert_eq!(s.poll_announce(t1 + secs(1800)), Some(Event::None));
    }

    #[test]
    fn completed_is_due_at_once_and_retried_until_acknowledged() {
        let (mut s, t0) = schedule(None);
        round_ok(&mut s, t0, A, 1800);
        let t1 = t0 + secs(100);
        s.completed(t1);
        assert_eq!(s.poll_timeout(), Some(t1));
        assert_eq!(s.poll_announce(t1), Some(Event::Completed));
        s.on_failure(t1);
        assert_eq!(s.poll_timeout(), Some(t1 + secs(15)));
        assert_eq!(s.poll_announce(t1 + secs(15)), Some(Event::Completed));
        s.on_success(t1 + secs(15), A, secs(1800), None);
        assert_eq!(s.poll_announce(t1 + secs(1815)), Some(Event::None));
    }

    #[test]
    fn completed_while_backing_off_waits_for_the_retry() {
        let (mut s, t0) = schedule(None);
        round_ok(&mut s, t0, A, 1800);
        let t1 = t0 + secs(1800);
        s.poll_announce(t1).unwrap();
        s.on_failure(t1);
        s.completed(t1 + secs(1));
        assert_eq!(s.poll_timeout(), Some(t1 + secs(15)));
        assert_eq!(s.poll_announce(t1 + secs(15)), Some(Event::Completed));
    }

    #[test]
    fn completed_during_a_round_follows_it() {
        let (mut s, t0) = schedule(None);
        round_ok(&mut s, t0, A, 1800);
        let t1 = t0 + secs(1800);
        assert_eq!(s.poll_announce(t1), Some(Event::None));
        s.completed(t1);
        s.on_success(t1, A, secs(1800), None);
        assert_eq!(s.poll_announce(t1), Some(Event::Completed));
    }

    #[test]
    fn first_event_completed_is_sent_once() {
        let t0 = Instant::now();
        let config = ScheduleConfig {
            first_event: Event::Completed,
            ..ScheduleConfig::default()
        };
        let mut s = AnnounceSchedule::new(config, t0);
        assert_eq!(round_ok(&mut s, t0, A, 60), Event::Completed);
        s.completed(t0);
        assert_eq!(s.poll_announce(t0 + secs(60)), Some(Event::None));
    }

    #[test]
    fn stopped_only_when_someone_knows_us() {
        let (mut s, t0) = schedule(None);
        assert_eq!(s.poll_announce(t0), Some(Event::Started));
        s.on_failure(t0);
        assert_eq!(s.stop(), None);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.poll_announce(t0 + secs(9999)), None);
    }

    #[test]
    fn stopped_goes_to_every_tracker_that_answered_and_only_those() {
        let (mut s, t0) = schedule(None);
        round_ok(&mut s, t0, A, 60);
        // A fails over to B later; both list us.
        let t1 = t0 + secs(60);
        round_ok(&mut s, t1, B, 60);
        round_ok(&mut s, t1 + secs(60), B, 60);
        assert_eq!(s.known_urls(), [A, B]);
        let stop = s.stop().unwrap();
        assert_eq!(stop.urls, [A, B]);
        // Once; nothing is due afterwards.
        assert_eq!(s.stop(), None);
        assert_eq!(s.poll_announce(t1 + secs(9999)), None);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn stopped_as_first_event_forgets_the_tracker() {
        let t0 = Instant::now();
        let config = ScheduleConfig {
            first_event: Event::Stopped,
            ..ScheduleConfig::default()
        };
        let mut s = AnnounceSchedule::new(config, t0);
        assert_eq!(round_ok(&mut s, t0, A, 60), Event::Stopped);
        assert_eq!(s.stop(), None);
    }

    #[test]
    fn several_answers_in_one_round_take_the_shortest_wait() {
        let (mut s, t0) = schedule(None);
        assert_eq!(s.poll_announce(t0), Some(Event::Started));
        assert_eq!(s.on_success(t0, A, secs(1800), None), secs(1800));
        assert_eq!(s.on_success(t0, B, secs(600), None), secs(600));
        assert_eq!(s.on_success(t0, "udp://c:1", secs(900), None), secs(900));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(600)));
        // A failure report after answers does not turn it into a retry.
        s.on_failure(t0);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.poll_timeout(), Some(t0 + secs(600)));
        assert_eq!(s.known_urls().len(), 3);
        // The next round starts afresh: its first answer sets the time.
        let t1 = t0 + secs(600);
        assert_eq!(s.poll_announce(t1), Some(Event::None));
        s.on_success(t1, A, secs(1800), None);
        assert_eq!(s.poll_timeout(), Some(t1 + secs(1800)));
    }
}

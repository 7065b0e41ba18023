//! What the clock drives: when the session next needs the clock
//! ([`Session::poll_timeout`]), and what each [`Session::tick`] does —
//! budget refills, the per-second work (rates, handshake and idle
//! time-outs, keep-alives, snubbing, choke rounds, extensions), retries
//! and new connections.

use std::time::Instant;

use super::peer::{self, CloseReason, PeerState, Token};
use super::SNUB_TIMEOUT;
use super::{Action, Session, MAX_CONNECTING, MAX_CONNECTS_PER_TICK, SECOND};
use super::{FIRST_BYTES_TIMEOUT, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, KEEPALIVE_INTERVAL};
use crate::choker;
use crate::wire;

impl Session {
    /// When the session next needs [`Session::tick`]: at once when
    /// connections can be started, else at the next per-second round,
    /// budget refill or retry.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let can_connect = self.connecting < MAX_CONNECTING
            && self.candidates.has_queued()
            && self.slots_used() < self.cfg.max_peers;
        if can_connect || self.last_second.is_none() {
            return now;
        }
        let mut at = self.last_second.map_or(now, |t| t + SECOND);
        if let Some(t) = self.candidates.next_retry() {
            at = at.min(t);
        }
        if let Some(t) = self.download_limit.as_ref().and_then(|b| b.wake_at(now)) {
            at = at.min(t);
        }
        // The budget's refill matters only to queued uploads (a scan over
        // the peers, so only when it would come first).
        if let Some(t) = self.uploads.next_refill(now) {
            if t < at && self.uploads_waiting() {
                at = t;
            }
        }
        at
    }

    /// Whether any peer has requests queued for upload.
    fn uploads_waiting(&self) -> bool {
        debug_assert!(self
            .peers
            .iter()
            .all(|(t, p)| p.requests_in.is_empty() || self.upload_queued.contains(t)));
        self.upload_queued
            .iter()
            .any(|t| self.peers.get(t).is_some_and(|p| !p.requests_in.is_empty()))
    }

    /// The clock: timeouts, rates, choking, retries and new connections.
    /// Call it when [`Session::poll_timeout`] says (calling it more often
    /// does no harm).
    pub fn tick(&mut self, now: Instant) {
        let peers = &self.peers;
        let waiting = |t: Token| peers.get(&t).is_some_and(|p| !p.requests_in.is_empty());
        if self.uploads.refill(now, waiting) {
            // Only peers with requests queued can get reads (pumping the
            // others does nothing).
            let peers = &self.peers;
            self.upload_queued
                .retain(|t| peers.get(t).is_some_and(|p| !p.requests_in.is_empty()));
            let tokens: Vec<Token> = self.upload_queued.iter().copied().collect();
            for t in tokens {
                self.pump_uploads(t);
            }
        }
        // Requests held back by the download limit go out once tokens
        // are back.
        if self
            .download_limit
            .as_mut()
            .is_some_and(|b| b.take_wakeup(now))
        {
            for t in self.tokens_fastest_first() {
                self.fill_requests(t, now);
            }
        }
        let second = self
            .last_second
            .is_none_or(|t| now.saturating_duration_since(t) >= SECOND);
        if second {
            let secs = self
                .last_second
                .map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.last_second = Some(now);
            self.every_second(now, secs);
        }
        self.candidates.release_due(now);
        // New connections, a few per tick, a bounded number in progress.
        let mut started = 0;
        while self.slots_used() < self.cfg.max_peers
            && started < MAX_CONNECTS_PER_TICK
            && self.connecting < MAX_CONNECTING
        {
            let Some(a) = self.candidates.pop() else {
                break;
            };
            if self.candidates.is_banned(&a) || self.peers.values().any(|p| p.addr == a) {
                continue;
            }
            self.actions.push_back(Action::Connect(a));
            started += 1;
            self.connecting += 1;
        }
    }

    fn every_second(&mut self, now: Instant, secs: f64) {
        let mut drop = Vec::new();
        let complete = self.picker.is_complete();
        for (t, p) in self.peers.iter_mut() {
            p.down.update(secs);
            p.up.update(secs);
            if !p.is_established() {
                let waited = now.saturating_duration_since(p.connected_at);
                // Incoming and not one byte yet (still telling plaintext
                // from MSE, nothing buffered): a real peer speaks at once.
                let silent =
                    p.state == PeerState::Negotiating && p.mse.is_none() && p.inbuf.is_empty();
                if waited > HANDSHAKE_TIMEOUT || (silent && waited > FIRST_BYTES_TIMEOUT) {
                    drop.push((*t, CloseReason::NoHandshake));
                }
                continue;
            }
            // Keep-alives alone keep a peer only while one side wants
            // something of the other.
            let quiet = now.saturating_duration_since(p.last_message) > IDLE_TIMEOUT
                && !p.peer_interested
                && !p.am_interested;
            if now.saturating_duration_since(p.last_recv) > IDLE_TIMEOUT || quiet {
                drop.push((*t, CloseReason::Idle));
                continue;
            }
            if now.saturating_duration_since(p.last_send) > KEEPALIVE_INTERVAL {
                p.send(&wire::Message::KeepAlive, now);
            }
            // Snubbing: requests unanswered for too long go elsewhere.
            if !p.outstanding.is_empty()
                && now.saturating_duration_since(p.last_block) > SNUB_TIMEOUT
                && p.outstanding
                    .iter()
                    .all(|o| now.saturating_duration_since(o.sent) > SNUB_TIMEOUT)
            {
                log::info!("{}: snubbed us, its requests go elsewhere", p.addr);
                p.snubbed = true;
                p.slow_start_queue = peer::MIN_QUEUE;
                p.withdraw_requests(&mut self.picker);
            }
            // Interest can end as our pieces fill in.
            if p.am_interested && !complete && !self.picker.interesting(&p.have) {
                p.am_interested = false;
                p.send(&wire::Message::NotInterested, now);
            }
        }
        for (t, why) in drop {
            self.remove_peer(t, why, true, now);
        }
        self.endgame_rebalance(now);
        let round = self
            .last_choke
            .is_none_or(|t| now.saturating_duration_since(t) >= choker::ROUND);
        if round {
            let secs = self
                .last_choke
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.last_choke = Some(now);
            let rotate = self
                .last_optimistic
                .is_none_or(|t| now.saturating_duration_since(t) >= choker::OPTIMISTIC_ROUND);
            if rotate {
                self.last_optimistic = Some(now);
            }
            self.run_choker(rotate, secs, now);
        }
        self.extensions_tick(now);
        self.share_piece_memory(now);
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }
}

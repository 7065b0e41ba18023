//! Web seeds (BEP 19) inside the torrent coordinator: an HTTP server is a
//! kind of peer that has every piece and is asked for byte ranges. This
//! part owns what the session knows of each server — its requests in
//! flight (runs of consecutive blocks chosen by the picker), the bytes it
//! delivered, its consecutive failures and back-off, the pieces it must
//! not be asked for again, and whether it was dropped — and the policy:
//! back off exponentially after a wrong status, a short body, a bad hash
//! or a stall, drop after repeated failures, and ask less of web seeds
//! once peers alone give the rate we need.
//!
//! The session never does HTTP: the driver (`crate::webseed`) asks
//! [`Session::web_seed_wants`] for a range, fetches it, and feeds the
//! body back with [`Session::on_web_seed_data`], then
//! [`Session::on_web_seed_done`] or [`Session::on_web_seed_failed`].
//! Delivered blocks go into the picker's piece buffers and every whole
//! piece through the same `Action::Verify` as a peer's. Web seeds have
//! their own contributor ids (never an address), so a bad piece from a
//! server never strikes a peer, and a peer's bad data never counts
//! against a server.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::peer::Rate;
use super::{Action, Event, Session};
use crate::backoff::Backoff;
use crate::picker::{BlockRef, Received};

/// A web seed's number in this session (its index of addition).
pub type WebSeedId = usize;

/// Consecutive failures after which a server is dropped.
pub const MAX_FAILURES: u32 = 5;
/// Pieces failing their hash after which a server is dropped.
pub const MAX_BAD_PIECES: u32 = 3;
/// The wait after a failure: 2 s doubling to 2 min.
pub const RETRY: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(120));
/// Peers delivering at least this much (bytes/s), and at least as much as
/// the web seeds, give "the rate we need": web seeds are throttled back to
/// one single-piece request at a time (libtorrent likewise stops using
/// web seeds once peers carry the download).
pub const DEFAULT_ENOUGH_RATE: f64 = 1024.0 * 1024.0;

/// A byte range of the torrent's stream for a web seed to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSeedRequest {
    /// Identifies the request in the results fed back.
    pub id: u64,
    /// Offset in the torrent's byte stream.
    pub start: u64,
    pub len: u64,
}

/// Things the user hears about a web seed.
#[derive(Debug, Clone, PartialEq)]
pub enum WebSeedEvent {
    Added {
        url: String,
    },
    /// A request failed; the server is tried again after `retry_in`.
    Failed {
        url: String,
        why: String,
        retry_in: Duration,
    },
    /// Data from this server failed the hash check.
    HashFailed {
        url: String,
        piece: u32,
    },
    /// The server is no longer used (repeated failures, or the end).
    Dropped {
        url: String,
        why: String,
        downloaded: u64,
    },
}

/// Figures for one web seed.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSeedStats {
    pub url: String,
    /// Bytes received from it and stored (duplicates and bad pieces not
    /// counted).
    pub downloaded: u64,
    pub failures: u64,
    pub bad_pieces: u32,
    /// Why it was dropped, if it was.
    pub dropped: Option<String>,
    pub rate: f64,
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    /// Blocks not yet received, consecutive in the stream.
    blocks: VecDeque<BlockRef>,
    /// The start of a block split across two deliveries.
    carry: Vec<u8>,
}

#[derive(Debug)]
struct Seed {
    url: String,
    /// Contributor id in the picker (shares the peers' uid space).
    uid: u64,
    /// Requests in flight at once when not throttled.
    connections: usize,
    in_flight: Vec<InFlight>,
    downloaded: u64,
    consecutive: u32,
    failures: u64,
    bad_pieces: u32,
    retry_at: Option<Instant>,
    /// Pieces not to ask this server for (it failed on them).
    avoid: BTreeSet<u32>,
    dropped: Option<String>,
    rate: Rate,
}

/// The session's table of web seeds.
#[derive(Debug)]
pub(super) struct WebSeeds {
    seeds: Vec<Seed>,
    next_request: u64,
    enough_rate: f64,
    last_rate: Option<Instant>,
    scratch: Vec<BlockRef>,
}

impl Default for WebSeeds {
    fn default() -> Self {
        WebSeeds {
            seeds: Vec::new(),
            next_request: 1,
            enough_rate: DEFAULT_ENOUGH_RATE,
            last_rate: None,
            scratch: Vec::new(),
        }
    }
}

impl Session {
    /// Adds a web seed that may have `connections` requests in flight;
    /// returns its id.
    pub fn add_web_seed(&mut self, url: &str, connections: usize) -> WebSeedId {
        let uid = self.next_uid;
        self.next_uid += 1;
        let ws = &mut self.web_seeds;
        ws.seeds.push(Seed {
            url: url.to_string(),
            uid,
            connections: connections.max(1),
            in_flight: Vec::new(),
            downloaded: 0,
            consecutive: 0,
            failures: 0,
            bad_pieces: 0,
            retry_at: None,
            avoid: BTreeSet::new(),
            dropped: None,
            rate: Rate::default(),
        });
        self.actions
            .push_back(Action::Event(Event::WebSeed(WebSeedEvent::Added {
                url: url.to_string(),
            })));
        self.web_seeds.seeds.len() - 1
    }

    /// Sets the peer rate (bytes/s) above which web seeds are throttled.
    pub fn set_web_seed_enough_rate(&mut self, rate: f64) {
        self.web_seeds.enough_rate = rate;
    }

    /// Whether some web seed is still in use.
    pub fn web_seeds_active(&self) -> bool {
        self.web_seeds.seeds.iter().any(|s| s.dropped.is_none())
    }

    /// Whether the web seed was dropped (its fetcher should stop).
    pub fn web_seed_dropped(&self, id: WebSeedId) -> bool {
        self.web_seeds
            .seeds
            .get(id)
            .is_none_or(|s| s.dropped.is_some())
    }

    /// Figures for every web seed, in the order they were added.
    pub fn web_seed_stats(&self) -> Vec<WebSeedStats> {
        self.web_seeds
            .seeds
            .iter()
            .map(|s| WebSeedStats {
                url: s.url.clone(),
                downloaded: s.downloaded,
                failures: s.failures,
                bad_pieces: s.bad_pieces,
                dropped: s.dropped.clone(),
                rate: s.rate.get(),
            })
            .collect()
    }

    /// The download rate over all web seeds (bytes/s).
    pub fn web_seed_rate(&self) -> f64 {
        self.web_seeds.seeds.iter().map(|s| s.rate.get()).sum()
    }

    /// Whether peers alone give the rate we need.
    fn web_seeds_throttled(&self) -> bool {
        let peers = self.rates().0;
        peers >= self.web_seeds.enough_rate && peers >= self.web_seed_rate()
    }

    /// The next range web seed `id` should fetch, at most `max_bytes`
    /// long, or `None` (enough in flight, backing off, dropped, nothing
    /// left, no free piece buffer).
    pub fn web_seed_wants(
        &mut self,
        id: WebSeedId,
        max_bytes: u64,
        now: Instant,
    ) -> Option<WebSeedRequest> {
        self.update_web_seed_rates(now);
        if self.picker.is_complete() {
            return None;
        }
        let throttled = self.web_seeds_throttled();
        let seed = self.web_seeds.seeds.get(id)?;
        if seed.dropped.is_some() || seed.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        let allowed = if throttled { 1 } else { seed.connections };
        if seed.in_flight.len() >= allowed {
            return None;
        }
        let max_bytes = if throttled {
            max_bytes.min(self.picker.piece_size(0))
        } else {
            max_bytes
        };
        let mut picked = std::mem::take(&mut self.web_seeds.scratch);
        {
            let seed = &self.web_seeds.seeds[id];
            let avoid = |i: usize| seed.avoid.contains(&(i as u32));
            let mine = |b: BlockRef| seed.in_flight.iter().any(|f| f.blocks.contains(&b));
            self.picker
                .pick_span(max_bytes.max(1), &mut self.rng, &avoid, mine, &mut picked);
        }
        let first = *picked.first()?;
        let piece_length = self.picker.piece_size(0);
        let start = u64::from(first.piece) * piece_length + u64::from(first.begin());
        let len: u64 = picked
            .iter()
            .map(|b| u64::from(self.picker.block_len(*b)))
            .sum();
        let ws = &mut self.web_seeds;
        let req = ws.next_request;
        ws.next_request += 1;
        ws.seeds[id].in_flight.push(InFlight {
            id: req,
            blocks: picked.drain(..).collect(),
            carry: Vec::new(),
        });
        ws.scratch = picked;
        Some(WebSeedRequest {
            id: req,
            start,
            len,
        })
    }

    /// The next bytes of request `req`'s body (in order).
    pub fn on_web_seed_data(&mut self, id: WebSeedId, req: u64, mut data: &[u8], now: Instant) {
        let Some(seed) = self.web_seeds.seeds.get_mut(id) else {
            return;
        };
        let uid = seed.uid;
        let Some(pos) = seed.in_flight.iter().position(|f| f.id == req) else {
            return;
        };
        seed.rate.add(data.len() as u64);
        while !data.is_empty() {
            let f = &mut self.web_seeds.seeds[id].in_flight[pos];
            let Some(&block) = f.blocks.front() else {
                break; // more than asked for: the fetcher bounds it
            };
            let need = self.picker.block_len(block) as usize;
            let whole: Vec<u8>;
            let bytes: &[u8] = if f.carry.is_empty() && data.len() >= need {
                let (b, rest) = data.split_at(need);
                data = rest;
                b
            } else {
                let take = (need - f.carry.len()).min(data.len());
                f.carry.extend_from_slice(&data[..take]);
                data = &data[take..];
                if f.carry.len() < need {
                    break;
                }
                whole = std::mem::take(&mut f.carry);
                &whole
            };
            f.blocks.pop_front();
            self.web_seed_block(id, uid, block, bytes, now);
        }
    }

    fn web_seed_block(
        &mut self,
        id: WebSeedId,
        uid: u64,
        block: BlockRef,
        data: &[u8],
        now: Instant,
    ) {
        let len = data.len() as u64;
        match self.picker.received(block, data, uid) {
            Received::Wasted => self.totals.wasted += len,
            Received::Stored {
                duplicates,
                complete,
            } => {
                self.totals.downloaded += len;
                self.web_seeds.seeds[id].downloaded += len;
                self.last_progress = Some(now);
                if duplicates {
                    self.cancel_elsewhere(usize::MAX, block, now);
                }
                if complete {
                    if let Some((buf, contributors)) = self.picker.take_complete(block.piece) {
                        self.verifying.insert(block.piece, contributors);
                        self.actions.push_back(Action::Verify {
                            piece: block.piece,
                            buf,
                        });
                    }
                }
            }
        }
    }

    /// Request `req` ended with its whole body delivered.
    pub fn on_web_seed_done(&mut self, id: WebSeedId, req: u64, now: Instant) {
        let Some(seed) = self.web_seeds.seeds.get_mut(id) else {
            return;
        };
        let Some(pos) = seed.in_flight.iter().position(|f| f.id == req) else {
            return;
        };
        let f = seed.in_flight.swap_remove(pos);
        if f.blocks.is_empty() {
            seed.consecutive = 0;
            seed.retry_at = None;
            self.web_seed_fill_peers(now);
        } else {
            let missing = f.blocks.len();
            seed.in_flight.push(f);
            let why = format!("short body: {missing} blocks missing at the end");
            self.on_web_seed_failed(id, req, why, None, now);
        }
    }

    /// Request `req` failed (`why` says how); `avoid` names pieces this
    /// server cannot serve (a file it does not have). Undelivered blocks
    /// go back to the picker; the server backs off or is dropped.
    pub fn on_web_seed_failed(
        &mut self,
        id: WebSeedId,
        req: u64,
        why: String,
        avoid: Option<std::ops::Range<u32>>,
        now: Instant,
    ) {
        let Some(seed) = self.web_seeds.seeds.get_mut(id) else {
            return;
        };
        if let Some(pos) = seed.in_flight.iter().position(|f| f.id == req) {
            let f = seed.in_flight.swap_remove(pos);
            for b in f.blocks {
                self.picker.cancel_request(b);
            }
        }
        if let Some(r) = avoid {
            seed.avoid.extend(r);
        }
        self.web_seed_failure(id, why, now);
        self.web_seed_fill_peers(now);
    }

    fn web_seed_failure(&mut self, id: WebSeedId, why: String, now: Instant) {
        let seed = &mut self.web_seeds.seeds[id];
        if seed.dropped.is_some() {
            return;
        }
        seed.consecutive += 1;
        seed.failures += 1;
        if seed.consecutive >= MAX_FAILURES || seed.bad_pieces >= MAX_BAD_PIECES {
            let why = format!("dropped after {} failures, the last: {why}", seed.failures);
            self.drop_web_seed(id, why);
            return;
        }
        let retry_in = RETRY.delay(seed.consecutive);
        seed.retry_at = Some(now + retry_in);
        let url = seed.url.clone();
        self.actions
            .push_back(Action::Event(Event::WebSeed(WebSeedEvent::Failed {
                url,
                why,
                retry_in,
            })));
    }

    fn drop_web_seed(&mut self, id: WebSeedId, why: String) {
        let seed = &mut self.web_seeds.seeds[id];
        if seed.dropped.is_some() {
            return;
        }
        seed.dropped = Some(why.clone());
        for f in std::mem::take(&mut seed.in_flight) {
            for b in f.blocks {
                self.picker.cancel_request(b);
            }
        }
        let ev = WebSeedEvent::Dropped {
            url: seed.url.clone(),
            why,
            downloaded: seed.downloaded,
        };
        self.actions.push_back(Action::Event(Event::WebSeed(ev)));
    }

    /// Stops using every web seed (at the end of the run), reporting each.
    pub fn shutdown_web_seeds(&mut self) {
        for id in 0..self.web_seeds.seeds.len() {
            self.drop_web_seed(id, "shutting down".into());
        }
    }

    /// Blocks went back to the picker: peers may take them.
    fn web_seed_fill_peers(&mut self, now: Instant) {
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }

    /// A piece was hashed: a bad one counts against the web seeds that
    /// sent part of it (never against peers; the peers' part is the
    /// caller's). Returns the contributors that were peers.
    pub(super) fn web_seeds_verified(
        &mut self,
        piece: u32,
        good: bool,
        contributors: &[u64],
        now: Instant,
    ) {
        if good {
            return;
        }
        let ids: Vec<WebSeedId> = (0..self.web_seeds.seeds.len())
            .filter(|&i| contributors.contains(&self.web_seeds.seeds[i].uid))
            .collect();
        for id in ids {
            let seed = &mut self.web_seeds.seeds[id];
            let size = self.picker.piece_size(piece as usize);
            seed.downloaded = seed.downloaded.saturating_sub(size);
            seed.bad_pieces += 1;
            seed.avoid.insert(piece);
            let url = seed.url.clone();
            self.actions
                .push_back(Action::Event(Event::WebSeed(WebSeedEvent::HashFailed {
                    url,
                    piece,
                })));
            self.web_seed_failure(id, format!("piece {piece} failed its hash check"), now);
        }
    }

    /// Whether `uid` is a web seed's contributor id.
    pub(super) fn is_web_seed_uid(&self, uid: u64) -> bool {
        self.web_seeds.seeds.iter().any(|s| s.uid == uid)
    }

    fn update_web_seed_rates(&mut self, now: Instant) {
        let ws = &mut self.web_seeds;
        let last = *ws.last_rate.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last);
        if elapsed >= Duration::from_secs(1) {
            for s in &mut ws.seeds {
                s.rate.update(elapsed.as_secs_f64());
            }
            ws.last_rate = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Config;
    use crate::wire::BLOCK_LEN;

    fn session(pieces: usize) -> Session {
        let cfg = Config::new([1; 20], *b"-BT0001-abcdefghijkl");
        Session::new(cfg, 2 * u64::from(BLOCK_LEN), pieces as u64 * 32768, pieces)
    }

    fn drain(s: &mut Session) -> Vec<Action> {
        std::iter::from_fn(|| s.next_action()).collect()
    }

    #[test]
    fn web_seed_fetches_runs_and_pieces_go_to_verify() {
        let mut s = session(4);
        let now = Instant::now();
        let id = s.add_web_seed("http://127.0.0.1/x", 1);
        let r = s.web_seed_wants(id, 1 << 20, now).unwrap();
        assert_eq!(r.len % 32768, 0);
        assert!(
            s.web_seed_wants(id, 1 << 20, now).is_none(),
            "one in flight"
        );
        // Deliver in odd-sized pieces: blocks are reassembled.
        let body = vec![7u8; r.len as usize];
        for chunk in body.chunks(10_000) {
            s.on_web_seed_data(id, r.id, chunk, now);
        }
        s.on_web_seed_done(id, r.id, now);
        let verifies = drain(&mut s)
            .into_iter()
            .filter(|a| matches!(a, Action::Verify { .. }))
            .count();
        assert_eq!(verifies as u64, r.len / 32768);
        assert_eq!(s.web_seed_stats()[0].downloaded, r.len);
    }

    #[test]
    fn failures_back_off_then_drop() {
        let mut s = session(4);
        let mut now = Instant::now();
        let id = s.add_web_seed("http://127.0.0.1/x", 1);
        for n in 1..=MAX_FAILURES {
            let r = s
                .web_seed_wants(id, 1 << 20, now)
                .expect("asked again after the wait");
            s.on_web_seed_failed(id, r.id, "HTTP 500".into(), None, now);
            if n < MAX_FAILURES {
                assert!(s.web_seed_wants(id, 1 << 20, now).is_none(), "backing off");
                now += RETRY.delay(n);
            }
        }
        assert!(s.web_seed_dropped(id));
        assert_eq!(s.picker().outstanding_blocks(), 0, "blocks went back");
        let events = drain(&mut s);
        assert!(events.iter().any(|a| matches!(
            a,
            Action::Event(Event::WebSeed(WebSeedEvent::Dropped { .. }))
        )));
    }

    #[test]
    fn throttled_web_seeds_ask_one_piece_at_a_time() {
        let mut s = session(8);
        let now = Instant::now();
        // Peers (none here, rate 0) count as "enough" at a zero threshold.
        s.set_web_seed_enough_rate(0.0);
        let id = s.add_web_seed("http://127.0.0.1/x", 4);
        let r = s.web_seed_wants(id, 1 << 20, now).unwrap();
        assert_eq!(r.len, 32768, "one piece");
        assert!(
            s.web_seed_wants(id, 1 << 20, now).is_none(),
            "one at a time"
        );
        s.set_web_seed_enough_rate(DEFAULT_ENOUGH_RATE);
        let r = s.web_seed_wants(id, 1 << 20, now).unwrap();
        assert!(r.len > 32768, "a run again once peers are not enough");
    }

    #[test]
    fn bad_piece_counts_against_the_server_and_is_not_asked_again() {
        let mut s = session(1);
        let now = Instant::now();
        let id = s.add_web_seed("http://127.0.0.1/x", 1);
        let r = s.web_seed_wants(id, 1 << 20, now).unwrap();
        s.on_web_seed_data(id, r.id, &vec![1u8; r.len as usize], now);
        s.on_web_seed_done(id, r.id, now);
        let buf = drain(&mut s)
            .into_iter()
            .find_map(|a| match a {
                Action::Verify { buf, .. } => Some(buf),
                _ => None,
            })
            .unwrap();
        s.on_verified(0, false, buf, now);
        let st = &s.web_seed_stats()[0];
        assert_eq!((st.bad_pieces, st.downloaded), (1, 0));
        let events = drain(&mut s);
        assert!(events.iter().any(|a| matches!(
            a,
            Action::Event(Event::WebSeed(WebSeedEvent::HashFailed { piece: 0, .. }))
        )));
        // Not banned as a peer address, and never asked for piece 0 again.
        assert!(!events
            .iter()
            .any(|a| matches!(a, Action::Event(Event::Banned { .. }))));
        assert!(s
            .web_seed_wants(id, 1 << 20, now + Duration::from_secs(600))
            .is_none());
    }
}

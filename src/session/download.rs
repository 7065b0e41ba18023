//! The download side of the torrent: what each peer has, our interest,
//! requests (how many to keep in flight, which blocks, and the seed
//! split), blocks arriving, pieces going to be verified, and what a hash
//! failure costs the peers that sent the piece.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::peer::{CloseReason, Outstanding, Token, MIN_QUEUE};
use super::split::{
    split_key, SeedSplit, SplitPeer, MAX_SPLIT_PEERS, SPLIT_IDLE_GRACE, SPLIT_PAUSE,
};
use super::{Action, Event, Phase, Session};
use crate::picker::{Bitfield, BlockRef, Received, Scope};
use crate::piecebuf::PieceBuf;
use crate::wire::{self, Message, BLOCK_LEN};

impl Session {
    pub(super) fn set_peer_bits(&mut self, token: Token, bits: Bitfield, now: Instant) {
        let old = std::mem::replace(
            &mut self.peers.get_mut(&token).expect("peer").have,
            Bitfield::new(0),
        );
        self.picker.remove_availability(&old);
        self.picker.add_availability(&bits);
        let interesting = self.picker.interesting(&bits);
        self.peers.get_mut(&token).expect("peer").have = bits;
        if !self.check_both_seeds(token, now) {
            self.set_interested(token, interesting, now);
        }
    }

    /// Two seeds have nothing to say to each other: disconnect.
    pub(super) fn check_both_seeds(&mut self, token: Token, now: Instant) -> bool {
        let both = self.phase != Phase::AwaitingMetadata
            && self.picker.is_complete()
            && self.peers.get(&token).is_some_and(|p| p.have.is_full());
        if both {
            self.remove_peer(token, CloseReason::BothComplete, true, now);
        }
        both
    }

    pub(super) fn set_interested(&mut self, token: Token, yes: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if p.am_interested != yes {
            p.am_interested = yes;
            p.send(
                &if yes {
                    Message::Interested
                } else {
                    Message::NotInterested
                },
                now,
            );
        }
    }

    pub(super) fn on_piece(
        &mut self,
        token: Token,
        index: u32,
        begin: u32,
        data: &[u8],
        now: Instant,
    ) {
        let n = self.picker.piece_count();
        let len = data.len() as u64;
        let block = BlockRef {
            piece: index,
            block: begin / BLOCK_LEN,
        };
        let valid = (index as usize) < n
            && begin % BLOCK_LEN == 0
            && u64::from(begin) < self.picker.piece_size(index as usize)
            && len == u64::from(self.picker.block_len(block));
        if !valid {
            // Not a block we could have asked for.
            self.totals.wasted += len;
            let what = format!(
                "sent a block we did not ask for (piece {index}, offset {begin}, {len} bytes)"
            );
            self.fail(token, CloseReason::Protocol(what), now);
            return;
        }
        let p = self.peers.get_mut(&token).expect("peer");
        let uid = p.uid;
        let was_requested = match p.outstanding.iter().position(|o| o.block == block) {
            Some(pos) => {
                p.outstanding.remove(pos);
                true
            }
            None => false,
        };
        p.last_block = now;
        p.snubbed = false;
        p.down.add(len);
        p.counters.downloaded += len;
        p.counters.round_downloaded += len;
        if p.slow_start_queue < self.cfg.max_outstanding {
            p.slow_start_queue += 1;
        }
        match self.picker.received(block, data, uid) {
            Received::Wasted => {
                self.totals.wasted += len;
                if !was_requested {
                    log::debug!(
                        "{}: unrequested block {index}/{begin}",
                        self.peers[&token].addr
                    );
                }
            }
            Received::Stored {
                duplicates,
                complete,
            } => {
                self.totals.downloaded += len;
                self.last_progress = Some(now);
                if duplicates {
                    self.cancel_elsewhere(token, block, now);
                }
                if complete {
                    if let Some((buf, contributors)) = self.picker.take_complete(index) {
                        self.verifying.insert(index, contributors);
                        self.actions.push_back(Action::Verify { piece: index, buf });
                    }
                }
            }
        }
        self.fill_requests(token, now);
    }

    /// A block arrived: withdraw the duplicate requests other peers hold.
    pub(super) fn cancel_elsewhere(&mut self, except: Token, block: BlockRef, now: Instant) {
        let len = self.picker.block_len(block);
        for (t, p) in self.peers.iter_mut() {
            if *t == except {
                continue;
            }
            if let Some(pos) = p.outstanding.iter().position(|o| o.block == block) {
                p.outstanding.remove(pos);
                self.picker.cancel_request(block);
                p.send(
                    &Message::Cancel {
                        index: block.piece,
                        begin: block.begin(),
                        length: len,
                    },
                    now,
                );
            }
        }
    }

    /// Tops up the requests outstanding to a peer.
    pub(super) fn fill_requests(&mut self, token: Token, now: Instant) {
        let cap = self.cfg.max_outstanding;
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if !p.am_interested || !p.is_established() {
            return;
        }
        let choked_only_fast = p.peer_choking;
        if choked_only_fast && p.allowed_fast.is_empty() {
            return;
        }
        let target = p
            .queue_target(now, cap)
            .min(self.request_share.unwrap_or(usize::MAX));
        if p.outstanding.len() >= target {
            return;
        }
        // Top up in batches (an eighth of the queue) rather than one block
        // per block received: far fewer picker scans on fast links.
        let mut want = target - p.outstanding.len();
        if p.outstanding.len() > MIN_QUEUE && want < target / 8 {
            return;
        }
        if let Some(bucket) = &mut self.download_limit {
            want = bucket.allow(want, now);
            if want == 0 {
                return; // the bucket wakes us when tokens return
            }
        }
        // Out of the map while picking, so that the seed split below can
        // look at the other peers.
        let Some(mut p) = self.peers.remove(&token) else {
            return;
        };
        let mut picked = std::mem::take(&mut self.scratch);
        picked.clear();
        let split = if p.have.is_full() && !choked_only_fast && !self.cfg.ablation.no_seed_split {
            self.seed_split(&p, now)
        } else {
            None
        };
        let leave = split.as_ref().map(|s| {
            let peers = &self.peers;
            move |piece: usize| s.leaves(piece, peers)
        });
        let scope = Scope {
            only: choked_only_fast.then_some(p.allowed_fast.as_slice()),
            leave: leave.as_ref().map(|l| l as &dyn Fn(usize) -> bool),
        };
        let outstanding = &p.outstanding;
        self.picker.pick(
            &p.have,
            want,
            &mut self.rng,
            |b| outstanding.iter().any(|o| o.block == b),
            scope,
            &mut picked,
        );
        if picked.is_empty() && split.is_some() && self.leechers_starve_us(&p, now) {
            log::debug!(
                "leechers pass on too little: asking seeds for any piece for {SPLIT_PAUSE:?}"
            );
            self.unsplit_until = Some(now + SPLIT_PAUSE);
            let outstanding = &p.outstanding;
            self.picker.pick(
                &p.have,
                want,
                &mut self.rng,
                |b| outstanding.iter().any(|o| o.block == b),
                Scope::default(),
                &mut picked,
            );
        }
        if let Some(bucket) = &mut self.download_limit {
            let bytes = picked.iter().map(|b| u64::from(self.picker.block_len(*b)));
            bucket.spend(bytes.sum());
        }
        for b in &picked {
            let length = self.picker.block_len(*b);
            p.send(
                &Message::Request {
                    index: b.piece,
                    begin: b.begin(),
                    length,
                },
                now,
            );
            p.outstanding.push(Outstanding {
                block: *b,
                sent: now,
            });
        }
        self.peers.insert(token, p);
        self.scratch = picked;
    }

    /// How leechers running this program share out a seed's pieces, when
    /// asking `seed` (not in `self.peers` meanwhile) for more; `None` when
    /// no split applies. Without it, leechers that each pick the rarest
    /// pieces at random often fetch the same piece from the seed at the
    /// same time, and the seed's upload is the swarm's bottleneck.
    fn seed_split(&mut self, seed: &super::peer::Peer, now: Instant) -> Option<SeedSplit> {
        // Waiting for pieces others fetch must not become a stall (an owner
        // the seed chokes, a holder that chokes us): when nothing is on
        // request and the swarm has shown no progress for a while (no
        // block received, no piece we want announced), ask the seed for
        // anything for a while. Idle alone is no sign: a leecher the seed
        // favours runs out of its own pieces long before the others.
        let busy =
            !seed.outstanding.is_empty() || self.peers.values().any(|q| !q.outstanding.is_empty());
        let last_progress = *self.last_progress.get_or_insert(now);
        if !busy
            && now.saturating_duration_since(last_progress) >= SPLIT_IDLE_GRACE
            && self.unsplit_until.is_none_or(|t| now >= t)
        {
            log::debug!(
                "no progress for {SPLIT_IDLE_GRACE:?}: asking seeds for any piece for {SPLIT_PAUSE:?}"
            );
            self.unsplit_until = Some(now + SPLIT_PAUSE);
        }
        if self.unsplit_until.is_some_and(|t| now < t) {
            return None;
        }
        let mut leechers = Vec::new();
        for (&t, q) in &self.peers {
            let Some(h) = q.handshake() else { continue };
            if q.have.is_full() {
                continue;
            }
            let cooperates = wire::is_own_peer_id(&h.peer_id);
            let supplies = !q.peer_choking;
            if (cooperates || supplies) && leechers.len() < MAX_SPLIT_PEERS {
                leechers.push(SplitPeer {
                    token: t,
                    key: cooperates.then(|| split_key(&h.peer_id)),
                    supplies,
                });
            }
        }
        if leechers.is_empty() {
            return None;
        }
        Some(SeedSplit {
            me: split_key(&self.cfg.peer_id),
            leechers,
        })
    }

    /// Whether the seed split starves us: nothing of ours is left to ask
    /// `seed` for, nothing is on request from it, and the leechers (those
    /// the split leaves pieces to) pass pieces on to us at less than a
    /// fraction of the rate
    /// the seed gave us (each averaged since the connection opened, which
    /// smooths out single blocks). The split pays only when the seed is
    /// the bottleneck; leechers far slower than the seed would leave its
    /// upload idle while we wait on them.
    fn leechers_starve_us(&self, seed: &super::peer::Peer, now: Instant) -> bool {
        if !seed.outstanding.is_empty() {
            return false;
        }
        let average = |q: &super::peer::Peer| {
            let secs = now.saturating_duration_since(q.connected_at).as_secs_f64();
            q.counters.downloaded as f64 / secs.max(1.0)
        };
        let passed_on: f64 = self
            .peers
            .values()
            .filter(|q| !q.have.is_full())
            .map(average)
            .sum();
        passed_on < self.cfg.split_min_passed_on * average(seed)
    }

    /// A piece was hashed (and, when good, written). `buf` comes back.
    pub fn on_verified(&mut self, piece: u32, good: bool, buf: PieceBuf, now: Instant) {
        let size = self.picker.piece_size(piece as usize);
        self.picker.verified(piece, good, buf);
        let contributors = self.verifying.remove(&piece).unwrap_or_default();
        if good {
            self.actions
                .push_back(Action::Event(Event::PieceVerified { piece }));
            // A piece kept only partly on disk (--select) is not announced:
            // we could not serve it.
            let announce = self.picker.can_serve(piece as usize);
            for p in self.peers.values_mut() {
                if announce && p.is_established() && !p.have.get(piece as usize) {
                    p.send(&Message::Have(piece), now);
                }
            }
            let tokens: Vec<Token> = self.peers.keys().copied().collect();
            for t in tokens {
                self.check_unsent(t, now);
            }
            if self.picker.is_complete() && self.phase != Phase::Seeding {
                self.phase = Phase::Seeding;
                self.actions.push_back(Action::Event(Event::Complete));
                let tokens: Vec<Token> = self.peers.keys().copied().collect();
                for t in tokens {
                    self.set_interested(t, false, now);
                    self.check_both_seeds(t, now);
                }
            }
        } else {
            self.totals.hash_failures += 1;
            self.totals.downloaded = self.totals.downloaded.saturating_sub(size);
            self.totals.wasted += size;
            let addrs: Vec<SocketAddr> = contributors
                .iter()
                .filter_map(|u| self.uid_addr.get(u).copied())
                .collect();
            self.actions.push_back(Action::Event(Event::HashFailed {
                piece,
                peers: addrs.clone(),
            }));
            // A piece from one source alone is its fault for sure; web
            // seeds count among the sources but are judged apart.
            let sources = addrs.len()
                + contributors
                    .iter()
                    .filter(|u| self.is_web_seed_uid(**u))
                    .count();
            let strike = if sources == 1 { 2 } else { 1 };
            for a in addrs {
                if self.candidates.strike(a, strike) {
                    self.actions
                        .push_back(Action::Event(Event::Banned { addr: a }));
                    let victims: Vec<Token> = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.addr == a)
                        .map(|(t, _)| *t)
                        .collect();
                    for t in victims {
                        self.remove_peer(t, CloseReason::Banned, true, now);
                    }
                }
            }
        }
        self.web_seeds_verified(piece, good, &contributors, now);
        self.forget_departed(contributors);
        self.share_piece_memory(now);
        for t in self.tokens_fastest_first() {
            self.fill_requests(t, now);
        }
    }

    /// A good piece could not be written: a fault of ours (disk full, a
    /// read-only or vanished folder), not of the peers that sent it. The
    /// piece is missing again and nobody is blamed; the driver decides
    /// whether to go on.
    pub fn on_write_failed(&mut self, piece: u32, buf: PieceBuf) {
        let size = self.picker.piece_size(piece as usize);
        self.picker.verified(piece, false, buf);
        self.totals.downloaded = self.totals.downloaded.saturating_sub(size);
        let contributors = self.verifying.remove(&piece).unwrap_or_default();
        self.forget_departed(contributors);
    }

    /// Forgets the addresses of departed contributors no piece refers to.
    fn forget_departed(&mut self, contributors: Vec<u64>) {
        for uid in contributors {
            let gone = !self.peers.values().any(|p| p.uid == uid);
            if gone
                && !self.picker.is_contributor(uid)
                && !self.verifying.values().any(|c| c.contains(&uid))
            {
                self.uid_addr.remove(&uid);
            }
        }
    }

    /// Divides piece memory among the peers we download from when together
    /// they want more blocks on request than it holds: max-min fair, each
    /// peer up to what it wants, no peer more than an equal share of what
    /// the others leave. Without it the fastest peers, topped up first,
    /// took every buffer freed and a peer that had nothing on request
    /// never got one (four 50 Mbit/s seeders: two sent everything, the
    /// other two nothing). A quarter of the memory is left out of the
    /// division: pieces partly received and pieces being hashed or written
    /// hold buffers too, and requests the shares leave unasked in started
    /// pieces are what a starved peer asks for first.
    pub(super) fn share_piece_memory(&mut self, now: Instant) {
        let cap = self.cfg.max_outstanding;
        let mut demands = std::mem::take(&mut self.demands);
        demands.clear();
        demands.extend(
            self.peers
                .values()
                .filter(|p| p.is_downloading())
                .map(|p| p.queue_target(now, cap)),
        );
        let budget = self.picker.memory_blocks() * 3 / 4;
        self.request_share = fair_level(&mut demands, budget).map(|l| l.max(MIN_QUEUE));
        self.demands = demands;
    }

    /// Tokens of all peers, those sending to us fastest first (so that in
    /// endgame the fast peers pick the blocks that were freed).
    pub(super) fn tokens_fastest_first(&self) -> Vec<Token> {
        let mut v: Vec<(Token, f64)> = self.peers.iter().map(|(t, p)| (*t, p.down.get())).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().map(|(t, _)| t).collect()
    }

    /// In endgame, requests held by a peer much slower than the fastest
    /// are withdrawn from it so that faster peers get them.
    pub(super) fn endgame_rebalance(&mut self, now: Instant) {
        if !self.picker.in_endgame() || self.picker.is_complete() {
            return;
        }
        let fastest = self
            .peers
            .values()
            .map(|p| p.down.get())
            .fold(0.0f64, f64::max);
        if fastest <= 0.0 {
            return;
        }
        for p in self.peers.values_mut() {
            let slow = p.down.get() * 8.0 < fastest;
            let held_long = p
                .outstanding
                .first()
                .is_some_and(|o| now.saturating_duration_since(o.sent) > Duration::from_secs(2));
            if slow && held_long {
                p.withdraw_requests(&mut self.picker);
                p.slow_start_queue = MIN_QUEUE;
            }
        }
    }
}

/// The max-min fair level of `demands` under `budget`: the largest `l` with
/// the sum of `min(d, l)` at most `budget`, or `None` when every demand
/// fits. Sorts `demands`.
pub(super) fn fair_level(demands: &mut [usize], budget: usize) -> Option<usize> {
    if demands.iter().sum::<usize>() <= budget {
        return None;
    }
    demands.sort_unstable();
    let mut left = budget;
    let n = demands.len();
    for (i, &d) in demands.iter().enumerate() {
        let level = left / (n - i);
        if d > level {
            return Some(level);
        }
        left -= d;
    }
    None
}

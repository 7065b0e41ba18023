//! The upload side of the torrent: choking (running the [`Choker`] each
//! round and applying its decision), checking the requests peers make of
//! us, turning them into disk reads through the upload scheduler, and
//! sending the blocks read back as piece messages.
//!
//! [`Choker`]: crate::choker::Choker

use rand::RngCore;
use std::time::Instant;

use super::peer::{BlockRequest, CloseReason, Token};
use super::upload::UploadRead;
use super::{Action, Session, MAX_QUEUED_REQUESTS};
use crate::choker::{ChokeRound, PeerView};
use crate::wire::{self, Message, MAX_REQUEST_LEN};

impl Session {
    /// Unchoked peers that want data: an unchoked peer that lost interest
    /// (or finished) holds no upload slot.
    pub(super) fn unchoked_interested(&self) -> usize {
        self.peers
            .values()
            .filter(|p| !p.am_choking && p.peer_interested)
            .count()
    }

    fn may_unchoke_one_more(&self) -> bool {
        self.choker.unchoke_on_interest(
            self.unchoked_interested(),
            self.cfg.upload_slots,
            self.picker.is_complete(),
        )
    }

    /// A peer became interested: the choker may let it in before the next
    /// round.
    pub(super) fn maybe_unchoke_now(&mut self, token: Token, now: Instant) {
        if self.may_unchoke_one_more() {
            self.set_choke(token, false, now);
        }
    }

    /// An unchoked peer left or lost interest: its slot goes at once to an
    /// interested peer we choke, picked at random, if the choker would let
    /// one in; otherwise the slot would idle until the next round. This
    /// matters most to a seeder whose unchoked leechers finish and leave
    /// while others wait for the last pieces only it has.
    pub(super) fn fill_free_slot(&mut self, now: Instant) {
        if !self.may_unchoke_one_more() {
            return;
        }
        let waiting: Vec<Token> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_established() && p.am_choking && p.peer_interested)
            .map(|(t, _)| *t)
            .collect();
        if waiting.is_empty() {
            return;
        }
        let pick = waiting[(self.rng.next_u64() % waiting.len() as u64) as usize];
        self.set_choke(pick, false, now);
    }

    pub(super) fn set_choke(&mut self, token: Token, choke: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        if p.am_choking == choke {
            return;
        }
        p.am_choking = choke;
        if !choke {
            p.send(&Message::Unchoke, now);
            return;
        }
        p.send(&Message::Choke, now);
        // Queued requests are void; with the fast extension each is
        // rejected explicitly.
        let fast = p.fast();
        let queued: Vec<BlockRequest> = p.requests_in.drain(..).collect();
        if fast {
            for r in queued {
                p.reject(r, now);
            }
        }
    }

    /// A choke round: the choker sees every established peer with its
    /// counters for the round that ends (`secs` long), then the round's
    /// counters restart.
    pub(super) fn run_choker(&mut self, rotate: bool, secs: f64, now: Instant) {
        let seeding = self.picker.is_complete();
        let views: Vec<PeerView> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_established())
            .map(|(t, p)| PeerView {
                token: *t,
                interested: p.peer_interested,
                snubbed: p.snubbed,
                is_seed: p.have.is_full(),
                am_choking: p.am_choking,
                connected_at: p.connected_at,
                down_rate: p.down.get(),
                up_rate: p.up.get(),
                counters: p.counters,
            })
            .collect();
        let round_uploaded: u64 = views.iter().map(|v| v.counters.round_uploaded).sum();
        let round = ChokeRound {
            now,
            seeding,
            slots: self.cfg.upload_slots,
            rotate_optimistic: rotate,
            upload_capacity: self.cfg.max_upload_rate,
            upload_rate: if secs > 0.0 {
                round_uploaded as f64 / secs
            } else {
                0.0
            },
            peers: &views,
        };
        let decision = self.choker.round(&round, &mut self.rng);
        for v in &views {
            let unchoke = decision.unchoke.contains(&v.token);
            self.set_choke(v.token, !unchoke, now);
        }
        self.uploads.set_peer_rates(&decision.rates);
        if log::log_enabled!(log::Level::Debug) {
            self.log_choke_round(&views, &decision, round_uploaded, secs);
        }
        for p in self.peers.values_mut() {
            p.counters.round_downloaded = 0;
            p.counters.round_uploaded = 0;
            p.counters.round_haves = 0;
        }
    }

    /// One line per choke round for looking into a strategy's use of its
    /// capacity (`bt-sim` with `BT_LOG=debug`): how many peers want our
    /// data, how many we unchoke, how many of those have requests queued,
    /// what we sent against the rates we set, and how many peers that
    /// unchoke us we are asking nothing of.
    fn log_choke_round(
        &self,
        views: &[PeerView],
        decision: &crate::choker::ChokeDecision,
        round_uploaded: u64,
        secs: f64,
    ) {
        let interested = views.iter().filter(|v| v.interested).count();
        let queued = views
            .iter()
            .filter(|v| !self.peers[&v.token].requests_in.is_empty())
            .count();
        let unchoking_us = views
            .iter()
            .map(|v| &self.peers[&v.token])
            .filter(|q| !q.peer_choking && q.am_interested);
        let (unchoking_us, asked_nothing) = unchoking_us.fold((0, 0), |(n, idle), q| {
            (n + 1, idle + usize::from(q.outstanding.is_empty()))
        });
        log::debug!(
            "choke round ({}): {} of {} pieces; {interested} of {} peers interested, \
             {} unchoked, {queued} with requests queued; sent {:.0} B/s, rates {:.0} B/s, \
             capacity {:?}; {unchoking_us} unchoke us, {asked_nothing} of them asked nothing",
            self.choker.name(),
            self.picker.have().count(),
            self.picker.piece_count(),
            views.len(),
            decision.unchoke.len(),
            round_uploaded as f64 / secs.max(1e-9),
            decision.rates.iter().map(|r| r.1).sum::<f64>(),
            self.cfg.max_upload_rate,
        );
    }

    pub(super) fn on_request(&mut self, token: Token, r: BlockRequest, now: Instant) {
        let n = self.picker.piece_count();
        let valid = (r.piece as usize) < n
            && (1..=MAX_REQUEST_LEN).contains(&r.length)
            && u64::from(r.begin) + u64::from(r.length) <= self.picker.piece_size(r.piece as usize);
        if !valid {
            let what = format!(
                "invalid request (piece {}, offset {}, length {})",
                r.piece, r.begin, r.length
            );
            self.fail(token, CloseReason::Protocol(what), now);
            return;
        }
        let have = self.picker.can_serve(r.piece as usize);
        let p = self.peers.get_mut(&token).expect("peer");
        let fast = p.fast();
        let full = p.requests_in.len() >= MAX_QUEUED_REQUESTS;
        if p.am_choking || !have || full {
            if fast {
                p.reject(r, now);
                return;
            }
            if !have {
                let what = format!("request for piece {} we do not have", r.piece);
                self.fail(token, CloseReason::Protocol(what), now);
            } else if full {
                let what = "too many queued requests".to_string();
                self.fail(token, CloseReason::Protocol(what), now);
            }
            // Requests while choked are ignored (BEP 3).
            return;
        }
        p.requests_in.push_back(r);
        self.upload_queued.insert(token);
        self.pump_uploads(token);
    }

    /// Issues disk reads for a peer's queued requests as far as the upload
    /// scheduler allows.
    pub(super) fn pump_uploads(&mut self, token: Token) {
        let Some(p) = self.peers.get_mut(&token) else {
            return;
        };
        let mut reads = std::mem::take(&mut self.reads);
        self.uploads.pump(token, p, &mut reads);
        self.actions.extend(reads.drain(..).map(Action::Read));
        self.reads = reads;
    }

    /// The driver wrote some of a peer's output: uploads may continue.
    pub fn on_sent(&mut self, token: Token) {
        self.pump_uploads(token);
    }

    /// Blocks read for an upload (an empty `data` means the read failed).
    pub fn on_read(&mut self, read: &UploadRead, data: &[u8], now: Instant) {
        let Some(p) = self.peers.get_mut(&read.token) else {
            return;
        };
        if p.uid != read.uid {
            return;
        }
        p.reads_in_flight = p.reads_in_flight.saturating_sub(1);
        p.read_bytes_in_flight = p.read_bytes_in_flight.saturating_sub(read.length as usize);
        if data.len() != read.length as usize || p.am_choking {
            return;
        }
        let mut off = 0usize;
        for &len in &read.blocks {
            wire::piece_header(read.piece, read.begin + off as u32, len, p.out.vec());
            if self.cfg.virtual_payload {
                p.out.push_zeros(len as usize);
            } else {
                p.out
                    .vec()
                    .extend_from_slice(&data[off..off + len as usize]);
            }
            off += len as usize;
        }
        p.count_upload(u64::from(read.length), now);
        self.totals.uploaded += u64::from(read.length);
        self.pump_uploads(read.token);
    }
}

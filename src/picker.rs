//! The piece picker: which blocks to request from a peer.
//!
//! Rarest-first with a random choice among equally rare pieces, pieces
//! already started finished first, the first few pieces chosen at random,
//! and an endgame that requests blocks already requested elsewhere (with a
//! bound on duplicates) once nothing else is left. It also owns the piece
//! buffers: a piece being downloaded is assembled in memory, and the number
//! of such buffers (downloading, hashing or being written) is bounded, which
//! is what bounds memory whatever the torrent's size: when the disk falls
//! behind, no new piece is started and no more is requested.
//!
//! Pure state; the caller passes a seeded RNG.

use rand::Rng;

use crate::piecebuf::PieceBuf;
use crate::wire::BLOCK_LEN;

/// A compact set of piece indices (the wire bitfield layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: usize,
    count: usize,
}

impl Bitfield {
    pub fn new(len: usize) -> Self {
        Bitfield {
            bits: vec![0; len.div_ceil(8)],
            len,
            count: 0,
        }
    }

    /// Parses a wire bitfield; `None` unless it is exactly sized with the
    /// spare bits clear.
    pub fn from_wire(bytes: &[u8], len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        if len % 8 != 0 {
            let spare = 0xffu8 >> (len % 8);
            if bytes[bytes.len() - 1] & spare != 0 {
                return None;
            }
        }
        let count = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Some(Bitfield {
            bits: bytes.to_vec(),
            len,
            count,
        })
    }

    pub fn full(len: usize) -> Self {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bits[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Sets bit `i`; returns whether it was newly set.
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bits[i / 8] |= 0x80 >> (i % 8);
        self.count += 1;
        true
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Indexes of the set bits, in order (a byte at a time, so sparse
    /// fields cost little).
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits
            .iter()
            .enumerate()
            .flat_map(|(k, &byte)| set_bits(byte, k * 8))
    }
}

/// Indexes (from `base`) of the set bits of one wire byte, high bit first.
fn set_bits(byte: u8, base: usize) -> impl Iterator<Item = usize> {
    let mut left = byte;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let bit = left.leading_zeros() as usize;
        left &= !(0x80 >> bit);
        Some(base + bit)
    })
}

/// One block: a piece index and the block's number inside the piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    pub piece: u32,
    pub block: u32,
}

impl BlockRef {
    pub fn begin(&self) -> u32 {
        self.block * BLOCK_LEN
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blk {
    Free,
    /// Requested from this many peers (more than one only in endgame).
    Requested(u8),
    Got,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceState {
    Missing,
    Partial,
    /// Complete in memory, being hashed and written.
    Verifying,
    Have,
    /// Not wanted (`bt-fetch --select` left out every file it touches):
    /// never picked, and not needed for completion.
    Skipped,
}

/// A piece being assembled in memory.
#[derive(Debug)]
struct Partial {
    piece: u32,
    blocks: Vec<Blk>,
    received: u32,
    buf: PieceBuf,
    /// Peers (by the caller's ids) that sent blocks of this piece.
    contributors: Vec<u64>,
}

/// What became of a received block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Not needed (a duplicate, or a piece not being downloaded): wasted.
    Wasted,
    /// Stored. `duplicates` is true when other peers were asked for it too
    /// (they should be sent a cancel); `complete` when the piece is whole.
    Stored { duplicates: bool, complete: bool },
}

/// Which pieces a pick may take from a peer.
#[derive(Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only these pieces (the allowed-fast set while choked).
    pub only: Option<&'a [u32]>,
    /// Pieces this peer must not be asked for (new and started pieces,
    /// endgame included); while it is given, the first pieces are not
    /// picked at random but rarest first like the rest.
    pub leave: Option<&'a dyn Fn(usize) -> bool>,
}

impl Scope<'_> {
    /// No restriction: every piece allowed.
    fn is_open(&self) -> bool {
        self.only.is_none() && self.leave.is_none()
    }

    fn allows(&self, i: u32) -> bool {
        self.only.is_none_or(|o| o.contains(&i))
            && self.leave.is_none_or(|leave| !leave(i as usize))
    }
}

pub struct Picker {
    piece_length: u64,
    total: u64,
    have: Bitfield,
    state: Vec<PieceState>,
    avail: Vec<u32>,
    partials: Vec<Partial>,
    pool: Vec<PieceBuf>,
    buffers: usize,
    max_buffers: usize,
    /// Before this many pieces are had, new pieces are picked at random.
    random_first: usize,
    /// Largest number of peers a block is requested from in endgame (1:
    /// no endgame).
    endgame_dups: u8,
    /// Pieces in the `Skipped` state (kept so that completion is O(1)).
    skipped: usize,
    /// Start new pieces in index order (`--sequential`) instead of rarest
    /// first.
    sequential: bool,
    /// Pieces we hold but only partly on disk (shared with files left out
    /// by a selection): never advertised nor served, since we could not
    /// read them back whole.
    partly_kept: Bitfield,
    /// Experiments only: new pieces at random, availability ignored.
    random_pieces: bool,
    /// bt-sim only: blocks are not copied and piece buffers stay empty
    /// (the simulator trusts its honest peers and never hashes).
    discard_payload: bool,
    /// `pick`'s candidates for new pieces, kept to reuse the allocation.
    rarest: Vec<u32>,
    /// The candidates for a peer that has every piece (a seed), kept from
    /// one `pick` to the next while `seed_rarest_at` is `(epoch, random)`
    /// of now: without it every piece started from a seed cost a scan of
    /// all pieces, O(pieces^2) per download (a third of the event loop's
    /// time with 16384 pieces). Pieces started meanwhile are dropped as
    /// they are drawn.
    seed_rarest: Vec<u32>,
    seed_rarest_at: Option<(u64, bool)>,
    /// Moves whenever what the candidates depend on changes, other than
    /// pieces being started: an availability, a piece missing again, the
    /// picking mode.
    epoch: u64,
}

/// Takes one of `pieces` uniformly at random (`None`: there is none).
fn draw(pieces: &mut Vec<u32>, rng: &mut impl Rng) -> Option<u32> {
    if pieces.is_empty() {
        return None;
    }
    let k = rng.gen_range(0..pieces.len());
    Some(pieces.swap_remove(k))
}

impl Picker {
    /// `max_buffers` bounds the pieces held in memory at once (at least 1).
    pub fn new(piece_length: u64, total: u64, pieces: usize, max_buffers: usize) -> Self {
        Picker {
            piece_length,
            total,
            have: Bitfield::new(pieces),
            state: vec![PieceState::Missing; pieces],
            avail: vec![0; pieces],
            partials: Vec::new(),
            pool: Vec::new(),
            buffers: 0,
            max_buffers: max_buffers.max(1),
            random_first: 4,
            endgame_dups: 2,
            skipped: 0,
            sequential: false,
            partly_kept: Bitfield::new(pieces),
            random_pieces: false,
            discard_payload: false,
            rarest: Vec::new(),
            seed_rarest: Vec::new(),
            seed_rarest_at: None,
            epoch: 0,
        }
    }

    /// bt-sim only: keep block states but not block data; the buffers
    /// handed out for verification are empty. Buffers are still counted
    /// against `max_buffers`, so picking is exactly as with data.
    pub fn set_discard_payload(&mut self, on: bool) {
        self.discard_payload = on;
    }

    /// Experiments only (the ablations): pick new pieces uniformly at
    /// random instead of rarest first.
    pub fn set_random_pieces(&mut self, on: bool) {
        self.epoch += 1;
        self.random_pieces = on;
    }

    /// Experiments only (the ablations): with the endgame off, a block is
    /// never requested from a second peer; the last blocks come from
    /// whoever was asked first.
    pub fn set_endgame(&mut self, on: bool) {
        self.endgame_dups = if on { 2 } else { 1 };
    }

    pub fn piece_count(&self) -> usize {
        self.state.len()
    }

    /// Blocks in the piece memory: every buffer a full piece.
    pub fn memory_blocks(&self) -> usize {
        self.max_buffers * self.piece_length.div_ceil(u64::from(BLOCK_LEN)) as usize
    }

    pub fn piece_size(&self, i: usize) -> u64 {
        crate::metainfo::piece_size(self.piece_length, self.total, i)
    }

    pub fn blocks_in(&self, i: usize) -> u32 {
        self.piece_size(i).div_ceil(u64::from(BLOCK_LEN)) as u32
    }

    pub fn block_len(&self, b: BlockRef) -> u32 {
        let size = self.piece_size(b.piece as usize);
        (size - u64::from(b.begin())).min(u64::from(BLOCK_LEN)) as u32
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    pub fn has(&self, i: usize) -> bool {
        self.have.get(i)
    }

    /// Whether every wanted piece is had (all of them, unless some were
    /// skipped).
    pub fn is_complete(&self) -> bool {
        self.have.count() + self.skipped == self.state.len()
    }

    /// Leaves piece `i` out of the download (before any is picked): it is
    /// never requested and completion does not wait for it.
    pub fn skip(&mut self, i: usize) {
        if self.state[i] == PieceState::Missing {
            self.state[i] = PieceState::Skipped;
            self.skipped += 1;
        }
    }

    /// Whether piece `i` was left out with [`Picker::skip`].
    pub fn is_skipped(&self, i: usize) -> bool {
        self.state.get(i) == Some(&PieceState::Skipped)
    }

    /// Starts new pieces lowest index first (for streaming) rather than
    /// rarest first; started pieces are still finished first and the
    /// endgame is unchanged.
    pub fn set_sequential(&mut self, on: bool) {
        self.epoch += 1;
        self.sequential = on;
    }

    /// Marks piece `i` as one we keep only partly on disk: once had, it
    /// is still neither advertised nor served.
    pub fn set_partly_kept(&mut self, i: usize) {
        self.partly_kept.set(i);
    }

    /// Whether we can serve piece `i`: had, and whole on disk.
    pub fn can_serve(&self, i: usize) -> bool {
        self.has(i) && !self.partly_kept.get(i)
    }

    /// The pieces to advertise (bitfield, have-all): those we can serve.
    pub fn servable(&self) -> std::borrow::Cow<'_, Bitfield> {
        if self.partly_kept.count() == 0 {
            return std::borrow::Cow::Borrowed(&self.have);
        }
        let mut b = Bitfield::new(self.have.len());
        for i in self.have.ones().filter(|&i| !self.partly_kept.get(i)) {
            b.set(i);
        }
        std::borrow::Cow::Owned(b)
    }

    /// Bytes of the pieces still wanted or had (all but the skipped ones):
    /// the size of the download.
    pub fn bytes_wanted(&self) -> u64 {
        if self.skipped == 0 {
            return self.total;
        }
        (0..self.state.len())
            .filter(|&i| self.state[i] != PieceState::Skipped)
            .map(|i| self.piece_size(i))
            .sum()
    }

    /// Bytes of the pieces we have (O(1): every piece but the last is full).
    pub fn bytes_verified(&self) -> u64 {
        let n = self.have.count() as u64;
        if n == 0 {
            return 0;
        }
        let last = self.piece_count() - 1;
        if self.has(last) {
            (n - 1) * self.piece_length + self.piece_size(last)
        } else {
            n * self.piece_length
        }
    }

    /// Marks a piece as already present (found good on disk).
    pub fn set_have(&mut self, i: usize) {
        if self.state[i] == PieceState::Skipped {
            self.skipped -= 1;
        }
        self.have.set(i);
        self.state[i] = PieceState::Have;
    }

    /// Whether we still need piece `i` (not had, not being verified).
    pub fn wants(&self, i: usize) -> bool {
        matches!(
            self.state.get(i),
            Some(PieceState::Missing | PieceState::Partial)
        )
    }

    /// Whether a peer holding `peer` has anything we need.
    pub fn interesting(&self, peer: &Bitfield) -> bool {
        if peer.is_full() {
            return !self.is_complete();
        }
        // A piece we have is never wanted: skip those a byte at a time.
        peer.bits
            .iter()
            .zip(&self.have.bits)
            .enumerate()
            .any(|(k, (&theirs, &ours))| set_bits(theirs & !ours, k * 8).any(|i| self.wants(i)))
    }

    pub fn add_availability(&mut self, peer: &Bitfield) {
        self.epoch += 1;
        for i in peer.ones() {
            self.avail[i] += 1;
        }
    }

    pub fn remove_availability(&mut self, peer: &Bitfield) {
        self.epoch += 1;
        for i in peer.ones() {
            self.avail[i] = self.avail[i].saturating_sub(1);
        }
    }

    pub fn add_have(&mut self, i: usize) {
        self.epoch += 1;
        self.avail[i] += 1;
    }

    pub fn availability(&self, i: usize) -> u32 {
        self.avail[i]
    }

    /// Whether every missing piece is already started: the endgame.
    pub fn in_endgame(&self) -> bool {
        !self.state.contains(&PieceState::Missing)
    }

    fn partial_mut(&mut self, piece: u32) -> Option<&mut Partial> {
        self.partials.iter_mut().find(|p| p.piece == piece)
    }

    fn take_buffer(&mut self, size: usize) -> Option<PieceBuf> {
        let size = if self.discard_payload { 0 } else { size };
        if let Some(mut b) = self.pool.pop() {
            b.resize(size);
            return Some(b);
        }
        if self.buffers < self.max_buffers {
            self.buffers += 1;
            return Some(PieceBuf::zeroed(size));
        }
        None
    }

    /// Picks up to `n` blocks to request from a peer holding `peer`.
    /// `requested_by_peer` tells which blocks this peer already has on
    /// request (never requested twice from the same peer). `scope` restricts
    /// and orders the choice.
    pub fn pick(
        &mut self,
        peer: &Bitfield,
        n: usize,
        rng: &mut impl Rng,
        requested_by_peer: impl Fn(BlockRef) -> bool,
        scope: Scope<'_>,
        out: &mut Vec<BlockRef>,
    ) {
        let start = out.len();
        let allowed = |i: u32| scope.allows(i);
        // 1. Finish pieces already started.
        for p in &mut self.partials {
            if out.len() - start >= n {
                return;
            }
            if !peer.get(p.piece as usize) || !allowed(p.piece) {
                continue;
            }
            for (b, state) in p.blocks.iter_mut().enumerate() {
                if out.len() - start >= n {
                    break;
                }
                if *state == Blk::Free {
                    *state = Blk::Requested(1);
                    out.push(BlockRef {
                        piece: p.piece,
                        block: b as u32,
                    });
                }
            }
        }
        // 2. Start new pieces, rarest first: drawn from one scan's rarest
        //    pieces until they run out (see `gather_new`).
        //    From a seed, with no scope, the candidates last across calls.
        let mut no_candidate = false;
        let random = self.random_mode(&scope);
        let from_seed = peer.is_full() && scope.is_open();
        let kept = from_seed && self.seed_rarest_at == Some((self.epoch, random));
        let mut rarest = std::mem::take(if from_seed {
            &mut self.seed_rarest
        } else {
            &mut self.rarest
        });
        if !kept {
            rarest.clear();
        }
        while out.len() - start < n {
            // No buffer, no new piece: skip the scan (when the disk falls
            // behind, this runs for every block received).
            if self.pool.is_empty() && self.buffers >= self.max_buffers {
                no_candidate = self.in_endgame();
                break;
            }
            if rarest.is_empty() {
                self.gather_new(peer, &scope, &mut rarest);
            }
            let Some(piece) = draw(&mut rarest, rng) else {
                no_candidate = true;
                break;
            };
            let piece = piece as usize;
            if self.state[piece] != PieceState::Missing {
                continue; // kept from an earlier call, started since
            }
            let size = self.piece_size(piece) as usize;
            let Some(buf) = self.take_buffer(size) else {
                break;
            };
            let blocks = self.blocks_in(piece);
            let mut p = Partial {
                piece: piece as u32,
                blocks: vec![Blk::Free; blocks as usize],
                received: 0,
                buf,
                contributors: Vec::new(),
            };
            for (b, state) in p.blocks.iter_mut().enumerate() {
                if out.len() - start >= n {
                    break;
                }
                *state = Blk::Requested(1);
                out.push(BlockRef {
                    piece: piece as u32,
                    block: b as u32,
                });
            }
            self.state[piece] = PieceState::Partial;
            self.partials.push(p);
        }
        if from_seed {
            self.seed_rarest = rarest;
            self.seed_rarest_at = Some((self.epoch, random));
        } else {
            self.rarest = rarest;
        }
        // 3. Endgame: nothing left to start, so ask for blocks already on
        //    request elsewhere, least-requested first.
        if no_candidate && out.len() - start < n && self.in_endgame() {
            let fresh = out.len();
            for dups in 1..self.endgame_dups {
                for p in &mut self.partials {
                    if !peer.get(p.piece as usize) || !allowed(p.piece) {
                        continue;
                    }
                    for (b, state) in p.blocks.iter_mut().enumerate() {
                        if out.len() - start >= n {
                            return;
                        }
                        let r = BlockRef {
                            piece: p.piece,
                            block: b as u32,
                        };
                        if *state == Blk::Requested(dups)
                            && !requested_by_peer(r)
                            && !out[start..fresh].contains(&r)
                        {
                            *state = Blk::Requested(dups + 1);
                            out.push(r);
                        }
                    }
                }
            }
        }
    }

    /// The rarest missing piece the peer has, ties broken at random (any
    /// such piece at random while we have fewer than `random_first`,
    /// unless the scope leaves pieces out); in sequential mode, the
    /// lowest-index one.
    fn choose_new(&self, peer: &Bitfield, rng: &mut impl Rng, scope: &Scope<'_>) -> Option<usize> {
        let mut rarest = Vec::new();
        self.gather_new(peer, scope, &mut rarest);
        draw(&mut rarest, rng).map(|p| p as usize)
    }

    /// New pieces are picked at random, availability ignored (for the
    /// first pieces, or in experiments).
    fn random_mode(&self, scope: &Scope<'_>) -> bool {
        self.random_pieces || self.have.count() < self.random_first && scope.leave.is_none()
    }

    /// Fills `out` with the pieces [`Picker::choose_new`] chooses among:
    /// the missing pieces the peer has at the lowest availability among
    /// them (every such piece while pieces are picked at random; in
    /// sequential mode only the lowest-index one). A uniform draw from
    /// `out` is a piece chosen as rarest first with ties at random; further
    /// draws without replacement are the next pieces such a scan would
    /// choose, as long as nothing else changes meanwhile. One scan can so
    /// serve a whole batch of requests: with small pieces a batch starts
    /// tens of pieces, and a scan (with a random draw per tied piece) per
    /// piece was a tenth of bt-fetch's CPU on 4096 pieces of 256 KiB.
    fn gather_new(&self, peer: &Bitfield, scope: &Scope<'_>, out: &mut Vec<u32>) {
        out.clear();
        let wanted = |i: usize| self.state[i] == PieceState::Missing && peer.get(i);
        if self.sequential {
            let first = (0..self.state.len()).find(|&i| wanted(i) && scope.allows(i as u32));
            out.extend(first.map(|i| i as u32));
            return;
        }
        let random = self.random_mode(scope);
        let open = scope.is_open();
        let mut best_avail = u32::MAX;
        for i in 0..self.state.len() {
            if !wanted(i) {
                continue;
            }
            let a = if random { 0 } else { self.avail[i] };
            // The scope last: it may cost a loop over peers.
            if a > best_avail || !open && !scope.allows(i as u32) {
                continue;
            }
            if a < best_avail {
                best_avail = a;
                out.clear();
            }
            out.push(i as u32);
        }
    }

    /// A request for `b` was withdrawn (cancelled, rejected, peer gone).
    pub fn cancel_request(&mut self, b: BlockRef) {
        let Some(pos) = self.partials.iter().position(|p| p.piece == b.piece) else {
            return;
        };
        let p = &mut self.partials[pos];
        if let Some(state) = p.blocks.get_mut(b.block as usize) {
            *state = match *state {
                Blk::Requested(c) if c > 1 => Blk::Requested(c - 1),
                Blk::Requested(_) => Blk::Free,
                other => other,
            };
        }
        // A started piece with nothing received and nothing on request
        // gives its buffer back: otherwise pieces only departed peers had
        // could hold every buffer and stall the download.
        if p.received == 0 && p.blocks.iter().all(|s| *s == Blk::Free) {
            let p = self.partials.swap_remove(pos);
            self.state[p.piece as usize] = PieceState::Missing;
            self.epoch += 1;
            self.pool.push(p.buf);
        }
    }

    /// Stores a received block (whose length the caller has checked) from
    /// peer `from`.
    pub fn received(&mut self, b: BlockRef, data: &[u8], from: u64) -> Received {
        let keep = !self.discard_payload;
        let Some(p) = self.partial_mut(b.piece) else {
            return Received::Wasted;
        };
        let Some(state) = p.blocks.get_mut(b.block as usize) else {
            return Received::Wasted;
        };
        let duplicates = match *state {
            Blk::Got => return Received::Wasted,
            Blk::Requested(c) => c > 1,
            Blk::Free => false,
        };
        *state = Blk::Got;
        if keep {
            let begin = b.begin() as usize;
            p.buf[begin..begin + data.len()].copy_from_slice(data);
        }
        p.received += 1;
        if !p.contributors.contains(&from) {
            p.contributors.push(from);
        }
        Received::Stored {
            duplicates,
            complete: p.received as usize == p.blocks.len(),
        }
    }

    /// Takes a complete piece's buffer for hashing; the piece is then
    /// "verifying" until [`Picker::verified`]. Returns its contributors.
    pub fn take_complete(&mut self, piece: u32) -> Option<(PieceBuf, Vec<u64>)> {
        let pos = self.partials.iter().position(|p| p.piece == piece)?;
        let p = self.partials.swap_remove(pos);
        self.state[piece as usize] = PieceState::Verifying;
        Some((p.buf, p.contributors))
    }

    /// The result of hashing (and writing) a piece; the buffer comes back.
    pub fn verified(&mut self, piece: u32, good: bool, buf: PieceBuf) {
        self.pool.push(buf);
        let i = piece as usize;
        if good {
            self.have.set(i);
            self.state[i] = PieceState::Have;
        } else {
            self.state[i] = PieceState::Missing;
            self.epoch += 1;
        }
    }

    /// Blocks of started pieces that are requested but not received (for
    /// tests and diagnostics).
    pub fn outstanding_blocks(&self) -> usize {
        self.partials
            .iter()
            .flat_map(|p| &p.blocks)
            .filter(|b| matches!(b, Blk::Requested(_)))
            .count()
    }

    /// Whether the peer `id` sent part of a piece still being assembled.
    pub fn is_contributor(&self, id: u64) -> bool {
        self.partials.iter().any(|p| p.contributors.contains(&id))
    }

    pub fn partial_count(&self) -> usize {
        self.partials.len()
    }

    /// Picks a run of blocks that are consecutive in the torrent's byte
    /// stream, at most `max_bytes` long, for a source that fetches byte
    /// ranges (a web seed). In order of preference: free blocks of a
    /// started piece; a new piece (rarest first, like [`Picker::pick`])
    /// extended by the missing pieces that follow it while buffers last;
    /// in endgame, blocks already requested elsewhere. `avoid` leaves out
    /// pieces this source must not be asked for; `requested_by_source`
    /// tells which blocks it already has on request.
    pub fn pick_span(
        &mut self,
        max_bytes: u64,
        rng: &mut impl Rng,
        avoid: &dyn Fn(usize) -> bool,
        requested_by_source: impl Fn(BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        out.clear();
        // 1. Free blocks of started pieces (abandoned by peers, or left
        //    over from a failed range).
        if self.span_in_partials(max_bytes, avoid, &requested_by_source, false, out) {
            return;
        }
        // 2. A new run of whole pieces.
        let all = Bitfield::full(self.piece_count());
        let scope_leave = |i: usize| avoid(i);
        let scope = Scope {
            only: None,
            leave: Some(&scope_leave),
        };
        if let Some(first) = self.choose_new(&all, rng, &scope) {
            let mut piece = first;
            let mut bytes = 0u64;
            while piece < self.piece_count()
                && self.state[piece] == PieceState::Missing
                && !avoid(piece)
                && (bytes == 0 || bytes + self.piece_size(piece) <= max_bytes)
            {
                let size = self.piece_size(piece);
                let Some(buf) = self.take_buffer(size as usize) else {
                    break;
                };
                let blocks = self.blocks_in(piece);
                self.partials.push(Partial {
                    piece: piece as u32,
                    blocks: vec![Blk::Requested(1); blocks as usize],
                    received: 0,
                    buf,
                    contributors: Vec::new(),
                });
                self.state[piece] = PieceState::Partial;
                out.extend((0..blocks).map(|b| BlockRef {
                    piece: piece as u32,
                    block: b,
                }));
                bytes += size;
                piece += 1;
            }
            if !out.is_empty() {
                return;
            }
        }
        // 3. Endgame: blocks others are fetching.
        if self.in_endgame() {
            self.span_in_partials(max_bytes, avoid, &requested_by_source, true, out);
        }
    }

    /// The first run of consecutive takeable blocks inside one started
    /// piece (free ones; in `endgame` also ones requested fewer than the
    /// duplicate bound); marks them requested. Returns whether any.
    fn span_in_partials(
        &mut self,
        max_bytes: u64,
        avoid: &dyn Fn(usize) -> bool,
        requested_by_source: &dyn Fn(BlockRef) -> bool,
        endgame: bool,
        out: &mut Vec<BlockRef>,
    ) -> bool {
        let dups = self.endgame_dups;
        let piece_length = self.piece_length;
        let total = self.total;
        for p in &mut self.partials {
            if avoid(p.piece as usize) {
                continue;
            }
            let mut bytes = 0u64;
            for (b, state) in p.blocks.iter_mut().enumerate() {
                let r = BlockRef {
                    piece: p.piece,
                    block: b as u32,
                };
                let takeable = match *state {
                    Blk::Free => true,
                    Blk::Requested(c) => endgame && c < dups && !requested_by_source(r),
                    Blk::Got => false,
                };
                if !takeable {
                    if out.is_empty() {
                        continue;
                    }
                    break;
                }
                let size = crate::metainfo::piece_size(piece_length, total, p.piece as usize);
                let len = (size - u64::from(r.begin())).min(u64::from(BLOCK_LEN));
                if !out.is_empty() && bytes + len > max_bytes {
                    break;
                }
                *state = match *state {
                    Blk::Requested(c) => Blk::Requested(c + 1),
                    _ => Blk::Requested(1),
                };
                bytes += len;
                out.push(r);
            }
            if !out.is_empty() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `ones` and `interesting` skip bytes; they must say what a bit-by-bit
    /// walk says, for any fields and any piece states.
    #[test]
    fn bytewise_walks_agree_with_bit_by_bit() {
        use rand::Rng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..300 {
            let len = rng.gen_range(1..70);
            let mut theirs = Bitfield::new(len);
            let mut p = Picker::new(16384, 16384 * len as u64, len, 4);
            let density = rng.gen_range(0.0..1.0);
            for i in 0..len {
                if rng.gen_bool(density) {
                    theirs.set(i);
                }
                match rng.gen_range(0..4) {
                    0 => p.set_have(i),
                    1 => p.skip(i),
                    _ => {}
                }
            }
            let naive: Vec<usize> = (0..len).filter(|&i| theirs.get(i)).collect();
            assert_eq!(theirs.ones().collect::<Vec<_>>(), naive, "round {round}");
            let wanted = theirs.is_full() && !p.is_complete() || naive.iter().any(|&i| p.wants(i));
            assert_eq!(p.interesting(&theirs), wanted, "round {round}");
        }
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    /// A plain pick: fixed RNG, nothing on request from this peer yet, no
    /// scope.
    fn pick(p: &mut Picker, peer: &Bitfield, n: usize, out: &mut Vec<BlockRef>) {
        pick_with(p, peer, n, &mut rng(), out);
    }

    /// 8 pieces of one block each, rarest first from the first piece on,
    /// every piece held by `holders` peers; and the bitfield of a seed.
    fn eight_pieces_held_by(holders: usize) -> (Picker, Bitfield) {
        let mut p = Picker::new(16384, 8 * 16384, 8, 16);
        p.random_first = 0;
        let all = Bitfield::full(8);
        for _ in 0..holders {
            p.add_availability(&all);
        }
        (p, all)
    }

    /// [`pick`] with the caller's random numbers.
    fn pick_with(
        p: &mut Picker,
        peer: &Bitfield,
        n: usize,
        rng: &mut impl Rng,
        out: &mut Vec<BlockRef>,
    ) {
        p.pick(peer, n, rng, |_| false, Scope::default(), out);
    }

    #[test]
    fn bitfield_wire() {
        assert!(Bitfield::from_wire(&[0xff], 8).is_some());
        assert!(Bitfield::from_wire(&[0xff], 9).is_none());
        assert!(Bitfield::from_wire(&[0xff, 0x80], 9).is_some());
        assert!(
            Bitfield::from_wire(&[0xff, 0xc0], 9).is_none(),
            "spare bit set"
        );
        let b = Bitfield::from_wire(&[0xa0], 3).unwrap();
        assert!(b.get(0) && !b.get(1) && b.get(2) && !b.get(3));
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn rarest_first_and_started_first() {
        // 4 pieces of 2 blocks.
        let mut p = Picker::new(32768, 4 * 32768, 4, 8);
        p.random_first = 0;
        let all = Bitfield::full(4);
        p.add_availability(&all);
        p.add_availability(&all);
        p.add_have(2); // piece 2 is commoner; 0, 1, 3 equally rare
        p.avail[1] = 1; // piece 1 the rarest
        let mut out = Vec::new();
        pick(&mut p, &all, 1, &mut out);
        assert_eq!(out, vec![BlockRef { piece: 1, block: 0 }]);
        // The started piece is finished before another is started.
        out.clear();
        pick(&mut p, &all, 2, &mut out);
        assert_eq!(out[0], BlockRef { piece: 1, block: 1 });
        assert_ne!(out[1].piece, 2, "piece 2 is the commonest");
    }

    /// One request batch that starts several pieces takes them rarest
    /// first, each level's ties in random order, then the next level, as a
    /// fresh scan per piece would; and every tied piece comes first
    /// somewhere (ties are broken at random, not by index).
    #[test]
    fn a_batch_starts_pieces_rarest_first_with_ties_at_random() {
        // 8 pieces of 1 block: 5, 2 and 6 the rarest, then 0 and 7.
        let mut first_seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let (mut p, all) = eight_pieces_held_by(0);
            p.avail = vec![9, 5, 9, 5, 5, 5, 1, 8];
            p.avail[2] = 1;
            p.avail[5] = 1;
            let mut out = Vec::new();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            pick_with(&mut p, &all, 5, &mut rng, &mut out);
            let pieces: Vec<u32> = out.iter().map(|b| b.piece).collect();
            let mut rarest = pieces[..3].to_vec();
            rarest.sort_unstable();
            assert_eq!(rarest, vec![2, 5, 6], "the rarest first: {pieces:?}");
            assert!(
                pieces[3..].iter().all(|q| [1, 3, 4].contains(q)) && pieces[3] != pieces[4],
                "then the next level: {pieces:?}"
            );
            first_seen.insert(pieces[0]);
        }
        assert_eq!(first_seen.len(), 3, "each rarest piece can come first");
    }

    /// The candidates kept for a seed from one pick to the next are
    /// dropped when an availability changes or a piece is missing again:
    /// the next pick is still the rarest piece.
    #[test]
    fn a_seeds_kept_candidates_follow_availability_and_cancels() {
        for seed in 0..16 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (mut p, all) = eight_pieces_held_by(2);
            let mut out = Vec::new();
            pick_with(&mut p, &all, 1, &mut rng, &mut out);
            let first = out[0].piece;
            // A peer holding one other piece leaves: that piece is now the
            // rarest, and the next piece asked of the seed.
            let y = (first + 3) % 8;
            let mut only_y = Bitfield::new(8);
            only_y.set(y as usize);
            p.remove_availability(&only_y);
            out.clear();
            pick_with(&mut p, &all, 1, &mut rng, &mut out);
            assert_eq!(out[0].piece, y, "seed {seed}");
            // The first piece's request is withdrawn: it is missing again,
            // as rare as the others left, and can be chosen again.
            p.cancel_request(BlockRef {
                piece: first,
                block: 0,
            });
            let mut seen = Vec::new();
            out.clear();
            pick_with(&mut p, &all, 7, &mut rng, &mut out);
            seen.extend(out.iter().map(|b| b.piece));
            seen.sort_unstable();
            let mut expected: Vec<u32> = (0..8).filter(|&i| i != y).collect();
            expected.sort_unstable();
            assert_eq!(seen, expected, "seed {seed}: every missing piece once");
        }
    }

    /// A piece whose request is withdrawn is at once as likely as any
    /// other to be the next one asked of a seed (not left until the kept
    /// candidates run out).
    #[test]
    fn a_cancelled_piece_rejoins_a_seeds_candidates() {
        let mut again = 0;
        for seed in 0..64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (mut p, all) = eight_pieces_held_by(1);
            let mut out = Vec::new();
            pick_with(&mut p, &all, 1, &mut rng, &mut out);
            let first = out[0].piece;
            p.cancel_request(BlockRef {
                piece: first,
                block: 0,
            });
            out.clear();
            pick_with(&mut p, &all, 1, &mut rng, &mut out);
            again += usize::from(out[0].piece == first);
        }
        // One chance in eight each time: 8 expected of 64.
        assert!((2..=20).contains(&again), "{again} of 64");
    }

    #[test]
    fn sequential_starts_lowest_missing_piece_first() {
        // 6 pieces of 2 blocks; piece 5 the rarest, piece 0 already had.
        let mut p = Picker::new(32768, 6 * 32768, 6, 8);
        p.set_sequential(true);
        let all = Bitfield::full(6);
        p.add_availability(&all);
        p.add_availability(&all);
        p.avail[5] = 1;
        p.set_have(0);
        let mut out = Vec::new();
        pick(&mut p, &all, 5, &mut out);
        let pieces: Vec<u32> = out.iter().map(|b| b.piece).collect();
        assert_eq!(pieces, vec![1, 1, 2, 2, 3], "in index order, not rarest");
        // A peer lacking piece 4 gets the next one it has.
        let mut some = Bitfield::new(6);
        for i in [0, 1, 2, 3, 5] {
            some.set(i);
        }
        out.clear();
        pick(&mut p, &some, 3, &mut out);
        let pieces: Vec<u32> = out.iter().map(|b| b.piece).collect();
        assert_eq!(pieces, vec![3, 5, 5], "piece 3 finished, 4 skipped");
        // Without the switch the same state picks the rarest (piece 5).
        let mut q = Picker::new(32768, 6 * 32768, 6, 8);
        q.random_first = 0;
        q.add_availability(&all);
        q.add_availability(&all);
        q.avail[5] = 1;
        out.clear();
        pick(&mut q, &all, 1, &mut out);
        assert_eq!(out[0].piece, 5);
    }

    #[test]
    fn skipped_pieces_are_never_picked_and_do_not_block_completion() {
        let mut p = Picker::new(16384, 4 * 16384, 4, 8);
        let all = Bitfield::full(4);
        p.add_availability(&all);
        p.skip(1);
        p.skip(3);
        assert!(!p.wants(1) && p.wants(0));
        assert_eq!(p.bytes_wanted(), 2 * 16384);
        let mut out = Vec::new();
        pick(&mut p, &all, 10, &mut out);
        let mut pieces: Vec<u32> = out.iter().map(|b| b.piece).collect();
        pieces.sort();
        assert_eq!(pieces, vec![0, 2]);
        assert!(!p.is_complete());
        for piece in [0, 2] {
            let r = p.received(BlockRef { piece, block: 0 }, &[0; 16384], 1);
            assert!(matches!(r, Received::Stored { complete: true, .. }));
            let (buf, _) = p.take_complete(piece).unwrap();
            p.verified(piece, true, buf);
        }
        assert!(p.is_complete(), "the wanted pieces are all here");
        assert!(!p.interesting(&all), "a seed has nothing we want any more");
        // A piece partly kept is had but neither advertised nor served.
        p.set_partly_kept(2);
        assert!(p.has(2) && !p.can_serve(2) && p.can_serve(0));
        let adv = p.servable();
        assert!(adv.get(0) && !adv.get(2) && adv.count() == 1);
    }

    #[test]
    fn buffers_bound_started_pieces() {
        let mut p = Picker::new(16384, 10 * 16384, 10, 2);
        let all = Bitfield::full(10);
        p.add_availability(&all);
        let mut out = Vec::new();
        pick(&mut p, &all, 10, &mut out);
        assert_eq!(out.len(), 2, "only two pieces may be in memory");
        assert_eq!(p.partial_count(), 2);
        let b = out[0];
        assert_eq!(
            p.received(b, &[1; 16384], 1),
            Received::Stored {
                duplicates: false,
                complete: true
            }
        );
        let (buf, who) = p.take_complete(b.piece).unwrap();
        assert_eq!(who, vec![1]);
        out.clear();
        pick(&mut p, &all, 10, &mut out);
        assert!(out.is_empty(), "buffer still out being verified");
        p.verified(b.piece, true, buf);
        pick(&mut p, &all, 10, &mut out);
        assert_eq!(out.len(), 1);
        assert!(p.has(b.piece as usize));
    }

    #[test]
    fn endgame_duplicates_are_bounded() {
        let mut p = Picker::new(32768, 32768, 1, 4);
        let all = Bitfield::full(1);
        p.add_availability(&all);
        let mut a = Vec::new();
        pick(&mut p, &all, 10, &mut a);
        assert_eq!(a.len(), 2);
        assert!(p.in_endgame());
        // Another peer gets the same two blocks once each.
        let mut b = Vec::new();
        pick(&mut p, &all, 10, &mut b);
        assert_eq!(b, a);
        // A third peer gets nothing: two requests per block at most.
        let mut c = Vec::new();
        pick(&mut p, &all, 10, &mut c);
        assert!(c.is_empty());
        // The first copy arriving says there are duplicates to cancel.
        assert_eq!(
            p.received(a[0], &[0; 16384], 1),
            Received::Stored {
                duplicates: true,
                complete: false
            }
        );
        assert_eq!(p.received(a[0], &[0; 16384], 2), Received::Wasted);
        // A peer that already asked for a block is not asked again.
        p.cancel_request(a[1]);
        let mut d = Vec::new();
        p.pick(
            &all,
            10,
            &mut rng(),
            |r| r == a[1],
            Scope::default(),
            &mut d,
        );
        assert!(d.is_empty());
    }

    /// The piece picked first from a peer with everything, piece 0 being
    /// the only rare one, for one RNG seed.
    fn first_piece(random_pieces: bool, seed: u64) -> u32 {
        use rand::SeedableRng;
        let mut p = Picker::new(16384, 64 * 16384, 64, 4);
        p.random_first = 0;
        p.set_random_pieces(random_pieces);
        let all = Bitfield::full(64);
        p.avail = vec![3; 64];
        p.avail[0] = 1;
        let mut out = Vec::new();
        pick_with(
            &mut p,
            &all,
            1,
            &mut rand::rngs::StdRng::seed_from_u64(seed),
            &mut out,
        );
        out[0].piece
    }

    #[test]
    fn random_pieces_ignores_availability() {
        let rarest: Vec<u32> = (0..32).map(|s| first_piece(false, s)).collect();
        assert!(rarest.iter().all(|&p| p == 0), "rarest first: {rarest:?}");
        let random: Vec<u32> = (0..32).map(|s| first_piece(true, s)).collect();
        let mut distinct = random.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() >= 10,
            "random pieces: spread over the torrent, not the rarest: {random:?}"
        );
    }

    #[test]
    fn endgame_off_never_requests_a_block_twice() {
        let mut p = Picker::new(32768, 32768, 1, 4);
        p.set_endgame(false);
        let all = Bitfield::full(1);
        p.add_availability(&all);
        p.add_availability(&all);
        let mut a = Vec::new();
        pick(&mut p, &all, 10, &mut a);
        assert_eq!(a.len(), 2);
        assert!(p.in_endgame(), "nothing left to start");
        let mut b = Vec::new();
        pick(&mut p, &all, 10, &mut b);
        assert!(b.is_empty(), "no duplicate requests: {b:?}");
        // Web seeds too.
        let mut span = Vec::new();
        p.pick_span(1 << 20, &mut rng(), &|_| false, |_| false, &mut span);
        assert!(span.is_empty(), "no duplicate ranges: {span:?}");
        // A withdrawn request is free again and goes to the next peer.
        p.cancel_request(a[1]);
        pick(&mut p, &all, 10, &mut b);
        assert_eq!(b, vec![a[1]]);
    }

    #[test]
    fn abandoned_piece_releases_its_buffer() {
        let mut p = Picker::new(32768, 2 * 32768, 2, 1);
        let only0 = Bitfield::from_wire(&[0x80], 2).unwrap();
        let only1 = Bitfield::from_wire(&[0x40], 2).unwrap();
        let mut out = Vec::new();
        pick(&mut p, &only0, 10, &mut out);
        assert_eq!(out.len(), 2);
        // The peer leaves: its requests are withdrawn, the buffer is free
        // for a piece another peer has.
        for b in out.drain(..) {
            p.cancel_request(b);
        }
        pick(&mut p, &only1, 10, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|b| b.piece == 1));
    }

    #[test]
    fn failed_piece_is_picked_again() {
        let mut p = Picker::new(16384, 16384, 1, 1);
        let all = Bitfield::full(1);
        let mut out = Vec::new();
        pick(&mut p, &all, 1, &mut out);
        p.received(out[0], &[0; 16384], 1);
        let (buf, _) = p.take_complete(0).unwrap();
        p.verified(0, false, buf);
        assert!(p.wants(0));
        out.clear();
        pick(&mut p, &all, 1, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn span_takes_consecutive_whole_pieces_then_leftovers() {
        // 6 pieces of 2 blocks; buffers for 4.
        let mut p = Picker::new(32768, 6 * 32768, 6, 4);
        p.random_first = 0;
        let mut out = Vec::new();
        let none = |_: usize| false;
        p.pick_span(3 * 32768, &mut rng(), &none, |_| false, &mut out);
        assert!(!out.is_empty() && out.len() <= 6);
        for w in out.windows(2) {
            let a = w[0].piece as u64 * 32768 + u64::from(w[0].begin());
            let b = w[1].piece as u64 * 32768 + u64::from(w[1].begin());
            assert_eq!(b, a + 16384, "consecutive in the stream: {out:?}");
        }
        // Withdraw all but the first block: the untouched pieces go back,
        // and the next span is the free rest of the first piece.
        let first = out.clone();
        for b in &first[1..] {
            p.cancel_request(*b);
        }
        p.pick_span(1 << 20, &mut rng(), &none, |_| false, &mut out);
        assert_eq!(out, vec![first[1]]);
        // Avoided pieces are never given.
        let mut q = Picker::new(16384, 4 * 16384, 4, 4);
        let not_two = |i: usize| i != 2;
        q.pick_span(1 << 20, &mut rng(), &not_two, |_| false, &mut out);
        assert_eq!(out, vec![BlockRef { piece: 2, block: 0 }]);
        // In endgame, a block on request elsewhere is shared, once.
        for _ in 0..4 {
            if q.in_endgame() {
                break;
            }
            q.pick_span(1 << 20, &mut rng(), &none, |_| false, &mut out);
            assert!(!out.is_empty());
        }
        assert!(q.in_endgame());
        let mut dup = Vec::new();
        q.pick_span(1 << 20, &mut rng(), &none, |b| b.piece == 0, &mut dup);
        assert_eq!(dup.len(), 1, "{dup:?}");
        assert_ne!(dup[0].piece, 0);
    }

    #[test]
    fn random_first_pieces_spread() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut p = Picker::new(16384, 100 * 16384, 100, 1);
            let all = Bitfield::full(100);
            let mut out = Vec::new();
            let mut r = rand::rngs::StdRng::seed_from_u64(seed);
            pick_with(&mut p, &all, 1, &mut r, &mut out);
            seen.insert(out[0].piece);
        }
        assert!(seen.len() > 10, "first pieces are random: {seen:?}");
    }
}

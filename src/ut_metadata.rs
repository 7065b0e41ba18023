//! The metadata exchange (BEP 9, `ut_metadata`) as a session
//! [`Extension`]: the message codec, serving the info dictionary to peers
//! that ask (when we have it), and fetching it in 16 KiB pieces from
//! several peers when we only have the info-hash (a magnet link).
//!
//! Fetching trusts nothing: a `metadata_size` over [`MAX_METADATA`] ends
//! the connection; a piece must have been asked for, from that peer, with
//! the size we are assembling and exactly its length; a request unanswered
//! for [`REQUEST_TIMEOUT`] ends the connection; and the assembled
//! dictionary must hash to the info-hash. When a dictionary built from
//! several peers fails its hash, the next attempt takes every piece from
//! one peer at a time, so that the liar is found and dropped and the
//! honest peers carry on. The result goes to a [`MetadataSlot`] the driver
//! holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bencode::{Decoder, OwnedValue};
use crate::session::{ExtContext, Extension, Token};
use crate::wire::ExtHandshake;

pub const NAME: &str = "ut_metadata";
/// Metadata piece size (BEP 9).
pub const PIECE: usize = 16 * 1024;
/// Largest info dictionary we fetch (real ones are at most a few MiB).
pub const MAX_METADATA: usize = 8 << 20;
/// A metadata request unanswered this long ends the connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests outstanding to one peer at once.
const MAX_OUTSTANDING: usize = 2;
/// After a reject, a peer is not asked again for this long.
const REJECT_PAUSE: Duration = Duration::from_secs(30);

/// A `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<'a> {
    Request {
        piece: u32,
    },
    Data {
        piece: u32,
        total_size: u64,
        data: &'a [u8],
    },
    Reject {
        piece: u32,
    },
    /// A `msg_type` this version does not know (ignored, as BEP 9 says).
    Unknown,
}

pub fn encode(msg: &Msg) -> Vec<u8> {
    let mut d = OwnedValue::dict();
    let (kind, piece) = match *msg {
        Msg::Request { piece } => (0, piece),
        Msg::Data {
            piece, total_size, ..
        } => {
            d.insert("total_size", total_size as i64);
            (1, piece)
        }
        Msg::Reject { piece } => (2, piece),
        Msg::Unknown => (99, 0),
    };
    d.insert("msg_type", kind as i64);
    d.insert("piece", i64::from(piece));
    let mut out = d.encode();
    if let Msg::Data { data, .. } = msg {
        out.extend_from_slice(data);
    }
    out
}

/// Parses a message; the error says what is wrong.
pub fn decode(payload: &[u8]) -> Result<Msg<'_>, String> {
    let doc = Decoder::new()
        .max_depth(2)
        .allow_trailing(true)
        .decode(payload)
        .map_err(|e| format!("ut_metadata: {e}"))?;
    let root = doc.root;
    if root.as_dict().is_none() {
        return Err("ut_metadata: not a dictionary".into());
    }
    let int = |key: &str| root.get(key).and_then(|v| v.as_int());
    let kind = int("msg_type").ok_or("ut_metadata: no msg_type")?;
    let piece = int("piece")
        .and_then(|p| u32::try_from(p).ok())
        .ok_or("ut_metadata: no valid piece")?;
    let rest = &payload[root.raw().len()..];
    Ok(match kind {
        0 => Msg::Request { piece },
        1 => {
            let total_size = int("total_size")
                .and_then(|t| u64::try_from(t).ok())
                .ok_or("ut_metadata: data without a valid total_size")?;
            Msg::Data {
                piece,
                total_size,
                data: rest,
            }
        }
        2 => Msg::Reject { piece },
        _ => Msg::Unknown,
    })
}

/// Number of pieces of a dictionary of `size` bytes.
pub fn piece_count(size: usize) -> usize {
    size.div_ceil(PIECE)
}

/// Length of piece `i` of a dictionary of `size` bytes.
pub fn piece_len(size: usize, i: usize) -> usize {
    (size - i * PIECE).min(PIECE)
}

/// Where a fetched, verified info dictionary is left for the driver.
#[derive(Debug, Clone, Default)]
pub struct MetadataSlot(Arc<Mutex<Option<Vec<u8>>>>);

impl MetadataSlot {
    pub fn is_ready(&self) -> bool {
        self.0.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.take()
    }

    fn put(&self, bytes: Vec<u8>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(bytes);
        }
    }
}

#[derive(Debug, Default)]
struct PeerMeta {
    /// Whether it listed `ut_metadata` in its handshake.
    supported: bool,
    /// Its `metadata_size`.
    size: Option<usize>,
    /// Pieces asked of it and when.
    outstanding: Vec<(u32, Instant)>,
    paused_until: Option<Instant>,
}

/// One try at assembling the dictionary, of one size.
#[derive(Debug)]
struct Attempt {
    size: usize,
    buf: Vec<u8>,
    got: Vec<bool>,
    requested: Vec<bool>,
    /// Which peer sent each piece received.
    from: Vec<Option<Token>>,
    /// In single-source mode, the one peer asked for every piece.
    source: Option<Token>,
}

impl Attempt {
    fn new(size: usize) -> Attempt {
        let n = piece_count(size);
        Attempt {
            size,
            buf: vec![0; size],
            got: vec![false; n],
            requested: vec![false; n],
            from: vec![None; n],
            source: None,
        }
    }
}

/// The `ut_metadata` extension.
pub struct UtMetadata {
    info_hash: [u8; 20],
    /// The dictionary, once we have it (then we serve it).
    have: Option<Arc<Vec<u8>>>,
    slot: MetadataSlot,
    peers: BTreeMap<Token, PeerMeta>,
    attempt: Option<Attempt>,
    /// Set after a dictionary from several peers failed its hash.
    single_source: bool,
    /// Dictionaries that failed their hash (for diagnostics and tests).
    pub failures: u32,
}

impl UtMetadata {
    /// Serves `info` (the info dictionary's bytes) to peers that ask.
    pub fn serving(info_hash: [u8; 20], info: Arc<Vec<u8>>) -> UtMetadata {
        UtMetadata {
            have: Some(info),
            ..UtMetadata::fetching(info_hash, MetadataSlot::default())
        }
    }

    /// Fetches the dictionary for `info_hash`; it lands in `slot` once
    /// verified (and is served from then on).
    pub fn fetching(info_hash: [u8; 20], slot: MetadataSlot) -> UtMetadata {
        UtMetadata {
            info_hash,
            have: None,
            slot,
            peers: BTreeMap::new(),
            attempt: None,
            single_source: false,
            failures: 0,
        }
    }

    /// Drops a peer for something that may be an accident (a time-out,
    /// garbage).
    fn drop_peer(&mut self, peer: Token, why: String, ctx: &mut ExtContext) {
        log::info!("ut_metadata: dropping a peer: {why}");
        ctx.close(peer, why);
        self.discard(peer);
    }

    /// Drops and bans a peer for a deliberate lie (wrong hash, sizes or
    /// pieces it cannot have meant).
    fn ban_peer(&mut self, peer: Token, why: String, ctx: &mut ExtContext) {
        log::info!("ut_metadata: banning a peer: {why}");
        ctx.ban(peer, why);
        self.discard(peer);
    }

    /// Forgets a dropped peer and what it sent.
    fn discard(&mut self, peer: Token) {
        self.forget(peer);
        // What a misbehaving peer sent is not trusted either.
        if let Some(a) = &mut self.attempt {
            for i in 0..a.got.len() {
                if a.from[i] == Some(peer) {
                    a.got[i] = false;
                    a.from[i] = None;
                }
            }
        }
    }

    /// Forgets a peer's requests (they go to others).
    fn forget(&mut self, peer: Token) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        if let Some(a) = &mut self.attempt {
            for (piece, _) in p.outstanding {
                if let Some(r) = a.requested.get_mut(piece as usize) {
                    *r = false;
                }
            }
            if a.source == Some(peer) {
                self.attempt = None;
            }
        }
    }

    fn on_data(&mut self, peer: Token, piece: u32, total: u64, data: &[u8], ctx: &mut ExtContext) {
        if self.have.is_some() {
            return; // late answer after we finished
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(pos) = p.outstanding.iter().position(|(i, _)| *i == piece) else {
            return self.ban_peer(peer, format!("unrequested metadata piece {piece}"), ctx);
        };
        p.outstanding.remove(pos);
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        // Answered (well or not): the piece may be asked again.
        if let Some(r) = a.requested.get_mut(piece as usize) {
            *r = false;
        }
        if total != a.size as u64 {
            let why = format!("metadata total_size {total}, expected {}", a.size);
            return self.ban_peer(peer, why, ctx);
        }
        let i = piece as usize;
        let want = piece_len(a.size, i);
        if data.len() != want {
            let why = format!(
                "metadata piece {piece} of {} bytes, expected {want}",
                data.len()
            );
            return self.ban_peer(peer, why, ctx);
        }
        a.buf[i * PIECE..i * PIECE + want].copy_from_slice(data);
        a.got[i] = true;
        a.from[i] = Some(peer);
        if !a.got.iter().all(|&g| g) {
            return;
        }
        let a = self.attempt.take().expect("attempt");
        let contributors: BTreeSet<Token> = a.from.iter().flatten().copied().collect();
        if crate::sha1::sha1(&a.buf) == self.info_hash {
            log::info!("ut_metadata: info dictionary of {} bytes verified", a.size);
            self.slot.put(a.buf.clone());
            self.have = Some(Arc::new(a.buf));
            return;
        }
        self.failures += 1;
        if contributors.len() == 1 {
            let liar = *contributors.first().expect("one");
            self.ban_peer(liar, "metadata does not match the info-hash".into(), ctx);
        } else {
            log::info!(
                "ut_metadata: metadata from {} peers does not match the info-hash; \
                 fetching from one peer at a time",
                contributors.len()
            );
            self.single_source = true;
        }
    }

    /// Sends requests: starts an attempt if needed, then gives each
    /// missing piece to a peer with room.
    fn schedule(&mut self, now: Instant, ctx: &mut ExtContext) {
        if self.have.is_some() {
            return;
        }
        let usable = |p: &PeerMeta, size: Option<usize>| {
            p.supported
                && p.size.is_some()
                && (size.is_none() || p.size == size)
                && p.paused_until.is_none_or(|t| now >= t)
        };
        // An attempt whose size no peer offers any more is abandoned.
        if let Some(a) = &self.attempt {
            let size = Some(a.size);
            if !self.peers.values().any(|p| p.supported && p.size == size) {
                self.attempt = None;
            }
        }
        if self.attempt.is_none() {
            let Some(size) = self
                .peers
                .values()
                .find(|p| usable(p, None))
                .and_then(|p| p.size)
            else {
                return;
            };
            self.attempt = Some(Attempt::new(size));
        }
        let a = self.attempt.as_mut().expect("attempt");
        let size = Some(a.size);
        if self.single_source && a.source.is_none() {
            a.source = self
                .peers
                .iter()
                .find(|(_, p)| usable(p, size))
                .map(|(t, _)| *t);
        }
        let mut peers: Vec<Token> = self
            .peers
            .iter()
            .filter(|(t, p)| {
                usable(p, size)
                    && p.outstanding.len() < MAX_OUTSTANDING
                    && a.source.is_none_or(|s| s == **t)
            })
            .map(|(t, _)| *t)
            .collect();
        let mut next = 0;
        for i in 0..a.got.len() {
            if a.got[i] || a.requested[i] {
                continue;
            }
            // Round-robin over peers with room.
            peers.retain(|t| self.peers[t].outstanding.len() < MAX_OUTSTANDING);
            if peers.is_empty() {
                break;
            }
            let t = peers[next % peers.len()];
            next += 1;
            a.requested[i] = true;
            self.peers
                .get_mut(&t)
                .expect("peer")
                .outstanding
                .push((i as u32, now));
            ctx.send(t, encode(&Msg::Request { piece: i as u32 }));
        }
    }
}

impl Extension for UtMetadata {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handshake_fields(&self, dict: &mut OwnedValue) {
        if let Some(info) = &self.have {
            dict.insert("metadata_size", info.len() as i64);
        }
    }

    fn on_handshake(
        &mut self,
        peer: Token,
        hs: &ExtHandshake,
        supported: bool,
        now: Instant,
        ctx: &mut ExtContext,
    ) {
        if !supported {
            return;
        }
        let size = match hs.metadata_size {
            Some(0) | None => None,
            Some(s) if s > MAX_METADATA as u64 => {
                if self.have.is_none() {
                    let why = format!("metadata_size {s} over the {} MiB cap", MAX_METADATA >> 20);
                    return self.ban_peer(peer, why, ctx);
                }
                None
            }
            Some(s) => Some(s as usize),
        };
        let p = self.peers.entry(peer).or_default();
        p.supported = true;
        p.size = size;
        self.schedule(now, ctx);
    }

    fn on_message(&mut self, peer: Token, payload: &[u8], now: Instant, ctx: &mut ExtContext) {
        let msg = match decode(payload) {
            Ok(m) => m,
            Err(why) => return self.drop_peer(peer, why, ctx),
        };
        match msg {
            Msg::Request { piece } => {
                let answer = match &self.have {
                    Some(info) if (piece as usize) < piece_count(info.len()) => {
                        let start = piece as usize * PIECE;
                        let end = start + piece_len(info.len(), piece as usize);
                        encode(&Msg::Data {
                            piece,
                            total_size: info.len() as u64,
                            data: &info[start..end],
                        })
                    }
                    _ => encode(&Msg::Reject { piece }),
                };
                ctx.send(peer, answer);
            }
            Msg::Data {
                piece,
                total_size,
                data,
            } => self.on_data(peer, piece, total_size, data, ctx),
            Msg::Reject { piece } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    if let Some(pos) = p.outstanding.iter().position(|(i, _)| *i == piece) {
                        p.outstanding.remove(pos);
                        p.paused_until = Some(now + REJECT_PAUSE);
                        if let Some(r) = self
                            .attempt
                            .as_mut()
                            .and_then(|a| a.requested.get_mut(piece as usize))
                        {
                            *r = false;
                        }
                        if let Some(a) = &mut self.attempt {
                            if a.source == Some(peer) {
                                a.source = None;
                                self.attempt = None;
                            }
                        }
                    }
                }
            }
            Msg::Unknown => {}
        }
        self.schedule(now, ctx);
    }

    fn on_tick(&mut self, now: Instant, ctx: &mut ExtContext) {
        if self.have.is_some() {
            return;
        }
        let late: Vec<Token> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.outstanding
                    .iter()
                    .any(|(_, at)| now.saturating_duration_since(*at) >= REQUEST_TIMEOUT)
            })
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            let why = format!(
                "metadata request unanswered for {} s",
                REQUEST_TIMEOUT.as_secs()
            );
            self.drop_peer(t, why, ctx);
        }
        self.schedule(now, ctx);
    }

    fn on_peer_gone(&mut self, peer: Token) {
        self.forget(peer);
    }

    fn table_sizes(&self, into: &mut BTreeMap<&'static str, usize>) {
        into.insert("ut_metadata.peers", self.peers.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips() {
        for m in [
            Msg::Request { piece: 3 },
            Msg::Reject { piece: 0 },
            Msg::Data {
                piece: 1,
                total_size: 20000,
                data: b"abc",
            },
        ] {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
        assert_eq!(
            encode(&Msg::Request { piece: 0 }),
            b"d8:msg_typei0e5:piecei0ee"
        );
        assert_eq!(
            decode(b"d8:msg_typei1e5:piecei0e10:total_sizei5eexxxxx").unwrap(),
            Msg::Data {
                piece: 0,
                total_size: 5,
                data: b"xxxxx"
            }
        );
        assert_eq!(decode(b"d8:msg_typei7e5:piecei0ee").unwrap(), Msg::Unknown);
        assert!(decode(b"garbage").is_err());
        assert!(decode(b"d5:piecei0ee").is_err());
        assert!(decode(b"d8:msg_typei0e5:piecei-1ee").is_err());
        assert!(
            decode(b"d8:msg_typei1e5:piecei0ee").is_err(),
            "no total_size"
        );
        assert_eq!(piece_count(PIECE + 1), 2);
        assert_eq!(piece_len(PIECE + 1, 1), 1);
    }

    /// Peers closed or banned.
    fn gone(ctx: &ExtContext) -> Vec<(Token, String)> {
        ctx.close.iter().chain(&ctx.ban).cloned().collect()
    }

    fn hs(size: Option<u64>) -> ExtHandshake {
        ExtHandshake {
            extensions: vec![(NAME.into(), 3)],
            metadata_size: size,
            ..Default::default()
        }
    }

    fn requests(ctx: &ExtContext) -> Vec<(Token, u32)> {
        ctx.outgoing
            .iter()
            .map(|(t, p)| match decode(p).unwrap() {
                Msg::Request { piece } => (*t, piece),
                m => panic!("{m:?}"),
            })
            .collect()
    }

    fn data(info: &[u8], piece: u32) -> Vec<u8> {
        let start = piece as usize * PIECE;
        let end = start + piece_len(info.len(), piece as usize);
        encode(&Msg::Data {
            piece,
            total_size: info.len() as u64,
            data: &info[start..end],
        })
    }

    /// Bytes standing in for an info dictionary (the extension never
    /// parses it).
    fn info_dict(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Bytes standing in for an info dictionary of `len` bytes, a fetcher
    /// of it, and the slot the fetcher fills.
    fn fetching(len: usize) -> (Vec<u8>, UtMetadata, MetadataSlot) {
        let info = info_dict(len);
        let slot = MetadataSlot::default();
        let fetcher = UtMetadata::fetching(crate::sha1::sha1(&info), slot.clone());
        (info, fetcher, slot)
    }

    #[test]
    fn serves_pieces_and_rejects_out_of_range() {
        let info = Arc::new(info_dict(PIECE + 100));
        let mut s = UtMetadata::serving([0; 20], info.clone());
        let mut d = OwnedValue::dict();
        s.handshake_fields(&mut d);
        assert_eq!(
            d.encode(),
            format!("d13:metadata_sizei{}ee", PIECE + 100).into_bytes()
        );
        let now = Instant::now();
        let mut ctx = ExtContext::default();
        for piece in [0, 1, 2, u32::MAX] {
            s.on_message(7, &encode(&Msg::Request { piece }), now, &mut ctx);
        }
        let got: Vec<Msg> = ctx
            .outgoing
            .iter()
            .map(|(_, p)| decode(p).unwrap())
            .collect();
        assert_eq!(got[0], decode(&data(&info, 0)).unwrap());
        assert_eq!(got[1], decode(&data(&info, 1)).unwrap());
        assert_eq!(got[2], Msg::Reject { piece: 2 });
        assert_eq!(got[3], Msg::Reject { piece: u32::MAX });
    }

    #[test]
    fn fetches_from_several_peers_and_verifies() {
        let (info, mut f, slot) = fetching(3 * PIECE + 10);
        let now = Instant::now();
        let mut ctx = ExtContext::default();
        f.on_handshake(1, &hs(Some(info.len() as u64)), true, now, &mut ctx);
        f.on_handshake(2, &hs(Some(info.len() as u64)), true, now, &mut ctx);
        f.on_handshake(3, &hs(None), true, now, &mut ctx);
        // Peer 1 gets two requests at once, peer 2 the other two.
        let r = requests(&ctx);
        assert_eq!(r, [(1, 0), (1, 1), (2, 2), (2, 3)]);
        let mut ctx = ExtContext::default();
        for (t, p) in r {
            assert!(!slot.is_ready());
            f.on_message(t, &data(&info, p), now, &mut ctx);
        }
        assert!(gone(&ctx).is_empty(), "{:?}", gone(&ctx));
        assert_eq!(slot.take().unwrap(), info);
        // Now it serves.
        let mut d = OwnedValue::dict();
        f.handshake_fields(&mut d);
        assert!(d.encode().starts_with(b"d13:metadata_size"));
    }

    #[test]
    fn hostile_peers_are_dropped_and_the_honest_one_finishes() {
        let (info, mut f, _slot) = fetching(2 * PIECE + 1);
        let t0 = Instant::now();
        let mut ctx = ExtContext::default();
        // Oversize: dropped at once.
        f.on_handshake(9, &hs(Some(MAX_METADATA as u64 + 1)), true, t0, &mut ctx);
        assert_eq!(gone(&ctx).len(), 1);
        assert!(gone(&ctx)[0].1.contains("cap"), "{:?}", gone(&ctx));
        // A liar (1) and an honest peer (2), same size: pieces spread.
        let mut ctx = ExtContext::default();
        let size = Some(info.len() as u64);
        f.on_handshake(1, &hs(size), true, t0, &mut ctx);
        f.on_handshake(2, &hs(size), true, t0, &mut ctx);
        let r = requests(&ctx);
        assert_eq!(r, [(1, 0), (1, 1), (2, 2)]);
        let mut bad = info.clone();
        bad[5] ^= 1;
        let mut ctx = ExtContext::default();
        f.on_message(1, &data(&bad, 0), t0, &mut ctx);
        f.on_message(1, &data(&bad, 1), t0, &mut ctx);
        f.on_message(2, &data(&info, 2), t0, &mut ctx);
        assert_eq!(f.failures, 1);
        assert!(gone(&ctx).is_empty(), "two contributors: no one blamed yet");
        // Single-source mode: everything asked of peer 1 first.
        let r = requests(&ctx);
        assert_eq!(r, [(1, 0), (1, 1)]);
        let mut ctx = ExtContext::default();
        f.on_message(1, &data(&bad, 0), t0, &mut ctx);
        f.on_message(1, &data(&bad, 1), t0, &mut ctx);
        assert_eq!(requests(&ctx), [(1, 2)]);
        let mut ctx = ExtContext::default();
        f.on_message(1, &data(&bad, 2), t0, &mut ctx);
        assert_eq!(f.failures, 2);
        assert_eq!(gone(&ctx).len(), 1);
        assert_eq!(ctx.ban[0].0, 1, "a liar is banned");
        assert!(ctx.ban[0].1.contains("info-hash"));
        f.on_peer_gone(1);
        // Peer 2 was asked for all of it.
        let r = requests(&ctx);
        assert_eq!(r, [(2, 0), (2, 1)]);
        let mut ctx = ExtContext::default();
        // A piece of the wrong length ends a connection.
        let mut g = UtMetadata::fetching(crate::sha1::sha1(&info), MetadataSlot::default());
        g.on_handshake(5, &hs(size), true, t0, &mut ctx);
        let long = encode(&Msg::Data {
            piece: 0,
            total_size: info.len() as u64,
            data: &vec![0; PIECE + 1],
        });
        g.on_message(5, &long, t0, &mut ctx);
        assert!(gone(&ctx)
            .iter()
            .any(|(t, w)| *t == 5 && w.contains("bytes")));
        // Unrequested pieces too.
        let mut ctx = ExtContext::default();
        f.on_message(2, &data(&info, 2), t0, &mut ctx);
        assert!(gone(&ctx)
            .iter()
            .any(|(t, w)| *t == 2 && w.contains("unrequested")));
    }

    #[test]
    fn a_dropped_peer_leaves_no_piece_behind() {
        let (info, mut f, slot) = fetching(PIECE + 100);
        let t0 = Instant::now();
        let size = Some(info.len() as u64);
        let mut ctx = ExtContext::default();
        f.on_handshake(1, &hs(size), true, t0, &mut ctx);
        f.on_handshake(2, &hs(size), true, t0, &mut ctx);
        assert_eq!(requests(&ctx), [(1, 0), (1, 1)]);
        // Peer 1 sends a bad piece 0, then a piece 1 of the wrong length.
        let mut ctx = ExtContext::default();
        let junk = vec![b'y'; PIECE];
        for piece in [0, 1] {
            let m = encode(&Msg::Data {
                piece,
                total_size: info.len() as u64,
                data: &junk,
            });
            f.on_message(1, &m, t0, &mut ctx);
        }
        assert_eq!(gone(&ctx).len(), 1);
        // Both pieces go to peer 2, and the result is right.
        assert_eq!(requests(&ctx), [(2, 0), (2, 1)]);
        let mut ctx = ExtContext::default();
        f.on_message(2, &data(&info, 0), t0, &mut ctx);
        f.on_message(2, &data(&info, 1), t0, &mut ctx);
        assert_eq!(f.failures, 0);
        assert_eq!(slot.take().unwrap(), info);
    }

    #[test]
    fn silent_peer_times_out_and_another_takes_over() {
        let (info, mut f, slot) = fetching(100);
        let t0 = Instant::now();
        let mut ctx = ExtContext::default();
        f.on_handshake(1, &hs(Some(100)), true, t0, &mut ctx);
        assert_eq!(requests(&ctx), [(1, 0)]);
        let mut ctx = ExtContext::default();
        f.on_handshake(2, &hs(Some(100)), true, t0, &mut ctx);
        assert!(ctx.outgoing.is_empty(), "the only piece is taken");
        let mut ctx = ExtContext::default();
        f.on_tick(t0 + REQUEST_TIMEOUT - Duration::from_millis(1), &mut ctx);
        assert!(gone(&ctx).is_empty());
        f.on_tick(t0 + REQUEST_TIMEOUT, &mut ctx);
        assert_eq!(gone(&ctx).len(), 1);
        assert_eq!(requests(&ctx), [(2, 0)]);
        let mut ctx = ExtContext::default();
        f.on_message(2, &data(&info, 0), t0, &mut ctx);
        assert_eq!(slot.take().unwrap(), info);
    }

    #[test]
    fn reject_pauses_the_peer() {
        let info = info_dict(100);
        let mut f = UtMetadata::fetching(crate::sha1::sha1(&info), MetadataSlot::default());
        let t0 = Instant::now();
        let mut ctx = ExtContext::default();
        f.on_handshake(1, &hs(Some(100)), true, t0, &mut ctx);
        let mut ctx = ExtContext::default();
        f.on_message(1, &encode(&Msg::Reject { piece: 0 }), t0, &mut ctx);
        assert!(ctx.outgoing.is_empty());
        f.on_tick(t0 + REJECT_PAUSE, &mut ctx);
        assert_eq!(requests(&ctx), [(1, 0)]);
    }
}

//! Peer exchange (BEP 11, `ut_pex`) as a session [`Extension`]: the
//! message codec, telling peers which peers we are connected to (every
//! [`INTERVAL`], at most [`MAX_PER_MESSAGE`] added and as many dropped,
//! only addresses of peers we actually hold a connection to), and taking
//! the addresses peers tell us as candidates — bounded per message, per
//! peer in time and in total over [`LEARNT_FOR`] — while honouring
//! `dropped`.
//!
//! Private torrents (BEP 27) must not use PEX: the driver does not
//! register this extension for them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bencode::{Decoder, OwnedValue};
use crate::session::{ExtContext, Extension, Token};
use crate::wire::ExtHandshake;

pub const NAME: &str = "ut_pex";
/// How often each peer hears from us.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// The first message to a peer goes this long after its handshake.
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// Added (and dropped) addresses per message, each way.
pub const MAX_PER_MESSAGE: usize = 50;
/// Messages from one peer closer together than this are ignored.
pub const MIN_GAP: Duration = Duration::from_secs(20);
/// Addresses taken through PEX within [`LEARNT_FOR`].
pub const MAX_LEARNT: usize = 1000;
/// How long an address taken through PEX is remembered (not taken again,
/// counted against [`MAX_LEARNT`]). Not the whole run: swarms turn over
/// (peers come back on new ports), and a set kept for the whole run
/// would fill up, one entry per visit, and then take nothing more. Both
/// together bound what PEX can make us dial to 1000 addresses per 5
/// minutes.
pub const LEARNT_FOR: Duration = Duration::from_secs(300);

/// `added.f` flag: the peer is reachable (we connected to it).
pub const FLAG_REACHABLE: u8 = 0x10;

/// A `ut_pex` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMsg {
    /// Address and flags.
    pub added: Vec<(SocketAddr, u8)>,
    pub dropped: Vec<SocketAddr>,
}

fn compact(addrs: impl Iterator<Item = SocketAddr>, v6: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for a in addrs {
        match (a.ip(), v6) {
            (IpAddr::V4(ip), false) => out.extend_from_slice(&ip.octets()),
            (IpAddr::V6(ip), true) => out.extend_from_slice(&ip.octets()),
            _ => continue,
        }
        out.extend_from_slice(&a.port().to_be_bytes());
    }
    out
}

fn uncompact(bytes: &[u8], v6: bool) -> impl Iterator<Item = SocketAddr> + '_ {
    let len = if v6 { 18 } else { 6 };
    bytes.chunks_exact(len).map(move |c| {
        let port = u16::from_be_bytes([c[len - 2], c[len - 1]]);
        let ip: IpAddr = if v6 {
            let o: [u8; 16] = c[..16].try_into().expect("16 bytes");
            Ipv6Addr::from(o).into()
        } else {
            Ipv4Addr::new(c[0], c[1], c[2], c[3]).into()
        };
        SocketAddr::new(ip, port)
    })
}

pub fn encode(msg: &PexMsg) -> Vec<u8> {
    let mut d = OwnedValue::dict();
    for v6 in [false, true] {
        let fam = |a: &SocketAddr| a.is_ipv6() == v6;
        let added: Vec<&(SocketAddr, u8)> = msg.added.iter().filter(|(a, _)| fam(a)).collect();
        let (k, kf, kd) = if v6 {
            ("added6", "added6.f", "dropped6")
        } else {
            ("added", "added.f", "dropped")
        };
        d.insert(
            k,
            OwnedValue::Bytes(compact(added.iter().map(|(a, _)| *a), v6)),
        );
        d.insert(
            kf,
            OwnedValue::Bytes(added.iter().map(|(_, f)| *f).collect()),
        );
        d.insert(
            kd,
            OwnedValue::Bytes(compact(msg.dropped.iter().copied().filter(fam), v6)),
        );
    }
    d.encode()
}

/// Parses a message (missing keys are empty; a trailing partial entry is
/// ignored); at most `limit` added and `limit` dropped addresses per
/// family are read.
pub fn decode(payload: &[u8], limit: usize) -> Result<PexMsg, String> {
    let doc = Decoder::new()
        .max_depth(2)
        .decode(payload)
        .map_err(|e| format!("ut_pex: {e}"))?;
    let root = doc.root;
    if root.as_dict().is_none() {
        return Err("ut_pex: not a dictionary".into());
    }
    let bytes = |k: &str| root.get(k).and_then(|v| v.as_bytes()).unwrap_or(b"");
    let mut msg = PexMsg::default();
    for v6 in [false, true] {
        let (k, kf, kd) = if v6 {
            ("added6", "added6.f", "dropped6")
        } else {
            ("added", "added.f", "dropped")
        };
        let flags = bytes(kf);
        msg.added.extend(
            uncompact(bytes(k), v6)
                .take(limit)
                .enumerate()
                .map(|(i, a)| (a, flags.get(i).copied().unwrap_or(0))),
        );
        msg.dropped.extend(uncompact(bytes(kd), v6).take(limit));
    }
    Ok(msg)
}

/// Whether an address is worth trying.
fn usable(a: &SocketAddr) -> bool {
    a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast()
}

#[derive(Debug)]
struct PexPeer {
    /// The address it accepts connections on (for an incoming
    /// connection, its IP with the port from its handshake).
    listen: Option<SocketAddr>,
    outgoing: bool,
    supported: bool,
    /// What we have told it is connected (so that `dropped` can follow).
    told: BTreeSet<SocketAddr>,
    next_send: Instant,
    last_recv: Option<Instant>,
}

/// The `ut_pex` extension.
#[derive(Default)]
pub struct Pex {
    peers: BTreeMap<Token, PexPeer>,
    /// Connection addresses known before the handshake.
    addrs: BTreeMap<Token, (SocketAddr, bool)>,
    /// Addresses taken, and when.
    learnt: BTreeMap<SocketAddr, Instant>,
    /// When `learnt` is next swept of old entries.
    next_sweep: Option<Instant>,
}

impl Pex {
    pub fn new() -> Pex {
        Pex::default()
    }

    /// Addresses taken from peers so far.
    pub fn learnt(&self) -> usize {
        self.learnt.len()
    }
}

impl Extension for Pex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_peer_addr(&mut self, peer: Token, addr: SocketAddr, outgoing: bool) {
        self.addrs.insert(peer, (addr, outgoing));
    }

    fn on_handshake(
        &mut self,
        peer: Token,
        hs: &ExtHandshake,
        supported: bool,
        now: Instant,
        _ctx: &mut ExtContext,
    ) {
        let Some(&(addr, outgoing)) = self.addrs.get(&peer) else {
            return;
        };
        let listen = if outgoing {
            Some(addr)
        } else {
            hs.listen_port.map(|p| SocketAddr::new(addr.ip(), p))
        };
        let p = self.peers.entry(peer).or_insert(PexPeer {
            listen: None,
            outgoing,
            supported,
            told: BTreeSet::new(),
            next_send: now + FIRST_DELAY,
            last_recv: None,
        });
        p.listen = listen.filter(usable);
        p.supported = supported;
    }

    fn on_message(&mut self, peer: Token, payload: &[u8], now: Instant, ctx: &mut ExtContext) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.last_recv
            .is_some_and(|t| now.saturating_duration_since(t) < MIN_GAP)
        {
            log::debug!("ut_pex: message too soon after the last one, ignored");
            return;
        }
        p.last_recv = Some(now);
        let msg = match decode(payload, MAX_PER_MESSAGE) {
            Ok(m) => m,
            Err(why) => return ctx.close(peer, why),
        };
        for a in msg.dropped {
            if self.learnt.remove(&a).is_some() {
                ctx.drop_candidate(a);
            }
        }
        for (a, _flags) in msg.added {
            if self.learnt.len() >= MAX_LEARNT {
                break;
            }
            if usable(&a) && !self.learnt.contains_key(&a) {
                self.learnt.insert(a, now);
                ctx.add_candidate(a);
            }
        }
    }

    fn on_tick(&mut self, now: Instant, ctx: &mut ExtContext) {
        // Once a minute at most: a scan of at most MAX_LEARNT entries.
        if self.next_sweep.is_none_or(|t| now >= t) {
            self.next_sweep = Some(now + Duration::from_secs(60));
            self.learnt
                .retain(|_, at| now.saturating_duration_since(*at) < LEARNT_FOR);
        }
        let connected: BTreeMap<SocketAddr, bool> = self
            .peers
            .values()
            .filter_map(|p| Some((p.listen?, p.outgoing)))
            .collect();
        for (&token, p) in self.peers.iter_mut() {
            if !p.supported || now < p.next_send {
                continue;
            }
            p.next_send = now + INTERVAL;
            let own = p.listen;
            let added: Vec<(SocketAddr, u8)> = connected
                .iter()
                .filter(|(a, _)| Some(**a) != own && !p.told.contains(a))
                .take(MAX_PER_MESSAGE)
                .map(|(a, out)| (*a, if *out { FLAG_REACHABLE } else { 0 }))
                .collect();
            let dropped: Vec<SocketAddr> = p
                .told
                .iter()
                .filter(|a| !connected.contains_key(a))
                .take(MAX_PER_MESSAGE)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            for (a, _) in &added {
                p.told.insert(*a);
            }
            for a in &dropped {
                p.told.remove(a);
            }
            ctx.send(token, encode(&PexMsg { added, dropped }));
        }
    }

    fn on_peer_gone(&mut self, peer: Token) {
        self.peers.remove(&peer);
        self.addrs.remove(&peer);
    }

    fn table_sizes(&self, into: &mut BTreeMap<&'static str, usize>) {
        into.insert("pex.peers", self.peers.len());
        into.insert("pex.addrs", self.addrs.len());
        into.insert("pex.learnt", self.learnt.len());
        let told = self.peers.values().map(|p| p.told.len()).sum();
        into.insert("pex.told", told);
    }
}

#[cfg(test)]
mod tests;

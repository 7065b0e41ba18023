//! The extension protocol (BEP 10): a registry of [`Extension`]s, each
//! known by its name (`ut_metadata`, `ut_pex`, …). The registry gives each
//! a local message id for our `m` dictionary, learns each peer's ids from
//! its extended handshake, dispatches incoming extended messages to the
//! extension they are for, and lets extensions answer through an
//! [`ExtContext`]. Extensions never see sockets or the peer table: they
//! get the peer's token, its payloads and the time, and return what to
//! send and which addresses they learnt.

use std::net::SocketAddr;
use std::time::Instant;

use super::peer::Token;
use crate::bencode::OwnedValue;
use crate::wire::ExtHandshake;

/// What an extension may do in answer to an event.
#[derive(Debug, Default)]
pub struct ExtContext {
    /// Messages to send: peer and payload (sent with the peer's id for
    /// this extension; dropped when the peer does not support it).
    pub(crate) outgoing: Vec<(Token, Vec<u8>)>,
    /// Peer addresses learnt (PEX, say), to try.
    pub(crate) candidates: Vec<SocketAddr>,
    /// Peers to disconnect, with the reason.
    pub(crate) close: Vec<(Token, String)>,
    /// Addresses a peer said it no longer knows (PEX `dropped`): forgotten
    /// if we learnt them through PEX and have not tried them yet.
    pub(crate) dropped: Vec<SocketAddr>,
    /// Peers to disconnect and never dial again (they lied on purpose).
    pub(crate) ban: Vec<(Token, String)>,
}

impl ExtContext {
    pub fn send(&mut self, peer: Token, payload: Vec<u8>) {
        self.outgoing.push((peer, payload));
    }

    pub fn add_candidate(&mut self, addr: SocketAddr) {
        self.candidates.push(addr);
    }

    /// An address learnt earlier (through PEX) is gone: do not try it.
    pub fn drop_candidate(&mut self, addr: SocketAddr) {
        self.dropped.push(addr);
    }

    /// Ends the connection and bans the peer's address (for input that
    /// cannot be an accident: data that fails its hash, say).
    pub fn ban(&mut self, peer: Token, reason: String) {
        self.ban.push((peer, reason));
    }

    /// Ends the connection for a protocol violation in this extension.
    pub fn close(&mut self, peer: Token, reason: String) {
        self.close.push((peer, reason));
    }
}

/// A BEP 10 extension. Every method has a do-nothing default except the
/// name.
pub trait Extension: Send {
    /// The name in the `m` dictionary.
    fn name(&self) -> &'static str;

    /// Adds its own keys to our extended handshake (`metadata_size`, say).
    fn handshake_fields(&self, _dict: &mut OwnedValue) {}

    /// Who the peer is, just before [`Extension::on_handshake`]: its
    /// address as connected and whether we dialled it (then `addr` is its
    /// listen address).
    fn on_peer_addr(&mut self, _peer: Token, _addr: SocketAddr, _outgoing: bool) {}

    /// A peer's extended handshake arrived; `supported` says whether it
    /// listed this extension.
    fn on_handshake(
        &mut self,
        _peer: Token,
        _handshake: &ExtHandshake,
        _supported: bool,
        _now: Instant,
        _ctx: &mut ExtContext,
    ) {
    }

    /// A message for this extension arrived.
    fn on_message(&mut self, peer: Token, payload: &[u8], now: Instant, ctx: &mut ExtContext);

    /// The clock (every second).
    fn on_tick(&mut self, _now: Instant, _ctx: &mut ExtContext) {}

    /// A peer went away.
    fn on_peer_gone(&mut self, _peer: Token) {}

    /// The length of each table it keeps per peer or per address, by
    /// name: what a leak check compares after peers came and went.
    fn table_sizes(&self, _into: &mut std::collections::BTreeMap<&'static str, usize>) {}
}

/// The extensions a session runs, in registration order: extension `i`
/// has local id `i + 1` (0 is the handshake).
#[derive(Default)]
pub struct Registry {
    list: Vec<Box<dyn Extension>>,
}

/// Extended message ids are one byte, 0 taken by the handshake.
const MAX_EXTENSIONS: usize = 254;

impl Registry {
    /// Adds an extension; its local id, or `None` when the name is taken
    /// or no id is left.
    pub fn register(&mut self, ext: Box<dyn Extension>) -> Option<u8> {
        if self.list.len() >= MAX_EXTENSIONS || self.list.iter().any(|e| e.name() == ext.name()) {
            return None;
        }
        self.list.push(ext);
        Some(self.list.len() as u8)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Our `m` dictionary: name and local id of each extension.
    pub fn local_ids(&self) -> Vec<(&'static str, u8)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name(), i as u8 + 1))
            .collect()
    }

    pub fn handshake_fields(&self, dict: &mut OwnedValue) {
        for e in &self.list {
            e.handshake_fields(dict);
        }
    }

    /// The peer's id for each of our extensions (by index), from its
    /// handshake.
    pub fn peer_ids(&self, hs: &ExtHandshake) -> Vec<u8> {
        self.list.iter().map(|e| hs.id_of(e.name())).collect()
    }

    /// Index of the extension that local id `id` names.
    pub fn index_of_local(&self, id: u8) -> Option<usize> {
        let i = usize::from(id).checked_sub(1)?;
        (i < self.list.len()).then_some(i)
    }

    /// Index of the extension called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|e| e.name() == name)
    }

    pub fn get_mut(&mut self, index: usize) -> &mut dyn Extension {
        self.list[index].as_mut()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn each_ref(&self) -> impl Iterator<Item = &dyn Extension> {
        self.list.iter().map(|e| e.as_ref())
    }

    pub fn each(&mut self) -> impl Iterator<Item = (usize, &mut Box<dyn Extension>)> {
        self.list.iter_mut().enumerate()
    }
}

impl super::Session {
    /// Carries out what extensions asked for.
    fn apply_ext_context(&mut self, index: usize, ctx: ExtContext, now: Instant) {
        for (token, payload) in ctx.outgoing {
            let Some(p) = self.peers.get_mut(&token) else {
                continue;
            };
            let id = p.ext_ids.get(index).copied().unwrap_or(0);
            if id != 0 {
                p.send(
                    &crate::wire::Message::Extended {
                        id,
                        payload: &payload,
                    },
                    now,
                );
            }
        }
        for addr in ctx.candidates {
            self.candidates.add(addr, crate::peer_source::Origin::Pex);
        }
        for addr in ctx.dropped {
            self.candidates.forget_pex(&addr);
        }
        for (token, why) in ctx.ban {
            if let Some(addr) = self.peers.get(&token).map(|p| p.addr) {
                if self.candidates.ban(addr) {
                    self.actions
                        .push_back(super::Action::Event(super::Event::Banned { addr }));
                }
            }
            self.fail(token, super::CloseReason::Protocol(why), now);
        }
        for (token, why) in ctx.close {
            self.fail(token, super::CloseReason::Protocol(why), now);
        }
    }

    pub(super) fn extensions_on_handshake(
        &mut self,
        token: Token,
        hs: &ExtHandshake,
        now: Instant,
    ) {
        for i in 0..self.extensions.len() {
            let Some(p) = self.peers.get(&token) else {
                return;
            };
            let supported = p.ext_ids[i] != 0;
            let (addr, outgoing) = (p.addr, p.outgoing);
            let mut ctx = ExtContext::default();
            let ext = self.extensions.get_mut(i);
            ext.on_peer_addr(token, addr, outgoing);
            ext.on_handshake(token, hs, supported, now, &mut ctx);
            self.apply_ext_context(i, ctx, now);
        }
    }

    /// An extended message by our local id; one for no extension of ours
    /// is ignored (the peer may have sent it before seeing our handshake).
    pub(super) fn on_extended(&mut self, token: Token, id: u8, payload: &[u8], now: Instant) {
        let Some(i) = self.extensions.index_of_local(id) else {
            log::debug!("extended message {id} for no extension of ours");
            return;
        };
        let mut ctx = ExtContext::default();
        self.extensions
            .get_mut(i)
            .on_message(token, payload, now, &mut ctx);
        self.apply_ext_context(i, ctx, now);
    }

    pub(super) fn extensions_tick(&mut self, now: Instant) {
        for i in 0..self.extensions.len() {
            let mut ctx = ExtContext::default();
            self.extensions.get_mut(i).on_tick(now, &mut ctx);
            self.apply_ext_context(i, ctx, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Config, Session};
    use std::sync::{Arc, Mutex};

    /// What an extension received: from which peer, which payload.
    type Log = Arc<Mutex<Vec<(Token, Vec<u8>)>>>;

    /// Says "ping" to every peer that supports it; answers "ping" with
    /// "pong"; logs what it got.
    struct Echo {
        name: &'static str,
        got: Log,
    }

    impl Extension for Echo {
        fn name(&self) -> &'static str {
            self.name
        }

        fn handshake_fields(&self, dict: &mut OwnedValue) {
            dict.insert("x_echo_version", 1i64);
        }

        fn on_handshake(
            &mut self,
            peer: Token,
            _hs: &ExtHandshake,
            supported: bool,
            _now: Instant,
            ctx: &mut ExtContext,
        ) {
            if supported {
                ctx.send(peer, b"ping".to_vec());
            }
        }

        fn on_message(&mut self, peer: Token, payload: &[u8], _now: Instant, ctx: &mut ExtContext) {
            self.got.lock().unwrap().push((peer, payload.to_vec()));
            if payload == b"ping" {
                ctx.send(peer, b"pong".to_vec());
            }
        }
    }

    fn session(id: u8, exts: &[&'static str], log: &Log) -> Session {
        let mut s = Session::new(Config::new([9; 20], [id; 20]), 16384, 4 * 16384, 4);
        for &name in exts {
            assert!(s.register_extension(Box::new(Echo {
                name,
                got: log.clone()
            })));
        }
        s
    }

    /// Carries bytes both ways until nothing is left to send (a knows b
    /// as token 1, b knows a as token 0).
    fn exchange(a: &mut Session, b: &mut Session, now: Instant) {
        fn carry(
            src: &mut Session,
            at_src: Token,
            dst: &mut Session,
            at_dst: Token,
            now: Instant,
        ) -> bool {
            let Some(out) = src.output(at_src) else {
                return false;
            };
            let bytes = out.pending().to_vec();
            out.consume(bytes.len());
            dst.on_data(at_dst, &bytes, now);
            !bytes.is_empty()
        }
        for _ in 0..10 {
            let ab = carry(a, 1, b, 0, now);
            let ba = carry(b, 0, a, 1, now);
            if !ab && !ba {
                return;
            }
        }
    }

    #[test]
    fn extensions_negotiate_by_name_and_dispatch() {
        let log_a = Arc::new(Mutex::new(Vec::new()));
        let log_b = Arc::new(Mutex::new(Vec::new()));
        // Different registration orders: different local ids for the same
        // name, which the `m` dictionaries reconcile.
        let mut a = session(1, &["x_other", "x_echo"], &log_a);
        let mut b = session(2, &["x_echo"], &log_b);
        assert!(!a.register_extension(Box::new(Echo {
            name: "x_echo",
            got: log_a.clone()
        })));
        let now = Instant::now();
        a.on_connection(1, "10.0.0.2:1".parse().unwrap(), true, now);
        a.on_connected(1);
        b.on_connection(0, "10.0.0.1:1".parse().unwrap(), false, now);
        exchange(&mut a, &mut b, now);
        let got_a = log_a.lock().unwrap().clone();
        let got_b = log_b.lock().unwrap().clone();
        // Each side pinged the other once and got its pong; `x_other`,
        // which b lacks, never sent anything.
        assert_eq!(got_b, vec![(0, b"ping".to_vec()), (0, b"pong".to_vec())]);
        assert_eq!(got_a, vec![(1, b"ping".to_vec()), (1, b"pong".to_vec())]);
    }

    #[test]
    fn registry_ids_and_handshake() {
        let mut r = Registry::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        for name in ["x_a", "x_b"] {
            r.register(Box::new(Echo {
                name,
                got: log.clone(),
            }));
        }
        assert_eq!(r.local_ids(), vec![("x_a", 1), ("x_b", 2)]);
        assert_eq!(r.index_of_local(0), None, "0 is the handshake");
        assert_eq!(r.index_of_local(2), Some(1));
        assert_eq!(r.index_of_local(3), None);
        assert_eq!(r.index_of("x_b"), Some(1));
        let hs = ExtHandshake {
            extensions: vec![("x_b".into(), 7), ("x_z".into(), 1)],
            ..Default::default()
        };
        assert_eq!(r.peer_ids(&hs), vec![0, 7]);
        let mut d = OwnedValue::dict();
        r.handshake_fields(&mut d);
        assert_eq!(d.encode(), b"d14:x_echo_versioni1ee");
    }
}

//! Encryption of peer connections (MSE/PE) in the session: which opening
//! an outgoing connection uses, how an incoming one is told apart by its
//! first bytes, and the MSE stage that runs before the BitTorrent
//! handshake.
//!
//! The stream after the MSE handshake: when RC4 was chosen, every byte
//! read is decrypted once, before framing (in place when the driver hands
//! over a mutable buffer, [`Session::on_data_mut`]), and every byte queued
//! is encrypted once, when [`Session::output`] hands the buffer to the
//! driver (see [`super::OutBuf`]). With the plaintext method (header
//! obfuscation only), nothing is done after the handshake.

use std::str::FromStr;
use std::time::Instant;

use super::peer::{CloseReason, PeerState, Token};
use super::Session;
use crate::mse::{self, classify_first_bytes, FirstBytes, Policy, Progress};

/// What we accept and how we connect (`bt-fetch --encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Accept plaintext and MSE; connect in plaintext and retry an address
    /// with MSE when the peer drops us during the handshake. As an MSE
    /// receiver, choose the plaintext method when offered (no RC4 cost).
    #[default]
    Allow,
    /// Accept both; connect with MSE and retry in plaintext when dropped.
    /// As an MSE receiver, choose RC4 when offered.
    Prefer,
    /// MSE with RC4 only, in and out: plaintext handshakes are refused.
    Require,
    /// Plaintext only: MSE handshakes are refused.
    Disable,
}

/// What an outgoing connection sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The BitTorrent handshake in the clear.
    Plaintext,
    /// An MSE handshake, our BitTorrent handshake as its initial payload.
    Mse,
}

impl Opening {
    pub fn other(self) -> Opening {
        match self {
            Opening::Plaintext => Opening::Mse,
            Opening::Mse => Opening::Plaintext,
        }
    }
}

impl Encryption {
    pub const NAMES: [&'static str; 4] = ["allow", "prefer", "require", "disable"];

    pub fn name(self) -> &'static str {
        match self {
            Encryption::Allow => "allow",
            Encryption::Prefer => "prefer",
            Encryption::Require => "require",
            Encryption::Disable => "disable",
        }
    }

    /// How outgoing connections open, unless an address fell back.
    pub fn first_opening(self) -> Opening {
        match self {
            Encryption::Allow | Encryption::Disable => Opening::Plaintext,
            Encryption::Prefer | Encryption::Require => Opening::Mse,
        }
    }

    /// Whether an address that drops us during the handshake is retried
    /// with the other opening (`require` and `disable` have only one).
    pub fn switches_opening(self) -> bool {
        matches!(self, Encryption::Allow | Encryption::Prefer)
    }

    /// What we offer as MSE initiator (None: we never initiate MSE).
    pub fn initiator_policy(self) -> Option<Policy> {
        match self {
            Encryption::Allow => Some(Policy::ALLOW),
            Encryption::Prefer => Some(Policy::PREFER_RC4),
            Encryption::Require => Some(Policy::REQUIRE_RC4),
            Encryption::Disable => None,
        }
    }

    /// What we accept as MSE receiver (None: MSE is refused).
    pub fn receiver_policy(self) -> Option<Policy> {
        self.initiator_policy()
    }

    pub fn accepts_plaintext(self) -> bool {
        self != Encryption::Require
    }
}

impl FromStr for Encryption {
    type Err = String;

    fn from_str(s: &str) -> Result<Encryption, String> {
        match s {
            "allow" => Ok(Encryption::Allow),
            "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            "disable" => Ok(Encryption::Disable),
            _ => Err(format!(
                "unknown encryption mode '{s}' (one of {})",
                Encryption::NAMES.join(", ")
            )),
        }
    }
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a connection's stream is protected, in words for users: `none`
/// (plaintext BitTorrent), `obfuscated` (MSE handshake, clear stream) or
/// `rc4`.
pub fn describe(method: Option<mse::Method>) -> &'static str {
    match method {
        None => "none",
        Some(mse::Method::Plaintext) => "obfuscated",
        Some(mse::Method::Rc4) => "rc4",
    }
}

/// Bytes that tell a plaintext BitTorrent handshake from MSE.
const FIRST_BYTES: usize = 20;

impl Session {
    /// Queues what an outgoing connection sends first: our BitTorrent
    /// handshake, or the first MSE message with that handshake kept as the
    /// initial payload.
    pub(super) fn open_outgoing(&mut self, token: Token) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        let opening = self
            .candidates
            .opening(&peer.addr)
            .unwrap_or(self.cfg.encryption.first_opening());
        let ours = self.cfg.handshake();
        let policy = self.cfg.encryption.initiator_policy();
        match (opening, policy) {
            (Opening::Mse, Some(policy)) => {
                let mut initial_payload = Vec::new();
                ours.encode(&mut initial_payload);
                let mut hs = mse::Handshake::initiator(
                    policy,
                    self.cfg.info_hash,
                    initial_payload,
                    &mut self.rng,
                )
                .expect("a BitTorrent handshake fits in the initial payload");
                peer.out.vec().extend_from_slice(&hs.take_output());
                peer.mse = Some(Box::new(hs));
                peer.opening = Opening::Mse;
            }
            _ => {
                ours.encode(peer.out.vec());
                peer.opening = Opening::Plaintext;
            }
        }
    }

    /// Bytes before the BitTorrent handshake: the first bytes of an
    /// incoming connection, or the MSE handshake in either direction.
    pub(super) fn on_negotiation_data(&mut self, token: Token, data: &[u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        if peer.mse.is_some() {
            self.mse_receive(token, data, now);
            return;
        }
        // Incoming, nothing sent yet: the first bytes decide.
        let mut first = std::mem::take(&mut peer.inbuf);
        let take = FIRST_BYTES.saturating_sub(first.len()).min(data.len());
        first.extend_from_slice(&data[..take]);
        match classify_first_bytes(&first) {
            FirstBytes::NeedMore => peer.inbuf = first,
            FirstBytes::PlainBitTorrent => {
                if !self.cfg.encryption.accepts_plaintext() {
                    self.fail(token, CloseReason::PlaintextRefused, now);
                    return;
                }
                peer.opening = Opening::Plaintext;
                peer.state = PeerState::Handshaking;
                self.cfg.handshake().encode(peer.out.vec());
                // The bytes read so far start the peer's handshake frame.
                peer.inbuf = first;
                self.on_stream(token, &data[take..], now);
            }
            FirstBytes::Encrypted => {
                let Some(policy) = self.cfg.encryption.receiver_policy() else {
                    self.fail(token, CloseReason::EncryptionRefused, now);
                    return;
                };
                peer.opening = Opening::Mse;
                peer.mse = Some(Box::new(mse::Handshake::receiver(
                    policy,
                    &[self.cfg.info_hash],
                    &mut self.rng,
                )));
                first.extend_from_slice(&data[take..]);
                self.mse_receive(token, &first, now);
            }
        }
    }

    /// Feeds the MSE handshake; when it completes, installs the ciphers,
    /// queues our BitTorrent handshake if the peer initiated, and passes
    /// the bytes that came after the handshake on to framing.
    fn mse_receive(&mut self, token: Token, data: &[u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        let hs = peer.mse.as_mut().expect("an MSE handshake runs");
        let progress = hs.receive(data);
        let reply = hs.take_output();
        peer.out.vec().extend_from_slice(&reply);
        let established = match progress {
            Ok(Progress::Pending) => return,
            Ok(Progress::Done(established)) => established,
            Err(e) => {
                self.fail(token, CloseReason::Mse(e), now);
                return;
            }
        };
        peer.mse = None;
        peer.mse_method = Some(established.method);
        let (encrypt, decrypt) = established.cipher.into_halves();
        if let Some(c) = encrypt {
            peer.out.encrypt_from_here(c);
        }
        peer.decrypt = decrypt;
        peer.state = PeerState::Handshaking;
        if !peer.outgoing {
            self.cfg.handshake().encode(peer.out.vec());
        }
        log::debug!(
            "{}: MSE handshake done ({:?})",
            peer.addr,
            established.method
        );
        self.on_stream(token, &established.received, now);
    }
}

#[cfg(test)]
mod tests;

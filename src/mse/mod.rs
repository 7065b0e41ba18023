//! Message Stream Encryption (MSE, also called Protocol Encryption): the
//! obfuscated handshake of Vuze/Azureus that BitTorrent clients run before
//! the BitTorrent handshake, sans-IO.
//!
//! This module owns the types both roles share: crypto methods and the
//! policy choosing among them, the negotiated [`StreamCipher`], the
//! [`Established`] outcome, the typed [`MseError`], and the helper telling
//! a plaintext BitTorrent connection from an MSE one by its first bytes.
//! The state machine itself is [`Handshake`] (in `handshake.rs`); the
//! arithmetic and ciphers are in `bignum`, `dh` and `rc4`.
//!
//! The exchange, A the initiator and B the receiver:
//!
//! ```text
//! 1 A->B: Ya, PadA
//! 2 B->A: Yb, PadB
//! 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! 5 A->B: ENCRYPT2(payload)
//! ```
//!
//! ENCRYPT is RC4 keyed with HASH('keyA', S, SKEY) from A and
//! HASH('keyB', S, SKEY) from B, the first 1024 keystream bytes dropped;
//! ENCRYPT2 is that same stream when RC4 was selected, nothing when
//! plaintext was.
//!
//! How a connection uses it (the bytes would go through a socket):
//!
//! ```
//! use bt::mse::{classify_first_bytes, FirstBytes, Handshake, Policy, Progress};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let info_hash = [0x11; 20];
//! let bt_handshake = b"\x13BitTorrent protocol...".to_vec();
//! let mut a = Handshake::initiator(Policy::REQUIRE_RC4, info_hash, bt_handshake.clone(), &mut rng)?;
//! let mut b = Handshake::receiver(Policy::ALLOW, &[info_hash], &mut rng);
//!
//! let first = a.take_output(); // Ya, PadA
//! assert_eq!(classify_first_bytes(&first), FirstBytes::Encrypted);
//! let Progress::Pending = b.receive(&first)? else { unreachable!() };
//! let Progress::Pending = a.receive(&b.take_output())? else { unreachable!() };
//! let Progress::Done(mut at_b) = b.receive(&a.take_output())? else { unreachable!() };
//! let Progress::Done(mut at_a) = a.receive(&b.take_output())? else { unreachable!() };
//!
//! assert_eq!(at_b.received, bt_handshake); // IA, decrypted
//! let mut message = *b"interested";
//! at_a.cipher.encrypt(&mut message);
//! at_b.cipher.decrypt(&mut message);
//! assert_eq!(&message, b"interested");
//! # Ok::<(), bt::mse::MseError>(())
//! ```

pub mod bignum;
pub mod dh;
mod handshake;
pub mod rc4;

pub use handshake::{Handshake, Progress, SkeyLookup};

use crate::sha1::Sha1;
use rc4::Rc4;

/// Length of the info-hash (SKEY) and of every HASH.
pub const HASH_LEN: usize = 20;
/// The largest padding (PadA, PadB, PadC, PadD) the specification allows.
pub const MAX_PAD_LEN: usize = 512;
/// The largest initial payload (IA): its length travels in two bytes.
pub const MAX_INITIAL_PAYLOAD_LEN: usize = u16::MAX as usize;
/// The verification constant VC: eight zero bytes.
pub const VC: [u8; 8] = [0; 8];
/// Keystream bytes each RC4 drops before use.
pub const RC4_DISCARD: usize = 1024;

/// The most bytes a receiver reads before the handshake ends: Ya, PadA,
/// the two hashes, VC, crypto_provide, len(PadC), PadC, len(IA), IA.
pub const RECEIVER_MAX_HANDSHAKE_LEN: usize = dh::KEY_LEN
    + MAX_PAD_LEN
    + 2 * HASH_LEN
    + VC.len()
    + 4
    + 2
    + MAX_PAD_LEN
    + 2
    + MAX_INITIAL_PAYLOAD_LEN;
/// The most bytes an initiator reads before the handshake ends: Yb, PadB,
/// VC, crypto_select, len(PadD), PadD.
pub const INITIATOR_MAX_HANDSHAKE_LEN: usize =
    dh::KEY_LEN + MAX_PAD_LEN + VC.len() + 4 + 2 + MAX_PAD_LEN;

/// What protects the stream after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Only the handshake was obfuscated; the BitTorrent stream is clear.
    Plaintext,
    /// The whole stream is RC4-encrypted.
    Rc4,
}

impl Method {
    /// The bit of this method in crypto_provide / crypto_select.
    pub const fn bit(self) -> u32 {
        match self {
            Method::Plaintext => 0x01,
            Method::Rc4 => 0x02,
        }
    }
}

/// A set of crypto methods, as the crypto_provide bit field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Methods(u32);

impl Methods {
    pub const NONE: Methods = Methods(0);
    pub const PLAINTEXT: Methods = Methods(Method::Plaintext.bit());
    pub const RC4: Methods = Methods(Method::Rc4.bit());
    pub const BOTH: Methods = Methods(Method::Plaintext.bit() | Method::Rc4.bit());

    /// The known methods among the bits (unknown bits, reserved for future
    /// methods, are ignored).
    pub const fn from_bits(bits: u32) -> Methods {
        Methods(bits & Methods::BOTH.0)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }

    pub const fn intersect(self, other: Methods) -> Methods {
        Methods(self.0 & other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which methods we offer (as initiator) or accept (as receiver), and which
/// one a receiver picks when the peer offers both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub allowed: Methods,
    pub preferred: Method,
    /// The largest PadA/PadB/PadC/PadD we send (clamped to
    /// [`MAX_PAD_LEN`]); each pad's length is drawn from 0..=this.
    pub max_pad_len: usize,
}

impl Policy {
    /// Both methods, preferring plaintext when the peer offers it: the
    /// handshake hides the connection, the stream costs no cipher.
    pub const ALLOW: Policy = Policy {
        allowed: Methods::BOTH,
        preferred: Method::Plaintext,
        max_pad_len: MAX_PAD_LEN,
    };
    /// Both methods, preferring RC4 when the peer offers it.
    pub const PREFER_RC4: Policy = Policy {
        allowed: Methods::BOTH,
        preferred: Method::Rc4,
        max_pad_len: MAX_PAD_LEN,
    };
    /// RC4 only: a peer offering only plaintext is refused.
    pub const REQUIRE_RC4: Policy = Policy {
        allowed: Methods::RC4,
        preferred: Method::Rc4,
        max_pad_len: MAX_PAD_LEN,
    };
    /// The obfuscated handshake followed by a clear stream, only.
    pub const PLAINTEXT_ONLY: Policy = Policy {
        allowed: Methods::PLAINTEXT,
        preferred: Method::Plaintext,
        max_pad_len: MAX_PAD_LEN,
    };

    /// The same policy with shorter padding (for tests and tuning).
    pub const fn with_max_pad_len(mut self, max_pad_len: usize) -> Policy {
        self.max_pad_len = max_pad_len;
        self
    }

    /// The receiver's choice among what the peer provides.
    pub fn select(&self, provided: Methods) -> Result<Method, MseError> {
        let common = provided.intersect(self.allowed);
        if common.contains(self.preferred) {
            Ok(self.preferred)
        } else if common.contains(Method::Rc4) {
            Ok(Method::Rc4)
        } else if common.contains(Method::Plaintext) {
            Ok(Method::Plaintext)
        } else {
            Err(MseError::NoCommonMethod {
                provided: provided.bits(),
                allowed: self.allowed.bits(),
            })
        }
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::ALLOW
    }
}

/// Why a handshake failed. Every failure of the peer is detected within the
/// bytes the specification allows, and ends the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    #[error("the peer's Diffie-Hellman public key is degenerate or not below P")]
    BadPublicKey,
    #[error("HASH('req1', S) not found within {MAX_PAD_LEN} bytes of padding after Ya")]
    Req1NotFound,
    #[error("the encrypted verification constant not found within {MAX_PAD_LEN} bytes of padding after Yb")]
    VcNotFound,
    #[error("the decrypted verification constant is not zero")]
    BadVerificationConstant,
    #[error("the peer's info-hash is not one we serve")]
    UnknownInfoHash,
    #[error("padding of {0} bytes announced; at most {MAX_PAD_LEN} are allowed")]
    PadTooLong(usize),
    #[error("no common crypto method: the peer provides {provided:#x}, we allow {allowed:#x}")]
    NoCommonMethod { provided: u32, allowed: u32 },
    #[error("the peer selected crypto method {selected:#x}; we offered {offered:#x}")]
    BadCryptoSelect { selected: u32, offered: u32 },
    #[error("our initial payload has {0} bytes; at most {MAX_INITIAL_PAYLOAD_LEN} fit")]
    InitialPayloadTooLong(usize),
    #[error("the handshake already ended")]
    Finished,
}

/// The negotiated protection of the BitTorrent stream: RC4 in each
/// direction, or nothing.
pub struct StreamCipher {
    // Boxed: the states are 258 bytes each and the outcome moves around.
    outgoing: Option<Box<Rc4>>,
    incoming: Option<Box<Rc4>>,
}

impl StreamCipher {
    /// No encryption (plaintext selected, or a connection without MSE).
    pub fn plaintext() -> StreamCipher {
        StreamCipher {
            outgoing: None,
            incoming: None,
        }
    }

    fn rc4(outgoing: Rc4, incoming: Rc4) -> StreamCipher {
        StreamCipher {
            outgoing: Some(Box::new(outgoing)),
            incoming: Some(Box::new(incoming)),
        }
    }

    pub fn method(&self) -> Method {
        if self.outgoing.is_some() {
            Method::Rc4
        } else {
            Method::Plaintext
        }
    }

    /// Encrypts bytes we are about to send, in place, continuing the stream.
    pub fn encrypt(&mut self, buf: &mut [u8]) {
        if let Some(c) = &mut self.outgoing {
            c.apply(buf);
        }
    }

    /// Decrypts bytes we received, in place, continuing the stream.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        if let Some(c) = &mut self.incoming {
            c.apply(buf);
        }
    }

    /// The two directions apart, `(outgoing, incoming)`, `None` where the
    /// stream is clear: a connection encrypts where it queues output and
    /// decrypts where it reads, two places that each own their half.
    pub fn into_halves(self) -> (Option<Box<Rc4>>, Option<Box<Rc4>>) {
        (self.outgoing, self.incoming)
    }
}

impl std::fmt::Debug for StreamCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamCipher({:?})", self.method())
    }
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established {
    pub method: Method,
    /// SKEY: the info-hash we asked for (initiator) or the one the peer
    /// asked for among ours (receiver).
    pub info_hash: [u8; HASH_LEN],
    /// Encrypts what we send and decrypts what we receive from now on.
    pub cipher: StreamCipher,
    /// BitTorrent-stream bytes that arrived with the handshake, already
    /// decrypted: for a receiver the peer's initial payload (IA) first.
    /// They come before anything read later from the connection.
    pub received: Vec<u8>,
}

/// What a receiver's first bytes say about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstBytes {
    /// Too few bytes to tell yet.
    NeedMore,
    /// A BitTorrent handshake in the clear.
    PlainBitTorrent,
    /// Anything else: an MSE handshake (or garbage, which MSE refuses).
    Encrypted,
}

/// The first 20 bytes of a plaintext BitTorrent handshake.
const PLAIN_HEADER: &[u8; 20] = b"\x13BitTorrent protocol";

/// Classifies a receiver's first bytes: a plaintext BitTorrent handshake
/// starts with `\x13BitTorrent protocol`; MSE starts with Ya, which matches
/// that by chance with negligible probability.
pub fn classify_first_bytes(bytes: &[u8]) -> FirstBytes {
    let n = bytes.len().min(PLAIN_HEADER.len());
    if bytes[..n] != PLAIN_HEADER[..n] {
        FirstBytes::Encrypted
    } else if n < PLAIN_HEADER.len() {
        FirstBytes::NeedMore
    } else {
        FirstBytes::PlainBitTorrent
    }
}

/// SHA-1 of the concatenated parts: the specification's HASH.
fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// HASH('req2', SKEY): how an initiator names the torrent. A receiver with
/// many torrents can key a map by it and pass the map to
/// [`Handshake::receiver_with_lookup`].
pub fn skey_hash(info_hash: &[u8; HASH_LEN]) -> [u8; HASH_LEN] {
    hash(&[b"req2", info_hash])
}

/// An RC4 keyed with HASH(label, S, SKEY), its first 1024 bytes dropped.
fn stream_key(label: &[u8], secret: &[u8], info_hash: &[u8; HASH_LEN]) -> Rc4 {
    let mut c = Rc4::new(&hash(&[label, secret, info_hash]));
    c.discard(RC4_DISCARD);
    c
}

#[cfg(test)]
mod tests;

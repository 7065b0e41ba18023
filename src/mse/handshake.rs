//! The MSE handshake state machine for both roles, sans-IO: bytes in
//! through [`Handshake::receive`], bytes out through
//! [`Handshake::take_output`], and an [`Established`] outcome or a typed
//! [`MseError`]. No sockets, no clocks: the caller applies its timeouts.
//!
//! Memory is bounded by the specification, never by what the peer
//! declares: each state holds at most the bytes it may need (Ya/Yb, a
//! padding window of 512 bytes plus the marker searched for, a 512-byte
//! pad, an initial payload of at most 65535 bytes), and whatever the peer
//! sends beyond that is refused when its field is parsed.

use rand::{Rng, RngCore};

use super::dh::{KeyPair, KEY_LEN};
use super::rc4::Rc4;
use super::{
    hash, skey_hash, stream_key, Established, Method, Methods, MseError, Policy, StreamCipher,
    HASH_LEN, MAX_INITIAL_PAYLOAD_LEN, MAX_PAD_LEN, VC,
};

/// Finds the info-hash (SKEY) whose HASH('req2', SKEY) is given; `None`
/// when we serve no such torrent.
pub type SkeyLookup = Box<dyn Fn(&[u8; HASH_LEN]) -> Option<[u8; HASH_LEN]> + Send>;

/// What [`Handshake::receive`] reached.
#[derive(Debug)]
pub enum Progress {
    /// The handshake goes on: send [`Handshake::take_output`], read more.
    Pending,
    /// The handshake is complete. Send [`Handshake::take_output`] (the
    /// receiver's last message) before anything encrypted with the cipher.
    Done(Established),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Both roles: the peer's public key, 96 bytes.
    PeerKey,
    /// Receiver: scanning PadA for HASH('req1', S).
    FindReq1,
    /// Receiver: HASH('req2', SKEY) xor HASH('req3', S).
    Skey,
    /// Receiver: VC, crypto_provide, len(PadC).
    Provide,
    /// Receiver: PadC.
    PadC {
        len: usize,
    },
    /// Receiver: len(IA).
    InitialPayloadLen,
    /// Receiver: IA.
    InitialPayload {
        len: usize,
    },
    /// Initiator: scanning PadB for ENCRYPT(VC).
    FindVc,
    /// Initiator: crypto_select, len(PadD).
    Select,
    /// Initiator: PadD.
    PadD {
        len: usize,
    },
    Done,
    Failed,
}

/// What the peer's public key yields.
struct Secrets {
    /// S, 96 bytes.
    secret: [u8; KEY_LEN],
    /// HASH('req1', S): sent by the initiator, the marker ending PadA for
    /// the receiver.
    req1: [u8; HASH_LEN],
    /// Initiator: ENCRYPT(VC), the marker ending PadB.
    encrypted_vc: [u8; 8],
}

/// One side of an MSE handshake.
pub struct Handshake {
    initiator: bool,
    policy: Policy,
    state: State,
    keys: KeyPair,
    /// Received bytes not consumed yet (bounded by the state's capacity).
    pending: Vec<u8>,
    /// FindReq1 and FindVc: how many leading bytes of `pending` are known
    /// not to start the marker, so that a peer sending its padding a byte
    /// at a time costs a linear scan, not a quadratic one.
    searched: usize,
    /// Bytes for the caller to send.
    output: Vec<u8>,
    /// Initiator: the torrent asked for. Receiver: the one matched.
    info_hash: Option<[u8; HASH_LEN]>,
    /// Receiver only.
    lookup: Option<SkeyLookup>,
    /// Initiator: IA to send. Receiver: IA received, decrypted.
    initial_payload: Vec<u8>,
    /// PadA (initiator) or PadB (receiver): random bytes drawn at
    /// construction, so that the RNG is not needed afterwards.
    our_outer_pad: Vec<u8>,
    /// Length of the PadC (initiator) or PadD (receiver) we send (zeros,
    /// encrypted: the specification reserves their content).
    our_inner_pad_len: usize,
    secrets: Option<Secrets>,
    outgoing: Option<Rc4>,
    incoming: Option<Rc4>,
    /// Receiver: the method chosen from crypto_provide.
    selected: Option<Method>,
}

impl Handshake {
    /// The connecting side. `info_hash` is the torrent (SKEY);
    /// `initial_payload` (IA) is sent encrypted with the third message,
    /// normally the BitTorrent handshake. The first message is ready in
    /// [`Handshake::take_output`] at once.
    pub fn initiator(
        policy: Policy,
        info_hash: [u8; HASH_LEN],
        initial_payload: Vec<u8>,
        rng: &mut impl RngCore,
    ) -> Result<Handshake, MseError> {
        if initial_payload.len() > MAX_INITIAL_PAYLOAD_LEN {
            return Err(MseError::InitialPayloadTooLong(initial_payload.len()));
        }
        let mut hs = Handshake::new(true, policy, rng);
        hs.info_hash = Some(info_hash);
        hs.initial_payload = initial_payload;
        // Message 1: Ya, PadA.
        hs.output.extend_from_slice(&hs.keys.public_bytes());
        hs.output.append(&mut hs.our_outer_pad);
        Ok(hs)
    }

    /// The accepting side, serving the torrents in `info_hashes`. It sends
    /// nothing until the peer's key arrives: feed it the connection's first
    /// bytes once [`super::classify_first_bytes`] said
    /// [`super::FirstBytes::Encrypted`].
    pub fn receiver(
        policy: Policy,
        info_hashes: &[[u8; HASH_LEN]],
        rng: &mut impl RngCore,
    ) -> Handshake {
        let table: Vec<([u8; HASH_LEN], [u8; HASH_LEN])> =
            info_hashes.iter().map(|ih| (skey_hash(ih), *ih)).collect();
        let lookup: SkeyLookup = Box::new(move |req2: &[u8; HASH_LEN]| {
            table
                .iter()
                .find(|(hashed, _)| hashed == req2)
                .map(|(_, ih)| *ih)
        });
        Handshake::receiver_with_lookup(policy, lookup, rng)
    }

    /// Like [`Handshake::receiver`], with a lookup from HASH('req2', SKEY)
    /// (see [`super::skey_hash`]) to the info-hash.
    pub fn receiver_with_lookup(
        policy: Policy,
        lookup: SkeyLookup,
        rng: &mut impl RngCore,
    ) -> Handshake {
        let mut hs = Handshake::new(false, policy, rng);
        hs.lookup = Some(lookup);
        hs
    }

    fn new(initiator: bool, policy: Policy, rng: &mut impl RngCore) -> Handshake {
        let max_pad = policy.max_pad_len.min(MAX_PAD_LEN);
        let mut our_outer_pad = vec![0u8; rng.gen_range(0..=max_pad)];
        rng.fill_bytes(&mut our_outer_pad);
        Handshake {
            initiator,
            policy,
            state: State::PeerKey,
            keys: KeyPair::generate(rng),
            pending: Vec::new(),
            searched: 0,
            output: Vec::new(),
            info_hash: None,
            lookup: None,
            initial_payload: Vec::new(),
            our_outer_pad,
            our_inner_pad_len: rng.gen_range(0..=max_pad),
            secrets: None,
            outgoing: None,
            incoming: None,
            selected: None,
        }
    }

    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// Received bytes held while waiting for the rest of a field (at most
    /// the largest field the specification allows).
    pub fn buffered_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes to send now (empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Feeds received bytes. On [`Progress::Done`], the bytes after the
    /// handshake (in this call and earlier ones) are in
    /// [`Established::received`], decrypted. After `Done` or an error, the
    /// handshake takes no more bytes.
    pub fn receive(&mut self, mut input: &[u8]) -> Result<Progress, MseError> {
        if matches!(self.state, State::Done | State::Failed) {
            return Err(MseError::Finished);
        }
        loop {
            let room = self.capacity().saturating_sub(self.pending.len());
            let take = room.min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            match self.advance() {
                Err(e) => {
                    self.state = State::Failed;
                    self.pending = Vec::new();
                    self.output.clear();
                    return Err(e);
                }
                Ok(true) if self.state == State::Done => {
                    return Ok(Progress::Done(self.finish(input)));
                }
                Ok(true) => {}
                // A state only stalls below its capacity, so all input
                // was taken.
                Ok(false) => return Ok(Progress::Pending),
            }
        }
    }

    /// How many unconsumed bytes the current state may hold.
    fn capacity(&self) -> usize {
        match self.state {
            State::PeerKey => KEY_LEN,
            State::FindReq1 => MAX_PAD_LEN + HASH_LEN,
            State::Skey => HASH_LEN,
            State::Provide => VC.len() + 4 + 2,
            State::PadC { len } | State::PadD { len } => len,
            State::InitialPayloadLen => 2,
            State::InitialPayload { len } => len,
            State::FindVc => MAX_PAD_LEN + VC.len(),
            State::Select => 4 + 2,
            State::Done | State::Failed => 0,
        }
    }

    /// Moves on by one state if the pending bytes allow; `Ok(false)` when
    /// more bytes are needed.
    fn advance(&mut self) -> Result<bool, MseError> {
        let need = self.capacity();
        match self.state {
            State::FindReq1 => return self.find_req1(),
            State::FindVc => return self.find_vc(),
            State::Done | State::Failed => return Ok(false),
            _ if self.pending.len() < need => return Ok(false),
            _ => {}
        }
        match self.state {
            State::PeerKey => {
                let peer: [u8; KEY_LEN] = self.pending[..KEY_LEN].try_into().unwrap();
                self.pending.drain(..KEY_LEN);
                self.on_peer_key(&peer)?;
            }
            State::Skey => {
                let mut req2 = self.consume_clear(HASH_LEN);
                let secrets = self.secrets.as_ref().expect("secret known");
                let req3 = hash(&[b"req3", &secrets.secret]);
                for (b, m) in req2.iter_mut().zip(req3) {
                    *b ^= m;
                }
                let req2: [u8; HASH_LEN] = req2.try_into().unwrap();
                let lookup = self.lookup.as_ref().expect("receiver has a lookup");
                let info_hash = lookup(&req2).ok_or(MseError::UnknownInfoHash)?;
                self.info_hash = Some(info_hash);
                let secret = secrets.secret;
                self.incoming = Some(stream_key(b"keyA", &secret, &info_hash));
                self.outgoing = Some(stream_key(b"keyB", &secret, &info_hash));
                self.state = State::Provide;
            }
            State::Provide => {
                let fields = self.consume_decrypted(need);
                if fields[..8] != VC {
                    return Err(MseError::BadVerificationConstant);
                }
                let provided = u32::from_be_bytes(fields[8..12].try_into().unwrap());
                self.selected = Some(self.policy.select(Methods::from_bits(provided))?);
                let pad_len = u16::from_be_bytes([fields[12], fields[13]]) as usize;
                if pad_len > MAX_PAD_LEN {
                    return Err(MseError::PadTooLong(pad_len));
                }
                self.state = State::PadC { len: pad_len };
            }
            State::PadC { len } => {
                // Reserved for extensions: decrypted to keep the keystream
                // in step, otherwise ignored.
                self.consume_decrypted(len);
                self.state = State::InitialPayloadLen;
            }
            State::InitialPayloadLen => {
                let len = self.consume_decrypted(2);
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                self.state = State::InitialPayload { len };
            }
            State::InitialPayload { len } => {
                self.initial_payload = self.consume_decrypted(len);
                self.send_select();
                self.state = State::Done;
            }
            State::Select => {
                let fields = self.consume_decrypted(need);
                let selected = u32::from_be_bytes(fields[..4].try_into().unwrap());
                // Exactly one method, and one we offered.
                let method = [Method::Plaintext, Method::Rc4]
                    .into_iter()
                    .find(|m| m.bit() == selected && self.policy.allowed.contains(*m))
                    .ok_or(MseError::BadCryptoSelect {
                        selected,
                        offered: self.policy.allowed.bits(),
                    })?;
                self.selected = Some(method);
                let pad_len = u16::from_be_bytes([fields[4], fields[5]]) as usize;
                if pad_len > MAX_PAD_LEN {
                    return Err(MseError::PadTooLong(pad_len));
                }
                self.state = State::PadD { len: pad_len };
            }
            State::PadD { len } => {
                self.consume_decrypted(len);
                self.state = State::Done;
            }
            State::FindReq1 | State::FindVc | State::Done | State::Failed => unreachable!(),
        }
        Ok(true)
    }

    /// The peer's key is in: derive S, then send message 2 (receiver) or
    /// message 3 (initiator).
    fn on_peer_key(&mut self, peer: &[u8; KEY_LEN]) -> Result<(), MseError> {
        let secret = self.keys.shared_secret(peer)?;
        let mut secrets = Secrets {
            secret,
            req1: hash(&[b"req1", &secret]),
            encrypted_vc: [0; 8],
        };
        if self.initiator {
            let info_hash = self.info_hash.expect("initiator knows its torrent");
            let mut outgoing = stream_key(b"keyA", &secret, &info_hash);
            let incoming = stream_key(b"keyB", &secret, &info_hash);
            // VC is zeros, so its encryption is the keystream itself.
            incoming.clone().apply(&mut secrets.encrypted_vc);
            // Message 3.
            self.output.extend_from_slice(&secrets.req1);
            let req3 = hash(&[b"req3", &secret]);
            let req2 = skey_hash(&info_hash);
            self.output
                .extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
            let start = self.output.len();
            self.output.extend_from_slice(&VC);
            self.output
                .extend_from_slice(&self.policy.allowed.bits().to_be_bytes());
            self.output
                .extend_from_slice(&(self.our_inner_pad_len as u16).to_be_bytes());
            self.output
                .resize(self.output.len() + self.our_inner_pad_len, 0);
            self.output
                .extend_from_slice(&(self.initial_payload.len() as u16).to_be_bytes());
            self.output.extend_from_slice(&self.initial_payload);
            outgoing.apply(&mut self.output[start..]);
            self.initial_payload = Vec::new();
            self.outgoing = Some(outgoing);
            self.incoming = Some(incoming);
            self.state = State::FindVc;
        } else {
            // Message 2: Yb, PadB.
            self.output.extend_from_slice(&self.keys.public_bytes());
            self.output.append(&mut self.our_outer_pad);
            self.state = State::FindReq1;
        }
        self.secrets = Some(secrets);
        Ok(())
    }

    /// Receiver: the marker HASH('req1', S) ends PadA.
    fn find_req1(&mut self) -> Result<bool, MseError> {
        let marker = self.secrets.as_ref().expect("secret known").req1;
        match self.find_pending(&marker) {
            Some(at) => {
                self.pending.drain(..at + marker.len());
                self.state = State::Skey;
                Ok(true)
            }
            None if self.pending.len() >= MAX_PAD_LEN + HASH_LEN => Err(MseError::Req1NotFound),
            None => Ok(false),
        }
    }

    /// Initiator: ENCRYPT(VC) ends PadB; the incoming keystream moves past it.
    fn find_vc(&mut self) -> Result<bool, MseError> {
        let marker = self.secrets.as_ref().expect("secret known").encrypted_vc;
        match self.find_pending(&marker) {
            Some(at) => {
                self.pending.drain(..at);
                self.consume_decrypted(VC.len());
                self.state = State::Select;
                Ok(true)
            }
            None if self.pending.len() >= MAX_PAD_LEN + VC.len() => Err(MseError::VcNotFound),
            None => Ok(false),
        }
    }

    /// The first position of `marker` in `pending`, resuming where the
    /// last call stopped (the bytes before stay as they were: the search
    /// states only append until the marker is found).
    fn find_pending(&mut self, marker: &[u8]) -> Option<usize> {
        let found = find(&self.pending[self.searched..], marker).map(|at| self.searched + at);
        self.searched = match found {
            Some(_) => 0,
            None => self.pending.len().saturating_sub(marker.len() - 1),
        };
        found
    }

    /// Receiver: message 4, ENCRYPT(VC, crypto_select, len(PadD), PadD).
    fn send_select(&mut self) {
        let method = self.selected.expect("selected with crypto_provide");
        let start = self.output.len();
        self.output.extend_from_slice(&VC);
        self.output.extend_from_slice(&method.bit().to_be_bytes());
        self.output
            .extend_from_slice(&(self.our_inner_pad_len as u16).to_be_bytes());
        self.output
            .resize(self.output.len() + self.our_inner_pad_len, 0);
        self.outgoing
            .as_mut()
            .expect("keys known")
            .apply(&mut self.output[start..]);
    }

    fn consume_clear(&mut self, n: usize) -> Vec<u8> {
        self.pending.drain(..n).collect()
    }

    fn consume_decrypted(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = self.consume_clear(n);
        self.incoming
            .as_mut()
            .expect("keys known")
            .apply(&mut bytes);
        bytes
    }

    /// Builds the outcome: the rest of the bytes belong to the BitTorrent
    /// stream, protected by the selected method.
    fn finish(&mut self, rest: &[u8]) -> Established {
        let method = self.selected.expect("a method was selected");
        let outgoing = self.outgoing.take().expect("keys known");
        let incoming = self.incoming.take().expect("keys known");
        let mut cipher = match method {
            Method::Rc4 => StreamCipher::rc4(outgoing, incoming),
            Method::Plaintext => StreamCipher::plaintext(),
        };
        let mut received = std::mem::take(&mut self.initial_payload);
        let stream_start = received.len();
        received.append(&mut self.pending);
        received.extend_from_slice(rest);
        cipher.decrypt(&mut received[stream_start..]);
        self.secrets = None;
        Established {
            method,
            info_hash: self.info_hash.expect("info-hash known"),
            cipher,
            received,
        }
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("initiator", &self.initiator)
            .field("state", &self.state)
            .field("pending", &self.pending.len())
            .field("output", &self.output.len())
            .finish()
    }
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

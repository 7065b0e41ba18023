//! The peer wire protocol (BEP 3) with the fast extension (BEP 6) and the
//! extension protocol handshake (BEP 10): handshake, message parsing and
//! encoding. Pure functions over byte slices; no I/O.
//!
//! Parsing borrows from the input (a `Piece` message's data is a slice of
//! the caller's read buffer), so the hot path copies block data once, into
//! the piece buffer.

use crate::bencode::{self, OwnedValue};

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// The size of the blocks we request (and the largest we expect back).
pub const BLOCK_LEN: u32 = 16 * 1024;
/// The largest block a peer may request from us.
pub const MAX_REQUEST_LEN: u32 = 128 * 1024;
/// The largest extension-protocol message we accept.
pub const MAX_EXTENDED_LEN: usize = 64 * 1024;

/// The BEP 10 extended message id of the handshake.
pub const EXT_HANDSHAKE: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a BitTorrent handshake (protocol string missing)")]
    NotBitTorrent,
    #[error("message of {len} bytes is longer than the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("message id {id} has a wrong length ({len} bytes)")]
    BadLength { id: u8, len: usize },
}

/// The 68-byte handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Our handshake: fast extension and extension protocol advertised.
    pub fn ours(info_hash: [u8; 20], peer_id: [u8; 20]) -> Handshake {
        let mut reserved = [0u8; 8];
        reserved[5] |= 0x10; // BEP 10
        reserved[7] |= 0x04; // BEP 6
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(19);
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.info_hash);
        out.extend_from_slice(&self.peer_id);
    }

    pub fn parse(b: &[u8]) -> Result<Handshake, WireError> {
        if b.len() < HANDSHAKE_LEN || b[0] != 19 || &b[1..20] != PROTOCOL {
            return Err(WireError::NotBitTorrent);
        }
        let mut h = Handshake {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        h.reserved.copy_from_slice(&b[20..28]);
        h.info_hash.copy_from_slice(&b[28..48]);
        h.peer_id.copy_from_slice(&b[48..68]);
        Ok(h)
    }

    pub fn fast(&self) -> bool {
        self.reserved[7] & 0x04 != 0
    }

    pub fn extended(&self) -> bool {
        self.reserved[5] & 0x10 != 0
    }

    /// BEP 5: the peer runs a DHT node (and may send `port`).
    pub fn dht(&self) -> bool {
        self.reserved[7] & 0x01 != 0
    }
}

/// One peer message, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(&'a [u8]),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        data: &'a [u8],
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    Port(u16),
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject {
        index: u32,
        begin: u32,
        length: u32,
    },
    AllowedFast(u32),
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    /// A message id we do not know (ignored, as BEP 3 asks).
    Unknown {
        id: u8,
    },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Length of the next frame (4-byte prefix included) if the prefix is there.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 4).then(|| be32(buf) as usize + 4)
}

/// Parses one message from the start of `buf`. `Ok(None)` means more bytes
/// are needed; the `usize` is how many bytes the message took. Messages
/// longer than `max_len` (payload and id) are refused before being buffered.
pub fn parse(buf: &[u8], max_len: usize) -> Result<Option<(Message<'_>, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = be32(buf) as usize;
    if len > max_len {
        return Err(WireError::TooLong { len, max: max_len });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    if len == 0 {
        return Ok(Some((Message::KeepAlive, 4)));
    }
    let id = buf[4];
    let p = &buf[5..4 + len];
    let fixed = |n: usize| {
        if p.len() == n {
            Ok(())
        } else {
            Err(WireError::BadLength { id, len })
        }
    };
    let msg = match id {
        0 => fixed(0).map(|_| Message::Choke)?,
        1 => fixed(0).map(|_| Message::Unchoke)?,
        2 => fixed(0).map(|_| Message::Interested)?,
        3 => fixed(0).map(|_| Message::NotInterested)?,
        4 => fixed(4).map(|_| Message::Have(be32(p)))?,
        5 => Message::Bitfield(p),
        6 | 8 | 16 => {
            fixed(12)?;
            let (index, begin, length) = (be32(p), be32(&p[4..]), be32(&p[8..]));
            match id {
                6 => Message::Request {
                    index,
                    begin,
                    length,
                },
                8 => Message::Cancel {
                    index,
                    begin,
                    length,
                },
                _ => Message::Reject {
                    index,
                    begin,
                    length,
                },
            }
        }
        7 => {
            if p.len() < 8 {
                return Err(WireError::BadLength { id, len });
            }
            Message::Piece {
                index: be32(p),
                begin: be32(&p[4..]),
                data: &p[8..],
            }
        }
        9 => fixed(2).map(|_| Message::Port(u16::from_be_bytes([p[0], p[1]])))?,
        13 => fixed(4).map(|_| Message::Suggest(be32(p)))?,
        14 => fixed(0).map(|_| Message::HaveAll)?,
        15 => fixed(0).map(|_| Message::HaveNone)?,
        17 => fixed(4).map(|_| Message::AllowedFast(be32(p)))?,
        20 => {
            if p.is_empty() {
                return Err(WireError::BadLength { id, len });
            }
            Message::Extended {
                id: p[0],
                payload: &p[1..],
            }
        }
        other => Message::Unknown { id: other },
    };
    Ok(Some((msg, 4 + len)))
}

fn put_header(out: &mut Vec<u8>, len: u32, id: u8) {
    out.extend_from_slice(&len.to_be_bytes());
    out.push(id);
}

/// Appends the encoding of `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, id| put_header(out, 1, id);
    let triple = |out: &mut Vec<u8>, id, a: u32, b: u32, c: u32| {
        put_header(out, 13, id);
        out.extend_from_slice(&a.to_be_bytes());
        out.extend_from_slice(&b.to_be_bytes());
        out.extend_from_slice(&c.to_be_bytes());
    };
    let single = |out: &mut Vec<u8>, id, a: u32| {
        put_header(out, 5, id);
        out.extend_from_slice(&a.to_be_bytes());
    };
    match *msg {
        Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
        Message::Choke => simple(out, 0),
        Message::Unchoke => simple(out, 1),
        Message::Interested => simple(out, 2),
        Message::NotInterested => simple(out, 3),
        Message::Have(i) => single(out, 4, i),
        Message::Bitfield(b) => {
            put_header(out, 1 + b.len() as u32, 5);
            out.extend_from_slice(b);
        }
        Message::Request {
            index,
            begin,
            length,
        } => triple(out, 6, index, begin, length),
        Message::Piece { index, begin, data } => {
            piece_header(index, begin, data.len() as u32, out);
            out.extend_from_slice(data);
        }
        Message::Cancel {
            index,
            begin,
            length,
        } => triple(out, 8, index, begin, length),
        Message::Port(p) => {
            put_header(out, 3, 9);
            out.extend_from_slice(&p.to_be_bytes());
        }
        Message::Suggest(i) => single(out, 13, i),
        Message::HaveAll => simple(out, 14),
        Message::HaveNone => simple(out, 15),
        Message::Reject {
            index,
            begin,
            length,
        } => triple(out, 16, index, begin, length),
        Message::AllowedFast(i) => single(out, 17, i),
        Message::Extended { id, payload } => {
            put_header(out, 2 + payload.len() as u32, 20);
            out.push(id);
            out.extend_from_slice(payload);
        }
        Message::Unknown { id } => simple(out, id),
    }
}

/// The 13-byte header of a `piece` message carrying `len` bytes of data.
pub fn piece_header(index: u32, begin: u32, len: u32, out: &mut Vec<u8>) {
    put_header(out, 9 + len, 7);
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&begin.to_be_bytes());
}

/// Extension names a peer may list in its `m` dictionary that we keep.
const MAX_EXT_NAMES: usize = 32;
const MAX_EXT_NAME_LEN: usize = 64;

/// What a BEP 10 extension handshake told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    pub client: Option<String>,
    pub listen_port: Option<u16>,
    pub reqq: Option<u32>,
    /// The `m` dictionary: extension name and the id the peer wants it
    /// sent with (0: the peer disables it). Bounded in count and length.
    pub extensions: Vec<(String, u8)>,
    /// `metadata_size` (BEP 9): the info dictionary's length, when the
    /// peer has it (any non-negative value; the metadata extension judges).
    pub metadata_size: Option<u64>,
}

impl ExtHandshake {
    /// The peer's id for extension `name` (0 when not supported).
    pub fn id_of(&self, name: &str) -> u8 {
        self.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |&(_, id)| id)
    }
}

/// Our BEP 10 handshake: the extensions we take (`m`: name and our id for
/// each), client name, listen port, request queue length, and whatever
/// else the extensions add to the dictionary (`extra`).
pub fn encode_ext_handshake(
    client: &str,
    port: u16,
    reqq: u32,
    extensions: &[(&str, u8)],
    extra: impl FnOnce(&mut OwnedValue),
) -> Vec<u8> {
    let mut m = OwnedValue::dict();
    for &(name, id) in extensions {
        m.insert(name, i64::from(id));
    }
    let mut d = OwnedValue::dict();
    extra(&mut d);
    d.insert("m", m);
    d.insert("v", client);
    d.insert("p", i64::from(port));
    d.insert("reqq", i64::from(reqq));
    d.encode()
}

/// Reads what we use from a BEP 10 handshake; garbage yields `None`.
pub fn parse_ext_handshake(payload: &[u8]) -> Option<ExtHandshake> {
    let doc = bencode::Decoder::new()
        .max_depth(8)
        .allow_trailing(true)
        .decode(payload)
        .ok()?;
    let root = doc.root;
    root.as_dict()?;
    let client = root.get("v").and_then(|v| v.as_bytes()).map(|b| {
        String::from_utf8_lossy(&b[..b.len().min(64)])
            .chars()
            .filter(|c| !c.is_control())
            .collect()
    });
    let listen_port = root
        .get("p")
        .and_then(|v| v.as_int())
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0);
    let reqq = root
        .get("reqq")
        .and_then(|v| v.as_int())
        .and_then(|q| u32::try_from(q).ok());
    let extensions = root
        .get("m")
        .and_then(|m| m.as_dict())
        .unwrap_or(&[])
        .iter()
        .filter_map(|(name, id)| {
            let name = std::str::from_utf8(name).ok()?;
            let id = u8::try_from(id.as_int()?).ok()?;
            (name.len() <= MAX_EXT_NAME_LEN).then(|| (name.to_string(), id))
        })
        .take(MAX_EXT_NAMES)
        .collect();
    let metadata_size = root
        .get("metadata_size")
        .and_then(|v| v.as_int())
        .and_then(|n| u64::try_from(n).ok());
    Some(ExtHandshake {
        client,
        listen_port,
        reqq,
        extensions,
        metadata_size,
    })
}

/// A client name from an Azureus-style peer id (`-XX1234-`), e.g. `qB 4.5.2`.
pub fn client_from_peer_id(id: &[u8; 20]) -> String {
    if id[0] == b'-' && id[7] == b'-' && id[1..7].iter().all(|c| c.is_ascii_alphanumeric()) {
        let code = String::from_utf8_lossy(&id[1..3]);
        let version: Vec<String> = id[3..7].iter().map(|&c| (c as char).to_string()).collect();
        let name = match &*code {
            "BT" => "bt",
            "qB" => "qBittorrent",
            "TR" => "Transmission",
            "LT" | "lt" => "libtorrent",
            "UT" => "µTorrent",
            "DE" => "Deluge",
            _ => return format!("{} {}", code, version.join(".")),
        };
        return format!("{name} {}", version.join("."));
    }
    if id.starts_with(b"A2-") {
        return "aria2".into();
    }
    crate::hex::encode(&id[..8])
}

/// Our peer id: `-BT0100-` and 12 random alphanumeric characters.
pub fn make_peer_id(rng: &mut impl rand::Rng) -> [u8; 20] {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-BT0100-");
    for b in &mut id[8..] {
        *b = ALPHABET[rng.gen_range(0..ALPHABET.len())];
    }
    id
}

/// Whether a peer id is one of ours (any version of this program): such
/// peers follow the same piece split when fetching from a seed. "-BT0"
/// leaves out BitTorrent Inc.'s own clients ("-BT7…").
pub fn is_own_peer_id(id: &[u8; 20]) -> bool {
    id.starts_with(OWN_PEER_ID_PREFIX)
}

const OWN_PEER_ID_PREFIX: &[u8] = b"-BT0";

#[cfg(test)]
mod tests {
    use super::*;

    fn round(msg: Message) {
        let mut out = Vec::new();
        encode(&msg, &mut out);
        let (back, used) = parse(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(back, msg);
        assert_eq!(used, out.len());
    }

    #[test]
    fn messages_round_trip() {
        round(Message::KeepAlive);
        round(Message::Choke);
        round(Message::Unchoke);
        round(Message::Interested);
        round(Message::NotInterested);
        round(Message::Have(7));
        round(Message::Bitfield(&[0xff, 0x80]));
        round(Message::Request {
            index: 1,
            begin: 16384,
            length: 16384,
        });
        round(Message::Piece {
            index: 2,
            begin: 0,
            data: b"hello",
        });
        round(Message::Cancel {
            index: 1,
            begin: 2,
            length: 3,
        });
        round(Message::Port(6881));
        round(Message::Suggest(3));
        round(Message::HaveAll);
        round(Message::HaveNone);
        round(Message::Reject {
            index: 1,
            begin: 2,
            length: 3,
        });
        round(Message::AllowedFast(9));
        round(Message::Extended {
            id: 0,
            payload: b"de",
        });
    }

    #[test]
    fn partial_and_hostile_input() {
        let mut out = Vec::new();
        encode(&Message::Have(7), &mut out);
        for cut in 0..out.len() {
            assert_eq!(parse(&out[..cut], 100).unwrap(), None);
        }
        assert!(matches!(
            parse(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(WireError::TooLong { .. })
        ));
        assert!(matches!(
            parse(&[0, 0, 0, 2, 4, 1], 100),
            Err(WireError::BadLength { id: 4, .. })
        ));
        assert!(matches!(
            parse(&[0, 0, 0, 5, 7, 0, 0, 0, 0], 100),
            Err(WireError::BadLength { id: 7, .. })
        ));
        assert_eq!(
            parse(&[0, 0, 0, 1, 99], 100).unwrap().unwrap().0,
            Message::Unknown { id: 99 }
        );
    }

    #[test]
    fn handshake() {
        let h = Handshake::ours([1; 20], [2; 20]);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out.len(), HANDSHAKE_LEN);
        let back = Handshake::parse(&out).unwrap();
        assert_eq!(back, h);
        assert!(back.fast() && back.extended());
        out[3] = b'x';
        assert!(Handshake::parse(&out).is_err());
    }

    #[test]
    fn ext_handshake() {
        let e = encode_ext_handshake("bt 0.1.0", 6881, 250, &[("ut_pex", 2), ("x_a", 1)], |d| {
            d.insert("metadata_size", 1234i64);
        });
        let p = parse_ext_handshake(&e).unwrap();
        assert_eq!(p.client.as_deref(), Some("bt 0.1.0"));
        assert_eq!(p.listen_port, Some(6881));
        assert_eq!(p.reqq, Some(250));
        assert_eq!(p.id_of("ut_pex"), 2);
        assert_eq!(p.id_of("x_a"), 1);
        assert_eq!(p.id_of("ut_metadata"), 0);
        let doc = crate::bencode::decode(&e).unwrap();
        assert_eq!(
            doc.get("metadata_size").and_then(|v| v.as_int()),
            Some(1234)
        );
        // A hostile `m` is bounded and ids out of range are dropped.
        let mut m = String::from("d1:md");
        for i in 0..100 {
            m.push_str(&format!("3:e{i:02}i{}e", i * 7));
        }
        m.push_str("ee");
        let p = parse_ext_handshake(m.as_bytes()).unwrap();
        assert_eq!(p.extensions.len(), 32);
        assert!(p.extensions.iter().all(|(_, id)| *id as u32 <= 255));
        assert!(parse_ext_handshake(b"garbage").is_none());
        assert_eq!(
            client_from_peer_id(b"-qB4520-abcdefghijkl"),
            "qBittorrent 4.5.2.0"
        );
    }

    #[test]
    fn peer_id() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let id = make_peer_id(&mut rng);
        assert!(id.starts_with(b"-BT0100-"));
        assert!(id[8..].iter().all(|c| c.is_ascii_alphanumeric()));
    }
}

//! KRPC (BEP 5): the bencoded query, response and error messages of the DHT,
//! node ids and their XOR distance, and compact node and peer info.
//!
//! Decoding never trusts the packet: it is refused above [`MAX_PACKET`]
//! bytes, every field is checked for type and length, `nodes` and `values`
//! are cut to [`MAX_NODES`] and [`MAX_VALUES`], and every failure is a typed
//! [`KrpcError`]. Only IPv4 is handled (`nodes6` is ignored).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::bencode::{Decoder, OwnedValue, Value};

/// Largest datagram decoded. A BEP 5 message with 8 nodes and 100 peers
/// fits well within an Ethernet MTU; anything bigger is not from a sane node.
pub const MAX_PACKET: usize = 1500;
/// Most nodes kept from one `nodes` string (BEP 5 answers with k = 8).
pub const MAX_NODES: usize = 16;
/// Most peers kept from one `values` list.
pub const MAX_VALUES: usize = 100;
/// Longest transaction id accepted (ours are 2 bytes; others use up to 4).
pub const MAX_TID: usize = 16;
/// Longest token accepted from another node.
pub const MAX_TOKEN: usize = 64;
/// Length of one compact node info: 20-byte id, 4-byte IPv4, 2-byte port.
pub const COMPACT_NODE_LEN: usize = 26;

/// A 160-bit node id or info-hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; 20]);

impl Id {
    /// The XOR distance to `other`, comparable as a big-endian number.
    pub fn distance(&self, other: &Id) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        d
    }

    /// How many leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix_len(&self, other: &Id) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// Bit `i` (0 = most significant).
    pub fn bit(&self, i: usize) -> bool {
        self.0[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// This id with bit `i` flipped.
    pub fn flip_bit(mut self, i: usize) -> Id {
        self.0[i / 8] ^= 0x80 >> (i % 8);
        self
    }

    fn from_slice(b: &[u8]) -> Option<Id> {
        <[u8; 20]>::try_from(b).ok().map(Id)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::hex::encode(&self.0))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::hex::encode(&self.0))
    }
}

/// A node: its id and UDP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeInfo {
    pub id: Id,
    pub addr: SocketAddrV4,
}

/// A KRPC message: transaction id, optional client version, and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub tid: Vec<u8>,
    pub version: Option<Vec<u8>>,
    /// BEP 43: the sender does not answer queries.
    pub read_only: bool,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Query(Query),
    Response(Response),
    Error { code: i64, message: String },
}

/// The queries of BEP 5; every one carries the querying node's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Ping {
        id: Id,
    },
    FindNode {
        id: Id,
        target: Id,
    },
    GetPeers {
        id: Id,
        info_hash: Id,
    },
    AnnouncePeer {
        id: Id,
        info_hash: Id,
        port: u16,
        implied_port: bool,
        token: Vec<u8>,
    },
    /// A method we do not know (answered with error 204).
    Unknown {
        id: Id,
        method: String,
    },
}

impl Query {
    /// The id of the querying node.
    pub fn sender(&self) -> Id {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::Unknown { id, .. } => *id,
        }
    }

    pub fn method(&self) -> &str {
        match self {
            Query::Ping { .. } => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
            Query::Unknown { method, .. } => method,
        }
    }
}

/// A response. KRPC responses do not name their query, so this holds the
/// union of what the four answers can carry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Response {
    pub id: Id,
    pub nodes: Vec<NodeInfo>,
    pub values: Vec<SocketAddrV4>,
    pub token: Option<Vec<u8>>,
}

/// Error codes of BEP 5.
pub mod error_code {
    pub const GENERIC: i64 = 201;
    pub const SERVER: i64 = 202;
    pub const PROTOCOL: i64 = 203;
    pub const METHOD_UNKNOWN: i64 = 204;
}

/// Why a datagram is not a usable KRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    #[error("datagram of {0} bytes is over the {MAX_PACKET}-byte limit")]
    TooLarge(usize),
    #[error("{0}")]
    Bencode(#[from] crate::bencode::DecodeError),
    #[error("message is not a dictionary")]
    NotDict,
    #[error("missing field '{0}'")]
    Missing(&'static str),
    #[error("field '{0}' has the wrong type or length")]
    Invalid(&'static str),
    #[error("unknown message type")]
    UnknownType,
}

impl Message {
    /// Bencodes the message (dictionaries sorted, as BEP 3 wants).
    pub fn encode(&self) -> Vec<u8> {
        let mut top = OwnedValue::dict();
        top.insert("t", self.tid.clone());
        if let Some(v) = &self.version {
            top.insert("v", v.clone());
        }
        if self.read_only {
            top.insert("ro", 1);
        }
        match &self.body {
            Body::Query(q) => {
                top.insert("y", "q");
                top.insert("q", q.method());
                let mut a = OwnedValue::dict();
                a.insert("id", q.sender().0.to_vec());
                match q {
                    Query::Ping { .. } | Query::Unknown { .. } => {}
                    Query::FindNode { target, .. } => {
                        a.insert("target", target.0.to_vec());
                    }
                    Query::GetPeers { info_hash, .. } => {
                        a.insert("info_hash", info_hash.0.to_vec());
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                        ..
                    } => {
                        a.insert("info_hash", info_hash.0.to_vec());
                        a.insert("port", i64::from(*port));
                        a.insert("token", token.clone());
                        if *implied_port {
                            a.insert("implied_port", 1);
                        }
                    }
                }
                top.insert("a", a);
            }
            Body::Response(r) => {
                top.insert("y", "r");
                let mut d = OwnedValue::dict();
                d.insert("id", r.id.0.to_vec());
                if !r.nodes.is_empty() {
                    d.insert("nodes", encode_nodes(&r.nodes));
                }
                if !r.values.is_empty() {
                    let values: Vec<OwnedValue> = r
                        .values
                        .iter()
                        .map(|p| OwnedValue::Bytes(encode_peer(p).to_vec()))
                        .collect();
                    d.insert("values", values);
                }
                if let Some(t) = &r.token {
                    d.insert("token", t.clone());
                }
                top.insert("r", d);
            }
            Body::Error { code, message } => {
                top.insert("y", "e");
                top.insert(
                    "e",
                    vec![OwnedValue::Int(*code), OwnedValue::from(message.as_str())],
                );
            }
        }
        top.encode()
    }

    /// Decodes one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Message, KrpcError> {
        if bytes.len() > MAX_PACKET {
            return Err(KrpcError::TooLarge(bytes.len()));
        }
        let doc = Decoder::new().max_depth(8).decode(bytes)?;
        let root = &doc.root;
        if root.as_dict().is_none() {
            return Err(KrpcError::NotDict);
        }
        let tid = bytes_field(root, "t")?;
        if tid.len() > MAX_TID {
            return Err(KrpcError::Invalid("t"));
        }
        let version = match root.get("v") {
            Some(v) => Some(v.as_bytes().ok_or(KrpcError::Invalid("v"))?.to_vec()),
            None => None,
        };
        let read_only = root.get("ro").and_then(Value::as_int) == Some(1);
        let body = match bytes_field(root, "y")? {
            b"q" => Body::Query(decode_query(root)?),
            b"r" => Body::Response(decode_response(
                root.get("r").ok_or(KrpcError::Missing("r"))?,
            )?),
            b"e" => {
                let list = root
                    .get("e")
                    .ok_or(KrpcError::Missing("e"))?
                    .as_list()
                    .ok_or(KrpcError::Invalid("e"))?;
                let code = list
                    .first()
                    .and_then(Value::as_int)
                    .ok_or(KrpcError::Invalid("e"))?;
                let message = list
                    .get(1)
                    .and_then(Value::as_bytes)
                    .map(|b| bounded_text(b, 200))
                    .unwrap_or_default();
                Body::Error { code, message }
            }
            _ => return Err(KrpcError::UnknownType),
        };
        Ok(Message {
            tid: tid.to_vec(),
            version,
            read_only,
            body,
        })
    }
}

/// Text from a peer's bytes: lossy UTF-8 of at most `max` bytes, cut at a
/// character boundary to stay within `max` bytes once encoded (a byte that
/// is not UTF-8 becomes a 3-byte U+FFFD), so that re-encoding the message
/// decodes to the same text.
fn bounded_text(b: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned();
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn bytes_field<'a>(d: &Value<'a>, key: &'static str) -> Result<&'a [u8], KrpcError> {
    d.get(key)
        .ok_or(KrpcError::Missing(key))?
        .as_bytes()
        .ok_or(KrpcError::Invalid(key))
}

fn id_field(d: &Value<'_>, key: &'static str) -> Result<Id, KrpcError> {
    Id::from_slice(bytes_field(d, key)?).ok_or(KrpcError::Invalid(key))
}

fn decode_query(root: &Value<'_>) -> Result<Query, KrpcError> {
    let method = bytes_field(root, "q")?;
    let a = root.get("a").ok_or(KrpcError::Missing("a"))?;
    if a.as_dict().is_none() {
        return Err(KrpcError::Invalid("a"));
    }
    let id = id_field(a, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: id_field(a, "target")?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: id_field(a, "info_hash")?,
        },
        b"announce_peer" => {
            let token = bytes_field(a, "token")?;
            if token.len() > MAX_TOKEN {
                return Err(KrpcError::Invalid("token"));
            }
            let implied_port = match a.get("implied_port") {
                None => false,
                Some(v) => v.as_int().ok_or(KrpcError::Invalid("implied_port"))? != 0,
            };
            // With implied_port the port field may be anything (even absent).
            let port = match a.get("port").and_then(Value::as_int) {
                Some(p) => u16::try_from(p).map_err(|_| KrpcError::Invalid("port"))?,
                None if implied_port => 0,
                None => return Err(KrpcError::Missing("port")),
            };
            Query::AnnouncePeer {
                id,
                info_hash: id_field(a, "info_hash")?,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        other => Query::Unknown {
            id,
            method: bounded_text(other, 32),
        },
    })
}

fn decode_response(r: &Value<'_>) -> Result<Response, KrpcError> {
    if r.as_dict().is_none() {
        return Err(KrpcError::Invalid("r"));
    }
    let id = id_field(r, "id")?;
    let nodes = match r.get("nodes") {
        Some(v) => decode_nodes(v.as_bytes().ok_or(KrpcError::Invalid("nodes"))?)?,
        None => Vec::new(),
    };
    let values = match r.get("values") {
        Some(v) => {
            let list = v.as_list().ok_or(KrpcError::Invalid("values"))?;
            let mut peers = Vec::new();
            for item in list.iter().take(MAX_VALUES) {
                let b = item.as_bytes().ok_or(KrpcError::Invalid("values"))?;
                // Ignore IPv6 peers (18 bytes); anything else is broken.
                match b.len() {
                    6 => peers.push(decode_peer(b)),
                    18 => {}
                    _ => return Err(KrpcError::Invalid("values")),
                }
            }
            peers
        }
        None => Vec::new(),
    };
    let token = match r.get("token") {
        Some(v) => {
            let t = v.as_bytes().ok_or(KrpcError::Invalid("token"))?;
            if t.len() > MAX_TOKEN {
                return Err(KrpcError::Invalid("token"));
            }
            Some(t.to_vec())
        }
        None => None,
    };
    Ok(Response {
        id,
        nodes,
        values,
        token,
    })
}

/// Compact node info: 26 bytes per node; at most [`MAX_NODES`] are kept.
pub fn decode_nodes(b: &[u8]) -> Result<Vec<NodeInfo>, KrpcError> {
    if b.len() % COMPACT_NODE_LEN != 0 {
        return Err(KrpcError::Invalid("nodes"));
    }
    Ok(b.chunks_exact(COMPACT_NODE_LEN)
        .take(MAX_NODES)
        .map(|c| NodeInfo {
            id: Id::from_slice(&c[..20]).unwrap_or_default(),
            addr: decode_peer(&c[20..]),
        })
        .collect())
}

pub fn encode_nodes(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * COMPACT_NODE_LEN);
    for n in nodes {
        out.extend_from_slice(&n.id.0);
        out.extend_from_slice(&encode_peer(&n.addr));
    }
    out
}

/// Compact peer info: IPv4 and port, 6 bytes big-endian. `b` must be 6 bytes.
pub fn decode_peer(b: &[u8]) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    )
}

pub fn encode_peer(p: &SocketAddrV4) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[..4].copy_from_slice(&p.ip().octets());
    out[4..].copy_from_slice(&p.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &[u8; 20]) -> Id {
        Id(*s)
    }

    #[test]
    fn bep5_examples_decode() {
        // The example messages of BEP 5.
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let m = Message::decode(ping).unwrap();
        assert_eq!(m.tid, b"aa");
        assert_eq!(
            m.body,
            Body::Query(Query::Ping {
                id: id(b"abcdefghij0123456789")
            })
        );
        assert_eq!(m.encode(), ping.to_vec());

        let pong = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        let m = Message::decode(pong).unwrap();
        assert_eq!(
            m.body,
            Body::Response(Response {
                id: id(b"mnopqrstuvwxyz123456"),
                ..Response::default()
            })
        );
        assert_eq!(m.encode(), pong.to_vec());

        let find = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
        let m = Message::decode(find).unwrap();
        assert!(matches!(m.body, Body::Query(Query::FindNode { .. })));
        assert_eq!(m.encode(), find.to_vec());

        let gp = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
        let m = Message::decode(gp).unwrap();
        assert!(matches!(m.body, Body::Query(Query::GetPeers { .. })));
        assert_eq!(m.encode(), gp.to_vec());

        let values = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
        let m = Message::decode(values).unwrap();
        let Body::Response(r) = &m.body else { panic!() };
        assert_eq!(r.token.as_deref(), Some(&b"aoeusnth"[..]));
        assert_eq!(r.values.len(), 2);
        assert_eq!(r.values[0], decode_peer(b"axje.u"));
        assert_eq!(m.encode(), values.to_vec());

        let announce = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        let m = Message::decode(announce).unwrap();
        assert_eq!(
            m.body,
            Body::Query(Query::AnnouncePeer {
                id: id(b"abcdefghij0123456789"),
                info_hash: id(b"mnopqrstuvwxyz123456"),
                port: 6881,
                implied_port: true,
                token: b"aoeusnth".to_vec(),
            })
        );
        assert_eq!(m.encode(), announce.to_vec());

        let err = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let m = Message::decode(err).unwrap();
        assert_eq!(
            m.body,
            Body::Error {
                code: 201,
                message: "A Generic Error Ocurred".into()
            }
        );
        assert_eq!(m.encode(), err.to_vec());
    }

    #[test]
    fn round_trip_with_nodes() {
        let nodes: Vec<NodeInfo> = (0..8u8)
            .map(|i| NodeInfo {
                id: Id([i; 20]),
                addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 1000 + u16::from(i)),
            })
            .collect();
        let m = Message {
            tid: vec![1, 2],
            version: Some(b"BT01".to_vec()),
            read_only: true,
            body: Body::Response(Response {
                id: Id([9; 20]),
                nodes: nodes.clone(),
                values: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5)],
                token: Some(vec![7; 8]),
            }),
        };
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn hostile_messages_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"garbage",
            b"i42e",
            b"le",
            b"d1:t2:aae",
            b"d1:t2:aa1:y1:xe",
            b"d1:t2:aa1:y1:qe",
            // id of 19 bytes
            b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe",
            // nodes not a multiple of 26
            b"d1:rd2:id20:abcdefghij01234567895:nodes5:abcdee1:t2:aa1:y1:re",
            // values entry of a bad length
            b"d1:rd2:id20:abcdefghij01234567896:valuesl3:abcee1:t2:aa1:y1:re",
            // a string claiming more than is there
            b"d1:rd2:id20:abcdefghij01234567895:nodes99999999:e1:t2:aa1:y1:re",
            // deeply nested
            &[b'l'; 100],
        ];
        for c in cases {
            assert!(
                Message::decode(c).is_err(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
        let big = vec![b'd'; MAX_PACKET + 1];
        assert_eq!(
            Message::decode(&big),
            Err(KrpcError::TooLarge(MAX_PACKET + 1))
        );
    }

    #[test]
    fn mutated_messages_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let samples: Vec<Vec<u8>> = vec![
            b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe".to_vec(),
            b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re".to_vec(),
            b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee".to_vec(),
        ];
        for _ in 0..20_000 {
            let mut m = samples[rng.gen_range(0..samples.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..m.len());
                match rng.gen_range(0..3) {
                    0 => m[i] = rng.gen(),
                    1 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, rng.gen()),
                }
            }
            if let Ok(msg) = Message::decode(&m) {
                // Whatever decodes re-encodes to something that decodes alike.
                assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);
            }
        }
    }

    #[test]
    fn nodes_and_values_are_capped() {
        // 50 nodes fit in the packet limit; only MAX_NODES are kept.
        let nodes: Vec<NodeInfo> = (0..50u8)
            .map(|i| NodeInfo {
                id: Id([i; 20]),
                addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 1),
            })
            .collect();
        let mut msg = b"d1:rd2:id20:abcdefghij01234567895:nodes".to_vec();
        let n = encode_nodes(&nodes);
        msg.extend_from_slice(format!("{}:", n.len()).as_bytes());
        msg.extend_from_slice(&n);
        msg.extend_from_slice(b"e1:t2:aa1:y1:re");
        let m = Message::decode(&msg).unwrap();
        let Body::Response(r) = m.body else { panic!() };
        assert_eq!(r.nodes.len(), MAX_NODES);

        let mut msg = b"d1:rd2:id20:abcdefghij01234567896:valuesl".to_vec();
        for i in 0..150u8 {
            msg.extend_from_slice(b"6:");
            msg.extend_from_slice(&[10, 0, 0, i, 0, 1]);
        }
        msg.extend_from_slice(b"ee1:t2:aa1:y1:re");
        assert!(msg.len() < MAX_PACKET);
        let Body::Response(r) = Message::decode(&msg).unwrap().body else {
            panic!()
        };
        assert_eq!(r.values.len(), MAX_VALUES);
    }

    #[test]
    fn distance_and_prefix() {
        let a = Id([0; 20]);
        let b = a.flip_bit(9);
        assert_eq!(a.common_prefix_len(&b), 9);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert!(b.bit(9) && !b.bit(8));
        assert_eq!(a.distance(&b)[1], 0x40);
    }
}

//! Magnet links (BEP 9, with the `x.pe` peer addresses of BEP 9's
//! extension list): parsing `magnet:?xt=urn:btih:…&dn=…&tr=…&x.pe=…` into
//! an info-hash, a display name, trackers and peers, with errors that name
//! the parameter at fault. Also the JSON form `bt-meta info` prints, and
//! the `.torrent` file rebuilt from a magnet's trackers and a fetched info
//! dictionary.

use std::net::SocketAddr;

use crate::bencode::OwnedValue;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: [u8; 20],
    /// `dn`: a display name, only a hint until the metadata arrives.
    pub name: Option<String>,
    /// `tr`: tracker URLs, in the order given, without repeats.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses given as IP literals.
    pub peers: Vec<SocketAddr>,
    /// `x.pe`: peers given by host name (`host:port`), resolved by the
    /// program that uses them.
    pub peer_hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with \"magnet:?\")")]
    NotMagnet,
    #[error("no xt=urn:btih:… parameter (the info-hash)")]
    NoInfoHash,
    #[error("xt: {0:?} is not a BitTorrent info-hash (expected urn:btih: and 40 hex or 32 base32 characters)")]
    BadInfoHash(String),
    #[error("xt: two different info-hashes ({0} and {1})")]
    TwoInfoHashes(String, String),
    #[error("{key}: bad percent-encoding in {value:?}")]
    BadEncoding { key: String, value: String },
    #[error("x.pe: {0:?} is not a peer address (IP:PORT, [IPv6]:PORT or HOST:PORT)")]
    BadPeer(String),
    #[error("tr: {0:?} is not a tracker URL (scheme://…)")]
    BadTracker(String),
    #[error("parameter {0:?} has no '='")]
    NoValue(String),
}

/// Decodes `%XX` escapes (and `+` as a space, as forms encode it).
fn percent_decode(key: &str, value: &str) -> Result<String, MagnetError> {
    let bad = || MagnetError::BadEncoding {
        key: key.to_string(),
        value: value.to_string(),
    };
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                let b = crate::hex::decode(hex).ok_or_else(bad)?;
                out.push(b[0]);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// `host:port` with a DNS name (letters, digits, hyphens, dots) and a
/// port from 1 to 65535.
fn is_host_port(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && host.chars().any(|c| c.is_ascii_alphabetic());
    port_ok && host_ok
}

/// RFC 4648 base32 (upper or lower case, no padding) of exactly 20 bytes.
fn base32_20(text: &str) -> Option<[u8; 20]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 20];
    let mut acc: u64 = 0;
    let mut bits = 0;
    let mut n = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn parse_hash(xt: &str) -> Result<Option<[u8; 20]>, MagnetError> {
    let lower = xt.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("urn:btih:") else {
        // urn:btmh: (BitTorrent v2) and other URNs: not ours.
        if lower.starts_with("urn:") && !lower.starts_with("urn:btih") {
            return Ok(None);
        }
        return Err(MagnetError::BadInfoHash(xt.to_string()));
    };
    let raw = &xt[xt.len() - rest.len()..];
    let hash = match raw.len() {
        40 => crate::hex::decode20(raw),
        32 => base32_20(raw),
        _ => None,
    };
    hash.map(Some)
        .ok_or_else(|| MagnetError::BadInfoHash(xt.to_string()))
}

impl Magnet {
    /// Parses a magnet link. Unknown parameters (`ws`, `xl`, `so`, …) are
    /// ignored; malformed known ones are errors.
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        let query = link
            .strip_prefix("magnet:?")
            .or_else(|| {
                link.get(..8)
                    .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
                    .map(|_| &link[8..])
            })
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash: Option<[u8; 20]> = None;
        let mut name = None;
        let mut trackers: Vec<String> = Vec::new();
        let mut peers = Vec::new();
        let mut peer_hosts = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = param.split_once('=') else {
                return Err(MagnetError::NoValue(param.to_string()));
            };
            // Numbered variants (`xt.1`, `tr.2`) as some links carry.
            let base = match key.split_once('.') {
                Some((b, n)) if n.bytes().all(|c| c.is_ascii_digit()) => b,
                _ => key,
            };
            match base {
                "xt" => {
                    let xt = percent_decode(key, value)?;
                    if let Some(h) = parse_hash(&xt)? {
                        match info_hash {
                            Some(prev) if prev != h => {
                                return Err(MagnetError::TwoInfoHashes(
                                    crate::hex::encode(&prev),
                                    crate::hex::encode(&h),
                                ))
                            }
                            _ => info_hash = Some(h),
                        }
                    }
                }
                "dn" => name = Some(percent_decode(key, value)?),
                "tr" => {
                    let url = percent_decode(key, value)?;
                    // Any scheme is kept (wss:// of WebTorrent too): the
                    // announcer says which it cannot use.
                    let scheme_ok = url.split_once("://").is_some_and(|(scheme, rest)| {
                        !rest.is_empty()
                            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                            && scheme
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    });
                    if !scheme_ok {
                        return Err(MagnetError::BadTracker(url));
                    }
                    if !trackers.contains(&url) {
                        trackers.push(url);
                    }
                }
                "x.pe" => {
                    let text = percent_decode(key, value)?;
                    if let Ok(addr) = text.parse::<SocketAddr>() {
                        if addr.port() == 0 {
                            return Err(MagnetError::BadPeer(text));
                        }
                        if !peers.contains(&addr) {
                            peers.push(addr);
                        }
                    } else if is_host_port(&text) {
                        if !peer_hosts.contains(&text) {
                            peer_hosts.push(text);
                        }
                    } else {
                        return Err(MagnetError::BadPeer(text));
                    }
                }
                _ => {}
            }
        }
        let info_hash = info_hash.ok_or(MagnetError::NoInfoHash)?;
        Ok(Magnet {
            info_hash,
            name,
            trackers,
            peers,
            peer_hosts,
        })
    }

    pub fn info_hash_hex(&self) -> String {
        crate::hex::encode(&self.info_hash)
    }

    /// Trackers in one tier each, as a torrent's announce-list holds them.
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        self.trackers.iter().map(|t| vec![t.clone()]).collect()
    }

    /// What `bt-meta info` prints for a magnet link.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "magnet": true,
            "info_hash": self.info_hash_hex(),
            "name": self.name,
            "trackers": self.trackers,
            "peers": self
                .peers
                .iter()
                .map(|p| p.to_string())
                .chain(self.peer_hosts.iter().cloned())
                .collect::<Vec<_>>(),
        })
    }

    /// A `.torrent` file: the fetched info dictionary (its bytes kept
    /// exactly, so the info-hash stays the same) with this link's
    /// trackers, one tier each.
    pub fn torrent_bytes(&self, info: &[u8]) -> Vec<u8> {
        torrent_file(info, &self.tracker_tiers())
    }
}

/// A `.torrent` file of an info dictionary's exact bytes and tracker
/// tiers: `announce` (the first tracker) and, with more than one tracker,
/// `announce-list` (BEP 12).
pub fn torrent_file(info: &[u8], tiers: &[Vec<String>]) -> Vec<u8> {
    let bytes = |b: &[u8]| OwnedValue::Bytes(b.to_vec());
    let mut out = Vec::with_capacity(info.len() + 256);
    out.push(b'd');
    let all: Vec<&String> = tiers.iter().flatten().collect();
    if let Some(first) = all.first() {
        bytes(b"announce").encode_into(&mut out);
        bytes(first.as_bytes()).encode_into(&mut out);
        if all.len() > 1 {
            bytes(b"announce-list").encode_into(&mut out);
            let list = OwnedValue::List(
                tiers
                    .iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| OwnedValue::List(t.iter().map(|u| bytes(u.as_bytes())).collect()))
                    .collect(),
            );
            list.encode_into(&mut out);
        }
    }
    bytes(b"info").encode_into(&mut out);
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// Whether a command-line argument names a magnet link rather than a file.
pub fn is_magnet(arg: &str) -> bool {
    arg.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn hex_link_with_everything() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{}&dn=Some+File%20%C3%A9&tr=http%3A%2F%2Ft.example%2Fannounce\
             &tr=udp://t2.example:80&tr=http%3A%2F%2Ft.example%2Fannounce&x.pe=10.0.0.1:6881\
             &x.pe=[::1]:7000&x.pe=peer.example:51413&tr=wss%3A%2F%2Fw.example&ws=http://x&xl=10",
            HEX.to_uppercase()
        ))
        .unwrap();
        assert_eq!(crate::hex::encode(&m.info_hash), HEX);
        assert_eq!(m.name.as_deref(), Some("Some File é"));
        assert_eq!(
            m.trackers,
            [
                "http://t.example/announce",
                "udp://t2.example:80",
                "wss://w.example"
            ]
        );
        assert_eq!(m.peer_hosts, ["peer.example:51413"]);
        assert_eq!(
            m.peers,
            [
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "[::1]:7000".parse().unwrap()
            ]
        );
        let j = m.to_json();
        assert_eq!(j["info_hash"], HEX);
        assert_eq!(j["peers"][1], "[::1]:7000");
        assert_eq!(j["peers"][2], "peer.example:51413");
    }

    #[test]
    fn base32_equals_hex() {
        // base32 of c12fe1c0… (RFC 4648 alphabet).
        let b32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";
        let a = Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap();
        let b = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", b32.to_lowercase())).unwrap();
        assert_eq!(crate::hex::encode(&a.info_hash), HEX);
        assert_eq!(a, b);
        assert_eq!(a.name, None);
    }

    #[test]
    fn hybrid_link_keeps_btih_and_ignores_btmh() {
        let m =
            Magnet::parse(&format!("magnet:?xt=urn:btmh:1220abcdef&xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(m.info_hash_hex(), HEX);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |s: &str| Magnet::parse(s).unwrap_err();
        assert_eq!(e("http://x"), MagnetError::NotMagnet);
        assert_eq!(e("magnet:?dn=x"), MagnetError::NoInfoHash);
        assert!(matches!(
            e("magnet:?xt=urn:btih:abcd"),
            MagnetError::BadInfoHash(_)
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{}", &HEX.replace('c', "g"))),
            MagnetError::BadInfoHash(_)
        ));
        assert!(matches!(
            e("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE1"),
            MagnetError::BadInfoHash(_)
        ));
        assert!(matches!(
            e(&format!(
                "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}",
                "0".repeat(40)
            )),
            MagnetError::TwoInfoHashes(..)
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&dn=%4")),
            MagnetError::BadEncoding { .. }
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&dn=%ff")),
            MagnetError::BadEncoding { .. }
        ));
        assert_eq!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=bad_host:1")),
            MagnetError::BadPeer("bad_host:1".into())
        );
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=host.example")),
            MagnetError::BadPeer(_)
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:99999")),
            MagnetError::BadPeer(_)
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:0")),
            MagnetError::BadPeer(_)
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&tr=tracker.example")),
            MagnetError::BadTracker(_)
        ));
        assert!(matches!(
            e(&format!("magnet:?xt=urn:btih:{HEX}&tr")),
            MagnetError::NoValue(_)
        ));
        let msg = e("magnet:?xt=urn:btih:abcd").to_string();
        assert!(msg.starts_with("xt:"), "{msg}");
    }

    #[test]
    fn torrent_bytes_keep_the_info_dictionary() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&tr=http://a/announce&tr=udp://b:1"
        ))
        .unwrap();
        let t = m.torrent_bytes(b"d4:name1:xe");
        assert_eq!(
            t,
            b"d8:announce17:http://a/announce13:announce-listll17:http://a/announceel9:udp://b:1ee4:infod4:name1:xee".to_vec()
        );
        assert!(is_magnet("MAGNET:?xt"));
        assert!(!is_magnet("file.torrent"));
    }
}

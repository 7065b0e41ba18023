//! Bencoded tracker answers (announce and scrape) and the compact peer
//! formats shared with UDP. Pure functions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::{AnnounceResponse, ErrorKind, Peer, ScrapeStats};
use crate::bencode::{Decoder, Kind, Value};

/// The interval used when a tracker gives none (30 minutes, a common default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);

/// Longest tracker message (failure reason, warning) shown.
const MAX_MESSAGE: usize = 1000;

/// Makes tracker text safe to print: lossy UTF-8, control characters
/// replaced, bounded in length.
pub fn clean_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out.trim().to_string()
}

/// The first bytes of an answer, for error messages about garbage.
fn snippet(body: &[u8]) -> String {
    let shown: String = body
        .iter()
        .take(60)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if body.len() > 60 {
        format!("{shown}...")
    } else {
        shown
    }
}

fn decode_dict(body: &[u8]) -> Result<Value<'_>, ErrorKind> {
    if body.is_empty() {
        return Err(ErrorKind::BadResponse("empty answer".into()));
    }
    // Some trackers end their answer with a newline: allow trailing bytes.
    let doc = Decoder::new()
        .max_depth(16)
        .allow_trailing(true)
        .decode(body)
        .map_err(|e| {
            ErrorKind::BadResponse(format!(
                "not bencoded ({e}); the answer begins with \"{}\"",
                snippet(body)
            ))
        })?;
    if doc.root.as_dict().is_none() {
        return Err(ErrorKind::BadResponse(format!(
            "expected a dictionary, got a {}",
            doc.root.type_name()
        )));
    }
    Ok(doc.root)
}

fn failure(root: &Value) -> Option<String> {
    root.get("failure reason").map(|v| match v.as_bytes() {
        Some(b) => clean_text(b),
        None => format!("(a failure reason that is a {})", v.type_name()),
    })
}

fn uint(root: &Value, key: &str) -> Result<Option<u64>, ErrorKind> {
    match root.get(key) {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            Some(n) => Err(ErrorKind::BadResponse(format!("'{key}' is negative ({n})"))),
            None => Err(ErrorKind::BadResponse(format!(
                "'{key}' is a {}, not an integer",
                v.type_name()
            ))),
        },
    }
}

/// Peers in the compact IPv4 form: 4 address bytes and 2 port bytes each.
/// Entries with port 0 are dropped; a partial entry at the end is ignored.
pub fn compact_v4(bytes: &[u8]) -> Vec<Peer> {
    if bytes.len() % 6 != 0 {
        log::debug!(
            "compact peer list of {} bytes is not a multiple of 6",
            bytes.len()
        );
    }
    bytes
        .chunks_exact(6)
        .filter_map(|c| {
            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            let port = u16::from_be_bytes([c[4], c[5]]);
            (port != 0).then(|| Peer {
                addr: SocketAddr::new(IpAddr::V4(ip), port),
                peer_id: None,
            })
        })
        .collect()
}

/// Peers in the compact IPv6 form (BEP 7): 16 address bytes and 2 port bytes.
pub fn compact_v6(bytes: &[u8]) -> Vec<Peer> {
    if bytes.len() % 18 != 0 {
        log::debug!(
            "compact peers6 list of {} bytes is not a multiple of 18",
            bytes.len()
        );
    }
    bytes
        .chunks_exact(18)
        .filter_map(|c| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&c[..16]);
            let port = u16::from_be_bytes([c[16], c[17]]);
            (port != 0).then(|| Peer {
                addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port),
                peer_id: None,
            })
        })
        .collect()
}

/// Peers in the original dictionary model: a list of `{peer id, ip, port}`.
/// Entries that are not usable (host names, bad ports) are skipped.
fn dictionary_peers(list: &[Value]) -> Vec<Peer> {
    let mut peers = Vec::new();
    for entry in list {
        let Some(ip) = entry.get("ip").and_then(|v| v.as_bytes()) else {
            log::debug!("peer entry without an ip skipped");
            continue;
        };
        let ip = match std::str::from_utf8(ip)
            .ok()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
        {
            Some(ip) => ip,
            None => match ip.len() {
                // Some trackers put the raw address bytes there.
                4 => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
                16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(ip);
                    IpAddr::V6(Ipv6Addr::from(a))
                }
                _ => {
                    log::debug!("peer with ip '{}' skipped (not an address)", clean_text(ip));
                    continue;
                }
            },
        };
        let port = match entry.get("port").and_then(|v| v.as_int()) {
            Some(p @ 1..=65535) => p as u16,
            _ => {
                log::debug!("peer {ip} without a valid port skipped");
                continue;
            }
        };
        let peer_id = entry
            .get("peer id")
            .and_then(|v| v.as_bytes())
            .and_then(|b| <[u8; 20]>::try_from(b).ok());
        peers.push(Peer {
            addr: SocketAddr::new(ip, port),
            peer_id,
        });
    }
    peers
}

/// Parses an announce answer's body.
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, ErrorKind> {
    let root = decode_dict(body)?;
    if let Some(reason) = failure(&root) {
        return Err(ErrorKind::Failure(reason));
    }
    let interval = match uint(&root, "interval")? {
        Some(s) => Duration::from_secs(s.min(u64::from(u32::MAX))),
        None => {
            log::debug!(
                "no interval in the answer; using {} s",
                DEFAULT_INTERVAL.as_secs()
            );
            DEFAULT_INTERVAL
        }
    };
    let min_interval =
        uint(&root, "min interval")?.map(|s| Duration::from_secs(s.min(u64::from(u32::MAX))));
    let mut peers = match root.get("peers") {
        None => Vec::new(),
        Some(v) => match &v.kind {
            Kind::Bytes(b) => compact_v4(b),
            Kind::List(list) => dictionary_peers(list),
            _ => {
                return Err(ErrorKind::BadResponse(format!(
                    "'peers' is a {}",
                    v.type_name()
                )))
            }
        },
    };
    match root.get("peers6") {
        None => {}
        Some(v) => match &v.kind {
            Kind::Bytes(b) => peers.extend(compact_v6(b)),
            Kind::List(list) => peers.extend(dictionary_peers(list)),
            _ => {
                return Err(ErrorKind::BadResponse(format!(
                    "'peers6' is a {}",
                    v.type_name()
                )))
            }
        },
    }
    let text = |key: &str| root.get(key).and_then(|v| v.as_bytes()).map(clean_text);
    Ok(AnnounceResponse {
        interval,
        min_interval,
        peers,
        complete: uint(&root, "complete")?,
        incomplete: uint(&root, "incomplete")?,
        tracker_id: root
            .get("tracker id")
            .and_then(|v| v.as_bytes())
            .map(|b| b[..b.len().min(256)].to_vec()),
        warning: text("warning message"),
    })
}

/// A `failure reason` in the body of an HTTP error answer, else the status.
fn status_error(body: &[u8], status: u16, reason: &str) -> ErrorKind {
    if let Ok(root) = decode_dict(body) {
        if let Some(reason) = failure(&root) {
            return ErrorKind::Failure(reason);
        }
    }
    ErrorKind::Status {
        status,
        reason: clean_text(reason.as_bytes()),
    }
}

/// Parses an HTTP announce answer (a failure reason is read also from an
/// error status, as some trackers send 400 with one).
pub fn parse_announce_http(
    body: &[u8],
    status: u16,
    reason: &str,
) -> Result<AnnounceResponse, ErrorKind> {
    if status != 200 {
        return Err(status_error(body, status, reason));
    }
    parse_announce(body)
}

/// Parses a scrape answer, returning the entries for `wanted`.
pub fn parse_scrape(body: &[u8], wanted: &[[u8; 20]]) -> Result<Vec<ScrapeStats>, ErrorKind> {
    let root = decode_dict(body)?;
    if let Some(reason) = failure(&root) {
        return Err(ErrorKind::Failure(reason));
    }
    let files = root.get("files").and_then(|f| f.as_dict()).ok_or_else(|| {
        ErrorKind::BadResponse("no 'files' dictionary in the scrape answer".into())
    })?;
    let mut stats = Vec::new();
    for (key, value) in files {
        let Ok(hash) = <[u8; 20]>::try_from(*key) else {
            continue;
        };
        if !wanted.is_empty() && !wanted.contains(&hash) {
            continue;
        }
        stats.push(ScrapeStats {
            info_hash: hash,
            complete: uint(value, "complete")?.unwrap_or(0),
            incomplete: uint(value, "incomplete")?.unwrap_or(0),
            downloaded: uint(value, "downloaded")?.unwrap_or(0),
        });
    }
    if stats.is_empty() && !wanted.is_empty() {
        return Err(ErrorKind::BadResponse(
            "the scrape answer has no entry for this info-hash (the tracker does not know the torrent)"
                .into(),
        ));
    }
    Ok(stats)
}

/// Parses an HTTP scrape answer.
pub fn parse_scrape_http(
    body: &[u8],
    status: u16,
    reason: &str,
    wanted: &[[u8; 20]],
) -> Result<Vec<ScrapeStats>, ErrorKind> {
    if status != 200 {
        return Err(status_error(body, status, reason));
    }
    parse_scrape(body, wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::OwnedValue;

    #[test]
    fn compact_answer() {
        let mut d = OwnedValue::dict();
        d.insert("interval", 1800i64)
            .insert("min interval", 900i64)
            .insert("complete", 3i64)
            .insert("incomplete", 4i64)
            .insert("tracker id", "abc")
            .insert("warning message", "be\x07 nice")
            .insert(
                "peers",
                &[1u8, 2, 3, 4, 0x1a, 0xe1, 5, 6, 7, 8, 0, 0, 9][..],
            )
            .insert(
                "peers6",
                &[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80][..],
            );
        let r = parse_announce(&d.encode()).unwrap();
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.min_interval, Some(Duration::from_secs(900)));
        assert_eq!((r.complete, r.incomplete), (Some(3), Some(4)));
        assert_eq!(r.tracker_id.as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.warning.as_deref(), Some("be  nice"));
        let addrs: Vec<String> = r.peers.iter().map(|p| p.addr.to_string()).collect();
        assert_eq!(addrs, ["1.2.3.4:6881", "[::1]:80"]);
    }

    #[test]
    fn dictionary_answer() {
        let peer = |ip: &[u8], port: i64, id: Option<&[u8]>| {
            let mut p = OwnedValue::dict();
            p.insert("ip", ip).insert("port", port);
            if let Some(id) = id {
                p.insert("peer id", id);
            }
            p
        };
        let mut d = OwnedValue::dict();
        d.insert("interval", 60i64).insert(
            "peers",
            vec![
                peer(b"10.0.0.1", 51413, Some(&[b'x'; 20])),
                peer(b"::2", 1, None),
                peer(b"example.org", 1, None),
                peer(b"10.0.0.2", 0, None),
                peer(b"10.0.0.3", 70000, None),
                peer(&[127, 0, 0, 1], 9, Some(b"short")),
            ],
        );
        let r = parse_announce(&d.encode()).unwrap();
        assert_eq!(r.peers.len(), 3);
        assert_eq!(r.peers[0].addr.to_string(), "10.0.0.1:51413");
        assert_eq!(r.peers[0].peer_id, Some([b'x'; 20]));
        assert_eq!(r.peers[1].addr.to_string(), "[::2]:1");
        assert_eq!(r.peers[2].addr.to_string(), "127.0.0.1:9");
        assert_eq!(r.peers[2].peer_id, None);
    }

    #[test]
    fn failures_and_garbage() {
        let mut d = OwnedValue::dict();
        d.insert("failure reason", "not\nauthorized");
        assert_eq!(
            parse_announce(&d.encode()),
            Err(ErrorKind::Failure("not authorized".into()))
        );
        assert_eq!(
            parse_announce_http(&d.encode(), 400, "Bad"),
            Err(ErrorKind::Failure("not authorized".into()))
        );
        assert_eq!(
            parse_announce_http(b"<html>", 404, "Not Found"),
            Err(ErrorKind::Status {
                status: 404,
                reason: "Not Found".into()
            })
        );
        for bad in [
            &b""[..],
            b"<html>hello</html>",
            b"i5e",
            b"d8:intervali-5ee",
            b"d5:peersi3ee",
            b"d8:intervall",
        ] {
            assert!(
                matches!(parse_announce(bad), Err(ErrorKind::BadResponse(_))),
                "{bad:?}"
            );
        }
        let r = parse_announce(b"d5:peers0:e\n").unwrap();
        assert_eq!(r.interval, DEFAULT_INTERVAL);
        assert!(r.peers.is_empty());
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("d5:peers{}{}e", "l".repeat(10_000), "e".repeat(10_000));
        assert!(parse_announce(deep.as_bytes()).is_err());
    }

    #[test]
    fn scrape_answers() {
        let mut stats = OwnedValue::dict();
        stats
            .insert("complete", 2i64)
            .insert("incomplete", 1i64)
            .insert("downloaded", 7i64);
        let mut files = OwnedValue::dict();
        if let OwnedValue::Dict(m) = &mut files {
            m.insert(vec![9u8; 20], stats);
        }
        let mut d = OwnedValue::dict();
        d.insert("files", files);
        let body = d.encode();
        let s = parse_scrape(&body, &[[9; 20]]).unwrap();
        assert_eq!(
            s,
            vec![ScrapeStats {
                info_hash: [9; 20],
                complete: 2,
                incomplete: 1,
                downloaded: 7
            }]
        );
        assert!(parse_scrape(&body, &[[8; 20]]).is_err());
        assert!(parse_scrape(b"de", &[[8; 20]]).is_err());
    }
}

//! Where peer addresses come from. A [`PeerSource`] is anything that
//! learns addresses over time — stdin, a tracker, the DHT
//! ([`crate::dht::source::DhtPeers`]) —
//! and the driver feeds what it learns to the session's `add_candidate`,
//! tagged with its [`Origin`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How we learnt of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Given on the command line (`--peer`).
    CommandLine,
    /// Read from standard input.
    Stdin,
    /// Announced by a tracker.
    Tracker,
    /// Told by another peer (BEP 11).
    Pex,
    /// Found in the DHT (BEP 5).
    Dht,
    /// It connected to us.
    Incoming,
    /// Given by a program using the library (tests, the simulator).
    Api,
    /// An HTTP(S) server from the torrent's `url-list` or `--web-seed`
    /// (BEP 19).
    WebSeed,
}

impl Origin {
    /// The name used in JSON (`"source"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::CommandLine => "peer",
            Origin::Stdin => "stdin",
            Origin::Tracker => "tracker",
            Origin::Pex => "pex",
            Origin::Dht => "dht",
            Origin::Incoming => "incoming",
            Origin::Api => "api",
            Origin::WebSeed => "web_seed",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a source learnt.
#[derive(Debug, Clone, PartialEq)]
pub enum Learnt {
    Peer(SocketAddr),
    /// A tracker answered (for logs and JSON events).
    Announced {
        tracker: String,
        peers: usize,
        interval: Duration,
    },
    /// A tracker could not be reached or refused us.
    TrackerError {
        error: String,
    },
    /// The source will never yield more (stdin reached its end).
    Ended,
    /// The DHT node joined the DHT: `nodes` in its routing table;
    /// `from_saved`: through the saved table alone.
    DhtBootstrapped {
        nodes: usize,
        from_saved: bool,
    },
    /// A DHT `get_peers` lookup ended, having found `peers`.
    DhtPeers {
        peers: usize,
    },
}

/// A source of peer addresses, polled by the driver without blocking.
pub trait PeerSource {
    fn origin(&self) -> Origin;

    /// Appends what was learnt since the last call to `out`.
    fn poll(&mut self, out: &mut Vec<Learnt>);

    /// A DHT node a peer advertised (BEP 5 `port`); only the DHT uses it.
    fn add_dht_node(&mut self, _addr: SocketAddr) {}
}

/// Peers read from standard input on a thread: JSON lines as
/// `bt-announce` prints them, or `IP:PORT` lines.
pub struct StdinPeers {
    rx: std::sync::mpsc::Receiver<Option<SocketAddr>>,
    ended: bool,
}

impl StdinPeers {
    /// Starts the reader; `wake` is called after each line (to wake the
    /// event loop).
    pub fn spawn(wake: std::sync::Arc<dyn Fn() + Send + Sync>) -> StdinPeers {
        use std::io::{BufRead, Read};
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stdin-peers".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut reader = std::io::BufReader::new(stdin.lock());
                let mut line = Vec::new();
                let mut number = 0u64;
                loop {
                    line.clear();
                    number += 1;
                    // Lines are bounded: a longer one is skipped.
                    let n = match (&mut reader).take(64 * 1024).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => {
                            // End of input: say so (None) and stop.
                            let _ = tx.send(None);
                            wake();
                            return;
                        }
                        Ok(n) => n,
                    };
                    if n == 64 * 1024 && !line.ends_with(b"\n") {
                        log::warn!("stdin line {number}: longer than 64 KiB; skipped");
                        let _ = reader.skip_until(b'\n');
                        continue;
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    // Host names are resolved here, on this thread: a slow
                    // resolver never holds up the event loop.
                    match peer_line(&line) {
                        Ok(addr) => {
                            if tx.send(Some(addr)).is_err() {
                                return;
                            }
                            wake();
                        }
                        Err(why) => {
                            let text = String::from_utf8_lossy(&line);
                            let shown: String = text.trim().chars().take(200).collect();
                            log::warn!("stdin line {number}: {why}: {shown}");
                        }
                    }
                }
            })
            .expect("spawn stdin reader");
        StdinPeers { rx, ended: false }
    }
}

impl PeerSource for StdinPeers {
    fn origin(&self) -> Origin {
        Origin::Stdin
    }

    fn poll(&mut self, out: &mut Vec<Learnt>) {
        while let Ok(line) = self.rx.try_recv() {
            match line {
                Some(addr) => out.push(Learnt::Peer(addr)),
                None if !self.ended => {
                    self.ended = true;
                    out.push(Learnt::Ended);
                }
                None => {}
            }
        }
    }
}

/// Parses `{"ip": "1.2.3.4", "port": 6881, ...}` or `1.2.3.4:6881`
/// (addresses only: no name is resolved).
pub fn parse_peer_line(line: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let ip: std::net::IpAddr = v.get("ip")?.as_str()?.parse().ok()?;
        let port = u16::try_from(v.get("port")?.as_u64()?).ok()?;
        return (port != 0).then(|| SocketAddr::new(ip, port));
    }
    text.parse().ok()
}

/// A peer line as stdin carries it — a JSON object with `ip` and `port`
/// (as `bt-announce` prints), `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` —
/// resolved to one address; the error says what was wrong. May block on
/// the resolver: call it off the event loop.
pub fn peer_line(line: &[u8]) -> Result<SocketAddr, String> {
    let text = std::str::from_utf8(line)
        .map_err(|_| "not UTF-8 text".to_string())?
        .trim();
    if text.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
        let host = v
            .get("ip")
            .and_then(|h| h.as_str())
            .ok_or("a JSON peer needs an \"ip\" string")?;
        let port = v
            .get("port")
            .and_then(|p| p.as_u64())
            .ok_or("a JSON peer needs a \"port\" number")?;
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("port {port} is not a port (1 to 65535)"))?;
        return match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, port)),
            Err(_) => resolve_peer(&format!("{host}:{port}")),
        };
    }
    resolve_peer(text)
}

/// `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` as one address (a name that
/// resolves to several: the first IPv4 one, else the first). Blocks on the
/// resolver for names. Also `--peer`'s parser.
pub fn resolve_peer(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let text = text.trim();
    if let Ok(a) = text.parse::<SocketAddr>() {
        return if a.port() == 0 {
            Err("port 0 is not a port".into())
        } else {
            Ok(a)
        };
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected IP:PORT, [IPv6]:PORT, HOST:PORT or a JSON object".into());
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{port:?} is not a port (1 to 65535)"))?;
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_host {
        return Err("expected IP:PORT, [IPv6]:PORT, HOST:PORT or a JSON object".into());
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host} has no address"))
}

/// Peers from the torrent's trackers: what the announcer thread reports.
pub struct TrackerPeers {
    pub reports: std::sync::mpsc::Receiver<crate::announcer::Report>,
}

impl PeerSource for TrackerPeers {
    fn origin(&self) -> Origin {
        Origin::Tracker
    }

    fn poll(&mut self, out: &mut Vec<Learnt>) {
        use crate::announcer::Report;
        while let Ok(r) = self.reports.try_recv() {
            match r {
                Report::Peers {
                    tracker,
                    peers,
                    interval,
                } => {
                    out.push(Learnt::Announced {
                        tracker,
                        peers: peers.len(),
                        interval,
                    });
                    out.extend(peers.into_iter().map(Learnt::Peer));
                }
                Report::Failed { error } => out.push(Learnt::TrackerError { error }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lines_and_their_errors() {
        let a: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        assert_eq!(peer_line(b"127.0.0.1:6881\n"), Ok(a));
        assert_eq!(peer_line(b"localhost:6881"), Ok(a), "IPv4 first");
        assert_eq!(peer_line(b"[::1]:6881"), Ok("[::1]:6881".parse().unwrap()));
        assert_eq!(
            peer_line(br#"{"ip": "localhost", "port": 6881, "peer_id": "x"}"#),
            Ok(a)
        );
        let err = |l: &[u8]| peer_line(l).unwrap_err();
        assert!(err(b"hello").contains("expected IP:PORT"));
        assert!(err(b"1.2.3.4:0").contains("port 0"));
        assert!(err(b"1.2.3.4:99999").contains("not a port"));
        assert!(err(br#"{"ip": "1.2.3.4"}"#).contains("\"port\""));
        assert!(err(br#"{"port": 1}"#).contains("\"ip\""));
        assert!(err(b"{nope").contains("not valid JSON"));
        assert!(err(b"\xff:1").contains("UTF-8"));
        assert!(err(b"no-such-host.invalid:6881").contains("cannot resolve no-such-host.invalid"));
        assert!(err(b"a b:1").contains("expected"));
    }
}

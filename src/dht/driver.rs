//! Running a [`Node`] on a real UDP socket: the one owner of the socket,
//! which routes datagrams ([`Driver::handle_datagram`]: bencoded KRPC to the
//! node, anything else refused so that uTP could later share the socket),
//! sends what the node wants sent and calls it back at its deadlines.
//! [`find_peers`] is the blocking helper programs use: bootstrap, one
//! `get_peers` (optionally announcing), peers back, within a time limit.
//!
//! An event loop with its own poll (e.g. bt-fetch's mio loop) need not use
//! [`Driver`]: it registers its own (mio) UDP socket, passes what it reads
//! to [`route_datagram`], writes out [`Node::poll_transmit`] after every
//! call into the node, caps its poll timeout at [`Node::poll_timeout`] and
//! then calls [`Node::handle_timeout`], and reads [`Node::poll_event`] —
//! the node itself does no I/O.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::krpc::Id;
use super::lookup::Announce;
use super::node::{Config, Event, Node};
use super::persist::SavedTable;

/// Where a datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed {
    /// A bencoded dictionary: given to the DHT node.
    Krpc,
    /// Something else (e.g. uTP, whose packets start with a version nibble
    /// of 1): not handled here.
    Other,
}

/// Whether a datagram looks like KRPC (a bencoded dictionary).
pub fn is_krpc(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'd')
}

/// The dispatch of a socket shared by the DHT and (later) uTP: KRPC goes
/// to `node`, anything else is left to the caller. For event loops that own
/// their socket (e.g. a mio loop) as well as for [`Driver`].
pub fn route_datagram(node: &mut Node, now: Instant, from: SocketAddr, bytes: &[u8]) -> Routed {
    if is_krpc(bytes) {
        node.handle_packet(now, from, bytes);
        Routed::Krpc
    } else {
        log::trace!("dht: {} bytes from {from} are not KRPC", bytes.len());
        Routed::Other
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    #[error("could not bootstrap: no bootstrap address could be resolved ({0})")]
    NoAddress(String),
    #[error("could not bootstrap: no node answered")]
    NoNodeAnswered,
    #[error("DHT socket: {0}")]
    Io(#[from] io::Error),
}

pub struct Driver {
    socket: UdpSocket,
    pub node: Node,
    buf: Vec<u8>,
}

impl Driver {
    /// Binds a UDP socket at `addr` for `node`.
    pub fn bind(addr: SocketAddr, node: Node) -> io::Result<Driver> {
        let socket = UdpSocket::bind(addr)?;
        Ok(Driver {
            socket,
            node,
            buf: vec![0; 65_536],
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Routes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Routed {
        route_datagram(&mut self.node, now, from, bytes)
    }

    /// Sends every datagram the node has queued.
    pub fn flush(&mut self) {
        while let Some((to, bytes)) = self.node.poll_transmit() {
            if let Err(e) = self.socket.send_to(&bytes, to) {
                log::debug!("dht: sending to {to}: {e}");
            }
        }
    }

    /// Runs the node until `until`: waits for datagrams, handles deadlines,
    /// and hands each event to `on_event`, which returns false to stop.
    pub fn run_until(
        &mut self,
        until: Instant,
        mut on_event: impl FnMut(&mut Node, Event) -> bool,
    ) -> io::Result<()> {
        loop {
            self.flush();
            while let Some(e) = self.node.poll_event() {
                if !on_event(&mut self.node, e) {
                    self.flush();
                    return Ok(());
                }
                self.flush();
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let wake = self.node.poll_timeout().unwrap_or(until).min(until);
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(wait))?;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let bytes = self.buf[..n].to_vec();
                    self.handle_datagram(Instant::now(), from, &bytes);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. an ICMP error reported on the socket: not fatal.
                    log::debug!("dht: receive: {e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let now = Instant::now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
        }
    }
}

/// What [`find_peers`] should do.
#[derive(Clone, Debug)]
pub struct FindPeers {
    /// `HOST:PORT` of nodes to join the DHT through.
    pub bootstrap: Vec<String>,
    pub info_hash: [u8; 20],
    /// Announce ourselves at the end (`Some(None)`: the DHT socket's port).
    pub announce: Option<Option<u16>>,
    /// The limit on the whole run, bootstrap included.
    pub timeout: Duration,
    /// Local address of the DHT socket.
    pub bind: SocketAddr,
    /// The saved table, read to bootstrap and written at the end.
    pub table_file: Option<PathBuf>,
    /// RNG seed (node id, tokens, transaction ids).
    pub seed: u64,
}

/// Resolves `HOST:PORT` names to IPv4 addresses, logging those that fail.
pub fn resolve(names: &[String]) -> (Vec<SocketAddr>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match name.to_socket_addrs() {
            Ok(list) => {
                let v4: Vec<SocketAddr> = list.filter(SocketAddr::is_ipv4).collect();
                if v4.is_empty() {
                    errors.push(format!("{name}: no IPv4 address"));
                }
                addrs.extend(v4);
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    for e in &errors {
        log::warn!("dht bootstrap {e}");
    }
    (addrs, errors)
}

/// Joins the DHT, looks up peers of `info_hash` (announcing if asked), and
/// returns the peers found before the lookup ended or the time ran out.
pub fn find_peers(opts: &FindPeers) -> Result<Vec<SocketAddrV4>, DhtError> {
    let start = Instant::now();
    let until = start + opts.timeout;
    let saved = opts
        .table_file
        .as_ref()
        .and_then(|p| match SavedTable::load(p) {
            Ok(t) => {
                log::debug!("dht: {} nodes from {}", t.nodes.len(), p.display());
                Some(t)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("dht: ignoring {}: {e}", p.display());
                }
                None
            }
        });
    let (seeds, errors) = resolve(&opts.bootstrap);
    let known = saved.as_ref().map(|t| t.nodes.clone()).unwrap_or_default();
    if seeds.is_empty() && known.is_empty() {
        return Err(DhtError::NoAddress(if errors.is_empty() {
            "none given".into()
        } else {
            errors.join("; ")
        }));
    }
    let config = Config {
        // Keep our id from one run to the next, as nodes remember it.
        id: saved.as_ref().map(|t| t.id),
        ..Config::default()
    };
    let mut driver = Driver::bind(opts.bind, Node::new(config, opts.seed, start))?;
    log::debug!("dht: node {} on {}", driver.node.id(), driver.local_addr()?);
    driver.node.bootstrap(start, &seeds, &known);
    let mut bootstrapped = None;
    driver.run_until(until, |_, e| match e {
        Event::Bootstrapped { nodes, responded } => {
            bootstrapped = Some((nodes, responded));
            false
        }
        _ => true,
    })?;
    match bootstrapped {
        Some((nodes, _)) if nodes > 0 => log::info!("dht: bootstrapped with {nodes} nodes"),
        Some(_) => return Err(DhtError::NoNodeAnswered),
        None if driver.node.table().is_empty() => return Err(DhtError::NoNodeAnswered),
        None => log::warn!("dht: bootstrap not finished in time"),
    }
    let announce = opts.announce.map(|port| Announce { port });
    let lookup = driver
        .node
        .get_peers(Instant::now(), Id(opts.info_hash), announce);
    let mut peers = BTreeSet::new();
    driver.run_until(until, |_, e| match e {
        Event::PeersFound {
            lookup: l,
            peers: p,
            ..
        } if l == lookup => {
            peers.extend(p);
            true
        }
        Event::LookupDone(r) if r.id == lookup => {
            log::info!(
                "dht: lookup done: {} nodes answered, {} peers, announced to {}",
                r.responded,
                r.peers.len(),
                r.announced
            );
            false
        }
        _ => true,
    })?;
    if let Some(path) = &opts.table_file {
        let nodes = driver.node.good_nodes(Instant::now());
        if !nodes.is_empty() {
            let t = SavedTable {
                id: driver.node.id(),
                nodes,
            };
            if let Err(e) = t.save(path) {
                log::warn!("dht: cannot save the table to {}: {e}", path.display());
            }
        }
    }
    Ok(peers.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_krpc_reaches_the_node() {
        let now = Instant::now();
        let mut node = Node::new(Config::default(), 1, now);
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // A uTP header starts with type and version nibbles, never 'd'.
        assert_eq!(
            route_datagram(&mut node, now, from, &[0x41, 0, 0, 0]),
            Routed::Other
        );
        assert_eq!(node.stats(now).packets_in, 0);
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(route_datagram(&mut node, now, from, ping), Routed::Krpc);
        assert_eq!(node.stats(now).queries_answered, 1);
    }

    #[test]
    fn two_drivers_on_loopback() {
        // B joins through A and finds the peer A stores.
        let now = Instant::now();
        let ih = Id([0x33; 20]);
        let peer = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 9), 9);
        let mut a = Driver::bind(
            "127.0.0.1:0".parse().unwrap(),
            Node::new(Config::default(), 1, now),
        )
        .unwrap();
        a.node.store_peer(now, ih, peer);
        let a_addr = a.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let runner = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end {
                a.run_until(Instant::now() + Duration::from_millis(50), |_, _| true)
                    .unwrap();
            }
        });
        let found = find_peers(&FindPeers {
            bootstrap: vec![a_addr.to_string()],
            info_hash: ih.0,
            announce: Some(Some(7000)),
            timeout: Duration::from_secs(10),
            bind: "127.0.0.1:0".parse().unwrap(),
            table_file: None,
            seed: 2,
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        runner.join().unwrap();
        assert_eq!(found.unwrap(), vec![peer]);
    }
}

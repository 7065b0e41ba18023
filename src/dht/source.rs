//! The DHT as a [`PeerSource`] for a program that runs for a while
//! (`bt-fetch --dht`): a thread owning the UDP socket (through [`Driver`],
//! the seam uTP could later share) runs a [`Node`] for the whole run.
//!
//! It joins the DHT through the saved table first and through the
//! bootstrap nodes only when that fails, then looks up the info-hash with
//! `get_peers`, announcing our listen port, again every
//! [`SourceOptions::interval`] (sooner, every [`SourceOptions::retry`],
//! while it has found few peers). It answers other nodes' queries all the
//! while, pings the nodes peers advertise with the BEP 5 `port` message
//! ([`PeerSource::add_dht_node`]), and saves the routing table after
//! joining and when stopped (or dropped). A failed join costs a warning
//! and a later retry, never the download.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::driver::{resolve, Driver};
use super::krpc::{Id, NodeInfo};
use super::lookup::{Announce, LookupId};
use super::node::{Config, Event, Node};
use super::persist::SavedTable;
use crate::peer_source::{Learnt, Origin, PeerSource};

/// Distinct peers remembered (to report each once); the session bounds
/// its own candidates too.
const MAX_FOUND: usize = 5000;
/// While fewer peers than this were found, lookups come every `retry`.
const FEW_PEERS: usize = 8;
/// How long the thread waits at most before looking at its commands.
const SLICE: Duration = Duration::from_millis(100);
/// A failed join is tried again after this, doubling up to `interval`.
const FIRST_REJOIN: Duration = Duration::from_secs(15);

/// What [`DhtPeers::start`] runs.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    pub info_hash: [u8; 20],
    /// The TCP port peers should connect to (announced with `get_peers`).
    pub announce_port: u16,
    /// Where to bind the UDP socket; if that port is taken, any port on
    /// the same address is used.
    pub bind: SocketAddr,
    /// `HOST:PORT` of nodes to join through when the saved table fails.
    pub bootstrap: Vec<String>,
    /// The saved routing table (read at the start, written after joining
    /// and at the end).
    pub table_file: Option<PathBuf>,
    /// RNG seed of the node (id, tokens, transaction ids).
    pub seed: u64,
    /// Time between lookups.
    pub interval: Duration,
    /// Time between lookups while few peers were found.
    pub retry: Duration,
}

impl SourceOptions {
    pub fn new(info_hash: [u8; 20], announce_port: u16, bind: SocketAddr) -> SourceOptions {
        SourceOptions {
            info_hash,
            announce_port,
            bind,
            bootstrap: Vec::new(),
            table_file: None,
            seed: 0,
            interval: Duration::from_secs(5 * 60),
            retry: Duration::from_secs(60),
        }
    }
}

enum Command {
    /// A node a peer advertised (BEP 5 `port`): ping it.
    AddNode(SocketAddrV4),
}

/// The handle of the DHT thread: a [`PeerSource`] of [`Origin::Dht`].
/// Dropping it stops the thread (which saves the table).
pub struct DhtPeers {
    rx: Receiver<Learnt>,
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl DhtPeers {
    /// Binds the UDP socket and starts the thread; `wake` is called after
    /// each thing learnt (to wake the event loop).
    pub fn start(opts: SourceOptions, wake: Arc<dyn Fn() + Send + Sync>) -> io::Result<DhtPeers> {
        let saved = opts
            .table_file
            .as_ref()
            .and_then(|p| match SavedTable::load(p) {
                Ok(t) => {
                    log::debug!("dht: {} nodes saved in {}", t.nodes.len(), p.display());
                    Some(t)
                }
                Err(e) => {
                    if e.kind() != io::ErrorKind::NotFound {
                        log::warn!("dht: ignoring {}: {e}", p.display());
                    }
                    None
                }
            });
        let config = Config {
            // Keep our id from one run to the next, as nodes remember it.
            id: saved.as_ref().map(|t| t.id),
            ..Config::default()
        };
        let node = Node::new(config, opts.seed, Instant::now());
        let driver = match Driver::bind(opts.bind, node) {
            Ok(d) => d,
            Err(e) if opts.bind.port() != 0 => {
                log::debug!("dht: cannot bind UDP {}: {e}; using any port", opts.bind);
                let node = Node::new(
                    Config {
                        id: saved.as_ref().map(|t| t.id),
                        ..Config::default()
                    },
                    opts.seed,
                    Instant::now(),
                );
                Driver::bind(SocketAddr::new(opts.bind.ip(), 0), node)?
            }
            Err(e) => return Err(e),
        };
        let port = driver.local_addr()?.port();
        log::info!("dht: node {} on UDP port {port}", driver.node.id());
        let (tx, rx) = mpsc::channel();
        let (ctx, crx) = mpsc::channel();
        let runner = Runner {
            driver,
            saved: saved.map(|t| t.nodes).unwrap_or_default(),
            opts,
            tx,
            wake,
            commands: crx,
            joined: false,
            joining: None,
            failures: 0,
            next_join: Some(Instant::now()),
            lookup: None,
            next_lookup: None,
            found: BTreeSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("dht".into())
            .spawn(move || runner.run())?;
        Ok(DhtPeers {
            rx,
            commands: Some(ctx),
            thread: Some(thread),
            port,
        })
    }

    /// The UDP port of our node (what the BEP 5 `port` message says).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the thread and waits for it (it saves the table first).
    pub fn stop(&mut self) {
        self.commands = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DhtPeers {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PeerSource for DhtPeers {
    fn origin(&self) -> Origin {
        Origin::Dht
    }

    fn poll(&mut self, out: &mut Vec<Learnt>) {
        out.extend(self.rx.try_iter());
    }

    fn add_dht_node(&mut self, addr: SocketAddr) {
        if let (SocketAddr::V4(a), Some(c)) = (addr, &self.commands) {
            let _ = c.send(Command::AddNode(a));
        }
    }
}

/// How the join in progress started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Joining {
    /// From the saved table alone.
    Saved,
    /// From the bootstrap nodes (and whatever the table holds).
    Bootstrap,
}

struct Runner {
    driver: Driver,
    opts: SourceOptions,
    saved: Vec<NodeInfo>,
    tx: Sender<Learnt>,
    wake: Arc<dyn Fn() + Send + Sync>,
    commands: Receiver<Command>,
    joined: bool,
    joining: Option<Joining>,
    failures: u32,
    next_join: Option<Instant>,
    lookup: Option<LookupId>,
    next_lookup: Option<Instant>,
    found: BTreeSet<SocketAddrV4>,
}

impl Runner {
    fn send(&self, l: Learnt) {
        if self.tx.send(l).is_ok() {
            (self.wake)();
        }
    }

    fn run(mut self) {
        let mut events = Vec::new();
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::AddNode(a)) => {
                        log::debug!("dht: a peer advertises the node {a}");
                        self.driver.node.ping(Instant::now(), a);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.save();
                        return;
                    }
                }
            }
            let now = Instant::now();
            if self.next_join.is_some_and(|t| t <= now) {
                self.next_join = None;
                self.join(now);
            }
            if self.next_lookup.is_some_and(|t| t <= now) && self.lookup.is_none() {
                self.next_lookup = None;
                let announce = Announce {
                    port: Some(self.opts.announce_port),
                };
                let id = self
                    .driver
                    .node
                    .get_peers(now, Id(self.opts.info_hash), Some(announce));
                log::debug!("dht: looking up peers");
                self.lookup = Some(id);
            }
            let mut until = now + SLICE;
            for t in [self.next_join, self.next_lookup].into_iter().flatten() {
                until = until.min(t);
            }
            let run = self.driver.run_until(until, |_, e| {
                events.push(e);
                false
            });
            if let Err(e) = run {
                log::warn!("dht: the UDP socket failed: {e}; the DHT stops");
                self.save();
                return;
            }
            for e in events.drain(..) {
                self.on_event(e);
            }
        }
    }

    /// Joins through the saved table first, else the bootstrap nodes.
    fn join(&mut self, now: Instant) {
        if !self.saved.is_empty() {
            let saved = std::mem::take(&mut self.saved);
            log::debug!("dht: joining through {} saved nodes", saved.len());
            self.joining = Some(Joining::Saved);
            self.driver.node.bootstrap(now, &[], &saved);
            return;
        }
        let (seeds, errors) = resolve(&self.opts.bootstrap);
        if seeds.is_empty() && self.driver.node.table().is_empty() {
            let why = if errors.is_empty() {
                "no bootstrap node given".to_string()
            } else {
                "no bootstrap address could be resolved".to_string()
            };
            self.join_failed(now, &why);
            return;
        }
        log::debug!("dht: joining through {} bootstrap addresses", seeds.len());
        self.joining = Some(Joining::Bootstrap);
        self.driver.node.bootstrap(now, &seeds, &[]);
    }

    fn join_failed(&mut self, now: Instant, why: &str) {
        self.failures += 1;
        let wait = FIRST_REJOIN
            .saturating_mul(1 << (self.failures - 1).min(8))
            .min(self.opts.interval.max(FIRST_REJOIN));
        log::warn!(
            "dht: could not bootstrap: {why}; trying again in {} s",
            wait.as_secs()
        );
        self.next_join = Some(now + wait);
    }

    fn on_event(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Bootstrapped { nodes, .. } => {
                let how = self.joining.take();
                if nodes > 0 {
                    let from_saved = how == Some(Joining::Saved);
                    log::info!(
                        "dht: bootstrapped with {nodes} nodes{}",
                        if from_saved {
                            " (from the saved table)"
                        } else {
                            ""
                        }
                    );
                    self.failures = 0;
                    self.send(Learnt::DhtBootstrapped { nodes, from_saved });
                    self.save();
                    if !self.joined {
                        self.joined = true;
                        self.next_lookup = Some(now);
                    }
                } else if how == Some(Joining::Saved) {
                    log::info!("dht: no saved node answered; trying the bootstrap nodes");
                    self.join(now);
                } else {
                    self.join_failed(now, "no node answered");
                }
            }
            Event::PeersFound { lookup, peers, .. } if Some(lookup) == self.lookup => {
                for p in peers {
                    if self.found.len() < MAX_FOUND && self.found.insert(p) {
                        self.send(Learnt::Peer(SocketAddr::V4(p)));
                    }
                }
            }
            Event::LookupDone(r) if Some(r.id) == self.lookup => {
                self.lookup = None;
                log::info!(
                    "dht: lookup done: {} peers, {} nodes answered, announced to {}",
                    r.peers.len(),
                    r.responded,
                    r.announced
                );
                self.send(Learnt::DhtPeers {
                    peers: r.peers.len(),
                });
                let wait = if self.found.len() < FEW_PEERS {
                    self.opts.retry
                } else {
                    self.opts.interval
                };
                self.next_lookup = Some(now + wait);
                if r.responded == 0 {
                    // Everyone we knew went quiet: join again.
                    self.next_join.get_or_insert(now);
                }
            }
            _ => {}
        }
    }

    fn save(&self) {
        let Some(path) = &self.opts.table_file else {
            return;
        };
        let nodes = self.driver.node.good_nodes(Instant::now());
        if nodes.is_empty() {
            return;
        }
        let t = SavedTable {
            id: self.driver.node.id(),
            nodes,
        };
        match t.save(path) {
            Ok(()) => log::debug!("dht: {} nodes saved to {}", t.nodes.len(), path.display()),
            Err(e) => log::warn!("dht: cannot save the table to {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Polls `source` until `done` says so or 20 s pass.
    fn collect(source: &mut DhtPeers, done: impl Fn(&[Learnt]) -> bool) -> Vec<Learnt> {
        let end = Instant::now() + Duration::from_secs(20);
        let mut all = Vec::new();
        while !done(&all) && Instant::now() < end {
            source.poll(&mut all);
            std::thread::sleep(Duration::from_millis(10));
        }
        all
    }

    #[test]
    fn finds_a_stored_peer_and_starts_warm_the_second_time() {
        let now = Instant::now();
        let ih = [0x44; 20];
        let peer = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 4), 4);
        let mut a = Driver::bind(
            "127.0.0.1:0".parse().unwrap(),
            Node::new(Config::default(), 1, now),
        )
        .unwrap();
        a.node.store_peer(now, Id(ih), peer);
        let a_addr = a.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let runner = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                a.run_until(Instant::now() + Duration::from_millis(50), |_, _| true)
                    .unwrap();
            }
        });
        let dir = std::env::temp_dir().join(format!("bt-dht-source-{}", std::process::id()));
        let table = dir.join("dht.dat");
        let mut opts = SourceOptions::new(ih, 7000, "127.0.0.1:0".parse().unwrap());
        opts.bootstrap = vec![a_addr.to_string()];
        opts.table_file = Some(table.clone());
        opts.seed = 2;
        let mut s = DhtPeers::start(opts.clone(), Arc::new(|| {})).unwrap();
        assert_ne!(s.port(), 0);
        let got = collect(&mut s, |l| {
            l.iter().any(|x| matches!(x, Learnt::DhtPeers { .. }))
        });
        assert_eq!(
            got,
            vec![
                Learnt::DhtBootstrapped {
                    nodes: 1,
                    from_saved: false
                },
                Learnt::Peer(SocketAddr::V4(peer)),
                Learnt::DhtPeers { peers: 1 },
            ]
        );
        drop(s);
        assert_eq!(SavedTable::load(&table).unwrap().nodes.len(), 1);

        // Warm: the bootstrap address given is dead, the saved node answers.
        opts.bootstrap = vec!["127.0.0.1:9".into()];
        let mut s = DhtPeers::start(opts, Arc::new(|| {})).unwrap();
        let got = collect(&mut s, |l| {
            l.iter().any(|x| matches!(x, Learnt::DhtPeers { .. }))
        });
        assert_eq!(
            got.first(),
            Some(&Learnt::DhtBootstrapped {
                nodes: 1,
                from_saved: true
            })
        );
        assert!(got.contains(&Learnt::Peer(SocketAddr::V4(peer))));
        drop(s);
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

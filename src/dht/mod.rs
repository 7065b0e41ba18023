//! The BitTorrent DHT (BEP 5): a sans-IO node ([`node::Node`]) built from
//! the KRPC codec, a routing table, iterative lookups and a peer store, plus
//! the saved table and a blocking UDP driver for programs.
//!
//! Programs that only want peers call [`find_peers`]; one that runs for a
//! while takes [`DhtPeers`], a peer source on its own thread. A program with its
//! own event loop keeps a [`Node`] next to its other state:
//!
//! ```text
//! let mut node = Node::new(Config::default(), seed, now);   // id: from the saved table
//! node.bootstrap(now, &router_addrs, &saved.nodes);
//! loop {
//!     // poll timeout: at most node.poll_timeout()
//!     for each datagram read from the UDP socket:
//!         driver::route_datagram(&mut node, now, from, bytes);   // non-KRPC: uTP
//!     if node.poll_timeout() <= now { node.handle_timeout(now) }
//!     while let Some((to, bytes)) = node.poll_transmit() { socket.send_to(&bytes, to) }
//!     while let Some(event) = node.poll_event() {
//!         Bootstrapped { .. } => node.get_peers(now, info_hash, Some(Announce { port: Some(p) })),
//!         PeersFound { peers, .. } => connect to them,
//!         LookupDone(..) => schedule the next get_peers (e.g. in 15 min),
//!         PeerAnnounced { .. } => nothing to do,
//!     }
//! }
//! ```
//!
//! Only IPv4 is handled; BEP 32 (IPv6), BEP 42 (secure ids), BEP 44
//! (storage) and BEP 51 (sampling) are not.

pub mod driver;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod persist;
pub mod routing;
pub mod source;
pub mod storage;

pub use driver::{find_peers, DhtError, Driver, FindPeers};
pub use krpc::{Id, NodeInfo};
pub use lookup::{Announce, LookupId, LookupResult};
pub use node::{Config, Event, Node, NodeStats};
pub use source::{DhtPeers, SourceOptions};

/// Public routers commonly used to join the DHT.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

/// The bootstrap nodes a program was given (`--dht-bootstrap`), or the
/// public routers when it was given none.
pub fn bootstrap_or_default(given: &[String]) -> Vec<String> {
    if given.is_empty() {
        DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect()
    } else {
        given.to_vec()
    }
}

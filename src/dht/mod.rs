//! The BitTorrent DHT (BEP 5): a sans-IO node ([`node::Node`]) built from
//! the KRPC codec, a routing table, iterative lookups and a peer store, plus
//! the saved table and a blocking UDP driver for programs.

pub mod driver;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod persist;
pub mod routing;
pub mod storage;

pub use driver::{find_peers, DhtError, Driver, FindPeers};
pub use krpc::{Id, NodeInfo};
pub use lookup::{Announce, LookupId, LookupResult};
pub use node::{Config, Event, Node, NodeStats};

/// Public routers commonly used to join the DHT.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

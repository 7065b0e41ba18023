//! The BitTorrent DHT (BEP 5): a sans-IO node ([`node::Node`]) built from
//! the KRPC codec, a routing table, iterative lookups and a peer store, plus
//! the saved table and a blocking UDP driver for programs.

pub mod krpc;
pub mod lookup;
pub mod node;
pub mod routing;
pub mod storage;

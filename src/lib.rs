//! bt: a BitTorrent toolkit.
//!
//! The library holds everything the programs in `bin/` share. Protocol logic
//! is written sans-IO: state machines take bytes, events and the current time
//! and return actions, so that they can be tested deterministically.

pub mod alloc_stats;
pub mod announcer;
pub mod backoff;
pub mod bencode;
pub mod choker;
pub mod cli;
pub mod create;
pub mod dht;
pub mod exit;
pub mod fetch;
pub mod hashing;
pub mod hex;
pub mod logging;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub mod peer_source;
pub mod pex;
pub mod picker;
pub mod piecebuf;
pub mod progress;
pub mod resume;
pub mod session;
pub mod sha1;
pub mod signals;
pub mod sim;
pub mod storage;
pub mod time;
pub mod tracker;
pub mod ut_metadata;
pub mod verify;
pub mod webseed;
pub mod wire;

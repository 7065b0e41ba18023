//! bt: a BitTorrent toolkit.
//!
//! The library holds everything the programs in `bin/` share. Protocol logic
//! is written sans-IO: state machines take bytes, events and the current time
//! and return actions, so that they can be tested deterministically.

pub mod bencode;
pub mod sha1;

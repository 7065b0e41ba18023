//! What the user sees of the session's events: a log line on stderr and
//! a JSON line on stdout (`--json`) for each.

use serde_json::json;

use super::driver::Driver;
use crate::hex;
use crate::session::Event;

impl Driver<'_> {
    pub(super) fn event(&mut self, e: Event) {
        match e {
            Event::PeerConnected {
                addr,
                client,
                peer_id,
                source,
                encryption,
            } => {
                let encryption = crate::session::encryption::describe(encryption);
                log::info!("{addr}: connected ({client}, from {source}, encryption {encryption})");
                self.out.emit(json!({
                    "event": "peer_connected",
                    "addr": addr.to_string(),
                    "client": client,
                    "peer_id": hex::encode(&peer_id),
                    "source": source.as_str(),
                    "encryption": encryption,
                }));
            }
            Event::PeerDisconnected {
                addr,
                reason,
                downloaded,
                uploaded,
            } => {
                log::info!("{addr}: disconnected: {reason}");
                self.out.emit(json!({
                    "event": "peer_disconnected",
                    "addr": addr.to_string(),
                    "reason": reason.to_string(),
                    "downloaded": downloaded,
                    "uploaded": uploaded,
                }));
            }
            Event::PieceVerified { piece } => {
                self.out.emit(json!({"event": "piece", "index": piece}));
            }
            Event::HashFailed { piece, peers } => {
                let peers: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
                log::warn!(
                    "piece {piece} failed its hash check (data from {}); downloading it again",
                    peers.join(", ")
                );
                self.out.emit(json!({
                    "event": "hash_failed",
                    "index": piece,
                    "peers": peers,
                }));
            }
            Event::Banned { addr } => {
                log::warn!("{addr}: banned after repeated hash failures");
                self.out
                    .emit(json!({"event": "peer_banned", "addr": addr.to_string()}));
            }
            Event::DhtNode { addr } => {
                for s in &mut self.sources {
                    s.add_dht_node(addr);
                }
            }
            Event::Complete => {
                if let Some(a) = &self.announcer {
                    a.completed();
                }
                log::info!("download complete");
                self.out.emit(json!({"event": "complete"}));
            }
        }
    }
}

//! What the user sees of the session's events: a log line on stderr and
//! a JSON line on stdout (`--json`) for each.

use serde_json::json;

use super::driver::Driver;
use crate::hex;
use crate::peer_source::Origin;
use crate::session::{Event, WebSeedEvent};

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
                let from = if peers.is_empty() {
                    "web seeds only".to_string()
                } else {
                    peers.join(", ")
                };
                log::warn!(
                    "piece {piece} failed its hash check (data from {from}); downloading it again"
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
            Event::ConnectFailed { addr, error } => {
                log::info!("{addr}: {error}");
                self.connect_failures += 1;
                self.out.emit(json!({
                    "event": "connect_failed",
                    "addr": addr.to_string(),
                    "error": error,
                }));
            }
            Event::DhtNode { addr } => {
                for s in &mut self.sources {
                    s.add_dht_node(addr);
                }
            }
            Event::WebSeed(e) => self.web_seed_event(e),
            Event::Complete => {
                if let Some(a) = self
                    .announcer
                    .as_ref()
                    .filter(|_| self.partial_of.is_none())
                {
                    a.completed();
                }
                log::info!("download complete");
                self.out.emit(json!({"event": "complete"}));
            }
        }
    }

    fn web_seed_event(&mut self, e: WebSeedEvent) {
        match e {
            WebSeedEvent::Added { url } => {
                log::info!("web seed {url}: added");
                self.out.emit(json!({
                    "event": "peer_connected",
                    "addr": url,
                    "url": url,
                    "client": "web seed",
                    "source": Origin::WebSeed.as_str(),
                }));
            }
            WebSeedEvent::Failed { url, why, retry_in } => {
                log::warn!(
                    "web seed {url}: {why}; trying it again in {} s",
                    retry_in.as_secs()
                );
                self.out.emit(json!({
                    "event": "web_seed_error",
                    "url": url,
                    "error": why,
                    "retry_in": retry_in.as_secs(),
                }));
            }
            WebSeedEvent::HashFailed { url, piece } => {
                log::warn!("web seed {url}: sent piece {piece}, which failed its hash check");
                self.out.emit(json!({
                    "event": "web_seed_hash_failed",
                    "index": piece,
                    "url": url,
                }));
            }
            WebSeedEvent::Dropped {
                url,
                why,
                downloaded,
            } => {
                if why == "shutting down" {
                    log::info!("web seed {url}: {why}");
                } else {
                    log::warn!("web seed {url}: {why}");
                }
                self.out.emit(json!({
                    "event": "peer_disconnected",
                    "addr": url,
                    "url": url,
                    "source": Origin::WebSeed.as_str(),
                    "reason": why,
                    "downloaded": downloaded,
                    "uploaded": 0,
                }));
            }
        }
    }
}

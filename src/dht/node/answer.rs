//! The answering side of the node: queries from other nodes (`ping`,
//! `find_node`, `get_peers`, `announce_peer`) and the tokens that guard
//! `announce_peer`.

use std::net::{IpAddr, SocketAddrV4};
use std::time::Instant;

use super::{Event, Node, MAX_VALUES_SENT};
use crate::dht::krpc::{error_code, Body, Message, NodeInfo, Query, Response};
use crate::dht::routing::K;

/// The token for `ip` under `secret`.
fn token_for(secret: &[u8; 20], ip: &std::net::Ipv4Addr) -> Vec<u8> {
    let mut h = crate::sha1::Sha1::new();
    h.update(secret);
    h.update(&ip.octets());
    h.finalize()[..8].to_vec()
}

impl Node {
    pub(super) fn handle_query(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        tid: Vec<u8>,
        read_only: bool,
        q: Query,
    ) {
        if self.config.read_only {
            return;
        }
        let sender = q.sender();
        if sender == self.id {
            self.stats.dropped += 1;
            return;
        }
        let body = match &q {
            Query::Ping { .. } => Body::Response(self.response()),
            Query::FindNode { target, .. } => Body::Response(Response {
                nodes: self.table.closest(target, K, now),
                ..self.response()
            }),
            Query::GetPeers { info_hash, .. } => {
                let values = self.store.get(info_hash, MAX_VALUES_SENT, now);
                let nodes = if values.is_empty() {
                    self.table.closest(info_hash, K, now)
                } else {
                    Vec::new()
                };
                Body::Response(Response {
                    nodes,
                    values,
                    token: Some(token_for(&self.secret, from.ip())),
                    ..self.response()
                })
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                let valid = *token == token_for(&self.secret, from.ip())
                    || *token == token_for(&self.prev_secret, from.ip());
                let port = if *implied_port { from.port() } else { *port };
                if !valid {
                    Body::Error {
                        code: error_code::PROTOCOL,
                        message: "bad token".into(),
                    }
                } else if port == 0 {
                    Body::Error {
                        code: error_code::PROTOCOL,
                        message: "bad port".into(),
                    }
                } else {
                    let peer = SocketAddrV4::new(*from.ip(), port);
                    if self.store.add(*info_hash, peer, now) {
                        self.push_event(Event::PeerAnnounced {
                            info_hash: *info_hash,
                            peer,
                        });
                    }
                    Body::Response(self.response())
                }
            }
            Query::Unknown { .. } => Body::Error {
                code: error_code::METHOD_UNKNOWN,
                message: "Method Unknown".into(),
            },
        };
        self.stats.queries_answered += 1;
        let reply = Message {
            tid,
            version: self.config.version.clone(),
            read_only: false,
            body,
        };
        self.push_transmit(from, reply.encode());
        // The querying node: note it, or check it with a ping if there is
        // room for it (only nodes that answer us get into the table).
        if !read_only {
            let info = NodeInfo {
                id: sender,
                addr: from,
            };
            if !self.table.heard_query(info, now) && self.table.has_room_for(&sender, now) {
                self.send_ping(now, from, Some(sender));
            }
        }
    }

    fn response(&self) -> Response {
        Response {
            id: self.id,
            ..Response::default()
        }
    }

    /// Whether `token` would be accepted from `ip` now (for tests and logs).
    pub fn token_valid(&self, ip: IpAddr, token: &[u8]) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                token == token_for(&self.secret, &ip) || token == token_for(&self.prev_secret, &ip)
            }
            IpAddr::V6(_) => false,
        }
    }

    /// The token we give `ip` now.
    pub fn token(&self, ip: std::net::Ipv4Addr) -> Vec<u8> {
        token_for(&self.secret, &ip)
    }
}

//! The UDP tracker protocol (BEP 15): the packet codec, a sans-IO
//! exchange ([`UdpExchange`]: connect, then announce or scrape, with the
//! connection id kept for a minute and retransmissions every
//! `base·2^n`, n up to 8), and a blocking driver over `UdpSocket`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::response::{compact_v4, compact_v6};
use super::url::Url;
use super::{
    AnnounceRequest, AnnounceResponse, ErrorKind, Event, ScrapeStats, TrackerOptions, TrackerState,
};

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;
/// Retransmissions stop after `n` reaches this (BEP 15: 8, i.e. 3840 s).
pub const MAX_RETRANSMIT_EXPONENT: u32 = 8;
/// How long a connection id may be used (BEP 15: one minute).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// Most info-hashes in one scrape packet.
pub const MAX_SCRAPE_HASHES: usize = 74;

pub fn encode_connect(tid: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    p.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p
}

fn event_code(e: Event) -> u32 {
    match e {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    }
}

/// An announce request (98 bytes).
pub fn encode_announce(connection_id: u64, tid: u32, req: &AnnounceRequest) -> Vec<u8> {
    let mut p = Vec::with_capacity(98);
    p.extend_from_slice(&connection_id.to_be_bytes());
    p.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(&req.info_hash);
    p.extend_from_slice(&req.peer_id);
    p.extend_from_slice(&req.downloaded.to_be_bytes());
    p.extend_from_slice(&req.left.to_be_bytes());
    p.extend_from_slice(&req.uploaded.to_be_bytes());
    p.extend_from_slice(&event_code(req.event).to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // IP address: the sender's
    p.extend_from_slice(&req.key.to_be_bytes());
    let numwant: i32 = req
        .numwant
        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    p.extend_from_slice(&numwant.to_be_bytes());
    p.extend_from_slice(&req.port.to_be_bytes());
    p
}

/// A scrape request for up to [`MAX_SCRAPE_HASHES`] torrents (more are cut).
pub fn encode_scrape(connection_id: u64, tid: u32, hashes: &[[u8; 20]]) -> Vec<u8> {
    let hashes = &hashes[..hashes.len().min(MAX_SCRAPE_HASHES)];
    let mut p = Vec::with_capacity(16 + 20 * hashes.len());
    p.extend_from_slice(&connection_id.to_be_bytes());
    p.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    for h in hashes {
        p.extend_from_slice(h);
    }
    p
}

/// A decoded reply from a UDP tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Connect {
        tid: u32,
        connection_id: u64,
    },
    Announce {
        tid: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        /// Compact peers: 6 bytes each over IPv4, 18 over IPv6.
        peers: &'a [u8],
    },
    Scrape {
        tid: u32,
        /// (seeders, completed, leechers) per info-hash, in request order.
        entries: Vec<(u32, u32, u32)>,
    },
    Error {
        tid: u32,
        message: String,
    },
    /// An announce or scrape reply of its 8 header bytes alone: what
    /// opentracker sends for a torrent it does not track.
    Empty {
        tid: u32,
        action: u32,
    },
}

impl Reply<'_> {
    pub fn tid(&self) -> u32 {
        match self {
            Reply::Connect { tid, .. }
            | Reply::Announce { tid, .. }
            | Reply::Scrape { tid, .. }
            | Reply::Error { tid, .. }
            | Reply::Empty { tid, .. } => *tid,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a reply; `Err` says why the datagram is not one.
pub fn decode_reply(b: &[u8]) -> Result<Reply<'_>, String> {
    if b.len() < 8 {
        return Err(format!("{} bytes, too short for a reply", b.len()));
    }
    let action = u32_at(b, 0);
    let tid = u32_at(b, 4);
    if b.len() == 8 && (action == ACTION_ANNOUNCE || action == ACTION_SCRAPE) {
        return Ok(Reply::Empty { tid, action });
    }
    match action {
        ACTION_CONNECT => {
            if b.len() < 16 {
                return Err(format!("connect reply of {} bytes (16 expected)", b.len()));
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&b[8..16]);
            Ok(Reply::Connect {
                tid,
                connection_id: u64::from_be_bytes(id),
            })
        }
        ACTION_ANNOUNCE => {
            if b.len() < 20 {
                return Err(format!(
                    "announce reply of {} bytes (at least 20 expected)",
                    b.len()
                ));
            }
            Ok(Reply::Announce {
                tid,
                interval: u32_at(b, 8),
                leechers: u32_at(b, 12),
                seeders: u32_at(b, 16),
                peers: &b[20..],
            })
        }
        ACTION_SCRAPE => Ok(Reply::Scrape {
            tid,
            entries: b[8..]
                .chunks_exact(12)
                .map(|c| (u32_at(c, 0), u32_at(c, 4), u32_at(c, 8)))
                .collect(),
        }),
        ACTION_ERROR => Ok(Reply::Error {
            tid,
            message: super::response::clean_text(&b[8..]),
        }),
        other => Err(format!("unknown action {other}")),
    }
}

/// A connection id and when it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionId {
    pub id: u64,
    pub obtained: Instant,
}

impl ConnectionId {
    pub fn valid_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.obtained) < CONNECTION_ID_LIFETIME
    }
}

/// What an exchange asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRequest {
    Announce(AnnounceRequest),
    Scrape(Vec<[u8; 20]>),
}

/// What an exchange got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpReply {
    Announce(AnnounceResponse),
    Scrape(Vec<ScrapeStats>),
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpAction {
    /// Send this datagram to the tracker.
    Send(Vec<u8>),
    /// Wait for a datagram until this time, then poll again.
    Wait(Instant),
    /// Finished.
    Done(Result<UdpReply, ErrorKind>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connect { tid: u32 },
    Request { tid: u32, connection_id: u64 },
}

/// One announce or scrape over UDP, as a state machine: call
/// [`poll`](Self::poll) for the next action and hand every datagram
/// received to [`receive`](Self::receive).
#[derive(Debug, Clone)]
pub struct UdpExchange {
    request: UdpRequest,
    ipv6: bool,
    base: Duration,
    stage: Stage,
    /// Sends done in this stage (n of the schedule is `attempt - 1`).
    attempt: u32,
    next_send: Option<Instant>,
    connection: Option<ConnectionId>,
    result: Option<Result<UdpReply, ErrorKind>>,
    sent: u32,
}

impl UdpExchange {
    /// `connection` is a connection id kept from before (used while valid);
    /// `ipv6` says the tracker is reached over IPv6 (18-byte peers).
    pub fn new(
        request: UdpRequest,
        connection: Option<ConnectionId>,
        ipv6: bool,
        base: Duration,
        now: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        let connection = connection.filter(|c| c.valid_at(now));
        let stage = match connection {
            Some(c) => Stage::Request {
                tid: rng.next_u32(),
                connection_id: c.id,
            },
            None => Stage::Connect {
                tid: rng.next_u32(),
            },
        };
        UdpExchange {
            request,
            ipv6,
            base,
            stage,
            attempt: 0,
            next_send: None,
            connection,
            result: None,
            sent: 0,
        }
    }

    /// The connection id to keep for later exchanges.
    pub fn connection(&self) -> Option<ConnectionId> {
        self.connection
    }

    /// How many datagrams were sent.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    pub fn poll(&mut self, now: Instant, rng: &mut impl RngCore) -> UdpAction {
        if let Some(r) = &self.result {
            return UdpAction::Done(r.clone());
        }
        if let Stage::Request { .. } = self.stage {
            if !self.connection.is_some_and(|c| c.valid_at(now)) {
                log::debug!("UDP connection id expired; connecting again");
                self.connection = None;
                self.stage = Stage::Connect {
                    tid: rng.next_u32(),
                };
                self.attempt = 0;
                self.next_send = None;
            }
        }
        if self.next_send.is_some_and(|t| now < t) {
            return UdpAction::Wait(self.next_send.unwrap_or(now));
        }
        if self.attempt > MAX_RETRANSMIT_EXPONENT {
            let r = Err(ErrorKind::Timeout(format!(
                "no UDP answer after {} attempts",
                self.attempt
            )));
            self.result = Some(r.clone());
            return UdpAction::Done(r);
        }
        let packet = match self.stage {
            Stage::Connect { tid } => encode_connect(tid),
            Stage::Request { tid, connection_id } => match &self.request {
                UdpRequest::Announce(req) => encode_announce(connection_id, tid, req),
                UdpRequest::Scrape(hashes) => encode_scrape(connection_id, tid, hashes),
            },
        };
        let wait = self.base.saturating_mul(1 << self.attempt);
        self.next_send = Some(now + wait);
        self.attempt += 1;
        self.sent += 1;
        UdpAction::Send(packet)
    }

    /// Takes a datagram from the tracker; replies that do not fit (too
    /// short, another transaction, an unexpected action) are ignored.
    /// Returns whether it was used.
    pub fn receive(&mut self, datagram: &[u8], now: Instant, rng: &mut impl RngCore) -> bool {
        if self.result.is_some() {
            return false;
        }
        let reply = match decode_reply(datagram) {
            Ok(r) => r,
            Err(e) => {
                log::debug!("ignoring a UDP datagram: {e}");
                return false;
            }
        };
        let (Stage::Connect { tid } | Stage::Request { tid, .. }) = self.stage;
        if reply.tid() != tid {
            log::debug!(
                "ignoring a UDP reply with transaction id {:08x} (expected {tid:08x})",
                reply.tid()
            );
            return false;
        }
        match (reply, self.stage) {
            (Reply::Error { message, .. }, _) => {
                self.result = Some(Err(ErrorKind::Failure(message)));
            }
            (Reply::Empty { .. }, Stage::Request { .. }) => {
                // Addressed to us (right transaction id) yet empty: a refusal.
                self.result = Some(Err(ErrorKind::Failure(
                    "empty reply (8 bytes, no data): the tracker does not track this torrent"
                        .into(),
                )));
            }
            (Reply::Connect { connection_id, .. }, Stage::Connect { .. }) => {
                self.connection = Some(ConnectionId {
                    id: connection_id,
                    obtained: now,
                });
                self.stage = Stage::Request {
                    tid: rng.next_u32(),
                    connection_id,
                };
                self.attempt = 0;
                self.next_send = None;
            }
            (
                Reply::Announce {
                    interval,
                    leechers,
                    seeders,
                    peers,
                    ..
                },
                Stage::Request { .. },
            ) if matches!(self.request, UdpRequest::Announce(_)) => {
                let peers = if self.ipv6 {
                    compact_v6(peers)
                } else {
                    compact_v4(peers)
                };
                self.result = Some(Ok(UdpReply::Announce(AnnounceResponse {
                    interval: Duration::from_secs(u64::from(interval)),
                    min_interval: None,
                    peers,
                    complete: Some(u64::from(seeders)),
                    incomplete: Some(u64::from(leechers)),
                    tracker_id: None,
                    warning: None,
                })));
            }
            (Reply::Scrape { entries, .. }, Stage::Request { .. }) => {
                let UdpRequest::Scrape(hashes) = &self.request else {
                    log::debug!("ignoring a scrape reply to an announce");
                    return false;
                };
                if entries.is_empty() {
                    self.result = Some(Err(ErrorKind::BadResponse(
                        "scrape reply without any entry".into(),
                    )));
                } else {
                    let stats = hashes
                        .iter()
                        .zip(entries)
                        .map(|(h, (seeders, completed, leechers))| ScrapeStats {
                            info_hash: *h,
                            complete: u64::from(seeders),
                            incomplete: u64::from(leechers),
                            downloaded: u64::from(completed),
                        })
                        .collect();
                    self.result = Some(Ok(UdpReply::Scrape(stats)));
                }
            }
            (other, _) => {
                log::debug!("ignoring an unexpected UDP reply {other:?}");
                return false;
            }
        }
        true
    }
}

/// Runs an exchange over a UDP socket until it is done or `deadline`.
fn run(
    url: &Url,
    request: UdpRequest,
    opts: &TrackerOptions,
    deadline: Instant,
    state: &mut TrackerState,
) -> Result<UdpReply, ErrorKind> {
    let addrs: Vec<SocketAddr> = super::resolve(&url.host, url.port, deadline)?;
    let cached = state.udp_connection.filter(|(a, _)| addrs.contains(a));
    let addr = match (cached, addrs.first()) {
        (Some((a, _)), _) => a,
        (None, Some(a)) => *a,
        (None, None) => {
            return Err(ErrorKind::Resolve {
                host: url.host.clone(),
                message: "no address".into(),
            })
        }
    };
    let io = |e: std::io::Error| ErrorKind::Io(format!("UDP to {addr}: {e}"));
    let socket = UdpSocket::bind(if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .map_err(io)?;
    socket.connect(addr).map_err(io)?;
    let mut rng = rand::thread_rng();
    let mut exchange = UdpExchange::new(
        request,
        cached.map(|(_, c)| c),
        addr.is_ipv6(),
        opts.udp_retransmit_base,
        Instant::now(),
        &mut rng,
    );
    let mut buf = vec![0u8; 65536];
    let result = loop {
        let now = Instant::now();
        if now >= deadline {
            break Err(ErrorKind::Timeout(format!(
                "no UDP answer from {addr} within {:.1} s ({} datagrams sent)",
                opts.total_timeout.as_secs_f64(),
                exchange.sent()
            )));
        }
        match exchange.poll(now, &mut rng) {
            UdpAction::Done(r) => break r,
            UdpAction::Send(packet) => {
                log::trace!("UDP {} bytes to {addr}", packet.len());
                if let Err(e) = socket.send(&packet) {
                    break Err(io(e));
                }
            }
            UdpAction::Wait(until) => {
                let wait = until.min(deadline).saturating_duration_since(now);
                if let Err(e) = socket.set_read_timeout(Some(wait.max(Duration::from_millis(1)))) {
                    break Err(io(e));
                }
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        exchange.receive(&buf[..n], Instant::now(), &mut rng);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        break Err(ErrorKind::Connect {
                            addr: addr.to_string(),
                            message: "connection refused (no tracker on this UDP port)".into(),
                        });
                    }
                    Err(e) => break Err(io(e)),
                }
            }
        }
    };
    state.udp_connection = exchange.connection().map(|c| (addr, c));
    result
}

/// Announces over UDP.
pub fn announce(
    url: &Url,
    req: &AnnounceRequest,
    opts: &TrackerOptions,
    deadline: Instant,
    state: &mut TrackerState,
) -> Result<AnnounceResponse, ErrorKind> {
    match run(
        url,
        UdpRequest::Announce(req.clone()),
        opts,
        deadline,
        state,
    )? {
        UdpReply::Announce(a) => Ok(a),
        UdpReply::Scrape(_) => Err(ErrorKind::BadResponse("scrape reply to an announce".into())),
    }
}

/// Scrapes over UDP.
pub fn scrape(
    url: &Url,
    hashes: &[[u8; 20]],
    opts: &TrackerOptions,
    deadline: Instant,
    state: &mut TrackerState,
) -> Result<Vec<ScrapeStats>, ErrorKind> {
    match run(
        url,
        UdpRequest::Scrape(hashes.to_vec()),
        opts,
        deadline,
        state,
    )? {
        UdpReply::Scrape(s) => Ok(s),
        UdpReply::Announce(_) => Err(ErrorKind::BadResponse("announce reply to a scrape".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: [1; 20],
            peer_id: [2; 20],
            port: 0x1ae1,
            uploaded: 3,
            downloaded: 4,
            left: 5,
            event: Event::Started,
            numwant: None,
            key: 0x0a0b0c0d,
        }
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32_at(b, at)
    }

    #[test]
    fn codec() {
        assert_eq!(
            encode_connect(0x01020304),
            [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]
        );
        let a = encode_announce(0x1122334455667788, 9, &request());
        assert_eq!(a.len(), 98);
        assert_eq!(&a[..8], &0x1122334455667788u64.to_be_bytes());
        assert_eq!((be32(&a, 8), be32(&a, 12)), (1, 9));
        assert_eq!(&a[16..36], &[1; 20]);
        assert_eq!(&a[36..56], &[2; 20]);
        assert_eq!(&a[56..64], &4u64.to_be_bytes()); // downloaded
        assert_eq!(&a[64..72], &5u64.to_be_bytes()); // left
        assert_eq!(&a[72..80], &3u64.to_be_bytes()); // uploaded
        assert_eq!(be32(&a, 80), 2); // started
        assert_eq!(be32(&a, 84), 0);
        assert_eq!(be32(&a, 88), 0x0a0b0c0d);
        assert_eq!(be32(&a, 92), u32::MAX); // numwant -1
        assert_eq!(&a[96..98], &[0x1a, 0xe1]);
        let s = encode_scrape(7, 8, &[[3; 20]; 100]);
        assert_eq!(s.len(), 16 + 20 * MAX_SCRAPE_HASHES);

        let mut r = vec![0, 0, 0, 0, 0, 0, 0, 5];
        r.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(
            decode_reply(&r),
            Ok(Reply::Connect {
                tid: 5,
                connection_id: 42
            })
        );
        assert!(decode_reply(&r[..15]).is_err());
        assert!(decode_reply(&r[..7]).is_err());
        let mut r = vec![0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 7, 8, 0, 0, 0, 2, 0, 0, 0, 3];
        r.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
        assert_eq!(
            decode_reply(&r),
            Ok(Reply::Announce {
                tid: 5,
                interval: 1800,
                leechers: 2,
                seeders: 3,
                peers: &[10, 0, 0, 1, 0x1a, 0xe1]
            })
        );
        assert!(decode_reply(&r[..19]).is_err());
        assert!(decode_reply(&r[..9]).is_err());
        assert_eq!(
            decode_reply(&r[..8]),
            Ok(Reply::Empty { tid: 5, action: 1 })
        );
        let r = [
            0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9,
        ];
        assert_eq!(
            decode_reply(&r),
            Ok(Reply::Scrape {
                tid: 5,
                entries: vec![(1, 2, 3)]
            })
        );
        let r = b"\0\0\0\x03\0\0\0\x05bad hash";
        assert_eq!(
            decode_reply(r),
            Ok(Reply::Error {
                tid: 5,
                message: "bad hash".into()
            })
        );
        assert!(decode_reply(&[0, 0, 0, 9, 0, 0, 0, 0]).is_err());
    }

    fn connect_reply(tid: u32, id: u64) -> Vec<u8> {
        let mut r = ACTION_CONNECT.to_be_bytes().to_vec();
        r.extend_from_slice(&tid.to_be_bytes());
        r.extend_from_slice(&id.to_be_bytes());
        r
    }

    fn announce_reply(tid: u32, peers: &[u8]) -> Vec<u8> {
        let mut r = ACTION_ANNOUNCE.to_be_bytes().to_vec();
        r.extend_from_slice(&tid.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2]);
        r.extend_from_slice(peers);
        r
    }

    fn sent(action: UdpAction) -> Vec<u8> {
        match action {
            UdpAction::Send(p) => p,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn retransmission_schedule() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let base = Duration::from_secs(15);
        let mut ex = UdpExchange::new(
            UdpRequest::Announce(request()),
            None,
            false,
            base,
            t0,
            &mut rng,
        );
        let mut now = t0;
        let mut sends = vec![];
        for _ in 0..100 {
            match ex.poll(now, &mut rng) {
                UdpAction::Send(p) => {
                    assert_eq!(be32(&p, 8), ACTION_CONNECT);
                    sends.push(now - t0);
                }
                UdpAction::Wait(t) => {
                    assert!(t > now);
                    now = t;
                }
                UdpAction::Done(r) => {
                    assert!(matches!(r, Err(ErrorKind::Timeout(_))));
                    break;
                }
            }
        }
        // Sent at 0, 15, 45, 105, ... : each wait is 15·2^n, n = 0..=8.
        let expected: Vec<Duration> = (0..=8u32)
            .map(|n| Duration::from_secs(15 * ((1u64 << n) - 1)))
            .collect();
        assert_eq!(sends, expected);
        assert_eq!(now - t0, Duration::from_secs(15 * 511));
    }

    #[test]
    fn connect_then_announce_ignoring_junk() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let mut ex = UdpExchange::new(
            UdpRequest::Announce(request()),
            None,
            false,
            Duration::from_millis(100),
            t0,
            &mut rng,
        );
        let p = sent(ex.poll(t0, &mut rng));
        let tid = be32(&p, 12);
        // Wrong transaction id, short packets, garbage: ignored.
        assert!(!ex.receive(&connect_reply(tid.wrapping_add(1), 77), t0, &mut rng));
        assert!(!ex.receive(&connect_reply(tid, 77)[..12], t0, &mut rng));
        assert!(!ex.receive(b"", t0, &mut rng));
        assert!(!ex.receive(&[0xff; 100], t0, &mut rng));
        assert!(!ex.receive(&announce_reply(tid, &[]), t0, &mut rng));
        assert!(matches!(ex.poll(t0, &mut rng), UdpAction::Wait(_)));
        assert!(ex.receive(&connect_reply(tid, 77), t0, &mut rng));
        let p = sent(ex.poll(t0, &mut rng));
        assert_eq!(p.len(), 98);
        assert_eq!(u64::from_be_bytes(p[..8].try_into().unwrap()), 77);
        let tid2 = be32(&p, 12);
        assert!(!ex.receive(&announce_reply(tid2 ^ 1, &[]), t0, &mut rng));
        assert!(ex.receive(
            &announce_reply(tid2, &[10, 0, 0, 1, 0, 80, 10, 0, 0, 2, 0, 0]),
            t0,
            &mut rng
        ));
        match ex.poll(t0, &mut rng) {
            UdpAction::Done(Ok(UdpReply::Announce(a))) => {
                assert_eq!(a.interval, Duration::from_secs(60));
                assert_eq!((a.complete, a.incomplete), (Some(2), Some(1)));
                assert_eq!(a.peers.len(), 1);
                assert_eq!(a.peers[0].addr.to_string(), "10.0.0.1:80");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ex.connection().map(|c| c.id), Some(77));
    }

    #[test]
    fn connection_id_reused_then_expires() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let t0 = Instant::now();
        let conn = ConnectionId {
            id: 5,
            obtained: t0,
        };
        let base = Duration::from_secs(15);
        // Within a minute: straight to the request.
        let mut ex = UdpExchange::new(
            UdpRequest::Scrape(vec![[1; 20]]),
            Some(conn),
            true,
            base,
            t0 + Duration::from_secs(59),
            &mut rng,
        );
        let p = sent(ex.poll(t0 + Duration::from_secs(59), &mut rng));
        assert_eq!(be32(&p, 8), ACTION_SCRAPE);
        // The id expires while waiting: the next send is a connect.
        let p = sent(ex.poll(t0 + Duration::from_secs(61), &mut rng));
        assert_eq!(be32(&p, 8), ACTION_CONNECT);
        // An old id is not used at all.
        let mut ex = UdpExchange::new(
            UdpRequest::Scrape(vec![[1; 20]]),
            Some(conn),
            true,
            base,
            t0 + Duration::from_secs(60),
            &mut rng,
        );
        assert_eq!(
            be32(&sent(ex.poll(t0 + Duration::from_secs(60), &mut rng)), 8),
            ACTION_CONNECT
        );
    }

    #[test]
    fn error_action_and_ipv6_peers() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let t0 = Instant::now();
        let conn = Some(ConnectionId {
            id: 5,
            obtained: t0,
        });
        let base = Duration::from_secs(1);
        let mut ex = UdpExchange::new(
            UdpRequest::Announce(request()),
            conn,
            false,
            base,
            t0,
            &mut rng,
        );
        let tid = be32(&sent(ex.poll(t0, &mut rng)), 12);
        let mut e = ACTION_ERROR.to_be_bytes().to_vec();
        e.extend_from_slice(&tid.to_be_bytes());
        e.extend_from_slice(b"unregistered torrent");
        assert!(ex.receive(&e, t0, &mut rng));
        assert_eq!(
            ex.poll(t0, &mut rng),
            UdpAction::Done(Err(ErrorKind::Failure("unregistered torrent".into())))
        );

        let mut ex = UdpExchange::new(
            UdpRequest::Announce(request()),
            conn,
            true,
            base,
            t0,
            &mut rng,
        );
        let tid = be32(&sent(ex.poll(t0, &mut rng)), 12);
        let mut peer = [0u8; 18];
        peer[15] = 1;
        peer[17] = 99;
        assert!(ex.receive(&announce_reply(tid, &peer), t0, &mut rng));
        match ex.poll(t0, &mut rng) {
            UdpAction::Done(Ok(UdpReply::Announce(a))) => {
                assert_eq!(a.peers[0].addr.to_string(), "[::1]:99");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scrape_exchange() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let conn = Some(ConnectionId {
            id: 5,
            obtained: t0,
        });
        let mut ex = UdpExchange::new(
            UdpRequest::Scrape(vec![[1; 20]]),
            conn,
            false,
            Duration::from_secs(1),
            t0,
            &mut rng,
        );
        let tid = be32(&sent(ex.poll(t0, &mut rng)), 12);
        let mut r = ACTION_SCRAPE.to_be_bytes().to_vec();
        r.extend_from_slice(&tid.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6]);
        assert!(ex.receive(&r, t0, &mut rng));
        assert_eq!(
            ex.poll(t0, &mut rng),
            UdpAction::Done(Ok(UdpReply::Scrape(vec![ScrapeStats {
                info_hash: [1; 20],
                complete: 4,
                incomplete: 6,
                downloaded: 5
            }])))
        );
    }
}

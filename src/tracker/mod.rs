//! Talking to BitTorrent trackers: HTTP and HTTPS (BEP 3, BEP 23 compact
//! peers, BEP 7 `peers6`, BEP 48 scrape) and UDP (BEP 15), over the tiers
//! of an announce-list (BEP 12).
//!
//! The protocol logic is sans-IO and unit-tested on its own: URL building
//! ([`url`]), HTTP request and response framing with chunked decoding
//! ([`http::ResponseParser`], [`http::ChunkedDecoder`]), bencoded answers
//! ([`response`]), the UDP packet codec and its retransmission state machine
//! ([`udp::UdpExchange`]), tier ordering ([`tiers::Tiers`]) and the announce
//! life cycle ([`schedule::AnnounceSchedule`]: events, intervals, back-off,
//! who gets `stopped`). Thin blocking drivers do the IO with `std::net`
//! sockets, bounded by the timeouts of [`TrackerOptions`]; they never panic
//! on what a tracker sends.
//!
//! The entry point for programs is [`Trackers`]:
//!
//! ```no_run
//! use bt::tracker::{AnnounceRequest, Event, TrackerOptions, Trackers};
//! let tiers = vec![vec!["udp://127.0.0.1:6969".to_string()]];
//! let mut trackers = Trackers::new(tiers, &mut rand::thread_rng());
//! let req = AnnounceRequest {
//!     info_hash: [0; 20],
//!     peer_id: *b"-BT0100-abcdefghijkl",
//!     port: 6881,
//!     uploaded: 0,
//!     downloaded: 0,
//!     left: 1000,
//!     event: Event::Started,
//!     numwant: None,
//!     key: 1,
//! };
//! let (url, answer) = trackers.announce(&req, &TrackerOptions::default())?;
//! for peer in &answer.peers {
//!     println!("{} from {url}", peer.addr);
//! }
//! # Ok::<(), bt::tracker::TrackerError>(())
//! ```

pub mod http;
pub mod response;
pub mod schedule;
pub mod tiers;
pub mod tls;
pub mod udp;
pub mod url;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use self::url::Url;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    /// A regular announce.
    #[default]
    None,
    /// The first announce of a download.
    Started,
    /// The download just finished.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

impl std::str::FromStr for Event {
    type Err = String;

    fn from_str(s: &str) -> Result<Event, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Event::None),
            "started" => Ok(Event::Started),
            "completed" => Ok(Event::Completed),
            "stopped" => Ok(Event::Stopped),
            _ => Err(format!(
                "unknown event '{s}' (use none, started, completed or stopped)"
            )),
        }
    }
}

/// What a client tells a tracker about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The port the client accepts peer connections on.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// How many peers to ask for (`None`: the tracker's default).
    pub numwant: Option<u32>,
    /// A random number, the same for every announce of one client run, so
    /// that the tracker recognises the client when its address changes.
    pub key: u32,
}

/// A peer a tracker handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Known only from trackers that send the dictionary model.
    pub peer_id: Option<[u8; 20]>,
}

/// A tracker's answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// How long to wait before the next regular announce.
    pub interval: Duration,
    /// Announcing sooner than this is refused by the tracker.
    pub min_interval: Option<Duration>,
    /// IPv4 and IPv6 peers, in the order the tracker sent them.
    pub peers: Vec<Peer>,
    /// Seeders.
    pub complete: Option<u64>,
    /// Leechers.
    pub incomplete: Option<u64>,
    /// To be sent back as `trackerid` (the [`Trackers`] do it).
    pub tracker_id: Option<Vec<u8>>,
    /// A warning the tracker gave along with its answer.
    pub warning: Option<String>,
}

/// Scrape figures for one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeStats {
    pub info_hash: [u8; 20],
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
    /// How many times the download was completed.
    pub downloaded: u64,
}

/// Limits and settings for talking to trackers.
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    /// Limit on one TCP connect.
    pub connect_timeout: Duration,
    /// Limit on waiting for the next bytes of an HTTP answer.
    pub read_timeout: Duration,
    /// Limit on one whole exchange with one tracker (redirects, UDP
    /// retransmissions and all).
    pub total_timeout: Duration,
    /// The first UDP retransmission delay; the n-th waits `base·2^n`
    /// (BEP 15: 15 s, n up to 8).
    pub udp_retransmit_base: Duration,
    /// Largest HTTP response body accepted.
    pub max_response: usize,
    /// Most HTTP redirects followed.
    pub max_redirects: u32,
    /// PEM files of certificate authorities trusted besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Trust the system's certificate authorities (`SSL_CERT_FILE`, else
    /// `/etc/ssl/certs/ca-certificates.crt`).
    pub system_roots: bool,
    pub user_agent: String,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(15),
            total_timeout: Duration::from_secs(30),
            udp_retransmit_base: Duration::from_secs(15),
            max_response: 4 << 20,
            max_redirects: 5,
            ca_files: Vec::new(),
            system_roots: true,
            user_agent: format!("bt/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl TrackerOptions {
    /// Sets the limit on one exchange and lowers the connect and read
    /// limits to it.
    pub fn with_timeout(mut self, total: Duration) -> Self {
        self.total_timeout = total;
        self.connect_timeout = self.connect_timeout.min(total);
        self.read_timeout = self.read_timeout.min(total);
        self
    }
}

/// What went wrong with one tracker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("invalid tracker URL: {0}")]
    InvalidUrl(String),
    #[error("cannot resolve host name '{host}': {message}")]
    Resolve { host: String, message: String },
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("network error: {0}")]
    Io(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("HTTP status {status} {reason}")]
    Status { status: u16, reason: String },
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(u32),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    /// The tracker answered with a `failure reason` (HTTP) or an error
    /// action (UDP).
    #[error("tracker refused: {0}")]
    Failure(String),
    #[error("invalid tracker response: {0}")]
    BadResponse(String),
    #[error("{0}")]
    ScrapeUnsupported(String),
}

/// An error from a tracker, naming its URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("{url}{}: {kind}", via.as_ref().map(|v| format!(" (redirected to {v})")).unwrap_or_default())]
    Tracker {
        url: String,
        /// The URL that was being fetched after redirects, if any.
        via: Option<String>,
        kind: ErrorKind,
    },
    #[error("no tracker to announce to (the torrent has none; give one with --tracker)")]
    NoTrackers,
    /// Every tracker tried failed; each error in order.
    #[error("{}", all_failed(.0))]
    AllFailed(Vec<TrackerError>),
}

fn all_failed(errors: &[TrackerError]) -> String {
    if let [one] = errors {
        return one.to_string();
    }
    let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    format!("all {} trackers failed: {}", errors.len(), list.join("; "))
}

impl TrackerError {
    pub fn new(url: &str, kind: ErrorKind) -> TrackerError {
        TrackerError::Tracker {
            url: url.to_string(),
            via: None,
            kind,
        }
    }

    /// The single tracker errors this error is made of.
    pub fn errors(&self) -> Vec<&TrackerError> {
        match self {
            TrackerError::AllFailed(v) => v.iter().flat_map(|e| e.errors()).collect(),
            other => vec![other],
        }
    }

    /// The `failure reason` when a tracker refused.
    pub fn failure_reason(&self) -> Option<&str> {
        match self {
            TrackerError::Tracker {
                kind: ErrorKind::Failure(r),
                ..
            } => Some(r),
            _ => None,
        }
    }
}

/// Resolves a host name, giving up at `deadline` (the system resolver has
/// no timeout of its own, so a slow lookup runs on a helper thread that is
/// left behind when it is too slow). IP literals need no lookup.
pub(crate) fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, ErrorKind> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            use std::net::ToSocketAddrs;
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            let _ = tx.send(result);
        })
        .map_err(|e| ErrorKind::Io(format!("cannot start a resolver thread: {e}")))?;
    let wait = deadline.saturating_duration_since(Instant::now());
    let resolve_error = |message: String| ErrorKind::Resolve {
        host: host.to_string(),
        message,
    };
    match rx.recv_timeout(wait) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(resolve_error("no address".into())),
        Ok(Err(e)) => Err(resolve_error(e)),
        Err(_) => Err(resolve_error(format!(
            "no answer from the resolver within {:.1} s",
            wait.as_secs_f64()
        ))),
    }
}

/// What the client remembers about one tracker between announces.
#[derive(Debug, Clone, Default)]
pub struct TrackerState {
    /// The `tracker id` it gave, sent back as `trackerid`.
    pub tracker_id: Option<Vec<u8>>,
    /// A UDP connection id and where it is valid.
    pub udp_connection: Option<(SocketAddr, udp::ConnectionId)>,
}

/// Announces to one tracker URL (http, https or udp), updating `state`.
pub fn announce_one(
    url: &str,
    req: &AnnounceRequest,
    opts: &TrackerOptions,
    state: &mut TrackerState,
) -> Result<AnnounceResponse, TrackerError> {
    let parsed = Url::parse(url).map_err(|e| TrackerError::new(url, ErrorKind::InvalidUrl(e)))?;
    let deadline = Instant::now() + opts.total_timeout;
    let result = match parsed.scheme {
        url::Scheme::Udp => udp::announce(&parsed, req, opts, deadline, state)
            .map_err(|kind| TrackerError::new(url, kind)),
        _ => {
            let full = url::announce_url(url, req, state.tracker_id.as_deref());
            http::get(&full, opts, deadline)
                .map_err(|(via, kind)| TrackerError::Tracker {
                    url: url.to_string(),
                    via,
                    kind,
                })
                .and_then(|resp| {
                    response::parse_announce_http(&resp.body, resp.status, &resp.reason)
                        .map_err(|kind| TrackerError::new(url, kind))
                })
        }
    };
    if let Ok(answer) = &result {
        if answer.tracker_id.is_some() {
            state.tracker_id.clone_from(&answer.tracker_id);
        }
        log::debug!(
            "{url}: {} peers, interval {} s",
            answer.peers.len(),
            answer.interval.as_secs()
        );
    }
    result
}

/// Scrapes one tracker URL for some torrents.
pub fn scrape_one(
    url: &str,
    info_hashes: &[[u8; 20]],
    opts: &TrackerOptions,
    state: &mut TrackerState,
) -> Result<Vec<ScrapeStats>, TrackerError> {
    let parsed = Url::parse(url).map_err(|e| TrackerError::new(url, ErrorKind::InvalidUrl(e)))?;
    let deadline = Instant::now() + opts.total_timeout;
    match parsed.scheme {
        url::Scheme::Udp => udp::scrape(&parsed, info_hashes, opts, deadline, state)
            .map_err(|kind| TrackerError::new(url, kind)),
        _ => {
            let full = url::scrape_url(url, info_hashes).ok_or_else(|| {
                TrackerError::new(
                    url,
                    ErrorKind::ScrapeUnsupported(
                        "this tracker has no scrape URL (its last path component does not begin with 'announce')"
                            .into(),
                    ),
                )
            })?;
            let resp =
                http::get(&full, opts, deadline).map_err(|(via, kind)| TrackerError::Tracker {
                    url: url.to_string(),
                    via,
                    kind,
                })?;
            response::parse_scrape_http(&resp.body, resp.status, &resp.reason, info_hashes)
                .map_err(|kind| TrackerError::new(url, kind))
        }
    }
}

/// One tracker of a [`Trackers`] set.
#[derive(Debug, Clone)]
struct Tracker {
    url: String,
    state: TrackerState,
}

/// The trackers of a torrent in their BEP 12 tiers, with what each one
/// told us before. Trackers within a tier are shuffled once, tried in
/// order, and the one that answers moves to the front of its tier.
#[derive(Debug, Clone)]
pub struct Trackers {
    tiers: tiers::Tiers<Tracker>,
}

impl Trackers {
    /// Sets up the tiers (duplicates and empty tiers dropped), shuffling
    /// each tier with `rng`.
    pub fn new(tiers: Vec<Vec<String>>, rng: &mut impl rand::Rng) -> Trackers {
        Trackers::from_tiers(tiers, Some(rng))
    }

    /// Sets up the tiers without shuffling: every URL is tried in the
    /// order given (for URLs a user listed on the command line).
    pub fn in_order(tiers: Vec<Vec<String>>) -> Trackers {
        Trackers::from_tiers::<rand::rngs::ThreadRng>(tiers, None)
    }

    fn from_tiers<R: rand::Rng>(tiers: Vec<Vec<String>>, rng: Option<&mut R>) -> Trackers {
        let mut seen = HashSet::new();
        let tiers: Vec<Vec<Tracker>> = tiers
            .into_iter()
            .map(|tier| {
                tier.into_iter()
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty() && seen.insert(u.clone()))
                    .map(|url| Tracker {
                        url,
                        state: TrackerState::default(),
                    })
                    .collect()
            })
            .collect();
        let tiers = match rng {
            Some(rng) => tiers::Tiers::new(tiers, rng),
            None => tiers::Tiers::in_order(tiers),
        };
        Trackers { tiers }
    }

    /// Every URL in the order they would be tried.
    pub fn urls(&self) -> Vec<&str> {
        self.tiers.iter().map(|t| t.url.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Announces to the first tracker that answers, tier by tier; returns
    /// its URL and answer. A tracker's `failure reason` counts as a failure
    /// and the next tracker is tried; when all fail, every error is returned.
    pub fn announce(
        &mut self,
        req: &AnnounceRequest,
        opts: &TrackerOptions,
    ) -> Result<(String, AnnounceResponse), TrackerError> {
        // BEP 12: the tracker that answers moves to the front of its tier.
        self.first_answer(true, |url, state| announce_one(url, req, opts, state))
    }

    /// Tries the trackers tier by tier until `exchange` succeeds with one;
    /// returns its URL and answer, or every error when all fail. With
    /// `promote`, the tracker that answered moves to the front of its tier.
    fn first_answer<T>(
        &mut self,
        promote: bool,
        mut exchange: impl FnMut(&str, &mut TrackerState) -> Result<T, TrackerError>,
    ) -> Result<(String, T), TrackerError> {
        let mut errors = Vec::new();
        for pos in self.tiers.order() {
            let tracker = self.tiers.get_mut(pos);
            log::debug!("asking {}", tracker.url);
            match exchange(&tracker.url, &mut tracker.state) {
                Ok(answer) => {
                    let url = tracker.url.clone();
                    if promote {
                        self.tiers.promote(pos);
                    }
                    return Ok((url, answer));
                }
                Err(e) => {
                    log::info!("{e}");
                    errors.push(e);
                }
            }
        }
        Err(if errors.is_empty() {
            TrackerError::NoTrackers
        } else {
            TrackerError::AllFailed(errors)
        })
    }

    /// Announces to every tracker at once (one thread each); returns each
    /// tracker's URL and result in tier order.
    pub fn announce_all(
        &mut self,
        req: &AnnounceRequest,
        opts: &TrackerOptions,
    ) -> Vec<(String, Result<AnnounceResponse, TrackerError>)> {
        self.for_all(|t| announce_one(&t.url, req, opts, &mut t.state))
    }

    /// Announces to the trackers whose URLs are given (e.g. `event=stopped`
    /// to those that answered before), one thread each.
    pub fn announce_to(
        &mut self,
        urls: &[String],
        req: &AnnounceRequest,
        opts: &TrackerOptions,
    ) -> Vec<(String, Result<AnnounceResponse, TrackerError>)> {
        let wanted: HashSet<&str> = urls.iter().map(String::as_str).collect();
        let mut results = self.for_all(|t| {
            if wanted.contains(t.url.as_str()) {
                Some(announce_one(&t.url, req, opts, &mut t.state))
            } else {
                None
            }
        });
        results
            .drain(..)
            .filter_map(|(u, r)| r.map(|r| (u, r)))
            .collect()
    }

    /// Scrapes the first tracker that answers, tier by tier.
    pub fn scrape(
        &mut self,
        info_hashes: &[[u8; 20]],
        opts: &TrackerOptions,
    ) -> Result<(String, Vec<ScrapeStats>), TrackerError> {
        self.first_answer(false, |url, state| {
            scrape_one(url, info_hashes, opts, state)
        })
    }

    /// Scrapes every tracker at once.
    pub fn scrape_all(
        &mut self,
        info_hashes: &[[u8; 20]],
        opts: &TrackerOptions,
    ) -> Vec<(String, Result<Vec<ScrapeStats>, TrackerError>)> {
        self.for_all(|t| scrape_one(&t.url, info_hashes, opts, &mut t.state))
    }

    fn for_all<T: Send>(&mut self, work: impl Fn(&mut Tracker) -> T + Sync) -> Vec<(String, T)> {
        let work = &work;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .tiers
                .iter_mut()
                .map(|t| {
                    let url = t.url.clone();
                    (url, scope.spawn(move || work(t)))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|(url, h)| match h.join() {
                    Ok(r) => Some((url, r)),
                    Err(_) => {
                        log::error!("{url}: the tracker thread panicked (a bug)");
                        None
                    }
                })
                .collect()
        })
    }
}

/// Peers of several answers without duplicates (same address), keeping the
/// first one seen, and the peer id when any answer knew it.
pub fn merge_peers<'a>(answers: impl IntoIterator<Item = &'a [Peer]>) -> Vec<Peer> {
    let mut out: Vec<Peer> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for peers in answers {
        for p in peers {
            match index.get(&p.addr) {
                Some(&i) => {
                    let known: &mut Peer = &mut out[i];
                    if known.peer_id.is_none() {
                        known.peer_id = p.peer_id;
                    }
                }
                None => {
                    index.insert(p.addr, out.len());
                    out.push(*p);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_peers() {
        let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let b: SocketAddr = "[::1]:5".parse().unwrap();
        let one = [
            Peer {
                addr: a,
                peer_id: None,
            },
            Peer {
                addr: b,
                peer_id: None,
            },
        ];
        let two = [
            Peer {
                addr: a,
                peer_id: Some([7; 20]),
            },
            Peer {
                addr: a,
                peer_id: None,
            },
        ];
        let merged = merge_peers([&one[..], &two[..]]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].peer_id, Some([7; 20]));
    }

    #[test]
    fn trackers_dedupe() {
        let t = Trackers::in_order(vec![
            vec!["http://a/announce".into(), "http://b/announce".into()],
            vec![],
            vec!["http://a/announce".into(), " udp://c:1 ".into()],
        ]);
        assert_eq!(
            t.urls(),
            vec!["http://a/announce", "http://b/announce", "udp://c:1"]
        );
    }

    #[test]
    fn error_messages_name_the_url() {
        let e = TrackerError::new(
            "http://t/announce",
            ErrorKind::Failure("not authorized".into()),
        );
        assert_eq!(
            e.to_string(),
            "http://t/announce: tracker refused: not authorized"
        );
        assert_eq!(e.failure_reason(), Some("not authorized"));
        let e = TrackerError::Tracker {
            url: "http://a/".into(),
            via: Some("http://b/".into()),
            kind: ErrorKind::TooManyRedirects(5),
        };
        assert_eq!(
            e.to_string(),
            "http://a/ (redirected to http://b/): too many redirects (more than 5)"
        );
        let all = TrackerError::AllFailed(vec![e.clone(), e]);
        assert!(all
            .to_string()
            .starts_with("all 2 trackers failed: http://a/"));
        assert_eq!(all.errors().len(), 2);
    }
}

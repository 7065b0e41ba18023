//! Tracker URLs: parsing `http`, `https` and `udp` URLs (IPv6 literals
//! included), percent-encoding as the BitTorrent spec wants it, building
//! announce and scrape URLs, and resolving redirect locations. Pure
//! functions, no IO.

use super::{AnnounceRequest, Event};

/// The protocols a tracker URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Udp,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Udp => "udp",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Udp => None,
        }
    }
}

/// A parsed tracker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// The host without brackets (`::1` for `[::1]`).
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`; the fragment is dropped.
    pub path_and_query: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path][?query]`; user info is refused.
    pub fn parse(text: &str) -> Result<Url, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| "not a URL (expected scheme://host/...)".to_string())?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "udp" => Scheme::Udp,
            other => {
                return Err(format!(
                    "unsupported scheme '{other}' (use http, https or udp)"
                ))
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("user names in tracker URLs are not supported".into());
        }
        let (host, port_text) = if let Some(after) = authority.strip_prefix('[') {
            let close = after
                .find(']')
                .ok_or_else(|| "unterminated IPv6 address (missing ']')".to_string())?;
            let host = &after[..close];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("'{host}' is not an IPv6 address"));
            }
            let rest = &after[close + 1..];
            let port = match rest.strip_prefix(':') {
                Some(p) => Some(p),
                None if rest.is_empty() => None,
                None => return Err(format!("unexpected '{rest}' after the IPv6 address")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("no host name".into());
        }
        if host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/' || b == b'\\')
        {
            return Err(format!("invalid host name '{host}'"));
        }
        let port = match port_text {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("invalid port '{p}'")),
            },
            None => scheme
                .default_port()
                .ok_or_else(|| "a udp:// tracker URL needs a port".to_string())?,
        };
        let tail = tail.split('#').next().unwrap_or("");
        if tail.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err("spaces or control characters in the path".into());
        }
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
            path_and_query,
        })
    }

    /// The host as written in a URL or `Host` header (`[::1]` for IPv6).
    pub fn host_for_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host[:port]` for the `Host` header: the port only when not the default.
    pub fn authority(&self) -> String {
        if Some(self.port) == self.scheme.default_port() {
            self.host_for_header()
        } else {
            format!("{}:{}", self.host_for_header(), self.port)
        }
    }

    /// `scheme://authority`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority())
    }

    /// The URL written back as text.
    pub fn to_text(&self) -> String {
        format!("{}{}", self.origin(), self.path_and_query)
    }

    /// Resolves a redirect's `Location` (absolute, scheme-relative,
    /// absolute-path or relative) against this URL.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let location = location.trim();
        if location.is_empty() {
            return Err("empty Location header".into());
        }
        if location.contains("://") && !location.starts_with('/') {
            let url = Url::parse(location)?;
            if url.scheme == Scheme::Udp {
                return Err("redirect to a udp:// URL".into());
            }
            return Ok(url);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme.as_str()));
        }
        if location.starts_with('/') {
            return Url::parse(&format!("{}{location}", self.origin()));
        }
        // Relative to the current path's folder.
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        let folder = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let folder = if folder.is_empty() { "/" } else { folder };
        Url::parse(&format!("{}{folder}{location}", self.origin()))
    }
}

/// Percent-encodes bytes as the BitTorrent spec asks: `0-9a-zA-Z.-_~` as
/// is, every other byte as `%nn` (upper-case hex).
pub fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Appends `params` (already encoded) to a URL, with `?` or `&` as the URL
/// already has a query string or not.
fn append_query(base: &str, params: &str) -> String {
    let base = base.split('#').next().unwrap_or(base);
    if base.ends_with('?') || base.ends_with('&') {
        format!("{base}{params}")
    } else if base.contains('?') {
        format!("{base}&{params}")
    } else {
        format!("{base}?{params}")
    }
}

/// The `event` parameter's value (`None` sends none).
pub fn event_name(event: Event) -> Option<&'static str> {
    match event {
        Event::None => None,
        Event::Started => Some("started"),
        Event::Completed => Some("completed"),
        Event::Stopped => Some("stopped"),
    }
}

/// The full HTTP announce URL for `req`, keeping the tracker's own query
/// string; `tracker_id` is the `tracker id` a previous answer gave.
pub fn announce_url(base: &str, req: &AnnounceRequest, tracker_id: Option<&[u8]>) -> String {
    let mut q = format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        percent_encode(&req.info_hash),
        percent_encode(&req.peer_id),
        req.port,
        req.uploaded,
        req.downloaded,
        req.left
    );
    if let Some(n) = req.numwant {
        q.push_str(&format!("&numwant={n}"));
    }
    if let Some(e) = event_name(req.event) {
        q.push_str(&format!("&event={e}"));
    }
    q.push_str(&format!("&key={:08X}", req.key));
    if let Some(id) = tracker_id {
        q.push_str(&format!("&trackerid={}", percent_encode(id)));
    }
    append_query(base, &q)
}

/// The scrape URL of an HTTP announce URL: the last path component must
/// begin with `announce`, which becomes `scrape` (`/x/announce.php?k=1` →
/// `/x/scrape.php?k=1`). `None` when the tracker has no scrape URL.
pub fn scrape_base(announce: &str) -> Option<String> {
    let (before_query, query) = match announce.find('?') {
        Some(i) => announce.split_at(i),
        None => (announce, ""),
    };
    let slash = before_query.rfind('/')?;
    // The slash must be in the path, not the `//` after the scheme.
    let scheme_end = before_query.find("://").map_or(0, |i| i + 3);
    if slash < scheme_end {
        return None;
    }
    let last = &before_query[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    Some(format!("{}scrape{rest}{query}", &before_query[..slash + 1]))
}

/// The full scrape URL for some info-hashes.
pub fn scrape_url(announce: &str, info_hashes: &[[u8; 20]]) -> Option<String> {
    let base = scrape_base(announce)?;
    let q: Vec<String> = info_hashes
        .iter()
        .map(|h| format!("info_hash={}", percent_encode(h)))
        .collect();
    Some(append_query(&base, &q.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_of_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let encoded = percent_encode(&all);
        // Decode it back by hand, checking every byte's form.
        let mut decoded = Vec::new();
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                assert!(hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
                let b = u8::from_str_radix(hex, 16).unwrap();
                assert!(!(b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
                decoded.push(b);
                i += 3;
            } else {
                let b = bytes[i];
                assert!(b.is_ascii_alphanumeric() || b"-._~".contains(&b), "{b}");
                decoded.push(b);
                i += 1;
            }
        }
        assert_eq!(decoded, all);
        assert_eq!(
            percent_encode(
                b"\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a"
            ),
            "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"
        );
        assert_eq!(percent_encode(b"a b/~"), "a%20b%2F~");
    }

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://tracker.example:6969/announce?x=1#frag").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, "tracker.example");
        assert_eq!(u.port, 6969);
        assert_eq!(u.path_and_query, "/announce?x=1");
        assert_eq!(u.authority(), "tracker.example:6969");
        let u = Url::parse("https://[::1]:8443/a").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:8443");
        let u = Url::parse("HTTP://h").unwrap();
        assert_eq!((u.port, u.path_and_query.as_str()), (80, "/"));
        assert_eq!(Url::parse("https://h/x").unwrap().authority(), "h");
        let u = Url::parse("udp://[::1]:6969").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 6969));
        assert!(Url::parse("udp://h/announce").is_err());
        assert!(Url::parse("ftp://h/").is_err());
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://h:0/").is_err());
        assert!(Url::parse("http://h:99999/").is_err());
        assert!(Url::parse("http://[::1/").is_err());
        assert!(Url::parse("http://[zz]/").is_err());
        assert!(Url::parse("http://u@h/").is_err());
        assert!(Url::parse("tracker").is_err());
        assert!(Url::parse("http://h/a b").is_err());
    }

    #[test]
    fn joins_locations() {
        let base = Url::parse("http://h:1/a/b/announce?x=1").unwrap();
        let j = |l: &str| base.join(l).unwrap().to_text();
        assert_eq!(j("https://o/p"), "https://o/p");
        assert_eq!(j("//o:5/p"), "http://o:5/p");
        assert_eq!(j("/root?q"), "http://h:1/root?q");
        assert_eq!(j("other?y=2"), "http://h:1/a/b/other?y=2");
        assert!(base.join("").is_err());
        assert!(base.join("udp://h:1/").is_err());
    }

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: [0xab; 20],
            peer_id: *b"-BT0100-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            numwant: Some(50),
            key: 0xdead_beef,
        }
    }

    #[test]
    fn announce_urls() {
        let url = announce_url("http://t/announce", &request(), None);
        assert_eq!(
            url,
            format!(
                "http://t/announce?info_hash={}&peer_id=-BT0100-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3&compact=1&numwant=50&event=started&key=DEADBEEF",
                "%AB".repeat(20)
            )
        );
        let mut r = request();
        r.event = Event::None;
        r.numwant = None;
        let url = announce_url("http://t/announce?passkey=x", &r, Some(b"id 1"));
        assert!(url.starts_with("http://t/announce?passkey=x&info_hash="));
        assert!(!url.contains("event="));
        assert!(!url.contains("numwant="));
        assert!(url.ends_with("&trackerid=id%201"));
        assert!(announce_url("http://t/a?", &r, None).starts_with("http://t/a?info_hash="));
    }

    #[test]
    fn scrape_url_rule() {
        let s = |u: &str| scrape_base(u);
        assert_eq!(
            s("http://e.com/announce").as_deref(),
            Some("http://e.com/scrape")
        );
        assert_eq!(
            s("http://e.com/x/announce").as_deref(),
            Some("http://e.com/x/scrape")
        );
        assert_eq!(
            s("http://e.com/announce.php").as_deref(),
            Some("http://e.com/scrape.php")
        );
        assert_eq!(s("http://e.com/a?x2%0644").as_deref(), None);
        assert_eq!(
            s("http://e.com/announce?x2%0644").as_deref(),
            Some("http://e.com/scrape?x2%0644")
        );
        assert_eq!(s("http://e.com/a?x=y%3D1").as_deref(), None);
        assert_eq!(s("http://e.com/a").as_deref(), None);
        assert_eq!(s("http://e.com/x%064announce").as_deref(), None);
        assert_eq!(s("http://e.com/announce/x").as_deref(), None);
        assert_eq!(s("http://announce").as_deref(), None);
        assert_eq!(
            scrape_url("http://e.com/announce?k=1", &[[1; 20]]).unwrap(),
            format!("http://e.com/scrape?k=1&info_hash={}", "%01".repeat(20))
        );
    }
}

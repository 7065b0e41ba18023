//! A small HTTP/1.1 client of our own. The sans-IO part builds `GET`
//! requests and parses responses fed in pieces ([`ResponseParser`], with
//! [`ChunkedDecoder`] for chunked bodies), bounded in size. The driver
//! ([`get`]) runs it over a `TcpStream`, or over rustls for `https`, with
//! connect and read timeouts, an overall deadline and a bounded number of
//! redirects.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::url::{Scheme, Url};
use super::{tls, ErrorKind, TrackerOptions};

/// Longest response header section accepted.
pub const MAX_HEAD: usize = 64 << 10;
/// Longest line in a chunked body's framing (sizes, trailers).
const MAX_CHUNK_LINE: usize = 4096;

/// What is wrong with a response's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("response body larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("connection closed {0}")]
    Truncated(String),
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    /// Header names in lower case, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The bytes of a `GET` request for `url`.
pub fn build_get(url: &Url, user_agent: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.path_and_query,
        url.authority()
    )
    .into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Decodes a `Transfer-Encoding: chunked` body fed in arbitrary pieces.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }

    /// Whether the last chunk and the trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, appending data to `out` but never beyond `max`
    /// bytes in all. Returns how much of `input` was used: all of it unless
    /// the body ended inside it.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Done => return Ok(i),
                ChunkState::Data(remaining) => {
                    let n = (input.len() - i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    if out.len() + n > max {
                        return Err(HttpError::TooLarge(max));
                    }
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                _ => {
                    let rest = &input[i..];
                    let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => (&rest[..p], true),
                        None => (rest, false),
                    };
                    if self.line.len() + piece.len() > MAX_CHUNK_LINE {
                        return Err(HttpError::Malformed("chunk header line too long".into()));
                    }
                    self.line.extend_from_slice(piece);
                    i += piece.len() + usize::from(complete);
                    if complete {
                        let mut line = std::mem::take(&mut self.line);
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        self.on_line(&line, out.len(), max)?;
                    }
                }
            }
        }
        Ok(i)
    }

    fn on_line(&mut self, line: &[u8], have: usize, max: usize) -> Result<(), HttpError> {
        match self.state {
            ChunkState::Size => {
                let text = String::from_utf8_lossy(line);
                let size_text = text.split(';').next().unwrap_or("").trim();
                if size_text.is_empty()
                    || size_text.len() > 15
                    || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(HttpError::Malformed(format!(
                        "bad chunk size line '{}'",
                        text.chars().take(40).collect::<String>()
                    )));
                }
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| HttpError::Malformed("bad chunk size".into()))?;
                if size == 0 {
                    self.state = ChunkState::Trailer;
                } else if have as u64 + size > max as u64 {
                    return Err(HttpError::TooLarge(max));
                } else {
                    self.state = ChunkState::Data(size);
                }
            }
            ChunkState::DataEnd => {
                if !line.is_empty() {
                    return Err(HttpError::Malformed(
                        "chunk data longer than its announced size".into(),
                    ));
                }
                self.state = ChunkState::Size;
            }
            ChunkState::Trailer => {
                if line.is_empty() {
                    self.state = ChunkState::Done;
                }
            }
            ChunkState::Data(_) | ChunkState::Done => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
}

/// A parsed status line and header section.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// Names in lower case, values trimmed, in order.
    pub(crate) headers: Vec<(String, String)>,
}

/// Parses a response fed in pieces, bounded: a header section of at most
/// [`MAX_HEAD`] bytes and a body of at most `max_body` bytes.
#[derive(Debug, Clone)]
pub struct ResponseParser {
    max_body: usize,
    head_buf: Vec<u8>,
    head: Option<Head>,
    framing: Framing,
    body: Vec<u8>,
    done: bool,
}

impl ResponseParser {
    pub fn new(max_body: usize) -> Self {
        ResponseParser {
            max_body,
            head_buf: Vec::new(),
            head: None,
            framing: Framing::Close,
            body: Vec::new(),
            done: false,
        }
    }

    /// Whether the whole response was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds the next bytes; bytes after the end of the response are ignored.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), HttpError> {
        let mut data = data;
        // Whether `head_buf` holds bytes not yet searched from the start
        // (after a `100 Continue` head).
        let mut rescan = false;
        loop {
            if self.done {
                return Ok(());
            }
            if self.head.is_some() {
                return self.feed_body(data);
            }
            let search_from = if rescan {
                0
            } else {
                self.head_buf.len().saturating_sub(3)
            };
            rescan = false;
            let room = (MAX_HEAD + 4).saturating_sub(self.head_buf.len());
            let take = data.len().min(room);
            self.head_buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            match find_head_end(&self.head_buf, search_from) {
                Some(end) => {
                    let rest = self.head_buf.split_off(end);
                    let head = parse_head(&self.head_buf)?;
                    if (100..200).contains(&head.status) {
                        self.head_buf = rest;
                        rescan = true;
                        continue;
                    }
                    self.head_buf = Vec::new();
                    self.start_body(head)?;
                    self.feed_body(&rest)?;
                }
                None if self.head_buf.len() > MAX_HEAD => {
                    return Err(HttpError::Malformed(format!(
                        "header section longer than {MAX_HEAD} bytes"
                    )));
                }
                None if data.is_empty() => return Ok(()),
                None => {}
            }
        }
    }

    fn start_body(&mut self, head: Head) -> Result<(), HttpError> {
        let get = |name: &'static str| head.headers.iter().filter(move |(n, _)| n == name);
        let chunked =
            get("transfer-encoding").any(|(_, v)| v.to_ascii_lowercase().contains("chunked"));
        let mut length: Option<u64> = None;
        for (_, v) in get("content-length") {
            let n: u64 = v
                .parse()
                .map_err(|_| HttpError::Malformed(format!("bad Content-Length '{v}'")))?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::Malformed(
                    "conflicting Content-Length headers".into(),
                ));
            }
            length = Some(n);
        }
        let no_body = head.status == 204 || head.status == 304;
        self.framing = if no_body {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked(ChunkedDecoder::new())
        } else if let Some(n) = length {
            if n > self.max_body as u64 {
                return Err(HttpError::TooLarge(self.max_body));
            }
            Framing::Length(n)
        } else {
            Framing::Close
        };
        if matches!(self.framing, Framing::Length(0)) {
            self.done = true;
        }
        self.head = Some(head);
        Ok(())
    }

    fn feed_body(&mut self, data: &[u8]) -> Result<(), HttpError> {
        if self.done || data.is_empty() {
            return Ok(());
        }
        match &mut self.framing {
            Framing::Length(remaining) => {
                let n = data
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                self.body.extend_from_slice(&data[..n]);
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.done = true;
                }
            }
            Framing::Chunked(decoder) => {
                decoder.feed(data, &mut self.body, self.max_body)?;
                if decoder.is_done() {
                    self.done = true;
                }
            }
            Framing::Close => {
                if self.body.len() + data.len() > self.max_body {
                    return Err(HttpError::TooLarge(self.max_body));
                }
                self.body.extend_from_slice(data);
            }
        }
        Ok(())
    }

    /// The peer closed the connection.
    pub fn eof(&mut self) -> Result<(), HttpError> {
        if self.done {
            return Ok(());
        }
        if self.head.is_none() {
            return Err(HttpError::Truncated(if self.head_buf.is_empty() {
                "without sending a response".into()
            } else {
                "in the middle of the response header".into()
            }));
        }
        match &self.framing {
            Framing::Close => {
                self.done = true;
                Ok(())
            }
            Framing::Length(n) => Err(HttpError::Truncated(format!(
                "{n} bytes before the end of the body (Content-Length)"
            ))),
            Framing::Chunked(_) => Err(HttpError::Truncated(
                "in the middle of a chunked body".into(),
            )),
        }
    }

    /// The response, once [`is_done`](Self::is_done).
    pub fn into_response(self) -> Option<HttpResponse> {
        let head = self.head?;
        self.done.then_some(HttpResponse {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body: self.body,
        })
    }
}

/// The end of the header section (after the blank line), if present.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1..].starts_with(b"\r\n") {
                return Some(i + 3);
            }
            if buf[i + 1..].starts_with(b"\n") {
                return Some(i + 2);
            }
        }
        i += 1;
    }
    None
}

pub(crate) fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        let shown: String = status_line.chars().take(40).collect();
        return Err(HttpError::Malformed(format!(
            "not an HTTP/1.x status line: '{}'",
            shown.escape_default()
        )));
    }
    let code = parts.next().unwrap_or("");
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && (100..=999).contains(&s) => s,
        _ => {
            return Err(HttpError::Malformed(format!(
                "bad status code '{}'",
                code.escape_default()
            )))
        }
    };
    let reason = parts.next().unwrap_or("").trim().to_string();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            HttpError::Malformed(format!(
                "header line without ':': '{}'",
                line.chars().take(40).collect::<String>().escape_default()
            ))
        })?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head {
        status,
        reason,
        headers,
    })
}

// ---- The driver ---------------------------------------------------------

/// A connection, plain or TLS.
/// A connection, plain or TLS (also the web seed fetcher's).
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Opens a TCP connection to the first address of `host` that accepts.
pub(crate) fn connect_tcp(
    host: &str,
    port: u16,
    opts: &TrackerOptions,
    deadline: Instant,
) -> Result<TcpStream, ErrorKind> {
    let addrs = super::resolve(host, port, deadline)?;
    let mut last = None;
    for addr in addrs {
        let Some(left) = remaining(deadline) else {
            break;
        };
        let limit = opts.connect_timeout.min(left);
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => {
                let message = if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) {
                    format!("no answer within {}", secs(limit))
                } else {
                    e.to_string()
                };
                log::debug!("connecting to {addr}: {message}");
                last = Some(ErrorKind::Connect {
                    addr: addr.to_string(),
                    message,
                });
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        ErrorKind::Timeout(format!("no connection within {}", secs(opts.total_timeout)))
    }))
}

/// Maps an IO error during an exchange to what the user should read.
fn io_error(
    e: &std::io::Error,
    host: &str,
    opts: &TrackerOptions,
    deadline: Instant,
    what: &str,
) -> ErrorKind {
    if let Some(message) = tls::describe_io_error(e, host) {
        return ErrorKind::Tls(message);
    }
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            if remaining(deadline).is_none() {
                ErrorKind::Timeout(format!(
                    "no complete answer within {} while {what}",
                    secs(opts.total_timeout)
                ))
            } else {
                ErrorKind::Timeout(format!(
                    "nothing received for {} while {what}",
                    secs(opts.read_timeout)
                ))
            }
        }
        _ => ErrorKind::Io(format!("{what}: {e}")),
    }
}

/// Sets the socket's timeouts to the smaller of the read limit and what is
/// left before the deadline.
fn arm(
    tcp: &TcpStream,
    opts: &TrackerOptions,
    deadline: Instant,
    what: &str,
) -> Result<(), ErrorKind> {
    let left = remaining(deadline).ok_or_else(|| {
        ErrorKind::Timeout(format!(
            "no complete answer within {} while {what}",
            secs(opts.total_timeout)
        ))
    })?;
    let limit = opts.read_timeout.min(left).max(Duration::from_millis(1));
    tcp.set_read_timeout(Some(limit))
        .and_then(|_| tcp.set_write_timeout(Some(limit)))
        .map_err(|e| ErrorKind::Io(e.to_string()))
}

/// One request and response, no redirects.
fn get_once(
    url: &Url,
    opts: &TrackerOptions,
    deadline: Instant,
) -> Result<HttpResponse, ErrorKind> {
    let tcp = connect_tcp(&url.host, url.port, opts, deadline)?;
    let mut stream = match url.scheme {
        Scheme::Https => {
            let config = tls::client_config(opts)?;
            arm(&tcp, opts, deadline, "setting up TLS")?;
            let tls = tls::handshake(tcp, &url.host, config)
                .map_err(|e| io_error(&e, &url.host, opts, deadline, "setting up TLS"))?;
            Stream::Tls(Box::new(tls))
        }
        _ => Stream::Plain(tcp),
    };
    arm(stream.tcp(), opts, deadline, "sending the request")?;
    let request = build_get(url, &opts.user_agent);
    stream
        .write_all(&request)
        .and_then(|_| stream.flush())
        .map_err(|e| io_error(&e, &url.host, opts, deadline, "sending the request"))?;
    let mut parser = ResponseParser::new(opts.max_response);
    let mut buf = vec![0u8; 16 << 10];
    loop {
        arm(stream.tcp(), opts, deadline, "waiting for the answer")?;
        match stream.read(&mut buf) {
            Ok(0) => {
                parser.eof()?;
                break;
            }
            Ok(n) => {
                parser.feed(&buf[..n])?;
                if parser.is_done() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A TLS server that closes without close_notify: fine when the
            // body's end was marked; the parser decides.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                parser.eof()?;
                break;
            }
            Err(e) => {
                return Err(io_error(
                    &e,
                    &url.host,
                    opts,
                    deadline,
                    "waiting for the answer",
                ))
            }
        }
    }
    if let Stream::Tls(s) = &mut stream {
        s.conn.send_close_notify();
        let _ = s.flush();
    }
    parser.into_response().ok_or_else(|| {
        ErrorKind::Http(HttpError::Truncated(
            "before the response was complete".into(),
        ))
    })
}

/// `GET`s `url`, following up to `opts.max_redirects` redirects, all
/// within `deadline`. On error, also returns the URL fetched last when
/// redirects led elsewhere.
pub fn get(
    url: &str,
    opts: &TrackerOptions,
    deadline: Instant,
) -> Result<HttpResponse, (Option<String>, ErrorKind)> {
    let mut current = Url::parse(url).map_err(|e| (None, ErrorKind::InvalidUrl(e)))?;
    let mut via: Option<String> = None;
    let mut redirects = 0;
    loop {
        if current.scheme == Scheme::Udp {
            return Err((
                via,
                ErrorKind::BadRedirect("redirect to a udp:// URL".into()),
            ));
        }
        log::trace!("GET {}", current.to_text());
        let response = get_once(&current, opts, deadline).map_err(|k| (via.clone(), k))?;
        if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(response);
        }
        let Some(location) = response.header("location") else {
            return Err((
                via,
                ErrorKind::BadRedirect(format!("status {} without a Location", response.status)),
            ));
        };
        if redirects >= opts.max_redirects {
            return Err((via, ErrorKind::TooManyRedirects(opts.max_redirects)));
        }
        redirects += 1;
        let next = current
            .join(location)
            .map_err(|e| (via.clone(), ErrorKind::BadRedirect(e)))?;
        if current.scheme == Scheme::Https && next.scheme == Scheme::Http {
            log::warn!("{}: redirected from https to plain http", current.to_text());
        }
        log::debug!("{} redirects to {}", current.to_text(), next.to_text());
        via = Some(next.to_text());
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(
        bytes: &[u8],
        split: &[usize],
        max: usize,
    ) -> Result<Option<HttpResponse>, HttpError> {
        let mut p = ResponseParser::new(max);
        let mut start = 0;
        for &cut in split.iter().chain(std::iter::once(&bytes.len())) {
            let cut = cut.min(bytes.len()).max(start);
            p.feed(&bytes[start..cut])?;
            start = cut;
        }
        if !p.is_done() {
            p.eof()?;
        }
        Ok(p.into_response())
    }

    #[test]
    fn request_bytes() {
        let url = Url::parse("http://[::1]:8080/announce?x=%20").unwrap();
        let req = String::from_utf8(build_get(&url, "bt/0.1.0")).unwrap();
        assert!(req.starts_with(
            "GET /announce?x=%20 HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: bt/0.1.0\r\n"
        ));
        assert!(req.ends_with("Connection: close\r\n\r\n"));
        let url = Url::parse("https://t.example/a").unwrap();
        assert!(String::from_utf8(build_get(&url, "x"))
            .unwrap()
            .contains("Host: t.example\r\n"));
    }

    #[test]
    fn content_length_and_close() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhelloEXTRA";
        for cut in 0..r.len() {
            let resp = parse_in_pieces(r, &[cut], 100).unwrap().unwrap();
            assert_eq!(
                (resp.status, resp.reason.as_str(), &resp.body[..]),
                (200, "OK", &b"hello"[..])
            );
            assert_eq!(resp.header("x"), Some("y"));
        }
        let r = b"HTTP/1.0 404 Not Found\n\nbody until close";
        let resp = parse_in_pieces(r, &[3, 20], 100).unwrap().unwrap();
        assert_eq!(
            (resp.status, &resp.body[..]),
            (404, &b"body until close"[..])
        );
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_in_pieces(r, &[10], 100).unwrap().unwrap().status, 204);
    }

    #[test]
    fn bad_and_truncated() {
        assert!(matches!(
            parse_in_pieces(b"", &[], 10),
            Err(HttpError::Truncated(_))
        ));
        assert!(matches!(
            parse_in_pieces(b"HTTP/1.1 200", &[], 10),
            Err(HttpError::Truncated(_))
        ));
        assert!(matches!(
            parse_in_pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", &[], 10),
            Err(HttpError::Truncated(_))
        ));
        assert!(matches!(
            parse_in_pieces(b"SSH-2.0-x\r\n\r\n", &[], 10),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_in_pieces(b"HTTP/1.1 2x0 OK\r\n\r\n", &[], 10),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_in_pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", &[], 10),
            Err(HttpError::TooLarge(10))
        ));
        assert!(matches!(
            parse_in_pieces(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &[],
                10
            ),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_in_pieces(b"HTTP/1.1 200 OK\r\n\r\n0123456789A", &[], 10),
            Err(HttpError::TooLarge(10))
        ));
        // An endless header is cut at MAX_HEAD.
        let mut p = ResponseParser::new(10);
        let line = vec![b'a'; 1000];
        let mut result = Ok(());
        for _ in 0..100 {
            result = p.feed(&line);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(HttpError::Malformed(_))));
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nIGNORED";

    #[test]
    fn chunked_across_every_split() {
        for a in 0..CHUNKED.len() {
            for b in (a..CHUNKED.len()).step_by(7) {
                let resp = parse_in_pieces(CHUNKED, &[a, b], 100).unwrap().unwrap();
                assert_eq!(resp.body, b"hello 0123456789", "split at {a},{b}");
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..CHUNKED.len()).collect();
        assert_eq!(
            parse_in_pieces(CHUNKED, &cuts, 100).unwrap().unwrap().body,
            b"hello 0123456789"
        );
    }

    #[test]
    fn chunked_decoder_errors() {
        let mut out = Vec::new();
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.feed(b"zz\r\n", &mut out, 100),
            Err(HttpError::Malformed(_))
        ));
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.feed(b"3\r\nabcd\r\n", &mut out, 100),
            Err(HttpError::Malformed(_))
        ));
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.feed(b"ffffffffffffffffff\r\n", &mut out, 100),
            Err(HttpError::Malformed(_))
        ));
        let mut d = ChunkedDecoder::new();
        out.clear();
        assert!(matches!(
            d.feed(b"65\r\n", &mut out, 100),
            Err(HttpError::TooLarge(100))
        ));
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.feed(&[b'1'; 5000], &mut out, 100),
            Err(HttpError::Malformed(_))
        ));
        // Bare LF framing is accepted; consumption stops at the end.
        let mut d = ChunkedDecoder::new();
        out.clear();
        assert_eq!(d.feed(b"2\nok\n0\n\nrest", &mut out, 100).unwrap(), 8);
        assert!(d.is_done());
        assert_eq!(out, b"ok");
        assert!(matches!(
            parse_in_pieces(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                &[],
                100
            ),
            Err(HttpError::Truncated(_))
        ));
    }
}

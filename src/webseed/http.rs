//! The HTTP/1.1 range fetcher behind web seeds: `GET` with `Range`,
//! `206 Partial Content` checked against the range asked for (a `200`
//! only when the range starts the file, reading just what was asked),
//! keep-alive reuse of one connection per fetcher, redirects, chunked
//! bodies, HTTPS through the trackers' rustls setup (`tracker::tls`).
//! Bounded everywhere: the header section (`tracker::http::MAX_HEAD`), a
//! body never read past the range, connect and stall timeouts, a minimum
//! rate after a grace period, a fixed number of redirects. Blocking: one
//! fetcher runs on one thread (`webseed::driver`). The response head is
//! parsed by the tracker client's parser.
//!
//! The connection is opened by a [`Connector`]: TCP and TLS
//! ([`NetConnector`]) in the program; any [`Transport`] (`Read + Write`)
//! elsewhere, such as the fuzz harness's in-memory server, so that the
//! same code reads every answer.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::tracker::http::{self as th, ChunkedDecoder, HttpError, Stream, MAX_HEAD};
use crate::tracker::url::{Scheme, Url};
use crate::tracker::{tls, TrackerOptions};

/// Limits of the fetcher.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Connect, TLS and `user_agent` settings (CA files and all).
    pub tracker: TrackerOptions,
    /// Nothing received for this long: the server is too slow.
    pub stall_timeout: Duration,
    /// After `grace`, a body arriving slower than this is given up.
    pub min_rate: u64,
    pub grace: Duration,
    pub max_redirects: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            tracker: TrackerOptions::default(),
            stall_timeout: Duration::from_secs(15),
            min_rate: 8 << 10,
            grace: Duration::from_secs(10),
            max_redirects: 5,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// A status other than 206 (or an acceptable 200); `missing` when it
    /// says the file is not there (404, 410, 403).
    #[error("HTTP {status} {reason} for {url}")]
    Status {
        status: u16,
        reason: String,
        url: String,
        missing: bool,
    },
    #[error("{url} ignores Range: 200 with the whole file instead of 206")]
    RangeIgnored { url: String },
    #[error("short body from {url}: {got} of {want} bytes")]
    Short { url: String, got: u64, want: u64 },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Io(String),
    #[error("too slow: {0}")]
    Slow(String),
    #[error("stopped")]
    Stopped,
}

/// A byte stream to a web seed. A read that times out fails with
/// `WouldBlock` or `TimedOut`; the server closing reads as 0 bytes.
pub trait Transport: Read + Write + Send {}

impl<T: Read + Write + Send> Transport for T {}

/// Opens a connection to a URL's origin.
pub trait Connector: Send {
    fn connect(&mut self, url: &Url, opts: &FetchOptions)
        -> Result<Box<dyn Transport>, FetchError>;
}

/// TCP, with TLS for `https`: the connect timeout, CA files and client
/// settings of [`FetchOptions::tracker`], the stall timeout on every read
/// and write.
pub struct NetConnector;

impl Connector for NetConnector {
    fn connect(
        &mut self,
        url: &Url,
        opts: &FetchOptions,
    ) -> Result<Box<dyn Transport>, FetchError> {
        let t = &opts.tracker;
        let deadline = Instant::now() + t.connect_timeout + opts.stall_timeout;
        let tcp = th::connect_tcp(&url.host, url.port, t, deadline)
            .map_err(|e| FetchError::Io(format!("{}: {e}", url.origin())))?;
        let limit = Some(opts.stall_timeout);
        let _ = tcp.set_read_timeout(limit);
        let _ = tcp.set_write_timeout(limit);
        let stream = match url.scheme {
            Scheme::Https => {
                let config = tls::client_config(t)
                    .map_err(|e| FetchError::Io(format!("{}: {e}", url.origin())))?;
                let s = tls::handshake(tcp, &url.host, config).map_err(|e| {
                    let why =
                        tls::describe_io_error(&e, &url.host).unwrap_or_else(|| e.to_string());
                    FetchError::Io(format!("{}: TLS: {why}", url.origin()))
                })?;
                Stream::Tls(Box::new(s))
            }
            _ => Stream::Plain(tcp),
        };
        Ok(Box::new(stream))
    }
}

/// An open connection and the bytes read past the last response.
struct Conn {
    origin: String,
    stream: Box<dyn Transport>,
    /// Unconsumed bytes in `rbuf[pos..len]`.
    pos: usize,
    len: usize,
}

/// How a body ends.
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
}

/// Fetches ranges, keeping one connection open between them.
pub struct Fetcher {
    opts: FetchOptions,
    connector: Box<dyn Connector>,
    conn: Option<Conn>,
    rbuf: Vec<u8>,
    /// Decoded chunked data waiting to be delivered.
    decoded: Vec<u8>,
    /// Connections opened (for tests and logs).
    pub connections: u64,
}

const READ_BUF: usize = 128 << 10;

impl Fetcher {
    /// A fetcher over the network ([`NetConnector`]).
    pub fn new(opts: FetchOptions) -> Fetcher {
        Fetcher::with_connector(opts, Box::new(NetConnector))
    }

    /// A fetcher whose connections come from `connector`.
    pub fn with_connector(opts: FetchOptions, connector: Box<dyn Connector>) -> Fetcher {
        Fetcher {
            opts,
            connector,
            conn: None,
            rbuf: vec![0; READ_BUF],
            decoded: Vec::new(),
            connections: 0,
        }
    }

    /// Fetches `len` bytes of `url` from `offset` (of a file of
    /// `file_size` bytes), giving the body to `sink` as it arrives; `sink`
    /// returns false to stop. Delivers nothing beyond `len`.
    pub fn fetch(
        &mut self,
        url: &str,
        offset: u64,
        len: u64,
        file_size: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), FetchError> {
        let mut current =
            Url::parse(url).map_err(|e| FetchError::Protocol(format!("{url}: {e}")))?;
        let mut redirects = 0;
        loop {
            if current.scheme == Scheme::Udp {
                return Err(FetchError::Protocol(format!("{url}: not an http(s) URL")));
            }
            let head = self.request(&current, offset, len)?;
            let text = current.to_text();
            match head.status {
                301 | 302 | 303 | 307 | 308 => {
                    let location = header(&head, "location").ok_or_else(|| {
                        FetchError::Protocol(format!("{text}: redirect without a Location"))
                    })?;
                    let next = current
                        .join(location)
                        .map_err(|e| FetchError::Protocol(format!("{text}: bad redirect: {e}")))?;
                    self.discard_body(&head);
                    redirects += 1;
                    if redirects > self.opts.max_redirects {
                        return Err(FetchError::Protocol(format!(
                            "{url}: more than {} redirects",
                            self.opts.max_redirects
                        )));
                    }
                    log::debug!("{text} redirects to {}", next.to_text());
                    current = next;
                }
                206 => {
                    let range = header(&head, "content-range").unwrap_or("");
                    let expect = format!("bytes {}-{}/", offset, offset + len - 1);
                    if !range.starts_with(&expect) {
                        self.conn = None;
                        return Err(FetchError::Protocol(format!(
                            "{text}: Content-Range '{range}' for the range {}-{}",
                            offset,
                            offset + len - 1
                        )));
                    }
                    return self.body(&head, &text, len, sink);
                }
                200 if offset == 0 && len <= file_size => {
                    return self.body(&head, &text, len, sink);
                }
                200 => {
                    self.conn = None;
                    return Err(FetchError::RangeIgnored { url: text });
                }
                status => {
                    self.discard_body(&head);
                    return Err(FetchError::Status {
                        status,
                        reason: head.reason.clone(),
                        url: text,
                        missing: matches!(status, 403 | 404 | 410),
                    });
                }
            }
        }
    }

    /// Sends the request (on the kept connection when it is to the same
    /// origin, retrying once on a fresh one if that was closed) and reads
    /// the response head.
    fn request(&mut self, url: &Url, offset: u64, len: u64) -> Result<th::Head, FetchError> {
        let origin = url.origin();
        if self.conn.as_ref().is_some_and(|c| c.origin != origin) {
            self.conn = None;
        }
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nRange: bytes={}-{}\r\n\r\n",
            url.path_and_query,
            url.authority(),
            self.opts.tracker.user_agent,
            offset,
            offset + len - 1
        );
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            if !reused {
                self.connect(url)?;
            }
            match self.send_and_read_head(&request, url) {
                Ok(h) => return Ok(h),
                // A kept connection the server closed meanwhile.
                Err(e) if reused && attempt == 0 => {
                    log::debug!(
                        "{}: kept connection unusable ({e}); reconnecting",
                        url.origin()
                    );
                    self.conn = None;
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        Err(FetchError::Io(format!(
            "{}: cannot send the request",
            url.to_text()
        )))
    }

    fn connect(&mut self, url: &Url) -> Result<(), FetchError> {
        let stream = self.connector.connect(url, &self.opts)?;
        self.connections += 1;
        self.conn = Some(Conn {
            origin: url.origin(),
            stream,
            pos: 0,
            len: 0,
        });
        Ok(())
    }

    fn send_and_read_head(&mut self, request: &str, url: &Url) -> Result<th::Head, FetchError> {
        let io = |e: std::io::Error| FetchError::Io(format!("{}: {e}", url.origin()));
        let c = self.conn.as_mut().expect("connected");
        c.stream
            .write_all(request.as_bytes())
            .and_then(|_| c.stream.flush())
            .map_err(io)?;
        let mut head = Vec::new();
        loop {
            if c.pos == c.len {
                c.pos = 0;
                c.len = read_some(&mut *c.stream, &mut self.rbuf).map_err(|e| {
                    if is_timeout(&e) {
                        FetchError::Slow(format!("{}: no answer", url.origin()))
                    } else {
                        io(e)
                    }
                })?;
                if c.len == 0 {
                    return Err(FetchError::Io(format!(
                        "{}: connection closed before the response",
                        url.origin()
                    )));
                }
            }
            let from = head.len().saturating_sub(3);
            let avail = &self.rbuf[c.pos..c.len];
            let take = avail.len().min(MAX_HEAD + 4 - head.len().min(MAX_HEAD + 4));
            head.extend_from_slice(&avail[..take]);
            if let Some(end) = th::find_head_end(&head, from) {
                // Bytes after the head stay in the buffer for the body.
                let over = head.len() - end;
                c.pos += take - over;
                head.truncate(end);
                let h = th::parse_head(&head)
                    .map_err(|e| FetchError::Protocol(format!("{}: {e}", url.to_text())))?;
                if (100..200).contains(&h.status) {
                    head.clear();
                    continue;
                }
                return Ok(h);
            }
            c.pos += take;
            if head.len() > MAX_HEAD {
                return Err(FetchError::Protocol(format!(
                    "{}: {}",
                    url.to_text(),
                    HttpError::Malformed(format!("header section longer than {MAX_HEAD} bytes"))
                )));
            }
        }
    }

    fn framing(head: &th::Head) -> Result<Framing, FetchError> {
        let chunked = head
            .headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return Ok(Framing::Chunked(ChunkedDecoder::new()));
        }
        match header(head, "content-length") {
            Some(v) => v
                .parse()
                .map(Framing::Length)
                .map_err(|_| FetchError::Protocol(format!("bad Content-Length '{v}'"))),
            None if matches!(head.status, 204 | 304) => Ok(Framing::Length(0)),
            None => Ok(Framing::Close),
        }
    }

    /// Reads a small body to keep the connection, else drops it.
    fn discard_body(&mut self, head: &th::Head) {
        let keep = matches!(Self::framing(head), Ok(Framing::Length(n)) if n <= 64 << 10);
        if !keep {
            self.conn = None;
            return;
        }
        let mut sink = |_: &[u8]| true;
        let n = match Self::framing(head) {
            Ok(Framing::Length(n)) => n,
            _ => 0,
        };
        if n > 0 && self.body(head, "", n, &mut sink).is_err() {
            self.conn = None;
        }
    }

    /// Streams exactly `want` bytes of the body to `sink`.
    fn body(
        &mut self,
        head: &th::Head,
        url: &str,
        want: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), FetchError> {
        let mut framing = Self::framing(head)?;
        let close = header(head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let started = Instant::now();
        let mut got = 0u64;
        let mut body_left = match &framing {
            Framing::Length(n) => Some(*n),
            _ => None,
        };
        let mut finished = false; // the body's end was read
        let mut overflow = false;
        while got < want {
            let Some(c) = self.conn.as_mut() else {
                return Err(FetchError::Io(format!("{url}: connection lost")));
            };
            if body_left == Some(0) {
                break;
            }
            if c.pos == c.len {
                c.pos = 0;
                c.len = match read_some(&mut *c.stream, &mut self.rbuf) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => {
                        self.conn = None;
                        return Err(FetchError::Slow(format!(
                            "{url}: nothing received for {} s",
                            self.opts.stall_timeout.as_secs()
                        )));
                    }
                    Err(e) => {
                        self.conn = None;
                        return Err(FetchError::Io(format!("{url}: {e}")));
                    }
                };
                if c.len == 0 {
                    self.conn = None;
                    return Err(FetchError::Short {
                        url: url.to_string(),
                        got,
                        want,
                    });
                }
            }
            let avail = &self.rbuf[c.pos..c.len];
            let room = (want - got).min(body_left.unwrap_or(u64::MAX));
            let data: &[u8] = match &mut framing {
                Framing::Chunked(d) => {
                    self.decoded.clear();
                    let max = usize::try_from(room).unwrap_or(usize::MAX);
                    let used = match d.feed(avail, &mut self.decoded, max) {
                        Ok(u) => u,
                        Err(HttpError::TooLarge(_)) => {
                            // More body than asked for.
                            overflow = true;
                            0
                        }
                        Err(e) => {
                            return Err(FetchError::Protocol(format!("{url}: {e}")));
                        }
                    };
                    c.pos += used;
                    if d.is_done() {
                        finished = true;
                    }
                    &self.decoded
                }
                _ => {
                    let n = avail.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                    c.pos += n;
                    &self.rbuf[c.pos - n..c.pos]
                }
            };
            let n = data.len() as u64;
            if overflow {
                self.conn = None;
                return Err(FetchError::Protocol(format!(
                    "{url}: chunked body longer than the range"
                )));
            }
            if n > 0 && !sink(data) {
                self.conn = None;
                return Err(FetchError::Stopped);
            }
            got += n;
            if let Some(left) = body_left.as_mut() {
                *left -= n;
            }
            if finished && got < want {
                break;
            }
            let elapsed = started.elapsed();
            if elapsed > self.opts.grace
                && (got as f64 / elapsed.as_secs_f64()) < self.opts.min_rate as f64
            {
                self.conn = None;
                return Err(FetchError::Slow(format!(
                    "{url}: {got} bytes in {:.0} s",
                    elapsed.as_secs_f64()
                )));
            }
        }
        if got < want {
            self.conn = None;
            return Err(FetchError::Short {
                url: url.to_string(),
                got,
                want,
            });
        }
        // Keep the connection only when the body ended exactly here.
        let ended = match &framing {
            Framing::Length(_) => body_left == Some(0),
            Framing::Chunked(d) => d.is_done() || self.chunked_tail(d.clone()),
            Framing::Close => false,
        };
        if close || !ended {
            self.conn = None;
        }
        Ok(())
    }

    /// After the last data byte of a chunked body, the closing `0` chunk
    /// usually follows in the same read: consume it if it is there.
    fn chunked_tail(&mut self, mut d: ChunkedDecoder) -> bool {
        let Some(c) = self.conn.as_mut() else {
            return false;
        };
        let mut scratch = Vec::new();
        match d.feed(&self.rbuf[c.pos..c.len], &mut scratch, 0) {
            Ok(used) if d.is_done() => {
                c.pos += used;
                true
            }
            _ => false,
        }
    }
}

fn header<'a>(head: &'a th::Head, name: &str) -> Option<&'a str> {
    head.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn read_some(s: &mut dyn Transport, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A TLS server closing without close_notify: an end like any.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(0),
            r => return r,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// A server on a thread answering each request on one connection with
    /// `answer(request_head)`; returns its base URL.
    fn serve(answers: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<usize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut accepted = 0;
            let mut answers = answers.into_iter().peekable();
            'outer: while answers.peek().is_some() {
                let Ok((s, _)) = l.accept() else { break };
                accepted += 1;
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut line = String::new();
                    let mut head = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            continue 'outer;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let Some(a) = answers.next() else {
                        break 'outer;
                    };
                    // A leading '!' closes the connection after the answer.
                    match a.strip_prefix(b"!") {
                        Some(a) => {
                            w.write_all(a).unwrap();
                            continue 'outer;
                        }
                        None => w.write_all(&a).unwrap(),
                    }
                }
            }
            accepted
        });
        (format!("http://127.0.0.1:{port}"), h)
    }

    fn fetch(f: &mut Fetcher, url: &str, off: u64, len: u64) -> Result<Vec<u8>, FetchError> {
        let mut v = Vec::new();
        f.fetch(url, off, len, 100, &mut |d| {
            v.extend_from_slice(d);
            true
        })?;
        Ok(v)
    }

    #[test]
    fn ranges_keep_alive_chunked_redirect_and_faults() {
        let (base, h) = serve(vec![
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-5/100\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-2/100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n".to_vec(),
            b"HTTP/1.1 302 Found\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1-1/100\r\nContent-Length: 1\r\n\r\nq".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
        ]);
        let mut f = Fetcher::new(FetchOptions::default());
        let url = format!("{base}/a");
        assert_eq!(fetch(&mut f, &url, 2, 4).unwrap(), b"abcd");
        assert_eq!(fetch(&mut f, &url, 0, 3).unwrap(), b"xyz");
        assert_eq!(fetch(&mut f, &url, 1, 1).unwrap(), b"q");
        assert!(matches!(
            fetch(&mut f, &url, 1, 1),
            Err(FetchError::Status {
                status: 404,
                missing: true,
                ..
            })
        ));
        assert!(matches!(
            fetch(&mut f, &url, 5, 1),
            Err(FetchError::RangeIgnored { .. })
        ));
        assert_eq!(f.connections, 1, "one kept connection");
        drop(f);
        h.join().unwrap();
    }

    /// One scripted connection: reads give `answer` in pieces of at most
    /// `piece` bytes, then the end; what the fetcher writes is kept.
    struct Scripted {
        answer: Vec<u8>,
        at: usize,
        piece: usize,
        written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.piece).min(self.answer.len() - self.at);
            buf[..n].copy_from_slice(&self.answer[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Hands out one scripted connection per answer, in order.
    struct ScriptedConnector {
        answers: std::collections::VecDeque<Vec<u8>>,
        written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Connector for ScriptedConnector {
        fn connect(
            &mut self,
            url: &Url,
            _: &FetchOptions,
        ) -> Result<Box<dyn Transport>, FetchError> {
            let answer = self
                .answers
                .pop_front()
                .ok_or_else(|| FetchError::Io(format!("{}: refused", url.origin())))?;
            Ok(Box::new(Scripted {
                answer,
                at: 0,
                piece: 3,
                written: self.written.clone(),
            }))
        }
    }

    #[test]
    fn any_transport_carries_the_exchange() {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connector = ScriptedConnector {
            answers: [
                // Two answers on one kept connection, read 3 bytes at a
                // time; the chunked body's closing chunk is not read with
                // its last data byte, so that connection is not kept.
                &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-5/100\r\nContent-Length: 4\r\n\r\nabcd\
                   HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-2/100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n"[..],
                b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1-1/100\r\nContent-Length: 1\r\n\r\nq",
            ]
            .map(|a| a.to_vec())
            .into(),
            written: written.clone(),
        };
        let mut f = Fetcher::with_connector(FetchOptions::default(), Box::new(connector));
        let url = "http://seed.invalid/a";
        assert_eq!(fetch(&mut f, url, 2, 4).unwrap(), b"abcd");
        assert_eq!(fetch(&mut f, url, 0, 3).unwrap(), b"xyz");
        assert_eq!(fetch(&mut f, url, 1, 1).unwrap(), b"q");
        assert_eq!(f.connections, 2);
        // The kept connection reads as closed; no new one can be opened.
        assert!(matches!(fetch(&mut f, url, 1, 1), Err(FetchError::Io(_))));
        let requests = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let ranges: Vec<&str> = requests
            .lines()
            .filter_map(|l| l.strip_prefix("Range: "))
            .collect();
        assert_eq!(ranges, ["bytes=2-5", "bytes=0-2", "bytes=1-1", "bytes=1-1"]);
        assert!(requests.starts_with("GET /a HTTP/1.1\r\nHost: seed.invalid\r\n"));
    }

    #[test]
    fn short_body_and_whole_file_200() {
        let (base, h) = serve(vec![
            b"!HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\n\r\n12345".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nABCDEFGH".to_vec(),
        ]);
        let mut f = Fetcher::new(FetchOptions::default());
        let url = format!("{base}/a");
        let mut got = Vec::new();
        let r = f.fetch(&url, 0, 10, 100, &mut |d| {
            got.extend_from_slice(d);
            true
        });
        assert!(
            matches!(
                r,
                Err(FetchError::Short {
                    got: 5,
                    want: 10,
                    ..
                })
            ),
            "{r:?}"
        );
        assert_eq!(got, b"12345", "what came is delivered");
        // 200 for a range from 0: only the range is taken.
        assert_eq!(fetch(&mut f, &url, 0, 4).unwrap(), b"ABCD");
        drop(f);
        h.join().unwrap();
    }
}

//! Web seed HTTP responses (`bt::webseed::http::Fetcher`): the bytes a
//! server sends to a range request (status line, headers, Content-Range,
//! Content-Length or chunked bodies, redirects), served in memory through
//! the fetcher's `Connector` seam: the same code as over TCP, without a
//! socket per input (a loopback server made this target 600 exec/s).
//!
//! Properties: no panic, no hang (libFuzzer's `-timeout`); the sink never
//! gets more than the range's length; `Ok` means exactly the range's
//! length was delivered; a 206 whose Content-Range is not the range asked
//! for is an error; every request written is a `GET` with the range's
//! `Range` header; connections opened stay within the redirect limit and
//! one retry.
//!
//! Input: byte 0 picks the range (offset and length in a 1000-byte
//! file), the rest is the server's answer, sent on every connection of the
//! fetch (a redirect to the same server gets the same answer again, up to
//! the redirect limit) and then closed, as the loopback server did. The
//! answer is read in pieces whose size also comes from byte 0, so heads
//! and bodies split at every place.
#![no_main]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use bt::tracker::url::Url;
use bt::webseed::http::{Connector, FetchError, FetchOptions, Fetcher, Transport};
use libfuzzer_sys::fuzz_target;

/// One connection: the answer in reads of at most `piece` bytes, then
/// the end; the request bytes are kept for checking.
struct Answer {
    answer: Arc<Vec<u8>>,
    at: usize,
    piece: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Read for Answer {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.answer.len() - self.at);
        buf[..n].copy_from_slice(&self.answer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Answer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Server {
    answer: Arc<Vec<u8>>,
    piece: usize,
    written: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<u32>>,
}

impl Connector for Server {
    fn connect(&mut self, _: &Url, _: &FetchOptions) -> Result<Box<dyn Transport>, FetchError> {
        *self.connections.lock().unwrap() += 1;
        Ok(Box::new(Answer {
            answer: self.answer.clone(),
            at: 0,
            piece: self.piece,
            written: self.written.clone(),
        }))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, answer)) = data.split_first() else {
        return;
    };
    let file_size = 1000u64;
    let offset = if ctl & 1 == 0 { 0 } else { u64::from(ctl) * 3 };
    let len = u64::from(ctl >> 1).max(1) * 2;
    let piece = [usize::MAX, 1, 2, 7, 64, 300, 4096, usize::MAX][usize::from(ctl) % 8];
    let written = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let server = Server {
        answer: Arc::new(answer.to_vec()),
        piece,
        written: written.clone(),
        connections: connections.clone(),
    };
    let mut opts = FetchOptions::default();
    opts.max_redirects = 2;
    let mut f = Fetcher::with_connector(opts, Box::new(server));
    let mut got = 0u64;
    let url = "http://seed.invalid/file";
    let r = f.fetch(url, offset, len, file_size, &mut |chunk: &[u8]| {
        got += chunk.len() as u64;
        assert!(got <= len, "{got} bytes delivered for a {len}-byte range");
        true
    });
    match &r {
        Ok(()) => assert_eq!(got, len),
        Err(FetchError::Stopped) => panic!("the sink never stops"),
        Err(_) => {}
    }
    if answer.starts_with(b"HTTP/1.1 206") || answer.starts_with(b"HTTP/1.0 206") {
        let want = format!("bytes {}-{}/", offset, offset + len - 1);
        let text = String::from_utf8_lossy(answer).to_ascii_lowercase();
        if !text.contains(&want) {
            assert!(r.is_err(), "a 206 without Content-Range {want} accepted");
        }
    }
    // Every request is a GET asking for the range. A fetch makes at most
    // max_redirects + 1 rounds; each opens at most one connection (a
    // kept one the server closed is retried once, on a new one).
    let requests = written.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&requests);
    let range = format!("Range: bytes={}-{}", offset, offset + len - 1);
    let heads: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
    assert!(!heads.is_empty() && heads.len() <= 2 * 3, "{text}");
    for head in heads {
        assert!(head.starts_with("GET "), "{text}");
        assert_eq!(
            head.split("\r\n").filter(|l| *l == range).count(),
            1,
            "{text}"
        );
    }
    assert!(*connections.lock().unwrap() <= 3);
});

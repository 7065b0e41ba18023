//! Web seed HTTP responses (`bt::webseed::http::Fetcher`): the bytes a
//! server sends to a range request (status line, headers, Content-Range,
//! Content-Length or chunked bodies, redirects), served by a loopback
//! server on a thread since the fetcher reads a socket.
//!
//! Properties: no panic, no hang (stall time-out 2 s, libFuzzer's
//! `-timeout` catches more); the sink never gets more than the range's
//! length; `Ok` means exactly the range's length was delivered; a 206
//! whose Content-Range is not the range asked for is an error.
//!
//! Input: byte 0 picks the range (offset and length in a 1000-byte
//! file), the rest is the server's answer, sent to every request of the
//! fetch (a redirect to the same server gets the same answer again, up to
//! the redirect limit).
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bt::webseed::http::{FetchError, FetchOptions, Fetcher};
use libfuzzer_sys::fuzz_target;

static ANSWER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static SERVER: OnceLock<SocketAddr> = OnceLock::new();

/// Reads one request head, writes the current answer, closes the
/// writing side and waits (briefly) for the client to close.
fn serve(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 16 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let answer = ANSWER.lock().unwrap().clone();
        let _ = s.write_all(&answer);
        let _ = s.shutdown(Shutdown::Write);
        // Drain until the client closes, so that no RST cuts the answer.
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    }
}

fn server() -> SocketAddr {
    *SERVER.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || serve(l));
        addr
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, answer)) = data.split_first() else {
        return;
    };
    let addr = server();
    *ANSWER.lock().unwrap() = answer.to_vec();
    let file_size = 1000u64;
    let offset = if ctl & 1 == 0 { 0 } else { u64::from(ctl) * 3 };
    let len = u64::from(ctl >> 1).max(1) * 2;
    let mut opts = FetchOptions::default();
    opts.stall_timeout = Duration::from_secs(2);
    opts.grace = Duration::from_secs(2);
    opts.max_redirects = 2;
    let mut f = Fetcher::new(opts);
    let mut got = 0u64;
    let url = format!("http://{addr}/file");
    let r = f.fetch(&url, offset, len, file_size, &mut |chunk: &[u8]| {
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
});

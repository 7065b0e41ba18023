//! HTTP tracker answers: the response parser (status line, headers,
//! Content-Length, chunked bodies, 1xx heads) fed in arbitrary pieces, then
//! the bencoded announce and scrape answers and a redirect's Location.
//!
//! Properties: how the bytes are split into reads never changes the
//! outcome; the body never exceeds the limit; a done response stays done.
//!
//! Input: byte 0 picks the body limit and the read size, the rest is the
//! server's bytes.
#![no_main]

use bt::tracker::http::{ChunkedDecoder, HttpError, HttpResponse, ResponseParser};
use bt::tracker::response::{parse_announce_http, parse_scrape_http};
use bt::tracker::Url;
use libfuzzer_sys::fuzz_target;

fn run(bytes: &[u8], max_body: usize, step: usize) -> Result<Option<HttpResponse>, HttpError> {
    let mut p = ResponseParser::new(max_body);
    for piece in bytes.chunks(step.max(1)) {
        p.feed(piece)?;
        if p.is_done() {
            break;
        }
    }
    p.eof()?;
    assert!(p.is_done());
    Ok(p.into_response())
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let max_body = [0usize, 1, 16, 100, 1000, 4096, 65536, 4 << 20][usize::from(ctl & 7)];
    let step = usize::from(ctl >> 3) + 1;

    if ctl & 0x80 != 0 {
        // The chunked decoder alone: split or whole, the same body.
        let mut whole = ChunkedDecoder::new();
        let mut out1 = Vec::new();
        let r1 = whole.feed(bytes, &mut out1, max_body);
        let mut split = ChunkedDecoder::new();
        let mut out2 = Vec::new();
        let mut used = 0;
        let mut r2 = Ok(0);
        for piece in bytes.chunks(step) {
            match split.feed(piece, &mut out2, max_body) {
                Ok(n) => {
                    used += n;
                    r2 = Ok(used);
                    if n < piece.len() || split.is_done() {
                        break;
                    }
                }
                Err(e) => {
                    r2 = Err(e);
                    break;
                }
            }
        }
        assert!(out1.len() <= max_body && out2.len() <= max_body);
        assert_eq!(r1.is_ok(), r2.is_ok(), "{r1:?} vs {r2:?}");
        if let (Ok(a), Ok(b)) = (&r1, &r2) {
            assert_eq!(a, b);
            assert_eq!(out1, out2);
            assert_eq!(whole.is_done(), split.is_done());
        }
        return;
    }

    let whole = run(bytes, max_body, bytes.len());
    let split = run(bytes, max_body, step);
    assert_eq!(whole, split, "the read size changed the outcome");
    let Ok(Some(resp)) = whole else {
        return;
    };
    assert!(resp.body.len() <= max_body);
    let _ = parse_announce_http(&resp.body, resp.status, &resp.reason);
    let _ = parse_scrape_http(&resp.body, resp.status, &resp.reason, &[]);
    let _ = parse_scrape_http(&resp.body, resp.status, &resp.reason, &[[0x11; 20]]);
    if let Some(location) = resp.header("location") {
        let base = Url::parse("http://tracker.example:6969/path/announce?x=1").unwrap();
        if let Ok(url) = base.join(location) {
            let _ = url.to_text();
            let _ = url.host_for_header();
        }
    }
});

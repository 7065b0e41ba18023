//! Bencoded tracker answers (announce and scrape bodies, BEP 3/7/23/48),
//! the compact peer lists shared with UDP, and tracker URLs: no panic, and
//! the answers are sane (no port 0, bounded texts).
#![no_main]

use bt::tracker::response::{compact_v4, compact_v6, parse_announce, parse_scrape};
use bt::tracker::Url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_announce(data) {
        assert!(a.peers.iter().all(|p| p.addr.port() != 0));
        assert!(a.tracker_id.as_ref().is_none_or(|t| t.len() <= 256));
        assert!(a.warning.as_ref().is_none_or(|w| w.chars().count() <= 1001));
    }
    let _ = parse_scrape(data, &[]);
    let _ = parse_scrape(data, &[[0x11; 20], [0x22; 20]]);
    assert!(compact_v4(data).len() <= data.len() / 6);
    assert!(compact_v6(data).len() <= data.len() / 18);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(url) = Url::parse(text) {
            let _ = url.to_text();
            let _ = url.authority();
            let _ = bt::tracker::url::scrape_url(text, &[[0x33; 20]]);
            let _ = url.join("../x?y");
        }
    }
});

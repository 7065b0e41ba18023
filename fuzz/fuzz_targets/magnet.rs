//! Magnet links (`bt::magnet`): parse or refuse, never panic; what parses
//! rebuilds into a link (every value percent-encoded) that parses to the
//! same `Magnet`; the JSON view and the rebuilt `.torrent` never panic.
//!
//! Input: the link's bytes (lossily made UTF-8, as a command line is).
#![no_main]

use bt::magnet::Magnet;
use libfuzzer_sys::fuzz_target;

/// Percent-encodes every byte outside the unreserved set.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rebuild(m: &Magnet) -> String {
    let mut link = format!("magnet:?xt=urn:btih:{}", m.info_hash_hex());
    if let Some(name) = &m.name {
        link.push_str(&format!("&dn={}", enc(name)));
    }
    for t in &m.trackers {
        link.push_str(&format!("&tr={}", enc(t)));
    }
    for p in &m.peers {
        link.push_str(&format!("&x.pe={}", enc(&p.to_string())));
    }
    for h in &m.peer_hosts {
        link.push_str(&format!("&x.pe={}", enc(h)));
    }
    link
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(m) = Magnet::parse(&text) else {
        return;
    };
    let again = Magnet::parse(&rebuild(&m)).expect("a rebuilt link parses");
    assert_eq!(again, m, "parse → rebuild → parse changed the link");
    let _ = m.to_json().to_string();
    let _ = m.tracker_tiers();
    let _ = m.torrent_bytes(b"d4:name1:xe");
});

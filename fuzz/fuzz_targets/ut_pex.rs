//! `ut_pex` (BEP 11) payloads: decode or refuse, never panic; at most
//! `limit` added and `limit` dropped addresses per family come out, each
//! added one with its flag; a decoded message re-encodes to bytes that
//! decode to the same message.
//!
//! Input: byte 0 picks the limit, the rest is the payload.
#![no_main]

use bt::pex::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, payload)) = data.split_first() else {
        return;
    };
    let limit = [0usize, 1, 2, 50, 200, usize::MAX][usize::from(ctl) % 6];
    let Ok(msg) = decode(payload, limit) else {
        return;
    };
    for v6 in [false, true] {
        let added = msg.added.iter().filter(|(a, _)| a.is_ipv6() == v6).count();
        let dropped = msg.dropped.iter().filter(|a| a.is_ipv6() == v6).count();
        assert!(added <= limit && dropped <= limit);
        assert!(added.saturating_mul(6) <= payload.len());
        assert!(dropped.saturating_mul(6) <= payload.len());
    }
    let again = decode(&encode(&msg), usize::MAX).expect("our encoding decodes");
    assert_eq!(again, msg, "re-encoding changed the message");
});

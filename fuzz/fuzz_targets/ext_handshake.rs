//! BEP 10 extension handshake payloads: parse or refuse, with the result
//! bounded (names, count, client string) whatever the peer sends.
#![no_main]

use bt::wire::parse_ext_handshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(hs) = parse_ext_handshake(data) else {
        return;
    };
    assert!(hs.extensions.len() <= 32);
    assert!(hs.extensions.iter().all(|(name, _)| name.len() <= 64));
    if let Some(client) = &hs.client {
        assert!(client.chars().count() <= 64);
        assert!(!client.chars().any(char::is_control));
    }
    assert_ne!(hs.listen_port, Some(0));
    for (name, id) in &hs.extensions {
        // The first entry of a name wins.
        let first = hs.extensions.iter().find(|(n, _)| n == name).unwrap().1;
        if first == *id {
            assert_eq!(hs.id_of(name), *id);
        }
    }
    let _ = hs.id_of("ut_metadata");
});

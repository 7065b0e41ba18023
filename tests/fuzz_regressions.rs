//! Inputs the fuzzers (`fuzz/`, run by `examples/fuzz.sh`) found to break a
//! property, kept as regression tests. Each names its target and what was
//! wrong.

use bt::dht::krpc::Message;

/// Decoding, encoding and decoding again must give the same message.
fn krpc_reencodes_faithfully(datagram: &[u8]) {
    let m = Message::decode(datagram).expect("decodes");
    let again = Message::decode(&m.encode()).expect("re-encoding decodes");
    assert_eq!(again, m);
}

/// Target `krpc`: an unknown query method that is not UTF-8. Each bad byte
/// became a 3-byte U+FFFD, so the method's text outgrew the 32-byte cap and
/// decoding the re-encoded message cut it shorter.
#[test]
fn krpc_unknown_method_not_utf8_reencodes_faithfully() {
    let datagram = b"d1:ad2:id20:BBBBBBBBBBBBBBBBBBB@12:implied_porti1e9:info_hash20:\
UUUUUUUUUUUUUUUUUUUU4:porti6881e5:token3:toke1:q13:\xa9\xaa\xaa\xaa\xaa\xaa\xaa*\xa0\x8f\x9aer\
1:t2:aa1:y1:qe";
    krpc_reencodes_faithfully(datagram);
    // A long method cut in the middle of a character.
    let mut long = b"d1:ad2:id20:BBBBBBBBBBBBBBBBBBBBe1:q40:".to_vec();
    long.extend_from_slice("é".repeat(20).as_bytes());
    long.extend_from_slice(b"1:t2:aa1:y1:qe");
    krpc_reencodes_faithfully(&long);
}

/// The same for an error message (capped at 200 bytes).
#[test]
fn krpc_error_message_not_utf8_reencodes_faithfully() {
    let mut datagram = b"d1:eli201e250:".to_vec();
    datagram.extend_from_slice(&[0xff; 250]);
    datagram.extend_from_slice(b"e1:t2:aa1:y1:ee");
    krpc_reencodes_faithfully(&datagram);
    let mut utf8 = b"d1:eli201e201:x".to_vec();
    utf8.extend_from_slice("é".repeat(100).as_bytes());
    utf8.extend_from_slice(b"e1:t2:aa1:y1:ee");
    krpc_reencodes_faithfully(&utf8);
}

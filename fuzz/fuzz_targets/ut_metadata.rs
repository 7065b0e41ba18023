//! `ut_metadata` (BEP 9) messages: decode or refuse, never panic; a
//! decoded message re-encodes to bytes that decode to the same message;
//! a data message's block is exactly the bytes after the dictionary.
//!
//! Input: the extension message's payload (after the extended id).
#![no_main]

use bt::ut_metadata::{decode, encode, piece_count, piece_len, Msg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(data) else {
        return;
    };
    if let Msg::Data { data: block, .. } = &msg {
        assert!(block.len() <= data.len());
        assert!(data.ends_with(block));
    }
    let bytes = encode(&msg);
    let again = decode(&bytes).expect("our encoding decodes");
    match (&msg, &again) {
        // Unknown types are re-encoded as one fixed unknown type.
        (Msg::Unknown, Msg::Unknown) => {}
        _ => assert_eq!(again, msg, "re-encoding changed the message"),
    }
    if let Msg::Data { total_size, piece, .. } = msg {
        // The arithmetic on a peer's sizes must not overflow or panic.
        if let Ok(size) = usize::try_from(total_size.min(1 << 40)) {
            let n = piece_count(size);
            if (piece as usize) < n {
                assert!(piece_len(size, piece as usize) <= 16 << 10);
            }
        }
    }
});

//! The resume file decoder (`bt::resume::decode`): refuse or accept, never
//! panic, never allocate more than the input; what it accepts re-encodes
//! to bytes that decode to the same state and re-encode identically.
//!
//! Input: the resume file's bytes.
#![no_main]

use bt::resume::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = decode(data) else {
        return;
    };
    assert!(state.have.as_bytes().len() <= data.len());
    assert!(state.files.len() <= data.len());
    let bytes = encode(&state);
    assert_eq!(decode(&bytes).expect("our encoding decodes"), state);
    assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
});

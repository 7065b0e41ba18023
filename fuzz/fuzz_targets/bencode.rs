//! Bencode: any input decodes or fails cleanly; what decodes re-encodes
//! canonically, and canonical input (no key out of order or repeated)
//! round-trips byte for byte. Spans are exact.
#![no_main]

use bt::bencode::{self, Decoder, Kind, Value};
use libfuzzer_sys::fuzz_target;

fn check_spans(input: &[u8], v: &Value) {
    assert_eq!(&input[v.span()], v.raw());
    match &v.kind {
        Kind::List(items) => items.iter().for_each(|i| check_spans(input, i)),
        Kind::Dict(entries) => entries.iter().for_each(|(_, i)| check_spans(input, i)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // Also the lenient reader (trailing bytes allowed) as trackers and
    // extension messages use it.
    if let Ok(doc) = Decoder::new().allow_trailing(true).decode(data) {
        assert!(doc.root.raw().len() <= data.len());
        assert_eq!(doc.root.offset(), 0);
        assert!(data.starts_with(doc.root.raw()));
    }
    let Ok(doc) = Decoder::new().decode(data) else {
        return;
    };
    check_spans(data, &doc.root);
    assert_eq!(doc.root.raw(), data);
    let encoded = doc.root.to_owned_value().encode();
    if doc.irregularities.is_empty() {
        assert_eq!(encoded, data, "canonical input must round-trip");
    }
    // Whatever decoded re-encodes to canonical bencode, which is stable.
    let again = bencode::Decoder::new()
        .decode(&encoded)
        .expect("our encoding decodes");
    assert!(again.irregularities.is_empty());
    assert_eq!(again.root.to_owned_value().encode(), encoded);
});

//! Property tests: random values survive encode → decode, and random or
//! mutated input never panics (every case is seeded, so failures reproduce).

mod common;

use bt::bencode::{decode, Decoder, OwnedValue};
use bt::metainfo::Metainfo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn random_value(rng: &mut StdRng, depth: u32) -> OwnedValue {
    let leaf = depth >= 4 || rng.gen_bool(0.5);
    match (leaf, rng.gen_range(0..2)) {
        (true, 0) => OwnedValue::Int(match rng.gen_range(0..4) {
            0 => 0,
            1 => i64::MIN,
            2 => i64::MAX,
            _ => rng.gen(),
        }),
        (true, _) => {
            let len = rng.gen_range(0..40);
            OwnedValue::Bytes((0..len).map(|_| rng.gen()).collect())
        }
        (false, 0) => {
            let len = rng.gen_range(0..6);
            OwnedValue::List((0..len).map(|_| random_value(rng, depth + 1)).collect())
        }
        (false, _) => {
            let len = rng.gen_range(0..6);
            let mut map = BTreeMap::new();
            for _ in 0..len {
                let klen = rng.gen_range(0..8);
                let key: Vec<u8> = (0..klen).map(|_| rng.gen()).collect();
                map.insert(key, random_value(rng, depth + 1));
            }
            OwnedValue::Dict(map)
        }
    }
}

#[test]
fn random_values_round_trip() {
    let mut rng = StdRng::seed_from_u64(0xbe9c0de);
    for case in 0..5000 {
        let value = random_value(&mut rng, 0);
        let bytes = value.encode();
        let decoded = Decoder::new()
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert!(
            decoded.irregularities.is_empty(),
            "case {case}: encoder not canonical"
        );
        assert_eq!(decoded.root.to_owned_value(), value, "case {case}");
        assert_eq!(decoded.root.raw(), &bytes[..]);
        // Canonical input re-encodes to the same bytes.
        assert_eq!(decoded.root.to_owned_value().encode(), bytes);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(42);
    let alphabet = b"ilde0123456789:-xa";
    for _ in 0..200_000 {
        let len = rng.gen_range(0..64);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                if rng.gen_bool(0.8) {
                    alphabet[rng.gen_range(0..alphabet.len())]
                } else {
                    rng.gen()
                }
            })
            .collect();
        if let Ok(v) = decode(&input) {
            // Whatever decodes re-encodes to something that decodes again.
            let again = v.to_owned_value().encode();
            assert!(decode(&again).is_ok());
        }
        let _ = Metainfo::from_bytes(&input);
    }
}

#[test]
fn mutated_torrents_never_panic() {
    let dir = common::fixtures();
    let mut rng = StdRng::seed_from_u64(7);
    for name in ["alice", "numbers", "folder", "leaves"] {
        let original = std::fs::read(dir.join(format!("{name}.torrent"))).unwrap();
        for _ in 0..2000 {
            let mut bytes = original.clone();
            match rng.gen_range(0..3) {
                0 => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
                1 => bytes.truncate(rng.gen_range(0..bytes.len())),
                _ => {
                    let i = rng.gen_range(0..bytes.len());
                    let digit = b"0123456789"[rng.gen_range(0..10)];
                    bytes.insert(i, digit);
                }
            }
            if let Ok(meta) = Metainfo::from_bytes(&bytes) {
                // Anything accepted must be self-consistent.
                let info = &meta.info;
                assert_eq!(
                    info.piece_count() as u64,
                    info.total_length.div_ceil(info.piece_length)
                );
                let _ = meta.to_json(true);
            }
        }
    }
}

#[test]
fn hostile_sizes_are_refused_without_allocating() {
    // A string claiming an exabyte, and nesting a million deep: both must be
    // refused at once (the depth cap keeps the stack safe).
    let started = std::time::Instant::now();
    assert!(decode(b"1000000000000000000:x").is_err());
    let deep = vec![b'l'; 1_000_000];
    assert!(decode(&deep).is_err());
    let wide: Vec<u8> = std::iter::once(b'l')
        .chain(std::iter::repeat_n(b"0:".iter().copied(), 500_000).flatten())
        .chain(std::iter::once(b'e'))
        .collect();
    assert_eq!(decode(&wide).unwrap().as_list().unwrap().len(), 500_000);
    // A dictionary with every key out of order: reported, without a quadratic scan.
    let mut reversed = b"d".to_vec();
    for i in (0..200_000u32).rev() {
        reversed.extend_from_slice(format!("8:{i:08}i0e").as_bytes());
    }
    reversed.push(b'e');
    let doc = Decoder::new().decode(&reversed).unwrap();
    assert_eq!(doc.irregularities.len(), 199_999);
    assert!(started.elapsed().as_secs() < 10);
}

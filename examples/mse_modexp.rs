//! Times the two 768-bit modular exponentiations of an MSE handshake with
//! bt's own big numbers: a public key (G^X mod P, `KeyPair::from_private`)
//! and the shared secret (Y^X mod P, `KeyPair::shared_secret`), with
//! 160-bit private keys as `KeyPair::generate` draws them. Prints one CSV
//! line: `keygen_us,shared_us`, each the median of ROUNDS timings of
//! BATCH operations (per operation). Only the public API is used, so that
//! the same file builds against older commits (examples/bench-mse.sh).
//!
//!   mse_modexp [ROUNDS [BATCH]]     (defaults 31 and 20)

use std::hint::black_box;
use std::time::Instant;

use bt::mse::dh::KeyPair;

/// Deterministic private keys (xorshift), top bit set as generate() does.
fn private_key(state: &mut u64) -> [u8; 20] {
    let mut key = [0u8; 20];
    for b in key.iter_mut() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *b = *state as u8;
    }
    key[0] |= 0x80;
    key
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROUNDS and BATCH are counts"))
        .collect();
    let rounds = args.first().copied().unwrap_or(31).max(1);
    let batch = args.get(1).copied().unwrap_or(20).max(1);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let peer = KeyPair::from_private(&private_key(&mut state));
    // Warm up (one-time tables, caches).
    for _ in 0..batch {
        black_box(KeyPair::from_private(&private_key(&mut state)));
    }
    let (mut keygen, mut shared) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let keys: Vec<[u8; 20]> = (0..batch).map(|_| private_key(&mut state)).collect();
        let start = Instant::now();
        let pairs: Vec<KeyPair> = keys
            .iter()
            .map(|k| black_box(KeyPair::from_private(k)))
            .collect();
        keygen.push(start.elapsed().as_secs_f64() * 1e6 / batch as f64);
        let start = Instant::now();
        for p in &pairs {
            black_box(p.shared_secret(&peer.public_bytes()).expect("a valid key"));
        }
        shared.push(start.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    println!("{:.1},{:.1}", median(keygen), median(shared));
}

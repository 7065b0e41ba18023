//! SHA-1: known-answer vectors, incremental use, both backends, and a
//! comparison against coreutils' `sha1sum`.

use std::fs;
use std::io::ErrorKind;
use std::process::Command;

use bt::sha1::{backend, sha1, sha1_portable, Backend, Sha1};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Fixed so that a failure reproduces.
const SEED: u64 = 0x0b17_5ea1;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every backend this CPU can run, saying so when SHA-NI has to be left out.
fn backends() -> Vec<Backend> {
    let all = [Backend::Portable, Backend::ShaNi];
    let available: Vec<Backend> = all.into_iter().filter(|b| b.is_available()).collect();
    if available.len() < all.len() {
        eprintln!("note: this CPU has no SHA extensions; only the portable backend is tested");
    }
    available
}

fn hasher(backend: Backend) -> Sha1 {
    Sha1::with_backend(backend).expect("backend reported available")
}

fn digest_with(backend: Backend, data: &[u8]) -> String {
    let mut h = hasher(backend);
    h.update(data);
    hex(&h.finalize())
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

const ABC_448: &[u8] = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const ABC_896: &[u8] = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

/// FIPS 180-2 appendix A and the NIST example vectors, plus two common ones.
const VECTORS: &[(&[u8], &str)] = &[
    (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (ABC_448, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    (ABC_896, "a49b2446a02c645bf419f995b67091253a04a259"),
    (
        b"The quick brown fox jumps over the lazy dog",
        "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
    ),
    (b"a", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"),
];

#[test]
fn known_vectors_on_every_backend() {
    for b in backends() {
        for (msg, want) in VECTORS {
            assert_eq!(&digest_with(b, msg), want, "{} on {:?}", b.name(), msg);
        }
    }
    for (msg, want) in VECTORS {
        assert_eq!(&hex(&sha1(msg)), want);
        assert_eq!(&hex(&sha1_portable(msg)), want);
    }
}

#[test]
fn one_million_a() {
    const WANT: &str = "34aa973cd4c4daa4f61eeb2bdbad27316534016f";
    let msg = vec![b'a'; 1_000_000];
    for b in backends() {
        assert_eq!(digest_with(b, &msg), WANT, "{} one shot", b.name());
        // Odd-sized pieces keep the block buffer busy.
        let mut h = hasher(b);
        for piece in msg.chunks(997) {
            h.update(piece);
        }
        assert_eq!(hex(&h.finalize()), WANT, "{} in pieces", b.name());
    }
}

#[test]
fn split_at_every_position() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let messages = [
        ABC_448.to_vec(),
        ABC_896.to_vec(),
        random_bytes(&mut rng, 64),
        random_bytes(&mut rng, 1000),
    ];
    for b in backends() {
        for msg in &messages {
            let want = digest_with(b, msg);
            for i in 0..=msg.len() {
                let mut h = hasher(b);
                h.update(&msg[..i]);
                h.update(&msg[i..]);
                assert_eq!(
                    hex(&h.finalize()),
                    want,
                    "{} split at {i} of {}",
                    b.name(),
                    msg.len()
                );
            }
        }
    }
}

#[test]
fn split_in_three_at_every_pair_of_positions() {
    let msg = random_bytes(&mut StdRng::seed_from_u64(SEED), 150);
    for b in backends() {
        let want = digest_with(b, &msg);
        for i in 0..=msg.len() {
            for j in i..=msg.len() {
                let mut h = hasher(b);
                h.update(&msg[..i]);
                h.update(&msg[i..j]);
                h.update(&msg[j..]);
                assert_eq!(hex(&h.finalize()), want, "{} split at {i}, {j}", b.name());
            }
        }
    }
}

#[test]
fn backends_agree_on_random_chunking() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for round in 0..200 {
        let len = rng.gen_range(0..5000);
        let msg = random_bytes(&mut rng, len);
        let want = hex(&sha1_portable(&msg));
        for b in backends() {
            let mut h = hasher(b);
            let mut rest = &msg[..];
            while !rest.is_empty() {
                let n = rng.gen_range(0..=rest.len().min(300));
                h.update(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(
                hex(&h.finalize()),
                want,
                "{} round {round}, seed {SEED:#x}",
                b.name()
            );
        }
    }
}

#[test]
fn clone_forks_the_state() {
    for b in backends() {
        let mut h = hasher(b);
        h.update(b"abcdbcdecdefdefgefghfghighijhijk");
        let mut fork = h.clone();
        h.update(b"ijkljklmklmnlmnomnopnopq");
        fork.update(b"!");
        assert_eq!(
            hex(&h.finalize()),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        let mut whole = hasher(b);
        whole.update(b"abcdbcdecdefdefgefghfghighijhijk!");
        assert_eq!(fork.finalize(), whole.finalize());
    }
}

#[test]
fn default_and_reported_backend() {
    assert_eq!(Sha1::default().backend(), Backend::selected());
    assert_eq!(backend(), Backend::selected().name());
    assert!(["sha-ni", "portable"].contains(&backend()));
    assert!(Sha1::with_backend(Backend::Portable).is_some());
    assert_eq!(
        Sha1::with_backend(Backend::ShaNi).is_some(),
        Backend::ShaNi.is_available()
    );
    let mut h = Sha1::default();
    h.update(b"abc");
    assert_eq!(
        hex(&h.finalize()),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
}

/// Runs itself again with `BT_SHA1_PORTABLE=1` to see the variable honoured.
#[test]
fn env_var_forces_portable() {
    if std::env::var_os("BT_SHA1_PORTABLE").is_some_and(|v| v == "1") {
        assert_eq!(backend(), "portable");
        assert_eq!(Sha1::new().backend(), Backend::Portable);
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_var_forces_portable", "--test-threads=1"])
        .env("BT_SHA1_PORTABLE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// Random inputs of every length from 0 to 3000 bytes, hashed by `sha1sum`
/// in one run and by each backend.
#[test]
fn matches_coreutils_sha1sum() {
    const MAX_LEN: usize = 3000;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sha1sum-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();

    let mut rng = StdRng::seed_from_u64(SEED);
    let inputs: Vec<Vec<u8>> = (0..=MAX_LEN)
        .map(|len| random_bytes(&mut rng, len))
        .collect();
    let names: Vec<String> = (0..=MAX_LEN).map(|len| format!("{len:04}.bin")).collect();
    for (name, data) in names.iter().zip(&inputs) {
        fs::write(dir.join(name), data).unwrap();
    }

    let out = match Command::new("sha1sum")
        .args(&names)
        .current_dir(&dir)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`sha1sum` not found: install coreutils (e.g. `apt-get install coreutils`) \
             to run this test"
        ),
        Err(e) => panic!("running sha1sum: {e}"),
    };
    assert!(
        out.status.success(),
        "sha1sum failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        inputs.len(),
        "sha1sum printed an unexpected number of lines"
    );

    let backends = backends();
    for ((line, name), data) in lines.iter().zip(&names).zip(&inputs) {
        let (theirs, file) = line.split_once("  ").expect("`HEX  NAME` line");
        assert_eq!(file, name, "sha1sum output out of order");
        for &b in &backends {
            assert_eq!(
                digest_with(b, data),
                theirs,
                "{} differs from sha1sum for {} random bytes (seed {SEED:#x})",
                b.name(),
                data.len()
            );
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// NIST's "extremely long message": 1 GiB, so the bit length needs more than
/// 32 bits. Slow in debug builds; run with `cargo test --release -- --ignored`.
#[test]
#[ignore]
fn one_gibibyte_message() {
    const WANT: &str = "7789f0c9ef7bfc40d93311143dfbe69e2017f592";
    let unit = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno";
    let chunk = unit.repeat(1 << 14); // 1 MiB
    for b in backends() {
        let mut h = hasher(b);
        for _ in 0..1024 {
            h.update(&chunk);
        }
        assert_eq!(hex(&h.finalize()), WANT, "{}", b.name());
    }
}

//! The MSE Diffie–Hellman exchange: the 768-bit prime P, generator 2,
//! 160-bit private keys, and the shared secret S as 96 big-endian bytes.

use std::sync::OnceLock;

use rand::RngCore;

use super::bignum::{FixedBase, Modulus, BYTES, U768};
use super::MseError;

/// Length of a public key (Ya, Yb) and of the shared secret S on the wire.
pub const KEY_LEN: usize = BYTES;

/// Length of a private key (the spec recommends 160 bits).
pub const PRIVATE_KEY_LEN: usize = 20;

/// The prime P of the MSE specification, big-endian.
pub const PRIME: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];

/// The generator G.
pub const GENERATOR: u64 = 2;

/// P with its Montgomery constants, computed once.
pub fn prime() -> &'static Modulus {
    generator_powers().modulus()
}

/// The table of powers of G mod P, built once per process (57.6 KB): a
/// public key then costs about 38 multiplications instead of 160
/// squarings and ~27 multiplications.
pub fn generator_powers() -> &'static FixedBase {
    static GENERATOR_POWERS: OnceLock<FixedBase> = OnceLock::new();
    GENERATOR_POWERS.get_or_init(|| {
        let p = Modulus::new(U768::from_be_bytes(&PRIME).expect("96 bytes")).expect("P is odd");
        FixedBase::new(p, &U768::from_u64(GENERATOR))
    })
}

/// One side's Diffie–Hellman key pair.
#[derive(Clone)]
pub struct KeyPair {
    private: U768,
    public: U768,
}

impl KeyPair {
    /// Draws a 160-bit private key from `rng` (top bit set, so it is never
    /// small) and computes the public key G^X mod P.
    pub fn generate(rng: &mut impl RngCore) -> KeyPair {
        let mut x = [0u8; PRIVATE_KEY_LEN];
        rng.fill_bytes(&mut x);
        x[0] |= 0x80;
        KeyPair::from_private(&x)
    }

    /// The key pair for a given big-endian private key (at most 96 bytes).
    pub fn from_private(private_be: &[u8]) -> KeyPair {
        let private = U768::from_be_bytes(private_be).expect("private key of at most 96 bytes");
        let public = generator_powers().pow(&private);
        KeyPair { private, public }
    }

    /// Ya or Yb as sent: 96 bytes, big-endian, zero-padded.
    pub fn public_bytes(&self) -> [u8; KEY_LEN] {
        self.public.to_be_bytes()
    }

    /// S = Y_peer^X mod P as 96 bytes. Refuses a peer key outside
    /// [2, P-2]: 0, 1 and P-1 would force a predictable secret, and a
    /// value of P or more is not a residue.
    pub fn shared_secret(&self, peer_public: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], MseError> {
        let y = U768::from_be_bytes(peer_public).expect("96 bytes");
        let p = prime().value();
        let (p_minus_1, _) = p.overflowing_sub(&U768::ONE);
        if y <= U768::ONE || y >= p_minus_1 {
            return Err(MseError::BadPublicKey);
        }
        Ok(prime().pow(&y, &self.private).to_be_bytes())
    }
}

impl std::fmt::Debug for KeyPair {
    // The private key is secret: print only the public half's start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let public = self.public_bytes();
        write!(f, "KeyPair {{ public: {:02x?}.. }}", &public[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn both_sides_derive_the_same_secret() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5 {
            let a = KeyPair::generate(&mut rng);
            let b = KeyPair::generate(&mut rng);
            let sa = a.shared_secret(&b.public_bytes()).unwrap();
            let sb = b.shared_secret(&a.public_bytes()).unwrap();
            assert_eq!(sa, sb);
            assert_ne!(sa, [0u8; KEY_LEN]);
        }
    }

    #[test]
    fn degenerate_peer_keys_are_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let a = KeyPair::generate(&mut rng);
        let mut one = [0u8; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        let mut p_minus_1 = PRIME;
        p_minus_1[KEY_LEN - 1] -= 1;
        for bad in [[0u8; KEY_LEN], one, p_minus_1, PRIME, [0xff; KEY_LEN]] {
            assert!(matches!(a.shared_secret(&bad), Err(MseError::BadPublicKey)));
        }
        let mut two = [0u8; KEY_LEN];
        two[KEY_LEN - 1] = 2;
        assert!(a.shared_secret(&two).is_ok());
    }

    #[test]
    fn one_exponentiation_is_fast() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        prime();
        let runs = 20;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(a.shared_secret(&b.public_bytes()).unwrap());
        }
        let each = start.elapsed() / runs;
        // The brief: well under 5 ms in a dev build; leave room for a
        // loaded machine.
        assert!(
            each < std::time::Duration::from_millis(5),
            "one 768-bit modexp took {each:?}"
        );
    }
}

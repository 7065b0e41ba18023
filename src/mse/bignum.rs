//! Fixed-size unsigned big numbers for the MSE Diffie–Hellman exchange:
//! 768-bit values (twelve 64-bit limbs, least significant first), their
//! big-endian byte form, and modular exponentiation by Montgomery
//! multiplication for any odd 768-bit modulus.
//!
//! Not constant time: MSE is obfuscation against traffic shaping, and its
//! keys live for one connection.

use std::cmp::Ordering;

/// Limbs of a [`U768`].
pub const LIMBS: usize = 12;
/// Bytes of a [`U768`] in big-endian form.
pub const BYTES: usize = LIMBS * 8;

/// An unsigned 768-bit integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct U768 {
    /// Least significant limb first.
    limbs: [u64; LIMBS],
}

impl U768 {
    pub const ZERO: U768 = U768 { limbs: [0; LIMBS] };
    pub const ONE: U768 = U768::from_u64(1);

    pub const fn from_u64(v: u64) -> U768 {
        let mut limbs = [0; LIMBS];
        limbs[0] = v;
        U768 { limbs }
    }

    /// Reads up to 96 big-endian bytes (shorter input is zero-extended at
    /// the top). Returns `None` for more than 96 bytes.
    pub fn from_be_bytes(bytes: &[u8]) -> Option<U768> {
        if bytes.len() > BYTES {
            return None;
        }
        let mut padded = [0u8; BYTES];
        padded[BYTES - bytes.len()..].copy_from_slice(bytes);
        let mut limbs = [0u64; LIMBS];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let end = BYTES - 8 * i;
            *limb = u64::from_be_bytes(padded[end - 8..end].try_into().unwrap());
        }
        Some(U768 { limbs })
    }

    /// The 96-byte big-endian form, zero-padded at the front.
    pub fn to_be_bytes(&self) -> [u8; BYTES] {
        let mut out = [0u8; BYTES];
        for (i, limb) in self.limbs.iter().enumerate() {
            let end = BYTES - 8 * i;
            out[end - 8..end].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    pub fn is_zero(&self) -> bool {
        self.limbs.iter().all(|&l| l == 0)
    }

    /// The number of significant bits (0 for zero).
    pub fn bit_len(&self) -> usize {
        for i in (0..LIMBS).rev() {
            if self.limbs[i] != 0 {
                return 64 * i + 64 - self.limbs[i].leading_zeros() as usize;
            }
        }
        0
    }

    pub fn bit(&self, i: usize) -> bool {
        i < 64 * LIMBS && (self.limbs[i / 64] >> (i % 64)) & 1 == 1
    }

    /// `self - other` and whether it borrowed (wrapped below zero).
    pub fn overflowing_sub(&self, other: &U768) -> (U768, bool) {
        let mut out = [0u64; LIMBS];
        let mut borrow = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (d1, b1) = self.limbs[i].overflowing_sub(other.limbs[i]);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *o = d2;
            borrow = b1 || b2;
        }
        (U768 { limbs: out }, borrow)
    }

    /// `self + other` and whether it carried out of 768 bits.
    pub fn overflowing_add(&self, other: &U768) -> (U768, bool) {
        let mut out = [0u64; LIMBS];
        let mut carry = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (s1, c1) = self.limbs[i].overflowing_add(other.limbs[i]);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *o = s2;
            carry = c1 || c2;
        }
        (U768 { limbs: out }, carry)
    }
}

impl Ord for U768 {
    fn cmp(&self, other: &U768) -> Ordering {
        for i in (0..LIMBS).rev() {
            match self.limbs[i].cmp(&other.limbs[i]) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U768 {
    fn partial_cmp(&self, other: &U768) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for U768 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "U768(0x")?;
        for b in self.to_be_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An odd modulus with the constants Montgomery multiplication needs
/// (R = 2^768).
#[derive(Clone, Debug)]
pub struct Modulus {
    m: U768,
    /// -m^-1 mod 2^64.
    m_inv_neg: u64,
    /// R^2 mod m, to move values into Montgomery form.
    r_squared: U768,
}

impl Modulus {
    /// Returns `None` for an even modulus (Montgomery needs it odd) or one.
    pub fn new(m: U768) -> Option<Modulus> {
        if m.limbs[0] & 1 == 0 || m == U768::ONE {
            return None;
        }
        // Newton's iteration for the inverse mod 2^64: m0 is its own
        // inverse mod 8, and each step doubles the correct bits.
        let m0 = m.limbs[0];
        let mut inv = m0;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
        }
        // R^2 mod m by doubling 1 a total of 2 * 768 times, reducing each time.
        let mut acc = U768::ONE;
        for _ in 0..2 * 64 * LIMBS {
            acc = double_mod(&acc, &m);
        }
        Some(Modulus {
            m,
            m_inv_neg: inv.wrapping_neg(),
            r_squared: acc,
        })
    }

    pub fn value(&self) -> &U768 {
        &self.m
    }

    /// `base^exp mod m` (`base` may be any 768-bit value).
    pub fn pow(&self, base: &U768, exp: &U768) -> U768 {
        let one_mont = self.montgomery_form(&U768::ONE);
        let base_mont = self.montgomery_form(base);
        // Left-to-right with a 4-bit fixed window: 16 precomputed powers.
        let mut table = [one_mont; 16];
        for i in 1..16 {
            table[i] = self.mont_mul(&table[i - 1], &base_mont);
        }
        let bits = exp.bit_len();
        let windows = bits.div_ceil(4);
        let mut acc = one_mont;
        for w in (0..windows).rev() {
            for _ in 0..4 {
                acc = self.mont_mul(&acc, &acc);
            }
            let mut digit = 0usize;
            for b in (0..4).rev() {
                digit = (digit << 1) | exp.bit(4 * w + b) as usize;
            }
            if digit != 0 {
                acc = self.mont_mul(&acc, &table[digit]);
            }
        }
        self.standard_form(&acc)
    }

    fn montgomery_form(&self, x: &U768) -> U768 {
        // x * R^2 / R = x * R mod m; valid for any x < 2^768 since the
        // product stays below m * R.
        self.mont_mul(x, &self.r_squared)
    }

    fn standard_form(&self, x: &U768) -> U768 {
        self.mont_mul(x, &U768::ONE)
    }

    /// a * b / R mod m (coarsely integrated operand scanning), for
    /// a * b < m * R; the result is fully reduced below m.
    // Indices walk three arrays in step; iterators would hide that.
    #[allow(clippy::needless_range_loop)]
    fn mont_mul(&self, a: &U768, b: &U768) -> U768 {
        let m = &self.m.limbs;
        let mut t = [0u64; LIMBS + 2];
        for &bi in b.limbs.iter() {
            // t += a * b[i]
            let mut carry = 0u64;
            for j in 0..LIMBS {
                let s = t[j] as u128 + (a.limbs[j] as u128) * (bi as u128) + carry as u128;
                t[j] = s as u64;
                carry = (s >> 64) as u64;
            }
            let s = t[LIMBS] as u128 + carry as u128;
            t[LIMBS] = s as u64;
            t[LIMBS + 1] = (s >> 64) as u64;
            // t = (t + u * m) / 2^64, with u chosen to clear the low limb.
            let u = t[0].wrapping_mul(self.m_inv_neg);
            let s = t[0] as u128 + (u as u128) * (m[0] as u128);
            let mut carry = (s >> 64) as u64;
            for j in 1..LIMBS {
                let s = t[j] as u128 + (u as u128) * (m[j] as u128) + carry as u128;
                t[j - 1] = s as u64;
                carry = (s >> 64) as u64;
            }
            let s = t[LIMBS] as u128 + carry as u128;
            t[LIMBS - 1] = s as u64;
            t[LIMBS] = t[LIMBS + 1] + (s >> 64) as u64;
            t[LIMBS + 1] = 0;
        }
        let mut low = [0u64; LIMBS];
        low.copy_from_slice(&t[..LIMBS]);
        let result = U768 { limbs: low };
        // t < 2m: one conditional subtraction reduces it.
        if t[LIMBS] != 0 || result >= self.m {
            result.overflowing_sub(&self.m).0
        } else {
            result
        }
    }
}

/// 2x mod m for x < m.
fn double_mod(x: &U768, m: &U768) -> U768 {
    let (doubled, carry) = x.overflowing_add(x);
    if carry || doubled >= *m {
        doubled.overflowing_sub(m).0
    } else {
        doubled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(s: &str) -> U768 {
        let s = if s.len() % 2 == 1 {
            format!("0{s}")
        } else {
            s.to_string()
        };
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        U768::from_be_bytes(&bytes).unwrap()
    }

    #[test]
    fn bytes_round_trip_and_padding() {
        let x = U768::from_be_bytes(&[1, 2, 3]).unwrap();
        let b = x.to_be_bytes();
        assert_eq!(&b[..93], &[0u8; 93][..]);
        assert_eq!(&b[93..], &[1, 2, 3]);
        assert_eq!(U768::from_be_bytes(&b).unwrap(), x);
        assert!(U768::from_be_bytes(&[0u8; 97]).is_none());
        assert_eq!(x.bit_len(), 17);
        assert_eq!(U768::ZERO.bit_len(), 0);
    }

    #[test]
    fn small_moduli_match_naive_pow() {
        for m in [3u64, 5, 97, 65_537, 1_000_000_007, (1 << 61) - 1] {
            let modulus = Modulus::new(U768::from_u64(m)).unwrap();
            for base in [0u64, 1, 2, 3, 12_345, u64::MAX] {
                for exp in [0u64, 1, 2, 3, 10, 65_537, 1 << 40] {
                    let mut want: u128 = 1 % m as u128;
                    let mut b = (base % m) as u128;
                    let mut e = exp;
                    while e > 0 {
                        if e & 1 == 1 {
                            want = want * b % m as u128;
                        }
                        b = b * b % m as u128;
                        e >>= 1;
                    }
                    let got = modulus.pow(&U768::from_u64(base), &U768::from_u64(exp));
                    assert_eq!(got, U768::from_u64(want as u64), "{base}^{exp} mod {m}");
                }
            }
        }
    }

    #[test]
    fn even_modulus_is_refused() {
        assert!(Modulus::new(U768::from_u64(10)).is_none());
        assert!(Modulus::new(U768::ONE).is_none());
    }

    #[test]
    fn fermat_on_a_768_bit_prime() {
        // The MSE prime: a^(p-1) = 1 mod p.
        let p = from_hex(
            "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
             020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
             4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
        );
        let modulus = Modulus::new(p).unwrap();
        let (p_minus_1, _) = p.overflowing_sub(&U768::ONE);
        for a in [2u64, 3, 0xdead_beef] {
            assert_eq!(modulus.pow(&U768::from_u64(a), &p_minus_1), U768::ONE);
        }
        // A base above p is reduced first: (p + 2)^e = 2^e.
        let (p_plus_2, _) = p.overflowing_add(&U768::from_u64(2));
        let e = from_hex("123456789abcdef0fedcba9876543210");
        assert_eq!(
            modulus.pow(&p_plus_2, &e),
            modulus.pow(&U768::from_u64(2), &e)
        );
    }
}

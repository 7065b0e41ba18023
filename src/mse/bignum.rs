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
        let bits = exp.bit_len();
        if bits == 0 {
            // 1 is reduced since m > 1.
            return U768::ONE;
        }
        // Left-to-right sliding window of up to WINDOW bits: only odd
        // powers are tabled (base^1, base^3, .., base^(2^WINDOW - 1)), and
        // a run of zero bits costs squarings only. For a 160-bit private
        // key that is 160 squarings and about 27 multiplications.
        const WINDOW: usize = 5;
        let base_mont = self.montgomery_form(base);
        let base_squared = self.mont_sqr(&base_mont);
        let mut odd_powers = [base_mont; 1 << (WINDOW - 1)];
        for i in 1..odd_powers.len() {
            odd_powers[i] = self.mont_mul(&odd_powers[i - 1], &base_squared);
        }
        let mut acc: Option<U768> = None;
        let mut i = bits;
        while i > 0 {
            if !exp.bit(i - 1) {
                acc = acc.map(|a| self.mont_sqr(&a));
                i -= 1;
                continue;
            }
            // The longest window of at most WINDOW bits, from bit i-1 down,
            // that ends in a one bit.
            let mut low = i.saturating_sub(WINDOW);
            while !exp.bit(low) {
                low += 1;
            }
            let mut digit = 0usize;
            for b in (low..i).rev() {
                digit = (digit << 1) | exp.bit(b) as usize;
            }
            let power = &odd_powers[digit >> 1];
            acc = Some(match acc {
                None => *power,
                Some(mut a) => {
                    for _ in low..i {
                        a = self.mont_sqr(&a);
                    }
                    self.mont_mul(&a, power)
                }
            });
            i = low;
        }
        self.standard_form(&acc.expect("exp has a one bit"))
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
        self.reduce_once(U768 { limbs: low }, t[LIMBS] != 0)
    }

    /// a * a / R mod m for a < m. Squaring computes each cross product
    /// a[i] * a[j] once and doubles the sum: 78 limb products instead of
    /// 144, before the same 144 of the reduction.
    #[allow(clippy::needless_range_loop)]
    fn mont_sqr(&self, a: &U768) -> U768 {
        let a = &a.limbs;
        let mut t = [0u64; 2 * LIMBS];
        // The cross products, each once.
        for i in 0..LIMBS {
            let mut carry = 0u64;
            for j in i + 1..LIMBS {
                let s = t[i + j] as u128 + (a[i] as u128) * (a[j] as u128) + carry as u128;
                t[i + j] = s as u64;
                carry = (s >> 64) as u64;
            }
            t[i + LIMBS] = carry;
        }
        // Doubled (the sum is below 2^1535, so nothing falls off the top),
        // plus the squares on the diagonal.
        let mut shifted_out = 0u64;
        for limb in t.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | shifted_out;
            shifted_out = next;
        }
        let mut carry = 0u64;
        for i in 0..LIMBS {
            let square = (a[i] as u128) * (a[i] as u128);
            let s = t[2 * i] as u128 + (square as u64) as u128 + carry as u128;
            t[2 * i] = s as u64;
            let s = t[2 * i + 1] as u128 + (square >> 64) + (s >> 64);
            t[2 * i + 1] = s as u64;
            carry = (s >> 64) as u64;
        }
        self.redc(&mut t)
    }

    /// Montgomery reduction of a double-width t < m * R: t / R mod m.
    #[allow(clippy::needless_range_loop)]
    fn redc(&self, t: &mut [u64; 2 * LIMBS]) -> U768 {
        let m = &self.m.limbs;
        // The carry out of row i lands on limb i + LIMBS + 1, which row
        // i + 1 adds in as it finishes.
        let mut pending_carry = 0u64;
        for i in 0..LIMBS {
            let u = t[i].wrapping_mul(self.m_inv_neg);
            let mut carry = 0u64;
            for j in 0..LIMBS {
                let s = t[i + j] as u128 + (u as u128) * (m[j] as u128) + carry as u128;
                t[i + j] = s as u64;
                carry = (s >> 64) as u64;
            }
            let s = t[i + LIMBS] as u128 + carry as u128 + pending_carry as u128;
            t[i + LIMBS] = s as u64;
            pending_carry = (s >> 64) as u64;
        }
        let mut high = [0u64; LIMBS];
        high.copy_from_slice(&t[LIMBS..]);
        self.reduce_once(U768 { limbs: high }, pending_carry != 0)
    }

    /// For a value below 2m, given as 768 bits and a 769th: itself minus m
    /// if that is not negative.
    fn reduce_once(&self, value: U768, top_bit: bool) -> U768 {
        if top_bit || value >= self.m {
            value.overflowing_sub(&self.m).0
        } else {
            value
        }
    }
}

/// Powers of a fixed base, tabled once so that each exponentiation is
/// multiplications only: `table[w][d - 1]` = base^(d * 16^w) in Montgomery
/// form, for exponents of up to [`FixedBase::MAX_EXP_BITS`] bits. The MSE
/// key pair's G^X is one such power per connection; the table (57.6 KB for
/// 160 bits) turns its 160 squarings and ~40 multiplications into ~38
/// multiplications.
pub struct FixedBase {
    modulus: Modulus,
    base: U768,
    table: Box<[[U768; 15]; FixedBase::WINDOWS]>,
}

impl FixedBase {
    /// Longest exponent served from the table (the spec's 160-bit private
    /// keys); longer ones take [`Modulus::pow`].
    pub const MAX_EXP_BITS: usize = 160;
    const WINDOWS: usize = FixedBase::MAX_EXP_BITS / 4;

    pub fn new(modulus: Modulus, base: &U768) -> FixedBase {
        let mut power = modulus.montgomery_form(base);
        let mut table = Box::new([[power; 15]; FixedBase::WINDOWS]);
        for row in table.iter_mut() {
            // power = base^(16^w)
            row[0] = power;
            for d in 1..15 {
                row[d] = modulus.mont_mul(&row[d - 1], &power);
            }
            power = modulus.mont_mul(&row[14], &power);
        }
        FixedBase {
            modulus,
            base: *base,
            table,
        }
    }

    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// base^exp mod m.
    pub fn pow(&self, exp: &U768) -> U768 {
        if exp.bit_len() > FixedBase::MAX_EXP_BITS {
            return self.modulus.pow(&self.base, exp);
        }
        let mut acc: Option<U768> = None;
        for (w, row) in self.table.iter().enumerate() {
            let digit = (exp.limbs[w / 16] >> (4 * (w % 16))) as usize & 15;
            if digit != 0 {
                let power = &row[digit - 1];
                acc = Some(match acc {
                    None => *power,
                    Some(a) => self.modulus.mont_mul(&a, power),
                });
            }
        }
        match acc {
            Some(a) => self.modulus.standard_form(&a),
            // base^0; 1 is reduced since m > 1.
            None => U768::ONE,
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
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

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

    /// A random value of `bits` bits at most (the top one set when
    /// `exact`), from `rng`.
    fn random_value(rng: &mut StdRng, bits: usize, exact: bool) -> U768 {
        let mut limbs = [0u64; LIMBS];
        for (i, limb) in limbs.iter_mut().enumerate() {
            if 64 * i < bits {
                *limb = rng.gen();
                if bits - 64 * i < 64 {
                    *limb &= (1u64 << (bits - 64 * i)) - 1;
                }
            }
        }
        if exact && bits > 0 {
            limbs[(bits - 1) / 64] |= 1 << ((bits - 1) % 64);
        }
        U768 { limbs }
    }

    /// 2^bits - 1.
    fn ones(bits: usize) -> U768 {
        let mut limbs = [0u64; LIMBS];
        for (i, limb) in limbs.iter_mut().enumerate() {
            if 64 * i < bits {
                *limb = u64::MAX >> (64 - (bits - 64 * i).min(64));
            }
        }
        U768 { limbs }
    }

    /// A random odd modulus above 1 of `bits` bits.
    fn random_modulus(rng: &mut StdRng, bits: usize) -> U768 {
        let mut m = random_value(rng, bits, true);
        m.limbs[0] |= 1;
        if m == U768::ONE {
            m.limbs[0] = 3;
        }
        m
    }

    /// (a + b) mod m for a, b < m.
    fn reference_add_mod(a: &U768, b: &U768, m: &U768) -> U768 {
        let (sum, carry) = a.overflowing_add(b);
        if carry || sum >= *m {
            sum.overflowing_sub(m).0
        } else {
            sum
        }
    }

    /// x mod m, one bit at a time.
    fn reference_reduce(x: &U768, m: &U768) -> U768 {
        let mut r = U768::ZERO;
        for i in (0..64 * LIMBS).rev() {
            r = double_mod(&r, m);
            if x.bit(i) {
                r = reference_add_mod(&r, &U768::ONE, m);
            }
        }
        r
    }

    /// a * b mod m by doubling and adding, for a, b < m.
    fn reference_mul_mod(a: &U768, b: &U768, m: &U768) -> U768 {
        let mut r = U768::ZERO;
        for i in (0..b.bit_len()).rev() {
            r = double_mod(&r, m);
            if b.bit(i) {
                r = reference_add_mod(&r, a, m);
            }
        }
        r
    }

    /// base^exp mod m by square and multiply, sharing nothing with
    /// Montgomery arithmetic.
    fn reference_pow(base: &U768, exp: &U768, m: &U768) -> U768 {
        let base = reference_reduce(base, m);
        let mut r = reference_reduce(&U768::ONE, m);
        for i in (0..exp.bit_len()).rev() {
            r = reference_mul_mod(&r, &r, m);
            if exp.bit(i) {
                r = reference_mul_mod(&r, &base, m);
            }
        }
        r
    }

    #[test]
    fn squaring_matches_multiplication() {
        let mut rng = StdRng::seed_from_u64(11);
        for round in 0..300 {
            let bits = [768, 767, 700, 640, 513, 129, 64, 2][round % 8];
            let m = random_modulus(&mut rng, bits);
            let modulus = Modulus::new(m).unwrap();
            // All-ones limbs stress every carry.
            let mut a = if round % 5 == 0 {
                m.overflowing_sub(&U768::ONE).0
            } else {
                random_value(&mut rng, bits, false)
            };
            if a >= m {
                a = a.overflowing_sub(&m).0;
            }
            assert_eq!(
                modulus.mont_sqr(&a),
                modulus.mont_mul(&a, &a),
                "{a:?} mod {m:?}"
            );
        }
    }

    #[test]
    fn pow_matches_a_reference_on_random_values() {
        let mut rng = StdRng::seed_from_u64(12);
        for round in 0..120 {
            let bits = [768, 767, 700, 520, 200, 65, 64, 9][round % 8];
            let m = random_modulus(&mut rng, bits);
            let modulus = Modulus::new(m).unwrap();
            // Any 768-bit base (also above m), exponents of 0 to 170 bits
            // with every window pattern, sometimes all ones.
            let base = random_value(&mut rng, 768, false);
            let exp_bits = rng.gen_range(0..=170);
            let exp = if round % 7 == 0 {
                ones(exp_bits)
            } else {
                random_value(&mut rng, exp_bits, false)
            };
            assert_eq!(
                modulus.pow(&base, &exp),
                reference_pow(&base, &exp, &m),
                "{base:?}^{exp:?} mod {m:?}"
            );
        }
    }

    #[test]
    fn fixed_base_matches_pow() {
        let mut rng = StdRng::seed_from_u64(13);
        for round in 0..6 {
            let m = random_modulus(&mut rng, [768, 767, 300][round % 3]);
            let modulus = Modulus::new(m).unwrap();
            let base = if round < 2 {
                U768::from_u64(2)
            } else {
                random_value(&mut rng, 768, false)
            };
            let fixed = FixedBase::new(modulus.clone(), &base);
            // Table sizes and the fallback above 160 bits.
            for exp_bits in [0, 1, 4, 5, 63, 64, 65, 159, 160, 161, 400, 768] {
                for exact in [true, false] {
                    let exp = random_value(&mut rng, exp_bits, exact);
                    assert_eq!(fixed.pow(&exp), modulus.pow(&base, &exp), "{exp:?}");
                }
            }
            for bits in [160, 161] {
                assert_eq!(fixed.pow(&ones(bits)), modulus.pow(&base, &ones(bits)));
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

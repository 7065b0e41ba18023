//! SHA-1 (FIPS 180-4), as BitTorrent uses it for info hashes and pieces.
//! Collisions can be forged, so use it only where the protocol demands it.
//!
//! Two compression functions: one on the x86_64 SHA extensions (SHA-NI),
//! picked at run time when the CPU has them, and a portable one used
//! otherwise. Setting `BT_SHA1_PORTABLE=1` in the environment forces the
//! portable one, so both can be compared on the same machine.
//!
//! ```
//! let mut h = bt::sha1::Sha1::new();
//! h.update(b"ab");
//! h.update(b"c");
//! assert_eq!(h.finalize(), bt::sha1::sha1(b"abc"));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

const BLOCK_LEN: usize = 64;

/// Initial hash value, FIPS 180-4 section 5.3.1.
const H0: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// A SHA-1 compression function implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Plain Rust, for any CPU.
    Portable,
    /// The x86_64 SHA extensions.
    ShaNi,
}

impl Backend {
    /// Short name for logs and benchmarks: `"portable"` or `"sha-ni"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::ShaNi => "sha-ni",
        }
    }

    /// Whether this CPU can run the backend (ignores `BT_SHA1_PORTABLE`).
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            Backend::ShaNi => detected() & CPU_SHA_NI != 0,
        }
    }

    /// The backend [`Sha1::new`] uses: SHA-NI when available, unless
    /// `BT_SHA1_PORTABLE` is set to anything but `""` or `"0"`.
    pub fn selected() -> Backend {
        let flags = detected();
        if flags & CPU_SHA_NI != 0 && flags & FORCE_PORTABLE == 0 {
            Backend::ShaNi
        } else {
            Backend::Portable
        }
    }
}

/// Name of the backend [`Sha1::new`] uses: `"sha-ni"` or `"portable"`.
pub fn backend() -> &'static str {
    Backend::selected().name()
}

// Detection runs once; afterwards a relaxed load is all a hasher pays.
// Racing first calls compute the same value, so no stronger ordering is needed.
static DETECTED: AtomicU8 = AtomicU8::new(0);
const DETECTION_DONE: u8 = 1;
const CPU_SHA_NI: u8 = 2;
const FORCE_PORTABLE: u8 = 4;

fn detected() -> u8 {
    let flags = DETECTED.load(Ordering::Relaxed);
    if flags != 0 {
        return flags;
    }
    let mut flags = DETECTION_DONE;
    if cpu_has_sha_ni() {
        flags |= CPU_SHA_NI;
    }
    if std::env::var_os("BT_SHA1_PORTABLE").is_some_and(|v| !v.is_empty() && v != "0") {
        flags |= FORCE_PORTABLE;
    }
    DETECTED.store(flags, Ordering::Relaxed);
    flags
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_sha_ni() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_sha_ni() -> bool {
    false
}

/// Incremental SHA-1 hasher.
#[derive(Clone)]
pub struct Sha1 {
    state: [u32; 5],
    buf: [u8; BLOCK_LEN],
    buf_len: usize,
    /// Message length in bytes so far (mod 2^64).
    len: u64,
    /// Invariant: only a backend that `is_available()`; `compress` relies on it.
    backend: Backend,
}

impl Sha1 {
    /// A hasher on the [`Backend::selected`] backend.
    pub fn new() -> Self {
        Self::unchecked(Backend::selected())
    }

    /// A hasher on the given backend, or `None` if this CPU can't run it.
    /// An explicit choice overrides `BT_SHA1_PORTABLE`.
    pub fn with_backend(backend: Backend) -> Option<Self> {
        backend.is_available().then(|| Self::unchecked(backend))
    }

    fn unchecked(backend: Backend) -> Self {
        Sha1 {
            state: H0,
            buf: [0; BLOCK_LEN],
            buf_len: 0,
            len: 0,
            backend,
        }
    }

    /// The backend this hasher runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Feeds `data` into the hash.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (BLOCK_LEN - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK_LEN {
                return;
            }
            compress(self.backend, &mut self.state, &self.buf);
            self.buf_len = 0;
        }
        // Whole blocks go straight from the caller's slice, all in one call.
        let whole = data.len() - data.len() % BLOCK_LEN;
        if whole > 0 {
            compress(self.backend, &mut self.state, &data[..whole]);
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads the message (FIPS 180-4 section 5.1.1) and returns the digest.
    pub fn finalize(mut self) -> [u8; 20] {
        let n = self.buf_len;
        let mut tail = [0u8; 2 * BLOCK_LEN];
        tail[..n].copy_from_slice(&self.buf[..n]);
        tail[n] = 0x80;
        // The 0x80 byte and the 8-byte length must fit after the data.
        let tail_len = if n + 1 + 8 <= BLOCK_LEN {
            BLOCK_LEN
        } else {
            2 * BLOCK_LEN
        };
        let bits = self.len.wrapping_mul(8);
        tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_be_bytes());
        compress(self.backend, &mut self.state, &tail[..tail_len]);

        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

impl Default for Sha1 {
    fn default() -> Self {
        Self::new()
    }
}

// Not derived: the buffer holds message bytes, which have no place in logs.
impl fmt::Debug for Sha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha1")
            .field("backend", &self.backend)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// SHA-1 of `data`, on the [`Backend::selected`] backend.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(data);
    h.finalize()
}

/// SHA-1 of `data` on the portable backend, whatever the CPU or environment.
pub fn sha1_portable(data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::unchecked(Backend::Portable);
    h.update(data);
    h.finalize()
}

/// Runs the compression function over `blocks`, a whole number of blocks.
#[inline]
fn compress(backend: Backend, state: &mut [u32; 5], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK_LEN, 0);
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::ShaNi {
        // SAFETY: a `Sha1` holds `ShaNi` only after `is_available()` said yes.
        unsafe { shani::compress(state, blocks) };
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = backend; // the portable backend is the only one here
    portable::compress(state, blocks);
}

mod portable {
    use super::BLOCK_LEN;

    // FIPS 180-4 section 4.1.1, in forms with fewer operations.
    #[inline(always)]
    fn ch(x: u32, y: u32, z: u32) -> u32 {
        z ^ (x & (y ^ z))
    }

    #[inline(always)]
    fn parity(x: u32, y: u32, z: u32) -> u32 {
        x ^ y ^ z
    }

    #[inline(always)]
    fn maj(x: u32, y: u32, z: u32) -> u32 {
        // The two terms share no set bits, so `+` can merge into the adds.
        (x & y).wrapping_add(z & (x ^ y))
    }

    const K: [u32; 4] = [0x5a82_7999, 0x6ed9_eba1, 0x8f1b_bcdc, 0xca62_c1d6];

    /// One round `t`. Instead of shifting a..e along, callers rotate the
    /// names; the schedule keeps only the last 16 words of W.
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $w:ident, $t:expr, $f:ident, $k:expr) => {{
            let t: usize = $t;
            let wt = if t < 16 {
                $w[t]
            } else {
                // W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), indices mod 16.
                let x = ($w[(t + 13) & 15] ^ $w[(t + 8) & 15] ^ $w[(t + 2) & 15] ^ $w[t & 15])
                    .rotate_left(1);
                $w[t & 15] = x;
                x
            };
            $e = $e
                .wrapping_add($a.rotate_left(5))
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($k)
                .wrapping_add(wt);
            $b = $b.rotate_left(30);
        }};
    }

    /// Five rounds bring the names back to where they started.
    macro_rules! five {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $w:ident, $t:expr, $f:ident, $k:expr) => {
            round!($a, $b, $c, $d, $e, $w, $t, $f, $k);
            round!($e, $a, $b, $c, $d, $w, $t + 1, $f, $k);
            round!($d, $e, $a, $b, $c, $w, $t + 2, $f, $k);
            round!($c, $d, $e, $a, $b, $w, $t + 3, $f, $k);
            round!($b, $c, $d, $e, $a, $w, $t + 4, $f, $k);
        };
    }

    pub(super) fn compress(state: &mut [u32; 5], blocks: &[u8]) {
        let [mut h0, mut h1, mut h2, mut h3, mut h4] = *state;
        let mut w = [0u32; 16];
        for block in blocks.chunks_exact(BLOCK_LEN) {
            for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            let (mut a, mut b, mut c, mut d, mut e) = (h0, h1, h2, h3, h4);

            five!(a, b, c, d, e, w, 0, ch, K[0]);
            five!(a, b, c, d, e, w, 5, ch, K[0]);
            five!(a, b, c, d, e, w, 10, ch, K[0]);
            five!(a, b, c, d, e, w, 15, ch, K[0]);
            five!(a, b, c, d, e, w, 20, parity, K[1]);
            five!(a, b, c, d, e, w, 25, parity, K[1]);
            five!(a, b, c, d, e, w, 30, parity, K[1]);
            five!(a, b, c, d, e, w, 35, parity, K[1]);
            five!(a, b, c, d, e, w, 40, maj, K[2]);
            five!(a, b, c, d, e, w, 45, maj, K[2]);
            five!(a, b, c, d, e, w, 50, maj, K[2]);
            five!(a, b, c, d, e, w, 55, maj, K[2]);
            five!(a, b, c, d, e, w, 60, parity, K[3]);
            five!(a, b, c, d, e, w, 65, parity, K[3]);
            five!(a, b, c, d, e, w, 70, parity, K[3]);
            five!(a, b, c, d, e, w, 75, parity, K[3]);

            h0 = h0.wrapping_add(a);
            h1 = h1.wrapping_add(b);
            h2 = h2.wrapping_add(c);
            h3 = h3.wrapping_add(d);
            h4 = h4.wrapping_add(e);
        }
        *state = [h0, h1, h2, h3, h4];
    }
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use super::BLOCK_LEN;
    use core::arch::x86_64::*;

    /// Compression with SHA1RNDS4 (four rounds each), SHA1NEXTE (derives E
    /// for the next four from the A four rounds back and adds it to W) and
    /// SHA1MSG1/SHA1MSG2 (the message schedule, four words at a time).
    ///
    /// These instructions want words big end first: A, or W[t], in bits
    /// 127:96 and D, or W[t+3], in bits 31:0.
    ///
    /// # Safety
    /// The CPU must support SHA, SSE2, SSSE3 and SSE4.1.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress(state: &mut [u32; 5], blocks: &[u8]) {
        // Reversing all 16 bytes both makes each word big-endian and puts
        // the first word in the top lane.
        let reverse_bytes = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // state[0..4] loads as D:C:B:A (high to low); 0x1b reverses the lanes.
        let mut abcd = _mm_shuffle_epi32(_mm_loadu_si128(state.as_ptr().cast()), 0x1b);
        // E rides in the top lane; the zeros below keep `E + W` exact.
        let mut e = _mm_set_epi32(state[4] as i32, 0, 0, 0);

        // Message words W[4i..4i+4] from the four before: SHA1MSG1 and the
        // XOR form W[t-16] ^ W[t-14] ^ W[t-8]; SHA1MSG2 adds W[t-3] and rotates.
        macro_rules! schedule {
            ($m0:ident, $m1:ident, $m2:ident, $m3:ident) => {
                $m0 = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32($m0, $m1), $m2), $m3);
            };
        }
        // Four rounds; E is ROTL30 of the A that went into the previous four.
        macro_rules! rounds4 {
            ($abcd:ident, $prev:ident, $m:ident, $func:literal) => {
                let we = _mm_sha1nexte_epu32($prev, $m);
                $prev = $abcd;
                $abcd = _mm_sha1rnds4_epu32($abcd, we, $func);
            };
        }

        for block in blocks.chunks_exact(BLOCK_LEN) {
            let p = block.as_ptr().cast::<__m128i>();
            let mut m0 = _mm_shuffle_epi8(_mm_loadu_si128(p), reverse_bytes);
            let mut m1 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), reverse_bytes);
            let mut m2 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), reverse_bytes);
            let mut m3 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), reverse_bytes);
            let abcd_in = abcd;
            let e_in = e;

            // Rounds 0-3 take E from the state rather than from SHA1NEXTE.
            let mut prev = abcd;
            abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e, m0), 0);
            rounds4!(abcd, prev, m1, 0);
            rounds4!(abcd, prev, m2, 0);
            rounds4!(abcd, prev, m3, 0);
            schedule!(m0, m1, m2, m3);
            rounds4!(abcd, prev, m0, 0); // rounds 16-19
            schedule!(m1, m2, m3, m0);
            rounds4!(abcd, prev, m1, 1);
            schedule!(m2, m3, m0, m1);
            rounds4!(abcd, prev, m2, 1);
            schedule!(m3, m0, m1, m2);
            rounds4!(abcd, prev, m3, 1);
            schedule!(m0, m1, m2, m3);
            rounds4!(abcd, prev, m0, 1);
            schedule!(m1, m2, m3, m0);
            rounds4!(abcd, prev, m1, 1); // rounds 36-39
            schedule!(m2, m3, m0, m1);
            rounds4!(abcd, prev, m2, 2);
            schedule!(m3, m0, m1, m2);
            rounds4!(abcd, prev, m3, 2);
            schedule!(m0, m1, m2, m3);
            rounds4!(abcd, prev, m0, 2);
            schedule!(m1, m2, m3, m0);
            rounds4!(abcd, prev, m1, 2);
            schedule!(m2, m3, m0, m1);
            rounds4!(abcd, prev, m2, 2); // rounds 56-59
            schedule!(m3, m0, m1, m2);
            rounds4!(abcd, prev, m3, 3);
            schedule!(m0, m1, m2, m3);
            rounds4!(abcd, prev, m0, 3);
            schedule!(m1, m2, m3, m0);
            rounds4!(abcd, prev, m1, 3);
            schedule!(m2, m3, m0, m1);
            rounds4!(abcd, prev, m2, 3);
            schedule!(m3, m0, m1, m2);
            rounds4!(abcd, prev, m3, 3); // rounds 76-79

            // E after round 79 is ROTL30 of the A that entered round 76;
            // SHA1NEXTE adds it to the saved E (lower lanes stay zero).
            e = _mm_sha1nexte_epu32(prev, e_in);
            abcd = _mm_add_epi32(abcd, abcd_in);
        }

        _mm_storeu_si128(state.as_mut_ptr().cast(), _mm_shuffle_epi32(abcd, 0x1b));
        state[4] = _mm_extract_epi32(e, 3) as u32;
    }
}

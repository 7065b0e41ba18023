//! Message Stream Encryption: the receiver and the initiator fed arbitrary
//! bytes, and a real exchange between the two with the fuzzer corrupting
//! and splitting what travels between them.
//!
//! Properties: no panic; buffered bytes stay within what the specification
//! allows; after an error the handshake takes nothing more; an untouched
//! exchange always succeeds and delivers the initial payload.
//!
//! Input: byte 0 picks the mode, policies and read size; then the bytes.
#![no_main]

use bt::mse::{
    Handshake, Method, MseError, Policy, Progress, INITIATOR_MAX_HANDSHAKE_LEN, MAX_PAD_LEN,
    RECEIVER_MAX_HANDSHAKE_LEN,
};
use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;

const TORRENT: [u8; 20] = [0x11; 20];
const POLICIES: [Policy; 4] = [
    Policy::ALLOW,
    Policy::PREFER_RC4,
    Policy::REQUIRE_RC4,
    Policy::PLAINTEXT_ONLY,
];

/// Feeds `bytes` in reads of `step`; the outcome, checking bounds. What
/// the handshake has to send is appended to `out`.
fn feed(
    hs: &mut Handshake,
    bytes: &[u8],
    step: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Option<Result<(), MseError>> {
    let mut total = 0;
    for piece in bytes.chunks(step.max(1)) {
        total += piece.len();
        match hs.receive(piece) {
            Ok(Progress::Pending) => {
                assert!(hs.buffered_len() <= 65535 + MAX_PAD_LEN);
                assert!(total <= max, "{total} bytes read without an end");
                out.extend(hs.take_output());
            }
            Ok(Progress::Done(est)) => {
                assert!(est.received.len() <= total);
                out.extend(hs.take_output());
                assert_eq!(hs.receive(b"x").err(), Some(MseError::Finished));
                return Some(Ok(()));
            }
            Err(e) => {
                assert_eq!(hs.receive(b"x").err(), Some(MseError::Finished));
                assert!(hs.take_output().is_empty());
                return Some(Err(e));
            }
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let policy = POLICIES[usize::from(ctl >> 2 & 3)];
    let step = [1usize, 7, 96, 500, 1 << 20][usize::from(ctl >> 4) % 5];
    let mut rng = StdRng::seed_from_u64(u64::from(ctl));
    match ctl & 3 {
        0 => {
            let mut b = Handshake::receiver(policy, &[TORRENT], &mut rng);
            feed(
                &mut b,
                bytes,
                step,
                RECEIVER_MAX_HANDSHAKE_LEN,
                &mut Vec::new(),
            );
        }
        1 => {
            let mut a = Handshake::initiator(policy, TORRENT, b"ia".to_vec(), &mut rng).unwrap();
            let _ = a.take_output();
            feed(
                &mut a,
                bytes,
                step,
                INITIATOR_MAX_HANDSHAKE_LEN,
                &mut Vec::new(),
            );
        }
        _ => {
            // A real exchange; the input holds the initial payload's length,
            // the other side's policy, then (offset, xor) corruptions of the
            // third message (A to B) or the second (B to A).
            let (head, flips) = bytes.split_at(bytes.len().min(3));
            let [ia_len, other, dir] = [0, 1, 2].map(|i| head.get(i).copied().unwrap_or(0));
            let ia: Vec<u8> = (0..u16::from(ia_len) * 4).map(|i| i as u8).collect();
            let b_policy =
                POLICIES[usize::from(other & 3)].with_max_pad_len(usize::from(other >> 2) * 9);
            let policy = policy.with_max_pad_len(usize::from(other >> 4) * 33);
            let mut a = Handshake::initiator(policy, TORRENT, ia.clone(), &mut rng).unwrap();
            let mut b = Handshake::receiver(b_policy, &[[0x22; 20], TORRENT], &mut rng);
            let corrupt = |msg: &mut Vec<u8>| {
                for pair in flips.chunks_exact(2) {
                    if !msg.is_empty() {
                        let i = usize::from(pair[0]) * 4 % msg.len();
                        msg[i] ^= pair[1];
                    }
                }
            };
            let touched = flips.chunks_exact(2).any(|p| p[1] != 0);
            let m1 = a.take_output();
            assert!(matches!(b.receive(&m1), Ok(Progress::Pending)));
            let mut m2 = b.take_output();
            if dir & 1 != 0 {
                corrupt(&mut m2);
            }
            let mut m3 = Vec::new();
            let ra = feed(&mut a, &m2, step, INITIATOR_MAX_HANDSHAKE_LEN, &mut m3);
            assert!(
                ra.is_none() || ra.as_ref().is_some_and(|r| r.is_err()),
                "{ra:?}"
            );
            if dir & 1 == 0 {
                corrupt(&mut m3);
            }
            m3.extend_from_slice(b"after");
            let rb = b.receive(&m3);
            let compatible = policy.allowed.intersect(b_policy.allowed).bits() != 0;
            match rb {
                Ok(Progress::Done(est)) => {
                    if !touched {
                        assert_eq!(est.info_hash, TORRENT);
                        // IA, then what followed it (deciphered with RC4,
                        // so garbled here unless the stream is plaintext).
                        assert_eq!(&est.received[..ia.len()], &ia[..]);
                        assert_eq!(est.received.len(), ia.len() + 5);
                        if est.method == Method::Plaintext {
                            assert_eq!(&est.received[ia.len()..], b"after");
                        }
                    }
                    let m4 = b.take_output();
                    let _ = a.receive(&m4);
                }
                Ok(Progress::Pending) => {
                    assert!(touched, "an untouched exchange stalled");
                }
                Err(e) => {
                    assert!(
                        touched || (!compatible && matches!(e, MseError::NoCommonMethod { .. })),
                        "untouched exchange failed: {e}"
                    );
                }
            }
        }
    }
});

//! Tests of the MSE handshake: both roles against each other under every
//! policy pair and many ways of splitting the byte stream, hostile peers
//! crafted byte by byte, and the Diffie–Hellman arithmetic against Python.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::bignum::{Modulus, U768};
use super::dh::{self, KeyPair, KEY_LEN};
use super::*;

const TORRENT: [u8; 20] = *b"the torrent's hash!!";
const OTHER_TORRENT: [u8; 20] = *b"another torrent hash";

/// A BitTorrent handshake for [`TORRENT`], as an initiator puts it in IA.
fn bt_handshake() -> Vec<u8> {
    let mut v = b"\x13BitTorrent protocol".to_vec();
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&TORRENT);
    v.extend_from_slice(b"-BT0001-abcdefghijkl");
    v
}

#[derive(Clone, Copy, Debug)]
enum Split {
    OneByte,
    Whole,
    Random,
}

fn chunk_len(split: Split, available: usize, rng: &mut StdRng) -> usize {
    match split {
        Split::OneByte => 1,
        Split::Whole => available,
        Split::Random => rng.gen_range(1..=available.min(700)),
    }
}

/// Both sides after a handshake run in memory.
struct Pair {
    initiator: Established,
    receiver: Established,
    /// Everything the initiator received after its handshake, decrypted.
    initiator_stream: Vec<u8>,
    /// Everything the receiver received after its handshake (IA first).
    receiver_stream: Vec<u8>,
}

const FROM_RECEIVER: &[u8] = b"receiver's first BitTorrent bytes";
const FROM_INITIATOR: &[u8] = b"initiator's bytes after the handshake";

/// Runs an initiator against a receiver, moving bytes in chunks chosen by
/// `split`. Each side sends a message with its cipher as soon as it is
/// done, before the other side may have finished, so that bytes after the
/// handshake arrive together with it.
fn run_pair(
    initiator_policy: Policy,
    receiver_policy: Policy,
    initial_payload: &[u8],
    split: Split,
    seed: u64,
) -> Result<Pair, MseError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut a = Handshake::initiator(
        initiator_policy,
        TORRENT,
        initial_payload.to_vec(),
        &mut rng,
    )?;
    let mut b = Handshake::receiver(receiver_policy, &[OTHER_TORRENT, TORRENT], &mut rng);
    let (mut a_to_b, mut b_to_a) = (Vec::new(), Vec::new());
    let (mut done_a, mut done_b): (Option<Established>, Option<Established>) = (None, None);
    let (mut stream_a, mut stream_b) = (Vec::new(), Vec::new());
    for _ in 0..1_000_000 {
        a_to_b.extend(a.take_output());
        b_to_a.extend(b.take_output());
        let mut moved = false;
        if !a_to_b.is_empty() {
            let n = chunk_len(split, a_to_b.len(), &mut rng);
            let chunk: Vec<u8> = a_to_b.drain(..n).collect();
            moved = true;
            match &mut done_b {
                Some(est) => {
                    let mut chunk = chunk;
                    est.cipher.decrypt(&mut chunk);
                    stream_b.extend(chunk);
                }
                None => {
                    if let Progress::Done(mut est) = b.receive(&chunk)? {
                        b_to_a.extend(b.take_output());
                        let mut msg = FROM_RECEIVER.to_vec();
                        est.cipher.encrypt(&mut msg);
                        b_to_a.extend(msg);
                        stream_b.extend_from_slice(&est.received);
                        done_b = Some(est);
                    }
                }
            }
        }
        if !b_to_a.is_empty() {
            let n = chunk_len(split, b_to_a.len(), &mut rng);
            let chunk: Vec<u8> = b_to_a.drain(..n).collect();
            moved = true;
            match &mut done_a {
                Some(est) => {
                    let mut chunk = chunk;
                    est.cipher.decrypt(&mut chunk);
                    stream_a.extend(chunk);
                }
                None => {
                    if let Progress::Done(mut est) = a.receive(&chunk)? {
                        assert!(
                            a.take_output().is_empty(),
                            "an initiator's last message is 3"
                        );
                        let mut msg = FROM_INITIATOR.to_vec();
                        est.cipher.encrypt(&mut msg);
                        a_to_b.extend(msg);
                        stream_a.extend_from_slice(&est.received);
                        done_a = Some(est);
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    Ok(Pair {
        initiator: done_a.expect("the initiator finished"),
        receiver: done_b.expect("the receiver finished"),
        initiator_stream: stream_a,
        receiver_stream: stream_b,
    })
}

const POLICIES: [(&str, Policy); 4] = [
    ("allow", Policy::ALLOW),
    ("prefer_rc4", Policy::PREFER_RC4),
    ("require_rc4", Policy::REQUIRE_RC4),
    ("plaintext_only", Policy::PLAINTEXT_ONLY),
];

/// The outcome for (initiator policy, receiver policy), written out rather
/// than derived so that it checks `Policy::select`.
fn expected(initiator: &str, receiver: &str) -> Option<Method> {
    use Method::*;
    match (initiator, receiver) {
        ("allow", "allow") => Some(Plaintext),
        ("allow", "prefer_rc4") => Some(Rc4),
        ("allow", "require_rc4") => Some(Rc4),
        ("allow", "plaintext_only") => Some(Plaintext),
        ("prefer_rc4", "allow") => Some(Plaintext),
        ("prefer_rc4", "prefer_rc4") => Some(Rc4),
        ("prefer_rc4", "require_rc4") => Some(Rc4),
        ("prefer_rc4", "plaintext_only") => Some(Plaintext),
        ("require_rc4", "plaintext_only") => None,
        ("require_rc4", _) => Some(Rc4),
        ("plaintext_only", "require_rc4") => None,
        ("plaintext_only", _) => Some(Plaintext),
        _ => unreachable!(),
    }
}

#[test]
fn every_policy_pair_and_split_completes_or_refuses() {
    let mut seed = 0;
    for (init_name, init_policy) in POLICIES {
        for (recv_name, recv_policy) in POLICIES {
            for split in [Split::OneByte, Split::Whole, Split::Random] {
                for ia in [bt_handshake(), Vec::new()] {
                    seed += 1;
                    let what = format!("{init_name} -> {recv_name}, {split:?}, IA {}", ia.len());
                    let outcome = run_pair(init_policy, recv_policy, &ia, split, seed);
                    match expected(init_name, recv_name) {
                        Some(method) => {
                            let pair = outcome.unwrap_or_else(|e| panic!("{what}: {e}"));
                            check_pair(pair, method, &ia, &what);
                        }
                        None => assert_eq!(
                            outcome.err(),
                            Some(MseError::NoCommonMethod {
                                provided: init_policy.allowed.bits(),
                                allowed: recv_policy.allowed.bits()
                            }),
                            "{what}"
                        ),
                    }
                }
            }
        }
    }
}

fn check_pair(mut pair: Pair, method: Method, ia: &[u8], what: &str) {
    assert_eq!(pair.initiator.method, method, "{what}");
    assert_eq!(pair.receiver.method, method, "{what}");
    assert_eq!(pair.initiator.cipher.method(), method, "{what}");
    assert_eq!(pair.receiver.info_hash, TORRENT, "{what}");
    assert_eq!(pair.initiator.info_hash, TORRENT, "{what}");
    let mut want_b = ia.to_vec();
    want_b.extend_from_slice(FROM_INITIATOR);
    assert_eq!(pair.receiver_stream, want_b, "{what}");
    assert_eq!(pair.initiator_stream, FROM_RECEIVER, "{what}");
    // Then data both ways, in pieces of odd sizes.
    let data = random(1, 100_000);
    for initiator_sends in [true, false] {
        let (from, to) = if initiator_sends {
            (&mut pair.initiator.cipher, &mut pair.receiver.cipher)
        } else {
            (&mut pair.receiver.cipher, &mut pair.initiator.cipher)
        };
        let mut wire = data.clone();
        for piece in wire.chunks_mut(777) {
            from.encrypt(piece);
        }
        assert_eq!(wire == data, method == Method::Plaintext, "{what}");
        for piece in wire.chunks_mut(1000) {
            to.decrypt(piece);
        }
        assert!(wire == data, "{what}: data corrupted");
    }
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

#[test]
fn largest_initial_payload_and_no_padding() {
    let ia = random(2, MAX_INITIAL_PAYLOAD_LEN);
    for split in [Split::Whole, Split::Random] {
        let pair = run_pair(
            Policy::REQUIRE_RC4.with_max_pad_len(0),
            Policy::ALLOW.with_max_pad_len(0),
            &ia,
            split,
            3,
        )
        .unwrap();
        check_pair(pair, Method::Rc4, &ia, "max IA");
    }
    let mut rng = StdRng::seed_from_u64(4);
    let too_long = vec![0; MAX_INITIAL_PAYLOAD_LEN + 1];
    assert_eq!(
        Handshake::initiator(Policy::ALLOW, TORRENT, too_long, &mut rng).err(),
        Some(MseError::InitialPayloadTooLong(MAX_INITIAL_PAYLOAD_LEN + 1))
    );
}

#[test]
fn deterministic_for_a_seed() {
    let out = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        Handshake::initiator(Policy::ALLOW, TORRENT, bt_handshake(), &mut rng)
            .unwrap()
            .take_output()
    };
    assert_eq!(out(5), out(5));
    assert_ne!(out(5), out(6));
    let first = out(5);
    assert!(first.len() >= KEY_LEN && first.len() <= KEY_LEN + MAX_PAD_LEN);
}

#[test]
fn receiver_with_a_lookup_reports_the_matching_torrent() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut a = Handshake::initiator(Policy::ALLOW, OTHER_TORRENT, vec![], &mut rng).unwrap();
    let map: std::collections::HashMap<[u8; 20], [u8; 20]> = [TORRENT, OTHER_TORRENT]
        .iter()
        .map(|ih| (skey_hash(ih), *ih))
        .collect();
    let mut b = Handshake::receiver_with_lookup(
        Policy::ALLOW,
        Box::new(move |h| map.get(h).copied()),
        &mut rng,
    );
    assert!(matches!(b.receive(&a.take_output()), Ok(Progress::Pending)));
    assert!(matches!(a.receive(&b.take_output()), Ok(Progress::Pending)));
    let Ok(Progress::Done(est)) = b.receive(&a.take_output()) else {
        panic!("receiver did not finish")
    };
    assert_eq!(est.info_hash, OTHER_TORRENT);
    let Ok(Progress::Done(est)) = a.receive(&b.take_output()) else {
        panic!("initiator did not finish")
    };
    assert_eq!(est.info_hash, OTHER_TORRENT);
    assert_eq!(a.receive(b"more").err(), Some(MseError::Finished));
}

#[test]
fn first_bytes_tell_plaintext_from_mse() {
    let hs = bt_handshake();
    assert_eq!(classify_first_bytes(&[]), FirstBytes::NeedMore);
    assert_eq!(classify_first_bytes(&hs[..5]), FirstBytes::NeedMore);
    assert_eq!(classify_first_bytes(&hs[..19]), FirstBytes::NeedMore);
    assert_eq!(classify_first_bytes(&hs[..20]), FirstBytes::PlainBitTorrent);
    assert_eq!(classify_first_bytes(&hs), FirstBytes::PlainBitTorrent);
    assert_eq!(classify_first_bytes(&[0x13, b'X']), FirstBytes::Encrypted);
    assert_eq!(classify_first_bytes(&[0xa7]), FirstBytes::Encrypted);
    let mut rng = StdRng::seed_from_u64(8);
    let ya = Handshake::initiator(Policy::ALLOW, TORRENT, vec![], &mut rng)
        .unwrap()
        .take_output();
    assert_eq!(classify_first_bytes(&ya), FirstBytes::Encrypted);
}

// --- Hostile peers, crafted byte by byte. ---

/// A hand-made initiator: its key pair and, once it has the receiver's
/// key, the secret and ciphers.
struct FakeInitiator {
    keys: KeyPair,
}

impl FakeInitiator {
    fn new(seed: u64) -> FakeInitiator {
        FakeInitiator {
            keys: KeyPair::generate(&mut StdRng::seed_from_u64(seed)),
        }
    }

    /// Message 3 with every field chosen by the test.
    #[allow(clippy::too_many_arguments)]
    fn message3(
        &self,
        yb: &[u8],
        info_hash: &[u8; 20],
        vc: [u8; 8],
        provide: u32,
        pad_c_len_field: u16,
        pad_c: &[u8],
        ia: &[u8],
    ) -> Vec<u8> {
        let secret = self
            .keys
            .shared_secret(yb[..KEY_LEN].try_into().unwrap())
            .unwrap();
        let mut out = hash(&[b"req1", &secret]).to_vec();
        let req3 = hash(&[b"req3", &secret]);
        out.extend(skey_hash(info_hash).iter().zip(req3).map(|(a, b)| a ^ b));
        let mut enc = vc.to_vec();
        enc.extend_from_slice(&provide.to_be_bytes());
        enc.extend_from_slice(&pad_c_len_field.to_be_bytes());
        enc.extend_from_slice(pad_c);
        enc.extend_from_slice(&(ia.len() as u16).to_be_bytes());
        enc.extend_from_slice(ia);
        stream_key(b"keyA", &secret, info_hash).apply(&mut enc);
        out.extend(enc);
        out
    }
}

fn receiver_after_key(seed: u64) -> (Handshake, FakeInitiator, Vec<u8>) {
    let fake = FakeInitiator::new(seed);
    let mut b = Handshake::receiver(
        Policy::ALLOW,
        &[TORRENT],
        &mut StdRng::seed_from_u64(seed + 1000),
    );
    assert!(matches!(
        b.receive(&fake.keys.public_bytes()),
        Ok(Progress::Pending)
    ));
    let yb = b.take_output();
    assert!(yb.len() >= KEY_LEN);
    (b, fake, yb)
}

/// Feeds bytes one at a time; returns the error and how many bytes were
/// taken before it, checking the buffer stays within `bound`.
fn feed_until_error(hs: &mut Handshake, bytes: &[u8], bound: usize) -> (MseError, usize) {
    for (i, b) in bytes.iter().enumerate() {
        match hs.receive(std::slice::from_ref(b)) {
            Ok(Progress::Pending) => assert!(hs.buffered_len() <= bound),
            Ok(Progress::Done(_)) => panic!("a hostile stream completed the handshake"),
            Err(e) => return (e, i + 1),
        }
    }
    panic!("no error after {} bytes", bytes.len())
}

#[test]
fn receiver_refuses_a_missing_req1_within_the_padding_bound() {
    let (mut b, _fake, _yb) = receiver_after_key(10);
    let garbage = random(11, 100_000);
    let (err, taken) = feed_until_error(&mut b, &garbage, MAX_PAD_LEN + HASH_LEN);
    assert_eq!(err, MseError::Req1NotFound);
    assert_eq!(taken, MAX_PAD_LEN + HASH_LEN);
    assert_eq!(b.receive(b"x").err(), Some(MseError::Finished));
    // The same in one chunk.
    let (mut b, _fake, _yb) = receiver_after_key(10);
    assert_eq!(b.receive(&garbage).err(), Some(MseError::Req1NotFound));
}

#[test]
fn garbage_is_refused_within_the_spec_maximum() {
    for seed in 0..20 {
        let garbage = random(100 + seed, 200_000);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = Handshake::receiver(Policy::ALLOW, &[TORRENT], &mut rng);
        let (_, taken) = feed_until_error(&mut b, &garbage, MAX_INITIAL_PAYLOAD_LEN);
        assert!(taken <= RECEIVER_MAX_HANDSHAKE_LEN, "{taken}");
        let mut a = Handshake::initiator(Policy::ALLOW, TORRENT, vec![], &mut rng).unwrap();
        let (_, taken) = feed_until_error(&mut a, &garbage, MAX_PAD_LEN + VC.len());
        assert!(taken <= INITIATOR_MAX_HANDSHAKE_LEN, "{taken}");
    }
}

#[test]
fn receiver_refuses_a_bad_public_key() {
    let mut b = Handshake::receiver(Policy::ALLOW, &[TORRENT], &mut StdRng::seed_from_u64(1));
    assert_eq!(
        b.receive(&[0u8; KEY_LEN]).err(),
        Some(MseError::BadPublicKey)
    );
    assert!(b.take_output().is_empty());
    let mut a = Handshake::initiator(
        Policy::ALLOW,
        TORRENT,
        vec![],
        &mut StdRng::seed_from_u64(2),
    )
    .unwrap();
    assert_eq!(a.receive(&dh::PRIME).err(), Some(MseError::BadPublicKey));
}

#[test]
fn receiver_refuses_an_unknown_torrent() {
    let (mut b, fake, yb) = receiver_after_key(20);
    let m3 = fake.message3(&yb, &OTHER_TORRENT, VC, 2, 0, &[], &[]);
    assert_eq!(b.receive(&m3).err(), Some(MseError::UnknownInfoHash));
    assert!(b.take_output().is_empty(), "nothing is sent to a stranger");
}

#[test]
fn receiver_refuses_a_bad_verification_constant() {
    let (mut b, fake, yb) = receiver_after_key(21);
    let m3 = fake.message3(&yb, &TORRENT, [0, 0, 0, 0, 0, 0, 0, 1], 2, 0, &[], &[]);
    assert_eq!(
        b.receive(&m3).err(),
        Some(MseError::BadVerificationConstant)
    );
}

#[test]
fn receiver_refuses_pad_c_over_512() {
    let (mut b, fake, yb) = receiver_after_key(22);
    let m3 = fake.message3(&yb, &TORRENT, VC, 2, 513, &[0; 600], &[]);
    assert_eq!(b.receive(&m3).err(), Some(MseError::PadTooLong(513)));
    let (mut b, fake, yb) = receiver_after_key(23);
    let m3 = fake.message3(&yb, &TORRENT, VC, 2, 0xffff, &[], &[]);
    let (err, _) = feed_until_error(&mut b, &m3, MAX_PAD_LEN + HASH_LEN);
    assert_eq!(err, MseError::PadTooLong(0xffff));
}

#[test]
fn receiver_refuses_no_common_method() {
    for provide in [0u32, 0x04, 0xffff_fff0] {
        let (mut b, fake, yb) = receiver_after_key(24);
        let m3 = fake.message3(&yb, &TORRENT, VC, provide, 0, &[], &[]);
        assert_eq!(
            b.receive(&m3).err(),
            Some(MseError::NoCommonMethod {
                provided: 0,
                allowed: 3
            })
        );
    }
}

#[test]
fn receiver_accepts_the_largest_legal_message() {
    // PadA 512 bytes, PadC 512, IA 65535: exactly the specification's most.
    let mut rng = StdRng::seed_from_u64(26);
    let fake = FakeInitiator::new(27);
    let mut b2 = Handshake::receiver(Policy::ALLOW, &[TORRENT], &mut rng);
    let mut wire = fake.keys.public_bytes().to_vec();
    wire.extend(random(28, MAX_PAD_LEN));
    assert!(matches!(b2.receive(&wire), Ok(Progress::Pending)));
    let yb = b2.take_output();
    let ia = random(29, MAX_INITIAL_PAYLOAD_LEN);
    let m3 = fake.message3(&yb, &TORRENT, VC, 3, 512, &[0; 512], &ia);
    let mut bytes_total = wire.len();
    let mut done = None;
    for chunk in m3.chunks(1000) {
        bytes_total += chunk.len();
        if let Progress::Done(est) = b2.receive(chunk).unwrap() {
            done = Some(est);
        }
        assert!(b2.buffered_len() <= MAX_INITIAL_PAYLOAD_LEN);
    }
    assert_eq!(bytes_total, RECEIVER_MAX_HANDSHAKE_LEN);
    let est = done.expect("the largest legal message completes");
    assert_eq!(est.received, ia);
    assert_eq!(est.method, Method::Plaintext);
}

/// A hand-made receiver answering an initiator: Yb, PadB, then message 4
/// with fields chosen by the test.
fn initiator_against_crafted_select(
    select: u32,
    pad_d_len_field: u16,
    pad_d: &[u8],
    policy: Policy,
) -> Result<Progress, MseError> {
    let mut rng = StdRng::seed_from_u64(30);
    let mut a = Handshake::initiator(policy, TORRENT, bt_handshake(), &mut rng).unwrap();
    let ya: [u8; KEY_LEN] = a.take_output()[..KEY_LEN].try_into().unwrap();
    let fake = KeyPair::generate(&mut rng);
    let secret = fake.shared_secret(&ya).unwrap();
    let mut wire = fake.public_bytes().to_vec();
    wire.extend(random(31, 100));
    let mut m4 = VC.to_vec();
    m4.extend_from_slice(&select.to_be_bytes());
    m4.extend_from_slice(&pad_d_len_field.to_be_bytes());
    m4.extend_from_slice(pad_d);
    stream_key(b"keyB", &secret, &TORRENT).apply(&mut m4);
    wire.extend(m4);
    a.receive(&wire)
}

#[test]
fn initiator_checks_crypto_select_and_pad_d() {
    assert!(matches!(
        initiator_against_crafted_select(2, 0, &[], Policy::ALLOW),
        Ok(Progress::Done(Established {
            method: Method::Rc4,
            ..
        }))
    ));
    assert!(matches!(
        initiator_against_crafted_select(1, 512, &[0; 512], Policy::ALLOW),
        Ok(Progress::Done(Established {
            method: Method::Plaintext,
            ..
        }))
    ));
    for (select, policy) in [
        (3, Policy::ALLOW),
        (0, Policy::ALLOW),
        (4, Policy::ALLOW),
        (1, Policy::REQUIRE_RC4),
        (2, Policy::PLAINTEXT_ONLY),
    ] {
        assert_eq!(
            initiator_against_crafted_select(select, 0, &[], policy).err(),
            Some(MseError::BadCryptoSelect {
                selected: select,
                offered: policy.allowed.bits()
            }),
            "select {select}"
        );
    }
    assert_eq!(
        initiator_against_crafted_select(2, 513, &[0; 513], Policy::ALLOW).err(),
        Some(MseError::PadTooLong(513))
    );
}

#[test]
fn initiator_refuses_a_missing_vc_within_the_padding_bound() {
    let mut rng = StdRng::seed_from_u64(40);
    let mut a = Handshake::initiator(Policy::ALLOW, TORRENT, vec![], &mut rng).unwrap();
    a.take_output();
    let fake = KeyPair::generate(&mut rng);
    assert!(matches!(
        a.receive(&fake.public_bytes()),
        Ok(Progress::Pending)
    ));
    assert!(!a.take_output().is_empty(), "message 3 goes out");
    let (err, taken) = feed_until_error(&mut a, &random(41, 10_000), MAX_PAD_LEN + VC.len());
    assert_eq!(err, MseError::VcNotFound);
    assert_eq!(taken, MAX_PAD_LEN + VC.len());
}

// --- The arithmetic against a second implementation. ---

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `pow(base, exp, modulus)` computed by Python, as 96 big-endian bytes.
fn python_pow(base: &[u8], exp: &[u8], modulus: &[u8]) -> Vec<u8> {
    let py = "/usr/bin/python3";
    assert!(
        std::path::Path::new(py).is_file(),
        "this test needs Python 3: install it with `apt-get install -y python3`"
    );
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import sys; b, e, m = (int(a, 16) for a in sys.argv[1:]); \
             print(pow(b, e, m).to_bytes(96, 'big').hex())",
            &to_hex(base),
            &to_hex(exp),
            &to_hex(modulus),
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn modexp_matches_python() {
    let p = dh::prime();
    // g^x with private-key-sized and full-sized exponents, then random
    // bases, then random odd moduli.
    for i in 0..12 {
        let exp_len = [20, 96, 1, 48][i % 4];
        let exp = random(60 + i as u64, exp_len);
        let base = if i < 4 {
            vec![2]
        } else {
            random(70 + i as u64, 96)
        };
        let modulus_bytes = if i < 8 {
            dh::PRIME.to_vec()
        } else {
            let mut m = random(80 + i as u64, 96 - i);
            m[0] |= 0x80;
            *m.last_mut().unwrap() |= 1;
            m
        };
        let modulus = if i < 8 {
            p.clone()
        } else {
            Modulus::new(U768::from_be_bytes(&modulus_bytes).unwrap()).unwrap()
        };
        let got = modulus.pow(
            &U768::from_be_bytes(&base).unwrap(),
            &U768::from_be_bytes(&exp).unwrap(),
        );
        assert_eq!(
            got.to_be_bytes().to_vec(),
            python_pow(&base, &exp, &modulus_bytes),
            "case {i}"
        );
    }
}

#[test]
fn public_keys_match_python_and_commute() {
    let mut rng = StdRng::seed_from_u64(51);
    for _ in 0..3 {
        let mut xa = [0u8; 20];
        let mut xb = [0u8; 20];
        rng.fill_bytes(&mut xa);
        rng.fill_bytes(&mut xb);
        let a = KeyPair::from_private(&xa);
        let b = KeyPair::from_private(&xb);
        assert_eq!(a.public_bytes().to_vec(), python_pow(&[2], &xa, &dh::PRIME));
        // (g^a)^b == (g^b)^a, and equals Python's.
        let s = a.shared_secret(&b.public_bytes()).unwrap();
        assert_eq!(s, b.shared_secret(&a.public_bytes()).unwrap());
        assert_eq!(s.to_vec(), python_pow(&b.public_bytes(), &xa, &dh::PRIME));
    }
}

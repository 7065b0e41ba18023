//! Peer wire framing and messages (BEP 3, 6, 10): the handshake and a
//! stream of length-prefixed messages. Properties: a parsed message takes
//! exactly its frame, re-encodes to the same bytes, and nothing longer than
//! the limit is accepted.
//!
//! Input: byte 0 picks the length limit; the rest is a stream (a handshake
//! first when it parses as one).
#![no_main]

use bt::wire::{self, Handshake, Message, HANDSHAKE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut stream)) = data.split_first() else {
        return;
    };
    let max_len = [
        0usize,
        1,
        5,
        13,
        16384 + 9,
        65536,
        1 << 20,
        u32::MAX as usize,
    ][usize::from(ctl & 7)];
    if let Ok(h) = Handshake::parse(stream) {
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, stream[..HANDSHAKE_LEN]);
        let _ = (
            h.fast(),
            h.extended(),
            wire::client_from_peer_id(&h.peer_id),
        );
        stream = &stream[HANDSHAKE_LEN..];
    }
    let mut pos = 0;
    loop {
        let buf = &stream[pos..];
        match wire::parse(buf, max_len) {
            Ok(None) => {
                let complete = wire::frame_len(buf).is_some_and(|n| n <= buf.len());
                assert!(!complete, "a whole frame was not parsed");
                break;
            }
            Err(_) => break,
            Ok(Some((msg, used))) => {
                assert_eq!(Some(used), wire::frame_len(buf));
                assert!(used - 4 <= max_len);
                let frame = &buf[..used];
                let mut out = Vec::new();
                wire::encode(&msg, &mut out);
                match msg {
                    // Only the id of an unknown message is kept.
                    Message::Unknown { id } => assert_eq!(out[4], id),
                    _ => assert_eq!(out, frame, "{msg:?} re-encodes differently"),
                }
                if let Message::Extended { id: 0, payload } = msg {
                    let _ = wire::parse_ext_handshake(payload);
                }
                pos += used;
            }
        }
    }
});

//! KRPC (BEP 5): the datagram decoder, and a DHT node handling datagrams
//! from the routers it bootstrapped from.
//!
//! Properties: no panic; a decoded message re-encodes to a message that
//! decodes to the same thing; what the node sends is valid KRPC; its
//! queues stay bounded.
//!
//! Input: byte 0 picks the sender (a router or a stranger); then datagrams,
//! each a 2-byte big-endian length and its bytes. The whole input is also
//! decoded as one datagram.
#![no_main]

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use bt::dht::krpc::{Message, MAX_PACKET};
use bt::dht::{Config, Id, Node};
use libfuzzer_sys::fuzz_target;

fn check_roundtrip(bytes: &[u8]) {
    let Ok(m) = Message::decode(bytes) else {
        return;
    };
    let encoded = m.encode();
    if encoded.len() <= MAX_PACKET {
        let again = Message::decode(&encoded).expect("our encoding decodes");
        assert_eq!(again, m, "re-encoding changed the message");
    }
}

fuzz_target!(|data: &[u8]| {
    check_roundtrip(data);
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let routers: Vec<SocketAddr> = (1..=3)
        .map(|i| SocketAddr::from(([10, 0, 0, i], 6881)))
        .collect();
    let mut node = Node::new(Config::default(), u64::from(ctl & 0xf0), now);
    node.bootstrap(now, &routers, &[]);
    if ctl & 8 != 0 {
        node.get_peers(now, Id([0x55; 20]), None);
    }
    let mut now = now;
    let drain = |node: &mut Node| {
        let mut n = 0;
        while let Some((_, bytes)) = node.poll_transmit() {
            n += 1;
            assert!(n <= 10_000);
            Message::decode(&bytes).expect("we send valid KRPC");
        }
        let mut e = 0;
        while node.poll_event().is_some() {
            e += 1;
            assert!(e <= 10_000);
        }
    };
    drain(&mut node);
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let datagram = &rest[2..2 + len];
        rest = &rest[2 + len..];
        check_roundtrip(datagram);
        let from = match ctl & 7 {
            0..=2 => routers[usize::from(ctl & 3) % 3],
            3 => SocketAddr::from(SocketAddrV4::new([10, 0, 0, 1].into(), 1)),
            _ => SocketAddr::from(([192, 168, 1, (len as u8).wrapping_add(1)], 6881)),
        };
        node.handle_packet(now, from, datagram);
        drain(&mut node);
        if len % 7 == 0 {
            now += Duration::from_secs(3);
            node.handle_timeout(now);
            drain(&mut node);
        }
    }
});

//! UDP tracker packets (BEP 15): the reply decoder, and the exchange state
//! machine fed a sequence of datagrams.
//!
//! Input: byte 0 chooses announce or scrape, IPv4 or IPv6 and whether the
//! datagrams get the transaction id the exchange expects (so that the
//! fuzzer reaches past the id check); then datagrams, each a length byte
//! and that many bytes.
#![no_main]

use std::time::{Duration, Instant};

use bt::tracker::udp::{decode_reply, Reply, UdpAction, UdpExchange, UdpReply, UdpRequest};
use bt::tracker::{AnnounceRequest, Event};
use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn tid_of(packet: &[u8]) -> [u8; 4] {
    packet[12..16].try_into().unwrap()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = decode_reply(data) {
        assert_eq!(reply.tid().to_be_bytes(), data[4..8]);
        match reply {
            Reply::Announce { peers, .. } => assert_eq!(peers.len(), data.len() - 20),
            Reply::Scrape { entries, .. } => assert_eq!(entries.len(), (data.len() - 8) / 12),
            Reply::Error { message, .. } => assert!(message.chars().count() <= 1001),
            _ => {}
        }
    }

    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let request = if ctl & 1 == 0 {
        UdpRequest::Announce(AnnounceRequest {
            info_hash: [1; 20],
            peer_id: [2; 20],
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 100,
            event: Event::Started,
            numwant: Some(50),
            key: 7,
        })
    } else {
        UdpRequest::Scrape(vec![[1; 20], [3; 20]])
    };
    let scrape_len = if let UdpRequest::Scrape(h) = &request {
        h.len()
    } else {
        0
    };
    let ipv6 = ctl & 2 != 0;
    let fix_tid = ctl & 4 != 0;
    let mut rng = StdRng::seed_from_u64(u64::from(ctl));
    let mut now = Instant::now();
    let mut ex = UdpExchange::new(request, None, ipv6, Duration::from_secs(15), now, &mut rng);
    let mut tid = [0u8; 4];
    let mut sends = 0;
    let mut received = 0;
    loop {
        match ex.poll(now, &mut rng) {
            UdpAction::Send(p) => {
                assert!(p.len() >= 16);
                tid = tid_of(&p);
                sends += 1;
                assert!(sends <= 10 * (received + 1), "retransmits without end");
            }
            UdpAction::Wait(t) => {
                assert!(t > now);
                let Some((&len, tail)) = rest.split_first() else {
                    // No more datagrams: let time pass until it gives up.
                    now = t;
                    continue;
                };
                let len = usize::from(len).min(tail.len());
                let mut datagram = tail[..len].to_vec();
                rest = &tail[len..];
                if fix_tid && datagram.len() >= 8 {
                    datagram[4..8].copy_from_slice(&tid);
                }
                if datagram.first() == Some(&0xff) {
                    now += Duration::from_secs(61); // let the connection id expire
                }
                received += 1;
                ex.receive(&datagram, now, &mut rng);
            }
            UdpAction::Done(result) => {
                match result {
                    Ok(UdpReply::Announce(a)) => {
                        assert!(a.peers.iter().all(|p| p.addr.port() != 0));
                    }
                    Ok(UdpReply::Scrape(s)) => assert!(!s.is_empty() && s.len() <= scrape_len),
                    Err(_) => {}
                }
                // Done is final.
                assert!(!ex.receive(data, now, &mut rng));
                assert!(matches!(ex.poll(now, &mut rng), UdpAction::Done(_)));
                break;
            }
        }
    }
});

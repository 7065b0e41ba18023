use super::*;
use std::net::Ipv4Addr;

fn addr(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 6881)
}

fn query(tid: &[u8], q: Query) -> Vec<u8> {
    Message {
        tid: tid.to_vec(),
        version: None,
        read_only: false,
        body: Body::Query(q),
    }
    .encode()
}

fn reply(node: &mut Node) -> Message {
    let (_, bytes) = node.poll_transmit().expect("a reply");
    Message::decode(&bytes).unwrap()
}

/// Has `node` ping `to`; returns the answer to that ping (its transaction
/// id) of a node with id `[5; 20]`, encoded.
fn ping_and_answer(node: &mut Node, now: Instant, to: SocketAddrV4) -> Vec<u8> {
    node.ping(now, to);
    let (_, bytes) = node.poll_transmit().unwrap();
    let tid = Message::decode(&bytes).unwrap().tid;
    Message {
        tid,
        version: None,
        read_only: false,
        body: Body::Response(Response {
            id: Id([5; 20]),
            ..Response::default()
        }),
    }
    .encode()
}

#[test]
fn tokens_rotate_and_last_ten_minutes_at_most() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), 7, t0);
    let ip = Ipv4Addr::new(10, 0, 0, 1);
    let other = Ipv4Addr::new(10, 0, 0, 2);
    let tok = node.token(ip);
    assert!(node.token_valid(ip.into(), &tok));
    assert!(!node.token_valid(other.into(), &tok));
    node.handle_timeout(t0 + TOKEN_ROTATION);
    assert!(
        node.token_valid(ip.into(), &tok),
        "previous secret still accepted"
    );
    assert_ne!(node.token(ip), tok);
    node.handle_timeout(t0 + TOKEN_ROTATION * 2);
    assert!(
        !node.token_valid(ip.into(), &tok),
        "gone after two rotations"
    );
}

#[test]
fn answers_the_four_queries() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), 1, t0);
    let me = node.id();
    let them = Id([3; 20]);
    let ih = Id([9; 20]);
    let from = SocketAddr::V4(addr(1));

    node.handle_packet(t0, from, &query(b"p1", Query::Ping { id: them }));
    let m = reply(&mut node);
    assert_eq!(m.tid, b"p1");
    let Body::Response(r) = m.body else { panic!() };
    assert_eq!(r.id, me);
    // It pings the unknown querier to check it.
    let (to, ping) = node.poll_transmit().expect("a ping");
    assert_eq!(to, from);
    assert!(matches!(
        Message::decode(&ping).unwrap().body,
        Body::Query(Query::Ping { .. })
    ));

    node.handle_packet(
        t0,
        from,
        &query(
            b"g1",
            Query::GetPeers {
                id: them,
                info_hash: ih,
            },
        ),
    );
    let Body::Response(r) = reply(&mut node).body else {
        panic!()
    };
    let token = r.token.expect("a token");
    assert!(r.values.is_empty());

    // A bad token is refused, a good one stores the peer (implied port).
    let ann = |token: Vec<u8>, implied: bool| {
        query(
            b"a1",
            Query::AnnouncePeer {
                id: them,
                info_hash: ih,
                port: 4000,
                implied_port: implied,
                token,
            },
        )
    };
    node.handle_packet(t0, from, &ann(b"nope".to_vec(), false));
    assert!(matches!(
        reply(&mut node).body,
        Body::Error { code: 203, .. }
    ));
    node.handle_packet(t0, SocketAddr::V4(addr(2)), &ann(token.clone(), false));
    assert!(
        matches!(reply(&mut node).body, Body::Error { code: 203, .. }),
        "token of another IP"
    );
    while node.poll_transmit().is_some() {}
    node.handle_packet(t0, from, &ann(token.clone(), true));
    assert!(matches!(reply(&mut node).body, Body::Response(_)));
    node.handle_packet(t0, from, &ann(token, false));
    assert!(matches!(reply(&mut node).body, Body::Response(_)));
    assert_eq!(
        node.poll_event(),
        Some(Event::PeerAnnounced {
            info_hash: ih,
            peer: addr(1)
        })
    );

    node.handle_packet(
        t0,
        from,
        &query(
            b"g2",
            Query::GetPeers {
                id: them,
                info_hash: ih,
            },
        ),
    );
    let Body::Response(r) = reply(&mut node).body else {
        panic!()
    };
    assert_eq!(
        r.values,
        vec![SocketAddrV4::new(*addr(1).ip(), 4000), addr(1)]
    );

    node.handle_packet(
        t0,
        from,
        &query(
            b"f1",
            Query::FindNode {
                id: them,
                target: ih,
            },
        ),
    );
    assert!(matches!(reply(&mut node).body, Body::Response(_)));
    node.handle_packet(
        t0,
        from,
        &query(
            b"u1",
            Query::Unknown {
                id: them,
                method: "x".into(),
            },
        ),
    );
    assert!(matches!(
        reply(&mut node).body,
        Body::Error { code: 204, .. }
    ));
}

#[test]
fn stale_buckets_are_refreshed() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), 3, t0);
    // One node in the table, by answering a ping.
    let pong = ping_and_answer(&mut node, t0, addr(1));
    node.handle_packet(t0, SocketAddr::V4(addr(1)), &pong);
    assert_eq!(node.table().len(), 1);
    // Nothing for 15 minutes: the bucket is refreshed with a find_node.
    let mut now = t0;
    let mut refreshed = false;
    for _ in 0..100 {
        now = node.poll_timeout().unwrap();
        node.handle_timeout(now);
        while let Some((_, bytes)) = node.poll_transmit() {
            if let Body::Query(Query::FindNode { .. }) = Message::decode(&bytes).unwrap().body {
                refreshed = true;
            }
        }
        if refreshed {
            break;
        }
    }
    assert!(refreshed);
    let waited = now - t0;
    assert!(waited >= super::super::routing::REFRESH_AFTER, "{waited:?}");
    assert!(waited <= super::super::routing::REFRESH_AFTER + MAINTENANCE_EVERY);
}

#[test]
fn hostile_packets_are_dropped() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), 1, t0);
    let from = SocketAddr::V4(addr(1));
    let mut huge = b"d1:rd2:id20:abcdefghij01234567895:nodes".to_vec();
    huge.extend_from_slice(b"26000:");
    huge.extend_from_slice(&[b'x'; 26000]);
    huge.extend_from_slice(b"e1:t2:aa1:y1:re");
    let cases: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        huge,
        b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe".to_vec(),
        vec![0xff; 100],
    ];
    for c in &cases {
        node.handle_packet(t0, from, c);
    }
    assert_eq!(node.stats(t0).dropped, cases.len() as u64);
    // An answer nobody asked for.
    let unsolicited = Message {
        tid: vec![0, 1],
        version: None,
        read_only: false,
        body: Body::Response(Response {
            id: Id([5; 20]),
            nodes: vec![NodeInfo {
                id: Id([6; 20]),
                addr: addr(6),
            }],
            ..Response::default()
        }),
    };
    node.handle_packet(t0, from, &unsolicited.encode());
    let s = node.stats(t0);
    assert_eq!(s.unsolicited, 1);
    assert_eq!(s.table.nodes, 0);
    assert!(node.poll_transmit().is_none());
}

#[test]
fn answers_only_from_the_address_asked() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), 1, t0);
    let answer = ping_and_answer(&mut node, t0, addr(1));
    node.handle_packet(t0, SocketAddr::V4(addr(2)), &answer);
    assert_eq!(node.stats(t0).unsolicited, 1);
    assert_eq!(node.table().len(), 0);
    node.handle_packet(t0, SocketAddr::V4(addr(1)), &answer);
    assert_eq!(node.table().len(), 1);
    // Outstanding queries time out.
    node.ping(t0, addr(3));
    assert_eq!(node.stats(t0).outstanding, 1);
    let t1 = node.poll_timeout().unwrap();
    assert!(t1 <= t0 + Config::default().query_timeout);
    node.handle_timeout(t1);
    assert_eq!(node.stats(t1).outstanding, 0);
    assert_eq!(node.stats(t1).timeouts, 1);
}

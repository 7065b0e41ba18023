//! Small misbehaving peers for the hostile-peer tests, on std sockets and
//! threads. Every loop is bounded by a deadline and a stop flag.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;

use super::fake_server::{read_handshake, read_message, FakeServer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Has everything, unchokes, answers every request with wrong bytes.
    Corrupt,
    /// Has everything, unchokes, never answers a request.
    Silent,
    /// Sends a bitfield one byte too long.
    BadBitfield,
}

pub struct FakePeer {
    pub port: u16,
    pub requests_seen: Arc<AtomicU64>,
    _server: FakeServer,
}

impl FakePeer {
    pub fn start(info_hash: [u8; 20], pieces: usize, behaviour: Behaviour) -> FakePeer {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let server = FakeServer::start(
            20,
            Duration::from_secs(120),
            move |stream, stop, deadline| {
                let _ = serve(
                    stream, info_hash, pieces, behaviour, stop, &counter, deadline,
                );
            },
        );
        FakePeer {
            port: server.port,
            requests_seen: seen,
            _server: server,
        }
    }
}

fn serve(
    mut s: TcpStream,
    info_hash: [u8; 20],
    pieces: usize,
    behaviour: Behaviour,
    stop: &AtomicBool,
    seen: &AtomicU64,
    deadline: Instant,
) -> std::io::Result<()> {
    let no_extensions = [0; 8];
    let mut reply = read_handshake(&mut s, no_extensions, info_hash, stop, deadline)?;
    reply.extend_from_slice(b"-XX0001-fakepeer0000");
    let len = pieces.div_ceil(8)
        + if behaviour == Behaviour::BadBitfield {
            1
        } else {
            0
        };
    let mut bits = vec![0xffu8; len];
    if pieces % 8 != 0 && behaviour != Behaviour::BadBitfield {
        bits[pieces / 8] = 0xff << (8 - pieces % 8);
    }
    reply.extend_from_slice(&(1 + len as u32).to_be_bytes());
    reply.push(5);
    reply.extend_from_slice(&bits);
    reply.extend_from_slice(&[0, 0, 0, 1, 1]); // unchoke
    s.write_all(&reply)?;
    while let Some(msg) = read_message(&mut s, stop, deadline)? {
        let len = msg.len();
        if msg[0] == 6 && len == 13 {
            seen.fetch_add(1, Ordering::Relaxed);
            if behaviour == Behaviour::Corrupt {
                let blen = u32::from_be_bytes([msg[9], msg[10], msg[11], msg[12]]);
                let mut out = Vec::with_capacity(13 + blen as usize);
                out.extend_from_slice(&(9 + blen).to_be_bytes());
                out.push(7);
                out.extend_from_slice(&msg[1..9]);
                out.extend(std::iter::repeat_n(0xa5u8, blen as usize));
                s.write_all(&out)?;
            }
        }
    }
    Ok(())
}

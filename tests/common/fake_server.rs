//! The skeleton every raw-socket fake peer shares: a listener on an
//! ephemeral port, one thread per accepted connection, all bounded by a
//! deadline, a connection count and a stop flag that `Drop` raises.

#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct FakeServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Accepts up to `max_connections` within `lifetime` and runs
    /// `serve(stream, stop, deadline)` for each on its own thread.
    pub fn start<F>(max_connections: usize, lifetime: Duration, serve: F) -> FakeServer
    where
        F: Fn(TcpStream, &AtomicBool, Instant) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_accepting = stop.clone();
        let serve = Arc::new(serve);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + lifetime;
            let mut handlers = Vec::new();
            while !stop_accepting.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && handlers.len() < max_connections
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (stop, serve) = (stop_accepting.clone(), serve.clone());
                        handlers.push(std::thread::spawn(move || serve(stream, &stop, deadline)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            stop_accepting.store(true, Ordering::Relaxed);
            for h in handlers {
                let _ = h.join();
            }
        });
        FakeServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fills `buf` from `s` unless the stop flag or the deadline comes first
/// (the stream should have a read timeout so the flag is looked at).
pub fn read_exact_bounded(
    s: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
    deadline: Instant,
) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the other side's handshake (68 bytes, not checked) and returns
/// the start of ours: the protocol, `reserved` and `info_hash`; the peer
/// id is the caller's to append.
pub fn read_handshake(
    s: &mut TcpStream,
    reserved: [u8; 8],
    info_hash: [u8; 20],
    stop: &AtomicBool,
    deadline: Instant,
) -> std::io::Result<Vec<u8>> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut hs = [0u8; 68];
    read_exact_bounded(s, &mut hs, stop, deadline)?;
    let mut reply = vec![19u8];
    reply.extend_from_slice(b"BitTorrent protocol");
    reply.extend_from_slice(&reserved);
    reply.extend_from_slice(&info_hash);
    Ok(reply)
}

/// The next peer-wire message after the handshakes, keep-alives skipped;
/// `None` for one longer than 1 MiB, which no fake peer reads (the caller
/// ends the connection).
pub fn read_message(
    s: &mut TcpStream,
    stop: &AtomicBool,
    deadline: Instant,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        let mut lenb = [0u8; 4];
        read_exact_bounded(s, &mut lenb, stop, deadline)?;
        let len = u32::from_be_bytes(lenb) as usize;
        if len == 0 {
            continue;
        }
        if len > 1 << 20 {
            return Ok(None);
        }
        let mut msg = vec![0u8; len];
        read_exact_bounded(s, &mut msg, stop, deadline)?;
        return Ok(Some(msg));
    }
}

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

//! Is reading block payloads straight into piece buffers worth it?
//!
//! Receives 1 GiB of BitTorrent-like piece messages (13-byte header + 16 KiB
//! payload) over loopback TCP in two ways and prints the receiving thread's
//! CPU time:
//!
//! - `copy`: large reads into a reusable buffer, parsed in place, each
//!   payload copied into a 1 MiB piece buffer (what bt-fetch does);
//! - `direct`: one `readv` per block, [payload → piece buffer, next header
//!   → header buffer], so no payload byte is copied in user space.
//!
//! Usage: `cargo run --release --example recv_copy [copy|direct] [runs]`
//! (both, interleaved, 3 runs each by default). Findings in docs/REPORT.md.

use std::io::{IoSliceMut, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

const BLOCK: usize = 16384;
const HEADER: usize = 13;
const TOTAL: usize = 1 << 30;
const PIECE: usize = 1 << 20;
const READ_BUFFER: usize = 256 << 10;

/// (user, system) CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// Large reads, parsed in place; payloads copied into the piece buffer.
fn receive_copying(stream: &mut TcpStream, piece: &mut [u8]) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut have, mut got) = (0usize, 0usize);
    while got < TOTAL {
        let n = stream.read(&mut buf[have..])?;
        if n == 0 {
            break;
        }
        have += n;
        let mut pos = 0;
        while have - pos >= HEADER + BLOCK {
            let at = got % PIECE;
            piece[at..at + BLOCK].copy_from_slice(&buf[pos + HEADER..pos + HEADER + BLOCK]);
            pos += HEADER + BLOCK;
            got += BLOCK;
        }
        // A message split across reads: its start moves to the front.
        buf.copy_within(pos..have, 0);
        have -= pos;
    }
    Ok(())
}

/// One `readv` per block: the payload lands in the piece buffer.
fn receive_direct(stream: &mut TcpStream, piece: &mut [u8]) -> std::io::Result<()> {
    let mut header = [0u8; HEADER];
    stream.read_exact(&mut header)?;
    let mut got = 0usize;
    while got < TOTAL {
        let at = got % PIECE;
        let last = got + BLOCK == TOTAL;
        let want = if last { BLOCK } else { BLOCK + HEADER };
        let mut done = 0usize;
        while done < want {
            let n = if done < BLOCK {
                let mut iov = [
                    IoSliceMut::new(&mut piece[at + done..at + BLOCK]),
                    IoSliceMut::new(&mut header[..if last { 0 } else { HEADER }]),
                ];
                stream.read_vectored(&mut iov)?
            } else {
                stream.read(&mut header[done - BLOCK..])?
            };
            if n == 0 {
                return Ok(());
            }
            done += n;
        }
        got += BLOCK;
    }
    Ok(())
}

fn run(mode: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let mut batch = vec![7u8; (HEADER + BLOCK) * 16];
        for m in batch.chunks_mut(HEADER + BLOCK) {
            m[..4].copy_from_slice(&((BLOCK + 9) as u32).to_be_bytes());
        }
        for _ in 0..TOTAL / (BLOCK * 16) {
            s.write_all(&batch)?;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept()?;
    let mut piece = vec![0u8; PIECE];
    let (t0, c0) = (Instant::now(), thread_cpu());
    match mode {
        "copy" => receive_copying(&mut stream, &mut piece)?,
        _ => receive_direct(&mut stream, &mut piece)?,
    }
    let (wall, c1) = (t0.elapsed().as_secs_f64(), thread_cpu());
    let (user, sys) = (c1.0 - c0.0, c1.1 - c0.1);
    println!(
        "{mode:6} {wall:.2} s wall, receiver {user:.3} user + {sys:.3} system = {:.3} CPU-s",
        user + sys
    );
    drop(stream);
    sender.join().expect("sender thread")?;
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let modes: Vec<&str> = match args.first().map(String::as_str) {
        Some(m @ ("copy" | "direct")) => vec![m],
        _ => vec!["copy", "direct"],
    };
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    for _ in 0..runs {
        for m in &modes {
            run(m)?;
        }
    }
    Ok(())
}

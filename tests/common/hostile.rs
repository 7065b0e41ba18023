//! Hostile and heavy peers toward a seeder, driving raw sockets: each
//! attack runs on its own threads, reconnects whenever the target closes
//! it (the pressure stays on for the whole attack) and stops when the
//! [`Attacker`] is stopped or dropped. Every loop is bounded by the stop
//! flag and by [`MAX_ATTACK`].
//!
//! Also built into `examples/hostile_peer.rs` for `examples/hostile.sh`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// No attack runs longer than this, whatever the caller forgets.
pub const MAX_ATTACK: Duration = Duration::from_secs(900);
/// Wait before reconnecting after the target closed us: an eager
/// attacker, without spinning a core on a refusing target.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// A message length prefix of 4 GiB − 1, then junk.
    HugeLength,
    /// Keep-alives only, every 10 ms, forever.
    KeepAlives,
    /// Interested, then 100 000 requests as fast as the socket takes them
    /// (replies read and thrown away).
    RequestFlood,
    /// Requests for pieces past the end and offsets past a piece.
    OutOfRange,
    /// Requests without ever being unchoked (no fast extension: BEP 3
    /// says they are ignored).
    ChokedRequests,
    /// `have` for a piece index past the end.
    HavePastEnd,
    /// A bitfield one byte too long.
    BadBitfield,
    /// `connections` connections sending the handshake one byte per
    /// second.
    Slowloris,
    /// `connections` connections opened at once, sending nothing.
    Flood,
    /// `connections` connections, each opening like an MSE handshake (96
    /// random bytes for a public key, random padding) and then sending
    /// random bytes that never hold the handshake's sync marker: each
    /// costs the target a Diffie-Hellman key and a bounded search.
    MseGarbage,
}

impl Attack {
    pub const ALL: [Attack; 10] = [
        Attack::HugeLength,
        Attack::KeepAlives,
        Attack::RequestFlood,
        Attack::OutOfRange,
        Attack::ChokedRequests,
        Attack::HavePastEnd,
        Attack::BadBitfield,
        Attack::Slowloris,
        Attack::Flood,
        Attack::MseGarbage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::HugeLength => "huge-length",
            Attack::KeepAlives => "keep-alives",
            Attack::RequestFlood => "request-flood",
            Attack::OutOfRange => "out-of-range",
            Attack::ChokedRequests => "choked-requests",
            Attack::HavePastEnd => "have-past-end",
            Attack::BadBitfield => "bad-bitfield",
            Attack::Slowloris => "slowloris",
            Attack::Flood => "flood",
            Attack::MseGarbage => "mse-garbage",
        }
    }

    pub fn by_name(name: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the attack holds many connections (the others use one).
    pub fn is_mass(self) -> bool {
        matches!(self, Attack::Slowloris | Attack::Flood | Attack::MseGarbage)
    }
}

/// What the torrent looks like, as far as an attacker needs.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub addr: SocketAddr,
    pub info_hash: [u8; 20],
    pub pieces: u32,
    pub piece_length: u32,
}

/// Counters shared by an attack's threads.
#[derive(Default, Debug)]
pub struct Counts {
    /// TCP connections made.
    pub connects: AtomicU64,
    /// Connections the target closed (or reset).
    pub closed_by_target: AtomicU64,
    /// Bytes sent.
    pub sent: AtomicU64,
}

pub struct Attacker {
    pub attack: Attack,
    stop: Arc<AtomicBool>,
    pub counts: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl Attacker {
    /// Starts `attack` against `target`; `connections` is used by the mass
    /// attacks (slowloris, flood); the others run one connection at a
    /// time.
    pub fn start(attack: Attack, target: Target, connections: usize) -> Attacker {
        if attack.is_mass() {
            raise_fd_limit(connections as u64 + 256);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (s, c) = (stop.clone(), counts.clone());
        let thread = std::thread::spawn(move || {
            let until = Instant::now() + MAX_ATTACK;
            let live = || !s.load(Ordering::Relaxed) && Instant::now() < until;
            if attack.is_mass() {
                mass(attack, target, connections, &c, &live);
            } else {
                while live() {
                    single(attack, target, &c, &live);
                    std::thread::sleep(RECONNECT_PAUSE);
                }
            }
        });
        Attacker {
            attack,
            stop,
            counts,
            threads: vec![thread],
        }
    }

    /// Stops the attack and closes its connections.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    pub fn connects(&self) -> u64 {
        self.counts.connects.load(Ordering::Relaxed)
    }

    pub fn closed_by_target(&self) -> u64 {
        self.counts.closed_by_target.load(Ordering::Relaxed)
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raises this process's soft limit on open files to `want` (up to the
/// hard limit): a thousand connections need a thousand descriptors.
pub fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A plaintext handshake for `info_hash`; `fast` sets the fast extension
/// bit.
pub fn handshake(info_hash: &[u8; 20], fast: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(68);
    h.push(19);
    h.extend_from_slice(b"BitTorrent protocol");
    let mut reserved = [0u8; 8];
    if fast {
        reserved[7] |= 0x04;
    }
    h.extend_from_slice(&reserved);
    h.extend_from_slice(info_hash);
    let mut id = *b"-XX0001-hostile00000";
    let r: u32 = rand::random();
    id[16..20].copy_from_slice(&r.to_be_bytes());
    h.extend_from_slice(&id);
    h
}

fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(5 + payload.len());
    m.extend_from_slice(&(1 + payload.len() as u32).to_be_bytes());
    m.push(id);
    m.extend_from_slice(payload);
    m
}

fn request(piece: u32, begin: u32, length: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    for v in [piece, begin, length] {
        p.extend_from_slice(&v.to_be_bytes());
    }
    message(6, &p)
}

/// One connection of a message attack: handshake, then the attack's
/// bytes until the target closes us or the attack stops.
fn single(attack: Attack, t: Target, c: &Counts, live: &dyn Fn() -> bool) {
    let Ok(mut s) = TcpStream::connect_timeout(&t.addr, CONNECT_TIMEOUT) else {
        return;
    };
    c.connects.fetch_add(1, Ordering::Relaxed);
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_nodelay(true);
    // Replies are read and thrown away on a thread, which also notices
    // when the target closes the connection.
    let closed = Arc::new(AtomicBool::new(false));
    let reader = s.try_clone().ok().map(|mut r| {
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            closed.store(true, Ordering::Relaxed);
        })
    });
    let fast = attack != Attack::ChokedRequests;
    let mut send = |bytes: &[u8]| -> bool {
        let ok = s.write_all(bytes).is_ok();
        if ok {
            c.sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        ok && !closed.load(Ordering::Relaxed)
    };
    let go = |ok: bool| ok && live();
    let mut alive = send(&handshake(&t.info_hash, fast));
    let n = t.pieces;
    match attack {
        Attack::HugeLength => {
            alive = send(&u32::MAX.to_be_bytes());
            while go(alive) {
                alive = send(&[0x55; 1024]);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Attack::KeepAlives => {
            while go(alive) {
                alive = send(&[0, 0, 0, 0]);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Attack::RequestFlood => {
            alive = go(alive) && send(&message(2, &[]));
            let mut batch = Vec::with_capacity(17 * 1000);
            let mut sent = 0u32;
            while go(alive) && sent < 100_000 {
                batch.clear();
                for k in 0..1000 {
                    let i = sent + k;
                    let piece = i % n;
                    let begin = (i / n * 16384) % t.piece_length;
                    batch.extend_from_slice(&request(piece, begin, 16384));
                }
                sent += 1000;
                alive = send(&batch);
            }
            // Then hold the connection, as a heavy peer would.
            while go(alive) {
                std::thread::sleep(Duration::from_millis(50));
                alive = !closed.load(Ordering::Relaxed);
            }
        }
        Attack::OutOfRange => {
            alive = go(alive) && send(&message(2, &[]));
            let mut k = 0u32;
            while go(alive) {
                let r = if k % 2 == 0 {
                    request(n + k, 0, 16384)
                } else {
                    request(k % n, t.piece_length, 16384)
                };
                alive = send(&r);
                k = k.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Attack::ChokedRequests => {
            let mut k = 0u32;
            while go(alive) {
                alive = send(&request(k % n, 0, 16384));
                k = k.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Attack::HavePastEnd => {
            let mut k = 0u32;
            while go(alive) {
                alive = send(&message(4, &(n + k).to_be_bytes()));
                k = k.wrapping_add(1) % 1_000_000;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Attack::BadBitfield => {
            let len = (n as usize).div_ceil(8) + 1;
            alive = go(alive) && send(&message(5, &vec![0xff; len]));
            while go(alive) {
                std::thread::sleep(Duration::from_millis(20));
                alive = send(&[0, 0, 0, 0]);
            }
        }
        Attack::Slowloris | Attack::Flood | Attack::MseGarbage => {
            unreachable!("mass attacks run in mass()")
        }
    }
    if closed.load(Ordering::Relaxed) || !alive {
        c.closed_by_target.fetch_add(1, Ordering::Relaxed);
    }
    let _ = s.shutdown(Shutdown::Both);
    if let Some(r) = reader {
        let _ = r.join();
    }
}

/// Many connections from one thread: slowloris (the handshake one byte
/// per second per connection) or a silent flood. A connection the target
/// closes is opened again at the next pass.
fn mass(attack: Attack, t: Target, connections: usize, c: &Counts, live: &dyn Fn() -> bool) {
    struct Slot {
        stream: TcpStream,
        sent: usize,
        next: Instant,
    }
    let hs = handshake(&t.info_hash, true);
    let mut slots: Vec<Option<Slot>> = (0..connections).map(|_| None).collect();
    let mut buf = [0u8; 4096];
    // Garbage for MseGarbage (xorshift: no pattern the target could sync
    // on; its first byte never 19, which would read as plaintext).
    let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
    let mut garbage = |n: usize| rng.bytes(n);
    while live() {
        let pass = Instant::now();
        // After one failed connect (a full accept queue), no more this
        // pass: each would wait for its time-out.
        let mut may_connect = true;
        for slot in slots.iter_mut() {
            if !live() {
                break;
            }
            if slot.is_none() {
                if !may_connect {
                    continue;
                }
                let Ok(s) = TcpStream::connect_timeout(&t.addr, CONNECT_TIMEOUT) else {
                    may_connect = false;
                    continue;
                };
                let _ = s.set_nonblocking(true);
                let _ = s.set_nodelay(true);
                c.connects.fetch_add(1, Ordering::Relaxed);
                if attack == Attack::MseGarbage {
                    // A public key and up to 512 bytes of padding at once.
                    let mut opening = garbage(96 + 512);
                    if opening[0] == 19 {
                        opening[0] = 20;
                    }
                    let mut s = &s;
                    if let Ok(n) = s.write(&opening) {
                        c.sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                *slot = Some(Slot {
                    stream: s,
                    sent: 0,
                    next: Instant::now() + Duration::from_secs(1),
                });
                continue;
            }
            let s = slot.as_mut().expect("slot");
            // Closed by the target? (EOF or an error other than "no data".)
            let gone = match s.stream.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            let mut gone = gone;
            let now = Instant::now();
            if !gone && attack == Attack::Slowloris && now >= s.next && s.sent < hs.len() - 1 {
                // Never the last byte: the handshake stays incomplete.
                match s.stream.write(&hs[s.sent..s.sent + 1]) {
                    Ok(1) => {
                        s.sent += 1;
                        c.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => gone = e.kind() != std::io::ErrorKind::WouldBlock,
                }
                s.next = now + Duration::from_secs(1);
            }
            if !gone && attack == Attack::MseGarbage {
                // More garbage where the sync marker should come.
                match s.stream.write(&garbage(64)) {
                    Ok(n) => {
                        c.sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => gone = e.kind() != std::io::ErrorKind::WouldBlock,
                }
            }
            if gone {
                c.closed_by_target.fetch_add(1, Ordering::Relaxed);
                *slot = None;
            }
        }
        // A pass at most every 50 ms: eager, but not a spinning core.
        let spent = pass.elapsed();
        if spent < Duration::from_millis(50) {
            std::thread::sleep(Duration::from_millis(50) - spent);
        }
    }
}

/// Peak resident set size (VmHWM) of a process, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

/// Current resident set size (VmRSS) of a process, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// xorshift64: fast pseudo-random numbers from a seed (not 0), for
/// garbage with no pattern a peer could sync on and for reproducible
/// random moments.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` bytes, each the low byte of the next number.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

//! A userspace TCP relay that emulates a link with a delay and a bandwidth:
//! netem is not available on the benchmark machines, so the latency
//! experiment (`examples/bench-latency.sh`) puts this between a leecher and
//! its seeder.
//!
//! Every connection accepted on `--listen` gets a connection to `--connect`;
//! bytes are forwarded both ways. Each direction is one link: bytes read from
//! one side wait in a bottleneck queue, leave it at `--rate` (a token bucket
//! per direction, shared by all connections of the relay, as a router's
//! output port is), and reach the other side `--rtt`/2 later (a queue of
//! timestamped chunks). The bottleneck queue is bounded (`--queue`, default
//! one bandwidth-delay product + 64 KiB, at least 1 MiB): when it is full the relay stops
//! reading and TCP's flow control pushes back on the sender. Its own socket
//! buffers are kept small for the same reason, so that the kernel does not
//! add a second, larger queue.
//!
//!   cargo run --release --example relay -- --listen IP:PORT --connect IP:PORT --rtt MS --rate MBIT
//!   cargo run --release --example relay -- --check --rtt MS --rate MBIT
//!
//! `--check` validates the relay itself on loopback: ping-pong of one byte
//! gives the round-trip time, a bulk transfer gives the rate; it prints one
//! JSON line and exits 1 when either is off by more than the tolerance
//! (rate within 5 %, round trip within 2 ms + 10 % above the set value).
//! `tests/relay.rs` runs the same check.
//!
//! std and mio only; one thread; stops on SIGTERM/SIGINT (the default
//! action).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// What the relay emulates.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Round-trip time added; each direction gets half.
    pub rtt: Duration,
    /// Bytes per second in each direction; 0: unlimited.
    pub rate: u64,
    /// Bytes the bottleneck queue of a direction holds before the relay
    /// stops reading.
    pub queue: usize,
}

impl LinkSpec {
    /// A link with the default queue: one bandwidth-delay product plus
    /// 64 KiB (the usual rule of thumb for a router buffer), at least
    /// 1 MiB (at short RTTs a smaller queue runs dry whenever the relay
    /// waits for a CPU on a loaded machine).
    pub fn new(rtt: Duration, rate: u64) -> Self {
        let bdp = (rate as f64 * rtt.as_secs_f64()) as usize;
        LinkSpec {
            rtt,
            rate,
            queue: (bdp + (64 << 10)).max(1 << 20),
        }
    }
}

/// Reads at most this much at once.
const READ_CHUNK: usize = 64 << 10;
/// The relay's socket buffers (see the module comment).
const SOCKET_BUFFER: libc::c_int = 256 << 10;
/// The token bucket's depth, in time at the link rate: deep enough that a
/// late wake-up on a loaded machine does not lose capacity, like the
/// `burst` of a `tc tbf`.
const BURST: Duration = Duration::from_millis(20);

/// A token bucket in bytes.
struct Bucket {
    rate: f64,
    tokens: f64,
    depth: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Self {
        let depth = (rate as f64 * BURST.as_secs_f64()).max(16384.0);
        Bucket {
            rate: rate as f64,
            tokens: depth,
            depth,
            last: now,
        }
    }

    fn unlimited(&self) -> bool {
        self.rate == 0.0
    }

    /// Adds the tokens since the last refill. While data waited (`backlog`)
    /// the link was busy all along: a late wake-up on a loaded machine must
    /// not lose that time, so the bucket's depth caps only an idle link's
    /// credit (see [`Bucket::idle`]).
    fn refill(&mut self, now: Instant, backlog: bool) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens += dt * self.rate;
        if !backlog {
            self.idle();
        }
        self.last = now;
    }

    /// Nothing waits: no more credit than one burst.
    fn idle(&mut self) {
        self.tokens = self.tokens.min(self.depth);
    }

    fn available(&self) -> usize {
        if self.unlimited() {
            usize::MAX
        } else {
            self.tokens as usize
        }
    }

    fn take(&mut self, n: usize) {
        if !self.unlimited() {
            self.tokens -= n as f64;
        }
    }

    /// When a useful amount (a full-size segment, or what is queued) is
    /// available.
    fn ready_at(&self, queued: usize) -> Instant {
        let want = (queued.min(1448) as f64).min(self.depth);
        if self.unlimited() || self.tokens >= want {
            return self.last;
        }
        self.last + Duration::from_secs_f64((want - self.tokens) / self.rate)
    }
}

/// One direction of one connection.
#[derive(Default)]
struct Pipe {
    /// Bytes read, waiting for the link (the bottleneck queue), as read.
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`.
    queued: usize,
    /// Bytes on the link: chunks with the time they arrive.
    line: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes of the front chunk of `line` already written.
    written: usize,
    line_bytes: usize,
    /// The source said EOF.
    eof: bool,
    /// The EOF was passed on to the destination.
    shut: bool,
    forwarded: u64,
}

impl Pipe {
    fn done(&self) -> bool {
        self.shut
    }
}

struct Side {
    stream: TcpStream,
    readable: bool,
    writable: bool,
}

struct Conn {
    client: Side,
    server: Side,
    connected: bool,
    /// client → server
    up: Pipe,
    /// server → client
    down: Pipe,
}

pub struct Relay {
    poll: Poll,
    listener: TcpListener,
    target: SocketAddr,
    spec: LinkSpec,
    conns: BTreeMap<usize, Conn>,
    next_id: usize,
    up: Bucket,
    down: Bucket,
    /// Where the round-robin over connections starts (fair sharing of a
    /// bucket between connections).
    rr: usize,
    buf: Vec<u8>,
}

const LISTENER: Token = Token(0);

fn small_buffers(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&SOCKET_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl Relay {
    pub fn bind(listen: SocketAddr, target: SocketAddr, spec: LinkSpec) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Relay {
            poll,
            listener,
            target,
            spec,
            conns: BTreeMap::new(),
            next_id: 1,
            up: Bucket::new(spec.rate, now),
            down: Bucket::new(spec.rate, now),
            rr: 0,
            buf: vec![0; READ_CHUNK],
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `stop` is set (checked at least every 100 ms).
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept();
                    continue;
                }
                let id = (ev.token().0 - 1) / 2;
                let Some(c) = self.conns.get_mut(&id) else {
                    continue;
                };
                let side = if ev.token().0 % 2 == 1 {
                    &mut c.client
                } else {
                    &mut c.server
                };
                side.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                side.writable |= ev.is_writable() || ev.is_error();
            }
            self.service();
        }
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut client, from)) => {
                    let mut server = match TcpStream::connect(self.target) {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("relay: {from}: cannot connect to {}: {e}", self.target);
                            continue;
                        }
                    };
                    small_buffers(&client);
                    small_buffers(&server);
                    let _ = client.set_nodelay(true);
                    let id = self.next_id;
                    self.next_id += 1;
                    let both = Interest::READABLE | Interest::WRITABLE;
                    let r = self.poll.registry();
                    if r.register(&mut client, Token(id * 2 + 1), both).is_err()
                        || r.register(&mut server, Token(id * 2 + 2), both).is_err()
                    {
                        continue;
                    }
                    self.conns.insert(
                        id,
                        Conn {
                            client: Side {
                                stream: client,
                                readable: true,
                                writable: true,
                            },
                            server: Side {
                                stream: server,
                                readable: false,
                                writable: false,
                            },
                            connected: false,
                            up: Pipe::default(),
                            down: Pipe::default(),
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("relay: accept: {e}");
                    return;
                }
            }
        }
    }

    /// The earliest time something becomes due: a chunk arriving, or
    /// tokens for a queue that waits for them.
    fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        for c in self.conns.values().filter(|c| c.connected) {
            let pipes = [
                (&c.up, &self.up, &c.server),
                (&c.down, &self.down, &c.client),
            ];
            for (p, b, dst) in pipes {
                // A chunk due for a destination that cannot take it waits
                // for its writable event, not for the clock.
                match p.line.front() {
                    Some((due, _)) if dst.writable || *due > Instant::now() => at(*due),
                    _ => {}
                }
                if p.queued > 0 {
                    at(b.ready_at(p.queued));
                }
            }
        }
        t
    }

    fn service(&mut self) {
        let now = Instant::now();
        let backlog = |up: bool| {
            self.conns
                .values()
                .any(|c| if up { c.up.queued } else { c.down.queued } > 0)
        };
        let (up_backlog, down_backlog) = (backlog(true), backlog(false));
        self.up.refill(now, up_backlog);
        self.down.refill(now, down_backlog);
        let ids: Vec<usize> = self.conns.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        self.rr = (self.rr + 1) % ids.len();
        let mut dead = Vec::new();
        for k in 0..ids.len() {
            let id = ids[(k + self.rr) % ids.len()];
            let c = self.conns.get_mut(&id).expect("listed");
            if !c.connected {
                if !c.server.writable {
                    continue;
                }
                match c.server.stream.take_error() {
                    Ok(None) if c.server.stream.peer_addr().is_ok() => {
                        c.connected = true;
                        small_buffers(&c.server.stream);
                        let _ = c.server.stream.set_nodelay(true);
                        c.server.readable = true;
                    }
                    Ok(None) => {
                        c.server.writable = false;
                        continue;
                    }
                    Ok(Some(e)) | Err(e) => {
                        eprintln!("relay: cannot connect to {}: {e}", self.target);
                        dead.push(id);
                        continue;
                    }
                }
            }
            let cap = self.spec.queue;
            let delay = self.spec.rtt / 2;
            let ok = pump(
                &mut c.client,
                &mut c.server,
                &mut c.up,
                &mut self.up,
                cap,
                delay,
                now,
                &mut self.buf,
            ) && pump(
                &mut c.server,
                &mut c.client,
                &mut c.down,
                &mut self.down,
                cap,
                delay,
                now,
                &mut self.buf,
            );
            if !ok || (c.up.done() && c.down.done()) {
                dead.push(id);
            }
        }
        for id in dead {
            if let Some(c) = self.conns.remove(&id) {
                eprintln!(
                    "relay: connection {id} closed: {} bytes up, {} bytes down",
                    c.up.forwarded, c.down.forwarded
                );
            }
        }
    }
}

/// Moves bytes one way: reads from `src` into the queue while it has room,
/// from the queue onto the line as the bucket allows, from the line to
/// `dst` when due. False when the connection is to be dropped (an error).
#[allow(clippy::too_many_arguments)]
fn pump(
    src: &mut Side,
    dst: &mut Side,
    p: &mut Pipe,
    bucket: &mut Bucket,
    cap: usize,
    delay: Duration,
    now: Instant,
    buf: &mut [u8],
) -> bool {
    // 1 and 2. Read while the bottleneck queue has room (without a rate
    //    limit the queue empties at once: then the line counts against
    //    it); move what the bucket allows onto the line; again while both
    //    reading and moving make progress.
    let limited = !bucket.unlimited();
    loop {
        let mut read_any = false;
        while src.readable && !p.eof && p.queued + if limited { 0 } else { p.line_bytes } < cap {
            let room = (cap - p.queued).min(buf.len());
            match src.stream.read(&mut buf[..room]) {
                Ok(0) => p.eof = true,
                Ok(n) => {
                    p.queue.push_back(buf[..n].to_vec());
                    p.queued += n;
                    read_any = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let n = p.queued.min(bucket.available());
        if n > 0 {
            bucket.take(n);
            p.queued -= n;
            p.line_bytes += n;
            let mut chunk = Vec::with_capacity(n);
            while chunk.len() < n {
                let front = p.queue.front_mut().expect("queued bytes");
                let want = n - chunk.len();
                if front.len() <= want {
                    chunk.extend_from_slice(front);
                    p.queue.pop_front();
                } else {
                    chunk.extend_from_slice(&front[..want]);
                    front.drain(..want);
                }
            }
            p.line.push_back((now + delay, chunk));
        }
        if p.queued == 0 {
            bucket.idle();
        }
        if !read_any || n == 0 {
            break;
        }
    }
    // 3. Off the line when due.
    while dst.writable {
        let Some((due, chunk)) = p.line.front() else {
            break;
        };
        if *due > now {
            break;
        }
        match dst.stream.write(&chunk[p.written..]) {
            Ok(n) => {
                p.written += n;
                p.forwarded += n as u64;
                if p.written == chunk.len() {
                    p.line_bytes -= chunk.len();
                    p.line.pop_front();
                    p.written = 0;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    // 4. Pass the EOF on once everything before it arrived.
    if p.eof && !p.shut && p.queued == 0 && p.line.is_empty() {
        let _ = dst.stream.shutdown(Shutdown::Write);
        p.shut = true;
    }
    true
}

// ------------------------------------------------------------------ check

/// What `--check` measured.
#[derive(Debug)]
pub struct CheckResult {
    pub rtt_ms: f64,
    pub rate_mbit: f64,
    pub rtt_ok: bool,
    pub rate_ok: bool,
}

/// Validates a relay with `spec` on loopback: the median of 20 one-byte
/// round trips, and the rate of a bulk transfer from the server side to
/// the client side (as a seeder sends to a leecher) lasting `bulk`.
pub fn check(spec: LinkSpec, bulk: Duration) -> io::Result<CheckResult> {
    use std::net::{TcpListener as StdListener, TcpStream as StdStream};
    let server = StdListener::bind("127.0.0.1:0")?;
    let server_addr = server.local_addr()?;
    // The server: a connection starting with b'P' is echoed byte by byte;
    // one starting with b'B' gets data for `bulk`, then EOF.
    let server_thread = std::thread::spawn(move || -> io::Result<()> {
        for _ in 0..2 {
            let (mut s, _) = server.accept()?;
            s.set_nodelay(true)?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
            if b[0] == b'P' {
                while s.read_exact(&mut b).is_ok() {
                    s.write_all(&b)?;
                }
            } else {
                let block = vec![0x5au8; 64 << 10];
                let end = Instant::now() + bulk;
                while Instant::now() < end {
                    s.write_all(&block)?;
                }
                s.shutdown(Shutdown::Write)?;
            }
        }
        Ok(())
    });
    let mut relay = Relay::bind("127.0.0.1:0".parse().unwrap(), server_addr, spec)?;
    let relay_addr = relay.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let relay_thread = std::thread::spawn(move || relay.run(&stop2));

    // Round trips.
    let mut c = StdStream::connect(relay_addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(b"P")?;
    let mut rtts = Vec::new();
    let mut b = [0u8; 1];
    for _ in 0..21 {
        let t = Instant::now();
        c.write_all(b"x")?;
        c.read_exact(&mut b)?;
        rtts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    rtts.remove(0); // the first carries the connection set-up
    rtts.sort_by(f64::total_cmp);
    let rtt_ms = (rtts[9] + rtts[10]) / 2.0;
    drop(c);

    // Bulk: rate from the first byte to the last, at the receiver.
    let mut c = StdStream::connect(relay_addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(b"B")?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let now = Instant::now();
        if first.is_none() {
            first = Some(now);
        } else {
            total += n as u64; // bytes after the first read, over the time since it
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let secs = last
        .saturating_duration_since(first.unwrap_or(last))
        .as_secs_f64();
    let rate_mbit = if secs > 0.0 {
        total as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    };
    relay_thread.join().expect("relay thread")?;
    server_thread.join().expect("server thread")?;
    let set_rtt = spec.rtt.as_secs_f64() * 1000.0;
    let set_rate = spec.rate as f64 * 8.0 / 1e6;
    Ok(CheckResult {
        rtt_ms,
        rate_mbit,
        rtt_ok: rtt_ms >= set_rtt * 0.98 && rtt_ms <= set_rtt * 1.1 + 2.0,
        rate_ok: spec.rate == 0 || (rate_mbit - set_rate).abs() <= set_rate * 0.05,
    })
}

// ------------------------------------------------------------------ main

fn usage() -> ! {
    eprintln!(
        "usage: relay --listen IP:PORT --connect IP:PORT [--rtt MS] [--rate MBIT] [--queue BYTES]\n       relay --check [--rtt MS] [--rate MBIT] [--seconds S]"
    );
    std::process::exit(2)
}

#[allow(dead_code)] // unused when tests/relay.rs includes this file
fn main() {
    let mut listen = None;
    let mut connect = None;
    let mut rtt_ms = 0.0f64;
    let mut rate_mbit = 0.0f64;
    let mut queue = None;
    let mut check_mode = false;
    let mut seconds = 3.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(val().parse().unwrap_or_else(|_| usage())),
            "--connect" => connect = Some(val().parse().unwrap_or_else(|_| usage())),
            "--rtt" => rtt_ms = val().parse().unwrap_or_else(|_| usage()),
            "--rate" => rate_mbit = val().parse().unwrap_or_else(|_| usage()),
            "--queue" => queue = Some(val().parse().unwrap_or_else(|_| usage())),
            "--seconds" => seconds = val().parse().unwrap_or_else(|_| usage()),
            "--check" => check_mode = true,
            _ => usage(),
        }
    }
    if !(rtt_ms >= 0.0 && rate_mbit >= 0.0 && seconds > 0.0) {
        usage();
    }
    let mut spec = LinkSpec::new(
        Duration::from_secs_f64(rtt_ms / 1000.0),
        (rate_mbit * 1e6 / 8.0) as u64,
    );
    if let Some(q) = queue {
        spec.queue = q;
    }
    if check_mode {
        match check(spec, Duration::from_secs_f64(seconds)) {
            Ok(r) => {
                println!(
                    "{{\"rtt_ms_set\":{rtt_ms},\"rtt_ms_measured\":{:.2},\"rate_mbit_set\":{rate_mbit},\"rate_mbit_measured\":{:.2},\"rtt_ok\":{},\"rate_ok\":{}}}",
                    r.rtt_ms, r.rate_mbit, r.rtt_ok, r.rate_ok
                );
                std::process::exit(if r.rtt_ok && r.rate_ok { 0 } else { 1 });
            }
            Err(e) => {
                eprintln!("relay --check: {e}");
                std::process::exit(2);
            }
        }
    }
    let (Some(listen), Some(connect)) = (listen, connect) else {
        usage()
    };
    let mut relay = match Relay::bind(listen, connect, spec) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay: cannot listen on {listen}: {e}");
            std::process::exit(2);
        }
    };
    eprintln!(
        "relay: {listen} -> {connect}, rtt {rtt_ms} ms, rate {rate_mbit} Mbit/s per direction (0: unlimited), queue {} bytes",
        spec.queue
    );
    let stop = AtomicBool::new(false);
    if let Err(e) = relay.run(&stop) {
        eprintln!("relay: {e}");
        std::process::exit(2);
    }
}

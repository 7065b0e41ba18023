//! The web seed threads of `bt-fetch`: for each server, a few worker
//! threads (one kept-alive HTTP connection each) that fetch the ranges
//! the session hands out and stream the bodies back to the event loop
//! through one bounded channel. [`WebSeedDriver::pump`] is the one call
//! the loop makes: it feeds what arrived to the session and gives idle
//! workers their next range.
//!
//! Blocking HTTP on threads rather than in the mio loop, like the
//! announcer: the tracker client, its TLS setup and its timeouts are
//! blocking already, a server needs only a couple of connections, and a
//! slow TLS handshake or a stalled server never holds up the peers. What
//! is in transit is bounded by the channel (`CHANNEL` messages of at most
//! `CHUNK` bytes); pieces are assembled only in the picker's buffers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use super::http::{FetchError, FetchOptions, Fetcher};
use super::{plan, Part};
use crate::metainfo::Info;
use crate::session::{Session, WebSeedId};

/// Bytes handed to the loop at once.
pub const CHUNK: usize = 256 << 10;
/// Messages in transit (all servers together): at most 8 MiB.
pub const CHANNEL: usize = 32;
/// Kept-alive connections (requests in flight) per server.
pub const CONNECTIONS: usize = 2;
/// Largest range asked of a server at once.
pub const MAX_REQUEST: u64 = 4 << 20;
/// Messages taken per pump (the loop also serves the peers).
const PER_PUMP: usize = 256;

enum Msg {
    Data {
        seed: usize,
        req: u64,
        bytes: Vec<u8>,
    },
    Done {
        seed: usize,
        worker: usize,
        req: u64,
        result: Result<(), (String, Option<std::ops::Range<u32>>)>,
    },
}

struct Job {
    req: u64,
    parts: Vec<Part>,
}

struct Worker {
    jobs: Option<Sender<Job>>,
    busy: bool,
}

struct Seed {
    id: WebSeedId,
    url: String,
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
    stopped: bool,
}

/// The web seeds of one download.
pub struct WebSeedDriver {
    info: Arc<Info>,
    seeds: Vec<Seed>,
    rx: Receiver<Msg>,
    tx: SyncSender<Msg>,
    wake: Arc<dyn Fn() + Send + Sync>,
    opts: FetchOptions,
    max_request: u64,
}

impl WebSeedDriver {
    /// Adds `urls` to the session as web seeds; their threads start with
    /// their first range. `wake` wakes the event loop. `max_memory`
    /// bounds a request to a quarter of the piece buffers.
    pub fn new(
        urls: &[String],
        info: Arc<Info>,
        session: &mut Session,
        opts: FetchOptions,
        max_memory: u64,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> WebSeedDriver {
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let max_request = MAX_REQUEST.min(max_memory / 4).max(info.piece_length);
        let mut seeds = Vec::new();
        for url in urls {
            let id = session.add_web_seed(url, CONNECTIONS);
            seeds.push(Seed {
                id,
                url: url.clone(),
                workers: (0..CONNECTIONS)
                    .map(|_| Worker {
                        jobs: None,
                        busy: false,
                    })
                    .collect(),
                stop: Arc::new(AtomicBool::new(false)),
                stopped: false,
            });
        }
        WebSeedDriver {
            info,
            seeds,
            rx,
            tx,
            wake,
            opts,
            max_request,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.seeds.is_empty()
    }

    /// Feeds what the workers sent to the session, then hands out ranges.
    pub fn pump(&mut self, session: &mut Session, now: Instant) {
        if self.seeds.is_empty() {
            return;
        }
        for _ in 0..PER_PUMP {
            match self.rx.try_recv() {
                Ok(Msg::Data { seed, req, bytes }) => {
                    session.on_web_seed_data(self.seeds[seed].id, req, &bytes, now)
                }
                Ok(Msg::Done {
                    seed,
                    worker,
                    req,
                    result,
                }) => {
                    let s = &mut self.seeds[seed];
                    s.workers[worker].busy = false;
                    match result {
                        Ok(()) => session.on_web_seed_done(s.id, req, now),
                        Err((why, avoid)) => session.on_web_seed_failed(s.id, req, why, avoid, now),
                    }
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let complete = session.is_complete();
        for i in 0..self.seeds.len() {
            let s = &mut self.seeds[i];
            if s.stopped {
                continue;
            }
            if complete || session.web_seed_dropped(s.id) {
                s.stop.store(true, Ordering::Relaxed);
                s.stopped = true;
                for w in &mut s.workers {
                    w.jobs = None;
                }
                continue;
            }
            for w in 0..s.workers.len() {
                if self.seeds[i].workers[w].busy {
                    continue;
                }
                let id = self.seeds[i].id;
                let Some(r) = session.web_seed_wants(id, self.max_request, now) else {
                    break;
                };
                let parts = plan(&self.seeds[i].url, &self.info, r.start, r.len);
                log::trace!(
                    "{}: bytes {}+{} in {} parts",
                    self.seeds[i].url,
                    r.start,
                    r.len,
                    parts.len()
                );
                let job = Job { req: r.id, parts };
                let sent = match &self.seeds[i].workers[w].jobs {
                    Some(tx) => tx.send(job).map_err(|e| e.0),
                    None => Err(job),
                };
                if let Err(job) = sent {
                    let tx = self.spawn(i, w);
                    let _ = tx.send(job);
                    self.seeds[i].workers[w].jobs = Some(tx);
                }
                self.seeds[i].workers[w].busy = true;
            }
        }
    }

    /// Starts worker `w` of seed `i`; returns its job queue.
    fn spawn(&self, i: usize, w: usize) -> Sender<Job> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let tx = self.tx.clone();
        let wake = self.wake.clone();
        let stop = self.seeds[i].stop.clone();
        let opts = self.opts.clone();
        let name = format!("webseed-{i}-{w}");
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || worker(i, w, jobs_rx, tx, wake, stop, opts));
        if let Err(e) = spawned {
            log::error!("cannot start a web seed thread: {e}");
        }
        jobs_tx
    }

    /// Stops every worker (they end after their current read).
    pub fn stop(&mut self) {
        for s in &mut self.seeds {
            s.stop.store(true, Ordering::Relaxed);
            s.stopped = true;
            for w in &mut s.workers {
                w.jobs = None;
            }
        }
    }
}

impl Drop for WebSeedDriver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(
    seed: usize,
    index: usize,
    jobs: Receiver<Job>,
    tx: SyncSender<Msg>,
    wake: Arc<dyn Fn() + Send + Sync>,
    stop: Arc<AtomicBool>,
    opts: FetchOptions,
) {
    let mut fetcher = Fetcher::new(opts);
    while let Ok(job) = jobs.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut alive = true;
        let mut sink = |data: &[u8]| -> bool {
            let mut data = data;
            while !data.is_empty() {
                let n = (CHUNK - chunk.len()).min(data.len());
                chunk.extend_from_slice(&data[..n]);
                data = &data[n..];
                if chunk.len() == CHUNK {
                    let bytes = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx
                        .send(Msg::Data {
                            seed,
                            req: job.req,
                            bytes,
                        })
                        .is_err()
                    {
                        alive = false;
                        return false;
                    }
                    wake();
                }
            }
            !stop.load(Ordering::Relaxed)
        };
        let mut result = Ok(());
        for part in &job.parts {
            match part {
                Part::Zeros(n) => {
                    let zeros = vec![0u8; (*n).min(CHUNK as u64) as usize];
                    let mut left = *n;
                    while left > 0 {
                        let k = left.min(zeros.len() as u64) as usize;
                        if !sink(&zeros[..k]) {
                            break;
                        }
                        left -= k as u64;
                    }
                }
                Part::Http {
                    url,
                    offset,
                    len,
                    file_size,
                    pieces,
                } => {
                    if let Err(e) = fetcher.fetch(url, *offset, *len, *file_size, &mut sink) {
                        let avoid = match &e {
                            FetchError::Status { missing: true, .. } => Some(pieces.clone()),
                            _ => None,
                        };
                        result = Err((e.to_string(), avoid));
                        break;
                    }
                }
            }
        }
        if !alive || stop.load(Ordering::Relaxed) {
            return;
        }
        // What came before a failure is good data all the same.
        if !chunk.is_empty() {
            let bytes = std::mem::take(&mut chunk);
            if tx
                .send(Msg::Data {
                    seed,
                    req: job.req,
                    bytes,
                })
                .is_err()
            {
                return;
            }
        }
        let done = Msg::Done {
            seed,
            worker: index,
            req: job.req,
            result,
        };
        if tx.send(done).is_err() {
            return;
        }
        wake();
    }
}

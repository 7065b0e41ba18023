//! `bt-fetch --announce`: a thread that announces to the torrent's
//! trackers (started, then at the tracker's interval, completed, stopped)
//! and hands the peers it learns to the event loop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::tracker::{AnnounceRequest, Event, TrackerOptions, Trackers};

/// Figures the event loop keeps up to date for the announces.
#[derive(Default)]
pub struct Stats {
    pub uploaded: AtomicU64,
    pub downloaded: AtomicU64,
    pub left: AtomicU64,
}

enum Msg {
    Completed,
    Stop,
}

/// What the announcer reports (for logs and JSON events).
pub enum Report {
    Peers {
        tracker: String,
        peers: Vec<SocketAddr>,
        interval: Duration,
    },
    Failed {
        error: String,
    },
}

pub struct Announcer {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// Retry delays after failures: 15 s doubling to 5 minutes.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs((15u64 << failures.min(5)).min(300))
}

impl Announcer {
    /// Starts announcing. `report` receives what happened, `wake` is
    /// called after each report (to wake the event loop).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        tiers: Vec<Vec<String>>,
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        port: u16,
        stats: Arc<Stats>,
        report: Sender<Report>,
        wake: Arc<dyn Fn() + Send + Sync>,
        seed: u64,
    ) -> Announcer {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name("announce".into())
            .spawn(move || {
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
                let key: u32 = rand::Rng::gen(&mut rng);
                let mut trackers = Trackers::new(tiers, &mut rng);
                let opts = TrackerOptions::default();
                let request = |event: Event| AnnounceRequest {
                    info_hash,
                    peer_id,
                    port,
                    uploaded: stats.uploaded.load(Ordering::Relaxed),
                    downloaded: stats.downloaded.load(Ordering::Relaxed),
                    left: stats.left.load(Ordering::Relaxed),
                    event,
                    numwant: Some(50),
                    key,
                };
                let mut event = Event::Started;
                let mut started_ok = false;
                let mut failures = 0u32;
                let mut completed_pending = false;
                let mut last_url: Option<String> = None;
                loop {
                    let wait = match trackers.announce(&request(event), &opts) {
                        Ok((url, answer)) => {
                            failures = 0;
                            if event == Event::Started {
                                started_ok = true;
                            }
                            if event == Event::Completed {
                                completed_pending = false;
                            }
                            event = Event::None;
                            let interval = answer
                                .interval
                                .max(answer.min_interval.unwrap_or_default())
                                .clamp(Duration::from_secs(30), Duration::from_secs(3600));
                            let _ = report.send(Report::Peers {
                                tracker: url.clone(),
                                peers: answer.peers.iter().map(|p| p.addr).collect(),
                                interval,
                            });
                            wake();
                            last_url = Some(url);
                            interval
                        }
                        Err(e) => {
                            let _ = report.send(Report::Failed {
                                error: e.to_string(),
                            });
                            wake();
                            failures += 1;
                            backoff(failures - 1)
                        }
                    };
                    if completed_pending && started_ok {
                        event = Event::Completed;
                    }
                    let until = Instant::now() + wait;
                    loop {
                        let left = until.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(Msg::Completed) => {
                                if started_ok {
                                    event = Event::Completed;
                                    break;
                                }
                                completed_pending = true;
                            }
                            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                                if started_ok {
                                    let quick = opts.clone().with_timeout(Duration::from_secs(5));
                                    let urls: Vec<String> = last_url.iter().cloned().collect();
                                    let _ = trackers.announce_to(
                                        &urls,
                                        &request(Event::Stopped),
                                        &quick,
                                    );
                                }
                                return;
                            }
                            Err(RecvTimeoutError::Timeout) => break,
                        }
                    }
                }
            })
            .expect("spawn announce thread");
        Announcer {
            tx,
            thread: Some(thread),
        }
    }

    /// The download completed: announce `completed` now.
    pub fn completed(&self) {
        let _ = self.tx.send(Msg::Completed);
    }

    /// Announces `stopped` (bounded by a short timeout) and ends the
    /// thread; gives up waiting after a few seconds (a tracker that hangs
    /// in the middle of a regular announce does not hold up the exit).
    pub fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let end = Instant::now() + Duration::from_secs(6);
            while !t.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! `bt-fetch --announce`: a thread that announces to the torrent's
//! trackers and hands the peers it learns to the event loop. When to
//! announce what is decided by [`AnnounceSchedule`] (shared with
//! `bt-announce --follow`); this thread only does the blocking IO and
//! waits for its messages in between.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::tracker::schedule::{AnnounceSchedule, ScheduleConfig};
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
        /// Until the next announce (the tracker's interval as scheduled).
        interval: Duration,
    },
    Failed {
        error: String,
    },
}

/// What `bt-fetch`'s flags change in its announces.
#[derive(Debug, Clone, Default)]
pub struct AnnounceSettings {
    /// Peers to ask for (default 50).
    pub numwant: Option<u32>,
    /// Certificate authorities trusted for https trackers besides the system's.
    pub ca_files: Vec<std::path::PathBuf>,
}

pub struct Announcer {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
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
        settings: AnnounceSettings,
    ) -> Announcer {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name("announce".into())
            .spawn(move || {
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
                let key: u32 = rand::Rng::gen(&mut rng);
                let mut trackers = Trackers::new(tiers, &mut rng);
                let opts = TrackerOptions {
                    ca_files: settings.ca_files,
                    ..Default::default()
                };
                let numwant = settings.numwant.or(Some(50));
                let request = |event: Event| AnnounceRequest {
                    info_hash,
                    peer_id,
                    port,
                    uploaded: stats.uploaded.load(Ordering::Relaxed),
                    downloaded: stats.downloaded.load(Ordering::Relaxed),
                    left: stats.left.load(Ordering::Relaxed),
                    event,
                    numwant,
                    key,
                };
                let mut schedule = AnnounceSchedule::new(ScheduleConfig::default(), Instant::now());
                loop {
                    if let Some(event) = schedule.poll_announce(Instant::now()) {
                        match trackers.announce(&request(event), &opts) {
                            Ok((url, answer)) => {
                                let interval = schedule.on_success(
                                    Instant::now(),
                                    &url,
                                    answer.interval,
                                    answer.min_interval,
                                );
                                let _ = report.send(Report::Peers {
                                    tracker: url,
                                    peers: answer.peers.iter().map(|p| p.addr).collect(),
                                    interval,
                                });
                            }
                            Err(e) => {
                                schedule.on_failure(Instant::now());
                                let _ = report.send(Report::Failed {
                                    error: e.to_string(),
                                });
                            }
                        }
                        wake();
                    }
                    let Some(at) = schedule.poll_timeout() else {
                        return;
                    };
                    let msg = rx.recv_timeout(at.saturating_duration_since(Instant::now()));
                    match msg {
                        Ok(Msg::Completed) => schedule.completed(Instant::now()),
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            if let Some(stop) = schedule.stop() {
                                let quick = opts.clone().with_timeout(Duration::from_secs(5));
                                let _ = trackers.announce_to(
                                    &stop.urls,
                                    &request(Event::Stopped),
                                    &quick,
                                );
                            }
                            return;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
            })
            .expect("spawn announce thread");
        Announcer {
            tx,
            thread: Some(thread),
        }
    }

    /// The download completed: announce `completed` now (or once a tracker
    /// acknowledged `started`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// A tracker on loopback that records each request line and answers
    /// with a long interval and no peers.
    fn recording_tracker() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                s.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or("").to_string());
                let body = b"d8:intervali1800e5:peers0:e";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(body);
            }
        });
        (url, seen)
    }

    #[test]
    fn started_then_completed_then_stopped() {
        let (url, seen) = recording_tracker();
        let (report_tx, report_rx) = mpsc::channel();
        let mut a = Announcer::start(
            vec![vec![url.clone()]],
            [1; 20],
            *b"-BT0100-abcdefghijkl",
            6881,
            Arc::new(Stats::default()),
            report_tx,
            Arc::new(|| {}),
            7,
            AnnounceSettings::default(),
        );
        // Told at once, maybe before `started` is answered: still after it.
        a.completed();
        for _ in 0..2 {
            match report_rx.recv_timeout(Duration::from_secs(20)).unwrap() {
                Report::Peers {
                    tracker, interval, ..
                } => {
                    assert_eq!(tracker, url);
                    assert_eq!(interval, Duration::from_secs(1800));
                }
                Report::Failed { error } => panic!("{error}"),
            }
        }
        a.stop();
        let seen = seen.lock().unwrap().clone();
        let events: Vec<&str> = seen
            .iter()
            .map(|line| {
                ["started", "completed", "stopped"]
                    .into_iter()
                    .find(|e| line.contains(&format!("event={e}")))
                    .unwrap_or("none")
            })
            .collect();
        assert_eq!(events, ["started", "completed", "stopped"], "{seen:?}");
    }
}

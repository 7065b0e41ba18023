//! A fixed set of threads that run one job at a time together with the
//! caller: the simulator's steps are short (a few hundred microseconds at
//! 500 peers), and starting a thread per step (tens of microseconds each,
//! more on a loaded machine) ate much of what running in parallel saved.
//!
//! Workers wait for the next job spinning for a short while, then
//! yielding the core, then asleep on a condition variable; the caller
//! waits for them spinning, then yielding. Yielding matters on a loaded
//! machine: a thread that only spins can take the very core the thread
//! it waits for needs. A job borrows the caller's data:
//! [`Pool::run`] returns only once every worker has finished it, which is
//! what makes lending it to the threads sound (as `std::thread::scope`
//! does, without a thread per call).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a waiting thread spins before it yields its core.
const SPIN: Duration = Duration::from_micros(20);
/// How long an idle worker keeps waking before it sleeps: longer than the
/// serial part of a step, so that workers are awake for the next one.
const AWAKE: Duration = Duration::from_micros(200);

/// Waits until `done()`: spinning for [`SPIN`], then yielding, until
/// `until` (if any) has passed. Returns whether `done()` held.
fn wait_for(done: impl Fn() -> bool, until: Option<Instant>) -> bool {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if done() {
            return true;
        }
        spins = spins.wrapping_add(1);
        // The clock is read only every 64 turns: it costs more than a spin.
        if spins % 64 == 0 {
            let now = Instant::now();
            if until.is_some_and(|t| now >= t) {
                return false;
            }
            if now.duration_since(start) >= SPIN {
                std::thread::yield_now();
                continue;
            }
        }
        std::hint::spin_loop();
    }
}

/// A job as the workers see it: the caller's closure with its lifetime
/// erased (see [`Pool::run`] for why that is sound).
type Job = *const (dyn Fn(usize) + Sync + 'static);

struct Shared {
    /// Bumped for each job.
    generation: AtomicU64,
    /// The current job (valid while `generation` is the job's and `busy`
    /// is not zero).
    job: Mutex<Option<JobPtr>>,
    /// Workers still running the current job.
    busy: AtomicUsize,
    /// A worker's job panicked.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Workers asleep, and where they sleep.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

#[derive(Clone, Copy)]
struct JobPtr(Job);
// SAFETY: the pointee is `Sync` (shared by reference only) and outlives
// every use (see `Pool::run`).
unsafe impl Send for JobPtr {}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `threads` threads in all: the caller and `threads - 1`
    /// workers.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: Mutex::new(None),
            busy: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("bt-sim-{index}"))
                    .spawn(move || work(&shared, index))
                    .expect("spawning a simulator thread")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Threads a job runs on (the caller's included).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job(i)` once on each thread, `i` from 0 (the caller's) to
    /// `threads() - 1`, and returns when all are done. A panic in a
    /// worker's share is raised here.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            job(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: the workers use the pointer only between the generation
        // bump below and their decrement of `busy`, and this function does
        // not return (not even by unwinding: the caller's share runs under
        // catch_unwind) before `busy` is back to zero. So `job` outlives
        // every use, as in a scoped thread.
        let erased: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(erased));
        s.busy.store(self.workers.len(), Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        wait_for(|| s.busy.load(Ordering::Acquire) == 0, None);
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a simulator thread panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn work(s: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        // Wait for the next generation: spin, yield, then sleep.
        loop {
            let news =
                || s.shutdown.load(Ordering::SeqCst) || s.generation.load(Ordering::SeqCst) != seen;
            if wait_for(news, Some(Instant::now() + AWAKE)) {
                break;
            }
            let guard = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            // Checked again under the lock: `run` notifies under it.
            if !news() {
                let _unused = s
                    .wake
                    .wait_timeout(guard, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        if s.shutdown.load(Ordering::SeqCst) {
            return;
        }
        seen = s.generation.load(Ordering::SeqCst);
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(JobPtr(job)) = job {
            // SAFETY: see `Pool::run`: valid until `busy` is decremented.
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| job(index))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.busy.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_each_job_once_and_sees_the_callers_data() {
        let pool = Pool::new(3);
        assert_eq!(pool.threads(), 3);
        for round in 0..2000u64 {
            let counts: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
            pool.run(&|i| {
                counts[i].fetch_add(round + 1, Ordering::SeqCst);
            });
            for c in &counts {
                assert_eq!(c.load(Ordering::SeqCst), round + 1);
            }
            if round == 1000 {
                // Long enough for the workers to fall asleep.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn a_workers_panic_reaches_the_caller_and_the_pool_goes_on() {
        let pool = Pool::new(2);
        let hit = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 1 {
                    panic!("worker share");
                }
            })
        }));
        assert!(hit.is_err());
        let ran = AtomicUsize::new(0);
        pool.run(&|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn one_thread_runs_on_the_caller() {
        let pool = Pool::new(1);
        let me = std::thread::current().id();
        pool.run(&|i| {
            assert_eq!(i, 0);
            assert_eq!(std::thread::current().id(), me);
        });
    }
}

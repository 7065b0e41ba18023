//! A small logger for the `log` facade: one line per record on stderr,
//! prefixed with the program name and level, so that stdout stays data.
//!
//! A thread may instead send its records to a buffer of its own
//! ([`capture`]): that is how a program run in-process over a test `Env`
//! gets the library's `log::` lines on the Env's stderr, while other tests
//! run their programs on other threads of the same process.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    program: &'static str,
    level: LevelFilter,
    started: Instant,
}

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

/// One thread's records, diverted into `sink` (an in-process Env's stderr).
struct Capture {
    program: &'static str,
    level: LevelFilter,
    sink: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// The line a record becomes: with -vv and more, the time since start and
/// the module help follow events.
fn format_line(program: &str, level: LevelFilter, started: Instant, record: &Record) -> String {
    if level >= LevelFilter::Debug {
        format!(
            "{} {:>8.3} {:5} {}: {}\n",
            program,
            started.elapsed().as_secs_f64(),
            record.level(),
            record.target(),
            record.args()
        )
    } else {
        match record.level() {
            Level::Error => format!("{program}: error: {}\n", record.args()),
            Level::Warn => format!("{program}: warning: {}\n", record.args()),
            _ => format!("{program}: {}\n", record.args()),
        }
    }
}

impl StderrLogger {
    /// Writes the record into this thread's capture, if it has one: `None`
    /// when it has none (the record is the process's), `Some(())` when the
    /// capture took it or filtered it out.
    fn captured(&self, record: &Record) -> Option<()> {
        CAPTURE.with(|c| {
            let c = c.borrow();
            let c = c.as_ref()?;
            if record.level() <= c.level {
                let line = format_line(c.program, c.level, self.started, record);
                if let Ok(mut sink) = c.sink.lock() {
                    sink.extend_from_slice(line.as_bytes());
                }
            }
            Some(())
        })
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        CAPTURE.with(|c| match c.borrow().as_ref() {
            Some(c) => metadata.level() <= c.level,
            None => metadata.level() <= self.level,
        })
    }

    fn log(&self, record: &Record) {
        if self.captured(record).is_some() || record.level() > self.level {
            return;
        }
        let line = format_line(self.program, self.level, self.started, record);
        crate::progress::with_line_cleared(|| {
            // One write call per line keeps lines from different threads whole.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        });
    }

    fn flush(&self) {}
}

/// Maps `-v`/`-q` counts to a level: warnings by default, `-v` info, `-vv`
/// debug, `-vvv` trace, `-q` errors only, `-qq` nothing.
pub fn level_for(verbose: u8, quiet: u8) -> LevelFilter {
    let base = 2i32 + i32::from(verbose) - i32::from(quiet);
    match base {
        i32::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// The level from `-v`/`-q`, unless `BT_LOG=debug` (or any level name)
/// overrides the flags, for debugging scripted runs.
pub fn effective_level(verbose: u8, quiet: u8) -> LevelFilter {
    std::env::var("BT_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| level_for(verbose, quiet))
}

/// Installs the logger once; later calls do nothing. `BT_LOG=debug` (or any
/// level name) overrides `level`.
pub fn init(program: &'static str, level: LevelFilter) {
    let level = std::env::var("BT_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(level);
    let logger = LOGGER.get_or_init(|| StderrLogger {
        program,
        level,
        started: Instant::now(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(logger.level);
    }
}

/// From now on this thread's records at `level` or more severe go into
/// `sink`, formatted as `program`'s, and none reach the process's stderr
/// (threads the caller starts are not covered). Installs a logger that is
/// silent for every other thread if none is installed yet; since the level
/// filter is global in `log`, it is raised to let each thread's capture
/// decide.
pub fn capture(program: &'static str, level: LevelFilter, sink: Arc<Mutex<Vec<u8>>>) {
    let logger = LOGGER.get_or_init(|| StderrLogger {
        program,
        level: LevelFilter::Off,
        started: Instant::now(),
    });
    let _ = log::set_logger(logger);
    if log::max_level() < level {
        log::set_max_level(level);
    }
    CAPTURE.with(|c| {
        *c.borrow_mut() = Some(Capture {
            program,
            level,
            sink,
        })
    });
}

/// Ends this thread's capture into `sink` (an Env going away); a later
/// capture by another Env on this thread is left alone.
pub fn end_capture(sink: &Arc<Mutex<Vec<u8>>>) {
    CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_some_and(|c| Arc::ptr_eq(&c.sink, sink)) {
            *c = None;
        }
    });
}

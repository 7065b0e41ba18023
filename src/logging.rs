//! A small logger for the `log` facade: one line per record on stderr,
//! prefixed with the program name and level, so that stdout stays data.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    program: &'static str,
    level: LevelFilter,
    started: Instant,
}

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.level >= LevelFilter::Debug {
            // With -vv the time since start and the module help follow events.
            format!(
                "{} {:>8.3} {:5} {}: {}\n",
                self.program,
                self.started.elapsed().as_secs_f64(),
                record.level(),
                record.target(),
                record.args()
            )
        } else {
            match record.level() {
                Level::Error => format!("{}: error: {}\n", self.program, record.args()),
                Level::Warn => format!("{}: warning: {}\n", self.program, record.args()),
                _ => format!("{}: {}\n", self.program, record.args()),
            }
        };
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

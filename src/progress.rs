//! A one-line progress display on stderr, drawn only when stderr is a
//! terminal, plus the number formatting the programs share.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether a progress line is currently drawn (so log lines clear it first).
static LINE_SHOWN: AtomicBool = AtomicBool::new(false);
static DRAW: Mutex<()> = Mutex::new(());

pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}

/// Runs `f` (which writes whole lines to stderr) with the progress line
/// erased, so that log output and the progress line never interleave.
pub fn with_line_cleared(f: impl FnOnce()) {
    let _guard = DRAW.lock().unwrap_or_else(|e| e.into_inner());
    if LINE_SHOWN.swap(false, Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(b"\r\x1b[2K");
    }
    f();
}

/// A progress line that redraws at most a few times a second.
pub struct ProgressLine {
    enabled: bool,
    last_draw: Option<Instant>,
    interval: Duration,
}

impl ProgressLine {
    /// A line that draws only when stderr is a terminal and `wanted`.
    pub fn new(wanted: bool) -> Self {
        ProgressLine {
            enabled: wanted && stderr_is_tty(),
            last_draw: None,
            interval: Duration::from_millis(200),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Draws `text` unless it was drawn very recently (`force` draws anyway).
    pub fn draw(&mut self, text: &str, force: bool) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if !force && self.last_draw.is_some_and(|t| now - t < self.interval) {
            return;
        }
        self.last_draw = Some(now);
        let _guard = DRAW.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(std::io::stderr(), "\r\x1b[2K{text}");
        LINE_SHOWN.store(true, Ordering::Relaxed);
    }

    /// Erases the line (before printing a final summary).
    pub fn clear(&mut self) {
        if self.enabled {
            with_line_cleared(|| {});
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A rate in bytes per second, e.g. `12.3 MiB/s`.
pub fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", bytes(bytes_per_second.max(0.0) as u64))
}

/// A duration as `1h02m03s`, `2m05s` or `7s`; `--` for an unknown ETA.
pub fn duration(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "--".into();
    };
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(rate(1048576.0), "1.0 MiB/s");
        assert_eq!(duration(Some(Duration::from_secs(3723))), "1h02m03s");
        assert_eq!(duration(Some(Duration::from_secs(125))), "2m05s");
        assert_eq!(duration(None), "--");
    }
}

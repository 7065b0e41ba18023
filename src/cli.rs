//! Pieces shared by the programs' command lines: verbosity flags, loading
//! torrents with errors that name the file, sizes with units, and a progress
//! watcher for long hashing runs.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metainfo::{Metainfo, MetainfoError};
use crate::progress::{self, ProgressLine};

/// `-v`/`-q` flags every program takes.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Verbosity {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output on stderr (-q errors only, -qq nothing); no progress line.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
}

impl Verbosity {
    pub fn init_logging(&self, program: &'static str) {
        crate::logging::init(program, crate::logging::level_for(self.verbose, self.quiet));
    }
}

/// Why a torrent could not be loaded, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: MetainfoError,
    },
    #[error("{path}: larger than {limit} bytes, not a torrent file")]
    TooLarge { path: String, limit: u64 },
}

impl LoadError {
    /// The exit code this error calls for.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Io { .. } => crate::exit::FAILURE,
            _ => crate::exit::INVALID_INPUT,
        }
    }
}

/// Torrent files larger than this are refused before being read whole
/// (the largest real ones are a few MiB).
pub const MAX_TORRENT_FILE: u64 = 64 << 20;

/// Reads a torrent file's bytes (`-` is stdin), bounded in size.
pub fn read_torrent_bytes(path: &str) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_string(),
        source,
    };
    let mut bytes = Vec::new();
    let limit = MAX_TORRENT_FILE + 1;
    if path == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        std::fs::File::open(Path::new(path))
            .map_err(io)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        return Err(LoadError::TooLarge {
            path: path.to_string(),
            limit: MAX_TORRENT_FILE,
        });
    }
    Ok(bytes)
}

/// Reads and parses a torrent file (`-` is stdin), logging its warnings.
/// `strict` refuses non-canonical bencode and bytes after the top-level
/// dictionary, which are otherwise accepted with a warning.
pub fn load_torrent(path: &str, strict: bool) -> Result<Metainfo, LoadError> {
    let bytes = read_torrent_bytes(path)?;
    let parsed = if strict {
        Metainfo::from_bytes_strict(&bytes)
    } else {
        Metainfo::from_bytes(&bytes)
    };
    let mut meta = parsed.map_err(|source| LoadError::Invalid {
        path: path.to_string(),
        source,
    })?;
    for w in &meta.warnings {
        log::warn!("{path}: {w}");
    }
    // A torrent without a name is named after its file, as Transmission and
    // aria2 do; from stdin the info-hash stands in.
    if meta.info.name_missing {
        if let Some(stem) = Path::new(path).file_stem() {
            use std::os::unix::ffi::OsStrExt;
            meta.info.set_fallback_name(stem.as_bytes());
        }
    }
    Ok(meta)
}

/// Parses a size such as `262144`, `256K`, `256KiB`, `1M` or `2GiB` (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (examples: 262144, 256K, 1M)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{text}': unknown unit (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses a duration: seconds (`30`), or a number with a unit `s`, `m`,
/// `h` or `d` (`90s`, `10m`, `1h`); whole numbers only.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (examples: 30, 90s, 10m, 1h)"))?;
    let seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("'{text}': unknown unit (use s, m, h or d)")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// Runs `work` while a thread draws a progress line from `done` (bytes out
/// of `total`) on a terminal; returns what `work` returns.
pub fn with_progress<T>(
    label: &str,
    total: u64,
    done: &AtomicU64,
    show: bool,
    work: impl FnOnce() -> T,
) -> T {
    let mut line = ProgressLine::new(show);
    if !line.enabled() {
        return work();
    }
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let finished = &finished;
        let drawer = scope.spawn(move || {
            let start = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                let bytes = done.load(Ordering::Relaxed);
                let elapsed = start.elapsed().as_secs_f64().max(1e-3);
                let speed = bytes as f64 / elapsed;
                let eta = (speed > 0.0)
                    .then(|| Duration::from_secs_f64(total.saturating_sub(bytes) as f64 / speed));
                let percent = if total == 0 {
                    100.0
                } else {
                    bytes as f64 * 100.0 / total as f64
                };
                line.draw(
                    &format!(
                        "{label} {percent:5.1}%  {} / {}  {}  ETA {}",
                        progress::bytes(bytes),
                        progress::bytes(total),
                        progress::rate(speed),
                        progress::duration(eta)
                    ),
                    true,
                );
                // Woken early by the worker when the work is done.
                std::thread::park_timeout(Duration::from_millis(200));
            }
            line.clear();
        });
        let result = work();
        finished.store(true, Ordering::Relaxed);
        drawer.thread().unpark();
        result
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172800)));
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("262144"), Ok(262144));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
    }
}

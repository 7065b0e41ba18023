//! The programs' command lines. Each program's logic is a library function
//! over an [`Env`] (`meta::run`, `verify::run`, `announce::run`, and
//! `fetch::run` for bt-fetch's flags), so that tests run it in-process;
//! `bin/*` are thin wrappers. Shared here: verbosity flags, value parsers
//! (`values`), loading torrents with errors that name the file, and a
//! progress watcher for long hashing runs.

pub mod announce;
pub mod env;
pub mod fetch;
pub mod glob;
pub mod meta;
pub mod sim;
pub mod values;
pub mod verify;

pub use env::{Env, OutputLost};
pub use values::parse_size;

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metainfo::{Metainfo, MetainfoError};
use crate::progress::{self, ProgressLine};

/// The exit codes shared by every program, for each `--help`.
pub const EXIT_CODES: &str = "Exit status: 0 done; 1 failure (I/O, network, tracker refusal); \
2 usage error (unknown flag, bad value); 3 invalid input file (a torrent or magnet link); \
141 stdout lost (closed by its reader).";

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

/// Reads a torrent file's bytes from the environment: `-` is its stdin, a
/// relative path is under its folder.
pub fn read_torrent_bytes_in(env: &mut Env, path: &str) -> Result<Vec<u8>, LoadError> {
    if path != "-" {
        return read_torrent_bytes(&env.path(path).to_string_lossy());
    }
    let mut bytes = Vec::new();
    (&mut env.stdin)
        .take(MAX_TORRENT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Io {
            path: path.to_string(),
            source,
        })?;
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        return Err(LoadError::TooLarge {
            path: path.to_string(),
            limit: MAX_TORRENT_FILE,
        });
    }
    Ok(bytes)
}

/// [`load_torrent`] in an environment: paths under its folder, `-` from its
/// stdin, warnings on its stderr. Errors name the path as given.
pub fn load_torrent_in(env: &mut Env, path: &str, strict: bool) -> Result<Metainfo, LoadError> {
    let bytes = read_torrent_bytes_in(env, path).map_err(|e| match e {
        LoadError::Io { source, .. } => LoadError::Io {
            path: path.to_string(),
            source,
        },
        other => other,
    })?;
    let mut meta = parse_torrent(path, &bytes, strict)?;
    for w in std::mem::take(&mut meta.warnings).iter() {
        env.warn(format_args!("{path}: {w}"));
        meta.warnings.push(w.clone());
    }
    Ok(meta)
}

fn parse_torrent(path: &str, bytes: &[u8], strict: bool) -> Result<Metainfo, LoadError> {
    let parsed = if strict {
        Metainfo::from_bytes_strict(bytes)
    } else {
        Metainfo::from_bytes(bytes)
    };
    let mut meta = parsed.map_err(|source| LoadError::Invalid {
        path: path.to_string(),
        source,
    })?;
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

/// Reads and parses a torrent file (`-` is stdin), logging its warnings.
/// `strict` refuses non-canonical bencode and bytes after the top-level
/// dictionary, which are otherwise accepted with a warning.
pub fn load_torrent(path: &str, strict: bool) -> Result<Metainfo, LoadError> {
    let bytes = read_torrent_bytes(path)?;
    let meta = parse_torrent(path, &bytes, strict)?;
    for w in &meta.warnings {
        log::warn!("{path}: {w}");
    }
    Ok(meta)
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

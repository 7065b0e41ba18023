//! bt-verify: recheck the data of a torrent on disk.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use bt::cli::{self, Verbosity};
use bt::exit;
use bt::verify::{self, FileState, PieceState};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bt-verify",
    version,
    about = "Recheck the data of a torrent on disk against its piece hashes"
)]
struct Cli {
    /// The torrent file (`-` reads it from stdin).
    torrent: String,
    /// Folder holding the data (the torrent's name is looked up inside it).
    #[arg(short, long, default_value = ".")]
    dir: PathBuf,
    /// List the index of every bad and missing piece.
    #[arg(long)]
    pieces: bool,
    /// Hashing threads (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Indent the JSON.
    #[arg(long)]
    pretty: bool,
    /// Refuse a torrent file that is not canonical bencode (keys out of order
    /// or repeated, bytes after the top-level dictionary).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    verbosity: Verbosity,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.verbosity.init_logging("bt-verify");
    ExitCode::from(run(&cli) as u8)
}

fn run(cli: &Cli) -> i32 {
    let meta = match cli::load_torrent(&cli.torrent, cli.strict) {
        Ok(m) => m,
        Err(e) => {
            log::error!("{e}");
            return e.exit_code();
        }
    };
    let info = &meta.info;
    let threads = cli.threads.unwrap_or_else(bt::hashing::default_threads);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let show = cli.verbosity.quiet == 0;
    let report = match cli::with_progress("checking", info.total_length, &done, show, || {
        verify::verify(info, &cli.dir, threads, &done)
    }) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return exit::FAILURE;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let good = report.count(PieceState::Good);
    let bad = report.count(PieceState::Bad);
    let missing = report.count(PieceState::Missing);
    let files_ok = report.files.iter().all(|f| f.status == FileState::Complete);
    let status = if bad > 0 || report.files.iter().any(|f| f.status == FileState::Corrupt) {
        "corrupt"
    } else if missing > 0 || !files_ok {
        "incomplete"
    } else {
        "complete"
    };
    let mut json = serde_json::json!({
        "info_hash": meta.info_hash_hex(),
        "name": info.name_lossy(),
        "dir": cli.dir.display().to_string(),
        "status": status,
        "pieces_total": info.piece_count(),
        "pieces_good": good,
        "pieces_bad": bad,
        "pieces_missing": missing,
        "bytes_total": info.total_length,
        "bytes_verified": report.bytes_verified,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "files": report.files,
    });
    if cli.pieces {
        json["bad_pieces"] = report.indices(PieceState::Bad).into();
        json["missing_pieces"] = report.indices(PieceState::Missing).into();
    }
    log::info!(
        "{status}: {good} good, {bad} bad, {missing} missing of {} pieces in {seconds:.2} s ({})",
        info.piece_count(),
        bt::progress::rate(info.total_length as f64 / seconds.max(1e-9))
    );
    let mut out = std::io::stdout().lock();
    let printed = if cli.pretty {
        serde_json::to_writer_pretty(&mut out, &json)
    } else {
        serde_json::to_writer(&mut out, &json)
    };
    if printed.is_ok() {
        let _ = out.write_all(b"\n").and_then(|_| out.flush());
    }
    match status {
        "complete" => exit::OK,
        "incomplete" => exit::INCOMPLETE,
        _ => exit::CORRUPT,
    }
}

//! bt-verify: recheck the data of a torrent on disk.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use clap::Parser;

use super::values::parse_count;
use super::{Env, Verbosity};
use crate::exit;
use crate::verify::{self, FileState, PieceState};

#[derive(Parser, Debug)]
#[command(
    name = "bt-verify",
    version,
    about = "Recheck the data of a torrent on disk against its piece hashes",
    after_help = concat!(
        "Exit status: 0 complete; 1 failure (I/O); 2 usage error (unknown flag, bad value); ",
        "3 invalid torrent; 4 incomplete (data missing, nothing present is wrong); ",
        "5 corrupt (a piece does not match its hash); 141 stdout lost (closed by its reader).\n",
        "Set BT_LOG=debug (or info, trace) to see more on stderr."
    )
)]
pub struct Cli {
    /// The torrent file (`-` reads it from stdin).
    pub torrent: String,
    /// Folder holding the data (the torrent's name is looked up inside it).
    #[arg(
        short,
        long,
        value_name = "DIR",
        default_value = ".",
        alias = "dir",
        short_alias = 'd'
    )]
    pub output: PathBuf,
    /// List the index of every bad and missing piece.
    #[arg(long)]
    pub pieces: bool,
    /// Hashing threads (default: one per core).
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_count)]
    pub threads: Option<usize>,
    /// Indent the JSON.
    #[arg(long)]
    pub pretty: bool,
    /// Refuse a torrent file that is not canonical bencode (keys out of order
    /// or repeated, bytes after the top-level dictionary).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `bt-verify` in `env`; returns the exit code.
pub fn run(env: &mut Env) -> i32 {
    env.run_program(|cli: &Cli| cli.verbosity, run_parsed)
}

fn run_parsed(env: &mut Env, cli: Cli) -> i32 {
    let meta = match super::load_torrent_in(env, &cli.torrent, cli.strict) {
        Ok(m) => m,
        Err(e) => {
            env.error(&e);
            return e.exit_code();
        }
    };
    let info = &meta.info;
    let dir = env.path(&cli.output);
    let threads = cli.threads.unwrap_or_else(crate::hashing::default_threads);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let show = cli.verbosity.quiet == 0 && env.process;
    let report = match super::with_progress("checking", info.total_length, &done, show, || {
        verify::verify(info, &dir, threads, &done)
    }) {
        Ok(r) => r,
        Err(e) => {
            env.error(&e);
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
    // Nothing at all under the folder is likelier a wrong -o than a
    // download that never started: say where we looked.
    let nothing_found = report.files.iter().all(|f| f.size_on_disk.is_none());
    if nothing_found && !report.files.is_empty() {
        let looked = dir.join(info.name_lossy());
        env.warn(format_args!(
            "nothing of the torrent was found under {} (looked for {}); \
             give the folder holding it with -o DIR",
            cli.output.display(),
            looked.display()
        ));
    }
    let mut json = serde_json::json!({
        "info_hash": meta.info_hash_hex(),
        "name": info.name_lossy(),
        "dir": cli.output.display().to_string(),
        "status": status,
        "pieces_total": info.piece_count(),
        "pieces_good": good,
        "pieces_bad": bad,
        "pieces_missing": missing,
        "bytes_total": info.total_length,
        "bytes_verified": report.bytes_verified,
        "files_found": report.files.iter().filter(|f| f.size_on_disk.is_some()).count(),
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "files": report.files,
    });
    if cli.pieces {
        json["bad_pieces"] = report.indices(PieceState::Bad).into();
        json["missing_pieces"] = report.indices(PieceState::Missing).into();
    }
    env.info(format_args!(
        "{status}: {good} good, {bad} bad, {missing} missing of {} pieces in {seconds:.2} s ({})",
        info.piece_count(),
        crate::progress::rate(info.total_length as f64 / seconds.max(1e-9))
    ));
    if let Err(lost) = env.print_json(&json, cli.pretty) {
        return env.output_lost(lost);
    }
    match status {
        "complete" => exit::OK,
        "incomplete" => exit::INCOMPLETE,
        _ => exit::CORRUPT,
    }
}

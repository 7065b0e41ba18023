//! Exit codes shared by every program (documented in each man page).

/// Everything asked for was done.
pub const OK: i32 = 0;
/// A runtime failure: I/O error, network error, tracker refusal.
pub const FAILURE: i32 = 1;
/// Bad command-line usage (clap uses 2 too).
pub const USAGE: i32 = 2;
/// An input file is invalid (a torrent that cannot be read or is refused).
pub const INVALID_INPUT: i32 = 3;
/// `bt-verify`: data is missing but nothing present is wrong.
pub const INCOMPLETE: i32 = 4;
/// `bt-verify`: at least one piece is present but does not match its hash.
pub const CORRUPT: i32 = 5;
/// `bt-fetch`: a local file could not be written or vanished (disk full,
/// a read-only folder, a file deleted during the download). Peers are not
/// blamed; a rerun after fixing it resumes.
pub const LOCAL_IO: i32 = 6;
/// Stdout was lost (its reader closed the pipe, or it cannot be written):
/// what was asked for was not delivered. 141 is what a shell reports for a
/// program killed by SIGPIPE (128 + 13), so `set -o pipefail` scripts see
/// the same as with `cat` or `head`.
pub const OUTPUT_LOST: i32 = 141;

//! Rechecking data on disk against a torrent: which pieces are good, bad or
//! missing, and what that means for each file.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use serde::Serialize;

use crate::hashing::{self, PieceRead, PieceSource, ReadError};
use crate::metainfo::Info;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PieceState {
    Good,
    /// Data present but its hash does not match.
    Bad,
    /// Data absent (file missing or short) or never written (all zeros).
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Present, of the right length, and every piece holding it is good.
    Complete,
    /// Absent from disk.
    Missing,
    /// Some of its pieces are missing, none is bad.
    Incomplete,
    /// At least one of its pieces is bad.
    Corrupt,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub length: u64,
    /// Bytes of this file covered by good pieces.
    pub bytes_present: u64,
    /// Size of the file on disk, `None` when it does not exist.
    pub size_on_disk: Option<u64>,
    pub status: FileState,
}

/// The result of a recheck.
#[derive(Debug, Clone)]
pub struct Report {
    pub pieces: Vec<PieceState>,
    pub files: Vec<FileReport>,
    /// Bytes in good pieces.
    pub bytes_verified: u64,
}

impl Report {
    pub fn count(&self, state: PieceState) -> usize {
        self.pieces.iter().filter(|&&s| s == state).count()
    }

    pub fn is_complete(&self) -> bool {
        self.pieces.iter().all(|&s| s == PieceState::Good)
    }

    /// Indices of pieces in `state`.
    pub fn indices(&self, state: PieceState) -> Vec<usize> {
        (0..self.pieces.len())
            .filter(|&i| self.pieces[i] == state)
            .collect()
    }
}

/// The pieces among `ranges` whose data under `root` is good (a partial
/// recheck: `bt-fetch` after an unclean stop), hashing on `threads`.
pub fn good_pieces_among(
    info: &Info,
    root: &Path,
    ranges: &[std::ops::Range<usize>],
    threads: usize,
    progress: &AtomicU64,
) -> Result<Vec<usize>, ReadError> {
    let mut good = Vec::new();
    hashing::hash_piece_ranges(
        &PieceSource::of_info(info, root),
        ranges,
        threads,
        progress,
        |i, read| match read {
            PieceRead::Hashed(h) | PieceRead::Zeros(h) if h == info.pieces[i] => good.push(i),
            _ => {}
        },
    )?;
    good.sort_unstable();
    Ok(good)
}

/// Rechecks the data of `info` under `root`, hashing on `threads` threads.
pub fn verify(
    info: &Info,
    root: &Path,
    threads: usize,
    progress: &AtomicU64,
) -> Result<Report, ReadError> {
    let mut pieces = vec![PieceState::Missing; info.piece_count()];
    hashing::hash_pieces(
        &PieceSource::of_info(info, root),
        threads,
        progress,
        |i, read| {
            pieces[i] = match read {
                PieceRead::Hashed(h) if h == info.pieces[i] => PieceState::Good,
                // A piece of real zeros is good; unwritten space is not "bad".
                PieceRead::Zeros(h) if h == info.pieces[i] => PieceState::Good,
                PieceRead::Hashed(_) => PieceState::Bad,
                PieceRead::Zeros(_) | PieceRead::Missing => PieceState::Missing,
            };
        },
    )?;
    let files = info
        .user_files()
        .map(|(index, f)| {
            let path = f.path_under(root);
            let size_on_disk = std::fs::metadata(&path).ok().map(|m| m.len());
            let range = info.file_pieces(index);
            let mut bytes_present = 0;
            let mut any_bad = false;
            let mut any_missing = false;
            for p in range {
                match pieces[p] {
                    PieceState::Good => {
                        let piece_start = p as u64 * info.piece_length;
                        let s = piece_start.max(f.offset);
                        let e = (piece_start + info.piece_size(p)).min(f.offset + f.length);
                        bytes_present += e - s;
                    }
                    PieceState::Bad => any_bad = true,
                    PieceState::Missing => any_missing = true,
                }
            }
            let status = match size_on_disk {
                None if f.length > 0 => FileState::Missing,
                _ if any_bad => FileState::Corrupt,
                _ if any_missing => FileState::Incomplete,
                // A file longer than the torrent says holds bytes it should not.
                Some(size) if size > f.length => FileState::Corrupt,
                None => FileState::Missing,
                Some(_) => FileState::Complete,
            };
            FileReport {
                path: f.display_path(),
                length: f.length,
                bytes_present,
                size_on_disk,
                status,
            }
        })
        .collect();
    let bytes_verified = (0..pieces.len())
        .filter(|&i| pieces[i] == PieceState::Good)
        .map(|i| info.piece_size(i))
        .sum();
    Ok(Report {
        pieces,
        files,
        bytes_verified,
    })
}

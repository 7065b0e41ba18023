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
///
/// A piece lying wholly in holes of sparse files (never written: what is
/// left to download) is not read: it is good only if the torrent's hash
/// is that of zeros. After a `kill -9` most of what is rechecked is such
/// space, which reading and hashing would make nearly as slow as a full
/// recheck (docs/results/resume).
pub fn good_pieces_among(
    info: &Info,
    root: &Path,
    ranges: &[std::ops::Range<usize>],
    threads: usize,
    progress: &AtomicU64,
) -> Result<Vec<usize>, ReadError> {
    let mut good = Vec::new();
    let mut to_hash: Vec<std::ops::Range<usize>> = Vec::new();
    let mut zero_hashes: Vec<(u64, [u8; 20])> = Vec::new();
    let mut open: Option<(usize, Option<std::fs::File>)> = None;
    for piece in ranges
        .iter()
        .flat_map(|r| r.start..r.end.min(info.piece_count()))
    {
        let size = crate::metainfo::piece_size(info.piece_length, info.total_length, piece);
        let start = piece as u64 * info.piece_length;
        let hole = crate::metainfo::file_slices(&info.files, start, size).all(|slice| {
            let f = &info.files[slice.file];
            if f.pad {
                return true;
            }
            if open.as_ref().is_none_or(|(i, _)| *i != slice.file) {
                open = Some((slice.file, std::fs::File::open(f.path_under(root)).ok()));
            }
            let file = open.as_ref().and_then(|(_, h)| h.as_ref());
            file.is_some_and(|h| in_hole(h, slice.file_offset, slice.length))
        });
        if hole {
            progress.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            let zeros = match zero_hashes.iter().find(|(len, _)| *len == size) {
                Some(&(_, h)) => h,
                None => {
                    let h = crate::sha1::sha1(&vec![0u8; size as usize]);
                    zero_hashes.push((size, h));
                    h
                }
            };
            if zeros == info.pieces[piece] {
                good.push(piece);
            }
            continue;
        }
        match to_hash.last_mut() {
            Some(r) if r.end == piece => r.end = piece + 1,
            _ => to_hash.push(piece..piece + 1),
        }
    }
    hashing::hash_piece_ranges(
        &PieceSource::of_info(info, root),
        &to_hash,
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

/// Whether `[offset, offset + len)` of `file` is inside the file and holds
/// no data (a hole: reads as zeros). False when it cannot tell (no
/// `SEEK_DATA` on this file system: then the piece is read).
fn in_hole(file: &std::fs::File, offset: u64, len: u64) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if offset + len > meta.len() {
        return false; // short: missing, found so by reading
    }
    let Ok(at) = libc::off_t::try_from(offset) else {
        return false;
    };
    // SAFETY: lseek on a descriptor we own; it only moves the offset of
    // this open file description, which nothing else reads.
    let next_data = unsafe { libc::lseek(file.as_raw_fd(), at, libc::SEEK_DATA) };
    if next_data < 0 {
        // ENXIO: no data at or after `offset` (the rest is a hole).
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
    }
    next_data as u64 >= offset + len
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    #[test]
    fn a_partial_recheck_finds_data_and_zeros_but_not_unwritten_space() {
        const PIECE: usize = 16384;
        let dir = std::env::temp_dir().join(format!("bt-verify-holes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Pieces: 0 data, 1 written zeros, 2 a hole the torrent says is
        // zeros, 3 a hole where data belongs, 4 data with a wrong hash.
        let data: Vec<u8> = (0..PIECE).map(|i| (i * 7 % 251) as u8).collect();
        let zeros = vec![0u8; PIECE];
        let expected = [&data, &zeros, &zeros, &data, &data];
        let mut pieces = Vec::new();
        for p in expected {
            pieces.extend_from_slice(&crate::sha1::sha1(p));
        }
        let mut t = format!(
            "d4:infod6:lengthi{}e4:name1:f12:piece lengthi{PIECE}e6:pieces{}:",
            5 * PIECE,
            pieces.len()
        )
        .into_bytes();
        t.extend_from_slice(&pieces);
        t.extend_from_slice(b"ee");
        let info = Metainfo::from_bytes(&t).unwrap().info;
        let mut content = [data.clone(), zeros.clone()].concat();
        content.resize(4 * PIECE, 0);
        content.extend(data.iter().map(|b| b ^ 1));
        std::fs::write(dir.join("f"), &content).unwrap();
        // Punch pieces 2 and 3 out (a hole, as never written).
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join("f"))
            .unwrap();
        use std::os::unix::io::AsRawFd;
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on our own descriptor.
        let punched =
            unsafe { libc::fallocate(f.as_raw_fd(), punch, 2 * PIECE as i64, 2 * PIECE as i64) };
        let progress = AtomicU64::new(0);
        let good = good_pieces_among(&info, &dir, &[0..3, 3..5], 2, &progress).unwrap();
        assert_eq!(good, [0, 1, 2], "hole punched: {}", punched == 0);
        assert_eq!(progress.into_inner(), 5 * PIECE as u64);
        // Only some pieces asked: only those answered.
        let good = good_pieces_among(&info, &dir, &[2..3, 3..4], 1, &AtomicU64::new(0)).unwrap();
        assert_eq!(good, [2]);
        if punched == 0 {
            assert!(
                in_hole(&f, 2 * PIECE as u64, 2 * PIECE as u64),
                "SEEK_DATA sees the hole"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

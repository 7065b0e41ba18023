//! Hashing the pieces of files on disk, on every core.
//!
//! Used both to create torrents and to recheck data. Workers take batches of
//! consecutive pieces in order from a shared counter, read them with large
//! positional reads and hash them, so reads stay nearly sequential while all
//! cores hash. Memory is one batch buffer per worker, whatever the torrent's
//! size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::metainfo::{file_slices, FileEntry, Info};
use crate::sha1::Sha1;

/// Bytes read per batch (rounded to whole pieces; at least one piece).
const BATCH_BYTES: u64 = 8 << 20;

/// The outcome of reading and hashing one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceRead {
    /// Every byte was there; this is its SHA-1.
    Hashed([u8; 20]),
    /// Some bytes of the piece are absent: a file is missing or too short.
    Missing,
    /// The piece's bytes exist but are all zero: space allocated but never
    /// written (a download in progress). Carries the hash for completeness.
    Zeros([u8; 20]),
}

/// An error reading a file (other than it being absent or short).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Where pieces are read from: a layout of files under a root folder.
pub struct PieceSource<'a> {
    pub root: &'a Path,
    pub files: &'a [FileEntry],
    pub piece_length: u64,
    pub total_length: u64,
}

impl<'a> PieceSource<'a> {
    pub fn of_info(info: &'a Info, root: &'a Path) -> Self {
        PieceSource {
            root,
            files: &info.files,
            piece_length: info.piece_length,
            total_length: info.total_length,
        }
    }

    pub fn piece_count(&self) -> usize {
        self.total_length.div_ceil(self.piece_length) as usize
    }

    fn piece_size(&self, index: usize) -> u64 {
        let start = index as u64 * self.piece_length;
        self.piece_length.min(self.total_length - start)
    }
}

/// Number of hashing threads to use by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads and hashes every piece on `threads` threads, calling `on_piece` on
/// the calling thread for each piece (in no particular order). `progress` is
/// increased by the bytes of each piece done, for a progress display.
/// Absent data is reported as [`PieceRead::Missing`]; only real read errors
/// end the run.
pub fn hash_pieces(
    source: &PieceSource,
    threads: usize,
    progress: &AtomicU64,
    mut on_piece: impl FnMut(usize, PieceRead),
) -> Result<(), ReadError> {
    let count = source.piece_count();
    if count == 0 {
        return Ok(());
    }
    let per_batch = (BATCH_BYTES / source.piece_length).max(1) as usize;
    let next_batch = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = threads.clamp(1, count.div_ceil(per_batch));
    // A bounded channel: workers wait rather than pile results up.
    let (tx, rx) = mpsc::sync_channel::<Result<(usize, PieceRead), ReadError>>(256);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next_batch = &next_batch;
            let failed = &failed;
            scope.spawn(move || {
                let mut worker = Worker::new(source);
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let first = next_batch.fetch_add(1, Ordering::Relaxed) * per_batch;
                    if first >= count {
                        return;
                    }
                    let last = (first + per_batch).min(count);
                    match worker.hash_batch(first..last, progress) {
                        Ok(results) => {
                            for r in results {
                                if tx.send(Ok(r)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        }
        drop(tx);
        let mut first_error = None;
        for message in rx {
            match message {
                Ok((index, read)) => on_piece(index, read),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// One hashing thread's state: its buffer and the file it has open.
struct Worker<'s, 'a> {
    source: &'s PieceSource<'a>,
    buffer: Vec<u8>,
    file: OpenFile,
}

/// The file a worker read last (reads are nearly sequential, so one is
/// enough): its index, handle (`None` when absent) and size.
#[derive(Default)]
struct OpenFile(Option<(usize, Option<File>, u64)>);

impl<'s, 'a> Worker<'s, 'a> {
    fn new(source: &'s PieceSource<'a>) -> Self {
        Worker {
            source,
            buffer: Vec::new(),
            file: OpenFile::default(),
        }
    }

    /// Reads pieces `range` in one pass over the files and hashes each.
    fn hash_batch(
        &mut self,
        range: std::ops::Range<usize>,
        progress: &AtomicU64,
    ) -> Result<Vec<(usize, PieceRead)>, ReadError> {
        let src = self.source;
        let start = range.start as u64 * src.piece_length;
        let end = (range.end as u64 * src.piece_length).min(src.total_length);
        let len = (end - start) as usize;
        self.buffer.resize(len, 0);
        // Pieces with any byte that could not be read, by position in the batch.
        let mut missing = vec![false; range.len()];
        for slice in file_slices(src.files, start, end - start) {
            let f = &src.files[slice.file];
            let at = slice.piece_offset as usize;
            let buf = &mut self.buffer[at..at + slice.length as usize];
            let got = if f.pad {
                buf.fill(0);
                buf.len()
            } else {
                self.file
                    .read(f.path_under(src.root), slice.file, slice.file_offset, buf)?
            };
            if got < buf.len() {
                // Mark every piece touched by the absent tail.
                let absent_from = start + (at + got) as u64;
                let last_byte = start + slice.piece_offset + slice.length - 1;
                let p0 = (absent_from / src.piece_length) as usize - range.start;
                let p1 = (last_byte / src.piece_length) as usize - range.start;
                for m in &mut missing[p0..=p1] {
                    *m = true;
                }
            }
        }
        let mut out = Vec::with_capacity(range.len());
        let mut offset = 0usize;
        for (k, index) in range.enumerate() {
            let size = src.piece_size(index) as usize;
            let data = &self.buffer[offset..offset + size];
            offset += size;
            let read = if missing[k] {
                PieceRead::Missing
            } else {
                let mut h = Sha1::new();
                h.update(data);
                let digest = h.finalize();
                if data.iter().all(|&b| b == 0) {
                    PieceRead::Zeros(digest)
                } else {
                    PieceRead::Hashed(digest)
                }
            };
            progress.fetch_add(size as u64, Ordering::Relaxed);
            out.push((index, read));
        }
        Ok(out)
    }
}

impl OpenFile {
    /// Reads as much of `buf` as file `index` (at `path`) holds from
    /// `offset`; returns the bytes read (fewer when absent or short).
    fn read(
        &mut self,
        path: PathBuf,
        index: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, ReadError> {
        if self.0.as_ref().map(|(i, _, _)| *i) != Some(index) {
            let (file, size) = match File::open(&path) {
                Ok(file) => {
                    let size = file
                        .metadata()
                        .map_err(|source| ReadError {
                            path: path.clone(),
                            source,
                        })?
                        .len();
                    (Some(file), size)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0),
                Err(source) => return Err(ReadError { path, source }),
            };
            self.0 = Some((index, file, size));
        }
        let Some((_, Some(file), size)) = &self.0 else {
            return Ok(0);
        };
        let available = size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < available {
            match file.read_at(&mut buf[done..available], offset + done as u64) {
                Ok(0) => break, // shrank under us: treat the rest as absent
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ReadError { path, source }),
            }
        }
        Ok(done)
    }
}

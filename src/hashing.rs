//! Hashing the pieces of files on disk, on every core.
//!
//! Used both to create torrents and to recheck data. Workers take batches of
//! consecutive pieces in order from a shared counter, so reads stay nearly
//! sequential while all cores hash. A worker reads its batch in chunks small
//! enough to stay in the core's cache (the copy out of the page cache is then
//! still there when the hash reads it) into one buffer it keeps for the whole
//! run, hashing each chunk as it arrives. Memory is one chunk buffer per
//! worker, whatever the torrent's size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::metainfo::{file_slices, FileEntry, Info};
use crate::sha1::Sha1;

/// Bytes of pieces a worker claims at a time (rounded to whole pieces; at
/// least one piece).
const BATCH_BYTES: u64 = 8 << 20;

/// Bytes read per `pread`: the size of each worker's buffer. Well inside a
/// core's L2 cache, so the hash reads what the kernel just wrote there.
const CHUNK_BYTES: u64 = 256 << 10;

/// How work is cut up; memory is `threads * chunk_bytes`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    batch_bytes: u64,
    chunk_bytes: u64,
}

const LIMITS: Limits = Limits {
    batch_bytes: BATCH_BYTES,
    chunk_bytes: CHUNK_BYTES,
};

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
        crate::metainfo::piece_size(self.piece_length, self.total_length, index)
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
    on_piece: impl FnMut(usize, PieceRead),
) -> Result<(), ReadError> {
    let all = 0..source.piece_count();
    hash_pieces_with(
        source,
        std::slice::from_ref(&all),
        threads,
        LIMITS,
        progress,
        on_piece,
    )
}

/// As [`hash_pieces`], for the pieces in `ranges` only (each range read in
/// one pass, as the whole torrent is).
pub fn hash_piece_ranges(
    source: &PieceSource,
    ranges: &[std::ops::Range<usize>],
    threads: usize,
    progress: &AtomicU64,
    on_piece: impl FnMut(usize, PieceRead),
) -> Result<(), ReadError> {
    hash_pieces_with(source, ranges, threads, LIMITS, progress, on_piece)
}

fn hash_pieces_with(
    source: &PieceSource,
    ranges: &[std::ops::Range<usize>],
    threads: usize,
    limits: Limits,
    progress: &AtomicU64,
    mut on_piece: impl FnMut(usize, PieceRead),
) -> Result<(), ReadError> {
    let count = source.piece_count();
    let per_batch = (limits.batch_bytes / source.piece_length.max(1)).max(1) as usize;
    // Each range cut into batches of `per_batch` pieces.
    let batches: Vec<std::ops::Range<usize>> = ranges
        .iter()
        .flat_map(|r| {
            let r = r.start.min(count)..r.end.min(count);
            (r.start..r.end)
                .step_by(per_batch)
                .map(move |first| first..(first + per_batch).min(r.end))
        })
        .collect();
    if batches.is_empty() {
        return Ok(());
    }
    let chunk = limits
        .chunk_bytes
        .clamp(1, per_batch as u64 * source.piece_length)
        .min(source.total_length) as usize;
    let next_batch = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = threads.clamp(1, batches.len());
    // A bounded channel: workers wait rather than pile results up. Results
    // go one piece per message: handing a batch's results over in one
    // message looked cheaper, but made hashing two to three times slower
    // when other programs kept the cores busy (see docs/results/hashing).
    let (tx, rx) = mpsc::sync_channel::<Result<(usize, PieceRead), ReadError>>(256);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next_batch = &next_batch;
            let batches = &batches;
            let failed = &failed;
            scope.spawn(move || {
                let mut worker = Worker::new(source, chunk);
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(batch) = batches.get(next_batch.fetch_add(1, Ordering::Relaxed))
                    else {
                        return;
                    };
                    match worker.hash_batch(batch.clone(), progress) {
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
    /// Allocated once, refilled by every read.
    buffer: Vec<u8>,
    file: OpenFile,
}

/// The file a worker read last (reads are nearly sequential, so one is
/// enough): its index, handle (`None` when absent) and size.
#[derive(Default)]
struct OpenFile(Option<(usize, Option<File>, u64)>);

/// The piece being hashed, which may span several chunks.
struct PieceState {
    hasher: Sha1,
    /// Whether every byte hashed so far is zero.
    zeros: bool,
}

impl PieceState {
    fn new() -> Self {
        PieceState {
            hasher: Sha1::new(),
            zeros: true,
        }
    }
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(source: &'s PieceSource<'a>, chunk: usize) -> Self {
        Worker {
            source,
            buffer: vec![0; chunk],
            file: OpenFile::default(),
        }
    }

    /// Reads pieces `range` chunk by chunk, in one pass over the files, and
    /// hashes each chunk while it is still in the cache.
    fn hash_batch(
        &mut self,
        range: std::ops::Range<usize>,
        progress: &AtomicU64,
    ) -> Result<Vec<(usize, PieceRead)>, ReadError> {
        let src = self.source;
        let start = range.start as u64 * src.piece_length;
        let end = (range.end as u64 * src.piece_length).min(src.total_length);
        // Pieces with any byte that could not be read, by position in the batch.
        let mut missing = vec![false; range.len()];
        let mut out = Vec::with_capacity(range.len());
        let mut piece = range.start;
        let mut piece_end = start + src.piece_size(piece);
        let mut state = PieceState::new();
        let mut pos = start;
        while pos < end {
            let len = (end - pos).min(self.buffer.len() as u64);
            let chunk = &mut self.buffer[..len as usize];
            for slice in file_slices(src.files, pos, len) {
                let f = &src.files[slice.file];
                let at = slice.piece_offset as usize;
                let buf = &mut chunk[at..at + slice.length as usize];
                let got = if f.pad {
                    buf.fill(0);
                    buf.len()
                } else {
                    self.file
                        .read(src.root, f, slice.file, slice.file_offset, buf)?
                };
                if got < buf.len() {
                    // Mark every piece touched by the absent tail.
                    let absent_from = pos + (at + got) as u64;
                    let last_byte = pos + slice.piece_offset + slice.length - 1;
                    let p0 = (absent_from / src.piece_length) as usize - range.start;
                    let p1 = (last_byte / src.piece_length) as usize - range.start;
                    for m in &mut missing[p0..=p1] {
                        *m = true;
                    }
                }
            }
            // Hash the chunk piece by piece; a piece ending here is done
            // (every chunk holding it has been read, so `missing` is final).
            let mut at = 0usize;
            while at < chunk.len() {
                let k = piece - range.start;
                let take = ((piece_end - pos) as usize - at).min(chunk.len() - at);
                let data = &chunk[at..at + take];
                at += take;
                if !missing[k] {
                    state.hasher.update(data);
                    if state.zeros {
                        state.zeros = data.iter().all(|&b| b == 0);
                    }
                }
                if pos + at as u64 == piece_end {
                    let done = std::mem::replace(&mut state, PieceState::new());
                    let read = if missing[k] {
                        PieceRead::Missing
                    } else if done.zeros {
                        PieceRead::Zeros(done.hasher.finalize())
                    } else {
                        PieceRead::Hashed(done.hasher.finalize())
                    };
                    progress.fetch_add(src.piece_size(piece), Ordering::Relaxed);
                    out.push((piece, read));
                    piece += 1;
                    if piece < range.end {
                        piece_end += src.piece_size(piece);
                    }
                }
            }
            pos += len;
        }
        Ok(out)
    }
}

impl OpenFile {
    /// Reads as much of `buf` as file `index` (`entry`, under `root`) holds
    /// from `offset`; returns the bytes read (fewer when absent or short).
    fn read(
        &mut self,
        root: &Path,
        entry: &FileEntry,
        index: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, ReadError> {
        if self.0.as_ref().map(|(i, _, _)| *i) != Some(index) {
            let path = entry.path_under(root);
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
                Err(source) => {
                    return Err(ReadError {
                        path: entry.path_under(root),
                        source,
                    })
                }
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha1::sha1;

    /// A fresh folder under the system temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("bt-hashing-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entry(name: &str, length: u64, offset: u64, pad: bool) -> FileEntry {
        FileEntry {
            components: vec![name.as_bytes().to_vec()],
            length,
            offset,
            pad,
            executable: false,
        }
    }

    /// What every piece should read as, from whole files read into memory.
    fn reference(source: &PieceSource) -> Vec<PieceRead> {
        let mut stream = Vec::new();
        let mut present = Vec::new();
        for f in source.files {
            let mut data = if f.pad {
                vec![0; f.length as usize]
            } else {
                std::fs::read(f.path_under(source.root)).unwrap_or_default()
            };
            data.truncate(f.length as usize);
            present.extend(std::iter::repeat_n(true, data.len()));
            present.extend(std::iter::repeat_n(false, f.length as usize - data.len()));
            data.resize(f.length as usize, 0);
            stream.extend(data);
        }
        (0..source.piece_count())
            .map(|i| {
                let s = i * source.piece_length as usize;
                let e = s + source.piece_size(i) as usize;
                let data = &stream[s..e];
                if present[s..e].iter().any(|&p| !p) {
                    PieceRead::Missing
                } else if data.iter().all(|&b| b == 0) {
                    PieceRead::Zeros(sha1(data))
                } else {
                    PieceRead::Hashed(sha1(data))
                }
            })
            .collect()
    }

    fn hashed(source: &PieceSource, threads: usize, limits: Limits) -> Vec<Option<PieceRead>> {
        let mut out = vec![None; source.piece_count()];
        let progress = AtomicU64::new(0);
        let all = 0..source.piece_count();
        hash_pieces_with(
            source,
            std::slice::from_ref(&all),
            threads,
            limits,
            &progress,
            |i, r| {
                assert!(out[i].is_none(), "piece {i} reported twice");
                out[i] = Some(r);
            },
        )
        .unwrap();
        assert_eq!(progress.load(Ordering::Relaxed), source.total_length);
        out
    }

    #[test]
    fn chunked_reads_match_whole_piece_hashes() {
        let dir = Dir::new("chunks");
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect()
        };
        // Sizes as listed in the torrent; what is on disk differs below.
        let layout: [(&str, u64, bool); 7] = [
            ("a", 5000, false),
            ("pad", 1000, true),
            ("b", 777, false),
            ("zeros", 9000, false),
            ("short", 6000, false),
            ("absent", 3000, false),
            ("c", 12345, false),
        ];
        let mut files = Vec::new();
        let mut offset = 0;
        for (name, length, pad) in layout {
            files.push(entry(name, length, offset, pad));
            offset += length;
            let path = dir.0.join(name);
            match name {
                "pad" | "absent" => {}
                "zeros" => std::fs::write(path, vec![0; length as usize]).unwrap(),
                "short" => std::fs::write(path, bytes(length as usize - 2500)).unwrap(),
                _ => std::fs::write(path, bytes(length as usize)).unwrap(),
            }
        }
        for piece_length in [1000, 1024, 3000, 4096, 7001] {
            let source = PieceSource {
                root: &dir.0,
                files: &files,
                piece_length,
                total_length: offset,
            };
            let want: Vec<_> = reference(&source).into_iter().map(Some).collect();
            assert!(want.contains(&Some(PieceRead::Missing)));
            assert!(want.iter().any(|r| matches!(r, Some(PieceRead::Zeros(_)))));
            for (batch_bytes, chunk_bytes) in [
                (1, 1),
                (1, 64),
                (5000, 333),
                (8192, 4096),
                (20000, 1 << 20),
                (1 << 20, 100),
            ] {
                for threads in [1, 3] {
                    let limits = Limits {
                        batch_bytes,
                        chunk_bytes,
                    };
                    assert_eq!(
                        hashed(&source, threads, limits),
                        want,
                        "piece length {piece_length}, {limits:?}, {threads} threads"
                    );
                }
            }
            // Some pieces only: exactly those, as hashed with the rest.
            let n = source.piece_count();
            let ranges = [0..1, 2..n / 2, n - 1..n + 5];
            let mut got = vec![None; n];
            let progress = AtomicU64::new(0);
            hash_piece_ranges(&source, &ranges, 2, &progress, |i, r| got[i] = Some(r)).unwrap();
            for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                let asked = ranges.iter().any(|r| r.contains(&i));
                assert_eq!(
                    got.as_ref(),
                    asked.then_some(want.as_ref().unwrap()),
                    "piece {i}"
                );
            }
        }
    }

    #[test]
    fn a_read_error_ends_the_run() {
        let dir = Dir::new("error");
        // A folder where a file should be: opening works, reading fails.
        std::fs::create_dir(dir.0.join("x")).unwrap();
        if std::fs::metadata(dir.0.join("x")).unwrap().len() == 0 {
            return; // a filesystem whose folders have no size: no read is tried
        }
        let files = [entry("x", 100_000, 0, false)];
        let source = PieceSource {
            root: &dir.0,
            files: &files,
            piece_length: 16384,
            total_length: 100_000,
        };
        let progress = AtomicU64::new(0);
        let err = hash_pieces(&source, 2, &progress, |_, _| {}).unwrap_err();
        assert_eq!(err.path, dir.0.join("x"));
    }
}

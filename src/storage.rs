//! Piece storage on disk: positional writes of verified pieces and reads
//! of blocks for uploads, on worker threads off the event loop.
//!
//! Every path is under the output folder (`FileEntry::path_under`), pad
//! files are never created, files are created sparse when first written,
//! and a symlink is never followed: parent folders are checked with
//! `lstat` and the file itself is opened with `O_NOFOLLOW`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::metainfo::{file_slices, FileEntry, Info};
use crate::piecebuf::PieceBuf;
use crate::session::UploadRead;
use crate::sha1::Sha1;

/// An error naming the file and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct StorageError {
    pub path: PathBuf,
    pub what: String,
}

struct Handle {
    file: Arc<File>,
    writable: bool,
    /// The same file opened with `O_DIRECT` for piece writes; `None` until
    /// first needed or where the filesystem refuses it.
    direct: Option<Arc<File>>,
}

/// Alignment of `O_DIRECT` writes (buffer address, file offset, length).
const DIRECT_ALIGN: usize = crate::piecebuf::ALIGN;
/// Largest single `O_DIRECT` write through a bounce buffer (its size, one
/// per disk thread): four writes per MiB cost nothing next to the memory
/// saved.
const DIRECT_CHUNK: usize = 256 << 10;

/// Pieces shorter than this are written through the page cache even
/// when `O_DIRECT` is on. A direct write waits for the device (about
/// 0.2 ms here), once per piece: with 64 KiB pieces, 16 384 waits per GiB
/// on the disk threads made a download 2.63 s against 1.68 s buffered,
/// while at 256 KiB and above the copy `O_DIRECT` saves pays for the wait
/// (docs/REPORT.md §3).
const DIRECT_IO_MIN_PIECE: u64 = 256 << 10;

/// Whether pieces of `piece_length` bytes are worth writing with `O_DIRECT`.
pub fn direct_io_pays(piece_length: u64) -> bool {
    piece_length >= DIRECT_IO_MIN_PIECE
}

thread_local! {
    /// The aligned copy of data that is not itself aligned in memory.
    static BOUNCE: std::cell::RefCell<Option<PieceBuf>> = const { std::cell::RefCell::new(None) };
}

/// The files of a torrent under a root folder.
pub struct Storage {
    root: PathBuf,
    files: Vec<FileEntry>,
    piece_length: u64,
    pieces: Vec<[u8; 20]>,
    handles: Mutex<Vec<Option<Handle>>>,
    /// Writers take turns: two threads writing one file contend on its
    /// inode lock, and spinning there costs more than waiting here.
    write_lock: Mutex<()>,
    /// Write pieces with `O_DIRECT` where possible (see `write_piece`).
    direct_io: AtomicBool,
    /// Files to store, one flag per file (`bt-fetch --select`); empty: all.
    /// Bytes of the others are dropped and the files never created.
    selected: Vec<bool>,
}

impl Storage {
    pub fn new(info: &Info, root: &Path) -> Self {
        Storage {
            root: root.to_path_buf(),
            files: info.files.clone(),
            piece_length: info.piece_length,
            pieces: info.pieces.clone(),
            handles: Mutex::new((0..info.files.len()).map(|_| None).collect()),
            write_lock: Mutex::new(()),
            direct_io: AtomicBool::new(true),
            selected: Vec::new(),
        }
    }

    /// Stores only the files flagged (one flag per entry of the torrent's
    /// files): a piece's bytes in other files are not written, and those
    /// files are never created.
    pub fn select_files(&mut self, files: Vec<bool>) {
        self.selected = files;
    }

    fn is_stored(&self, i: usize) -> bool {
        !self.files[i].pad && self.selected.get(i).copied().unwrap_or(true)
    }

    /// Turns `O_DIRECT` piece writes off (on by default).
    pub fn set_direct_io(&self, on: bool) {
        self.direct_io.store(on, Ordering::Relaxed);
    }

    fn err(&self, path: &Path, what: impl Into<String>) -> StorageError {
        StorageError {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// Creates the parent folders of `path` (below the root), refusing any
    /// that is a symlink or not a folder.
    fn make_parents(&self, path: &Path) -> Result<(), StorageError> {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let mut dir = self.root.clone();
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            dir.push(c);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.err(
                        &dir,
                        "is a symbolic link; refusing to follow it out of the output folder",
                    ))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(self.err(&dir, "exists and is not a folder")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&dir).map_err(|e| self.err(&dir, e.to_string()))?;
                }
                Err(e) => return Err(self.err(&dir, e.to_string())),
            }
        }
        Ok(())
    }

    fn open(&self, index: usize, write: bool) -> Result<Arc<File>, StorageError> {
        {
            let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = &handles[index] {
                if h.writable || !write {
                    return Ok(h.file.clone());
                }
            }
        }
        let path = self.files[index].path_under(&self.root);
        if write {
            self.make_parents(&path)?;
        } else {
            // Check the parents too: reading through a symlink could leak
            // files from outside the folder to peers.
            let rel = path.strip_prefix(&self.root).unwrap_or(&path);
            let mut dir = self.root.clone();
            let comps: Vec<_> = rel.components().collect();
            for c in comps.iter().take(comps.len().saturating_sub(1)) {
                dir.push(c);
                if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(self.err(&dir, "is a symbolic link; refusing to follow it"));
                }
            }
        }
        let mut opts = OpenOptions::new();
        opts.read(true).custom_flags(libc::O_NOFOLLOW);
        if write {
            opts.write(true).create(true).truncate(false);
        }
        let file = opts.open(&path).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                self.err(
                    &path,
                    "is a symbolic link; refusing to follow it out of the output folder",
                )
            } else {
                self.err(&path, e.to_string())
            }
        })?;
        let file = Arc::new(file);
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        handles[index] = Some(Handle {
            file: file.clone(),
            writable: write,
            direct: None,
        });
        Ok(file)
    }

    /// The file opened with `O_DIRECT` (after `open(index, true)` made
    /// sure it exists and is no symlink); `None` where that fails.
    fn open_direct(&self, index: usize) -> Option<Arc<File>> {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        let h = handles[index].as_mut()?;
        if h.direct.is_none() {
            let path = self.files[index].path_under(&self.root);
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECT)
                .open(&path)
            {
                Ok(f) => h.direct = Some(Arc::new(f)),
                Err(e) => {
                    log::debug!("{}: no O_DIRECT ({e}); buffered writes", path.display());
                    self.set_direct_io(false);
                    return None;
                }
            }
        }
        h.direct.clone()
    }

    /// Writes `chunk` at `file_off` of file `i`: the aligned part with
    /// `O_DIRECT` (straight from `chunk` when it is page-aligned in memory,
    /// as piece buffers are, else through an aligned bounce buffer), the
    /// rest buffered.
    ///
    /// Why: a buffered write copies every byte into page-cache pages the
    /// kernel must find first, serialised by the file's inode lock. On a
    /// virtual machine that hands freed memory back to its host, each of
    /// those pages can cost a fault in the host, and a download ran at a
    /// third of its speed; `O_DIRECT` hands the device our own (already
    /// resident) memory instead, and costs less CPU anywhere.
    fn write_at(&self, i: usize, file: &File, chunk: &[u8], file_off: u64) -> io::Result<()> {
        let direct_ok = self.direct_io.load(Ordering::Relaxed)
            && file_off % DIRECT_ALIGN as u64 == 0
            && chunk.len() >= DIRECT_ALIGN;
        let mut done = 0usize;
        if direct_ok {
            if let Some(direct) = self.open_direct(i) {
                let aligned = chunk.len() / DIRECT_ALIGN * DIRECT_ALIGN;
                let result = if (chunk.as_ptr() as usize) % DIRECT_ALIGN == 0 {
                    direct.write_all_at(&chunk[..aligned], file_off)
                } else {
                    BOUNCE.with(|cell| -> io::Result<()> {
                        let mut cell = cell.borrow_mut();
                        let bounce = cell.get_or_insert_with(|| PieceBuf::zeroed(DIRECT_CHUNK));
                        let mut at = 0;
                        while at < aligned {
                            let n = (aligned - at).min(DIRECT_CHUNK);
                            bounce[..n].copy_from_slice(&chunk[at..at + n]);
                            direct.write_all_at(&bounce[..n], file_off + at as u64)?;
                            at += n;
                        }
                        Ok(())
                    })
                };
                match result {
                    Ok(()) => done = aligned,
                    // The filesystem takes the flag at open but not the
                    // write (alignment it wants larger): buffered from now,
                    // this chunk included.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        log::debug!("O_DIRECT write refused ({e}); buffered writes");
                        self.set_direct_io(false);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if done < chunk.len() {
            file.write_all_at(&chunk[done..], file_off + done as u64)?;
        }
        Ok(())
    }

    /// Writes a whole piece; pad files and files not selected are skipped.
    pub fn write_piece(&self, piece: u32, data: &[u8]) -> Result<(), StorageError> {
        let _turn = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = u64::from(piece) * self.piece_length;
        for s in file_slices(&self.files, start, data.len() as u64) {
            let i = s.file;
            if !self.is_stored(i) {
                continue;
            }
            let f = self.open(i, true)?;
            let chunk = &data[s.piece_offset as usize..(s.piece_offset + s.length) as usize];
            self.write_at(i, &f, chunk, s.file_offset)
                .map_err(|e| self.err(&self.files[i].path_under(&self.root), e.to_string()))?;
        }
        Ok(())
    }

    /// Reads `len` bytes at `begin` of a piece into `out` (appended).
    pub fn read(
        &self,
        piece: u32,
        begin: u32,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let start = u64::from(piece) * self.piece_length + u64::from(begin);
        let base = out.len();
        out.resize(base + len as usize, 0);
        for s in file_slices(&self.files, start, u64::from(len)) {
            let i = s.file;
            if self.files[i].pad {
                continue; // already zeros
            }
            let f = self.open(i, false)?;
            let at = base + s.piece_offset as usize;
            let buf = &mut out[at..at + s.length as usize];
            f.read_exact_at(buf, s.file_offset)
                .map_err(|e| self.err(&self.files[i].path_under(&self.root), e.to_string()))?;
        }
        Ok(())
    }

    /// Creates the empty files of the torrent (never written otherwise).
    pub fn create_empty_files(&self) -> Result<(), StorageError> {
        for (i, f) in self.files.iter().enumerate() {
            if f.length == 0 && self.is_stored(i) {
                self.open(i, true)?;
            }
        }
        Ok(())
    }

    /// Drops cached handles (so that they close).
    pub fn close_all(&self) {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        for h in handles.iter_mut() {
            *h = None;
        }
    }

    /// The first file we have open that was deleted (or replaced) under
    /// us: writes to it still succeed but land in a file nobody can see.
    pub fn vanished_file(&self) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        for (i, h) in handles.iter().enumerate() {
            let Some(h) = h else { continue };
            let path = self.files[i].path_under(&self.root);
            let gone = match (h.file.metadata(), std::fs::symlink_metadata(&path)) {
                (Ok(open), Ok(named)) => {
                    open.nlink() == 0 || open.ino() != named.ino() || open.dev() != named.dev()
                }
                (Ok(_), Err(_)) => true,
                (Err(_), _) => false,
            };
            if gone {
                return Some(path);
            }
        }
        None
    }

    pub fn expected_hash(&self, piece: u32) -> [u8; 20] {
        self.pieces[piece as usize]
    }
}

/// Work for the disk threads.
pub enum Job {
    /// Hash a piece and, if it matches, write it.
    Piece { piece: u32, buf: PieceBuf },
    /// Read blocks for an upload, into `buf` (reused).
    Read { read: UploadRead, buf: Vec<u8> },
}

/// What the disk threads report back.
pub enum Done {
    Piece {
        piece: u32,
        good: bool,
        buf: PieceBuf,
        error: Option<StorageError>,
    },
    Read {
        read: UploadRead,
        /// Empty when the read failed.
        data: Vec<u8>,
        error: Option<StorageError>,
    },
}

/// A pool of disk threads. Results go to `done` and `notify` is called
/// after each (to wake the event loop).
pub struct DiskPool {
    tx: Option<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl DiskPool {
    pub fn start(
        storage: Arc<Storage>,
        threads: usize,
        done: Sender<Done>,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..threads.max(1))
            .map(|n| {
                let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
                let storage = storage.clone();
                let done = done.clone();
                let notify = notify.clone();
                std::thread::Builder::new()
                    .name(format!("disk-{n}"))
                    .spawn(move || loop {
                        let job = {
                            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                            match rx.recv() {
                                Ok(j) => j,
                                Err(_) => return,
                            }
                        };
                        let result = run_job(&storage, job);
                        if done.send(result).is_err() {
                            return;
                        }
                        notify();
                    })
                    .expect("spawn disk thread")
            })
            .collect();
        DiskPool {
            tx: Some(tx),
            threads,
        }
    }

    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// Finishes queued work and stops the threads.
    pub fn shutdown(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for DiskPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_job(storage: &Storage, job: Job) -> Done {
    match job {
        Job::Piece { piece, buf } => {
            let mut h = Sha1::new();
            h.update(&buf);
            let good = h.finalize() == storage.expected_hash(piece);
            let error = if good {
                storage.write_piece(piece, &buf).err()
            } else {
                None
            };
            Done::Piece {
                piece,
                good: good && error.is_none(),
                buf,
                error,
            }
        }
        Job::Read { read, mut buf } => {
            buf.clear();
            let error = storage
                .read(read.piece, read.begin, read.length, &mut buf)
                .err();
            if error.is_some() {
                buf.clear();
            }
            Done::Read {
                read,
                data: buf,
                error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    fn info_multi() -> Info {
        // Two files and a pad file, piece length 16 KiB.
        let mut t = b"d4:infod5:filesl".to_vec();
        t.extend_from_slice(b"d6:lengthi10000e4:pathl1:a5:b.bineed");
        t.extend_from_slice(b"4:attr1:p6:lengthi6384e4:pathl4:.pad4:6384eed");
        t.extend_from_slice(b"6:lengthi16384e4:pathl5:c.bineee");
        t.extend_from_slice(b"4:name1:t12:piece lengthi16384e6:pieces40:");
        t.extend_from_slice(&[0u8; 40]);
        t.extend_from_slice(b"ee");
        Metainfo::from_bytes(&t).expect("test torrent").info
    }

    #[test]
    fn writes_skip_pad_files_and_read_back() {
        let dir = std::env::temp_dir().join(format!("bt-storage-{}", rand::random::<u64>()));
        std::fs::create_dir(&dir).unwrap();
        let info = info_multi();
        let s = Storage::new(&info, &dir);
        let data: Vec<u8> = (0..16384u32).map(|i| (i % 251) as u8).collect();
        s.write_piece(0, &data).unwrap();
        assert_eq!(
            std::fs::read(dir.join("t/a/b.bin")).unwrap(),
            &data[..10000]
        );
        assert!(!dir.join("t/.pad").exists(), "pad files are never created");
        let mut out = Vec::new();
        s.read(0, 9000, 2000, &mut out).unwrap();
        assert_eq!(&out[..1000], &data[9000..10000]);
        assert!(out[1000..].iter().all(|&b| b == 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_only_selected_files() {
        let dir = std::env::temp_dir().join(format!("bt-storage-{}", rand::random::<u64>()));
        std::fs::create_dir(&dir).unwrap();
        let info = info_files(&[10000, 0, 30000], 16384);
        let mut s = Storage::new(&info, &dir);
        s.select_files(vec![false, false, true]);
        s.create_empty_files().unwrap();
        assert!(!dir.join("t/f1").exists(), "empty file not selected");
        let data: Vec<u8> = (0..16384u32).map(|i| (i % 251) as u8).collect();
        // Piece 0 straddles f0 (left out) and f2 (selected).
        s.write_piece(0, &data).unwrap();
        assert!(!dir.join("t/f0").exists(), "no byte of f0 written");
        assert_eq!(std::fs::read(dir.join("t/f2")).unwrap(), &data[10000..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("bt-storage-{}", rand::random::<u64>()));
        let outside = dir.join("outside");
        std::fs::create_dir_all(dir.join("out/t")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("out/t/a")).unwrap();
        let info = info_multi();
        let s = Storage::new(&info, &dir.join("out"));
        let e = s.write_piece(0, &[1u8; 16384]).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // A symlinked file is refused as well.
        std::os::unix::fs::symlink(outside.join("c"), dir.join("out/t/c.bin")).unwrap();
        let e = s.write_piece(1, &[1u8; 16384]).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn info_files(lengths: &[u64], piece_length: u64) -> Info {
        let mut t = b"d4:infod5:filesl".to_vec();
        for (i, len) in lengths.iter().enumerate() {
            let name = format!("f{i}");
            t.extend_from_slice(
                format!("d6:lengthi{len}e4:pathl{}:{name}ee", name.len()).as_bytes(),
            );
        }
        let total: u64 = lengths.iter().sum();
        let pieces = total.div_ceil(piece_length) as usize;
        t.extend_from_slice(
            format!(
                "e4:name1:t12:piece lengthi{piece_length}e6:pieces{}:",
                pieces * 20
            )
            .as_bytes(),
        );
        t.extend_from_slice(&vec![0u8; pieces * 20]);
        t.extend_from_slice(b"ee");
        Metainfo::from_bytes(&t).expect("test torrent").info
    }

    #[test]
    fn small_pieces_are_written_through_the_page_cache() {
        assert!(!direct_io_pays(16 << 10));
        assert!(!direct_io_pays(64 << 10));
        assert!(!direct_io_pays((256 << 10) - 16384));
        assert!(direct_io_pays(256 << 10));
        assert!(direct_io_pays(4 << 20));
    }

    /// Pieces written out of order, with `O_DIRECT` (from page-aligned
    /// piece buffers and through the bounce buffer) and without, land byte
    /// for byte where they belong: aligned runs, unaligned file starts,
    /// short tails and a file smaller than a block.
    #[test]
    fn direct_and_buffered_writes_give_the_same_files() {
        let lengths = [5000u64, 70000, 3, 200_000, 65536];
        let plen = 32768u64;
        let info = info_files(&lengths, plen);
        let total: u64 = lengths.iter().sum();
        let content: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
        for (direct, aligned_buffers) in [(true, true), (true, false), (false, true)] {
            let dir = std::env::temp_dir().join(format!("bt-storage-{}", rand::random::<u64>()));
            std::fs::create_dir(&dir).unwrap();
            let s = Storage::new(&info, &dir);
            s.set_direct_io(direct);
            let n = info.pieces.len() as u32;
            // Even pieces backwards, then odd ones forwards.
            let order: Vec<u32> = (0..n)
                .rev()
                .filter(|p| p % 2 == 0)
                .chain((0..n).filter(|p| p % 2 == 1))
                .collect();
            for &piece in &order {
                let start = (u64::from(piece) * plen) as usize;
                let end = (start + plen as usize).min(content.len());
                let data = &content[start..end];
                if aligned_buffers {
                    s.write_piece(piece, &PieceBuf::from_slice(data)).unwrap();
                } else {
                    s.write_piece(piece, data).unwrap();
                }
            }
            let mut at = 0usize;
            for (i, len) in lengths.iter().enumerate() {
                let got = std::fs::read(dir.join(format!("t/f{i}"))).unwrap();
                let want = &content[at..at + *len as usize];
                let first_bad = got.iter().zip(want).position(|(a, b)| a != b);
                assert!(
                    got == want,
                    "file {i} with direct={direct} aligned={aligned_buffers}: {} bytes, {} wanted, first difference at {first_bad:?}",
                    got.len(),
                    want.len()
                );
                at += *len as usize;
            }
            if direct {
                // Unless this filesystem refuses O_DIRECT, it was used.
                let probe = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(dir.join("t/f3"));
                assert_eq!(
                    s.direct_io.load(Ordering::Relaxed),
                    probe.is_ok(),
                    "O_DIRECT used where the filesystem takes it"
                );
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

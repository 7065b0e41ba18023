//! The resume file of `bt-fetch`: which pieces are verified and written,
//! and how the files looked when that was true, so that a restart can
//! skip rehashing everything.
//!
//! It lives in the output folder as `.<info-hash hex>.bt-resume` (a
//! temporary `.<info-hash hex>.bt-resume.tmp` while it is written). A
//! torrent's content is `<output>/<name>` and below, so the two can only
//! collide when the torrent's name is exactly one of those; then there is
//! no resume file ([`ResumeFile::for_torrent`] returns `None`). Neither
//! name ever leaves the output folder, and a symlink in their place is
//! replaced, never followed.
//!
//! Content, bencoded (canonical, by `bencode::OwnedValue`):
//!
//! | key | value |
//! | --- | --- |
//! | `version` | 1 |
//! | `info-hash` | the 20-byte info-hash |
//! | `pieces` | the number of pieces |
//! | `have` | the piece bitmap (BEP 3 bitfield layout, spare bits clear) |
//! | `files` | per file (pad files left out), in torrent order: `length` (bytes on disk, −1 when absent) and `mtime` (ns since the epoch) |
//! | `saved` | when the stamps were read (ns since the epoch; optional, 0) |
//! | `clean` | 1 when written at exit, after the last write of ours; 0 by the periodic saves of a running bt-fetch (optional, 1) |
//!
//! A piece is in `have` only once its write completed (the disk thread
//! reports a piece after `write_piece` returned; `Session::on_verified`
//! runs on that report), and the sizes and mtimes are read *after* the
//! bitmap was taken. A write of ours that lands later changes an mtime,
//! so the file then no longer matches and a restart rechecks: the file
//! can under-claim, never over-claim, as long as nobody else writes the
//! data within one mtime tick of our stat.
//!
//! ## What a restart trusts (`ResumeFile::load`)
//!
//! Per file, comparing its size and mtime now with the stamp:
//!
//! - **unchanged**: its pieces in `have` are trusted; the others are
//!   missing (not hashed).
//! - **changed by our own writes**: only possible after an unclean stop
//!   (`clean` 0: `kill -9`, a crash), when the pieces we were fetching
//!   reached the disk after the last periodic save. The change is ours
//!   when the file did not shrink and its mtime lies between the stamp's
//!   and `saved` + [`OUR_WRITES_WITHIN`]: bt-fetch saves at least every
//!   [`SAVE_EVERY`] before it hands a piece to a disk thread, so none of
//!   its writes lands later than that (the rest of the window is for a
//!   queued write). Then its pieces in `have` stay trusted — they were
//!   hashed before they were written and bt-fetch never rewrites a piece
//!   it has — and its other pieces are hashed (some may have been
//!   written since).
//! - **changed by someone else**: anything else (changed after a clean
//!   exit, later than the window, shrunk, deleted). Every piece touching
//!   the file is hashed, `have` or not.
//!
//! What this cannot see: another program rewriting bytes of a piece we
//! have while bt-fetch runs (the next save stamps its mtime), or within
//! the window after an unclean stop of a file we were still writing.
//! `--recheck` hashes everything.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::bencode::{Decoder, OwnedValue};
use crate::metainfo::Info;
use crate::picker::Bitfield;

pub const VERSION: i64 = 1;
/// The longest a running bt-fetch goes without saving the resume file
/// before it hands a piece to a disk thread (`fetch::driver`).
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
/// After an unclean stop, a file changed up to this long after the last
/// save is taken as changed by our own writes: `SAVE_EVERY`, plus time
/// for writes queued behind others on a slow disk.
pub const OUR_WRITES_WITHIN: Duration = Duration::from_secs(35);
/// A file whose size or mtime we could not read.
const ABSENT: i64 = -1;

/// Size and modification time of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Bytes on disk; `None` when the file does not exist.
    pub length: Option<u64>,
    /// Nanoseconds since the epoch (0 when absent).
    pub mtime_ns: i64,
}

/// What a resume file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub info_hash: [u8; 20],
    pub have: Bitfield,
    pub files: Vec<FileStamp>,
    /// When `files` was read, ns since the epoch (0: unknown).
    pub saved_ns: i64,
    /// Written at exit, after our last write (else a running program's
    /// periodic save: writes may have followed it).
    pub clean: bool,
}

/// Encodes a state (canonical bencode).
pub fn encode(state: &State) -> Vec<u8> {
    let files = state
        .files
        .iter()
        .map(|f| {
            let mut d = OwnedValue::dict();
            d.insert(
                "length",
                f.length
                    .and_then(|l| i64::try_from(l).ok())
                    .unwrap_or(ABSENT),
            );
            d.insert("mtime", f.mtime_ns);
            d
        })
        .collect();
    let mut d = OwnedValue::dict();
    d.insert("version", VERSION);
    d.insert("info-hash", OwnedValue::Bytes(state.info_hash.to_vec()));
    d.insert("pieces", state.have.len() as i64);
    d.insert("have", OwnedValue::Bytes(state.have.as_bytes().to_vec()));
    d.insert("files", OwnedValue::List(files));
    d.insert("saved", state.saved_ns);
    d.insert("clean", i64::from(state.clean));
    d.encode()
}

/// Decodes a resume file, refusing anything but exactly what `encode`
/// writes (any version but 1, a bitmap of the wrong length or with spare
/// bits set, a negative mtime, a length below −1, a missing key). The
/// error says what is wrong. Nothing here allocates more than the input's
/// size.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let doc = Decoder::new()
        .max_depth(3)
        .decode(bytes)
        .map_err(|e| e.to_string())?;
    let root = doc.root;
    if root.as_dict().is_none() {
        return Err("not a dictionary".into());
    }
    let version = root
        .get("version")
        .and_then(|v| v.as_int())
        .ok_or("no version")?;
    if version != VERSION {
        return Err(format!("version {version}, this program reads {VERSION}"));
    }
    let info_hash: [u8; 20] = root
        .get("info-hash")
        .and_then(|v| v.as_bytes())
        .and_then(|b| b.try_into().ok())
        .ok_or("no 20-byte info-hash")?;
    let pieces = root
        .get("pieces")
        .and_then(|v| v.as_int())
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("no valid piece count")?;
    let bits = root
        .get("have")
        .and_then(|v| v.as_bytes())
        .ok_or("no piece bitmap")?;
    // from_wire checks the length against `pieces` before allocating.
    let have = Bitfield::from_wire(bits, pieces).ok_or_else(|| {
        format!(
            "a bitmap of {} bytes for {pieces} pieces (or spare bits set)",
            bits.len()
        )
    })?;
    let list = root
        .get("files")
        .and_then(|v| v.as_list())
        .ok_or("no file list")?;
    let mut files = Vec::with_capacity(list.len());
    for (i, f) in list.iter().enumerate() {
        let int = |k: &str| f.get(k).and_then(|v| v.as_int());
        let (Some(length), Some(mtime_ns)) = (int("length"), int("mtime")) else {
            return Err(format!("file {i}: no length or mtime"));
        };
        if length < ABSENT || mtime_ns < 0 {
            return Err(format!("file {i}: length {length}, mtime {mtime_ns}"));
        }
        files.push(FileStamp {
            length: u64::try_from(length).ok(),
            mtime_ns,
        });
    }
    // Absent in files of earlier builds: then every changed file is
    // someone else's change (the old, strict rule).
    let saved_ns = match root.get("saved").map(|v| v.as_int()) {
        None => 0,
        Some(Some(n)) if n >= 0 => n,
        Some(_) => return Err("a bad saved time".into()),
    };
    let clean = match root.get("clean").map(|v| v.as_int()) {
        None | Some(Some(1)) => true,
        Some(Some(0)) => false,
        Some(_) => return Err("clean is neither 0 nor 1".into()),
    };
    Ok(State {
        info_hash,
        have,
        files,
        saved_ns,
        clean,
    })
}

/// What a restart may skip and what it must hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Pieces the resume file vouches for: not hashed.
    pub trusted: Bitfield,
    /// Pieces to hash: in files changed since the save (see the module
    /// notes); none of them is in `trusted`.
    pub recheck: Bitfield,
    /// Why anything is rechecked: the first file changed by someone else
    /// (`Distrust::FileChanged`), else `Distrust::UncleanStop`.
    pub why: Option<Distrust>,
}

impl Resumed {
    /// `recheck` as runs of consecutive pieces (what the hashing reads).
    pub fn recheck_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        for i in self.recheck.ones() {
            match runs.last_mut() {
                Some(r) if r.end == i => r.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
        runs
    }
}

/// Why the resume file was not trusted (each says so in a log line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    #[error("no resume file")]
    Absent,
    #[error("--recheck given")]
    Forced,
    #[error("the resume file {path} cannot be read: {error}")]
    Unreadable { path: String, error: String },
    #[error("the resume file {path} is damaged ({error}); ignoring it")]
    Garbled { path: String, error: String },
    #[error("the resume file is for another torrent or layout")]
    OtherTorrent,
    #[error("{path} changed since the resume file was written ({what})")]
    FileChanged { path: String, what: String },
    /// Not a refusal: the last run stopped without its exit save, and the
    /// pieces it may have written since its last save are hashed.
    #[error("the last run stopped uncleanly")]
    UncleanStop,
}

impl Distrust {
    /// A short word for the `listening` event's `resume_reason`.
    pub fn code(&self) -> &'static str {
        match self {
            Distrust::Absent => "absent",
            Distrust::Forced => "forced",
            Distrust::Unreadable { .. } => "unreadable",
            Distrust::Garbled { .. } => "garbled",
            Distrust::OtherTorrent => "other_torrent",
            Distrust::FileChanged { .. } => "file_changed",
            Distrust::UncleanStop => "unclean_stop",
        }
    }

    /// Worth a warning (the file is there but broken), not just a note.
    pub fn is_warning(&self) -> bool {
        matches!(self, Distrust::Unreadable { .. } | Distrust::Garbled { .. })
    }
}

/// The resume file of one torrent in one output folder.
#[derive(Debug, Clone)]
pub struct ResumeFile {
    path: PathBuf,
    tmp: PathBuf,
    info_hash: [u8; 20],
    pieces: usize,
    /// The torrent's files on disk (pad files left out), in order.
    files: Vec<PathBuf>,
    /// Where each of those lies in the torrent's byte stream: offset, length.
    spans: Vec<(u64, u64)>,
    piece_length: u64,
    total_length: u64,
    /// The largest file `load` reads (anything longer is not ours).
    max_len: u64,
}

impl ResumeFile {
    /// The resume file for `info` under `root`; `None` when the torrent's
    /// own name is the resume file's name (then there is none).
    pub fn for_torrent(info: &Info, info_hash: [u8; 20], root: &Path) -> Option<ResumeFile> {
        let name = format!(".{}.bt-resume", crate::hex::encode(&info_hash));
        let tmp_name = format!("{name}.tmp");
        let collides = info.files.iter().any(|f| {
            f.components
                .first()
                .is_some_and(|c| c == name.as_bytes() || c == tmp_name.as_bytes())
        });
        if collides {
            return None;
        }
        let files: Vec<PathBuf> = info.user_files().map(|(_, f)| f.path_under(root)).collect();
        let spans = info
            .user_files()
            .map(|(_, f)| (f.offset, f.length))
            .collect();
        // Per file at most ~60 bytes (two 20-digit integers and the keys).
        let max_len = 256 + info.piece_count().div_ceil(8) as u64 + 64 * files.len() as u64;
        Some(ResumeFile {
            path: root.join(&name),
            tmp: root.join(tmp_name),
            info_hash,
            pieces: info.piece_count(),
            files,
            spans,
            piece_length: info.piece_length,
            total_length: info.total_length,
            max_len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sizes and mtimes of the files now.
    pub fn stamps(&self) -> Vec<FileStamp> {
        self.files
            .iter()
            .map(|p| match std::fs::symlink_metadata(p) {
                Ok(m) => FileStamp {
                    length: Some(m.len()),
                    mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
                },
                Err(_) => FileStamp {
                    length: None,
                    mtime_ns: 0,
                },
            })
            .collect()
    }

    /// The pieces of `have` that the files, as `stamps` describe them,
    /// can hold, and the first one they cannot (with its file's index): a
    /// file absent or shorter than the piece's part of it.
    fn backed(&self, have: &Bitfield, stamps: &[FileStamp]) -> (Bitfield, Option<(usize, usize)>) {
        let mut kept = Bitfield::new(have.len());
        let mut first_bad = None;
        // Pieces and files both in stream order: one sweep.
        let mut f = 0;
        for piece in have.ones() {
            let start = piece as u64 * self.piece_length;
            let end = (start + self.piece_length).min(self.total_length);
            while f < self.spans.len() && self.spans[f].0 + self.spans[f].1 <= start {
                f += 1;
            }
            let mut g = f;
            let mut bad = None;
            while g < self.spans.len() && self.spans[g].0 < end {
                let (offset, length) = self.spans[g];
                let need = end.min(offset + length).saturating_sub(offset);
                if need > 0 && stamps[g].length.is_none_or(|l| l < need) {
                    bad = Some(g);
                    break;
                }
                g += 1;
            }
            match bad {
                None => {
                    kept.set(piece);
                }
                Some(g) => {
                    first_bad.get_or_insert((piece, g));
                }
            }
        }
        (kept, first_bad)
    }

    /// The pieces the resume file vouches for and those to hash (see the
    /// module notes), when it exists, is for this torrent and is sound;
    /// else why not.
    pub fn load(&self) -> Result<Resumed, Distrust> {
        let shown = self.path.display().to_string();
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Distrust::Absent),
            Err(e) => {
                return Err(Distrust::Unreadable {
                    path: shown,
                    error: e.to_string(),
                })
            }
        };
        let mut bytes = Vec::new();
        if let Err(e) = file.take(self.max_len + 1).read_to_end(&mut bytes) {
            return Err(Distrust::Unreadable {
                path: shown,
                error: e.to_string(),
            });
        }
        if bytes.len() as u64 > self.max_len {
            return Err(Distrust::Garbled {
                path: shown,
                error: format!("longer than {} bytes", self.max_len),
            });
        }
        let state = decode(&bytes).map_err(|error| Distrust::Garbled {
            path: shown.clone(),
            error,
        })?;
        if state.info_hash != self.info_hash
            || state.have.len() != self.pieces
            || state.files.len() != self.files.len()
        {
            return Err(Distrust::OtherTorrent);
        }
        if let (_, Some((piece, f))) = self.backed(&state.have, &state.files) {
            return Err(Distrust::Garbled {
                path: shown,
                error: format!(
                    "piece {piece} claimed but {} is absent or too short",
                    self.files[f].display()
                ),
            });
        }
        let window_end = state
            .saved_ns
            .saturating_add(OUR_WRITES_WITHIN.as_nanos() as i64);
        let mut ours = vec![false; self.files.len()];
        let mut foreign = vec![false; self.files.len()];
        let mut first_foreign = None;
        for (f, (then, now)) in state.files.iter().zip(self.stamps()).enumerate() {
            if *then == now {
                continue;
            }
            let grew_or_kept = match (then.length, now.length) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b >= a,
            };
            let in_window = now.mtime_ns >= then.mtime_ns && now.mtime_ns <= window_end;
            if !state.clean && state.saved_ns > 0 && grew_or_kept && in_window {
                ours[f] = true;
                continue;
            }
            foreign[f] = true;
            if first_foreign.is_none() {
                let show =
                    |l: Option<u64>| l.map_or("absent".to_string(), |l| format!("{l} bytes"));
                let what = if then.length != now.length {
                    format!("{} then, {} now", show(then.length), show(now.length))
                } else if state.clean {
                    "modified after the last run ended".to_string()
                } else {
                    "modified, not only by the last run".to_string()
                };
                first_foreign = Some(Distrust::FileChanged {
                    path: self.files[f].display().to_string(),
                    what,
                });
            }
        }
        let mut trusted = Bitfield::new(self.pieces);
        let mut recheck = Bitfield::new(self.pieces);
        for piece in 0..self.pieces {
            let (touches_ours, touches_foreign) = self
                .files_of(piece)
                .fold((false, false), |(o, x), f| (o || ours[f], x || foreign[f]));
            let had = state.have.get(piece);
            if touches_foreign || (touches_ours && !had) {
                recheck.set(piece);
            } else if had {
                trusted.set(piece);
            }
        }
        let why = if first_foreign.is_some() {
            first_foreign
        } else if recheck.count() > 0 {
            Some(Distrust::UncleanStop)
        } else {
            None
        };
        Ok(Resumed {
            trusted,
            recheck,
            why,
        })
    }

    /// The files (by index into `files`) holding bytes of `piece`.
    fn files_of(&self, piece: usize) -> impl Iterator<Item = usize> + '_ {
        let start = piece as u64 * self.piece_length;
        let end = (start + self.piece_length).min(self.total_length);
        // Spans are in stream order: the first one ending after `start`.
        let first = self.spans.partition_point(|&(o, l)| o + l <= start);
        self.spans[first..]
            .iter()
            .take_while(move |&&(o, _)| o < end)
            .enumerate()
            .filter(|(_, &(_, l))| l > 0)
            .map(move |(i, _)| first + i)
    }

    /// Writes the resume file for `have` (pieces whose writes completed)
    /// with the files' sizes and mtimes as of now.
    ///
    /// Atomic against `kill -9`: written to the temporary name, then
    /// renamed over the old one, so a reader sees the old file or the new
    /// one whole (a killed process's writes stay in the page cache, so no
    /// fsync is needed for that). Against power loss `durable` adds what
    /// it takes: the data files and the temporary file are flushed before
    /// the rename, the folder after it. Without `durable` (the periodic
    /// saves), a power cut may leave a resume file claiming pieces whose
    /// data never reached the disk: after a crash of the machine run with
    /// `--recheck`. A torn or empty resume file is refused by `decode`.
    ///
    /// `durable` is also the exit save's mark: `clean`, no write of ours
    /// follows it.
    pub fn save(&self, have: &Bitfield, durable: bool) -> io::Result<()> {
        if durable {
            for p in &self.files {
                // fsync on a read-only descriptor flushes the inode's data.
                if let Ok(f) = File::open(p) {
                    f.sync_data()?;
                }
            }
        }
        let files = self.stamps();
        let saved_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        // A file deleted or cut short under us (bt-fetch stops then) takes
        // its pieces with it: claim only what the files can hold.
        let (have, _) = self.backed(have, &files);
        let state = State {
            info_hash: self.info_hash,
            have,
            files,
            saved_ns,
            clean: durable,
        };
        let bytes = encode(&state);
        match std::fs::remove_file(&self.tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&self.tmp)?;
        f.write_all(&bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&self.tmp, &self.path)?;
        if durable {
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    fn info_of(files: &[(&str, u64)], piece_length: u64) -> Info {
        let total: u64 = files.iter().map(|f| f.1).sum();
        let pieces = total.div_ceil(piece_length) as usize;
        let mut t = b"d4:infod5:filesl".to_vec();
        for (name, len) in files {
            t.extend_from_slice(
                format!("d6:lengthi{len}e4:pathl{}:{name}ee", name.len()).as_bytes(),
            );
        }
        t.extend_from_slice(b"e4:name3:top12:piece lengthi");
        t.extend_from_slice(piece_length.to_string().as_bytes());
        t.extend_from_slice(format!("e6:pieces{}:", pieces * 20).as_bytes());
        t.extend(std::iter::repeat_n(7u8, pieces * 20));
        t.extend_from_slice(b"ee");
        Metainfo::from_bytes(&t).expect("test torrent").info
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bt-resume-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("top")).unwrap();
        d
    }

    fn some_state() -> State {
        let mut have = Bitfield::new(11);
        have.set(0);
        have.set(10);
        State {
            info_hash: [3; 20],
            have,
            files: vec![
                FileStamp {
                    length: Some(5),
                    mtime_ns: 1_700_000_000_123_456_789,
                },
                FileStamp {
                    length: None,
                    mtime_ns: 0,
                },
            ],
            saved_ns: 1_700_000_001_000_000_000,
            clean: false,
        }
    }

    /// What `load` trusts when it rechecks nothing, else why it would.
    fn trusted_only(rf: &ResumeFile) -> Result<Bitfield, Distrust> {
        let r = rf.load()?;
        match r.why {
            None => Ok(r.trusted),
            Some(why) => Err(why),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = some_state();
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn truncated_or_garbage_files_are_refused() {
        let bytes = encode(&some_state());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        }
        for garbage in [&b""[..], b"\0\0\0", b"de", b"li1ee", b"d7:versioni2ee"] {
            assert!(decode(garbage).is_err());
        }
        // Spare bits set; a bitmap of the wrong length.
        let doc = |pieces: &str, have: &[u8]| {
            let mut d = format!("d5:filesle4:have{}:", have.len()).into_bytes();
            d.extend_from_slice(have);
            d.extend_from_slice(b"9:info-hash20:aaaaaaaaaaaaaaaaaaaa6:piecesi");
            d.extend_from_slice(pieces.as_bytes());
            d.extend_from_slice(b"e7:versioni1ee");
            d
        };
        assert!(decode(&doc("9", &[0xff, 0x80])).is_ok());
        assert!(decode(&doc("9", &[0xff, 0xc0])).is_err());
        assert!(decode(&doc("9", &[0xff])).is_err());
        assert!(decode(&doc("-1", &[])).is_err());
        let huge = b"d5:files le4:have0:9:info-hash20:aaaaaaaaaaaaaaaaaaaa6:piecesi99999999999e7:versioni1ee";
        assert!(decode(huge).is_err());
    }

    #[test]
    fn trusted_only_while_sizes_and_mtimes_match() {
        let dir = tempdir("match");
        let info = info_of(&[("a", 100), ("b", 50)], 32);
        let rf = ResumeFile::for_torrent(&info, [9; 20], &dir).unwrap();
        assert_eq!(rf.load(), Err(Distrust::Absent));
        std::fs::write(dir.join("top/a"), [1u8; 100]).unwrap();
        let mut have = Bitfield::new(info.piece_count());
        have.set(1);
        rf.save(&have, true).unwrap();
        assert_eq!(trusted_only(&rf), Ok(have.clone()));
        assert!(!dir
            .join(format!(".{}.bt-resume.tmp", "09".repeat(20)))
            .exists());

        // b appears after a clean exit: its size changed from absent.
        std::fs::write(dir.join("top/b"), [2u8; 50]).unwrap();
        assert!(matches!(
            trusted_only(&rf),
            Err(Distrust::FileChanged { .. })
        ));
        rf.save(&have, true).unwrap();
        assert_eq!(trusted_only(&rf), Ok(have.clone()));

        // Same size, new mtime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("top/a"), [3u8; 100]).unwrap();
        let e = trusted_only(&rf).unwrap_err();
        assert!(
            matches!(&e, Distrust::FileChanged { what, .. } if what.starts_with("modified")),
            "{e}"
        );

        // Another torrent's resume file in its place.
        rf.save(&have, false).unwrap();
        let other = ResumeFile::for_torrent(&info_of(&[("a", 100)], 32), [9; 20], &dir).unwrap();
        assert_eq!(other.load(), Err(Distrust::OtherTorrent));

        // Garbage: a warning, not a panic.
        std::fs::write(rf.path(), b"d7:versioni1e4:haveXX").unwrap();
        let e = rf.load().unwrap_err();
        assert!(e.is_warning(), "{e}");
        std::fs::write(rf.path(), vec![b'9'; 1 << 16]).unwrap();
        assert!(matches!(rf.load(), Err(Distrust::Garbled { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn after_an_unclean_stop_only_what_may_have_been_written_since_is_rechecked() {
        let dir = tempdir("unclean");
        // Pieces of 32 bytes: a = 0..100 (pieces 0-3), b = 100..150 (3-4).
        let info = info_of(&[("a", 100), ("b", 50)], 32);
        let rf = ResumeFile::for_torrent(&info, [6; 20], &dir).unwrap();
        let (a, b) = (dir.join("top/a"), dir.join("top/b"));
        std::fs::write(&a, [1u8; 100]).unwrap();
        std::fs::write(&b, [1u8; 50]).unwrap();
        let mut have = Bitfield::new(info.piece_count());
        have.set(0);
        have.set(1);
        let pieces = |bits: &Bitfield| bits.ones().collect::<Vec<_>>();

        // A periodic save, then our own write to a (its mtime moves within
        // the window): a's pieces in `have` stay trusted, a's others and
        // piece 3 (shared with b) are hashed, b's own piece is not.
        rf.save(&have, false).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&a, [2u8; 100]).unwrap();
        let r = rf.load().unwrap();
        assert_eq!(pieces(&r.trusted), [0, 1]);
        assert_eq!(pieces(&r.recheck), [2, 3]);
        assert_eq!(r.why, Some(Distrust::UncleanStop));
        assert_eq!(r.recheck_ranges(), vec![2..4]);

        // Changed later than our writes can land: someone else's; every
        // piece of a is hashed, none trusted.
        let later = SystemTime::now() + OUR_WRITES_WITHIN + Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let r = rf.load().unwrap();
        assert_eq!(pieces(&r.trusted), Vec::<usize>::new());
        assert_eq!(pieces(&r.recheck), [0, 1, 2, 3]);
        assert!(matches!(r.why, Some(Distrust::FileChanged { .. })), "{r:?}");

        // Shrunk: not ours either (we never cut a file).
        rf.save(&have, false).unwrap();
        std::fs::write(&a, [2u8; 90]).unwrap();
        let r = rf.load().unwrap();
        assert_eq!(pieces(&r.recheck), [0, 1, 2, 3]);
        assert!(matches!(r.why, Some(Distrust::FileChanged { .. })), "{r:?}");

        // A resume file of an earlier build (no `saved`, no `clean`): the
        // strict rule.
        std::fs::write(&a, [2u8; 100]).unwrap();
        rf.save(&have, false).unwrap();
        let mut old = decode(&std::fs::read(rf.path()).unwrap()).unwrap();
        old.saved_ns = 0;
        std::fs::write(rf.path(), encode(&old)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&a, [3u8; 100]).unwrap();
        assert_eq!(pieces(&rf.load().unwrap().trusted), Vec::<usize>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_files_without_saved_and_clean_still_decode_as_clean() {
        let mut bytes = encode(&some_state());
        let text = String::from_utf8_lossy(&bytes).to_string();
        let cut = text.find("5:cleani0e").unwrap();
        bytes.drain(cut..cut + "5:cleani0e".len());
        let state = decode(&bytes).unwrap();
        assert!(state.clean);
        for bad in ["5:cleani2e", "5:clean1:x"] {
            let mut b = encode(&some_state());
            let t = String::from_utf8_lossy(&b).to_string();
            let at = t.find("5:cleani0e").unwrap();
            b.splice(at..at + "5:cleani0e".len(), bad.bytes());
            assert!(decode(&b).is_err(), "{bad}");
        }
    }

    #[test]
    fn pieces_of_a_deleted_or_short_file_are_never_claimed() {
        let dir = tempdir("deleted");
        // Pieces of 32 bytes: a = 0..100 (pieces 0-3), b = 100..150 (3-4).
        let info = info_of(&[("a", 100), ("b", 50)], 32);
        let rf = ResumeFile::for_torrent(&info, [5; 20], &dir).unwrap();
        std::fs::write(dir.join("top/a"), [1u8; 100]).unwrap();
        std::fs::write(dir.join("top/b"), [1u8; 20]).unwrap();
        let full = Bitfield::full(info.piece_count());
        rf.save(&full, false).unwrap();
        // b holds 20 bytes: piece 3 (96..128) needs 28 of it, piece 4 all 50.
        let have = trusted_only(&rf).unwrap();
        assert_eq!(have.ones().collect::<Vec<_>>(), vec![0, 1, 2]);
        // Deleted: a resume file that claims it anyway is refused.
        std::fs::remove_file(dir.join("top/a")).unwrap();
        rf.save(&full, false).unwrap();
        assert_eq!(trusted_only(&rf), Ok(Bitfield::new(info.piece_count())));
        let mut lying = decode(&std::fs::read(rf.path()).unwrap()).unwrap();
        lying.have = full.clone();
        std::fs::write(rf.path(), encode(&lying)).unwrap();
        assert!(matches!(rf.load(), Err(Distrust::Garbled { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_in_its_place_is_replaced_not_followed() {
        let dir = tempdir("link");
        let info = info_of(&[("a", 10)], 32);
        let rf = ResumeFile::for_torrent(&info, [1; 20], &dir).unwrap();
        let outside = dir.join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, rf.path()).unwrap();
        std::os::unix::fs::symlink(&outside, &rf.tmp).unwrap();
        assert!(matches!(rf.load(), Err(Distrust::Unreadable { .. })));
        rf.save(&Bitfield::new(1), false).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(trusted_only(&rf), Ok(Bitfield::new(1)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_resume_file_when_the_torrent_has_its_name() {
        let hash = [0xab; 20];
        let name = format!(".{}.bt-resume", "ab".repeat(20));
        let t = format!(
            "d4:infod6:lengthi5e4:name{}:{name}12:piece lengthi16384e6:pieces20:{}ee",
            name.len(),
            "x".repeat(20)
        );
        let info = Metainfo::from_bytes(t.as_bytes()).unwrap().info;
        assert!(ResumeFile::for_torrent(&info, hash, Path::new("/tmp")).is_none());
        assert!(ResumeFile::for_torrent(&info, [0xac; 20], Path::new("/tmp")).is_some());
    }
}

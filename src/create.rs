//! Creating torrents from a file or a folder.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use crate::bencode::OwnedValue;
use crate::hashing::{self, PieceRead, PieceSource};
use crate::metainfo::{FileEntry, MAX_PIECE_LENGTH};

pub const MIN_AUTO_PIECE_LENGTH: u64 = 16 << 10;
pub const MAX_AUTO_PIECE_LENGTH: u64 = 16 << 20;
/// The automatic piece length aims for at most this many pieces.
pub const AUTO_TARGET_PIECES: u64 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: changed while it was being hashed (it is shorter than when listed)")]
    Changed(PathBuf),
    #[error("{0}: nothing to put in a torrent (an empty folder)")]
    Empty(PathBuf),
    #[error("{path}: {problem}")]
    BadName { path: PathBuf, problem: String },
    #[error("piece length {0} is not allowed: it must be between 1 and {MAX_PIECE_LENGTH} bytes")]
    BadPieceLength(u64),
    #[error("{0}: not a regular file or a folder (a FIFO, socket or device cannot be shared)")]
    NotAFile(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to put into a new torrent besides the data.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Tracker URLs in tiers; the first URL also becomes `announce`.
    pub trackers: Vec<Vec<String>>,
    pub piece_length: Option<u64>,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the epoch; `None` leaves the date out (reproducible output).
    pub creation_date: Option<i64>,
    pub url_list: Vec<String>,
    /// Overrides the torrent's name (default: the file or folder name).
    pub name: Option<String>,
    pub threads: usize,
    /// `info.source` (private trackers ask for a tag; it changes the
    /// info-hash, so that a cross-seeded torrent is a different swarm).
    pub source: Option<String>,
    pub filter: FileFilter,
}

/// Which files of a folder go into a torrent.
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    /// Glob patterns (see `cli::glob`) of files and folders to leave out.
    pub exclude: Vec<String>,
    /// Keep files and folders whose name starts with `.` (left out by
    /// default, as imdl does: they are mostly editor and VCS state).
    pub include_hidden: bool,
}

impl FileFilter {
    /// Whether the entry at `components` (under the root) is left out.
    fn skips(&self, components: &[Vec<u8>]) -> bool {
        let under_root: Vec<String> = components[1..]
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let hidden =
            !self.include_hidden && under_root.last().is_some_and(|name| name.starts_with('.'));
        hidden || crate::cli::glob::excluded(&self.exclude, &under_root)
    }
}

/// The piece length chosen for `total` bytes: the smallest power of two that
/// gives at most [`AUTO_TARGET_PIECES`] pieces, kept within 16 KiB–16 MiB.
pub fn auto_piece_length(total: u64) -> u64 {
    let wanted = total.div_ceil(AUTO_TARGET_PIECES).max(1);
    wanted
        .next_power_of_two()
        .clamp(MIN_AUTO_PIECE_LENGTH, MAX_AUTO_PIECE_LENGTH)
}

/// Lists the files of `path` (a file, or a folder walked recursively) as
/// torrent entries. Folders are listed in byte order of their names, so the
/// same tree always gives the same torrent. Symbolic links are followed.
/// `filter` leaves out entries of a folder (never `path` itself).
pub fn list_files(
    path: &Path,
    filter: &FileFilter,
) -> Result<(Vec<u8>, Vec<FileEntry>, bool), CreateError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .ok_or_else(|| CreateError::BadName {
            path: path.to_path_buf(),
            problem: "has no file name (give the path of a file or folder, not '/' or '..')".into(),
        })?;
    if meta.is_file() {
        let file = FileEntry {
            components: vec![name.clone()],
            length: meta.len(),
            offset: 0,
            pad: false,
            executable: meta.permissions().mode() & 0o111 != 0,
        };
        return Ok((name, vec![file], false));
    }
    if !meta.is_dir() {
        return Err(CreateError::NotAFile(path.to_path_buf()));
    }
    let mut files = Vec::new();
    walk(path, &mut vec![name.clone()], &mut files, filter, 0)?;
    if files.is_empty() {
        return Err(CreateError::Empty(path.to_path_buf()));
    }
    let mut offset = 0;
    for f in &mut files {
        f.offset = offset;
        offset += f.length;
    }
    Ok((name, files, true))
}

/// Deep enough for any real tree; stops a symlink loop.
const MAX_WALK_DEPTH: usize = 64;

fn walk(
    dir: &Path,
    components: &mut Vec<Vec<u8>>,
    out: &mut Vec<FileEntry>,
    filter: &FileFilter,
    depth: usize,
) -> Result<(), CreateError> {
    if depth > MAX_WALK_DEPTH {
        return Err(CreateError::BadName {
            path: dir.to_path_buf(),
            problem: format!("folders nested deeper than {MAX_WALK_DEPTH} (a symbolic link loop?)"),
        });
    }
    let mut entries: Vec<(Vec<u8>, PathBuf)> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| {
            let e = e.map_err(io_err(dir))?;
            Ok((e.file_name().as_bytes().to_vec(), e.path()))
        })
        .collect::<Result<_, CreateError>>()?;
    entries.sort();
    for (name, path) in entries {
        components.push(name);
        if filter.skips(components) {
            log::debug!("{}: excluded", path.display());
            components.pop();
            continue;
        }
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            walk(&path, components, out, filter, depth + 1)?;
        } else if meta.is_file() {
            out.push(FileEntry {
                components: components.clone(),
                length: meta.len(),
                offset: 0,
                pad: false,
                executable: meta.permissions().mode() & 0o111 != 0,
            });
        } else {
            log::warn!(
                "{}: not a regular file (a FIFO, socket or device); left out",
                path.display()
            );
        }
        components.pop();
    }
    Ok(())
}

/// Builds the bencoded torrent for `path`. `progress` counts bytes hashed.
pub fn create_torrent(
    path: &Path,
    options: &CreateOptions,
    progress: &AtomicU64,
) -> Result<Vec<u8>, CreateError> {
    let (mut name, files, multi_file) = list_files(path, &options.filter)?;
    if let Some(n) = &options.name {
        name = n.as_bytes().to_vec();
    }
    let total: u64 = files.iter().map(|f| f.length).sum();
    let piece_length = options
        .piece_length
        .unwrap_or_else(|| auto_piece_length(total));
    if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
        return Err(CreateError::BadPieceLength(piece_length));
    }
    // Files are read from where they are, whatever the torrent's name.
    let root = path.parent().unwrap_or(Path::new("."));
    let source = PieceSource {
        root,
        files: &files,
        piece_length,
        total_length: total,
    };
    let mut pieces = vec![[0u8; 20]; source.piece_count()];
    let mut short = None;
    hashing::hash_pieces(
        &source,
        options.threads.max(1),
        progress,
        |i, read| match read {
            PieceRead::Hashed(h) | PieceRead::Zeros(h) => pieces[i] = h,
            PieceRead::Missing => {
                short.get_or_insert(i);
            }
        },
    )
    .map_err(|e| CreateError::Io {
        path: e.path,
        source: e.source,
    })?;
    if let Some(piece) = short {
        let slice = files
            .iter()
            .find(|f| f.offset + f.length > piece as u64 * piece_length)
            .map_or_else(|| path.to_path_buf(), |f| f.path_under(root));
        return Err(CreateError::Changed(slice));
    }

    let mut info = OwnedValue::dict();
    info.insert("name", name.clone());
    info.insert("piece length", piece_length as i64);
    info.insert("pieces", pieces.concat());
    if options.private {
        info.insert("private", 1);
    }
    if let Some(tag) = &options.source {
        info.insert("source", tag.as_str());
    }
    if multi_file {
        let list = files
            .iter()
            .map(|f| {
                let mut d = OwnedValue::dict();
                d.insert("length", f.length as i64);
                d.insert(
                    "path",
                    f.components[1..]
                        .iter()
                        .map(|c| OwnedValue::from(c.clone()))
                        .collect::<Vec<_>>(),
                );
                d
            })
            .collect::<Vec<_>>();
        info.insert("files", list);
    } else {
        info.insert("length", total as i64);
    }

    let mut torrent = OwnedValue::dict();
    if let Some(first) = options.trackers.iter().flatten().next() {
        torrent.insert("announce", first.as_str());
    }
    // A single tracker needs no list; several (or several tiers) do.
    let tracker_count: usize = options.trackers.iter().map(Vec::len).sum();
    if tracker_count > 1 {
        let tiers = options
            .trackers
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| OwnedValue::List(t.iter().map(|u| OwnedValue::from(u.as_str())).collect()))
            .collect::<Vec<_>>();
        torrent.insert("announce-list", tiers);
    }
    if let Some(c) = &options.comment {
        torrent.insert("comment", c.as_str());
    }
    if let Some(c) = &options.created_by {
        torrent.insert("created by", c.as_str());
    }
    if let Some(d) = options.creation_date {
        torrent.insert("creation date", d);
    }
    match options.url_list.len() {
        0 => {}
        1 => {
            torrent.insert("url-list", options.url_list[0].as_str());
        }
        _ => {
            torrent.insert(
                "url-list",
                options
                    .url_list
                    .iter()
                    .map(|u| OwnedValue::from(u.as_str()))
                    .collect::<Vec<_>>(),
            );
        }
    }
    torrent.insert("info", info);
    Ok(torrent.encode())
}

#[cfg(test)]
mod tests {
    use super::auto_piece_length;

    #[test]
    fn auto_piece_length_rule() {
        assert_eq!(auto_piece_length(0), 16 << 10);
        assert_eq!(auto_piece_length(1 << 20), 16 << 10);
        assert_eq!(auto_piece_length(1 << 30), 512 << 10);
        assert_eq!(auto_piece_length((1 << 30) + 1), 1 << 20);
        assert_eq!(auto_piece_length(1 << 40), 16 << 20);
    }
}

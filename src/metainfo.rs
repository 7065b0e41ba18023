//! Torrent metainfo files (BEP 3), with announce-list (BEP 12), url-list
//! (BEP 19), pad files (BEP 47) and hybrid v1/v2 torrents read through their
//! v1 part (BEP 52).
//!
//! Everything a torrent says is validated before it is believed: the piece
//! table must match the total length, lengths must be sane, and every path
//! component must stay inside the download folder. Invalid torrents are
//! refused with an error naming the field and its byte offset; nothing is
//! silently rewritten.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::bencode::{self, Decoder, Irregularity, Value};
use crate::sha1;

/// Size of one SHA-1 piece hash in `pieces`.
pub const HASH_LEN: usize = 20;

/// Largest piece length accepted: the wire protocol addresses bytes inside a
/// piece with 32-bit offsets, and no real torrent comes near this.
pub const MAX_PIECE_LENGTH: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    #[error(transparent)]
    Bencode(#[from] bencode::DecodeError),
    #[error("{field}: {problem} (at byte offset {offset})")]
    Invalid {
        field: String,
        problem: String,
        offset: usize,
    },
    #[error("{field}: missing (in the dictionary at byte offset {offset})")]
    Missing { field: String, offset: usize },
    #[error("v2-only torrents are not supported (the info dictionary at byte offset {offset} has meta version 2 and no v1 'pieces')")]
    V2Only { offset: usize },
    #[error("not canonical bencode: {0}")]
    Strict(Irregularity),
}

fn invalid(field: impl Into<String>, problem: impl Into<String>, at: &Value) -> MetainfoError {
    MetainfoError::Invalid {
        field: field.into(),
        problem: problem.into(),
        offset: at.offset(),
    }
}

/// One file of a torrent, as laid out in the concatenated byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components as raw bytes, the first being the torrent's name for
    /// multi-file torrents (on Unix a file name is bytes, not text).
    pub components: Vec<Vec<u8>>,
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 padding file: part of the piece layout, never stored on disk.
    pub pad: bool,
    pub executable: bool,
}

impl FileEntry {
    /// Path components as text (invalid UTF-8 replaced), for display and JSON.
    pub fn display_components(&self) -> Vec<String> {
        self.components
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    /// The path relative to the download folder, joined with '/'.
    pub fn display_path(&self) -> String {
        self.display_components().join("/")
    }

    /// The path of this file under `root`. Components were validated at
    /// parse time, so the result always lies inside `root`.
    pub fn path_under(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        for c in &self.components {
            path.push(OsStr::from_bytes(c));
        }
        path
    }
}

/// The `info` dictionary: what the info-hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: Vec<u8>,
    pub piece_length: u64,
    pub pieces: Vec<[u8; HASH_LEN]>,
    /// Every file including pad files, in torrent order.
    pub files: Vec<FileEntry>,
    pub total_length: u64,
    pub private: bool,
    /// True when the torrent had a `files` list (even of one file).
    pub multi_file: bool,
    /// True for a hybrid v1/v2 torrent (meta version 2 beside v1 pieces).
    pub hybrid: bool,
    /// True when the torrent had no name and [`Info::name`] is a stand-in.
    pub name_missing: bool,
}

/// The slices of `files` (laid out back to back, sorted by offset) that hold
/// the bytes `[start, start+len)` of the byte stream, in order; offsets in
/// the slices are relative to `start`. Zero-length files never appear.
/// The one place that maps stream offsets to files: hashing, checking and
/// the disk threads all go through it.
pub fn file_slices(
    files: &[FileEntry],
    start: u64,
    len: u64,
) -> impl Iterator<Item = FileSlice> + '_ {
    let total = files.last().map_or(0, |f| f.offset + f.length);
    let end = start.saturating_add(len).min(total);
    // Files are sorted by offset: start at the first that ends after `start`.
    let first = files.partition_point(|f| f.offset + f.length <= start);
    files
        .iter()
        .enumerate()
        .skip(first)
        .take_while(move |(_, f)| f.offset < end)
        .filter(|(_, f)| f.length > 0)
        .map(move |(i, f)| {
            let s = start.max(f.offset);
            let e = end.min(f.offset + f.length);
            FileSlice {
                file: i,
                file_offset: s - f.offset,
                piece_offset: s - start,
                length: e - s,
            }
        })
}

/// Length of piece `index` when `total` bytes are cut into pieces of
/// `piece_length` (the last may be shorter; past the end, 0).
pub fn piece_size(piece_length: u64, total: u64, index: usize) -> u64 {
    let start = (index as u64).saturating_mul(piece_length);
    piece_length.min(total.saturating_sub(start))
}

/// A part of one file that holds some bytes of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSlice {
    /// Index into [`Info::files`].
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Offset inside the piece.
    pub piece_offset: u64,
    pub length: u64,
}

impl Info {
    /// Replaces a missing name (say, by the torrent file's own name); refuses
    /// a name that is not a safe path component.
    pub fn set_fallback_name(&mut self, name: &[u8]) -> bool {
        if !self.name_missing || !is_safe_component(name) {
            return false;
        }
        for f in &mut self.files {
            f.components[0] = name.to_vec();
        }
        self.name = name.to_vec();
        true
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Length of piece `index` (the last one may be shorter).
    pub fn piece_size(&self, index: usize) -> u64 {
        piece_size(self.piece_length, self.total_length, index)
    }

    /// Files that a user sees: everything but pad files.
    pub fn user_files(&self) -> impl Iterator<Item = (usize, &FileEntry)> {
        self.files.iter().enumerate().filter(|(_, f)| !f.pad)
    }

    /// The file slices holding the bytes `[start, start+len)` of the torrent's
    /// byte stream, in order (zero-length files never appear).
    pub fn slices(&self, start: u64, len: u64) -> Vec<FileSlice> {
        file_slices(&self.files, start, len).collect()
    }

    /// The file slices of piece `index`.
    pub fn piece_slices(&self, index: usize) -> Vec<FileSlice> {
        self.slices(index as u64 * self.piece_length, self.piece_size(index))
    }

    /// The range of pieces that hold bytes of file `file`.
    pub fn file_pieces(&self, file: usize) -> std::ops::Range<usize> {
        let f = &self.files[file];
        if f.length == 0 || self.piece_length == 0 {
            return 0..0;
        }
        let first = f.offset / self.piece_length;
        let last = (f.offset + f.length - 1) / self.piece_length;
        first as usize..last as usize + 1
    }
}

/// A parsed torrent file.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub info: Info,
    pub info_hash: [u8; 20],
    /// The info dictionary's bytes exactly as in the file (what the
    /// info-hash is taken over, and what `ut_metadata` serves).
    pub info_bytes: Vec<u8>,
    /// Tracker URLs in tiers (BEP 12); a lone `announce` becomes one tier.
    pub trackers: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    pub encoding: Option<String>,
    pub url_list: Vec<String>,
    /// Things read leniently that a strict reader would refuse.
    pub warnings: Vec<String>,
    /// Non-canonical bencode found while reading.
    pub irregularities: Vec<Irregularity>,
}

impl Metainfo {
    /// Parses a torrent, accepting non-canonical key order and bytes after
    /// the top-level dictionary (a newline, say; ignored with a warning, as
    /// Transmission and aria2 do) as found in the wild.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        Metainfo::parse(bytes, true)
    }

    fn parse(bytes: &[u8], allow_trailing: bool) -> Result<Metainfo, MetainfoError> {
        let doc = Decoder::new()
            .allow_trailing(allow_trailing)
            .decode(bytes)?;
        let root = &doc.root;
        if root.as_dict().is_none() {
            return Err(invalid(
                "torrent",
                format!("expected a dictionary, found a {}", root.type_name()),
                root,
            ));
        }
        let info_value = root.get("info").ok_or(MetainfoError::Missing {
            field: "info".into(),
            offset: root.offset(),
        })?;
        let mut warnings = Vec::new();
        let end = root.raw().len();
        if end < bytes.len() {
            let n = bytes.len() - end;
            warnings.push(format!(
                "{n} byte{} after the torrent's top-level dictionary, from byte offset {end} (ignored)",
                if n == 1 { "" } else { "s" }
            ));
        }
        let info_hash = sha1::sha1(info_value.raw());
        let info = parse_info(info_value, &info_hash, &mut warnings)?;

        let trackers = parse_trackers(root, &mut warnings);
        let text = |key: &str, warnings: &mut Vec<String>| -> Option<String> {
            let v = root.get(key)?;
            match v.as_bytes() {
                Some(b) => Some(String::from_utf8_lossy(b).into_owned()),
                None => {
                    warnings.push(format!(
                        "{key}: expected a string, found a {} (ignored)",
                        v.type_name()
                    ));
                    None
                }
            }
        };
        let comment = text("comment", &mut warnings);
        let created_by = text("created by", &mut warnings);
        let encoding = text("encoding", &mut warnings);
        let creation_date = match root.get("creation date") {
            Some(v) => match v.as_int() {
                Some(d) => Some(creation_date_seconds(d, &mut warnings)),
                None => {
                    warnings.push(format!(
                        "creation date: expected an integer, found a {} (ignored)",
                        v.type_name()
                    ));
                    None
                }
            },
            None => None,
        };
        let url_list = match root.get("url-list") {
            None => Vec::new(),
            Some(v) => match (v.as_bytes(), v.as_list()) {
                (Some(b""), _) => Vec::new(),
                (Some(b), _) => vec![String::from_utf8_lossy(b).into_owned()],
                (None, Some(list)) => list
                    .iter()
                    .filter_map(|u| u.as_bytes())
                    .filter(|u| !u.is_empty())
                    .map(|u| String::from_utf8_lossy(u).into_owned())
                    .collect(),
                _ => {
                    warnings.push(format!(
                        "url-list: expected a string or a list, found a {} (ignored)",
                        v.type_name()
                    ));
                    Vec::new()
                }
            },
        };
        Ok(Metainfo {
            info,
            info_hash,
            info_bytes: info_value.raw().to_vec(),
            trackers,
            comment,
            created_by,
            creation_date,
            encoding,
            url_list,
            warnings,
            irregularities: doc.irregularities,
        })
    }

    /// Parses a torrent and refuses non-canonical bencode and bytes after
    /// the top-level dictionary.
    pub fn from_bytes_strict(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let meta = Metainfo::parse(bytes, false)?;
        if let Some(first) = meta.irregularities.first() {
            return Err(MetainfoError::Strict(first.clone()));
        }
        Ok(meta)
    }

    pub fn info_hash_hex(&self) -> String {
        crate::hex::encode(&self.info_hash)
    }

    /// A magnet link (BEP 9) with the name and every tracker.
    pub fn magnet(&self) -> String {
        let mut link = format!("magnet:?xt=urn:btih:{}", self.info_hash_hex());
        link.push_str("&dn=");
        link.push_str(&urlencoding::encode(&self.info.name_lossy()));
        for url in self.trackers.iter().flatten() {
            link.push_str("&tr=");
            link.push_str(&urlencoding::encode(url));
        }
        for url in &self.url_list {
            link.push_str("&ws=");
            link.push_str(&urlencoding::encode(url));
        }
        link
    }

    /// The JSON description printed by `bt-meta info` (schema in its man page).
    pub fn to_json(&self, with_pieces: bool) -> serde_json::Value {
        let info = &self.info;
        let files: Vec<serde_json::Value> = info
            .user_files()
            .map(|(_, f)| {
                serde_json::json!({
                    "path": f.display_components(),
                    "path_string": f.display_path(),
                    "length": f.length,
                    "offset": f.offset,
                })
            })
            .collect();
        let mut out = serde_json::json!({
            "info_hash": self.info_hash_hex(),
            "name": info.name_lossy(),
            "piece_length": info.piece_length,
            "piece_count": info.piece_count(),
            "total_length": info.total_length,
            "private": info.private,
            "multi_file": info.multi_file,
            "hybrid": info.hybrid,
            "files": files,
            "trackers": self.trackers,
            "comment": self.comment,
            "created_by": self.created_by,
            "creation_date": self.creation_date.map(crate::time::iso8601_utc),
            "creation_date_epoch": self.creation_date,
            "encoding": self.encoding,
            "url_list": self.url_list,
            "magnet": self.magnet(),
            "warnings": self.warnings,
        });
        if with_pieces {
            out["pieces"] = info
                .pieces
                .iter()
                .map(|h| serde_json::Value::from(crate::hex::encode(h)))
                .collect();
        }
        out
    }
}

/// The last second of year 9999: a creation date beyond it is not seconds.
const LAST_SECOND_OF_9999: i64 = 253_402_300_799;

/// Reads a creation date. Some creators store milliseconds (which read as
/// seconds put the date tens of thousands of years ahead); a date past
/// year 9999 that is plausible in milliseconds is read so, with a warning.
fn creation_date_seconds(date: i64, warnings: &mut Vec<String>) -> i64 {
    if date > LAST_SECOND_OF_9999 && date / 1000 <= LAST_SECOND_OF_9999 {
        let seconds = date / 1000;
        warnings.push(format!(
            "creation date: {date} is past year 9999 in seconds; read as milliseconds ({})",
            crate::time::iso8601_utc(seconds)
        ));
        return seconds;
    }
    date
}

fn parse_trackers(root: &Value, warnings: &mut Vec<String>) -> Vec<Vec<String>> {
    let mut tiers = Vec::new();
    if let Some(list) = root.get("announce-list") {
        match list.as_list() {
            Some(raw_tiers) => {
                for tier in raw_tiers {
                    let urls: Vec<String> = match tier.as_list() {
                        Some(urls) => urls
                            .iter()
                            .filter_map(|u| u.as_str())
                            .map(str::trim)
                            .filter(|u| !u.is_empty())
                            .map(String::from)
                            .collect(),
                        None => {
                            warnings.push(format!(
                                "announce-list: a tier at byte offset {} is a {}, not a list (ignored)",
                                tier.offset(),
                                tier.type_name()
                            ));
                            Vec::new()
                        }
                    };
                    if !urls.is_empty() {
                        tiers.push(urls);
                    }
                }
            }
            None => warnings.push(format!(
                "announce-list: expected a list, found a {} (ignored)",
                list.type_name()
            )),
        }
    }
    // BEP 12: with a usable announce-list, `announce` is ignored.
    if tiers.is_empty() {
        if let Some(url) = root.get("announce").and_then(Value::as_str) {
            let url = url.trim();
            if !url.is_empty() {
                tiers.push(vec![url.to_string()]);
            }
        }
    }
    tiers
}

fn get_required<'v, 'a>(
    dict: &'v Value<'a>,
    key: &str,
    field: &str,
) -> Result<&'v Value<'a>, MetainfoError> {
    dict.get(key).ok_or_else(|| MetainfoError::Missing {
        field: field.to_string(),
        offset: dict.offset(),
    })
}

fn get_length(dict: &Value, key: &str, field: &str) -> Result<u64, MetainfoError> {
    let v = get_required(dict, key, field)?;
    let n = v.as_int().ok_or_else(|| {
        invalid(
            field,
            format!("expected an integer, found a {}", v.type_name()),
            v,
        )
    })?;
    u64::try_from(n).map_err(|_| invalid(field, format!("negative length {n}"), v))
}

/// Prefers the `.utf-8` variant of a key when the plain one is not UTF-8.
fn text_key<'v, 'a>(dict: &'v Value<'a>, key: &str) -> Option<&'v Value<'a>> {
    let plain = dict.get(key);
    if plain.and_then(Value::as_str).is_some() {
        return plain;
    }
    dict.get(&format!("{key}.utf-8"))
        .filter(|v| v.as_str().is_some())
        .or(plain)
}

/// Checks that a path component cannot escape the download folder or name
/// something other than a plain file or directory entry.
fn check_component(field: &str, component: &[u8], at: &Value) -> Result<(), MetainfoError> {
    let problem = if let Some(problem) = component_problem(component) {
        problem
    } else {
        return Ok(());
    };
    Err(invalid(
        field,
        format!(
            "{problem}: \"{}\"",
            String::from_utf8_lossy(component).escape_debug()
        ),
        at,
    ))
}

pub fn is_safe_component(component: &[u8]) -> bool {
    component_problem(component).is_none()
}

fn component_problem(component: &[u8]) -> Option<&'static str> {
    let problem = if component.is_empty() {
        "empty path component"
    } else if component == b"." || component == b".." {
        "path component is '.' or '..'"
    } else if component.contains(&b'/') {
        "path component holds '/' (an absolute path or a hidden subfolder)"
    } else if component.contains(&b'\\') {
        "path component holds '\\'"
    } else if component.contains(&0) {
        "path component holds a NUL byte"
    } else {
        return None;
    };
    Some(problem)
}

fn parse_info(
    info: &Value,
    info_hash: &[u8; 20],
    warnings: &mut Vec<String>,
) -> Result<Info, MetainfoError> {
    if info.as_dict().is_none() {
        return Err(invalid(
            "info",
            format!("expected a dictionary, found a {}", info.type_name()),
            info,
        ));
    }
    let meta_version = info.get("meta version").and_then(Value::as_int);
    let has_v1 = info.get("pieces").is_some();
    if meta_version == Some(2) && !has_v1 {
        return Err(MetainfoError::V2Only {
            offset: info.offset(),
        });
    }
    if let Some(v) = meta_version {
        if v != 1 && v != 2 {
            return Err(invalid(
                "info.meta version",
                format!("unknown meta version {v}"),
                info.get("meta version").unwrap_or(info),
            ));
        }
    }
    let hybrid = meta_version == Some(2);

    // Some torrents in the wild have no name; like libtorrent, fall back to
    // the info-hash, which is unique and safe as a file name.
    let name = text_key(info, "name");
    let name_missing = name.is_none();
    let name = match name {
        Some(name_value) => {
            let name = name_value
                .as_bytes()
                .ok_or_else(|| {
                    invalid(
                        "info.name",
                        format!("expected a string, found a {}", name_value.type_name()),
                        name_value,
                    )
                })?
                .to_vec();
            check_component("info.name", &name, name_value)?;
            name
        }
        None => {
            let fallback = crate::hex::encode(info_hash);
            warnings.push("info.name: missing; a stand-in name is used (the torrent file's name, or the info-hash)".into());
            fallback.into_bytes()
        }
    };

    let pl_value = get_required(info, "piece length", "info.piece length")?;
    let piece_length = get_length(info, "piece length", "info.piece length")?;
    if piece_length == 0 {
        return Err(invalid(
            "info.piece length",
            "piece length is zero",
            pl_value,
        ));
    }
    if piece_length > MAX_PIECE_LENGTH {
        return Err(invalid(
            "info.piece length",
            format!("piece length {piece_length} is larger than the supported maximum {MAX_PIECE_LENGTH}"),
            pl_value,
        ));
    }

    let private = match info.get("private") {
        None => false,
        Some(v) => match v.as_int() {
            Some(1) => true,
            Some(0) => false,
            _ => {
                warnings.push(format!(
                    "info.private: expected 0 or 1 at byte offset {} (taken as not private)",
                    v.offset()
                ));
                false
            }
        },
    };

    let (files, multi_file) = match (info.get("files"), info.get("length")) {
        (Some(_), Some(len)) => {
            return Err(invalid(
                "info",
                "has both 'length' (single file) and 'files' (multi-file)",
                len,
            ))
        }
        (None, None) => {
            return Err(MetainfoError::Missing {
                field: "info.length or info.files".into(),
                offset: info.offset(),
            })
        }
        (None, Some(_)) => {
            let length = get_length(info, "length", "info.length")?;
            let executable = attr(info).contains(&b'x');
            (
                vec![FileEntry {
                    components: vec![name.clone()],
                    length,
                    offset: 0,
                    pad: false,
                    executable,
                }],
                false,
            )
        }
        (Some(list), None) => (parse_files(list, &name)?, true),
    };
    let total_length = files.last().map_or(0, |f| f.offset + f.length);

    let pieces_value = get_required(info, "pieces", "info.pieces")?;
    let raw = pieces_value.as_bytes().ok_or_else(|| {
        invalid(
            "info.pieces",
            format!("expected a string, found a {}", pieces_value.type_name()),
            pieces_value,
        )
    })?;
    if raw.len() % HASH_LEN != 0 {
        return Err(invalid(
            "info.pieces",
            format!("length {} is not a multiple of 20", raw.len()),
            pieces_value,
        ));
    }
    let expected = total_length.div_ceil(piece_length);
    let count = (raw.len() / HASH_LEN) as u64;
    if count != expected {
        return Err(invalid(
            "info.pieces",
            format!(
                "holds {count} hashes but {total_length} bytes in pieces of {piece_length} need {expected}"
            ),
            pieces_value,
        ));
    }
    let pieces = raw
        .chunks_exact(HASH_LEN)
        .map(|c| c.try_into().expect("chunks are 20 bytes"))
        .collect();

    Ok(Info {
        name,
        piece_length,
        pieces,
        files,
        total_length,
        private,
        multi_file,
        hybrid,
        name_missing,
    })
}

fn attr<'a>(dict: &Value<'a>) -> &'a [u8] {
    dict.get("attr").and_then(Value::as_bytes).unwrap_or(b"")
}

fn parse_files(list: &Value, name: &[u8]) -> Result<Vec<FileEntry>, MetainfoError> {
    let items = list.as_list().ok_or_else(|| {
        invalid(
            "info.files",
            format!("expected a list, found a {}", list.type_name()),
            list,
        )
    })?;
    if items.is_empty() {
        return Err(invalid("info.files", "the file list is empty", list));
    }
    let mut files = Vec::with_capacity(items.len());
    let mut offset: u64 = 0;
    // Full paths of files, and of every folder above them, to refuse two
    // files with one path or a file that is also a folder.
    let mut file_paths: HashSet<Vec<Vec<u8>>> = HashSet::new();
    let mut dir_paths: HashSet<Vec<Vec<u8>>> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("info.files[{i}]");
        if item.as_dict().is_none() {
            return Err(invalid(
                &field,
                format!("expected a dictionary, found a {}", item.type_name()),
                item,
            ));
        }
        let length = get_length(item, "length", &format!("{field}.length"))?;
        let is_utf8 = |v: &Value| {
            v.as_list()
                .is_some_and(|l| l.iter().all(|c| c.as_str().is_some()))
        };
        let path_value = match (item.get("path"), item.get("path.utf-8")) {
            (Some(p), Some(u)) if !is_utf8(p) && is_utf8(u) => u,
            (Some(p), _) => p,
            (None, Some(u)) => u,
            (None, None) => get_required(item, "path", &format!("{field}.path"))?,
        };
        let parts = path_value.as_list().ok_or_else(|| {
            invalid(
                format!("{field}.path"),
                format!("expected a list, found a {}", path_value.type_name()),
                path_value,
            )
        })?;
        if parts.is_empty() {
            return Err(invalid(
                format!("{field}.path"),
                "the path is empty",
                path_value,
            ));
        }
        let mut components = Vec::with_capacity(parts.len() + 1);
        components.push(name.to_vec());
        for part in parts {
            let bytes = part.as_bytes().ok_or_else(|| {
                invalid(
                    format!("{field}.path"),
                    format!("path component is a {}, not a string", part.type_name()),
                    part,
                )
            })?;
            check_component(&format!("{field}.path"), bytes, part)?;
            components.push(bytes.to_vec());
        }
        let flags = attr(item);
        let pad = flags.contains(&b'p');
        if !pad {
            for depth in 1..components.len() {
                dir_paths.insert(components[..depth].to_vec());
            }
            if dir_paths.contains(&components) || !file_paths.insert(components.clone()) {
                return Err(invalid(
                    format!("{field}.path"),
                    "another file already has this path, or a folder of this name is needed",
                    path_value,
                ));
            }
        }
        let entry = FileEntry {
            components,
            length,
            offset,
            pad,
            executable: flags.contains(&b'x'),
        };
        offset = offset.checked_add(length).ok_or_else(|| {
            invalid(
                format!("{field}.length"),
                "total length overflows 64 bits",
                item,
            )
        })?;
        files.push(entry);
    }
    // A file registered before a later one made its path a folder.
    for f in &files {
        if !f.pad && dir_paths.contains(&f.components) {
            return Err(MetainfoError::Invalid {
                field: "info.files".into(),
                problem: format!("\"{}\" is both a file and a folder", f.display_path()),
                offset: list.offset(),
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #[test]
    fn creation_dates_in_milliseconds() {
        let mut w = Vec::new();
        assert_eq!(
            super::creation_date_seconds(1_452_468_725, &mut w),
            1_452_468_725
        );
        assert_eq!(
            super::creation_date_seconds(253_402_300_799, &mut w),
            253_402_300_799
        );
        assert!(w.is_empty());
        assert_eq!(
            super::creation_date_seconds(1_452_468_725_091, &mut w),
            1_452_468_725
        );
        assert!(
            w[0].contains("read as milliseconds (2016-01-10T23:32:05Z)"),
            "{w:?}"
        );
        // Not plausible as milliseconds either: kept as it is.
        assert_eq!(super::creation_date_seconds(i64::MAX, &mut w), i64::MAX);
        assert_eq!(w.len(), 1);
    }

    use super::*;
    use crate::bencode::OwnedValue;

    fn single(length: i64, piece_length: i64, pieces: usize) -> OwnedValue {
        let mut info = OwnedValue::dict();
        info.insert("name", "a.bin")
            .insert("length", length)
            .insert("piece length", piece_length)
            .insert("pieces", vec![7u8; 20 * pieces]);
        let mut t = OwnedValue::dict();
        t.insert("announce", "http://t/announce")
            .insert("info", info);
        t
    }

    fn multi(paths: &[&[&str]], lengths: &[i64]) -> Vec<u8> {
        let files: Vec<OwnedValue> = paths
            .iter()
            .zip(lengths)
            .map(|(p, &l)| {
                let mut f = OwnedValue::dict();
                f.insert("length", l).insert(
                    "path",
                    p.iter().map(|s| OwnedValue::from(*s)).collect::<Vec<_>>(),
                );
                f
            })
            .collect();
        let total: i64 = lengths.iter().sum();
        let mut info = OwnedValue::dict();
        info.insert("name", "dir")
            .insert("files", files)
            .insert("piece length", 4)
            .insert("pieces", vec![1u8; 20 * ((total as usize).div_ceil(4))]);
        let mut t = OwnedValue::dict();
        t.insert("info", info);
        t.encode()
    }

    #[test]
    fn single_file_layout() {
        let m = Metainfo::from_bytes(&single(10, 4, 3).encode()).unwrap();
        assert_eq!(m.info.piece_count(), 3);
        assert_eq!(m.info.piece_size(2), 2);
        assert_eq!(m.trackers, vec![vec!["http://t/announce".to_string()]]);
        assert_eq!(
            m.info.piece_slices(1),
            vec![FileSlice {
                file: 0,
                file_offset: 4,
                piece_offset: 0,
                length: 4
            }]
        );
    }

    #[test]
    fn trailing_bytes_are_a_warning_unless_strict() {
        let good = single(100, 64, 2).encode();
        let mut bytes = good.clone();
        bytes.extend_from_slice(b"\n");
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(
            meta.info_hash,
            Metainfo::from_bytes(&good).unwrap().info_hash
        );
        assert_eq!(
            meta.warnings,
            vec![format!(
                "1 byte after the torrent's top-level dictionary, from byte offset {} (ignored)",
                good.len()
            )]
        );
        match Metainfo::from_bytes_strict(&bytes) {
            Err(MetainfoError::Bencode(e)) => {
                assert_eq!(e.kind, bencode::DecodeErrorKind::TrailingData);
                assert_eq!(e.offset, good.len());
            }
            other => panic!("strict accepted trailing bytes: {other:?}"),
        }
        assert!(Metainfo::from_bytes_strict(&good)
            .unwrap()
            .warnings
            .is_empty());
        // Garbage rather than a dictionary is still refused.
        assert!(Metainfo::from_bytes(b"i1e\n").is_err());
        assert!(Metainfo::from_bytes(b"\nd4:infodee").is_err());
    }

    #[test]
    fn piece_count_must_match() {
        let e = Metainfo::from_bytes(&single(10, 4, 2).encode()).unwrap_err();
        assert!(e.to_string().contains("holds 2 hashes"), "{e}");
        let e = Metainfo::from_bytes(&single(10, 0, 2).encode()).unwrap_err();
        assert!(e.to_string().contains("piece length is zero"), "{e}");
        let e = Metainfo::from_bytes(&single(-1, 4, 2).encode()).unwrap_err();
        assert!(e.to_string().contains("negative length"), "{e}");
    }

    #[test]
    fn slices_span_files() {
        let m = Metainfo::from_bytes(&multi(&[&["a"], &["e"], &["b", "c"]], &[3, 0, 6])).unwrap();
        let slices = m.info.piece_slices(0);
        assert_eq!(slices.len(), 2);
        assert_eq!((slices[0].file, slices[0].length), (0, 3));
        assert_eq!(
            (
                slices[1].file,
                slices[1].file_offset,
                slices[1].piece_offset
            ),
            (2, 0, 3)
        );
        assert_eq!(m.info.file_pieces(2), 0..3);
        assert_eq!(m.info.file_pieces(1), 0..0);
    }

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            &[".."][..],
            &[""],
            &["a/b"],
            &["/etc"],
            &["a\\b"],
            &["."],
            &["x\0"],
        ] {
            let e = Metainfo::from_bytes(&multi(&[bad], &[1])).unwrap_err();
            assert!(
                matches!(e, MetainfoError::Invalid { .. }),
                "{bad:?} gave {e}"
            );
        }
        let e = Metainfo::from_bytes(&multi(&[&["a"], &["a"]], &[1, 1])).unwrap_err();
        assert!(e.to_string().contains("already has this path"), "{e}");
        let e = Metainfo::from_bytes(&multi(&[&["a"], &["a", "b"]], &[1, 1])).unwrap_err();
        assert!(e.to_string().contains("folder"), "{e}");
    }

    #[test]
    fn pure_v2_is_refused_clearly() {
        let mut info = OwnedValue::dict();
        info.insert("name", "x")
            .insert("meta version", 2)
            .insert("piece length", 16384)
            .insert("file tree", OwnedValue::dict());
        let mut t = OwnedValue::dict();
        t.insert("info", info);
        let e = Metainfo::from_bytes(&t.encode()).unwrap_err();
        assert!(e.to_string().contains("v2-only torrents are not supported"));
    }
}

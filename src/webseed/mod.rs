//! Web seeds (BEP 19) outside the session: which URL holds which file,
//! how a byte range of the torrent's stream becomes HTTP range requests
//! (one per file it crosses; BEP 47 pad files are zeros made locally), the
//! HTTP range fetcher (`http`) and the threads that run it for `bt-fetch`
//! (`driver`). What to fetch and what a failure costs is decided by the
//! session (`session::webseed`).

pub mod driver;
pub mod http;

use std::ops::Range;

use crate::metainfo::Info;
use crate::tracker::url::percent_encode;

pub use driver::WebSeedDriver;

/// One part of a web seed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// `len` bytes of the file at `url` from `offset`; `file_size` is the
    /// whole file's length, `pieces` the pieces the file overlaps (what
    /// to avoid asking this server for when it does not have the file).
    Http {
        url: String,
        offset: u64,
        len: u64,
        file_size: u64,
        pieces: Range<u32>,
    },
    /// Bytes of a pad file: zeros, never fetched.
    Zeros(u64),
}

/// The URL of file `file` of the torrent on the web seed `base` (BEP 19):
/// a single-file torrent's URL ending in `/` gets the name appended; for a
/// multi-file torrent, the name and the path components are appended,
/// each percent-encoded, joined with `/`.
pub fn file_url(base: &str, info: &Info, file: usize) -> String {
    if !info.multi_file {
        return if base.ends_with('/') {
            format!("{base}{}", percent_encode(&info.name))
        } else {
            base.to_string()
        };
    }
    let mut url = base.to_string();
    if !url.ends_with('/') {
        url.push('/');
    }
    // The components start with the torrent's name.
    let comps = &info.files[file].components;
    let parts: Vec<String> = comps.iter().map(|c| percent_encode(c)).collect();
    url.push_str(&parts.join("/"));
    url
}

/// The HTTP requests (and zero runs) that fetch `[start, start+len)` of
/// the torrent's stream from the web seed `base`, in order.
pub fn plan(base: &str, info: &Info, start: u64, len: u64) -> Vec<Part> {
    let mut parts = Vec::new();
    let plen = info.piece_length.max(1);
    for s in crate::metainfo::file_slices(&info.files, start, len) {
        let f = &info.files[s.file];
        if f.pad {
            parts.push(Part::Zeros(s.length));
            continue;
        }
        let first = (f.offset / plen) as u32;
        let last = ((f.offset + f.length).div_ceil(plen)) as u32;
        parts.push(Part::Http {
            url: file_url(base, info, s.file),
            offset: s.file_offset,
            len: s.length,
            file_size: f.length,
            pieces: first..last,
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::FileEntry;

    fn info(files: &[(&[&str], u64)], multi: bool) -> Info {
        let mut offset = 0;
        let files = files
            .iter()
            .map(|(c, len)| {
                let e = FileEntry {
                    components: c.iter().map(|s| s.as_bytes().to_vec()).collect(),
                    length: *len,
                    offset,
                    pad: c.last().is_some_and(|n| n.starts_with(".pad")),
                    executable: false,
                };
                offset += len;
                e
            })
            .collect::<Vec<_>>();
        Info {
            name: files[0].components[0].clone(),
            piece_length: 16,
            pieces: vec![[0; 20]; offset.div_ceil(16) as usize],
            total_length: offset,
            files,
            private: false,
            multi_file: multi,
            hybrid: false,
            name_missing: false,
        }
    }

    #[test]
    fn single_file_urls() {
        let i = info(&[(&["a b.iso"], 40)], false);
        assert_eq!(file_url("http://h/d/", &i, 0), "http://h/d/a%20b.iso");
        assert_eq!(file_url("http://h/x.iso", &i, 0), "http://h/x.iso");
    }

    #[test]
    fn multi_file_urls_and_ranges() {
        let i = info(
            &[
                (&["top", "dir one", "é.txt"], 10),
                (&["top", "empty"], 0),
                (&["top", ".pad", ".pad/6"], 6),
                (&["top", "z"], 30),
            ],
            true,
        );
        assert_eq!(
            file_url("http://h/seed", &i, 0),
            "http://h/seed/top/dir%20one/%C3%A9.txt"
        );
        // Bytes 4..30: the end of the first file, zeros, the start of z;
        // the empty file never appears.
        let p = plan("http://h/", &i, 4, 26);
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0],
            Part::Http {
                url: "http://h/top/dir%20one/%C3%A9.txt".into(),
                offset: 4,
                len: 6,
                file_size: 10,
                pieces: 0..1,
            }
        );
        assert_eq!(p[1], Part::Zeros(6));
        assert_eq!(
            p[2],
            Part::Http {
                url: "http://h/top/z".into(),
                offset: 0,
                len: 14,
                file_size: 30,
                pieces: 1..3,
            }
        );
    }
}

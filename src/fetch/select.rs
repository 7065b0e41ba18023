//! `bt-fetch --select`: which files of a multi-file torrent to download,
//! and what that means for each piece.
//!
//! A selector is a file number (1-based, the order of `bt-meta info`'s
//! `files`, pad files not counted, as aria2's `--select-file` counts) or a
//! pattern matched against the file's path: `*` stands for any run of
//! characters (`/` included), `?` for one. A pattern is tried against the
//! whole path (`name/sub/file`) and against the path below the torrent's
//! folder (`sub/file`).

use crate::metainfo::{file_slices, Info};

/// The files chosen, one flag per entry of `Info::files` (pad files are
/// never chosen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub files: Vec<bool>,
}

/// What a selection means for one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiecePlan {
    /// Every byte lies in chosen files (or pad files): fetched, kept whole.
    Whole,
    /// Shared by chosen and left-out files: fetched and checked in full,
    /// written only where chosen, so never served.
    Partly,
    /// Only in left-out files: not fetched.
    Skipped,
}

impl Selection {
    /// Resolves selectors (each may be a comma list) against a torrent's
    /// files. An error names the selector that matched nothing or the
    /// number out of range.
    pub fn resolve(info: &Info, selectors: &[String]) -> Result<Selection, String> {
        let mut files = vec![false; info.files.len()];
        let user: Vec<(usize, String)> = info
            .user_files()
            .map(|(i, f)| (i, f.display_path()))
            .collect();
        let name = info.name_lossy();
        for sel in selectors.iter().flat_map(|s| s.split(',')) {
            let sel = sel.trim();
            if sel.is_empty() {
                continue;
            }
            if sel.bytes().all(|b| b.is_ascii_digit()) {
                let n: usize = sel.parse().unwrap_or(0);
                if n == 0 || n > user.len() {
                    return Err(format!(
                        "--select {sel}: no such file (the torrent has {} files, numbered from 1)",
                        user.len()
                    ));
                }
                files[user[n - 1].0] = true;
                continue;
            }
            let mut matched = false;
            for (i, path) in &user {
                let below = path
                    .strip_prefix(name.as_str())
                    .and_then(|p| p.strip_prefix('/'));
                if glob_match(sel, path) || below.is_some_and(|b| glob_match(sel, b)) {
                    files[*i] = true;
                    matched = true;
                }
            }
            if !matched {
                return Err(format!("--select {sel}: matches no file of the torrent"));
            }
        }
        if !files.contains(&true) {
            return Err("--select: no file selected".into());
        }
        Ok(Selection { files })
    }

    /// The plan for every piece.
    pub fn plan(&self, info: &Info) -> Vec<PiecePlan> {
        (0..info.piece_count())
            .map(|i| {
                let start = i as u64 * info.piece_length;
                let (mut chosen, mut left_out) = (false, false);
                for s in file_slices(&info.files, start, info.piece_size(i)) {
                    if info.files[s.file].pad {
                        continue;
                    }
                    if self.files[s.file] {
                        chosen = true;
                    } else {
                        left_out = true;
                    }
                }
                match (chosen, left_out) {
                    (true, true) => PiecePlan::Partly,
                    (false, true) => PiecePlan::Skipped,
                    _ => PiecePlan::Whole,
                }
            })
            .collect()
    }

    /// Bytes of the chosen files.
    pub fn bytes(&self, info: &Info) -> u64 {
        info.files
            .iter()
            .zip(&self.files)
            .filter(|(_, &on)| on)
            .map(|(f, _)| f.length)
            .sum()
    }
}

/// Whether `text` matches `pattern` (`*` any run, `?` one character).
/// Iterative with one backtrack point: linear-ish, no recursion.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::FileEntry;

    fn info(files: &[(&str, u64, bool)], piece_length: u64) -> Info {
        let mut offset = 0;
        let mut entries = Vec::new();
        for (path, length, pad) in files {
            let mut components = vec![b"tree".to_vec()];
            components.extend(path.split('/').map(|c| c.as_bytes().to_vec()));
            entries.push(FileEntry {
                components,
                length: *length,
                offset,
                pad: *pad,
                executable: false,
            });
            offset += length;
        }
        let pieces = offset.div_ceil(piece_length) as usize;
        Info {
            name: b"tree".to_vec(),
            piece_length,
            pieces: vec![[0; 20]; pieces],
            total_length: offset,
            files: entries,
            private: false,
            multi_file: true,
            hybrid: false,
            name_missing: false,
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("*.bin", "sub/deeper/c.bin"));
        assert!(glob_match("sub/*", "sub/b.bin"));
        assert!(glob_match("a.b?n", "a.bin"));
        assert!(!glob_match("*.bin", "z/last.dat"));
        assert!(!glob_match("a.bin", "a.bin2"));
        assert!(glob_match("**", ""));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn numbers_and_patterns_and_piece_plans() {
        // Pieces of 10 bytes: a = [0,15), pad [15,20), b = [20,35), c = [35,40).
        let i = info(
            &[
                ("a.bin", 15, false),
                (".pad/5", 5, true),
                ("sub/b.bin", 15, false),
                ("c.txt", 5, false),
            ],
            10,
        );
        // File 2 is b.bin: pad files are not numbered.
        let s = Selection::resolve(&i, &["2".into()]).unwrap();
        assert_eq!(s.files, vec![false, false, true, false]);
        use PiecePlan::*;
        assert_eq!(s.plan(&i), vec![Skipped, Skipped, Whole, Partly]);
        assert_eq!(s.bytes(&i), 15);
        // Patterns, with and without the torrent's folder, and a comma list.
        let s = Selection::resolve(&i, &["tree/a.bin,*.txt".into()]).unwrap();
        assert_eq!(s.files, vec![true, false, false, true]);
        assert_eq!(s.plan(&i), vec![Whole, Whole, Skipped, Partly]);
        let s = Selection::resolve(&i, &["sub/*".into()]).unwrap();
        assert_eq!(s.files, vec![false, false, true, false]);
        // Errors name the culprit.
        let e = Selection::resolve(&i, &["4".into()]).unwrap_err();
        assert!(e.contains("--select 4") && e.contains("3 files"), "{e}");
        let e = Selection::resolve(&i, &["*.iso".into()]).unwrap_err();
        assert!(e.contains("*.iso"), "{e}");
        assert!(Selection::resolve(&i, &["0".into()]).is_err());
        let e = Selection::resolve(&i, &[",".into()]).unwrap_err();
        assert!(e.contains("no file selected"), "{e}");
    }
}

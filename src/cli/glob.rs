//! A small glob matcher for `bt-meta create --exclude`: `*` (any run of
//! characters but `/`), `?` (one character but `/`), `[abc]`, `[a-z]` and
//! `[!abc]` (or `[^abc]`); any other character matches itself. Matching
//! works on characters, and backtracks only over the last `*`, so a
//! pattern costs at most (pattern × text) steps.

/// Whether `pattern` matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is tried from.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') if t[ti] != '/' => Some(1),
            Some('[') => match class(&p[pi..], t[ti]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // An unclosed `[` is a literal.
                None => (t[ti] == '[').then_some(1),
            },
            Some(&c) if c != '?' && c == t[ti] => Some(1),
            _ => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ti += 1;
            }
            None => match star {
                // Let the last `*` swallow one more character (never a `/`).
                Some((sp, st)) if t[st] != '/' => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                _ => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (which is `[`):
/// `Some((matched, length of the class))`, `None` when it is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let &lo = p.get(i)?;
        if lo == ']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            let hi = p[i + 2];
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
    Some((found != negate && c != '/', i + 1))
}

/// Whether a file at `relative` (components under the torrent's root)
/// is excluded by any of `patterns`: each is tried against the whole
/// relative path (components joined by `/`) and against each component,
/// so `*.log` leaves out every log file and `cache` a folder anywhere.
pub fn excluded(patterns: &[String], relative: &[String]) -> bool {
    let joined = relative.join("/");
    patterns
        .iter()
        .any(|p| matches(p, &joined) || relative.iter().any(|component| matches(p, component)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*.log", "a.log"));
        assert!(!matches("*.log", "a.log.gz"));
        assert!(!matches("*.log", "dir/a.log"));
        assert!(matches("dir/*.log", "dir/a.log"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "a/c"));
        assert!(matches("*", ""));
        assert!(matches("**", "abc"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("x", "x"));
        assert!(!matches("x", "xy"));
    }

    #[test]
    fn classes() {
        assert!(matches("[abc].txt", "b.txt"));
        assert!(!matches("[abc].txt", "d.txt"));
        assert!(matches("[a-c]1", "c1"));
        assert!(matches("[!a-c]1", "d1"));
        assert!(matches("[^a-c]1", "d1"));
        assert!(!matches("[!a-c]1", "a1"));
        assert!(matches("[]]", "]"));
        assert!(matches("[a-]", "-"));
        assert!(matches("[", "["), "an unclosed class is literal");
        assert!(matches("é?", "éü"));
    }

    #[test]
    fn paths_and_components() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pats = p(&["*.tmp", "cache", "docs/draft?"]);
        assert!(excluded(&pats, &p(&["a", "b.tmp"])));
        assert!(excluded(&pats, &p(&["x", "cache", "y"])));
        assert!(excluded(&pats, &p(&["docs", "draft1"])));
        assert!(!excluded(&pats, &p(&["docs", "final"])));
        assert!(!excluded(&pats, &p(&["cached"])));
    }

    #[test]
    fn long_inputs_stay_cheap() {
        let text = "a".repeat(2000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!matches(&pattern, &text));
    }
}

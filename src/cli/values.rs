//! Parsers for option values, shared by every program so that one kind of
//! value follows one rule everywhere. Each returns a message naming the
//! value and the rule; clap turns it into a usage error (exit 2).

use std::time::Duration;

use crate::metainfo::MAX_PIECE_LENGTH;

/// The smallest piece length `bt-meta create` accepts (as mktorrent and
/// imdl): one block.
pub const MIN_PIECE_LENGTH: u64 = 16 << 10;

/// Longest duration accepted (a year): beyond it a typo is likelier.
const MAX_DURATION_SECS: f64 = 365.0 * 86_400.0;

/// Parses a size such as `262144`, `256K`, `256KiB`, `1M` or `2GiB`
/// (binary units K, M, G; a trailing `B` or `iB` is allowed).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (examples: 262144, 256K, 1M, 2G)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{text}': unknown unit (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// A size that must be more than 0 (`--max-memory`).
pub fn parse_positive_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("'{text}': must be more than 0")),
        n => Ok(n),
    }
}

/// A rate in bytes per second, with the units of [`parse_size`]; 0 means
/// unlimited (as in transmission and aria2).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// A piece length for a new torrent: a power of two from 16 KiB to the
/// largest piece length a torrent may have.
pub fn parse_piece_length(text: &str) -> Result<u64, String> {
    let n = parse_size(text)?;
    if !(MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&n) {
        return Err(format!(
            "'{text}': a piece length must be from 16K to {}",
            crate::progress::bytes(MAX_PIECE_LENGTH)
        ));
    }
    if !n.is_power_of_two() {
        return Err(format!(
            "'{text}': a piece length must be a power of two (e.g. {}K or {}K)",
            (n.next_power_of_two() >> 1) >> 10,
            n.next_power_of_two() >> 10
        ));
    }
    Ok(n)
}

/// A duration: seconds, decimals allowed (`30`, `1.5`), or with a unit
/// (`500ms`, `90s`, `2m`, `1h`, `1d`). 0 is refused: a zero timeout or
/// interval is always a mistake.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("'{text}' is not a duration (examples: 30, 1.5, 500ms, 2m, 1h)");
    let n: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(bad()),
    };
    let secs = n * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("'{text}': must be more than 0"));
    }
    if secs > MAX_DURATION_SECS {
        return Err(format!("'{text}': longer than a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A count that must be at least 1 (`--max-peers`, `--threads`).
pub fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err(format!("'{text}': must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// A tracker URL: http, https or udp, checked as `bt-announce` checks it.
pub fn parse_tracker_url(text: &str) -> Result<String, String> {
    crate::tracker::Url::parse(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("'{text}': {e}"))
}

/// A tier of tracker URLs separated by commas (`bt-meta create -t`).
pub fn parse_tracker_tier(text: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(parse_tracker_url)
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err(format!("'{text}': no tracker URL"));
    }
    Ok(urls)
}

/// A peer id: 20 characters, or 40 hex digits.
pub fn parse_peer_id(text: &str) -> Result<[u8; 20], String> {
    if text.len() == 40 {
        if let Some(id) = crate::hex::decode20(text) {
            return Ok(id);
        }
    }
    <[u8; 20]>::try_from(text.as_bytes()).map_err(|_| {
        format!(
            "'{text}' is {} bytes; give 20 characters or 40 hex digits",
            text.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("262144"), Ok(262144));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_positive_size("0").is_err());
        assert_eq!(parse_rate("0"), Ok(0));
    }

    #[test]
    fn piece_lengths() {
        assert_eq!(parse_piece_length("16K"), Ok(16384));
        assert_eq!(parse_piece_length("4M"), Ok(4 << 20));
        for bad in ["0", "3", "8K", "12345", "48K", "2G", "x"] {
            assert!(parse_piece_length(bad).is_err(), "{bad}");
        }
        assert!(parse_piece_length("48K")
            .unwrap_err()
            .contains("32K or 64K"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["0", "0.0", "-1", "", "1x", "nan", "inf", "1e9", "400d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_urls_ids() {
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_tracker_url("http://t.example/announce").is_ok());
        assert!(parse_tracker_url("udp://t.example:80").is_ok());
        assert!(parse_tracker_url("ftp://t.example/").is_err());
        assert_eq!(
            parse_tracker_tier("http://a/announce, udp://b:1")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_tracker_tier(",").is_err());
        assert_eq!(parse_peer_id(&"ab".repeat(20)).unwrap(), [0xab; 20]);
        assert!(parse_peer_id("short").is_err());
    }
}

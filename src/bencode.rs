//! Bencode (BEP 3): a borrowing decoder that keeps the byte span of every
//! value, and an encoder that always writes canonical bencode.
//!
//! The decoder never trusts the input: string lengths are checked against the
//! bytes actually left before anything is allocated, integers must be canonical
//! and fit an `i64`, and nesting is capped, so hostile input can neither panic,
//! hang, nor make us allocate much more than a small multiple of its own size.
//!
//! Keys out of order or repeated are accepted (torrents in the wild have them)
//! but recorded as [`Irregularity`]s so that strict readers can report them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;

/// Nesting depth allowed by default: far more than any real torrent or
/// tracker response needs, small enough that recursion cannot exhaust the stack.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// A decoding error: what was wrong and at which byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at byte offset {offset}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended while a value was still open.
    UnexpectedEnd { expected: &'static str },
    /// A byte that cannot start or continue the value being read.
    UnexpectedByte { found: u8, expected: &'static str },
    /// `i-0e`, `i03e`, `ie`, `i-e` and the like.
    NonCanonicalInteger,
    /// An integer that does not fit in an i64.
    IntegerOverflow,
    /// A string length with a leading zero, such as `03:abc`.
    NonCanonicalLength,
    /// A string claims more bytes than the input has left.
    StringTooLong { claimed: u64, available: usize },
    /// A dictionary key that is not a byte string.
    KeyNotString,
    /// Nesting deeper than the decoder's limit.
    TooDeep { limit: usize },
    /// Bytes left over after the top-level value.
    TrailingData,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::UnexpectedEnd { expected } => {
                write!(f, "input ended, expected {expected}")
            }
            DecodeErrorKind::UnexpectedByte { found, expected } => {
                write!(
                    f,
                    "unexpected byte {}, expected {expected}",
                    show_byte(*found)
                )
            }
            DecodeErrorKind::NonCanonicalInteger => write!(
                f,
                "malformed integer (leading zero, -0, empty, or non-digit)"
            ),
            DecodeErrorKind::IntegerOverflow => write!(f, "integer does not fit in 64 bits"),
            DecodeErrorKind::NonCanonicalLength => {
                write!(f, "string length has a leading zero")
            }
            DecodeErrorKind::StringTooLong { claimed, available } => write!(
                f,
                "string claims {claimed} bytes but only {available} are left"
            ),
            DecodeErrorKind::KeyNotString => write!(f, "dictionary key is not a byte string"),
            DecodeErrorKind::TooDeep { limit } => {
                write!(f, "values nested deeper than {limit} levels")
            }
            DecodeErrorKind::TrailingData => write!(f, "trailing data after the value"),
        }
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// Something legal enough to read but not canonical bencode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Irregularity {
    /// A dictionary key that sorts before (or equal to) the key preceding it.
    KeyOutOfOrder { offset: usize, key: Vec<u8> },
    /// A key seen twice in one dictionary (the first occurrence wins).
    DuplicateKey { offset: usize, key: Vec<u8> },
}

impl fmt::Display for Irregularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Irregularity::KeyOutOfOrder { offset, key } => write!(
                f,
                "dictionary key \"{}\" at byte offset {offset} is out of order",
                String::from_utf8_lossy(key).escape_debug()
            ),
            Irregularity::DuplicateKey { offset, key } => write!(
                f,
                "dictionary key \"{}\" at byte offset {offset} is repeated",
                String::from_utf8_lossy(key).escape_debug()
            ),
        }
    }
}

/// A decoded value that borrows from the input and remembers where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    /// The value's own bytes, exactly as they were in the input.
    raw: &'a [u8],
    /// Offset of `raw` in the whole input, for error messages.
    offset: usize,
    pub kind: Kind<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Entries in input order; lookups return the first of repeated keys.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The exact bytes of this value in the input (the info-hash is the SHA-1
    /// of these bytes for the `info` dictionary, never of a re-encoding).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset of this value in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The byte range of this value in the input.
    pub fn span(&self) -> Range<usize> {
        self.offset..self.offset + self.raw.len()
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Looks a key up in a dictionary; `None` for a missing key or a non-dictionary.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "integer",
            Kind::Bytes(_) => "string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }

    /// Converts to an owned value (dictionaries become canonical: sorted, first key wins).
    pub fn to_owned_value(&self) -> OwnedValue {
        match &self.kind {
            Kind::Int(i) => OwnedValue::Int(*i),
            Kind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Kind::List(l) => OwnedValue::List(l.iter().map(Value::to_owned_value).collect()),
            Kind::Dict(d) => {
                let mut map = BTreeMap::new();
                for (k, v) in d {
                    map.entry(k.to_vec()).or_insert_with(|| v.to_owned_value());
                }
                OwnedValue::Dict(map)
            }
        }
    }
}

/// A decoded document: the top-level value and any irregularities met.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    pub root: Value<'a>,
    pub irregularities: Vec<Irregularity>,
}

/// Decoder settings.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    max_depth: usize,
    allow_trailing: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_depth: DEFAULT_MAX_DEPTH,
            allow_trailing: false,
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Accept bytes after the top-level value (for streams holding several values).
    pub fn allow_trailing(mut self, allow: bool) -> Self {
        self.allow_trailing = allow;
        self
    }

    /// Decodes one value from `input`.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Document<'a>, DecodeError> {
        let mut parser = Parser {
            input,
            pos: 0,
            max_depth: self.max_depth,
            irregularities: Vec::new(),
        };
        let root = parser.value(0)?;
        if !self.allow_trailing && parser.pos != input.len() {
            return Err(DecodeError {
                offset: parser.pos,
                kind: DecodeErrorKind::TrailingData,
            });
        }
        Ok(Document {
            root,
            irregularities: parser.irregularities,
        })
    }
}

/// Decodes one complete value with the default settings.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    Decoder::new().decode(input).map(|doc| doc.root)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
    irregularities: Vec<Irregularity>,
}

impl<'a> Parser<'a> {
    fn err(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    fn peek(&self, expected: &'static str) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err(self.pos, DecodeErrorKind::UnexpectedEnd { expected }))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        let kind = match self.peek("a value")? {
            b'i' => {
                self.pos += 1;
                Kind::Int(self.integer(b'e')?)
            }
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' => {
                self.enter(depth)?;
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek("a list item or 'e'")? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Kind::List(items)
            }
            b'd' => {
                self.enter(depth)?;
                self.pos += 1;
                Kind::Dict(self.dict_entries(depth)?)
            }
            other => {
                return Err(self.err(
                    start,
                    DecodeErrorKind::UnexpectedByte {
                        found: other,
                        expected: "a value ('i', 'l', 'd' or a digit)",
                    },
                ))
            }
        };
        Ok(Value {
            raw: &self.input[start..self.pos],
            offset: start,
            kind,
        })
    }

    fn enter(&self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.max_depth {
            Err(self.err(
                self.pos,
                DecodeErrorKind::TooDeep {
                    limit: self.max_depth,
                },
            ))
        } else {
            Ok(())
        }
    }

    fn dict_entries(&mut self, depth: usize) -> Result<Vec<(&'a [u8], Value<'a>)>, DecodeError> {
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut seen: Option<HashSet<&'a [u8]>> = None;
        loop {
            let key_offset = self.pos;
            match self.peek("a dictionary key or 'e'")? {
                b'e' => {
                    self.pos += 1;
                    return Ok(entries);
                }
                b'0'..=b'9' => {}
                _ => return Err(self.err(key_offset, DecodeErrorKind::KeyNotString)),
            }
            let key = self.bytes()?;
            let value = self.value(depth + 1)?;
            // While keys ascend no key can repeat; after the first disorder a
            // set is needed to tell repeats apart without a quadratic scan.
            let ascending = entries.last().is_none_or(|(last, _)| key > *last);
            if !ascending && seen.is_none() {
                seen = Some(entries.iter().map(|(k, _)| *k).collect());
            }
            if let Some(seen) = seen.as_mut() {
                let irregularity = if !seen.insert(key) {
                    Some(Irregularity::DuplicateKey {
                        offset: key_offset,
                        key: key.to_vec(),
                    })
                } else if !ascending {
                    Some(Irregularity::KeyOutOfOrder {
                        offset: key_offset,
                        key: key.to_vec(),
                    })
                } else {
                    None
                };
                self.irregularities.extend(irregularity);
            }
            entries.push((key, value));
        }
    }

    /// Reads a string `<len>:<bytes>`.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.length()?;
        let available = self.input.len() - self.pos;
        if len > available as u64 {
            return Err(self.err(
                start,
                DecodeErrorKind::StringTooLong {
                    claimed: len,
                    available,
                },
            ));
        }
        let len = len as usize;
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// Reads the decimal length before ':' of a string.
    fn length(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut len: u64 = 0;
        let mut digits = 0usize;
        loop {
            let b = self.peek("a digit or ':'")?;
            match b {
                b'0'..=b'9' => {
                    if digits == 1 && len == 0 {
                        return Err(self.err(start, DecodeErrorKind::NonCanonicalLength));
                    }
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(u64::from(b - b'0')))
                        .ok_or_else(|| {
                            self.err(
                                start,
                                DecodeErrorKind::StringTooLong {
                                    claimed: u64::MAX,
                                    available: self.input.len() - self.pos,
                                },
                            )
                        })?;
                    digits += 1;
                    self.pos += 1;
                }
                b':' if digits > 0 => {
                    self.pos += 1;
                    return Ok(len);
                }
                found => {
                    return Err(self.err(
                        self.pos,
                        DecodeErrorKind::UnexpectedByte {
                            found,
                            expected: "a digit or ':' in a string length",
                        },
                    ))
                }
            }
        }
    }

    /// Reads the digits of an integer after 'i', up to and including `end`.
    fn integer(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let negative = self.peek("an integer")? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        // Accumulate as a negative number so that i64::MIN is representable.
        let mut acc: i64 = 0;
        loop {
            let b = self.peek("a digit or 'e'")?;
            match b {
                b'0'..=b'9' => {
                    if self.pos > digits_start && acc == 0 {
                        // A digit after a leading zero.
                        return Err(self.err(start, DecodeErrorKind::NonCanonicalInteger));
                    }
                    acc = acc
                        .checked_mul(10)
                        .and_then(|a| a.checked_sub(i64::from(b - b'0')))
                        .ok_or_else(|| self.err(start, DecodeErrorKind::IntegerOverflow))?;
                    self.pos += 1;
                }
                b if b == end => {
                    let ndigits = self.pos - digits_start;
                    if ndigits == 0 || (negative && acc == 0) {
                        return Err(self.err(start, DecodeErrorKind::NonCanonicalInteger));
                    }
                    self.pos += 1;
                    return if negative {
                        Ok(acc)
                    } else {
                        acc.checked_neg()
                            .ok_or_else(|| self.err(start, DecodeErrorKind::IntegerOverflow))
                    };
                }
                found => {
                    return Err(self.err(
                        self.pos,
                        DecodeErrorKind::UnexpectedByte {
                            found,
                            expected: "a digit or 'e' in an integer",
                        },
                    ))
                }
            }
        }
    }
}

/// An owned value, for building documents to encode. Dictionaries are kept
/// sorted, so encoding is always canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<OwnedValue>),
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    /// An empty dictionary.
    pub fn dict() -> Self {
        OwnedValue::Dict(BTreeMap::new())
    }

    /// Inserts `key` into a dictionary; does nothing on other values.
    pub fn insert(&mut self, key: &str, value: impl Into<OwnedValue>) -> &mut Self {
        if let OwnedValue::Dict(map) = self {
            map.insert(key.as_bytes().to_vec(), value.into());
        }
        self
    }

    /// Canonical bencode of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            OwnedValue::Bytes(b) => encode_bytes(b, out),
            OwnedValue::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            OwnedValue::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

impl From<i64> for OwnedValue {
    fn from(i: i64) -> Self {
        OwnedValue::Int(i)
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for OwnedValue {
    fn from(s: String) -> Self {
        OwnedValue::Bytes(s.into_bytes())
    }
}

impl From<&[u8]> for OwnedValue {
    fn from(b: &[u8]) -> Self {
        OwnedValue::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for OwnedValue {
    fn from(b: Vec<u8>) -> Self {
        OwnedValue::Bytes(b)
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(l: Vec<OwnedValue>) -> Self {
        OwnedValue::List(l)
    }
}

impl From<i32> for OwnedValue {
    fn from(i: i32) -> Self {
        OwnedValue::Int(i64::from(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> DecodeError {
        decode(input).unwrap_err()
    }

    #[test]
    fn integers() {
        assert_eq!(decode(b"i0e").unwrap().as_int(), Some(0));
        assert_eq!(decode(b"i-42e").unwrap().as_int(), Some(-42));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        for bad in [&b"i-0e"[..], b"i03e", b"ie", b"i-e", b"i00e", b"i-03e"] {
            assert_eq!(
                err(bad).kind,
                DecodeErrorKind::NonCanonicalInteger,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            err(b"i9223372036854775808e").kind,
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(err(b"i1x").offset, 2);
        assert!(matches!(
            err(b"i12").kind,
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
    }

    #[test]
    fn strings() {
        assert_eq!(decode(b"4:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
        assert_eq!(decode(b"0:").unwrap().as_bytes(), Some(&b""[..]));
        assert_eq!(err(b"04:spam").kind, DecodeErrorKind::NonCanonicalLength);
        assert_eq!(
            err(b"5:spam").kind,
            DecodeErrorKind::StringTooLong {
                claimed: 5,
                available: 4
            }
        );
        // A huge claim is refused before any allocation.
        assert!(matches!(
            err(b"99999999999999999999999:x").kind,
            DecodeErrorKind::StringTooLong { .. }
        ));
    }

    #[test]
    fn spans_are_exact() {
        let input = b"d4:infod6:lengthi5ee3:zzzi1ee";
        let root = decode(input).unwrap();
        let info = root.get("info").unwrap();
        assert_eq!(info.raw(), b"d6:lengthi5ee");
        assert_eq!(info.offset(), 7);
        assert_eq!(info.span(), 7..20);
    }

    #[test]
    fn irregular_keys_are_reported_not_refused() {
        let doc = Decoder::new().decode(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        assert_eq!(doc.root.get("b").unwrap().as_int(), Some(1));
        assert_eq!(
            doc.irregularities,
            vec![
                Irregularity::KeyOutOfOrder {
                    offset: 7,
                    key: b"a".to_vec()
                },
                Irregularity::DuplicateKey {
                    offset: 13,
                    key: b"b".to_vec()
                }
            ]
        );
    }

    #[test]
    fn depth_is_capped() {
        let deep = format!("{}{}", "l".repeat(100), "e".repeat(100));
        assert!(matches!(
            err(deep.as_bytes()).kind,
            DecodeErrorKind::TooDeep { limit: 64 }
        ));
        let ok = format!("{}{}", "l".repeat(64), "e".repeat(64));
        assert!(decode(ok.as_bytes()).is_ok());
    }

    #[test]
    fn trailing_data() {
        assert_eq!(err(b"i1ei2e").kind, DecodeErrorKind::TrailingData);
        assert!(Decoder::new()
            .allow_trailing(true)
            .decode(b"i1ei2e")
            .is_ok());
    }

    #[test]
    fn key_must_be_string() {
        assert_eq!(err(b"di1ei2ee").kind, DecodeErrorKind::KeyNotString);
    }

    #[test]
    fn encoder_is_canonical() {
        let mut d = OwnedValue::dict();
        d.insert("zeta", 1)
            .insert("alpha", "x")
            .insert("list", vec![OwnedValue::Int(-3), OwnedValue::from("")]);
        assert_eq!(d.encode(), b"d5:alpha1:x4:listli-3e0:e4:zetai1ee".to_vec());
        // Decoding an irregular document and re-encoding sorts it and keeps the first key.
        let v = decode(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        assert_eq!(v.to_owned_value().encode(), b"d1:ai2e1:bi1ee".to_vec());
    }
}

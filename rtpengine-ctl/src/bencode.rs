//! Bencode as rtpengine speaks it.
//!
//! rtpengine does not sort dictionary keys (its README says so), so decoding is lenient
//! about key order and keeps the order it saw; everything else is strict. Values borrow
//! from the input where they can, so decoding a request costs a few small allocations.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting accepted; bounds recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// A bencode value. Strings are bytes: SDP need not be UTF-8.
#[derive(Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(Cow<'a, [u8]>),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A dictionary in wire order. Lookups are linear: ng dictionaries are small.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dict<'a>(Vec<(Cow<'a, [u8]>, Value<'a>)>);

/// Why bytes are not one bencode value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bencode ends early (needs more than {0} bytes)")]
    Incomplete(usize),
    #[error("malformed bencode at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("trailing data after bencode value at byte {0}")]
    Trailing(usize),
}

impl<'a> Dict<'a> {
    pub const EMPTY: Dict<'static> = Dict(Vec::new());

    pub fn new() -> Self {
        Dict(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// First value under `key` (duplicates are tolerated, the first one wins).
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.0
            .iter()
            .find(|(k, _)| k.as_ref() == key.as_bytes())
            .map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_int)
    }

    pub fn get_dict(&self, key: &str) -> Option<&Dict<'a>> {
        self.get(key).and_then(Value::as_dict)
    }

    pub fn get_list(&self, key: &str) -> Option<&[Value<'a>]> {
        self.get(key).and_then(Value::as_list)
    }

    /// Sets `key`, replacing an earlier value in place (so the order stays stable).
    pub fn insert(&mut self, key: impl IntoKey<'a>, value: impl Into<Value<'a>>) {
        let key = key.into_key();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Appends without checking for an existing key: for decoders, which keep the wire's
    /// entries as they are (bencode) or get them unique already (JSON). `insert` would
    /// make decoding quadratic in the number of keys.
    pub(crate) fn push(&mut self, key: Cow<'a, [u8]>, value: Value<'a>) {
        self.0.push((key, value));
    }

    pub fn remove(&mut self, key: &str) -> Option<Value<'a>> {
        let at = self
            .0
            .iter()
            .position(|(k, _)| k.as_ref() == key.as_bytes())?;
        Some(self.0.remove(at).1)
    }

    pub fn into_owned(self) -> Dict<'static> {
        Dict(
            self.0
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
        )
    }
}

impl<'a> Value<'a> {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Integers; rtpengine sometimes sends numbers as strings in JSON mode, accept both.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Int(i) => Value::Int(i),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::List(l) => Value::List(l.into_iter().map(Value::into_owned).collect()),
            Value::Dict(d) => Value::Dict(d.into_owned()),
        }
    }
}

/// What can name a dictionary entry: text or bytes, borrowed or owned.
pub trait IntoKey<'a> {
    fn into_key(self) -> Cow<'a, [u8]>;
}
impl<'a> IntoKey<'a> for &'a str {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoKey<'a> for String {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}
impl<'a> IntoKey<'a> for Vec<u8> {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}
impl<'a> IntoKey<'a> for &'a [u8] {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Bytes(Cow::Borrowed(s.as_bytes()))
    }
}
impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::Bytes(Cow::Owned(s.into_bytes()))
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(b: &'a [u8]) -> Self {
        Value::Bytes(Cow::Borrowed(b))
    }
}
impl<'a> From<Dict<'a>> for Value<'a> {
    fn from(d: Dict<'a>) -> Self {
        Value::Dict(d)
    }
}
impl<'a> From<Vec<Value<'a>>> for Value<'a> {
    fn from(l: Vec<Value<'a>>) -> Self {
        Value::List(l)
    }
}
impl<'a, T: Into<Value<'a>>, const N: usize> From<[T; N]> for Value<'a> {
    fn from(items: [T; N]) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}

/// Debug shows strings as text where they are text: replies become readable in logs.
impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

// ---------------------------------------------------------------- encoding

/// Appends the bencode of `value` to `out`. Dictionaries keep their order.
pub fn encode_into(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(b'i');
            push_int(out, *i);
            out.push(b'e');
        }
        Value::Bytes(b) => push_bytes(out, b),
        Value::List(l) => {
            out.push(b'l');
            for v in l {
                encode_into(v, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => encode_dict_into(d, out),
    }
}

pub fn encode_dict_into(dict: &Dict<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    for (k, v) in &dict.0 {
        push_bytes(out, k);
        encode_into(v, out);
    }
    out.push(b'e');
}

pub fn encode_dict(dict: &Dict<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_dict_into(dict, &mut out);
    out
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    push_int(out, b.len() as i64);
    out.push(b':');
    out.extend_from_slice(b);
}

/// Decimal formatting without going through `fmt` (the codec's hottest path).
fn push_int(out: &mut Vec<u8>, i: i64) {
    let mut buf = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[at..]);
}

// ---------------------------------------------------------------- decoding

/// Decodes exactly one value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let (value, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(DecodeError::Trailing(used));
    }
    Ok(value)
}

/// Decodes a dictionary spanning all of `input` (every ng message body is one).
pub fn decode_dict(input: &[u8]) -> Result<Dict<'_>, DecodeError> {
    match decode(input)? {
        Value::Dict(d) => Ok(d),
        _ => Err(malformed(0, "top-level value is not a dictionary")),
    }
}

/// Decodes the value at the start of `input`; returns it and the bytes it used.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    let mut p = Parser { input, pos: 0 };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

/// Length of the complete value at the start of `input`, `None` if more bytes are needed.
/// Validates without allocating: this is how a TCP stream is cut into messages.
pub fn value_len(input: &[u8]) -> Result<Option<usize>, DecodeError> {
    Scanner::default().scan(input)
}

/// `value_len` for a value that arrives in pieces: each `scan` gets everything so far
/// and resumes where the last one stopped, so a value costs one pass in all, not one
/// per piece (a multi-megabyte TCP reply comes in hundreds of reads).
#[derive(Debug, Default)]
pub struct Scanner {
    /// Bytes already checked, whole tokens only: a token cut short is read again.
    pos: usize,
    /// The containers open at `pos`, innermost last.
    open: Vec<Open>,
}

#[derive(Debug, Clone, Copy)]
enum Open {
    List,
    /// A dictionary whose next item is a key, or the end.
    DictKey,
    /// A dictionary whose next item is the value of the key before it.
    DictValue,
}

impl Scanner {
    /// Length of the value that starts `input`, `None` while it is incomplete. `input`
    /// must extend the bytes of the previous call.
    pub fn scan(&mut self, input: &[u8]) -> Result<Option<usize>, DecodeError> {
        loop {
            let mut p = Parser {
                input,
                pos: self.pos,
            };
            match self.step(&mut p) {
                Ok(done) => {
                    self.pos = p.pos;
                    if done {
                        return Ok(Some(self.pos));
                    }
                }
                Err(DecodeError::Incomplete(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one token (a key, a scalar, a container's start or end); true once the
    /// outermost value is complete. The state changes only when the token is whole.
    fn step(&mut self, p: &mut Parser<'_>) -> Result<bool, DecodeError> {
        // As in the decoder, a value too deep is refused before its first byte is read.
        let too_deep = self.open.len() > MAX_DEPTH;
        if too_deep && matches!(self.open.last(), Some(Open::DictValue)) {
            return Err(malformed(p.pos, "nesting too deep"));
        }
        let c = p.peek()?;
        match self.open.last_mut() {
            Some(top @ Open::DictKey) if c != b'e' => {
                p.key()?;
                *top = Open::DictValue;
                return Ok(false);
            }
            Some(Open::List | Open::DictKey) if c == b'e' => {
                p.pos += 1;
                self.open.pop();
                return Ok(self.value_done());
            }
            _ => {}
        }
        if too_deep {
            return Err(malformed(p.pos, "nesting too deep"));
        }
        match c {
            b'i' => drop(p.int()?),
            b'0'..=b'9' => drop(p.bytes()?),
            b'l' | b'd' => {
                p.pos += 1;
                self.open
                    .push(if c == b'l' { Open::List } else { Open::DictKey });
                return Ok(false);
            }
            _ => return Err(malformed(p.pos, "expected i, l, d or a string length")),
        }
        Ok(self.value_done())
    }

    /// A value ended: its dictionary wants a key next; at the outermost level, done.
    fn value_done(&mut self) -> bool {
        match self.open.last_mut() {
            Some(top @ Open::DictValue) => {
                *top = Open::DictKey;
                false
            }
            Some(_) => false,
            None => true,
        }
    }
}

fn malformed(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Malformed { offset, what }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Incomplete(self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(malformed(self.pos, "nesting too deep"));
        }
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(|b| Value::Bytes(Cow::Borrowed(b))),
            b'l' => {
                self.pos += 1;
                // Not pre-sized: an empty container must cost no room for entries, or a
                // hostile reply of `le`s would decode into hundreds of times its size.
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut dict = Dict::new();
                while self.peek()? != b'e' {
                    let key = self.key()?;
                    dict.push(Cow::Borrowed(key), self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::Dict(dict))
            }
            _ => Err(malformed(self.pos, "expected i, l, d or a string length")),
        }
    }

    fn key(&mut self) -> Result<&'a [u8], DecodeError> {
        match self.peek()? {
            b'0'..=b'9' => self.bytes(),
            _ => Err(malformed(self.pos, "dictionary key is not a string")),
        }
    }

    /// `i<digits>e`: no leading zeros, no `-0`, fits in i64.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits = self.digits()?;
        if self.peek()? != b'e' {
            return Err(malformed(self.pos, "integer not terminated by e"));
        }
        self.pos += 1;
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(malformed(start, "integer has no digits or a leading zero"));
        }
        if negative && digits == b"0" {
            return Err(malformed(start, "negative zero"));
        }
        let magnitude = parse_u64(digits).ok_or(malformed(start, "integer out of range"))?;
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
        .ok_or(malformed(start, "integer out of range"))
    }

    /// `<len>:<bytes>`
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let digits = self.digits()?;
        if self.peek()? != b':' {
            return Err(malformed(self.pos, "string length not followed by ':'"));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(malformed(start, "string length has a leading zero"));
        }
        let len = parse_u64(digits)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(malformed(start, "string length out of range"))?;
        self.pos += 1;
        let end = self
            .pos
            .checked_add(len)
            .ok_or(malformed(start, "string length out of range"))?;
        if end > self.input.len() {
            return Err(DecodeError::Incomplete(end));
        }
        let b = &self.input[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn digits(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        while self.peek()?.is_ascii_digit() {
            self.pos += 1;
            // No number fits in more (parse_u64); stopping here keeps a peer's endless
            // digits from being read again for every piece of a stream.
            if self.pos - start > 20 {
                return Err(malformed(start, "number too long"));
            }
        }
        Ok(&self.input[start..self.pos])
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_unsorted_rtpengine_reply() {
        let raw = b"d7:warning38:Call-ID not found or tags didn't match6:result2:oke";
        let d = decode_dict(raw).unwrap();
        assert_eq!(d.get_str("result"), Some("ok"));
        assert_eq!(
            d.get_str("warning"),
            Some("Call-ID not found or tags didn't match")
        );
        // Order is preserved, so re-encoding gives the same bytes.
        assert_eq!(encode_dict(&d), raw.to_vec());
    }

    #[test]
    fn rejects_bad_integers() {
        for bad in [
            &b"i03e"[..],
            b"i-0e",
            b"ie",
            b"i-e",
            b"i99999999999999999999e",
        ] {
            assert!(
                matches!(decode(bad), Err(DecodeError::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap(),
            Value::Int(i64::MIN)
        );
    }

    #[test]
    fn scanner_finds_message_end_or_asks_for_more() {
        let two = b"d6:result4:ponged6:result4:ponge";
        assert_eq!(value_len(two).unwrap(), Some(16));
        assert_eq!(value_len(&two[..10]).unwrap(), None);
        assert!(value_len(b"dx").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "l".repeat(100_000);
        assert!(matches!(
            decode(deep.as_bytes()),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(value_len(deep.as_bytes()).is_err());
    }

    #[test]
    fn insert_replaces_in_place() {
        let mut d = Dict::new();
        d.insert("a", 1);
        d.insert("b", 2);
        d.insert("a", 3);
        assert_eq!(encode_dict(&d), b"d1:ai3e1:bi2ee".to_vec());
    }
}

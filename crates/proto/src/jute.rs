//! Jute binary encoding (ZooKeeper's `BinaryInputArchive` / `BinaryOutputArchive`).
//!
//! Grammar (all integers big-endian, two's complement):
//!
//! ```text
//! byte    = u8
//! boolean = u8                       ; 0 false, anything else true when reading
//! int     = i32
//! long    = i64
//! buffer  = int len, len * u8        ; len -1 = null, 0 = empty
//! ustring = int len, len * u8 (UTF-8); len -1 = null
//! vector  = int count, count * T     ; count -1 = null
//! record  = its fields in declaration order, no tags, no padding
//! ```
//!
//! Invariants: decoding never panics and never allocates more than the input could
//! describe (a vector's capacity is bounded by the bytes left), so arbitrary bytes from the
//! network or disk are safe to feed in. A [`Reader`] works on one complete record held in
//! memory: running out of bytes is [`DecodeError::Truncated`], not "incomplete"; framing
//! ([`crate::frame`]) decides whether a whole frame has arrived.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record ended before field `what` was complete.
    Truncated { what: &'static str, offset: usize },
    /// A length prefix is negative (other than the null marker) or larger than what is left.
    BadLength {
        what: &'static str,
        len: i64,
        offset: usize,
    },
    /// A value outside its domain (for example an unknown opcode inside a multi).
    Invalid { what: &'static str, value: i64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, offset } => {
                write!(
                    f,
                    "record truncated while reading {what} at offset {offset}"
                )
            }
            DecodeError::BadLength { what, len, offset } => {
                write!(f, "bad length {len} for {what} at offset {offset}")
            }
            DecodeError::Invalid { what, value } => write!(f, "invalid {what}: {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// Cursor over one complete record. Buffers are returned as zero-copy slices of the input.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    pub fn from_slice(buf: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(buf))
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread rest, consumed.
    pub fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        out
    }

    fn take(&mut self, n: usize, what: &'static str) -> DecodeResult<&[u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    pub fn read_u8(&mut self, what: &'static str) -> DecodeResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn read_bool(&mut self, what: &'static str) -> DecodeResult<bool> {
        Ok(self.read_u8(what)? != 0)
    }

    pub fn read_i32(&mut self, what: &'static str) -> DecodeResult<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self, what: &'static str) -> DecodeResult<i64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A length prefix: `Ok(None)` for the null marker -1, an error for other negatives or
    /// for a length beyond the bytes left.
    fn read_len(&mut self, what: &'static str) -> DecodeResult<Option<usize>> {
        let offset = self.pos;
        let len = self.read_i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(DecodeError::BadLength {
                what,
                len: len as i64,
                offset,
            });
        }
        Ok(Some(len as usize))
    }

    /// A nullable buffer.
    pub fn read_buffer(&mut self, what: &'static str) -> DecodeResult<Option<Bytes>> {
        match self.read_len(what)? {
            None => Ok(None),
            Some(n) => {
                let start = self.pos;
                self.pos += n;
                Ok(Some(self.buf.slice(start..start + n)))
            }
        }
    }

    /// A nullable ustring. Decoding is lenient: invalid UTF-8 (for example Java's CESU-8 for
    /// characters outside the BMP) becomes U+FFFD, which path validation rejects as ZooKeeper
    /// rejects surrogates.
    pub fn read_ustring(&mut self, what: &'static str) -> DecodeResult<Option<String>> {
        match self.read_len(what)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n, what)?;
                Ok(Some(match std::str::from_utf8(b) {
                    Ok(s) => s.to_owned(),
                    Err(_) => String::from_utf8_lossy(b).into_owned(),
                }))
            }
        }
    }

    /// A ustring where null is read as the empty string (for fields such as paths, where
    /// ZooKeeper rejects null and empty alike).
    pub fn read_string(&mut self, what: &'static str) -> DecodeResult<String> {
        Ok(self.read_ustring(what)?.unwrap_or_default())
    }

    /// A nullable vector. `min_elem_bytes` bounds the pre-allocation by the bytes left.
    pub fn read_vec<T>(
        &mut self,
        what: &'static str,
        min_elem_bytes: usize,
        mut elem: impl FnMut(&mut Reader) -> DecodeResult<T>,
    ) -> DecodeResult<Option<Vec<T>>> {
        let offset = self.pos;
        let count = self.read_i32(what)?;
        if count == -1 {
            return Ok(None);
        }
        if count < 0 || (count as usize).saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength {
                what,
                len: count as i64,
                offset,
            });
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            out.push(elem(self)?);
        }
        Ok(Some(out))
    }

    /// A vector of strings; null reads as empty.
    pub fn read_string_vec(&mut self, what: &'static str) -> DecodeResult<Vec<String>> {
        Ok(self
            .read_vec(what, 4, |r| r.read_string(what))?
            .unwrap_or_default())
    }
}

/// Append-only encoder.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: BytesMut,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: BytesMut::new(),
        }
    }

    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: BytesMut::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }

    /// Makes room for at least `additional` more bytes, so that a record whose size is
    /// known up front is written with one allocation instead of a growth step per field.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_inner(self) -> BytesMut {
        self.buf
    }

    pub fn write_u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.put_u8(v as u8);
    }

    pub fn write_i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn write_i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    /// Overwrites 4 bytes at `at` (used to patch a frame length once the body is known).
    pub fn patch_i32(&mut self, at: usize, v: i32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    pub fn write_raw(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }

    pub fn write_buffer(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.write_i32(-1),
            Some(b) => {
                self.write_i32(b.len() as i32);
                self.buf.put_slice(b);
            }
        }
    }

    pub fn write_ustring(&mut self, s: Option<&str>) {
        match s {
            None => self.write_i32(-1),
            Some(s) => self.write_string(s),
        }
    }

    /// Writes a ustring as Java's jute does: UTF-8, except that a character outside the
    /// BMP is written as its two UTF-16 surrogates, 3 bytes each (CESU-8), because
    /// ZooKeeper encodes one Java `char` at a time. Strings without such characters (every
    /// valid path) are written as they are.
    pub fn write_string(&mut self, s: &str) {
        // A 4-byte UTF-8 sequence is the only thing that differs; its lead byte is >= 0xF0.
        if !s.bytes().any(|b| b >= 0xF0) {
            self.write_buffer(Some(s.as_bytes()));
            return;
        }
        let mut out = Vec::with_capacity(s.len() + s.len() / 2);
        for c in s.chars() {
            let mut units = [0u16; 2];
            for &unit in c.encode_utf16(&mut units).iter() {
                if (0xD800..0xE000).contains(&unit) {
                    out.push(0xE0 | (unit >> 12) as u8);
                    out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                    out.push(0x80 | (unit & 0x3F) as u8);
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        self.write_buffer(Some(&out));
    }

    pub fn write_string_vec<S: AsRef<str>>(&mut self, v: &[S]) {
        self.write_i32(v.len() as i32);
        for s in v {
            self.write_string(s.as_ref());
        }
    }
}

/// A jute record: fields in declaration order.
pub trait Record: Sized {
    fn write(&self, w: &mut Writer);
    fn read(r: &mut Reader) -> DecodeResult<Self>;

    fn to_bytes(&self) -> Bytes {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }

    fn from_bytes(b: Bytes) -> DecodeResult<Self> {
        Self::read(&mut Reader::new(b))
    }
}

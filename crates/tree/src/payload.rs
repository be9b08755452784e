//! A node's name and data in one 16-byte field ([`Payload`]), with one heap block per node
//! for the common case.
//!
//! Why: with a million small znodes, per-node allocations cost as much as the node record.
//! A name as `Arc<str>` (16 bytes in the node, plus a block with two refcounts) and data as
//! `Option<Bytes>` (32 bytes, plus a block) made the record 136 bytes and added two malloc
//! chunks; a payload is 16 bytes and, for small data, one block holding both.
//!
//! Two forms:
//! * **inline** (data null or at most [`INLINE_DATA_MAX`] bytes): one boxed byte block
//!   `[header][name][data]`. The header is the LEB128 varint of `name_len * 2 + present`
//!   (one byte for names under 64 bytes); when `present` is 1 everything after the name is
//!   the data (possibly empty), when 0 the data is null. An empty block means name `""`
//!   and null data (the header 0 is left out, so such a payload, used for vacant arena
//!   slots, allocates nothing).
//! * **shared** (data above the threshold): the name and a `Bytes` behind one box, so a
//!   read hands out the stored buffer without copying it.
//!
//! The threshold, 128 bytes, trades read cost against memory. Reading inline data copies
//! it into a fresh `Bytes` (one small malloc and memcpy per read), where a shared buffer
//! costs only a refcount; a shared payload costs 80-110 bytes more per node than an inline
//! one with glibc malloc (a 64-byte chunk for the box, the name in a chunk of its own, and,
//! once a read shares the buffer, the `Bytes` refcount block). At 128 bytes the copy is
//! still cheap next to encoding the reply, and the sharing overhead would be most of the
//! data's size; as data grows the copy grows with it while the overhead stays fixed, so
//! larger data is shared (a 1 KiB read stays zero-copy).
//!
//! Invariants: the form is a function of the data (inline iff null or at most
//! `INLINE_DATA_MAX` bytes), so equal contents have equal representations. Every
//! constructor copies what it is given, so a payload never pins a caller's (for example a
//! receive or snapshot-reader) buffer. The name bytes of an inline block come from a
//! `&str` and are never changed in place; [`Payload::name`] still checks they are UTF-8
//! (no `unsafe` here), which costs a few ns for a short name.
//!
//! Cloning deep-copies an inline block (one malloc of the block's size) and shares a large
//! buffer; this happens only when a copy-on-write arena chunk is copied while a snapshot
//! view holds it.

use bytes::Bytes;
use std::fmt;

/// Most data bytes kept inline in a node's block (see the module docs for why 128).
pub(crate) const INLINE_DATA_MAX: usize = 128;

/// A node's name and data. See the module docs.
#[derive(Clone)]
pub(crate) struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    /// `[header][name][data]`, see the module docs.
    Inline(Box<[u8]>),
    /// Data longer than [`INLINE_DATA_MAX`].
    Shared(Box<Shared>),
}

#[derive(Clone)]
struct Shared {
    name: Box<str>,
    data: Bytes,
}

/// Longest LEB128 encoding of a `usize`.
const VARINT_MAX: usize = 10;

/// LEB128 of `v` into `buf`; returns the number of bytes used.
fn put_varint(buf: &mut [u8; VARINT_MAX], mut v: usize) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    i + 1
}

/// Decodes a LEB128 prefix of `b`: `(value, bytes used)`; `(0, 0)` for an empty slice.
#[inline]
fn get_varint(b: &[u8]) -> (usize, usize) {
    match b.first() {
        None => (0, 0),
        Some(&first) if first < 0x80 => (usize::from(first), 1),
        Some(_) => {
            let mut v = 0usize;
            let mut shift = 0;
            for (i, &byte) in b.iter().enumerate() {
                v |= usize::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return (v, i + 1);
                }
                shift += 7;
            }
            // Only blocks built by `inline_block` are decoded, and their header ends.
            panic!("payload: unterminated header");
        }
    }
}

/// Builds an inline block; `data` must be null or at most `INLINE_DATA_MAX` bytes.
fn inline_block(name: &[u8], data: Option<&[u8]>) -> Box<[u8]> {
    let header = name.len() * 2 + usize::from(data.is_some());
    if header == 0 {
        return Box::default();
    }
    let mut head = [0u8; VARINT_MAX];
    let head_len = put_varint(&mut head, header);
    let data = data.unwrap_or_default();
    // Exact capacity, so `into_boxed_slice` does not reallocate.
    let mut block = Vec::with_capacity(head_len + name.len() + data.len());
    block.extend_from_slice(&head[..head_len]);
    block.extend_from_slice(name);
    block.extend_from_slice(data);
    block.into_boxed_slice()
}

/// Splits an inline block into its name bytes and data.
#[inline]
fn split_block(block: &[u8]) -> (&[u8], Option<&[u8]>) {
    let (header, used) = get_varint(block);
    let rest = &block[used..];
    let (name, data) = rest.split_at(header / 2);
    (name, (header & 1 == 1).then_some(data))
}

impl Payload {
    /// Copies `name` and `data` (`None` is null data, distinct from empty).
    pub(crate) fn new(name: &str, data: Option<&[u8]>) -> Payload {
        match data {
            Some(d) if d.len() > INLINE_DATA_MAX => Payload(Repr::Shared(Box::new(Shared {
                name: name.into(),
                data: Bytes::copy_from_slice(d),
            }))),
            _ => Payload(Repr::Inline(inline_block(name.as_bytes(), data))),
        }
    }

    /// The name as bytes (what the name index hashes and compares).
    #[inline]
    pub(crate) fn name_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(b) => split_block(b).0,
            Repr::Shared(s) => s.name.as_bytes(),
        }
    }

    #[inline]
    pub(crate) fn name(&self) -> &str {
        match &self.0 {
            Repr::Inline(b) => match std::str::from_utf8(split_block(b).0) {
                Ok(s) => s,
                Err(_) => panic!("payload: name is not UTF-8 (it was copied from a str)"),
            },
            Repr::Shared(s) => &s.name,
        }
    }

    /// The data, borrowed; `None` is null.
    #[inline]
    pub(crate) fn data(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Inline(b) => split_block(b).1,
            Repr::Shared(s) => Some(&s.data),
        }
    }

    /// Data length, 0 for null.
    #[inline]
    pub(crate) fn data_len(&self) -> usize {
        self.data().map_or(0, <[u8]>::len)
    }

    /// The data as `Bytes` for a reply: large data shares the stored buffer, inline data is
    /// copied (empty data allocates nothing).
    pub(crate) fn data_bytes(&self) -> Option<Bytes> {
        match &self.0 {
            Repr::Inline(b) => split_block(b).1.map(|d| {
                if d.is_empty() {
                    Bytes::new()
                } else {
                    Bytes::copy_from_slice(d)
                }
            }),
            Repr::Shared(s) => Some(s.data.clone()),
        }
    }

    /// Replaces the data (copied), keeping the name.
    pub(crate) fn set_data(&mut self, data: Option<&[u8]>) {
        if let (Repr::Shared(s), Some(d)) = (&mut self.0, data) {
            if d.len() > INLINE_DATA_MAX {
                s.data = Bytes::copy_from_slice(d);
                return;
            }
        }
        let new = Payload::new(self.name(), data);
        *self = new;
    }

    /// Whether this is the allocation-free payload of name `""` and null data.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(&self.0, Repr::Inline(b) if b.is_empty())
    }
}

impl Default for Payload {
    /// Name `""`, null data; allocates nothing.
    fn default() -> Payload {
        Payload(Repr::Inline(Box::default()))
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("name", &String::from_utf8_lossy(self.name_bytes()))
            .field("data_len", &self.data().map(<[u8]>::len))
            .field("shared", &matches!(self.0, Repr::Shared(_)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, data: Option<&[u8]>) {
        let p = Payload::new(name, data);
        assert_eq!(p.name(), name);
        assert_eq!(p.name_bytes(), name.as_bytes());
        assert_eq!(p.data(), data);
        assert_eq!(p.data_len(), data.map_or(0, <[u8]>::len));
        assert_eq!(p.data_bytes().as_deref(), data);
        let shared = matches!(p.0, Repr::Shared(_));
        assert_eq!(shared, data.is_some_and(|d| d.len() > INLINE_DATA_MAX));
        let c = p.clone();
        drop(p);
        assert_eq!(c.name(), name);
        assert_eq!(c.data(), data);
    }

    #[test]
    fn names_and_data_round_trip() {
        let big = vec![7u8; 5000];
        let long_name = "x".repeat(70_000);
        for name in ["", "a", "n00000000", "zookeeper", "ü-ñ-名前", &long_name] {
            for data in [
                None,
                Some(&b""[..]),
                Some(&b"0123456789"[..]),
                Some(&big[..INLINE_DATA_MAX]),
                Some(&big[..INLINE_DATA_MAX + 1]),
                Some(&big[..]),
            ] {
                check(name, data);
            }
        }
    }

    #[test]
    fn null_and_empty_stay_apart() {
        let null = Payload::new("a", None);
        let empty = Payload::new("a", Some(b""));
        assert_eq!(null.data(), None);
        assert_eq!(empty.data(), Some(&b""[..]));
        assert!(null.data_bytes().is_none());
        assert_eq!(empty.data_bytes(), Some(Bytes::new()));
        // The root: empty name, empty (not null) data.
        let root = Payload::new("", Some(b""));
        assert_eq!(root.data(), Some(&b""[..]));
        assert!(!root.is_empty());
        assert!(Payload::new("", None).is_empty());
        assert!(Payload::default().is_empty());
        assert_eq!(Payload::default().name(), "");
        assert_eq!(Payload::default().data(), None);
    }

    #[test]
    fn set_data_moves_between_forms_and_keeps_the_name() {
        let big = vec![1u8; 1024];
        let mut p = Payload::new("node-1", Some(b"small"));
        let steps: [Option<&[u8]>; 7] = [
            Some(&big),
            Some(&big[..200]),
            None,
            Some(b""),
            Some(&big[..INLINE_DATA_MAX]),
            Some(&big[..INLINE_DATA_MAX + 1]),
            Some(b"x"),
        ];
        for d in steps {
            p.set_data(d);
            assert_eq!(p.name(), "node-1");
            assert_eq!(p.data(), d);
        }
    }

    #[test]
    fn large_reads_share_the_stored_buffer() {
        let p = Payload::new("n", Some(&[3u8; 1024]));
        let a = p.data_bytes().unwrap();
        let b = p.data_bytes().unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "no copy per read");
        // A copy of the caller's buffer, not a view of it.
        let src = vec![4u8; 300];
        let q = Payload::new("n", Some(&src));
        assert_ne!(q.data().unwrap().as_ptr(), src.as_ptr());
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0,
            1,
            63,
            64,
            127,
            128,
            300,
            16_383,
            16_384,
            1 << 40,
            usize::MAX,
        ] {
            let mut buf = [0u8; VARINT_MAX];
            let n = put_varint(&mut buf, v);
            assert_eq!(get_varint(&buf[..n]), (v, n));
        }
        assert_eq!(get_varint(&[]), (0, 0));
    }

    #[test]
    fn short_names_with_small_data_take_one_small_block() {
        let p = Payload::new("n00000000", Some(b"0123456789"));
        match &p.0 {
            Repr::Inline(b) => assert_eq!(b.len(), 1 + 9 + 10),
            Repr::Shared(_) => panic!("small data must be inline"),
        }
        assert_eq!(
            std::mem::size_of::<Payload>(),
            2 * std::mem::size_of::<usize>()
        );
    }
}

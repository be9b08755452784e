//! The snapshot a leader streams to a learner on the quorum port right after a `SNAP`
//! packet: ZooKeeper 3.8's `ZKDatabase.serializeSnapshot` followed by a signature.
//!
//! ```text
//! SnapStream = Sessions, AclMap, Nodes, Signature
//! Sessions   = int count, count * { long sessionId, int timeoutMs }    ; HashMap order
//! AclMap     = int count, count * { long aclId, vector<ACL> acls }     ; HashMap order
//! ACL        = int perms, ustring scheme, ustring id
//! Nodes      = { ustring path, buffer data, long aclId, StatPersisted stat }, ustring "/"
//!              ; pre-order from the root, whose path is "" (children in HashSet order)
//!              ; data may be null (len -1) as well as empty
//!              ; aclId -1 = world:anyone ALL of the built-in nodes, never in AclMap
//! StatPersisted = long czxid, long mzxid, long ctime, long mtime, int version,
//!              int cversion, int aversion, long ephemeralOwner, long pzxid     ; 60 bytes
//! Signature  = ustring "BenWasHere"
//! ```
//!
//! This is the grammar of a snapshot *file* ([`crate::snapshot`]) without the file header,
//! without the two Adler-32 seals and without the digest part: the leader
//! (`LearnerHandler.run`, 3.8.0) writes `SerializeUtils.serializeSnapshot` (session count and
//! sessions, then `DataTree.serialize` = `ReferenceCountedACLCache.serialize` + the nodes +
//! `"/"`), then `writeString("BenWasHere")`, straight into the quorum socket's archive. Only
//! `FileSnap` calls `DataTree.serializeZxidDigest`, so the stream never holds a digest and a
//! [`SnapshotSink`]'s `digest` is never called. The learner (`Learner.syncWithLeader`) reads
//! it back with `ZKDatabase.deserializeSnapshot` and fails with "Missing signature" when the
//! next string is not `BenWasHere`; the leader's `NEWLEADER` packet follows.
//!
//! Measured on a real 3.8.0 leader (`tests/fixtures/snapstream`): a client's explicit
//! `world:anyone ALL` list gets its own ACL id (only the built-in nodes use -1), and the
//! sessions, ACL ids and children come in Java hash order, not sorted.
//!
//! Owns: the byte format of that stream, in both directions, on in-memory buffers.
//! Decoding is two-phase, like the other codecs: [`check_snap_stream`] (or a resumable
//! [`SnapStreamScanner`]) says whether a whole stream is at the start of a buffer without
//! allocating, then [`read_snap_stream`] pushes it into a [`SnapshotSink`].
//! Invariants: decoding never panics on arbitrary bytes; every count and length is checked
//! against a named limit before it is trusted; every strict prefix of a valid stream is
//! [`SnapStreamCheck::Incomplete`], never an error. Errors name the byte offset.
//! Threading: plain functions; a scanner belongs to the one task reading the socket.

use crate::error::{BoxError, StorageError};
use crate::snapshot::{
    NodeRecord, SnapshotNode, SnapshotSink, SnapshotSource, END_PATH, STAT_PERSISTED_BYTES,
};
use bytes::Bytes;
use corral_proto::jute::{Reader, Record, Writer};
use corral_proto::records::{Acl, Id, StatPersisted};
use std::fmt;
use std::sync::Arc;

/// The jute string that ends the stream (`LearnerHandler`: `oa.writeString("BenWasHere")`).
pub const SIGNATURE: &str = "BenWasHere";
/// The largest session count a reader accepts.
pub const SESSION_COUNT_MAX: usize = 1 << 24;
/// The largest ACL map a reader accepts, in entries.
pub const ACL_MAP_ENTRIES_MAX: usize = 1 << 24;
/// The longest ACL list a reader accepts, in ACLs (a list arrives in one request, so
/// `jute.maxbuffer` bounds it far below this).
pub const ACL_LIST_LEN_MAX: usize = 1 << 16;
/// The largest path, data or ACL string a reader accepts, in bytes (as for files).
pub const FIELD_BYTES_MAX: usize = crate::snapshot::FIELD_BYTES_MAX;

/// The answer of the check phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapStreamCheck {
    /// More bytes are needed before anything can be said.
    Incomplete,
    /// A whole stream, signature included, spans `buf[..len]`.
    Complete { len: usize },
}

/// Facts about a stream that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapStreamInfo {
    /// Bytes of the stream, signature included; what follows is the next quorum packet.
    pub bytes: usize,
    pub sessions: u64,
    pub acls: u64,
    pub nodes: u64,
}

/// Why a stream cannot be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapStreamError {
    /// The bytes break the grammar or a limit.
    #[error("corrupt SNAP stream at offset {offset}: {reason}")]
    Corrupt { offset: usize, reason: String },
    /// `read_snap_stream` was given a buffer that ends inside the stream.
    #[error("SNAP stream is incomplete: {bytes} bytes do not hold the whole stream")]
    Incomplete { bytes: usize },
    /// The sink rejected the item that starts at `offset`.
    #[error("SNAP stream at offset {offset}: {source}")]
    Sink {
        offset: usize,
        source: Arc<BoxError>,
    },
    /// The source failed or broke its contract while writing.
    #[error("SNAP stream source: {0}")]
    Source(#[from] StorageError),
}

fn corrupt(offset: usize, reason: impl Into<String>) -> Stop {
    Stop::Err(SnapStreamError::Corrupt {
        offset,
        reason: reason.into(),
    })
}

// ---- encoding ------------------------------------------------------------------------

/// Serialises `source` as the body + signature a leader sends after `SNAP`, appending to
/// `out`. Refuses (leaving `out` as it was) a source that breaks its contract or holds
/// what this module's reader would reject, so corral never sends what it cannot read.
pub fn write_snap_stream(
    source: &dyn SnapshotSource,
    out: &mut Vec<u8>,
) -> Result<(), SnapStreamError> {
    let start = out.len();
    let r = write_body(source, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn contract(msg: String) -> StorageError {
    StorageError::Source(msg)
}

fn put_buffer(out: &mut Vec<u8>, what: &str, b: Option<&[u8]>) -> crate::Result<()> {
    match b {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            if b.len() > FIELD_BYTES_MAX {
                return Err(contract(format!(
                    "{what} of {} bytes exceeds {FIELD_BYTES_MAX} bytes",
                    b.len()
                )));
            }
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

fn put_count(out: &mut Vec<u8>, what: &str, n: usize, max: usize) -> crate::Result<()> {
    if n > max {
        return Err(contract(format!("{what} {n} exceeds {max}")));
    }
    out.extend_from_slice(&(n as i32).to_be_bytes());
    Ok(())
}

fn write_body(source: &dyn SnapshotSource, out: &mut Vec<u8>) -> Result<(), SnapStreamError> {
    let sessions = source.session_count();
    put_count(out, "session count", sessions, SESSION_COUNT_MAX)?;
    let mut seen = 0usize;
    source.visit_sessions(&mut |id, timeout| {
        seen += 1;
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&timeout.to_be_bytes());
        Ok(())
    })?;
    if seen != sessions {
        return Err(contract(format!(
            "session_count() said {sessions} but {seen} sessions were visited"
        ))
        .into());
    }

    let acls = source.acl_count();
    put_count(out, "ACL map size", acls, ACL_MAP_ENTRIES_MAX)?;
    let mut seen = 0usize;
    source.visit_acls(&mut |id, list| {
        seen += 1;
        out.extend_from_slice(&id.to_be_bytes());
        put_count(out, "ACL list length", list.len(), ACL_LIST_LEN_MAX)?;
        for a in list {
            out.extend_from_slice(&a.perms.to_be_bytes());
            put_buffer(out, "ACL scheme", Some(a.id.scheme.as_bytes()))?;
            put_buffer(out, "ACL id", Some(a.id.id.as_bytes()))?;
        }
        Ok(())
    })?;
    if seen != acls {
        return Err(contract(format!(
            "acl_count() said {acls} but {seen} ACL entries were visited"
        ))
        .into());
    }

    let mut first = true;
    source.visit_nodes(&mut |n: NodeRecord<'_>| {
        if first && !n.path.is_empty() {
            return Err(contract(format!(
                "the first node must be the root \"\", not {:?}",
                n.path
            )));
        }
        if n.path == END_PATH {
            return Err(contract(
                "a node's path is \"/\", which ends the node list".into(),
            ));
        }
        first = false;
        put_buffer(out, "node path", Some(n.path.as_bytes()))?;
        put_buffer(out, "node data", n.data)?;
        let mut enc = Writer::with_capacity(8 + STAT_PERSISTED_BYTES);
        enc.write_i64(n.acl_id);
        n.stat.write(&mut enc);
        out.extend_from_slice(enc.as_slice());
        Ok(())
    })?;
    if first {
        return Err(contract("the source has no nodes (not even the root)".into()).into());
    }
    put_buffer(out, "end of nodes", Some(END_PATH.as_bytes()))?;
    put_buffer(out, "signature", Some(SIGNATURE.as_bytes()))?;
    Ok(())
}

// ---- decoding ------------------------------------------------------------------------

/// How a step of the walk stops early.
enum Stop {
    /// The buffer ends inside the item: wait for more bytes.
    Incomplete,
    Err(SnapStreamError),
}

/// A read-only cursor over the buffer; running out of bytes is [`Stop::Incomplete`].
struct Peek<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Peek<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let b = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..n))
            .ok_or(Stop::Incomplete)?;
        self.pos += n;
        Ok(b)
    }

    fn i32(&mut self) -> Result<i32, Stop> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, Stop> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }

    /// A count in `0..=max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, Stop> {
        let off = self.pos;
        let n = self.i32()?;
        if n < 0 || n as usize > max {
            return Err(corrupt(off, format!("bad {what} {n} (limit {max})")));
        }
        Ok(n as usize)
    }

    /// A jute buffer: `int len` (-1 = null), then at most [`FIELD_BYTES_MAX`] bytes.
    fn buffer(&mut self, what: &str) -> Result<Option<&'a [u8]>, Stop> {
        let off = self.pos;
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || n as usize > FIELD_BYTES_MAX {
            return Err(corrupt(
                off,
                format!("bad length {n} of {what} (limit {FIELD_BYTES_MAX})"),
            ));
        }
        self.take(n as usize).map(Some)
    }

    /// A jute ustring that must not be null.
    fn string(&mut self, what: &str) -> Result<&'a [u8], Stop> {
        let off = self.pos;
        self.buffer(what)?
            .ok_or_else(|| corrupt(off, format!("null {what}")))
    }
}

/// Java's `readString` decodes UTF-8 leniently; so does this reader.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Where the walk is in the grammar; the scanner only ever stops between items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    SessionCount,
    Sessions {
        left: usize,
    },
    AclCount,
    Acls {
        left: usize,
    },
    Nodes,
    Signature,
    Done,
}

/// The check phase, resumable: call [`SnapStreamScanner::scan`] with the buffer each time
/// more bytes have been appended to it, and it resumes after the last whole item instead
/// of rescanning a large snapshot from the start. It holds no bytes.
#[derive(Debug, Clone, Default)]
pub struct SnapStreamScanner {
    pos: usize,
    phase: Phase,
    sessions: u64,
    acls: u64,
    nodes: u64,
}

impl SnapStreamScanner {
    pub fn new() -> SnapStreamScanner {
        SnapStreamScanner::default()
    }

    /// Bytes of whole items scanned so far.
    pub fn scanned_bytes(&self) -> usize {
        self.pos
    }

    /// Scans on from where the last call stopped. `buf` must start with the same bytes as
    /// on every earlier call (the stream so far, grown at the end); a shorter buffer is
    /// [`SnapStreamCheck::Incomplete`]. After an error the scanner stays at the bad item.
    pub fn scan(&mut self, buf: &[u8]) -> Result<SnapStreamCheck, SnapStreamError> {
        match self.walk(buf, None) {
            Ok(()) => Ok(SnapStreamCheck::Complete { len: self.pos }),
            Err(Stop::Incomplete) => Ok(SnapStreamCheck::Incomplete),
            Err(Stop::Err(e)) => Err(e),
        }
    }

    /// Advances item by item to [`Phase::Done`], handing each item to `sink` if given.
    fn walk(&mut self, buf: &[u8], mut sink: Option<&mut dyn SnapshotSink>) -> Result<(), Stop> {
        loop {
            let mut p = Peek { buf, pos: self.pos };
            let start = self.pos;
            let next = match self.phase {
                Phase::Done => return Ok(()),
                Phase::SessionCount => match p.count("session count", SESSION_COUNT_MAX)? {
                    0 => Phase::AclCount,
                    n => Phase::Sessions { left: n },
                },
                Phase::Sessions { left } => {
                    let id = p.i64()?;
                    let timeout = p.i32()?;
                    if let Some(s) = sink.as_deref_mut() {
                        deliver(start, s.session(id, timeout))?;
                    }
                    self.sessions += 1;
                    match left - 1 {
                        0 => Phase::AclCount,
                        n => Phase::Sessions { left: n },
                    }
                }
                Phase::AclCount => match p.count("ACL map size", ACL_MAP_ENTRIES_MAX)? {
                    0 => Phase::Nodes,
                    n => Phase::Acls { left: n },
                },
                Phase::Acls { left } => {
                    let id = p.i64()?;
                    let n = p.count("ACL list length", ACL_LIST_LEN_MAX)?;
                    let list_at = p.pos;
                    for _ in 0..n {
                        p.i32()?;
                        p.string("ACL scheme")?;
                        p.string("ACL id")?;
                    }
                    if let Some(s) = sink.as_deref_mut() {
                        // The whole list is here, so its allocation is bounded by `buf`.
                        let mut q = Peek { buf, pos: list_at };
                        let mut list = Vec::with_capacity(n);
                        for _ in 0..n {
                            let perms = q.i32()?;
                            let scheme = text(q.string("ACL scheme")?);
                            let ident = text(q.string("ACL id")?);
                            list.push(Acl {
                                perms,
                                id: Id { scheme, id: ident },
                            });
                        }
                        deliver(start, s.acl(id, list))?;
                    }
                    self.acls += 1;
                    match left - 1 {
                        0 => Phase::Nodes,
                        n => Phase::Acls { left: n },
                    }
                }
                Phase::Nodes => {
                    let path = p.string("node path")?;
                    if path == END_PATH.as_bytes() {
                        Phase::Signature
                    } else {
                        let data = p.buffer("node data")?;
                        let acl_id = p.i64()?;
                        let stat_bytes = p.take(STAT_PERSISTED_BYTES)?;
                        if let Some(s) = sink.as_deref_mut() {
                            let stat = StatPersisted::read(&mut Reader::from_slice(stat_bytes))
                                .map_err(|e| corrupt(start, format!("node stat: {e}")))?;
                            let node = SnapshotNode {
                                path: text(path),
                                data: data.map(Bytes::copy_from_slice),
                                acl_id,
                                stat,
                            };
                            deliver(start, s.node(node))?;
                        }
                        self.nodes += 1;
                        Phase::Nodes
                    }
                }
                Phase::Signature => {
                    let n = p.i32()?;
                    if n != SIGNATURE.len() as i32 {
                        return Err(corrupt(
                            start,
                            format!(
                                "the nodes end but the signature has length {n}, not {} \
                                 ({SIGNATURE:?})",
                                SIGNATURE.len()
                            ),
                        ));
                    }
                    let sig = p.take(SIGNATURE.len())?;
                    if sig != SIGNATURE.as_bytes() {
                        return Err(corrupt(
                            start,
                            format!("missing signature: got {:?}, not {SIGNATURE:?}", text(sig)),
                        ));
                    }
                    Phase::Done
                }
            };
            self.pos = p.pos;
            self.phase = next;
        }
    }
}

fn deliver(offset: usize, r: Result<(), BoxError>) -> Result<(), Stop> {
    r.map_err(|e| {
        Stop::Err(SnapStreamError::Sink {
            offset,
            source: Arc::new(e),
        })
    })
}

/// Is a whole body + signature at the start of `buf`? Never allocates, never panics.
/// Bytes after the stream (the leader's `NEWLEADER`) are left alone: `len` says where the
/// stream ends.
pub fn check_snap_stream(buf: &[u8]) -> Result<SnapStreamCheck, SnapStreamError> {
    SnapStreamScanner::new().scan(buf)
}

/// Parses the stream at the start of `buf` into `sink` (sessions, ACL entries, nodes, in
/// stream order; never a digest, the stream has none). The whole stream is checked first,
/// so the sink sees nothing of a malformed or incomplete one; after a sink error it has
/// seen a prefix and must be discarded.
pub fn read_snap_stream(
    buf: &[u8],
    sink: &mut dyn SnapshotSink,
) -> Result<SnapStreamInfo, SnapStreamError> {
    match check_snap_stream(buf)? {
        SnapStreamCheck::Incomplete => {
            return Err(SnapStreamError::Incomplete { bytes: buf.len() })
        }
        SnapStreamCheck::Complete { .. } => {}
    }
    let mut s = SnapStreamScanner::new();
    match s.walk(buf, Some(sink)) {
        Ok(()) => Ok(SnapStreamInfo {
            bytes: s.pos,
            sessions: s.sessions,
            acls: s.acls,
            nodes: s.nodes,
        }),
        Err(Stop::Incomplete) => Err(SnapStreamError::Incomplete { bytes: buf.len() }),
        Err(Stop::Err(e)) => Err(e),
    }
}

impl fmt::Display for SnapStreamInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes: {} sessions, {} ACL lists, {} nodes",
            self.bytes, self.sessions, self.acls, self.nodes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SnapshotImage;

    fn stream(img: &SnapshotImage) -> Vec<u8> {
        let mut out = Vec::new();
        write_snap_stream(img, &mut out).unwrap();
        out
    }

    #[test]
    fn initial_tree_stream_layout() {
        let out = stream(&SnapshotImage::initial());
        // no sessions; ACL 1 = world:anyone READ; four nodes; "/"; signature.
        assert_eq!(&out[..4], &0i32.to_be_bytes());
        assert_eq!(&out[4..8], &1i32.to_be_bytes());
        assert!(out.ends_with(b"\x00\x00\x00\x01/\x00\x00\x00\x0aBenWasHere"));
        assert_eq!(
            check_snap_stream(&out).unwrap(),
            SnapStreamCheck::Complete { len: out.len() }
        );
        let mut back = SnapshotImage::default();
        let info = read_snap_stream(&out, &mut back).unwrap();
        assert_eq!((info.sessions, info.acls, info.nodes), (0, 1, 4));
        assert_eq!(back.nodes, SnapshotImage::initial().nodes);
        assert_eq!(back.digest, None, "the stream carries no digest");
    }

    #[test]
    fn wrong_signature_names_its_offset() {
        let mut out = stream(&SnapshotImage::initial());
        let at = out.len() - 14;
        let last = out.len() - 1;
        out[last] = b'X';
        match check_snap_stream(&out) {
            Err(SnapStreamError::Corrupt { offset, reason }) => {
                assert_eq!(offset, at);
                assert!(reason.contains("missing signature"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writer_refuses_a_node_named_like_the_terminator() {
        let mut img = SnapshotImage::initial();
        let n = img.nodes[""].clone();
        img.nodes.insert("/".into(), n);
        let mut out = vec![7];
        assert!(matches!(
            write_snap_stream(&img, &mut out),
            Err(SnapStreamError::Source(_))
        ));
        assert_eq!(out, vec![7], "out is left as it was");
    }
}

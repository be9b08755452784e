//! Snapshots: ZooKeeper 3.8's `FileSnap` format, written and read as a stream.
//!
//! ```text
//! Snapshot   = FileHeader, Sessions, AclMap, Nodes, Seal, [Digest, Seal, [LastZxid, Seal]]
//! FileHeader = int magic (0x5A4B534E "ZKSN"), int version (2), long dbid (-1)
//! Sessions   = int count, count * { long sessionId, int timeoutMs }
//! AclMap     = int count, count * { long aclId, vector<ACL> acls }   ; vector never null
//! ACL        = int perms, ustring scheme, ustring id
//! Nodes      = { ustring path, buffer data, long aclId, StatPersisted stat }, ustring "/"
//!              ; pre-order, parent before child, the root's path is "" (empty)
//!              ; data may be null (len -1) as well as empty
//!              ; aclId -1 = world:anyone ALL, implicit: never in AclMap
//! StatPersisted = long czxid, long mzxid, long ctime, long mtime, int version,
//!              int cversion, int aversion, long ephemeralOwner, long pzxid     ; 60 bytes
//! Seal       = long adler32, ustring "/"
//!              ; adler32 = Adler-32 of every byte of the file before this field
//!              ; (the second seal's sum covers the first seal too)
//! Digest     = long zxid, int digestVersion (2), long treeDigest     ; 3.6+, digest on
//!              ; digestVersion < 2 stores treeDigest as a ustring of hex instead
//! LastZxid   = long lastProcessedZxid                                 ; 3.9+ only
//! ```
//!
//! Measured on files ZooKeeper 3.8.0 wrote (tests/fixtures/zk380): a fresh server's
//! `snapshot.0` holds `""`, `/zookeeper`, `/zookeeper/config` (aclId 1 = world:anyone READ,
//! the first map entry) and `/zookeeper/quota`; the digest part is `{0, 2, 0}` when no txn
//! has been applied yet; the file always ends in the 5 bytes `00 00 00 01 2f`.
//!
//! Owns: the byte format, the atomic write (temp file, fsync, rename, fsync directory) and
//! the two traits that keep it independent of the tree: the writer pulls from a
//! [`SnapshotSource`], the reader pushes into a [`SnapshotSink`].
//! Invariants: a snapshot only ever appears under its final name complete and fsynced;
//! reading checks both seals and never trusts a count or length beyond the bytes left.

use crate::cursor::{CheckedWriter, FileCursor, ReadError};
use crate::error::{BoxError, Result, StorageError};
use crate::fs::FileSystem;
use crate::layout::{self, TMP_SUFFIX};
use bytes::Bytes;
use corral_proto::jute::{Record, Writer};
use corral_proto::records::{Acl, Id, StatPersisted};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// "ZKSN".
pub const SNAP_MAGIC: i32 = 0x5A4B_534E;
/// The snapshot format version ZooKeeper writes.
pub const SNAP_VERSION: i32 = 2;
/// The dbid ZooKeeper writes into snapshot headers.
pub const SNAP_DB_ID: i64 = -1;
/// The ACL id meaning world:anyone with all permissions; it is never in the ACL map.
pub const OPEN_ACL_UNSAFE_ID: i64 = -1;
/// The digest version ZooKeeper 3.6+ computes.
pub const DIGEST_VERSION: i32 = 2;
/// A snapshot shorter than this many bytes is never valid (ZooKeeper's check).
pub const SNAPSHOT_MIN_BYTES: u64 = 10;
/// How many of the newest snapshots recovery tries.
pub const SNAPSHOTS_TRIED_MAX: usize = 100;
/// The path that ends the node list and follows each checksum.
pub const END_PATH: &str = "/";
/// The largest path, data or ACL string a reader accepts, in bytes.
pub const FIELD_BYTES_MAX: usize = crate::log::ENTRY_BYTES_MAX;
/// Size of `StatPersisted` in bytes.
pub const STAT_PERSISTED_BYTES: usize = 60;
/// The fewest bytes a node record can take: path length and one byte of path, data length
/// (null data), ACL id and stat.
pub const NODE_RECORD_BYTES_MIN: u64 = 4 + 1 + 4 + 8 + STAT_PERSISTED_BYTES as u64;
/// The last bytes of every complete snapshot: `ustring "/"`.
pub const SNAPSHOT_TAIL: [u8; 5] = [0, 0, 0, 1, b'/'];

/// `{ long zxid; int digestVersion; long treeDigest }`: the tree digest at a zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

impl ZxidDigest {
    /// What ZooKeeper writes when no txn has been applied yet.
    pub const EMPTY: ZxidDigest = ZxidDigest {
        zxid: 0,
        version: DIGEST_VERSION,
        digest: 0,
    };
}

/// One node as a source hands it to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRecord<'a> {
    /// Full path; the root is `""`.
    pub path: &'a str,
    /// `None` for null data (a create with null data), distinct from empty.
    pub data: Option<&'a [u8]>,
    /// Key into the ACL map, or [`OPEN_ACL_UNSAFE_ID`].
    pub acl_id: i64,
    pub stat: StatPersisted,
}

/// One node as the reader hands it to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    pub path: String,
    pub data: Option<Bytes>,
    pub acl_id: i64,
    pub stat: StatPersisted,
}

impl SnapshotNode {
    pub fn as_record(&self) -> NodeRecord<'_> {
        NodeRecord {
            path: &self.path,
            data: self.data.as_deref(),
            acl_id: self.acl_id,
            stat: self.stat,
        }
    }
}

/// What the snapshot writer pulls from (the tree implements this for itself).
///
/// Contract: `visit_sessions` visits exactly `session_count()` sessions and `visit_acls`
/// exactly `acl_count()` entries (the counts are written first); `visit_nodes` visits the
/// root (path `""`) first and every parent before its children. Callbacks return the
/// writer's error, which the visitor must pass straight back.
pub trait SnapshotSource {
    fn session_count(&self) -> usize;
    /// `f(session_id, timeout_ms)`.
    fn visit_sessions(&self, f: &mut dyn FnMut(i64, i32) -> Result<()>) -> Result<()>;
    fn acl_count(&self) -> usize;
    /// `f(acl_id, acls)`.
    fn visit_acls(&self, f: &mut dyn FnMut(i64, &[Acl]) -> Result<()>) -> Result<()>;
    fn visit_nodes(&self, f: &mut dyn FnMut(NodeRecord<'_>) -> Result<()>) -> Result<()>;
    /// The digest to store (the tree digest at the last applied zxid when the snapshot
    /// started; [`ZxidDigest::EMPTY`] when none).
    fn digest(&self) -> ZxidDigest;
}

/// What the snapshot reader pushes into, in file order: sessions, ACL entries, nodes,
/// then the digest (only when the file has one). An error aborts the read and is
/// reported as [`StorageError::Sink`] with the file and offset.
pub trait SnapshotSink {
    /// Called once, before anything else, with the length of the file being read, so a
    /// sink can size its tables for the nodes to come (every node record takes at least
    /// [`NODE_RECORD_BYTES_MIN`] bytes).
    fn expect_bytes(&mut self, _file_bytes: u64) {}
    fn session(&mut self, session_id: i64, timeout_ms: i32) -> Result<(), BoxError>;
    fn acl(&mut self, acl_id: i64, acls: Vec<Acl>) -> Result<(), BoxError>;
    fn node(&mut self, node: SnapshotNode) -> Result<(), BoxError>;
    /// A node as the reader has it, borrowed from its read buffer. The reader calls this
    /// one; the default copies it into a [`SnapshotNode`] for [`Self::node`]. A sink that
    /// keeps only parts of a node overrides it to copy just those (loading a million nodes
    /// then allocates nothing per node but what the tree keeps).
    fn node_ref(&mut self, node: NodeRecord<'_>) -> Result<(), BoxError> {
        self.node(SnapshotNode {
            path: node.path.to_string(),
            data: node.data.map(Bytes::copy_from_slice),
            acl_id: node.acl_id,
            stat: node.stat,
        })
    }
    fn digest(&mut self, digest: ZxidDigest) -> Result<(), BoxError>;
}

/// A sink that keeps nothing (to verify a snapshot's bytes and checksums).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl SnapshotSink for NullSink {
    fn session(&mut self, _: i64, _: i32) -> Result<(), BoxError> {
        Ok(())
    }
    fn acl(&mut self, _: i64, _: Vec<Acl>) -> Result<(), BoxError> {
        Ok(())
    }
    fn node(&mut self, _: SnapshotNode) -> Result<(), BoxError> {
        Ok(())
    }
    fn node_ref(&mut self, _: NodeRecord<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    fn digest(&mut self, _: ZxidDigest) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Facts about a snapshot that was read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// The zxid in the file name (`None` when the name does not carry one).
    pub zxid: Option<i64>,
    pub bytes: u64,
    pub sessions: u64,
    pub acls: u64,
    pub nodes: u64,
    /// The digest part (absent in snapshots from before 3.6).
    pub digest: Option<ZxidDigest>,
    /// The 3.9+ trailing `lastProcessedZxid`, when present.
    pub last_processed_zxid: Option<i64>,
}

/// ZooKeeper's `SnapStream.isValidCheckedStream`: at least [`SNAPSHOT_MIN_BYTES`] long and
/// ending in [`SNAPSHOT_TAIL`]. Cheap; says the file was completed, not that it is intact.
pub fn has_valid_tail(fs: &dyn FileSystem, path: &Path) -> Result<bool> {
    let f = fs
        .open_read(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = f.len();
    if len < SNAPSHOT_MIN_BYTES {
        return Ok(false);
    }
    let mut tail = [0u8; 5];
    f.read_exact_at(len - 5, &mut tail)
        .map_err(|e| StorageError::io("read", path, e))?;
    Ok(tail == SNAPSHOT_TAIL)
}

/// Writes the snapshot of `source` as `snap_dir/snapshot.<hex zxid>`: into
/// `snapshot.<hex>.tmp` first, fsynced, renamed, then the directory fsynced. An existing
/// snapshot of the same name is replaced. On error the temp file is removed.
pub fn write_snapshot(
    fs: &dyn FileSystem,
    snap_dir: &Path,
    zxid: i64,
    source: &dyn SnapshotSource,
) -> Result<SnapshotInfo> {
    fs.create_dir_all(snap_dir)
        .map_err(|e| StorageError::io("create directory", snap_dir, e))?;
    let name = layout::snapshot_file_name(zxid);
    let path = snap_dir.join(&name);
    let tmp = snap_dir.join(format!("{name}{TMP_SUFFIX}"));
    let r = write_to(fs, &tmp, source).and_then(|mut info| {
        fs.rename(&tmp, &path)
            .map_err(|e| StorageError::io("rename", &tmp, e))?;
        fs.sync_dir(snap_dir)
            .map_err(|e| StorageError::io("fsync directory", snap_dir, e))?;
        info.path = path.clone();
        info.zxid = Some(zxid);
        Ok(info)
    });
    if r.is_err() && fs.exists(&tmp) {
        let _ = fs.remove_file(&tmp);
    }
    r
}

fn write_seal(w: &mut CheckedWriter<'_>) -> Result<()> {
    let sum = w.checksum() as i64;
    w.write(&sum.to_be_bytes())?;
    write_string(w, END_PATH)
}

fn write_string(w: &mut CheckedWriter<'_>, s: &str) -> Result<()> {
    write_buffer(w, Some(s.as_bytes()))
}

fn write_buffer(w: &mut CheckedWriter<'_>, b: Option<&[u8]>) -> Result<()> {
    match b {
        None => w.write(&(-1i32).to_be_bytes()),
        Some(b) => {
            w.write(&(b.len() as i32).to_be_bytes())?;
            w.write(b)
        }
    }
}

/// Streams `source` into `path` and fsyncs it.
fn write_to(fs: &dyn FileSystem, path: &Path, source: &dyn SnapshotSource) -> Result<SnapshotInfo> {
    let mut file = fs
        .create(path)
        .map_err(|e| StorageError::io("create", path, e))?;
    let mut w = CheckedWriter::new(&mut *file, path);
    let mut hdr = Writer::with_capacity(16);
    hdr.write_i32(SNAP_MAGIC);
    hdr.write_i32(SNAP_VERSION);
    hdr.write_i64(SNAP_DB_ID);
    w.write(hdr.as_slice())?;

    let sessions = source.session_count();
    w.write(&(sessions as i32).to_be_bytes())?;
    let mut seen = 0u64;
    source.visit_sessions(&mut |id, timeout| {
        seen += 1;
        w.write(&id.to_be_bytes())?;
        w.write(&timeout.to_be_bytes())
    })?;
    if seen != sessions as u64 {
        return Err(StorageError::Source(format!(
            "session_count() said {sessions} but {seen} sessions were visited"
        )));
    }

    let acls = source.acl_count();
    w.write(&(acls as i32).to_be_bytes())?;
    let mut seen_acls = 0u64;
    source.visit_acls(&mut |id, list| {
        seen_acls += 1;
        let mut enc = Writer::new();
        enc.write_i64(id);
        enc.write_i32(list.len() as i32);
        for a in list {
            a.write(&mut enc);
        }
        w.write(enc.as_slice())
    })?;
    if seen_acls != acls as u64 {
        return Err(StorageError::Source(format!(
            "acl_count() said {acls} but {seen_acls} ACL entries were visited"
        )));
    }

    let mut nodes = 0u64;
    source.visit_nodes(&mut |n| {
        if nodes == 0 && !n.path.is_empty() {
            return Err(StorageError::Source(format!(
                "the first node must be the root \"\", not {:?}",
                n.path
            )));
        }
        nodes += 1;
        write_string(&mut w, n.path)?;
        write_buffer(&mut w, n.data)?;
        let mut enc = Writer::with_capacity(8 + STAT_PERSISTED_BYTES);
        enc.write_i64(n.acl_id);
        n.stat.write(&mut enc);
        w.write(enc.as_slice())
    })?;
    write_string(&mut w, END_PATH)?;
    write_seal(&mut w)?;

    let d = source.digest();
    if d.version < DIGEST_VERSION {
        return Err(StorageError::Source(format!(
            "cannot write digest version {} (only {DIGEST_VERSION} and later)",
            d.version
        )));
    }
    let mut enc = Writer::with_capacity(20);
    enc.write_i64(d.zxid);
    enc.write_i32(d.version);
    enc.write_i64(d.digest);
    w.write(enc.as_slice())?;
    write_seal(&mut w)?;
    w.flush()?;
    let bytes = w.position();
    drop(w);
    file.sync_all()
        .map_err(|e| StorageError::io("fsync", path, e))?;
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        zxid: None,
        bytes,
        sessions: sessions as u64,
        acls: acls as u64,
        nodes,
        digest: Some(d),
        last_processed_zxid: None,
    })
}

/// Reading state: the cursor plus the file name for errors.
struct SnapReader<'a> {
    c: FileCursor<'a>,
    path: &'a Path,
}

impl SnapReader<'_> {
    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::CorruptSnapshot {
            file: self.path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    fn lift(&self, e: ReadError, what: &str) -> StorageError {
        match e {
            ReadError::Io(e) => e,
            ReadError::Eof { offset } => self.corrupt(offset, format!("file ends inside {what}")),
        }
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        self.c.read_i32().map_err(|e| self.lift(e, what))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        self.c.read_i64().map_err(|e| self.lift(e, what))
    }

    /// A count of items of at least `min_item_bytes` each; bounded by the bytes left.
    fn count(&mut self, what: &str, min_item_bytes: u64) -> Result<u64> {
        let off = self.c.position();
        let n = self.i32(what)?;
        if n < 0 || (n as u64).saturating_mul(min_item_bytes) > self.c.remaining() {
            return Err(self.corrupt(off, format!("bad {what} {n}")));
        }
        Ok(n as u64)
    }

    fn buffer(&mut self, what: &str) -> Result<Option<Vec<u8>>> {
        let off = self.c.position();
        let n = self.i32(what)?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || n as usize > FIELD_BYTES_MAX {
            return Err(self.corrupt(off, format!("bad length {n} of {what}")));
        }
        match self.c.take(n as usize) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) => Err(self.lift(e, what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let off = self.c.position();
        match self.buffer(what)? {
            Some(b) => Ok(match String::from_utf8(b) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
            None => Err(self.corrupt(off, format!("null {what}"))),
        }
    }

    fn seal(&mut self, which: &str) -> Result<()> {
        let off = self.c.position();
        let expected = self.c.checksum() as i64;
        let stored = self.i64(which)?;
        let s_off = self.c.position();
        let s = self.string(which)?;
        if stored != expected {
            return Err(self.corrupt(
                off,
                format!("{which} mismatch (stored 0x{stored:x}, computed 0x{expected:x})"),
            ));
        }
        if s != END_PATH {
            return Err(self.corrupt(s_off, format!("{which} is followed by {s:?}, not \"/\"")));
        }
        Ok(())
    }

    /// Measures the node record at `off` without consuming it: `None` for the `"/"` that
    /// ends the node list (then consumed), else `(layout, record bytes)`. Every length is
    /// bounded before it is used, and a record the file ends inside is an error naming
    /// the field.
    fn node_record(&mut self, off: u64) -> Result<Option<(NodeLayout, usize)>> {
        let path_len = self.len_at(0, "node path", false)?;
        let Some(path_len) = path_len else {
            return Err(self.corrupt(off, "null node path"));
        };
        let head = self.c.peek(4 + path_len)?;
        if head.len() < 4 + path_len {
            return Err(self.corrupt(off, "file ends inside node path"));
        }
        if &head[4..] == END_PATH.as_bytes() {
            if let Err(e) = self.c.take(4 + path_len) {
                return Err(self.lift(e, "node path"));
            }
            return Ok(None);
        }
        let data_len = self.len_at(4 + path_len, "node data", true)?;
        let total = 4 + path_len + 4 + data_len.unwrap_or(0) + 8 + STAT_PERSISTED_BYTES;
        let have = self.c.peek(total)?.len();
        if have < total {
            let what = if have < total - 8 - STAT_PERSISTED_BYTES {
                "node data"
            } else if have < total - STAT_PERSISTED_BYTES {
                "node ACL id"
            } else {
                "node stat"
            };
            let at = self.c.position() + have as u64;
            return Err(self.corrupt(at, format!("file ends inside {what}")));
        }
        Ok(Some((NodeLayout { path_len, data_len }, total)))
    }

    /// The buffer length (`int`, -1 = null when `nullable`) at `rel` bytes past the read
    /// position, checked against [`FIELD_BYTES_MAX`].
    fn len_at(&mut self, rel: usize, what: &str, nullable: bool) -> Result<Option<usize>> {
        let at = self.c.position() + rel as u64;
        let b = self.c.peek(rel + 4)?;
        if b.len() < rel + 4 {
            return Err(self.corrupt(at, format!("file ends inside {what}")));
        }
        let n = i32::from_be_bytes([b[rel], b[rel + 1], b[rel + 2], b[rel + 3]]);
        if n == -1 {
            if nullable {
                return Ok(None);
            }
            return Err(self.corrupt(at, format!("null {what}")));
        }
        if n < 0 || n as usize > FIELD_BYTES_MAX {
            return Err(self.corrupt(at, format!("bad length {n} of {what}")));
        }
        Ok(Some(n as usize))
    }

    fn sink<T>(&self, off: u64, r: Result<T, BoxError>) -> Result<T> {
        r.map_err(|e| StorageError::Sink {
            file: self.path.to_path_buf(),
            offset: off,
            source: Arc::new(e),
        })
    }
}

/// Where the fields of one node record are (see [`SnapReader::node_record`]).
#[derive(Debug, Clone, Copy)]
struct NodeLayout {
    path_len: usize,
    /// `None` for null data.
    data_len: Option<usize>,
}

/// The node in `rec` (exactly one record, measured by [`SnapReader::node_record`]). A path
/// that is not UTF-8 is taken lossily into `lossy`, as ZooKeeper's reader decodes it.
fn parse_node<'a>(rec: &'a [u8], l: NodeLayout, lossy: &'a mut String) -> NodeRecord<'a> {
    let path_bytes = &rec[4..4 + l.path_len];
    let path = match std::str::from_utf8(path_bytes) {
        Ok(p) => p,
        Err(_) => {
            *lossy = String::from_utf8_lossy(path_bytes).into_owned();
            lossy.as_str()
        }
    };
    let mut at = 4 + l.path_len + 4;
    let data = l.data_len.map(|n| {
        let d = &rec[at..at + n];
        at += n;
        d
    });
    let acl_id = be_i64(&rec[at..]);
    at += 8;
    NodeRecord {
        path,
        data,
        acl_id,
        stat: stat_from_bytes(&rec[at..at + STAT_PERSISTED_BYTES]),
    }
}

/// The big-endian long at the start of `b` (at least 8 bytes).
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// The big-endian int at the start of `b` (at least 4 bytes).
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// `StatPersisted` from its 60 bytes (the layout in the grammar above), without the
/// allocation a jute `Reader` would make for each of a million nodes.
fn stat_from_bytes(b: &[u8]) -> StatPersisted {
    StatPersisted {
        czxid: be_i64(&b[0..]),
        mzxid: be_i64(&b[8..]),
        ctime: be_i64(&b[16..]),
        mtime: be_i64(&b[24..]),
        version: be_i32(&b[32..]),
        cversion: be_i32(&b[36..]),
        aversion: be_i32(&b[40..]),
        ephemeral_owner: be_i64(&b[44..]),
        pzxid: be_i64(&b[52..]),
    }
}

/// Reads the snapshot at `path` into `sink`, checking the header, every length and both
/// checksums. On error the sink has seen a prefix of the snapshot and must be discarded.
pub fn read_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
    sink: &mut dyn SnapshotSink,
) -> Result<SnapshotInfo> {
    let file = fs
        .open_read(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = file.len();
    let mut r = SnapReader {
        c: FileCursor::new(&*file, path, 0).with_checksum(),
        path,
    };
    sink.expect_bytes(len);
    if len < SNAPSHOT_MIN_BYTES {
        return Err(r.corrupt(0, format!("file of {len} bytes is too short")));
    }
    let magic = r.i32("file header")?;
    if magic != SNAP_MAGIC {
        return Err(r.corrupt(
            0,
            format!("bad magic 0x{magic:08x} (expected 0x{SNAP_MAGIC:08x} \"ZKSN\")"),
        ));
    }
    let version = r.i32("file header")?;
    if version != SNAP_VERSION {
        return Err(r.corrupt(4, format!("unsupported snapshot version {version}")));
    }
    let _db_id = r.i64("file header")?;

    let sessions = r.count("session count", 12)?;
    for _ in 0..sessions {
        let off = r.c.position();
        let id = r.i64("session")?;
        let timeout = r.i32("session")?;
        let res = sink.session(id, timeout);
        r.sink(off, res)?;
    }

    let acls = r.count("ACL map size", 12)?;
    for _ in 0..acls {
        let off = r.c.position();
        let id = r.i64("ACL map entry")?;
        let n = r.count("ACL vector length", 12)?;
        let mut list = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let perms = r.i32("ACL")?;
            let scheme = r.string("ACL scheme")?;
            let ident = r.string("ACL id")?;
            list.push(Acl {
                perms,
                id: Id { scheme, id: ident },
            });
        }
        let res = sink.acl(id, list);
        r.sink(off, res)?;
    }

    let mut nodes = 0u64;
    let mut lossy = String::new();
    loop {
        let off = r.c.position();
        match r.node_record(off)? {
            None => break,
            Some((layout, record_len)) => {
                // The whole record is in the cursor's buffer: consume it (which checksums
                // it), parse it in place and hand the sink borrowed parts.
                let res = match r.c.take(record_len) {
                    Ok(rec) => sink.node_ref(parse_node(rec, layout, &mut lossy)),
                    Err(e) => return Err(r.lift(e, "node")),
                };
                nodes += 1;
                r.sink(off, res)?;
            }
        }
    }
    r.seal("checksum")?;

    let mut digest = None;
    let mut last_processed_zxid = None;
    if r.c.remaining() > 0 {
        let off = r.c.position();
        let zxid = r.i64("digest")?;
        let version = r.i32("digest")?;
        let value = if version < DIGEST_VERSION {
            let s = r.string("digest")?;
            i64::from_str_radix(&s, 16)
                .or_else(|_| u64::from_str_radix(&s, 16).map(|v| v as i64))
                .map_err(|_| r.corrupt(off, format!("bad hex digest {s:?}")))?
        } else {
            r.i64("digest")?
        };
        let d = ZxidDigest {
            zxid,
            version,
            digest: value,
        };
        r.seal("digest checksum")?;
        let res = sink.digest(d);
        r.sink(off, res)?;
        digest = Some(d);
        if r.c.remaining() > 0 {
            let z = r.i64("lastProcessedZxid")?;
            r.seal("lastProcessedZxid checksum")?;
            last_processed_zxid = Some(z);
        }
    }
    if r.c.remaining() > 0 {
        let off = r.c.position();
        return Err(r.corrupt(
            off,
            format!("{} unexpected trailing bytes", r.c.remaining()),
        ));
    }
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        zxid: path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| layout::zxid_from_name(n, layout::SNAPSHOT_PREFIX)),
        bytes: len,
        sessions,
        acls,
        nodes,
        digest,
        last_processed_zxid,
    })
}

/// Reads and checks a snapshot without keeping its contents.
pub fn verify_snapshot(fs: &dyn FileSystem, path: &Path) -> Result<SnapshotInfo> {
    read_snapshot(fs, path, &mut NullSink)
}

//! The tree on disk: writing it as a ZooKeeper snapshot, loading it back, and the digest
//! checks of log replay after loading.
//!
//! Owns the mapping between a [`DataTree`] and `corral_storage`'s snapshot stream
//! (`crates/storage/src/snapshot.rs` has the byte grammar):
//! * [`DataTree::snapshot_source`] gives a [`TreeSnapshot`]: sessions, the ACL map with
//!   the tree's own ids (`world:anyone ALL` of the built-in nodes is the implicit `-1`,
//!   never in the map), every node in pre-order from the root `""`, and the digest
//!   `(zxid, tree digest)`. Nodes carry the *stored* stat: `cversion` is the count of child
//!   creations (not the client-visible `2*c - numChildren`) and `ephemeralOwner` is the raw
//!   encoding (session id, container `Long.MIN_VALUE`, TTL `0xFF..` marker). Null data stays
//!   null, distinct from empty.
//! * [`TreeBuilder`] is a `SnapshotSink` that rebuilds a tree from such a stream, whoever
//!   wrote it (corral or ZooKeeper 3.6+), as ZooKeeper's `DataTree.deserialize` does: it
//!   links children to parents by path, counts ACL references (dropping unused lists),
//!   rebuilds the ephemeral / container / TTL sets and the session table, recomputes the
//!   digest, ZooKeeper's data-size counter and the quota usage (`setupQuota`). It takes
//!   each node borrowed from the reader's buffer (`node_ref`) and allocates only what
//!   the tree keeps (one block for the name and small data, see `payload`); the name
//!   index is sized from the file length before the first node (`expect_bytes`).
//! * [`DataTree::replay_entry`] replays a logged txn and compares digests the way
//!   ZooKeeper 3.8 does during restore.
//!
//! Invariants: a [`TreeSnapshot`] is a point-in-time view (it holds copy-on-write
//! references to the arena's chunks and copies of the small tables), so writing it on
//! another thread while the live tree keeps applying txns is safe and consistent. The
//! builder never panics on what it is fed: a node before its parent (an orphan), a node
//! using an ACL id missing from the map, duplicates, a child of an ephemeral node or a
//! malformed path is an error naming the path, and the read stops there.
//!
//! Deviation from ZooKeeper: a ZooKeeper snapshot taken while a txn created a *new* ACL
//! list can hold a node whose ACL id is not in the map; ZooKeeper loads it (logging
//! "Ignoring acl") and relies on replay to recreate the list under the same id. The
//! builder refuses such a snapshot instead; recovery can then use an older snapshot.
//!
//! Threading: a [`TreeSnapshot`] is `Send + Sync` and owns what it reads; the builder is
//! used by the one thread reading the file.

use crate::acl::AclId;
use crate::arena::{Node, NodeId, NIL, NODES_MAX};
use crate::hash::{child_hash, FastMap};
use crate::path::{self, split_last, utf16_len};
use crate::quota;
use crate::tree::{len_i64, NodeKind, Sink};
use crate::{DataTree, TreeConfig};
use corral_proto::records::{Acl, StatPersisted};
use corral_proto::TxnEntry;
use corral_storage::error::{BoxError, Result as StorageResult};
use corral_storage::snapshot::{
    NodeRecord, SnapshotNode, SnapshotSink, SnapshotSource, ZxidDigest, DIGEST_VERSION,
    NODE_RECORD_BYTES_MIN, OPEN_ACL_UNSAFE_ID,
};
use std::fmt;
use std::sync::Arc;

// ---- writing -------------------------------------------------------------------------

/// A consistent view of a tree for the snapshot writer (see the module docs). Building
/// one costs a pointer copy per 256 nodes plus copies of the session table and the ACL
/// map; the nodes themselves are shared copy-on-write with the live tree.
#[derive(Clone)]
pub struct TreeSnapshot {
    arena: crate::arena::Arena,
    root: NodeId,
    sessions: Vec<(i64, i32)>,
    acls: Vec<(i64, Arc<[Acl]>)>,
    digest: ZxidDigest,
}

impl DataTree {
    /// The tree as a snapshot source. `digest_zxid` is the zxid of the last txn applied to
    /// this tree (the tree does not know it): the snapshot's digest part is
    /// `(digest_zxid, 2, self.digest())`, or ZooKeeper's empty `(0, 2, 0)` when
    /// `digest_zxid` is 0 (no txn applied yet, as in a fresh server's `snapshot.0`).
    ///
    /// Write it with `corral_storage::snapshot::write_snapshot(fs, snap_dir, zxid, &view)`;
    /// the view may move to another thread while this tree keeps changing.
    pub fn snapshot_source(&self, digest_zxid: i64) -> TreeSnapshot {
        let digest = if digest_zxid == 0 {
            ZxidDigest::EMPTY
        } else {
            ZxidDigest {
                zxid: digest_zxid,
                version: DIGEST_VERSION,
                digest: self.digest,
            }
        };
        TreeSnapshot {
            arena: self.arena.clone(),
            root: self.root,
            sessions: self.sessions.iter().map(|(&s, &t)| (s, t)).collect(),
            acls: self
                .acls
                .entries()
                .map(|(id, list, _)| (id.snapshot_id(), list.clone()))
                .collect(),
            digest,
        }
    }
}

impl TreeSnapshot {
    /// Number of nodes the snapshot holds.
    pub fn node_count(&self) -> usize {
        self.arena.len()
    }

    /// The digest part it will write.
    pub fn zxid_digest(&self) -> ZxidDigest {
        self.digest
    }
}

impl SnapshotSource for TreeSnapshot {
    fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn visit_sessions(
        &self,
        f: &mut dyn FnMut(i64, i32) -> StorageResult<()>,
    ) -> StorageResult<()> {
        for &(id, timeout) in &self.sessions {
            f(id, timeout)?;
        }
        Ok(())
    }

    fn acl_count(&self) -> usize {
        self.acls.len()
    }

    fn visit_acls(&self, f: &mut dyn FnMut(i64, &[Acl]) -> StorageResult<()>) -> StorageResult<()> {
        for (id, list) in &self.acls {
            f(*id, list)?;
        }
        Ok(())
    }

    /// Pre-order: the root `""`, then each child's subtree in the order of the parent's
    /// child list. The path lives in one buffer: an entry on the stack remembers the
    /// length of its parent's path, which stays a prefix of the buffer while the
    /// parent's subtree is walked.
    fn visit_nodes(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> StorageResult<()>,
    ) -> StorageResult<()> {
        if self.root == NIL {
            return Ok(());
        }
        let mut buf = String::new();
        let mut stack: Vec<(NodeId, usize)> = vec![(self.root, 0)];
        while let Some((id, parent_len)) = stack.pop() {
            let n = self.arena.get(id);
            buf.truncate(parent_len);
            if id != self.root {
                buf.push('/');
                buf.push_str(n.name());
            }
            f(NodeRecord {
                path: &buf,
                data: n.data(),
                acl_id: n.acl.snapshot_id(),
                stat: StatPersisted {
                    czxid: n.czxid,
                    mzxid: n.mzxid,
                    ctime: n.ctime,
                    mtime: n.mtime,
                    version: n.version,
                    cversion: n.cversion,
                    aversion: n.aversion,
                    ephemeral_owner: n.ephemeral_owner,
                    pzxid: n.pzxid,
                },
            })?;
            let first = n.first_child;
            if first != NIL {
                // Push the children last to first so the first pops first.
                let len = buf.len();
                let mut c = self.arena.get(first).prev_sibling;
                loop {
                    stack.push((c, len));
                    if c == first {
                        break;
                    }
                    c = self.arena.get(c).prev_sibling;
                }
            }
        }
        Ok(())
    }

    fn digest(&self) -> ZxidDigest {
        self.digest
    }
}

// ---- loading -------------------------------------------------------------------------

/// A snapshot that cannot become a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Rebuilds a [`DataTree`] from a snapshot stream (see the module docs):
///
/// ```text
/// let mut builder = TreeBuilder::new(cfg);
/// corral_storage::snapshot::read_snapshot(fs, path, &mut builder)?;
/// let mut tree = builder.finish()?;
/// for rec in log_records { tree.replay_entry(&rec.entry)?; }
/// ```
pub struct TreeBuilder {
    tree: DataTree,
    /// Snapshot ACL id → the tree's id for that list.
    acl_ids: FastMap<i64, AclId>,
    digest: Option<ZxidDigest>,
    /// ZooKeeper's `approximateDataSize()` recount: every path and data length, with the
    /// root counted twice (as `""` and `/`).
    data_size: i64,
    /// The parent of the previous node, as most nodes share it with the one before.
    last_parent: Option<(String, NodeId)>,
}

impl TreeBuilder {
    pub fn new(cfg: TreeConfig) -> TreeBuilder {
        TreeBuilder {
            tree: DataTree::empty(cfg),
            acl_ids: FastMap::default(),
            digest: None,
            data_size: 0,
            last_parent: None,
        }
    }

    /// The digest part read so far (`None` before it or for a snapshot without one).
    pub fn snapshot_digest(&self) -> Option<ZxidDigest> {
        self.digest
    }

    /// Number of nodes received so far.
    pub fn node_count(&self) -> usize {
        self.tree.arena.len()
    }

    fn parent_of(&mut self, parent_path: &str) -> Option<NodeId> {
        if let Some((p, id)) = &self.last_parent {
            if p == parent_path {
                return Some(*id);
            }
        }
        let id = self.tree.lookup(parent_path)?;
        self.last_parent = Some((parent_path.to_string(), id));
        Some(id)
    }

    fn resolve_acl(&self, path: &str, acl_id: i64) -> Result<AclId, String> {
        if acl_id == OPEN_ACL_UNSAFE_ID {
            return Ok(AclId::OPEN);
        }
        match self.acl_ids.get(&acl_id) {
            Some(&id) if self.tree.acls.contains(id) => Ok(id),
            _ => Err(format!(
                "node {path:?} uses ACL id {acl_id}, which is not in the snapshot's ACL map"
            )),
        }
    }

    fn add_node(&mut self, node: NodeRecord<'_>) -> Result<(), String> {
        let NodeRecord {
            path: node_path,
            data,
            acl_id,
            stat,
        } = node;
        if self.tree.arena.len() >= NODES_MAX {
            return Err(format!(
                "too many nodes (the tree holds at most {NODES_MAX})"
            ));
        }
        let acl = self.resolve_acl(node_path, acl_id)?;
        let data_len = len_i64(data.map_or(0, <[u8]>::len));
        let (parent, name, hash) = if node_path.is_empty() {
            if self.tree.root != NIL || self.tree.arena.len() != 0 {
                return Err("the root node \"\" appears twice".into());
            }
            if stat.ephemeral_owner != 0 {
                return Err(format!(
                    "the root node has ephemeral owner 0x{:x}",
                    stat.ephemeral_owner
                ));
            }
            (NIL, "", 0)
        } else {
            if self.tree.root == NIL {
                return Err(format!(
                    "node {node_path:?} comes before the root node \"\""
                ));
            }
            let well_formed = node_path.starts_with('/')
                && !node_path.ends_with('/')
                && !node_path.contains("//");
            if !well_formed {
                return Err(format!("malformed node path {node_path:?}"));
            }
            let Some((parent_path, name)) = split_last(node_path) else {
                return Err(format!("malformed node path {node_path:?}"));
            };
            let Some(parent) = self.parent_of(parent_path) else {
                return Err(format!(
                    "node {node_path:?} has no parent: {:?} is not in the snapshot before it",
                    path::event_parent(parent_path)
                ));
            };
            let hash = child_hash(parent, name.as_bytes());
            if self.tree.child_hashed(parent, name, hash).is_some() {
                return Err(format!("node {node_path:?} appears twice"));
            }
            let p = self.tree.arena.get(parent);
            if let NodeKind::Ephemeral(owner) = self.tree.kind(p) {
                return Err(format!(
                    "node {node_path:?} is a child of an ephemeral node (owner 0x{owner:x}{})",
                    if self.tree.cfg.extended_types_enabled {
                        ""
                    } else {
                        "; a TTL node read without extendedTypesEnabled?"
                    }
                ));
            }
            (parent, name, hash)
        };
        // The node owns a copy of its name and data (the record borrows the reader's
        // buffer).
        let mut n = Node::new(name, data, parent);
        n.czxid = stat.czxid;
        n.mzxid = stat.mzxid;
        n.pzxid = stat.pzxid;
        n.ctime = stat.ctime;
        n.mtime = stat.mtime;
        n.ephemeral_owner = stat.ephemeral_owner;
        n.version = stat.version;
        n.cversion = stat.cversion;
        n.aversion = stat.aversion;
        n.acl = acl;
        let id = self.tree.arena.alloc(n);
        self.tree.acls.add_usage(acl);
        self.data_size += len_i64(utf16_len(node_path)) + data_len;
        if parent == NIL {
            self.tree.root = id;
            // ZooKeeper's node map also holds the root as "/".
            self.data_size += 1 + data_len;
            self.tree.refresh_digest(id, path::ROOT);
        } else {
            self.tree.link_hashed(parent, id, hash);
            self.tree.refresh_digest(id, node_path);
            self.tree.track_kind(id, true);
        }
        Ok(())
    }

    /// The tree, after ZooKeeper's post-load steps: unused ACL lists dropped, data size
    /// recounted, quota roots and usage rebuilt. The snapshot's digest stays with the tree
    /// until [`DataTree::replay_entry`] reaches its zxid.
    pub fn finish(mut self) -> Result<DataTree, LoadError> {
        if self.tree.root == NIL {
            return Err(LoadError("the snapshot holds no root node \"\"".into()));
        }
        self.tree.acls.purge_unused();
        self.tree.shrink_index();
        let root_data = len_i64(self.tree.arena.get(self.tree.root).data_len());
        self.tree.data_size = self.data_size;
        // The invariant counts the root's data once; ZooKeeper's recount has it twice.
        self.tree.quota_size_drift = -root_data;
        self.tree.setup_quota();
        self.tree.loaded_digest = self.digest.filter(|d| d.zxid > 0);
        Ok(self.tree)
    }
}

impl SnapshotSink for TreeBuilder {
    fn session(&mut self, session_id: i64, timeout_ms: i32) -> Result<(), BoxError> {
        if self.tree.sessions.insert(session_id, timeout_ms).is_some() {
            return Err(format!("session 0x{session_id:x} appears twice").into());
        }
        Ok(())
    }

    fn acl(&mut self, acl_id: i64, acls: Vec<Acl>) -> Result<(), BoxError> {
        if acl_id == OPEN_ACL_UNSAFE_ID {
            return Err("the ACL map holds the reserved id -1".into());
        }
        if self.acl_ids.contains_key(&acl_id) {
            return Err(format!("ACL id {acl_id} appears twice").into());
        }
        let id = self.tree.acls.load_entry(acl_id, acls)?;
        self.acl_ids.insert(acl_id, id);
        Ok(())
    }

    /// Sizes the name index for the most nodes a file this long can hold, so a million
    /// inserts do not rehash it again and again (each rehash reads every node it moves,
    /// which made up a sixth of loading time). The cost of guessing high: a snapshot of
    /// few large nodes reserves at most ~0.15 bytes of index per file byte (5 bytes per
    /// slot, a slot per 77 bytes, rounded up twice), which [`TreeBuilder::finish`] gives
    /// back.
    fn expect_bytes(&mut self, file_bytes: u64) {
        let most = file_bytes / NODE_RECORD_BYTES_MIN;
        let most = usize::try_from(most).unwrap_or(NODES_MAX).min(NODES_MAX);
        self.tree.reserve_nodes(most);
    }

    fn node(&mut self, node: SnapshotNode) -> Result<(), BoxError> {
        self.add_node(node.as_record()).map_err(BoxError::from)
    }

    fn node_ref(&mut self, node: NodeRecord<'_>) -> Result<(), BoxError> {
        self.add_node(node).map_err(BoxError::from)
    }

    fn digest(&mut self, digest: ZxidDigest) -> Result<(), BoxError> {
        self.digest = Some(digest);
        Ok(())
    }
}

impl DataTree {
    /// ZooKeeper's `setupQuota`: every leaf `zookeeper_limits` node under
    /// `/zookeeper/quota/<path>` makes `<path>` a quota root, and its `zookeeper_stats`
    /// usage is recounted from the tree.
    fn setup_quota(&mut self) {
        let Some(quota_root) = self.lookup(path::QUOTA) else {
            return;
        };
        let mut roots = Vec::new();
        let mut stack = vec![(quota_root, path::QUOTA.to_string())];
        while let Some((id, p)) = stack.pop() {
            let n = self.arena.get(id);
            if n.num_children == 0 {
                if n.name() == quota::LIMIT_NODE {
                    let parent = split_last(&p).map_or("", |(parent, _)| parent);
                    if let Some(real) = quota::trim_quota_path(parent) {
                        roots.push(real.to_string());
                    }
                }
                continue;
            }
            for c in self.children_ids(id) {
                let cp = path::join(&p, self.arena.get(c).name());
                stack.push((c, cp));
            }
        }
        for r in roots {
            self.update_quota_for_path(&r);
            self.quotas.add(&r);
        }
    }
}

// ---- replay after loading ------------------------------------------------------------

/// A tree digest that differs from the one ZooKeeper (or corral) recorded for a zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestMismatch {
    pub zxid: i64,
    /// The digest recorded in the log entry or the snapshot.
    pub expected: i64,
    /// The tree's digest after replaying the txn.
    pub actual: i64,
    /// Whether `expected` came from the loaded snapshot (else from the log entry).
    pub from_snapshot: bool,
}

impl fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tree digest after zxid 0x{:x} is {} but the {} recorded {}",
            self.zxid,
            self.actual,
            if self.from_snapshot {
                "snapshot"
            } else {
                "txn log"
            },
            self.expected
        )
    }
}

impl DataTree {
    /// [`DataTree::replay`] of one logged txn, then ZooKeeper 3.8's digest check: while a
    /// loaded snapshot's digest is pending (the tree may still be fuzzy) nothing is
    /// compared; at the snapshot digest's zxid the tree must match it; after that every
    /// entry's own digest (when it has one) must match. A mismatch is returned, not an
    /// error: ZooKeeper only logs and counts it. `Err` is a txn replay cannot explain.
    pub fn replay_entry(&mut self, entry: &TxnEntry) -> Result<Option<DigestMismatch>, String> {
        self.replay(&entry.header, &entry.txn)?;
        let zxid = entry.header.zxid;
        let actual = self.digest;
        if let Some(d) = self.loaded_digest {
            if zxid < d.zxid {
                return Ok(None);
            }
            self.loaded_digest = None;
            if zxid == d.zxid && d.version == DIGEST_VERSION && d.digest != actual {
                return Ok(Some(DigestMismatch {
                    zxid,
                    expected: d.digest,
                    actual,
                    from_snapshot: true,
                }));
            }
            // Past the snapshot digest's zxid without meeting it (a snapshot whose digest
            // predates its name): the tree is exact from here on.
        }
        Ok(entry
            .digest
            .filter(|t| t.version == DIGEST_VERSION && t.tree_digest != actual)
            .map(|t| DigestMismatch {
                zxid,
                expected: t.tree_digest,
                actual,
                from_snapshot: false,
            }))
    }

    /// The loaded snapshot's digest that replay has not reached yet, if any.
    pub fn pending_snapshot_digest(&self) -> Option<ZxidDigest> {
        self.loaded_digest
    }

    /// ZooKeeper's start-up clean-up of dead sessions: the ephemerals of every owner that
    /// is not in the session table are deleted, as by a close at `zxid` (the last
    /// processed zxid; parents' pzxid move forward to it). Nothing fires. Returns the
    /// owners whose nodes went, ascending.
    pub fn remove_ephemerals_of_dead_sessions(&mut self, zxid: i64) -> Vec<i64> {
        let dead: Vec<i64> = self
            .ephemerals
            .keys()
            .copied()
            .filter(|s| !self.sessions.contains_key(s))
            .collect();
        let mut quiet = Sink { out: None, zxid };
        for &s in &dead {
            for p in self.ephemerals_of(s) {
                let _ = self.delete_node(&mut quiet, &p, zxid, true);
            }
        }
        dead
    }
}

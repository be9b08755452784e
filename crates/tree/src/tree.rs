//! The tree itself: storage, lookups, the txn-applying primitives (createNode, deleteNode,
//! setData, setACL, killSession of ZooKeeper's `DataTree`), and `apply` / `replay`.
//!
//! Owns every replicated structure: nodes (in the [`Arena`]), the `(parent, name)` index,
//! interned ACLs, the session table, per-session ephemeral sets, container and TTL sets,
//! quota roots, the running digest and ZooKeeper's approximate data size; plus the
//! non-replicated watch table and the auth ids of watching sessions.
//!
//! Invariants (all checked by [`DataTree::check_invariants`]):
//! * every live node but the root is reachable from the root, indexed once under
//!   `(parent, name)`, and its parent's sibling list and `num_children` agree;
//! * `digest` is the wrapping sum of the node digests, each of which is the CRC of the
//!   node's current path, data and persisted stat (0 under `/zookeeper/`);
//! * the ephemeral / container / TTL sets hold exactly the nodes of that kind;
//! * ACL reference counts equal the number of nodes using each list;
//! * `data_size + quota_size_drift` equals the sum of path lengths (UTF-16 units) and data
//!   lengths, counting the root twice (as `""` and `/`, like ZooKeeper's node map).

use crate::acl::{self, AclCache, AclId};
use crate::arena::{Arena, Node, NodeId, NIL, NODES_MAX};
use crate::hash::{child_hash, FastMap};
use crate::path::{self, split_last, utf16_len};
use crate::quota::{self, QuotaRoots, StatsTrack};
use crate::watch::{Table, WatchTable};
use crate::{Applied, TreeConfig, WatchNotification};
use bytes::Bytes;
use corral_proto::{
    Acl, ErrorCode, EventType, Id, MultiResult, OpCode, Response, Stat, Txn, TxnHeader,
};
use corral_storage::snapshot::ZxidDigest;
use hashbrown::HashTable;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// `ephemeralOwner` of a container node (`Long.MIN_VALUE`).
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// Largest TTL in milliseconds (40 bits, about 34 years).
pub const TTL_MAX_MS: i64 = 0xFF_FFFF_FFFF;
/// Top byte set: an extended ephemeral type (TTL is feature 0 in bits 40..55).
const EXTENDED_MASK: u64 = 0xFF00_0000_0000_0000;
const EXTENDED_FEATURE_MASK: u64 = 0x00FF_FF00_0000_0000;
const EXTENDED_VALUE_MASK: u64 = !(EXTENDED_MASK | EXTENDED_FEATURE_MASK);

/// The stored `ephemeralOwner` of a TTL node.
pub fn ttl_ephemeral_owner(ttl_ms: i64) -> i64 {
    (EXTENDED_MASK | (ttl_ms as u64 & EXTENDED_VALUE_MASK)) as i64
}

/// What a node's `ephemeralOwner` encodes (`EphemeralType.get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(i64),
    Container,
    /// TTL in milliseconds.
    Ttl(i64),
}

impl NodeKind {
    /// Decodes an owner. Extended types are only recognised when enabled, as in ZooKeeper
    /// (otherwise `0xFF..` owners are plain session ids). An unknown extended feature (which
    /// ZooKeeper refuses with an exception) is treated as persistent.
    pub fn of(owner: i64, extended_types_enabled: bool) -> NodeKind {
        let o = owner as u64;
        if extended_types_enabled && o & EXTENDED_MASK == EXTENDED_MASK {
            return if o & EXTENDED_FEATURE_MASK == 0 {
                NodeKind::Ttl((o & EXTENDED_VALUE_MASK) as i64)
            } else {
                NodeKind::Persistent
            };
        }
        match owner {
            CONTAINER_EPHEMERAL_OWNER => NodeKind::Container,
            0 => NodeKind::Persistent,
            s => NodeKind::Ephemeral(s),
        }
    }
}

/// Where applied txns send their watch events (`None` when replaying: nothing fires and
/// one-shot watches are not consumed).
pub(crate) struct Sink<'a> {
    pub(crate) out: Option<&'a mut Vec<WatchNotification>>,
    pub(crate) zxid: i64,
}

/// `ZooKeeper 3.8`'s data size of a fresh tree: "", "/", "/zookeeper", "/zookeeper/quota",
/// "/zookeeper/config" path lengths (observed: mntr `zk_approximate_data_size 44`).
const FRESH_DATA_SIZE: i64 = 44;

/// The replicated ZooKeeper data tree. See the crate docs for the API contract.
#[derive(Clone)]
pub struct DataTree {
    pub(crate) cfg: TreeConfig,
    pub(crate) arena: Arena,
    /// `(parent, name) -> id`; hashes and equality read the node in the arena.
    pub(crate) index: HashTable<NodeId>,
    pub(crate) root: NodeId,
    pub(crate) acls: AclCache,
    pub(crate) sessions: BTreeMap<i64, i32>,
    pub(crate) ephemerals: BTreeMap<i64, BTreeSet<NodeId>>,
    pub(crate) containers: BTreeSet<NodeId>,
    pub(crate) ttls: BTreeSet<NodeId>,
    pub(crate) quotas: QuotaRoots,
    pub(crate) digest: i64,
    /// ZooKeeper's `nodeDataSize`, updated only by create/delete/setData.
    pub(crate) data_size: i64,
    /// Data size changes made by quota usage updates, which ZooKeeper's counter misses.
    pub(crate) quota_size_drift: i64,
    pub(crate) watches: WatchTable,
    /// The connection ids of each watching session, last seen with a [`crate::Caller`], for
    /// dropping events the watcher may not READ.
    pub(crate) watcher_auth: FastMap<i64, Vec<Id>>,
    /// The digest a loaded snapshot carried, until replay reaches its zxid (ZooKeeper's
    /// `digestFromLoadedSnapshot`): while it is pending the tree may be fuzzy, so txn
    /// digests are not compared. Not replicated state.
    pub(crate) loaded_digest: Option<ZxidDigest>,
}

fn node_digest(path: &str, n: &Node) -> u32 {
    if path.starts_with(path::ZOOKEEPER_SUBTREE_PREFIX) {
        return 0;
    }
    let p = if path == path::ROOT { "" } else { path };
    let mut stat = [0u8; 60];
    let fields8 = [n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime];
    for (i, v) in fields8.iter().enumerate() {
        stat[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    stat[40..44].copy_from_slice(&n.version.to_be_bytes());
    stat[44..48].copy_from_slice(&n.cversion.to_be_bytes());
    stat[48..52].copy_from_slice(&n.aversion.to_be_bytes());
    stat[52..60].copy_from_slice(&n.ephemeral_owner.to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(p.as_bytes());
    if let Some(d) = n.data() {
        h.update(d);
    }
    h.update(&stat);
    h.finalize()
}

pub(crate) fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl DataTree {
    /// A tree as a fresh ZooKeeper 3.8 standalone server has it: `/`, `/zookeeper`,
    /// `/zookeeper/quota` (world:anyone ALL, implicit ACL id -1) and `/zookeeper/config`
    /// (world:anyone READ, aversion -1), all with empty (not null) data and zero stats.
    pub fn new(cfg: TreeConfig) -> DataTree {
        let mut t = DataTree::empty(cfg);
        t.root = t.arena.alloc(Node::new("", Some(b""), NIL));
        let zk = t.add_builtin(t.root, "zookeeper");
        // ZooKeeper's HashSet yields `config` before `quota` (snapshot.0, `ls /zookeeper`).
        let config = t.add_builtin(zk, "config");
        t.add_builtin(zk, "quota");
        let read = t.acls.intern(&Acl::read_unsafe());
        let n = t.arena.get_mut(config);
        n.acl = read;
        n.aversion = -1;
        t.digest = 0;
        t.refresh_digest(t.root, path::ROOT);
        t.refresh_digest(zk, path::ZOOKEEPER);
        t
    }

    /// A tree without any node, not even the root (the snapshot loader fills it in).
    pub(crate) fn empty(cfg: TreeConfig) -> DataTree {
        DataTree {
            cfg,
            arena: Arena::default(),
            index: HashTable::new(),
            root: NIL,
            acls: AclCache::new(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            quotas: QuotaRoots::default(),
            digest: 0,
            data_size: FRESH_DATA_SIZE,
            quota_size_drift: 0,
            watches: WatchTable::default(),
            watcher_auth: FastMap::default(),
            loaded_digest: None,
        }
    }

    fn add_builtin(&mut self, parent: NodeId, name: &str) -> NodeId {
        let id = self.arena.alloc(Node::new(name, Some(b""), parent));
        self.link(parent, id);
        id
    }

    pub(crate) fn kind(&self, n: &Node) -> NodeKind {
        NodeKind::of(n.ephemeral_owner, self.cfg.extended_types_enabled)
    }

    // ---- lookup -------------------------------------------------------------------------

    pub(crate) fn child(&self, parent: NodeId, name: &str) -> Option<NodeId> {
        self.child_hashed(parent, name, child_hash(parent, name.as_bytes()))
    }

    /// [`Self::child`] when the caller already has `child_hash(parent, name)`.
    pub(crate) fn child_hashed(&self, parent: NodeId, name: &str, hash: u64) -> Option<NodeId> {
        let arena = &self.arena;
        self.index
            .find(hash, |&id| {
                let n = arena.get(id);
                n.parent == parent && n.name_bytes() == name.as_bytes()
            })
            .copied()
    }

    /// Makes room in the name index for `nodes` more nodes (loading a snapshot).
    pub(crate) fn reserve_nodes(&mut self, nodes: usize) {
        let arena = &self.arena;
        self.index.reserve(nodes, |&x| {
            let n = arena.get(x);
            child_hash(n.parent, n.name_bytes())
        });
    }

    /// Gives back index room reserved beyond what the nodes need.
    pub(crate) fn shrink_index(&mut self) {
        let arena = &self.arena;
        self.index.shrink_to_fit(|&x| {
            let n = arena.get(x);
            child_hash(n.parent, n.name_bytes())
        });
    }

    /// The node at `path`, exactly as ZooKeeper's node map answers: `""` and `/` are the
    /// root; anything else must be `/`-separated names (so `/a/`, `//a`, `a` are absent).
    pub(crate) fn lookup(&self, path: &str) -> Option<NodeId> {
        if path.is_empty() || path == path::ROOT {
            return Some(self.root);
        }
        let rest = path.strip_prefix('/')?;
        let mut cur = self.root;
        for comp in rest.split('/') {
            cur = self.child(cur, comp)?;
        }
        Some(cur)
    }

    pub(crate) fn path_of(&self, id: NodeId) -> String {
        if id == self.root {
            return path::ROOT.to_string();
        }
        let mut names = Vec::new();
        let mut cur = id;
        while cur != self.root {
            let n = self.arena.get(cur);
            names.push(n.name());
            cur = n.parent;
        }
        let mut s = String::new();
        for name in names.iter().rev() {
            s.push('/');
            s.push_str(name);
        }
        s
    }

    /// Children ids in list order.
    pub(crate) fn children_ids(&self, id: NodeId) -> Vec<NodeId> {
        let n = self.arena.get(id);
        let mut out = Vec::with_capacity(n.num_children as usize);
        let first = n.first_child;
        let mut cur = first;
        while cur != NIL {
            out.push(cur);
            cur = self.arena.get(cur).next_sibling;
            if cur == first {
                break;
            }
        }
        out
    }

    /// The client-visible stat (`DataNode.copyStat`).
    pub(crate) fn client_stat(&self, n: &Node) -> Stat {
        let num_children = i32::try_from(n.num_children).unwrap_or(i32::MAX);
        Stat {
            czxid: n.czxid,
            mzxid: n.mzxid,
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            cversion: n.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: n.aversion,
            ephemeral_owner: match self.kind(n) {
                NodeKind::Ephemeral(s) => s,
                _ => 0,
            },
            data_length: i32::try_from(n.data_len()).unwrap_or(i32::MAX),
            num_children,
            pzxid: n.pzxid,
        }
    }

    pub(crate) fn acl_of(&self, n: &Node) -> Arc<[Acl]> {
        self.acls.get(n.acl).clone()
    }

    // ---- links and index ----------------------------------------------------------------

    pub(crate) fn link(&mut self, parent: NodeId, id: NodeId) {
        let hash = {
            let n = self.arena.get(id);
            child_hash(n.parent, n.name_bytes())
        };
        self.link_hashed(parent, id, hash);
    }

    /// [`Self::link`] when the caller already has the node's `child_hash`.
    pub(crate) fn link_hashed(&mut self, parent: NodeId, id: NodeId, hash: u64) {
        let first = self.arena.get(parent).first_child;
        if first == NIL {
            let n = self.arena.get_mut(id);
            n.next_sibling = id;
            n.prev_sibling = id;
            self.arena.get_mut(parent).first_child = id;
        } else {
            let last = self.arena.get(first).prev_sibling;
            {
                let n = self.arena.get_mut(id);
                n.prev_sibling = last;
                n.next_sibling = first;
            }
            self.arena.get_mut(last).next_sibling = id;
            self.arena.get_mut(first).prev_sibling = id;
        }
        self.arena.get_mut(parent).num_children += 1;
        let arena = &self.arena;
        self.index.insert_unique(hash, id, |&x| {
            let n = arena.get(x);
            child_hash(n.parent, n.name_bytes())
        });
    }

    fn unlink(&mut self, id: NodeId) {
        let (parent, next, prev, hash) = {
            let n = self.arena.get(id);
            (
                n.parent,
                n.next_sibling,
                n.prev_sibling,
                child_hash(n.parent, n.name_bytes()),
            )
        };
        if next == id {
            self.arena.get_mut(parent).first_child = NIL;
        } else {
            self.arena.get_mut(prev).next_sibling = next;
            self.arena.get_mut(next).prev_sibling = prev;
            if self.arena.get(parent).first_child == id {
                self.arena.get_mut(parent).first_child = next;
            }
        }
        self.arena.get_mut(parent).num_children -= 1;
        match self.index.find_entry(hash, |&x| x == id) {
            Ok(e) => {
                e.remove();
            }
            Err(_) => panic!("unlink: node {id} missing from the name index"),
        }
    }

    /// Recomputes a node's digest after a change and folds the difference into the tree
    /// digest. `path` must be the node's path.
    pub(crate) fn refresh_digest(&mut self, id: NodeId, path: &str) {
        let n = self.arena.get(id);
        let new = node_digest(path, n);
        let old = n.digest;
        if new != old {
            self.digest = self
                .digest
                .wrapping_sub(i64::from(old))
                .wrapping_add(i64::from(new));
            self.arena.get_mut(id).digest = new;
        }
    }

    pub(crate) fn track_kind(&mut self, id: NodeId, add: bool) {
        let kind = self.kind(self.arena.get(id));
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                if add {
                    self.containers.insert(id);
                } else {
                    self.containers.remove(&id);
                }
            }
            NodeKind::Ttl(_) => {
                if add {
                    self.ttls.insert(id);
                } else {
                    self.ttls.remove(&id);
                }
            }
            NodeKind::Ephemeral(s) => {
                if add {
                    self.ephemerals.entry(s).or_default().insert(id);
                } else if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
        }
    }

    // ---- watches ------------------------------------------------------------------------

    /// Fires one trigger and emits the events the watchers may READ. Returns every
    /// session the trigger matched (filtered or not), for NodeDeleted's suppression.
    fn fire(
        &mut self,
        sink: &mut Sink,
        path: &str,
        table: Table,
        event: EventType,
        acl: &[Acl],
        suppress: &[i64],
    ) -> Vec<i64> {
        let Some(out) = sink.out.as_deref_mut() else {
            return Vec::new();
        };
        let sessions = self.watches.trigger(path, table, event);
        for &s in &sessions {
            // `suppress` comes from an earlier trigger, which returns sessions sorted.
            if suppress.binary_search(&s).is_ok() {
                continue;
            }
            let auth = self.watcher_auth.get(&s).map_or(&[][..], Vec::as_slice);
            if !acl::allowed(&self.cfg, acl, acl::need::READ, auth) {
                continue;
            }
            out.push(WatchNotification {
                session_id: s,
                event_type: event,
                path: path.to_string(),
                zxid: sink.zxid,
            });
        }
        sessions
    }

    // ---- the txn primitives -------------------------------------------------------------

    /// `DataTree.createNode`. In replay, an existing node only moves the parent's cversion
    /// and pzxid forward.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_node(
        &mut self,
        sink: &mut Sink,
        node_path: &str,
        data: Option<&Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        replay: bool,
    ) -> Result<NodeId, ErrorCode> {
        let (parent_path, name) = split_last(node_path).ok_or(ErrorCode::NoNode)?;
        let parent = self.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        if name.is_empty() {
            return Err(ErrorCode::BadArguments);
        }
        let parent_event_path = path::event_parent(parent_path).to_string();
        if self.child(parent, name).is_some() {
            if replay {
                self.move_cversion_forward(parent, &parent_event_path, parent_cversion, zxid);
            }
            return Err(ErrorCode::NodeExists);
        }
        assert!(self.arena.len() < NODES_MAX, "tree full");
        self.move_cversion_forward(parent, &parent_event_path, parent_cversion, zxid);
        let acl_id = self.acls.intern(acl);
        let mut node = Node::new(name, data.map(|d| &d[..]), parent);
        node.czxid = zxid;
        node.mzxid = zxid;
        node.pzxid = zxid;
        node.ctime = time;
        node.mtime = time;
        node.ephemeral_owner = owner;
        node.acl = acl_id;
        let data_len = node.data_len();
        let id = self.arena.alloc(node);
        self.link(parent, id);
        self.refresh_digest(id, node_path);
        self.data_size += len_i64(utf16_len(node_path)) + len_i64(data_len);
        self.track_kind(id, true);
        self.quota_on_create(node_path, parent_path, name, len_i64(data_len));
        let parent_acl = self.acl_of(self.arena.get(parent));
        self.fire(
            sink,
            node_path,
            Table::Data,
            EventType::NodeCreated,
            acl,
            &[],
        );
        self.fire(
            sink,
            &parent_event_path,
            Table::Child,
            EventType::NodeChildrenChanged,
            &parent_acl,
            &[],
        );
        Ok(id)
    }

    /// `setCversionPzxid` / the cversion step of createNode: -1 means "current + 1"; the
    /// stored cversion and pzxid only change when the new cversion is larger.
    fn move_cversion_forward(&mut self, id: NodeId, node_path: &str, cversion: i32, zxid: i64) {
        let n = self.arena.get(id);
        let cversion = if cversion == -1 {
            n.cversion.wrapping_add(1)
        } else {
            cversion
        };
        if cversion > n.cversion {
            let n = self.arena.get_mut(id);
            n.cversion = cversion;
            n.pzxid = zxid;
            self.refresh_digest(id, node_path);
        }
    }

    /// `DataTree.deleteNode`. The parent's pzxid moves forward even when the child is
    /// missing (fuzzy snapshots). A node with children is refused in live apply (prep never
    /// lets that through); in replay its subtree is removed first.
    pub(crate) fn delete_node(
        &mut self,
        sink: &mut Sink,
        node_path: &str,
        zxid: i64,
        replay: bool,
    ) -> Result<(), ErrorCode> {
        let (parent_path, name) = split_last(node_path).ok_or(ErrorCode::NoNode)?;
        let parent = self.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        let child = self.child(parent, name);
        if let Some(c) = child {
            if self.arena.get(c).num_children > 0 {
                if !replay {
                    return Err(ErrorCode::NotEmpty);
                }
                self.delete_descendants_quietly(c, node_path, zxid);
            }
        }
        let parent_event_path = path::event_parent(parent_path).to_string();
        if zxid > self.arena.get(parent).pzxid {
            self.arena.get_mut(parent).pzxid = zxid;
            self.refresh_digest(parent, &parent_event_path);
        }
        let id = child.ok_or(ErrorCode::NoNode)?;
        let node_acl = self.acl_of(self.arena.get(id));
        self.track_kind(id, false);
        self.unlink(id);
        let node = self.arena.free(id);
        self.digest = self.digest.wrapping_sub(i64::from(node.digest));
        self.acls.release(node.acl);
        let data_len = len_i64(node.data_len());
        self.data_size -= len_i64(utf16_len(node_path)) + data_len;
        self.quota_on_delete(node_path, parent_path, name, data_len);
        let parent_acl = self.acl_of(self.arena.get(parent));
        let fired = self.fire(
            sink,
            node_path,
            Table::Data,
            EventType::NodeDeleted,
            &node_acl,
            &[],
        );
        self.fire(
            sink,
            node_path,
            Table::Child,
            EventType::NodeDeleted,
            &node_acl,
            &fired,
        );
        self.fire(
            sink,
            &parent_event_path,
            Table::Child,
            EventType::NodeChildrenChanged,
            &parent_acl,
            &[],
        );
        Ok(())
    }

    /// Replay only: removes everything below `id`, deepest first, without events.
    fn delete_descendants_quietly(&mut self, id: NodeId, node_path: &str, zxid: i64) {
        let mut order = Vec::new();
        let mut stack = vec![(id, node_path.to_string())];
        while let Some((n, p)) = stack.pop() {
            for c in self.children_ids(n) {
                let cp = path::join(&p, self.arena.get(c).name());
                order.push(cp.clone());
                stack.push((c, cp));
            }
        }
        let mut quiet = Sink { out: None, zxid };
        for p in order.iter().rev() {
            let _ = self.delete_node(&mut quiet, p, zxid, true);
        }
    }

    /// `DataTree.setData`; `version` is the new version from the txn.
    pub(crate) fn set_data(
        &mut self,
        sink: &mut Sink,
        node_path: &str,
        data: Option<&Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
    ) -> Result<Stat, ErrorCode> {
        let id = self.lookup(node_path).ok_or(ErrorCode::NoNode)?;
        let canonical = if node_path.is_empty() {
            path::ROOT
        } else {
            node_path
        };
        let old_len = len_i64(self.arena.get(id).data_len());
        {
            let n = self.arena.get_mut(id);
            n.set_data(data.map(|d| &d[..]));
            n.mtime = time;
            n.mzxid = zxid;
            n.version = version;
        }
        self.refresh_digest(id, canonical);
        let new_len = len_i64(self.arena.get(id).data_len());
        self.data_size += new_len - old_len;
        if let Some(prefix) = self.quotas.max_prefix(node_path) {
            self.update_quota_stat(&prefix, new_len - old_len, 0);
        }
        let n = self.arena.get(id);
        let stat = self.client_stat(n);
        let acl = self.acl_of(n);
        self.fire(
            sink,
            node_path,
            Table::Data,
            EventType::NodeDataChanged,
            &acl,
            &[],
        );
        Ok(stat)
    }

    /// `DataTree.setACL`; `version` is the new aversion from the txn. Fires nothing.
    pub(crate) fn set_acl(
        &mut self,
        node_path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Stat, ErrorCode> {
        let id = self.lookup(node_path).ok_or(ErrorCode::NoNode)?;
        let canonical = if node_path.is_empty() {
            path::ROOT
        } else {
            node_path
        };
        let new = self.acls.intern(acl);
        let old = self.arena.get(id).acl;
        self.acls.release(old);
        {
            let n = self.arena.get_mut(id);
            n.acl = new;
            n.aversion = version;
        }
        self.refresh_digest(id, canonical);
        Ok(self.client_stat(self.arena.get(id)))
    }

    // ---- quotas -------------------------------------------------------------------------

    fn quota_on_create(&mut self, node_path: &str, parent_path: &str, name: &str, bytes: i64) {
        if parent_path.starts_with(path::QUOTA) {
            if let Some(root) = quota::trim_quota_path(parent_path) {
                if name == quota::LIMIT_NODE {
                    self.quotas.add(root);
                }
                if name == quota::STAT_NODE {
                    let root = root.to_string();
                    self.update_quota_for_path(&root);
                }
            }
        }
        if let Some(prefix) = self.quotas.max_prefix(node_path) {
            self.update_quota_stat(&prefix, bytes, 1);
        }
    }

    fn quota_on_delete(&mut self, node_path: &str, parent_path: &str, name: &str, bytes: i64) {
        if parent_path.starts_with(path::ZOOKEEPER) && name == quota::LIMIT_NODE {
            if let Some(root) = quota::trim_quota_path(parent_path) {
                self.quotas.delete(root);
            }
        }
        if let Some(prefix) = self.quotas.max_prefix(node_path) {
            self.update_quota_stat(&prefix, -bytes, -1);
        }
    }

    /// `updateQuotaForPath`: recount the subtree and overwrite its stats node.
    pub(crate) fn update_quota_for_path(&mut self, root: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(id) = self.lookup(root) {
            let mut stack = vec![id];
            while let Some(n) = stack.pop() {
                count += 1;
                bytes += len_i64(self.arena.get(n).data_len());
                stack.extend(self.children_ids(n));
            }
        }
        let sp = quota::stat_path(root);
        self.write_quota_stats(&sp, StatsTrack::new(count, bytes));
    }

    /// `updateQuotaStat`: add to the usage recorded under a quota root.
    fn update_quota_stat(&mut self, prefix: &str, bytes_diff: i64, count_diff: i64) {
        let sp = quota::stat_path(prefix);
        let Some(id) = self.lookup(&sp) else {
            return;
        };
        let Some(mut st) = StatsTrack::parse(self.arena.get(id).data()) else {
            return;
        };
        st.add(count_diff, bytes_diff);
        self.write_quota_stats(&sp, st);
    }

    fn write_quota_stats(&mut self, stat_path: &str, st: StatsTrack) {
        let Some(id) = self.lookup(stat_path) else {
            return;
        };
        let text = st.render();
        let old = len_i64(self.arena.get(id).data_len());
        self.quota_size_drift += len_i64(text.len()) - old;
        self.arena.get_mut(id).set_data(Some(text.as_bytes()));
        self.refresh_digest(id, stat_path);
    }

    // ---- apply / replay -----------------------------------------------------------------

    /// One non-multi txn.
    fn apply_one(
        &mut self,
        sink: &mut Sink,
        hdr: &TxnHeader,
        txn: &Txn,
        replay: bool,
    ) -> Result<Response, ErrorCode> {
        let zxid = hdr.zxid;
        let time = hdr.time_ms;
        match txn {
            Txn::CreateSession { timeout_ms } => {
                self.sessions.insert(hdr.session_id, *timeout_ms);
                Ok(Response::Empty)
            }
            Txn::CloseSession { paths_to_delete } => {
                let session = hdr.session_id;
                for p in paths_to_delete {
                    let _ = self.delete_node(sink, p, zxid, replay);
                }
                for p in self.ephemerals_of(session) {
                    let _ = self.delete_node(sink, &p, zxid, replay);
                }
                self.sessions.remove(&session);
                self.remove_watches_of(session);
                Ok(Response::Empty)
            }
            Txn::Create(c) | Txn::Create2(c) => {
                let owner = if c.ephemeral { hdr.session_id } else { 0 };
                let id = self.create_node(
                    sink,
                    &c.path,
                    c.data.as_ref(),
                    &c.acl,
                    owner,
                    c.parent_cversion,
                    zxid,
                    time,
                    replay,
                )?;
                Ok(if matches!(txn, Txn::Create(_)) {
                    Response::Create {
                        path: c.path.clone(),
                    }
                } else {
                    Response::Create2 {
                        path: c.path.clone(),
                        stat: self.client_stat(self.arena.get(id)),
                    }
                })
            }
            Txn::CreateContainer(c) | Txn::CreateTtl(c) => {
                let owner = if matches!(txn, Txn::CreateContainer(_)) {
                    CONTAINER_EPHEMERAL_OWNER
                } else {
                    ttl_ephemeral_owner(c.ttl)
                };
                let id = self.create_node(
                    sink,
                    &c.path,
                    c.data.as_ref(),
                    &c.acl,
                    owner,
                    c.parent_cversion,
                    zxid,
                    time,
                    replay,
                )?;
                Ok(Response::Create2 {
                    path: c.path.clone(),
                    stat: self.client_stat(self.arena.get(id)),
                })
            }
            Txn::Delete { path } | Txn::DeleteContainer { path } => {
                self.delete_node(sink, path, zxid, replay)?;
                Ok(Response::Empty)
            }
            Txn::SetData {
                path,
                data,
                version,
            } => Ok(Response::Stat(self.set_data(
                sink,
                path,
                data.as_ref(),
                *version,
                zxid,
                time,
            )?)),
            Txn::Reconfig {
                path,
                data,
                version,
            } => {
                let stat = self.set_data(sink, path, data.as_ref(), *version, zxid, time)?;
                let data = self
                    .lookup(path)
                    .and_then(|id| self.arena.get(id).data_bytes());
                Ok(Response::GetData { data, stat })
            }
            Txn::SetAcl { path, acl, version } => {
                Ok(Response::Stat(self.set_acl(path, acl, *version)?))
            }
            Txn::Check { .. } => Ok(Response::Empty),
            Txn::Error(code) => Err(*code),
            Txn::Multi(_) => Err(ErrorCode::MarshallingError),
        }
    }

    fn apply_multi(
        &mut self,
        sink: &mut Sink,
        hdr: &TxnHeader,
        txns: &[Txn],
        replay: bool,
    ) -> Result<Response, ErrorCode> {
        let allowed = txns.iter().all(|t| {
            matches!(
                t,
                Txn::Create(_)
                    | Txn::Create2(_)
                    | Txn::CreateContainer(_)
                    | Txn::CreateTtl(_)
                    | Txn::Delete { .. }
                    | Txn::DeleteContainer { .. }
                    | Txn::SetData { .. }
                    | Txn::Check { .. }
                    | Txn::Error(_)
            )
        });
        if !allowed {
            return Err(ErrorCode::MarshallingError);
        }
        if txns.iter().any(|t| matches!(t, Txn::Error(_))) {
            // A failed multi: nothing is applied; the results say where it failed.
            let mut failed = false;
            let results = txns
                .iter()
                .map(|t| match t {
                    Txn::Error(code) => {
                        failed = true;
                        MultiResult::Error(*code)
                    }
                    _ if failed => MultiResult::Error(ErrorCode::RuntimeInconsistency),
                    _ => MultiResult::Error(ErrorCode::Ok),
                })
                .collect();
            return Ok(Response::Multi(results));
        }
        let mut results = Vec::with_capacity(txns.len());
        for t in txns {
            let sub = TxnHeader {
                op: t.op().code(),
                ..*hdr
            };
            let r = match self.apply_one(sink, &sub, t, replay) {
                Ok(Response::Create { path }) => MultiResult::Create { path },
                Ok(Response::Create2 { path, stat }) => MultiResult::Create2 { path, stat },
                Ok(Response::Stat(stat)) => MultiResult::SetData { stat },
                Ok(_) if matches!(t, Txn::Check { .. }) => MultiResult::Check,
                Ok(_) => MultiResult::Delete,
                Err(code) => MultiResult::Error(code),
            };
            results.push(r);
        }
        Ok(Response::Multi(results))
    }

    fn apply_any(
        &mut self,
        sink: &mut Sink,
        hdr: &TxnHeader,
        txn: &Txn,
        replay: bool,
    ) -> Result<Response, ErrorCode> {
        match txn {
            Txn::Multi(txns) => self.apply_multi(sink, hdr, txns, replay),
            _ => self.apply_one(sink, hdr, txn, replay),
        }
    }

    /// FinalRequestProcessor's tree part: applies one txn and returns the reply body or
    /// error code, plus the watch notifications it fires (one-shot watches are consumed;
    /// events the watcher's session may not READ are dropped, as in 3.8.4+).
    ///
    /// Response per txn: Create -> `Response::Create`; Create2 / CreateContainer /
    /// CreateTtl -> `Create2`; Delete / DeleteContainer / Check / CreateSession /
    /// CloseSession -> `Empty`; SetData / SetAcl -> `Stat`; Reconfig -> `GetData` of the
    /// config node; Error(code) -> `Err(code)`; Multi -> `Multi` (a failed multi changes
    /// nothing and answers every result as an error: Ok(0) before the failure, its code,
    /// RuntimeInconsistency after).
    pub fn apply(&mut self, hdr: &TxnHeader, txn: &Txn) -> Applied {
        let mut notifications = Vec::new();
        let mut sink = Sink {
            out: Some(&mut notifications),
            zxid: hdr.zxid,
        };
        let result = self.apply_any(&mut sink, hdr, txn, false);
        Applied {
            result,
            notifications,
        }
    }

    /// Applies a txn during log replay after a crash (the snapshot is fuzzy): NodeExists
    /// and NoNode are ignored, cversion and pzxid only move forward, createSession and
    /// closeSession add and remove sessions (with their ephemerals), nothing fires. So a
    /// txn the snapshot already holds changes nothing, and loading a snapshot then
    /// replaying every txn after its zxid ends in the live tree's state (see
    /// `tests/snapshot.rs`). [`DataTree::replay_entry`] adds ZooKeeper's digest checks.
    /// Err only for a txn that fails in a way replay cannot explain.
    pub fn replay(&mut self, hdr: &TxnHeader, txn: &Txn) -> Result<(), String> {
        let mut sink = Sink {
            out: None,
            zxid: hdr.zxid,
        };
        let check = |r: Result<Response, ErrorCode>| -> Result<(), String> {
            match r {
                Ok(_) | Err(ErrorCode::NoNode) | Err(ErrorCode::NodeExists) => Ok(()),
                Err(e) if matches!(txn, Txn::Error(_)) => {
                    let _ = e;
                    Ok(())
                }
                Err(e) => Err(format!(
                    "replay of zxid {:#x} ({}) failed: {e}",
                    hdr.zxid,
                    OpCode::from_i32(hdr.op).map_or("?", OpCode::name)
                )),
            }
        };
        match txn {
            Txn::Multi(txns) => {
                if txns.iter().any(|t| matches!(t, Txn::Error(_))) {
                    return Ok(());
                }
                for t in txns {
                    let sub = TxnHeader {
                        op: t.op().code(),
                        ..*hdr
                    };
                    check(self.apply_one(&mut sink, &sub, t, true))?;
                }
                Ok(())
            }
            _ => check(self.apply_one(&mut sink, hdr, txn, true)),
        }
    }

    /// An ensemble member's local write of its membership into `/zookeeper/config`
    /// (ZooKeeper's `ZKDatabase.initConfigInZKDatabase`): a setData with version -1,
    /// mzxid = the config's version and mtime = `wall_ms`, outside any txn. Each member does
    /// it on its own (at start and whenever it syncs with a leader), so the node is not
    /// replicated state: the digest skips `/zookeeper/` (see [`path::ZOOKEEPER_SUBTREE_PREFIX`])
    /// and nothing fires (no client is connected to a member that is not serving).
    /// Returns false, changing nothing, if the tree has no config node.
    pub fn init_config_node(&mut self, text: &Bytes, config_version: i64, wall_ms: i64) -> bool {
        let mut quiet = Sink {
            out: None,
            zxid: config_version,
        };
        self.set_data(
            &mut quiet,
            path::CONFIG,
            Some(text),
            -1,
            config_version,
            wall_ms,
        )
        .is_ok()
    }

    // ---- queries ------------------------------------------------------------------------

    /// Session table as replicated state: `(session id, timeout ms)`, ascending.
    pub fn sessions(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.sessions.iter().map(|(&s, &t)| (s, t))
    }

    pub fn session_exists(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    /// Paths of the ephemeral nodes owned by a session, sorted.
    pub fn ephemerals_of(&self, session_id: i64) -> Vec<String> {
        let mut v: Vec<String> = self
            .ephemerals
            .get(&session_id)
            .map(|set| set.iter().map(|&id| self.path_of(id)).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Containers (no children and cversion > 0; never-used ones only when
    /// `max_never_used_ms > 0` and `now - mtime` exceeds it) and TTL nodes (no children and
    /// `now - mtime > ttl`) that the reaper should delete, sorted.
    pub fn reapable_nodes(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for &id in &self.containers {
            let n = self.arena.get(id);
            if n.num_children != 0 {
                continue;
            }
            let idle = now_ms.saturating_sub(n.mtime);
            if n.cversion > 0 || (max_never_used_ms > 0 && idle > max_never_used_ms) {
                out.push(self.path_of(id));
            }
        }
        for &id in &self.ttls {
            let n = self.arena.get(id);
            if n.num_children != 0 {
                continue;
            }
            if let NodeKind::Ttl(ttl) = self.kind(n) {
                if ttl != 0 && now_ms.saturating_sub(n.mtime) > ttl {
                    out.push(self.path_of(id));
                }
            }
        }
        out.sort();
        out
    }

    /// Node count as `srvr` / mntr `zk_znode_count` report it: ZooKeeper's node map holds
    /// the root twice (`""` and `/`), so a fresh server says 5.
    pub fn node_count(&self) -> usize {
        self.arena.len() + 1
    }

    /// mntr `zk_approximate_data_size`: path lengths (UTF-16 units) plus data lengths, as
    /// ZooKeeper's cached counter tracks it (quota usage rewrites are not counted).
    pub fn approximate_data_size(&self) -> u64 {
        u64::try_from(self.data_size).unwrap_or(0)
    }

    /// The tree digest (§10.2), maintained incrementally.
    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// Number of ephemeral nodes (mntr `zk_ephemerals_count`).
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// The interned ACL lists with their users, by id (what a snapshot's ACL map holds).
    pub fn acl_table(&self) -> Vec<(AclId, Vec<Acl>, u64)> {
        self.acls
            .entries()
            .map(|(id, acl, refs)| (id, acl.to_vec(), refs))
            .collect()
    }

    /// Paths that currently have a quota (a `zookeeper_limits` node), sorted.
    pub fn quota_roots(&self) -> Vec<String> {
        self.quotas.iter().cloned().collect()
    }

    /// Number of interned ACL lists (ZooKeeper's `aclCacheSize`).
    pub fn acl_cache_size(&self) -> usize {
        self.acls.len()
    }

    /// The client stat of a node (for tools and tests).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.lookup(path)
            .map(|id| self.client_stat(self.arena.get(id)))
    }

    /// Data and stat of a node, without ACL checks or watches.
    pub fn get(&self, path: &str) -> Option<(Option<Bytes>, Stat)> {
        self.lookup(path).map(|id| {
            let n = self.arena.get(id);
            (n.data_bytes(), self.client_stat(n))
        })
    }

    /// Child names of a node, sorted, without ACL checks or watches.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.lookup(path).map(|id| {
            let mut v: Vec<String> = self
                .children_ids(id)
                .into_iter()
                .map(|c| self.arena.get(c).name().to_string())
                .collect();
            v.sort();
            v
        })
    }

    /// The ACL of a node, without checks.
    pub fn acl(&self, path: &str) -> Option<Vec<Acl>> {
        self.lookup(path)
            .map(|id| self.acl_of(self.arena.get(id)).to_vec())
    }

    /// The persisted `ephemeralOwner` and stored (not client-visible) cversion of a node.
    pub fn persisted_owner_and_cversion(&self, path: &str) -> Option<(i64, i32)> {
        self.lookup(path).map(|id| {
            let n = self.arena.get(id);
            (n.ephemeral_owner, n.cversion)
        })
    }

    /// Every node path, sorted (tests, debugging; O(n)).
    pub fn all_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.arena.iter().map(|(id, _)| self.path_of(id)).collect();
        v.sort();
        v
    }

    // ---- invariants ---------------------------------------------------------------------

    /// Panics with context when an invariant is violated. O(n).
    pub fn check_invariants(&self) {
        self.arena.check_invariants();
        let root = self.arena.get(self.root);
        assert_eq!(root.parent, NIL, "root has a parent");
        assert_eq!(root.name(), "", "root has a name");
        // Walk the tree from the root.
        let mut seen = 0usize;
        let mut digest = 0i64;
        let mut size = 1i64; // the root's "/" alias in ZooKeeper's node map
        let mut acl_uses: BTreeMap<AclId, u64> = BTreeMap::new();
        let mut eph: BTreeMap<i64, BTreeSet<NodeId>> = BTreeMap::new();
        let mut containers = BTreeSet::new();
        let mut ttls = BTreeSet::new();
        let mut stack = vec![(self.root, String::new())];
        while let Some((id, p)) = stack.pop() {
            seen += 1;
            let n = self.arena.get(id);
            let shown = if p.is_empty() { "/" } else { p.as_str() };
            let d = node_digest(shown, n);
            assert_eq!(d, n.digest, "stale digest on {shown}");
            digest = digest.wrapping_add(i64::from(d));
            size += len_i64(utf16_len(&p)) + len_i64(n.data_len());
            *acl_uses.entry(n.acl).or_default() += u64::from(n.acl != AclId::OPEN);
            match self.kind(n) {
                NodeKind::Persistent => {}
                NodeKind::Container => {
                    containers.insert(id);
                }
                NodeKind::Ttl(_) => {
                    ttls.insert(id);
                }
                NodeKind::Ephemeral(s) => {
                    eph.entry(s).or_default().insert(id);
                    assert_eq!(n.num_children, 0, "ephemeral {shown} has children");
                }
            }
            let kids = self.children_ids(id);
            assert_eq!(
                kids.len(),
                n.num_children as usize,
                "num_children of {shown}"
            );
            for &c in &kids {
                let cn = self.arena.get(c);
                assert_eq!(cn.parent, id, "parent link of a child of {shown}");
                let name = cn.name();
                assert!(
                    !name.is_empty() && !name.contains('/'),
                    "bad name under {shown}"
                );
                assert_eq!(self.child(id, name), Some(c), "index misses {shown}/{name}");
                assert_eq!(
                    self.arena.get(cn.next_sibling).prev_sibling,
                    c,
                    "sibling links under {shown}"
                );
                stack.push((c, format!("{p}/{name}")));
            }
        }
        assert_eq!(seen, self.arena.len(), "unreachable nodes in the arena");
        assert_eq!(self.index.len() + 1, seen, "name index size");
        assert_eq!(digest, self.digest, "tree digest");
        assert_eq!(
            size,
            self.data_size + self.quota_size_drift,
            "approximate data size"
        );
        acl_uses.retain(|id, n| *id != AclId::OPEN && *n > 0);
        self.acls.check_invariants(&acl_uses);
        assert_eq!(eph, self.ephemerals, "ephemeral sets");
        assert_eq!(containers, self.containers, "container set");
        assert_eq!(ttls, self.ttls, "ttl set");
        self.watches.check_invariants();
    }
}

//! `SnapshotImage`: a whole snapshot held in `BTreeMap`s, for tests, tools and the
//! simulator. It is both a [`SnapshotSource`] and a [`SnapshotSink`].
//!
//! Owns: an in-memory copy of a snapshot's sessions, ACL map, nodes and digest, and the
//! computation of ZooKeeper's tree digest (`DigestCalculator`, version 2) over them:
//!
//! ```text
//! node digest = CRC-32 of  path bytes ("/" hashed as ""), data bytes (none when null),
//!               czxid, mzxid, pzxid, ctime, mtime (8 bytes each, big-endian),
//!               version, cversion, aversion (4 bytes each), ephemeralOwner (8 bytes)
//!               ; 0 for paths under "/zookeeper/"
//! tree digest = wrapping 64-bit sum of all node digests
//! ```
//!
//! Invariants ([`SnapshotImage::check_invariants`]): the root `""` exists, every other path
//! starts with `/` and its parent exists, and every node's ACL id is
//! [`OPEN_ACL_UNSAFE_ID`] or a key of the ACL map. Nodes are written in path order, which
//! puts every parent before its children (a parent's path is a prefix of its child's).

use crate::error::{BoxError, Result};
use crate::snapshot::{
    NodeRecord, SnapshotNode, SnapshotSink, SnapshotSource, ZxidDigest, OPEN_ACL_UNSAFE_ID,
};
use bytes::Bytes;
use corral_proto::records::{perms, Acl, StatPersisted};
use std::collections::BTreeMap;

/// The subtree ZooKeeper leaves out of the digest.
pub const DIGEST_EXCLUDED_PREFIX: &str = "/zookeeper/";

/// A node of a [`SnapshotImage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNode {
    pub data: Option<Bytes>,
    pub acl_id: i64,
    pub stat: StatPersisted,
}

/// A snapshot in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotImage {
    /// session id → timeout in ms.
    pub sessions: BTreeMap<i64, i32>,
    /// ACL id → ACL list (never holds [`OPEN_ACL_UNSAFE_ID`]).
    pub acls: BTreeMap<i64, Vec<Acl>>,
    /// path (root = `""`) → node.
    pub nodes: BTreeMap<String, ImageNode>,
    /// The digest part, when the snapshot has one.
    pub digest: Option<ZxidDigest>,
}

impl SnapshotImage {
    /// The tree of a fresh ZooKeeper 3.8 server, as in its `snapshot.0`: the root,
    /// `/zookeeper`, `/zookeeper/config` (ACL 1 = world:anyone READ, aversion -1) and
    /// `/zookeeper/quota`, with the empty digest.
    pub fn initial() -> SnapshotImage {
        let mut img = SnapshotImage {
            digest: Some(ZxidDigest::EMPTY),
            ..SnapshotImage::default()
        };
        img.acls
            .insert(1, vec![Acl::new(perms::READ, "world", "anyone")]);
        let empty = || ImageNode {
            data: Some(Bytes::new()),
            acl_id: OPEN_ACL_UNSAFE_ID,
            stat: StatPersisted::default(),
        };
        let mut root = empty();
        root.stat.cversion = 0;
        img.nodes.insert(String::new(), root);
        img.nodes.insert("/zookeeper".into(), empty());
        let mut config = empty();
        config.acl_id = 1;
        config.stat.aversion = -1;
        img.nodes.insert("/zookeeper/config".into(), config);
        img.nodes.insert("/zookeeper/quota".into(), empty());
        img
    }

    /// The parent path of `path` in snapshot form (`"/a"` → `""`), `None` for the root.
    pub fn parent_of(path: &str) -> Option<&str> {
        path.rfind('/').map(|i| &path[..i])
    }

    /// Checks the invariants in the module docs.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !self.nodes.contains_key("") {
            return Err("no root node \"\"".into());
        }
        if self.acls.contains_key(&OPEN_ACL_UNSAFE_ID) {
            return Err("the ACL map holds the reserved id -1".into());
        }
        for (path, n) in &self.nodes {
            if !path.is_empty() {
                if !path.starts_with('/') || path.ends_with('/') {
                    return Err(format!("bad path {path:?}"));
                }
                let parent = Self::parent_of(path).unwrap_or("");
                if !self.nodes.contains_key(parent) {
                    return Err(format!("node {path:?} has no parent {parent:?}"));
                }
            }
            if n.acl_id != OPEN_ACL_UNSAFE_ID && !self.acls.contains_key(&n.acl_id) {
                return Err(format!("node {path:?} uses unknown ACL id {}", n.acl_id));
            }
        }
        Ok(())
    }

    /// The ACL list of a node (resolving [`OPEN_ACL_UNSAFE_ID`]).
    pub fn acl_of(&self, path: &str) -> Option<Vec<Acl>> {
        let n = self.nodes.get(path)?;
        if n.acl_id == OPEN_ACL_UNSAFE_ID {
            return Some(Acl::open_unsafe());
        }
        self.acls.get(&n.acl_id).cloned()
    }

    /// Names of the direct children of `path` (root = `""`).
    pub fn children_of(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .map(|(p, _)| p[prefix.len()..].to_owned())
            .collect()
    }

    /// Number of nodes whose ephemeral owner is `session_id`.
    pub fn ephemeral_count(&self, session_id: i64) -> usize {
        self.nodes
            .values()
            .filter(|n| n.stat.ephemeral_owner == session_id)
            .count()
    }

    /// The tree digest over all nodes (see the module docs).
    pub fn tree_digest(&self) -> i64 {
        self.nodes.iter().fold(0i64, |acc, (path, n)| {
            acc.wrapping_add(node_digest(path, n.data.as_deref(), &n.stat))
        })
    }
}

/// ZooKeeper's `DigestCalculator.calculateDigest` (digest version 2).
pub fn node_digest(path: &str, data: Option<&[u8]>, stat: &StatPersisted) -> i64 {
    if path.starts_with(DIGEST_EXCLUDED_PREFIX) {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut h = crc32fast::Hasher::new();
    h.update(path.as_bytes());
    if let Some(d) = data {
        h.update(d);
    }
    let mut b = [0u8; 60];
    b[0..8].copy_from_slice(&stat.czxid.to_be_bytes());
    b[8..16].copy_from_slice(&stat.mzxid.to_be_bytes());
    b[16..24].copy_from_slice(&stat.pzxid.to_be_bytes());
    b[24..32].copy_from_slice(&stat.ctime.to_be_bytes());
    b[32..40].copy_from_slice(&stat.mtime.to_be_bytes());
    b[40..44].copy_from_slice(&stat.version.to_be_bytes());
    b[44..48].copy_from_slice(&stat.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&stat.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&stat.ephemeral_owner.to_be_bytes());
    h.update(&b);
    h.finalize() as i64
}

impl SnapshotSource for SnapshotImage {
    fn session_count(&self) -> usize {
        self.sessions.len()
    }
    fn visit_sessions(&self, f: &mut dyn FnMut(i64, i32) -> Result<()>) -> Result<()> {
        for (&id, &t) in &self.sessions {
            f(id, t)?;
        }
        Ok(())
    }
    fn acl_count(&self) -> usize {
        self.acls.len()
    }
    fn visit_acls(&self, f: &mut dyn FnMut(i64, &[Acl]) -> Result<()>) -> Result<()> {
        for (&id, list) in &self.acls {
            f(id, list)?;
        }
        Ok(())
    }
    fn visit_nodes(&self, f: &mut dyn FnMut(NodeRecord<'_>) -> Result<()>) -> Result<()> {
        for (path, n) in &self.nodes {
            f(NodeRecord {
                path,
                data: n.data.as_deref(),
                acl_id: n.acl_id,
                stat: n.stat,
            })?;
        }
        Ok(())
    }
    fn digest(&self) -> ZxidDigest {
        self.digest.unwrap_or(ZxidDigest::EMPTY)
    }
}

impl SnapshotSink for SnapshotImage {
    fn session(&mut self, session_id: i64, timeout_ms: i32) -> Result<(), BoxError> {
        if self.sessions.insert(session_id, timeout_ms).is_some() {
            return Err(format!("session 0x{session_id:x} appears twice").into());
        }
        Ok(())
    }
    fn acl(&mut self, acl_id: i64, acls: Vec<Acl>) -> Result<(), BoxError> {
        if acl_id == OPEN_ACL_UNSAFE_ID {
            return Err("ACL map holds the reserved id -1".into());
        }
        if self.acls.insert(acl_id, acls).is_some() {
            return Err(format!("ACL id {acl_id} appears twice").into());
        }
        Ok(())
    }
    fn node(&mut self, node: SnapshotNode) -> Result<(), BoxError> {
        let SnapshotNode {
            path,
            data,
            acl_id,
            stat,
        } = node;
        if path.is_empty() {
            if !self.nodes.is_empty() {
                return Err("root node \"\" is not the first node".into());
            }
        } else {
            if !path.starts_with('/') {
                return Err(format!("node path {path:?} does not start with '/'").into());
            }
            let parent = SnapshotImage::parent_of(&path).unwrap_or("");
            if !self.nodes.contains_key(parent) {
                return Err(format!("node {path:?} comes before its parent {parent:?}").into());
            }
        }
        if acl_id != OPEN_ACL_UNSAFE_ID && !self.acls.contains_key(&acl_id) {
            return Err(format!("node {path:?} uses ACL id {acl_id}, not in the ACL map").into());
        }
        if self.nodes.contains_key(&path) {
            return Err(format!("node {path:?} appears twice").into());
        }
        self.nodes.insert(path, ImageNode { data, acl_id, stat });
        Ok(())
    }
    fn digest(&mut self, digest: ZxidDigest) -> Result<(), BoxError> {
        self.digest = Some(digest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_image_is_consistent() {
        let img = SnapshotImage::initial();
        img.check_invariants().unwrap();
        assert_eq!(img.children_of(""), vec!["zookeeper".to_string()]);
        assert_eq!(
            img.children_of("/zookeeper"),
            vec!["config".to_string(), "quota".to_string()]
        );
        // ZooKeeper 3.8.0 logs "digest is 1371985504" for its empty tree.
        assert_eq!(img.tree_digest(), 1_371_985_504);
    }
}

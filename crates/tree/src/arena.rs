//! Node storage: a slab of [`Node`]s addressed by [`NodeId`], in fixed-size chunks that are
//! shared copy-on-write.
//!
//! Owns the nodes and their links; the name index (`(parent, name) -> id`) lives in the
//! tree. Children form a circular doubly linked sibling list (`first_child`, whose
//! `prev_sibling` is the last child), so adding and removing a child is O(1) and a node
//! costs a fixed ~150 bytes plus its name and data.
//!
//! Why chunks behind `Arc`: cloning the arena clones only the chunk pointers, and a write
//! copies just the chunk it touches if someone else still holds it (`Arc::make_mut`). That
//! gives a consistent point-in-time view of a million-node tree for a snapshot writer on
//! another thread at the cost of one pointer copy per 256 nodes, without stalling writes.
//!
//! Invariants (checked by the tree's `check_invariants`): a live id is `Some` in its slot;
//! freed ids are `None` and listed exactly once in `free`.

use bytes::Bytes;
use std::sync::Arc;

/// Index of a node in the arena.
pub(crate) type NodeId = u32;

/// "No node" in link fields.
pub(crate) const NIL: NodeId = u32::MAX;

/// Slots per copy-on-write chunk.
const CHUNK_SLOTS: usize = 256;

/// Most nodes the arena can address (ids are u32 and `NIL` is reserved).
pub(crate) const NODES_MAX: usize = (u32::MAX - 1) as usize;

/// One znode. Stats are the persisted ones: `cversion` is the stored count of child
/// creations, `ephemeral_owner` the raw encoding (session, container or TTL marker).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The last path component (`""` for the root).
    pub(crate) name: Arc<str>,
    /// `None` is a null buffer (wire length -1), distinct from empty.
    pub(crate) data: Option<Bytes>,
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) pzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) ephemeral_owner: i64,
    pub(crate) version: i32,
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
    pub(crate) acl: crate::acl::AclId,
    /// CRC32 node digest (§10.2), 0 for nodes under `/zookeeper/`.
    pub(crate) digest: u32,
    pub(crate) num_children: u32,
    pub(crate) parent: NodeId,
    pub(crate) first_child: NodeId,
    pub(crate) next_sibling: NodeId,
    pub(crate) prev_sibling: NodeId,
}

impl Node {
    pub(crate) fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, Bytes::len)
    }
}

#[derive(Debug, Clone)]
struct Chunk {
    slots: Vec<Option<Node>>,
}

/// The slab.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arena {
    chunks: Vec<Arc<Chunk>>,
    free: Vec<NodeId>,
    live: usize,
}

#[inline]
fn split(id: NodeId) -> (usize, usize) {
    let i = id as usize;
    (i / CHUNK_SLOTS, i % CHUNK_SLOTS)
}

impl Arena {
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The node behind a live id. Ids come from the tree's own links and index, never from
    /// a request, so a dead id is a bug.
    #[inline]
    pub(crate) fn get(&self, id: NodeId) -> &Node {
        let (c, s) = split(id);
        match self.chunks.get(c).and_then(|ch| ch.slots[s].as_ref()) {
            Some(n) => n,
            None => panic!("arena: node id {id} is not live"),
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: NodeId) -> &mut Node {
        let (c, s) = split(id);
        let chunk = match self.chunks.get_mut(c) {
            Some(ch) => Arc::make_mut(ch),
            None => panic!("arena: node id {id} out of range"),
        };
        match chunk.slots[s].as_mut() {
            Some(n) => n,
            None => panic!("arena: node id {id} is not live"),
        }
    }

    pub(crate) fn alloc(&mut self, node: Node) -> NodeId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let next = self.chunks.len() * CHUNK_SLOTS;
                assert!(next < NODES_MAX, "arena full: {} nodes", self.live);
                self.chunks.push(Arc::new(Chunk {
                    slots: vec![None; CHUNK_SLOTS],
                }));
                // Hand out the new chunk's ids lowest first.
                for i in (next + 1..next + CHUNK_SLOTS).rev() {
                    self.free.push(i as NodeId);
                }
                next as NodeId
            }
        };
        let (c, s) = split(id);
        let slot = &mut Arc::make_mut(&mut self.chunks[c]).slots[s];
        assert!(slot.is_none(), "arena: free id {id} is occupied");
        *slot = Some(node);
        self.live += 1;
        id
    }

    pub(crate) fn free(&mut self, id: NodeId) -> Node {
        let (c, s) = split(id);
        let chunk = match self.chunks.get_mut(c) {
            Some(ch) => Arc::make_mut(ch),
            None => panic!("arena: freeing id {id} out of range"),
        };
        match chunk.slots[s].take() {
            Some(n) => {
                self.free.push(id);
                self.live -= 1;
                n
            }
            None => panic!("arena: double free of id {id}"),
        }
    }

    /// Every live `(id, node)`, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, ch)| {
            ch.slots
                .iter()
                .enumerate()
                .filter_map(move |(s, n)| n.as_ref().map(|n| ((c * CHUNK_SLOTS + s) as NodeId, n)))
        })
    }

    pub(crate) fn check_invariants(&self) {
        let live = self.iter().count();
        assert_eq!(live, self.live, "arena live count");
        let mut seen = std::collections::BTreeSet::new();
        for &id in &self.free {
            assert!(seen.insert(id), "arena: id {id} twice in free list");
            let (c, s) = split(id);
            assert!(
                self.chunks[c].slots[s].is_none(),
                "arena: free id {id} is live"
            );
        }
        assert_eq!(
            live + self.free.len(),
            self.chunks.len() * CHUNK_SLOTS,
            "arena: slots neither live nor free"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::AclId;

    fn node(name: &str) -> Node {
        Node {
            name: name.into(),
            data: None,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            ephemeral_owner: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            acl: AclId::OPEN,
            digest: 0,
            num_children: 0,
            parent: NIL,
            first_child: NIL,
            next_sibling: NIL,
            prev_sibling: NIL,
        }
    }

    #[test]
    fn alloc_free_reuse_and_cow() {
        let mut a = Arena::default();
        let ids: Vec<_> = (0..600).map(|i| a.alloc(node(&format!("n{i}")))).collect();
        assert_eq!(ids[0], 0);
        assert_eq!(ids[599], 599);
        a.check_invariants();
        let snapshot = a.clone();
        a.get_mut(5).version = 9;
        assert_eq!(snapshot.get(5).version, 0, "the clone is unaffected");
        assert_eq!(a.get(5).version, 9);
        let n = a.free(7);
        assert_eq!(&*n.name, "n7");
        assert_eq!(a.alloc(node("again")), 7);
        assert_eq!(a.len(), 600);
        assert_eq!(snapshot.iter().count(), 600);
        a.check_invariants();
        snapshot.check_invariants();
    }
}

//! Node storage: a slab of [`Node`]s addressed by [`NodeId`], in fixed-size chunks that are
//! shared copy-on-write.
//!
//! Owns the nodes and their links; the name index (`(parent, name) -> id`) lives in the
//! tree. Children form a circular doubly linked sibling list (`first_child`, whose
//! `prev_sibling` is the last child), so adding and removing a child is O(1).
//!
//! Memory: a node record is 104 bytes (stats, links, and a 16-byte [`Payload`] for the
//! name and data). A name with null data or data of at most
//! [`crate::payload::INLINE_DATA_MAX`] bytes costs one more heap block of `header + name +
//! data` bytes (the header is one byte for names under 64 bytes; a short name with 10
//! bytes of data fits a 32-byte malloc chunk); larger data is kept as `Bytes` (see
//! `payload`). With the name index (~10 bytes a node) such a small znode costs about 150
//! bytes of heap (measured: 147 by `examples/scale.rs`, 1,001,000 znodes).
//!
//! Why chunks behind `Arc`: cloning the arena clones only the chunk pointers, and a write
//! copies just the chunk it touches if someone else still holds it (`Arc::make_mut`). That
//! gives a consistent point-in-time view of a million-node tree for a snapshot writer on
//! another thread at the cost of one pointer copy per 256 nodes, without stalling writes.
//! (Copying a chunk deep-copies its nodes' small inline blocks: 256 small mallocs, paid
//! only for chunks written while a snapshot view is alive.)
//!
//! Why a liveness bitmap rather than `Option<Node>` slots: the payload uses its pointer's
//! only niche, so `Option<Node>` would take 8 more bytes per slot. A vacant slot holds
//! [`Node::vacant`] (an empty payload, no heap).
//!
//! Invariants (checked by the tree's `check_invariants`): a live id has its bit set; freed
//! ids have it clear, hold a vacant node and are listed exactly once in `free`.

use crate::payload::Payload;
use bytes::Bytes;
use std::sync::Arc;

/// Index of a node in the arena.
pub(crate) type NodeId = u32;

/// "No node" in link fields.
pub(crate) const NIL: NodeId = u32::MAX;

/// Slots per copy-on-write chunk.
const CHUNK_SLOTS: usize = 256;
/// Words of a chunk's liveness bitmap.
const LIVE_WORDS: usize = CHUNK_SLOTS / 64;

/// Most nodes the arena can address (ids are u32 and `NIL` is reserved).
pub(crate) const NODES_MAX: usize = (u32::MAX - 1) as usize;

/// One znode. Stats are the persisted ones: `cversion` is the stored count of child
/// creations, `ephemeral_owner` the raw encoding (session, container or TTL marker).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The last path component (`""` for the root) and the data; `None` data is a null
    /// buffer (wire length -1), distinct from empty.
    payload: Payload,
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
    /// A node with zero stats, the open ACL and no links but `parent`. Copies `name` and
    /// `data`, so it never pins the caller's buffer.
    pub(crate) fn new(name: &str, data: Option<&[u8]>, parent: NodeId) -> Node {
        Node::with_payload(Payload::new(name, data), parent)
    }

    /// What a vacant slot holds: no name, null data, nothing on the heap.
    fn vacant() -> Node {
        Node::with_payload(Payload::default(), NIL)
    }

    fn with_payload(payload: Payload, parent: NodeId) -> Node {
        Node {
            payload,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            ephemeral_owner: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            acl: crate::acl::AclId::OPEN,
            digest: 0,
            num_children: 0,
            parent,
            first_child: NIL,
            next_sibling: NIL,
            prev_sibling: NIL,
        }
    }

    /// The last path component (`""` for the root).
    #[inline]
    pub(crate) fn name(&self) -> &str {
        self.payload.name()
    }

    /// [`Node::name`] as bytes, without the UTF-8 check (hashing, comparing).
    #[inline]
    pub(crate) fn name_bytes(&self) -> &[u8] {
        self.payload.name_bytes()
    }

    /// The data, borrowed; `None` is null.
    #[inline]
    pub(crate) fn data(&self) -> Option<&[u8]> {
        self.payload.data()
    }

    /// The data for a reply (large data shared, small data copied).
    pub(crate) fn data_bytes(&self) -> Option<Bytes> {
        self.payload.data_bytes()
    }

    /// Replaces the data with a copy of `data`.
    pub(crate) fn set_data(&mut self, data: Option<&[u8]>) {
        self.payload.set_data(data);
    }

    pub(crate) fn data_len(&self) -> usize {
        self.payload.data_len()
    }
}

#[derive(Debug, Clone)]
struct Chunk {
    slots: Vec<Node>,
    /// Bit `s % 64` of word `s / 64` is set iff slot `s` is live.
    live: [u64; LIVE_WORDS],
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            slots: (0..CHUNK_SLOTS).map(|_| Node::vacant()).collect(),
            live: [0; LIVE_WORDS],
        }
    }

    #[inline]
    fn is_live(&self, s: usize) -> bool {
        self.live[s / 64] >> (s % 64) & 1 == 1
    }

    #[inline]
    fn set_live(&mut self, s: usize, live: bool) {
        let bit = 1u64 << (s % 64);
        if live {
            self.live[s / 64] |= bit;
        } else {
            self.live[s / 64] &= !bit;
        }
    }
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
        match self.chunks.get(c) {
            Some(ch) if ch.is_live(s) => &ch.slots[s],
            _ => panic!("arena: node id {id} is not live"),
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: NodeId) -> &mut Node {
        let (c, s) = split(id);
        let chunk = match self.chunks.get_mut(c) {
            Some(ch) => Arc::make_mut(ch),
            None => panic!("arena: node id {id} out of range"),
        };
        assert!(chunk.is_live(s), "arena: node id {id} is not live");
        &mut chunk.slots[s]
    }

    pub(crate) fn alloc(&mut self, node: Node) -> NodeId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let next = self.chunks.len() * CHUNK_SLOTS;
                assert!(next < NODES_MAX, "arena full: {} nodes", self.live);
                self.chunks.push(Arc::new(Chunk::new()));
                // Hand out the new chunk's ids lowest first.
                for i in (next + 1..next + CHUNK_SLOTS).rev() {
                    self.free.push(i as NodeId);
                }
                next as NodeId
            }
        };
        let (c, s) = split(id);
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        assert!(!chunk.is_live(s), "arena: free id {id} is occupied");
        chunk.slots[s] = node;
        chunk.set_live(s, true);
        self.live += 1;
        id
    }

    pub(crate) fn free(&mut self, id: NodeId) -> Node {
        let (c, s) = split(id);
        let chunk = match self.chunks.get_mut(c) {
            Some(ch) => Arc::make_mut(ch),
            None => panic!("arena: freeing id {id} out of range"),
        };
        assert!(chunk.is_live(s), "arena: double free of id {id}");
        chunk.set_live(s, false);
        self.free.push(id);
        self.live -= 1;
        std::mem::replace(&mut chunk.slots[s], Node::vacant())
    }

    /// Every live `(id, node)`, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, ch)| {
            ch.slots
                .iter()
                .enumerate()
                .filter(|&(s, _)| ch.is_live(s))
                .map(move |(s, n)| ((c * CHUNK_SLOTS + s) as NodeId, n))
        })
    }

    pub(crate) fn check_invariants(&self) {
        let live = self.iter().count();
        assert_eq!(live, self.live, "arena live count");
        let mut seen = std::collections::BTreeSet::new();
        for &id in &self.free {
            assert!(seen.insert(id), "arena: id {id} twice in free list");
            let (c, s) = split(id);
            let chunk = &self.chunks[c];
            assert!(!chunk.is_live(s), "arena: free id {id} is live");
            assert!(
                chunk.slots[s].payload.is_empty(),
                "arena: free id {id} still holds a name or data"
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

    fn node(name: &str) -> Node {
        Node::new(name, None, NIL)
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
        a.get_mut(6).set_data(Some(b"new"));
        assert_eq!(snapshot.get(5).version, 0, "the clone is unaffected");
        assert_eq!(snapshot.get(6).data(), None, "the clone keeps the old data");
        assert_eq!(a.get(5).version, 9);
        assert_eq!(a.get(6).data(), Some(&b"new"[..]));
        let n = a.free(7);
        assert_eq!(n.name(), "n7");
        assert_eq!(a.alloc(node("again")), 7);
        assert_eq!(a.get(7).name(), "again");
        assert_eq!(a.len(), 600);
        assert_eq!(snapshot.iter().count(), 600);
        assert_eq!(snapshot.get(7).name(), "n7");
        a.check_invariants();
        snapshot.check_invariants();
    }

    #[test]
    #[should_panic(expected = "not live")]
    fn a_freed_id_is_not_readable() {
        let mut a = Arena::default();
        let id = a.alloc(node("x"));
        a.free(id);
        a.get(id);
    }

    #[test]
    fn iter_skips_vacant_slots() {
        let mut a = Arena::default();
        for i in 0..300 {
            a.alloc(node(&format!("n{i}")));
        }
        for id in [0, 63, 64, 255, 256, 299] {
            a.free(id);
        }
        let ids: Vec<_> = a.iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 294);
        assert!(ids
            .iter()
            .all(|id| ![0, 63, 64, 255, 256, 299].contains(id)));
        assert!(a.iter().all(|(id, n)| n.name() == format!("n{id}")));
        a.check_invariants();
    }

    /// The record size the memory budget assumes (64-bit targets).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn node_record_is_104_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 104);
    }
}

//! The replicated state machine of a ZooKeeper server: the data tree.
//!
//! Owns the znodes (data, stats, ACLs, children), ephemeral / container / TTL
//! bookkeeping, the session table as replicated state, quota usage nodes, the tree digest
//! and the watch tables (watches are keyed by session id; the node crate routes
//! notifications to connections).
//!
//! The request life cycle mirrors ZooKeeper's processors:
//! * [`DataTree::prep`] (PrepRequestProcessor) validates a write and returns the txn to
//!   log, an error txn when it fails;
//! * [`DataTree::apply`] (FinalRequestProcessor's tree part) applies a txn, returning the
//!   reply body and the watch events it fires; [`DataTree::replay`] applies logged txns
//!   after a crash;
//! * [`DataTree::read`] and [`DataTree::watch_op`] serve reads and watch management.
//!
//! Modules: [`path`] (path rules), `acl` (interned ACL lists, checks, fixup), `arena`
//! (copy-on-write node slab), `payload` (a node's name and data in one compact field), `watch` (watch tables), `quota` (quota usage), `tree`
//! (storage and txn application), `prep` (write validation), `read` (reads and watch ops),
//! [`snapshot`] (the tree as a ZooKeeper snapshot stream and back, replay digest checks).
//!
//! Persistence: [`DataTree::snapshot_source`] hands `corral_storage`'s snapshot writer a
//! consistent copy-on-write view; [`snapshot::TreeBuilder`] rebuilds a tree from a
//! snapshot read by `corral_storage`; [`DataTree::replay_entry`] replays the log after it.
//! The tree depends on `corral-storage` only for those stream traits and value types; it
//! never opens a file itself.
//!
//! Behaviour follows the real ZooKeeper 3.8.0 server (a recorded run replays identically,
//! see `tests/zookeeper_transcript.rs`), except where 3.8.0 is plainly broken:
//! * watch modes on one `(session, path)` are kept apart (3.8 let a later registration of
//!   another mode replace the earlier one; fixed upstream in 3.9.2, ZOOKEEPER-4466);
//! * a create whose flags disagree with its opcode is BadArguments (3.8.0 let the opcode
//!   win, and applying op 21 with plain flags and a negative TTL stopped the server);
//! * the reaper's deleteContainer only deletes containers and TTL nodes;
//! * an ephemeral create from a session missing in the session table is SessionExpired;
//! * watch events are dropped for sessions that may not READ the node (3.8.4+), while
//!   exists itself checks no ACL (as 3.8.0);
//! * a closing session's ephemerals are listed sorted; freed ACL ids are reused, and a
//!   failed create leaks no ACL reference;
//! * malformed quota usage text is left alone where ZooKeeper would throw.
//!
//! Pure: no tokio, no clock, no randomness, no I/O; every map uses a fixed hasher, so the
//! same inputs give the same outputs, orders included. Time enters only as the txn
//! timestamp (`TxnHeader::time_ms`) or an explicit `now_ms`. Single-threaded: the owner
//! calls prep / apply / read / watch_op in the order it decides, applying each txn before
//! prepping the next request.

mod acl;
mod arena;
mod hash;
pub mod path;
mod payload;
mod prep;
mod quota;
mod read;
pub mod snapshot;
mod tree;
mod watch;

pub use acl::AclId;
pub use tree::{ttl_ephemeral_owner, DataTree, NodeKind, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS};

use corral_proto::{ErrorCode, EventType, Id, Response};

/// Static behaviour switches, built at the edge from `zoo.cfg` / system properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeConfig {
    /// `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `zookeeper.skipACL=yes`: no permission checks at all.
    pub skip_acl: bool,
    /// `"super:<base64 sha1>"` id: a digest auth producing exactly this id also grants `super`.
    pub super_digest: Option<String>,
}

/// Who is asking. `auth` holds the connection's identities: always `ip:<addr>`, plus
/// `digest:user:<b64>` per successful digest auth, plus `super:` when granted.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub session_id: i64,
    pub auth: &'a [Id],
}

/// An event for one session's connection (the node routes it by session id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchNotification {
    pub session_id: i64,
    pub event_type: EventType,
    pub path: String,
    pub zxid: i64,
}

/// The outcome of applying one txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub result: Result<Response, ErrorCode>,
    pub notifications: Vec<WatchNotification>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn tree_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<crate::DataTree>();
        // The snapshot view is handed to the snapshot thread.
        fn owned<T: Send + Sync + 'static>() {}
        owned::<crate::snapshot::TreeSnapshot>();
    }
}

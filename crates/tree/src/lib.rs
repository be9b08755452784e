//! The replicated state machine of a ZooKeeper server: the data tree.
//!
//! Owns the znodes (data, stats, ACLs, children), ephemeral/container/TTL bookkeeping, the
//! session table as replicated state, quota usage nodes, the tree digest and the watch
//! tables (watches are keyed by session id; the node crate routes notifications to
//! connections).
//!
//! Pure: no tokio, no clock, no randomness, no I/O. Time enters only as the txn timestamp
//! (`TxnHeader::time_ms`) or as an explicit `now_ms` argument. Single-threaded: the owner
//! calls `prep` / `apply` / `read` / `watch_op` in the order it decides.

use corral_proto::{ErrorCode, EventType, Id, Request, Response, Txn, TxnHeader};

/// Static behaviour switches, built at the edge from `zoo.cfg` / system properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeConfig {
    /// `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `zookeeper.skipACL=yes`: no permission checks at all.
    pub skip_acl: bool,
    /// "super:<base64 sha1>" id: a digest auth producing exactly this id also grants `super`.
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

/// The data tree.
pub struct DataTree {
    cfg: TreeConfig,
}

impl DataTree {
    pub fn new(cfg: TreeConfig) -> DataTree {
        DataTree { cfg }
    }

    pub fn prep(&self, caller: &Caller, req: &Request, time_ms: i64) -> Txn {
        let _ = (caller, req, time_ms, &self.cfg);
        todo!()
    }

    pub fn apply(&mut self, hdr: &TxnHeader, txn: &Txn) -> Applied {
        let _ = (hdr, txn);
        todo!()
    }

    pub fn replay(&mut self, hdr: &TxnHeader, txn: &Txn) -> Result<(), String> {
        let _ = (hdr, txn);
        todo!()
    }

    pub fn read(&mut self, caller: &Caller, req: &Request) -> Result<Response, ErrorCode> {
        let _ = (caller, req);
        todo!()
    }

    pub fn watch_op(
        &mut self,
        caller: &Caller,
        req: &Request,
        zxid: i64,
    ) -> (Result<Response, ErrorCode>, Vec<WatchNotification>) {
        let _ = (caller, req, zxid);
        todo!()
    }

    pub fn remove_watches_of(&mut self, session_id: i64) {
        let _ = session_id;
        todo!()
    }

    pub fn sessions(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        std::iter::empty()
    }

    pub fn session_exists(&self, session_id: i64) -> bool {
        let _ = session_id;
        todo!()
    }

    pub fn ephemerals_of(&self, session_id: i64) -> Vec<String> {
        let _ = session_id;
        todo!()
    }

    pub fn reapable_nodes(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let _ = (now_ms, max_never_used_ms);
        todo!()
    }

    pub fn node_count(&self) -> usize {
        todo!()
    }

    pub fn approximate_data_size(&self) -> u64 {
        todo!()
    }

    pub fn digest(&self) -> i64 {
        todo!()
    }

    pub fn watch_count(&self) -> usize {
        todo!()
    }

    pub fn watches_by_session(&self) -> Vec<(i64, Vec<String>)> {
        todo!()
    }

    pub fn watches_by_path(&self) -> Vec<(String, Vec<i64>)> {
        todo!()
    }

    pub fn ephemeral_count(&self) -> usize {
        todo!()
    }

    pub fn check_invariants(&self) {
        todo!()
    }
}

//! Simulated ZooKeeper clients and the history they record.
//!
//! A client holds one session at a time, connects to a random member, pipelines a couple
//! of requests on a few keys (`create`, `setData` with values unique in the run,
//! `getData`, `sync` followed by `getData`), pings when idle, and on a lost connection
//! reconnects elsewhere with its session id and `lastZxidSeen`. Every request becomes an
//! [`HOp`] in the history: invoked at one time, answered (or not) at another.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// Keys the clients work on.
pub const KEYS: [&str; 3] = ["/k0", "/k1", "/k2"];
/// Session timeout clients ask for, in ms.
pub const SESSION_TIMEOUT_MS: i32 = 3_000;
/// Requests a client keeps in flight.
pub const PIPELINE_MAX: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HKind {
    Create,
    Set,
    Get,
    Sync,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not answered yet.
    Pending,
    /// Answered: the reply header's zxid, the value read (reads), the stat's mzxid.
    Ok {
        zxid: i64,
        value: Option<String>,
        mzxid: i64,
    },
    /// Answered with this error code.
    Err(i32),
    /// The connection went before the answer: a write may or may not have happened.
    Unknown,
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct HOp {
    pub client: usize,
    pub session_id: i64,
    pub kind: HKind,
    pub key: String,
    /// Written value (writes).
    pub value: Option<String>,
    pub invoked_ms: u64,
    pub answered_ms: Option<u64>,
    pub outcome: Outcome,
    /// A read issued right after a sync of the same key on the same connection: the sync's
    /// invocation time.
    pub after_sync_ms: Option<u64>,
}

/// One simulated client.
#[derive(Debug)]
pub struct Client {
    pub id: usize,
    pub session_id: i64,
    pub passwd: Bytes,
    pub last_zxid: i64,
    pub conn: Option<u64>,
    pub connected: bool,
    pub conn_started_ms: u64,
    pub next_xid: i32,
    /// (xid, op code, history index; None for pings).
    pub pending: VecDeque<(i32, i32, Option<usize>)>,
    pub last_recv_ms: u64,
    pub last_sent_ms: u64,
    pub next_op_ms: u64,
    pub retry_ms: u64,
    pub written: u64,
    /// Highest mzxid this client knows per key (its own acknowledged writes and reads).
    pub seen: HashMap<String, i64>,
}

impl Client {
    pub fn new(id: usize) -> Client {
        Client {
            id,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            last_zxid: 0,
            conn: None,
            connected: false,
            conn_started_ms: 0,
            next_xid: 1,
            pending: VecDeque::new(),
            last_recv_ms: 0,
            last_sent_ms: 0,
            next_op_ms: 0,
            retry_ms: 0,
            written: 0,
            seen: HashMap::new(),
        }
    }
}

//! Plain data types of the client API: create modes, session states, watch events, multi ops
//! and their results, and ACL helpers.
//!
//! Owns: the mapping between these types and the wire numbers (create flags and opcodes,
//! event types, keeper states). Nothing here does I/O.

use base64::Engine as _;
use bytes::Bytes;
use corral_proto::{Acl, EventType, KeeperState, OpCode, Stat};
use std::time::Duration;

/// The largest TTL ZooKeeper accepts, in milliseconds (`0xFF_FFFF_FFFF`).
pub const TTL_MS_MAX: i64 = 0xFF_FFFF_FFFF;

/// How a node is created. The opcode follows from the mode: containers use
/// createContainer (19), TTL modes use createTTL (21), the rest create (1) or create2 (15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    /// Deleted by the server some time after its last child goes away.
    Container,
    /// Deleted by the server when unmodified and childless for `ttl_ms`
    /// (needs `extendedTypesEnabled=true` on the server).
    PersistentWithTtl {
        ttl_ms: i64,
    },
    PersistentSequentialWithTtl {
        ttl_ms: i64,
    },
}

impl CreateMode {
    /// The `flags` field of CreateRequest.
    pub fn flags(self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
            CreateMode::Container => 4,
            CreateMode::PersistentWithTtl { .. } => 5,
            CreateMode::PersistentSequentialWithTtl { .. } => 6,
        }
    }

    /// The mode for a `flags` value (TTL modes get `ttl_ms` 0; set it afterwards).
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl { ttl_ms: 0 },
            6 => CreateMode::PersistentSequentialWithTtl { ttl_ms: 0 },
            _ => return None,
        })
    }

    pub fn ttl_ms(self) -> Option<i64> {
        match self {
            CreateMode::PersistentWithTtl { ttl_ms }
            | CreateMode::PersistentSequentialWithTtl { ttl_ms } => Some(ttl_ms),
            _ => None,
        }
    }

    pub fn with_ttl(ttl: Duration) -> CreateMode {
        CreateMode::PersistentWithTtl {
            ttl_ms: ttl.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl { .. }
        )
    }

    /// The opcode used for a create in this mode; `with_stat` picks create2 over create for
    /// the plain modes (containers and TTL nodes always answer with a stat).
    pub fn opcode(self, with_stat: bool) -> OpCode {
        match self {
            CreateMode::Container => OpCode::CreateContainer,
            CreateMode::PersistentWithTtl { .. }
            | CreateMode::PersistentSequentialWithTtl { .. } => OpCode::CreateTtl,
            _ if with_stat => OpCode::Create2,
            _ => OpCode::Create,
        }
    }
}

/// The client's view of its session and connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Looking for a server (first connect, or after a disconnect before anything else).
    Connecting,
    Connected,
    /// Connected to a server that has lost its quorum and serves reads only.
    ConnectedReadOnly,
    /// The connection dropped; the session may still be alive and the client is trying the
    /// hosts again. Curator calls this "suspended".
    Disconnected,
    /// The server told us the session is gone. Terminal.
    Expired,
    /// The client closed the session. Terminal.
    Closed,
    /// The server rejected our credentials. Terminal.
    AuthFailed,
}

impl SessionState {
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            SessionState::Connected | SessionState::ConnectedReadOnly
        )
    }

    /// No further state change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Expired | SessionState::Closed | SessionState::AuthFailed
        )
    }

    /// The `KeeperState` a Java watcher would see for this state.
    pub fn keeper_state(self) -> KeeperState {
        match self {
            SessionState::Connecting | SessionState::Disconnected => KeeperState::Disconnected,
            SessionState::Connected => KeeperState::SyncConnected,
            SessionState::ConnectedReadOnly => KeeperState::ConnectedReadOnly,
            SessionState::Expired => KeeperState::Expired,
            SessionState::Closed => KeeperState::Closed,
            SessionState::AuthFailed => KeeperState::AuthFailed,
        }
    }
}

/// A watch notification as delivered to the application. `path` is relative to the chroot.
/// A final event with `event_type == EventType::None` and `state` Expired, Closed or
/// AuthFailed ends a watch when the session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub state: KeeperState,
    pub path: String,
    /// The zxid of the notification's ReplyHeader: -1 on ZooKeeper 3.8, the triggering
    /// txn's zxid on 3.9+.
    pub zxid: i64,
}

impl WatchedEvent {
    /// Whether this is the final event of a watch whose session ended.
    pub fn is_session_end(&self) -> bool {
        self.event_type == EventType::None
    }
}

/// One item of the client's event stream ([`crate::EventStream`], the counterpart of the
/// Java client's default watcher): everything that happens to the session, once each, in
/// the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A watch notification from the server, delivered once however many local watches
    /// (data, exist, child, persistent, recursive; detached or not) it matched; or a
    /// `DataWatchRemoved` / `ChildWatchRemoved` / `PersistentWatchRemoved` event that
    /// [`crate::Client::remove_watches`] made, once per type of watch it removed.
    Watch(WatchedEvent),
    /// The session entered this state (never `Connecting`, the state a client starts in).
    /// A reconnect shows as `Disconnected` then `Connected`.
    State(SessionState),
    /// A connection attempt failed (refused, timed out, or closed during the handshake).
    /// It changes no state: the client tries the next host.
    ConnectFailed {
        /// The `host:port` that was tried.
        host: String,
        /// Why, for logs.
        reason: String,
    },
}

/// The session parameters negotiated with the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    pub session_id: i64,
    pub password: Bytes,
    /// Negotiated session timeout; 0 before the first connect.
    pub timeout_ms: i32,
    /// The server we are (or were last) connected to.
    pub server: String,
    /// Highest zxid seen in any reply.
    pub last_zxid_seen: i64,
}

/// One operation inside a [`crate::Client::multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Bytes,
        acl: Vec<Acl>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Bytes,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

impl Op {
    pub fn create(path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) -> Op {
        Op::Create {
            path: path.to_owned(),
            data: Bytes::copy_from_slice(data),
            acl: acl.to_vec(),
            mode,
        }
    }
    pub fn delete(path: &str, version: i32) -> Op {
        Op::Delete {
            path: path.to_owned(),
            version,
        }
    }
    pub fn set_data(path: &str, data: &[u8], version: i32) -> Op {
        Op::SetData {
            path: path.to_owned(),
            data: Bytes::copy_from_slice(data),
            version,
        }
    }
    pub fn check(path: &str, version: i32) -> Op {
        Op::Check {
            path: path.to_owned(),
            version,
        }
    }
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }
}

/// The result of one successful op of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `stat` is present for create2-style results (containers, TTL nodes, and the plain modes
    /// since this client always asks create2 inside a multi).
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
}

/// One read inside a [`crate::Client::multi_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData { path: String },
    GetChildren { path: String },
}

/// The result of one read of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    GetData { data: Bytes, stat: Stat },
    GetChildren { children: Vec<String> },
}

/// ACL constructors.
pub mod acls {
    use super::*;
    use corral_proto::perms;

    /// world:anyone with every permission (`OPEN_ACL_UNSAFE`).
    pub fn open() -> Vec<Acl> {
        Acl::open_unsafe()
    }

    /// world:anyone read-only (`READ_ACL_UNSAFE`).
    pub fn read_only() -> Vec<Acl> {
        Acl::read_unsafe()
    }

    /// Every permission for the authenticated ids of the creator (`CREATOR_ALL_ACL`).
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, "auth", "")]
    }

    /// The digest ACL id for `user:password`: `user:BASE64(SHA1("user:password"))`.
    pub fn digest_id(user: &str, password: &str) -> String {
        use sha1::Digest as _;
        let hash = sha1::Sha1::digest(format!("{user}:{password}").as_bytes());
        format!(
            "{user}:{}",
            base64::engine::general_purpose::STANDARD.encode(hash)
        )
    }

    /// A digest ACL entry with `perms` for `user:password`.
    pub fn digest(perms: i32, user: &str, password: &str) -> Acl {
        Acl::new(perms, "digest", &digest_id(user, password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_observed_server_value() {
        assert_eq!(
            acls::digest_id("alice", "secret"),
            "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
        );
    }

    #[test]
    fn create_modes_round_trip_flags() {
        for f in 0..7 {
            assert_eq!(CreateMode::from_flags(f).unwrap().flags(), f);
        }
        assert!(CreateMode::from_flags(7).is_none());
        assert_eq!(CreateMode::Container.opcode(false), OpCode::CreateContainer);
        assert_eq!(
            CreateMode::PersistentWithTtl { ttl_ms: 5 }.opcode(false),
            OpCode::CreateTtl
        );
        assert_eq!(CreateMode::Ephemeral.opcode(true), OpCode::Create2);
    }
}

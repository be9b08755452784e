//! Shared jute records (`zookeeper.jute`), the session handshake and the packet headers.
//! Field order is exactly ZooKeeper's; see the grammar in [`crate::jute`].

use crate::jute::{DecodeResult, Reader, Record, Writer};
use bytes::Bytes;

/// Permission bits (`ZooDefs.Perms`).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// `Id { ustring scheme; ustring id; }`
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    pub fn anyone() -> Id {
        Id::new("world", "anyone")
    }
}

impl Record for Id {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.scheme);
        w.write_string(&self.id);
    }
    fn read(r: &mut Reader) -> DecodeResult<Id> {
        Ok(Id {
            scheme: r.read_string("Id.scheme")?,
            id: r.read_string("Id.id")?,
        })
    }
}

/// `ACL { int perms; Id id; }`
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`: world:anyone with every permission.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::anyone(),
        }]
    }

    /// `ZooDefs.Ids.READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::READ,
            id: Id::anyone(),
        }]
    }
}

impl Record for Acl {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.perms);
        self.id.write(w);
    }
    fn read(r: &mut Reader) -> DecodeResult<Acl> {
        Ok(Acl {
            perms: r.read_i32("ACL.perms")?,
            id: Id::read(r)?,
        })
    }
}

pub fn write_acl_vec(w: &mut Writer, acl: &[Acl]) {
    w.write_i32(acl.len() as i32);
    for a in acl {
        a.write(w);
    }
}

/// Reads a vector of ACLs; `None` for a null vector (which create/setACL reject as InvalidACL).
pub fn read_acl_vec(r: &mut Reader) -> DecodeResult<Option<Vec<Acl>>> {
    r.read_vec("vector<ACL>", 12, Acl::read)
}

/// The client-visible `Stat` (68 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Record for Stat {
    fn write(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i32(self.data_length);
        w.write_i32(self.num_children);
        w.write_i64(self.pzxid);
    }
    fn read(r: &mut Reader) -> DecodeResult<Stat> {
        Ok(Stat {
            czxid: r.read_i64("Stat.czxid")?,
            mzxid: r.read_i64("Stat.mzxid")?,
            ctime: r.read_i64("Stat.ctime")?,
            mtime: r.read_i64("Stat.mtime")?,
            version: r.read_i32("Stat.version")?,
            cversion: r.read_i32("Stat.cversion")?,
            aversion: r.read_i32("Stat.aversion")?,
            ephemeral_owner: r.read_i64("Stat.ephemeralOwner")?,
            data_length: r.read_i32("Stat.dataLength")?,
            num_children: r.read_i32("Stat.numChildren")?,
            pzxid: r.read_i64("Stat.pzxid")?,
        })
    }
}

/// `StatPersisted` (60 bytes; snapshots only). `cversion` here is the stored counter of
/// child creations, not the client-visible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

impl Record for StatPersisted {
    fn write(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i64(self.pzxid);
    }
    fn read(r: &mut Reader) -> DecodeResult<StatPersisted> {
        Ok(StatPersisted {
            czxid: r.read_i64("StatPersisted.czxid")?,
            mzxid: r.read_i64("StatPersisted.mzxid")?,
            ctime: r.read_i64("StatPersisted.ctime")?,
            mtime: r.read_i64("StatPersisted.mtime")?,
            version: r.read_i32("StatPersisted.version")?,
            cversion: r.read_i32("StatPersisted.cversion")?,
            aversion: r.read_i32("StatPersisted.aversion")?,
            ephemeral_owner: r.read_i64("StatPersisted.ephemeralOwner")?,
            pzxid: r.read_i64("StatPersisted.pzxid")?,
        })
    }
}

/// `ClientInfo { ustring authScheme; ustring user; }` (whoAmI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

impl Record for ClientInfo {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.auth_scheme);
        w.write_string(&self.user);
    }
    fn read(r: &mut Reader) -> DecodeResult<ClientInfo> {
        Ok(ClientInfo {
            auth_scheme: r.read_string("ClientInfo.authScheme")?,
            user: r.read_string("ClientInfo.user")?,
        })
    }
}

/// `WatcherEvent { int type; int state; ustring path; }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl Record for WatcherEvent {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.event_type);
        w.write_i32(self.state);
        w.write_string(&self.path);
    }
    fn read(r: &mut Reader) -> DecodeResult<WatcherEvent> {
        Ok(WatcherEvent {
            event_type: r.read_i32("WatcherEvent.type")?,
            state: r.read_i32("WatcherEvent.state")?,
            path: r.read_string("WatcherEvent.path")?,
        })
    }
}

/// First frame from a client. `read_only` is the optional trailing byte: `None` when a
/// pre-3.4 client left it out, and then the response leaves it out too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
    fn read(r: &mut Reader) -> DecodeResult<ConnectRequest> {
        let protocol_version = r.read_i32("ConnectRequest.protocolVersion")?;
        let last_zxid_seen = r.read_i64("ConnectRequest.lastZxidSeen")?;
        let timeout_ms = r.read_i32("ConnectRequest.timeOut")?;
        let session_id = r.read_i64("ConnectRequest.sessionId")?;
        let passwd = r.read_buffer("ConnectRequest.passwd")?.unwrap_or_default();
        let read_only = if r.is_empty() {
            None
        } else {
            Some(r.read_bool("readOnly")?)
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// First frame from the server. A `timeout_ms` of 0 tells the client its session is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The answer for an unknown, expired or wrongly authenticated session.
    pub fn invalid(read_only: Option<bool>) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: Bytes::from_static(&[0u8; 16]),
            read_only: read_only.map(|_| false),
        }
    }
}

impl Record for ConnectResponse {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
    fn read(r: &mut Reader) -> DecodeResult<ConnectResponse> {
        let protocol_version = r.read_i32("ConnectResponse.protocolVersion")?;
        let timeout_ms = r.read_i32("ConnectResponse.timeOut")?;
        let session_id = r.read_i64("ConnectResponse.sessionId")?;
        let passwd = r.read_buffer("ConnectResponse.passwd")?.unwrap_or_default();
        let read_only = if r.is_empty() {
            None
        } else {
            Some(r.read_bool("readOnly")?)
        };
        Ok(ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// `RequestHeader { int xid; int type; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl Record for RequestHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.xid);
        w.write_i32(self.op);
    }
    fn read(r: &mut Reader) -> DecodeResult<RequestHeader> {
        Ok(RequestHeader {
            xid: r.read_i32("RequestHeader.xid")?,
            op: r.read_i32("RequestHeader.type")?,
        })
    }
}

/// `ReplyHeader { int xid; long zxid; int err; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl Record for ReplyHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.xid);
        w.write_i64(self.zxid);
        w.write_i32(self.err);
    }
    fn read(r: &mut Reader) -> DecodeResult<ReplyHeader> {
        Ok(ReplyHeader {
            xid: r.read_i32("ReplyHeader.xid")?,
            zxid: r.read_i64("ReplyHeader.zxid")?,
            err: r.read_i32("ReplyHeader.err")?,
        })
    }
}

/// `MultiHeader { int type; boolean done; int err; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    pub op: i32,
    pub done: bool,
    pub err: i32,
}

impl MultiHeader {
    /// The terminator of a multi request or response.
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };
}

impl Record for MultiHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.op);
        w.write_bool(self.done);
        w.write_i32(self.err);
    }
    fn read(r: &mut Reader) -> DecodeResult<MultiHeader> {
        Ok(MultiHeader {
            op: r.read_i32("MultiHeader.type")?,
            done: r.read_bool("MultiHeader.done")?,
            err: r.read_i32("MultiHeader.err")?,
        })
    }
}

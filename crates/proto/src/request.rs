//! Client request records and the typed [`Request`] decoded from `(opcode, body)`.
//!
//! Decoding follows ZooKeeper's leniency: trailing bytes after a record are ignored, null
//! strings read as empty where ZooKeeper would reject them later anyway (path validation
//! answers BadArguments), and an unknown opcode is reported separately from a malformed body
//! because the server answers them differently (Unimplemented and close, versus close).

use crate::error::ErrorCode;
use crate::jute::{DecodeError, DecodeResult, Reader, Record, Writer};
use crate::opcode::OpCode;
use crate::records::{read_acl_vec, write_acl_vec, Acl, MultiHeader};
use bytes::Bytes;

/// `CreateRequest { ustring path; buffer data; vector<ACL> acl; int flags; }` (ops 1, 15, 19).
/// `ttl` is set only for `CreateTTLRequest` (op 21), which appends `long ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    pub data: Option<Bytes>,
    /// `None` when the client sent a null vector.
    pub acl: Option<Vec<Acl>>,
    pub flags: i32,
    pub ttl: Option<i64>,
}

impl CreateRequest {
    fn read(r: &mut Reader, with_ttl: bool) -> DecodeResult<CreateRequest> {
        Ok(CreateRequest {
            path: r.read_string("CreateRequest.path")?,
            data: r.read_buffer("CreateRequest.data")?,
            acl: read_acl_vec(r)?,
            flags: r.read_i32("CreateRequest.flags")?,
            ttl: if with_ttl {
                Some(r.read_i64("CreateTTLRequest.ttl")?)
            } else {
                None
            },
        })
    }

    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        w.write_buffer(self.data.as_deref());
        match &self.acl {
            Some(acl) => write_acl_vec(w, acl),
            None => w.write_i32(-1),
        }
        w.write_i32(self.flags);
        if let Some(ttl) = self.ttl {
            w.write_i64(ttl);
        }
    }
}

/// `{ ustring path; int version; }`: DeleteRequest and CheckVersionRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathVersion {
    pub path: String,
    pub version: i32,
}

impl Record for PathVersion {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        w.write_i32(self.version);
    }
    fn read(r: &mut Reader) -> DecodeResult<PathVersion> {
        Ok(PathVersion {
            path: r.read_string("path")?,
            version: r.read_i32("version")?,
        })
    }
}

/// `{ ustring path; boolean watch; }`: exists, getData, getChildren, getChildren2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathWatch {
    pub path: String,
    pub watch: bool,
}

impl Record for PathWatch {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        w.write_bool(self.watch);
    }
    fn read(r: &mut Reader) -> DecodeResult<PathWatch> {
        Ok(PathWatch {
            path: r.read_string("path")?,
            watch: r.read_bool("watch")?,
        })
    }
}

/// `SetDataRequest { ustring path; buffer data; int version; }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Option<Bytes>,
    pub version: i32,
}

impl Record for SetDataRequest {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        w.write_buffer(self.data.as_deref());
        w.write_i32(self.version);
    }
    fn read(r: &mut Reader) -> DecodeResult<SetDataRequest> {
        Ok(SetDataRequest {
            path: r.read_string("SetDataRequest.path")?,
            data: r.read_buffer("SetDataRequest.data")?,
            version: r.read_i32("SetDataRequest.version")?,
        })
    }
}

/// `SetACLRequest { ustring path; vector<ACL> acl; int version; }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Option<Vec<Acl>>,
    pub version: i32,
}

impl Record for SetAclRequest {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        match &self.acl {
            Some(acl) => write_acl_vec(w, acl),
            None => w.write_i32(-1),
        }
        w.write_i32(self.version);
    }
    fn read(r: &mut Reader) -> DecodeResult<SetAclRequest> {
        Ok(SetAclRequest {
            path: r.read_string("SetACLRequest.path")?,
            acl: read_acl_vec(r)?,
            version: r.read_i32("SetACLRequest.version")?,
        })
    }
}

/// `{ ustring path; int type; }`: CheckWatchesRequest, RemoveWatchesRequest (type is a
/// WatcherType) and AddWatchRequest (type is an AddWatchMode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathType {
    pub path: String,
    pub kind: i32,
}

impl Record for PathType {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        w.write_i32(self.kind);
    }
    fn read(r: &mut Reader) -> DecodeResult<PathType> {
        Ok(PathType {
            path: r.read_string("path")?,
            kind: r.read_i32("type")?,
        })
    }
}

/// `SetWatches` (op 101) and `SetWatches2` (op 105; the two persistent lists are empty for 101).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data_watches: Vec<String>,
    pub exist_watches: Vec<String>,
    pub child_watches: Vec<String>,
    pub persistent_watches: Vec<String>,
    pub persistent_recursive_watches: Vec<String>,
}

impl SetWatches {
    fn read(r: &mut Reader, v2: bool) -> DecodeResult<SetWatches> {
        let mut s = SetWatches {
            relative_zxid: r.read_i64("SetWatches.relativeZxid")?,
            data_watches: r.read_string_vec("SetWatches.dataWatches")?,
            exist_watches: r.read_string_vec("SetWatches.existWatches")?,
            child_watches: r.read_string_vec("SetWatches.childWatches")?,
            ..SetWatches::default()
        };
        if v2 {
            s.persistent_watches = r.read_string_vec("SetWatches2.persistentWatches")?;
            s.persistent_recursive_watches =
                r.read_string_vec("SetWatches2.persistentRecursiveWatches")?;
        }
        Ok(s)
    }

    fn write(&self, w: &mut Writer, v2: bool) {
        w.write_i64(self.relative_zxid);
        w.write_string_vec(&self.data_watches);
        w.write_string_vec(&self.exist_watches);
        w.write_string_vec(&self.child_watches);
        if v2 {
            w.write_string_vec(&self.persistent_watches);
            w.write_string_vec(&self.persistent_recursive_watches);
        }
    }
}

/// `AuthPacket { int type; ustring scheme; buffer auth; }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    pub kind: i32,
    pub scheme: String,
    /// `None` for a null buffer (zkCli's `addauth digest` without a credential sends one;
    /// ZooKeeper fails such a digest auth).
    pub auth: Option<Bytes>,
}

impl Record for AuthPacket {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.kind);
        w.write_string(&self.scheme);
        w.write_buffer(self.auth.as_deref());
    }
    fn read(r: &mut Reader) -> DecodeResult<AuthPacket> {
        Ok(AuthPacket {
            kind: r.read_i32("AuthPacket.type")?,
            scheme: r.read_string("AuthPacket.scheme")?,
            auth: r.read_buffer("AuthPacket.auth")?,
        })
    }
}

/// `ReconfigRequest { ustring joiningServers; ustring leavingServers; ustring newMembers;
/// long curConfigId; }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigRequest {
    pub joining_servers: Option<String>,
    pub leaving_servers: Option<String>,
    pub new_members: Option<String>,
    pub cur_config_id: i64,
}

impl Record for ReconfigRequest {
    fn write(&self, w: &mut Writer) {
        w.write_ustring(self.joining_servers.as_deref());
        w.write_ustring(self.leaving_servers.as_deref());
        w.write_ustring(self.new_members.as_deref());
        w.write_i64(self.cur_config_id);
    }
    fn read(r: &mut Reader) -> DecodeResult<ReconfigRequest> {
        Ok(ReconfigRequest {
            joining_servers: r.read_ustring("ReconfigRequest.joiningServers")?,
            leaving_servers: r.read_ustring("ReconfigRequest.leavingServers")?,
            new_members: r.read_ustring("ReconfigRequest.newMembers")?,
            cur_config_id: r.read_i64("ReconfigRequest.curConfigId")?,
        })
    }
}

/// A decoded client request (everything after the RequestHeader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateRequest),
    Delete(PathVersion),
    Exists(PathWatch),
    GetData(PathWatch),
    SetData(SetDataRequest),
    GetAcl {
        path: String,
    },
    SetAcl(SetAclRequest),
    GetChildren(PathWatch),
    GetChildren2(PathWatch),
    Sync {
        path: String,
    },
    Ping,
    Check(PathVersion),
    /// Sub-requests of a multi: only Create*, Delete, SetData and Check.
    Multi(Vec<Request>),
    /// Sub-requests of a multiRead: only GetData and GetChildren.
    MultiRead(Vec<Request>),
    Reconfig(ReconfigRequest),
    CheckWatches(PathType),
    RemoveWatches(PathType),
    DeleteContainer {
        path: String,
    },
    Auth(AuthPacket),
    SetWatches(SetWatches),
    SetWatches2(SetWatches),
    Sasl {
        token: Bytes,
    },
    GetEphemerals {
        prefix: Option<String>,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch(PathType),
    WhoAmI,
    CloseSession,
}

/// Why a request body could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The opcode is not one a server serves (ZooKeeper answers Unimplemented and closes).
    UnknownOp(i32),
    /// The body does not parse (the connection is closed).
    Malformed(DecodeError),
    /// A multi mixes read and write ops, or holds an op that is not allowed there
    /// (ZooKeeper answers MarshallingError).
    BadMulti(ErrorCode),
}

impl From<DecodeError> for RequestError {
    fn from(e: DecodeError) -> RequestError {
        RequestError::Malformed(e)
    }
}

impl Request {
    /// Decodes the body of a request whose header carried `op`.
    pub fn decode(op: i32, body: &mut Reader) -> Result<Request, RequestError> {
        let code = OpCode::from_i32(op).ok_or(RequestError::UnknownOp(op))?;
        let r = body;
        Ok(match code {
            OpCode::Create => Request::Create(CreateRequest::read(r, false)?),
            OpCode::Create2 => Request::Create2(CreateRequest::read(r, false)?),
            OpCode::CreateContainer => Request::CreateContainer(CreateRequest::read(r, false)?),
            OpCode::CreateTtl => Request::CreateTtl(CreateRequest::read(r, true)?),
            OpCode::Delete => Request::Delete(PathVersion::read(r)?),
            OpCode::Exists => Request::Exists(PathWatch::read(r)?),
            OpCode::GetData => Request::GetData(PathWatch::read(r)?),
            OpCode::SetData => Request::SetData(SetDataRequest::read(r)?),
            OpCode::GetAcl => Request::GetAcl {
                path: r.read_string("GetACLRequest.path")?,
            },
            OpCode::SetAcl => Request::SetAcl(SetAclRequest::read(r)?),
            OpCode::GetChildren => Request::GetChildren(PathWatch::read(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(PathWatch::read(r)?),
            OpCode::Sync => Request::Sync {
                path: r.read_string("SyncRequest.path")?,
            },
            OpCode::Ping => Request::Ping,
            OpCode::Check => Request::Check(PathVersion::read(r)?),
            OpCode::Multi => Request::Multi(decode_multi(r, false)?),
            OpCode::MultiRead => Request::MultiRead(decode_multi(r, true)?),
            OpCode::Reconfig => Request::Reconfig(ReconfigRequest::read(r)?),
            OpCode::CheckWatches => Request::CheckWatches(PathType::read(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(PathType::read(r)?),
            OpCode::DeleteContainer => {
                // DeleteContainerRequest { buffer path; }
                let path = r
                    .read_buffer("DeleteContainerRequest.path")?
                    .unwrap_or_default();
                Request::DeleteContainer {
                    path: String::from_utf8_lossy(&path).into_owned(),
                }
            }
            OpCode::Auth => Request::Auth(AuthPacket::read(r)?),
            OpCode::SetWatches => Request::SetWatches(SetWatches::read(r, false)?),
            OpCode::SetWatches2 => Request::SetWatches2(SetWatches::read(r, true)?),
            OpCode::Sasl => Request::Sasl {
                token: r.read_buffer("GetSASLRequest.token")?.unwrap_or_default(),
            },
            OpCode::GetEphemerals => Request::GetEphemerals {
                prefix: r.read_ustring("GetEphemeralsRequest.prefixPath")?,
            },
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber {
                path: r.read_string("GetAllChildrenNumberRequest.path")?,
            },
            OpCode::AddWatch => Request::AddWatch(PathType::read(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(RequestError::UnknownOp(op))
            }
        })
    }

    /// The opcode this request travels under.
    pub fn op(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl { .. } => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync { .. } => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::DeleteContainer { .. } => OpCode::DeleteContainer,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::Sasl { .. } => OpCode::Sasl,
            Request::GetEphemerals { .. } => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// The path the request names, if any (for logging and `cons`).
    pub fn path(&self) -> Option<&str> {
        match self {
            Request::Create(c)
            | Request::Create2(c)
            | Request::CreateContainer(c)
            | Request::CreateTtl(c) => Some(&c.path),
            Request::Delete(p) | Request::Check(p) => Some(&p.path),
            Request::Exists(p)
            | Request::GetData(p)
            | Request::GetChildren(p)
            | Request::GetChildren2(p) => Some(&p.path),
            Request::SetData(s) => Some(&s.path),
            Request::SetAcl(s) => Some(&s.path),
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::DeleteContainer { path }
            | Request::GetAllChildrenNumber { path } => Some(path),
            Request::CheckWatches(p) | Request::RemoveWatches(p) | Request::AddWatch(p) => {
                Some(&p.path)
            }
            _ => None,
        }
    }

    /// Encodes the body (no header). Used by clients and tests.
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Request::Create(c)
            | Request::Create2(c)
            | Request::CreateContainer(c)
            | Request::CreateTtl(c) => c.write(w),
            Request::Delete(p) | Request::Check(p) => p.write(w),
            Request::Exists(p)
            | Request::GetData(p)
            | Request::GetChildren(p)
            | Request::GetChildren2(p) => p.write(w),
            Request::SetData(s) => s.write(w),
            Request::SetAcl(s) => s.write(w),
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path } => w.write_string(path),
            Request::DeleteContainer { path } => w.write_buffer(Some(path.as_bytes())),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for op in ops {
                    MultiHeader {
                        op: op.op().code(),
                        done: false,
                        err: -1,
                    }
                    .write(w);
                    op.encode_body(w);
                }
                MultiHeader::END.write(w);
            }
            Request::Reconfig(r) => r.write(w),
            Request::CheckWatches(p) | Request::RemoveWatches(p) | Request::AddWatch(p) => {
                p.write(w)
            }
            Request::Auth(a) => a.write(w),
            Request::SetWatches(s) => s.write(w, false),
            Request::SetWatches2(s) => s.write(w, true),
            Request::Sasl { token } => w.write_buffer(Some(token)),
            Request::GetEphemerals { prefix } => w.write_ustring(prefix.as_deref()),
        }
    }
}

/// Upper bound on sub-ops in one multi, so a hostile frame cannot make us loop for long.
/// A frame is at most `jute.maxbuffer` bytes and every sub-op costs at least 9 header bytes,
/// so this is never the binding limit for a well-formed request.
pub const MULTI_OPS_MAX: usize = 1 << 20;

fn decode_multi(r: &mut Reader, read_kind: bool) -> Result<Vec<Request>, RequestError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        if ops.len() >= MULTI_OPS_MAX {
            return Err(RequestError::Malformed(DecodeError::Invalid {
                what: "multi op count",
                value: ops.len() as i64,
            }));
        }
        let op = match OpCode::from_i32(h.op) {
            Some(
                c @ (OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::SetData
                | OpCode::Check),
            ) => {
                if read_kind {
                    return Err(RequestError::BadMulti(ErrorCode::MarshallingError));
                }
                multi_create_by_flags(Request::decode(c.code(), r)?)
            }
            Some(c @ (OpCode::GetData | OpCode::GetChildren)) => {
                if !read_kind {
                    return Err(RequestError::BadMulti(ErrorCode::MarshallingError));
                }
                Request::decode(c.code(), r)?
            }
            _ => {
                return Err(RequestError::Malformed(DecodeError::Invalid {
                    what: "multi op type",
                    value: h.op as i64,
                }))
            }
        };
        ops.push(op);
    }
}

/// Inside a multi, ZooKeeper 3.8 rebuilds every create sub-op from its flags
/// (`MultiOperationRecord` -> `Op.create`), ignoring the sub-header's opcode: container
/// flags make a createContainer, TTL flags a createTTL, anything else (invalid flags
/// included, which prep then rejects) a plain create whose result carries the path only.
/// So `create2` in a multi answers like `create`, and `createTTL` with plain flags creates
/// a plain node.
fn multi_create_by_flags(req: Request) -> Request {
    const FLAGS_CONTAINER: i32 = 4;
    match req {
        Request::Create(c)
        | Request::Create2(c)
        | Request::CreateContainer(c)
        | Request::CreateTtl(c) => {
            if c.flags == FLAGS_CONTAINER {
                Request::CreateContainer(CreateRequest { ttl: None, ..c })
            } else if is_ttl_flags(c.flags) {
                // From a plain CreateRequest this has `ttl: None`: 3.8 then fails the
                // whole multi with MarshallingError when prep reaches it (a
                // ClassCastException), which the tree reproduces.
                Request::CreateTtl(c)
            } else {
                Request::Create(CreateRequest { ttl: None, ..c })
            }
        }
        other => other,
    }
}

/// PERSISTENT_WITH_TTL (5) and PERSISTENT_SEQUENTIAL_WITH_TTL (6).
fn is_ttl_flags(flags: i32) -> bool {
    flags == 5 || flags == 6
}

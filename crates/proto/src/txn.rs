//! Transaction records: what the leader (or a standalone server) decides a write does. The
//! same bytes go into the txn log, into PROPOSAL packets and, inside a multi, into `Txn`
//! wrappers.
//!
//! ```text
//! TxnHeader = long clientId, int cxid, long zxid, long time, int type      ; 32 bytes
//! entry     = TxnHeader, txn record for `type`, [TxnDigest]
//! TxnDigest = int version (2), long treeDigest                              ; 3.6+
//! MultiTxn  = vector<{int type; buffer data}>
//! ```
//!
//! The `type` is preserved exactly (create vs create2, delete vs deleteContainer, setData vs
//! reconfig) because it is part of the log format ZooKeeper reads back.

use crate::error::ErrorCode;
use crate::jute::{DecodeError, DecodeResult, Reader, Record, Writer};
use crate::opcode::OpCode;
use crate::records::{read_acl_vec, write_acl_vec, Acl};
use bytes::Bytes;

/// Encoded size of a [`TxnHeader`]: sessionId, cxid, zxid, time, type.
pub const TXN_HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 4;

/// Encoded size of a [`TxnDigest`]: version, treeDigest.
pub const TXN_DIGEST_BYTES: usize = 4 + 8;

/// `TxnHeader { long clientId; int cxid; long zxid; long time; int type; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
    pub op: i32,
}

impl TxnHeader {
    pub const BYTES: usize = 32;
}

impl Record for TxnHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i64(self.session_id);
        w.write_i32(self.cxid);
        w.write_i64(self.zxid);
        w.write_i64(self.time_ms);
        w.write_i32(self.op);
    }
    fn read(r: &mut Reader) -> DecodeResult<TxnHeader> {
        Ok(TxnHeader {
            session_id: r.read_i64("TxnHeader.clientId")?,
            cxid: r.read_i32("TxnHeader.cxid")?,
            zxid: r.read_i64("TxnHeader.zxid")?,
            time_ms: r.read_i64("TxnHeader.time")?,
            op: r.read_i32("TxnHeader.type")?,
        })
    }
}

/// `TxnDigest { int version; long treeDigest; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnDigest {
    pub version: i32,
    pub tree_digest: i64,
}

impl TxnDigest {
    pub const VERSION: i32 = 2;
}

impl Record for TxnDigest {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.version);
        w.write_i64(self.tree_digest);
    }
    fn read(r: &mut Reader) -> DecodeResult<TxnDigest> {
        Ok(TxnDigest {
            version: r.read_i32("TxnDigest.version")?,
            tree_digest: r.read_i64("TxnDigest.treeDigest")?,
        })
    }
}

/// `CreateTxn { ustring path; buffer data; vector<ACL> acl; boolean ephemeral; int
/// parentCVersion; }` — also CreateContainerTxn (no `ephemeral`) and CreateTTLTxn (no
/// `ephemeral`, trailing `long ttl`), distinguished by [`Txn`]'s variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTxn {
    pub path: String,
    pub data: Option<Bytes>,
    pub acl: Vec<Acl>,
    pub ephemeral: bool,
    /// The parent's stored cversion after this create; -1 (legacy) means "current + 1".
    pub parent_cversion: i32,
    pub ttl: i64,
}

/// One decided transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    /// -10 `CreateSessionTxn { int timeOut; }`
    CreateSession { timeout_ms: i32 },
    /// -11 `CloseSessionTxn { vector<ustring> paths2Delete; }` (empty body before 3.6)
    CloseSession { paths_to_delete: Vec<String> },
    /// 1
    Create(CreateTxn),
    /// 15
    Create2(CreateTxn),
    /// 19 `CreateContainerTxn`
    CreateContainer(CreateTxn),
    /// 21 `CreateTTLTxn`
    CreateTtl(CreateTxn),
    /// 2 `DeleteTxn { ustring path; }`
    Delete { path: String },
    /// 20 `DeleteTxn`
    DeleteContainer { path: String },
    /// 5 `SetDataTxn { ustring path; buffer data; int version; }` (version = the new one)
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    /// 16 `SetDataTxn` on /zookeeper/config
    Reconfig {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    /// 7 `SetACLTxn { ustring path; vector<ACL> acl; int version; }` (version = new aversion)
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// 13 `CheckVersionTxn { ustring path; int version; }`
    Check { path: String, version: i32 },
    /// 14 `MultiTxn`
    Multi(Vec<Txn>),
    /// -1 `ErrorTxn { int err; }`
    Error(ErrorCode),
}

impl Txn {
    /// The `type` written in the TxnHeader (or the multi wrapper).
    pub fn op(&self) -> OpCode {
        match self {
            Txn::CreateSession { .. } => OpCode::CreateSession,
            Txn::CloseSession { .. } => OpCode::CloseSession,
            Txn::Create(_) => OpCode::Create,
            Txn::Create2(_) => OpCode::Create2,
            Txn::CreateContainer(_) => OpCode::CreateContainer,
            Txn::CreateTtl(_) => OpCode::CreateTtl,
            Txn::Delete { .. } => OpCode::Delete,
            Txn::DeleteContainer { .. } => OpCode::DeleteContainer,
            Txn::SetData { .. } => OpCode::SetData,
            Txn::Reconfig { .. } => OpCode::Reconfig,
            Txn::SetAcl { .. } => OpCode::SetAcl,
            Txn::Check { .. } => OpCode::Check,
            Txn::Multi(_) => OpCode::Multi,
            Txn::Error(_) => OpCode::Error,
        }
    }

    /// Encodes the txn record (without header).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Txn::CreateSession { timeout_ms } => w.write_i32(*timeout_ms),
            Txn::CloseSession { paths_to_delete } => w.write_string_vec(paths_to_delete),
            Txn::Create(c) | Txn::Create2(c) => {
                w.write_string(&c.path);
                w.write_buffer(c.data.as_deref());
                write_acl_vec(w, &c.acl);
                w.write_bool(c.ephemeral);
                w.write_i32(c.parent_cversion);
            }
            Txn::CreateContainer(c) => {
                w.write_string(&c.path);
                w.write_buffer(c.data.as_deref());
                write_acl_vec(w, &c.acl);
                w.write_i32(c.parent_cversion);
            }
            Txn::CreateTtl(c) => {
                w.write_string(&c.path);
                w.write_buffer(c.data.as_deref());
                write_acl_vec(w, &c.acl);
                w.write_i32(c.parent_cversion);
                w.write_i64(c.ttl);
            }
            Txn::Delete { path } | Txn::DeleteContainer { path } => w.write_string(path),
            Txn::SetData {
                path,
                data,
                version,
            }
            | Txn::Reconfig {
                path,
                data,
                version,
            } => {
                w.write_string(path);
                w.write_buffer(data.as_deref());
                w.write_i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                w.write_string(path);
                write_acl_vec(w, acl);
                w.write_i32(*version);
            }
            Txn::Check { path, version } => {
                w.write_string(path);
                w.write_i32(*version);
            }
            Txn::Multi(txns) => {
                w.write_i32(txns.len() as i32);
                for t in txns {
                    w.write_i32(t.op().code());
                    let mut inner = Writer::with_capacity(t.encoded_len_hint());
                    t.encode(&mut inner);
                    w.write_buffer(Some(inner.as_slice()));
                }
            }
            Txn::Error(e) => w.write_i32(e.code()),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(self.encoded_len_hint());
        self.encode(&mut w);
        w.into_bytes()
    }

    /// About the encoded size (exact for everything but multi, whose nested records are
    /// estimated the same way; strings with characters outside the BMP grow when encoded).
    /// Only a buffer capacity: the txn log encodes every txn, and growing a buffer field by
    /// field from empty cost six reallocations per 1 KiB setData.
    pub fn encoded_len_hint(&self) -> usize {
        fn buf(len: usize) -> usize {
            4 + len
        }
        fn data(d: &Option<Bytes>) -> usize {
            buf(d.as_ref().map_or(0, |d| d.len()))
        }
        fn acls(v: &[Acl]) -> usize {
            4 + v
                .iter()
                .map(|a| 4 + buf(a.id.scheme.len()) + buf(a.id.id.len()))
                .sum::<usize>()
        }
        match self {
            Txn::CreateSession { .. } | Txn::Error(_) => 4,
            Txn::CloseSession { paths_to_delete } => {
                4 + paths_to_delete.iter().map(|p| buf(p.len())).sum::<usize>()
            }
            Txn::Create(c) | Txn::Create2(c) => {
                buf(c.path.len()) + data(&c.data) + acls(&c.acl) + 1 + 4
            }
            Txn::CreateContainer(c) => buf(c.path.len()) + data(&c.data) + acls(&c.acl) + 4,
            Txn::CreateTtl(c) => buf(c.path.len()) + data(&c.data) + acls(&c.acl) + 4 + 8,
            Txn::Delete { path } | Txn::DeleteContainer { path } => buf(path.len()),
            Txn::SetData { path, data: d, .. } | Txn::Reconfig { path, data: d, .. } => {
                buf(path.len()) + data(d) + 4
            }
            Txn::SetAcl { path, acl, .. } => buf(path.len()) + acls(acl) + 4,
            Txn::Check { path, .. } => buf(path.len()) + 4,
            Txn::Multi(txns) => {
                4 + txns
                    .iter()
                    .map(|t| 4 + buf(t.encoded_len_hint()))
                    .sum::<usize>()
            }
        }
    }

    /// Decodes the txn record of type `op`. Leaves any trailing TxnDigest unread.
    pub fn decode(op: i32, r: &mut Reader) -> DecodeResult<Txn> {
        let code = OpCode::from_i32(op).ok_or(DecodeError::Invalid {
            what: "txn type",
            value: op as i64,
        })?;
        let create =
            |r: &mut Reader, ephemeral_field: bool, ttl_field: bool| -> DecodeResult<CreateTxn> {
                let path = r.read_string("CreateTxn.path")?;
                let data = r.read_buffer("CreateTxn.data")?;
                let acl = read_acl_vec(r)?.unwrap_or_default();
                let ephemeral = if ephemeral_field {
                    r.read_bool("CreateTxn.ephemeral")?
                } else {
                    false
                };
                let parent_cversion = r.read_i32("CreateTxn.parentCVersion")?;
                let ttl = if ttl_field {
                    r.read_i64("CreateTTLTxn.ttl")?
                } else {
                    0
                };
                Ok(CreateTxn {
                    path,
                    data,
                    acl,
                    ephemeral,
                    parent_cversion,
                    ttl,
                })
            };
        Ok(match code {
            OpCode::CreateSession => Txn::CreateSession {
                timeout_ms: r.read_i32("CreateSessionTxn.timeOut")?,
            },
            OpCode::CloseSession => Txn::CloseSession {
                paths_to_delete: if r.is_empty() {
                    Vec::new()
                } else {
                    r.read_string_vec("CloseSessionTxn.paths2Delete")?
                },
            },
            OpCode::Create => Txn::Create(create(r, true, false)?),
            OpCode::Create2 => Txn::Create2(create(r, true, false)?),
            OpCode::CreateContainer => Txn::CreateContainer(create(r, false, false)?),
            OpCode::CreateTtl => Txn::CreateTtl(create(r, false, true)?),
            OpCode::Delete => Txn::Delete {
                path: r.read_string("DeleteTxn.path")?,
            },
            OpCode::DeleteContainer => Txn::DeleteContainer {
                path: r.read_string("DeleteTxn.path")?,
            },
            OpCode::SetData | OpCode::Reconfig => {
                let path = r.read_string("SetDataTxn.path")?;
                let data = r.read_buffer("SetDataTxn.data")?;
                let version = r.read_i32("SetDataTxn.version")?;
                if code == OpCode::SetData {
                    Txn::SetData {
                        path,
                        data,
                        version,
                    }
                } else {
                    Txn::Reconfig {
                        path,
                        data,
                        version,
                    }
                }
            }
            OpCode::SetAcl => Txn::SetAcl {
                path: r.read_string("SetACLTxn.path")?,
                acl: read_acl_vec(r)?.unwrap_or_default(),
                version: r.read_i32("SetACLTxn.version")?,
            },
            OpCode::Check => Txn::Check {
                path: r.read_string("CheckVersionTxn.path")?,
                version: r.read_i32("CheckVersionTxn.version")?,
            },
            OpCode::Multi => {
                let parts = r
                    .read_vec("MultiTxn.txns", 8, |r| {
                        let t = r.read_i32("Txn.type")?;
                        let data = r.read_buffer("Txn.data")?.unwrap_or_default();
                        Ok((t, data))
                    })?
                    .unwrap_or_default();
                let mut txns = Vec::with_capacity(parts.len());
                for (t, data) in parts {
                    if t == OpCode::Multi.code() {
                        return Err(DecodeError::Invalid {
                            what: "nested multi txn",
                            value: t as i64,
                        });
                    }
                    txns.push(Txn::decode(t, &mut Reader::new(data))?);
                }
                Txn::Multi(txns)
            }
            OpCode::Error => {
                let err = r.read_i32("ErrorTxn.err")?;
                Txn::Error(ErrorCode::from_i32(err).ok_or(DecodeError::Invalid {
                    what: "error code",
                    value: err as i64,
                })?)
            }
            _ => {
                return Err(DecodeError::Invalid {
                    what: "txn type",
                    value: op as i64,
                })
            }
        })
    }
}

/// A header, its txn and the optional digest: one log entry or PROPOSAL body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub txn: Txn,
    pub digest: Option<TxnDigest>,
}

impl TxnEntry {
    pub fn encode(&self, w: &mut Writer) {
        self.header.write(w);
        self.txn.encode(w);
        if let Some(d) = &self.digest {
            d.write(w);
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(
            TXN_HEADER_BYTES + self.txn.encoded_len_hint() + TXN_DIGEST_BYTES,
        );
        self.encode(&mut w);
        w.into_bytes()
    }

    pub fn decode(r: &mut Reader) -> DecodeResult<TxnEntry> {
        let header = TxnHeader::read(r)?;
        let txn = Txn::decode(header.op, r)?;
        let digest = if r.remaining() >= 12 {
            Some(TxnDigest::read(r)?)
        } else {
            None
        };
        Ok(TxnEntry {
            header,
            txn,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_hint_is_the_encoded_size() {
        let create = CreateTxn {
            path: "/corral-bench/cd/w1-1".into(),
            data: Some(Bytes::from(vec![b'x'; 1024])),
            acl: vec![
                Acl::new(31, "world", "anyone"),
                Acl::new(1, "digest", "u:h"),
            ],
            ephemeral: true,
            parent_cversion: 3,
            ttl: 500,
        };
        let set = Txn::SetData {
            path: "/a".into(),
            data: Some(Bytes::from_static(b"12345")),
            version: 2,
        };
        let txns = vec![
            Txn::CreateSession { timeout_ms: 30_000 },
            Txn::CloseSession {
                paths_to_delete: vec!["/e1".into(), "/x/e2".into()],
            },
            Txn::Create(create.clone()),
            Txn::Create2(create.clone()),
            Txn::CreateContainer(create.clone()),
            Txn::CreateTtl(create),
            Txn::Delete { path: "/a".into() },
            Txn::DeleteContainer { path: "/b".into() },
            set.clone(),
            Txn::SetData {
                path: "/a".into(),
                data: None,
                version: 1,
            },
            Txn::SetAcl {
                path: "/a".into(),
                acl: vec![Acl::new(31, "world", "anyone")],
                version: 1,
            },
            Txn::Check {
                path: "/a".into(),
                version: 4,
            },
            Txn::Error(ErrorCode::NoNode),
        ];
        let multi = Txn::Multi(txns.clone());
        for t in txns.iter().chain([&multi, &Txn::Multi(vec![set])]) {
            let mut w = Writer::new();
            t.encode(&mut w);
            assert_eq!(t.encoded_len_hint(), w.len(), "{t:?}");
        }
    }
}

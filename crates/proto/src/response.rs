//! Response bodies (everything after the ReplyHeader, present only when `err == 0`, except
//! for multi whose per-op results carry their own errors).

use crate::error::ErrorCode;
use crate::jute::{DecodeError, DecodeResult, Reader, Record, Writer};
use crate::opcode::OpCode;
use crate::records::{read_acl_vec, write_acl_vec, Acl, ClientInfo, MultiHeader, Stat};
use bytes::Bytes;

/// One result inside a multi or multiRead response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// Result type 1: `CreateResponse { path }`.
    Create {
        path: String,
    },
    /// Result type 15 (also for createTTL / createContainer): `Create2Response`.
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    /// Result type -1 with `ErrorResponse { err }`.
    Error(ErrorCode),
}

/// A successful response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Header only (delete, ping, setWatches, checkWatches, removeWatches, closeSession, auth).
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL: a bare Stat.
    Stat(Stat),
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    GetEphemerals {
        paths: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    /// addWatch answers `ErrorResponse { err = 0 }`.
    AddWatch,
    WhoAmI {
        infos: Vec<ClientInfo>,
    },
    Sasl {
        token: Bytes,
    },
}

fn write_data_stat(w: &mut Writer, data: &Option<Bytes>, stat: &Stat) {
    w.write_buffer(data.as_deref());
    stat.write(w);
}

impl MultiResult {
    fn header(&self) -> MultiHeader {
        let (op, err) = match self {
            MultiResult::Create { .. } => (OpCode::Create.code(), 0),
            MultiResult::Create2 { .. } => (OpCode::Create2.code(), 0),
            MultiResult::Delete => (OpCode::Delete.code(), 0),
            MultiResult::SetData { .. } => (OpCode::SetData.code(), 0),
            MultiResult::Check => (OpCode::Check.code(), 0),
            MultiResult::GetData { .. } => (OpCode::GetData.code(), 0),
            MultiResult::GetChildren { .. } => (OpCode::GetChildren.code(), 0),
            MultiResult::Error(e) => (-1, e.code()),
        };
        MultiHeader {
            op,
            done: false,
            err,
        }
    }

    fn write(&self, w: &mut Writer) {
        self.header().write(w);
        match self {
            MultiResult::Create { path } => w.write_string(path),
            MultiResult::Create2 { path, stat } => {
                w.write_string(path);
                stat.write(w);
            }
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData { stat } => stat.write(w),
            MultiResult::GetData { data, stat } => write_data_stat(w, data, stat),
            MultiResult::GetChildren { children } => w.write_string_vec(children),
            MultiResult::Error(e) => w.write_i32(e.code()),
        }
    }

    fn read(h: MultiHeader, r: &mut Reader) -> DecodeResult<MultiResult> {
        Ok(match OpCode::from_i32(h.op) {
            Some(OpCode::Create) => MultiResult::Create {
                path: r.read_string("path")?,
            },
            Some(OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer) => {
                MultiResult::Create2 {
                    path: r.read_string("path")?,
                    stat: Stat::read(r)?,
                }
            }
            Some(OpCode::Delete) => MultiResult::Delete,
            Some(OpCode::SetData) => MultiResult::SetData {
                stat: Stat::read(r)?,
            },
            Some(OpCode::Check) => MultiResult::Check,
            Some(OpCode::GetData) => MultiResult::GetData {
                data: r.read_buffer("data")?,
                stat: Stat::read(r)?,
            },
            Some(OpCode::GetChildren) => MultiResult::GetChildren {
                children: r.read_string_vec("children")?,
            },
            Some(OpCode::Error) => {
                let err = r.read_i32("ErrorResponse.err")?;
                MultiResult::Error(ErrorCode::from_i32(err).ok_or(DecodeError::Invalid {
                    what: "error code",
                    value: err as i64,
                })?)
            }
            _ => {
                return Err(DecodeError::Invalid {
                    what: "multi result type",
                    value: h.op as i64,
                })
            }
        })
    }
}

/// Encoded size of a [`Stat`]: six int64 and five int32 fields, 68 bytes.
pub const STAT_BYTES: usize = 68;

/// Encoded size of a jute string or buffer of `len` bytes (int32 length + bytes).
fn buffer_bytes(len: usize) -> usize {
    4 + len
}

fn string_vec_bytes(v: &[String]) -> usize {
    4 + v.iter().map(|s| buffer_bytes(s.len())).sum::<usize>()
}

impl Response {
    /// The encoded size of the body for the responses that dominate traffic (data, stat,
    /// paths, children), 0 for the rest. A lower bound: strings with characters outside
    /// the BMP grow when encoded. [`Self::encode`] reserves it, so a 1 KiB getData reply is
    /// built with one allocation rather than two or three reallocations.
    pub fn encoded_len_hint(&self) -> usize {
        match self {
            Response::Create { path } | Response::Sync { path } => buffer_bytes(path.len()),
            Response::Create2 { path, .. } => buffer_bytes(path.len()) + STAT_BYTES,
            Response::Stat(_) => STAT_BYTES,
            Response::GetData { data, .. } => {
                buffer_bytes(data.as_ref().map_or(0, |d| d.len())) + STAT_BYTES
            }
            Response::GetChildren { children } => string_vec_bytes(children),
            Response::GetChildren2 { children, .. } => string_vec_bytes(children) + STAT_BYTES,
            _ => 0,
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.reserve(self.encoded_len_hint());
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => w.write_string(path),
            Response::Create2 { path, stat } => {
                w.write_string(path);
                stat.write(w);
            }
            Response::Stat(stat) => stat.write(w),
            Response::GetData { data, stat } => write_data_stat(w, data, stat),
            Response::GetAcl { acl, stat } => {
                write_acl_vec(w, acl);
                stat.write(w);
            }
            Response::GetChildren { children } => w.write_string_vec(children),
            Response::GetChildren2 { children, stat } => {
                w.write_string_vec(children);
                stat.write(w);
            }
            Response::Multi(results) => {
                for r in results {
                    r.write(w);
                }
                MultiHeader::END.write(w);
            }
            Response::GetEphemerals { paths } => w.write_string_vec(paths),
            Response::GetAllChildrenNumber { total } => w.write_i32(*total),
            Response::AddWatch => w.write_i32(0),
            Response::WhoAmI { infos } => {
                w.write_i32(infos.len() as i32);
                for i in infos {
                    i.write(w);
                }
            }
            Response::Sasl { token } => w.write_buffer(Some(token)),
        }
    }

    /// Decodes a successful response to a request of opcode `op` (client side).
    pub fn decode(op: OpCode, r: &mut Reader) -> DecodeResult<Response> {
        Ok(match op {
            OpCode::Create => Response::Create {
                path: r.read_string("CreateResponse.path")?,
            },
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => Response::Create2 {
                path: r.read_string("Create2Response.path")?,
                stat: Stat::read(r)?,
            },
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(Stat::read(r)?),
            OpCode::GetData | OpCode::Reconfig => Response::GetData {
                data: r.read_buffer("data")?,
                stat: Stat::read(r)?,
            },
            OpCode::GetAcl => Response::GetAcl {
                acl: read_acl_vec(r)?.unwrap_or_default(),
                stat: Stat::read(r)?,
            },
            OpCode::GetChildren => Response::GetChildren {
                children: r.read_string_vec("children")?,
            },
            OpCode::GetChildren2 => Response::GetChildren2 {
                children: r.read_string_vec("children")?,
                stat: Stat::read(r)?,
            },
            OpCode::Sync => Response::Sync {
                path: r.read_string("SyncResponse.path")?,
            },
            OpCode::Multi | OpCode::MultiRead => {
                let mut out = Vec::new();
                loop {
                    let h = MultiHeader::read(r)?;
                    if h.done {
                        break;
                    }
                    out.push(MultiResult::read(h, r)?);
                }
                Response::Multi(out)
            }
            OpCode::GetEphemerals => Response::GetEphemerals {
                paths: r.read_string_vec("ephemerals")?,
            },
            OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber {
                total: r.read_i32("totalNumber")?,
            },
            OpCode::AddWatch => {
                if !r.is_empty() {
                    r.read_i32("ErrorResponse.err")?;
                }
                Response::AddWatch
            }
            OpCode::WhoAmI => Response::WhoAmI {
                infos: r
                    .read_vec("clientInfo", 8, ClientInfo::read)?
                    .unwrap_or_default(),
            },
            OpCode::Sasl => Response::Sasl {
                token: r.read_buffer("token")?.unwrap_or_default(),
            },
            _ => Response::Empty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_hint_is_the_encoded_size_of_the_common_responses() {
        let stat = Stat::default();
        let kids = vec!["a".to_owned(), "lock-0000000001".to_owned()];
        let cases = [
            Response::Create {
                path: "/a/b".into(),
            },
            Response::Sync { path: "/".into() },
            Response::Create2 {
                path: "/x".into(),
                stat,
            },
            Response::Stat(stat),
            Response::GetData {
                data: Some(Bytes::from(vec![7u8; 1024])),
                stat,
            },
            Response::GetData { data: None, stat },
            Response::GetChildren {
                children: kids.clone(),
            },
            Response::GetChildren2 {
                children: kids,
                stat,
            },
        ];
        for r in cases {
            let mut w = Writer::new();
            r.encode(&mut w);
            assert_eq!(r.encoded_len_hint(), w.len(), "{r:?}");
        }
        // Anything else is a lower bound of 0: correct, just not pre-sized.
        let mut w = Writer::new();
        Response::GetAllChildrenNumber { total: 3 }.encode(&mut w);
        assert_eq!(w.len(), 4);
    }
}

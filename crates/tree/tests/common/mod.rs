//! Shared helpers for the tree's integration tests: a harness that preps and applies
//! requests the way the node does, with a zxid and clock of its own.
#![allow(dead_code)]

use bytes::Bytes;
use corral_proto::request::{
    CreateRequest, PathType, PathVersion, PathWatch, SetAclRequest, SetDataRequest, SetWatches,
};
use corral_proto::{Acl, ErrorCode, EventType, Id, Request, Response, Stat, Txn, TxnHeader};
use corral_tree::{Applied, Caller, DataTree, TreeConfig, WatchNotification};

pub const T0: i64 = 1_700_000_000_000;

pub fn ip() -> Vec<Id> {
    vec![Id::new("ip", "127.0.0.1")]
}

pub fn digest_auth(user: &str, hash: &str) -> Vec<Id> {
    vec![
        Id::new("digest", format!("{user}:{hash}")),
        Id::new("ip", "127.0.0.1"),
    ]
}

pub struct Harness {
    pub tree: DataTree,
    pub zxid: i64,
    pub time: i64,
    /// Every notification fired so far, in order.
    pub events: Vec<WatchNotification>,
    pub last_txn: Option<Txn>,
    /// Every txn applied, with its header (a txn log).
    pub log: Vec<(TxnHeader, Txn)>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new(TreeConfig::default())
    }
}

impl Harness {
    pub fn new(cfg: TreeConfig) -> Harness {
        Harness {
            tree: DataTree::new(cfg),
            zxid: 0,
            time: T0,
            events: Vec::new(),
            last_txn: None,
            log: Vec::new(),
        }
    }

    pub fn extended() -> Harness {
        Harness::new(TreeConfig {
            extended_types_enabled: true,
            ..TreeConfig::default()
        })
    }

    pub fn apply_txn(&mut self, session: i64, txn: &Txn) -> Applied {
        self.zxid += 1;
        self.time += 1;
        let hdr = TxnHeader {
            session_id: session,
            cxid: 0,
            zxid: self.zxid,
            time_ms: self.time,
            op: txn.op().code(),
        };
        let applied = self.tree.apply(&hdr, txn);
        self.log.push((hdr, txn.clone()));
        self.events.extend(applied.notifications.iter().cloned());
        applied
    }

    pub fn open_session(&mut self, session: i64) {
        let txn = self.tree.prep_create_session(30_000);
        let a = self.apply_txn(session, &txn);
        assert_eq!(a.result, Ok(Response::Empty));
    }

    pub fn close_session(&mut self, session: i64) -> Applied {
        let txn = self.tree.prep(
            &Caller {
                session_id: session,
                auth: &ip(),
            },
            &Request::CloseSession,
            self.time,
        );
        self.apply_txn(session, &txn)
    }

    /// prep + apply, as the node does for one write.
    pub fn write_as(
        &mut self,
        session: i64,
        auth: &[Id],
        req: &Request,
    ) -> Result<Response, ErrorCode> {
        let caller = Caller {
            session_id: session,
            auth,
        };
        let txn = self.tree.prep(&caller, req, self.time);
        let applied = self.apply_txn(session, &txn);
        self.last_txn = Some(txn);
        self.tree.check_invariants();
        applied.result
    }

    pub fn write(&mut self, req: &Request) -> Result<Response, ErrorCode> {
        self.write_as(1, &ip(), req)
    }

    pub fn read_as(
        &mut self,
        session: i64,
        auth: &[Id],
        req: &Request,
    ) -> Result<Response, ErrorCode> {
        let r = self.tree.read(
            &Caller {
                session_id: session,
                auth,
            },
            req,
        );
        self.tree.check_invariants();
        r
    }

    pub fn read(&mut self, req: &Request) -> Result<Response, ErrorCode> {
        self.read_as(1, &ip(), req)
    }

    pub fn watch_as(
        &mut self,
        session: i64,
        req: &Request,
    ) -> (Result<Response, ErrorCode>, Vec<WatchNotification>) {
        let z = self.zxid;
        let r = self.tree.watch_op(
            &Caller {
                session_id: session,
                auth: &ip(),
            },
            req,
            z,
        );
        self.tree.check_invariants();
        r
    }

    pub fn take_events(&mut self) -> Vec<(i64, EventType, String)> {
        self.events
            .drain(..)
            .map(|n| (n.session_id, n.event_type, n.path))
            .collect()
    }

    pub fn create(&mut self, path: &str) -> Result<Response, ErrorCode> {
        self.write(&create(path, b"", 0))
    }

    pub fn stat(&self, path: &str) -> Stat {
        self.tree
            .stat(path)
            .unwrap_or_else(|| panic!("no node {path}"))
    }
}

pub fn create_req(
    path: &str,
    data: Option<&[u8]>,
    acl: Option<Vec<Acl>>,
    flags: i32,
) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        acl,
        flags,
        ttl: None,
    }
}

pub fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(create_req(
        path,
        Some(data),
        Some(Acl::open_unsafe()),
        flags,
    ))
}

pub fn create2(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create2(create_req(
        path,
        Some(data),
        Some(Acl::open_unsafe()),
        flags,
    ))
}

pub fn create_acl(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(create_req(path, Some(b""), Some(acl), 0))
}

pub fn container(path: &str) -> Request {
    Request::CreateContainer(create_req(path, Some(b""), Some(Acl::open_unsafe()), 4))
}

pub fn ttl(path: &str, flags: i32, ttl: i64) -> Request {
    let mut c = create_req(path, Some(b""), Some(Acl::open_unsafe()), flags);
    c.ttl = Some(ttl);
    Request::CreateTtl(c)
}

pub fn delete(path: &str, version: i32) -> Request {
    Request::Delete(PathVersion {
        path: path.into(),
        version,
    })
}

pub fn check(path: &str, version: i32) -> Request {
    Request::Check(PathVersion {
        path: path.into(),
        version,
    })
}

pub fn set_data(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        version,
    })
}

pub fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> Request {
    Request::SetAcl(SetAclRequest {
        path: path.into(),
        acl: Some(acl),
        version,
    })
}

pub fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData(PathWatch {
        path: path.into(),
        watch,
    })
}

pub fn exists(path: &str, watch: bool) -> Request {
    Request::Exists(PathWatch {
        path: path.into(),
        watch,
    })
}

pub fn get_children(path: &str, watch: bool) -> Request {
    Request::GetChildren(PathWatch {
        path: path.into(),
        watch,
    })
}

pub fn get_children2(path: &str, watch: bool) -> Request {
    Request::GetChildren2(PathWatch {
        path: path.into(),
        watch,
    })
}

pub fn get_acl(path: &str) -> Request {
    Request::GetAcl { path: path.into() }
}

pub fn add_watch(path: &str, mode: i32) -> Request {
    Request::AddWatch(PathType {
        path: path.into(),
        kind: mode,
    })
}

pub fn remove_watches(path: &str, kind: i32) -> Request {
    Request::RemoveWatches(PathType {
        path: path.into(),
        kind,
    })
}

pub fn check_watches(path: &str, kind: i32) -> Request {
    Request::CheckWatches(PathType {
        path: path.into(),
        kind,
    })
}

pub fn set_watches(rel: i64, data: &[&str], exist: &[&str], child: &[&str]) -> Request {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    Request::SetWatches(SetWatches {
        relative_zxid: rel,
        data_watches: v(data),
        exist_watches: v(exist),
        child_watches: v(child),
        ..SetWatches::default()
    })
}

pub fn children_of(r: Result<Response, ErrorCode>) -> Vec<String> {
    match r {
        Ok(Response::GetChildren { mut children })
        | Ok(Response::GetChildren2 { mut children, .. }) => {
            children.sort();
            children
        }
        other => panic!("not children: {other:?}"),
    }
}

pub fn created_path(r: Result<Response, ErrorCode>) -> String {
    match r {
        Ok(Response::Create { path }) | Ok(Response::Create2 { path, .. }) => path,
        other => panic!("not a create: {other:?}"),
    }
}

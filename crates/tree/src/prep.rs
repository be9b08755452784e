//! PrepRequestProcessor: turns a write request into the txn to log, or into an error txn.
//!
//! Validation order is ZooKeeper's, because clients see which error wins:
//! * create: flags, TTL/extended types, create-mode vs opcode, ephemeral session, `/` and
//!   NUL check, ACL fixup, parent lookup, CREATE on the parent, sequential suffix, full path
//!   validation, NodeExists, ephemeral parent;
//! * delete: special-node and `/` check, parent lookup, DELETE on the parent, node lookup,
//!   version, NotEmpty (so a missing child under an unwritable parent is NoAuth);
//! * setData / check: path, lookup, WRITE / READ, version;
//! * setACL: path, ACL fixup, lookup, ADMIN, aversion.
//!
//! Reads the tree through [`View`]; a multi preps its ops one after another against an
//! [`Overlay`] holding the changes of the ops before, which is discarded afterwards (the
//! caller applies each txn before prepping the next request, so there is no outstanding
//! change list across requests). Pure: never mutates the tree.

use crate::acl::{self, need};
use crate::hash::FastMap;
use crate::path::{self, split_last, validate_path};
use crate::tree::{DataTree, NodeKind, TTL_MAX_MS};
use crate::Caller;
use bytes::Bytes;
use corral_proto::request::{CreateRequest, PathVersion};
use corral_proto::{Acl, CreateTxn, ErrorCode, Request, Txn};
use std::sync::Arc;

/// What prep needs to know about a node.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub(crate) version: i32,
    pub(crate) aversion: i32,
    /// Stored cversion (count of child creations).
    pub(crate) cversion: i32,
    pub(crate) num_children: i64,
    pub(crate) owner: i64,
    pub(crate) acl: Arc<[Acl]>,
}

/// A read-only view of nodes for prep.
pub(crate) trait View {
    fn rec(&self, path: &str) -> Option<Rec>;
}

impl View for DataTree {
    fn rec(&self, path: &str) -> Option<Rec> {
        self.lookup(path).map(|id| {
            let n = self.arena.get(id);
            Rec {
                version: n.version,
                aversion: n.aversion,
                cversion: n.cversion,
                num_children: i64::from(n.num_children),
                owner: n.ephemeral_owner,
                acl: self.acl_of(n),
            }
        })
    }
}

/// The tree plus the changes of earlier ops of the same multi (`None` = deleted).
struct Overlay<'a> {
    tree: &'a DataTree,
    changes: FastMap<String, Option<Rec>>,
}

/// `""` is the root's alias; key overlay changes by one spelling.
fn canonical(path: &str) -> &str {
    if path.is_empty() {
        path::ROOT
    } else {
        path
    }
}

impl View for Overlay<'_> {
    fn rec(&self, path: &str) -> Option<Rec> {
        match self.changes.get(canonical(path)) {
            Some(change) => change.clone(),
            None => self.tree.rec(path),
        }
    }
}

/// Overlay updates an op implies for the ops after it.
type Changes = Vec<(String, Option<Rec>)>;

/// `CreateMode` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    fn from_flags(flags: i32) -> Option<CreateMode> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }

    fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateOp {
    Create,
    Create2,
    Container,
    Ttl,
}

/// `String.format("%010d", cversion)`: zero-padded to 10 characters including the sign.
///
/// The stored cversion only moves forward in apply (`parentCVersion > cversion`), so once
/// it reaches `i32::MAX` it stays there and later sequential creates under that parent get
/// the same name (NodeExists), exactly as in ZooKeeper 3.8; a negative suffix only appears
/// for a negative stored cversion (e.g. from a snapshot).
pub(crate) fn sequential_suffix(cversion: i32) -> String {
    format!("{cversion:010}")
}

fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// `getParentPathAndValidate`: refuses special nodes, paths without `/` and NULs.
fn parent_for_delete(p: &str) -> Result<&str, ErrorCode> {
    if p.contains('\0') || path::is_special(p) {
        return Err(ErrorCode::BadArguments);
    }
    split_last(p)
        .map(|(parent, _)| parent)
        .ok_or(ErrorCode::BadArguments)
}

struct Prep<'a> {
    tree: &'a DataTree,
    caller: &'a Caller<'a>,
}

impl Prep<'_> {
    fn allowed(&self, acl: &[Acl], perm: i32) -> Result<(), ErrorCode> {
        if acl::allowed(&self.tree.cfg, acl, perm, self.caller.auth) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn op(&self, view: &dyn View, req: &Request) -> Result<(Txn, Changes), ErrorCode> {
        match req {
            Request::Create(c) => self.create(view, CreateOp::Create, c),
            Request::Create2(c) => self.create(view, CreateOp::Create2, c),
            Request::CreateContainer(c) => self.create(view, CreateOp::Container, c),
            Request::CreateTtl(c) => self.create(view, CreateOp::Ttl, c),
            Request::Delete(d) => self.delete(view, d),
            Request::DeleteContainer { path } => self.delete_container(view, path),
            Request::SetData(s) => self.set_data(view, &s.path, s.data.as_ref(), s.version),
            Request::SetAcl(s) => self.set_acl(view, &s.path, s.acl.as_deref(), s.version),
            Request::Check(c) => self.check(view, c),
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    fn create(
        &self,
        view: &dyn View,
        op: CreateOp,
        req: &CreateRequest,
    ) -> Result<(Txn, Changes), ErrorCode> {
        let mode = CreateMode::from_flags(req.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.tree.cfg.extended_types_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = match op {
            CreateOp::Ttl => req.ttl.unwrap_or(-1),
            _ => -1,
        };
        if mode.is_ttl() {
            if ttl <= 0 || ttl > TTL_MAX_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 || op == CreateOp::Ttl {
            // ZooKeeper 3.8 lets op 21 with a non-TTL mode and a negative ttl through, and
            // then fails applying it (the server stops); refuse it here.
            return Err(ErrorCode::BadArguments);
        }
        // 3.8.0 lets the opcode decide between container and persistent; refuse mismatches.
        if (op == CreateOp::Container) != (mode == CreateMode::Container) {
            return Err(ErrorCode::BadArguments);
        }
        if mode.is_ephemeral() && !self.tree.session_exists(self.caller.session_id) {
            return Err(ErrorCode::SessionExpired);
        }
        if req.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let (parent_path, _) = split_last(&req.path).ok_or(ErrorCode::BadArguments)?;
        let acl = acl::fixup(req.acl.as_deref(), self.caller.auth)?;
        let parent = view.rec(parent_path).ok_or(ErrorCode::NoNode)?;
        self.allowed(&parent.acl, need::CREATE)?;
        let mut node_path = req.path.clone();
        if mode.is_sequential() {
            node_path.push_str(&sequential_suffix(parent.cversion));
        }
        validate_path(&node_path)?;
        if view.rec(&node_path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            NodeKind::of(parent.owner, self.tree.cfg.extended_types_enabled),
            NodeKind::Ephemeral(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let parent_cversion = parent.cversion.wrapping_add(1);
        let owner = match op {
            CreateOp::Container => crate::tree::CONTAINER_EPHEMERAL_OWNER,
            CreateOp::Ttl => crate::tree::ttl_ephemeral_owner(ttl),
            _ if mode.is_ephemeral() => self.caller.session_id,
            _ => 0,
        };
        let ctxn = CreateTxn {
            path: node_path.clone(),
            data: req.data.clone(),
            acl: acl.clone(),
            ephemeral: mode.is_ephemeral(),
            parent_cversion,
            ttl: if op == CreateOp::Ttl { ttl } else { 0 },
        };
        let txn = match op {
            CreateOp::Create => Txn::Create(ctxn),
            CreateOp::Create2 => Txn::Create2(ctxn),
            CreateOp::Container => Txn::CreateContainer(ctxn),
            CreateOp::Ttl => Txn::CreateTtl(ctxn),
        };
        let changes = vec![
            (
                canonical(parent_path).to_string(),
                Some(Rec {
                    cversion: parent_cversion,
                    num_children: parent.num_children + 1,
                    ..parent
                }),
            ),
            (
                node_path,
                Some(Rec {
                    version: 0,
                    aversion: 0,
                    cversion: 0,
                    num_children: 0,
                    owner,
                    acl: acl.into(),
                }),
            ),
        ];
        Ok((txn, changes))
    }

    fn delete(&self, view: &dyn View, req: &PathVersion) -> Result<(Txn, Changes), ErrorCode> {
        let parent_path = parent_for_delete(&req.path)?;
        let parent = view.rec(parent_path).ok_or(ErrorCode::NoNode)?;
        self.allowed(&parent.acl, need::DELETE)?;
        let node = view.rec(&req.path).ok_or(ErrorCode::NoNode)?;
        check_version(node.version, req.version)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let changes = vec![
            (
                canonical(parent_path).to_string(),
                Some(Rec {
                    num_children: parent.num_children - 1,
                    ..parent
                }),
            ),
            (req.path.clone(), None),
        ];
        Ok((
            Txn::Delete {
                path: req.path.clone(),
            },
            changes,
        ))
    }

    /// The reaper's internal delete. Stricter than 3.8 (which only refuses plain
    /// ephemerals): anything but a container or TTL node is BadVersion, so a node recreated
    /// as persistent between the reaper's scan and its delete survives.
    fn delete_container(&self, view: &dyn View, p: &str) -> Result<(Txn, Changes), ErrorCode> {
        let parent_path = parent_for_delete(p)?;
        let node = view.rec(p).ok_or(ErrorCode::NoNode)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        match NodeKind::of(node.owner, self.tree.cfg.extended_types_enabled) {
            NodeKind::Container | NodeKind::Ttl(_) => {}
            _ => return Err(ErrorCode::BadVersion),
        }
        let parent = view.rec(parent_path).ok_or(ErrorCode::NoNode)?;
        let changes = vec![
            (
                canonical(parent_path).to_string(),
                Some(Rec {
                    num_children: parent.num_children - 1,
                    ..parent
                }),
            ),
            (p.to_string(), None),
        ];
        Ok((
            Txn::DeleteContainer {
                path: p.to_string(),
            },
            changes,
        ))
    }

    fn set_data(
        &self,
        view: &dyn View,
        p: &str,
        data: Option<&Bytes>,
        version: i32,
    ) -> Result<(Txn, Changes), ErrorCode> {
        validate_path(p)?;
        let node = view.rec(p).ok_or(ErrorCode::NoNode)?;
        self.allowed(&node.acl, need::WRITE)?;
        let new_version = check_version(node.version, version)?;
        let changes = vec![(
            canonical(p).to_string(),
            Some(Rec {
                version: new_version,
                ..node
            }),
        )];
        Ok((
            Txn::SetData {
                path: p.to_string(),
                data: data.cloned(),
                version: new_version,
            },
            changes,
        ))
    }

    fn set_acl(
        &self,
        view: &dyn View,
        p: &str,
        acl: Option<&[Acl]>,
        version: i32,
    ) -> Result<(Txn, Changes), ErrorCode> {
        validate_path(p)?;
        let acl = acl::fixup(acl, self.caller.auth)?;
        let node = view.rec(p).ok_or(ErrorCode::NoNode)?;
        self.allowed(&node.acl, need::ADMIN)?;
        let new_version = check_version(node.aversion, version)?;
        let changes = vec![(
            canonical(p).to_string(),
            Some(Rec {
                aversion: new_version,
                acl: acl.clone().into(),
                ..node
            }),
        )];
        Ok((
            Txn::SetAcl {
                path: p.to_string(),
                acl,
                version: new_version,
            },
            changes,
        ))
    }

    fn check(&self, view: &dyn View, req: &PathVersion) -> Result<(Txn, Changes), ErrorCode> {
        validate_path(&req.path)?;
        let node = view.rec(&req.path).ok_or(ErrorCode::NoNode)?;
        self.allowed(&node.acl, need::READ)?;
        let version = check_version(node.version, req.version)?;
        Ok((
            Txn::Check {
                path: req.path.clone(),
                version,
            },
            Vec::new(),
        ))
    }

    fn multi(&self, ops: &[Request]) -> Txn {
        let allowed = ops.iter().all(|op| {
            matches!(
                op,
                Request::Create(_)
                    | Request::Create2(_)
                    | Request::CreateContainer(_)
                    | Request::CreateTtl(_)
                    | Request::Delete(_)
                    | Request::SetData(_)
                    | Request::Check(_)
            )
        });
        if !allowed {
            return Txn::Error(ErrorCode::MarshallingError);
        }
        let mut overlay = Overlay {
            tree: self.tree,
            changes: FastMap::default(),
        };
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed = false;
        for op in ops {
            if failed {
                txns.push(Txn::Error(ErrorCode::RuntimeInconsistency));
                continue;
            }
            if let Request::CreateTtl(CreateRequest { ttl: None, .. }) = op {
                // A create / create2 sub-op with TTL flags (the decoder turns it into a
                // createTTL without a ttl): 3.8 casts its record to CreateTTLRequest when
                // prep reaches it and fails the whole multi with MarshallingError. Ops after
                // an earlier failure are never prepped, hence the check here.
                return Txn::Error(ErrorCode::MarshallingError);
            }
            match self.op(&overlay, op) {
                Ok((txn, changes)) => {
                    for (p, rec) in changes {
                        overlay.changes.insert(p, rec);
                    }
                    txns.push(txn);
                }
                Err(code) => {
                    failed = true;
                    txns.push(Txn::Error(code));
                }
            }
        }
        Txn::Multi(txns)
    }
}

impl DataTree {
    /// PrepRequestProcessor for a write request: validates it against the current tree
    /// and returns the txn to log and apply. Failures are error txns (they consume a zxid
    /// in ZooKeeper): a failed op is `Txn::Error(code)`; a failed multi is `Txn::Multi`
    /// whose ops before the failure are intact, the failing one `Txn::Error(code)` and the
    /// rest `Txn::Error(RuntimeInconsistency)`.
    ///
    /// Handles create / create2 / createContainer / createTTL, delete, deleteContainer
    /// (the reaper's), setData, setACL, check, multi and closeSession (whose txn lists the
    /// session's ephemerals, sorted). Reconfig is `ReconfigDisabled` here (see
    /// [`DataTree::prep_reconfig`]); createSession has no request form, see
    /// [`DataTree::prep_create_session`]. Anything else is `Unimplemented`.
    ///
    /// Session liveness is the caller's business, except that an ephemeral create from a
    /// session missing in the session table is SessionExpired (it could never be cleaned
    /// up). `time_ms` is the txn time the caller will stamp; prep does not need it.
    pub fn prep(&self, caller: &Caller, req: &Request, time_ms: i64) -> Txn {
        let _ = time_ms;
        let p = Prep { tree: self, caller };
        match req {
            Request::Multi(ops) => p.multi(ops),
            Request::Reconfig(_) => Txn::Error(ErrorCode::ReconfigDisabled),
            Request::CloseSession => Txn::CloseSession {
                paths_to_delete: self.ephemerals_of(caller.session_id),
            },
            _ => match p.op(self, req) {
                Ok((txn, _)) => txn,
                Err(code) => Txn::Error(code),
            },
        }
    }

    /// The txn for a new global session.
    pub fn prep_create_session(&self, timeout_ms: i32) -> Txn {
        Txn::CreateSession { timeout_ms }
    }

    /// The tree part of a reconfig the caller has decided on: WRITE on
    /// `/zookeeper/config`, then a SetData txn of the new config text with version -1.
    pub fn prep_reconfig(&self, caller: &Caller, config: Bytes) -> Txn {
        let Some(node) = self.rec(path::CONFIG) else {
            return Txn::Error(ErrorCode::NoNode);
        };
        if !acl::allowed(&self.cfg, &node.acl, need::WRITE, caller.auth) {
            return Txn::Error(ErrorCode::NoAuth);
        }
        Txn::Reconfig {
            path: path::CONFIG.to_string(),
            data: Some(config),
            version: -1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_is_java_percent_010d() {
        assert_eq!(sequential_suffix(0), "0000000000");
        assert_eq!(sequential_suffix(42), "0000000042");
        assert_eq!(sequential_suffix(i32::MAX), "2147483647");
        assert_eq!(sequential_suffix(-1), "-000000001");
        assert_eq!(sequential_suffix(i32::MIN), "-2147483648");
    }

    #[test]
    fn version_check_wraps() {
        assert_eq!(check_version(3, -1), Ok(4));
        assert_eq!(check_version(3, 3), Ok(4));
        assert_eq!(check_version(3, 2), Err(ErrorCode::BadVersion));
        assert_eq!(check_version(i32::MAX, i32::MAX), Ok(i32::MIN));
        assert_eq!(check_version(-1, -1), Ok(0));
    }
}

//! Reads (FinalRequestProcessor's read cases) and watch management.
//!
//! Reads answer from the current tree and register one-shot watches for the caller's
//! session. Existence is checked before the ACL; a missing node registers nothing, except
//! for exists, which arms its watch even on NoNode so the client hears about a create.
//! getData / getChildren arm a watch only after the ACL check passes; exists checks no ACL
//! (as the 3.8.0 server does; 3.8.4 added a READ check, ZOOKEEPER-2590).
//!
//! Every call that carries a [`Caller`] records the caller's ids as the session's watcher
//! identity, used later to drop events the session may not READ (3.8.4+). The node should
//! also call [`DataTree::set_watcher_auth`] after an auth packet succeeds.

use crate::acl::{self, need};
use crate::path::{self, java_trim};
use crate::tree::DataTree;
use crate::watch::{CHILD_ALL, CHILD_STANDARD, DATA_ALL, DATA_STANDARD, PERSISTENT, RECURSIVE};
use crate::{Caller, WatchNotification};
use corral_proto::request::{PathType, PathWatch, SetWatches};
use corral_proto::{ErrorCode, EventType, Id, MultiResult, Request, Response, Stat, WatcherType};

impl DataTree {
    /// Keeps the session's ids current for event filtering. Only sessions that watch
    /// something are remembered (the entry goes with `remove_watches_of`).
    fn remember_auth(&mut self, caller: &Caller, registers: bool) {
        match self.watcher_auth.get(&caller.session_id) {
            Some(known) if known.as_slice() == caller.auth => {}
            Some(_) => {
                self.watcher_auth
                    .insert(caller.session_id, caller.auth.to_vec());
            }
            None if registers => {
                self.watcher_auth
                    .insert(caller.session_id, caller.auth.to_vec());
            }
            None => {}
        }
    }

    /// Records the ids of a session's connection, for filtering its watch events by READ
    /// permission. Called implicitly by every `read` / `watch_op`; call it after a
    /// successful auth packet so later events see the new identity.
    pub fn set_watcher_auth(&mut self, session_id: i64, auth: &[Id]) {
        self.watcher_auth.insert(session_id, auth.to_vec());
    }

    fn check_read(
        &self,
        caller: &Caller,
        acl: &[corral_proto::Acl],
        perm: i32,
    ) -> Result<(), ErrorCode> {
        if acl::allowed(&self.cfg, acl, perm, caller.auth) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn get_data(
        &mut self,
        caller: &Caller,
        req: &PathWatch,
        watch: bool,
    ) -> Result<Response, ErrorCode> {
        let id = self.lookup(&req.path).ok_or(ErrorCode::NoNode)?;
        let n = self.arena.get(id);
        self.check_read(caller, self.acls.get(n.acl), need::READ)?;
        let resp = Response::GetData {
            data: n.data_bytes(),
            stat: self.client_stat(n),
        };
        if watch {
            self.watches
                .add(&req.path, caller.session_id, DATA_STANDARD);
        }
        Ok(resp)
    }

    fn get_children(
        &mut self,
        caller: &Caller,
        req: &PathWatch,
        watch: bool,
        with_stat: bool,
    ) -> Result<Response, ErrorCode> {
        let id = self.lookup(&req.path).ok_or(ErrorCode::NoNode)?;
        let n = self.arena.get(id);
        self.check_read(caller, self.acls.get(n.acl), need::READ)?;
        let stat = self.client_stat(n);
        let children: Vec<String> = self
            .children_ids(id)
            .into_iter()
            .map(|c| self.arena.get(c).name().to_string())
            .collect();
        if watch {
            self.watches
                .add(&req.path, caller.session_id, CHILD_STANDARD);
        }
        Ok(if with_stat {
            Response::GetChildren2 { children, stat }
        } else {
            Response::GetChildren { children }
        })
    }

    /// getChildren / getChildren2 without building an owned list of names: checks and
    /// registers the watch exactly as [`DataTree::read`] does, and hands the stat and the
    /// children's names to `encode` (the node writes them straight into the reply frame;
    /// a lock directory's listing would otherwise cost one allocation per child).
    pub fn read_children<R>(
        &mut self,
        caller: &Caller,
        req: &PathWatch,
        encode: impl FnOnce(Stat, &[&str]) -> R,
    ) -> Result<R, ErrorCode> {
        self.remember_auth(caller, req.watch);
        let id = self.lookup(&req.path).ok_or(ErrorCode::NoNode)?;
        let n = self.arena.get(id);
        self.check_read(caller, self.acls.get(n.acl), need::READ)?;
        let stat = self.client_stat(n);
        let names: Vec<&str> = self
            .children_ids(id)
            .into_iter()
            .map(|c| self.arena.get(c).name())
            .collect();
        let encoded = encode(stat, &names);
        drop(names);
        if req.watch {
            self.watches
                .add(&req.path, caller.session_id, CHILD_STANDARD);
        }
        Ok(encoded)
    }

    /// exists checks no permission in ZooKeeper 3.8 (FinalRequestProcessor carries a
    /// "TODO we need to figure out the security requirement for this!"): anyone may stat any
    /// node and watch it. Reproduced as is.
    fn exists(&mut self, caller: &Caller, req: &PathWatch) -> Result<Response, ErrorCode> {
        if req.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let found = self.lookup(&req.path);
        if req.watch {
            self.watches
                .add(&req.path, caller.session_id, DATA_STANDARD);
        }
        let id = found.ok_or(ErrorCode::NoNode)?;
        Ok(Response::Stat(self.client_stat(self.arena.get(id))))
    }

    fn get_acl(&self, caller: &Caller, p: &str) -> Result<Response, ErrorCode> {
        let id = self.lookup(p).ok_or(ErrorCode::NoNode)?;
        let n = self.arena.get(id);
        let list = self.acl_of(n);
        self.check_read(caller, &list, need::READ | need::ADMIN)?;
        let stat = self.client_stat(n);
        let acl = if acl::allowed(&self.cfg, &list, need::ADMIN, caller.auth) {
            list.to_vec()
        } else {
            acl::mask_digests(&list)
        };
        Ok(Response::GetAcl { acl, stat })
    }

    fn all_children_number(&self, caller: &Caller, p: &str) -> Result<Response, ErrorCode> {
        let id = self.lookup(p).ok_or(ErrorCode::NoNode)?;
        let acl = self.acl_of(self.arena.get(id));
        self.check_read(caller, &acl, need::READ)?;
        // ZooKeeper counts map keys starting with `path + "/"`; for "" that includes the
        // root's own "/" alias, so every real node counts.
        let total = if p.is_empty() {
            self.arena.len()
        } else if p == path::ROOT {
            self.arena.len() - 1
        } else {
            let mut count = 0usize;
            let mut stack = self.children_ids(id);
            while let Some(c) = stack.pop() {
                count += 1;
                stack.extend(self.children_ids(c));
            }
            count
        };
        Ok(Response::GetAllChildrenNumber {
            total: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    fn get_ephemerals(&self, caller: &Caller, prefix: Option<&str>) -> Response {
        let all = self.ephemerals_of(caller.session_id);
        let paths = match prefix {
            Some(pre) if !java_trim(pre).is_empty() && java_trim(pre) != path::ROOT => {
                all.into_iter().filter(|p| p.starts_with(pre)).collect()
            }
            _ => all,
        };
        Response::GetEphemerals { paths }
    }

    /// Reads: exists, getData, getChildren, getChildren2, getACL, getAllChildrenNumber,
    /// getEphemerals (of the caller's session) and multiRead. Registers one-shot watches for
    /// the caller's session when the request asks (exists even on NoNode; the others not
    /// on NoNode or NoAuth). multiRead sets no watches and answers per-op errors inside
    /// the result. Other requests are Unimplemented.
    pub fn read(&mut self, caller: &Caller, req: &Request) -> Result<Response, ErrorCode> {
        let registers = match req {
            Request::Exists(r)
            | Request::GetData(r)
            | Request::GetChildren(r)
            | Request::GetChildren2(r) => r.watch,
            _ => false,
        };
        self.remember_auth(caller, registers);
        match req {
            Request::Exists(r) => self.exists(caller, r),
            Request::GetData(r) => self.get_data(caller, r, r.watch),
            Request::GetChildren(r) => self.get_children(caller, r, r.watch, false),
            Request::GetChildren2(r) => self.get_children(caller, r, r.watch, true),
            Request::GetAcl { path } => self.get_acl(caller, path),
            Request::GetAllChildrenNumber { path } => self.all_children_number(caller, path),
            Request::GetEphemerals { prefix } => Ok(self.get_ephemerals(caller, prefix.as_deref())),
            Request::MultiRead(ops) => {
                let results = ops
                    .iter()
                    .map(|op| match op {
                        Request::GetData(r) => match self.get_data(caller, r, false) {
                            Ok(Response::GetData { data, stat }) => {
                                MultiResult::GetData { data, stat }
                            }
                            Ok(_) => MultiResult::Error(ErrorCode::SystemError),
                            Err(e) => MultiResult::Error(e),
                        },
                        Request::GetChildren(r) => match self.get_children(caller, r, false, false)
                        {
                            Ok(Response::GetChildren { children }) => {
                                MultiResult::GetChildren { children }
                            }
                            Ok(_) => MultiResult::Error(ErrorCode::SystemError),
                            Err(e) => MultiResult::Error(e),
                        },
                        _ => MultiResult::Error(ErrorCode::MarshallingError),
                    })
                    .collect();
                Ok(Response::Multi(results))
            }
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    fn set_watches(
        &mut self,
        caller: &Caller,
        sw: &SetWatches,
        zxid: i64,
    ) -> Vec<WatchNotification> {
        let session = caller.session_id;
        let mut out = Vec::new();
        let note = |out: &mut Vec<WatchNotification>, event_type, path: &str| {
            out.push(WatchNotification {
                session_id: session,
                event_type,
                path: path.to_string(),
                zxid,
            });
        };
        for p in &sw.data_watches {
            match self.lookup(p) {
                None => note(&mut out, EventType::NodeDeleted, p),
                Some(id) if self.arena.get(id).mzxid > sw.relative_zxid => {
                    note(&mut out, EventType::NodeDataChanged, p)
                }
                Some(_) => self.watches.add(p, session, DATA_STANDARD),
            }
        }
        for p in &sw.exist_watches {
            match self.lookup(p) {
                Some(_) => note(&mut out, EventType::NodeCreated, p),
                None => self.watches.add(p, session, DATA_STANDARD),
            }
        }
        for p in &sw.child_watches {
            match self.lookup(p) {
                None => note(&mut out, EventType::NodeDeleted, p),
                Some(id) if self.arena.get(id).pzxid > sw.relative_zxid => {
                    note(&mut out, EventType::NodeChildrenChanged, p)
                }
                Some(_) => self.watches.add(p, session, CHILD_STANDARD),
            }
        }
        for p in &sw.persistent_watches {
            self.watches.add(p, session, PERSISTENT);
        }
        for p in &sw.persistent_recursive_watches {
            self.watches.add(p, session, RECURSIVE);
        }
        out
    }

    /// The watch bits a checkWatches / removeWatches type covers: 3.8's Children / Data /
    /// Any cover the whole table whatever the mode. 3.9's Persistent (4) and
    /// PersistentRecursive (5) are answered MarshallingError, as 3.8 does: corral reports
    /// itself as 3.8, and a client that sees 3.8 must get 3.8's answers.
    fn watcher_type_mask(kind: i32) -> Result<(u8, u8), ErrorCode> {
        // (bits that count as "has a watch", bits removed)
        match WatcherType::from_i32(kind) {
            Some(WatcherType::Children) => Ok((CHILD_ALL, CHILD_ALL)),
            Some(WatcherType::Data) => Ok((DATA_ALL, DATA_ALL)),
            Some(WatcherType::Any) => Ok((DATA_ALL | CHILD_ALL, DATA_ALL | CHILD_ALL)),
            Some(WatcherType::Persistent | WatcherType::PersistentRecursive) | None => {
                Err(ErrorCode::MarshallingError)
            }
        }
    }

    fn check_or_remove(
        &mut self,
        caller: &Caller,
        req: &PathType,
        remove: bool,
    ) -> Result<Response, ErrorCode> {
        let (has, clear) = Self::watcher_type_mask(req.kind)?;
        let session = caller.session_id;
        // ZooKeeper 3.8's checkWatches (WatchManager.containsWatcher) answers yes when any
        // session watches exactly this path in the table, not only the caller; the Java
        // client only uses it to decide whether to drop its local watcher, so the answer is
        // reproduced as is. removeWatches is per session.
        if !remove && !req.path.contains('/') && self.watches.has_recursive(has) {
            // 3.8 walks the path's parents once any recursive watch exists, and a path
            // without '/' makes that walk throw: the client gets MarshallingError.
            return Err(ErrorCode::MarshallingError);
        }
        let found = if remove {
            self.watches.bits(&req.path, session) & has != 0
        } else {
            self.watches.any_on(&req.path, has)
        };
        if !found {
            return Err(ErrorCode::NoWatcher);
        }
        if remove {
            self.watches.remove(&req.path, session, clear);
        }
        Ok(Response::Empty)
    }

    /// Watch management: setWatches / setWatches2 (returns the notifications to send
    /// before the reply, per §2.7 against `relative_zxid`, stamped with `zxid`, and arms
    /// the rest; these immediate events are not ACL-filtered, as in ZooKeeper), addWatch,
    /// checkWatches and removeWatches (NoWatcher when nothing of this session matches).
    pub fn watch_op(
        &mut self,
        caller: &Caller,
        req: &Request,
        zxid: i64,
    ) -> (Result<Response, ErrorCode>, Vec<WatchNotification>) {
        let registers = matches!(
            req,
            Request::SetWatches(_) | Request::SetWatches2(_) | Request::AddWatch(_)
        );
        self.remember_auth(caller, registers);
        match req {
            Request::SetWatches(sw) | Request::SetWatches2(sw) => {
                let events = self.set_watches(caller, sw, zxid);
                (Ok(Response::Empty), events)
            }
            Request::AddWatch(r) => {
                let bits = match r.kind {
                    0 => PERSISTENT,
                    1 => RECURSIVE,
                    _ => return (Err(ErrorCode::MarshallingError), Vec::new()),
                };
                self.watches.add(&r.path, caller.session_id, bits);
                (Ok(Response::AddWatch), Vec::new())
            }
            Request::CheckWatches(r) => (self.check_or_remove(caller, r, false), Vec::new()),
            Request::RemoveWatches(r) => (self.check_or_remove(caller, r, true), Vec::new()),
            _ => (Err(ErrorCode::Unimplemented), Vec::new()),
        }
    }

    /// Drops every watch of a session (its connection closed or the session ended).
    pub fn remove_watches_of(&mut self, session_id: i64) {
        self.watches.remove_session(session_id);
        self.watcher_auth.remove(&session_id);
    }

    /// Watch entries in the data table plus entries in the child table (mntr
    /// `zk_watch_count`; a persistent watch counts twice, as in ZooKeeper).
    pub fn watch_count(&self) -> usize {
        self.watches.count()
    }

    /// Data-table watches per session, as 3.8's `wchc` lists them (sorted).
    pub fn watches_by_session(&self) -> Vec<(i64, Vec<String>)> {
        self.watches.data_by_session()
    }

    /// Data-table watches per path, as 3.8's `wchp` lists them (sorted).
    pub fn watches_by_path(&self) -> Vec<(String, Vec<i64>)> {
        self.watches.data_by_path()
    }

    /// `wchs`: (connections, paths, total watches) of the data table.
    pub fn watch_summary(&self) -> (usize, usize, usize) {
        let by_session = self.watches.data_by_session();
        let paths = self.watches.data_by_path().len();
        let total = by_session.iter().map(|(_, v)| v.len()).sum();
        (by_session.len(), paths, total)
    }
}

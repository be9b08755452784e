//! The standalone request pipeline (ZooKeeper's Prep → Sync → Final processors) over one
//! [`DataTree`], as a pure state machine.
//!
//! Owns: the per-connection state the protocol needs (session, authenticated ids, peer
//! address), which connection currently owns each session, session expiry, the zxid
//! counter, and the container/TTL reaper schedule.
//!
//! Driven by [`Node::connect`], [`Node::request`], [`Node::disconnected`] and
//! [`Node::tick`]; every call appends [`Output`]s that the shell carries out **in order**.
//! Time comes in as [`Now`]; the node never reads a clock.
//!
//! Ordering guarantees the shell relies on:
//! * replies for one connection are emitted in request order (requests are handled one at
//!   a time, to completion);
//! * a watch notification is emitted before the reply of any later request on that
//!   connection, including the reply of the write that fired it;
//! * an [`Output::Append`] is emitted before every reply or notification that depends on
//!   it; once the log is durable, the shell must hold such output until the txn is synced.

use crate::auth::{self, AuthOutcome};
use crate::learner::LearnerPipeline;
use crate::session::{session_password, SessionTracker};
use bytes::Bytes;
use corral_proto::opcode::{XID_NOTIFICATION, XID_PING};
use corral_proto::quorum::LearnerRequest;
use corral_proto::request::PathWatch;
use corral_proto::response::STAT_BYTES;
use corral_proto::EventType;
use corral_proto::{
    ClientInfo, ConnectRequest, ConnectResponse, ErrorCode, Id, KeeperState, OpCode, Record,
    ReplyHeader, Request, RequestError, Response, Txn, TxnDigest, TxnEntry, TxnHeader,
    WatcherEvent, Writer,
};
use corral_tree::{Caller, DataTree, WatchNotification};
use std::collections::HashMap;

/// A connection handle chosen by the shell.
pub type ConnId = u64;

/// Clock readings passed in by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (session expiry, reaper schedule).
    pub mono_ms: i64,
    /// Wall-clock milliseconds since the epoch (txn timestamps: ctime/mtime).
    pub wall_ms: i64,
}

/// Most sessions expired in one tick, so a burst of expiries cannot stall the pipeline.
pub const SESSIONS_EXPIRED_PER_TICK_MAX: usize = 10_000;

/// Validated settings the node needs (built by the shell from zoo.cfg).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub tick_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Server id that goes into session ids (1 for standalone, as ZooKeeper does).
    pub server_id: u8,
    /// `super:<b64>` digest id, if configured.
    pub super_digest: Option<String>,
    /// `znode.container.checkIntervalMs`.
    pub container_check_interval_ms: i64,
    /// `znode.container.maxPerMinute`.
    pub container_max_per_minute: usize,
    /// `znode.container.maxNeverUsedIntervalMs` (0 = never reap unused containers).
    pub container_max_never_used_ms: i64,
}

impl NodeConfig {
    pub fn standalone(tick_ms: i64) -> NodeConfig {
        NodeConfig {
            tick_ms,
            min_session_timeout_ms: (2 * tick_ms) as i32,
            max_session_timeout_ms: (20 * tick_ms) as i32,
            server_id: 1,
            super_digest: None,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            container_max_never_used_ms: 0,
        }
    }
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write this frame (length prefix included) to the connection. `after` is the newest
    /// zxid the frame depends on: a reply's header zxid, or the last txn applied when a
    /// notification or handshake was emitted. A standalone shell may send the frame once
    /// `after` is durable (and everything before it on the connection has gone); an
    /// ensemble shell holds by its own, stricter rule (see [`Mode::Leader`]).
    Send {
        conn: ConnId,
        frame: Bytes,
        after: i64,
    },
    /// Close the connection once everything before this has been written.
    Close { conn: ConnId },
    /// Append this txn to the log (durable before later output is released). On a leader
    /// it is also proposed, and later output waits for its commit.
    Append(TxnEntry),
    /// Learner: send this client request to the leader (REQUEST), with the client's ids.
    Forward {
        request: LearnerRequest,
        auth: Vec<Id>,
    },
    /// Learner: ask the leader whether a session may reconnect here (REVALIDATE).
    Revalidate { session_id: i64, timeout_ms: i32 },
}

/// How the pipeline handles writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Prepare, log and apply at once.
    Standalone,
    /// Prepare, apply and propose at once; the shell holds what follows a txn until it
    /// commits. Expires sessions and reaps containers for the whole ensemble.
    Leader,
    /// Forward writes to the leader and apply what it commits; reads are served locally,
    /// in order with the session's own pending writes.
    Learner,
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) session_id: i64,
    /// Authenticated ids; `ip:<peer>` is always present (kept last, as ZooKeeper lists it).
    pub(crate) auth: Vec<Id>,
    pub(crate) peer_ip: String,
    /// Highest zxid stamped on a reply to this connection, so stamps never go backwards
    /// (clients keep the last one they saw as `lastZxidSeen`).
    pub(crate) stamped_zxid: i64,
}

/// Counters the four-letter words report.
#[derive(Debug, Default, Clone)]
pub struct NodeCounters {
    pub auth_failed: u64,
    pub sessions_expired: u64,
    pub txns_applied: u64,
}

/// One replica's request pipeline over its data tree.
pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) tree: DataTree,
    pub(crate) sessions: SessionTracker,
    pub(crate) conns: HashMap<ConnId, Connection>,
    pub(crate) session_owner: HashMap<i64, ConnId>,
    pub(crate) last_zxid: i64,
    next_reap_ms: i64,
    counters: NodeCounters,
    pub(crate) mode: Mode,
    /// False while an ensemble member has no established leader: clients are refused.
    serving: bool,
    pub(crate) learner: LearnerPipeline,
    /// Standalone with early reads (see [`Node::set_durable_zxid`]): the highest zxid the
    /// shell reports durable. `None`: every reply is stamped with `last_zxid`.
    durable_zxid: Option<i64>,
    /// Zxid of the last txn that changed an ACL (a read's answer depends on ACLs, which
    /// leave no zxid in the stat).
    acl_zxid: i64,
}

impl Node {
    /// A node over `tree` whose last applied txn is `last_zxid` (0 for an empty tree).
    /// Sessions present in the tree are tracked with their full timeout from `now`.
    pub fn new(cfg: NodeConfig, tree: DataTree, last_zxid: i64, now: Now) -> Node {
        let mut sessions = SessionTracker::new(cfg.tick_ms, cfg.server_id, now.mono_ms);
        for (id, timeout) in tree.sessions() {
            sessions.add(id, timeout, now.mono_ms);
        }
        let next_reap_ms = now.mono_ms + cfg.container_check_interval_ms;
        Node {
            cfg,
            tree,
            sessions,
            conns: HashMap::new(),
            session_owner: HashMap::new(),
            last_zxid,
            next_reap_ms,
            counters: NodeCounters::default(),
            mode: Mode::Standalone,
            serving: true,
            learner: LearnerPipeline::default(),
            durable_zxid: None,
            acl_zxid: last_zxid,
        }
    }

    /// Standalone shell: everything up to `zxid` is durable. From the first call on, a read
    /// is stamped with the newest zxid it depends on, raised to this durable zxid and to
    /// the connection's previous stamp (never lower than what the client saw, never an
    /// undurable zxid it did not depend on), so the shell can answer it as soon as that
    /// stamp is durable instead of after every txn applied before it.
    pub fn set_durable_zxid(&mut self, zxid: i64) {
        if self.mode == Mode::Standalone {
            self.durable_zxid = Some(zxid.min(self.last_zxid));
        }
    }

    /// The zxid a standalone read's reply is stamped with (and waits for): the newest of
    /// what it `observed`, the durable zxid, and the connection's last stamp. Without early
    /// reads (or in an ensemble), `last_zxid`, as ZooKeeper's final processor stamps it.
    fn read_stamp(&self, conn: ConnId, observed: i64) -> i64 {
        self.stamp_rule(conn).stamp(observed)
    }

    /// [`Node::read_stamp`]'s inputs, copied out so a read can stamp its reply while it
    /// borrows the tree.
    fn stamp_rule(&self, conn: ConnId) -> StampRule {
        match self.durable_zxid {
            Some(durable) if self.mode == Mode::Standalone => StampRule {
                early: Some((durable, self.conns.get(&conn).map_or(0, |c| c.stamped_zxid))),
                last_zxid: self.last_zxid,
            },
            _ => StampRule {
                early: None,
                last_zxid: self.last_zxid,
            },
        }
    }

    /// getChildren / getChildren2: the reply is encoded from the tree's names directly.
    fn read_children(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        req: &PathWatch,
        with_stat: bool,
        out: &mut Vec<Output>,
    ) {
        let rule = self.stamp_rule(conn);
        let acl_zxid = self.acl_zxid;
        let auth = Self::auth_of(&self.conns, conn);
        let caller = Caller { session_id, auth };
        let result = self.tree.read_children(&caller, req, |stat, names| {
            // What the listing depends on, as `observed_zxid` computes it for a stat.
            let zxid = rule.stamp(stat.mzxid.max(stat.pzxid).max(acl_zxid));
            let body = 4
                + names.iter().map(|n| 4 + n.len()).sum::<usize>()
                + if with_stat { STAT_BYTES } else { 0 };
            let f = frame_sized(FRAME_PREFIX_BYTES + REPLY_HEADER_BYTES + body, |w| {
                ReplyHeader { xid, zxid, err: 0 }.write(w);
                w.write_string_vec(names);
                if with_stat {
                    stat.write(w);
                }
            });
            (zxid, f)
        });
        match result {
            Ok((zxid, frame)) => {
                self.note_stamp(conn, zxid);
                out.push(Output::Send {
                    conn,
                    frame,
                    after: zxid,
                });
            }
            Err(code) => {
                let zxid = rule.stamp(self.last_zxid);
                self.reply_err_zxid(out, conn, xid, zxid, code);
            }
        }
    }

    /// The newest zxid a read's answer depends on. A found node: its mzxid (data, and its
    /// creation) and pzxid (children, cversion, numChildren), and the last ACL change (the
    /// access check). Anything else (errors such as NoNode, whose cause may be a recent
    /// delete; ephemerals and counts over many nodes; multiRead): `last_zxid`.
    fn observed_zxid(&self, result: &Result<Response, ErrorCode>) -> i64 {
        let stat = match result {
            Ok(Response::GetData { stat, .. })
            | Ok(Response::Stat(stat))
            | Ok(Response::GetChildren2 { stat, .. })
            | Ok(Response::GetAcl { stat, .. }) => Some(*stat),
            _ => None,
        };
        match stat {
            Some(st) => st.mzxid.max(st.pzxid).max(self.acl_zxid),
            None => self.last_zxid,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn is_serving(&self) -> bool {
        self.serving
    }

    /// Starts serving in `mode` with `last_zxid` as the zxid clients see (a new leader's is
    /// `newEpoch << 32`). The session tracker restarts from the tree's sessions with their
    /// full timeouts, so no session expires because leadership moved.
    pub fn start_serving(&mut self, mode: Mode, last_zxid: i64, now: Now) {
        self.mode = mode;
        self.serving = true;
        self.last_zxid = last_zxid;
        let mut sessions = SessionTracker::new(self.cfg.tick_ms, self.cfg.server_id, now.mono_ms);
        for (id, timeout) in self.tree.sessions() {
            sessions.add(id, timeout, now.mono_ms);
        }
        self.sessions = sessions;
        self.learner = LearnerPipeline::default();
        self.next_reap_ms = now.mono_ms + self.cfg.container_check_interval_ms;
    }

    /// Stops serving (no quorum): every client connection is closed; sessions stay in the
    /// tree, and their clients reconnect elsewhere.
    pub fn stop_serving(&mut self, out: &mut Vec<Output>) {
        self.serving = false;
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        // Sorted: outputs must not depend on the hash map's (random) order.
        conns.sort_unstable();
        for conn in conns {
            self.drop_connection(conn);
            out.push(Output::Close { conn });
        }
        for pc in self.learner.take_half_open() {
            out.push(Output::Close { conn: pc });
        }
        self.learner = LearnerPipeline::default();
    }

    /// Replaces the tree (a snapshot from the leader, or a reload after truncation).
    pub fn reset_tree(&mut self, tree: DataTree, last_zxid: i64) {
        self.tree = tree;
        self.last_zxid = last_zxid;
    }

    /// Writes this member's membership into `/zookeeper/config`, locally (see
    /// [`DataTree::init_config_node`]).
    pub fn init_config_node(&mut self, text: &Bytes, config_version: i64, wall_ms: i64) {
        self.tree.init_config_node(text, config_version, wall_ms);
    }

    /// Sets the zxid clients see (a new leader starts at `newEpoch << 32`).
    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn sessions(&self) -> &SessionTracker {
        &self.sessions
    }

    pub fn counters(&self) -> &NodeCounters {
        &self.counters
    }

    /// The session a connection is bound to, if any.
    pub fn session_of(&self, conn: ConnId) -> Option<i64> {
        self.conns.get(&conn).map(|c| c.session_id)
    }

    /// Negotiated timeout of a session.
    pub fn session_timeout_ms(&self, session_id: i64) -> Option<i32> {
        self.sessions.timeout_ms(session_id)
    }

    fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        )
    }

    /// Handles the ConnectRequest of a new connection (the shell has already checked it is
    /// the first frame and not a four-letter word).
    pub fn connect(
        &mut self,
        conn: ConnId,
        peer_ip: &str,
        req: &ConnectRequest,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        if !self.serving || req.last_zxid_seen > self.last_zxid {
            // Not serving, or the client has seen a newer state than ours: it must try
            // another server.
            out.push(Output::Close { conn });
            return;
        }
        let timeout_ms = self.negotiate_timeout(req.timeout_ms);
        let session_id = if req.session_id == 0 {
            let id = self.sessions.next_id();
            if self.mode == Mode::Learner {
                // The leader creates it; the handshake completes when that commits here.
                self.learner_create_session(conn, peer_ip, req, id, timeout_ms, out);
                return;
            }
            let hdr = TxnHeader {
                session_id: id,
                cxid: 0,
                zxid: 0,
                time_ms: now.wall_ms,
                op: Txn::CreateSession { timeout_ms }.op().code(),
            };
            self.sessions.add(id, timeout_ms, now.mono_ms);
            let _ = self.commit(hdr, Txn::CreateSession { timeout_ms }, out);
            id
        } else {
            let id = req.session_id;
            // Any other connection of this session is closed before the password is even
            // checked, as ZooKeeper's processConnectRequest does; its watches go with it
            // (a client re-arms them with setWatches).
            if let Some(old) = self.session_owner.get(&id).copied() {
                if old != conn {
                    self.drop_connection(old);
                    out.push(Output::Close { conn: old });
                }
            }
            let password_ok = req.passwd.as_ref() == session_password(id);
            if password_ok && self.mode == Mode::Learner {
                // Only the leader knows whether the session is still alive.
                self.learner_revalidate(conn, peer_ip, req, timeout_ms, out);
                return;
            }
            if !password_ok || !self.sessions.is_live(id) || !self.tree.session_exists(id) {
                send_frame(out, conn, self.last_zxid, |w| {
                    ConnectResponse::invalid(req.read_only).write(w)
                });
                out.push(Output::Close { conn });
                return;
            }
            self.sessions.set_timeout(id, timeout_ms, now.mono_ms);
            id
        };
        self.bind_session(conn, peer_ip, session_id, timeout_ms, req.read_only, out);
    }

    /// Binds `conn` to `session_id` and sends the ConnectResponse.
    pub(crate) fn bind_session(
        &mut self,
        conn: ConnId,
        peer_ip: &str,
        session_id: i64,
        timeout_ms: i32,
        read_only: Option<bool>,
        out: &mut Vec<Output>,
    ) {
        self.conns.insert(
            conn,
            Connection {
                session_id,
                auth: vec![Id::new("ip", peer_ip)],
                peer_ip: peer_ip.to_owned(),
                stamped_zxid: 0,
            },
        );
        self.session_owner.insert(session_id, conn);
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: Bytes::copy_from_slice(&session_password(session_id)),
            read_only: read_only.map(|_| false),
        };
        send_frame(out, conn, self.last_zxid, |w| resp.write(w));
    }

    /// Handles one request frame of an established connection. `decoded` is the body
    /// decoded for `op`.
    pub fn request(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: i32,
        decoded: Result<Request, RequestError>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Some(session_id) = self.conns.get(&conn).map(|c| c.session_id) else {
            out.push(Output::Close { conn });
            return;
        };
        let live = match self.mode {
            // The leader's tracker decides; a learner only relays the activity.
            Mode::Learner => {
                self.learner.touch(&self.sessions, session_id);
                true
            }
            _ => self.sessions.touch(session_id, now.mono_ms),
        };
        if !live {
            // The session expired or is closing while this connection was still open.
            self.reply_err(out, conn, xid, ErrorCode::SessionExpired);
            out.push(Output::Close { conn });
            return;
        }
        let req = match decoded {
            Ok(r) => r,
            Err(RequestError::UnknownOp(_)) => {
                send_frame(out, conn, self.last_zxid, |w| {
                    ReplyHeader {
                        xid,
                        zxid: -1,
                        err: ErrorCode::Unimplemented.code(),
                    }
                    .write(w)
                });
                out.push(Output::Close { conn });
                return;
            }
            Err(RequestError::BadMulti(code))
                if op == OpCode::Multi.code() && self.mode != Mode::Learner =>
            {
                // ZooKeeper fails such a multi in prep: it is logged as an error txn.
                let hdr = self.next_header(session_id, xid, now, OpCode::Error.code());
                let zxid = hdr.zxid;
                let _ = self.commit(hdr, Txn::Error(code), out);
                self.reply_err_zxid(out, conn, xid, zxid, code);
                return;
            }
            Err(RequestError::BadMulti(code)) => {
                // A multiRead is a read: refused without a txn. A learner cannot forward a
                // multi it could not decode, so it answers the leader's error itself.
                self.reply_err(out, conn, xid, code);
                return;
            }
            Err(RequestError::Malformed(_)) => {
                out.push(Output::Close { conn });
                return;
            }
        };
        if self.mode == Mode::Learner {
            self.learner_route(conn, session_id, xid, req, now, out);
        } else {
            self.handle(conn, session_id, xid, req, now, out);
        }
    }

    /// Handles one decoded request of an established connection (every mode; a learner
    /// calls it when the session's earlier writes are done).
    pub(crate) fn handle(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        req: Request,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        match req {
            Request::Ping => {
                // A ping observes nothing: stamped like a read of nothing.
                let zxid = self.read_stamp(conn, 0);
                self.note_stamp(conn, zxid);
                send_frame(out, conn, zxid, |w| {
                    ReplyHeader {
                        xid: XID_PING,
                        zxid,
                        err: 0,
                    }
                    .write(w)
                });
            }
            Request::Auth(ref a) => {
                let (peer_ip, super_digest) = match self.conns.get(&conn) {
                    Some(c) => (c.peer_ip.clone(), self.cfg.super_digest.clone()),
                    None => return,
                };
                match auth::authenticate(
                    &a.scheme,
                    a.auth.as_deref(),
                    &peer_ip,
                    super_digest.as_deref(),
                ) {
                    AuthOutcome::Added(ids) => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            for id in ids {
                                if !c.auth.contains(&id) {
                                    // Keep `ip:` last, as ZooKeeper lists it.
                                    let at = c.auth.len().saturating_sub(1);
                                    c.auth.insert(at, id);
                                }
                            }
                        }
                        let auth = Self::auth_of(&self.conns, conn);
                        // Later watch events are filtered by READ against the new identity.
                        self.tree.set_watcher_auth(session_id, auth);
                        send_frame(out, conn, self.last_zxid, |w| {
                            ReplyHeader {
                                // The reply echoes the request xid (-4 from most clients).
                                xid,
                                zxid: 0,
                                err: 0,
                            }
                            .write(w)
                        });
                    }
                    AuthOutcome::Failed => {
                        self.counters.auth_failed += 1;
                        send_frame(out, conn, self.last_zxid, |w| {
                            ReplyHeader {
                                // The reply echoes the request xid (-4 from most clients).
                                xid,
                                zxid: 0,
                                err: ErrorCode::AuthFailed.code(),
                            }
                            .write(w)
                        });
                        out.push(Output::Close { conn });
                    }
                }
            }
            Request::Sasl { .. } => {
                // No SASL provider is configured: as ZooKeeper without one, fail the exchange.
                self.counters.auth_failed += 1;
                self.reply_err(out, conn, xid, ErrorCode::AuthFailed);
                out.push(Output::Close { conn });
            }
            Request::SetWatches(_)
            | Request::SetWatches2(_)
            | Request::AddWatch(_)
            | Request::CheckWatches(_)
            | Request::RemoveWatches(_) => {
                let auth = Self::auth_of(&self.conns, conn);
                let caller = Caller { session_id, auth };
                let (result, notes) = self.tree.watch_op(&caller, &req, self.last_zxid);
                self.route(notes, out);
                // The reply echoes the request's xid: -8 from the C client, an ordinary
                // xid from the Java client's setWatches2.
                self.reply(out, conn, xid, self.last_zxid, result);
            }
            Request::Sync { ref path } => {
                // Standalone: everything is already applied when the sync is handled.
                let zxid = self.last_zxid;
                self.reply(
                    out,
                    conn,
                    xid,
                    zxid,
                    Ok(Response::Sync { path: path.clone() }),
                );
            }
            Request::WhoAmI => {
                let infos = Self::auth_of(&self.conns, conn)
                    .iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: auth::user_name(id),
                    })
                    .collect();
                self.reply(
                    out,
                    conn,
                    xid,
                    self.last_zxid,
                    Ok(Response::WhoAmI { infos }),
                );
            }
            Request::GetChildren(ref r) => {
                self.read_children(conn, session_id, xid, r, false, out);
            }
            Request::GetChildren2(ref r) => {
                self.read_children(conn, session_id, xid, r, true, out);
            }
            Request::Exists(_)
            | Request::GetData(_)
            | Request::GetAcl { .. }
            | Request::GetAllChildrenNumber { .. }
            | Request::GetEphemerals { .. }
            | Request::MultiRead(_) => {
                let auth = Self::auth_of(&self.conns, conn);
                let caller = Caller { session_id, auth };
                let result = self.tree.read(&caller, &req);
                let zxid = match self.durable_zxid {
                    Some(_) => self.read_stamp(conn, self.observed_zxid(&result)),
                    None => self.last_zxid,
                };
                self.reply(out, conn, xid, zxid, result);
            }
            Request::CloseSession => {
                self.sessions.set_closing(session_id);
                self.write(conn, session_id, xid, &req, now, out);
                self.drop_connection(conn);
                out.push(Output::Close { conn });
            }
            Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::DeleteContainer { .. }
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::Reconfig(_) => {
                self.write(conn, session_id, xid, &req, now, out);
            }
        }
    }

    /// Prep, log and apply one write; replies on `conn`. Returns the txn's zxid.
    fn write(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        req: &Request,
        now: Now,
        out: &mut Vec<Output>,
    ) -> i64 {
        let auth = Self::auth_of(&self.conns, conn);
        let txn = self
            .tree
            .prep(&Caller { session_id, auth }, req, now.wall_ms);
        let hdr = self.next_header(session_id, xid, now, txn.op().code());
        let zxid = hdr.zxid;
        let result = self.commit(hdr, txn, out);
        self.reply(out, conn, xid, zxid, result);
        zxid
    }

    pub(crate) fn next_header(&self, session_id: i64, cxid: i32, now: Now, op: i32) -> TxnHeader {
        TxnHeader {
            session_id,
            cxid,
            zxid: self.last_zxid + 1,
            time_ms: now.wall_ms,
            op,
        }
    }

    /// Assigns the zxid, logs and applies one txn, and routes its notifications.
    pub(crate) fn commit(
        &mut self,
        mut hdr: TxnHeader,
        txn: Txn,
        out: &mut Vec<Output>,
    ) -> Result<Response, ErrorCode> {
        self.last_zxid += 1;
        hdr.zxid = self.last_zxid;
        let applied = self.tree.apply(&hdr, &txn);
        self.counters.txns_applied += 1;
        if changes_acl(&txn) {
            self.acl_zxid = hdr.zxid;
        }
        if let Txn::CloseSession { .. } = txn {
            self.sessions.remove(hdr.session_id);
        }
        let digest = match txn {
            Txn::Error(_) => None,
            _ => Some(TxnDigest {
                version: TxnDigest::VERSION,
                tree_digest: self.tree.digest(),
            }),
        };
        out.push(Output::Append(TxnEntry {
            header: hdr,
            txn,
            digest,
        }));
        self.route(applied.notifications, out);
        applied.result
    }

    /// Emits each notification to its session's connection. One txn fires the same event
    /// (type and path) for many watchers, and the tree lists them together: such a run is
    /// encoded once and its frame shared (a reference count, not a copy, per watcher).
    pub(crate) fn route(&self, notes: Vec<WatchNotification>, out: &mut Vec<Output>) {
        let mut prev: Option<(EventType, String, Bytes)> = None;
        for n in notes {
            let Some(&conn) = self.session_owner.get(&n.session_id) else {
                continue;
            };
            let frame = match &prev {
                Some((t, p, f)) if *t == n.event_type && *p == n.path => f.clone(),
                _ => {
                    // ZooKeeper 3.8 sends -1 as the zxid of a notification (3.9 sends the
                    // txn's).
                    let event = WatcherEvent {
                        event_type: n.event_type.code(),
                        state: KeeperState::SyncConnected.code(),
                        path: n.path,
                    };
                    let f = frame(|w| {
                        ReplyHeader {
                            xid: XID_NOTIFICATION,
                            zxid: NOTIFICATION_ZXID,
                            err: 0,
                        }
                        .write(w);
                        event.write(w);
                    });
                    prev = Some((n.event_type, event.path, f.clone()));
                    f
                }
            };
            // Depends on the txn just applied (or, for SetWatches, on the state it compared).
            out.push(Output::Send {
                conn,
                frame,
                after: self.last_zxid,
            });
        }
    }

    /// Borrows only `conns`, so callers can use the tree mutably at the same time
    /// (no copy of the id list per request).
    pub(crate) fn auth_of(conns: &HashMap<ConnId, Connection>, conn: ConnId) -> &[Id] {
        conns.get(&conn).map_or(&[], |c| c.auth.as_slice())
    }

    pub(crate) fn reply(
        &mut self,
        out: &mut Vec<Output>,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        result: Result<Response, ErrorCode>,
    ) {
        self.note_stamp(conn, zxid);
        match result {
            Ok(resp) => {
                // Sized once: the header plus the body's size hint, so a reply is built
                // without growing its buffer.
                let bytes = FRAME_PREFIX_BYTES + REPLY_HEADER_BYTES + resp.encoded_len_hint();
                out.push(Output::Send {
                    conn,
                    frame: frame_sized(bytes, |w| {
                        ReplyHeader { xid, zxid, err: 0 }.write(w);
                        resp.encode(w);
                    }),
                    after: zxid,
                });
            }
            Err(code) => self.reply_err_zxid(out, conn, xid, zxid, code),
        }
    }

    /// Remembers the zxid stamped on a reply to `conn` (only early reads need it).
    fn note_stamp(&mut self, conn: ConnId, zxid: i64) {
        if self.durable_zxid.is_some() {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.stamped_zxid = c.stamped_zxid.max(zxid);
            }
        }
    }

    pub(crate) fn reply_err(
        &mut self,
        out: &mut Vec<Output>,
        conn: ConnId,
        xid: i32,
        code: ErrorCode,
    ) {
        self.reply_err_zxid(out, conn, xid, self.last_zxid, code);
    }

    pub(crate) fn reply_err_zxid(
        &mut self,
        out: &mut Vec<Output>,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        code: ErrorCode,
    ) {
        self.note_stamp(conn, zxid);
        send_frame(out, conn, zxid, |w| {
            ReplyHeader {
                xid,
                zxid,
                err: code.code(),
            }
            .write(w)
        });
    }

    /// The shell reports a closed connection (by the peer, by an error, or after a Close).
    pub fn disconnected(&mut self, conn: ConnId) {
        self.learner.forget_conn(conn);
        self.drop_connection(conn);
    }

    pub(crate) fn drop_connection(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if self.session_owner.get(&c.session_id) == Some(&conn) {
                self.session_owner.remove(&c.session_id);
                self.tree.remove_watches_of(c.session_id);
            }
        }
    }

    /// Expires sessions whose time has come and reaps containers and TTL nodes when due.
    pub fn tick(&mut self, now: Now, out: &mut Vec<Output>) {
        if !self.serving || self.mode == Mode::Learner {
            // Only the leader (or a standalone server) expires sessions and reaps nodes.
            return;
        }
        for session_id in self
            .sessions
            .take_expired(now.mono_ms, SESSIONS_EXPIRED_PER_TICK_MAX)
        {
            self.counters.sessions_expired += 1;
            let auth: &[Id] = &[auth::super_id()];
            let txn = self.tree.prep(
                &Caller { session_id, auth },
                &Request::CloseSession,
                now.wall_ms,
            );
            let hdr = TxnHeader {
                session_id,
                cxid: 0,
                zxid: 0,
                time_ms: now.wall_ms,
                op: txn.op().code(),
            };
            let _ = self.commit(hdr, txn, out);
            if let Some(conn) = self.session_owner.get(&session_id).copied() {
                self.drop_connection(conn);
                out.push(Output::Close { conn });
            }
        }
        if now.mono_ms >= self.next_reap_ms {
            self.next_reap_ms = now.mono_ms + self.cfg.container_check_interval_ms;
            self.reap(now, out);
        }
    }

    /// The container manager: deletes empty containers and expired TTL nodes, at most
    /// `container_max_per_minute` per pass.
    fn reap(&mut self, now: Now, out: &mut Vec<Output>) {
        let due = self
            .tree
            .reapable_nodes(now.wall_ms, self.cfg.container_max_never_used_ms);
        for path in due.into_iter().take(self.cfg.container_max_per_minute) {
            let auth: &[Id] = &[auth::super_id()];
            let req = Request::DeleteContainer { path };
            let txn = self.tree.prep(
                &Caller {
                    session_id: 0,
                    auth,
                },
                &req,
                now.wall_ms,
            );
            if let Txn::Error(_) = txn {
                // Raced with a client (a child appeared or it was deleted): nothing to log.
                continue;
            }
            let hdr = TxnHeader {
                session_id: 0,
                cxid: 0,
                zxid: 0,
                time_ms: now.wall_ms,
                op: txn.op().code(),
            };
            let _ = self.commit(hdr, txn, out);
        }
    }

    /// Connections bound to sessions, for `cons`/`dump`: (conn, session id).
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, i64)> + '_ {
        self.conns.iter().map(|(c, s)| (*c, s.session_id))
    }

    pub fn check_invariants(&self) {
        self.sessions.check_invariants();
        self.tree.check_invariants();
        for (sid, conn) in &self.session_owner {
            let c = self
                .conns
                .get(conn)
                .unwrap_or_else(|| panic!("owner {conn} of session {sid:#x} has no connection"));
            assert_eq!(
                c.session_id, *sid,
                "connection {conn} bound to another session"
            );
        }
    }
}

/// How a standalone read's reply is stamped (see [`Node::set_durable_zxid`]).
#[derive(Debug, Clone, Copy)]
struct StampRule {
    /// With early reads: (durable zxid, the connection's last stamp).
    early: Option<(i64, i64)>,
    last_zxid: i64,
}

impl StampRule {
    /// The stamp of a reply that depends on `observed`: never below what it observed or
    /// what the connection saw, never an undurable zxid it does not depend on.
    fn stamp(&self, observed: i64) -> i64 {
        match self.early {
            Some((durable, prev)) => observed.max(durable).max(prev).min(self.last_zxid),
            None => self.last_zxid,
        }
    }
}

/// The zxid ZooKeeper 3.8 puts in a notification's ReplyHeader.
pub const NOTIFICATION_ZXID: i64 = -1;

/// Whether a txn changes an ACL (which a read's access check depends on).
fn changes_acl(txn: &Txn) -> bool {
    match txn {
        Txn::SetAcl { .. } => true,
        Txn::Multi(txns) => txns.iter().any(changes_acl),
        _ => false,
    }
}

/// Emits a frame that may go once `after` is released (see [`Output::Send`]).
pub(crate) fn send_frame(
    out: &mut Vec<Output>,
    conn: ConnId,
    after: i64,
    body: impl FnOnce(&mut Writer),
) {
    out.push(Output::Send {
        conn,
        frame: frame(body),
        after,
    });
}

/// Bytes of a frame's length prefix.
const FRAME_PREFIX_BYTES: usize = 4;

/// Bytes of a ReplyHeader (xid, zxid, err).
const REPLY_HEADER_BYTES: usize = 16;

/// Initial buffer of a frame with no size hint: enough for headers, events and
/// handshakes.
const FRAME_DEFAULT_BYTES: usize = 64;

/// Builds a length-prefixed frame.
pub fn frame(body: impl FnOnce(&mut Writer)) -> Bytes {
    frame_sized(FRAME_DEFAULT_BYTES, body)
}

/// Builds a length-prefixed frame in a buffer of `bytes` to start with.
pub fn frame_sized(bytes: usize, body: impl FnOnce(&mut Writer)) -> Bytes {
    let mut w = Writer::with_capacity(bytes);
    w.write_i32(0);
    body(&mut w);
    let len = (w.len() - 4) as i32;
    w.patch_i32(0, len);
    w.into_bytes()
}

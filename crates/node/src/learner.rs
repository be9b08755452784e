//! The request pipeline of an ensemble member: a learner's forwarding and commit path, and
//! the leader's side of forwarded requests, revalidation and session touches.
//!
//! **Learner** (ZooKeeper's `FollowerRequestProcessor` + `CommitProcessor`): writes,
//! `sync` and session create/close go to the leader ([`Output::Forward`]); everything else
//! is served from the local tree. A session's requests are answered strictly in order: once
//! a session has a forwarded request outstanding, its later requests wait in its queue
//! until the commit (or SYNC) that answers it arrives, so a read after a write sees the
//! write. Sessions of other clients are not held up.
//!
//! **Session activity** on a learner is only recorded ([`LearnerPipeline::take_touches`])
//! and relayed to the leader in PING replies; the leader's tracker alone expires sessions.
//!
//! Invariants: a session's queue is non-empty only while its head is a forwarded request
//! waiting for the leader; `syncs` lists the sessions with a forwarded `sync`, in the order
//! they were sent.

use crate::node::{send_frame, ConnId, Node, Now, Output};
use corral_proto::quorum::{LearnerRequest, RevalidateReply, SessionTouch};
use corral_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, Id, OpCode, Record, Request, RequestError,
    Response, Txn, TxnEntry, Writer,
};
use corral_tree::Caller;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A request waiting its turn on a learner.
#[derive(Debug)]
struct Queued {
    conn: ConnId,
    xid: i32,
    req: Request,
    /// Sent to the leader; answered by its commit (matched by xid) or by SYNC.
    forwarded: bool,
}

/// A connection whose handshake waits for the leader.
#[derive(Debug, Clone)]
struct HalfOpen {
    conn: ConnId,
    peer_ip: String,
    timeout_ms: i32,
    read_only: Option<bool>,
}

impl HalfOpen {
    fn new(conn: ConnId, peer_ip: &str, req: &ConnectRequest, timeout_ms: i32) -> HalfOpen {
        HalfOpen {
            conn,
            peer_ip: peer_ip.to_owned(),
            timeout_ms,
            read_only: req.read_only,
        }
    }
}

/// Learner-side bookkeeping (empty on a leader or standalone server).
#[derive(Debug, Default)]
pub struct LearnerPipeline {
    queues: HashMap<i64, VecDeque<Queued>>,
    /// New sessions whose createSession was forwarded, by session id.
    creating: HashMap<i64, HalfOpen>,
    /// Reconnecting sessions waiting for REVALIDATE's answer.
    revalidating: HashMap<i64, HalfOpen>,
    /// Sessions with a forwarded `sync`, oldest first.
    syncs: VecDeque<i64>,
    /// Sessions seen active since the last PING reply, with their timeouts.
    touched: BTreeMap<i64, i32>,
}

impl LearnerPipeline {
    /// Session activity to relay in the next PING reply.
    pub fn take_touches(&mut self) -> Vec<SessionTouch> {
        std::mem::take(&mut self.touched)
            .into_iter()
            .map(|(session_id, timeout_ms)| SessionTouch {
                session_id,
                timeout_ms,
            })
            .collect()
    }

    pub(crate) fn forget_conn(&mut self, conn: ConnId) {
        self.creating.retain(|_, h| h.conn != conn);
        self.revalidating.retain(|_, h| h.conn != conn);
    }

    pub(crate) fn take_half_open(&mut self) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .creating
            .drain()
            .chain(self.revalidating.drain())
            .map(|(_, h)| h.conn)
            .collect();
        // Sorted: outputs must not depend on the hash maps' (random) order.
        conns.sort_unstable();
        conns
    }

    /// Records activity of a session, with the timeout this member knows for it.
    pub(crate) fn touch(&mut self, sessions: &crate::session::SessionTracker, session_id: i64) {
        let timeout_ms = sessions.timeout_ms(session_id).unwrap_or(0);
        self.touched.insert(session_id, timeout_ms);
    }

    fn touch_with(&mut self, session_id: i64, timeout_ms: i32) {
        self.touched.insert(session_id, timeout_ms);
    }
}

/// Writes (with session close), and `sync`: what must go through the leader.
fn is_forwarded(req: &Request) -> bool {
    req.op().is_write() || matches!(req, Request::Sync { .. })
}

impl Node {
    /// Learner: a new session, created by the leader; the handshake completes when its
    /// createSession commits here ([`Node::apply_committed`]).
    pub(crate) fn learner_create_session(
        &mut self,
        conn: ConnId,
        peer_ip: &str,
        req: &ConnectRequest,
        session_id: i64,
        timeout_ms: i32,
        out: &mut Vec<Output>,
    ) {
        let mut body = Writer::with_capacity(4);
        body.write_i32(timeout_ms);
        self.learner
            .creating
            .insert(session_id, HalfOpen::new(conn, peer_ip, req, timeout_ms));
        out.push(Output::Forward {
            request: LearnerRequest {
                session_id,
                cxid: 0,
                op: OpCode::CreateSession.code(),
                body: body.into_bytes(),
            },
            auth: Vec::new(),
        });
    }

    /// Learner: a returning session (password already checked); the leader says whether
    /// it is still alive ([`Node::revalidated`]).
    pub(crate) fn learner_revalidate(
        &mut self,
        conn: ConnId,
        peer_ip: &str,
        req: &ConnectRequest,
        timeout_ms: i32,
        out: &mut Vec<Output>,
    ) {
        self.learner.revalidating.insert(
            req.session_id,
            HalfOpen::new(conn, peer_ip, req, timeout_ms),
        );
        out.push(Output::Revalidate {
            session_id: req.session_id,
            timeout_ms,
        });
    }

    /// Learner: the leader answered a REVALIDATE.
    pub fn revalidated(&mut self, reply: RevalidateReply, now: Now, out: &mut Vec<Output>) {
        let Some(half) = self.learner.revalidating.remove(&reply.session_id) else {
            return;
        };
        if reply.valid && self.tree.session_exists(reply.session_id) {
            self.sessions
                .add(reply.session_id, half.timeout_ms, now.mono_ms);
            self.learner.touch_with(reply.session_id, half.timeout_ms);
            self.bind_session(
                half.conn,
                &half.peer_ip,
                reply.session_id,
                half.timeout_ms,
                half.read_only,
                out,
            );
        } else {
            send_frame(out, half.conn, self.last_zxid, |w| {
                ConnectResponse::invalid(half.read_only).write(w)
            });
            out.push(Output::Close { conn: half.conn });
        }
    }

    /// Learner: one decoded request of an established connection: answered here, queued
    /// behind the session's pending forwarded request, or forwarded.
    pub(crate) fn learner_route(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        req: Request,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        // Pings and auth are answered at once, as ZooKeeper's connection layer does (auth
        // must apply to later forwarded writes).
        if matches!(req, Request::Ping | Request::Auth(_) | Request::Sasl { .. }) {
            self.handle(conn, session_id, xid, req, now, out);
            return;
        }
        let busy = self
            .learner
            .queues
            .get(&session_id)
            .is_some_and(|q| !q.is_empty());
        let forwarded = is_forwarded(&req);
        if forwarded {
            self.forward(conn, session_id, xid, &req, out);
        }
        if forwarded || busy {
            self.learner
                .queues
                .entry(session_id)
                .or_default()
                .push_back(Queued {
                    conn,
                    xid,
                    req,
                    forwarded,
                });
        } else {
            self.handle(conn, session_id, xid, req, now, out);
        }
    }

    fn forward(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        req: &Request,
        out: &mut Vec<Output>,
    ) {
        let mut body = Writer::with_capacity(64);
        req.encode_body(&mut body);
        if let Request::Sync { .. } = req {
            self.learner.syncs.push_back(session_id);
        }
        if let Request::CloseSession = req {
            self.sessions.set_closing(session_id);
        }
        out.push(Output::Forward {
            request: LearnerRequest {
                session_id,
                cxid: xid,
                op: req.op().code(),
                body: body.into_bytes(),
            },
            auth: Self::auth_of(&self.conns, conn).to_vec(),
        });
    }

    /// Learner: applies a txn the leader committed (or, when leaving an epoch, one this
    /// learner logged), answers the local client that sent it, and releases that
    /// session's queued requests.
    pub fn apply_committed(&mut self, entry: &TxnEntry, now: Now, out: &mut Vec<Output>) {
        let hdr = &entry.header;
        let applied = self.tree.apply(hdr, &entry.txn);
        self.last_zxid = hdr.zxid;
        let session_id = hdr.session_id;
        match entry.txn {
            Txn::CreateSession { timeout_ms } => {
                self.sessions.add(session_id, timeout_ms, now.mono_ms);
            }
            Txn::CloseSession { .. } => self.sessions.remove(session_id),
            _ => {}
        }
        self.route(applied.notifications, out);
        if let Txn::CreateSession { .. } = entry.txn {
            if let Some(half) = self.learner.creating.remove(&session_id) {
                self.learner.touch_with(session_id, half.timeout_ms);
                self.bind_session(
                    half.conn,
                    &half.peer_ip,
                    session_id,
                    half.timeout_ms,
                    half.read_only,
                    out,
                );
            }
            return;
        }
        let head_matches = self
            .learner
            .queues
            .get(&session_id)
            .and_then(|q| q.front())
            .is_some_and(|h| {
                h.forwarded && h.xid == hdr.cxid && !matches!(h.req, Request::Sync { .. })
            });
        if head_matches {
            let q = self.learner.queues.get_mut(&session_id).expect("checked");
            let head = q.pop_front().expect("checked");
            self.reply(out, head.conn, head.xid, hdr.zxid, applied.result);
            if let Request::CloseSession = head.req {
                self.learner.queues.remove(&session_id);
                self.drop_connection(head.conn);
                out.push(Output::Close { conn: head.conn });
                return;
            }
            self.drain(session_id, now, out);
        } else if let Txn::CloseSession { .. } = entry.txn {
            // Expired by the leader (or closed through another server): drop the client.
            self.learner.queues.remove(&session_id);
            if let Some(conn) = self.session_owner.get(&session_id).copied() {
                self.drop_connection(conn);
                out.push(Output::Close { conn });
            }
        }
    }

    /// Learner: the leader's SYNC answers the oldest forwarded `sync`.
    pub fn sync_done(&mut self, now: Now, out: &mut Vec<Output>) {
        let Some(session_id) = self.learner.syncs.pop_front() else {
            return;
        };
        let Some(q) = self.learner.queues.get_mut(&session_id) else {
            return;
        };
        let Some(pos) = q
            .iter()
            .position(|h| h.forwarded && matches!(h.req, Request::Sync { .. }))
        else {
            return;
        };
        // Earlier forwarded writes of the session were committed before the SYNC arrived
        // (the leader sends them in order), so the sync is at the head.
        let head = q.remove(pos).expect("position is valid");
        if let Request::Sync { path } = head.req {
            let zxid = self.last_zxid;
            self.reply(out, head.conn, head.xid, zxid, Ok(Response::Sync { path }));
        }
        self.drain(session_id, now, out);
    }

    /// Serves a session's queued local requests up to its next forwarded one.
    fn drain(&mut self, session_id: i64, now: Now, out: &mut Vec<Output>) {
        loop {
            let Some(q) = self.learner.queues.get_mut(&session_id) else {
                return;
            };
            match q.front() {
                None => {
                    self.learner.queues.remove(&session_id);
                    return;
                }
                Some(h) if h.forwarded => return,
                Some(_) => {
                    let h = q.pop_front().expect("front exists");
                    self.handle(h.conn, session_id, h.xid, h.req, now, out);
                }
            }
        }
    }

    /// Learner: session activity to relay in the next PING reply.
    pub fn take_touches(&mut self) -> Vec<SessionTouch> {
        self.learner.take_touches()
    }

    // ---- the leader's side ----------------------------------------------------------

    /// Leader: a request a learner forwarded (REQUEST). It is prepared and proposed like a
    /// local write; the learner that holds the client answers it on commit.
    pub fn forwarded_request(
        &mut self,
        request: &LearnerRequest,
        auth: &[Id],
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let session_id = request.session_id;
        let op = request.op;
        if op == OpCode::CreateSession.code() {
            let timeout_ms = match request.body.get(..4) {
                Some(b) => i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                None => return,
            };
            self.sessions.add(session_id, timeout_ms, now.mono_ms);
            let hdr = self.next_header(session_id, 0, now, OpCode::CreateSession.code());
            let _ = self.commit(hdr, Txn::CreateSession { timeout_ms }, out);
            return;
        }
        let mut r = corral_proto::Reader::from_slice(&request.body);
        let decoded = Request::decode(op, &mut r);
        let txn = match decoded {
            _ if op != OpCode::CloseSession.code()
                && !self.sessions.touch(session_id, now.mono_ms) =>
            {
                Txn::Error(ErrorCode::SessionExpired)
            }
            Ok(req) => {
                if let Request::CloseSession = req {
                    self.sessions.set_closing(session_id);
                }
                self.tree
                    .prep(&Caller { session_id, auth }, &req, now.wall_ms)
            }
            Err(RequestError::BadMulti(code)) => Txn::Error(code),
            Err(_) => Txn::Error(ErrorCode::MarshallingError),
        };
        let hdr = self.next_header(session_id, request.cxid, now, txn.op().code());
        let _ = self.commit(hdr, txn, out);
    }

    /// Leader: may `session_id` reconnect on a learner? Touches it if so.
    pub fn revalidate(&mut self, session_id: i64, timeout_ms: i32, now: Now) -> bool {
        if !self.sessions.is_live(session_id) || !self.tree.session_exists(session_id) {
            return false;
        }
        self.sessions
            .set_timeout(session_id, timeout_ms, now.mono_ms);
        true
    }

    /// Leader: session activity a learner relayed.
    pub fn touch_sessions(&mut self, touches: &[SessionTouch], now: Now) {
        for t in touches {
            self.sessions.touch(t.session_id, now.mono_ms);
        }
    }
}

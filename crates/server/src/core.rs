//! The core task: the one owner of the [`Node`] state machine.
//!
//! Connection tasks decode frames and send [`CoreMsg`]s over one bounded channel; the core
//! handles them strictly in arrival order, one at a time, and carries out the node's
//! [`Output`]s in order (frames to per-connection writer queues, closes). Because every
//! request of a connection passes through this single queue, per-connection order and
//! "notification before any later reply" hold by construction.
//!
//! Backpressure: the channel holds at most `globalOutstandingLimit` messages; when it is
//! full, connection tasks wait on `send`, stop reading their sockets, and TCP pushes back on
//! the clients — memory stays bounded, no error is returned (as ZooKeeper throttles). The
//! core itself stops taking requests while more than [`HELD_OUTPUTS_MAX`] outputs wait
//! for the disk.
//!
//! Durability: the node applies a txn at once but its effects must not be seen before the
//! txn is on disk. Every [`Output::Append`] (an ensemble member's [`ReplicaOutput::Log`])
//! goes to the txn log: to the log thread, or, when the core is otherwise idle, written
//! and synced by the core itself (below).
//! * Standalone: each frame carries the zxid it depends on (`after`: a write's own zxid,
//!   the newest zxid a read observed, the txn that fired a notification), raised to the
//!   previous need of its connection (FIFO). It goes at once if that is durable, else
//!   into the [`ReleaseGate`], which the log thread drains after each sync. A read of
//!   another session's unsynced write waits for it; a read of settled data does not wait
//!   for unrelated fsyncs. Reads are stamped with a durable zxid (the node is told the
//!   durable watermark before each request), closes wait for everything appended.
//! * Ensemble: every frame or close emitted after an append is held, in order, until the
//!   replica releases that zxid (committed by a quorum). The per-frame rule is not used
//!   here: a learner applies committed txns it may not have synced yet, a leader's
//!   release comes from the replica rather than the log thread, and the node would need
//!   a "committed and applied here" watermark to stamp reads with; the simulator checks
//!   the ensemble shell with this global hold.
//!
//! Either way nobody sees a state, or a zxid, that a crash could take back.
//!
//! Inline sync: the appends of the messages handled in one wake-up are
//! collected, and at the end of the wake-up written in one go. When the core's inbound
//! channel is empty and the log thread has nothing queued or in progress, the core
//! appends and syncs them itself, then advances the gate itself: the held replies go to
//! writer tasks woken from this worker thread, so a serial write costs no cross-thread
//! wake-up (core to log thread, log thread to a writer). Otherwise they go to the log
//! thread, which batches them with whatever follows (group commit). The gate and its
//! watermarks work the same either way: replies are held until their zxid is synced,
//! reads are stamped with the gate's durable zxid. `durable` explains why the log
//! order and the gate's single advancer are kept, and how failures latch.
//!
//! Inline sync, ensemble: a member defers its [`ReplicaOutput::Log`] appends the same
//! way. Only the disk write moves: the `hold` bookkeeping (client output from there on
//! waits for that zxid's Release) is done when the output is carried out, as before.
//! Idle also requires the quorum's event sources to be empty; a wake-up for a quorum
//! packet takes every socket event already queued (at most [`CORE_BATCH_MAX`]), so
//! proposals that arrive together share one sync, inline or on the log thread (without
//! it, a follower under load synced one proposal per wake-up). After an inline sync the
//! core calls [`Replica::durable`] itself and carries out what follows, so a follower's
//! ACK, or a leader's own ack and the commit it completes, leaves without the log
//! thread's round trip. Why it is safe:
//! * the replica hears that a zxid is durable only after a sync that covered it returned,
//!   on whichever thread; a log-thread report that arrives after a later inline one is a
//!   no-op (`durable` is monotone: a learner keeps the maximum, a leader's acks cover
//!   everything up to the zxid);
//! * whatever else talks to the log or the data directory (a TRUNC or SNAP truncation,
//!   a snapshot start, an epoch file, a leader's read of its log, shutdown) first hands
//!   the deferred appends to the log thread ([`Core::flush_deferred`]): the log thread
//!   gets its commands in the same order as before, and the inline write happens only
//!   when it has none left;
//! * the wake-up's packets (a leader's proposals) are queued to their writer tasks while
//!   its outputs are carried out, before the sync; if any writer was woken, the core
//!   yields once before syncing, because the last task woken waits in this worker's
//!   LIFO slot, which other workers do not steal, and would otherwise go out only after
//!   the sync;
//! * a failed inline write latches the server out ([`Core::fail`]) as a log-thread
//!   failure does.
//!
//! The cost is the standalone one: packets and requests that arrive during an inline
//! sync (on a leader, the learners' ACKs) wait for it, at most one sync; ones already
//! queued send the appends to the log thread instead.
//!
//! Trade-off: an inline fdatasync blocks the core, and the tokio worker it runs on, for
//! its duration. It is only taken when nothing was queued for the core, so a request
//! arriving meanwhile waits for at most that one sync (reads included, which the log
//! thread path would have answered meanwhile). Under concurrent load the two paths
//! alternate: a wake-up that leaves messages queued, or finds the log thread busy, hands
//! its appends to the log thread, which then syncs while the core goes on. (With the
//! bench's 8 sessions x 16 in flight, between a quarter and two thirds of the syncs were
//! inline; throughput held, and CPU per op fell.) A slow disk therefore delays requests
//! that arrive during an inline sync, as it does in ZooKeeper's standalone pipeline,
//! whose SyncRequestProcessor thread takes no request, read or ping, while it flushes.

use crate::durable::{self, LogCmd, LogEvent, LogHandle, PendingAppend};
use crate::fourlw;
use crate::gate::ReleaseGate;
use crate::settings::ServerSettings;
use crate::stats::{ConnStats, ServerStats};
use bytes::Bytes;
use corral_node::replica::{Replica, ReplicaOutput};
use corral_node::{ConnId, Node, Now, Output};
use corral_proto::{ConnectRequest, Request, RequestError};
use corral_storage::fs::FileSystem;
use corral_storage::layout::DataDirs;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// What a connection's writer is told to do.
#[derive(Debug)]
pub enum ConnOut {
    Frame(Bytes),
    /// Flush what is queued, then close the socket.
    Close,
}

pub type ConnSender = mpsc::UnboundedSender<ConnOut>;

/// Messages from connection tasks (and the four-letter-word handler) to the core.
pub enum CoreMsg {
    Connect {
        conn: ConnId,
        peer_ip: String,
        req: ConnectRequest,
        out: ConnSender,
        stats: Arc<ConnStats>,
    },
    /// The requests decoded from one socket read (at most [`REQUESTS_PER_MSG_MAX`]), in
    /// order: one message and one core wake-up for a pipelined burst.
    Requests {
        conn: ConnId,
        reqs: Vec<RequestIn>,
        received: Instant,
    },
    Disconnected {
        conn: ConnId,
    },
    FourLetter {
        cmd: String,
        reply: oneshot::Sender<String>,
    },
}

/// One decoded request frame.
pub struct RequestIn {
    pub xid: i32,
    pub op: i32,
    pub decoded: Result<Request, RequestError>,
}

/// Most requests a connection puts in one [`CoreMsg::Requests`]. With the channel's bound
/// of `globalOutstandingLimit` messages, at most that many times this many requests wait.
pub const REQUESTS_PER_MSG_MAX: usize = 64;

/// How often the core looks for expired sessions and due reaper passes. Session buckets are
/// a tick wide, so this only needs to be well below `tickTime`.
pub const CORE_TICK_INTERVAL_MS: u64 = 50;

/// Messages handled per wake-up before the core looks at its timer again.
const CORE_BATCH_MAX: usize = 256;

/// Longest a graceful stop waits for a snapshot in progress to finish (it is abandoned,
/// harmlessly, after that: the log still holds everything it would have).
pub const SHUTDOWN_SNAPSHOT_WAIT_MS: u64 = 30_000;

/// Outputs waiting for the disk before the core stops taking new requests.
pub const HELD_OUTPUTS_MAX: usize = 64 * 1024;

/// Monotonic and wall clocks, read only here, at the edge.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall_ms: i64,
}

impl Clock {
    pub fn new() -> Clock {
        let start_wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            start: Instant::now(),
            start_wall_ms,
        }
    }

    pub fn now(&self) -> Now {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        // Monotonic, but anchored at the wall clock of start-up so session ids differ
        // across restarts.
        Now {
            mono_ms: self.start_wall_ms + self.start.elapsed().as_millis() as i64,
            wall_ms,
        }
    }

    pub fn wall_ms(&self) -> i64 {
        self.now().wall_ms
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

pub(crate) struct ConnHandle {
    out: ConnSender,
    stats: Arc<ConnStats>,
    /// Standalone: the need of the last frame given to this connection; later frames
    /// need at least as much, so none overtakes a held one.
    last_need: i64,
}

/// The core's handles on durable storage.
pub struct Storage {
    pub fs: Arc<dyn FileSystem>,
    pub dirs: DataDirs,
    pub log: LogHandle,
    pub events: mpsc::UnboundedReceiver<LogEvent>,
    /// For the snapshot thread's reports.
    pub events_tx: mpsc::UnboundedSender<LogEvent>,
    /// The last zxid on disk when the core starts.
    pub durable_zxid: i64,
    /// Standalone: the gate the log thread releases durable output through.
    pub gate: Option<Arc<ReleaseGate>>,
}

/// What the core drives: a standalone pipeline, or an ensemble member.
pub enum Engine {
    Standalone(Box<Node>),
    Ensemble(Box<Replica>),
}

/// The core task's state.
pub struct Core {
    pub(crate) engine: Engine,
    pub settings: Arc<ServerSettings>,
    pub stats: Arc<ServerStats>,
    pub(crate) clock: Clock,
    pub(crate) conns: HashMap<ConnId, ConnHandle>,
    outputs: Vec<Output>,
    pub(crate) routputs: Vec<ReplicaOutput>,
    pub(crate) storage: Storage,
    /// Highest zxid appended (deferred, handed to the log thread, or written inline).
    pub(crate) appended_zxid: i64,
    /// Highest zxid reported on disk by the log thread or written inline.
    durable_zxid: i64,
    /// The appends of this wake-up, written at its end by [`Core::write_appends`], in
    /// zxid order; handed to the log thread first by [`Core::flush_deferred`] wherever
    /// the core talks to the log (or the data directory) otherwise.
    pub(crate) deferred: Vec<PendingAppend>,
    /// Ensemble: this wake-up handed something to a peer's or a connection's writer task.
    pub(crate) woke_writers: bool,
    /// Highest zxid whose dependent output may go: on disk (standalone), or committed by a
    /// quorum (ensemble leader).
    pub(crate) released_zxid: i64,
    /// Frames and closes waiting for `released_zxid` to reach their zxid, in order.
    pub(crate) held: VecDeque<(i64, Output)>,
    snapshot_running: bool,
    /// Set when the log failed: the message, for whoever waits on the server.
    failed: watch::Sender<Option<String>>,
    /// The ensemble's sockets and election (None when standalone).
    pub(crate) quorum: Option<crate::ensemble::QuorumShell>,
}

impl Core {
    pub fn new(
        engine: Engine,
        settings: Arc<ServerSettings>,
        stats: Arc<ServerStats>,
        clock: Clock,
        storage: Storage,
        failed: watch::Sender<Option<String>>,
    ) -> Core {
        let durable_zxid = storage.durable_zxid;
        Core {
            engine,
            settings,
            stats,
            clock,
            conns: HashMap::new(),
            outputs: Vec::new(),
            routputs: Vec::new(),
            storage,
            appended_zxid: durable_zxid,
            durable_zxid,
            released_zxid: durable_zxid,
            held: VecDeque::new(),
            deferred: Vec::new(),
            woke_writers: false,
            snapshot_running: false,
            failed,
            quorum: None,
        }
    }

    /// Attaches the ensemble's sockets and election (before [`Core::run`]).
    pub fn with_quorum(mut self, q: crate::ensemble::QuorumShell) -> Core {
        self.quorum = Some(q);
        self
    }

    /// Outputs to carry out when the core starts (a member's first election).
    pub fn routputs_extend(&mut self, outs: Vec<ReplicaOutput>) {
        self.routputs.extend(outs);
    }

    /// Latches the server out of service: the message goes to whoever waits on it.
    pub(crate) fn fail(&mut self, msg: String) {
        tracing::error!("this server stops serving: {msg}");
        self.held.clear();
        if let Some(g) = &self.storage.gate {
            g.clear();
        }
        for (_, h) in self.conns.drain() {
            let _ = h.out.send(ConnOut::Close);
        }
        let _ = self.failed.send(Some(msg));
    }

    /// Output waiting for the disk or a commit.
    pub(crate) fn held_len(&self) -> usize {
        self.held.len() + self.storage.gate.as_ref().map_or(0, |g| g.held_len())
    }

    /// The request pipeline (standalone, or the member's).
    pub fn node(&self) -> &Node {
        match &self.engine {
            Engine::Standalone(n) => n.as_ref(),
            Engine::Ensemble(r) => r.node(),
        }
    }

    /// Runs until `shutdown` flips to true, every sender is gone, or the log fails.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<CoreMsg>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(Duration::from_millis(CORE_TICK_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(CORE_BATCH_MAX);
        self.flush_replica();
        self.flush_deferred();
        loop {
            self.woke_writers = false;
            let accepting = self.held_len() < HELD_OUTPUTS_MAX;
            tokio::select! {
                n = rx.recv_many(&mut batch, CORE_BATCH_MAX), if accepting => {
                    if n == 0 {
                        self.stop_log();
                        return;
                    }
                    for msg in batch.drain(..) {
                        self.handle(msg);
                    }
                }
                Some(ev) = self.storage.events.recv() => {
                    if !self.on_storage_event(ev) {
                        return;
                    }
                }
                _ = ticker.tick() => {
                    let now = self.clock.now();
                    match &mut self.engine {
                        Engine::Standalone(node) => {
                            node.tick(now, &mut self.outputs);
                            self.flush_outputs();
                        }
                        Engine::Ensemble(r) => {
                            r.tick(now, &mut self.routputs);
                            self.flush_replica();
                        }
                    }
                }
                Some(ev) = crate::ensemble::next_event(&mut self.quorum) => {
                    self.on_quorum_event(ev);
                    // Packets already here join this wake-up, and so its sync: a learner
                    // given a stream of proposals logs them together.
                    for _ in 1..CORE_BATCH_MAX {
                        let Some(ev) = crate::ensemble::try_next_socket_event(&mut self.quorum)
                        else {
                            break;
                        };
                        self.on_quorum_event(ev);
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        self.let_snapshot_finish().await;
                        self.stop_log();
                        return;
                    }
                }
            }
            // Whatever this wake-up appended: inline when nothing else waits.
            let idle = |c: &Core| rx.is_empty() && crate::ensemble::quorum_idle(&c.quorum);
            if !self.deferred.is_empty()
                && self.woke_writers
                && idle(&self)
                && self.storage.log.thread_idle()
            {
                // About to sync inline: first let the writer tasks this wake-up woke
                // (proposals, ACKs, replies) run. The last one woken waits in this
                // worker's LIFO slot, which no other worker steals, so it would otherwise
                // go out only after the sync.
                tokio::task::yield_now().await;
            }
            if !self.write_appends(idle(&self)) {
                return;
            }
        }
    }

    /// Hands the appends deferred so far to the log thread, in order. Called before
    /// anything that needs the log to hold them (or to be ordered after them): a
    /// truncation, a snapshot, an epoch file, a read of the log, shutdown.
    pub(crate) fn flush_deferred(&mut self) {
        for e in self.deferred.drain(..) {
            // A send error means the log thread has stopped after a failure, which it
            // reports separately; the held outputs then never go out.
            let _ = self.storage.log.send(e.into_cmd());
        }
    }

    /// Writes the appends deferred during this wake-up. With `idle` (nothing queued for
    /// the core) and the log thread idle, the core appends and syncs them itself, then
    /// does what the log thread's sync would have caused: standalone, it advances the
    /// gate; in an ensemble, it tells the replica ([`Replica::durable`]) and carries out
    /// what follows (a learner's ACK, a leader's commit). Otherwise the appends go to the
    /// log thread. False when the inline write failed: the core has stopped serving and
    /// must return.
    pub(crate) fn write_appends(&mut self, idle: bool) -> bool {
        if self.deferred.is_empty() {
            return true;
        }
        if !(idle && self.storage.log.thread_idle()) {
            self.flush_deferred();
            return true;
        }
        let r = self.storage.log.write_inline(&self.deferred);
        self.deferred.clear();
        match r {
            Ok(synced) => {
                if let Some(z) = synced.zxid {
                    self.durable_zxid = self.durable_zxid.max(z);
                    match &mut self.engine {
                        Engine::Standalone(_) => {
                            if let Some(g) = &self.storage.gate {
                                g.advance(z);
                            }
                        }
                        Engine::Ensemble(r) => {
                            let now = self.clock.now();
                            r.durable(z, now, &mut self.routputs);
                            self.flush_replica();
                            // Anything that appended (nothing does today) goes the
                            // ordinary way: nothing more is synced inline this wake-up.
                            self.flush_deferred();
                        }
                    }
                }
                if synced.snapshot_due {
                    self.start_snapshot();
                }
                true
            }
            Err(e) => {
                // Latched as a log-thread failure is: nothing held may ever go out.
                self.fail(format!("txn log write or fsync failed: {e}"));
                false
            }
        }
    }

    /// On a graceful stop, waits (at most [`SHUTDOWN_SNAPSHOT_WAIT_MS`]) for a snapshot in
    /// progress, such as the start-up snapshot a standalone server writes in the
    /// background: abandoned, it would leave the next start replaying the same log again.
    /// Storage reports that arrive meanwhile are handled as usual.
    async fn let_snapshot_finish(&mut self) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(SHUTDOWN_SNAPSHOT_WAIT_MS);
        if self.snapshot_running {
            tracing::info!("stopping: letting the snapshot in progress finish first");
        }
        while self.snapshot_running {
            match tokio::time::timeout_at(deadline, self.storage.events.recv()).await {
                Ok(Some(ev)) => {
                    if !self.on_storage_event(ev) {
                        return;
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("stopping without waiting longer for the snapshot");
                    return;
                }
            }
        }
    }

    pub fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Connect {
                conn,
                peer_ip,
                req,
                out,
                stats,
            } => {
                self.conns.insert(
                    conn,
                    ConnHandle {
                        out,
                        stats,
                        last_need: 0,
                    },
                );
                let now = self.clock.now();
                match &mut self.engine {
                    Engine::Standalone(node) => {
                        if let Some(g) = &self.storage.gate {
                            node.set_durable_zxid(g.durable());
                        }
                        node.connect(conn, &peer_ip, &req, now, &mut self.outputs)
                    }
                    Engine::Ensemble(r) => r.connect(conn, &peer_ip, &req, now, &mut self.routputs),
                }
                self.note_session(conn);
                self.flush_outputs();
                self.flush_replica();
            }
            CoreMsg::Requests {
                conn,
                reqs,
                received,
            } => {
                self.request(conn, reqs, received);
                self.flush_outputs();
                self.flush_replica();
            }
            CoreMsg::Disconnected { conn } => {
                self.conns.remove(&conn);
                match &mut self.engine {
                    Engine::Standalone(node) => node.disconnected(conn),
                    Engine::Ensemble(r) => r.disconnected(conn),
                }
            }
            CoreMsg::FourLetter { cmd, reply } => {
                let text = fourlw::render(&cmd, self);
                let _ = reply.send(text);
            }
        }
    }

    /// Hands a connection's batch of requests to the node, in order; their outputs wait in
    /// `outputs` (or `routputs`) for the caller's flush. Per-connection stats are
    /// published once per batch.
    fn request(&mut self, conn: ConnId, reqs: Vec<RequestIn>, received: Instant) {
        // One clock reading per batch: the requests arrived together.
        let now = self.clock.now();
        let latency_ms = received.elapsed().as_millis() as u64;
        let n = reqs.len();
        let mut last = None;
        for RequestIn { xid, op, decoded } in reqs {
            last = Some((xid, op));
            match &mut self.engine {
                Engine::Standalone(node) => {
                    if let Some(g) = &self.storage.gate {
                        node.set_durable_zxid(g.durable());
                    }
                    node.request(conn, xid, op, decoded, now, &mut self.outputs)
                }
                Engine::Ensemble(r) => r.request(conn, xid, op, decoded, now, &mut self.routputs),
            }
        }
        let Some((xid, op)) = last else { return };
        self.stats.latency.record_n(latency_ms, n as u64);
        self.stats.outstanding.fetch_sub(n as i64, Relaxed);
        let last_zxid = self.node().last_zxid();
        if let Some(h) = self.conns.get(&conn) {
            let s = &h.stats;
            s.queued.fetch_sub(n as i64, Relaxed);
            s.latency.record_n(latency_ms, n as u64);
            s.last_latency_ms.store(latency_ms, Relaxed);
            s.last_response_ms.store(now.wall_ms, Relaxed);
            if xid >= 0 {
                s.last_cxid.store(xid as i64, Relaxed);
            }
            s.last_zxid.store(last_zxid, Relaxed);
            let op_name = corral_proto::OpCode::from_i32(op)
                .map(|o| o.name())
                .unwrap_or("UNKN");
            *s.last_op.lock().unwrap_or_else(|e| e.into_inner()) = op_name;
        }
    }

    /// Records a connection's session in its stats once the handshake bound one.
    pub(crate) fn note_session(&self, conn: ConnId) {
        let node = self.node();
        if let (Some(h), Some(sid)) = (self.conns.get(&conn), node.session_of(conn)) {
            h.stats.session_id.store(sid, Relaxed);
            h.stats
                .timeout_ms
                .store(node.session_timeout_ms(sid).unwrap_or(0) as i64, Relaxed);
        }
    }

    /// Carries out the node's outputs: appends go to the log; frames and closes go out at
    /// once unless they depend on a txn that is not on disk yet.
    fn flush_outputs(&mut self) {
        // Taken out and put back, so the buffer's capacity is reused on every request.
        let mut outputs = std::mem::take(&mut self.outputs);
        for o in outputs.drain(..) {
            self.client_output(o);
        }
        self.outputs = outputs;
    }

    /// One client output: appends go to the log (standalone: at the end of the wake-up,
    /// see [`Core::write_appends`]); frames and closes go out at once unless they depend
    /// on a txn not yet released.
    pub(crate) fn client_output(&mut self, o: Output) {
        match o {
            Output::Append(entry) if self.storage.gate.is_some() => {
                self.appended_zxid = entry.header.zxid;
                self.deferred.push(PendingAppend::Decoded(entry));
            }
            Output::Append(entry) => {
                self.appended_zxid = entry.header.zxid;
                // A send error means the log thread has stopped after a failure, which it
                // reports separately; the held outputs then never go out.
                let _ = self.storage.log.send(LogCmd::Append(entry));
            }
            Output::Send { conn, frame, after } if self.storage.gate.is_some() => {
                let Some(h) = self.conns.get_mut(&conn) else {
                    return;
                };
                h.last_need = h.last_need.max(after);
                let need = h.last_need;
                self.standalone_send(need, conn, ConnOut::Frame(frame));
            }
            Output::Close { conn } if self.storage.gate.is_some() => {
                // A close waits for everything appended so far (an expiry's or a
                // closeSession's txn, and whatever the connection was sent).
                let need = match self.conns.get(&conn) {
                    Some(h) => h.last_need.max(self.appended_zxid),
                    None => return,
                };
                self.standalone_send(need, conn, ConnOut::Close);
                self.conns.remove(&conn);
            }
            other => {
                if self.appended_zxid > self.released_zxid || !self.held.is_empty() {
                    self.held.push_back((self.appended_zxid, other));
                } else {
                    self.execute(other);
                }
            }
        }
    }

    /// Standalone: sends `out` to `conn` now if `need` is released, else holds it in the
    /// gate (which sends it at once if the log synced past `need` meanwhile).
    fn standalone_send(&self, need: i64, conn: ConnId, out: ConnOut) {
        let (Some(h), Some(gate)) = (self.conns.get(&conn), &self.storage.gate) else {
            return;
        };
        if need <= gate.released() {
            let _ = h.out.send(out);
        } else {
            gate.hold(need, &h.out, out);
        }
    }

    /// Releases held output up to `zxid`.
    pub(crate) fn release(&mut self, zxid: i64) {
        self.released_zxid = self.released_zxid.max(zxid);
        while self
            .held
            .front()
            .is_some_and(|(need, _)| *need <= self.released_zxid)
        {
            if let Some((_, o)) = self.held.pop_front() {
                self.execute(o);
            }
        }
    }

    pub(crate) fn execute(&mut self, o: Output) {
        self.woke_writers = true;
        match o {
            Output::Send { conn, frame, .. } => {
                if let Some(h) = self.conns.get(&conn) {
                    let _ = h.out.send(ConnOut::Frame(frame));
                }
            }
            Output::Close { conn } => {
                if let Some(h) = self.conns.remove(&conn) {
                    let _ = h.out.send(ConnOut::Close);
                }
            }
            Output::Append(_) => unreachable!("appends are never held"),
            Output::Forward { .. } | Output::Revalidate { .. } => {
                unreachable!("a standalone node never forwards")
            }
        }
    }

    /// Handles a report of the storage threads; false when the core must stop.
    fn on_storage_event(&mut self, ev: LogEvent) -> bool {
        match ev {
            LogEvent::Durable(zxid) => {
                self.durable_zxid = self.durable_zxid.max(zxid);
                match &mut self.engine {
                    // The log thread has already released through the gate; this event
                    // only wakes a core that stopped taking requests.
                    Engine::Standalone(_) if self.storage.gate.is_some() => {}
                    Engine::Standalone(_) => self.release(zxid),
                    Engine::Ensemble(r) => {
                        let now = self.clock.now();
                        r.durable(zxid, now, &mut self.routputs);
                        self.flush_replica();
                    }
                }
                true
            }
            LogEvent::SnapshotDue => {
                self.start_snapshot();
                true
            }
            LogEvent::SnapshotDone { zxid, result } => {
                self.snapshot_running = false;
                match result {
                    Ok(what) => {
                        tracing::info!(zxid = format!("0x{zxid:x}"), "snapshot written: {what}")
                    }
                    Err(e) => tracing::error!(
                        zxid = format!("0x{zxid:x}"),
                        "snapshot failed (the log still holds every txn): {e}"
                    ),
                }
                true
            }
            LogEvent::Failed(msg) => {
                // Latched: nothing held may ever be released, since it was never made
                // durable. Stop serving; recovery on restart decides what survived.
                self.fail(format!("txn log write or fsync failed: {msg}"));
                false
            }
        }
    }

    /// Starts a background snapshot of the current tree, unless one is running (as
    /// ZooKeeper skips). The clone is a consistent copy-on-write view, cheap to take, so the
    /// write path does not stall while the file is written.
    pub(crate) fn start_snapshot(&mut self) {
        if self.snapshot_running {
            tracing::warn!("snapshot already in progress, skipping this one");
            return;
        }
        // The log gets every txn the snapshot holds before the snapshot is started.
        self.flush_deferred();
        self.snapshot_running = true;
        let zxid = self.node().last_zxid();
        durable::spawn_snapshot(
            self.storage.fs.clone(),
            self.storage.dirs.clone(),
            self.node().tree().snapshot_source(zxid),
            zxid,
            self.storage.events_tx.clone(),
        );
    }

    fn stop_log(&mut self) {
        if let Some(q) = &self.quorum {
            q.shutdown();
        }
        // Nothing is deferred between wake-ups; should anything be, it is written first.
        self.flush_deferred();
        let _ = self.storage.log.send(LogCmd::Shutdown);
    }

    /// Resets every connection's counters (`crst`).
    pub fn reset_connection_stats(&self) {
        for (_, c) in self.stats.connection_list() {
            c.reset();
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

#[cfg(test)]
mod tests;

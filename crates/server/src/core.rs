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
//! the clients — memory stays bounded, no error is returned (as ZooKeeper throttles).

use crate::fourlw;
use crate::settings::ServerSettings;
use crate::stats::{ConnStats, ServerStats};
use bytes::Bytes;
use corral_node::{ConnId, Node, Now, Output};
use corral_proto::{ConnectRequest, Request, RequestError};
use std::collections::HashMap;
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
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        decoded: Result<Request, RequestError>,
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

/// How often the core looks for expired sessions and due reaper passes. Session buckets are
/// a tick wide, so this only needs to be well below `tickTime`.
pub const CORE_TICK_INTERVAL_MS: u64 = 50;

/// Messages handled per wake-up before the core looks at its timer again.
const CORE_BATCH_MAX: usize = 256;

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

struct ConnHandle {
    out: ConnSender,
    stats: Arc<ConnStats>,
}

/// The core task's state.
pub struct Core {
    pub node: Node,
    pub settings: Arc<ServerSettings>,
    pub stats: Arc<ServerStats>,
    clock: Clock,
    conns: HashMap<ConnId, ConnHandle>,
    outputs: Vec<Output>,
}

impl Core {
    pub fn new(
        node: Node,
        settings: Arc<ServerSettings>,
        stats: Arc<ServerStats>,
        clock: Clock,
    ) -> Core {
        Core {
            node,
            settings,
            stats,
            clock,
            conns: HashMap::new(),
            outputs: Vec::new(),
        }
    }

    /// Runs until `shutdown` flips to true or every sender is gone.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<CoreMsg>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(Duration::from_millis(CORE_TICK_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(CORE_BATCH_MAX);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, CORE_BATCH_MAX) => {
                    if n == 0 {
                        return;
                    }
                    for msg in batch.drain(..) {
                        self.handle(msg);
                    }
                }
                _ = ticker.tick() => {
                    let now = self.clock.now();
                    self.node.tick(now, &mut self.outputs);
                    self.flush_outputs();
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
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
                self.conns.insert(conn, ConnHandle { out, stats });
                let now = self.clock.now();
                self.node
                    .connect(conn, &peer_ip, &req, now, &mut self.outputs);
                if let (Some(h), Some(sid)) = (self.conns.get(&conn), self.node.session_of(conn)) {
                    h.stats.session_id.store(sid, Relaxed);
                    h.stats.timeout_ms.store(
                        self.node.session_timeout_ms(sid).unwrap_or(0) as i64,
                        Relaxed,
                    );
                }
                self.flush_outputs();
            }
            CoreMsg::Request {
                conn,
                xid,
                op,
                decoded,
                received,
            } => {
                let now = self.clock.now();
                let op_name = corral_proto::OpCode::from_i32(op)
                    .map(|o| o.name())
                    .unwrap_or("UNKN");
                self.node
                    .request(conn, xid, op, decoded, now, &mut self.outputs);
                let latency_ms = received.elapsed().as_millis() as u64;
                self.stats.latency.record(latency_ms);
                self.stats.outstanding.fetch_sub(1, Relaxed);
                if let Some(h) = self.conns.get(&conn) {
                    let s = &h.stats;
                    s.queued.fetch_sub(1, Relaxed);
                    s.latency.record(latency_ms);
                    s.last_latency_ms.store(latency_ms, Relaxed);
                    s.last_response_ms.store(now.wall_ms, Relaxed);
                    if xid >= 0 {
                        s.last_cxid.store(xid as i64, Relaxed);
                    }
                    s.last_zxid.store(self.node.last_zxid(), Relaxed);
                    *s.last_op.lock().unwrap_or_else(|e| e.into_inner()) = op_name;
                }
                self.flush_outputs();
            }
            CoreMsg::Disconnected { conn } => {
                self.conns.remove(&conn);
                self.node.disconnected(conn);
            }
            CoreMsg::FourLetter { cmd, reply } => {
                let text = fourlw::render(&cmd, self);
                let _ = reply.send(text);
            }
        }
    }

    fn flush_outputs(&mut self) {
        for o in self.outputs.drain(..) {
            match o {
                Output::Send { conn, frame } => {
                    if let Some(h) = self.conns.get(&conn) {
                        let _ = h.out.send(ConnOut::Frame(frame));
                    }
                }
                Output::Close { conn } => {
                    if let Some(h) = self.conns.remove(&conn) {
                        let _ = h.out.send(ConnOut::Close);
                    }
                }
                // The in-memory server keeps no log; durable storage consumes these.
                Output::Append(_) => {}
            }
        }
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

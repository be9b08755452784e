//! The sans-IO session core: everything the client knows about its session, without sockets
//! or clocks of its own.
//!
//! Owns: xid allocation, the queue of requests not yet sent (while disconnected), the FIFO of
//! requests in flight, the credentials to replay, the watch registry, the session id /
//! password / negotiated timeout / lastZxidSeen, and the session state machine
//! (Connecting → Connected ⇄ Disconnected → Expired | Closed | AuthFailed).
//!
//! Driven by the tokio driver (`crate::driver`) through: [`Core::handshake_frame`] when a
//! TCP connection is up, [`Core::on_handshake`] with the first frame from the server,
//! [`Core::on_frame`] for every later frame, [`Core::submit`] for requests,
//! [`Core::on_connection_lost`] when the socket dies and [`Core::tick`] when
//! [`Core::next_wakeup`] passes. Frames to write come out of [`Core::take_outgoing`]. Time
//! enters only as `now` arguments.
//!
//! Invariants (checked by [`Core::check_invariants`]):
//! * requests in flight are answered strictly in the order sent, matched by xid (setWatches
//!   with its special xid -8 takes part in the FIFO); ping (-2) and auth (-4) replies are
//!   matched by their xids outside the FIFO; an out-of-order xid is a protocol violation and
//!   drops the connection, as in the Java client;
//! * the unsent queue is empty while connected (everything is sent as soon as possible);
//! * the in-flight FIFO is empty while not connected (a lost connection fails it with
//!   ConnectionLoss, because those requests may or may not have been applied);
//! * a watch is registered only when its request succeeded (exists also on NoNode), so a
//!   notification is delivered only to watches armed on the server;
//! * notifications are dispatched synchronously while the frame is processed, so they reach
//!   their watchers (and the event stream) before any later reply on the wire reaches its
//!   caller;
//! * the event stream gets each notification once, each state transition once, and each
//!   watch-removal event once per removed type, in the order they happened;
//! * removeWatches is settled as the Java client settles it (`ZKWatchManager.removeWatcher`):
//!   when its answer arrives, or when it is lost with the connection: the local watch table
//!   is checked first, then the server's code, then what was removed;
//! * in a terminal state every queue is empty and every watcher has had its final event.

use crate::connect_string::Chroot;
use crate::error::Error;
use crate::types::{SessionEvent, SessionInfo, SessionState, WatchedEvent};
use bytes::{Bytes, BytesMut};
use corral_proto::opcode::{XID_AUTH, XID_NOTIFICATION, XID_PING, XID_SET_WATCHES};
use corral_proto::request::SetWatches;
use corral_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, EventType, KeeperState, OpCode, Reader, Record,
    ReplyHeader, Request, RequestHeader, Response, WatcherEvent, WatcherType, Writer,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Path bytes per setWatches packet, as the Java client (`SET_WATCHES_MAX_LENGTH`).
pub const SET_WATCHES_BATCH_BYTES_MAX: usize = 128 * 1024;

/// Length of a session password.
pub const SESSION_PASSWORD_BYTES: usize = 16;

/// A successful reply: the header zxid and the decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub zxid: i64,
    pub response: Response,
}

pub type ReplyResult = Result<Reply, Error>;
pub type ReplySender = oneshot::Sender<ReplyResult>;
pub type OneShotWatcher = Watcher<oneshot::Sender<WatchedEvent>>;
pub type StreamWatcher = Watcher<mpsc::UnboundedSender<WatchedEvent>>;
pub type EventSender = mpsc::UnboundedSender<SessionEvent>;

/// A registered watcher: the sender to its handle, and whether the handle was detached
/// ([`crate::WatchFuture::detach`]): a detached watcher stays registered without a receiver.
#[derive(Debug)]
pub struct Watcher<T> {
    pub tx: T,
    pub detached: Arc<AtomicBool>,
}

impl<T> From<T> for Watcher<T> {
    /// A watcher whose handle is not detached.
    fn from(tx: T) -> Watcher<T> {
        Watcher {
            tx,
            detached: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The senders a [`Watcher`] can hold.
pub trait WatchSender {
    /// Whether the receiving handle is gone.
    fn receiver_gone(&self) -> bool;
}

impl WatchSender for oneshot::Sender<WatchedEvent> {
    fn receiver_gone(&self) -> bool {
        self.is_closed()
    }
}

impl WatchSender for mpsc::UnboundedSender<WatchedEvent> {
    fn receiver_gone(&self) -> bool {
        self.is_closed()
    }
}

impl<T: WatchSender> Watcher<T> {
    /// Held by a handle, or detached. The receiver is checked first: a handle sets its
    /// detached flag before dropping the receiver, so a gone receiver with the flag unset
    /// means the handle was dropped.
    fn is_live(&self) -> bool {
        !self.tx.receiver_gone() || self.detached.load(Ordering::Acquire)
    }
}

/// A watch to arm when the request it travels with succeeds. Paths are server paths.
#[derive(Debug)]
pub enum WatchReg {
    /// getData: data table.
    Data(String, OneShotWatcher),
    /// exists: data table when the node exists, exist table on NoNode.
    Exists(String, OneShotWatcher),
    /// getChildren / getChildren2: child table.
    Child(String, OneShotWatcher),
    /// addWatch mode 0.
    Persistent(String, StreamWatcher),
    /// addWatch mode 1.
    PersistentRecursive(String, StreamWatcher),
    /// removeWatches: settled by [`Core`] as the Java client does (see the module docs);
    /// `local` removes the local watchers even when the server fails or cannot be reached.
    Remove {
        path: String,
        kind: WatcherType,
        local: bool,
    },
}

/// A request waiting to be sent.
#[derive(Debug)]
pub struct Outgoing {
    pub request: Request,
    pub reply: ReplySender,
    pub watch: Option<WatchReg>,
    pub deadline: Option<Instant>,
}

#[derive(Debug)]
struct InFlight {
    xid: i32,
    op: OpCode,
    /// `None` for setWatches, or once the caller was answered with Timeout.
    reply: Option<ReplySender>,
    watch: Option<WatchReg>,
    deadline: Option<Instant>,
}

#[derive(Debug)]
struct Credential {
    scheme: String,
    /// `None` is sent as a null buffer (length -1), as Java's `addAuthInfo(scheme, null)`.
    auth: Option<Bytes>,
    /// The caller of `add_auth` waiting for the first server answer.
    waiter: Option<ReplySender>,
}

/// Per-connection timers.
#[derive(Debug, Clone, Copy)]
struct Conn {
    last_send: Instant,
    last_recv: Instant,
}

/// What [`Core::tick`] asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    Nothing,
    /// Nothing received within the read timeout: drop the connection and reconnect.
    ReadTimeout,
}

/// Result of the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Connected {
        read_only: bool,
    },
    /// The server says the session is gone (timeout 0). Terminal.
    Expired,
}

/// Static settings of a session.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub session_timeout: Duration,
    pub chroot: Chroot,
    /// Offer to talk to read-only servers.
    pub can_be_read_only: bool,
    /// Resume this session instead of creating one.
    pub session: Option<(i64, Bytes)>,
    /// The Java client's rule: when a connection attempt fails, the requests waiting for a
    /// connection (and a pending close) fail with ConnectionLoss instead of waiting on.
    pub fail_queued_on_connect_failure: bool,
}

#[derive(Debug, Default)]
struct WatchRegistry {
    data: HashMap<String, Vec<OneShotWatcher>>,
    exist: HashMap<String, Vec<OneShotWatcher>>,
    child: HashMap<String, Vec<OneShotWatcher>>,
    persistent: HashMap<String, Vec<StreamWatcher>>,
    recursive: HashMap<String, Vec<StreamWatcher>>,
}

fn prune<T: WatchSender>(map: &mut HashMap<String, Vec<Watcher<T>>>) {
    map.retain(|_, v| {
        v.retain(Watcher::is_live);
        !v.is_empty()
    });
}

fn live_count<T: WatchSender>(map: &HashMap<String, Vec<Watcher<T>>>) -> usize {
    map.values().flatten().filter(|w| w.is_live()).count()
}

fn holds<T: WatchSender>(map: &HashMap<String, Vec<Watcher<T>>>, path: &str) -> bool {
    map.get(path)
        .is_some_and(|v| v.iter().any(Watcher::is_live))
}

/// Counts of live watches per table, for tests and the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchCounts {
    pub data: usize,
    pub exist: usize,
    pub child: usize,
    pub persistent: usize,
    pub recursive: usize,
}

impl WatchRegistry {
    fn prune(&mut self) {
        prune(&mut self.data);
        prune(&mut self.exist);
        prune(&mut self.child);
        prune(&mut self.persistent);
        prune(&mut self.recursive);
    }

    fn counts(&self) -> WatchCounts {
        WatchCounts {
            data: live_count(&self.data),
            exist: live_count(&self.exist),
            child: live_count(&self.child),
            persistent: live_count(&self.persistent),
            recursive: live_count(&self.recursive),
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }

    /// Delivers a server notification to every matching watcher, as ZooKeeper's client
    /// `ZKWatchManager.materialize` does: one-shot watchers are removed, persistent ones stay.
    fn dispatch(&mut self, server_path: &str, event_type: EventType, ev: &WatchedEvent) {
        let fire_oneshot = |map: &mut HashMap<String, Vec<OneShotWatcher>>| {
            for w in map.remove(server_path).unwrap_or_default() {
                let _ = w.tx.send(ev.clone());
            }
        };
        let fire_stream = |v: &mut Vec<StreamWatcher>| {
            v.retain(|w| w.tx.send(ev.clone()).is_ok() || w.detached.load(Ordering::Acquire));
        };
        match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                fire_oneshot(&mut self.data);
                fire_oneshot(&mut self.exist);
            }
            EventType::NodeDeleted => {
                fire_oneshot(&mut self.data);
                fire_oneshot(&mut self.exist);
                fire_oneshot(&mut self.child);
            }
            EventType::NodeChildrenChanged => fire_oneshot(&mut self.child),
            _ => {}
        }
        if let Some(v) = self.persistent.get_mut(server_path) {
            fire_stream(v);
        }
        if event_type != EventType::NodeChildrenChanged {
            let mut p = server_path;
            loop {
                if let Some(v) = self.recursive.get_mut(p) {
                    fire_stream(v);
                }
                if p == "/" {
                    break;
                }
                p = crate::connect_string::parent(p);
            }
        }
    }

    /// Java 3.8's `ZKWatchManager.containsWatcher` for a removal of every watcher of `kind`
    /// on `path`: for Children and Data a persistent or recursive watch counts too (the Java
    /// client checks those tables for every type); Persistent and PersistentRecursive (3.9's
    /// types) look at their own table.
    fn contains_for_removal(&self, path: &str, kind: WatcherType) -> bool {
        let persistent = || holds(&self.persistent, path) || holds(&self.recursive, path);
        match kind {
            WatcherType::Children => holds(&self.child, path) || persistent(),
            WatcherType::Data => {
                holds(&self.data, path) || holds(&self.exist, path) || persistent()
            }
            WatcherType::Any => {
                holds(&self.child, path)
                    || holds(&self.data, path)
                    || holds(&self.exist, path)
                    || persistent()
            }
            WatcherType::Persistent => holds(&self.persistent, path),
            WatcherType::PersistentRecursive => holds(&self.recursive, path),
        }
    }

    /// Removes the local watchers of `kind` on `path` (Data: data and exist tables; Any: all
    /// five) and tells each with a *WatchRemoved event in `state`. Returns the event types
    /// of the tables that held live watchers, in the order Child, Data, Persistent.
    fn remove(
        &mut self,
        path: &str,
        kind: WatcherType,
        state: KeeperState,
        chroot: &Chroot,
    ) -> Vec<EventType> {
        let ev = |t: EventType| WatchedEvent {
            event_type: t,
            state,
            path: chroot.strip(path),
            zxid: -1,
        };
        fn take<T: WatchSender>(
            map: &mut HashMap<String, Vec<Watcher<T>>>,
            path: &str,
        ) -> Vec<Watcher<T>> {
            let mut v = map.remove(path).unwrap_or_default();
            v.retain(Watcher::is_live);
            v
        }
        let (data, child, persistent, recursive) = match kind {
            WatcherType::Children => (false, true, false, false),
            WatcherType::Data => (true, false, false, false),
            WatcherType::Any => (true, true, true, true),
            WatcherType::Persistent => (false, false, true, false),
            WatcherType::PersistentRecursive => (false, false, false, true),
        };
        let mut removed = Vec::new();
        if child {
            let ws = take(&mut self.child, path);
            if !ws.is_empty() {
                removed.push(EventType::ChildWatchRemoved);
            }
            for w in ws {
                let _ = w.tx.send(ev(EventType::ChildWatchRemoved));
            }
        }
        if data {
            let mut ws = take(&mut self.data, path);
            ws.extend(take(&mut self.exist, path));
            if !ws.is_empty() {
                removed.push(EventType::DataWatchRemoved);
            }
            for w in ws {
                let _ = w.tx.send(ev(EventType::DataWatchRemoved));
            }
        }
        let mut streams = Vec::new();
        if persistent {
            streams.extend(take(&mut self.persistent, path));
        }
        if recursive {
            streams.extend(take(&mut self.recursive, path));
        }
        if !streams.is_empty() {
            removed.push(EventType::PersistentWatchRemoved);
        }
        for w in streams {
            let _ = w.tx.send(ev(EventType::PersistentWatchRemoved));
        }
        removed
    }

    /// Whether any live local watcher of `kind` is on `path` (Data: data or exist table; Any:
    /// any table).
    fn has(&self, path: &str, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => holds(&self.child, path),
            WatcherType::Data => holds(&self.data, path) || holds(&self.exist, path),
            WatcherType::Persistent => holds(&self.persistent, path),
            WatcherType::PersistentRecursive => holds(&self.recursive, path),
            WatcherType::Any => {
                holds(&self.child, path)
                    || holds(&self.data, path)
                    || holds(&self.exist, path)
                    || holds(&self.persistent, path)
                    || holds(&self.recursive, path)
            }
        }
    }

    /// Ends every watch with a final event (session over).
    fn end_all(&mut self, state: KeeperState, chroot: &Chroot) {
        let ev = |p: &str| WatchedEvent {
            event_type: EventType::None,
            state,
            path: chroot.strip(p),
            zxid: -1,
        };
        for map in [&mut self.data, &mut self.exist, &mut self.child] {
            for (p, v) in map.drain() {
                for w in v {
                    let _ = w.tx.send(ev(&p));
                }
            }
        }
        for map in [&mut self.persistent, &mut self.recursive] {
            for (p, v) in map.drain() {
                for w in v {
                    let _ = w.tx.send(ev(&p));
                }
            }
        }
    }

    /// The setWatches(2) bodies that re-arm every live watch, split like the Java client so
    /// that no packet carries more than [`SET_WATCHES_BATCH_BYTES_MAX`] bytes of paths (a
    /// single longer path gets a packet of its own).
    fn set_watches_batches(&mut self, relative_zxid: i64) -> Vec<(OpCode, SetWatches)> {
        self.prune();
        let sorted = |keys: Vec<&String>| {
            let mut k: Vec<String> = keys.into_iter().cloned().collect();
            k.sort();
            k
        };
        let lists = [
            sorted(self.data.keys().collect()),
            sorted(self.exist.keys().collect()),
            sorted(self.child.keys().collect()),
            sorted(self.persistent.keys().collect()),
            sorted(self.recursive.keys().collect()),
        ];
        let mut out = Vec::new();
        let mut cur = SetWatches {
            relative_zxid,
            ..SetWatches::default()
        };
        let mut cur_bytes = 0usize;
        let finish = |cur: &mut SetWatches, out: &mut Vec<(OpCode, SetWatches)>| {
            let taken = std::mem::replace(
                cur,
                SetWatches {
                    relative_zxid,
                    ..SetWatches::default()
                },
            );
            let op = if taken.persistent_watches.is_empty()
                && taken.persistent_recursive_watches.is_empty()
            {
                OpCode::SetWatches
            } else {
                OpCode::SetWatches2
            };
            out.push((op, taken));
        };
        for (i, list) in lists.into_iter().enumerate() {
            for p in list {
                if cur_bytes > 0 && cur_bytes + p.len() > SET_WATCHES_BATCH_BYTES_MAX {
                    finish(&mut cur, &mut out);
                    cur_bytes = 0;
                }
                cur_bytes += p.len();
                match i {
                    0 => cur.data_watches.push(p),
                    1 => cur.exist_watches.push(p),
                    2 => cur.child_watches.push(p),
                    3 => cur.persistent_watches.push(p),
                    _ => cur.persistent_recursive_watches.push(p),
                }
            }
        }
        if cur_bytes > 0 {
            finish(&mut cur, &mut out);
        }
        out
    }
}

/// The session core. See the module docs.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    state: SessionState,
    state_tx: watch::Sender<SessionState>,
    info: SessionInfo,
    info_tx: watch::Sender<SessionInfo>,
    next_xid: i32,
    unsent: VecDeque<Outgoing>,
    in_flight: VecDeque<InFlight>,
    credentials: Vec<Credential>,
    /// Indices into `credentials` of auth packets sent on this connection, in order.
    auth_in_flight: VecDeque<usize>,
    watches: WatchRegistry,
    conn: Option<Conn>,
    /// Frames to write, in order.
    outgoing: Vec<Bytes>,
    /// The xid of the closeSession request, once sent.
    close_xid: Option<i32>,
    /// A close asked while disconnected, to be sent on the next connection (only with
    /// `fail_queued_on_connect_failure`; otherwise such a close ends the session at once).
    close_queued: bool,
    close_waiter: Option<ReplySender>,
    /// The event stream, while someone listens.
    events: Option<EventSender>,
    /// Failed connection attempts since the start (shared with the client handles).
    connect_failures: Arc<AtomicU64>,
}

/// Encodes `len + RequestHeader + body`.
pub fn encode_frame(xid: i32, op: OpCode, req: &Request) -> Bytes {
    let mut w = Writer::with_capacity(64);
    w.write_i32(0);
    RequestHeader { xid, op: op.code() }.write(&mut w);
    req.encode_body(&mut w);
    let len = (w.len() - 4) as i32;
    w.patch_i32(0, len);
    w.into_bytes()
}

/// Encodes an auth packet (xid -4, op 100). Written here rather than through
/// [`corral_proto::request::AuthPacket`] so that `auth` can be a null buffer.
fn encode_auth_frame(scheme: &str, auth: Option<&[u8]>) -> Bytes {
    let mut w = Writer::with_capacity(32);
    w.write_i32(0);
    RequestHeader {
        xid: XID_AUTH,
        op: OpCode::Auth.code(),
    }
    .write(&mut w);
    w.write_i32(0); // AuthPacket.type
    w.write_string(scheme);
    w.write_buffer(auth);
    let len = (w.len() - 4) as i32;
    w.patch_i32(0, len);
    w.into_bytes()
}

fn frame_of(record_bytes: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + record_bytes.len());
    b.extend_from_slice(&(record_bytes.len() as i32).to_be_bytes());
    b.extend_from_slice(record_bytes);
    b.freeze()
}

impl Core {
    pub fn new(
        config: CoreConfig,
        state_tx: watch::Sender<SessionState>,
        info_tx: watch::Sender<SessionInfo>,
    ) -> Core {
        let mut info = SessionInfo::default();
        if let Some((id, pw)) = &config.session {
            info.session_id = *id;
            info.password = pw.clone();
        }
        state_tx.send_replace(SessionState::Connecting);
        info_tx.send_replace(info.clone());
        Core {
            config,
            state: SessionState::Connecting,
            state_tx,
            info,
            info_tx,
            next_xid: 1,
            unsent: VecDeque::new(),
            in_flight: VecDeque::new(),
            credentials: Vec::new(),
            auth_in_flight: VecDeque::new(),
            watches: WatchRegistry::default(),
            conn: None,
            outgoing: Vec::new(),
            close_xid: None,
            close_queued: false,
            close_waiter: None,
            events: None,
            connect_failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Delivers [`SessionEvent`]s to `tx` from now on.
    pub fn set_event_sink(&mut self, tx: EventSender) {
        self.events = Some(tx);
    }

    /// The counter of failed connection attempts (the driver reports them with
    /// [`Core::on_connect_failed`]).
    pub fn connect_failure_counter(&self) -> Arc<AtomicU64> {
        self.connect_failures.clone()
    }

    fn emit(&mut self, ev: SessionEvent) {
        if let Some(tx) = &self.events {
            if tx.send(ev).is_err() {
                self.events = None; // nobody listens any more
            }
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn unsent_len(&self) -> usize {
        self.unsent.len()
    }

    pub fn watch_counts(&self) -> WatchCounts {
        self.watches.counts()
    }

    /// Negotiated timeout once known, else the requested one.
    pub fn session_timeout(&self) -> Duration {
        if self.info.timeout_ms > 0 {
            Duration::from_millis(self.info.timeout_ms as u64)
        } else {
            self.config.session_timeout
        }
    }

    /// 2/3 of the session timeout: a connection silent for this long is dead.
    pub fn read_timeout(&self) -> Duration {
        self.session_timeout() * 2 / 3
    }

    /// Half the read timeout: ping when nothing was sent for this long.
    pub fn ping_interval(&self) -> Duration {
        self.read_timeout() / 2
    }

    fn set_state(&mut self, s: SessionState) {
        if self.state != s {
            tracing::debug!(from = ?self.state, to = ?s, "session state");
            self.state = s;
            self.state_tx.send_replace(s);
            self.emit(SessionEvent::State(s));
        }
    }

    fn publish_info(&self) {
        self.info_tx.send_replace(self.info.clone());
    }

    fn alloc_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    /// For tests of the wrap-around.
    pub fn set_next_xid(&mut self, xid: i32) {
        assert!(xid > 0, "xids are positive");
        self.next_xid = xid;
    }

    /// Frames queued for the socket, in order.
    pub fn take_outgoing(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.outgoing)
    }

    fn push_frame(&mut self, f: Bytes, now: Instant) {
        self.outgoing.push(f);
        if let Some(c) = &mut self.conn {
            c.last_send = now;
        }
    }

    // --- connection lifecycle ---------------------------------------------------------------

    /// The ConnectRequest for a fresh TCP connection (resumes the session if we have one).
    pub fn handshake_frame(&self) -> Bytes {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.info.last_zxid_seen,
            timeout_ms: self
                .config
                .session_timeout
                .as_millis()
                .min(i32::MAX as u128) as i32,
            session_id: self.info.session_id,
            passwd: if self.info.password.is_empty() {
                Bytes::from_static(&[0u8; SESSION_PASSWORD_BYTES])
            } else {
                self.info.password.clone()
            },
            read_only: Some(self.config.can_be_read_only),
        };
        frame_of(&req.to_bytes())
    }

    /// Handles the server's ConnectResponse (the body of its first frame). On success the
    /// session is (re-)established: credentials, setWatches batches and queued requests are
    /// put in the outgoing frames, in that order.
    pub fn on_handshake(
        &mut self,
        body: Bytes,
        server: &str,
        now: Instant,
    ) -> Result<HandshakeOutcome, Error> {
        if self.state.is_terminal() {
            return Err(Error::Closed);
        }
        let resp = ConnectResponse::from_bytes(body)
            .map_err(|e| Error::Protocol(format!("bad ConnectResponse: {e}")))?;
        if resp.timeout_ms <= 0 {
            self.terminate(SessionState::Expired);
            return Ok(HandshakeOutcome::Expired);
        }
        if self.info.session_id != 0 && resp.session_id != self.info.session_id {
            return Err(Error::Protocol(format!(
                "server answered session {:#x} to a resume of {:#x}",
                resp.session_id, self.info.session_id
            )));
        }
        self.info.session_id = resp.session_id;
        self.info.password = resp.passwd.clone();
        self.info.timeout_ms = resp.timeout_ms;
        self.info.server = server.to_owned();
        self.publish_info();
        self.conn = Some(Conn {
            last_send: now,
            last_recv: now,
        });
        let read_only = resp.read_only.unwrap_or(false);
        self.set_state(if read_only {
            SessionState::ConnectedReadOnly
        } else {
            SessionState::Connected
        });
        // Credentials first, so the requests after them run with the right identity.
        for i in 0..self.credentials.len() {
            let c = &self.credentials[i];
            let f = encode_auth_frame(&c.scheme, c.auth.as_deref());
            self.push_frame(f, now);
            self.auth_in_flight.push_back(i);
        }
        let batches = self.watches.set_watches_batches(self.info.last_zxid_seen);
        for (op, sw) in batches {
            let req = if op == OpCode::SetWatches2 {
                Request::SetWatches2(sw)
            } else {
                Request::SetWatches(sw)
            };
            let f = encode_frame(XID_SET_WATCHES, op, &req);
            self.push_frame(f, now);
            self.in_flight.push_back(InFlight {
                xid: XID_SET_WATCHES,
                op,
                reply: None,
                watch: None,
                deadline: None,
            });
        }
        while let Some(o) = self.unsent.pop_front() {
            self.send_now(o, now);
        }
        if std::mem::take(&mut self.close_queued) {
            self.send_close(now);
        }
        Ok(HandshakeOutcome::Connected { read_only })
    }

    /// The socket died (or the driver dropped it). Requests in flight fail with
    /// ConnectionLoss (a removeWatches with `local` removes its local watchers and
    /// succeeds, as in Java); queued ones wait for the next connection.
    pub fn on_connection_lost(&mut self) {
        let was_connected = self.conn.take().is_some();
        self.outgoing.clear();
        let lost: Vec<InFlight> = self.in_flight.drain(..).collect();
        for f in lost {
            let result = self.lost_result(f.watch);
            if let Some(r) = f.reply {
                let _ = r.send(result);
            }
        }
        for i in self.auth_in_flight.drain(..) {
            if let Some(w) = self.credentials.get_mut(i).and_then(|c| c.waiter.take()) {
                let _ = w.send(Err(Error::ConnectionLoss));
            }
        }
        if self.close_xid.is_some() {
            // The close was sent but not answered; the server will expire the session.
            self.terminate(SessionState::Closed);
            return;
        }
        if was_connected && !self.state.is_terminal() {
            self.set_state(SessionState::Disconnected);
        }
    }

    /// The answer to a request lost with the connection: ConnectionLoss, except that a
    /// removeWatches is settled with that code (with `local` it succeeds).
    fn lost_result(&mut self, watch: Option<WatchReg>) -> ReplyResult {
        match watch {
            Some(WatchReg::Remove { path, kind, local }) => self
                .settle_removal(&path, kind, local, ErrorCode::ConnectionLoss.code())
                .map(|()| Reply {
                    zxid: -1,
                    response: Response::Empty,
                }),
            _ => Err(Error::ConnectionLoss),
        }
    }

    /// A connection attempt to `host` failed before the session was (re-)established.
    /// Counts it and reports it on the event stream; with `fail_queued_on_connect_failure`
    /// (the Java client's rule) every request waiting for a connection fails with
    /// ConnectionLoss, waiting `add_auth` calls too (the credential stays, to be sent on the
    /// next connection), and a pending close ends the session.
    pub fn on_connect_failed(&mut self, host: &str, reason: &str) {
        if self.state.is_terminal() {
            return;
        }
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        self.emit(SessionEvent::ConnectFailed {
            host: host.to_owned(),
            reason: reason.to_owned(),
        });
        if !self.config.fail_queued_on_connect_failure {
            return;
        }
        let queued: Vec<Outgoing> = self.unsent.drain(..).collect();
        for o in queued {
            let result = self.lost_result(o.watch);
            let _ = o.reply.send(result);
        }
        for c in &mut self.credentials {
            if let Some(w) = c.waiter.take() {
                let _ = w.send(Err(Error::ConnectionLoss));
            }
        }
        if self.close_queued {
            self.close_queued = false;
            self.terminate(SessionState::Closed);
        }
    }

    /// Moves to a terminal state: everything queued fails, every watch gets its final event.
    pub fn terminate(&mut self, s: SessionState) {
        assert!(s.is_terminal(), "terminate({s:?})");
        if self.state.is_terminal() {
            return;
        }
        let err = match s {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::Closed,
        };
        // Publish the state first: whoever is woken below must already see it.
        self.set_state(s);
        self.conn = None;
        self.close_queued = false;
        self.outgoing.clear();
        for o in self.unsent.drain(..) {
            let _ = o.reply.send(Err(err.clone()));
        }
        for f in self.in_flight.drain(..) {
            if let Some(r) = f.reply {
                let e = if f.op == OpCode::CloseSession {
                    Error::ConnectionLoss
                } else {
                    err.clone()
                };
                let _ = r.send(Err(e));
            }
        }
        for c in &mut self.credentials {
            if let Some(w) = c.waiter.take() {
                let _ = w.send(Err(err.clone()));
            }
        }
        self.auth_in_flight.clear();
        self.watches.end_all(s.keeper_state(), &self.config.chroot);
        if let Some(w) = self.close_waiter.take() {
            let _ = w.send(if s == SessionState::Closed {
                Ok(Reply {
                    zxid: 0,
                    response: Response::Empty,
                })
            } else {
                Err(err)
            });
        }
    }

    // --- requests ---------------------------------------------------------------------------

    /// Queues a request; it is written at once when connected.
    pub fn submit(&mut self, o: Outgoing, now: Instant) {
        if self.state.is_terminal() || self.close_xid.is_some() || self.close_queued {
            let e = match self.state {
                SessionState::Expired => Error::SessionExpired,
                SessionState::AuthFailed => Error::AuthFailed,
                _ => Error::Closed,
            };
            let _ = o.reply.send(Err(e));
            return;
        }
        if self.conn.is_some() {
            self.send_now(o, now);
        } else {
            self.unsent.push_back(o);
        }
    }

    fn send_now(&mut self, o: Outgoing, now: Instant) {
        let op = o.request.op();
        let xid = self.alloc_xid();
        let f = encode_frame(xid, op, &o.request);
        self.push_frame(f, now);
        self.in_flight.push_back(InFlight {
            xid,
            op,
            reply: Some(o.reply),
            watch: o.watch,
            deadline: o.deadline,
        });
    }

    /// Adds a credential (`None`: a null buffer); it is sent now if connected and again
    /// after every reconnect.
    pub fn add_auth(
        &mut self,
        scheme: String,
        auth: Option<Bytes>,
        waiter: ReplySender,
        now: Instant,
    ) {
        if self.state.is_terminal() {
            let _ = waiter.send(Err(Error::Closed));
            return;
        }
        let idx = self.credentials.len();
        let f = encode_auth_frame(&scheme, auth.as_deref());
        self.credentials.push(Credential {
            scheme,
            auth,
            waiter: Some(waiter),
        });
        if self.conn.is_some() {
            self.push_frame(f, now);
            self.auth_in_flight.push_back(idx);
        }
    }

    /// Starts closing the session: sends closeSession when connected. When not connected it
    /// ends the session at once (the server expires it), or, with
    /// `fail_queued_on_connect_failure`, queues the close like a request, as the Java client
    /// does: sent on the next connection, or the session ends when the attempt fails.
    /// `waiter` is answered when the session is closed.
    pub fn close(&mut self, waiter: ReplySender, now: Instant) {
        if self.state.is_terminal() {
            let _ = waiter.send(Ok(Reply {
                zxid: 0,
                response: Response::Empty,
            }));
            return;
        }
        if self.close_xid.is_some() || self.close_queued {
            // Already closing: answer when the first close finishes.
            let _ = waiter.send(Ok(Reply {
                zxid: 0,
                response: Response::Empty,
            }));
            return;
        }
        self.close_waiter = Some(waiter);
        if self.conn.is_none() {
            if self.config.fail_queued_on_connect_failure {
                self.close_queued = true;
            } else {
                self.terminate(SessionState::Closed);
            }
            return;
        }
        self.send_close(now);
    }

    fn send_close(&mut self, now: Instant) {
        let xid = self.alloc_xid();
        let f = encode_frame(xid, OpCode::CloseSession, &Request::CloseSession);
        self.push_frame(f, now);
        self.in_flight.push_back(InFlight {
            xid,
            op: OpCode::CloseSession,
            reply: None,
            watch: None,
            deadline: None,
        });
        self.close_xid = Some(xid);
    }

    pub fn is_closing(&self) -> bool {
        self.close_xid.is_some()
    }

    /// Settles a removeWatches of `kind` on `server_path` whose server answer is `rc` (0, an
    /// error code, or ConnectionLoss when the request was lost), as Java's
    /// `ZKWatchManager.removeWatcher`: NoWatcher when the local table holds no watch of the
    /// type (persistent ones count for Children and Data) whatever the server said; the
    /// server's error unless `local`; else the local watchers of the type are removed (each
    /// told with a *WatchRemoved event, state Disconnected when the connection was lost, as
    /// is the event stream, once per type), and NoWatcher if there were none.
    fn settle_removal(
        &mut self,
        server_path: &str,
        kind: WatcherType,
        local: bool,
        rc: i32,
    ) -> Result<(), Error> {
        if !self.watches.contains_for_removal(server_path, kind) {
            return Err(Error::NoWatcher);
        }
        if rc != 0 && !local {
            return Err(Error::from_code(rc));
        }
        let lost = rc == ErrorCode::ConnectionLoss.code() || rc == ErrorCode::SessionExpired.code();
        let state = if lost {
            KeeperState::Disconnected
        } else {
            KeeperState::SyncConnected
        };
        let removed = self
            .watches
            .remove(server_path, kind, state, &self.config.chroot);
        if removed.is_empty() {
            return Err(Error::NoWatcher);
        }
        for event_type in removed {
            let ev = WatchedEvent {
                event_type,
                state,
                path: self.config.chroot.strip(server_path),
                zxid: -1,
            };
            self.emit(SessionEvent::Watch(ev));
        }
        Ok(())
    }

    pub fn has_local_watch(&self, server_path: &str, kind: WatcherType) -> bool {
        self.watches.has(server_path, kind)
    }

    // --- input ------------------------------------------------------------------------------

    /// Handles one frame body (after the length prefix) from an established connection.
    /// An error means the server broke the protocol: the driver drops the connection.
    pub fn on_frame(&mut self, body: Bytes, now: Instant) -> Result<(), Error> {
        if let Some(c) = &mut self.conn {
            c.last_recv = now;
        } else {
            return Ok(()); // stale frame after a terminal transition
        }
        let mut r = Reader::new(body);
        let h = ReplyHeader::read(&mut r)
            .map_err(|e| Error::Protocol(format!("bad ReplyHeader: {e}")))?;
        if h.zxid > self.info.last_zxid_seen {
            self.info.last_zxid_seen = h.zxid;
            self.info_tx.send_modify(|i| i.last_zxid_seen = h.zxid);
        }
        match h.xid {
            XID_PING => Ok(()),
            XID_AUTH => {
                let idx = self.auth_in_flight.pop_front();
                let waiter = idx
                    .and_then(|i| self.credentials.get_mut(i))
                    .and_then(|c| c.waiter.take());
                if h.err == ErrorCode::AuthFailed.code() {
                    self.terminate(SessionState::AuthFailed);
                    if let Some(w) = waiter {
                        let _ = w.send(Err(Error::AuthFailed));
                    }
                } else if let Some(w) = waiter {
                    let _ = w.send(if h.err == 0 {
                        Ok(Reply {
                            zxid: h.zxid,
                            response: Response::Empty,
                        })
                    } else {
                        Err(Error::from_code(h.err))
                    });
                }
                Ok(())
            }
            XID_NOTIFICATION => {
                let ev = WatcherEvent::read(&mut r)
                    .map_err(|e| Error::Protocol(format!("bad WatcherEvent: {e}")))?;
                let Some(t) = EventType::from_i32(ev.event_type) else {
                    tracing::warn!(event_type = ev.event_type, "unknown event type ignored");
                    return Ok(());
                };
                let state = KeeperState::from_i32(ev.state).unwrap_or(KeeperState::SyncConnected);
                let we = WatchedEvent {
                    event_type: t,
                    state,
                    path: self.config.chroot.strip(&ev.path),
                    zxid: h.zxid,
                };
                self.watches.dispatch(&ev.path, t, &we);
                self.emit(SessionEvent::Watch(we));
                Ok(())
            }
            xid => {
                let Some(front) = self.in_flight.pop_front() else {
                    return Err(Error::Protocol(format!(
                        "reply xid {xid} with nothing in flight"
                    )));
                };
                if front.xid != xid {
                    let e = Error::Protocol(format!(
                        "xid out of order: got {xid}, expected {}",
                        front.xid
                    ));
                    self.in_flight.push_front(front);
                    return Err(e);
                }
                self.complete(front, h, r);
                Ok(())
            }
        }
    }

    fn complete(&mut self, f: InFlight, h: ReplyHeader, mut r: Reader) {
        if f.op == OpCode::CloseSession {
            self.close_xid = None;
            self.terminate(SessionState::Closed);
            return;
        }
        if f.op == OpCode::SetWatches || f.op == OpCode::SetWatches2 {
            if h.err != 0 {
                tracing::warn!(err = h.err, "setWatches failed");
            }
            return;
        }
        if let Some(WatchReg::Remove { path, kind, local }) = f.watch {
            let result = self
                .settle_removal(&path, kind, local, h.err)
                .map(|()| Reply {
                    zxid: h.zxid,
                    response: Response::Empty,
                });
            if let Some(reply) = f.reply {
                let _ = reply.send(result);
            }
            return;
        }
        let multi_with_body = f.op == OpCode::Multi && !r.is_empty();
        let result = if h.err != 0 && !multi_with_body {
            if h.err == ErrorCode::NoNode.code() {
                if let Some(WatchReg::Exists(p, s)) = f.watch {
                    self.watches.exist.entry(p).or_default().push(s);
                }
            }
            Err(Error::from_code(h.err))
        } else {
            match Response::decode(f.op, &mut r) {
                Ok(resp) => {
                    self.arm(f.watch);
                    Ok(Reply {
                        zxid: h.zxid,
                        response: resp,
                    })
                }
                Err(e) => Err(Error::Protocol(format!("bad {:?} reply: {e}", f.op))),
            }
        };
        if let Some(reply) = f.reply {
            let _ = reply.send(result);
        }
    }

    fn arm(&mut self, w: Option<WatchReg>) {
        let Some(w) = w else { return };
        let reg = &mut self.watches;
        match w {
            WatchReg::Data(p, s) | WatchReg::Exists(p, s) => reg.data.entry(p).or_default().push(s),
            WatchReg::Child(p, s) => reg.child.entry(p).or_default().push(s),
            WatchReg::Persistent(p, s) => reg.persistent.entry(p).or_default().push(s),
            WatchReg::PersistentRecursive(p, s) => reg.recursive.entry(p).or_default().push(s),
            // Settled in `complete` before any arming.
            WatchReg::Remove { .. } => {}
        }
    }

    // --- time -------------------------------------------------------------------------------

    /// When [`Core::tick`] should run next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(c) = &self.conn {
            min(c.last_send + self.ping_interval());
            min(c.last_recv + self.read_timeout());
        }
        for d in self.unsent.iter().filter_map(|o| o.deadline) {
            min(d);
        }
        for d in self
            .in_flight
            .iter()
            .filter(|f| f.reply.is_some())
            .filter_map(|f| f.deadline)
        {
            min(d);
        }
        t
    }

    /// Sends a ping when idle, answers timed-out requests with Timeout, and reports a dead
    /// connection.
    pub fn tick(&mut self, now: Instant) -> TickAction {
        let mut i = 0;
        while i < self.unsent.len() {
            if self.unsent[i].deadline.is_some_and(|d| d <= now) {
                if let Some(o) = self.unsent.remove(i) {
                    let _ = o.reply.send(Err(Error::Timeout));
                }
            } else {
                i += 1;
            }
        }
        for f in self.in_flight.iter_mut() {
            if f.deadline.is_some_and(|d| d <= now) {
                // Keep the entry: its reply still arrives in FIFO order and must be matched.
                if let Some(r) = f.reply.take() {
                    let _ = r.send(Err(Error::Timeout));
                }
            }
        }
        let Some(c) = self.conn else {
            return TickAction::Nothing;
        };
        if now >= c.last_recv + self.read_timeout() {
            return TickAction::ReadTimeout;
        }
        if now >= c.last_send + self.ping_interval() {
            let f = encode_frame(XID_PING, OpCode::Ping, &Request::Ping);
            self.push_frame(f, now);
        }
        TickAction::Nothing
    }

    /// Checks the invariants listed in the module docs; panics with context on violation.
    pub fn check_invariants(&self) {
        if self.conn.is_some() {
            assert!(self.unsent.is_empty(), "unsent requests while connected");
            assert!(!self.close_queued, "a close is queued while connected");
        } else {
            assert!(
                self.in_flight.is_empty(),
                "{} requests in flight without a connection",
                self.in_flight.len()
            );
            assert!(
                self.auth_in_flight.is_empty(),
                "auth in flight without a connection"
            );
        }
        for f in &self.in_flight {
            assert!(
                f.xid > 0 || f.xid == XID_SET_WATCHES,
                "in-flight xid {} is special",
                f.xid
            );
        }
        if self.state.is_terminal() {
            assert!(self.unsent.is_empty() && self.in_flight.is_empty());
            assert!(
                !self.close_queued,
                "a close is queued after the session ended"
            );
            assert!(
                self.watches.is_empty(),
                "watches left after the session ended"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::request::PathWatch;
    use corral_proto::Stat;

    fn core() -> Core {
        let (stx, _) = watch::channel(SessionState::Connecting);
        let (itx, _) = watch::channel(SessionInfo::default());
        Core::new(
            CoreConfig {
                session_timeout: Duration::from_secs(9),
                chroot: Chroot::new("/app").unwrap(),
                can_be_read_only: false,
                session: None,
                fail_queued_on_connect_failure: false,
            },
            stx,
            itx,
        )
    }

    fn connect_response(session_id: i64, timeout_ms: i32) -> Bytes {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: Bytes::from_static(&[7u8; 16]),
            read_only: Some(false),
        }
        .to_bytes()
    }

    fn reply(xid: i32, zxid: i64, err: i32, body: Option<Response>) -> Bytes {
        let mut w = Writer::new();
        ReplyHeader { xid, zxid, err }.write(&mut w);
        if let Some(b) = body {
            b.encode(&mut w);
        }
        w.into_bytes()
    }

    fn notification(t: EventType, path: &str) -> Bytes {
        let mut w = Writer::new();
        ReplyHeader {
            xid: -1,
            zxid: -1,
            err: 0,
        }
        .write(&mut w);
        WatcherEvent {
            event_type: t.code(),
            state: 3,
            path: path.into(),
        }
        .write(&mut w);
        w.into_bytes()
    }

    /// Parses `(xid, op)` of the frames written.
    fn headers(frames: &[Bytes]) -> Vec<(i32, i32)> {
        frames
            .iter()
            .map(|f| {
                let h = RequestHeader::read(&mut Reader::new(f.slice(4..))).unwrap();
                (h.xid, h.op)
            })
            .collect()
    }

    fn get_data(
        path: &str,
        watch: Option<oneshot::Sender<WatchedEvent>>,
    ) -> (Outgoing, oneshot::Receiver<ReplyResult>) {
        let (tx, rx) = oneshot::channel();
        (
            Outgoing {
                request: Request::GetData(PathWatch {
                    path: path.into(),
                    watch: watch.is_some(),
                }),
                reply: tx,
                watch: watch.map(|w| WatchReg::Data(path.into(), w.into())),
                deadline: None,
            },
            rx,
        )
    }

    fn data_body() -> Response {
        Response::GetData {
            data: Some(Bytes::from_static(b"x")),
            stat: Stat::default(),
        }
    }

    #[test]
    fn queued_requests_are_sent_after_handshake_in_order() {
        let mut c = core();
        let now = Instant::now();
        let (o1, _r1) = get_data("/app/a", None);
        let (o2, _r2) = get_data("/app/b", None);
        c.submit(o1, now);
        c.submit(o2, now);
        assert_eq!(c.unsent_len(), 2);
        c.check_invariants();
        let out = c
            .on_handshake(connect_response(5, 6000), "h:1", now)
            .unwrap();
        assert_eq!(out, HandshakeOutcome::Connected { read_only: false });
        assert_eq!(c.state(), SessionState::Connected);
        assert_eq!(headers(&c.take_outgoing()), vec![(1, 4), (2, 4)]);
        c.check_invariants();
    }

    #[test]
    fn replies_match_fifo_and_out_of_order_is_an_error() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (o1, mut r1) = get_data("/app/a", None);
        let (o2, _r2) = get_data("/app/b", None);
        c.submit(o1, now);
        c.submit(o2, now);
        assert!(c.on_frame(reply(2, 10, 0, Some(data_body())), now).is_err());
        c.on_frame(reply(1, 10, 0, Some(data_body())), now).unwrap();
        assert_eq!(r1.try_recv().unwrap().unwrap().zxid, 10);
        assert_eq!(c.info().last_zxid_seen, 10);
        c.check_invariants();
    }

    #[test]
    fn xid_wraps_from_max_to_one() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        c.set_next_xid(i32::MAX);
        let mut rx = Vec::new();
        for _ in 0..3 {
            let (o, r) = get_data("/app/a", None);
            rx.push(r);
            c.submit(o, now);
        }
        let xids: Vec<i32> = headers(&c.take_outgoing()).iter().map(|h| h.0).collect();
        assert_eq!(xids, vec![i32::MAX, 1, 2]);
        for x in xids {
            c.on_frame(reply(x, 1, 0, Some(data_body())), now).unwrap();
        }
        for mut r in rx {
            assert!(r.try_recv().unwrap().is_ok());
        }
    }

    #[test]
    fn notification_before_reply_and_watch_armed_only_on_success() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (wtx, mut wrx) = oneshot::channel();
        let (o, mut r) = get_data("/app/a", Some(wtx));
        c.submit(o, now);
        // A failed getData arms nothing.
        c.on_frame(reply(1, 3, ErrorCode::NoNode.code(), None), now)
            .unwrap();
        assert_eq!(r.try_recv().unwrap(), Err(Error::NoNode));
        assert_eq!(c.watch_counts(), WatchCounts::default());
        assert!(wrx.try_recv().is_err());

        let (wtx, mut wrx) = oneshot::channel();
        let (o, mut r) = get_data("/app/a", Some(wtx));
        c.submit(o, now);
        c.on_frame(reply(2, 4, 0, Some(data_body())), now).unwrap();
        assert!(r.try_recv().unwrap().is_ok());
        assert_eq!(c.watch_counts().data, 1);
        c.on_frame(notification(EventType::NodeDataChanged, "/app/a"), now)
            .unwrap();
        let ev = wrx.try_recv().unwrap();
        assert_eq!(ev.path, "/a");
        assert_eq!(ev.event_type, EventType::NodeDataChanged);
        assert_eq!(c.watch_counts().data, 0);
    }

    #[test]
    fn exists_on_missing_node_arms_exist_watch() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (wtx, mut wrx) = oneshot::channel();
        let (tx, _rx) = oneshot::channel();
        c.submit(
            Outgoing {
                request: Request::Exists(PathWatch {
                    path: "/app/n".into(),
                    watch: true,
                }),
                reply: tx,
                watch: Some(WatchReg::Exists("/app/n".into(), wtx.into())),
                deadline: None,
            },
            now,
        );
        c.on_frame(reply(1, 3, ErrorCode::NoNode.code(), None), now)
            .unwrap();
        assert_eq!(c.watch_counts().exist, 1);
        c.on_frame(notification(EventType::NodeCreated, "/app/n"), now)
            .unwrap();
        assert_eq!(wrx.try_recv().unwrap().event_type, EventType::NodeCreated);
    }

    #[test]
    fn persistent_recursive_gets_subtree_but_not_child_events() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (stx, mut srx) = mpsc::unbounded_channel();
        let (tx, _rx) = oneshot::channel();
        c.submit(
            Outgoing {
                request: Request::AddWatch(corral_proto::request::PathType {
                    path: "/app".into(),
                    kind: 1,
                }),
                reply: tx,
                watch: Some(WatchReg::PersistentRecursive("/app".into(), stx.into())),
                deadline: None,
            },
            now,
        );
        c.on_frame(reply(1, 3, 0, Some(Response::AddWatch)), now)
            .unwrap();
        c.on_frame(notification(EventType::NodeCreated, "/app/x/y"), now)
            .unwrap();
        c.on_frame(notification(EventType::NodeChildrenChanged, "/app/x"), now)
            .unwrap();
        c.on_frame(notification(EventType::NodeDeleted, "/app"), now)
            .unwrap();
        c.on_frame(notification(EventType::NodeCreated, "/other"), now)
            .unwrap();
        let a = srx.try_recv().unwrap();
        assert_eq!(
            (a.event_type, a.path.as_str()),
            (EventType::NodeCreated, "/x/y")
        );
        let b = srx.try_recv().unwrap();
        assert_eq!(
            (b.event_type, b.path.as_str()),
            (EventType::NodeDeleted, "/")
        );
        assert!(srx.try_recv().is_err());
        assert_eq!(c.watch_counts().recursive, 1);
    }

    #[test]
    fn connection_loss_fails_in_flight_and_rearms_watches_on_reconnect() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (wtx, _wrx) = oneshot::channel();
        let (o, _r) = get_data("/app/a", Some(wtx));
        c.submit(o, now);
        c.on_frame(reply(1, 7, 0, Some(data_body())), now).unwrap();
        let (o, mut r) = get_data("/app/b", None);
        c.submit(o, now);
        c.take_outgoing();
        c.on_connection_lost();
        assert_eq!(c.state(), SessionState::Disconnected);
        assert_eq!(r.try_recv().unwrap(), Err(Error::ConnectionLoss));
        c.check_invariants();
        c.on_handshake(connect_response(5, 6000), "h2", now)
            .unwrap();
        let frames = c.take_outgoing();
        assert_eq!(headers(&frames), vec![(-8, 101)]);
        let mut rd = Reader::new(frames[0].slice(12..));
        let sw = Request::decode(101, &mut rd).unwrap();
        match sw {
            Request::SetWatches(sw) => {
                assert_eq!(sw.relative_zxid, 7);
                assert_eq!(sw.data_watches, vec!["/app/a".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        c.on_frame(reply(-8, 8, 0, None), now).unwrap();
        assert_eq!(c.in_flight_len(), 0);
    }

    fn remove(
        path: &str,
        kind: WatcherType,
        local: bool,
    ) -> (Outgoing, oneshot::Receiver<ReplyResult>) {
        let (tx, rx) = oneshot::channel();
        (
            Outgoing {
                request: Request::RemoveWatches(corral_proto::request::PathType {
                    path: path.into(),
                    kind: kind.code(),
                }),
                reply: tx,
                watch: Some(WatchReg::Remove {
                    path: path.into(),
                    kind,
                    local,
                }),
                deadline: None,
            },
            rx,
        )
    }

    /// A core with an event stream and the Java rule for failed connection attempts.
    fn java_core() -> (Core, mpsc::UnboundedReceiver<SessionEvent>) {
        let (stx, _) = watch::channel(SessionState::Connecting);
        let (itx, _) = watch::channel(SessionInfo::default());
        let mut c = Core::new(
            CoreConfig {
                session_timeout: Duration::from_secs(9),
                chroot: Chroot::new("/app").unwrap(),
                can_be_read_only: false,
                session: None,
                fail_queued_on_connect_failure: true,
            },
            stx,
            itx,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        c.set_event_sink(tx);
        (c, rx)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SessionEvent>) -> Vec<SessionEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn watch_event(t: EventType, state: KeeperState, path: &str) -> SessionEvent {
        SessionEvent::Watch(WatchedEvent {
            event_type: t,
            state,
            path: path.into(),
            zxid: -1,
        })
    }

    #[test]
    fn dropped_watchers_are_not_rearmed_detached_ones_are_and_removal_notifies() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (keep_tx, mut keep_rx) = oneshot::channel();
        let (drop_tx, drop_rx) = oneshot::channel();
        let (detach_tx, detach_rx) = oneshot::channel();
        let detached = Arc::new(AtomicBool::new(false));
        let (o1, _r1) = get_data("/app/keep", Some(keep_tx));
        let (o2, _r2) = get_data("/app/gone", Some(drop_tx));
        let (mut o3, _r3) = get_data("/app/detached", None);
        o3.watch = Some(WatchReg::Data(
            "/app/detached".into(),
            Watcher {
                tx: detach_tx,
                detached: detached.clone(),
            },
        ));
        for o in [o1, o2, o3] {
            c.submit(o, now);
        }
        for xid in 1..=3 {
            c.on_frame(reply(xid, 2, 0, Some(data_body())), now)
                .unwrap();
        }
        drop(drop_rx); // the application dropped its WatchFuture
        detached.store(true, Ordering::Release); // ... and detached this one
        drop(detach_rx);
        assert_eq!(c.watch_counts().data, 2);
        c.take_outgoing();
        c.on_connection_lost();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let frames = c.take_outgoing();
        match Request::decode(101, &mut Reader::new(frames[0].slice(12..))).unwrap() {
            Request::SetWatches(sw) => assert_eq!(
                sw.data_watches,
                vec!["/app/detached".to_string(), "/app/keep".to_string()]
            ),
            other => panic!("{other:?}"),
        }
        c.on_frame(reply(-8, 2, 0, None), now).unwrap();
        let (o, mut r) = remove("/app/keep", WatcherType::Data, false);
        c.submit(o, now);
        c.on_frame(reply(4, 3, 0, None), now).unwrap();
        assert!(r.try_recv().unwrap().is_ok());
        let ev = keep_rx.try_recv().unwrap();
        assert_eq!(
            (ev.event_type, ev.state, ev.path.as_str()),
            (
                EventType::DataWatchRemoved,
                KeeperState::SyncConnected,
                "/keep"
            )
        );
        let (o, mut r) = remove("/app/keep", WatcherType::Data, false);
        c.submit(o, now);
        c.on_frame(reply(5, 3, 0, None), now).unwrap();
        assert_eq!(r.try_recv().unwrap(), Err(Error::NoWatcher));
        assert!(c.has_local_watch("/app/detached", WatcherType::Data));
        c.check_invariants();
    }

    #[test]
    fn event_stream_has_each_notification_once_and_every_state_change() {
        let (mut c, mut events) = java_core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        // data, exist and child watches on one node and a recursive watch above it
        let (d, mut d_rx) = oneshot::channel();
        let (o, _) = get_data("/app/a", Some(d));
        c.submit(o, now);
        let (e, mut e_rx) = oneshot::channel();
        let (mut o, _) = get_data("/app/a", None);
        o.watch = Some(WatchReg::Exists("/app/a".into(), e.into()));
        c.submit(o, now);
        let (ch, mut ch_rx) = oneshot::channel();
        let (mut o, _) = get_data("/app/a", None);
        o.watch = Some(WatchReg::Child("/app/a".into(), ch.into()));
        c.submit(o, now);
        let (r, mut r_rx) = mpsc::unbounded_channel();
        let (mut o, _) = get_data("/app", None);
        o.watch = Some(WatchReg::PersistentRecursive("/app".into(), r.into()));
        c.submit(o, now);
        for xid in 1..=4 {
            c.on_frame(reply(xid, 2, 0, Some(data_body())), now)
                .unwrap();
        }
        c.on_frame(notification(EventType::NodeDeleted, "/app/a"), now)
            .unwrap();
        for got in [
            d_rx.try_recv().unwrap(),
            e_rx.try_recv().unwrap(),
            ch_rx.try_recv().unwrap(),
            r_rx.try_recv().unwrap(),
        ] {
            assert_eq!(
                (got.event_type, got.path.as_str()),
                (EventType::NodeDeleted, "/a")
            );
        }
        // a notification nobody local waits for still reaches the stream
        c.on_frame(notification(EventType::NodeCreated, "/other"), now)
            .unwrap();
        c.on_connection_lost();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        c.on_frame(reply(-8, 3, 0, None), now).unwrap(); // setWatches re-arms the recursive one
        let (tx, _rx) = oneshot::channel();
        c.close(tx, now);
        let xid = headers(&c.take_outgoing()).last().unwrap().0;
        c.on_frame(reply(xid, 3, 0, None), now).unwrap();
        let deleted = SessionEvent::Watch(WatchedEvent {
            event_type: EventType::NodeDeleted,
            state: KeeperState::SyncConnected,
            path: "/a".into(),
            zxid: -1,
        });
        let created = SessionEvent::Watch(WatchedEvent {
            event_type: EventType::NodeCreated,
            state: KeeperState::SyncConnected,
            path: "/other".into(),
            zxid: -1,
        });
        assert_eq!(
            drain(&mut events),
            vec![
                SessionEvent::State(SessionState::Connected),
                deleted,
                created,
                SessionEvent::State(SessionState::Disconnected),
                SessionEvent::State(SessionState::Connected),
                SessionEvent::State(SessionState::Closed),
            ]
        );
        c.check_invariants();
    }

    #[test]
    fn remove_watches_is_settled_like_javas_client() {
        let (mut c, mut events) = java_core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        drain(&mut events);
        let no_watcher = ErrorCode::NoWatcher.code();
        // Sends `o` and answers it with `rc` (and `body` on success).
        let answer_with =
            |c: &mut Core, o: Outgoing, mut rx: oneshot::Receiver<ReplyResult>, rc, body| {
                c.submit(o, now);
                let xid = headers(&c.take_outgoing()).last().unwrap().0;
                c.on_frame(reply(xid, 3, rc, (rc == 0).then_some(body)), now)
                    .unwrap();
                rx.try_recv().unwrap().map(|_| ())
            };
        let answer = |c: &mut Core, o, rx, rc| answer_with(c, o, rx, rc, Response::Empty);
        let arm = |c: &mut Core, reg: WatchReg| {
            let (mut o, rx) = get_data("/app/n", None);
            o.watch = Some(reg);
            assert_eq!(answer_with(c, o, rx, 0, data_body()), Ok(()));
        };
        // Nothing local: NoWatcher, whatever the server says.
        let (o, rx) = remove("/app/n", WatcherType::Any, false);
        assert_eq!(answer(&mut c, o, rx, 0), Err(Error::NoWatcher));

        // A persistent watch counts for Children and Data: the server's error comes through,
        // and its success removes nothing of the type (NoWatcher).
        let (p, mut p_rx) = mpsc::unbounded_channel();
        arm(&mut c, WatchReg::Persistent("/app/n".into(), p.into()));
        let (o, rx) = remove("/app/n", WatcherType::Children, false);
        let no_auth = ErrorCode::NoAuth.code();
        assert_eq!(answer(&mut c, o, rx, no_auth), Err(Error::NoAuth));
        let (o, rx) = remove("/app/n", WatcherType::Data, false);
        assert_eq!(answer(&mut c, o, rx, 0), Err(Error::NoWatcher));
        assert!(p_rx.try_recv().is_err());

        // `local`: removed whatever the server said.
        let (d, mut d_rx) = oneshot::channel();
        arm(&mut c, WatchReg::Data("/app/n".into(), d.into()));
        let (o, rx) = remove("/app/n", WatcherType::Data, false);
        assert_eq!(answer(&mut c, o, rx, no_watcher), Err(Error::NoWatcher));
        let (o, rx) = remove("/app/n", WatcherType::Data, true);
        assert_eq!(answer(&mut c, o, rx, no_watcher), Ok(()));
        assert_eq!(
            d_rx.try_recv().unwrap().event_type,
            EventType::DataWatchRemoved
        );

        // Any: one event per type on the stream (child, data, persistent), each handle told.
        let (ch, mut ch_rx) = oneshot::channel();
        arm(&mut c, WatchReg::Child("/app/n".into(), ch.into()));
        let (e, mut e_rx) = oneshot::channel();
        arm(&mut c, WatchReg::Exists("/app/n".into(), e.into()));
        drain(&mut events);
        let (o, rx) = remove("/app/n", WatcherType::Any, false);
        assert_eq!(answer(&mut c, o, rx, 0), Ok(()));
        let sync = KeeperState::SyncConnected;
        assert_eq!(
            drain(&mut events),
            vec![
                watch_event(EventType::ChildWatchRemoved, sync, "/n"),
                watch_event(EventType::DataWatchRemoved, sync, "/n"),
                watch_event(EventType::PersistentWatchRemoved, sync, "/n"),
            ]
        );
        assert_eq!(
            ch_rx.try_recv().unwrap().event_type,
            EventType::ChildWatchRemoved
        );
        assert_eq!(
            e_rx.try_recv().unwrap().event_type,
            EventType::DataWatchRemoved
        );
        assert_eq!(
            p_rx.try_recv().unwrap().event_type,
            EventType::PersistentWatchRemoved
        );
        assert_eq!(c.watch_counts(), WatchCounts::default());

        // `local` with the connection lost while in flight: removed, state Disconnected.
        let (ch, mut ch_rx) = oneshot::channel();
        arm(&mut c, WatchReg::Child("/app/n".into(), ch.into()));
        let (o, mut local_rx) = remove("/app/n", WatcherType::Children, true);
        c.submit(o, now);
        let (o, mut remote_rx) = remove("/app/n", WatcherType::Children, false);
        c.submit(o, now);
        drain(&mut events);
        c.on_connection_lost();
        assert_eq!(local_rx.try_recv().unwrap().map(|_| ()), Ok(()));
        // the second found nothing left: NoWatcher comes before the lost connection
        assert_eq!(
            remote_rx.try_recv().unwrap().map(|_| ()),
            Err(Error::NoWatcher)
        );
        let lost = KeeperState::Disconnected;
        assert_eq!(
            ch_rx.try_recv().unwrap(),
            WatchedEvent {
                event_type: EventType::ChildWatchRemoved,
                state: lost,
                path: "/n".into(),
                zxid: -1
            }
        );
        assert_eq!(
            drain(&mut events),
            vec![
                watch_event(EventType::ChildWatchRemoved, lost, "/n"),
                SessionEvent::State(SessionState::Disconnected),
            ]
        );
        c.check_invariants();
    }

    #[test]
    fn failed_connect_attempts_fail_queued_requests_with_the_java_rule() {
        // Without the rule: counted and reported, the request waits for a connection.
        let mut c = core();
        let now = Instant::now();
        let (o, mut r) = get_data("/app/a", None);
        c.submit(o, now);
        c.on_connect_failed("h:1", "refused");
        assert_eq!(c.connect_failure_counter().load(Ordering::Relaxed), 1);
        assert!(r.try_recv().is_err());
        assert_eq!(c.unsent_len(), 1);
        let (tx, mut closed) = oneshot::channel();
        c.close(tx, now);
        assert_eq!(c.state(), SessionState::Closed);
        assert!(closed.try_recv().unwrap().is_ok());

        // With it: the request fails, a local removal is done, a close waits for an attempt.
        let (mut c, mut events) = java_core();
        let (o, mut r) = get_data("/app/a", None);
        c.submit(o, now);
        let (auth_tx, mut auth_rx) = oneshot::channel();
        c.add_auth("digest".into(), None, auth_tx, now);
        c.on_connect_failed("h:1", "refused");
        assert_eq!(r.try_recv().unwrap(), Err(Error::ConnectionLoss));
        assert_eq!(auth_rx.try_recv().unwrap(), Err(Error::ConnectionLoss));
        assert_eq!(
            drain(&mut events),
            vec![SessionEvent::ConnectFailed {
                host: "h:1".into(),
                reason: "refused".into()
            }]
        );
        let (tx, mut closed) = oneshot::channel();
        c.close(tx, now);
        assert_eq!(c.state(), SessionState::Connecting);
        let (o, mut r) = get_data("/app/b", None);
        c.submit(o, now);
        assert_eq!(r.try_recv().unwrap(), Err(Error::Closed));
        c.check_invariants();
        // The next connection carries the credential (a null buffer) and then the close.
        c.on_handshake(connect_response(5, 6000), "h:2", now)
            .unwrap();
        let frames = c.take_outgoing();
        assert_eq!(headers(&frames), vec![(-4, 100), (1, -11)]);
        assert!(frames[0].ends_with(b"\x00\x00\x00\x06digest\xff\xff\xff\xff"));
        c.on_frame(reply(-4, 0, 0, None), now).unwrap();
        c.on_frame(reply(1, 9, 0, None), now).unwrap();
        assert_eq!(c.state(), SessionState::Closed);
        assert!(closed.try_recv().unwrap().is_ok());
        c.check_invariants();

        // A close queued while disconnected ends the session when the attempt fails.
        let (mut c, _events) = java_core();
        let (tx, mut closed) = oneshot::channel();
        c.close(tx, now);
        c.on_connect_failed("h:1", "timed out");
        assert_eq!(c.state(), SessionState::Closed);
        assert!(closed.try_recv().unwrap().is_ok());
        c.check_invariants();
    }

    #[test]
    fn set_watches_batches_stay_under_limit() {
        let mut reg = WatchRegistry::default();
        let mut keep = Vec::new();
        for i in 0..3000 {
            let (tx, rx) = oneshot::channel();
            keep.push(rx);
            reg.data
                .entry(format!("/{:0100}", i))
                .or_default()
                .push(tx.into());
        }
        let (tx, _keep_stream) = mpsc::unbounded_channel();
        reg.persistent
            .entry("/p".into())
            .or_default()
            .push(tx.into());
        let batches = reg.set_watches_batches(1);
        assert!(batches.len() >= 3);
        let mut total = 0;
        for (op, b) in &batches {
            let bytes: usize = b
                .data_watches
                .iter()
                .chain(&b.persistent_watches)
                .map(|p| p.len())
                .sum();
            assert!(bytes <= SET_WATCHES_BATCH_BYTES_MAX);
            total += b.data_watches.len() + b.persistent_watches.len();
            let v2 = !b.persistent_watches.is_empty();
            assert_eq!(*op == OpCode::SetWatches2, v2);
        }
        assert_eq!(total, 3001);
    }

    #[test]
    fn expiry_ends_watches_and_fails_everything() {
        let mut c = core();
        let now = Instant::now();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        let (wtx, mut wrx) = oneshot::channel();
        let (o, _r) = get_data("/app/a", Some(wtx));
        c.submit(o, now);
        c.on_frame(reply(1, 7, 0, Some(data_body())), now).unwrap();
        c.on_connection_lost();
        let (o, mut r) = get_data("/app/b", None);
        c.submit(o, now);
        assert_eq!(
            c.on_handshake(connect_response(0, 0), "h", now).unwrap(),
            HandshakeOutcome::Expired
        );
        assert_eq!(c.state(), SessionState::Expired);
        assert_eq!(r.try_recv().unwrap(), Err(Error::SessionExpired));
        let ev = wrx.try_recv().unwrap();
        assert_eq!(
            (ev.event_type, ev.state),
            (EventType::None, KeeperState::Expired)
        );
        c.check_invariants();
    }

    #[test]
    fn ping_and_read_timeout() {
        let mut c = core();
        let t0 = Instant::now();
        c.on_handshake(connect_response(5, 9000), "h", t0).unwrap();
        c.take_outgoing();
        assert_eq!(c.ping_interval(), Duration::from_secs(3));
        assert_eq!(c.tick(t0 + Duration::from_secs(2)), TickAction::Nothing);
        assert!(c.take_outgoing().is_empty());
        assert_eq!(c.tick(t0 + Duration::from_secs(3)), TickAction::Nothing);
        assert_eq!(headers(&c.take_outgoing()), vec![(-2, 11)]);
        c.on_frame(reply(-2, 1, 0, None), t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(
            c.tick(t0 + Duration::from_secs(4 + 6)),
            TickAction::ReadTimeout
        );
    }

    #[test]
    fn request_timeout_keeps_fifo_slot() {
        let mut c = core();
        let t0 = Instant::now();
        c.on_handshake(connect_response(5, 60000), "h", t0).unwrap();
        let (tx, mut rx) = oneshot::channel();
        c.submit(
            Outgoing {
                request: Request::Sync {
                    path: "/app".into(),
                },
                reply: tx,
                watch: None,
                deadline: Some(t0 + Duration::from_millis(10)),
            },
            t0,
        );
        let (o2, mut r2) = get_data("/app/b", None);
        c.submit(o2, t0);
        c.tick(t0 + Duration::from_millis(20));
        assert_eq!(rx.try_recv().unwrap(), Err(Error::Timeout));
        c.on_frame(
            reply(
                1,
                1,
                0,
                Some(Response::Sync {
                    path: "/app".into(),
                }),
            ),
            t0,
        )
        .unwrap();
        c.on_frame(reply(2, 1, 0, Some(data_body())), t0).unwrap();
        assert!(r2.try_recv().unwrap().is_ok());
    }

    #[test]
    fn auth_replayed_after_reconnect_and_auth_failure_is_terminal() {
        let mut c = core();
        let now = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        c.add_auth("digest".into(), Some(Bytes::from_static(b"u:p")), tx, now);
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        assert_eq!(headers(&c.take_outgoing()), vec![(-4, 100)]);
        c.on_frame(reply(-4, 0, 0, None), now).unwrap();
        assert!(rx.try_recv().unwrap().is_ok());
        c.on_connection_lost();
        c.on_handshake(connect_response(5, 6000), "h", now).unwrap();
        assert_eq!(headers(&c.take_outgoing()), vec![(-4, 100)]);
        c.on_frame(reply(-4, 0, ErrorCode::AuthFailed.code(), None), now)
            .unwrap();
        assert_eq!(c.state(), SessionState::AuthFailed);
        c.check_invariants();
    }
}

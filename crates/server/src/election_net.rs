//! The election-port transport (ZooKeeper's `QuorumCnxManager`) around the pure
//! [`corral_zab::Election`].
//!
//! **Owns** the election listener, one TCP connection per peer, the per-peer send queues and
//! the task that drives the `Election` (stepping received notifications, ticking it every
//! `tick`, carrying out its actions). What a notification means is decided in `corral-zab`;
//! the byte formats are `corral_proto::quorum`'s.
//!
//! **Rules** (`QuorumCnxManager` of 3.8, confirmed by the capture in
//! `crates/proto/tests/fixtures/quorum/README.md`):
//! - An initiator writes the header (protocol version -65536, its sid, the `host:port` of its
//!   own election address). A connection survives only if the initiator has the larger sid:
//!   an initiator with the smaller sid writes the header and closes; a receiver with the
//!   larger sid closes the connection, drops any connection it had to that peer, and dials
//!   back to the address in the header (with a full header too).
//! - One live connection per peer: a newer one replaces the older, which is closed.
//! - Each peer has a send queue of capacity one (a newer notification replaces an unsent one),
//!   and on every new connection the last message sent to that peer is sent again unless
//!   something newer waits.
//! - A peer is dialled (with `cnx_timeout`) only when something is queued for it and it has
//!   no connection, or to dial back. Each peer has its own dialer task, so an unreachable peer
//!   never delays sends to the others.
//! - A frame is `int len` + payload, `1 <= len <= ELECTION_MESSAGE_BYTES_MAX`. A bad length or
//!   header closes that connection only, with a log line. A well-framed payload that does not
//!   decode as a notification is skipped and the connection kept, as Java's
//!   `WorkerReceiver` does.
//! - Connections presenting an unknown sid, our own sid, or `OBSERVER_ID` (observers without
//!   an id are not supported) are closed with a log line.
//!
//! **Invariants**: at most one live connection per peer (`Slot::live`); every queue is
//! bounded (one message per peer, [`INBOX_CAPACITY`] received notifications, at most
//! [`HANDSHAKES_IN_FLIGHT_MAX`] unidentified inbound connections); no byte from the network
//! can panic this module.
//!
//! **Threading**: tokio tasks — one acceptor, one handshake task per inbound connection, one
//! dialer per peer, a reader and a writer per live connection, and the core task, the only
//! owner of the `Election`. Shared per-peer state sits behind a short-held `std` mutex and
//! every change to it is announced on the peer's `watch` channel. [`ElectionNet::shutdown`]
//! (also on drop) aborts every task, which closes every socket.

use bytes::{Bytes, BytesMut};
use corral_proto::quorum::{
    check_election_frame, Check, ElectionHeader, Notification, ServerState, Sid,
    ELECTION_MESSAGE_BYTES_MAX, OBSERVER_ID,
};
use corral_zab::election::{NOTIFICATION_INTERVAL_MAX_MS, NOTIFICATION_INTERVAL_MIN_MS};
use corral_zab::{Action, Election, ElectionConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::AbortHandle;

/// Election tick used by [`ElectionNetConfig::new`].
pub const ELECTION_TICK_DEFAULT: Duration = Duration::from_millis(10);
/// Java's `finalizeWait` (the server passes `min(200 ms, tickTime)` instead).
pub const FINALIZE_WAIT_DEFAULT: Duration = Duration::from_millis(200);
/// Java's `cnxTimeout` default: connecting to a peer and exchanging the header.
pub const CNX_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Received notifications waiting for the core task; readers wait (TCP backpressure) when full.
pub const INBOX_CAPACITY: usize = 256;
/// Inbound connections that have not yet sent their header; more are closed at once.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 64;
/// Bytes reserved per read on an election connection.
const READ_CHUNK_BYTES: usize = 4096;

/// One member of the ensemble as the election port sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionPeer {
    pub sid: Sid,
    pub election_addr: SocketAddr,
    /// A participant (false: an observer).
    pub voter: bool,
}

/// Everything the transport needs; built by the server from `zoo.cfg`.
#[derive(Debug, Clone)]
pub struct ElectionNetConfig {
    pub my_sid: Sid,
    /// My election address (the listener binds it; its `host:port` goes in headers).
    pub listen_addr: SocketAddr,
    /// Every member, me included.
    pub peers: Vec<ElectionPeer>,
    /// Quorum config text put in every notification (`QuorumMaj.toString()`); Java peers
    /// parse it and drop notifications whose text does not parse.
    pub config_text: Bytes,
    /// Election tick.
    pub tick: Duration,
    /// How long a server that sees a quorum for its proposal waits for a better one.
    pub finalize_wait: Duration,
    /// Connect timeout (and header exchange timeout), `cnxTimeout`.
    pub cnx_timeout: Duration,
}

impl ElectionNetConfig {
    /// A config with the default tick, finalize wait and connect timeout.
    pub fn new(
        my_sid: Sid,
        listen_addr: SocketAddr,
        peers: Vec<ElectionPeer>,
        config_text: Bytes,
    ) -> ElectionNetConfig {
        ElectionNetConfig {
            my_sid,
            listen_addr,
            peers,
            config_text,
            tick: ELECTION_TICK_DEFAULT,
            finalize_wait: FINALIZE_WAIT_DEFAULT,
            cnx_timeout: CNX_TIMEOUT_DEFAULT,
        }
    }

    /// The election's timing in ticks: `finalize_wait` from the config, the re-send interval
    /// Java's (200 ms doubling to 60 s); each rounded up, at least one tick.
    pub fn election_config(&self) -> ElectionConfig {
        ElectionConfig {
            finalize_wait_ticks: ticks_of(self.finalize_wait, self.tick),
            notification_interval_min_ticks: ticks_of(
                Duration::from_millis(NOTIFICATION_INTERVAL_MIN_MS),
                self.tick,
            ),
            notification_interval_max_ticks: ticks_of(
                Duration::from_millis(NOTIFICATION_INTERVAL_MAX_MS),
                self.tick,
            ),
        }
    }

    fn validate(&self) -> io::Result<()> {
        let bad = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.tick.is_zero() {
            return bad("election tick must be positive".into());
        }
        let mut seen = BTreeSet::new();
        for p in &self.peers {
            if p.sid == OBSERVER_ID {
                return bad(format!("sid {} (OBSERVER_ID) is not supported", p.sid));
            }
            if !seen.insert(p.sid) {
                return bad(format!("sid {} listed twice", p.sid));
            }
        }
        if !seen.contains(&self.my_sid) {
            return bad(format!("my sid {} is not among the peers", self.my_sid));
        }
        if !self.peers.iter().any(|p| p.voter) {
            return bad("an ensemble needs voters".into());
        }
        Ok(())
    }
}

fn ticks_of(d: Duration, tick: Duration) -> u32 {
    let t = tick.as_nanos().max(1);
    d.as_nanos().div_ceil(t).clamp(1, u32::MAX as u128) as u32
}

/// The outcome of one election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub leader: Sid,
    /// LEADING, FOLLOWING or OBSERVING.
    pub state: ServerState,
    /// The logical clock (election round) at the decision.
    pub round: i64,
}

/// The per-peer state shared by the dialer, the connection tasks and the core task.
#[derive(Debug, Default)]
struct Slot {
    /// The send queue (capacity one): a whole frame.
    pending: Option<Bytes>,
    /// The last frame handed to a connection, sent again on the next connection.
    last_sent: Option<Bytes>,
    live: Option<Live>,
    /// The dialer should try once (set by a send without connection, or a dial-back).
    want_dial: bool,
    /// Address from the header of a refused connection, for the next dial only.
    dial_back: Option<SocketAddr>,
}

#[derive(Debug)]
struct Live {
    id: u64,
    tasks: Vec<AbortHandle>,
}

impl Live {
    fn close(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    voter: bool,
    slot: Mutex<Slot>,
    /// Bumped on every change of `slot`.
    changed: watch::Sender<u64>,
}

impl Peer {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

#[derive(Debug, Default)]
struct Tasks {
    shut: bool,
    handles: Vec<AbortHandle>,
}

/// An open, identified connection (for [`ElectionNet::connections`]).
#[derive(Debug, Clone, Copy)]
struct OpenConn {
    sid: Sid,
    local: SocketAddr,
    remote: SocketAddr,
}

#[derive(Debug)]
struct Shared {
    my_sid: Sid,
    /// `host:port` written in every header we send.
    my_address: String,
    cnx_timeout: Duration,
    /// Every member but me.
    peers: BTreeMap<Sid, Peer>,
    inbox: mpsc::Sender<(Sid, Notification)>,
    tasks: Mutex<Tasks>,
    next_conn_id: AtomicU64,
    handshakes: AtomicUsize,
    open: Mutex<BTreeMap<u64, OpenConn>>,
}

impl Shared {
    /// Spawns a task that [`ElectionNet::shutdown`] aborts; `None` once shut down.
    fn spawn<F>(&self, fut: F) -> Option<AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if t.shut {
            return None;
        }
        t.handles.retain(|h| !h.is_finished());
        let h = tokio::spawn(fut).abort_handle();
        t.handles.push(h.clone());
        Some(h)
    }

    fn shutdown(&self) {
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        t.shut = true;
        for h in t.handles.drain(..) {
            h.abort();
        }
    }

    /// Queues `frame` for `to`, replacing an unsent one.
    fn send(&self, to: Sid, frame: Bytes) {
        let Some(peer) = self.peers.get(&to) else {
            if to != self.my_sid {
                tracing::debug!(
                    my_sid = self.my_sid,
                    to,
                    "notification for an unknown sid dropped"
                );
            }
            return;
        };
        {
            let mut slot = peer.slot();
            slot.pending = Some(frame);
            if slot.live.is_none() {
                slot.want_dial = true;
            }
        }
        peer.bump();
    }

    /// Forgets live connection `id` to `sid` (if it still is the live one) and closes it.
    fn drop_live(&self, sid: Sid, id: u64) {
        let Some(peer) = self.peers.get(&sid) else {
            return;
        };
        let old = {
            let mut slot = peer.slot();
            if slot.live.as_ref().is_some_and(|l| l.id == id) {
                // Something queued goes out on the next connection rather than waiting for
                // the next notification.
                slot.want_dial = slot.pending.is_some();
                slot.live.take()
            } else {
                None
            }
        };
        if let Some(old) = old {
            peer.bump();
            old.close();
        }
    }

    /// Makes `stream` the live connection to `sid`; `buffered` are bytes already read after
    /// the header. The previous live connection, if any, is closed.
    fn install(self: &Arc<Self>, sid: Sid, stream: TcpStream, buffered: BytesMut) {
        let Some(peer) = self.peers.get(&sid) else {
            return;
        };
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let (local, remote) = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(r)) => (l, r),
            _ => return, // already closed
        };
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, OpenConn { sid, local, remote });
        let guard = Arc::new(OpenGuard {
            shared: self.clone(),
            id,
        });
        let (r, w) = stream.into_split();
        let old = {
            // Spawned under the slot lock, so both tasks see themselves live when they start.
            let mut slot = peer.slot();
            let reader = self.spawn(read_loop(self.clone(), sid, id, r, buffered, guard.clone()));
            let writer = self.spawn(write_loop(self.clone(), sid, id, w, guard));
            let (Some(reader), Some(writer)) = (reader, writer) else {
                return; // shut down; the tasks were never spawned or are aborted
            };
            slot.want_dial = false;
            slot.dial_back = None;
            slot.live.replace(Live {
                id,
                tasks: vec![reader, writer],
            })
        };
        peer.bump();
        tracing::debug!(my_sid = self.my_sid, sid, %local, %remote, "election connection up");
        if let Some(old) = old {
            old.close();
        }
    }

    fn header(&self) -> Bytes {
        ElectionHeader::new(self.my_sid, &self.my_address).to_bytes()
    }

    /// One connection attempt to `sid` at `addr`.
    async fn dial(self: &Arc<Self>, sid: Sid, addr: SocketAddr) {
        let stream = match tokio::time::timeout(self.cnx_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(my_sid = self.my_sid, sid, %addr, "cannot open election channel: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(my_sid = self.my_sid, sid, %addr, "election connect timed out");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let header = self.header();
        match tokio::time::timeout(self.cnx_timeout, stream.write_all(&header)).await {
            Ok(Ok(())) => {}
            _ => {
                tracing::debug!(my_sid = self.my_sid, sid, %addr, "cannot write election header");
                return;
            }
        }
        if sid > self.my_sid {
            // The larger sid keeps the connection it initiates; this one only asks it to
            // dial back.
            tracing::debug!(
                my_sid = self.my_sid,
                sid,
                "smaller sid: dropping own connection"
            );
            return;
        }
        self.install(sid, stream, BytesMut::new());
    }
}

/// Removes a connection from [`Shared::open`] when its last task ends.
#[derive(Debug)]
struct OpenGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    sid: Sid,
    id: u64,
    mut r: OwnedReadHalf,
    mut buf: BytesMut,
    _guard: Arc<OpenGuard>,
) {
    let reason = loop {
        match check_election_frame(&buf) {
            Err(e) => break format!("bad frame ({e})"),
            Ok(Check::Complete { len }) => {
                let frame = buf.split_to(len);
                match Notification::decode(&frame[4..]) {
                    Ok(n) => {
                        if shared.inbox.send((sid, n)).await.is_err() {
                            return; // shutting down
                        }
                    }
                    Err(e) => tracing::warn!(
                        my_sid = shared.my_sid,
                        sid,
                        "skipping a malformed notification: {e}"
                    ),
                }
                continue;
            }
            Ok(Check::Incomplete) => {}
        }
        buf.reserve(READ_CHUNK_BYTES.min(ELECTION_MESSAGE_BYTES_MAX + 4));
        match r.read_buf(&mut buf).await {
            Ok(0) => break "closed by peer".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read error ({e})"),
        }
    };
    tracing::info!(
        my_sid = shared.my_sid,
        sid,
        "election connection closed: {reason}"
    );
    shared.drop_live(sid, id);
}

async fn write_loop(
    shared: Arc<Shared>,
    sid: Sid,
    id: u64,
    mut w: OwnedWriteHalf,
    _guard: Arc<OpenGuard>,
) {
    let Some(peer) = shared.peers.get(&sid) else {
        return;
    };
    let mut changed = peer.changed.subscribe();
    let resend = {
        let slot = peer.slot();
        if slot.pending.is_none() {
            slot.last_sent.clone()
        } else {
            None
        }
    };
    if let Some(frame) = resend {
        if let Err(e) = w.write_all(&frame).await {
            tracing::info!(my_sid = shared.my_sid, sid, "election send failed: {e}");
            shared.drop_live(sid, id);
            return;
        }
    }
    loop {
        let next = {
            let mut slot = peer.slot();
            if slot.live.as_ref().is_none_or(|l| l.id != id) {
                return;
            }
            let next = slot.pending.take();
            if next.is_some() {
                // As Java: recorded before the write, so a failed write is re-sent.
                slot.last_sent.clone_from(&next);
            }
            next
        };
        match next {
            Some(frame) => {
                if let Err(e) = w.write_all(&frame).await {
                    tracing::info!(my_sid = shared.my_sid, sid, "election send failed: {e}");
                    shared.drop_live(sid, id);
                    return;
                }
            }
            None => {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn dial_loop(shared: Arc<Shared>, sid: Sid) {
    let Some(peer) = shared.peers.get(&sid) else {
        return;
    };
    let mut changed = peer.changed.subscribe();
    loop {
        let target = {
            let mut slot = peer.slot();
            if slot.live.is_some() {
                slot.want_dial = false;
                slot.dial_back = None;
                None
            } else if slot.want_dial {
                slot.want_dial = false;
                Some(slot.dial_back.take().unwrap_or(peer.addr))
            } else {
                None
            }
        };
        match target {
            Some(addr) => shared.dial(sid, addr).await,
            None => {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if shared.handshakes.fetch_add(1, Ordering::SeqCst) >= HANDSHAKES_IN_FLIGHT_MAX {
                    shared.handshakes.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(my_sid = shared.my_sid, %remote, "too many election handshakes; closing");
                    continue;
                }
                let sh = shared.clone();
                let spawned = shared.spawn(async move {
                    handshake(sh.clone(), stream, remote).await;
                    sh.handshakes.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_none() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(my_sid = shared.my_sid, "election accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads the header (and whatever follows it) from an accepted connection.
async fn read_header(stream: &mut TcpStream) -> Result<(ElectionHeader, BytesMut), String> {
    let mut buf = BytesMut::with_capacity(64);
    loop {
        match ElectionHeader::decode(&buf) {
            Err(e) => return Err(format!("bad header ({e})")),
            Ok(Some((header, len))) => {
                let _ = buf.split_to(len);
                return Ok((header, buf));
            }
            Ok(None) => {}
        }
        buf.reserve(READ_CHUNK_BYTES);
        match stream.read_buf(&mut buf).await {
            Ok(0) => return Err("closed before the header".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error ({e})")),
        }
    }
}

async fn handshake(shared: Arc<Shared>, mut stream: TcpStream, remote: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let my_sid = shared.my_sid;
    let (header, buffered) =
        match tokio::time::timeout(shared.cnx_timeout, read_header(&mut stream)).await {
            Ok(Ok(h)) => h,
            Ok(Err(reason)) => {
                tracing::warn!(my_sid, %remote, "election connection closed: {reason}");
                return;
            }
            Err(_) => {
                tracing::warn!(my_sid, %remote, "election connection closed: no header in time");
                return;
            }
        };
    let sid = header.sid();
    if sid == OBSERVER_ID {
        tracing::warn!(my_sid, %remote, "observer without a sid (OBSERVER_ID) not supported; closing");
        return;
    }
    if sid == my_sid {
        tracing::warn!(my_sid, %remote, "connection from a server with my own sid; closing");
        return;
    }
    let Some(peer) = shared.peers.get(&sid) else {
        tracing::warn!(my_sid, sid, %remote, "connection from an unknown sid; closing");
        return;
    };
    if sid > my_sid {
        shared.install(sid, stream, buffered);
        return;
    }
    // The initiator has the smaller sid: close, drop what we had with it, and dial back to
    // the address it sent (our configured one for a legacy header or one that does not parse).
    drop(stream);
    let addr = match header.address_list().first() {
        Some(text) => resolve(text).await.unwrap_or_else(|| {
            tracing::warn!(my_sid, sid, address = %text, "header address does not resolve; dialling the configured one");
            peer.addr
        }),
        None => peer.addr,
    };
    let old = {
        let mut slot = peer.slot();
        slot.want_dial = true;
        slot.dial_back = Some(addr);
        slot.live.take()
    };
    peer.bump();
    if let Some(old) = old {
        old.close();
    }
}

async fn resolve(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    tokio::net::lookup_host(text).await.ok()?.next()
}

/// Requests from the handle to the core task.
#[derive(Debug, Default)]
struct Control {
    look: Option<(i64, i64, oneshot::Sender<Decision>)>,
    new_epoch: Option<i64>,
}

/// The core task: the only owner of the `Election`.
struct Core {
    shared: Arc<Shared>,
    my_sid: Sid,
    voters: Vec<Sid>,
    observers: Vec<Sid>,
    election_cfg: ElectionConfig,
    config_text: Bytes,
    election: Option<Election>,
    /// Notifications received before the first look (the newest per peer).
    early: BTreeMap<Sid, Notification>,
    reply: Option<oneshot::Sender<Decision>>,
}

impl Core {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<(Sid, Notification)>,
        control: Arc<(Mutex<Control>, Notify)>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = control.1.notified() => {
                    let (look, new_epoch) = {
                        let mut c = control.0.lock().unwrap_or_else(|e| e.into_inner());
                        (c.look.take(), c.new_epoch.take())
                    };
                    if let Some(epoch) = new_epoch {
                        if let Some(e) = self.election.as_mut() {
                            e.update_election_vote(epoch);
                        }
                    }
                    if let Some((last_zxid, current_epoch, reply)) = look {
                        self.look(last_zxid, current_epoch, reply);
                    }
                }
                msg = inbox.recv() => {
                    let Some((from, n)) = msg else { return };
                    match self.election.as_mut() {
                        Some(e) => {
                            let actions = e.step(from, n);
                            self.apply(actions);
                        }
                        None => {
                            self.early.insert(from, n);
                        }
                    }
                }
                _ = ticker.tick() => {
                    if let Some(e) = self.election.as_mut() {
                        let actions = e.tick();
                        self.apply(actions);
                    }
                }
            }
        }
    }

    fn look(&mut self, last_zxid: i64, current_epoch: i64, reply: oneshot::Sender<Decision>) {
        self.reply = Some(reply);
        match self.election.as_mut() {
            Some(e) => {
                let actions = e.restart(last_zxid, current_epoch);
                self.apply(actions);
            }
            None => {
                let mut e = Election::new(
                    self.my_sid,
                    self.voters.iter().copied(),
                    self.observers.iter().copied(),
                    last_zxid,
                    current_epoch,
                )
                .with_config(self.election_cfg)
                .with_config_text(self.config_text.clone());
                let mut actions = e.start();
                for (from, n) in std::mem::take(&mut self.early) {
                    actions.extend(e.step(from, n));
                }
                self.election = Some(e);
                self.apply(actions);
            }
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, notification } => {
                    self.shared.send(to, notification.to_frame());
                }
                Action::Broadcast(n) => {
                    let frame = n.to_frame();
                    for (&sid, peer) in &self.shared.peers {
                        if peer.voter {
                            self.shared.send(sid, frame.clone());
                        }
                    }
                }
                Action::Decided { leader, state } => {
                    let round = self.election.as_ref().map_or(0, |e| e.logical_clock());
                    let d = Decision {
                        leader,
                        state,
                        round,
                    };
                    tracing::info!(
                        my_sid = self.my_sid,
                        leader,
                        ?state,
                        round,
                        "election decided"
                    );
                    if let Some(r) = self.reply.take() {
                        let _ = r.send(d);
                    }
                }
            }
        }
    }
}

/// A running election transport. Dropping it shuts it down.
#[derive(Debug)]
pub struct ElectionNet {
    shared: Arc<Shared>,
    control: Arc<(Mutex<Control>, Notify)>,
    local_addr: SocketAddr,
}

impl ElectionNet {
    /// Binds `cfg.listen_addr` and starts listening and the tasks.
    pub async fn start(cfg: ElectionNetConfig) -> io::Result<ElectionNet> {
        cfg.validate()?;
        let listener = TcpListener::bind(cfg.listen_addr).await?;
        ElectionNet::start_on(cfg, listener)
    }

    /// Same on an already bound listener (its address is the one sent in headers; tests
    /// bind every member's listener first so nobody races for a port).
    pub fn start_on(cfg: ElectionNetConfig, listener: TcpListener) -> io::Result<ElectionNet> {
        cfg.validate()?;
        let local_addr = listener.local_addr()?;
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_CAPACITY);
        let peers: BTreeMap<Sid, Peer> = cfg
            .peers
            .iter()
            .filter(|p| p.sid != cfg.my_sid)
            .map(|p| {
                (
                    p.sid,
                    Peer {
                        addr: p.election_addr,
                        voter: p.voter,
                        slot: Mutex::new(Slot::default()),
                        changed: watch::channel(0).0,
                    },
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            my_sid: cfg.my_sid,
            my_address: local_addr.to_string(),
            cnx_timeout: cfg.cnx_timeout,
            peers,
            inbox: inbox_tx,
            tasks: Mutex::new(Tasks::default()),
            next_conn_id: AtomicU64::new(1),
            handshakes: AtomicUsize::new(0),
            open: Mutex::new(BTreeMap::new()),
        });
        let control = Arc::new((Mutex::new(Control::default()), Notify::new()));
        let core = Core {
            shared: shared.clone(),
            my_sid: cfg.my_sid,
            voters: cfg
                .peers
                .iter()
                .filter(|p| p.voter)
                .map(|p| p.sid)
                .collect(),
            observers: cfg
                .peers
                .iter()
                .filter(|p| !p.voter)
                .map(|p| p.sid)
                .collect(),
            election_cfg: cfg.election_config(),
            config_text: cfg.config_text.clone(),
            election: None,
            early: BTreeMap::new(),
            reply: None,
        };
        shared.spawn(core.run(inbox_rx, control.clone(), cfg.tick));
        shared.spawn(accept_loop(shared.clone(), listener));
        for &sid in shared.peers.keys() {
            shared.spawn(dial_loop(shared.clone(), sid));
        }
        tracing::info!(my_sid = cfg.my_sid, %local_addr, "election port listening");
        Ok(ElectionNet {
            shared,
            control,
            local_addr,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn my_sid(&self) -> Sid {
        self.shared.my_sid
    }

    /// Runs one election (the first call starts the election, later calls restart it with the
    /// given history) and resolves with the decision. Fails only once shut down. A second
    /// call while one is running takes over; the first then fails.
    pub async fn look(&self, last_zxid: i64, current_epoch: i64) -> io::Result<Decision> {
        let gone = || {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "election transport shut down (or the look was superseded)",
            )
        };
        let (tx, rx) = oneshot::channel();
        {
            // Under the task lock, so a shutdown either comes first (seen here) or clears
            // this request after it is stored.
            let t = self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner());
            if t.shut {
                return Err(gone());
            }
            let mut c = self.control.0.lock().unwrap_or_else(|e| e.into_inner());
            c.look = Some((last_zxid, current_epoch, tx));
        }
        self.control.1.notify_one();
        rx.await.map_err(|_| gone())
    }

    /// After discovery set a new epoch: peers asking later are told this epoch.
    pub fn update_election_vote(&self, new_epoch: i64) {
        {
            let mut c = self.control.0.lock().unwrap_or_else(|e| e.into_inner());
            c.new_epoch = Some(new_epoch);
        }
        self.control.1.notify_one();
    }

    /// Stops every task and closes every socket (the listener included). Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown();
        // A look the core task had not picked up yet fails rather than waits forever.
        self.control
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .look = None;
    }

    /// Debug: the open connections to `sid`, as (local, remote) addresses: the live one and
    /// any replaced one not yet closed.
    pub fn connections(&self, sid: Sid) -> Vec<(SocketAddr, SocketAddr)> {
        self.shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.sid == sid)
            .map(|c| (c.local, c.remote))
            .collect()
    }
}

impl Drop for ElectionNet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_never_reach_zero() {
        let tick = Duration::from_millis(10);
        assert_eq!(ticks_of(Duration::from_millis(200), tick), 20);
        assert_eq!(ticks_of(Duration::from_millis(15), tick), 2);
        assert_eq!(ticks_of(Duration::ZERO, tick), 1);
        let cfg = ElectionNetConfig {
            finalize_wait: Duration::from_millis(50),
            ..ElectionNetConfig::new(1, "127.0.0.1:0".parse().unwrap(), Vec::new(), Bytes::new())
        };
        let ec = cfg.election_config();
        assert_eq!(ec.finalize_wait_ticks, 5);
        assert_eq!(ec.notification_interval_min_ticks, 20);
        assert_eq!(ec.notification_interval_max_ticks, 6000);
    }

    #[test]
    fn config_validation() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let p = |sid, voter| ElectionPeer {
            sid,
            election_addr: a,
            voter,
        };
        let ok = ElectionNetConfig::new(1, a, vec![p(1, true), p(2, false)], Bytes::new());
        assert!(ok.validate().is_ok());
        let missing = ElectionNetConfig::new(3, a, vec![p(1, true)], Bytes::new());
        assert!(missing.validate().is_err());
        let twice = ElectionNetConfig::new(1, a, vec![p(1, true), p(1, true)], Bytes::new());
        assert!(twice.validate().is_err());
        let no_voter = ElectionNetConfig::new(1, a, vec![p(1, false)], Bytes::new());
        assert!(no_voter.validate().is_err());
        let obs_id =
            ElectionNetConfig::new(1, a, vec![p(1, true), p(OBSERVER_ID, false)], Bytes::new());
        assert!(obs_id.validate().is_err());
    }
}

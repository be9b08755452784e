//! The tokio driver: one task per client that owns the TCP connection and the [`Core`].
//!
//! Owns: the socket, the read and write buffers, host rotation with backoff, the connect
//! timeout, and the command channel from [`crate::Client`] handles. All protocol decisions
//! are the core's; this module only moves bytes and time into it and frames out of it.
//!
//! Threading: a single task; nothing is shared with the handles except channels. When every
//! handle is dropped the driver closes the session (closeSession) and exits.
//!
//! Invariants: frames are written in the order the core produced them; a frame is handed to
//! the core only when complete (two-phase: [`corral_proto::frame::check`] then parse); a frame
//! longer than the limit, an unparsable header or an out-of-order xid drops the connection
//! (the core then fails in-flight requests with ConnectionLoss and the driver reconnects).

use crate::connect_string::{HostList, SplitMix64};
use crate::core::{Core, HandshakeOutcome, Outgoing, ReplySender, TickAction, WatchCounts};
use bytes::{Buf, Bytes, BytesMut};
use corral_proto::frame::{self, FrameCheck};
use corral_proto::WatcherType;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Longest pause after a whole round of hosts failed (the Java client sleeps up to 1 s).
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 1000;

/// Most commands taken from the handles' queue before the connection is written to: requests
/// submitted together are sent in one write, and a flood still gets written in bounded steps.
const COMMANDS_PER_WRITE_MAX: usize = 256;

/// Below this much free room in the read buffer, it grows before the next read: reading
/// into a nearly full buffer would take a reply in many small reads (and reallocations).
const READ_SPARE_MIN_BYTES: usize = 1024;

/// How much the read buffer grows by.
const READ_GROW_BYTES: usize = 16 * 1024;

/// Commands from [`crate::Client`] handles.
#[derive(Debug)]
pub(crate) enum Command {
    Submit(Outgoing),
    AddAuth {
        scheme: String,
        auth: Option<Bytes>,
        reply: ReplySender,
    },
    Close {
        reply: ReplySender,
    },
    HasLocalWatch {
        path: String,
        kind: WatcherType,
        reply: oneshot::Sender<bool>,
    },
    WatchCounts {
        reply: oneshot::Sender<WatchCounts>,
    },
    /// Drops the current TCP connection (the session survives; the client reconnects).
    DropConnection,
}

pub(crate) struct Driver {
    pub core: Core,
    pub hosts: HostList,
    pub rng: SplitMix64,
    pub cmds: mpsc::UnboundedReceiver<Command>,
    pub max_frame_bytes: usize,
    /// Set once every handle is gone.
    pub handles_gone: bool,
    pub drop_requested: bool,
}

enum Waited<T> {
    Done(T),
    /// The session reached a terminal state while waiting.
    Terminal,
    /// A DropConnection command arrived.
    Dropped,
}

fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    pub async fn run(mut self) {
        while !self.core.state().is_terminal() {
            let (host, round_done) = self.hosts.next_host();
            if round_done {
                let ms = self.rng.below(RECONNECT_BACKOFF_MS_MAX + 1);
                let sleep = tokio::time::sleep(Duration::from_millis(ms));
                if let Waited::Terminal = self.wait(sleep).await {
                    break;
                }
            }
            let timeout = self.core.session_timeout() / self.hosts.len().max(1) as u32;
            let hello = self.core.handshake_frame();
            let attempt = connect_once(host.clone(), hello, timeout, self.max_frame_bytes);
            let (stream, rbuf, body) = match self.wait(attempt).await {
                Waited::Terminal => break,
                Waited::Dropped => continue,
                Waited::Done(Err(e)) => {
                    tracing::debug!(%host, error = %e, "connect attempt failed");
                    self.core.on_connect_failed(&host, &e.to_string());
                    continue;
                }
                Waited::Done(Ok(x)) => x,
            };
            match self.core.on_handshake(body, &host, now_std()) {
                Ok(HandshakeOutcome::Connected { read_only }) => {
                    tracing::debug!(%host, read_only, session = format_args!("{:#x}", self.core.info().session_id), "connected");
                    self.hosts.on_connected();
                    self.serve(stream, rbuf).await;
                    self.core.on_connection_lost();
                }
                Ok(HandshakeOutcome::Expired) => break,
                Err(e) => {
                    tracing::warn!(%host, error = %e, "handshake failed");
                    self.core.on_connect_failed(&host, &e.to_string());
                }
            }
        }
        tracing::debug!(state = ?self.core.state(), "driver exits");
    }

    fn handle(&mut self, cmd: Option<Command>) {
        let now = now_std();
        match cmd {
            None => {
                // Every handle is gone: close the session.
                self.handles_gone = true;
                let (tx, _rx) = oneshot::channel();
                self.core.close(tx, now);
            }
            Some(Command::Submit(o)) => self.core.submit(o, now),
            Some(Command::AddAuth {
                scheme,
                auth,
                reply,
            }) => self.core.add_auth(scheme, auth, reply, now),
            Some(Command::Close { reply }) => self.core.close(reply, now),
            Some(Command::HasLocalWatch { path, kind, reply }) => {
                let _ = reply.send(self.core.has_local_watch(&path, kind));
            }
            Some(Command::WatchCounts { reply }) => {
                let _ = reply.send(self.core.watch_counts());
            }
            Some(Command::DropConnection) => self.drop_requested = true,
        }
    }

    /// Runs `fut` while still serving commands and request deadlines.
    async fn wait<F: Future>(&mut self, fut: F) -> Waited<F::Output> {
        tokio::pin!(fut);
        let mut wakeup = Wakeup::new();
        loop {
            if self.core.state().is_terminal() {
                return Waited::Terminal;
            }
            if std::mem::take(&mut self.drop_requested) {
                return Waited::Dropped;
            }
            wakeup.arm(self.core.next_wakeup());
            tokio::select! {
                out = &mut fut => return Waited::Done(out),
                cmd = self.cmds.recv(), if !self.handles_gone => self.handle(cmd),
                _ = wakeup.fired() => { self.core.tick(now_std()); }
            }
        }
    }

    /// Serves one established connection until it dies or the session ends.
    async fn serve(&mut self, stream: TcpStream, mut rbuf: BytesMut) {
        let (mut rd, mut wr) = stream.into_split();
        let mut wbuf = BytesMut::new();
        let mut wakeup = Wakeup::new();
        // Frames that arrived together with the handshake answer.
        if self.drain_frames(&mut rbuf).is_err() {
            return;
        }
        loop {
            for f in self.core.take_outgoing() {
                wbuf.extend_from_slice(&f);
            }
            if self.core.state().is_terminal() || !self.core.is_connected() {
                if !wbuf.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), wr.write_all(&wbuf)).await;
                }
                return;
            }
            if std::mem::take(&mut self.drop_requested) {
                return;
            }
            wakeup.arm(self.core.next_wakeup());
            if rbuf.capacity() - rbuf.len() < READ_SPARE_MIN_BYTES {
                rbuf.reserve(READ_GROW_BYTES);
            }
            tokio::select! {
                biased;
                r = rd.read_buf(&mut rbuf) => match r {
                    Ok(0) | Err(_) => {
                        tracing::debug!("connection closed by server");
                        return;
                    }
                    Ok(_) => {
                        if self.drain_frames(&mut rbuf).is_err() {
                            return;
                        }
                    }
                },
                w = wr.write(&wbuf), if !wbuf.is_empty() => match w {
                    Ok(0) | Err(_) => return,
                    Ok(n) => wbuf.advance(n),
                },
                cmd = self.cmds.recv(), if !self.handles_gone => {
                    self.handle(cmd);
                    // Take what else is queued now, so that requests submitted together
                    // leave in one write instead of one write (and syscall) each.
                    for _ in 1..COMMANDS_PER_WRITE_MAX {
                        match self.cmds.try_recv() {
                            Ok(cmd) => self.handle(Some(cmd)),
                            Err(_) => break,
                        }
                        if self.drop_requested || self.core.state().is_terminal() {
                            break;
                        }
                    }
                }
                _ = wakeup.fired() => {
                    if self.core.tick(now_std()) == TickAction::ReadTimeout {
                        tracing::debug!("read timeout; reconnecting");
                        return;
                    }
                }
            }
        }
    }

    /// Hands every complete frame in `rbuf` to the core.
    fn drain_frames(&mut self, rbuf: &mut BytesMut) -> Result<(), ()> {
        loop {
            match frame::check(rbuf, self.max_frame_bytes) {
                FrameCheck::Incomplete => return Ok(()),
                FrameCheck::TooLarge { len } => {
                    tracing::warn!(len, "frame length out of range; dropping connection");
                    return Err(());
                }
                FrameCheck::Complete { len } => {
                    let f = rbuf.split_to(4 + len).freeze().slice(4..);
                    if let Err(e) = self.core.on_frame(f, now_std()) {
                        tracing::warn!(error = %e, "protocol violation; dropping connection");
                        return Err(());
                    }
                    if !self.core.is_connected() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The driver's one timer, for the core's next deadline (a ping, the read timeout, a
/// request's timeout).
///
/// The deadline moves with nearly every frame (a ping is due a third of the session
/// timeout after the last send), and a fresh `sleep_until` per loop turn registered and
/// cancelled a timer entry each time, a visible share of a busy client's CPU. This timer
/// is re-armed only when the deadline comes *earlier* than the armed one; a later deadline
/// leaves it as it is, so it may fire early, at most once per move. That is harmless
/// because `Core::tick` acts only on what is due at the time it is given.
struct Wakeup {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the timer is armed to fire; None once it fired (it must be re-armed).
    armed: Option<Instant>,
}

impl Wakeup {
    /// Nothing due for this long leaves the timer parked.
    const IDLE: Duration = Duration::from_secs(3600);

    fn new() -> Wakeup {
        let at = Instant::now() + Wakeup::IDLE;
        Wakeup {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            armed: Some(at),
        }
    }

    /// Makes sure the timer fires no later than `next` (the core's next deadline).
    fn arm(&mut self, next: Option<std::time::Instant>) {
        let at = next
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Wakeup::IDLE);
        if self.armed.is_none_or(|armed| at < armed) {
            self.sleep.as_mut().reset(at);
            self.armed = Some(at);
        }
    }

    /// Completes when the armed time has come.
    async fn fired(&mut self) {
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

/// Opens a TCP connection, sends the ConnectRequest and reads the answer, all within
/// `timeout`. Returns the stream, any bytes read past the answer, and the answer's body.
async fn connect_once(
    host: String,
    hello: Bytes,
    timeout: Duration,
    max_frame_bytes: usize,
) -> std::io::Result<(TcpStream, BytesMut, Bytes)> {
    let attempt = async {
        let mut s = TcpStream::connect(host.as_str()).await?;
        s.set_nodelay(true)?;
        s.write_all(&hello).await?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            match frame::check(&buf, max_frame_bytes) {
                FrameCheck::Complete { len } => {
                    let f = buf.split_to(4 + len).freeze().slice(4..);
                    return Ok((s, buf, f));
                }
                FrameCheck::TooLarge { len } => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("handshake frame length {len}"),
                    ))
                }
                FrameCheck::Incomplete => {
                    if s.read_buf(&mut buf).await? == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "server closed the connection during the handshake",
                        ));
                    }
                }
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timeout",
        )),
    }
}

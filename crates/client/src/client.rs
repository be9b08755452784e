//! The public handle: [`ClientOptions`] to configure and connect, [`Client`] for every
//! ZooKeeper operation.
//!
//! Owns: argument validation, chroot application to request paths and stripping from reply
//! paths, building proto requests, turning proto responses into typed results, and request
//! deadlines. Everything stateful lives in the driver task (`crate::driver`) and its
//! [`crate::core::Core`]; a `Client` is a cheap clone of a channel sender plus watch receivers.
//!
//! Invariant: every path that leaves this module for the server went through
//! [`Chroot::apply`] after [`validate_path`] (Java's client-side check, with its messages);
//! every path coming back went through [`Chroot::strip`].

use crate::connect_string::{validate_path, Chroot, ConnectString, HostList, SplitMix64};
use crate::core::{
    Core, CoreConfig, EventSender, OneShotWatcher, Outgoing, Reply, ReplyResult, StreamWatcher,
    WatchCounts, WatchReg, Watcher,
};
use crate::driver::{Command, Driver};
use crate::error::{Error, Result};
use crate::types::{
    CreateMode, Op, OpResult, ReadOp, ReadResult, SessionInfo, SessionState, TTL_MS_MAX,
};
use crate::watch::{EventStream, WatchFuture, WatchStream};
use bytes::Bytes;
use corral_proto::frame::JUTE_MAXBUFFER_BYTES_DEFAULT;
use corral_proto::request::{
    CreateRequest, PathType, PathVersion, PathWatch, ReconfigRequest, SetAclRequest, SetDataRequest,
};
use corral_proto::{
    Acl, AddWatchMode, ClientInfo, MultiResult, Request, Response, Stat, WatcherType,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// `version` argument meaning "any version".
pub const ANY_VERSION: i32 = -1;

/// The path of the ensemble configuration node (read by [`Client::get_config`]).
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// Settings for a new client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requested session timeout; the server clamps it to [2, 20] ticks by default.
    pub session_timeout: Duration,
    /// How long [`ClientOptions::connect`] waits for the first session.
    pub connect_timeout: Duration,
    /// Per-request deadline (covers time queued while disconnected). `None` = wait until the
    /// reply, a connection loss or the session's end.
    pub request_timeout: Option<Duration>,
    /// Accept read-only servers (connect flag `readOnly`).
    pub can_be_read_only: bool,
    /// Seed for the host order and backoff jitter (random when `None`).
    pub rng_seed: Option<u64>,
    /// Resume an existing session (id, password) instead of creating one.
    pub session: Option<(i64, Bytes)>,
    /// Credentials sent before anything else on every connection (`None`: a null buffer).
    pub auth: Vec<(String, Option<Bytes>)>,
    /// Largest frame accepted from the server (`jute.maxbuffer`).
    pub max_frame_bytes: usize,
    /// First xid to use (default 1); lets tests exercise the wrap from `i32::MAX` to 1.
    pub first_xid: Option<i32>,
    /// The Java client's behaviour while disconnected: when a connection attempt fails
    /// (refused, timed out, closed during the handshake), every request issued since the
    /// connection was lost fails with [`Error::ConnectionLoss`] at once instead of waiting
    /// for a later connection or its deadline, and [`Client::close`] waits for the attempt in
    /// progress like a request. Off by default: requests wait (bounded by
    /// `request_timeout`) and a close while disconnected ends the session at once.
    pub fail_queued_on_connect_failure: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            request_timeout: Some(Duration::from_secs(10)),
            can_be_read_only: false,
            rng_seed: None,
            session: None,
            auth: Vec::new(),
            max_frame_bytes: JUTE_MAXBUFFER_BYTES_DEFAULT,
            first_xid: None,
            fail_queued_on_connect_failure: false,
        }
    }
}

impl ClientOptions {
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }
    pub fn session_timeout(mut self, t: Duration) -> Self {
        self.session_timeout = t;
        self
    }
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    pub fn request_timeout(mut self, t: Option<Duration>) -> Self {
        self.request_timeout = t;
        self
    }
    pub fn can_be_read_only(mut self, yes: bool) -> Self {
        self.can_be_read_only = yes;
        self
    }
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }
    pub fn resume_session(mut self, session_id: i64, password: Bytes) -> Self {
        self.session = Some((session_id, password));
        self
    }
    pub fn auth(self, scheme: &str, auth: &[u8]) -> Self {
        self.auth_opt(scheme, Some(auth))
    }
    /// Like [`ClientOptions::auth`]; `None` sends a null buffer, as Java's
    /// `addAuthInfo(scheme, null)`.
    pub fn auth_opt(mut self, scheme: &str, auth: Option<&[u8]>) -> Self {
        self.auth
            .push((scheme.to_owned(), auth.map(Bytes::copy_from_slice)));
        self
    }
    /// See [`ClientOptions::fail_queued_on_connect_failure`].
    pub fn fail_queued_on_connect_failure(mut self, yes: bool) -> Self {
        self.fail_queued_on_connect_failure = yes;
        self
    }
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }
    /// Starts xids at `xid` (> 0) instead of 1.
    pub fn first_xid(mut self, xid: i32) -> Self {
        self.first_xid = Some(xid);
        self
    }

    /// Starts the client without waiting for a session (state starts at Connecting). Must be
    /// called inside a tokio runtime.
    pub fn start(&self, connect_string: &str) -> Result<Client> {
        self.start_inner(connect_string, None)
    }

    /// Like [`ClientOptions::start`], with the session's [`EventStream`] (every notification
    /// once, every state change, failed connection attempts), from the very start.
    pub fn start_with_events(&self, connect_string: &str) -> Result<(Client, EventStream)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.start_inner(connect_string, Some(tx))?;
        Ok((client, EventStream::new(rx)))
    }

    /// Like [`ClientOptions::connect`], with the session's [`EventStream`] (its first event is
    /// the state `Connected`).
    pub async fn connect_with_events(&self, connect_string: &str) -> Result<(Client, EventStream)> {
        let (c, events) = self.start_with_events(connect_string)?;
        self.await_first_session(c).await.map(|c| (c, events))
    }

    fn start_inner(&self, connect_string: &str, events: Option<EventSender>) -> Result<Client> {
        let cs = ConnectString::parse(connect_string)?;
        let mut rng = match self.rng_seed {
            Some(s) => SplitMix64::new(s),
            None => SplitMix64::from_entropy(),
        };
        let hosts = HostList::new(cs.hosts.clone(), &mut rng);
        let (state_tx, state_rx) = watch::channel(SessionState::Connecting);
        let (info_tx, info_rx) = watch::channel(SessionInfo::default());
        let mut core = Core::new(
            CoreConfig {
                session_timeout: self.session_timeout,
                chroot: cs.chroot.clone(),
                can_be_read_only: self.can_be_read_only,
                session: self.session.clone(),
                fail_queued_on_connect_failure: self.fail_queued_on_connect_failure,
            },
            state_tx,
            info_tx,
        );
        if let Some(tx) = events {
            core.set_event_sink(tx);
        }
        let connect_failures = core.connect_failure_counter();
        if let Some(x) = self.first_xid {
            if x <= 0 {
                return Err(Error::InvalidArgument(format!(
                    "first xid {x} must be positive"
                )));
            }
            core.set_next_xid(x);
        }
        let now = std::time::Instant::now();
        for (scheme, auth) in &self.auth {
            let (tx, _rx) = oneshot::channel();
            core.add_auth(scheme.clone(), auth.clone(), tx, now);
        }
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            core,
            hosts,
            rng,
            cmds: cmd_rx,
            max_frame_bytes: self.max_frame_bytes,
            handles_gone: false,
            drop_requested: false,
        };
        tokio::spawn(driver.run());
        Ok(Client {
            inner: Arc::new(Inner {
                cmd_tx,
                state_rx,
                info_rx,
                chroot: cs.chroot,
                request_timeout: self.request_timeout,
                connect_failures,
            }),
        })
    }

    /// Starts the client and waits until it has a session (or fails: Timeout after
    /// `connect_timeout`, SessionExpired when resuming a dead session, AuthFailed).
    pub async fn connect(&self, connect_string: &str) -> Result<Client> {
        let c = self.start(connect_string)?;
        self.await_first_session(c).await
    }

    async fn await_first_session(&self, c: Client) -> Result<Client> {
        match tokio::time::timeout(self.connect_timeout, c.wait_connected()).await {
            Ok(Ok(())) => Ok(c),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let _ = c.close().await;
                Err(Error::Timeout)
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    cmd_tx: mpsc::UnboundedSender<Command>,
    state_rx: watch::Receiver<SessionState>,
    info_rx: watch::Receiver<SessionInfo>,
    chroot: Chroot,
    request_timeout: Option<Duration>,
    connect_failures: Arc<AtomicU64>,
}

/// A ZooKeeper session. Cheap to clone; the session is closed when [`Client::close`] is
/// called or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn strip_create(chroot: &Chroot, r: MultiResult) -> Result<OpResult> {
    Ok(match r {
        MultiResult::Create { path } => OpResult::Create {
            path: chroot.strip(&path),
            stat: None,
        },
        MultiResult::Create2 { path, stat } => OpResult::Create {
            path: chroot.strip(&path),
            stat: Some(stat),
        },
        MultiResult::Delete => OpResult::Delete,
        MultiResult::SetData { stat } => OpResult::SetData { stat },
        MultiResult::Check => OpResult::Check,
        MultiResult::Error(e) => return Err(Error::from_code(e.code())),
        other => {
            return Err(Error::Protocol(format!(
                "unexpected multi result {other:?}"
            )))
        }
    })
}

fn unexpected<T>(r: Response) -> Result<T> {
    Err(Error::Protocol(format!("unexpected response {r:?}")))
}

impl Client {
    /// Connects with default options (waits for the session).
    pub async fn connect(connect_string: &str) -> Result<Client> {
        ClientOptions::default().connect(connect_string).await
    }

    // --- session ------------------------------------------------------------------------

    pub fn state(&self) -> SessionState {
        *self.inner.state_rx.borrow()
    }

    /// A receiver of state changes (Connecting, Connected, Disconnected, Expired, ...).
    pub fn state_watcher(&self) -> watch::Receiver<SessionState> {
        self.inner.state_rx.clone()
    }

    pub fn session_info(&self) -> SessionInfo {
        self.inner.info_rx.borrow().clone()
    }

    /// A receiver of session-info changes (new server, lastZxidSeen, timeout).
    pub fn session_info_watcher(&self) -> watch::Receiver<SessionInfo> {
        self.inner.info_rx.clone()
    }

    pub fn session_id(&self) -> i64 {
        self.inner.info_rx.borrow().session_id
    }

    pub fn session_password(&self) -> Bytes {
        self.inner.info_rx.borrow().password.clone()
    }

    /// The negotiated session timeout (zero before the first session).
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.info_rx.borrow().timeout_ms.max(0) as u64)
    }

    pub fn chroot(&self) -> &str {
        self.inner.chroot.as_str()
    }

    /// How many connection attempts have failed since the client started (each is also a
    /// [`crate::SessionEvent::ConnectFailed`] on the event stream).
    pub fn connect_failures(&self) -> u64 {
        self.inner.connect_failures.load(Ordering::Relaxed)
    }

    /// Waits until connected; fails if the session ends first.
    pub async fn wait_connected(&self) -> Result<()> {
        let mut rx = self.inner.state_rx.clone();
        loop {
            let s = *rx.borrow_and_update();
            if s.is_connected() {
                return Ok(());
            }
            if s.is_terminal() {
                return Err(terminal_error(s));
            }
            if rx.changed().await.is_err() {
                return Err(terminal_error(*rx.borrow()));
            }
        }
    }

    /// Waits until `pred(state)` holds, at most `timeout`.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        pred: impl Fn(SessionState) -> bool,
    ) -> Result<SessionState> {
        let mut rx = self.inner.state_rx.clone();
        let fut = async {
            loop {
                let s = *rx.borrow_and_update();
                if pred(s) {
                    return Ok(s);
                }
                if rx.changed().await.is_err() {
                    let s = *rx.borrow();
                    return if pred(s) {
                        Ok(s)
                    } else {
                        Err(terminal_error(s))
                    };
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    /// Closes the session (closeSession), ending every watch with a Closed event. While
    /// disconnected the session ends at once (the server expires it), or, with
    /// [`ClientOptions::fail_queued_on_connect_failure`], after the next connection attempt:
    /// closeSession is sent if it succeeds.
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .cmd_tx
            .send(Command::Close { reply: tx })
            .is_err()
        {
            return Ok(());
        }
        match rx.await {
            Ok(Ok(_)) | Err(_) => Ok(()),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Drops the TCP connection without ending the session; the client reconnects (to the
    /// next host) and re-arms its watches. For tests and operators.
    pub fn drop_connection(&self) {
        let _ = self.inner.cmd_tx.send(Command::DropConnection);
    }

    /// Counts of the live watches registered in this client.
    pub async fn watch_counts(&self) -> Result<WatchCounts> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd_tx
            .send(Command::WatchCounts { reply: tx })
            .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    fn gone(&self) -> Error {
        terminal_error(self.state())
    }

    // --- plumbing ----------------------------------------------------------------------------

    fn server_path(&self, path: &str) -> Result<String> {
        validate_path(path, false)?;
        Ok(self.inner.chroot.apply(path))
    }

    async fn call(&self, request: Request, watch: Option<WatchReg>) -> Result<Reply> {
        let (tx, rx) = oneshot::channel::<ReplyResult>();
        let deadline = self
            .inner
            .request_timeout
            .map(|t| std::time::Instant::now() + t);
        self.inner
            .cmd_tx
            .send(Command::Submit(Outgoing {
                request,
                reply: tx,
                watch,
                deadline,
            }))
            .map_err(|_| self.gone())?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.gone()),
        }
    }

    /// Sends any request as is: no chroot, no validation, no watch registration. For tools
    /// that need the raw reply (the zkCli shell) and for protocol tests.
    pub async fn raw_request(&self, request: Request) -> Result<Reply> {
        self.call(request, None).await
    }

    // --- create / delete --------------------------------------------------------------------

    /// The create request for `mode` (see [`CreateMode::opcode`] for `with_stat`), after the
    /// Java client's checks in its order: path, TTL, ACL.
    fn create_request(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        with_stat: bool,
    ) -> Result<Request> {
        validate_path(path, mode.is_sequential())?;
        if let Some(ttl) = mode.ttl_ms() {
            if ttl <= 0 || ttl > TTL_MS_MAX {
                return Err(Error::InvalidArgument(format!(
                    "ttl must be positive and cannot be larger than: {TTL_MS_MAX}"
                )));
            }
        }
        if acl.is_empty() {
            return Err(Error::InvalidAcl);
        }
        let body = CreateRequest {
            path: self.inner.chroot.apply(path),
            data: data.map(Bytes::copy_from_slice),
            acl: Some(acl.to_vec()),
            flags: mode.flags(),
            ttl: mode.ttl_ms(),
        };
        Ok(body_to_create(mode, with_stat, body))
    }

    /// Creates a node and returns its actual path (with the sequence suffix). Uses create
    /// (1), or createContainer (19) / createTTL (21) as the mode requires.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<String> {
        self.create_opt(path, Some(data), acl, mode).await
    }

    /// Like [`Client::create`]; `data: None` creates the node with null data (read back as
    /// `None` by [`Client::get_data_opt`]). Sends what the Java client's
    /// `create(path, data, acl, mode)` sends: create (1) without a stat, createContainer (19)
    /// for containers, createTTL (21) for TTL modes.
    pub async fn create_opt(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<String> {
        let req = self.create_request(path, data, acl, mode, false)?;
        match self.call(req, None).await?.response {
            Response::Create { path } | Response::Create2 { path, .. } => {
                Ok(self.inner.chroot.strip(&path))
            }
            r => unexpected(r),
        }
    }

    /// Creates a node and returns its path and stat (create2, 15; or 19 / 21).
    pub async fn create2(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat)> {
        self.create2_opt(path, Some(data), acl, mode).await
    }

    /// Like [`Client::create2`]; `data: None` creates the node with null data. Sends what
    /// the Java client's `create(path, data, acl, mode, stat)` sends: create2 (15), or
    /// createContainer (19) / createTTL (21).
    pub async fn create2_opt(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat)> {
        let req = self.create_request(path, data, acl, mode, true)?;
        match self.call(req, None).await?.response {
            Response::Create2 { path, stat } => Ok((self.inner.chroot.strip(&path), stat)),
            r => unexpected(r),
        }
    }

    /// Creates a container node (createContainer, 19).
    pub async fn create_container(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
    ) -> Result<(String, Stat)> {
        self.create2(path, data, acl, CreateMode::Container).await
    }

    /// Creates a TTL node (createTTL, 21); `sequential` appends the sequence suffix.
    pub async fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        ttl: Duration,
        sequential: bool,
    ) -> Result<(String, Stat)> {
        let ttl_ms = ttl.as_millis().min(i64::MAX as u128) as i64;
        let mode = if sequential {
            CreateMode::PersistentSequentialWithTtl { ttl_ms }
        } else {
            CreateMode::PersistentWithTtl { ttl_ms }
        };
        self.create2(path, data, acl, mode).await
    }

    /// Creates `path` and any missing ancestors as persistent nodes with `acl`; succeeds when
    /// the node already exists.
    pub async fn create_all(&self, path: &str, data: &[u8], acl: &[Acl]) -> Result<()> {
        validate_path(path, false)?;
        if path == "/" {
            return Ok(());
        }
        let parts: Vec<usize> = path.match_indices('/').map(|(i, _)| i).skip(1).collect();
        for end in parts.into_iter().chain(std::iter::once(path.len())) {
            let p = &path[..end];
            let d = if end == path.len() { data } else { &[][..] };
            match self.create(p, d, acl, CreateMode::Persistent).await {
                Ok(_) | Err(Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes the node if its version matches (or any with [`ANY_VERSION`]). As in the Java
    /// client, `/` is sent as `/` even under a chroot, so that it fails as deleting the root
    /// does instead of deleting the chroot node.
    pub async fn delete(&self, path: &str, version: i32) -> Result<()> {
        validate_path(path, false)?;
        let path = if path == "/" {
            path.to_owned()
        } else {
            self.inner.chroot.apply(path)
        };
        match self
            .call(Request::Delete(PathVersion { path, version }), None)
            .await?
            .response
        {
            Response::Empty => Ok(()),
            r => unexpected(r),
        }
    }

    // --- reads ------------------------------------------------------------------------------

    async fn exists_inner(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Option<Stat>, Option<WatchFuture>)> {
        let sp = self.server_path(path)?;
        let (reg, fut) = if watch {
            let (w, fut) = one_shot(path);
            (Some(WatchReg::Exists(sp.clone(), w)), Some(fut))
        } else {
            (None, None)
        };
        let r = self
            .call(Request::Exists(PathWatch { path: sp, watch }), reg)
            .await;
        match r {
            Ok(Reply {
                response: Response::Stat(s),
                ..
            }) => Ok((Some(s), fut)),
            Ok(Reply { response, .. }) => unexpected(response),
            Err(Error::NoNode) => Ok((None, fut)),
            Err(e) => Err(e),
        }
    }

    /// The node's stat, or `None` when it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        Ok(self.exists_inner(path, false).await?.0)
    }

    /// Like [`Client::exists`] and leaves a watch: NodeCreated if missing, else
    /// NodeDataChanged / NodeDeleted.
    pub async fn exists_w(&self, path: &str) -> Result<(Option<Stat>, WatchFuture)> {
        let (s, f) = self.exists_inner(path, true).await?;
        let f = f.ok_or_else(|| Error::Protocol("watch lost".into()))?;
        Ok((s, f))
    }

    async fn get_data_inner(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Option<Bytes>, Stat, Option<WatchFuture>)> {
        let sp = self.server_path(path)?;
        let (reg, fut) = if watch {
            let (w, fut) = one_shot(path);
            (Some(WatchReg::Data(sp.clone(), w)), Some(fut))
        } else {
            (None, None)
        };
        match self
            .call(Request::GetData(PathWatch { path: sp, watch }), reg)
            .await?
            .response
        {
            Response::GetData { data, stat } => Ok((data, stat, fut)),
            r => unexpected(r),
        }
    }

    /// Data (empty for a null buffer) and stat.
    pub async fn get_data(&self, path: &str) -> Result<(Bytes, Stat)> {
        let (d, s, _) = self.get_data_inner(path, false).await?;
        Ok((d.unwrap_or_default(), s))
    }

    /// Data as sent by the server: `None` for a null buffer (zkCli prints "null").
    pub async fn get_data_opt(&self, path: &str) -> Result<(Option<Bytes>, Stat)> {
        let (d, s, _) = self.get_data_inner(path, false).await?;
        Ok((d, s))
    }

    /// Like [`Client::get_data`] and leaves a data watch (NodeDataChanged / NodeDeleted).
    pub async fn get_data_w(&self, path: &str) -> Result<(Bytes, Stat, WatchFuture)> {
        let (d, s, f) = self.get_data_opt_w(path).await?;
        Ok((d.unwrap_or_default(), s, f))
    }

    /// Like [`Client::get_data_opt`] (`None` for a null buffer) and leaves a data watch.
    pub async fn get_data_opt_w(&self, path: &str) -> Result<(Option<Bytes>, Stat, WatchFuture)> {
        let (d, s, f) = self.get_data_inner(path, true).await?;
        let f = f.ok_or_else(|| Error::Protocol("watch lost".into()))?;
        Ok((d, s, f))
    }

    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat> {
        let path = self.server_path(path)?;
        let req = Request::SetData(SetDataRequest {
            path,
            data: Some(Bytes::copy_from_slice(data)),
            version,
        });
        match self.call(req, None).await?.response {
            Response::Stat(s) => Ok(s),
            r => unexpected(r),
        }
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        let path = self.server_path(path)?;
        match self.call(Request::GetAcl { path }, None).await?.response {
            Response::GetAcl { acl, stat } => Ok((acl, stat)),
            r => unexpected(r),
        }
    }

    /// Sets the ACL if the node's aversion matches `version` (or any with [`ANY_VERSION`]).
    pub async fn set_acl(&self, path: &str, acl: &[Acl], version: i32) -> Result<Stat> {
        let path = self.server_path(path)?;
        let req = Request::SetAcl(SetAclRequest {
            path,
            acl: Some(acl.to_vec()),
            version,
        });
        match self.call(req, None).await?.response {
            Response::Stat(s) => Ok(s),
            r => unexpected(r),
        }
    }

    async fn children_inner(
        &self,
        path: &str,
        watch: bool,
        with_stat: bool,
    ) -> Result<(Vec<String>, Option<Stat>, Option<WatchFuture>)> {
        let sp = self.server_path(path)?;
        let (reg, fut) = if watch {
            let (w, fut) = one_shot(path);
            (Some(WatchReg::Child(sp.clone(), w)), Some(fut))
        } else {
            (None, None)
        };
        let pw = PathWatch { path: sp, watch };
        let req = if with_stat {
            Request::GetChildren2(pw)
        } else {
            Request::GetChildren(pw)
        };
        match self.call(req, reg).await?.response {
            Response::GetChildren { children } => Ok((children, None, fut)),
            Response::GetChildren2 { children, stat } => Ok((children, Some(stat), fut)),
            r => unexpected(r),
        }
    }

    /// Child names (unordered, as the server sends them).
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>> {
        Ok(self.children_inner(path, false, false).await?.0)
    }

    /// Child names and a child watch (NodeChildrenChanged / NodeDeleted).
    pub async fn get_children_w(&self, path: &str) -> Result<(Vec<String>, WatchFuture)> {
        let (c, _, f) = self.children_inner(path, true, false).await?;
        Ok((c, f.ok_or_else(|| Error::Protocol("watch lost".into()))?))
    }

    /// Child names and the node's stat (getChildren2).
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        let (c, s, _) = self.children_inner(path, false, true).await?;
        Ok((c, s.unwrap_or_default()))
    }

    pub async fn get_children2_w(&self, path: &str) -> Result<(Vec<String>, Stat, WatchFuture)> {
        let (c, s, f) = self.children_inner(path, true, true).await?;
        Ok((
            c,
            s.unwrap_or_default(),
            f.ok_or_else(|| Error::Protocol("watch lost".into()))?,
        ))
    }

    /// Waits until the server this client talks to has caught up with the leader (as of the
    /// time the sync reaches the leader).
    pub async fn sync(&self, path: &str) -> Result<()> {
        let path = self.server_path(path)?;
        match self.call(Request::Sync { path }, None).await?.response {
            Response::Sync { .. } => Ok(()),
            r => unexpected(r),
        }
    }

    /// Number of descendants of `path` (not counting itself).
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32> {
        let path = self.server_path(path)?;
        match self
            .call(Request::GetAllChildrenNumber { path }, None)
            .await?
            .response
        {
            Response::GetAllChildrenNumber { total } => Ok(total),
            r => unexpected(r),
        }
    }

    /// Ephemeral nodes of this session whose path starts with `prefix` (a plain string
    /// prefix, not component-aware, checked as a path as the Java client does; `/` for all).
    /// Paths are relative to the chroot (the Java client applies no chroot here).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>> {
        let p = self.server_path(prefix)?;
        match self
            .call(Request::GetEphemerals { prefix: Some(p) }, None)
            .await?
            .response
        {
            Response::GetEphemerals { paths } => {
                Ok(paths.iter().map(|p| self.inner.chroot.strip(p)).collect())
            }
            r => unexpected(r),
        }
    }

    /// The auth ids of this connection (whoAmI, 3.7+).
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>> {
        match self.call(Request::WhoAmI, None).await?.response {
            Response::WhoAmI { infos } => Ok(infos),
            r => unexpected(r),
        }
    }

    /// The ensemble configuration (`/zookeeper/config`; not subject to the chroot).
    pub async fn get_config(&self) -> Result<(Bytes, Stat)> {
        let (d, s) = self.get_config_opt().await?;
        Ok((d.unwrap_or_default(), s))
    }

    /// Like [`Client::get_config`], with `None` for a null buffer.
    pub async fn get_config_opt(&self) -> Result<(Option<Bytes>, Stat)> {
        let req = Request::GetData(PathWatch {
            path: CONFIG_NODE.into(),
            watch: false,
        });
        match self.call(req, None).await?.response {
            Response::GetData { data, stat } => Ok((data, stat)),
            r => unexpected(r),
        }
    }

    /// Like [`Client::get_config`] and watches the config node.
    pub async fn get_config_w(&self) -> Result<(Bytes, Stat, WatchFuture)> {
        let (d, s, f) = self.get_config_opt_w().await?;
        Ok((d.unwrap_or_default(), s, f))
    }

    /// Like [`Client::get_config_opt`] and watches the config node. The watch event's path
    /// is `/zookeeper/config`, which a chroot does not change.
    pub async fn get_config_opt_w(&self) -> Result<(Option<Bytes>, Stat, WatchFuture)> {
        let (w, fut) = one_shot(CONFIG_NODE);
        let req = Request::GetData(PathWatch {
            path: CONFIG_NODE.into(),
            watch: true,
        });
        let reg = WatchReg::Data(CONFIG_NODE.into(), w);
        match self.call(req, Some(reg)).await?.response {
            Response::GetData { data, stat } => Ok((data, stat, fut)),
            r => unexpected(r),
        }
    }

    /// Incremental (`joining`/`leaving`) or bulk (`new_members`) reconfiguration;
    /// `from_config` = -1 skips the config-version check. Returns the new config.
    pub async fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        from_config: i64,
    ) -> Result<(Bytes, Stat)> {
        let req = Request::Reconfig(ReconfigRequest {
            joining_servers: joining.map(str::to_owned),
            leaving_servers: leaving.map(str::to_owned),
            new_members: new_members.map(str::to_owned),
            cur_config_id: from_config,
        });
        match self.call(req, None).await?.response {
            Response::GetData { data, stat } => Ok((data.unwrap_or_default(), stat)),
            r => unexpected(r),
        }
    }

    // --- multi ------------------------------------------------------------------------------

    fn multi_request(&self, ops: &[Op]) -> Result<Request> {
        let mut sub = Vec::with_capacity(ops.len());
        for op in ops {
            sub.push(match op {
                Op::Create {
                    path,
                    data,
                    acl,
                    mode,
                } => self.create_request(path, Some(data), acl, *mode, true)?,
                Op::Delete { path, version } => Request::Delete(PathVersion {
                    path: self.server_path(path)?,
                    version: *version,
                }),
                Op::SetData {
                    path,
                    data,
                    version,
                } => Request::SetData(SetDataRequest {
                    path: self.server_path(path)?,
                    data: Some(data.clone()),
                    version: *version,
                }),
                Op::Check { path, version } => Request::Check(PathVersion {
                    path: self.server_path(path)?,
                    version: *version,
                }),
            });
        }
        Ok(Request::Multi(sub))
    }

    /// Runs `ops` atomically. Returns each op's result, or [`Error::Multi`] naming the first
    /// failing op (the others then did nothing).
    pub async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        let results = self.multi_results(ops).await?;
        let mut out = Vec::with_capacity(results.len());
        for (index, r) in results.into_iter().enumerate() {
            match r {
                Ok(r) => out.push(r),
                Err(Error::RolledBack) => {}
                Err(e) => {
                    return Err(Error::Multi {
                        index,
                        error: Box::new(e),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Runs `ops` atomically and returns one entry per op as the server reported it. On
    /// failure every entry is an error: `Err(RolledBack)` before the
    /// failing op, its error, then `Err(RuntimeInconsistency)` after it.
    pub async fn multi_results(&self, ops: &[Op]) -> Result<Vec<Result<OpResult>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let req = self.multi_request(ops)?;
        match self.call(req, None).await?.response {
            Response::Multi(rs) => {
                if rs.len() != ops.len() {
                    return Err(Error::Protocol(format!(
                        "multi of {} ops answered with {} results",
                        ops.len(),
                        rs.len()
                    )));
                }
                Ok(rs
                    .into_iter()
                    .map(|r| strip_create(&self.inner.chroot, r))
                    .collect())
            }
            r => unexpected(r),
        }
    }

    /// Runs reads in one round trip (multiRead, 22); each read succeeds or fails on its own.
    pub async fn multi_read(&self, ops: &[ReadOp]) -> Result<Vec<Result<ReadResult>>> {
        let mut sub = Vec::with_capacity(ops.len());
        for op in ops {
            sub.push(match op {
                ReadOp::GetData { path } => Request::GetData(PathWatch {
                    path: self.server_path(path)?,
                    watch: false,
                }),
                ReadOp::GetChildren { path } => Request::GetChildren(PathWatch {
                    path: self.server_path(path)?,
                    watch: false,
                }),
            });
        }
        match self.call(Request::MultiRead(sub), None).await?.response {
            Response::Multi(rs) => Ok(rs
                .into_iter()
                .map(|r| match r {
                    MultiResult::GetData { data, stat } => Ok(ReadResult::GetData {
                        data: data.unwrap_or_default(),
                        stat,
                    }),
                    MultiResult::GetChildren { children } => {
                        Ok(ReadResult::GetChildren { children })
                    }
                    MultiResult::Error(e) => Err(Error::from_code(e.code())),
                    other => Err(Error::Protocol(format!(
                        "unexpected multiRead result {other:?}"
                    ))),
                })
                .collect()),
            r => unexpected(r),
        }
    }

    // --- watches ----------------------------------------------------------------------------

    /// Adds a persistent (mode Persistent) or persistent-recursive watch (addWatch, 106). The
    /// stream yields every event until removed or the session ends; it is re-armed after
    /// reconnects.
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<WatchStream> {
        let sp = self.server_path(path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let detached = Arc::new(AtomicBool::new(false));
        let w: StreamWatcher = Watcher {
            tx,
            detached: detached.clone(),
        };
        let reg = match mode {
            AddWatchMode::Persistent => WatchReg::Persistent(sp.clone(), w),
            AddWatchMode::PersistentRecursive => WatchReg::PersistentRecursive(sp.clone(), w),
        };
        let req = Request::AddWatch(PathType {
            path: sp,
            kind: mode.code(),
        });
        match self.call(req, Some(reg)).await?.response {
            Response::AddWatch | Response::Empty => {
                Ok(WatchStream::new(rx, path.to_owned(), detached))
            }
            r => unexpected(r),
        }
    }

    /// Asks the server whether a watch of `kind` exists on `path` (NoWatcher if not).
    pub async fn check_watches(&self, path: &str, kind: WatcherType) -> Result<()> {
        let path = self.server_path(path)?;
        match self
            .call(
                Request::CheckWatches(PathType {
                    path,
                    kind: kind.code(),
                }),
                None,
            )
            .await?
            .response
        {
            Response::Empty => Ok(()),
            r => unexpected(r),
        }
    }

    /// Removes every watch of `kind` on `path` (removeWatches, 18), settled as the Java
    /// client's `removeAllWatches` settles it when the answer arrives:
    ///
    /// * no local watch of `kind` on `path` (a persistent or recursive watch counts for
    ///   Children and Data too): [`Error::NoWatcher`], whatever the server said;
    /// * the server failed (NoWatcher when it holds none) and not `local`: its error;
    /// * otherwise the local watchers of `kind` are removed (Data: data and exist watches;
    ///   Any: all five kinds), each told with a DataWatchRemoved / ChildWatchRemoved /
    ///   PersistentWatchRemoved event, and the event stream gets one event per type;
    ///   NoWatcher if there were none.
    ///
    /// With `local` the server is still asked, but its failure, a lost connection (and, with
    /// [`ClientOptions::fail_queued_on_connect_failure`], a failed connection attempt) do not
    /// keep the local watchers: removed locally while disconnected, the events carry state
    /// Disconnected.
    pub async fn remove_watches(&self, path: &str, kind: WatcherType, local: bool) -> Result<()> {
        let sp = self.server_path(path)?;
        let req = Request::RemoveWatches(PathType {
            path: sp.clone(),
            kind: kind.code(),
        });
        let reg = WatchReg::Remove {
            path: sp,
            kind,
            local,
        };
        match self.call(req, Some(reg)).await?.response {
            Response::Empty => Ok(()),
            r => unexpected(r),
        }
    }

    /// Whether this client holds a local watch of `kind` on `path`.
    pub async fn has_local_watch(&self, path: &str, kind: WatcherType) -> Result<bool> {
        let sp = self.server_path(path)?;
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd_tx
            .send(Command::HasLocalWatch {
                path: sp,
                kind,
                reply: tx,
            })
            .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    // --- auth -------------------------------------------------------------------------------

    /// Adds credentials (e.g. `("digest", b"user:password")`). They are re-sent after every
    /// reconnect. A rejected credential ends the session with AuthFailed.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<()> {
        self.add_auth_opt(scheme, Some(auth)).await
    }

    /// Like [`Client::add_auth`]; `None` sends a null buffer, as Java's
    /// `addAuthInfo(scheme, null)` (ZooKeeper's digest provider rejects it: AuthFailed).
    pub async fn add_auth_opt(&self, scheme: &str, auth: Option<&[u8]>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd_tx
            .send(Command::AddAuth {
                scheme: scheme.to_owned(),
                auth: auth.map(Bytes::copy_from_slice),
                reply: tx,
            })
            .map_err(|_| self.gone())?;
        match rx.await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(self.gone()),
        }
    }
}

/// A one-shot watcher to register and the handle that receives its event.
fn one_shot(client_path: &str) -> (OneShotWatcher, WatchFuture) {
    let (tx, rx) = oneshot::channel();
    let detached = Arc::new(AtomicBool::new(false));
    let w = Watcher {
        tx,
        detached: detached.clone(),
    };
    (w, WatchFuture::new(rx, client_path.to_owned(), detached))
}

fn body_to_create(mode: CreateMode, with_stat: bool, body: CreateRequest) -> Request {
    match mode.opcode(with_stat) {
        corral_proto::OpCode::CreateContainer => Request::CreateContainer(body),
        corral_proto::OpCode::CreateTtl => Request::CreateTtl(body),
        corral_proto::OpCode::Create2 => Request::Create2(body),
        _ => Request::Create(body),
    }
}

fn terminal_error(s: SessionState) -> Error {
    match s {
        SessionState::Expired => Error::SessionExpired,
        SessionState::AuthFailed => Error::AuthFailed,
        _ => Error::Closed,
    }
}

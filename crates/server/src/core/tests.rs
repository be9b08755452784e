//! The standalone core's two ways of writing the txn log: inline on the core when it is
//! idle, on the log thread otherwise. Each test drives a real core, log thread and data
//! directory, through a file system that records what each sync made durable (and can
//! park the log thread inside a sync, so "busy" is a state rather than a race) and, where
//! a test needs it, injects failures.

use super::*;
use crate::durable::{spawn_log_thread, LogSettings};
use crate::stats::ConnStats;
use corral_node::replica::ReplicaConfig;
use corral_node::NodeConfig;
use corral_proto::request::{CreateRequest, SetDataRequest};
use corral_proto::{Acl, ConnectRequest, ConnectResponse, OpCode, Reader, Record, ReplyHeader};
use corral_storage::fs::{FaultFs, FaultOp, ReadFile, StdFs, WriteFile};
use corral_storage::log::{read_log_file, LogWriterOptions};
use corral_storage::trigger::SnapTriggerConfig;
use corral_tree::{DataTree, TreeConfig};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// Every wait in these tests gives up (and fails the test) after this long.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// What the tracking file system saw.
#[derive(Debug, Default)]
struct Track {
    /// Per file: bytes written (log files are written contiguously: no preallocation).
    written: HashMap<PathBuf, u64>,
    /// Per file: the bytes the last completed sync covered.
    synced: HashMap<PathBuf, u64>,
    /// Syncs wait while this is set.
    hold: bool,
    /// Syncs waiting on `hold` now.
    parked: usize,
    /// A sync waited [`WAIT_MAX`] and went on: some test expectation failed.
    held_too_long: bool,
    /// The name of the thread of every completed sync of a log file, in order.
    log_sync_threads: Vec<String>,
}

/// A file system over [`StdFs`] that records what is durable and can hold syncs.
#[derive(Debug, Clone, Default)]
struct TrackFs {
    t: Arc<(Mutex<Track>, Condvar)>,
}

impl TrackFs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Track> {
        self.t.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold_syncs(&self, hold: bool) {
        self.lock().hold = hold;
        self.t.1.notify_all();
    }

    /// Waits until a sync is parked on the hold.
    fn wait_parked(&self) {
        let deadline = Instant::now() + WAIT_MAX;
        let mut t = self.lock();
        while t.parked == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no sync parked within {WAIT_MAX:?}");
            t = self.t.1.wait_timeout(t, left).unwrap().0;
        }
    }

    /// The zxids of the log, as far as the syncs made it durable, in file order.
    fn durable_zxids(&self, log_dir: &Path) -> Vec<i64> {
        let synced = self.lock().synced.clone();
        let mut logs: Vec<_> = synced
            .into_iter()
            .filter(|(p, _)| p.parent() == Some(log_dir))
            .filter(|(p, _)| p.file_name().unwrap().to_string_lossy().starts_with("log."))
            .collect();
        logs.sort_by_key(|(p, _)| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            i64::from_str_radix(name.trim_start_matches("log."), 16).unwrap()
        });
        let scratch = tempfile::tempdir().unwrap();
        let mut zxids = Vec::new();
        for (i, (path, len)) in logs.iter().enumerate() {
            let mut bytes = std::fs::read(path).unwrap();
            bytes.truncate(*len as usize);
            let copy = scratch.path().join(format!("log.{i}"));
            std::fs::write(&copy, &bytes).unwrap();
            let (records, _) = read_log_file(&StdFs, &copy).unwrap();
            zxids.extend(records.iter().map(|r| r.zxid()));
        }
        zxids
    }

    fn log_sync_threads(&self) -> Vec<String> {
        self.lock().log_sync_threads.clone()
    }

    fn sync(&self, path: &Path, inner: &mut dyn WriteFile, all: bool) -> std::io::Result<()> {
        {
            let deadline = Instant::now() + WAIT_MAX;
            let mut t = self.lock();
            t.parked += 1;
            self.t.1.notify_all();
            while t.hold {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    t.held_too_long = true;
                    break;
                }
                t = self.t.1.wait_timeout(t, left).unwrap().0;
            }
            t.parked -= 1;
        }
        // What was written before the sync is durable after it.
        let written = self.lock().written.get(path).copied().unwrap_or(0);
        if all {
            inner.sync_all()?;
        } else {
            inner.sync_data()?;
        }
        let mut t = self.lock();
        t.synced.insert(path.to_path_buf(), written);
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("log."))
        {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            t.log_sync_threads.push(name);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct TrackFile {
    path: PathBuf,
    inner: Box<dyn WriteFile>,
    fs: TrackFs,
}

impl WriteFile for TrackFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, data)?;
        let mut t = self.fs.lock();
        let w = t.written.entry(self.path.clone()).or_default();
        *w = (*w).max(offset + data.len() as u64);
        Ok(())
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.fs.sync(&self.path, self.inner.as_mut(), false)
    }
    fn sync_all(&mut self) -> std::io::Result<()> {
        self.fs.sync(&self.path, self.inner.as_mut(), true)
    }
}

impl FileSystem for TrackFs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn ReadFile>> {
        StdFs.open_read(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(TrackFile {
            path: path.to_path_buf(),
            inner: StdFs.create_new(path)?,
            fs: self.clone(),
        }))
    }
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(TrackFile {
            path: path.to_path_buf(),
            inner: StdFs.create(path)?,
            fs: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        StdFs.remove_file(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        StdFs.truncate(path, len)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        StdFs.sync_dir(dir)
    }
}

/// A standalone core on a fresh data directory, with its log thread.
struct Rig {
    core: Core,
    track: TrackFs,
    fault: FaultFs,
    failed: watch::Receiver<Option<String>>,
    log_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// `snap_count`: the trigger's txns between rolls (0: never roll).
fn rig(snap_count: u64) -> Rig {
    rig_with(snap_count, false)
}

/// With `ensemble`: the core drives a one-voter ensemble's [`Replica`] (no quorum
/// sockets: it leads once told to) instead of a standalone node.
fn rig_with(snap_count: u64, ensemble: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let track = TrackFs::default();
    let fault = FaultFs::new(Arc::new(track.clone()));
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dirs = DataDirs::new(dir.path(), dir.path());
    let settings = LogSettings {
        writer: LogWriterOptions {
            prealloc_bytes: 0,
            ..LogWriterOptions::default()
        },
        trigger: SnapTriggerConfig {
            snap_count: if snap_count == 0 {
                u64::MAX / 4
            } else {
                snap_count
            },
            snap_size_bytes: 0,
        },
        trigger_seed: 1,
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let gate = (!ensemble).then(|| Arc::new(ReleaseGate::new(0)));
    let (log, _thread) = spawn_log_thread(
        fs.clone(),
        &dirs,
        0,
        settings,
        events_tx.clone(),
        gate.clone(),
    )
    .unwrap();
    let clock = Clock::new();
    let now = clock.now();
    let node = Node::new(
        NodeConfig::standalone(2000),
        DataTree::new(TreeConfig::default()),
        0,
        now,
    );
    let (failed_tx, failed) = watch::channel(None);
    let mut first = Vec::new();
    let engine = if ensemble {
        let cfg = ReplicaConfig {
            my_sid: 1,
            voters: [1].into_iter().collect(),
            observers: Default::default(),
            tick_ms: 2000,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            config_text: Bytes::from_static(b"server.1=127.0.0.1:2888:3888:participant"),
            config_version: 0,
        };
        let (replica, outs) = Replica::new(cfg, node, 0, 0, 0, Vec::new(), now);
        first = outs;
        Engine::Ensemble(Box::new(replica))
    } else {
        Engine::Standalone(Box::new(node))
    };
    let mut core = Core::new(
        engine,
        Arc::new(ServerSettings::for_tests(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_path_buf(),
        )),
        Arc::new(ServerStats::new(now.wall_ms)),
        clock,
        Storage {
            fs,
            dirs: dirs.clone(),
            log,
            events: events_rx,
            events_tx,
            durable_zxid: 0,
            gate,
        },
        failed_tx,
    );
    core.routputs_extend(first);
    core.flush_replica();
    Rig {
        core,
        track,
        fault,
        failed,
        log_dir: dirs.log_dir.clone(),
        _dir: dir,
    }
}

type ConnRx = mpsc::UnboundedReceiver<ConnOut>;

fn connect_msg(conn: ConnId) -> (CoreMsg, ConnRx) {
    let (out, rx) = mpsc::unbounded_channel();
    let msg = CoreMsg::Connect {
        conn,
        peer_ip: "127.0.0.1".into(),
        req: ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30_000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        },
        out,
        stats: Arc::new(ConnStats::new("127.0.0.1:1".parse().unwrap(), 0)),
    };
    (msg, rx)
}

fn create_msg(conn: ConnId, xid: i32, path: &str) -> CoreMsg {
    CoreMsg::Requests {
        conn,
        reqs: vec![RequestIn {
            xid,
            op: OpCode::Create as i32,
            decoded: Ok(Request::Create(CreateRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"x")),
                acl: Some(Acl::open_unsafe()),
                flags: 0,
                ttl: None,
            })),
        }],
        received: Instant::now(),
    }
}

fn set_data_msg(conn: ConnId, xid: i32, path: &str) -> CoreMsg {
    CoreMsg::Requests {
        conn,
        reqs: vec![RequestIn {
            xid,
            op: OpCode::SetData as i32,
            decoded: Ok(Request::SetData(SetDataRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"y")),
                version: -1,
            })),
        }],
        received: Instant::now(),
    }
}

/// What a connection's writer was given.
#[derive(Debug, PartialEq)]
enum Got {
    Handshake,
    Reply { xid: i32, zxid: i64, err: i32 },
    Close,
}

fn decode(out: ConnOut, handshake: bool) -> Got {
    match out {
        ConnOut::Close => Got::Close,
        ConnOut::Frame(f) if handshake => {
            ConnectResponse::from_bytes(f.slice(4..)).unwrap();
            Got::Handshake
        }
        ConnOut::Frame(f) => {
            let h = ReplyHeader::read(&mut Reader::new(f.slice(4..))).unwrap();
            Got::Reply {
                xid: h.xid,
                zxid: h.zxid,
                err: h.err,
            }
        }
    }
}

/// What is already there, without waiting.
fn ready(rx: &mut ConnRx) -> Option<Got> {
    rx.try_recv().ok().map(|o| decode(o, false))
}

/// The next output, waiting for it (at most [`WAIT_MAX`]).
fn next(rx: &mut ConnRx, handshake: bool) -> Got {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match rx.try_recv() {
            Ok(o) => return decode(o, handshake),
            Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("no output within {WAIT_MAX:?}: {e:?}"),
        }
    }
}

fn next_event(core: &mut Core) -> LogEvent {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match core.storage.events.try_recv() {
            Ok(ev) => return ev,
            Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("no storage event within {WAIT_MAX:?}: {e:?}"),
        }
    }
}

fn wait_thread_idle(core: &Core) {
    let deadline = Instant::now() + WAIT_MAX;
    while !core.storage.log.thread_idle() {
        assert!(Instant::now() < deadline, "log thread still busy");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn syncs(core: &Core) -> (u64, u64) {
    let s = core.storage.log.shared();
    (s.inline_syncs.load(Relaxed), s.thread_syncs.load(Relaxed))
}

fn gate(core: &Core) -> &ReleaseGate {
    core.storage.gate.as_deref().unwrap()
}

fn this_thread() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// Handles `msg` and ends the wake-up, `idle` or not.
fn step(core: &mut Core, msg: CoreMsg, idle: bool) -> bool {
    core.handle(msg);
    core.write_appends(idle)
}

#[test]
fn an_idle_core_syncs_inline_and_replies_before_returning() {
    let mut r = rig(0);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    // The handshake (the createSession txn, zxid 1) went out before write_appends
    // returned: the core synced and released it itself.
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1]);
    assert!(step(&mut r.core, create_msg(1, 1, "/a"), true));
    assert_eq!(
        ready(&mut rx),
        Some(Got::Reply {
            xid: 1,
            zxid: 2,
            err: 0
        })
    );
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1, 2]);
    assert_eq!(syncs(&r.core), (2, 0));
    // Both syncs ran on this (the core's) thread.
    assert_eq!(r.track.log_sync_threads(), vec![this_thread(); 2]);
    assert_eq!(gate(&r.core).durable(), 2);
    assert_eq!(gate(&r.core).released(), 2);
    assert_eq!(gate(&r.core).held_len(), 0);
    gate(&r.core).check_invariants();
    assert!(r.core.storage.log.thread_idle());
}

#[test]
fn a_busy_core_hands_its_appends_to_the_log_thread() {
    let mut r = rig(0);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, false));
    assert_eq!(next(&mut rx, true), Got::Handshake);
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1]);
    wait_thread_idle(&r.core);
    // Park the log thread inside its next sync: the reply must wait for it.
    r.track.hold_syncs(true);
    assert!(step(&mut r.core, create_msg(1, 1, "/a"), false));
    r.track.wait_parked();
    assert_eq!(ready(&mut rx), None, "a reply went out before its sync");
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1]);
    assert_eq!(gate(&r.core).held_len(), 1);
    r.track.hold_syncs(false);
    assert_eq!(
        next(&mut rx, false),
        Got::Reply {
            xid: 1,
            zxid: 2,
            err: 0
        }
    );
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1, 2]);
    wait_thread_idle(&r.core);
    assert_eq!(syncs(&r.core), (0, 2));
    assert_eq!(r.track.log_sync_threads(), vec!["corral-txnlog"; 2]);
    assert!(!r.track.lock().held_too_long);
    gate(&r.core).check_invariants();
}

#[test]
fn an_idle_core_waits_behind_a_busy_log_thread_and_zxid_order_holds() {
    let mut r = rig(0);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    r.track.hold_syncs(true);
    // zxid 2 goes to the log thread, which parks in its sync.
    assert!(step(&mut r.core, create_msg(1, 1, "/a"), false));
    r.track.wait_parked();
    // The core is idle now, but the log thread is not: zxid 3 must queue behind zxid 2
    // rather than be written inline (which would also wait on the log's lock).
    assert!(step(&mut r.core, set_data_msg(1, 2, "/a"), true));
    assert_eq!(syncs(&r.core), (1, 0));
    assert_eq!(ready(&mut rx), None);
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1]);
    r.track.hold_syncs(false);
    assert_eq!(
        next(&mut rx, false),
        Got::Reply {
            xid: 1,
            zxid: 2,
            err: 0
        }
    );
    assert_eq!(
        next(&mut rx, false),
        Got::Reply {
            xid: 2,
            zxid: 3,
            err: 0
        }
    );
    // Once the log thread is done, an idle core writes inline again.
    wait_thread_idle(&r.core);
    let (_, thread) = syncs(&r.core);
    assert!(thread >= 1);
    assert!(step(&mut r.core, set_data_msg(1, 3, "/a"), true));
    assert_eq!(
        ready(&mut rx),
        Some(Got::Reply {
            xid: 3,
            zxid: 4,
            err: 0
        })
    );
    assert_eq!(syncs(&r.core), (2, thread));
    // One log, in zxid order, whichever thread wrote each part.
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1, 2, 3, 4]);
    assert!(!r.track.lock().held_too_long);
    gate(&r.core).check_invariants();
}

#[test]
fn a_wake_up_of_many_messages_shares_one_inline_sync() {
    let mut r = rig(0);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    for i in 0..10 {
        r.core.handle(create_msg(1, i + 1, &format!("/n{i}")));
    }
    assert_eq!(
        ready(&mut rx),
        None,
        "replies wait for the end of the wake-up"
    );
    assert!(r.core.write_appends(true));
    for i in 0..10 {
        assert_eq!(
            ready(&mut rx),
            Some(Got::Reply {
                xid: i + 1,
                zxid: i as i64 + 2,
                err: 0
            })
        );
    }
    assert_eq!(syncs(&r.core), (2, 0));
    assert_eq!(
        r.track.durable_zxids(&r.log_dir),
        (1..=11).collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_inline_sync_latches_the_core_and_the_log_thread() {
    let mut r = rig(0);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    r.fault.fail_after(FaultOp::Sync, 0);
    assert!(!step(&mut r.core, create_msg(1, 1, "/a"), true));
    let msg = r
        .failed
        .borrow()
        .clone()
        .expect("the core reported the failure");
    assert!(msg.contains("injected Sync failure"), "{msg}");
    // The reply was dropped, never sent; the connection was closed.
    assert_eq!(ready(&mut rx), Some(Got::Close));
    assert_eq!(ready(&mut rx), None);
    assert_eq!(gate(&r.core).held_len(), 0);
    assert_eq!(gate(&r.core).durable(), 1);
    // The log stays latched for the log thread too, even once the disk "heals": it never
    // retries the sync and reports the failure.
    r.fault.heal(FaultOp::Sync);
    let sync_calls = r.fault.calls(FaultOp::Sync);
    r.core.handle(set_data_msg(1, 2, "/a"));
    assert!(r.core.write_appends(false));
    match next_event(&mut r.core) {
        LogEvent::Failed(e) => assert!(e.contains("injected Sync failure"), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(r.fault.calls(FaultOp::Sync), sync_calls);
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1]);
    assert!(!r.core.storage.log.thread_idle());
}

#[test]
fn after_a_log_thread_failure_the_core_never_writes_inline() {
    let mut r = rig(0);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    r.fault.fail_after(FaultOp::Sync, 0);
    assert!(step(&mut r.core, create_msg(1, 1, "/a"), false));
    let ev = next_event(&mut r.core);
    assert!(matches!(ev, LogEvent::Failed(_)), "{ev:?}");
    r.fault.heal(FaultOp::Sync);
    // The core has not seen the event yet; idle, it still must not write inline.
    assert!(!r.core.storage.log.thread_idle());
    assert!(step(&mut r.core, set_data_msg(1, 2, "/a"), true));
    assert_eq!(syncs(&r.core).0, 1);
    assert!(!r.core.on_storage_event(ev));
    assert!(r.failed.borrow().is_some());
    assert_eq!(ready(&mut rx), Some(Got::Close));
    assert_eq!(r.track.durable_zxids(&r.log_dir), vec![1]);
}

#[test]
fn an_inline_roll_starts_the_snapshot_from_the_core() {
    // The trigger rolls after one or two txns.
    let mut r = rig(2);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    let mut xid = 0;
    let mut done = None;
    while done.is_none() {
        assert!(xid < 10, "no snapshot after {xid} writes");
        xid += 1;
        assert!(step(
            &mut r.core,
            create_msg(1, xid, &format!("/n{xid}")),
            true
        ));
        assert!(matches!(ready(&mut rx), Some(Got::Reply { err: 0, .. })));
        if r.core.snapshot_running {
            done = Some(next_event(&mut r.core));
        }
    }
    match done.unwrap() {
        LogEvent::SnapshotDone { result, .. } => assert!(result.is_ok(), "{result:?}"),
        other => panic!("expected the snapshot's report, got {other:?}"),
    }
    // The next append starts the new file.
    xid += 1;
    assert!(step(&mut r.core, create_msg(1, xid, "/last"), true));
    assert!(matches!(ready(&mut rx), Some(Got::Reply { err: 0, .. })));
    // Written inline: the log thread never ran, so it never reported SnapshotDue.
    assert_eq!(syncs(&r.core), (xid as u64 + 1, 0));
    assert!(r.core.storage.events.try_recv().is_err());
    let logs = corral_storage::layout::list_logs(&StdFs, &r.log_dir).unwrap();
    assert!(logs.len() >= 2, "the log rolled: {logs:?}");
    assert_eq!(
        r.track.durable_zxids(&r.log_dir),
        (1..=xid as i64 + 1).collect::<Vec<_>>()
    );
}

/// Runs a core task on a runtime, as the server does.
struct Running {
    tx: mpsc::Sender<CoreMsg>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<durable::LogShared>,
}

fn run_core(core: Core) -> Running {
    let (tx, rx) = mpsc::channel(1000);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = core.storage.log.shared().clone();
    let task = tokio::spawn(core.run(rx, shutdown_rx));
    Running {
        tx,
        shutdown,
        task,
        shared,
    }
}

async fn next_async(rx: &mut ConnRx, handshake: bool) -> Got {
    let o = tokio::time::timeout(WAIT_MAX, rx.recv())
        .await
        .expect("an output in time")
        .expect("the writer channel is open");
    decode(o, handshake)
}

#[tokio::test(flavor = "current_thread")]
async fn the_run_loop_writes_serial_requests_inline_and_a_backlog_on_the_log_thread() {
    let r = rig(0);
    let log_dir = r.log_dir.clone();
    let track = r.track.clone();
    let run = run_core(r.core);
    let (msg, mut rx) = connect_msg(1);
    run.tx.send(msg).await.unwrap();
    assert_eq!(next_async(&mut rx, true).await, Got::Handshake);
    // Serial: each request is alone in its wake-up and the log thread is idle.
    for xid in 1..=5 {
        run.tx
            .send(create_msg(1, xid, &format!("/s{xid}")))
            .await
            .unwrap();
        assert_eq!(
            next_async(&mut rx, false).await,
            Got::Reply {
                xid,
                zxid: xid as i64 + 1,
                err: 0
            }
        );
    }
    assert_eq!(run.shared.inline_syncs.load(Relaxed), 6);
    assert_eq!(run.shared.thread_syncs.load(Relaxed), 0);
    // A backlog queued before the core runs (this runtime has one thread, and try_send
    // does not yield): the first wake-up takes CORE_BATCH_MAX messages and finds more
    // waiting, so it hands its appends to the log thread.
    let n = CORE_BATCH_MAX as i32 + 50;
    for i in 0..n {
        let xid = 100 + i;
        run.tx
            .try_send(set_data_msg(1, xid, "/s1"))
            .unwrap_or_else(|_| panic!("queue full"));
    }
    let mut last_zxid = 6;
    for i in 0..n {
        match next_async(&mut rx, false).await {
            Got::Reply { xid, zxid, err: 0 } => {
                assert_eq!(xid, 100 + i);
                assert!(zxid > last_zxid);
                last_zxid = zxid;
                assert!(
                    track.durable_zxids(&log_dir).contains(&zxid),
                    "reply of 0x{zxid:x} before its sync"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(run.shared.thread_syncs.load(Relaxed) >= 1);
    assert_eq!(
        track.durable_zxids(&log_dir),
        (1..=last_zxid).collect::<Vec<_>>()
    );
    run.shutdown.send(true).unwrap();
    tokio::time::timeout(WAIT_MAX, run.task)
        .await
        .expect("the core stops")
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_inline_sync_stops_the_run_loop() {
    let r = rig(0);
    let fault = r.fault.clone();
    let mut failed = r.failed.clone();
    let run = run_core(r.core);
    let (msg, mut rx) = connect_msg(1);
    run.tx.send(msg).await.unwrap();
    assert_eq!(next_async(&mut rx, true).await, Got::Handshake);
    fault.fail_after(FaultOp::Sync, 0);
    run.tx.send(create_msg(1, 1, "/a")).await.unwrap();
    assert_eq!(next_async(&mut rx, false).await, Got::Close);
    tokio::time::timeout(WAIT_MAX, run.task)
        .await
        .expect("the core stops on its own")
        .unwrap();
    let msg = failed
        .borrow_and_update()
        .clone()
        .expect("failure reported");
    assert!(msg.contains("fsync failed"), "{msg}");
    assert_eq!(run.shared.inline_syncs.load(Relaxed), 1);
    assert!(run.tx.send(create_msg(1, 2, "/b")).await.is_err());
}

// ---- an ensemble member ---------------------------------------------------------------

/// A one-voter ensemble that has been told it leads, and serves.
fn leading_rig() -> Rig {
    let mut r = rig_with(0, true);
    let now = r.core.clock.now();
    let Engine::Ensemble(rep) = &mut r.core.engine else {
        unreachable!()
    };
    rep.lead(now, &mut r.core.routputs);
    r.core.flush_replica();
    // Whatever leading logged (nothing is expected) is written by the log thread.
    assert!(r.core.write_appends(false));
    let deadline = Instant::now() + WAIT_MAX;
    while !r.core.node().is_serving() {
        assert!(
            Instant::now() < deadline,
            "the one-voter leader never served"
        );
        match r.core.storage.events.try_recv() {
            Ok(ev) => assert!(r.core.on_storage_event(ev)),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
        let now = r.core.clock.now();
        let Engine::Ensemble(rep) = &mut r.core.engine else {
            unreachable!()
        };
        rep.tick(now, &mut r.core.routputs);
        r.core.flush_replica();
        assert!(r.core.write_appends(false));
    }
    wait_thread_idle(&r.core);
    r
}

#[test]
fn an_idle_leader_syncs_inline_and_commits_before_returning() {
    let mut r = leading_rig();
    let base = r.core.node().last_zxid();
    let (_, thread) = syncs(&r.core);
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, true));
    // The createSession txn was synced on this thread, which told the replica: its own
    // ack is a quorum, so it committed and released the handshake.
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    assert!(step(&mut r.core, create_msg(1, 1, "/a"), true));
    assert_eq!(
        ready(&mut rx),
        Some(Got::Reply {
            xid: 1,
            zxid: base + 2,
            err: 0
        })
    );
    assert_eq!(syncs(&r.core), (2, thread));
    assert!(r.core.deferred.is_empty());
    let zxids = r.track.durable_zxids(&r.log_dir);
    assert_eq!(zxids[zxids.len() - 2..], [base + 1, base + 2]);
}

#[test]
fn a_busy_leader_hands_its_appends_to_the_log_thread_and_commits_on_its_report() {
    let mut r = leading_rig();
    let base = r.core.node().last_zxid();
    let (msg, mut rx) = connect_msg(1);
    assert!(step(&mut r.core, msg, false));
    // Not released until the log thread's report reaches the replica.
    assert_eq!(ready(&mut rx), None);
    match next_event(&mut r.core) {
        LogEvent::Durable(z) => {
            assert_eq!(z, base + 1);
            assert!(r.core.on_storage_event(LogEvent::Durable(z)));
        }
        other => panic!("expected Durable, got {other:?}"),
    }
    assert_eq!(decode(rx.try_recv().unwrap(), true), Got::Handshake);
    wait_thread_idle(&r.core);
    // Park the log thread in a sync: an idle core must then queue behind it.
    r.track.hold_syncs(true);
    assert!(step(&mut r.core, create_msg(1, 1, "/a"), false));
    r.track.wait_parked();
    assert!(step(&mut r.core, set_data_msg(1, 2, "/a"), true));
    assert_eq!(syncs(&r.core).0, 0);
    assert_eq!(ready(&mut rx), None);
    r.track.hold_syncs(false);
    let mut replies = Vec::new();
    while replies.len() < 2 {
        if let Ok(ev) = r.core.storage.events.try_recv() {
            assert!(r.core.on_storage_event(ev));
        }
        while let Some(g) = ready(&mut rx) {
            replies.push(g);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        replies,
        vec![
            Got::Reply {
                xid: 1,
                zxid: base + 2,
                err: 0
            },
            Got::Reply {
                xid: 2,
                zxid: base + 3,
                err: 0
            }
        ]
    );
    let zxids = r.track.durable_zxids(&r.log_dir);
    assert_eq!(zxids[zxids.len() - 3..], [base + 1, base + 2, base + 3]);
    assert!(!r.track.lock().held_too_long);
}

#[test]
fn a_stop_hands_deferred_appends_to_the_log_thread_first() {
    let mut r = leading_rig();
    let base = r.core.node().last_zxid();
    let (msg, _rx) = connect_msg(1);
    // Handled, not yet written: the wake-up has not ended.
    r.core.handle(msg);
    assert_eq!(r.core.deferred.len(), 1);
    r.core.stop_log();
    assert!(r.core.deferred.is_empty());
    let deadline = Instant::now() + WAIT_MAX;
    while r.track.durable_zxids(&r.log_dir).last() != Some(&(base + 1)) {
        assert!(
            Instant::now() < deadline,
            "the deferred append was not logged"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

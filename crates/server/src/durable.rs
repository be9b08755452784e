//! Durable storage for the running server: recovery at start, the txn log (group commit,
//! on the log thread or, when the core is otherwise idle, inline on the core), and
//! background snapshots.
//!
//! Owns: the [`LogState`] (the [`TxnLogWriter`] and the snapshot/roll trigger, the one
//! place that appends, rolls and syncs), shared behind a mutex by the log thread and the
//! core's inline path; the log thread (its own OS thread, so that under load fsyncs do
//! not block the runtime); the snapshot writer thread.
//!
//! Protocol with the core task:
//! * the core sends [`LogCmd::Append`] for every txn, in zxid order, through its
//!   [`LogHandle`], which counts the commands queued;
//! * the log thread appends everything queued, then syncs once (group commit: under load
//!   many txns share one fsync; under light load each txn gets its own immediately, so
//!   batching adds no latency), then reports [`LogEvent::Durable`] with the highest zxid
//!   now on disk; the core releases replies only up to that zxid. A standalone server
//!   passes a [`ReleaseGate`]: the log thread then advances it itself, handing the held
//!   replies straight to their connections, and reports `Durable` to the core only when
//!   the core may have stopped taking requests because too much was held;
//! * when the trigger fires, the log rolls to a new file; the log thread then reports
//!   [`LogEvent::SnapshotDue`] and the core hands a copy-on-write clone of the tree to
//!   [`spawn_snapshot`];
//! * a failed write or fsync latches: the log thread reports [`LogEvent::Failed`] once and
//!   stops; it never retries an fsync. The core then stops serving.
//!
//! Inline writes (see `core`): when the log thread is idle ([`LogHandle::thread_idle`]:
//! no command queued or in progress) and the core has nothing else to do, the core
//! appends and syncs a batch itself with [`LogHandle::write_inline`], then does what the
//! log thread's report would have caused (standalone: advances the gate; ensemble: tells
//! the replica, which may ACK or commit) and starts a due snapshot itself. This saves the
//! two cross-thread wake-ups (core to log thread, and back) of a serial write.
//! Why it is safe:
//! * Log order: only the core produces appends, in zxid order. `queued == 0` means every
//!   txn it handed the log thread is already synced, and nothing new reaches the log
//!   thread while the core writes inline (the core is busy doing it), so the file stays in
//!   zxid order and the inline sync covers every earlier txn too. A learner's truncation
//!   (after which zxids start lower) is a log-thread command, preceded by every deferred
//!   append, so it is done before the next inline write.
//! * The lock is free: the log thread holds it only while a batch is in progress, and
//!   decrements `queued` after dropping it, so the core never waits on it.
//! * One gate advancer at a time (standalone): the log thread advances the gate before it decrements
//!   `queued` (Release; the core reads it with Acquire), and gets no new command until the
//!   core, single-threaded, has finished its inline write and advance. The gate's
//!   hand-over (see `gate`) assumes its `advance` calls do not overlap.
//! * Failure: [`LogState`] latches the first error for both users. An inline failure
//!   makes the core stop as a log-thread failure does, and the log thread fails any later
//!   command; a log-thread failure leaves `queued` above zero, so the core never writes
//!   inline again.

use crate::core::HELD_OUTPUTS_MAX;
use crate::gate::ReleaseGate;
use corral_proto::TxnEntry;
use corral_storage::fs::FileSystem;
use corral_storage::layout::DataDirs;
use corral_storage::log::{LogWriterOptions, TxnLogWriter};
use corral_storage::trigger::{SnapTrigger, SnapTriggerConfig};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Most txns appended before one sync, so a flood still gets synced in bounded batches
/// (ZooKeeper's `zookeeper.maxBatchSize`).
pub const GROUP_COMMIT_TXNS_MAX: usize = 1000;

/// Commands from the core to the log thread.
pub enum LogCmd {
    Append(TxnEntry),
    /// An entry already encoded (an ensemble member has the proposal's bytes).
    AppendEncoded {
        zxid: i64,
        bytes: bytes::Bytes,
    },
    /// A learner's TRUNC or SNAP: sync what is queued, close the log, forget every txn
    /// after `zxid` (logs and newer snapshots), and append after `zxid` from now on. The
    /// outcome is reported on `done` (the core waits for it).
    Truncate {
        zxid: i64,
        done: std_mpsc::Sender<Result<String, String>>,
    },
    /// Finish what is queued, sync, and stop.
    Shutdown,
}

/// A txn the core has deferred to the end of its wake-up (see `core`): written by
/// [`LogHandle::write_inline`] or handed to the log thread with [`PendingAppend::into_cmd`].
#[derive(Debug)]
pub enum PendingAppend {
    /// A standalone node's txn.
    Decoded(TxnEntry),
    /// An ensemble member's txn, already encoded (the proposal's bytes).
    Encoded { zxid: i64, bytes: bytes::Bytes },
}

impl PendingAppend {
    pub fn zxid(&self) -> i64 {
        match self {
            PendingAppend::Decoded(e) => e.header.zxid,
            PendingAppend::Encoded { zxid, .. } => *zxid,
        }
    }

    /// The log thread's command for this append.
    pub fn into_cmd(self) -> LogCmd {
        match self {
            PendingAppend::Decoded(e) => LogCmd::Append(e),
            PendingAppend::Encoded { zxid, bytes } => LogCmd::AppendEncoded { zxid, bytes },
        }
    }

    fn entry(&self) -> Entry<'_> {
        match self {
            PendingAppend::Decoded(e) => Entry::Decoded(e),
            PendingAppend::Encoded { bytes, .. } => Entry::Encoded(bytes),
        }
    }
}

/// Reports from the storage threads to the core.
#[derive(Debug)]
pub enum LogEvent {
    /// Everything up to and including this zxid is on disk (fsynced when forceSync=yes).
    Durable(i64),
    /// The log was rolled: take a snapshot now.
    SnapshotDue,
    /// A snapshot finished (or failed: the message says why; the log stays the source of
    /// truth, so a failed snapshot does not stop the server).
    SnapshotDone {
        zxid: i64,
        result: Result<String, String>,
    },
    /// Writing or syncing the log failed. Latched: nothing more will be made durable.
    Failed(String),
}

/// Settings of the log thread.
#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    pub writer: LogWriterOptions,
    pub trigger: SnapTriggerConfig,
    /// Seed of the trigger's randomisation (so that members do not snapshot together).
    pub trigger_seed: u64,
}

/// The txn log writer with its snapshot/roll trigger: the one place that appends, rolls
/// and syncs. Behind [`LogShared::state`], used by the log thread and by the core's
/// inline path.
pub struct LogState {
    /// None only after a failed truncation (then `failed` is set).
    writer: Option<TxnLogWriter>,
    trigger: SnapTrigger,
    opts: LogWriterOptions,
    fs: Arc<dyn FileSystem>,
    dirs: DataDirs,
    /// Highest zxid appended since the last sync.
    unsynced: Option<i64>,
    /// The log was rolled since the last [`LogState::take_snapshot_due`].
    snapshot_due: bool,
    /// Latched: the first failure, returned by every later call.
    failed: Option<String>,
}

impl LogState {
    fn latch(&mut self, e: String) -> String {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
        }
        e
    }

    fn writer(&mut self) -> Result<&mut TxnLogWriter, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.writer.as_mut() {
            Some(w) => Ok(w),
            None => Err("the txn log is closed".into()),
        }
    }

    /// Appends one entry (`bytes` when already encoded), counts it towards the trigger,
    /// and rolls the log when the trigger fires.
    fn append(&mut self, zxid: i64, entry: Entry<'_>) -> Result<(), String> {
        let r = self.append_inner(zxid, entry);
        r.map_err(|e| self.latch(e))
    }

    fn append_inner(&mut self, zxid: i64, entry: Entry<'_>) -> Result<(), String> {
        let w = self.writer()?;
        let before = w.current_file_bytes();
        match entry {
            Entry::Decoded(e) => w.append(e),
            Entry::Encoded(b) => w.append_encoded(zxid, b),
        }
        .map_err(|e| e.to_string())?;
        let bytes = w.current_file_bytes().saturating_sub(before);
        self.unsynced = Some(zxid);
        if self.trigger.on_logged(bytes.max(1)) {
            self.snapshot_due = true;
            self.writer()?.roll().map_err(|e| e.to_string())?;
            self.trigger.reset();
        }
        Ok(())
    }

    /// Writes and syncs everything appended; returns the highest zxid that became
    /// durable (None when nothing was appended since the last sync).
    fn sync(&mut self) -> Result<Option<i64>, String> {
        // Never retried: the writer is latched and every later call fails the same way.
        let r = self
            .writer()
            .and_then(|w| w.sync().map_err(|e| e.to_string()));
        r.map_err(|e| self.latch(e))?;
        Ok(self.unsynced.take())
    }

    /// Whether the log rolled since the last call (a snapshot is due).
    fn take_snapshot_due(&mut self) -> bool {
        std::mem::take(&mut self.snapshot_due)
    }

    /// Closes the writer, truncates the data directory after `zxid`, and opens a new
    /// writer. The caller synced first.
    fn truncate(&mut self, zxid: i64) -> Result<String, String> {
        self.writer()?;
        let w = self.writer.take().expect("checked above");
        let r = truncate_and_reopen(w, zxid, &self.fs, &self.dirs, self.opts);
        match r {
            Ok((w, what)) => {
                self.writer = Some(w);
                Ok(what)
            }
            Err(e) => Err(self.latch(e)),
        }
    }

    fn close(&mut self) {
        if let Some(Err(e)) = self.writer.take().map(|w| w.close()) {
            tracing::error!("closing the txn log failed: {e}");
        }
    }
}

/// An entry to append, decoded or already encoded.
enum Entry<'a> {
    Decoded(&'a TxnEntry),
    Encoded(&'a [u8]),
}

/// What the log thread and the core share.
pub struct LogShared {
    state: Mutex<LogState>,
    /// Commands handed to the log thread and not yet fully carried out: appended,
    /// synced, reported and released through the gate. Only the core increments it
    /// (before sending); the log thread decrements it after everything else it does for
    /// a batch. Zero therefore means the log thread is idle and every txn the core ever
    /// handed it is on disk and released.
    queued: AtomicUsize,
    /// Syncs done on the core's inline path, and by the log thread (for tests and
    /// diagnostics).
    pub inline_syncs: AtomicU64,
    pub thread_syncs: AtomicU64,
}

impl LogShared {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while appending would leave the writer in an unknown state; latch.
        self.state.lock().unwrap_or_else(|e| {
            let mut st = e.into_inner();
            st.latch("a thread panicked while writing the txn log".into());
            st
        })
    }
}

/// The core's handle on the log: the log thread's queue and the shared state.
pub struct LogHandle {
    tx: std_mpsc::Sender<LogCmd>,
    shared: Arc<LogShared>,
}

/// The log thread has stopped (after a failure it reported, or a shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogThreadStopped;

/// What [`LogHandle::write_inline`] made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineSynced {
    /// The highest zxid now on disk (None when nothing was appended).
    pub zxid: Option<i64>,
    /// The log rolled: the caller starts a snapshot.
    pub snapshot_due: bool,
}

impl LogHandle {
    /// Hands `cmd` to the log thread. An error means the log thread has stopped after a
    /// failure, which it reports separately.
    pub fn send(&self, cmd: LogCmd) -> Result<(), LogThreadStopped> {
        // Counted before sending, so the log thread's decrement can never come first. On
        // an error the count stays up: the inline path stays closed too.
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(cmd).map_err(|_| LogThreadStopped)
    }

    /// The log thread has nothing queued or in progress: every txn handed to it is on
    /// disk and its releases are done.
    pub fn thread_idle(&self) -> bool {
        // Acquire pairs with the log thread's Release decrement: what it did for those
        // commands (the sync, the gate advance) happened before this returns true.
        self.shared.queued.load(Ordering::Acquire) == 0
    }

    /// The shared state (for tests and diagnostics).
    pub fn shared(&self) -> &Arc<LogShared> {
        &self.shared
    }

    /// Appends `entries` (in zxid order, all above anything appended before) and syncs,
    /// on the calling thread. Only the core calls this, and only when
    /// [`Self::thread_idle`]: the log thread then holds no earlier txn (so the log keeps
    /// zxid order) and does not hold the lock (so this does not wait for it). A failure
    /// latches the log for the log thread too.
    pub fn write_inline(&self, entries: &[PendingAppend]) -> Result<InlineSynced, String> {
        debug_assert!(
            self.thread_idle(),
            "inline write while the log thread is busy"
        );
        let mut st = self.shared.lock();
        for e in entries {
            st.append(e.zxid(), e.entry())?;
        }
        let zxid = st.sync()?;
        self.shared.inline_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(InlineSynced {
            zxid,
            snapshot_due: st.take_snapshot_due(),
        })
    }
}

/// Starts the log thread for `dirs`, appending above `last_zxid`.
pub fn spawn_log_thread(
    fs: Arc<dyn FileSystem>,
    dirs: &DataDirs,
    last_zxid: i64,
    settings: LogSettings,
    events: mpsc::UnboundedSender<LogEvent>,
    gate: Option<Arc<ReleaseGate>>,
) -> std::io::Result<(LogHandle, std::thread::JoinHandle<()>)> {
    let writer = TxnLogWriter::new(fs.clone(), &dirs.log_dir, Some(last_zxid), settings.writer)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let shared = Arc::new(LogShared {
        state: Mutex::new(LogState {
            writer: Some(writer),
            trigger: SnapTrigger::new(settings.trigger, settings.trigger_seed),
            opts: settings.writer,
            fs,
            dirs: dirs.clone(),
            unsynced: None,
            snapshot_due: false,
            failed: None,
        }),
        queued: AtomicUsize::new(0),
        inline_syncs: AtomicU64::new(0),
        thread_syncs: AtomicU64::new(0),
    });
    let (tx, rx) = std_mpsc::channel::<LogCmd>();
    let handle = std::thread::Builder::new()
        .name("corral-txnlog".into())
        .spawn({
            let shared = shared.clone();
            move || log_loop(&shared, rx, events, gate)
        })?;
    Ok((LogHandle { tx, shared }, handle))
}

/// Closes `writer`, truncates the data directory after `zxid`, and opens a new writer.
fn truncate_and_reopen(
    writer: TxnLogWriter,
    zxid: i64,
    fs: &Arc<dyn FileSystem>,
    dirs: &DataDirs,
    opts: corral_storage::log::LogWriterOptions,
) -> Result<(TxnLogWriter, String), String> {
    writer
        .close()
        .map_err(|e| format!("closing the log: {e}"))?;
    let outcome = corral_storage::recovery::truncate_to(fs.as_ref(), dirs, zxid)
        .map_err(|e| format!("truncating to 0x{zxid:x}: {e}"))?;
    let w = TxnLogWriter::new(fs.clone(), &dirs.log_dir, Some(zxid), opts)
        .map_err(|e| format!("reopening the log: {e}"))?;
    Ok((w, format!("{outcome:?}")))
}

fn log_loop(
    shared: &LogShared,
    rx: std_mpsc::Receiver<LogCmd>,
    events: mpsc::UnboundedSender<LogEvent>,
    gate: Option<Arc<ReleaseGate>>,
) {
    let mut shutting_down = false;
    while !shutting_down {
        // Block for the first command, then take whatever else is already queued.
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_TXNS_MAX {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let commands = batch.len();
        let mut st = shared.lock();
        for cmd in batch {
            match cmd {
                LogCmd::Truncate { zxid, done } => {
                    match st.sync() {
                        Ok(Some(z)) => {
                            let _ = events.send(LogEvent::Durable(z));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ = events.send(LogEvent::Failed(e));
                            return;
                        }
                    }
                    match st.truncate(zxid) {
                        Ok(what) => {
                            let _ = done.send(Ok(what));
                        }
                        Err(e) => {
                            let _ = done.send(Err(e.clone()));
                            let _ = events.send(LogEvent::Failed(e));
                            return;
                        }
                    }
                }
                LogCmd::Append(entry) => {
                    if let Err(e) = st.append(entry.header.zxid, Entry::Decoded(&entry)) {
                        let _ = events.send(LogEvent::Failed(e));
                        return;
                    }
                }
                LogCmd::AppendEncoded { zxid, bytes } => {
                    if let Err(e) = st.append(zxid, Entry::Encoded(&bytes)) {
                        let _ = events.send(LogEvent::Failed(e));
                        return;
                    }
                }
                LogCmd::Shutdown => shutting_down = true,
            }
        }
        let synced = match st.sync() {
            Ok(z) => z,
            Err(e) => {
                // On failure `queued` is never decremented: the core's inline path stays
                // closed, and the core stops on this report.
                let _ = events.send(LogEvent::Failed(e));
                return;
            }
        };
        shared.thread_syncs.fetch_add(1, Ordering::Relaxed);
        let snapshot_due = st.take_snapshot_due();
        if shutting_down {
            st.close();
        }
        drop(st);
        if let Some(z) = synced {
            match &gate {
                Some(g) => {
                    if g.advance(z) >= HELD_OUTPUTS_MAX {
                        // The core may be waiting for room: wake it.
                        let _ = events.send(LogEvent::Durable(z));
                    }
                }
                None => {
                    let _ = events.send(LogEvent::Durable(z));
                }
            }
        }
        if snapshot_due {
            let _ = events.send(LogEvent::SnapshotDue);
        }
        // Last: once this reaches zero the core may write inline and advance the gate
        // itself, so this thread must be done with both.
        shared.queued.fetch_sub(commands, Ordering::Release);
    }
    shared.lock().close();
    tracing::info!(
        inline = shared.inline_syncs.load(Ordering::Relaxed),
        log_thread = shared.thread_syncs.load(Ordering::Relaxed),
        "txn log closed; syncs done inline by the core and by the log thread"
    );
}

/// Loaded state at start-up.
pub struct Recovered {
    pub tree: corral_tree::DataTree,
    pub last_zxid: i64,
    /// The last txns replayed (at most [`RECENT_TXNS_MAX`]), as log-entry bytes, for an
    /// ensemble member's history; `recent_floor` is the zxid just before the first.
    pub recent: std::collections::VecDeque<(i64, bytes::Bytes)>,
    pub recent_floor: i64,
    /// Nothing was on disk.
    pub fresh: bool,
}

/// Txns of the log tail kept after recovery (a new leader's committed log).
pub const RECENT_TXNS_MAX: usize = corral_node::replica::HISTORY_TXNS_MAX;

/// Nodes or txns between two progress lines while loading.
const RECOVERY_PROGRESS_EVERY: u64 = 100_000;

/// Loads the newest valid snapshot and replays the log after it. Torn tails are cut (and
/// logged); a corrupt record, a gap, or a snapshot that fails its checksum with no older one
/// to fall back to is an error whose text names the file and offset.
pub fn recover(
    fs: Arc<dyn FileSystem>,
    dirs: &DataDirs,
    cfg: corral_tree::TreeConfig,
) -> Result<Recovered, String> {
    use corral_storage::recovery::{plan_recovery_loading, RecoveryOptions};
    let started = std::time::Instant::now();
    // CPU time says what recovery costs even on a busy machine, where elapsed time does not.
    let cpu_before = this_thread_cpu_ms();
    let (plan, loaded) =
        plan_recovery_loading(fs.clone(), dirs, RecoveryOptions::default(), || {
            Progress::new(corral_tree::snapshot::TreeBuilder::new(cfg.clone()))
        })
        .map_err(|e| format!("cannot recover from {}: {e}", dirs.snap_dir.display()))?;
    for r in &plan.repairs {
        tracing::warn!("recovery repaired the log: {r:?}");
    }
    for s in &plan.skipped_snapshots {
        tracing::warn!(
            "skipped snapshot {} (0x{:x}): {}",
            s.path.display(),
            s.zxid,
            s.reason
        );
    }
    let loaded_ms = started.elapsed().as_millis() as u64;
    let mut tree = match (&plan.snapshot, loaded) {
        (Some(info), Some(sink)) => {
            tracing::info!(
                nodes = sink.nodes,
                elapsed_ms = loaded_ms,
                "loaded snapshot {}",
                info.path.display()
            );
            sink.inner
                .finish()
                .map_err(|e| format!("snapshot {} is inconsistent: {e}", info.path.display()))?
        }
        _ => corral_tree::DataTree::new(cfg),
    };
    let mut replayed = 0u64;
    let mut recent = std::collections::VecDeque::new();
    let mut recent_floor = plan.snapshot.as_ref().and_then(|s| s.zxid).unwrap_or(0);
    for rec in plan.entries(fs.clone()) {
        let rec = rec.map_err(|e| format!("cannot replay the txn log: {e}"))?;
        let mismatch = tree.replay_entry(&rec.entry).map_err(|e| {
            format!(
                "cannot replay txn 0x{:x} from {} at offset {}: {e}",
                rec.zxid(),
                rec.file.display(),
                rec.offset
            )
        })?;
        if let Some(m) = mismatch {
            // ZooKeeper logs and counts a digest mismatch; it does not stop.
            tracing::warn!(
                "tree digest mismatch after txn 0x{:x} ({} at offset {}): {m:?}",
                rec.zxid(),
                rec.file.display(),
                rec.offset
            );
        }
        if recent.len() == RECENT_TXNS_MAX {
            if let Some((z, _)) = recent.pop_front() {
                recent_floor = z;
            }
        }
        // Kept decoded and encoded only once replay is over: of a long tail, all but the
        // last RECENT_TXNS_MAX would be encoded for nothing.
        recent.push_back((rec.zxid(), rec.entry));
        replayed += 1;
        if replayed.is_multiple_of(RECOVERY_PROGRESS_EVERY) {
            tracing::info!(replayed, total = plan.entry_count, "replaying the txn log");
        }
    }
    // As ZooKeeper does after loading: ephemerals whose owner is not in the session table
    // could never be removed by an expiry, so they go now.
    let orphaned = tree.remove_ephemerals_of_dead_sessions(plan.last_zxid);
    if !orphaned.is_empty() {
        tracing::info!(
            sessions = orphaned.len(),
            "removed ephemerals of sessions that no longer exist"
        );
    }
    tracing::info!(
        nodes = tree.node_count(),
        sessions = tree.sessions().count(),
        replayed,
        last_zxid = format!("0x{:x}", plan.last_zxid),
        elapsed_ms = started.elapsed().as_millis() as u64,
        cpu_ms = this_thread_cpu_ms().saturating_sub(cpu_before),
        "recovered"
    );
    if recent.is_empty() {
        recent_floor = plan.last_zxid;
    }
    Ok(Recovered {
        tree,
        last_zxid: plan.last_zxid,
        recent: recent.into_iter().map(|(z, e)| (z, e.to_bytes())).collect(),
        recent_floor,
        fresh: plan.is_fresh(),
    })
}

/// CPU time (user + system) the calling thread has used, in milliseconds; 0 if unknown.
fn this_thread_cpu_ms() -> u64 {
    // SAFETY: getrusage writes only into the struct it is given, which is zeroed and ours.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut ru) != 0 {
            return 0;
        }
        ru
    };
    let ms = |t: libc::timeval| (t.tv_sec as u64) * 1000 + (t.tv_usec as u64) / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// A sink that logs a progress line every [`RECOVERY_PROGRESS_EVERY`] nodes.
struct Progress<S> {
    inner: S,
    nodes: u64,
}

impl<S> Progress<S> {
    fn new(inner: S) -> Progress<S> {
        Progress { inner, nodes: 0 }
    }
}

impl<S: corral_storage::snapshot::SnapshotSink> corral_storage::snapshot::SnapshotSink
    for Progress<S>
{
    fn session(&mut self, id: i64, timeout_ms: i32) -> Result<(), corral_storage::error::BoxError> {
        self.inner.session(id, timeout_ms)
    }
    fn acl(
        &mut self,
        id: i64,
        acls: Vec<corral_proto::Acl>,
    ) -> Result<(), corral_storage::error::BoxError> {
        self.inner.acl(id, acls)
    }
    fn expect_bytes(&mut self, file_bytes: u64) {
        self.inner.expect_bytes(file_bytes)
    }
    fn node(
        &mut self,
        node: corral_storage::snapshot::SnapshotNode,
    ) -> Result<(), corral_storage::error::BoxError> {
        self.node_ref(node.as_record())
    }
    fn node_ref(
        &mut self,
        node: corral_storage::snapshot::NodeRecord<'_>,
    ) -> Result<(), corral_storage::error::BoxError> {
        self.nodes += 1;
        if self.nodes.is_multiple_of(RECOVERY_PROGRESS_EVERY) {
            tracing::info!(nodes = self.nodes, "loading snapshot");
        }
        self.inner.node_ref(node)
    }
    fn digest(
        &mut self,
        d: corral_storage::snapshot::ZxidDigest,
    ) -> Result<(), corral_storage::error::BoxError> {
        self.inner.digest(d)
    }
}

/// Writes `snapshot.<zxid>` from a consistent view of the tree, synchronously.
pub fn write_snapshot_now(
    fs: &dyn FileSystem,
    dirs: &DataDirs,
    view: &corral_tree::snapshot::TreeSnapshot,
    zxid: i64,
) -> Result<String, String> {
    corral_storage::snapshot::write_snapshot(fs, &dirs.snap_dir, zxid, view)
        .map(|info| {
            format!(
                "{} ({} nodes, {} bytes)",
                info.path.display(),
                info.nodes,
                info.bytes
            )
        })
        .map_err(|e| e.to_string())
}

/// Writes a snapshot of `view` (taken at `zxid`; it shares nodes copy-on-write with the
/// live tree, so taking it costs microseconds) on its own thread, and reports
/// [`LogEvent::SnapshotDone`].
pub fn spawn_snapshot(
    fs: Arc<dyn FileSystem>,
    dirs: DataDirs,
    view: corral_tree::snapshot::TreeSnapshot,
    zxid: i64,
    events: mpsc::UnboundedSender<LogEvent>,
) {
    let spawned = std::thread::Builder::new()
        .name("corral-snapshot".into())
        .spawn({
            let events = events.clone();
            move || {
                lower_this_thread_priority();
                let result = write_snapshot_now(fs.as_ref(), &dirs, &view, zxid);
                let _ = events.send(LogEvent::SnapshotDone { zxid, result });
            }
        });
    if let Err(e) = spawned {
        let _ = events.send(LogEvent::SnapshotDone {
            zxid,
            result: Err(format!("cannot start the snapshot thread: {e}")),
        });
    }
}

/// Runs `autopurge`: keeps the newest `retain` snapshots and the logs they need.
pub fn purge_now(fs: &dyn FileSystem, dirs: &DataDirs, retain: usize) {
    match corral_storage::retention::purge(fs, dirs, retain) {
        Ok(out) => tracing::info!(
            removed = out.removed.len(),
            kept = out.kept_snapshots.len(),
            "autopurge done"
        ),
        Err(e) => tracing::warn!("autopurge failed: {e}"),
    }
}

/// Niceness of the snapshot thread: below the core task and the log thread, so that on a
/// busy machine a snapshot takes longer rather than delaying acknowledgements.
const SNAPSHOT_THREAD_NICE: libc::c_int = 10;

/// Lowers the CPU priority of the calling thread (Linux schedules threads individually,
/// so this leaves the rest of the process alone). Best effort: failure is only logged.
fn lower_this_thread_priority() {
    // SAFETY: gettid and setpriority take no pointers; PRIO_PROCESS with a thread id
    // applies to that thread only.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SNAPSHOT_THREAD_NICE)
    };
    if rc != 0 {
        tracing::debug!(
            "could not lower the snapshot thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

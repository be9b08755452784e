//! Durable storage for the running server: recovery at start, the log thread (group
//! commit), and background snapshots.
//!
//! Owns: the [`TxnLogWriter`] (on its own OS thread, so fsyncs never block the runtime), the
//! snapshot/roll trigger, and the snapshot writer thread.
//!
//! Protocol with the core task:
//! * the core sends [`LogCmd::Append`] for every txn, in zxid order;
//! * the log thread appends everything queued, then syncs once (group commit: under load
//!   many txns share one fsync; under light load each txn gets its own immediately, so
//!   batching adds no latency), then reports [`LogEvent::Durable`] with the highest zxid
//!   now on disk; the core releases replies only up to that zxid. A standalone server
//!   passes a [`ReleaseGate`]: the log thread then advances it itself, handing the held
//!   replies straight to their connections, and reports `Durable` to the core only when
//!   the core may have stopped taking requests because too much was held;
//! * when the trigger fires, the log thread rolls to a new file and reports
//!   [`LogEvent::SnapshotDue`]; the core then hands a copy-on-write clone of the tree to
//!   [`spawn_snapshot`];
//! * a failed write or fsync latches: the log thread reports [`LogEvent::Failed`] once and
//!   stops; it never retries an fsync. The core then stops serving.

use crate::core::HELD_OUTPUTS_MAX;
use crate::gate::ReleaseGate;
use corral_proto::TxnEntry;
use corral_storage::fs::FileSystem;
use corral_storage::layout::DataDirs;
use corral_storage::log::{LogWriterOptions, TxnLogWriter};
use corral_storage::trigger::{SnapTrigger, SnapTriggerConfig};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
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

/// Starts the log thread for `dirs`, appending above `last_zxid`.
pub fn spawn_log_thread(
    fs: Arc<dyn FileSystem>,
    dirs: &DataDirs,
    last_zxid: i64,
    settings: LogSettings,
    events: mpsc::UnboundedSender<LogEvent>,
    gate: Option<Arc<ReleaseGate>>,
) -> std::io::Result<(std_mpsc::Sender<LogCmd>, std::thread::JoinHandle<()>)> {
    let writer = TxnLogWriter::new(fs.clone(), &dirs.log_dir, Some(last_zxid), settings.writer)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (tx, rx) = std_mpsc::channel::<LogCmd>();
    let dirs = dirs.clone();
    let handle = std::thread::Builder::new()
        .name("corral-txnlog".into())
        .spawn(move || log_loop(writer, rx, settings, events, gate, fs, dirs))?;
    Ok((tx, handle))
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
    writer: TxnLogWriter,
    rx: std_mpsc::Receiver<LogCmd>,
    settings: LogSettings,
    events: mpsc::UnboundedSender<LogEvent>,
    gate: Option<Arc<ReleaseGate>>,
    fs: Arc<dyn FileSystem>,
    dirs: DataDirs,
) {
    let mut slot = Some(writer);
    let mut trigger = SnapTrigger::new(settings.trigger, settings.trigger_seed);
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
        let mut last = None;
        let mut snapshot_due = false;
        for cmd in batch {
            let writer = slot.as_mut().expect("the log writer is always put back");
            match cmd {
                LogCmd::Truncate { zxid, done } => {
                    if let Err(e) = writer.sync() {
                        let _ = events.send(LogEvent::Failed(e.to_string()));
                        return;
                    }
                    if let Some(z) = last.take() {
                        let _ = events.send(LogEvent::Durable(z));
                    }
                    let w = slot.take().expect("writer present");
                    match truncate_and_reopen(w, zxid, &fs, &dirs, settings.writer) {
                        Ok((w, what)) => {
                            slot = Some(w);
                            let _ = done.send(Ok(what));
                        }
                        Err(e) => {
                            let _ = done.send(Err(e.clone()));
                            let _ = events.send(LogEvent::Failed(e));
                            return;
                        }
                    }
                }
                cmd @ (LogCmd::Append(_) | LogCmd::AppendEncoded { .. }) => {
                    let before = writer.current_file_bytes();
                    let (zxid, r) = match cmd {
                        LogCmd::Append(entry) => (entry.header.zxid, writer.append(&entry)),
                        LogCmd::AppendEncoded { zxid, bytes } => {
                            (zxid, writer.append_encoded(zxid, &bytes))
                        }
                        _ => unreachable!("matched above"),
                    };
                    if let Err(e) = r {
                        let _ = events.send(LogEvent::Failed(e.to_string()));
                        return;
                    }
                    let bytes = writer.current_file_bytes().saturating_sub(before);
                    last = Some(zxid);
                    if trigger.on_logged(bytes.max(1)) {
                        snapshot_due = true;
                        if let Err(e) = writer.roll() {
                            let _ = events.send(LogEvent::Failed(e.to_string()));
                            return;
                        }
                        trigger.reset();
                    }
                }
                LogCmd::Shutdown => shutting_down = true,
            }
        }
        let writer = slot.as_mut().expect("the log writer is always put back");
        if let Err(e) = writer.sync() {
            // Never retried: the writer is latched and every later call fails the same way.
            let _ = events.send(LogEvent::Failed(e.to_string()));
            return;
        }
        if let Some(z) = last {
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
    }
    if let Some(Err(e)) = slot.map(|w| w.close()) {
        tracing::error!("closing the txn log failed: {e}");
    }
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

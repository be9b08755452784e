//! Recovery: from a data dir and a log dir, choose the snapshot to load and the log
//! entries to replay after it, repairing what a crash may leave behind.
//!
//! The plan ([`plan_recovery`]):
//! 1. Snapshots are tried newest first, at most [`SNAPSHOTS_TRIED_MAX`] of those that pass
//!    ZooKeeper's cheap validity check (≥ 10 bytes, ending in `int 1, '/'`). A file failing
//!    that check was never completed (ZooKeeper writes snapshots in place) and is skipped.
//!    A complete-looking file that fails its checksums or does not parse is damaged: an
//!    older snapshot may replace it only if the logs replay from the older one to at least
//!    the damaged one's zxid, else [`StorageError::SnapshotUnrecoverable`].
//! 2. The logs needed are chosen as ZooKeeper chooses them (newest file starting at or
//!    before the snapshot zxid, and all later ones) and read through to the end, checking
//!    every checksum and that the zxids after the snapshot follow one another with no gap
//!    ([`crate::layout::zxid_follows`]). A bad record followed by valid data, a torn file
//!    followed by a file with entries, or a gap is an error naming the file and offset.
//! 3. Repairs (when [`RecoveryOptions::repair`]): a torn tail is cut off at the offset of
//!    the torn record, and log files after the end of the data that hold no record are
//!    removed, each with a warning, so the next writer starts a fresh `log.<next zxid>`.
//!
//! Without any snapshot: an empty directory is a fresh start (`last_zxid` 0). Logs without
//! a snapshot are replayed onto the initial tree only when they hold the whole history,
//! i.e. their first entry is zxid 1 (standalone) or 0x100000001 (the first txn of the
//! first epoch of an ensemble) — corral's decision, since such logs lose nothing; any other
//! first zxid is refused like ZooKeeper refuses it, unless `trust_empty_snapshot` (ZooKeeper's
//! `zookeeper.snapshot.trust.empty`) is set.
//!
//! [`plan_recovery`] reads the chosen snapshot and the logs once to validate them; loading
//! the snapshot ([`RecoveryPlan::load_snapshot`]) and replaying ([`RecoveryPlan::entries`])
//! read them again (checked again), so nothing is held in memory in between. A server
//! start uses [`plan_recovery_loading`] instead, which loads the snapshot in the read that
//! verifies it (a 100 MB snapshot is then parsed and checksummed once, not twice).

use crate::error::{Result, StorageError, Zxid};
use crate::fs::FileSystem;
use crate::layout::{self, DataDirs, NamedFile};
use crate::log::{self, LogIter, FILE_HEADER_BYTES};
use crate::snapshot::{self, SnapshotInfo, SnapshotSink, SNAPSHOTS_TRIED_MAX};
use std::path::PathBuf;
use std::sync::Arc;

/// The first zxid of a standalone server's history.
pub const FIRST_STANDALONE_ZXID: i64 = 1;
/// The first zxid of an ensemble's history (epoch 1, counter 1).
pub const FIRST_QUORUM_ZXID: i64 = 0x1_0000_0001;

/// Settings of [`plan_recovery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// Replay logs that do not start at the first txn when no snapshot exists.
    pub trust_empty_snapshot: bool,
    /// How many complete-looking snapshots to try, newest first.
    pub snapshots_tried_max: usize,
    /// Cut torn tails and remove empty trailing log files (off: only report them).
    pub repair: bool,
}

impl Default for RecoveryOptions {
    fn default() -> RecoveryOptions {
        RecoveryOptions {
            trust_empty_snapshot: false,
            snapshots_tried_max: SNAPSHOTS_TRIED_MAX,
            repair: true,
        }
    }
}

/// A change recovery made (or, with `repair` off, would make) to the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// A torn record and everything after it were cut off.
    Truncated {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A log file without any record after the end of the data was removed.
    RemovedLog { file: PathBuf, reason: String },
}

/// A snapshot that was not used, and why.
#[derive(Debug, Clone)]
pub struct SkippedSnapshot {
    pub path: PathBuf,
    pub zxid: i64,
    pub reason: StorageError,
}

/// What to load and replay.
#[derive(Debug, Clone)]
pub struct RecoveryPlan {
    pub dirs: DataDirs,
    /// The snapshot to load (already verified), if any.
    pub snapshot: Option<SnapshotInfo>,
    /// Entries with a zxid above this are replayed (the snapshot's zxid, or 0).
    pub replay_after: i64,
    /// The log files replay reads, oldest first.
    pub log_files: Vec<NamedFile>,
    /// How many entries replay yields.
    pub entry_count: u64,
    /// The zxid of the state after replay.
    pub last_zxid: i64,
    /// Newer snapshots that were passed over.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Repairs made to the logs.
    pub repairs: Vec<Repair>,
}

impl RecoveryPlan {
    /// Whether there was nothing on disk (a fresh server: ZooKeeper writes `snapshot.0`).
    pub fn is_fresh(&self) -> bool {
        self.snapshot.is_none() && self.entry_count == 0 && self.last_zxid == 0
    }

    /// Loads the chosen snapshot into `sink`; `Ok(None)` when there is none (start from the
    /// initial tree).
    pub fn load_snapshot(
        &self,
        fs: &dyn FileSystem,
        sink: &mut dyn SnapshotSink,
    ) -> Result<Option<SnapshotInfo>> {
        match &self.snapshot {
            None => Ok(None),
            Some(s) => snapshot::read_snapshot(fs, &s.path, sink).map(Some),
        }
    }

    /// The entries to replay, in order, checked again as they are read.
    pub fn entries(&self, fs: Arc<dyn FileSystem>) -> LogIter {
        LogIter::over_files(fs, self.log_files.clone(), self.replay_after, true)
    }
}

/// Walks the logs from `after` to their end: the iterator where it stopped, the count of
/// entries yielded, and the error that stopped it early.
fn walk(
    fs: &Arc<dyn FileSystem>,
    files: Vec<NamedFile>,
    after: i64,
) -> (LogIter, u64, Option<StorageError>) {
    let mut it = LogIter::over_files(fs.clone(), files, after, true);
    let mut n = 0u64;
    for r in it.by_ref() {
        match r {
            Ok(_) => n += 1,
            Err(e) => return (it, n, Some(e)),
        }
    }
    (it, n, None)
}

/// The first record in any of `logs`.
fn first_entry(fs: &Arc<dyn FileSystem>, logs: &[NamedFile]) -> Result<Option<log::LogRecord>> {
    let mut it = LogIter::over_files(fs.clone(), logs.to_vec(), i64::MIN, false);
    it.next().transpose()
}

/// Builds the recovery plan for `dirs` (see the module docs), making the repairs. The
/// chosen snapshot is only verified; load it with [`RecoveryPlan::load_snapshot`], or use
/// [`plan_recovery_loading`] to verify and load it in one read.
pub fn plan_recovery(
    fs: Arc<dyn FileSystem>,
    dirs: &DataDirs,
    opts: RecoveryOptions,
) -> Result<RecoveryPlan> {
    plan_recovery_loading(fs, dirs, opts, || snapshot::NullSink).map(|(plan, _)| plan)
}

/// [`plan_recovery`] that also loads the chosen snapshot: each snapshot tried is read once,
/// into a fresh sink from `new_sink`, and that read is its verification too (both seals
/// and every length are checked as it streams). The sink of the snapshot chosen is
/// returned with the plan (`None` when there is no snapshot); the sink of a damaged one is
/// dropped before an older snapshot is tried. A sink's error on a file that then verifies
/// stops recovery (it is not damage an older snapshot could make up for), as it would when
/// loading after planning; on a file that does not verify it is the damage, and an older
/// snapshot is tried, as [`plan_recovery`] would.
pub fn plan_recovery_loading<S: SnapshotSink>(
    fs: Arc<dyn FileSystem>,
    dirs: &DataDirs,
    opts: RecoveryOptions,
    mut new_sink: impl FnMut() -> S,
) -> Result<(RecoveryPlan, Option<S>)> {
    let snaps = layout::list_snapshots(&*fs, &dirs.snap_dir)?;
    let mut skipped = Vec::new();
    let mut damaged: Vec<SkippedSnapshot> = Vec::new();
    let mut chosen: Option<SnapshotInfo> = None;
    let mut loaded: Option<S> = None;
    let mut tried = 0usize;
    for s in snaps.iter().rev() {
        if tried >= opts.snapshots_tried_max {
            break;
        }
        if !snapshot::has_valid_tail(&*fs, &s.path)? {
            tracing::warn!(
                "snapshot {} is incomplete (no end marker); skipped",
                s.path.display()
            );
            skipped.push(SkippedSnapshot {
                path: s.path.clone(),
                zxid: s.zxid,
                reason: StorageError::CorruptSnapshot {
                    file: s.path.clone(),
                    offset: 0,
                    reason: "incomplete: does not end in the \"/\" seal".into(),
                },
            });
            continue;
        }
        tried += 1;
        let mut sink = new_sink();
        let read = match snapshot::read_snapshot(&*fs, &s.path, &mut sink) {
            // The sink may have refused a node damaged before the read reached the seals
            // that would prove the damage: read again without it to tell a damaged file
            // (tried like any other) from a sound one the sink refuses (fatal).
            Err(e @ StorageError::Sink { .. }) => match snapshot::verify_snapshot(&*fs, &s.path) {
                Err(c) if c.is_corruption() => Err(c),
                _ => Err(e),
            },
            r => r,
        };
        match read {
            Ok(info) => {
                chosen = Some(info);
                loaded = Some(sink);
                break;
            }
            Err(e) if e.is_corruption() => {
                tracing::warn!("{e}; trying an older snapshot");
                let sk = SkippedSnapshot {
                    path: s.path.clone(),
                    zxid: s.zxid,
                    reason: e,
                };
                damaged.push(sk.clone());
                skipped.push(sk);
            }
            Err(e) => return Err(e),
        }
    }

    let logs = layout::list_logs(&*fs, &dirs.log_dir)?;
    let after = match &chosen {
        Some(info) => info.zxid.unwrap_or(0),
        None => match first_entry(&fs, &logs)? {
            None => 0,
            Some(first) => {
                let z = first.zxid();
                if z == FIRST_STANDALONE_ZXID || z == FIRST_QUORUM_ZXID {
                    tracing::warn!(
                        "no snapshot found; replaying the txn logs from their first txn {} onto \
                         the initial tree",
                        Zxid(z)
                    );
                    z - 1
                } else if opts.trust_empty_snapshot {
                    tracing::warn!(
                        "no snapshot found, but there are log entries from {}; replaying them onto \
                         an empty tree because trust_empty_snapshot is set",
                        Zxid(z)
                    );
                    z - 1
                } else {
                    return Err(StorageError::LogsWithoutSnapshot {
                        first: Zxid(z),
                        file: first.file.to_path_buf(),
                    });
                }
            }
        },
    };
    let files = layout::logs_from(&logs, after).to_vec();
    let (it, entry_count, failure) = walk(&fs, files, after);
    let reached = it.last_zxid().unwrap_or(after);
    if let Some(e) = failure {
        // Logs that break off before the damaged snapshot's zxid make the snapshot the
        // thing that cannot be replaced; logs that break off later are the problem.
        return Err(match damaged.first() {
            Some(newest) if reached < newest.zxid && e.is_corruption() => {
                tracing::error!("falling back from {} failed: {e}", newest.path.display());
                StorageError::SnapshotUnrecoverable {
                    snapshot: newest.path.clone(),
                    cause: Box::new(newest.reason.clone()),
                    reached: Zxid(reached),
                }
            }
            _ => e,
        });
    }
    if let Some(newest) = damaged.first() {
        if reached < newest.zxid {
            return Err(StorageError::SnapshotUnrecoverable {
                snapshot: newest.path.clone(),
                cause: Box::new(newest.reason.clone()),
                reached: Zxid(reached),
            });
        }
        tracing::warn!(
            "snapshot {} is damaged; recovering from {} and the txn logs instead (they reach {})",
            newest.path.display(),
            chosen.as_ref().map_or("the initial tree".to_string(), |c| c
                .path
                .display()
                .to_string()),
            Zxid(reached)
        );
    }

    let mut repairs = Vec::new();
    if let Some(t) = it.torn_tail() {
        if t.offset <= FILE_HEADER_BYTES {
            repairs.push(Repair::RemovedLog {
                file: t.file.clone(),
                reason: format!("holds no complete record: {}", t.reason),
            });
        } else {
            repairs.push(Repair::Truncated {
                file: t.file.clone(),
                offset: t.offset,
                reason: t.reason.clone(),
            });
        }
    }
    for f in it.empty_files_after_end() {
        repairs.push(Repair::RemovedLog {
            file: f.clone(),
            reason: "holds no record and follows the end of the data".into(),
        });
    }
    if opts.repair && !repairs.is_empty() {
        for r in &repairs {
            match r {
                Repair::Truncated {
                    file,
                    offset,
                    reason,
                } => {
                    tracing::warn!(
                        "txn log {} has a torn record at offset {offset} ({reason}); truncating \
                         it there",
                        file.display()
                    );
                    fs.truncate(file, *offset)
                        .map_err(|e| StorageError::io("truncate", file, e))?;
                }
                Repair::RemovedLog { file, reason } => {
                    tracing::warn!("removing txn log {}: {reason}", file.display());
                    fs.remove_file(file)
                        .map_err(|e| StorageError::io("remove", file, e))?;
                }
            }
        }
        fs.sync_dir(&dirs.log_dir)
            .map_err(|e| StorageError::io("fsync directory", &dirs.log_dir, e))?;
    }
    let logs = if opts.repair {
        layout::list_logs(&*fs, &dirs.log_dir)?
    } else {
        logs
    };
    let log_files = layout::logs_from(&logs, after).to_vec();
    let plan = RecoveryPlan {
        dirs: dirs.clone(),
        snapshot: chosen,
        replay_after: after,
        log_files,
        entry_count,
        last_zxid: reached,
        skipped_snapshots: skipped,
        repairs,
    };
    Ok((plan, loaded))
}

/// What [`truncate_to`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TruncateToOutcome {
    pub log: log::TruncateOutcome,
    /// Snapshots newer than the target zxid (they hold txns that no longer exist).
    pub removed_snapshots: Vec<PathBuf>,
}

/// A learner's TRUNC: forget every txn after `zxid`, in the logs and in snapshots taken
/// after it. No writer may be open on the log dir.
pub fn truncate_to(fs: &dyn FileSystem, dirs: &DataDirs, zxid: i64) -> Result<TruncateToOutcome> {
    let log = log::truncate_log(fs, &dirs.log_dir, zxid)?;
    let mut removed = Vec::new();
    for s in layout::list_loose(fs, &dirs.snap_dir, layout::SNAPSHOT_PREFIX)? {
        if s.zxid > zxid {
            fs.remove_file(&s.path)
                .map_err(|e| StorageError::io("remove", &s.path, e))?;
            removed.push(s.path);
        }
    }
    if !removed.is_empty() {
        fs.sync_dir(&dirs.snap_dir)
            .map_err(|e| StorageError::io("fsync directory", &dirs.snap_dir, e))?;
    }
    Ok(TruncateToOutcome {
        log,
        removed_snapshots: removed,
    })
}

//! Retention: ZooKeeper's `PurgeTxnLog` rules.
//!
//! Keep the newest `snapRetainCount` (at least [`SNAP_RETAIN_COUNT_MIN`]) snapshots that
//! pass the validity check; let X be the zxid of the oldest one kept. Delete every
//! snapshot and every log whose name zxid is below X, except the log files a replay from X
//! needs: the newest log starting at or before X (it may hold txns after X) and all later
//! ones. Names are read as ZooKeeper reads them (`snapshot.1f.tmp` counts as zxid 0x1f).
//! With no valid snapshot nothing is deleted.

use crate::error::{Result, StorageError};
use crate::fs::FileSystem;
use crate::layout::{self, DataDirs};
use crate::snapshot;
use std::path::PathBuf;

/// ZooKeeper refuses to keep fewer snapshots than this.
pub const SNAP_RETAIN_COUNT_MIN: usize = 3;

/// What [`purge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// The snapshots kept, newest first.
    pub kept_snapshots: Vec<PathBuf>,
    /// The zxid of the oldest snapshot kept.
    pub least_zxid_kept: Option<i64>,
    /// Files deleted.
    pub removed: Vec<PathBuf>,
}

/// Deletes old snapshots and logs, keeping `retain` snapshots (see the module docs).
pub fn purge(fs: &dyn FileSystem, dirs: &DataDirs, retain: usize) -> Result<PurgeOutcome> {
    if retain < SNAP_RETAIN_COUNT_MIN {
        return Err(StorageError::InvalidSetting(format!(
            "snapRetainCount {retain} is below the minimum {SNAP_RETAIN_COUNT_MIN}"
        )));
    }
    let mut out = PurgeOutcome::default();
    for s in layout::list_snapshots(fs, &dirs.snap_dir)?
        .into_iter()
        .rev()
    {
        if out.kept_snapshots.len() == retain {
            break;
        }
        if snapshot::has_valid_tail(fs, &s.path)? {
            out.least_zxid_kept = Some(s.zxid);
            out.kept_snapshots.push(s.path);
        }
    }
    let Some(least) = out.least_zxid_kept else {
        return Ok(out);
    };
    let logs = layout::list_logs(fs, &dirs.log_dir)?;
    let needed: Vec<PathBuf> = layout::logs_from(&logs, least)
        .iter()
        .map(|f| f.path.clone())
        .collect();
    let mut doomed = Vec::new();
    for f in layout::list_loose(fs, &dirs.log_dir, layout::LOG_PREFIX)? {
        if f.zxid < least && !needed.contains(&f.path) {
            doomed.push(f.path);
        }
    }
    for f in layout::list_loose(fs, &dirs.snap_dir, layout::SNAPSHOT_PREFIX)? {
        if f.zxid < least && !out.kept_snapshots.contains(&f.path) {
            doomed.push(f.path);
        }
    }
    for p in doomed {
        tracing::info!("removing file: {}", p.display());
        fs.remove_file(&p)
            .map_err(|e| StorageError::io("remove", &p, e))?;
        out.removed.push(p);
    }
    for d in [&dirs.log_dir, &dirs.snap_dir] {
        fs.sync_dir(d)
            .map_err(|e| StorageError::io("fsync directory", d, e))?;
    }
    Ok(out)
}

//! Directory layout and file names, exactly as ZooKeeper lays them out.
//!
//! ```text
//! dataDir/version-2/snapshot.<hex zxid>            ; zxid = lastProcessedZxid when it started
//! dataDir/version-2/{acceptedEpoch,currentEpoch}
//! dataLogDir/version-2/log.<hex zxid>              ; zxid = the first txn in the file
//! hex = lower case, no padding, no "0x"            ; log.1, log.100000001, snapshot.0
//! ```
//!
//! Owns: building and parsing those names, listing the files of each kind in zxid order,
//! and ZooKeeper's rule for which log files a replay from a zxid needs.
//! Invariant: listing never fails on a foreign file name; names that do not parse are
//! ignored (ZooKeeper gives them zxid -1 and sorts them first, which amounts to the same).

use crate::error::{Result, StorageError};
use crate::fs::FileSystem;
use std::io;
use std::path::{Path, PathBuf};

/// ZooKeeper's format version directory under dataDir and dataLogDir.
pub const VERSION_DIR: &str = "version-2";
/// File name prefix of txn logs.
pub const LOG_PREFIX: &str = "log";
/// File name prefix of snapshots.
pub const SNAPSHOT_PREFIX: &str = "snapshot";
/// Suffix of a snapshot being written (ZooKeeper's `AtomicFileOutputStream` uses it too).
pub const TMP_SUFFIX: &str = ".tmp";

/// The two `version-2` directories a server uses (they may be the same directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirs {
    /// `dataDir/version-2`: snapshots and epoch files.
    pub snap_dir: PathBuf,
    /// `dataLogDir/version-2`: txn logs.
    pub log_dir: PathBuf,
}

impl DataDirs {
    /// From zoo.cfg's `dataDir` and `dataLogDir` (pass `data_dir` twice when there is no
    /// separate `dataLogDir`).
    pub fn new(data_dir: impl AsRef<Path>, data_log_dir: impl AsRef<Path>) -> DataDirs {
        DataDirs {
            snap_dir: data_dir.as_ref().join(VERSION_DIR),
            log_dir: data_log_dir.as_ref().join(VERSION_DIR),
        }
    }

    /// Creates both directories.
    pub fn create(&self, fs: &dyn FileSystem) -> Result<()> {
        for d in [&self.snap_dir, &self.log_dir] {
            fs.create_dir_all(d)
                .map_err(|e| StorageError::io("create directory", d, e))?;
        }
        Ok(())
    }
}

/// `log.<hex>`.
pub fn log_file_name(zxid: i64) -> String {
    format!("{LOG_PREFIX}.{zxid:x}")
}

/// `snapshot.<hex>`.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("{SNAPSHOT_PREFIX}.{zxid:x}")
}

/// ZooKeeper's `Util.getZxidFromName`: the second `.`-separated part parsed as hex when the
/// first part is `prefix`. Matches `snapshot.1f.tmp` too (PurgeTxnLog relies on that).
pub fn zxid_from_name(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    i64::from_str_radix(parts.next()?, 16).ok()
}

/// The zxid of a name that is exactly `prefix.<hex digits>`.
pub fn exact_zxid(name: &str, prefix: &str) -> Option<i64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if rest.is_empty() || rest.len() > 16 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(rest, 16).ok()
}

/// A file of one kind with the zxid from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFile {
    pub zxid: i64,
    pub path: PathBuf,
}

fn list_names(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<String>> {
    match fs.list(dir) {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StorageError::io("list directory", dir, e)),
    }
}

/// Files named exactly `prefix.<hex>` in `dir`, oldest first. A missing directory is empty.
pub fn list_exact(fs: &dyn FileSystem, dir: &Path, prefix: &str) -> Result<Vec<NamedFile>> {
    let mut out: Vec<NamedFile> = list_names(fs, dir)?
        .into_iter()
        .filter_map(|n| {
            exact_zxid(&n, prefix).map(|zxid| NamedFile {
                zxid,
                path: dir.join(&n),
            })
        })
        .collect();
    out.sort_by_key(|f| f.zxid);
    Ok(out)
}

/// Every file whose name ZooKeeper would read a zxid from with `prefix` (including
/// `.tmp` and compressed snapshots), oldest first.
pub fn list_loose(fs: &dyn FileSystem, dir: &Path, prefix: &str) -> Result<Vec<NamedFile>> {
    let mut out: Vec<NamedFile> = list_names(fs, dir)?
        .into_iter()
        .filter_map(|n| {
            zxid_from_name(&n, prefix).map(|zxid| NamedFile {
                zxid,
                path: dir.join(&n),
            })
        })
        .collect();
    out.sort_by(|a, b| a.zxid.cmp(&b.zxid).then_with(|| a.path.cmp(&b.path)));
    Ok(out)
}

/// Txn log files in `log_dir`, oldest first.
pub fn list_logs(fs: &dyn FileSystem, log_dir: &Path) -> Result<Vec<NamedFile>> {
    list_exact(fs, log_dir, LOG_PREFIX)
}

/// Snapshot files in `snap_dir` (exact names: no `.tmp`, no compressed ones), oldest first.
pub fn list_snapshots(fs: &dyn FileSystem, snap_dir: &Path) -> Result<Vec<NamedFile>> {
    list_exact(fs, snap_dir, SNAPSHOT_PREFIX)
}

/// ZooKeeper's `FileTxnLog.getLogFiles`: the newest log whose start zxid is <= `zxid`, and
/// every log after it. When every log starts after `zxid`, all of them.
pub fn logs_from(logs: &[NamedFile], zxid: i64) -> &[NamedFile] {
    let start = logs.iter().rposition(|f| f.zxid <= zxid).unwrap_or(0);
    &logs[start..]
}

/// The epoch part of a zxid (high 32 bits).
pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// The counter part of a zxid (low 32 bits).
pub fn counter_of(zxid: i64) -> i64 {
    zxid & 0xffff_ffff
}

/// Whether `next` may directly follow `prev` in a complete history: the next counter in the
/// same epoch, or the first txn (counter 1) of a later epoch.
pub fn zxid_follows(prev: i64, next: i64) -> bool {
    next == prev.wrapping_add(1) || (epoch_of(next) > epoch_of(prev) && counter_of(next) == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(log_file_name(1), "log.1");
        assert_eq!(log_file_name(0x1_0000_0001), "log.100000001");
        assert_eq!(snapshot_file_name(0), "snapshot.0");
        assert_eq!(exact_zxid("log.1f", LOG_PREFIX), Some(0x1f));
        assert_eq!(exact_zxid("log.1f.tmp", LOG_PREFIX), None);
        assert_eq!(exact_zxid("log.", LOG_PREFIX), None);
        assert_eq!(exact_zxid("log.-1", LOG_PREFIX), None);
        assert_eq!(exact_zxid("snapshot.1f", LOG_PREFIX), None);
        assert_eq!(
            zxid_from_name("snapshot.1f.tmp", SNAPSHOT_PREFIX),
            Some(0x1f)
        );
        assert_eq!(zxid_from_name("snapshotx.1f", SNAPSHOT_PREFIX), None);
    }

    #[test]
    fn logs_from_picks_like_zookeeper() {
        let f = |z| NamedFile {
            zxid: z,
            path: PathBuf::from(log_file_name(z)),
        };
        let logs = vec![f(1), f(9), f(0x10)];
        let zs = |s: &[NamedFile]| s.iter().map(|f| f.zxid).collect::<Vec<_>>();
        assert_eq!(zs(logs_from(&logs, 0)), vec![1, 9, 0x10]);
        assert_eq!(zs(logs_from(&logs, 1)), vec![1, 9, 0x10]);
        assert_eq!(zs(logs_from(&logs, 0xa)), vec![9, 0x10]);
        assert_eq!(zs(logs_from(&logs, 0x10)), vec![0x10]);
        assert_eq!(zs(logs_from(&logs, 0x99)), vec![0x10]);
    }

    #[test]
    fn follows() {
        assert!(zxid_follows(0, 1));
        assert!(zxid_follows(0, 0x1_0000_0001));
        assert!(zxid_follows(0x1_0000_0005, 0x3_0000_0001));
        assert!(zxid_follows(0x2_0000_0000, 0x2_0000_0001));
        assert!(!zxid_follows(5, 7));
        assert!(!zxid_follows(0x1_0000_0005, 0x2_0000_0002));
    }
}

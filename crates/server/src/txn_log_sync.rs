//! Reads the on-disk txn log for a learner's sync: the shell's half of
//! [`corral_zab::leader::Action::ReadTxnLog`], ZooKeeper 3.8's
//! `ZKDatabase.calculateTxnLogSizeLimit` + `getProposalsFromTxnLog` (+ the
//! `FileTxnIterator` it opens with `fastForward = false`).
//!
//! **Rules** (each from those sources):
//! * The size limit is `(long) (length of the newest snapshot file × snapshotSizeFactor)`;
//!   no snapshot counts as length 0. A negative factor disables the txn log sync (the
//!   leader then never asks); a limit of 0 means no limit.
//! * The files read are those `FileTxnIterator.init` picks: the newest log file named
//!   strictly below the learner's zxid (or the oldest when there is none) and every later
//!   one. The size compared with the limit is the sum of the lengths (preallocation
//!   included) of the files *after* the first one: `getStorageSize` is taken once the
//!   iterator has opened (and removed from its list) the first file.
//! * Records are returned from the first record of the first file, except that only the
//!   zxid of the last one below the learner's zxid is kept (`prev`); the leader decides
//!   from them ([`corral_zab::leader::Leader::txn_log_read`]). Reading stops after `upto`.
//!
//! **Errors are answers**, never panics: an unreadable or purged file, a corrupt record,
//! a torn record in any file but the newest (where it is a write in progress) or a size
//! over the limit all return `Err` with a sentence, and the learner gets SNAP.
//!
//! Threading: a blocking function, run on tokio's blocking pool, never on the core task.

use corral_storage::fs::FileSystem;
use corral_storage::layout::{self, DataDirs};
use corral_storage::log::{LogEnd, LogFileReader};
use corral_zab::leader::TxnLogRead;

/// ZooKeeper's default `zookeeper.snapshotSizeFactor`.
pub const SNAPSHOT_SIZE_FACTOR_DEFAULT: f64 = 0.33;

/// The records after `after` (see the module docs) up to `upto`.
pub fn read_for_learner(
    fs: &dyn FileSystem,
    dirs: &DataDirs,
    after: i64,
    upto: i64,
    snapshot_size_factor: f64,
) -> Result<TxnLogRead, String> {
    if snapshot_size_factor < 0.0 {
        return Err("the txn log sync is disabled (snapshotSizeFactor < 0)".into());
    }
    let limit = size_limit_bytes(fs, dirs, snapshot_size_factor)?;
    let logs = layout::list_logs(fs, &dirs.log_dir).map_err(|e| e.to_string())?;
    let first = logs.iter().rposition(|f| f.zxid < after).unwrap_or(0);
    let files = &logs[first.min(logs.len())..];
    if files.is_empty() {
        return Err("there are no txn log files".into());
    }
    if limit > 0 {
        let mut size: u64 = 0;
        for f in &files[1..] {
            let len = fs
                .open_read(&f.path)
                .map_err(|e| format!("cannot open {}: {e}", f.path.display()))?
                .len();
            size = size.saturating_add(len);
        }
        if size > limit {
            return Err(format!(
                "the txn log ({size} bytes) exceeds the limit of {limit} bytes \
                 (snapshotSizeFactor × the newest snapshot)"
            ));
        }
    }
    let mut read = TxnLogRead::default();
    for (i, f) in files.iter().enumerate() {
        let mut reader = LogFileReader::open(fs, &f.path).map_err(|e| e.to_string())?;
        while let Some(rec) = reader.next_record().map_err(|e| e.to_string())? {
            let z = rec.zxid();
            if z > upto {
                return Ok(read);
            }
            if z < after {
                read.prev = Some(z);
                continue;
            }
            if read.entries.last().is_some_and(|(last, _)| *last >= z) {
                return Err(format!(
                    "{}: zxid 0x{z:x} does not follow its predecessor",
                    f.path.display()
                ));
            }
            read.entries.push((z, rec.entry.to_bytes()));
        }
        if let Some(LogEnd::Torn { offset, reason }) = reader.end() {
            if i + 1 < files.len() {
                return Err(format!(
                    "{} is torn at offset {offset} ({reason}) and a newer log follows",
                    f.path.display()
                ));
            }
        }
    }
    Ok(read)
}

/// `ZKDatabase.calculateTxnLogSizeLimit`, in bytes (0: no limit).
fn size_limit_bytes(fs: &dyn FileSystem, dirs: &DataDirs, factor: f64) -> Result<u64, String> {
    let snaps = layout::list_snapshots(fs, &dirs.snap_dir).map_err(|e| e.to_string())?;
    let snap_len = match snaps.last() {
        Some(s) => fs
            .open_read(&s.path)
            .map_err(|e| format!("cannot open {}: {e}", s.path.display()))?
            .len(),
        None => 0,
    };
    // Java's `(long) (double)`: truncates, and saturates rather than wraps.
    Ok((snap_len as f64 * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::txn::{Txn, TxnEntry, TxnHeader};
    use corral_storage::fs::StdFs;
    use corral_storage::log::{LogWriterOptions, TxnLogWriter};

    fn entry(zxid: i64) -> TxnEntry {
        TxnEntry {
            header: TxnHeader {
                session_id: 1,
                cxid: 1,
                zxid,
                time_ms: 0,
                op: 2,
            },
            txn: Txn::Delete {
                path: format!("/n{zxid}"),
            },
            digest: None,
        }
    }

    /// Writes logs with the given txns, rolling before each zxid in `rolls`.
    fn write_logs(dirs: &DataDirs, zxids: &[i64], rolls: &[i64]) {
        let fs = StdFs::shared();
        dirs.create(&*fs).unwrap();
        let opts = LogWriterOptions {
            prealloc_bytes: 4096,
            ..LogWriterOptions::default()
        };
        let mut w = TxnLogWriter::new(fs, &dirs.log_dir, None, opts).unwrap();
        for &z in zxids {
            if rolls.contains(&z) {
                w.sync().unwrap();
                w.roll().unwrap();
            }
            w.append(&entry(z)).unwrap();
        }
        w.sync().unwrap();
        w.close().unwrap();
    }

    fn tmp() -> (tempfile::TempDir, DataDirs) {
        let d = tempfile::tempdir().unwrap();
        let dirs = DataDirs::new(d.path(), d.path());
        (d, dirs)
    }

    #[test]
    fn reads_from_the_file_below_the_zxid_keeping_only_the_previous_zxid() {
        let (_d, dirs) = tmp();
        write_logs(&dirs, &(1..=30).collect::<Vec<_>>(), &[11, 21]);
        let fs = StdFs::shared();
        let r = read_for_learner(&*fs, &dirs, 15, 25, 0.0).unwrap();
        assert_eq!(r.prev, Some(14));
        let got: Vec<i64> = r.entries.iter().map(|e| e.0).collect();
        assert_eq!(got, (15..=25).collect::<Vec<_>>());
        assert_eq!(r.entries[0].1, entry(15).to_bytes());
        // A zxid that starts a file is read from the file before it, as Java's init does.
        let r = read_for_learner(&*fs, &dirs, 11, 12, 0.0).unwrap();
        assert_eq!(r.prev, Some(10));
        // Older than every file: the first record is past it, no `prev`.
        let (_d2, dirs2) = tmp();
        write_logs(&dirs2, &(5..=9).collect::<Vec<_>>(), &[]);
        let r = read_for_learner(&*fs, &dirs2, 3, 9, 0.0).unwrap();
        assert_eq!((r.prev, r.entries[0].0), (None, 5));
    }

    #[test]
    fn a_negative_factor_or_a_log_over_the_limit_is_refused() {
        let (_d, dirs) = tmp();
        write_logs(&dirs, &(1..=30).collect::<Vec<_>>(), &[11, 21]);
        let fs = StdFs::shared();
        assert!(read_for_learner(&*fs, &dirs, 5, 30, -1.0).is_err());
        // A 1000-byte snapshot × 0.33 = 330 bytes < two preallocated 4 KiB files.
        std::fs::write(dirs.snap_dir.join("snapshot.a"), vec![0u8; 1000]).unwrap();
        let e = read_for_learner(&*fs, &dirs, 5, 30, 0.33).unwrap_err();
        assert!(e.contains("exceeds the limit of 330 bytes"), "{e}");
        // The newest file alone is not counted when the zxid is in it.
        assert!(read_for_learner(&*fs, &dirs, 25, 30, 0.33).is_ok());
        // A factor of 0 means no limit.
        assert!(read_for_learner(&*fs, &dirs, 5, 30, 0.0).is_ok());
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let (_d, dirs) = tmp();
        write_logs(&dirs, &(1..=30).collect::<Vec<_>>(), &[21]);
        let fs = StdFs::shared();
        let first = dirs.log_dir.join(layout::log_file_name(1));
        let mut bytes = std::fs::read(&first).unwrap();
        // Flip a byte inside the second record's entry: its checksum no longer matches.
        let at = 16 + 13 + entry(1).to_bytes().len() + 20;
        bytes[at] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        assert!(read_for_learner(&*fs, &dirs, 1, 30, 0.0).is_err());
    }
}

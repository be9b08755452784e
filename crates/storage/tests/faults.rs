//! Damage and failure: torn tails, flipped bytes in logs and snapshots, missing log files,
//! empty and odd directories, and injected write/fsync errors (latching).

mod common;

use common::*;
use corral_storage::fs::{FaultFs, FaultOp, FileSystem};
use corral_storage::layout::{self, DataDirs};
use corral_storage::log::{read_log_file, LogWriterOptions, TxnLogWriter, FILE_HEADER_BYTES};
use corral_storage::recovery::{plan_recovery, plan_recovery_loading, RecoveryOptions, Repair};
use corral_storage::snapshot;
use corral_storage::{SnapshotImage, StorageError};
use std::path::Path;
use std::sync::Arc;

fn no_prealloc() -> LogWriterOptions {
    LogWriterOptions {
        prealloc_bytes: 0,
        ..LogWriterOptions::default()
    }
}

/// Writes zxids 1..=n into `dir` (one file unless `roll_every`), synced.
fn write_log(dir: &Path, n: i64, roll_every: Option<i64>, o: LogWriterOptions) -> Vec<u64> {
    let mut w = TxnLogWriter::new(fs(), dir, None, o).unwrap();
    for z in 1..=n {
        w.append(&create(z, &format!("/n{z}"), b"payload", z as i32))
            .unwrap();
        if roll_every.is_some_and(|r| z % r == 0) {
            w.roll().unwrap();
        }
    }
    w.close().unwrap();
    let mut offsets = Vec::new();
    for f in layout::list_logs(&*fs(), dir).unwrap() {
        for r in read_log_file(&*fs(), &f.path).unwrap().0 {
            offsets.push(r.offset);
        }
    }
    offsets
}

fn plan(data: &Path, log: &Path) -> corral_storage::Result<corral_storage::RecoveryPlan> {
    plan_recovery(fs(), &DataDirs::new(data, log), RecoveryOptions::default())
}

fn zxids(p: &corral_storage::RecoveryPlan) -> Vec<i64> {
    p.entries(fs()).map(|r| r.unwrap().zxid()).collect()
}

#[test]
fn torn_last_record_is_cut_off() {
    let t = tempfile::tempdir().unwrap();
    let logs = t.path().join("version-2");
    let offsets = write_log(&logs, 10, None, no_prealloc());
    let path = logs.join("log.1");
    let last = offsets[9];
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(last + 20).unwrap();
    drop(f);
    let p = plan(t.path(), t.path()).unwrap();
    assert_eq!(p.repairs.len(), 1);
    assert!(
        matches!(&p.repairs[0], Repair::Truncated { file, offset, .. }
        if *file == path && *offset == last)
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), last);
    assert_eq!(zxids(&p), (1..=9).collect::<Vec<_>>());
    assert_eq!(p.last_zxid, 9);
    // A second recovery finds nothing to repair.
    assert!(plan(t.path(), t.path()).unwrap().repairs.is_empty());
}

#[test]
fn torn_record_inside_zero_filled_preallocation_is_cut_off() {
    let t = tempfile::tempdir().unwrap();
    let logs = t.path().join("version-2");
    let o = LogWriterOptions {
        prealloc_bytes: 1 << 20,
        ..LogWriterOptions::default()
    };
    let offsets = write_log(&logs, 5, None, o);
    let path = logs.join("log.1");
    // The last record's second half never reached the disk: zeros, as preallocated.
    let mut b = std::fs::read(&path).unwrap();
    let (start, end) = (offsets[4] as usize, offsets[4] as usize + 40);
    for x in &mut b[start + 20..end] {
        *x = 0;
    }
    std::fs::write(&path, &b).unwrap();
    let p = plan(t.path(), t.path()).unwrap();
    assert!(matches!(&p.repairs[..], [Repair::Truncated { offset, .. }] if *offset == offsets[4]));
    assert_eq!(zxids(&p), vec![1, 2, 3, 4]);
}

#[test]
fn flipped_byte_in_the_middle_of_a_log_is_corruption() {
    let (_t, data, log) = fixture_copy();
    // Second record of log.21 (zxid 0x22), needed after snapshot.1f.
    let path = log.join("version-2/log.21");
    let (recs, _) = read_log_file(&*fs(), &path).unwrap();
    flip_byte(&path, recs[1].offset + 30);
    let e = plan(&data, &log).unwrap_err();
    let StorageError::CorruptLog { file, offset, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((file.as_path(), *offset), (path.as_path(), recs[1].offset));
    let msg = e.to_string();
    assert!(
        msg.contains("log.21") && msg.contains(&format!("offset {}", recs[1].offset)),
        "{msg}"
    );
    assert!(e.is_corruption());
}

#[test]
fn flipped_byte_before_the_snapshot_zxid_still_fails_like_zookeeper() {
    // log.1c starts before snapshot.1f and must be read through to reach 0x20; a bad
    // checksum on the way is corruption (ZooKeeper stops with "CRC check failed" too).
    let (_t, data, log) = fixture_copy();
    let path = log.join("version-2/log.1c");
    flip_byte(&path, FILE_HEADER_BYTES + 40);
    let e = plan(&data, &log).unwrap_err();
    assert!(
        matches!(&e, StorageError::CorruptLog { offset: 16, .. }),
        "{e}"
    );
}

#[test]
fn flipped_byte_in_a_snapshot_falls_back_to_an_older_one() {
    let (_t, data, log) = fixture_copy();
    let snap = data.join("version-2/snapshot.1f");
    flip_byte(&snap, 600);
    let e = snapshot::verify_snapshot(&*fs(), &snap).unwrap_err();
    assert!(matches!(e, StorageError::CorruptSnapshot { .. }), "{e}");
    assert!(e.to_string().contains("snapshot.1f"));
    let p = plan(&data, &log).unwrap();
    assert_eq!(p.snapshot.as_ref().unwrap().zxid, Some(0x1a));
    assert_eq!(p.skipped_snapshots.len(), 1);
    assert_eq!(p.skipped_snapshots[0].zxid, 0x1f);
    assert_eq!(zxids(&p), (0x1b..=0x23).collect::<Vec<_>>());
    assert_eq!(p.last_zxid, 0x23);
}

#[test]
fn damaged_snapshot_without_logs_to_replace_it_is_an_error() {
    let (_t, data, log) = fixture_copy();
    let snap = data.join("version-2/snapshot.1f");
    flip_byte(&snap, 600);
    std::fs::remove_file(log.join("version-2/log.15")).unwrap();
    let e = plan(&data, &log).unwrap_err();
    let StorageError::SnapshotUnrecoverable {
        snapshot, cause, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(snapshot, &snap);
    assert!(matches!(**cause, StorageError::CorruptSnapshot { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("snapshot.1f") && msg.contains("offset"),
        "{msg}"
    );
}

#[test]
fn incomplete_snapshot_is_skipped() {
    let (_t, data, log) = fixture_copy();
    let snap = data.join("version-2/snapshot.1f");
    let len = std::fs::metadata(&snap).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&snap).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    assert!(!snapshot::has_valid_tail(&*fs(), &snap).unwrap());
    let p = plan(&data, &log).unwrap();
    assert_eq!(p.snapshot.as_ref().unwrap().zxid, Some(0x1a));
    assert_eq!(p.last_zxid, 0x23);
}

#[test]
fn missing_log_file_in_the_middle_is_a_gap() {
    let (_t, data, log) = fixture_copy();
    std::fs::remove_file(log.join("version-2/log.1c")).unwrap();
    let e = plan(&data, &log).unwrap_err();
    let StorageError::Gap {
        after,
        next,
        file,
        offset,
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!((after.0, next.0, *offset), (0x1f, 0x21, 16));
    assert!(file.ends_with("log.21"));
    let msg = e.to_string();
    assert!(
        msg.contains("0x1f") && msg.contains("0x21") && msg.contains("log.21"),
        "{msg}"
    );
}

#[test]
fn empty_and_missing_directories_are_a_fresh_start() {
    let t = tempfile::tempdir().unwrap();
    let p = plan(t.path(), t.path()).unwrap();
    assert!(p.is_fresh());
    assert_eq!(p.last_zxid, 0);
    assert_eq!(p.entries(fs()).count(), 0);
    let p = plan(&t.path().join("nope"), &t.path().join("nope2")).unwrap();
    assert!(p.is_fresh());
}

#[test]
fn logs_without_a_snapshot() {
    // From zxid 1 the logs hold the whole history: replayed onto the initial tree.
    let (_t, data, log) = fixture_copy();
    for s in layout::list_snapshots(&*fs(), &data.join("version-2")).unwrap() {
        std::fs::remove_file(s.path).unwrap();
    }
    let p = plan(&data, &log).unwrap();
    assert!(p.snapshot.is_none());
    assert_eq!(zxids(&p), (1..=0x23).collect::<Vec<_>>());
    // Without their beginning they are refused, as ZooKeeper refuses them...
    std::fs::remove_file(log.join("version-2/log.1")).unwrap();
    let e = plan(&data, &log).unwrap_err();
    assert!(
        matches!(e, StorageError::LogsWithoutSnapshot { first, .. } if first.0 == 9),
        "{e}"
    );
    // ...unless told to trust an empty snapshot.
    let o = RecoveryOptions {
        trust_empty_snapshot: true,
        ..RecoveryOptions::default()
    };
    let p = plan_recovery(fs(), &DataDirs::new(&data, &log), o).unwrap();
    assert_eq!(zxids(&p), (9..=0x23).collect::<Vec<_>>());
}

#[test]
fn empty_trailing_log_files_are_removed() {
    let (_t, data, log) = fixture_copy();
    let dir = log.join("version-2");
    // A roll whose first record never arrived: header only; and one never written at all.
    let mut h = std::fs::read(dir.join("log.21")).unwrap();
    h.truncate(16);
    std::fs::write(dir.join("log.24"), &h).unwrap();
    std::fs::write(dir.join("log.25"), b"").unwrap();
    let p = plan(&data, &log).unwrap();
    assert_eq!(p.repairs.len(), 2, "{:?}", p.repairs);
    assert!(!dir.join("log.24").exists() && !dir.join("log.25").exists());
    assert_eq!(p.last_zxid, 0x23);
    // The next writer can start log.24 now.
    let mut w = TxnLogWriter::new(fs(), &dir, Some(p.last_zxid), no_prealloc()).unwrap();
    w.append(&create(0x24, "/new", b"", 1)).unwrap();
    w.close().unwrap();
    assert_eq!(plan(&data, &log).unwrap().last_zxid, 0x24);
}

#[test]
fn torn_file_followed_by_a_file_with_entries_is_corruption() {
    let t = tempfile::tempdir().unwrap();
    let logs = t.path().join("version-2");
    let offsets = write_log(&logs, 9, Some(3), no_prealloc());
    // log.4 holds 4..=6; cut its last record in half.
    let path = logs.join("log.4");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(offsets[5] + 10).unwrap();
    drop(f);
    let e = plan(t.path(), t.path()).unwrap_err();
    let StorageError::CorruptLog {
        file,
        offset,
        reason,
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!((file.as_path(), *offset), (path.as_path(), offsets[5]));
    assert!(reason.contains("log.7"), "{reason}");
}

#[test]
fn failed_fsync_latches_the_writer_and_is_never_retried() {
    let t = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new(fs());
    let shared: Arc<dyn FileSystem> = Arc::new(ffs.clone());
    let mut w = TxnLogWriter::new(shared, t.path(), None, no_prealloc()).unwrap();
    w.append(&create(1, "/a", b"1", 1)).unwrap();
    w.sync().unwrap();
    ffs.fail_after(FaultOp::Sync, 0);
    w.append(&create(2, "/b", b"2", 2)).unwrap();
    let first = w.sync().unwrap_err();
    assert!(first.to_string().contains("fsync") && first.to_string().contains("injected"));
    let syncs = ffs.calls(FaultOp::Sync);
    ffs.heal(FaultOp::Sync);
    for r in [
        w.append(&create(3, "/c", b"3", 3)),
        w.sync(),
        w.roll(),
        w.append(&create(4, "/d", b"4", 4)),
    ] {
        assert_eq!(r.unwrap_err().to_string(), first.to_string());
    }
    assert_eq!(
        ffs.calls(FaultOp::Sync),
        syncs,
        "no fsync after the failed one"
    );
    assert!(w.failure().is_some());
    assert!(w.close().is_err());
}

#[test]
fn failed_write_latches_the_writer() {
    let t = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new(fs());
    let mut w = TxnLogWriter::new(Arc::new(ffs.clone()), t.path(), None, no_prealloc()).unwrap();
    w.append(&create(1, "/a", b"1", 1)).unwrap();
    w.sync().unwrap();
    w.append(&create(2, "/b", b"2", 2)).unwrap();
    ffs.fail_after(FaultOp::Write, 0);
    let first = w.sync().unwrap_err();
    assert!(first.to_string().starts_with("write "), "{first}");
    ffs.heal(FaultOp::Write);
    assert_eq!(w.sync().unwrap_err().to_string(), first.to_string());
    drop(w);
    // The failed write left half a record, as a crash would: recovery cuts it off.
    let dirs = DataDirs {
        snap_dir: t.path().to_path_buf(),
        log_dir: t.path().to_path_buf(),
    };
    let p = plan_recovery(fs(), &dirs, RecoveryOptions::default()).unwrap();
    assert!(
        matches!(&p.repairs[..], [Repair::Truncated { .. }]),
        "{:?}",
        p.repairs
    );
    assert_eq!(zxids(&p), vec![1]);
}

#[test]
fn failed_file_creation_latches_the_writer() {
    let t = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new(fs());
    ffs.fail_after(FaultOp::Create, 0);
    let mut w = TxnLogWriter::new(Arc::new(ffs.clone()), t.path(), None, no_prealloc()).unwrap();
    let first = w.append(&create(1, "/a", b"1", 1)).unwrap_err();
    ffs.heal(FaultOp::Create);
    assert_eq!(
        w.append(&create(2, "/b", b"2", 2)).unwrap_err().to_string(),
        first.to_string()
    );
}

#[test]
fn failed_directory_fsync_after_a_roll_latches() {
    let t = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new(fs());
    let mut w = TxnLogWriter::new(Arc::new(ffs.clone()), t.path(), None, no_prealloc()).unwrap();
    w.append(&create(1, "/a", b"1", 1)).unwrap();
    w.sync().unwrap();
    w.roll().unwrap();
    w.append(&create(2, "/b", b"2", 2)).unwrap();
    ffs.fail_after(FaultOp::SyncDir, 0);
    assert!(w
        .sync()
        .unwrap_err()
        .to_string()
        .contains("fsync directory"));
    assert!(w.append(&create(3, "/c", b"3", 3)).is_err());
}

#[test]
fn failed_snapshot_fsync_leaves_no_snapshot_behind() {
    let t = tempfile::tempdir().unwrap();
    let ffs = FaultFs::new(fs());
    ffs.fail_after(FaultOp::Sync, 0);
    let e = snapshot::write_snapshot(&ffs, t.path(), 5, &SnapshotImage::initial()).unwrap_err();
    assert!(e.to_string().contains("fsync"), "{e}");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    ffs.heal(FaultOp::Sync);
    ffs.fail_after(FaultOp::Rename, 0);
    assert!(snapshot::write_snapshot(&ffs, t.path(), 5, &SnapshotImage::initial()).is_err());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Every prefix and a spread of single-byte flips of a real log and snapshot.
    let t = tempfile::tempdir().unwrap();
    for (name, src) in [
        ("log.1", fixture().join("log/version-2/log.15")),
        ("snapshot.1", fixture().join("data/version-2/snapshot.1f")),
    ] {
        let bytes = std::fs::read(src).unwrap();
        let p = t.path().join(name);
        let mut cases: Vec<Vec<u8>> = (0..bytes.len())
            .step_by(7)
            .map(|n| bytes[..n].to_vec())
            .collect();
        for i in (0..bytes.len()).step_by(5) {
            let mut b = bytes.clone();
            b[i] = b[i].wrapping_add(0x81);
            cases.push(b);
        }
        for c in cases {
            std::fs::write(&p, &c).unwrap();
            let _ = read_log_file(&*fs(), &p);
            let _ = snapshot::verify_snapshot(&*fs(), &p);
            let _ = corral_storage::dump::dump_log(&*fs(), &p);
        }
    }
}

/// Loading while planning: a flipped byte the sink trips over before the read reaches the
/// seal that proves the damage is still damage, and an older snapshot is used, as when the
/// plan only verified the files.
#[test]
fn flipped_byte_a_loading_sink_rejects_still_falls_back_to_an_older_snapshot() {
    let (_t, data, log) = fixture_copy();
    let snap = data.join("version-2/snapshot.1f");
    // "/app" becomes "/!pp": its child "/app/container" then has no parent.
    flip_byte(&snap, 316 + 4 + 1);
    let (p, sink) = plan_recovery_loading(
        fs(),
        &DataDirs::new(&data, &log),
        RecoveryOptions::default(),
        // Like the tree builder, the image refuses a node whose parent it has not seen.
        SnapshotImage::default,
    )
    .unwrap();
    assert_eq!(p.snapshot.as_ref().unwrap().zxid, Some(0x1a));
    assert_eq!(p.skipped_snapshots.len(), 1);
    assert!(
        matches!(
            p.skipped_snapshots[0].reason,
            StorageError::CorruptSnapshot { .. }
        ),
        "{}",
        p.skipped_snapshots[0].reason
    );
    assert!(sink.unwrap().nodes.contains_key("/app/container"));
}

/// A sound snapshot that the sink refuses stops recovery: an older snapshot cannot make up
/// for a sink that rejects what was written.
#[test]
fn a_sink_refusing_a_sound_snapshot_stops_recovery() {
    let (_t, data, log) = fixture_copy();
    #[derive(Debug)]
    struct Refuse;
    impl snapshot::SnapshotSink for Refuse {
        fn session(&mut self, _: i64, _: i32) -> Result<(), corral_storage::error::BoxError> {
            Ok(())
        }
        fn acl(
            &mut self,
            _: i64,
            _: Vec<corral_proto::records::Acl>,
        ) -> Result<(), corral_storage::error::BoxError> {
            Ok(())
        }
        fn node(
            &mut self,
            _: snapshot::SnapshotNode,
        ) -> Result<(), corral_storage::error::BoxError> {
            Err("no".into())
        }
        fn digest(
            &mut self,
            _: snapshot::ZxidDigest,
        ) -> Result<(), corral_storage::error::BoxError> {
            Ok(())
        }
    }
    let e = plan_recovery_loading(
        fs(),
        &DataDirs::new(&data, &log),
        RecoveryOptions::default(),
        || Refuse,
    )
    .unwrap_err();
    assert!(matches!(e, StorageError::Sink { .. }), "{e}");
}

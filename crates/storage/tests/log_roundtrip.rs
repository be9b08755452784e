//! Txn log writer and reader: round trips of every txn kind, group commit, rolls,
//! preallocation, forceSync off and truncation.

mod common;

use common::*;
use corral_storage::layout;
use corral_storage::log::{
    read_log_file, truncate_log, LogEnd, LogIter, LogWriterOptions, TxnLogWriter, FILE_HEADER_BYTES,
};
use corral_storage::StorageError;

fn opts(prealloc: u64) -> LogWriterOptions {
    LogWriterOptions {
        prealloc_bytes: prealloc,
        ..LogWriterOptions::default()
    }
}

#[test]
fn every_txn_kind_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let mut w = TxnLogWriter::new(fs(), t.path(), None, opts(0)).unwrap();
    let entries: Vec<_> = (1..=27)
        .map(|z| entry_of_kind(z as u8, z, &vec![b'x'; z as usize * 3]))
        .collect();
    for e in &entries {
        w.append(e).unwrap();
    }
    w.sync().unwrap();
    let path = t.path().join("log.1");
    assert_eq!(w.current_file(), Some(path.as_path()));
    let (recs, end) = read_log_file(&*fs(), &path).unwrap();
    let got: Vec<_> = recs.into_iter().map(|r| r.entry).collect();
    assert_eq!(got, entries);
    assert_eq!(
        end,
        LogEnd::Clean {
            offset: std::fs::metadata(&path).unwrap().len()
        }
    );
    let header = std::fs::read(&path).unwrap();
    assert_eq!(&header[..16], b"ZKLG\0\0\0\x02\0\0\0\0\0\0\0\0");
}

#[test]
fn appends_reach_the_file_only_at_sync() {
    let t = tempfile::tempdir().unwrap();
    let mut w = TxnLogWriter::new(fs(), t.path(), None, opts(0)).unwrap();
    w.append(&create(1, "/a", b"1", 1)).unwrap();
    w.append(&create(2, "/b", b"2", 2)).unwrap();
    let path = t.path().join("log.1");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "buffered, not written"
    );
    w.sync().unwrap();
    assert_eq!(read_log_file(&*fs(), &path).unwrap().0.len(), 2);
    w.append(&create(3, "/c", b"3", 3)).unwrap();
    assert_eq!(read_log_file(&*fs(), &path).unwrap().0.len(), 2);
    w.close().unwrap();
    assert_eq!(read_log_file(&*fs(), &path).unwrap().0.len(), 3);
}

#[test]
fn rolls_start_files_named_after_their_first_zxid() {
    let t = tempfile::tempdir().unwrap();
    let mut w = TxnLogWriter::new(fs(), t.path(), None, opts(0)).unwrap();
    for z in 1..=10 {
        w.append(&create(z, &format!("/n{z}"), b"d", z as i32))
            .unwrap();
        if z == 4 || z == 7 {
            w.roll().unwrap();
        }
    }
    w.sync().unwrap();
    let logs = layout::list_logs(&*fs(), t.path()).unwrap();
    assert_eq!(
        logs.iter().map(|f| f.zxid).collect::<Vec<_>>(),
        vec![1, 5, 8]
    );
    let all: Vec<_> = LogIter::new(fs(), t.path(), 0, true)
        .unwrap()
        .map(|r| r.unwrap().zxid())
        .collect();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
    // Reading from a zxid picks the newest file starting at or before it, like ZooKeeper.
    let from6: Vec<_> = LogIter::new(fs(), t.path(), 5, true)
        .unwrap()
        .map(|r| r.unwrap().zxid())
        .collect();
    assert_eq!(from6, vec![6, 7, 8, 9, 10]);
    // A writer that continues after recovery starts a new file above the old ones.
    let mut w = TxnLogWriter::new(fs(), t.path(), Some(10), opts(0)).unwrap();
    assert!(matches!(
        w.append(&create(10, "/dup", b"", 1)),
        Err(StorageError::ZxidNotIncreasing { .. })
    ));
    w.append(&create(11, "/n11", b"", 1)).unwrap();
    w.sync().unwrap();
    assert!(t.path().join("log.b").exists());
}

#[test]
fn preallocation_grows_the_file_with_zeros() {
    let t = tempfile::tempdir().unwrap();
    let prealloc = 64 * 1024;
    let mut w = TxnLogWriter::new(fs(), t.path(), None, opts(prealloc)).unwrap();
    w.append(&create(1, "/a", b"x", 1)).unwrap();
    w.sync().unwrap();
    let path = t.path().join("log.1");
    // Like ZooKeeper's fresh 16 + 64 MiB file, scaled down.
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        FILE_HEADER_BYTES + prealloc
    );
    let big = vec![7u8; 10_000];
    for z in 2..=20 {
        w.append(&create(z, &format!("/n{z}"), &big, z as i32))
            .unwrap();
    }
    w.sync().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len >= 3 * prealloc, "{len}");
    let (recs, end) = read_log_file(&*fs(), &path).unwrap();
    assert_eq!(recs.len(), 20);
    let LogEnd::Clean { offset } = end else {
        panic!("{end:?}")
    };
    // Padding is decided before each record (as in ZooKeeper), so a large last record may
    // end past the previously known size; the next append grows the file again.
    assert!(offset <= len);
    assert!(std::fs::read(&path).unwrap()[offset as usize..]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn force_sync_off_still_writes() {
    let t = tempfile::tempdir().unwrap();
    let o = LogWriterOptions {
        force_sync: false,
        ..opts(0)
    };
    let mut w = TxnLogWriter::new(fs(), t.path(), None, o).unwrap();
    w.append(&create(1, "/a", b"x", 1)).unwrap();
    w.sync().unwrap();
    assert_eq!(
        read_log_file(&*fs(), &t.path().join("log.1"))
            .unwrap()
            .0
            .len(),
        1
    );
}

#[test]
fn oversized_entries_are_refused_without_latching() {
    let t = tempfile::tempdir().unwrap();
    let mut w = TxnLogWriter::new(fs(), t.path(), None, opts(0)).unwrap();
    let huge = vec![0u8; corral_storage::log::ENTRY_BYTES_MAX + 1];
    assert!(matches!(
        w.append(&create(1, "/big", &huge, 1)),
        Err(StorageError::EntryTooLarge { .. })
    ));
    w.append(&create(1, "/a", b"x", 1)).unwrap();
    w.sync().unwrap();
}

#[test]
fn truncate_keeps_entries_up_to_the_zxid() {
    let t = tempfile::tempdir().unwrap();
    let mut w = TxnLogWriter::new(fs(), t.path(), None, opts(4096)).unwrap();
    for z in 1..=12 {
        w.append(&create(z, &format!("/n{z}"), b"d", 1)).unwrap();
        if z % 4 == 0 {
            w.roll().unwrap();
        }
    }
    w.close().unwrap();
    let out = truncate_log(&*fs(), t.path(), 6).unwrap();
    assert_eq!(out.removed, vec![t.path().join("log.9")]);
    assert_eq!(out.truncated.as_ref().unwrap().0, t.path().join("log.5"));
    let all: Vec<_> = LogIter::new(fs(), t.path(), 0, true)
        .unwrap()
        .map(|r| r.unwrap().zxid())
        .collect();
    assert_eq!(all, (1..=6).collect::<Vec<_>>());
    // Down to the last entry of a file: the later files go, that file stays whole.
    truncate_log(&*fs(), t.path(), 4).unwrap();
    assert_eq!(layout::list_logs(&*fs(), t.path()).unwrap().len(), 1);
    // Below every file: refused.
    let t2 = tempfile::tempdir().unwrap();
    let mut w = TxnLogWriter::new(fs(), t2.path(), None, opts(0)).unwrap();
    w.append(&create(5, "/a", b"", 1)).unwrap();
    w.close().unwrap();
    assert!(matches!(
        truncate_log(&*fs(), t2.path(), 3),
        Err(StorageError::CannotTruncate { .. })
    ));
}

//! Snapshot round trips through `SnapshotImage`, epoch files, and retention.

mod common;

use bytes::Bytes;
use common::*;
use corral_proto::records::{perms, Acl, StatPersisted};
use corral_storage::epoch;
use corral_storage::image::{ImageNode, SnapshotImage};
use corral_storage::layout::{self, DataDirs};
use corral_storage::log::{LogWriterOptions, TxnLogWriter};
use corral_storage::retention::purge;
use corral_storage::snapshot::{self, ZxidDigest, OPEN_ACL_UNSAFE_ID};
use corral_storage::StorageError;

fn sample() -> SnapshotImage {
    let mut img = SnapshotImage::initial();
    img.sessions.insert(0x100_0000_0000_0001, 30_000);
    img.sessions.insert(0x100_0000_0000_0002, 4_000);
    img.acls
        .insert(2, vec![Acl::new(perms::ALL, "digest", "bob:x=")]);
    img.acls.insert(3, vec![]);
    let node = |data: Option<&[u8]>, acl_id, owner| ImageNode {
        data: data.map(Bytes::copy_from_slice),
        acl_id,
        stat: StatPersisted {
            czxid: 5,
            mzxid: 6,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_500,
            version: 1,
            cversion: 2,
            aversion: 3,
            ephemeral_owner: owner,
            pzxid: 7,
        },
    };
    img.nodes.insert("/a".into(), node(Some(b"x"), 2, 0));
    img.nodes
        .insert("/a/null".into(), node(None, OPEN_ACL_UNSAFE_ID, 0));
    img.nodes.insert("/a/empty".into(), node(Some(b""), 3, 0));
    img.nodes.insert(
        "/a-b".into(),
        node(Some(&[0xff; 300]), 2, 0x100_0000_0000_0001),
    );
    img.digest = Some(ZxidDigest {
        zxid: 7,
        version: 2,
        digest: img.tree_digest(),
    });
    img.check_invariants().unwrap();
    img
}

#[test]
fn image_round_trips_and_ends_with_the_seal() {
    let t = tempfile::tempdir().unwrap();
    let img = sample();
    let info = snapshot::write_snapshot(&*fs(), t.path(), 7, &img).unwrap();
    assert_eq!(info.path, t.path().join("snapshot.7"));
    assert_eq!((info.sessions, info.acls, info.nodes), (2, 3, 8));
    assert!(snapshot::has_valid_tail(&*fs(), &info.path).unwrap());
    let bytes = std::fs::read(&info.path).unwrap();
    assert_eq!(&bytes[..4], b"ZKSN");
    assert_eq!(&bytes[bytes.len() - 5..], &[0, 0, 0, 1, b'/']);
    let mut back = SnapshotImage::default();
    let r = snapshot::read_snapshot(&*fs(), &info.path, &mut back).unwrap();
    assert_eq!(back, img);
    assert_eq!(r.bytes, bytes.len() as u64);
    assert_eq!(back.nodes["/a/null"].data, None);
    assert_eq!(back.nodes["/a/empty"].data.as_deref(), Some(&b""[..]));
}

/// Every cut and every flipped byte of a snapshot is an error that names the file and an
/// offset inside it; the reader never panics and never accepts damaged bytes (Adler-32
/// catches every single-byte change the length checks do not).
#[test]
fn every_cut_and_every_flipped_byte_is_an_error_naming_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let info = snapshot::write_snapshot(&*fs(), t.path(), 7, &sample()).unwrap();
    let good = std::fs::read(&info.path).unwrap();
    let bad = t.path().join("snapshot.8");
    let check = |bytes: &[u8], what: &str| {
        std::fs::write(&bad, bytes).unwrap();
        let e =
            snapshot::read_snapshot(&*fs(), &bad, &mut SnapshotImage::default()).expect_err(what);
        match &e {
            StorageError::CorruptSnapshot { file, offset, .. } => {
                assert_eq!(file, &bad, "{what}: {e}");
                assert!(*offset <= bytes.len() as u64, "{what}: {e}");
            }
            StorageError::Sink { file, offset, .. } => {
                assert_eq!(file, &bad, "{what}: {e}");
                assert!(*offset <= bytes.len() as u64, "{what}: {e}");
            }
            other => panic!("{what}: unexpected error {other}"),
        }
    };
    // The one cut that leaves a complete file: right after the first seal, where a
    // snapshot from before ZooKeeper 3.6 (no digest part) ends.
    let pre_digest_len = good.len() - (8 + 4 + 8) - (8 + 5);
    for len in (0..good.len()).filter(|&l| l != pre_digest_len) {
        check(&good[..len], &format!("cut at {len}"));
    }
    std::fs::write(&bad, &good[..pre_digest_len]).unwrap();
    let old = snapshot::read_snapshot(&*fs(), &bad, &mut SnapshotImage::default()).unwrap();
    assert_eq!((old.nodes, old.digest), (8, None));
    for at in 0..good.len() {
        let mut b = good.clone();
        b[at] ^= 0x40;
        check(&b, &format!("byte {at} flipped"));
    }
}

#[test]
fn sink_rejects_orphans_and_unknown_acls() {
    let t = tempfile::tempdir().unwrap();
    let mut img = sample();
    img.nodes
        .insert("/orphan/child".into(), img.nodes["/a"].clone());
    assert!(img.check_invariants().is_err());
    let info = snapshot::write_snapshot(&*fs(), t.path(), 9, &img).unwrap();
    let e = snapshot::read_snapshot(&*fs(), &info.path, &mut SnapshotImage::default()).unwrap_err();
    assert!(matches!(e, StorageError::Sink { .. }), "{e}");
    assert!(e.to_string().contains("snapshot.9") && e.to_string().contains("offset"));
    let mut img = sample();
    img.nodes.get_mut("/a").unwrap().acl_id = 99;
    let info = snapshot::write_snapshot(&*fs(), t.path(), 10, &img).unwrap();
    assert!(snapshot::read_snapshot(&*fs(), &info.path, &mut SnapshotImage::default()).is_err());
}

#[test]
fn epoch_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    assert_eq!(epoch::read_current_epoch(&*fs(), d).unwrap(), None);
    epoch::write_accepted_epoch(&*fs(), d, 7).unwrap();
    epoch::write_current_epoch(&*fs(), d, 6).unwrap();
    assert_eq!(std::fs::read(d.join("acceptedEpoch")).unwrap(), b"7");
    assert_eq!(epoch::read_accepted_epoch(&*fs(), d).unwrap(), Some(7));
    assert_eq!(epoch::read_current_epoch(&*fs(), d).unwrap(), Some(6));
    assert!(!d.join("currentEpoch.tmp").exists());
    std::fs::write(d.join("currentEpoch"), b"12\n").unwrap();
    assert_eq!(epoch::read_current_epoch(&*fs(), d).unwrap(), Some(12));
    std::fs::write(d.join("currentEpoch"), b"x1").unwrap();
    let e = epoch::read_current_epoch(&*fs(), d).unwrap_err();
    assert!(
        matches!(e, StorageError::BadEpochFile { .. }) && e.to_string().contains("currentEpoch")
    );
}

#[test]
fn purge_keeps_n_snapshots_and_the_logs_they_need() {
    let t = tempfile::tempdir().unwrap();
    let dirs = DataDirs::new(t.path().join("data"), t.path().join("log"));
    dirs.create(&*fs()).unwrap();
    let o = LogWriterOptions {
        prealloc_bytes: 0,
        ..LogWriterOptions::default()
    };
    let mut w = TxnLogWriter::new(fs(), &dirs.log_dir, None, o).unwrap();
    // Logs start at 1, 11, 21, 31, 41; snapshots at 5, 15, 25, 35, 45.
    for z in 1..=50 {
        w.append(&create(z, &format!("/n{z}"), b"", 1)).unwrap();
        if z % 10 == 0 {
            w.roll().unwrap();
        }
        if z % 10 == 5 {
            snapshot::write_snapshot(&*fs(), &dirs.snap_dir, z, &SnapshotImage::initial()).unwrap();
        }
    }
    w.close().unwrap();
    std::fs::write(dirs.snap_dir.join("snapshot.3.tmp"), b"junk").unwrap();
    assert!(matches!(
        purge(&*fs(), &dirs, 2),
        Err(StorageError::InvalidSetting(_))
    ));
    let out = purge(&*fs(), &dirs, 3).unwrap();
    assert_eq!(out.least_zxid_kept, Some(25));
    let snaps: Vec<_> = layout::list_snapshots(&*fs(), &dirs.snap_dir)
        .unwrap()
        .iter()
        .map(|f| f.zxid)
        .collect();
    assert_eq!(snaps, vec![25, 35, 45]);
    // log.15 (hex 0x15 = 21) holds txns 21..30, needed to replay from snapshot 25.
    let logs: Vec<_> = layout::list_logs(&*fs(), &dirs.log_dir)
        .unwrap()
        .iter()
        .map(|f| f.zxid)
        .collect();
    assert_eq!(logs, vec![21, 31, 41]);
    assert!(!dirs.snap_dir.join("snapshot.3.tmp").exists());
    assert_eq!(out.removed.len(), 5);
    // Recovery still works from any kept snapshot.
    let plan = corral_storage::plan_recovery(fs(), &dirs, Default::default()).unwrap();
    assert_eq!(plan.last_zxid, 50);
}

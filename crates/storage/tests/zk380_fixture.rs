//! Golden tests against a data directory written by the real Apache ZooKeeper 3.8.0
//! (tests/fixtures/zk380, rebuilt by tests/fixtures/tools/generate.sh): every log record and
//! snapshot parses, their contents are what the generator did, the dumps match the text
//! ZooKeeper's own TxnLogToolkit and SnapshotFormatter printed for the same files, and a
//! snapshot written by corral is byte-identical to ZooKeeper's.

mod common;

use common::*;
use corral_proto::error::ErrorCode;
use corral_proto::records::{perms, Acl};
use corral_proto::txn::Txn;
use corral_storage::dump::{self, SnapshotDumpOptions};
use corral_storage::image::SnapshotImage;
use corral_storage::layout::{self, DataDirs};
use corral_storage::log::{read_log_file, LogEnd, LogIter};
use corral_storage::recovery::{plan_recovery, RecoveryOptions};
use corral_storage::snapshot::{self, ZxidDigest, OPEN_ACL_UNSAFE_ID};
use std::path::Path;

const SESSION: i64 = 0x1000010ceb60000;
const SESSION2: i64 = 0x1000010ceb60001;

fn log_path(name: &str) -> std::path::PathBuf {
    fixture().join("log/version-2").join(name)
}

fn snap_path(name: &str) -> std::path::PathBuf {
    fixture().join("data/version-2").join(name)
}

#[test]
fn every_log_record_parses_and_zxids_are_contiguous() {
    let fs = fs();
    let logs = layout::list_logs(&*fs, &fixture().join("log/version-2")).unwrap();
    let names: Vec<_> = logs.iter().map(|f| f.zxid).collect();
    assert_eq!(names, vec![0x1, 0x9, 0x10, 0x15, 0x1c, 0x21]);
    let mut expected = 1;
    for f in &logs {
        let (recs, end) = read_log_file(&*fs, &f.path).unwrap();
        // The fixture's preallocated zeros were cut off: the data ends at end of file.
        assert_eq!(
            end,
            LogEnd::Clean {
                offset: std::fs::metadata(&f.path).unwrap().len()
            }
        );
        assert_eq!(
            recs[0].zxid(),
            f.zxid,
            "{} is named after its first txn",
            f.path.display()
        );
        for r in recs {
            assert_eq!(r.zxid(), expected);
            expected += 1;
        }
    }
    assert_eq!(expected, 0x24);
    // Across files, as recovery reads them.
    let all: Vec<_> = LogIter::new(fs, &fixture().join("log/version-2"), 0, true)
        .unwrap()
        .map(|r| r.unwrap().zxid())
        .collect();
    assert_eq!(all, (1..0x24).collect::<Vec<_>>());
}

#[test]
fn log_contents_are_what_the_generator_did() {
    let fs = fs();
    let mut by_zxid = std::collections::BTreeMap::new();
    for r in LogIter::new(fs, &fixture().join("log/version-2"), 0, true).unwrap() {
        let r = r.unwrap();
        by_zxid.insert(r.zxid(), r.entry);
    }
    let e = |z: i64| &by_zxid[&z];
    assert_eq!(e(1).txn, Txn::CreateSession { timeout_ms: 30000 });
    assert_eq!(e(1).header.session_id, SESSION);
    let Txn::Create(c) = &e(3).txn else {
        panic!("{:?}", e(3))
    };
    assert_eq!(c.path, "/app/config");
    assert_eq!(c.acl[0].id.scheme, "digest");
    assert_eq!(c.acl[0].id.id, "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    assert_eq!(c.acl[0].perms, perms::ALL);
    let Txn::Create(c) = &e(8).txn else { panic!() };
    assert!(c.ephemeral);
    let Txn::CreateContainer(c) = &e(0xa).txn else {
        panic!()
    };
    assert_eq!((c.path.as_str(), c.data.clone()), ("/app/container", None));
    let Txn::CreateTtl(c) = &e(0xc).txn else {
        panic!()
    };
    assert_eq!(c.ttl, 3_600_000);
    let Txn::Create(c) = &e(0xe).txn else {
        panic!()
    };
    assert_eq!(c.data.as_deref(), Some(&[0u8, 1, 2, 0xff][..]));
    let Txn::Create(c) = &e(0xf).txn else {
        panic!()
    };
    assert_eq!(c.path, "/app/\u{fc}n\u{ef}");
    assert!(matches!(&e(0x15).txn, Txn::SetAcl { version: 1, .. }));
    // A failed create outside a multi is an error txn, logged without a digest.
    assert_eq!(e(0x17).txn, Txn::Error(ErrorCode::NodeExists));
    assert_eq!(e(0x17).digest, None);
    assert!(e(0x16).digest.is_some());
    // A failed multi keeps the sub-txns before the failure and turns the rest into errors.
    let Txn::Multi(parts) = &e(0x19).txn else {
        panic!()
    };
    assert!(matches!(parts[0], Txn::Create(_)));
    assert_eq!(parts[1], Txn::Error(ErrorCode::NoNode));
    let Txn::Multi(parts) = &e(0x18).txn else {
        panic!()
    };
    assert_eq!(parts.len(), 3);
    // A check logs the version it expected plus one (checkAndIncVersion).
    assert!(matches!(parts[2], Txn::Check { version: 3, .. }));
    assert_eq!(e(0x1a).header.session_id, SESSION2);
    assert_eq!(
        e(0x1c).txn,
        Txn::CloseSession {
            paths_to_delete: vec!["/app/eph2".into()]
        }
    );
    assert!(matches!(&e(0x23).txn, Txn::Delete { path } if path == "/app/empty"));
}

#[test]
fn every_snapshot_parses_with_checksums() {
    let fs = fs();
    for s in layout::list_snapshots(&*fs, &fixture().join("data/version-2")).unwrap() {
        assert!(snapshot::has_valid_tail(&*fs, &s.path).unwrap());
        let mut img = SnapshotImage::default();
        let info = snapshot::read_snapshot(&*fs, &s.path, &mut img).unwrap();
        img.check_invariants().unwrap();
        assert_eq!(info.zxid, Some(s.zxid));
        assert_eq!(info.bytes, std::fs::metadata(&s.path).unwrap().len());
        let d = info.digest.expect("3.8 writes the digest part");
        assert_eq!(d.version, 2);
        assert_eq!(
            d.zxid, s.zxid,
            "the digest is the one at the snapshot's zxid"
        );
        assert_eq!(info.last_processed_zxid, None);
    }
}

#[test]
fn snapshot_contents() {
    let fs = fs();
    let mut img = SnapshotImage::default();
    snapshot::read_snapshot(&*fs, &snap_path("snapshot.1f"), &mut img).unwrap();
    assert_eq!(img.sessions.len(), 1);
    assert_eq!(img.sessions[&SESSION], 30000);
    // ACL ids: 1 is /zookeeper/config's READ_ACL_UNSAFE, then in order of first use; the
    // implicit -1 (world:anyone ALL) is used only by the root and /zookeeper nodes.
    assert_eq!(img.acls[&1], vec![Acl::new(perms::READ, "world", "anyone")]);
    assert_eq!(img.acls[&2], Acl::open_unsafe());
    assert_eq!(img.acls[&3][0].id.scheme, "digest");
    assert_eq!(
        img.acls[&4],
        vec![Acl::new(perms::READ | perms::WRITE, "ip", "127.0.0.1")]
    );
    assert_eq!(img.nodes[""].acl_id, OPEN_ACL_UNSAFE_ID);
    assert_eq!(img.nodes["/zookeeper"].acl_id, OPEN_ACL_UNSAFE_ID);
    assert_eq!(img.nodes["/zookeeper/config"].acl_id, 1);
    assert_eq!(img.nodes["/zookeeper/config"].stat.aversion, -1);
    assert_eq!(img.nodes["/app"].acl_id, 2);
    assert_eq!(img.acl_of("/app/readonly").unwrap(), Acl::read_unsafe());
    // Null data (create with null) stays distinct from empty data (the root).
    assert_eq!(img.nodes["/app/container"].data, None);
    assert_eq!(img.nodes[""].data.as_deref(), Some(&b""[..]));
    assert_eq!(
        img.nodes["/app/bin"].data.as_deref(),
        Some(&[0u8, 1, 2, 0xff][..])
    );
    assert_eq!(img.nodes["/app/container"].stat.ephemeral_owner, i64::MIN);
    assert_eq!(
        img.nodes["/app/ttl"].stat.ephemeral_owner as u64,
        0xff00_0000_0000_0000 | 3_600_000
    );
    assert_eq!(img.nodes["/app/eph"].stat.ephemeral_owner, SESSION);
    assert_eq!(img.ephemeral_count(SESSION), 2);
    assert!(!img.nodes.contains_key("/app/eph2"));
    assert_eq!(img.nodes["/app"].stat.version, 2);
    assert_eq!(img.nodes["/app"].stat.cversion, 14);
    assert_eq!(img.nodes["/a/b/c"].data.as_deref(), Some(&b"deep2"[..]));
    assert_eq!(img.nodes.len(), 21);
}

#[test]
fn tree_digest_matches_zookeeper() {
    let fs = fs();
    // The server logged "digest is 1371985504" for its fresh tree.
    let mut img = SnapshotImage::default();
    snapshot::read_snapshot(&*fs, &snap_path("snapshot.0"), &mut img).unwrap();
    assert_eq!(img.tree_digest(), 1_371_985_504);
    assert_eq!(img.digest, Some(ZxidDigest::EMPTY));
    // snapshot.1f holds exactly the state at 0x1f (no fuzz), so its digest must match.
    let mut img = SnapshotImage::default();
    snapshot::read_snapshot(&*fs, &snap_path("snapshot.1f"), &mut img).unwrap();
    assert_eq!(img.digest.unwrap().digest, img.tree_digest());
}

#[test]
fn initial_image_is_byte_identical_to_zookeepers_snapshot_0() {
    let fs = fs();
    let t = tempfile::tempdir().unwrap();
    let info = snapshot::write_snapshot(&*fs, t.path(), 0, &SnapshotImage::initial()).unwrap();
    assert_eq!(info.path, t.path().join("snapshot.0"));
    assert_eq!(
        std::fs::read(&info.path).unwrap(),
        std::fs::read(snap_path("snapshot.0")).unwrap()
    );
    assert!(!t.path().join("snapshot.0.tmp").exists());
}

#[test]
fn rewritten_snapshots_read_back_equal() {
    let fs = fs();
    for s in layout::list_snapshots(&*fs, &fixture().join("data/version-2")).unwrap() {
        let mut img = SnapshotImage::default();
        snapshot::read_snapshot(&*fs, &s.path, &mut img).unwrap();
        let t = tempfile::tempdir().unwrap();
        let w = snapshot::write_snapshot(&*fs, t.path(), s.zxid, &img).unwrap();
        // Same contents, same length (only the order of hash-ordered items may differ).
        assert_eq!(w.bytes, std::fs::metadata(&s.path).unwrap().len());
        let mut back = SnapshotImage::default();
        snapshot::read_snapshot(&*fs, &w.path, &mut back).unwrap();
        assert_eq!(back, img);
    }
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture().join("expected").join(format!("{name}.txt"))).unwrap()
}

#[test]
fn log_dumps_match_txnlogtoolkit() {
    let fs = fs();
    for f in layout::list_logs(&*fs, &fixture().join("log/version-2")).unwrap() {
        let name = f.path.file_name().unwrap().to_str().unwrap().to_owned();
        let ours = dump::dump_log(&*fs, &f.path).unwrap();
        let theirs = expected(&name);
        let ours: Vec<&str> = ours.lines().collect();
        let theirs: Vec<&str> = theirs.lines().collect();
        assert_eq!(ours.len(), theirs.len(), "{name}:\n{}", ours.join("\n"));
        for (a, b) in ours.iter().zip(&theirs) {
            if b.contains(" multi ") {
                // ZooKeeper prints a multi's sub-records as raw bytes; ours are decoded.
                let cut = b.find(" multi ").unwrap();
                assert_eq!(a[..cut], b[..cut]);
                continue;
            }
            assert_eq!(a, b, "{name}");
        }
    }
    let multi = dump::dump_log(&*fs, &log_path("log.15")).unwrap();
    assert!(
        multi.contains("multi create:/app/multi2,m,[31,s{'world,'anyone}],false,14;error:-101\n"),
        "{multi}"
    );
}

#[test]
fn snapshot_dumps_match_snapshotformatter() {
    let fs = fs();
    for s in layout::list_snapshots(&*fs, &fixture().join("data/version-2")).unwrap() {
        let name = s.path.file_name().unwrap().to_str().unwrap().to_owned();
        let ours = dump::dump_snapshot(&*fs, &s.path, SnapshotDumpOptions::default()).unwrap();
        assert_eq!(ours, expected(&name), "{name}");
    }
    let with_data = dump::dump_snapshot(
        &*fs,
        &snap_path("snapshot.1f"),
        SnapshotDumpOptions { data: true },
    )
    .unwrap();
    assert!(with_data.contains("/app/bin\n"));
    assert!(with_data.contains("  data = AAEC/w==\n"));
}

#[test]
fn recovery_chooses_the_newest_snapshot_and_the_logs_after_it() {
    let (_t, data, log) = fixture_copy();
    let dirs = DataDirs::new(&data, &log);
    let plan = plan_recovery(fs(), &dirs, RecoveryOptions::default()).unwrap();
    let snap = plan.snapshot.as_ref().unwrap();
    assert_eq!(snap.zxid, Some(0x1f));
    assert_eq!(plan.replay_after, 0x1f);
    let names: Vec<_> = plan.log_files.iter().map(|f| f.zxid).collect();
    assert_eq!(names, vec![0x1c, 0x21]);
    assert_eq!(plan.entry_count, 4);
    assert_eq!(plan.last_zxid, 0x23);
    assert!(plan.repairs.is_empty());
    assert!(plan.skipped_snapshots.is_empty());
    let zs: Vec<_> = plan.entries(fs()).map(|r| r.unwrap().zxid()).collect();
    assert_eq!(zs, vec![0x20, 0x21, 0x22, 0x23]);
    let mut img = SnapshotImage::default();
    plan.load_snapshot(&*fs(), &mut img).unwrap().unwrap();
    assert_eq!(img.nodes.len(), 21);
    let report = dump::verify_dir(fs(), &dirs).unwrap();
    assert!(report.ok, "{}", report.text);
    assert!(
        report
            .text
            .contains("snapshot.1f: OK (21 nodes, 1 sessions, 5 ACLs"),
        "{}",
        report.text
    );
    assert!(report.text.contains("reach zxid 0x23"), "{}", report.text);
}

#[test]
fn dump_of_fixture_paths_exist() {
    assert!(Path::new(&fixture()).join("expected/log.1.txt").exists());
}

//! The operator tools (`corral log dump`, `corral snapshot dump|verify`, `corral purge`)
//! run as a user runs them: the built binary on the data directory ZooKeeper 3.8.0 wrote
//! (crates/storage/tests/fixtures/zk380) and on damaged copies of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../storage/tests/fixtures/zk380")
}

fn corral(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env_remove("CORRAL_LOG")
        .output()
        .expect("run corral")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A scratch copy of the fixture: (guard, dataDir, dataLogDir).
fn copy() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    for sub in ["data/version-2", "log/version-2"] {
        let to = t.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(fixture().join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let (d, l) = (t.path().join("data"), t.path().join("log"));
    (t, d, l)
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn log_dump_prints_what_txnlogtoolkit_prints() {
    let o = corral(&["log", "dump", s(&fixture().join("log/version-2/log.1"))]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let expected = std::fs::read_to_string(fixture().join("expected/log.1.txt")).unwrap();
    assert_eq!(out, expected);
    // A multi is printed decoded, one line.
    let o = corral(&["log", "dump", s(&fixture().join("log/version-2/log.15"))]);
    assert!(o.status.success());
    assert!(text(&o)
        .0
        .contains("multi create:/app/multi2,m,[31,s{'world,'anyone}],false,14;error:-101\n"));
}

#[test]
fn snapshot_dump_prints_what_snapshotformatter_prints() {
    for name in ["snapshot.0", "snapshot.1f"] {
        let o = corral(&[
            "snapshot",
            "dump",
            s(&fixture().join("data/version-2").join(name)),
        ]);
        assert!(o.status.success(), "{}", text(&o).1);
        let expected =
            std::fs::read_to_string(fixture().join(format!("expected/{name}.txt"))).unwrap();
        assert_eq!(text(&o).0, expected, "{name}");
    }
    let o = corral(&[
        "snapshot",
        "dump",
        "--data",
        s(&fixture().join("data/version-2/snapshot.1f")),
    ]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("/app/bin\n"));
    assert!(text(&o).0.contains("  data = AAEC/w==\n"));
}

#[test]
fn verify_reports_every_file_of_an_intact_directory() {
    let f = fixture();
    let o = corral(&["snapshot", "verify", s(&f.join("data")), s(&f.join("log"))]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    for z in ["0", "7", "e", "13", "1a", "1f"] {
        assert!(out.contains(&format!("snapshot.{z}: OK (")), "{out}");
    }
    assert!(out.contains("snapshot.1f: OK (21 nodes, 1 sessions, 5 ACLs, 2147 bytes, digest at 0x1f matches the tree)"), "{out}");
    for z in ["1", "9", "10", "15", "1c", "21"] {
        assert!(out.contains(&format!("log.{z}: OK (")), "{out}");
    }
    assert!(out.contains("log.1: OK (8 txns, zxids 0x1..0x8)"), "{out}");
    assert!(
        out.contains("recovery: load snapshot.1f, replay 4 txns from 2 log files, reach zxid 0x23"),
        "{out}"
    );
    assert!(
        out.contains("the tree digest matches at every txn"),
        "{out}"
    );
    assert!(
        out.ends_with("OK: every snapshot and txn log is intact\n"),
        "{out}"
    );
    // The version-2 directories themselves work too.
    let o = corral(&[
        "snapshot",
        "verify",
        s(&f.join("data/version-2")),
        s(&f.join("log/version-2")),
    ]);
    assert!(o.status.success());
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_reported_with_file_and_offset() {
    let (_t, data, log) = copy();
    let snap = data.join("version-2/snapshot.13");
    flip(&snap, 700);
    let o = corral(&["snapshot", "verify", s(&data), s(&log)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("snapshot.13: DAMAGED"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(s(&snap)) && line.contains("at offset "),
        "{line}"
    );
    // The others are still fine, and recovery still uses snapshot.1f.
    assert!(out.contains("snapshot.1f: OK"), "{out}");
    assert!(out.contains("DAMAGED: 1 problems found"), "{out}");
    assert!(err.contains("damaged"), "{err}");
    // Dumping it fails the same way.
    let o = corral(&["snapshot", "dump", s(&snap)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains(s(&snap)) && err.contains("at offset "),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_a_log_record_is_reported_with_file_and_offset() {
    let (_t, data, log) = copy();
    let file = log.join("version-2/log.9");
    // Inside the second record, with valid records after it: corruption, not a torn tail.
    flip(&file, 200);
    let o = corral(&["log", "dump", s(&file)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("Corrupt record at offset "), "{out}");
    assert!(out.ends_with(" txns.\n"), "{out}");
    assert!(
        err.contains(s(&file)) && err.contains("at offset "),
        "{err}"
    );
    let o = corral(&["snapshot", "verify", s(&data), s(&log)]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("log.9: DAMAGED"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(s(&file)) && line.contains("at offset "),
        "{line}"
    );
}

#[test]
fn a_torn_tail_and_a_broken_replay_are_damage_too() {
    let (_t, data, log) = copy();
    // The last record of the newest log: nothing valid follows, so it is a torn tail.
    let file = log.join("version-2/log.21");
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    flip(&file, len - 10);
    let o = corral(&["log", "dump", s(&file)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("Torn record at offset "), "{out}");
    assert!(
        err.contains("torn record in") && err.contains(s(&file)),
        "{err}"
    );
    let o = corral(&["snapshot", "verify", s(&data), s(&log)]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("log.21: TORN: 2 txns"), "{out}");
    // A missing log file in the middle: recovery cannot replay across the gap.
    let (_t2, data, log) = copy();
    std::fs::remove_file(log.join("version-2/log.1c")).unwrap();
    let o = corral(&["snapshot", "verify", s(&data), s(&log)]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("recovery: FAILED: missing txns"), "{out}");
}

#[test]
fn purge_keeps_the_newest_snapshots_and_the_logs_they_need() {
    let (_t, data, log) = copy();
    let o = corral(&["purge", s(&data), s(&log), "-n", "3"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(
        names(&data.join("version-2")),
        vec!["snapshot.13", "snapshot.1a", "snapshot.1f"]
    );
    // log.10 starts before 0x13 and holds the txns after it.
    assert_eq!(
        names(&log.join("version-2")),
        vec!["log.10", "log.15", "log.1c", "log.21"]
    );
    assert_eq!(out.matches("Removing file: ").count(), 5, "{out}");
    assert!(
        out.contains("Kept 3 snapshots (the oldest is 0x13)"),
        "{out}"
    );
    // What is left still verifies.
    let o = corral(&["snapshot", "verify", s(&data), s(&log)]);
    assert!(o.status.success(), "{}", text(&o).0);
    // Fewer than 3 is refused, as by PurgeTxnLog.
    let o = corral(&["purge", s(&data), s(&log), "-n", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("at least 3"), "{}", text(&o).1);
    // One directory for both.
    let t = tempfile::tempdir().unwrap();
    let both = t.path().join("version-2");
    std::fs::create_dir_all(&both).unwrap();
    for sub in ["data/version-2", "log/version-2"] {
        for e in std::fs::read_dir(fixture().join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), both.join(e.file_name())).unwrap();
        }
    }
    let o = corral(&["purge", s(t.path()), "-n", "4"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(
        names(&both),
        vec![
            "log.10",
            "log.15",
            "log.1c",
            "log.21",
            "log.9",
            "snapshot.13",
            "snapshot.1a",
            "snapshot.1f",
            "snapshot.e"
        ]
    );
}

#[test]
fn bad_arguments_are_trouble_not_damage() {
    let o = corral(&["snapshot", "dump", "/nonexistent/snapshot.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("/nonexistent/snapshot.5"));
    let o = corral(&["snapshot", "verify", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no version-2"), "{}", text(&o).1);
    let o = corral(&["purge", "/nonexistent", "-n", "3"]);
    assert_eq!(o.status.code(), Some(2));
    let o = corral(&["purge", s(&fixture().join("data"))]);
    assert_eq!(o.status.code(), Some(2), "-n is required");
    let o = corral(&["log"]);
    assert_eq!(o.status.code(), Some(2));
}

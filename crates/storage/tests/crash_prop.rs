//! Property: whatever a crash leaves of the unsynced part of the logs (cut short, zeroed
//! as in preallocated space, or garbage), recovery returns exactly a prefix of what was
//! appended: never anything after a torn record, never less than what was synced.

mod common;

use common::*;
use corral_proto::txn::TxnEntry;
use corral_storage::layout::{self, DataDirs};
use corral_storage::log::{read_log_file, LogWriterOptions, TxnLogWriter};
use corral_storage::recovery::{plan_recovery, RecoveryOptions};
use proptest::prelude::*;
use std::path::Path;

#[derive(Debug, Clone)]
struct Op {
    payload: usize,
    kind: u8,
    sync_after: bool,
    roll_after: bool,
}

#[derive(Debug, Clone, Copy)]
enum Tear {
    /// The file ends at the cut.
    Truncate,
    /// Zeros from the cut (preallocated space that was never written).
    Zeros,
    /// Junk from the cut to the end of the written data.
    Garbage(u8),
}

fn op() -> impl Strategy<Value = Op> {
    (
        0usize..300,
        any::<u8>(),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(payload, kind, sync_after, roll_after)| Op {
            payload,
            kind,
            sync_after,
            roll_after,
        })
}

fn tear() -> impl Strategy<Value = Tear> {
    prop_oneof![
        Just(Tear::Truncate),
        Just(Tear::Zeros),
        any::<u8>().prop_map(Tear::Garbage)
    ]
}

fn recovered(dir: &Path) -> Vec<TxnEntry> {
    let dirs = DataDirs {
        snap_dir: dir.join("snap"),
        log_dir: dir.join("log"),
    };
    let plan = plan_recovery(fs(), &dirs, RecoveryOptions::default())
        .unwrap_or_else(|e| panic!("recovery failed: {e}"));
    plan.entries(fs()).map(|r| r.unwrap().entry).collect()
}

fn run(ops: Vec<Op>, prealloc: bool, cut_frac: f64, tear: Tear) {
    let t = tempfile::tempdir().unwrap();
    let log_dir = t.path().join("log");
    let o = LogWriterOptions {
        prealloc_bytes: if prealloc { 4096 } else { 0 },
        ..LogWriterOptions::default()
    };
    let mut w = TxnLogWriter::new(fs(), &log_dir, None, o).unwrap();
    let mut written = Vec::new();
    let mut synced = 0usize;
    for (i, op) in ops.iter().enumerate() {
        let zxid = i as i64 + 1;
        let e = entry_of_kind(op.kind, zxid, &vec![op.kind; op.payload]);
        w.append(&e).unwrap();
        written.push(e);
        if op.sync_after {
            w.sync().unwrap();
            synced = written.len();
        }
        if op.roll_after {
            w.roll().unwrap();
        }
    }
    // Write everything out, then undo part of what was never synced.
    w.close().unwrap();
    let files = layout::list_logs(&*fs(), &log_dir).unwrap();
    let mut segments = Vec::new(); // (path, unsynced start, data end)
    let mut index = 0usize;
    for f in &files {
        let (recs, end) = read_log_file(&*fs(), &f.path).unwrap();
        let first = index;
        index += recs.len();
        let data_end = end.offset();
        if index <= synced {
            continue;
        }
        let start = if first >= synced {
            0 // created after the last sync: not even its header is durable
        } else {
            recs[synced - first].offset
        };
        segments.push((f.path.clone(), start, data_end));
    }
    let total: u64 = segments.iter().map(|(_, s, e)| e - s).sum();
    let mut cut = (total as f64 * cut_frac) as u64;
    let mut hit = false;
    for (path, start, end) in &segments {
        let len = end - start;
        if hit {
            std::fs::write(path, b"").unwrap(); // created, nothing written yet
            continue;
        }
        if cut >= len && cut != 0 || len == 0 {
            cut -= len.min(cut);
            continue;
        }
        hit = true;
        let at = start + cut;
        let mut b = std::fs::read(path).unwrap();
        match tear {
            Tear::Truncate => b.truncate(at as usize),
            Tear::Zeros => b[at as usize..].iter_mut().for_each(|x| *x = 0),
            Tear::Garbage(seed) => {
                let from = at.max(16) as usize;
                let mut x = seed as u32 | 1;
                for byte in &mut b[from..*end as usize] {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *byte = x as u8;
                }
            }
        }
        std::fs::write(path, &b).unwrap();
    }
    let got = recovered(t.path());
    eprintln!(
        "STAT synced={synced} got={} written={} segs={}",
        got.len(),
        written.len(),
        segments.len()
    );
    assert!(
        got.len() >= synced,
        "lost synced entries: {} < {synced}",
        got.len()
    );
    assert!(got.len() <= written.len());
    assert_eq!(
        got[..],
        written[..got.len()],
        "not a prefix of what was written"
    );
    // Recovery repaired the tail: again gives the same, and appending continues cleanly.
    assert_eq!(recovered(t.path()), got);
    let next = got.len() as i64 + 1;
    let mut w = TxnLogWriter::new(fs(), &log_dir, Some(next - 1), o).unwrap();
    let extra = create(next, "/after-crash", b"x", 1);
    w.append(&extra).unwrap();
    w.close().unwrap();
    let again = recovered(t.path());
    assert_eq!(again.len(), got.len() + 1);
    assert_eq!(again.last(), Some(&extra));
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises it for a longer hunt.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn recovery_returns_a_prefix_of_the_appended_entries(
        ops in prop::collection::vec(op(), 1..40),
        prealloc in any::<bool>(),
        cut_frac in 0.0f64..1.0,
        tear in tear(),
    ) {
        run(ops, prealloc, cut_frac, tear);
    }
}

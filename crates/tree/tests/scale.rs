//! Scale check (ignored by default; run with
//! `cargo test --release -p corral-tree --test scale -- --ignored --nocapture`):
//! one million znodes through prep + apply, reporting time and resident memory.

use corral_proto::request::CreateRequest;
use corral_proto::{Acl, Id, Request, TxnHeader};
use corral_tree::{Caller, DataTree, TreeConfig};
use std::time::Instant;

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
#[ignore]
fn a_million_znodes() {
    const PARENTS: usize = 1000;
    const PER_PARENT: usize = 1000;
    let before = rss();
    let mut t = DataTree::new(TreeConfig::default());
    let auth = [Id::new("ip", "127.0.0.1")];
    let caller = Caller {
        session_id: 1,
        auth: &auth,
    };
    let mut zxid = 0;
    let start = Instant::now();
    let mut create = |t: &mut DataTree, path: String| {
        let req = Request::Create(CreateRequest {
            path,
            data: Some(bytes::Bytes::from_static(b"0123456789")),
            acl: Some(Acl::open_unsafe()),
            flags: 0,
            ttl: None,
        });
        let txn = t.prep(&caller, &req, 0);
        zxid += 1;
        let hdr = TxnHeader {
            session_id: 1,
            cxid: 0,
            zxid,
            time_ms: zxid,
            op: txn.op().code(),
        };
        assert!(t.apply(&hdr, &txn).result.is_ok());
    };
    for p in 0..PARENTS {
        create(&mut t, format!("/app-{p:04}"));
        for c in 0..PER_PARENT {
            create(&mut t, format!("/app-{p:04}/node-{c:06}"));
        }
    }
    let elapsed = start.elapsed();
    let n = PARENTS * (PER_PARENT + 1);
    let used = rss().saturating_sub(before);
    eprintln!(
        "{n} creates in {elapsed:?} ({:.0} ns/create), rss +{} MiB ({} B/znode incl. 10 B data)",
        elapsed.as_nanos() as f64 / n as f64,
        used >> 20,
        used / n as u64
    );
    let start = Instant::now();
    for p in (0..PARENTS).step_by(7) {
        let req = Request::GetData(corral_proto::request::PathWatch {
            path: format!("/app-{p:04}/node-{:06}", p % PER_PARENT),
            watch: false,
        });
        assert!(t.read(&caller, &req).is_ok());
    }
    eprintln!(
        "reads: {:?} per getData",
        start.elapsed() / (PARENTS as u32 / 7)
    );
    let start = Instant::now();
    let snapshot = t.clone();
    eprintln!("clone (copy-on-write view): {:?}", start.elapsed());
    assert_eq!(snapshot.node_count(), t.node_count());
    let start = Instant::now();
    t.check_invariants();
    eprintln!("check_invariants: {:?}", start.elapsed());
}

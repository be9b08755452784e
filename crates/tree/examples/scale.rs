//! Scale measurement (a benchmark, not a test):
//! `cargo run --release -p corral-tree --example scale`. One million znodes through
//! prep + apply, then a snapshot written and loaded back in a fresh process, reporting
//! times and resident memory.

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

/// Builds `parents` znodes `/app-NNNN` with `per_parent` children each through prep +
/// apply, 10 bytes of data each, txn times `time_base_ms + zxid`. Returns the tree and its
/// last zxid.
fn build_tree(parents: usize, per_parent: usize, time_base_ms: i64) -> (DataTree, i64) {
    let mut t = DataTree::new(TreeConfig::default());
    let auth = [Id::new("ip", "127.0.0.1")];
    let caller = Caller {
        session_id: 1,
        auth: &auth,
    };
    let mut zxid = 0;
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
            time_ms: time_base_ms + zxid,
            op: txn.op().code(),
        };
        assert!(t.apply(&hdr, &txn).result.is_ok());
    };
    for p in 0..parents {
        create(&mut t, format!("/app-{p:04}"));
        for c in 0..per_parent {
            create(&mut t, format!("/app-{p:04}/node-{c:06}"));
        }
    }
    (t, zxid)
}

fn a_million_znodes() {
    const PARENTS: usize = 1000;
    const PER_PARENT: usize = 1000;
    let before = rss();
    let start = Instant::now();
    let (mut t, _) = build_tree(PARENTS, PER_PARENT, 0);
    let elapsed = start.elapsed();
    let n = PARENTS * (PER_PARENT + 1);
    let used = rss().saturating_sub(before);
    eprintln!(
        "{n} creates in {elapsed:?} ({:.0} ns/create), rss +{} MiB ({} B/znode incl. 10 B data)",
        elapsed.as_nanos() as f64 / n as f64,
        used >> 20,
        used / n as u64
    );
    let auth = [Id::new("ip", "127.0.0.1")];
    let caller = Caller {
        session_id: 1,
        auth: &auth,
    };
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

/// `VmHWM` (peak resident set) in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resets `VmHWM` to the current RSS (Linux >= 4.0), so each phase reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One million znodes: build (prep + apply), write the snapshot, load it back in a child
/// process.
fn a_million_znodes_snapshot_round_trip() {
    use corral_storage::fs::StdFs;
    use corral_storage::snapshot::write_snapshot;
    const PARENTS: usize = 1000;
    const PER_PARENT: usize = 999;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let base = rss();
    reset_peak_rss();
    let start = Instant::now();
    let (t, last_zxid) = build_tree(PARENTS, PER_PARENT, 1_700_000_000_000);
    let nodes = t.node_count() - 1;
    eprintln!(
        "build: {nodes} znodes in {:?}, rss {:.0} MiB (+{:.0}), peak {:.0} MiB",
        start.elapsed(),
        mib(rss()),
        mib(rss().saturating_sub(base)),
        mib(peak_rss())
    );
    let digest = t.digest();
    let dir = tempfile::tempdir().unwrap();
    reset_peak_rss();
    let before = rss();
    let start = Instant::now();
    let view = t.snapshot_source(last_zxid);
    let view_time = start.elapsed();
    let info = write_snapshot(&StdFs, dir.path(), last_zxid, &view).unwrap();
    eprintln!(
        "write: {} bytes in {:?} (view {view_time:?}), peak {:.0} MiB (+{:.0} over the tree)",
        info.bytes,
        start.elapsed(),
        mib(peak_rss()),
        mib(peak_rss().saturating_sub(before))
    );
    drop(view);
    drop(t);
    // Load in a fresh process, so its memory figures are its own (this one's allocator
    // keeps the freed tree).
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(SNAPSHOT_ENV, &info.path)
        .env("CORRAL_SCALE_DIGEST", digest.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    eprint!(
        "{}",
        text.lines()
            .filter(|l| l.starts_with("load") || l.starts_with("check"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("load: "), "{text}");
}

const SNAPSHOT_ENV: &str = "CORRAL_SCALE_SNAPSHOT";

/// The load half of the round trip, run by it in a child process: loads the snapshot
/// named by `SNAPSHOT_ENV` and checks its digest.
fn load_snapshot_in_child(path: std::ffi::OsString) {
    use corral_storage::fs::StdFs;
    use corral_storage::snapshot::read_snapshot;
    use corral_tree::snapshot::TreeBuilder;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let before = rss();
    reset_peak_rss();
    let start = Instant::now();
    let mut b = TreeBuilder::new(TreeConfig::default());
    read_snapshot(&StdFs, std::path::Path::new(&path), &mut b).unwrap();
    let loaded = b.finish().unwrap();
    eprintln!(
        "load: {} znodes in {:?}, rss {:.0} MiB (process before: {:.0} MiB), peak {:.0} MiB",
        loaded.node_count() - 1,
        start.elapsed(),
        mib(rss()),
        mib(before),
        mib(peak_rss())
    );
    let digest: i64 = std::env::var("CORRAL_SCALE_DIGEST")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(loaded.digest(), digest);
    let start = Instant::now();
    loaded.check_invariants();
    eprintln!("check_invariants: {:?}", start.elapsed());
}

fn main() {
    if let Some(path) = std::env::var_os(SNAPSHOT_ENV) {
        load_snapshot_in_child(path);
        return;
    }
    a_million_znodes();
    a_million_znodes_snapshot_round_trip();
}

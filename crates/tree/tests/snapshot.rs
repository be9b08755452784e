//! The tree on disk: `DataTree::snapshot_source` and `TreeBuilder` against the files the
//! real ZooKeeper 3.8.0 wrote (crates/storage/tests/fixtures/zk380), and log replay after a
//! snapshot taken while writes went on (consistent clones, and ZooKeeper-style fuzzy
//! snapshots whose nodes come from different moments).

mod common;

use bytes::Bytes;
use common::{create_req, delete, set_acl, set_data};
use corral_proto::records::{Acl, Id, StatPersisted};
use corral_proto::{Request, Txn, TxnDigest, TxnEntry, TxnHeader};
use corral_storage::dump::{self, SnapshotDumpOptions};
use corral_storage::error::StorageError;
use corral_storage::fs::{FileSystem, StdFs};
use corral_storage::image::SnapshotImage;
use corral_storage::layout;
use corral_storage::log::LogIter;
use corral_storage::snapshot::{
    self, NodeRecord, SnapshotNode, SnapshotSink, SnapshotSource, ZxidDigest,
};
use corral_tree::snapshot::TreeBuilder;
use corral_tree::{Caller, DataTree, TreeConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SNAPSHOT_ZXIDS: [i64; 6] = [0, 0x7, 0xe, 0x13, 0x1a, 0x1f];
const LAST_ZXID: i64 = 0x23;

fn fs() -> Arc<dyn FileSystem> {
    StdFs::shared()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../storage/tests/fixtures/zk380")
}

fn zk_snapshot(zxid: i64) -> PathBuf {
    fixture()
        .join("data/version-2")
        .join(layout::snapshot_file_name(zxid))
}

/// The fixture server ran with extendedTypesEnabled=true.
fn ext() -> TreeConfig {
    TreeConfig {
        extended_types_enabled: true,
        ..TreeConfig::default()
    }
}

fn zk_log() -> Vec<TxnEntry> {
    LogIter::new(fs(), &fixture().join("log/version-2"), 0, true)
        .unwrap()
        .map(|r| r.unwrap().entry)
        .collect()
}

fn read_image(path: &Path) -> SnapshotImage {
    let mut img = SnapshotImage::default();
    snapshot::read_snapshot(&*fs(), path, &mut img).unwrap();
    img
}

fn load(path: &Path, cfg: TreeConfig) -> DataTree {
    let mut b = TreeBuilder::new(cfg);
    snapshot::read_snapshot(&*fs(), path, &mut b).unwrap();
    let t = b.finish().unwrap();
    t.check_invariants();
    t
}

/// Pours a source into a sink in memory, as writing and reading a file would.
fn pump(src: &dyn SnapshotSource, sink: &mut dyn SnapshotSink) -> Result<(), String> {
    let e = |e: corral_storage::error::BoxError| StorageError::Source(e.to_string());
    src.visit_sessions(&mut |id, t| sink.session(id, t).map_err(e))
        .map_err(|e| e.to_string())?;
    src.visit_acls(&mut |id, l| sink.acl(id, l.to_vec()).map_err(e))
        .map_err(|e| e.to_string())?;
    src.visit_nodes(&mut |n: NodeRecord<'_>| {
        sink.node(SnapshotNode {
            path: n.path.to_string(),
            data: n.data.map(Bytes::copy_from_slice),
            acl_id: n.acl_id,
            stat: n.stat,
        })
        .map_err(e)
    })
    .map_err(|e| e.to_string())?;
    sink.digest(src.digest()).map_err(|e| e.to_string())
}

fn image(t: &DataTree, zxid: i64) -> SnapshotImage {
    let mut img = SnapshotImage::default();
    pump(&t.snapshot_source(zxid), &mut img).unwrap();
    img.check_invariants().unwrap();
    img
}

type Resolved = (
    BTreeMap<i64, i32>,
    BTreeMap<String, (Option<Bytes>, StatPersisted, Vec<Acl>)>,
);

/// A snapshot with every ACL id replaced by its list (ids are replica-local).
fn resolved(img: &SnapshotImage) -> Resolved {
    let nodes = img
        .nodes
        .iter()
        .map(|(p, n)| {
            (
                p.clone(),
                (n.data.clone(), n.stat, img.acl_of(p).expect("ACL resolves")),
            )
        })
        .collect();
    (img.sessions.clone(), nodes)
}

/// Everything replicated that two trees could disagree on (not the replica-local ACL ids,
/// not ZooKeeper's approximate data size, which a load recounts).
fn assert_same_tree(a: &DataTree, b: &DataTree, what: &str) {
    assert_eq!(a.digest(), b.digest(), "{what}: digest");
    let (ia, ib) = (image(a, 1), image(b, 1));
    let (ra, rb) = (resolved(&ia), resolved(&ib));
    assert_eq!(ra.0, rb.0, "{what}: sessions");
    assert_eq!(
        ra.1.keys().collect::<Vec<_>>(),
        rb.1.keys().collect::<Vec<_>>(),
        "{what}: paths"
    );
    for (p, n) in &ra.1 {
        assert_eq!(Some(n), rb.1.get(p), "{what}: node {p:?}");
    }
    for (s, _) in a.sessions() {
        assert_eq!(a.ephemerals_of(s), b.ephemerals_of(s), "{what}: ephemerals");
    }
    assert_eq!(a.ephemeral_count(), b.ephemeral_count(), "{what}");
    assert_eq!(a.node_count(), b.node_count(), "{what}: node count");
    assert_eq!(a.quota_roots(), b.quota_roots(), "{what}: quota roots");
    assert_eq!(
        a.reapable_nodes(i64::MAX / 2, 1),
        b.reapable_nodes(i64::MAX / 2, 1),
        "{what}: containers and TTL nodes"
    );
}

// ---- against ZooKeeper 3.8.0's files -------------------------------------------------

#[test]
fn the_initial_tree_writes_zookeepers_snapshot_0_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let tree = DataTree::new(TreeConfig::default());
    let info = snapshot::write_snapshot(&*fs(), t.path(), 0, &tree.snapshot_source(0)).unwrap();
    assert_eq!(
        std::fs::read(&info.path).unwrap(),
        std::fs::read(zk_snapshot(0)).unwrap()
    );
    // And ZooKeeper's snapshot.0 loads into the initial tree.
    assert_same_tree(
        &load(&zk_snapshot(0), TreeConfig::default()),
        &tree,
        "snapshot.0",
    );
}

#[test]
fn every_zookeeper_snapshot_loads_and_writes_back_equal() {
    for z in SNAPSHOT_ZXIDS {
        let path = zk_snapshot(z);
        let zk = read_image(&path);
        let tree = load(&path, ext());
        assert_eq!(tree.digest(), zk.tree_digest(), "0x{z:x}");
        // ZooKeeper's node map holds the root twice.
        assert_eq!(tree.node_count(), zk.nodes.len() + 1);
        let stored = zk.digest.unwrap();
        assert_eq!(
            tree.pending_snapshot_digest(),
            (stored.zxid > 0).then_some(stored)
        );
        let t = tempfile::tempdir().unwrap();
        let info = snapshot::write_snapshot(&*fs(), t.path(), z, &tree.snapshot_source(z)).unwrap();
        assert_eq!(
            info.bytes,
            std::fs::metadata(&path).unwrap().len(),
            "0x{z:x}"
        );
        // Same sessions, ACL map (ids included), nodes, stored stats and digest.
        assert_eq!(read_image(&info.path), zk, "0x{z:x}");
        if z == 0 {
            assert_eq!(
                std::fs::read(&info.path).unwrap(),
                std::fs::read(&path).unwrap()
            );
        }
    }
}

#[test]
fn loaded_snapshot_details() {
    let tree = load(&zk_snapshot(0x1f), ext());
    const SESSION: i64 = 0x1000010ceb60000;
    assert_eq!(tree.sessions().collect::<Vec<_>>(), vec![(SESSION, 30000)]);
    assert_eq!(
        tree.ephemerals_of(SESSION),
        vec!["/app/eph".to_string(), "/app/ephseq-0000000006".to_string()]
    );
    // Null data stays null, empty stays empty.
    assert_eq!(tree.get("/app/container").unwrap().0, None);
    assert_eq!(tree.get("/").unwrap().0, Some(Bytes::new()));
    assert_eq!(
        tree.persisted_owner_and_cversion("/app/container")
            .unwrap()
            .0,
        i64::MIN
    );
    assert_eq!(
        tree.persisted_owner_and_cversion("/app/ttl").unwrap().0 as u64,
        0xff00_0000_0000_0000 | 3_600_000
    );
    // Stored cversion 14 with 12 children: clients see 2*14-12.
    assert_eq!(tree.persisted_owner_and_cversion("/app").unwrap().1, 14);
    assert_eq!(tree.children("/app").unwrap().len(), 12);
    assert_eq!(tree.stat("/app").unwrap().cversion, 28 - 12);
    assert_eq!(
        tree.acl("/app/config").unwrap()[0].id.id,
        "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
    );
    assert_eq!(tree.acl("/zookeeper/config").unwrap(), Acl::read_unsafe());
    assert_eq!(tree.acl_cache_size(), 5);
    // The TTL node is indexed for the reaper (the container still has its child).
    assert_eq!(
        tree.reapable_nodes(i64::MAX / 2, 0),
        vec!["/app/ttl".to_string()]
    );
}

#[test]
fn replaying_zookeepers_log_matches_every_logged_digest_and_every_snapshot() {
    let mut tree = DataTree::new(ext());
    let log = zk_log();
    assert_eq!(log.last().unwrap().header.zxid, LAST_ZXID);
    for e in &log {
        let m = tree.replay_entry(e).unwrap();
        assert_eq!(m, None, "digest after zxid 0x{:x}", e.header.zxid);
        let z = e.header.zxid;
        if !SNAPSHOT_ZXIDS.contains(&z) {
            continue;
        }
        tree.check_invariants();
        let zk = read_image(&zk_snapshot(z));
        assert_eq!(
            zk.digest.unwrap().digest,
            zk.tree_digest(),
            "ZooKeeper's snapshot 0x{z:x} is exact (not fuzzy)"
        );
        // The whole snapshot, ACL ids included (both number lists in order of first use).
        assert_eq!(image(&tree, z), zk, "state at 0x{z:x}");
        // And SnapshotFormatter's text for our file is the text for ZooKeeper's.
        let t = tempfile::tempdir().unwrap();
        let info = snapshot::write_snapshot(&*fs(), t.path(), z, &tree.snapshot_source(z)).unwrap();
        let ours = dump::dump_snapshot(&*fs(), &info.path, SnapshotDumpOptions::default()).unwrap();
        let theirs = std::fs::read_to_string(
            fixture()
                .join("expected")
                .join(format!("{}.txt", layout::snapshot_file_name(z))),
        )
        .unwrap();
        // Node blocks may come in another order: within a hash bucket the formatter keeps
        // file order, and our children are in creation order, ZooKeeper's in hash order.
        let blocks = |s: &str| {
            let mut v: Vec<String> = s.split("----\n").map(str::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(blocks(&ours), blocks(&theirs), "dump at 0x{z:x}");
    }
}

#[test]
fn every_zookeeper_snapshot_plus_the_log_reaches_the_same_tree() {
    let mut reference = DataTree::new(ext());
    let log = zk_log();
    for e in &log {
        reference.replay_entry(e).unwrap();
    }
    for z in SNAPSHOT_ZXIDS {
        let mut tree = load(&zk_snapshot(z), ext());
        let mut compared = 0;
        for e in log.iter().filter(|e| e.header.zxid > z) {
            assert_eq!(tree.replay_entry(e).unwrap(), None, "from 0x{z:x}");
            compared += 1;
        }
        assert!(compared > 0);
        assert_eq!(tree.pending_snapshot_digest(), None);
        tree.check_invariants();
        assert_same_tree(&tree, &reference, &format!("from snapshot 0x{z:x}"));
        // Same ids too: a load keeps ZooKeeper's and new lists continue after them.
        assert_eq!(image(&tree, LAST_ZXID), image(&reference, LAST_ZXID));
        // Replaying the log a second time changes nothing (idempotent replay).
        for e in log.iter().filter(|e| e.header.zxid > z) {
            tree.replay(&e.header, &e.txn).unwrap();
        }
        assert_same_tree(&tree, &reference, &format!("twice from 0x{z:x}"));
    }
}

#[test]
fn recovery_as_the_server_does_it() {
    use corral_storage::layout::DataDirs;
    use corral_storage::recovery::{plan_recovery, RecoveryOptions};
    let dirs = DataDirs::new(fixture().join("data"), fixture().join("log"));
    let opts = RecoveryOptions {
        repair: false,
        ..RecoveryOptions::default()
    };
    let plan = plan_recovery(fs(), &dirs, opts).unwrap();
    let mut b = TreeBuilder::new(ext());
    plan.load_snapshot(&*fs(), &mut b).unwrap().unwrap();
    assert_eq!(b.snapshot_digest().unwrap().zxid, 0x1f);
    let mut tree = b.finish().unwrap();
    for r in plan.entries(fs()) {
        assert_eq!(tree.replay_entry(&r.unwrap().entry).unwrap(), None);
    }
    assert_eq!(
        tree.remove_ephemerals_of_dead_sessions(plan.last_zxid),
        vec![]
    );
    let mut reference = DataTree::new(ext());
    for e in zk_log() {
        reference.replay_entry(&e).unwrap();
    }
    assert_same_tree(&tree, &reference, "recovered");
}

// ---- rejecting what cannot be a tree -------------------------------------------------

fn node(path: &str, acl_id: i64, owner: i64) -> SnapshotNode {
    SnapshotNode {
        path: path.into(),
        data: Some(Bytes::new()),
        acl_id,
        stat: StatPersisted {
            ephemeral_owner: owner,
            ..StatPersisted::default()
        },
    }
}

fn build(feed: impl FnOnce(&mut TreeBuilder) -> Result<(), String>) -> Result<DataTree, String> {
    let mut b = TreeBuilder::new(TreeConfig::default());
    feed(&mut b)?;
    b.finish().map_err(|e| e.to_string())
}

fn n(b: &mut TreeBuilder, path: &str, acl_id: i64, owner: i64) -> Result<(), String> {
    b.node(node(path, acl_id, owner)).map_err(|e| e.to_string())
}

#[test]
fn the_builder_refuses_what_is_not_a_tree() {
    let err = |r: Result<DataTree, String>| r.err().unwrap_or_else(|| panic!("accepted"));
    assert!(err(build(|_| Ok(()))).contains("no root"));
    assert!(err(build(|b| n(b, "/a", -1, 0))).contains("before the root"));
    assert!(err(build(|b| {
        n(b, "", -1, 0)?;
        n(b, "", -1, 0)
    }))
    .contains("twice"));
    let orphan = err(build(|b| {
        n(b, "", -1, 0)?;
        n(b, "/a/b", -1, 0)
    }));
    assert!(orphan.contains("\"/a/b\" has no parent"), "{orphan}");
    let unknown = err(build(|b| {
        n(b, "", -1, 0)?;
        n(b, "/a", 7, 0)
    }));
    assert!(unknown.contains("ACL id 7"), "{unknown}");
    assert!(err(build(|b| {
        b.acl(-1, Acl::open_unsafe()).map_err(|e| e.to_string())
    }))
    .contains("-1"));
    assert!(err(build(|b| {
        b.acl(1, Acl::open_unsafe()).map_err(|e| e.to_string())?;
        b.acl(1, Acl::read_unsafe()).map_err(|e| e.to_string())
    }))
    .contains("twice"));
    assert!(err(build(|b| {
        b.acl(1 << 40, Acl::open_unsafe())
            .map_err(|e| e.to_string())
    }))
    .contains("out of range"));
    assert!(err(build(|b| {
        b.session(5, 1000).map_err(|e| e.to_string())?;
        b.session(5, 1000).map_err(|e| e.to_string())
    }))
    .contains("twice"));
    for bad in ["a", "/a/", "/a//b", "//"] {
        assert!(
            err(build(|b| {
                n(b, "", -1, 0)?;
                n(b, "/a", -1, 0)?;
                n(b, bad, -1, 0)
            }))
            .contains("malformed"),
            "{bad}"
        );
    }
    assert!(err(build(|b| {
        n(b, "", -1, 0)?;
        n(b, "/a", -1, 0)?;
        n(b, "/a", -1, 0)
    }))
    .contains("twice"));
    assert!(err(build(|b| {
        n(b, "", -1, 0)?;
        n(b, "/e", -1, 42)?;
        n(b, "/e/x", -1, 0)
    }))
    .contains("child of an ephemeral"));
    assert!(err(build(|b| n(b, "", -1, 9))).contains("ephemeral owner"));
    // A list the map holds twice is folded into one id; an unused list is dropped.
    let t = build(|b| {
        b.acl(3, Acl::read_unsafe()).map_err(|e| e.to_string())?;
        b.acl(4, Acl::read_unsafe()).map_err(|e| e.to_string())?;
        b.acl(5, Acl::open_unsafe()).map_err(|e| e.to_string())?;
        n(b, "", -1, 0)?;
        n(b, "/a", 3, 0)?;
        n(b, "/b", 4, 0)
    })
    .unwrap();
    t.check_invariants();
    assert_eq!(t.acl_cache_size(), 1);
    assert_eq!(t.acl("/b").unwrap(), Acl::read_unsafe());
}

#[test]
fn a_bad_snapshot_file_is_an_error_naming_file_and_offset() {
    let mut img = SnapshotImage::initial();
    img.nodes.insert(
        "/orphan/child".into(),
        corral_storage::image::ImageNode {
            data: None,
            acl_id: -1,
            stat: StatPersisted::default(),
        },
    );
    let t = tempfile::tempdir().unwrap();
    let info = snapshot::write_snapshot(&*fs(), t.path(), 5, &img).unwrap();
    let mut b = TreeBuilder::new(TreeConfig::default());
    let e = snapshot::read_snapshot(&*fs(), &info.path, &mut b).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("snapshot.5") && msg.contains("at offset"),
        "{msg}"
    );
    assert!(msg.contains("/orphan/child"), "{msg}");
}

#[test]
fn ephemerals_of_dead_sessions_go_at_startup() {
    let mut live = Live::new(1);
    live.open(0x77);
    live.write(
        0x77,
        &Request::Create(create_req("/e", Some(b"x"), Some(Acl::open_unsafe()), 1)),
    );
    live.write(
        1,
        &Request::Create(create_req("/p", None, Some(Acl::open_unsafe()), 0)),
    );
    live.write(
        0x77,
        &Request::Create(create_req("/p/e", None, Some(Acl::open_unsafe()), 1)),
    );
    let mut img = image(&live.tree, live.zxid);
    img.sessions.remove(&0x77);
    let mut b = TreeBuilder::new(TreeConfig::default());
    pump(&img, &mut b).unwrap();
    let mut t = b.finish().unwrap();
    assert_eq!(t.ephemeral_count(), 2);
    assert_eq!(t.remove_ephemerals_of_dead_sessions(99), vec![0x77]);
    t.check_invariants();
    assert_eq!(t.ephemeral_count(), 0);
    assert!(t.stat("/e").is_none() && t.stat("/p/e").is_none());
    assert_eq!(t.stat("/p").unwrap().pzxid, 99);
    assert_eq!(t.remove_ephemerals_of_dead_sessions(100), vec![]);
}

// ---- snapshots taken while writes go on ----------------------------------------------

/// xorshift64*: the tests' own seeded randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// A live tree applying prepped requests, with the txn log it would write.
struct Live {
    cfg: TreeConfig,
    tree: DataTree,
    zxid: i64,
    time: i64,
    log: Vec<TxnEntry>,
}

const SESSIONS: [i64; 3] = [0x100, 0x101, 0x102];

impl Live {
    fn new(seed: u64) -> Live {
        let cfg = TreeConfig {
            extended_types_enabled: seed & 1 == 0,
            ..TreeConfig::default()
        };
        Live {
            tree: DataTree::new(cfg.clone()),
            cfg,
            zxid: 0,
            time: 1_700_000_000_000,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, session: i64, txn: Txn) {
        self.zxid += 1;
        self.time += 7;
        let header = TxnHeader {
            session_id: session,
            cxid: self.zxid as i32,
            zxid: self.zxid,
            time_ms: self.time,
            op: txn.op().code(),
        };
        self.tree.apply(&header, &txn);
        let digest = (!matches!(txn, Txn::Error(_))).then_some(TxnDigest {
            version: 2,
            tree_digest: self.tree.digest(),
        });
        self.log.push(TxnEntry {
            header,
            txn,
            digest,
        });
    }

    fn open(&mut self, session: i64) {
        let txn = self.tree.prep_create_session(10_000 + session as i32);
        self.apply(session, txn);
    }

    fn write(&mut self, session: i64, req: &Request) {
        let auth = [
            Id::new("ip", "127.0.0.1"),
            Id::new("digest", format!("u{}:h", session & 1)),
        ];
        let caller = Caller {
            session_id: session,
            auth: &auth,
        };
        let txn = self.tree.prep(&caller, req, self.time);
        self.apply(session, txn);
    }

    /// One random write (or session change).
    fn random_step(&mut self, rng: &mut Rng) {
        let session = *rng.pick(&SESSIONS);
        let paths: Vec<String> = self
            .tree
            .all_paths()
            .into_iter()
            .filter(|p| !p.starts_with("/zookeeper"))
            .collect();
        // Mostly permissive lists (so writes succeed), several of them new and freed
        // again as nodes come and go; a few that refuse some callers.
        let acls = [
            Acl::open_unsafe(),
            Acl::open_unsafe(),
            vec![Acl::new(31, "ip", "127.0.0.1")],
            vec![
                Acl::new(31, "world", "anyone"),
                Acl::new(1, "digest", &format!("u{}:h", rng.below(8))),
            ],
            vec![Acl::new(31, "digest", &format!("u{}:h", rng.below(2)))],
            Acl::read_unsafe(),
        ];
        let datas: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"x"), Some(b"longer data")];
        let req = |rng: &mut Rng| -> Request {
            let parent = rng.pick(&paths).clone();
            let base = if parent == "/" { String::new() } else { parent };
            let target = rng.pick(&paths).clone();
            match rng.below(12) {
                0..=4 => {
                    let flags = *rng.pick(&[0, 0, 0, 1, 2, 3, 4, 5, 6]);
                    let mut c = create_req(
                        &format!("{base}/n{}", rng.below(4)),
                        *rng.pick(&datas),
                        Some(rng.pick(&acls).clone()),
                        flags,
                    );
                    match flags {
                        4 => Request::CreateContainer(c),
                        5 | 6 => {
                            c.ttl = Some(1000);
                            Request::CreateTtl(c)
                        }
                        _ => Request::Create(c),
                    }
                }
                5 | 6 => delete(&target, -1),
                7 | 8 => set_data(&target, &[b'v'; 3][..rng.below(4)], -1),
                9 => set_acl(&target, rng.pick(&acls).clone(), -1),
                _ => Request::Create(create_req(
                    &format!("/qa/q{}", rng.below(5)),
                    Some(b"quota"),
                    Some(Acl::open_unsafe()),
                    0,
                )),
            }
        };
        match rng.below(20) {
            0 => {
                if self.tree.session_exists(session) {
                    self.write(session, &Request::CloseSession);
                } else {
                    self.open(session);
                }
            }
            1 | 2 => {
                let ops = (0..2 + rng.below(2)).map(|_| req(rng)).collect();
                self.write(session, &Request::Multi(ops));
            }
            _ => {
                if !self.tree.session_exists(session) {
                    self.open(session);
                }
                let r = req(rng);
                self.write(session, &r);
            }
        }
    }

    /// Sessions, a quota on /qa, and `n` random writes.
    fn workload(seed: u64, n: usize) -> Live {
        let mut live = Live::new(seed);
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for s in SESSIONS {
            live.open(s);
        }
        for (p, d) in [
            ("/qa", None),
            ("/zookeeper/quota/qa", None),
            (
                "/zookeeper/quota/qa/zookeeper_limits",
                Some(&b"count=50,bytes=-1"[..]),
            ),
            (
                "/zookeeper/quota/qa/zookeeper_stats",
                Some(&b"count=0,bytes=0"[..]),
            ),
        ] {
            live.write(
                1,
                &Request::Create(create_req(p, d, Some(Acl::open_unsafe()), 0)),
            );
        }
        for _ in 0..n {
            live.random_step(&mut rng);
        }
        live
    }
}

fn replay_after(tree: &mut DataTree, log: &[TxnEntry], zxid: i64, what: &str) {
    for e in log.iter().filter(|e| e.header.zxid > zxid) {
        let m = tree
            .replay_entry(e)
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(m, None, "{what}: {:?}", e);
    }
    tree.check_invariants();
}

#[test]
fn snapshot_of_a_clone_written_while_the_live_tree_moves_on() {
    for seed in 1..=12u64 {
        let full = Live::workload(seed, 150);
        let n = full.log.len();
        for j in [0, 9, n / 3, n / 2, n - 1] {
            // Re-run the same workload up to j, snapshot a clone there, and apply the rest
            // to the live tree while the snapshot is written.
            let mut live = Live::new(seed);
            for e in &full.log[..j] {
                live.tree.apply(&e.header, &e.txn);
            }
            let zxid = j as i64;
            let view = live.tree.snapshot_source(zxid);
            let dir = tempfile::tempdir().unwrap();
            let dir_path = dir.path().to_path_buf();
            let writer = std::thread::spawn(move || {
                snapshot::write_snapshot(&StdFs, &dir_path, zxid, &view).unwrap()
            });
            for e in &full.log[j..] {
                live.tree.apply(&e.header, &e.txn);
            }
            let info = writer.join().unwrap();
            assert_eq!(info.zxid, Some(zxid));
            let what = format!("seed {seed}, snapshot at {j} of {n}");
            let mut b = TreeBuilder::new(live.cfg.clone());
            snapshot::read_snapshot(&*fs(), &info.path, &mut b).unwrap();
            let mut tree = b.finish().unwrap();
            replay_after(&mut tree, &full.log, zxid, &what);
            assert_same_tree(&tree, &live.tree, &what);
            assert_same_tree(&tree, &full.tree, &what);
        }
    }
}

/// A snapshot the way ZooKeeper takes one: sessions first, then a pre-order walk while
/// txns keep landing, so each node (and the child list that decides which nodes come
/// next) is read at a later moment than the one before; the digest is the one at the
/// last moment. `states[t]` is the tree after txn `first_zxid + t`.
struct FuzzySnapshot {
    sessions: Vec<(i64, i32)>,
    acls: Vec<(i64, Vec<Acl>)>,
    nodes: Vec<(String, Option<Bytes>, i64, StatPersisted)>,
    digest: ZxidDigest,
}

impl FuzzySnapshot {
    fn take(states: &[DataTree], first_zxid: i64, rng: &mut Rng) -> FuzzySnapshot {
        let mut s = FuzzySnapshot {
            sessions: states[0].sessions().collect(),
            acls: Vec::new(),
            nodes: Vec::new(),
            digest: ZxidDigest::EMPTY,
        };
        let mut acl_ids: BTreeMap<Vec<Acl>, i64> = BTreeMap::new();
        let mut t = 0usize;
        // (path, moment its parent listed it)
        let mut stack = vec!["/".to_string()];
        while let Some(p) = stack.pop() {
            if rng.below(3) == 0 {
                t = (t + 1 + rng.below(3)).min(states.len() - 1);
            }
            let tree = &states[t];
            let Some((data, stat)) = tree.get(&p) else {
                continue; // deleted since its parent was read
            };
            let (owner, cversion) = tree.persisted_owner_and_cversion(&p).unwrap();
            let acl = tree.acl(&p).unwrap();
            let next = acl_ids.len() as i64 + 1;
            let acl_id = *acl_ids.entry(acl).or_insert(next);
            s.nodes.push((
                if p == "/" { String::new() } else { p.clone() },
                data,
                acl_id,
                StatPersisted {
                    czxid: stat.czxid,
                    mzxid: stat.mzxid,
                    ctime: stat.ctime,
                    mtime: stat.mtime,
                    version: stat.version,
                    cversion,
                    aversion: stat.aversion,
                    ephemeral_owner: owner,
                    pzxid: stat.pzxid,
                },
            ));
            let base = if p == "/" { "" } else { p.as_str() };
            let kids = tree.children(&p).unwrap();
            for k in kids.iter().rev() {
                stack.push(format!("{base}/{k}"));
            }
        }
        let last = states.len() - 1;
        let zxid = first_zxid + last as i64;
        s.digest = if zxid == 0 {
            ZxidDigest::EMPTY
        } else {
            ZxidDigest {
                zxid,
                version: 2,
                digest: states[last].digest(),
            }
        };
        s.acls = acl_ids.into_iter().map(|(l, id)| (id, l)).collect();
        s.acls.sort();
        s
    }
}

impl SnapshotSource for FuzzySnapshot {
    fn session_count(&self) -> usize {
        self.sessions.len()
    }
    fn visit_sessions(
        &self,
        f: &mut dyn FnMut(i64, i32) -> corral_storage::Result<()>,
    ) -> corral_storage::Result<()> {
        self.sessions.iter().try_for_each(|&(s, t)| f(s, t))
    }
    fn acl_count(&self) -> usize {
        self.acls.len()
    }
    fn visit_acls(
        &self,
        f: &mut dyn FnMut(i64, &[Acl]) -> corral_storage::Result<()>,
    ) -> corral_storage::Result<()> {
        self.acls.iter().try_for_each(|(id, l)| f(*id, l))
    }
    fn visit_nodes(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> corral_storage::Result<()>,
    ) -> corral_storage::Result<()> {
        self.nodes.iter().try_for_each(|(p, d, a, s)| {
            f(NodeRecord {
                path: p,
                data: d.as_deref(),
                acl_id: *a,
                stat: *s,
            })
        })
    }
    fn digest(&self) -> ZxidDigest {
        self.digest
    }
}

#[test]
fn fuzzy_snapshot_plus_replay_reproduces_the_live_tree() {
    let mut fuzzy_nodes = 0usize;
    for seed in 1..=24u64 {
        let full = Live::workload(seed, 120);
        let n = full.log.len();
        let mut rng = Rng(seed * 7919 + 1);
        for _ in 0..6 {
            let j = rng.below(n);
            let k = (j + 1 + rng.below(25)).min(n);
            let mut live = Live::new(seed);
            for e in &full.log[..j] {
                live.tree.apply(&e.header, &e.txn);
            }
            let mut states = vec![live.tree.clone()];
            for e in &full.log[j..k] {
                live.tree.apply(&e.header, &e.txn);
                states.push(live.tree.clone());
            }
            let snap = FuzzySnapshot::take(&states, j as i64, &mut rng);
            let exact = image(&states[0], 1);
            fuzzy_nodes += snap
                .nodes
                .iter()
                .filter(|(p, _, _, s)| exact.nodes.get(p).map(|n| n.stat) != Some(*s))
                .count();
            let what = format!("seed {seed}, fuzzy snapshot from {j} to {k} of {n}");
            let dir = tempfile::tempdir().unwrap();
            let info = snapshot::write_snapshot(&*fs(), dir.path(), j as i64, &snap).unwrap();
            let mut b = TreeBuilder::new(live.cfg.clone());
            snapshot::read_snapshot(&*fs(), &info.path, &mut b)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut tree = b.finish().unwrap();
            tree.check_invariants();
            replay_after(&mut tree, &full.log, j as i64, &what);
            assert_same_tree(&tree, &full.tree, &what);
        }
    }
    assert!(
        fuzzy_nodes > 50,
        "the snapshots were hardly fuzzy: {fuzzy_nodes}"
    );
}

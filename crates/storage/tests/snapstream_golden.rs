//! The SNAP stream against bytes a real ZooKeeper 3.8.0 leader sent
//! (`tests/fixtures/snapstream/README.md` says how they were recorded).

use corral_proto::records::{perms, Acl};
use corral_storage::snapshot::{NodeRecord, SnapshotSource, ZxidDigest};
use corral_storage::snapstream::{
    check_snap_stream, read_snap_stream, write_snap_stream, SnapStreamCheck, SnapStreamScanner,
};
use corral_storage::SnapshotImage;
use std::path::PathBuf;

/// The bytes after the SNAP packet, through `BenWasHere`.
fn golden() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snapstream/snap-stream-3.8.0.bin");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SESSION_A: i64 = 0x0200_008f_17d4_0000;
const SESSION_B: i64 = 0x0200_008f_17d4_0001;
/// The SNAP packet's zxid: the leader's lastProcessedZxid (the `/ttl` create).
const SNAP_ZXID: i64 = 0x1_0000_0014;
/// `EphemeralType.CONTAINER`.
const CONTAINER_OWNER: i64 = i64::MIN;
/// `EphemeralType.TTL` with a ttl of 600 000 ms.
const TTL_OWNER: i64 = (0xffu64 << 56) as i64 | 600_000;

fn parsed() -> SnapshotImage {
    let mut img = SnapshotImage::default();
    let bytes = golden();
    let info = read_snap_stream(&bytes, &mut img).unwrap();
    assert_eq!(info.bytes, bytes.len());
    assert_eq!((info.sessions, info.acls, info.nodes), (2, 3, 17));
    img
}

#[test]
fn check_finds_the_end_of_the_real_stream() {
    let mut bytes = golden();
    let len = bytes.len();
    assert_eq!(
        check_snap_stream(&bytes).unwrap(),
        SnapStreamCheck::Complete { len }
    );
    // NEWLEADER follows on the socket; it is not part of the stream.
    bytes.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0, 0]);
    assert_eq!(
        check_snap_stream(&bytes).unwrap(),
        SnapStreamCheck::Complete { len }
    );
    for cut in [0, 1, 4, 100, len / 2, len - 11, len - 1] {
        assert_eq!(
            check_snap_stream(&bytes[..cut]).unwrap(),
            SnapStreamCheck::Incomplete,
            "prefix of {cut} bytes"
        );
    }
    // Fed in 7-byte reads, the resumable scanner reaches the same end.
    let mut s = SnapStreamScanner::new();
    let mut at = 0;
    let end = loop {
        at = (at + 7).min(bytes.len());
        if let SnapStreamCheck::Complete { len } = s.scan(&bytes[..at]).unwrap() {
            break len;
        }
    };
    assert_eq!(end, len);
}

#[test]
fn the_real_stream_parses_to_the_tree_that_was_built() {
    let img = parsed();
    img.check_invariants().unwrap();
    assert_eq!(img.digest, None, "3.8.0 sends no digest after SNAP");

    assert_eq!(
        img.sessions
            .iter()
            .map(|(&k, &v)| (k, v))
            .collect::<Vec<_>>(),
        vec![(SESSION_A, 30_000), (SESSION_B, 12_000)]
    );
    let world = |p| Acl::new(p, "world", "anyone");
    assert_eq!(img.acls[&1], vec![world(perms::READ)]);
    assert_eq!(
        img.acls[&2],
        vec![world(perms::ALL)],
        "explicit open ACL gets an id"
    );
    assert_eq!(
        img.acls[&3],
        vec![
            Acl::new(perms::ALL, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
            world(perms::READ),
        ]
    );

    let paths: Vec<&str> = img.nodes.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        paths,
        [
            "",
            "/app",
            "/app/acl",
            "/app/config",
            "/app/empty",
            "/app/eph-b-0000000008",
            "/app/null",
            "/app/secret",
            "/app/seq-0000000005",
            "/app/seq-0000000006",
            "/eph-a",
            "/jobs",
            "/jobs/j1",
            "/ttl",
            "/zookeeper",
            "/zookeeper/config",
            "/zookeeper/quota",
        ]
    );
    let n = |p: &str| &img.nodes[p];
    let data = |p: &str| n(p).data.as_deref().map(<[u8]>::to_vec);

    // root: 4 user children created (cversion counts creations), pzxid = last create.
    assert_eq!(n("").acl_id, -1);
    assert_eq!((n("").stat.cversion, n("").stat.pzxid), (4, SNAP_ZXID));
    // /app: two setData, 9 child creations (one child deleted again).
    assert_eq!(data("/app"), Some(b"hello, world!".to_vec()));
    assert_eq!((n("/app").stat.version, n("/app").stat.cversion), (2, 9));
    assert_eq!(n("/app").acl_id, 2);
    assert_eq!(data("/app/config"), Some(vec![0, 1, 2, 0xff]));
    assert_eq!(n("/app/config").acl_id, 1);
    assert_eq!(n("/app/secret").acl_id, 3);
    assert_eq!(data("/app/null"), None, "null data stays null");
    assert_eq!(data("/app/empty"), Some(vec![]));
    assert_eq!((n("/app/acl").acl_id, n("/app/acl").stat.aversion), (1, 1));
    assert_eq!(n("/eph-a").stat.ephemeral_owner, SESSION_A);
    assert_eq!(n("/app/eph-b-0000000008").stat.ephemeral_owner, SESSION_B);
    assert_eq!(img.ephemeral_count(SESSION_A), 1);
    assert_eq!(img.ephemeral_count(SESSION_B), 1);
    assert_eq!(n("/jobs").stat.ephemeral_owner, CONTAINER_OWNER);
    assert_eq!(n("/jobs/j1").stat.ephemeral_owner, 0);
    assert_eq!(n("/ttl").stat.ephemeral_owner, TTL_OWNER);
    assert_eq!(n("/ttl").stat.czxid, SNAP_ZXID);
    assert!(data("/zookeeper/config")
        .unwrap()
        .starts_with(b"server.1=127.0.0.1:"));
    assert_eq!(n("/zookeeper/config").stat.version, -1);
    for (path, node) in &img.nodes {
        if !path.starts_with("/zookeeper") && !path.is_empty() {
            assert_eq!(node.stat.czxid >> 32, 1, "{path} created in epoch 1");
        }
    }
}

/// A sorted image written back gives a stream of the same length and content; the bytes
/// differ from ZooKeeper's only in the order of sessions and children (Java hash order).
#[test]
fn sorted_rewrite_has_the_same_content() {
    let img = parsed();
    let mut out = Vec::new();
    write_snap_stream(&img, &mut out).unwrap();
    assert_eq!(out.len(), golden().len());
    let mut back = SnapshotImage::default();
    read_snap_stream(&out, &mut back).unwrap();
    assert_eq!(back, img);
}

// ---- Java's iteration order ---------------------------------------------------------

/// `HashMap.hash`: the key's `hashCode` with its high half folded in.
fn spread(h: i32) -> u32 {
    let h = h as u32;
    h ^ (h >> 16)
}

/// `Long.hashCode`.
fn long_hash(v: i64) -> i32 {
    (v ^ ((v as u64) >> 32) as i64) as i32
}

/// `String.hashCode` (ASCII names: one UTF-16 unit per byte).
fn string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Table size of `new HashMap<>(m)` for `m.size() == n` (Java 17 `putMapEntries`).
fn copy_capacity(n: usize) -> usize {
    ((n as f32 / 0.75 + 1.0) as usize)
        .next_power_of_two()
        .max(1)
}

/// Table size of a `DataNode`'s `new HashSet<>(8)` after `n` inserts (no removals).
fn children_capacity(n: usize) -> usize {
    let mut cap = 8;
    while n * 4 > cap * 3 {
        cap *= 2;
    }
    cap
}

/// An image visited in the order ZooKeeper 3.8 on Java 17 writes it: sessions and ACL
/// ids in `HashMap` copy order, children in `HashSet` bucket order, children sharing a
/// bucket in creation order (`secret` and `acl` under `/app` do). Not modelled: removals
/// that leave a set larger than its size implies, and buckets of 8+ keys (trees).
struct JavaOrder<'a>(&'a SnapshotImage);

impl SnapshotSource for JavaOrder<'_> {
    fn session_count(&self) -> usize {
        self.0.sessions.len()
    }
    fn visit_sessions(
        &self,
        f: &mut dyn FnMut(i64, i32) -> corral_storage::Result<()>,
    ) -> corral_storage::Result<()> {
        let mask = copy_capacity(self.0.sessions.len()) as u32 - 1;
        let mut v: Vec<_> = self.0.sessions.iter().collect();
        v.sort_by_key(|(&id, _)| spread(long_hash(id)) & mask);
        v.into_iter().try_for_each(|(&id, &t)| f(id, t))
    }
    fn acl_count(&self) -> usize {
        self.0.acls.len()
    }
    fn visit_acls(
        &self,
        f: &mut dyn FnMut(i64, &[Acl]) -> corral_storage::Result<()>,
    ) -> corral_storage::Result<()> {
        let mask = copy_capacity(self.0.acls.len()) as u32 - 1;
        let mut v: Vec<_> = self.0.acls.iter().collect();
        v.sort_by_key(|(&id, _)| spread(long_hash(id)) & mask);
        v.into_iter().try_for_each(|(&id, l)| f(id, l))
    }
    fn visit_nodes(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> corral_storage::Result<()>,
    ) -> corral_storage::Result<()> {
        let mut stack = vec![String::new()];
        while let Some(path) = stack.pop() {
            let n = &self.0.nodes[&path];
            f(NodeRecord {
                path: &path,
                data: n.data.as_deref(),
                acl_id: n.acl_id,
                stat: n.stat,
            })?;
            let mut kids = self.0.children_of(&path);
            let mask = children_capacity(kids.len()) as u32 - 1;
            // Same bucket: insertion order, which is creation order (czxid).
            kids.sort_by_key(|k| {
                let czxid = self.0.nodes[&format!("{path}/{k}")].stat.czxid;
                (spread(string_hash(k)) & mask, czxid)
            });
            stack.extend(kids.iter().rev().map(|k| format!("{path}/{k}")));
        }
        Ok(())
    }
    fn digest(&self) -> ZxidDigest {
        ZxidDigest::EMPTY
    }
}

/// Written in Java's order, the parsed content reproduces ZooKeeper's bytes exactly.
#[test]
fn java_order_rewrite_is_byte_for_byte() {
    let img = parsed();
    let mut out = Vec::new();
    write_snap_stream(&JavaOrder(&img), &mut out).unwrap();
    let golden = golden();
    if let Some(i) = out.iter().zip(&golden).position(|(a, b)| a != b) {
        panic!(
            "first difference at byte {i}: ours {:02x?}, ZooKeeper's {:02x?}",
            &out[i..(i + 16).min(out.len())],
            &golden[i..(i + 16).min(golden.len())]
        );
    }
    assert_eq!(out, golden);
}

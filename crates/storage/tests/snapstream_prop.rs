//! Property tests of the SNAP stream codec: random snapshots round-trip, every strict
//! prefix of a stream is incomplete, the resumable scanner agrees with a one-shot check,
//! and arbitrary or damaged bytes never panic and never disagree between check and read.

use bytes::Bytes;
use corral_proto::records::{Acl, StatPersisted};
use corral_storage::image::ImageNode;
use corral_storage::snapshot::NullSink;
use corral_storage::snapstream::{
    check_snap_stream, read_snap_stream, write_snap_stream, SnapStreamCheck, SnapStreamError,
    SnapStreamScanner, ACL_LIST_LEN_MAX, FIELD_BYTES_MAX, SESSION_COUNT_MAX,
};
use corral_storage::SnapshotImage;
use proptest::prelude::*;

fn arb_stat() -> impl Strategy<Value = StatPersisted> {
    (
        any::<(i64, i64, i64, i64)>(),
        any::<(i32, i32, i32)>(),
        any::<(i64, i64)>(),
    )
        .prop_map(
            |((czxid, mzxid, ctime, mtime), (version, cversion, aversion), (eo, pzxid))| {
                StatPersisted {
                    czxid,
                    mzxid,
                    ctime,
                    mtime,
                    version,
                    cversion,
                    aversion,
                    ephemeral_owner: eo,
                    pzxid,
                }
            },
        )
}

fn arb_acl() -> impl Strategy<Value = Acl> {
    (0i32..32, "[a-z]{0,6}", "[ -~]{0,12}").prop_map(|(p, s, i)| Acl::new(p, &s, &i))
}

/// A consistent image: a root, then nodes under random earlier nodes.
fn arb_image() -> impl Strategy<Value = SnapshotImage> {
    (
        prop::collection::btree_map(any::<i64>(), any::<i32>(), 0..5),
        prop::collection::vec(prop::collection::vec(arb_acl(), 0..4), 0..4),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                "[a-z0-9]{1,5}",
                prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
                any::<prop::sample::Index>(),
                arb_stat(),
            ),
            0..24,
        ),
        arb_stat(),
    )
        .prop_map(|(sessions, lists, nodes, root_stat)| {
            let mut img = SnapshotImage {
                sessions,
                ..SnapshotImage::default()
            };
            for (i, l) in lists.into_iter().enumerate() {
                img.acls.insert(i as i64 + 1, l);
            }
            let acl_ids: Vec<i64> = std::iter::once(-1)
                .chain(img.acls.keys().copied())
                .collect();
            img.nodes.insert(
                String::new(),
                ImageNode {
                    data: Some(Bytes::new()),
                    acl_id: -1,
                    stat: root_stat,
                },
            );
            for (parent, name, data, acl, stat) in nodes {
                let paths: Vec<String> = img.nodes.keys().cloned().collect();
                let path = format!("{}/{name}", parent.get(&paths));
                img.nodes.entry(path).or_insert(ImageNode {
                    data: data.map(Bytes::from),
                    acl_id: *acl.get(&acl_ids),
                    stat,
                });
            }
            img
        })
}

fn encode(img: &SnapshotImage) -> Vec<u8> {
    let mut out = Vec::new();
    write_snap_stream(img, &mut out).unwrap();
    out
}

/// Check and read must agree on every input, and neither may panic.
fn agree(buf: &[u8]) {
    let check = check_snap_stream(buf);
    let read = read_snap_stream(buf, &mut NullSink);
    match (&check, &read) {
        (Ok(SnapStreamCheck::Complete { len }), Ok(info)) => assert_eq!(*len, info.bytes),
        (Ok(SnapStreamCheck::Incomplete), Err(SnapStreamError::Incomplete { bytes })) => {
            assert_eq!(*bytes, buf.len())
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("check {check:?} but read {read:?}"),
    }
    // An image sink may refuse (orphans, duplicates) but must not panic either.
    let _ = read_snap_stream(buf, &mut SnapshotImage::default());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip(img in arb_image()) {
        let out = encode(&img);
        prop_assert_eq!(
            check_snap_stream(&out).unwrap(),
            SnapStreamCheck::Complete { len: out.len() }
        );
        let mut back = SnapshotImage::default();
        let info = read_snap_stream(&out, &mut back).unwrap();
        prop_assert_eq!(info.bytes, out.len());
        prop_assert_eq!(info.nodes as usize, img.nodes.len());
        prop_assert_eq!(back, img);
    }

    #[test]
    fn every_strict_prefix_is_incomplete(img in arb_image(), tail in prop::collection::vec(any::<u8>(), 0..8)) {
        let out = encode(&img);
        for cut in 0..out.len() {
            prop_assert_eq!(
                check_snap_stream(&out[..cut]).unwrap(),
                SnapStreamCheck::Incomplete,
                "prefix of {} of {} bytes", cut, out.len()
            );
        }
        let mut more = out.clone();
        more.extend_from_slice(&tail);
        prop_assert_eq!(
            check_snap_stream(&more).unwrap(),
            SnapStreamCheck::Complete { len: out.len() }
        );
    }

    #[test]
    fn resumable_scan_matches_one_shot(img in arb_image(), steps in prop::collection::vec(1usize..64, 1..200)) {
        let out = encode(&img);
        let mut s = SnapStreamScanner::new();
        let mut at = 0;
        let mut steps = steps.into_iter().cycle();
        loop {
            at = (at + steps.next().unwrap()).min(out.len());
            match s.scan(&out[..at]).unwrap() {
                SnapStreamCheck::Complete { len } => {
                    prop_assert_eq!(len, out.len());
                    prop_assert_eq!(at, out.len());
                    break;
                }
                SnapStreamCheck::Incomplete => prop_assert!(at < out.len()),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        agree(&buf);
    }

    #[test]
    fn damaged_streams_never_panic(
        img in arb_image(),
        at in any::<prop::sample::Index>(),
        word in any::<u32>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut out = encode(&img);
        let i = at.index(out.len());
        let end = (i + 4).min(out.len());
        out[i..end].copy_from_slice(&word.to_be_bytes()[..end - i]);
        agree(&out);
        agree(&out[..cut.index(out.len() + 1)]);
    }
}

#[test]
fn absurd_counts_and_lengths_are_errors_not_incomplete() {
    let big = |n: usize| (n as i32 + 1).to_be_bytes();
    // session count
    assert!(check_snap_stream(&big(SESSION_COUNT_MAX)).is_err());
    assert!(check_snap_stream(&(-1i32).to_be_bytes()).is_err());
    // an ACL list length, in an otherwise fine prefix
    let mut b = vec![0, 0, 0, 0, 0, 0, 0, 1];
    b.extend_from_slice(&7i64.to_be_bytes());
    b.extend_from_slice(&big(ACL_LIST_LEN_MAX));
    match check_snap_stream(&b) {
        Err(SnapStreamError::Corrupt { offset, reason }) => {
            assert_eq!(offset, 16);
            assert!(reason.contains("ACL list length"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // a node path longer than any field may be
    let mut b = vec![0; 8];
    b.extend_from_slice(&big(FIELD_BYTES_MAX));
    match check_snap_stream(&b) {
        Err(SnapStreamError::Corrupt { offset, reason }) => {
            assert_eq!(offset, 8);
            assert!(reason.contains("node path"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // a null path
    let mut b = vec![0; 8];
    b.extend_from_slice(&(-1i32).to_be_bytes());
    assert!(check_snap_stream(&b).is_err());
}

#[test]
fn sink_errors_name_the_item_offset() {
    // /a/b before /a: the image sink refuses the orphan.
    let mut img = SnapshotImage::initial();
    let n = img.nodes[""].clone();
    img.nodes.insert("/a/b".into(), n);
    let out = encode(&img);
    assert!(check_snap_stream(&out).is_ok(), "the grammar is fine");
    match read_snap_stream(&out, &mut SnapshotImage::default()) {
        Err(SnapStreamError::Sink { offset, source }) => {
            assert_eq!(&out[offset + 4..offset + 8], b"/a/b");
            assert!(source.to_string().contains("/a/b"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}

mod common;
use common::*;
use corral_proto::{Acl, ErrorCode, Response};

#[test]
fn fresh_tree_matches_zookeeper_3_8() {
    let mut h = Harness::default();
    h.tree.check_invariants();
    assert_eq!(h.tree.node_count(), 5);
    assert_eq!(h.tree.approximate_data_size(), 44);
    let root = h.stat("/");
    assert_eq!((root.cversion, root.num_children, root.czxid), (-1, 1, 0));
    assert_eq!(h.stat("/zookeeper").cversion, -2);
    assert_eq!(h.stat("/zookeeper/config").aversion, -1);
    assert_eq!(h.tree.acl("/zookeeper/config"), Some(Acl::read_unsafe()));
    assert_eq!(h.tree.acl("/"), Some(Acl::open_unsafe()));
    match h.read(&get_data("/", false)) {
        Ok(Response::GetData { data, .. }) => assert_eq!(data.as_deref(), Some(&b""[..])),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        children_of(h.read(&get_children("", false))),
        vec!["zookeeper"]
    );
    assert_eq!(h.create("/a"), Ok(Response::Create { path: "/a".into() }));
    assert_eq!(h.tree.node_count(), 6);
    assert_eq!(h.tree.approximate_data_size(), 46);
    assert_eq!(h.write(&delete("/a", -1)), Ok(Response::Empty));
    assert_eq!(
        h.write(&delete("/zookeeper", -1)),
        Err(ErrorCode::BadArguments)
    );
}

/// An ensemble member's local write of its membership (ZooKeeper 3.8 observed: version -1,
/// mzxid = config version, czxid/ctime/pzxid 0, mtime = the member's clock), invisible to
/// the digest.
#[test]
fn init_config_node_is_a_local_set_data_outside_the_digest() {
    let mut h = Harness::default();
    assert!(h.create("/a").is_ok());
    let digest = h.tree.digest();
    let size = h.tree.approximate_data_size();
    let text = bytes::Bytes::from_static(b"server.1=127.0.0.1:2888:3888:participant\nversion=0");
    assert!(h.tree.init_config_node(&text, 0, 1_700_000_000_000));
    let st = h.stat("/zookeeper/config");
    assert_eq!(
        (
            st.czxid,
            st.mzxid,
            st.ctime,
            st.mtime,
            st.version,
            st.cversion
        ),
        (0, 0, 0, 1_700_000_000_000, -1, 0)
    );
    assert_eq!(
        (st.aversion, st.pzxid, st.data_length),
        (-1, 0, text.len() as i32)
    );
    assert_eq!(h.tree.digest(), digest);
    assert_eq!(h.tree.approximate_data_size(), size + text.len() as u64);
    // again (a later sync): same text, new mtime, still version -1
    assert!(h
        .tree
        .init_config_node(&text, 0x1_0000_0000, 1_700_000_000_500));
    let st = h.stat("/zookeeper/config");
    assert_eq!(
        (st.mzxid, st.mtime, st.version),
        (0x1_0000_0000, 1_700_000_000_500, -1)
    );
    assert_eq!(h.tree.get("/zookeeper/config").unwrap().0.unwrap(), text);
    h.tree.check_invariants();
}

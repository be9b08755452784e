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

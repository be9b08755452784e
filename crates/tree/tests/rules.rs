//! One test per ZooKeeper rule the tree implements: paths, create modes, sequence numbers,
//! stats, versions, ACLs and permissions, multi, sessions, reaping, replay, counters.
//! Facts marked [obs] were checked on a real ZooKeeper 3.8.0.

mod common;
use bytes::Bytes;
use common::*;
use corral_proto::request::{PathVersion, SetWatches};
use corral_proto::{
    perms, Acl, CreateTxn, ErrorCode, Id, MultiResult, Request, Response, Txn, TxnHeader,
};
use corral_tree::{Caller, DataTree, NodeKind, TreeConfig, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS};
use ErrorCode::{
    BadArguments, BadVersion, InvalidAcl, MarshallingError, NoAuth, NoChildrenForEphemerals,
    NoNode, NodeExists, NotEmpty, ReconfigDisabled, RuntimeInconsistency, SessionExpired,
    Unimplemented,
};

fn alice() -> Vec<Id> {
    digest_auth("alice", "aYXlLOpEooaV1cRAvUL1fp9Qt7E=")
}

fn alice_acl(perms: i32) -> Acl {
    Acl::new(perms, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")
}

// ---- paths -------------------------------------------------------------------------

#[test]
fn create_path_validation_and_its_order_relative_to_the_parent_lookup() {
    let mut h = Harness::default();
    // [obs] the parent is looked up before the full path is validated.
    assert_eq!(h.create("/"), Err(NodeExists));
    assert_eq!(h.create("/a/"), Err(NoNode));
    assert_eq!(h.create("abc"), Err(BadArguments));
    assert_eq!(h.create(""), Err(BadArguments));
    assert_eq!(h.create("a/b"), Err(NoNode));
    assert_eq!(h.create("/a//b"), Err(NoNode));
    assert_eq!(h.create("/a/./b"), Err(NoNode));
    assert_eq!(h.create("/a\0"), Err(BadArguments));
    h.create("/a").unwrap();
    assert_eq!(h.create("/a/"), Err(BadArguments));
    assert_eq!(h.create("/a/."), Err(BadArguments));
    assert_eq!(h.create("/a/.."), Err(BadArguments));
    assert_eq!(h.create("/a/\u{fff5}"), Err(BadArguments));
    assert_eq!(h.create("/a/\u{1f600}"), Err(BadArguments));
    assert_eq!(h.create("/a/\u{e000}"), Err(BadArguments));
    assert_eq!(h.create("/a/\u{7f}"), Err(BadArguments));
    for ok in ["/a/.b", "/a/..b", "/a/é", "/a/ ", "/zookeeper/x"] {
        assert!(h.create(ok).is_ok(), "{ok}");
    }
    // An invalid path with an invalid ACL: the ACL is checked first [obs].
    assert_eq!(h.write(&create_acl("/nothere/x", vec![])), Err(InvalidAcl));
    assert_eq!(h.write(&create_acl("/a/", vec![])), Err(InvalidAcl));
    // Each failure consumed a zxid (error txns).
    assert!(matches!(h.last_txn, Some(Txn::Error(InvalidAcl))));
}

#[test]
fn other_ops_validate_paths_their_own_way() {
    let mut h = Harness::default();
    h.create("/a").unwrap();
    assert_eq!(h.write(&set_data("/a/", b"", -1)), Err(BadArguments));
    assert_eq!(h.write(&set_data("", b"", -1)), Err(BadArguments));
    assert_eq!(
        h.write(&set_acl("a", Acl::open_unsafe(), -1)),
        Err(BadArguments)
    );
    assert_eq!(h.write(&check("/a/", -1)), Err(BadArguments));
    // delete only refuses special paths, no-slash paths and NULs, then looks up.
    assert_eq!(h.write(&delete("a", -1)), Err(BadArguments));
    assert_eq!(h.write(&delete("", -1)), Err(BadArguments));
    assert_eq!(h.write(&delete("/a/", -1)), Err(NoNode));
    assert_eq!(h.write(&delete("/a\0", -1)), Err(BadArguments));
    // Reads use the exact map: "" is the root's alias, "/a/" does not exist.
    assert!(h.read(&get_data("", false)).is_ok());
    assert!(h.read(&exists("", false)).is_ok());
    assert_eq!(h.read(&get_data("/a/", false)), Err(NoNode));
    assert_eq!(h.read(&exists("/a\0", false)), Err(BadArguments));
    // The root's data can be set.
    assert!(h.write(&set_data("/", b"r", -1)).is_ok());
    assert_eq!(h.stat("/").version, 1);
}

#[test]
fn special_nodes_cannot_be_deleted_and_config_is_read_only() {
    let mut h = Harness::default();
    for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(h.write(&delete(p, -1)), Err(BadArguments), "{p}");
    }
    assert_eq!(
        h.write(&set_data("/zookeeper/config", b"x", -1)),
        Err(NoAuth)
    );
    assert_eq!(
        h.write(&set_acl("/zookeeper/config", Acl::open_unsafe(), -1)),
        Err(NoAuth)
    );
    // Children of /zookeeper are allowed [obs] and deletable.
    h.create("/zookeeper/x").unwrap();
    assert_eq!(h.write(&delete("/zookeeper/x", -1)), Ok(Response::Empty));
}

// ---- create modes ------------------------------------------------------------------

#[test]
fn sequential_suffix_comes_from_the_stored_cversion() {
    let mut h = Harness::default();
    h.create("/q").unwrap();
    assert_eq!(
        created_path(h.write(&create("/q/n-", b"", 2))),
        "/q/n-0000000000"
    );
    assert_eq!(
        created_path(h.write(&create("/q/n-", b"", 2))),
        "/q/n-0000000001"
    );
    h.write(&delete("/q/n-0000000000", -1)).unwrap();
    h.create("/q/plain").unwrap();
    // Deletes do not lower the counter; every create raises it.
    assert_eq!(
        created_path(h.write(&create("/q/", b"", 2))),
        "/q/0000000003"
    );
    // Failed creates do not count.
    assert_eq!(h.create("/q/plain"), Err(NodeExists));
    assert_eq!(
        created_path(h.write(&create("/q/x", b"", 2))),
        "/q/x0000000004"
    );
    // A sequential name that collides is NodeExists.
    h.create("/q/y0000000006").unwrap(); // stored cversion becomes 6
    assert_eq!(h.write(&create("/q/y", b"", 2)), Err(NodeExists));
}

#[test]
fn cversion_stuck_at_max_after_overflow_like_zookeeper() {
    let mut h = Harness::default();
    h.create("/p").unwrap();
    // A txn carrying parent_cversion = MAX moves the stored cversion there.
    let t = Txn::Create(CreateTxn {
        path: "/p/a".into(),
        data: None,
        acl: Acl::open_unsafe(),
        ephemeral: false,
        parent_cversion: i32::MAX,
        ttl: 0,
    });
    h.apply_txn(1, &t).result.unwrap();
    assert_eq!(
        h.tree.persisted_owner_and_cversion("/p"),
        Some((0, i32::MAX))
    );
    assert_eq!(
        created_path(h.write(&create("/p/s", b"", 2))),
        "/p/s2147483647"
    );
    // MIN is not > MAX: the stored cversion stays, so the next name collides.
    assert_eq!(
        h.tree.persisted_owner_and_cversion("/p"),
        Some((0, i32::MAX))
    );
    assert_eq!(h.write(&create("/p/s", b"", 2)), Err(NodeExists));
}

#[test]
fn ephemeral_container_and_ttl_owner_encodings() {
    let mut h = Harness::extended();
    h.open_session(1);
    h.create("/e").unwrap();
    h.write(&create("/e/eph", b"", 1)).unwrap();
    assert_eq!(h.stat("/e/eph").ephemeral_owner, 1);
    h.write(&container("/e/c")).unwrap();
    assert_eq!(h.stat("/e/c").ephemeral_owner, 0, "masked for clients");
    assert_eq!(
        h.tree.persisted_owner_and_cversion("/e/c").unwrap().0,
        CONTAINER_EPHEMERAL_OWNER
    );
    let r = h.write(&ttl("/e/t", 5, 5000)).unwrap();
    match r {
        Response::Create2 { stat, .. } => assert_eq!(stat.ephemeral_owner, 0),
        other => panic!("{other:?}"),
    }
    let owner = h.tree.persisted_owner_and_cversion("/e/t").unwrap().0;
    assert_eq!(owner as u64, 0xFF00_0000_0000_0000 | 5000);
    assert_eq!(NodeKind::of(owner, true), NodeKind::Ttl(5000));
    assert_eq!(
        NodeKind::of(owner, false),
        NodeKind::Ephemeral(owner),
        "only with extended types"
    );
    assert_eq!(
        NodeKind::of(CONTAINER_EPHEMERAL_OWNER, false),
        NodeKind::Container
    );
    // Sequential TTL.
    assert_eq!(
        created_path(h.write(&ttl("/e/ts-", 6, 1))),
        "/e/ts-0000000003"
    );
    // Children: under an ephemeral refused, under container and TTL fine [obs].
    assert_eq!(h.create("/e/eph/x"), Err(NoChildrenForEphemerals));
    assert_eq!(
        h.write(&create("/e/eph/x", b"", 3)),
        Err(NoChildrenForEphemerals)
    );
    assert!(h.create("/e/c/x").is_ok());
    assert!(h.create("/e/t/x").is_ok());
    assert_eq!(h.tree.ephemeral_count(), 1);
}

#[test]
fn create_flag_and_opcode_rules() {
    let mut h = Harness::extended();
    h.open_session(1);
    assert_eq!(h.write(&create("/f", b"", 7)), Err(BadArguments));
    assert_eq!(h.write(&create("/f", b"", -1)), Err(BadArguments));
    // Container flag and opcode must agree (3.8.0 silently let the opcode win).
    let mut c = create_req("/f", Some(b""), Some(Acl::open_unsafe()), 0);
    assert_eq!(
        h.write(&Request::CreateContainer(c.clone())),
        Err(BadArguments)
    );
    assert_eq!(h.write(&create("/f", b"", 4)), Err(BadArguments));
    assert_eq!(h.write(&create2("/f", b"", 4)), Err(BadArguments));
    // TTL flags need op 21 and a TTL in (0, 2^40) [obs].
    assert_eq!(h.write(&create("/f", b"", 5)), Err(BadArguments));
    assert_eq!(h.write(&create2("/f", b"", 6)), Err(BadArguments));
    assert_eq!(h.write(&ttl("/f", 0, 5)), Err(BadArguments));
    assert_eq!(
        h.write(&ttl("/f", 0, -5)),
        Err(BadArguments),
        "3.8.0 accepted this and died applying it"
    );
    assert_eq!(h.write(&ttl("/f", 4, 5)), Err(BadArguments));
    assert_eq!(h.write(&ttl("/f", 5, 0)), Err(BadArguments));
    assert_eq!(h.write(&ttl("/f", 5, -1)), Err(BadArguments));
    assert_eq!(h.write(&ttl("/f", 5, TTL_MAX_MS + 1)), Err(BadArguments));
    assert!(h.write(&ttl("/f", 5, TTL_MAX_MS)).is_ok());
    c.ttl = None;
    c.flags = 5;
    assert_eq!(
        h.write(&Request::CreateTtl(c)),
        Err(BadArguments),
        "op 21 without a ttl"
    );
    // Bad flags win over a bad ACL; TTL range too [obs].
    let mut bad = create_req("/g", Some(b""), Some(vec![]), 9);
    assert_eq!(h.write(&Request::Create(bad.clone())), Err(BadArguments));
    bad.flags = 5;
    bad.ttl = Some(0);
    assert_eq!(h.write(&Request::CreateTtl(bad)), Err(BadArguments));

    // Without extended types, any TTL mode is Unimplemented, before the range check.
    let mut h = Harness::default();
    assert_eq!(h.write(&ttl("/f", 5, 100)), Err(Unimplemented));
    assert_eq!(h.write(&ttl("/f", 6, 0)), Err(Unimplemented));
    assert_eq!(h.write(&create("/f", b"", 5)), Err(Unimplemented));
    // Containers do not need extended types.
    assert!(h.write(&container("/c")).is_ok());
}

#[test]
fn ephemerals_need_a_live_session() {
    let mut h = Harness::default();
    assert_eq!(
        h.write_as(9, &ip(), &create("/e", b"", 1)),
        Err(SessionExpired)
    );
    h.open_session(9);
    assert!(h.write_as(9, &ip(), &create("/e", b"", 1)).is_ok());
    assert_eq!(h.tree.ephemerals_of(9), vec!["/e".to_string()]);
}

#[test]
fn null_and_empty_data_differ() {
    let mut h = Harness::default();
    h.write(&Request::Create(create_req(
        "/n",
        None,
        Some(Acl::open_unsafe()),
        0,
    )))
    .unwrap();
    h.create("/e").unwrap();
    match h.read(&get_data("/n", false)) {
        Ok(Response::GetData { data: None, stat }) => assert_eq!(stat.data_length, 0),
        other => panic!("{other:?}"),
    }
    match h.read(&get_data("/e", false)) {
        Ok(Response::GetData { data: Some(d), .. }) => assert!(d.is_empty()),
        other => panic!("{other:?}"),
    }
    let set_null = Request::SetData(corral_proto::request::SetDataRequest {
        path: "/e".into(),
        data: None,
        version: -1,
    });
    h.write(&set_null).unwrap();
    assert_eq!(h.tree.get("/e").unwrap().0, None);
}

// ---- stats and versions ------------------------------------------------------------

#[test]
fn stat_maintenance() {
    let mut h = Harness::default();
    let z0 = h.zxid;
    h.write(&create("/s", b"abc", 0)).unwrap();
    let s = h.stat("/s");
    assert_eq!((s.czxid, s.mzxid, s.pzxid), (z0 + 1, z0 + 1, z0 + 1));
    assert_eq!(s.ctime, s.mtime);
    assert_eq!(
        (s.version, s.cversion, s.aversion, s.data_length),
        (0, 0, 0, 3)
    );
    for c in ["a", "b", "c"] {
        h.create(&format!("/s/{c}")).unwrap();
    }
    // [obs] three creates -> cversion 3; a delete -> 4.
    assert_eq!(h.stat("/s").cversion, 3);
    h.write(&delete("/s/a", -1)).unwrap();
    let s = h.stat("/s");
    assert_eq!((s.cversion, s.num_children, s.pzxid), (4, 2, h.zxid));
    // setData / setACL do not touch the parent.
    let before = h.stat("/s");
    h.write(&set_data("/s/b", b"x", 0)).unwrap();
    h.write(&set_acl("/s/b", Acl::open_unsafe(), 0)).unwrap();
    assert_eq!(h.stat("/s"), before);
    let b = h.stat("/s/b");
    assert_eq!((b.version, b.aversion, b.mzxid), (1, 1, h.zxid - 1));
    // A failed write changes nothing but still consumes a zxid.
    let z = h.zxid;
    assert_eq!(h.write(&set_data("/s/b", b"y", 7)), Err(BadVersion));
    assert_eq!(h.zxid, z + 1);
    assert_eq!(h.stat("/s/b"), b);
}

#[test]
fn version_checks_and_wrapping() {
    let mut h = Harness::default();
    h.create("/v").unwrap();
    assert_eq!(h.write(&set_data("/v", b"", 1)), Err(BadVersion));
    assert!(h.write(&set_data("/v", b"", 0)).is_ok());
    assert!(h.write(&set_data("/v", b"", -1)).is_ok());
    assert_eq!(h.stat("/v").version, 2);
    assert_eq!(h.write(&delete("/v", 0)), Err(BadVersion));
    assert_eq!(h.write(&check("/v", 1)), Err(BadVersion));
    assert!(h.write(&check("/v", 2)).is_ok());
    // setACL checks aversion, not version.
    assert_eq!(
        h.write(&set_acl("/v", Acl::open_unsafe(), 2)),
        Err(BadVersion)
    );
    assert!(h.write(&set_acl("/v", Acl::open_unsafe(), 0)).is_ok());
    assert_eq!(h.stat("/v").aversion, 1);
    // Increments are plain i32 arithmetic.
    let t = Txn::SetData {
        path: "/v".into(),
        data: None,
        version: i32::MAX,
    };
    h.apply_txn(1, &t).result.unwrap();
    assert!(h.write(&set_data("/v", b"", i32::MAX)).is_ok());
    assert_eq!(h.stat("/v").version, i32::MIN);
    // Version before NotEmpty [obs], ACL before version [obs].
    h.create("/v/c").unwrap();
    assert_eq!(h.write(&delete("/v", 3)), Err(BadVersion));
    assert_eq!(h.write(&delete("/v", -1)), Err(NotEmpty));
}

// ---- ACLs --------------------------------------------------------------------------

#[test]
fn acl_fixup_on_create_and_set_acl() {
    let mut h = Harness::default();
    assert_eq!(h.write(&create_acl("/x", vec![])), Err(InvalidAcl));
    let null_acl = Request::Create(create_req("/x", Some(b""), None, 0));
    assert_eq!(h.write(&null_acl), Err(InvalidAcl));
    assert_eq!(
        h.write(&create_acl("/x", vec![Acl::new(31, "world", "foo")])),
        Err(InvalidAcl)
    );
    assert_eq!(
        h.write(&create_acl("/x", vec![Acl::new(31, "ip", "::1")])),
        Err(InvalidAcl)
    );
    assert_eq!(
        h.write(&create_acl("/x", vec![Acl::new(31, "digest", "nocolon")])),
        Err(InvalidAcl)
    );
    assert_eq!(
        h.write(&create_acl("/x", vec![Acl::new(31, "auth", "")])),
        Err(InvalidAcl),
        "ip is not an auth id"
    );
    // auth expands to the caller's digest ids.
    let r = h.write_as(
        1,
        &alice(),
        &create_acl(
            "/x",
            vec![Acl::new(31, "auth", ""), Acl::new(1, "world", "anyone")],
        ),
    );
    assert!(r.is_ok());
    assert_eq!(
        h.tree.acl("/x").unwrap(),
        vec![alice_acl(31), Acl::new(1, "world", "anyone")]
    );
    // Duplicates removed.
    h.write(&create_acl(
        "/d",
        vec![
            Acl::new(31, "world", "anyone"),
            Acl::new(31, "world", "anyone"),
        ],
    ))
    .unwrap();
    assert_eq!(h.tree.acl("/d").unwrap(), Acl::open_unsafe());
    // setACL: fixup before the lookup [obs], so a bad ACL on a missing node is InvalidACL.
    assert_eq!(h.write(&set_acl("/missing", vec![], -1)), Err(InvalidAcl));
    assert_eq!(
        h.write(&set_acl("/missing", Acl::open_unsafe(), -1)),
        Err(NoNode)
    );
}

#[test]
fn permissions_per_op() {
    let mut h = Harness::default();
    h.open_session(2);
    // Node readable by world, everything else alice only.
    h.write_as(
        1,
        &alice(),
        &create_acl(
            "/p",
            vec![
                Acl::new(perms::READ, "world", "anyone"),
                alice_acl(perms::ALL),
            ],
        ),
    )
    .unwrap();
    h.write_as(
        1,
        &alice(),
        &create_acl("/p/c", vec![alice_acl(perms::ALL)]),
    )
    .unwrap();
    let me = ip();
    // create: CREATE on the parent.
    assert_eq!(h.write_as(2, &me, &create("/p/x", b"", 0)), Err(NoAuth));
    // delete: DELETE on the parent, checked before the child exists [obs].
    assert_eq!(h.write_as(2, &me, &delete("/p/nothing", -1)), Err(NoAuth));
    assert_eq!(h.write_as(2, &me, &delete("/p/c", -1)), Err(NoAuth));
    // setData: WRITE; check: READ; setACL: ADMIN.
    assert_eq!(h.write_as(2, &me, &set_data("/p", b"", -1)), Err(NoAuth));
    assert_eq!(
        h.write_as(2, &me, &set_data("/p", b"", 99)),
        Err(NoAuth),
        "ACL before version [obs]"
    );
    assert!(h.write_as(2, &me, &check("/p", -1)).is_ok());
    assert_eq!(h.write_as(2, &me, &check("/p/c", -1)), Err(NoAuth));
    assert_eq!(
        h.write_as(2, &me, &set_acl("/p", Acl::open_unsafe(), 99)),
        Err(NoAuth)
    );
    // Reads: READ, existence first.
    assert!(h.read_as(2, &me, &get_data("/p", false)).is_ok());
    assert_eq!(h.read_as(2, &me, &get_data("/p/c", false)), Err(NoAuth));
    assert_eq!(h.read_as(2, &me, &get_data("/p/none", false)), Err(NoNode));
    assert_eq!(h.read_as(2, &me, &get_children("/p/c", false)), Err(NoAuth));
    assert_eq!(
        h.read_as(2, &me, &get_children2("/p/c", false)),
        Err(NoAuth)
    );
    // [obs] 3.8.0 checks no permission on exists (3.8.4 added a READ check,
    // ZOOKEEPER-2590); corral follows the real server it is tested against.
    assert!(h.read_as(2, &me, &exists("/p/c", false)).is_ok());
    assert_eq!(h.read_as(2, &me, &exists("/p/none", false)), Err(NoNode));
    assert_eq!(
        h.read_as(
            2,
            &me,
            &Request::GetAllChildrenNumber {
                path: "/p/c".into()
            }
        ),
        Err(NoAuth)
    );
    assert_eq!(h.read_as(2, &me, &get_acl("/p/c")), Err(NoAuth));
    // alice can do it all; so can super and anyone with skip_acl.
    assert!(h.write_as(1, &alice(), &create("/p/x", b"", 0)).is_ok());
    let sup = vec![Id::new("super", ""), Id::new("ip", "127.0.0.1")];
    assert!(h.write_as(2, &sup, &set_data("/p/c", b"s", -1)).is_ok());
    let mut skip = Harness::new(TreeConfig {
        skip_acl: true,
        ..TreeConfig::default()
    });
    skip.write(&create_acl("/z", vec![alice_acl(perms::READ)]))
        .unwrap();
    assert!(skip.write(&set_data("/z", b"", -1)).is_ok());
    // A digest auth equal to the configured super digest is super too.
    let mut sd = Harness::new(TreeConfig {
        super_digest: Some("super:abc".into()),
        ..TreeConfig::default()
    });
    sd.write(&create_acl("/z", vec![alice_acl(perms::READ)]))
        .unwrap();
    assert!(sd
        .write_as(1, &digest_auth("super", "abc"), &set_data("/z", b"", -1))
        .is_ok());
    assert_eq!(
        sd.write_as(1, &digest_auth("super", "abd"), &set_data("/z", b"", -1)),
        Err(NoAuth)
    );
}

#[test]
fn ip_acls_match_by_prefix() {
    let mut h = Harness::default();
    h.write(&create_acl(
        "/ip",
        vec![Acl::new(perms::ALL, "ip", "127.0.0.0/8")],
    ))
    .unwrap();
    assert!(h
        .write_as(1, &[Id::new("ip", "127.9.9.9")], &set_data("/ip", b"", -1))
        .is_ok());
    assert_eq!(
        h.write_as(1, &[Id::new("ip", "10.0.0.1")], &set_data("/ip", b"", -1)),
        Err(NoAuth)
    );
}

#[test]
fn get_acl_masks_digest_ids_without_admin() {
    let mut h = Harness::default();
    h.write_as(
        1,
        &alice(),
        &create_acl(
            "/m",
            vec![
                Acl::new(1, "world", "anyone"),
                alice_acl(31),
                Acl::new(2, "digest", "bob:xyz"),
            ],
        ),
    )
    .unwrap();
    match h.read_as(2, &ip(), &get_acl("/m")) {
        Ok(Response::GetAcl { acl, .. }) => {
            assert_eq!(acl[1].id.id, "alice:x");
            assert_eq!(acl[2].id.id, "bob:x");
            assert_eq!(acl[0], Acl::new(1, "world", "anyone"));
        }
        other => panic!("{other:?}"),
    }
    match h.read_as(2, &alice(), &get_acl("/m")) {
        Ok(Response::GetAcl { acl, .. }) => assert_eq!(acl[1], alice_acl(31)),
        other => panic!("{other:?}"),
    }
    // ADMIN alone is enough to read the ACL, unmasked [obs].
    h.write(&create_acl(
        "/adm",
        vec![
            Acl::new(16, "world", "anyone"),
            Acl::new(1, "digest", "bob:xyz"),
        ],
    ))
    .unwrap();
    match h.read_as(2, &ip(), &get_acl("/adm")) {
        Ok(Response::GetAcl { acl, .. }) => assert_eq!(acl[1].id.id, "bob:xyz"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn acl_lists_are_interned_and_counted() {
    let mut h = Harness::default();
    assert_eq!(h.tree.acl_cache_size(), 1, "the config node's READ list");
    for i in 0..5 {
        h.create(&format!("/n{i}")).unwrap();
    }
    assert_eq!(h.tree.acl_cache_size(), 2);
    let table = h.tree.acl_table();
    assert_eq!(table[1].2, 5, "five users of the open list");
    h.write(&set_acl("/n0", Acl::read_unsafe(), -1)).unwrap();
    assert_eq!(h.tree.acl_table()[0].2, 2);
    for i in 0..5 {
        h.write(&delete(&format!("/n{i}"), -1)).unwrap();
    }
    assert_eq!(h.tree.acl_cache_size(), 1);
}

// ---- multi -------------------------------------------------------------------------

#[test]
fn multi_ops_see_each_other_and_answer_per_op() {
    let mut h = Harness::default();
    h.create("/m").unwrap();
    let ops = vec![
        create("/m/a", b"1", 0),
        create("/m/a/b", b"", 0),
        set_data("/m/a", b"2", 0),
        set_data("/m/a", b"3", 1),
        check("/m/a", 2),
        create("/m/s-", b"", 2),
        create("/m/s-", b"", 2),
        delete("/m/a/b", 0),
        create2("/m/c", b"", 0),
    ];
    let r = h.write(&Request::Multi(ops)).unwrap();
    let Response::Multi(results) = r else {
        panic!()
    };
    assert_eq!(
        results[0],
        MultiResult::Create {
            path: "/m/a".into()
        }
    );
    assert!(matches!(results[3], MultiResult::SetData { stat } if stat.version == 2));
    assert_eq!(results[4], MultiResult::Check);
    assert_eq!(
        results[5],
        MultiResult::Create {
            path: "/m/s-0000000001".into()
        }
    );
    assert_eq!(
        results[6],
        MultiResult::Create {
            path: "/m/s-0000000002".into()
        }
    );
    assert_eq!(results[7], MultiResult::Delete);
    // 3.8.4+ keeps create2 inside multi (3.8.0 turned it into create).
    assert!(
        matches!(&results[8], MultiResult::Create2 { path, stat } if path == "/m/c" && stat.czxid == h.zxid)
    );
    assert_eq!(h.tree.get("/m/a").unwrap().0.as_deref(), Some(&b"3"[..]));
    assert_eq!(
        h.stat("/m").cversion,
        2 * 4 - 4,
        "4 creates under /m, 4 children"
    );
    // Every op of a multi shares the zxid.
    assert_eq!(h.stat("/m/a").czxid, h.zxid);
}

#[test]
fn failed_multi_changes_nothing_and_reports_where() {
    let mut h = Harness::default();
    h.create("/m").unwrap();
    let digest = h.tree.digest();
    let paths = h.tree.all_paths();
    let ops = vec![
        create("/m/a", b"", 0),
        delete("/m/a", -1),
        set_data("/m/none", b"", -1),
        create("/m/b", b"", 0),
    ];
    let r = h.write(&Request::Multi(ops)).unwrap();
    assert_eq!(
        r,
        Response::Multi(vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(NoNode),
            MultiResult::Error(RuntimeInconsistency),
        ])
    );
    match h.last_txn.as_ref().unwrap() {
        Txn::Multi(t) => {
            assert!(matches!(t[0], Txn::Create(_)));
            assert!(matches!(t[1], Txn::Delete { .. }));
            assert_eq!(t[2], Txn::Error(NoNode));
            assert_eq!(t[3], Txn::Error(RuntimeInconsistency));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.tree.digest(), digest);
    assert_eq!(h.tree.all_paths(), paths);
    // The empty multi is fine; a multi cannot hold reads or setACL.
    assert_eq!(
        h.write(&Request::Multi(vec![])),
        Ok(Response::Multi(vec![]))
    );
    assert_eq!(
        h.write(&Request::Multi(vec![set_acl("/m", Acl::open_unsafe(), -1)])),
        Err(MarshallingError)
    );
}

#[test]
fn multi_read_answers_errors_inline_and_sets_no_watch() {
    let mut h = Harness::default();
    h.write(&create("/r", b"d", 0)).unwrap();
    h.write(&create_acl("/r/secret", vec![alice_acl(31)]))
        .unwrap();
    let r = h
        .read(&Request::MultiRead(vec![
            get_data("/r", true),
            get_children("/r", true),
            get_data("/none", false),
            get_data("/r/secret", false),
        ]))
        .unwrap();
    let Response::Multi(res) = r else { panic!() };
    assert!(matches!(&res[0], MultiResult::GetData { data: Some(d), .. } if &d[..] == b"d"));
    assert_eq!(
        res[1],
        MultiResult::GetChildren {
            children: vec!["secret".into()]
        }
    );
    assert_eq!(res[2], MultiResult::Error(NoNode));
    assert_eq!(res[3], MultiResult::Error(NoAuth));
    assert_eq!(h.tree.watch_count(), 0);
}

// ---- sessions ----------------------------------------------------------------------

#[test]
fn close_session_deletes_sorted_ephemerals_and_fires() {
    let mut h = Harness::default();
    h.open_session(7);
    h.open_session(8);
    h.create("/s").unwrap();
    for p in ["/s/b", "/s/a", "/c"] {
        h.write_as(7, &ip(), &create(p, b"", 1)).unwrap();
    }
    h.write_as(8, &ip(), &create("/s/other", b"", 1)).unwrap();
    h.read_as(8, &ip(), &exists("/s/a", true)).unwrap();
    h.read_as(8, &ip(), &get_children("/s", true)).unwrap();
    h.read_as(7, &ip(), &get_data("/s/b", true)).unwrap();
    let txn = h.tree.prep(
        &Caller {
            session_id: 7,
            auth: &ip(),
        },
        &Request::CloseSession,
        0,
    );
    assert_eq!(
        txn,
        Txn::CloseSession {
            paths_to_delete: vec!["/c".into(), "/s/a".into(), "/s/b".into()]
        }
    );
    h.take_events();
    let applied = h.apply_txn(7, &txn);
    assert_eq!(applied.result, Ok(Response::Empty));
    use corral_proto::EventType::*;
    assert_eq!(
        h.take_events(),
        vec![
            (8, NodeDeleted, "/s/a".to_string()),
            (8, NodeChildrenChanged, "/s".to_string()),
            // [obs] the closing session still gets its own events.
            (7, NodeDeleted, "/s/b".to_string()),
        ]
    );
    assert!(!h.tree.session_exists(7));
    assert_eq!(h.tree.ephemerals_of(7), Vec::<String>::new());
    assert_eq!(h.tree.ephemerals_of(8), vec!["/s/other".to_string()]);
    assert!(h.tree.watches_by_session().iter().all(|(s, _)| *s != 7));
    assert_eq!(h.tree.sessions().collect::<Vec<_>>(), vec![(8, 30_000)]);
}

#[test]
fn get_ephemerals_prefix_is_plain_starts_with() {
    let mut h = Harness::default();
    h.open_session(1);
    h.create("/a").unwrap();
    h.create("/ab").unwrap();
    for p in ["/a/x", "/ab/y", "/e"] {
        h.write(&create(p, b"", 1)).unwrap();
    }
    let eph = |h: &mut Harness, prefix: Option<&str>| match h.read(&Request::GetEphemerals {
        prefix: prefix.map(String::from),
    }) {
        Ok(Response::GetEphemerals { paths }) => paths,
        other => panic!("{other:?}"),
    };
    assert_eq!(eph(&mut h, None).len(), 3);
    assert_eq!(eph(&mut h, Some("")).len(), 3);
    assert_eq!(eph(&mut h, Some(" / ")).len(), 3);
    assert_eq!(
        eph(&mut h, Some("/a")),
        vec!["/a/x".to_string(), "/ab/y".to_string()]
    );
    assert_eq!(eph(&mut h, Some("/a/")), vec!["/a/x".to_string()]);
    assert_eq!(eph(&mut h, Some("/zz")), Vec::<String>::new());
    // Only the caller's own.
    let other = h.tree.read(
        &Caller {
            session_id: 2,
            auth: &ip(),
        },
        &Request::GetEphemerals { prefix: None },
    );
    assert_eq!(other, Ok(Response::GetEphemerals { paths: vec![] }));
}

// ---- reaping -----------------------------------------------------------------------

#[test]
fn reapable_containers_and_ttls() {
    let mut h = Harness::extended();
    h.write(&container("/used")).unwrap();
    h.write(&container("/never")).unwrap();
    h.write(&ttl("/t", 5, 1000)).unwrap();
    h.create("/used/x").unwrap();
    assert_eq!(h.tree.reapable_nodes(h.time, 0), Vec::<String>::new());
    h.write(&delete("/used/x", -1)).unwrap();
    let now = h.time;
    assert_eq!(h.tree.reapable_nodes(now, 0), vec!["/used".to_string()]);
    let t_mtime = h.stat("/t").mtime;
    assert_eq!(
        h.tree.reapable_nodes(t_mtime + 1000, 0),
        vec!["/used".to_string()]
    );
    assert_eq!(
        h.tree.reapable_nodes(t_mtime + 1001, 0),
        vec!["/t".to_string(), "/used".to_string()]
    );
    let never_mtime = h.stat("/never").mtime;
    assert_eq!(
        h.tree.reapable_nodes(never_mtime + 60_001, 60_000),
        vec!["/never".to_string(), "/t".to_string(), "/used".to_string()]
    );
    // A TTL node with children, or touched recently, stays.
    h.create("/t/c").unwrap();
    assert!(!h
        .tree
        .reapable_nodes(i64::MAX, 0)
        .contains(&"/t".to_string()));
    // The reaper's delete only takes containers and TTL nodes.
    h.create("/plain").unwrap();
    let dc = |p: &str| Request::DeleteContainer { path: p.into() };
    assert_eq!(h.write(&dc("/plain")), Err(BadVersion));
    assert_eq!(h.write(&dc("/t")), Err(NotEmpty));
    assert_eq!(h.write(&dc("/none")), Err(NoNode));
    assert_eq!(h.write(&dc("/zookeeper")), Err(BadArguments));
    assert_eq!(h.write(&dc("/used")), Ok(Response::Empty));
    assert!(h.tree.stat("/used").is_none());
}

// ---- counters ----------------------------------------------------------------------

#[test]
fn counters_like_srvr_and_mntr() {
    let mut h = Harness::default();
    h.create("/a").unwrap();
    h.write(&create("/a/é", b"12345", 0)).unwrap();
    // [obs] /a/é counts 4 (UTF-16 units) + 5 data bytes.
    assert_eq!(h.tree.approximate_data_size(), 44 + 2 + 4 + 5);
    assert_eq!(h.tree.node_count(), 7);
    h.write(&set_data("/a/é", b"1", -1)).unwrap();
    assert_eq!(h.tree.approximate_data_size(), 44 + 2 + 4 + 1);
    let n = |h: &mut Harness, p: &str| match h
        .read(&Request::GetAllChildrenNumber { path: p.into() })
    {
        Ok(Response::GetAllChildrenNumber { total }) => total,
        other => panic!("{other:?}"),
    };
    assert_eq!(n(&mut h, "/a"), 1);
    assert_eq!(n(&mut h, "/"), 5);
    assert_eq!(
        n(&mut h, ""),
        6,
        "ZooKeeper counts the root's own alias for \"\""
    );
    assert_eq!(n(&mut h, "/zookeeper"), 2);
    assert_eq!(n(&mut h, "/a/é"), 0);
}

#[test]
fn quota_usage_is_maintained() {
    let mut h = Harness::default();
    h.write(&create("/q", b"12345", 0)).unwrap();
    h.write(&create("/q/x", b"ab", 0)).unwrap();
    h.create("/zookeeper/quota/q").unwrap();
    h.write(&create(
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=10,bytes=-1",
        0,
    ))
    .unwrap();
    h.write(&create(
        "/zookeeper/quota/q/zookeeper_stats",
        b"count=0,bytes=0",
        0,
    ))
    .unwrap();
    let stats = |h: &Harness| {
        h.tree
            .get("/zookeeper/quota/q/zookeeper_stats")
            .unwrap()
            .0
            .unwrap()
    };
    assert_eq!(&stats(&h)[..], b"count=2,bytes=7");
    assert_eq!(h.tree.quota_roots(), vec!["/q".to_string()]);
    h.write(&create("/q/y", b"abc", 0)).unwrap();
    assert_eq!(&stats(&h)[..], b"count=3,bytes=10");
    h.write(&set_data("/q/y", b"abcdef", -1)).unwrap();
    assert_eq!(&stats(&h)[..], b"count=3,bytes=13");
    h.write(&delete("/q/y", -1)).unwrap();
    assert_eq!(&stats(&h)[..], b"count=2,bytes=7");
    h.write(&delete("/zookeeper/quota/q/zookeeper_limits", -1))
        .unwrap();
    assert!(h.tree.quota_roots().is_empty());
    h.create("/q/z").unwrap();
    assert_eq!(&stats(&h)[..], b"count=2,bytes=7");
}

// ---- replay ------------------------------------------------------------------------

fn hdr(zxid: i64, session: i64, txn: &Txn) -> TxnHeader {
    TxnHeader {
        session_id: session,
        cxid: 0,
        zxid,
        time_ms: T0 + zxid,
        op: txn.op().code(),
    }
}

fn ctxn(path: &str, parent_cversion: i32) -> Txn {
    Txn::Create(CreateTxn {
        path: path.into(),
        data: Some(Bytes::from_static(b"d")),
        acl: Acl::open_unsafe(),
        ephemeral: false,
        parent_cversion,
        ttl: 0,
    })
}

#[test]
fn replay_is_idempotent_and_silent() {
    let mut t = DataTree::new(TreeConfig::default());
    let log = [
        ctxn("/a", 1),
        ctxn("/a/b", 1),
        Txn::Delete {
            path: "/a/b".into(),
        },
        ctxn("/a/c", 2),
        Txn::SetData {
            path: "/a/c".into(),
            data: None,
            version: 1,
        },
    ];
    for (i, txn) in log.iter().enumerate() {
        t.replay(&hdr(i as i64 + 1, 1, txn), txn).unwrap();
    }
    t.check_invariants();
    let end = (t.digest(), t.all_paths(), t.stat("/a"), t.stat("/a/c"));
    // Replaying everything again (a fuzzy snapshot that already holds all of it).
    for (i, txn) in log.iter().enumerate() {
        t.replay(&hdr(i as i64 + 1, 1, txn), txn).unwrap();
    }
    t.check_invariants();
    assert_eq!(
        (t.digest(), t.all_paths(), t.stat("/a"), t.stat("/a/c")),
        end
    );
    // Replay fires nothing and does not consume watches.
    t.read(
        &Caller {
            session_id: 5,
            auth: &ip(),
        },
        &get_data("/a/c", true),
    )
    .unwrap();
    let txn = Txn::SetData {
        path: "/a/c".into(),
        data: None,
        version: 2,
    };
    t.replay(&hdr(9, 1, &txn), &txn).unwrap();
    assert_eq!(t.watch_count(), 1);
    // Error txns and failed multis are no-ops.
    t.replay(&hdr(10, 1, &Txn::Error(NoNode)), &Txn::Error(NoNode))
        .unwrap();
    let m = Txn::Multi(vec![ctxn("/z", 9), Txn::Error(NoNode)]);
    t.replay(&hdr(11, 1, &m), &m).unwrap();
    assert!(t.stat("/z").is_none());
}

#[test]
fn replay_moves_cversion_and_pzxid_only_forward() {
    let mut t = DataTree::new(TreeConfig::default());
    t.replay(&hdr(1, 1, &ctxn("/p", 1)), &ctxn("/p", 1))
        .unwrap();
    t.replay(&hdr(5, 1, &ctxn("/p/x", 3)), &ctxn("/p/x", 3))
        .unwrap();
    assert_eq!(t.persisted_owner_and_cversion("/p").unwrap().1, 3);
    assert_eq!(t.stat("/p").unwrap().pzxid, 5);
    // An older create of an existing node: nothing moves backwards.
    t.replay(&hdr(3, 1, &ctxn("/p/x", 2)), &ctxn("/p/x", 2))
        .unwrap();
    assert_eq!(t.persisted_owner_and_cversion("/p").unwrap().1, 3);
    assert_eq!(t.stat("/p").unwrap().pzxid, 5);
    // A newer one on an existing node does move them.
    t.replay(&hdr(7, 1, &ctxn("/p/x", 4)), &ctxn("/p/x", 4))
        .unwrap();
    assert_eq!(t.persisted_owner_and_cversion("/p").unwrap().1, 4);
    assert_eq!(t.stat("/p").unwrap().pzxid, 7);
    // Deleting a missing child still moves the parent's pzxid forward (only forward).
    let d = Txn::Delete {
        path: "/p/gone".into(),
    };
    t.replay(&hdr(9, 1, &d), &d).unwrap();
    assert_eq!(t.stat("/p").unwrap().pzxid, 9);
    t.replay(&hdr(8, 1, &d), &d).unwrap();
    assert_eq!(t.stat("/p").unwrap().pzxid, 9);
    // Deleting a node that (in the fuzzy snapshot) has children removes the subtree.
    t.replay(&hdr(10, 1, &ctxn("/p/x/y", 1)), &ctxn("/p/x/y", 1))
        .unwrap();
    let d = Txn::Delete {
        path: "/p/x".into(),
    };
    t.replay(&hdr(11, 1, &d), &d).unwrap();
    assert!(t.stat("/p/x").is_none() && t.stat("/p/x/y").is_none());
    t.check_invariants();
    // Sessions come and go in replay too, with their ephemerals.
    let cs = Txn::CreateSession { timeout_ms: 5000 };
    t.replay(&hdr(12, 42, &cs), &cs).unwrap();
    let e = Txn::Create(CreateTxn {
        ephemeral: true,
        ..match ctxn("/p/e", 5) {
            Txn::Create(c) => c,
            _ => unreachable!(),
        }
    });
    t.replay(&hdr(13, 42, &e), &e).unwrap();
    assert_eq!(t.ephemerals_of(42), vec!["/p/e".to_string()]);
    let close = Txn::CloseSession {
        paths_to_delete: vec![],
    };
    t.replay(&hdr(14, 42, &close), &close).unwrap();
    assert!(!t.session_exists(42));
    assert!(
        t.stat("/p/e").is_none(),
        "ephemerals missing from the txn list still go"
    );
    t.check_invariants();
}

#[test]
fn apply_refuses_what_prep_never_emits() {
    let mut h = Harness::default();
    h.create("/a").unwrap();
    h.create("/a/b").unwrap();
    let a = h.apply_txn(1, &Txn::Delete { path: "/a".into() });
    assert_eq!(a.result, Err(NotEmpty));
    assert!(h.tree.stat("/a/b").is_some());
    let a = h.apply_txn(1, &Txn::Multi(vec![Txn::CreateSession { timeout_ms: 1 }]));
    assert_eq!(a.result, Err(MarshallingError));
    let a = h.apply_txn(1, &ctxn("/a/", 1));
    assert_eq!(a.result, Err(BadArguments));
    let a = h.apply_txn(1, &ctxn("/nope/x", 1));
    assert_eq!(a.result, Err(NoNode));
    h.tree.check_invariants();
}

#[test]
fn requests_prep_does_not_take() {
    let h = Harness::default();
    let c = Caller {
        session_id: 1,
        auth: &[],
    };
    assert_eq!(
        h.tree.prep(&c, &get_data("/", false), 0),
        Txn::Error(Unimplemented)
    );
    assert_eq!(
        h.tree.prep(
            &c,
            &Request::Reconfig(corral_proto::request::ReconfigRequest {
                joining_servers: None,
                leaving_servers: None,
                new_members: None,
                cur_config_id: -1
            }),
            0
        ),
        Txn::Error(ReconfigDisabled)
    );
    let mut h = Harness::default();
    assert_eq!(h.read(&delete("/", -1)), Err(Unimplemented));
    assert_eq!(h.watch_as(1, &get_data("/", false)).0, Err(Unimplemented));
    let _ = (
        PathVersion {
            path: String::new(),
            version: 0,
        },
        SetWatches::default(),
    );
}

#[test]
fn reconfig_writes_the_config_node() {
    let mut h = Harness::default();
    let c = Caller {
        session_id: 1,
        auth: &[],
    };
    assert_eq!(
        h.tree.prep_reconfig(&c, Bytes::from_static(b"x")),
        Txn::Error(NoAuth)
    );
    let sup = [Id::new("super", "")];
    let txn = h.tree.prep_reconfig(
        &Caller {
            session_id: 1,
            auth: &sup,
        },
        Bytes::from_static(b"server.1=x\nversion=1"),
    );
    let a = h.apply_txn(1, &txn);
    match a.result {
        Ok(Response::GetData {
            data: Some(d),
            stat,
        }) => {
            assert_eq!(&d[..], b"server.1=x\nversion=1");
            assert_eq!((stat.version, stat.aversion), (-1, -1));
        }
        other => panic!("{other:?}"),
    }
    h.tree.check_invariants();
}

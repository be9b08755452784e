//! Watch semantics: every event kind, one-shot vs persistent vs persistent-recursive, the
//! order of events within one txn, one event per session per trigger, ACL filtering of
//! events, setWatches, addWatch, checkWatches / removeWatches and the watch reports.

mod common;
use common::*;
use corral_proto::request::SetWatches;
use corral_proto::{Acl, ErrorCode, EventType, Id, Request, Response};
use corral_tree::Caller;
use EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};

fn ev(session: i64, t: EventType, p: &str) -> (i64, EventType, String) {
    (session, t, p.to_string())
}

fn watch(h: &mut Harness, session: i64, req: &Request) {
    let r = h.read_as(session, &ip(), req);
    assert!(r.is_ok() || r == Err(ErrorCode::NoNode), "{r:?}");
}

#[test]
fn standard_watches_fire_once_per_kind() {
    let mut h = Harness::default();
    h.create("/w").unwrap();
    watch(&mut h, 2, &exists("/w/a", true));
    watch(&mut h, 3, &get_children("/w", true));
    h.create("/w/a").unwrap();
    assert_eq!(
        h.take_events(),
        vec![ev(2, NodeCreated, "/w/a"), ev(3, NodeChildrenChanged, "/w")]
    );
    // Fired watches are gone.
    h.create("/w/b").unwrap();
    assert_eq!(h.take_events(), vec![]);

    watch(&mut h, 2, &get_data("/w/a", true));
    watch(&mut h, 3, &exists("/w/a", true));
    h.write(&set_data("/w/a", b"x", -1)).unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            ev(2, NodeDataChanged, "/w/a"),
            ev(3, NodeDataChanged, "/w/a")
        ]
    );

    // setACL fires nothing.
    watch(&mut h, 2, &get_data("/w/a", true));
    h.write(&set_acl("/w/a", Acl::open_unsafe(), -1)).unwrap();
    assert_eq!(h.take_events(), vec![]);

    watch(&mut h, 3, &get_children("/w/a", true));
    watch(&mut h, 4, &get_children("/w", true));
    h.write(&delete("/w/a", -1)).unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            ev(2, NodeDeleted, "/w/a"),
            ev(3, NodeDeleted, "/w/a"),
            ev(4, NodeChildrenChanged, "/w")
        ]
    );
    assert_eq!(h.tree.watch_count(), 0);
}

#[test]
fn registration_rules_on_missing_or_forbidden_nodes() {
    let mut h = Harness::default();
    assert_eq!(
        h.read_as(2, &ip(), &exists("/x", true)),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        h.read_as(2, &ip(), &get_data("/y", true)),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        h.read_as(2, &ip(), &get_children("/y", true)),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(h.tree.watches_by_path(), vec![("/x".to_string(), vec![2])]);
    // getData / getChildren arm a watch only when the ACL check passes; exists checks no
    // ACL at all in 3.8.0 [obs], so it arms one anyway.
    let secret = vec![Acl::new(31, "digest", "alice:h")];
    h.write(&create_acl("/s", secret)).unwrap();
    assert_eq!(
        h.read_as(2, &ip(), &get_data("/s", true)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        h.read_as(2, &ip(), &get_children("/s", true)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(h.tree.watch_count(), 1);
    assert!(h.read_as(2, &ip(), &exists("/s", true)).is_ok());
    assert_eq!(h.tree.watch_count(), 2);
    h.create("/x").unwrap();
    assert_eq!(h.take_events(), vec![ev(2, NodeCreated, "/x")]);
}

#[test]
fn persistent_watch_sees_everything_on_its_path_and_survives() {
    let mut h = Harness::default();
    assert_eq!(h.watch_as(2, &add_watch("/p", 0)).0, Ok(Response::AddWatch));
    h.create("/p").unwrap();
    h.create("/p/c").unwrap();
    h.write(&set_data("/p", b"1", -1)).unwrap();
    h.write(&set_data("/p/c", b"1", -1)).unwrap();
    h.write(&delete("/p/c", -1)).unwrap();
    h.write(&delete("/p", -1)).unwrap();
    h.create("/p").unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            ev(2, NodeCreated, "/p"),
            ev(2, NodeChildrenChanged, "/p"),
            ev(2, NodeDataChanged, "/p"),
            ev(2, NodeChildrenChanged, "/p"),
            ev(2, NodeDeleted, "/p"),
            ev(2, NodeCreated, "/p"),
        ]
    );
    assert_eq!(
        h.tree.watch_count(),
        2,
        "a persistent watch sits in both tables"
    );
}

#[test]
fn persistent_and_standard_watches_on_one_path_stay_apart() {
    // 3.8 kept one mode per (watcher, path): a getData watch downgraded a persistent watch
    // to one-shot [obs]. Here (as in 3.9.2+, ZOOKEEPER-4466) the persistent watch stays.
    let mut h = Harness::default();
    h.create("/p").unwrap();
    h.watch_as(2, &add_watch("/p", 0)).0.unwrap();
    watch(&mut h, 2, &get_data("/p", true));
    h.write(&set_data("/p", b"1", -1)).unwrap();
    h.write(&set_data("/p", b"2", -1)).unwrap();
    assert_eq!(
        h.take_events(),
        vec![ev(2, NodeDataChanged, "/p"), ev(2, NodeDataChanged, "/p")]
    );
}

#[test]
fn recursive_watch_covers_the_subtree_but_never_children_changed() {
    let mut h = Harness::default();
    h.watch_as(2, &add_watch("/r", 1)).0.unwrap();
    h.create("/r").unwrap();
    h.create("/r/a").unwrap();
    h.write(&create("/r/a/b", b"", 0)).unwrap();
    h.write(&set_data("/r/a/b", b"x", -1)).unwrap();
    h.write(&delete("/r/a/b", -1)).unwrap();
    h.write(&set_data("/r", b"x", -1)).unwrap();
    h.create("/rx").unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            ev(2, NodeCreated, "/r"),
            ev(2, NodeCreated, "/r/a"),
            ev(2, NodeCreated, "/r/a/b"),
            ev(2, NodeDataChanged, "/r/a/b"),
            ev(2, NodeDeleted, "/r/a/b"),
            ev(2, NodeDataChanged, "/r"),
        ]
    );
    // A recursive watch on the root sees everything, /zookeeper included.
    h.watch_as(3, &add_watch("/", 1)).0.unwrap();
    h.create("/zookeeper/q").unwrap();
    assert_eq!(h.take_events(), vec![ev(3, NodeCreated, "/zookeeper/q")]);
}

#[test]
fn order_within_a_txn_and_one_event_per_session_per_trigger() {
    let mut h = Harness::default();
    h.create("/o").unwrap();
    h.create("/o/n").unwrap();
    // Session 2: data + exists + child + persistent + recursive-ancestor on /o/n.
    watch(&mut h, 2, &get_data("/o/n", true));
    watch(&mut h, 2, &exists("/o/n", true));
    watch(&mut h, 2, &get_children("/o/n", true));
    h.watch_as(2, &add_watch("/o/n", 0)).0.unwrap();
    h.watch_as(2, &add_watch("/", 1)).0.unwrap();
    // Session 3: only a child watch on /o/n (child-table NodeDeleted).
    watch(&mut h, 3, &get_children("/o/n", true));
    // Session 4: data watch on /o/n and child watch on the parent.
    watch(&mut h, 4, &get_data("/o/n", true));
    watch(&mut h, 4, &get_children("/o", true));
    // Session 1: child watch on the parent only.
    watch(&mut h, 1, &get_children("/o", true));
    h.write(&delete("/o/n", -1)).unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            // data table on the path first, ascending session ids, each once
            ev(2, NodeDeleted, "/o/n"),
            ev(4, NodeDeleted, "/o/n"),
            // then the child table on the path, minus sessions already told
            ev(3, NodeDeleted, "/o/n"),
            // then the parent
            ev(1, NodeChildrenChanged, "/o"),
            ev(4, NodeChildrenChanged, "/o"),
        ]
    );
    // Session 2's persistent watch on /o/n survived; its one-shot ones are gone.
    h.create("/o/n").unwrap();
    assert_eq!(h.take_events(), vec![ev(2, NodeCreated, "/o/n")]);
    h.write(&set_data("/o/n", b"x", -1)).unwrap();
    assert_eq!(h.take_events(), vec![ev(2, NodeDataChanged, "/o/n")]);
}

#[test]
fn multi_fires_per_op_in_order_and_a_failed_multi_fires_nothing() {
    let mut h = Harness::default();
    h.create("/m").unwrap();
    h.watch_as(2, &add_watch("/m/a", 0)).0.unwrap();
    watch(&mut h, 3, &get_children("/m", true));
    let ops = vec![
        create("/m/a", b"", 0),
        set_data("/m/a", b"1", -1),
        set_data("/m/a", b"2", -1),
    ];
    h.write(&Request::Multi(ops)).unwrap();
    // [obs] one event per op, even for the same path and session.
    assert_eq!(
        h.take_events(),
        vec![
            ev(2, NodeCreated, "/m/a"),
            ev(3, NodeChildrenChanged, "/m"),
            ev(2, NodeDataChanged, "/m/a"),
            ev(2, NodeDataChanged, "/m/a"),
        ]
    );
    watch(&mut h, 3, &get_children("/m", true));
    let bad = vec![delete("/m/a", -1), set_data("/m/none", b"", -1)];
    h.write(&Request::Multi(bad)).unwrap();
    assert_eq!(h.take_events(), vec![]);
    assert_eq!(
        h.tree.watches_by_path().len(),
        1,
        "the one-shot child watch is still armed"
    );
}

#[test]
fn events_are_dropped_for_watchers_without_read() {
    let mut h = Harness::default();
    let alice = digest_auth("alice", "h");
    let alice_only = vec![Acl::new(31, "digest", "alice:h")];
    let open = Acl::open_unsafe();
    h.write(&create_acl("/d", open.clone())).unwrap();
    // Session 2 (ip only) and 3 (alice) watch things that will become alice-only.
    watch(&mut h, 2, &exists("/d/s", true));
    h.read_as(3, &alice, &exists("/d/s", true)).unwrap_err();
    h.write(&create_acl("/d/s", alice_only.clone())).unwrap();
    // NodeCreated is checked against the new node's ACL.
    assert_eq!(h.take_events(), vec![ev(3, NodeCreated, "/d/s")]);
    // The one-shot watch of session 2 was consumed all the same.
    h.write_as(1, &alice, &set_data("/d/s", b"", -1)).unwrap();
    assert_eq!(h.take_events(), vec![]);
    // NodeChildrenChanged is checked against the parent's ACL.
    h.write(&create_acl("/p", alice_only.clone())).unwrap();
    h.write_as(
        1,
        &alice,
        &set_acl(
            "/p",
            vec![
                Acl::new(1, "world", "anyone"),
                Acl::new(31, "digest", "alice:h"),
            ],
            -1,
        ),
    )
    .unwrap();
    watch(&mut h, 2, &get_children("/p", true));
    h.write_as(1, &alice, &set_acl("/p", alice_only.clone(), -1))
        .unwrap();
    h.write_as(1, &alice, &create_acl("/p/c", open.clone()))
        .unwrap();
    assert_eq!(h.take_events(), vec![]);
    // NodeDeleted uses the ACL the node had; a recursive watcher needs READ on the node.
    h.watch_as(2, &add_watch("/d", 1)).0.unwrap();
    h.write(&create_acl("/d/open", open)).unwrap();
    h.write_as(1, &alice, &delete("/d/s", -1)).unwrap();
    h.write(&delete("/d/open", -1)).unwrap();
    assert_eq!(
        h.take_events(),
        vec![ev(2, NodeCreated, "/d/open"), ev(2, NodeDeleted, "/d/open")]
    );
    // Once session 2 authenticates as alice (the node reports it), it sees them.
    h.tree.set_watcher_auth(2, &alice);
    h.write(&create_acl("/d/s2", alice_only)).unwrap();
    assert_eq!(h.take_events(), vec![ev(2, NodeCreated, "/d/s2")]);
    // super sees everything.
    let sup = [Id::new("super", "")];
    h.tree
        .read(
            &Caller {
                session_id: 5,
                auth: &sup,
            },
            &exists("/d/s3", true),
        )
        .unwrap_err();
    h.write(&create_acl("/d/s3", vec![Acl::new(31, "digest", "bob:h")]))
        .unwrap();
    assert!(h.take_events().contains(&ev(5, NodeCreated, "/d/s3")));
}

#[test]
fn set_watches_answers_or_arms_against_relative_zxid() {
    let mut h = Harness::default();
    h.create("/a").unwrap();
    let rel = h.zxid;
    h.create("/b").unwrap();
    h.write(&set_data("/b", b"x", -1)).unwrap();
    h.create("/b/c").unwrap();
    let (r, now) = h.watch_as(
        2,
        &set_watches(
            rel,
            &["/a", "/b", "/gone"],
            &["/a", "/none"],
            &["/a", "/b", "/gone2"],
        ),
    );
    assert_eq!(r, Ok(Response::Empty));
    let now: Vec<_> = now
        .into_iter()
        .map(|n| (n.session_id, n.event_type, n.path))
        .collect();
    assert_eq!(
        now,
        vec![
            ev(2, NodeDataChanged, "/b"),
            ev(2, NodeDeleted, "/gone"),
            ev(2, NodeCreated, "/a"),
            ev(2, NodeChildrenChanged, "/b"),
            ev(2, NodeDeleted, "/gone2"),
        ]
    );
    // Armed: data /a, exist /none, child /a.
    assert_eq!(
        h.tree.watches_by_path(),
        vec![("/a".to_string(), vec![2]), ("/none".to_string(), vec![2])]
    );
    assert_eq!(h.tree.watch_count(), 3);
    h.create("/a/x").unwrap();
    h.create("/none").unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            ev(2, NodeChildrenChanged, "/a"),
            ev(2, NodeCreated, "/none")
        ]
    );
    // setWatches2 re-adds persistent and recursive watches unconditionally.
    let sw = SetWatches {
        relative_zxid: h.zxid,
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec!["/r".into()],
        ..SetWatches::default()
    };
    assert_eq!(
        h.watch_as(3, &Request::SetWatches2(sw)),
        (Ok(Response::Empty), vec![])
    );
    h.create("/p").unwrap();
    h.create("/r").unwrap();
    h.create("/r/x").unwrap();
    assert_eq!(
        h.take_events(),
        vec![
            ev(3, NodeCreated, "/p"),
            ev(3, NodeCreated, "/r"),
            ev(3, NodeCreated, "/r/x")
        ]
    );
}

#[test]
fn add_check_and_remove_watches() {
    let mut h = Harness::default();
    assert_eq!(
        h.watch_as(2, &add_watch("/x", 2)).0,
        Err(ErrorCode::MarshallingError)
    );
    watch(&mut h, 2, &exists("/x", true));
    watch(&mut h, 2, &get_children("/", true));
    h.watch_as(2, &add_watch("/r", 1)).0.unwrap();
    // checkWatches by table.
    assert_eq!(
        h.watch_as(2, &check_watches("/x", 2)).0,
        Ok(Response::Empty)
    );
    assert_eq!(
        h.watch_as(2, &check_watches("/x", 1)).0,
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        h.watch_as(2, &check_watches("/x", 3)).0,
        Ok(Response::Empty)
    );
    // 3.8's checkWatches answers for any session's watch on the exact path [obs].
    assert_eq!(
        h.watch_as(3, &check_watches("/x", 3)).0,
        Ok(Response::Empty)
    );
    assert_eq!(
        h.watch_as(3, &check_watches("/nobody", 3)).0,
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        h.watch_as(2, &check_watches("/x", 4)).0,
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(
        h.watch_as(2, &check_watches("/x", 5)).0,
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(
        h.watch_as(2, &check_watches("/x", 9)).0,
        Err(ErrorCode::MarshallingError)
    );
    // 3.8: a recursive watch is in both tables [obs], so Children finds and removes it.
    assert_eq!(
        h.watch_as(2, &check_watches("/r", 1)).0,
        Ok(Response::Empty)
    );
    assert_eq!(
        h.watch_as(2, &remove_watches("/r", 1)).0,
        Ok(Response::Empty)
    );
    assert_eq!(
        h.watch_as(2, &remove_watches("/r", 1)).0,
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        h.watch_as(2, &remove_watches("/r", 2)).0,
        Ok(Response::Empty)
    );
    assert_eq!(
        h.watch_as(2, &remove_watches("/r", 3)).0,
        Err(ErrorCode::NoWatcher)
    );
    // Removal is per session.
    watch(&mut h, 3, &exists("/x", true));
    assert_eq!(
        h.watch_as(2, &remove_watches("/x", 3)).0,
        Ok(Response::Empty)
    );
    assert_eq!(h.tree.watches_by_path(), vec![("/x".to_string(), vec![3])]);
    h.create("/x").unwrap();
    h.create("/y").unwrap();
    assert_eq!(
        h.take_events(),
        vec![ev(3, NodeCreated, "/x"), ev(2, NodeChildrenChanged, "/")]
    );
}

#[test]
fn reports_counts_and_session_cleanup() {
    let mut h = Harness::default();
    h.create("/a").unwrap();
    watch(&mut h, 2, &get_data("/a", true));
    watch(&mut h, 2, &get_children("/a", true));
    watch(&mut h, 3, &exists("/b", true));
    h.watch_as(3, &add_watch("/a", 0)).0.unwrap();
    // mntr counts both tables; wchc / wchp / wchs show the data table, like 3.8.
    assert_eq!(h.tree.watch_count(), 5);
    assert_eq!(
        h.tree.watches_by_session(),
        vec![
            (2, vec!["/a".to_string()]),
            (3, vec!["/a".to_string(), "/b".to_string()])
        ]
    );
    assert_eq!(
        h.tree.watches_by_path(),
        vec![("/a".to_string(), vec![2, 3]), ("/b".to_string(), vec![3])]
    );
    assert_eq!(h.tree.watch_summary(), (2, 2, 3));
    h.tree.remove_watches_of(3);
    h.tree.check_invariants();
    assert_eq!(h.tree.watch_count(), 2);
    h.create("/b").unwrap();
    assert_eq!(h.take_events(), vec![]);
    h.tree.remove_watches_of(2);
    assert_eq!(h.tree.watch_count(), 0);
    assert_eq!(h.tree.watch_summary(), (0, 0, 0));
}

//! Every client opcode against a real server (ZooKeeper 3.8 by default; see
//! `CORRAL_TEST_TARGET`), through a chrooted client.

mod common;

use bytes::Bytes;
use common::{chrooted, opts, shared_server, within};
use corral_client::proto::request::PathWatch;
use corral_client::proto::{Request, Response};
use corral_client::{
    acls, perms, Acl, AddWatchMode, CreateMode, Error, Op, OpResult, ReadOp, ReadResult,
    SessionState, WatcherType, ANY_VERSION,
};
use std::time::Duration;

const OPEN: fn() -> Vec<Acl> = acls::open;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_modes_and_errors() {
    let srv = shared_server();
    let zk = chrooted(&srv.connect_string(), "create").await;

    assert_eq!(
        zk.create("/p", b"d", &OPEN(), CreateMode::Persistent)
            .await
            .unwrap(),
        "/p"
    );
    assert_eq!(
        zk.create("/p", b"d", &OPEN(), CreateMode::Persistent).await,
        Err(Error::NodeExists)
    );
    assert_eq!(
        zk.create("/missing/x", b"", &OPEN(), CreateMode::Persistent)
            .await,
        Err(Error::NoNode)
    );
    // create2 returns the stat.
    let (path, stat) = zk
        .create2("/p/c2", b"abc", &OPEN(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(path, "/p/c2");
    assert_eq!(stat.data_length, 3);
    assert_eq!(stat.version, 0);
    assert_eq!(stat.ephemeral_owner, 0);

    // Sequential names carry a 10-digit suffix from the parent's cversion.
    let s1 = zk
        .create("/p/seq-", b"", &OPEN(), CreateMode::PersistentSequential)
        .await
        .unwrap();
    let s2 = zk
        .create("/p/seq-", b"", &OPEN(), CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(
        s1.starts_with("/p/seq-") && s1.len() == "/p/seq-".len() + 10,
        "{s1}"
    );
    assert!(s2 > s1);

    // Ephemerals belong to the session and cannot have children.
    let (e, st) = zk
        .create2("/p/eph", b"", &OPEN(), CreateMode::Ephemeral)
        .await
        .unwrap();
    assert_eq!(st.ephemeral_owner, zk.session_id());
    assert_eq!(
        zk.create(&format!("{e}/child"), b"", &OPEN(), CreateMode::Persistent)
            .await,
        Err(Error::NoChildrenForEphemerals)
    );
    let es = zk
        .create("/p/eseq-", b"", &OPEN(), CreateMode::EphemeralSequential)
        .await
        .unwrap();
    let mut ephemerals = zk.get_ephemerals("/").await.unwrap();
    ephemerals.sort();
    assert_eq!(ephemerals, vec![e.clone(), es.clone()]);
    assert_eq!(zk.get_ephemerals("/p/eph").await.unwrap(), vec![e.clone()]);

    // Containers (op 19) and TTL nodes (op 21, needs extendedTypesEnabled).
    let (c, cst) = zk.create_container("/cont", b"x", &OPEN()).await.unwrap();
    assert_eq!(c, "/cont");
    assert_eq!(cst.ephemeral_owner, 0, "container owner is masked");
    let (t, tst) = zk
        .create_ttl("/ttl", b"", &OPEN(), Duration::from_secs(60), false)
        .await
        .unwrap();
    assert_eq!(t, "/ttl");
    assert_eq!(tst.ephemeral_owner, 0, "ttl owner is masked");
    let (ts, _) = zk
        .create_ttl("/ttlseq-", b"", &OPEN(), Duration::from_secs(60), true)
        .await
        .unwrap();
    assert!(ts.starts_with("/ttlseq-"));
    // Plain create (op 1) also works for containers / TTL (the client picks 19 / 21).
    zk.create("/cont2", b"", &OPEN(), CreateMode::Container)
        .await
        .unwrap();
    zk.create(
        "/ttl2",
        b"",
        &OPEN(),
        CreateMode::PersistentWithTtl { ttl_ms: 5000 },
    )
    .await
    .unwrap();

    // Null data: create (op 1) and create2 (op 15) with a null buffer, read back as None,
    // watched or not.
    assert_eq!(
        zk.create_opt("/null", None, &OPEN(), CreateMode::Persistent)
            .await
            .unwrap(),
        "/null"
    );
    let (path, st) = zk
        .create2_opt("/null2", None, &OPEN(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!((path.as_str(), st.data_length), ("/null2", 0));
    assert_eq!(zk.get_data_opt("/null").await.unwrap().0, None);
    let (d, _, w) = zk.get_data_opt_w("/null2").await.unwrap();
    assert_eq!(d, None);
    zk.set_data("/null2", b"", ANY_VERSION).await.unwrap();
    assert_eq!(
        within(5, "null2 changed", w).await.event_type,
        corral_client::EventType::NodeDataChanged
    );
    assert_eq!(
        zk.get_data_opt("/null2").await.unwrap().0,
        Some(Bytes::new())
    );
    assert_eq!(
        zk.get_data_opt("/p").await.unwrap().0,
        Some(Bytes::from("d"))
    );
    // Null data with containers (19) and TTL nodes (21).
    zk.create_opt("/nullc", None, &OPEN(), CreateMode::Container)
        .await
        .unwrap();
    let (_, st) = zk
        .create2_opt(
            "/nullt",
            None,
            &OPEN(),
            CreateMode::PersistentWithTtl { ttl_ms: 60_000 },
        )
        .await
        .unwrap();
    assert_eq!(st.data_length, 0);

    // Client-side validation, with the Java client's messages.
    fn invalid<T>(m: &str) -> Result<T, Error> {
        Err(Error::InvalidArgument(m.to_owned()))
    }
    assert_eq!(
        zk.create("rel", b"", &OPEN(), CreateMode::Persistent).await,
        invalid("Path must start with / character")
    );
    assert_eq!(
        zk.create("/a/", b"", &OPEN(), CreateMode::Persistent).await,
        invalid("Path must not end with / character")
    );
    assert_eq!(
        zk.create("/a//", b"", &OPEN(), CreateMode::PersistentSequential)
            .await,
        invalid("Invalid path string \"/a//1\" caused by empty node name specified @3")
    );
    assert_eq!(
        zk.get_data("/a/../b").await,
        invalid("Invalid path string \"/a/../b\" caused by relative paths not allowed @4")
    );
    assert_eq!(zk.exists("").await, invalid("Path length must be > 0"));
    assert_eq!(
        zk.get_ephemerals("").await,
        invalid("Path length must be > 0")
    );
    assert_eq!(
        zk.create(
            "/x",
            b"",
            &OPEN(),
            CreateMode::PersistentWithTtl { ttl_ms: 0 }
        )
        .await,
        invalid("ttl must be positive and cannot be larger than: 1099511627775")
    );
    // A sequential node under "/" of the chroot is valid ("/p/" + digits here).
    let s3 = zk
        .create("/p/", b"", &OPEN(), CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(
        s3.starts_with("/p/") && s3.len() == "/p/".len() + 10,
        "{s3}"
    );
    // delete("/") under a chroot is the root's delete, not the chroot node's (as in Java).
    assert_eq!(zk.delete("/", ANY_VERSION).await, Err(Error::BadArguments));
    assert!(zk.exists("/").await.unwrap().is_some());
    // `create -s /` without a chroot: the server names the node /<10 digits>.
    let root = opts().connect(&srv.connect_string()).await.unwrap();
    let top = root
        .create("/", b"", &OPEN(), CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(
        top.len() == 11 && top[1..].bytes().all(|b| b.is_ascii_digit()),
        "{top}"
    );
    root.delete(&top, ANY_VERSION).await.unwrap();
    root.close().await.unwrap();
    assert_eq!(
        zk.create("/x", b"", &[], CreateMode::Persistent).await,
        Err(Error::InvalidAcl)
    );
    // Server-side ACL validation.
    assert_eq!(
        zk.create(
            "/x",
            b"",
            &[Acl::new(perms::ALL, "nosuchscheme", "x")],
            CreateMode::Persistent
        )
        .await,
        Err(Error::InvalidAcl)
    );

    // create_all makes the ancestors.
    zk.create_all("/deep/a/b/c", b"leaf", &OPEN())
        .await
        .unwrap();
    assert_eq!(&zk.get_data("/deep/a/b/c").await.unwrap().0[..], b"leaf");
    zk.create_all("/deep/a/b/c", b"leaf", &OPEN())
        .await
        .unwrap();
    zk.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_versions_and_deletes() {
    let srv = shared_server();
    let zk = chrooted(&srv.connect_string(), "rw").await;
    zk.create("/n", b"one", &OPEN(), CreateMode::Persistent)
        .await
        .unwrap();

    assert_eq!(zk.exists("/nope").await.unwrap(), None);
    let st = zk.exists("/n").await.unwrap().expect("exists");
    assert_eq!(st.data_length, 3);

    let (d, st) = zk.get_data("/n").await.unwrap();
    assert_eq!(&d[..], b"one");
    assert_eq!(zk.get_data("/nope").await, Err(Error::NoNode));

    let st2 = zk.set_data("/n", b"two", st.version).await.unwrap();
    assert_eq!(st2.version, st.version + 1);
    assert!(st2.mzxid > st.mzxid);
    assert_eq!(
        zk.set_data("/n", b"three", st.version).await,
        Err(Error::BadVersion)
    );
    zk.set_data("/n", b"three", ANY_VERSION).await.unwrap();
    // Empty and null data.
    zk.set_data("/n", b"", ANY_VERSION).await.unwrap();
    let (d, st) = zk.get_data("/n").await.unwrap();
    assert!(d.is_empty());
    assert_eq!(st.data_length, 0);

    // Children.
    for c in ["a", "b", "c"] {
        zk.create(&format!("/n/{c}"), b"", &OPEN(), CreateMode::Persistent)
            .await
            .unwrap();
    }
    let mut kids = zk.get_children("/n").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["a", "b", "c"]);
    let (kids2, st) = zk.get_children2("/n").await.unwrap();
    assert_eq!(kids2.len(), 3);
    assert_eq!(st.num_children, 3);
    assert_eq!(st.cversion, 3);
    assert_eq!(zk.get_children("/nope").await, Err(Error::NoNode));
    zk.create("/n/a/x", b"", &OPEN(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(zk.get_all_children_number("/n").await.unwrap(), 4);

    // Deletes.
    assert_eq!(zk.delete("/n", ANY_VERSION).await, Err(Error::NotEmpty));
    assert_eq!(zk.delete("/n/b", 5).await, Err(Error::BadVersion));
    zk.delete("/n/b", 0).await.unwrap();
    assert_eq!(zk.delete("/n/b", ANY_VERSION).await, Err(Error::NoNode));

    // sync.
    zk.sync("/n").await.unwrap();

    // The raw API sees exactly what the server sent.
    let r = zk
        .raw_request(Request::GetData(PathWatch {
            path: "/rw/n".into(),
            watch: false,
        }))
        .await
        .unwrap();
    assert!(r.zxid > 0);
    assert!(matches!(r.response, Response::GetData { .. }));
    zk.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_auth_and_who_am_i() {
    let srv = shared_server();
    let zk = chrooted(&srv.connect_string(), "acl").await;
    let cs = format!("{}/acl", srv.connect_string());

    let (acl, st) = zk.get_acl("/").await.unwrap();
    assert_eq!(acl, acls::open());
    assert_eq!(st.aversion, 0);

    // A node only alice can read.
    let alice = acls::digest(perms::ALL, "alice", "secret");
    zk.create(
        "/secret",
        b"s",
        std::slice::from_ref(&alice),
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    assert_eq!(zk.get_data("/secret").await, Err(Error::NoAuth));
    let infos = zk.who_am_i().await.unwrap();
    assert!(infos.iter().any(|i| i.auth_scheme == "ip"), "{infos:?}");
    zk.add_auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(&zk.get_data("/secret").await.unwrap().0[..], b"s");
    let infos = zk.who_am_i().await.unwrap();
    assert!(
        infos
            .iter()
            .any(|i| i.auth_scheme == "digest" && i.user == "alice"),
        "{infos:?}"
    );
    let (acl, _) = zk.get_acl("/secret").await.unwrap();
    assert_eq!(acl, vec![alice.clone()]);

    // setACL checks aversion (after ADMIN permission).
    assert_eq!(
        zk.set_acl("/secret", &acls::open(), 5).await,
        Err(Error::BadVersion)
    );
    let st = zk.set_acl("/secret", &acls::read_only(), 0).await.unwrap();
    assert_eq!(st.aversion, 1);
    assert_eq!(
        zk.set_acl("/secret", &acls::open(), 1).await,
        Err(Error::NoAuth)
    );
    assert_eq!(
        zk.set_data("/secret", b"w", ANY_VERSION).await,
        Err(Error::NoAuth)
    );

    // The "auth" scheme expands to the caller's ids.
    zk.create("/mine", b"", &acls::creator_all(), CreateMode::Persistent)
        .await
        .unwrap();
    let (acl, _) = zk.get_acl("/mine").await.unwrap();
    assert_eq!(acl, vec![alice]);

    // Credentials given at connect time.
    let other = opts()
        .auth("digest", b"alice:secret")
        .connect(&cs)
        .await
        .unwrap();
    other.get_data("/mine").await.unwrap();
    other.close().await.unwrap();

    // An unknown scheme fails the session for good.
    let bad = opts().connect(&cs).await.unwrap();
    assert_eq!(bad.add_auth("nosuch", b"x").await, Err(Error::AuthFailed));
    assert_eq!(bad.state(), SessionState::AuthFailed);
    assert_eq!(bad.get_data("/").await, Err(Error::AuthFailed));

    zk.close().await.unwrap();
}

/// A null credential (what zkCli's `addauth digest` without a password sends) is an auth
/// packet whose buffer has length -1; ZooKeeper's digest provider cannot read it and fails
/// the session (AuthFailed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_credential_fails_the_session() {
    let srv = shared_server();
    let zk = opts().connect(&srv.connect_string()).await.unwrap();
    assert_eq!(
        zk.add_auth_opt("digest", None).await,
        Err(Error::AuthFailed)
    );
    assert_eq!(zk.state(), SessionState::AuthFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_and_multi_read() {
    let srv = shared_server();
    let zk = chrooted(&srv.connect_string(), "multi").await;
    let res = zk
        .multi(&[
            Op::create("/m", b"0", &OPEN(), CreateMode::Persistent),
            Op::create("/m/s-", b"", &OPEN(), CreateMode::PersistentSequential),
            Op::set_data("/m", b"1", 0),
            Op::check("/m", 1),
            Op::create("/m/c", b"", &OPEN(), CreateMode::Container),
        ])
        .await
        .unwrap();
    assert_eq!(res.len(), 5);
    match &res[0] {
        OpResult::Create { path, .. } => assert_eq!(path, "/m"),
        other => panic!("{other:?}"),
    }
    match &res[1] {
        OpResult::Create { path, .. } => assert!(path.starts_with("/m/s-")),
        other => panic!("{other:?}"),
    }
    match &res[2] {
        OpResult::SetData { stat } => assert_eq!(stat.version, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(res[3], OpResult::Check);

    // Atomic failure: typed error naming the op, nothing applied.
    let err = zk
        .multi(&[
            Op::create("/m/new", b"", &OPEN(), CreateMode::Persistent),
            Op::check("/m", 7),
            Op::delete("/m/c", ANY_VERSION),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Multi {
            index: 1,
            error: Box::new(Error::BadVersion)
        }
    );
    assert_eq!(zk.exists("/m/new").await.unwrap(), None);
    let per_op = zk
        .multi_results(&[
            Op::create("/m/new", b"", &OPEN(), CreateMode::Persistent),
            Op::delete("/m/absent", ANY_VERSION),
            Op::set_data("/m", b"", ANY_VERSION),
        ])
        .await
        .unwrap();
    assert_eq!(
        per_op,
        vec![
            Err(Error::RolledBack),
            Err(Error::NoNode),
            Err(Error::RuntimeInconsistency)
        ]
    );

    // multiRead: independent results.
    let reads = zk
        .multi_read(&[
            ReadOp::GetData { path: "/m".into() },
            ReadOp::GetChildren { path: "/m".into() },
            ReadOp::GetData {
                path: "/absent".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(reads.len(), 3);
    match &reads[0] {
        Ok(ReadResult::GetData { data, stat }) => {
            assert_eq!(&data[..], b"1");
            assert_eq!(stat.version, 1);
        }
        other => panic!("{other:?}"),
    }
    match &reads[1] {
        Ok(ReadResult::GetChildren { children }) => assert_eq!(children.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(reads[2], Err(Error::NoNode));
    assert_eq!(zk.multi(&[]).await.unwrap(), vec![]);
    zk.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_management_config_and_close() {
    let srv = shared_server();
    let zk = chrooted(&srv.connect_string(), "wm").await;
    zk.create("/w", b"", &OPEN(), CreateMode::Persistent)
        .await
        .unwrap();

    assert_eq!(
        zk.check_watches("/w", WatcherType::Data).await,
        Err(Error::NoWatcher)
    );
    let (_, _, fut) = zk.get_data_w("/w").await.unwrap();
    zk.check_watches("/w", WatcherType::Data).await.unwrap();
    assert!(zk.has_local_watch("/w", WatcherType::Data).await.unwrap());
    zk.remove_watches("/w", WatcherType::Data, false)
        .await
        .unwrap();
    let ev = within(5, "DataWatchRemoved", fut).await;
    assert_eq!(ev.event_type, corral_client::EventType::DataWatchRemoved);
    assert_eq!(ev.path, "/w");
    assert_eq!(
        zk.check_watches("/w", WatcherType::Data).await,
        Err(Error::NoWatcher)
    );

    // No local watch: NoWatcher, even with `local`.
    assert_eq!(
        zk.remove_watches("/w", WatcherType::Children, true).await,
        Err(Error::NoWatcher)
    );
    // `local` still asks the server (as Java does): the server's watch goes too.
    let (_, cfut) = zk.get_children_w("/w").await.unwrap();
    zk.remove_watches("/w", WatcherType::Children, true)
        .await
        .unwrap();
    let ev = within(5, "ChildWatchRemoved", cfut).await;
    assert_eq!(ev.event_type, corral_client::EventType::ChildWatchRemoved);
    assert_eq!(
        zk.check_watches("/w", WatcherType::Children).await,
        Err(Error::NoWatcher)
    );
    assert_eq!(
        zk.remove_watches("/w", WatcherType::Children, true).await,
        Err(Error::NoWatcher)
    );
    // A watch the server no longer has (removed there by a raw request, which the client
    // does not track): without `local` the server's NoWatcher, with it the local watch is
    // removed anyway.
    let (_, _, dfut) = zk.get_data_w("/w").await.unwrap();
    zk.raw_request(Request::RemoveWatches(
        corral_client::proto::request::PathType {
            path: "/wm/w".into(),
            kind: WatcherType::Data.code(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        zk.remove_watches("/w", WatcherType::Data, false).await,
        Err(Error::NoWatcher)
    );
    assert!(zk.has_local_watch("/w", WatcherType::Data).await.unwrap());
    zk.remove_watches("/w", WatcherType::Data, true)
        .await
        .unwrap();
    let ev = within(5, "DataWatchRemoved", dfut).await;
    assert_eq!(
        (ev.event_type, ev.state),
        (
            corral_client::EventType::DataWatchRemoved,
            corral_client::KeeperState::SyncConnected
        )
    );

    // Persistent watch removal ends the stream.
    let mut s = zk.add_watch("/w", AddWatchMode::Persistent).await.unwrap();
    zk.remove_watches("/w", WatcherType::Any, false)
        .await
        .unwrap();
    let ev = within(5, "PersistentWatchRemoved", s.next()).await.unwrap();
    assert_eq!(
        ev.event_type,
        corral_client::EventType::PersistentWatchRemoved
    );
    assert!(s.next().await.is_none());

    // getConfig reads /zookeeper/config whatever the chroot.
    let (cfg, _) = zk.get_config().await.unwrap();
    let _ = String::from_utf8_lossy(&cfg);
    // Standalone servers refuse reconfig.
    let r = zk
        .reconfig(None, None, Some("server.1=127.0.0.1:2888:3888"), -1)
        .await;
    assert!(
        matches!(r, Err(Error::ReconfigDisabled) | Err(Error::Unimplemented)),
        "{r:?}"
    );

    // Negotiated session parameters.
    assert_ne!(zk.session_id(), 0);
    assert_eq!(zk.session_password().len(), 16);
    assert_eq!(zk.session_timeout(), Duration::from_secs(6));
    assert_eq!(zk.state(), SessionState::Connected);

    // close: ephemerals go, state is Closed, calls fail with Closed.
    let eph = zk
        .create("/w/e", b"", &OPEN(), CreateMode::Ephemeral)
        .await
        .unwrap();
    let watcher = common::opts()
        .connect(&format!("{}/wm", srv.connect_string()))
        .await
        .unwrap();
    let (_, gone) = watcher.exists_w(&eph).await.unwrap();
    zk.close().await.unwrap();
    assert_eq!(zk.state(), SessionState::Closed);
    assert_eq!(zk.get_data("/w").await, Err(Error::Closed));
    let ev = within(10, "ephemeral deletion", gone).await;
    assert_eq!(ev.event_type, corral_client::EventType::NodeDeleted);
    watcher.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeout_is_clamped_and_bytes_survive() {
    let srv = shared_server();
    let zk = corral_client::ClientOptions::new()
        .session_timeout(Duration::from_millis(1000))
        .connect(&srv.connect_string())
        .await
        .unwrap();
    // tickTime 2000 → min 4000 ms.
    assert_eq!(zk.session_timeout(), Duration::from_millis(4000));
    let big = vec![0xA5u8; 512 * 1024];
    zk.create("/big", &big, &OPEN(), CreateMode::Ephemeral)
        .await
        .unwrap();
    let (d, _) = zk.get_data("/big").await.unwrap();
    assert_eq!(d, Bytes::from(big));
    zk.close().await.unwrap();
}

//! Watches of every kind against a real server: one-shot data / exists / child watches as
//! futures, persistent and persistent-recursive watches as streams, event paths under a
//! chroot, the ordering of events before later replies, and the session's event stream
//! (each notification once; detached watches).

mod common;

use common::{chrooted, shared_server, within};
use corral_client::{
    acls, AddWatchMode, CreateMode, EventStream, EventType, KeeperState, SessionEvent,
    SessionState, WatchCounts, WatchStream, WatchedEvent, WatcherType, ANY_VERSION,
};
use std::time::Duration;

async fn expect(s: &mut WatchStream, t: EventType, path: &str) {
    let ev = within(5, "stream event", s.next())
        .await
        .expect("stream ended early");
    assert_eq!((ev.event_type, ev.path.as_str()), (t, path), "{ev:?}");
}

async fn expect_quiet(s: &mut WatchStream) {
    if let Ok(ev) = tokio::time::timeout(Duration::from_millis(300), s.next()).await {
        panic!("unexpected event {ev:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_fire_once_with_stripped_paths() {
    let srv = shared_server();
    let a = chrooted(&srv.connect_string(), "w1").await;
    let b = chrooted(&srv.connect_string(), "w1").await;
    let open = acls::open();

    // exists on a missing node → NodeCreated.
    let (none, created) = a.exists_w("/n").await.unwrap();
    assert!(none.is_none());
    b.create("/n", b"0", &open, CreateMode::Persistent)
        .await
        .unwrap();
    let ev = within(5, "NodeCreated", created).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/n")
    );

    // getData → NodeDataChanged, exactly once.
    let (_, _, changed) = a.get_data_w("/n").await.unwrap();
    // ZooKeeper 3.8 keeps one watch mode per (connection, path): a standard watch set on the
    // same path by the same connection would downgrade a persistent one. So the persistent
    // watch lives on its own session.
    let c = chrooted(&srv.connect_string(), "w1").await;
    let mut all = c.add_watch("/n", AddWatchMode::Persistent).await.unwrap();
    b.set_data("/n", b"1", ANY_VERSION).await.unwrap();
    b.set_data("/n", b"2", ANY_VERSION).await.unwrap();
    let ev = within(5, "NodeDataChanged", changed).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    // The persistent watch saw both changes; the one-shot is gone.
    expect(&mut all, EventType::NodeDataChanged, "/n").await;
    expect(&mut all, EventType::NodeDataChanged, "/n").await;
    assert_eq!(a.watch_counts().await.unwrap().data, 0);

    // getChildren → NodeChildrenChanged; exists on present node → NodeDeleted.
    let (kids, child_changed) = a.get_children_w("/n").await.unwrap();
    assert!(kids.is_empty());
    b.create("/n/c", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    let ev = within(5, "NodeChildrenChanged", child_changed).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/n")
    );
    expect(&mut all, EventType::NodeChildrenChanged, "/n").await;

    let (_, _, child_w) = a.get_children2_w("/n/c").await.unwrap();
    let (_, _, data_w) = a.get_data_w("/n/c").await.unwrap();
    let (_, exists_w) = a.exists_w("/n/c").await.unwrap();
    b.delete("/n/c", ANY_VERSION).await.unwrap();
    for (what, f) in [("child", child_w), ("data", data_w), ("exists", exists_w)] {
        let ev = within(5, what, f).await;
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDeleted, "/n/c"),
            "{what}"
        );
    }
    expect(&mut all, EventType::NodeChildrenChanged, "/n").await;
    let n = a.watch_counts().await.unwrap();
    assert_eq!((n.data, n.exist, n.child, n.persistent), (0, 0, 0, 0));
    assert_eq!(c.watch_counts().await.unwrap().persistent, 1);
    a.close().await.unwrap();
    b.close().await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_arrives_before_the_reply_of_the_triggering_write() {
    let srv = shared_server();
    let a = chrooted(&srv.connect_string(), "w2").await;
    a.create("/o", b"", &acls::open(), CreateMode::Persistent)
        .await
        .unwrap();
    for i in 0..20 {
        let (_, _, mut w) = a.get_data_w("/o").await.unwrap();
        a.set_data("/o", format!("{i}").as_bytes(), ANY_VERSION)
            .await
            .unwrap();
        // No waiting: the notification was processed before the setData reply.
        let ev = w.try_take().expect("event before reply");
        assert_eq!(ev.event_type, EventType::NodeDataChanged);
    }
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_streams() {
    let srv = shared_server();
    let a = chrooted(&srv.connect_string(), "w3").await;
    let b = chrooted(&srv.connect_string(), "w3").await;
    let open = acls::open();

    // One session per mode: ZooKeeper 3.8 keeps one mode per (connection, path).
    let a2 = chrooted(&srv.connect_string(), "w3").await;
    let mut p = a.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    let mut r = a2
        .add_watch("/p", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    b.create("/p", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    b.create("/p/a", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    b.create("/p/a/b", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    b.set_data("/p/a/b", b"x", ANY_VERSION).await.unwrap();
    b.set_data("/p", b"x", ANY_VERSION).await.unwrap();
    b.delete("/p/a/b", ANY_VERSION).await.unwrap();
    b.delete("/p/a", ANY_VERSION).await.unwrap();
    b.delete("/p", ANY_VERSION).await.unwrap();
    b.create("/p", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();

    // Persistent: exactly the node's own events, including child changes; survives delete.
    expect(&mut p, EventType::NodeCreated, "/p").await;
    expect(&mut p, EventType::NodeChildrenChanged, "/p").await;
    expect(&mut p, EventType::NodeDataChanged, "/p").await;
    expect(&mut p, EventType::NodeChildrenChanged, "/p").await;
    expect(&mut p, EventType::NodeDeleted, "/p").await;
    expect(&mut p, EventType::NodeCreated, "/p").await;
    expect_quiet(&mut p).await;

    // Recursive: the subtree's created/changed/deleted, never NodeChildrenChanged.
    expect(&mut r, EventType::NodeCreated, "/p").await;
    expect(&mut r, EventType::NodeCreated, "/p/a").await;
    expect(&mut r, EventType::NodeCreated, "/p/a/b").await;
    expect(&mut r, EventType::NodeDataChanged, "/p/a/b").await;
    expect(&mut r, EventType::NodeDataChanged, "/p").await;
    expect(&mut r, EventType::NodeDeleted, "/p/a/b").await;
    expect(&mut r, EventType::NodeDeleted, "/p/a").await;
    expect(&mut r, EventType::NodeDeleted, "/p").await;
    expect(&mut r, EventType::NodeCreated, "/p").await;
    expect_quiet(&mut r).await;

    // Closing the session ends both streams with a final Closed event.
    a.close().await.unwrap();
    a2.close().await.unwrap();
    for s in [&mut p, &mut r] {
        let ev = within(5, "final event", s.next())
            .await
            .expect("final event");
        assert!(ev.is_session_end(), "{ev:?}");
        assert_eq!(ev.state, corral_client::KeeperState::Closed);
        assert!(s.next().await.is_none());
    }
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_watch_on_chroot_root_sees_relative_paths() {
    let srv = shared_server();
    let a = chrooted(&srv.connect_string(), "w4").await;
    let b = chrooted(&srv.connect_string(), "w4").await;
    let mut r = a
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    b.create("/x", b"", &acls::open(), CreateMode::Ephemeral)
        .await
        .unwrap();
    expect(&mut r, EventType::NodeCreated, "/x").await;
    b.close().await.unwrap();
    expect(&mut r, EventType::NodeDeleted, "/x").await;
    a.close().await.unwrap();
}

fn event(t: EventType, path: &str) -> SessionEvent {
    SessionEvent::Watch(WatchedEvent {
        event_type: t,
        state: KeeperState::SyncConnected,
        path: path.into(),
        zxid: -1,
    })
}

/// Every event already in the stream.
fn queued(events: &mut EventStream) -> Vec<SessionEvent> {
    std::iter::from_fn(|| events.try_next()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_has_each_notification_once_and_keeps_detached_watches() {
    let srv = shared_server();
    let b = chrooted(&srv.connect_string(), "w4").await;
    let (a, mut events) = common::opts()
        .connect_with_events(&format!("{}/w4", srv.connect_string()))
        .await
        .unwrap();
    let open = acls::open();
    b.create("/n", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();

    // Three watches on /n, two of them detached (armed without a handle).
    let (_, _, data) = a.get_data_w("/n").await.unwrap();
    let (_, exists) = a.exists_w("/n").await.unwrap();
    exists.detach();
    let (_, kids) = a.get_children_w("/n").await.unwrap();
    kids.detach();
    let counts = WatchCounts {
        data: 2,
        child: 1,
        ..WatchCounts::default()
    };
    assert_eq!(a.watch_counts().await.unwrap(), counts);
    // Detached watches are re-armed after a reconnect like the others.
    a.drop_connection();
    a.wait_for_state(Duration::from_secs(10), |s| s == SessionState::Disconnected)
        .await
        .ok();
    a.wait_connected().await.unwrap();
    // A round trip: the setWatches that re-armed the watches has been applied.
    a.sync("/").await.unwrap();
    assert_eq!(a.watch_counts().await.unwrap(), counts);
    b.delete("/n", ANY_VERSION).await.unwrap();
    let ev = within(5, "NodeDeleted", data).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    // Once a reply has arrived, the stream holds every event that came before it.
    a.sync("/").await.unwrap();
    assert_eq!(
        queued(&mut events),
        vec![
            SessionEvent::State(SessionState::Connected),
            SessionEvent::State(SessionState::Disconnected),
            SessionEvent::State(SessionState::Connected),
            event(EventType::NodeDeleted, "/n"),
        ]
    );
    assert_eq!(a.watch_counts().await.unwrap(), WatchCounts::default());

    // A removal is one event per type of watch removed.
    b.create("/m", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    let (_, _, d) = a.get_data_w("/m").await.unwrap();
    d.detach();
    let (_, c) = a.get_children_w("/m").await.unwrap();
    c.detach();
    a.remove_watches("/m", WatcherType::Any, false)
        .await
        .unwrap();
    assert_eq!(
        queued(&mut events),
        vec![
            event(EventType::ChildWatchRemoved, "/m"),
            event(EventType::DataWatchRemoved, "/m"),
        ]
    );
    a.close().await.unwrap();
    assert_eq!(
        within(5, "Closed", events.next()).await,
        Some(SessionEvent::State(SessionState::Closed))
    );
    assert_eq!(within(5, "end", events.next()).await, None);
    b.close().await.unwrap();
}

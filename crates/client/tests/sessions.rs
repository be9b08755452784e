//! Sessions against a real server: reconnect through a proxy that drops connections (watches
//! re-armed with setWatches, changes made meanwhile reported), a server restart, expiry during
//! a partition, refusal by a server that is behind, the Java rule for requests queued while
//! connection attempts fail, pipelining and xid wrap-around.

mod common;

use common::{opts, within};
use corral_client::testing::{Proxy, TestServer};
use corral_client::{
    acls, AddWatchMode, Client, CreateMode, Error, EventType, KeeperState, SessionEvent,
    SessionState, WatchedEvent, WatcherType, ANY_VERSION,
};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

async fn wait_state(c: &Client, secs: u64, want: SessionState) {
    c.wait_for_state(Duration::from_secs(secs), |s| s == want)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "state {want:?} not reached in {secs}s ({e}); now {:?}",
                c.state()
            )
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_rearms_watches_and_reports_missed_changes() {
    let srv = TestServer::start();
    let proxy = Proxy::start(srv.addr()).await;
    let open = acls::open();
    // A dead host first in the list: the client must rotate past it.
    let dead = format!("127.0.0.1:{}", corral_client::testing::free_port());
    let a = opts()
        .rng_seed(1)
        .connect(&format!("{dead},{}", proxy.connect_string()))
        .await
        .unwrap();
    let b = opts().connect(&srv.connect_string()).await.unwrap();
    for p in ["/x", "/z", "/p", "/r"] {
        b.create(p, b"", &open, CreateMode::Persistent)
            .await
            .unwrap();
    }
    let (_, _, x_changed) = a.get_data_w("/x").await.unwrap();
    let (_, y_created) = a.exists_w("/y").await.unwrap();
    let (_, z_children) = a.get_children_w("/z").await.unwrap();
    let mut p = a.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    let b2 = opts().connect(&proxy.connect_string()).await.unwrap();
    let mut r = b2
        .add_watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let session = a.session_id();
    let states = a.state_watcher();

    // Cut the connections and keep the proxy shut while b changes everything.
    proxy.set_refuse(true);
    proxy.kill_connections();
    wait_state(&a, 10, SessionState::Disconnected).await;
    assert!(states.has_changed().unwrap());
    b.set_data("/x", b"1", ANY_VERSION).await.unwrap();
    b.create("/y", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    b.create("/z/c", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    // A request made while disconnected waits for the next connection.
    let queued = tokio::spawn({
        let a = a.clone();
        async move { a.get_data("/x").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_refuse(false);
    wait_state(&a, 15, SessionState::Connected).await;
    assert_eq!(a.session_id(), session, "same session after reconnect");
    let (data, _) = within(10, "queued request", queued).await.unwrap().unwrap();
    assert_eq!(&data[..], b"1");

    // setWatches reported what happened while we were away.
    let ev = within(5, "x changed", x_changed).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/x")
    );
    let ev = within(5, "y created", y_created).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/y")
    );
    let ev = within(5, "z children", z_children).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/z")
    );
    // Persistent watches were re-added and see new changes.
    wait_state(&b2, 15, SessionState::Connected).await;
    b.set_data("/p", b"after", ANY_VERSION).await.unwrap();
    b.create("/r/new", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    let ev = within(5, "p changed", p.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/p")
    );
    let ev = within(5, "r created", r.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/r/new")
    );

    // drop_connection: the same dance, initiated by the client.
    let (_, _, x2) = a.get_data_w("/x").await.unwrap();
    a.drop_connection();
    wait_state(&a, 10, SessionState::Connected).await;
    b.set_data("/x", b"2", ANY_VERSION).await.unwrap();
    assert_eq!(
        within(5, "x2", x2).await.event_type,
        EventType::NodeDataChanged
    );
    for c in [a, b, b2] {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_server_restart() {
    let mut srv = TestServer::start();
    let a = opts()
        .session_timeout(Duration::from_secs(20))
        .connect(&srv.connect_string())
        .await
        .unwrap();
    let open = acls::open();
    a.create("/e", b"", &open, CreateMode::Ephemeral)
        .await
        .unwrap();
    a.create("/d", b"", &open, CreateMode::Persistent)
        .await
        .unwrap();
    let (_, _, d_changed) = a.get_data_w("/d").await.unwrap();
    let session = a.session_id();
    srv.restart();
    wait_state(&a, 30, SessionState::Connected).await;
    assert_eq!(a.session_id(), session);
    // The ephemeral survived: the session did.
    assert!(a.exists("/e").await.unwrap().is_some());
    let b = opts().connect(&srv.connect_string()).await.unwrap();
    b.set_data("/d", b"x", ANY_VERSION).await.unwrap();
    let ev = within(10, "d changed", d_changed).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_longer_than_timeout_expires_the_session() {
    let srv = TestServer::start();
    let proxy = Proxy::start(srv.addr()).await;
    let a = opts()
        .session_timeout(Duration::from_secs(4))
        .request_timeout(None)
        .connect(&proxy.connect_string())
        .await
        .unwrap();
    assert_eq!(a.session_timeout(), Duration::from_secs(4));
    let open = acls::open();
    a.create("/eph", b"", &open, CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, _, my_watch) = a.get_data_w("/eph").await.unwrap();
    let mut my_stream = a
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let b = opts().connect(&srv.connect_string()).await.unwrap();
    let (_, gone) = b.exists_w("/eph").await.unwrap();

    proxy.pause();
    // No pings get through: the client notices within 2/3 of the timeout...
    wait_state(&a, 6, SessionState::Disconnected).await;
    // ...and the server expires the session and deletes its ephemeral.
    let ev = within(15, "ephemeral deleted by expiry", gone).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    let pending = tokio::spawn({
        let a = a.clone();
        async move { a.exists("/eph").await }
    });
    proxy.resume();
    proxy.kill_connections();
    wait_state(&a, 15, SessionState::Expired).await;
    assert_eq!(
        within(5, "queued request", pending).await.unwrap(),
        Err(Error::SessionExpired)
    );
    let ev = within(5, "final watch event", my_watch).await;
    assert_eq!(
        (ev.event_type, ev.state),
        (EventType::None, KeeperState::Expired)
    );
    let ev = within(5, "final stream event", my_stream.next())
        .await
        .unwrap();
    assert_eq!(ev.state, KeeperState::Expired);
    assert!(my_stream.next().await.is_none());
    assert_eq!(a.get_data("/").await, Err(Error::SessionExpired));
    // Resuming an expired session explicitly fails the same way.
    let r = opts()
        .resume_session(a.session_id(), a.session_password())
        .connect(&srv.connect_string())
        .await;
    assert_eq!(r.err(), Some(Error::SessionExpired));
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_behind_the_client_is_refused_and_session_kept() {
    let first = TestServer::start();
    let proxy = Proxy::start(first.addr()).await;
    let a = opts().connect(&proxy.connect_string()).await.unwrap();
    for i in 0..20 {
        a.create(
            &format!("/n{i}"),
            b"",
            &acls::open(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    }
    let seen = a.session_info().last_zxid_seen;
    assert!(seen >= 20, "lastZxidSeen {seen}");
    // A fresh server knows nothing: its zxid is behind ours, so it must refuse us rather
    // than tell us our session is gone.
    let fresh = TestServer::start();
    proxy.set_target(fresh.addr());
    drop(first);
    proxy.kill_connections();
    wait_state(&a, 10, SessionState::Disconnected).await;
    let before = proxy.accepted();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.state(), SessionState::Disconnected, "never Expired");
    assert!(proxy.accepted() > before, "the client kept trying");
    a.close().await.unwrap();
    assert_eq!(a.state(), SessionState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_fail_queued_requests_with_the_java_rule() {
    let srv = TestServer::start();
    let proxy = Proxy::start(srv.addr()).await;
    let (a, mut events) = opts()
        .request_timeout(Some(Duration::from_secs(120)))
        .fail_queued_on_connect_failure(true)
        .connect_with_events(&proxy.connect_string())
        .await
        .unwrap();
    assert_eq!(
        events.next().await,
        Some(SessionEvent::State(SessionState::Connected))
    );
    a.create("/n", b"", &acls::open(), CreateMode::Persistent)
        .await
        .unwrap();
    let (_, kids) = a.get_children_w("/n").await.unwrap();
    let (_, _, _data) = a.get_data_w("/n").await.unwrap();
    proxy.set_refuse(true);
    proxy.kill_connections();
    wait_state(&a, 10, SessionState::Disconnected).await;

    // Each request fails when the attempt in progress fails, not at its 120 s deadline.
    assert_eq!(
        within(10, "queued getData", a.get_data("/n")).await,
        Err(Error::ConnectionLoss)
    );
    assert!(a.connect_failures() >= 1);
    // removeWatches: the lost connection is the answer, unless `local`, which removes the
    // local watch anyway (its event says Disconnected).
    assert_eq!(
        within(
            10,
            "remove",
            a.remove_watches("/n", WatcherType::Data, false)
        )
        .await,
        Err(Error::ConnectionLoss)
    );
    within(
        10,
        "local remove",
        a.remove_watches("/n", WatcherType::Children, true),
    )
    .await
    .unwrap();
    let removed = WatchedEvent {
        event_type: EventType::ChildWatchRemoved,
        state: KeeperState::Disconnected,
        path: "/n".into(),
        zxid: -1,
    };
    assert_eq!(within(5, "child watch removed", kids).await, removed);
    // A close waits for the attempt like a request; when it fails the session is closed.
    within(10, "close", a.close()).await.unwrap();
    assert_eq!(a.state(), SessionState::Closed);

    let mut seen = Vec::new();
    while let Some(ev) = within(10, "end of the event stream", events.next()).await {
        seen.push(ev);
    }
    let failures = seen
        .iter()
        .filter(|e| matches!(e, SessionEvent::ConnectFailed { .. }))
        .count();
    assert!(failures >= 3, "{seen:?}");
    seen.retain(|e| !matches!(e, SessionEvent::ConnectFailed { .. }));
    assert_eq!(
        seen,
        vec![
            SessionEvent::State(SessionState::Disconnected),
            SessionEvent::Watch(removed),
            SessionEvent::State(SessionState::Closed),
        ]
    );
}

/// Polls `futs` in order on first poll (so their requests are submitted in order), then
/// until all are ready.
async fn join_in_order<T>(futs: Vec<Pin<Box<dyn Future<Output = T> + Send>>>) -> Vec<T> {
    let mut futs: Vec<Option<Pin<Box<dyn Future<Output = T> + Send>>>> =
        futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(out.iter_mut().map(|o| o.take().expect("ready")).collect())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_a_thousand_requests_and_wraps_xids() {
    let srv = TestServer::start();
    // Start near i32::MAX so the thousand requests cross the wrap to 1.
    let a = opts()
        .first_xid(i32::MAX - 500)
        .connect(&srv.connect_string())
        .await
        .unwrap();
    a.create("/ctr", b"", &acls::open(), CreateMode::Persistent)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    type Fut = Pin<Box<dyn Future<Output = corral_client::Result<corral_client::Stat>> + Send>>;
    let futs: Vec<Fut> = (0..1000)
        .map(|i| {
            let a = a.clone();
            Box::pin(async move {
                a.set_data("/ctr", format!("{i}").as_bytes(), ANY_VERSION)
                    .await
            }) as Fut
        })
        .collect();
    let results = within(60, "1000 pipelined setData", join_in_order(futs)).await;
    // Replies come back in request order: the i-th setData produced version i+1.
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().version, i as i32 + 1, "reply {i}");
    }
    let (data, stat) = a.get_data("/ctr").await.unwrap();
    assert_eq!(&data[..], b"999");
    assert_eq!(stat.version, 1000);
    eprintln!("1000 pipelined setData in {:?}", started.elapsed());
    a.close().await.unwrap();
}

/// Nothing but pings for many session timeouts: the driver's timer, re-armed only when a
/// deadline comes earlier, must still wake it for every ping, so the connection is never
/// read-timed-out by the client nor the session expired by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_kept_alive_by_pings() {
    let srv = TestServer::start_with(&["minSessionTimeout=600"]);
    let (a, mut events) = opts()
        .session_timeout(Duration::from_millis(600))
        .connect_with_events(&srv.connect_string())
        .await
        .unwrap();
    assert_eq!(a.session_timeout(), Duration::from_millis(600));
    let session = a.session_id();
    // Some traffic first, so the ping deadline has moved since the timer was armed.
    for i in 0..50 {
        a.exists(&format!("/x{i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(a.state(), SessionState::Connected);
    assert_eq!(a.session_id(), session);
    while let Some(ev) = events.try_next() {
        assert_eq!(
            ev,
            SessionEvent::State(SessionState::Connected),
            "an idle session lost its connection"
        );
    }
    assert!(a.exists("/").await.unwrap().is_some());
    a.close().await.unwrap();
}

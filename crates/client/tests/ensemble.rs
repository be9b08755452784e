//! Reconnection to another member of a real 3-member Apache ZooKeeper 3.8 ensemble: the
//! member the client is connected to is killed (SIGKILL); the client must resume the same
//! session on another member, with its ephemeral node, its data watch and its persistent
//! watch (re-registered with setWatches), and a lastZxidSeen that never goes backwards. Then
//! a member that is behind the client (a fresh standalone server behind a proxy) must refuse
//! the client, which tries the next host and keeps its session.
//!
//! It tests the client, so it runs against Apache ZooKeeper whatever `CORRAL_TEST_TARGET`
//! says: corral has no ensemble yet (that is the replication issue's work).

mod common;

use common::{opts, within};
use corral_client::testing::{Proxy, Target, TestEnsemble, TestServer};
use corral_client::{
    acls, AddWatchMode, Client, CreateMode, EventStream, EventType, SessionEvent, SessionState,
    ANY_VERSION,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads `events` until `State(Connected)` (at most `secs`), returning the events before it.
async fn until_connected(events: &mut EventStream, secs: u64, what: &str) -> Vec<SessionEvent> {
    within(secs, what, async {
        let mut seen = Vec::new();
        loop {
            match events.next().await {
                Some(SessionEvent::State(SessionState::Connected)) => return seen,
                Some(SessionEvent::State(s)) if s.is_terminal() => {
                    panic!("{what}: session ended ({s:?}) after {seen:?}")
                }
                Some(e) => seen.push(e),
                None => panic!("{what}: event stream ended after {seen:?}"),
            }
        }
    })
    .await
}

/// Runs `f` until it succeeds (a member may drop us while the ensemble re-elects), at most
/// `secs` seconds.
async fn retry<T, E: std::fmt::Debug, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what}: {e:?}, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e:?} after {secs}s"),
        }
    }
}

/// Watches `c`'s session info in the background; the flag is set if lastZxidSeen ever
/// decreases.
fn zxid_monotonic_guard(c: &Client) -> (Arc<AtomicBool>, tokio::task::JoinHandle<i64>) {
    let went_back = Arc::new(AtomicBool::new(false));
    let flag = went_back.clone();
    let mut rx = c.session_info_watcher();
    let h = tokio::spawn(async move {
        let mut max = rx.borrow_and_update().last_zxid_seen;
        while rx.changed().await.is_ok() {
            let z = rx.borrow_and_update().last_zxid_seen;
            if z < max {
                eprintln!("lastZxidSeen went back: {z:#x} < {max:#x}");
                flag.store(true, Ordering::SeqCst);
            }
            max = max.max(z);
        }
        max
    });
    (went_back, h)
}

/// Runs against Apache ZooKeeper in every test run (corral has no ensemble yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_failover_against_zookeeper() {
    let started = Instant::now();
    // The ensemble and a standalone server (which will be "behind") start in parallel.
    let (mut ens, fresh) = std::thread::scope(|s| {
        let fresh = s.spawn(|| TestServer::start_target(Target::Zookeeper, &[]));
        let ens = TestEnsemble::start(3);
        let fresh = fresh
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (ens, fresh)
    });
    eprintln!("ensemble and standalone up in {:?}", started.elapsed());
    let open = acls::open();

    let (a, mut events) = opts()
        .session_timeout(Duration::from_secs(10))
        .connect_with_events(&ens.connect_string())
        .await
        .unwrap();
    assert_eq!(
        within(5, "first Connected", events.next()).await,
        Some(SessionEvent::State(SessionState::Connected))
    );
    let session = a.session_id();
    a.create("/eph", b"mine", &open, CreateMode::Ephemeral)
        .await
        .unwrap();
    a.create("/watched", b"before", &open, CreateMode::Persistent)
        .await
        .unwrap();
    let (_, _, data_watch) = a.get_data_w("/watched").await.unwrap();
    let mut persistent = a
        .add_watch("/watched", AddWatchMode::Persistent)
        .await
        .unwrap();
    let (went_back, guard) = zxid_monotonic_guard(&a);

    let before = a.session_info();
    assert_eq!(before.session_id, session);
    assert!(before.last_zxid_seen > 0, "lastZxidSeen {before:?}");
    let victim = ens
        .index_of(&before.server)
        .unwrap_or_else(|| panic!("connected to {:?}, not a member", before.server));
    let survivors: Vec<usize> = (0..ens.len()).filter(|&i| i != victim).collect();
    eprintln!(
        "connected to member {} ({}, {:?}), lastZxidSeen {:#x}; killing it",
        victim + 1,
        before.server,
        ens.mode(victim),
        before.last_zxid_seen
    );

    ens.kill(victim);
    let seen = until_connected(&mut events, 20, "reconnect after the kill").await;
    assert!(
        seen.contains(&SessionEvent::State(SessionState::Disconnected)),
        "Disconnected before reconnecting: {seen:?}"
    );
    // If the leader died, the survivors elect a new one and may drop us meanwhile.
    ens.wait_serving(&survivors, Duration::from_secs(15));
    a.wait_for_state(Duration::from_secs(15), |s| s == SessionState::Connected)
        .await
        .unwrap_or_else(|e| panic!("not connected again ({e}); now {:?}", a.state()));

    let after = a.session_info();
    assert_eq!(after.session_id, session, "same session on another member");
    assert_eq!(a.session_id(), session);
    let now_on = ens.index_of(&after.server);
    assert!(
        now_on.is_some_and(|i| i != victim),
        "reconnected to {:?}, expected a surviving member",
        after.server
    );
    assert!(
        after.last_zxid_seen >= before.last_zxid_seen,
        "lastZxidSeen went back: {:#x} -> {:#x}",
        before.last_zxid_seen,
        after.last_zxid_seen
    );
    let eph = retry(10, "exists /eph", || a.exists("/eph")).await;
    let eph = eph.expect("the ephemeral node survives the failover");
    assert_eq!(eph.ephemeral_owner, session);

    // A write through another client, on the survivors, after the kill.
    let b = opts()
        .connect(&ens.connect_string_of(&survivors))
        .await
        .unwrap();
    let stat = retry(10, "set /watched", || {
        b.set_data("/watched", b"after", ANY_VERSION)
    })
    .await;
    let ev = within(10, "data watch after failover", data_watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/watched")
    );
    let ev = within(10, "persistent watch after failover", persistent.next())
        .await
        .expect("persistent watch still open");
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/watched")
    );
    let (data, _) = retry(10, "get /watched", || a.get_data("/watched")).await;
    assert_eq!(&data[..], b"after");
    let last = a.session_info();
    assert!(
        last.last_zxid_seen >= stat.mzxid && last.last_zxid_seen >= after.last_zxid_seen,
        "lastZxidSeen {:#x} after reading a write at {:#x} (was {:#x})",
        last.last_zxid_seen,
        stat.mzxid,
        after.last_zxid_seen
    );
    assert_eq!(a.session_id(), session);

    // A server behind the client's lastZxidSeen must refuse it; the client tries the next
    // host and keeps its session. The host list is [proxy -> fresh standalone, survivor].
    let proxy = Proxy::start(fresh.addr()).await;
    proxy.set_refuse(true); // the first connection must land on the ensemble
    let survivor = survivors[0];
    let (c, mut c_events) = opts()
        .session_timeout(Duration::from_secs(10))
        .connect_with_events(&format!(
            "{},{}",
            proxy.connect_string(),
            ens.host(survivor)
        ))
        .await
        .unwrap();
    until_connected(&mut c_events, 10, "c connected").await;
    assert_eq!(c.session_info().server, ens.host(survivor));
    let c_session = c.session_id();
    c.create("/c", b"", &open, CreateMode::Ephemeral)
        .await
        .unwrap();
    let c_seen = c.session_info().last_zxid_seen;
    assert!(c_seen > 0);
    proxy.set_refuse(false);
    let accepted = proxy.accepted();
    // Round-robin: the host after the survivor is the proxy.
    c.drop_connection();
    let seen = until_connected(&mut c_events, 15, "c back on the ensemble").await;
    assert!(proxy.accepted() > accepted, "the client tried the proxy");
    assert!(
        seen.iter().any(|e| matches!(e,
            SessionEvent::ConnectFailed { host, .. } if *host == proxy.connect_string())),
        "the member behind refused the client: {seen:?}"
    );
    assert_eq!(c.session_id(), c_session, "session kept");
    assert_eq!(c.session_info().server, ens.host(survivor));
    assert!(c.session_info().last_zxid_seen >= c_seen);
    let fresh_log = std::fs::read_to_string(fresh.dir().join("zookeeper.log")).unwrap_or_default();
    assert!(
        fresh_log.contains("client must try another server"),
        "the standalone server refused on lastZxidSeen; log:\n{}",
        fresh.log_tail()
    );
    assert!(c.exists("/c").await.unwrap().is_some());

    c.close().await.unwrap();
    b.close().await.unwrap();
    a.close().await.unwrap();
    let max = within(5, "zxid guard", guard).await.unwrap();
    assert!(
        !went_back.load(Ordering::SeqCst),
        "lastZxidSeen never goes backwards"
    );
    assert!(max >= stat.mzxid);
    eprintln!("ensemble failover test done in {:?}", started.elapsed());
}

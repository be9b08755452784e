//! Leader election against a real server: exactly one leader through killed and partitioned
//! sessions (sampled continuously by the test), and selectors that lead one at a time.

mod common;

use common::{clients, opts, shared_server, within};
use corral_client::testing::Proxy;
use corral_recipes::election::{LeaderLatch, LeaderSelector};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_through_killed_sessions() {
    let srv = shared_server();
    let setup = clients(&srv.connect_string(), "elect", 1).await;
    let proxy = Proxy::start(srv.addr()).await;
    // Participant 0 talks through the proxy (to be partitioned); the others directly.
    let c0 = opts()
        .session_timeout(Duration::from_secs(4))
        .connect(&format!("{}/elect", proxy.connect_string()))
        .await
        .unwrap();
    let mut cs = vec![c0];
    cs.extend(clients(&srv.connect_string(), "elect", 3).await);

    let mut latches = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        latches.push(Some(
            LeaderLatch::start(c, "/e", &format!("p{i}")).await.unwrap(),
        ));
    }
    assert!(
        latches[0]
            .as_ref()
            .unwrap()
            .wait_leader(Duration::from_secs(10))
            .await
    );
    assert_eq!(
        LeaderLatch::leader_id(&setup[0], "/e")
            .await
            .unwrap()
            .as_deref(),
        Some("p0")
    );

    // Sample leadership continuously: never two leaders at once.
    let receivers: Vec<_> = latches
        .iter()
        .map(|l| l.as_ref().unwrap().leadership())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let max_leaders = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = tokio::spawn({
        let (stop, max_leaders, samples) = (stop.clone(), max_leaders.clone(), samples.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let n = receivers.iter().filter(|r| *r.borrow()).count();
                max_leaders.fetch_max(n, Ordering::SeqCst);
                samples.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    // Partition the leader: it steps down when its client notices, the server expires its
    // session, and participant 1 takes over.
    proxy.pause();
    assert!(
        latches[1]
            .as_ref()
            .unwrap()
            .wait_leader(Duration::from_secs(20))
            .await
    );
    assert!(!latches[0].as_ref().unwrap().is_leader());
    proxy.resume();
    proxy.kill_connections();
    cs[0]
        .wait_for_state(Duration::from_secs(15), |s| s.is_terminal())
        .await
        .unwrap();

    // Kill participant 1's session: participant 2 leads.
    cs[1].close().await.unwrap();
    assert!(
        latches[2]
            .as_ref()
            .unwrap()
            .wait_leader(Duration::from_secs(10))
            .await
    );
    // A participant that leaves cleanly hands over too.
    latches[2].take().unwrap().close().await.unwrap();
    assert!(
        latches[3]
            .as_ref()
            .unwrap()
            .wait_leader(Duration::from_secs(10))
            .await
    );
    assert_eq!(
        LeaderLatch::leader_id(&setup[0], "/e")
            .await
            .unwrap()
            .as_deref(),
        Some("p3")
    );

    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    assert!(samples.load(Ordering::SeqCst) > 100);
    assert_eq!(max_leaders.load(Ordering::SeqCst), 1, "two leaders at once");
    for c in &cs[2..] {
        c.close().await.unwrap();
    }
    setup[0].close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_lead_one_at_a_time() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "select", 3).await;
    let leading = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let sel = LeaderSelector::new(c, "/s", &format!("s{i}"));
        let (leading, max) = (leading.clone(), max.clone());
        tasks.push(tokio::spawn(async move {
            let mut runs = 0;
            for _ in 0..3 {
                let (leading, max) = (leading.clone(), max.clone());
                let sel2 = sel.clone();
                let id = sel
                    .lead_once(|token| async move {
                        assert!(token.is_valid());
                        let n = leading.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        let id = sel2.leader_id().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        leading.fetch_sub(1, Ordering::SeqCst);
                        id
                    })
                    .await
                    .unwrap();
                assert_eq!(id, Some(format!("s{i}")), "leader id is ours while we lead");
                runs += 1;
            }
            runs
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += within(60, "selector", t).await.unwrap();
    }
    assert_eq!(total, 9);
    assert_eq!(max.load(Ordering::SeqCst), 1);
    for c in cs {
        c.close().await.unwrap();
    }
}

//! Barriers, queues, counters and group membership against a real server, with several
//! clients in one process.

mod common;

use common::{clients, shared_server, within};
use corral_recipes::barrier::{Barrier, DoubleBarrier};
use corral_recipes::counter::SharedCounter;
use corral_recipes::membership::{GroupWatcher, Membership};
use corral_recipes::queue::DistributedQueue;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_holds_until_removed() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "barrier", 4).await;
    let b = Barrier::new(&cs[0], "/gate/b");
    b.set().await.unwrap();
    let passed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in &cs[1..] {
        let (b, passed) = (Barrier::new(c, "/gate/b"), passed.clone());
        tasks.push(tokio::spawn(async move {
            let ok = b.wait(Duration::from_secs(20)).await.unwrap();
            passed.fetch_add(1, Ordering::SeqCst);
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        passed.load(Ordering::SeqCst),
        0,
        "nobody passes a raised barrier"
    );
    b.remove().await.unwrap();
    for t in tasks {
        assert!(within(10, "waiter", t).await.unwrap());
    }
    assert!(!Barrier::new(&cs[0], "/nothing")
        .wait(Duration::from_secs(1))
        .await
        .map(|ok| !ok)
        .unwrap());
    for c in cs {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_synchronises_enter_and_leave() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "dbarrier", 3).await;
    let arrived = Arc::new(AtomicUsize::new(0));
    let leaving = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let (c, arrived, leaving) = (c.clone(), arrived.clone(), leaving.clone());
        tasks.push(tokio::spawn(async move {
            // Stagger arrivals so early ones really wait.
            tokio::time::sleep(Duration::from_millis(300 * i as u64)).await;
            let mut b = DoubleBarrier::new(&c, "/db", 3);
            arrived.fetch_add(1, Ordering::SeqCst);
            assert!(b.enter(Duration::from_secs(20)).await.unwrap());
            let all_arrived = arrived.load(Ordering::SeqCst) == 3;
            // Stagger departures so early leavers really wait.
            tokio::time::sleep(Duration::from_millis(300 * (2 - i as u64))).await;
            leaving.fetch_add(1, Ordering::SeqCst);
            assert!(b.leave(Duration::from_secs(20)).await.unwrap());
            let all_leaving = leaving.load(Ordering::SeqCst) == 3;
            (all_arrived, all_leaving)
        }));
    }
    for t in tasks {
        let (all_arrived, all_leaving) = within(30, "participant", t).await.unwrap();
        assert!(all_arrived, "entered before everyone arrived");
        assert!(all_leaving, "left before everyone called leave");
    }
    // Everything cleaned up: the barrier can be used again.
    assert_eq!(
        cs[0].get_children("/db").await.unwrap(),
        Vec::<String>::new()
    );
    for c in cs {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delivers_each_item_exactly_once() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "queue", 6).await;
    // FIFO for one producer / one consumer.
    let q = DistributedQueue::new(&cs[0], "/fifo");
    for i in 0..5 {
        q.offer(format!("{i}").as_bytes()).await.unwrap();
    }
    assert_eq!(q.len().await.unwrap(), 5);
    assert_eq!(&q.peek().await.unwrap().unwrap()[..], b"0");
    for i in 0..5 {
        assert_eq!(q.poll().await.unwrap().unwrap(), format!("{i}").as_bytes());
    }
    assert_eq!(q.poll().await.unwrap(), None);
    assert!(q.is_empty().await.unwrap());

    // Priorities: lower first, FIFO within one.
    let pq = DistributedQueue::new(&cs[0], "/prio");
    pq.offer_with_priority(b"low-1", 200).await.unwrap();
    pq.offer_with_priority(b"high-1", 1).await.unwrap();
    pq.offer_with_priority(b"low-2", 200).await.unwrap();
    pq.offer_with_priority(b"high-2", 1).await.unwrap();
    let mut got = Vec::new();
    while let Some(d) = pq.poll().await.unwrap() {
        got.push(String::from_utf8(d.to_vec()).unwrap());
    }
    assert_eq!(got, vec!["high-1", "high-2", "low-1", "low-2"]);

    // 3 producers × 20 items, 3 blocking consumers: every item exactly once.
    let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut consumers = Vec::new();
    for c in &cs[3..] {
        let (q, taken) = (DistributedQueue::new(c, "/work"), taken.clone());
        consumers.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(d) = q.take(Duration::from_secs(3)).await.unwrap() {
                taken
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(d.to_vec()).unwrap());
                n += 1;
            }
            n
        }));
    }
    let mut producers = Vec::new();
    for (p, c) in cs[..3].iter().enumerate() {
        let q = DistributedQueue::new(c, "/work");
        producers.push(tokio::spawn(async move {
            for i in 0..20 {
                q.offer(format!("p{p}-{i}").as_bytes()).await.unwrap();
            }
        }));
    }
    for p in producers {
        within(30, "producer", p).await.unwrap();
    }
    let mut consumed = 0;
    for c in consumers {
        consumed += within(60, "consumer", c).await.unwrap();
    }
    let taken = taken.lock().unwrap().clone();
    assert_eq!(consumed, 60);
    let distinct: HashSet<&String> = taken.iter().collect();
    assert_eq!(distinct.len(), 60, "an item was delivered twice");
    for c in cs {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_loses_no_update() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "counter", 4).await;
    let mut tasks = Vec::new();
    for c in &cs {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let ctr = SharedCounter::new(&c, "/ctr/hits", 0).await.unwrap();
            for _ in 0..25 {
                ctr.add(1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(60, "adder", t).await.unwrap();
    }
    let ctr = SharedCounter::new(&cs[0], "/ctr/hits", 0).await.unwrap();
    let (v, version) = ctr.get().await.unwrap();
    assert_eq!(v, 100);
    assert!(!ctr.try_set(0, version - 1).await.unwrap());
    assert!(ctr.try_set(7, version).await.unwrap());
    assert_eq!(ctr.add(-2).await.unwrap(), 5);
    for c in cs {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_follows_sessions() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "members", 4).await;
    let mut watcher = GroupWatcher::new(&cs[0], "/svc");
    assert!(watcher.members().await.unwrap().is_empty());
    let m1 = Membership::join(&cs[1], "/svc", "a", b"10.0.0.1:80")
        .await
        .unwrap();
    let _m2 = Membership::join(&cs[2], "/svc", "b", b"10.0.0.2:80")
        .await
        .unwrap();
    // Joining twice on the same session is fine; another session may not take the id.
    let _again = Membership::join(&cs[1], "/svc", "a", b"10.0.0.1:80")
        .await
        .unwrap();
    assert_eq!(
        Membership::join(&cs[3], "/svc", "a", b"x").await.err(),
        Some(corral_client::Error::NodeExists)
    );
    let mut seen = watcher
        .changed(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    while seen.len() < 2 {
        seen = watcher
            .changed(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(seen, vec!["a", "b"]);
    let inst = Membership::instances(&cs[0], "/svc").await.unwrap();
    assert_eq!(inst[1].0, "b");
    assert_eq!(&inst[1].1[..], b"10.0.0.2:80");
    m1.update(b"10.0.0.1:81").await.unwrap();
    // A member's session ends: it is gone from the list.
    cs[2].close().await.unwrap();
    let now = watcher
        .changed(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now, vec!["a"]);
    m1.leave().await.unwrap();
    let now = watcher
        .changed(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(now.is_empty());
    assert_eq!(
        watcher.changed(Duration::from_millis(200)).await.unwrap(),
        None
    );
    for c in [&cs[0], &cs[1], &cs[3]] {
        c.close().await.unwrap();
    }
}

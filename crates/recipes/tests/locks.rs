//! Locks against a real server: mutual exclusion checked with a shared holder counter, FIFO
//! hand-over, no herd effect (counted watch wake-ups), read/write sharing, and recovery of a
//! create whose reply was lost.

mod common;

use common::{clients, eventually, shared_server, within};
use corral_client::testing::Proxy;
use corral_recipes::lock::Mutex;
use corral_recipes::rwlock::ReadWriteLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_acquire_in_order_one_wakeup_each() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "lock-fifo", 6).await;
    let dir = "/lock";
    let mut holder = Mutex::new(&cs[0], dir);
    holder.acquire().await.unwrap();
    assert_eq!(holder.wakeups(), 0, "a free lock needs no wake-up");

    let holders = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let wakeups = Arc::new(std::sync::Mutex::new(vec![0u64; 6]));
    let mut tasks = Vec::new();
    for (i, c) in cs.iter().enumerate().skip(1) {
        let (c, holders, violations, order, wakeups) = (
            c.clone(),
            holders.clone(),
            violations.clone(),
            order.clone(),
            wakeups.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut m = Mutex::new(&c, dir);
            m.acquire().await.unwrap();
            if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                violations.fetch_add(1, Ordering::SeqCst);
            }
            order.lock().unwrap().push(i);
            wakeups.lock().unwrap()[i] = m.wakeups();
            tokio::time::sleep(Duration::from_millis(150)).await;
            holders.fetch_sub(1, Ordering::SeqCst);
            m.release().await.unwrap();
            m.wakeups()
        }));
        // Queue them in a known order.
        let c0 = cs[0].clone();
        eventually(10, "waiter queued", || {
            let c0 = c0.clone();
            async move { Mutex::queue_len(&c0, dir).await.unwrap() == i + 1 }
        })
        .await;
    }
    // Nobody woke while the holder held the lock.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(order.lock().unwrap().is_empty());
    holder.release().await.unwrap();

    // While the first waiter holds, no other waiter has been woken: one wake-up per release.
    eventually(10, "first waiter holds", || async {
        !order.lock().unwrap().is_empty()
    })
    .await;
    let woken: u64 = wakeups.lock().unwrap().iter().sum();
    assert_eq!(woken, 1, "exactly one waiter woken by the first release");

    let mut total = 0;
    for t in tasks {
        let w = within(30, "waiter", t).await.unwrap();
        assert_eq!(w, 1, "each waiter is woken exactly once");
        total += w;
    }
    assert_eq!(total, 5);
    assert_eq!(
        *order.lock().unwrap(),
        vec![1, 2, 3, 4, 5],
        "FIFO hand-over"
    );
    assert_eq!(violations.load(Ordering::SeqCst), 0, "two holders at once");
    assert_eq!(
        Mutex::queue_len(&cs[0], dir).await.unwrap(),
        0,
        "no leaked nodes"
    );
    for c in cs {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_lock_never_has_two_holders() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "lock-contend", 4).await;
    let holders = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in &cs {
        let (c, holders, max_seen, acquisitions) = (
            c.clone(),
            holders.clone(),
            max_seen.clone(),
            acquisitions.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let mut m = Mutex::new(&c, "/l");
                assert!(m.try_acquire(Duration::from_secs(30)).await.unwrap());
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                acquisitions.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                m.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(60, "contender", t).await.unwrap();
    }
    assert_eq!(acquisitions.load(Ordering::SeqCst), 40);
    assert_eq!(max_seen.load(Ordering::SeqCst), 1, "two holders at once");
    assert_eq!(Mutex::queue_len(&cs[0], "/l").await.unwrap(), 0);
    // try_acquire times out cleanly and leaves no node behind.
    let mut a = Mutex::new(&cs[0], "/l");
    a.acquire().await.unwrap();
    let mut b = Mutex::new(&cs[1], "/l");
    assert!(!b.try_acquire(Duration::from_millis(300)).await.unwrap());
    assert_eq!(Mutex::queue_len(&cs[0], "/l").await.unwrap(), 1);
    a.release().await.unwrap();
    for c in cs {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_survives_connection_loss_without_leaking() {
    let srv = shared_server();
    let setup = clients(&srv.connect_string(), "lock-loss", 1).await;
    let proxy = Proxy::start(srv.addr()).await;
    let cs = format!("{}/lock-loss", proxy.connect_string());
    let a = common::opts().connect(&cs).await.unwrap();
    let b = common::opts().connect(&cs).await.unwrap();

    // A create whose reply is lost: the request reaches the server, the reply never comes
    // back, the connection dies. The protected name lets the lock find its node again.
    setup[0]
        .create_all("/l", b"", &corral_client::acls::open())
        .await
        .unwrap();
    proxy.pause_replies();
    let acquiring = tokio::spawn({
        let a = a.clone();
        async move {
            let mut m = Mutex::new(&a, "/l");
            m.acquire().await.map(|_| m)
        }
    });
    let s = setup[0].clone();
    eventually(10, "create applied on the server", || {
        let s = s.clone();
        async move { Mutex::queue_len(&s, "/l").await.unwrap() == 1 }
    })
    .await;
    proxy.kill_connections();
    proxy.resume();
    let mut ma = within(30, "acquire after lost reply", acquiring)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Mutex::queue_len(&setup[0], "/l").await.unwrap(),
        1,
        "one node, not two"
    );

    // A waiter keeps its place (and its watch) across a connection loss.
    let waiting = tokio::spawn({
        let b = b.clone();
        async move {
            let mut m = Mutex::new(&b, "/l");
            m.acquire().await.map(|_| m)
        }
    });
    let s = setup[0].clone();
    eventually(10, "waiter queued", || {
        let s = s.clone();
        async move { Mutex::queue_len(&s, "/l").await.unwrap() == 2 }
    })
    .await;
    proxy.kill_connections();
    b.wait_for_state(Duration::from_secs(10), |s| s.is_connected())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    ma.release().await.unwrap();
    let mut mb = within(20, "waiter acquires", waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(mb.wakeups() >= 1);
    mb.release().await.unwrap();
    assert_eq!(
        Mutex::queue_len(&setup[0], "/l").await.unwrap(),
        0,
        "no leak"
    );
    for c in [a, b, setup[0].clone()] {
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_lock_shares_reads_and_serialises_writes() {
    let srv = shared_server();
    let cs = clients(&srv.connect_string(), "rwlock", 4).await;
    let rw: Vec<ReadWriteLock> = cs.iter().map(|c| ReadWriteLock::new(c, "/rw")).collect();

    // Two readers at once.
    let mut r1 = rw[0].read_lock();
    let mut r2 = rw[1].read_lock();
    r1.acquire().await.unwrap();
    assert!(r2.try_acquire(Duration::from_secs(5)).await.unwrap());

    // A writer waits for both readers.
    let writer = tokio::spawn({
        let l = rw[2].clone();
        async move {
            let mut w = l.write_lock();
            w.acquire().await.map(|_| w)
        }
    });
    common::eventually(10, "writer queued", || {
        let c = cs[3].clone();
        async move { Mutex::queue_len(&c, "/rw").await.unwrap() == 3 }
    })
    .await;
    // A reader arriving after the waiting writer queues behind it (no writer starvation).
    let late_reader = tokio::spawn({
        let l = rw[3].clone();
        async move {
            let mut r = l.read_lock();
            r.acquire().await.map(|_| r)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished());
    assert!(!late_reader.is_finished());
    r1.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !writer.is_finished(),
        "writer must wait for the second reader"
    );
    r2.release().await.unwrap();
    let mut w = within(10, "writer", writer).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !late_reader.is_finished(),
        "reader waits for the writer ahead of it"
    );
    w.release().await.unwrap();
    let mut r3 = within(10, "late reader", late_reader)
        .await
        .unwrap()
        .unwrap();
    // The late reader watched only the writer: one wake-up.
    assert_eq!(r3.wakeups(), 1);
    r3.release().await.unwrap();
    for c in cs {
        c.close().await.unwrap();
    }
}

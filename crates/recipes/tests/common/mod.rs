//! Shared helpers for the recipe tests: one server per test binary while any test uses it
//! (reference-counted, killed when the last user finishes) and chrooted clients so tests on
//! the shared server do not collide.
#![allow(dead_code)]

use corral_client::testing::TestServer;
use corral_client::{acls, Client, ClientOptions, CreateMode};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

static SHARED: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());

pub fn shared_server() -> Arc<TestServer> {
    let mut g = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = g.upgrade() {
        return s;
    }
    let s = Arc::new(TestServer::start());
    *g = Arc::downgrade(&s);
    s
}

pub fn opts() -> ClientOptions {
    ClientOptions::new()
        .session_timeout(Duration::from_secs(6))
        .connect_timeout(Duration::from_secs(20))
        .request_timeout(Some(Duration::from_secs(20)))
}

/// `n` clients chrooted at `/<ns>` on `cs`.
pub async fn clients(cs: &str, ns: &str, n: usize) -> Vec<Client> {
    let root = opts().connect(cs).await.expect("connect");
    match root
        .create(
            &format!("/{ns}"),
            b"",
            &acls::open(),
            CreateMode::Persistent,
        )
        .await
    {
        Ok(_) | Err(corral_client::Error::NodeExists) => {}
        Err(e) => panic!("create namespace /{ns}: {e}"),
    }
    root.close().await.expect("close");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            opts()
                .connect(&format!("{cs}/{ns}"))
                .await
                .expect("connect chrooted"),
        );
    }
    out
}

pub async fn within<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s waiting for {what}"))
}

/// Polls `cond` every 20 ms for at most `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

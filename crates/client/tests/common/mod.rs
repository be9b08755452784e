//! Shared helpers for the client's integration tests: one server per test binary while any
//! test uses it (reference-counted, so it is killed when the last user finishes), and
//! clients chrooted into a per-test namespace so tests on the shared server do not collide.
#![allow(dead_code)]

use corral_client::testing::TestServer;
use corral_client::{acls, Client, ClientOptions, CreateMode};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

static SHARED: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());

/// The shared server of this test binary (started on first use).
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

/// A client chrooted at `/<ns>` (created first) on `cs`.
pub async fn chrooted(cs: &str, ns: &str) -> Client {
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
    opts()
        .connect(&format!("{cs}/{ns}"))
        .await
        .expect("connect chrooted")
}

/// Awaits `f` for at most `secs` seconds, panicking with `what` on timeout.
pub async fn within<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s waiting for {what}"))
}

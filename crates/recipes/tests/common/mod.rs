//! Shared helpers for the recipe tests (the server and chroot helpers live in
//! `corral_client::testing`).
#![allow(dead_code, unused_imports)]

pub use corral_client::testing::{shared_server, test_options as opts};
use corral_client::Client;
use std::time::Duration;

/// `n` clients chrooted at `/<ns>` on `cs`.
pub async fn clients(cs: &str, ns: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(corral_client::testing::chrooted(cs, ns).await);
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

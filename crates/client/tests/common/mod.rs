//! Shared helpers for the client's integration tests (the server and chroot helpers live
//! in `corral_client::testing`, shared with the recipe tests).
#![allow(dead_code, unused_imports)]

pub use corral_client::testing::{chrooted, shared_server, test_options as opts};
use std::time::Duration;

/// Awaits `f` for at most `secs` seconds, panicking with `what` on timeout.
pub async fn within<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s waiting for {what}"))
}

//! corral-recipes: coordination recipes on [`corral_client`], each with its guarantee stated
//! where it is defined.
//!
//! | recipe | module | guarantee in one line |
//! |---|---|---|
//! | exclusive lock | [`lock`] | at most one holder among live sessions; waiters queue FIFO and each watches only its predecessor (no herd) |
//! | read/write lock | [`rwlock`] | writers exclusive, readers shared; a reader watches only the nearest earlier writer |
//! | leader latch / selector | [`election`] | at most one participant believes it leads while connected; leadership passes in arrival order |
//! | barrier, double barrier | [`barrier`] | nobody passes before the barrier is removed / before `count` have entered / left |
//! | queue, priority queue | [`queue`] | every item is taken by exactly one consumer; FIFO (within a priority) |
//! | shared counter | [`counter`] | read-modify-write with optimistic versions: no lost update |
//! | group membership | [`membership`] | a member is listed exactly while its session lives |
//!
//! Shared machinery lives here: protected names ([`protected_name`]) that let a create whose
//! reply was lost be found again, and [`create_protected`] which does that search, so a
//! recipe never leaks a node it cannot see.

pub mod barrier;
pub mod counter;
pub mod election;
pub mod lock;
pub mod membership;
pub mod queue;
pub mod rwlock;

use corral_client::connect_string::{join, SplitMix64};
use corral_client::{acls, Client, CreateMode, Error, Result};
use std::sync::Mutex;
use std::time::Duration;

pub use corral_client;

/// Attempts of a protected create before giving up (each bounded by the request timeout).
pub const PROTECTED_CREATE_ATTEMPTS_MAX: usize = 20;

/// Prefix of protected node names (the one Curator uses).
pub const PROTECTED_PREFIX: &str = "_c_";

static GUID_RNG: Mutex<Option<SplitMix64>> = Mutex::new(None);

/// A random 128-bit id in UUID text form (not cryptographic; unique enough to find our own
/// node again).
pub fn new_guid() -> String {
    let mut g = GUID_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let rng = g.get_or_insert_with(SplitMix64::from_entropy);
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// `_c_<guid>-<name>`: a node name that carries our GUID, so after a connection loss we can
/// tell whether our create went through.
pub fn protected_name(guid: &str, name: &str) -> String {
    format!("{PROTECTED_PREFIX}{guid}-{name}")
}

/// The name without a protected prefix (`_c_<guid>-lock-0000000003` → `lock-0000000003`).
pub fn unprotected(name: &str) -> &str {
    match name.strip_prefix(PROTECTED_PREFIX) {
        // guid is 36 characters, then '-'
        Some(rest) if rest.len() > 37 && rest.as_bytes()[36] == b'-' => &rest[37..],
        _ => name,
    }
}

/// The sequence number a sequential create appended (the last 10 characters).
pub fn sequence_of(name: &str) -> Option<i64> {
    if name.len() < 10 {
        return None;
    }
    let tail = &name[name.len() - 10..];
    tail.parse::<i64>().ok()
}

/// Sorts sequential child names by their sequence number (names without one go last).
pub fn sort_by_sequence(names: &mut [String]) {
    names.sort_by_key(|n| (sequence_of(n).unwrap_or(i64::MAX), n.clone()));
}

/// Creates `parent/_c_<guid>-<name>` (`mode` should be sequential or ephemeral), creating
/// `parent` first when missing. On ConnectionLoss / Timeout it looks among the children
/// for one carrying `guid` before retrying, so a create whose reply was lost is found rather
/// than duplicated. Returns the full path of our node.
pub async fn create_protected(
    client: &Client,
    parent: &str,
    guid: &str,
    name: &str,
    data: &[u8],
    mode: CreateMode,
) -> Result<String> {
    let path = join(parent, &protected_name(guid, name));
    let mut last_err = Error::ConnectionLoss;
    for attempt in 0..PROTECTED_CREATE_ATTEMPTS_MAX {
        if attempt > 0 {
            if let Some(found) = find_protected(client, parent, guid).await? {
                return Ok(found);
            }
        }
        match client.create(&path, data, &acls::open(), mode).await {
            Ok(p) => return Ok(p),
            Err(Error::NoNode) => {
                client.create_all(parent, b"", &acls::open()).await?;
            }
            Err(e) if e.is_outcome_unknown() => {
                last_err = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err)
}

/// The full path of the child of `parent` carrying `guid`, if any. Retries through
/// connection losses (bounded).
pub async fn find_protected(client: &Client, parent: &str, guid: &str) -> Result<Option<String>> {
    let needle = format!("{PROTECTED_PREFIX}{guid}-");
    let children = retry(client, || client.get_children(parent)).await;
    match children {
        Ok(kids) => Ok(kids
            .into_iter()
            .find(|k| k.starts_with(&needle))
            .map(|k| join(parent, &k))),
        Err(Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes `path` (any version), retrying through connection losses; NoNode counts as done.
pub async fn delete_quietly(client: &Client, path: &str) -> Result<()> {
    match retry(client, || client.delete(path, corral_client::ANY_VERSION)).await {
        Ok(()) | Err(Error::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Attempts of an idempotent call through connection losses.
pub const RETRY_ATTEMPTS_MAX: usize = 20;

/// Runs an idempotent call, retrying (bounded) while its outcome is unknown.
pub async fn retry<T, F, Fut>(_client: &Client, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut last = Error::ConnectionLoss;
    for _ in 0..RETRY_ATTEMPTS_MAX {
        match f().await {
            Err(e) if e.is_outcome_unknown() => {
                last = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_names_round_trip() {
        let g = new_guid();
        assert_eq!(g.len(), 36);
        assert_ne!(g, new_guid());
        let n = format!("{}0000000042", protected_name(&g, "lock-"));
        assert_eq!(unprotected(&n), "lock-0000000042");
        assert_eq!(sequence_of(&n), Some(42));
        assert_eq!(unprotected("plain"), "plain");
        let mut v = vec![
            format!("{}0000000003", protected_name(&new_guid(), "x-")),
            "x-0000000001".to_string(),
            format!("{}0000000002", protected_name(&new_guid(), "y-")),
        ];
        sort_by_sequence(&mut v);
        let seqs: Vec<i64> = v.iter().map(|n| sequence_of(n).unwrap()).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }
}

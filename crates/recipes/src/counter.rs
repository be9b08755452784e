//! Shared counter with optimistic concurrency (Curator's `SharedCount` /
//! `DistributedAtomicLong`).
//!
//! Owns: one node whose data is the value as an 8-byte big-endian i64 (empty data reads as 0).
//!
//! Guarantee: no lost update: [`SharedCounter::add`] reads value and version, writes with
//! `setData(version)` and retries on BadVersion, so concurrent adds all count. When the
//! reply of a write is lost, the counter is read again: an unchanged version means the write
//! was not applied and it is retried; a version moved by exactly one that holds our value is
//! taken as our write; anything else is reported as [`Error::ConnectionLoss`] rather than
//! guessed (the add may or may not have happened).

use corral_client::{acls, Client, CreateMode, Error, Result};
use std::time::Duration;

/// Attempts of a read-modify-write before giving up under contention.
pub const COUNTER_ATTEMPTS_MAX: usize = 1000;

/// A counter stored in one znode.
#[derive(Debug, Clone)]
pub struct SharedCounter {
    client: Client,
    path: String,
}

fn decode(d: &[u8]) -> Result<i64> {
    match d.len() {
        0 => Ok(0),
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(d);
            Ok(i64::from_be_bytes(a))
        }
        n => Err(Error::Protocol(format!(
            "counter node holds {n} bytes, expected 8"
        ))),
    }
}

impl SharedCounter {
    /// A counter at `path`, created with `initial` if missing.
    pub async fn new(client: &Client, path: &str, initial: i64) -> Result<SharedCounter> {
        let parent = corral_client::connect_string::parent(path);
        client.create_all(parent, b"", &acls::open()).await?;
        match client
            .create(
                path,
                &initial.to_be_bytes(),
                &acls::open(),
                CreateMode::Persistent,
            )
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
        Ok(SharedCounter {
            client: client.clone(),
            path: path.to_owned(),
        })
    }

    /// The value and the node version it was read at.
    pub async fn get(&self) -> Result<(i64, i32)> {
        let (d, stat) = crate::retry(&self.client, || self.client.get_data(&self.path)).await?;
        Ok((decode(&d)?, stat.version))
    }

    /// Sets the value if the node is still at `version`; `Ok(false)` if someone else wrote.
    pub async fn try_set(&self, value: i64, version: i32) -> Result<bool> {
        match self
            .client
            .set_data(&self.path, &value.to_be_bytes(), version)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::BadVersion) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `delta` and returns the new value.
    pub async fn add(&self, delta: i64) -> Result<i64> {
        for attempt in 0..COUNTER_ATTEMPTS_MAX {
            let (v, version) = self.get().await?;
            let new = v.checked_add(delta).ok_or_else(|| {
                Error::InvalidArgument(format!("counter overflow: {v} + {delta}"))
            })?;
            match self
                .client
                .set_data(&self.path, &new.to_be_bytes(), version)
                .await
            {
                Ok(_) => return Ok(new),
                Err(Error::BadVersion) => {
                    // Contention: back off a little, more as it persists.
                    let ms = (attempt as u64 % 8) * 2;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) if e.is_outcome_unknown() => {
                    let (now, now_version) = self.get().await?;
                    if now_version == version {
                        continue; // not applied; retry
                    }
                    if now_version == version + 1 && now == new {
                        return Ok(new); // almost certainly ours
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Timeout)
    }
}

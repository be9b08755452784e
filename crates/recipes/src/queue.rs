//! Distributed queue and priority queue (the ZooKeeper "Queues" recipes).
//!
//! Owns: persistent-sequential item nodes under the queue directory, named
//! `q-<priority:03>-<seq>`; a FIFO queue uses one priority for every item.
//!
//! Guarantee: every item offered is taken by exactly one consumer. Taking is: claim the item
//! with an ephemeral `claim` child carrying the consumer's GUID (only one create succeeds;
//! a lost reply is resolved by reading the GUID back), read the data, then delete claim and
//! item in one multi. A consumer that dies holding a claim loses it with its session, and
//! the item goes back to the queue. Items are taken in (priority, offer order): lower
//! priority numbers first, FIFO within a priority. An offer whose reply was lost may have
//! been applied (as with any ZooKeeper create); [`DistributedQueue::offer`] reports it as an
//! error rather than risk a duplicate.

use crate::{retry, sequence_of};
use bytes::Bytes;
use corral_client::connect_string::join;
use corral_client::{acls, Client, CreateMode, Error, Op, Result, ANY_VERSION};
use std::time::{Duration, Instant};

/// Child of an item node that marks it as being taken.
pub const CLAIM_NODE: &str = "claim";

/// Priority used by [`DistributedQueue::offer`].
pub const DEFAULT_PRIORITY: u8 = 100;

/// A FIFO / priority queue on a directory.
#[derive(Debug, Clone)]
pub struct DistributedQueue {
    client: Client,
    dir: String,
}

fn item_key(name: &str) -> Option<(u8, i64)> {
    let rest = name.strip_prefix("q-")?;
    let prio = rest.get(..3)?.parse::<u8>().ok()?;
    Some((prio, sequence_of(name)?))
}

impl DistributedQueue {
    pub fn new(client: &Client, dir: &str) -> DistributedQueue {
        DistributedQueue {
            client: client.clone(),
            dir: dir.to_owned(),
        }
    }

    /// Adds an item at the default priority. Returns its node path.
    pub async fn offer(&self, data: &[u8]) -> Result<String> {
        self.offer_with_priority(data, DEFAULT_PRIORITY).await
    }

    /// Adds an item; lower `priority` is taken first.
    pub async fn offer_with_priority(&self, data: &[u8], priority: u8) -> Result<String> {
        let path = join(&self.dir, &format!("q-{priority:03}-"));
        match self
            .client
            .create(&path, data, &acls::open(), CreateMode::PersistentSequential)
            .await
        {
            Err(Error::NoNode) => {
                self.client
                    .create_all(&self.dir, b"", &acls::open())
                    .await?;
                self.client
                    .create(&path, data, &acls::open(), CreateMode::PersistentSequential)
                    .await
            }
            other => other,
        }
    }

    async fn ordered(&self) -> Result<Vec<String>> {
        let mut kids = match retry(&self.client, || self.client.get_children(&self.dir)).await {
            Ok(k) => k,
            Err(Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        kids.retain(|k| item_key(k).is_some());
        kids.sort_by_key(|k| item_key(k).unwrap_or((u8::MAX, i64::MAX)));
        Ok(kids)
    }

    /// The head item without taking it.
    pub async fn peek(&self) -> Result<Option<Bytes>> {
        for k in self.ordered().await? {
            match self.client.get_data(&join(&self.dir, &k)).await {
                Ok((d, _)) => return Ok(Some(d)),
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Takes the head item if there is one.
    pub async fn poll(&self) -> Result<Option<Bytes>> {
        let guid = crate::new_guid();
        for k in self.ordered().await? {
            let p = join(&self.dir, &k);
            if !self.claim(&p, &guid).await? {
                continue;
            }
            let data = match retry(&self.client, || self.client.get_data(&p)).await {
                Ok((d, _)) => d,
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            let claim = join(&p, CLAIM_NODE);
            let ops = [Op::delete(&claim, ANY_VERSION), Op::delete(&p, ANY_VERSION)];
            for _ in 0..crate::RETRY_ATTEMPTS_MAX {
                match self.client.multi(&ops).await {
                    Ok(_) => return Ok(Some(data)),
                    Err(e) if e.is_outcome_unknown() => {
                        // Only the claimer deletes the item: gone means our multi went through.
                        if let Ok(None) = self.client.exists(&p).await {
                            return Ok(Some(data));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            return Err(Error::ConnectionLoss);
        }
        Ok(None)
    }

    /// Claims the item at `p` with an ephemeral child carrying `guid`. A claim dies with its
    /// session, so an item claimed by a crashed consumer goes back to the queue.
    async fn claim(&self, p: &str, guid: &str) -> Result<bool> {
        let claim = join(p, CLAIM_NODE);
        for _ in 0..crate::RETRY_ATTEMPTS_MAX {
            match self
                .client
                .create(
                    &claim,
                    guid.as_bytes(),
                    &acls::open(),
                    CreateMode::Ephemeral,
                )
                .await
            {
                Ok(_) => return Ok(true),
                Err(Error::NodeExists) | Err(Error::NoNode) => {
                    // Claimed by someone (maybe us, if a reply was lost), or already taken.
                    return match self.client.get_data(&claim).await {
                        Ok((d, _)) => Ok(&d[..] == guid.as_bytes()),
                        Err(Error::NoNode) => Ok(false),
                        Err(e) if e.is_outcome_unknown() => continue,
                        Err(e) => Err(e),
                    };
                }
                Err(e) if e.is_outcome_unknown() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::ConnectionLoss)
    }

    /// Takes the head item, waiting at most `timeout` for one.
    pub async fn take(&self, timeout: Duration) -> Result<Option<Bytes>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.poll().await? {
                return Ok(Some(d));
            }
            let w = match self.client.get_children_w(&self.dir).await {
                Ok((_, w)) => w,
                Err(Error::NoNode) => {
                    self.client
                        .create_all(&self.dir, b"", &acls::open())
                        .await?;
                    continue;
                }
                Err(e) if e.is_outcome_unknown() => continue,
                Err(e) => return Err(e),
            };
            // An item offered between the poll and the watch would not fire it: look again.
            if let Some(d) = self.poll().await? {
                return Ok(Some(d));
            }
            match tokio::time::timeout_at(deadline.into(), w).await {
                Ok(ev) if ev.is_session_end() => return Err(Error::SessionExpired),
                Ok(_) => continue,
                Err(_) => return Ok(None),
            }
        }
    }

    /// Number of items queued.
    pub async fn len(&self) -> Result<usize> {
        Ok(self.ordered().await?.len())
    }

    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_order_by_priority_then_sequence() {
        let mut v = [
            "q-100-0000000001",
            "q-005-0000000003",
            "q-100-0000000000",
            "junk",
        ];
        v.sort_by_key(|k| item_key(k).unwrap_or((u8::MAX, i64::MAX)));
        assert_eq!(
            v,
            [
                "q-005-0000000003",
                "q-100-0000000000",
                "q-100-0000000001",
                "junk"
            ]
        );
    }
}

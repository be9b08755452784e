//! Group membership and service discovery with ephemeral nodes.
//!
//! Owns: one ephemeral node `dir/<member id>` per member, holding the member's data (for
//! service discovery: its address).
//!
//! Guarantee: a member is listed exactly while its session lives (the server deletes the
//! ephemeral when the session ends, by close or expiry). [`GroupWatcher`] reports every
//! change of the member set: it re-reads the list and re-arms one child watch after each
//! event, so several quick changes may be reported as one new list, never lost.

use bytes::Bytes;
use corral_client::connect_string::join;
use corral_client::{acls, Client, CreateMode, Error, Result, WatchFuture};
use std::time::Duration;

/// This process's membership in a group.
#[derive(Debug)]
pub struct Membership {
    client: Client,
    path: String,
}

impl Membership {
    /// Joins `dir` as `id` with `data`. Fails with NodeExists if another live session uses
    /// `id`; succeeds if this session already holds it (a retried join).
    pub async fn join(client: &Client, dir: &str, id: &str, data: &[u8]) -> Result<Membership> {
        client.create_all(dir, b"", &acls::open()).await?;
        let path = join(dir, id);
        for _ in 0..crate::RETRY_ATTEMPTS_MAX {
            match client
                .create(&path, data, &acls::open(), CreateMode::Ephemeral)
                .await
            {
                Ok(_) => {
                    return Ok(Membership {
                        client: client.clone(),
                        path,
                    })
                }
                Err(Error::NodeExists) => {
                    match client.exists(&path).await? {
                        Some(st) if st.ephemeral_owner == client.session_id() => {
                            return Ok(Membership {
                                client: client.clone(),
                                path,
                            })
                        }
                        Some(_) => return Err(Error::NodeExists),
                        None => continue, // the old owner just left
                    }
                }
                Err(e) if e.is_outcome_unknown() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::ConnectionLoss)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Updates this member's data.
    pub async fn update(&self, data: &[u8]) -> Result<()> {
        self.client
            .set_data(&self.path, data, corral_client::ANY_VERSION)
            .await
            .map(|_| ())
    }

    /// Leaves the group.
    pub async fn leave(self) -> Result<()> {
        crate::delete_quietly(&self.client, &self.path).await
    }

    /// The member ids of `dir`, sorted.
    pub async fn members(client: &Client, dir: &str) -> Result<Vec<String>> {
        match client.get_children(dir).await {
            Ok(mut k) => {
                k.sort();
                Ok(k)
            }
            Err(Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Members with their data (service discovery), sorted by id. Members that leave while
    /// being read are skipped.
    pub async fn instances(client: &Client, dir: &str) -> Result<Vec<(String, Bytes)>> {
        let mut out = Vec::new();
        for id in Membership::members(client, dir).await? {
            match client.get_data(&join(dir, &id)).await {
                Ok((d, _)) => out.push((id, d)),
                Err(Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// Follows the member list of a group.
#[derive(Debug)]
pub struct GroupWatcher {
    client: Client,
    dir: String,
    pending: Option<WatchFuture>,
}

impl GroupWatcher {
    pub fn new(client: &Client, dir: &str) -> GroupWatcher {
        GroupWatcher {
            client: client.clone(),
            dir: dir.to_owned(),
            pending: None,
        }
    }

    /// The current member list; arms a watch for [`GroupWatcher::changed`].
    pub async fn members(&mut self) -> Result<Vec<String>> {
        self.client
            .create_all(&self.dir, b"", &acls::open())
            .await?;
        let (mut kids, w) = self.client.get_children_w(&self.dir).await?;
        kids.sort();
        self.pending = Some(w);
        Ok(kids)
    }

    /// Waits (at most `timeout`) for the member list to change and returns the new list;
    /// `Ok(None)` on timeout.
    pub async fn changed(&mut self, timeout: Duration) -> Result<Option<Vec<String>>> {
        let w = match self.pending.take() {
            Some(w) => w,
            None => return self.members().await.map(Some),
        };
        let mut w = w;
        match tokio::time::timeout(timeout, &mut w).await {
            Ok(ev) if ev.is_session_end() => Err(Error::SessionExpired),
            Ok(_) => self.members().await.map(Some),
            Err(_) => {
                self.pending = Some(w);
                Ok(None)
            }
        }
    }
}

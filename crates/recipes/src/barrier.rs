//! Barriers (the ZooKeeper "Barriers" and "Double Barriers" recipes).
//!
//! [`Barrier`] owns one node: while it exists, [`Barrier::wait`] blocks. Guarantee: nobody
//! returns from `wait` while the node exists (each waiter re-reads after every event).
//!
//! [`DoubleBarrier`] owns a directory holding one ephemeral node per participant plus a
//! `ready` node. Guarantee: no participant leaves `enter` before `count` participants have
//! entered, and no participant leaves `leave` before every participant has called `leave`.
//! Participants that crash are removed with their session, so a crash during the
//! computation lets the others leave. Waiters in `leave` watch one node each (the lowest
//! watches the highest, the others the lowest), not the whole directory. The last one out
//! deletes `ready`, so the directory can be used again.

use crate::{delete_quietly, retry, sort_by_sequence};
use corral_client::connect_string::join;
use corral_client::{acls, Client, CreateMode, Error, Result};
use std::time::{Duration, Instant};

/// A barrier that holds everyone until it is removed.
#[derive(Debug, Clone)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    pub fn new(client: &Client, path: &str) -> Barrier {
        Barrier {
            client: client.clone(),
            path: path.to_owned(),
        }
    }

    /// Raises the barrier (creates the node; fine if it exists).
    pub async fn set(&self) -> Result<()> {
        let parent = corral_client::connect_string::parent(&self.path);
        self.client.create_all(parent, b"", &acls::open()).await?;
        match self
            .client
            .create(&self.path, b"", &acls::open(), CreateMode::Persistent)
            .await
        {
            Ok(_) | Err(Error::NodeExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the barrier, releasing every waiter.
    pub async fn remove(&self) -> Result<()> {
        delete_quietly(&self.client, &self.path).await
    }

    /// Waits until the barrier is gone; `Ok(false)` if `timeout` passed first.
    pub async fn wait(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let (stat, w) = retry(&self.client, || self.client.exists_w(&self.path)).await?;
            if stat.is_none() {
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline.into(), w).await {
                Ok(ev) if ev.is_session_end() => return Err(Error::SessionExpired),
                Ok(_) => continue,
                Err(_) => return Ok(false),
            }
        }
    }
}

/// Name of the node that tells everyone the double barrier is full.
pub const READY_NODE: &str = "ready";

/// A barrier that synchronises the start and the end of a computation among `count`
/// participants.
#[derive(Debug)]
pub struct DoubleBarrier {
    client: Client,
    dir: String,
    count: usize,
    me: Option<String>,
}

impl DoubleBarrier {
    pub fn new(client: &Client, dir: &str, count: usize) -> DoubleBarrier {
        DoubleBarrier {
            client: client.clone(),
            dir: dir.to_owned(),
            count,
            me: None,
        }
    }

    fn ready(&self) -> String {
        join(&self.dir, READY_NODE)
    }

    async fn participants(&self) -> Result<Vec<String>> {
        let mut kids = retry(&self.client, || self.client.get_children(&self.dir)).await?;
        kids.retain(|k| k != READY_NODE);
        sort_by_sequence(&mut kids);
        Ok(kids)
    }

    /// Joins and waits until `count` participants have joined. `Ok(false)` on timeout (our
    /// node is then removed).
    pub async fn enter(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        self.client
            .create_all(&self.dir, b"", &acls::open())
            .await?;
        // Watch `ready` before joining, so its creation cannot be missed.
        let ready_path = self.ready();
        let (ready, mut ready_w) =
            retry(&self.client, || self.client.exists_w(&ready_path)).await?;
        let guid = crate::new_guid();
        let me = crate::create_protected(
            &self.client,
            &self.dir,
            &guid,
            "p-",
            b"",
            CreateMode::EphemeralSequential,
        )
        .await?;
        self.me = Some(me.clone());
        if ready.is_some() {
            return Ok(true);
        }
        loop {
            if self.participants().await?.len() >= self.count {
                match self
                    .client
                    .create(&self.ready(), b"", &acls::open(), CreateMode::Persistent)
                    .await
                {
                    Ok(_) | Err(Error::NodeExists) => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            match tokio::time::timeout_at(deadline.into(), &mut ready_w).await {
                Ok(ev) if ev.is_session_end() => return Err(Error::SessionExpired),
                Ok(_) => {
                    let (s, w) = retry(&self.client, || self.client.exists_w(&ready_path)).await?;
                    if s.is_some() {
                        return Ok(true);
                    }
                    ready_w = w;
                }
                Err(_) => {
                    self.me = None;
                    delete_quietly(&self.client, &me).await?;
                    return Ok(false);
                }
            }
        }
    }

    /// Leaves and waits until every participant has left. `Ok(false)` on timeout.
    pub async fn leave(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let Some(me) = self.me.clone() else {
            return Err(Error::InvalidArgument("leave() without enter()".into()));
        };
        let my_name = corral_client::connect_string::basename(&me).to_owned();
        loop {
            let kids = self.participants().await?;
            if kids.is_empty() {
                break;
            }
            let mine = kids.iter().position(|k| *k == my_name);
            if kids.len() == 1 && mine.is_some() {
                delete_quietly(&self.client, &me).await?;
                break;
            }
            // The lowest waits for the highest to go; everyone else leaves and waits for the
            // lowest.
            let target = match mine {
                Some(0) => kids[kids.len() - 1].clone(),
                Some(_) => {
                    delete_quietly(&self.client, &me).await?;
                    kids[0].clone()
                }
                None => kids[0].clone(),
            };
            let target_path = join(&self.dir, &target);
            let (s, w) = retry(&self.client, || self.client.exists_w(&target_path)).await?;
            if s.is_none() {
                continue;
            }
            match tokio::time::timeout_at(deadline.into(), w).await {
                Ok(ev) if ev.is_session_end() => return Err(Error::SessionExpired),
                Ok(_) => continue,
                Err(_) => return Ok(false),
            }
        }
        self.me = None;
        // Last one out: reset for the next round (another leaver may have done it).
        delete_quietly(&self.client, &self.ready()).await?;
        Ok(true)
    }
}

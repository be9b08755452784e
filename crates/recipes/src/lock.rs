//! Exclusive lock without herd effect (the ZooKeeper "Locks" recipe), and the queue-lock core
//! shared with [`crate::rwlock`].
//!
//! Owns: one ephemeral-sequential node per contender under the lock directory, named
//! `_c_<guid>-lock-<seq>` (protected: a create whose reply was lost is found by its GUID, so
//! no node leaks and no contender waits behind itself).
//!
//! Guarantee: among sessions that are alive, at most one holds the lock: the holder is the
//! contender with the lowest sequence number. Contenders acquire in the order their nodes were
//! created. Each waiter watches only its immediate predecessor, so a release wakes exactly one
//! waiter (no herd effect); a waiter whose predecessor gave up re-checks and watches the next
//! one. If a holder's session expires its node is deleted and the next waiter takes over; the
//! old holder learns of it through [`corral_client::SessionState`] (Disconnected means the
//! lock *may* be lost; Expired means it is). The lock is not re-entrant.

use crate::{create_protected, delete_quietly, new_guid, retry, sort_by_sequence, unprotected};
use corral_client::connect_string::join;
use corral_client::{Client, CreateMode, Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a contender is, which decides whom it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Exclusive,
    Read,
    Write,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Exclusive => "lock-",
            Kind::Read => "read-",
            Kind::Write => "write-",
        }
    }

    /// The index of the node this contender must wait for, or `None` when it holds the lock.
    /// `kids` is sorted by sequence; `me` is our index in it.
    fn blocker(self, kids: &[String], me: usize) -> Option<usize> {
        match self {
            Kind::Exclusive | Kind::Write => me.checked_sub(1),
            Kind::Read => (0..me)
                .rev()
                .find(|&j| unprotected(&kids[j]).starts_with(Kind::Write.prefix())),
        }
    }
}

/// A contender for a lock directory. Create one per acquisition attempt or reuse it after
/// [`Mutex::release`].
#[derive(Debug)]
pub struct Mutex {
    client: Client,
    dir: String,
    kind: Kind,
    data: Vec<u8>,
    node: Option<String>,
    wakeups: Arc<AtomicU64>,
}

impl Mutex {
    /// An exclusive lock on `dir` (created when missing).
    pub fn new(client: &Client, dir: &str) -> Mutex {
        Mutex::with_kind(client, dir, Kind::Exclusive)
    }

    pub(crate) fn with_kind(client: &Client, dir: &str, kind: Kind) -> Mutex {
        Mutex {
            client: client.clone(),
            dir: dir.to_owned(),
            kind,
            data: Vec::new(),
            node: None,
            wakeups: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Data stored in our lock node (e.g. the holder's id, read by [`Mutex::holder_data`]).
    pub fn data(mut self, data: &[u8]) -> Mutex {
        self.data = data.to_vec();
        self
    }

    /// Waits until the lock is held.
    pub async fn acquire(&mut self) -> Result<()> {
        if self.try_acquire_until(None).await? {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }

    /// Waits at most `timeout`; returns whether the lock is held. On `false` our node is
    /// removed again.
    pub async fn try_acquire(&mut self, timeout: Duration) -> Result<bool> {
        self.try_acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn try_acquire_until(&mut self, deadline: Option<Instant>) -> Result<bool> {
        if self.node.is_some() {
            return Err(Error::InvalidArgument(
                "lock already held by this contender".into(),
            ));
        }
        let guid = new_guid();
        let path = create_protected(
            &self.client,
            &self.dir,
            &guid,
            self.kind.prefix(),
            &self.data,
            CreateMode::EphemeralSequential,
        )
        .await?;
        let r = wait_turn(
            &self.client,
            &self.dir,
            &path,
            self.kind,
            deadline,
            &self.wakeups,
        )
        .await;
        match r {
            Ok(true) => {
                self.node = Some(path);
                Ok(true)
            }
            Ok(false) => {
                delete_quietly(&self.client, &path).await?;
                Ok(false)
            }
            Err(e) => {
                if !e.is_session_terminal() {
                    let _ = delete_quietly(&self.client, &path).await;
                }
                Err(e)
            }
        }
    }

    /// Releases the lock (deletes our node). A no-op when not held.
    pub async fn release(&mut self) -> Result<()> {
        if let Some(p) = self.node.take() {
            delete_quietly(&self.client, &p).await?;
        }
        Ok(())
    }

    /// Whether this contender believes it holds the lock (see the module docs about sessions).
    pub fn is_held(&self) -> bool {
        self.node.is_some()
    }

    /// Our lock node while held.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// How many watch events woke this contender while waiting, over its lifetime. With no
    /// herd effect a contender is woken once per acquisition (zero when it found the lock
    /// free), unless a predecessor gave up.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Number of contenders (holder included) currently queued on `dir`.
    pub async fn queue_len(client: &Client, dir: &str) -> Result<usize> {
        match client.get_children(dir).await {
            Ok(k) => Ok(k.len()),
            Err(Error::NoNode) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The data of the current holder's node, if anyone holds the lock.
    pub async fn holder_data(client: &Client, dir: &str) -> Result<Option<Vec<u8>>> {
        for _ in 0..crate::RETRY_ATTEMPTS_MAX {
            let mut kids = match client.get_children(dir).await {
                Ok(k) => k,
                Err(Error::NoNode) => return Ok(None),
                Err(e) => return Err(e),
            };
            sort_by_sequence(&mut kids);
            let Some(first) = kids.first() else {
                return Ok(None);
            };
            match client.get_data(&join(dir, first)).await {
                Ok((d, _)) => return Ok(Some(d.to_vec())),
                Err(Error::NoNode) => continue, // released meanwhile
                Err(e) => return Err(e),
            }
        }
        Err(Error::Timeout)
    }
}

/// Waits until the contender at `our_path` is not blocked. `Ok(false)` when `deadline`
/// passed first.
pub(crate) async fn wait_turn(
    client: &Client,
    dir: &str,
    our_path: &str,
    kind: Kind,
    deadline: Option<Instant>,
    wakeups: &AtomicU64,
) -> Result<bool> {
    let our_name = corral_client::connect_string::basename(our_path).to_owned();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        let mut kids = retry(client, || client.get_children(dir)).await?;
        sort_by_sequence(&mut kids);
        let Some(me) = kids.iter().position(|k| *k == our_name) else {
            // Our ephemeral is gone: the session expired (or someone deleted it).
            return Err(match client.state() {
                s if s.is_terminal() => Error::SessionExpired,
                _ => Error::NoNode,
            });
        };
        let Some(b) = kind.blocker(&kids, me) else {
            return Ok(true);
        };
        let pred = join(dir, &kids[b]);
        let watch = match client.exists_w(&pred).await {
            Ok((Some(_), w)) => w,
            Ok((None, _)) => continue, // predecessor left between the two reads
            Err(e) if e.is_outcome_unknown() => continue,
            Err(e) => return Err(e),
        };
        let ev = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), watch).await {
                Ok(ev) => ev,
                Err(_) => return Ok(false),
            },
            None => watch.await,
        };
        if ev.is_session_end() {
            return Err(if client.state() == corral_client::SessionState::Expired {
                Error::SessionExpired
            } else {
                Error::Closed
            });
        }
        wakeups.fetch_add(1, Ordering::Relaxed);
    }
}

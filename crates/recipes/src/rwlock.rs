//! Shared (read/write) lock without herd effect (the ZooKeeper "Shared Locks" recipe).
//!
//! Owns: `_c_<guid>-read-<seq>` and `_c_<guid>-write-<seq>` ephemeral-sequential nodes in one
//! directory.
//!
//! Guarantee: a writer holds the lock only when its node is the lowest (no reader or writer
//! ahead of it); a reader holds it when no *writer* node is ahead of it, so readers share.
//! Requests are served in creation order (a reader arriving after a waiting writer waits for
//! that writer: no writer starvation). A writer watches its immediate predecessor; a reader
//! watches only the nearest writer ahead of it, so a release wakes only the contenders it
//! actually unblocks. Session loss behaves as for [`crate::lock::Mutex`].

use crate::lock::{Kind, Mutex};
use corral_client::Client;

/// A read/write lock on a directory; hands out contenders of either kind.
#[derive(Debug, Clone)]
pub struct ReadWriteLock {
    client: Client,
    dir: String,
}

impl ReadWriteLock {
    pub fn new(client: &Client, dir: &str) -> ReadWriteLock {
        ReadWriteLock {
            client: client.clone(),
            dir: dir.to_owned(),
        }
    }

    /// A reader contender (shared with other readers).
    pub fn read_lock(&self) -> Mutex {
        Mutex::with_kind(&self.client, &self.dir, Kind::Read)
    }

    /// A writer contender (exclusive).
    pub fn write_lock(&self) -> Mutex {
        Mutex::with_kind(&self.client, &self.dir, Kind::Write)
    }
}

//! Typed storage errors. Every error that comes from bytes on disk names the file and the
//! byte offset where the problem was found; every I/O error names the operation and path.
//!
//! `StorageError` is `Clone` (I/O errors are shared behind an `Arc`) so that a latched
//! writer can hand the original failure back on every later call.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An error a [`crate::SnapshotSink`] or [`crate::SnapshotSource`] reports; carried inside
/// [`StorageError::Sink`] / [`StorageError::Source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A zxid printed the way ZooKeeper prints it in file names and logs (`0x1f`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Zxid(pub i64);

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },

    /// A txn log holds a damaged record that is followed by more valid data (or by a later
    /// log file with entries), so it cannot be a torn tail.
    #[error("corrupt txn log {} at offset {offset}: {reason}", file.display())]
    CorruptLog {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A snapshot fails its checksum or cannot be parsed.
    #[error("corrupt snapshot {} at offset {offset}: {reason}", file.display())]
    CorruptSnapshot {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// Txns are missing between two log entries (for example a deleted log file).
    #[error(
        "missing txns in the txn logs: after zxid {after} the next entry is zxid {next} in {} \
         at offset {offset} (a log file may be missing)",
        file.display()
    )]
    Gap {
        after: Zxid,
        next: Zxid,
        file: PathBuf,
        offset: u64,
    },

    /// The newest snapshot is damaged and the older snapshots plus the txn logs do not
    /// reach the zxid it holds, so falling back would lose committed txns.
    #[error(
        "snapshot {} is damaged ({cause}) and cannot be replaced: from the older state the \
         txn logs reach only zxid {reached}",
        snapshot.display()
    )]
    SnapshotUnrecoverable {
        snapshot: PathBuf,
        cause: Box<StorageError>,
        reached: Zxid,
    },

    /// Txn logs exist but no snapshot does, and the logs do not start at the first txn.
    #[error(
        "no snapshot found, but there are log entries (first zxid {first} in {}); set \
         trust_empty_snapshot (ZooKeeper's zookeeper.snapshot.trust.empty) to replay them \
         onto an empty tree",
        file.display()
    )]
    LogsWithoutSnapshot { first: Zxid, file: PathBuf },

    /// An epoch file does not hold a decimal number.
    #[error("bad epoch file {}: {reason}", file.display())]
    BadEpochFile { file: PathBuf, reason: String },

    /// A txn entry is larger than a reader accepts ([`crate::log::ENTRY_BYTES_MAX`]).
    #[error("txn entry of {bytes} bytes exceeds the limit of {max} bytes")]
    EntryTooLarge { bytes: usize, max: usize },

    /// A zxid given to the writer does not increase.
    #[error("zxid {zxid} does not follow the last appended zxid {last}")]
    ZxidNotIncreasing { zxid: Zxid, last: Zxid },

    /// `truncate` was asked for a zxid older than every log file.
    #[error("cannot truncate the txn logs in {} to zxid {zxid}: {reason}", dir.display())]
    CannotTruncate {
        dir: PathBuf,
        zxid: Zxid,
        reason: String,
    },

    /// A snapshot sink rejected what was read (for example a node whose parent is missing).
    #[error("snapshot {} at offset {offset}: {source}", file.display())]
    Sink {
        file: PathBuf,
        offset: u64,
        source: Arc<BoxError>,
    },

    /// A snapshot source failed or broke its contract (for example counts that do not
    /// match what it visits).
    #[error("snapshot source: {0}")]
    Source(String),

    /// A retention or other setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, e: io::Error) -> StorageError {
        StorageError::Io {
            op,
            path: path.into(),
            source: Arc::new(e),
        }
    }

    /// Whether this error says the bytes on disk are damaged (as opposed to an I/O failure
    /// or a bad argument).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StorageError::CorruptLog { .. }
                | StorageError::CorruptSnapshot { .. }
                | StorageError::Gap { .. }
                | StorageError::SnapshotUnrecoverable { .. }
                | StorageError::BadEpochFile { .. }
        )
    }
}

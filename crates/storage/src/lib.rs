//! Durable storage in Apache ZooKeeper's own data-directory format, so corral starts on a
//! directory ZooKeeper wrote and ZooKeeper starts on one corral wrote.
//!
//! | module | owns |
//! |---|---|
//! | [`fs`] | the file-system trait storage runs on; the real one and a fault injector |
//! | [`layout`] | `version-2` directories, file names, which logs a replay needs |
//! | [`log`] | txn log format, group-commit writer, damage-classifying reader, truncation |
//! | [`snapshot`] | snapshot format, streaming writer/reader, `SnapshotSource`/`SnapshotSink` |
//! | [`snapstream`] | the snapshot body a leader sends after `SNAP` on the quorum port |
//! | [`image`] | `SnapshotImage`, an in-memory snapshot for tests and tools; tree digest |
//! | [`epoch`] | `acceptedEpoch` / `currentEpoch` files |
//! | [`recovery`] | choosing a snapshot and the logs to replay; repairing torn tails |
//! | [`retention`] | purging old snapshots and logs (ZooKeeper's `PurgeTxnLog` rules) |
//! | [`trigger`] | the randomised roll/snapshot rule, seeded |
//! | [`dump`] | text dumps in the layout of ZooKeeper's `TxnLogToolkit` / `SnapshotFormatter` |
//!
//! All I/O is synchronous and goes through [`fs::FileSystem`]; the server runs storage on a
//! dedicated thread. Nothing here panics on bytes read from disk: damage is a typed
//! [`StorageError`] naming the file and the byte offset. Writers latch on the first failed
//! write or fsync and never retry an fsync.

pub mod cursor;
pub mod dump;
pub mod epoch;
pub mod error;
pub mod fs;
pub mod image;
pub mod layout;
pub mod log;
pub mod recovery;
pub mod retention;
pub mod snapshot;
pub mod snapstream;
pub mod trigger;

pub use error::{Result, StorageError, Zxid};
pub use fs::{FaultFs, FaultOp, FileSystem, StdFs};
pub use image::SnapshotImage;
pub use layout::DataDirs;
pub use log::{LogIter, LogRecord, LogWriterOptions, TornTail, TxnLogWriter};
pub use recovery::{plan_recovery, RecoveryOptions, RecoveryPlan};
pub use snapshot::{
    read_snapshot, write_snapshot, NodeRecord, SnapshotInfo, SnapshotSink, SnapshotSource,
    ZxidDigest,
};
pub use trigger::{SnapTrigger, SnapTriggerConfig};

//! `acceptedEpoch` and `currentEpoch` in `dataDir/version-2`.
//!
//! ```text
//! file = ASCII decimal i64, no sign for non-negative values, no newline
//! ```
//!
//! ZooKeeper reads them with `readLine` + `Long.parseLong`, so a trailing newline is
//! accepted on reading; they are written atomically: `<name>.tmp`, fsync, rename, fsync the
//! directory (ZooKeeper's `AtomicFileWritingIdiom`). Owns only the bytes and the atomic
//! replace; the rules that relate the epochs to the last logged zxid belong to the quorum
//! code.

use crate::error::{Result, StorageError};
use crate::fs::FileSystem;
use crate::layout::TMP_SUFFIX;
use std::io;
use std::path::Path;

/// The epoch a peer has accepted in a NEWEPOCH.
pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";
/// The epoch of the leader a peer last synced with.
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";
/// Left by ZooKeeper while a learner updates `currentEpoch` after sync.
pub const UPDATING_EPOCH_FILE: &str = "updatingEpoch";
/// An epoch file longer than this many bytes is not an epoch file.
pub const EPOCH_FILE_BYTES_MAX: u64 = 64;

/// Reads `dir/name`; `Ok(None)` when it does not exist.
pub fn read_epoch(fs: &dyn FileSystem, dir: &Path, name: &str) -> Result<Option<i64>> {
    let path = dir.join(name);
    let f = match fs.open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open", &path, e)),
    };
    let len = f.len();
    let bad = |reason: String| StorageError::BadEpochFile {
        file: path.clone(),
        reason,
    };
    if len > EPOCH_FILE_BYTES_MAX {
        return Err(bad(format!("{len} bytes is too long")));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(0, &mut buf)
        .map_err(|e| StorageError::io("read", &path, e))?;
    let text = std::str::from_utf8(&buf).map_err(|_| bad("not ASCII".into()))?;
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    line.parse::<i64>()
        .map(Some)
        .map_err(|_| bad(format!("{line:?} is not a decimal number")))
}

/// Replaces `dir/name` with `epoch` atomically and durably.
pub fn write_epoch(fs: &dyn FileSystem, dir: &Path, name: &str, epoch: i64) -> Result<()> {
    fs.create_dir_all(dir)
        .map_err(|e| StorageError::io("create directory", dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut f = fs
        .create(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    f.write_at(0, epoch.to_string().as_bytes())
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    f.sync_all()
        .map_err(|e| StorageError::io("fsync", &tmp, e))?;
    drop(f);
    fs.rename(&tmp, &path)
        .map_err(|e| StorageError::io("rename", &tmp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// `acceptedEpoch`, if present.
pub fn read_accepted_epoch(fs: &dyn FileSystem, snap_dir: &Path) -> Result<Option<i64>> {
    read_epoch(fs, snap_dir, ACCEPTED_EPOCH_FILE)
}

/// `currentEpoch`, if present.
pub fn read_current_epoch(fs: &dyn FileSystem, snap_dir: &Path) -> Result<Option<i64>> {
    read_epoch(fs, snap_dir, CURRENT_EPOCH_FILE)
}

pub fn write_accepted_epoch(fs: &dyn FileSystem, snap_dir: &Path, epoch: i64) -> Result<()> {
    write_epoch(fs, snap_dir, ACCEPTED_EPOCH_FILE, epoch)
}

pub fn write_current_epoch(fs: &dyn FileSystem, snap_dir: &Path, epoch: i64) -> Result<()> {
    write_epoch(fs, snap_dir, CURRENT_EPOCH_FILE, epoch)
}

//! The small file-system interface storage runs on, with the real implementation
//! ([`StdFs`]) and a fault-injecting wrapper ([`FaultFs`]) for tests and the simulator.
//!
//! Owns: nothing but the mapping of storage's few needs onto the OS. Storage never calls
//! `std::fs` directly, so a simulator can substitute a file system that tears writes or
//! loses what was not synced.
//!
//! Contract the rest of the crate relies on:
//! * [`WriteFile::write_at`] writes the whole buffer or fails; a failure may leave any
//!   prefix of it on disk (a torn write).
//! * [`WriteFile::sync_data`] / [`WriteFile::sync_all`] make every byte written so far
//!   durable (fdatasync / fsync). After a failed sync nothing is known about what is on
//!   disk; callers latch and never retry (the "fsyncgate" rule).
//! * [`FileSystem::sync_dir`] makes creations, renames and removals in a directory durable.
//!
//! Threading: implementations are `Send + Sync`; one storage thread drives them.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A file opened for reading. `len` is the length when it was opened.
pub trait ReadFile: Send + fmt::Debug {
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at end of file).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Where data may start at or after `offset`: a file system that keeps holes (the
    /// sparse preallocated tail of a txn log) says where the next non-hole begins, and
    /// `None` when only a hole is left, so a scan for non-zero bytes need not read zeros
    /// the disk does not even hold. The default knows of no holes.
    fn data_from(&self, offset: u64) -> io::Result<Option<u64>> {
        Ok((offset < self.len()).then_some(offset))
    }

    /// Fills `buf` from `offset` or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(offset, buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            offset += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// A file opened for writing.
pub trait WriteFile: Send + fmt::Debug {
    /// Writes all of `data` at `offset` (extending the file, sparsely if past its end).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// fdatasync: file data (and the size) durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// fsync: data and metadata durable.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// The operations storage needs from a file system.
pub trait FileSystem: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>>;
    /// Creates a file that must not exist yet.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Creates a file, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes entry changes in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system (`std::fs`, positional I/O, `fdatasync`/`fsync`).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl StdFs {
    pub fn shared() -> Arc<dyn FileSystem> {
        Arc::new(StdFs)
    }
}

#[derive(Debug)]
struct StdReadFile {
    file: File,
    len: u64,
}

impl ReadFile for StdReadFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// `lseek(SEEK_DATA)`. A file system without hole support answers `offset` itself
    /// (or EINVAL, taken the same way), which only costs reading the zeros.
    fn data_from(&self, offset: u64) -> io::Result<Option<u64>> {
        use std::os::unix::io::AsRawFd;
        if offset >= self.len {
            return Ok(None);
        }
        let Ok(off) = libc::off_t::try_from(offset) else {
            return Ok(Some(offset));
        };
        // SAFETY: lseek takes no pointers; the descriptor is owned by `self.file` and
        // open for its lifetime. Positional reads do not use the file offset it moves.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), off, libc::SEEK_DATA) };
        if r >= 0 {
            return Ok(Some((r as u64).max(offset)));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            Some(libc::EINVAL) => Ok(Some(offset)),
            _ => Err(e),
        }
    }
}

#[derive(Debug)]
struct StdWriteFile {
    file: File,
}

impl WriteFile for StdWriteFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            if let Some(name) = e.file_name().to_str() {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(StdReadFile { file, len }))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(StdWriteFile { file }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdWriteFile { file }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Which operation a [`FaultFs`] fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `WriteFile::write_at` (a failing write first writes half of its buffer: torn).
    Write,
    /// `WriteFile::sync_data` and `sync_all`.
    Sync,
    /// `FileSystem::create` and `create_new`.
    Create,
    /// `FileSystem::rename`.
    Rename,
    /// `FileSystem::sync_dir`.
    SyncDir,
    /// `FileSystem::truncate`.
    Truncate,
    /// `FileSystem::remove_file`.
    Remove,
}

const FAULT_OPS: usize = 7;

impl FaultOp {
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
struct FaultState {
    calls: [u64; FAULT_OPS],
    /// Per op: fail the call whose number (0-based, over the wrapper's life) is >= this.
    fail_from: [Option<u64>; FAULT_OPS],
}

/// Wraps a file system and makes chosen calls fail with `EIO`, to test that writers latch.
/// Faults are armed per operation: [`FaultFs::fail_after`]`(op, n)` lets `n` more calls
/// of `op` succeed and fails every one after them.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn FileSystem>,
    state: Arc<Mutex<FaultState>>,
}

impl FaultFs {
    pub fn new(inner: Arc<dyn FileSystem>) -> FaultFs {
        FaultFs {
            inner,
            state: Arc::new(Mutex::new(FaultState::default())),
        }
    }

    /// Lets `n` more calls of `op` succeed, then fails all later ones.
    pub fn fail_after(&self, op: FaultOp, n: u64) {
        let mut s = self.lock();
        let now = s.calls[op.index()];
        s.fail_from[op.index()] = Some(now + n);
    }

    /// Disarms the fault on `op`.
    pub fn heal(&self, op: FaultOp) {
        self.lock().fail_from[op.index()] = None;
    }

    /// How many calls of `op` were made (failed ones included).
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.lock().calls[op.index()]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic while holding this lock can only come from a test assertion; the
        // counters stay meaningful, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(state: &Mutex<FaultState>, op: FaultOp) -> io::Result<()> {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let n = s.calls[op.index()];
        s.calls[op.index()] += 1;
        match s.fail_from[op.index()] {
            Some(from) if n >= from => Err(io::Error::other(format!(
                "injected {op:?} failure (call {n})"
            ))),
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
struct FaultWriteFile {
    inner: Box<dyn WriteFile>,
    state: Arc<Mutex<FaultState>>,
}

impl WriteFile for FaultWriteFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Err(e) = FaultFs::check(&self.state, FaultOp::Write) {
            let half = data.len() / 2;
            let _ = self.inner.write_at(offset, &data[..half]);
            return Err(e);
        }
        self.inner.write_at(offset, data)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        FaultFs::check(&self.state, FaultOp::Sync)?;
        self.inner.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        FaultFs::check(&self.state, FaultOp::Sync)?;
        self.inner.sync_all()
    }
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>> {
        self.inner.open_read(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        FaultFs::check(&self.state, FaultOp::Create)?;
        Ok(Box::new(FaultWriteFile {
            inner: self.inner.create_new(path)?,
            state: self.state.clone(),
        }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        FaultFs::check(&self.state, FaultOp::Create)?;
        Ok(Box::new(FaultWriteFile {
            inner: self.inner.create(path)?,
            state: self.state.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FaultFs::check(&self.state, FaultOp::Rename)?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        FaultFs::check(&self.state, FaultOp::Remove)?;
        self.inner.remove_file(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FaultFs::check(&self.state, FaultOp::Truncate)?;
        self.inner.truncate(path, len)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FaultFs::check(&self.state, FaultOp::SyncDir)?;
        self.inner.sync_dir(dir)
    }
}

//! Buffered positional reading and writing with an optional running Adler-32, shared by the
//! log and snapshot codecs.
//!
//! Invariants: reads never allocate more than the bytes a field may legally have (callers
//! bound lengths before asking for them) plus one chunk; running out of file is reported as
//! [`ReadError::Eof`] carrying the offset where the short field started, never a panic.

use crate::error::StorageError;
use crate::fs::{ReadFile, WriteFile};
use std::path::Path;

/// Bytes read from a file at a time.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes buffered by [`CheckedWriter`] before they are handed to the file.
pub const WRITE_CHUNK_BYTES: usize = 256 * 1024;

/// Why a read stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The file ended inside the field that starts at `offset`.
    Eof { offset: u64 },
    /// The OS failed.
    Io(StorageError),
}

/// Sequential reader over a [`ReadFile`] that tracks its offset.
pub struct FileCursor<'a> {
    file: &'a dyn ReadFile,
    path: &'a Path,
    len: u64,
    /// File offset of `buf[0]`.
    buf_start: u64,
    /// `buf[at..end]` are the bytes read ahead and not consumed yet; `buf` only grows (a
    /// refill moves the unread bytes to the front and reads after them), so refills do not
    /// clear memory again.
    buf: Vec<u8>,
    /// Read position inside `buf`.
    at: usize,
    end: usize,
    adler: Option<adler2::Adler32>,
}

impl<'a> FileCursor<'a> {
    pub fn new(file: &'a dyn ReadFile, path: &'a Path, offset: u64) -> FileCursor<'a> {
        FileCursor {
            file,
            path,
            len: file.len(),
            buf_start: offset,
            buf: Vec::new(),
            at: 0,
            end: 0,
            adler: None,
        }
    }

    /// Starts a running Adler-32 over every byte consumed from now on.
    pub fn with_checksum(mut self) -> FileCursor<'a> {
        self.adler = Some(adler2::Adler32::new());
        self
    }

    /// The Adler-32 of every byte consumed so far (0 when not checksumming... callers only
    /// ask after `with_checksum`).
    pub fn checksum(&self) -> u32 {
        self.adler.as_ref().map(|a| a.checksum()).unwrap_or(0)
    }

    pub fn position(&self) -> u64 {
        self.buf_start + self.at as u64
    }

    pub fn file_len(&self) -> u64 {
        self.len
    }

    pub fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.position())
    }

    /// Makes at least `n` bytes available at the read position, or as many as the file has.
    fn fill(&mut self, n: usize) -> Result<(), StorageError> {
        if self.end - self.at >= n {
            return Ok(());
        }
        let pos = self.position();
        self.buf.copy_within(self.at..self.end, 0);
        self.end -= self.at;
        self.at = 0;
        self.buf_start = pos;
        let want = n.max(READ_CHUNK_BYTES);
        let file_left = self.len.saturating_sub(pos + self.end as u64);
        let extra = (want.saturating_sub(self.end) as u64).min(file_left) as usize;
        if extra == 0 {
            return Ok(());
        }
        if self.buf.len() < self.end + extra {
            self.buf.resize(self.end + extra, 0);
        }
        let target = self.end + extra;
        while self.end < target {
            let got = self
                .file
                .read_at(pos + self.end as u64, &mut self.buf[self.end..target])
                .map_err(|e| StorageError::io("read", self.path, e))?;
            if got == 0 {
                break;
            }
            self.end += got;
        }
        Ok(())
    }

    /// Consumes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&[u8], ReadError> {
        let offset = self.position();
        self.fill(n).map_err(ReadError::Io)?;
        if self.end - self.at < n {
            return Err(ReadError::Eof { offset });
        }
        let start = self.at;
        self.at += n;
        let out = &self.buf[start..start + n];
        if let Some(a) = self.adler.as_mut() {
            a.write_slice(out);
        }
        Ok(out)
    }

    /// Looks at up to `n` bytes without consuming them (fewer at the end of the file).
    pub fn peek(&mut self, n: usize) -> Result<&[u8], StorageError> {
        self.fill(n)?;
        let end = (self.at + n).min(self.end);
        Ok(&self.buf[self.at..end])
    }

    pub fn read_u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    pub fn read_i32(&mut self) -> Result<i32, ReadError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, ReadError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
}

/// Whether every byte of `file` from `offset` to its end is zero (preallocation).
pub fn zeros_from(file: &dyn ReadFile, path: &Path, offset: u64) -> Result<bool, StorageError> {
    Ok(next_nonzero(file, path, offset)?.is_none())
}

/// Offset of the first non-zero byte at or after `offset`.
pub fn next_nonzero(
    file: &dyn ReadFile,
    path: &Path,
    mut offset: u64,
) -> Result<Option<u64>, StorageError> {
    let len = file.len();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    while offset < len {
        // Holes read as zeros: skip them without reading (a preallocated log is mostly one).
        match file
            .data_from(offset)
            .map_err(|e| StorageError::io("seek", path, e))?
        {
            Some(data) if data < len => offset = data,
            _ => break,
        }
        let want = ((len - offset) as usize).min(buf.len());
        let n = file
            .read_at(offset, &mut buf[..want])
            .map_err(|e| StorageError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            return Ok(Some(offset + i as u64));
        }
        offset += n as u64;
    }
    Ok(None)
}

/// Buffered sequential writer with a running Adler-32 over everything written (ZooKeeper's
/// `CheckedOutputStream` over a `BufferedOutputStream`).
pub struct CheckedWriter<'a> {
    file: &'a mut dyn WriteFile,
    path: &'a Path,
    /// Bytes handed to the file so far.
    written: u64,
    /// `written` at the last intermediate data sync.
    synced: u64,
    buf: Vec<u8>,
    adler: adler2::Adler32,
}

/// A snapshot being written is synced every this many bytes, so its dirty pages never pile
/// up into one large flush at the end: that flush would stall the txn log's fsyncs on the
/// same disk, and with them every write's acknowledgement.
pub const SNAPSHOT_SYNC_EVERY_BYTES: u64 = 4 * 1024 * 1024;

impl<'a> CheckedWriter<'a> {
    pub fn new(file: &'a mut dyn WriteFile, path: &'a Path) -> CheckedWriter<'a> {
        CheckedWriter {
            file,
            path,
            written: 0,
            synced: 0,
            buf: Vec::with_capacity(WRITE_CHUNK_BYTES),
            adler: adler2::Adler32::new(),
        }
    }

    /// Offset of the next byte.
    pub fn position(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Adler-32 of every byte written so far.
    pub fn checksum(&self) -> u32 {
        self.adler.checksum()
    }

    pub fn write(&mut self, b: &[u8]) -> Result<(), StorageError> {
        self.adler.write_slice(b);
        self.buf.extend_from_slice(b);
        if self.buf.len() >= WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_at(self.written, &self.buf)
            .map_err(|e| StorageError::io("write", self.path, e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.written - self.synced >= SNAPSHOT_SYNC_EVERY_BYTES {
            self.file
                .sync_data()
                .map_err(|e| StorageError::io("fdatasync", self.path, e))?;
            self.synced = self.written;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FileSystem, StdFs};

    /// A sparse file (as a preallocated log is) is scanned through its holes without
    /// reading them, and a byte after a hole is still found.
    #[test]
    fn next_nonzero_skips_holes_but_finds_data_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let fs = StdFs;
        let mut f = fs.create(&path).unwrap();
        f.write_at(0, &[0u8; 100]).unwrap();
        f.write_at(64 << 20, &[0u8]).unwrap(); // 64 MiB, a hole in between
        drop(f);
        let r = fs.open_read(&path).unwrap();
        assert_eq!(next_nonzero(&*r, &path, 0).unwrap(), None);
        assert_eq!(next_nonzero(&*r, &path, 50).unwrap(), None);

        let mut f = fs.create(&path).unwrap();
        f.write_at(64 << 20, &[0u8]).unwrap();
        f.write_at(5 << 20, &[7u8]).unwrap();
        f.write_at((5 << 20) + 4096 * 3, &[9u8]).unwrap();
        drop(f);
        let r = fs.open_read(&path).unwrap();
        assert_eq!(next_nonzero(&*r, &path, 0).unwrap(), Some(5 << 20));
        assert_eq!(next_nonzero(&*r, &path, 5 << 20).unwrap(), Some(5 << 20));
        assert_eq!(
            next_nonzero(&*r, &path, (5 << 20) + 1).unwrap(),
            Some((5 << 20) + 4096 * 3)
        );
        assert_eq!(
            next_nonzero(&*r, &path, (5 << 20) + 4096 * 3 + 1).unwrap(),
            None
        );
    }

    /// Reads that refill the buffer many times see the file's bytes in order.
    #[test]
    fn cursor_refills_keep_bytes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq");
        let fs = StdFs;
        let bytes: Vec<u8> = (0..(3 * READ_CHUNK_BYTES + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut f = fs.create(&path).unwrap();
        f.write_at(0, &bytes).unwrap();
        drop(f);
        let r = fs.open_read(&path).unwrap();
        let mut c = FileCursor::new(&*r, &path, 0).with_checksum();
        let mut seen = Vec::new();
        let mut n = 1;
        loop {
            let take = n.min(bytes.len() - seen.len());
            if take == 0 {
                break;
            }
            assert_eq!(c.peek(take).unwrap().len(), take);
            seen.extend_from_slice(c.take(take).unwrap());
            n = n * 3 + 1;
        }
        assert_eq!(seen, bytes);
        assert_eq!(c.checksum(), adler2::adler32_slice(&bytes));
        assert!(matches!(c.take(1), Err(ReadError::Eof { .. })));
    }
}

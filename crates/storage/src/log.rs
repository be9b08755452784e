//! Txn logs: ZooKeeper's `FileTxnLog` format, a group-commit writer, a damage-classifying
//! reader and truncation.
//!
//! ```text
//! LogFile    = FileHeader, { Record }, ZeroPad
//! FileHeader = int magic (0x5A4B4C47 "ZKLG"), int version (2), long dbid (0)   ; 16 bytes
//! Record     = long checksum, int len, byte[len] entry, byte 0x42 ('B')
//! checksum   = Adler-32 of the `len` entry bytes only (the upper 32 bits are zero)
//! entry      = TxnHeader, txn record for TxnHeader.type, [TxnDigest]         ; see corral_proto::txn
//! ZeroPad    = zero bytes up to the preallocated size (may be absent)
//! end of data: end of file, or a record whose `len` is 0
//! ```
//!
//! Owns: the byte format above, the file of each log (`log.<hex zxid of its first txn>`),
//! preallocation, and the classification of damage:
//! * a **torn tail** is a partial or bad record after which the file holds nothing valid
//!   (only zeros, junk or end of file) and no later log file holds entries: recovery may
//!   cut the file there, because no fsync can have covered it;
//! * **corruption** is a bad record followed by a valid record or by a later log file with
//!   entries: an fsynced record was damaged, and the error names file and offset.
//!
//! Writer invariants: entries are appended with increasing zxids; bytes reach the OS only
//! in order (every older file is written and fsynced before any byte of a newer one is
//! written), so a torn older file next to a newer file with entries really is corruption;
//! a failed write, create or fsync latches the writer and every later call returns that
//! first error (an fsync is never retried). Threading: one thread owns a writer.

use crate::cursor::{next_nonzero, zeros_from, READ_CHUNK_BYTES};
use crate::error::{Result, StorageError, Zxid};
use crate::fs::{FileSystem, ReadFile, WriteFile};
use crate::layout::{self, NamedFile};
use corral_proto::jute::Reader;
use corral_proto::txn::TxnEntry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// "ZKLG".
pub const LOG_MAGIC: i32 = 0x5A4B_4C47;
/// The only log format version.
pub const LOG_VERSION: i32 = 2;
/// The dbid ZooKeeper writes into log headers.
pub const LOG_DB_ID: i64 = 0;
/// Size of the file header in bytes.
pub const FILE_HEADER_BYTES: u64 = 16;
/// Bytes of a record around its entry: checksum (8), length (4), end marker (1).
pub const RECORD_OVERHEAD_BYTES: u64 = 13;
/// Bytes of the checksum and length in front of an entry.
pub const RECORD_HEADER_BYTES: usize = 12;
/// The end-of-record marker.
pub const END_OF_RECORD: u8 = b'B';
/// The default `jute.maxbuffer`, in bytes.
pub const JUTE_MAXBUFFER_BYTES: usize = 0xfffff;
/// The largest entry a reader accepts, in bytes: ZooKeeper's `BinaryInputArchive` allows
/// `jute.maxbuffer` plus `zookeeper.jute.maxbuffer.extrasize` (which defaults to the same).
pub const ENTRY_BYTES_MAX: usize = 2 * JUTE_MAXBUFFER_BYTES;
/// ZooKeeper's default `preAllocSize`: 64 MiB, in bytes.
pub const PREALLOC_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// The file is grown when the write position comes within this many bytes of its size.
pub const PREALLOC_MARGIN_BYTES: u64 = 4096;
/// Appended bytes held in memory before they are handed to the OS (they are still synced
/// only by [`TxnLogWriter::sync`]).
pub const WRITE_BUFFER_BYTES_MAX: usize = 1024 * 1024;
/// Window used when looking past a damaged record for a later valid one, in bytes.
const SCAN_WINDOW_BYTES: usize = 2 * ENTRY_BYTES_MAX + 64 * 1024;

/// `FileHeader { int magic; int version; long dbid; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub magic: i32,
    pub version: i32,
    pub db_id: i64,
}

impl FileHeader {
    pub fn log() -> FileHeader {
        FileHeader {
            magic: LOG_MAGIC,
            version: LOG_VERSION,
            db_id: LOG_DB_ID,
        }
    }

    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.magic.to_be_bytes());
        b[4..8].copy_from_slice(&self.version.to_be_bytes());
        b[8..16].copy_from_slice(&self.db_id.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; 16]) -> FileHeader {
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[8..16]);
        FileHeader {
            magic: i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            version: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            db_id: i64::from_be_bytes(l),
        }
    }
}

/// Encodes one record (`checksum, len, entry, 'B'`) around already encoded entry bytes.
pub fn encode_record(entry: &[u8], out: &mut Vec<u8>) {
    let sum = adler2::adler32_slice(entry) as i64;
    out.extend_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&(entry.len() as i32).to_be_bytes());
    out.extend_from_slice(entry);
    out.push(END_OF_RECORD);
}

/// One decoded log record and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub entry: TxnEntry,
    /// The file it was read from.
    pub file: Arc<Path>,
    /// Offset of its checksum field.
    pub offset: u64,
    /// Offset just after its end marker.
    pub end: u64,
}

impl LogRecord {
    pub fn zxid(&self) -> i64 {
        self.entry.header.zxid
    }
}

/// How the data of one log file ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// End of file or a zero length, followed only by zeros: nothing to repair.
    Clean { offset: u64 },
    /// A partial or bad record at `offset` with nothing valid after it.
    Torn { offset: u64, reason: String },
}

impl LogEnd {
    pub fn offset(&self) -> u64 {
        match self {
            LogEnd::Clean { offset } | LogEnd::Torn { offset, .. } => *offset,
        }
    }
}

/// A torn tail found while reading, which recovery may cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn record in {} at offset {}: {}",
            self.file.display(),
            self.offset,
            self.reason
        )
    }
}

/// Outcome of looking at the bytes at one offset.
enum Probe {
    Record(LogRecord),
    /// The data ends here (end of file or zero length).
    End,
    /// The bytes here are not a valid record.
    Bad(String),
}

/// Reads the records of one log file in order and classifies how it ends.
pub struct LogFileReader {
    path: Arc<Path>,
    file: Box<dyn ReadFile>,
    header: Option<FileHeader>,
    pos: u64,
    end: Option<LogEnd>,
    ahead: ReadAhead,
}

impl fmt::Debug for LogFileReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFileReader")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish()
    }
}

impl LogFileReader {
    /// Opens a log file and checks its header. A file too short for a header, or whose
    /// header is all zeros, is a torn (never completed) file with no records; a header
    /// with another magic or version is corruption.
    pub fn open(fs: &dyn FileSystem, path: &Path) -> Result<LogFileReader> {
        let file = fs
            .open_read(path)
            .map_err(|e| StorageError::io("open", path, e))?;
        let path: Arc<Path> = Arc::from(path);
        let mut r = LogFileReader {
            path,
            file,
            header: None,
            pos: 0,
            end: None,
            ahead: ReadAhead::default(),
        };
        let mut hb = [0u8; FILE_HEADER_BYTES as usize];
        let len = r.file.len();
        if len < FILE_HEADER_BYTES {
            let all_zero = zeros_from(&*r.file, &r.path, 0)?;
            if all_zero {
                r.end = Some(LogEnd::Clean { offset: 0 });
            } else {
                r.end = Some(LogEnd::Torn {
                    offset: 0,
                    reason: format!("file of {len} bytes is shorter than the log header"),
                });
            }
            return Ok(r);
        }
        r.file
            .read_exact_at(0, &mut hb)
            .map_err(|e| StorageError::io("read", &*r.path, e))?;
        if hb.iter().all(|&b| b == 0) {
            if zeros_from(&*r.file, &r.path, 0)? {
                r.end = Some(LogEnd::Clean { offset: 0 });
                return Ok(r);
            }
            return Err(StorageError::CorruptLog {
                file: r.path.to_path_buf(),
                offset: 0,
                reason: "zero log header followed by data".into(),
            });
        }
        let h = FileHeader::from_bytes(&hb);
        let bad_header = if h.magic != LOG_MAGIC {
            Some((
                0,
                format!(
                    "bad magic 0x{:08x} (expected 0x{LOG_MAGIC:08x} \"ZKLG\")",
                    h.magic
                ),
            ))
        } else if h.version != LOG_VERSION {
            Some((4, format!("unsupported log version {}", h.version)))
        } else {
            None
        };
        if let Some((offset, reason)) = bad_header {
            // The header and the file's first records reach the disk in the same sync, so
            // a bad header with no valid record after it means the file's first sync never
            // completed (a crash tore the header): nothing in it was acknowledged, and it
            // is a torn tail. A bad header in front of valid records was damaged after it
            // was synced: corruption.
            if let Some(next) = find_valid_record(&*r.file, &r.path, FILE_HEADER_BYTES)? {
                return Err(StorageError::CorruptLog {
                    file: r.path.to_path_buf(),
                    offset,
                    reason: format!("{reason}; a valid record follows at offset {next}"),
                });
            }
            let torn = if is_torn_header(&hb) {
                "partially written log header".into()
            } else {
                reason
            };
            r.end = Some(LogEnd::Torn {
                offset: 0,
                reason: torn,
            });
            return Ok(r);
        }
        r.header = Some(h);
        r.pos = FILE_HEADER_BYTES;
        Ok(r)
    }

    pub fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// The header, when the file has a complete one.
    pub fn header(&self) -> Option<FileHeader> {
        self.header
    }

    pub fn file_len(&self) -> u64 {
        self.file.len()
    }

    /// How the file ends; known once [`Self::next_record`] returned `Ok(None)`.
    pub fn end(&self) -> Option<&LogEnd> {
        self.end.as_ref()
    }

    /// The next record; `Ok(None)` at the end of data (see [`Self::end`]); an error for
    /// corruption (a bad record followed by a valid one).
    pub fn next_record(&mut self) -> Result<Option<LogRecord>> {
        if self.end.is_some() {
            return Ok(None);
        }
        let off = self.pos;
        match probe(&mut self.ahead, &*self.file, &self.path, off)? {
            Probe::Record(rec) => {
                self.pos = rec.end;
                Ok(Some(rec))
            }
            Probe::End => {
                if zeros_from(&*self.file, &self.path, off)? {
                    self.end = Some(LogEnd::Clean { offset: off });
                    Ok(None)
                } else {
                    self.damaged(
                        off,
                        "end-of-data marker (zero length) followed by data".into(),
                    )
                }
            }
            Probe::Bad(reason) => self.damaged(off, reason),
        }
    }

    fn damaged(&mut self, off: u64, reason: String) -> Result<Option<LogRecord>> {
        if let Some(next) = find_valid_record(&*self.file, &self.path, off + 1)? {
            return Err(StorageError::CorruptLog {
                file: self.path.to_path_buf(),
                offset: off,
                reason: format!("{reason}; a valid record follows at offset {next}"),
            });
        }
        self.end = Some(LogEnd::Torn {
            offset: off,
            reason,
        });
        Ok(None)
    }
}

/// Whether `hb` is a proper prefix of a log header followed by zeros.
fn is_torn_header(hb: &[u8; 16]) -> bool {
    let want = FileHeader::log().to_bytes();
    let keep = hb.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    keep < want.len() && hb[..keep] == want[..keep]
}

/// A read-ahead window over one log file, so that reading a file of small records costs
/// one `pread` per [`READ_CHUNK_BYTES`] instead of one (or more) per record.
#[derive(Debug, Default)]
struct ReadAhead {
    /// File offset of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
}

impl ReadAhead {
    /// Up to `n` bytes of `file` at `off` (fewer only at the end of the file).
    fn get(&mut self, file: &dyn ReadFile, path: &Path, off: u64, n: usize) -> Result<&[u8]> {
        let len = file.len();
        let want = (n as u64).min(len.saturating_sub(off)) as usize;
        let covered = off >= self.start && off + want as u64 <= self.start + self.buf.len() as u64;
        if !covered {
            let size = (want.max(READ_CHUNK_BYTES) as u64).min(len - off.min(len)) as usize;
            self.buf.resize(size, 0);
            file.read_exact_at(off, &mut self.buf)
                .map_err(|e| StorageError::io("read", path, e))?;
            self.start = off;
        }
        let at = (off - self.start) as usize;
        Ok(&self.buf[at..at + want])
    }
}

/// Decodes the record at `off`, if it is one.
fn probe(ra: &mut ReadAhead, file: &dyn ReadFile, path: &Arc<Path>, off: u64) -> Result<Probe> {
    let len = file.len();
    if off >= len {
        return Ok(Probe::End);
    }
    let head = ra.get(file, path, off, RECORD_HEADER_BYTES)?;
    if head.len() < RECORD_HEADER_BYTES {
        return Ok(if zeros_from(file, path, off)? {
            Probe::End
        } else {
            Probe::Bad(format!(
                "partial record header ({} bytes before end of file)",
                len - off
            ))
        });
    }
    let mut s8 = [0u8; 8];
    s8.copy_from_slice(&head[..8]);
    let sum = i64::from_be_bytes(s8);
    let n = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    if n == 0 {
        return Ok(if sum == 0 {
            Probe::End
        } else {
            Probe::Bad("zero length with a non-zero checksum".into())
        });
    }
    if n < 0 || n as usize > ENTRY_BYTES_MAX {
        return Ok(Probe::Bad(format!(
            "bad record length {n} (limit {ENTRY_BYTES_MAX})"
        )));
    }
    let n = n as usize;
    // The body and the end-of-record marker after it.
    let rest = ra.get(file, path, off + RECORD_HEADER_BYTES as u64, n + 1)?;
    if rest.len() < n {
        return Ok(Probe::Bad(format!(
            "record of {n} bytes extends past the end of the file"
        )));
    }
    let body = &rest[..n];
    let marker = rest.get(n).copied();
    let computed = adler2::adler32_slice(body) as i64;
    if computed != sum {
        return Ok(Probe::Bad(format!(
            "checksum mismatch (stored 0x{sum:x}, computed 0x{computed:x})"
        )));
    }
    match marker {
        Some(END_OF_RECORD) => {}
        Some(b) => {
            return Ok(Probe::Bad(format!(
                "end-of-record marker is 0x{b:02x}, not 'B'"
            )))
        }
        None => return Ok(Probe::Bad("missing end-of-record marker".into())),
    }
    let entry = match TxnEntry::decode(&mut Reader::new(bytes::Bytes::copy_from_slice(body))) {
        Ok(e) => e,
        Err(e) => {
            // The checksum matched, so this is what was written: not a torn write.
            return Err(StorageError::CorruptLog {
                file: path.to_path_buf(),
                offset: off,
                reason: format!("entry with a valid checksum does not decode: {e}"),
            });
        }
    };
    Ok(Probe::Record(LogRecord {
        entry,
        file: path.clone(),
        offset: off,
        end: off + RECORD_OVERHEAD_BYTES + n as u64,
    }))
}

/// Whether `b` (a window starting at a candidate offset) begins with a complete record
/// whose checksum, marker and entry are valid.
fn valid_record_in(b: &[u8]) -> bool {
    if b.len() < RECORD_HEADER_BYTES {
        return false;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[0..8]);
    let sum = i64::from_be_bytes(s);
    let n = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    if n <= 0 || n as usize > ENTRY_BYTES_MAX || !(0..=u32::MAX as i64).contains(&sum) {
        return false;
    }
    let n = n as usize;
    let Some(marker) = b.get(RECORD_HEADER_BYTES + n) else {
        return false;
    };
    if *marker != END_OF_RECORD {
        return false;
    }
    let body = &b[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + n];
    adler2::adler32_slice(body) as i64 == sum
        && TxnEntry::decode(&mut Reader::from_slice(body)).is_ok()
}

/// The offset of the first valid record at or after `from`, looking at every byte offset.
fn find_valid_record(file: &dyn ReadFile, path: &Path, from: u64) -> Result<Option<u64>> {
    let len = file.len();
    let header = RECORD_HEADER_BYTES as u64;
    let mut o = from;
    let mut window = Vec::new();
    while o + header <= len {
        // A record header is never all zeros (its length is positive), so a candidate
        // must have a non-zero byte among its first 12.
        let Some(nz) = next_nonzero(file, path, o)? else {
            return Ok(None);
        };
        if nz >= o + header {
            o = nz + 1 - header;
        }
        let end = (o + SCAN_WINDOW_BYTES as u64).min(len);
        window.resize((end - o) as usize, 0);
        file.read_exact_at(o, &mut window)
            .map_err(|e| StorageError::io("read", path, e))?;
        // Candidates whose longest possible record fits in the window (all of them when
        // the window reaches the end of the file).
        let step = if end == len {
            window.len()
        } else {
            window.len() - ENTRY_BYTES_MAX - RECORD_OVERHEAD_BYTES as usize
        };
        for i in 0..step {
            if valid_record_in(&window[i..]) {
                return Ok(Some(o + i as u64));
            }
        }
        o += step as u64;
    }
    Ok(None)
}

/// Reads every record of one file (for dumps and tests): the records, then how the file
/// ends. Corruption is an error.
pub fn read_log_file(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<LogRecord>, LogEnd)> {
    let mut r = LogFileReader::open(fs, path)?;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        out.push(rec);
    }
    let end = r.end().cloned().unwrap_or(LogEnd::Clean { offset: r.pos });
    Ok((out, end))
}

/// Iterates the entries after a zxid across the log files of a directory, oldest first.
///
/// Files are chosen as ZooKeeper chooses them (the newest file starting at or before
/// `after`, and every later one). Entries with zxid <= `after` are skipped; when
/// `check_gaps` is on, each yielded entry must follow the previous one (or `after`) per
/// [`layout::zxid_follows`], else the iterator yields [`StorageError::Gap`]. Entries that
/// repeat an older zxid are skipped with a warning, as ZooKeeper's replay does not apply
/// them in order either.
///
/// A torn tail ends the iteration normally ([`Self::torn_tail`] says where); a torn tail in
/// a file followed by a later file with entries beyond `after` is corruption.
pub struct LogIter {
    fs: Arc<dyn FileSystem>,
    files: std::collections::VecDeque<NamedFile>,
    current: Option<LogFileReader>,
    after: i64,
    check_gaps: bool,
    last: Option<i64>,
    torn: Option<TornTail>,
    /// Files read since the last record that held none.
    pending_empty: Vec<PathBuf>,
    empty_after_end: Vec<PathBuf>,
    current_had_records: bool,
    last_end: Option<(Arc<Path>, u64)>,
    done: bool,
}

impl fmt::Debug for LogIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogIter")
            .field("after", &Zxid(self.after))
            .field("last", &self.last.map(Zxid))
            .field("torn", &self.torn)
            .finish()
    }
}

impl LogIter {
    /// Entries with zxid > `after` from the logs in `log_dir`.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        log_dir: &Path,
        after: i64,
        check_gaps: bool,
    ) -> Result<LogIter> {
        let logs = layout::list_logs(&*fs, log_dir)?;
        let files = layout::logs_from(&logs, after).to_vec();
        Ok(LogIter::over_files(fs, files, after, check_gaps))
    }

    /// Entries with zxid > `after` from exactly these files (oldest first).
    pub fn over_files(
        fs: Arc<dyn FileSystem>,
        files: Vec<NamedFile>,
        after: i64,
        check_gaps: bool,
    ) -> LogIter {
        LogIter {
            fs,
            files: files.into(),
            current: None,
            after,
            check_gaps,
            last: None,
            torn: None,
            pending_empty: Vec::new(),
            empty_after_end: Vec::new(),
            current_had_records: false,
            last_end: None,
            done: false,
        }
    }

    /// Where the logs end in a torn record, once the iteration is over.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Log files after the end of the data that hold no records (an interrupted roll).
    pub fn empty_files_after_end(&self) -> &[PathBuf] {
        &self.empty_after_end
    }

    /// The zxid of the last entry yielded.
    pub fn last_zxid(&self) -> Option<i64> {
        self.last
    }

    /// File and end offset of the last record read (yielded or skipped).
    pub fn last_record_end(&self) -> Option<&(Arc<Path>, u64)> {
        self.last_end.as_ref()
    }

    fn fail(&mut self, e: StorageError) -> Option<Result<LogRecord>> {
        self.done = true;
        Some(Err(e))
    }

    /// After a torn end in the current file: decides whether later files make it
    /// corruption. Returns `Ok(true)` to keep reading from the next file.
    fn after_torn(&mut self, torn: TornTail) -> Result<bool> {
        let mut empties = Vec::new();
        while let Some(next) = self.files.front().cloned() {
            let mut r = LogFileReader::open(&*self.fs, &next.path)?;
            match r.next_record()? {
                None => {
                    empties.push(next.path.clone());
                    self.files.pop_front();
                }
                Some(rec) => {
                    if rec.zxid() <= self.after.saturating_add(1)
                        && self.last.is_none_or(|l| rec.zxid() <= l + 1)
                    {
                        // The torn region lies before the entries wanted: it is history
                        // this reader does not need (ZooKeeper skips it the same way).
                        tracing::warn!(
                            "{torn}; ignored because it precedes zxid {} needed from {}",
                            Zxid(self.after + 1),
                            next.path.display()
                        );
                        return Ok(true);
                    }
                    return Err(StorageError::CorruptLog {
                        file: torn.file,
                        offset: torn.offset,
                        reason: format!(
                            "{}; later log {} holds entries from zxid {}",
                            torn.reason,
                            next.path.display(),
                            Zxid(rec.zxid())
                        ),
                    });
                }
            }
        }
        self.empty_after_end = std::mem::take(&mut self.pending_empty);
        self.empty_after_end.extend(empties);
        self.torn = Some(torn);
        Ok(false)
    }
}

impl Iterator for LogIter {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Result<LogRecord>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let Some(f) = self.files.pop_front() else {
                    self.empty_after_end = std::mem::take(&mut self.pending_empty);
                    self.done = true;
                    return None;
                };
                self.current_had_records = false;
                match LogFileReader::open(&*self.fs, &f.path) {
                    Ok(r) => self.current = Some(r),
                    Err(e) => return self.fail(e),
                }
            }
            let Some(reader) = self.current.as_mut() else {
                continue;
            };
            let rec = match reader.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => {
                    let end = reader.end().cloned();
                    let path = reader.path().to_path_buf();
                    let had_records = self.current_had_records;
                    self.current = None;
                    match end {
                        Some(LogEnd::Torn { offset, reason }) => {
                            let torn = TornTail {
                                file: path,
                                offset,
                                reason,
                            };
                            match self.after_torn(torn) {
                                Ok(true) => continue,
                                Ok(false) => {
                                    self.done = true;
                                    return None;
                                }
                                Err(e) => return self.fail(e),
                            }
                        }
                        _ => {
                            if !had_records {
                                self.pending_empty.push(path);
                            }
                            continue;
                        }
                    }
                }
                Err(e) => return self.fail(e),
            };
            self.last_end = Some((rec.file.clone(), rec.end));
            self.current_had_records = true;
            self.pending_empty.clear();
            let z = rec.zxid();
            if z <= self.after {
                continue;
            }
            if let Some(l) = self.last {
                if z <= l {
                    tracing::warn!(
                        "txn log {} at offset {}: zxid {} repeats or goes back from {}; skipped",
                        rec.file.display(),
                        rec.offset,
                        Zxid(z),
                        Zxid(l)
                    );
                    continue;
                }
            }
            let prev = self.last.unwrap_or(self.after);
            if self.check_gaps && !layout::zxid_follows(prev, z) {
                let e = StorageError::Gap {
                    after: Zxid(prev),
                    next: Zxid(z),
                    file: rec.file.to_path_buf(),
                    offset: rec.offset,
                };
                return self.fail(e);
            }
            self.last = Some(z);
            return Some(Ok(rec));
        }
    }
}

/// Settings of a [`TxnLogWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWriterOptions {
    /// Preallocation step in bytes (ZooKeeper's `preAllocSize`); 0 turns it off.
    pub prealloc_bytes: u64,
    /// fsync in [`TxnLogWriter::sync`] (ZooKeeper's `forceSync`, default yes).
    pub force_sync: bool,
    /// The dbid written into new headers.
    pub db_id: i64,
}

impl Default for LogWriterOptions {
    fn default() -> LogWriterOptions {
        LogWriterOptions {
            prealloc_bytes: PREALLOC_BYTES_DEFAULT,
            force_sync: true,
            db_id: LOG_DB_ID,
        }
    }
}

/// ZooKeeper's `FilePadding.calculateFileSizeWithPadding`: the new known size when the
/// write position comes within [`PREALLOC_MARGIN_BYTES`] of it.
pub fn padded_size(position: u64, file_size: u64, prealloc_bytes: u64) -> u64 {
    if prealloc_bytes == 0 || position + PREALLOC_MARGIN_BYTES < file_size {
        return file_size;
    }
    if position > file_size {
        let s = position + prealloc_bytes;
        s - s % prealloc_bytes
    } else {
        file_size + prealloc_bytes
    }
}

struct OpenLog {
    path: PathBuf,
    file: Box<dyn WriteFile>,
    /// Bytes handed to the OS.
    written: u64,
    /// Appended bytes not handed to the OS yet (they follow `written`).
    buf: Vec<u8>,
    /// The size the file is known to have (preallocation).
    known_size: u64,
    /// Bytes were handed to the OS since the last fsync.
    dirty: bool,
}

impl OpenLog {
    fn position(&self) -> u64 {
        self.written + self.buf.len() as u64
    }
}

/// Appends txn entries to `log.<zxid>` files with group commit: [`Self::append`] only
/// buffers, [`Self::sync`] writes and fsyncs everything appended so far (in file order).
/// A new file is started at the first append and at the first append after
/// [`Self::roll`]; the writer never appends to a file it did not create.
pub struct TxnLogWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: LogWriterOptions,
    current: Option<OpenLog>,
    /// Rolled files whose data is not fsynced yet, oldest first.
    rolled: Vec<OpenLog>,
    roll_requested: bool,
    dir_dirty: bool,
    last_zxid: Option<i64>,
    txns_in_file: u64,
    failed: Option<StorageError>,
}

impl fmt::Debug for TxnLogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnLogWriter")
            .field("dir", &self.dir)
            .field("current", &self.current.as_ref().map(|c| &c.path))
            .field("last_zxid", &self.last_zxid.map(Zxid))
            .field("failed", &self.failed)
            .finish()
    }
}

impl TxnLogWriter {
    /// A writer for `log_dir` (created if missing). `last_zxid` is the newest zxid already
    /// in the logs (from recovery), so appends must go above it.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        log_dir: &Path,
        last_zxid: Option<i64>,
        opts: LogWriterOptions,
    ) -> Result<TxnLogWriter> {
        fs.create_dir_all(log_dir)
            .map_err(|e| StorageError::io("create directory", log_dir, e))?;
        Ok(TxnLogWriter {
            fs,
            dir: log_dir.to_path_buf(),
            opts,
            current: None,
            rolled: Vec::new(),
            roll_requested: false,
            dir_dirty: false,
            last_zxid,
            txns_in_file: 0,
            failed: None,
        })
    }

    /// The error that latched the writer, if any.
    pub fn failure(&self) -> Option<&StorageError> {
        self.failed.as_ref()
    }

    pub fn last_zxid(&self) -> Option<i64> {
        self.last_zxid
    }

    /// The file the next append goes to, unless a roll is pending.
    pub fn current_file(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    /// Bytes of data (header and records, no preallocation) in the current file.
    pub fn current_file_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.position())
    }

    /// Entries appended to the current file.
    pub fn txns_in_current_file(&self) -> u64 {
        self.txns_in_file
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn latch<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            tracing::error!("txn log writer failed and stops accepting writes: {e}");
            self.failed = Some(e.clone());
        }
        r
    }

    /// Buffers one entry. Starts a new file first when there is none or a roll is pending.
    pub fn append(&mut self, entry: &TxnEntry) -> Result<()> {
        self.append_encoded(entry.header.zxid, &entry.to_bytes())
    }

    /// [`Self::append`] for an entry already encoded (`TxnEntry::to_bytes`, as a quorum
    /// proposal carries it), so it is not encoded twice. `zxid` must be the entry's.
    pub fn append_encoded(&mut self, zxid: i64, bytes: &[u8]) -> Result<()> {
        self.check()?;
        if let Some(last) = self.last_zxid {
            if zxid <= last {
                return Err(StorageError::ZxidNotIncreasing {
                    zxid: Zxid(zxid),
                    last: Zxid(last),
                });
            }
        }
        if bytes.len() > ENTRY_BYTES_MAX {
            return Err(StorageError::EntryTooLarge {
                bytes: bytes.len(),
                max: ENTRY_BYTES_MAX,
            });
        }
        let r = self.append_bytes(zxid, bytes);
        self.latch(r)
    }

    fn append_bytes(&mut self, zxid: i64, bytes: &[u8]) -> Result<()> {
        if self.current.is_none() || self.roll_requested {
            self.start_file(zxid)?;
        }
        let prealloc = self.opts.prealloc_bytes;
        let Some(cur) = self.current.as_mut() else {
            return Err(StorageError::Source("no open log file".into()));
        };
        let new_size = padded_size(cur.position(), cur.known_size, prealloc);
        if new_size != cur.known_size {
            cur.file
                .write_at(new_size - 1, &[0])
                .map_err(|e| StorageError::io("preallocate", &cur.path, e))?;
            cur.known_size = new_size;
            cur.dirty = true;
        }
        encode_record(bytes, &mut cur.buf);
        let full = cur.buf.len() >= WRITE_BUFFER_BYTES_MAX;
        self.last_zxid = Some(zxid);
        self.txns_in_file += 1;
        if full {
            // Older files must be durable before any byte of this one reaches the OS.
            if !self.rolled.is_empty() {
                self.sync_inner()?;
            } else if let Some(cur) = self.current.as_mut() {
                Self::write_out(cur)?;
            }
        }
        Ok(())
    }

    fn start_file(&mut self, zxid: i64) -> Result<()> {
        if let Some(old) = self.current.take() {
            if old.dirty || !old.buf.is_empty() {
                self.rolled.push(old);
            }
        }
        self.roll_requested = false;
        let path = self.dir.join(layout::log_file_name(zxid));
        tracing::info!("creating new txn log {}", path.display());
        let file = self
            .fs
            .create_new(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
        let mut buf = Vec::with_capacity(4096);
        let header = FileHeader {
            db_id: self.opts.db_id,
            ..FileHeader::log()
        };
        buf.extend_from_slice(&header.to_bytes());
        self.current = Some(OpenLog {
            path,
            file,
            written: 0,
            buf,
            known_size: FILE_HEADER_BYTES,
            dirty: false,
        });
        self.dir_dirty = true;
        self.txns_in_file = 0;
        Ok(())
    }

    fn write_out(f: &mut OpenLog) -> Result<()> {
        if f.buf.is_empty() {
            return Ok(());
        }
        f.file
            .write_at(f.written, &f.buf)
            .map_err(|e| StorageError::io("write", &f.path, e))?;
        f.written += f.buf.len() as u64;
        f.buf.clear();
        f.dirty = true;
        Ok(())
    }

    /// Starts a new file at the next append (the current one is still synced by the next
    /// [`Self::sync`]).
    pub fn roll(&mut self) -> Result<()> {
        self.check()?;
        if self.current.is_some() {
            self.roll_requested = true;
        }
        Ok(())
    }

    /// Writes everything appended so far and, with `force_sync`, fsyncs it (oldest file
    /// first) and the directory when files were created. On return every appended entry is
    /// durable.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        let r = self.sync_inner();
        self.latch(r)
    }

    fn sync_inner(&mut self) -> Result<()> {
        let force = self.opts.force_sync;
        for f in self.rolled.iter_mut().chain(self.current.iter_mut()) {
            Self::write_out(f)?;
            if force && f.dirty {
                f.file
                    .sync_data()
                    .map_err(|e| StorageError::io("fsync", &f.path, e))?;
            }
            f.dirty = false;
        }
        self.rolled.clear();
        if force && self.dir_dirty {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        }
        self.dir_dirty = false;
        Ok(())
    }

    /// Syncs and closes the writer.
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }
}

/// What [`truncate_log`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TruncateOutcome {
    /// The file cut and its new length.
    pub truncated: Option<(PathBuf, u64)>,
    /// Later files deleted.
    pub removed: Vec<PathBuf>,
}

/// Removes every log entry with zxid > `zxid` (the TRUNC of a learner sync): cuts the file
/// holding `zxid` after it and deletes later files. No writer may be open on `log_dir`.
pub fn truncate_log(fs: &dyn FileSystem, log_dir: &Path, zxid: i64) -> Result<TruncateOutcome> {
    let logs = layout::list_logs(fs, log_dir)?;
    let mut out = TruncateOutcome::default();
    if logs.is_empty() {
        return Ok(out);
    }
    let Some(idx) = logs.iter().rposition(|f| f.zxid <= zxid) else {
        return Err(StorageError::CannotTruncate {
            dir: log_dir.to_path_buf(),
            zxid: Zxid(zxid),
            reason: format!("the oldest log {} starts after it", logs[0].path.display()),
        });
    };
    let target = &logs[idx];
    let mut r = LogFileReader::open(fs, &target.path)?;
    let mut cut = if r.header().is_some() {
        FILE_HEADER_BYTES
    } else {
        0
    };
    while let Some(rec) = r.next_record()? {
        if rec.zxid() > zxid {
            break;
        }
        cut = rec.end;
    }
    if cut < r.file_len() {
        fs.truncate(&target.path, cut)
            .map_err(|e| StorageError::io("truncate", &target.path, e))?;
        out.truncated = Some((target.path.clone(), cut));
    }
    for f in logs[idx + 1..].iter().rev() {
        fs.remove_file(&f.path)
            .map_err(|e| StorageError::io("remove", &f.path, e))?;
        out.removed.push(f.path.clone());
    }
    out.removed.reverse();
    fs.sync_dir(log_dir)
        .map_err(|e| StorageError::io("fsync directory", log_dir, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_matches_zookeeper() {
        // A fresh file: header of 16 bytes, first append grows it to 16 + 64 MiB.
        let p = PREALLOC_BYTES_DEFAULT;
        assert_eq!(padded_size(16, 16, p), 16 + p);
        assert_eq!(padded_size(1000, 16 + p, p), 16 + p);
        assert_eq!(padded_size(16 + p - 4096, 16 + p, p), 16 + 2 * p);
        assert_eq!(padded_size(3 * p + 5, 16 + p, p), 4 * p);
        assert_eq!(padded_size(100, 16, 0), 16);
    }

    #[test]
    fn header_bytes() {
        let h = FileHeader::log();
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b"ZKLG");
        assert_eq!(FileHeader::from_bytes(&b), h);
    }
}

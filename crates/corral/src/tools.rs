//! Operator tools on a data directory, for the ZooKeeper habits that work on files:
//!
//! | command | ZooKeeper's |
//! |---|---|
//! | `corral log dump FILE` | `zkTxnLogToolkit.sh FILE` |
//! | `corral snapshot dump FILE [--data]` | `zkSnapShotToolkit.sh FILE` (`-d`) |
//! | `corral snapshot verify DATADIR [DATALOGDIR]` | (none: checks every file and a replay) |
//! | `corral purge DATADIR [DATALOGDIR] -n COUNT` | `zkCleanup.sh` / `PurgeTxnLog` |
//!
//! Owns only the command line and the exit statuses; the formats, checks and rules live
//! in `corral_storage` (dump, verify, retention) and `corral_tree` (loading a snapshot
//! into a tree and replaying the log with digest checks). The dumps print what ZooKeeper's
//! tools print (see `corral_storage::dump` for the deliberate differences).
//!
//! Invariants: the tools never change a file except `purge`, which only deletes what
//! ZooKeeper's `PurgeTxnLog` would; nothing panics on damaged bytes. Exit status: 0 when
//! every file is intact, [`EXIT_DAMAGED`] when a file is damaged (the message names the
//! file and the byte offset), [`EXIT_TROUBLE`] when the tool could not do its work (a
//! missing file or directory, a bad argument). Single-threaded, synchronous.

use clap::Subcommand;
use corral_storage::dump::{self, SnapshotDumpOptions};
use corral_storage::error::{StorageError, Zxid};
use corral_storage::fs::{FileSystem, StdFs};
use corral_storage::layout::{self, DataDirs, VERSION_DIR};
use corral_storage::log::{LogEnd, LogFileReader};
use corral_storage::recovery::{plan_recovery, RecoveryOptions};
use corral_storage::retention;
use corral_storage::snapshot::{self, SnapshotInfo};
use corral_tree::snapshot::TreeBuilder;
use corral_tree::{DataTree, TreeConfig};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status when a file is damaged.
pub const EXIT_DAMAGED: u8 = 1;
/// Exit status when the tool could not run (bad argument, missing or unreadable file).
pub const EXIT_TROUBLE: u8 = 2;
/// Digest mismatches listed one by one before the rest are only counted.
const MISMATCHES_LISTED_MAX: usize = 10;

/// The file tools, flattened into `corral`'s own subcommands.
#[derive(Subcommand, Debug)]
pub enum ToolCommand {
    /// Txn log tools (zkTxnLogToolkit).
    Log {
        #[command(subcommand)]
        cmd: LogCommand,
    },
    /// Snapshot tools (zkSnapShotToolkit) and a whole data directory check.
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCommand,
    },
    /// Deletes old snapshots and txn logs, keeping the newest COUNT snapshots and the logs
    /// they need (zkCleanup.sh / PurgeTxnLog). DATADIR and DATALOGDIR are zoo.cfg's
    /// dataDir and dataLogDir (the parents of version-2).
    Purge {
        datadir: PathBuf,
        /// Defaults to DATADIR.
        datalogdir: Option<PathBuf>,
        /// Snapshots to keep (at least 3).
        #[arg(short = 'n', long = "count")]
        count: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Prints every txn of one log file, one line each, as TxnLogToolkit does.
    Dump { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Prints a snapshot's nodes and sessions as SnapshotFormatter does.
    Dump {
        file: PathBuf,
        /// Print each node's data (base64) instead of its length.
        #[arg(short = 'd', long)]
        data: bool,
    },
    /// Checks every snapshot and txn log checksum in a data directory, loads each snapshot
    /// into a tree, and replays the logs the way a server would recover, comparing digests.
    /// DIR and LOGDIR are dataDir and dataLogDir (or their version-2 directories).
    Verify {
        dir: PathBuf,
        /// Defaults to DIR.
        logdir: Option<PathBuf>,
    },
}

/// Runs a tool; the exit status follows the module docs.
pub fn run(cmd: ToolCommand) -> ExitCode {
    let fs = StdFs::shared();
    let status = match cmd {
        ToolCommand::Log {
            cmd: LogCommand::Dump { file },
        } => log_dump(&*fs, &file),
        ToolCommand::Snapshot {
            cmd: SnapshotCommand::Dump { file, data },
        } => snapshot_dump(&*fs, &file, data),
        ToolCommand::Snapshot {
            cmd: SnapshotCommand::Verify { dir, logdir },
        } => verify(fs, &dir, logdir.as_deref()),
        ToolCommand::Purge {
            datadir,
            datalogdir,
            count,
        } => purge(&*fs, &datadir, datalogdir.as_deref(), count),
    };
    ExitCode::from(status)
}

/// The exit status for a storage error: damage, or trouble running at all.
fn status_of(e: &StorageError) -> u8 {
    if e.is_corruption() || matches!(e, StorageError::Sink { .. }) {
        EXIT_DAMAGED
    } else {
        EXIT_TROUBLE
    }
}

fn print(text: &str) {
    // A closed stdout (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn log_dump(fs: &dyn FileSystem, path: &Path) -> u8 {
    let mut r = match LogFileReader::open(fs, path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corral: {e}");
            return status_of(&e);
        }
    };
    let mut out = String::new();
    match r.header() {
        Some(h) => {
            let _ = writeln!(
                out,
                "ZooKeeper Transactional Log File with dbid {} txnlog format version {}",
                h.db_id, h.version
            );
        }
        None => {
            let _ = writeln!(out, "No complete log header in {}", path.display());
        }
    }
    let mut count = 0u64;
    let mut status = 0;
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                out.push_str(&dump::txn_line(&rec.entry));
                count += 1;
                if out.len() > 1 << 16 {
                    print(&out);
                    out.clear();
                }
            }
            Ok(None) => {
                if let Some(LogEnd::Torn { offset, reason }) = r.end() {
                    let _ = writeln!(out, "Torn record at offset {offset}: {reason}");
                    eprintln!(
                        "corral: torn record in {} at offset {offset}: {reason} (recovery would \
                         cut the file there)",
                        path.display()
                    );
                    status = EXIT_DAMAGED;
                }
                break;
            }
            Err(e) => {
                if let StorageError::CorruptLog { offset, reason, .. } = &e {
                    let _ = writeln!(out, "Corrupt record at offset {offset}: {reason}");
                }
                eprintln!("corral: {e}");
                status = status_of(&e);
                break;
            }
        }
    }
    let _ = writeln!(out, "EOF reached after {count} txns.");
    print(&out);
    status
}

fn snapshot_dump(fs: &dyn FileSystem, path: &Path, data: bool) -> u8 {
    match dump::dump_snapshot(fs, path, SnapshotDumpOptions { data }) {
        Ok(text) => {
            print(&text);
            0
        }
        Err(e) => {
            eprintln!("corral: {e}");
            status_of(&e)
        }
    }
}

/// `dir` itself when it is a `version-2` directory, else `dir/version-2`.
fn version_dir(dir: &Path) -> Result<PathBuf, String> {
    if dir.file_name().is_some_and(|n| n == VERSION_DIR) && dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    let v = dir.join(VERSION_DIR);
    if v.is_dir() {
        Ok(v)
    } else {
        Err(format!(
            "{} has no {VERSION_DIR} directory (give zoo.cfg's dataDir / dataLogDir)",
            dir.display()
        ))
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What `verify` found.
#[derive(Default)]
struct Findings {
    text: String,
    damaged: usize,
    warnings: usize,
}

impl Findings {
    fn line(&mut self, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }
    fn damage(&mut self, s: impl AsRef<str>) {
        self.damaged += 1;
        self.line(s);
    }
    fn warn(&mut self, s: impl AsRef<str>) {
        self.warnings += 1;
        self.line(s);
    }
}

/// Extended types on: a TTL node read without them would look like an ephemeral node
/// with children. (Only a server id of 255 makes session ids that look like TTLs, and
/// ZooKeeper refuses extended types with that id.)
fn verify_cfg() -> TreeConfig {
    TreeConfig {
        extended_types_enabled: true,
        ..TreeConfig::default()
    }
}

fn verify_snapshot_file(fs: &dyn FileSystem, path: &Path, zxid: i64, f: &mut Findings) {
    let name = file_name(path);
    match snapshot::has_valid_tail(fs, path) {
        Ok(true) => {}
        Ok(false) => {
            f.damage(format!(
                "{name}: INCOMPLETE: {} does not end in the \"/\" seal (a snapshot that was \
                 never finished; recovery skips it)",
                path.display()
            ));
            return;
        }
        Err(e) => {
            f.damage(format!("{name}: UNREADABLE: {e}"));
            return;
        }
    }
    let mut b = TreeBuilder::new(verify_cfg());
    let info = match snapshot::read_snapshot(fs, path, &mut b) {
        Ok(info) => info,
        Err(e) => {
            f.damage(format!("{name}: DAMAGED: {e}"));
            return;
        }
    };
    let stored = b.snapshot_digest();
    let tree = match b.finish() {
        Ok(t) => t,
        Err(e) => {
            f.damage(format!("{name}: DAMAGED: {}: {e}", path.display()));
            return;
        }
    };
    let summary = |info: &SnapshotInfo| {
        format!(
            "{} nodes, {} sessions, {} ACLs, {} bytes",
            info.nodes, info.sessions, info.acls, info.bytes
        )
    };
    let digest = match stored {
        None => "no digest".to_string(),
        Some(d) if d.zxid == 0 => "empty digest".to_string(),
        Some(d) if d.zxid == zxid && d.digest == tree.digest() => {
            format!("digest at {} matches the tree", Zxid(d.zxid))
        }
        Some(d) if d.zxid == zxid => {
            f.warn(format!(
                "{name}: WARNING: the digest stored for {} is {} but the tree's is {}",
                Zxid(d.zxid),
                d.digest,
                tree.digest()
            ));
            format!("digest at {} differs", Zxid(d.zxid))
        }
        Some(d) => format!(
            "digest at {} (fuzzy: checked when replay reaches it)",
            Zxid(d.zxid)
        ),
    };
    f.line(format!("{name}: OK ({}, {digest})", summary(&info)));
}

fn verify_log_file(fs: &dyn FileSystem, path: &Path, f: &mut Findings) {
    let name = file_name(path);
    let mut r = match LogFileReader::open(fs, path) {
        Ok(r) => r,
        Err(e) => {
            f.damage(format!("{name}: DAMAGED: {e}"));
            return;
        }
    };
    let (mut count, mut first, mut last) = (0u64, None, None);
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                count += 1;
                first.get_or_insert(rec.zxid());
                last = Some(rec.zxid());
            }
            Ok(None) => break,
            Err(e) => {
                f.damage(format!("{name}: DAMAGED: {e}"));
                return;
            }
        }
    }
    let span = match (first, last) {
        (Some(a), Some(b)) => format!(", zxids {}..{}", Zxid(a), Zxid(b)),
        _ => String::new(),
    };
    match r.end() {
        Some(LogEnd::Torn { offset, reason }) => f.damage(format!(
            "{name}: TORN: {count} txns{span}, then a torn record in {} at offset {offset}: \
             {reason} (recovery would cut the file there)",
            path.display()
        )),
        _ => f.line(format!("{name}: OK ({count} txns{span})")),
    }
}

/// Loads the snapshot recovery would choose and replays the log after it, as the server
/// does at start-up, reporting digest mismatches.
fn verify_recovery(fs: Arc<dyn FileSystem>, dirs: &DataDirs, f: &mut Findings) {
    let opts = RecoveryOptions {
        repair: false,
        ..RecoveryOptions::default()
    };
    let plan = match plan_recovery(fs.clone(), dirs, opts) {
        Ok(p) => p,
        Err(e) => {
            f.damage(format!("recovery: FAILED: {e}"));
            return;
        }
    };
    for s in &plan.skipped_snapshots {
        f.line(format!(
            "recovery: would skip {}: {}",
            file_name(&s.path),
            s.reason
        ));
    }
    for r in &plan.repairs {
        f.line(format!("recovery: would repair: {r:?}"));
    }
    let mut tree = match &plan.snapshot {
        None => DataTree::new(verify_cfg()),
        Some(info) => {
            let mut b = TreeBuilder::new(verify_cfg());
            if let Err(e) = plan.load_snapshot(&*fs, &mut b) {
                f.damage(format!("recovery: FAILED: {e}"));
                return;
            }
            match b.finish() {
                Ok(t) => t,
                Err(e) => {
                    f.damage(format!("recovery: FAILED: {}: {e}", info.path.display()));
                    return;
                }
            }
        }
    };
    let (mut replayed, mut mismatches) = (0u64, 0u64);
    for rec in plan.entries(fs) {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                f.damage(format!("recovery: FAILED: {e}"));
                return;
            }
        };
        match tree.replay_entry(&rec.entry) {
            Ok(None) => {}
            Ok(Some(m)) => {
                mismatches += 1;
                if mismatches as usize <= MISMATCHES_LISTED_MAX {
                    f.warn(format!(
                        "recovery: WARNING: {m} ({} at offset {})",
                        file_name(&rec.file),
                        rec.offset
                    ));
                }
            }
            Err(e) => {
                f.damage(format!(
                    "recovery: FAILED: {} at offset {}: {e}",
                    rec.file.display(),
                    rec.offset
                ));
                return;
            }
        }
        replayed += 1;
    }
    let from = plan
        .snapshot
        .as_ref()
        .map_or("the initial tree".to_string(), |s| file_name(&s.path));
    let digests = match (mismatches, replayed) {
        (_, 0) => String::new(),
        (0, _) => "; the tree digest matches at every txn".to_string(),
        (n, _) => format!("; {n} digest mismatches"),
    };
    f.line(format!(
        "recovery: load {from}, replay {replayed} txns from {} log files, reach zxid {} \
         ({} znodes, {} sessions){digests}",
        plan.log_files.len(),
        Zxid(plan.last_zxid),
        tree.node_count(),
        tree.sessions().count()
    ));
}

fn verify(fs: Arc<dyn FileSystem>, dir: &Path, logdir: Option<&Path>) -> u8 {
    let dirs = match (version_dir(dir), version_dir(logdir.unwrap_or(dir))) {
        (Ok(snap_dir), Ok(log_dir)) => DataDirs { snap_dir, log_dir },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("corral: {e}");
            return EXIT_TROUBLE;
        }
    };
    let (snaps, logs) = match (
        layout::list_snapshots(&*fs, &dirs.snap_dir),
        layout::list_logs(&*fs, &dirs.log_dir),
    ) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("corral: {e}");
            return EXIT_TROUBLE;
        }
    };
    let mut f = Findings::default();
    f.line(format!(
        "snapshots in {}: {}; txn logs in {}: {}",
        dirs.snap_dir.display(),
        snaps.len(),
        dirs.log_dir.display(),
        logs.len()
    ));
    for s in &snaps {
        verify_snapshot_file(&*fs, &s.path, s.zxid, &mut f);
    }
    for l in &logs {
        verify_log_file(&*fs, &l.path, &mut f);
    }
    verify_recovery(fs, &dirs, &mut f);
    if f.damaged == 0 {
        f.line(format!(
            "OK: every snapshot and txn log is intact{}",
            if f.warnings > 0 {
                format!(" ({} warnings)", f.warnings)
            } else {
                String::new()
            }
        ));
    } else {
        f.line(format!("DAMAGED: {} problems found", f.damaged));
    }
    print(&f.text);
    if f.damaged > 0 {
        eprintln!(
            "corral: {} damaged (see the DAMAGED, TORN, INCOMPLETE and FAILED lines)",
            dirs.snap_dir.display()
        );
        EXIT_DAMAGED
    } else {
        0
    }
}

fn purge(fs: &dyn FileSystem, datadir: &Path, datalogdir: Option<&Path>, count: usize) -> u8 {
    if count < retention::SNAP_RETAIN_COUNT_MIN {
        eprintln!(
            "corral: purge: COUNT must be at least {} (got {count})",
            retention::SNAP_RETAIN_COUNT_MIN
        );
        return EXIT_TROUBLE;
    }
    let dirs = DataDirs::new(datadir, datalogdir.unwrap_or(datadir));
    for d in [&dirs.snap_dir, &dirs.log_dir] {
        if !d.is_dir() {
            eprintln!(
                "corral: purge: {} is not a directory (give zoo.cfg's dataDir and dataLogDir)",
                d.display()
            );
            return EXIT_TROUBLE;
        }
    }
    match retention::purge(fs, &dirs, count) {
        Ok(out) => {
            let mut text = String::new();
            for p in &out.removed {
                let _ = writeln!(text, "Removing file: {}", p.display());
            }
            let _ = match out.least_zxid_kept {
                Some(z) => writeln!(
                    text,
                    "Kept {} snapshots (the oldest is {}) and the txn logs they need; removed {} \
                     files.",
                    out.kept_snapshots.len(),
                    Zxid(z),
                    out.removed.len()
                ),
                None => writeln!(
                    text,
                    "No complete snapshot in {}: nothing removed.",
                    dirs.snap_dir.display()
                ),
            };
            print(&text);
            0
        }
        Err(e) => {
            eprintln!("corral: purge: {e}");
            EXIT_TROUBLE
        }
    }
}

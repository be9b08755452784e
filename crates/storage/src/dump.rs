//! Human-readable dumps for the `corral log dump`, `corral snapshot dump` and
//! `corral snapshot verify` commands.
//!
//! Layouts follow ZooKeeper's own tools line for line, so operators' habits and scripts
//! carry over:
//! * [`dump_log`] — `TxnLogToolkit`: a header line, then one line per txn
//!   `M/d/yy, h:mm:ss AM|PM UTC session 0x… cxid 0x… zxid 0x… <op> <txn>` (txns printed as
//!   ZooKeeper prints them, including the jute `toString` forms such as `'/path` and the
//!   line break inside ACL lists), then `EOF reached after N txns.`
//! * [`dump_snapshot`] — `SnapshotFormatter`: `ZNode Details (count=N):`, a block per node
//!   in depth-first order (children in the order Java's `HashSet` yields them after
//!   loading, so the output matches ZooKeeper's byte for byte), session details,
//!   `Last zxid: 0x…`.
//!
//! Differences, on purpose: times are always printed in UTC (ZooKeeper uses the JVM's
//! zone and locale); sub-txns of a multi are printed decoded (`create:/a,…;setData:…`)
//! where ZooKeeper prints their raw bytes as text; damage is reported as a line naming
//! the offset instead of an exception.

use crate::error::{Result, StorageError, Zxid};
use crate::fs::FileSystem;
use crate::image::SnapshotImage;
use crate::layout::{self, DataDirs};
use crate::log::{LogEnd, LogFileReader};
use crate::recovery::{self, RecoveryOptions};
use crate::snapshot::{self, SnapshotNode, SnapshotSink, ZxidDigest};
use corral_proto::opcode::OpCode;
use corral_proto::records::Acl;
use corral_proto::txn::{CreateTxn, Txn, TxnEntry};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// ZooKeeper's `Request.op2String` for the ops that appear in txns.
pub fn op_name(op: i32) -> String {
    let Some(code) = OpCode::from_i32(op) else {
        return format!("unknown {op}");
    };
    match code {
        OpCode::Notification => "notification",
        OpCode::Create => "create",
        OpCode::Delete => "delete",
        OpCode::Exists => "exists",
        OpCode::GetData => "getData",
        OpCode::SetData => "setData",
        OpCode::GetAcl => "getACL",
        OpCode::SetAcl => "setACL",
        OpCode::GetChildren => "getChildren",
        OpCode::Sync => "sync",
        OpCode::Ping => "ping",
        OpCode::GetChildren2 => "getChildren2",
        OpCode::Check => "check",
        OpCode::Multi => "multi",
        OpCode::Create2 => "create2",
        OpCode::Reconfig => "reconfig",
        OpCode::CheckWatches => "checkWatches",
        OpCode::RemoveWatches => "removeWatches",
        OpCode::CreateContainer => "createContainer",
        OpCode::DeleteContainer => "deleteContainer",
        OpCode::CreateTtl => "createTtl",
        OpCode::MultiRead => "multiRead",
        OpCode::Auth => "auth",
        OpCode::SetWatches => "setWatches",
        OpCode::SetWatches2 => "setWatches2",
        OpCode::Sasl => "sasl",
        OpCode::GetEphemerals => "getEphemerals",
        OpCode::GetAllChildrenNumber => "getAllChildrenNumber",
        OpCode::CreateSession => "createSession",
        OpCode::CloseSession => "closeSession",
        OpCode::Error => "error",
        OpCode::WhoAmI => "whoAmI",
        // Not named by 3.8's op2String.
        OpCode::AddWatch => return format!("unknown {op}"),
    }
    .to_string()
}

/// Civil date (year, month 1-12, day 1-31) of days since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Utc {
    year: i64,
    month: u32,
    day: u32,
    weekday: usize,
    hour: u32,
    minute: u32,
    second: u32,
}

fn utc(ms: i64) -> Utc {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Utc {
        year,
        month,
        day,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: sod / 3600,
        minute: sod / 60 % 60,
        second: sod % 60,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Java's `Date.toString()` in UTC: `Thu Jan 01 00:00:00 UTC 1970`.
pub fn java_date(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[t.weekday],
        MONTHS[(t.month - 1) as usize],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// Java's `DateFormat.getDateTimeInstance(SHORT, LONG)` for en_US in UTC:
/// `11/22/26, 12:55:55 AM UTC`.
pub fn java_short_long_date(ms: i64) -> String {
    let t = utc(ms);
    let h12 = match t.hour % 12 {
        0 => 12,
        h => h,
    };
    format!(
        "{}/{}/{:02}, {}:{:02}:{:02} {} UTC",
        t.month,
        t.day,
        t.year.rem_euclid(100),
        h12,
        t.minute,
        t.second,
        if t.hour < 12 { "AM" } else { "PM" }
    )
}

/// jute `ToStringOutputArchive.escapeString`.
fn jute_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// `new String(data, UTF_8)` with null and empty as "".
fn text(data: Option<&[u8]>) -> String {
    data.map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default()
}

/// `List<ACL>.toString()`: `[31,s{'world,'anyone}\n]` (each ACL's jute toString ends in a
/// line break).
fn acl_list(acl: &[Acl]) -> String {
    let items: Vec<String> = acl
        .iter()
        .map(|a| {
            format!(
                "{},s{{{},{}}}\n",
                a.perms,
                jute_escape(&a.id.scheme),
                jute_escape(&a.id.id)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// An ACL vector inside a jute record: `v{s{31,s{'world,'anyone}}}`.
fn acl_vector(acl: &[Acl]) -> String {
    let items: Vec<String> = acl
        .iter()
        .map(|a| {
            format!(
                "s{{{},s{{{},{}}}}}",
                a.perms,
                jute_escape(&a.id.scheme),
                jute_escape(&a.id.id)
            )
        })
        .collect();
    format!("v{{{}}}", items.join(","))
}

fn create(c: &CreateTxn, ephemeral: Option<bool>, ttl: Option<i64>) -> String {
    let mut s = format!(
        "{},{},{}",
        c.path,
        text(c.data.as_deref()),
        acl_list(&c.acl)
    );
    if let Some(e) = ephemeral {
        let _ = write!(s, ",{e}");
    }
    let _ = write!(s, ",{}", c.parent_cversion);
    if let Some(t) = ttl {
        let _ = write!(s, ",{t}");
    }
    s
}

/// The txn part of a `TxnLogToolkit` line (may end in a line break, as ZooKeeper's does).
pub fn txn_text(txn: &Txn) -> String {
    match txn {
        Txn::Create(c) | Txn::Create2(c) => create(c, Some(c.ephemeral), None),
        Txn::CreateContainer(c) => create(c, None, None),
        Txn::CreateTtl(c) => create(c, None, Some(c.ttl)),
        Txn::SetData {
            path,
            data,
            version,
        }
        | Txn::Reconfig {
            path,
            data,
            version,
        } => format!("{path},{},{version}", text(data.as_deref())),
        Txn::CreateSession { timeout_ms } => format!("{timeout_ms}\n"),
        Txn::CloseSession { paths_to_delete } => {
            let items: Vec<String> = paths_to_delete.iter().map(|p| jute_escape(p)).collect();
            format!("v{{{}}}\n", items.join(","))
        }
        Txn::Delete { path } | Txn::DeleteContainer { path } => {
            format!("{}\n", jute_escape(path))
        }
        Txn::SetAcl { path, acl, version } => {
            format!("{},{},{version}\n", jute_escape(path), acl_vector(acl))
        }
        Txn::Check { path, version } => format!("{},{version}\n", jute_escape(path)),
        Txn::Error(e) => format!("{}\n", e.code()),
        // One line per txn: the sub-txns' own line breaks are dropped.
        Txn::Multi(txns) => txns
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    op_name(t.op().code()),
                    txn_text(t).replace('\n', "")
                )
            })
            .collect::<Vec<_>>()
            .join(";"),
    }
}

/// One `TxnLogToolkit` line, with its line break.
pub fn txn_line(e: &TxnEntry) -> String {
    let h = &e.header;
    let mut s = format!(
        "{} session 0x{:x} cxid 0x{:x} zxid 0x{:x} {} {}",
        java_short_long_date(h.time_ms),
        h.session_id,
        h.cxid as i64,
        h.zxid,
        op_name(h.op),
        txn_text(&e.txn)
    );
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Dumps one txn log file in `TxnLogToolkit`'s layout. Damage is reported in the text
/// (with its offset); only a file that cannot be opened, or whose header is bad, is an
/// error.
pub fn dump_log(fs: &dyn FileSystem, path: &Path) -> Result<String> {
    let mut r = LogFileReader::open(fs, path)?;
    let mut out = String::new();
    let mut count = 0u64;
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
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                out.push_str(&txn_line(&rec.entry));
                count += 1;
            }
            Ok(None) => {
                if let Some(LogEnd::Torn { offset, reason }) = r.end() {
                    let _ = writeln!(out, "Torn record at offset {offset}: {reason}");
                }
                break;
            }
            Err(StorageError::CorruptLog { offset, reason, .. }) => {
                let _ = writeln!(out, "Corrupt record at offset {offset}: {reason}");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let _ = writeln!(out, "EOF reached after {count} txns.");
    Ok(out)
}

/// Options of [`dump_snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotDumpOptions {
    /// Print each node's data in base64 (`SnapshotFormatter -d`) instead of its length.
    pub data: bool,
}

/// Keeps nodes in file order with their children, to walk them as ZooKeeper does.
#[derive(Default)]
struct OrderedSink {
    sessions: Vec<(i64, i32)>,
    nodes: Vec<SnapshotNode>,
    index: HashMap<String, usize>,
    children: Vec<Vec<usize>>,
    digest: Option<ZxidDigest>,
}

impl SnapshotSink for OrderedSink {
    fn session(
        &mut self,
        id: i64,
        timeout: i32,
    ) -> std::result::Result<(), crate::error::BoxError> {
        self.sessions.push((id, timeout));
        Ok(())
    }
    fn acl(&mut self, _: i64, _: Vec<Acl>) -> std::result::Result<(), crate::error::BoxError> {
        Ok(())
    }
    fn node(&mut self, node: SnapshotNode) -> std::result::Result<(), crate::error::BoxError> {
        let i = self.nodes.len();
        if !node.path.is_empty() {
            let parent = SnapshotImage::parent_of(&node.path).unwrap_or("");
            let Some(&p) = self.index.get(parent) else {
                return Err(format!("node {:?} comes before its parent", node.path).into());
            };
            self.children[p].push(i);
        } else if i != 0 {
            return Err("root node \"\" is not the first node".into());
        }
        self.index.insert(node.path.clone(), i);
        self.nodes.push(node);
        self.children.push(Vec::new());
        Ok(())
    }
    fn digest(&mut self, d: ZxidDigest) -> std::result::Result<(), crate::error::BoxError> {
        self.digest = Some(d);
        Ok(())
    }
}

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Orders child names as a `HashSet<String>` built by `new HashSet<>(8)` and filled in
/// `names` order iterates them: by bucket of the final table (capacity doubling from 8
/// while the size exceeds 3/4 of it), insertion order within a bucket. This is the order
/// ZooKeeper's `SnapshotFormatter` walks a freshly deserialized tree in.
fn java_hash_set_order(names: &[&str]) -> Vec<usize> {
    let mut cap = 8usize;
    while names.len() > cap / 4 * 3 {
        cap *= 2;
    }
    let mut idx: Vec<usize> = (0..names.len()).collect();
    idx.sort_by_key(|&i| {
        let h = java_string_hash(names[i]);
        let spread = h ^ ((h as u32) >> 16) as i32;
        (spread as u32 as usize) & (cap - 1)
    });
    idx
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Dumps a snapshot in `SnapshotFormatter`'s layout.
pub fn dump_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
    opts: SnapshotDumpOptions,
) -> Result<String> {
    let mut sink = OrderedSink::default();
    let info = snapshot::read_snapshot(fs, path, &mut sink)?;
    let mut out = String::new();
    // ZooKeeper's node map also holds the root under "/", so its count is one more.
    let _ = writeln!(out, "ZNode Details (count={}):", sink.nodes.len() + 1);
    let mut max_zxid = i64::MIN;
    if !sink.nodes.is_empty() {
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            let n = &sink.nodes[i];
            let s = &n.stat;
            let name = if n.path.is_empty() { "/" } else { &n.path };
            max_zxid = max_zxid.max(s.mzxid).max(s.pzxid);
            let _ = writeln!(out, "----");
            let _ = writeln!(out, "{name}");
            let _ = writeln!(out, "  cZxid = {:#016x}", s.czxid);
            let _ = writeln!(out, "  ctime = {}", java_date(s.ctime));
            let _ = writeln!(out, "  mZxid = {:#016x}", s.mzxid);
            let _ = writeln!(out, "  mtime = {}", java_date(s.mtime));
            let _ = writeln!(out, "  pZxid = {:#016x}", s.pzxid);
            let _ = writeln!(out, "  cversion = {}", s.cversion);
            let _ = writeln!(out, "  dataVersion = {}", s.version);
            let _ = writeln!(out, "  aclVersion = {}", s.aversion);
            let _ = writeln!(out, "  ephemeralOwner = {:#016x}", s.ephemeral_owner);
            if opts.data {
                let _ = writeln!(out, "  data = {}", base64(n.data.as_deref().unwrap_or(&[])));
            } else {
                let _ = writeln!(
                    out,
                    "  dataLength = {}",
                    n.data.as_ref().map_or(0, |d| d.len())
                );
            }
            let kids = &sink.children[i];
            let names: Vec<&str> = kids
                .iter()
                .map(|&k| {
                    let p = &sink.nodes[k].path;
                    p.rsplit('/').next().unwrap_or(p)
                })
                .collect();
            let order = java_hash_set_order(&names);
            stack.extend(order.iter().rev().map(|&o| kids[o]));
        }
    }
    let _ = writeln!(out, "----");
    let _ = writeln!(out, "Session Details (sid, timeout, ephemeralCount):");
    for (sid, timeout) in &sink.sessions {
        let eph = sink
            .nodes
            .iter()
            .filter(|n| n.stat.ephemeral_owner == *sid)
            .count();
        let _ = writeln!(out, "{sid:#016x}, {timeout}, {eph}");
    }
    let last = info.zxid.unwrap_or(-1).max(max_zxid);
    let _ = writeln!(out, "----");
    let _ = writeln!(out, "Last zxid: 0x{last:x}");
    Ok(out)
}

/// The result of [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// One line per snapshot, then the recovery verdict.
    pub text: String,
    /// Whether recovery would succeed.
    pub ok: bool,
}

/// Checks every snapshot in `dirs` (seals, structure, and whether the stored digest
/// matches the tree) and says what recovery would do, without changing anything.
pub fn verify_dir(fs: Arc<dyn FileSystem>, dirs: &DataDirs) -> Result<VerifyReport> {
    let mut text = String::new();
    for s in layout::list_snapshots(&*fs, &dirs.snap_dir)?.iter().rev() {
        let name = s.path.file_name().map_or_else(
            || s.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if !snapshot::has_valid_tail(&*fs, &s.path)? {
            let _ = writeln!(text, "{name}: INCOMPLETE (does not end in the \"/\" seal)");
            continue;
        }
        let mut img = SnapshotImage::default();
        match snapshot::read_snapshot(&*fs, &s.path, &mut img) {
            Ok(info) => {
                let digest = match img.digest {
                    None => "no digest".to_string(),
                    Some(d) if d.zxid == 0 && d.digest == 0 => "empty digest".to_string(),
                    Some(d) if img.tree_digest() == d.digest => {
                        format!("digest at {} matches", Zxid(d.zxid))
                    }
                    Some(d) => format!(
                        "digest at {} differs from the tree (a fuzzy snapshot holds later txns)",
                        Zxid(d.zxid)
                    ),
                };
                let _ = writeln!(
                    text,
                    "{name}: OK ({} nodes, {} sessions, {} ACLs, {} bytes, {digest})",
                    info.nodes, info.sessions, info.acls, info.bytes
                );
            }
            Err(e) => {
                let _ = writeln!(text, "{name}: DAMAGED: {e}");
            }
        }
    }
    let opts = RecoveryOptions {
        repair: false,
        ..RecoveryOptions::default()
    };
    let ok = match recovery::plan_recovery(fs, dirs, opts) {
        Ok(plan) => {
            let from = plan
                .snapshot
                .as_ref()
                .map_or("the initial tree".to_string(), |s| {
                    s.path.display().to_string()
                });
            let _ = writeln!(
                text,
                "recovery: load {from}, replay {} txns from {} log files, reach zxid {}",
                plan.entry_count,
                plan.log_files.len(),
                Zxid(plan.last_zxid)
            );
            for r in &plan.repairs {
                let _ = writeln!(text, "recovery would repair: {r:?}");
            }
            true
        }
        Err(e) => {
            let _ = writeln!(text, "recovery: FAILED: {e}");
            false
        }
    };
    Ok(VerifyReport { text, ok })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_java() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_795_308_955_000), "Sun Nov 22 00:55:55 UTC 2026");
        assert_eq!(
            java_short_long_date(1_795_308_955_000),
            "11/22/26, 12:55:55 AM UTC"
        );
        assert_eq!(java_short_long_date(43_200_000), "1/1/70, 12:00:00 PM UTC");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn java_hashes() {
        assert_eq!(java_string_hash(""), 0);
        // Values from Java's "zookeeper".hashCode() and "\u00fcn\u00ef".hashCode().
        assert_eq!(java_string_hash("zookeeper"), 1_600_681_804);
        assert_eq!(java_string_hash("\u{fc}n\u{ef}"), 245_821);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0, 1, 2, 0xff]), "AAEC/w==");
    }
}

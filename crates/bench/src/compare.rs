//! `--compare`: two servers (or two ensembles, see [`crate::cluster`]) started from launch
//! commands, loaded alternately, compared.
//!
//! Owns: [`ServerProc`] (a generated `zoo.cfg` with a free 127.0.0.1 port and a fresh
//! `dataDir`, the process started with `sh -c 'exec <command>'` so that its PID is the
//! server's own, a bounded wait for `ruok`, resident memory from `/proc/PID/status`, and a
//! kill by that PID on stop or drop, so a failing run never leaves a server behind), the
//! rounds, and the A/B ratios with their spread.
//!
//! A round sets up the namespace on both servers, then runs each workload on A and right
//! after on B (A B A B ...), so that both see nearly the same machine (other load on a
//! shared host drifts over minutes), and ends with each server's resident memory (an
//! ensemble's: the sum over its members, with each member's kept beside it, and each
//! member's mode, so a leader change during the run shows).
//!
//! Ratios are A/B for every metric: throughput above 1 means A is faster, latency below 1
//! means A is faster. The summary is the geometric mean over rounds with min..max.
//!
//! Threading: the round loop is synchronous and drives each suite on the given runtime.

use crate::args::{Compare, Settings};
use crate::cluster::{Cluster, MemberInfo};
use crate::json::Json;
use crate::report::{group, Row};
use crate::run::Suite;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Poll interval while waiting for a server to answer `ruok`.
const READY_POLL: Duration = Duration::from_millis(100);
/// Connect/read timeout of one four-letter-word exchange.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at reading the version with `srvr` after `ruok` succeeded.
const VERSION_TRIES: usize = 50;
/// Lines of a server's log shown when it fails.
const LOG_TAIL_LINES: usize = 30;

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A free TCP port on 127.0.0.1 (bound and released; the small race is accepted).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local addr: {e}"))
}

/// Sends a four-letter word to `addr`; `None` when unreachable.
pub fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, FOUR_LETTER_TIMEOUT).ok()?;
    s.set_read_timeout(Some(FOUR_LETTER_TIMEOUT)).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The zoo.cfg both servers get: defaults, with `extra` lines replacing same-named keys.
pub fn zoo_cfg(data_dir: &Path, port: u16, extra: &[String]) -> String {
    zoo_cfg_with(data_dir, port, &[], extra)
}

/// [`zoo_cfg`] with more default lines (`more`, e.g. an ensemble's `server.N` lines) after
/// the common ones; `extra` still replaces any of them.
pub fn zoo_cfg_with(
    data_dir: &Path,
    port: u16,
    more: &[(String, String)],
    extra: &[String],
) -> String {
    let mut kv: Vec<(String, String)> = [
        ("tickTime", "2000".to_string()),
        ("initLimit", "10".into()),
        ("syncLimit", "5".into()),
        ("dataDir", data_dir.display().to_string()),
        ("clientPort", port.to_string()),
        ("clientPortAddress", "127.0.0.1".into()),
        ("maxClientCnxns", "0".into()),
        ("forceSync", "yes".into()),
        ("admin.enableServer", "false".into()),
        ("4lw.commands.whitelist", "*".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(more.iter().cloned())
    .collect();
    for line in extra {
        let (k, v) = line.split_once('=').unwrap_or((line.as_str(), ""));
        let (k, v) = (k.trim(), v.trim());
        match kv.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => kv.push((k.to_owned(), v.to_owned())),
        }
    }
    kv.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// A server started by the bench. Dropping it kills the process (by its PID) and removes its
/// directory unless asked to keep it.
#[derive(Debug)]
pub struct ServerProc {
    pub label: String,
    pub command: String,
    pub port: u16,
    pub dir: PathBuf,
    pub version: String,
    child: Option<Child>,
    keep: bool,
}

impl ServerProc {
    /// Writes the config, starts `template` with `{cfg}`, `{port}` and `{dir}` substituted,
    /// and waits until the server answers `ruok` (a standalone server).
    pub fn launch(
        label: &str,
        template: &str,
        c: &Compare,
        stop: &AtomicBool,
    ) -> Result<ServerProc, String> {
        let dir = fresh_dir(c, label);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let port = free_port()?;
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, zoo_cfg(&data, port, &c.cfg_lines))
            .map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let command = substitute(template, &cfg, port, &dir, None);
        let mut s = ServerProc::spawn(label, &command, port, dir, c.keep)?;
        s.wait_ruok(Instant::now() + c.start_timeout, stop)?;
        // ZooKeeper answers ruok before it serves; srvr says "not currently serving" until
        // then, so ask a few times.
        for _ in 0..VERSION_TRIES {
            if s.read_srvr().is_some() {
                break;
            }
            std::thread::sleep(READY_POLL);
        }
        if s.version.is_empty() {
            s.version = "unknown".into();
        }
        eprintln!("{label}: ready, version {}", s.version);
        Ok(s)
    }

    /// Starts `command` (placeholders already substituted) with `sh -c 'exec ...'`, its
    /// output going to `dir/server.log`. Does not wait for it to serve.
    pub fn spawn(
        label: &str,
        command: &str,
        port: u16,
        dir: PathBuf,
        keep: bool,
    ) -> Result<ServerProc, String> {
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| format!("log handle: {e}"))?;
        let mut s = ServerProc {
            label: label.to_owned(),
            command: command.to_owned(),
            port,
            dir,
            version: String::new(),
            child: None,
            keep,
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("{label}: cannot run `{command}`: {e}"))?;
        s.child = Some(child);
        eprintln!(
            "{label}: started pid {} on 127.0.0.1:{port}: {command}",
            s.pid().unwrap_or(0)
        );
        Ok(s)
    }

    /// Waits until the server answers `ruok`; fails if it exits, on Ctrl-C or at `deadline`.
    fn wait_ruok(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<(), String> {
        loop {
            self.check_running("during startup")?;
            if four_letter(self.addr(), "ruok").as_deref() == Some("imok") {
                return Ok(());
            }
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not answer ruok in time; log:\n{}",
                    self.label,
                    self.log_tail()
                ));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// Asks `srvr`; records the version, returns the `Mode:` (`None` while the server does
    /// not serve, or is unreachable).
    pub fn read_srvr(&mut self) -> Option<String> {
        let text = four_letter(self.addr(), "srvr")?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if let Some(v) = field("Zookeeper version:") {
            self.version = v;
        }
        field("Mode:")
    }

    /// `Err` with the log's tail if the process has exited.
    pub fn check_running(&mut self, when: &str) -> Result<(), String> {
        match self.exited() {
            Some(status) => Err(format!(
                "{} exited {when} ({status}); log:\n{}",
                self.label,
                self.log_tail()
            )),
            None => Ok(()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn rss_kib(&self) -> Option<u64> {
        self.pid().and_then(rss_kib)
    }

    /// The last lines of the server's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Kills the process (SIGKILL, by its PID) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            eprintln!("{}: stopped pid {}", self.label, c.id());
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.stop();
        if self.keep {
            eprintln!("{}: kept {}", self.label, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A new, unique directory path for one server or one ensemble (not yet created).
pub fn fresh_dir(c: &Compare, label: &str) -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let base = c.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    base.join(format!(
        "corral-bench-{}-{n}-{nanos}-{}",
        std::process::id(),
        sanitize(label)
    ))
}

/// A launch command with its placeholders filled in: `{cfg}`, `{port}`, `{dir}`, and
/// `{myid}` for an ensemble member.
pub fn substitute(template: &str, cfg: &Path, port: u16, dir: &Path, myid: Option<u64>) -> String {
    let mut command = template
        .replace("{cfg}", &cfg.display().to_string())
        .replace("{port}", &port.to_string())
        .replace("{dir}", &dir.display().to_string());
    if let Some(id) = myid {
        command = command.replace("{myid}", &id.to_string());
    }
    command
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect()
}

/// One server's part of one round.
#[derive(Clone, Debug)]
pub struct Side {
    pub rows: Vec<Row>,
    /// Resident memory at the end of the round (an ensemble's: summed over its members;
    /// `None` if any is unknown).
    pub rss_kib: Option<u64>,
    /// Per member, for an ensemble (else empty).
    pub member_rss_kib: Vec<Option<u64>>,
    /// Each member's `srvr` mode at the end of the round, for an ensemble (else empty).
    pub member_modes: Vec<Option<String>>,
}

impl Side {
    fn new(rows: Vec<Row>, cluster: &mut Cluster) -> Side {
        let rss = cluster.rss_kib();
        let total = rss.iter().copied().sum::<Option<u64>>();
        let ensemble = cluster.is_ensemble();
        Side {
            rows,
            rss_kib: total,
            member_rss_kib: if ensemble { rss } else { Vec::new() },
            member_modes: cluster.modes(),
        }
    }
}

/// One round: every workload on A and on B.
#[derive(Clone, Debug)]
pub struct Round {
    pub a: Side,
    pub b: Side,
}

/// Identity of a compared server, for reports.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub label: String,
    /// The launch command (of the first member, for an ensemble).
    pub command: String,
    pub version: String,
    /// Voting members and observers of an ensemble (0 and 0: a standalone server).
    pub voters: usize,
    pub observers: usize,
    /// An ensemble's members (empty for a standalone server).
    pub members: Vec<MemberInfo>,
}

impl ServerInfo {
    fn of(c: &Cluster) -> ServerInfo {
        ServerInfo {
            label: c.label.clone(),
            command: c.command(),
            version: c.version(),
            voters: c.voters,
            observers: c.observers,
            members: c.members_info(),
        }
    }

    /// "standalone", or e.g. "3 voters, leader myid 3".
    fn topology(&self) -> String {
        if self.voters == 0 {
            return "standalone".into();
        }
        let obs = if self.observers > 0 {
            format!(" + {} observers", self.observers)
        } else {
            String::new()
        };
        let leader = self
            .members
            .iter()
            .find(|m| m.mode == "leader")
            .map(|m| m.myid.to_string())
            .unwrap_or_else(|| "?".into());
        format!("{} voters{obs}, leader myid {leader}", self.voters)
    }
}

/// Everything a `--compare` run measured.
#[derive(Clone, Debug)]
pub struct CompareReport {
    pub a: ServerInfo,
    pub b: ServerInfo,
    pub rounds: Vec<Round>,
}

/// Geometric mean, min and max of positive samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub geomean: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let xs: Vec<f64> = samples
            .iter()
            .copied()
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        if xs.is_empty() {
            return None;
        }
        let log_mean = xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64;
        Some(Spread {
            geomean: log_mean.exp(),
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n: xs.len(),
        })
    }

    fn to_json(self) -> Json {
        Json::obj([
            ("geomean", Json::Num(round3(self.geomean))),
            ("min", Json::Num(round3(self.min))),
            ("max", Json::Num(round3(self.max))),
            ("rounds", Json::UInt(self.n as u64)),
        ])
    }

    fn text(self) -> String {
        format!(
            "{} [{}..{}]",
            fmt_ratio(self.geomean),
            fmt_ratio(self.min),
            fmt_ratio(self.max)
        )
    }
}

/// Two decimals, or more for small ratios so they never print as 0.00.
fn fmt_ratio(x: f64) -> String {
    if x >= 0.1 {
        format!("{x:.2}")
    } else if x >= 0.001 {
        format!("{x:.3}")
    } else {
        format!("{x:.1e}")
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A/B ratios of one workload over the rounds.
#[derive(Clone, Debug)]
pub struct Ratio {
    pub workload: String,
    pub a_ops_per_sec: f64,
    pub b_ops_per_sec: f64,
    pub a_p99_us: f64,
    pub b_p99_us: f64,
    pub throughput: Option<Spread>,
    pub p50: Option<Spread>,
    pub p99: Option<Spread>,
    pub p999: Option<Spread>,
    /// Server CPU time per op, A/B (lower is better for A).
    pub cpu_per_op: Option<Spread>,
}

fn find<'a>(rows: &'a [Row], name: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.name == name)
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

impl CompareReport {
    /// A/B ratios per workload (in the order of the first round), over the rounds where both
    /// sides produced the workload with a non-zero denominator.
    pub fn ratios(&self) -> Vec<Ratio> {
        let Some(first) = self.rounds.first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r0 in &first.a.rows {
            let pairs: Vec<(&Row, &Row)> = self
                .rounds
                .iter()
                .filter_map(|r| Some((find(&r.a.rows, &r0.name)?, find(&r.b.rows, &r0.name)?)))
                .collect();
            let ratio = |f: &dyn Fn(&Row) -> f64| -> Option<Spread> {
                let xs: Vec<f64> = pairs
                    .iter()
                    .filter(|(a, b)| a.ops > 0 && b.ops > 0)
                    .map(|(a, b)| f(a) / f(b))
                    .collect();
                Spread::of(&xs)
            };
            let a_ops: Vec<f64> = pairs.iter().map(|(a, _)| a.ops_per_sec()).collect();
            let b_ops: Vec<f64> = pairs.iter().map(|(_, b)| b.ops_per_sec()).collect();
            let a_p99: Vec<f64> = pairs
                .iter()
                .map(|(a, _)| a.latency_us(0.99) as f64)
                .collect();
            let b_p99: Vec<f64> = pairs
                .iter()
                .map(|(_, b)| b.latency_us(0.99) as f64)
                .collect();
            out.push(Ratio {
                workload: r0.name.clone(),
                a_ops_per_sec: mean(&a_ops),
                b_ops_per_sec: mean(&b_ops),
                a_p99_us: mean(&a_p99),
                b_p99_us: mean(&b_p99),
                throughput: ratio(&|r| r.ops_per_sec()),
                p50: ratio(&|r| r.latency_us(0.5) as f64),
                p99: ratio(&|r| r.latency_us(0.99) as f64),
                p999: ratio(&|r| r.latency_us(0.999) as f64),
                cpu_per_op: ratio(&|r| r.server_cpu_us_per_op().unwrap_or(f64::NAN)),
            });
        }
        out
    }

    /// The summary printed at the end of a compare run.
    pub fn summary_table(&self) -> String {
        let (la, lb) = (&self.a.label, &self.b.label);
        let mut out = format!(
            "\n== {la} (A) vs {lb} (B): ratios are A/B, geometric mean over {} round(s) \
             [min..max]\n   throughput A/B > 1: A is faster; latency or server CPU per op \
             A/B < 1: A is better\n",
            self.rounds.len()
        );
        for i in [&self.a, &self.b] {
            out.push_str(&format!("   {}: {}\n", i.label, i.topology()));
        }
        out.push_str(&format!(
            "{:<14} {:>11} {:>11} {:>20} {:>20} {:>20} {:>20}\n",
            "workload", "A ops/s", "B ops/s", "ops/s A/B", "p50 A/B", "p99 A/B", "CPU/op A/B"
        ));
        let text = |s: Option<Spread>| s.map(Spread::text).unwrap_or_else(|| "n/a".into());
        for r in self.ratios() {
            out.push_str(&format!(
                "{:<14} {:>11} {:>11} {:>20} {:>20} {:>20} {:>20}\n",
                r.workload,
                group(r.a_ops_per_sec.round() as u64),
                group(r.b_ops_per_sec.round() as u64),
                text(r.throughput),
                text(r.p50),
                text(r.p99),
                text(r.cpu_per_op),
            ));
        }
        out.push_str(&self.open_loop_lines());
        let ensembles = !(self.a.members.is_empty() && self.b.members.is_empty());
        out.push_str(&format!(
            "\nresident memory (VmRSS) at the end of each round{}:\n{:<7} {:>12} {:>12}\n",
            if ensembles {
                ", summed over the members (each member in parentheses, A then B)"
            } else {
                ""
            },
            "round",
            format!("{la} MiB"),
            format!("{lb} MiB")
        ));
        let mib = |k: Option<u64>| {
            k.map(|k| format!("{:.1}", k as f64 / 1024.0))
                .unwrap_or_else(|| "?".into())
        };
        let members = |sd: &Side| {
            if sd.member_rss_kib.is_empty() {
                String::new()
            } else {
                let each: Vec<String> = sd.member_rss_kib.iter().map(|&k| mib(k)).collect();
                format!("  ({})", each.join(" + "))
            }
        };
        for (i, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "{:<7} {:>12} {:>12}{}{}\n",
                i + 1,
                mib(r.a.rss_kib),
                mib(r.b.rss_kib),
                members(&r.a),
                members(&r.b)
            ));
        }
        out.push_str(&self.member_cpu_table());
        for (i, r) in self.rounds.iter().enumerate() {
            for (info, sd) in [(&self.a, &r.a), (&self.b, &r.b)] {
                let start: Vec<Option<&str>> =
                    info.members.iter().map(|m| Some(m.mode.as_str())).collect();
                let end: Vec<Option<&str>> = sd.member_modes.iter().map(|m| m.as_deref()).collect();
                if !end.is_empty() && start != end {
                    out.push_str(&format!(
                        "warning: {} member modes changed by the end of round {}: {end:?}\n",
                        info.label,
                        i + 1
                    ));
                }
            }
        }
        out
    }

    /// For open-loop rows (`--rate`): the offered rate both sides got and, per workload and
    /// side, the schedule's misses and late sends summed over the rounds, so that a side
    /// whose achieved ops/s fell short of the target is visible. Empty for a closed loop.
    fn open_loop_lines(&self) -> String {
        let Some(first) = self.rounds.first() else {
            return String::new();
        };
        let mut out = String::new();
        for r0 in first.a.rows.iter().filter(|r| r.open_loop.is_some()) {
            let sum = |side: fn(&Round) -> &Side| {
                let mut t = (0u64, 0u64, 0u64, 0u64);
                for round in &self.rounds {
                    if let Some(o) = find(&side(round).rows, &r0.name).and_then(|r| r.open_loop) {
                        t = (o.rate, t.1 + o.offered, t.2 + o.missed, t.3 + o.late);
                    }
                }
                t
            };
            let (rate, offered_a, missed_a, late_a) = sum(|r| &r.a);
            let (_, offered_b, missed_b, late_b) = sum(|r| &r.b);
            out.push_str(&format!(
                "{:<14} open loop at {} ops/s: missed {} {} / {} {}, late {} {} / {} {} \
                 (of {} / {} scheduled)\n",
                r0.name,
                group(rate),
                self.a.label,
                group(missed_a),
                self.b.label,
                group(missed_b),
                self.a.label,
                group(late_a),
                self.b.label,
                group(late_b),
                group(offered_a),
                group(offered_b),
            ));
        }
        out
    }

    /// For ensembles: server CPU µs per op of each member, mean over rounds, so the
    /// leader's share and the followers' can be told apart. Empty for standalone servers.
    fn member_cpu_table(&self) -> String {
        if self.a.members.is_empty() && self.b.members.is_empty() {
            return String::new();
        }
        let Some(first) = self.rounds.first() else {
            return String::new();
        };
        let head = |i: &ServerInfo| -> Vec<String> {
            i.members
                .iter()
                .map(|m| {
                    let role = match m.mode.as_str() {
                        "leader" => "L",
                        "observer" => "O",
                        _ => "F",
                    };
                    format!("{} m{}{role}", i.label, m.myid)
                })
                .collect()
        };
        let cols: Vec<String> = head(&self.a).into_iter().chain(head(&self.b)).collect();
        let mut out = format!(
            "\nserver CPU µs per op per member, mean over rounds (L leader, F follower, O \
             observer):\n{:<14}",
            "workload"
        );
        for c in &cols {
            out.push_str(&format!(" {c:>16}"));
        }
        out.push('\n');
        let per_member = |pick: &dyn Fn(&Round) -> &Side, name: &str, n: usize| -> Vec<String> {
            (0..n)
                .map(|m| {
                    let xs: Vec<f64> = self
                        .rounds
                        .iter()
                        .filter_map(|r| {
                            let row = find(&pick(r).rows, name)?;
                            let cpu = row.member_cpu_s.get(m)?;
                            (row.ops > 0).then(|| cpu * 1e6 / row.ops as f64)
                        })
                        .collect();
                    if xs.is_empty() {
                        "-".into()
                    } else {
                        format!("{:.1}", mean(&xs))
                    }
                })
                .collect()
        };
        for r0 in &first.a.rows {
            out.push_str(&format!("{:<14}", r0.name));
            let a = per_member(&|r| &r.a, &r0.name, self.a.members.len());
            let b = per_member(&|r| &r.b, &r0.name, self.b.members.len());
            for v in a.into_iter().chain(b) {
                out.push_str(&format!(" {v:>16}"));
            }
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self, s: &Settings) -> Json {
        let server = |i: &ServerInfo| {
            let members = i
                .members
                .iter()
                .map(|m| {
                    Json::obj([
                        ("myid", Json::UInt(m.myid)),
                        ("client_port", Json::UInt(u64::from(m.client_port))),
                        (
                            "pid",
                            m.pid.map(|p| Json::UInt(p.into())).unwrap_or(Json::Null),
                        ),
                        ("observer", Json::Bool(m.observer)),
                        ("mode", Json::str(&m.mode)),
                    ])
                })
                .collect();
            Json::obj([
                ("label", Json::str(&i.label)),
                ("command", Json::str(&i.command)),
                ("version", Json::str(&i.version)),
                ("topology", Json::str(i.topology())),
                ("voters", Json::UInt(i.voters as u64)),
                ("observers", Json::UInt(i.observers as u64)),
                ("members", Json::Arr(members)),
            ])
        };
        let side = |sd: &Side| {
            Json::obj([
                ("rss_kib", sd.rss_kib.map(Json::UInt).unwrap_or(Json::Null)),
                (
                    "member_rss_kib",
                    Json::Arr(
                        sd.member_rss_kib
                            .iter()
                            .map(|k| k.map(Json::UInt).unwrap_or(Json::Null))
                            .collect(),
                    ),
                ),
                (
                    "member_modes",
                    Json::Arr(
                        sd.member_modes
                            .iter()
                            .map(|m| m.as_deref().map(Json::str).unwrap_or(Json::Null))
                            .collect(),
                    ),
                ),
                (
                    "results",
                    Json::Arr(sd.rows.iter().map(Row::to_json).collect()),
                ),
            ])
        };
        let spread = |s: Option<Spread>| s.map(Spread::to_json).unwrap_or(Json::Null);
        Json::obj([
            ("tool", Json::str("corral-bench")),
            ("tool_version", Json::str(env!("CARGO_PKG_VERSION"))),
            ("mode", Json::str("compare")),
            ("date", Json::str(crate::json::now_utc())),
            ("settings", crate::report::settings_json(s)),
            (
                "servers",
                Json::obj([("a", server(&self.a)), ("b", server(&self.b))]),
            ),
            (
                "rounds",
                Json::Arr(
                    self.rounds
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            Json::obj([
                                ("round", Json::UInt(i as u64 + 1)),
                                ("a", side(&r.a)),
                                ("b", side(&r.b)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "ratios_a_over_b",
                Json::Arr(
                    self.ratios()
                        .into_iter()
                        .map(|r| {
                            Json::obj([
                                ("workload", Json::str(r.workload)),
                                ("throughput", spread(r.throughput)),
                                ("p50", spread(r.p50)),
                                ("p99", spread(r.p99)),
                                ("p999", spread(r.p999)),
                                ("server_cpu_per_op", spread(r.cpu_per_op)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ])
    }
}

/// Starts both servers (or ensembles), runs the rounds, stops both (also on error: dropping
/// a [`Cluster`] kills its members).
pub fn run_compare(
    rt: &tokio::runtime::Runtime,
    s: &Settings,
    stop: &Arc<AtomicBool>,
) -> Result<CompareReport, String> {
    let c = s
        .compare
        .as_ref()
        .ok_or_else(|| "not a --compare run".to_string())?;
    let mut a = Cluster::launch(&c.label_a, &c.a, c, stop)?;
    let mut b = Cluster::launch(&c.label_b, &c.b, c, stop)?;
    let mut report = CompareReport {
        a: ServerInfo::of(&a),
        b: ServerInfo::of(&b),
        rounds: Vec::new(),
    };
    for round in 1..=c.rounds {
        let mut sa = rt
            .block_on(Suite::setup(
                &a.connect_strings(),
                s,
                &format!("{} r{round} ", a.label),
                stop,
            ))
            .map_err(|e| format!("{}: {e}", a.label))?;
        sa.server_pids = a.pids();
        let mut sb = rt
            .block_on(Suite::setup(
                &b.connect_strings(),
                s,
                &format!("{} r{round} ", b.label),
                stop,
            ))
            .map_err(|e| format!("{}: {e}", b.label))?;
        sb.server_pids = b.pids();
        let (mut rows_a, mut rows_b) = (Vec::new(), Vec::new());
        for &w in &s.workloads {
            for (srv, suite, rows) in [
                (&mut a, &mut sa, &mut rows_a),
                (&mut b, &mut sb, &mut rows_b),
            ] {
                if stop.load(Ordering::Relaxed) {
                    return Err("interrupted".into());
                }
                srv.check_running()?;
                let r = rt
                    .block_on(suite.run(w, s, stop))
                    .map_err(|e| format!("{}: {e}", srv.label))?;
                rows.extend(r);
            }
        }
        rt.block_on(sa.teardown(s))
            .map_err(|e| format!("{}: {e}", a.label))?;
        rt.block_on(sb.teardown(s))
            .map_err(|e| format!("{}: {e}", b.label))?;
        for (label, rows) in [(&a.label, &rows_a), (&b.label, &rows_b)] {
            println!("\n== round {round}, {label}");
            print!("{}", crate::report::table(rows));
        }
        report.rounds.push(Round {
            a: Side::new(rows_a, &mut a),
            b: Side::new(rows_b, &mut b),
        });
    }
    a.stop();
    b.stop();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::Histogram;
    use crate::report::Unit;

    #[test]
    fn vm_rss_is_parsed() {
        let status = "Name:\tjava\nVmPeak:\t 100 kB\nVmRSS:\t  123456 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(123_456));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let me = rss_kib(std::process::id()).expect("own VmRSS");
        assert!(me > 0);
    }

    #[test]
    fn config_overrides_replace_defaults() {
        let cfg = zoo_cfg(
            Path::new("/d"),
            2999,
            &["forceSync=no".into(), "snapCount=1000".into()],
        );
        assert!(cfg.contains("forceSync=no\n"));
        assert!(!cfg.contains("forceSync=yes"));
        assert!(cfg.contains("snapCount=1000\n"));
        assert!(cfg.contains("clientPort=2999\n"));
        assert!(cfg.contains("clientPortAddress=127.0.0.1\n"));
        assert!(cfg.contains("dataDir=/d\n"));
    }

    #[test]
    fn spread_is_geometric() {
        let s = Spread::of(&[2.0, 0.5, f64::NAN, 0.0]).unwrap();
        assert!((s.geomean - 1.0).abs() < 1e-9);
        assert_eq!((s.min, s.max, s.n), (0.5, 2.0, 2));
        assert!(Spread::of(&[]).is_none());
        assert_eq!(fmt_ratio(1.234), "1.23");
        assert_eq!(fmt_ratio(0.0042), "0.004");
        assert_eq!(fmt_ratio(0.00042), "4.2e-4");
    }

    fn row(name: &str, ops: u64, lat: u64) -> Row {
        let mut hist = Histogram::new();
        for _ in 0..ops {
            hist.record(lat);
        }
        Row {
            name: name.into(),
            unit: Unit::Request,
            ops,
            errors: 0,
            seconds: 1.0,
            hist,
            first_error: None,
            events_per_op: 1,
            server_cpu_s: None,
            member_cpu_s: Vec::new(),
            open_loop: None,
        }
    }

    #[test]
    fn ratios_are_a_over_b() {
        let side = |ops, lat| Side {
            rows: vec![row("read", ops, lat)],
            rss_kib: Some(2048),
            member_rss_kib: Vec::new(),
            member_modes: Vec::new(),
        };
        let info = |l: &str| ServerInfo {
            label: l.into(),
            command: "x".into(),
            version: "v".into(),
            voters: 0,
            observers: 0,
            members: Vec::new(),
        };
        let rep = CompareReport {
            a: info("fast"),
            b: info("slow"),
            rounds: vec![
                Round {
                    a: side(200, 100),
                    b: side(100, 200),
                },
                Round {
                    a: side(400, 100),
                    b: side(100, 200),
                },
            ],
        };
        let r = &rep.ratios()[0];
        let t = r.throughput.unwrap();
        assert!((t.geomean - 8f64.sqrt()).abs() < 1e-9);
        assert_eq!((t.min, t.max), (2.0, 4.0));
        assert!((r.p99.unwrap().geomean - 0.5).abs() < 1e-9);
        assert_eq!(r.a_ops_per_sec, 300.0);
        let text = rep.summary_table();
        assert!(text.contains("2.83 [2.00..4.00]"), "{text}");
        assert!(text.contains("2.0"), "rss in MiB: {text}");
        assert!(!text.contains("open loop"), "closed loop: {text}");

        let open = |missed| {
            let mut r = row("read", 100, 50);
            r.open_loop = Some(crate::report::OpenLoop {
                rate: 100,
                offered: 100,
                missed,
                late: 0,
            });
            Side {
                rows: vec![r],
                ..side(100, 50)
            }
        };
        let rep = CompareReport {
            rounds: vec![
                Round {
                    a: open(0),
                    b: open(3),
                },
                Round {
                    a: open(1),
                    b: open(4),
                },
            ],
            ..rep
        };
        let text = rep.summary_table();
        assert!(
            text.contains("read           open loop at 100 ops/s: missed fast 1 / slow 7"),
            "{text}"
        );
        assert!(text.contains("(of 200 / 200 scheduled)"), "{text}");
    }
}

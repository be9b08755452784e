//! Runs the workloads against one server: namespace setup, the load loops, progress lines
//! and cleanup.
//!
//! Owns: the `/corral-bench` namespace (removed before and after a suite), the closed-loop
//! workers (each keeps one request in flight and takes a permit of the overall in-flight
//! semaphore for it; `--inflight` workers share each session, so their requests pipeline on
//! its connection), the session-churn and watch-fanout loops, and the 1 s progress ticker.
//!
//! Ensembles: a suite gets one connect string per member. Session `i` (load session,
//! watcher, or the `i`-th session-churn worker) connects to member `i mod members`, so the
//! load is spread evenly and each member serves its sessions' reads locally and forwards
//! their writes, as in a real deployment; the admin session (setup, cleanup, the
//! watch-fanout writer) uses member 0. The server CPU of a row is summed over the members'
//! PIDs (and kept per member).
//!
//! Measurement: a workload runs `warmup + duration`; an op counts when it *completes* inside
//! the measured window `[start + warmup, start + warmup + duration]`, and ops/s is that count
//! divided by the window length. Ops still in flight at the end are awaited (bounded by the
//! request timeout) but not counted.
//!
//! Bounds: every loop stops at its deadline, at a per-worker op cap and when the stop flag
//! (Ctrl-C) is set; every request has [`REQUEST_TIMEOUT`]; setup and cleanup are capped in
//! node count and time.
//!
//! Open loop (`--rate`, see [`crate::rate`]): a pacer thread sends each op's index when its
//! intended start comes (a plain thread, because tokio's timer has 1 ms granularity and
//! would issue ops in 1 ms batches); one dispatcher task takes a permit of the in-flight cap
//! without waiting (none free: the op is missed and counted) and spawns the op on its
//! session. Latency runs from the intended start to the reply; the completed-in-window
//! rule for counting ops is the same as in the closed loop.
//!
//! Threading: runs on the caller's tokio runtime (plus the pacer thread in open loop); workers are tasks; results are merged after
//! they are joined.

use crate::args::{Settings, Workload};
use crate::hist::Histogram;
use crate::rate::{Schedule, Tally};
use crate::report::{OpenLoop, Row, Unit};
use corral_client::{acls, Acl, Client, ClientOptions, CreateMode, Error};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// The namespace every workload works in.
pub const ROOT: &str = "/corral-bench";
const DATA: &str = "/corral-bench/data";
const CREATE_DELETE: &str = "/corral-bench/cd";
const LOCK: &str = "/corral-bench/lock";
const FANOUT: &str = "/corral-bench/fanout";

/// Deadline of each request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new session may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout asked for by every bench session.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight while creating keys, listing or deleting the namespace.
const SETUP_PARALLEL: usize = 64;
/// Sessions connecting at once (watch-fanout's watchers, the load sessions).
const CONNECT_PARALLEL: usize = 32;
/// Longest setup (key creation) or cleanup (namespace removal).
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Most nodes the namespace cleanup will list and delete.
const CLEANUP_NODES_MAX: usize = 2_000_000;
/// Most ops one worker issues in one workload (time is the usual bound).
const OPS_PER_WORKER_MAX: u64 = 100_000_000;
/// Most watch-fanout rounds in one workload.
const FANOUT_ROUNDS_MAX: u64 = 1_000_000;
/// Longest wait for every watcher to re-arm, or for every notification of one round.
const FANOUT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed op, so that a dead server does not turn a worker into a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);
/// Most ops one open-loop workload schedules (time is the usual bound).
const PACED_OPS_MAX: u64 = 10_000_000_000;
/// Longest single sleep of the pacer thread, so that it notices Ctrl-C.
const PACER_NAP_MAX: Duration = Duration::from_millis(50);
/// Op indexes the pacer may have sent ahead of the dispatcher. When the dispatcher falls
/// further behind, the pacer waits; the ops it sends later are still timed (and counted
/// late) from their intended starts.
const PACER_QUEUE_OPS: usize = 4_096;
/// Interval of the progress lines.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A small, fast PRNG (SplitMix64) for key choice; not for anything secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for n << 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn entropy_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Path of key `i` under the data node.
pub fn key_path(i: usize) -> String {
    format!("{DATA}/k{i:07}")
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .session_timeout(SESSION_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
}

/// Read-only state every worker of a suite shares.
struct Shared {
    /// One connect string per member (one for a standalone server).
    members: Vec<String>,
    keys: Vec<String>,
    value: Vec<u8>,
    acl: Vec<Acl>,
}

/// Progress of the running workload, read by the ticker.
#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_start: Instant,
    end: Instant,
}

impl Window {
    fn new(s: &Settings) -> Window {
        let start = Instant::now();
        let measure_start = start + s.warmup;
        Window {
            start,
            measure_start,
            end: measure_start + s.duration,
        }
    }

    fn contains(&self, t: Instant) -> bool {
        t >= self.measure_start && t <= self.end
    }
}

/// Linux's USER_HZ: the unit of utime/stime in `/proc/PID/stat` (100 on every mainstream
/// architecture).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds a process has used so far.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_s(&stat)
}

/// `utime + stime` of a `/proc/PID/stat` line, in seconds. The command name (in
/// parentheses) may contain spaces, so fields are counted after its closing parenthesis:
/// state is field 3, utime 14, stime 15.
fn parse_cpu_s(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds of each server process over the measured window, in the order of `pids`.
type CpuProbe = tokio::task::JoinHandle<Option<Vec<f64>>>;

/// Starts measuring the servers' CPU over the window (a task; `None` without PIDs). The
/// result is `None` if any of them could not be read (a member exited).
fn spawn_cpu_probe(pids: &[u32], win: Window) -> Option<CpuProbe> {
    if pids.is_empty() {
        return None;
    }
    let pids = pids.to_vec();
    Some(tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(win.measure_start)).await;
        let before: Option<Vec<f64>> = pids.iter().map(|&p| process_cpu_s(p)).collect();
        tokio::time::sleep_until(tokio::time::Instant::from_std(win.end)).await;
        let after: Option<Vec<f64>> = pids.iter().map(|&p| process_cpu_s(p)).collect();
        Some(after?.iter().zip(before?).map(|(a, b)| a - b).collect())
    }))
}

/// The probe's result per server; `None` if the load was interrupted before the window
/// ended.
async fn finish_cpu_probe(probe: Option<CpuProbe>, stop: &AtomicBool) -> Option<Vec<f64>> {
    let probe = probe?;
    if stop.load(Ordering::Relaxed) {
        probe.abort();
        return None;
    }
    probe.await.ok().flatten()
}

/// Runs `f(client, item)` for every item with up to [`SETUP_PARALLEL`] requests in flight,
/// spread over `clients`; returns the results in no particular order, or the first error.
async fn pipelined<T, R, F, Fut>(clients: &[Client], items: Vec<T>, f: F) -> Result<Vec<R>, Error>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Client, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send,
{
    let lanes = SETUP_PARALLEL.min(items.len()).max(1);
    let mut chunks: Vec<Vec<T>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        chunks[i % lanes].push(item);
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let c = clients[i % clients.len()].clone();
        let f = f.clone();
        set.spawn(async move {
            let mut out = Vec::with_capacity(chunk.len());
            for item in chunk {
                out.push(f(c.clone(), item).await?);
            }
            Ok::<_, Error>(out)
        });
    }
    let mut all = Vec::new();
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(v)) => all.extend(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::Protocol(format!("setup task failed: {e}")));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

/// Deletes `root` and everything below it (pipelined, deepest first). Missing nodes are fine.
pub async fn remove_tree(clients: &[Client], root: &str) -> Result<usize, String> {
    let work = async {
        let mut levels: Vec<Vec<String>> = vec![vec![root.to_owned()]];
        let mut total = 1usize;
        loop {
            let last = levels.last().cloned().unwrap_or_default();
            if last.is_empty() {
                levels.pop();
                break;
            }
            let children = pipelined(clients, last, |c, p: String| async move {
                match c.get_children(&p).await {
                    Ok(kids) => Ok(kids
                        .into_iter()
                        .map(|k| format!("{p}/{k}"))
                        .collect::<Vec<_>>()),
                    Err(Error::NoNode) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|e| format!("listing {root}: {e}"))?;
            let next: Vec<String> = children.into_iter().flatten().collect();
            total += next.len();
            if total > CLEANUP_NODES_MAX {
                return Err(format!(
                    "{root} has more than {CLEANUP_NODES_MAX} nodes; not removing it"
                ));
            }
            levels.push(next);
        }
        for level in levels.into_iter().rev() {
            pipelined(clients, level, |c, p: String| async move {
                match c.delete(&p, -1).await {
                    Ok(()) | Err(Error::NoNode) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|e| format!("removing {root}: {e}"))?;
        }
        Ok(total)
    };
    tokio::time::timeout(SETUP_TIMEOUT, work)
        .await
        .map_err(|_| format!("removing {root} took longer than {SETUP_TIMEOUT:?}"))?
}

/// The member session `i` connects to (see the module docs): round robin.
fn member_for(members: &[String], i: usize) -> &str {
    &members[i % members.len()]
}

/// Connects `n` sessions, [`CONNECT_PARALLEL`] at a time, session `i` to
/// [`member_for`]`(members, i)`.
async fn connect_many(
    members: &[String],
    n: usize,
    stop: &AtomicBool,
) -> Result<Vec<Client>, String> {
    let mut out = Vec::with_capacity(n);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while out.len() < n {
        if stop.load(Ordering::Relaxed) {
            close_all(out).await;
            return Err("interrupted".into());
        }
        if Instant::now() > deadline {
            close_all(out).await;
            return Err(format!(
                "connecting {n} sessions took over {SETUP_TIMEOUT:?}"
            ));
        }
        let batch = CONNECT_PARALLEL.min(n - out.len());
        let mut set = tokio::task::JoinSet::new();
        for i in out.len()..out.len() + batch {
            let server = member_for(members, i).to_owned();
            set.spawn(async move {
                let r = client_options().connect(&server).await;
                (i, r.map_err(|e| format!("connecting to {server}: {e}")))
            });
        }
        let mut err = None;
        let mut got = Vec::with_capacity(batch);
        while let Some(r) = set.join_next().await {
            match r {
                Ok((i, Ok(c))) => got.push((i, c)),
                Ok((_, Err(e))) => err = Some(e),
                Err(e) => err = Some(format!("connect task failed: {e}")),
            }
        }
        // Keep session i at index i, so that callers know which member each one uses.
        got.sort_by_key(|(i, _)| *i);
        out.extend(got.into_iter().map(|(_, c)| c));
        if let Some(e) = err {
            close_all(out).await;
            return Err(e);
        }
    }
    Ok(out)
}

/// Closes sessions, [`CONNECT_PARALLEL`] at a time, each bounded by the request timeout.
async fn close_all(clients: Vec<Client>) {
    let mut set = tokio::task::JoinSet::new();
    for c in clients {
        while set.len() >= CONNECT_PARALLEL {
            let _ = set.join_next().await;
        }
        set.spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, c.close()).await;
        });
    }
    while set.join_next().await.is_some() {}
}

/// Prints a progress line every second until dropped.
struct Ticker(Option<tokio::task::JoinHandle<()>>);

impl Ticker {
    fn start(show: bool, label: String, w: Window, counters: Arc<Counters>) -> Ticker {
        if !show {
            return Ticker(None);
        }
        Ticker(Some(tokio::spawn(async move {
            let mut last = 0u64;
            let mut last_t = Instant::now();
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + PROGRESS_INTERVAL,
                PROGRESS_INTERVAL,
            );
            loop {
                tick.tick().await;
                let now = Instant::now();
                let done = counters.done.load(Ordering::Relaxed);
                let errors = counters.errors.load(Ordering::Relaxed);
                let rate = (done - last) as f64 / now.duration_since(last_t).as_secs_f64();
                let phase = if now < w.measure_start {
                    "warm-up"
                } else if now <= w.end {
                    "measure"
                } else {
                    "drain"
                };
                let err = if errors > 0 {
                    format!(", {errors} errors")
                } else {
                    String::new()
                };
                eprintln!(
                    "{label}: {phase} {:>4.0}s  {} ops, {} ops/s{err}",
                    now.duration_since(w.start).as_secs_f64(),
                    crate::report::group(done),
                    crate::report::group(rate.round() as u64),
                );
                last = done;
                last_t = now;
            }
        })))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// What one closed-loop worker measured. Index 0/1 of the arrays are the op's tag (serial:
/// read/write; others only use 0).
struct WorkerOut {
    hists: [Histogram; 2],
    ops: [u64; 2],
    errors: u64,
    first_error: Option<String>,
}

impl WorkerOut {
    fn new() -> WorkerOut {
        WorkerOut {
            hists: [Histogram::new(), Histogram::new()],
            ops: [0; 2],
            errors: 0,
            first_error: None,
        }
    }

    /// Accounts for one finished op, started at `t0` (closed loop: when it was issued; open
    /// loop: its intended start) and answered at `t1`: the progress counters always, the
    /// histogram, op and error counts only if it completed inside the window. Returns
    /// whether it succeeded.
    fn record(
        &mut self,
        counters: &Counters,
        win: Window,
        r: Result<usize, Error>,
        t0: Instant,
        t1: Instant,
    ) -> bool {
        counters.done.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(tag) => {
                if win.contains(t1) {
                    self.hists[tag].record(t1.duration_since(t0).as_micros() as u64);
                    self.ops[tag] += 1;
                }
                true
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if win.contains(t1) {
                    self.errors += 1;
                }
                self.first_error.get_or_insert_with(|| e.to_string());
                false
            }
        }
    }

    /// A task of the load (`what`: a worker, an op) panicked or was cancelled: one error.
    fn task_failed(&mut self, what: &str, e: tokio::task::JoinError) {
        self.errors += 1;
        self.first_error
            .get_or_insert_with(|| format!("{what} task failed: {e}"));
    }
}

struct WorkerState {
    id: usize,
    rng: Rng,
    seq: u64,
    /// create-delete: the node created and not yet deleted.
    pending: Option<String>,
}

/// One op of a closed-loop workload. Returns the op's tag (see [`WorkerOut`]).
async fn one_op(
    w: Workload,
    c: &Client,
    st: &mut WorkerState,
    sh: &Shared,
) -> Result<usize, Error> {
    match w {
        Workload::Read => {
            let k = &sh.keys[st.rng.below(sh.keys.len())];
            c.get_data(k).await.map(|_| 0)
        }
        Workload::Write => {
            let k = &sh.keys[st.rng.below(sh.keys.len())];
            c.set_data(k, &sh.value, -1).await.map(|_| 0)
        }
        Workload::Mixed => {
            let k = &sh.keys[st.rng.below(sh.keys.len())];
            if st.rng.below(10) == 0 {
                c.set_data(k, &sh.value, -1).await.map(|_| 0)
            } else {
                c.get_data(k).await.map(|_| 0)
            }
        }
        Workload::Serial => {
            let k = &sh.keys[st.rng.below(sh.keys.len())];
            st.seq += 1;
            if st.seq % 2 == 1 {
                c.get_data(k).await.map(|_| 0)
            } else {
                c.set_data(k, &sh.value, -1).await.map(|_| 1)
            }
        }
        Workload::CreateDelete => match st.pending.take() {
            Some(p) => c.delete(&p, -1).await.map(|_| 0),
            None => {
                st.seq += 1;
                let p = format!("{CREATE_DELETE}/w{}-{}", st.id, st.seq);
                c.create(&p, &sh.value, &sh.acl, CreateMode::Persistent)
                    .await?;
                st.pending = Some(p);
                Ok(0)
            }
        },
        Workload::Lock => {
            let me = c
                .create(
                    &format!("{LOCK}/lock-"),
                    &[],
                    &sh.acl,
                    CreateMode::EphemeralSequential,
                )
                .await?;
            c.get_children(LOCK).await?;
            c.delete(&me, -1).await.map(|_| 0)
        }
        Workload::Session => {
            let s = client_options()
                .connect(member_for(&sh.members, st.id))
                .await?;
            s.close().await.map(|_| 0)
        }
        Workload::WatchFanout => Err(Error::Protocol("watch-fanout is not a closed loop".into())),
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    w: Workload,
    c: Client,
    mut st: WorkerState,
    sh: Arc<Shared>,
    sem: Arc<Semaphore>,
    win: Window,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> WorkerOut {
    let mut out = WorkerOut::new();
    let mut issued = 0u64;
    while issued < OPS_PER_WORKER_MAX && !stop.load(Ordering::Relaxed) {
        if Instant::now() >= win.end {
            break;
        }
        let Ok(permit) = sem.acquire().await else {
            break;
        };
        let t0 = Instant::now();
        if t0 >= win.end {
            break;
        }
        issued += 1;
        let r = one_op(w, &c, &mut st, &sh).await;
        let t1 = Instant::now();
        drop(permit);
        if !out.record(&counters, win, r, t0, t1) {
            if c.state().is_terminal() {
                break;
            }
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    if let Some(p) = st.pending.take() {
        // create-delete stopped between its two requests: leave no node behind.
        let _ = c.delete(&p, -1).await;
    }
    out
}

/// What one op of a closed- or open-loop workload is (watch-fanout's is a round).
fn unit_of(w: Workload) -> Unit {
    match w {
        Workload::Lock | Workload::Session => Unit::Cycle,
        _ => Unit::Request,
    }
}

fn make_row(name: &str, unit: Unit, s: &Settings, outs: &[WorkerOut], tag: usize) -> Row {
    let mut hist = Histogram::new();
    let mut ops = 0;
    let mut errors = 0;
    let mut first_error = None;
    for o in outs {
        hist.merge(&o.hists[tag]);
        ops += o.ops[tag];
        errors += o.errors;
        if first_error.is_none() {
            first_error.clone_from(&o.first_error);
        }
    }
    Row {
        name: name.to_owned(),
        unit,
        ops,
        errors,
        seconds: s.duration.as_secs_f64(),
        hist,
        first_error,
        events_per_op: 1,
        server_cpu_s: None,
        member_cpu_s: Vec::new(),
        open_loop: None,
    }
}

/// Runs one closed-loop workload with the suite's sessions.
#[allow(clippy::too_many_arguments)]
async fn closed_loop(
    w: Workload,
    s: &Settings,
    label: &str,
    clients: &[Client],
    sh: &Arc<Shared>,
    rng: &mut Rng,
    server_pids: &[u32],
    stop: &Arc<AtomicBool>,
) -> Vec<Row> {
    // Which sessions, and how many workers on each.
    let (sessions, per_session) = match w {
        Workload::Serial => (&clients[..1], 1),
        // One worker per concurrent session churn; it does not use the suite's sessions.
        Workload::Session => (clients, 1),
        _ => (clients, s.inflight),
    };
    let permits = match w {
        Workload::Serial => 1,
        _ => s.max_inflight,
    };
    let sem = Arc::new(Semaphore::new(permits));
    let counters = Arc::new(Counters::default());
    let win = Window::new(s);
    let _ticker = Ticker::start(
        s.progress,
        format!("{label}{}", w.name()),
        win,
        counters.clone(),
    );
    let probe = spawn_cpu_probe(server_pids, win);
    let mut set = tokio::task::JoinSet::new();
    let mut id = 0;
    for c in sessions {
        for _ in 0..per_session {
            let st = WorkerState {
                id,
                rng: Rng::new(rng.next_u64()),
                seq: 0,
                pending: None,
            };
            id += 1;
            set.spawn(worker(
                w,
                c.clone(),
                st,
                sh.clone(),
                sem.clone(),
                win,
                counters.clone(),
                stop.clone(),
            ));
        }
    }
    let mut outs = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(o) => outs.push(o),
            Err(e) => {
                let mut o = WorkerOut::new();
                o.task_failed("worker", e);
                outs.push(o);
            }
        }
    }
    let cpu = finish_cpu_probe(probe, stop).await;
    let mut rows = match w {
        Workload::Serial => vec![
            make_row("serial-read", Unit::Request, s, &outs, 0),
            make_row("serial-write", Unit::Request, s, &outs, 1),
        ],
        _ => vec![make_row(w.name(), unit_of(w), s, &outs, 0)],
    };
    // The server's CPU is shared among the rows of one loop (serial) by their op counts.
    let total_ops: u64 = rows.iter().map(|r| r.ops).sum();
    if let Some(cpu) = cpu {
        for r in &mut rows {
            if total_ops > 0 {
                let share = r.ops as f64 / total_ops as f64;
                r.set_cpu(cpu.iter().map(|c| c * share).collect());
            }
        }
    }
    rows
}

/// The pacer thread of an open-loop workload: sends the index of each op of `sched` when its
/// intended start (from `win.start`) has come, until the window ends, Ctrl-C, or the
/// dispatcher hangs up. Ops that came due while it slept are sent at once, in order.
fn pace(sched: Schedule, win: Window, tx: mpsc::Sender<u64>, stop: &AtomicBool) {
    let mut next = 0u64;
    while next < PACED_OPS_MAX && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let intended = win.start + sched.offset(next);
        if now < intended {
            std::thread::sleep((intended - now).min(PACER_NAP_MAX));
            continue;
        }
        let due = sched.due(now.duration_since(win.start)).min(PACED_OPS_MAX);
        while next < due {
            if win.start + sched.offset(next) >= win.end || tx.blocking_send(next).is_err() {
                return;
            }
            next += 1;
        }
    }
}

/// One open-loop op. create-delete keeps its two requests as separate ops of the schedule:
/// an op deletes a node its session created earlier if one is ready, else creates one (so
/// the two alternate while the server keeps up). The others are [`one_op`].
async fn rate_op(
    w: Workload,
    c: &Client,
    st: &mut WorkerState,
    sh: &Shared,
    created: &std::sync::Mutex<Vec<String>>,
) -> Result<usize, Error> {
    if w != Workload::CreateDelete {
        return one_op(w, c, st, sh).await;
    }
    let ready = created.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match ready {
        Some(p) => c.delete(&p, -1).await.map(|_| 0),
        None => {
            one_op(w, c, st, sh).await?;
            if let Some(p) = st.pending.take() {
                created.lock().unwrap_or_else(|e| e.into_inner()).push(p);
            }
            Ok(0)
        }
    }
}

/// What an open-loop op task hands back: its result (the tag, see [`WorkerOut`]), its
/// intended start and when its reply came.
type Done = (Result<usize, Error>, Instant, Instant);

/// Accounts for one joined open-loop op task (see [`WorkerOut::record`]).
fn record_done(
    out: &mut WorkerOut,
    counters: &Counters,
    win: Window,
    joined: Result<Done, tokio::task::JoinError>,
) {
    match joined {
        Ok((r, intended, t1)) => {
            out.record(counters, win, r, intended, t1);
        }
        Err(e) => out.task_failed("op", e),
    }
}

/// Runs one workload open-loop at `rate` ops/s over the suite's sessions (see the module
/// docs). Needs `w.rate_driven()`.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    w: Workload,
    rate: u64,
    s: &Settings,
    label: &str,
    clients: &[Client],
    sh: &Arc<Shared>,
    rng: &mut Rng,
    server_pids: &[u32],
    stop: &Arc<AtomicBool>,
) -> Vec<Row> {
    let sched = Schedule::new(rate, clients.len());
    let sem = Arc::new(Semaphore::new(s.max_inflight));
    let counters = Arc::new(Counters::default());
    let win = Window::new(s);
    let _ticker = Ticker::start(
        s.progress,
        format!("{label}{} @{rate}/s", w.name()),
        win,
        counters.clone(),
    );
    let probe = spawn_cpu_probe(server_pids, win);
    let mut out = WorkerOut::new();
    let (tx, mut rx) = mpsc::channel::<u64>(PACER_QUEUE_OPS);
    let pacer = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || pace(sched, win, tx, &stop))
    };
    let created: Vec<Arc<std::sync::Mutex<Vec<String>>>> =
        clients.iter().map(|_| Arc::default()).collect();
    let mut tally = Tally::default();
    let mut tasks = tokio::task::JoinSet::new();
    match &pacer {
        Err(e) => out.first_error = Some(format!("cannot start the pacer thread: {e}")),
        Ok(_) => {
            while let Some(k) = rx.recv().await {
                let intended = win.start + sched.offset(k);
                let permit = sem.clone().try_acquire_owned().ok();
                tally.slot(
                    win.contains(intended),
                    permit.is_some(),
                    Instant::now().saturating_duration_since(intended),
                );
                if let Some(permit) = permit {
                    let j = sched.session_of(k);
                    let (c, sh, created) = (clients[j].clone(), sh.clone(), created[j].clone());
                    let mut st = WorkerState {
                        id: k as usize,
                        rng: Rng::new(rng.next_u64()),
                        seq: 0,
                        pending: None,
                    };
                    tasks.spawn(async move {
                        let r = rate_op(w, &c, &mut st, &sh, &created).await;
                        drop(permit);
                        (r, intended, Instant::now())
                    });
                }
                while let Some(joined) = tasks.try_join_next() {
                    record_done(&mut out, &counters, win, joined);
                }
            }
        }
    }
    // The channel closed: the pacer has returned (or never started), so this join is
    // immediate. Ops still in flight are awaited, each bounded by the request timeout.
    if let Ok(h) = pacer {
        let _ = h.join();
    }
    while let Some(joined) = tasks.join_next().await {
        record_done(&mut out, &counters, win, joined);
    }
    // create-delete: leave no node behind (the teardown would remove them too, but later
    // workloads should not see them).
    for (c, list) in clients.iter().zip(&created) {
        let left = std::mem::take(&mut *list.lock().unwrap_or_else(|e| e.into_inner()));
        for p in left {
            let _ = c.delete(&p, -1).await;
        }
    }
    let cpu = finish_cpu_probe(probe, stop).await;
    let mut row = make_row(w.name(), unit_of(w), s, std::slice::from_ref(&out), 0);
    row.open_loop = Some(OpenLoop {
        rate,
        offered: tally.offered,
        missed: tally.missed,
        late: tally.late,
    });
    if let Some(cpu) = cpu {
        row.set_cpu(cpu);
    }
    vec![row]
}

/// watch-fanout: `--watchers` sessions hold a data watch on one node; each round sets the
/// node and measures until the last watcher's notification, then they all re-arm.
async fn watch_fanout(
    s: &Settings,
    label: &str,
    writer: &Client,
    sh: &Arc<Shared>,
    server_pids: &[u32],
    stop: &Arc<AtomicBool>,
) -> Result<Row, String> {
    let n = s.watchers;
    if s.progress {
        eprintln!("{label}watch-fanout: connecting {n} watcher sessions");
    }
    let watchers = connect_many(&sh.members, n, stop).await?;
    let tally = Arc::new(FanoutTally::new(n));
    let (quit_tx, quit_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for c in &watchers {
        let c = c.clone();
        let tally = tally.clone();
        let mut quit_rx = quit_rx.clone();
        tasks.spawn(async move {
            for _ in 0..FANOUT_ROUNDS_MAX + 1 {
                let Ok((_, _, fut)) = c.get_data_w(FANOUT).await else {
                    return;
                };
                tally.armed.count();
                tokio::select! {
                    _ = fut => tally.fired(),
                    _ = quit_rx.changed() => return,
                }
            }
        });
    }
    let counters = Arc::new(Counters::default());
    let win = Window::new(s);
    let probe = spawn_cpu_probe(server_pids, win);
    let _ticker = Ticker::start(
        s.progress,
        format!("{label}watch-fanout"),
        win,
        counters.clone(),
    );
    let mut hist = Histogram::new();
    let mut ops = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    let mut rounds = 0u64;
    let result = async {
        while rounds < FANOUT_ROUNDS_MAX
            && Instant::now() < win.end
            && !stop.load(Ordering::Relaxed)
        {
            rounds += 1;
            if !tally.armed.wait_all(FANOUT_STEP_TIMEOUT).await {
                return Err("watchers did not re-arm in time (a session lost?)");
            }
            // Nobody can fire (or re-arm) before the setData below.
            tally.armed.reset();
            tally.last_fired_ns.store(0, Ordering::Relaxed);
            let t0 = Instant::now();
            if let Err(e) = writer.set_data(FANOUT, &sh.value, -1).await {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
                counters.errors.fetch_add(1, Ordering::Relaxed);
                return Err("setData of the watched node failed");
            }
            if !tally.fired.wait_all(FANOUT_STEP_TIMEOUT).await {
                return Err("notifications did not all arrive in time");
            }
            tally.fired.reset();
            let last = tally.last_fired(t0);
            counters.done.fetch_add(1, Ordering::Relaxed);
            if win.contains(last) {
                hist.record(last.duration_since(t0).as_micros() as u64);
                ops += 1;
            }
        }
        Ok(())
    }
    .await;
    let _ = quit_tx.send(true);
    let cpu = finish_cpu_probe(probe, stop).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    close_all(watchers).await;
    if let Err(e) = result {
        errors += 1;
        first_error.get_or_insert_with(|| e.to_owned());
    }
    let mut row = Row {
        name: Workload::WatchFanout.name().to_owned(),
        unit: Unit::Round,
        ops,
        errors,
        seconds: s.duration.as_secs_f64(),
        hist,
        first_error,
        events_per_op: n as u64,
        server_cpu_s: None,
        member_cpu_s: Vec::new(),
        open_loop: None,
    };
    if let Some(cpu) = cpu {
        row.set_cpu(cpu);
    }
    Ok(row)
}

/// watch-fanout's bookkeeping, shared by the watcher tasks and the round loop: counters
/// instead of a channel message per watcher and event, so the load generator spends its
/// CPU on the sessions rather than on its own accounting (which the 2-core machine takes
/// from the server under test).
struct FanoutTally {
    /// Watchers whose watch is set for the coming round.
    armed: Countdown,
    /// Watchers notified in this round.
    fired: Countdown,
    /// When the latest notification of this round arrived, in ns after `base`.
    last_fired_ns: AtomicU64,
    base: Instant,
}

impl FanoutTally {
    fn new(n: usize) -> FanoutTally {
        FanoutTally {
            armed: Countdown::new(n),
            fired: Countdown::new(n),
            last_fired_ns: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// A watcher got its notification (now).
    fn fired(&self) {
        let ns = self.base.elapsed().as_nanos() as u64;
        self.last_fired_ns.fetch_max(ns, Ordering::Relaxed);
        self.fired.count();
    }

    /// The latest notification of the round that started at `t0` (at least `t0`).
    fn last_fired(&self, t0: Instant) -> Instant {
        let at = self.base + Duration::from_nanos(self.last_fired_ns.load(Ordering::Relaxed));
        at.max(t0)
    }
}

/// Counts up to `n`; the one waiter wakes when it gets there.
struct Countdown {
    n: usize,
    done: AtomicUsize,
    all: tokio::sync::Notify,
}

impl Countdown {
    fn new(n: usize) -> Countdown {
        Countdown {
            n,
            done: AtomicUsize::new(0),
            all: tokio::sync::Notify::new(),
        }
    }

    fn count(&self) {
        // AcqRel: the waiter that sees n also sees what each counter wrote before.
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.all.notify_one();
        }
    }

    /// Waits until all `n` counted; false after `timeout` without.
    async fn wait_all(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        // `notify_one` leaves a permit when nobody waits, so a count that completes between
        // the check and the wait is not missed; a stale permit only costs a re-check.
        while self.done.load(Ordering::Acquire) < self.n {
            if tokio::time::timeout_at(deadline, self.all.notified())
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    fn reset(&self) {
        self.done.store(0, Ordering::Release);
    }
}

/// One server's bench session: the namespace, the load sessions and the shared state. Made
/// by [`Suite::setup`], used by [`Suite::run`] per workload, ended by [`Suite::teardown`]
/// (which removes the namespace; call it also after a failure).
pub struct Suite {
    label: String,
    /// The server's PID, or every member's, for CPU time per op (when they run on this
    /// machine).
    pub server_pids: Vec<u32>,
    admin: Client,
    clients: Vec<Client>,
    sh: Arc<Shared>,
    rng: Rng,
}

impl Suite {
    /// Connects, removes an earlier run's namespace, creates `/corral-bench` (and the keys
    /// when a workload of `s` uses them) and connects the load sessions, spread over
    /// `members` (one connect string per ensemble member, or one for a standalone server).
    /// `label` prefixes progress lines (e.g. `"corral r1 "`).
    pub async fn setup(
        members: &[String],
        s: &Settings,
        label: &str,
        stop: &Arc<AtomicBool>,
    ) -> Result<Suite, String> {
        let Some(first) = members.first() else {
            return Err("no server to connect to".into());
        };
        let admin = client_options()
            .connect(first)
            .await
            .map_err(|e| format!("connecting to {first}: {e}"))?;
        match Suite::setup_with(members, s, label, stop, &admin).await {
            Ok(suite) => Ok(suite),
            Err(e) => {
                let _ = remove_tree(std::slice::from_ref(&admin), ROOT).await;
                let _ = admin.close().await;
                Err(e)
            }
        }
    }

    async fn setup_with(
        members: &[String],
        s: &Settings,
        label: &str,
        stop: &Arc<AtomicBool>,
        admin: &Client,
    ) -> Result<Suite, String> {
        let t = Instant::now();
        let leftover = remove_tree(std::slice::from_ref(admin), ROOT).await?;
        if leftover > 1 && s.progress {
            eprintln!("{label}setup: removed {leftover} nodes left by an earlier run");
        }
        let value = vec![b'x'; s.value_size];
        let acl = acls::open();
        for p in [ROOT, DATA, CREATE_DELETE, LOCK, FANOUT] {
            admin
                .create(
                    p,
                    &value[..value.len().min(64)],
                    &acl,
                    CreateMode::Persistent,
                )
                .await
                .map_err(|e| format!("creating {p}: {e}"))?;
        }
        let clients = connect_many(members, s.sessions, stop).await?;
        let keys: Vec<String> = (0..s.keys).map(key_path).collect();
        let with_keys = s.workloads.iter().any(|w| w.uses_keys());
        if with_keys {
            let v = value.clone();
            let a = acl.clone();
            let created = tokio::time::timeout(
                SETUP_TIMEOUT,
                pipelined(&clients, keys.clone(), move |c, k: String| {
                    let v = v.clone();
                    let a = a.clone();
                    async move {
                        match c.create(&k, &v, &a, CreateMode::Persistent).await {
                            Ok(_) | Err(Error::NodeExists) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                }),
            )
            .await;
            let failed = match created {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("creating keys: {e}")),
                Err(_) => Some(format!("creating keys took over {SETUP_TIMEOUT:?}")),
            };
            if let Some(e) = failed {
                close_all(clients).await;
                return Err(e);
            }
        }
        if members.len() > 1 {
            // A member may not have applied every key another member's session created
            // yet; a sync per session makes each one's member catch up before the load
            // starts, so no read of the warm-up finds a key missing.
            let synced = tokio::time::timeout(
                SETUP_TIMEOUT,
                pipelined(&clients, (0..clients.len()).collect(), {
                    let clients = clients.clone();
                    move |_, i: usize| {
                        let c = clients[i].clone();
                        async move { c.sync(ROOT).await }
                    }
                }),
            )
            .await;
            let failed = match synced {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("sync after setup: {e}")),
                Err(_) => Some(format!("sync after setup took over {SETUP_TIMEOUT:?}")),
            };
            if let Some(e) = failed {
                close_all(clients).await;
                return Err(e);
            }
        }
        if s.progress {
            let keys = if with_keys {
                format!(", {} keys of {} bytes", s.keys, s.value_size)
            } else {
                String::new()
            };
            eprintln!(
                "{label}setup: {} sessions{keys} in {:.1}s",
                s.sessions,
                t.elapsed().as_secs_f64()
            );
        }
        Ok(Suite {
            label: label.to_owned(),
            server_pids: s.server_pid.into_iter().collect(),
            admin: admin.clone(),
            clients,
            sh: Arc::new(Shared {
                members: members.to_vec(),
                keys,
                value,
                acl,
            }),
            rng: Rng::new(s.seed.unwrap_or_else(entropy_seed)),
        })
    }

    /// Runs one workload: one row, or two for serial. `Err` when the workload could not run
    /// at all (watch-fanout's watchers failed); failed requests are counted in the row.
    pub async fn run(
        &mut self,
        w: Workload,
        s: &Settings,
        stop: &Arc<AtomicBool>,
    ) -> Result<Vec<Row>, String> {
        match (w, s.rate) {
            (Workload::WatchFanout, _) => watch_fanout(
                s,
                &self.label,
                &self.admin,
                &self.sh,
                &self.server_pids,
                stop,
            )
            .await
            .map(|r| vec![r])
            .map_err(|e| format!("watch-fanout: {e}")),
            (_, Some(rate)) if w.rate_driven() => Ok(open_loop(
                w,
                rate,
                s,
                &self.label,
                &self.clients,
                &self.sh,
                &mut self.rng,
                &self.server_pids,
                stop,
            )
            .await),
            _ => Ok(closed_loop(
                w,
                s,
                &self.label,
                &self.clients,
                &self.sh,
                &mut self.rng,
                &self.server_pids,
                stop,
            )
            .await),
        }
    }

    /// Closes the load sessions and removes the namespace.
    pub async fn teardown(self, s: &Settings) -> Result<(), String> {
        close_all(self.clients).await;
        if s.progress {
            eprintln!("{}cleanup: removing {ROOT}", self.label);
        }
        let r = remove_tree(std::slice::from_ref(&self.admin), ROOT).await;
        let _ = self.admin.close().await;
        r.map(|_| ())
    }
}

/// Runs every workload of `s` against `server` and returns one row per workload (two for
/// serial). The namespace is set up first and removed at the end, also after a failure.
pub async fn run_suite(
    server: &str,
    s: &Settings,
    label: &str,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<Row>, String> {
    let mut suite = Suite::setup(&[server.to_owned()], s, label, stop).await?;
    let mut rows = Vec::new();
    let mut failure = None;
    for &w in &s.workloads {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match suite.run(w, s, stop).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let cleanup = suite.teardown(s).await;
    if let Some(e) = failure {
        return Err(e);
    }
    cleanup?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_go_round_robin_over_the_members() {
        let members: Vec<String> = ["a:1", "b:2", "c:3"].map(String::from).to_vec();
        let got: Vec<&str> = (0..7).map(|i| member_for(&members, i)).collect();
        assert_eq!(got, ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3", "a:1"]);
        let one = vec!["s:1".to_owned()];
        assert!((0..4).all(|i| member_for(&one, i) == "s:1"));
    }

    #[test]
    fn rng_is_deterministic_and_spread() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            seen[x] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn proc_stat_cpu_is_parsed() {
        let line = "1234 (java (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100";
        assert_eq!(parse_cpu_s(line), Some(3.0));
        assert_eq!(parse_cpu_s("garbage"), None);
        assert!(process_cpu_s(std::process::id()).is_some());
    }

    #[test]
    fn key_paths_sort_in_key_order() {
        assert_eq!(key_path(7), "/corral-bench/data/k0000007");
        assert!(key_path(99) < key_path(100));
    }
}

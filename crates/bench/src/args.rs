//! Command-line options of `corral bench` and their validation into [`Settings`].
//!
//! Owns: the clap definition ([`Args`]), duration parsing (`500ms`, `2s`, `1.5m`), workload
//! names (repeatable `--workload`, comma lists, `all`) and every limit the load generator
//! accepts (each a named constant with its unit). Everything past this module works on a
//! validated [`Settings`].

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Most sessions one load run opens (besides watch-fanout's watchers).
pub const SESSIONS_MAX: usize = 1_000;
/// Most requests in flight on one session.
pub const INFLIGHT_PER_SESSION_MAX: usize = 1_000;
/// Most requests in flight overall.
pub const INFLIGHT_TOTAL_MAX: usize = 10_000;
/// Longest warm-up or measured duration of one workload.
pub const DURATION_MAX: Duration = Duration::from_secs(3_600);
/// Most pre-created keys for the read/write/mixed/serial workloads.
pub const KEYS_MAX: usize = 1_000_000;
/// Largest value written (ZooKeeper's default `jute.maxbuffer` is 1 MiB for a whole frame).
pub const VALUE_BYTES_MAX: usize = 512 * 1024;
/// Most watcher sessions of the watch-fanout workload.
pub const WATCHERS_MAX: usize = 10_000;
/// Most A/B rounds of `--compare`.
pub const ROUNDS_MAX: usize = 100;
/// Most voting members of a `--compare --ensemble` side.
pub const ENSEMBLE_VOTERS_MAX: usize = 9;
/// Most observers of a `--compare --ensemble` side.
pub const OBSERVERS_MAX: usize = 9;

/// One kind of load. See the crate docs for what each one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    Read,
    Write,
    CreateDelete,
    Mixed,
    Session,
    WatchFanout,
    Lock,
    Serial,
}

impl Workload {
    /// Every workload, in the order `all` runs them.
    pub const ALL: [Workload; 8] = [
        Workload::Read,
        Workload::Write,
        Workload::Mixed,
        Workload::CreateDelete,
        Workload::Lock,
        Workload::Session,
        Workload::WatchFanout,
        Workload::Serial,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Read => "read",
            Workload::Write => "write",
            Workload::CreateDelete => "create-delete",
            Workload::Mixed => "mixed",
            Workload::Session => "session",
            Workload::WatchFanout => "watch-fanout",
            Workload::Lock => "lock",
            Workload::Serial => "serial",
        }
    }

    pub fn from_name(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }

    /// Whether `--rate` drives the workload. watch-fanout's op is a round over every watcher
    /// and serial is one request at a time by definition; both stay closed-loop.
    pub fn rate_driven(self) -> bool {
        !matches!(self, Workload::WatchFanout | Workload::Serial)
    }

    /// Whether the workload reads or writes the pre-created keys.
    pub fn uses_keys(self) -> bool {
        matches!(
            self,
            Workload::Read | Workload::Write | Workload::Mixed | Workload::Serial
        )
    }
}

const LONG_ABOUT: &str = "\
Load generator for ZooKeeper-compatible servers (corral, Apache ZooKeeper, ClickHouse Keeper).

Runs each chosen workload for a warm-up and then a measured duration, printing a progress line
on stderr every second and, at the end, a table of throughput and latency percentiles (µs) on
stdout (and JSON with --json). Everything it creates lives under /corral-bench, which it sets
up before and removes after the run (an earlier run's leftovers are removed first).

Workloads (--workload, repeatable or comma-separated, or `all`):
  read           getData of a random pre-created key (--keys nodes of --value-size bytes)
  write          setData of --value-size bytes on a random key
  mixed          90% read, 10% write
  create-delete  create a node, then delete it (each request is one op)
  lock           ephemeral-sequential lock churn: create lock-NNN, getChildren, delete (one
                 op = the three requests)
  session        open a session and close it (one op = both)
  watch-fanout   --watchers sessions watch one node; one op = setData until the last
                 watcher got its notification; they re-arm and it repeats
  serial         one session, one request at a time, alternating getData and setData;
                 reported as serial-read and serial-write

Open loop (--rate R): instead of keeping requests outstanding as fast as the server answers,
ops are issued on a fixed schedule of R ops/s in total (intended start times 1/R apart, dealt
round robin to the --sessions sessions), whatever the server does. Latency is measured from
each op's intended start, so a server that stalls is charged for the queueing it causes. At
most --max-inflight ops are outstanding; an op that comes due when the cap is full is not
sent and is counted as missed. The table shows, under each row, the offered rate, the
achieved ops/s, the missed ops and those issued over 1 ms late (the load generator was
behind). Applies to read, write, mixed, create-delete (each op deletes a node its session
created earlier if one is ready, else creates one), lock and session; watch-fanout and serial
are not rate-driven and run closed-loop as without --rate. --inflight only sets the default
--max-inflight then. With --compare both servers get the same rate.

--compare starts two servers from launch commands with the same generated zoo.cfg (a free
127.0.0.1 port, a fresh dataDir, forceSync=yes, maxClientCnxns=0), substituting {cfg} (and
{port}, {dir}) in each command, runs each workload against A and then B (A B A B ...) for
--rounds rounds, prints A/B ratios (throughput > 1 or latency < 1: A is better) with their
min..max over rounds and each server's resident memory (VmRSS) after each round, and kills
both servers (by PID) when done or on error.

--ensemble N makes each side a replicated ensemble of N voters (plus --observers M) on
127.0.0.1 instead of one standalone server: every member gets its own dataDir with a myid and
a zoo.cfg with the same server.N lines (free quorum, election and client ports),
standaloneEnabled=false and reconfigEnabled=false; {cfg}, {port}, {dir} and {myid} are
substituted per member. The run starts when every member reports leader, follower or
observer in `srvr`. Load session i connects to member i mod (N+M) (so reads are served by
that member and writes are forwarded to the leader), as do watch-fanout's watchers and the
session workload's churn; setup, cleanup and the watch-fanout writer use member 1. Server
CPU and resident memory are summed over the members (per member in the JSON). ZooKeeper
members must be started with org.apache.zookeeper.server.quorum.QuorumPeerMain.

Example:

  corral bench --compare --label-a corral --label-b zookeeper \\
    --a 'target/release/corral server --config {cfg}' \\
    --b 'java -Xmx1g -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar org.apache.zookeeper.server.ZooKeeperServerMain {cfg}' \\
    --workload all --duration 5s --rounds 2 --json out.json";

/// `corral bench` options, as parsed.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "corral bench",
    version,
    about = "Load generator for ZooKeeper-compatible servers",
    long_about = LONG_ABOUT
)]
pub struct Args {
    /// Server to load (host:port); ignored with --compare.
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub server: String,

    /// Workload to run (repeatable, comma-separated, or `all`).
    #[arg(
        long = "workload",
        short = 'w',
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub workloads: Vec<String>,

    /// Client sessions (connections) that carry the load.
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,

    /// Requests in flight per session (pipelined on its connection); closed loop only.
    #[arg(long, default_value_t = 16)]
    pub inflight: usize,

    /// Requests in flight over all sessions (default: sessions × inflight); with --rate,
    /// ops that come due while this many are outstanding are missed (counted, not sent).
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<usize>,

    /// Open loop: offer OPS ops/s in total on a fixed schedule, latency from each op's
    /// intended start (default: closed loop); not for watch-fanout and serial.
    #[arg(long, value_name = "OPS")]
    pub rate: Option<u64>,

    /// Warm-up before measuring, per workload (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Measured duration per workload (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Pre-created keys for read/write/mixed/serial.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,

    /// Bytes of data per node written.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,

    /// Watcher sessions of the watch-fanout workload.
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Seed of the key choice (random when absent).
    #[arg(long)]
    pub seed: Option<u64>,

    /// PID of the server (when it runs on this machine): reports its CPU time per op.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Start two servers (--a, --b) and compare them.
    #[arg(long)]
    pub compare: bool,

    /// Launch command of server A ({cfg} = path of the generated zoo.cfg).
    #[arg(long = "a", value_name = "COMMAND")]
    pub a: Option<String>,

    /// Launch command of server B.
    #[arg(long = "b", value_name = "COMMAND")]
    pub b: Option<String>,

    /// Name of server A in reports.
    #[arg(long, default_value = "A")]
    pub label_a: String,

    /// Name of server B in reports.
    #[arg(long, default_value = "B")]
    pub label_b: String,

    /// A/B rounds of --compare.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,

    /// Extra zoo.cfg line (key=value) for --compare servers; repeatable.
    #[arg(long = "cfg", value_name = "KEY=VALUE")]
    pub cfg_lines: Vec<String>,

    /// How long a --compare server gets to answer `ruok` after its start.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub start_timeout: Duration,

    /// Directory for the --compare servers' configs, data and logs (default: the system temp
    /// dir); each server gets a fresh subdirectory, removed at the end unless --keep.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Keep the --compare servers' directories (logs) after the run.
    #[arg(long)]
    pub keep: bool,

    /// With --compare: run each side as a replicated ensemble of N voting members on
    /// 127.0.0.1 (0: one standalone server).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub ensemble: usize,

    /// With --compare --ensemble: observers added to each side's ensemble.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub observers: usize,
}

/// Validated settings of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub server: String,
    pub workloads: Vec<Workload>,
    pub sessions: usize,
    pub inflight: usize,
    pub max_inflight: usize,
    /// Open-loop offered load in ops/s (`--rate`); `None` is the closed loop.
    pub rate: Option<u64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub keys: usize,
    pub value_size: usize,
    pub watchers: usize,
    pub json: Option<PathBuf>,
    pub seed: Option<u64>,
    pub server_pid: Option<u32>,
    pub progress: bool,
    pub compare: Option<Compare>,
}

/// The `--compare` part of [`Settings`].
#[derive(Clone, Debug, PartialEq)]
pub struct Compare {
    pub a: String,
    pub b: String,
    pub label_a: String,
    pub label_b: String,
    pub rounds: usize,
    pub cfg_lines: Vec<String>,
    pub start_timeout: Duration,
    pub work_dir: Option<PathBuf>,
    pub keep: bool,
    /// Voting members per side; 0 is one standalone server.
    pub voters: usize,
    /// Observers per side (only with `voters > 0`).
    pub observers: usize,
}

/// Parses `500ms`, `2s`, `1.5s`, `3m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 2s, 1m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1_000.0,
        "us" | "µs" => n / 1_000_000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3_600.0,
        u => return Err(format!("unknown unit {u:?} in {s:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 || secs > DURATION_MAX.as_secs_f64() {
        return Err(format!("{s:?} is out of range (0 to {DURATION_MAX:?})"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

impl Settings {
    /// Validates parsed arguments.
    pub fn from_args(a: Args) -> Result<Settings, String> {
        let mut workloads = Vec::new();
        for name in &a.workloads {
            let name = name.trim();
            if name == "all" {
                for w in Workload::ALL {
                    if !workloads.contains(&w) {
                        workloads.push(w);
                    }
                }
                continue;
            }
            let w = Workload::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!(
                    "unknown workload {name:?}: expected one of {}, or all",
                    names.join(", ")
                )
            })?;
            if !workloads.contains(&w) {
                workloads.push(w);
            }
        }
        if workloads.is_empty() {
            workloads.push(Workload::Read);
        }
        check((1..=SESSIONS_MAX).contains(&a.sessions), || {
            format!("--sessions must be 1..={SESSIONS_MAX}")
        })?;
        check((1..=INFLIGHT_PER_SESSION_MAX).contains(&a.inflight), || {
            format!("--inflight must be 1..={INFLIGHT_PER_SESSION_MAX}")
        })?;
        let max_inflight = a.max_inflight.unwrap_or(a.sessions * a.inflight);
        check((1..=INFLIGHT_TOTAL_MAX).contains(&max_inflight), || {
            format!("--max-inflight must be 1..={INFLIGHT_TOTAL_MAX}")
        })?;
        if let Some(r) = a.rate {
            check((1..=crate::rate::RATE_MAX).contains(&r), || {
                format!("--rate must be 1..={}", crate::rate::RATE_MAX)
            })?;
        }
        check(!a.duration.is_zero(), || "--duration must be > 0".into())?;
        check((1..=KEYS_MAX).contains(&a.keys), || {
            format!("--keys must be 1..={KEYS_MAX}")
        })?;
        check(a.value_size <= VALUE_BYTES_MAX, || {
            format!("--value-size must be at most {VALUE_BYTES_MAX}")
        })?;
        check((1..=WATCHERS_MAX).contains(&a.watchers), || {
            format!("--watchers must be 1..={WATCHERS_MAX}")
        })?;
        let compare = if a.compare {
            let (Some(cmd_a), Some(cmd_b)) = (a.a.clone(), a.b.clone()) else {
                return Err("--compare needs --a COMMAND and --b COMMAND".into());
            };
            check((1..=ROUNDS_MAX).contains(&a.rounds), || {
                format!("--rounds must be 1..={ROUNDS_MAX}")
            })?;
            for l in &a.cfg_lines {
                check(l.contains('=') && !l.contains('\n'), || {
                    format!("--cfg {l:?}: expected one key=value line")
                })?;
            }
            check(a.ensemble <= ENSEMBLE_VOTERS_MAX, || {
                format!("--ensemble must be 0..={ENSEMBLE_VOTERS_MAX}")
            })?;
            check(a.observers <= OBSERVERS_MAX, || {
                format!("--observers must be 0..={OBSERVERS_MAX}")
            })?;
            check(a.observers == 0 || a.ensemble > 0, || {
                "--observers needs --ensemble".into()
            })?;
            Some(Compare {
                a: cmd_a,
                b: cmd_b,
                label_a: a.label_a.clone(),
                label_b: a.label_b.clone(),
                rounds: a.rounds,
                cfg_lines: a.cfg_lines.clone(),
                start_timeout: a.start_timeout,
                work_dir: a.work_dir.clone(),
                keep: a.keep,
                voters: a.ensemble,
                observers: a.observers,
            })
        } else {
            check(a.a.is_none() && a.b.is_none(), || {
                "--a and --b need --compare".into()
            })?;
            check(a.ensemble == 0 && a.observers == 0, || {
                "--ensemble and --observers need --compare".into()
            })?;
            None
        };
        Ok(Settings {
            server: a.server,
            workloads,
            sessions: a.sessions,
            inflight: a.inflight,
            max_inflight,
            rate: a.rate,
            warmup: a.warmup,
            duration: a.duration,
            keys: a.keys,
            value_size: a.value_size,
            watchers: a.watchers,
            json: a.json,
            seed: a.seed,
            server_pid: a.server_pid,
            progress: !a.quiet,
            compare,
        })
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Settings>),
    /// `--help` / `--version`: the text to print on stdout.
    Info(String),
}

/// Parses the words after `bench` (no program name). `Err` carries the message for stderr.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let words = std::iter::once("corral bench".to_string()).chain(args.iter().cloned());
    match Args::try_parse_from(words) {
        Ok(a) => Settings::from_args(a).map(|s| Parsed::Run(Box::new(s))),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Ok(Parsed::Info(e.to_string()))
            }
            _ => Err(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(words: &[&str]) -> Result<Settings, String> {
        let v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        match parse(&v)? {
            Parsed::Run(s) => Ok(*s),
            Parsed::Info(t) => Err(format!("info: {t}")),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("2h").is_err(), "over DURATION_MAX");
    }

    #[test]
    fn defaults() {
        let s = run(&[]).unwrap();
        assert_eq!(s.server, "127.0.0.1:2181");
        assert_eq!(s.workloads, vec![Workload::Read]);
        assert_eq!(s.sessions, 8);
        assert_eq!(s.inflight, 16);
        assert_eq!(s.max_inflight, 128);
        assert_eq!(s.warmup, Duration::from_secs(2));
        assert_eq!(s.duration, Duration::from_secs(10));
        assert_eq!(s.keys, 10_000);
        assert_eq!(s.value_size, 1024);
        assert_eq!(s.watchers, 1_000);
        assert!(s.progress);
        assert!(s.compare.is_none());
        assert_eq!(s.rate, None, "closed loop by default");
    }

    #[test]
    fn workloads_repeat_split_and_all() {
        let s = run(&[
            "--workload",
            "write",
            "-w",
            "read,write",
            "--workload",
            "lock",
        ])
        .unwrap();
        assert_eq!(
            s.workloads,
            vec![Workload::Write, Workload::Read, Workload::Lock]
        );
        let s = run(&["--workload", "serial", "--workload", "all"]).unwrap();
        assert_eq!(s.workloads.len(), Workload::ALL.len());
        assert_eq!(s.workloads[0], Workload::Serial);
        let e = run(&["--workload", "reed"]).unwrap_err();
        assert!(e.contains("unknown workload \"reed\""), "{e}");
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()), Some(w));
        }
    }

    #[test]
    fn numbers_and_bounds() {
        let s = run(&[
            "--server",
            "127.0.0.1:9999",
            "--sessions",
            "4",
            "--inflight",
            "2",
            "--warmup",
            "0s",
            "--duration",
            "1s",
            "--keys",
            "100",
            "--json",
            "/tmp/x.json",
            "--seed",
            "7",
            "-q",
        ])
        .unwrap();
        assert_eq!(s.server, "127.0.0.1:9999");
        assert_eq!((s.sessions, s.inflight, s.max_inflight), (4, 2, 8));
        assert_eq!(s.warmup, Duration::ZERO);
        assert_eq!(s.keys, 100);
        assert_eq!(s.seed, Some(7));
        assert_eq!(s.json.as_deref(), Some(std::path::Path::new("/tmp/x.json")));
        assert!(!s.progress);
        assert!(run(&["--sessions", "0"]).is_err());
        assert!(run(&["--sessions", "1001"]).is_err());
        assert!(run(&["--inflight", "0"]).is_err());
        assert!(run(&["--max-inflight", "20000"]).is_err());
        assert!(run(&["--duration", "0s"]).is_err());
        assert!(run(&["--value-size", "600000"]).is_err());
        assert!(run(&["--keys", "x"]).is_err());
        assert_eq!(run(&["--rate", "5000"]).unwrap().rate, Some(5000));
        assert!(run(&["--rate", "0"]).is_err());
        assert!(run(&["--rate", "2000000"]).is_err());
        assert!(run(&["--rate", "1.5"]).is_err());
        assert!(run(&["--no-such-flag"]).is_err());
    }

    #[test]
    fn compare_options() {
        let s = run(&[
            "--compare",
            "--a",
            "corral server --config {cfg}",
            "--b",
            "java -cp zk.jar Main {cfg}",
            "--rounds",
            "3",
            "--label-a",
            "corral",
            "--cfg",
            "snapCount=1000",
        ])
        .unwrap();
        let c = s.compare.unwrap();
        assert_eq!(c.a, "corral server --config {cfg}");
        assert_eq!(c.b, "java -cp zk.jar Main {cfg}");
        assert_eq!(c.rounds, 3);
        assert_eq!(c.label_a, "corral");
        assert_eq!(c.label_b, "B");
        assert_eq!(c.cfg_lines, vec!["snapCount=1000".to_string()]);
        assert_eq!((c.voters, c.observers), (0, 0));
        let ens = |extra: &[&str]| {
            let mut w = vec!["--compare", "--a", "x", "--b", "y"];
            w.extend_from_slice(extra);
            run(&w)
        };
        let c = ens(&["--ensemble", "3", "--observers", "1"])
            .unwrap()
            .compare
            .unwrap();
        assert_eq!((c.voters, c.observers), (3, 1));
        assert!(ens(&["--observers", "1"]).is_err(), "observers need voters");
        assert!(ens(&["--ensemble", "10"]).is_err());
        assert!(run(&["--ensemble", "3"]).is_err(), "needs --compare");
        assert!(run(&["--compare", "--a", "x"]).is_err());
        assert!(run(&["--a", "x", "--b", "y"]).is_err());
        assert!(run(&["--compare", "--a", "x", "--b", "y", "--rounds", "0"]).is_err());
        assert!(run(&["--compare", "--a", "x", "--b", "y", "--cfg", "nokey"]).is_err());
    }

    #[test]
    fn help_is_info_and_lists_workloads() {
        let v = vec!["--help".to_string()];
        match parse(&v).unwrap() {
            Parsed::Info(t) => {
                for w in Workload::ALL {
                    assert!(t.contains(w.name()), "help lacks {}", w.name());
                }
                assert!(t.contains("--compare"));
                assert!(t.contains("--rate"));
            }
            Parsed::Run(_) => panic!("--help ran"),
        }
    }
}

//! corral-bench: `corral bench`, a load generator for any ZooKeeper-compatible server
//! (corral, Apache ZooKeeper, ClickHouse Keeper), built on `corral-client`.
//!
//! ```text
//! corral bench --server 127.0.0.1:2181 --workload read,write --duration 10s --json out.json
//! corral bench --compare --a 'target/release/corral server --config {cfg}' \
//!              --b 'java -cp ... org.apache.zookeeper.server.ZooKeeperServerMain {cfg}'
//! ```
//!
//! Shape: [`args`] parses and validates the command line into [`args::Settings`]; [`run`]
//! drives the workloads against one server (setup of `/corral-bench`, closed-loop workers
//! or the open-loop pacer of [`rate`],
//! progress lines, cleanup) and returns [`report::Row`]s; [`compare`] starts two servers (or,
//! with [`cluster`], two replicated ensembles) from launch commands, runs the suite on each in
//! turn for some rounds and computes A/B ratios;
//! [`hist`] is the latency histogram; [`report`] and [`json`] render the results.
//!
//! Load model: `--sessions` connections, each shared by `--inflight` closed-loop workers (one
//! request outstanding each, so a session pipelines up to `--inflight` requests), and an
//! overall cap of `--max-inflight` requests in flight. Throughput counts ops completed in
//! the measured window after the warm-up; latency is per op, in microseconds, from just
//! before the request is handed to the client to its reply (so it includes the client's own
//! queueing).
//!
//! Open loop (`--rate R`, [`rate`]): read, write, mixed, create-delete, lock and session can
//! instead be offered a fixed R ops/s (intended starts 1/R apart, round robin over the
//! sessions) with latency from each op's intended start, at most `--max-inflight` ops
//! outstanding, and ops that come due with the cap full counted as missed. watch-fanout and
//! serial stay closed-loop. `--compare` offers both servers the same rate.
//!
//! What an op is: one request (read, write, mixed, create-delete, serial), one cycle (lock:
//! create ephemeral-sequential + getChildren + delete; session: connect + close), or one
//! round (watch-fanout: setData until the last of `--watchers` notifications).
//!
//! Bounds: every loop is bounded by its deadline, an op cap and Ctrl-C; every request by a
//! timeout; setup and cleanup by node count and time; `--compare` servers listen on
//! 127.0.0.1 only and are killed by PID at the end, on error and on Ctrl-C.

pub mod args;
pub mod cluster;
pub mod compare;
pub mod hist;
pub mod json;
pub mod rate;
pub mod report;
pub mod run;

use args::{Parsed, Settings};
use json::Json;
use report::Row;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit status: the run finished.
pub const EXIT_OK: i32 = 0;
/// Exit status: the run failed (server unreachable, setup failed, a server died, ...).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: bad command line.
pub const EXIT_USAGE: i32 = 2;

/// What a run produced.
#[derive(Debug)]
pub enum Outcome {
    Single(Vec<Row>),
    // Boxed: a report (two servers, their members, every round) is much larger than a
    // single run's rows.
    Compare(Box<compare::CompareReport>),
}

/// JSON of a single-server run.
pub fn single_json(s: &Settings, rows: &[Row]) -> Json {
    Json::obj([
        ("tool", Json::str("corral-bench")),
        ("tool_version", Json::str(env!("CARGO_PKG_VERSION"))),
        ("mode", Json::str("single")),
        ("date", Json::str(json::now_utc())),
        ("server", Json::str(&s.server)),
        ("settings", report::settings_json(s)),
        (
            "results",
            Json::Arr(rows.iter().map(Row::to_json).collect()),
        ),
    ])
}

/// Waits for Ctrl-C or SIGTERM (`kill`, a CI job's timeout): either stops the load and
/// lets the run clean up, so servers started by `--compare` are stopped too instead of
/// outliving the load generator. False if no handler could be installed.
async fn interrupted() -> bool {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            _ = term.recv() => true,
        },
        Err(_) => tokio::signal::ctrl_c().await.is_ok(),
    }
}

/// Runs what `s` asks for, printing progress on stderr and tables on stdout, and writes the
/// JSON file if asked. Ctrl-C or SIGTERM stops the load early; the namespace is still
/// cleaned up and started servers are still stopped.
pub fn run(s: &Settings) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        rt.spawn(async move {
            if interrupted().await {
                eprintln!("interrupted: stopping the load and cleaning up (Ctrl-C again quits)");
                stop.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }
    let (outcome, json) = if s.compare.is_some() {
        let report = compare::run_compare(&rt, s, &stop)?;
        print!("{}", report.summary_table());
        let j = report.to_json(s);
        (Outcome::Compare(Box::new(report)), j)
    } else {
        let rows = rt.block_on(run::run_suite(&s.server, s, "", &stop))?;
        print!("{}", report::table(&rows));
        let j = single_json(s, &rows);
        (Outcome::Single(rows), j)
    };
    if let Some(path) = &s.json {
        std::fs::write(path, json.to_pretty())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    Ok(outcome)
}

/// The `corral bench` entry point. `args` are the words after `bench` (no program name).
/// Returns the process exit status.
pub fn main_with_args(args: Vec<String>) -> i32 {
    match args::parse(&args) {
        Ok(Parsed::Info(text)) => {
            print!("{text}");
            EXIT_OK
        }
        Err(msg) => {
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            EXIT_USAGE
        }
        Ok(Parsed::Run(s)) => match run(&s) {
            Ok(_) => EXIT_OK,
            Err(e) => {
                eprintln!("corral bench: {e}");
                EXIT_FAILED
            }
        },
    }
}

//! Seeded whole-ensemble simulation runs. `CORRAL_SIM_SEEDS=N` runs seeds `0..N` (default
//! 500), `CORRAL_SIM_SEED=x` replays one seed; `CORRAL_SIM_FIRST=k` starts at seed k.
//! A failure prints the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn replay(seed: u64) -> String {
    format!("CORRAL_SIM_SEED={seed} cargo test --release -p corral-sim --test seeds -- --nocapture")
}

#[test]
fn seeds() {
    let seeds: Vec<u64> = match env_u64("CORRAL_SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("CORRAL_SIM_FIRST").unwrap_or(0);
            let n = env_u64("CORRAL_SIM_SEEDS").unwrap_or(500);
            (first..first + n).collect()
        }
    };
    let verbose = seeds.len() == 1;
    // The report is printed below; the default hook would add a backtrace per seed.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = Vec::new();
    let mut total = corral_sim::Stats::default();
    let mut seeds_with_txn_log_diff = 0;
    for seed in seeds {
        let r = catch_unwind(AssertUnwindSafe(|| corral_sim::run_seed(seed)));
        match r {
            Ok(stats) => {
                total.add(&stats);
                seeds_with_txn_log_diff += (stats.txn_log_diffs > 0) as u64;
                if verbose {
                    println!("seed {seed}: {stats:?}");
                }
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("seed {seed} FAILED: replay with\n  {}\n", replay(seed));
                if verbose {
                    eprintln!("{msg}");
                } else {
                    eprintln!("{}", msg.lines().next().unwrap_or(""));
                }
                failed.push(seed);
            }
        }
    }
    println!("total over the passing seeds: {total:?}");
    println!(
        "seeds where a learner was synced by DIFF from the txn log: {seeds_with_txn_log_diff}"
    );
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}

/// Seeds that once found bugs (see the commit log); they must keep passing.
#[test]
fn regressions() {
    for seed in REGRESSION_SEEDS {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| corral_sim::run_seed(*seed))) {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!(
                "regression seed {seed} failed; replay with\n  {}\n{msg}",
                replay(*seed)
            );
        }
    }
}

const REGRESSION_SEEDS: &[u64] = &[
    2,    // an observer refused the PROPOSALs of a DIFF sync and never synced (e319d53)
    2261, // learner persisted currentEpoch before its DIFF txns were durable (ZOOKEEPER-4643)
    525,  // election ping-pong between an observer and a LOOKING voter (one-message queues)
    1015, // a new leader's history covered by its snapshot counts as committed
    1125, // a snapshot ahead of the durable log
];

//! When to roll the log and take a snapshot: ZooKeeper's `SyncRequestProcessor` rule,
//! with its randomness drawn from a seeded generator (never an unseeded one).
//!
//! ```text
//! after each logged txn:
//!   txns_since_roll > snapCount/2 + randRoll            ; randRoll in [0, snapCount/2)
//!   or (snapSize > 0 and log_bytes > snapSize/2 + randSize)   ; randSize in [0, snapSize/2)
//! then: roll the log, start a snapshot, draw new randRoll/randSize, reset the counters
//! ```
//!
//! The randomness spreads snapshots of different servers apart in time. The effective
//! interval is (snapCount/2, snapCount] txns. Owns only the decision; the caller rolls the
//! writer and starts the snapshot (skipping it when one is still running).

/// ZooKeeper's default `snapCount` (txns).
pub const SNAP_COUNT_DEFAULT: u64 = 100_000;
/// ZooKeeper raises a smaller `snapCount` to this (txns).
pub const SNAP_COUNT_MIN: u64 = 2;
/// ZooKeeper's default `snapSizeLimitInKb` (4 GiB), in bytes.
pub const SNAP_SIZE_BYTES_DEFAULT: u64 = 4 * 1024 * 1024 * 1024;

/// The two limits, from zoo.cfg (`snapCount`, `snapSizeLimitInKb` × 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapTriggerConfig {
    /// Txns between snapshots (on average 3/4 of this).
    pub snap_count: u64,
    /// Log bytes between snapshots; 0 turns the size rule off.
    pub snap_size_bytes: u64,
}

impl Default for SnapTriggerConfig {
    fn default() -> SnapTriggerConfig {
        SnapTriggerConfig {
            snap_count: SNAP_COUNT_DEFAULT,
            snap_size_bytes: SNAP_SIZE_BYTES_DEFAULT,
        }
    }
}

/// SplitMix64: small, fast, and fully determined by its seed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, bound) (bound > 0), by rejection so there is no modulo bias.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % bound;
            }
        }
    }
}

/// Counts logged txns and bytes since the last roll and says when to roll + snapshot.
#[derive(Debug, Clone)]
pub struct SnapTrigger {
    cfg: SnapTriggerConfig,
    rng: SplitMix64,
    rand_roll: u64,
    rand_size: u64,
    txns: u64,
    bytes: u64,
}

impl SnapTrigger {
    pub fn new(cfg: SnapTriggerConfig, seed: u64) -> SnapTrigger {
        let cfg = SnapTriggerConfig {
            snap_count: cfg.snap_count.max(SNAP_COUNT_MIN),
            ..cfg
        };
        let mut t = SnapTrigger {
            cfg,
            rng: SplitMix64(seed),
            rand_roll: 0,
            rand_size: 0,
            txns: 0,
            bytes: 0,
        };
        t.reset();
        t
    }

    pub fn config(&self) -> SnapTriggerConfig {
        self.cfg
    }

    /// The current thresholds: (txns, bytes); bytes is `None` when the size rule is off.
    pub fn thresholds(&self) -> (u64, Option<u64>) {
        let size =
            (self.cfg.snap_size_bytes > 0).then(|| self.cfg.snap_size_bytes / 2 + self.rand_size);
        (self.cfg.snap_count / 2 + self.rand_roll, size)
    }

    /// The rule itself, for counts the caller keeps.
    pub fn should_snapshot(&self, txns_since_roll: u64, log_bytes_since_roll: u64) -> bool {
        let (txns, bytes) = self.thresholds();
        txns_since_roll > txns || bytes.is_some_and(|b| log_bytes_since_roll > b)
    }

    /// Counts one logged txn of `record_bytes`; returns true when the caller must roll the
    /// log and snapshot now (the counters and thresholds are then reset).
    pub fn on_logged(&mut self, record_bytes: u64) -> bool {
        self.txns += 1;
        self.bytes += record_bytes;
        if self.should_snapshot(self.txns, self.bytes) {
            self.reset();
            return true;
        }
        false
    }

    /// Draws new random offsets and zeroes the counters.
    pub fn reset(&mut self) {
        self.rand_roll = self.rng.below((self.cfg.snap_count / 2).max(1));
        self.rand_size = if self.cfg.snap_size_bytes / 2 > 0 {
            self.rng.below(self.cfg.snap_size_bytes / 2)
        } else {
            0
        };
        self.txns = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_in_range_and_are_seeded() {
        let cfg = SnapTriggerConfig {
            snap_count: 100,
            snap_size_bytes: 0,
        };
        let run = |seed| {
            let mut t = SnapTrigger::new(cfg, seed);
            let mut out = Vec::new();
            let mut n = 0u64;
            while out.len() < 200 {
                n += 1;
                if t.on_logged(10) {
                    out.push(n);
                    n = 0;
                }
            }
            out
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!(a.iter().all(|&n| n > 50 && n <= 100), "{a:?}");
        assert!(a.iter().any(|&n| n < 60) && a.iter().any(|&n| n > 90));
    }

    #[test]
    fn size_rule() {
        let t = SnapTrigger::new(
            SnapTriggerConfig {
                snap_count: 1_000_000,
                snap_size_bytes: 1000,
            },
            1,
        );
        let (_, b) = t.thresholds();
        let b = b.unwrap();
        assert!((500..1000).contains(&b));
        assert!(!t.should_snapshot(1, b));
        assert!(t.should_snapshot(1, b + 1));
    }

    #[test]
    fn tiny_snap_count_is_raised() {
        let mut t = SnapTrigger::new(
            SnapTriggerConfig {
                snap_count: 0,
                snap_size_bytes: 0,
            },
            3,
        );
        assert_eq!(t.config().snap_count, SNAP_COUNT_MIN);
        assert!(!t.on_logged(1));
        assert!(t.on_logged(1));
    }
}

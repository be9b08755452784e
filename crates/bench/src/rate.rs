//! The arithmetic of the open-loop mode (`--rate R`): when each op is meant to start, which
//! session carries it, and how the schedule's misses are counted. No clock and no I/O here,
//! so that it can be tested exactly; [`crate::run`] drives it with a pacer thread.
//!
//! Why open loop: a closed loop (N requests always outstanding) lets the server set the
//! pace, so a faster server drives a small shared machine into CPU saturation and its tail
//! latency then measures the scheduler, not the server. A fixed offered load is the same for
//! both sides of a comparison. Latency is measured from each op's *intended* start time, so
//! a server (or a client) that stalls is charged for the queueing it causes instead of the
//! stall silently lowering the offered load (no coordinated omission).

use std::time::Duration;

/// Highest `--rate`, in ops/s over all sessions.
pub const RATE_MAX: u64 = 1_000_000;

/// An op issued more than this after its intended start counts as late (the load generator,
/// not the server, was behind; the latency charged includes the delay either way).
pub const LATE_AFTER: Duration = Duration::from_millis(1);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A fixed schedule of `rate` ops/s: op `k` (0, 1, 2, ...) is meant to start `k / rate`
/// seconds after the schedule's start, on session `k mod sessions`. Computed from `k` each
/// time (not by adding an interval), so rounding never drifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    rate: u64,
    sessions: usize,
}

impl Schedule {
    /// `rate` > 0 ops/s, `sessions` > 0.
    pub fn new(rate: u64, sessions: usize) -> Schedule {
        assert!(
            rate > 0 && sessions > 0,
            "a schedule needs a rate and a session"
        );
        Schedule { rate, sessions }
    }

    /// When op `k` is meant to start, from the schedule's start (rounded down to a
    /// nanosecond).
    pub fn offset(&self, k: u64) -> Duration {
        let ns = u128::from(k) * NANOS_PER_SEC / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// How many ops are due by `elapsed` after the start (ops `0..due(elapsed)` have an
    /// intended start at or before it).
    pub fn due(&self, elapsed: Duration) -> u64 {
        let ops = elapsed.as_nanos() * u128::from(self.rate) / NANOS_PER_SEC + 1;
        u64::try_from(ops).unwrap_or(u64::MAX)
    }

    /// The session that carries op `k`: round robin, so each session gets `rate / sessions`.
    pub fn session_of(&self, k: u64) -> usize {
        (k % self.sessions as u64) as usize
    }
}

/// What happened to one op of the schedule when it came due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Issued (it holds an in-flight permit until its reply).
    Issued,
    /// Not issued: `--max-inflight` requests were already outstanding.
    Missed,
}

/// Counts of the schedule's ops whose intended start fell inside the measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Ops offered by the schedule.
    pub offered: u64,
    /// Ops not issued because the in-flight cap was full.
    pub missed: u64,
    /// Ops issued more than [`LATE_AFTER`] after their intended start.
    pub late: u64,
}

impl Tally {
    /// Accounts for one op of the schedule: issued if a permit of the in-flight cap was
    /// free, else missed; `lateness` is how long after its intended start it came up. Ops
    /// outside the measured window are not counted (their outcome is still returned).
    pub fn slot(&mut self, in_window: bool, permit_free: bool, lateness: Duration) -> Slot {
        let slot = if permit_free {
            Slot::Issued
        } else {
            Slot::Missed
        };
        if in_window {
            self.offered += 1;
            match slot {
                Slot::Missed => self.missed += 1,
                Slot::Issued if lateness > LATE_AFTER => self.late += 1,
                Slot::Issued => {}
            }
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_spaced_one_over_rate_without_drift() {
        let s = Schedule::new(3, 2);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.offset(2), Duration::from_nanos(666_666_666));
        assert_eq!(
            s.offset(3),
            Duration::from_secs(1),
            "no accumulated rounding"
        );
        assert_eq!(s.offset(3_000_000), Duration::from_secs(1_000_000));
        let fast = Schedule::new(RATE_MAX, 1);
        assert_eq!(fast.offset(1), Duration::from_micros(1));
        assert_eq!(fast.offset(3_600 * RATE_MAX), Duration::from_secs(3_600));
    }

    #[test]
    fn due_counts_ops_whose_start_has_come() {
        let s = Schedule::new(1_000, 4);
        assert_eq!(s.due(Duration::ZERO), 1, "op 0 starts at once");
        assert_eq!(s.due(Duration::from_micros(999)), 1);
        assert_eq!(s.due(Duration::from_millis(1)), 2);
        assert_eq!(s.due(Duration::from_secs(1)), 1_001);
        // due and offset agree: op k is due exactly from its offset on.
        for k in [0u64, 1, 7, 999, 12_345] {
            assert_eq!(s.due(s.offset(k)), k + 1);
            if k > 0 {
                assert_eq!(s.due(s.offset(k) - Duration::from_nanos(1)), k);
            }
        }
    }

    #[test]
    fn ops_go_round_robin_over_sessions() {
        let s = Schedule::new(100, 3);
        let got: Vec<usize> = (0..7).map(|k| s.session_of(k)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn misses_and_late_ops_are_counted_only_in_the_window() {
        let mut t = Tally::default();
        let on_time = Duration::from_micros(10);
        let behind = Duration::from_millis(5);
        assert_eq!(t.slot(true, true, on_time), Slot::Issued);
        assert_eq!(t.slot(true, true, behind), Slot::Issued);
        assert_eq!(t.slot(true, false, on_time), Slot::Missed);
        assert_eq!(
            t.slot(true, false, behind),
            Slot::Missed,
            "a miss is not also late"
        );
        assert_eq!(t.slot(false, false, behind), Slot::Missed, "warm-up");
        assert_eq!(t.slot(false, true, behind), Slot::Issued, "warm-up");
        assert_eq!(
            t,
            Tally {
                offered: 4,
                missed: 2,
                late: 1
            }
        );
        // Exactly at the threshold is still on time.
        let mut t = Tally::default();
        t.slot(true, true, LATE_AFTER);
        assert_eq!(t.late, 0);
    }
}

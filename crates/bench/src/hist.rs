//! A log-bucketed latency histogram in the style of HdrHistogram.
//!
//! Owns: [`Histogram`], which counts `u64` values (the bench records microseconds) in buckets
//! whose width grows with the value, so that any recorded value is reported with a relative
//! error below `1 / SUB_BUCKETS` (< 0.8 %), whatever its magnitude, in fixed memory
//! (`BUCKETS` counters, about 58 KiB).
//!
//! Layout: values below `2 * SUB_BUCKETS` have a bucket each (exact). Above that, each power
//! of two `[2^k, 2^(k+1))` is split into `SUB_BUCKETS` equal buckets. A bucket's index is
//! computed from the value's bit length and its top `SUB_BITS + 1` bits.
//!
//! Invariants (checked by [`Histogram::check_invariants`]): `total` is the sum of the bucket
//! counts; when `total > 0`, `min <= max` and both lie in occupied buckets.
//!
//! Threading: none; each load worker owns one and the results are [`Histogram::merge`]d.

/// Bits of sub-bucket resolution per power of two.
const SUB_BITS: u32 = 7;
/// Buckets per power of two (above the exact range).
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// Values below this are counted exactly.
const EXACT_LIMIT: u64 = 2 * SUB_BUCKETS;
/// Number of buckets needed to cover all of `u64`.
const BUCKETS: usize = (EXACT_LIMIT + (64 - (SUB_BITS + 1) as u64) * SUB_BUCKETS) as usize;

/// Counts of values in log-linear buckets. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < EXACT_LIMIT {
        return v as usize;
    }
    let bits = 64 - v.leading_zeros();
    let shift = bits - (SUB_BITS + 1);
    let top = v >> shift;
    (EXACT_LIMIT + (shift as u64 - 1) * SUB_BUCKETS + (top - SUB_BUCKETS)) as usize
}

/// The smallest and largest value that fall in bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT_LIMIT {
        return (i, i);
    }
    let k = i - EXACT_LIMIT;
    let shift = k / SUB_BUCKETS + 1;
    let top = SUB_BUCKETS + k % SUB_BUCKETS;
    let low = top << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    /// Adds every value counted in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest value counted (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest value counted (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Arithmetic mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below or at which a fraction `q` (0..=1) of the values lie, reported as the
    /// highest value of its bucket (as HdrHistogram does), clamped to `[min, max]`. 0 when
    /// empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += *c;
            if seen >= rank {
                return bucket_range(i).1.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Panics if the counters disagree with each other (a bug here).
    pub fn check_invariants(&self) {
        let sum: u64 = self.counts.iter().sum();
        assert_eq!(sum, self.total, "bucket counts do not add up to the total");
        if self.total > 0 {
            assert!(self.min <= self.max, "min {} > max {}", self.min, self.max);
            assert!(self.counts[bucket_of(self.min)] > 0, "min bucket empty");
            assert!(self.counts[bucket_of(self.max)] > 0, "max bucket empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_range(i);
            assert_eq!(lo, next, "bucket {i} starts where {} ended", i.max(1) - 1);
            assert!(hi >= lo);
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi), i);
            if hi == u64::MAX {
                assert_eq!(i, BUCKETS - 1);
                return;
            }
            next = hi + 1;
        }
        panic!("buckets end before u64::MAX");
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..EXACT_LIMIT {
            h.record(v);
        }
        h.check_invariants();
        assert_eq!(h.count(), EXACT_LIMIT);
        assert_eq!(h.value_at_quantile(0.5), EXACT_LIMIT / 2 - 1);
        assert_eq!(h.value_at_quantile(1.0), EXACT_LIMIT - 1);
        assert_eq!(h.value_at_quantile(0.0), 0);
    }

    #[test]
    fn relative_error_is_bounded() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            let (lo, hi) = bucket_range(bucket_of(v));
            assert!(lo <= v && v <= hi);
            let err = (hi - lo) as f64 / lo.max(1) as f64;
            assert!(
                err < 1.0 / SUB_BUCKETS as f64,
                "value {v}: bucket [{lo}, {hi}]"
            );
            v = v * 3 + 1;
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        h.check_invariants();
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.value_at_quantile(q) as f64;
            assert!(
                (got - want).abs() / want < 0.01,
                "q {q}: got {got}, want about {want}"
            );
        }
        assert_eq!(h.value_at_quantile(1.0), 100_000);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 100_000);
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn quantiles_are_monotonic_and_within_min_max() {
        let mut h = Histogram::new();
        let mut x = 12345u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.record((x >> 40) % 5_000_000);
        }
        let mut last = 0;
        for i in 0..=1000 {
            let v = h.value_at_quantile(i as f64 / 1000.0);
            assert!(v >= last);
            assert!(v >= h.min() && v <= h.max());
            last = v;
        }
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in [3u64, 700, 12_000, 5, 900_000, 44] {
            a.record(v);
            all.record(v);
        }
        for v in [1u64, 8_000_000, 250] {
            b.record(v);
            all.record(v);
        }
        a.merge(&b);
        a.merge(&Histogram::new());
        a.check_invariants();
        assert_eq!(a, all);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        h.check_invariants();
        assert_eq!(h.count(), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.max(), 0);
        assert_eq!(h.mean(), 0.0);
        assert_eq!(h.value_at_quantile(0.99), 0);
    }

    #[test]
    fn extreme_values() {
        let mut h = Histogram::new();
        h.record(u64::MAX);
        h.record(0);
        h.check_invariants();
        assert_eq!(h.value_at_quantile(1.0), u64::MAX);
        assert_eq!(h.value_at_quantile(0.5), 0);
    }
}

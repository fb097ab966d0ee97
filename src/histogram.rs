//! A log-linear histogram of durations: fixed relative error, O(1) record,
//! exact merge. The load generator's round trips and the server's event-loop
//! turn times are both kept in one.
//!
//! Owns the numbers and their serde form only. It must never read a clock or do
//! I/O.

use serde::{Deserialize, Serialize};

/// A log-linear histogram of durations in nanoseconds: exact below 1024 ns, then
/// 512 buckets per power of two (relative error under 0.2%). Fixed memory, O(1)
/// record.
///
/// Serializes as its raw counts, `{"buckets":[[index,count],...],"max":..,"sum":..}`,
/// so a parent process can merge its workers' histograms exactly; reports print
/// the summary, [`Histogram::latency`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "SparseHistogram", from = "SparseHistogram")]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

const LINEAR: u64 = 1024;
const SUB: u64 = 512;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Vec::new(),
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros() as u64; // >= 10
        let shift = msb - 9;
        let mantissa = v >> shift; // 512..1023
        (LINEAR + (shift - 1) * SUB + (mantissa - SUB)) as usize
    }

    /// The lowest value of bucket `i`.
    fn bucket_low(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let shift = (i - LINEAR) / SUB + 1;
        let mantissa = (i - LINEAR) % SUB + SUB;
        mantissa << shift
    }

    /// Records one value (nanoseconds).
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value at quantile `q` (0..=1): the low edge of the bucket holding it,
    /// never above the maximum seen. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::bucket_low(i).min(self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// The summary reports print, in microseconds.
    pub fn latency(&self) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            count: self.total,
            mean_us: us(self.mean()),
            p50_us: us(self.quantile(0.50)),
            p90_us: us(self.quantile(0.90)),
            p99_us: us(self.quantile(0.99)),
            p999_us: us(self.quantile(0.999)),
            max_us: us(self.max),
        }
    }

    /// `p50 X  p99 Y  max Z` with readable units.
    pub fn summary(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  max {}",
            fmt_ns(self.quantile(0.5)),
            fmt_ns(self.quantile(0.9)),
            fmt_ns(self.quantile(0.99)),
            fmt_ns(self.max)
        )
    }
}

/// A histogram's summary as reports print it:
/// `{"count","mean_us","p50_us","p90_us","p99_us","p999_us","max_us"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// The serde form of a [`Histogram`]: its non-empty buckets as `[index, count]`.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct SparseHistogram {
    buckets: Vec<(usize, u64)>,
    max: u64,
    sum: u128,
}

impl From<Histogram> for SparseHistogram {
    fn from(h: Histogram) -> Self {
        let buckets = h
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, *c))
            .collect();
        SparseHistogram {
            buckets,
            max: h.max,
            sum: h.sum,
        }
    }
}

impl From<SparseHistogram> for Histogram {
    /// Buckets past the one holding `u64::MAX` ns do not exist: absurd input is
    /// skipped rather than allocated for.
    fn from(sparse: SparseHistogram) -> Self {
        let last = Histogram::index(u64::MAX);
        let mut h = Histogram::new();
        for (i, count) in sparse.buckets {
            if i <= last && count > 0 {
                if i >= h.counts.len() {
                    h.counts.resize(i + 1, 0);
                }
                h.counts[i] += count;
                h.total += count;
            }
        }
        h.max = sparse.max;
        h.sum = sparse.sum;
        h
    }
}

/// A duration in ns as `850ns`, `12.3us`, `4.56ms` or `1.23s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close_to_exact() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [(0.5, 50_000_000f64), (0.99, 99_000_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.005,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.count(), 100_000);
        let top = h.quantile(1.0);
        assert!(top <= 100_000_000 && top as f64 >= 100_000_000.0 * (1.0 - 1.0 / 512.0));
    }

    #[test]
    fn histogram_small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(5);
        b.record(7);
        b.record(900);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0), 5);
        assert_eq!(a.quantile(0.5), 7);
        assert_eq!(a.quantile(1.0), 900);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }

    #[test]
    fn serialized_histogram_keeps_every_count() {
        let mut h = Histogram::new();
        for v in [3u64, 3, 2_000, 5_000_000] {
            h.record(v);
        }
        let text = serde_json::to_string(&h).unwrap();
        assert!(text.starts_with(r#"{"buckets":[[3,2],"#), "{text}");
        let back: Histogram = serde_json::from_str(&text).unwrap();
        assert_eq!(back.count(), 4);
        assert_eq!(back.max(), 5_000_000);
        assert_eq!(back.mean(), h.mean());
        assert_eq!(back.quantile(0.5), 3);
        assert_eq!(back.quantile(0.75), h.quantile(0.75));
    }

    #[test]
    fn serialized_histogram_skips_impossible_buckets() {
        let text = r#"{"buckets":[[5,1],[4000000000,7],[6,0]],"max":5,"sum":5}"#;
        let h: Histogram = serde_json::from_str(text).unwrap();
        assert_eq!((h.count(), h.counts.len()), (1, 6));
        assert!(serde_json::from_str::<Histogram>(r#"{"buckets":[[1]]}"#).is_err());
    }

    #[test]
    fn latency_summary_is_in_microseconds() {
        let mut h = Histogram::new();
        h.record(1_500);
        h.record(2_000_000);
        let text = serde_json::to_string(&h.latency()).unwrap();
        assert_eq!(
            text,
            r#"{"count":2,"mean_us":1000.75,"p50_us":1.5,"p90_us":1998.848,"p99_us":1998.848,"p999_us":1998.848,"max_us":2000.0}"#
        );
    }

    #[test]
    fn bucket_edges_round_trip() {
        for v in [1023u64, 1024, 1025, 4096, 123_456_789, 10_000_000_000] {
            let low = Histogram::bucket_low(Histogram::index(v));
            assert!(
                low <= v && (v - low) as f64 / v as f64 <= 1.0 / 512.0,
                "{v} -> {low}"
            );
        }
    }
}

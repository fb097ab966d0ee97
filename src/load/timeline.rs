//! The time series of a load run (`--report`, `--report-json`): per-interval
//! counters diffed from the mode's running totals at turn boundaries, a latency
//! histogram reset each interval, the server's RSS and CPU read from `/proc`
//! once per interval, the merge of worker processes' intervals by index, and the
//! report document (`RunReport`) those samples end up in.
//!
//! Owns the interval arithmetic only. It must never read a clock (callers pass
//! the `now` their loop already read), never touch a socket, and never do more
//! per message than one histogram record; its only I/O is the two `/proc` reads
//! of the server per interval (through `rss`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fleet::Fleet;
use super::report::Failures;
use super::rss::{clock_ticks_per_sec, cpu_ticks, vm_rss};
use crate::histogram::Histogram;

/// The default interval of `--sample-ms`.
pub const DEFAULT_SAMPLE_MS: u64 = 200;

/// The running totals a mode hands over when an interval closes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Connections open now (not a running total).
    pub open: u64,
    /// Handshakes completed so far.
    pub handshakes: u64,
    /// Messages (echo: echoes received; broadcast: deliveries) so far.
    pub messages: u64,
    /// Errors so far, by cause.
    pub errors: Failures,
}

impl Totals {
    /// A fleet's counters: failures before the handshake under their own cause,
    /// connections ended after it as `dropped:CAUSE`.
    pub fn of_fleet<T>(fleet: &Fleet<T>, messages: u64) -> Self {
        let mut errors = fleet.failures.clone();
        for (cause, n) in &fleet.dropped.by_cause {
            errors.add(&format!("dropped:{cause}"), *n);
        }
        Totals {
            open: fleet.open as u64,
            handshakes: fleet.established,
            messages,
            errors,
        }
    }

    /// Adds a mode's own error count (mismatches, out-of-order deliveries).
    pub fn with_error(mut self, cause: &str, n: u64) -> Self {
        self.errors.add(cause, n);
        self
    }
}

/// One interval as measured: counts rather than rates, so that worker
/// processes' intervals can be added up. It is also the form a worker hands
/// its parent (with the raw histogram, for an exact merge).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Interval {
    /// The interval's end, in seconds from the start of the run.
    pub t_secs: f64,
    /// The interval's length in seconds.
    pub secs: f64,
    /// Connections open at its end.
    pub open: u64,
    pub handshakes: u64,
    pub messages: u64,
    /// Latency of what completed in it (0 when nothing did).
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub latency_max_us: f64,
    /// The latencies themselves, kept only by worker processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    pub errors: Failures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
}

impl Interval {
    fn set_latency(&mut self, h: &Histogram) {
        let l = h.latency();
        self.latency_p50_us = l.p50_us;
        self.latency_p99_us = l.p99_us;
        self.latency_max_us = l.max_us;
    }

    /// The report's form: counts become rates per second.
    pub fn sample(&self) -> Sample {
        let rate = |n: u64| {
            if self.secs > 0.0 {
                n as f64 / self.secs
            } else {
                0.0
            }
        };
        Sample {
            t_secs: self.t_secs,
            open: self.open,
            handshakes_per_sec: rate(self.handshakes),
            messages_per_sec: rate(self.messages),
            latency_p50_us: self.latency_p50_us,
            latency_p99_us: self.latency_p99_us,
            latency_max_us: self.latency_max_us,
            errors: self.errors.by_cause.clone(),
            server_rss_bytes: self.server_rss_bytes,
            server_cpu_percent: self.server_cpu_percent,
        }
    }
}

/// One sample of `--report-json`'s `samples`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The end of the interval, in seconds from the start of the run; the
    /// interval began at the previous sample's `t_secs` (or 0).
    pub t_secs: f64,
    pub open: u64,
    pub handshakes_per_sec: f64,
    pub messages_per_sec: f64,
    /// Round trip (echo), delivery (broadcast) or handshake (idle) latency of
    /// what completed in the interval; all 0 when nothing did.
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub latency_max_us: f64,
    /// Errors in the interval by cause (connection failures under their cause,
    /// connections lost after the handshake as `dropped:CAUSE`, and the mode's own:
    /// `mismatch`, `unexpected`, `out_of_order`).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    /// Server CPU time in the interval, in % of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
}

/// The document `--report-json` writes and `wsd load compare` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// `idle`, `echo`, `broadcast` or `rss`.
    pub mode: String,
    /// The run's command-line settings.
    pub parameters: serde_json::Value,
    /// Exactly the object `--json` prints.
    pub summary: serde_json::Value,
    pub interval_ms: u64,
    pub samples: Vec<Sample>,
}

/// Reads the server's RSS and CPU time once per interval.
#[derive(Debug)]
struct ServerProbe {
    pid: u32,
    ticks_per_sec: f64,
    /// CPU ticks at the last reading, and when.
    last: Option<(u64, Instant)>,
}

impl ServerProbe {
    fn new(pid: u32, now: Instant) -> Self {
        ServerProbe {
            pid,
            ticks_per_sec: clock_ticks_per_sec(),
            last: cpu_ticks(pid).ok().map(|t| (t, now)),
        }
    }

    /// RSS in bytes and CPU in % of one core since the last reading; `None`
    /// where the process could not be read (it may have exited).
    fn read(&mut self, now: Instant) -> (Option<u64>, Option<f64>) {
        let rss = vm_rss(self.pid).ok();
        let ticks = cpu_ticks(self.pid).ok();
        let cpu = match (ticks, self.last) {
            (Some(t), Some((t0, at))) if now > at => Some(
                t.saturating_sub(t0) as f64 / self.ticks_per_sec / (now - at).as_secs_f64() * 100.0,
            ),
            _ => None,
        };
        self.last = ticks.map(|t| (t, now));
        (rss, cpu)
    }
}

/// The sampler a mode's loop drives: `record` per completed message or
/// handshake, `tick` at every turn boundary, `finish` at the end.
///
/// Intervals sit on a fixed grid (`start + k * every`) so that processes which
/// started together line up by index; an interval closes at the first turn
/// boundary past its grid end, and its rates use the time actually covered.
#[derive(Debug, Default)]
pub struct Timeline {
    on: bool,
    start: Option<Instant>,
    every: Duration,
    /// When the interval being filled began (the last close).
    began: Option<Instant>,
    /// The grid end of the interval being filled.
    next: Option<Instant>,
    latency: Histogram,
    /// The latencies of the last interval closed (a short tail joins it).
    last_latency: Histogram,
    prev: Totals,
    keep_histograms: bool,
    probe: Option<ServerProbe>,
    intervals: Vec<Interval>,
}

impl Timeline {
    /// A timeline that records nothing (no report was asked for).
    pub fn off() -> Self {
        Timeline::default()
    }

    /// Starts sampling every `every` from `start`; with `server_pid`, the
    /// server's RSS and CPU too. `keep_histograms`: keep each interval's raw
    /// latencies (a worker process's parent merges them).
    pub fn new(
        start: Instant,
        every: Duration,
        server_pid: Option<u32>,
        keep_histograms: bool,
    ) -> Self {
        let every = every.max(Duration::from_millis(1));
        Timeline {
            on: true,
            start: Some(start),
            every,
            began: Some(start),
            next: Some(start + every),
            latency: Histogram::new(),
            last_latency: Histogram::new(),
            prev: Totals::default(),
            keep_histograms,
            probe: server_pid.map(|pid| ServerProbe::new(pid, start)),
            intervals: Vec::new(),
        }
    }

    /// Records one latency (ns) into the current interval.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if self.on {
            self.latency.record(ns);
        }
    }

    /// How long a loop may wait before the current interval is due to close
    /// (an hour when off, so it never shortens a wait).
    pub fn until_next(&self, now: Instant) -> Duration {
        match self.next {
            Some(next) if self.on => next.saturating_duration_since(now),
            _ => Duration::from_secs(3600),
        }
    }

    /// At a turn boundary: closes the current interval if its grid end has
    /// passed. `totals` is called only then.
    pub fn tick(&mut self, now: Instant, totals: impl FnOnce() -> Totals) {
        let Some(next) = self.next.filter(|_| self.on) else {
            return;
        };
        if now < next {
            return;
        }
        let every = self.every.as_nanos().max(1);
        let slots = 1 + (now - next).as_nanos() / every;
        // A loop that was busy past several grid ends fills every slot it
        // missed, so that indexes stay aligned with other processes'.
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        self.next = Some(next + self.every.saturating_mul(slots));
        self.close(now, totals(), slots);
    }

    /// Closes the last (partial) interval and hands over every interval. A
    /// tail shorter than half an interval joins the interval before it rather
    /// than standing alone: its rates would be noise, and CPU time (counted in
    /// whole clock ticks) over a millisecond or two would read as several cores.
    pub fn finish(&mut self, now: Instant, totals: Totals) -> Vec<Interval> {
        if !self.on {
            return Vec::new();
        }
        self.tick(now, || totals.clone());
        let span = self
            .began
            .map_or(Duration::ZERO, |b| now.saturating_duration_since(b));
        let changed = totals != self.prev || self.latency.count() > 0;
        if !span.is_zero() || changed {
            if span < self.every / 2 && !self.intervals.is_empty() {
                self.extend_last(now, totals);
            } else {
                self.close(now, totals, 1);
            }
        }
        self.on = false;
        std::mem::take(&mut self.intervals)
    }

    /// Adds what happened since the last close to the last interval.
    fn extend_last(&mut self, now: Instant, totals: Totals) {
        let (Some(start), Some(began)) = (self.start, self.began) else {
            return;
        };
        let (rss, cpu) = match self.probe.as_mut() {
            Some(p) => p.read(now),
            None => (None, None),
        };
        let span = now.saturating_duration_since(began).as_secs_f64();
        let mut latency = std::mem::take(&mut self.last_latency);
        latency.merge(&self.latency);
        self.latency = Histogram::new();
        let prev = &self.prev;
        let Some(last) = self.intervals.last_mut() else {
            return;
        };
        last.handshakes += totals.handshakes.saturating_sub(prev.handshakes);
        last.messages += totals.messages.saturating_sub(prev.messages);
        for (cause, n) in &totals.errors.by_cause {
            last.errors
                .add(cause, n.saturating_sub(prev.errors.get(cause)));
        }
        last.open = totals.open;
        last.server_cpu_percent = match (last.server_cpu_percent, cpu) {
            (Some(a), Some(b)) => Some((a * last.secs + b * span) / (last.secs + span)),
            (a, b) => a.or(b),
        };
        last.server_rss_bytes = rss.or(last.server_rss_bytes);
        last.secs += span;
        last.t_secs = now.saturating_duration_since(start).as_secs_f64();
        last.set_latency(&latency);
        if self.keep_histograms {
            last.histogram = Some(latency);
        }
        self.prev = totals;
        self.began = Some(now);
    }

    /// Ends the interval at `now`, spread over `slots` grid slots: counts are
    /// shared evenly (the average rate is all that is known), the latencies and
    /// errors go to the last slot.
    fn close(&mut self, now: Instant, totals: Totals, slots: u32) {
        let (Some(start), Some(began)) = (self.start, self.began) else {
            return;
        };
        let slots = u64::from(slots.max(1));
        let span = now.saturating_duration_since(began).as_secs_f64();
        let t0 = began.saturating_duration_since(start).as_secs_f64();
        let (rss, cpu) = match self.probe.as_mut() {
            Some(p) => p.read(now),
            None => (None, None),
        };
        let handshakes = totals.handshakes.saturating_sub(self.prev.handshakes);
        let messages = totals.messages.saturating_sub(self.prev.messages);
        let mut errors = Failures::default();
        for (cause, n) in &totals.errors.by_cause {
            errors.add(cause, n.saturating_sub(self.prev.errors.get(cause)));
        }
        let latency = std::mem::take(&mut self.latency);
        for i in 0..slots {
            let share = |n: u64| n / slots + u64::from(i < n % slots);
            let mut interval = Interval {
                t_secs: t0 + span * (i + 1) as f64 / slots as f64,
                secs: span / slots as f64,
                open: totals.open,
                handshakes: share(handshakes),
                messages: share(messages),
                server_rss_bytes: rss,
                server_cpu_percent: cpu,
                ..Interval::default()
            };
            if i + 1 == slots {
                interval.set_latency(&latency);
                interval.errors = std::mem::take(&mut errors);
                if self.keep_histograms {
                    interval.histogram = Some(latency.clone());
                }
            }
            self.intervals.push(interval);
        }
        self.last_latency = latency;
        self.prev = totals;
        self.began = Some(now);
    }
}

/// Worker processes' intervals merged by index: counts, `open` and errors
/// add up; the length and end are the workers' mean; the maximum latency is the
/// largest. p50/p99 come from the merged per-interval histograms when every
/// worker carried one (exact), else they are the largest of the workers' (an
/// upper bound). Server RSS/CPU come from the first worker that sampled them
/// (only one is given the server's pid). Workers share the grid only by
/// starting together (each counts from its own start, spawned a few
/// milliseconds apart); the merge is as long as the shortest worker's series,
/// so that a worker's final partial interval never shows as connections lost.
pub fn merge_by_index(runs: &[&[Interval]]) -> Vec<Interval> {
    let runs: Vec<&[Interval]> = runs.iter().copied().filter(|r| !r.is_empty()).collect();
    let len = runs.iter().map(|r| r.len()).min().unwrap_or(0);
    let mut merged = Vec::with_capacity(len);
    for i in 0..len {
        let at: Vec<&Interval> = runs.iter().map(|r| &r[i]).collect();
        let n = at.len() as f64;
        let mut m = Interval {
            t_secs: at.iter().map(|s| s.t_secs).sum::<f64>() / n,
            secs: at.iter().map(|s| s.secs).sum::<f64>() / n,
            ..Interval::default()
        };
        let mut histogram = Some(Histogram::new());
        for s in &at {
            m.open += s.open;
            m.handshakes += s.handshakes;
            m.messages += s.messages;
            m.errors.merge(&s.errors);
            m.latency_p50_us = m.latency_p50_us.max(s.latency_p50_us);
            m.latency_p99_us = m.latency_p99_us.max(s.latency_p99_us);
            m.latency_max_us = m.latency_max_us.max(s.latency_max_us);
            m.server_rss_bytes = m.server_rss_bytes.or(s.server_rss_bytes);
            m.server_cpu_percent = m.server_cpu_percent.or(s.server_cpu_percent);
            histogram = match (histogram, &s.histogram) {
                (Some(mut h), Some(theirs)) => {
                    h.merge(theirs);
                    Some(h)
                }
                _ => None,
            };
        }
        if let Some(h) = histogram {
            let max_us = m.latency_max_us;
            m.set_latency(&h);
            m.latency_max_us = max_us.max(m.latency_max_us);
            m.histogram = Some(h);
        }
        merged.push(m);
    }
    merged
}

/// The median of the values (mean of the middle two for an even count);
/// `None` when there are none. NaNs are left out.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(open: u64, handshakes: u64, messages: u64) -> Totals {
        Totals {
            open,
            handshakes,
            messages,
            errors: Failures::default(),
        }
    }

    #[test]
    fn intervals_diff_the_totals_and_reset_the_latency() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut tl = Timeline::new(t0, ms(200), None, false);
        tl.record(1_000_000);
        tl.record(3_000_000);
        tl.tick(t0 + ms(100), || panic!("not due"));
        assert_eq!(tl.until_next(t0 + ms(150)), ms(50));
        tl.tick(t0 + ms(210), || totals(4, 4, 100));
        tl.record(2_048_000);
        let mut late = totals(4, 4, 150);
        late.errors.add("dropped:eof", 1);
        tl.tick(t0 + ms(400), || late.clone());
        let all = tl.finish(t0 + ms(500), totals(3, 4, 170).with_error("dropped:eof", 1));
        assert_eq!(all.len(), 3);
        let s: Vec<Sample> = all.iter().map(Interval::sample).collect();
        assert!((s[0].t_secs - 0.21).abs() < 1e-9);
        assert!((s[0].messages_per_sec - 100.0 / 0.21).abs() < 1e-6);
        assert_eq!(s[0].latency_max_us, 3000.0);
        assert!((s[0].handshakes_per_sec - 4.0 / 0.21).abs() < 1e-6);
        assert!((s[1].messages_per_sec - 50.0 / 0.19).abs() < 1e-6);
        assert_eq!(s[1].latency_p50_us, 2048.0);
        assert_eq!(s[1].errors.get("dropped:eof"), Some(&1));
        assert_eq!((s[2].open, s[2].latency_max_us), (3, 0.0));
        assert!(s[2].errors.is_empty(), "errors are per interval");
        assert!((s[2].messages_per_sec - 200.0).abs() < 1e-6);
        assert!(all.iter().all(|i| i.histogram.is_none()));
    }

    #[test]
    fn a_late_turn_fills_every_slot_it_missed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut tl = Timeline::new(t0, ms(100), None, true);
        tl.record(5_000);
        tl.tick(t0 + ms(350), || totals(1, 1, 31));
        let all = tl.finish(t0 + ms(350), totals(1, 1, 31));
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(
            all.iter().map(|i| i.messages).collect::<Vec<_>>(),
            [11, 10, 10]
        );
        assert_eq!(all.iter().map(|i| i.handshakes).sum::<u64>(), 1);
        assert!((all[2].t_secs - 0.35).abs() < 1e-9);
        assert_eq!((all[0].latency_max_us, all[2].latency_max_us), (0.0, 5.0));
        assert_eq!(all[2].histogram.as_ref().map(Histogram::count), Some(1));
        // The next grid end is 400 ms, not 450.
        let mut tl = Timeline::new(t0, ms(100), None, false);
        tl.tick(t0 + ms(350), Totals::default);
        assert_eq!(tl.until_next(t0 + ms(350)), ms(50));
    }

    #[test]
    fn a_short_tail_joins_the_last_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut tl = Timeline::new(t0, ms(200), None, true);
        tl.record(1_000);
        tl.tick(t0 + ms(200), || totals(2, 2, 10));
        tl.record(3_000);
        tl.record(3_000);
        let mut end = totals(1, 2, 20);
        end.errors.add("dropped:eof", 1);
        let all = tl.finish(t0 + ms(250), end);
        assert_eq!(all.len(), 1, "{all:?}");
        let i = &all[0];
        assert!((i.t_secs - 0.25).abs() < 1e-9 && (i.secs - 0.25).abs() < 1e-9);
        assert_eq!((i.open, i.handshakes, i.messages), (1, 2, 20));
        assert_eq!(i.errors.get("dropped:eof"), 1);
        assert_eq!(i.histogram.as_ref().map(Histogram::count), Some(3));
        assert_eq!((i.latency_p50_us, i.latency_max_us), (3.0, 3.0));
    }

    #[test]
    fn off_records_nothing() {
        let t0 = Instant::now();
        let mut tl = Timeline::off();
        tl.record(5);
        tl.tick(t0 + Duration::from_secs(5), || panic!("off"));
        assert!(tl.until_next(t0) >= Duration::from_secs(60));
        assert!(tl.finish(t0, totals(1, 1, 1)).is_empty());
    }

    #[test]
    fn server_probe_reads_this_process() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(
            t0,
            Duration::from_millis(100),
            Some(std::process::id()),
            false,
        );
        let all = tl.finish(t0 + Duration::from_millis(100), Totals::default());
        assert_eq!(all.len(), 1);
        assert!(all[0].server_rss_bytes.unwrap_or(0) > 0);
        assert!(all[0].server_cpu_percent.is_some_and(|c| c >= 0.0));
    }

    /// Latencies in ns (values whose histogram bucket starts exactly at them).
    fn interval(open: u64, messages: u64, lat_ns: &[u64], keep: bool) -> Interval {
        let mut h = Histogram::new();
        for ns in lat_ns {
            h.record(*ns);
        }
        let mut i = Interval {
            t_secs: 0.2,
            secs: 0.2,
            open,
            messages,
            ..Interval::default()
        };
        i.set_latency(&h);
        i.histogram = keep.then_some(h);
        i
    }

    #[test]
    fn workers_merge_by_index_with_exact_percentiles() {
        let a = vec![
            interval(10, 5, &[1000, 1000, 1000], true),
            interval(10, 0, &[], true),
        ];
        let mut b = vec![
            interval(7, 3, &[9216, 9216, 9216, 9216, 9216], true),
            interval(7, 1, &[2048], true),
            interval(7, 0, &[], true),
        ];
        b[0].errors.add("timeout", 2);
        b[0].server_rss_bytes = Some(4096);
        let m = merge_by_index(&[&a, &[], &b]);
        assert_eq!(m.len(), 2, "as long as the shortest non-empty series");
        assert_eq!((m[0].open, m[0].messages), (17, 8));
        assert_eq!(m[0].errors.get("timeout"), 2);
        assert_eq!(m[0].server_rss_bytes, Some(4096));
        // 3 x 1 us and 5 x 9.2 us: the merged p50 is 9.2 us, and p50 of the
        // first worker alone (1 us) is not what is kept.
        assert_eq!(m[0].latency_p50_us, 9.216);
        assert_eq!(m[0].histogram.as_ref().map(Histogram::count), Some(8));
        assert_eq!(m[1].latency_max_us, 2.048);
        let s = m[0].sample();
        assert!((s.messages_per_sec - 40.0).abs() < 1e-9);
        assert!((s.t_secs - 0.2).abs() < 1e-12);
    }

    #[test]
    fn without_histograms_merged_percentiles_are_the_largest() {
        let a = [interval(1, 3, &[1000, 1000, 1000], false)];
        let b = [interval(1, 2, &[3000, 100_000], true)];
        let m = merge_by_index(&[&a, &b]);
        assert_eq!((a[0].latency_p50_us, b[0].latency_p50_us), (1.0, 3.0));
        assert_eq!(m[0].latency_p50_us, 3.0);
        assert_eq!(m[0].latency_p99_us, b[0].latency_p99_us);
        assert_eq!(m[0].latency_max_us, 100.0);
        assert!(m[0].histogram.is_none());
    }

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([f64::NAN, 7.0]), Some(7.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn samples_serialize_with_the_documented_keys() {
        let mut i = interval(3, 10, &[98_304], false);
        i.errors.add("refused", 1);
        i.server_rss_bytes = Some(1 << 20);
        let text = serde_json::to_string(&i.sample()).unwrap();
        assert_eq!(
            text,
            r#"{"t_secs":0.2,"open":3,"handshakes_per_sec":0.0,"messages_per_sec":50.0,"latency_p50_us":98.304,"latency_p99_us":98.304,"latency_max_us":98.304,"errors":{"refused":1},"server_rss_bytes":1048576}"#
        );
        let back: Sample = serde_json::from_str(&text).unwrap();
        assert_eq!(back, i.sample());
        let worker = serde_json::to_string(&interval(1, 1, &[5], true)).unwrap();
        let back: Interval = serde_json::from_str(&worker).unwrap();
        assert_eq!(back.histogram.map(|h| h.count()), Some(1));
    }
}

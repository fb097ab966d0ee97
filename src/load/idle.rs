//! `wsd load idle`: open N connections (full handshake, optionally rate-capped),
//! hold them idle for a while (optionally pinging), then close them all.
//!
//! Owns the idle scenario in one process and its result type; `workers` decides
//! whether a run fits one process or is split across child processes that each
//! run this same code. It must never exceed N attempts or the time bounds,
//! and it stops opening (saying why) at the first EMFILE or EADDRNOTAVAIL.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::{ConnError, ConnEvent};

use super::fleet::{Fleet, Slot};
use super::report::{fmt_count, Failures};
use super::timeline::{Interval, Timeline, Totals};
use super::{connect_spec, per_sec, raise_fd_limit, secs, to_json, CommonArgs, Progress};
use crate::histogram::{Histogram, Latency};

/// Options of `wsd load idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Server URL, e.g. ws://127.0.0.1:9001/echo
    #[arg(long)]
    pub url: String,
    /// Connections to open.
    #[arg(short = 'n', long = "connections", default_value_t = 100)]
    pub n: u64,
    /// Seconds to hold the connections once the ramp is over.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Send a ping on every connection every K seconds while holding.
    #[arg(long, value_name = "K")]
    pub ping_interval: Option<f64>,
    /// Cap on new handshakes per second (default: as fast as possible).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Most connections in connect/handshake at once.
    #[arg(long, default_value_t = 256)]
    pub max_pending: usize,
    /// Most connections per process; above this, worker processes are spawned,
    /// each bound to its own source address 127.0.0.2, 127.0.0.3, ...
    #[arg(long, default_value_t = 19_000)]
    pub per_process: u64,
    /// Bound on the ramp (opening all connections), in seconds.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub ramp_timeout: f64,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Worker protocol: print `ready N` after the ramp and wait for a stdin line.
    #[arg(long, hide = true)]
    pub wait_go: bool,
    /// Sample the run over time even without --report (a worker's parent, or
    /// the rss mode, writes the report).
    #[arg(long, hide = true)]
    pub timeline: bool,
}

/// The two moments a caller (the RSS mode) may want to observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePhase {
    /// The ramp is over; the value is how many connections are open.
    Ready,
    /// The hold is about to end; the value is how many are still open.
    HoldEnd,
}

/// What one idle run measured.
#[derive(Debug, Clone, Default)]
pub struct IdleResult {
    pub requested: u64,
    pub attempted: u64,
    pub established: u64,
    pub failures: Failures,
    /// From the first attempt to the last successful handshake.
    pub ramp: Duration,
    pub handshake_latency: Histogram,
    /// Open at the end of the hold.
    pub held: u64,
    /// Ended by the server (or the network) after the handshake.
    pub dropped: Failures,
    pub pings_sent: u64,
    pub pongs: u64,
    pub closed_clean: u64,
    pub hold: Duration,
    /// Why opening stopped early (EMFILE, ephemeral ports), if it did.
    pub stopped: Option<String>,
    pub processes: u64,
    /// The ramp and the hold over time (with `--report`; empty otherwise).
    pub timeline: Vec<Interval>,
}

/// The JSON form of an [`IdleResult`]: what `--json` prints and, with the raw
/// histogram, the `result` line a worker hands its parent. Read back leniently
/// (a missing field is zero); the derived fields (`failed`, `handshakes_per_sec`,
/// `handshake_latency`, `dropped`) are not read.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IdleReport {
    #[serde(skip_deserializing)]
    mode: &'static str,
    connections: u64,
    attempted: u64,
    successes: u64,
    #[serde(skip_deserializing)]
    failed: u64,
    failures: Failures,
    #[serde(skip_deserializing)]
    handshakes_per_sec: f64,
    ramp_secs: f64,
    #[serde(skip_deserializing)]
    handshake_latency: Latency,
    held: u64,
    hold_secs: f64,
    #[serde(skip_deserializing)]
    dropped: u64,
    dropped_by_cause: Failures,
    pings_sent: u64,
    pongs_received: u64,
    closed_clean: u64,
    processes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_early: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake_histogram: Option<Histogram>,
    /// A worker's intervals, with their histograms, for its parent to merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    samples: Option<Vec<Interval>>,
}

impl From<IdleReport> for IdleResult {
    /// Reads a worker's report back.
    fn from(r: IdleReport) -> Self {
        IdleResult {
            requested: r.connections,
            attempted: r.attempted,
            established: r.successes,
            failures: r.failures,
            ramp: secs(r.ramp_secs),
            handshake_latency: r.handshake_histogram.unwrap_or_default(),
            held: r.held,
            dropped: r.dropped_by_cause,
            pings_sent: r.pings_sent,
            pongs: r.pongs_received,
            closed_clean: r.closed_clean,
            hold: secs(r.hold_secs),
            stopped: r.stopped_early,
            processes: r.processes,
            timeline: r.samples.unwrap_or_default(),
        }
    }
}

impl IdleResult {
    pub fn handshakes_per_sec(&self) -> f64 {
        per_sec(self.established, self.ramp)
    }

    /// Whether every requested connection opened and stayed open.
    pub fn ok(&self) -> bool {
        self.established == self.requested && self.held == self.requested
    }

    /// The JSON form of this result; a worker's carries the raw histogram and
    /// its intervals too.
    pub fn report(&self, with_histogram: bool) -> IdleReport {
        IdleReport {
            mode: "idle",
            connections: self.requested,
            attempted: self.attempted,
            successes: self.established,
            failed: self.failures.total(),
            failures: self.failures.clone(),
            handshakes_per_sec: self.handshakes_per_sec(),
            ramp_secs: self.ramp.as_secs_f64(),
            handshake_latency: self.handshake_latency.latency(),
            held: self.held,
            hold_secs: self.hold.as_secs_f64(),
            dropped: self.dropped.total(),
            dropped_by_cause: self.dropped.clone(),
            pings_sent: self.pings_sent,
            pongs_received: self.pongs,
            closed_clean: self.closed_clean,
            processes: self.processes.max(1),
            stopped_early: self.stopped.clone(),
            handshake_histogram: with_histogram.then(|| self.handshake_latency.clone()),
            samples: (with_histogram && !self.timeline.is_empty()).then(|| self.timeline.clone()),
        }
    }

    /// Adds a worker's result into an aggregate (ramps overlap: take the longest).
    /// Timelines are not touched: they merge by interval index, all workers at
    /// once (`timeline::merge_by_index`).
    pub fn merge(&mut self, other: &IdleResult) {
        self.requested += other.requested;
        self.attempted += other.attempted;
        self.established += other.established;
        self.failures.merge(&other.failures);
        self.ramp = self.ramp.max(other.ramp);
        self.handshake_latency.merge(&other.handshake_latency);
        self.held += other.held;
        self.dropped.merge(&other.dropped);
        self.pings_sent += other.pings_sent;
        self.pongs += other.pongs;
        self.closed_clean += other.closed_clean;
        self.hold = self.hold.max(other.hold);
        if self.stopped.is_none() {
            self.stopped.clone_from(&other.stopped);
        }
        self.processes += other.processes.max(1);
    }

    pub fn summary(&self, url: &str) -> String {
        let mut s = format!(
            "idle {url}: {} of {} connections established in {:.2}s ({:.0} handshakes/s), held {} for {:.1}s\n  \
             handshake latency: {}\n  failures: {}\n  dropped while held: {}\n  \
             pings sent {}, pongs received {}, closed cleanly {}",
            fmt_count(self.established),
            fmt_count(self.requested),
            self.ramp.as_secs_f64(),
            self.handshakes_per_sec(),
            fmt_count(self.held),
            self.hold.as_secs_f64(),
            self.handshake_latency.summary(),
            self.failures.summary(),
            self.dropped.summary(),
            fmt_count(self.pings_sent),
            fmt_count(self.pongs),
            fmt_count(self.closed_clean),
        );
        if self.processes > 1 {
            s.push_str(&format!("\n  worker processes: {}", self.processes));
        }
        if let Some(why) = &self.stopped {
            s.push_str(&format!("\n  STOPPED EARLY: {why}"));
        }
        s
    }
}

/// `wsd load worker`: one process of a multi-process idle run. Speaks a line
/// protocol on stdout (`ready N`, then `result JSON`) and stays quiet otherwise.
pub fn run_worker(args: &IdleArgs) -> Result<bool, String> {
    raise_fd_limit();
    let result = run_local(args, &mut |_, _| {})?;
    eprintln!("{}", result.summary(&args.url));
    println!("result {}", to_json(&result.report(true))?);
    Ok(result.ok())
}

/// Reads one line from stdin if one is ready (or EOF): the worker's `go` signal.
fn stdin_line_ready() -> bool {
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents != 0 }
}

/// The idle scenario inside this process.
pub fn run_local(
    args: &IdleArgs,
    hook: &mut dyn FnMut(IdlePhase, u64),
) -> Result<IdleResult, String> {
    let spec = connect_spec(&args.url, &args.common)?;
    let mut fleet: Fleet<()> = super::fleet(spec, &args.common)?;
    let mut progress = Progress::new(args.common.progress);
    // Workers say which one is talking.
    let tag = match (args.wait_go, args.common.source_ip) {
        (true, Some(ip)) => format!("idle[{ip}]"),
        _ => "idle".to_owned(),
    };
    let start = Instant::now();
    // Workers keep each interval's handshake histogram for their parent's merge.
    let timeline = RefCell::new(if args.timeline || args.common.wants_report() {
        Timeline::new(
            start,
            Duration::from_millis(args.common.sample_ms),
            args.common.server_pid,
            args.wait_go,
        )
    } else {
        Timeline::off()
    });
    let sample = |fleet: &Fleet<()>, now: Instant| {
        timeline
            .borrow_mut()
            .tick(now, || Totals::of_fleet(fleet, 0));
    };
    let last_open = Cell::new(None::<Instant>);
    let pongs = Cell::new(0u64);
    let mut on_event = |_: usize, slot: &mut Slot<()>, ev: &ConnEvent, now: Instant| match ev {
        ConnEvent::Open(_) => {
            last_open.set(Some(now));
            let took = now.duration_since(slot.started).as_nanos() as u64;
            timeline.borrow_mut().record(took);
        }
        ConnEvent::Pong(_) => pongs.set(pongs.get() + 1),
        _ => {}
    };

    // Ramp: open N connections, at most max_pending at a time, optionally rate-capped.
    let ramp_deadline = start + secs(args.ramp_timeout);
    let mut attempted = 0u64;
    let mut stopped: Option<String> = None;
    let mut announced = false;
    let max_pending = args.max_pending.max(1);
    loop {
        let now = Instant::now();
        sample(&fleet, now);
        let mut wait = Duration::from_millis(50).min(timeline.borrow().until_next(now));
        let mut burst = 0;
        while stopped.is_none() && attempted < args.n && fleet.pending < max_pending && burst < 128
        {
            if let Some(rate) = args.rate.filter(|r| *r > 0.0) {
                let due = start + secs(attempted as f64 / rate);
                if now < due {
                    wait = wait.min(due - now);
                    break;
                }
            }
            attempted += 1;
            burst += 1;
            match fleet.start(()) {
                Ok(_) => {}
                Err(ConnError::TooManyFiles) => {
                    stopped = Some(format!(
                        "hit EMFILE (out of file descriptors) after {} connections; fd limit {}",
                        fleet.live(),
                        raise_fd_limit()
                    ))
                }
                Err(ConnError::AddrNotAvailable) => {
                    stopped = Some(format!(
                        "ran out of ephemeral ports (EADDRNOTAVAIL) after {} connections from {}; \
                         use more source addresses (fewer connections per process) or more ports",
                        fleet.live(),
                        fleet
                            .spec
                            .source
                            .map_or("the kernel's default source address".into(), |ip| ip
                                .to_string())
                    ))
                }
                Err(_) => {}
            }
        }
        if let (Some(why), false) = (&stopped, announced) {
            eprintln!("{tag}: {why}");
            announced = true;
        }
        if (attempted >= args.n || stopped.is_some()) && fleet.pending == 0 {
            break;
        }
        if now >= ramp_deadline {
            stopped.get_or_insert_with(|| {
                format!("ramp not finished within {:.0}s", args.ramp_timeout)
            });
            break;
        }
        if progress.due(now) {
            eprintln!(
                "{tag}: {} open, {} pending, {} failed, {:.0} handshakes/s so far",
                fmt_count(fleet.open as u64),
                fleet.pending,
                fmt_count(fleet.failures.total()),
                per_sec(fleet.established, now - start)
            );
        }
        let more_now = attempted < args.n && stopped.is_none() && fleet.pending < max_pending;
        if burst == 128 || (more_now && args.rate.is_none()) {
            wait = Duration::ZERO;
        }
        fleet
            .turn(wait, &mut on_event)
            .map_err(|e| format!("poll failed: {e}"))?;
    }
    let ramp = last_open.get().map_or(Duration::ZERO, |t| t - start);
    hook(IdlePhase::Ready, fleet.open as u64);

    if args.wait_go {
        println!("ready {}", fleet.open);
        let _ = std::io::stdout().flush();
        let go_deadline = Instant::now() + secs(args.ramp_timeout);
        loop {
            let now = Instant::now();
            sample(&fleet, now);
            if stdin_line_ready() || now >= go_deadline {
                break;
            }
            fleet
                .turn(Duration::from_millis(20), &mut on_event)
                .map_err(|e| format!("poll failed: {e}"))?;
        }
    }

    // Hold (nothing to hold if nothing opened).
    let hold_start = Instant::now();
    let hold_secs = if fleet.open == 0 { 0.0 } else { args.duration };
    let hold_end = hold_start + secs(hold_secs);
    let ping_every = args.ping_interval.filter(|k| *k > 0.0).map(secs);
    let mut next_ping = ping_every.map(|k| hold_start + k);
    let mut pings_sent = 0u64;
    let held_until = loop {
        let now = Instant::now();
        sample(&fleet, now);
        if now >= hold_end {
            break now;
        }
        if let (Some(at), Some(every)) = (next_ping, ping_every) {
            if now >= at {
                fleet.for_each_open(|_, slot| {
                    if slot.conn.ping(b"wsd-load").is_ok() {
                        pings_sent += 1;
                    }
                });
                next_ping = Some(at + every);
            }
        }
        if progress.due(now) {
            eprintln!(
                "{tag}: holding {} connections, {:.0}s left, {} dropped",
                fmt_count(fleet.open as u64),
                (hold_end - now).as_secs_f64(),
                fleet.dropped.total()
            );
        }
        let mut wait = (hold_end - now)
            .min(Duration::from_millis(250))
            .min(timeline.borrow().until_next(now));
        if let Some(at) = next_ping {
            wait = wait.min(at.saturating_duration_since(now));
        }
        fleet
            .turn(wait, &mut on_event)
            .map_err(|e| format!("poll failed: {e}"))?;
    };
    let hold = held_until - hold_start;
    let held = fleet.open as u64;
    let intervals = timeline
        .borrow_mut()
        .finish(held_until, Totals::of_fleet(&fleet, 0));
    hook(IdlePhase::HoldEnd, held);
    let dropped = fleet.dropped.clone();
    let closed_clean = fleet.close_all(Duration::from_secs(5));

    Ok(IdleResult {
        requested: args.n,
        attempted,
        established: fleet.established,
        failures: fleet.failures.clone(),
        ramp,
        handshake_latency: fleet.handshake_latency.clone(),
        held,
        dropped,
        pings_sent,
        pongs: pongs.get(),
        closed_clean,
        hold,
        stopped,
        processes: 1,
        timeline: intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IdleResult {
        let mut r = IdleResult {
            requested: 5,
            attempted: 5,
            established: 4,
            ramp: Duration::from_millis(1500),
            held: 4,
            pings_sent: 8,
            pongs: 8,
            closed_clean: 4,
            hold: Duration::from_secs(2),
            stopped: Some("ran out of \"ports\"".into()),
            processes: 1,
            ..IdleResult::default()
        };
        r.failures.add("refused", 1);
        for ns in [2_000, 3_000, 4_000, 5_000_000] {
            r.handshake_latency.record(ns);
        }
        r
    }

    #[test]
    fn printed_report_has_the_summary_and_no_histogram() {
        let text = to_json(&sample().report(false)).unwrap();
        assert!(
            text.starts_with(r#"{"mode":"idle","connections":5,"attempted":5,"successes":4,"failed":1,"failures":{"refused":1},"handshakes_per_sec":"#),
            "{text}"
        );
        assert!(
            text.contains(r#""handshake_latency":{"count":4,"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#""processes":1,"stopped_early":"ran out of \"ports\""}"#),
            "{text}"
        );
    }

    #[test]
    fn a_workers_report_reads_back_whole() {
        let r = sample();
        let text = to_json(&r.report(true)).unwrap();
        let back = IdleResult::from(serde_json::from_str::<IdleReport>(&text).unwrap());
        assert_eq!(to_json(&back.report(true)).unwrap(), text);
        assert_eq!(back.handshake_latency.count(), 4);
        assert_eq!(back.handshake_latency.mean(), r.handshake_latency.mean());
        assert_eq!((back.ramp, back.hold), (r.ramp, r.hold));
        assert_eq!(back.stopped, r.stopped);
        assert_eq!(back.failures, r.failures);
    }

    #[test]
    fn a_sparse_report_reads_back_as_zeros() {
        let back = IdleResult::from(serde_json::from_str::<IdleReport>(r#"{"held":3}"#).unwrap());
        assert_eq!((back.held, back.requested, back.stopped), (3, 0, None));
        assert!(serde_json::from_str::<IdleReport>(r#"{"held":"x"}"#).is_err());
    }
}

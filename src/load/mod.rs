//! The load generator (`wsd load MODE`): idle connections, pipelined echo,
//! chat-room broadcast fan-out, server RSS per connection, and the comparison of
//! two runs' reports.
//!
//! Owns the command line of every mode and what the modes share (fd limit,
//! progress lines, output, writing the `--report` / `--report-json` files). Each
//! mode lives in its own file; `fleet` drives the connections, `report` measures
//! and formats, `timeline` samples a run over time, `html_report` draws the
//! pages, `compare` puts two runs side by side. It must never spawn a thread
//! (each process is one mio loop; idle spawns worker *processes* past the fd
//! limit), and every run is bounded in time and in count.

pub mod broadcast;
pub mod compare;
pub mod echo;
pub mod fleet;
pub mod html_report;
pub mod idle;
pub mod report;
pub mod rss;
pub mod timeline;
pub mod workers;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{ConnectSpec, WsUrl};

/// CPU time (user + system) this process has used so far: what the load
/// generator itself costs, so that its counts can be put per CPU-second.
/// Zero if the OS will not say.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given, which is plain
    // integers (all-zero is a valid value).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Options of `wsd load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub mode: Mode,
}

/// The load scenarios.
#[derive(Debug, clap::Subcommand)]
pub enum Mode {
    /// Open N connections (full handshake), hold them idle, report handshakes/s.
    Idle(idle::IdleArgs),
    /// C connections each keeping P messages in flight; throughput and round trips.
    Echo(echo::EchoArgs),
    /// C chat members and one publisher; deliveries/s and delivery latency.
    Broadcast(broadcast::BroadcastArgs),
    /// Server RSS per connection around a nested idle run: rss --pid P [--] idle ...
    Rss(rss::RssArgs),
    /// Two runs' --report-json files side by side: medians, ratios, charts.
    Compare(compare::CompareArgs),
    /// Internal: one idle worker process of a multi-process idle run.
    #[command(hide = true)]
    Worker(idle::IdleArgs),
}

/// Options every mode shares.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Print the result as JSON on stdout (the human summary goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub progress: f64,
    /// Seconds allowed for connect plus handshake, per connection.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Bind every socket to this local address before connecting (default for a
    /// loopback server: 127.0.0.1 or ::1).
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<IpAddr>,
    /// Let the kernel choose local ports instead of binding explicit ones; past
    /// ~14,000 connections from one address its search makes each connect() slow.
    #[arg(long)]
    pub kernel_ports: bool,
    /// Bind local ports from this range, e.g. 40000-49999 (default: the system's
    /// ephemeral range, ip_local_port_range).
    #[arg(long, value_name = "LO-HI", value_parser = parse_port_range)]
    pub local_ports: Option<(u16, u16)>,
    /// Offer permessage-deflate on every connection (as browsers do) and
    /// compress every message sent once the server accepts it.
    #[arg(long)]
    pub deflate: bool,
    /// Write one self-contained HTML page of the run to FILE: its parameters,
    /// the summary and charts over time (open connections, rates, latency,
    /// errors by cause, and server RSS and CPU with --server-pid).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the same data as JSON to FILE (what `wsd load compare` reads).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Milliseconds per sample of the report's time series.
    #[arg(long, value_name = "MS", default_value_t = timeline::DEFAULT_SAMPLE_MS,
          value_parser = clap::value_parser!(u64).range(100..=1000))]
    pub sample_ms: u64,
    /// The server's process id: its RSS (VmRSS) and CPU use (% of one core)
    /// are sampled into the report.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    #[command(flatten)]
    pub tls: crate::client::TlsArgs,
}

/// Parses `LO-HI` (both 1..=65535, LO <= HI).
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = text
        .split_once('-')
        .ok_or_else(|| format!("expected LO-HI, got {text:?}"))?;
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("invalid port {p:?}")),
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo > hi {
        return Err(format!("empty port range {lo}-{hi}"));
    }
    Ok((lo, hi))
}

/// Runs one load scenario. Exit codes: 0 success, 1 setup error, 2 the run saw
/// failures (connections refused or dropped, mismatched echoes, lost messages).
pub fn run(args: LoadArgs) -> ExitCode {
    let result = match args.mode {
        Mode::Idle(a) => workers::run(&a),
        Mode::Worker(a) => idle::run_worker(&a),
        Mode::Echo(a) => echo::run(&a),
        Mode::Broadcast(a) => broadcast::run(&a),
        Mode::Rss(a) => rss::run(&a),
        Mode::Compare(a) => compare::run(&a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(msg) => {
            eprintln!("wsd load: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Raises the soft fd limit to the hard one; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Builds the connection spec for `url`.
pub fn connect_spec(url: &str, common: &CommonArgs) -> Result<ConnectSpec, String> {
    let parsed = WsUrl::parse(url).map_err(|e| e.to_string())?;
    let addr: SocketAddr = parsed.resolve().map_err(|e| e.to_string())?;
    let secure = parsed.secure;
    let mut spec = ConnectSpec::new(addr, parsed);
    if secure {
        spec.tls = Some(common.tls.client_config()?);
    }
    spec.deflate = common.deflate;
    spec.source = common.source_ip.or_else(|| {
        let lo = addr.ip().is_loopback() && !common.kernel_ports;
        lo.then_some(match addr {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        })
    });
    Ok(spec)
}

/// A fleet for `spec` with this run's handshake timeout and port policy.
pub fn fleet<T>(spec: ConnectSpec, common: &CommonArgs) -> Result<fleet::Fleet<T>, String> {
    let ports = match (common.kernel_ports, common.local_ports) {
        (true, _) => None,
        (false, Some((lo, hi))) => Some(fleet::PortCursor::random_start(lo, hi)),
        (false, None) => Some(fleet::PortCursor::system()),
    };
    fleet::Fleet::new(spec, secs(common.timeout), ports)
        .map_err(|e| format!("cannot create poller: {e}"))
}

/// A duration from seconds given on the command line.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() {
        s.clamp(0.0, 86_400.0)
    } else {
        0.0
    })
}

/// Says when the next progress line is due.
#[derive(Debug)]
pub struct Progress {
    every: Option<Duration>,
    next: Instant,
}

impl Progress {
    pub fn new(every_secs: f64) -> Self {
        let every = (every_secs > 0.0).then(|| secs(every_secs));
        Progress {
            every,
            next: Instant::now() + every.unwrap_or_default(),
        }
    }

    /// True once per period.
    pub fn due(&mut self, now: Instant) -> bool {
        match self.every {
            Some(every) if now >= self.next => {
                self.next = now + every;
                true
            }
            _ => false,
        }
    }
}

/// Prints the result: the report as JSON on stdout with `--json` (summary on
/// stderr), else the summary on stdout.
pub fn emit(common: &CommonArgs, summary: &str, report: &impl Serialize) -> Result<(), String> {
    if common.json {
        eprintln!("{summary}");
        println!("{}", to_json(report)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

impl CommonArgs {
    /// Whether `--report` or `--report-json` asks for the run's time series.
    pub fn wants_report(&self) -> bool {
        self.report.is_some() || self.report_json.is_some()
    }

    /// The run's parameters for a report: the mode's own (an object) and the
    /// shared ones that change what is measured.
    pub fn parameters(&self, mode_specific: serde_json::Value) -> serde_json::Value {
        let mut map = match mode_specific {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let shared = serde_json::json!({
            "deflate": self.deflate,
            "timeout_secs": self.timeout,
            "source_ip": self.source_ip.map(|ip| ip.to_string()),
            "sample_ms": self.sample_ms,
            "server_pid": self.server_pid,
        });
        if let serde_json::Value::Object(shared) = shared {
            for (k, v) in shared {
                if !v.is_null() {
                    map.entry(k).or_insert(v);
                }
            }
        }
        serde_json::Value::Object(map)
    }

    /// The sampler of a run starting at `start`: off unless a report is wanted.
    pub fn timeline(&self, start: Instant) -> timeline::Timeline {
        if self.wants_report() {
            timeline::Timeline::new(
                start,
                Duration::from_millis(self.sample_ms),
                self.server_pid,
                false,
            )
        } else {
            timeline::Timeline::off()
        }
    }
}

/// Prints the result (see [`emit`]), then writes the `--report` and
/// `--report-json` files: `mode`, `parameters`, `summary` (the very object
/// `--json` prints), the sampling interval and the samples.
pub fn finish(
    common: &CommonArgs,
    mode: &str,
    parameters: serde_json::Value,
    summary: &str,
    report: &impl Serialize,
    intervals: &[timeline::Interval],
) -> Result<(), String> {
    emit(common, summary, report)?;
    if !common.wants_report() {
        return Ok(());
    }
    let doc = timeline::RunReport {
        mode: mode.to_owned(),
        parameters,
        summary: serde_json::to_value(report)
            .map_err(|e| format!("cannot encode the result as JSON: {e}"))?,
        interval_ms: common.sample_ms,
        samples: intervals.iter().map(timeline::Interval::sample).collect(),
    };
    if let Some(path) = &common.report_json {
        write_file(path, &(to_json(&doc)? + "\n"))?;
    }
    if let Some(path) = &common.report {
        write_file(path, &html_report::run_page(&doc, Some(summary))?)?;
    }
    Ok(())
}

/// Writes a report file; the error names it.
fn write_file(path: &Path, content: &str) -> Result<(), String> {
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A report as one line of JSON.
pub fn to_json(report: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(report).map_err(|e| format!("cannot encode the result as JSON: {e}"))
}

/// Per-second rate, 0 when no time passed.
pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_refuse_nonsense() {
        assert_eq!(parse_port_range("40000-40009"), Ok((40000, 40009)));
        assert_eq!(parse_port_range("7-7"), Ok((7, 7)));
        for bad in ["", "40000", "0-10", "10-9", "a-b", "1-70000"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }
}

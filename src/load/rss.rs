//! `wsd load rss --pid PID [--] idle ...`: the server's resident memory per
//! connection, sampled from `/proc/PID/status` (VmRSS) before connecting, once
//! every connection is open, and at the end of the hold.
//!
//! Owns reading the server's `/proc` files (VmRSS from `status`, CPU time from
//! `stat`, also sampled over time by `timeline`) and the per-connection
//! arithmetic; the connections themselves come from the idle scenario. It must
//! never signal or otherwise touch the measured process: it only reads its
//! `/proc` files.

use clap::Parser;
use serde::Serialize;

use super::idle::{IdleArgs, IdlePhase, IdleReport};
use super::report::fmt_count;
use super::workers;
use super::{finish, CommonArgs};

/// Options of `wsd load rss`.
#[derive(Debug, Clone, clap::Args)]
pub struct RssArgs {
    /// The server process to measure.
    #[arg(long)]
    pub pid: u32,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The nested scenario, e.g. `idle --url ws://127.0.0.1:9001/echo -n 10000 --duration 5`
    /// (a leading `--` is accepted).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub scenario: Vec<String>,
}

/// The nested command line of `rss`.
#[derive(Debug, Parser)]
#[command(name = "rss")]
struct Nested {
    #[command(subcommand)]
    scenario: NestedScenario,
}

#[derive(Debug, clap::Subcommand)]
enum NestedScenario {
    /// Idle connections (the only scenario whose memory is per connection).
    Idle(IdleArgs),
}

/// What `wsd load rss --json` prints: the samples, the per-connection figures
/// and the nested idle run's own report.
#[derive(Debug, Serialize)]
struct RssReport {
    mode: &'static str,
    pid: u32,
    rss_before_bytes: u64,
    rss_established_bytes: u64,
    rss_held_bytes: u64,
    open_established: u64,
    open_held: u64,
    bytes_per_connection: f64,
    bytes_per_connection_established: f64,
    idle: IdleReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_after_close_bytes: Option<u64>,
}

/// Reads `VmRSS` of `pid` in bytes.
pub fn vm_rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_vm_rss(&text).ok_or_else(|| format!("no VmRSS line in {path}"))
}

/// Extracts `VmRSS:   1234 kB` from a status file, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        Some("mB") | Some("MB") => 1024 * 1024,
        None | Some("B") => 1,
        Some(_) => return None,
    };
    Some(value * unit)
}

/// Reads the CPU time `pid` has used (user + system) in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_cpu_ticks(&text).ok_or_else(|| format!("no utime/stime in {path}"))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 (state) is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of [`cpu_ticks`].
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck > 0 {
        tck as f64
    } else {
        100.0
    }
}

/// Bytes per connection: RSS growth over the connections that were open.
pub fn per_connection(before: u64, after: u64, connections: u64) -> f64 {
    if connections == 0 {
        return 0.0;
    }
    (after as f64 - before as f64) / connections as f64
}

/// Parses the nested scenario (`idle ...`, with or without a leading `--`).
fn parse_nested(scenario: &[String]) -> Result<IdleArgs, String> {
    let argv = std::iter::once("rss").chain(
        scenario
            .iter()
            .map(String::as_str)
            .skip_while(|a| *a == "--"),
    );
    let nested = Nested::try_parse_from(argv).map_err(|e| e.to_string())?;
    let NestedScenario::Idle(idle_args) = nested.scenario;
    Ok(idle_args)
}

/// `wsd load rss`.
pub fn run(args: &RssArgs) -> Result<bool, String> {
    let mut idle_args = parse_nested(&args.scenario)?;
    // The nested run prints nothing of its own; this mode reports both.
    idle_args.common.json = false;
    // So does its report: `--report`/`--report-json` given to rss, else to the
    // nested idle run, make one rss report whose charts are the idle run's,
    // sampling this pid unless another server pid is named.
    let mut common: CommonArgs = args.common.clone();
    if !common.wants_report() && idle_args.common.wants_report() {
        common.report = idle_args.common.report.take();
        common.report_json = idle_args.common.report_json.take();
        common.sample_ms = idle_args.common.sample_ms;
    }
    idle_args.common.report = None;
    idle_args.common.report_json = None;
    idle_args.common.sample_ms = common.sample_ms;
    idle_args.timeline = common.wants_report();
    idle_args.common.server_pid = idle_args
        .common
        .server_pid
        .or(common.server_pid)
        .or(Some(args.pid));
    common.server_pid = idle_args.common.server_pid;

    let before = vm_rss(args.pid)?;
    let mut samples: Vec<(IdlePhase, u64, Result<u64, String>)> = Vec::new();
    let result = workers::run_scenario(&idle_args, &mut |phase, open| {
        samples.push((phase, open, vm_rss(args.pid)));
    })?;
    let sample = |want: IdlePhase| {
        samples
            .iter()
            .find(|(p, _, _)| *p == want)
            .and_then(|(_, open, rss)| rss.as_ref().ok().map(|r| (*open, *r)))
    };
    let (open_ready, rss_ready) = sample(IdlePhase::Ready)
        .ok_or_else(|| format!("process {} vanished during the run", args.pid))?;
    let (open_held, rss_held) = sample(IdlePhase::HoldEnd).unwrap_or((open_ready, rss_ready));
    let after = vm_rss(args.pid).ok();

    let per_conn_ready = per_connection(before, rss_ready, open_ready);
    let per_conn_held = per_connection(before, rss_held, open_held);
    let report = RssReport {
        mode: "rss",
        pid: args.pid,
        rss_before_bytes: before,
        rss_established_bytes: rss_ready,
        rss_held_bytes: rss_held,
        open_established: open_ready,
        open_held,
        bytes_per_connection: per_conn_held,
        bytes_per_connection_established: per_conn_ready,
        idle: result.report(false),
        rss_after_close_bytes: after,
    };
    let kib = |b: u64| fmt_count(b / 1024);
    let summary = format!(
        "{}\nrss of pid {}: {} KiB before, {} KiB with {} open, {} KiB at the end of the hold with {} open{}\n  \
         => {:.0} bytes per connection (held), {:.0} right after the ramp",
        result.summary(&idle_args.url),
        args.pid,
        kib(before),
        kib(rss_ready),
        fmt_count(open_ready),
        kib(rss_held),
        fmt_count(open_held),
        after.map_or(String::new(), |a| format!(", {} KiB after closing", kib(a))),
        per_conn_held,
        per_conn_ready,
    );
    let parameters = common.parameters(serde_json::json!({
        "pid": args.pid,
        "idle": workers::parameters(&idle_args),
    }));
    finish(
        &common,
        "rss",
        parameters,
        &summary,
        &report,
        &result.timeline,
    )?;
    Ok(result.ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss_in_kilobytes() {
        let status = "Name:\twsd\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(4321 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: lots kB\n"), None);
    }

    #[test]
    fn parses_cpu_ticks_after_the_command_name() {
        let stat =
            "4242 (wsd (x) y) S 1 4242 4242 0 -1 4194560 300 0 0 0 17 5 0 0 20 0 1 0 99 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(22));
        assert_eq!(parse_cpu_ticks("4242 (wsd) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert!(clock_ticks_per_sec() > 0.0);
    }

    #[test]
    fn reads_own_rss() {
        let rss = vm_rss(std::process::id()).unwrap();
        assert!(rss > 0);
    }

    #[test]
    fn bytes_per_connection_can_be_negative_and_handles_zero() {
        assert_eq!(per_connection(1000, 3000, 4), 500.0);
        assert_eq!(per_connection(3000, 1000, 4), -500.0);
        assert_eq!(per_connection(1, 2, 0), 0.0);
    }

    #[test]
    fn nested_idle_parses_with_or_without_double_dash() {
        let words = |w: &str| w.split(' ').map(str::to_owned).collect::<Vec<_>>();
        for argv in [
            "idle --url ws://127.0.0.1:1/ -n 5",
            "-- idle --url ws://127.0.0.1:1/ -n 5",
        ] {
            let a = parse_nested(&words(argv)).unwrap();
            assert_eq!((a.n, a.url.as_str()), (5, "ws://127.0.0.1:1/"));
        }
        assert!(parse_nested(&words("echo --url ws://h/")).is_err());
        assert!(parse_nested(&words("idle")).is_err());
    }
}

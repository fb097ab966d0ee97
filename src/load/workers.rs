//! `wsd load idle` across processes: decides whether a run fits this process;
//! past the per-process fd budget it spawns copies of itself (`wsd load worker`), each holding a share of the
//! connections from its own source address (127.0.0.2, 127.0.0.3, ...) so neither
//! file descriptors nor ephemeral ports run out, and aggregates their results.
//!
//! Owns the parent side of the worker line protocol (`ready N`, `go`, `result
//! JSON`, whose result carries the worker's intervals when the run is sampled)
//! and the idle run's report. It must never wait unboundedly on a child: every
//! phase has a deadline, after which remaining workers are killed by PID and
//! reaped.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::idle::{run_local, IdleArgs, IdlePhase, IdleReport, IdleResult};
use super::report::Failures;
use super::timeline::{merge_by_index, Interval};
use super::{finish, raise_fd_limit, secs};

/// `wsd load idle`.
pub fn run(args: &IdleArgs) -> Result<bool, String> {
    let result = run_scenario(args, &mut |_, _| {})?;
    finish(
        &args.common,
        "idle",
        parameters(args),
        &result.summary(&args.url),
        &result.report(false),
        &result.timeline,
    )?;
    Ok(result.ok())
}

/// An idle run's parameters, as its report lists them.
pub fn parameters(args: &IdleArgs) -> serde_json::Value {
    args.common.parameters(serde_json::json!({
        "url": args.url,
        "connections": args.n,
        "duration_secs": args.duration,
        "ping_interval_secs": args.ping_interval,
        "rate": args.rate,
        "max_pending": args.max_pending,
        "per_process": args.per_process,
    }))
}

/// Runs the idle scenario in this process or, past the per-process budget, in
/// worker processes. `hook` observes the ramp's end and the hold's end.
pub fn run_scenario(
    args: &IdleArgs,
    hook: &mut dyn FnMut(IdlePhase, u64),
) -> Result<IdleResult, String> {
    if args.n == 0 {
        return Err("-n must be at least 1".into());
    }
    let limit = raise_fd_limit();
    // Leave room for the process's other fds; a tiny limit still gets half.
    let usable = limit.saturating_sub(64).max(limit / 2);
    let budget = args.per_process.min(usable).max(1);
    if args.n > budget {
        run_parent(args, budget, hook)
    } else {
        run_local(args, hook)
    }
}

/// One child process and what it said so far.
struct Worker {
    child: Child,
    n: u64,
    buf: Vec<u8>,
    ready: Option<u64>,
    result: Option<IdleResult>,
    eof: bool,
}

impl Worker {
    /// Reads what is available (the caller polled first) and parses full lines.
    fn read(&mut self) {
        let Some(out) = self.child.stdout.as_mut() else {
            self.eof = true;
            return;
        };
        let mut chunk = [0u8; 64 * 1024];
        match out.read(&mut chunk) {
            Ok(0) | Err(_) => self.eof = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if let Some(n) = line.strip_prefix("ready ") {
                self.ready = n.trim().parse().ok();
            } else if let Some(json) = line.strip_prefix("result ") {
                if let Ok(report) = serde_json::from_str::<IdleReport>(json) {
                    self.result = Some(report.into());
                }
            }
        }
    }

    fn stdout_fd(&self) -> Option<i32> {
        self.child.stdout.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Waits (at most `timeout`) for output from any worker not yet at EOF and reads it.
fn poll_workers(workers: &mut [Worker], timeout: Duration) {
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        if let (false, Some(fd)) = (w.eof, w.stdout_fd()) {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            owners.push(i);
        }
    }
    if fds.is_empty() {
        return;
    }
    let ms = timeout.as_millis().min(1000) as i32;
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return;
    }
    for (pfd, &i) in fds.iter().zip(&owners) {
        if pfd.revents != 0 {
            workers[i].read();
        }
    }
}

/// The source address of worker `i`: 127.0.0.(i+2).
fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (i + 2) as u8))
}

/// Runs `args.n` connections in `ceil(n / budget)` worker processes.
pub fn run_parent(
    args: &IdleArgs,
    budget: u64,
    hook: &mut dyn FnMut(IdlePhase, u64),
) -> Result<IdleResult, String> {
    let count = args.n.div_ceil(budget) as usize;
    if count > 250 {
        return Err(format!(
            "{} connections need {count} worker processes (at most 250 source addresses)",
            args.n
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    eprintln!(
        "idle: {} connections over {count} worker processes (at most {budget} each, sources 127.0.0.2..)",
        args.n
    );
    let mut workers: Vec<Worker> = Vec::with_capacity(count);
    for i in 0..count {
        let n = args.n / count as u64 + u64::from((i as u64) < args.n % count as u64);
        let mut cmd = Command::new(&exe);
        cmd.args(["load", "worker", "--url", &args.url])
            .args(["-n", &n.to_string()])
            .args(["--duration", &args.duration.to_string()])
            .args(["--max-pending", &args.max_pending.to_string()])
            .args(["--per-process", &n.to_string()])
            .args(["--ramp-timeout", &args.ramp_timeout.to_string()])
            .args(["--timeout", &args.common.timeout.to_string()])
            .args(["--progress", &args.common.progress.to_string()])
            .args(["--source-ip", &source_ip(i).to_string()])
            .args(["--sample-ms", &args.common.sample_ms.to_string()])
            .arg("--wait-go");
        if args.timeline || args.common.wants_report() {
            cmd.arg("--timeline");
            // One worker reads the server's /proc files: every worker doing it
            // would add the same RSS up once per worker.
            if let (0, Some(pid)) = (i, args.common.server_pid) {
                cmd.args(["--server-pid", &pid.to_string()]);
            }
        }
        if args.common.kernel_ports {
            cmd.arg("--kernel-ports");
        }
        if args.common.deflate {
            cmd.arg("--deflate");
        }
        if args.common.tls.insecure {
            cmd.arg("--insecure");
        }
        if let Some(ca) = &args.common.tls.ca {
            cmd.arg("--ca").arg(ca);
        }
        if let Some((lo, hi)) = args.common.local_ports {
            cmd.args(["--local-ports", &format!("{lo}-{hi}")]);
        }
        if let Some(k) = args.ping_interval {
            cmd.args(["--ping-interval", &k.to_string()]);
        }
        if let Some(r) = args.rate {
            cmd.args(["--rate", &(r / count as f64).to_string()]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match cmd.spawn() {
            Ok(child) => workers.push(Worker {
                child,
                n,
                buf: Vec::new(),
                ready: None,
                result: None,
                eof: false,
            }),
            Err(e) => {
                stop_all(&mut workers);
                return Err(format!("cannot spawn worker {i}: {e}"));
            }
        }
    }

    // Ramp: wait until every worker is ready (or gone).
    let ramp_start = Instant::now();
    let ramp_deadline =
        ramp_start + secs(args.ramp_timeout) + secs(args.common.timeout) + secs(10.0);
    while workers.iter().any(|w| w.ready.is_none() && !w.eof) && Instant::now() < ramp_deadline {
        poll_workers(&mut workers, Duration::from_millis(200));
    }
    let open: u64 = workers.iter().filter_map(|w| w.ready).sum();
    hook(IdlePhase::Ready, open);
    for w in &mut workers {
        if let Some(stdin) = w.child.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n");
            let _ = stdin.flush();
        }
    }

    // Hold: observe the hold's end shortly before the workers' own timers fire.
    let go = Instant::now();
    let hold = secs(args.duration);
    let observe_at = go + hold - secs(0.5).min(hold / 4);
    let mut observed = false;
    // After the hold each worker closes its connections before it reports:
    // closing a million takes about as long as opening them did.
    let end_deadline = go + hold + secs(30.0) + ramp_start.elapsed();
    while workers.iter().any(|w| w.result.is_none() && !w.eof) && Instant::now() < end_deadline {
        let now = Instant::now();
        if !observed && now >= observe_at {
            observed = true;
            hook(IdlePhase::HoldEnd, open);
        }
        let wait = if observed {
            Duration::from_millis(200)
        } else {
            (observe_at - now).min(Duration::from_millis(200))
        };
        poll_workers(&mut workers, wait);
    }
    if !observed {
        hook(IdlePhase::HoldEnd, open);
    }
    stop_all(&mut workers);

    let mut total = IdleResult::default();
    let timelines: Vec<&[Interval]> = workers
        .iter()
        .filter_map(|w| w.result.as_ref().map(|r| r.timeline.as_slice()))
        .collect();
    total.timeline = merge_by_index(&timelines);
    for (i, w) in workers.iter().enumerate() {
        match &w.result {
            Some(r) => total.merge(r),
            None => {
                let mut lost = IdleResult {
                    requested: w.n,
                    processes: 1,
                    ..IdleResult::default()
                };
                let mut f = Failures::default();
                f.add("worker_failed", w.n);
                lost.failures = f;
                lost.stopped = Some(format!("worker {i} reported no result"));
                total.merge(&lost);
            }
        }
    }
    Ok(total)
}

/// Closes the workers' stdin, gives them a moment, then kills by PID and reaps.
fn stop_all(workers: &mut [Worker]) {
    for w in workers.iter_mut() {
        drop(w.child.stdin.take());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for w in workers.iter_mut() {
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
            }
        }
    }
}

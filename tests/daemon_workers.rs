//! Behaviour tests of `[server] workers = 2`: one supervisor and two worker
//! processes sharing the listening port (SO_REUSEPORT): both serve, a killed
//! worker is restarted, SIGTERM drains every worker with close 1001 and the
//! supervisor exits 0, SIGHUP reaches every worker, reuseport never lets a
//! plain daemon share a port, and a chat route without a backplane is refused.
//!
//! Owns assertions on processes, exit statuses and what clients see. It must
//! never use anything but loopback, and every wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Wsd;
use raw::{close_payload, http_exchange, Raw, OP_CLOSE, OP_TEXT, WAIT};

const WORKERS: &str = r#"
[server]
workers = 2
[log]
level = "debug"
[timeouts]
ping_interval = "0s"
close = "5s"
shutdown = "5s"
[metrics]
listen = "127.0.0.1:0"
[[route]]
path = "/echo"
kind = "echo"
"#;

const SINGLE: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
[[route]]
path = "/echo"
kind = "echo"
"#;

/// Waits (bounded) for a line containing `needle`, keeping every line read
/// on the way in `seen`.
fn wait_line(wsd: &Wsd, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match wsd.log.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("no log line with {needle:?} within {WAIT:?}; saw {seen:#?}"),
        }
    }
}

/// Starts the workers config and waits until the supervisor says both are up.
fn start_workers() -> (Wsd, Vec<String>) {
    let wsd = Wsd::start(WORKERS);
    let mut seen = Vec::new();
    wait_line(&wsd, "supervisor: 2 workers ready", &mut seen);
    (wsd, seen)
}

/// The pids whose parent is `parent`, from /proc.
fn children(parent: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.insert(pid);
        }
    }
    out
}

/// Waits (bounded) until `parent` has exactly `n` children; returns them.
fn wait_children(parent: u32, n: usize) -> BTreeSet<u32> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = children(parent);
        if now.len() == n {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} children of {parent}, found {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

fn wait_exit(wsd: &mut Wsd) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = wsd.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the supervisor did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to the supervisor and a bounded wait for its exit status.
fn stop(mut wsd: Wsd) -> ExitStatus {
    signal(wsd.child.id(), "TERM");
    wait_exit(&mut wsd)
}

fn echo(addr: SocketAddr, text: &str) -> Raw {
    let mut ws = Raw::upgrade(addr, "/echo");
    ws.send_frame(true, OP_TEXT, text.as_bytes());
    assert_eq!(ws.expect_frame("an echo").payload, text.as_bytes());
    ws
}

/// Runs wsd to its exit (bounded); its status and stderr.
fn run_to_exit(config_toml: &str, args: &[&str]) -> (ExitStatus, String) {
    let dir = common::temp_dir("workers");
    let config = dir.join("wsd.toml");
    std::fs::write(&config, config_toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsd kept running: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (status, stderr)
}

/// The address after `marker` in `line`.
fn addr_after(line: &str, marker: &str) -> SocketAddr {
    line.split(marker)
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address after {marker:?} in {line:?}"))
}

#[test]
fn two_workers_share_the_port_and_both_serve() {
    let (wsd, seen) = start_workers();
    let workers = wait_children(wsd.child.id(), 2);

    // Port 0 became one port for both workers, main and metrics listeners.
    // (The first worker's "listening on" line went to Wsd::start.)
    let listening: Vec<SocketAddr> = seen
        .iter()
        .filter(|l| l.contains(": listening on "))
        .map(|l| addr_after(l, "listening on "))
        .collect();
    assert_eq!(listening, [wsd.addr], "{seen:#?}");
    let metrics: Vec<SocketAddr> = seen
        .iter()
        .filter(|l| l.contains(": metrics on "))
        .map(|l| addr_after(l, "metrics on "))
        .collect();
    assert_eq!(metrics.len(), 2, "{seen:#?}");
    assert_eq!(metrics[0], metrics[1], "one metrics port: {seen:#?}");
    let metrics = metrics[0];
    assert_ne!(metrics.port(), 0);
    let scrape = http_exchange(
        metrics,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(scrape.status, 200);

    // 40 clients, each echoed; the kernel spreads them over both workers.
    let clients: Vec<Raw> = (0..40)
        .map(|i| echo(wsd.addr, &format!("client {i}")))
        .collect();
    let mut accepted = [0usize; 2];
    let deadline = Instant::now() + WAIT;
    while accepted.iter().sum::<usize>() < clients.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = wsd
            .log
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("accepted lines: {accepted:?}"));
        for (n, count) in accepted.iter_mut().enumerate() {
            if line.contains(&format!("worker {}: conn ", n + 1)) && line.contains(": accepted") {
                *count += 1;
            }
        }
    }
    assert!(
        accepted.iter().all(|&n| n > 0),
        "both workers accepted some: {accepted:?}"
    );
    assert_eq!(children(wsd.child.id()), workers, "no worker restarted");
    drop(clients);
    assert_eq!(stop(wsd).code(), Some(0));
}

#[test]
fn a_killed_worker_is_restarted_and_new_clients_are_served() {
    let (wsd, mut seen) = start_workers();
    let before = wait_children(wsd.child.id(), 2);
    let victim = *before.iter().next().unwrap();
    signal(victim, "KILL");
    let exited = wait_line(
        &wsd,
        &format!("(pid {victim}) exited unexpectedly"),
        &mut seen,
    );
    assert!(exited.contains("SIGKILL"), "{exited}");
    let restarted = wait_line(&wsd, "restarted (pid ", &mut seen);
    let pid: u32 = restarted
        .split("restarted (pid ")
        .nth(1)
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .expect("the new pid");
    let after = wait_children(wsd.child.id(), 2);
    assert!(
        after.contains(&pid) && !after.contains(&victim),
        "{after:?}"
    );
    for i in 0..10 {
        echo(wsd.addr, &format!("after the restart {i}"));
    }
    assert_eq!(stop(wsd).code(), Some(0));
}

#[test]
fn sigterm_closes_clients_with_1001_and_every_process_exits() {
    let (mut wsd, _) = start_workers();
    let workers = wait_children(wsd.child.id(), 2);
    let mut clients: Vec<Raw> = (0..10).map(|i| echo(wsd.addr, &format!("{i}"))).collect();
    signal(wsd.child.id(), "TERM");
    for mut ws in clients.drain(..) {
        assert_eq!(ws.expect_close(), Some(1001));
        ws.send_frame(true, OP_CLOSE, &close_payload(1001, ""));
        // The worker shuts its side, then waits for ours.
        assert!(ws.wait_eof(WAIT));
    }
    let status = wait_exit(&mut wsd);
    assert_eq!(status.code(), Some(0));
    for pid in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is gone"
        );
    }
}

#[test]
fn sighup_reaches_every_worker() {
    let (wsd, mut seen) = start_workers();
    signal(wsd.child.id(), "HUP");
    let mut reloaded = BTreeSet::new();
    while reloaded.len() < 2 {
        let line = wait_line(&wsd, "SIGHUP: config reloaded", &mut seen);
        for n in 1..=2 {
            if line.contains(&format!("worker {n}: ")) {
                reloaded.insert(n);
            }
        }
    }
    let passed = "supervisor: SIGHUP: passed to 2 workers";
    if !seen.iter().any(|l| l.contains(passed)) {
        wait_line(&wsd, passed, &mut seen);
    }
    echo(wsd.addr, "after the reload");
    assert_eq!(stop(wsd).code(), Some(0));
}

#[test]
fn reuseport_is_only_for_workers() {
    // A plain daemon cannot join the workers' port...
    let (wsd, _) = start_workers();
    let port = wsd.addr.to_string();
    let (status, stderr) = run_to_exit(SINGLE, &["--listen", &port]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&port), "{stderr}");
    echo(wsd.addr, "still served");
    assert_eq!(stop(wsd).code(), Some(0));

    // ...and workers cannot join a plain daemon's: the supervisor exits 1.
    let single = Wsd::start(SINGLE);
    let port = single.addr.to_string();
    let (status, stderr) = run_to_exit(WORKERS, &["--listen", &port]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&port), "{stderr}");
    assert!(stderr.contains("exited before it was up"), "{stderr}");
    echo(single.addr, "still served");
}

#[test]
fn workers_with_a_chat_route_and_no_backplane_are_refused() {
    let config = r#"
[server]
workers = 2
[[route]]
path = "/chat"
kind = "chat"
"#;
    let (status, stderr) = run_to_exit(config, &["--listen", "127.0.0.1:0"]);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("workers"), "{stderr}");
}

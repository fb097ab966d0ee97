//! Behaviour tests of `wsd load`: each mode against a real `wsd` on loopback
//! with a few connections for a second or two, checking its JSON output; plus a
//! deliberately corrupting echo server (tungstenite in a test thread) to show that
//! mismatches are caught. Loopback only; every wait is bounded.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

const CONFIG: &str = r#"
[log]
level = "info"

[[route]]
path = "/echo"
kind = "echo"

[[route]]
path = "/chat"
kind = "chat"
"#;

/// Runs `wsd load ARGS` (at most 60 s); returns exit status, stdout, stderr.
fn load(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .arg("load")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsd load");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsd load {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

/// Parses the JSON document on stdout.
fn json(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout:?}\nstderr: {stderr}"))
}

/// The number at a dotted path of keys, e.g. `latency.p99_us`.
fn num(j: &Value, path: &str) -> f64 {
    j.pointer(&format!("/{}", path.replace('.', "/")))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in {j}"))
}

#[test]
fn idle_opens_holds_pings_and_closes_every_connection() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let (status, out, err) = load(&[
        "idle",
        "--url",
        &url,
        "-n",
        "20",
        "--duration",
        "1",
        "--ping-interval",
        "0.4",
        "--json",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    assert_eq!(j.get("mode").and_then(Value::as_str), Some("idle"));
    assert_eq!(num(&j, "successes"), 20.0);
    assert_eq!(num(&j, "failed"), 0.0);
    assert_eq!(num(&j, "held"), 20.0);
    assert_eq!(num(&j, "handshake_latency.count"), 20.0);
    assert!(num(&j, "handshakes_per_sec") > 0.0);
    assert!(num(&j, "pings_sent") >= 20.0);
    assert_eq!(num(&j, "pongs_received"), num(&j, "pings_sent"));
    assert_eq!(num(&j, "closed_clean"), 20.0);
    assert!(err.contains("20 of 20 connections established"), "{err}");
}

#[test]
fn idle_spreads_over_worker_processes_past_the_per_process_budget() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let (status, out, err) = load(&[
        "idle",
        "--url",
        &url,
        "-n",
        "25",
        "--per-process",
        "10",
        "--duration",
        "1",
        "--json",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    assert_eq!(num(&j, "processes"), 3.0);
    assert_eq!(num(&j, "successes"), 25.0);
    assert_eq!(num(&j, "held"), 25.0);
    assert_eq!(num(&j, "handshake_latency.count"), 25.0);
    assert!(err.contains("over 3 worker processes"), "{err}");
}

#[test]
fn idle_counts_refused_connections_and_fails() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/echo");
    let (status, out, err) = load(&[
        "idle",
        "--url",
        &url,
        "-n",
        "5",
        "--duration",
        "0.1",
        "--json",
    ]);
    assert_eq!(status.code(), Some(2), "{err}");
    let j = json(&out, &err);
    assert_eq!(num(&j, "successes"), 0.0);
    assert_eq!(num(&j, "failures.refused"), 5.0);
}

#[test]
fn idle_says_when_its_local_ports_run_out() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    // Five local ports (outside the ephemeral range) for ten connections.
    let (status, out, err) = load(&[
        "idle",
        "--url",
        &url,
        "-n",
        "10",
        "--local-ports",
        "61200-61204",
        "--duration",
        "0.2",
        "--json",
    ]);
    assert_eq!(status.code(), Some(2), "{err}");
    let j = json(&out, &err);
    let ok = num(&j, "successes");
    assert!((1.0..=5.0).contains(&ok), "{j}");
    assert_eq!(num(&j, "failures.eaddrnotavail"), 1.0, "{j}");
    let why = j.get("stopped_early").and_then(Value::as_str).unwrap_or("");
    assert!(
        why.contains("ran out of ephemeral ports (EADDRNOTAVAIL)"),
        "{j}"
    );
    assert!(
        err.contains("STOPPED EARLY: ran out of ephemeral ports"),
        "{err}"
    );
}

#[test]
fn idle_worker_says_when_it_runs_out_of_file_descriptors() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    // A worker process (the code path behind every idle run) under a 64-fd limit.
    let script = format!(
        "ulimit -n 64 && exec '{}' load worker --url {url} -n 100 --duration 0.2 --progress 0",
        env!("CARGO_BIN_EXE_wsd")
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "worker did not finish in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .unwrap_or_else(|| panic!("no result line: {out:?}\n{err}"));
    let j = json(result, &err);
    assert_eq!(num(&j, "failures.emfile"), 1.0, "{j}");
    let ok = num(&j, "successes");
    assert!(ok > 0.0 && ok < 64.0, "{j}");
    let why = j.get("stopped_early").and_then(Value::as_str).unwrap_or("");
    assert!(why.contains("hit EMFILE (out of file descriptors)"), "{j}");
    assert!(err.contains("hit EMFILE"), "{err}");
}

#[test]
fn echo_text_pipelined_is_verified_and_measured() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let (status, out, err) = load(&[
        "echo",
        "--url",
        &url,
        "-c",
        "3",
        "-p",
        "4",
        "-s",
        "100",
        "--duration",
        "1",
        "--json",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    assert_eq!(num(&j, "successes"), 3.0);
    assert_eq!(num(&j, "mismatches"), 0.0);
    assert_eq!(num(&j, "unanswered"), 0.0);
    assert!(num(&j, "received") > 0.0);
    assert_eq!(num(&j, "received"), num(&j, "sent"));
    assert_eq!(num(&j, "latency.count"), num(&j, "received"));
    assert!(num(&j, "messages_per_sec") > 0.0);
    assert_eq!(
        num(&j, "bytes_per_sec"),
        num(&j, "messages_per_sec") * 100.0
    );
    assert!(num(&j, "latency.p99_us") >= num(&j, "latency.p50_us"));
}

#[test]
fn echo_binary_large_messages_are_verified() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let (status, out, err) = load(&[
        "echo",
        "--url",
        &url,
        "-c",
        "2",
        "-p",
        "2",
        "-s",
        "70000",
        "--binary",
        "--duration",
        "1",
        "--json",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    assert_eq!(j.get("binary"), Some(&Value::Bool(true)));
    assert_eq!(num(&j, "mismatches"), 0.0);
    assert!(num(&j, "received") > 0.0);
}

#[test]
fn echo_detects_a_server_that_corrupts_payloads() {
    // An independent echo server that flips one byte of every third message.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let mut n = 0u64;
        while let Ok(msg) = ws.read() {
            if let Message::Text(t) = msg {
                n += 1;
                let mut bytes = t.as_bytes().to_vec();
                if n % 3 == 0 {
                    let last = bytes.len() - 1;
                    bytes[last] = if bytes[last] == b'x' { b'y' } else { b'x' };
                }
                let text = String::from_utf8(bytes).unwrap();
                if ws.send(Message::text(text)).is_err() {
                    break;
                }
            }
        }
    });
    let url = format!("ws://{addr}/echo");
    let (status, out, err) = load(&[
        "echo",
        "--url",
        &url,
        "-c",
        "1",
        "-p",
        "1",
        "-s",
        "32",
        "--duration",
        "0.5",
        "--json",
    ]);
    assert_eq!(status.code(), Some(2), "{err}");
    let j = json(&out, &err);
    let received = num(&j, "received");
    let mismatches = num(&j, "mismatches");
    assert!(received >= 3.0, "{j}");
    assert_eq!(mismatches, (received / 3.0).floor(), "{j}");
    assert!(err.contains("MISMATCH: connection"), "{err}");
}

#[test]
fn broadcast_delivers_every_message_to_every_member() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/chat?room=bench");
    let (status, out, err) = load(&["broadcast", "--url", &url, "-c", "5", "-m", "100", "--json"]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    assert_eq!(num(&j, "successes"), 5.0);
    assert_eq!(num(&j, "sent"), 100.0);
    assert_eq!(num(&j, "deliveries"), 500.0);
    assert_eq!(num(&j, "lost"), 0.0);
    assert_eq!(num(&j, "out_of_order"), 0.0);
    assert_eq!(num(&j, "latency.count"), 500.0);
    assert!(num(&j, "deliveries_per_sec") > 0.0);
}

#[test]
fn rss_reports_server_memory_around_an_idle_run() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let pid = wsd.child.id().to_string();
    let (status, out, err) = load(&[
        "rss",
        "--pid",
        &pid,
        "--json",
        "--",
        "idle",
        "--url",
        &url,
        "-n",
        "50",
        "--duration",
        "1",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    assert_eq!(j.get("mode").and_then(Value::as_str), Some("rss"));
    assert!(num(&j, "rss_before_bytes") > 0.0);
    assert!(num(&j, "rss_held_bytes") > 0.0);
    assert_eq!(num(&j, "open_held"), 50.0);
    assert_eq!(num(&j, "idle.successes"), 50.0);
    let per_conn = num(&j, "bytes_per_connection");
    let expected = (num(&j, "rss_held_bytes") - num(&j, "rss_before_bytes")) / 50.0;
    assert!((per_conn - expected).abs() < 1.0, "{j}");
}

#[test]
fn rss_of_a_missing_process_is_an_error() {
    let (status, _, err) = load(&[
        "rss",
        "--pid",
        "999999999",
        "idle",
        "--url",
        "ws://127.0.0.1:1/",
        "-n",
        "1",
    ]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("/proc/999999999/status"), "{err}");
}

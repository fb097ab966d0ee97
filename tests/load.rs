//! Behaviour tests of `wsd load`: each mode against a real `wsd` on loopback
//! with a few connections for a second or two, checking its JSON output; plus a
//! deliberately corrupting echo server (tungstenite in a test thread) to show that
//! mismatches are caught; and the run reports (`--report`, `--report-json`) and
//! `wsd load compare`, read back and checked against the run's own JSON.
//! Loopback only; every wait is bounded.

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

/// The text of `"key":VALUE` in a JSON document as printed (no re-encoding).
fn raw_json_value<'a>(json_text: &'a str, key: &str) -> &'a str {
    let at = json_text
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json_text}"));
    let rest = &json_text[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

/// The `<svg>...</svg>` elements of a page.
fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..]
            .find("</svg>")
            .unwrap_or_else(|| panic!("unbalanced <svg> in the report"));
        out.push(&rest[start..start + end + "</svg>".len()]);
        rest = &rest[start + end + "</svg>".len()..];
    }
    out
}

/// The stroke colour of each `<polyline>` of a series in an SVG (axes and
/// ticks, drawn in black, are left out).
fn series_colours(svg: &str) -> Vec<&str> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|t| t.split("stroke=\"").nth(1)?.split('"').next())
        .filter(|c| *c != "#000000")
        .collect()
}

/// The point lists of every series `<polyline>` in an SVG, as (x, y) pairs.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .filter(|tail| {
            !tail
                .split('>')
                .next()
                .unwrap_or("")
                .contains("stroke=\"#000000\"")
        })
        .map(|tail| {
            let points = tail
                .split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .unwrap_or("");
            points
                .split_whitespace()
                .filter_map(|xy| {
                    let (x, y) = xy.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect()
        })
        .collect()
}

/// Checks a run's HTML page: a self-contained document with one balanced
/// `<svg>` per expected chart title, in order, each drawing at least one series
/// (a polyline of several points spanning some width); returns the charts.
fn check_report_page<'a>(html: &'a str, titles: &[&str]) -> Vec<&'a str> {
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    for attr in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
    ] {
        assert!(!html.contains(attr), "external reference {attr}");
    }
    assert!(!html.contains("<script"), "no script needed");
    let charts = svgs(html);
    assert_eq!(charts.len(), titles.len(), "one <svg> per chart");
    for (svg, title) in charts.iter().zip(titles) {
        assert!(svg.contains(&format!(">\n{title}\n</text>")), "{title}");
        let drawn = polylines(svg).into_iter().any(|p| {
            let xs = p.iter().map(|(x, _)| *x);
            p.len() > 1 && xs.clone().fold(f64::MIN, f64::max) - xs.fold(f64::MAX, f64::min) > 5.0
        });
        assert!(drawn, "{title}: no series drawn");
    }
    charts
}

/// The `<td>` of a summary key in the page's summary table.
fn summary_cell(html: &str, key: &str) -> String {
    let th = format!("<tr><th>{key}</th><td class=\"num\">");
    let at = html
        .find(&th)
        .unwrap_or_else(|| panic!("no summary row {key}"));
    let rest = &html[at + th.len()..];
    rest[..rest.find("</td>").unwrap()].to_owned()
}

/// Reads a `--report-json` file.
fn report_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The samples of a report, checked for the documented keys.
fn samples(report: &Value) -> Vec<Value> {
    let samples = report["samples"].as_array().expect("samples").clone();
    assert!(!samples.is_empty(), "{report}");
    for s in &samples {
        for key in [
            "t_secs",
            "open",
            "handshakes_per_sec",
            "messages_per_sec",
            "latency_p50_us",
            "latency_p99_us",
            "latency_max_us",
        ] {
            assert!(s[key].is_number(), "{key} in {s}");
        }
        assert!(s["errors"].is_object(), "{s}");
    }
    samples
}

/// The integral of a per-second rate over the samples: the count it stands for.
fn integral(samples: &[Value], rate: &str) -> f64 {
    let mut from = 0.0;
    let mut total = 0.0;
    for s in samples {
        let t = s["t_secs"].as_f64().unwrap();
        total += s[rate].as_f64().unwrap() * (t - from);
        from = t;
    }
    total
}

#[test]
fn echo_report_charts_the_run_and_matches_its_summary() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let dir = common::temp_dir("echo-report");
    let (html_path, json_path) = (dir.join("r.html"), dir.join("r.json"));
    let pid = wsd.child.id().to_string();
    let (status, out, err) = load(&[
        "echo",
        "--url",
        &url,
        "-c",
        "4",
        "-s",
        "64",
        "--duration",
        "1",
        "--report",
        html_path.to_str().unwrap(),
        "--report-json",
        json_path.to_str().unwrap(),
        "--json",
        "--server-pid",
        &pid,
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_report_page(
        &html,
        &[
            "Connections open",
            "Messages per second",
            "Round-trip latency",
            "Errors by cause",
            "Server RSS (MiB)",
            "Server CPU (% of one core)",
        ],
    );
    assert!(html.contains("no errors in this run"));
    for key in [
        "messages_per_sec",
        "successes",
        "received",
        "latency.p99_us",
    ] {
        let printed = raw_json_value(out.trim(), key.rsplit('.').next().unwrap());
        assert_eq!(summary_cell(&html, key), printed, "{key}");
    }

    let r = report_json(&json_path);
    assert_eq!(r["mode"], "echo");
    assert_eq!(r["summary"], j, "the summary is the --json object");
    assert_eq!(r["interval_ms"], 200);
    assert_eq!(r["parameters"]["connections"], 4);
    let samples = samples(&r);
    assert!(
        samples.len() >= 5,
        "{} samples in 1 s of sending",
        samples.len()
    );
    let received = num(&j, "received");
    let counted = integral(&samples, "messages_per_sec");
    assert!(
        (counted - received).abs() <= 1.0 + received * 0.01,
        "{counted} vs {received}"
    );
    let most_open = samples.iter().filter_map(|s| s["open"].as_u64()).max();
    assert_eq!(
        (most_open, &samples[samples.len() - 1]["open"]),
        (Some(4), &Value::from(4))
    );
    assert!(samples
        .iter()
        .all(|s| s["server_rss_bytes"].as_u64().unwrap_or(0) > 0));
    assert!(samples
        .iter()
        .any(|s| s["server_cpu_percent"].as_f64() > Some(0.0)));
    assert!(samples.iter().any(
        |s| s["latency_p99_us"].as_f64() >= s["latency_p50_us"].as_f64()
            && s["latency_p50_us"].as_f64() > Some(0.0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_report_covers_the_ramp_and_the_hold() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let dir = common::temp_dir("idle-report");
    let (html_path, json_path) = (dir.join("r.html"), dir.join("r.json"));
    let pid = wsd.child.id().to_string();
    let (status, out, err) = load(&[
        "idle",
        "--url",
        &url,
        "-n",
        "50",
        "--duration",
        "1",
        "--report",
        html_path.to_str().unwrap(),
        "--report-json",
        json_path.to_str().unwrap(),
        "--json",
        "--server-pid",
        &pid,
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let j = json(&out, &err);
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_report_page(
        &html,
        &[
            "Connections open",
            "Handshakes per second",
            "Handshake latency",
            "Errors by cause",
            "Server RSS (MiB)",
            "Server CPU (% of one core)",
        ],
    );
    for key in ["successes", "handshakes_per_sec", "held"] {
        assert_eq!(
            summary_cell(&html, key),
            raw_json_value(out.trim(), key),
            "{key}"
        );
    }
    let r = report_json(&json_path);
    assert_eq!(r["mode"], "idle");
    assert_eq!(r["summary"], j);
    let samples = samples(&r);
    let last = samples.last().unwrap();
    assert!(
        last["t_secs"].as_f64().unwrap() >= 1.0,
        "the hold is sampled"
    );
    assert_eq!(last["open"], 50);
    let handshakes = integral(&samples, "handshakes_per_sec");
    assert!((handshakes - 50.0).abs() < 0.5, "{handshakes}");
    assert!(
        samples[..samples.len() - 1]
            .iter()
            .any(|s| s["handshakes_per_sec"].as_f64() > Some(0.0)),
        "the ramp is sampled"
    );
    assert!(samples
        .iter()
        .all(|s| s["server_rss_bytes"].as_u64().unwrap_or(0) > 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_workers_hand_their_samples_to_the_parent() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let dir = common::temp_dir("idle-workers-report");
    let json_path = dir.join("r.json");
    let pid = wsd.child.id().to_string();
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
        "--report-json",
        json_path.to_str().unwrap(),
        "--server-pid",
        &pid,
        "--sample-ms",
        "100",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    assert!(out.contains("25 of 25 connections established"), "{out}");
    let r = report_json(&json_path);
    assert_eq!(r["interval_ms"], 100);
    assert_eq!(r["summary"]["processes"], 3);
    let samples = samples(&r);
    let most_open = samples.iter().filter_map(|s| s["open"].as_u64()).max();
    assert_eq!(
        most_open,
        Some(25),
        "open connections add up across workers"
    );
    let handshakes = integral(&samples, "handshakes_per_sec");
    assert!((handshakes - 25.0).abs() < 0.5, "{handshakes}");
    assert!(samples
        .iter()
        .all(|s| s["server_rss_bytes"].as_u64().unwrap_or(0) > 0));
    assert!(samples
        .iter()
        .any(|s| s["latency_max_us"].as_f64() > Some(0.0)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rss_report_samples_the_measured_process() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let dir = common::temp_dir("rss-report");
    let json_path = dir.join("r.json");
    let pid = wsd.child.id().to_string();
    let (status, out, err) = load(&[
        "rss",
        "--pid",
        &pid,
        "--json",
        "--report-json",
        json_path.to_str().unwrap(),
        "--",
        "idle",
        "--url",
        &url,
        "-n",
        "20",
        "--duration",
        "0.5",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    let r = report_json(&json_path);
    assert_eq!(r["mode"], "rss");
    assert_eq!(r["summary"], json(&out, &err));
    assert_eq!(r["parameters"]["idle"]["connections"], 20);
    let samples = samples(&r);
    assert!(samples
        .iter()
        .all(|s| s["server_rss_bytes"].as_u64().unwrap_or(0) > 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_draws_both_runs_and_refuses_mixed_modes() {
    let wsd = common::Wsd::start(CONFIG);
    let url = wsd.url("/echo");
    let dir = common::temp_dir("compare");
    let pid = wsd.child.id().to_string();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    for (name, pipeline) in [("a.json", "1"), ("b.json", "4")] {
        let (status, _, err) = load(&[
            "echo",
            "--url",
            &url,
            "-c",
            "2",
            "-p",
            pipeline,
            "--duration",
            "0.6",
            "--report-json",
            &path(name),
            "--server-pid",
            &pid,
        ]);
        assert!(status.success(), "{status:?}\n{err}");
    }
    let (status, out, err) = load(&[
        "compare",
        &path("a.json"),
        &path("b.json"),
        "--report",
        &path("cmp.html"),
        "--labels",
        "wsd,peer",
    ]);
    assert!(status.success(), "{status:?}\n{err}");
    assert!(out.contains("ratio wsd/peer"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("messages/s"))
        .unwrap_or_else(|| panic!("no messages/s row: {out}"));
    assert_eq!(row.split_whitespace().count(), 4, "{row}");
    for metric in [
        "round trip p50 (us)",
        "round trip p99 (us)",
        "server CPU",
        "server RSS",
    ] {
        assert!(out.contains(metric), "{metric}: {out}");
    }
    let html = std::fs::read_to_string(path("cmp.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<th>ratio wsd/peer</th>"), "the ratio column");
    assert!(html.contains("<td>messages/s</td>"));
    let charts = svgs(&html);
    assert!(charts.len() >= 6, "{}", charts.len());
    for svg in &charts {
        assert!(svg.contains(">\nwsd\n</text>") && svg.contains(">\npeer\n</text>"));
        let colours: std::collections::BTreeSet<&str> = series_colours(svg).into_iter().collect();
        assert_eq!(colours.len(), 2, "two series: {colours:?}");
    }

    // An idle report is not comparable with an echo report.
    let (status, _, err) = load(&[
        "idle",
        "--url",
        &url,
        "-n",
        "3",
        "--duration",
        "0.2",
        "--report-json",
        &path("idle.json"),
    ]);
    assert!(status.success(), "{err}");
    let (status, _, err) = load(&["compare", &path("a.json"), &path("idle.json")]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("same mode"), "{err}");
    // A missing or unreadable file is named.
    let (status, _, err) = load(&["compare", &path("a.json"), &path("missing.json")]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("missing.json"), "{err}");
    std::fs::write(path("junk.json"), "not json").unwrap();
    let (status, _, err) = load(&["compare", &path("junk.json"), &path("a.json")]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("junk.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

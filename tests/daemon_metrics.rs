//! Behaviour tests of the operator endpoints over loopback: `/metrics` after
//! known traffic (the text format parsed, exact counter values checked),
//! `/healthz` and `/readyz` on the metrics listener and, with
//! `health_on_main`, on the main one; `/readyz` turning 503 on SIGTERM while
//! the main listener still accepts (drain_delay), then the main listener
//! closing while the metrics one answers until the end.
//!
//! Owns assertions on what independent clients (tungstenite, raw sockets)
//! see. It must never depend on the daemon's internals; every wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Wsd;
use raw::{http_exchange, upgrade_status, Raw};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
[metrics]
listen = "127.0.0.1:0"

[[route]]
path = "/echo"
kind = "echo"

[[route]]
path = "/chat"
kind = "chat"
announce = false
origins = ["https://good.example"]
"#;

/// The metrics listener's address, from its start-up log line.
fn metrics_addr(wsd: &Wsd) -> SocketAddr {
    let line = wsd
        .wait_for_log("metrics on ", Duration::from_secs(5))
        .expect("a `metrics on ADDR` log line");
    line.split("metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

fn get(addr: SocketAddr, path: &str) -> raw::Response {
    http_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Parses the text format: every sample line as `name{labels}` -> value; also
/// checks that each sample's family was declared (`# TYPE`) before it.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.body_text();
    let mut declared: Vec<String> = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(!declared.contains(&name), "{name} declared twice");
            declared.push(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| declared.iter().any(|d| d == f))
            .unwrap_or(name);
        assert!(declared.iter().any(|d| d == family), "undeclared {line}");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

fn client(wsd: &Wsd, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    tungstenite::client(wsd.url(path), stream)
        .expect("handshake")
        .0
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let wsd = Wsd::start(CONFIG);
    let metrics = metrics_addr(&wsd);
    let before = scrape(metrics);
    assert_eq!(value(&before, "wsd_handshakes_total"), 0.0);
    assert_eq!(
        value(&before, r#"wsd_messages_received_total{route="/echo"}"#),
        0.0
    );
    assert_eq!(value(&before, r#"wsd_refused_total{reason="origin"}"#), 0.0);

    // Two echo clients, 10 messages of 5 bytes each; one leaves with 1000.
    let mut a = client(&wsd, "/echo");
    let mut b = client(&wsd, "/echo");
    for ws in [&mut a, &mut b] {
        for i in 0..10 {
            ws.send(Message::text(format!("msg-{i}"))).unwrap();
        }
        for i in 0..10 {
            assert_eq!(ws.read().unwrap(), Message::text(format!("msg-{i}")));
        }
    }
    a.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .unwrap();
    while a.read().is_ok() {}
    drop(a);
    // Two refusals by policy and a request that is not HTTP.
    assert_eq!(upgrade_status(wsd.addr, "/nowhere", "").status, 404);
    assert_eq!(
        upgrade_status(wsd.addr, "/chat", "Origin: https://evil.example\r\n").status,
        403
    );
    let garbage = http_exchange(wsd.addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(garbage.status, 400);

    // The close is counted once the server has seen it; poll briefly for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = scrape(metrics);
        if s.get(r#"wsd_closes_received_total{code="1000"}"#) == Some(&1.0)
            && value(&s, r#"wsd_websockets_open{route="/echo"}"#) == 1.0
            && value(&s, "wsd_connections_open") == 2.0
        {
            break s;
        }
        assert!(Instant::now() < deadline, "the close never showed: {s:#?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let echo = |name: &str| value(&after, &format!("{name}{{route=\"/echo\"}}"));
    assert_eq!(echo("wsd_messages_received_total"), 20.0);
    assert_eq!(echo("wsd_messages_sent_total"), 20.0);
    assert_eq!(echo("wsd_message_bytes_received_total"), 100.0);
    assert_eq!(echo("wsd_message_bytes_sent_total"), 100.0);
    assert_eq!(echo("wsd_websockets_open"), 1.0);
    assert_eq!(value(&after, r#"wsd_websockets_open{route="/chat"}"#), 0.0);
    assert_eq!(value(&after, "wsd_handshakes_total"), 2.0);
    assert_eq!(
        value(&after, r#"wsd_refused_total{reason="no_route"}"#),
        1.0
    );
    assert_eq!(value(&after, r#"wsd_refused_total{reason="origin"}"#), 1.0);
    assert_eq!(
        value(&after, r#"wsd_refused_total{reason="bad_request"}"#),
        1.0
    );
    assert_eq!(value(&after, r#"wsd_refused_total{reason="limit"}"#), 0.0);
    assert_eq!(
        value(&after, r#"wsd_closes_received_total{code="1000"}"#),
        1.0
    );
    assert_eq!(value(&after, "wsd_protocol_errors_total"), 0.0);
    assert_eq!(value(&after, r#"wsd_rooms{route="/chat"}"#), 0.0);
    // Open now: client b and this scrape's own connection.
    assert_eq!(value(&after, "wsd_connections_open"), 2.0);
    let turns = value(&after, "wsd_loop_turn_duration_seconds_count");
    assert!(turns > 0.0);
    assert_eq!(
        value(
            &after,
            r#"wsd_loop_turn_duration_seconds_bucket{le="+Inf"}"#
        ),
        turns
    );
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(value(&after, "process_open_fds") >= 5.0);
    assert_eq!(value(&after, "wsd_draining"), 0.0);
    drop(b);
}

#[test]
fn the_metrics_listener_answers_health_and_nothing_else() {
    let wsd = Wsd::start(CONFIG);
    let metrics = metrics_addr(&wsd);
    let health = get(metrics, "/healthz");
    assert_eq!((health.status, health.body_text().as_str()), (200, "ok\n"));
    assert_eq!(get(metrics, "/readyz").status, 200);
    assert_eq!(get(metrics, "/echo").status, 404);
    assert_eq!(upgrade_status(metrics, "/echo", "").status, 404);
    let post = http_exchange(
        metrics,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        (post.status, post.header("Allow")),
        (405, Some("GET, HEAD"))
    );
    let head = http_exchange(metrics, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // The main listener has no /metrics, and without health_on_main no health.
    assert_ne!(get(wsd.addr, "/metrics").status, 200);
    assert_ne!(get(wsd.addr, "/healthz").status, 200);
}

#[test]
fn health_on_main_answers_on_the_websocket_port() {
    let config = CONFIG.replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nhealth_on_main = true",
    );
    let wsd = Wsd::start(&config);
    let health = get(wsd.addr, "/healthz");
    assert_eq!((health.status, health.body_text().as_str()), (200, "ok\n"));
    assert_eq!(get(wsd.addr, "/readyz").status, 200);
    assert_ne!(get(wsd.addr, "/metrics").status, 200);
}

#[test]
fn readyz_turns_503_on_sigterm_before_the_listeners_close() {
    let config = CONFIG.replace(
        "ping_interval = \"0s\"",
        "ping_interval = \"0s\"\ndrain_delay = \"1500ms\"\nshutdown = \"3s\"",
    );
    let mut wsd = Wsd::start(&config);
    let metrics = metrics_addr(&wsd);
    // A WebSocket client that will never answer the server's close keeps the
    // drain going until the shutdown timeout.
    let mut silent = Raw::upgrade(wsd.addr, "/echo");
    assert_eq!(get(metrics, "/readyz").status, 200);
    let sent = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &wsd.child.id().to_string()])
        .status();
    // Draining: not ready, still alive, and the main listener still accepts.
    let deadline = Instant::now() + Duration::from_secs(1);
    while get(metrics, "/readyz").status != 503 {
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sent.elapsed() < Duration::from_millis(1500));
    assert_eq!(get(metrics, "/readyz").body_text(), "draining\n");
    assert_eq!(get(metrics, "/healthz").status, 200);
    let mut late = client(&wsd, "/echo");
    late.send(Message::text("still here")).unwrap();
    assert_eq!(late.read().unwrap(), Message::text("still here"));
    assert_eq!(value(&scrape(metrics), "wsd_draining"), 1.0);
    // After the delay: the WebSockets get 1001 and the main listener closes,
    // while the metrics listener keeps answering 503.
    match late.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(sent.elapsed() >= Duration::from_millis(1400));
    assert!(
        TcpStream::connect(wsd.addr).is_err(),
        "the main listener is still open"
    );
    assert_eq!(get(metrics, "/readyz").status, 503);
    assert_eq!(silent.expect_close(), Some(1001));
    let status = wsd.terminate(Duration::from_secs(10)).expect("wsd exits");
    assert!(status.success(), "{status:?}");
}

//! Behaviour tests of the status route (`kind = "status"`) over loopback: every
//! watcher gets one JSON snapshot per second with the documented fields, the
//! counters move with known echo and chat traffic, closes show up by code, and
//! nothing is measured before anyone watches.
//!
//! Owns assertions on what tungstenite clients receive. It must never depend on
//! the daemon's internals; every wait is bounded.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Wsd;
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"

[[route]]
path = "/echo"
kind = "echo"

[[route]]
path = "/chat"
kind = "chat"
announce = false

[[route]]
path = "/status"
kind = "status"
"#;

type Client = tungstenite::WebSocket<TcpStream>;

fn open(wsd: &Wsd, path: &str) -> Client {
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (ws, response) = tungstenite::client(wsd.url(path), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next status snapshot (at most 5 s away).
fn snapshot(watcher: &mut Client) -> Value {
    loop {
        match watcher.read().expect("a snapshot within 5 s") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("snapshot is JSON");
                assert_eq!(v["type"], "status", "{v}");
                return v;
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
}

fn route<'a>(s: &'a Value, path: &str) -> &'a Value {
    s["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["path"] == path))
        .unwrap_or_else(|| panic!("route {path} missing from {s}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn snapshots_carry_the_documented_fields_and_follow_known_traffic() {
    let mut wsd = Wsd::start(CONFIG);
    // Traffic before anyone watches: it is in the totals, but no turn was timed.
    let mut early = open(&wsd, "/echo");
    early.send(Message::text("before")).unwrap();
    assert_eq!(early.read().unwrap(), Message::text("before"));

    let mut watcher = open(&wsd, "/status");
    let first = snapshot(&mut watcher);
    for field in [
        "uptime_secs",
        "interval_secs",
        "rss_bytes",
        "open_fds",
        "rooms",
        "members",
    ] {
        assert!(first[field].is_number(), "{field} in {first}");
    }
    for (object, fields) in [
        (
            "connections",
            &["total", "http", "file", "websocket", "closing"][..],
        ),
        (
            "rates",
            &[
                "accepted_per_sec",
                "handshakes_per_sec",
                "messages_in_per_sec",
                "messages_out_per_sec",
                "bytes_in_per_sec",
                "bytes_out_per_sec",
            ][..],
        ),
        (
            "totals",
            &[
                "accepted",
                "refused",
                "handshakes",
                "messages_in",
                "messages_out",
                "bytes_in",
                "bytes_out",
            ][..],
        ),
        ("loop_turns", &["turns", "p50_us", "p99_us", "max_us"][..]),
        ("closes_last_minute", &["window_secs"][..]),
    ] {
        for f in fields {
            assert!(first[object][f].is_number(), "{object}.{f} in {first}");
        }
    }
    assert!(first["closes_last_minute"]["sent"].is_object());
    assert!(first["closes_last_minute"]["received"].is_object());
    assert_eq!(
        u(&first["loop_turns"]["turns"]),
        0,
        "turns timed before anyone watched"
    );
    assert!(u(&first["rss_bytes"]) > 1 << 20 && u(&first["open_fds"]) >= 4);
    assert!(u(&first["totals"]["messages_in"]) >= 1);
    assert_eq!(u(&route(&first, "/status")["connections"]), 1);
    assert_eq!(u(&route(&first, "/echo")["connections"]), 1);
    assert_eq!(route(&first, "/chat")["kind"], "chat");
    let base_in = u(&first["totals"]["messages_in"]);
    let base_out = u(&first["totals"]["messages_out"]);

    // Known traffic: 3 echo clients x 100 messages, 2 chat members in one room
    // (one message each, each delivered to both), and one echo client leaving
    // with 1000.
    let mut echoes: Vec<Client> = (0..3).map(|_| open(&wsd, "/echo")).collect();
    for ws in &mut echoes {
        for i in 0..100 {
            ws.send(Message::text(format!("m{i}"))).unwrap();
        }
        for i in 0..100 {
            assert_eq!(ws.read().unwrap(), Message::text(format!("m{i}")));
        }
    }
    let mut chat: Vec<Client> = (0..2).map(|_| open(&wsd, "/chat?room=a")).collect();
    for (i, ws) in chat.iter_mut().enumerate() {
        ws.send(Message::text(format!("hello {i}"))).unwrap();
    }
    for ws in &mut chat {
        for _ in 0..2 {
            assert!(matches!(ws.read().unwrap(), Message::Text(_)));
        }
    }
    early
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .unwrap();
    while early.read().is_ok() {}

    let mut saw_rate = false;
    // Snapshots count among the messages out once sent: the first one so far.
    let mut snapshots_sent = 1;
    let deadline = Instant::now() + Duration::from_secs(8);
    let last = loop {
        let s = snapshot(&mut watcher);
        saw_rate |= s["rates"]["messages_in_per_sec"].as_f64().unwrap_or(0.0) > 0.0;
        let settled = u(&s["totals"]["messages_in"]) >= base_in + 302
            && u(&route(&s, "/echo")["connections"]) == 3
            && s["closes_last_minute"]["received"]["1000"].as_u64() == Some(1);
        if settled || Instant::now() > deadline {
            break s;
        }
        snapshots_sent += 1;
    };
    assert_eq!(u(&last["totals"]["messages_in"]), base_in + 302, "{last}");
    assert_eq!(
        u(&last["totals"]["messages_out"]),
        base_out + 304 + snapshots_sent,
        "{last}"
    );
    assert_eq!(u(&route(&last, "/echo")["connections"]), 3, "{last}");
    assert_eq!(u(&route(&last, "/chat")["connections"]), 2, "{last}");
    assert_eq!((u(&last["rooms"]), u(&last["members"])), (1, 2), "{last}");
    assert_eq!(u(&route(&last, "/chat")["members"]), 2, "{last}");
    assert_eq!(u(&last["connections"]["websocket"]), 6, "{last}");
    assert_eq!(
        last["closes_last_minute"]["received"]["1000"].as_u64(),
        Some(1),
        "{last}"
    );
    assert!(saw_rate, "no snapshot showed the echo traffic as a rate");
    assert!(u(&last["loop_turns"]["turns"]) > 0, "{last}");
    assert!(u(&last["totals"]["handshakes"]) >= 7);
    drop((echoes, chat, watcher));
    wsd.terminate(Duration::from_secs(5));
}

#[test]
fn every_watcher_gets_each_snapshot_about_once_a_second_and_what_it_sends_is_ignored() {
    let mut wsd = Wsd::start(CONFIG);
    let mut a = open(&wsd, "/status");
    let mut b = open(&wsd, "/status");
    // A watcher talking does not change what it receives, nor close it.
    a.send(Message::text("hello?")).unwrap();
    let (mut a_seen, mut b_seen) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        a_seen.push(snapshot(&mut a)["uptime_secs"].as_f64().unwrap());
        b_seen.push(snapshot(&mut b)["uptime_secs"].as_f64().unwrap());
    }
    // Both got the same snapshots (b may have joined one snapshot later).
    assert!(
        a_seen.iter().filter(|t| b_seen.contains(t)).count() >= 2,
        "{a_seen:?} {b_seen:?}"
    );
    for pair in a_seen.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (0.5..2.5).contains(&gap),
            "snapshots {gap} s apart: {a_seen:?}"
        );
    }
    // One watcher leaves; the other keeps getting snapshots, which count it gone.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = snapshot(&mut a);
        if u(&route(&s, "/status")["connections"]) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gone watcher is still counted: {s}"
        );
    }
    wsd.terminate(Duration::from_secs(5));
}

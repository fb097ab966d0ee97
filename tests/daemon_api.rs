//! Behaviour tests of `POST /api/publish` on one daemon: a backend's message
//! reaches every member of the room (text from JSON, binary from an
//! octet-stream body), and each refusal has its status: 401 without or with a
//! wrong key, 400 for bad JSON, 404 for an unknown route or a route that takes
//! no publications, 405, 411, 413; the API is served only where `[api]
//! listener` says. Across daemons (through Redis) it is tested in
//! `daemon_backplane.rs`.
//!
//! Owns assertions on HTTP answers (raw requests) and what tungstenite chat
//! members receive. It must never depend on the daemon's internals; every
//! wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::Wsd;
use raw::{http_exchange, Response};
use tungstenite::Message;

const KEY: &str = "test-key-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn config(listener: &str) -> String {
    format!(
        r#"
[log]
level = "info"
[metrics]
listen = "127.0.0.1:0"
[limits]
max_message_bytes = 1000
max_send_buffer_bytes = 65536
read_pause_bytes = 4096
[timeouts]
ping_interval = "0s"
[api]
keys = ["{KEY}"]
listener = "{listener}"
[[route]]
path = "/chat"
kind = "chat"
announce = false
[[route]]
path = "/echo"
kind = "echo"
"#
    )
}

fn post(addr: SocketAddr, target: &str, headers: &str, body: &[u8]) -> Response {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    http_exchange(addr, &request)
}

fn auth() -> String {
    format!("Authorization: Bearer {KEY}\r\n")
}

fn member(wsd: &Wsd, room: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    tungstenite::client(wsd.url(&format!("/chat?room={room}")), stream)
        .expect("handshake")
        .0
}

#[test]
fn a_backend_publishes_text_and_binary_to_a_room() {
    let wsd = Wsd::start(&config("main"));
    let mut a = member(&wsd, "news");
    let mut b = member(&wsd, "news");
    let mut other = member(&wsd, "sports");
    let body = br#"{"route": "/chat", "room": "news", "data": "hello \"all\""}"#;
    let r = post(wsd.addr, "/api/publish", &auth(), body);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(
        r.body_text().contains("\"local_members\":2"),
        "{}",
        r.body_text()
    );
    let r = post(
        wsd.addr,
        "/api/publish?route=/chat&room=news",
        &format!("{}Content-Type: application/octet-stream\r\n", auth()),
        &[0, 1, 2, 255],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    for ws in [&mut a, &mut b] {
        assert_eq!(ws.read().unwrap(), Message::text("hello \"all\""));
        assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    }
    other
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(other.read().is_err(), "another room hears nothing");
    // A room with nobody in it: accepted, reaching no one here.
    let r = post(
        wsd.addr,
        "/api/publish",
        &auth(),
        br#"{"route":"/chat","room":"empty","data":"x"}"#,
    );
    assert_eq!(r.status, 200);
    assert!(r.body_text().contains("\"local_members\":0"));
}

#[test]
fn every_refusal_has_its_status() {
    let wsd = Wsd::start(&config("main"));
    let ok_body = br#"{"route":"/chat","room":"r","data":"x"}"#;
    let cases: Vec<(u16, Response)> = vec![
        (401, post(wsd.addr, "/api/publish", "", ok_body)),
        (
            401,
            post(
                wsd.addr,
                "/api/publish",
                "Authorization: Bearer test-key-0123456780\r\n",
                ok_body,
            ),
        ),
        (400, post(wsd.addr, "/api/publish", &auth(), b"{not json")),
        (
            400,
            post(
                wsd.addr,
                "/api/publish",
                &auth(),
                br#"{"route":"/chat","room":"r"}"#,
            ),
        ),
        (
            404,
            post(
                wsd.addr,
                "/api/publish",
                &auth(),
                br#"{"route":"/nope","room":"r","data":"x"}"#,
            ),
        ),
        (
            404,
            post(
                wsd.addr,
                "/api/publish",
                &auth(),
                br#"{"route":"/echo","room":"r","data":"x"}"#,
            ),
        ),
        (413, post(wsd.addr, "/api/publish", &auth(), &[b'x'; 1001])),
        (
            405,
            http_exchange(wsd.addr, b"GET /api/publish HTTP/1.1\r\nHost: x\r\n\r\n"),
        ),
        (
            411,
            http_exchange(
                wsd.addr,
                format!("POST /api/publish HTTP/1.1\r\nHost: x\r\n{}\r\n", auth()).as_bytes(),
            ),
        ),
    ];
    for (i, (want, got)) in cases.iter().enumerate() {
        assert_eq!(got.status, *want, "case {i}: {}", got.body_text());
        assert!(
            got.body_text().contains("\"error\""),
            "case {i}: JSON error body"
        );
        assert!(
            !got.body_text().contains(KEY),
            "case {i}: the key is never echoed"
        );
    }
    assert_eq!(cases[0].1.header("WWW-Authenticate"), Some("Bearer"));
    // The daemon still serves.
    let mut m = member(&wsd, "r");
    let r = post(wsd.addr, "/api/publish", &auth(), ok_body);
    assert_eq!(r.status, 200);
    assert_eq!(m.read().unwrap(), Message::text("x"));
}

#[test]
fn the_api_is_served_only_on_the_configured_listener() {
    let wsd = Wsd::start(&config("metrics"));
    let metrics: SocketAddr = wsd
        .wait_for_log("metrics on ", WAIT)
        .and_then(|l| {
            l.split("metrics on ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("metrics address");
    let body = br#"{"route":"/chat","room":"r","data":"x"}"#;
    let mut m = member(&wsd, "r");
    let on_main = post(wsd.addr, "/api/publish", &auth(), body);
    assert_ne!(on_main.status, 200, "not on the main listener");
    let on_metrics = post(metrics, "/api/publish", &auth(), body);
    assert_eq!(on_metrics.status, 200, "{}", on_metrics.body_text());
    assert_eq!(m.read().unwrap(), Message::text("x"));
}

//! Behaviour tests of the daemon's opening handshake over loopback: every bad
//! request gets its status code and the headers RFC 6455 §4.2.2 and RFC 9110
//! require, then the connection closes, while other connections keep working.
//!
//! Owns assertions on hand-built requests and the responses they get. It must
//! never depend on the daemon's internals; a refused request's response is read
//! to EOF with a bounded wait.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;

use common::Wsd;
use raw::{http_exchange, Raw, Response, ACCEPT, KEY, OP_TEXT, WAIT};
use tungstenite::Message;

const CONFIG: &str = r#"
[log]
level = "info"
[limits]
max_request_bytes = 1024
max_headers = 16
[timeouts]
handshake = "2s"
ping_interval = "0s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

/// A bad request, the status it must get and a header the response must carry.
struct Case {
    name: &'static str,
    request: String,
    status: u16,
    header: Option<(&'static str, &'static str)>,
}

fn request(method: &str, path: &str, version: &str, headers: &[&str]) -> String {
    let mut r = format!("{method} {path} HTTP/{version}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

const HOST: &str = "Host: localhost";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";

fn key() -> String {
    format!("Sec-WebSocket-Key: {KEY}")
}

fn cases() -> Vec<Case> {
    let key = key();
    let key = key.as_str();
    let many: Vec<String> = (0..20).map(|i| format!("X-Filler-{i}: {i}")).collect();
    let mut too_many: Vec<&str> = vec![HOST, UPGRADE, CONNECTION, key, VERSION];
    too_many.extend(many.iter().map(String::as_str));
    let long = format!("X-Long: {}", "a".repeat(1100));
    vec![
        Case {
            name: "missing Sec-WebSocket-Key",
            request: request("GET", "/echo", "1.1", &[HOST, UPGRADE, CONNECTION, VERSION]),
            status: 400,
            header: None,
        },
        Case {
            name: "key that is not 16 bytes of base64",
            request: request(
                "GET",
                "/echo",
                "1.1",
                &[
                    HOST,
                    UPGRADE,
                    CONNECTION,
                    VERSION,
                    "Sec-WebSocket-Key: c2hvcnQ=",
                ],
            ),
            status: 400,
            header: None,
        },
        Case {
            name: "version 8",
            request: request(
                "GET",
                "/echo",
                "1.1",
                &[HOST, UPGRADE, CONNECTION, key, "Sec-WebSocket-Version: 8"],
            ),
            status: 426,
            header: Some(("Sec-WebSocket-Version", "13")),
        },
        Case {
            name: "no version",
            request: request("GET", "/echo", "1.1", &[HOST, UPGRADE, CONNECTION, key]),
            status: 426,
            header: Some(("Sec-WebSocket-Version", "13")),
        },
        Case {
            name: "POST upgrade",
            request: request(
                "POST",
                "/echo",
                "1.1",
                &[HOST, UPGRADE, CONNECTION, key, VERSION],
            ),
            status: 405,
            header: Some(("Allow", "GET")),
        },
        Case {
            name: "missing Host",
            request: request("GET", "/echo", "1.1", &[UPGRADE, CONNECTION, key, VERSION]),
            status: 400,
            header: None,
        },
        Case {
            name: "HTTP/1.0 upgrade",
            request: request(
                "GET",
                "/echo",
                "1.0",
                &[HOST, UPGRADE, CONNECTION, key, VERSION],
            ),
            status: 400,
            header: None,
        },
        Case {
            name: "Connection without upgrade",
            request: request(
                "GET",
                "/echo",
                "1.1",
                &[HOST, UPGRADE, "Connection: keep-alive", key, VERSION],
            ),
            status: 400,
            header: None,
        },
        Case {
            name: "head over max_request_bytes",
            request: request(
                "GET",
                "/echo",
                "1.1",
                &[HOST, UPGRADE, CONNECTION, key, VERSION, &long],
            ),
            status: 431,
            header: None,
        },
        Case {
            name: "too many headers",
            request: request("GET", "/echo", "1.1", &too_many),
            status: 431,
            header: None,
        },
        Case {
            name: "plain GET on a WebSocket route",
            request: request("GET", "/echo", "1.1", &[HOST]),
            status: 426,
            header: Some(("Upgrade", "websocket")),
        },
        Case {
            name: "upgrade on an unknown path",
            request: request(
                "GET",
                "/nowhere",
                "1.1",
                &[HOST, UPGRADE, CONNECTION, key, VERSION],
            ),
            status: 404,
            header: None,
        },
        Case {
            name: "garbage request line",
            request: "\x01\x02 nonsense\r\n\r\n".to_owned(),
            status: 400,
            header: None,
        },
    ]
}

/// Sends the case's request and checks the status, the header, that the response
/// says it closes, and that the server then closes TCP.
fn check(wsd: &Wsd, case: &Case) -> Response {
    let response = http_exchange(wsd.addr, case.request.as_bytes());
    assert_eq!(
        response.status,
        case.status,
        "{}: {response:?} {}",
        case.name,
        response.body_text()
    );
    if let Some((name, value)) = case.header {
        assert_eq!(
            response.header(name),
            Some(value),
            "{}: {response:?}",
            case.name
        );
    }
    assert_eq!(
        response.header("Connection"),
        Some("close"),
        "{}: a refusal says it closes",
        case.name
    );
    assert!(
        response.header("Sec-WebSocket-Accept").is_none(),
        "{}: a refusal never carries an accept key",
        case.name
    );
    let len: usize = response
        .header("Content-Length")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{}: Content-Length", case.name));
    assert_eq!(response.body.len(), len, "{}: body length", case.name);
    response
}

fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

#[test]
fn missing_key_gets_400() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("missing Sec-WebSocket-Key"));
    check(&wsd, &case("key that is not 16 bytes of base64"));
}

#[test]
fn version_8_gets_426_naming_version_13() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("version 8"));
    check(&wsd, &case("no version"));
}

#[test]
fn post_upgrade_gets_405_allowing_get() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("POST upgrade"));
}

#[test]
fn missing_host_gets_400() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("missing Host"));
}

#[test]
fn http_1_0_or_missing_connection_upgrade_gets_400() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("HTTP/1.0 upgrade"));
    check(&wsd, &case("Connection without upgrade"));
}

#[test]
fn head_over_max_request_bytes_gets_431() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("head over max_request_bytes"));
}

#[test]
fn endless_head_gets_431_without_waiting_for_its_end() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    // Never send the blank line: the server must answer once the limit is passed.
    raw.send(format!("GET /echo HTTP/1.1\r\nX-A: {}\r\n", "b".repeat(1500)).as_bytes());
    let response = raw
        .read_head(WAIT)
        .expect("a response before the head ends");
    assert_eq!(response.status, 431);
    assert!(raw.wait_eof(WAIT));
}

#[test]
fn too_many_headers_get_431() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("too many headers"));
}

#[test]
fn plain_get_on_a_websocket_route_gets_426() {
    let wsd = Wsd::start(CONFIG);
    let r = check(&wsd, &case("plain GET on a WebSocket route"));
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn upgrade_on_an_unknown_path_gets_404() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("upgrade on an unknown path"));
}

#[test]
fn garbage_gets_400() {
    let wsd = Wsd::start(CONFIG);
    check(&wsd, &case("garbage request line"));
}

#[test]
fn tokens_are_matched_case_insensitively_within_lists() {
    let wsd = Wsd::start(CONFIG);
    let req = request(
        "GET",
        "/echo",
        "1.1",
        &[
            "host: localhost",
            "upgrade: WebSocket",
            "connection: keep-alive, Upgrade",
            &format!("sec-websocket-key: {KEY}"),
            "sec-websocket-version: 13",
        ],
    );
    let mut raw = Raw::connect(wsd.addr);
    raw.send(req.as_bytes());
    let response = raw.read_head(WAIT).expect("a response");
    assert_eq!(response.status, 101, "{response:?}");
    assert_eq!(response.header("Sec-WebSocket-Accept"), Some(ACCEPT));
    assert!(response
        .header("Upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket")));
    assert!(response
        .header("Connection")
        .is_some_and(|c| c.eq_ignore_ascii_case("upgrade")));
    assert!(
        response.header("Sec-WebSocket-Protocol").is_none(),
        "no subprotocol was offered, so none is chosen"
    );
    assert!(
        response.header("Sec-WebSocket-Extensions").is_none(),
        "no extension is ever accepted"
    );
}

#[test]
fn offered_extensions_are_declined() {
    let wsd = Wsd::start(CONFIG);
    let (mut raw, response) = Raw::try_upgrade(
        wsd.addr,
        "/echo",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        &[],
    );
    assert_eq!(response.status, 101);
    assert!(response.header("Sec-WebSocket-Extensions").is_none());
    // RSV1 stays forbidden since no extension was agreed.
    raw.send(&raw::frame(true, 4, OP_TEXT, Some([1, 1, 1, 1]), b"x"));
    assert_eq!(raw.expect_close(), Some(1002));
}

#[test]
fn request_dribbled_one_byte_at_a_time_is_accepted() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    for b in raw::upgrade_request("/echo", "").as_bytes() {
        raw.send(std::slice::from_ref(b));
    }
    let response = raw.read_head(WAIT).expect("a response");
    assert_eq!(response.status, 101);
    raw.send_frame(true, OP_TEXT, b"ok");
    assert_eq!(raw.expect_frame("echo").payload, b"ok");
}

#[test]
fn other_connections_keep_working_while_bad_handshakes_are_refused() {
    let wsd = Wsd::start(CONFIG);
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(wsd.url("/echo"), stream).unwrap();
    // A second client in the middle of sending its request head.
    let mut partial = Raw::connect(wsd.addr);
    partial.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n");
    for (i, case) in cases().iter().enumerate() {
        check(&wsd, case);
        ws.send(Message::text(format!("after {}", case.name)))
            .unwrap();
        assert_eq!(
            ws.read().unwrap(),
            Message::text(format!("after {}", case.name)),
            "case {i}"
        );
    }
    partial.send(format!("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes());
    let response = partial
        .read_head(WAIT)
        .expect("the partial request completes");
    assert_eq!(response.status, 101);
    ws.close(None).unwrap();
}

/// An upgrade request for /echo padded with `X-Pad` headers to exactly `len`
/// bytes and `headers` header fields in all.
fn padded_upgrade(len: usize, headers: usize) -> String {
    let base = [HOST, UPGRADE, CONNECTION, VERSION];
    let key = key();
    let mut fields: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    fields.push(key);
    while fields.len() < headers {
        fields.push(format!("X-Pad-{}: p", fields.len()));
    }
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    let mut req = request("GET", "/echo", "1.1", &refs);
    let short = len.checked_sub(req.len()).expect("padding fits");
    // Lengthen the last header's value to hit the exact size.
    let at = req.len() - 4;
    req.insert_str(at, &"p".repeat(short));
    assert_eq!(req.len(), len);
    req
}

#[test]
fn a_head_of_exactly_max_request_bytes_and_max_headers_is_accepted() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(padded_upgrade(1024, 16).as_bytes());
    let r = raw.read_head(WAIT).expect("a response");
    assert_eq!(r.status, 101, "{r:?}");
    let r = http_exchange(wsd.addr, padded_upgrade(1025, 16).as_bytes());
    assert_eq!(r.status, 431, "one byte over: {r:?}");
    let r = http_exchange(wsd.addr, padded_upgrade(1000, 17).as_bytes());
    assert_eq!(r.status, 431, "one header over: {r:?}");
}

//! Behaviour tests of per-route handshake policy over loopback (issue 4):
//! subprotocol choice, `require_protocol`, the Origin allow-list, and Basic,
//! ticket and cookie authentication, each outcome by status code and headers.
//!
//! Owns assertions on the daemon's answers to hand-built upgrade requests (and a
//! tungstenite client for the accepted ones). It must never depend on how the app
//! module decides, only on what goes over the wire.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;

use base64::Engine as _;
use common::Wsd;
use raw::{upgrade_status, Raw, Response, OP_TEXT, WAIT};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

fn config() -> String {
    let hash = wsd::password::PasswordHash::new("pw", [1; 16], 1000).to_string();
    format!(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "300ms"

[[route]]
path = "/proto"
kind = "echo"
protocols = ["chat.v2", "chat.v1"]

[[route]]
path = "/proto-required"
kind = "echo"
protocols = ["chat.v2", "chat.v1"]
require_protocol = true

[[route]]
path = "/origin"
kind = "echo"
origins = ["https://good.example", "http://localhost:8080"]

[[route]]
path = "/origin-required"
kind = "echo"
origins = ["https://good.example"]
require_origin = true

[[route]]
path = "/basic"
kind = "echo"
auth = "basic"
realm = "test realm"

[[route]]
path = "/ticket"
kind = "echo"
auth = "ticket"
tickets = ["t-123", "t-456"]

[[route]]
path = "/cookie"
kind = "echo"
auth = "cookie"
cookie_name = "sid"
cookie_values = ["s1"]

[[user]]
name = "alice"
password_hash = "{hash}"
"#
    )
}

fn status(wsd: &Wsd, path: &str, extra: &str) -> Response {
    upgrade_status(wsd.addr, path, extra)
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

/// Asserts a 101 and that the connection then echoes.
fn assert_upgraded(wsd: &Wsd, path: &str, extra: &str) -> Response {
    let (mut raw, response) = Raw::try_upgrade(wsd.addr, path, extra, &[]);
    assert_eq!(response.status, 101, "{path} with {extra:?}: {response:?}");
    raw.send_frame(true, OP_TEXT, b"in");
    assert_eq!(raw.expect_frame("echo").payload, b"in");
    response
}

#[test]
fn the_first_offered_subprotocol_the_route_speaks_is_chosen_and_returned() {
    let wsd = Wsd::start(&config());
    let r = assert_upgraded(
        &wsd,
        "/proto",
        "Sec-WebSocket-Protocol: x-unknown, chat.v1, chat.v2\r\n",
    );
    assert_eq!(r.header("Sec-WebSocket-Protocol"), Some("chat.v1"));
    let r = assert_upgraded(
        &wsd,
        "/proto",
        "Sec-WebSocket-Protocol: chat.v2\r\nSec-WebSocket-Protocol: chat.v1\r\n",
    );
    assert_eq!(r.header("Sec-WebSocket-Protocol"), Some("chat.v2"));
}

#[test]
fn tungstenite_sees_the_chosen_subprotocol() {
    let wsd = Wsd::start(&config());
    let mut request = wsd.url("/proto").into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, response) = tungstenite::client(request, stream).expect("handshake");
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap()),
        Some("chat.v1")
    );
    ws.send(Message::text("p")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("p"));
}

#[test]
fn no_common_subprotocol_proceeds_without_one_unless_required() {
    let wsd = Wsd::start(&config());
    let r = assert_upgraded(&wsd, "/proto", "Sec-WebSocket-Protocol: other\r\n");
    assert_eq!(r.header("Sec-WebSocket-Protocol"), None);
    let r = assert_upgraded(&wsd, "/proto", "");
    assert_eq!(r.header("Sec-WebSocket-Protocol"), None);
}

#[test]
fn require_protocol_without_a_match_gets_400_naming_the_supported_ones() {
    let wsd = Wsd::start(&config());
    for extra in ["", "Sec-WebSocket-Protocol: other, chat.v3\r\n"] {
        let r = status(&wsd, "/proto-required", extra);
        assert_eq!(r.status, 400, "{extra:?}: {r:?}");
        let body = r.body_text();
        assert!(
            body.contains("chat.v2") && body.contains("chat.v1"),
            "the body names the supported subprotocols: {body:?}"
        );
    }
    let r = assert_upgraded(
        &wsd,
        "/proto-required",
        "Sec-WebSocket-Protocol: chat.v1\r\n",
    );
    assert_eq!(r.header("Sec-WebSocket-Protocol"), Some("chat.v1"));
}

#[test]
fn origin_outside_the_allow_list_gets_403() {
    let wsd = Wsd::start(&config());
    for origin in [
        "https://evil.example",
        "http://good.example",
        "https://good.example.evil.example",
        "null",
    ] {
        let r = status(&wsd, "/origin", &format!("Origin: {origin}\r\n"));
        assert_eq!(r.status, 403, "{origin}: {r:?}");
    }
}

#[test]
fn listed_origins_are_allowed() {
    let wsd = Wsd::start(&config());
    assert_upgraded(&wsd, "/origin", "Origin: https://good.example\r\n");
    assert_upgraded(&wsd, "/origin", "Origin: http://localhost:8080\r\n");
}

#[test]
fn no_origin_is_allowed_unless_require_origin() {
    let wsd = Wsd::start(&config());
    assert_upgraded(&wsd, "/origin", "");
    let r = status(&wsd, "/origin-required", "");
    assert_eq!(r.status, 403, "{r:?}");
    assert_upgraded(&wsd, "/origin-required", "Origin: https://good.example\r\n");
}

#[test]
fn basic_auth_missing_or_wrong_gets_401_with_a_challenge() {
    let wsd = Wsd::start(&config());
    for (what, extra) in [
        ("no credential", String::new()),
        ("wrong password", basic("alice", "nope")),
        ("unknown user", basic("mallory", "pw")),
        ("empty password", basic("alice", "")),
        ("not base64", "Authorization: Basic !!!\r\n".to_owned()),
        ("other scheme", "Authorization: Bearer abc\r\n".to_owned()),
    ] {
        let r = status(&wsd, "/basic", &extra);
        assert_eq!(r.status, 401, "{what}: {r:?}");
        let challenge = r
            .header("WWW-Authenticate")
            .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate in {r:?}"));
        assert!(
            challenge.starts_with("Basic ") && challenge.contains("realm=\"test realm\""),
            "{what}: {challenge}"
        );
        assert!(
            !r.body_text().contains("nope"),
            "{what}: the body echoes a secret"
        );
    }
}

#[test]
fn basic_auth_with_the_right_password_is_accepted() {
    let wsd = Wsd::start(&config());
    assert_upgraded(&wsd, "/basic", &basic("alice", "pw"));
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let token = base64::engine::general_purpose::STANDARD.encode("alice:pw");
    assert_upgraded(&wsd, "/basic", &format!("Authorization: basic {token}\r\n"));
}

#[test]
fn ticket_auth_accepts_a_listed_ticket_and_refuses_others() {
    let wsd = Wsd::start(&config());
    assert_upgraded(&wsd, "/ticket?ticket=t-123", "");
    assert_upgraded(&wsd, "/ticket?x=1&ticket=t-456", "");
    assert_upgraded(&wsd, "/ticket?ticket=t%2D123", "");
    let r = status(&wsd, "/ticket", "");
    assert_eq!(r.status, 401, "no ticket: {r:?}");
    let r = status(&wsd, "/ticket?tick=t-123", "");
    assert_eq!(r.status, 401, "ticket under another name: {r:?}");
    let r = status(&wsd, "/ticket?ticket=t-999", "");
    assert_eq!(r.status, 403, "wrong ticket: {r:?}");
    let r = status(&wsd, "/ticket?ticket=t-12", "");
    assert_eq!(r.status, 403, "prefix of a ticket: {r:?}");
}

#[test]
fn cookie_auth_accepts_a_listed_value_and_refuses_others() {
    let wsd = Wsd::start(&config());
    assert_upgraded(&wsd, "/cookie", "Cookie: sid=s1\r\n");
    assert_upgraded(&wsd, "/cookie", "Cookie: theme=dark; sid=s1; x=y\r\n");
    let r = status(&wsd, "/cookie", "");
    assert_eq!(r.status, 401, "no cookie: {r:?}");
    let r = status(&wsd, "/cookie", "Cookie: xsid=s1\r\n");
    assert_eq!(r.status, 401, "another cookie's name: {r:?}");
    let r = status(&wsd, "/cookie", "Cookie: sid=s2\r\n");
    assert_eq!(r.status, 403, "wrong value: {r:?}");
}

#[test]
fn unknown_path_gets_404_and_methods_other_than_get_405() {
    let wsd = Wsd::start(&config());
    let r = status(&wsd, "/nope", "");
    assert_eq!(r.status, 404, "{r:?}");
    let r = status(&wsd, "/echo", "");
    assert_eq!(r.status, 404, "no /echo route in this config: {r:?}");
    let r = raw::http_exchange(
        wsd.addr,
        raw::upgrade_request("/proto", "")
            .replacen("GET", "PUT", 1)
            .as_bytes(),
    );
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("Allow"), Some("GET"));
}

#[test]
fn refusals_leave_other_routes_working() {
    let wsd = Wsd::start(&config());
    let (mut open, response) = Raw::try_upgrade(wsd.addr, "/cookie", "Cookie: sid=s1\r\n", &[]);
    assert_eq!(response.status, 101);
    for (path, extra) in [
        ("/basic", String::new()),
        ("/ticket?ticket=bad", String::new()),
        ("/origin", "Origin: https://evil.example\r\n".to_owned()),
        ("/proto-required", String::new()),
    ] {
        let r = status(&wsd, path, &extra);
        assert!(r.status >= 400, "{path}: {r:?}");
        open.send_frame(true, OP_TEXT, path.as_bytes());
        assert_eq!(open.expect_frame("echo").payload, path.as_bytes());
    }
}

#[test]
fn credentials_never_appear_in_the_log() {
    let mut wsd = Wsd::start(&config().replace("level = \"info\"", "level = \"debug\""));
    let secrets = ["t-123", "t-999", "s1", "s2-secret", "pw", "wrong-pw-secret"];
    assert_upgraded(&wsd, "/ticket?ticket=t-123", "");
    status(&wsd, "/ticket?ticket=t-999", "");
    assert_upgraded(&wsd, "/cookie", "Cookie: sid=s1\r\n");
    status(&wsd, "/cookie", "Cookie: sid=s2-secret\r\n");
    assert_upgraded(&wsd, "/basic", &basic("alice", "pw"));
    status(&wsd, "/basic", &basic("alice", "wrong-pw-secret"));
    raw::http_exchange(
        wsd.addr,
        b"GET /ticket?ticket=t-123 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
    let mut lines = Vec::new();
    while let Ok(line) = wsd.log.recv_timeout(WAIT) {
        let last = line.contains("stopped:");
        lines.push(line);
        if last {
            break;
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("alice")),
        "debug logging is on and names the user: {lines:#?}"
    );
    for line in &lines {
        // "pw" and "s1" are too short to search for on their own; look for them
        // only where a credential would be printed.
        for secret in secrets.iter().filter(|s| s.len() > 2) {
            assert!(!line.contains(secret), "secret {secret:?} logged: {line}");
        }
        assert!(!line.contains("sid=s1") && !line.contains(":pw"), "{line}");
    }
}

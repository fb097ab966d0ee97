//! Behaviour tests of what wsd does per client address, over loopback with
//! several source addresses (127.0.0.x): `max_connections_per_ip` and the
//! per-address request rate refuse the surplus (503 to an upgrade, 429 to
//! plain HTTP) while other addresses still connect; a client over
//! `max_messages_per_sec` is closed with 1008 while others are unaffected;
//! PROXY v1 and v2 headers name the client that limits and logs see, and a
//! missing header closes the connection; `X-Forwarded-For` is believed from a
//! trusted proxy only.
//!
//! Owns assertions on what raw sockets and tungstenite see. It must never
//! depend on the daemon's internals; every wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::Wsd;
use raw::{upgrade_request, Raw, WAIT};
use socket2::{Domain, Protocol, Socket, Type};
use tungstenite::Message;

/// A TCP connection to `to` from source address 127.0.0.`last`.
fn connect_from(last: u8, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let from = SocketAddr::new(IpAddr::from([127, 0, 0, last]), 0);
    socket.bind(&from.into()).unwrap();
    socket.connect_timeout(&to.into(), WAIT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends `prefix` then an upgrade request for `path` (with `extra` headers)
/// from 127.0.0.`last`; returns the connection and the response status.
fn upgrade_from(last: u8, to: SocketAddr, prefix: &[u8], path: &str, extra: &str) -> (Raw, u16) {
    let mut raw = Raw::from_stream(connect_from(last, to));
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(upgrade_request(path, extra).as_bytes());
    raw.send(&bytes);
    let status = raw.read_head(WAIT).map_or(0, |r| r.status);
    (raw, status)
}

fn ws_from(last: u8, wsd: &Wsd) -> tungstenite::WebSocket<TcpStream> {
    let stream = connect_from(last, wsd.addr);
    tungstenite::client(wsd.url("/echo"), stream)
        .expect("handshake")
        .0
}

const ECHO: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

#[test]
fn max_connections_per_ip_refuses_the_surplus_and_others_still_connect() {
    let config = ECHO.replace(
        "[timeouts]",
        "[limits]\nmax_connections_per_ip = 3\n[timeouts]",
    );
    let wsd = Wsd::start(&config);
    let mut held: Vec<_> = (0..3).map(|_| ws_from(2, &wsd)).collect();
    let (_, status) = upgrade_from(2, wsd.addr, b"", "/echo", "");
    assert_eq!(status, 503, "a fourth connection from 127.0.0.2");
    let line = wsd
        .wait_for_log("too many connections from this address", WAIT)
        .expect("a log line");
    assert!(line.contains("127.0.0.2"), "{line}");
    // Another address is unaffected.
    let mut other = ws_from(3, &wsd);
    other.send(Message::text("hi")).unwrap();
    assert_eq!(other.read().unwrap(), Message::text("hi"));
    // One of the three leaves: 127.0.0.2 may connect again.
    drop(held.pop());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, status) = upgrade_from(2, wsd.addr, b"", "/echo", "");
        if status == 101 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never admitted again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_request_rate_per_address_refuses_bursts_with_503_or_429() {
    let config = ECHO.replace(
        "[timeouts]",
        "[limits]\nhandshakes_per_ip_per_sec = 0.5\nhandshake_burst_per_ip = 3\n[timeouts]",
    );
    let wsd = Wsd::start(&config);
    for _ in 0..3 {
        let (_, status) = upgrade_from(4, wsd.addr, b"", "/echo", "");
        assert_eq!(status, 101);
    }
    let (_, status) = upgrade_from(4, wsd.addr, b"", "/echo", "");
    assert_eq!(status, 503, "the bucket is empty");
    let mut plain = Raw::from_stream(connect_from(4, wsd.addr));
    plain.send(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = plain.read_head(WAIT).expect("a response");
    assert_eq!(
        (response.status, response.header("Retry-After")),
        (429, Some("1"))
    );
    let (_, status) = upgrade_from(5, wsd.addr, b"", "/echo", "");
    assert_eq!(status, 101, "another address has its own bucket");
}

#[test]
fn a_client_over_the_message_rate_is_closed_with_1008_and_others_go_on() {
    let config = ECHO.replace(
        "[timeouts]",
        "[limits]\nmax_messages_per_sec = 20\n[timeouts]",
    );
    let wsd = Wsd::start(&config);
    let mut calm = ws_from(6, &wsd);
    let mut flood = Raw::upgrade(wsd.addr, "/echo");
    for i in 0..200 {
        flood.send_frame(true, raw::OP_TEXT, format!("m{i}").as_bytes());
    }
    let mut code = None;
    for _ in 0..300 {
        let frame = flood.expect_frame("an echo or the close");
        if frame.opcode == raw::OP_CLOSE {
            code = frame.close_code();
            break;
        }
    }
    assert_eq!(code, Some(1008));
    for i in 0..5 {
        calm.send(Message::text(format!("calm {i}"))).unwrap();
        assert_eq!(calm.read().unwrap(), Message::text(format!("calm {i}")));
    }
}

fn proxy_config(version: &str) -> String {
    ECHO.replace(
        "[log]",
        &format!(
            "[server]\nlisten = [{{ addr = \"127.0.0.1:0\", proxy_protocol = \"{version}\" }}]\n\
             [limits]\nmax_connections_per_ip = 1\n[log]"
        ),
    )
}

fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[test]
fn proxy_v1_names_the_client_that_limits_and_logs_see() {
    let wsd = Wsd::start_as_configured(&proxy_config("v1"), &[]);
    let header = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 40000 80\r\n").into_bytes();
    // All from 127.0.0.1, but two different clients behind the balancer.
    let (_first, status) = upgrade_from(1, wsd.addr, &header("198.51.100.7"), "/echo", "");
    assert_eq!(status, 101);
    let (_, status) = upgrade_from(1, wsd.addr, &header("198.51.100.7"), "/echo", "");
    assert_eq!(status, 503, "198.51.100.7 has its one connection");
    let line = wsd
        .wait_for_log("too many connections", WAIT)
        .expect("a log line");
    assert!(line.contains("198.51.100.7"), "the logged address: {line}");
    let (_second, status) = upgrade_from(1, wsd.addr, &header("198.51.100.8"), "/echo", "");
    assert_eq!(status, 101);
    // No header where one is required: closed without an answer.
    let mut bare = Raw::from_stream(connect_from(1, wsd.addr));
    bare.send(upgrade_request("/echo", "").as_bytes());
    let mut got = Vec::new();
    assert!(bare.wait_eof_collect(&mut got, WAIT), "closed");
    assert!(
        got.is_empty(),
        "nothing answered: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn proxy_v2_names_the_client_too() {
    let wsd = Wsd::start_as_configured(&proxy_config("v2"), &[]);
    let (_first, status) =
        upgrade_from(1, wsd.addr, &v2_header([203, 0, 113, 5], 4000), "/echo", "");
    assert_eq!(status, 101);
    let (_, status) = upgrade_from(1, wsd.addr, &v2_header([203, 0, 113, 5], 4001), "/echo", "");
    assert_eq!(status, 503);
    let (_, status) = upgrade_from(1, wsd.addr, &v2_header([203, 0, 113, 6], 4002), "/echo", "");
    assert_eq!(status, 101);
    // A v1 line on the v2 listener is not a v2 header.
    let (_, status) = upgrade_from(
        1,
        wsd.addr,
        b"PROXY TCP4 1.2.3.4 127.0.0.1 1 80\r\n",
        "/echo",
        "",
    );
    assert_eq!(status, 0, "closed without an answer");
}

#[test]
fn x_forwarded_for_is_believed_from_trusted_proxies_only() {
    let config = ECHO.replace(
        "[log]",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[limits]\nmax_connections_per_ip = 1\n[log]",
    );
    let wsd = Wsd::start(&config);
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    // From the trusted proxy (127.0.0.1): the header names the client.
    let (_a, status) = upgrade_from(1, wsd.addr, b"", "/echo", &xff("198.51.100.9"));
    assert_eq!(status, 101);
    let (_, status) = upgrade_from(1, wsd.addr, b"", "/echo", &xff("198.51.100.9"));
    assert_eq!(status, 503, "the named client has its one connection");
    let (_b, status) = upgrade_from(1, wsd.addr, b"", "/echo", &xff("198.51.100.10"));
    assert_eq!(status, 101);
    // From an untrusted peer a spoofed header changes nothing: it is 127.0.0.7.
    let (_c, status) = upgrade_from(7, wsd.addr, b"", "/echo", &xff("198.51.100.11"));
    assert_eq!(status, 101);
    let (_, status) = upgrade_from(7, wsd.addr, b"", "/echo", &xff("198.51.100.12"));
    assert_eq!(status, 503, "still 127.0.0.7, whatever it claims");
}

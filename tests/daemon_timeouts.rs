//! Behaviour tests of the daemon's timers over loopback: the handshake timeout
//! (slowloris guard, 408), idle pings and the ping timeout (1001), and the close
//! timeout that drops a peer which never answers a close.
//!
//! Owns assertions on what a raw client observes (frames, EOF, resets) and on the
//! daemon's debug log. Timeouts in the config are short; every wait in here is
//! bounded by `WAIT`, far longer than any configured timeout, and nothing asserts
//! on how fast the daemon was.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use common::Wsd;
use raw::{frame, Next, Raw, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WAIT};

const CONFIG: &str = r#"
[log]
level = "debug"
[timeouts]
handshake = "1s"
ping_interval = "200ms"
ping_timeout = "200ms"
close = "300ms"
shutdown = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

/// Pings as often, but a ping timeout that a loaded test machine cannot miss: a
/// client still pinged after several intervals must have answered each ping,
/// since no new ping goes out while one is unanswered. The timeout is also longer
/// than `WAIT`, so the next ping must follow an answer by about one interval,
/// not wait for the timeout's deadline.
const LENIENT: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "200ms"
ping_timeout = "30s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

const NO_PINGS: &str = r#"
[log]
level = "info"
[timeouts]
handshake = "500ms"
ping_interval = "0s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

#[test]
fn half_a_request_then_silence_gets_408_and_the_connection_closes() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: webso");
    let response = raw.read_head(WAIT).expect("a 408 within the bound");
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(raw.wait_eof(WAIT), "no EOF after the 408");
    assert!(
        wsd.wait_for_log("handshake timeout", WAIT).is_some(),
        "the handshake timeout is logged"
    );
}

#[test]
fn a_connection_that_sends_nothing_gets_408_and_closes() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    let response = raw.read_head(WAIT).expect("a 408 within the bound");
    assert_eq!(response.status, 408);
    assert!(raw.wait_eof(WAIT));
}

#[test]
fn trickling_a_request_does_not_extend_the_handshake_deadline() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    // One header byte every ~20 ms, forever (bounded by WAIT): the deadline counts
    // from the connection's start, not from its last byte.
    let filler = b"X-Slow: ".iter().chain(std::iter::repeat(&b'z'));
    let deadline = Instant::now() + WAIT;
    let mut received = Vec::new();
    raw.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n");
    for b in filler {
        assert!(
            Instant::now() < deadline,
            "still open after {WAIT:?} of trickling"
        );
        if raw.stream.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        let mut chunk = [0u8; 1024];
        match raw.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 "), "got {text:?}");
}

#[test]
fn a_client_that_never_answers_pings_gets_a_ping_then_close_1001_then_eof() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let ping = raw.expect_frame("a ping");
    assert_eq!(ping.opcode, OP_PING, "{ping:?}");
    assert!(!ping.masked);
    let close = raw.expect_frame("a close after the unanswered ping");
    assert_eq!(close.opcode, OP_CLOSE, "{close:?}");
    assert_eq!(close.close_code(), Some(1001));
    raw.expect_eof();
}

#[test]
fn a_client_that_answers_pings_stays_open_past_several_intervals() {
    let wsd = Wsd::start(LENIENT);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let mut answered = 0;
    while answered < 5 {
        let f = raw.expect_frame("a ping");
        assert_eq!(
            f.opcode, OP_PING,
            "only pings arrive on an idle connection: {f:?}"
        );
        raw.send_frame(true, OP_PONG, &f.payload);
        answered += 1;
    }
    raw.send_frame(true, OP_TEXT, b"still open");
    // A ping may cross the message; answer it and look for the echo.
    for _ in 0..3 {
        let f = raw.expect_frame("the echo");
        match f.opcode {
            OP_PING => raw.send_frame(true, OP_PONG, &f.payload),
            OP_TEXT => {
                assert_eq!(f.payload, b"still open");
                return;
            }
            _ => panic!("unexpected {f:?}"),
        }
    }
    panic!("no echo after answering pings");
}

#[test]
fn tungstenite_client_that_keeps_reading_answers_pings_and_stays_open() {
    let wsd = Wsd::start(LENIENT);
    let stream = std::net::TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(wsd.url("/echo"), stream).unwrap();
    let mut pings = 0;
    while pings < 4 {
        match ws.read().expect("the connection stays open") {
            tungstenite::Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(tungstenite::Message::text("hello")).unwrap();
    loop {
        match ws.read().expect("the connection stays open") {
            tungstenite::Message::Ping(_) => {}
            m => {
                assert_eq!(m, tungstenite::Message::text("hello"));
                break;
            }
        }
    }
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_after_the_close_timeout() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send(&frame(true, 2, OP_TEXT, Some([1, 2, 3, 4]), b"x"));
    assert_eq!(raw.expect_close(), Some(1002));
    assert!(
        raw.wait_eof(WAIT),
        "the server shuts its side after its close"
    );
    // We never answer and never close: the server must let go of the socket.
    assert!(
        wsd.wait_for_log("close timeout", WAIT).is_some(),
        "the close timeout fired"
    );
    // Once the server's socket is gone, our bytes are answered with a reset.
    // Reads return EOF at once now, so the polling is paced (and bounded).
    raw.stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut reset = false;
    while !reset && Instant::now() < deadline {
        if raw.stream.write_all(b"hello?").is_err() {
            reset = true;
            break;
        }
        let mut b = [0u8; 16];
        if let Err(e) = raw.stream.read(&mut b) {
            reset = e.kind() == ErrorKind::ConnectionReset;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        reset,
        "the server still holds the connection after its close timeout"
    );
}

#[test]
fn an_idle_websocket_is_not_subject_to_the_handshake_timeout() {
    let wsd = Wsd::start(NO_PINGS);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    // Three handshake timeouts pass with no traffic at all (pings are off).
    match raw.read_frame(Duration::from_millis(1500)) {
        Next::Timeout => {}
        other => panic!("an idle upgraded connection got {other:?}"),
    }
    raw.send_frame(true, OP_TEXT, b"alive");
    assert_eq!(raw.expect_frame("the echo").payload, b"alive");
}

#[test]
fn idle_keep_alive_http_connection_is_closed_after_the_handshake_timeout() {
    let wsd = Wsd::start(NO_PINGS);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let first = raw.read_response(WAIT).expect("the first response");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Connection"), Some("keep-alive"));
    // No second request: the connection must not stay open forever. A 408 before
    // the close is allowed (RFC 9110 §15.5.9), nothing else is.
    let mut rest = Vec::new();
    assert!(
        raw.wait_eof_collect(&mut rest, WAIT),
        "idle keep-alive connection still open"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408 "),
        "{text:?}"
    );
}

//! Behaviour tests of how wsd reads a socket: it stops reading at a read that
//! came up short (edge-triggered readiness raises a new event for later data),
//! so these pin that nothing is lost or left waiting by that: data pipelined
//! across many small writes, messages larger than one read, and a peer whose
//! last bytes and FIN arrive together (the EOF must still be seen).
//!
//! Owns assertions on what a raw socket sees. It must never depend on the
//! daemon's internals; every wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::Shutdown;
use std::time::Duration;

use common::Wsd;
use raw::{client_frame, close_payload, Raw, OP_BINARY, OP_CLOSE, OP_TEXT, WAIT};

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
[[route]]
path = "/echo"
kind = "echo"
"#;

#[test]
fn frames_dribbled_across_many_writes_are_all_echoed() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let mut bytes = Vec::new();
    for i in 0..20 {
        bytes.extend(client_frame(OP_TEXT, format!("message {i}").as_bytes()));
    }
    // Pieces of 1 to 7 bytes, each its own write, with pauses now and then so
    // the server sees many short reads and new events.
    let mut at = 0;
    let mut step = 1;
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        raw.send(&bytes[at..end]);
        at = end;
        step = step % 7 + 1;
        if at % 5 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for i in 0..20 {
        let f = raw.expect_frame("an echo");
        assert_eq!(
            (f.opcode, f.payload),
            (OP_TEXT, format!("message {i}").into_bytes())
        );
    }
}

#[test]
fn a_message_larger_than_one_read_arrives_whole() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    raw.send(&client_frame(OP_BINARY, &payload));
    raw.send(&client_frame(OP_TEXT, b"after"));
    let f = raw.expect_frame("the large echo");
    assert_eq!(f.opcode, OP_BINARY);
    assert!(f.payload == payload, "payload differs");
    let f = raw.expect_frame("the next echo");
    assert_eq!(f.payload, b"after");
}

#[test]
fn last_bytes_and_fin_together_are_answered_and_the_eof_is_seen() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let mut bytes = client_frame(OP_TEXT, b"one");
    bytes.extend(client_frame(OP_TEXT, b"two"));
    bytes.extend(client_frame(OP_CLOSE, &close_payload(1000, "bye")));
    raw.send(&bytes);
    raw.stream.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(raw.expect_frame("echo one").payload, b"one");
    assert_eq!(raw.expect_frame("echo two").payload, b"two");
    assert_eq!(raw.expect_close(), Some(1000));
    assert!(raw.wait_eof(WAIT), "the server closed after the FIN");

    // Data with a FIN and no close frame: the server still sees the EOF and
    // lets go of the connection.
    let mut abrupt = Raw::upgrade(wsd.addr, "/echo");
    abrupt.send(&client_frame(OP_TEXT, b"last words"));
    abrupt.stream.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(abrupt.expect_frame("echo").payload, b"last words");
    assert!(abrupt.wait_eof(WAIT), "the server closed after the FIN");
}

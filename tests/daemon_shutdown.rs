//! Behaviour tests of the daemon's graceful shutdown over loopback: SIGTERM sends
//! close 1001 to every open client, the daemon exits 0 as soon as they have all
//! answered, still exits 0 after the shutdown timeout when one never answers, stops
//! accepting at once, and a second signal ends it immediately.
//!
//! Owns assertions on what clients see and on the exit status. It must never
//! assert on speed: the configured timeouts are far longer than the bounded waits
//! that must not reach them.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::Wsd;
use raw::{Next, Raw, OP_CLOSE, WAIT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const CLIENTS: usize = 50;

fn sigterm(wsd: &Wsd) {
    let status = Command::new("kill")
        .args(["-TERM", &wsd.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0_once_they_answer() {
    // Timeouts far beyond the wait below: exiting within it means the daemon did
    // not wait for any timeout, only for the answers.
    let mut wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "60s"
shutdown = "60s"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(wsd.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (mut ws, _) = tungstenite::client(wsd.url("/echo"), stream).unwrap();
        ws.send(Message::text("hi")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("hi"));
        clients.push(ws);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (i, ws) in clients.iter_mut().enumerate() {
            let result = match ws.read() {
                Ok(Message::Close(Some(f))) if f.code == CloseCode::Away => {
                    // Reading on sends our answer and sees the server's TCP close.
                    match ws.read() {
                        Err(tungstenite::Error::ConnectionClosed) => Ok(()),
                        other => Err(format!("client {i}: after the close: {other:?}")),
                    }
                }
                other => Err(format!("client {i}: expected close 1001, got {other:?}")),
            };
            if tx.send(result).is_err() {
                return;
            }
        }
    });
    let status = wsd
        .terminate(Duration::from_secs(20))
        .expect("wsd exits once every client answered, long before its timeouts");
    assert!(status.success(), "{status}");
    for _ in 0..CLIENTS {
        rx.recv_timeout(WAIT)
            .expect("every client finished")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let summary = wsd.wait_for_log("stopped:", WAIT).expect("summary");
    assert!(
        summary.contains(&format!("sent {{1001: {CLIENTS}}}")),
        "{summary}"
    );
}

#[test]
fn exit_status_is_0_even_when_a_client_never_answers_the_close() {
    let mut wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "60s"
shutdown = "500ms"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut silent = Raw::upgrade(wsd.addr, "/echo");
    let status = wsd
        .terminate(WAIT)
        .expect("wsd exits after its shutdown timeout");
    assert!(status.success(), "{status}");
    assert!(
        wsd.wait_for_log("shutdown timeout", WAIT).is_some(),
        "dropping the silent client is logged"
    );
    // The close was sent before the daemon gave up on the answer.
    let f = silent.expect_frame("the shutdown close");
    assert_eq!((f.opcode, f.close_code()), (OP_CLOSE, Some(1001)));
    assert!(silent.wait_eof(WAIT));
}

#[test]
fn after_sigterm_no_new_connection_is_accepted_and_a_second_signal_exits_at_once() {
    let mut wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "60s"
shutdown = "60s"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut silent = Raw::upgrade(wsd.addr, "/echo");
    sigterm(&wsd);
    let f = silent.expect_frame("the shutdown close");
    assert_eq!((f.opcode, f.close_code()), (OP_CLOSE, Some(1001)));
    // The daemon is still running (waiting for the answer) but listens no more.
    assert!(wsd.child.try_wait().unwrap().is_none());
    match TcpStream::connect_timeout(&wsd.addr, WAIT) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("a connection was accepted after SIGTERM"),
    }
    let status = wsd
        .terminate(WAIT)
        .expect("a second signal ends the daemon without waiting");
    assert!(status.success(), "{status}");
    assert!(wsd.wait_for_log("second signal", WAIT).is_some());
}

#[test]
fn sigterm_closes_connections_still_sending_their_request() {
    let mut wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
handshake = "60s"
shutdown = "60s"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut partial = Raw::connect(wsd.addr);
    partial.send(b"GET /echo HTTP/1.1\r\nHost: local");
    // Make sure the daemon holds the connection before the signal.
    let mut other = Raw::upgrade(wsd.addr, "/echo");
    other.send_frame(true, raw::OP_TEXT, b"sync");
    assert_eq!(other.expect_frame("echo").payload, b"sync");
    sigterm(&wsd);
    assert_eq!(other.expect_close(), Some(1001));
    other.send_frame(true, OP_CLOSE, &raw::close_payload(1001, ""));
    match partial.read_frame(WAIT) {
        Next::Eof | Next::Error(_) => {}
        other => panic!("a half-sent request got {other:?} instead of a close"),
    }
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
}

#[test]
fn data_sent_after_the_servers_close_is_not_answered() {
    let wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "60s"
shutdown = "60s"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut client = Raw::upgrade(wsd.addr, "/echo");
    sigterm(&wsd);
    assert_eq!(client.expect_close(), Some(1001));
    // A client that still sends before answering gets no echo (RFC 6455 §5.5.1):
    // after the server's close, only the end of the connection follows.
    client.send_frame(true, raw::OP_TEXT, b"late message");
    client.send_frame(true, OP_CLOSE, &raw::close_payload(1000, ""));
    client.expect_eof();
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let mut wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
shutdown = "60s"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut client = Raw::upgrade(wsd.addr, "/echo");
    let status = Command::new("kill")
        .args(["-INT", &wsd.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_eq!(client.expect_close(), Some(1001));
    client.send_frame(true, OP_CLOSE, &raw::close_payload(1001, ""));
    client.expect_eof();
    // The server waits (at most its close timeout) for our side of TCP to close too.
    drop(client);
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = wsd.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wsd still running after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn a_file_download_in_progress_completes_before_the_daemon_exits() {
    let base = common::temp_dir("shutdown-static");
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let mut wsd = Wsd::start(&format!(
        r#"
[log]
level = "info"
[timeouts]
shutdown = "60s"
[static]
root = "{}"
"#,
        root.display()
    ));
    let mut raw = Raw::connect_small_rcvbuf(wsd.addr);
    raw.send(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = raw.read_head(WAIT).expect("the response head");
    assert_eq!(head.status, 200);
    // Most of the file is still on the server's side when the signal arrives.
    sigterm(&wsd);
    let mut body = std::mem::take(&mut raw.buf);
    assert!(raw.wait_eof_collect(&mut body, WAIT), "the connection ends");
    assert_eq!(body.len(), big.len(), "the download was cut short");
    assert!(body == big, "the download arrived corrupted");
    drop(raw);
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(base);
}

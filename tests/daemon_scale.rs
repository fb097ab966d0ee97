//! Behaviour tests of the daemon with many connections over loopback: 2,000
//! WebSocket clients open at once, each echoes a message and closes cleanly, and
//! `max_connections` turns the surplus away with 503 while the rest keep working.
//!
//! Owns assertions on what the clients see and on the daemon's final counters.
//! It must never assert on speed; every read has a timeout.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Wsd;
use raw::{http_exchange, rss_kib, Raw, WAIT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

const CLIENTS: usize = 2000;

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(wsd: &Wsd) -> Client {
    let stream = TcpStream::connect_timeout(&wsd.addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let (ws, response) = tungstenite::client(wsd.url("/echo"), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Completes a close we started: the server's answer, then the end of the stream.
fn finish_close(ws: &mut Client, i: usize) {
    let mut answered = false;
    for _ in 0..4 {
        match ws.read() {
            Ok(Message::Close(Some(f))) => {
                assert_eq!(f.code, CloseCode::Normal, "client {i}");
                answered = true;
            }
            Ok(other) => panic!("client {i}: unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => {
                assert!(answered, "client {i}: closed without answering our close");
                return;
            }
            Err(e) => panic!("client {i}: close did not complete cleanly: {e}"),
        }
    }
    panic!("client {i}: the close never completed");
}

#[test]
fn two_thousand_concurrent_clients_each_echo_and_close_cleanly() {
    let mut wsd = Wsd::start(
        r#"
[log]
level = "info"
[server]
backlog = 4096
[timeouts]
ping_interval = "0s"
close = "2s"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let before = rss_kib(wsd.child.id());
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| connect(&wsd)).collect();
    // All are open now; every one of them talks.
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("client {i} {}", "x".repeat(i))))
            .unwrap();
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(
            ws.read().expect("echo"),
            Message::text(format!("client {i} {}", "x".repeat(i)))
        );
    }
    // Idle again, the connections hold no buffers: a generous 8 KiB each.
    let idle = rss_kib(wsd.child.id());
    assert!(
        idle.saturating_sub(before) < (CLIENTS as u64) * 8,
        "RSS {before} KiB -> {idle} KiB with {CLIENTS} idle connections"
    );
    for ws in clients.iter_mut() {
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }))
        .unwrap();
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        finish_close(ws, i);
    }
    drop(clients);
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
    let summary = wsd.wait_for_log("stopped:", WAIT).expect("summary");
    assert!(
        summary.contains(&format!("handshakes {CLIENTS} ")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("messages in {CLIENTS} out {CLIENTS} ")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("closes received {{1000: {CLIENTS}}}")),
        "{summary}"
    );
    assert!(summary.contains("protocol errors 0 "), "{summary}");
}

#[test]
fn connections_over_max_connections_get_503_and_a_freed_slot_is_reused() {
    let wsd = Wsd::start(
        r#"
[log]
level = "info"
[server]
max_connections = 5
[timeouts]
ping_interval = "0s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let mut clients: Vec<Client> = (0..5).map(|_| connect(&wsd)).collect();
    // Every surplus connection reads its 503, even one whose request arrived
    // before the server turned it away.
    for attempt in 0..50 {
        let refused = http_exchange(wsd.addr, raw::upgrade_request("/echo", "").as_bytes());
        assert_eq!(refused.status, 503, "attempt {attempt}: {refused:?}");
        assert!(refused.header("Retry-After").is_some(), "{refused:?}");
    }
    // The five keep working.
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::binary(vec![i as u8; 10])).unwrap();
        assert_eq!(ws.read().unwrap(), Message::binary(vec![i as u8; 10]));
    }
    // One leaves; its slot becomes free once the server has seen it go.
    let mut leaving = clients.pop().unwrap();
    leaving.close(None).unwrap();
    while leaving.read().is_ok() {}
    let deadline = Instant::now() + WAIT;
    loop {
        let (_raw, response) = Raw::try_upgrade(wsd.addr, "/echo", "", &[]);
        if response.status == 101 {
            break;
        }
        assert_eq!(response.status, 503);
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts wsd under `sh -c 'ulimit -n LIMIT; exec wsd ...'`, so its hard
/// open-file limit (and with it the connection ceiling) is small.
fn start_with_fd_limit(config: &str, limit: u32) -> Wsd {
    use std::io::{BufRead, BufReader};
    let dir = common::temp_dir("fdlimit");
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let script = format!("ulimit -n {limit} && exec \"$0\" --config \"$1\" --listen 127.0.0.1:0");
    let mut child = std::process::Command::new("sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-c", &script, env!("CARGO_BIN_EXE_wsd")])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match log.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wsd under ulimit -n {limit} did not start");
            }
        };
        if let Some(addr) = line
            .split("listening on ")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok())
        {
            return Wsd {
                child,
                addr,
                log,
                dir,
            };
        }
    }
}

#[test]
fn connections_beyond_the_fd_limit_ceiling_get_503_and_the_rest_keep_working() {
    // 100 descriptors; the start line says how many connections fit.
    let wsd = start_with_fd_limit(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
[[route]]
path = "/echo"
kind = "echo"
"#,
        100,
    );
    let started = wsd.wait_for_log("started:", WAIT).expect("the start line");
    assert!(started.contains("soft 100 hard 100"), "{started}");
    let ceiling: usize = started
        .split("max_connections ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the connection ceiling in the start line");
    assert!(
        (1..50).contains(&ceiling),
        "a ceiling of {ceiling} under 100 descriptors"
    );
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..50 {
        let (raw, response) = Raw::try_upgrade(wsd.addr, "/echo", "", &[]);
        match response.status {
            101 => open.push(raw),
            503 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        open.len(),
        ceiling,
        "every connection under the ceiling is served"
    );
    assert_eq!(refused, 50 - ceiling);
    for (i, ws) in open.iter_mut().enumerate() {
        ws.send_frame(true, raw::OP_TEXT, format!("{i}").as_bytes());
        assert_eq!(ws.expect_frame("echo").payload, format!("{i}").as_bytes());
    }
}

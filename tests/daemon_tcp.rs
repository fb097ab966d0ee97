//! Behaviour tests of `kind = "tcp"` routes over loopback: the real binary
//! between a tungstenite or raw client and a TCP server run by the test (an
//! echo server, one that speaks first and hangs up, one that writes without
//! end, one that never reads, and a closed port).
//!
//! Owns assertions on what the client and the backend see, the daemon's log and
//! `/metrics`, and its RSS. It must never depend on the daemon's internals;
//! every wait is bounded and every flood has a ceiling.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::Wsd;
use raw::{client_frame, flood, http_exchange, rss_kib, Raw, OP_BINARY, WAIT};
use tungstenite::Message;

type Client = tungstenite::WebSocket<TcpStream>;

fn config(backend: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[log]
level = "info"
[metrics]
listen = ["127.0.0.1:0"]
[timeouts]
ping_interval = "0s"
close = "1s"
[limits]
read_pause_bytes = 65536
max_message_bytes = 65536
max_send_buffer_bytes = 1048576
{extra}
[[route]]
path = "/tcp"
kind = "tcp"
backend = "{backend}"
connect_timeout = "2s"
"#
    )
}

fn open(wsd: &Wsd, path: &str) -> Client {
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    tungstenite::client(wsd.url(path), stream)
        .expect("handshake")
        .0
}

/// A backend that serves one connection with `serve` in a thread; the thread's
/// result comes back on the returned channel.
fn backend<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let _ = tx.send(serve(stream));
        }
    });
    (addr, rx)
}

/// Echoes until EOF; returns how many bytes it echoed and whether it saw EOF.
fn echo(mut stream: TcpStream) -> (usize, bool) {
    let mut buf = [0u8; 16384];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => {
                total += n;
                if stream.write_all(&buf[..n]).is_err() {
                    return (total, false);
                }
            }
            Err(_) => return (total, false),
        }
    }
}

fn read_close(ws: &mut Client) -> Option<(u16, String)> {
    loop {
        match ws.read() {
            Ok(Message::Close(f)) => return f.map(|f| (u16::from(f.code), f.reason.to_string())),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

#[test]
fn bytes_go_both_ways_and_our_close_shuts_the_backend() {
    let (addr, done) = backend(echo);
    let wsd = Wsd::start(&config(addr, ""));
    let mut ws = open(&wsd, "/tcp");
    let mut sent = 0;
    for size in [1usize, 100, 5000, 60_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(payload.clone())).unwrap();
        sent += size;
        let mut back = Vec::new();
        while back.len() < size {
            match ws.read().unwrap() {
                Message::Binary(b) => back.extend_from_slice(&b),
                other => panic!("expected binary, got {other:?}"),
            }
        }
        assert_eq!(back, payload);
    }
    ws.close(None).unwrap();
    let _ = read_close(&mut ws);
    let (echoed, eof) = done.recv_timeout(WAIT).expect("backend finished");
    assert_eq!(echoed, sent);
    assert!(eof, "the backend saw wsd shut its side");
}

#[test]
fn the_backend_closing_ends_the_websocket_with_1000() {
    let (addr, _done) = backend(|mut stream| {
        stream.write_all(b"hello from the backend").unwrap();
    });
    let wsd = Wsd::start(&config(addr, ""));
    let mut ws = open(&wsd, "/tcp");
    assert_eq!(
        ws.read().unwrap(),
        Message::binary(b"hello from the backend".to_vec())
    );
    assert_eq!(
        read_close(&mut ws),
        Some((1000, "backend closed the connection".to_owned()))
    );
}

#[test]
fn text_mode_sends_text_messages() {
    let (addr, _done) = backend(|mut stream| {
        stream.write_all("grüße\n".as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        let _ = stream.read(&mut buf);
    });
    let wsd = Wsd::start(&config(addr, "").replace(
        "connect_timeout = \"2s\"",
        "connect_timeout = \"2s\"\nmode = \"text\"",
    ));
    let mut ws = open(&wsd, "/tcp");
    assert_eq!(ws.read().unwrap(), Message::text("grüße\n"));
}

#[test]
fn a_backend_that_is_down_closes_with_1011_a_log_line_and_a_count() {
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let wsd = Wsd::start(&config(closed, ""));
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
        .expect("the metrics listener's address");
    let mut ws = open(&wsd, "/tcp");
    assert_eq!(
        read_close(&mut ws),
        Some((1011, "backend unavailable".to_owned()))
    );
    let line = wsd.wait_for_log("unavailable", WAIT).expect("log line");
    assert!(line.contains(&closed.to_string()), "{line}");
    let text = http_exchange(metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body_text();
    assert!(
        text.lines().any(|l| l == "wsd_backend_failures_total 1"),
        "{text}"
    );
}

/// A client that stops reading while the backend writes without end: the
/// backend's writes block (wsd stops reading it) and wsd's memory stays bounded.
#[test]
fn a_client_that_stops_reading_holds_the_backend_back() {
    const CEILING: usize = 512 * 1024 * 1024;
    let (addr, done) = backend(|mut stream| {
        let chunk = vec![1u8; 65536];
        let mut written = 0;
        while written < CEILING {
            match stream.write(&chunk) {
                Ok(n) => written += n,
                Err(_) => break, // the write timed out: held back
            }
        }
        written
    });
    let wsd = Wsd::start(&config(addr, ""));
    let pid = wsd.child.id();
    let before = rss_kib(pid);
    let _raw = Raw::connect_small_rcvbuf(wsd.addr).upgrade_on("/tcp");
    let written = done
        .recv_timeout(Duration::from_secs(30))
        .expect("backend stopped");
    let during = rss_kib(pid);
    assert!(written < CEILING, "the backend was never held back");
    assert!(
        during < before + 16 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
}

/// A backend that never reads while the client floods: wsd stops reading the
/// client, and its memory stays bounded.
#[test]
fn a_backend_that_stops_reading_holds_the_client_back() {
    let (addr, _done) = backend(|stream| {
        std::thread::sleep(Duration::from_secs(8));
        drop(stream);
    });
    let wsd = Wsd::start(&config(addr, ""));
    let pid = wsd.child.id();
    let before = rss_kib(pid);
    let mut raw = Raw::upgrade(wsd.addr, "/tcp");
    let frame = client_frame(OP_BINARY, &vec![7u8; 60_000]);
    let sent = flood(&mut raw, &frame, 2000);
    let during = rss_kib(pid);
    assert!(sent < 2000 * frame.len(), "wsd never stopped reading");
    assert!(
        during < before + 16 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
}

/// A backend whose accept queue is full never completes the handshake: the
/// connect timeout ends the WebSocket with 1011 "backend unavailable".
#[test]
fn a_backend_that_never_answers_hits_the_connect_timeout() {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (never accepted), so the kernel drops further SYNs.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let wsd = Wsd::start(
        &config(addr, "").replace("connect_timeout = \"2s\"", "connect_timeout = \"500ms\""),
    );
    let mut ws = open(&wsd, "/tcp");
    let started = std::time::Instant::now();
    assert_eq!(
        read_close(&mut ws),
        Some((1011, "backend unavailable".to_owned()))
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    let line = wsd.wait_for_log("unavailable", WAIT).expect("log line");
    assert!(line.contains("connect timeout"), "{line}");
    drop(fillers);
}

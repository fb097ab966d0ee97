//! Behaviour tests of `wsd connect`, driven as a subprocess with piped stdio
//! against an independent server (tungstenite in a test thread) or a raw TCP
//! server that answers a broken handshake. Loopback only; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::handshake::server::{Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// A running `wsd connect` with its output lines arriving on channels.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    err_seen: Vec<String>,
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Client {
    fn start(args: &[&str]) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsd connect");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Client {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            err_seen: Vec::new(),
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn end_input(&mut self) {
        drop(self.stdin.take());
    }

    fn next_stdout(&self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .expect("a line on stdout within 10 s")
    }

    /// Waits for the exit status (bounded), then collects all of stderr.
    fn wait(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("wsd connect did not exit within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.err_seen.push(line);
        }
        (status, self.err_seen.join("\n"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-connection tungstenite server; `behave` runs on the accepted socket.
// The handshake callback's error type is tungstenite's, large by its design.
#[allow(clippy::result_large_err)]
fn tungstenite_server(
    behave: impl FnOnce(&mut tungstenite::WebSocket<TcpStream>) + Send + 'static,
) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut seen_headers = Vec::new();
        let callback = |req: &Request, mut resp: Response| {
            for (name, value) in req.headers() {
                seen_headers.push(format!("{}: {}", name, value.to_str().unwrap_or("")));
            }
            let offered = req
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if offered.split(',').any(|p| p.trim() == "chat.v1") {
                resp.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_static("chat.v1"),
                );
            }
            Ok(resp)
        };
        let mut ws = tungstenite::accept_hdr(stream, callback).unwrap();
        behave(&mut ws);
        seen_headers
    });
    (format!("ws://{addr}/echo"), handle)
}

/// Echoes text as `echo: TEXT` until the client closes.
fn echo_until_close(ws: &mut tungstenite::WebSocket<TcpStream>) {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => ws.send(Message::text(format!("echo: {t}"))).unwrap(),
            Ok(Message::Close(_)) => {
                // tungstenite queued the reply; flush it, then it ends with an error.
                let _ = ws.flush();
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn sends_lines_prints_replies_and_closes_with_1000() {
    let (url, server) = tungstenite_server(echo_until_close);
    let mut client = Client::start(&[&url]);
    client.send_line("hello");
    assert_eq!(client.next_stdout(), "echo: hello");
    client.send_line("second line");
    assert_eq!(client.next_stdout(), "echo: second line");
    client.end_input();
    let (status, stderr) = client.wait();
    assert!(status.success(), "exit {status:?}, stderr: {stderr}");
    assert!(stderr.contains("connected to"), "{stderr}");
    assert!(stderr.contains("close received: code 1000"), "{stderr}");
    server.join().unwrap();
}

#[test]
fn server_close_code_and_reason_are_shown_and_error_codes_fail() {
    let (url, server) = tungstenite_server(|ws| {
        ws.send(Message::binary(vec![0u8, 1, 0xfe])).unwrap();
        ws.close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "bye now".into(),
        }))
        .unwrap();
        // Drive the closing handshake to the end (the client's reply arrives).
        while ws.read().is_ok() {}
    });
    let mut client = Client::start(&[&url]);
    assert_eq!(client.next_stdout(), "<binary 3 bytes: 0001fe>");
    let (status, stderr) = client.wait();
    assert!(
        stderr.contains("close received: code 4001 reason \"bye now\""),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(3), "stderr: {stderr}");
    server.join().unwrap();
}

#[test]
fn protocols_and_headers_are_sent_and_the_choice_is_shown() {
    let (url, server) = tungstenite_server(echo_until_close);
    let mut client = Client::start(&[
        "--protocol",
        "other",
        "--protocol",
        "chat.v1",
        "--header",
        "X-Wsd-Test: forty two",
        &url,
    ]);
    client.send_line("x");
    assert_eq!(client.next_stdout(), "echo: x");
    client.end_input();
    let (status, stderr) = client.wait();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("(subprotocol chat.v1)"), "{stderr}");
    let headers = server.join().unwrap();
    assert!(
        headers.iter().any(|h| h == "x-wsd-test: forty two"),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h == "sec-websocket-protocol: other, chat.v1"),
        "{headers:?}"
    );
}

/// A raw TCP server that reads one request head and answers with `response`.
fn raw_server(response: impl Fn(&str) -> Vec<u8> + Send + 'static) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "client closed before sending its request");
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        stream.write_all(&response(&head)).unwrap();
        // Keep the socket open until the client gives up.
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    });
    (format!("ws://{addr}/"), handle)
}

#[test]
fn wrong_accept_key_is_refused() {
    let (url, server) = raw_server(|_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            .into()
    });
    let mut client = Client::start(&[&url]);
    client.end_input();
    let (status, stderr) = client.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Sec-WebSocket-Accept does not match the key"),
        "{stderr}"
    );
    assert!(!stderr.contains("connected to"), "{stderr}");
    server.join().unwrap();
}

#[test]
fn accept_key_computed_from_our_key_is_accepted_by_the_raw_server() {
    // The same raw server, answering correctly, shows the refusal above is about the key.
    let (url, server) = raw_server(|head| {
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_owned();
        let mut response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            wsd::core::accept_key(&key)
        )
        .into_bytes();
        response.extend_from_slice(b"\x81\x02hi"); // a text frame right behind the head
        response
    });
    let mut client = Client::start(&["--close-timeout", "0.5", &url]);
    assert_eq!(client.next_stdout(), "hi");
    client.end_input();
    let (status, stderr) = client.wait();
    assert!(stderr.contains("connected to"), "{stderr}");
    // The raw server never answers our close: a bounded wait, then a failure code.
    assert!(
        stderr.contains("no close from the server within 0.5s"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    server.join().unwrap();
}

#[test]
fn non_101_status_is_reported() {
    let (url, server) = raw_server(|_| {
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
    });
    let mut client = Client::start(&[&url]);
    client.end_input();
    let (status, stderr) = client.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server answered 403, not 101"), "{stderr}");
    server.join().unwrap();
}

#[test]
fn refused_connections_fail_with_a_reason_over_ws_and_wss() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut client = Client::start(&[&format!("ws://127.0.0.1:{port}/")]);
    client.end_input();
    let (status, stderr) = client.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");

    let mut tls = Client::start(&[&format!("wss://127.0.0.1:{port}/")]);
    tls.end_input();
    let (status, stderr) = tls.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
}

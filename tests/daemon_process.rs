//! Behaviour tests of `kind = "process"` routes over loopback: real programs
//! (`/bin/cat`, `/bin/sh` scripts, `/usr/bin/env`) started by the real binary
//! for tungstenite and raw clients. Lines and chunks become messages, the exit
//! status picks the close code, long lines are split or close with 1009, a
//! program that ignores stdin EOF and SIGINT is ended by the ladder,
//! `max_processes` answers 503, no zombie is left after 200 abrupt drops,
//! shutdown ends every program, and a client that stops reading (or a program
//! that stops reading) does not grow wsd's memory.
//!
//! Owns assertions on what clients receive, the daemon's log, and /proc (its
//! children, their states, its RSS). It must never depend on the daemon's
//! internals; every wait is bounded and every flood has a ceiling.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Wsd;
use raw::{
    client_frame, flood, rss_kib, upgrade_status, Next, Raw, OP_BINARY, OP_CLOSE, OP_TEXT, WAIT,
};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

type Client = tungstenite::WebSocket<TcpStream>;

fn config(routes: &str) -> String {
    format!(
        r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "1s"
shutdown = "3s"
{routes}
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

/// Reads messages until the close; returns them (as text) and the close frame.
fn read_to_close(ws: &mut Client) -> (Vec<String>, Option<(u16, String)>) {
    let mut got = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => got.push(t.to_string()),
            Ok(Message::Binary(b)) => got.push(String::from_utf8_lossy(&b).into_owned()),
            Ok(Message::Close(frame)) => {
                return (
                    got,
                    frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                )
            }
            Ok(_) => {}
            Err(e) => panic!("read failed before the close: {e}"),
        }
    }
}

/// The pids of `parent`'s children, and whether any is a zombie.
fn children_of(parent: u32) -> (Vec<u32>, bool) {
    let mut kids = Vec::new();
    let mut zombie = false;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            kids.push(pid);
            zombie |= fields[0] == "Z";
        }
    }
    (kids, zombie)
}

/// Whether process `pid` is gone (or only a zombie nobody else would reap).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.split_whitespace().next() == Some("Z")),
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn cat_echoes_lines_and_the_exit_status_picks_the_close_code() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/cat"
kind = "process"
command = ["/bin/cat"]
[[route]]
path = "/count"
kind = "process"
command = ["/bin/sh", "-c", "i=0; while [ $i -lt 5 ]; do echo line$i; i=$((i+1)); done"]
[[route]]
path = "/fail"
kind = "process"
command = ["/bin/sh", "-c", "printf 'bye\nno newline'; exit 3"]
"#,
    ));
    let mut ws = open(&wsd, "/cat");
    for text in ["hello", "wörld", ""] {
        ws.send(Message::text(text)).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text(text));
    }
    ws.close(None).unwrap();

    let mut ws = open(&wsd, "/count");
    let (got, close) = read_to_close(&mut ws);
    assert_eq!(got, ["line0", "line1", "line2", "line3", "line4"]);
    assert_eq!(
        close,
        Some((1000, "program exited with status 0".to_owned()))
    );

    let mut ws = open(&wsd, "/fail");
    let (got, close) = read_to_close(&mut ws);
    assert_eq!(got, ["bye", "no newline"]);
    assert_eq!(
        close,
        Some((1011, "program exited with status 3".to_owned()))
    );
}

#[test]
fn binary_mode_passes_bytes_both_ways() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/cat"
kind = "process"
command = ["/bin/cat"]
mode = "binary"
"#,
    ));
    let mut ws = open(&wsd, "/cat");
    let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    ws.send(Message::binary(payload.clone())).unwrap();
    let mut back = Vec::new();
    while back.len() < payload.len() {
        match ws.read().unwrap() {
            Message::Binary(b) => back.extend_from_slice(&b),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(back, payload, "no newline added, no byte changed");
}

#[test]
fn long_lines_are_split_or_close_with_1009() {
    let script = "head -c 100 /dev/zero | tr '\\\\0' a; echo; echo short";
    let wsd = Wsd::start(&config(&format!(
        r#"
[[route]]
path = "/split"
kind = "process"
command = ["/bin/sh", "-c", "{script}"]
max_line = 40
[[route]]
path = "/close"
kind = "process"
command = ["/bin/sh", "-c", "{script}; sleep 5"]
max_line = 40
long_lines = "close"
"#
    )));
    let mut ws = open(&wsd, "/split");
    let (got, _) = read_to_close(&mut ws);
    let lens: Vec<usize> = got.iter().map(String::len).collect();
    assert_eq!(lens, [40, 40, 20, 5]);
    assert_eq!(got[3], "short");

    let mut ws = open(&wsd, "/close");
    let (got, close) = read_to_close(&mut ws);
    assert!(got.is_empty(), "nothing of the long line is sent: {got:?}");
    assert_eq!(close.map(|c| c.0), Some(1009));
}

#[test]
fn the_environment_is_cgi_with_the_headers_and_nothing_else() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/env"
kind = "process"
command = ["/usr/bin/env"]
"#,
    ));
    let mut raw = Raw::connect(wsd.addr);
    raw.send(
        raw::upgrade_request(
            "/env?a=1&b=2",
            "X-Trace-Id: t-7\r\nAuthorization: Bearer secret\r\n",
        )
        .as_bytes(),
    );
    assert_eq!(raw.read_head(WAIT).expect("response").status, 101);
    let mut env = Vec::new();
    loop {
        match raw.read_frame(WAIT) {
            Next::Frame(f) if f.opcode == OP_TEXT => {
                env.push(String::from_utf8(f.payload).unwrap())
            }
            Next::Frame(f) if f.opcode == OP_CLOSE => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let has = |line: &str| env.iter().any(|l| l == line);
    assert!(has("QUERY_STRING=a=1&b=2"), "{env:?}");
    assert!(has("REQUEST_URI=/env?a=1&b=2"));
    assert!(has("SCRIPT_NAME=/env"));
    assert!(has("REMOTE_ADDR=127.0.0.1"));
    assert!(has(&format!("SERVER_PORT={}", wsd.addr.port())));
    assert!(has("HTTP_X_TRACE_ID=t-7"));
    assert!(env.iter().any(|l| l.starts_with("REMOTE_PORT=")));
    assert!(
        !env.iter().any(|l| l.contains("secret")),
        "Authorization is not passed"
    );
    assert!(
        !env.iter().any(|l| l.starts_with("HOME=")),
        "only passenv is inherited"
    );
}

#[test]
fn stderr_goes_to_the_log_or_to_the_client() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/log"
kind = "process"
command = ["/bin/sh", "-c", "echo to-the-log >&2; echo out"]
[[route]]
path = "/client"
kind = "process"
command = ["/bin/sh", "-c", "echo 'to \"client\"' >&2"]
stderr = "client"
"#,
    ));
    let mut ws = open(&wsd, "/log");
    let (got, _) = read_to_close(&mut ws);
    assert_eq!(got, ["out"]);
    assert!(wsd
        .wait_for_log("program stderr: to-the-log", WAIT)
        .is_some());

    let mut ws = open(&wsd, "/client");
    let (got, _) = read_to_close(&mut ws);
    assert_eq!(got, [r#"{"stream":"stderr","data":"to \"client\""}"#]);
}

#[test]
fn a_program_that_cannot_start_closes_with_1011_and_a_log_line() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/missing"
kind = "process"
command = ["/nonexistent/program"]
"#,
    ));
    let mut ws = open(&wsd, "/missing");
    let (got, close) = read_to_close(&mut ws);
    assert!(got.is_empty());
    assert_eq!(
        close,
        Some((1011, "program could not be started".to_owned()))
    );
    let line = wsd
        .wait_for_log("could not be started", WAIT)
        .expect("log line");
    assert!(line.contains("/nonexistent/program"), "{line}");
}

#[test]
fn a_program_that_ignores_eof_sigint_and_sigterm_is_killed_by_the_ladder() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/stubborn"
kind = "process"
command = ["/bin/sh", "-c", "trap '' INT TERM; echo $$; while :; do sleep 0.05; done"]
kill_grace = "200ms"
[[route]]
path = "/polite"
kind = "process"
command = ["/bin/sh", "-c", "trap 'exit 0' INT; echo $$; while :; do sleep 0.05; done"]
kill_grace = "200ms"
"#,
    ));
    let wsd_pid = wsd.child.id();
    for (path, at_least, at_most) in [
        (
            "/polite",
            Duration::from_millis(150),
            Duration::from_secs(3),
        ),
        (
            "/stubborn",
            Duration::from_millis(550),
            Duration::from_secs(5),
        ),
    ] {
        let mut ws = open(&wsd, path);
        let pid: u32 = match ws.read().unwrap() {
            Message::Text(t) => t.trim().parse().unwrap(),
            other => panic!("expected the pid, got {other:?}"),
        };
        assert!(children_of(wsd_pid).0.contains(&pid));
        let closed = Instant::now();
        ws.close(None).unwrap();
        let _ = read_to_close_or_eof(&mut ws);
        assert!(
            wait_until(at_most, || gone(pid)),
            "{path}: program {pid} still running"
        );
        let took = closed.elapsed();
        assert!(
            took >= at_least,
            "{path}: ended after {took:?}, before its signal"
        );
        assert!(
            wait_until(WAIT, || !children_of(wsd_pid).0.contains(&pid)),
            "{path}: program {pid} not reaped"
        );
    }
}

fn read_to_close_or_eof(ws: &mut Client) -> Option<()> {
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn over_max_processes_the_upgrade_gets_503() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/cat"
kind = "process"
command = ["/bin/cat"]
max_processes = 2
kill_grace = "100ms"
"#,
    ));
    let mut a = open(&wsd, "/cat");
    let b = open(&wsd, "/cat");
    let refused = upgrade_status(wsd.addr, "/cat", "");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    a.close(None).unwrap();
    let _ = read_to_close_or_eof(&mut a);
    drop(b);
    // Once the programs are reaped, there is room again.
    assert!(wait_until(WAIT, || children_of(wsd.child.id())
        .0
        .is_empty()));
    let mut c = open(&wsd, "/cat");
    c.send(Message::text("again")).unwrap();
    assert_eq!(c.read().unwrap(), Message::text("again"));
}

#[test]
fn no_zombie_is_left_after_200_connections_dropped_abruptly() {
    let wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/cat"
kind = "process"
command = ["/bin/cat"]
max_processes = 300
kill_grace = "200ms"
"#,
    ));
    let wsd_pid = wsd.child.id();
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut raw = Raw::upgrade(wsd.addr, "/cat");
        raw.send(&client_frame(OP_TEXT, b"x"));
        clients.push(raw);
    }
    // Every program answered, so every one is running.
    for raw in &mut clients {
        let f = raw.expect_frame("the echo");
        assert_eq!(f.payload, b"x");
    }
    assert_eq!(children_of(wsd_pid).0.len(), 200);
    drop(clients); // no close frames: the sockets just go
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (kids, _) = children_of(wsd_pid);
            kids.is_empty()
        }),
        "children left: {:?}",
        children_of(wsd_pid)
    );
    // wsd still serves.
    let mut ws = open(&wsd, "/cat");
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("still here"));
}

#[test]
fn shutdown_ends_every_program() {
    let mut wsd = Wsd::start(&config(
        r#"
[[route]]
path = "/loop"
kind = "process"
command = ["/bin/sh", "-c", "trap '' INT; echo $$; while :; do sleep 0.05; done"]
kill_grace = "200ms"
"#,
    ));
    let mut pids = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = open(&wsd, "/loop");
        match ws.read().unwrap() {
            Message::Text(t) => pids.push(t.trim().parse::<u32>().unwrap()),
            other => panic!("expected the pid, got {other:?}"),
        }
        clients.push(ws);
    }
    // The clients answer the server's close 1001 in a thread each.
    let answering: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            std::thread::spawn(move || loop {
                match ws.read() {
                    Ok(Message::Close(f)) => return f.map(|f| f.code),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            })
        })
        .collect();
    let status = wsd.terminate(Duration::from_secs(10)).expect("wsd exits");
    assert!(status.success(), "{status:?}");
    for a in answering {
        assert_eq!(a.join().unwrap(), Some(CloseCode::Away));
    }
    for pid in pids {
        assert!(wait_until(WAIT, || gone(pid)), "program {pid} outlived wsd");
    }
}

/// A client that stops reading while its program writes without end: the
/// program is held back by its full pipe and wsd's memory stays bounded.
#[test]
fn a_client_that_stops_reading_holds_the_program_back() {
    let wsd = Wsd::start(&config(
        r#"
[limits]
read_pause_bytes = 65536
max_message_bytes = 65536
max_send_buffer_bytes = 1048576
[[route]]
path = "/zero"
kind = "process"
command = ["/bin/cat", "/dev/zero"]
mode = "binary"
"#,
    ));
    let pid = wsd.child.id();
    let before = rss_kib(pid);
    let mut raw = Raw::connect_small_rcvbuf(wsd.addr).upgrade_on("/zero");
    let _ = raw.read_frame(Duration::from_millis(200));
    std::thread::sleep(Duration::from_secs(2));
    let during = rss_kib(pid);
    assert!(
        during < before + 16 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    // The program is still there, blocked on its pipe.
    assert_eq!(children_of(pid).0.len(), 1);
    // And the loop still serves others.
    let other = upgrade_status(wsd.addr, "/nothing-here", "");
    assert_eq!(other.status, 404);
}

/// A program that never reads stdin while the client floods: wsd stops
/// reading the client, and its memory stays bounded.
#[test]
fn a_program_that_stops_reading_holds_the_client_back() {
    let wsd = Wsd::start(&config(
        r#"
[limits]
read_pause_bytes = 65536
max_message_bytes = 65536
[[route]]
path = "/deaf"
kind = "process"
command = ["/bin/sleep", "30"]
mode = "binary"
kill_grace = "100ms"
"#,
    ));
    let pid = wsd.child.id();
    let before = rss_kib(pid);
    let mut raw = Raw::upgrade(wsd.addr, "/deaf");
    let frame = client_frame(OP_BINARY, &vec![7u8; 60_000]);
    let sent = flood(&mut raw, &frame, 2000);
    let during = rss_kib(pid);
    assert!(
        sent < 2000 * frame.len(),
        "wsd took all {sent} bytes: it never stopped reading"
    );
    assert!(
        during < before + 16 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
}

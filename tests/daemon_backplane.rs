//! Behaviour tests of the Redis backplane: a real `redis-server` on a free
//! loopback port, two real wsd daemons on different ports sharing chat rooms
//! through it, tungstenite clients on both. Every message reaches every member
//! once and in order, announcements count members of both daemons, and when
//! Redis is killed and restarted local delivery goes on, the daemons
//! reconnect and resubscribe, the gap is counted and `/readyz` said so.
//!
//! Owns assertions on what clients receive, the daemons' logs and `/metrics`.
//! It must never depend on the daemon's internals; every wait is bounded.
//! Needs `redis-server` on PATH (`.ci/run` installs the Debian package).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Wsd;
use raw::http_exchange;
use tungstenite::Message;

type Client = tungstenite::WebSocket<TcpStream>;

const WAIT: Duration = Duration::from_secs(10);

/// A `redis-server` on `port`, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(redis_port: u16) -> String {
    format!(
        r#"
[log]
level = "info"
[metrics]
listen = "127.0.0.1:0"
[timeouts]
ping_interval = "0s"
[backplane]
redis = "redis://127.0.0.1:{redis_port}"
channel_prefix = "test:"
[[route]]
path = "/chat"
kind = "chat"
"#
    )
}

fn metrics_addr(wsd: &Wsd) -> SocketAddr {
    wsd.wait_for_log("metrics on ", WAIT)
        .and_then(|l| {
            l.split("metrics on ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("metrics address in the log")
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = http_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    (r.status, r.body_text())
}

fn metric(addr: SocketAddr, line_start: &str) -> Option<u64> {
    get(addr, "/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

fn join(wsd: &Wsd, room: &str) -> Client {
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    tungstenite::client(wsd.url(&format!("/chat?room={room}")), stream)
        .expect("handshake")
        .0
}

fn next_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return format!("binary:{}", String::from_utf8_lossy(&b)),
            _ => {}
        }
    }
}

/// Reads until a message that is not an announcement.
fn next_chat(ws: &mut Client) -> String {
    loop {
        let t = next_text(ws);
        if !t.starts_with("{\"type\"") {
            return t;
        }
    }
}

/// Both daemons have subscribed to the room once each logs a connection and
/// a message sent from one side arrives on the other.
fn until_relayed(from: &mut Client, to: &mut Client) {
    let deadline = Instant::now() + WAIT;
    for i in 0.. {
        assert!(Instant::now() < deadline, "nothing relayed");
        let probe = format!("probe {i}");
        from.send(Message::text(probe.clone())).unwrap();
        to.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let got = loop {
            match to.read() {
                Ok(Message::Text(t)) if t.starts_with("probe") => break Some(t.to_string()),
                Ok(_) => {}
                Err(_) => break None,
            }
        };
        to.get_mut().set_read_timeout(Some(WAIT)).unwrap();
        if got.is_some() {
            // Drain the sender's own probes.
            from.get_mut()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            while from.read().is_ok() {}
            from.get_mut().set_read_timeout(Some(WAIT)).unwrap();
            to.get_mut()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            while to.read().is_ok() {}
            to.get_mut().set_read_timeout(Some(WAIT)).unwrap();
            return;
        }
    }
}

#[test]
fn two_daemons_share_a_room_every_message_once_and_in_order() {
    let redis = Redis::start(free_port());
    let one = Wsd::start(&config(redis.port));
    let two = Wsd::start(&config(redis.port));
    assert!(one.wait_for_log("backplane: connected", WAIT).is_some());
    assert!(two.wait_for_log("backplane: connected", WAIT).is_some());

    let mut a = join(&one, "lobby");
    assert!(next_text(&mut a).contains("\"welcome\""));
    let mut b = join(&two, "lobby");
    // The room is new on daemon two: its welcome counts what it knows, then
    // daemon one answers b's join with its count.
    let welcome = next_text(&mut b);
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    // a hears of b's join through Redis, with the count of both daemons.
    let joined = next_text(&mut a);
    assert!(
        joined.contains("\"join\"") && joined.contains("\"members\":2"),
        "{joined}"
    );
    // A member in another room on daemon two hears nothing of lobby.
    let mut elsewhere = join(&two, "other");
    let _ = next_text(&mut elsewhere);

    for i in 0..50 {
        a.send(Message::text(format!("a{i}"))).unwrap();
        b.send(Message::text(format!("b{i}"))).unwrap();
    }
    a.send(Message::binary(b"bin".to_vec())).unwrap();
    for ws in [&mut a, &mut b] {
        let mut from_a = Vec::new();
        let mut from_b = Vec::new();
        while from_a.len() + from_b.len() < 101 {
            let t = next_chat(ws);
            if t.starts_with('a') || t.starts_with("binary:") {
                from_a.push(t);
            } else {
                from_b.push(t);
            }
        }
        let mut expect_a: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
        expect_a.push("binary:bin".to_owned());
        let expect_b: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
        assert_eq!(from_a, expect_a, "in order, once each");
        assert_eq!(from_b, expect_b, "in order, once each");
    }
    // Nothing more: no duplicate arrived late.
    for ws in [&mut a, &mut b, &mut elsewhere] {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match ws.read() {
            Ok(Message::Text(t)) => panic!("unexpected extra message {t}"),
            Ok(Message::Binary(b)) => panic!("unexpected extra message {b:?}"),
            _ => {}
        }
    }
    // A third member on daemon two is welcomed with the count of both.
    let mut c = join(&two, "lobby");
    let welcome = next_text(&mut c);
    assert!(welcome.contains("\"members\":3"), "{welcome}");
    let _ = next_text(&mut a); // c's join
    drop(c);
    let _ = next_text(&mut a); // c's leave
                               // b leaves: a is told, with the count.
    drop(b);
    a.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    let left = next_text(&mut a);
    assert!(
        left.contains("\"leave\"") && left.contains("\"members\":1"),
        "{left}"
    );
}

#[test]
fn redis_restarting_costs_only_what_was_sent_while_it_was_away() {
    let port = free_port();
    let mut redis = Redis::start(port);
    let one = Wsd::start(&config(port));
    let two = Wsd::start(&config(port));
    let metrics_one = metrics_addr(&one);
    assert!(one.wait_for_log("backplane: connected", WAIT).is_some());
    assert!(two.wait_for_log("backplane: connected", WAIT).is_some());
    assert_eq!(get(metrics_one, "/readyz").0, 200);

    let mut a = join(&one, "r");
    let mut a2 = join(&one, "r");
    let mut b = join(&two, "r");
    until_relayed(&mut a, &mut b);
    let _ = next_text(&mut a2); // b's join
    while a2
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_ok()
        && a2.read().is_ok()
    {}
    a2.get_mut().set_read_timeout(Some(WAIT)).unwrap();

    redis.kill();
    assert!(one.wait_for_log("backplane: lost redis", WAIT).is_some());
    // Local delivery goes on: a2 (same daemon) gets what a sends.
    a.send(Message::text("while away")).unwrap();
    assert_eq!(next_chat(&mut a2), "while away");
    let (status, body) = get(metrics_one, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        metric(metrics_one, "wsd_backplane_up "),
        Some(0),
        "the gauge says so"
    );

    let _redis = Redis::start(port);
    let back = one
        .wait_for_log("backplane: redis", Duration::from_secs(15))
        .expect("reconnected");
    assert!(back.contains("back after"), "{back}");
    assert!(back.contains("1 messages published meanwhile"), "{back}");
    assert!(two
        .wait_for_log("back after", Duration::from_secs(15))
        .is_some());
    // Resubscribed: delivery across daemons resumes.
    until_relayed(&mut a, &mut b);
    b.send(Message::text("after")).unwrap();
    assert_eq!(next_chat(&mut a), "after");
    assert_eq!(get(metrics_one, "/readyz").0, 200);
    assert_eq!(
        metric(metrics_one, "wsd_backplane_dropped_total{reason=\"down\"} "),
        Some(1)
    );
    assert_eq!(metric(metrics_one, "wsd_backplane_outages_total "), Some(1));
}

#[test]
fn the_publish_api_reaches_members_on_both_daemons() {
    let redis = Redis::start(free_port());
    let with_api = format!(
        "{}\n[api]\nkeys = [\"backend-key-0123456789\"]\n",
        config(redis.port)
    );
    let one = Wsd::start(&with_api);
    let two = Wsd::start(&with_api);
    assert!(one.wait_for_log("backplane: connected", WAIT).is_some());
    assert!(two.wait_for_log("backplane: connected", WAIT).is_some());
    let mut a = join(&one, "alerts");
    let mut b = join(&two, "alerts");
    until_relayed(&mut a, &mut b);
    let body = br#"{"route":"/chat","room":"alerts","data":"deploy done"}"#;
    let mut request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer backend-key-0123456789\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let reply = http_exchange(one.addr, &request);
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(next_chat(&mut a), "deploy done");
    assert_eq!(next_chat(&mut b), "deploy done");
}

#[test]
fn two_workers_share_rooms_through_the_backplane() {
    let redis = Redis::start(free_port());
    let config = format!(
        "[server]\nworkers = 2\n{}",
        config(redis.port).replace("[metrics]\nlisten = \"127.0.0.1:0\"\n", "")
    );
    let wsd = Wsd::start(&config);
    // A worker connected to Redis (the probe below waits for both).
    assert!(wsd.wait_for_log("backplane: connected", WAIT).is_some());
    // Members join until both workers hold some: each worker numbers its own
    // connections from 1, so a repeated welcome id means a second worker.
    let mut members = Vec::new();
    let mut ids = Vec::new();
    while members.len() < 40 {
        let mut ws = join(&wsd, "lobby");
        let welcome = next_text(&mut ws);
        let id: u64 = welcome
            .split("\"id\":")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .expect("welcome id");
        ids.push(id);
        members.push(ws);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if members.len() >= 8 && sorted.len() < ids.len() {
            break;
        }
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() < ids.len(),
        "both workers hold members: ids {ids:?}"
    );
    // Wait until both workers are subscribed: a probe from the first member
    // reaches every member.
    let (first, rest) = members.split_first_mut().expect("members");
    let deadline = Instant::now() + WAIT;
    'probe: for i in 0.. {
        assert!(
            Instant::now() < deadline,
            "rooms never joined across workers"
        );
        let probe = format!("probe {i}");
        first.send(Message::text(probe.clone())).unwrap();
        for ws in rest.iter_mut() {
            ws.get_mut()
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let got = loop {
                match ws.read() {
                    Ok(Message::Text(t)) if t.as_str() == probe => break true,
                    Ok(_) => {}
                    Err(_) => break false,
                }
            };
            ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
            if !got {
                continue 'probe;
            }
        }
        break;
    }
    for ws in members.iter_mut() {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        while ws.read().is_ok() {}
        ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    }
    // Every member's message reaches every member once, in order.
    let n = members.len();
    for (i, ws) in members.iter_mut().enumerate() {
        ws.send(Message::text(format!("m{i}"))).unwrap();
    }
    for ws in members.iter_mut() {
        let mut got: Vec<String> = (0..n).map(|_| next_chat(ws)).collect();
        got.sort();
        let mut want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        want.sort();
        assert_eq!(got, want);
    }
}

#[test]
fn a_redis_that_stops_answering_is_noticed_and_rejoined() {
    let mut redis = Redis::start(free_port());
    let one = Wsd::start(&config(redis.port));
    let metrics = metrics_addr(&one);
    assert!(one.wait_for_log("backplane: connected", WAIT).is_some());
    let mut a = join(&one, "r");
    let _ = next_text(&mut a);
    // SIGSTOP: the sockets stay open and the kernel still accepts, but
    // nothing answers.
    let pid = redis.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    a.send(Message::text("into the void")).unwrap();
    assert_eq!(next_chat(&mut a), "into the void", "local delivery goes on");
    let lost = one
        .wait_for_log("backplane: lost redis", Duration::from_secs(15))
        .expect("a silent Redis is noticed");
    assert!(lost.contains("no reply"), "{lost}");
    assert_eq!(get(metrics, "/readyz").0, 503);
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let back = one
        .wait_for_log("back after", Duration::from_secs(20))
        .expect("back once Redis answers");
    assert!(back.contains("1 rooms resubscribed"), "{back}");
    assert_eq!(get(metrics, "/readyz").0, 200);
    redis.kill();
}

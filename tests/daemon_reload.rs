//! Behaviour tests of SIGHUP reloading `config.toml` over loopback: live
//! connections stay open and keep working, a new route is served to new
//! clients and a removed one is gone, chat rooms keep their members across the
//! reload, a bad file is refused (naming file, line and key) with the old
//! routes still working, listeners open and close as the file says, the log
//! level changes and the log file is reopened after logrotate moved it.
//!
//! Owns assertions on what independent clients (tungstenite, raw HTTP) and the
//! daemon's log see. It must never depend on the daemon's internals; every
//! wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::Wsd;
use raw::{http_exchange, upgrade_status};
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

const BEFORE: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"

[[route]]
path = "/echo"
kind = "echo"

[[route]]
path = "/gone-soon"
kind = "echo"

[[route]]
path = "/chat"
kind = "chat"
announce = false
"#;

type Client = tungstenite::WebSocket<TcpStream>;

fn open(addr: SocketAddr, path: &str) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    tungstenite::client(format!("ws://{addr}{path}"), stream)
        .expect("handshake")
        .0
}

fn round_trip(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text(text));
}

/// Rewrites the daemon's config file and sends SIGHUP; returns the reload's log line.
fn reload(wsd: &Wsd, config: &str) -> String {
    std::fs::write(wsd.dir.join("config.toml"), config).expect("rewrite config");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &wsd.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wsd.wait_for_log("SIGHUP: config", WAIT)
        .expect("a reload log line")
}

#[test]
fn a_reload_keeps_live_connections_and_rooms_and_serves_the_new_routes() {
    let wsd = Wsd::start(BEFORE);
    let mut echo = open(wsd.addr, "/echo");
    let mut member = open(wsd.addr, "/chat?room=r");
    round_trip(&mut echo, "before");

    let after = BEFORE
        .replace("path = \"/gone-soon\"", "path = \"/new\"")
        .replace("announce = false", "announce = false\nmax_members = 2");
    let line = reload(&wsd, &after);
    assert!(line.contains("config reloaded"), "{line}");
    assert!(line.contains("route /new added"), "{line}");
    assert!(line.contains("route /gone-soon removed"), "{line}");
    assert!(line.contains("route /chat changed"), "{line}");

    // The live connections go on; new clients see the new table.
    round_trip(&mut echo, "after");
    let mut fresh = open(wsd.addr, "/new");
    round_trip(&mut fresh, "new route");
    assert_eq!(upgrade_status(wsd.addr, "/gone-soon", "").status, 404);
    // The room kept its member: a newcomer meets it, under the new limit.
    let mut newcomer = open(wsd.addr, "/chat?room=r");
    newcomer.send(Message::text("hello from after")).unwrap();
    assert_eq!(member.read().unwrap(), Message::text("hello from after"));
    assert_eq!(upgrade_status(wsd.addr, "/chat?room=r", "").status, 503);
}

#[test]
fn a_bad_file_is_refused_by_line_and_key_and_the_old_routes_still_work() {
    let wsd = Wsd::start(BEFORE);
    let mut echo = open(wsd.addr, "/echo");
    let broken = BEFORE.replace(
        "kind = \"echo\"\n\n[[route]]\npath = \"/gone-soon\"",
        "kind = \"echo\"\nmax_rooms = 3\n\n[[route]]\npath = \"/gone-soon\"",
    );
    assert_ne!(broken, BEFORE);
    let line = reload(&wsd, &broken);
    assert!(line.contains("config not reloaded"), "{line}");
    assert!(line.contains("config.toml:10"), "names the line: {line}");
    assert!(line.contains("max_rooms"), "names the key: {line}");
    round_trip(&mut echo, "still here");
    let mut again = open(wsd.addr, "/gone-soon");
    round_trip(&mut again, "old table in force");
    // Not TOML at all: the same.
    let line = reload(&wsd, "[[route]\n");
    assert!(line.contains("config not reloaded"), "{line}");
    round_trip(&mut echo, "and still");
}

#[test]
fn listeners_open_and_close_as_the_file_says() {
    let wsd = Wsd::start(BEFORE);
    let with_metrics = format!("{BEFORE}\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let line = reload(&wsd, &with_metrics);
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no new listener in {line:?}"));
    assert!(line.contains("(metrics)"), "{line}");
    let health = http_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(health.status, 200);
    let metrics = http_exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        metrics
            .body_text()
            .contains("wsd_reloads_total{result=\"ok\"} 1\n"),
        "{}",
        metrics.body_text()
    );
    let line = reload(&wsd, BEFORE);
    assert!(line.contains(&format!("closed {addr} (metrics)")), "{line}");
    assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts");
    // The main listener was kept all along.
    let mut echo = open(wsd.addr, "/echo");
    round_trip(&mut echo, "main listener kept");
}

#[test]
fn the_log_level_changes_and_a_moved_log_file_is_reopened() {
    let dir = common::temp_dir("reload-log");
    let log = dir.join("wsd.log");
    let config = BEFORE.replace(
        "level = \"info\"",
        &format!("level = \"info\"\nfile = {:?}", log.display().to_string()),
    );
    let wsd = Wsd::start(&config);
    let mut echo = open(wsd.addr, "/echo");
    round_trip(&mut echo, "logged at debug only");
    // logrotate moves the file away, then signals.
    let rotated = dir.join("wsd.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let debug = config.replace("level = \"info\"", "level = \"debug\"");
    let line = reload(&wsd, &debug);
    assert!(line.contains("log changed"), "{line}");
    // A debug line appears for a new connection, in a new file at the old path.
    let _second = open(wsd.addr, "/echo");
    let deadline = std::time::Instant::now() + WAIT;
    let fresh = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("upgraded on /echo") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no debug line in the new file: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(fresh.contains("config reloaded"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    assert!(old.contains("started"), "{old}");
    assert!(
        !old.contains("upgraded on"),
        "info level wrote a debug line: {old}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_that_cannot_bind_changes_nothing_not_even_a_kept_routes_settings() {
    let config = BEFORE.replace("announce = false", "announce = false\nmax_members = 2");
    let wsd = Wsd::start(&config);
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = occupied.local_addr().unwrap();
    let tighter = format!(
        "{}\n[metrics]\nlisten = \"{taken}\"\n",
        config.replace("max_members = 2", "max_members = 1")
    );
    let line = reload(&wsd, &tighter);
    assert!(line.contains("config not reloaded"), "{line}");
    assert!(line.contains(&taken.to_string()), "{line}");
    // The old limit of 2 members still holds.
    let _first = open(wsd.addr, "/chat?room=r");
    let _second = open(wsd.addr, "/chat?room=r");
    assert_eq!(upgrade_status(wsd.addr, "/chat?room=r", "").status, 503);
}

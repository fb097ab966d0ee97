//! Behaviour tests of the daemon's listeners: IPv4 and IPv6 loopback at once,
//! each serving WebSocket and HTTP, and a listen address that cannot be bound
//! failing the start clearly.
//!
//! Owns assertions on which addresses answer. It must never use anything but
//! loopback addresses.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::SocketAddr;

use common::Wsd;
use raw::{http_exchange, Raw, OP_TEXT, WAIT};

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
fn ipv4_and_ipv6_loopback_are_served_at_once() {
    let wsd = Wsd::start_with_args(CONFIG, &["--listen", "[::1]:0"]);
    let line = wsd
        .wait_for_log("listening on [::1]:", WAIT)
        .expect("a second listener on ::1");
    let v6: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("an IPv6 address in the log line");
    assert!(v6.is_ipv6());
    for addr in [wsd.addr, v6] {
        let mut ws = Raw::upgrade(addr, "/echo");
        ws.send_frame(true, OP_TEXT, addr.to_string().as_bytes());
        assert_eq!(ws.expect_frame("echo").payload, addr.to_string().as_bytes());
        let r = http_exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{addr}");
    }
}

#[test]
fn an_address_already_in_use_fails_the_start_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = common::temp_dir("listen");
    let config = dir.join("wsd.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsd"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", &addr])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsd kept running on an address in use");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&addr),
        "the error names the address: {stderr}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
}

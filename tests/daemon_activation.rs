//! Behaviour test of systemd socket activation: the test binds a listening
//! socket, hands it to wsd as descriptor 3 with `LISTEN_FDS=1` and
//! `LISTEN_PID` set to wsd's own pid (as systemd does), and checks that wsd
//! serves it instead of binding its configured address, keeps it across a
//! reload, and ignores a hand-over meant for another pid.
//!
//! Owns assertions on what a tungstenite client sees. It must never depend on
//! the daemon's internals; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// Starts wsd through `sh -c 'LISTEN_PID=$$ ... exec wsd'` (the shell's pid
/// becomes wsd's) with `listener` as descriptor 3; returns the child and its
/// log lines.
fn start_activated(
    listener: &TcpListener,
    config: &std::path::Path,
    pid_var: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            &format!(
                "LISTEN_PID={pid_var} LISTEN_FDS=1 LISTEN_FDNAMES=ws exec \"$0\" --config \"$1\""
            ),
            env!("CARGO_BIN_EXE_wsd"),
        ])
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only dup2 or fcntl runs (both
    // async-signal-safe); the listener ends up at descriptor 3 without
    // close-on-exec.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear the flag instead.
            let moved = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn sh");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Option<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn echo_once(addr: std::net::SocketAddr) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/echo"), stream).expect("handshake");
    ws.send(Message::text("activated")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("activated"));
}

#[test]
fn wsd_serves_the_socket_systemd_passes_and_keeps_it_on_reload() {
    let dir = common::temp_dir("activation");
    let config = dir.join("config.toml");
    // The configured address would be a second port; it must not be bound.
    let unused = TcpListener::bind("127.0.0.1:0").unwrap();
    let unused_addr = unused.local_addr().unwrap();
    drop(unused);
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"{unused_addr}\"]\n[log]\nlevel = \"info\"\n\
             [[route]]\npath = \"/echo\"\nkind = \"echo\"\n"
        ),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut child, log) = start_activated(&listener, &config, "$$");
    drop(listener);
    assert!(
        wait_for(&log, "socket activation").is_some(),
        "no activation line"
    );
    let listening = wait_for(&log, "listening on").expect("a listening line");
    assert!(listening.contains(&addr.to_string()), "{listening}");
    echo_once(addr);
    assert!(
        TcpStream::connect(unused_addr).is_err(),
        "the configured address was bound"
    );

    // A reload keeps the inherited socket.
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_for(&log, "config reloaded").is_some());
    echo_once(addr);
    assert!(TcpStream::connect(unused_addr).is_err());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hand_over_for_another_pid_is_ignored() {
    let dir = common::temp_dir("activation-other");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[log]\nlevel = \"info\"\n\
         [[route]]\npath = \"/echo\"\nkind = \"echo\"\n",
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut child, log) = start_activated(&listener, &config, "1");
    let line = wait_for(&log, "listening on").expect("a listening line");
    let bound: std::net::SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("an address");
    assert_ne!(
        bound,
        listener.local_addr().unwrap(),
        "took a socket meant for pid 1"
    );
    echo_once(bound);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

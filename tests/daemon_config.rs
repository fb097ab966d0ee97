//! Behaviour tests of config handling by the real binary: `--check-config` accepts
//! the shipped `config.toml` and refuses broken files with an error that names
//! the file, the line and the key; `--config` with a missing or broken file fails
//! clearly instead of starting; without any config the built-in defaults serve
//! `/echo` and `/chat`; `hash-password` makes hashes a `[[user]]` entry accepts.
//!
//! Owns assertions on exit codes and stderr. It must never leave a process
//! behind: every run is bounded and killed if it overstays.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::temp_dir;

const WAIT: Duration = Duration::from_secs(10);

/// Runs `wsd ARGS` from the repository root; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsd");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsd {args:?} still running after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().expect("an exit code"),
        out_thread.join().unwrap(),
        err_thread.join().unwrap(),
    )
}

/// A config file in its own temp directory, removed on drop.
struct TempConfig(std::path::PathBuf);

impl TempConfig {
    fn path(&self) -> String {
        self.0.join("wsd.toml").display().to_string()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to a fresh config file.
fn config_file(tag: &str, text: &str) -> TempConfig {
    let config = TempConfig(temp_dir(tag));
    std::fs::write(config.path(), text).unwrap();
    config
}

/// Checks that `--check-config` refuses `text`, naming the file, the line and the key.
fn refused(tag: &str, text: &str, line: usize, key: &str) -> String {
    let config = config_file(tag, text);
    let file = config.path();
    let (code, _, stderr) = run(&["--check-config", &file]);
    assert_eq!(code, 1, "{tag}: {stderr}");
    assert!(
        stderr.contains(&file),
        "{tag}: the error names the file: {stderr}"
    );
    assert!(
        stderr.contains(&format!(":{line}")),
        "{tag}: the error names line {line}: {stderr}"
    );
    assert!(
        stderr.contains(key),
        "{tag}: the error names `{key}`: {stderr}"
    );
    stderr
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let (code, stdout, stderr) = run(&["--check-config", "config.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn check_config_accepts_every_documented_key_set_explicitly() {
    let config = config_file(
        "full",
        r#"
[server]
listen = ["127.0.0.1:9001", "[::1]:9001"]
backlog = 128
max_connections = 100

[limits]
max_request_bytes = 4096
max_headers = 32
max_frame_bytes = 65536
max_message_bytes = 1048576
max_send_buffer_bytes = 2097152
read_pause_bytes = 65536
slow_consumer = "drop"

[timeouts]
handshake = "250ms"
ping_interval = "0s"
ping_timeout = "1m"
close = "2s"
shutdown = "1.5s"

[log]
level = "debug"
terminal = false

[static]
enabled = true
root = "www"
index = "index.html"

[[route]]
path = "/a"
kind = "chat"
protocols = ["x"]
require_protocol = true
origins = ["https://example.org"]
require_origin = true
auth = "ticket"
tickets = ["t"]
ticket_param = "tk"
room_param = "r"
max_rooms = 3
max_members = 4
announce = false
echo_to_sender = false

[[route]]
path = "/b"
kind = "echo"
auth = "cookie"
cookie_name = "c"
cookie_values = ["v"]
"#,
    );
    let file = config.path();
    let (code, _, stderr) = run(&["--check-config", &file]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn unknown_key_is_refused_naming_file_line_and_key() {
    refused(
        "unknown-key",
        "[limits]\nmax_headers = 10\nmax_hedaers = 20\n",
        3,
        "max_hedaers",
    );
}

#[test]
fn unknown_key_in_a_route_is_refused() {
    refused(
        "route-key",
        "[[route]]\npath = \"/x\"\nkind = \"echo\"\nprotocol = [\"a\"]\n",
        4,
        "protocol",
    );
}

#[test]
fn wrong_type_is_refused_naming_file_line_and_key() {
    refused(
        "wrong-type",
        "[server]\nbacklog = 16\n\n[limits]\nmax_headers = \"many\"\n",
        5,
        "max_headers",
    );
}

#[test]
fn malformed_duration_is_refused_naming_the_key() {
    refused(
        "duration",
        "[timeouts]\nclose = \"2s\"\nhandshake = \"ten seconds\"\n",
        3,
        "handshake",
    );
}

#[test]
fn a_send_buffer_smaller_than_a_message_is_refused_naming_the_key() {
    refused(
        "send-buffer",
        "[limits]\nmax_message_bytes = 65536\nmax_send_buffer_bytes = 65536\n",
        3,
        "max_send_buffer_bytes",
    );
}

#[test]
fn a_bad_listen_address_is_refused() {
    refused(
        "listen",
        "[server]\nlisten = [\"localhost:http\"]\n",
        2,
        "listen",
    );
}

#[test]
fn a_missing_static_root_is_refused() {
    let config = config_file(
        "root",
        "[static]\nroot = \"/nonexistent/wsd-static-root\"\n",
    );
    let file = config.path();
    let (code, _, stderr) = run(&["--check-config", &file]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/wsd-static-root"), "{stderr}");
}

#[test]
fn config_that_is_not_toml_is_refused_with_its_line() {
    let config = config_file("syntax", "[server]\nbacklog = 16\nthis is not toml\n");
    let file = config.path();
    let (code, _, stderr) = run(&["--check-config", &file]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&file) && stderr.contains(":3"), "{stderr}");
}

#[test]
fn a_missing_config_file_fails_clearly() {
    for flag in ["--config", "--check-config"] {
        let (code, _, stderr) = run(&[flag, "missing-wsd-config.toml"]);
        assert_eq!(code, 1, "{flag}: {stderr}");
        assert!(
            stderr.contains("missing-wsd-config.toml"),
            "{flag}: {stderr}"
        );
        assert!(
            !stderr.contains("listening on"),
            "{flag}: it must not start: {stderr}"
        );
    }
}

#[test]
fn the_daemon_refuses_to_start_with_a_bad_config() {
    let config = config_file("bad-start", "[timeouts]\nshutdown = 5\n");
    let file = config.path();
    let (code, _, stderr) = run(&["--config", &file, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&file) && stderr.contains("shutdown"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn version_and_help_exit_0() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--check-config"), "{stdout}");
}

#[test]
fn hash_password_output_is_a_usable_password_hash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let hash = wsd::password::PasswordHash::parse(out.trim()).expect("a parsable hash");
    assert!(
        hash.verify("correct horse"),
        "the trailing newline is not part of it"
    );
    assert!(!hash.verify("correct horse\n"));
    // The same line is accepted in a [[user]] entry.
    let config = config_file(
        "hash",
        &format!(
            "[[route]]\npath = \"/x\"\nkind = \"echo\"\nauth = \"basic\"\n\n[[user]]\nname = \"bob\"\npassword_hash = \"{}\"\n",
            out.trim()
        ),
    );
    let (code, _, stderr) = run(&["--check-config", &config.path()]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn without_a_config_file_the_built_in_defaults_serve_echo_and_chat() {
    use std::io::{BufRead, BufReader, Write as _};
    use std::net::TcpStream;
    // An empty working directory: no ./config.toml and no www/.
    let dir = TempConfig(temp_dir("no-config"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .current_dir(&dir.0)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, log) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        match log.recv_timeout(WAIT) {
            Ok(line) => {
                let addr = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                lines.push(line);
                if let Some(addr) = addr {
                    break addr;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wsd without a config did not start: {lines:#?}");
            }
        }
    };
    assert!(
        lines[0].contains("built-in defaults"),
        "the first line says which config: {lines:#?}"
    );
    let check = |path: &str, expect: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, expect.as_bytes(), "{path}");
    };
    check("/echo", "HTTP/1.1 101");
    check("/chat", "HTTP/1.1 101");
    check("/other", "HTTP/1.1 404");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn log_file_receives_the_same_lines_as_the_terminal() {
    let dir = TempConfig(temp_dir("log-file"));
    let file = dir.0.join("wsd.log");
    let mut wsd = common::Wsd::start(&format!(
        "[log]\nlevel = \"info\"\nfile = \"{}\"\n[[route]]\npath = \"/echo\"\nkind = \"echo\"\n",
        file.display()
    ));
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
    let text = std::fs::read_to_string(&file).expect("the log file exists");
    assert!(text.contains("listening on"), "{text}");
    assert!(text.contains("stopped:"), "{text}");
}

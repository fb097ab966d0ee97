//! wss:// and https:// against the real binary: a throwaway certificate is made
//! at test time (rcgen), and an independent client (rustls under tungstenite, or
//! rustls alone for HTTP) talks to wsd over loopback. Covers echo, chat, static
//! files, SNI, a garbage or plain-HTTP ClientHello, a stalled handshake, and the
//! config errors for unusable certificates. Every wait is bounded.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{temp_dir, Wsd};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for `names`, written as PEM files into `dir`.
struct TestCert {
    cert_pem: String,
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
}

fn make_cert(dir: &Path, tag: &str, names: &[&str]) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen");
    let cert_pem = made.cert.pem();
    let cert_path = dir.join(format!("{tag}-cert.pem"));
    let key_path = dir.join(format!("{tag}-key.pem"));
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, made.signing_key.serialize_pem()).expect("write key");
    TestCert {
        cert_pem,
        cert_path,
        key_path,
    }
}

fn tls_config(cert: &TestCert, extra: &str) -> String {
    format!(
        r#"
[log]
level = "debug"
[timeouts]
handshake = "1s"
[tls]
cert = "{}"
key = "{}"
{extra}
[[route]]
path = "/echo"
kind = "echo"
[[route]]
path = "/chat"
kind = "chat"
"#,
        cert.cert_path.display(),
        cert.key_path.display()
    )
}

/// Starts wsd with a plain and a TLS listener; returns it and the TLS address.
fn start_tls(config: &str) -> (Wsd, SocketAddr) {
    let wsd = Wsd::start_with_args(config, &["--listen-tls", "127.0.0.1:0"]);
    let line = wsd
        .wait_for_log("(TLS", WAIT)
        .expect("a TLS listening line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the TLS address");
    (wsd, addr)
}

fn client_config(trusted_pem: &str, alpn: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let der = CertificateDer::from_pem_slice(trusted_pem.as_bytes()).expect("pem");
    roots.add(der).expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Arc::new(config)
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: SocketAddr, name: &str, trusted_pem: &str) -> TlsStream {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let server_name = ServerName::try_from(name.to_owned()).expect("name");
    let conn = rustls::ClientConnection::new(client_config(trusted_pem, true), server_name)
        .expect("client session");
    rustls::StreamOwned::new(conn, tcp)
}

fn wss(addr: SocketAddr, path: &str, cert: &TestCert) -> tungstenite::WebSocket<TlsStream> {
    let stream = tls_connect(addr, "localhost", &cert.cert_pem);
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, response) = tungstenite::client(url.as_str(), stream).expect("wss handshake");
    assert_eq!(response.status(), 101);
    ws
}

fn next_text(ws: &mut tungstenite::WebSocket<TlsStream>) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn echo_over_wss_returns_every_message_and_closes_cleanly() {
    let dir = temp_dir("tls-echo");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (_wsd, addr) = start_tls(&tls_config(&cert, ""));
    let mut ws = wss(addr, "/echo", &cert);
    ws.send(Message::text("héllo over tls")).expect("send");
    assert_eq!(next_text(&mut ws), "héllo over tls");
    let big = vec![7u8; 200_000];
    ws.send(Message::binary(big.clone())).expect("send");
    match ws.read().expect("read") {
        Message::Binary(b) => assert_eq!(b.as_ref(), &big[..]),
        other => panic!("unexpected {other:?}"),
    }
    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("the server should end with close_notify and EOF: {e}"),
        }
    }
}

#[test]
fn chat_over_wss_reaches_the_other_member() {
    let dir = temp_dir("tls-chat");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (_wsd, addr) = start_tls(&tls_config(&cert, ""));
    let mut first = wss(addr, "/chat?room=tls", &cert);
    assert!(next_text(&mut first).contains("\"welcome\""));
    let mut second = wss(addr, "/chat?room=tls", &cert);
    assert!(next_text(&mut second).contains("\"welcome\""));
    assert!(next_text(&mut first).contains("\"join\""));
    second.send(Message::text("over tls")).expect("send");
    assert_eq!(next_text(&mut first), "over tls");
    assert_eq!(next_text(&mut second), "over tls");
}

#[test]
fn static_files_are_served_over_https_with_alpn_http11() {
    let dir = temp_dir("tls-https");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (_wsd, addr) = start_tls(&tls_config(&cert, ""));
    let mut stream = tls_connect(addr, "localhost", &cert.cert_pem);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let index =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("www/index.html"))
            .expect("www/index.html");
    assert!(text.ends_with(&index), "the whole page arrives");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn sni_selects_the_certificate_for_the_name_asked() {
    let dir = temp_dir("tls-sni");
    let default = make_cert(&dir, "default", &["localhost"]);
    let other = make_cert(&dir, "other", &["other.test"]);
    let sni = format!(
        "[[tls.sni]]\nname = \"other.test\"\ncert = \"{}\"\nkey = \"{}\"\n",
        other.cert_path.display(),
        other.key_path.display()
    );
    let (_wsd, addr) = start_tls(&tls_config(&default, &sni));
    // Trusting only the other certificate: the name other.test gets it...
    let mut stream = tls_connect(addr, "other.test", &other.cert_pem);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
        .expect("handshake with the SNI certificate");
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).expect("response");
    assert_eq!(&buf, b"HTTP/1.1 200");
    // ...and localhost gets the default one, which that client does not trust.
    let mut stream = tls_connect(addr, "localhost", &other.cert_pem);
    let result = stream
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .and_then(|_| stream.flush());
    let mut buf = [0u8; 1];
    assert!(
        result.is_err() || stream.read(&mut buf).is_err(),
        "the default certificate is not the SNI one"
    );
}

/// Reads until EOF or error; returns how long it took (bounded by WAIT).
fn time_to_close(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
        assert!(start.elapsed() < WAIT, "the server never closed");
    }
}

#[test]
fn plain_http_or_garbage_on_the_tls_port_is_closed_without_hurting_others() {
    let dir = temp_dir("tls-garbage");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (wsd, addr) = start_tls(&tls_config(&cert, ""));
    let mut ws = wss(addr, "/echo", &cert);
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..],
        &[0xff; 64][..],
    ] {
        let mut raw = TcpStream::connect(addr).expect("connect");
        raw.set_read_timeout(Some(WAIT)).expect("timeout");
        raw.write_all(junk).expect("write");
        let took = time_to_close(&mut raw);
        assert!(
            took < Duration::from_millis(900),
            "closed at once, not by the timeout: {took:?}"
        );
    }
    // Each is logged at debug, naming what was wrong.
    let line = wsd.wait_for_log(": read: ", Duration::from_secs(2));
    assert!(line.is_some(), "the refusal is logged");
    ws.send(Message::text("still here")).expect("send");
    assert_eq!(next_text(&mut ws), "still here");
}

#[test]
fn a_stalled_tls_handshake_is_dropped_by_the_handshake_timeout() {
    let dir = temp_dir("tls-stall");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (_wsd, addr) = start_tls(&tls_config(&cert, ""));
    // Nothing at all, then half a record header.
    for opening in [&b""[..], &[0x16, 0x03][..]] {
        let mut raw = TcpStream::connect(addr).expect("connect");
        raw.set_read_timeout(Some(WAIT)).expect("timeout");
        raw.write_all(opening).expect("write");
        let took = time_to_close(&mut raw);
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_secs(4),
            "closed by the 1 s handshake timeout, took {took:?}"
        );
    }
}

fn check_config(config: &str, dir: &Path) -> (bool, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, config).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsd"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .expect("run wsd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unusable_certificates_are_refused_naming_the_file_and_the_key() {
    let dir = temp_dir("tls-config");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let stranger = make_cert(&dir, "b", &["localhost"]);
    let (ok, err) = check_config(&tls_config(&cert, ""), &dir);
    assert!(ok, "{err}");

    let (ok, err) = check_config("[server]\nlisten_tls = [\"127.0.0.1:9443\"]\n", &dir);
    assert!(!ok && err.contains("key `listen_tls`"), "{err}");

    let missing = tls_config(&cert, "").replace(
        &cert.cert_path.display().to_string(),
        "/nonexistent/cert.pem",
    );
    let (ok, err) = check_config(&missing, &dir);
    assert!(
        !ok && err.contains("key `cert`") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );

    let mismatched = tls_config(&cert, "").replace(
        &cert.key_path.display().to_string(),
        &stranger.key_path.display().to_string(),
    );
    let (ok, err) = check_config(&mismatched, &dir);
    assert!(
        !ok && err.contains("key `key`") && err.contains("does not match"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn sighup(wsd: &Wsd) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &wsd.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sighup_serves_new_certificates_to_new_clients_and_refuses_a_bad_pair() {
    let dir = temp_dir("tls-reload");
    let first = make_cert(&dir, "first", &["localhost"]);
    let (wsd, addr) = start_tls(&tls_config(&first, ""));
    let mut old = wss(addr, "/echo", &first);

    // New files at the same paths, then SIGHUP.
    let second = make_cert(&dir, "second", &["localhost"]);
    std::fs::copy(&second.cert_path, &first.cert_path).expect("swap cert");
    std::fs::copy(&second.key_path, &first.key_path).expect("swap key");
    sighup(&wsd);
    assert!(wsd.wait_for_log("SIGHUP: config reloaded", WAIT).is_some());
    let mut new = wss(addr, "/echo", &second);
    new.send(Message::text("new cert")).expect("send");
    assert_eq!(next_text(&mut new), "new cert");
    old.send(Message::text("old session")).expect("send");
    assert_eq!(
        next_text(&mut old),
        "old session",
        "a live connection keeps its session"
    );

    // A key that does not match: refused, the second pair stays in force.
    let third = make_cert(&dir, "third", &["localhost"]);
    std::fs::copy(&third.key_path, &first.key_path).expect("mismatched key");
    sighup(&wsd);
    let refused = wsd
        .wait_for_log("not reloaded", WAIT)
        .expect("an error line");
    assert!(refused.contains("does not match"), "{refused}");
    let mut after = wss(addr, "/echo", &second);
    after.send(Message::text("still the second")).expect("send");
    assert_eq!(next_text(&mut after), "still the second");
}

fn run_wsd(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsd"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wsd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wsd_connect_and_load_speak_wss_with_a_trusted_or_ignored_certificate() {
    let dir = temp_dir("tls-client");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (_wsd, addr) = start_tls(&tls_config(&cert, ""));
    let url = format!("wss://localhost:{}/echo", addr.port());
    let ca = cert.cert_path.display().to_string();

    let (code, out, err) = run_wsd(&["connect", &url, "--ca", &ca], "over wss\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("over wss"), "{out}");

    // Without --ca the self-signed certificate is not trusted.
    let (code, _, err) = run_wsd(&["connect", &url], "x\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // The load generator, with verification off, echoes and checks every byte.
    let insecure_url = format!("wss://127.0.0.1:{}/echo", addr.port());
    let (code, out, err) = run_wsd(
        &[
            "load",
            "echo",
            "--url",
            &insecure_url,
            "--insecure",
            "-c",
            "4",
            "-p",
            "4",
            "-s",
            "64",
            "--duration",
            "1",
            "--json",
            "--progress",
            "0",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["mismatches"], 0, "{out}");
    assert!(report["received"].as_u64().unwrap_or(0) > 100, "{out}");
}

#[test]
fn sigterm_over_wss_sends_close_1001_then_close_notify() {
    let dir = temp_dir("tls-shutdown");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let (mut wsd, addr) = start_tls(&tls_config(&cert, ""));
    let mut ws = wss(addr, "/echo", &cert);
    ws.send(Message::text("before")).expect("send");
    assert_eq!(next_text(&mut ws), "before");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &wsd.child.id().to_string()])
        .status();
    match ws.read().expect("the server's close") {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}")
        }
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Reading on answers the close; the server then ends TLS with close_notify
    // (a bare TCP FIN would be an UnexpectedEof error here, not ConnectionClosed).
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected a clean TLS end, got {other:?}"),
    }
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success(), "{status}");
}

#[test]
fn a_wss_client_that_floods_without_reading_does_not_grow_server_memory() {
    let dir = temp_dir("tls-flood");
    let cert = make_cert(&dir, "a", &["localhost"]);
    let limits = "[limits]\nmax_message_bytes = 1048576\nmax_send_buffer_bytes = 1073741824\nread_pause_bytes = 1048576\n";
    let (wsd, addr) = start_tls(&format!("{limits}{}", tls_config(&cert, "")));
    let pid = wsd.child.id();
    let mut warm = wss(addr, "/echo", &cert);
    warm.send(Message::binary(vec![1u8; 65536]))
        .expect("warm-up");
    warm.read().expect("warm-up echo");
    let before = raw::rss_kib(pid);

    // A hand-driven TLS client, so writing can go on while nothing is read.
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls =
        rustls::ClientConnection::new(client_config(&cert.cert_pem, false), name).expect("session");
    // The client queues as much as it likes; only the socket pushes back.
    tls.set_buffer_limit(None);
    let upgrade =
        "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tls.writer().write_all(upgrade.as_bytes()).expect("request");
    let mut plain = Vec::new();
    while !plain.windows(4).any(|w| w == b"\r\n\r\n") {
        while tls.wants_write() {
            tls.write_tls(&mut tcp).expect("write");
        }
        tls.read_tls(&mut tcp).expect("read");
        tls.process_new_packets().expect("tls");
        let _ = tls.reader().read_to_end(&mut plain);
    }
    assert!(
        plain.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&plain)
    );

    // Write 64 KiB frames without reading until the socket takes nothing for
    // half a second (or 256 MiB went in).
    let frame = raw::client_frame(raw::OP_BINARY, &vec![0x5a; 65536]);
    tcp.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut frames, mut stalled) = (0u64, false);
    'flood: while frames * (frame.len() as u64) < 256 << 20 {
        tls.writer().write_all(&frame).expect("buffer");
        frames += 1;
        while tls.wants_write() {
            match tls.write_tls(&mut tcp) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    stalled = true;
                    break 'flood;
                }
                Err(e) => panic!("write failed after {frames} frames: {e}"),
            }
        }
    }
    let during = raw::rss_kib(pid);
    assert!(
        stalled,
        "the server read {frames} frames without the client reading"
    );
    let growth_mib = during.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 64,
        "server RSS grew by {growth_mib} MiB while {frames} frames were flooded over TLS"
    );

    // Now read while writing the rest: every frame comes back, whole.
    tcp.set_write_timeout(Some(WAIT)).expect("timeout");
    tcp.set_nonblocking(true).expect("nonblocking");
    let mut received = Vec::new();
    // 65,536 needs the 64-bit length: a 10-byte header.
    let echo_len = 10 + 65536;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (received.len() as u64) < frames * echo_len as u64 {
        assert!(
            Instant::now() < deadline,
            "echoes stopped after {} bytes",
            received.len()
        );
        while tls.wants_write() {
            match tls.write_tls(&mut tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        match tls.read_tls(&mut tcp) {
            Ok(0) => panic!("the server closed after {} bytes", received.len()),
            Ok(_) => {
                tls.process_new_packets().expect("tls");
                let _ = tls.reader().read_to_end(&mut received);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let mut at = 0;
    for _ in 0..frames {
        assert_eq!(
            &received[at..at + 10],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0][..],
            "a 64 KiB binary echo"
        );
        assert!(received[at + 10..at + echo_len].iter().all(|&b| b == 0x5a));
        at += echo_len;
    }
}

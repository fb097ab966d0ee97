//! Behaviour tests of the daemon's static files over loopback: GET and HEAD with
//! the right headers, validators and 304, 405 for other methods, keep-alive and
//! pipelining, every path-traversal attempt refused, and a large file streamed
//! complete and intact.
//!
//! Owns assertions on raw HTTP exchanges. It must never depend on the daemon's
//! internals; temporary static roots live under the system temp directory and are
//! removed at the end of each test.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::path::{Path, PathBuf};

use common::{temp_dir, Wsd};
use raw::{http_exchange, Raw, WAIT};

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
[[route]]
path = "/echo"
kind = "echo"
"#;

fn repo_file(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("repository file")
}

/// A static root in a temp dir: an index, a 4 MiB file, a symlink to a file
/// outside the root, and one to a file inside it.
struct Tree {
    base: PathBuf,
    big: Vec<u8>,
}

impl Tree {
    fn new() -> Tree {
        let base = temp_dir("static");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "<p>temp root</p>").unwrap();
        std::fs::write(root.join("sub/inner.txt"), "inner").unwrap();
        let big: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8)
            .collect();
        std::fs::write(root.join("big.bin"), &big).unwrap();
        std::fs::write(base.join("secret.txt"), "TOPSECRET").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/inner.txt"), root.join("in.txt")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
        Tree { base, big }
    }

    fn config(&self) -> String {
        format!(
            "{CONFIG}\n[static]\nroot = \"{}\"\n",
            self.base.join("root").display()
        )
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[test]
fn get_slash_serves_index_html_with_type_length_and_etag() {
    let wsd = Wsd::start(CONFIG);
    let index = repo_file("www/index.html");
    let mut raw = Raw::connect(wsd.addr);
    raw.send(get("/").as_bytes());
    let r = raw.read_response(WAIT).expect("a response");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{r:?}"
    );
    assert_eq!(
        r.header("Content-Length"),
        Some(index.len().to_string().as_str())
    );
    let etag = r.header("ETag").expect("an ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(r.body == index, "the body is www/index.html");
    // The same file under its own name, with the same validator.
    raw.send(get("/index.html").as_bytes());
    let again = raw.read_response(WAIT).expect("a second response");
    assert_eq!(again.status, 200);
    assert_eq!(again.header("ETag"), Some(etag));
}

#[test]
fn if_none_match_with_the_current_etag_gets_304_without_a_body() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(get("/").as_bytes());
    let first = raw.read_response(WAIT).unwrap();
    let etag = first.header("ETag").unwrap().to_owned();
    raw.send(
        format!("GET / HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: \"other\", {etag}\r\n\r\n")
            .as_bytes(),
    );
    let r = raw.read_head(WAIT).expect("a 304");
    assert_eq!(r.status, 304, "{r:?}");
    assert_eq!(r.header("ETag"), Some(etag.as_str()));
    // No body follows: the next bytes on the connection are the next response.
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: \"stale\"\r\n\r\n");
    let r = raw
        .read_response(WAIT)
        .expect("a 200 for a stale validator");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), first.body.len());
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(b"HEAD /chat.css HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = raw.read_head(WAIT).expect("a response head");
    assert_eq!(head.status, 200);
    let css = repo_file("www/chat.css");
    assert_eq!(
        head.header("Content-Length"),
        Some(css.len().to_string().as_str())
    );
    assert!(head
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/css")));
    raw.send(get("/chat.css").as_bytes());
    // Had the HEAD carried a body, this would not parse as a status line.
    let r = raw.read_response(WAIT).expect("the GET's response");
    assert_eq!(r.status, 200);
    assert!(r.body == css);
}

#[test]
fn post_and_other_methods_get_405_allowing_get_and_head() {
    let wsd = Wsd::start(CONFIG);
    for method in ["POST", "PUT", "DELETE"] {
        let r = http_exchange(
            wsd.addr,
            format!("{method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 405, "{method}: {r:?}");
        let allow = r.header("Allow").unwrap_or_default().replace(' ', "");
        assert_eq!(allow, "GET,HEAD", "{method}");
    }
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection_even_pipelined() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(get("/").as_bytes());
    let a = raw.read_response(WAIT).expect("first");
    assert_eq!(a.status, 200);
    assert_ne!(a.header("Connection"), Some("close"));
    raw.send(
        format!(
            "{}{}{}",
            get("/chat.js"),
            get("/missing.html"),
            get("/chat.css")
        )
        .as_bytes(),
    );
    let b = raw.read_response(WAIT).expect("second");
    let c = raw.read_response(WAIT).expect("third");
    let d = raw.read_response(WAIT).expect("fourth");
    assert_eq!((b.status, c.status, d.status), (200, 404, 200));
    assert!(b.body == repo_file("www/chat.js"));
    assert!(d.body == repo_file("www/chat.css"));
    // Connection: close is honoured after the response.
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let e = raw.read_response(WAIT).expect("last");
    assert_eq!(e.status, 200);
    assert!(
        raw.wait_eof(WAIT),
        "the server closes after Connection: close"
    );
}

#[test]
fn path_traversal_attempts_get_404_and_never_the_file() {
    let tree = Tree::new();
    let wsd = Wsd::start(&tree.config());
    let cargo = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let absolute = format!("/{}", cargo.display());
    let secret = tree.base.join("secret.txt");
    let absolute_secret = format!("/{}", secret.display());
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/..%2FCargo.toml",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/out.txt",
        "/up/secret.txt",
        absolute.as_str(),
        absolute_secret.as_str(),
        "/etc/passwd",
        "/index.html%00.txt",
    ] {
        let r = http_exchange(
            wsd.addr,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 404, "{path}: {r:?}");
        let body = r.body_text();
        assert!(
            !body.contains("TOPSECRET") && !body.contains("[package]") && !body.contains("root:"),
            "{path} leaked a file: {body}"
        );
    }
    // Inside the root, symlinks and subdirectories are fine.
    let r = http_exchange(
        wsd.addr,
        b"GET /in.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body_text().as_str()), (200, "inner"));
    let r = http_exchange(
        wsd.addr,
        b"GET /sub/inner.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body_text().as_str()), (200, "inner"));
}

#[test]
fn a_request_target_without_a_leading_slash_is_refused() {
    let tree = Tree::new();
    let wsd = Wsd::start(&tree.config());
    for target in ["../secret.txt", "secret.txt", "*"] {
        let r = http_exchange(
            wsd.addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(r.status == 400 || r.status == 404, "{target}: {r:?}");
        assert!(!r.body_text().contains("TOPSECRET"));
    }
}

#[test]
fn a_large_file_arrives_complete_and_intact() {
    let tree = Tree::new();
    let wsd = Wsd::start(&tree.config());
    let r = http_exchange(
        wsd.addr,
        b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(tree.big.len().to_string().as_str())
    );
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.body.len(), tree.big.len());
    assert!(r.body == tree.big, "the 4 MiB file arrived corrupted");
}

#[test]
fn a_large_file_then_a_pipelined_request_on_the_same_connection() {
    let tree = Tree::new();
    let wsd = Wsd::start(&tree.config());
    let mut raw = Raw::connect(wsd.addr);
    raw.send(format!("{}{}", get("/big.bin"), get("/")).as_bytes());
    let big = raw.read_response(WAIT).expect("the large file");
    assert_eq!(big.status, 200);
    assert!(big.body == tree.big, "the 4 MiB file arrived corrupted");
    let index = raw.read_response(WAIT).expect("the pipelined response");
    assert_eq!(
        (index.status, index.body_text().as_str()),
        (200, "<p>temp root</p>")
    );
}

#[test]
fn static_files_off_means_404_for_everything_but_routes() {
    let wsd = Wsd::start(&format!("{CONFIG}\n[static]\nenabled = false\n"));
    let r = http_exchange(wsd.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 404, "{r:?}");
    let mut ws = Raw::upgrade(wsd.addr, "/echo");
    ws.send_frame(true, raw::OP_TEXT, b"routes still work");
    assert_eq!(ws.expect_frame("echo").payload, b"routes still work");
}

#[test]
fn a_query_string_does_not_change_the_file_served() {
    let wsd = Wsd::start(CONFIG);
    let r = http_exchange(
        wsd.addr,
        b"GET /chat.css?v=123 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body == repo_file("www/chat.css"));
}

#[test]
fn if_modified_since_at_or_after_last_modified_gets_304() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(get("/").as_bytes());
    let first = raw.read_response(WAIT).unwrap();
    let last_modified = first
        .header("Last-Modified")
        .expect("a Last-Modified header")
        .to_owned();
    raw.send(
        format!("GET / HTTP/1.1\r\nHost: localhost\r\nIf-Modified-Since: {last_modified}\r\n\r\n")
            .as_bytes(),
    );
    let r = raw.read_head(WAIT).expect("a response");
    assert_eq!(r.status, 304, "{r:?}");
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n");
    let r = raw.read_response(WAIT).expect("a response");
    assert_eq!(r.status, 200, "an old date gets the file");
    assert_eq!(r.body.len(), first.body.len());
}

#[test]
fn http_1_0_without_keep_alive_closes_after_the_response() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = raw.read_response(WAIT).expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, repo_file("www/index.html"));
    assert!(
        raw.wait_eof(WAIT),
        "an HTTP/1.0 connection closes after one response"
    );
}

#[test]
fn a_keep_alive_connection_can_upgrade_after_a_plain_request() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect(wsd.addr);
    raw.send(get("/").as_bytes());
    let r = raw.read_response(WAIT).expect("the page");
    assert_eq!(r.status, 200);
    raw.send(raw::upgrade_request("/echo", "").as_bytes());
    let r = raw.read_head(WAIT).expect("the upgrade");
    assert_eq!(r.status, 101, "{r:?}");
    raw.send_frame(true, raw::OP_TEXT, b"upgraded");
    assert_eq!(raw.expect_frame("echo").payload, b"upgraded");
}

/// A request that arrives later than `timeouts.close` after the connection was
/// opened (but within the handshake timeout) still gets its whole response, even
/// when the response ends the connection: the close deadline counts from the
/// response, not from accept.
#[test]
fn a_late_closing_request_still_gets_its_response() {
    let wsd = Wsd::start(
        r#"
[log]
level = "info"
[timeouts]
handshake = "5s"
close = "200ms"
"#,
    );
    for request in [
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ] {
        let mut raw = Raw::connect(wsd.addr);
        std::thread::sleep(std::time::Duration::from_millis(600));
        raw.send(request.as_bytes());
        let resp = raw
            .read_response(WAIT)
            .unwrap_or_else(|| panic!("no response to a late {request:?}"));
        assert!(resp.status >= 200, "{request:?}: {}", resp.status);
    }
}

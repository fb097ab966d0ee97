//! Static files over plain HTTP/1.1: GET and HEAD under one root directory.
//!
//! Owns path resolution (never a file outside the root: `..`, encoded dots,
//! absolute paths and symlinks leading out are refused), content types, validators
//! (`ETag`, `Last-Modified`, 304) and response heads. It must never read a whole
//! file into memory or write to a socket: it hands the reactor an open file and its
//! length, and the reactor streams it as the socket drains.

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::app::percent_decode;
use crate::config::StaticConfig;
use crate::core::http::{write_closing_response, write_response_head};
use crate::core::{Headers, Request};

/// A response to a plain HTTP request.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// The response head, and the whole body for short responses.
    pub head: Vec<u8>,
    /// A file body to stream after the head: the file and how many bytes of it.
    pub body: Option<(File, u64)>,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

impl HttpReply {
    /// A complete short response after which the connection closes.
    pub fn closing(status: u16, head: Vec<u8>) -> HttpReply {
        HttpReply {
            status,
            head,
            body: None,
            keep_alive: false,
        }
    }
}

/// The static file tree.
#[derive(Debug)]
pub struct StaticFiles {
    /// The canonical root: every served file's canonical path starts with it.
    root: PathBuf,
    index: String,
}

impl StaticFiles {
    pub fn new(config: &StaticConfig) -> Result<StaticFiles, String> {
        let root = config
            .root
            .canonicalize()
            .map_err(|e| format!("static root {}: {e}", config.root.display()))?;
        if !root.is_dir() {
            return Err(format!("static root {} is not a directory", root.display()));
        }
        Ok(StaticFiles {
            root,
            index: config.index.clone(),
        })
    }

    /// Answers one request.
    pub fn serve(&self, request: &Request) -> HttpReply {
        let head_only = match request.method() {
            "GET" => false,
            "HEAD" => true,
            _ => return short(405, &[("Allow", "GET, HEAD")], "method not allowed", false),
        };
        let keep_alive = request.keep_alive();
        let Some(path) = self.resolve(request.path()) else {
            return short(404, &[], "not found", keep_alive);
        };
        let Ok(file) = File::open(&path) else {
            return short(404, &[], "not found", keep_alive);
        };
        let Ok(meta) = file.metadata() else {
            return short(404, &[], "not found", keep_alive);
        };
        let len = meta.len();
        let modified = meta.modified().ok();
        let etag = format!(
            "\"{:x}-{:x}\"",
            len,
            modified
                .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        );
        let last_modified = modified.map(httpdate::fmt_http_date);
        let connection = if keep_alive { "keep-alive" } else { "close" };
        if not_modified(request, &etag, modified) {
            let mut head = Vec::new();
            let mut headers = vec![("ETag", etag.as_str()), ("Connection", connection)];
            if let Some(lm) = &last_modified {
                headers.push(("Last-Modified", lm));
            }
            write_response_head(&mut head, 304, &headers);
            return HttpReply {
                status: 304,
                head,
                body: None,
                keep_alive,
            };
        }
        let len_text = len.to_string();
        let mut headers = vec![
            ("Content-Type", content_type(&path)),
            ("Content-Length", len_text.as_str()),
            ("ETag", etag.as_str()),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", connection),
        ];
        if let Some(lm) = &last_modified {
            headers.push(("Last-Modified", lm));
        }
        let mut head = Vec::new();
        write_response_head(&mut head, 200, &headers);
        HttpReply {
            status: 200,
            head,
            body: (!head_only && len > 0).then_some((file, len)),
            keep_alive,
        }
    }

    /// Maps a request path to a regular file inside the root, or `None`.
    fn resolve(&self, request_path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(request_path)?;
        if decoded.contains('\0') || decoded.contains('\\') || !decoded.starts_with('/') {
            return None;
        }
        let mut path = self.root.clone();
        for component in Path::new(&decoded).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => path.push(part),
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        let mut canonical = path.canonicalize().ok()?;
        if canonical.is_dir() {
            canonical = canonical.join(&self.index).canonicalize().ok()?;
        }
        (canonical.starts_with(&self.root) && canonical.is_file()).then_some(canonical)
    }
}

fn short(status: u16, headers: &[(&str, &str)], body: &str, keep_alive: bool) -> HttpReply {
    let mut head = Vec::new();
    if keep_alive {
        let body = format!("{body}\n");
        let len = body.len().to_string();
        let mut all = vec![
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", len.as_str()),
            ("Connection", "keep-alive"),
        ];
        all.extend_from_slice(headers);
        write_response_head(&mut head, status, &all);
        head.extend_from_slice(body.as_bytes());
    } else {
        write_closing_response(&mut head, status, headers, body);
    }
    HttpReply {
        status,
        head,
        body: None,
        keep_alive,
    }
}

/// Whether the client's cached copy is current (`If-None-Match` wins over
/// `If-Modified-Since`, RFC 9110 §13.2.2).
fn not_modified(request: &Request, etag: &str, modified: Option<SystemTime>) -> bool {
    if let Some(tags) = request.header("If-None-Match") {
        return tags.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    }
    match (request.header("If-Modified-Since"), modified) {
        (Some(since), Some(modified)) => httpdate::parse_http_date(since)
            .map(|since| {
                let modified_secs = modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let since_secs = since
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                modified_secs <= since_secs
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// The `Content-Type` for a file, by extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("woff2") => "font/woff2",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (PathBuf, StaticFiles) {
        let base = std::env::temp_dir().join(format!(
            "wsd-static-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(root.join("sub/a.css"), "a{}").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt"));
        let files = StaticFiles::new(&StaticConfig {
            enabled: true,
            root: root.clone(),
            index: "index.html".into(),
        })
        .unwrap();
        (base, files)
    }

    #[test]
    fn resolves_files_and_directory_index_inside_the_root() {
        let (base, files) = tree();
        assert!(files.resolve("/").unwrap().ends_with("index.html"));
        assert!(files.resolve("/sub/a.css").unwrap().ends_with("sub/a.css"));
        assert!(
            files.resolve("/sub/%61.css").is_some(),
            "percent-encoded letters decode"
        );
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn refuses_every_way_out_of_the_root() {
        let (base, files) = tree();
        for bad in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/..%2fsecret.txt",
            "//etc/passwd",
            "/link.txt",
            "/nothing.html",
            "/sub%00/a.css",
            "/..\\secret.txt",
        ] {
            assert_eq!(files.resolve(bad), None, "{bad}");
        }
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn content_types_for_common_files() {
        assert_eq!(
            content_type(Path::new("a.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.bin")), "application/octet-stream");
    }
}

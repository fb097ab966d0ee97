//! HTTP/1.1 request heads, parsed incrementally from whatever bytes have arrived,
//! and the short responses the server writes (RFC 9112).
//!
//! Owns request-head limits, header lookup and token lists, and response
//! formatting. It must never read a request body or touch a socket; bytes after the
//! blank line belong to the caller (they may be WebSocket frames already).

use std::fmt::Write as _;

use crate::core::error::HandshakeError;

/// Bounds on a request head. Both have documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// The largest request head accepted, in bytes. Default 8 KiB.
    pub max_head_bytes: usize,
    /// The most header fields accepted. Default 64.
    pub max_headers: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// One header field. Names keep their case; look-ups ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and optional query.
    pub target: String,
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    pub headers: Vec<Header>,
}

/// Parses a request head from the front of `input`.
///
/// `Ok(None)`: the head is incomplete and still within limits; call again with more
/// bytes. `Ok(Some((request, n)))`: the head took `n` bytes; what follows is not ours.
pub fn parse_request(
    input: &[u8],
    limits: &RequestLimits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let window = &input[..input.len().min(limits.max_head_bytes)];
    match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => {
            let request = Request {
                method: req.method.unwrap_or_default().to_owned(),
                target: req.path.unwrap_or_default().to_owned(),
                minor_version: req.version.unwrap_or_default(),
                headers: owned_headers(req.headers),
            };
            Ok(Some((request, n)))
        }
        Ok(httparse::Status::Partial) if input.len() >= limits.max_head_bytes => {
            Err(HandshakeError::RequestTooLarge {
                max: limits.max_head_bytes,
            })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
        Err(e) => Err(HandshakeError::MalformedRequest(parse_error_text(e))),
    }
}

/// Copies parsed header fields out of the input buffer (values that are not
/// UTF-8 are kept lossily: obs-text is legal but never meaningful to us).
pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: String::from_utf8_lossy(h.value).into_owned(),
        })
        .collect()
}

pub(crate) fn parse_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Header look-ups shared by requests and responses.
pub trait Headers {
    fn header_fields(&self) -> &[Header];

    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.header_fields()
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The comma-separated elements of every `name` header, trimmed, empty ones skipped.
    fn header_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_fields()
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether header `name` lists `token` (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_list(name)
            .any(|t| t.eq_ignore_ascii_case(token))
    }
}

impl Headers for Request {
    fn header_fields(&self) -> &[Header] {
        &self.headers
    }
}

impl Request {
    /// The path part of the target, without the query. An absolute-form target
    /// (`http://host/path`, RFC 9112 §3.2.2, allowed by RFC 6455 §4.1) gives its path.
    pub fn path(&self) -> &str {
        let target = self.origin_form();
        target.split_once('?').map_or(target, |(p, _)| p)
    }

    /// The query part of the target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.origin_form().split_once('?').map(|(_, q)| q)
    }

    /// The target as path and query, with the scheme and authority of an
    /// absolute-form target removed (an empty path becomes "/").
    fn origin_form(&self) -> &str {
        let t = self.target.as_str();
        let rest = ["http://", "https://", "ws://", "wss://"]
            .iter()
            // `get` and not `[..]`: a target may hold non-ASCII text, and slicing
            // inside a character would panic on a peer's request.
            .find(|scheme| {
                t.get(..scheme.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
            })
            .map(|scheme| &t[scheme.len()..]);
        match rest {
            None => t,
            Some(rest) => match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
                _ => "/",
            },
        }
    }

    /// Whether the connection may carry another request after this one's response.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("Connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.has_token("Connection", "keep-alive")
    }
}

/// The reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Appends a response head to `out`: status line, `headers`, then the blank line.
pub fn write_response_head(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)]) {
    let mut head = String::with_capacity(128);
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// Appends a complete short response that ends the connection: `Connection: close`,
/// a plain-text `body` with its `Content-Length`, and `headers` besides.
pub fn write_closing_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) {
    let body = format!("{body}\n");
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", &len),
        ("Connection", "close"),
    ];
    all.extend_from_slice(headers);
    write_response_head(out, status, &all);
    out.extend_from_slice(body.as_bytes());
}

/// Appends the response a server owes a failed handshake: its status, the headers
/// the status requires, and the reason as the body.
pub fn write_error_response(out: &mut Vec<u8>, error: &HandshakeError) {
    write_closing_response(
        out,
        error.status(),
        error.response_headers(),
        &error.to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `handshake` fuzz target: a target with a character that spans
    /// byte 5, 6, 7 or 8 (the length of a scheme prefix) used to panic in `path()`.
    #[test]
    fn non_ascii_target_does_not_panic_and_keeps_its_path() {
        let raw = "GET /aaa\u{e9}?x=\u{e9}t\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n";
        let (request, _) = parse_request(raw.as_bytes(), &RequestLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(request.path(), "/aaa\u{e9}");
        assert_eq!(request.query(), Some("x=\u{e9}t\u{e9}"));
    }
}

//! HTTP/1.1 request heads, parsed incrementally from whatever bytes have arrived,
//! and the short responses the server writes (RFC 9112).
//!
//! Owns request-head limits, header lookup and token lists, and response
//! formatting. It must never read a request body or touch a socket; bytes after the
//! blank line belong to the caller (they may be WebSocket frames already).

use std::io::Write as _;
use std::mem::MaybeUninit;

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

/// The header fields of a head, kept as one text: every part is appended to
/// one buffer and only where it ends is recorded, so a head costs two
/// allocations however many fields it has (a handshake is allocation-bound in
/// user space). Names keep their case; look-ups ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    text: String,
    /// Where each part ends in `text`: first the `lead` parts of the start
    /// line that the owner keeps here too (a request's method and target),
    /// then each field's name and value.
    ends: Vec<usize>,
    lead: usize,
}

impl Fields {
    /// The `lead` start-line parts, then the parsed fields copied out of the
    /// input buffer (values that are not UTF-8 are kept lossily: obs-text is
    /// legal but never meaningful to us).
    pub(crate) fn parsed(lead: &[&str], headers: &[httparse::Header<'_>]) -> Self {
        let text = lead.iter().map(|p| p.len()).sum::<usize>()
            + headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>();
        let mut fields = Fields {
            text: String::with_capacity(text),
            ends: Vec::with_capacity(lead.len() + 2 * headers.len()),
            lead: lead.len(),
        };
        for part in lead {
            fields.push_part(part);
        }
        for h in headers {
            fields.push(h.name, &String::from_utf8_lossy(h.value));
        }
        fields
    }

    fn push_part(&mut self, part: &str) {
        self.text.push_str(part);
        self.ends.push(self.text.len());
    }

    fn part(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |prev| self.ends[prev]);
        &self.text[start..self.ends[i]]
    }

    /// Appends one field.
    pub fn push(&mut self, name: &str, value: &str) {
        self.push_part(name);
        self.push_part(value);
    }

    /// Every field as (name, value), in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        (self.lead..self.ends.len())
            .step_by(2)
            .map(|i| (self.part(i), self.part(i + 1)))
    }

    pub fn len(&self) -> usize {
        (self.ends.len() - self.lead) / 2
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    /// The method and the target, then the header fields.
    fields: Fields,
}

/// Header slots parsed on the stack; a limit above this parses into the heap.
const STACK_HEADER_SLOTS: usize = 64;

/// Parses a request head from the front of `input`.
///
/// `Ok(None)`: the head is incomplete and still within limits; call again with more
/// bytes. `Ok(Some((request, n)))`: the head took `n` bytes; what follows is not ours.
pub fn parse_request(
    input: &[u8],
    limits: &RequestLimits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    // Uninitialised slots: httparse writes only the ones it fills.
    let mut on_stack =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADER_SLOTS];
    let mut on_heap = Vec::new();
    let slots = if limits.max_headers <= STACK_HEADER_SLOTS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let window = &input[..input.len().min(limits.max_head_bytes)];
    match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(n)) => {
            let method = req.method.unwrap_or_default();
            let target = req.path.unwrap_or_default();
            let request = Request {
                minor_version: req.version.unwrap_or_default(),
                fields: Fields::parsed(&[method, target], req.headers),
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
    fn header_fields(&self) -> &Fields;

    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.header_fields()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of every `name` header (case-insensitive), in the order received.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_fields()
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The comma-separated elements of every `name` header, trimmed, empty ones skipped.
    fn header_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_values(name)
            .flat_map(|v| v.split(','))
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
    fn header_fields(&self) -> &Fields {
        &self.fields
    }
}

impl Request {
    /// A request head built in code (for embedders and tests); add fields
    /// with [`Request::with_field`].
    pub fn new(method: &str, target: &str, minor_version: u8) -> Self {
        Request {
            minor_version,
            fields: Fields::parsed(&[method, target], &[]),
        }
    }

    /// The same request with one more header field.
    pub fn with_field(mut self, name: &str, value: &str) -> Self {
        self.fields.push(name, value);
        self
    }

    pub fn method(&self) -> &str {
        self.fields.part(0)
    }

    /// The request target as sent: path and optional query.
    pub fn target(&self) -> &str {
        self.fields.part(1)
    }

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
        let t = self.target();
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
    write_status_line(out, status);
    for (name, value) in headers {
        write_field(out, name, value.as_bytes());
    }
    end_head(out);
}

/// Appends a status line, written straight into `out` (nothing allocated).
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
}

/// Appends one header field line.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the blank line that ends a head.
pub(crate) fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
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

    /// A whole head parsed with the default limits, and how many bytes it took.
    fn parsed(raw: &[u8]) -> (Request, usize) {
        parse_request(raw, &RequestLimits::default())
            .unwrap()
            .unwrap()
    }

    /// Found by the `handshake` fuzz target: a target with a character that spans
    /// byte 5, 6, 7 or 8 (the length of a scheme prefix) used to panic in `path()`.
    #[test]
    fn non_ascii_target_does_not_panic_and_keeps_its_path() {
        let raw = "GET /aaa\u{e9}?x=\u{e9}t\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n";
        let (request, _) = parsed(raw.as_bytes());
        assert_eq!(request.path(), "/aaa\u{e9}");
        assert_eq!(request.query(), Some("x=\u{e9}t\u{e9}"));
    }

    /// Fields come back as sent: order, case, repeats, empty values, and a
    /// value that is not UTF-8 kept lossily; the start line beside them.
    #[test]
    fn fields_keep_every_part_in_order() {
        let raw = b"PUT /x?a=1 HTTP/1.0\r\nHost: h\r\nX-Empty:\r\nx-rep: 1\r\nX-Rep: 2\r\nX-Bin: a\xffb\r\n\r\nrest";
        let (request, n) = parsed(raw);
        assert_eq!(&raw[n..], b"rest");
        assert_eq!((request.method(), request.target()), ("PUT", "/x?a=1"));
        assert_eq!(request.minor_version, 0);
        let fields: Vec<(&str, &str)> = request.header_fields().iter().collect();
        assert_eq!(
            fields,
            [
                ("Host", "h"),
                ("X-Empty", ""),
                ("x-rep", "1"),
                ("X-Rep", "2"),
                ("X-Bin", "a\u{fffd}b"),
            ]
        );
        assert_eq!(request.header("x-REP"), Some("1"));
        assert_eq!(
            request.header_values("X-Rep").collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(request.header("Missing"), None);
    }

    /// A request built in code is the same value as the one parsed.
    #[test]
    fn built_request_equals_parsed() {
        let raw = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        let (from_bytes, _) = parsed(raw);
        let built = Request::new("GET", "/chat", 1)
            .with_field("Host", "a")
            .with_field("Upgrade", "websocket");
        assert_eq!(from_bytes, built);
        assert!(Request::new("GET", "/", 1).header_fields().is_empty());
    }

    /// Limits above the stack's slots parse on the heap: the limit, not the
    /// stack, decides what is too many.
    #[test]
    fn header_limits_beyond_the_stack_slots_hold() {
        let head = |fields: usize| {
            let mut raw = String::from("GET / HTTP/1.1\r\n");
            for i in 0..fields {
                raw.push_str(&format!("X-F{i}: {i}\r\n"));
            }
            raw + "\r\n"
        };
        let limits = RequestLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
        };
        let (request, _) = parse_request(head(100).as_bytes(), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(request.header_fields().len(), 100);
        assert_eq!(request.header("x-f99"), Some("99"));
        assert_eq!(
            parse_request(head(101).as_bytes(), &limits),
            Err(HandshakeError::TooManyHeaders)
        );
        let at_stack = RequestLimits {
            max_headers: STACK_HEADER_SLOTS,
            ..limits
        };
        let (request, _) = parse_request(head(STACK_HEADER_SLOTS).as_bytes(), &at_stack)
            .unwrap()
            .unwrap();
        assert_eq!(request.header_fields().len(), STACK_HEADER_SLOTS);
        assert_eq!(
            parse_request(head(STACK_HEADER_SLOTS + 1).as_bytes(), &at_stack),
            Err(HandshakeError::TooManyHeaders)
        );
    }
}

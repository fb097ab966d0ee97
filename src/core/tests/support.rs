//! Helpers shared by the core tests: driving a `WebSocket` the way a real caller
//! does, building frames and requests byte by byte, and reading the core's output
//! back with parsers written here, independent of the code under test.
//!
//! It must never open a socket or read a clock, and must never decode output with
//! the core's own decoder where an assertion depends on it.

use proptest::prelude::*;

use crate::core::*;

/// The masking key of the RFC 6455 §5.7 examples, used for every test client frame.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The RFC 6455 §1.3 sample key and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Everything a connection produced while being driven.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Event>,
    /// Bytes collected from `poll_transmit` after every call.
    pub transmit: Vec<u8>,
    /// The error `handle_read` returned, if any; driving stops there.
    pub error: Option<ProtocolError>,
    /// The input not consumed when driving stopped.
    pub leftover: Vec<u8>,
}

/// Feeds `chunks` in order as a real caller would: append each chunk to the
/// unconsumed tail, call `handle_read` once, poll every event with the transmit
/// bytes it caused, then the rest. Stops at the first error (after draining the
/// events before it).
pub fn drive<'a>(ws: &mut WebSocket, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut out = Outcome::default();
    let mut buf: Vec<u8> = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let result = ws.handle_read(&buf);
        while let Some(e) = ws.poll_event() {
            out.events.push(e);
            ws.poll_transmit(&mut out.transmit);
        }
        ws.poll_transmit(&mut out.transmit);
        match result {
            Ok(n) => {
                assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
                buf.drain(..n);
                assert!(
                    buf.len() < crate::core::frame::MAX_HEADER_LEN,
                    "only a partial header may be left, {} bytes were",
                    buf.len()
                );
            }
            Err(e) => {
                out.error = Some(e);
                out.leftover = buf;
                return out;
            }
        }
    }
    out.leftover = buf;
    out
}

/// Feeds `input` in one piece.
pub fn drive_whole(ws: &mut WebSocket, input: &[u8]) -> Outcome {
    drive(ws, [input])
}

/// Feeds `input` one byte at a time.
pub fn drive_bytewise(ws: &mut WebSocket, input: &[u8]) -> Outcome {
    drive(ws, input.chunks(1))
}

pub fn server() -> WebSocket {
    WebSocket::server(Limits::default())
}

pub fn client() -> WebSocket {
    WebSocket::client(Limits::default(), [0x5e; 32])
}

pub fn text(s: &str) -> Event {
    Event::Message(Message {
        kind: MessageKind::Text,
        data: s.as_bytes().to_vec(),
    })
}

pub fn binary(data: &[u8]) -> Event {
    Event::Message(Message {
        kind: MessageKind::Binary,
        data: data.to_vec(),
    })
}

/// Opcode bits, spelled out so that tests can also build reserved ones.
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BIN: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;
pub const FIN: u8 = 0x80;

/// A frame header written by hand: first byte `b0`, the shortest length encoding
/// for `len`, and `mask` if given.
pub fn raw_header(b0: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// A whole frame written by hand, masked byte by byte if `mask` is given.
pub fn raw_frame(b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = raw_header(b0, mask, payload.len() as u64);
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked frame as a client sends it.
pub fn cf(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(b0, Some(KEY), payload)
}

/// An unmasked frame as a server sends it.
pub fn sf(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(b0, None, payload)
}

/// A close payload: the code big-endian, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// One frame read back from the core's output by this file's own parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    /// Already unmasked.
    pub payload: Vec<u8>,
}

impl SentFrame {
    /// The close code of a close frame, `None` if its payload is empty.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        match self.payload.as_slice() {
            [] => None,
            [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            [_] => panic!("one-byte close payload sent"),
        }
    }
}

/// Splits `bytes` into frames; panics unless they are whole, well-formed frames.
pub fn sent_frames(mut bytes: &[u8]) -> Vec<SentFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "truncated header: {bytes:x?}");
        let b0 = bytes[0];
        let masked = bytes[1] & 0x80 != 0;
        let (len, mut pos) = match bytes[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(be), 10)
            }
            n => (u64::from(n), 2),
        };
        let key = if masked {
            let k = [bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]];
            pos += 4;
            Some(k)
        } else {
            None
        };
        let end = pos + len as usize;
        assert!(bytes.len() >= end, "truncated payload: {bytes:x?}");
        let payload = match key {
            Some(k) => bytes[pos..end]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ k[i % 4])
                .collect(),
            None => bytes[pos..end].to_vec(),
        };
        frames.push(SentFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0F,
            masked,
            payload,
        });
        bytes = &bytes[end..];
    }
    frames
}

/// Asserts that driving ended in `expected`, that exactly one close frame with
/// `code` (and a UTF-8 reason) was queued, unmasked for a server and masked for a
/// client, and that the connection is now `Closed`.
pub fn assert_failed(ws: &WebSocket, out: &Outcome, expected: ProtocolError, code: u16) {
    assert_eq!(out.error.as_ref(), Some(&expected), "outcome {out:?}");
    assert_eq!(expected.close_code(), CloseCode(code));
    let frames = sent_frames(&out.transmit);
    let closes: Vec<_> = frames.iter().filter(|f| f.opcode == CLOSE).collect();
    assert_eq!(closes.len(), 1, "sent {frames:?}");
    let close = closes[0];
    assert!(close.fin && close.rsv == 0);
    assert_eq!(
        close.masked,
        ws.role() == Role::Client,
        "masking of {close:?}"
    );
    assert_eq!(close.close_code(), Some(code), "sent {frames:?}");
    assert!(close.payload.len() <= 125);
    assert!(std::str::from_utf8(&close.payload[2..]).is_ok());
    assert_eq!(ws.state(), State::Closed);
}

/// A request head: `request_line`, the headers in order, and the blank line.
pub fn head(request_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    for (name, value) in headers {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The headers of a minimal valid upgrade request.
pub fn upgrade_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", SAMPLE_KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
}

/// `upgrade_headers` without any header named `name`.
pub fn without(name: &str) -> Vec<(&'static str, &'static str)> {
    upgrade_headers()
        .into_iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect()
}

/// `upgrade_headers` with header `name` replaced by `value`.
pub fn with(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    upgrade_headers()
        .into_iter()
        .map(|(n, v)| if n == name { (n, value) } else { (n, v) })
        .collect()
}

/// Parses a whole request head and classifies it, as a server does.
pub fn classify(bytes: &[u8]) -> Result<Option<Upgrade>, HandshakeError> {
    match parse_request(bytes, &RequestLimits::default())? {
        Some((req, n)) => {
            assert_eq!(n, bytes.len(), "head not consumed exactly");
            req.websocket_upgrade()
        }
        None => panic!("complete head reported as incomplete: {bytes:?}"),
    }
}

/// An HTTP response read back by this file's own small parser.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of header `name`; panics if it is missing or repeated.
    pub fn one(&self, name: &str) -> &str {
        match self.all(name).as_slice() {
            [v] => v,
            other => panic!("header {name}: {other:?} in {self:?}"),
        }
    }
}

/// Parses a response head and body; panics unless it is well-formed HTTP/1.1 with
/// CRLF line ends, token header names, and a body exactly `Content-Length` long
/// (an absent `Content-Length` means no body, as for 101).
pub fn parse_http_response(bytes: &[u8]) -> HttpResponse {
    let text = std::str::from_utf8(bytes).expect("response is UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("head ends in a blank line");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let code = parts.next().expect("status code");
    assert_eq!(code.len(), 3, "status line {status_line:?}");
    let status: u16 = code.parse().expect("numeric status");
    let reason = parts.next().expect("reason phrase").to_owned();
    assert!(!reason.is_empty() && !reason.contains('\n'));
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header has a colon");
            assert!(
                !name.is_empty() && name.chars().all(token),
                "header name {name:?}"
            );
            assert!(!value.contains('\r') && !value.contains('\n'));
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let response = HttpResponse {
        status,
        reason,
        headers,
        body: body.as_bytes().to_vec(),
    };
    match response.all("Content-Length").as_slice() {
        [] => assert!(response.body.is_empty(), "body without Content-Length"),
        [len] => assert_eq!(
            len.parse::<usize>().expect("numeric Content-Length"),
            response.body.len(),
            "Content-Length"
        ),
        more => panic!("several Content-Length: {more:?}"),
    }
    response
}

/// Asserts that `error` is answered by a well-formed closing response with `status`
/// and the `extra` headers, and returns it.
pub fn assert_error_response(
    error: &HandshakeError,
    status: u16,
    extra: &[(&str, &str)],
) -> HttpResponse {
    assert_eq!(error.status(), status, "{error:?}");
    let mut out = Vec::new();
    http::write_error_response(&mut out, error);
    let resp = parse_http_response(&out);
    assert_eq!(resp.status, status);
    assert_eq!(resp.reason, http::reason_phrase(status));
    assert!(resp.one("Connection").eq_ignore_ascii_case("close"));
    assert!(!resp.body.is_empty(), "an error response explains itself");
    for (name, value) in extra {
        assert_eq!(resp.one(name), *value, "header {name}");
    }
    resp
}

/// Frames with a first byte from `b0` and a payload from `payload` (cut to 125
/// bytes for a control opcode), masked with a random key 97% of the time: the
/// rest break the masking rule.
pub fn frame_of(
    b0: impl Strategy<Value = u8>,
    payload: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = Vec<u8>> {
    (b0, payload, any::<[u8; 4]>(), prop::bool::weighted(0.97)).prop_map(
        |(b0, payload, key, masked)| {
            let payload = if b0 & 0x08 != 0 {
                payload[..payload.len().min(125)].to_vec()
            } else {
                payload
            };
            raw_frame(b0, masked.then_some(key), &payload)
        },
    )
}

/// `input` cut at the given points (each taken modulo its length plus one), in
/// order: the pieces a socket might deliver.
pub fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let (mut out, mut start) = (Vec::new(), 0);
    for p in points {
        out.push(&input[start..p]);
        start = p;
    }
    out.push(&input[start..]);
    out
}

//! A deliberately dumb raw WebSocket/HTTP client for behaviour tests: hand-built
//! request heads and frames on a plain `std::net::TcpStream`, so tests can break
//! the protocol, split or pipeline bytes, or simply stop reading.
//!
//! Owns byte-level helpers only. It must never validate what the server sends
//! beyond splitting it into heads and frames (the tests assert), never talk to
//! anything but loopback, and every read in it is bounded by a timeout.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The sample key of RFC 6455 §1.3 and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A generous bound for anything the server should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Encodes one frame. `mask` = `Some(key)` masks the payload as a client must.
pub fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(((fin as u8) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked client frame with FIN set and no RSV bits.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, Some([0x37, 0xfa, 0x21, 0x3d]), payload)
}

/// A close payload: code and reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// A frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (None for an empty close payload).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// What a bounded read found.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The peer closed its write side (read returned 0).
    Eof,
    /// Nothing complete arrived within the timeout.
    Timeout,
    /// The connection failed (e.g. reset).
    Error(io::ErrorKind),
}

/// A response head (and, for `http_exchange`, its body).
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses a response head from the front of `buf`: the response and the head's length.
pub fn parse_head(buf: &[u8]) -> Option<(Response, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..end - 4]).expect("response head is UTF-8");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("header line {l:?}"));
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Some((
        Response {
            status,
            headers,
            body: Vec::new(),
        },
        end,
    ))
}

/// An upgrade request head for `path` with the sample key; `extra` is appended
/// verbatim (each header ending in `\r\n`).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A raw connection: the stream plus bytes received but not yet consumed.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    /// Connects (bounded) to `addr`.
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::from_stream(TcpStream::connect_timeout(&addr, WAIT).expect("connect to wsd"))
    }

    /// Connects with a tiny kernel receive buffer, so that once this client stops
    /// reading, the server's side fills after little data.
    pub fn connect_small_rcvbuf(addr: SocketAddr) -> Raw {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket
            .connect_timeout(&addr.into(), WAIT)
            .expect("connect to wsd");
        Raw::from_stream(TcpStream::from(socket))
    }

    /// Wraps an already connected stream (e.g. one with a tiny receive buffer).
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream.set_nodelay(true).expect("nodelay");
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects, upgrades on `path` and asserts the 101 (with the right accept value).
    pub fn upgrade(addr: SocketAddr, path: &str) -> Raw {
        let (raw, response) = Raw::try_upgrade(addr, path, "", &[]);
        assert_eq!(
            response.status,
            101,
            "upgrade on {path}: {response:?} {}",
            response.body_text()
        );
        assert_eq!(response.header("Sec-WebSocket-Accept"), Some(ACCEPT));
        raw
    }

    /// Upgrades an already connected raw client on `path`; asserts the 101.
    pub fn upgrade_on(mut self, path: &str) -> Raw {
        self.send(upgrade_request(path, "").as_bytes());
        let response = self.read_head(WAIT).expect("a response head");
        assert_eq!(response.status, 101, "upgrade on {path}: {response:?}");
        self
    }

    /// Connects and sends an upgrade request with `extra` headers, followed in the
    /// same write by `pipelined` bytes; returns the response head.
    pub fn try_upgrade(
        addr: SocketAddr,
        path: &str,
        extra: &str,
        pipelined: &[u8],
    ) -> (Raw, Response) {
        let mut raw = Raw::connect(addr);
        let mut bytes = upgrade_request(path, extra).into_bytes();
        bytes.extend_from_slice(pipelined);
        raw.send(&bytes);
        let response = raw.read_head(WAIT).expect("a response head");
        (raw, response)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to wsd");
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let f = frame(fin, 0, opcode, Some([1, 2, 3, 4]), payload);
        self.send(&f);
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`.
    /// Ok(false) on EOF.
    fn fill(&mut self, deadline: Instant) -> Result<bool, Next> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Next::Timeout);
        }
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Next::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Next::Error(e.kind())),
            }
        }
    }

    /// Reads a response head (leaving any bytes after it buffered).
    pub fn read_head(&mut self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((response, n)) = parse_head(&self.buf) {
                self.buf.drain(..n);
                return Some(response);
            }
            match self.fill(deadline) {
                Ok(true) => {}
                _ => return None,
            }
        }
    }

    /// Reads a response head and a `Content-Length` body.
    pub fn read_response(&mut self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        let mut response = self.read_head(timeout)?;
        let len: usize = response
            .header("Content-Length")
            .map(|l| l.parse().expect("numeric Content-Length"))
            .unwrap_or(0);
        while self.buf.len() < len {
            if !matches!(self.fill(deadline), Ok(true)) {
                return None;
            }
        }
        response.body = self.buf.drain(..len).collect();
        Some(response)
    }

    /// Reads the next whole frame, waiting at most `timeout`.
    pub fn read_frame(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((f, n)) = parse_frame(&self.buf) {
                self.buf.drain(..n);
                return Next::Frame(f);
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Next::Eof,
                Err(next) => return next,
            }
        }
    }

    /// The next frame, panicking with `what` if none arrives in time.
    pub fn expect_frame(&mut self, what: &str) -> Frame {
        match self.read_frame(WAIT) {
            Next::Frame(f) => f,
            other => panic!("expected {what}, got {other:?}"),
        }
    }

    /// Expects a close frame next and returns its code.
    pub fn expect_close(&mut self) -> Option<u16> {
        let f = self.expect_frame("a close frame");
        assert_eq!(f.opcode, OP_CLOSE, "expected a close frame, got {f:?}");
        assert!(!f.masked, "server frames are never masked");
        f.close_code()
    }

    /// Reads and discards until EOF; true if EOF (or a reset) came within `timeout`.
    pub fn wait_eof(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.buf.clear();
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(Next::Error(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Asserts that nothing but EOF follows (no further frames), within `WAIT`.
    pub fn expect_eof(&mut self) {
        match self.read_frame(WAIT) {
            Next::Eof | Next::Error(_) => {}
            other => panic!("expected EOF, got {other:?}"),
        }
        assert!(
            self.buf.is_empty(),
            "stray bytes before EOF: {:?}",
            self.buf
        );
    }
}

/// Splits one frame off the front of `buf`.
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut pos) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let key = if masked {
        let k: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
        pos += 4;
        Some(k)
    } else {
        None
    };
    let mut payload = buf.get(pos..pos + len)?.to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin: buf[0] & 0x80 != 0,
            rsv: (buf[0] >> 4) & 7,
            opcode: buf[0] & 0x0f,
            masked,
            payload,
        },
        pos + len,
    ))
}

/// Sends `request` on a fresh connection and reads until EOF (bounded): the
/// response head and everything after it as the body.
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut raw = Raw::connect(addr);
    raw.send(request);
    let deadline = Instant::now() + WAIT;
    loop {
        match raw.fill(deadline) {
            Ok(true) => {}
            Ok(false) | Err(Next::Error(_)) => break,
            Err(_) => panic!(
                "no EOF within {WAIT:?} after {:?}",
                String::from_utf8_lossy(&raw.buf)
            ),
        }
    }
    let (mut response, n) = parse_head(&raw.buf).unwrap_or_else(|| {
        panic!(
            "no response head in {:?}",
            String::from_utf8_lossy(&raw.buf)
        )
    });
    response.body = raw.buf[n..].to_vec();
    response
}

/// Sends an upgrade request for `path` with `extra` headers; returns the whole
/// response if it was a refusal (the server closes), or the head of a 101.
pub fn upgrade_status(addr: SocketAddr, path: &str, extra: &str) -> Response {
    let (mut raw, mut response) = Raw::try_upgrade(addr, path, extra, &[]);
    if response.status != 101 {
        assert!(
            raw.wait_eof_collect(&mut response.body, WAIT),
            "no EOF after a refusal"
        );
    }
    response
}

impl Raw {
    /// Reads until EOF, appending everything (buffered bytes first) to `out`.
    pub fn wait_eof_collect(&mut self, out: &mut Vec<u8>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            out.append(&mut self.buf);
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) | Err(Next::Error(_)) => {
                    out.append(&mut self.buf);
                    return true;
                }
                Err(_) => return false,
            }
        }
    }
}

/// Sends `frame` up to `times` times, stopping at the first write the server
/// does not take within 2 s (it stopped reading); returns the bytes sent.
pub fn flood(raw: &mut Raw, frame: &[u8], times: usize) -> usize {
    raw.stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let mut sent = 0;
    for _ in 0..times {
        if raw.stream.write_all(frame).is_err() {
            break;
        }
        sent += frame.len();
    }
    sent
}

/// The resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

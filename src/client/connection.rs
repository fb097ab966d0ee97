//! One client WebSocket connection on a mio event loop: non-blocking connect
//! (optionally from a chosen source address), the opening handshake, then the
//! sans-I/O core for frames.
//!
//! Owns the socket, the unconsumed input and the unsent output of one connection,
//! and turns what happens on it into [`ConnEvent`]s. It must never block, sleep,
//! spawn a thread or read a clock: the caller owns the loop, the timers and the
//! policy (what to send, when to give up).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::core::deflate::{DeflateSettings, PerMessageDeflate};
use crate::core::{
    Accepted, ClientHandshake, CloseCode, CloseFrame, Event, HandshakeError, Limits, Message,
    MessageKind, NotOpen, ProtocolError, Role, State, WebSocket,
};

use super::link::Link;
use super::url::WsUrl;

/// Output above this many unsent bytes is "backlogged": callers stop queueing.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// What one connection needs to start: where to connect and what to ask for.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub addr: SocketAddr,
    pub url: WsUrl,
    /// Bind the socket to this local address (port 0) before connecting.
    pub source: Option<IpAddr>,
    pub protocols: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub limits: Limits,
    /// Disable Nagle's algorithm (latency measurements want this).
    pub nodelay: bool,
    /// For `wss://` URLs: the TLS settings (trusted roots, or `--insecure`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Offer permessage-deflate (as browsers do: `client_max_window_bits`, with
    /// context takeover) and compress every message once it is accepted.
    pub deflate: bool,
}

impl ConnectSpec {
    pub fn new(addr: SocketAddr, url: WsUrl) -> Self {
        ConnectSpec {
            addr,
            url,
            source: None,
            protocols: Vec::new(),
            headers: Vec::new(),
            limits: Limits::default(),
            nodelay: true,
            tls: None,
            deflate: false,
        }
    }
}

/// Why a connection failed; each maps to one counter name in load reports.
#[derive(Debug)]
pub enum ConnError {
    /// ECONNREFUSED: nothing listens there (or the backlog overflowed).
    Refused,
    /// The caller's deadline for connect plus handshake passed.
    Timeout,
    /// EMFILE/ENFILE: this process (or the system) is out of file descriptors.
    TooManyFiles,
    /// EADDRNOTAVAIL/EADDRINUSE on connect or bind: ephemeral ports are exhausted
    /// for this source address (or the source address does not exist).
    AddrNotAvailable,
    /// EADDRINUSE binding an explicitly chosen local port (the caller may try another).
    AddrInUse,
    /// ECONNRESET/EPIPE.
    Reset,
    /// The server closed TCP before the handshake finished.
    ClosedDuringHandshake,
    /// The server's response broke the opening handshake.
    Handshake(HandshakeError),
    /// The server broke RFC 6455 after the handshake.
    Protocol(ProtocolError),
    /// Any other I/O error.
    Io(io::Error),
}

impl ConnError {
    /// Classifies an I/O error by errno.
    pub fn from_io(e: io::Error) -> ConnError {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => ConnError::Refused,
            Some(libc::EMFILE) | Some(libc::ENFILE) => ConnError::TooManyFiles,
            Some(libc::EADDRNOTAVAIL) => ConnError::AddrNotAvailable,
            Some(libc::EADDRINUSE) => ConnError::AddrInUse,
            Some(libc::ECONNRESET) | Some(libc::EPIPE) => ConnError::Reset,
            Some(libc::ETIMEDOUT) => ConnError::Timeout,
            _ => ConnError::Io(e),
        }
    }

    /// A short, stable name for counting failures by cause.
    pub fn cause(&self) -> &'static str {
        match self {
            ConnError::Refused => "refused",
            ConnError::Timeout => "timeout",
            ConnError::TooManyFiles => "emfile",
            ConnError::AddrNotAvailable => "eaddrnotavail",
            ConnError::AddrInUse => "eaddrinuse",
            ConnError::Reset => "reset",
            ConnError::ClosedDuringHandshake => "closed_during_handshake",
            ConnError::Handshake(_) => "handshake",
            ConnError::Protocol(_) => "protocol",
            ConnError::Io(_) => "other",
        }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Refused => f.write_str("connection refused"),
            ConnError::Timeout => f.write_str("timed out"),
            ConnError::TooManyFiles => {
                f.write_str("out of file descriptors (EMFILE/ENFILE): raise the limit or use fewer connections per process")
            }
            ConnError::AddrNotAvailable => f.write_str(
                "address not available (EADDRNOTAVAIL): ephemeral ports exhausted for this source address",
            ),
            ConnError::AddrInUse => f.write_str("local address already in use (EADDRINUSE)"),
            ConnError::Reset => f.write_str("connection reset by peer"),
            ConnError::ClosedDuringHandshake => {
                f.write_str("server closed the connection during the handshake")
            }
            ConnError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ConnError::Protocol(e) => write!(f, "protocol error from server: {e}"),
            ConnError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for ConnError {}

/// What happened on a connection, in order.
#[derive(Debug)]
pub enum ConnEvent {
    /// The handshake succeeded; messages may be sent.
    Open(Accepted),
    Message(Message),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The server's close frame (`None`: no code). Our reply, if owed, is queued.
    Close(Option<CloseFrame>),
    /// The server closed TCP. The connection is finished.
    Eof,
    /// The connection failed and is finished.
    Failed(ConnError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshaking,
    Open,
    Done,
}

/// One client connection. Register it, feed it readiness events, drain its events.
#[derive(Debug)]
pub struct Connection {
    link: Link,
    phase: Phase,
    handshake: Option<Box<ClientHandshake>>,
    ws: Option<WebSocket>,
    limits: Limits,
    mask_seed: [u8; 32],
    /// Received bytes not yet consumed.
    input: Vec<u8>,
    /// Bytes to send; `output[out_pos..]` is unsent.
    output: Vec<u8>,
    out_pos: usize,
    events: VecDeque<ConnEvent>,
}

/// Sends on a connection from inside a handler of borrowed messages (see
/// [`Connection::handle_ready_with`]), while the connection itself is busy reading.
pub struct Sender<'a> {
    ws: &'a mut WebSocket,
    output: &'a mut Vec<u8>,
}

impl Sender<'_> {
    /// Queues a data message; it goes out with the connection's next write.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), NotOpen> {
        self.ws.send(kind, payload, self.output)
    }

    /// Queues a data message of `len` bytes that `fill` writes in place (see
    /// [`WebSocket::send_with`]).
    pub fn send_with(
        &mut self,
        kind: MessageKind,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NotOpen> {
        self.ws.send_with(kind, len, self.output, fill)
    }
}

/// Handles one received message whose payload is borrowed from the read buffer.
pub type OnMessage<'a> = dyn FnMut(MessageKind, &[u8], &mut Sender<'_>) + 'a;

/// Fills `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(e.to_string()))
}

fn random_seed() -> io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    random_bytes(&mut b)?;
    Ok(b)
}

impl Connection {
    /// Creates a non-blocking socket, binds it to `spec.source` if set (the kernel
    /// picks the port), starts connecting and queues the upgrade request. Errors
    /// here (EMFILE, EADDRNOTAVAIL, ...) are immediate.
    pub fn start(spec: &ConnectSpec) -> Result<Connection, ConnError> {
        Self::start_from(spec, spec.source.map(|ip| SocketAddr::new(ip, 0)))
    }

    /// Like [`Connection::start`], bound to `local` (an explicit port, or port 0).
    /// With an explicit port, `AddrInUse`/`AddrNotAvailable` mean "try another port";
    /// with port 0 they mean the ephemeral ports are exhausted.
    pub fn start_from(
        spec: &ConnectSpec,
        local: Option<SocketAddr>,
    ) -> Result<Connection, ConnError> {
        let domain = Domain::for_address(spec.addr);
        let socket = Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))
            .map_err(ConnError::from_io)?;
        let exhausted = |e: ConnError| match e {
            ConnError::AddrInUse => ConnError::AddrNotAvailable,
            other => other,
        };
        if let Some(local) = local {
            socket.bind(&SockAddr::from(local)).map_err(|e| {
                let e = ConnError::from_io(e);
                if local.port() == 0 {
                    exhausted(e)
                } else {
                    e
                }
            })?;
        }
        match socket.connect(&SockAddr::from(spec.addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if !matches!(local, Some(l) if l.port() != 0) => {
                return Err(exhausted(ConnError::from_io(e)))
            }
            Err(e) => return Err(ConnError::from_io(e)),
        }
        if spec.nodelay {
            socket.set_tcp_nodelay(true).map_err(ConnError::from_io)?;
        }
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket));
        let link = match (&spec.tls, spec.url.secure) {
            (_, false) => Link::Tcp(stream),
            (Some(config), true) => {
                Link::tls(stream, Arc::clone(config), &spec.url.host).map_err(ConnError::Io)?
            }
            (None, true) => {
                return Err(ConnError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "wss:// needs TLS settings",
                )))
            }
        };
        let mut key = [0u8; 16];
        random_bytes(&mut key).map_err(ConnError::Io)?;
        let mut handshake = ClientHandshake::new(key, spec.protocols.clone());
        if spec.deflate {
            handshake = handshake.offer_deflate(false);
        }
        let mut output = Vec::new();
        handshake.write_request(
            &mut output,
            &spec.url.host_header,
            &spec.url.resource,
            &spec.headers,
        );
        Ok(Connection {
            link,
            phase: Phase::Connecting,
            handshake: Some(Box::new(handshake)),
            ws: None,
            limits: spec.limits,
            mask_seed: random_seed().map_err(ConnError::Io)?,
            input: Vec::new(),
            output,
            out_pos: 0,
            events: VecDeque::new(),
        })
    }

    /// Registers the socket for both readiness kinds (edge-triggered).
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            self.link.tcp(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Removes the socket from the poller (dropping it also does).
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.link.tcp());
    }

    /// Whether the handshake is done and the connection not finished.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the connection is finished (EOF or failure reported).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether we may still send data messages.
    pub fn can_send(&self) -> bool {
        self.phase == Phase::Open && self.ws.as_ref().is_some_and(WebSocket::is_open)
    }

    /// The WebSocket state, once the handshake is done.
    pub fn ws_state(&self) -> Option<State> {
        self.ws.as_ref().map(WebSocket::state)
    }

    /// Bytes queued but not yet accepted by the kernel.
    pub fn unsent(&self) -> usize {
        self.output.len() - self.out_pos
    }

    /// Handles a readiness event for this connection's token.
    pub fn handle_ready(&mut self, readable: bool, writable: bool, scratch: &mut [u8]) {
        self.handle_ready_with(readable, writable, true, scratch, None);
    }

    /// Like [`Connection::handle_ready`], for callers that count syscalls:
    ///
    /// - Unless `hangup` (the event reported the peer's hangup or an error), a
    ///   read over plain TCP that leaves room in `scratch` ends the reading: the
    ///   socket was empty then, and bytes arriving later raise a new
    ///   (edge-triggered) event, so the read that would only say EAGAIN is saved.
    /// - With `on_message`, every whole message that needs no reassembly (see
    ///   [`WebSocket::read_in_place`]) goes to it straight from `scratch`, with a
    ///   [`Sender`] to answer it, instead of being copied into a
    ///   [`ConnEvent::Message`]. Everything else still becomes events, in order:
    ///   once an event is queued, the rest of this read takes the long way too.
    pub fn handle_ready_with(
        &mut self,
        readable: bool,
        writable: bool,
        hangup: bool,
        scratch: &mut [u8],
        on_message: Option<&mut OnMessage<'_>>,
    ) {
        if self.phase == Phase::Done {
            return;
        }
        if self.phase == Phase::Connecting && (writable || readable) {
            match self.link.tcp_ref().take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(ConnError::from_io(e)),
                Ok(None) => {}
            }
            match self.link.tcp_ref().peer_addr() {
                Ok(_) => self.phase = Phase::Handshaking,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => return self.fail(ConnError::from_io(e)),
            }
        }
        if writable || self.unsent() > 0 || self.link.wants_write() {
            self.flush();
        }
        if readable && self.phase != Phase::Done {
            let until_empty = hangup || !matches!(self.link, Link::Tcp(_));
            self.read_all(scratch, until_empty, on_message);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// Queues a data message; call [`Connection::flush`] after queueing a batch.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), NotOpen> {
        match self.ws.as_mut() {
            Some(ws) if self.phase == Phase::Open => ws.send(kind, payload, &mut self.output),
            _ => Err(NotOpen),
        }
    }

    /// Queues a data message of `len` bytes that `fill` writes in place (see
    /// [`WebSocket::send_with`]).
    pub fn send_with(
        &mut self,
        kind: MessageKind,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NotOpen> {
        match self.ws.as_mut() {
            Some(ws) if self.phase == Phase::Open => {
                ws.send_with(kind, len, &mut self.output, fill)
            }
            _ => Err(NotOpen),
        }
    }

    /// Queues a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), NotOpen> {
        match self.ws.as_mut() {
            Some(ws) if self.phase == Phase::Open => ws.ping(payload, &mut self.output),
            _ => Err(NotOpen),
        }
    }

    /// Starts the closing handshake.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), NotOpen> {
        match self.ws.as_mut() {
            Some(ws) if self.phase == Phase::Open => ws.close(code, reason, &mut self.output),
            _ => Err(NotOpen),
        }
    }

    /// Marks the connection failed with `error` (e.g. the caller's timeout) and
    /// shuts the socket down.
    pub fn abort(&mut self, error: ConnError) {
        if self.phase != Phase::Done {
            self.fail(error);
        }
    }

    /// Writes queued output until done or the kernel pushes back.
    pub fn flush(&mut self) {
        if self.phase == Phase::Connecting || self.phase == Phase::Done {
            return;
        }
        while self.out_pos < self.output.len() {
            match self.link.write(&self.output[self.out_pos..]) {
                Ok(0) => return self.fail(ConnError::Reset),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(ConnError::from_io(e)),
            }
        }
        self.output.clear();
        self.out_pos = 0;
        if self.output.capacity() > 256 * 1024 {
            self.output = Vec::new();
        }
        if let Err(e) = self.link.flush_records() {
            self.fail(ConnError::from_io(e));
        }
    }

    fn fail(&mut self, error: ConnError) {
        self.phase = Phase::Done;
        self.input = Vec::new();
        self.output = Vec::new();
        self.out_pos = 0;
        self.link.shutdown();
        self.events.push_back(ConnEvent::Failed(error));
    }

    /// Reads until EAGAIN, or (unless `until_empty`) until a read that does not
    /// fill `scratch`.
    fn read_all(
        &mut self,
        scratch: &mut [u8],
        until_empty: bool,
        mut on_message: Option<&mut OnMessage<'_>>,
    ) {
        loop {
            match self.link.read(scratch) {
                Ok(0) => {
                    if self.phase == Phase::Handshaking {
                        return self.fail(ConnError::ClosedDuringHandshake);
                    }
                    self.phase = Phase::Done;
                    self.input = Vec::new();
                    self.events.push_back(ConnEvent::Eof);
                    return;
                }
                Ok(n) => {
                    self.on_bytes(&mut scratch[..n], on_message.as_deref_mut());
                    if self.phase == Phase::Done {
                        return;
                    }
                    if !until_empty && n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(ConnError::from_io(e)),
            }
        }
        // Replies (pongs, close replies) queued while reading go out now.
        if self.unsent() > 0 {
            self.flush();
        }
    }

    fn on_bytes(&mut self, bytes: &mut [u8], on_message: Option<&mut OnMessage<'_>>) {
        if self.phase == Phase::Handshaking {
            self.input.extend_from_slice(bytes);
            let Some(hs) = self.handshake.as_ref() else {
                return;
            };
            match hs.parse_response(&self.input) {
                Ok(None) => return,
                Err(e) => return self.fail(ConnError::Handshake(e)),
                Ok(Some((accepted, n))) => {
                    self.input.drain(..n);
                    self.handshake = None;
                    self.phase = Phase::Open;
                    let mut ws = WebSocket::client(self.limits, self.mask_seed);
                    if let Some(params) = &accepted.deflate {
                        ws = ws.with_deflate(PerMessageDeflate::new(
                            Role::Client,
                            params,
                            DeflateSettings::default(),
                            0,
                        ));
                    }
                    self.ws = Some(ws);
                    self.events.push_back(ConnEvent::Open(accepted));
                }
            }
            let rest = std::mem::take(&mut self.input);
            self.on_frames(&rest);
            return;
        }
        let mut pos = 0;
        if let (Some(f), Some(ws), true) = (on_message, self.ws.as_mut(), self.input.is_empty()) {
            while self.events.is_empty() {
                let Some((kind, data, n)) = ws.read_in_place(&mut bytes[pos..]) else {
                    break;
                };
                let mut sender = Sender {
                    ws: &mut *ws,
                    output: &mut self.output,
                };
                f(kind, data, &mut sender);
                pos += n;
            }
            if pos == bytes.len() {
                return;
            }
        }
        let bytes = &bytes[pos..];
        if self.input.is_empty() {
            self.on_frames(bytes);
        } else {
            let mut all = std::mem::take(&mut self.input);
            all.extend_from_slice(bytes);
            self.on_frames(&all);
        }
    }

    /// Feeds frame bytes to the core; keeps what it did not consume.
    fn on_frames(&mut self, data: &[u8]) {
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let result = ws.handle_read(data);
        while let Some(ev) = ws.poll_event() {
            self.events.push_back(match ev {
                Event::Message(m) => ConnEvent::Message(m),
                Event::Ping(p) => ConnEvent::Ping(p),
                Event::Pong(p) => ConnEvent::Pong(p),
                Event::Close(c) => ConnEvent::Close(c),
            });
        }
        ws.poll_transmit(&mut self.output);
        let pos = match result {
            Ok(used) => used,
            Err(e) => {
                // The core queued our close with the error's code; send it, then fail.
                self.flush();
                return self.fail(ConnError::Protocol(e));
            }
        };
        if pos < data.len() {
            self.input.extend_from_slice(&data[pos..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use mio::{Events, Poll};

    use super::*;

    /// Over plain TCP a read that leaves room in the buffer ends the reading
    /// (no further read just to see EAGAIN): the socket is edge-triggered, and
    /// bytes that arrive later raise a new event. So a server that trickles
    /// its frames in pieces cut anywhere (inside headers, inside payloads)
    /// still gets every message through, whole and in order, read in place.
    #[test]
    fn a_short_read_ends_reading_and_later_bytes_raise_a_new_event() {
        const N: u8 = 40;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before its request");
                head.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .trim()
                .to_owned();
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                crate::core::accept_key(&key)
            );
            s.write_all(response.as_bytes()).unwrap();
            let frames: Vec<u8> = (0..N).flat_map(|i| [0x82, 3, i, i, i]).collect();
            for piece in frames.chunks(7) {
                s.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        });

        let url = WsUrl::parse(&format!("ws://{addr}/")).unwrap();
        let mut conn = Connection::start(&ConnectSpec::new(addr, url)).unwrap();
        let mut poll = Poll::new().unwrap();
        conn.register(poll.registry(), Token(0)).unwrap();
        let mut events = Events::with_capacity(8);
        let mut scratch = vec![0u8; 4096];
        let (mut got, mut readable_events) = (Vec::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < usize::from(N) && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for ev in events.iter() {
                let hangup = ev.is_read_closed() || ev.is_error();
                readable_events += usize::from(ev.is_readable());
                conn.handle_ready_with(
                    ev.is_readable() || hangup,
                    ev.is_writable(),
                    hangup,
                    &mut scratch,
                    Some(&mut |kind, data: &[u8], _: &mut Sender<'_>| {
                        got.push((kind, data.to_vec()))
                    }),
                );
                while let Some(e) = conn.poll_event() {
                    match e {
                        ConnEvent::Open(_) => {}
                        ConnEvent::Message(m) => got.push((m.kind, m.data)),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        }
        let want: Vec<_> = (0..N).map(|i| (MessageKind::Binary, vec![i; 3])).collect();
        assert_eq!(got, want);
        assert!(readable_events > 1, "{readable_events} readable events");
        drop(conn);
        server.join().unwrap();
    }
}

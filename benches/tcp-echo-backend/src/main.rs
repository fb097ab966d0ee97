//! tcp-echo-backend: a single-threaded mio TCP echo server, the backend behind
//! the `kind = "tcp"` bridge routes that `benches/bridge.sh` measures (for wsd
//! and for websockify alike).
//!
//! `tcp-echo-backend ADDR` accepts TCP connections on ADDR and writes back every
//! byte it reads. Edge-triggered: each wake-up reads until the socket would
//! block, through one shared 256 KiB buffer, and writes each read straight back;
//! what the peer cannot take yet is kept per connection and reading from that
//! connection pauses until it is flushed, so memory stays bounded by what peers
//! refuse to read. Peer errors (resets, broken pipes) close that connection and
//! nothing else; the server never panics on them.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The listener's token; connection `i` is `Token(i + 1)`.
const LISTENER: Token = Token(0);
/// The one read buffer every connection shares.
const BUF_SIZE: usize = 256 * 1024;
/// Reads per connection per wake-up before the others get a turn (the rest
/// waits in the `again` queue, since no new edge will come for it).
const READS_PER_TURN: usize = 16;

/// One accepted connection.
struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back (the peer's receive window was full).
    pending: Vec<u8>,
}

/// What handling a connection decided.
enum Outcome {
    /// Waiting for the next readiness edge.
    Idle,
    /// Still has input to read: come back after the others.
    Again,
    /// EOF or an error: drop it.
    Close,
}

fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: tcp-echo-backend ADDR   (e.g. 127.0.0.1:9100)");
        return ExitCode::from(2);
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("tcp-echo-backend: {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp-echo-backend: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("tcp-echo-backend listening on {}", listener.local_addr()?);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; BUF_SIZE];
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // Tokens with work left over from an earlier turn (the listener included).
    let mut again: VecDeque<Token> = VecDeque::new();
    loop {
        let timeout = if again.is_empty() {
            None
        } else if again.contains(&LISTENER) && again.len() == 1 {
            // Only accept() backing off (out of descriptors): wait a little.
            Some(Duration::from_millis(10))
        } else {
            Some(Duration::ZERO)
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut ready: Vec<Token> = again.drain(..).collect();
        ready.extend(events.iter().map(|ev| ev.token()));
        ready.sort_unstable();
        ready.dedup();
        for token in ready {
            if token == LISTENER {
                if !accept_all(&listener, &poll, &mut conns, &mut free) {
                    again.push_back(LISTENER);
                }
                continue;
            }
            let i = token.0 - 1;
            let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue; // closed earlier in this turn
            };
            match handle(conn, &mut buf) {
                Outcome::Idle => {}
                Outcome::Again => again.push_back(token),
                Outcome::Close => {
                    if let Some(mut conn) = conns[i].take() {
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                    free.push(i);
                }
            }
        }
    }
}

/// Accepts until the listener would block. Returns false when accept failed
/// otherwise (e.g. EMFILE): the caller retries shortly, as no new edge may come.
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
) -> bool {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                let i = free.pop().unwrap_or_else(|| {
                    conns.push(None);
                    conns.len() - 1
                });
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = poll
                    .registry()
                    .register(&mut stream, Token(i + 1), interest)
                {
                    eprintln!("tcp-echo-backend: register: {e}");
                    free.push(i);
                    continue;
                }
                conns[i] = Some(Conn {
                    stream,
                    pending: Vec::new(),
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
            Err(e) => {
                eprintln!("tcp-echo-backend: accept: {e}");
                return false;
            }
        }
    }
}

/// Flushes what is pending, then echoes what can be read, until the socket
/// would block (or this connection has had its share of the turn).
fn handle(conn: &mut Conn, buf: &mut [u8]) -> Outcome {
    if !conn.pending.is_empty() {
        match write_some(&mut conn.stream, &conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
                if !conn.pending.is_empty() {
                    return Outcome::Idle; // wait for writable
                }
            }
            Err(_) => return Outcome::Close,
        }
    }
    for _ in 0..READS_PER_TURN {
        let n = match conn.stream.read(buf) {
            Ok(0) => return Outcome::Close,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Idle,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Outcome::Close,
        };
        match write_some(&mut conn.stream, &buf[..n]) {
            Ok(written) if written == n => {}
            Ok(written) => {
                // The peer is not reading: keep the rest, stop reading until
                // it is flushed (the writable edge brings us back).
                conn.pending.extend_from_slice(&buf[written..n]);
                return Outcome::Idle;
            }
            Err(_) => return Outcome::Close,
        }
    }
    Outcome::Again
}

/// Writes as much of `data` as the socket takes now: the count written, or the
/// error that ended the connection.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

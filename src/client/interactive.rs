//! `wsd connect`: each line read from stdin goes out as a text message, every
//! message received is printed on stdout; connection news (handshake, close code
//! and reason, errors) goes to stderr.
//!
//! Owns the terminal side: non-blocking stdin in the mio loop (or plain reads when
//! stdin is a regular file, which epoll refuses) and output formatting. It must
//! never block on the network, never spawn a thread, and every wait is bounded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::core::{CloseCode, CloseFrame, MessageKind};

use super::connection::{ConnError, ConnEvent, ConnectSpec, Connection, OUTPUT_HIGH_WATER};
use super::url::WsUrl;
use super::ConnectArgs;

const CONN: Token = Token(0);
const STDIN: Token = Token(1);
const STDIN_FD: RawFd = 0;

/// How stdin is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StdinMode {
    /// A pipe or terminal registered with the poller.
    Polled,
    /// A regular file (or anything epoll refuses): reads never block, so read on
    /// every loop turn.
    AlwaysReady,
    /// End of input seen.
    Done,
}

/// How the session ended, mapped to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Clean,
    ConnectFailed,
    Abrupt,
    ServerError,
}

impl Outcome {
    fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::ConnectFailed => ExitCode::from(1),
            Outcome::Abrupt => ExitCode::from(2),
            Outcome::ServerError => ExitCode::from(3),
        }
    }
}

/// Parses `K: V` header arguments.
fn parse_headers(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|h| match h.split_once(':') {
            Some((k, v))
                if !k.trim().is_empty()
                    && !k.contains(['\r', '\n'])
                    && !v.contains(['\r', '\n']) =>
            {
                Ok((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => Err(format!("invalid header {h:?}; expected 'Name: value'")),
        })
        .collect()
}

/// Whether fd 0 has bytes (or EOF) ready right now.
fn stdin_ready() -> bool {
    let mut pfd = libc::pollfd {
        fd: STDIN_FD,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents != 0
}

/// One read(2) from fd 0 without touching its O_NONBLOCK flag (which the terminal
/// shares with the shell); the caller only reads when data is known to be there.
fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(STDIN_FD, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Splits complete lines off `buf` into `lines` (without `\n` / `\r\n`).
fn take_lines(buf: &mut Vec<u8>, lines: &mut VecDeque<String>) {
    let mut start = 0;
    while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
        let mut line = &buf[start..start + i];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        lines.push_back(String::from_utf8_lossy(line).into_owned());
        start += i + 1;
    }
    buf.drain(..start);
}

/// A one-line description of a binary message: length and the first bytes in hex.
pub fn describe_binary(data: &[u8]) -> String {
    const SHOWN: usize = 32;
    let hex: String = data
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    let more = if data.len() > SHOWN { "..." } else { "" };
    format!("<binary {} bytes: {hex}{more}>", data.len())
}

fn describe_close(frame: &Option<CloseFrame>) -> String {
    match frame {
        None => "close received: no status code".to_owned(),
        Some(f) if f.reason.is_empty() => format!("close received: code {}", f.code.0),
        Some(f) => format!("close received: code {} reason {:?}", f.code.0, f.reason),
    }
}

/// Runs one interactive session.
pub fn run(args: &ConnectArgs) -> ExitCode {
    match session(args) {
        Ok(outcome) => outcome.exit_code(),
        Err(msg) => {
            eprintln!("wsd connect: {msg}");
            Outcome::ConnectFailed.exit_code()
        }
    }
}

fn session(args: &ConnectArgs) -> Result<Outcome, String> {
    let url = WsUrl::parse(&args.url).map_err(|e| e.to_string())?;
    let addr = url.resolve().map_err(|e| e.to_string())?;
    let secure = url.secure;
    let mut spec = ConnectSpec::new(addr, url);
    if secure {
        spec.tls = Some(args.tls.client_config()?);
    }
    spec.protocols = args.protocols.clone();
    spec.deflate = args.deflate;
    spec.headers = parse_headers(&args.headers)?;
    let connect_timeout = Duration::from_secs_f64(args.connect_timeout.clamp(0.001, 3600.0));
    let close_timeout = Duration::from_secs_f64(args.close_timeout.clamp(0.001, 3600.0));

    let mut poll = Poll::new().map_err(|e| format!("cannot create poller: {e}"))?;
    let mut conn =
        Connection::start(&spec).map_err(|e| format!("cannot connect to {}: {e}", args.url))?;
    conn.register(poll.registry(), CONN)
        .map_err(|e| format!("cannot register socket: {e}"))?;
    let mut stdin_mode =
        match poll
            .registry()
            .register(&mut SourceFd(&STDIN_FD), STDIN, Interest::READABLE)
        {
            Ok(()) => StdinMode::Polled,
            Err(_) => StdinMode::AlwaysReady,
        };

    let mut events = Events::with_capacity(16);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut stdin_buf = vec![0u8; 16 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut lines: VecDeque<String> = VecDeque::new();
    let connect_deadline = Instant::now() + connect_timeout;
    let mut opened = false;
    let mut close_sent = false;
    let mut server_close: Option<Option<CloseFrame>> = None;
    let mut close_deadline: Option<Instant> = None;
    // After stdin ends, replies still in flight are shown before our close (the
    // core discards data frames once our close is sent).
    let linger = Duration::from_secs_f64(args.linger.clamp(0.0, 3600.0));
    let mut last_activity = Instant::now();
    let mut eof_at: Option<Instant> = None;
    let stdout = io::stdout();

    loop {
        let now = Instant::now();
        let mut timeout = if opened {
            match (close_deadline, eof_at) {
                (Some(d), _) => Some(d.saturating_duration_since(now)),
                (None, Some(_)) => Some(Duration::from_millis(20)),
                (None, None) => None,
            }
        } else {
            Some(connect_deadline.saturating_duration_since(now))
        };
        if stdin_mode == StdinMode::AlwaysReady && opened && conn.unsent() < OUTPUT_HIGH_WATER {
            timeout = Some(Duration::ZERO);
        }
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll failed: {e}"));
            }
        }
        for ev in events.iter() {
            if ev.token() == CONN {
                conn.handle_ready(
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                    &mut scratch,
                );
            }
        }

        let mut out = stdout.lock();
        while let Some(ev) = conn.poll_event() {
            match ev {
                ConnEvent::Open(accepted) => {
                    opened = true;
                    let mut with = Vec::new();
                    if let Some(p) = &accepted.protocol {
                        with.push(format!("subprotocol {p}"));
                    }
                    if let Some(d) = &accepted.deflate {
                        with.push(d.response_header());
                    }
                    match with.is_empty() {
                        true => eprintln!("connected to {}", args.url),
                        false => eprintln!("connected to {} ({})", args.url, with.join(", ")),
                    }
                }
                ConnEvent::Message(m) => {
                    last_activity = Instant::now();
                    let _ = match m.kind {
                        MessageKind::Text => {
                            out.write_all(&m.data).and_then(|()| out.write_all(b"\n"))
                        }
                        MessageKind::Binary => writeln!(out, "{}", describe_binary(&m.data)),
                    };
                }
                ConnEvent::Ping(_) | ConnEvent::Pong(_) => {}
                ConnEvent::Close(frame) => {
                    eprintln!("{}", describe_close(&frame));
                    server_close = Some(frame);
                    if close_deadline.is_none() {
                        close_deadline = Some(Instant::now() + close_timeout);
                    }
                }
                ConnEvent::Eof => {
                    let _ = out.flush();
                    return Ok(finish(server_close, close_sent));
                }
                ConnEvent::Failed(e) => {
                    let _ = out.flush();
                    if !opened {
                        eprintln!("wsd connect: {}: {e}", args.url);
                        return Ok(Outcome::ConnectFailed);
                    }
                    eprintln!("wsd connect: connection failed: {e}");
                    return Ok(Outcome::Abrupt);
                }
            }
        }
        let _ = out.flush();
        drop(out);

        // Stdin: read only once open and while the socket keeps up.
        if opened && conn.can_send() && conn.unsent() < OUTPUT_HIGH_WATER {
            match stdin_mode {
                StdinMode::Done => {}
                StdinMode::Polled | StdinMode::AlwaysReady => {
                    let polled = stdin_mode == StdinMode::Polled;
                    while !polled || stdin_ready() {
                        match read_stdin(&mut stdin_buf) {
                            Ok(0) | Err(_) => {
                                if polled {
                                    let _ = poll.registry().deregister(&mut SourceFd(&STDIN_FD));
                                }
                                stdin_mode = StdinMode::Done;
                                if !partial.is_empty() {
                                    partial.push(b'\n');
                                }
                                take_lines(&mut partial, &mut lines);
                                break;
                            }
                            Ok(n) => {
                                partial.extend_from_slice(&stdin_buf[..n]);
                                take_lines(&mut partial, &mut lines);
                                if !polled || lines.len() > 1024 {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }

        if conn.can_send() {
            while let Some(line) = lines.pop_front() {
                if conn.send(MessageKind::Text, line.as_bytes()).is_err() {
                    break;
                }
                last_activity = Instant::now();
            }
            if stdin_mode == StdinMode::Done && eof_at.is_none() {
                eof_at = Some(Instant::now());
            }
            let quiet = last_activity.elapsed() >= linger
                || eof_at.is_some_and(|t| t.elapsed() >= close_timeout);
            if stdin_mode == StdinMode::Done
                && lines.is_empty()
                && !close_sent
                && quiet
                && conn.close(CloseCode::NORMAL, "").is_ok()
            {
                close_sent = true;
                close_deadline = Some(Instant::now() + close_timeout);
            }
        }
        conn.flush();

        let now = Instant::now();
        if !opened && now >= connect_deadline {
            eprintln!(
                "wsd connect: {}: {} (no handshake within {:.1}s)",
                args.url,
                ConnError::Timeout,
                connect_timeout.as_secs_f64()
            );
            return Ok(Outcome::ConnectFailed);
        }
        if close_deadline.is_some_and(|d| now >= d) {
            if server_close.is_none() {
                eprintln!(
                    "wsd connect: no close from the server within {:.1}s",
                    close_timeout.as_secs_f64()
                );
                return Ok(Outcome::Abrupt);
            }
            // The server answered but kept TCP open: we close it ourselves.
            return Ok(finish(server_close, close_sent));
        }
    }
}

/// The outcome once TCP is closed (or we stop waiting for it).
fn finish(server_close: Option<Option<CloseFrame>>, close_sent: bool) -> Outcome {
    match server_close {
        None => {
            eprintln!("wsd connect: the server closed the connection without a close frame");
            Outcome::Abrupt
        }
        Some(_) if close_sent => Outcome::Clean,
        Some(None) => Outcome::Clean,
        Some(Some(f)) if f.code == CloseCode::NORMAL || f.code == CloseCode::GOING_AWAY => {
            Outcome::Clean
        }
        Some(Some(_)) => Outcome::ServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_crlf_trimmed() {
        let mut buf = b"one\r\ntwo\nthr".to_vec();
        let mut lines = VecDeque::new();
        take_lines(&mut buf, &mut lines);
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(buf, b"thr");
    }

    #[test]
    fn binary_summary_shows_length_and_prefix() {
        assert_eq!(describe_binary(&[0, 255, 16]), "<binary 3 bytes: 00ff10>");
        assert!(describe_binary(&[7; 40]).ends_with("...>"));
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        let ok = parse_headers(&["Origin: http://x".to_owned()]).unwrap();
        assert_eq!(ok, [("Origin".to_owned(), "http://x".to_owned())]);
        assert!(parse_headers(&["nocolon".to_owned()]).is_err());
        assert!(parse_headers(&[": v".to_owned()]).is_err());
    }

    #[test]
    fn outcome_of_close_codes() {
        let frame = |c| {
            Some(Some(CloseFrame {
                code: CloseCode(c),
                reason: String::new(),
            }))
        };
        assert_eq!(finish(frame(1000), false), Outcome::Clean);
        assert_eq!(finish(frame(1008), false), Outcome::ServerError);
        assert_eq!(finish(frame(1008), true), Outcome::Clean);
        assert_eq!(finish(None, true), Outcome::Abrupt);
    }
}

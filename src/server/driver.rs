//! The connection driver: one connection's life from accept to removal. Reads
//! into the shared buffer and hands bytes to the state that wants them, writes
//! the outbox, streams file bodies, acts on passed deadlines, and closes in
//! order (answer, shut the write side, drain, done).
//!
//! Owns the transitions between [`ConnState`]s. It must never decide what a
//! request or a message means (`request.rs`, `session.rs` and the route handlers
//! do), never touch another connection, and never remove itself: it returns
//! [`Verdict::Done`] and the reactor removes it.

use std::io::{self, Read};

use log::debug;

use crate::app::Peer;
use crate::core::http::{write_closing_response, write_error_response};
use crate::core::{parse_request, CloseCode};
use crate::server::connection::{Conn, ConnState, Session, Shared, Verdict};
use crate::server::deadlines::Deadline;
use crate::server::proxy_header::{self, Parsed};

/// Bytes read from a socket per `read` call into the shared buffer.
pub const READ_CHUNK: usize = 256 * 1024;
/// Output queued beyond this is written before reading on (see `write_early`).
const WRITE_EARLY_BYTES: usize = 64 * 1024;
/// File bytes read per refill while streaming a static file.
const FILE_CHUNK: usize = 64 * 1024;

impl Conn {
    /// Starts the life of a just-accepted connection: its request must come in time.
    pub fn accepted(&mut self, sh: &Shared) {
        self.deadlines
            .set(Deadline::Request, sh.now + sh.settings.handshake_ticks);
    }

    /// The socket is readable, or the peer hung up, or it failed.
    pub fn on_readable(&mut self, key: usize, sh: &mut Shared) -> Verdict {
        match self.state {
            ConnState::Draining => self.discard_input(),
            _ => self.read(key, sh),
        }
    }

    /// Whether input is wanted now (backpressure and state allowing).
    /// A bridged connection also waits while its backend has not taken
    /// `read_pause` bytes of what it sent.
    fn may_read(&self, key: usize, sh: &Shared) -> bool {
        !matches!(
            self.state,
            ConnState::FileBody { .. } | ConnState::Closing | ConnState::Draining
        ) && self.outbox.len() < sh.settings.read_pause
            && (sh.bridges.is_empty() || sh.bridges.backlog(key) < sh.settings.read_pause)
    }

    /// Reads until the socket would block, processing each chunk as it arrives,
    /// unless backpressure or a file transfer says to wait.
    fn read(&mut self, key: usize, sh: &mut Shared) -> Verdict {
        let mut rbuf = std::mem::take(&mut sh.rbuf);
        let verdict = self.read_into(&mut rbuf, key, sh);
        sh.rbuf = rbuf;
        verdict
    }

    fn read_into(&mut self, rbuf: &mut [u8], key: usize, sh: &mut Shared) -> Verdict {
        loop {
            if !self.may_read(key, sh) {
                self.read_paused = true;
                return Verdict::Continue;
            }
            self.read_paused = false;
            let mut tail = std::mem::take(&mut self.inbuf);
            if tail.len() > sh.settings.request_limits.max_head_bytes {
                // Pipelined requests left more than a request head: work through
                // them before reading more, so the tail always fits the buffer.
                self.process(&mut tail, key, sh);
                continue;
            }
            rbuf[..tail.len()].copy_from_slice(&tail);
            let end = (tail.len() + READ_CHUNK).min(rbuf.len());
            let asked = end - tail.len();
            let trust_short_reads = !sh.peer_may_have_closed;
            match self
                .transport
                .read(&mut rbuf[tail.len()..end], trust_short_reads)
            {
                Ok(0) => {
                    debug!("conn {}: peer closed its side", self.id);
                    if self.outbox.is_empty() {
                        return Verdict::Done;
                    }
                    // A client may half-close right after its request: answer first.
                    self.start_closing(key, sh);
                    return Verdict::Continue;
                }
                Ok(n) => {
                    sh.stats.bytes_in += n as u64;
                    self.heard_from_peer(sh);
                    self.process(&mut rbuf[..tail.len() + n], key, sh);
                    self.write_early(sh);
                    // mio's epoll registration is edge-triggered: data that
                    // arrives after this read raises a new event. So a read that
                    // got fewer bytes than asked has emptied the socket for now,
                    // and the recv that would only say EAGAIN is skipped. Not when
                    // the event said the peer closed: its EOF was already there
                    // and no later event would report it.
                    if n < asked && trust_short_reads && self.transport.short_read_drains() {
                        return Verdict::Continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.inbuf = tail;
                    return Verdict::Continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.inbuf = tail,
                Err(e) => {
                    if self.transport.tls_handshaking() {
                        sh.stats.tls_handshake_failures += 1;
                    }
                    debug!("conn {}: read: {e}", self.id);
                    return Verdict::Done;
                }
            }
        }
    }

    /// Writes now, rather than at the end of the turn, once the queue holds
    /// [`WRITE_EARLY_BYTES`]: corking gains nothing for that much, and a turn
    /// of many connections each holding the echoes of large messages until
    /// the end-of-turn flush is what would make memory peak. A failure is left
    /// for that flush to report.
    fn write_early(&mut self, sh: &mut Shared) {
        if self.outbox.len() >= WRITE_EARLY_BYTES {
            if let Ok((_, n)) = self.transport.write_from(&mut self.outbox) {
                sh.stats.bytes_out += n as u64;
            }
        }
    }

    /// Any bytes from a WebSocket peer answer our ping and postpone the next one.
    fn heard_from_peer(&mut self, sh: &Shared) {
        let interval = sh.settings.ping_interval_ticks;
        match &self.state {
            ConnState::WebSocket(s) if s.ws.is_open() && interval != 0 => {
                self.deadlines.set(Deadline::Ping, sh.now + interval);
                self.deadlines.clear(Deadline::Pong);
            }
            _ => {}
        }
    }

    /// Hands received bytes to the current state; keeps the unconsumed tail.
    pub(super) fn process(&mut self, data: &mut [u8], key: usize, sh: &mut Shared) {
        let mut pos = 0;
        loop {
            match &self.state {
                ConnState::Closing | ConnState::Draining => return,
                ConnState::FileBody { .. } => break,
                &ConnState::ProxyHeader(version) => {
                    let outcome = proxy_header::parse(version, &data[pos..]);
                    match outcome {
                        Ok(Parsed::Incomplete) if data.len() - pos < proxy_header::MAX_HEADER => {
                            break
                        }
                        Ok(Parsed::Done { client, len }) => {
                            pos += len;
                            self.state = ConnState::Request;
                            let ip = client.map(|a| a.ip()).or_else(|| self.transport.peer_ip());
                            if let Some(ip) = ip {
                                if let Err(refusal) = self.count_client(ip, sh) {
                                    self.refuse_client(refusal, ip, true, key, sh);
                                    return;
                                }
                            }
                        }
                        Ok(Parsed::Incomplete) | Err(_) => {
                            let why = outcome.err().unwrap_or("PROXY header too long");
                            sh.stats.bad_requests += 1;
                            let id = self.id;
                            sh.log_peer(format_args!("conn {id}: {why}; closing"));
                            self.start_closing(key, sh);
                            return;
                        }
                    }
                }
                ConnState::Request => {
                    match parse_request(&data[pos..], &sh.settings.request_limits) {
                        Ok(None) => break,
                        Ok(Some((request, n))) => {
                            pos += n;
                            self.answer(request, key, sh);
                        }
                        Err(e) => {
                            self.outbox.append(|out| write_error_response(out, &e));
                            sh.stats.handshake_failures += 1;
                            sh.stats.bad_requests += 1;
                            let id = self.id;
                            sh.log_peer(format_args!(
                                "conn {id}: bad request: {e} (answered {})",
                                e.status()
                            ));
                            self.start_closing(key, sh);
                            return;
                        }
                    }
                }
                ConnState::WebSocket(_) => {
                    pos += self.websocket_input(&mut data[pos..], key, sh);
                    break;
                }
                ConnState::RequestBody { .. } => {
                    let ConnState::RequestBody { body, expected, .. } = &mut self.state else {
                        break;
                    };
                    let take = (*expected - body.len()).min(data.len() - pos);
                    body.extend_from_slice(&data[pos..pos + take]);
                    pos += take;
                    if body.len() < *expected {
                        break;
                    }
                    self.finish_api(key, sh);
                }
            }
        }
        if pos < data.len() && !matches!(self.state, ConnState::Closing | ConnState::Draining) {
            self.inbuf.set(&data[pos..]);
        }
    }

    /// Writes what is queued, refills file bodies, finishes closes, and resumes
    /// reading when the queue has drained enough. Never queues itself again: what
    /// the socket would not take waits for WRITABLE.
    pub fn flush(&mut self, key: usize, sh: &mut Shared) -> Verdict {
        loop {
            match self.transport.write_from(&mut self.outbox) {
                Ok((flushed, n)) => {
                    sh.stats.bytes_out += n as u64;
                    if n > 0 && matches!(self.state, ConnState::FileBody { .. }) {
                        let at = sh.now + sh.settings.handshake_ticks;
                        self.deadlines.set(Deadline::Transfer, at);
                    }
                    if flushed == crate::server::outbox::Flushed::Partial {
                        return Verdict::Continue;
                    }
                }
                Err(e) => {
                    debug!("conn {}: write: {e}", self.id);
                    return Verdict::Done;
                }
            }
            match self.refill_file(key, sh) {
                Refill::Queued => continue,
                Refill::Failed => return Verdict::Done,
                Refill::Nothing => {}
            }
            if matches!(self.state, ConnState::Closing) {
                self.transport.close_write();
                self.state = ConnState::Draining;
                self.deadlines.clear_all();
                self.deadlines
                    .set(Deadline::Close, sh.now + sh.settings.close_ticks);
                // The peer may have closed already: look for its EOF now.
                return self.discard_input();
            }
            if !(self.read_paused && self.outbox.len() < sh.settings.read_pause / 2) {
                return Verdict::Continue;
            }
            if self.read(key, sh) == Verdict::Done {
                return Verdict::Done;
            }
            if self.outbox.is_empty() {
                return Verdict::Continue;
            }
        }
    }

    /// Queues the next chunk of a file body and moves on when it is all queued.
    fn refill_file(&mut self, key: usize, sh: &mut Shared) -> Refill {
        let ConnState::FileBody {
            file,
            remaining,
            keep_alive,
        } = &mut self.state
        else {
            return Refill::Nothing;
        };
        if *remaining > 0 {
            let mut chunk = vec![0u8; (*remaining).min(FILE_CHUNK as u64) as usize];
            match file.read(&mut chunk) {
                Ok(n) if n > 0 => {
                    chunk.truncate(n);
                    *remaining -= n as u64;
                    self.outbox.push_owned(chunk);
                }
                _ => {
                    debug!("conn {}: file read failed mid-body; closing", self.id);
                    return Refill::Failed;
                }
            }
        }
        if *remaining == 0 {
            if *keep_alive {
                self.state = ConnState::Request;
                self.deadlines.clear_all();
                self.deadlines
                    .set(Deadline::Request, sh.now + sh.settings.handshake_ticks);
                // A pipelined request may have arrived during the transfer.
                let mut tail = std::mem::take(&mut self.inbuf);
                if !tail.is_empty() {
                    self.process(&mut tail, key, sh);
                }
            } else {
                self.start_closing(key, sh);
            }
        }
        Refill::Queued
    }

    /// After our write side is shut: reads and drops input until EOF.
    fn discard_input(&mut self) -> Verdict {
        // A buffer of its own: the shared one may be lent out.
        let mut sink = [0u8; 4096];
        loop {
            match self.transport.read(&mut sink, false) {
                Ok(0) => return Verdict::Done,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Verdict::Continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Verdict::Done,
            }
        }
    }

    /// Ends the connection once its queued output is written (or the close
    /// deadline passes, for a peer that stops reading). Ends a WebSocket session
    /// first, so its handler hears of it once.
    pub(super) fn start_closing(&mut self, key: usize, sh: &mut Shared) {
        if matches!(self.state, ConnState::Closing | ConnState::Draining) {
            return;
        }
        let previous = std::mem::replace(&mut self.state, ConnState::Closing);
        if let ConnState::WebSocket(session) = previous {
            session_ended(session, Peer { key, id: self.id }, sh);
        }
        self.inbuf.clear();
        self.deadlines.clear_all();
        self.deadlines
            .set(Deadline::Close, sh.now + sh.settings.close_ticks);
    }

    /// The connection is being removed: a session still open ends here.
    pub fn release(&mut self, key: usize, sh: &mut Shared) {
        let previous = std::mem::replace(&mut self.state, ConnState::Draining);
        if let ConnState::WebSocket(session) = previous {
            session_ended(session, Peer { key, id: self.id }, sh);
        }
    }

    /// Acts on whatever deadline has passed; the reactor arms the next one.
    pub fn on_timer(&mut self, key: usize, sh: &mut Shared) -> Verdict {
        let now = sh.now;
        let id = self.id;
        match &mut self.state {
            ConnState::Closing | ConnState::Draining => {
                if self.deadlines.passed(Deadline::Close, now) {
                    if matches!(self.state, ConnState::Closing) {
                        sh.stats.close_timeouts += 1;
                    }
                    debug!("conn {id}: close timeout");
                    return Verdict::Done;
                }
            }
            ConnState::WebSocket(s) if !s.ws.is_open() => {
                if self.deadlines.passed(Deadline::Close, now) {
                    sh.stats.close_timeouts += 1;
                    debug!("conn {id}: close timeout");
                    return Verdict::Done;
                }
            }
            ConnState::ProxyHeader(_) => {
                if self.deadlines.passed(Deadline::Request, now) {
                    sh.stats.handshake_timeouts += 1;
                    debug!("conn {id}: no PROXY header within the handshake timeout");
                    return Verdict::Done;
                }
            }
            ConnState::Request | ConnState::RequestBody { .. } => {
                if self.deadlines.passed(Deadline::Request, now) {
                    sh.stats.handshake_timeouts += 1;
                    debug!("conn {id}: request not complete within the handshake timeout");
                    self.outbox
                        .append(|out| write_closing_response(out, 408, &[], "request timeout"));
                    self.start_closing(key, sh);
                }
            }
            ConnState::FileBody { .. } => {
                if self.deadlines.passed(Deadline::Transfer, now) {
                    debug!("conn {id}: file transfer stalled");
                    return Verdict::Done;
                }
            }
            ConnState::WebSocket(session) => {
                if self.deadlines.passed(Deadline::Pong, now) {
                    sh.stats.ping_timeouts += 1;
                    debug!("conn {id}: no answer to ping; closing");
                    self.send_close(CloseCode::GOING_AWAY, "ping timeout", sh);
                    self.start_closing(key, sh);
                } else if self.deadlines.passed(Deadline::Ping, now) {
                    let ws = &mut session.ws;
                    self.outbox.append(|out| {
                        let _ = ws.ping(b"wsd", out);
                    });
                    self.deadlines.clear(Deadline::Ping);
                    self.deadlines
                        .set(Deadline::Pong, now + sh.settings.ping_timeout_ticks);
                }
            }
        }
        Verdict::Continue
    }

    /// SIGTERM: WebSockets get close 1001 and a deadline for the answer; file
    /// bodies finish and then close; idle requests end now.
    pub fn begin_shutdown(&mut self, key: usize, sh: &mut Shared) -> Verdict {
        match &mut self.state {
            ConnState::WebSocket(s) if s.ws.is_open() => {
                self.send_close(CloseCode::GOING_AWAY, "server shutting down", sh);
            }
            ConnState::FileBody { keep_alive, .. } => *keep_alive = false,
            ConnState::Request | ConnState::ProxyHeader(_) if self.outbox.is_empty() => {
                return Verdict::Done
            }
            ConnState::Request | ConnState::ProxyHeader(_) | ConnState::RequestBody { .. } => {
                self.start_closing(key, sh)
            }
            ConnState::WebSocket(_) | ConnState::Closing | ConnState::Draining => {}
        }
        Verdict::Continue
    }
}

/// What refilling a file body did.
enum Refill {
    /// More bytes (or a next response) are queued: write again.
    Queued,
    /// Not streaming a file.
    Nothing,
    /// The file could not be read: the body cannot be finished.
    Failed,
}

/// Tells the session's handler that it is over, exactly once.
fn session_ended(session: Session, peer: Peer, sh: &mut Shared) {
    let open = &session.route.traffic.open;
    open.set(open.get().saturating_sub(1));
    sh.fx.set_origin(None, &session.route.handler);
    session.route.handler.closed(peer, session.slot, &mut sh.fx);
    sh.fx.discard_own();
    if !sh.bridges.is_empty() {
        sh.bridges.detach(peer.key, sh.now);
    }
}

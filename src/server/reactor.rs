//! The single-threaded mio event loop: accepts, reads into one shared receive
//! buffer, hands bytes to the protocol core and the app, writes queued output,
//! fires timers and shuts down gracefully.
//!
//! Owns sockets, readiness, buffers, limits and timers. It must never parse frames
//! or decide policy itself (the core and the app do), and never blocks: every
//! socket is non-blocking and every wait is a poll with a timeout.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Instant;

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::app::chat::{RoomId, Rooms};
use crate::app::{Admission, App};
use crate::config::{Config, RouteKind, SlowConsumerPolicy};
use crate::core::http::{write_closing_response, write_error_response};
use crate::core::{
    encode_frame, parse_request, write_accept_response, CloseCode, Event, FrameHeader, Limits,
    Message, OpCode, Request, RequestLimits, State, WebSocket,
};
use crate::logging::LogLimiter;
use crate::server::connection::{Conn, Phase, Session};
use crate::server::outbox::Flushed;
use crate::server::stats::Stats;
use crate::server::timers::{Tick, TimerWheel, TICK};

const SIGNALS: Token = Token(usize::MAX);
/// Connection tokens start here; listener tokens are their index below it.
const CONN_BASE: usize = 1 << 16;
/// Bytes read from a socket per `read` call into the shared buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Echoed payloads at least this large are queued without copying.
const ZERO_COPY_MIN: usize = 4 * 1024;
/// File bytes read per refill while streaming a static file.
const FILE_CHUNK: usize = 64 * 1024;
/// How long accepting pauses after EMFILE/ENFILE.
const ACCEPT_PAUSE_TICKS: Tick = 4;

/// Values derived from the config once, in the units the loop uses.
#[derive(Debug, Clone)]
struct Settings {
    request_limits: RequestLimits,
    ws_limits: Limits,
    max_connections: usize,
    max_send_buffer: usize,
    read_pause: usize,
    slow_consumer: SlowConsumerPolicy,
    handshake_ticks: Tick,
    /// 0: pings disabled.
    ping_interval_ticks: Tick,
    ping_timeout_ticks: Tick,
    close_ticks: Tick,
    shutdown_ticks: Tick,
}

pub struct Reactor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    signals: Signals,
    conns: Slab<Conn>,
    app: App,
    rooms: Rooms,
    settings: Settings,
    /// The one receive buffer shared by every connection.
    rbuf: Vec<u8>,
    wheel: TimerWheel,
    fired: Vec<(usize, Tick)>,
    /// Connections with output queued this turn, flushed once at the end of it.
    dirty: Vec<usize>,
    /// Scratch list of a room's members while broadcasting.
    members: Vec<usize>,
    now: Tick,
    next_id: u64,
    stats: Stats,
    /// Accepting resumes at this tick (0: not paused).
    accept_paused_until: Tick,
    shutdown_deadline: Option<Tick>,
    peer_log: LogLimiter,
    accept_log: LogLimiter,
}

impl Reactor {
    /// Builds the loop around already-bound listeners.
    pub fn new(
        config: &Config,
        listeners: Vec<TcpListener>,
        app: App,
        max_connections: usize,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut listeners = listeners;
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(l, Token(i), Interest::READABLE)?;
        }
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let t = &config.timeouts;
        let l = &config.limits;
        let settings = Settings {
            request_limits: RequestLimits {
                max_head_bytes: l.max_request_bytes,
                max_headers: l.max_headers,
            },
            ws_limits: Limits {
                max_frame_size: l.max_frame_bytes,
                max_message_size: l.max_message_bytes,
            },
            max_connections,
            max_send_buffer: l.max_send_buffer_bytes,
            read_pause: l.read_pause_bytes,
            slow_consumer: l.slow_consumer,
            handshake_ticks: TimerWheel::ticks_for(t.handshake),
            ping_interval_ticks: if t.ping_interval.is_zero() {
                0
            } else {
                TimerWheel::ticks_for(t.ping_interval)
            },
            ping_timeout_ticks: TimerWheel::ticks_for(t.ping_timeout),
            close_ticks: TimerWheel::ticks_for(t.close),
            shutdown_ticks: TimerWheel::ticks_for(t.shutdown),
        };
        let epoch = Instant::now();
        Ok(Reactor {
            poll,
            listeners,
            signals,
            conns: Slab::new(),
            app,
            rooms: Rooms::default(),
            rbuf: vec![0; l.max_request_bytes + READ_CHUNK],
            settings,
            wheel: TimerWheel::new(epoch),
            fired: Vec::new(),
            dirty: Vec::new(),
            members: Vec::new(),
            now: 1,
            next_id: 1,
            stats: Stats::default(),
            accept_paused_until: 0,
            shutdown_deadline: None,
            peer_log: LogLimiter::new(10, TimerWheel::ticks_for(std::time::Duration::from_secs(1))),
            accept_log: LogLimiter::new(
                1,
                TimerWheel::ticks_for(std::time::Duration::from_secs(10)),
            ),
        })
    }

    /// Runs until a signal asks for shutdown and every connection has closed (or
    /// the shutdown timeout passed). Returns the final counters.
    pub fn run(mut self) -> io::Result<Stats> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.now = self.wheel.tick_of(Instant::now());
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.handle_signals(),
                    Token(i) if i < CONN_BASE => self.accept(i),
                    Token(t) => {
                        let key = t - CONN_BASE;
                        if event.is_writable() {
                            self.flush(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                    }
                }
            }
            self.fire_timers();
            self.resume_accepting();
            self.flush_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || self.now >= deadline {
                    if !self.conns.is_empty() {
                        warn!(
                            "shutdown timeout: dropping {} connections",
                            self.conns.len()
                        );
                    }
                    break;
                }
            }
        }
        Ok(self.stats)
    }

    fn poll_timeout(&self) -> Option<std::time::Duration> {
        let now = Instant::now();
        match self.wheel.poll_timeout(now) {
            Some(t) => Some(t),
            None if self.accept_paused_until != 0 || self.shutdown_deadline.is_some() => Some(TICK),
            None => None,
        }
    }

    // ---- accepting ----

    fn accept(&mut self, index: usize) {
        while self.accept_paused_until == 0 {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, _addr)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    if let Some(suppressed) = self.accept_log.allow(self.now) {
                        warn!(
                            "accept: {e}; pausing accepts for {} ms ({} open connections, {suppressed} similar suppressed)",
                            TICK.as_millis() * u128::from(ACCEPT_PAUSE_TICKS),
                            self.conns.len()
                        );
                    }
                    self.accept_paused_until = self.now + ACCEPT_PAUSE_TICKS;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn resume_accepting(&mut self) {
        if self.accept_paused_until != 0 && self.now >= self.accept_paused_until {
            self.accept_paused_until = 0;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream) {
        if self.conns.len() >= self.settings.max_connections || self.shutdown_deadline.is_some() {
            self.stats.refused += 1;
            if let Some(suppressed) = self.accept_log.allow(self.now) {
                warn!(
                    "refusing connection: {} open (max_connections {}); {suppressed} similar suppressed",
                    self.conns.len(),
                    self.settings.max_connections
                );
            }
            let mut out = Vec::new();
            write_closing_response(
                &mut out,
                503,
                &[("Retry-After", "1")],
                "server at connection limit",
            );
            let _ = stream.write(&out);
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(CONN_BASE + key), Interest::READABLE)
        {
            warn!("register: {e}");
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        entry.insert(Conn::new(stream, id, self.now));
        self.stats.accepted += 1;
        debug!("conn {id}: accepted ({} open)", self.conns.len());
        self.check_timeouts(key);
    }

    // ---- reading ----

    fn on_readable(&mut self, key: usize) {
        match self.conns.get(key) {
            Some(conn) if conn.draining => self.discard_input(key),
            Some(_) => self.read(key),
            None => {}
        }
    }

    /// Reads until the socket would block, processing each chunk as it arrives,
    /// unless backpressure or a pending file transfer says to wait.
    fn read(&mut self, key: usize) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        debug_assert!(
            !rbuf.is_empty(),
            "read() re-entered while the buffer was lent out"
        );
        while let Some(conn) = self.conns.get_mut(key) {
            if conn.close_after_flush
                || matches!(conn.phase, Phase::FileBody { .. })
                || conn.outbox.len() >= self.settings.read_pause
            {
                conn.read_blocked = true;
                break;
            }
            conn.read_blocked = false;
            let tail = std::mem::take(&mut conn.inbuf);
            if tail.len() > self.settings.request_limits.max_head_bytes {
                // Pipelined requests left more than a request head: work through
                // them before reading more, so the tail always fits the buffer.
                self.process(key, &tail);
                continue;
            }
            rbuf[..tail.len()].copy_from_slice(&tail);
            let end = (tail.len() + READ_CHUNK).min(rbuf.len());
            match conn.stream.read(&mut rbuf[tail.len()..end]) {
                Ok(0) => {
                    debug!("conn {}: peer closed its side", conn.id);
                    conn.inbuf = Vec::new();
                    if conn.outbox.is_empty() {
                        self.remove(key);
                    } else {
                        // A client may half-close right after its request: answer first.
                        self.start_closing(key);
                    }
                    break;
                }
                Ok(n) => {
                    conn.last_activity = self.now;
                    self.stats.bytes_in += n as u64;
                    let len = tail.len() + n;
                    self.process(key, &rbuf[..len]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.inbuf = tail;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => conn.inbuf = tail,
                Err(e) => {
                    debug!("conn {}: read: {e}", conn.id);
                    self.remove(key);
                    break;
                }
            }
        }
        self.rbuf = rbuf;
    }

    /// After our write side is shut: reads and drops input until EOF.
    fn discard_input(&mut self, key: usize) {
        // A buffer of its own: it may run while `read` holds the shared one.
        let mut sink = [0u8; 4096];
        while let Some(conn) = self.conns.get_mut(key) {
            match conn.stream.read(&mut sink) {
                Ok(0) => {
                    self.remove(key);
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove(key);
                    break;
                }
            }
        }
    }

    /// Hands received bytes to the connection's current phase; keeps the unconsumed tail.
    fn process(&mut self, key: usize, data: &[u8]) {
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.close_after_flush {
                pos = data.len();
                break;
            }
            match &mut conn.phase {
                Phase::FileBody { .. } => break,
                Phase::Request => {
                    match parse_request(&data[pos..], &self.settings.request_limits) {
                        Ok(None) => break,
                        Ok(Some((request, n))) => {
                            pos += n;
                            self.handle_request(key, request);
                        }
                        Err(e) => {
                            conn.outbox.append(|out| write_error_response(out, &e));
                            self.stats.handshake_failures += 1;
                            let id = conn.id;
                            self.log_peer(format_args!(
                                "conn {id}: bad request: {e} (answered {})",
                                e.status()
                            ));
                            self.start_closing(key);
                            pos = data.len();
                            break;
                        }
                    }
                }
                Phase::WebSocket(_) => {
                    pos = self.websocket_input(key, data, pos);
                    break;
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            if pos < data.len() && !conn.close_after_flush {
                conn.inbuf = data[pos..].to_vec();
            }
        }
    }

    /// Feeds frames to the core, handles every event it queued, then queues its
    /// automatic replies; returns the new position.
    fn websocket_input(&mut self, key: usize, data: &[u8], pos: usize) -> usize {
        let Some(conn) = self.conns.get_mut(key) else {
            return data.len();
        };
        let Phase::WebSocket(session) = &mut conn.phase else {
            return pos;
        };
        let result = session.ws.handle_read(&data[pos..]);
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return data.len();
            };
            let Phase::WebSocket(session) = &mut conn.phase else {
                return data.len();
            };
            let Some(event) = session.ws.poll_event() else {
                break;
            };
            self.on_event(key, event);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return data.len();
        };
        let Phase::WebSocket(session) = &mut conn.phase else {
            return data.len();
        };
        let ws = &mut session.ws;
        conn.outbox.append(|out| {
            ws.poll_transmit(out);
        });
        let closed = ws.state() == State::Closed;
        let id = conn.id;
        self.mark_dirty(key);
        match result {
            Err(e) => {
                self.stats.protocol_errors += 1;
                *self.stats.closes_sent.entry(e.close_code().0).or_default() += 1;
                debug!(
                    "conn {id}: protocol error: {e} (closing with {})",
                    e.close_code().0
                );
                self.start_closing(key);
                data.len()
            }
            Ok(_) if closed => {
                self.start_closing(key);
                data.len()
            }
            Ok(n) => pos + n,
        }
    }

    // ---- requests and upgrades ----

    fn handle_request(&mut self, key: usize, request: Request) {
        self.stats.http_requests += 1;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let id = conn.id;
        // Every way of answering and then ending the connection goes through
        // start_closing below, which also starts the close deadline from now.
        let mut close = false;
        match request.websocket_upgrade() {
            Err(e) => {
                conn.outbox.append(|out| write_error_response(out, &e));
                close = true;
                self.stats.handshake_failures += 1;
                self.log_peer(format_args!(
                    "conn {id}: refused upgrade {} {}: {e} (answered {})",
                    request.method,
                    request.path(),
                    e.status()
                ));
            }
            Ok(None) => {
                let reply = self.app.plain_http(&request);
                debug!(
                    "conn {id}: {} {} -> {}",
                    request.method,
                    // Never the query: it may carry a ticket.
                    request.path(),
                    reply.status
                );
                conn.outbox.push_owned(reply.head);
                match reply.body {
                    Some((file, remaining)) => {
                        conn.phase = Phase::FileBody {
                            file,
                            remaining,
                            keep_alive: reply.keep_alive,
                        };
                        conn.since = self.now;
                    }
                    None if reply.keep_alive => conn.since = self.now,
                    None => close = true,
                }
            }
            Ok(Some(upgrade)) => match self.app.admit(&request, &upgrade) {
                Admission::Reject(rejection) => {
                    conn.outbox.append(|out| rejection.write(out));
                    close = true;
                    self.stats.handshake_failures += 1;
                    self.log_peer(format_args!(
                        "conn {id}: refused upgrade to {}: {} (answered {})",
                        request.path(),
                        rejection.reason,
                        rejection.status
                    ));
                }
                Admission::Accept(accepted) => {
                    let route = self.app.route(accepted.route).clone();
                    let joined = match &accepted.room {
                        None => Ok(None),
                        Some(name) => self
                            .rooms
                            .join(
                                accepted.route,
                                name,
                                key,
                                route.max_rooms,
                                route.max_members,
                            )
                            .map(Some),
                    };
                    let room = match joined {
                        Ok(room) => room,
                        Err(e) => {
                            conn.outbox.append(|out| {
                                write_closing_response(out, 503, &[], &format!("chat: {e}"))
                            });
                            self.stats.handshake_failures += 1;
                            self.log_peer(format_args!(
                                "conn {id}: refused chat join on {}: {e}",
                                route.path
                            ));
                            self.start_closing(key);
                            return;
                        }
                    };
                    conn.outbox.append(|out| {
                        write_accept_response(out, &upgrade, accepted.protocol.as_deref(), &[])
                    });
                    conn.phase = Phase::WebSocket(Session {
                        ws: WebSocket::server(self.settings.ws_limits),
                        route: accepted.route,
                        room,
                    });
                    conn.last_activity = self.now;
                    self.stats.handshakes += 1;
                    debug!(
                        "conn {id}: upgraded on {}{}{}",
                        // Never the query: it may carry a ticket.
                        request.path(),
                        accepted
                            .protocol
                            .map(|p| format!(" protocol {p}"))
                            .unwrap_or_default(),
                        accepted
                            .user
                            .map(|u| format!(" user {u}"))
                            .unwrap_or_default()
                    );
                    if let (Some(room), true) = (room, route.announce) {
                        self.announce_join(key, id, room);
                    }
                }
            },
        }
        if close {
            self.start_closing(key);
        } else {
            self.mark_dirty(key);
            self.check_timeouts(key);
        }
    }

    // ---- messages ----

    fn on_event(&mut self, key: usize, event: Event) {
        match event {
            Event::Message(message) => {
                self.stats.messages_in += 1;
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                let Some(session) = conn.session() else {
                    return;
                };
                let (route, room) = (session.route, session.room);
                match (self.app.route(route).kind, room) {
                    (RouteKind::Chat, Some(room)) => {
                        let echo_to_sender = self.app.route(route).echo_to_sender;
                        let frame = encode_shared(message.kind.opcode(), &message.data);
                        self.broadcast(room, &frame, if echo_to_sender { None } else { Some(key) });
                    }
                    _ => self.echo(key, message),
                }
            }
            Event::Ping(_) => {}
            Event::Pong(_) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.ping_sent = 0;
                }
                // The timer is armed for the ping timeout; the next ping is due one
                // interval after this answer, which may come sooner.
                self.check_timeouts(key);
            }
            Event::Close(frame) => {
                let code = frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code);
                *self.stats.closes_received.entry(code.0).or_default() += 1;
                if let Some(conn) = self.conns.get(key) {
                    debug!("conn {}: peer closed with {}", conn.id, code.0);
                }
            }
        }
    }

    fn echo(&mut self, key: usize, message: Message) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::WebSocket(session) = &mut conn.phase else {
            return;
        };
        if !session.ws.is_open() {
            return;
        }
        if message.data.len() >= ZERO_COPY_MIN {
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: message.kind.opcode(),
                mask: None,
                payload_len: message.data.len() as u64,
            };
            conn.outbox.append(|out| header.encode(out));
            conn.outbox.push_owned(message.data);
        } else {
            let ws = &mut session.ws;
            conn.outbox.append(|out| {
                let _ = ws.send(message.kind, &message.data, out);
            });
        }
        self.stats.messages_out += 1;
        if conn.outbox.len() > self.settings.max_send_buffer {
            self.slow_consumer(key);
        }
        self.mark_dirty(key);
    }

    /// Queues one shared frame for every open member of `room` (but `except`).
    fn broadcast(&mut self, room: RoomId, frame: &Rc<[u8]>, except: Option<usize>) {
        let mut members = std::mem::take(&mut self.members);
        members.clear();
        members.extend_from_slice(self.rooms.members(room));
        for &member in &members {
            if Some(member) == except {
                continue;
            }
            let Some(conn) = self.conns.get_mut(member) else {
                continue;
            };
            match &conn.phase {
                Phase::WebSocket(s) if s.ws.is_open() => {}
                _ => continue,
            }
            if conn.outbox.len() + frame.len() > self.settings.max_send_buffer {
                match self.settings.slow_consumer {
                    SlowConsumerPolicy::Drop => self.stats.dropped_messages += 1,
                    SlowConsumerPolicy::Close => self.slow_consumer(member),
                }
                continue;
            }
            conn.outbox.push_shared(Rc::clone(frame));
            self.stats.messages_out += 1;
            self.mark_dirty(member);
        }
        self.members = members;
    }

    /// A peer that stopped reading went over the send limit: close it with 1008.
    fn slow_consumer(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let queued = conn.outbox.len();
        let id = conn.id;
        let Phase::WebSocket(session) = &mut conn.phase else {
            return;
        };
        let ws = &mut session.ws;
        let mut closed = false;
        conn.outbox
            .append(|out| closed = ws.close(CloseCode::POLICY, "send buffer full", out).is_ok());
        if !closed {
            return;
        }
        conn.since = self.now;
        self.stats.slow_consumer_closes += 1;
        *self
            .stats
            .closes_sent
            .entry(CloseCode::POLICY.0)
            .or_default() += 1;
        let limit = self.settings.max_send_buffer;
        self.log_peer(format_args!(
            "conn {id}: send buffer over {limit} bytes ({queued} queued): closing with 1008"
        ));
        self.mark_dirty(key);
        self.check_timeouts(key);
    }

    fn announce_join(&mut self, key: usize, id: u64, room: RoomId) {
        let members = self.rooms.members(room).len();
        let welcome = format!(
            "{{\"type\":\"welcome\",\"id\":{id},\"room\":{},\"members\":{members}}}",
            json_string(self.rooms.name(room))
        );
        if let Some(conn) = self.conns.get_mut(key) {
            conn.outbox
                .append(|out| encode_frame(out, true, OpCode::Text, welcome.as_bytes(), None));
        }
        let join = encode_shared(
            OpCode::Text,
            format!("{{\"type\":\"join\",\"id\":{id},\"members\":{members}}}").as_bytes(),
        );
        self.broadcast(room, &join, Some(key));
    }

    // ---- writing ----

    /// Closes the connection once its queued output is written (or the close
    /// timeout passes, for a peer that stops reading).
    fn start_closing(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.close_after_flush {
                conn.close_after_flush = true;
                conn.since = self.now;
            }
        }
        self.mark_dirty(key);
        self.check_timeouts(key);
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(key) = self.dirty.pop() {
            self.flush(key);
        }
    }

    /// Writes what is queued, refills file bodies, finishes closes, updates interest
    /// and resumes reading when the queue has drained enough.
    fn flush(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            conn.dirty = false;
            match conn.outbox.write_to(&mut conn.stream) {
                Ok((flushed, n)) => {
                    self.stats.bytes_out += n as u64;
                    if n > 0 && matches!(conn.phase, Phase::FileBody { .. }) {
                        conn.since = self.now;
                    }
                    if flushed == Flushed::Partial {
                        break;
                    }
                }
                Err(e) => {
                    debug!("conn {}: write: {e}", conn.id);
                    self.remove(key);
                    return;
                }
            }
            if !self.refill_file(key) {
                break;
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.outbox.is_empty() && conn.close_after_flush && !conn.draining {
            let _ = conn.stream.shutdown(Shutdown::Write);
            conn.draining = true;
            conn.since = self.now;
            self.check_timeouts(key);
            // The peer may have closed already: look for its EOF now.
            self.discard_input(key);
        }
        self.update_interest(key);
        if let Some(conn) = self.conns.get(key) {
            if conn.read_blocked
                && !conn.close_after_flush
                && conn.outbox.len() < self.settings.read_pause / 2
                && !matches!(conn.phase, Phase::FileBody { .. })
            {
                self.read(key);
            }
        }
    }

    /// Queues the next chunk of a file body; returns whether there is more to write now.
    fn refill_file(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Phase::FileBody {
            file,
            remaining,
            keep_alive,
        } = &mut conn.phase
        else {
            return false;
        };
        if *remaining > 0 {
            let mut chunk = vec![0u8; (*remaining).min(FILE_CHUNK as u64) as usize];
            match file.read(&mut chunk) {
                Ok(n) if n > 0 => {
                    chunk.truncate(n);
                    *remaining -= n as u64;
                    conn.outbox.push_owned(chunk);
                }
                _ => {
                    debug!("conn {}: file read failed mid-body; closing", conn.id);
                    self.remove(key);
                    return false;
                }
            }
        }
        if *remaining == 0 {
            let keep_alive = *keep_alive;
            conn.phase = Phase::Request;
            conn.since = self.now;
            if !keep_alive {
                conn.close_after_flush = true;
            } else if !conn.inbuf.is_empty() {
                // A pipelined request arrived during the transfer.
                let tail = std::mem::take(&mut conn.inbuf);
                self.process(key, &tail);
            }
            self.check_timeouts(key);
        }
        true
    }

    fn update_interest(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let want_write = !conn.outbox.is_empty();
        if want_write != conn.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(CONN_BASE + key), interest)
                .is_ok()
            {
                conn.write_interest = want_write;
            }
        }
    }

    // ---- timers ----

    fn fire_timers(&mut self) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(self.now, &mut fired);
        for (key, tick) in fired.drain(..) {
            match self.conns.get_mut(key) {
                Some(conn) if conn.timer == tick => {
                    conn.timer = 0;
                    self.check_timeouts(key);
                }
                _ => {}
            }
        }
        self.fired = fired;
    }

    /// Acts on whatever deadline of the connection has passed, then arms its next one.
    fn check_timeouts(&mut self, key: usize) {
        let now = self.now;
        let s = self.settings.clone();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let id = conn.id;
        if conn.is_closing() {
            let deadline = conn.since + s.close_ticks;
            if now >= deadline {
                if !conn.draining {
                    self.stats.close_timeouts += 1;
                }
                debug!("conn {id}: close timeout");
                self.remove(key);
            } else {
                self.arm(key, deadline);
            }
            return;
        }
        match &mut conn.phase {
            Phase::Request => {
                let deadline = conn.since + s.handshake_ticks;
                if now >= deadline {
                    self.stats.handshake_timeouts += 1;
                    debug!("conn {id}: request not complete within the handshake timeout");
                    conn.outbox
                        .append(|out| write_closing_response(out, 408, &[], "request timeout"));
                    conn.close_after_flush = true;
                    conn.since = now;
                    conn.inbuf = Vec::new();
                    self.mark_dirty(key);
                    self.arm(key, now + s.close_ticks);
                } else {
                    self.arm(key, deadline);
                }
            }
            Phase::FileBody { .. } => {
                let deadline = conn.since + s.handshake_ticks;
                if now >= deadline {
                    debug!("conn {id}: file transfer stalled");
                    self.remove(key);
                } else {
                    self.arm(key, deadline);
                }
            }
            Phase::WebSocket(session) => {
                if s.ping_interval_ticks == 0 {
                    return;
                }
                if conn.ping_sent != 0 && conn.last_activity > conn.ping_sent {
                    conn.ping_sent = 0;
                }
                if conn.ping_sent != 0 {
                    let deadline = conn.ping_sent + s.ping_timeout_ticks;
                    if now >= deadline {
                        self.stats.ping_timeouts += 1;
                        *self
                            .stats
                            .closes_sent
                            .entry(CloseCode::GOING_AWAY.0)
                            .or_default() += 1;
                        debug!("conn {id}: no answer to ping; closing");
                        let ws = &mut session.ws;
                        conn.outbox.append(|out| {
                            let _ = ws.close(CloseCode::GOING_AWAY, "ping timeout", out);
                        });
                        conn.close_after_flush = true;
                        conn.since = now;
                        self.mark_dirty(key);
                        self.arm(key, now + s.close_ticks);
                    } else {
                        self.arm(key, deadline);
                    }
                    return;
                }
                let due = conn.last_activity + s.ping_interval_ticks;
                if now >= due {
                    let ws = &mut session.ws;
                    conn.outbox.append(|out| {
                        let _ = ws.ping(b"wsd", out);
                    });
                    conn.ping_sent = now;
                    self.mark_dirty(key);
                    self.arm(key, now + s.ping_timeout_ticks);
                } else {
                    self.arm(key, due);
                }
            }
        }
    }

    fn arm(&mut self, key: usize, tick: Tick) {
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.timer == 0 || tick < conn.timer {
                conn.timer = tick;
                self.wheel.schedule(key, tick);
            }
        }
    }

    // ---- closing ----

    /// Frees a connection's slot on every path: leaves its room (announcing it),
    /// deregisters and closes the socket.
    fn remove(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        debug!("conn {}: closed ({} open)", conn.id, self.conns.len());
        if let Phase::WebSocket(Session {
            room: Some(room),
            route,
            ..
        }) = conn.phase
        {
            self.rooms.leave(room, key);
            let members = self.rooms.members(room).len();
            if members > 0 && self.app.route(route).announce {
                let leave = encode_shared(
                    OpCode::Text,
                    format!(
                        "{{\"type\":\"leave\",\"id\":{},\"members\":{members}}}",
                        conn.id
                    )
                    .as_bytes(),
                );
                self.broadcast(room, &leave, None);
            }
        }
    }

    fn handle_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        if signals.is_empty() {
            return;
        }
        if self.shutdown_deadline.is_some() {
            warn!("second signal: exiting now");
            self.shutdown_deadline = Some(self.now);
            return;
        }
        info!(
            "signal {}: shutting down, closing {} connections (timeout {} ms)",
            signals[0],
            self.conns.len(),
            TICK.as_millis() * u128::from(self.settings.shutdown_ticks)
        );
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(self.now + self.settings.shutdown_ticks);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match &mut conn.phase {
                Phase::WebSocket(session) if session.ws.is_open() => {
                    let ws = &mut session.ws;
                    conn.outbox.append(|out| {
                        let _ = ws.close(CloseCode::GOING_AWAY, "server shutting down", out);
                    });
                    conn.since = self.now;
                    *self
                        .stats
                        .closes_sent
                        .entry(CloseCode::GOING_AWAY.0)
                        .or_default() += 1;
                    self.mark_dirty(key);
                    self.check_timeouts(key);
                }
                Phase::WebSocket(_) => {}
                Phase::Request if conn.outbox.is_empty() => self.remove(key),
                _ => self.start_closing(key),
            }
        }
    }

    fn log_peer(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(suppressed) = self.peer_log.allow(self.now) {
            if suppressed > 0 {
                warn!("{line} ({suppressed} similar lines suppressed)");
            } else {
                warn!("{line}");
            }
        }
    }
}

/// Encodes one unmasked frame into a buffer that many queues can share.
fn encode_shared(opcode: OpCode, payload: &[u8]) -> Rc<[u8]> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    encode_frame(&mut frame, true, opcode, payload, None);
    Rc::from(frame)
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A JSON string literal for `s`.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

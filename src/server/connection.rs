//! One connection's state in the reactor's slab: its socket, its phase (reading a
//! request, streaming a file, speaking WebSocket), the unconsumed input tail, the
//! output queue and its timer bookkeeping.
//!
//! Owns the shape of that state only. It must never run I/O or protocol logic;
//! the reactor drives it. An idle open WebSocket holds no heap memory here: the
//! tail and the outbox are empty and unallocated.

use std::fs::File;

use mio::net::TcpStream;

use crate::app::chat::RoomId;
use crate::app::RouteId;
use crate::core::WebSocket;
use crate::server::outbox::Outbox;
use crate::server::timers::Tick;

/// What the connection is doing.
// The WebSocket variant is kept inline on purpose: boxing it would cost every
// open connection a heap allocation, and most connections are WebSockets.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Phase {
    /// Reading an HTTP request head: the first one, or the next on a keep-alive connection.
    Request,
    /// Streaming a static file body; a pipelined next request waits in the tail.
    FileBody {
        file: File,
        remaining: u64,
        keep_alive: bool,
    },
    /// Upgraded: frames and messages.
    WebSocket(Session),
}

/// An upgraded connection's protocol state and its place in the app.
#[derive(Debug)]
pub struct Session {
    pub ws: WebSocket,
    pub route: RouteId,
    pub room: Option<RoomId>,
}

#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// A serial number for logs and chat announcements (slab keys are reused).
    pub id: u64,
    pub phase: Phase,
    /// Received bytes not consumed yet: a partial request head or frame header.
    pub inbuf: Vec<u8>,
    pub outbox: Outbox,
    /// When bytes last arrived from the peer.
    pub last_activity: Tick,
    /// When the current request, file transfer progress or close began.
    pub since: Tick,
    /// When our unanswered ping went out (0: none outstanding).
    pub ping_sent: Tick,
    /// The tick this connection's timer entry is armed for (0: none).
    pub timer: Tick,
    /// Close the connection once the outbox is written.
    pub close_after_flush: bool,
    /// Our write side is shut; input is read and discarded until EOF or timeout.
    pub draining: bool,
    /// Reading stopped with input possibly left in the socket (backpressure).
    pub read_blocked: bool,
    /// WRITABLE interest is registered.
    pub write_interest: bool,
    /// Queued in the reactor's flush list.
    pub dirty: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, id: u64, now: Tick) -> Conn {
        Conn {
            stream,
            id,
            phase: Phase::Request,
            inbuf: Vec::new(),
            outbox: Outbox::default(),
            last_activity: now,
            since: now,
            ping_sent: 0,
            timer: 0,
            close_after_flush: false,
            draining: false,
            read_blocked: false,
            write_interest: false,
            dirty: false,
        }
    }

    /// The WebSocket session, if upgraded.
    pub fn session(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::WebSocket(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the closing handshake or a close-after-flush is under way.
    pub fn is_closing(&self) -> bool {
        self.close_after_flush
            || self.draining
            || matches!(&self.phase, Phase::WebSocket(s) if !s.ws.is_open())
    }
}

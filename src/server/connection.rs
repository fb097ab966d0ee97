//! One connection's state in the reactor's slab: its transport, where it is in
//! its life ([`ConnState`], each variant holding what that state needs), the
//! unconsumed input tail, the output queue and its one deadline. Also [`Shared`],
//! what every connection's driver borrows from the reactor for one call.
//!
//! Owns the shape of that state only; `driver.rs`, `request.rs` and `session.rs`
//! move it along. An idle open WebSocket holds no heap memory here: the tail and
//! the outbox are empty and one null pointer each, and the session is inline.
//! A `Conn` is one slab entry per connection: keep it small (the `size_probe`
//! test below holds the bound).

use std::fs::File;
use std::rc::Rc;

use crate::app::{App, Effects, Route, Slot};
use crate::config::ProxyProtocol;
use crate::core::{Request, WebSocket};
use crate::logging::LogLimiter;
use crate::server::backplane::Backplane;
use crate::server::bridge::Bridges;
use crate::server::deadlines::Deadlines;
use crate::server::outbox::Outbox;
use crate::server::per_ip::{EntryId, PerIp, NO_ENTRY};
use crate::server::settings::Settings;
use crate::server::stats::Stats;
use crate::server::tail::Tail;
use crate::server::timers::{Link, Tick};
use crate::server::transport::Transport;

/// Where a connection is in its life.
// The WebSocket variant is kept inline on purpose: boxing it would cost every
// open connection a heap allocation, and most connections are WebSockets.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ConnState {
    /// Reading an HTTP request head: the first one, or the next on a keep-alive connection.
    Request,
    /// Streaming a static file body; a pipelined next request waits in the tail.
    FileBody {
        file: File,
        remaining: u64,
        keep_alive: bool,
    },
    /// Reading the body of an API request (`POST /api/publish`), which is
    /// answered once it is whole; bounded by `max_message_bytes`.
    RequestBody {
        request: Box<Request>,
        body: Vec<u8>,
        expected: usize,
    },
    /// Reading the PROXY protocol header the listener expects first.
    ProxyHeader(ProxyProtocol),
    /// Upgraded: frames and messages, until the closing handshake is over.
    WebSocket(Session),
    /// Answered or closed: the queued output is written, then our write side shut.
    Closing,
    /// Our write side is shut; input is read and dropped until EOF or the deadline.
    Draining,
}

/// An upgraded connection: its protocol state and its route's handler.
#[derive(Debug)]
pub struct Session {
    pub ws: WebSocket,
    pub route: Rc<Route>,
    /// The handler's word for this connection.
    pub slot: Slot,
    /// The message-rate window (seconds since start, wrapping) and the
    /// messages received in it: inline, in what would be padding.
    pub rate_window: u16,
    pub rate_count: u16,
}

/// What a driver call tells the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    Continue,
    /// The connection is over: the reactor removes it (only the reactor does).
    Done,
}

#[derive(Debug)]
pub struct Conn {
    pub transport: Transport,
    /// A serial number for logs and handlers (slab keys are reused, ids are not).
    pub id: u64,
    pub state: ConnState,
    /// Received bytes not consumed yet: a partial request head or frame header.
    pub inbuf: Tail,
    pub outbox: Outbox,
    pub deadlines: Deadlines,
    /// Its entry in the reactor's timer wheel (only the wheel changes it).
    pub timer: Link,
    /// Reading stopped with input possibly left in the socket (backpressure).
    pub read_paused: bool,
    /// In the reactor's list of connections to flush at the end of this turn.
    pub flush_queued: bool,
    /// Accepted on the metrics listener: answered by `metrics.rs` only.
    pub admin: bool,
    /// Its client address's entry in `Shared::per_ip` (`NO_ENTRY`: none yet).
    pub client: EntryId,
}

impl Conn {
    pub fn new(transport: Transport, id: u64) -> Conn {
        Conn {
            transport,
            id,
            state: ConnState::Request,
            inbuf: Tail::default(),
            outbox: Outbox::default(),
            deadlines: Deadlines::default(),
            timer: Link::default(),
            read_paused: false,
            flush_queued: false,
            admin: false,
            client: NO_ENTRY,
        }
    }

    /// Whether a flush has work: output to write (ours or the transport's), or
    /// a close to finish.
    pub fn wants_flush(&self) -> bool {
        !self.outbox.is_empty()
            || self.transport.wants_write()
            || matches!(self.state, ConnState::Closing)
    }
}

/// What the drivers share, lent by the reactor to one driver call at a time.
#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub app: App,
    pub stats: Stats,
    /// The loop's current tick.
    pub now: Tick,
    /// The one receive buffer shared by every connection.
    pub rbuf: Vec<u8>,
    /// What handlers asked for; publications wait here until the reactor fans them out.
    pub fx: Effects,
    /// Draining after SIGTERM/SIGINT: `/readyz` answers 503.
    pub draining: bool,
    /// The event being handled said the peer closed its side (or failed):
    /// read to the end rather than stop at a short read.
    pub peer_may_have_closed: bool,
    /// Open connections and request rates by client address.
    pub per_ip: PerIp,
    /// The backends of bridged connections (process and tcp routes).
    pub bridges: Bridges,
    /// Chat rooms shared with other processes through Redis, if configured.
    pub backplane: Option<Backplane>,
    pub(super) peer_log: LogLimiter,
}

impl Shared {
    pub fn new(
        settings: Settings,
        app: App,
        rbuf_len: usize,
        peer_log: LogLimiter,
        bridges: Bridges,
        backplane: Option<Backplane>,
    ) -> Shared {
        let per_ip = PerIp::new(settings.per_ip);
        Shared {
            settings,
            app,
            stats: Stats::default(),
            now: 1,
            rbuf: vec![0; rbuf_len],
            fx: Effects::default(),
            draining: false,
            peer_may_have_closed: false,
            per_ip,
            bridges,
            backplane,
            peer_log,
        }
    }

    /// A `warn!` about a misbehaving peer, rate-limited so a flood cannot fill the log.
    pub fn log_peer(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(suppressed) = self.peer_log.allow(self.now) {
            if suppressed > 0 {
                log::warn!("{line} ({suppressed} similar lines suppressed)");
            } else {
                log::warn!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod size_probe {
    use std::mem::size_of;

    /// Every open connection is one slab entry: growing `Conn` grows the
    /// server's memory per idle WebSocket. Print with
    /// `cargo test --release --lib size_probe -- --nocapture | grep SIZES`.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_stays_small() {
        // A debug build of mio keeps a selector id in every registered source
        // (checked against double registration); release builds do not. The
        // bounds are release sizes, so a debug build may add that much.
        let mio_debug = (size_of::<mio::net::TcpStream>() - size_of::<std::net::TcpStream>())
            .next_multiple_of(8);
        let sizes = [
            ("Conn", size_of::<super::Conn>(), 128 + mio_debug),
            ("ConnState", size_of::<super::ConnState>(), 64),
            ("Session", size_of::<super::Session>(), 64),
            ("WebSocket", size_of::<crate::core::WebSocket>(), 48),
            ("Outbox", size_of::<crate::server::outbox::Outbox>(), 8),
            ("Tail", size_of::<crate::server::tail::Tail>(), 8),
            (
                "Transport",
                size_of::<crate::server::transport::Transport>(),
                16 + mio_debug,
            ),
            (
                "Deadlines",
                size_of::<crate::server::deadlines::Deadlines>(),
                5,
            ),
            ("Link", size_of::<crate::server::timers::Link>(), 12),
        ];
        let line: Vec<String> = sizes.iter().map(|(n, s, _)| format!("{n} {s}")).collect();
        eprintln!("SIZES {}", line.join(" "));
        for (name, size, most) in sizes {
            assert!(size <= most, "{name} is {size} bytes, more than {most}");
        }
    }
}

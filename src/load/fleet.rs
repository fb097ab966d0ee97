//! A fleet of client connections on one mio event loop: opening them (rate and
//! concurrency are the caller's policy), dispatching readiness to each, timing
//! handshakes, counting failures by cause, and closing them all at the end.
//!
//! Owns the connection table and the poller. It must never decide what to send
//! (the load modes do, through the event callback), never spawn a thread, and
//! every wait it performs is bounded by the caller's timeout.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::client::connection::{ConnError, ConnEvent, ConnectSpec, Connection, Sender};
use crate::core::{CloseCode, MessageKind};

use super::report::Failures;
use crate::histogram::Histogram;

/// One connection and the load mode's state for it.
#[derive(Debug)]
pub struct Slot<T> {
    pub conn: Connection,
    pub started: Instant,
    pub opened: bool,
    pub state: T,
}

/// Hands out local ports from a range, round robin from a random start, so that
/// binding is one hash lookup instead of the kernel's search of its ephemeral
/// range (which costs milliseconds per connect() once ~14,000 ports are taken).
#[derive(Debug, Clone)]
pub struct PortCursor {
    lo: u16,
    hi: u16,
    next: u16,
}

impl PortCursor {
    pub fn new(lo: u16, hi: u16, start: u16) -> Self {
        let (lo, hi) = (lo.min(hi).max(1), hi.max(lo));
        let span = u32::from(hi - lo) + 1;
        let next = lo + (u32::from(start) % span) as u16;
        PortCursor { lo, hi, next }
    }

    /// The system's ephemeral range (`ip_local_port_range`), else 32768-60999.
    pub fn system() -> Self {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace().map(|p| p.parse::<u16>().ok());
                Some((it.next()??, it.next()??))
            })
            .unwrap_or((32768, 60999));
        Self::random_start(range.0, range.1)
    }

    /// `lo..=hi`, starting at a random port (so that consecutive runs do not
    /// reuse the ports the previous one left in TIME_WAIT first).
    pub fn random_start(lo: u16, hi: u16) -> Self {
        let mut r = [0u8; 2];
        let _ = crate::client::connection::random_bytes(&mut r);
        Self::new(lo, hi, u16::from_ne_bytes(r))
    }

    pub fn len(&self) -> usize {
        usize::from(self.hi - self.lo) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn next_port(&mut self) -> u16 {
        let p = self.next;
        self.next = if p >= self.hi { self.lo } else { p + 1 };
        p
    }
}

/// Every connection of one load process.
pub struct Fleet<T> {
    poll: Poll,
    events: Events,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<usize>,
    scratch: Vec<u8>,
    /// This turn's readiness (token, readable, writable, hangup), kept for reuse.
    ready: Vec<(usize, bool, bool, bool)>,
    pub spec: ConnectSpec,
    /// Connect plus handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Connections started but not yet open.
    pub pending: usize,
    /// Connections open (handshake done, not finished).
    pub open: usize,
    /// Connections that ever opened.
    pub established: u64,
    /// Failures before the handshake finished, by cause.
    pub failures: Failures,
    /// Ends after the handshake, by cause (`eof`, `close_1001`, `reset`, ...).
    pub dropped: Failures,
    /// Connect + handshake time of each successful connection.
    pub handshake_latency: Histogram,
    last_sweep: Instant,
    /// Explicit local ports (when a source address is set), else the kernel's choice.
    ports: Option<PortCursor>,
}

/// Whether a failure to start means no further connection can start either
/// (this process is out of fds, or this source address out of ports).
pub fn is_exhaustion(e: &ConnError) -> bool {
    matches!(e, ConnError::TooManyFiles | ConnError::AddrNotAvailable)
}

/// An event for one connection, as seen by a load mode.
pub type OnEvent<'a, T> = dyn FnMut(usize, &mut Slot<T>, &ConnEvent, Instant) + 'a;

/// A whole received message, borrowed from the read buffer, as seen by a load
/// mode: the connection's id and state, the message, a [`Sender`] to answer it.
pub type OnMessage<'a, T> =
    dyn FnMut(usize, &mut T, MessageKind, &[u8], &mut Sender<'_>, Instant) + 'a;

impl<T> Fleet<T> {
    /// `ports`: local ports to bind explicitly (used only with a source address).
    pub fn new(
        spec: ConnectSpec,
        handshake_timeout: Duration,
        ports: Option<PortCursor>,
    ) -> io::Result<Self> {
        let ports = ports.filter(|_| spec.source.is_some());
        Ok(Fleet {
            ports,
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            slots: Vec::new(),
            free: Vec::new(),
            scratch: vec![0u8; 256 * 1024],
            ready: Vec::with_capacity(1024),
            spec,
            handshake_timeout,
            pending: 0,
            open: 0,
            established: 0,
            failures: Failures::default(),
            dropped: Failures::default(),
            handshake_latency: Histogram::new(),
            last_sweep: Instant::now(),
        })
    }

    /// Connections not yet finished (pending or open).
    pub fn live(&self) -> usize {
        self.pending + self.open
    }

    /// Starts one connection. On an immediate failure the cause is counted and
    /// the error returned (EMFILE and EADDRNOTAVAIL show up here).
    pub fn start(&mut self, state: T) -> Result<usize, ConnError> {
        let mut conn = match self.connect() {
            Ok(c) => c,
            Err(e) => {
                self.failures.add(e.cause(), 1);
                return Err(e);
            }
        };
        let id = self.free.pop().unwrap_or(self.slots.len());
        if let Err(e) = conn.register(self.poll.registry(), Token(id)) {
            let e = ConnError::from_io(e);
            self.failures.add(e.cause(), 1);
            if id < self.slots.len() {
                self.free.push(id);
            }
            return Err(e);
        }
        let slot = Slot {
            conn,
            started: Instant::now(),
            opened: false,
            state,
        };
        if id == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[id] = Some(slot);
        }
        self.pending += 1;
        Ok(id)
    }

    /// A new connection, on the next free explicit port if ports are ours.
    fn connect(&mut self) -> Result<Connection, ConnError> {
        let (Some(ports), Some(ip)) = (self.ports.as_mut(), self.spec.source) else {
            return Connection::start(&self.spec);
        };
        // Ports in use (ours, in TIME_WAIT, or anyone's) are skipped; a full lap
        // without a free one means the range is exhausted for this address.
        for _ in 0..ports.len() {
            let local = SocketAddr::new(ip, ports.next_port());
            match Connection::start_from(&self.spec, Some(local)) {
                Err(ConnError::AddrInUse) | Err(ConnError::AddrNotAvailable) => continue,
                other => return other,
            }
        }
        Err(ConnError::AddrNotAvailable)
    }

    /// One slot, if live.
    pub fn slot_mut(&mut self, id: usize) -> Option<&mut Slot<T>> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }

    /// Calls `f` on every open connection, then flushes what it queued.
    pub fn for_each_open(&mut self, mut f: impl FnMut(usize, &mut Slot<T>)) {
        for (id, slot) in self.slots.iter_mut().enumerate() {
            if let Some(slot) = slot.as_mut().filter(|s| s.opened && s.conn.is_open()) {
                f(id, slot);
                slot.conn.flush();
            }
        }
    }

    /// Waits at most `timeout` for readiness, dispatches it, reports every
    /// connection event to `on_event`, and retires finished connections.
    pub fn turn(&mut self, timeout: Duration, on_event: &mut OnEvent<'_, T>) -> io::Result<()> {
        self.turn_with(timeout, on_event, None)
    }

    /// Like [`Fleet::turn`], handing whole messages that need no reassembly to
    /// `on_message` where they lie in the read buffer (see
    /// [`Connection::handle_ready_with`]); the rest still goes to `on_event`.
    pub fn turn_with(
        &mut self,
        timeout: Duration,
        on_event: &mut OnEvent<'_, T>,
        mut on_message: Option<&mut OnMessage<'_, T>>,
    ) -> io::Result<()> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|ev| {
            let hangup = ev.is_read_closed() || ev.is_error();
            (
                ev.token().0,
                ev.is_readable() || hangup,
                ev.is_writable(),
                hangup,
            )
        }));
        for &(id, readable, writable, hangup) in &ready {
            let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) else {
                continue;
            };
            let Slot { conn, state, .. } = slot;
            match on_message.as_deref_mut() {
                Some(f) => conn.handle_ready_with(
                    readable,
                    writable,
                    hangup,
                    &mut self.scratch,
                    Some(&mut |kind, data: &[u8], sender: &mut Sender<'_>| {
                        f(id, state, kind, data, sender, now)
                    }),
                ),
                None => conn.handle_ready_with(readable, writable, hangup, &mut self.scratch, None),
            }
            self.drain(id, now, on_event);
        }
        self.ready = ready;
        if now.duration_since(self.last_sweep) >= Duration::from_millis(100) {
            self.last_sweep = now;
            self.sweep_timeouts(now, on_event);
        }
        Ok(())
    }

    /// Fails connections whose handshake is overdue.
    fn sweep_timeouts(&mut self, now: Instant, on_event: &mut OnEvent<'_, T>) {
        if self.pending == 0 {
            return;
        }
        for id in 0..self.slots.len() {
            let overdue = self.slots[id].as_ref().is_some_and(|s| {
                !s.opened && now.duration_since(s.started) >= self.handshake_timeout
            });
            if overdue {
                if let Some(slot) = self.slots[id].as_mut() {
                    slot.conn.abort(ConnError::Timeout);
                }
                self.drain(id, now, on_event);
            }
        }
    }

    /// Delivers one connection's queued events; retires it when it finished.
    fn drain(&mut self, id: usize, now: Instant, on_event: &mut OnEvent<'_, T>) {
        let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let mut finished = false;
        while let Some(ev) = slot.conn.poll_event() {
            match &ev {
                ConnEvent::Open(_) => {
                    slot.opened = true;
                    self.pending -= 1;
                    self.open += 1;
                    self.established += 1;
                    self.handshake_latency
                        .record(now.duration_since(slot.started).as_nanos() as u64);
                }
                ConnEvent::Close(frame) => {
                    let code = frame.as_ref().map_or(1005, |f| f.code.0);
                    if code != CloseCode::NORMAL.0 {
                        self.dropped.add(&format!("close_{code}"), 1);
                    }
                }
                ConnEvent::Eof => finished = true,
                ConnEvent::Failed(e) => {
                    finished = true;
                    if slot.opened {
                        self.dropped.add(e.cause(), 1);
                    } else {
                        self.failures.add(e.cause(), 1);
                    }
                }
                _ => {}
            }
            on_event(id, slot, &ev, now);
        }
        if finished {
            if slot.opened {
                self.open -= 1;
            } else {
                self.pending -= 1;
            }
            if let Some(mut slot) = self.slots[id].take() {
                slot.conn.deregister(self.poll.registry());
            }
            self.free.push(id);
        } else {
            slot.conn.flush();
        }
    }

    /// Sends close 1000 on every open connection and waits (at most `timeout`) for
    /// the server to finish each; then drops whatever is left. Returns how many
    /// finished the closing handshake cleanly (server's close frame seen).
    pub fn close_all(&mut self, timeout: Duration) -> u64 {
        for slot in self.slots.iter_mut().flatten() {
            if slot.opened {
                let _ = slot.conn.close(CloseCode::NORMAL, "");
                slot.conn.flush();
            }
        }
        let deadline = Instant::now() + timeout;
        let mut clean = 0u64;
        let mut count = |_: usize, _: &mut Slot<T>, ev: &ConnEvent, _: Instant| {
            if matches!(ev, ConnEvent::Close(_)) {
                clean += 1;
            }
        };
        while self.open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if self
                .turn(left.min(Duration::from_millis(100)), &mut count)
                .is_err()
            {
                break;
            }
        }
        self.slots.clear();
        self.free.clear();
        self.pending = 0;
        self.open = 0;
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_cursor_wraps_within_its_range() {
        let mut c = PortCursor::new(100, 102, 7);
        let ports: Vec<u16> = (0..6).map(|_| c.next_port()).collect();
        assert_eq!(ports, [101, 102, 100, 101, 102, 100]);
        assert_eq!(c.len(), 3);
        let mut one = PortCursor::new(5, 5, 999);
        assert_eq!((one.next_port(), one.next_port()), (5, 5));
    }
}

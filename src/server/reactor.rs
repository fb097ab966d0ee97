//! The single-threaded mio event loop: poll, dispatch each event to the source
//! its token names, fire timers, fan out broadcasts, flush what the turn queued,
//! and shut down gracefully on a signal.
//!
//! Owns the sources (listeners, signals, the slab of connections), the timer
//! wheel, the once-a-second status offer (`status_probe.rs` measures), SIGHUP's config reload, and the end of every connection: drivers report [`Verdict::Done`] and
//! only [`Reactor::remove`] removes. It must never parse bytes, decide policy or
//! name a route kind; it never blocks (every wait is a poll with a timeout).

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::{Events, Interest, Poll};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::app::App;
use crate::app::Stream;
use crate::config::{Config, ProxyProtocol};
use crate::core::http::write_closing_response;
use crate::logging;
use crate::logging::LogLimiter;
use crate::server::backplane::Backplane;
use crate::server::bridge::Bridges;
use crate::server::client_addr;
use crate::server::connection::{Conn, ConnState, Shared, Verdict};
use crate::server::driver::READ_CHUNK;
use crate::server::heap_trim::HeapTrim;
use crate::server::listener::Listener;
use crate::server::per_ip::NO_ENTRY;
use crate::server::reload;
use crate::server::session::{Delivery, RunFrames};
use crate::server::settings::Settings;
use crate::server::stats::Stats;
use crate::server::status_probe::StatusProbe;
use crate::server::timers::{Link, Links, Tick, TimerWheel, TICK};
use crate::server::token::{Pipe, Source};
use crate::server::transport::Transport;
use crate::server::{connection_limit, ConfigSource};

/// How long accepting pauses after EMFILE/ENFILE.
const ACCEPT_PAUSE_TICKS: Tick = 4;

pub struct Reactor {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Signals,
    conns: Slab<Conn>,
    shared: Shared,
    wheel: TimerWheel,
    fired: Vec<usize>,
    /// Connections with output queued this turn, flushed once at its end (corking).
    to_flush: Vec<usize>,
    /// One run of broadcasts' frames, encoded once, while fanning it out.
    frames: RunFrames,
    next_id: u64,
    /// Accepting resumes at this tick (0: not paused).
    accept_paused_until: Tick,
    shutdown_deadline: Option<Tick>,
    accept_log: LogLimiter,
    /// The config in force, to tell what a reload changes.
    config: Config,
    /// Reads the config file again on SIGHUP.
    config_source: Option<ConfigSource>,
    /// The most connections the fd limit allows.
    fd_ceiling: usize,
    /// Present only when a route shows the server's status.
    status: Option<StatusProbe>,
    /// Freed heap memory goes back to the system once the loop goes quiet.
    heap_trim: HeapTrim,
    /// Draining after a signal with `drain_delay`: listeners close at this tick.
    drain_until: Option<Tick>,
    /// The signal that started the drain, for the log.
    drain_signal: i32,
}

impl Reactor {
    /// Builds the loop around already-bound listeners.
    pub fn new(
        config: &Config,
        listeners: Vec<Listener>,
        app: App,
        fd_ceiling: usize,
        config_source: Option<ConfigSource>,
    ) -> io::Result<Reactor> {
        let max_connections = connection_limit(config.server.max_connections, fd_ceiling);
        let poll = Poll::new()?;
        let mut listeners = listeners;
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut l.socket,
                Source::Listener(i).token(),
                Interest::READABLE,
            )?;
        }
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        poll.registry()
            .register(&mut signals, Source::Signals.token(), Interest::READABLE)?;
        let settings = Settings::new(config, max_connections);
        let peer_log = LogLimiter::new(10, TimerWheel::ticks_for(Duration::from_secs(1)));
        let rbuf_len = config.limits.max_request_bytes + READ_CHUNK;
        let status = app.shows_status().then(|| StatusProbe::new(Instant::now()));
        let bridges = Bridges::new(poll.registry().try_clone()?);
        let backplane = match &config.backplane {
            Some(backplane) => Some(Backplane::new(
                poll.registry().try_clone()?,
                backplane.clone(),
                usize::try_from(config.limits.max_message_bytes).unwrap_or(usize::MAX),
            )),
            None => None,
        };
        Ok(Reactor {
            poll,
            listeners,
            signals,
            conns: Slab::new(),
            shared: Shared::new(settings, app, rbuf_len, peer_log, bridges, backplane),
            wheel: TimerWheel::new(Instant::now()),
            fired: Vec::new(),
            to_flush: Vec::new(),
            frames: RunFrames::default(),
            next_id: 1,
            accept_paused_until: 0,
            shutdown_deadline: None,
            accept_log: LogLimiter::new(1, TimerWheel::ticks_for(Duration::from_secs(10))),
            config: config.clone(),
            config_source,
            fd_ceiling,
            status,
            heap_trim: HeapTrim::new(),
            drain_until: None,
            drain_signal: 0,
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
            let turn_start = Instant::now();
            self.shared.now = self.wheel.tick_of(turn_start);
            let traffic = self.shared.stats.bytes_in + self.shared.stats.bytes_out;
            if events.is_empty() && self.heap_trim.on_quiet(traffic) {
                debug!("quiet after {traffic} bytes moved: freed heap memory released");
            }
            for event in events.iter() {
                match Source::of(event.token()) {
                    Source::Signals => self.handle_signals(),
                    Source::Listener(i) => self.accept(i),
                    Source::Connection(key) => {
                        if event.is_writable() {
                            self.flush(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.shared.peer_may_have_closed =
                                event.is_read_closed() || event.is_error();
                            self.drive(key, Conn::on_readable);
                            self.shared.peer_may_have_closed = false;
                        }
                    }
                    Source::Backend(key, pipe) => {
                        self.backend_event(key, pipe, event.is_writable());
                    }
                    Source::EndingChild(index) => self.shared.bridges.ending_event(index),
                    Source::Backplane(link) => self.backplane_event(link, turn_start),
                    Source::Unknown => {}
                }
            }
            self.fire_timers();
            self.fire_bridge_timers();
            if let Some(backplane) = &mut self.shared.backplane {
                backplane.tick(turn_start);
            }
            self.resume_accepting();
            if self.drain_until.is_some_and(|t| self.shared.now >= t) {
                self.begin_shutdown(self.drain_signal);
            }
            self.offer_status(turn_start);
            self.flush_backends();
            if let Some(backplane) = &mut self.shared.backplane {
                backplane.flush();
            }
            while let Some(key) = self.to_flush.pop() {
                self.flush(key);
            }
            self.time_turn(turn_start);
            self.heap_trim
                .after_turn(self.shared.stats.bytes_in + self.shared.stats.bytes_out);
            if let Some(deadline) = self.shutdown_deadline {
                let done = self.conns.is_empty() && self.shared.bridges.is_idle();
                if done || self.shared.now >= deadline {
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
        self.shared.bridges.kill_all();
        Ok(self.shared.stats)
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let timeout = match self.wheel.poll_timeout(now) {
            Some(t) => Some(t),
            None if self.accept_paused_until != 0
                || self.shutdown_deadline.is_some()
                || self.drain_until.is_some()
                || self.shared.bridges.has_timers() =>
            {
                Some(TICK)
            }
            None => None,
        };
        let timeout = match (timeout, self.heap_trim.poll_timeout()) {
            (Some(t), Some(quiet)) => Some(t.min(quiet)),
            (t, quiet) => t.or(quiet),
        };
        let due = [
            self.status.as_ref().map(StatusProbe::next_due),
            self.shared.backplane.as_ref().and_then(Backplane::next_due),
        ];
        due.into_iter().flatten().fold(timeout, |timeout, at| {
            let until = at.saturating_duration_since(now);
            Some(timeout.map_or(until, |t| t.min(until)))
        })
    }

    /// Records the turn's duration where someone reads it: `/metrics` (when
    /// configured) and status watchers. Nobody reading, no clock read.
    fn time_turn(&mut self, turn_start: Instant) {
        let watched = self.status.as_ref().is_some_and(StatusProbe::timing_turns);
        if !self.shared.settings.metrics && !watched {
            return;
        }
        let took = turn_start.elapsed();
        if self.shared.settings.metrics {
            self.shared.stats.turns.record(took);
        }
        if let Some(probe) = self.status.as_mut().filter(|_| watched) {
            probe.record_turn(took);
        }
    }

    /// Once a second on a config with a status route: if any such route has
    /// watchers, builds one snapshot and hands it to each that wants it; the
    /// fan-out queues the frames for this turn's flush.
    fn offer_status(&mut self, now: Instant) {
        let Some(probe) = self.status.as_mut() else {
            return;
        };
        if !probe.due(now) {
            return;
        }
        let wanting: Vec<_> = self
            .shared
            .app
            .routes()
            .iter()
            .filter(|r| r.handler.wants_status())
            .map(|r| Rc::clone(&r.handler))
            .collect();
        if wanting.is_empty() {
            probe.unwatched(now, &self.shared.stats);
            return;
        }
        let snapshot = probe.snapshot(
            now,
            &self.shared.stats,
            self.conns.iter().map(|(_, c)| c),
            self.shared.app.routes(),
        );
        for handler in &wanting {
            self.shared.fx.set_origin(None, handler);
            handler.status(&snapshot, &mut self.shared.fx);
        }
        self.fan_out();
    }

    // ---- driving connections ----

    /// Runs one driver step on connection `key`, then settles what it left.
    fn drive(&mut self, key: usize, step: fn(&mut Conn, usize, &mut Shared) -> Verdict) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let verdict = step(conn, key, &mut self.shared);
        self.settle(key, verdict);
    }

    /// Writes a connection's output now and asks for WRITABLE only while some waits.
    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.flush_queued = false;
        match conn.flush(key, &mut self.shared) {
            Verdict::Done => self.remove(key),
            Verdict::Continue => {
                let pending = !conn.outbox.is_empty() || conn.transport.wants_write();
                conn.transport.want_write(
                    self.poll.registry(),
                    Source::Connection(key).token(),
                    pending,
                );
                let drained = conn.outbox.len() < self.shared.settings.read_pause / 2;
                self.arm(key);
                self.fan_out();
                if drained
                    && !self.shared.bridges.is_empty()
                    && self.shared.bridges.resume_output(key)
                {
                    self.drive(key, Conn::pump_all);
                }
            }
        }
    }

    /// After a driver step: remove the connection, or queue its output for the
    /// end of the turn and arm its next deadline; then fan out broadcasts.
    fn settle(&mut self, key: usize, verdict: Verdict) {
        match verdict {
            Verdict::Done => self.remove(key),
            Verdict::Continue => {
                self.queue_flush(key);
                self.arm(key);
            }
        }
        self.fan_out();
        if self.shared.bridges.has_ended() {
            self.report_backend_ends();
        }
    }

    // ---- the backplane ----

    /// Hands what handlers asked of the backplane to it (nothing without one).
    fn relay(&mut self) {
        let fx = &mut self.shared.fx;
        match &mut self.shared.backplane {
            Some(backplane) => {
                for (relay, handler) in fx.take_relays() {
                    backplane.relay(relay, &handler);
                }
            }
            None => fx.take_relays().for_each(drop),
        }
    }

    /// An event on a Redis link; what other processes relayed goes to the
    /// handlers that subscribed, which deliver it in this process.
    fn backplane_event(&mut self, link: usize, now: Instant) {
        let Some(backplane) = &mut self.shared.backplane else {
            return;
        };
        backplane.on_event(link, now);
        if !backplane.has_inbox() {
            return;
        }
        for r in backplane.take_inbox() {
            self.shared.fx.set_origin(None, &r.handler);
            r.handler
                .relayed(&r.channel, &r.node, &r.payload, &mut self.shared.fx);
            self.fan_out();
        }
    }

    // ---- bridged connections' backends ----

    /// An event of connection `key`'s backend.
    fn backend_event(&mut self, key: usize, pipe: Pipe, writable: bool) {
        match pipe {
            Pipe::Out => {
                // A TCP backend: finish connecting, then write what waits.
                if self.shared.bridges.tcp_event(key) && writable {
                    self.write_backend(key);
                }
                self.drive(key, |conn, key, sh| conn.pump_backend(key, Stream::Out, sh));
            }
            Pipe::Err => self.drive(key, |conn, key, sh| conn.pump_backend(key, Stream::Err, sh)),
            Pipe::In => self.write_backend(key),
            Pipe::Exit => {
                if self.shared.bridges.child_event(key) {
                    self.drive(key, Conn::pump_all);
                }
            }
        }
        self.report_backend_ends();
    }

    /// Writes to `key`'s backend; the connection reads again once its
    /// backend has taken enough.
    fn write_backend(&mut self, key: usize) {
        if self.shared.bridges.write(key) {
            self.resume_reading(key);
        }
    }

    fn resume_reading(&mut self, key: usize) {
        let resume = self.conns.get(key).is_some_and(|c| c.read_paused)
            && self.shared.bridges.backlog(key) < self.shared.settings.read_pause / 2;
        if resume {
            self.drive(key, Conn::on_readable);
        }
    }

    /// Writes what this turn queued for backends (one write per backend per turn).
    fn flush_backends(&mut self) {
        if self.shared.bridges.is_empty() {
            return;
        }
        let mut wrote = Vec::new();
        self.shared.bridges.flush_queued(&mut wrote);
        for key in wrote {
            self.resume_reading(key);
        }
        self.report_backend_ends();
    }

    /// Hands backends that ended outside an event of theirs (failed to start,
    /// timed out connecting, failed writing) to their connections' handlers.
    fn report_backend_ends(&mut self) {
        let mut ended = Vec::new();
        self.shared.bridges.take_ended(&mut ended);
        for key in ended {
            self.drive(key, |conn, key, sh| {
                conn.report_backend_end(key, sh);
                Verdict::Continue
            });
        }
    }

    /// Connect timeouts, the steps of ending programs, and exit polls.
    fn fire_bridge_timers(&mut self) {
        if !self.shared.bridges.has_timers() {
            return;
        }
        let mut polled = Vec::new();
        self.shared.bridges.fire(self.shared.now, &mut polled);
        for key in polled {
            if self.shared.bridges.child_event(key) {
                self.drive(key, Conn::pump_all);
            }
        }
        self.report_backend_ends();
    }

    fn queue_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.wants_flush() && !conn.flush_queued {
                conn.flush_queued = true;
                self.to_flush.push(key);
            }
        }
    }

    /// Delivers the broadcasts handlers asked for to every recipient but the
    /// sender (its copy went out already), encoding once per encoding in use.
    fn fan_out(&mut self) {
        if self.shared.fx.has_relays() {
            self.relay();
        }
        if !self.shared.fx.has_publications() {
            return;
        }
        let mut fx = std::mem::take(&mut self.shared.fx);
        fx.drain_publications(|run, subscribers, sender| {
            for &key in subscribers {
                if Some(key) == sender {
                    continue;
                }
                let Some(conn) = self.conns.get_mut(key) else {
                    continue;
                };
                // The bookkeeping of `settle`, while the connection is at hand.
                let delivery = conn.deliver_run(run, &mut self.frames, &mut self.shared);
                if delivery != Delivery::Skipped && !conn.flush_queued {
                    conn.flush_queued = true;
                    self.to_flush.push(key);
                }
                if delivery == Delivery::Closing {
                    arm(&mut self.wheel, &mut self.conns, key);
                }
            }
        });
        self.frames.clear();
        self.shared.fx = fx;
    }

    // ---- accepting ----

    fn accept(&mut self, index: usize) {
        while self.accept_paused_until == 0 {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let (admin, proxy) = (listener.admin(), listener.proxy);
            match listener.socket.accept() {
                Ok((stream, addr)) => match &listener.tls {
                    None => self.admit(Transport::tcp(stream), addr, admin, proxy),
                    Some(tls) => match Transport::tls(stream, Arc::clone(tls)) {
                        Ok(transport) => self.admit(transport, addr, admin, proxy),
                        Err(e) => debug!("{addr}: TLS session: {e}"),
                    },
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    if let Some(suppressed) = self.accept_log.allow(self.shared.now) {
                        warn!(
                            "accept: {e}; pausing accepts for {} ms ({} open connections, {suppressed} similar suppressed)",
                            TICK.as_millis() * u128::from(ACCEPT_PAUSE_TICKS),
                            self.conns.len()
                        );
                    }
                    self.accept_paused_until = self.shared.now + ACCEPT_PAUSE_TICKS;
                    self.shared.stats.accept_pauses += 1;
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
        if self.accept_paused_until != 0 && self.shared.now >= self.accept_paused_until {
            self.accept_paused_until = 0;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    /// Takes a new connection into the slab, or refuses it with a 503 when the
    /// table is full or the server drains. An `admin` (metrics listener)
    /// connection is always taken: a scrape must work when the server is full,
    /// and `/readyz` must say 503 while it drains.
    /// A connection from an untrusted peer on a listener without PROXY
    /// headers is counted for its address here, and refused with a 503 when
    /// that address has `max_connections_per_ip` open.
    fn admit(
        &mut self,
        mut transport: Transport,
        peer: SocketAddr,
        admin: bool,
        proxy: ProxyProtocol,
    ) {
        let max = self.shared.settings.max_connections;
        if !admin && (self.conns.len() >= max || self.shutdown_deadline.is_some()) {
            self.shared.stats.refused += 1;
            if let Some(suppressed) = self.accept_log.allow(self.shared.now) {
                warn!(
                    "refusing connection: {} open (max_connections {max}); {suppressed} similar suppressed",
                    self.conns.len(),
                );
            }
            let mut out = Vec::new();
            write_closing_response(
                &mut out,
                503,
                &[("Retry-After", "1")],
                "server at connection limit",
            );
            transport.write_and_forget(&out);
            return;
        }
        let mut client = NO_ENTRY;
        let peer_ip = peer.ip().to_canonical();
        let settings = &self.shared.settings;
        if !admin
            && settings.track_clients
            && proxy == ProxyProtocol::Off
            && !client_addr::trusted(peer_ip, &settings.trusted_proxies)
        {
            match self.shared.per_ip.open(peer_ip, self.shared.now) {
                Ok(id) => client = id,
                Err(_) => {
                    *self
                        .shared
                        .stats
                        .refused_by
                        .entry("per_ip_limit")
                        .or_default() += 1;
                    self.shared.log_peer(format_args!(
                        "refusing connection from {peer_ip}: too many connections from this address"
                    ));
                    let mut out = Vec::new();
                    write_closing_response(
                        &mut out,
                        503,
                        &[("Retry-After", "1")],
                        "too many connections from this address",
                    );
                    transport.write_and_forget(&out);
                    return;
                }
            }
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = Source::Connection(key).token();
        if let Err(e) = transport.register(self.poll.registry(), token) {
            warn!("register: {e}");
            if client != NO_ENTRY {
                self.shared.per_ip.close(client, self.shared.now);
            }
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let conn = entry.insert(Conn::new(transport, id));
        conn.admin = admin;
        conn.client = client;
        if proxy != ProxyProtocol::Off && !admin {
            conn.state = ConnState::ProxyHeader(proxy);
        }
        conn.accepted(&self.shared);
        self.shared.stats.accepted += 1;
        self.shared.stats.open = self.conns.len() as u64;
        debug!("conn {id}: accepted ({} open)", self.conns.len());
        self.arm(key);
    }

    // ---- timers ----

    /// Keeps the wheel's entry for `key` at its earliest deadline.
    fn arm(&mut self, key: usize) {
        arm(&mut self.wheel, &mut self.conns, key);
    }

    fn fire_timers(&mut self) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel
            .advance(&mut self.conns, self.shared.now, &mut fired);
        for key in fired.drain(..) {
            // Entries are hints: one armed before its deadline moved later
            // fires early, and `on_timer` re-checks the deadlines (then `settle`
            // arms the moved one). A connection removed meanwhile is skipped.
            if self.conns.contains(key) {
                self.drive(key, Conn::on_timer);
            }
        }
        self.fired = fired;
    }

    // ---- the end of connections and of the loop ----

    /// Frees a connection's slot, on every path: a session still open ends (its
    /// handler hears of it) and the socket is closed. Closing takes it out of
    /// the epoll set (nothing else holds the socket: it is close-on-exec and
    /// never duplicated), so there is no deregister call to make.
    fn remove(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        // The wheel's lists run through the connections: out of it first.
        self.wheel.cancel(&mut self.conns, key);
        let mut conn = self.conns.remove(key);
        conn.release(key, &mut self.shared);
        if conn.client != NO_ENTRY {
            self.shared.per_ip.close(conn.client, self.shared.now);
        }
        self.shared.stats.open = self.conns.len() as u64;
        debug!("conn {}: closed ({} open)", conn.id, self.conns.len());
        self.fan_out();
    }

    /// SIGHUP: reads the config file again and applies it to what comes next:
    /// new connections see the new routes, policies, limits and timeouts; live
    /// sessions keep their route (a route that stays keeps its handler, so chat
    /// rooms and their members carry over) and their core limits. Listeners
    /// are kept, bound or closed as the file says; TLS listeners take the
    /// certificates read now. Anything that fails leaves the old config in
    /// force, with one log line saying why.
    fn reload(&mut self) {
        let Some(source) = &self.config_source else {
            info!("SIGHUP: running on built-in defaults, no config file to reload");
            return;
        };
        let (config, tls) = match source() {
            Ok(loaded) => loaded,
            Err(e) => return self.reload_failed(&e),
        };
        let app = match App::reloaded(&config, &self.shared.app) {
            Ok(app) => app,
            Err(e) => return self.reload_failed(&e),
        };
        let mut old = std::mem::take(&mut self.listeners);
        for listener in &mut old {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        let rebound = match reload::rebind(&config, tls.as_ref(), old) {
            Ok(rebound) => rebound,
            Err((old, e)) => {
                self.register_listeners(old);
                return self.reload_failed(&e);
            }
        };
        self.register_listeners(rebound.listeners);
        let mut changes = reload::changes(&self.config, &config);
        changes.extend(rebound.opened.iter().map(|l| format!("listening on {l}")));
        changes.extend(rebound.closed.iter().map(|l| format!("closed {l}")));
        if let Err(e) = logging::reload(&config.log) {
            changes.push(e);
        }
        let max = connection_limit(config.server.max_connections, self.fd_ceiling);
        self.shared.settings = Settings::new(&config, max);
        self.shared.per_ip.set_limits(self.shared.settings.per_ip);
        let rbuf_len = config.limits.max_request_bytes + READ_CHUNK;
        if self.shared.rbuf.len() < rbuf_len {
            self.shared.rbuf.resize(rbuf_len, 0);
        }
        app.commit_reload();
        self.shared.app = app;
        if !self.shared.app.shows_status() {
            self.status = None;
        } else if self.status.is_none() {
            self.status = Some(StatusProbe::new(Instant::now()));
        }
        self.config = config;
        self.shared.stats.reloads_ok += 1;
        if changes.is_empty() {
            info!("SIGHUP: config reloaded, nothing changed (certificates re-read)");
        } else {
            info!("SIGHUP: config reloaded: {}", changes.join("; "));
        }
    }

    fn reload_failed(&mut self, error: &str) {
        self.shared.stats.reloads_failed += 1;
        error!("SIGHUP: config not reloaded, the old one stays in force: {error}");
    }

    /// Registers `listeners` under their (new) indices; one that cannot be
    /// registered is closed and logged.
    fn register_listeners(&mut self, listeners: Vec<Listener>) {
        for mut listener in listeners {
            let token = Source::Listener(self.listeners.len()).token();
            match self
                .poll
                .registry()
                .register(&mut listener.socket, token, Interest::READABLE)
            {
                Ok(()) => self.listeners.push(listener),
                Err(e) => warn!("listener {}: {e}; closing it", listener.addr),
            }
        }
    }

    fn handle_signals(&mut self) {
        let mut signals: Vec<i32> = self.signals.pending().collect();
        if signals.contains(&SIGHUP) {
            self.reload();
            signals.retain(|&s| s != SIGHUP);
        }
        if signals.is_empty() {
            return;
        }
        if self.shutdown_deadline.is_some() {
            warn!("second signal: exiting now");
            self.shutdown_deadline = Some(self.shared.now);
            return;
        }
        if self.drain_until.is_some() {
            info!("second signal: closing now");
            self.begin_shutdown(signals[0]);
            return;
        }
        self.shared.draining = true;
        let delay = self.shared.settings.drain_delay_ticks;
        if delay == 0 {
            self.begin_shutdown(signals[0]);
            return;
        }
        info!(
            "signal {}: draining: /readyz answers 503; still accepting for {} ms",
            signals[0],
            TICK.as_millis() * u128::from(delay)
        );
        self.drain_until = Some(self.shared.now + delay);
        self.drain_signal = signals[0];
    }

    /// Closes the listeners (all but the metrics one), sends close 1001 to
    /// every WebSocket and gives them `timeouts.shutdown` to answer.
    fn begin_shutdown(&mut self, signal: i32) {
        self.drain_until = None;
        let shutdown_ticks = self.shared.settings.shutdown_ticks;
        info!(
            "signal {signal}: shutting down, closing {} connections (timeout {} ms)",
            self.conns.len(),
            TICK.as_millis() * u128::from(shutdown_ticks)
        );
        // The metrics listener stays: /readyz says 503 until the loop ends.
        self.shared.draining = true;
        for mut listener in std::mem::take(&mut self.listeners) {
            if !listener.admin() {
                let _ = self.poll.registry().deregister(&mut listener.socket);
                continue;
            }
            // Its index (and so its token) changes with the others gone.
            let token = Source::Listener(self.listeners.len()).token();
            match self
                .poll
                .registry()
                .reregister(&mut listener.socket, token, Interest::READABLE)
            {
                Ok(()) => self.listeners.push(listener),
                Err(e) => warn!("metrics listener: {e}; closing it"),
            }
        }
        self.shutdown_deadline = Some(self.shared.now + shutdown_ticks);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.drive(key, Conn::begin_shutdown);
        }
    }
}

/// Keeps connection `key`'s wheel entry in step with its one deadline
/// (`TimerWheel::keep`: an upgraded WebSocket with pings off leaves nothing in
/// the wheel, not even its request deadline's entry).
fn arm(wheel: &mut TimerWheel, conns: &mut Slab<Conn>, key: usize) {
    if let Some(conn) = conns.get(key) {
        let deadline = conn.deadlines.next();
        wheel.keep(conns, key, deadline);
    }
}

/// The wheel keeps each connection's [`Link`] in the connection.
impl Links for Slab<Conn> {
    fn link(&mut self, key: usize) -> &mut Link {
        &mut self[key].timer
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

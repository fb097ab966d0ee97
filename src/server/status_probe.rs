//! Measuring the server for status routes: once a second, when a route shows
//! the status and someone watches it, a [`ServerStatus`] is built from the
//! reactor's counters, its connections, the routes' census, `/proc/self` and
//! the loop's turn times since the previous snapshot.
//!
//! Owns the baselines the rates and the last minute's closes are computed
//! from, and the turn-time histogram. It must never cost anything while nobody
//! watches: turns are timed and close history is kept only after a snapshot
//! was wanted, and the one-per-second wake-up exists only on a config with a
//! status route. It never touches a connection's state or sends anything.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::app::status::{
    ConnectionStates, Rates, RecentCloses, RouteStatus, ServerStatus, Totals, TurnTimes,
};
use crate::app::Route;
use crate::histogram::Histogram;
use crate::server::connection::{Conn, ConnState};
use crate::server::process_usage::process_usage;
use crate::server::stats::Stats;

/// How often a snapshot is offered.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How far back "closes in the last minute" looks.
const CLOSE_WINDOW: Duration = Duration::from_secs(60);

/// The counters the rates are computed from.
#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    accepted: u64,
    handshakes: u64,
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Baseline {
    fn of(stats: &Stats) -> Baseline {
        Baseline {
            accepted: stats.accepted,
            handshakes: stats.handshakes,
            messages_in: stats.messages_in,
            messages_out: stats.messages_out,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
        }
    }
}

/// Cumulative close counts at one moment.
#[derive(Debug)]
struct CloseMark {
    at: Instant,
    sent: BTreeMap<u16, u64>,
    received: BTreeMap<u16, u64>,
}

#[derive(Debug)]
pub struct StatusProbe {
    started: Instant,
    next_due: Instant,
    last_at: Instant,
    last: Baseline,
    /// Turns are timed while this holds: someone watched at the last offer.
    watching: bool,
    turns: Histogram,
    /// One mark per snapshot, oldest first, spanning at most a minute.
    closes: VecDeque<CloseMark>,
}

impl StatusProbe {
    pub fn new(now: Instant) -> StatusProbe {
        StatusProbe {
            started: now,
            next_due: now + STATUS_EVERY,
            last_at: now,
            last: Baseline::default(),
            watching: false,
            turns: Histogram::new(),
            closes: VecDeque::new(),
        }
    }

    /// When the next snapshot is due (the loop's poll waits no longer).
    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// Whether a snapshot is due at `now`; if so, the next one is a second on.
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next_due {
            return false;
        }
        self.next_due = now + STATUS_EVERY;
        true
    }

    /// Whether the loop should time its turns.
    pub fn timing_turns(&self) -> bool {
        self.watching
    }

    /// One loop turn took `took`.
    pub fn record_turn(&mut self, took: Duration) {
        self.turns
            .record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    /// A due offer that nobody wanted: move the rate baseline along, stop
    /// timing turns and forget close history.
    pub fn unwatched(&mut self, now: Instant, stats: &Stats) {
        self.watching = false;
        self.turns = Histogram::new();
        self.closes.clear();
        self.last = Baseline::of(stats);
        self.last_at = now;
    }

    /// Builds the snapshot and starts the next interval.
    pub fn snapshot<'a>(
        &mut self,
        now: Instant,
        stats: &Stats,
        conns: impl Iterator<Item = &'a Conn>,
        routes: &[Rc<Route>],
    ) -> ServerStatus {
        let elapsed = now.duration_since(self.last_at);
        let rate = |now: u64, before: u64| per_sec(now.saturating_sub(before), elapsed);
        let b = self.last;
        let rates = Rates {
            accepted_per_sec: rate(stats.accepted, b.accepted),
            handshakes_per_sec: rate(stats.handshakes, b.handshakes),
            messages_in_per_sec: rate(stats.messages_in, b.messages_in),
            messages_out_per_sec: rate(stats.messages_out, b.messages_out),
            bytes_in_per_sec: rate(stats.bytes_in, b.bytes_in),
            bytes_out_per_sec: rate(stats.bytes_out, b.bytes_out),
        };
        let (connections, mut route_status) = count_connections(conns, routes);
        let (mut rooms, mut members) = (0, 0);
        for (status, route) in route_status.iter_mut().zip(routes) {
            let census = route.handler.census();
            status.rooms = census.rooms;
            status.members = census.members;
            rooms += census.rooms;
            members += census.members;
        }
        let closes_last_minute = self.recent_closes(now, stats);
        let (rss_bytes, open_fds) = process_usage();
        let us = |ns: u64| ns as f64 / 1000.0;
        let loop_turns = TurnTimes {
            turns: self.turns.count(),
            p50_us: us(self.turns.quantile(0.5)),
            p99_us: us(self.turns.quantile(0.99)),
            max_us: us(self.turns.max()),
        };
        let status = ServerStatus {
            uptime_secs: now.duration_since(self.started).as_secs_f64(),
            interval_secs: elapsed.as_secs_f64(),
            connections,
            routes: route_status,
            rooms,
            members,
            rates,
            totals: totals(stats),
            closes_last_minute,
            rss_bytes,
            open_fds,
            loop_turns,
        };
        self.watching = true;
        self.turns = Histogram::new();
        self.last = Baseline::of(stats);
        self.last_at = now;
        status
    }

    /// Closes by code since the oldest mark within the last minute; adds a mark.
    fn recent_closes(&mut self, now: Instant, stats: &Stats) -> RecentCloses {
        while self.closes.len() > 1
            && self
                .closes
                .get(1)
                .is_some_and(|m| now.duration_since(m.at) >= CLOSE_WINDOW)
        {
            self.closes.pop_front();
        }
        let recent = match self.closes.front() {
            Some(oldest) => RecentCloses {
                window_secs: now.duration_since(oldest.at).as_secs_f64(),
                sent: difference(&stats.closes_sent, &oldest.sent),
                received: difference(&stats.closes_received, &oldest.received),
            },
            None => RecentCloses::default(),
        };
        self.closes.push_back(CloseMark {
            at: now,
            sent: stats.closes_sent.clone(),
            received: stats.closes_received.clone(),
        });
        recent
    }
}

/// Open connections by state, and open WebSockets per route (in `routes` order).
fn count_connections<'a>(
    conns: impl Iterator<Item = &'a Conn>,
    routes: &[Rc<Route>],
) -> (ConnectionStates, Vec<RouteStatus>) {
    let mut states = ConnectionStates::default();
    let mut per_route: Vec<RouteStatus> = routes
        .iter()
        .map(|r| RouteStatus {
            path: r.config.path.clone(),
            kind: r.config.kind.name(),
            ..RouteStatus::default()
        })
        .collect();
    for conn in conns {
        states.total += 1;
        match &conn.state {
            ConnState::Request | ConnState::ProxyHeader(_) | ConnState::RequestBody { .. } => {
                states.http += 1
            }
            ConnState::FileBody { .. } => states.file += 1,
            ConnState::WebSocket(session) => {
                states.websocket += 1;
                if let Some(i) = routes.iter().position(|r| Rc::ptr_eq(r, &session.route)) {
                    per_route[i].connections += 1;
                }
            }
            ConnState::Closing | ConnState::Draining => states.closing += 1,
        }
    }
    (states, per_route)
}

fn totals(stats: &Stats) -> Totals {
    Totals {
        accepted: stats.accepted,
        refused: stats.refused,
        handshakes: stats.handshakes,
        handshake_failures: stats.handshake_failures,
        http_requests: stats.http_requests,
        messages_in: stats.messages_in,
        messages_out: stats.messages_out,
        bytes_in: stats.bytes_in,
        bytes_out: stats.bytes_out,
        slow_consumer_closes: stats.slow_consumer_closes,
        dropped_messages: stats.dropped_messages,
    }
}

/// `now - before` per code, leaving out codes with no new closes.
fn difference(now: &BTreeMap<u16, u64>, before: &BTreeMap<u16, u64>) -> BTreeMap<u16, u64> {
    now.iter()
        .filter_map(|(&code, &n)| {
            let new = n.saturating_sub(before.get(&code).copied().unwrap_or(0));
            (new > 0).then_some((code, new))
        })
        .collect()
}

fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_interval_and_closes_the_window() {
        let t0 = Instant::now();
        let mut probe = StatusProbe::new(t0);
        let mut stats = Stats::default();
        assert!(!probe.due(t0));
        probe.unwatched(t0, &stats);
        stats.messages_in = 500;
        stats.closes_sent.insert(1001, 2);
        let t1 = t0 + Duration::from_millis(500);
        let first = probe.snapshot(t1, &stats, std::iter::empty(), &[]);
        assert_eq!(first.rates.messages_in_per_sec, 1000.0);
        assert_eq!(first.closes_last_minute.window_secs, 0.0);
        assert!(probe.timing_turns());
        probe.record_turn(Duration::from_micros(40));
        stats.closes_sent.insert(1001, 5);
        stats.closes_received.insert(1000, 1);
        let t2 = t1 + Duration::from_secs(1);
        let second = probe.snapshot(t2, &stats, std::iter::empty(), &[]);
        assert_eq!(second.rates.messages_in_per_sec, 0.0);
        assert_eq!(second.closes_last_minute.sent.get(&1001), Some(&3));
        assert_eq!(second.closes_last_minute.received.get(&1000), Some(&1));
        assert_eq!(second.closes_last_minute.window_secs, 1.0);
        assert_eq!(second.loop_turns.turns, 1);
        assert!(second.rss_bytes > 0 && second.open_fds > 0);
        // Past a minute the oldest marks fall out of the window.
        let t3 = t2 + Duration::from_secs(61);
        let later = probe.snapshot(t3, &stats, std::iter::empty(), &[]);
        assert!(later.closes_last_minute.sent.is_empty());
        assert_eq!(later.closes_last_minute.window_secs, 61.0);
        probe.unwatched(t3, &stats);
        assert!(!probe.timing_turns());
    }
}

//! Plain counters the reactor keeps: connections, messages, bytes, closes by code,
//! timeouts, refusals by cause, loop turn durations. Read by the shutdown
//! summary, status snapshots and `/metrics`.
//!
//! Owns the numbers only. It must never do I/O or take time on the hot path
//! beyond an integer add.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Upper bounds, in seconds, of the loop-turn histogram's buckets (then +Inf).
pub const TURN_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// Event-loop turn durations in fixed buckets, as Prometheus histograms count them.
#[derive(Debug, Default, Clone)]
pub struct TurnHistogram {
    /// Per bucket of [`TURN_BUCKETS`], then one for longer turns (not cumulative).
    pub counts: [u64; TURN_BUCKETS.len() + 1],
    pub sum_secs: f64,
    pub count: u64,
}

impl TurnHistogram {
    pub fn record(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = TURN_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(TURN_BUCKETS.len());
        self.counts[i] += 1;
        self.sum_secs += secs;
        self.count += 1;
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Connections open now (a gauge).
    pub open: u64,
    pub accepted: u64,
    pub refused: u64,
    pub handshakes: u64,
    pub handshake_failures: u64,
    pub http_requests: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub protocol_errors: u64,
    pub handshake_timeouts: u64,
    pub ping_timeouts: u64,
    pub close_timeouts: u64,
    pub slow_consumer_closes: u64,
    pub dropped_messages: u64,
    /// Close codes received from peers.
    pub closes_received: BTreeMap<u16, u64>,
    /// Close codes we sent first (errors, policy, shutdown).
    pub closes_sent: BTreeMap<u16, u64>,
    /// Upgrades refused by policy or by a route's handler, by cause label.
    pub refused_by: BTreeMap<&'static str, u64>,
    /// Requests that could not be parsed or were not valid upgrades.
    pub bad_requests: u64,
    /// Times accepting paused because file descriptors ran out.
    pub accept_pauses: u64,
    /// TLS sessions that failed before their handshake finished.
    pub tls_handshake_failures: u64,
    /// SIGHUP certificate reloads that took effect, and that were refused.
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// WebSockets closed (1008) for passing `max_messages_per_sec`.
    pub rate_limited_closes: u64,
    /// Bridge backends (programs, TCP services) that could not be started or reached.
    pub backend_failures: u64,
    /// Loop turns, timed while metrics are served.
    pub turns: TurnHistogram,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted {} refused {} handshakes {} failed {} http {} | messages in {} out {} | bytes in {} out {} | \
             protocol errors {} | timeouts handshake {} ping {} close {} | slow consumers closed {} dropped msgs {} | \
             closes received {:?} sent {:?}",
            self.accepted,
            self.refused,
            self.handshakes,
            self.handshake_failures,
            self.http_requests,
            self.messages_in,
            self.messages_out,
            self.bytes_in,
            self.bytes_out,
            self.protocol_errors,
            self.handshake_timeouts,
            self.ping_timeouts,
            self.close_timeouts,
            self.slow_consumer_closes,
            self.dropped_messages,
            self.closes_received,
            self.closes_sent
        )
    }
}

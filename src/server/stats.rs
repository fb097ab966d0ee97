//! Plain counters the reactor keeps: connections, messages, bytes, closes by code,
//! timeouts. Read by the shutdown summary (and later a metrics endpoint).
//!
//! Owns the numbers only. It must never do I/O or take time on the hot path
//! beyond an integer add.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Default, Clone)]
pub struct Stats {
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

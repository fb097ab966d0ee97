//! The config values the loop uses, converted once into its units (ticks, byte
//! counts, core limits).
//!
//! Owns that conversion only. It must never be changed by a connection: every
//! driver reads the same settings.

use crate::config::{Config, SlowConsumerPolicy};
use crate::core::{Limits, RequestLimits};
use crate::server::timers::{Tick, TimerWheel};

#[derive(Debug, Clone)]
pub struct Settings {
    pub request_limits: RequestLimits,
    pub ws_limits: Limits,
    pub max_connections: usize,
    pub max_send_buffer: usize,
    pub read_pause: usize,
    pub slow_consumer: SlowConsumerPolicy,
    pub handshake_ticks: Tick,
    /// 0: pings disabled.
    pub ping_interval_ticks: Tick,
    pub ping_timeout_ticks: Tick,
    pub close_ticks: Tick,
    pub shutdown_ticks: Tick,
    /// 0: close the listeners at once on SIGTERM.
    pub drain_delay_ticks: Tick,
    /// A metrics listener is configured: loop turns are timed.
    pub metrics: bool,
    /// `/healthz` and `/readyz` are answered on the main listeners too.
    pub health_on_main: bool,
}

impl Settings {
    pub fn new(config: &Config, max_connections: usize) -> Settings {
        let t = &config.timeouts;
        let l = &config.limits;
        Settings {
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
            drain_delay_ticks: if t.drain_delay.is_zero() {
                0
            } else {
                TimerWheel::ticks_for(t.drain_delay)
            },
            metrics: config.metrics.listen.is_some(),
            health_on_main: config.metrics.health_on_main,
        }
    }
}

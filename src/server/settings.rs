//! The config values the loop uses, converted once into its units (ticks, byte
//! counts, core limits).
//!
//! Owns that conversion only. It must never be changed by a connection: every
//! driver reads the same settings.

use crate::config::{Cidr, Config, ProxyProtocol, SlowConsumerPolicy};
use crate::core::{Limits, RequestLimits};
use crate::server::per_ip;
use crate::server::timers::{Tick, TimerWheel, TICK};

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
    /// Client addresses are kept per connection (limits per address, PROXY
    /// headers or trusted proxies are configured).
    pub track_clients: bool,
    pub per_ip: per_ip::Limits,
    pub trusted_proxies: Vec<Cidr>,
    /// Messages per second one WebSocket may send; 0: no limit.
    pub max_messages_per_sec: u32,
    /// Ticks in one second (the message-rate window).
    pub ticks_per_sec: Tick,
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
            track_clients: l.max_connections_per_ip != 0
                || l.handshakes_per_ip_per_sec > 0.0
                || !config.server.trusted_proxies.is_empty()
                || config
                    .server
                    .listen
                    .iter()
                    .chain(&config.server.listen_tls)
                    .any(|a| a.proxy_protocol != ProxyProtocol::Off),
            per_ip: per_ip::Limits {
                max_open: l.max_connections_per_ip,
                refill_per_tick: l.handshakes_per_ip_per_sec * TICK.as_secs_f64(),
                burst: f64::from(l.handshake_burst_per_ip),
                max_idle: l.max_tracked_ips,
            },
            trusted_proxies: config.server.trusted_proxies.clone(),
            max_messages_per_sec: l.max_messages_per_sec,
            ticks_per_sec: TimerWheel::ticks_for(std::time::Duration::from_secs(1)).max(1),
        }
    }
}

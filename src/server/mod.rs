//! The daemon: raises the fd limit, binds the listeners, logs the start line, runs
//! the reactor and logs the final counters.
//!
//! Owns start-up and the order of things at start. It must never hold
//! per-connection logic: that is the reactor's.

pub mod activation;
pub mod backplane;
pub mod bridge;
pub mod certs;
pub mod client_addr;
pub mod connection;
pub mod deadlines;
pub mod driver;
pub mod fdlimit;
mod heap_trim;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod per_ip;
pub mod pool;
pub mod process_usage;
pub mod proxy_header;
pub mod reactor;
pub mod reload;
mod request;
pub mod session;
pub mod settings;
pub mod stats;
pub mod status_probe;
pub mod supervisor;
pub mod tail;
pub mod timers;
pub mod tls;
pub mod token;
pub mod transport;

use std::sync::Arc;

use log::{info, warn};

use crate::app::App;
use crate::config::Config;
use listener::ListenerKind;
use reactor::Reactor;
use stats::Stats;

/// Reads the config file again for SIGHUP: the config (with the command
/// line's overrides applied) and its TLS setup, or an error naming file, line
/// and key.
pub type ConfigSource =
    Box<dyn Fn() -> Result<(Config, Option<Arc<rustls::ServerConfig>>), String>>;

/// The most connections the fd limit and `max_connections` allow.
pub fn connection_limit(configured: usize, ceiling: usize) -> usize {
    match configured {
        0 => ceiling,
        n => n.min(ceiling),
    }
}

/// Runs the daemon until shutdown, with `tls` (built by [`certs::server_config`])
/// for the `listen_tls` addresses; `source` re-reads the config on SIGHUP
/// (`None`: built-in defaults, nothing to reload); `on_started` runs once the
/// start line is logged (a worker tells its supervisor it is up). Errors are
/// start-up failures, worded for an operator.
pub fn serve(
    config: &Config,
    tls: Option<Arc<rustls::ServerConfig>>,
    source: Option<ConfigSource>,
    on_started: impl FnOnce(),
) -> Result<Stats, String> {
    let limit = fdlimit::raise_to_hard_limit().map_err(|e| format!("getrlimit: {e}"))?;
    let ceiling = limit.connection_ceiling();
    if config.server.max_connections > ceiling {
        warn!(
            "max_connections {} is over what the fd limit allows; using {ceiling}",
            config.server.max_connections
        );
    }
    let max_connections = connection_limit(config.server.max_connections, ceiling);
    let app = App::new(config)?;
    let inherited = activation::inherited_listeners()?;
    if inherited.iter().any(|l| l.kind == ListenerKind::Tls) && tls.is_none() {
        return Err("systemd passed a socket named \"tls\" but there is no [tls] table".into());
    }
    let activated = !inherited.is_empty();
    let bound = reload::rebind(config, tls.as_ref(), inherited).map_err(|(_, e)| e)?;
    if activated {
        info!("socket activation: serving the listeners systemd passed");
    }
    // The loop (and its signal handler) exists before the first line that says
    // we are up, so a SIGTERM sent on seeing it is always handled.
    let mut lines = Vec::new();
    for l in &bound.listeners {
        let local = l
            .socket
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?;
        lines.push(match l.kind {
            ListenerKind::Plain => format!("listening on {local}"),
            ListenerKind::Tls => format!("listening on {local} (TLS: wss://, https://)"),
            ListenerKind::Metrics => format!("metrics on {local} (/metrics, /healthz, /readyz)"),
        });
    }
    let reactor = Reactor::new(config, bound.listeners, app, ceiling, source)
        .map_err(|e| format!("event loop: {e}"))?;
    for line in lines {
        info!("{line}");
    }
    let routes: Vec<String> = config
        .routes
        .iter()
        .map(|r| format!("{} ({})", r.path, r.kind.name()))
        .collect();
    info!(
        "wsd {} started: max_connections {max_connections} (fd limit soft {} hard {}), routes [{}], static {}, \
         max_message_bytes {}, max_send_buffer_bytes {}, ping_interval {:?}",
        env!("CARGO_PKG_VERSION"),
        limit.soft,
        limit.hard,
        routes.join(", "),
        if config.static_files.enabled { config.static_files.root.display().to_string() } else { "off".into() },
        config.limits.max_message_bytes,
        config.limits.max_send_buffer_bytes,
        config.timeouts.ping_interval
    );
    on_started();
    let stats = reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    info!("stopped: {stats}");
    Ok(stats)
}

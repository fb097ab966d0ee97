//! The daemon: raises the fd limit, binds the listeners, logs the start line, runs
//! the reactor and logs the final counters.
//!
//! Owns start-up and the order of things at start. It must never hold
//! per-connection logic: that is the reactor's.

pub mod certs;
pub mod connection;
pub mod deadlines;
pub mod driver;
pub mod fdlimit;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod process_usage;
pub mod reactor;
mod request;
pub mod session;
pub mod settings;
pub mod stats;
pub mod status_probe;
pub mod timers;
pub mod tls;
pub mod token;
pub mod transport;

use std::sync::Arc;

use log::{info, warn};

use crate::app::App;
use crate::config::Config;
use listener::Listener;
use reactor::Reactor;
use stats::Stats;

/// Runs the daemon until shutdown, with `tls` (built by [`certs::server_config`])
/// for the `listen_tls` addresses. Errors are start-up failures, worded for an operator.
pub fn serve(config: &Config, tls: Option<Arc<rustls::ServerConfig>>) -> Result<Stats, String> {
    let limit = fdlimit::raise_to_hard_limit().map_err(|e| format!("getrlimit: {e}"))?;
    let ceiling = limit.connection_ceiling();
    let max_connections = match config.server.max_connections {
        0 => ceiling,
        n if n > ceiling => {
            warn!("max_connections {n} is over what the fd limit allows; using {ceiling}");
            ceiling
        }
        n => n,
    };
    let app = App::new(config)?;
    let mut listeners = Vec::new();
    let mut locals = Vec::new();
    let plain = config.server.listen.iter().map(|a| (a.0, false));
    let secure = config.server.listen_tls.iter().map(|a| (a.0, true));
    for (addr, with_tls) in plain.chain(secure) {
        let tls = match (with_tls, &tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(Arc::clone(tls)),
            (true, None) => return Err(format!("{addr}: listen_tls needs [tls] certificates")),
        };
        let socket = listener::bind(addr, config.server.backlog)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = socket
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?;
        locals.push((local, with_tls));
        listeners.push(Listener {
            socket,
            tls,
            admin: false,
        });
    }
    let mut metrics_local = None;
    if let Some(addr) = config.metrics.listen.as_ref().map(|a| a.0) {
        let socket = listener::bind(addr, config.server.backlog)
            .map_err(|e| format!("cannot listen on {addr} (metrics): {e}"))?;
        metrics_local = Some(
            socket
                .local_addr()
                .map_err(|e| format!("local_addr: {e}"))?,
        );
        listeners.push(Listener {
            socket,
            tls: None,
            admin: true,
        });
    }
    // The loop (and its signal handler) exists before the first line that says
    // we are up, so a SIGTERM sent on seeing it is always handled.
    let reactor = Reactor::new(config, listeners, app, max_connections)
        .map_err(|e| format!("event loop: {e}"))?;
    for (local, tls) in locals {
        if tls {
            info!("listening on {local} (TLS: wss://, https://)");
        } else {
            info!("listening on {local}");
        }
    }
    if let Some(local) = metrics_local {
        info!("metrics on {local} (/metrics, /healthz, /readyz)");
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
    let stats = reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    info!("stopped: {stats}");
    Ok(stats)
}

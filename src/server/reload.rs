//! What SIGHUP changes besides the app: the listening sockets a reloaded
//! config asks for (kept when their address and kind stay, bound when new,
//! closed when gone), and the one log line that says what changed.
//!
//! Owns the diff between two configs and the rebinding. It must never touch a
//! connection: live connections keep their route, their core limits and their
//! socket whatever the new config says. A failure to bind leaves every old
//! listener as it was.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Config, ListenAddr, ProxyProtocol};
use crate::server::listener::{self, Listener, ListenerKind};
use crate::server::supervisor;

/// The listeners `config` asks for, in start-up order: plain, TLS, metrics,
/// each with whether its connections start with a PROXY header.
pub fn wanted(config: &Config) -> Vec<(SocketAddr, ListenerKind, ProxyProtocol)> {
    let with = |kind| move |a: &ListenAddr| (a.addr, kind, a.proxy_protocol);
    let plain = config.server.listen.iter().map(with(ListenerKind::Plain));
    let secure = config.server.listen_tls.iter().map(with(ListenerKind::Tls));
    let metrics = config
        .metrics
        .listen
        .iter()
        .map(|a| (a.addr, ListenerKind::Metrics, ProxyProtocol::Off));
    plain.chain(secure).chain(metrics).collect()
}

/// What a rebind did, for the log.
#[derive(Debug, Default)]
pub struct Rebound {
    pub listeners: Vec<Listener>,
    pub opened: Vec<String>,
    pub closed: Vec<String>,
}

/// Builds the listener set `config` asks for from `old`: a listener whose
/// configured address and kind stay is kept (a TLS one takes `tls` for new
/// handshakes), a new one is bound, the rest are closed when dropped. If any
/// new address cannot be bound, `old` comes back untouched with the error.
pub fn rebind(
    config: &Config,
    tls: Option<&Arc<rustls::ServerConfig>>,
    old: Vec<Listener>,
) -> Result<Rebound, (Vec<Listener>, String)> {
    // Kinds systemd provides are not bound from the config.
    let activated: Vec<ListenerKind> = old.iter().filter(|l| l.inherited).map(|l| l.kind).collect();
    let wanted: Vec<_> = wanted(config)
        .into_iter()
        .filter(|(_, kind, _)| !activated.contains(kind))
        .collect();
    let mut fresh = Vec::new();
    for &(addr, kind, _) in &wanted {
        if old.iter().any(|l| l.addr == addr && l.kind == kind) {
            continue;
        }
        if kind == ListenerKind::Tls && tls.is_none() {
            return Err((old, format!("{addr}: listen_tls needs [tls] certificates")));
        }
        match listener::bind(addr, config.server.backlog, supervisor::in_worker()) {
            Ok(socket) => fresh.push((addr, kind, socket)),
            Err(e) => return Err((old, format!("cannot listen on {addr}: {e}"))),
        }
    }
    let mut out = Rebound::default();
    let (inherited, old): (Vec<Listener>, Vec<Listener>) =
        old.into_iter().partition(|l| l.inherited);
    for mut listener in inherited {
        if listener.kind == ListenerKind::Tls {
            listener.tls = tls.cloned();
        }
        out.listeners.push(listener);
    }
    let mut old: Vec<Option<Listener>> = old.into_iter().map(Some).collect();
    for (addr, kind, proxy) in wanted {
        let kept = old
            .iter_mut()
            .find(|l| l.as_ref().is_some_and(|l| l.addr == addr && l.kind == kind))
            .and_then(Option::take);
        let mut listener = match kept {
            Some(listener) => listener,
            None => {
                let Some(i) = fresh.iter().position(|(a, k, _)| *a == addr && *k == kind) else {
                    continue;
                };
                let (addr, kind, socket) = fresh.swap_remove(i);
                out.opened.push(describe(&socket, addr, kind));
                Listener {
                    socket,
                    addr,
                    kind,
                    proxy,
                    tls: None,
                    inherited: false,
                }
            }
        };
        if kind == ListenerKind::Tls {
            listener.tls = tls.cloned();
        }
        listener.proxy = proxy;
        out.listeners.push(listener);
    }
    for gone in old.into_iter().flatten() {
        out.closed
            .push(describe(&gone.socket, gone.addr, gone.kind));
    }
    Ok(out)
}

fn describe(socket: &mio::net::TcpListener, addr: SocketAddr, kind: ListenerKind) -> String {
    let local = socket.local_addr().unwrap_or(addr);
    match kind {
        ListenerKind::Plain => local.to_string(),
        ListenerKind::Tls => format!("{local} (TLS)"),
        ListenerKind::Metrics => format!("{local} (metrics)"),
    }
}

/// What differs between two configs, as short phrases for the reload's log
/// line (empty: nothing that matters changed).
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for route in &new.routes {
        match old.routes.iter().find(|r| r.path == route.path) {
            None => out.push(format!("route {} added", route.path)),
            Some(r) if r != route => out.push(format!("route {} changed", route.path)),
            Some(_) => {}
        }
    }
    for route in &old.routes {
        if !new.routes.iter().any(|r| r.path == route.path) {
            out.push(format!("route {} removed", route.path));
        }
    }
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    for (name, changed) in [
        ("limits", differs(&old.limits, &new.limits)),
        ("timeouts", differs(&old.timeouts, &new.timeouts)),
        ("users", differs(&old.users, &new.users)),
        ("static", differs(&old.static_files, &new.static_files)),
        ("log", differs(&old.log, &new.log)),
        ("tls", differs(&old.tls, &new.tls)),
        (
            "max_connections",
            old.server.max_connections != new.server.max_connections,
        ),
    ] {
        if changed {
            out.push(format!("{name} changed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ListenAddr, RouteKind};

    fn config(listen: &[&str], metrics: Option<&str>) -> Config {
        let mut c = Config::builtin();
        c.server.listen = listen
            .iter()
            .map(|a| ListenAddr::plain(a.parse().unwrap()))
            .collect();
        c.metrics.listen = metrics.map(|a| ListenAddr::plain(a.parse().unwrap()));
        c
    }

    #[test]
    fn kept_listeners_keep_their_socket_and_a_failed_bind_changes_nothing() {
        let first = config(&["127.0.0.1:0"], None);
        let start = rebind(&first, None, Vec::new()).unwrap();
        assert_eq!((start.listeners.len(), start.opened.len()), (1, 1));
        let local = start.listeners[0].socket.local_addr().unwrap();

        let second = config(&["127.0.0.1:0"], Some("127.0.0.1:0"));
        let grown = rebind(&second, None, start.listeners).unwrap();
        assert_eq!(grown.listeners.len(), 2);
        assert_eq!(
            grown.listeners[0].socket.local_addr().unwrap(),
            local,
            "kept, not rebound"
        );
        assert_eq!(grown.opened.len(), 1);
        assert!(grown.opened[0].ends_with("(metrics)"));

        // The metrics listener's own port is taken by itself: binding it again
        // as a plain listener fails, and everything stays as it was.
        let taken = grown.listeners[1].socket.local_addr().unwrap().to_string();
        let third = config(&["127.0.0.1:0", &taken], Some("127.0.0.1:0"));
        let (back, error) = rebind(&third, None, grown.listeners).unwrap_err();
        assert_eq!(back.len(), 2);
        assert!(error.contains(&taken), "{error}");

        let fourth = config(&["127.0.0.1:0"], None);
        let shrunk = rebind(&fourth, None, back).unwrap();
        assert_eq!((shrunk.listeners.len(), shrunk.closed.len()), (1, 1));
    }

    #[test]
    fn changes_name_routes_and_sections() {
        let old = Config::builtin();
        let mut new = Config::builtin();
        new.routes.retain(|r| r.path != "/chat");
        let mut status = new.routes[0].clone();
        status.path = "/status".into();
        status.kind = RouteKind::Status;
        new.routes.push(status);
        new.routes[0].origins = vec!["https://a.example".into()];
        new.limits.max_message_bytes += 1;
        assert_eq!(
            changes(&old, &new),
            vec![
                "route /echo changed",
                "route /status added",
                "route /chat removed",
                "limits changed"
            ]
        );
        assert!(changes(&old, &Config::builtin()).is_empty());
    }
}

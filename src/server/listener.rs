//! Listening sockets: SO_REUSEADDR, IPv6-only for IPv6 addresses, a configured
//! backlog, non-blocking, handed to mio; plain, or with the TLS configuration
//! its connections are accepted with.
//!
//! Owns socket setup only. It must never accept connections: the reactor does.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ProxyProtocol;

/// Binds and listens on `addr` with `backlog`.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// What a listener's connections are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `listen`: WebSockets and plain HTTP.
    Plain,
    /// `listen_tls`: the same over TLS.
    Tls,
    /// `[metrics] listen`: `/metrics` and the health paths only; it stays
    /// open while draining.
    Metrics,
}

/// A bound listening socket and, for `listen_tls` addresses, its TLS setup.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    /// The address as configured (the port may be 0; `socket` knows the real one).
    pub addr: SocketAddr,
    pub kind: ListenerKind,
    /// Whether its connections start with a PROXY protocol header.
    pub proxy: ProxyProtocol,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Handed over by systemd (socket activation): kept across reloads.
    pub inherited: bool,
}

impl Listener {
    /// Whether its connections are the operator's (metrics and health only).
    pub fn admin(&self) -> bool {
        self.kind == ListenerKind::Metrics
    }
}

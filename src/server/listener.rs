//! Listening sockets: SO_REUSEADDR (and SO_REUSEPORT in a worker of a
//! multi-worker daemon), IPv6-only for IPv6 addresses, a configured backlog,
//! non-blocking, handed to mio; plain, or with the TLS configuration its
//! connections are accepted with.
//!
//! Owns socket setup only. It must never accept connections (the reactor
//! does), nor set SO_REUSEPORT unless asked: a second daemon started by
//! mistake on the same port must still fail to bind.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ProxyProtocol;

/// Binds and listens on `addr` with `backlog`. `reuse_port` (only in a worker
/// of `[server] workers` > 1) lets the other workers listen on the same
/// address, the kernel spreading connections between them.
pub fn bind(addr: SocketAddr, backlog: u32, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
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

//! Listening sockets: SO_REUSEADDR, IPv6-only for IPv6 addresses, a configured
//! backlog, non-blocking, handed to mio; plain, or with the TLS configuration
//! its connections are accepted with.
//!
//! Owns socket setup only. It must never accept connections: the reactor does.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

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

/// A bound listening socket and, for `listen_tls` addresses, its TLS setup.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The `[metrics]` listener: its connections get `/metrics` and the health
    /// paths only, and it stays open while draining.
    pub admin: bool,
}

//! The byte stream under one connection: plain TCP, or TLS over TCP
//! (`tls.rs`). Reads into the caller's buffer, writes from the outbox, says
//! whether it needs write readiness, and closes its write side properly.
//!
//! Owns the socket and its mio registration. It must never look at the bytes it
//! carries (HTTP and frames are the driver's and the core's) and never blocks.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::server::outbox::{Flushed, Outbox};
use crate::server::tls::TlsSession;

#[derive(Debug)]
pub struct Transport {
    tcp: TcpStream,
    /// WRITABLE interest is registered.
    write_interest: bool,
    /// The TLS session over `tcp`, for connections accepted on a TLS listener.
    /// Boxed: a session is kilobytes, and a plain connection pays one pointer.
    tls: Option<Box<TlsSession>>,
}

impl Transport {
    /// A plain TCP connection just accepted (Nagle off: frames go out as queued).
    pub fn tcp(tcp: TcpStream) -> Transport {
        let _ = tcp.set_nodelay(true);
        Transport {
            tcp,
            write_interest: false,
            tls: None,
        }
    }

    /// A TLS connection just accepted; its handshake runs as bytes arrive.
    pub fn tls(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Transport> {
        let session = TlsSession::new(config)?;
        let mut transport = Transport::tcp(tcp);
        transport.tls = Some(Box::new(session));
        Ok(transport)
    }

    /// Registers for readability (edge-triggered).
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.tcp, token, Interest::READABLE)
    }

    /// Whether the transport itself has bytes for the socket (TLS records).
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// The peer's address (None if the socket no longer knows it).
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.tcp.peer_addr().ok().map(|a| a.ip().to_canonical())
    }

    /// The peer's address and port (the TCP peer, which may be a proxy).
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.peer_addr().ok()
    }

    /// The address and port the connection came in on.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether this is a TLS session whose handshake has not finished.
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.handshaking())
    }

    /// Asks for WRITABLE events while `pending` output waits (plus anything the
    /// transport itself still has to send), and stops asking once it is gone.
    pub fn want_write(&mut self, registry: &Registry, token: Token, pending: bool) {
        if pending == self.write_interest {
            return;
        }
        let interest = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if registry.reregister(&mut self.tcp, token, interest).is_ok() {
            self.write_interest = pending;
        }
    }

    /// Reads received bytes into `buf`; `Ok(0)` is the peer's end of stream.
    ///
    /// `trust_short_reads`: the peer is not known to have closed, so a socket
    /// read that returns fewer bytes than asked leaves the socket empty until
    /// the next readiness event (see [`Transport::short_read_drains`]).
    pub fn read(&mut self, buf: &mut [u8], trust_short_reads: bool) -> io::Result<usize> {
        match &mut self.tls {
            None => self.tcp.read(buf),
            Some(tls) => tls.read(&mut self.tcp, buf, trust_short_reads),
        }
    }

    /// Whether a `read` that returned fewer bytes than `buf` held means the
    /// socket is empty for now: true for plain TCP. Over TLS the count is of
    /// plaintext, not of socket bytes; the session keeps its own mark instead.
    pub fn short_read_drains(&self) -> bool {
        self.tls.is_none()
    }

    /// Writes queued output until it is all out or the socket would block.
    pub fn write_from(&mut self, outbox: &mut Outbox) -> io::Result<(Flushed, usize)> {
        match &mut self.tls {
            None => outbox.write_to(&mut self.tcp),
            Some(tls) => tls.write_from(&mut self.tcp, outbox),
        }
    }

    /// Writes `bytes` once, best effort, before the connection is dropped (a 503
    /// to a connection over the limit). Over TLS there is no session to say it
    /// in yet: the connection is just closed.
    pub fn write_and_forget(&mut self, bytes: &[u8]) {
        if self.tls.is_none() {
            let _ = self.tcp.write(bytes);
        }
    }

    /// Ends our side of the stream after the last byte: the peer reads EOF.
    pub fn close_write(&mut self) {
        match &mut self.tls {
            None => {
                let _ = self.tcp.shutdown(Shutdown::Write);
            }
            Some(tls) => tls.close_write(&mut self.tcp),
        }
    }
}

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
use crate::server::tls::TlsStream;

/// The stream kinds a connection can run over.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    /// Boxed: a TLS session is kilobytes, and plain connections must not pay for it.
    Tls(Box<TlsStream>),
}

#[derive(Debug)]
pub struct Transport {
    stream: Stream,
    /// WRITABLE interest is registered.
    write_interest: bool,
}

impl Transport {
    /// A plain TCP connection just accepted (Nagle off: frames go out as queued).
    pub fn tcp(stream: TcpStream) -> Transport {
        let _ = stream.set_nodelay(true);
        Transport {
            stream: Stream::Tcp(stream),
            write_interest: false,
        }
    }

    /// A TLS connection just accepted; its handshake runs as bytes arrive.
    pub fn tls(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Transport> {
        let _ = stream.set_nodelay(true);
        Ok(Transport {
            stream: Stream::Tls(Box::new(TlsStream::new(stream, config)?)),
            write_interest: false,
        })
    }

    fn tcp_mut(&mut self) -> &mut TcpStream {
        match &mut self.stream {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.tcp(),
        }
    }

    /// Registers for readability (edge-triggered).
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self.tcp_mut(), token, Interest::READABLE)
    }

    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.tcp_mut());
    }

    /// Whether the transport itself has bytes for the socket (TLS records).
    pub fn wants_write(&self) -> bool {
        match &self.stream {
            Stream::Tcp(_) => false,
            Stream::Tls(s) => s.wants_write(),
        }
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
        if registry.reregister(self.tcp_mut(), token, interest).is_ok() {
            self.write_interest = pending;
        }
    }

    /// Reads received bytes into `buf`; `Ok(0)` is the peer's end of stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    /// Writes queued output until it is all out or the socket would block.
    pub fn write_from(&mut self, outbox: &mut Outbox) -> io::Result<(Flushed, usize)> {
        match &mut self.stream {
            Stream::Tcp(s) => outbox.write_to(s),
            Stream::Tls(s) => s.write_from(outbox),
        }
    }

    /// Writes `bytes` once, best effort, before the connection is dropped (a 503
    /// to a connection over the limit). Over TLS there is no session to say it
    /// in yet: the connection is just closed.
    pub fn write_and_forget(&mut self, bytes: &[u8]) {
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = s.write(bytes);
            }
            Stream::Tls(_) => {}
        }
    }

    /// Ends our side of the stream after the last byte: the peer reads EOF.
    pub fn close_write(&mut self) {
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Stream::Tls(s) => s.close_write(),
        }
    }
}

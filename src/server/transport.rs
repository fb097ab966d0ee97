//! The byte stream under one connection: plain TCP today, TLS as a second
//! variant. Reads into the caller's buffer, writes from the outbox, says whether
//! it needs write readiness, and closes its write side properly.
//!
//! Owns the socket and its mio registration. It must never look at the bytes it
//! carries (HTTP and frames are the driver's and the core's) and never blocks.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::server::outbox::{Flushed, Outbox};

/// The stream kinds a connection can run over.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
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

    /// Registers for readability (edge-triggered).
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => registry.register(s, token, Interest::READABLE),
        }
    }

    pub fn deregister(&mut self, registry: &Registry) {
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = registry.deregister(s);
            }
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
        let result = match &mut self.stream {
            Stream::Tcp(s) => registry.reregister(s, token, interest),
        };
        if result.is_ok() {
            self.write_interest = pending;
        }
    }

    /// Reads received bytes into `buf`; `Ok(0)` is the peer's end of stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
        }
    }

    /// Writes queued output until it is all out or the socket would block.
    pub fn write_from(&mut self, outbox: &mut Outbox) -> io::Result<(Flushed, usize)> {
        match &mut self.stream {
            Stream::Tcp(s) => outbox.write_to(s),
        }
    }

    /// Writes `bytes` once, best effort, before the connection is dropped (a 503
    /// to a connection over the limit).
    pub fn write_and_forget(&mut self, bytes: &[u8]) {
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = s.write(bytes);
            }
        }
    }

    /// Ends our side of the stream after the last byte: the peer reads EOF.
    pub fn close_write(&mut self) {
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
        }
    }
}

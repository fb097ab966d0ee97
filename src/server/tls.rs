//! A TLS server session over one non-blocking TCP socket, driven from the
//! edge-triggered loop: `read_tls` until the socket would block,
//! `process_new_packets` after every read, plaintext handed out as it appears,
//! `write_tls` while rustls has records to send. No `complete_io`.
//!
//! Owns the rustls `ServerConnection` of one connection. It must never look at
//! the plaintext (HTTP and frames are the driver's and the core's), never loop
//! on a failed or closed session (errors end the connection after the alert is
//! sent), and never buffer plaintext without bound (rustls's own limits apply,
//! and the outbox is moved in only as rustls accepts it).

use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;

use crate::server::outbox::{Flushed, Outbox};
use crate::tls_io::{read_plaintext, write_records};

/// The TLS session over a connection's socket (which the transport owns and
/// lends to every call).
#[derive(Debug)]
pub struct TlsSession {
    tls: rustls::ServerConnection,
    /// The peer closed its side of the TCP stream.
    eof: bool,
    /// The last socket read came up short: nothing more until the next event.
    drained: bool,
}

impl TlsSession {
    pub fn new(config: Arc<rustls::ServerConfig>) -> io::Result<TlsSession> {
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsSession {
            tls,
            eof: false,
            drained: false,
        })
    }

    /// Reads plaintext into `buf` (see [`crate::tls_io::read_plaintext`]);
    /// with `trust_short_reads`, a short socket read ends this event's reading
    /// once the plaintext is used up.
    pub fn read(
        &mut self,
        tcp: &mut TcpStream,
        buf: &mut [u8],
        trust_short_reads: bool,
    ) -> io::Result<usize> {
        if !trust_short_reads {
            self.drained = false;
        }
        let drained = trust_short_reads.then_some(&mut self.drained);
        read_plaintext(&mut self.tls, tcp, &mut self.eof, drained, buf)
    }

    /// Encrypts queued output as rustls accepts it and writes the records.
    pub fn write_from(
        &mut self,
        tcp: &mut TcpStream,
        outbox: &mut Outbox,
    ) -> io::Result<(Flushed, usize)> {
        let mut wire = 0;
        loop {
            match self.write_records(tcp)? {
                (Flushed::All, n) => wire += n,
                (Flushed::Partial, n) => return Ok((Flushed::Partial, wire + n)),
            }
            if outbox.is_empty() {
                return Ok((Flushed::All, wire));
            }
            let taken = outbox.drain_into(|bytes| self.tls.writer().write(bytes))?;
            if taken == 0 {
                // rustls holds all it will (the handshake is not finished): the
                // rest waits for the handshake, which the read side drives.
                return Ok((Flushed::Partial, wire));
            }
        }
    }

    /// Whether encrypted records wait for the socket.
    /// Whether the handshake is still under way.
    pub fn handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends close_notify (best effort: the outbox is empty by now) and shuts
    /// the TCP write side.
    pub fn close_write(&mut self, tcp: &mut TcpStream) {
        self.tls.send_close_notify();
        let _ = self.write_records(tcp);
        let _ = tcp.shutdown(Shutdown::Write);
    }

    /// Writes TLS records until none are left or the socket would block.
    fn write_records(&mut self, tcp: &mut TcpStream) -> io::Result<(Flushed, usize)> {
        let (all, wire) = write_records(&mut self.tls, tcp)?;
        Ok((if all { Flushed::All } else { Flushed::Partial }, wire))
    }
}

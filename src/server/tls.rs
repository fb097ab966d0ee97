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

#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    /// The peer closed its side of the TCP stream.
    eof: bool,
}

impl TlsStream {
    pub fn new(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<TlsStream> {
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            tcp,
            tls,
            eof: false,
        })
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Reads plaintext into `buf` (see [`crate::tls_io::read_plaintext`]).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_plaintext(&mut self.tls, &mut self.tcp, &mut self.eof, buf)
    }

    /// Encrypts queued output as rustls accepts it and writes the records.
    pub fn write_from(&mut self, outbox: &mut Outbox) -> io::Result<(Flushed, usize)> {
        let mut wire = 0;
        loop {
            match self.write_records()? {
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
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends close_notify (best effort: the outbox is empty by now) and shuts
    /// the TCP write side.
    pub fn close_write(&mut self) {
        self.tls.send_close_notify();
        let _ = self.write_records();
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    /// Writes TLS records until none are left or the socket would block.
    fn write_records(&mut self) -> io::Result<(Flushed, usize)> {
        let (all, wire) = write_records(&mut self.tls, &mut self.tcp)?;
        Ok((if all { Flushed::All } else { Flushed::Partial }, wire))
    }
}

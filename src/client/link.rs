//! The byte stream under one client connection: plain TCP for `ws://`, a rustls
//! client session over TCP for `wss://`. Reads plaintext, accepts plaintext to
//! send, and pushes TLS records as the socket allows.
//!
//! Owns the socket and the TLS session. It must never look at the bytes it
//! carries; the connection decides what to send and reads what arrives.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;

use crate::tls_io::{read_plaintext, write_records};

#[derive(Debug)]
pub enum Link {
    Tcp(TcpStream),
    Tls(Box<TlsLink>),
}

#[derive(Debug)]
pub struct TlsLink {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    eof: bool,
}

impl Link {
    /// A TLS session to `server_name` (the certificate must be valid for it).
    pub fn tls(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<Link> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Link::Tls(Box::new(TlsLink {
            tcp,
            tls,
            eof: false,
        })))
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Link::Tcp(s) => s,
            Link::Tls(t) => &mut t.tcp,
        }
    }

    pub fn tcp_ref(&self) -> &TcpStream {
        match self {
            Link::Tcp(s) => s,
            Link::Tls(t) => &t.tcp,
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Tcp(s) => s.read(buf),
            Link::Tls(t) => read_plaintext(&mut t.tls, &mut t.tcp, &mut t.eof, None, buf),
        }
    }

    /// Accepts plaintext to send; `WouldBlock` when nothing could be taken now.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Tcp(s) => s.write(buf),
            Link::Tls(t) => {
                if !write_records(&mut t.tls, &mut t.tcp)?.0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = t.tls.writer().write(buf)?;
                write_records(&mut t.tls, &mut t.tcp)?;
                if n == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            }
        }
    }

    /// Pushes pending TLS records; `Ok(true)` when none are left.
    pub fn flush_records(&mut self) -> io::Result<bool> {
        match self {
            Link::Tcp(_) => Ok(true),
            Link::Tls(t) => Ok(write_records(&mut t.tls, &mut t.tcp)?.0),
        }
    }

    /// Whether TLS records wait for the socket.
    pub fn wants_write(&self) -> bool {
        match self {
            Link::Tcp(_) => false,
            Link::Tls(t) => t.tls.wants_write(),
        }
    }

    /// Ends the connection at once (close_notify first over TLS, best effort).
    pub fn shutdown(&mut self) {
        if let Link::Tls(t) = self {
            t.tls.send_close_notify();
            let _ = write_records(&mut t.tls, &mut t.tcp);
        }
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

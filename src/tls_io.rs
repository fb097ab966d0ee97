//! Moving TLS records between a rustls session and a non-blocking TCP socket,
//! the same way on both sides (the server transport and the client): records in
//! until plaintext appears or the socket would block, records out while rustls
//! has them. Never `complete_io`, never a loop on a failed session.
//!
//! Owns those two loops. It must never look at the plaintext or decide when to
//! read or write: its callers do, from their readiness events.

use std::io::{self, Read};

use mio::net::TcpStream;
use rustls::ConnectionCommon;

/// Reads plaintext into `buf`: what the session holds already, else records
/// from the socket until some plaintext appears or the socket would block
/// (`WouldBlock`). `Ok(0)` is the end of the stream (close_notify, or TCP EOF);
/// `eof` remembers the TCP end. A TLS error queues its alert, tries to send it,
/// and is returned: the caller ends the connection.
///
/// `drained`, when given, remembers that the last record read from the socket
/// got fewer bytes than rustls asked for: with edge-triggered readiness the
/// socket is empty until the next event, so once the plaintext is used up this
/// returns `WouldBlock` without the `recv` that would only say EAGAIN (and
/// forgets the mark, so the next event's call reads again).
pub fn read_plaintext<D>(
    tls: &mut ConnectionCommon<D>,
    tcp: &mut TcpStream,
    eof: &mut bool,
    mut drained: Option<&mut bool>,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // EOF without close_notify: the end of the stream all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if *eof {
            return Ok(0);
        }
        if let Some(drained) = drained.as_deref_mut() {
            if std::mem::take(drained) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let mut socket = MeasuredRead {
            tcp: &mut *tcp,
            asked: 0,
            got: 0,
        };
        match tls.read_tls(&mut socket) {
            Ok(0) => *eof = true,
            Ok(_) => {
                if let Some(drained) = drained.as_deref_mut() {
                    *drained = socket.got < socket.asked;
                }
            }
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            let _ = write_records(tls, tcp);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        // Handshake messages go out as soon as they exist.
        write_records(tls, tcp)?;
    }
}

/// The socket as rustls reads it, remembering how much the last read asked
/// for and got.
struct MeasuredRead<'a> {
    tcp: &'a mut TcpStream,
    asked: usize,
    got: usize,
}

impl Read for MeasuredRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.asked = buf.len();
        self.got = 0;
        let n = self.tcp.read(buf)?;
        self.got = n;
        Ok(n)
    }
}

/// Writes records until none are left (`Ok((true, n))`) or the socket would
/// block (`Ok((false, n))`); `n` is the bytes written.
pub fn write_records<D>(
    tls: &mut ConnectionCommon<D>,
    tcp: &mut TcpStream,
) -> io::Result<(bool, usize)> {
    let mut wire = 0;
    while tls.wants_write() {
        match tls.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => wire += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((false, wire)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((true, wire))
}

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
pub fn read_plaintext<D>(
    tls: &mut ConnectionCommon<D>,
    tcp: &mut TcpStream,
    eof: &mut bool,
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
        match tls.read_tls(tcp) {
            Ok(0) => *eof = true,
            Ok(_) => {}
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

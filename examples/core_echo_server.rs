//! A blocking echo server on `std::net` that drives wsd's sans-I/O core directly:
//! one thread per connection, no reactor, no wsd daemon code. It shows the whole
//! embedding contract in one page: parse the request head, answer the upgrade,
//! then loop read -> `handle_read` -> `poll_event` -> `poll_transmit` -> write.
//!
//! Run: `cargo run --example core_echo_server -- 127.0.0.1:9002`, then talk to it
//! with `cargo run --example core_echo_client -- 127.0.0.1:9002 hello`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use wsd::core::http::write_error_response;
use wsd::core::{
    parse_request, write_accept_response, Event, Limits, RequestLimits, State, WebSocket,
};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echo server on ws://{}/", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("connection: {e}");
            }
        });
    }
    Ok(())
}

fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut input = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    // 1. The opening handshake: read until the request head is complete.
    let upgrade = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
        match parse_request(&input, &RequestLimits::default()) {
            Ok(None) => continue,
            Ok(Some((request, used))) => {
                input.drain(..used);
                match request.websocket_upgrade() {
                    Ok(Some(upgrade)) => break upgrade,
                    Ok(None) => return refuse(&mut stream, "send an Upgrade: websocket request"),
                    Err(e) => {
                        let mut out = Vec::new();
                        write_error_response(&mut out, &e);
                        return stream.write_all(&out);
                    }
                }
            }
            Err(e) => {
                let mut out = Vec::new();
                write_error_response(&mut out, &e);
                return stream.write_all(&out);
            }
        }
    };
    let mut out = Vec::new();
    write_accept_response(&mut out, &upgrade, None, &[]);
    stream.write_all(&out)?;

    // 2. Frames: the one drive loop.
    let mut ws = WebSocket::server(Limits::default());
    loop {
        if !input.is_empty() || ws.state() != State::Closed {
            let result = ws.handle_read(&input);
            let mut out = Vec::new();
            while let Some(event) = ws.poll_event() {
                if let Event::Message(message) = event {
                    let _ = ws.send(message.kind, &message.data, &mut out);
                }
                // Pongs and close replies go out in the place of what they answer.
                ws.poll_transmit(&mut out);
            }
            // A failed connection's close frame comes last, after the replies.
            ws.poll_transmit(&mut out);
            stream.write_all(&out)?;
            match result {
                Ok(used) => {
                    input.drain(..used);
                }
                Err(e) => {
                    eprintln!("protocol error: {e} (closed with {})", e.close_code().0);
                    input.clear();
                }
            }
        }
        if ws.state() == State::Closed {
            // The server closes the TCP connection first (RFC 6455 7.1.1).
            return stream.shutdown(std::net::Shutdown::Both);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

fn refuse(stream: &mut TcpStream, why: &str) -> io::Result<()> {
    let mut out = Vec::new();
    wsd::core::http::write_closing_response(&mut out, 426, &[("Upgrade", "websocket")], why);
    stream.write_all(&out)
}

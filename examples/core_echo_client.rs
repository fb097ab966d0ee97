//! A blocking client on `std::net` that drives wsd's sans-I/O core directly: it
//! opens a WebSocket, sends each argument as a text message, prints the replies,
//! and closes with 1000. No wsd client code: only `wsd::core`.
//!
//! Run: `cargo run --example core_echo_client -- 127.0.0.1:9002 hello world`
//! against `cargo run --example core_echo_server` (or `wsd` itself, path `/echo`:
//! `WS_PATH=/echo cargo run --example core_echo_client -- 127.0.0.1:9001 hi`).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use wsd::core::{ClientHandshake, CloseCode, Event, Limits, MessageKind, State, WebSocket};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9002".into());
    let messages: Vec<String> = args.collect();
    let path = std::env::var("WS_PATH").unwrap_or_else(|_| "/".into());
    let mut stream = TcpStream::connect(&addr)?;

    // The handshake key and the masking-key seed MUST come from the OS's randomness.
    let mut key = [0u8; 16];
    let mut seed = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
    let handshake = ClientHandshake::new(key, Vec::new());
    let mut out = Vec::new();
    handshake.write_request(&mut out, &addr, &path, &[]);
    stream.write_all(&out)?;

    let mut input = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("closed during the handshake"));
        }
        input.extend_from_slice(&buf[..n]);
        match handshake.parse_response(&input) {
            Ok(None) => continue,
            Ok(Some((_, used))) => {
                input.drain(..used);
                break;
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
    }

    let mut ws = WebSocket::client(Limits::default(), seed);
    let mut out = Vec::new();
    for m in &messages {
        ws.send(MessageKind::Text, m.as_bytes(), &mut out)
            .map_err(io::Error::other)?;
    }
    stream.write_all(&out)?;
    let mut replies = 0;
    let mut closing = false;
    loop {
        let result = ws.handle_read(&input);
        let mut out = Vec::new();
        while let Some(event) = ws.poll_event() {
            match event {
                Event::Message(m) => {
                    replies += 1;
                    println!("{}", String::from_utf8_lossy(&m.data));
                }
                Event::Close(frame) => eprintln!("server closed: {frame:?}"),
                Event::Ping(_) | Event::Pong(_) => {}
            }
        }
        if replies == messages.len() && !closing {
            closing = true;
            let _ = ws.close(CloseCode::NORMAL, "done", &mut out);
        }
        ws.poll_transmit(&mut out);
        stream.write_all(&out)?;
        match result {
            Ok(used) => {
                input.drain(..used);
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
        if ws.state() == State::Closed {
            return Ok(());
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

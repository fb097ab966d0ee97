//! The sans-I/O RFC 6455 protocol core: bytes in, events and bytes out.
//!
//! Owns every protocol rule: the HTTP upgrade handshake (both sides), frame
//! encoding and decoding, masking, UTF-8 validation, reassembly and the closing
//! handshake. It must never own a socket, read a clock or spawn anything, so every
//! rule can be unit-tested and fuzzed without a network.
//!
//! It is a library: embed it under any I/O (blocking `std::net`, mio, an async
//! runtime, a test harness). `examples/core_echo_server.rs` and
//! `examples/core_echo_client.rs` show the whole contract over `std::net`. In
//! memory, a client core talking to a server core:
//!
//! ```
//! use wsd::core::{Event, Limits, MessageKind, WebSocket};
//!
//! let mut server = WebSocket::server(Limits::default());
//! // The seed MUST come from the OS's randomness in real use (getrandom).
//! let mut client = WebSocket::client(Limits::default(), [7; 32]);
//! let mut wire = Vec::new();
//! client.send(MessageKind::Text, b"hello", &mut wire).unwrap();
//!
//! // The one drive loop: read, then each event with the replies it caused.
//! let consumed = server.handle_read(&wire).unwrap();
//! assert_eq!(consumed, wire.len());
//! let mut out = Vec::new();
//! while let Some(event) = server.poll_event() {
//!     if let Event::Message(m) = event {
//!         server.send(m.kind, &m.data, &mut out).unwrap(); // echo
//!     }
//!     server.poll_transmit(&mut out);
//! }
//! server.poll_transmit(&mut out);
//!
//! client.handle_read(&out).unwrap();
//! let Some(Event::Message(echo)) = client.poll_event() else { panic!() };
//! assert_eq!(echo.text(), Some("hello"));
//! ```

pub mod client_handshake;
pub mod close;
pub mod close_code;
pub mod deflate;
pub mod encode;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod message;
pub mod utf8;
pub mod websocket;

#[cfg(test)]
mod tests;

pub use client_handshake::{Accepted, ClientHandshake};
pub use close::CloseFrame;
pub use close_code::CloseCode;
pub use encode::{encode_shared, encode_shared_run, Encoding, FrameHead, OwnedFrame, SharedFrame};
pub use error::{HandshakeError, ProtocolError};
pub use frame::{encode_frame, FrameHeader, OpCode};
pub use handshake::{accept_key, write_accept_response, Upgrade};
pub use http::{parse_request, Fields, Headers, Request, RequestLimits};
pub use message::{Message, MessageKind, MessageRef};
pub use websocket::{Echoed, Event, Limits, NotOpen, Role, State, WebSocket};

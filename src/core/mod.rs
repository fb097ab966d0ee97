//! The sans-I/O RFC 6455 protocol core: bytes in, events and bytes out.
//!
//! Owns every protocol rule: the HTTP upgrade handshake (both sides), frame
//! encoding and decoding, masking, UTF-8 validation, reassembly and the closing
//! handshake. It must never own a socket, read a clock or spawn anything, so every
//! rule can be unit-tested and fuzzed without a network.

pub mod client_handshake;
pub mod close;
pub mod close_code;
pub mod encode;
pub mod error;
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
pub use encode::{encode_shared, Encoding, FrameHead, OwnedFrame, SharedFrame};
pub use error::{HandshakeError, ProtocolError};
pub use frame::{encode_frame, FrameHeader, OpCode};
pub use handshake::{accept_key, write_accept_response, Upgrade};
pub use http::{parse_request, Headers, Request, RequestLimits};
pub use message::{Message, MessageKind};
pub use websocket::{Event, Limits, NotOpen, Role, State, WebSocket};

//! Errors of the protocol core: one variant per rule a peer can break.
//!
//! Owns the mapping from each violation to exactly one WebSocket close code
//! ([`ProtocolError`]) or one HTTP status ([`HandshakeError`]). It must never
//! describe I/O failures: sockets live in the reactor, not here.

use std::fmt;

use crate::core::close_code::CloseCode;

/// A frame or message from the peer broke RFC 6455 or a configured limit.
///
/// The caller MUST stop reading from the connection, flush the close frame the
/// core has queued (see `WebSocket::poll_transmit`) and then close the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1-3 set without an extension that defines them (§5.2), or RSV1 on a
    /// continuation or control frame under permessage-deflate. Close 1002.
    ReservedBitsSet { rsv: u8 },
    /// Opcode 3-7 or 11-15 (§5.2). Close 1002.
    ReservedOpcode(u8),
    /// A client sent an unmasked frame (§5.1). Close 1002.
    UnmaskedClientFrame,
    /// A server sent a masked frame (§5.1). Close 1002.
    MaskedServerFrame,
    /// A control frame with a payload over 125 bytes (§5.5). Close 1002.
    ControlFrameTooLong { len: u64 },
    /// A control frame without FIN (§5.5). Close 1002.
    FragmentedControlFrame,
    /// A 64-bit payload length with the most significant bit set (§5.2). Close 1002.
    LengthOutOfRange,
    /// A continuation frame while no fragmented message is open (§5.4). Close 1002.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open (§5.4). Close 1002.
    ExpectedContinuation,
    /// A close frame whose payload is exactly one byte (§5.5.1). Close 1002.
    CloseFrameOneByte,
    /// A close code that may not appear on the wire (§7.4). Close 1002.
    InvalidCloseCode(u16),
    /// A text message that is not valid UTF-8 (§8.1). Close 1007.
    InvalidUtf8,
    /// A close reason that is not valid UTF-8 (§5.5.1). Close 1007.
    InvalidUtf8InCloseReason,
    /// A frame longer than the configured maximum frame size. Close 1009.
    FrameTooBig { len: u64, max: u64 },
    /// A message (sum of its fragments) longer than the configured maximum, on
    /// the wire or once inflated. Close 1009.
    MessageTooBig { len: u64, max: u64 },
    /// A compressed message that is not valid DEFLATE data (RFC 7692 §8.2.2). Close 1007.
    InvalidCompressedData,
    /// No decompressor could be allocated for a compressed message. Close 1011.
    CompressionUnavailable,
}

impl ProtocolError {
    /// The close code this violation is answered with.
    pub fn close_code(&self) -> CloseCode {
        use ProtocolError::*;
        match self {
            ReservedBitsSet { .. }
            | ReservedOpcode(_)
            | UnmaskedClientFrame
            | MaskedServerFrame
            | ControlFrameTooLong { .. }
            | FragmentedControlFrame
            | LengthOutOfRange
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseFrameOneByte
            | InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
            InvalidUtf8 | InvalidUtf8InCloseReason | InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            FrameTooBig { .. } | MessageTooBig { .. } => CloseCode::TOO_BIG,
            CompressionUnavailable => CloseCode::INTERNAL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        match self {
            ReservedBitsSet { rsv } => write!(f, "reserved bits set ({rsv:#05b})"),
            ReservedOpcode(op) => write!(f, "reserved opcode {op}"),
            UnmaskedClientFrame => f.write_str("unmasked frame from client"),
            MaskedServerFrame => f.write_str("masked frame from server"),
            ControlFrameTooLong { len } => write!(f, "control frame of {len} bytes"),
            FragmentedControlFrame => f.write_str("fragmented control frame"),
            LengthOutOfRange => f.write_str("payload length with top bit set"),
            UnexpectedContinuation => f.write_str("continuation without a message"),
            ExpectedContinuation => f.write_str("new message inside a fragmented one"),
            CloseFrameOneByte => f.write_str("close payload of one byte"),
            InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            InvalidUtf8 => f.write_str("invalid UTF-8 in text message"),
            InvalidUtf8InCloseReason => f.write_str("invalid UTF-8 in close reason"),
            FrameTooBig { len, max } => write!(f, "frame of {len} bytes over limit {max}"),
            MessageTooBig { len, max } => write!(f, "message of {len} bytes over limit {max}"),
            InvalidCompressedData => f.write_str("invalid compressed data"),
            CompressionUnavailable => f.write_str("no decompressor available"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The opening handshake failed: a request (server side) or a response (client side)
/// broke RFC 6455 §4 or RFC 9112, or a configured limit.
///
/// On the server, the caller MUST answer with [`HandshakeError::status`] (see
/// `http::write_error_response`) and close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The request head grew past the configured maximum size. HTTP 431.
    RequestTooLarge { max: usize },
    /// The request has more header fields than allowed. HTTP 431.
    TooManyHeaders,
    /// The request head is not valid HTTP/1.x. HTTP 400.
    MalformedRequest(&'static str),
    /// A WebSocket upgrade with a method other than GET. HTTP 405 with `Allow: GET`.
    MethodNotAllowed,
    /// A WebSocket upgrade over HTTP/1.0. HTTP 400.
    HttpVersionTooOld,
    /// No `Host` header. HTTP 400.
    MissingHost,
    /// `Upgrade: websocket` without the `upgrade` token in `Connection`. HTTP 400.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` missing or not 16 bytes of base64. HTTP 400.
    InvalidKey,
    /// `Sec-WebSocket-Version` missing or not 13. HTTP 426 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// `Sec-WebSocket-Extensions` that breaks the header's grammar (§9.1). HTTP 400.
    /// (A well-formed offer the server cannot honour is declined, not refused.)
    InvalidExtensions(String),
    /// Client side: the response head is not valid HTTP/1.1.
    MalformedResponse(&'static str),
    /// Client side: the response head grew past the maximum size.
    ResponseTooLarge { max: usize },
    /// Client side: the server answered with a status other than 101.
    NotSwitchingProtocols { status: u16 },
    /// Client side: the 101 lacks `Upgrade: websocket` or `Connection: upgrade`.
    MissingUpgradeInResponse,
    /// Client side: `Sec-WebSocket-Accept` does not match our key.
    WrongAcceptKey,
    /// Client side: the server chose a subprotocol we did not offer.
    UnexpectedSubprotocol(String),
    /// Client side: the server's `Sec-WebSocket-Extensions` is malformed or
    /// answers with something we did not offer.
    UnexpectedExtensions(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        use HandshakeError::*;
        match self {
            RequestTooLarge { .. } | TooManyHeaders => 431,
            MethodNotAllowed => 405,
            UnsupportedVersion => 426,
            MalformedRequest(_)
            | HttpVersionTooOld
            | MissingHost
            | MissingConnectionUpgrade
            | InvalidKey
            | InvalidExtensions(_) => 400,
            // Client-side errors are never answered with a status; 502 is what a
            // proxy would say about such an upstream.
            MalformedResponse(_)
            | ResponseTooLarge { .. }
            | NotSwitchingProtocols { .. }
            | MissingUpgradeInResponse
            | WrongAcceptKey
            | UnexpectedSubprotocol(_)
            | UnexpectedExtensions(_) => 502,
        }
    }

    /// Extra response headers this error's status requires.
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::MethodNotAllowed => &[("Allow", "GET")],
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandshakeError::*;
        match self {
            RequestTooLarge { max } => write!(f, "request head over {max} bytes"),
            TooManyHeaders => f.write_str("too many header fields"),
            MalformedRequest(why) => write!(f, "malformed request: {why}"),
            MethodNotAllowed => f.write_str("WebSocket upgrade requires GET"),
            HttpVersionTooOld => f.write_str("WebSocket upgrade requires HTTP/1.1"),
            MissingHost => f.write_str("missing Host header"),
            MissingConnectionUpgrade => f.write_str("Connection header lacks 'upgrade'"),
            InvalidKey => f.write_str("Sec-WebSocket-Key is not 16 bytes of base64"),
            UnsupportedVersion => f.write_str("Sec-WebSocket-Version must be 13"),
            InvalidExtensions(why) => write!(f, "malformed Sec-WebSocket-Extensions: {why}"),
            MalformedResponse(why) => write!(f, "malformed response: {why}"),
            ResponseTooLarge { max } => write!(f, "response head over {max} bytes"),
            NotSwitchingProtocols { status } => write!(f, "server answered {status}, not 101"),
            MissingUpgradeInResponse => f.write_str("101 response lacks Upgrade/Connection"),
            WrongAcceptKey => f.write_str("Sec-WebSocket-Accept does not match the key"),
            UnexpectedSubprotocol(p) => write!(f, "server chose subprotocol {p:?} not offered"),
            UnexpectedExtensions(why) => write!(f, "bad Sec-WebSocket-Extensions answer: {why}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

//! WebSocket close status codes (RFC 6455 §7.4): the named codes and which of
//! them may appear on the wire.
//!
//! Owns the code values only. It must never parse payloads or decide when to
//! close; it depends on nothing else in the core, so errors and close frames can
//! both name codes without importing each other.

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// The purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// An endpoint is going away (server shutdown, page navigation, ping timeout).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved: "no status code was present". Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reserved: "closed abnormally". Never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// A message whose data does not match its type (text that is not UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// A policy was violated (e.g. a send buffer over its limit).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// A frame or message over the configured size limit.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// (Client) the server did not negotiate an extension the client requires.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// The server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame: 1000-1003, 1007-1014
    /// (1012-1014 are registered with IANA) and the application ranges 3000-4999.
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

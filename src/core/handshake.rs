//! The server side of the opening handshake (RFC 6455 §4.2): validating an upgrade
//! request and writing the 101 response.
//!
//! Owns the upgrade rules and the accept-key computation. It must never decide
//! policy (routes, origins, subprotocol choice, authentication): it exposes what
//! the client offered and the caller decides.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::core::error::HandshakeError;
use crate::core::extensions::{parse_extensions, ExtensionOffer};
use crate::core::http::{end_head, write_field, write_status_line, Headers, Request};

/// The GUID every accept key is derived with (§1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    String::from_utf8_lossy(&accept_bytes(key)).into_owned()
}

/// [`accept_key`] as its 28 base64 characters, on the stack.
fn accept_bytes(key: &str) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    let mut out = [0u8; 28];
    // A 20-byte digest encodes to exactly 28 characters: this cannot fail.
    let written = BASE64.encode_slice(sha.finalize(), &mut out);
    debug_assert_eq!(written, Ok(28));
    out
}

/// A valid WebSocket upgrade request's offer, for the caller to accept or reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// `Sec-WebSocket-Key` as sent (already checked to decode to 16 bytes).
    pub key: String,
    /// `Sec-WebSocket-Protocol` entries, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Every `Sec-WebSocket-Extensions` offer, in the client's order of preference.
    pub extensions: Vec<ExtensionOffer>,
}

impl Request {
    /// Classifies the request. `Ok(None)`: no WebSocket upgrade was asked for
    /// (a plain HTTP request for the caller). `Ok(Some(upgrade))`: a valid upgrade.
    /// `Err`: an upgrade that breaks §4.2.1, with the status to answer.
    pub fn websocket_upgrade(&self) -> Result<Option<Upgrade>, HandshakeError> {
        if !self.has_token("Upgrade", "websocket") {
            return Ok(None);
        }
        if self.method() != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if self.minor_version < 1 {
            return Err(HandshakeError::HttpVersionTooOld);
        }
        if self.header("Host").unwrap_or("").trim().is_empty() {
            return Err(HandshakeError::MissingHost);
        }
        if !self.has_token("Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        if self.header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = self
            .header("Sec-WebSocket-Key")
            .map(str::trim)
            .ok_or(HandshakeError::InvalidKey)?;
        // 24 characters decode to at most 18 bytes; a longer key is invalid
        // anyway, and fails here as a buffer too small.
        let mut raw = [0u8; 18];
        if !matches!(BASE64.decode_slice(key, &mut raw), Ok(16)) {
            return Err(HandshakeError::InvalidKey);
        }
        let extensions = parse_extensions(self.header_values("Sec-WebSocket-Extensions"))
            .map_err(|e| HandshakeError::InvalidExtensions(e.to_string()))?;
        Ok(Some(Upgrade {
            key: key.to_owned(),
            protocols: self
                .header_list("Sec-WebSocket-Protocol")
                .map(str::to_owned)
                .collect(),
            extensions,
        }))
    }
}

/// Appends the 101 response accepting `upgrade`, with the chosen subprotocol (which
/// MUST be one the client offered) and any extra headers.
pub fn write_accept_response(
    out: &mut Vec<u8>,
    upgrade: &Upgrade,
    protocol: Option<&str>,
    extra_headers: &[(&str, &str)],
) {
    // Written piece by piece into `out`: one handshake, no allocation here.
    write_status_line(out, 101);
    write_field(out, "Upgrade", b"websocket");
    write_field(out, "Connection", b"Upgrade");
    write_field(out, "Sec-WebSocket-Accept", &accept_bytes(&upgrade.key));
    if let Some(p) = protocol {
        write_field(out, "Sec-WebSocket-Protocol", p.as_bytes());
    }
    for (name, value) in extra_headers {
        write_field(out, name, value.as_bytes());
    }
    end_head(out);
}

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
use crate::core::http::{write_response_head, Headers, Request};

/// The GUID every accept key is derived with (§1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
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
        if self.method != "GET" {
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
        match BASE64.decode(key) {
            Ok(raw) if raw.len() == 16 => {}
            _ => return Err(HandshakeError::InvalidKey),
        }
        let extensions = parse_extensions(
            self.header_fields()
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
                .map(|h| h.value.as_str()),
        )
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
    let accept = accept_key(&upgrade.key);
    let mut headers: Vec<(&str, &str)> = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", &accept),
    ];
    if let Some(p) = protocol {
        headers.push(("Sec-WebSocket-Protocol", p));
    }
    headers.extend_from_slice(extra_headers);
    write_response_head(out, 101, &headers);
}

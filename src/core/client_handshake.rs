//! The client side of the opening handshake (RFC 6455 §4.1): building the upgrade
//! request and validating the server's 101 response.
//!
//! Owns the client's key, offered subprotocols and permessage-deflate offer. It
//! must never generate randomness itself: the caller passes the 16 random key
//! bytes in.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::core::deflate::{accept_answer, client_offer, DeflateParams};
use crate::core::error::HandshakeError;
use crate::core::extensions::parse_extensions;
use crate::core::handshake::accept_key;
use crate::core::http::{parse_error_text, Fields, Headers};

/// The largest response head a client accepts.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// A client's half of one opening handshake.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    /// permessage-deflate offered: `Some(no_context_takeover)`.
    deflate: Option<bool>,
}

/// What the server agreed to in its 101 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server chose, if any (always one we offered).
    pub protocol: Option<String>,
    /// permessage-deflate as the server answered it, if it accepted our offer.
    pub deflate: Option<DeflateParams>,
    /// Every header field of the response.
    pub headers: Fields,
}

impl Headers for Accepted {
    fn header_fields(&self) -> &Fields {
        &self.headers
    }
}

impl ClientHandshake {
    /// `key_bytes` MUST be freshly random for every handshake (§4.1).
    pub fn new(key_bytes: [u8; 16], protocols: Vec<String>) -> Self {
        ClientHandshake {
            key: BASE64.encode(key_bytes),
            protocols,
            deflate: None,
        }
    }

    /// Also offers permessage-deflate; with `no_context_takeover`, asks both
    /// sides to reset their contexts after every message (no memory held
    /// between messages).
    pub fn offer_deflate(mut self, no_context_takeover: bool) -> Self {
        self.deflate = Some(no_context_takeover);
        self
    }

    /// The `Sec-WebSocket-Key` this handshake sends.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends the upgrade request for `target` (path and query) on `host`.
    pub fn write_request(
        &self,
        out: &mut Vec<u8>,
        host: &str,
        target: &str,
        extra_headers: &[(String, String)],
    ) {
        let mut req = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.key
        );
        if !self.protocols.is_empty() {
            req.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                self.protocols.join(", ")
            ));
        }
        if let Some(no_context_takeover) = self.deflate {
            req.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                client_offer(no_context_takeover)
            ));
        }
        for (name, value) in extra_headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        out.extend_from_slice(req.as_bytes());
    }

    /// Parses and validates the server's response head from the front of `input`.
    /// `Ok(None)`: incomplete. `Ok(Some((accepted, n)))`: the head took `n` bytes and
    /// what follows is already WebSocket frames.
    pub fn parse_response(
        &self,
        input: &[u8],
    ) -> Result<Option<(Accepted, usize)>, HandshakeError> {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        let window = &input[..input.len().min(MAX_RESPONSE_HEAD)];
        let n = match resp.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if input.len() >= MAX_RESPONSE_HEAD => {
                return Err(HandshakeError::ResponseTooLarge {
                    max: MAX_RESPONSE_HEAD,
                })
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HandshakeError::MalformedResponse(parse_error_text(e))),
        };
        let status = resp.code.unwrap_or_default();
        let accepted = Accepted {
            protocol: None,
            deflate: None,
            headers: Fields::parsed(&[], resp.headers),
        };
        if status != 101 {
            return Err(HandshakeError::NotSwitchingProtocols { status });
        }
        if !accepted.has_token("Upgrade", "websocket")
            || !accepted.has_token("Connection", "upgrade")
        {
            return Err(HandshakeError::MissingUpgradeInResponse);
        }
        if accepted.header("Sec-WebSocket-Accept").map(str::trim) != Some(&accept_key(&self.key)) {
            return Err(HandshakeError::WrongAcceptKey);
        }
        let protocol = accepted
            .header("Sec-WebSocket-Protocol")
            .map(|p| p.trim().to_owned());
        if let Some(p) = &protocol {
            if !self.protocols.iter().any(|offered| offered == p) {
                return Err(HandshakeError::UnexpectedSubprotocol(p.clone()));
            }
        }
        let answered = parse_extensions(accepted.header_values("Sec-WebSocket-Extensions"))
            .map_err(|e| HandshakeError::UnexpectedExtensions(e.to_string()))?;
        let deflate = match self.deflate {
            None if answered.is_empty() => None,
            None => {
                return Err(HandshakeError::UnexpectedExtensions(format!(
                    "{:?} answered, none offered",
                    answered[0].name
                )))
            }
            Some(no_context_takeover) => accept_answer(&answered, no_context_takeover)
                .map_err(HandshakeError::UnexpectedExtensions)?,
        };
        Ok(Some((
            Accepted {
                protocol,
                deflate,
                ..accepted
            },
            n,
        )))
    }
}

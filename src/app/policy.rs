//! Per-route handshake policy that is not authentication: subprotocol choice,
//! the Origin allow-list and permessage-deflate.
//!
//! Owns the pure decisions. It must never look at sockets or connection state.

use crate::config::RouteConfig;
use crate::core::deflate::{negotiate, DeflateParams, DeflatePolicy};
use crate::core::extensions::ExtensionOffer;

/// The subprotocol outcome of a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolChoice {
    /// Use this one (the first the client offered that the route speaks).
    Chosen(String),
    /// Proceed without a subprotocol.
    None,
    /// The route requires one and the client offered none it speaks.
    Refused,
}

/// The permessage-deflate parameters to answer with, by the route's
/// `compression`; `None` declines every offer (the connection goes on without).
pub fn choose_compression(route: &RouteConfig, offers: &[ExtensionOffer]) -> Option<DeflateParams> {
    let policy = DeflatePolicy {
        mode: route.compression.mode,
        window_bits: route.compression.settings.window_bits,
    };
    negotiate(offers, &policy)
}

/// Picks the first subprotocol in the client's list that the route speaks.
pub fn choose_protocol(route: &RouteConfig, offered: &[String]) -> ProtocolChoice {
    match offered
        .iter()
        .find(|p| route.protocols.iter().any(|s| s == *p))
    {
        Some(p) => ProtocolChoice::Chosen(p.clone()),
        None if route.require_protocol => ProtocolChoice::Refused,
        None => ProtocolChoice::None,
    }
}

/// Whether a request with this `Origin` (or none) may use the route.
pub fn origin_allowed(route: &RouteConfig, origin: Option<&str>) -> bool {
    match origin {
        None => !route.require_origin,
        Some(_) if route.origins.is_empty() => true,
        Some(o) => route
            .origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(o.trim())),
    }
}

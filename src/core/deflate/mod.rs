//! permessage-deflate (RFC 7692): negotiation, the compression contexts and the
//! message transform, for the core's state machine and encoder to use.
//!
//! Owns compression. It must never frame, mask or queue bytes: a compressed
//! payload goes back to `core::websocket` and `core::encode`, which set RSV1
//! and write the frame.
//!
//! - `negotiate`: offers and answers, to [`DeflateParams`].
//! - `per_connection`: [`PerMessageDeflate`], one connection's choice of
//!   contexts (its own for a direction with context takeover, else shared).
//! - `shared`: the per-thread contexts shared by every connection without
//!   context takeover.
//! - `message`: one message through a context (tail, limits, UTF-8).
//! - `backend` and `zlib`: the DEFLATE libraries behind two small traits
//!   (zlib-ng for the shared contexts, stock zlib for a connection's own).
//!
//! Embedding it: negotiate from the client's offers, answer with
//! [`DeflateParams::response_header`], and hand the state to the connection.
//!
//! ```
//! use wsd::core::deflate::{negotiate, CompressionMode, DeflatePolicy, DeflateSettings, PerMessageDeflate};
//! use wsd::core::extensions::parse_extensions;
//! use wsd::core::{Limits, MessageKind, Role, WebSocket};
//!
//! let offers = parse_extensions(["permessage-deflate; client_max_window_bits"]).unwrap();
//! let policy = DeflatePolicy { mode: CompressionMode::Shared, window_bits: 15 };
//! let params = negotiate(&offers, &policy).expect("an acceptable offer");
//! assert_eq!(
//!     params.response_header(),
//!     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
//! );
//! let deflate = PerMessageDeflate::new(Role::Server, &params, DeflateSettings::default(), 256);
//! let mut server = WebSocket::server(Limits::default()).with_deflate(deflate);
//! let mut out = Vec::new();
//! server.send(MessageKind::Text, "compress me ".repeat(50).as_bytes(), &mut out).unwrap();
//! assert_eq!(out[0] & 0x40, 0x40, "RSV1: a compressed message");
//! assert!(out.len() < 100, "600 bytes of text in {} on the wire", out.len());
//! ```

pub mod backend;
mod message;
pub mod negotiate;
pub mod per_connection;
mod shared;
mod zlib;

pub use backend::DeflateSettings;
pub use negotiate::{
    accept_answer, client_offer, negotiate, CompressionMode, DeflateParams, DeflatePolicy,
    PERMESSAGE_DEFLATE,
};
pub use per_connection::PerMessageDeflate;
pub(crate) use shared::compress_shared;

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
//! - `backend` and `zlib`: the DEFLATE library behind two small traits.

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

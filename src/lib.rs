//! wsd: a small, fast, correct RFC 6455 WebSocket server daemon.
//!
//! `core` is the sans-I/O protocol engine; the daemon, the client and the load
//! generator are thin I/O shells around it.

pub mod client;
pub mod core;
pub mod load;

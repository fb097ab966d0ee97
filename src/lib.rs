//! wsd: a small, fast, correct RFC 6455 WebSocket server daemon.
//!
//! `core` is the sans-I/O protocol engine; everything else is built on it.

pub mod core;

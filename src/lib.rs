//! wsd: a small, fast, correct RFC 6455 WebSocket server daemon.
//!
//! `core` is the sans-I/O protocol engine; `server` is the mio reactor around it,
//! `app` decides what routes do, `config` reads `config.toml`. The client and the
//! load generator are thin I/O shells around the same core.

pub mod app;
pub mod client;
pub mod config;
pub mod core;
pub mod histogram;
pub mod load;
pub mod logging;
pub mod password;
pub mod server;
pub mod tls_io;

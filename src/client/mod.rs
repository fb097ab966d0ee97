//! The WebSocket client: `wsd connect` (interactive, like websocat) and the
//! reusable mio client connection the load generator builds on.
//!
//! `url` parses `ws://` and `wss://` URLs, `connection` drives one connection over
//! the sans-I/O core on a `link` (TCP, or TLS with the settings of `tls`),
//! `interactive` is the stdin/stdout shell. Nothing here may spawn threads:
//! every client process is one mio event loop.

pub mod connection;
pub mod interactive;
pub mod link;
pub mod tls;
pub mod url;

pub use connection::{ConnError, ConnEvent, ConnectSpec, Connection};
pub use tls::TlsArgs;
pub use url::{UrlError, WsUrl};

/// Options of `wsd connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The server URL, e.g. ws://127.0.0.1:9001/echo or wss://localhost:9443/echo
    pub url: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Offer this subprotocol (repeatable).
    #[arg(long = "protocol", value_name = "P")]
    pub protocols: Vec<String>,
    /// Offer permessage-deflate (as browsers do) and compress what is sent once
    /// the server accepts it.
    #[arg(long)]
    pub deflate: bool,
    /// Send this extra request header, e.g. 'Origin: http://x' (repeatable).
    #[arg(long = "header", value_name = "'K: V'")]
    pub headers: Vec<String>,
    /// Seconds to wait for the TCP connection and the handshake.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub connect_timeout: f64,
    /// After stdin ends, wait until no message arrived for this many seconds (so
    /// replies in flight are shown) before sending close 1000.
    #[arg(long, default_value_t = 0.3, value_name = "SECS")]
    pub linger: f64,
    /// Seconds to wait for the server's close after sending ours.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub close_timeout: f64,
}

/// Runs the interactive client. Exit codes: 0 clean close (1000/1001 or our close
/// answered), 1 connect or handshake failure, 2 protocol error or abrupt end,
/// 3 the server closed with an error code.
pub fn run(args: ConnectArgs) -> std::process::ExitCode {
    interactive::run(&args)
}

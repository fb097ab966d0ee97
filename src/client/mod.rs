//! The interactive WebSocket client (`wsd connect`). Placeholder: being written.

/// Options of `wsd connect`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The server URL, e.g. ws://127.0.0.1:9001/echo
    pub url: String,
}

/// Runs the interactive client.
pub fn run(args: ConnectArgs) -> std::process::ExitCode {
    eprintln!("wsd connect {}: not built yet", args.url);
    std::process::ExitCode::FAILURE
}

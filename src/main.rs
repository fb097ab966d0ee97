//! The `wsd` command line: parses arguments and hands over to the daemon, the
//! interactive client or the load generator. It must never hold protocol logic.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wsd",
    version,
    about = "A small, fast, correct RFC 6455 WebSocket server daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Interactive client: send each typed line as a text message, print what arrives.
    Connect(wsd::client::ConnectArgs),
    /// Load generator: idle, echo, broadcast and server-RSS scenarios.
    Load(wsd::load::LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Connect(args)) => wsd::client::run(args),
        Some(Command::Load(args)) => wsd::load::run(args),
        None => ExitCode::SUCCESS,
    }
}

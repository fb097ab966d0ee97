//! The load generator (`wsd load MODE`). Placeholder: being written.

/// Options of `wsd load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The scenario: idle, echo, broadcast or rss.
    pub mode: String,
}

/// Runs one load scenario.
pub fn run(args: LoadArgs) -> std::process::ExitCode {
    eprintln!("wsd load {}: not built yet", args.mode);
    std::process::ExitCode::FAILURE
}

//! The `wsd` command line: parses arguments and hands over to the daemon (one
//! process, the supervisor of `[server] workers`, or one of its workers), the
//! interactive client, the load generator or the password hasher. It must never
//! hold protocol logic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use wsd::config::{Config, ConfigError, ListenAddr};
use wsd::server::supervisor::{PortMap, Worker};

#[derive(Debug, Parser)]
#[command(
    name = "wsd",
    version,
    about = "A small, fast, correct RFC 6455 WebSocket server daemon",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The config file [default: ./config.toml, or built-in defaults if it is missing]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Listen on ADDR instead of the config's addresses (repeatable), e.g. 127.0.0.1:9001 or [::1]:9001
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Listen with TLS on ADDR instead of the config's listen_tls (repeatable; needs [tls])
    #[arg(long, value_name = "ADDR")]
    listen_tls: Vec<SocketAddr>,
    /// Validate a config file and exit: 0 if it is usable, 1 with the reason if not
    #[arg(long, value_name = "PATH")]
    check_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Interactive client: send each typed line as a text message, print what arrives.
    Connect(wsd::client::ConnectArgs),
    /// Load generator: idle, echo, broadcast and server-RSS scenarios.
    Load(wsd::load::LoadArgs),
    /// Read a password from standard input and print its hash for a [[user]] entry.
    HashPassword,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Connect(args)) => return wsd::client::run(args),
        Some(Command::Load(args)) => return wsd::load::run(args),
        Some(Command::HashPassword) => return hash_password(),
        None => {}
    }
    if let Some(path) = &cli.check_config {
        let checked = load_config(Some(path)).and_then(|(c, _)| {
            wsd::app::App::new(&c)?;
            tls_setup(&c, Some(path))
        });
        return match checked {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wsd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // A worker of a multi-worker daemon learns its part from the supervisor.
    let mut worker = match Worker::from_env() {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("wsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let overrides = Overrides {
        listen: cli.listen,
        listen_tls: cli.listen_tls,
        ports: worker.as_ref().map(|w| w.ports.clone()),
    };
    let (config, source) = match load_config(cli.config.as_deref())
        .and_then(|(mut c, s)| overrides.apply(&mut c).map(|()| (c, s)))
    {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("wsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_file = cli.config.clone().or_else(|| {
        Path::new("config.toml")
            .exists()
            .then(|| "config.toml".into())
    });
    let tls = match tls_setup(&config, config_file.as_deref()) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("wsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let supervising = worker.is_none() && config.server.workers.resolve() > 1;
    let prefix = match &worker {
        Some(w) => Some(format!("worker {}: ", w.index)),
        None if supervising => Some("supervisor: ".to_owned()),
        None => None,
    };
    if let Err(e) = wsd::logging::init(&config.log, prefix) {
        eprintln!("wsd: {e}");
        return ExitCode::FAILURE;
    }
    log::info!("{source}");
    let reload_source = config_file.map(|file| {
        let overrides = overrides.clone();
        Box::new(move || {
            let mut config = Config::load(&file).map_err(|e| e.to_string())?;
            overrides.apply(&mut config)?;
            let tls = tls_setup(&config, Some(&file))?;
            Ok((config, tls))
        }) as wsd::server::ConfigSource
    });
    if supervising {
        // Checked once here rather than once per worker.
        if let Err(e) = wsd::app::App::new(&config) {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
        return match wsd::server::supervisor::supervise(&config, reload_source) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let started = || {
        if let Some(worker) = worker.as_mut() {
            worker.started();
        }
    };
    match wsd::server::serve(&config, tls, reload_source, started) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line and the supervisor change in every config read, at
/// start and on each reload.
#[derive(Debug, Clone)]
struct Overrides {
    /// `--listen` / `--listen-tls`: replace every configured address.
    listen: Vec<SocketAddr>,
    listen_tls: Vec<SocketAddr>,
    /// In a worker: the ports the supervisor chose for port 0.
    ports: Option<PortMap>,
}

impl Overrides {
    fn apply(&self, config: &mut Config) -> Result<(), String> {
        if !self.listen.is_empty() || !self.listen_tls.is_empty() {
            let plain = |a: &SocketAddr| ListenAddr::plain(*a);
            config.server.listen = self.listen.iter().map(plain).collect();
            config.server.listen_tls = self.listen_tls.iter().map(plain).collect();
        }
        match &self.ports {
            Some(ports) => ports.apply(config),
            None => Ok(()),
        }
    }
}

/// Loads the named config, or ./config.toml, or the built-in defaults when no
/// file was named and ./config.toml does not exist. Also says which it was.
fn load_config(path: Option<&Path>) -> Result<(Config, String), String> {
    match path {
        Some(p) => Config::load(p)
            .map(|c| (c, format!("config: {}", p.display())))
            .map_err(|e| e.to_string()),
        None if Path::new("config.toml").exists() => load_config(Some(Path::new("config.toml"))),
        None => {
            let mut config = Config::builtin();
            config.static_files.enabled = config.static_files.root.is_dir();
            Ok((
                config,
                "config: no ./config.toml, using built-in defaults".to_owned(),
            ))
        }
    }
}

/// Reads and checks the `[tls]` certificates, if any; an error names the config
/// file, the line and the key of the file that cannot be used.
fn tls_setup(
    config: &Config,
    file: Option<&Path>,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    wsd::server::certs::server_config(tls)
        .map(Some)
        .map_err(|e| match file {
            Some(file) => ConfigError::at_key(file, e.key, e.message).to_string(),
            None => e.to_string(),
        })
}

fn hash_password() -> ExitCode {
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        eprintln!("wsd: cannot read a password from standard input");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    let mut salt = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut salt) {
        eprintln!("wsd: no randomness for the salt: {e}");
        return ExitCode::FAILURE;
    }
    let hash = wsd::password::PasswordHash::new(password, salt, wsd::password::DEFAULT_ITERATIONS);
    println!("{hash}");
    ExitCode::SUCCESS
}

//! The typed `config.toml` schema: every key, its default and its validation.
//!
//! Owns reading the file once at start and turning any mistake into an error that
//! names the file, the key and the line. It must never be consulted for anything
//! but values: it opens no sockets and starts nothing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::core::deflate::{CompressionMode, DeflateSettings};
use crate::password::PasswordHash;

/// The whole configuration. Every section and key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub timeouts: TimeoutsConfig,
    pub log: LogConfig,
    #[serde(rename = "static")]
    pub static_files: StaticConfig,
    /// WebSocket routes, matched by exact path.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Users for HTTP Basic authentication.
    #[serde(rename = "user")]
    pub users: Vec<UserConfig>,
    /// Certificates for `listen_tls`.
    pub tls: Option<TlsConfig>,
    /// The metrics and health listener.
    pub metrics: MetricsConfig,
    /// Rooms shared between processes and machines through Redis pub/sub.
    pub backplane: Option<BackplaneConfig>,
    /// The HTTP API for backends (`POST /api/publish`).
    pub api: ApiConfig,
}

/// The `[backplane]` table: chat rooms span every wsd process that names the
/// same Redis server, through one pub/sub channel per room.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackplaneConfig {
    /// `redis://HOST:PORT[/DB]`; the host is resolved when the config is read.
    #[serde(deserialize_with = "redis_url")]
    pub redis: RedisUrl,
    /// Sent with AUTH after connecting, if set.
    pub password: Option<String>,
    /// Prepended to every channel name. Default "wsd:".
    #[serde(default = "default_channel_prefix")]
    pub channel_prefix: String,
}

/// A parsed `redis://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub addr: SocketAddr,
    /// As written, for logs.
    pub text: String,
    pub db: u32,
}

fn default_channel_prefix() -> String {
    "wsd:".to_owned()
}

fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<RedisUrl, D::Error> {
    let text = String::deserialize(d)?;
    parse_redis_url(&text).map_err(de::Error::custom)
}

/// Parses `redis://HOST:PORT[/DB]` (port 6379 if absent).
pub fn parse_redis_url(text: &str) -> Result<RedisUrl, String> {
    use std::net::ToSocketAddrs;
    let rest = text
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{text:?} is not a redis:// URL"))?;
    let (hostport, db) = match rest.split_once('/') {
        Some((h, "")) => (h, 0),
        Some((h, db)) => (
            h,
            db.parse()
                .map_err(|_| format!("{text:?}: the database must be a number"))?,
        ),
        None => (rest, 0),
    };
    if hostport.contains('@') {
        return Err(format!(
            "{text:?}: put the password in `password`, not the URL"
        ));
    }
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        && !hostport.ends_with(']')
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:6379")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))?;
    Ok(RedisUrl {
        addr,
        text: text.to_owned(),
        db,
    })
}

/// The `[api]` table: `POST /api/publish` for backends, off while `keys` is empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens accepted in `Authorization: Bearer KEY`; empty: no API.
    pub keys: Vec<String>,
    /// Where the API is served: "main" (default: the WebSocket listeners) or
    /// "metrics" (the `[metrics]` listener only).
    pub listener: ApiListener,
}

/// Which listener serves `[api]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiListener {
    #[default]
    Main,
    Metrics,
}

/// `[server] workers`: a number of processes, or "auto" (one per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Count(usize),
    Auto,
}

impl Workers {
    /// The number of worker processes this means on this machine.
    pub fn resolve(self) -> usize {
        match self {
            Workers::Count(n) => n,
            Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Default for Workers {
    fn default() -> Self {
        Workers::Count(1)
    }
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) if (1..=256).contains(&n) => Ok(Workers::Count(n as usize)),
            Raw::Name(s) if s == "auto" => Ok(Workers::Auto),
            Raw::Count(n) => Err(de::Error::custom(format!(
                "workers = {n} is out of range 1-256"
            ))),
            Raw::Name(s) => Err(de::Error::custom(format!(
                "workers = {s:?}: a number of processes or \"auto\""
            ))),
        }
    }
}

/// The `[metrics]` table: a separate plain-HTTP listener in the same loop for
/// `GET /metrics` (Prometheus text format), `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where to listen; absent: no metrics listener.
    pub listen: Option<ListenAddr>,
    /// Also answer `/healthz` and `/readyz` on the main listeners (before
    /// static files). Default false.
    pub health_on_main: bool,
}

/// The `[tls]` table: the default certificate chain and key (PEM files), and
/// optional per-name certificates chosen by SNI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first. Required.
    pub cert: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1). Required.
    pub key: PathBuf,
    /// `[[tls.sni]]` entries: a certificate for one server name.
    #[serde(default)]
    pub sni: Vec<SniConfig>,
}

/// One `[[tls.sni]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniConfig {
    /// The server name a client asks for, e.g. "chat.example.com".
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on, IPv4 or IPv6. Default `["127.0.0.1:9001"]`.
    pub listen: Vec<ListenAddr>,
    /// Addresses to listen on with TLS (wss:// and https://); needs `[tls]`. Default none.
    pub listen_tls: Vec<ListenAddr>,
    /// The listen backlog. Default 1024.
    pub backlog: u32,
    /// Most simultaneous connections; 0 means as many as the fd limit allows.
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-For` / `Forwarded` header names the client
    /// (CIDRs or single addresses). Default none: the header is never believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Worker processes, each a whole reactor on the same addresses
    /// (SO_REUSEPORT). Default 1: one process, no supervisor.
    pub workers: Workers,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![ListenAddr::plain(
                "127.0.0.1:9001".parse().expect("literal address"),
            )],
            listen_tls: Vec::new(),
            backlog: 1024,
            max_connections: 0,
            trusted_proxies: Vec::new(),
            workers: Workers::default(),
        }
    }
}

/// What happens to a connection whose send buffer is over `max_send_buffer_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumerPolicy {
    /// Close it with 1008 (policy violation).
    Close,
    /// Drop broadcast messages for it until it catches up.
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest HTTP request head. Default 8192.
    pub max_request_bytes: usize,
    /// Most header fields in a request. Default 64.
    pub max_headers: usize,
    /// Largest WebSocket frame. Default 16 MiB.
    pub max_frame_bytes: u64,
    /// Largest WebSocket message (sum of fragments). Default 16 MiB.
    pub max_message_bytes: u64,
    /// Per-connection send buffer limit. Default 32 MiB; at least max_message_bytes.
    pub max_send_buffer_bytes: usize,
    /// Stop reading from a connection while its send buffer is above this. Default 1 MiB.
    pub read_pause_bytes: usize,
    /// `close` (default) or `drop`.
    pub slow_consumer: SlowConsumerPolicy,
    /// Most open connections from one client address; 0 (default): no limit.
    pub max_connections_per_ip: u32,
    /// New requests per second from one client address (token bucket refill);
    /// 0 (default): no limit.
    pub handshakes_per_ip_per_sec: f64,
    /// The bucket's size: requests one address may make at once. Default 20.
    pub handshake_burst_per_ip: u32,
    /// Addresses remembered beyond those with open connections (their rate
    /// state), bounding the per-address table. Default 65536.
    pub max_tracked_ips: usize,
    /// Messages per second one WebSocket may send (counted per one-second
    /// window); over it: close 1008. 0 (default): no limit.
    pub max_messages_per_sec: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: 8 * 1024,
            max_headers: 64,
            max_frame_bytes: 16 << 20,
            max_message_bytes: 16 << 20,
            max_send_buffer_bytes: 32 << 20,
            read_pause_bytes: 1 << 20,
            slow_consumer: SlowConsumerPolicy::Close,
            max_connections_per_ip: 0,
            handshakes_per_ip_per_sec: 0.0,
            handshake_burst_per_ip: 20,
            max_tracked_ips: 65_536,
            max_messages_per_sec: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// A client must finish its request head within this. Default "10s".
    #[serde(deserialize_with = "duration")]
    pub handshake: Duration,
    /// Ping a WebSocket after this long without a frame from it; "0s" disables. Default "30s".
    #[serde(deserialize_with = "duration")]
    pub ping_interval: Duration,
    /// Close it if nothing arrives this long after the ping. Default "10s".
    #[serde(deserialize_with = "duration")]
    pub ping_timeout: Duration,
    /// Drop a connection this long after we sent a close it has not answered. Default "5s".
    #[serde(deserialize_with = "duration")]
    pub close: Duration,
    /// On SIGINT/SIGTERM, wait at most this for peers to answer our closes. Default "5s".
    #[serde(deserialize_with = "duration")]
    pub shutdown: Duration,
    /// On SIGINT/SIGTERM, keep accepting this long with `/readyz` answering
    /// 503, so a load balancer stops sending new clients first. Default "0s".
    #[serde(deserialize_with = "duration")]
    pub drain_delay: Duration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            handshake: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
            close: Duration::from_secs(5),
            shutdown: Duration::from_secs(5),
            drain_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// off, error, warn, info (default), debug or trace.
    pub level: LogLevel,
    /// Log to standard error. Default true.
    pub terminal: bool,
    /// Also append to this file. Default none.
    pub file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            terminal: true,
            file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// Serve plain HTTP GET/HEAD requests from `root`. Default true.
    pub enabled: bool,
    /// The directory served. Default "www".
    pub root: PathBuf,
    /// The file served for a directory. Default "index.html".
    pub index: String,
}

impl Default for StaticConfig {
    fn default() -> Self {
        StaticConfig {
            enabled: true,
            root: PathBuf::from("www"),
            index: "index.html".to_owned(),
        }
    }
}

/// How a route authenticates its clients, with the keys of that method only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    None,
    /// HTTP Basic against the `[[user]]` table; `realm` names the challenge.
    Basic {
        realm: String,
    },
    /// A token in the query parameter `param`, among `tickets`.
    Ticket {
        param: String,
        tickets: Vec<String>,
    },
    /// A cookie called `name` whose value is among `values`.
    Cookie {
        name: String,
        values: Vec<String>,
    },
}

/// What a WebSocket route does with messages: one variant per route kind, each
/// carrying that kind's own keys. A new kind is a new variant here and a new
/// handler in `app/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// Every message comes back unchanged.
    Echo,
    /// Every message goes to every member of the same room.
    Chat(ChatConfig),
    /// One JSON snapshot of the server per second to every watcher.
    Status,
    /// A program per connection: its stdout becomes messages, messages go to its stdin.
    Process(ProcessConfig),
    /// A TCP connection per connection: bytes both ways, as binary (or text) messages.
    Tcp(TcpConfig),
}

impl RouteKind {
    /// The kind's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            RouteKind::Echo => "echo",
            RouteKind::Chat(_) => "chat",
            RouteKind::Status => "status",
            RouteKind::Process(_) => "process",
            RouteKind::Tcp(_) => "tcp",
        }
    }
}

/// How a bridge turns bytes into messages: `mode = "text" | "binary"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeMode {
    /// Text messages: a process route sends one per line of output.
    Text,
    /// Binary messages: each chunk read as it comes.
    Binary,
}

/// What a process route does with a text line that is not UTF-8:
/// `invalid_utf8 = "replace" | "binary"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidUtf8 {
    /// Each bad sequence becomes U+FFFD (default).
    Replace,
    /// The line goes out as a binary message, unchanged.
    Binary,
}

/// What a process route does with a line longer than `max_line`:
/// `long_lines = "split" | "close"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongLines {
    /// Sent in pieces of at most `max_line` bytes (default).
    Split,
    /// The connection is closed with 1009.
    Close,
}

/// Where a process route's stderr goes: `stderr = "log" | "client"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StderrTo {
    /// wsd's log, one rate-limited line per stderr line (default).
    Log,
    /// The client, as text `{"stream":"stderr","data":"..."}` per line.
    Client,
}

/// The keys of a `kind = "process"` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The program and its arguments; no shell unless the first word is one.
    pub command: Vec<String>,
    /// The working directory; default wsd's own.
    pub cwd: Option<PathBuf>,
    /// wsd's environment variables the program may see (besides the CGI ones).
    pub passenv: Vec<String>,
    /// Default text.
    pub mode: BridgeMode,
    /// The longest output line sent whole, in text mode. Default 64 KiB.
    pub max_line: usize,
    pub long_lines: LongLines,
    pub invalid_utf8: InvalidUtf8,
    pub stderr: StderrTo,
    /// Programs running at once on this route; an upgrade over it gets 503. Default 64.
    pub max_processes: usize,
    /// The wait between each step of ending a program: stdin closed, SIGINT,
    /// SIGTERM, SIGKILL. Default 1s.
    pub kill_grace: Duration,
}

/// The keys of a `kind = "tcp"` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// The backend's address, resolved when the config is read.
    pub backend: SocketAddr,
    /// As written, for logs.
    pub backend_name: String,
    /// Default binary.
    pub mode: BridgeMode,
    /// How long connecting to the backend may take. Default 5s.
    pub connect_timeout: Duration,
}

/// The keys of a `kind = "chat"` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// The query parameter that names the room. Default "room".
    pub room_param: String,
    /// Most rooms at once on this route. Default 1024.
    pub max_rooms: usize,
    /// Most members in one room. Default 10000.
    pub max_members: usize,
    /// Announce joins and leaves to the room. Default true.
    pub announce: bool,
    /// Deliver a member's messages back to the member too. Default true.
    pub echo_to_sender: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            room_param: "room".to_owned(),
            max_rooms: 1024,
            max_members: 10_000,
            announce: true,
            echo_to_sender: true,
        }
    }
}

/// A route's permessage-deflate (RFC 7692): `compression` and the keys that
/// tune it, which only mean something when it is not "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionConfig {
    /// "off" (default), "shared" or "dedicated" (see [`CompressionMode`]).
    pub mode: CompressionMode,
    /// `compression_window_bits` (9-15, default 15), `compression_memory_level`
    /// (1-9, default 8), `compression_level` (0-9, default 1).
    pub settings: DeflateSettings,
    /// `compression_threshold`: messages shorter than this many bytes are sent
    /// uncompressed. 0-65535, default 256.
    pub threshold: usize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            mode: CompressionMode::Off,
            settings: DeflateSettings::default(),
            threshold: 256,
        }
    }
}

/// One `[[route]]`: where it is, who may use it, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// The request path, e.g. "/echo".
    pub path: String,
    /// Subprotocols this route speaks.
    pub protocols: Vec<String>,
    /// Refuse clients that offer none of `protocols` (400).
    pub require_protocol: bool,
    /// Allowed `Origin` values; empty allows any.
    pub origins: Vec<String>,
    /// Refuse requests without `Origin` (403).
    pub require_origin: bool,
    pub auth: AuthConfig,
    pub compression: CompressionConfig,
    pub kind: RouteKind,
}

/// A `[[route]]` table as written: every key of every kind, flat. Turned into a
/// [`RouteConfig`] at once, refusing keys that belong to another kind or method.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    path: String,
    kind: KindName,
    #[serde(default)]
    protocols: Vec<String>,
    #[serde(default)]
    require_protocol: bool,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default)]
    require_origin: bool,
    #[serde(default = "default_auth")]
    auth: AuthName,
    realm: Option<String>,
    ticket_param: Option<String>,
    tickets: Option<Vec<String>>,
    cookie_name: Option<String>,
    cookie_values: Option<Vec<String>>,
    room_param: Option<String>,
    max_rooms: Option<usize>,
    max_members: Option<usize>,
    announce: Option<bool>,
    echo_to_sender: Option<bool>,
    #[serde(default = "default_compression")]
    compression: CompressionName,
    compression_window_bits: Option<u8>,
    compression_memory_level: Option<u8>,
    compression_level: Option<u8>,
    compression_threshold: Option<usize>,
    command: Option<Vec<String>>,
    cwd: Option<PathBuf>,
    passenv: Option<Vec<String>>,
    mode: Option<BridgeMode>,
    max_line: Option<usize>,
    long_lines: Option<LongLines>,
    invalid_utf8: Option<InvalidUtf8>,
    stderr: Option<StderrTo>,
    max_processes: Option<usize>,
    kill_grace: Option<String>,
    backend: Option<String>,
    connect_timeout: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum CompressionName {
    Off,
    Shared,
    Dedicated,
}

fn default_compression() -> CompressionName {
    CompressionName::Off
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Echo,
    Chat,
    Status,
    Process,
    Tcp,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum AuthName {
    None,
    Basic,
    Ticket,
    Cookie,
}

fn default_auth() -> AuthName {
    AuthName::None
}

impl RouteTable {
    fn into_route(self) -> Result<RouteConfig, String> {
        let path = self.path.clone();
        self.typed()
            .map_err(|e| format!("route {ROUTE_TAG}{path:?}: {e}"))
    }

    fn typed(self) -> Result<RouteConfig, String> {
        let compression = self.compression()?;
        let chat_keys = [
            ("room_param", self.room_param.is_some()),
            ("max_rooms", self.max_rooms.is_some()),
            ("max_members", self.max_members.is_some()),
            ("announce", self.announce.is_some()),
            ("echo_to_sender", self.echo_to_sender.is_some()),
        ];
        let process_keys = [
            ("command", self.command.is_some()),
            ("cwd", self.cwd.is_some()),
            ("passenv", self.passenv.is_some()),
            ("max_line", self.max_line.is_some()),
            ("long_lines", self.long_lines.is_some()),
            ("invalid_utf8", self.invalid_utf8.is_some()),
            ("stderr", self.stderr.is_some()),
            ("max_processes", self.max_processes.is_some()),
            ("kill_grace", self.kill_grace.is_some()),
        ];
        let tcp_keys = [
            ("backend", self.backend.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
        ];
        let bridge_keys = [("mode", self.mode.is_some())];
        let not_here = |chat: bool, process: bool, tcp: bool| -> Result<(), String> {
            if !chat {
                only_for(&chat_keys, "kind = \"chat\"")?;
            }
            if !process {
                only_for(&process_keys, "kind = \"process\"")?;
            }
            if !tcp {
                only_for(&tcp_keys, "kind = \"tcp\"")?;
            }
            if !process && !tcp {
                only_for(&bridge_keys, "kind = \"process\" or \"tcp\"")?;
            }
            Ok(())
        };
        let kind = match self.kind {
            KindName::Echo => {
                not_here(false, false, false)?;
                RouteKind::Echo
            }
            KindName::Status => {
                not_here(false, false, false)?;
                RouteKind::Status
            }
            KindName::Chat => {
                not_here(true, false, false)?;
                let d = ChatConfig::default();
                RouteKind::Chat(ChatConfig {
                    room_param: self.room_param.clone().unwrap_or(d.room_param),
                    max_rooms: self.max_rooms.unwrap_or(d.max_rooms),
                    max_members: self.max_members.unwrap_or(d.max_members),
                    announce: self.announce.unwrap_or(d.announce),
                    echo_to_sender: self.echo_to_sender.unwrap_or(d.echo_to_sender),
                })
            }
            KindName::Process => {
                not_here(false, true, false)?;
                RouteKind::Process(self.process()?)
            }
            KindName::Tcp => {
                not_here(false, false, true)?;
                RouteKind::Tcp(self.tcp()?)
            }
        };
        let method_keys = [
            (AuthName::Basic, "realm", self.realm.is_some()),
            (
                AuthName::Ticket,
                "ticket_param",
                self.ticket_param.is_some(),
            ),
            (AuthName::Ticket, "tickets", self.tickets.is_some()),
            (AuthName::Cookie, "cookie_name", self.cookie_name.is_some()),
            (
                AuthName::Cookie,
                "cookie_values",
                self.cookie_values.is_some(),
            ),
        ];
        if let Some((method, key, _)) = method_keys
            .iter()
            .find(|(method, _, present)| *present && *method != self.auth)
        {
            return Err(format!(
                "`{key}` applies only to routes with auth = \"{}\"",
                method.name()
            ));
        }
        let auth = match self.auth {
            AuthName::None => AuthConfig::None,
            AuthName::Basic => AuthConfig::Basic {
                realm: self.realm.unwrap_or_else(|| "wsd".to_owned()),
            },
            AuthName::Ticket => AuthConfig::Ticket {
                param: self.ticket_param.unwrap_or_else(|| "ticket".to_owned()),
                tickets: self.tickets.unwrap_or_default(),
            },
            AuthName::Cookie => AuthConfig::Cookie {
                name: self.cookie_name.unwrap_or_else(|| "wsd_session".to_owned()),
                values: self.cookie_values.unwrap_or_default(),
            },
        };
        Ok(RouteConfig {
            path: self.path,
            protocols: self.protocols,
            require_protocol: self.require_protocol,
            origins: self.origins,
            require_origin: self.require_origin,
            auth,
            compression,
            kind,
        })
    }

    fn process(&self) -> Result<ProcessConfig, String> {
        let command = self.command.clone().unwrap_or_default();
        if command.first().is_none_or(|program| program.is_empty()) {
            return Err(
                "`command` must name a program: command = [\"/path/to/program\", \"arg\"]"
                    .to_owned(),
            );
        }
        let max_line = self.max_line.unwrap_or(64 * 1024);
        if !(1..=MAX_BRIDGE_LINE).contains(&max_line) {
            return Err(format!(
                "`max_line` = {max_line} is out of range 1-{MAX_BRIDGE_LINE}"
            ));
        }
        let max_processes = self.max_processes.unwrap_or(64);
        if max_processes == 0 {
            return Err("`max_processes` must be at least 1".to_owned());
        }
        Ok(ProcessConfig {
            command,
            cwd: self.cwd.clone(),
            passenv: self.passenv.clone().unwrap_or_default(),
            mode: self.mode.unwrap_or(BridgeMode::Text),
            max_line,
            long_lines: self.long_lines.unwrap_or(LongLines::Split),
            invalid_utf8: self.invalid_utf8.unwrap_or(InvalidUtf8::Replace),
            stderr: self.stderr.unwrap_or(StderrTo::Log),
            max_processes,
            kill_grace: route_duration("kill_grace", self.kill_grace.as_deref(), 1.0)?,
        })
    }

    fn tcp(&self) -> Result<TcpConfig, String> {
        let Some(name) = &self.backend else {
            return Err("`backend` is required: backend = \"127.0.0.1:5900\"".to_owned());
        };
        use std::net::ToSocketAddrs;
        let backend = name
            .to_socket_addrs()
            .map_err(|e| format!("`backend` = {name:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("`backend` = {name:?} resolves to no address"))?;
        let connect_timeout =
            route_duration("connect_timeout", self.connect_timeout.as_deref(), 5.0)?;
        if connect_timeout.is_zero() {
            return Err("`connect_timeout` must be more than 0".to_owned());
        }
        Ok(TcpConfig {
            backend,
            backend_name: name.clone(),
            mode: self.mode.unwrap_or(BridgeMode::Binary),
            connect_timeout,
        })
    }

    fn compression(&self) -> Result<CompressionConfig, String> {
        let mode = match self.compression {
            CompressionName::Off => {
                only_for(
                    &[
                        (
                            "compression_window_bits",
                            self.compression_window_bits.is_some(),
                        ),
                        (
                            "compression_memory_level",
                            self.compression_memory_level.is_some(),
                        ),
                        ("compression_level", self.compression_level.is_some()),
                        (
                            "compression_threshold",
                            self.compression_threshold.is_some(),
                        ),
                    ],
                    "compression = \"shared\" or \"dedicated\"",
                )?;
                CompressionMode::Off
            }
            CompressionName::Shared => CompressionMode::Shared,
            CompressionName::Dedicated => CompressionMode::Dedicated,
        };
        let d = CompressionConfig::default();
        let in_range = |key: &str,
                        value: Option<u8>,
                        range: std::ops::RangeInclusive<u8>,
                        default| {
            match value {
                None => Ok(default),
                Some(v) if range.contains(&v) => Ok(v),
                Some(v) => Err(format!(
                    "`{key}` = {v} is out of range {}-{}",
                    range.start(),
                    range.end()
                )),
            }
        };
        Ok(CompressionConfig {
            mode,
            settings: DeflateSettings {
                window_bits: in_range(
                    "compression_window_bits",
                    self.compression_window_bits,
                    9..=15,
                    d.settings.window_bits,
                )?,
                memory_level: in_range(
                    "compression_memory_level",
                    self.compression_memory_level,
                    1..=9,
                    d.settings.memory_level,
                )?,
                level: in_range(
                    "compression_level",
                    self.compression_level,
                    0..=9,
                    d.settings.level,
                )?,
            },
            threshold: match self.compression_threshold {
                None => d.threshold,
                Some(t) if t <= usize::from(u16::MAX) => t,
                Some(t) => return Err(format!("`compression_threshold` = {t} is over 65535")),
            },
        })
    }
}

impl AuthName {
    fn name(self) -> &'static str {
        match self {
            AuthName::None => "none",
            AuthName::Basic => "basic",
            AuthName::Ticket => "ticket",
            AuthName::Cookie => "cookie",
        }
    }
}

/// Starts the message of an error inside one `[[route]]`, before its quoted path,
/// so the error's line can be found inside that route's table.
const ROUTE_TAG: &str = "at path ";

/// The line of `path = "..."` of the route an error message names (see [`ROUTE_TAG`]).
fn route_line(text: &str, message: &str) -> Option<usize> {
    let quoted = message.split(ROUTE_TAG).nth(1)?;
    let end = quoted[1..].find('"')? + 2;
    let path = &quoted[..end];
    text.lines()
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "path" && v.trim() == path)
        })
        .map(|i| i + 1)
}

/// The largest `max_line` a process route accepts: a line is buffered whole
/// before it is sent, so this bounds that buffer.
pub const MAX_BRIDGE_LINE: usize = 16 * 1024 * 1024;

/// A duration key of a route, `default_secs` when absent.
fn route_duration(key: &str, value: Option<&str>, default_secs: f64) -> Result<Duration, String> {
    match value {
        None => Ok(Duration::from_secs_f64(default_secs)),
        Some(s) => parse_duration(s).ok_or_else(|| {
            format!("`{key}` = {s:?} is not a duration like \"250ms\", \"10s\" or \"5m\"")
        }),
    }
}

/// Refuses the first key of `keys` that is present: it only means something with `what`.
fn only_for(keys: &[(&str, bool)], what: &str) -> Result<(), String> {
    match keys.iter().find(|(_, present)| *present) {
        Some((key, _)) => Err(format!("`{key}` applies only to routes with {what}")),
        None => Ok(()),
    }
}

impl<'de> Deserialize<'de> for RouteConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RouteTable::deserialize(d)?
            .into_route()
            .map_err(de::Error::custom)
    }
}

/// A user for HTTP Basic authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// `pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64`, made by `wsd hash-password`;
    /// parsed when the file is read.
    pub password_hash: PasswordHash,
}

/// A listen address, parsed when the file is read so a typo names its line:
/// `"127.0.0.1:9001"`, or `{ addr = "10.0.0.5:9001", proxy_protocol = "v2" }`
/// for a listener behind a load balancer that sends a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub addr: SocketAddr,
    pub proxy_protocol: ProxyProtocol,
}

impl ListenAddr {
    /// An address without a PROXY header.
    pub fn plain(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            addr,
            proxy_protocol: ProxyProtocol::Off,
        }
    }
}

/// Whether connections on a listener start with a PROXY protocol header
/// (v1: text, v2: binary), which then names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    #[default]
    Off,
    V1,
    V2,
}

fn parse_socket_addr<E: de::Error>(s: &str) -> Result<SocketAddr, E> {
    s.parse().map_err(|_| {
        E::custom(format!(
            "{s:?} is not an address like 127.0.0.1:9001 or [::1]:9001"
        ))
    })
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            addr: String,
            #[serde(default)]
            proxy_protocol: ProxyProtocol,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Address(String),
            Table(Table),
        }
        match Written::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected an address like \"127.0.0.1:9001\" or a table like \
                 { addr = \"127.0.0.1:9001\", proxy_protocol = \"v1\" } \
                 (proxy_protocol: off, v1 or v2)",
            )
        })? {
            Written::Address(s) => parse_socket_addr(&s).map(ListenAddr::plain),
            Written::Table(t) => Ok(ListenAddr {
                addr: parse_socket_addr(&t.addr)?,
                proxy_protocol: t.proxy_protocol,
            }),
        }
    }
}

/// An address range, `10.0.0.0/8` or `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, len: u8| -> u128 {
            if self.prefix == 0 {
                0
            } else {
                (!0u128 << (u32::from(len) - u32::from(self.prefix))) & (!0u128 >> (128 - bits))
            }
        };
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(32, 32);
                (u128::from(u32::from(net)) & m) == (u128::from(u32::from(ip)) & m)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(128, 128);
                (u128::from(net) & m) == (u128::from(ip) & m)
            }
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "{s:?} is not an address range like 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7"
            ))
        })
    }
}

/// Parses "250ms", "10s", "5m", "1h" (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).ok_or_else(|| {
        de::Error::custom(format!(
            "{s:?} is not a duration like \"250ms\", \"10s\" or \"5m\""
        ))
    })
}

/// A configuration that could not be used, with where the mistake is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about `key` found after the file was read (e.g. a certificate
    /// file it names cannot be used); the line is looked up in `file`.
    pub fn at_key(file: &Path, key: &str, message: String) -> ConfigError {
        let line = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| line_of_key(&text, key));
        ConfigError {
            file: file.to_owned(),
            line,
            key: Some(key.to_owned()),
            message,
        }
    }
}

impl Config {
    /// The built-in configuration used when no config file exists: the defaults of
    /// every key plus the `/echo` and `/chat` routes of the shipped `config.toml`.
    pub fn builtin() -> Config {
        let route = |path: &str, kind| RouteConfig {
            path: path.to_owned(),
            protocols: Vec::new(),
            require_protocol: false,
            origins: Vec::new(),
            require_origin: false,
            auth: AuthConfig::None,
            compression: CompressionConfig {
                mode: CompressionMode::Shared,
                ..CompressionConfig::default()
            },
            kind,
        };
        Config {
            routes: vec![
                route("/echo", RouteKind::Echo),
                route("/chat", RouteKind::Chat(ChatConfig::default())),
            ],
            ..Config::default()
        }
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `file` only names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_of_offset(text, span.start));
            let key = line
                .and_then(|l| key_on_line(text, l))
                .or_else(|| quoted_field(e.message()));
            // An error about a whole table (e.g. a key of another route kind)
            // points at the table: name the line of the key inside it instead.
            let line = match (&key, line) {
                (Some(k), Some(l)) if key_on_line(text, l).as_deref() != Some(k) => {
                    let from = route_line(text, e.message()).unwrap_or(l);
                    line_of_key_from(text, k, from).or(Some(l))
                }
                _ => line,
            };
            ConfigError {
                file: file.to_owned(),
                line,
                key,
                message: e.message().trim().to_owned(),
            }
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            file: file.to_owned(),
            line: line_of_key(text, &key),
            key: Some(key),
            message,
        })?;
        Ok(config)
    }

    /// Checks what the types alone cannot: returns the offending key and why.
    fn validate(&self) -> Result<(), (String, String)> {
        let l = &self.limits;
        if self.server.listen.is_empty() && self.server.listen_tls.is_empty() {
            return Err(("listen".into(), "at least one address is needed".into()));
        }
        if !self.server.listen_tls.is_empty() && self.tls.is_none() {
            return Err((
                "listen_tls".into(),
                "needs a [tls] table with `cert` and `key`".into(),
            ));
        }
        if l.max_request_bytes < 256 {
            return Err(("max_request_bytes".into(), "must be at least 256".into()));
        }
        if l.max_headers == 0 {
            return Err(("max_headers".into(), "must be at least 1".into()));
        }
        if l.max_frame_bytes == 0 || l.max_message_bytes == 0 {
            return Err((
                "max_frame_bytes".into(),
                "frame and message limits must be positive".into(),
            ));
        }
        if (l.max_send_buffer_bytes as u64) < l.max_message_bytes.saturating_add(14) {
            return Err((
                "max_send_buffer_bytes".into(),
                format!(
                    "must hold at least one largest message (max_message_bytes = {} plus a frame header)",
                    l.max_message_bytes
                ),
            ));
        }
        if l.read_pause_bytes == 0 || l.read_pause_bytes > l.max_send_buffer_bytes {
            return Err((
                "read_pause_bytes".into(),
                "must be positive and at most max_send_buffer_bytes".into(),
            ));
        }
        if !l.handshakes_per_ip_per_sec.is_finite() || l.handshakes_per_ip_per_sec < 0.0 {
            return Err((
                "handshakes_per_ip_per_sec".into(),
                "must be a rate of 0 (no limit) or more".into(),
            ));
        }
        if l.handshakes_per_ip_per_sec > 0.0 && l.handshake_burst_per_ip == 0 {
            return Err((
                "handshake_burst_per_ip".into(),
                "must be at least 1 when handshakes_per_ip_per_sec is set".into(),
            ));
        }
        if l.max_messages_per_sec > 60_000 {
            return Err((
                "max_messages_per_sec".into(),
                "must be at most 60000 (0: no limit)".into(),
            ));
        }
        if self
            .server
            .listen_tls
            .iter()
            .any(|a| a.proxy_protocol != ProxyProtocol::Off)
        {
            return Err((
                "listen_tls".into(),
                "PROXY headers are read on plain listeners only: terminate TLS at the \
                 balancer, or use `listen` behind it"
                    .into(),
            ));
        }
        let chat = self
            .routes
            .iter()
            .find(|r| matches!(r.kind, RouteKind::Chat(_)));
        if let (Some(route), None) = (chat, &self.backplane) {
            if self.server.workers.resolve() > 1 {
                return Err((
                    "workers".into(),
                    format!(
                        "the chat route {:?} would be split into one set of rooms per worker: \
                         add a [backplane] (Redis) so rooms span workers, or use workers = 1",
                        route.path
                    ),
                ));
            }
        }
        if self.api.listener == ApiListener::Metrics
            && !self.api.keys.is_empty()
            && self.metrics.listen.is_none()
        {
            return Err((
                "listener".into(),
                "the API is to be served on the metrics listener, but [metrics] has no `listen`"
                    .into(),
            ));
        }
        if self.api.keys.iter().any(|k| k.len() < 16) {
            return Err((
                "keys".into(),
                "each API key must be at least 16 characters".into(),
            ));
        }
        if l.max_tracked_ips == 0 {
            return Err(("max_tracked_ips".into(), "must be at least 1".into()));
        }
        if self
            .metrics
            .listen
            .is_some_and(|a| a.proxy_protocol != ProxyProtocol::Off)
        {
            return Err((
                "proxy_protocol".into(),
                "the metrics listener does not read PROXY headers".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for route in &self.routes {
            if !route.path.starts_with('/') || route.path.contains('?') {
                return Err((
                    "path".into(),
                    format!("{:?} must start with '/' and have no query", route.path),
                ));
            }
            if !seen.insert(route.path.as_str()) {
                return Err((
                    "path".into(),
                    format!("route {:?} is declared twice", route.path),
                ));
            }
            if route.require_protocol && route.protocols.is_empty() {
                return Err((
                    "require_protocol".into(),
                    format!(
                        "route {:?} requires a subprotocol but lists none in `protocols`",
                        route.path
                    ),
                ));
            }
            match &route.auth {
                AuthConfig::Ticket { tickets, .. } if tickets.is_empty() => {
                    return Err((
                        "tickets".into(),
                        format!(
                            "route {:?} uses ticket auth but lists no tickets",
                            route.path
                        ),
                    ));
                }
                AuthConfig::Cookie { values, .. } if values.is_empty() => {
                    return Err((
                        "cookie_values".into(),
                        format!(
                            "route {:?} uses cookie auth but lists no cookie_values",
                            route.path
                        ),
                    ));
                }
                AuthConfig::Basic { .. } if self.users.is_empty() => {
                    return Err((
                        "auth".into(),
                        format!(
                            "route {:?} uses basic auth but there is no [[user]]",
                            route.path
                        ),
                    ));
                }
                _ => {}
            }
            if let RouteKind::Chat(chat) = &route.kind {
                if chat.max_rooms == 0 || chat.max_members == 0 {
                    return Err(("max_members".into(), "chat limits must be positive".into()));
                }
            }
        }
        Ok(())
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The key assigned on line `line` (1-based), if that line is `key = value`.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line - 1)?;
    let (key, _) = l.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

/// The first line that assigns `key`, for errors found after parsing.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    line_of_key_from(text, key, 1)
}

/// The first line at or after `from` (1-based) that assigns `key`.
fn line_of_key_from(text: &str, key: &str, from: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .map(|(i, _)| i + 1)
}

/// The field named in messages like "unknown field `foo`" or "missing field `kind`".
fn quoted_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen[0].addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(c.limits.max_request_bytes, 8192);
        assert_eq!(c.timeouts.handshake, Duration::from_secs(10));
        assert_eq!(c.server.max_connections, 0);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = parse("[server]\nbacklog = 5\nlisten_port = 3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key.as_deref(), Some("listen_port"));
        assert!(
            e.to_string().starts_with("test.toml:3: key `listen_port`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let e = parse("[limits]\n\nmax_headers = \"many\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("max_headers")));
    }

    #[test]
    fn bad_address_and_duration_are_refused() {
        let e = parse("[server]\nlisten = [\"localhost\"]\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("listen")));
        let e = parse("[timeouts]\nclose = \"soon\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("close")));
    }

    #[test]
    fn route_without_kind_is_refused() {
        let e = parse("[[route]]\npath = \"/x\"\n").unwrap_err();
        assert!(e.message.contains("kind"), "{e}");
    }

    #[test]
    fn send_buffer_smaller_than_a_message_is_refused_by_key() {
        let e = parse("[limits]\nmax_message_bytes = 1000\nmax_send_buffer_bytes = 500\nread_pause_bytes = 100\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("max_send_buffer_bytes"))
        );
    }

    #[test]
    fn duplicate_route_is_refused() {
        let e = parse("[[route]]\npath = \"/a\"\nkind = \"echo\"\n[[route]]\npath = \"/a\"\nkind = \"chat\"\n").unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
    }

    #[test]
    fn a_key_of_another_route_kind_is_refused_by_name_and_line() {
        let text = "[[route]]\npath = \"/chat\"\nkind = \"chat\"\nmax_rooms = 3\n\n[[route]]\npath = \"/e\"\nkind = \"echo\"\nmax_rooms = 2\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("max_rooms"), "{e}");
        assert_eq!(
            e.line,
            Some(9),
            "the echo route's line, not the chat route's: {e}"
        );
        assert!(e.message.contains("kind = \"chat\""), "{e}");
    }

    #[test]
    fn address_ranges_match_what_they_cover() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "v4-mapped"
        );
        assert!(!net.contains("::1".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0", "x/8", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        let e = parse("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"nonsense\"]\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("trusted_proxies")),
            "{e}"
        );
    }

    #[test]
    fn listen_addresses_may_ask_for_a_proxy_header() {
        let c = parse("[server]\nlisten = [\"127.0.0.1:1\", { addr = \"127.0.0.1:2\", proxy_protocol = \"v2\" }]\n").unwrap();
        assert_eq!(c.server.listen[0].proxy_protocol, ProxyProtocol::Off);
        assert_eq!(c.server.listen[1].proxy_protocol, ProxyProtocol::V2);
        assert_eq!(c.server.listen[1].addr.port(), 2);
        let e = parse("[server]\nlisten = [{ addr = \"127.0.0.1:2\", proxy_protocol = \"v3\" }]\n")
            .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("proxy_protocol"), "{e}");
    }

    #[test]
    fn the_metrics_table_is_typed_and_its_mistakes_named() {
        let c = parse("[metrics]\nlisten = \"127.0.0.1:9100\"\nhealth_on_main = true\n[timeouts]\ndrain_delay = \"2s\"\n").unwrap();
        assert_eq!(
            c.metrics.listen.map(|a| a.addr),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert!(c.metrics.health_on_main);
        assert_eq!(c.timeouts.drain_delay, Duration::from_secs(2));
        assert_eq!(parse("").unwrap().metrics.listen.map(|a| a.addr), None);
        let e = parse("[metrics]\nlisten = \"127.0.0.1:9100\"\npath = \"/m\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("path")), "{e}");
        let e = parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn a_status_route_takes_policy_keys_but_no_chat_keys() {
        let c = parse("[[route]]\npath = \"/status\"\nkind = \"status\"\nauth = \"ticket\"\ntickets = [\"t\"]\n").unwrap();
        assert_eq!(c.routes[0].kind, RouteKind::Status);
        let e = parse("[[route]]\npath = \"/status\"\nkind = \"status\"\nannounce = false\n")
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("announce")),
            "{e}"
        );
    }

    #[test]
    fn bridge_routes_take_their_keys_with_defaults_and_refuse_others() {
        let c = parse(concat!(
            "[[route]]\npath = \"/p\"\nkind = \"process\"\ncommand = [\"/bin/cat\", \"-u\"]\n",
            "passenv = [\"TZ\"]\nkill_grace = \"250ms\"\n",
            "[[route]]\npath = \"/t\"\nkind = \"tcp\"\nbackend = \"127.0.0.1:5900\"\n",
        ))
        .unwrap();
        let RouteKind::Process(p) = &c.routes[0].kind else {
            panic!("process route: {:?}", c.routes[0]);
        };
        assert_eq!(p.command, ["/bin/cat", "-u"]);
        assert_eq!(p.passenv, ["TZ"]);
        assert_eq!(
            (p.mode, p.max_line, p.max_processes),
            (BridgeMode::Text, 65536, 64)
        );
        assert_eq!(
            (p.long_lines, p.invalid_utf8, p.stderr),
            (LongLines::Split, InvalidUtf8::Replace, StderrTo::Log)
        );
        assert_eq!(p.kill_grace, Duration::from_millis(250));
        let RouteKind::Tcp(t) = &c.routes[1].kind else {
            panic!("tcp route: {:?}", c.routes[1]);
        };
        assert_eq!(t.backend, "127.0.0.1:5900".parse().unwrap());
        assert_eq!(
            (t.mode, t.connect_timeout),
            (BridgeMode::Binary, Duration::from_secs(5))
        );

        let refused = |text: &str, line: usize, key: &str| {
            let e = parse(text).unwrap_err();
            assert_eq!((e.line, e.key.as_deref()), (Some(line), Some(key)), "{e}");
        };
        refused(
            "[[route]]\npath = \"/e\"\nkind = \"echo\"\ncommand = [\"x\"]\n",
            4,
            "command",
        );
        refused(
            "[[route]]\npath = \"/t\"\nkind = \"tcp\"\nbackend = \"127.0.0.1:1\"\nmax_line = 5\n",
            5,
            "max_line",
        );
        refused(
            "[[route]]\npath = \"/c\"\nkind = \"chat\"\nmode = \"text\"\n",
            4,
            "mode",
        );
        let e = parse("[[route]]\npath = \"/p\"\nkind = \"process\"\n").unwrap_err();
        assert!(e.message.contains("`command`"), "{e}");
        let e = parse("[[route]]\npath = \"/t\"\nkind = \"tcp\"\n").unwrap_err();
        assert!(e.message.contains("`backend` is required"), "{e}");
        let e =
            parse("[[route]]\npath = \"/t\"\nkind = \"tcp\"\nbackend = \"no-port\"\n").unwrap_err();
        assert!(e.message.contains("no-port"), "{e}");
        let e = parse("[[route]]\npath = \"/p\"\nkind = \"process\"\ncommand = [\"x\"]\nkill_grace = \"soon\"\n").unwrap_err();
        assert!(e.message.contains("kill_grace"), "{e}");
    }

    #[test]
    fn an_auth_key_of_another_method_is_refused_by_name() {
        let e = parse("[[route]]\npath = \"/x\"\nkind = \"echo\"\nauth = \"ticket\"\ntickets = [\"t\"]\nrealm = \"r\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(6), Some("realm")), "{e}");
        assert!(e.message.contains("auth = \"basic\""), "{e}");
    }

    #[test]
    fn each_route_kind_carries_only_its_own_keys_with_defaults() {
        let c = parse("[[route]]\npath = \"/c\"\nkind = \"chat\"\nmax_members = 7\n[[route]]\npath = \"/e\"\nkind = \"echo\"\nauth = \"cookie\"\ncookie_values = [\"v\"]\n").unwrap();
        let RouteKind::Chat(chat) = &c.routes[0].kind else {
            panic!("chat route: {:?}", c.routes[0]);
        };
        assert_eq!((chat.max_members, chat.max_rooms), (7, 1024));
        assert_eq!(c.routes[1].kind, RouteKind::Echo);
        assert_eq!(
            c.routes[1].auth,
            AuthConfig::Cookie {
                name: "wsd_session".into(),
                values: vec!["v".into()]
            }
        );
    }

    #[test]
    fn compression_keys_are_typed_ranged_and_only_for_compressed_routes() {
        let c = parse("[[route]]\npath = \"/d\"\nkind = \"echo\"\ncompression = \"dedicated\"\ncompression_window_bits = 9\ncompression_memory_level = 2\n").unwrap();
        let z = c.routes[0].compression;
        assert_eq!(z.mode, CompressionMode::Dedicated);
        assert_eq!(
            (
                z.settings.window_bits,
                z.settings.memory_level,
                z.settings.level,
                z.threshold
            ),
            (9, 2, 1, 256)
        );
        assert_eq!(
            parse("[[route]]\npath = \"/o\"\nkind = \"echo\"\n")
                .unwrap()
                .routes[0]
                .compression
                .mode,
            CompressionMode::Off
        );
        for (text, key, line, words) in [
            (
                "compression = \"shared\"\ncompression_window_bits = 8\n",
                "compression_window_bits",
                5,
                "out of range 9-15",
            ),
            (
                "compression = \"shared\"\ncompression_level = 10\n",
                "compression_level",
                5,
                "out of range 0-9",
            ),
            (
                "compression = \"shared\"\ncompression_threshold = 70000\n",
                "compression_threshold",
                5,
                "over 65535",
            ),
            (
                "compression_level = 3\n",
                "compression_level",
                4,
                "compression = \"shared\" or \"dedicated\"",
            ),
            (
                "compression = \"zstd\"\n",
                "compression",
                4,
                "unknown variant",
            ),
        ] {
            let text = format!("[[route]]\npath = \"/x\"\nkind = \"echo\"\n{text}");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.message.contains(words), "{text}: {e}");
        }
    }

    #[test]
    fn a_malformed_password_hash_is_refused_when_the_file_is_read() {
        let e = parse("[[user]]\nname = \"a\"\npassword_hash = \"plain\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("password_hash")),
            "{e}"
        );
    }

    #[test]
    fn listen_tls_without_a_tls_table_is_refused() {
        let e = parse("[server]\nlisten_tls = [\"127.0.0.1:9443\"]\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("listen_tls")),
            "{e}"
        );
        let c = parse("[server]\nlisten_tls = [\"127.0.0.1:9443\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[[tls.sni]]\nname = \"a.test\"\ncert = \"a.pem\"\nkey = \"ak.pem\"\n").unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(
            (tls.cert.to_str(), tls.sni[0].name.as_str()),
            (Some("c.pem"), "a.test")
        );
    }

    #[test]
    fn durations_parse_in_common_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}

//! What `wsd` does with requests and messages: the route table, the per-route
//! handshake policy (route, Origin, authentication, subprotocol), plain HTTP, and
//! one [`RouteHandler`] per route kind (`echo.rs`, `chat.rs`, `status.rs`,
//! `process.rs`, `tcp.rs`).
//!
//! Owns decisions only. It sees requests, whole messages and connection keys, and
//! must never touch a socket: the server carries out the effects handlers return.
//! Adding a route kind: a handler file here, a `RouteKind` variant in `config.rs`,
//! and one arm in [`Route::new`].

pub mod api;
pub mod auth;
pub mod chat;
pub mod echo;
pub mod handler;
pub mod policy;
pub mod process;
pub mod rooms;
pub mod static_files;
pub mod status;
pub mod tcp;

use std::cell::Cell;
use std::rc::Rc;

use crate::config::{
    ApiConfig, ApiListener, AuthConfig, Config, RouteConfig, RouteKind, UserConfig,
};
use crate::core::deflate::DeflateParams;
use crate::core::http::write_closing_response;
use crate::core::{Headers, Message, Request, Upgrade};
use auth::{authenticate, AuthFailure};
pub use handler::{
    BackendEnd, BackendSpec, ConnKey, Effects, Opening, Peer, Relay, RouteHandler, Run, Slot,
    Stream, Topic,
};
use policy::{choose_compression, choose_protocol, origin_allowed, ProtocolChoice};
use static_files::{HttpReply, StaticFiles};

/// A route: its configuration and the handler of its kind. Sessions hold an
/// `Rc<Route>`, so swapping the table (a reload) never moves a live session.
#[derive(Debug)]
pub struct Route {
    pub config: RouteConfig,
    pub handler: Rc<dyn RouteHandler>,
    /// What the server counted on this route (for `/metrics`); kept, like
    /// the handler, by a reload that keeps the route.
    pub traffic: Rc<RouteTraffic>,
}

/// A route's counters, kept by the server as it carries out the route's
/// traffic: plain cells, as everything in the one loop is single-threaded.
#[derive(Debug, Default)]
pub struct RouteTraffic {
    /// Open WebSockets on the route.
    pub open: Cell<u64>,
    pub messages_in: Cell<u64>,
    pub messages_out: Cell<u64>,
    /// Message payload bytes (after inflating, before compressing).
    pub payload_bytes_in: Cell<u64>,
    pub payload_bytes_out: Cell<u64>,
}

impl RouteTraffic {
    /// One message of `len` bytes arrived.
    pub fn received(&self, len: usize) {
        self.received_many(1, len);
    }

    /// `count` messages of `len` bytes in all arrived.
    pub fn received_many(&self, count: u64, len: usize) {
        bump(&self.messages_in, count);
        bump(&self.payload_bytes_in, len as u64);
    }

    /// One message of `len` bytes was queued for a connection.
    pub fn sent(&self, len: usize) {
        self.sent_many(1, len);
    }

    /// `count` messages of `len` bytes in all were queued for a connection.
    pub fn sent_many(&self, count: u64, len: usize) {
        bump(&self.messages_out, count);
        bump(&self.payload_bytes_out, len as u64);
    }
}

/// Adds `n` to a counter cell.
pub fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

impl Route {
    /// `relaying`: a backplane shares chat rooms with other processes.
    pub fn new(config: RouteConfig, relaying: bool) -> Route {
        let handler: Rc<dyn RouteHandler> = match &config.kind {
            RouteKind::Echo => Rc::new(echo::Echo),
            RouteKind::Chat(chat) => Rc::new(chat::Chat::new(chat.clone(), &config.path, relaying)),
            RouteKind::Status => Rc::new(status::Status::default()),
            RouteKind::Process(process) => Rc::new(process::ProcessRoute::new(process.clone())),
            RouteKind::Tcp(tcp) => Rc::new(tcp::TcpRoute::new(tcp.clone())),
        };
        Route {
            config,
            handler,
            traffic: Rc::default(),
        }
    }

    /// The route `config` describes, after a reload: a route at the same path
    /// with the same kind keeps its handler (and so a chat route its rooms and
    /// their members) and its counters. The handler takes the new settings
    /// only when the reload is committed ([`App::commit_reload`]).
    pub fn reloaded(config: RouteConfig, previous: &[Rc<Route>], relaying: bool) -> Route {
        let same = previous
            .iter()
            .find(|r| r.config.path == config.path && r.config.kind.name() == config.kind.name());
        match same {
            Some(old) => Route {
                config,
                handler: Rc::clone(&old.handler),
                traffic: Rc::clone(&old.traffic),
            },
            None => Route::new(config, relaying),
        }
    }
}

/// The application: routes and static files, built once from the config.
#[derive(Debug)]
pub struct App {
    routes: Vec<Rc<Route>>,
    users: Vec<UserConfig>,
    static_files: Option<StaticFiles>,
    api: ApiConfig,
}

/// The outcome of a WebSocket upgrade request.
#[derive(Debug)]
pub enum Admission {
    Accept(Accepted),
    Reject(Rejection),
}

/// An upgrade the route's policy accepts; its handler decides next.
#[derive(Debug)]
pub struct Accepted {
    pub route: Rc<Route>,
    pub protocol: Option<String>,
    /// permessage-deflate as answered, if the route and an offer agree.
    pub deflate: Option<DeflateParams>,
    /// Basic auth: who this is.
    pub user: Option<String>,
}

/// An upgrade the route refuses: the response to send and a line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// Which rule refused, for the counters.
    pub cause: RefusalCause,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Why, for the log. Never contains a secret.
    pub reason: String,
}

/// Which rule refused an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCause {
    /// No WebSocket route at the path (404).
    NoRoute,
    /// The Origin is not allowed (403).
    Origin,
    /// Authentication missing or refused (401/403).
    Auth,
    /// None of the route's required subprotocols (400).
    Protocol,
    /// The route's handler refused (e.g. a full room).
    Route,
}

impl RefusalCause {
    /// The cause as a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            RefusalCause::NoRoute => "no_route",
            RefusalCause::Origin => "origin",
            RefusalCause::Auth => "auth",
            RefusalCause::Protocol => "protocol",
            RefusalCause::Route => "route",
        }
    }
}

impl Rejection {
    /// A refusal by a route's handler.
    pub fn new(status: u16, body: impl Into<String>) -> Rejection {
        Rejection::by(RefusalCause::Route, status, body)
    }

    /// A refusal by `cause`.
    pub fn by(cause: RefusalCause, status: u16, body: impl Into<String>) -> Rejection {
        let body = body.into();
        Rejection {
            status,
            cause,
            headers: Vec::new(),
            reason: body.clone(),
            body,
        }
    }

    /// Appends the response to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        write_closing_response(out, self.status, &headers, &self.body);
    }
}

impl App {
    /// Builds the app. Fails if the static root is configured but unusable.
    pub fn new(config: &Config) -> Result<App, String> {
        App::reloaded(config, &App::empty())
    }

    fn empty() -> App {
        App {
            routes: Vec::new(),
            users: Vec::new(),
            static_files: None,
            api: ApiConfig::default(),
        }
    }

    /// Builds the app for a reloaded config, keeping the handlers of routes
    /// that stay (see [`Route::reloaded`]).
    pub fn reloaded(config: &Config, previous: &App) -> Result<App, String> {
        let static_files = if config.static_files.enabled {
            Some(StaticFiles::new(&config.static_files)?)
        } else {
            None
        };
        Ok(App {
            routes: config
                .routes
                .iter()
                .map(|r| {
                    Rc::new(Route::reloaded(
                        r.clone(),
                        &previous.routes,
                        config.backplane.is_some(),
                    ))
                })
                .collect(),
            users: config.users.clone(),
            static_files,
            api: config.api.clone(),
        })
    }

    /// Every WebSocket route, in config order.
    pub fn routes(&self) -> &[Rc<Route>] {
        &self.routes
    }

    /// Whether any route shows the server's status (the server then offers a
    /// snapshot about once a second to those whose handlers want one).
    pub fn shows_status(&self) -> bool {
        self.routes
            .iter()
            .any(|r| matches!(r.config.kind, RouteKind::Status))
    }

    /// A reload built this app and nothing failed: every kept handler takes
    /// its route's new settings now (a failed reload leaves them untouched).
    pub fn commit_reload(&self) {
        for route in &self.routes {
            route.handler.reconfigure(&route.config.kind);
        }
    }

    /// The API keys, if the API is served on this kind of listener
    /// (`admin`: the metrics listener).
    pub fn api_keys(&self, admin: bool) -> Option<&[String]> {
        let on_metrics = self.api.listener == ApiListener::Metrics;
        (!self.api.keys.is_empty() && admin == on_metrics).then_some(self.api.keys.as_slice())
    }

    /// Puts `message` into `room` of the route at `path` (see [`api`]):
    /// how many members it reaches in this process.
    pub fn publish(
        &self,
        path: &str,
        room: &str,
        message: Message,
        fx: &mut Effects,
    ) -> Result<usize, String> {
        let route = self
            .find_route(path)
            .ok_or_else(|| format!("no route at {path:?}"))?;
        fx.set_origin(None, &route.handler);
        let len = message.data.len();
        let delivered = route.handler.published(room, message, fx)?;
        route.traffic.received(len);
        Ok(delivered)
    }

    fn find_route(&self, path: &str) -> Option<&Rc<Route>> {
        self.routes.iter().find(|r| r.config.path == path)
    }

    /// Decides an upgrade request by the route's policy: route (404), Origin
    /// (403), authentication (401/403), subprotocol (400), in that order, then
    /// compression (declined, never refused). The route's handler has the last
    /// word when it opens the connection.
    pub fn admit(&self, request: &Request, upgrade: &Upgrade) -> Admission {
        let Some(route) = self.find_route(request.path()) else {
            return Admission::Reject(Rejection::by(
                RefusalCause::NoRoute,
                404,
                format!("no WebSocket route at {}", request.path()),
            ));
        };
        let config = &route.config;
        let origin = request.header("Origin");
        if !origin_allowed(config, origin) {
            let mut r = Rejection::by(RefusalCause::Origin, 403, "origin not allowed");
            r.reason = format!(
                "origin {:?} not allowed on {}",
                origin.unwrap_or("(none)"),
                config.path
            );
            return Admission::Reject(r);
        }
        let user = match authenticate(&config.auth, &self.users, request) {
            Ok(user) => user,
            Err(failure) => return Admission::Reject(auth_rejection(config, failure)),
        };
        let protocol = match choose_protocol(config, &upgrade.protocols) {
            ProtocolChoice::Chosen(p) => Some(p),
            ProtocolChoice::None => None,
            ProtocolChoice::Refused => {
                return Admission::Reject(Rejection::by(
                    RefusalCause::Protocol,
                    400,
                    format!(
                        "this route requires a subprotocol; supported: {}",
                        config.protocols.join(", ")
                    ),
                ))
            }
        };
        Admission::Accept(Accepted {
            route: Rc::clone(route),
            protocol,
            deflate: choose_compression(config, &upgrade.extensions),
            user,
        })
    }

    /// Answers a request that asked for no upgrade: 426 on a WebSocket route,
    /// otherwise a static file (or 404 when static files are off).
    pub fn plain_http(&self, request: &Request) -> HttpReply {
        if self.find_route(request.path()).is_some() {
            let mut out = Vec::new();
            write_closing_response(
                &mut out,
                426,
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
                "this is a WebSocket endpoint; send an Upgrade: websocket request",
            );
            return HttpReply::closing(426, out);
        }
        match &self.static_files {
            Some(files) => files.serve(request),
            None => {
                let mut out = Vec::new();
                write_closing_response(&mut out, 404, &[], "not found");
                HttpReply::closing(404, out)
            }
        }
    }
}

fn auth_rejection(route: &RouteConfig, failure: AuthFailure) -> Rejection {
    let mut r = match &route.auth {
        AuthConfig::Basic { realm } => {
            let mut r = Rejection::by(RefusalCause::Auth, 401, "authentication required");
            r.headers.push((
                "WWW-Authenticate",
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            ));
            r
        }
        _ if failure == AuthFailure::Missing => {
            Rejection::by(RefusalCause::Auth, 401, "authentication required")
        }
        _ => Rejection::by(RefusalCause::Auth, 403, "credential refused"),
    };
    r.reason = format!("{} on {}", failure, route.path);
    r
}

/// The percent-decoded value of `key` in a query string (`a=1&b=x%20y`).
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(k, _)| percent_decode(k).as_deref() == Some(key))
        .and_then(|(_, v)| percent_decode(&v.replace('+', " ")))
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_percent_decoded() {
        assert_eq!(
            query_param("room=a%20b&x=1", "room").as_deref(),
            Some("a b")
        );
        assert_eq!(
            query_param("x=1&room=lobby", "room").as_deref(),
            Some("lobby")
        );
        assert_eq!(query_param("x=1", "room"), None);
        assert_eq!(query_param("room=%zz", "room"), None);
        assert_eq!(query_param("room", "room").as_deref(), Some(""));
    }
}

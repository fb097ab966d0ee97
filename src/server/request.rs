//! Answering one HTTP request on a connection: a plain request goes to the app
//! (static files, 404, 426), an upgrade goes through the route's policy and then
//! its handler, and either opens a WebSocket session or is refused with a status.
//!
//! Owns the turn from request to response or session. It must never decide
//! policy (the app and the handlers do) or parse bytes (the core does).

use std::net::IpAddr;

use log::debug;

use crate::app::api::{self, ApiReply};
use crate::app::{bump, Admission, Opening, Peer, Rejection};
use crate::core::deflate::PerMessageDeflate;
use crate::core::http::{write_closing_response, write_error_response};
use crate::core::{write_accept_response, Headers, Request, Role, Upgrade, WebSocket};
use crate::server::client_addr::client_ip;
use crate::server::connection::{Conn, ConnState, Session, Shared};
use crate::server::deadlines::Deadline;
use crate::server::metrics;
use crate::server::per_ip::{Refusal, NO_ENTRY};

impl Conn {
    /// Answers one complete request head.
    pub(super) fn answer(&mut self, request: Request, key: usize, sh: &mut Shared) {
        sh.stats.http_requests += 1;
        if request.path() == api::PUBLISH_PATH {
            if let Some(keys) = sh.app.api_keys(self.admin) {
                let max_body = sh.settings.ws_limits.max_message_size;
                match api::admit(keys, &request, max_body) {
                    Ok(expected) => {
                        self.state = ConnState::RequestBody {
                            request: Box::new(request),
                            body: Vec::with_capacity(expected),
                            expected,
                        };
                        if expected == 0 {
                            self.finish_api(key, sh);
                        }
                    }
                    Err(reply) => self.answer_api(&request, &reply, key, sh),
                }
                return;
            }
        }
        if self.admin || (sh.settings.health_on_main && metrics::is_health(request.path())) {
            return self.answer_operator(&request, key, sh);
        }
        if sh.settings.track_clients && !self.admit_client(&request, key, sh) {
            return;
        }
        match request.websocket_upgrade() {
            Err(e) => {
                self.outbox.append(|out| write_error_response(out, &e));
                sh.stats.handshake_failures += 1;
                sh.stats.bad_requests += 1;
                let (id, from) = (self.id, self.client_label(sh));
                sh.log_peer(format_args!(
                    "conn {id} from {from}: refused upgrade {} {}: {e} (answered {})",
                    request.method(),
                    request.path(),
                    e.status()
                ));
                self.start_closing(key, sh);
            }
            Ok(None) => self.serve_plain(&request, key, sh),
            Ok(Some(upgrade)) => self.upgrade(&request, &upgrade, key, sh),
        }
    }

    /// The body of an API request is whole: publish, answer, close.
    pub(super) fn finish_api(&mut self, key: usize, sh: &mut Shared) {
        let ConnState::RequestBody { request, body, .. } =
            std::mem::replace(&mut self.state, ConnState::Request)
        else {
            return;
        };
        let reply = api::publish(&sh.app, &request, &body, &mut sh.fx);
        self.answer_api(&request, &reply, key, sh);
    }

    fn answer_api(&mut self, request: &Request, reply: &ApiReply, key: usize, sh: &mut Shared) {
        let mut headers: Vec<(&str, &str)> = reply.headers.clone();
        headers.push(("Content-Type", "application/json"));
        self.outbox.append(|out| {
            write_closing_response(out, reply.status, &headers, &reply.body);
        });
        if reply.status != 200 {
            let (id, from) = (self.id, self.client_label(sh));
            sh.log_peer(format_args!(
                "conn {id} from {from}: {} {} answered {}",
                request.method(),
                request.path(),
                reply.status
            ));
        }
        self.start_closing(key, sh);
    }

    /// Per-address accounting before any upgrade work: the client's address
    /// (a trusted proxy's header may name it) is counted against
    /// `max_connections_per_ip` once per connection, and every request takes
    /// a token from its bucket. `false`: refused (answered and closing).
    fn admit_client(&mut self, request: &Request, key: usize, sh: &mut Shared) -> bool {
        let upgrade = request.header("Upgrade").is_some();
        if self.client == NO_ENTRY {
            let Some(peer) = self.transport.peer_ip() else {
                return true;
            };
            let ip = client_ip(request, peer, &sh.settings.trusted_proxies);
            if let Err(refusal) = self.count_client(ip, sh) {
                self.refuse_client(refusal, ip, upgrade, key, sh);
                return false;
            }
        }
        if let Err(refusal) = sh.per_ip.request(self.client, sh.now) {
            if let Some(ip) = sh.per_ip.ip(self.client) {
                self.refuse_client(refusal, ip, upgrade, key, sh);
                return false;
            }
        }
        true
    }

    /// The client's address for a log line: the one a PROXY header or a
    /// trusted proxy named, else the peer's.
    fn client_label(&self, sh: &Shared) -> String {
        sh.per_ip
            .ip(self.client)
            .or_else(|| self.transport.peer_ip())
            .map_or_else(|| "?".to_owned(), |ip| ip.to_string())
    }

    /// Counts this connection for client address `ip` (once).
    pub(super) fn count_client(&mut self, ip: IpAddr, sh: &mut Shared) -> Result<(), Refusal> {
        if !sh.settings.track_clients || self.client != NO_ENTRY {
            return Ok(());
        }
        self.client = sh.per_ip.open(ip, sh.now)?;
        Ok(())
    }

    /// Answers a per-address refusal: 503 to an upgrade (or before the
    /// request), 429 to plain HTTP, with `Retry-After`; counted and logged
    /// (rate-limited).
    pub(super) fn refuse_client(
        &mut self,
        refusal: Refusal,
        ip: IpAddr,
        upgrade: bool,
        key: usize,
        sh: &mut Shared,
    ) {
        let (label, why) = match refusal {
            Refusal::Connections => ("per_ip_limit", "too many connections from this address"),
            Refusal::Rate => ("rate", "too many requests from this address"),
            Refusal::Table => ("rate", "too many addresses at once"),
        };
        let status = if upgrade { 503 } else { 429 };
        self.outbox
            .append(|out| write_closing_response(out, status, &[("Retry-After", "1")], why));
        sh.stats.handshake_failures += 1;
        *sh.stats.refused_by.entry(label).or_default() += 1;
        let id = self.id;
        sh.log_peer(format_args!(
            "conn {id} from {ip}: refused: {why} (answered {status})"
        ));
        self.start_closing(key, sh);
    }

    /// `/metrics`, `/healthz`, `/readyz` (and 404 for anything else on the
    /// metrics listener, upgrades included); the connection closes after it.
    fn answer_operator(&mut self, request: &Request, key: usize, sh: &mut Shared) {
        let view = metrics::View {
            stats: &sh.stats,
            routes: sh.app.routes(),
            draining: sh.draining,
            backplane: sh.backplane.as_ref().map(|b| b.stats),
        };
        let admin = self.admin;
        let mut status = 0;
        self.outbox
            .append(|out| status = metrics::respond(out, request, &view, admin));
        debug!(
            "conn {}: {} {} -> {status}",
            self.id,
            request.method(),
            request.path()
        );
        self.start_closing(key, sh);
    }

    fn serve_plain(&mut self, request: &Request, key: usize, sh: &mut Shared) {
        let reply = sh.app.plain_http(request);
        debug!(
            "conn {}: {} {} -> {}",
            self.id,
            request.method(),
            // Never the query: it may carry a ticket.
            request.path(),
            reply.status
        );
        self.outbox.push_owned(reply.head);
        let handshake = sh.now + sh.settings.handshake_ticks;
        match reply.body {
            Some((file, remaining)) => {
                self.state = ConnState::FileBody {
                    file,
                    remaining,
                    keep_alive: reply.keep_alive,
                };
                self.deadlines.clear_all();
                self.deadlines.set(Deadline::Transfer, handshake);
            }
            None if reply.keep_alive => self.deadlines.set(Deadline::Request, handshake),
            None => self.start_closing(key, sh),
        }
    }

    fn upgrade(&mut self, request: &Request, upgrade: &Upgrade, key: usize, sh: &mut Shared) {
        let accepted = match sh.app.admit(request, upgrade) {
            Admission::Accept(accepted) => accepted,
            Admission::Reject(rejection) => return self.refuse(request, &rejection, key, sh),
        };
        let peer = Peer { key, id: self.id };
        sh.fx.set_origin(Some(key), &accepted.route.handler);
        let handler = &accepted.route.handler;
        let (remote, local) = if handler.uses_addresses() {
            let remote = self.transport.peer_addr().map(|addr| {
                // The client a PROXY header or a trusted proxy named, if any.
                match sh.per_ip.ip(self.client) {
                    Some(ip) if ip != addr.ip().to_canonical() => std::net::SocketAddr::new(ip, 0),
                    _ => addr,
                }
            });
            (remote, self.transport.local_addr())
        } else {
            (None, None)
        };
        let opening = Opening {
            request,
            peer,
            remote,
            local,
            tls: self.transport.is_tls(),
            user: accepted.user.as_deref(),
            protocol: accepted.protocol.as_deref(),
        };
        let slot = match accepted.route.handler.open(&opening, &mut sh.fx) {
            Ok(slot) => slot,
            Err(rejection) => {
                sh.fx.discard_own();
                return self.refuse(request, &rejection, key, sh);
            }
        };
        let protocol = accepted.protocol.as_deref();
        let mut ws = WebSocket::server(sh.settings.ws_limits);
        let mut extensions = None;
        if let Some(params) = &accepted.deflate {
            let compression = &accepted.route.config.compression;
            ws = ws.with_deflate(PerMessageDeflate::new(
                Role::Server,
                params,
                compression.settings,
                compression.threshold,
            ));
            extensions = Some(params.response_header());
        }
        let headers: &[(&str, &str)] = match &extensions {
            Some(answer) => &[("Sec-WebSocket-Extensions", answer)],
            None => &[],
        };
        self.outbox
            .append(|out| write_accept_response(out, upgrade, protocol, headers));
        bump(&accepted.route.traffic.open, 1);
        self.state = ConnState::WebSocket(Session {
            ws,
            route: accepted.route,
            slot,
            rate_window: 0,
            rate_count: 0,
        });
        self.deadlines.clear_all();
        if sh.settings.ping_interval_ticks != 0 {
            self.deadlines
                .set(Deadline::Ping, sh.now + sh.settings.ping_interval_ticks);
        }
        sh.stats.handshakes += 1;
        debug!(
            "conn {}: upgraded on {}{}{}{}",
            self.id,
            // Never the query: it may carry a ticket.
            request.path(),
            protocol
                .map(|p| format!(" protocol {p}"))
                .unwrap_or_default(),
            accepted
                .user
                .map(|u| format!(" user {u}"))
                .unwrap_or_default(),
            extensions.map(|e| format!(" with {e}")).unwrap_or_default()
        );
        // What the handler asked for on opening goes out after the 101.
        self.carry_out_effects(key, None, sh);
    }

    fn refuse(&mut self, request: &Request, rejection: &Rejection, key: usize, sh: &mut Shared) {
        self.outbox.append(|out| rejection.write(out));
        sh.stats.handshake_failures += 1;
        *sh.stats
            .refused_by
            .entry(rejection.cause.label())
            .or_default() += 1;
        let (id, from) = (self.id, self.client_label(sh));
        sh.log_peer(format_args!(
            "conn {id} from {from}: refused upgrade to {}: {} (answered {})",
            request.path(),
            rejection.reason,
            rejection.status
        ));
        self.start_closing(key, sh);
    }
}

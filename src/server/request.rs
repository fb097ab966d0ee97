//! Answering one HTTP request on a connection: a plain request goes to the app
//! (static files, 404, 426), an upgrade goes through the route's policy and then
//! its handler, and either opens a WebSocket session or is refused with a status.
//!
//! Owns the turn from request to response or session. It must never decide
//! policy (the app and the handlers do) or parse bytes (the core does).

use log::debug;

use crate::app::{bump, Admission, Peer, Rejection};
use crate::core::deflate::PerMessageDeflate;
use crate::core::http::write_error_response;
use crate::core::{write_accept_response, Request, Role, Upgrade, WebSocket};
use crate::server::connection::{Conn, ConnState, Session, Shared};
use crate::server::deadlines::Deadline;
use crate::server::metrics;

impl Conn {
    /// Answers one complete request head.
    pub(super) fn answer(&mut self, request: Request, key: usize, sh: &mut Shared) {
        sh.stats.http_requests += 1;
        if self.admin || (sh.settings.health_on_main && metrics::is_health(request.path())) {
            return self.answer_operator(&request, key, sh);
        }
        match request.websocket_upgrade() {
            Err(e) => {
                self.outbox.append(|out| write_error_response(out, &e));
                sh.stats.handshake_failures += 1;
                sh.stats.bad_requests += 1;
                let id = self.id;
                sh.log_peer(format_args!(
                    "conn {id}: refused upgrade {} {}: {e} (answered {})",
                    request.method,
                    request.path(),
                    e.status()
                ));
                self.start_closing(key, sh);
            }
            Ok(None) => self.serve_plain(&request, key, sh),
            Ok(Some(upgrade)) => self.upgrade(&request, &upgrade, key, sh),
        }
    }

    /// `/metrics`, `/healthz`, `/readyz` (and 404 for anything else on the
    /// metrics listener, upgrades included); the connection closes after it.
    fn answer_operator(&mut self, request: &Request, key: usize, sh: &mut Shared) {
        let view = metrics::View {
            stats: &sh.stats,
            routes: sh.app.routes(),
            draining: sh.draining,
        };
        let admin = self.admin;
        let mut status = 0;
        self.outbox
            .append(|out| status = metrics::respond(out, request, &view, admin));
        debug!(
            "conn {}: {} {} -> {status}",
            self.id,
            request.method,
            request.path()
        );
        self.start_closing(key, sh);
    }

    fn serve_plain(&mut self, request: &Request, key: usize, sh: &mut Shared) {
        let reply = sh.app.plain_http(request);
        debug!(
            "conn {}: {} {} -> {}",
            self.id,
            request.method,
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
        let slot = match accepted.route.handler.open(request, peer, &mut sh.fx) {
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
        self.carry_out_effects(sh);
    }

    fn refuse(&mut self, request: &Request, rejection: &Rejection, key: usize, sh: &mut Shared) {
        self.outbox.append(|out| rejection.write(out));
        sh.stats.handshake_failures += 1;
        *sh.stats
            .refused_by
            .entry(rejection.cause.label())
            .or_default() += 1;
        let id = self.id;
        sh.log_peer(format_args!(
            "conn {id}: refused upgrade to {}: {} (answered {})",
            request.path(),
            rejection.reason,
            rejection.status
        ));
        self.start_closing(key, sh);
    }
}

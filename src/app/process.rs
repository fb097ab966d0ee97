//! The process route (`kind = "process"`): one program per connection, as
//! websocketd runs them. In text mode each line the program writes to stdout is
//! a text message and each message received is written to its stdin followed by
//! `\n`; in binary mode stdout's bytes go out as binary messages as they come and
//! messages go to stdin unchanged. stderr goes to the log or to the client.
//!
//! Owns what the program is started with (argv, working directory, the CGI
//! environment) and how bytes become messages (lines, `max_line`, invalid
//! UTF-8, the close code from the exit status). It must never spawn, signal or
//! read a pipe itself: it asks for a backend through [`Effects::attach`] and
//! the server's bridge table runs it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde::Serialize;

use crate::app::handler::{
    BackendEnd, BackendSpec, Effects, Opening, Peer, RouteHandler, Slot, Stream,
};
use crate::app::Rejection;
use crate::config::{BridgeMode, InvalidUtf8, LongLines, ProcessConfig, RouteKind, StderrTo};
use crate::core::{CloseCode, Headers, Message, MessageKind, MessageRef};

#[derive(Debug)]
pub struct ProcessRoute {
    /// Settings; a reload may replace them (running programs keep theirs).
    config: RefCell<ProcessConfig>,
    /// Programs started by this route and not yet reaped.
    running: Rc<Cell<usize>>,
}

/// A stderr line sent to the client with `stderr = "client"`.
#[derive(Serialize)]
struct StderrLine<'a> {
    stream: &'static str,
    data: &'a str,
}

impl ProcessRoute {
    pub fn new(config: ProcessConfig) -> ProcessRoute {
        ProcessRoute {
            config: RefCell::new(config),
            running: Rc::default(),
        }
    }

    /// The environment the program gets: the `passenv` variables wsd has,
    /// then the CGI variables websocketd sets, then the request headers as
    /// `HTTP_*` (except `Authorization`, which may carry a password).
    fn environment(&self, opening: &Opening<'_>) -> Vec<(String, String)> {
        let config = self.config.borrow();
        let mut env: Vec<(String, String)> = config
            .passenv
            .iter()
            .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
            .collect();
        let request = opening.request;
        let (path, query) = match request.target().split_once('?') {
            Some((path, query)) => (path, query),
            None => (request.target(), ""),
        };
        let mut set = |name: &str, value: String| env.push((name.to_owned(), value));
        set("GATEWAY_INTERFACE", "websocketd-CGI/0.1".to_owned());
        set(
            "SERVER_SOFTWARE",
            concat!("wsd/", env!("CARGO_PKG_VERSION")).to_owned(),
        );
        set(
            "SERVER_PROTOCOL",
            format!("HTTP/1.{}", request.minor_version),
        );
        set("REQUEST_METHOD", request.method().to_owned());
        set("REQUEST_URI", request.target().to_owned());
        set("SCRIPT_NAME", path.to_owned());
        set("PATH_INFO", String::new());
        set("QUERY_STRING", query.to_owned());
        if let Some(remote) = opening.remote {
            set("REMOTE_ADDR", remote.ip().to_canonical().to_string());
            set("REMOTE_HOST", remote.ip().to_canonical().to_string());
            set("REMOTE_PORT", remote.port().to_string());
        }
        let host = request.header("Host").map(|h| {
            // "name:port" or "[v6]:port": the name part.
            match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => h,
            }
        });
        if let Some(name) = host {
            set("SERVER_NAME", name.to_owned());
        } else if let Some(local) = opening.local {
            set("SERVER_NAME", local.ip().to_string());
        }
        if let Some(local) = opening.local {
            set("SERVER_PORT", local.port().to_string());
        }
        if opening.tls {
            set("HTTPS", "on".to_owned());
        }
        if let Some(user) = opening.user {
            set("REMOTE_USER", user.to_owned());
            set("AUTH_TYPE", "Basic".to_owned());
        }
        for (header_name, header_value) in request.header_fields().iter() {
            if header_name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            let name: String = header_name
                .chars()
                .map(|c| match c {
                    'a'..='z' => c.to_ascii_uppercase(),
                    'A'..='Z' | '0'..='9' => c,
                    _ => '_',
                })
                .collect();
            let name = format!("HTTP_{name}");
            match env.iter_mut().find(|(n, _)| *n == name) {
                Some((_, value)) => {
                    value.push_str(", ");
                    value.push_str(header_value);
                }
                None => env.push((name, header_value.to_owned())),
            }
        }
        env
    }

    /// Sends one line (or piece of one) of the program's output.
    fn send_line(&self, peer: Peer, stream: Stream, line: &[u8], fx: &mut Effects) {
        let config = self.config.borrow();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match stream {
            Stream::Out => fx.reply(match std::str::from_utf8(line) {
                Ok(_) => text(line.to_vec()),
                Err(_) if config.invalid_utf8 == InvalidUtf8::Binary => Message {
                    kind: MessageKind::Binary,
                    data: line.to_vec(),
                },
                Err(_) => text(String::from_utf8_lossy(line).into_owned().into_bytes()),
            }),
            Stream::Err => {
                let line = String::from_utf8_lossy(line);
                match config.stderr {
                    StderrTo::Log => fx.log(format!("conn {}: program stderr: {line}", peer.id)),
                    StderrTo::Client => {
                        let json = StderrLine {
                            stream: "stderr",
                            data: &line,
                        };
                        // A struct of strings always serializes.
                        fx.reply(text(serde_json::to_vec(&json).unwrap_or_default()));
                    }
                }
            }
        }
    }
}

fn text(data: Vec<u8>) -> Message {
    Message {
        kind: MessageKind::Text,
        data,
    }
}

/// The longest prefix of `bytes` of at most `max` bytes that does not cut a
/// UTF-8 sequence in two (at least one byte, so a piece always moves on).
fn piece_len(bytes: &[u8], max: usize) -> usize {
    let mut end = max.min(bytes.len());
    while end > 0 && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    if end == 0 {
        max.min(bytes.len()).max(1)
    } else {
        end
    }
}

impl RouteHandler for ProcessRoute {
    /// The program's environment names both ends (`REMOTE_ADDR`, `SERVER_PORT`).
    fn uses_addresses(&self) -> bool {
        true
    }

    fn open(&self, opening: &Opening<'_>, fx: &mut Effects) -> Result<Slot, Rejection> {
        let env = self.environment(opening);
        let config = self.config.borrow();
        if self.running.get() >= config.max_processes {
            let mut refusal = Rejection::new(
                503,
                format!(
                    "{} programs running on this route (max_processes)",
                    self.running.get()
                ),
            );
            refusal.headers.push(("Retry-After", "1".to_owned()));
            return Err(refusal);
        }
        fx.attach(BackendSpec::Process {
            argv: config.command.clone(),
            cwd: config.cwd.clone(),
            env,
            kill_grace: config.kill_grace,
            running: Rc::clone(&self.running),
        });
        Ok(0)
    }

    fn message(&self, _: Peer, _: Slot, message: MessageRef<'_>, fx: &mut Effects) {
        fx.to_backend(message.data);
        if self.config.borrow().mode == BridgeMode::Text {
            fx.to_backend(b"\n");
        }
    }

    fn closed(&self, _: Peer, _: Slot, _: &mut Effects) {}

    fn backend_output(
        &self,
        peer: Peer,
        _: Slot,
        stream: Stream,
        data: &[u8],
        at_end: bool,
        fx: &mut Effects,
    ) -> usize {
        let (mode, max_line, long_lines) = {
            let c = self.config.borrow();
            (c.mode, c.max_line, c.long_lines)
        };
        if stream == Stream::Out && mode == BridgeMode::Binary {
            if !data.is_empty() {
                fx.reply(Message {
                    kind: MessageKind::Binary,
                    data: data.to_vec(),
                });
            }
            return data.len();
        }
        let mut pos = 0;
        while let Some(newline) = data[pos..].iter().position(|&b| b == b'\n') {
            if newline > max_line && stream == Stream::Out && long_lines == LongLines::Close {
                return self.line_too_long(max_line, data.len(), fx);
            }
            let mut line = &data[pos..pos + newline];
            while line.len() > max_line {
                let n = piece_len(line, max_line);
                self.send_line(peer, stream, &line[..n], fx);
                line = &line[n..];
            }
            self.send_line(peer, stream, line, fx);
            pos += newline + 1;
        }
        // No newline in what is left: hold it unless it is over the bound.
        while data.len() - pos > max_line || (at_end && pos < data.len()) {
            let too_long = data.len() - pos > max_line;
            if too_long && stream == Stream::Out && long_lines == LongLines::Close {
                return self.line_too_long(max_line, data.len(), fx);
            }
            let n = piece_len(&data[pos..], max_line);
            self.send_line(peer, stream, &data[pos..pos + n], fx);
            pos += n;
        }
        pos
    }

    fn backend_ended(&self, peer: Peer, _: Slot, end: &BackendEnd, fx: &mut Effects) {
        match end {
            BackendEnd::Exited {
                code: Some(0),
                signal: _,
            } => fx.close(CloseCode::NORMAL, "program exited with status 0"),
            BackendEnd::Exited {
                code: Some(code),
                signal: _,
            } => fx.close(
                CloseCode::INTERNAL_ERROR,
                format!("program exited with status {code}"),
            ),
            BackendEnd::Exited { code: None, signal } => fx.close(
                CloseCode::INTERNAL_ERROR,
                format!("program killed by signal {}", signal.unwrap_or(0)),
            ),
            BackendEnd::Unavailable(why) => {
                fx.log(format!(
                    "conn {}: program could not be started: {why}",
                    peer.id
                ));
                fx.close(CloseCode::INTERNAL_ERROR, "program could not be started");
            }
            BackendEnd::Closed | BackendEnd::Reset(_) => {
                fx.close(CloseCode::INTERNAL_ERROR, "program ended")
            }
        }
    }

    fn reconfigure(&self, kind: &RouteKind) {
        if let RouteKind::Process(config) = kind {
            *self.config.borrow_mut() = config.clone();
        }
    }
}

impl ProcessRoute {
    /// `long_lines = "close"`: a line over `max_line` closes with 1009.
    fn line_too_long(&self, max_line: usize, len: usize, fx: &mut Effects) -> usize {
        fx.close(
            CloseCode::TOO_BIG,
            format!("program output line over {max_line} bytes"),
        );
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{parse_request, Request, RequestLimits};

    fn config(mode: BridgeMode, max_line: usize, long_lines: LongLines) -> ProcessConfig {
        ProcessConfig {
            command: vec!["/bin/cat".to_owned()],
            cwd: None,
            passenv: vec![],
            mode,
            max_line,
            long_lines,
            invalid_utf8: InvalidUtf8::Replace,
            stderr: StderrTo::Client,
            max_processes: 1,
            kill_grace: std::time::Duration::from_secs(1),
        }
    }

    fn route(mode: BridgeMode, max_line: usize, long_lines: LongLines) -> Rc<dyn RouteHandler> {
        Rc::new(ProcessRoute::new(config(mode, max_line, long_lines)))
    }

    fn request(head: &str) -> Request {
        parse_request(head.as_bytes(), &RequestLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    const PEER: Peer = Peer { key: 1, id: 1 };

    /// Feeds `chunks` as a pipe would deliver them, keeping the unconsumed
    /// tail as the server does; returns the messages as strings.
    fn feed(handler: &Rc<dyn RouteHandler>, chunks: &[&[u8]]) -> (Vec<String>, Effects) {
        let mut fx = Effects::default();
        fx.set_origin(Some(1), handler);
        let mut tail = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            tail.extend_from_slice(chunk);
            let end = i + 1 == chunks.len();
            let n = handler.backend_output(PEER, 0, Stream::Out, &tail, end, &mut fx);
            tail.drain(..n);
        }
        assert!(tail.is_empty());
        let sent = fx
            .take_replies()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .collect();
        (sent, fx)
    }

    #[test]
    fn lines_become_messages_whatever_the_chunks() {
        let h = route(BridgeMode::Text, 100, LongLines::Split);
        let (sent, _) = feed(&h, &[b"one\ntw", b"o\r\n", b"", b"three\nlast"]);
        assert_eq!(sent, ["one", "two", "three", "last"]);
    }

    #[test]
    fn a_long_line_is_split_or_closes_with_1009() {
        let h = route(BridgeMode::Text, 4, LongLines::Split);
        let (sent, _) = feed(&h, &[b"abcdefghij\nxy", b"zzzzzzz"]);
        assert_eq!(sent, ["abcd", "efgh", "ij", "xyzz", "zzzz", "z"]);
        let h = route(BridgeMode::Text, 4, LongLines::Close);
        let (sent, mut fx) = feed(&h, &[b"ok\nabcdefghij"]);
        assert_eq!(sent, ["ok"]);
        assert_eq!(fx.take_close().map(|c| c.0), Some(CloseCode::TOO_BIG));
    }

    #[test]
    fn split_pieces_never_cut_a_character() {
        let h = route(BridgeMode::Text, 5, LongLines::Split);
        let (sent, _) = feed(&h, &["ééééé\n".as_bytes()]);
        assert_eq!(sent, ["éé", "éé", "é"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_by_default() {
        let h = route(BridgeMode::Text, 100, LongLines::Split);
        let (sent, _) = feed(&h, &[b"a\xffb\n"]);
        assert_eq!(sent, ["a\u{fffd}b"]);
    }

    #[test]
    fn binary_mode_sends_chunks_and_writes_messages_raw() {
        let h = route(BridgeMode::Binary, 100, LongLines::Split);
        let (sent, _) = feed(&h, &[b"a\nb", b"c"]);
        assert_eq!(sent, ["a\nb", "c"]);
        let mut fx = Effects::default();
        h.message(PEER, 0, text(b"x".to_vec()).borrowed(), &mut fx);
        assert_eq!(fx.backend_bytes().as_slice(), b"x");
        let t = route(BridgeMode::Text, 100, LongLines::Split);
        let mut fx = Effects::default();
        t.message(PEER, 0, text(b"x".to_vec()).borrowed(), &mut fx);
        assert_eq!(fx.backend_bytes().as_slice(), b"x\n");
    }

    #[test]
    fn stderr_lines_go_to_the_client_as_json() {
        let h = route(BridgeMode::Text, 100, LongLines::Split);
        let mut fx = Effects::default();
        let n = h.backend_output(PEER, 0, Stream::Err, b"oops \"x\"\npart", false, &mut fx);
        assert_eq!(n, 9);
        let sent: Vec<_> = fx.take_replies().map(|m| m.data).collect();
        assert_eq!(
            sent,
            [br#"{"stream":"stderr","data":"oops \"x\""}"#.to_vec()]
        );
    }

    #[test]
    fn the_exit_status_picks_the_close_code() {
        let h = route(BridgeMode::Text, 100, LongLines::Split);
        let mut fx = Effects::default();
        let end = |code, signal| BackendEnd::Exited { code, signal };
        h.backend_ended(PEER, 0, &end(Some(0), None), &mut fx);
        assert_eq!(fx.take_close().map(|c| c.0), Some(CloseCode::NORMAL));
        h.backend_ended(PEER, 0, &end(Some(3), None), &mut fx);
        let (code, reason) = fx.take_close().unwrap();
        assert_eq!(
            (code, reason.as_ref()),
            (CloseCode::INTERNAL_ERROR, "program exited with status 3")
        );
        h.backend_ended(PEER, 0, &end(None, Some(9)), &mut fx);
        assert_eq!(fx.take_close().unwrap().1, "program killed by signal 9");
    }

    #[test]
    fn the_environment_is_cgi_and_the_allow_list_only() {
        let h = ProcessRoute::new(ProcessConfig {
            passenv: vec!["PATH".to_owned(), "WSD_SURELY_UNSET_VAR".to_owned()],
            ..config(BridgeMode::Text, 1, LongLines::Split)
        });
        let req = request(
            "GET /run?x=1 HTTP/1.1\r\nHost: example.org:8080\r\nX-Trace-Id: 7\r\nAuthorization: Basic c2VjcmV0\r\n\r\n",
        );
        let opening = Opening {
            remote: Some("127.0.0.9:4444".parse().unwrap()),
            local: Some("127.0.0.1:8080".parse().unwrap()),
            tls: true,
            user: Some("ann"),
            ..Opening::new(&req, PEER)
        };
        let env = h.environment(&opening);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REMOTE_ADDR"), Some("127.0.0.9"));
        assert_eq!(get("REMOTE_PORT"), Some("4444"));
        assert_eq!(get("QUERY_STRING"), Some("x=1"));
        assert_eq!(get("REQUEST_URI"), Some("/run?x=1"));
        assert_eq!(get("SCRIPT_NAME"), Some("/run"));
        assert_eq!(get("SERVER_NAME"), Some("example.org"));
        assert_eq!(get("SERVER_PORT"), Some("8080"));
        assert_eq!(get("HTTPS"), Some("on"));
        assert_eq!(get("REMOTE_USER"), Some("ann"));
        assert_eq!(get("HTTP_X_TRACE_ID"), Some("7"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(get("WSD_SURELY_UNSET_VAR"), None);
        assert_eq!(get("PATH").is_some(), std::env::var("PATH").is_ok());
        assert_eq!(get("HOME"), None);
    }

    #[test]
    fn over_max_processes_the_upgrade_gets_503() {
        let h = route(BridgeMode::Text, 100, LongLines::Split);
        let req = request("GET /run HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut fx = Effects::default();
        assert!(h.open(&Opening::new(&req, PEER), &mut fx).is_ok());
        let Some(BackendSpec::Process { running, .. }) = fx.take_attach() else {
            panic!("no process asked for");
        };
        running.set(1);
        let refused = h.open(&Opening::new(&req, PEER), &mut fx).unwrap_err();
        assert_eq!(refused.status, 503);
        running.set(0);
        assert!(h.open(&Opening::new(&req, PEER), &mut fx).is_ok());
    }
}

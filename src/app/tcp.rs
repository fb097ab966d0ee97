//! The tcp route (`kind = "tcp"`): one TCP connection to a backend per
//! WebSocket, as websockify makes them (noVNC to a VNC server, a browser
//! terminal to an SSH gateway). Bytes from the backend go out as binary
//! messages (text in text mode, cut only between characters); every message's
//! payload goes to the backend unchanged.
//!
//! Owns the bytes-to-messages rule and the close code for each way the backend
//! ends. It must never open or read a socket: it asks for the connection with
//! [`Effects::attach`] and the server's bridge table makes it.

use std::cell::RefCell;

use crate::app::handler::{
    BackendEnd, BackendSpec, Effects, Opening, Peer, RouteHandler, Slot, Stream,
};
use crate::app::Rejection;
use crate::config::{BridgeMode, RouteKind, TcpConfig};
use crate::core::{CloseCode, Message, MessageKind, MessageRef};

#[derive(Debug)]
pub struct TcpRoute {
    /// Settings; a reload may replace them (open connections keep their backend).
    config: RefCell<TcpConfig>,
}

impl TcpRoute {
    pub fn new(config: TcpConfig) -> TcpRoute {
        TcpRoute {
            config: RefCell::new(config),
        }
    }
}

/// How many bytes at the end of `data` start a UTF-8 sequence that is not
/// complete yet (0-3).
fn incomplete_tail(data: &[u8]) -> usize {
    for back in 1..=3.min(data.len()) {
        let b = data[data.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if back < needed { back } else { 0 };
    }
    0
}

impl RouteHandler for TcpRoute {
    fn open(&self, _: &Opening<'_>, fx: &mut Effects) -> Result<Slot, Rejection> {
        let config = self.config.borrow();
        fx.attach(BackendSpec::Tcp {
            addr: config.backend,
            connect_timeout: config.connect_timeout,
        });
        Ok(0)
    }

    fn message(&self, _: Peer, _: Slot, message: MessageRef<'_>, fx: &mut Effects) {
        fx.to_backend(message.data);
    }

    fn closed(&self, _: Peer, _: Slot, _: &mut Effects) {}

    fn backend_output(
        &self,
        _: Peer,
        _: Slot,
        _: Stream,
        data: &[u8],
        at_end: bool,
        fx: &mut Effects,
    ) -> usize {
        let mode = self.config.borrow().mode;
        let take = match mode {
            BridgeMode::Binary => data.len(),
            BridgeMode::Text if at_end => data.len(),
            BridgeMode::Text => data.len() - incomplete_tail(data),
        };
        if take > 0 {
            fx.reply(match mode {
                BridgeMode::Binary => Message {
                    kind: MessageKind::Binary,
                    data: data[..take].to_vec(),
                },
                BridgeMode::Text => Message {
                    kind: MessageKind::Text,
                    data: String::from_utf8_lossy(&data[..take])
                        .into_owned()
                        .into_bytes(),
                },
            });
        }
        take
    }

    fn backend_ended(&self, peer: Peer, _: Slot, end: &BackendEnd, fx: &mut Effects) {
        let backend = self.config.borrow().backend_name.clone();
        match end {
            BackendEnd::Closed => fx.close(CloseCode::NORMAL, "backend closed the connection"),
            BackendEnd::Reset(why) => {
                fx.log(format!("conn {}: backend {backend}: {why}", peer.id));
                fx.close(CloseCode::INTERNAL_ERROR, "backend connection failed");
            }
            BackendEnd::Unavailable(why) => {
                fx.log(format!(
                    "conn {}: backend {backend} unavailable: {why}",
                    peer.id
                ));
                fx.close(CloseCode::INTERNAL_ERROR, "backend unavailable");
            }
            BackendEnd::Exited { .. } => fx.close(CloseCode::INTERNAL_ERROR, "backend ended"),
        }
    }

    fn reconfigure(&self, kind: &RouteKind) {
        if let RouteKind::Tcp(config) = kind {
            *self.config.borrow_mut() = config.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    fn route(mode: BridgeMode) -> Rc<dyn RouteHandler> {
        Rc::new(TcpRoute::new(TcpConfig {
            backend: "127.0.0.1:9".parse().unwrap(),
            backend_name: "127.0.0.1:9".to_owned(),
            mode,
            connect_timeout: Duration::from_secs(1),
        }))
    }

    const PEER: Peer = Peer { key: 1, id: 1 };

    #[test]
    fn binary_mode_passes_every_byte_on() {
        let h = route(BridgeMode::Binary);
        let mut fx = Effects::default();
        assert_eq!(
            h.backend_output(PEER, 0, Stream::Out, b"\xff\x00", false, &mut fx),
            2
        );
        let sent: Vec<_> = fx.take_replies().collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].kind, sent[0].data.as_slice()),
            (MessageKind::Binary, &b"\xff\x00"[..])
        );
    }

    #[test]
    fn text_mode_never_cuts_a_character() {
        let h = route(BridgeMode::Text);
        let mut fx = Effects::default();
        let e = "é".as_bytes();
        let data = [b"ab".as_slice(), &e[..1]].concat();
        assert_eq!(
            h.backend_output(PEER, 0, Stream::Out, &data, false, &mut fx),
            2
        );
        let data = [&e[..1], &e[1..], b"c"].concat();
        assert_eq!(
            h.backend_output(PEER, 0, Stream::Out, &data, false, &mut fx),
            3
        );
        let sent: Vec<_> = fx.take_replies().map(|m| m.data).collect();
        assert_eq!(sent, [b"ab".to_vec(), "éc".as_bytes().to_vec()]);
        assert_eq!(incomplete_tail("€".as_bytes()), 0);
        assert_eq!(incomplete_tail(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail(b"\x80\x80\x80"), 0);
    }

    #[test]
    fn each_ending_has_its_close_code() {
        let h = route(BridgeMode::Binary);
        let mut fx = Effects::default();
        h.backend_ended(PEER, 0, &BackendEnd::Closed, &mut fx);
        assert_eq!(fx.take_close().unwrap().0, CloseCode::NORMAL);
        h.backend_ended(PEER, 0, &BackendEnd::Reset("reset".into()), &mut fx);
        assert_eq!(fx.take_close().unwrap().0, CloseCode::INTERNAL_ERROR);
        h.backend_ended(PEER, 0, &BackendEnd::Unavailable("refused".into()), &mut fx);
        let (code, reason) = fx.take_close().unwrap();
        assert_eq!(
            (code, reason.as_ref()),
            (CloseCode::INTERNAL_ERROR, "backend unavailable")
        );
        assert_eq!(fx.take_log_lines().count(), 2);
    }
}

//! Moving a backend's output into its connection: read into the loop's one
//! buffer, handed to the route's handler with the unconsumed tail, the messages
//! it made queued on the connection, and the backend's end reported once its
//! output is through.
//!
//! Owns the backpressure from connection to backend: output is read only while
//! the connection's queue is under `read_pause`, so a peer that stops reading
//! stops the backend (its pipe or socket fills and it blocks). It must never
//! decide what bytes mean (the handler does) or write a frame (the core does).

use std::rc::Rc;

use crate::app::{Peer, Stream};
use crate::server::bridge::Output;
use crate::server::connection::{Conn, ConnState, Shared, Verdict};
use crate::server::driver::READ_CHUNK;

impl Conn {
    /// Reads `stream` of this connection's backend and hands it on, until it
    /// would block, ends, or the connection's queue is full.
    pub fn pump_backend(&mut self, key: usize, stream: Stream, sh: &mut Shared) -> Verdict {
        let peer = Peer { key, id: self.id };
        loop {
            let ConnState::WebSocket(session) = &self.state else {
                return Verdict::Continue;
            };
            if !session.ws.is_open() {
                // Closing: the output has nowhere to go.
                return Verdict::Continue;
            }
            if self.outbox.len() >= sh.settings.read_pause {
                sh.bridges.pause_output(key);
                return Verdict::Continue;
            }
            let (handler, slot) = (Rc::clone(&session.route.handler), session.slot);
            let mut rbuf = std::mem::take(&mut sh.rbuf);
            let chunk = READ_CHUNK.min(rbuf.len());
            let (n, at_end) = match sh.bridges.read(key, stream, &mut rbuf[..chunk]) {
                Output::Data(n) => (n, false),
                Output::End => (0, true),
                Output::WouldBlock | Output::Gone => {
                    sh.rbuf = rbuf;
                    break;
                }
            };
            sh.fx.set_origin(Some(key), &handler);
            if let Some(tail) = sh.bridges.tail(key, stream) {
                if tail.is_empty() {
                    let used =
                        handler.backend_output(peer, slot, stream, &rbuf[..n], at_end, &mut sh.fx);
                    tail.extend_from_slice(&rbuf[used.min(n)..n]);
                } else {
                    tail.extend_from_slice(&rbuf[..n]);
                    let used = handler.backend_output(peer, slot, stream, tail, at_end, &mut sh.fx);
                    tail.drain(..used.min(tail.len()));
                    if tail.is_empty() && tail.capacity() > READ_CHUNK {
                        // A long line is through: its buffer is not kept idle.
                        *tail = Vec::new();
                    }
                }
            }
            sh.rbuf = rbuf;
            self.carry_out_effects(key, None, sh);
            if at_end {
                break;
            }
        }
        self.report_backend_end(key, sh);
        Verdict::Continue
    }

    /// Tells the handler how the backend ended, once its output is through.
    pub fn report_backend_end(&mut self, key: usize, sh: &mut Shared) {
        let ConnState::WebSocket(session) = &self.state else {
            return;
        };
        let Some(end) = sh.bridges.take_end(key) else {
            return;
        };
        if let crate::app::BackendEnd::Unavailable(_) = end {
            sh.stats.backend_failures += 1;
        }
        if !session.ws.is_open() {
            return;
        }
        let handler = Rc::clone(&session.route.handler);
        sh.fx.set_origin(Some(key), &handler);
        handler.backend_ended(Peer { key, id: self.id }, session.slot, &end, &mut sh.fx);
        self.carry_out_effects(key, None, sh);
    }

    /// Output of both streams, after the connection's queue drained or the
    /// program exited.
    pub fn pump_all(&mut self, key: usize, sh: &mut Shared) -> Verdict {
        let _ = self.pump_backend(key, Stream::Out, sh);
        self.pump_backend(key, Stream::Err, sh)
    }
}

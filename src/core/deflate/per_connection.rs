//! One connection's permessage-deflate: which context each direction uses and,
//! for a direction that keeps its context between messages, that context.
//!
//! A direction without context takeover uses the thread's shared contexts
//! (`deflate::shared`) and costs the connection nothing; one with takeover
//! gets its own, allocated on its first compressed message and kept. Owns that
//! choice and those contexts; it must never frame or queue bytes (the core's
//! encoder and state machine do).

use crate::core::deflate::backend::{
    new_compressor, new_decompressor, Compressor, Decompressor, DeflateSettings,
};
use crate::core::deflate::message::{compress_message, inflate_message};
use crate::core::deflate::negotiate::DeflateParams;
use crate::core::deflate::shared::{compress_shared, inflate_shared};
use crate::core::encode::Encoding;
use crate::core::error::ProtocolError;
use crate::core::websocket::Role;

/// permessage-deflate as negotiated for one connection.
#[derive(Debug)]
pub struct PerMessageDeflate {
    /// The compressor this side uses: its window already within what the peer allows.
    send: DeflateSettings,
    /// This side keeps its compressor's history between messages.
    send_takeover: bool,
    /// The peer keeps its history, so this side keeps its inflater's window.
    receive_takeover: bool,
    /// The window the peer compresses with (9-15; a peer's 8 reads fine at 9).
    receive_bits: u8,
    /// Messages shorter than this go out uncompressed. 16 bits, so that the
    /// whole struct is two words: it sits in every connection, negotiated or not.
    threshold: u16,
    /// The contexts of the directions with takeover, once first used.
    own: Option<Box<OwnContexts>>,
}

#[derive(Default)]
struct OwnContexts {
    compressor: Option<Box<dyn Compressor>>,
    inflater: Option<Box<dyn Decompressor>>,
}

impl std::fmt::Debug for OwnContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnContexts")
            .field("compressor", &self.compressor.is_some())
            .field("inflater", &self.inflater.is_some())
            .finish()
    }
}

impl PerMessageDeflate {
    /// The state for `role`'s end of a connection that agreed on `params`.
    /// `settings` are this side's compressor preferences (its window is lowered
    /// to what the peer allows); messages under `threshold` bytes (at most
    /// 65,535) are sent as they are.
    pub fn new(
        role: Role,
        params: &DeflateParams,
        settings: DeflateSettings,
        threshold: usize,
    ) -> Self {
        let (send_nct, send_bits, receive_nct, receive_bits) = match role {
            Role::Server => (
                params.server_no_context_takeover,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.client_max_window_bits,
            ),
            Role::Client => (
                params.client_no_context_takeover,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.server_max_window_bits,
            ),
        };
        let window_bits = settings
            .window_bits
            .min(send_bits.unwrap_or(15))
            .clamp(9, 15);
        PerMessageDeflate {
            send: DeflateSettings {
                window_bits,
                ..settings
            },
            send_takeover: !send_nct,
            receive_takeover: !receive_nct,
            receive_bits: receive_bits.unwrap_or(15).clamp(9, 15),
            threshold: u16::try_from(threshold).unwrap_or(u16::MAX),
            own: None,
        }
    }

    fn worth_compressing(&self, len: usize) -> bool {
        len >= usize::from(self.threshold)
    }

    /// Compresses `payload` onto `out` if it is worth it; `false`: send it as
    /// it is (short, or the backend failed), with `out` unchanged.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.worth_compressing(payload.len()) {
            return false;
        }
        if !self.send_takeover {
            return compress_shared(self.send, payload, out);
        }
        let own = self.own.get_or_insert_with(Box::default);
        if own.compressor.is_none() {
            own.compressor = new_compressor(self.send);
        }
        match own.compressor.as_mut() {
            Some(c) => compress_message(&mut **c, payload, out),
            None => false,
        }
    }

    /// The encoding a frame shared with other connections must have to be sent
    /// here, for a message of `len` bytes; `None` if only this connection's own
    /// compressor may encode it (its history must see every message it sends).
    pub(crate) fn shared_encoding(&self, len: usize) -> Option<Encoding> {
        if !self.worth_compressing(len) {
            Some(Encoding::Plain)
        } else if self.send_takeover {
            None
        } else {
            Some(Encoding::Deflate(self.send))
        }
    }

    /// Inflates one received message (see `deflate::message::inflate_message`).
    pub(crate) fn inflate(
        &mut self,
        compressed: &[u8],
        max: u64,
        text: bool,
    ) -> Result<Vec<u8>, ProtocolError> {
        if !self.receive_takeover {
            return inflate_shared(compressed, max, text);
        }
        let own = self.own.get_or_insert_with(Box::default);
        if own.inflater.is_none() {
            own.inflater = new_decompressor(self.receive_bits);
        }
        let Some(inflater) = own.inflater.as_mut() else {
            return Err(ProtocolError::CompressionUnavailable);
        };
        inflate_message(&mut **inflater, compressed, max, text)
    }

    /// Whether this connection holds contexts of its own now.
    pub fn holds_contexts(&self) -> bool {
        self.own.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_every_connection_carries_is_two_words() {
        // It sits inline in every WebSocket, negotiated or not: idle memory.
        assert_eq!(std::mem::size_of::<Option<PerMessageDeflate>>(), 16);
    }
}

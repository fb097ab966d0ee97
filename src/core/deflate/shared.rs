//! The contexts every connection without context takeover shares: one
//! compressor per distinct [`DeflateSettings`] and one inflater (15-bit window,
//! which reads any window), per thread, reset after every message.
//!
//! A single-threaded reactor is one thread, so this is "one pair for the whole
//! reactor": a connection that negotiated shared compression holds no
//! compression memory at all. Owns those contexts; it must never keep anything
//! of a message past the call that handles it.

use std::cell::RefCell;

use crate::core::deflate::backend::{
    new_shared_compressor, new_shared_decompressor, Compressor, Decompressor, DeflateSettings,
};
use crate::core::deflate::message::{compress_message, inflate_message};
use crate::core::error::ProtocolError;

#[derive(Default)]
struct SharedContexts {
    /// A handful at most: one per route setting in use.
    compressors: Vec<(DeflateSettings, Box<dyn Compressor>)>,
    inflater: Option<Box<dyn Decompressor>>,
}

thread_local! {
    static SHARED: RefCell<SharedContexts> = RefCell::new(SharedContexts::default());
}

/// Compresses one message with the shared compressor for `settings` (see
/// [`compress_message`]); `false` leaves `out` as it was.
pub(crate) fn compress_shared(
    settings: DeflateSettings,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    SHARED.with_borrow_mut(|shared| {
        let index = match shared.compressors.iter().position(|(s, _)| *s == settings) {
            Some(i) => i,
            None => match new_shared_compressor(settings) {
                Some(c) => {
                    shared.compressors.push((settings, c));
                    shared.compressors.len() - 1
                }
                None => return false,
            },
        };
        let compressor = &mut shared.compressors[index].1;
        let done = compress_message(&mut **compressor, payload, out);
        compressor.reset();
        done
    })
}

/// Inflates one message with the shared inflater (see [`inflate_message`]).
pub(crate) fn inflate_shared(
    compressed: &[u8],
    max: u64,
    text: bool,
) -> Result<Vec<u8>, ProtocolError> {
    SHARED.with_borrow_mut(|shared| {
        if shared.inflater.is_none() {
            shared.inflater = new_shared_decompressor(15);
        }
        let Some(inflater) = shared.inflater.as_mut() else {
            return Err(ProtocolError::CompressionUnavailable);
        };
        let result = inflate_message(&mut **inflater, compressed, max, text);
        inflater.reset();
        result
    })
}

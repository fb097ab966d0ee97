//! The compression backend seam: a raw-DEFLATE compressor and decompressor as
//! two small traits, and the one place that picks their implementation.
//!
//! Owns what permessage-deflate needs from a DEFLATE library and nothing more:
//! window bits, memory level and level honoured, sync flushes, bounded output
//! per call, reset. It must never know about frames, messages or limits
//! (`deflate::message` does); swapping a library is a change to the four
//! constructors here only.
//!
//! Two libraries, by what a context costs where it lives: the reactor's shared
//! contexts (one each, so memory is no concern) use zlib-ng for speed; a
//! connection's own contexts (thousands) use stock zlib, whose memory follows
//! the window bits and memory level.

use crate::core::deflate::zlib::{ng, stock};

/// How a compressor is built. Equal settings make identical output for the
/// same input from a reset context, which is what lets fan-out share frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateSettings {
    /// LZ77 window, 9-15 bits (zlib cannot compress with 8; a 9-bit window's
    /// matches stay within 250 bytes, which an 8-bit inflater accepts).
    pub window_bits: u8,
    /// zlib's memLevel, 1-9: hash table size, memory against speed and ratio.
    pub memory_level: u8,
    /// 0 (store) to 9 (smallest). Default 1, as in gorilla/websocket and
    /// nginx's gzip: several times zlib's default (6) in speed, for a little ratio.
    pub level: u8,
}

impl Default for DeflateSettings {
    fn default() -> Self {
        DeflateSettings {
            window_bits: 15,
            memory_level: 8,
            level: 1,
        }
    }
}

/// A raw-DEFLATE compressor whose history lasts until [`Compressor::reset`].
pub trait Compressor {
    /// Compresses all of `input` onto the end of `out` and sync-flushes, so the
    /// output ends on a byte boundary with `00 00 ff ff`. `false`: the backend
    /// failed, and `out` may hold partial output the caller must drop.
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool;
    /// Forgets the history: the next input starts a fresh window.
    fn reset(&mut self);
}

/// What one [`Decompressor::inflate`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflated {
    /// Input bytes consumed.
    pub consumed: usize,
    /// The stream's final block ended: nothing more will come out of it.
    pub ended: bool,
}

/// The input is not valid DEFLATE data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptData;

/// A raw-DEFLATE decompressor whose window lasts until [`Decompressor::reset`].
pub trait Decompressor {
    /// Inflates from `input` onto the end of `out`, appending at most `room`
    /// bytes, and sync-flushes what it can.
    fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<Inflated, CorruptData>;
    /// Forgets the window: the next input starts a fresh stream.
    fn reset(&mut self);
}

/// A compressor for one connection's own context, with `settings`; `None` if
/// the library could not allocate one (the caller then sends uncompressed,
/// which is always allowed).
pub fn new_compressor(settings: DeflateSettings) -> Option<Box<dyn Compressor>> {
    stock::ZlibCompressor::new(settings).map(|c| Box::new(c) as Box<dyn Compressor>)
}

/// A decompressor for one connection's own context, for windows up to
/// `window_bits` (8-15).
pub fn new_decompressor(window_bits: u8) -> Option<Box<dyn Decompressor>> {
    stock::ZlibDecompressor::new(window_bits).map(|d| Box::new(d) as Box<dyn Decompressor>)
}

/// A compressor for the reactor's shared contexts: the faster library.
pub fn new_shared_compressor(settings: DeflateSettings) -> Option<Box<dyn Compressor>> {
    ng::ZlibCompressor::new(settings).map(|c| Box::new(c) as Box<dyn Compressor>)
}

/// The reactor's shared decompressor (windows up to `window_bits`).
pub fn new_shared_decompressor(window_bits: u8) -> Option<Box<dyn Decompressor>> {
    ng::ZlibDecompressor::new(window_bits).map(|d| Box::new(d) as Box<dyn Decompressor>)
}

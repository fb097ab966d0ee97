//! One message through a compressor or a decompressor, as RFC 7692 §7.2 frames
//! it: the sync-flush tail `00 00 ff ff` stripped after compressing and put
//! back before inflating, the inflated size bounded as it grows, and text
//! validated as UTF-8 as it comes out.
//!
//! Owns the message-level rules. It must never choose a context (shared or a
//! connection's own) or keep one: callers pass it in and reset it.

use crate::core::deflate::backend::{Compressor, Decompressor};
use crate::core::error::ProtocolError;
use crate::core::utf8::Utf8Validator;

/// What a sync flush ends with, and what a receiver appends (RFC 7692 §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output made room for per inflate step, at most: memory grows with what
/// really comes out, never with what a header or a ratio promises.
const MAX_INFLATE_STEP: usize = 256 * 1024;

/// Compresses `payload` onto the end of `out` without the tail. `false`: the
/// backend failed and `out` is as it was (send the message uncompressed).
pub(crate) fn compress_message(c: &mut dyn Compressor, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if c.compress(payload, out) && out[start..].ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
        true
    } else {
        out.truncate(start);
        false
    }
}

/// Inflates one message's compressed payload. Fails with 1009 as soon as the
/// output passes `max` bytes, with 1007 on corrupt data or (for `text`) at the
/// first byte that cannot be UTF-8.
pub(crate) fn inflate_message(
    d: &mut dyn Decompressor,
    compressed: &[u8],
    max: u64,
    text: bool,
) -> Result<Vec<u8>, ProtocolError> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut utf8 = Utf8Validator::new();
    'parts: for part in [compressed, &TAIL[..]] {
        let mut rest = part;
        loop {
            let room = (compressed.len().saturating_mul(4))
                .clamp(1024, MAX_INFLATE_STEP)
                .min(max.saturating_sub(out.len()).saturating_add(1));
            let before = out.len();
            let step = d
                .inflate(rest, &mut out, room)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            rest = &rest[step.consumed..];
            if out.len() > max {
                return Err(ProtocolError::MessageTooBig {
                    len: out.len() as u64,
                    max: max as u64,
                });
            }
            let produced = out.len() - before;
            if text {
                utf8.feed(&out[before..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            if step.ended {
                // A final block ends the stream: nothing can follow it, so the
                // next message starts a new one.
                d.reset();
                break 'parts;
            }
            // Done with this part once its input is in and the output stopped
            // short of the room (nothing left inside the decompressor).
            if rest.is_empty() && produced < room {
                break;
            }
            if step.consumed == 0 && produced == 0 {
                // No progress with input and room left: the data is broken.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }
    if text {
        utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deflate::backend::{
        new_compressor, new_decompressor, new_shared_compressor, new_shared_decompressor,
        DeflateSettings,
    };

    type NewCompressor = fn(DeflateSettings) -> Option<Box<dyn Compressor>>;
    type NewDecompressor = fn(u8) -> Option<Box<dyn Decompressor>>;

    /// Both libraries: a connection's own contexts and the shared ones.
    const BACKENDS: [(NewCompressor, NewDecompressor); 2] = [
        (new_compressor, new_decompressor),
        (new_shared_compressor, new_shared_decompressor),
    ];

    /// Compressed by one library, inflated by the other too.
    fn round_trip(payload: &[u8], settings: DeflateSettings) {
        for (new_c, _) in BACKENDS {
            let mut wire = Vec::new();
            assert!(compress_message(
                &mut *new_c(settings).unwrap(),
                payload,
                &mut wire
            ));
            for (_, new_d) in BACKENDS {
                let mut d = new_d(15).unwrap();
                assert_eq!(
                    inflate_message(&mut *d, &wire, u64::MAX, false).unwrap(),
                    payload
                );
            }
        }
    }

    #[test]
    fn messages_round_trip_at_every_window_and_level() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{{\"n\":{},\"s\":\"abc\"}}", i % 97).into_bytes())
            .collect();
        for window_bits in [9, 12, 15] {
            for level in [0, 1, 6, 9] {
                let settings = DeflateSettings {
                    window_bits,
                    memory_level: 8,
                    level,
                };
                for payload in [&b""[..], b"x", &text[..1000], &text] {
                    round_trip(payload, settings);
                }
            }
        }
    }

    #[test]
    fn the_empty_message_compresses_to_the_rfc_example() {
        let mut c = new_compressor(DeflateSettings::default()).unwrap();
        let mut wire = Vec::new();
        assert!(compress_message(&mut *c, b"", &mut wire));
        assert_eq!(wire, [0x00], "RFC 7692 §7.2.3.6");
    }

    #[test]
    fn the_rfc_example_inflates() {
        // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
        let mut d = new_decompressor(15).unwrap();
        let wire = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(
            inflate_message(&mut *d, &wire, 100, true).unwrap(),
            b"Hello"
        );
        // §7.2.3.3: the same in a stored block.
        d.reset();
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(
            inflate_message(&mut *d, &stored, 100, true).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let mut c = new_compressor(DeflateSettings {
            level: 9,
            ..DeflateSettings::default()
        })
        .unwrap();
        let mut wire = Vec::new();
        assert!(compress_message(&mut *c, &vec![0u8; 8 << 20], &mut wire));
        assert!(wire.len() < 16 << 10, "{} bytes", wire.len());
        let mut d = new_decompressor(15).unwrap();
        let err = inflate_message(&mut *d, &wire, 1 << 20, false).unwrap_err();
        let ProtocolError::MessageTooBig { len, max } = err else {
            panic!("{err:?}")
        };
        assert_eq!(max, 1 << 20);
        assert!(len <= (1 << 20) + 1, "stopped right past the limit: {len}");
    }

    #[test]
    fn corrupt_data_and_bad_text_fail_with_their_codes() {
        let mut d = new_decompressor(15).unwrap();
        let err = inflate_message(&mut *d, &[0xff, 0xff, 0xff], 100, false).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCompressedData);
        assert_eq!(err.close_code().0, 1007);
        d.reset();
        let mut c = new_compressor(DeflateSettings::default()).unwrap();
        let mut wire = Vec::new();
        assert!(compress_message(&mut *c, b"ok \xff bad", &mut wire));
        let err = inflate_message(&mut *d, &wire, 100, true).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
    }

    #[test]
    fn a_nine_bit_compressor_is_readable_with_an_eight_bit_window() {
        // zlib cannot compress with 8 bits; with 9 its matches stay within 250
        // bytes, so a peer that asked for server_max_window_bits=8 can read it.
        let payload: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {} of a log that repeats itself\n", i % 13).into_bytes())
            .collect();
        for (level, (new_c, _)) in [1, 6, 9].into_iter().flat_map(|l| BACKENDS.map(|b| (l, b))) {
            let mut c = new_c(DeflateSettings {
                window_bits: 8,
                memory_level: 8,
                level,
            })
            .unwrap();
            let mut wire = Vec::new();
            assert!(compress_message(&mut *c, &payload, &mut wire));
            assert!(wire.len() < payload.len() / 3, "level {level}");
            let mut d8 = new_decompressor(8).unwrap();
            assert_eq!(
                inflate_message(&mut *d8, &wire, u64::MAX, true).unwrap(),
                payload,
                "level {level}"
            );
        }
    }
}

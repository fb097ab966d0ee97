//! Frame headers (RFC 6455 §5.2): decoding from partial input, encoding, and
//! whole-frame encoding for messages we send.
//!
//! Owns the wire layout of one frame and the rules that a header alone can break
//! (reserved opcodes, control-frame size and fragmentation, the 64-bit length's top
//! bit). It must never keep state between frames: that is the state machine's job.

use crate::core::error::ProtocolError;
use crate::core::mask::apply_mask;

/// A frame's opcode. Reserved values are refused when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    /// Decodes the low nibble of a frame's first byte.
    pub fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The opcode's value in the low nibble of a frame's first byte.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// The longest a frame header can be: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1-3 as the three low bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the front of `input`. `Ok(None)` means more bytes are
    /// needed; `Ok(Some((header, n)))` means the header took `n` bytes.
    ///
    /// Rules are checked as soon as the byte they depend on is present, in byte
    /// order, so the same input yields the same error however it is split.
    pub fn decode(input: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = input.first() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let Some(&b1) = input.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong {
                    len: u64::from(len7),
                });
            }
        }
        let (payload_len, mut pos) = match len7 {
            126 => match input.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match input.get(2..10) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::LengthOutOfRange);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            match input.get(pos..pos + 4) {
                Some(k) => {
                    pos += 4;
                    Some([k[0], k[1], k[2], k[3]])
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Appends this header, with the shortest length encoding, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let n = self.encode_into(&mut bytes);
        out.extend_from_slice(&bytes[..n]);
    }

    /// Writes this header into `bytes` (no allocation); returns its length.
    pub fn encode_into(&self, bytes: &mut [u8; MAX_HEADER_LEN]) -> usize {
        bytes[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                bytes[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            bytes[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }

    /// Appends this header and `payload` (masked with the header's key, if
    /// any) to `out`; `payload_len` must be `payload.len()`.
    pub fn encode_with_payload(&self, out: &mut Vec<u8>, payload: &[u8]) {
        out.reserve(
            FrameHeader::encoded_len(self.payload_len, self.mask.is_some()) + payload.len(),
        );
        self.encode(out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }

    /// The encoded size of a header for this payload length.
    pub fn encoded_len(payload_len: u64, masked: bool) -> usize {
        let len_bytes = match payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if masked { 4 } else { 0 }
    }
}

/// Appends one whole frame to `out`: header, then the payload, masked with `mask`
/// if given (client frames MUST be masked, server frames MUST NOT be).
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    header.encode_with_payload(out, payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_at_every_length_encoding_boundary() {
        for len in [0u64, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut out = Vec::new();
                h.encode(&mut out);
                assert_eq!(out.len(), FrameHeader::encoded_len(len, mask.is_some()));
                assert_eq!(FrameHeader::decode(&out), Ok(Some((h, out.len()))));
                for cut in 0..out.len() {
                    assert_eq!(
                        FrameHeader::decode(&out[..cut]),
                        Ok(None),
                        "len {len} cut {cut}"
                    );
                }
            }
        }
    }
}

//! Encoding outgoing data messages into frames: per connection (owned bytes) or
//! once for many connections (a shared frame for room fan-out).
//!
//! Owns the bytes of every data frame the core sends: header, RSV bits and
//! payload transform (permessage-deflate compresses through `core::deflate`).
//! It must never choose recipients or queue anything: callers decide where the
//! bytes go.

use std::rc::Rc;

use crate::core::deflate::{compress_shared, DeflateSettings};
use crate::core::frame::{FrameHeader, MAX_HEADER_LEN};
use crate::core::mask::{apply_mask, extend_masked};
use crate::core::message::MessageKind;

/// How a connection's data frames are encoded. Connections with equal encodings
/// can share one encoded frame, so fan-out encodes once per encoding in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Unmasked and untransformed: the server side without extensions, or a
    /// message too short to be worth compressing.
    Plain,
    /// Compressed by the shared context with these settings, reset per message
    /// (permessage-deflate without server context takeover), RSV1 set.
    Deflate(DeflateSettings),
}

/// RSV1: "this message is compressed" under permessage-deflate (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0b100;

/// A frame header, kept inline (no heap) until it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl FrameHead {
    fn new(header: &FrameHeader) -> FrameHead {
        let mut bytes = [0; MAX_HEADER_LEN];
        let len = header.encode_into(&mut bytes) as u8;
        FrameHead { bytes, len }
    }

    /// The encoded header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One encoded frame whose payload is owned: the caller queues the header and
/// then the payload without copying it (large echoes are never copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    pub head: FrameHead,
    pub payload: Vec<u8>,
}

impl OwnedFrame {
    /// Header plus payload length.
    pub fn len(&self) -> usize {
        usize::from(self.head.len) + self.payload.len()
    }

    /// Never true for a real frame (a header is at least two bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One encoded frame that many connections' queues refer to.
pub type SharedFrame = Rc<[u8]>;

/// Encodes a message as one frame for every connection whose encoding is
/// `encoding` (server side: unmasked).
pub fn encode_shared(encoding: Encoding, kind: MessageKind, payload: &[u8]) -> SharedFrame {
    let mut out = Vec::new();
    if let Encoding::Deflate(settings) = encoding {
        let mut compressed = Vec::new();
        if compress_shared(settings, payload, &mut compressed) {
            encode_message(&mut out, RSV1, kind, &compressed, None);
            return Rc::from(out);
        }
    }
    // Uncompressed is valid under permessage-deflate too (RSV1 clear).
    encode_message(&mut out, 0, kind, payload, None);
    Rc::from(out)
}

/// Several messages' unmasked, uncompressed frames back to back, shared by
/// every recipient that takes them that way (`Encoding::Plain`): a member
/// of a room gets a run of broadcasts as one buffer.
pub fn encode_shared_run<'a>(
    messages: impl Iterator<Item = (MessageKind, &'a [u8])> + Clone,
) -> SharedFrame {
    let len = messages
        .clone()
        .map(|(_, payload)| FrameHeader::encoded_len(payload.len() as u64, false) + payload.len())
        .sum();
    let mut out = Vec::with_capacity(len);
    for (kind, payload) in messages {
        encode_message(&mut out, 0, kind, payload, None);
    }
    Rc::from(out)
}

/// Appends one message as a single frame with `rsv` to `out`, masked with
/// `mask` if given.
pub(crate) fn encode_message(
    out: &mut Vec<u8>,
    rsv: u8,
    kind: MessageKind,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    data_header(rsv, kind, payload.len(), mask).encode_with_payload(out, payload);
}

/// Appends one message of `len` bytes as a frame to `out`, its payload written
/// where it will be sent by `fill` and masked there (if `mask`): what
/// [`encode_message`] does, without the caller's copy of the payload.
pub(crate) fn encode_message_with(
    out: &mut Vec<u8>,
    kind: MessageKind,
    len: usize,
    mask: Option<[u8; 4]>,
    fill: impl FnOnce(&mut [u8]),
) {
    let at = push_data_head(out, kind, len, mask);
    out.resize(at + len, 0);
    let payload = &mut out[at..];
    fill(payload);
    if let Some(key) = mask {
        apply_mask(payload, key, 0);
    }
}

/// Appends one unmasked frame to `out` carrying `masked` unmasked with `key`:
/// a server's echo of a message as it was received, unmasked on its way
/// into `out` rather than in place and then copied.
pub(crate) fn encode_unmasking(out: &mut Vec<u8>, kind: MessageKind, masked: &[u8], key: [u8; 4]) {
    push_data_head(out, kind, masked.len(), None);
    extend_masked(out, masked, key);
}

/// Appends the header of a data frame of `len` bytes to `out`, with room
/// reserved for the payload after it; returns where the payload starts.
fn push_data_head(
    out: &mut Vec<u8>,
    kind: MessageKind,
    len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = data_header(0, kind, len, mask).encode_into(&mut head);
    let start = out.len();
    out.reserve(MAX_HEADER_LEN + len);
    // A fixed-size copy (no call for a variable one), cut back to the header.
    out.extend_from_slice(&head);
    out.truncate(start + n);
    start + n
}

/// Encodes one message as a frame that keeps `payload`'s buffer (masked in place if `mask`).
pub(crate) fn encode_owned(
    rsv: u8,
    kind: MessageKind,
    mut payload: Vec<u8>,
    mask: Option<[u8; 4]>,
) -> OwnedFrame {
    let header = data_header(rsv, kind, payload.len(), mask);
    if let Some(key) = mask {
        apply_mask(&mut payload, key, 0);
    }
    OwnedFrame {
        head: FrameHead::new(&header),
        payload,
    }
}

fn data_header(rsv: u8, kind: MessageKind, len: usize, mask: Option<[u8; 4]>) -> FrameHeader {
    FrameHeader {
        fin: true,
        rsv,
        opcode: kind.opcode(),
        mask,
        payload_len: len as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_shared_frames_carry_the_same_bytes() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let shared = encode_shared(Encoding::Plain, MessageKind::Binary, &payload);
            let owned = encode_owned(0, MessageKind::Binary, payload, None);
            let mut joined = owned.head.as_bytes().to_vec();
            joined.extend_from_slice(&owned.payload);
            assert_eq!(&joined[..], &shared[..], "len {len}");
            assert_eq!(owned.len(), shared.len());
            assert_eq!(shared[0], 0x82, "FIN, no RSV, binary");
        }
    }

    #[test]
    fn a_masked_owned_frame_is_masked_in_place() {
        let key = [1, 2, 3, 4];
        let owned = encode_owned(0, MessageKind::Text, b"abcd".to_vec(), Some(key));
        assert_eq!(owned.head.as_bytes(), &[0x81, 0x84, 1, 2, 3, 4]);
        assert_eq!(owned.payload, vec![b'a' ^ 1, b'b' ^ 2, b'c' ^ 3, b'd' ^ 4]);
    }
}

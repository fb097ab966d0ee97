//! Messages as the application sees them: a kind (text or binary) and the whole
//! payload, on the way in and on the way out.
//!
//! Owns these plain types (a message owned, or lent from a buffer). It must never know about frames, masking or
//! extensions: those are the state machine's and the encoder's.

use crate::core::frame::OpCode;

/// Whether a data message is text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Text,
    Binary,
}

impl MessageKind {
    /// The opcode of a message of this kind's first frame.
    pub fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// A complete data message. Text messages are valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    pub data: Vec<u8>,
}

/// A complete data message lent by whoever holds its bytes: the receive
/// buffer it was unmasked in, or an owned [`Message`]. Text messages are valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub kind: MessageKind,
    pub data: &'a [u8],
}

impl MessageRef<'_> {
    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(self.data).ok(),
            MessageKind::Binary => None,
        }
    }

    /// A copy that owns its bytes.
    pub fn to_message(&self) -> Message {
        Message {
            kind: self.kind,
            data: self.data.to_vec(),
        }
    }
}

impl Message {
    /// The message lent out.
    pub fn borrowed(&self) -> MessageRef<'_> {
        MessageRef {
            kind: self.kind,
            data: &self.data,
        }
    }

    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }
}

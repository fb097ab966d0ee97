//! Messages as the application sees them: a kind (text or binary) and the whole
//! payload, on the way in and on the way out.
//!
//! Owns these two plain types. It must never know about frames, masking or
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

impl Message {
    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }
}

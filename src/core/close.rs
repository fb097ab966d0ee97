//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! Owns which codes may appear on the wire and how a close payload is parsed and
//! built. It must never decide *when* to close: that is the state machine's job.

use crate::core::error::ProtocolError;

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved: "no status code was present". Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reserved: "closed abnormally". Never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY: CloseCode = CloseCode(1008);
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame: 1000-1003, 1007-1014
    /// (1012-1014 are registered with IANA) and the application ranges 3000-4999.
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// The payload of a close frame that carried a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: CloseCode,
    pub reason: String,
}

/// The longest reason that fits a control frame beside the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// Parses a close frame's (unmasked) payload: empty, or a 2-byte code and a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseFrameOneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8InCloseReason)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Appends a close payload for `code` and `reason` to `out`, cutting the reason at
/// a character boundary so that the payload fits a control frame.
pub fn write_close_payload(out: &mut Vec<u8>, code: CloseCode, reason: &str) {
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(truncate_reason(reason).as_bytes());
}

fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let mut out = Vec::new();
        write_close_payload(&mut out, CloseCode::NORMAL, &reason);
        assert!(out.len() <= 125);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
    }
}

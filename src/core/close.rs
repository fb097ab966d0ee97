//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! Owns which codes may appear on the wire and how a close payload is parsed and
//! built. It must never decide *when* to close: that is the state machine's job.

use crate::core::close_code::CloseCode;
use crate::core::error::ProtocolError;

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

//! Incremental UTF-8 validation for text messages that arrive in pieces (RFC 6455 §8.1).
//!
//! Owns the few bytes of a code point split across pieces. It fails on the first
//! byte that can no longer begin or continue valid UTF-8, so an invalid message is
//! refused before the rest of it arrives. It must never buffer the message itself.

use simdutf8::compat::from_utf8;

/// Validates a byte stream piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The start of a code point whose remaining bytes have not arrived yet.
    pending: [u8; 4],
    pending_len: u8,
}

/// The bytes fed so far cannot be the start of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece. `Ok` means everything so far is valid UTF-8 or a
    /// valid prefix of it.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width = sequence_width(self.pending[0]);
            let take = (width - have).min(input.len());
            self.pending[have..have + take].copy_from_slice(&input[..take]);
            let len = have + take;
            match from_utf8(&self.pending[..len]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    self.pending_len = len as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            input = &input[take..];
        }
        match from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the stream: `Ok` iff no code point was left unfinished.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// The length of the sequence a (valid) lead byte starts.
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], split: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(&bytes[..split])?;
        v.feed(&bytes[split..])?;
        v.finish()
    }

    #[test]
    fn every_split_of_valid_text_is_valid() {
        let text = "κόσμε a€𝄞 ok \u{10FFFF}".as_bytes();
        for split in 0..=text.len() {
            assert_eq!(feed_split(text, split), Ok(()), "split at {split}");
        }
    }

    #[test]
    fn byte_by_byte_agrees_with_whole_validation() {
        let samples: &[&[u8]] = &[
            b"hello",
            "κόσμε".as_bytes(),
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xF4, 0x90, 0x80,
                0x80,
            ],
            &[0xED, 0xA0, 0x80],
            &[0xF0, 0x9F, 0x98],
            &[0xC0, 0xAF],
            &[0x80],
        ];
        for s in samples {
            let whole = std::str::from_utf8(s).is_ok();
            let mut v = Utf8Validator::new();
            let pieces = s.iter().try_for_each(|b| v.feed(std::slice::from_ref(b)));
            let bytewise = pieces.and_then(|_| v.finish()).is_ok();
            assert_eq!(whole, bytewise, "{s:x?}");
        }
    }

    #[test]
    fn fails_on_the_first_impossible_byte_not_at_the_end() {
        // 0xF4 0x90 is already beyond U+10FFFF: no continuation can save it.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'a', 0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    /// Bytes that are mostly UTF-8 fragments, so that valid multi-byte sequences,
    /// truncated ones and near misses all occur often.
    fn utf8ish() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            any::<char>().prop_map(|c| {
                let b = c.to_string().into_bytes();
                b[..b.len().saturating_sub(1).max(1)].to_vec()
            }),
            any::<u8>().prop_map(|b| vec![b]),
            Just(vec![0xED, 0xA0, 0x80]),
            Just(vec![0xF4, 0x90]),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        /// Fed one byte at a time, the validator fails exactly at the first byte
        /// after which no valid continuation exists (std's validator is the oracle),
        /// and at the end it accepts exactly what std accepts.
        #[test]
        fn fails_at_the_first_impossible_byte_like_std(bytes in utf8ish()) {
            let valid_or_incomplete =
                |b: &[u8]| std::str::from_utf8(b).map_or_else(|e| e.error_len().is_none(), |_| true);
            let mut v = Utf8Validator::new();
            let failed_at = bytes
                .iter()
                .position(|b| v.feed(std::slice::from_ref(b)).is_err());
            let expected = (1..=bytes.len()).find(|&n| !valid_or_incomplete(&bytes[..n])).map(|n| n - 1);
            proptest::prop_assert_eq!(failed_at, expected);
            if failed_at.is_none() {
                proptest::prop_assert_eq!(v.finish().is_ok(), std::str::from_utf8(&bytes).is_ok());
            }
        }

        /// Any split into two pieces agrees with validating the whole at once.
        #[test]
        fn two_pieces_agree_with_std(bytes in utf8ish(), cut in 0usize..200) {
            let cut = cut.min(bytes.len());
            proptest::prop_assert_eq!(feed_split(&bytes, cut).is_ok(), std::str::from_utf8(&bytes).is_ok());
        }
    }

    #[test]
    fn unfinished_code_point_at_the_end_is_invalid() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xE2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}

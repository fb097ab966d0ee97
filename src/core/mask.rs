//! XOR masking of frame payloads (RFC 6455 §5.3), in place and a word at a time.
//!
//! Owns only the arithmetic of masking. It must never allocate or copy: callers
//! hand it the bytes to transform where they already are.

/// Masks or unmasks `buf` in place with `key`, where `buf` starts `offset` bytes into
/// the frame's payload (so a payload that arrives in pieces is unmasked piece by piece).
///
/// Eight bytes at a time with unaligned loads from the start of `buf` (every
/// 8-byte step keeps the key's phase), 32 at a time while there are that many:
/// a short payload costs a word operation or two, not a byte loop on each side
/// of an aligned middle.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let word = key_word(key);
    let xor = |chunk: &mut [u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    };
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        block.chunks_exact_mut(8).for_each(xor);
    }
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for chunk in &mut words {
        xor(chunk);
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Payloads up to this long are masked as they are appended, a word at a
/// time; longer ones are copied first (one bulk copy) and masked in place.
const APPEND_WORDWISE_MAX: usize = 256;

/// Appends `src` masked (or unmasked) with `key` to `out`, starting at the
/// payload's first byte: one pass for a short payload, where a call to copy
/// it and a second pass to mask it cost more than the bytes.
pub fn extend_masked(out: &mut Vec<u8>, src: &[u8], key: [u8; 4]) {
    if src.len() > APPEND_WORDWISE_MAX {
        let start = out.len();
        out.extend_from_slice(src);
        apply_mask(&mut out[start..], key, 0);
        return;
    }
    out.reserve(src.len());
    let word = key_word(key);
    let mut words = src.chunks_exact(8);
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        out.extend_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The rest starts at a multiple of 8 bytes, so at the key's first byte.
    for (i, b) in words.remainder().iter().enumerate() {
        out.push(b ^ key[i & 3]);
    }
}

/// The key twice over, to mask eight bytes with one XOR.
fn key_word(key: [u8; 4]) -> u64 {
    u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ])
}

fn rotate_key(mut key: [u8; 4], offset: usize) -> [u8; 4] {
    key.rotate_left(offset & 3);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) & 3];
        }
    }

    #[test]
    fn matches_bytewise_masking_for_every_length_offset_and_alignment() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(data.len() - start) {
                for offset in 0..4 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    mask_bytewise(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn appending_masked_equals_copying_then_masking() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..700u32).map(|i| (i * 13 + 5) as u8).collect();
        for len in (0..300).chain([APPEND_WORDWISE_MAX + 1, 699]) {
            let mut want = vec![7u8; 3];
            want.extend_from_slice(&data[..len]);
            mask_bytewise(&mut want[3..], key, 0);
            let mut got = vec![7u8; 3];
            extend_masked(&mut got, &data[..len], key);
            assert_eq!(got, want, "len {len}");
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }
}

//! Password hashes for HTTP Basic users: the `pbkdf2-sha256$ITER$SALT$HASH`
//! format, making one, and verifying a password against one.
//!
//! Owns the format and the constant-time comparison. It must never log or return
//! a password, and depends on nothing else in wsd, so the config schema and the
//! authentication checks can both use it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use sha2::Sha256;

/// The PBKDF2 iteration count for new hashes. Verification uses the count stored
/// in each hash. Kept moderate: checks run on the reactor thread.
pub const DEFAULT_ITERATIONS: u32 = 10_000;

/// A parsed `pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    pub fn parse(s: &str) -> Option<PasswordHash> {
        let mut parts = s.split('$');
        if parts.next()? != "pbkdf2-sha256" {
            return None;
        }
        let iterations: u32 = parts.next()?.parse().ok()?;
        let salt = BASE64.decode(parts.next()?).ok()?;
        let hash = BASE64.decode(parts.next()?).ok()?;
        if parts.next().is_some() || iterations == 0 || salt.len() < 8 || hash.len() != 32 {
            return None;
        }
        Some(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str, salt: [u8; 16], iterations: u32) -> PasswordHash {
        let mut hash = vec![0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut hash);
        PasswordHash {
            iterations,
            salt: salt.to_vec(),
            hash,
        }
    }

    pub fn verify(&self, password: &str) -> bool {
        let mut candidate = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password.as_bytes(),
            &self.salt,
            self.iterations,
            &mut candidate,
        );
        constant_time_eq(&candidate, &self.hash)
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.hash)
        )
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PasswordHash::parse(&s).ok_or_else(|| {
            de::Error::custom(
                "not a `pbkdf2-sha256$ITER$SALT$HASH` string (make one with `wsd hash-password`)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_verifies_only_the_right_password() {
        let h = PasswordHash::new("s3cret", [7; 16], 1000);
        let parsed = PasswordHash::parse(&h.to_string()).unwrap();
        assert_eq!(parsed, h);
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!parsed.verify(""));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "",
            "plain",
            "pbkdf2-sha256$0$AAAAAAAAAAA=$AAAA",
            "md5$1$a$b",
            "pbkdf2-sha256$10$!!$AAAA",
        ] {
            assert_eq!(PasswordHash::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

//! Per-route authentication of upgrade requests: HTTP Basic against salted password
//! hashes, a ticket in a query parameter, or a cookie.
//!
//! Owns the checks and the password-hash format. It must never log or return a
//! secret, and compares secrets in constant time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::Sha256;

use crate::app::query_param;
use crate::config::{AuthKind, RouteConfig, UserConfig};
use crate::core::{Headers, Request};

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

/// Whether `value` equals any of `accepted`, checking every one in constant time.
fn matches_any(value: &str, accepted: &[String]) -> bool {
    accepted.iter().fold(false, |found, a| {
        found | constant_time_eq(value.as_bytes(), a.as_bytes())
    })
}

/// Why a request was not authenticated. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential was presented.
    Missing,
    /// A credential was presented and is wrong (for Basic: names the user).
    Wrong { user: Option<String> },
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFailure::Missing => f.write_str("no credential"),
            AuthFailure::Wrong { user: Some(u) } => write!(f, "wrong credential for user {u:?}"),
            AuthFailure::Wrong { user: None } => f.write_str("wrong credential"),
        }
    }
}

/// Checks `request` against `route`'s authentication. `Ok(user)` names the Basic user.
pub fn authenticate(
    route: &RouteConfig,
    users: &[(UserConfig, PasswordHash)],
    request: &Request,
) -> Result<Option<String>, AuthFailure> {
    match route.auth {
        AuthKind::None => Ok(None),
        AuthKind::Basic => {
            let header = request
                .header("Authorization")
                .ok_or(AuthFailure::Missing)?;
            let (scheme, encoded) = header.trim().split_once(' ').ok_or(AuthFailure::Missing)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(AuthFailure::Missing);
            }
            let decoded = BASE64
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or(AuthFailure::Wrong { user: None })?;
            let (name, password) = decoded
                .split_once(':')
                .ok_or(AuthFailure::Wrong { user: None })?;
            let user = users.iter().find(|(u, _)| u.name == name);
            match user {
                Some((u, hash)) if hash.verify(password) => Ok(Some(u.name.clone())),
                _ => Err(AuthFailure::Wrong {
                    user: Some(name.to_owned()),
                }),
            }
        }
        AuthKind::Ticket => {
            let ticket = request
                .query()
                .and_then(|q| query_param(q, &route.ticket_param))
                .ok_or(AuthFailure::Missing)?;
            if matches_any(&ticket, &route.tickets) {
                Ok(None)
            } else {
                Err(AuthFailure::Wrong { user: None })
            }
        }
        AuthKind::Cookie => {
            let value = request
                .header_list("Cookie")
                .flat_map(|h| h.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| *name == route.cookie_name)
                .map(|(_, value)| value.trim().to_owned())
                .ok_or(AuthFailure::Missing)?;
            if matches_any(&value, &route.cookie_values) {
                Ok(None)
            } else {
                Err(AuthFailure::Wrong { user: None })
            }
        }
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

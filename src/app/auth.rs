//! Per-route authentication of upgrade requests: HTTP Basic against salted password
//! hashes, a ticket in a query parameter, or a cookie.
//!
//! Owns the checks (the hash format is `crate::password`'s). It must never log or
//! return a secret, and compares secrets in constant time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::app::query_param;
use crate::config::{AuthConfig, UserConfig};
use crate::core::{Headers, Request};
use crate::password::constant_time_eq;

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
    auth: &AuthConfig,
    users: &[UserConfig],
    request: &Request,
) -> Result<Option<String>, AuthFailure> {
    match auth {
        AuthConfig::None => Ok(None),
        AuthConfig::Basic { .. } => {
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
            let user = users.iter().find(|u| u.name == name);
            match user {
                Some(u) if u.password_hash.verify(password) => Ok(Some(u.name.clone())),
                _ => Err(AuthFailure::Wrong {
                    user: Some(name.to_owned()),
                }),
            }
        }
        AuthConfig::Ticket { param, tickets } => {
            let ticket = request
                .query()
                .and_then(|q| query_param(q, param))
                .ok_or(AuthFailure::Missing)?;
            if matches_any(&ticket, tickets) {
                Ok(None)
            } else {
                Err(AuthFailure::Wrong { user: None })
            }
        }
        AuthConfig::Cookie { name, values } => {
            let value = request
                .header_list("Cookie")
                .flat_map(|h| h.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(cookie, _)| cookie == name)
                .map(|(_, value)| value.trim().to_owned())
                .ok_or(AuthFailure::Missing)?;
            if matches_any(&value, values) {
                Ok(None)
            } else {
                Err(AuthFailure::Wrong { user: None })
            }
        }
    }
}

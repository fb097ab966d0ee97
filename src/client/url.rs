//! `ws://` and `wss://` URL parsing for the client and the load generator: host,
//! port, the `Host` header value, the request target, and whether TLS is used.
//!
//! Owns only syntax and name resolution. It must never open a connection.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS.
    pub secure: bool,
    /// The host as written (without IPv6 brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header value: `host[:port]` with brackets for IPv6 literals.
    pub host_header: String,
    /// The request target: path and query, at least `/`.
    pub resource: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// A scheme other than `ws://` or `wss://`.
    UnsupportedScheme(String),
    /// No host between `ws://` and the path.
    MissingHost,
    /// The port is not a number in 1..=65535.
    InvalidPort(String),
    /// The host did not resolve to any address.
    Unresolvable(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::UnsupportedScheme(s) => {
                write!(f, "unsupported URL scheme {s:?}; use ws:// or wss://")
            }
            UrlError::MissingHost => f.write_str("the URL has no host"),
            UrlError::InvalidPort(p) => write!(f, "invalid port {p:?}"),
            UrlError::Unresolvable(h) => write!(f, "cannot resolve host {h:?}"),
        }
    }
}

impl std::error::Error for UrlError {}

impl WsUrl {
    /// Parses `ws[s]://host[:port][/path][?query]`. The default port is 80 (443 for wss).
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => return Err(UrlError::UnsupportedScheme(url.to_owned())),
        };
        let secure = match scheme.as_str() {
            "ws" => false,
            "wss" => true,
            _ => return Err(UrlError::UnsupportedScheme(scheme)),
        };
        let default_port = if secure { 443 } else { 80 };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        // A fragment is never sent (RFC 6455 §3).
        let tail = tail.split('#').next().unwrap_or("");
        let resource = match tail {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(UrlError::MissingHost)?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        let port = match port_text {
            None | Some("") => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(UrlError::InvalidPort(p.to_owned())),
            },
        };
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_header = if port == default_port {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        Ok(WsUrl {
            secure,
            host,
            port,
            host_header,
            resource,
        })
    }

    /// Resolves the host to its first socket address (preferring IPv4).
    pub fn resolve(&self) -> Result<SocketAddr, UrlError> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|_| UrlError::Unresolvable(self.host.clone()))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| UrlError::Unresolvable(self.host.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_path_and_query() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/chat?room=a#frag").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 9001);
        assert_eq!(u.host_header, "127.0.0.1:9001");
        assert_eq!(u.resource, "/chat?room=a");
    }

    #[test]
    fn defaults_port_and_path() {
        let u = WsUrl::parse("ws://localhost").unwrap();
        assert_eq!((u.port, u.resource.as_str()), (80, "/"));
        assert_eq!(u.host_header, "localhost");
        let q = WsUrl::parse("ws://h:81?x=1").unwrap();
        assert_eq!(q.resource, "/?x=1");
    }

    #[test]
    fn ipv6_literal_keeps_brackets_in_host_header() {
        let u = WsUrl::parse("ws://[::1]:8080/").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.host_header, "[::1]:8080");
    }

    #[test]
    fn wss_defaults_to_port_443() {
        let u = WsUrl::parse("wss://example.test/x").unwrap();
        assert!(u.secure);
        assert_eq!((u.port, u.host_header.as_str()), (443, "example.test"));
        let v = WsUrl::parse("wss://example.test:80/").unwrap();
        assert_eq!(v.host_header, "example.test:80");
        assert!(!WsUrl::parse("ws://h/").unwrap().secure);
    }

    #[test]
    fn refuses_other_schemes_and_bad_ports() {
        assert!(matches!(
            WsUrl::parse("http://h/"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            WsUrl::parse("ws://h:0/"),
            Err(UrlError::InvalidPort(_))
        ));
        assert!(matches!(
            WsUrl::parse("ws://h:70000/"),
            Err(UrlError::InvalidPort(_))
        ));
        assert_eq!(WsUrl::parse("ws:///x"), Err(UrlError::MissingHost));
    }
}

//! Who the client is behind a trusted proxy: the address an `X-Forwarded-For`
//! or `Forwarded` (RFC 7239) header names, believed only when the peer itself
//! is in `trusted_proxies`.
//!
//! Owns reading those headers. It must never believe them from a peer outside
//! the trusted ranges, and never return an address a trusted proxy added on
//! its own behalf (the walk goes from the nearest hop outwards and stops at
//! the first address that is not a trusted proxy).

use std::net::IpAddr;

use crate::config::Cidr;
use crate::core::{Headers, Request};

/// Whether `ip` is one of the trusted proxies.
pub fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// The client's address for a request that arrived from `peer`: the peer
/// itself unless it is a trusted proxy that named someone.
pub fn client_ip(request: &Request, peer: IpAddr, proxies: &[Cidr]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<IpAddr> = if request.header("X-Forwarded-For").is_some() {
        request
            .header_list("X-Forwarded-For")
            .filter_map(parse_hop)
            .collect()
    } else {
        request
            .header_list("Forwarded")
            .filter_map(forwarded_for)
            .collect()
    };
    // Nearest hop last: skip the trusted ones; the first other is the client.
    hops.iter()
        .rev()
        .copied()
        .find(|ip| !trusted(*ip, proxies))
        .or_else(|| hops.first().copied())
        .unwrap_or(peer)
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1` or `[2001:db8::1]:4711`; `unknown` and obfuscated ids are None.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse::<IpAddr>().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{parse_request, RequestLimits};

    fn request(headers: &str) -> Request {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        parse_request(head.as_bytes(), &RequestLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> Vec<Cidr> {
        vec![Cidr::parse("10.0.0.0/8").unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let r = request("X-Forwarded-For: 1.2.3.4\r\n");
        assert_eq!(
            client_ip(&r, ip("203.0.113.5"), &proxies()),
            ip("203.0.113.5")
        );
        let r = request("Forwarded: for=1.2.3.4\r\n");
        assert_eq!(
            client_ip(&r, ip("203.0.113.5"), &proxies()),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        // A spoofed first entry from the client, then the real client, then a
        // second trusted proxy.
        let r = request("X-Forwarded-For: 6.6.6.6, 198.51.100.7\r\nX-Forwarded-For: 10.1.1.1\r\n");
        assert_eq!(
            client_ip(&r, ip("10.0.0.2"), &proxies()),
            ip("198.51.100.7")
        );
        let r = request("Forwarded: for=\"[2001:db8::9]:4711\";proto=https, for=10.2.2.2\r\n");
        assert_eq!(client_ip(&r, ip("10.0.0.2"), &proxies()), ip("2001:db8::9"));
        let r = request("X-Forwarded-For: 198.51.100.7:5555\r\n");
        assert_eq!(
            client_ip(&r, ip("10.0.0.2"), &proxies()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn without_a_usable_header_the_proxy_itself_is_the_client() {
        assert_eq!(
            client_ip(&request(""), ip("10.0.0.2"), &proxies()),
            ip("10.0.0.2")
        );
        let r = request("X-Forwarded-For: unknown, garbage\r\n");
        assert_eq!(client_ip(&r, ip("10.0.0.2"), &proxies()), ip("10.0.0.2"));
        // Every hop trusted: the farthest one.
        let r = request("X-Forwarded-For: 10.9.9.9, 10.8.8.8\r\n");
        assert_eq!(client_ip(&r, ip("10.0.0.2"), &proxies()), ip("10.9.9.9"));
    }
}

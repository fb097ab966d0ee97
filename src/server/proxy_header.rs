//! The PROXY protocol header (HAProxy's, versions 1 and 2) a load balancer
//! sends before anything else on a connection, naming the client it relays.
//!
//! Owns parsing those bytes into the client's address. It must never read a
//! socket or trust a header on a listener that was not configured for one
//! (the caller decides), and never accept more than [`MAX_HEADER`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::ProxyProtocol;

/// The longest header accepted: v1 lines are at most 107 bytes; v2 headers
/// with TLVs are allowed up to this.
pub const MAX_HEADER: usize = 1024;

const V1_MAX: usize = 107;
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A whole header of `len` bytes; `client` is `None` when it names no
    /// address (v1 `UNKNOWN`, v2 `LOCAL` or an unspecified family): the
    /// peer's own address stands.
    Done {
        client: Option<SocketAddr>,
        len: usize,
    },
}

/// Parses the header `version` expects at the start of `data`.
pub fn parse(version: ProxyProtocol, data: &[u8]) -> Result<Parsed, &'static str> {
    match version {
        ProxyProtocol::Off => Ok(Parsed::Done {
            client: None,
            len: 0,
        }),
        ProxyProtocol::V1 => parse_v1(data),
        ProxyProtocol::V2 => parse_v2(data),
    }
}

fn parse_v1(data: &[u8]) -> Result<Parsed, &'static str> {
    const PREFIX: &[u8] = b"PROXY ";
    let n = data.len().min(PREFIX.len());
    if data[..n] != PREFIX[..n] {
        return Err("no PROXY v1 header");
    }
    let Some(end) = data.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if data.len() >= V1_MAX {
            Err("PROXY v1 header longer than 107 bytes")
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = data[..end]
        .strip_suffix(b"\r")
        .ok_or("PROXY v1 header without CRLF")?;
    let line = std::str::from_utf8(line).map_err(|_| "PROXY v1 header is not ASCII")?;
    let mut words = line.split(' ');
    let _proxy = words.next();
    let client = match words.next() {
        Some("UNKNOWN") => None,
        Some(family @ ("TCP4" | "TCP6")) => {
            let fields: Vec<&str> = words.collect();
            let [src, _dst, sport, _dport] = fields[..] else {
                return Err("PROXY v1 header without four address fields");
            };
            let ip: IpAddr = src.parse().map_err(|_| "PROXY v1 source address")?;
            if ip.is_ipv4() != (family == "TCP4") {
                return Err("PROXY v1 address does not match its family");
            }
            let port: u16 = sport.parse().map_err(|_| "PROXY v1 source port")?;
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err("PROXY v1 header with an unknown protocol"),
    };
    Ok(Parsed::Done {
        client,
        len: end + 1,
    })
}

fn parse_v2(data: &[u8]) -> Result<Parsed, &'static str> {
    let n = data.len().min(V2_SIGNATURE.len());
    if data[..n] != V2_SIGNATURE[..n] {
        return Err("no PROXY v2 header");
    }
    if data.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let (version, command) = (data[12] >> 4, data[12] & 0x0f);
    if version != 2 {
        return Err("PROXY v2 header with another version");
    }
    let len = 16 + usize::from(u16::from_be_bytes([data[14], data[15]]));
    if len > MAX_HEADER {
        return Err("PROXY v2 header too long");
    }
    if data.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let body = &data[16..len];
    let client = match (command, data[13]) {
        (0, _) => None, // LOCAL: the balancer's own connection (health checks)
        (1, 0x11) => {
            let a = body.get(..12).ok_or("PROXY v2 IPv4 addresses cut short")?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (1, 0x21) => {
            let a = body.get(..36).ok_or("PROXY v2 IPv6 addresses cut short")?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        (1, _) => None, // UNSPEC or a non-TCP family: keep the peer's address
        _ => return Err("PROXY v2 header with an unknown command"),
    };
    Ok(Parsed::Done { client, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(client: &str, len: usize) -> Parsed {
        Parsed::Done {
            client: Some(client.parse().unwrap()),
            len,
        }
    }

    #[test]
    fn v1_lines_name_the_client_and_every_split_waits_for_more() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n";
        let header_len = 43;
        assert_eq!(parse_v1(line), Ok(done("203.0.113.7:51234", header_len)));
        for cut in 0..header_len {
            assert_eq!(parse_v1(&line[..cut]), Ok(Parsed::Incomplete), "{cut}");
        }
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
        assert_eq!(parse_v1(v6), Ok(done("[2001:db8::1]:4000", v6.len())));
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse_v1(unknown),
            Ok(Parsed::Done {
                client: None,
                len: unknown.len()
            })
        );
    }

    #[test]
    fn v1_refuses_what_is_not_a_header() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\r\n",
        ] {
            assert!(parse_v1(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse_v1(&[b'P'; 0][..]).is_ok());
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(200, b'1');
        assert!(parse_v1(&long).is_err());
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v2_headers_name_the_client_in_both_families() {
        let mut body = vec![198, 51, 100, 9, 10, 0, 0, 1];
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV after the addresses
        let h = v2(1, 0x11, &body);
        assert_eq!(parse_v2(&h), Ok(done("198.51.100.9:40000", h.len())));
        for cut in 0..h.len() {
            assert_eq!(parse_v2(&h[..cut]), Ok(Parsed::Incomplete), "{cut}");
        }
        let mut body = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[0x1f, 0x90, 0, 80]);
        let h = v2(1, 0x21, &body);
        assert_eq!(parse_v2(&h), Ok(done("[2001:db8::7]:8080", h.len())));
        let local = v2(0, 0, &[]);
        assert_eq!(
            parse_v2(&local),
            Ok(Parsed::Done {
                client: None,
                len: 16
            })
        );
    }

    #[test]
    fn v2_refuses_bad_signatures_versions_and_lengths() {
        assert!(parse_v2(b"GET / HTTP/1.1\r\n\r\n").is_err());
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(parse_v2(&wrong_version).is_err());
        assert!(
            parse_v2(&v2(1, 0x11, &[0; 4])).is_err(),
            "addresses cut short"
        );
        assert!(parse_v2(&v2(5, 0x11, &[0; 12])).is_err(), "unknown command");
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert!(parse_v2(&huge).is_err());
    }
}

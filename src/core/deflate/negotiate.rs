//! permessage-deflate negotiation (RFC 7692 §7.1): reading a client's offers,
//! choosing the parameters a server configuration can honour and writing its
//! answer; on the client side, writing an offer and checking the server's answer.
//!
//! Owns the meaning and validity of the four parameters. It must never compress
//! anything or hold per-connection state: the outcome is a small [`DeflateParams`].

use crate::core::extensions::{write_extension, ExtensionOffer};

/// The extension's registered name.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// What both sides agreed on, as the server's answer states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's compressor window (8-15); `None`: not stated, 15.
    pub server_max_window_bits: Option<u8>,
    /// The client's compressor window (8-15); `None`: not stated, 15.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The answer's `Sec-WebSocket-Extensions` value.
    pub fn response_header(&self) -> String {
        let mut params = Vec::new();
        if self.server_no_context_takeover {
            params.push(("server_no_context_takeover".to_owned(), None));
        }
        if self.client_no_context_takeover {
            params.push(("client_no_context_takeover".to_owned(), None));
        }
        if let Some(bits) = self.server_max_window_bits {
            params.push(("server_max_window_bits".to_owned(), Some(bits.to_string())));
        }
        if let Some(bits) = self.client_max_window_bits {
            params.push(("client_max_window_bits".to_owned(), Some(bits.to_string())));
        }
        deflate_header(params)
    }
}

/// A permessage-deflate extension with `params`, in the header's syntax.
fn deflate_header(params: Vec<(String, Option<String>)>) -> String {
    let mut out = String::new();
    write_extension(
        &mut out,
        &ExtensionOffer {
            name: PERMESSAGE_DEFLATE.to_owned(),
            params,
        },
    );
    out
}

/// How a route uses permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionMode {
    /// Decline every offer.
    Off,
    /// Answer with both no-context-takeover parameters: every message is
    /// compressed and inflated by the reactor's one context pair, reset per
    /// message, so a connection holds no compression memory at all.
    Shared,
    /// Honour the client's context takeover: a connection gets its own
    /// compressor and inflater (allocated on its first compressed message) for
    /// each direction that keeps its context.
    Dedicated,
}

/// A server's compression policy for one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflatePolicy {
    pub mode: CompressionMode,
    /// Largest window for the contexts this side keeps (9-15), both directions:
    /// the server compresses with at most this many bits, and a client that
    /// offers `client_max_window_bits` is asked to stay within it.
    pub window_bits: u8,
}

/// A client's `client_max_window_bits` in an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientBits {
    /// Not offered: the server may not limit the client's window.
    Absent,
    /// Offered without a value: any limit is accepted.
    Any,
    /// Offered with a value: the client's window is at most this.
    Max(u8),
}

/// One valid permessage-deflate offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeflateOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientBits,
}

/// Reads one permessage-deflate offer; `None` if it is malformed (an unknown or
/// repeated parameter, a value out of range), which declines it.
fn read_offer(offer: &ExtensionOffer) -> Option<DeflateOffer> {
    let mut read = DeflateOffer {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: ClientBits::Absent,
    };
    let mut seen = [false; 4];
    for (name, value) in &offer.params {
        let index = match name.as_str() {
            "server_no_context_takeover" if value.is_none() => {
                read.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" if value.is_none() => {
                read.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => {
                read.server_max_window_bits = Some(window_bits(value.as_deref()?)?);
                2
            }
            "client_max_window_bits" => {
                read.client_max_window_bits = match value {
                    None => ClientBits::Any,
                    Some(v) => ClientBits::Max(window_bits(v)?),
                };
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
    }
    Some(read)
}

/// A window size parameter: 8 to 15, digits only (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

/// The first permessage-deflate offer `policy` can honour, and the parameters
/// of the answer; `None` declines them all (the handshake goes on without it).
pub fn negotiate(offers: &[ExtensionOffer], policy: &DeflatePolicy) -> Option<DeflateParams> {
    if policy.mode == CompressionMode::Off {
        return None;
    }
    offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .find_map(|o| read_offer(o).map(|offer| answer(&offer, policy)))
}

fn answer(offer: &DeflateOffer, policy: &DeflatePolicy) -> DeflateParams {
    let shared = policy.mode == CompressionMode::Shared;
    let own_bits = policy.window_bits.clamp(9, 15);
    DeflateParams {
        // A server may always add either (RFC 7692 §7.1.1.1-2); shared mode must.
        server_no_context_takeover: shared || offer.server_no_context_takeover,
        client_no_context_takeover: shared || offer.client_no_context_takeover,
        // An offered limit must be answered (and may be lowered); shared mode
        // compresses with the reactor's context at whatever the client allows.
        server_max_window_bits: offer.server_max_window_bits.map(|b| {
            if shared {
                b
            } else {
                b.min(own_bits)
            }
        }),
        // Only a client that offered it may be limited; the reactor's shared
        // inflater takes any window, a dedicated one is kept to `window_bits`.
        client_max_window_bits: match offer.client_max_window_bits {
            ClientBits::Absent => None,
            _ if shared => None,
            ClientBits::Any => Some(own_bits),
            ClientBits::Max(b) => Some(b.min(own_bits)),
        },
    }
}

/// What a client offers: `client_max_window_bits` (so a server may limit it),
/// and both no-context-takeover parameters when it would rather hold no
/// compression memory between messages.
pub fn client_offer(no_context_takeover: bool) -> String {
    let mut params = vec![("client_max_window_bits".to_owned(), None)];
    if no_context_takeover {
        params.push(("server_no_context_takeover".to_owned(), None));
        params.push(("client_no_context_takeover".to_owned(), None));
    }
    deflate_header(params)
}

/// Checks a server's answer to [`client_offer`]: exactly one permessage-deflate
/// with valid parameters, none the offer did not allow. `Err` names what is wrong;
/// the client must then fail the connection (RFC 6455 §4.1, RFC 7692 §5).
pub fn accept_answer(
    answer: &[ExtensionOffer],
    no_context_takeover: bool,
) -> Result<Option<DeflateParams>, String> {
    let [ext] = answer else {
        return match answer.len() {
            0 => Ok(None),
            n => Err(format!(
                "the server answered {n} extensions; one was offered"
            )),
        };
    };
    if !ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
        return Err(format!(
            "the server answered extension {:?}, not offered",
            ext.name
        ));
    }
    let read = read_offer(ext).ok_or("the server's permessage-deflate parameters are invalid")?;
    if no_context_takeover && !read.server_no_context_takeover {
        return Err("the server refused server_no_context_takeover".to_owned());
    }
    let client_max_window_bits = match read.client_max_window_bits {
        ClientBits::Absent => None,
        ClientBits::Max(b) => Some(b),
        ClientBits::Any => return Err("client_max_window_bits needs a value in an answer".into()),
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: read.server_no_context_takeover,
        client_no_context_takeover: read.client_no_context_takeover,
        server_max_window_bits: read.server_max_window_bits,
        client_max_window_bits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::extensions::parse_extensions;

    const SHARED: DeflatePolicy = DeflatePolicy {
        mode: CompressionMode::Shared,
        window_bits: 15,
    };
    const DEDICATED_12: DeflatePolicy = DeflatePolicy {
        mode: CompressionMode::Dedicated,
        window_bits: 12,
    };

    fn answer_to(header: &str, policy: &DeflatePolicy) -> Option<String> {
        let offers = parse_extensions([header]).unwrap();
        negotiate(&offers, policy).map(|p| p.response_header())
    }

    #[test]
    fn shared_mode_always_answers_both_no_context_takeover_parameters() {
        assert_eq!(
            answer_to("permessage-deflate; client_max_window_bits", &SHARED).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            answer_to("permessage-deflate; server_max_window_bits=8", &SHARED).as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8"
            )
        );
    }

    #[test]
    fn dedicated_mode_honours_the_offer_within_its_window() {
        assert_eq!(
            answer_to("permessage-deflate", &DEDICATED_12).as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            answer_to(
                "permessage-deflate; client_max_window_bits; server_max_window_bits=14",
                &DEDICATED_12
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
        );
        assert_eq!(
            answer_to(
                "permessage-deflate; client_no_context_takeover; client_max_window_bits=10",
                &DEDICATED_12
            )
            .as_deref(),
            Some("permessage-deflate; client_no_context_takeover; client_max_window_bits=10")
        );
    }

    #[test]
    fn the_first_acceptable_offer_wins_and_bad_ones_are_declined() {
        let header = "x-unknown, permessage-deflate; server_max_window_bits=16, \
                      permessage-deflate; foo, permessage-deflate; server_no_context_takeover=1, \
                      permessage-deflate; client_max_window_bits=09x, \
                      permessage-deflate; client_no_context_takeover; client_no_context_takeover, \
                      permessage-deflate; server_max_window_bits=9";
        assert_eq!(
            answer_to(header, &DEDICATED_12).as_deref(),
            Some("permessage-deflate; server_max_window_bits=9")
        );
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; server_max_window_bits=010",
        ] {
            let offers = parse_extensions([bad]).unwrap_or_default();
            assert_eq!(negotiate(&offers, &SHARED), None, "{bad}");
        }
    }

    #[test]
    fn off_declines_everything() {
        let off = DeflatePolicy {
            mode: CompressionMode::Off,
            window_bits: 15,
        };
        assert_eq!(answer_to("permessage-deflate", &off), None);
    }

    #[test]
    fn a_client_checks_the_answer_against_its_offer() {
        let check = |answer: &str, nct| {
            accept_answer(&parse_extensions([answer]).unwrap(), nct).map(|p| p.is_some())
        };
        assert_eq!(check("", false), Ok(false));
        assert_eq!(check("permessage-deflate", false), Ok(true));
        assert_eq!(
            check("permessage-deflate; client_max_window_bits=10", false),
            Ok(true)
        );
        assert!(check("permessage-deflate", true).is_err());
        assert!(check("x-other", false).is_err());
        assert!(check("permessage-deflate, permessage-deflate", false).is_err());
        assert!(check("permessage-deflate; client_max_window_bits", false).is_err());
        assert!(check("permessage-deflate; bogus", false).is_err());
    }

    #[test]
    fn a_client_offer_reads_back_as_an_offer() {
        let offers = parse_extensions([client_offer(true).as_str()]).unwrap();
        assert_eq!(
            read_offer(&offers[0]),
            Some(DeflateOffer {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: None,
                client_max_window_bits: ClientBits::Any,
            })
        );
    }
}

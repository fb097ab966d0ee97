//! The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1): a list of
//! extensions, each a token with `;`-separated parameters whose values are tokens
//! or quoted strings.
//!
//! Owns parsing and writing that grammar, for every extension alike. It must never
//! decide which extension or parameter is acceptable: `deflate::negotiate` does,
//! for the one extension wsd speaks.

use std::fmt;

/// One extension as offered (or answered): its name and its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    pub name: String,
    /// `(name, value)`; a quoted value is unquoted and unescaped.
    pub params: Vec<(String, Option<String>)>,
}

/// A `Sec-WebSocket-Extensions` value that breaks the grammar, with the offset
/// of the first byte that does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionSyntaxError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for ExtensionSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Parses every offer of one or more header values, in order. Empty list elements
/// (`a, , b`) are allowed, as RFC 9110 §5.6.1 asks of recipients.
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ExtensionOffer>, ExtensionSyntaxError> {
    let mut offers = Vec::new();
    for value in values {
        let mut p = Parser {
            s: value.as_bytes(),
            i: 0,
        };
        loop {
            p.skip_ows();
            if p.eat(b',') {
                continue;
            }
            if p.at_end() {
                break;
            }
            offers.push(p.extension()?);
            p.skip_ows();
            if !p.at_end() && !p.eat(b',') {
                return Err(p.error("expected `,` or `;`"));
            }
        }
    }
    Ok(offers)
}

/// Writes one extension in the header's syntax (values that are not tokens quoted).
pub fn write_extension(out: &mut String, offer: &ExtensionOffer) {
    out.push_str(&offer.name);
    for (name, value) in &offer.params {
        out.push_str("; ");
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            if !v.is_empty() && v.bytes().all(is_tchar) {
                out.push_str(v);
            } else {
                out.push('"');
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn extension(&mut self) -> Result<ExtensionOffer, ExtensionSyntaxError> {
        let name = self.token("expected an extension name")?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            if !self.eat(b';') {
                break;
            }
            self.skip_ows();
            let param = self.token("expected a parameter name")?;
            self.skip_ows();
            let value = if self.eat(b'=') {
                self.skip_ows();
                Some(if self.peek() == Some(b'"') {
                    self.quoted()?
                } else {
                    self.token("expected a parameter value")?
                })
            } else {
                None
            };
            params.push((param, value));
        }
        Ok(ExtensionOffer { name, params })
    }

    fn token(&mut self, what: &'static str) -> Result<String, ExtensionSyntaxError> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.error(what));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn quoted(&mut self) -> Result<String, ExtensionSyntaxError> {
        self.i += 1; // the opening quote
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated quoted string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(c) = self.peek() else {
                        return Err(self.error("unterminated quoted string"));
                    };
                    value.push(c);
                    self.i += 1;
                }
                Some(c) if c == b'\t' || c >= 0x20 && c != 0x7f => {
                    value.push(c);
                    self.i += 1;
                }
                Some(_) => return Err(self.error("control character in quoted string")),
            }
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn error(&self, what: &'static str) -> ExtensionSyntaxError {
        ExtensionSyntaxError { at: self.i, what }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn several_offers_over_several_headers_keep_their_order() {
        let got = parse_extensions([
            "permessage-deflate; client_max_window_bits, permessage-deflate ;server_max_window_bits = 10",
            " , x-other;a=\"q\\\"uoted, with comma\"",
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![
                offer("permessage-deflate", &[("client_max_window_bits", None)]),
                offer(
                    "permessage-deflate",
                    &[("server_max_window_bits", Some("10"))]
                ),
                offer("x-other", &[("a", Some("q\"uoted, with comma"))]),
            ]
        );
    }

    #[test]
    fn quoted_token_values_are_unquoted() {
        let got = parse_extensions(["permessage-deflate; server_max_window_bits=\"12\""]).unwrap();
        assert_eq!(
            got[0].params,
            vec![("server_max_window_bits".to_owned(), Some("12".to_owned()))]
        );
    }

    #[test]
    fn broken_grammar_is_an_error_naming_the_position() {
        for bad in [
            ";",
            "permessage-deflate;",
            "permessage-deflate; =1",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"open",
            "a b",
            "a; b=c d",
            "(x)",
        ] {
            let err = parse_extensions([bad]).unwrap_err();
            assert!(err.at <= bad.len(), "{bad:?}: {err}");
        }
    }

    #[test]
    fn empty_values_and_elements_are_no_offers() {
        assert_eq!(parse_extensions(["", " , ,", "\t"]).unwrap(), vec![]);
    }

    #[test]
    fn written_extensions_parse_back() {
        let ext = offer(
            "permessage-deflate",
            &[
                ("server_no_context_takeover", None),
                ("client_max_window_bits", Some("12")),
                ("x", Some("needs quoting")),
            ],
        );
        let mut s = String::new();
        write_extension(&mut s, &ext);
        assert_eq!(
            s,
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=12; x=\"needs quoting\""
        );
        assert_eq!(parse_extensions([s.as_str()]).unwrap(), vec![ext]);
    }
}

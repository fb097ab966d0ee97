//! Measurement and reporting for the load generator: a compact latency histogram,
//! failure counters by cause, and a small JSON value (writer and parser) used for
//! `--json` output and for results that worker processes hand to their parent.
//!
//! Owns number crunching and formatting only. It must never do I/O beyond
//! formatting into strings, and never read a clock.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// A log-linear histogram of durations in nanoseconds: exact below 1024 ns, then
/// 512 buckets per power of two (relative error under 0.2%). Fixed memory, O(1)
/// record.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

const LINEAR: u64 = 1024;
const SUB: u64 = 512;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Vec::new(),
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros() as u64; // >= 10
        let shift = msb - 9;
        let mantissa = v >> shift; // 512..1023
        (LINEAR + (shift - 1) * SUB + (mantissa - SUB)) as usize
    }

    /// The lowest value of bucket `i`.
    fn bucket_low(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let shift = (i - LINEAR) / SUB + 1;
        let mantissa = (i - LINEAR) % SUB + SUB;
        mantissa << shift
    }

    /// Records one value (nanoseconds).
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value at quantile `q` (0..=1): the low edge of the bucket holding it,
    /// never above the maximum seen. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::bucket_low(i).min(self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// `{"count","mean_us","p50_us","p90_us","p99_us","p999_us","max_us"}`.
    pub fn to_json(&self) -> Json {
        let us = |ns: u64| Json::Num(ns as f64 / 1000.0);
        Json::object([
            ("count", Json::Num(self.total as f64)),
            ("mean_us", us(self.mean())),
            ("p50_us", us(self.quantile(0.50))),
            ("p90_us", us(self.quantile(0.90))),
            ("p99_us", us(self.quantile(0.99))),
            ("p999_us", us(self.quantile(0.999))),
            ("max_us", us(self.max)),
        ])
    }

    /// The raw counts as `{"buckets":[[index,count],...],"max":..,"sum":..}`, so
    /// a parent process can merge its workers' histograms exactly.
    pub fn to_sparse_json(&self) -> Json {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| Json::Arr(vec![Json::num(i as u64), Json::num(*c)]))
            .collect();
        Json::object([
            ("buckets", Json::Arr(buckets)),
            ("max", Json::num(self.max)),
            ("sum", Json::Num(self.sum as f64)),
        ])
    }

    /// Reads `to_sparse_json` output back; malformed entries are skipped.
    pub fn from_sparse_json(j: &Json) -> Histogram {
        let mut h = Histogram::new();
        if let Some(Json::Arr(buckets)) = j.get("buckets") {
            for b in buckets {
                if let Json::Arr(pair) = b {
                    let idx = pair.first().and_then(Json::as_f64).unwrap_or(-1.0);
                    let count = pair.get(1).and_then(Json::as_f64).unwrap_or(0.0) as u64;
                    // Indices past 2^64 ns do not exist; refuse absurd input.
                    if (0.0..40_000.0).contains(&idx) && count > 0 {
                        let i = idx as usize;
                        if i >= h.counts.len() {
                            h.counts.resize(i + 1, 0);
                        }
                        h.counts[i] += count;
                        h.total += count;
                    }
                }
            }
        }
        h.max = j.get("max").and_then(Json::as_f64).unwrap_or(0.0) as u64;
        h.sum = j.get("sum").and_then(Json::as_f64).unwrap_or(0.0) as u128;
        h
    }

    /// `p50 X  p99 Y  max Z` with readable units.
    pub fn summary(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  max {}",
            fmt_ns(self.quantile(0.5)),
            fmt_ns(self.quantile(0.9)),
            fmt_ns(self.quantile(0.99)),
            fmt_ns(self.max)
        )
    }
}

/// A duration in ns as `850ns`, `12.3us`, `4.56ms` or `1.23s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Failures counted by cause (see `ConnError::cause`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    pub by_cause: BTreeMap<String, u64>,
}

impl Failures {
    pub fn add(&mut self, cause: &str, n: u64) {
        if n > 0 {
            *self.by_cause.entry(cause.to_owned()).or_insert(0) += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.by_cause.values().sum()
    }

    pub fn get(&self, cause: &str) -> u64 {
        self.by_cause.get(cause).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &Failures) {
        for (k, v) in &other.by_cause {
            self.add(k, *v);
        }
    }

    pub fn to_json(&self) -> Json {
        Json::Obj(
            self.by_cause
                .iter()
                .map(|(k, v)| (k.clone(), Json::Num(*v as f64)))
                .collect(),
        )
    }

    /// Reads counters back from `to_json` output.
    pub fn from_json(j: &Json) -> Failures {
        let mut f = Failures::default();
        if let Json::Obj(fields) = j {
            for (k, v) in fields {
                f.add(k, v.as_f64().unwrap_or(0.0) as u64);
            }
        }
        f
    }

    /// `refused 3, timeout 1` or `none`.
    pub fn summary(&self) -> String {
        if self.by_cause.is_empty() {
            return "none".to_owned();
        }
        self.by_cause
            .iter()
            .map(|(k, v)| format!("{k} {}", fmt_count(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A JSON value. Objects keep insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// Why JSON text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for JsonError {}

impl Json {
    pub fn object<const N: usize>(fields: [(&str, Json); N]) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn num(n: u64) -> Json {
        Json::Num(n as f64)
    }

    /// Adds (or replaces) a field of an object; ignored on other values.
    pub fn set(&mut self, key: &str, value: Json) {
        if let Json::Obj(fields) = self {
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => fields.push((key.to_owned(), value)),
            }
        }
    }

    /// A field of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a dotted path of object keys, e.g. `latency.p99_us`.
    pub fn path(&self, dotted: &str) -> Option<&Json> {
        dotted.split('.').try_fold(self, |j, k| j.get(k))
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Parses one JSON document (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Json, JsonError> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("trailing characters"));
        }
        Ok(v)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) if !n.is_finite() => f.write_str("null"),
            Json::Num(n) if n.fract() == 0.0 && n.abs() < 9e15 => write!(f, "{}", *n as i64),
            Json::Num(n) => write!(f, "{}", (n * 1000.0).round() / 1000.0),
            Json::Str(s) => write_json_str(f, s),
            Json::Arr(items) => {
                f.write_char('[')?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_char(']')
            }
            Json::Obj(fields) => {
                f.write_char('{')?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_json_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError {
            offset: self.i,
            what,
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, JsonError> {
        self.ws();
        self.depth += 1;
        if self.depth > 64 {
            return Err(self.err("nested too deeply"));
        }
        let v = match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') if self.eat("true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat("null") => Ok(Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        };
        self.depth -= 1;
        v
    }

    fn object(&mut self) -> Result<Json, JsonError> {
        self.i += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.eat("}") {
            return Ok(Json::Obj(fields));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            let k = self.string()?;
            self.ws();
            if !self.eat(":") {
                return Err(self.err("expected ':'"));
            }
            let v = self.value()?;
            fields.push((k, v));
            self.ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(Json::Obj(fields));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }

    fn array(&mut self) -> Result<Json, JsonError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat("]") {
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(Json::Arr(items));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\') {
                if self.s[self.i] < 0x20 {
                    return Err(self.err("control character in string"));
                }
                self.i += 1;
            }
            let chunk =
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad UTF-8"))?;
            out.push_str(chunk);
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    self.i += 1;
                    let c = match self.s.get(self.i) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i + 1..self.i + 5)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.err("bad \\u escape"))?;
                            self.i += 4;
                            char::from_u32(hex).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    self.i += 1;
                    out.push(c);
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map(Json::Num)
            .ok_or_else(|| self.err("bad number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close_to_exact() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [(0.5, 50_000_000f64), (0.99, 99_000_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.005,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.count(), 100_000);
        let top = h.quantile(1.0);
        assert!(top <= 100_000_000 && top as f64 >= 100_000_000.0 * (1.0 - 1.0 / 512.0));
    }

    #[test]
    fn histogram_small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(5);
        b.record(7);
        b.record(900);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0), 5);
        assert_eq!(a.quantile(0.5), 7);
        assert_eq!(a.quantile(1.0), 900);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }

    #[test]
    fn sparse_json_keeps_every_count() {
        let mut h = Histogram::new();
        for v in [3u64, 3, 2_000, 5_000_000] {
            h.record(v);
        }
        let back =
            Histogram::from_sparse_json(&Json::parse(&h.to_sparse_json().to_string()).unwrap());
        assert_eq!(back.count(), 4);
        assert_eq!(back.max(), 5_000_000);
        assert_eq!(back.quantile(0.5), 3);
        assert_eq!(back.quantile(0.75), h.quantile(0.75));
    }

    #[test]
    fn bucket_edges_round_trip() {
        for v in [1023u64, 1024, 1025, 4096, 123_456_789, 10_000_000_000] {
            let low = Histogram::bucket_low(Histogram::index(v));
            assert!(
                low <= v && (v - low) as f64 / v as f64 <= 1.0 / 512.0,
                "{v} -> {low}"
            );
        }
    }

    #[test]
    fn json_round_trips() {
        let mut j = Json::object([
            ("mode", Json::Str("idle \"x\"\n".into())),
            ("n", Json::num(19000)),
            ("rate", Json::Num(1234.5678)),
            ("ok", Json::Bool(true)),
            ("list", Json::Arr(vec![Json::Null, Json::num(1)])),
        ]);
        j.set("nested", Json::object([("p99_us", Json::Num(12.5))]));
        let text = j.to_string();
        assert!(text.contains("\"n\":19000"));
        let back = Json::parse(&text).unwrap();
        assert_eq!(
            back.path("nested.p99_us").and_then(Json::as_f64),
            Some(12.5)
        );
        assert_eq!(
            back.get("mode").and_then(Json::as_str),
            Some("idle \"x\"\n")
        );
        assert_eq!(back.get("rate").and_then(Json::as_f64), Some(1234.568));
    }

    #[test]
    fn json_rejects_garbage() {
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "\"abc", "{} x", "tru"] {
            assert!(Json::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Json::parse(" {\"a\":[1,2,{\"b\":\"\\u0041\"}]} ").unwrap(),
            Json::Obj(vec![(
                "a".into(),
                Json::Arr(vec![
                    Json::num(1),
                    Json::num(2),
                    Json::Obj(vec![("b".into(), Json::Str("A".into()))])
                ])
            )])
        );
    }

    #[test]
    fn failures_count_by_cause_and_survive_json() {
        let mut f = Failures::default();
        f.add("refused", 2);
        f.add("timeout", 0);
        f.add("refused", 1);
        assert_eq!(f.total(), 3);
        assert_eq!(f.summary(), "refused 3");
        let back = Failures::from_json(&Json::parse(&f.to_json().to_string()).unwrap());
        assert_eq!(back, f);
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1234567), "1,234,567");
    }
}

//! Measurement and reporting for the load generator: failure counters by
//! cause and number formatting, with the serde forms (encoded by serde_json)
//! that `--json` output and worker processes' results to their parent are made
//! of. Latencies are kept in `crate::histogram`.
//!
//! Owns number crunching and formatting only. It must never do I/O beyond
//! formatting into strings, and never read a clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// Failures counted by cause (see `ConnError::cause`); serializes as
/// `{"cause":count,...}`, causes in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_by_cause_and_survive_json() {
        let mut f = Failures::default();
        f.add("refused", 2);
        f.add("timeout", 0);
        f.add("refused", 1);
        assert_eq!(f.total(), 3);
        assert_eq!(f.summary(), "refused 3");
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(text, r#"{"refused":3}"#);
        let back: Failures = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1234567), "1,234,567");
    }
}

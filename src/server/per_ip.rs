//! Per-client-address accounting: open connections and a token bucket of new
//! requests for each address, for `max_connections_per_ip` and
//! `handshakes_per_ip_per_sec`; also where a connection's client address (the
//! peer's, or the one a PROXY header or a trusted proxy's header named) is
//! kept for logs.
//!
//! Owns the table and its bound: an address is remembered while it has open
//! connections, and after that only until its bucket is full again, and never
//! more than `max_tracked_ips` such idle addresses (a flood from many
//! addresses cannot grow it). It must never decide what a refusal answers
//! (the caller does) and never hold a connection.

use std::collections::HashMap;
use std::net::IpAddr;

use slab::Slab;

use crate::server::timers::Tick;

/// A connection's entry in the table; [`NO_ENTRY`] when it has none.
pub type EntryId = u32;
pub const NO_ENTRY: EntryId = u32::MAX;

/// Why an address may not open one more connection or make one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It has `max_connections_per_ip` open already.
    Connections,
    /// Its bucket of requests is empty.
    Rate,
    /// The table is full of addresses still cooling down.
    Table,
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    open: u32,
    /// Requests it may still make now (the bucket), as of `updated`.
    tokens: f64,
    updated: Tick,
}

/// The limits, in the loop's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// 0: no limit.
    pub max_open: u32,
    /// Tokens added per tick; 0: no rate limit.
    pub refill_per_tick: f64,
    pub burst: f64,
    /// Addresses without open connections kept at most.
    pub max_idle: usize,
}

#[derive(Debug)]
pub struct PerIp {
    limits: Limits,
    entries: Slab<Entry>,
    by_ip: HashMap<IpAddr, EntryId>,
    /// Entries with no open connection (cooling down).
    idle: usize,
}

impl PerIp {
    pub fn new(limits: Limits) -> PerIp {
        PerIp {
            limits,
            entries: Slab::new(),
            by_ip: HashMap::new(),
            idle: 0,
        }
    }

    /// New limits from a reload; entries stay.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Counts one more open connection from `ip` (a new entry if needed),
    /// unless that would pass `max_connections_per_ip`.
    pub fn open(&mut self, ip: IpAddr, now: Tick) -> Result<EntryId, Refusal> {
        let ip = ip.to_canonical();
        let id = match self.by_ip.get(&ip) {
            Some(&id) => id,
            None => self.insert(ip, now)?,
        };
        let entry = &mut self.entries[id as usize];
        if self.limits.max_open != 0 && entry.open >= self.limits.max_open {
            return Err(Refusal::Connections);
        }
        if entry.open == 0 {
            self.idle -= 1;
        }
        entry.open += 1;
        Ok(id)
    }

    /// One connection of entry `id` ended.
    pub fn close(&mut self, id: EntryId, now: Tick) {
        let Some(entry) = self.entries.get_mut(id as usize) else {
            return;
        };
        entry.open = entry.open.saturating_sub(1);
        if entry.open == 0 {
            self.idle += 1;
            self.refill(id, now);
            if self.cooled_down(id) {
                self.remove(id);
            }
        }
    }

    /// Takes one request from entry `id`'s bucket.
    pub fn request(&mut self, id: EntryId, now: Tick) -> Result<(), Refusal> {
        if self.limits.refill_per_tick <= 0.0 {
            return Ok(());
        }
        self.refill(id, now);
        let Some(entry) = self.entries.get_mut(id as usize) else {
            return Ok(());
        };
        if entry.tokens < 1.0 {
            return Err(Refusal::Rate);
        }
        entry.tokens -= 1.0;
        Ok(())
    }

    /// The address of entry `id`.
    pub fn ip(&self, id: EntryId) -> Option<IpAddr> {
        self.entries.get(id as usize).map(|e| e.ip)
    }

    /// Addresses remembered now (with open connections or cooling down).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, ip: IpAddr, now: Tick) -> Result<EntryId, Refusal> {
        if self.idle >= self.limits.max_idle {
            self.sweep(now);
            if self.idle >= self.limits.max_idle {
                return Err(Refusal::Table);
            }
        }
        let id = self.entries.insert(Entry {
            ip,
            open: 0,
            tokens: self.limits.burst,
            updated: now,
        }) as EntryId;
        self.by_ip.insert(ip, id);
        self.idle += 1;
        Ok(id)
    }

    fn refill(&mut self, id: EntryId, now: Tick) {
        let Some(entry) = self.entries.get_mut(id as usize) else {
            return;
        };
        let elapsed = f64::from(now.wrapping_sub(entry.updated));
        entry.tokens =
            (entry.tokens + elapsed * self.limits.refill_per_tick).min(self.limits.burst);
        entry.updated = now;
    }

    fn cooled_down(&self, id: EntryId) -> bool {
        self.entries.get(id as usize).is_some_and(|e| {
            e.open == 0 && (self.limits.refill_per_tick <= 0.0 || e.tokens >= self.limits.burst)
        })
    }

    fn remove(&mut self, id: EntryId) {
        if self.entries.contains(id as usize) {
            let entry = self.entries.remove(id as usize);
            self.by_ip.remove(&entry.ip);
            self.idle -= 1;
        }
    }

    /// Forgets every idle address whose bucket is full again. One pass over
    /// the table; called when it is full of idle entries, and periodically.
    pub fn sweep(&mut self, now: Tick) {
        let idle: Vec<EntryId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.open == 0)
            .map(|(id, _)| id as EntryId)
            .collect();
        for id in idle {
            self.refill(id, now);
            if self.cooled_down(id) {
                self.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn limits(max_open: u32, refill_per_tick: f64, burst: f64, max_idle: usize) -> Limits {
        Limits {
            max_open,
            refill_per_tick,
            burst,
            max_idle,
        }
    }

    #[test]
    fn open_connections_are_capped_per_address_and_others_are_unaffected() {
        let mut t = PerIp::new(limits(2, 0.0, 0.0, 100));
        let a1 = t.open(ip(1), 0).unwrap();
        let a2 = t.open(ip(1), 0).unwrap();
        assert_eq!(a1, a2);
        assert_eq!(t.open(ip(1), 0), Err(Refusal::Connections));
        assert!(t.open(ip(2), 0).is_ok());
        t.close(a1, 1);
        assert!(t.open(ip(1), 1).is_ok());
        assert_eq!(t.ip(a1), Some(ip(1)));
        // The v4-mapped form is the same address.
        assert_eq!(
            t.open("::ffff:127.0.0.1".parse().unwrap(), 1),
            Err(Refusal::Connections)
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let mut t = PerIp::new(limits(0, 0.5, 3.0, 100));
        let a = t.open(ip(1), 0).unwrap();
        for _ in 0..3 {
            assert!(t.request(a, 0).is_ok());
        }
        assert_eq!(t.request(a, 0), Err(Refusal::Rate));
        assert_eq!(t.request(a, 1), Err(Refusal::Rate), "half a token");
        assert!(t.request(a, 2).is_ok(), "one token after two ticks");
    }

    #[test]
    fn idle_addresses_are_forgotten_once_cooled_and_the_table_is_bounded() {
        let mut t = PerIp::new(limits(0, 1.0, 2.0, 3));
        for last in 1..=3 {
            let id = t.open(ip(last), 0).unwrap();
            t.request(id, 0).unwrap();
            t.request(id, 0).unwrap();
            t.close(id, 0);
        }
        assert_eq!(t.len(), 3, "cooling down, so remembered");
        // Full of addresses still cooling down: a fourth is refused.
        assert_eq!(t.open(ip(4), 0), Err(Refusal::Table));
        // Two ticks later their buckets are full again: swept, room for more.
        assert!(t.open(ip(4), 2).is_ok());
        assert_eq!(t.len(), 1);
        // Without a rate limit, an address is forgotten with its last connection.
        let mut plain = PerIp::new(limits(5, 0.0, 0.0, 3));
        let id = plain.open(ip(9), 0).unwrap();
        plain.close(id, 0);
        assert!(plain.is_empty());
    }
}

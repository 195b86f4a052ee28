//! The NHRP cache: protocol prefix -> NBMA address bindings with holding times.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Instant;

/// An IPv4 prefix, stored with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Prefix {
    /// A prefix (lengths above 32 are clamped to 32; host bits are cleared).
    pub fn new(addr: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        }
    }

    /// The /32 of one address.
    pub fn host(addr: Ipv4Addr) -> Self {
        Self { addr, len: 32 }
    }

    /// Network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True for a /32.
    pub fn is_host(&self) -> bool {
        self.len == 32
    }

    /// Whether the prefix covers an address.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// How an entry was learned (`Type:` in `show ip nhrp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// `ip nhrp map`: never expires.
    Static,
    /// Learned from a registration or a resolution reply.
    Dynamic,
    /// A resolution is pending.
    Incomplete,
    /// A resolution failed: do not ask again until it expires.
    Negative,
}

impl EntryType {
    /// The word `show` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dynamic => "dynamic",
            Self::Incomplete => "incomplete",
            Self::Negative => "negative",
        }
    }
}

/// Entry attributes (`Flags:` in `show ip nhrp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryFlags {
    /// Learned from a packet whose originator is a router (Q bit).
    pub router: bool,
    /// Learned authoritatively (from the owner itself).
    pub authoritative: bool,
    /// Registered with the uniqueness bit: another NBMA may not replace it.
    pub unique: bool,
    /// Created by a Registration Request (NHS side).
    pub registered: bool,
    /// Used to forward data since the last refresh.
    pub used: bool,
    /// The peer is behind NAT (its claimed NBMA differs from the source).
    pub nat: bool,
    /// Learned from the source of a request we answered.
    pub implicit: bool,
}

impl EntryFlags {
    /// Space-separated flag words in IOS order.
    pub fn words(&self) -> String {
        let mut w: Vec<&str> = Vec::new();
        if self.router {
            w.push("router");
        }
        if self.implicit {
            w.push("implicit");
        }
        if self.authoritative {
            w.push("authoritative");
        }
        if self.unique {
            w.push("unique");
        }
        if self.registered {
            w.push("registered");
        }
        if self.used {
            w.push("used");
        }
        w.join(" ")
    }
}

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub prefix: Prefix,
    /// Next-hop protocol (tunnel) address.
    pub via: Ipv4Addr,
    /// Peer NBMA address (post-NAT when NAT was detected); `None` while incomplete.
    pub nbma: Option<Ipv4Addr>,
    /// The NBMA address the peer claimed, when it differs from `nbma`.
    pub claimed_nbma: Option<Ipv4Addr>,
    pub kind: EntryType,
    pub flags: EntryFlags,
    pub created: Instant,
    /// `None` = never expire.
    pub expires: Option<Instant>,
}

impl Entry {
    /// A static mapping (`ip nhrp map <proto> <nbma>`).
    pub fn new_static(proto: Ipv4Addr, nbma: Ipv4Addr, now: Instant) -> Self {
        Self {
            prefix: Prefix::host(proto),
            via: proto,
            nbma: Some(nbma),
            claimed_nbma: None,
            kind: EntryType::Static,
            flags: EntryFlags::default(),
            created: now,
            expires: None,
        }
    }

    /// True when data can be sent along this entry.
    pub fn is_complete(&self) -> bool {
        matches!(self.kind, EntryType::Static | EntryType::Dynamic) && self.nbma.is_some()
    }
}

/// Prefix-keyed cache with longest-prefix-match lookups.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    entries: BTreeMap<Prefix, Entry>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces the entry for its prefix; returns the old one.
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        self.entries.insert(entry.prefix, entry)
    }

    /// The entry for exactly this prefix.
    pub fn get(&self, prefix: &Prefix) -> Option<&Entry> {
        self.entries.get(prefix)
    }

    /// Mutable entry for exactly this prefix.
    pub fn get_mut(&mut self, prefix: &Prefix) -> Option<&mut Entry> {
        self.entries.get_mut(prefix)
    }

    /// Removes the entry for exactly this prefix.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<Entry> {
        self.entries.remove(prefix)
    }

    /// Longest-prefix match over all entries (any type).
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&Entry> {
        (0..=32u8)
            .rev()
            .find_map(|len| self.entries.get(&Prefix::new(dst, len)))
    }

    /// Longest-prefix match that yields a usable NBMA; sets the `used` flag.
    pub fn lookup_used(&mut self, dst: Ipv4Addr) -> Option<&Entry> {
        let key = (0..=32u8)
            .rev()
            .map(|len| Prefix::new(dst, len))
            .find(|p| self.entries.get(p).is_some_and(Entry::is_complete))?;
        let e = self.entries.get_mut(&key)?;
        e.flags.used = true;
        Some(e)
    }

    /// Removes and returns every entry whose holding time has run out.
    pub fn expire(&mut self, now: Instant) -> Vec<Entry> {
        let dead: Vec<Prefix> = self
            .entries
            .values()
            .filter(|e| e.expires.is_some_and(|t| t <= now))
            .map(|e| e.prefix)
            .collect();
        dead.iter().filter_map(|p| self.entries.remove(p)).collect()
    }

    /// Earliest expiry.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.expires).min()
    }

    /// Entries in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry matching a predicate; returns them.
    pub fn remove_where(&mut self, mut f: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        let dead: Vec<Prefix> = self
            .entries
            .values()
            .filter(|e| f(e))
            .map(|e| e.prefix)
            .collect();
        dead.iter().filter_map(|p| self.entries.remove(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::t0;
    use std::time::Duration;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn dynamic(p: Prefix, via: &str, nbma: &str, now: Instant, hold: u64) -> Entry {
        Entry {
            prefix: p,
            via: ip(via),
            nbma: Some(ip(nbma)),
            claimed_nbma: None,
            kind: EntryType::Dynamic,
            flags: EntryFlags::default(),
            created: now,
            expires: Some(now + Duration::from_secs(hold)),
        }
    }

    #[test]
    fn prefix_clears_host_bits_and_contains() {
        let p = Prefix::new(ip("192.168.2.77"), 24);
        assert_eq!(p.to_string(), "192.168.2.0/24");
        assert!(p.contains(ip("192.168.2.1")));
        assert!(!p.contains(ip("192.168.3.1")));
        assert!(Prefix::new(ip("1.2.3.4"), 0).contains(ip("9.9.9.9")));
    }

    #[test]
    fn lookup_prefers_longest_prefix() {
        let now = t0();
        let mut c = Cache::new();
        c.insert(dynamic(
            Prefix::new(ip("192.168.2.0"), 24),
            "10.0.0.12",
            "172.17.0.12",
            now,
            300,
        ));
        c.insert(dynamic(
            Prefix::host(ip("192.168.2.9")),
            "10.0.0.13",
            "172.17.0.13",
            now,
            300,
        ));
        assert_eq!(c.lookup(ip("192.168.2.9")).unwrap().via, ip("10.0.0.13"));
        assert_eq!(c.lookup(ip("192.168.2.8")).unwrap().via, ip("10.0.0.12"));
        assert!(c.lookup(ip("192.168.3.1")).is_none());
        assert!(c.lookup_used(ip("192.168.2.8")).unwrap().flags.used);
    }

    #[test]
    fn expiry_removes_only_timed_out_dynamic_entries() {
        let now = t0();
        let mut c = Cache::new();
        c.insert(Entry::new_static(ip("10.0.0.1"), ip("172.17.0.1"), now));
        c.insert(dynamic(
            Prefix::host(ip("10.0.0.12")),
            "10.0.0.12",
            "172.17.0.12",
            now,
            300,
        ));
        assert_eq!(c.next_expiry(), Some(now + Duration::from_secs(300)));
        assert!(c.expire(now + Duration::from_secs(299)).is_empty());
        let gone = c.expire(now + Duration::from_secs(300));
        assert_eq!(gone.len(), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.next_expiry(), None);
    }
}

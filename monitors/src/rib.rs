//! Static routes with administrative distance and tracking, the per-prefix best-route decision (RIB), and
//! an in-memory longest-prefix-match table (FIB) for simulation.
//!
//! ```text
//! ip route 192.0.2.0 255.255.255.0 Tunnel0 track 1
//! ip route 192.0.2.0 255.255.255.0 Tunnel1 254
//! ```
//! Rules (each has a test):
//! - a static route is a candidate only if: its distance is below 255; its track object (if any) is Up (an
//!   unknown object counts as Down); its interface (if any) is up; a next hop without an interface resolves
//!   recursively through another selected route of a *different* prefix. `permanent` keeps the route a
//!   candidate when its interface is down or its next hop does not resolve (it cannot be combined with
//!   `track`, as in IOS syntax).
//! - an up interface with an address gives a connected route (distance 0), which beats every static route.
//! - per prefix the lowest distance wins; every candidate with that distance is kept (equal-cost paths, up
//!   to [`MAX_PATHS`]); on lookups the longest prefix wins.
//! - configuring the same prefix and target again replaces the route (its distance, track, name, ...).
//! - every change of the selected set is reported once as [`RibEvent::Installed`] (new or changed entry,
//!   replace semantics) or [`RibEvent::Withdrawn`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;

use crate::TrackId;

/// Most equal-cost paths kept per prefix.
pub const MAX_PATHS: usize = 16;

/// An IPv4 prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// A prefix; host bits must be clear (IOS: `%Inconsistent address and mask`).
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, RibError> {
        if len > 32 {
            return Err(RibError::BadMask);
        }
        let p = Ipv4Prefix { addr, len };
        if u32::from(addr) & !p.mask_bits() != 0 {
            return Err(RibError::InconsistentMask);
        }
        Ok(p)
    }

    /// From the IOS `ADDRESS MASK` form.
    pub fn from_mask(addr: Ipv4Addr, mask: Ipv4Addr) -> Result<Self, RibError> {
        let m = u32::from(mask);
        let len = m.leading_ones();
        if m.checked_shl(len).unwrap_or(0) != 0 {
            return Err(RibError::BadMask);
        }
        Self::new(addr, len as u8)
    }

    /// The network containing `addr` (host bits cleared).
    pub fn containing(addr: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        let mask = mask_of(len);
        Ipv4Prefix {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            len,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
    /// True for 0.0.0.0/0.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }
    fn mask_bits(&self) -> u32 {
        mask_of(self.len)
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask_bits() == u32::from(self.addr)
    }
}

fn mask_of(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Where a static route points (`ip route P M {IF | NEXTHOP | IF NEXTHOP}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteTarget {
    /// Directly connected via an interface (point-to-point: tunnels, SVTIs).
    Interface(String),
    /// A next hop resolved recursively.
    NextHop(Ipv4Addr),
    /// Fully specified: interface and next hop.
    InterfaceNextHop(String, Ipv4Addr),
}

impl RouteTarget {
    fn interface(&self) -> Option<&str> {
        match self {
            RouteTarget::Interface(i) | RouteTarget::InterfaceNextHop(i, _) => Some(i),
            RouteTarget::NextHop(_) => None,
        }
    }
    fn gateway(&self) -> Option<Ipv4Addr> {
        match self {
            RouteTarget::NextHop(g) | RouteTarget::InterfaceNextHop(_, g) => Some(*g),
            RouteTarget::Interface(_) => None,
        }
    }
}

/// One `ip route` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: Ipv4Prefix,
    pub target: RouteTarget,
    /// Administrative distance, 1..=255 (default 1); 255 is never installed.
    pub distance: u8,
    pub track: Option<TrackId>,
    pub name: Option<String>,
    pub permanent: bool,
}

impl StaticRoute {
    pub fn new(prefix: Ipv4Prefix, target: RouteTarget) -> Self {
        StaticRoute {
            prefix,
            target,
            distance: 1,
            track: None,
            name: None,
            permanent: false,
        }
    }
}

/// Configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    #[error("%Inconsistent address and mask")]
    InconsistentMask,
    #[error("bad mask")]
    BadMask,
    #[error("distance must be 1-255")]
    BadDistance,
    #[error("permanent and track cannot be combined")]
    PermanentWithTrack,
    #[error("no such route")]
    NoSuchRoute,
}

/// Where a packet goes: out of `interface`, to `gateway` (none: the destination is on the link).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    pub interface: String,
    pub gateway: Option<Ipv4Addr>,
}

/// Route origin (`show ip route` codes `C` and `S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteSource {
    Connected,
    Static,
}

/// One path of a selected entry: as configured, and as resolved for forwarding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path {
    pub gateway: Option<Ipv4Addr>,
    pub interface: Option<String>,
    /// The on-link next hop after recursion; `None` for a `permanent` route that does not resolve.
    pub forward: Option<NextHop>,
    pub name: Option<String>,
}

/// The selected routes of one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibEntry {
    pub prefix: Ipv4Prefix,
    pub source: RouteSource,
    pub distance: u8,
    pub paths: Vec<Path>,
}

impl RibEntry {
    /// Next hops usable for forwarding.
    pub fn next_hops(&self) -> impl Iterator<Item = &NextHop> {
        self.paths.iter().filter_map(|p| p.forward.as_ref())
    }
}

/// Changes of the selected set, for rtnetlink (`RTM_NEWROUTE` with replace, `RTM_DELROUTE`) or a [`Fib`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RibEvent {
    Installed(RibEntry),
    Withdrawn { prefix: Ipv4Prefix },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Interface {
    up: bool,
    address: Option<(Ipv4Addr, u8)>,
}

/// A static route with the reason it is or is not a candidate (for `show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticStatus {
    pub route: StaticRoute,
    pub installed: bool,
}

/// Plain data for `show ip route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibSnapshot {
    /// Selected entries sorted by prefix.
    pub entries: Vec<RibEntry>,
    /// Every configured static route, sorted by prefix and target.
    pub statics: Vec<StaticStatus>,
}

/// The routing information base.
#[derive(Debug, Default)]
pub struct Rib {
    statics: BTreeMap<(Ipv4Prefix, RouteTarget), StaticRoute>,
    interfaces: HashMap<String, Interface>,
    tracks: HashMap<TrackId, bool>,
    selected: BTreeMap<Ipv4Prefix, RibEntry>,
    events: VecDeque<RibEvent>,
}

impl Rib {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces (same prefix and target) a static route.
    pub fn add_static(&mut self, route: StaticRoute) -> Result<(), RibError> {
        if route.distance == 0 {
            return Err(RibError::BadDistance);
        }
        if route.permanent && route.track.is_some() {
            return Err(RibError::PermanentWithTrack);
        }
        self.statics
            .insert((route.prefix, route.target.clone()), route);
        self.recompute();
        Ok(())
    }

    /// `no ip route P M TARGET`.
    pub fn remove_static(
        &mut self,
        prefix: Ipv4Prefix,
        target: &RouteTarget,
    ) -> Result<StaticRoute, RibError> {
        let r = self
            .statics
            .remove(&(prefix, target.clone()))
            .ok_or(RibError::NoSuchRoute)?;
        self.recompute();
        Ok(r)
    }

    /// Interface state (line protocol) and primary address.
    pub fn set_interface(&mut self, name: &str, up: bool, address: Option<(Ipv4Addr, u8)>) {
        let new = Interface { up, address };
        if self.interfaces.get(name) == Some(&new) {
            return;
        }
        self.interfaces.insert(name.to_owned(), new);
        self.recompute();
    }

    /// The interface was deleted.
    pub fn remove_interface(&mut self, name: &str) {
        if self.interfaces.remove(name).is_some() {
            self.recompute();
        }
    }

    /// A track object's state (from [`crate::track::TrackEvent`]).
    pub fn set_track(&mut self, id: TrackId, up: bool) {
        if self.tracks.insert(id, up) == Some(up) {
            return;
        }
        if self.statics.values().any(|r| r.track == Some(id)) {
            self.recompute();
        }
    }

    pub fn poll_event(&mut self) -> Option<RibEvent> {
        self.events.pop_front()
    }

    /// The selected entry for exactly this prefix.
    pub fn best(&self, prefix: Ipv4Prefix) -> Option<&RibEntry> {
        self.selected.get(&prefix)
    }

    /// Longest-prefix match over the selected entries.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&RibEntry> {
        (0..=32u8)
            .rev()
            .find_map(|len| self.selected.get(&Ipv4Prefix::containing(dst, len)))
    }

    /// Number of route references per track object (`show track` "Tracked by").
    pub fn tracked_by(&self) -> BTreeMap<TrackId, usize> {
        let mut m = BTreeMap::new();
        for r in self.statics.values() {
            if let Some(t) = r.track {
                *m.entry(t).or_insert(0) += 1;
            }
        }
        m
    }

    pub fn snapshot(&self) -> RibSnapshot {
        let statics = self
            .statics
            .values()
            .map(|r| StaticStatus {
                installed: self.selected.get(&r.prefix).is_some_and(|e| {
                    e.source == RouteSource::Static
                        && e.distance == r.distance
                        && e.paths.iter().any(|p| {
                            p.gateway == r.target.gateway()
                                && p.interface.as_deref() == r.target.interface()
                        })
                }),
                route: r.clone(),
            })
            .collect();
        RibSnapshot {
            entries: self.selected.values().cloned().collect(),
            statics,
        }
    }

    fn interface_up(&self, name: &str) -> bool {
        self.interfaces.get(name).is_some_and(|i| i.up)
    }

    /// Non-recursive eligibility: distance, track, interface.
    fn locally_eligible(&self, r: &StaticRoute) -> bool {
        if r.distance == 255 {
            return false;
        }
        if let Some(t) = r.track
            && !self.tracks.get(&t).copied().unwrap_or(false)
        {
            return false;
        }
        match r.target.interface() {
            Some(i) => r.permanent || self.interface_up(i),
            None => true,
        }
    }

    fn recompute(&mut self) {
        let new = self.select();
        let old = std::mem::take(&mut self.selected);
        for p in old.keys() {
            if !new.contains_key(p) {
                self.events.push_back(RibEvent::Withdrawn { prefix: *p });
            }
        }
        for (p, e) in &new {
            if old.get(p) != Some(e) {
                self.events.push_back(RibEvent::Installed(e.clone()));
            }
        }
        self.selected = new;
    }

    fn select(&self) -> BTreeMap<Ipv4Prefix, RibEntry> {
        // Candidates: (prefix, source, distance, path); recursive ones are added as they resolve.
        type Cand = (RouteSource, u8, Path);
        let mut cands: BTreeMap<Ipv4Prefix, Vec<Cand>> = BTreeMap::new();
        let mut names: Vec<(&String, &Interface)> = self.interfaces.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, i) in names {
            if let (true, Some((a, len))) = (i.up, i.address) {
                let path = Path {
                    gateway: None,
                    interface: Some(name.clone()),
                    forward: Some(NextHop {
                        interface: name.clone(),
                        gateway: None,
                    }),
                    name: None,
                };
                cands
                    .entry(Ipv4Prefix::containing(a, len))
                    .or_default()
                    .push((RouteSource::Connected, 0, path));
            }
        }
        let mut recursive: Vec<&StaticRoute> = Vec::new();
        for r in self.statics.values().filter(|r| self.locally_eligible(r)) {
            match &r.target {
                RouteTarget::Interface(i) => {
                    let path = Path {
                        gateway: None,
                        interface: Some(i.clone()),
                        forward: self.interface_up(i).then(|| NextHop {
                            interface: i.clone(),
                            gateway: None,
                        }),
                        name: r.name.clone(),
                    };
                    cands.entry(r.prefix).or_default().push((
                        RouteSource::Static,
                        r.distance,
                        path,
                    ));
                }
                RouteTarget::InterfaceNextHop(i, g) => {
                    let path = Path {
                        gateway: Some(*g),
                        interface: Some(i.clone()),
                        forward: self.interface_up(i).then(|| NextHop {
                            interface: i.clone(),
                            gateway: Some(*g),
                        }),
                        name: r.name.clone(),
                    };
                    cands.entry(r.prefix).or_default().push((
                        RouteSource::Static,
                        r.distance,
                        path,
                    ));
                }
                RouteTarget::NextHop(_) => recursive.push(r),
            }
        }
        // Recursive next hops: resolve against the current selection until nothing new resolves, then once
        // more against the final table so every path uses the final best route.
        let mut pending = recursive;
        let mut table = best_of(&cands);
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for r in pending {
                match resolve(&table, r) {
                    Some(fwd) => {
                        cands.entry(r.prefix).or_default().push((
                            RouteSource::Static,
                            r.distance,
                            path_of(r, Some(fwd)),
                        ));
                        progressed = true;
                    }
                    None => still.push(r),
                }
            }
            pending = still;
            table = best_of(&cands);
            if !progressed || pending.is_empty() {
                break;
            }
        }
        for r in pending.into_iter().filter(|r| r.permanent) {
            cands.entry(r.prefix).or_default().push((
                RouteSource::Static,
                r.distance,
                path_of(r, None),
            ));
        }
        table = best_of(&cands);
        // Final pass: re-resolve recursive paths against the final table.
        let snapshot = table.clone();
        for entry in table.values_mut() {
            for p in entry.paths.iter_mut() {
                if let (None, Some(g)) = (&p.interface, p.gateway)
                    && let Some(f) = resolve_gateway(&snapshot, entry.prefix, g)
                {
                    p.forward = Some(f);
                }
            }
        }
        table
    }
}

fn path_of(r: &StaticRoute, forward: Option<NextHop>) -> Path {
    Path {
        gateway: r.target.gateway(),
        interface: None,
        forward,
        name: r.name.clone(),
    }
}

fn best_of(
    cands: &BTreeMap<Ipv4Prefix, Vec<(RouteSource, u8, Path)>>,
) -> BTreeMap<Ipv4Prefix, RibEntry> {
    let mut out = BTreeMap::new();
    for (prefix, list) in cands {
        let Some(best) = list.iter().map(|c| (c.1, c.0)).min() else {
            continue;
        };
        let mut paths: Vec<Path> = list
            .iter()
            .filter(|c| (c.1, c.0) == best)
            .map(|c| c.2.clone())
            .collect();
        paths.sort();
        paths.dedup();
        paths.truncate(MAX_PATHS);
        out.insert(
            *prefix,
            RibEntry {
                prefix: *prefix,
                source: best.1,
                distance: best.0,
                paths,
            },
        );
    }
    out
}

fn resolve(table: &BTreeMap<Ipv4Prefix, RibEntry>, r: &StaticRoute) -> Option<NextHop> {
    let g = r.target.gateway()?;
    resolve_gateway(table, r.prefix, g)
}

/// The on-link next hop for `gateway`, through the longest match whose prefix is not `own` (a route never
/// resolves through itself).
fn resolve_gateway(
    table: &BTreeMap<Ipv4Prefix, RibEntry>,
    own: Ipv4Prefix,
    gateway: Ipv4Addr,
) -> Option<NextHop> {
    let entry = (0..=32u8)
        .rev()
        .map(|len| Ipv4Prefix::containing(gateway, len))
        .filter(|p| *p != own)
        .find_map(|p| table.get(&p))?;
    let hop = entry.next_hops().next()?;
    Some(NextHop {
        interface: hop.interface.clone(),
        gateway: Some(hop.gateway.unwrap_or(gateway)),
    })
}

/// An in-memory longest-prefix-match forwarding table fed by [`RibEvent`]s (for simulation).
#[derive(Debug, Default, Clone)]
pub struct Fib {
    by_len: Vec<HashMap<u32, Vec<NextHop>>>,
    used: u64,
}

impl Fib {
    pub fn new() -> Self {
        Fib {
            by_len: vec![HashMap::new(); 33],
            used: 0,
        }
    }

    /// Applies one RIB change.
    pub fn apply(&mut self, ev: &RibEvent) {
        if self.by_len.len() != 33 {
            self.by_len = vec![HashMap::new(); 33];
        }
        match ev {
            RibEvent::Installed(e) => {
                let hops: Vec<NextHop> = e.next_hops().cloned().collect();
                let l = usize::from(e.prefix.prefix_len());
                if let Some(t) = self.by_len.get_mut(l) {
                    if hops.is_empty() {
                        t.remove(&u32::from(e.prefix.addr()));
                    } else {
                        t.insert(u32::from(e.prefix.addr()), hops);
                    }
                }
            }
            RibEvent::Withdrawn { prefix } => {
                if let Some(t) = self.by_len.get_mut(usize::from(prefix.prefix_len())) {
                    t.remove(&u32::from(prefix.addr()));
                }
            }
        }
        self.used = 0;
        for (l, t) in self.by_len.iter().enumerate() {
            if !t.is_empty() {
                self.used |= 1 << l;
            }
        }
    }

    /// Longest-prefix match: the next hops for `dst` (several when equal-cost).
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&[NextHop]> {
        let a = u32::from(dst);
        for l in (0..=32u8).rev() {
            if self.used & (1 << l) == 0 {
                continue;
            }
            let key = a & mask_of(l);
            if let Some(h) = self.by_len.get(usize::from(l)).and_then(|t| t.get(&key)) {
                return Some(h);
            }
        }
        None
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.by_len.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfx(s: &str) -> Ipv4Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Ipv4Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn via_if(p: &str, i: &str) -> StaticRoute {
        StaticRoute::new(pfx(p), RouteTarget::Interface(i.into()))
    }

    fn via(p: &str, g: &str) -> StaticRoute {
        StaticRoute::new(pfx(p), RouteTarget::NextHop(ip(g)))
    }

    fn events(r: &mut Rib) -> Vec<RibEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    fn hop(i: &str, g: Option<&str>) -> NextHop {
        NextHop {
            interface: i.into(),
            gateway: g.map(ip),
        }
    }

    fn hops(r: &Rib, p: &str) -> Vec<NextHop> {
        r.best(pfx(p))
            .map(|e| e.next_hops().cloned().collect())
            .unwrap_or_default()
    }

    /// The guide's pair: primary tracked into Tunnel0, floating backup (254) into Tunnel1.
    fn guide() -> Rib {
        let mut r = Rib::new();
        r.set_interface("Tunnel0", true, None);
        r.set_interface("Tunnel1", true, None);
        r.add_static(StaticRoute {
            track: Some(TrackId(1)),
            ..via_if("192.0.2.0/24", "Tunnel0")
        })
        .unwrap();
        r.add_static(StaticRoute {
            distance: 254,
            ..via_if("192.0.2.0/24", "Tunnel1")
        })
        .unwrap();
        r
    }

    #[test]
    fn prefix_rejects_host_bits_and_bad_masks() {
        // EX-4.11 of the guide: 192.0.2.168 255.255.255.0 has host bits set.
        assert_eq!(
            Ipv4Prefix::from_mask(ip("192.0.2.168"), ip("255.255.255.0")),
            Err(RibError::InconsistentMask)
        );
        assert_eq!(
            Ipv4Prefix::from_mask(ip("10.0.0.0"), ip("255.0.255.0")),
            Err(RibError::BadMask)
        );
        assert_eq!(Ipv4Prefix::new(ip("10.0.0.0"), 33), Err(RibError::BadMask));
        let p = Ipv4Prefix::from_mask(ip("192.0.2.0"), ip("255.255.255.0")).unwrap();
        assert_eq!(
            (p.to_string(), p.mask()),
            ("192.0.2.0/24".into(), ip("255.255.255.0"))
        );
        assert!(
            Ipv4Prefix::from_mask(ip("0.0.0.0"), ip("0.0.0.0"))
                .unwrap()
                .is_default()
        );
    }

    #[test]
    fn bad_distance_and_permanent_with_track_are_rejected() {
        let mut r = Rib::new();
        assert_eq!(
            r.add_static(StaticRoute {
                distance: 0,
                ..via("10.0.0.0/8", "1.1.1.1")
            }),
            Err(RibError::BadDistance)
        );
        let both = StaticRoute {
            permanent: true,
            track: Some(TrackId(1)),
            ..via("10.0.0.0/8", "1.1.1.1")
        };
        assert_eq!(r.add_static(both), Err(RibError::PermanentWithTrack));
    }

    #[test]
    fn tracked_primary_wins_while_track_is_up_and_backup_floats() {
        let mut r = guide();
        // Track 1 unknown yet: counts as Down, so the floating route is installed.
        assert_eq!(r.best(pfx("192.0.2.0/24")).unwrap().distance, 254);
        events(&mut r);
        r.set_track(TrackId(1), true);
        let e = r.best(pfx("192.0.2.0/24")).unwrap();
        assert_eq!(
            (e.distance, hops(&r, "192.0.2.0/24")),
            (1, vec![hop("Tunnel0", None)])
        );
        assert!(matches!(&events(&mut r)[..], [RibEvent::Installed(e)] if e.distance == 1));
        r.set_track(TrackId(1), false);
        assert_eq!(hops(&r, "192.0.2.0/24"), vec![hop("Tunnel1", None)]);
        assert!(matches!(&events(&mut r)[..], [RibEvent::Installed(e)] if e.distance == 254));
    }

    #[test]
    fn repeated_track_state_emits_nothing() {
        let mut r = guide();
        r.set_track(TrackId(1), true);
        events(&mut r);
        r.set_track(TrackId(1), true);
        r.set_track(TrackId(9), false); // not referenced
        assert!(events(&mut r).is_empty());
    }

    #[test]
    fn interface_down_withdraws_interface_route() {
        let mut r = Rib::new();
        r.set_interface("Tunnel0", true, None);
        r.add_static(via_if("10.0.0.0/8", "Tunnel0")).unwrap();
        events(&mut r);
        r.set_interface("Tunnel0", false, None);
        assert_eq!(
            events(&mut r),
            vec![RibEvent::Withdrawn {
                prefix: pfx("10.0.0.0/8")
            }]
        );
        assert!(r.best(pfx("10.0.0.0/8")).is_none());
        r.set_interface("Tunnel0", true, None);
        assert!(r.best(pfx("10.0.0.0/8")).is_some());
        r.remove_interface("Tunnel0");
        assert!(r.best(pfx("10.0.0.0/8")).is_none());
    }

    #[test]
    fn permanent_route_stays_when_interface_is_down() {
        let mut r = Rib::new();
        r.set_interface("Gi0/1", false, None);
        r.add_static(StaticRoute {
            permanent: true,
            ..via_if("10.0.0.0/8", "Gi0/1")
        })
        .unwrap();
        let e = r.best(pfx("10.0.0.0/8")).unwrap();
        assert_eq!(e.paths[0].interface.as_deref(), Some("Gi0/1"));
        assert_eq!(e.next_hops().count(), 0, "nothing to forward to while down");
        // Unresolvable permanent next hop is kept too.
        r.add_static(StaticRoute {
            permanent: true,
            ..via("172.16.0.0/12", "203.0.113.1")
        })
        .unwrap();
        assert!(r.best(pfx("172.16.0.0/12")).is_some());
    }

    #[test]
    fn lowest_distance_wins_per_prefix() {
        let mut r = Rib::new();
        r.set_interface("A", true, None);
        r.set_interface("B", true, None);
        r.add_static(StaticRoute {
            distance: 20,
            ..via_if("10.0.0.0/8", "A")
        })
        .unwrap();
        r.add_static(StaticRoute {
            distance: 10,
            ..via_if("10.0.0.0/8", "B")
        })
        .unwrap();
        assert_eq!(hops(&r, "10.0.0.0/8"), vec![hop("B", None)]);
    }

    #[test]
    fn equal_distance_routes_are_kept_as_equal_cost_paths() {
        let mut r = Rib::new();
        r.set_interface("A", true, None);
        r.set_interface("B", true, None);
        r.add_static(via_if("10.0.0.0/8", "B")).unwrap();
        r.add_static(via_if("10.0.0.0/8", "A")).unwrap();
        assert_eq!(hops(&r, "10.0.0.0/8"), vec![hop("A", None), hop("B", None)]);
        let mut f = Fib::new();
        events(&mut r).iter().for_each(|e| f.apply(e));
        assert_eq!(f.lookup(ip("10.9.9.9")).unwrap().len(), 2);
    }

    #[test]
    fn equal_cost_paths_are_capped() {
        let mut r = Rib::new();
        for i in 0..20 {
            let name = format!("T{i:02}");
            r.set_interface(&name, true, None);
            r.add_static(via_if("10.0.0.0/8", &name)).unwrap();
        }
        assert_eq!(r.best(pfx("10.0.0.0/8")).unwrap().paths.len(), MAX_PATHS);
    }

    #[test]
    fn distance_255_is_never_installed() {
        let mut r = Rib::new();
        r.set_interface("A", true, None);
        r.add_static(StaticRoute {
            distance: 255,
            ..via_if("10.0.0.0/8", "A")
        })
        .unwrap();
        assert!(r.best(pfx("10.0.0.0/8")).is_none());
        assert!(events(&mut r).is_empty());
    }

    #[test]
    fn connected_route_beats_static() {
        let mut r = Rib::new();
        r.set_interface("Gi0/0", true, Some((ip("198.51.100.2"), 24)));
        r.set_interface("Tunnel0", true, None);
        r.add_static(via_if("198.51.100.0/24", "Tunnel0")).unwrap();
        let e = r.best(pfx("198.51.100.0/24")).unwrap();
        assert_eq!((e.source, e.distance), (RouteSource::Connected, 0));
        assert_eq!(hops(&r, "198.51.100.0/24"), vec![hop("Gi0/0", None)]);
    }

    #[test]
    fn next_hop_route_resolves_recursively_and_follows_the_resolving_route() {
        let mut r = Rib::new();
        r.set_interface("Gi0/0", true, Some((ip("198.51.100.2"), 24)));
        r.add_static(via("0.0.0.0/0", "198.51.100.1")).unwrap();
        r.add_static(via("10.0.0.0/8", "172.16.0.1")).unwrap(); // resolves via the default route
        r.add_static(via("172.16.0.0/16", "198.51.100.9")).unwrap(); // more specific for 172.16.0.1
        assert_eq!(
            hops(&r, "0.0.0.0/0"),
            vec![hop("Gi0/0", Some("198.51.100.1"))]
        );
        assert_eq!(
            hops(&r, "10.0.0.0/8"),
            vec![hop("Gi0/0", Some("198.51.100.9"))]
        );
        // The connected interface goes down: everything depending on it goes.
        r.set_interface("Gi0/0", false, Some((ip("198.51.100.2"), 24)));
        assert!(r.snapshot().entries.is_empty());
    }

    #[test]
    fn next_hop_never_resolves_through_its_own_prefix() {
        let mut r = Rib::new();
        r.add_static(via("10.0.0.0/8", "10.1.1.1")).unwrap();
        assert!(r.best(pfx("10.0.0.0/8")).is_none());
        assert!(events(&mut r).is_empty());
    }

    #[test]
    fn unresolvable_next_hop_is_not_installed() {
        let mut r = Rib::new();
        r.set_interface("Gi0/0", true, Some((ip("198.51.100.2"), 24)));
        r.add_static(via("10.0.0.0/8", "203.0.113.1")).unwrap();
        assert!(r.best(pfx("10.0.0.0/8")).is_none());
    }

    #[test]
    fn fully_specified_route_needs_only_its_interface() {
        let mut r = Rib::new();
        r.set_interface("Gi0/1", true, None);
        r.add_static(StaticRoute::new(
            pfx("10.0.0.0/8"),
            RouteTarget::InterfaceNextHop("Gi0/1".into(), ip("203.0.113.1")),
        ))
        .unwrap();
        assert_eq!(
            hops(&r, "10.0.0.0/8"),
            vec![hop("Gi0/1", Some("203.0.113.1"))]
        );
    }

    #[test]
    fn same_prefix_and_target_replaces_the_route() {
        let mut r = Rib::new();
        r.set_interface("A", true, None);
        r.add_static(via_if("10.0.0.0/8", "A")).unwrap();
        r.add_static(StaticRoute {
            distance: 50,
            name: Some("backup".into()),
            ..via_if("10.0.0.0/8", "A")
        })
        .unwrap();
        let s = r.snapshot();
        assert_eq!(s.statics.len(), 1);
        assert_eq!(s.entries[0].distance, 50);
        assert_eq!(s.entries[0].paths[0].name.as_deref(), Some("backup"));
        r.remove_static(pfx("10.0.0.0/8"), &RouteTarget::Interface("A".into()))
            .unwrap();
        assert!(r.best(pfx("10.0.0.0/8")).is_none());
        assert_eq!(
            r.remove_static(pfx("10.0.0.0/8"), &RouteTarget::Interface("A".into())),
            Err(RibError::NoSuchRoute)
        );
    }

    #[test]
    fn lookup_uses_longest_prefix() {
        let mut r = Rib::new();
        r.set_interface("A", true, None);
        r.set_interface("B", true, None);
        r.set_interface("C", true, None);
        r.add_static(via_if("0.0.0.0/0", "A")).unwrap();
        r.add_static(via_if("10.0.0.0/8", "B")).unwrap();
        r.add_static(via_if("10.1.0.0/16", "C")).unwrap();
        let mut f = Fib::new();
        events(&mut r).iter().for_each(|e| f.apply(e));
        for (dst, want) in [("10.1.2.3", "C"), ("10.2.0.1", "B"), ("8.8.8.8", "A")] {
            assert_eq!(
                r.lookup(ip(dst))
                    .unwrap()
                    .next_hops()
                    .next()
                    .unwrap()
                    .interface,
                want
            );
            assert_eq!(f.lookup(ip(dst)).unwrap()[0].interface, want);
        }
        r.remove_static(pfx("0.0.0.0/0"), &RouteTarget::Interface("A".into()))
            .unwrap();
        events(&mut r).iter().for_each(|e| f.apply(e));
        assert!(f.lookup(ip("8.8.8.8")).is_none());
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn tracked_by_counts_routes_per_object_and_snapshot_flags_installed() {
        let mut r = guide();
        r.set_track(TrackId(1), true);
        assert_eq!(
            r.tracked_by().into_iter().collect::<Vec<_>>(),
            vec![(TrackId(1), 1)]
        );
        let s = r.snapshot();
        let inst: Vec<(u8, bool)> = s
            .statics
            .iter()
            .map(|x| (x.route.distance, x.installed))
            .collect();
        assert_eq!(inst, vec![(1, true), (254, false)]);
    }

    #[test]
    fn fib_follows_failover_sequence() {
        // Primary up -> tunnel 0; track down -> tunnel 1; track up again -> tunnel 0.
        let mut r = guide();
        let mut f = Fib::new();
        let dst = ip("192.0.2.11");
        let mut seen = Vec::new();
        for up in [true, false, true] {
            r.set_track(TrackId(1), up);
            events(&mut r).iter().for_each(|e| f.apply(e));
            seen.push(f.lookup(dst).unwrap()[0].interface.clone());
        }
        assert_eq!(seen, ["Tunnel0", "Tunnel1", "Tunnel0"]);
    }
}

//! Failover wiring: IP SLA probes -> track objects -> static routes, as one piece the daemon drives.
//!
//! [`Failover`] owns the three `monitors` cores, built from the configuration, and moves facts between them
//! (SLA results to the tracker, track states to the RIB). It does no I/O: the daemon sends its probes through
//! ICMP sockets and applies its route changes to the kernel (or to a [`monitors::rib::Fib`] in simulation).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Instant;

use monitors::rib::{Ipv4Prefix, Rib, RibEvent, RouteTarget, StaticRoute};
use monitors::sla::{Life, Probe, Schedule, SlaEngine, SlaOperation, SlaSource, StartTime};
use monitors::track::{TrackKind, TrackObject, Tracker};
use monitors::{SlaId, TrackId};

pub struct Failover {
    pub sla: SlaEngine,
    pub tracker: Tracker,
    pub rib: Rib,
    route_changes: VecDeque<RibEvent>,
    /// Last line-protocol state reported per interface.
    link_up: std::collections::HashMap<String, bool>,
}

/// `ip sla schedule N start-time {now | pending | after hh:mm:ss | hh:mm[:ss]}`. A wall-clock start
/// (`hh:mm`) is not converted yet and stays pending, as an unscheduled operation would.
fn start_time(words: Option<&str>) -> StartTime {
    let Some(w) = words else {
        return StartTime::Pending;
    };
    let mut it = w.split_whitespace();
    match it.next() {
        Some("now") => StartTime::Now,
        Some("after") => {
            let secs = it.next().and_then(|t| {
                let f: Vec<u64> = t
                    .split(':')
                    .map(|p| p.parse().ok())
                    .collect::<Option<_>>()?;
                match f.as_slice() {
                    [h, m, s] => Some(h * 3600 + m * 60 + s),
                    [m, s] => Some(m * 60 + s),
                    _ => None,
                }
            });
            secs.map_or(StartTime::Pending, |s| {
                StartTime::After(std::time::Duration::from_secs(s))
            })
        }
        _ => StartTime::Pending,
    }
}

impl Failover {
    /// Build the cores from the configuration. Problems that the configuration validator lets through (a
    /// route the RIB refuses) are returned as messages for the log.
    pub fn from_config(now: Instant, cfg: &config::Config, nonce: u32) -> (Failover, Vec<String>) {
        let mut problems = Vec::new();
        let mut sla = SlaEngine::new(nonce, 0x4c00);
        for s in &cfg.ip_slas {
            let Some(config::SlaOperation::IcmpEcho {
                destination,
                source_interface,
                source_ip,
            }) = &s.operation
            else {
                continue;
            };
            let mut op = SlaOperation::icmp_echo(SlaId(s.id), *destination);
            op.source = match (source_interface, source_ip) {
                (Some(ifname), _) => SlaSource::Interface(ifname.clone()),
                (None, Some(ip)) => SlaSource::Ip(*ip),
                (None, None) => SlaSource::Any,
            };
            if let Some(t) = s.threshold {
                op.threshold = t;
            }
            if let Some(t) = s.timeout {
                op.timeout = t;
            }
            if let Some(f) = s.frequency {
                op.frequency = f;
            }
            if let Some(n) = s.request_data_size {
                op.data_size = n;
            }
            if let Some(t) = s.tos {
                op.tos = t;
            }
            op.schedule = match &s.schedule {
                Some(sch) => Schedule {
                    start: start_time(sch.start_time.as_deref()),
                    life: match sch.life {
                        None => Life::Forever,
                        Some(d) => Life::For(d),
                    },
                },
                None => Schedule::default(),
            };
            if let Err(e) = sla.add(now, op) {
                problems.push(format!("ip sla {}: {e}", s.id));
            }
        }
        let mut tracker = Tracker::new();
        for t in &cfg.tracks {
            let kind = match &t.kind {
                config::TrackKind::IpSlaReachability(n) => TrackKind::SlaReachability(SlaId(*n)),
                config::TrackKind::IpSlaState(n) => TrackKind::SlaState(SlaId(*n)),
                config::TrackKind::InterfaceLineProtocol(i)
                | config::TrackKind::InterfaceIpRouting(i) => {
                    TrackKind::InterfaceLineProtocol(i.clone())
                }
            };
            let mut obj = TrackObject::new(TrackId(t.id), kind);
            obj.delay_up = t.delay_up;
            obj.delay_down = t.delay_down;
            if let Err(e) = tracker.add(now, obj) {
                problems.push(format!("track {}: {e}", t.id));
            }
        }
        let mut rib = Rib::new();
        for i in &cfg.interfaces {
            let address = match &i.ip {
                config::IpAddressing::Static { primary, .. } => {
                    Some((primary.addr, primary.prefix_len))
                }
                _ => None,
            };
            rib.set_interface(&i.name, !i.shutdown, address);
        }
        for r in cfg.ip_routes.iter().filter(|r| r.vrf.is_none()) {
            let prefix = match Ipv4Prefix::new(r.prefix.addr, r.prefix.prefix_len) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!(
                        "ip route {}/{}: {e}",
                        r.prefix.addr, r.prefix.prefix_len
                    ));
                    continue;
                }
            };
            let target = match (&r.interface, r.next_hop) {
                (Some(i), Some(g)) => RouteTarget::InterfaceNextHop(i.clone(), g),
                (Some(i), None) => RouteTarget::Interface(i.clone()),
                (None, Some(g)) => RouteTarget::NextHop(g),
                (None, None) => continue,
            };
            let mut route = StaticRoute::new(prefix, target);
            route.distance = r.distance.unwrap_or(1);
            route.track = r.track.map(TrackId);
            route.name = r.name.clone();
            route.permanent = r.permanent;
            if let Err(e) = rib.add_static(route) {
                problems.push(format!(
                    "ip route {}/{}: {e}",
                    r.prefix.addr, r.prefix.prefix_len
                ));
            }
        }
        // Tracked routes start withdrawn until their object is known up (IOS starts tracks down).
        for id in rib.tracked_by().keys().copied().collect::<Vec<_>>() {
            rib.set_track(id, tracker.is_up(id).unwrap_or(false));
        }
        let mut f = Failover {
            sla,
            tracker,
            rib,
            route_changes: VecDeque::new(),
            link_up: std::collections::HashMap::new(),
        };
        f.pump(now);
        (f, problems)
    }

    /// Time passed: run the cores' timers and move their facts along.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sla.handle_timeout(now);
        self.tracker.handle_timeout(now);
        self.pump(now);
    }

    /// An ICMP message arrived on a probe socket.
    pub fn handle_icmp(&mut self, now: Instant, from: Ipv4Addr, icmp: &[u8]) {
        if let Ok(echo) = monitors::icmp::EchoRepr::parse_bytes(icmp) {
            self.sla.handle_reply(now, from, &echo);
            self.pump(now);
        }
    }

    /// An interface's line protocol changed (only changes are passed on, so repeated netlink
    /// notifications of the same state cost nothing).
    pub fn handle_interface(
        &mut self,
        now: Instant,
        name: &str,
        up: bool,
        addr: Option<(Ipv4Addr, u8)>,
    ) {
        if self.link_up.get(name) == Some(&up) {
            return;
        }
        self.link_up.insert(name.to_string(), up);
        crate::ios!(
            LINEPROTO,
            Notice,
            UPDOWN,
            "Line protocol on Interface {name}, changed state to {}",
            if up { "up" } else { "down" }
        );
        self.tracker.handle_interface(now, name, up);
        self.rib.set_interface(name, up, addr);
        self.pump(now);
    }

    /// A DHCP lease's router: IOS installs it as a static default route with distance 254, so any
    /// configured default route wins.
    pub fn set_dhcp_default(&mut self, now: Instant, interface: &str, router: Ipv4Addr) {
        let Ok(default) = Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 0) else {
            return;
        };
        let mut route = StaticRoute::new(
            default,
            RouteTarget::InterfaceNextHop(interface.to_string(), router),
        );
        route.distance = 254;
        route.name = Some("DHCP".into());
        let _ = self.rib.add_static(route);
        self.pump(now);
    }

    pub fn poll_probe(&mut self) -> Option<Probe> {
        self.sla.poll_probe()
    }

    pub fn poll_route_change(&mut self) -> Option<RibEvent> {
        self.route_changes.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        match (self.sla.poll_timeout(), self.tracker.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.sla.poll_event() {
            self.tracker.handle_sla_event(now, &ev);
        }
        while let Some(ev) = self.tracker.poll_event() {
            crate::ios!(
                TRACK,
                Informational,
                STATE,
                "{} {} -> {}",
                ev.id,
                if ev.up { "Down" } else { "Up" },
                if ev.up { "Up" } else { "Down" }
            );
            self.rib.set_track(ev.id, ev.up);
        }
        while let Some(ev) = self.rib.poll_event() {
            self.route_changes.push_back(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_start_time_words_map_to_the_schedule() {
        assert_eq!(start_time(Some("now")), StartTime::Now);
        assert_eq!(start_time(Some("pending")), StartTime::Pending);
        assert_eq!(start_time(None), StartTime::Pending);
        assert_eq!(
            start_time(Some("after 00:01:30")),
            StartTime::After(std::time::Duration::from_secs(90))
        );
        assert_eq!(start_time(Some("after garbage")), StartTime::Pending);
    }
}

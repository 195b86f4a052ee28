//! `show` renderers in IOS format: pure functions over snapshots.
//!
//! The seeds contain no sample of these four commands (only `show ip route` with connected and one static
//! route, 002 L1936-1951); the layouts below follow IOS 15 / IOS XE 16 output as remembered, and say so.
//! Wall-clock strings (`Latest operation start time`) come from the caller through [`WallClock`]; elapsed
//! times are computed from the `now` passed in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::TrackId;
use crate::rib::{Ipv4Prefix, Path, RibEntry, RibSnapshot, RouteSource};
use crate::sla::{Life, OpStatus, SlaOpSnapshot, SlaSnapshot};
use crate::track::{TrackKind, TrackSnapshot};

/// Turns an `Instant` into the router's wall-clock text (e.g. `10:20:31 UTC Mon Nov 23 2026`).
pub trait WallClock {
    fn format(&self, at: Instant) -> String;
}

impl<F: Fn(Instant) -> String> WallClock for F {
    fn format(&self, at: Instant) -> String {
        self(at)
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// IOS elapsed-time style: `00:01:23` below a day, then `1d02h`, then `2w3d`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if days == 0 {
        format!("{h:02}:{m:02}:{sec:02}")
    } else if days < 7 {
        format!("{days}d{h:02}h")
    } else {
        format!("{}w{}d", days / 7, days % 7)
    }
}

/// `show ip sla statistics`.
///
/// ```text
/// IPSLAs Latest Operation Statistics
///
/// IPSLA operation id: 1
///         Latest RTT: 1 milliseconds
/// Latest operation start time: 10:20:31 UTC Mon Nov 23 2026
/// Latest operation return code: OK
/// Number of successes: 5
/// Number of failures: 0
/// Operation time to live: Forever
/// ```
pub fn sla_statistics(snap: &SlaSnapshot, now: Instant, clock: &dyn WallClock) -> String {
    let mut out = String::from("IPSLAs Latest Operation Statistics\n\n");
    for o in &snap.ops {
        let s = &o.stats;
        let _ = writeln!(out, "IPSLA operation id: {}", o.op.id);
        let rtt = match (s.latest_rtt, s.latest_code) {
            (Some(r), _) => format!("{} milliseconds", millis(r)),
            (None, Some(_)) => "NoConnection/Busy/Timeout".to_owned(),
            (None, None) => "Unknown".to_owned(),
        };
        let _ = writeln!(out, "        Latest RTT: {rtt}");
        let start = s
            .latest_start
            .map_or_else(|| "Unknown".to_owned(), |t| clock.format(t));
        let _ = writeln!(out, "Latest operation start time: {start}");
        let code = s.latest_code.map_or("Unknown", |c| c.as_ios());
        let _ = writeln!(out, "Latest operation return code: {code}");
        let _ = writeln!(out, "Number of successes: {}", s.successes);
        let _ = writeln!(out, "Number of failures: {}", s.failures);
        let _ = writeln!(out, "Operation time to live: {}", time_to_live(o, now));
        out.push('\n');
    }
    out
}

fn time_to_live(o: &SlaOpSnapshot, now: Instant) -> String {
    match (o.status, o.op.schedule.life, o.ends_at) {
        (OpStatus::Inactive, _, _) => "0".to_owned(),
        (_, Life::Forever, _) => "Forever".to_owned(),
        (_, Life::For(_), Some(end)) => {
            format!("{} sec", end.saturating_duration_since(now).as_secs())
        }
        (_, Life::For(d), None) => format!("{} sec", d.as_secs()),
    }
}

fn ago(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s} seconds ago")
    } else if s < 3600 {
        format!("{} minutes, {} seconds ago", s / 60, s % 60)
    } else {
        format!("{} hours, {} minutes ago", s / 3600, (s / 60) % 60)
    }
}

/// `show ip sla summary` (IOS XE 16 layout).
///
/// ```text
/// IPSLAs Latest Operation Summary
/// Codes: * active, ^ inactive, ~ pending
/// All Stats are in milliseconds. Stats with u are in microseconds
///
/// ID           Type        Destination       Stats       Return      Last
///                                                        Code        Run
/// -----------------------------------------------------------------------
/// *1           icmp-echo   192.0.2.11        RTT=1       OK          3 seconds ago
/// ```
pub fn sla_summary(snap: &SlaSnapshot, now: Instant) -> String {
    let mut out = String::from(
        "IPSLAs Latest Operation Summary\n\
         Codes: * active, ^ inactive, ~ pending\n\
         All Stats are in milliseconds. Stats with u are in microseconds\n\n\
         ID           Type        Destination       Stats       Return      Last\n\
         \x20                                                      Code        Run\n\
         -----------------------------------------------------------------------\n",
    );
    for o in &snap.ops {
        let mark = match o.status {
            OpStatus::Active => '*',
            OpStatus::Inactive => '^',
            OpStatus::Pending => '~',
        };
        let id = format!("{mark}{}", o.op.id);
        let stats = o
            .stats
            .latest_rtt
            .map_or_else(|| "-".to_owned(), |r| format!("RTT={}", millis(r)));
        let code = o.stats.latest_code.map_or("-", |c| c.as_ios());
        let last = o.stats.latest_start.map_or_else(
            || "never".to_owned(),
            |t| ago(now.saturating_duration_since(t)),
        );
        let line = format!(
            "{id:<13}{:<12}{:<18}{stats:<12}{code:<12}{last}",
            "icmp-echo",
            o.op.dest.to_string()
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn secs_word(d: Duration) -> String {
    format!("{} secs", d.as_secs())
}

/// `show track` (IOS 15 layout).
///
/// ```text
/// Track 1
///   IP SLA 1 reachability
///   Reachability is Up
///     1 change, last change 00:00:42
///   Delay up 10 secs, down 5 secs
///   Latest operation return code: OK
///   Latest RTT (millisecs) 1
///   Tracked by:
///     Static IP Routing 0
/// ```
/// `tracked_by` is [`crate::rib::Rib::tracked_by`].
pub fn track(
    tracks: &[TrackSnapshot],
    tracked_by: &BTreeMap<TrackId, usize>,
    now: Instant,
) -> String {
    let mut out = String::new();
    for t in tracks {
        let o = &t.object;
        let _ = writeln!(out, "Track {}", o.id);
        let label = match &o.kind {
            TrackKind::SlaReachability(s) => {
                let _ = writeln!(out, "  IP SLA {s} reachability");
                "Reachability"
            }
            TrackKind::SlaState(s) => {
                let _ = writeln!(out, "  IP SLA {s} state");
                "State"
            }
            TrackKind::InterfaceLineProtocol(i) => {
                let _ = writeln!(out, "  Interface {i} line-protocol");
                "Line protocol"
            }
        };
        let updown = |b: bool| if b { "Up" } else { "Down" };
        let _ = write!(out, "  {label} is {}", updown(t.up));
        if let Some((to, at)) = t.pending {
            let left = at.saturating_duration_since(now);
            // Round up: "1 secs remaining" until the very end.
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let _ = write!(out, ", delayed {} ({secs} secs remaining)", updown(to));
        }
        out.push('\n');
        let plural = if t.changes == 1 { "change" } else { "changes" };
        let last = t.last_change.map_or_else(
            || "never".to_owned(),
            |c| elapsed(now.saturating_duration_since(c)),
        );
        let _ = writeln!(out, "    {} {plural}, last change {last}", t.changes);
        match (o.delay_up, o.delay_down) {
            (Some(u), Some(d)) => {
                let _ = writeln!(out, "  Delay up {}, down {}", secs_word(u), secs_word(d));
            }
            (Some(u), None) => {
                let _ = writeln!(out, "  Delay up {}", secs_word(u));
            }
            (None, Some(d)) => {
                let _ = writeln!(out, "  Delay down {}", secs_word(d));
            }
            (None, None) => {}
        }
        if matches!(
            o.kind,
            TrackKind::SlaReachability(_) | TrackKind::SlaState(_)
        ) {
            let code = t.latest_code.map_or("Unknown", |c| c.as_ios());
            let _ = writeln!(out, "  Latest operation return code: {code}");
            if let Some(r) = t.latest_rtt {
                let _ = writeln!(out, "  Latest RTT (millisecs) {}", millis(r));
            }
        }
        if tracked_by.get(&o.id).copied().unwrap_or(0) > 0 {
            out.push_str("  Tracked by:\n    Static IP Routing 0\n");
        }
    }
    out
}

const ROUTE_CODES: &str = "\
Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP
       D - EIGRP, EX - EIGRP external, O - OSPF, IA - OSPF inter area
       N1 - OSPF NSSA external type 1, N2 - OSPF NSSA external type 2
       E1 - OSPF external type 1, E2 - OSPF external type 2
       i - IS-IS, su - IS-IS summary, L1 - IS-IS level-1, L2 - IS-IS level-2
       ia - IS-IS inter area, * - candidate default, U - per-user static route
       o - ODR, P - periodic downloaded static route, H - NHRP, l - LISP
       a - application route
       + - replicated route, % - next hop override, p - overrides from PfR
";

/// The classful network an address belongs to (A /8, B /16, C /24; D/E: the address itself).
fn classful(p: &Ipv4Prefix) -> Ipv4Prefix {
    let first = p.addr().octets()[0];
    let len = match first {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        _ => 32,
    };
    Ipv4Prefix::containing(p.addr(), len)
}

fn path_text(p: &Path, src: RouteSource) -> String {
    match (p.gateway, &p.interface) {
        (None, Some(i)) => format!("is directly connected, {i}"),
        (Some(g), Some(i)) => format!("via {g}, {i}"),
        (Some(g), None) => format!("via {g}"),
        (None, None) => match src {
            RouteSource::Connected | RouteSource::Static => "is directly connected".to_owned(),
        },
    }
}

/// `show ip route static` (IOS 15 / XE layout: classful grouping, `[distance/metric]`, equal-cost paths on
/// continuation lines).
///
/// ```text
/// Gateway of last resort is 198.51.100.1 to network 0.0.0.0
///
/// S*    0.0.0.0/0 [1/0] via 198.51.100.1
///       10.0.0.0/8 is variably subnetted, 2 subnets, 2 masks
/// S        10.1.0.0/16 [1/0] via 198.51.100.9
/// S        10.2.2.0/24 is directly connected, Tunnel0
/// S     192.0.2.0/24 is directly connected, Tunnel0
/// ```
pub fn ip_route_static(rib: &RibSnapshot) -> String {
    let mut out = String::from(ROUTE_CODES);
    out.push('\n');
    let statics: Vec<&RibEntry> = rib
        .entries
        .iter()
        .filter(|e| e.source == RouteSource::Static)
        .collect();
    // The gateway of last resort comes from the whole table.
    match rib.entries.iter().find(|e| e.prefix.is_default()) {
        Some(e) => {
            let gw = e
                .paths
                .first()
                .and_then(|p| p.gateway)
                .map_or_else(|| "0.0.0.0".to_owned(), |g| g.to_string());
            let _ = writeln!(out, "Gateway of last resort is {gw} to network 0.0.0.0");
        }
        None => out.push_str("Gateway of last resort is not set\n"),
    }
    out.push('\n');
    // Group by classful network; supernets and exact classful routes stand alone.
    let mut groups: BTreeMap<Ipv4Prefix, Vec<&RibEntry>> = BTreeMap::new();
    for e in &statics {
        let major = classful(&e.prefix);
        if e.prefix.prefix_len() <= major.prefix_len() {
            groups.entry(e.prefix).or_default().push(e);
        } else {
            groups.entry(major).or_default().push(e);
        }
    }
    for (major, entries) in groups {
        let is_subnets = entries
            .iter()
            .all(|e| e.prefix.prefix_len() > major.prefix_len());
        if !is_subnets {
            for e in entries {
                let code = if e.prefix.is_default() { "S*" } else { "S" };
                emit_entry(&mut out, &format!("{code:<6}"), &e.prefix.to_string(), e);
            }
            continue;
        }
        let mut masks: Vec<u8> = entries.iter().map(|e| e.prefix.prefix_len()).collect();
        masks.sort_unstable();
        masks.dedup();
        let n = entries.len();
        let sub = if n == 1 { "subnet" } else { "subnets" };
        if let [only] = masks[..] {
            let _ = writeln!(out, "      {}/{only} is subnetted, {n} {sub}", major.addr());
        } else {
            let _ = writeln!(
                out,
                "      {major} is variably subnetted, {n} {sub}, {} masks",
                masks.len()
            );
        }
        for e in entries {
            let dest = if masks.len() == 1 {
                e.prefix.addr().to_string()
            } else {
                e.prefix.to_string()
            };
            emit_entry(&mut out, "S        ", &dest, e);
        }
    }
    out
}

fn emit_entry(out: &mut String, lead: &str, dest: &str, e: &RibEntry) {
    let head = format!("{lead}{dest} ");
    for (i, p) in e.paths.iter().enumerate() {
        let text = path_text(p, e.source);
        // IOS hides [distance/metric] on interface-only routes ("is directly connected"), whatever the
        // distance (from memory; the seed only shows distance 1).
        let body = if p.gateway.is_none() {
            text
        } else {
            format!("[{}/0] {text}", e.distance)
        };
        if i == 0 {
            let _ = writeln!(out, "{head}{body}");
        } else {
            let _ = writeln!(out, "{:width$}{body}", "", width = head.len());
        }
    }
}

/// `show vpn-sip sip dhcp` (seed 002 L3440-3446). Addresses come from option 120 encoding 1, names from
/// encoding 0 with a `dns:` prefix; with several values the extra ones go on continuation lines aligned
/// with the first value (the seed shows only one name, so that part is our choice).
///
/// ```text
/// SIP DHCP Info
///
/// SIP-DHCP interface: GigabitEthernet8
///
/// SIP server address:
/// Domain name:          dns:example.com
/// ```
pub fn vpn_sip_sip_dhcp(interface: &str, sip: Option<&crate::dhcp::SipServers>) -> String {
    use crate::dhcp::SipServers;
    let mut out = format!("SIP DHCP Info\n\nSIP-DHCP interface: {interface}\n\n");
    let (addrs, names): (Vec<String>, Vec<String>) = match sip {
        Some(SipServers::Addrs(a)) => (a.iter().map(ToString::to_string).collect(), Vec::new()),
        Some(SipServers::Domains(d)) => {
            (Vec::new(), d.iter().map(|n| format!("dns:{n}")).collect())
        }
        None => (Vec::new(), Vec::new()),
    };
    for (label, values) in [("SIP server address:", addrs), ("Domain name:", names)] {
        if values.is_empty() {
            out.push_str(label);
            out.push('\n');
        }
        for (i, v) in values.iter().enumerate() {
            let l = if i == 0 { label } else { "" };
            let _ = writeln!(out, "{l:<22}{v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::{Rib, RouteTarget, StaticRoute};
    use crate::sla::{Schedule, SlaEngine, SlaOperation, StartTime};
    use crate::track::{TrackObject, Tracker};
    use crate::{SlaId, icmp::EchoRepr};
    use std::net::Ipv4Addr;

    fn clock(t0: Instant) -> impl Fn(Instant) -> String {
        move |t: Instant| format!("T+{}ms", t.duration_since(t0).as_millis())
    }

    fn pfx(a: &str, l: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(a.parse().unwrap(), l).unwrap()
    }

    /// Two operations: 1 answers in 12 ms, 2 times out; 3 is pending.
    fn sla_fixture(t0: Instant) -> SlaEngine {
        let mut e = SlaEngine::new(7, 100);
        let op = |id: u32, dest: [u8; 4]| SlaOperation {
            threshold: Duration::from_millis(500),
            timeout: Duration::from_millis(500),
            frequency: Duration::from_secs(2),
            schedule: Schedule::forever_now(),
            ..SlaOperation::icmp_echo(SlaId(id), Ipv4Addr::from(dest))
        };
        e.add(t0, op(1, [192, 0, 2, 11])).unwrap();
        e.add(
            t0,
            SlaOperation {
                schedule: Schedule {
                    life: Life::For(Duration::from_secs(3600)),
                    ..Schedule::forever_now()
                },
                ..op(2, [198, 51, 100, 7])
            },
        )
        .unwrap();
        e.add(
            t0,
            SlaOperation {
                schedule: Schedule {
                    start: StartTime::Pending,
                    life: Life::Forever,
                },
                ..op(3, [203, 0, 113, 5])
            },
        )
        .unwrap();
        e.handle_timeout(t0);
        while let Some(p) = e.poll_probe() {
            if p.op_id == SlaId(1) {
                let req = EchoRepr::parse_bytes(&p.payload).unwrap();
                let rep = req.reply().to_vec();
                e.handle_reply(
                    t0 + Duration::from_millis(12),
                    p.dest,
                    &EchoRepr::parse_bytes(&rep).unwrap(),
                );
            }
        }
        e.handle_timeout(t0 + Duration::from_millis(500));
        e
    }

    #[test]
    fn sla_statistics_renders_ok_timeout_and_pending() {
        let t0 = crate::test_t0();
        let e = sla_fixture(t0);
        let now = t0 + Duration::from_secs(1);
        let got = sla_statistics(&e.snapshot(), now, &clock(t0));
        let want = "\
IPSLAs Latest Operation Statistics

IPSLA operation id: 1
        Latest RTT: 12 milliseconds
Latest operation start time: T+0ms
Latest operation return code: OK
Number of successes: 1
Number of failures: 0
Operation time to live: Forever

IPSLA operation id: 2
        Latest RTT: NoConnection/Busy/Timeout
Latest operation start time: T+0ms
Latest operation return code: Timeout
Number of successes: 0
Number of failures: 1
Operation time to live: 3599 sec

IPSLA operation id: 3
        Latest RTT: Unknown
Latest operation start time: Unknown
Latest operation return code: Unknown
Number of successes: 0
Number of failures: 0
Operation time to live: Forever

";
        assert_eq!(got, want);
    }

    #[test]
    fn sla_summary_renders_codes_and_columns() {
        let t0 = crate::test_t0();
        let e = sla_fixture(t0);
        let got = sla_summary(&e.snapshot(), t0 + Duration::from_secs(3));
        let want = "\
IPSLAs Latest Operation Summary
Codes: * active, ^ inactive, ~ pending
All Stats are in milliseconds. Stats with u are in microseconds

ID           Type        Destination       Stats       Return      Last
                                                       Code        Run
-----------------------------------------------------------------------
*1           icmp-echo   192.0.2.11        RTT=12      OK          3 seconds ago
*2           icmp-echo   198.51.100.7      -           Timeout     3 seconds ago
~3           icmp-echo   203.0.113.5       -           -           never
";
        assert_eq!(got, want);
    }

    #[test]
    fn show_track_renders_states_delays_and_tracked_by() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        let obj = TrackObject {
            delay_up: Some(Duration::from_secs(10)),
            delay_down: Some(Duration::from_secs(5)),
            ..TrackObject::new(TrackId(1), TrackKind::SlaReachability(SlaId(1)))
        };
        t.add(t0, obj).unwrap();
        t.add(
            t0,
            TrackObject::new(TrackId(2), TrackKind::SlaState(SlaId(2))),
        )
        .unwrap();
        t.add(
            t0,
            TrackObject::new(
                TrackId(3),
                TrackKind::InterfaceLineProtocol("GigabitEthernet0/0/1".into()),
            ),
        )
        .unwrap();
        t.handle_sla_result(
            t0,
            SlaId(1),
            crate::sla::ReturnCode::Ok,
            Some(Duration::from_millis(1)),
        );
        t.handle_timeout(t0 + Duration::from_secs(10));
        t.handle_sla_result(
            t0 + Duration::from_secs(20),
            SlaId(1),
            crate::sla::ReturnCode::Timeout,
            None,
        );
        t.handle_interface(t0 + Duration::from_secs(1), "GigabitEthernet0/0/1", true);
        let tracked = BTreeMap::from([(TrackId(1), 1)]);
        let got = track(&t.snapshot(), &tracked, t0 + Duration::from_millis(22_500));
        let want = "\
Track 1
  IP SLA 1 reachability
  Reachability is Up, delayed Down (3 secs remaining)
    1 change, last change 00:00:12
  Delay up 10 secs, down 5 secs
  Latest operation return code: Timeout
  Tracked by:
    Static IP Routing 0
Track 2
  IP SLA 2 state
  State is Down
    0 changes, last change never
  Latest operation return code: Unknown
Track 3
  Interface GigabitEthernet0/0/1 line-protocol
  Line protocol is Up
    1 change, last change 00:00:21
";
        assert_eq!(got, want);
    }

    #[test]
    fn elapsed_uses_ios_units() {
        assert_eq!(elapsed(Duration::from_secs(83)), "00:01:23");
        assert_eq!(elapsed(Duration::from_secs(93_600)), "1d02h");
        assert_eq!(elapsed(Duration::from_secs(17 * 86_400)), "2w3d");
    }

    #[test]
    fn ip_route_static_groups_classful_networks() {
        let mut r = Rib::new();
        r.set_interface(
            "GigabitEthernet0/0/0",
            true,
            Some(("198.51.100.2".parse().unwrap(), 24)),
        );
        r.set_interface("Tunnel0", true, None);
        r.set_interface("Tunnel1", true, None);
        let add = |r: &mut Rib, p: Ipv4Prefix, t: RouteTarget, d: u8| {
            r.add_static(StaticRoute {
                distance: d,
                ..StaticRoute::new(p, t)
            })
            .unwrap();
        };
        let gw = |s: &str| RouteTarget::NextHop(s.parse().unwrap());
        add(&mut r, pfx("0.0.0.0", 0), gw("198.51.100.1"), 1);
        add(&mut r, pfx("10.1.0.0", 16), gw("198.51.100.9"), 1);
        add(
            &mut r,
            pfx("10.2.2.0", 24),
            RouteTarget::Interface("Tunnel0".into()),
            1,
        );
        add(&mut r, pfx("172.16.1.0", 24), gw("198.51.100.9"), 1);
        add(&mut r, pfx("172.16.1.0", 24), gw("198.51.100.10"), 1);
        add(
            &mut r,
            pfx("172.16.2.0", 24),
            RouteTarget::InterfaceNextHop("Tunnel1".into(), "203.0.113.1".parse().unwrap()),
            5,
        );
        add(
            &mut r,
            pfx("192.0.2.0", 24),
            RouteTarget::Interface("Tunnel1".into()),
            254,
        );
        let got = ip_route_static(&r.snapshot());
        let want = format!(
            "{ROUTE_CODES}
Gateway of last resort is 198.51.100.1 to network 0.0.0.0

S*    0.0.0.0/0 [1/0] via 198.51.100.1
      10.0.0.0/8 is variably subnetted, 2 subnets, 2 masks
S        10.1.0.0/16 [1/0] via 198.51.100.9
S        10.2.2.0/24 is directly connected, Tunnel0
      172.16.0.0/24 is subnetted, 2 subnets
S        172.16.1.0 [1/0] via 198.51.100.9
                    [1/0] via 198.51.100.10
S        172.16.2.0 [5/0] via 203.0.113.1, Tunnel1
S     192.0.2.0/24 is directly connected, Tunnel1
"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn ip_route_static_without_default_says_not_set() {
        let r = Rib::new();
        assert!(ip_route_static(&r.snapshot()).ends_with("Gateway of last resort is not set\n\n"));
    }

    #[test]
    fn vpn_sip_sip_dhcp_matches_the_seed_sample() {
        let sip = crate::dhcp::SipServers::Domains(vec!["example.com".into()]);
        let want = "SIP DHCP Info\n\nSIP-DHCP interface: GigabitEthernet8\n\nSIP server address:\nDomain name:          dns:example.com\n";
        assert_eq!(vpn_sip_sip_dhcp("GigabitEthernet8", Some(&sip)), want);
    }

    #[test]
    fn vpn_sip_sip_dhcp_lists_addresses_on_aligned_lines() {
        let sip = crate::dhcp::SipServers::Addrs(vec![
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 11),
        ]);
        let want = "SIP DHCP Info\n\nSIP-DHCP interface: Gi0/0/1\n\nSIP server address:   198.51.100.10\n                      198.51.100.11\nDomain name:\n";
        assert_eq!(vpn_sip_sip_dhcp("Gi0/0/1", Some(&sip)), want);
        assert!(vpn_sip_sip_dhcp("Gi0/0/1", None).ends_with("SIP server address:\nDomain name:\n"));
    }
}

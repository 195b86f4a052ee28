//! End-to-end failover in virtual time: IP SLA -> track -> RIB -> FIB, with the guide's configuration
//! (EX-4.11..4.13) plus `delay down 4 up 6`:
//!
//! ```text
//! ip sla 1
//!  icmp-echo 192.0.2.11 source-interface GigabitEthernet0/0/0
//!  threshold 500
//!  timeout 500
//!  frequency 2
//! ip sla schedule 1 life forever start-time now
//! track 1 ip sla 1 reachability
//!  delay down 4 up 6
//! ip route 192.0.2.0 255.255.255.0 Tunnel0 track 1
//! ip route 192.0.2.0 255.255.255.0 Tunnel1 254
//! ```
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lifeline_monitors::icmp::EchoRepr;
use lifeline_monitors::rib::{Fib, Ipv4Prefix, Rib, RouteTarget, StaticRoute};
use lifeline_monitors::sla::{Schedule, SlaEngine, SlaOperation, SlaSource};
use lifeline_monitors::track::{TrackKind, TrackObject, Tracker};
use lifeline_monitors::{SlaId, TrackId};

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

/// Returns (seconds since t0 in ms, interface) at every FIB change for the peer, until `end`.
fn run(primary_up: impl Fn(Duration) -> bool, end: Duration) -> Vec<(u128, String)> {
    let t0 = t0();
    let mut sla = SlaEngine::new(0x5eed, 0x100);
    let mut tracker = Tracker::new();
    let mut rib = Rib::new();
    let mut fib = Fib::new();
    let op = SlaOperation {
        source: SlaSource::Interface("GigabitEthernet0/0/0".into()),
        threshold: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
        frequency: Duration::from_secs(2),
        schedule: Schedule::forever_now(),
        ..SlaOperation::icmp_echo(SlaId(1), PEER)
    };
    sla.add(t0, op).unwrap();
    let obj = TrackObject {
        delay_down: Some(Duration::from_secs(4)),
        delay_up: Some(Duration::from_secs(6)),
        ..TrackObject::new(TrackId(1), TrackKind::SlaReachability(SlaId(1)))
    };
    tracker.add(t0, obj).unwrap();
    rib.set_interface("Tunnel0", true, None);
    rib.set_interface("Tunnel1", true, None);
    let net = Ipv4Prefix::from_mask(Ipv4Addr::new(192, 0, 2, 0), Ipv4Addr::new(255, 255, 255, 0))
        .unwrap();
    rib.add_static(StaticRoute {
        track: Some(TrackId(1)),
        ..StaticRoute::new(net, RouteTarget::Interface("Tunnel0".into()))
    })
    .unwrap();
    rib.add_static(StaticRoute {
        distance: 254,
        ..StaticRoute::new(net, RouteTarget::Interface("Tunnel1".into()))
    })
    .unwrap();

    let mut replies: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut changes = Vec::new();
    let mut current: Option<String> = None;
    let mut now = t0;
    while now.duration_since(t0) <= end {
        sla.handle_timeout(now);
        tracker.handle_timeout(now);
        // Replies due now.
        let (due, later): (Vec<_>, Vec<_>) = replies.into_iter().partition(|(at, _)| *at <= now);
        replies = later;
        for (_, bytes) in due {
            sla.handle_reply(now, PEER, &EchoRepr::parse_bytes(&bytes).unwrap());
        }
        while let Some(p) = sla.poll_probe() {
            // Probes always leave through the primary interface, whatever the routes say.
            assert_eq!(
                p.source,
                SlaSource::Interface("GigabitEthernet0/0/0".into())
            );
            if primary_up(now.duration_since(t0)) {
                let reply = EchoRepr::parse_bytes(&p.payload).unwrap().reply().to_vec();
                replies.push((now + Duration::from_millis(20), reply));
            }
        }
        while let Some(ev) = sla.poll_event() {
            tracker.handle_sla_event(now, &ev);
        }
        while let Some(ev) = tracker.poll_event() {
            rib.set_track(ev.id, ev.up);
        }
        while let Some(ev) = rib.poll_event() {
            fib.apply(&ev);
        }
        let via = fib.lookup(PEER).map(|h| h[0].interface.clone());
        if via != current {
            changes.push((
                now.duration_since(t0).as_millis(),
                via.clone().unwrap_or_default(),
            ));
            current = via;
        }
        let next = [
            sla.poll_timeout(),
            tracker.poll_timeout(),
            replies.iter().map(|r| r.0).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(n) if n > now => now = n,
            Some(_) => now += Duration::from_millis(1),
            None => break,
        }
    }
    changes
}

#[test]
fn primary_outage_moves_traffic_to_backup_and_back_with_hysteresis() {
    // The primary path is down from 20 s to 40 s.
    let up = |t: Duration| t < Duration::from_secs(20) || t >= Duration::from_secs(40);
    let changes = run(up, Duration::from_secs(70));
    assert_eq!(
        changes,
        vec![
            (0, "Tunnel1".to_owned()),      // track starts Down: floating route
            (6_020, "Tunnel0".to_owned()),  // first reply at 0.02 s + delay up 6 s
            (24_500, "Tunnel1".to_owned()), // probe at 20 s times out at 20.5 s + delay down 4 s
            (46_020, "Tunnel0".to_owned()), // reply at 40.02 s + delay up 6 s
        ]
    );
}

#[test]
fn short_outage_within_delay_down_does_not_fail_over() {
    // One lost probe (the one at 20 s): the 22 s probe succeeds before the 4 s down delay expires.
    let up = |t: Duration| !(Duration::from_secs(19)..Duration::from_secs(21)).contains(&t);
    let changes = run(up, Duration::from_secs(40));
    assert_eq!(
        changes,
        vec![(0, "Tunnel1".to_owned()), (6_020, "Tunnel0".to_owned())]
    );
}

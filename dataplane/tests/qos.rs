//! Virtual-time behaviour of the QoS scheduler: shaper conformance, CBWFQ shares, LLQ precedence,
//! queue limits, policers, the VPN-SIP implicit policy and its attachment rules.
#![allow(clippy::unwrap_used)]

use lifeline_dataplane::qos::{
    ClassSpec, Classifier, DropCause, Dscp, Egress, EgressError, Match, Offer, Packet,
    PoliceAction, PoliceSpec, PolicySpec, Queueing, Rate, Scheduler, ShapeSpec,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};

#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

const HEADROOM: usize = 32;

/// An IPv4/UDP packet of `len` bytes with the given DSCP; byte 19 (last octet of the destination)
/// carries `tag` so tests can tell flows apart after remarking.
fn ip_packet(len: usize, dscp: Dscp, tag: u8) -> Packet {
    let len = len.max(28);
    let mut buf = vec![0u8; HEADROOM + len + 16];
    let p = &mut buf[HEADROOM..HEADROOM + len];
    p[0] = 0x45;
    p[1] = dscp.0 << 2;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[192, 168, 1, 10]);
    p[16..20].copy_from_slice(&[10, 0, 0, tag]);
    let ck = ipv4_checksum(&p[..20]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    Packet::new(buf, HEADROOM..HEADROOM + len)
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in h.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn class(name: &str, m: Match, q: Queueing) -> ClassSpec {
    let mut c = ClassSpec::new(
        name,
        Classifier {
            match_any: false,
            matches: vec![m],
        },
    );
    c.queueing = q;
    c
}

/// One transmitted packet: when it left, its size and tag.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Duration,
    len: usize,
    tag: u8,
}

/// Runs the scheduler like a driver would: packets arrive at their offsets; after every event
/// the driver dequeues everything allowed; between events it sleeps until the earlier of the next
/// arrival and `poll_timeout`.
fn simulate(
    s: &mut Scheduler,
    t0: Instant,
    mut arrivals: Vec<(Duration, Packet)>,
    until: Duration,
) -> (Vec<Sent>, Vec<(Duration, DropCause, u8)>) {
    arrivals.sort_by_key(|(t, _)| *t);
    let mut arrivals = arrivals.into_iter().peekable();
    let mut sent = Vec::new();
    let mut drops = Vec::new();
    let mut now = t0;
    loop {
        while let Some(p) = s.dequeue(now) {
            sent.push(Sent {
                at: now - t0,
                len: p.len(),
                tag: p.bytes()[19],
            });
        }
        let next_arrival = arrivals.peek().map(|(t, _)| t0 + *t);
        let next = match (next_arrival, s.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => break,
            },
        };
        if next > t0 + until {
            break;
        }
        now = next.max(now);
        while arrivals.peek().is_some_and(|(t, _)| t0 + *t <= now) {
            let (_, p) = arrivals.next().unwrap();
            let tag = p.bytes()[19];
            if let Err(d) = s.enqueue(now, p) {
                drops.push((now - t0, d.cause, tag));
            }
        }
    }
    (sent, drops)
}

/// Constant-rate arrivals of `len`-byte packets at `bps` during `dur`.
fn cbr(bps: u64, len: usize, dur: Duration, dscp: Dscp, tag: u8) -> Vec<(Duration, Packet)> {
    let gap = Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / bps);
    let mut v = Vec::new();
    let mut t = Duration::ZERO;
    while t < dur {
        v.push((t, ip_packet(len, dscp, tag)));
        t += gap;
    }
    v
}

fn bytes_of(sent: &[Sent], tag: u8, from: Duration, to: Duration) -> u64 {
    sent.iter()
        .filter(|s| s.tag == tag && s.at >= from && s.at < to)
        .map(|s| s.len as u64)
        .sum()
}

#[test]
fn vpn_sip_policy_is_named_marks_cs4_and_shapes_with_4ms_bursts() {
    let spec = PolicySpec::vpn_sip(1, 1000, None);
    assert_eq!(spec.name, "VPN-SIP-Tunnel1-Bandwidth");
    let c = &spec.classes[0];
    assert_eq!(c.name, "class-default");
    assert_eq!(c.set_dscp, Some(Dscp::CS4));
    assert_eq!(
        c.shape,
        Some(ShapeSpec {
            cir_bps: 1_000_000,
            bc_bits: 4000,
            be_bits: 4000
        })
    );
    // The other shaper samples in the seeds follow the same 4 ms rule.
    assert_eq!(ShapeSpec::average(3_000_000).bc_bits, 12_000);
    assert_eq!(ShapeSpec::average(2_000_000).be_bits, 8_000);
    assert_eq!(
        PolicySpec::vpn_sip(7, 64, None).classes[0]
            .shape
            .unwrap()
            .cir_bps,
        64_000
    );
}

#[test]
fn shaper_holds_output_to_cir_over_a_long_run() {
    let t0 = origin();
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, None), None).unwrap();
    // 2 Mbit/s of 1000-byte packets offered into a 1 Mbit/s shaper for 10 s.
    let arr = cbr(2_000_000, 1000, Duration::from_secs(10), Dscp::CS0, 1);
    let (sent, drops) = simulate(&mut s, t0, arr, Duration::from_secs(10));
    let out = bytes_of(&sent, 1, Duration::from_secs(1), Duration::from_secs(9)) * 8;
    let rate = out / 8;
    assert!((990_000..=1_010_000).contains(&rate), "{rate} bit/s");
    assert!(
        !drops.is_empty(),
        "the 64-packet queue overflows at twice the rate"
    );
    assert!(drops.iter().all(|(_, c, _)| *c == DropCause::QueueFull));
}

#[test]
fn shaper_sends_at_once_below_cir_and_bursts_at_most_bc_plus_be_plus_one_packet() {
    let t0 = origin();
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, None), None).unwrap();
    // A burst of 10 x 400 bytes at t = 0: 1000 bytes of bucket, so three leave at once (the
    // third drives the bucket 200 bytes into deficit), then one every 3.2 ms.
    let arr: Vec<_> = (0..10)
        .map(|_| (Duration::ZERO, ip_packet(400, Dscp::CS0, 1)))
        .collect();
    let (sent, _) = simulate(&mut s, t0, arr, Duration::from_secs(1));
    assert_eq!(sent.len(), 10);
    let at_zero = sent.iter().filter(|p| p.at == Duration::ZERO).count();
    assert_eq!(at_zero, 3);
    let last = sent.last().unwrap().at;
    // The tenth leaves once the first nine (3600 bytes) minus the 1000-byte bucket are refilled:
    // 2600 bytes at 1 Mbit/s = 20.8 ms.
    assert_eq!(last, Duration::from_micros(20_800));
    assert_eq!(sent[3].at, Duration::from_micros(1_600));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Token bucket conformance: for every interval between two departures, what left is at most
    /// cir x interval + (bc + be) + one packet.
    #[test]
    fn shaper_never_exceeds_rate_plus_burst(
        kbps in prop::sample::select(vec![64u32, 128, 256, 512, 1000]),
        pkts in prop::collection::vec((0u64..20_000, 28usize..1500), 1..120),
    ) {
        let t0 = origin();
        let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, kbps, None), None).unwrap();
        let mut t = Duration::ZERO;
        let arr: Vec<_> = pkts.iter().map(|&(gap_us, len)| {
            t += Duration::from_micros(gap_us);
            (t, ip_packet(len, Dscp::CS0, 1))
        }).collect();
        let (sent, _) = simulate(&mut s, t0, arr, Duration::from_secs(3600));
        let cir = u128::from(kbps) * 1000;
        let burst_bits = u128::from(ShapeSpec::average(kbps as u64 * 1000).bc_bits * 2);
        for i in 0..sent.len() {
            let mut bits: u128 = 0;
            for j in i..sent.len() {
                bits += sent[j].len as u128 * 8;
                let dt = (sent[j].at - sent[i].at).as_nanos();
                let allowed = cir * dt / 1_000_000_000 + burst_bits + 1500 * 8 + 1;
                prop_assert!(bits <= allowed, "{} bits in {} ns (allowed {})", bits, dt, allowed);
            }
        }
    }
}

fn cbwfq_child(shares: &[(u8, u8)], default_limit: Option<u32>) -> PolicySpec {
    let mut p = PolicySpec::new("CBWFQ");
    for &(tag, pct) in shares {
        let mut c = class(
            &format!("C{tag}"),
            Match::Dscp(vec![Dscp(tag)]),
            Queueing::Bandwidth(Rate::Percent(pct)),
        );
        c.queue_limit = Some(64);
        p.classes.push(c);
    }
    let mut d = ClassSpec::class_default();
    d.queue_limit = default_limit;
    p.classes.push(d);
    p
}

#[test]
fn cbwfq_divides_a_congested_shaper_by_bandwidth_percent() {
    let t0 = origin();
    // 60% / 20% / class-default (the remaining 20%), every class offered the full 1 Mbit/s.
    let child = cbwfq_child(&[(10, 60), (20, 20)], None);
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    let dur = Duration::from_secs(20);
    let mut arr = cbr(1_000_000, 1000, dur, Dscp(10), 10);
    arr.extend(cbr(1_000_000, 500, dur, Dscp(20), 20));
    arr.extend(cbr(1_000_000, 1400, dur, Dscp(0), 30));
    let (sent, _) = simulate(&mut s, t0, arr, dur);
    let (from, to) = (Duration::from_secs(2), Duration::from_secs(18));
    let a = bytes_of(&sent, 10, from, to) as f64;
    let b = bytes_of(&sent, 20, from, to) as f64;
    let d = bytes_of(&sent, 30, from, to) as f64;
    let total = a + b + d;
    let secs = (to - from).as_secs_f64();
    assert!(
        (total * 8.0 / secs - 1e6).abs() < 1e4,
        "{}",
        total * 8.0 / secs
    );
    assert!((a / total - 0.60).abs() < 0.02, "a {}", a / total);
    assert!((b / total - 0.20).abs() < 0.02, "b {}", b / total);
    assert!((d / total - 0.20).abs() < 0.02, "default {}", d / total);
}

/// 60/40 with an idle class-default (weight 1 %): the shares hold within 5 % (relative) over every
/// 1 s window, not only over a long run (deficit round robin with quanta proportional to the
/// weights served 0.7 s of one class at a time here).
#[test]
fn cbwfq_shares_hold_over_short_windows() {
    let t0 = origin();
    let child = cbwfq_child(&[(10, 60), (20, 40)], None);
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    let encap = lifeline_dataplane::qos::Encap {
        fixed: 52,
        trailer: 2,
        align: 4,
        wide_align: 16,
        limit: 1500,
    };
    s.set_encap(encap);
    let wire = |sent: &[Sent], tag: u8, from: Duration, to: Duration| -> f64 {
        sent.iter()
            .filter(|s| s.tag == tag && s.at >= from && s.at < to)
            .map(|s| encap.wire_len(s.len) as f64)
            .sum()
    };
    let dur = Duration::from_secs(8);
    let mut arr = cbr(1_000_000, 200, dur, Dscp(10), 10);
    arr.extend(cbr(1_000_000, 1200, dur, Dscp(20), 20));
    let (sent, _) = simulate(&mut s, t0, arr, dur);
    let mut from = Duration::from_secs(1);
    while from < Duration::from_secs(7) {
        let to = from + Duration::from_secs(1);
        // The scheduler shares wire bytes (200-byte packets are 260 on the wire, 1200 are 1260).
        let a = wire(&sent, 10, from, to);
        let b = wire(&sent, 20, from, to);
        let share = a / (a + b);
        assert!((share / 0.6 - 1.0).abs() < 0.05, "{from:?}: {share}");
        assert!(
            ((1.0 - share) / 0.4 - 1.0).abs() < 0.05,
            "{from:?}: {share}"
        );
        from = to;
    }
}

/// A driver that wakes 30 ms late every time (a loaded machine) still gets CIR out of a backlogged
/// shaper: the bucket may catch up by up to 100 ms while packets wait (it lost everything beyond
/// bc + be = 8 ms before, i.e. about 70 % of the rate here).
#[test]
fn backlogged_shaper_keeps_its_rate_when_the_driver_wakes_late() {
    let t0 = origin();
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, None), None).unwrap();
    let mut bytes = 0usize;
    let mut t = Duration::ZERO;
    let wake = Duration::from_millis(30);
    while t < Duration::from_secs(10) {
        // 2 Mbit/s of 250-byte packets arrived since the last wake-up.
        for _ in 0..30 {
            let _ = s.enqueue(t0 + t, ip_packet(250, Dscp(0), 1));
        }
        while let Some(p) = s.dequeue(t0 + t) {
            if t >= Duration::from_secs(1) {
                bytes += p.len();
            }
        }
        t += wake;
    }
    let rate = bytes as f64 * 8.0 / 9.0;
    assert!((rate / 1e6 - 1.0).abs() < 0.01, "{rate}");
}

#[test]
fn cbwfq_is_work_conserving_when_a_class_is_idle() {
    let t0 = origin();
    let child = cbwfq_child(&[(10, 60), (20, 20)], None);
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    let dur = Duration::from_secs(10);
    // Only the 20% class is busy: it gets the whole shaper.
    let arr = cbr(2_000_000, 1000, dur, Dscp(20), 20);
    let (sent, _) = simulate(&mut s, t0, arr, dur);
    let b = bytes_of(&sent, 20, Duration::from_secs(1), Duration::from_secs(9)) * 8 / 8;
    assert!((990_000..=1_010_000).contains(&b), "{b}");
}

#[test]
fn priority_class_is_served_first_and_keeps_its_delay_low() {
    let t0 = origin();
    let mut child = PolicySpec::new("LLQ");
    child.classes.push(class(
        "VOICE",
        Match::Dscp(vec![Dscp::EF]),
        Queueing::Priority {
            rate: Some(Rate::Percent(30)),
            burst_bytes: None,
        },
    ));
    child.classes.push(class(
        "BULK",
        Match::Dscp(vec![Dscp::AF11]),
        Queueing::Bandwidth(Rate::Percent(60)),
    ));
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    let dur = Duration::from_secs(10);
    // 200 kbit/s of 200-byte voice, 3 Mbit/s of 1400-byte bulk.
    let mut arr = cbr(200_000, 200, dur, Dscp::EF, 46);
    let voice_arrivals: Vec<Duration> = arr.iter().map(|(t, _)| *t).collect();
    arr.extend(cbr(3_000_000, 1400, dur, Dscp::AF11, 10));
    let (sent, drops) = simulate(&mut s, t0, arr, dur + Duration::from_secs(1));
    let voice: Vec<&Sent> = sent.iter().filter(|p| p.tag == 46).collect();
    assert_eq!(voice.len(), voice_arrivals.len(), "no voice loss");
    assert!(drops.iter().all(|(_, _, tag)| *tag == 10));
    // Each voice packet waits at most for the shaper deficit of one bulk packet (1400 B at 1 Mbit/s
    // = 11.2 ms) plus its own predecessors.
    for (p, arrival) in voice.iter().zip(&voice_arrivals) {
        assert!(
            p.at - *arrival <= Duration::from_millis(13),
            "{:?}",
            p.at - *arrival
        );
    }
}

#[test]
fn priority_class_is_policed_to_its_rate_only_under_congestion() {
    let t0 = origin();
    let mut child = PolicySpec::new("LLQ");
    child.classes.push(class(
        "VOICE",
        Match::Dscp(vec![Dscp::EF]),
        Queueing::Priority {
            rate: Some(Rate::Kbps(200)),
            burst_bytes: None,
        },
    ));
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child.clone())), None).unwrap();
    let dur = Duration::from_secs(10);
    // Alone, 600 kbit/s of priority traffic fits in the shaper: no congestion, no drop.
    let (sent, drops) = simulate(
        &mut s,
        t0,
        cbr(600_000, 200, dur, Dscp::EF, 46),
        dur + Duration::from_secs(1),
    );
    assert!(drops.is_empty());
    assert_eq!(sent.len(), cbr(600_000, 200, dur, Dscp::EF, 46).len());

    // With the tunnel congested by best effort, priority is held to 200 kbit/s (+ 200 ms burst).
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    let mut arr = cbr(600_000, 200, dur, Dscp::EF, 46);
    arr.extend(cbr(2_000_000, 1000, dur, Dscp::CS0, 1));
    let (sent, drops) = simulate(&mut s, t0, arr, dur);
    let v = bytes_of(&sent, 46, Duration::ZERO, dur) * 8;
    let allowed = 200_000 * 10 + 25_000 / 5 * 8 * 10;
    assert!(v <= allowed && v >= 1_900_000, "{v}");
    assert!(
        drops
            .iter()
            .any(|(_, c, t)| *t == 46 && *c == DropCause::PriorityExceeded)
    );
    let snap = s.snapshot(t0 + dur);
    let child = snap.child.unwrap();
    let p = child.classes[0].priority.unwrap();
    assert_eq!(p.burst_bytes, 5000, "200 ms at 200 kbit/s");
    assert!(p.exceed_drops > 0);
}

#[test]
fn queue_limit_tail_drops_the_packet_after_the_limit() {
    let t0 = origin();
    let mut child = PolicySpec::new("CBWFQ");
    let mut udp = class(
        "UDP",
        Match::ProtocolIp,
        Queueing::Bandwidth(Rate::Percent(60)),
    );
    udp.queue_limit = Some(12);
    child.classes.push(udp);
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 64, Some(child)), None).unwrap();
    // The empty bucket (2 x 256 bits = 64 bytes) lets the first packet through at once.
    s.enqueue(t0, ip_packet(100, Dscp::CS0, 1)).unwrap();
    assert!(s.dequeue(t0).is_some());
    for _ in 0..12 {
        s.enqueue(t0, ip_packet(100, Dscp::CS0, 1)).unwrap();
    }
    let d = s.enqueue(t0, ip_packet(100, Dscp::CS0, 1)).unwrap_err();
    assert_eq!(d.cause, DropCause::QueueFull);
    assert_eq!(d.packet.len(), 100, "the buffer comes back");
    assert_eq!(s.queued(), 12);
    let snap = s.snapshot(t0);
    let q = snap.child.as_ref().unwrap().classes[0].queue.unwrap();
    assert_eq!((q.limit, q.depth, q.total_drops), (12, 12, 1));
    // The parent shows the drops, with no queue of its own.
    let pq = snap.classes[0].queue.unwrap();
    assert_eq!((pq.limit, pq.depth, pq.total_drops), (64, 0, 1));
}

#[test]
fn class_default_queue_limit_is_64_packets() {
    let t0 = origin();
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 64, None), None).unwrap();
    s.enqueue(t0, ip_packet(1000, Dscp::CS0, 1)).unwrap();
    assert!(s.dequeue(t0).is_some());
    for _ in 0..64 {
        s.enqueue(t0, ip_packet(1000, Dscp::CS0, 1)).unwrap();
    }
    assert_eq!(
        s.enqueue(t0, ip_packet(1000, Dscp::CS0, 1))
            .unwrap_err()
            .cause,
        DropCause::QueueFull
    );
    assert!(s.dequeue(t0).is_none(), "shaper in deficit");
    let ready = s.poll_timeout().unwrap();
    // 1000 bytes + 28-byte header... the packet is 1000 bytes: 8000 bits - 512 bits of bucket at
    // 64 kbit/s = 117 ms.
    assert_eq!(ready - t0, Duration::from_micros(117_000));
    assert!(s.dequeue(ready).is_some());
}

#[test]
fn static_policer_drops_above_cir_like_the_vti_example() {
    // EX-3.4: class-map match-all VTI / match any; policy-map VTI / class VTI / police cir
    // 2000000 / conform-action transmit / exceed-action drop.
    let t0 = origin();
    let mut p = PolicySpec::new("VTI");
    let mut c = class("VTI", Match::Any, Queueing::Fifo);
    c.police = Some(PoliceSpec::cir(2_000_000));
    p.classes.push(c);
    let mut s = Scheduler::new(&p, None).unwrap();
    let dur = Duration::from_secs(10);
    let (sent, drops) = simulate(&mut s, t0, cbr(4_000_000, 1000, dur, Dscp::CS0, 1), dur);
    let bits = bytes_of(&sent, 1, Duration::ZERO, dur) * 8;
    // cir x 10 s + bc (62500 bytes = 250 ms at cir).
    assert!(
        (20_000_000..=20_000_000 + 62_500 * 8 + 8000).contains(&bits),
        "{bits}"
    );
    assert!(drops.iter().all(|(_, c, _)| *c == DropCause::Policed));
    let snap = s.snapshot(t0 + dur);
    let pol = snap.classes[0].police.unwrap();
    assert_eq!(
        pol.conformed.0 + pol.exceeded.0,
        snap.classes[0].packets,
        "every packet coloured"
    );
    assert_eq!(pol.exceeded.0 as usize, drops.len());
    assert_eq!(pol.spec.bc(), 62_500);
}

#[test]
fn policer_exceed_action_can_remark_instead_of_dropping() {
    let t0 = origin();
    let mut p = PolicySpec::new("REMARK");
    let mut c = class("ALL", Match::ProtocolIp, Queueing::Fifo);
    c.police = Some(PoliceSpec {
        cir_bps: 80_000,
        bc_bytes: Some(1500),
        be_bytes: None,
        conform: PoliceAction::Transmit,
        exceed: PoliceAction::SetDscpTransmit(Dscp::CS1),
        violate: None,
    });
    p.classes.push(c);
    let mut s = Scheduler::new(&p, None).unwrap();
    s.enqueue(t0, ip_packet(1000, Dscp::AF41, 1)).unwrap();
    s.enqueue(t0, ip_packet(1000, Dscp::AF41, 1)).unwrap();
    let a = s.dequeue(t0).unwrap();
    let b = s.dequeue(t0).unwrap();
    assert_eq!(a.dscp(), Some(Dscp::AF41));
    assert_eq!(b.dscp(), Some(Dscp::CS1));
    assert_eq!(ipv4_checksum(&b.bytes()[..20]), 0);
}

#[test]
fn parent_marks_every_packet_cs4_after_child_classification() {
    let t0 = origin();
    let child = cbwfq_child(&[(46, 50)], None);
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    s.enqueue(t0, ip_packet(100, Dscp::EF, 1)).unwrap();
    s.enqueue(t0, ip_packet(100, Dscp::CS0, 2)).unwrap();
    while let Some(p) = s.dequeue(t0) {
        assert_eq!(p.dscp(), Some(Dscp::CS4));
        assert_eq!(ipv4_checksum(&p.bytes()[..20]), 0);
    }
    let snap = s.snapshot(t0);
    assert_eq!(snap.classes[0].set_dscp, Some((Dscp::CS4, 2)));
    let child = snap.child.unwrap();
    assert_eq!(
        child.classes[0].packets, 1,
        "EF classified before remarking"
    );
    assert_eq!(child.classes[1].packets, 1);
}

#[test]
fn egress_passes_packets_through_when_no_policy_is_attached() {
    let t0 = origin();
    let mut e = Egress::new();
    let p = ip_packet(100, Dscp::EF, 1);
    let Offer::Send(back) = e.offer(t0, p.clone()) else {
        panic!("pass-through")
    };
    assert_eq!(back, p);
    assert!(e.dequeue(t0).is_none());
    assert_eq!(e.poll_timeout(), None);
    assert!(e.snapshot(t0).is_none());
}

#[test]
fn vpn_sip_policy_attaches_on_session_up_and_detaches_with_its_buffers() {
    let t0 = origin();
    let mut e = Egress::new();
    e.attach_vpn_sip(1, 64, None, 0).unwrap();
    assert!(e.is_vpn_sip());
    assert_eq!(
        e.attach_vpn_sip(1, 64, None, 0),
        Err(EgressError::AlreadyAttached)
    );
    for _ in 0..5 {
        assert!(matches!(
            e.offer(t0, ip_packet(1000, Dscp::CS0, 1)),
            Offer::Queued
        ));
    }
    assert!(e.dequeue(t0).is_some());
    assert!(e.dequeue(t0).is_none());
    let mut s = e.detach().unwrap();
    assert_eq!(s.drain().len(), 4);
    assert_eq!(s.queued(), 0);
    assert!(!e.is_attached());
    assert!(matches!(
        e.offer(t0, ip_packet(100, Dscp::CS0, 1)),
        Offer::Send(_)
    ));
}

#[test]
fn vpn_sip_policy_is_refused_when_a_static_policy_is_attached() {
    let mut e = Egress::new();
    let mut p = PolicySpec::new("STATIC");
    let mut c = class("VTI", Match::Any, Queueing::Fifo);
    c.police = Some(PoliceSpec::cir(2_000_000));
    p.classes.push(c);
    e.attach_static(&p, None).unwrap();
    assert_eq!(
        e.attach_vpn_sip(1, 1000, None, 0),
        Err(EgressError::StaticPolicyPresent)
    );
    assert!(!e.is_vpn_sip());
}

#[test]
fn unsupported_policies_are_rejected_with_the_class_name() {
    use lifeline_dataplane::qos::SpecError;
    // Percentages need a parent rate.
    let child = cbwfq_child(&[(10, 60)], None);
    assert_eq!(
        Scheduler::new(&child, None).unwrap_err(),
        SpecError::NoParentRate("C10".into())
    );
    assert!(Scheduler::new(&child, Some(1_000_000)).is_ok());
    // Over 100%.
    let child = cbwfq_child(&[(10, 60), (20, 50)], None);
    assert!(matches!(
        Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None),
        Err(SpecError::Oversubscribed(..))
    ));
    // Zero queue limit.
    let child = cbwfq_child(&[(10, 60)], Some(0));
    assert_eq!(
        Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap_err(),
        SpecError::ZeroQueueLimit("class-default".into())
    );
    // Three levels.
    let grandchild = PolicySpec::vpn_sip(2, 64, None);
    assert!(matches!(
        Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(grandchild)), None),
        Err(SpecError::NestedTooDeep(_))
    ));
}

#[test]
fn garbage_packets_go_to_class_default_without_panicking() {
    let t0 = origin();
    let child = cbwfq_child(&[(10, 60)], None);
    let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 1000, Some(child)), None).unwrap();
    for bytes in [vec![], vec![0x45], vec![0x60; 10], vec![0xff; 3000]] {
        s.enqueue(t0, Packet::from_vec(bytes)).unwrap();
    }
    // Out-of-range ranges are clamped.
    s.enqueue(t0, Packet::new(vec![0; 10], 5..100)).unwrap();
    let snap = s.snapshot(t0);
    assert_eq!(snap.child.unwrap().classes[1].packets, 5);
}

#[derive(Debug, Clone)]
enum Op {
    /// Advance virtual time by this many microseconds, then offer a packet of this class and size.
    Offer(u64, usize, usize),
    /// Advance, then dequeue until `None`.
    Drain(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..3000, 0usize..4, 28usize..1500).prop_map(|(t, c, l)| Op::Offer(t, c, l)),
        1 => (0u64..20_000).prop_map(Op::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Against a model of per-class FIFOs: every dequeued packet is the oldest of its class,
    /// priority packets always leave before any other, tail drops happen exactly at the limit,
    /// nothing is lost or duplicated, and an idle dequeue is explained by the shaper's deadline.
    #[test]
    fn scheduler_matches_a_fifo_per_class_model(ops in prop::collection::vec(op(), 1..300)) {
        let dscps = [Dscp::EF, Dscp::AF41, Dscp::AF21, Dscp::CS0];
        let limits = [16usize, 8, 4, 64];
        let mut child = PolicySpec::new("CHILD");
        let mut prio = class("P", Match::Dscp(vec![Dscp::EF]), Queueing::Priority {
            rate: Some(Rate::Percent(20)), burst_bytes: None });
        prio.queue_limit = Some(16);
        child.classes.push(prio);
        for (i, pct) in [(1usize, 40u8), (2, 20)] {
            let mut c = class(&format!("C{i}"), Match::Dscp(vec![dscps[i]]),
                Queueing::Bandwidth(Rate::Percent(pct)));
            c.queue_limit = Some(limits[i] as u32);
            child.classes.push(c);
        }
        let mut s = Scheduler::new(&PolicySpec::vpn_sip(1, 256, Some(child)), None).unwrap();
        let t0 = origin();
        let mut now = t0;
        let mut model: Vec<std::collections::VecDeque<u32>> = vec![Default::default(); 4];
        let mut next_id = 0u32;
        let mut out = 0usize;
        for op in ops {
            match op {
                Op::Offer(dt, c, len) => {
                    now += Duration::from_micros(dt);
                    let mut p = ip_packet(len, dscps[c], c as u8);
                    p.bytes_mut()[20..24].copy_from_slice(&next_id.to_be_bytes());
                    match s.enqueue(now, p) {
                        Ok(()) => {
                            prop_assert!(model[c].len() < limits[c]);
                            model[c].push_back(next_id);
                        }
                        Err(d) => match d.cause {
                            DropCause::QueueFull => prop_assert_eq!(model[c].len(), limits[c]),
                            DropCause::PriorityExceeded => prop_assert_eq!(c, 0),
                            DropCause::Policed => prop_assert!(false, "no policer configured"),
                        },
                    }
                    next_id += 1;
                }
                Op::Drain(dt) => {
                    now += Duration::from_micros(dt);
                    while let Some(p) = s.dequeue(now) {
                        let b = p.bytes();
                        let c = b[19] as usize;
                        let id = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
                        prop_assert_eq!(model[c].pop_front(), Some(id), "FIFO within class {}", c);
                        if c != 0 {
                            prop_assert!(model[0].is_empty(), "priority waiting while class {} sent", c);
                        }
                        prop_assert_eq!(p.dscp(), Some(Dscp::CS4));
                        out += 1;
                    }
                    let waiting: usize = model.iter().map(|q| q.len()).sum();
                    prop_assert_eq!(s.queued(), waiting);
                    if waiting > 0 {
                        let t = s.poll_timeout().unwrap();
                        prop_assert!(t > now, "dequeue returned None but poll_timeout is {:?}", t - t0);
                    }
                }
            }
        }
        let snap = s.snapshot(now);
        let q = snap.classes[0].queue.unwrap();
        prop_assert_eq!(q.output_packets as usize, out);
        let waiting: usize = model.iter().map(|q| q.len()).sum();
        prop_assert_eq!(snap.classes[0].packets, u64::from(next_id));
        prop_assert_eq!(q.total_drops as usize + out + waiting, next_id as usize);
    }
}

#[test]
fn vpn_sip_child_allows_only_priority_and_bandwidth_percent() {
    use lifeline_dataplane::qos::SpecError;
    let mut e = Egress::new();
    let mut kbps = PolicySpec::new("KBPS");
    kbps.classes.push(class(
        "UDP",
        Match::ProtocolIp,
        Queueing::Bandwidth(Rate::Kbps(600)),
    ));
    assert_eq!(
        e.attach_vpn_sip(1, 1000, Some(kbps), 0),
        Err(EgressError::Spec(SpecError::NotAllowedInVpnSip(
            "UDP".into(),
            "bandwidth in kbps"
        )))
    );
    let mut pol = cbwfq_child(&[(10, 60)], None);
    pol.classes[0].police = Some(PoliceSpec::cir(64_000));
    assert!(matches!(
        e.attach_vpn_sip(1, 1000, Some(pol), 0),
        Err(EgressError::Spec(SpecError::NotAllowedInVpnSip(
            _,
            "police"
        )))
    ));
    // A priority rate above a small negotiated bandwidth oversubscribes: the session fails.
    let mut llq = PolicySpec::new("LLQ");
    llq.classes.push(class(
        "VOICE",
        Match::Dscp(vec![Dscp::EF]),
        Queueing::Priority {
            rate: Some(Rate::Kbps(128)),
            burst_bytes: None,
        },
    ));
    assert!(matches!(
        e.attach_vpn_sip(1, 64, Some(llq.clone()), 0),
        Err(EgressError::Spec(SpecError::Oversubscribed(..)))
    ));
    assert!(!e.is_attached());
    e.attach_vpn_sip(1, 1000, Some(llq), 0).unwrap();
    assert!(e.is_vpn_sip());
}

//! The QoS per-packet path allocates nothing: `Egress::offer` / `Scheduler::enqueue` (including
//! policer, marking, LLQ conditional policer and tail drops) and `dequeue` run under a counting
//! global allocator. One test in this binary, so the only other thread is libtest's idle main
//! thread.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use lifeline_dataplane::qos::{
    ClassSpec, Classifier, Dscp, Egress, Match, Offer, Packet, PoliceSpec, PolicySpec, Queueing,
    Rate,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn packet(len: usize, dscp: Dscp) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[1] = dscp.0 << 2;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p
}

#[test]
fn offer_enqueue_dequeue_and_drops_allocate_nothing() {
    let cls = |name: &str, d: Dscp, q: Queueing| {
        let mut c = ClassSpec::new(
            name,
            Classifier {
                match_any: false,
                matches: vec![Match::ProtocolIp, Match::Dscp(vec![d])],
            },
        );
        c.queueing = q;
        c
    };
    let mut voice = cls(
        "VOICE",
        Dscp::EF,
        Queueing::Priority {
            rate: Some(Rate::Percent(20)),
            burst_bytes: None,
        },
    );
    voice.set_dscp = Some(Dscp::EF);
    let mut data = cls("DATA", Dscp::AF21, Queueing::Bandwidth(Rate::Percent(30)));
    data.police = Some(PoliceSpec::cir(100_000));
    data.queue_limit = Some(8);
    let child = PolicySpec {
        name: "CHILD".into(),
        classes: vec![
            voice,
            cls("VIDEO", Dscp::AF41, Queueing::Bandwidth(Rate::Percent(40))),
            data,
        ],
    };
    // A static hierarchical policy (the VPN-SIP parent shape with a child that also polices and
    // marks, which a VPN-SIP child may not), so every per-packet feature is exercised.
    let mut e = Egress::new();
    e.attach_static(&PolicySpec::vpn_sip(1, 512, Some(child)), None)
        .unwrap();
    e.scheduler_mut().unwrap().set_overhead(60);

    let dscps = [Dscp::EF, Dscp::AF41, Dscp::AF21, Dscp::CS0];
    // A pool of buffers, recycled like a driver would.
    let mut pool: Vec<Vec<u8>> = (0..256)
        .map(|i| packet(200 + i % 1200, dscps[i % 4]))
        .collect();
    let mut now = Instant::now();
    let (mut sent, mut dropped) = (0u32, 0u32);

    let mut step = |i: usize, now: &mut Instant, sent: &mut u32, dropped: &mut u32| {
        // Offered at about twice the shaped rate, so queues fill and tail drops happen.
        *now += Duration::from_micros(1500);
        if let Some(buf) = pool.pop() {
            let len = buf.len();
            match e.offer(*now, Packet::new(buf, 0..len)) {
                Offer::Queued => {}
                Offer::Send(p) => pool.push(p.into_parts().0),
                Offer::Dropped(d) => {
                    *dropped += 1;
                    pool.push(d.packet.into_parts().0);
                }
            }
        }
        if i.is_multiple_of(2) {
            while let Some(p) = e.dequeue(*now) {
                *sent += 1;
                pool.push(p.into_parts().0);
            }
        }
    };
    // Warm up, then let libtest's main thread finish its own bookkeeping (it allocates while
    // printing the test name, concurrently with the start of the test).
    for i in 0..2000 {
        step(i, &mut now, &mut sent, &mut dropped);
    }
    std::thread::sleep(Duration::from_millis(200));
    let region = Region::new(GLOBAL);
    for i in 0..20_000usize {
        step(i, &mut now, &mut sent, &mut dropped);
    }
    let stats = region.change();
    assert!(
        sent > 1000 && dropped > 100,
        "sent {sent} dropped {dropped}"
    );
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "QoS per-packet path allocated: {stats:?}"
    );
}

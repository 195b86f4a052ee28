//! Scale benchmark: N IP SLA icmp-echo operations (frequency 1 s, all answered) each followed by a track
//! object, driven in virtual time. One iteration = one full round: `handle_timeout` starts N probes, every
//! probe is answered, every result is fed to the tracker. Throughput is reported in probes (elements).
//!
//! Memory per operation is printed once per N from the cores' capacity-based `heap_bytes()` accounting.
//!
//! Run: `cargo bench -p lifeline-monitors --bench scale -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lifeline_monitors::icmp::EchoRepr;
use lifeline_monitors::sla::{Schedule, SlaEngine, SlaOperation, SlaSource};
use lifeline_monitors::track::{TrackKind, TrackObject, Tracker};
use lifeline_monitors::{SlaId, TrackId};

struct World {
    now: Instant,
    sla: SlaEngine,
    tracker: Tracker,
}

fn world(n: u32) -> World {
    let now = Instant::now();
    let mut sla = SlaEngine::new(0xdead_beef, 1);
    let mut tracker = Tracker::new();
    for i in 0..n {
        let dest = Ipv4Addr::from(0x0a00_0000 + i);
        let op = SlaOperation {
            source: SlaSource::Interface("GigabitEthernet0/0/0".into()),
            threshold: Duration::from_millis(500),
            timeout: Duration::from_millis(500),
            frequency: Duration::from_secs(1),
            schedule: Schedule::forever_now(),
            ..SlaOperation::icmp_echo(SlaId(i), dest)
        };
        sla.add(now, op).unwrap();
        let obj = TrackObject {
            delay_down: Some(Duration::from_secs(5)),
            ..TrackObject::new(TrackId(i), TrackKind::SlaReachability(SlaId(i)))
        };
        tracker.add(now, obj).unwrap();
    }
    World { now, sla, tracker }
}

/// One round with the engine's direct reply path (the driver already knows op id and sequence number).
fn round_direct(w: &mut World) -> usize {
    let now = w.now;
    w.sla.handle_timeout(now);
    let rtt = now + Duration::from_millis(3);
    let mut n = 0;
    while let Some(p) = w.sla.poll_probe() {
        n += 1;
        w.sla.handle_reply_for(rtt, p.op_id, p.seq, p.dest);
    }
    while let Some(ev) = w.sla.poll_event() {
        w.tracker.handle_sla_event(rtt, &ev);
    }
    w.tracker.handle_timeout(rtt);
    while w.tracker.poll_event().is_some() {}
    w.now += Duration::from_secs(1);
    n
}

/// One round through the ICMP codec: parse the request, emit the reply bytes, parse them, match the token.
fn round_codec(w: &mut World, buf: &mut [u8]) -> usize {
    let now = w.now;
    w.sla.handle_timeout(now);
    let rtt = now + Duration::from_millis(3);
    let mut n = 0;
    while let Some(p) = w.sla.poll_probe() {
        n += 1;
        let req = EchoRepr::parse_bytes(&p.payload).unwrap();
        let len = req.reply().emit(buf).unwrap();
        let reply = EchoRepr::parse_bytes(&buf[..len]).unwrap();
        w.sla.handle_reply(rtt, p.dest, &reply);
    }
    while let Some(ev) = w.sla.poll_event() {
        w.tracker.handle_sla_event(rtt, &ev);
    }
    w.tracker.handle_timeout(rtt);
    while w.tracker.poll_event().is_some() {}
    w.now += Duration::from_secs(1);
    n
}

fn scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("sla_round");
    for n in [1_000u32, 100_000] {
        let mut w = world(n);
        // Warm the queues to steady-state capacity, then report memory.
        round_direct(&mut w);
        let sla_b = w.sla.heap_bytes();
        let trk_b = w.tracker.heap_bytes();
        eprintln!(
            "memory n={n}: sla {sla_b} B ({} B/op), tracker {trk_b} B ({} B/object)",
            sla_b / n as usize,
            trk_b / n as usize
        );
        g.throughput(Throughput::Elements(u64::from(n)));
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("direct", n), &n, |b, _| {
            b.iter(|| black_box(round_direct(&mut w)))
        });
        let mut buf = vec![0u8; 2048];
        g.bench_with_input(BenchmarkId::new("codec", n), &n, |b, _| {
            b.iter(|| black_box(round_codec(&mut w, &mut buf)))
        });
    }
    g.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);

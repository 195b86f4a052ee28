//! IKEv1 main mode + quick mode setups per second as responder, in process, PSK.
//!
//! `cargo bench -p lifeline-ike --bench v1_setup -- --warm-up-time 1 --measurement-time 5`
//!
//! Each iteration is one full setup (MM1-MM6 with the DH of the policy's group and the PSK hashes, QM1-QM3
//! with KEYMAT for one IPsec SA pair, no PFS) followed by the initiator's DELETE, which keeps both endpoints
//! empty. Group `responder/*` times only the responder's calls (`handle_input` of every message it
//! receives, and its output): the responder's cost of one setup, i.e. the setup rate one core sustains as
//! responder. Group `both_ends/*` times the whole exchange, both ends on one core.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lifeline_ike::v1::{Config, Endpoint, PresharedKey};
use lifeline_ike::{DhGroup, Event, Rng};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

struct XorShift(u64);
impl Rng for XorShift {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

fn endpoint(seed: u64, group: u16, pfs: Option<DhGroup>) -> Endpoint {
    // The seeds' wildcard key (`crypto isakmp key K address 0.0.0.0 0.0.0.0`).
    let mut c = Config::psk(PresharedKey::new(
        b"bench-psk",
        Ipv4Addr::UNSPECIFIED,
        Some(Ipv4Addr::UNSPECIFIED),
    ));
    c.policies[0].group = group;
    c.pfs = pfs;
    Endpoint::new(c, Box::new(XorShift(seed)))
}

/// One setup and its DELETE; returns the time spent in the responder and the IPsec SAs it established.
fn setup(a: &mut Endpoint, b: &mut Endpoint, now: Instant) -> (Duration, usize) {
    let (pa, pb): (SocketAddr, SocketAddr) = (
        "10.0.0.1:500".parse().unwrap(),
        "192.0.2.2:500".parse().unwrap(),
    );
    let id = a.initiate(now, pa, pb).unwrap();
    let mut in_b = Duration::ZERO;
    let mut children = 0;
    let mut deleted = false;
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            let t0 = Instant::now();
            b.handle_input(now, t.remote, pa, &t.payload);
            while let Some(e) = b.poll_event() {
                children += usize::from(matches!(e, Event::ChildSaEstablished { .. }));
            }
            in_b += t0.elapsed();
        }
        let t0 = Instant::now();
        let out: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
        in_b += t0.elapsed();
        for t in out {
            moved = true;
            a.handle_input(now, t.remote, pb, &t.payload);
        }
        let mut a_child = false;
        while let Some(e) = a.poll_event() {
            a_child |= matches!(e, Event::ChildSaEstablished { .. });
        }
        if a_child && !deleted {
            // Quick mode done on the initiator: QM3 is already queued; delete right after it.
            deleted = true;
            while let Some(t) = a.poll_transmit() {
                let t0 = Instant::now();
                b.handle_input(now, t.remote, pa, &t.payload);
                while let Some(e) = b.poll_event() {
                    children += usize::from(matches!(e, Event::ChildSaEstablished { .. }));
                }
                in_b += t0.elapsed();
            }
            a.delete_ike_sa(now, id).unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    debug_assert!(a.snapshot(now).is_empty() && b.snapshot(now).is_empty());
    assert!(
        b.snapshot(now).is_empty(),
        "the DELETE emptied the responder"
    );
    (in_b, children)
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("group14_modp2048", 14, None),
        ("group19_ecp256", 19, None),
        ("group19_ecp256_pfs19", 19, Some(DhGroup::Ecp256)),
    ];
    let mut g = c.benchmark_group("ikev1_main_quick_responder");
    g.throughput(Throughput::Elements(1));
    for (name, grp, pfs) in cases {
        let mut a = endpoint(1, grp, pfs);
        let mut b = endpoint(2, grp, pfs);
        let now = Instant::now();
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (d, n) = setup(&mut a, &mut b, now);
                    assert_eq!(n, 1, "the responder established one IPsec SA pair");
                    total += d;
                }
                total
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("ikev1_main_quick_both_ends");
    g.throughput(Throughput::Elements(1));
    for (name, grp, pfs) in cases {
        let mut a = endpoint(1, grp, pfs);
        let mut b = endpoint(2, grp, pfs);
        let now = Instant::now();
        g.bench_function(name, |bench| bench.iter(|| setup(&mut a, &mut b, now).1));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

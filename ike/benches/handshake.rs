//! Full IKE_SA_INIT + IKE_AUTH handshakes (with the first CHILD_SA) per second, in process, PSK.
//!
//! `cargo bench -p lifeline-ike --bench handshake -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lifeline_ike::*;
use std::net::SocketAddr;
use std::time::Instant;

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

const PSK: &[u8] = b"bench-psk";

fn endpoint(seed: u64, local: &str, remote: &str, g: DhGroup) -> Endpoint {
    let mut e = Endpoint::new(Box::new(XorShift(seed)));
    let mut p = Profile::psk(
        "P",
        Identity::key_id(local),
        Keyring::default().with(Some(Identity::key_id(remote)), PSK),
    );
    p.force_encap = true;
    p.vpn_sip = true;
    p.ike_proposals = vec![IkeProposal {
        dh: vec![g],
        ..IkeProposal::ios_default()
    }];
    e.add_profile(p);
    e.expect_peer(Identity::key_id(remote), Fingerprint::of_psk(PSK));
    e
}

fn shuttle(
    a: &mut Endpoint,
    b: &mut Endpoint,
    aa: SocketAddr,
    ba: SocketAddr,
    now: Instant,
) -> usize {
    let mut children = 0;
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            b.handle_input(now, ba, aa, &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_input(now, aa, ba, &t.payload);
        }
        while let Some(e) = a.poll_event() {
            children += usize::from(matches!(e, Event::ChildSaEstablished { .. }));
        }
        while let Some(e) = b.poll_event() {
            children += usize::from(matches!(e, Event::ChildSaEstablished { .. }));
        }
        if !moved {
            return children;
        }
    }
}

/// One handshake (4 messages) plus the DELETE exchange (2 small messages) that keeps the endpoints empty.
fn handshake(a: &mut Endpoint, b: &mut Endpoint, now: Instant) -> usize {
    let (aa, ba): (SocketAddr, SocketAddr) = (
        "10.0.0.1:4500".parse().unwrap(),
        "10.0.0.2:4500".parse().unwrap(),
    );
    let id = a
        .initiate(
            now,
            InitiateParams {
                local: aa,
                remote: ba,
                profile: "P".into(),
                remote_id: Some(Identity::key_id("2")),
                expected_fingerprint: Some(Fingerprint::of_psk(PSK)),
            },
        )
        .unwrap();
    let children = shuttle(a, b, aa, ba, now);
    assert_eq!(children, 2);
    a.delete_ike_sa(now, id).unwrap();
    shuttle(a, b, aa, ba, now);
    debug_assert!(a.snapshot(now).ike_sas.is_empty() && b.snapshot(now).ike_sas.is_empty());
    children
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ike_handshake_psk");
    g.throughput(Throughput::Elements(1));
    for (name, grp) in [
        ("group19_ecp256", DhGroup::Ecp256),
        ("group31_x25519", DhGroup::Curve25519),
        ("group14_modp2048", DhGroup::Modp2048),
    ] {
        let mut a = endpoint(1, "1", "2", grp);
        let mut b = endpoint(2, "2", "1", grp);
        let now = Instant::now();
        g.bench_function(name, |bench| bench.iter(|| handshake(&mut a, &mut b, now)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

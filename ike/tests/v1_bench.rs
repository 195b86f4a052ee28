//! Main mode + quick mode setups per second, both ends in one process (no I/O).
//!
//! Ignored by default (a timing, not a check). Run in release:
//! `cargo test --release -p lifeline-ike --test v1_bench -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use lifeline_ike::v1::*;
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

/// One full setup (MM1-MM6, QM1-QM3) between fresh endpoints; returns the children established.
fn setup(group: u16, pfs: Option<DhGroup>, seed: u64) -> usize {
    let mk = || {
        let mut c = Config::psk(PresharedKey::new(b"k", Ipv4Addr::UNSPECIFIED, None));
        c.policies[0].group = group;
        c.pfs = pfs;
        c
    };
    let mut a = Endpoint::new(mk(), Box::new(XorShift(seed)));
    let mut b = Endpoint::new(mk(), Box::new(XorShift(seed ^ 0x5555_aaaa_5555_aaaa)));
    let (pa, pb): (SocketAddr, SocketAddr) = (
        "10.0.0.1:500".parse().unwrap(),
        "192.0.2.2:500".parse().unwrap(),
    );
    let now = Instant::now();
    a.initiate(now, pa, pb).unwrap();
    let mut n = 0;
    loop {
        let mut any = false;
        while let Some(t) = a.poll_transmit() {
            any = true;
            b.handle_input(now, t.remote, pa, &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            any = true;
            a.handle_input(now, t.remote, pb, &t.payload);
        }
        if !any {
            break;
        }
    }
    while let Some(e) = a.poll_event() {
        n += usize::from(matches!(e, Event::ChildSaEstablished { .. }));
    }
    n
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn setups_per_second() {
    for (name, group, pfs) in [
        ("group 14, no PFS", 14, None),
        ("group 19, no PFS", 19, None),
        ("group 19, PFS group 19", 19, Some(DhGroup::Ecp256)),
    ] {
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            assert_eq!(setup(group, pfs, n + 1), 1);
            n += 1;
        }
        let s = n as f64 / start.elapsed().as_secs_f64();
        println!("IKEv1 main+quick mode, {name}: {s:.1} setups/s (both ends on one core)");
    }
}

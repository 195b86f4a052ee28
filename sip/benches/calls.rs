//! Calls set up and torn down per second through the built-in registrar/proxy, in process
//! (two user agents + registrar on the virtual network; every datagram is serialised and
//! parsed). One iteration = INVITE/100/180/200/ACK + BYE/200 through the proxy.
//!
//! cargo bench -p lifeline-sip --bench calls -- --warm-up-time 1 --measurement-time 3
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lifeline_sip::sim::Network;
use lifeline_sip::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn setup() -> Network {
    let mut rc = RegistrarConfig::new("lifeline.test", addr("10.0.0.1:5060"));
    rc.users = Some(vec![
        ("1001".into(), Secret::new("s1")),
        ("1002".into(), Secret::new("s2")),
    ]);
    let reg = Registrar::new(rc, Box::new(SeededRandom::new(9)));
    let mk = |n: &str, c: &str, p: &str, seed| {
        let mut cfg = UaConfig::new(n, "lifeline.test", addr("10.0.0.1:5060"), addr(c));
        cfg.credentials = Some((n.into(), Secret::new(p)));
        UserAgent::new(cfg, Box::new(SeededRandom::new(seed)))
    };
    let mut n = Network::new(
        Instant::now(),
        reg,
        vec![
            mk("1001", "10.0.0.2:5060", "s1", 1),
            mk("1002", "10.0.0.3:5060", "s2", 2),
        ],
    );
    n.keep_log = false;
    let now = n.now;
    for u in n.uas.iter_mut() {
        u.register(now);
    }
    n.flush();
    n.take_events();
    n
}

fn one_call(n: &mut Network, offer: &IkeSdp) {
    let now = n.now;
    let a = n.uas[0].invite(now, "1002", offer.clone());
    n.flush();
    let mut incoming = None;
    for (_, e) in n.take_events() {
        if let Event::IncomingCall { call, offer, .. } = e {
            incoming = Some((call, offer));
        }
    }
    let (b, got) = incoming.unwrap();
    let (ans, _) = answer_for(
        &got,
        Ipv4Addr::new(10, 0, 0, 3),
        50002,
        Fingerprint::new(HashFunc::Sha1, vec![2; 20]),
        64,
        true,
    )
    .unwrap();
    n.uas[1].answer(now, b, &ans).unwrap();
    n.flush();
    n.uas[0].hangup(now, a).unwrap();
    n.flush();
    let ev = n.take_events();
    assert!(ev.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            by: EndedBy::Remote,
            ..
        }
    )));
    // let transaction timers (J, K) expire so state stays bounded
    n.run_for(Duration::from_secs(40));
}

fn calls(c: &mut Criterion) {
    let offer = IkeSdp {
        addr: Ipv4Addr::new(10, 0, 0, 2),
        port: 50001,
        transport: IkeTransport::UdpEncap,
        setup: Setup::Active,
        fingerprint: Fingerprint::new(HashFunc::Sha1, vec![1; 20]),
        bandwidth_kbps: 512,
    };
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_setup_teardown_via_registrar", |b| {
        let mut n = setup();
        b.iter(|| one_call(&mut n, &offer));
    });
    g.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);

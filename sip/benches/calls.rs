//! Calls set up and torn down per second through the built-in registrar/proxy, in process
//! (two user agents + registrar on the virtual network; every datagram is serialised and
//! parsed). One iteration = INVITE/100/180/200/ACK + BYE/200 through the proxy.
//!
//! cargo bench -p lifeline-sip --bench calls -- --warm-up-time 1 --measurement-time 3
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
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

/// The same call through real UDP sockets on loopback (three sockets, one thread, busy
/// polling): adds the kernel's UDP send/receive to the codec and state machines. The clock is
/// virtual so transaction timers can be expired between calls.
struct Loopback {
    reg: Registrar,
    reg_sock: UdpSocket,
    uas: Vec<(UserAgent, UdpSocket)>,
    now: Instant,
    buf: Vec<u8>,
}

impl Loopback {
    fn new() -> Loopback {
        let bind = || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let reg_sock = bind();
        let reg_addr = reg_sock.local_addr().unwrap();
        let rc = RegistrarConfig::new("lifeline.test", reg_addr);
        let reg = Registrar::new(rc, Box::new(SeededRandom::new(9)));
        let mut uas = Vec::new();
        for (i, n) in ["1001", "1002"].into_iter().enumerate() {
            let s = bind();
            let cfg = UaConfig::new(n, "lifeline.test", reg_addr, s.local_addr().unwrap());
            uas.push((
                UserAgent::new(cfg, Box::new(SeededRandom::new(i as u64))),
                s,
            ));
        }
        let mut l = Loopback {
            reg,
            reg_sock,
            uas,
            now: Instant::now(),
            buf: vec![0; 65_535],
        };
        let now = l.now;
        for (u, _) in l.uas.iter_mut() {
            u.register(now);
        }
        l.pump(|e| {
            e.iter()
                .filter(|e| matches!(e, Event::Registered { .. }))
                .count()
                == 2
        });
        l
    }

    fn pump(&mut self, mut done: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            while let Some(t) = self.reg.poll_transmit() {
                self.reg_sock.send_to(&t.payload, t.to).unwrap();
            }
            for (u, s) in self.uas.iter_mut() {
                while let Some(t) = u.poll_transmit() {
                    s.send_to(&t.payload, t.to).unwrap();
                }
            }
            while let Ok((n, from)) = self.reg_sock.recv_from(&mut self.buf) {
                self.reg.handle_input(self.now, from, &self.buf[..n]);
            }
            for (u, s) in self.uas.iter_mut() {
                while let Ok((n, from)) = s.recv_from(&mut self.buf) {
                    u.handle_input(self.now, from, &self.buf[..n]);
                }
                while let Some(e) = u.poll_event() {
                    events.push(e);
                }
            }
            if done(&events) {
                return events;
            }
        }
    }

    fn call(&mut self, offer: &IkeSdp) {
        let now = self.now;
        let a = self.uas[0].0.invite(now, "1002", offer.clone());
        let ev = self.pump(|e| e.iter().any(|e| matches!(e, Event::IncomingCall { .. })));
        let (call, got) = ev
            .into_iter()
            .find_map(|e| match e {
                Event::IncomingCall { call, offer, .. } => Some((call, offer)),
                _ => None,
            })
            .unwrap();
        let (ans, _) = answer_for(
            &got,
            Ipv4Addr::LOCALHOST,
            50002,
            Fingerprint::new(HashFunc::Sha1, vec![2; 20]),
            64,
            true,
        )
        .unwrap();
        self.uas[1].0.answer(now, call, &ans).unwrap();
        self.pump(|e| e.iter().any(|e| matches!(e, Event::CallConfirmed { .. })));
        self.uas[0].0.hangup(now, a).unwrap();
        self.pump(|e| {
            e.iter().any(|e| {
                matches!(
                    e,
                    Event::CallEnded {
                        by: EndedBy::Remote,
                        ..
                    }
                )
            })
        });
        self.now += Duration::from_secs(40);
        let now = self.now;
        for (u, _) in self.uas.iter_mut() {
            u.handle_timeout(now);
        }
        self.reg.handle_timeout(now);
        // refreshes that fell due are answered before the next call
        self.pump(|_| true);
    }
}

fn calls_loopback(c: &mut Criterion) {
    let offer = IkeSdp {
        addr: Ipv4Addr::LOCALHOST,
        port: 50001,
        transport: IkeTransport::UdpEncap,
        setup: Setup::Active,
        fingerprint: Fingerprint::new(HashFunc::Sha1, vec![1; 20]),
        bandwidth_kbps: 512,
    };
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_setup_teardown_udp_loopback", |b| {
        let mut l = Loopback::new();
        b.iter(|| l.call(&offer));
    });
    g.finish();
}

criterion_group!(benches, calls, calls_loopback);
criterion_main!(benches);

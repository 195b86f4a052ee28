//! IKEv1 in-process simulation: two endpoints back to back in virtual time, optionally through a NAT.
#![allow(clippy::unwrap_used)]
// Tests read the clock once for a base `Instant`; everything after is virtual time.
#![allow(clippy::disallowed_methods)]

use lifeline_ike::v1::wire::{self, Body, ExchangeType, Message, NotifyType, Payload};
use lifeline_ike::v1::*;
use lifeline_ike::{AuthFailure, DhGroup, Mode};
use lifeline_ike::{ChildSaKeys, DeleteReason, Event, IkeSaId, Rng};
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

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

type DropFn = Box<dyn FnMut(bool, &[u8]) -> bool>;

/// The NAT's public address for `a` (port p maps to 40000 + p % 10000).
const NAT_IP: &str = "198.51.100.7";

struct Pair {
    a: Endpoint,
    b: Endpoint,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
    ev_a: Vec<Event>,
    ev_b: Vec<Event>,
    drop: DropFn,
    nat: bool,
    seen_a: Vec<Vec<u8>>,
}

fn cfg(key: &[u8]) -> Config {
    Config::psk(PresharedKey::new(
        key,
        Ipv4Addr::UNSPECIFIED,
        Some(Ipv4Addr::UNSPECIFIED),
    ))
}

impl Pair {
    fn new(ca: Config, cb: Config) -> Self {
        Pair {
            a: Endpoint::new(ca, Box::new(XorShift(0x1234_5678_9abc_def1))),
            b: Endpoint::new(cb, Box::new(XorShift(0x0fed_cba9_8765_4321))),
            a_addr: addr("10.0.0.1:500"),
            b_addr: addr("192.0.2.2:500"),
            now: Instant::now(),
            ev_a: vec![],
            ev_b: vec![],
            drop: Box::new(|_, _| false),
            nat: false,
            seen_a: vec![],
        }
    }

    fn nat_out(&self, src: SocketAddr) -> SocketAddr {
        if self.nat {
            SocketAddr::new(NAT_IP.parse().unwrap(), 40000 + src.port() % 10000)
        } else {
            src
        }
    }
    fn nat_in(&self, dst: SocketAddr) -> SocketAddr {
        if self.nat && dst.ip() == NAT_IP.parse::<std::net::IpAddr>().unwrap() {
            let p = if dst.port() == 40500 { 500 } else { 4500 };
            SocketAddr::new(self.a_addr.ip(), p)
        } else {
            dst
        }
    }

    /// Delivers until both are quiet.
    fn run(&mut self) {
        for _ in 0..1000 {
            let mut any = false;
            while let Some(t) = self.a.poll_transmit() {
                any = true;
                self.seen_a.push(t.payload.clone());
                if (self.drop)(true, &t.payload) {
                    continue;
                }
                let src = self.nat_out(t.local);
                self.b.handle_input(self.now, t.remote, src, &t.payload);
            }
            while let Some(t) = self.b.poll_transmit() {
                any = true;
                if (self.drop)(false, &t.payload) {
                    continue;
                }
                let dst = self.nat_in(t.remote);
                self.a.handle_input(self.now, dst, t.local, &t.payload);
            }
            while let Some(e) = self.a.poll_event() {
                self.ev_a.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.ev_b.push(e);
            }
            if !any {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Advances virtual time to `until`, firing timers on the way.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            self.run();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = until;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.run();
    }

    fn initiate(&mut self) {
        self.a.initiate(self.now, self.a_addr, self.b_addr).unwrap();
        self.run();
    }
}

fn children(ev: &[Event]) -> Vec<ChildSaKeys> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaEstablished { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect()
}

fn assert_mirrored(a: &ChildSaKeys, b: &ChildSaKeys) {
    assert_eq!(a.spi_in, b.spi_out);
    assert_eq!(a.spi_out, b.spi_in);
    assert_eq!(a.key_in, b.key_out);
    assert_eq!(a.key_out, b.key_in);
    assert_eq!(a.integ_key_in, b.integ_key_out);
    assert_eq!(a.integ_key_out, b.integ_key_in);
    assert_ne!(a.key_in, a.key_out);
    assert_eq!(a.ts_local, b.ts_remote);
    assert_eq!(a.ts_remote, b.ts_local);
    assert_eq!(a.mode, b.mode);
}

fn diagnostics(e: &mut Endpoint) -> Vec<String> {
    std::iter::from_fn(|| e.poll_diagnostic())
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn main_mode_psk_and_quick_mode_establish_any_any_tunnel() {
    let mut p = Pair::new(cfg(b"cisco123"), cfg(b"cisco123"));
    p.initiate();
    assert!(
        matches!(p.ev_a[0], Event::IkeSaEstablished { .. }),
        "{:?}",
        p.ev_a
    );
    assert!(
        matches!(p.ev_b[0], Event::IkeSaEstablished { .. }),
        "{:?}",
        p.ev_b
    );
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    assert_mirrored(&ca[0], &cb[0]);
    assert_eq!(ca[0].mode, Mode::Tunnel);
    assert_eq!(
        ca[0].ts_local,
        vec![lifeline_ike::wire::TrafficSelector::IPV4_ANY]
    );
    assert_eq!(ca[0].lifetime, Duration::from_secs(3600));
    assert_eq!(ca[0].lifetime_kb, 4_608_000);
    assert!(!ca[0].udp_encap);
    let snap = p.a.snapshot(p.now);
    assert_eq!(snap[0].state, "QM_IDLE");
    assert_eq!(snap[0].children.len(), 1);
    let shown = render_isakmp_sa(&p.b.snapshot(p.now));
    assert!(
        shown.contains("192.0.2.2       10.0.0.1        QM_IDLE           1001     ACTIVE"),
        "{shown}"
    );
}

#[test]
fn quick_mode_with_pfs_in_transport_mode_for_gre() {
    let mk = || {
        let mut c = cfg(b"k");
        c.mode = Mode::Transport;
        c.selectors = Selectors::Host { protocol: 47 };
        c.pfs = Some(DhGroup::Ecp256);
        c
    };
    let mut p = Pair::new(mk(), mk());
    p.initiate();
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    assert_mirrored(&ca[0], &cb[0]);
    assert_eq!(ca[0].mode, Mode::Transport);
    assert_eq!(
        ca[0].ts_local,
        vec![lifeline_ike::wire::TrafficSelector::ipv4_host(
            Ipv4Addr::new(10, 0, 0, 1),
            47
        )]
    );
    assert_eq!(
        p.a.snapshot(p.now)[0].children[0].pfs,
        Some(DhGroup::Ecp256)
    );
}

/// One endpoint serving VTIs (set 0: tunnel mode, any/any) and protected GRE (set 1: transport mode, GRE
/// host selectors, its own transform set) at once: each initiation names its set and the responder matches
/// the offer to the set it fits.
fn vti_and_gre() -> Config {
    let mut c = cfg(b"k");
    c.quick_modes.push(lifeline_ike::v1::QuickMode {
        transform_sets: vec![lifeline_ike::config::EspProposal {
            encr: lifeline_ike::EncrAlg::AesCbc256,
            integ: Some(lifeline_ike::IntegAlg::HmacSha256_128),
            esn: false,
        }],
        mode: Mode::Transport,
        pfs: None,
        selectors: Selectors::Host { protocol: 47 },
        ipsec_lifetime: Duration::from_secs(1800),
        ipsec_lifetime_kb: 0,
    });
    c
}

#[test]
fn one_endpoint_keys_vti_and_gre_with_per_initiation_quick_mode_sets() {
    let mut p = Pair::new(vti_and_gre(), vti_and_gre());
    p.a.initiate_with(p.now, p.a_addr, p.b_addr, 1).unwrap();
    p.run();
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    assert_mirrored(&ca[0], &cb[0]);
    for c in [&ca[0], &cb[0]] {
        assert_eq!(c.mode, Mode::Transport);
        assert_eq!(c.encr, lifeline_ike::EncrAlg::AesCbc256);
        assert_eq!(c.lifetime, Duration::from_secs(1800));
    }
    assert_eq!(
        ca[0].ts_local,
        vec![lifeline_ike::wire::TrafficSelector::ipv4_host(
            Ipv4Addr::new(10, 0, 0, 1),
            47
        )]
    );
    // Set 0 from the same endpoints: tunnel mode, any/any, the default transform set.
    let mut p = Pair::new(vti_and_gre(), vti_and_gre());
    p.initiate();
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    assert_eq!((ca[0].mode, cb[0].mode), (Mode::Tunnel, Mode::Tunnel));
    assert_eq!(ca[0].encr, lifeline_ike::EncrAlg::AesCbc128);
    // A set that does not exist is an error, not a silent fallback.
    assert!(p.a.initiate_with(p.now, p.a_addr, p.b_addr, 2).is_err());
    // A responder without the GRE set refuses the GRE offer.
    let mut p = Pair::new(vti_and_gre(), cfg(b"k"));
    p.a.initiate_with(p.now, p.a_addr, p.b_addr, 1).unwrap();
    p.run();
    assert!(children(&p.ev_b).is_empty());
    // Tunnel mode with GRE host selectors is refused (no fallback from `mode transport` there).
    let mut tunnel_gre = cfg(b"k");
    tunnel_gre.selectors = Selectors::Host { protocol: 47 };
    tunnel_gre.transform_sets = vti_and_gre().quick_modes[0].transform_sets.clone();
    let mut p = Pair::new(tunnel_gre, vti_and_gre());
    p.initiate();
    assert!(children(&p.ev_b).is_empty());
    assert!(children(&p.ev_a).is_empty());
}

#[test]
fn responder_installs_on_the_initiators_first_esp_when_quick_mode_3_is_late() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    // The initiator's fifth message is quick mode 3 (main mode 1, 3, 5, quick mode 1, 3): it is late.
    let mut sent = 0;
    p.drop = Box::new(move |from_a, _| {
        if from_a {
            sent += 1;
        }
        from_a && sent == 5
    });
    p.initiate();
    let ca = children(&p.ev_a);
    assert_eq!(ca.len(), 1);
    assert!(children(&p.ev_b).is_empty());
    // ESP on some other SPI changes nothing; on the SA's SPI the responder installs it.
    assert!(!p.b.inbound_esp(p.now, ca[0].spi_out ^ 1));
    assert!(p.b.inbound_esp(p.now, ca[0].spi_out));
    p.run();
    let cb = children(&p.ev_b);
    assert_eq!(cb.len(), 1);
    assert_mirrored(&ca[0], &cb[0]);
    // Only once.
    assert!(!p.b.inbound_esp(p.now, ca[0].spi_out));
}

#[test]
fn pfs_mismatch_is_refused_with_no_proposal_chosen() {
    let mut ca = cfg(b"k");
    ca.pfs = None;
    let mut cb = cfg(b"k");
    cb.pfs = Some(DhGroup::Modp2048);
    let mut p = Pair::new(ca, cb);
    p.initiate();
    assert!(children(&p.ev_a).is_empty());
    let db = diagnostics(&mut p.b);
    assert!(
        db.iter().any(|d| d.contains("no acceptable proposal")),
        "{db:?}"
    );
    let da = diagnostics(&mut p.a);
    assert!(
        da.iter().any(|d| d.contains("NO_PROPOSAL_CHOSEN")),
        "{da:?}"
    );
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let mut p = Pair::new(cfg(b"right"), cfg(b"wrong"));
    p.initiate();
    assert!(
        p.ev_b.iter().any(|e| matches!(
            e,
            Event::AuthFailed {
                reason: AuthFailure::BadPsk,
                ..
            }
        )),
        "{:?}",
        p.ev_b
    );
    assert!(
        p.ev_a.iter().any(|e| matches!(
            e,
            Event::IkeSaDeleted {
                reason: DeleteReason::AuthFailed(AuthFailure::PeerRejected),
                ..
            }
        )),
        "{:?}",
        p.ev_a
    );
    assert!(
        diagnostics(&mut p.b)
            .iter()
            .any(|d| d.contains("pre-shared key mismatch"))
    );
    assert!(p.a.snapshot(p.now).is_empty() && p.b.snapshot(p.now).is_empty());
}

#[test]
fn aggressive_mode_is_refused_with_invalid_exchange_type_and_a_log_line() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    let am = Message {
        cookie_i: 0x1111,
        cookie_r: 0,
        exchange: ExchangeType::AGGRESSIVE,
        flags: 0,
        message_id: 0,
        body: Body::Plain(vec![Payload::Nonce(vec![1; 16])]),
    }
    .emit();
    p.b.handle_input(p.now, p.b_addr, p.a_addr, &am);
    let t = p.b.poll_transmit().unwrap();
    let m = Message::parse(&t.payload).unwrap();
    assert_eq!(m.exchange, ExchangeType::INFORMATIONAL);
    assert!(
        matches!(&m.payloads()[0], Payload::Notify(n) if n.kind == NotifyType::INVALID_EXCHANGE_TYPE)
    );
    let d = diagnostics(&mut p.b);
    assert!(
        d[0].contains("aggressive mode refused") && d[0].contains("10.0.0.1:500"),
        "{d:?}"
    );
    assert!(p.b.snapshot(p.now).is_empty());
}

#[test]
fn legacy_policies_are_refused_by_name_never_silently() {
    // The seeds' 12.4 hub: only `authentication pre-share`, so DES / SHA / group 1 defaults.
    let mut c = cfg(b"k");
    c.policies = vec![IsakmpPolicy {
        authentication: AuthMethod::PreShare,
        ..IsakmpPolicy::ios_default(10)
    }];
    let mut e = Endpoint::new(c, Box::new(XorShift(1)));
    let d = diagnostics(&mut e);
    assert!(
        d[0].contains("policy 10") && d[0].contains("encryption des") && d[0].contains("aes 256"),
        "{d:?}"
    );
    assert_eq!(
        e.initiate(Instant::now(), addr("10.0.0.1:500"), addr("192.0.2.2:500")),
        Err(CommandError::NoUsablePolicy)
    );

    // A peer offering only legacy transforms gets NO-PROPOSAL-CHOSEN and the log names them.
    let mut b = Endpoint::new(cfg(b"k"), Box::new(XorShift(2)));
    let des = wire::Transform {
        number: 1,
        id: 1,
        attributes: vec![
            wire::Attribute::Basic(1, 1),
            wire::Attribute::Basic(2, 1),
            wire::Attribute::Basic(3, 1),
            wire::Attribute::Basic(4, 2),
        ],
    };
    let mm1 = Message {
        cookie_i: 0x2222,
        cookie_r: 0,
        exchange: ExchangeType::IDENTITY_PROTECTION,
        flags: 0,
        message_id: 0,
        body: Body::Plain(vec![Payload::Sa(wire::SaPayload {
            doi: wire::DOI_IPSEC,
            situation: 1,
            proposals: vec![wire::Proposal {
                number: 1,
                protocol: wire::ProtocolId::ISAKMP,
                spi: vec![],
                transforms: vec![des],
            }],
        })]),
    }
    .emit();
    b.handle_input(
        Instant::now(),
        addr("192.0.2.2:500"),
        addr("10.0.0.1:500"),
        &mm1,
    );
    let m = Message::parse(&b.poll_transmit().unwrap().payload).unwrap();
    assert!(
        matches!(&m.payloads()[0], Payload::Notify(n) if n.kind == NotifyType::NO_PROPOSAL_CHOSEN)
    );
    let d = diagnostics(&mut b);
    assert!(
        d.iter()
            .any(|l| l.contains("encryption des") && l.contains("legacy")),
        "{d:?}"
    );
}

#[test]
fn nat_is_detected_ports_float_to_4500_and_esp_is_udp_encapsulated() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.nat = true;
    p.initiate();
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{:?} {:?}", p.ev_a, p.ev_b);
    assert!(ca[0].udp_encap && cb[0].udp_encap);
    assert_eq!(ca[0].local, addr("10.0.0.1:4500"));
    assert_eq!(ca[0].remote, addr("192.0.2.2:4500"));
    assert_eq!(cb[0].remote, addr("198.51.100.7:44500"));
    assert!(p.a.snapshot(p.now)[0].capabilities.contains('N'));
    // The NATed side sends RFC 3948 keepalives.
    p.seen_a.clear();
    p.advance(Duration::from_secs(21));
    assert!(p.seen_a.iter().any(|d| d == &[0xff]));
}

/// `Endpoint::peer_moved` (the appliance calls it when authenticated ESP in UDP came from a new port of the
/// peer): the ISAKMP SA follows a NATed peer to its new port, and only then - not without NAT-T, not to
/// another address, not an unknown handle.
#[test]
fn isakmp_sa_follows_a_natted_peers_new_port_only() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.initiate();
    let id = p.b.snapshot(p.now)[0].id;
    assert_eq!(
        p.b.peer_moved(id, addr("10.0.0.1:4501")),
        Ok(false),
        "no NAT-T"
    );
    assert_eq!(p.b.remote(id), Some(addr("10.0.0.1:500")));

    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.nat = true;
    p.initiate();
    let id = p.b.snapshot(p.now)[0].id;
    assert_eq!(p.b.remote(id), Some(addr("198.51.100.7:44500")));
    assert_eq!(p.b.peer_moved(id, addr("198.51.100.7:44500")), Ok(false));
    assert_eq!(p.b.peer_moved(id, addr("203.0.113.9:45000")), Ok(false));
    assert_eq!(p.b.peer_moved(id, addr("198.51.100.7:45000")), Ok(true));
    assert_eq!(p.b.remote(id), Some(addr("198.51.100.7:45000")));
    assert!(
        p.b.peer_moved(IkeSaId(999), addr("198.51.100.7:45001"))
            .is_err()
    );
    // Its messages go to the new port (the test NAT maps every port but 40500 back to 4500).
    p.b.dpd_probe(p.now, id).unwrap();
    let t = p.b.poll_transmit().expect("R-U-THERE");
    assert_eq!(t.remote, addr("198.51.100.7:45000"));
}

#[test]
fn delete_removes_ipsec_and_isakmp_sas_on_both_sides() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.initiate();
    let id = p.a.snapshot(p.now)[0].id;
    p.a.delete_ike_sa(p.now, id).unwrap();
    p.run();
    assert!(
        p.ev_b
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { .. }))
    );
    assert!(p.ev_b.iter().any(|e| matches!(
        e,
        Event::IkeSaDeleted {
            reason: DeleteReason::PeerRequest,
            ..
        }
    )));
    assert!(p.ev_a.iter().any(|e| matches!(
        e,
        Event::IkeSaDeleted {
            reason: DeleteReason::LocalRequest,
            ..
        }
    )));
    assert!(p.b.snapshot(p.now).is_empty());
}

#[test]
fn dpd_is_answered_and_a_dead_peer_is_declared_after_retries() {
    let mk = || {
        let mut c = cfg(b"k");
        c.keepalive = Some(Keepalive {
            interval: Duration::from_secs(10),
            retry: Duration::from_secs(2),
            periodic: true,
        });
        c
    };
    let mut p = Pair::new(mk(), mk());
    p.initiate();
    p.advance(Duration::from_secs(60));
    assert!(
        !p.ev_a
            .iter()
            .any(|e| matches!(e, Event::IkeSaDeleted { .. })),
        "{:?}",
        p.ev_a
    );
    assert_eq!(p.a.snapshot(p.now)[0].capabilities, "D");
    p.drop = Box::new(|_, _| true);
    p.advance(Duration::from_secs(60));
    assert!(
        p.ev_a.iter().any(|e| matches!(
            e,
            Event::IkeSaDeleted {
                reason: DeleteReason::PeerDead,
                ..
            }
        )),
        "{:?}",
        p.ev_a
    );
}

#[test]
fn lost_messages_are_retransmitted_in_main_and_quick_mode() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    // Drop the first copy of every datagram in both directions.
    let mut seen: Vec<Vec<u8>> = vec![];
    p.drop = Box::new(move |_, d| {
        if seen.iter().any(|s| s == d) {
            false
        } else {
            seen.push(d.to_vec());
            true
        }
    });
    p.initiate();
    p.advance(Duration::from_secs(60));
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{:?} {:?}", p.ev_a, p.ev_b);
    assert_mirrored(&ca[0], &cb[0]);
}

#[test]
fn unanswered_main_mode_times_out() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.drop = Box::new(|_, _| true);
    p.initiate();
    p.advance(Duration::from_secs(300));
    assert!(p.ev_a.iter().any(|e| matches!(
        e,
        Event::IkeSaDeleted {
            reason: DeleteReason::NegotiationTimeout,
            ..
        }
    )));
}

#[test]
fn ipsec_sa_is_rekeyed_before_expiry_and_the_old_one_deleted() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.initiate();
    p.advance(Duration::from_secs(3300));
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (2, 2));
    assert_mirrored(&ca[1], &cb[1]);
    assert!(
        !p.ev_a
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { .. }))
    );
    p.advance(Duration::from_secs(400));
    assert!(
        p.ev_a
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if *spi_in == ca[0].spi_in))
    );
    assert!(
        p.ev_b
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if *spi_in == cb[0].spi_in))
    );
    assert_eq!(p.a.snapshot(p.now)[0].children.len(), 1);
}

#[test]
fn initial_contact_from_a_restarted_peer_clears_its_old_sas() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.initiate();
    assert_eq!(p.b.snapshot(p.now).len(), 1);
    // Reboot a (which takes a while): a fresh endpoint with other randomness.
    p.advance(Duration::from_secs(30));
    p.a = Endpoint::new(cfg(b"k"), Box::new(XorShift(99)));
    p.ev_b.clear();
    p.initiate();
    assert_eq!(p.b.snapshot(p.now).len(), 1);
    assert!(p.ev_b.iter().any(|e| matches!(
        e,
        Event::IkeSaDeleted {
            reason: DeleteReason::PeerRequest,
            ..
        }
    )));
}

#[test]
fn simultaneous_main_modes_with_initial_contact_both_reach_quick_mode() {
    // Both ends of a static VTI start main mode at once; each MM5 carries INITIAL-CONTACT (neither has an
    // established SA yet). Neither end may take the other's INITIAL-CONTACT as a reason to drop its own
    // main mode: both initiator SAs survive and each makes an IPsec SA pair (the appliance keeps one).
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.a.initiate(p.now, p.a_addr, p.b_addr).unwrap();
    p.b.initiate(p.now, p.b_addr, p.a_addr).unwrap();
    p.run();
    let deleted = |ev: &[Event]| {
        ev.iter()
            .filter(|e| matches!(e, Event::IkeSaDeleted { .. }))
            .count()
    };
    assert_eq!(deleted(&p.ev_a), 0, "{:?}", p.ev_a);
    assert_eq!(deleted(&p.ev_b), 0, "{:?}", p.ev_b);
    assert!(
        p.a.snapshot(p.now)
            .iter()
            .any(|s| s.initiator && !s.children.is_empty())
    );
    assert!(
        p.b.snapshot(p.now)
            .iter()
            .any(|s| s.initiator && !s.children.is_empty())
    );
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (2, 2), "{ca:?} {cb:?}");
}

#[test]
fn isakmp_sa_is_replaced_before_expiry_and_ipsec_sas_survive() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.initiate();
    let id = p.a.snapshot(p.now)[0].id;
    let cky_before = p.b.snapshot(p.now)[0].id;
    // 90 % of 86400 s (77 760 s, also when an IPsec SA rekeys), and past that old IPsec SA.
    p.advance(Duration::from_secs(78_200));
    let (sa, sb) = (p.a.snapshot(p.now), p.b.snapshot(p.now));
    assert_eq!((sa.len(), sb.len()), (1, 1), "{sa:?} {sb:?}");
    assert_eq!(
        sa[0].id, id,
        "the initiator's handle survives the phase-1 rekey"
    );
    assert_ne!(sb[0].id, cky_before, "the responder sees a new ISAKMP SA");
    assert!(sa[0].remaining > Duration::from_secs(85_000));
    assert_eq!(sa[0].children.len(), 1);
    assert_eq!(sb[0].children.len(), 1);
    // The replaced ISAKMP SA is DELETEd under a handle of its own, never the tunnel's.
    assert!(
        !p.ev_a
            .iter()
            .any(|e| matches!(e, Event::IkeSaDeleted { ike_sa, .. } if *ike_sa == id)),
        "{:?}",
        p.ev_a
    );
    // Quick mode keeps working on the new ISAKMP SA.
    let n = children(&p.ev_a).len();
    p.advance(Duration::from_secs(3_600));
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert!(ca.len() > n);
    assert_mirrored(ca.last().unwrap(), cb.last().unwrap());
}

#[test]
fn show_crypto_isakmp_sa_matches_the_seed_layout() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    p.initiate();
    let mut s = p.b.snapshot(p.now);
    // The blog's hub (seed 003 lines 264-271): two spokes initiated to 192.168.1.3.
    let mut x = s[0].clone();
    s[0].dst = addr("192.168.1.3:500");
    s[0].src = addr("192.168.1.2:500");
    s[0].conn_id = 1002;
    x.dst = addr("192.168.1.3:500");
    x.src = addr("192.168.1.1:500");
    x.conn_id = 1001;
    s.push(x);
    assert_eq!(
        render_isakmp_sa(&s),
        "IPv4 Crypto ISAKMP SA\n\
         dst                    src                   state                     conn-id  status\n\
         192.168.1.3     192.168.1.2     QM_IDLE           1002     ACTIVE\n\
         192.168.1.3     192.168.1.1     QM_IDLE           1001     ACTIVE\n\
         \n\
         IPv6 Crypto ISAKMP SA\n"
    );
}

#[test]
fn on_demand_dpd_probes_only_when_asked() {
    let mk = || {
        let mut c = cfg(b"k");
        c.keepalive = Some(Keepalive {
            interval: Duration::from_secs(10),
            retry: Duration::from_secs(2),
            periodic: false,
        });
        c
    };
    let mut p = Pair::new(mk(), mk());
    p.initiate();
    let id = p.a.snapshot(p.now)[0].id;
    p.seen_a.clear();
    p.advance(Duration::from_secs(120));
    assert!(p.seen_a.is_empty(), "no periodic probes");
    p.a.dpd_probe(p.now, id).unwrap();
    p.advance(Duration::from_secs(30));
    assert_eq!(p.seen_a.len(), 1, "one R-U-THERE, answered");
    assert_eq!(p.a.snapshot(p.now).len(), 1);
    p.drop = Box::new(|_, _| true);
    p.a.dpd_probe(p.now, id).unwrap();
    p.advance(Duration::from_secs(30));
    assert!(p.ev_a.iter().any(|e| matches!(
        e,
        Event::IkeSaDeleted {
            reason: DeleteReason::PeerDead,
            ..
        }
    )));
}

#[test]
fn retransmitted_mm1_is_answered_without_a_second_responder_sa() {
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    // Lose the responder's MM2 once.
    let mut dropped = false;
    p.drop = Box::new(move |a_to_b, _| {
        if !a_to_b && !dropped {
            dropped = true;
            return true;
        }
        false
    });
    p.initiate();
    p.advance(Duration::from_secs(10));
    assert_eq!(p.b.snapshot(p.now).len(), 1);
    assert_eq!(children(&p.ev_b).len(), 1);
}

#[test]
fn endpoint_survives_mutated_and_truncated_datagrams() {
    // Capture a whole setup (both directions), then replay corrupted copies into fresh and
    // established endpoints: nothing may panic, and the established SA must survive.
    let mut p = Pair::new(cfg(b"k"), cfg(b"k"));
    let mut log: Vec<(bool, Vec<u8>)> = vec![];
    let rec = std::rc::Rc::new(std::cell::RefCell::new(vec![]));
    let r2 = rec.clone();
    p.drop = Box::new(move |ab, d| {
        r2.borrow_mut().push((ab, d.to_vec()));
        false
    });
    p.initiate();
    log.extend(rec.borrow().iter().cloned());
    assert!(log.len() >= 9, "MM1-6 + QM1-3");
    let mut rng = XorShift(7);
    let mut fresh = Endpoint::new(cfg(b"k"), Box::new(XorShift(3)));
    for round in 0..3000 {
        let (ab, d) = &log[round % log.len()];
        let mut m = d.clone();
        let mut b = [0u8; 3];
        rng.fill(&mut b);
        match b[0] % 3 {
            0 => {
                let i = b[1] as usize % m.len();
                m[i] ^= b[2] | 1;
            }
            1 => m.truncate(b[1] as usize % m.len()),
            _ => {
                let i = 28 + b[1] as usize % (m.len() - 28).max(1);
                if i < m.len() {
                    m[i] = b[2];
                }
            }
        }
        if *ab {
            p.b.handle_input(p.now, p.b_addr, p.a_addr, &m);
            fresh.handle_input(p.now, p.b_addr, p.a_addr, &m);
        } else {
            p.a.handle_input(p.now, p.a_addr, p.b_addr, &m);
        }
        while p.a.poll_transmit().is_some() {}
        while p.b.poll_transmit().is_some() {}
        while fresh.poll_transmit().is_some() {}
    }
    p.a.handle_timeout(p.now + Duration::from_secs(1));
    assert_eq!(p.a.snapshot(p.now)[0].state, "QM_IDLE");
    assert_eq!(p.b.snapshot(p.now)[0].state, "QM_IDLE");
}

fn rsa_cfg(me: &str, peer: &str, trust_peer: bool) -> Config {
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let rd = |f: &str| std::fs::read(data.join(f)).unwrap();
    let mut c = Config::psk(PresharedKey::new(b"unused", Ipv4Addr::UNSPECIFIED, None));
    c.keys.clear();
    c.policies = vec![IsakmpPolicy {
        priority: 5,
        encryption: PolicyEncryption::Aes(256),
        hash: PolicyHash::Hash(HashAlg::Sha256),
        authentication: AuthMethod::RsaSig,
        group: 14,
        lifetime: Duration::from_secs(86400),
    }];
    let peer_cert = rd(&format!("cert{peer}.der"));
    c.rsa = Some(RsaSig {
        key_pkcs8: lifeline_ike::Secret::new(rd(&format!("key{me}.pk8.der"))),
        cert_der: rd(&format!("cert{me}.der")),
        trusted_certs: if trust_peer {
            vec![lifeline_ike::Fingerprint::of_cert(&peer_cert)]
        } else {
            vec![]
        },
    });
    c
}

#[test]
fn main_mode_with_rsa_signatures_and_pinned_certificates() {
    let mut p = Pair::new(rsa_cfg("1000", "2000", true), rsa_cfg("2000", "1000", true));
    p.initiate();
    let (ca, cb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{:?} {:?}", p.ev_a, p.ev_b);
    assert_mirrored(&ca[0], &cb[0]);
    match &p.ev_b[0] {
        Event::IkeSaEstablished { peer_id, .. } => {
            assert_eq!(peer_id.to_string(), "CN=branch1000")
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(p.a.snapshot(p.now)[0].auth, "rsig");
}

#[test]
fn rsa_peer_with_an_unpinned_certificate_is_rejected() {
    let mut p = Pair::new(
        rsa_cfg("1000", "2000", true),
        rsa_cfg("2000", "1000", false),
    );
    p.initiate();
    assert!(
        p.ev_b.iter().any(|e| matches!(
            e,
            Event::AuthFailed {
                reason: AuthFailure::UntrustedCertificate(_),
                ..
            }
        )),
        "{:?}",
        p.ev_b
    );
    assert!(children(&p.ev_a).is_empty());
    assert!(
        p.a.snapshot(p.now).is_empty(),
        "a heard AUTHENTICATION-FAILED"
    );
}

#[test]
fn responder_takes_the_shorter_proposed_ipsec_lifetime() {
    let mut ca = cfg(b"k");
    ca.ipsec_lifetime = Duration::from_secs(1800);
    ca.ipsec_lifetime_kb = 100_000;
    let mut p = Pair::new(ca, cfg(b"k"));
    p.initiate();
    let (ka, kb) = (children(&p.ev_a), children(&p.ev_b));
    assert_eq!(ka[0].lifetime, Duration::from_secs(1800));
    assert_eq!(kb[0].lifetime, Duration::from_secs(1800));
    assert_eq!(kb[0].lifetime_kb, 100_000);
}

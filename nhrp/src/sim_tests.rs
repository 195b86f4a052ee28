//! In-process simulation: a hub and spokes in virtual time over a lossless
//! NBMA network with optional static NAT (seed-dmvpn §5 T2-T4, T8, T10, T14-T16).

use crate::cache::{EntryType, Prefix};
use crate::config::{AuthKey, Config};
use crate::node::{Event, Resolution};
use crate::show;
use crate::testutil::{ip, t0};
use crate::wire::nhrp::{Code, OpType, Packet, Repr};
use crate::{Nhc, NhrpNode, Nhs};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const KEY: u32 = 100_000;

struct Sim {
    now: Instant,
    nodes: Vec<Box<dyn NhrpNode>>,
    /// Address each node's packets come from after NAT (= where it receives).
    public: Vec<Ipv4Addr>,
    down: HashSet<usize>,
    events: Vec<(usize, Event)>,
    /// (from node, to NBMA, packet).
    log: Vec<(usize, Ipv4Addr, Repr)>,
    raw: Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)>,
    /// Drop one packet in `loss` (0 = lossless), from a seeded xorshift.
    loss: u64,
    rng: u64,
    /// Node `.0` is behind a masquerading NAT: packets to it pass only from NBMA addresses it has sent to
    /// (`.1`, grown as it sends); the others are dropped and counted.
    masquerade: Option<(usize, Vec<Ipv4Addr>)>,
    masquerade_dropped: u64,
}

impl Sim {
    fn new() -> Self {
        Self {
            now: t0(),
            nodes: vec![],
            public: vec![],
            down: HashSet::new(),
            events: vec![],
            log: vec![],
            raw: vec![],
            loss: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            masquerade: None,
            masquerade_dropped: 0,
        }
    }

    fn add(&mut self, node: Box<dyn NhrpNode>, public: Ipv4Addr) -> usize {
        self.nodes.push(node);
        self.public.push(public);
        self.nodes.len() - 1
    }

    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(ev) = self.nodes[i].poll_event() {
                    self.events.push((i, ev));
                }
                while let Some(t) = self.nodes[i].poll_transmit() {
                    moved = true;
                    assert_eq!(t.gre_key, Some(KEY));
                    let repr = Packet::parse(&t.payload).expect("we emit valid NHRP");
                    self.log.push((i, t.nbma_dst, repr));
                    self.raw.push((self.public[i], t.nbma_dst, t.to_gre()));
                    if self.down.contains(&i) || self.lose() {
                        continue;
                    }
                    let Some(j) = self.public.iter().position(|p| *p == t.nbma_dst) else {
                        continue;
                    };
                    if self.down.contains(&j) {
                        continue;
                    }
                    if let Some((n, seen)) = &mut self.masquerade {
                        if *n == i && !seen.contains(&t.nbma_dst) {
                            seen.push(t.nbma_dst);
                        }
                        if *n == j && !seen.contains(&self.public[i]) {
                            self.masquerade_dropped += 1;
                            continue;
                        }
                    }
                    let from = self.public[i];
                    self.nodes[j].handle_input(self.now, from, &t.payload);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.deliver();
            let next = (0..self.nodes.len())
                .filter(|i| !self.down.contains(i))
                .filter_map(|i| self.nodes[i].poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for i in 0..self.nodes.len() {
                        if !self.down.contains(&i)
                            && self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now)
                        {
                            self.nodes[i].handle_timeout(self.now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
        for i in 0..self.nodes.len() {
            if !self.down.contains(&i) {
                self.nodes[i].handle_timeout(self.now);
            }
        }
        self.deliver();
    }

    fn lose(&mut self) -> bool {
        if self.loss == 0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng.is_multiple_of(self.loss)
    }

    fn events_of(&self, i: usize) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, e)| e)
            .collect()
    }

    fn sent(&self, i: usize, op: OpType) -> Vec<&(usize, Ipv4Addr, Repr)> {
        self.log
            .iter()
            .filter(|(n, _, r)| *n == i && r.op == op)
            .collect()
    }

    fn nhc(&mut self, i: usize) -> &mut dyn NhrpNode {
        self.nodes[i].as_mut()
    }
}

fn hub_cfg(tunnel: &str, nbma: &str) -> Config {
    let mut c = Config::new("Tunnel0", ip(tunnel), 24, ip(nbma));
    c.gre_key = Some(KEY);
    c.holdtime = Duration::from_secs(600);
    c.authentication = Some(AuthKey::new(b"donttell"));
    c.multicast_dynamic = true;
    c.first_request_id = 1000;
    c
}

fn spoke_cfg(tunnel: &str, nbma: &str, hubs: &[(&str, &str)]) -> Config {
    let mut c = Config::new("Tunnel0", ip(tunnel), 24, ip(nbma));
    c.gre_key = Some(KEY);
    c.holdtime = Duration::from_secs(300);
    c.authentication = Some(AuthKey::new(b"donttell"));
    for (t, n) in hubs {
        c.static_maps.push((ip(t), ip(n)));
        c.multicast_static.push(ip(n));
        c.nhs.push(ip(t));
    }
    c.first_request_id = u32::from(ip(nbma).octets()[3]) * 100;
    c
}

const HUB: (&str, &str) = ("10.0.0.1", "172.17.0.1");

/// Hub + S1 (10.0.0.11) + S2 (10.0.0.12), registered.
fn topology(tweak_hub: impl FnOnce(&mut Config), tweak_spoke: impl Fn(&mut Config)) -> Sim {
    let mut sim = Sim::new();
    let mut h = hub_cfg(HUB.0, HUB.1);
    tweak_hub(&mut h);
    sim.add(Box::new(Nhs::new(h, sim.now)), ip(HUB.1));
    for (t, n) in [("10.0.0.11", "172.17.0.11"), ("10.0.0.12", "172.17.0.12")] {
        let mut c = spoke_cfg(t, n, &[HUB]);
        tweak_spoke(&mut c);
        sim.add(Box::new(Nhc::new(c, sim.now)), ip(n));
    }
    sim.run_for(Duration::from_secs(1));
    sim
}

#[test]
fn spokes_register_with_hub() {
    let sim = topology(|_| {}, |_| {});
    for s in [1, 2] {
        assert!(sim.events_of(s).contains(&&Event::Registered {
            nhs: ip("10.0.0.1")
        }));
        let req = sim.sent(s, OpType::REGISTRATION_REQUEST)[0];
        // seed-dmvpn §4.8.1: U + NAT flags, hop count 1, CIE holding time 300, auth, NAT ext {hub}.
        assert_eq!(req.2.flags(), 0x8002);
        assert_eq!(req.2.hop_count, 1);
        assert_eq!(req.2.cies[0].holding_time, 300);
        assert_eq!(req.2.cies[0].prefix_len, 0xFF);
        assert_eq!(req.2.auth_secret(), Some(&b"donttell"[..]));
        assert_eq!(req.2.nat_cies()[0].nbma.to_ipv4(), Some(ip("172.17.0.1")));
    }
    let hub = sim.nodes[0].snapshot();
    assert_eq!(hub.entries.len(), 2);
    let e = &hub.entries[0];
    assert_eq!(
        (e.prefix, e.nbma),
        (Prefix::host(ip("10.0.0.11")), Some(ip("172.17.0.11")))
    );
    assert!(e.flags.registered && e.flags.unique && e.flags.authoritative);
    assert_eq!(e.kind, EntryType::Dynamic);
    assert!(sim.events_of(0).contains(&&Event::PeerRegistered {
        protocol: ip("10.0.0.11"),
        nbma: ip("172.17.0.11"),
        claimed: None
    }));
    // `ip nhrp map multicast dynamic`: both registrants get multicast copies.
    assert_eq!(
        sim.nodes[0].core().multicast_targets(),
        vec![ip("172.17.0.11"), ip("172.17.0.12")]
    );

    let now = sim.now;
    let text = show::show_dmvpn(&[&hub], now);
    assert!(text.contains("Type:Hub, NHRP Peers:2,"), "{text}");
    assert!(
        text.contains("     1 172.17.0.11           10.0.0.11    UP 00:00:01     D"),
        "{text}"
    );
    let s1 = sim.nodes[1].snapshot();
    let text = show::show_dmvpn(&[&s1], now);
    assert!(text.contains("Type:Spoke, NHRP Peers:1,"), "{text}");
    assert!(
        text.contains("     1 172.17.0.1             10.0.0.1    UP 00:00:01     S"),
        "{text}"
    );
    let text = show::show_ip_nhrp(&[&hub], now);
    assert!(
        text.contains("10.0.0.11/32 via 10.0.0.11, Tunnel0 created 00:00:01, expire 00:04:59"),
        "{text}"
    );
    assert!(
        text.contains("  Type: dynamic, Flags: authoritative unique registered\n"),
        "{text}"
    );
    let t = s1.traffic;
    assert_eq!((t.sent[2], t.rcvd[3]), (1, 1));
    let traffic = show::show_ip_nhrp_traffic(&[&s1]);
    assert!(
        traffic.starts_with("Tunnel0: Max-send limit:100Pkts/10Sec, Usage:1%\nSent: Total 1\n"),
        "{traffic}"
    );
}

#[test]
fn spokes_refresh_every_third_of_holdtime_and_hub_expires_dead_spoke() {
    let mut sim = topology(|_| {}, |_| {});
    sim.run_for(Duration::from_secs(1000));
    // 300 s holdtime -> one registration every 100 s.
    let regs = sim.sent(1, OpType::REGISTRATION_REQUEST).len();
    assert!((10..=12).contains(&regs), "{regs} registrations");
    assert_eq!(sim.nodes[0].snapshot().entries.len(), 2);
    assert!(
        !sim.events_of(0)
            .iter()
            .any(|e| matches!(e, Event::PeerExpired { .. }))
    );

    sim.down.insert(1);
    sim.run_for(Duration::from_secs(301));
    assert!(sim.events_of(0).contains(&&Event::PeerExpired {
        protocol: ip("10.0.0.11"),
        nbma: ip("172.17.0.11")
    }));
    let hub = sim.nodes[0].snapshot();
    assert_eq!(hub.entries.len(), 1);
    assert_eq!(
        sim.nodes[0].core().multicast_targets(),
        vec![ip("172.17.0.12")]
    );
}

#[test]
fn resolution_is_forwarded_by_hub_and_answered_directly() {
    let mut sim = topology(|_| {}, |_| {});
    let now = sim.now;
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12")),
        Resolution::Pending
    );
    sim.deliver();
    // S1 -> hub, hub -> S2 (with itself in the forward transit record), S2 -> S1 directly.
    let req = sim.sent(1, OpType::RESOLUTION_REQUEST);
    assert_eq!(req.len(), 1);
    assert_eq!(req[0].1, ip("172.17.0.1"));
    assert_eq!(
        req[0].2.flags() & 0x8000,
        0x8000,
        "Q: requester is a router"
    );
    let fwd = sim.sent(0, OpType::RESOLUTION_REQUEST);
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].1, ip("172.17.0.12"));
    assert_eq!(fwd[0].2.hop_count, req[0].2.hop_count - 1);
    assert_eq!(fwd[0].2.request_id(), req[0].2.request_id());
    assert!(
        sim.sent(0, OpType::RESOLUTION_REPLY).is_empty(),
        "hubs do not answer for spokes"
    );
    let rep = sim.sent(2, OpType::RESOLUTION_REPLY);
    assert_eq!(rep.len(), 1);
    assert_eq!(rep[0].1, ip("172.17.0.11"));
    assert_eq!(rep[0].2.cies[0].prefix_len, 32);
    assert_eq!(rep[0].2.cies[0].holding_time, 300);

    assert!(sim.events_of(1).contains(&&Event::Resolved {
        protocol: ip("10.0.0.12"),
        nbma: ip("172.17.0.12")
    }));
    assert!(sim.events_of(2).contains(&&Event::Resolved {
        protocol: ip("10.0.0.11"),
        nbma: ip("172.17.0.11")
    }));
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12")),
        Resolution::Known {
            via: ip("10.0.0.12"),
            nbma: ip("172.17.0.12")
        }
    );
    let s1 = sim.nodes[1].snapshot();
    let text = show::show_ip_nhrp(&[&s1], now);
    assert!(text.contains("10.0.0.12/32 via 10.0.0.12, Tunnel0 created 00:00:00, expire 00:05:00\n  Type: dynamic, Flags: router authoritative used\n  NBMA address: 172.17.0.12\n"), "{text}");
    let text = show::show_dmvpn(&[&s1], now);
    assert!(text.contains("NHRP Peers:2,"));
}

#[test]
fn used_shortcut_is_refreshed_and_idle_one_expires() {
    let mut sim = topology(|_| {}, |_| {});
    let now = sim.now;
    sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12"));
    sim.deliver();
    // Used again before the refresh point: re-resolved before expiry.
    sim.run_for(Duration::from_secs(150));
    let now = sim.now;
    assert!(matches!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12")),
        Resolution::Known { .. }
    ));
    sim.run_for(Duration::from_secs(200));
    assert_eq!(sim.sent(1, OpType::RESOLUTION_REQUEST).len(), 2);
    assert!(
        sim.nodes[1]
            .core()
            .cache()
            .get(&Prefix::host(ip("10.0.0.12")))
            .is_some()
    );
    // Idle: no refresh, the entry expires and a Purge event tells the appliance.
    sim.run_for(Duration::from_secs(400));
    assert!(
        sim.nodes[1]
            .core()
            .cache()
            .get(&Prefix::host(ip("10.0.0.12")))
            .is_none()
    );
    assert!(sim.events_of(1).contains(&&Event::Purge {
        prefix: Prefix::host(ip("10.0.0.12"))
    }));
}

fn data_packet(src: &str, dst: &str) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
    p.extend_from_slice(&ip(src).octets());
    p.extend_from_slice(&ip(dst).octets());
    p.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    p
}

#[test]
fn redirect_leads_to_shortcut_route() {
    let mut sim = topology(
        |h| h.redirect = true,
        |s| {
            s.shortcut = true;
            if s.tunnel_addr == ip("10.0.0.12") {
                s.local_prefixes.push(Prefix::new(ip("192.168.2.0"), 24));
            }
        },
    );
    let now = sim.now;
    let hub = sim.nodes[0].core_mut();
    hub.add_route(Prefix::new(ip("192.168.2.0"), 24), ip("10.0.0.12"));
    // The hub hairpins S1's packet to 192.168.2.1 and redirects S1.
    let pkt = data_packet("192.168.1.5", "192.168.2.1");
    hub.handle_hairpin(now, ip("172.17.0.11"), &pkt);
    hub.handle_hairpin(now, ip("172.17.0.11"), &pkt);
    sim.deliver();
    let ind = sim.sent(0, OpType::TRAFFIC_INDICATION);
    assert_eq!(ind.len(), 1, "rate-limited per flow");
    assert_eq!(ind[0].1, ip("172.17.0.11"));
    assert_eq!(ind[0].2.payload, pkt, "quotes the packet, no target NBMA");
    // S1 resolves the destination host, S2 answers with its /24.
    let req = sim.sent(1, OpType::RESOLUTION_REQUEST);
    assert_eq!(req[0].2.dst_proto.to_ipv4(), Some(ip("192.168.2.1")));
    assert_eq!(
        sim.sent(2, OpType::RESOLUTION_REPLY)[0].2.cies[0].prefix_len,
        24
    );
    assert!(sim.events_of(1).contains(&&Event::ShortcutRoute {
        prefix: Prefix::new(ip("192.168.2.0"), 24),
        nexthop: ip("10.0.0.12")
    }));
    let cache = sim.nodes[1].core().cache();
    assert_eq!(
        cache.lookup(ip("192.168.2.77")).unwrap().nbma,
        Some(ip("172.17.0.12"))
    );
    assert_eq!(
        cache.get(&Prefix::host(ip("10.0.0.12"))).unwrap().nbma,
        Some(ip("172.17.0.12"))
    );
    let t = sim.nodes[0].snapshot().traffic;
    assert_eq!(t.sent[7], 1);
    assert_eq!(sim.nodes[1].snapshot().traffic.rcvd[7], 1);

    // S2 loses 192.168.2.0/24: it purges the shortcut at S1, which replies.
    let now = sim.now;
    sim.nodes[2]
        .core_mut()
        .remove_local_prefix(now, Prefix::new(ip("192.168.2.0"), 24));
    sim.deliver();
    let purge = sim.sent(2, OpType::PURGE_REQUEST);
    assert_eq!((purge.len(), purge[0].1), (1, ip("172.17.0.11")));
    assert!(sim.events_of(1).contains(&&Event::Purge {
        prefix: Prefix::new(ip("192.168.2.0"), 24)
    }));
    assert!(
        sim.nodes[1]
            .core()
            .cache()
            .lookup(ip("192.168.2.77"))
            .is_none()
    );
    assert_eq!(sim.sent(1, OpType::PURGE_REPLY)[0].1, ip("172.17.0.12"));
}

#[test]
fn no_redirect_without_ip_nhrp_redirect() {
    let mut sim = topology(|_| {}, |s| s.shortcut = true);
    let now = sim.now;
    sim.nodes[0].core_mut().handle_hairpin(
        now,
        ip("172.17.0.11"),
        &data_packet("192.168.1.5", "192.168.2.1"),
    );
    sim.deliver();
    assert!(sim.sent(0, OpType::TRAFFIC_INDICATION).is_empty());
}

#[test]
fn dual_hub_failover_moves_resolution_to_second_hub() {
    let mut sim = Sim::new();
    let h2 = ("10.0.0.2", "172.17.0.2");
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    sim.add(Box::new(Nhs::new(hub_cfg(h2.0, h2.1), sim.now)), ip(h2.1));
    for (t, n) in [("10.0.0.11", "172.17.0.11"), ("10.0.0.12", "172.17.0.12")] {
        sim.add(
            Box::new(Nhc::new(spoke_cfg(t, n, &[HUB, h2]), sim.now)),
            ip(n),
        );
    }
    sim.run_for(Duration::from_secs(1));
    for hub in [ip("10.0.0.1"), ip("10.0.0.2")] {
        assert!(sim.events_of(2).contains(&&Event::Registered { nhs: hub }));
    }
    sim.down.insert(0);
    sim.run_for(Duration::from_secs(120));
    assert!(sim.events_of(2).contains(&&Event::NhsDown {
        nhs: ip("10.0.0.1")
    }));
    let s1 = sim.nodes[2].snapshot();
    let text = show::show_dmvpn(&[&s1], sim.now);
    assert!(
        text.contains("172.17.0.1             10.0.0.1  NHRP"),
        "{text}"
    );
    assert!(
        text.contains("172.17.0.2             10.0.0.2    UP"),
        "{text}"
    );
    let now = sim.now;
    sim.nodes[2].core_mut().resolve(now, ip("10.0.0.12"));
    sim.deliver();
    let last = sim.sent(2, OpType::RESOLUTION_REQUEST);
    assert_eq!(last.last().unwrap().1, ip("172.17.0.2"));
    assert!(sim.events_of(2).contains(&&Event::Resolved {
        protocol: ip("10.0.0.12"),
        nbma: ip("172.17.0.12")
    }));
    // The hub comes back: registrations resume and it is up again.
    sim.down.remove(&0);
    sim.run_for(Duration::from_secs(130));
    assert_eq!(
        sim.events_of(2)
            .iter()
            .filter(|e| **e
                == &Event::Registered {
                    nhs: ip("10.0.0.1")
                })
            .count(),
        2
    );
}

#[test]
fn spoke_behind_nat_is_registered_with_post_nat_address() {
    let mut sim = Sim::new();
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    sim.add(
        Box::new(Nhc::new(
            spoke_cfg("10.0.0.11", "172.17.0.11", &[HUB]),
            sim.now,
        )),
        ip("172.17.0.11"),
    );
    // S2 has private 172.16.2.1, static NAT to 172.18.2.1 (seed 001:3053-3060).
    sim.add(
        Box::new(Nhc::new(
            spoke_cfg("10.0.0.12", "172.16.2.1", &[HUB]),
            sim.now,
        )),
        ip("172.18.2.1"),
    );
    sim.run_for(Duration::from_secs(1));
    let hub = sim.nodes[0].snapshot();
    let e = hub
        .entries
        .iter()
        .find(|e| e.via == ip("10.0.0.12"))
        .unwrap();
    assert_eq!(e.nbma, Some(ip("172.18.2.1")));
    assert_eq!(e.claimed_nbma, Some(ip("172.16.2.1")));
    let text = show::show_ip_nhrp(&[&hub], sim.now);
    assert!(
        text.contains("  NBMA address: 172.18.2.1\n  (Claimed NBMA address: 172.16.2.1)\n"),
        "{text}"
    );
    assert!(show::show_dmvpn(&[&hub], sim.now).contains("UP 00:00:01    DN"));
    // The registration reply's NAT extension told S2 its post-NAT address.
    assert_eq!(
        sim.nodes[2].snapshot().post_nat_nbma,
        Some(ip("172.18.2.1"))
    );
    let rep = sim.sent(0, OpType::REGISTRATION_REPLY);
    let to_s2 = rep.iter().find(|r| r.1 == ip("172.18.2.1")).unwrap();
    assert_eq!(to_s2.2.nat_cies().len(), 2);

    // S1 -> S2: S2 answers with its NAT extension, S1 uses the post-NAT address.
    let now = sim.now;
    sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12"));
    sim.deliver();
    assert!(sim.events_of(1).contains(&&Event::Resolved {
        protocol: ip("10.0.0.12"),
        nbma: ip("172.18.2.1")
    }));
    // S2 learned S1 while answering; after `clear ip nhrp` it asks itself.
    let learned = sim.nodes[2]
        .core()
        .cache()
        .get(&Prefix::host(ip("10.0.0.11")))
        .cloned()
        .unwrap();
    assert_eq!(learned.nbma, Some(ip("172.17.0.11")));
    sim.nodes[2].core_mut().clear_dynamic(now);
    // S2 -> S1: S2's request carries its NAT extension; S1 learns S2 at 172.18.2.1 but sends its reply
    // through the hub (a NATed requester cannot be reached before it came to us), which relays it to S2.
    sim.nodes[2].core_mut().resolve(now, ip("10.0.0.11"));
    sim.deliver();
    let req = sim.sent(2, OpType::RESOLUTION_REQUEST);
    assert_eq!(
        req[0].2.nat_cies()[0].nbma.to_ipv4(),
        Some(ip("172.18.2.1"))
    );
    let replies = sim.sent(1, OpType::RESOLUTION_REPLY);
    assert!(
        !replies.is_empty() && replies.iter().all(|r| r.1 == ip(HUB.1)),
        "{replies:?}"
    );
    assert!(
        sim.sent(0, OpType::RESOLUTION_REPLY)
            .iter()
            .any(|r| r.1 == ip("172.18.2.1") && r.2.request_id() == req[0].2.request_id()),
        "the hub relays it to S2's post-NAT address"
    );
    assert!(sim.events_of(2).contains(&&Event::Resolved {
        protocol: ip("10.0.0.11"),
        nbma: ip("172.17.0.11")
    }));
    let s2 = sim.nodes[1]
        .core()
        .cache()
        .get(&Prefix::host(ip("10.0.0.12")))
        .cloned()
        .unwrap();
    assert_eq!(
        (s2.nbma, s2.claimed_nbma),
        (Some(ip("172.18.2.1")), Some(ip("172.16.2.1")))
    );
    assert!(s2.flags.nat && s2.flags.implicit);
}

/// A NATed spoke resolves first through a plain masquerade (no inbound mapping): the simulated NAT
/// delivers nothing to the NATed spoke's outside address that it did not send to first. The public
/// responder's reply goes through the hub, so the resolution completes; a direct reply would be lost.
#[test]
fn natted_requester_gets_its_reply_through_the_hub_behind_a_masquerade() {
    let mut sim = Sim::new();
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    sim.add(
        Box::new(Nhc::new(
            spoke_cfg("10.0.0.11", "172.17.0.11", &[HUB]),
            sim.now,
        )),
        ip("172.17.0.11"),
    );
    sim.add(
        Box::new(Nhc::new(
            spoke_cfg("10.0.0.12", "172.16.2.1", &[HUB]),
            sim.now,
        )),
        ip("172.18.2.1"),
    );
    sim.masquerade = Some((2, vec![ip(HUB.1)]));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        sim.nodes[2].snapshot().post_nat_nbma,
        Some(ip("172.18.2.1"))
    );
    let now = sim.now;
    assert_eq!(
        sim.nodes[2].core_mut().resolve(now, ip("10.0.0.11")),
        Resolution::Pending
    );
    sim.deliver();
    assert_eq!(sim.masquerade_dropped, 0, "nothing sent to the NAT unasked");
    assert_eq!(
        sim.nodes[2].core_mut().resolve(now, ip("10.0.0.11")),
        Resolution::Known {
            via: ip("10.0.0.11"),
            nbma: ip("172.17.0.11")
        }
    );
    // The old direct reply would have met the NAT: shown by answering a forged NATed request directly.
    assert!(
        sim.sent(1, OpType::RESOLUTION_REPLY)
            .iter()
            .all(|r| r.1 == ip(HUB.1))
    );
}

/// A Resolution Reply relayed by the hub: the hub caches the responder's binding (the target prefix via the
/// responder), adds the NAT extension of a responder it knows behind NAT, rewrites the CIE for a requester
/// that is not NAT-capable, and forgets the binding with the responder's registration.
#[test]
fn hub_relays_replies_with_the_responders_nat_extension_and_does_not_cache_the_prefix() {
    use crate::wire::nhrp::ExtensionType;
    let mut sim = Sim::new();
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    sim.add(
        Box::new(Nhc::new(
            spoke_cfg("10.0.0.11", "172.17.0.11", &[HUB]),
            sim.now,
        )),
        ip("172.17.0.11"),
    );
    // S2 behind a static NAT 172.16.2.1 -> 172.18.2.1, answering for its LAN 10.1.2.0/24.
    let mut c2 = spoke_cfg("10.0.0.12", "172.16.2.1", &[HUB]);
    c2.local_prefixes.push(Prefix::new(ip("10.1.2.0"), 24));
    sim.add(Box::new(Nhc::new(c2, sim.now)), ip("172.18.2.1"));
    sim.nodes[0]
        .core_mut()
        .add_route(Prefix::new(ip("10.1.2.0"), 24), ip("10.0.0.12"));
    sim.run_for(Duration::from_secs(1));
    let now = sim.now;
    // S1 resolves a host on S2's LAN (phase 3 style); pump by hand and send S2's reply through the hub
    // without its NAT extension, as a responder that does not know its post-NAT address would.
    sim.nodes[1].core_mut().resolve(now, ip("10.1.2.7"));
    let req = sim.nodes[1].poll_transmit().unwrap();
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &req.payload);
    let fwd = sim.nodes[0].poll_transmit().unwrap();
    assert_eq!(fwd.nbma_dst, ip("172.18.2.1"));
    sim.nodes[2].handle_input(now, ip(HUB.1), &fwd.payload);
    let reply = sim.nodes[2].poll_transmit().unwrap();
    let mut bare = Packet::parse(&reply.payload).unwrap();
    assert_eq!(bare.op, OpType::RESOLUTION_REPLY);
    bare.extensions
        .retain(|e| e.body.ty() != ExtensionType::NAT_ADDRESS);
    assert!(bare.nat_cies().is_empty());
    // A holding time past S2's registration's, so only the registration can take the binding away.
    bare.cies[0].holding_time = 3000;
    let bare_bytes = bare.emit().unwrap();
    sim.nodes[0].handle_input(now, ip("172.18.2.1"), &bare_bytes);
    let out = sim.nodes[0].poll_transmit().expect("relayed");
    assert_eq!(out.nbma_dst, ip("172.17.0.11"));
    let relayed = Packet::parse(&out.payload).unwrap();
    let nat: Vec<_> = relayed
        .nat_cies()
        .iter()
        .map(|c| (c.proto.to_ipv4(), c.nbma.to_ipv4()))
        .collect();
    assert_eq!(nat, [(Some(ip("10.0.0.12")), Some(ip("172.18.2.1")))]);
    assert_eq!(
        relayed.cies[0].nbma.to_ipv4(),
        Some(ip("172.16.2.1")),
        "claimed kept"
    );
    // The hub does not cache the target prefix from a relayed reply (a cache entry would beat its routes:
    // a responder's summary or a /0 would pull other spokes' traffic); its route still decides.
    assert!(
        sim.nodes[0]
            .core()
            .cache()
            .get(&Prefix::new(ip("10.1.2.0"), 24))
            .is_none()
    );
    // S2's registration is untouched (no overwrite by the relayed host binding).
    let reg = sim.nodes[0]
        .core()
        .cache()
        .get(&Prefix::host(ip("10.0.0.12")))
        .cloned()
        .unwrap();
    assert!(reg.flags.registered);
    // S1 uses the post-NAT address.
    sim.nodes[1].handle_input(now, ip(HUB.1), &out.payload);
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.1.2.7")),
        Resolution::Known {
            via: ip("10.0.0.12"),
            nbma: ip("172.18.2.1")
        }
    );
    // A requester that is not NAT-capable gets the post-NAT address in the CIE itself.
    let mut legacy = Packet::parse(
        &sim.sent(1, OpType::REGISTRATION_REQUEST)[0]
            .2
            .emit()
            .unwrap(),
    )
    .unwrap();
    legacy.header = crate::wire::nhrp::Header::Common {
        flags: crate::wire::nhrp::flags::U_REGISTRATION,
        request_id: 4242,
    };
    legacy
        .extensions
        .retain(|e| e.body.ty() != ExtensionType::NAT_ADDRESS);
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &legacy.emit().unwrap());
    while sim.nodes[0].poll_transmit().is_some() {}
    sim.nodes[0].handle_input(now, ip("172.18.2.1"), &bare_bytes);
    let out = Packet::parse(&sim.nodes[0].poll_transmit().unwrap().payload).unwrap();
    assert_eq!(out.cies[0].nbma.to_ipv4(), Some(ip("172.18.2.1")));
    assert!(out.nat_cies().is_empty());
    // S2 stops refreshing: its registration expires (300 s), and the relayed binding (3000 s) goes with it.
    sim.down.insert(2);
    sim.run_for(Duration::from_secs(700));
    assert!(
        sim.nodes[0]
            .core()
            .cache()
            .get(&Prefix::host(ip("10.0.0.12")))
            .is_none()
    );
    assert!(
        sim.nodes[0]
            .core()
            .cache()
            .get(&Prefix::new(ip("10.1.2.0"), 24))
            .is_none()
    );
}

#[test]
fn authentication_mismatch_is_dropped() {
    let mut sim = Sim::new();
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    let mut c = spoke_cfg("10.0.0.11", "172.17.0.11", &[HUB]);
    c.authentication = Some(AuthKey::new(b"wrong"));
    sim.add(Box::new(Nhc::new(c, sim.now)), ip("172.17.0.11"));
    sim.run_for(Duration::from_secs(30));
    assert!(sim.nodes[0].snapshot().entries.is_empty());
    assert!(sim.events_of(0).contains(&&Event::AuthFailure {
        from: ip("172.17.0.11")
    }));
    assert!(sim.nodes[0].core().drops().auth >= 3);
    assert!(
        !sim.events_of(1)
            .iter()
            .any(|e| matches!(e, Event::Registered { .. }))
    );
    // Retries back off: 1, 2, 4, 8, 16 s.
    assert_eq!(sim.sent(1, OpType::REGISTRATION_REQUEST).len(), 5);
    assert!(show::show_dmvpn(&[&sim.nodes[1].snapshot()], sim.now).contains(" NHRP "));
    assert_eq!(
        format!("{:?}", AuthKey::new(b"donttell")),
        "AuthKey(8 bytes)"
    );
}

#[test]
fn unique_registration_refuses_new_nbma_until_no_unique() {
    for unique in [true, false] {
        let mut sim = topology(|_| {}, |s| s.unique = unique);
        // S1 resolves S2 so that the hub remembers S1 as a requester.
        let now = sim.now;
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12"));
        sim.deliver();
        // S2's address changes (DHCP): a new client with the same tunnel IP.
        let mut c = spoke_cfg("10.0.0.12", "172.17.0.99", &[HUB]);
        c.unique = unique;
        c.first_request_id = 9000;
        sim.down.insert(2);
        let s2b = sim.add(Box::new(Nhc::new(c, sim.now)), ip("172.17.0.99"));
        sim.run_for(Duration::from_secs(1));
        let entry = sim.nodes[0]
            .core()
            .cache()
            .get(&Prefix::host(ip("10.0.0.12")))
            .cloned()
            .unwrap();
        if unique {
            assert!(sim.events_of(s2b).contains(&&Event::RegistrationRejected {
                nhs: ip("10.0.0.1"),
                code: Code::ALREADY_REGISTERED
            }));
            assert_eq!(entry.nbma, Some(ip("172.17.0.12")));
        } else {
            assert!(sim.events_of(s2b).contains(&&Event::Registered {
                nhs: ip("10.0.0.1")
            }));
            assert_eq!(entry.nbma, Some(ip("172.17.0.99")));
            // The hub purges the stale mapping at S1 (seed-dmvpn §4.8.5).
            let purge = sim.sent(0, OpType::PURGE_REQUEST);
            assert_eq!(purge.len(), 1);
            assert_eq!(purge[0].1, ip("172.17.0.11"));
            assert!(sim.events_of(1).contains(&&Event::Purge {
                prefix: Prefix::host(ip("10.0.0.12"))
            }));
            assert!(
                sim.nodes[1]
                    .core()
                    .cache()
                    .get(&Prefix::host(ip("10.0.0.12")))
                    .is_none()
            );
            assert_eq!(sim.sent(1, OpType::PURGE_REPLY).len(), 1);
        }
    }
}

#[test]
fn unknown_target_gets_negative_reply_and_fallback_via_hub() {
    let mut sim = topology(|_| {}, |_| {});
    let now = sim.now;
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.99")),
        Resolution::Pending
    );
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.99")),
        Resolution::Pending
    );
    sim.deliver();
    assert_eq!(sim.sent(1, OpType::RESOLUTION_REQUEST).len(), 1);
    assert_eq!(
        sim.sent(0, OpType::RESOLUTION_REPLY)[0].2.cies[0].code,
        Code::NO_BINDING
    );
    assert!(sim.events_of(1).contains(&&Event::ResolutionFailed {
        protocol: ip("10.0.0.99")
    }));
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.99")),
        Resolution::ViaNhs
    );
    // The negative entry expires and a new attempt is allowed.
    sim.run_for(Duration::from_secs(31));
    let now = sim.now;
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.99")),
        Resolution::Pending
    );
}

#[test]
fn unanswered_resolution_times_out_without_loops() {
    let mut sim = topology(|_| {}, |_| {});
    sim.down.insert(2);
    let now = sim.now;
    sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12"));
    sim.run_for(Duration::from_secs(20));
    assert_eq!(sim.sent(1, OpType::RESOLUTION_REQUEST).len(), 3);
    assert!(sim.events_of(1).contains(&&Event::ResolutionFailed {
        protocol: ip("10.0.0.12")
    }));
}

#[test]
fn max_send_quota_drops_excess_and_reports_once() {
    let mut sim = topology(|_| {}, |s| s.max_send = (3, Duration::from_secs(10)));
    let now = sim.now;
    for last in 20..30 {
        sim.nodes[1]
            .core_mut()
            .resolve(now, Ipv4Addr::new(10, 0, 0, last));
    }
    sim.deliver();
    // One registration + two resolutions fit in the quota.
    assert_eq!(sim.sent(1, OpType::RESOLUTION_REQUEST).len(), 2);
    assert_eq!(
        sim.events_of(1)
            .iter()
            .filter(|e| ***e == Event::QuotaExceeded)
            .count(),
        1
    );
    assert_eq!(sim.nodes[1].core().drops().quota, 8);
    assert_eq!(sim.nodes[1].snapshot().usage_percent, 100);
    let traffic = show::show_ip_nhrp_traffic(&[&sim.nodes[1].snapshot()]);
    assert!(
        traffic.starts_with("Tunnel0: Max-send limit:3Pkts/10Sec, Usage:100%\n"),
        "{traffic}"
    );
    assert!(
        traffic.contains("Dropped: Total 8\n    0 Authentication  8 Max-send quota  0 Malformed\n"),
        "{traffic}"
    );
}

/// The quota is per interval (seed 001:416): once the interval that ran out is over, `show` reads 0% and
/// the spoke sends again (a resolution it could not send before now resolves); a second overrun in a new
/// interval is reported again (one `%NHRP-4-QUOTA` per interval).
#[test]
fn max_send_quota_refills_every_interval() {
    let mut sim = topology(|_| {}, |s| s.max_send = (3, Duration::from_secs(10)));
    let now = sim.now;
    for last in 20..30 {
        sim.nodes[1]
            .core_mut()
            .resolve(now, Ipv4Addr::new(10, 0, 0, last));
    }
    sim.deliver();
    let sent_before = sim.sent(1, OpType::RESOLUTION_REQUEST).len();
    assert!(sim.nodes[1].core().drops().quota > 0);
    sim.run_for(Duration::from_secs(11));
    assert_eq!(sim.nodes[1].snapshot().usage_percent, 0);
    let now = sim.now;
    assert!(matches!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12")),
        Resolution::Pending | Resolution::ViaNhs
    ));
    sim.deliver();
    assert!(sim.sent(1, OpType::RESOLUTION_REQUEST).len() > sent_before);
    assert!(
        sim.nodes[1]
            .snapshot()
            .entries
            .iter()
            .any(|e| e.prefix.addr() == ip("10.0.0.12") && e.nbma == Some(ip("172.17.0.12"))),
        "{:?}",
        sim.nodes[1].snapshot().entries
    );
    let usage = sim.nodes[1].snapshot().usage_percent;
    assert!((1..=100).contains(&usage), "{usage}");
    // A new overrun in this interval: reported once more.
    let now = sim.now;
    for last in 40..50 {
        sim.nodes[1]
            .core_mut()
            .resolve(now, Ipv4Addr::new(10, 0, 0, last));
    }
    sim.deliver();
    let quota_events = sim
        .events_of(1)
        .iter()
        .filter(|e| ***e == Event::QuotaExceeded)
        .count();
    assert!(quota_events >= 2, "{quota_events}");
}

#[test]
fn compulsory_unknown_extension_gets_error_indication() {
    use crate::wire::nhrp::{Extension, ExtensionBody, ExtensionType, Header};
    let mut sim = topology(|_| {}, |_| {});
    let mut r = Repr::ipv4(
        OpType::RESOLUTION_REQUEST,
        Header::Common {
            flags: 0x8000,
            request_id: 77,
        },
        ip("172.17.0.11"),
        ip("10.0.0.11"),
        ip("10.0.0.12"),
    );
    r.extensions.push(Extension {
        compulsory: true,
        body: ExtensionBody::Authentication {
            auth_type: 1,
            data: b"donttell".to_vec(),
        },
    });
    r.extensions.push(Extension {
        compulsory: true,
        body: ExtensionBody::Unknown {
            ty: ExtensionType(0x1234),
            data: vec![],
        },
    });
    let now = sim.now;
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &r.emit().unwrap());
    sim.deliver();
    let err = sim.sent(0, OpType::ERROR_INDICATION);
    assert_eq!(err.len(), 1);
    assert!(
        sim.events_of(1)
            .iter()
            .any(|e| matches!(e, Event::ErrorIndication { .. }))
    );
    let _ = sim.nhc(1);
}

/// Every packet type the simulation produced, in one pcap, through tshark.
#[test]
fn tshark_decodes_every_packet_type_from_a_simulation() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("tshark not installed: skipping");
        return;
    }
    let mut sim = topology(
        |h| h.redirect = true,
        |s| {
            s.shortcut = true;
            s.unique = false;
            if s.tunnel_addr == ip("10.0.0.12") {
                s.local_prefixes.push(Prefix::new(ip("192.168.2.0"), 24));
            }
        },
    );
    let now = sim.now;
    sim.nodes[0]
        .core_mut()
        .add_route(Prefix::new(ip("192.168.2.0"), 24), ip("10.0.0.12"));
    sim.nodes[0].core_mut().handle_hairpin(
        now,
        ip("172.17.0.11"),
        &data_packet("192.168.1.5", "192.168.2.1"),
    );
    sim.deliver();
    sim.nodes[0].core_mut().clear_dynamic(now);
    sim.deliver();
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &[0u8; 3]);
    // An error indication: unknown compulsory extension.
    let mut r = Repr::ipv4(
        OpType::PURGE_REQUEST,
        crate::wire::nhrp::Header::Common {
            flags: 0,
            request_id: 5,
        },
        ip("172.17.0.11"),
        ip("10.0.0.11"),
        ip("10.0.0.1"),
    );
    r.extensions.push(crate::wire::nhrp::Extension {
        compulsory: true,
        body: crate::wire::nhrp::ExtensionBody::Authentication {
            auth_type: 1,
            data: b"donttell".to_vec(),
        },
    });
    r.extensions.push(crate::wire::nhrp::Extension {
        compulsory: true,
        body: crate::wire::nhrp::ExtensionBody::Unknown {
            ty: crate::wire::nhrp::ExtensionType(99),
            data: vec![],
        },
    });
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &r.emit().unwrap());
    sim.deliver();
    let ops: HashSet<u8> = sim.log.iter().map(|(_, _, r)| r.op.0).collect();
    assert_eq!(
        ops,
        (1..=8).collect::<HashSet<u8>>(),
        "every type was produced"
    );

    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&101u32.to_le_bytes());
    for (src, dst, gre) in &sim.raw {
        let total = 20 + gre.len();
        let mut ipv4 = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0,
            0,
            255,
            47,
            0,
            0,
        ];
        ipv4.extend_from_slice(&src.octets());
        ipv4.extend_from_slice(&dst.octets());
        let c = crate::wire::checksum(&ipv4);
        ipv4[10..12].copy_from_slice(&c.to_be_bytes());
        ipv4.extend_from_slice(gre);
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&(ipv4.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(ipv4.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&ipv4);
    }
    let path = std::env::temp_dir().join(format!("lifeline-nhrp-sim-{}.pcap", std::process::id()));
    std::fs::write(&path, &pcap).unwrap();
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-V")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "NHRP Resolution Request",
        "NHRP Resolution Reply",
        "NHRP Registration Request",
        "NHRP Registration Reply",
        "NHRP Purge Request",
        "NHRP Purge Reply",
        "NHRP Error Indication",
        "NHRP Traffic Indication",
    ] {
        assert!(
            text.contains(&format!("Next Hop Resolution Protocol ({name})")),
            "{name} missing"
        );
    }
    assert!(!text.to_lowercase().contains("malformed"), "{text}");
    assert!(!text.contains("[incorrect"), "{text}");
    let counts: HashMap<&str, usize> = [
        ("Forward Transit NHS Record Extension", 0),
        ("Cisco NAT Address Extension", 0),
    ]
    .into_iter()
    .collect();
    for k in counts.keys() {
        assert!(text.contains(k), "{k}");
    }
}

/// seed 001:3110 (T19): a NATed requester without a NAT extension gets one
/// from the hub, and a target that is not NAT-capable sees the post-NAT
/// address as the source NBMA.
#[test]
fn hub_adds_nat_extension_and_rewrites_for_non_nat_capable_target() {
    use crate::wire::nhrp::{Cie, Extension, ExtensionBody, Header};
    let now = t0();
    let mut hub = Nhs::new(hub_cfg(HUB.0, HUB.1), now);
    let auth = || Extension {
        compulsory: true,
        body: ExtensionBody::Authentication {
            auth_type: 1,
            data: b"donttell".to_vec(),
        },
    };
    // Two clients register by hand: A is behind NAT (172.16.2.1 -> 172.18.2.1),
    // B does not set the NAT-capable flag.
    for (proto, claimed, outer, fl) in [
        ("10.0.0.21", "172.16.2.1", "172.18.2.1", 0x8002u16),
        ("10.0.0.22", "172.17.0.22", "172.17.0.22", 0x8000u16),
    ] {
        let mut r = Repr::ipv4(
            OpType::REGISTRATION_REQUEST,
            Header::Common {
                flags: fl,
                request_id: 1,
            },
            ip(claimed),
            ip(proto),
            ip(HUB.0),
        );
        r.cies.push(Cie {
            prefix_len: 0xFF,
            holding_time: 300,
            ..Cie::default()
        });
        r.extensions.push(auth());
        hub.handle_input(now, ip(outer), &r.emit().unwrap());
        let reply = Packet::parse(&hub.poll_transmit().unwrap().payload).unwrap();
        assert_eq!(reply.cies[0].code, Code::SUCCESS);
    }
    // A asks for B without a NAT extension.
    let mut q = Repr::ipv4(
        OpType::RESOLUTION_REQUEST,
        Header::Common {
            flags: 0x8002,
            request_id: 9,
        },
        ip("172.16.2.1"),
        ip("10.0.0.21"),
        ip("10.0.0.22"),
    );
    q.extensions.push(auth());
    hub.handle_input(now, ip("172.18.2.1"), &q.emit().unwrap());
    let t = hub.poll_transmit().unwrap();
    assert_eq!(t.nbma_dst, ip("172.17.0.22"));
    let fwd = Packet::parse(&t.payload).unwrap();
    assert_eq!(fwd.nat_cies()[0].nbma.to_ipv4(), Some(ip("172.18.2.1")));
    assert_eq!(
        fwd.src_nbma.to_ipv4(),
        Some(ip("172.18.2.1")),
        "rewritten for a non-NAT-capable target"
    );
    // An unknown target: the negative reply goes back to A's post-NAT address.
    q.dst_proto = ip("10.0.0.99").into();
    hub.handle_input(now, ip("172.18.2.1"), &q.emit().unwrap());
    let t = hub.poll_transmit().unwrap();
    assert_eq!(t.nbma_dst, ip("172.18.2.1"));
    assert_eq!(
        Packet::parse(&t.payload).unwrap().cies[0].code,
        Code::NO_BINDING
    );
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u16),
        Resolve(u8),
        Garbage(Vec<u8>),
        Mutate(usize, u8),
        Hairpin(u8),
        Kill(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u16..400).prop_map(Op::Advance),
            any::<u8>().prop_map(Op::Resolve),
            proptest::collection::vec(any::<u8>(), 0..80).prop_map(Op::Garbage),
            (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::Mutate(i, v)),
            any::<u8>().prop_map(Op::Hairpin),
            any::<bool>().prop_map(Op::Kill),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Peer bytes never panic a node, and timers always move forward.
        #[test]
        fn nodes_survive_arbitrary_input_and_timers_advance(ops in proptest::collection::vec(op(), 1..40)) {
            let mut sim = topology(|h| h.redirect = true, |s| {
                s.shortcut = true;
                s.local_prefixes.push(Prefix::new(s.tunnel_addr, 24));
            });
            for op in ops {
                let now = sim.now;
                match op {
                    Op::Advance(s) => sim.run_for(Duration::from_secs(u64::from(s))),
                    Op::Resolve(x) => {
                        sim.nodes[1].core_mut().resolve(now, Ipv4Addr::new(10, 0, 0, x));
                    }
                    Op::Garbage(bytes) => {
                        for n in 0..3 {
                            sim.nodes[n].handle_input(now, ip("172.17.0.99"), &bytes);
                        }
                    }
                    Op::Mutate(i, v) => {
                        if let Some((_, _, r)) = sim.log.last().cloned() {
                            let mut b = r.emit().unwrap();
                            let at = i % b.len();
                            b[at] = v;
                            if at != 12 && at != 13 {
                                b[12] = 0;
                                b[13] = 0;
                                let c = crate::wire::checksum(&b);
                                b[12..14].copy_from_slice(&c.to_be_bytes());
                            }
                            for n in 0..3 {
                                sim.nodes[n].handle_input(now, ip("172.17.0.11"), &b);
                            }
                        }
                    }
                    Op::Hairpin(x) => {
                        let pkt = data_packet("10.0.0.11", &format!("10.0.0.{x}"));
                        sim.nodes[0].core_mut().handle_hairpin(now, ip("172.17.0.11"), &pkt);
                    }
                    Op::Kill(down) => {
                        if down { sim.down.insert(2); } else { sim.down.remove(&2); }
                    }
                }
                sim.deliver();
                for n in 0..3 {
                    let now = sim.now;
                    sim.nodes[n].handle_timeout(now);
                    prop_assert!(sim.nodes[n].poll_timeout().is_none_or(|t| t > now));
                    let snap = sim.nodes[n].snapshot();
                    let _ = show::show_dmvpn(&[&snap], now);
                    let _ = show::show_ip_nhrp(&[&snap], now);
                    let _ = show::show_dmvpn_detail(&[&snap], now);
                    let _ = show::show_ip_nhrp_brief(&[&snap]);
                    let _ = show::show_ip_nhrp_traffic(&[&snap]);
                }
            }
        }
    }
}

/// Ten spokes over a link that loses one packet in five, for two hours of
/// virtual time: retransmissions keep every registration alive, and
/// resolutions eventually succeed.
#[test]
fn registrations_and_resolutions_survive_a_lossy_network() {
    let mut sim = Sim::new();
    sim.loss = 5;
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    for i in 0..10u8 {
        let t = format!("10.0.0.{}", 11 + i);
        let n = format!("172.17.0.{}", 11 + i);
        sim.add(
            Box::new(Nhc::new(spoke_cfg(&t, &n, &[HUB]), sim.now)),
            ip(&n),
        );
    }
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.nodes[0].snapshot().entries.len(), 10);
    for _ in 0..72 {
        sim.run_for(Duration::from_secs(100));
        assert_eq!(
            sim.nodes[0].snapshot().entries.len(),
            10,
            "a registration expired"
        );
        let now = sim.now;
        for s in 1..=10usize {
            let target = Ipv4Addr::new(10, 0, 0, 11 + (s % 10) as u8);
            let _ = sim.nodes[s].core_mut().resolve(now, target);
        }
    }
    assert!(
        !sim.events_of(0)
            .iter()
            .any(|e| matches!(e, Event::PeerExpired { .. }))
    );
    for s in 1..=10usize {
        let target = Ipv4Addr::new(10, 0, 0, 11 + (s % 10) as u8);
        assert!(
            sim.events_of(s)
                .iter()
                .any(|e| matches!(e, Event::Resolved { protocol, .. } if *protocol == target)),
            "spoke {s} never resolved {target}"
        );
    }
    assert!(sim.log.len() > 1000, "{} packets", sim.log.len());
}

/// guest-to-dmvpn item 1: an FRR spoke with `ip nhrp nhs dynamic nbma X` does
/// not know the NHS's tunnel address, so its Registration Request carries its
/// OWN address as destination (RFC 2332 §5.2.3), and it learns the NHS from the
/// reply's destination protocol address. The hub must put itself there.
#[test]
fn registration_reply_names_the_hub_when_the_request_did_not() {
    let mut sim = topology(|_| {}, |_| {});
    let mut req = sim.sent(1, OpType::REGISTRATION_REQUEST)[0].2.clone();
    assert_eq!(req.dst_proto.to_ipv4(), Some(ip("10.0.0.1")));
    // As FRR's `nhs dynamic` sends it: dst proto = src proto (the spoke itself).
    req.dst_proto = req.src_proto;
    let now = sim.now;
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &req.emit().unwrap());
    let t = sim.nodes[0].poll_transmit().expect("a registration reply");
    let rep = Packet::parse(&t.payload).unwrap();
    assert_eq!(rep.op, OpType::REGISTRATION_REPLY);
    assert_eq!(t.nbma_dst, ip("172.17.0.11"));
    assert_eq!(rep.request_id(), req.request_id());
    assert_eq!(rep.cies[0].code, Code::SUCCESS);
    assert_eq!(rep.src_proto.to_ipv4(), Some(ip("10.0.0.11")));
    assert_eq!(
        rep.dst_proto.to_ipv4(),
        Some(ip("10.0.0.1")),
        "the reply names the NHS, not the registering spoke"
    );
    // An IOS/Lifeline-style request (dst = NHS) gets the same answer.
    let rep = &sim.sent(0, OpType::REGISTRATION_REPLY)[0].2;
    assert_eq!(rep.dst_proto.to_ipv4(), Some(ip("10.0.0.1")));
}

/// guest-to-dmvpn item 2: FRR responders send the Resolution Reply along their
/// route to the requester, i.e. back through the hub. The hub forwards it to
/// the requester (hop count - 1) instead of dropping it as not its own.
#[test]
fn hub_forwards_resolution_reply_routed_through_it() {
    let mut sim = topology(|_| {}, |_| {});
    let now = sim.now;
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12")),
        Resolution::Pending
    );
    // Pump by hand: S1 -> hub -> S2, then S2's reply goes to the hub (FRR style).
    let req = sim.nodes[1].poll_transmit().unwrap();
    assert_eq!(req.nbma_dst, ip("172.17.0.1"));
    sim.nodes[0].handle_input(now, ip("172.17.0.11"), &req.payload);
    let fwd = sim.nodes[0].poll_transmit().unwrap();
    assert_eq!(fwd.nbma_dst, ip("172.17.0.12"));
    sim.nodes[2].handle_input(now, ip("172.17.0.1"), &fwd.payload);
    let reply = sim.nodes[2].poll_transmit().unwrap();
    let sent = Packet::parse(&reply.payload).unwrap();
    assert_eq!(sent.op, OpType::RESOLUTION_REPLY);
    let unexpected = sim.nodes[0].core().drops().unexpected;
    sim.nodes[0].handle_input(now, ip("172.17.0.12"), &reply.payload);
    let out = sim.nodes[0]
        .poll_transmit()
        .expect("the hub forwards the reply");
    assert_eq!(out.nbma_dst, ip("172.17.0.11"), "to the requester");
    let relayed = Packet::parse(&out.payload).unwrap();
    assert_eq!(relayed.op, OpType::RESOLUTION_REPLY);
    assert_eq!(relayed.hop_count, sent.hop_count - 1);
    assert_eq!(relayed.request_id(), sent.request_id());
    assert_eq!(relayed.cies, sent.cies);
    assert_eq!(sim.nodes[0].core().drops().unexpected, unexpected);
    let hub = sim.nodes[0].snapshot().traffic;
    assert_eq!(
        (hub.rcvd[1], hub.sent[1]),
        (1, 1),
        "Resolution Reply rcvd/sent"
    );
    sim.nodes[1].handle_input(now, ip("172.17.0.1"), &out.payload);
    assert_eq!(
        sim.nodes[1].core_mut().resolve(now, ip("10.0.0.12")),
        Resolution::Known {
            via: ip("10.0.0.12"),
            nbma: ip("172.17.0.12")
        }
    );

    // Hop count exhausted: dropped and counted, not sent on.
    let mut last = sent.clone();
    last.hop_count = 1;
    sim.nodes[0].handle_input(now, ip("172.17.0.12"), &last.emit().unwrap());
    assert!(sim.nodes[0].poll_transmit().is_none());
    assert_eq!(sim.nodes[0].core().drops().hop_limit, 1);
    // A reply for a requester the hub cannot reach is dropped as before.
    let mut stray = sent;
    stray.src_proto = ip("10.9.9.9").into();
    let unexpected = sim.nodes[0].core().drops().unexpected;
    sim.nodes[0].handle_input(now, ip("172.17.0.12"), &stray.emit().unwrap());
    assert!(sim.nodes[0].poll_transmit().is_none());
    assert_eq!(sim.nodes[0].core().drops().unexpected, unexpected + 1);
}

/// A node that is itself the NHS of a requester behind a masquerading NAT answers it directly: the
/// requester's registration gave it the post-NAT NBMA, and the NAT holds a mapping towards it. Here a
/// regional hub M (10.0.0.2, itself registered with the top hub H) owns 192.168.2.0/24 and is the NHS of
/// spoke S behind NAT (172.16.2.1 -> 172.18.2.1). Before, M sent its reply through its own NHS, H, which
/// knows nothing of S: the resolution never completed.
#[test]
fn nhs_of_a_natted_requester_answers_it_directly() {
    let mut sim = Sim::new();
    sim.add(
        Box::new(Nhs::new(hub_cfg(HUB.0, HUB.1), sim.now)),
        ip(HUB.1),
    );
    let mut m = hub_cfg("10.0.0.2", "172.17.0.2");
    m.static_maps.push((ip(HUB.0), ip(HUB.1)));
    m.multicast_static.push(ip(HUB.1));
    m.nhs.push(ip(HUB.0));
    m.local_prefixes.push(Prefix::new(ip("192.168.2.0"), 24));
    m.first_request_id = 200;
    sim.add(Box::new(Nhs::new(m, sim.now)), ip("172.17.0.2"));
    sim.add(
        Box::new(Nhc::new(
            spoke_cfg("10.0.0.12", "172.16.2.1", &[("10.0.0.2", "172.17.0.2")]),
            sim.now,
        )),
        ip("172.18.2.1"),
    );
    sim.masquerade = Some((2, vec![]));
    sim.run_for(Duration::from_secs(1));
    assert!(
        sim.events_of(1)
            .contains(&&Event::Registered { nhs: ip(HUB.0) }),
        "M is registered with H"
    );
    assert_eq!(
        sim.nodes[2].snapshot().post_nat_nbma,
        Some(ip("172.18.2.1")),
        "S is registered with M, behind NAT"
    );
    let now = sim.now;
    assert_eq!(
        sim.nodes[2].core_mut().resolve(now, ip("192.168.2.5")),
        Resolution::Pending
    );
    sim.deliver();
    let replies = sim.sent(1, OpType::RESOLUTION_REPLY);
    assert_eq!(
        replies.iter().map(|r| r.1).collect::<Vec<_>>(),
        [ip("172.18.2.1")],
        "M answers S at its post-NAT address, not through H"
    );
    assert_eq!(sim.masquerade_dropped, 0);
    assert_eq!(
        sim.nodes[2].core_mut().resolve(now, ip("192.168.2.5")),
        Resolution::Known {
            via: ip("10.0.0.2"),
            nbma: ip("172.17.0.2")
        }
    );
}

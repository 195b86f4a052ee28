//! An in-memory network of appliances: several [`Node`]s and a [`sip::Registrar`] joined by address, with
//! datagrams delivered in-process (no sockets, no threads).
//!
//! The cores are sans-io and take `now` as an argument, so the same network runs in real time (the caller
//! passes `Instant::now()` to every [`Sim::step`], as `lifeline bench` does) or in virtual time (the caller
//! advances its own `Instant`). Delivery is instantaneous and lossless and in FIFO order; a datagram to an
//! address nobody owns is counted in [`SimStats::unroutable`] and dropped, as a closed UDP port would.
//!
//! Addresses are owned the way the drivers own sockets: a node owns what it asked for with
//! [`Output::OpenPort`] until [`Output::ClosePort`]; the registrar owns its configured address. Inner packets
//! a node writes to a tunnel ([`Output::Tun`]) are collected for the caller in [`Sim::take_delivered`].
//!
//! A node's address can sit behind a one-to-one NAT ([`Sim::nat`]): its datagrams leave from the outside
//! address (ports kept), and datagrams to the outside address reach it.
//!
//! Work is proportional to the traffic, not to the number of nodes: only nodes that received input or
//! whose timer fell due are polled (timers sit in a heap keyed by each node's `poll_timeout`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::node::{Node, Output};
use crate::pkt::PacketBuf;

/// Who owns an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Node(usize),
    Registrar,
}

/// The registrar's slot in the timer heap.
const REGISTRAR: usize = usize::MAX;

struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    payload: PacketBuf,
}

/// An inner packet a node wrote to one of its tunnels (what its TUN device would have received).
#[derive(Debug, Clone)]
pub struct TunPacket {
    pub node: usize,
    pub tunnel: usize,
    pub packet: Vec<u8>,
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams to an address nobody owns.
    pub unroutable: u64,
    /// ESP as IP protocol 50 (the simulated network carries UDP only).
    pub raw_esp_dropped: u64,
    pub timeouts_fired: u64,
}

/// The network.
#[derive(Default)]
pub struct Sim {
    nodes: Vec<Node>,
    registrar: Option<sip::Registrar>,
    owners: HashMap<SocketAddr, Owner>,
    queue: VecDeque<Datagram>,
    /// Each participant's current deadline (`REGISTRAR` is kept separately).
    deadlines: Vec<Option<Instant>>,
    registrar_deadline: Option<Instant>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Nodes touched from outside (through [`Sim::node_mut`]) whose outputs are not drained yet.
    dirty: Vec<usize>,
    /// Nodes whose timer must be re-read (once per step: `Node::poll_timeout` is O(tunnels)).
    rearm: Vec<usize>,
    rearm_flag: Vec<bool>,
    rearm_registrar: bool,
    delivered: Vec<TunPacket>,
    /// One-to-one NAT: inside address -> outside address.
    nat: HashMap<IpAddr, IpAddr>,
    pub stats: SimStats,
}

impl Sim {
    pub fn new() -> Sim {
        Sim::default()
    }

    /// Attach the SIP registrar (it owns its configured address).
    pub fn set_registrar(&mut self, registrar: sip::Registrar) {
        self.owners.insert(registrar.addr(), Owner::Registrar);
        self.registrar = Some(registrar);
        self.refresh_registrar_timer();
    }

    /// Attach a node (not started yet); returns its index.
    pub fn add_node(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.deadlines.push(None);
        self.rearm_flag.push(false);
        self.nodes.len() - 1
    }

    /// Deliver datagrams to `addr` to node `node` (e.g. the IKE port of a static tunnel's source, which a
    /// node does not announce with [`Output::OpenPort`]); port 0 stands for raw ESP to and from that address.
    #[cfg(test)]
    pub fn bind(&mut self, addr: SocketAddr, node: usize) {
        self.owners.insert(addr, Owner::Node(node));
    }

    /// Put `inside` behind a one-to-one NAT at `outside` (source addresses rewritten on the way out, ports
    /// kept; datagrams to `outside` reach `inside`). UDP only: raw ESP cannot cross it, as with most NATs.
    #[cfg(test)]
    pub fn nat(&mut self, inside: IpAddr, outside: IpAddr) {
        self.nat.insert(inside, outside);
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, idx: usize) -> &Node {
        &self.nodes[idx]
    }

    /// Mutable access to a node (e.g. to call `ike.delete_ike_sa`); its outputs are drained on the next
    /// [`Sim::step`].
    pub fn node_mut(&mut self, idx: usize) -> &mut Node {
        self.dirty.push(idx);
        &mut self.nodes[idx]
    }

    /// Start every node (registration, static tunnels).
    pub fn start(&mut self, now: Instant) {
        for i in 0..self.nodes.len() {
            self.nodes[i].start(now);
            self.drain(i);
        }
        self.rearm_timers();
    }

    /// An inner packet enters tunnel `tunnel` of node `node` (as if read from its TUN device).
    pub fn handle_tun(&mut self, now: Instant, node: usize, tunnel: usize, packet: &[u8]) {
        self.nodes[node].handle_tun(now, tunnel, packet);
        self.drain(node);
        self.rearm_timers();
    }

    /// Packets nodes wrote to their tunnels since the last call.
    pub fn take_delivered(&mut self) -> Vec<TunPacket> {
        std::mem::take(&mut self.delivered)
    }

    /// Deliver every datagram queued before this call (answers they cause wait for the next step), then fire
    /// the timers due at `now`, each participant once. Returns how many datagrams and timers were handled.
    pub fn step(&mut self, now: Instant) -> usize {
        let mut work = 0;
        while let Some(i) = self.dirty.pop() {
            self.drain(i);
        }
        for _ in 0..self.queue.len() {
            let Some(d) = self.queue.pop_front() else {
                break;
            };
            work += 1;
            self.deliver(now, d);
        }
        self.rearm_timers();
        let mut due = Vec::new();
        while let Some(Reverse((t, who))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let current = if who == REGISTRAR {
                self.registrar_deadline
            } else {
                self.deadlines.get(who).copied().flatten()
            };
            // Stale entries (the deadline moved since) are skipped; each participant fires once per step.
            if current == Some(t) {
                due.push(who);
            }
        }
        due.sort_unstable();
        due.dedup();
        for who in due {
            work += 1;
            self.stats.timeouts_fired += 1;
            if who == REGISTRAR {
                if let Some(r) = &mut self.registrar {
                    r.handle_timeout(now);
                }
                self.registrar_deadline = None;
                self.drain_registrar();
            } else {
                self.nodes[who].handle_timeout(now);
                self.deadlines[who] = None;
                self.drain(who);
            }
        }
        self.rearm_timers();
        work
    }

    fn deliver(&mut self, now: Instant, mut d: Datagram) {
        if let Some((inside, _)) = self.nat.iter().find(|(_, out)| **out == d.to.ip()) {
            d.to.set_ip(*inside);
        }
        self.stats.datagrams += 1;
        self.stats.bytes += d.payload.len() as u64;
        match self.owners.get(&d.to).copied() {
            Some(Owner::Node(i)) if d.to.port() == 0 => {
                if let std::net::IpAddr::V4(from) = d.from.ip() {
                    self.nodes[i].handle_raw_esp(now, from, &d.payload, 0);
                }
                self.drain(i);
            }
            Some(Owner::Node(i)) => {
                self.nodes[i].handle_udp(now, d.to, d.from, &d.payload, 0);
                self.drain(i);
            }
            Some(Owner::Registrar) => {
                if let Some(r) = &mut self.registrar {
                    r.handle_input(now, d.from, &d.payload);
                }
                self.drain_registrar();
            }
            None => self.stats.unroutable += 1,
        }
    }

    /// Move node `i`'s outputs onto the network; its timer is re-armed at the end of the step.
    fn drain(&mut self, i: usize) {
        while let Some(o) = self.nodes[i].poll_output() {
            match o {
                Output::Udp {
                    mut local,
                    remote,
                    payload,
                    ..
                } => {
                    if let Some(out) = self.nat.get(&local.ip()) {
                        local.set_ip(*out);
                    }
                    self.queue.push_back(Datagram {
                        from: local,
                        to: remote,
                        payload,
                    })
                }
                // Raw ESP (IP protocol 50) goes between addresses bound with port 0 ([`Sim::bind`]).
                Output::RawEsp { dst, payload, .. } => {
                    let from = self
                        .owners
                        .iter()
                        .find(|(a, o)| a.port() == 0 && **o == Owner::Node(i))
                        .map(|(a, _)| *a);
                    match from {
                        Some(from) => self.queue.push_back(Datagram {
                            from,
                            to: SocketAddr::new(dst.into(), 0),
                            payload,
                        }),
                        None => self.stats.raw_esp_dropped += 1,
                    }
                }
                // No DHCP in the simulated network: configurations give static addresses.
                Output::Dhcp { .. } | Output::SetAddress { .. } | Output::Sip(_) => {}
                Output::Tun { tunnel, packet } => self.delivered.push(TunPacket {
                    node: i,
                    tunnel,
                    packet: packet.to_vec(),
                }),
                Output::OpenPort(a) => {
                    self.owners.insert(a, Owner::Node(i));
                }
                Output::ClosePort(a) => {
                    if self.owners.get(&a) == Some(&Owner::Node(i)) {
                        self.owners.remove(&a);
                    }
                }
            }
        }
        if !self.rearm_flag[i] {
            self.rearm_flag[i] = true;
            self.rearm.push(i);
        }
    }

    fn rearm_timers(&mut self) {
        if std::mem::take(&mut self.rearm_registrar) {
            self.refresh_registrar_timer();
        }
        while let Some(i) = self.rearm.pop() {
            self.rearm_flag[i] = false;
            let t = self.nodes[i].poll_timeout();
            if t != self.deadlines[i] {
                self.deadlines[i] = t;
                if let Some(t) = t {
                    self.timers.push(Reverse((t, i)));
                }
            }
        }
    }

    fn drain_registrar(&mut self) {
        let Some(r) = &mut self.registrar else { return };
        let from = r.addr();
        while let Some(tx) = r.poll_transmit() {
            self.queue.push_back(Datagram {
                from,
                to: tx.to,
                payload: PacketBuf::from_vec(tx.payload),
            });
        }
        self.rearm_registrar = true;
    }

    fn refresh_registrar_timer(&mut self) {
        let t = self.registrar.as_ref().and_then(|r| r.poll_timeout());
        if t != self.registrar_deadline {
            self.registrar_deadline = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t, REGISTRAR)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Topology, echo_packet};
    use crate::show::vpnsip::SessionStatus;
    use std::time::Duration;

    /// Virtual time: the whole VPN-SIP story (register, INVITE, IKE, ESP) on the in-memory network.
    #[test]
    fn first_packet_crosses_an_idle_vpnsip_tunnel_in_virtual_time() {
        let t0 = Instant::now();
        let topo = Topology::new(2);
        let mut sim = topo.build_sim(t0).unwrap();
        let mut now = t0;
        sim.start(now);
        while !topo.all_registered(&sim) {
            now += Duration::from_millis(1);
            sim.step(now);
            assert!(now < t0 + Duration::from_secs(5), "registration stalled");
        }
        for far in 0..2 {
            sim.handle_tun(now, 0, far, &echo_packet(far as u16, 1));
        }
        let mut got = Vec::new();
        while got.len() < 2 {
            now += Duration::from_millis(1);
            sim.step(now);
            got.extend(sim.take_delivered());
            assert!(
                now < t0 + Duration::from_secs(5),
                "no delivery: {:?}",
                sim.stats
            );
        }
        let mut nodes: Vec<usize> = got.iter().map(|p| p.node).collect();
        nodes.sort();
        assert_eq!(nodes, vec![1, 2]);
        // Delivered as sent, but for the DSCP CS4 the VPN-SIP policy marks (first packet included).
        assert_eq!(
            got[0].packet,
            crate::bench::marked_cs4(&echo_packet(got[0].node as u16 - 1, 1))
        );
        for s in &sim.node(0).vpnsip.as_ref().unwrap().sessions {
            assert!(matches!(s.status, SessionStatus::SessionUp(_)));
        }
        assert_eq!(sim.stats.unroutable, 0);
    }

    /// The per-session port pool: with two ports, the third concurrent session is refused with the reason
    /// shown (no loop, no shared port); once sessions end their ports serve the next one.
    #[test]
    fn session_port_pool_exhaustion_refuses_the_extra_session_and_reuses_freed_ports() {
        let t0 = Instant::now();
        let topo = Topology::new(3);
        let mut sim = Sim::new();
        sim.set_registrar(topo.registrar());
        let appliance = topo.appliance_config().replace(
            "vpn-sip enable\n",
            "vpn-sip enable\nvpn-sip session-port range 50001 50002\n",
        );
        assert!(appliance.contains("session-port range"));
        sim.add_node(crate::bench::node(&appliance, t0, "appliance").unwrap());
        for i in 0..3 {
            sim.add_node(crate::bench::node(&topo.far_config(i), t0, "far end").unwrap());
        }
        let mut now = t0;
        sim.start(now);
        while !topo.all_registered(&sim) {
            now += Duration::from_millis(1);
            sim.step(now);
            assert!(now < t0 + Duration::from_secs(5), "registration stalled");
        }
        let run = |sim: &mut Sim, now: &mut Instant, want: usize| {
            let mut got = Vec::new();
            let until = *now + Duration::from_secs(2);
            while *now < until {
                *now += Duration::from_millis(1);
                sim.step(*now);
                got.extend(sim.take_delivered());
            }
            assert_eq!(got.len(), want, "{:?}", sim.stats);
        };
        for far in 0..3 {
            sim.handle_tun(now, 0, far, &echo_packet(far as u16, 1));
        }
        run(&mut sim, &mut now, 2);
        let v = sim.node(0).vpnsip.as_ref().unwrap();
        let up: Vec<u16> = v
            .sessions
            .iter()
            .filter(|s| matches!(s.status, SessionStatus::SessionUp(_)))
            .map(|s| s.port)
            .collect();
        assert_eq!(up.len(), 2);
        assert_ne!(up[0], up[1]);
        assert!(up.iter().all(|p| (50001..=50002).contains(p)), "{up:?}");
        let refused = &v.sessions[2];
        assert_eq!(refused.status, SessionStatus::ReadyToConnect);
        assert_eq!(refused.port, 0);
        assert_eq!(
            refused.last_failure.as_deref(),
            Some("no free session port (50001-50002 all in use)")
        );
        // End every session: the ports come back and the refused tunnel gets one on its next packet.
        sim.node_mut(0).clear_vpnsip_sessions(now);
        run(&mut sim, &mut now, 0);
        sim.handle_tun(now, 0, 2, &echo_packet(2, 2));
        run(&mut sim, &mut now, 1);
        let s = &sim.node(0).vpnsip.as_ref().unwrap().sessions[2];
        assert!(matches!(s.status, SessionStatus::SessionUp(_)));
        assert!((50001..=50002).contains(&s.port));
    }

    /// A failed session is retried with backoff, visibly: the far end holds another key, so every IKE
    /// attempt fails; packets during the backoff place no call; after it, the next packet calls again and
    /// the delay doubles. `show vpn-sip session detail` shows the count and the next attempt.
    #[test]
    fn failed_sessions_are_retried_with_backoff_and_shown() {
        let t0 = Instant::now();
        let topo = Topology::new(1);
        let mut sim = Sim::new();
        sim.set_registrar(topo.registrar());
        sim.add_node(crate::bench::node(&topo.appliance_config(), t0, "appliance").unwrap());
        let far = topo
            .far_config(0)
            .replace("pre-shared-key bench-key-0", "pre-shared-key another-key");
        sim.add_node(crate::bench::node(&far, t0, "far end").unwrap());
        let mut now = t0;
        sim.start(now);
        while !topo.all_registered(&sim) {
            now += Duration::from_millis(1);
            sim.step(now);
            assert!(now < t0 + Duration::from_secs(5), "registration stalled");
        }
        let session = |sim: &Sim| {
            let s = &sim.node(0).vpnsip.as_ref().unwrap().sessions[0];
            (s.calls, s.failures, s.last_failure.clone())
        };
        let detail = |sim: &Sim, now: Instant| {
            let v = sim.node(0).vpnsip.as_ref().unwrap();
            crate::show::vpnsip::session(&v.views(now, |_| "Tunnel0".into()), true)
        };
        let run = |sim: &mut Sim, now: &mut Instant, ms: u64| {
            for _ in 0..ms {
                *now += Duration::from_millis(1);
                sim.step(*now);
            }
        };
        sim.handle_tun(now, 0, 0, &echo_packet(0, 1));
        run(&mut sim, &mut now, 100);
        let (calls, failures, failure) = session(&sim);
        assert_eq!((calls, failures), (1, 1));
        assert!(failure.is_some_and(|f| f.contains("IKE")), "first attempt");
        let shown = detail(&sim, now);
        assert!(
            shown.contains("  Retries: 1, next attempt in 1 s"),
            "{shown}"
        );
        // Within the 1 s backoff: no call.
        sim.handle_tun(now, 0, 0, &echo_packet(0, 2));
        run(&mut sim, &mut now, 100);
        assert_eq!(session(&sim).0, 1, "a call was placed during the backoff");
        // After it: a second call, which fails too; now 2 s.
        run(&mut sim, &mut now, 900);
        sim.handle_tun(now, 0, 0, &echo_packet(0, 3));
        run(&mut sim, &mut now, 100);
        assert_eq!((session(&sim).0, session(&sim).1), (2, 2));
        let shown = detail(&sim, now);
        assert!(
            shown.contains("  Retries: 2, next attempt in 2 s"),
            "{shown}"
        );
        assert_eq!(
            sim.node(0).tunnels[0]
                .dp
                .lock()
                .snapshot(now)
                .counters
                .encaps,
            0
        );
    }

    /// Start the network, then ping from each of the two nodes' tunnel 0 to the other's every 100 ms (the
    /// first ones may go out on an SA pair that loses the duplicate rule) until packets arrived both ways;
    /// returns the virtual time then.
    fn ping_both_ways_until_delivered(sim: &mut Sim, a: usize, b: usize, t0: Instant) -> Instant {
        let mut now = t0;
        sim.start(now);
        sim.handle_tun(now, a, 0, &echo_packet(1, 1));
        sim.handle_tun(now, b, 0, &echo_packet(2, 1));
        let (mut to_b, mut to_a) = (false, false);
        let mut seq = 1;
        while !(to_a && to_b) {
            now += Duration::from_millis(5);
            if (now - t0).as_millis().is_multiple_of(100) {
                seq += 1;
                sim.handle_tun(now, a, 0, &echo_packet(1, seq));
                sim.handle_tun(now, b, 0, &echo_packet(2, seq));
            }
            sim.step(now);
            for p in sim.take_delivered() {
                to_a |= p.node == a;
                to_b |= p.node == b;
            }
            assert!(
                now < t0 + Duration::from_secs(5),
                "no delivery both ways: {:?}",
                sim.stats
            );
        }
        now
    }

    /// A node from a configuration that parses cleanly and builds without problems.
    fn node_of(text: &str) -> Node {
        let parsed = config::parse(text);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let (node, problems) = Node::new(Instant::now(), parsed.config, 7);
        assert!(problems.is_empty(), "{problems:?}");
        node
    }

    fn ikev1_site(wan: &str, peer: Option<&str>) -> Node {
        let dest = peer
            .map(|d| format!(" tunnel destination {d}\n"))
            .unwrap_or_default();
        let text = format!(
            "crypto isakmp policy 10\n encr aes 256\n hash sha256\n authentication pre-share\n group 14\n\
             crypto isakmp key k address 0.0.0.0 0.0.0.0\n\
             crypto ipsec transform-set T1 esp-aes 256 esp-sha256-hmac\n\
             crypto ipsec profile P1\n set transform-set T1\n!\n\
             interface GigabitEthernet0\n ip address {wan} 255.255.255.0\n!\n\
             interface Tunnel0\n ip address 172.16.0.1 255.255.255.252\n tunnel source GigabitEthernet0\n\
             tunnel mode ipsec ipv4\n{dest} tunnel protection ipsec profile P1\n"
        );
        node_of(&text)
    }

    /// Both ends of an IKEv1 static VTI start main mode at the same instant and both send INITIAL-CONTACT:
    /// traffic still crosses within a few seconds both ways (CI once saw each end drop its own main mode
    /// on the other's INITIAL-CONTACT, and nothing negotiated again until the 30 s acquire timeout).
    #[test]
    fn ikev1_static_vti_started_at_both_ends_at_once_carries_traffic() {
        let t0 = Instant::now();
        let mut sim = Sim::new();
        let a = sim.add_node(ikev1_site("192.0.2.1", Some("192.0.2.2")));
        let b = sim.add_node(ikev1_site("192.0.2.2", Some("192.0.2.1")));
        for (n, ip) in [(a, "192.0.2.1"), (b, "192.0.2.2")] {
            for port in [0, 500, 4500] {
                sim.bind(SocketAddr::new(ip.parse().unwrap(), port), n);
            }
        }
        let now = ping_both_ways_until_delivered(&mut sim, a, b, t0);
        // One ISAKMP SA and one IPsec SA pair left at each end.
        for n in [a, b] {
            let v1 = sim.node(n).ikev1.as_ref().unwrap().snapshot(now);
            let kids: usize = v1.iter().map(|s| s.children.len()).sum();
            assert_eq!(kids, 1, "{v1:?}");
        }
    }

    fn ikev2_site(wan: &str, peer: &str) -> Node {
        let text = format!(
            "crypto ikev2 keyring K\n peer any\n  address 0.0.0.0 0.0.0.0\n  pre-shared-key k\n!\n\
             crypto ikev2 profile P\n match identity remote any\n authentication remote pre-share\n\
             authentication local pre-share\n keyring local K\n!\n\
             crypto ipsec profile P1\n set ikev2-profile P\n!\n\
             interface GigabitEthernet0\n ip address {wan} 255.255.255.0\n!\n\
             interface Tunnel0\n ip address 172.16.0.1 255.255.255.252\n tunnel source GigabitEthernet0\n\
             tunnel mode ipsec ipv4\n tunnel destination {peer}\n tunnel protection ipsec profile P1\n"
        );
        node_of(&text)
    }

    /// Both ends of an IKEv2 static VTI behind their own NAT start IKE at the same instant: exactly one IKE
    /// SA survives, the same at both ends, and traffic crosses. Each end sees its own private address and
    /// the other's public one, so a tie-break on addresses had both ends think they were "lower" and each
    /// delete the SA the other kept (both went, and the next acquire raced again).
    #[test]
    fn ikev2_static_vti_both_behind_nat_started_at_once_keeps_one_ike_sa() {
        let t0 = Instant::now();
        let mut sim = Sim::new();
        let a = sim.add_node(ikev2_site("10.0.1.1", "203.0.113.2"));
        let b = sim.add_node(ikev2_site("10.0.2.1", "198.51.100.1"));
        sim.nat("10.0.1.1".parse().unwrap(), "198.51.100.1".parse().unwrap());
        sim.nat("10.0.2.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        for (n, ip) in [(a, "10.0.1.1"), (b, "10.0.2.1")] {
            for port in [500, 4500] {
                sim.bind(SocketAddr::new(ip.parse().unwrap(), port), n);
            }
        }
        let mut now = ping_both_ways_until_delivered(&mut sim, a, b, t0);
        // Let every DELETE be answered, then: one established IKE SA at each end, the same one, over 4500.
        for _ in 0..200 {
            now += Duration::from_millis(5);
            sim.step(now);
        }
        let sas = |n: usize| {
            let snap = sim.node(n).ike.snapshot(now);
            snap.ike_sas
                .iter()
                .filter(|s| s.status == "READY")
                .map(|s| (s.spi_i, s.spi_r, s.remote.port()))
                .collect::<Vec<_>>()
        };
        let (sa_a, sa_b) = (sas(a), sas(b));
        assert_eq!(sa_a.len(), 1, "{sa_a:?}");
        assert_eq!(
            sa_a.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            sa_b.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>()
        );
        assert_eq!(sa_a[0].2, 4500);
        for n in [a, b] {
            assert!(sim.node(n).tunnels[0].dp.lock().outbound_spi().is_some());
        }
    }

    /// A static tunnel whose IKE SA goes away while packets wait for it negotiates again at once, not
    /// only when the data plane's acquire times out.
    #[test]
    fn static_tunnel_losing_its_ike_sa_while_packets_wait_negotiates_again() {
        let t0 = Instant::now();
        let mut sim = Sim::new();
        let a = sim.add_node(ikev1_site("192.0.2.1", Some("192.0.2.9")));
        sim.start(t0);
        sim.handle_tun(t0, a, 0, &echo_packet(1, 1));
        let first = sim.node(a).tunnels[0].ike_sa.expect("main mode started");
        sim.node_mut(a).ike_delete(t0, first);
        sim.node_mut(a).pump(t0);
        let again = sim.node(a).tunnels[0].ike_sa;
        assert!(again.is_some_and(|id| id != first), "{again:?}");
    }

    /// Several local numbers: the appliance (node 0) has 0399999999 on Tunnel0 (far end 0) and 0399999998
    /// on Tunnel1 (far end 1), each tunnel with its own IKEv2 profile. Far end 0 calls 0399999999 and the
    /// appliance calls far end 1 from 0399999998 (far end 1 takes only that caller): both sessions are up
    /// at once and carry traffic on the right tunnel; both numbers are registered and shown; an INVITE to
    /// a number the appliance does not have gets 404 and is counted.
    #[test]
    fn two_local_numbers_each_bound_to_its_tunnel() {
        const SECOND: &str = "0399999998";
        let t0 = Instant::now();
        let topo = Topology::new(2);
        let mut sim = Sim::new();
        sim.set_registrar(topo.registrar());
        let profile2 = "crypto ikev2 profile vpn-sip-profile2\n match identity remote any\n \
            authentication local pre-share\n authentication remote pre-share\n \
            keyring local vpn-sip-keyring\n nat force-encap\n!\n";
        let appliance = topo
            .appliance_config()
            .replacen(
                "crypto ikev2 profile vpn-sip-profile\n",
                &format!("{profile2}crypto ikev2 profile vpn-sip-profile\n"),
                1,
            )
            .replacen(
                "vpn-sip tunnel source",
                &format!(
                    "vpn-sip local-number {SECOND} address ipv4 GigabitEthernet1\nvpn-sip tunnel source"
                ),
                1,
            )
            .replacen(
                "ikev2-profile vpn-sip-profile\n vpn-sip local-number 0399999999 remote-number 0310000001",
                &format!(
                    "ikev2-profile vpn-sip-profile2\n vpn-sip local-number {SECOND} remote-number 0310000001"
                ),
                1,
            );
        assert!(
            appliance.contains("ikev2-profile vpn-sip-profile2\n vpn-sip local-number 0399999998")
        );
        let parsed = config::parse(&appliance);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        sim.add_node(crate::bench::node(&appliance, t0, "appliance").unwrap());
        sim.add_node(crate::bench::node(&topo.far_config(0), t0, "far end 0").unwrap());
        let far1 = topo.far_config(1).replace("0399999999", SECOND);
        sim.add_node(crate::bench::node(&far1, t0, "far end 1").unwrap());
        let mut now = t0;
        sim.start(now);
        while !topo.all_registered(&sim) {
            now += Duration::from_millis(1);
            sim.step(now);
            assert!(now < t0 + Duration::from_secs(5), "registration stalled");
        }
        let status = crate::show::answer(
            sim.node(0),
            t0,
            crate::show::ShowCommand::VpnSipRegistrationStatus,
            &[],
            false,
        );
        assert_eq!(
            status,
            "SIP registration of local number 0399999999 : registered 100.64.0.1\n\
             SIP registration of local number 0399999998 : registered 100.64.0.1\n"
        );
        // Far end 0 calls the first number; the appliance calls far end 1 from the second.
        sim.handle_tun(now, 1, 0, &echo_packet(100, 1));
        sim.handle_tun(now, 0, 1, &echo_packet(1, 1));
        let mut got = Vec::new();
        while got.len() < 2 {
            now += Duration::from_millis(1);
            sim.step(now);
            got.extend(sim.take_delivered());
            assert!(
                now < t0 + Duration::from_secs(5),
                "no delivery: {:?} {got:?}",
                sim.stats
            );
        }
        let mut at: Vec<(usize, usize)> = got.iter().map(|p| (p.node, p.tunnel)).collect();
        at.sort();
        assert_eq!(at, vec![(0, 0), (2, 0)]);
        let v = sim.node(0).vpnsip.as_ref().unwrap();
        let sessions: Vec<(&str, &str, SessionStatus)> = v
            .sessions
            .iter()
            .map(|s| (s.local_number.as_str(), s.remote_number.as_str(), s.status))
            .collect();
        use crate::show::vpnsip::Role;
        assert_eq!(
            sessions,
            vec![
                (
                    "0399999999",
                    "0310000000",
                    SessionStatus::SessionUp(Role::Responder)
                ),
                (
                    SECOND,
                    "0310000001",
                    SessionStatus::SessionUp(Role::Initiator)
                ),
            ]
        );
        // The far ends saw the caller / callee each tunnel is bound to.
        let far = |n: usize| {
            sim.node(n).vpnsip.as_ref().unwrap().sessions[0]
                .remote_number
                .clone()
        };
        assert_eq!(far(1), "0399999999");
        assert_eq!(far(2), SECOND);
        // Traffic back on both tunnels while both sessions are up.
        sim.handle_tun(now, 0, 0, &echo_packet(0, 2));
        sim.handle_tun(now, 2, 0, &echo_packet(101, 2));
        let mut got = Vec::new();
        let until = now + Duration::from_millis(200);
        while now < until {
            now += Duration::from_millis(1);
            sim.step(now);
            got.extend(sim.take_delivered());
        }
        let mut at: Vec<(usize, usize)> = got.iter().map(|p| (p.node, p.tunnel)).collect();
        at.sort();
        assert_eq!(at, vec![(0, 1), (1, 0)]);

        // An INVITE for a number the appliance does not have: 404, counted, shown.
        let registrar = SocketAddr::new(topo.registrar.into(), crate::vpnsip::SIP_PORT);
        let appliance_sip = SocketAddr::new(topo.appliance_wan.into(), crate::vpnsip::SIP_PORT);
        let invite = format!(
            "INVITE sip:0399999997@{appliance_sip} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {registrar};branch=z9hG4bKnotours1\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:0310000000@{}>;tag=x1\r\n\
             To: <sip:0399999997@{}>\r\n\
             Call-ID: not-ours-1\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
            topo.registrar, topo.registrar
        );
        sim.queue.push_back(Datagram {
            from: registrar,
            to: appliance_sip,
            payload: PacketBuf::from_vec(invite.into_bytes()),
        });
        now += Duration::from_millis(1);
        sim.step(now);
        let snap = sim.node(0).vpnsip.as_ref().unwrap().ua.snapshot(now);
        assert_eq!(snap.unknown_number_calls, 1);
        let status = crate::show::answer(
            sim.node(0),
            t0,
            crate::show::ShowCommand::VpnSipRegistrationStatus,
            &[],
            false,
        );
        assert!(
            status.ends_with("Calls to unknown numbers refused (404): 1\n"),
            "{status}"
        );
        // A valid call to 0399999999 from a caller no tunnel of that number is bound to: 404, counted.
        let offer = sip::IkeSdp {
            addr: "100.65.0.9".parse().unwrap(),
            port: 50009,
            transport: sip::IkeTransport::UdpEncap,
            setup: sip::Setup::Active,
            fingerprint: sip::Fingerprint::new(sip::HashFunc::Sha1, vec![0xAB; 20]),
            bandwidth_kbps: 1000,
        }
        .to_sdp(1, 1);
        let invite = format!(
            "INVITE sip:0399999999@{appliance_sip} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {registrar};branch=z9hG4bKstranger1\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:0310000099@{r}>;tag=x2\r\n\
             To: <sip:0399999999@{r}>\r\n\
             Call-ID: stranger-1\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{offer}",
            offer.len(),
            r = topo.registrar,
        );
        sim.queue.push_back(Datagram {
            from: registrar,
            to: appliance_sip,
            payload: PacketBuf::from_vec(invite.into_bytes()),
        });
        now += Duration::from_millis(1);
        sim.step(now);
        assert_eq!(sim.node(0).vpnsip.as_ref().unwrap().unknown_caller_calls, 1);
        let status = crate::show::answer(
            sim.node(0),
            t0,
            crate::show::ShowCommand::VpnSipRegistrationStatus,
            &[],
            false,
        );
        assert!(
            status.ends_with(
                "Calls to unknown numbers refused (404): 1\n\
                 Calls from numbers without a VPN-SIP tunnel refused (404): 1\n"
            ),
            "{status}"
        );
        // The sessions are untouched.
        let v = sim.node(0).vpnsip.as_ref().unwrap();
        assert!(
            v.sessions
                .iter()
                .all(|s| matches!(s.status, SessionStatus::SessionUp(_)))
        );
    }

    #[test]
    fn datagram_to_unowned_address_is_counted_and_dropped() {
        let now = Instant::now();
        let mut sim = Sim::new();
        sim.queue.push_back(Datagram {
            from: "192.0.2.1:1".parse().unwrap(),
            to: "192.0.2.2:2".parse().unwrap(),
            payload: PacketBuf::from_vec(vec![1, 2, 3]),
        });
        assert_eq!(sim.step(now), 1);
        assert_eq!(sim.stats.unroutable, 1);
        assert_eq!(sim.step(now), 0);
    }
}

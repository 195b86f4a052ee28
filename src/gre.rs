//! User-space GRE tunnels (RFC 2784, RFC 2890 key) and DMVPN's NHRP on them, without I/O.
//!
//! Every `interface TunnelN` with `tunnel mode gre ip` (point-to-point, `tunnel destination`) or
//! `tunnel mode gre multipoint` (mGRE) is one [`GreTunnel`]: a TUN device inside, GRE over raw IP protocol 47
//! outside (the appliance needs no kernel GRE module). Received GRE is matched to its tunnel by the `nhrp`
//! crate's [`GreDemux`] (outer destination, outer source, key; point-to-point tunnels before multipoint ones).
//! An mGRE tunnel with `ip nhrp ...` runs an NHRP node: an NHS (hub) when it has no `ip nhrp nhs`, an NHC
//! (spoke) otherwise. The daemon feeds bytes and time in ([`Gre::handle_gre`], [`Gre::handle_tun`],
//! [`Gre::handle_timeout`]) and carries out the [`GreOut`]s; nothing here touches a socket.
//!
//! Forwarding on mGRE (the TUN device hides the kernel's next hop, so the tunnel decides it again):
//! 1. the longest complete NHRP cache entry covering the destination (static map, registration, resolution,
//!    shortcut) gives the NBMA address;
//! 2. else the next hop of the overlay route (a static route over this tunnel, or the destination itself when
//!    it is in the tunnel's subnet); a spoke resolves that next hop through its NHS (phase 2) and sends via
//!    the NHS meanwhile; a next hop that is an NHS is sent to directly;
//! 3. else a spoke sends to its NHS, a hub drops (counted).
//!
//! A hub forwards spoke-to-spoke packets itself (decapsulate, TTL - 1, encapsulate to the other spoke) and,
//! with `ip nhrp redirect`, tells the sender with a traffic indication (phase 3); a spoke with
//! `ip nhrp shortcut` resolves and reports the shortcut as [`GreOut::RouteAdd`] for the kernel table.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nhrp::demux::{GreDemux, TunnelId};
use nhrp::wire::gre;
use nhrp::{Event, Nhc, NhrpNode, Nhs, Prefix, Resolution};

use crate::ios;
use crate::pkt::{GRE_HEADROOM, PacketBuf};

/// Default `ip mtu` of a GRE tunnel over a 1500-byte path (IOS: 1476 = 1500 - 20 - 4; with a key 1472).
fn default_mtu(key: Option<u32>) -> u16 {
    if key.is_some() { 1472 } else { 1476 }
}

/// What the GRE side wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum GreOut {
    /// A GRE packet (header and payload) of tunnel `tunnel` to send as IP protocol 47 from `src` to `dst`.
    Ip {
        tunnel: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: PacketBuf,
    },
    /// A protected GRE packet: ESP (IP protocol 50, transport mode) to `dst` (see `crate::gre_esp`).
    Esp { dst: Ipv4Addr, payload: PacketBuf },
    /// An inner packet for tunnel `tunnel`'s TUN device.
    Tun { tunnel: usize, packet: PacketBuf },
    /// Install `prefix/len` over tunnel `tunnel`'s device in the kernel (an NHRP shortcut).
    RouteAdd {
        tunnel: usize,
        prefix: Ipv4Addr,
        len: u8,
    },
    /// Remove it again; `restore` is the configured static route's gateway for the same prefix, if any.
    RouteDel {
        tunnel: usize,
        prefix: Ipv4Addr,
        len: u8,
        restore: Option<Ipv4Addr>,
    },
}

/// Per-tunnel counters (`show interface`-like, and `show dmvpn detail` input).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GreCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Spoke-to-spoke packets the hub forwarded itself.
    pub hairpinned: u64,
    /// Protected packets for a peer whose SA was not up yet, sent through the NHS instead.
    pub detoured: u64,
    /// Packets with no NBMA address to go to.
    pub no_route: u64,
    /// Inner packets that were not IPv4, or TTL ran out while forwarding.
    pub dropped: u64,
    pub nhrp_in: u64,
    pub nhrp_out: u64,
    /// Copies of multicast/broadcast packets sent to the NHRP multicast list (one per target).
    pub multicast_out: u64,
    /// Multicast/broadcast packets received from the cloud (routing protocols' hellos, ...).
    pub multicast_in: u64,
}

/// One `interface TunnelN` in a GRE mode.
pub struct GreTunnel {
    pub ios_name: String,
    /// The Linux TUN device.
    pub device: String,
    pub address: Option<(Ipv4Addr, u8)>,
    /// `tunnel source` (address, or the named interface's).
    pub source: Ipv4Addr,
    /// `tunnel destination` of a point-to-point tunnel (None: multipoint).
    pub destination: Option<Ipv4Addr>,
    pub key: Option<u32>,
    /// `ip mtu` (or the GRE default).
    pub mtu: u16,
    pub adjust_mss: Option<u16>,
    /// `tunnel protection`: the IKEv2 profile that keys each peer's transport-mode SA pair.
    pub protect: Option<String>,
    /// `tunnel protection ipsec profile P shared`: (P, the `tunnel source` interface's name).
    pub shared: Option<(String, String)>,
    /// The tunnel whose SA database this one uses (its own index unless `shared` with an earlier tunnel
    /// on the same source and profile): `crate::gre_esp` keys peers by (sadb, NBMA peer).
    pub sadb: usize,
    /// `tunnel protection` whose IPsec profile names no IKEv2 profile: IKEv1 keys each peer's SA pair
    /// (`crate::ikev1`, the GRE quick-mode set).
    pub protect_v1: bool,
    /// The NHRP node of an mGRE tunnel with `ip nhrp` commands.
    pub nhrp: Option<Box<dyn NhrpNode + Send>>,
    /// True for an NHS (hub).
    pub hub: bool,
    /// Static routes over this tunnel: (prefix, next hop in the tunnel's subnet).
    routes: Vec<(Prefix, Ipv4Addr)>,
    /// Kernel routes over this tunnel's device with a gateway (a routing daemon such as FRR, or
    /// `ip route`): the TUN device hides the gateway a packet was routed to, so the tunnel keeps its own copy.
    kernel_routes: Vec<(Prefix, Ipv4Addr)>,
    /// Shortcut routes reported to the kernel.
    shortcuts: Vec<Prefix>,
    pub counters: GreCounters,
}

impl GreTunnel {
    /// `tunnel protection` is configured (keyed by IKEv2 or IKEv1).
    pub fn protected(&self) -> bool {
        self.protect.is_some() || self.protect_v1
    }

    fn in_subnet(&self, a: Ipv4Addr) -> bool {
        self.address
            .is_some_and(|(own, len)| Prefix::new(own, len).contains(a))
    }

    /// The NBMA address of the NHS to use: the first that is up, else the first with a known address.
    fn nhs_nbma(&self) -> Option<Ipv4Addr> {
        self.nhrp
            .as_ref()?
            .core()
            .active_nhs()
            .map(|(_, nbma)| nbma)
    }

    /// The NHS's NBMA address when this is a spoke and `nbma` is not an NHS: where packets for `nbma` can go
    /// while it cannot be reached directly.
    ///
    /// Only for peers learnt by resolution: never for a client registered here (a regional hub, or a hub
    /// whose NHS is the other hub, would send its own clients' traffic up and get it back) nor a static map.
    pub fn detour_nbma(&self, nbma: Ipv4Addr) -> Option<Ipv4Addr> {
        let core = self.nhrp.as_ref()?.core();
        if self.hub || core.is_nhs_nbma(nbma) {
            return None;
        }
        if core.cache().iter().any(|e| {
            e.nbma == Some(nbma) && (e.flags.registered || e.kind == nhrp::EntryType::Static)
        }) {
            return None;
        }
        core.active_nhs().map(|(_, n)| n).filter(|n| *n != nbma)
    }

    fn is_nhs(&self, a: Ipv4Addr) -> bool {
        self.nhrp
            .as_ref()
            .is_some_and(|n| n.core().config().nhs.contains(&a))
    }

    /// Longest complete cache entry covering `dst`.
    fn cached(&self, dst: Ipv4Addr) -> Option<(Prefix, Ipv4Addr)> {
        let cache = self.nhrp.as_ref()?.core().cache();
        (0..=32u8).rev().find_map(|len| {
            let p = Prefix::new(dst, len);
            cache
                .get(&p)
                .filter(|e| e.is_complete())
                .and_then(|e| e.nbma.map(|n| (p, n)))
        })
    }

    /// Next hop of the overlay route for `dst` (longest static route; `dst` itself on the subnet).
    fn overlay_next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.in_subnet(dst) {
            return Some(dst);
        }
        self.routes
            .iter()
            .chain(&self.kernel_routes)
            .filter(|(p, _)| p.contains(dst))
            .max_by_key(|(p, _)| p.prefix_len())
            .map(|(_, nh)| *nh)
    }

    /// Where a packet for `dst` goes on this mGRE tunnel (see the module docs).
    fn next_nbma(&mut self, now: Instant, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let own = self.address.map(|(a, _)| a);
        if let Some((_, nbma)) = self.cached(dst) {
            // Marks the entry used (refreshed before it expires).
            if let Some(n) = self.nhrp.as_mut() {
                let _ = n.core_mut().resolve(now, dst);
            }
            return Some(nbma);
        }
        let nh = self.overlay_next_hop(dst).filter(|nh| Some(*nh) != own);
        if let Some(nh) = nh
            && let Some((_, nbma)) = self.cached(nh)
        {
            if let Some(n) = self.nhrp.as_mut() {
                let _ = n.core_mut().resolve(now, nh);
            }
            return Some(nbma);
        }
        if self.hub {
            return None;
        }
        if let Some(nh) = nh
            && !self.is_nhs(nh)
            && let Some(n) = self.nhrp.as_mut()
            && let Resolution::Known { nbma, .. } = n.core_mut().resolve(now, nh)
        {
            return Some(nbma);
        }
        self.nhs_nbma()
    }
}

/// Every GRE tunnel of the appliance.
#[derive(Default)]
pub struct Gre {
    pub tunnels: Vec<GreTunnel>,
    demux: GreDemux,
    out: VecDeque<GreOut>,
    /// GRE packets that matched no tunnel, or did not parse.
    pub unmatched: u64,
    pub malformed: u64,
    config_routes: Vec<(Prefix, Ipv4Addr)>,
}

impl Gre {
    /// The GRE tunnels of `cfg` (problems are returned for the log; such tunnels are left out).
    pub fn from_config(now: Instant, cfg: &config::Config) -> (Gre, Vec<String>) {
        let mut g = Gre::default();
        let mut problems = Vec::new();
        g.config_routes = cfg
            .ip_routes
            .iter()
            .filter(|r| r.vrf.is_none())
            .filter_map(|r| Some((Prefix::new(r.prefix.addr, r.prefix.prefix_len), r.next_hop?)))
            .collect();
        for i in cfg.interfaces.iter().filter(|i| i.is_tunnel()) {
            let mode = i.tunnel.effective_mode();
            if !matches!(
                mode,
                config::TunnelMode::GreIp | config::TunnelMode::GreMultipoint
            ) {
                continue;
            }
            match tunnel(now, cfg, i, g.tunnels.len()) {
                Ok(t) => {
                    let id = TunnelId(u32::try_from(g.tunnels.len()).unwrap_or(u32::MAX));
                    let r = match t.destination {
                        Some(d) => g.demux.add_p2p(id, t.source, d, t.key),
                        None => g.demux.add_mgre(id, t.source, t.key),
                    };
                    match r {
                        Ok(()) => {
                            let mut t = t;
                            t.sadb = g.tunnels.len();
                            if let Some(first) = g.tunnels.iter().position(|o| {
                                o.shared.is_some() && o.shared == t.shared && o.source == t.source
                            }) {
                                t.sadb = first;
                            }
                            g.tunnels.push(t);
                        }
                        Err(e) => problems.push(format!("interface {}: {e}", i.name)),
                    }
                }
                Err(e) => problems.push(format!("interface {}: {e}", i.name)),
            }
        }
        (g, problems)
    }

    /// The outer source addresses GRE is received on (one raw socket each).
    pub fn sources(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self.tunnels.iter().map(|t| t.source).collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn poll_output(&mut self) -> Option<GreOut> {
        self.out.pop_front()
    }

    /// Sends `payload` to `dst` as GRE of tunnel `idx`: the GRE header goes into the buffer's headroom (no
    /// copy; a buffer without room is copied once).
    fn emit(
        &mut self,
        idx: usize,
        dst: Ipv4Addr,
        proto: gre::ProtocolType,
        mut payload: PacketBuf,
    ) {
        let t = &mut self.tunnels[idx];
        let repr = gre::Repr {
            protocol: proto,
            key: t.key,
            seq: None,
            checksum: false,
        };
        let inner = payload.len();
        let hdr = repr.buffer_len();
        if payload.headroom() < hdr {
            payload = PacketBuf::copy_with_headroom(GRE_HEADROOM, &payload);
        }
        if let Some(h) = payload.prepend(hdr) {
            repr.emit(&mut gre::Packet::new_unchecked(h));
        }
        if proto == gre::ProtocolType::NHRP {
            t.counters.nhrp_out += 1;
        } else {
            t.counters.tx_packets += 1;
            t.counters.tx_bytes += inner as u64;
        }
        self.out.push_back(GreOut::Ip {
            tunnel: idx,
            src: t.source,
            dst,
            payload,
        });
    }

    /// A GRE packet (IP payload of protocol 47) from `remote` to our address `local`. An inner packet
    /// stays in `bytes`' buffer on its way to the TUN device or, on a hub, back out.
    pub fn handle_gre(
        &mut self,
        now: Instant,
        local: Ipv4Addr,
        remote: Ipv4Addr,
        mut bytes: PacketBuf,
    ) {
        let Ok(p) = gre::Packet::new_checked(&bytes[..]) else {
            self.malformed += 1;
            return;
        };
        let Ok(repr) = gre::Repr::parse(&p) else {
            self.malformed += 1;
            return;
        };
        let Some(TunnelId(id)) = self.demux.lookup(local, remote, repr.key) else {
            self.unmatched += 1;
            return;
        };
        let idx = id as usize;
        let header = p.header_len();
        bytes.advance(header);
        let payload = &mut bytes[..];
        match repr.protocol {
            gre::ProtocolType::NHRP => {
                let t = &mut self.tunnels[idx];
                t.counters.nhrp_in += 1;
                if let Some(n) = t.nhrp.as_mut() {
                    n.handle_input(now, remote, payload);
                }
                self.pump(now, idx);
            }
            gre::ProtocolType::IPV4 if payload.len() >= 20 && payload[0] >> 4 == 4 => {
                let t = &mut self.tunnels[idx];
                t.counters.rx_packets += 1;
                t.counters.rx_bytes += payload.len() as u64;
                let dst = Ipv4Addr::new(payload[16], payload[17], payload[18], payload[19]);
                // Hub: spoke-to-spoke traffic goes straight back out of the cloud.
                if t.hub && Some(dst) != t.address.map(|(a, _)| a) && !dst.is_multicast() {
                    let target = t.next_nbma(now, dst).filter(|n| *n != remote);
                    if let Some(nbma) = target {
                        if payload[8] <= 1 {
                            t.counters.dropped += 1;
                            return;
                        }
                        t.counters.hairpinned += 1;
                        if let Some(n) = t.nhrp.as_mut() {
                            n.core_mut().handle_hairpin(now, remote, payload);
                        }
                        decrement_ttl(payload);
                        self.emit(idx, nbma, gre::ProtocolType::IPV4, bytes);
                        self.pump(now, idx);
                        return;
                    }
                }
                if dst.is_multicast() || dst.is_broadcast() {
                    t.counters.multicast_in += 1;
                }
                if let Some(mss) = t.adjust_mss {
                    dataplane::wire::ipv4::clamp_tcp_mss(payload, mss);
                }
                self.out.push_back(GreOut::Tun {
                    tunnel: idx,
                    packet: bytes,
                });
            }
            _ => self.tunnels[idx].counters.dropped += 1,
        }
    }

    /// An IPv4 packet the kernel routed into tunnel `idx` (read with [`GRE_HEADROOM`] in front of it, so the
    /// GRE header, and ESP for a protected tunnel, go on in place).
    pub fn handle_tun(&mut self, now: Instant, idx: usize, mut packet: PacketBuf) {
        let Some(t) = self.tunnels.get_mut(idx) else {
            return;
        };
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            t.counters.dropped += 1;
            return;
        }
        if let Some(mss) = t.adjust_mss {
            dataplane::wire::ipv4::clamp_tcp_mss(&mut packet, mss);
        }
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        if let Some(d) = t.destination {
            self.emit(idx, d, gre::ProtocolType::IPV4, packet);
            return;
        }
        if dst.is_multicast() || dst.is_broadcast() {
            // `ip nhrp map multicast`: one copy per target.
            let targets = t
                .nhrp
                .as_ref()
                .map(|n| n.core().multicast_targets())
                .unwrap_or_default();
            if targets.is_empty() {
                t.counters.no_route += 1;
            }
            t.counters.multicast_out += targets.len() as u64;
            if let Some((last, rest)) = targets.split_last() {
                for nbma in rest {
                    let copy = PacketBuf::copy_with_headroom(GRE_HEADROOM, &packet);
                    self.emit(idx, *nbma, gre::ProtocolType::IPV4, copy);
                }
                self.emit(idx, *last, gre::ProtocolType::IPV4, packet);
            }
            return;
        }
        match t.next_nbma(now, dst) {
            Some(nbma) => self.emit(idx, nbma, gre::ProtocolType::IPV4, packet),
            None => t.counters.no_route += 1,
        }
        self.pump(now, idx);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for idx in 0..self.tunnels.len() {
            if let Some(n) = self.tunnels[idx].nhrp.as_mut()
                && n.poll_timeout().is_some_and(|t| t <= now)
            {
                n.handle_timeout(now);
            }
            self.pump(now, idx);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tunnels
            .iter()
            .filter_map(|t| t.nhrp.as_ref()?.poll_timeout())
            .min()
    }

    /// The kernel added (`add`) or removed a route `prefix via gateway` over tunnel `idx`'s device. Only
    /// gateways on the tunnel's subnet matter (the others are not overlay next hops); a hub also answers
    /// resolution requests for the prefix through it (phase 3).
    pub fn kernel_route(&mut self, idx: usize, prefix: Prefix, gateway: Ipv4Addr, add: bool) {
        let Some(t) = self.tunnels.get_mut(idx) else {
            return;
        };
        if !t.in_subnet(gateway) || t.address.is_some_and(|(a, _)| a == gateway) {
            return;
        }
        t.kernel_routes.retain(|(p, _)| *p != prefix);
        let configured = t.routes.iter().any(|(p, _)| *p == prefix);
        if add {
            t.kernel_routes.push((prefix, gateway));
        }
        if let Some(n) = t.nhrp.as_mut()
            && !configured
        {
            if add {
                n.core_mut().add_route(prefix, gateway);
            } else {
                n.core_mut().remove_route(&prefix);
            }
        }
    }

    /// `clear ip nhrp`: dynamic entries go (static maps stay); returns how many entries went.
    pub fn clear_nhrp(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for idx in 0..self.tunnels.len() {
            if let Some(node) = self.tunnels[idx].nhrp.as_mut() {
                let before = node.core().cache().len();
                node.core_mut().clear_dynamic(now);
                n += before.saturating_sub(node.core().cache().len());
            }
            self.pump(now, idx);
        }
        n
    }

    /// Move NHRP packets and events of tunnel `idx` out.
    fn pump(&mut self, now: Instant, idx: usize) {
        loop {
            let Some(node) = self.tunnels[idx].nhrp.as_mut() else {
                return;
            };
            if let Some(tx) = node.poll_transmit() {
                let payload = PacketBuf::copy_with_headroom(GRE_HEADROOM, &tx.payload);
                self.emit(idx, tx.nbma_dst, gre::ProtocolType::NHRP, payload);
                continue;
            }
            let Some(ev) = node.poll_event() else {
                return;
            };
            self.event(now, idx, ev);
        }
    }

    fn event(&mut self, _now: Instant, idx: usize, ev: Event) {
        let t = &mut self.tunnels[idx];
        let name = t.ios_name.clone();
        match ev {
            Event::Registered { nhs } => {
                ios!(NHRP, Notice, NHS_UP, "{name}: NHS {nhs} is up (registered)")
            }
            Event::NhsDown { nhs } => {
                ios!(DMVPN, Error, NHRP_ERROR, "{name}: NHS {nhs} is down")
            }
            Event::RegistrationRejected { nhs, code } => ios!(
                NHRP,
                Warning,
                REGISTRATION_REJECTED,
                "{name}: NHS {nhs} refused our registration ({code:?})"
            ),
            Event::PeerRegistered {
                protocol,
                nbma,
                claimed,
            } => {
                let nat = claimed
                    .filter(|c| *c != nbma)
                    .map(|c| format!(" (claimed NBMA {c}, behind NAT)"))
                    .unwrap_or_default();
                ios!(
                    DMVPN,
                    Notice,
                    NHRP_CACHE,
                    "{name}: client {protocol} NBMA {nbma}{nat} registered"
                )
            }
            Event::PeerExpired { protocol, nbma } => ios!(
                DMVPN,
                Notice,
                NHRP_CACHE,
                "{name}: client {protocol} NBMA {nbma} unregistered"
            ),
            Event::Resolved { protocol, nbma } => ios!(
                NHRP,
                Informational,
                RESOLVED,
                "{name}: {protocol} resolved to NBMA {nbma}"
            ),
            Event::ResolutionFailed { protocol } => ios!(
                NHRP,
                Informational,
                RESOLUTION_FAILED,
                "{name}: no resolution for {protocol}, staying on the NHS path"
            ),
            Event::ShortcutRoute { prefix, nexthop } => {
                ios!(
                    NHRP,
                    Informational,
                    SHORTCUT,
                    "{name}: shortcut {}/{} via {nexthop}",
                    prefix.addr(),
                    prefix.prefix_len()
                );
                if !t.shortcuts.contains(&prefix) {
                    t.shortcuts.push(prefix);
                    self.out.push_back(GreOut::RouteAdd {
                        tunnel: idx,
                        prefix: prefix.addr(),
                        len: prefix.prefix_len(),
                    });
                }
            }
            Event::Purge { prefix } => {
                if let Some(pos) = t.shortcuts.iter().position(|p| *p == prefix) {
                    t.shortcuts.remove(pos);
                    let restore = self
                        .config_routes
                        .iter()
                        .find(|(p, _)| *p == prefix)
                        .map(|(_, nh)| *nh);
                    self.out.push_back(GreOut::RouteDel {
                        tunnel: idx,
                        prefix: prefix.addr(),
                        len: prefix.prefix_len(),
                        restore,
                    });
                }
            }
            Event::QuotaExceeded => {
                // seed 001:419: `%NHRP-4-QUOTA: Max-send quota of [int]pkts/[int]Sec. exceeded on [chars]`.
                let (pkts, every) = t
                    .nhrp
                    .as_ref()
                    .map(|n| n.core().snapshot().max_send)
                    .unwrap_or_default();
                ios!(
                    NHRP,
                    Warning,
                    QUOTA,
                    "Max-send quota of {pkts}pkts/{}Sec. exceeded on {name}",
                    every.as_secs()
                )
            }
            Event::ErrorIndication { from, code } => ios!(
                NHRP,
                Warning,
                ERROR_INDICATION,
                "{name}: error indication from {from}: {code:?}"
            ),
            Event::AuthFailure { from } => ios!(
                NHRP,
                Warning,
                AUTH_FAILURE,
                "{name}: NHRP packet from {from} failed authentication"
            ),
        }
    }
}

/// TTL - 1 with the header checksum fixed incrementally (RFC 1624); false when the packet must die.
fn decrement_ttl(p: &mut [u8]) -> bool {
    if p.len() < 20 || p[8] <= 1 {
        return false;
    }
    let old = u16::from_be_bytes([p[8], p[9]]);
    p[8] -= 1;
    let new = u16::from_be_bytes([p[8], p[9]]);
    let sum = dataplane::wire::ipv4::update_checksum(u16::from_be_bytes([p[10], p[11]]), old, new);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    true
}

fn tunnel(
    now: Instant,
    cfg: &config::Config,
    i: &config::Interface,
    index: usize,
) -> Result<GreTunnel, String> {
    let device = i
        .linux_name()
        .ok_or("no Linux device name (add `device NAME`)")?
        .to_string();
    let source = crate::node::tunnel_source(cfg, i)
        .ok_or("GRE needs a `tunnel source` with an IPv4 address")?;
    let multipoint = i.tunnel.effective_mode() == config::TunnelMode::GreMultipoint;
    let destination = match (&i.tunnel.destination, multipoint) {
        (_, true) => None,
        (Some(config::TunnelDestination::Address(a)), false) => Some(*a),
        (_, false) => {
            return Err("`tunnel mode gre ip` needs a `tunnel destination` address".into());
        }
    };
    let key = i.tunnel.key;
    let mtu = i.ip_mtu.unwrap_or(default_mtu(key));
    let address = crate::node::interface_address(cfg, &i.name);
    let routes: Vec<(Prefix, Ipv4Addr)> = match address {
        Some((a, len)) => cfg
            .ip_routes
            .iter()
            .filter(|r| r.vrf.is_none())
            .filter_map(|r| {
                let nh = r.next_hop?;
                (Prefix::new(a, len).contains(nh)
                    && r.interface.as_deref().is_none_or(|n| n == i.name))
                .then(|| (Prefix::new(r.prefix.addr, r.prefix.prefix_len), nh))
            })
            .collect(),
        None => Vec::new(),
    };
    let mut hub = false;
    let nhrp: Option<Box<dyn NhrpNode + Send>> = if multipoint && i.nhrp.is_enabled() {
        let (a, len) = address.ok_or("NHRP needs an `ip address` on the tunnel")?;
        let n = &i.nhrp;
        let mut c = nhrp::Config::new(&i.name, a, len, source);
        c.gre_key = key;
        if let Some(h) = n.holdtime {
            c.holdtime = Duration::from_secs(u64::from(h));
        }
        c.registration_timeout = n
            .registration_timeout
            .map(|s| Duration::from_secs(u64::from(s)));
        c.unique = !n.registration_no_unique;
        c.authentication = n
            .authentication
            .as_ref()
            .map(|s| nhrp::AuthKey::new(s.expose().as_bytes()));
        c.static_maps = n.maps.clone();
        for m in &n.map_multicast {
            match m {
                config::NhrpMulticast::Dynamic => c.multicast_dynamic = true,
                config::NhrpMulticast::Address(x) => c.multicast_static.push(*x),
            }
        }
        c.nhs = n.nhs.clone();
        c.redirect = n.redirect;
        c.shortcut = n.shortcut;
        if let Some((p, s)) = n.max_send {
            c.max_send = (p, Duration::from_secs(u64::from(s)));
        }
        c.mtu = mtu;
        c.protect = i
            .tunnel
            .protection
            .as_ref()
            .map(|p| p.ipsec_profile.clone());
        // Networks behind this node, answered in resolution replies: the other interfaces' subnets.
        c.local_prefixes = cfg
            .interfaces
            .iter()
            .filter(|o| !o.is_tunnel() && o.name != source_interface_name(i))
            .filter_map(|o| crate::node::interface_address(cfg, &o.name))
            .filter(|(x, _)| *x != source)
            .map(|(x, l)| Prefix::new(x, l))
            .collect();
        c.first_request_id =
            1 + u32::try_from(index).unwrap_or(0) * 0x0100_0000 + (u32::from(source) & 0x00ff_ffff);
        hub = c.nhs.is_empty();
        let mut node: Box<dyn NhrpNode + Send> = if hub {
            Box::new(Nhs::new(c, now))
        } else {
            Box::new(Nhc::new(c, now))
        };
        for (p, nh) in &routes {
            node.core_mut().add_route(*p, *nh);
        }
        Some(node)
    } else {
        None
    };
    Ok(GreTunnel {
        ios_name: i.name.clone(),
        device,
        address,
        source,
        destination,
        key,
        mtu,
        adjust_mss: i.tcp_adjust_mss,
        protect: cfg.tunnel_ikev2_profile(i),
        shared: i.tunnel.protection.as_ref().filter(|p| p.shared).map(|p| {
            (
                p.ipsec_profile.clone(),
                source_interface_name(i).to_string(),
            )
        }),
        sadb: index,
        protect_v1: crate::ikev1::keyed_by_ikev1(cfg, i),
        nhrp,
        hub,
        routes,
        kernel_routes: Vec::new(),
        shortcuts: Vec::new(),
        counters: GreCounters::default(),
    })
}

fn source_interface_name(i: &config::Interface) -> &str {
    match &i.tunnel.source {
        Some(config::TunnelSource::Interface(n)) => n,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> config::Config {
        let p = config::parse(text);
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        p.config
    }

    const P2P: &str = "\
interface GigabitEthernet0
 device eth0
 ip address 198.51.100.1 255.255.255.0
!
interface Tunnel1
 ip address 10.1.1.1 255.255.255.252
 ip mtu 1400
 tunnel source GigabitEthernet0
 tunnel destination 198.51.100.2
 tunnel key 100
!
interface Tunnel2
 ip address 10.0.0.1 255.255.255.0
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100
 ip nhrp map 10.0.0.2 198.51.100.2
";

    /// Where a spoke's packets for a peer without an SA go meanwhile: its NHS, for a peer learnt by
    /// resolution (or not known yet); never for the NHS itself, a static map or on a hub.
    #[test]
    fn a_spoke_detours_through_its_nhs_only_for_resolved_peers() {
        let spoke = "\
interface GigabitEthernet0
 ip address 198.51.100.1 255.255.255.0
!
interface Tunnel0
 ip address 10.0.0.11 255.255.255.0
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 ip nhrp network-id 1
 ip nhrp map 10.0.0.1 192.0.2.1
 ip nhrp map 10.0.0.3 198.51.100.3
 ip nhrp nhs 10.0.0.1
";
        let now = Instant::now();
        let (g, problems) = Gre::from_config(now, &cfg(spoke));
        assert!(problems.is_empty(), "{problems:?}");
        let t = &g.tunnels[0];
        let nhs = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(t.detour_nbma(Ipv4Addr::new(203, 0, 113, 9)), Some(nhs));
        assert_eq!(t.detour_nbma(nhs), None, "the NHS itself");
        assert_eq!(
            t.detour_nbma(Ipv4Addr::new(198, 51, 100, 3)),
            None,
            "a static map"
        );
        let hub = spoke.replace(" ip nhrp nhs 10.0.0.1\n", "");
        let (g, _) = Gre::from_config(now, &cfg(&hub));
        assert_eq!(
            g.tunnels[0].detour_nbma(Ipv4Addr::new(203, 0, 113, 9)),
            None,
            "a hub"
        );
    }

    /// A pooled buffer with GRE headroom, as the TUN reader makes them.
    fn pb(bytes: &[u8]) -> PacketBuf {
        PacketBuf::copy_with_headroom(GRE_HEADROOM, bytes)
    }

    fn ipv4_packet(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[3] = 28;
        p[8] = 64;
        p[9] = 1;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let c = nhrp::wire::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn p2p_before_mgre_and_key_on_the_wire() {
        let now = Instant::now();
        let (mut g, problems) = Gre::from_config(now, &cfg(P2P));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(g.tunnels.len(), 2);
        assert_eq!(g.tunnels[0].mtu, 1400);
        assert_eq!(g.tunnels[1].mtu, 1472);
        let src = Ipv4Addr::new(198, 51, 100, 1);
        let peer = Ipv4Addr::new(198, 51, 100, 2);
        // Out of the point-to-point tunnel: keyed GRE to its destination.
        let inner = ipv4_packet([10, 1, 1, 1], [10, 1, 1, 2]);
        g.handle_tun(now, 0, pb(&inner));
        let Some(GreOut::Ip {
            src: s,
            dst,
            payload,
            ..
        }) = g.poll_output()
        else {
            panic!("no GRE out")
        };
        assert_eq!((s, dst), (src, peer));
        assert_eq!(&payload[..8], &[0x20, 0, 0x08, 0, 0, 0, 0, 100]);
        assert_eq!(&payload[8..], &inner[..]);
        // The same packet coming back belongs to the point-to-point tunnel (same source and key as mGRE).
        g.handle_gre(now, src, peer, pb(&payload));
        assert_eq!(
            g.poll_output(),
            Some(GreOut::Tun {
                tunnel: 0,
                packet: pb(&inner)
            })
        );
        // From another source with the same key: the multipoint tunnel.
        g.handle_gre(
            now,
            src,
            Ipv4Addr::new(198, 51, 100, 3),
            PacketBuf::copy_from(&payload),
        );
        assert!(matches!(
            g.poll_output(),
            Some(GreOut::Tun { tunnel: 1, .. })
        ));
        // A wrong key matches nothing and is counted.
        let mut bad = payload.to_vec();
        bad[7] = 101;
        g.handle_gre(now, src, peer, pb(&bad));
        assert_eq!(g.poll_output(), None);
        assert_eq!(g.unmatched, 1);
        // mGRE out: the static map gives the NBMA address.
        g.handle_tun(now, 1, pb(&ipv4_packet([10, 0, 0, 1], [10, 0, 0, 2])));
        assert!(matches!(g.poll_output(), Some(GreOut::Ip { dst, .. }) if dst == peer));
        // No mapping: counted, nothing sent.
        g.handle_tun(now, 1, pb(&ipv4_packet([10, 0, 0, 1], [10, 0, 0, 3])));
        assert_eq!(g.poll_output(), None);
        assert_eq!(g.tunnels[1].counters.no_route, 1);
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let now = Instant::now();
        let (mut g, _) = Gre::from_config(now, &cfg(P2P));
        for bytes in [
            &[][..],
            &[0x20, 0][..],
            &[0xff; 40][..],
            &[0x20, 0, 0x08, 0][..],
        ] {
            g.handle_gre(
                now,
                Ipv4Addr::new(198, 51, 100, 1),
                Ipv4Addr::new(1, 2, 3, 4),
                pb(bytes),
            );
            g.handle_tun(now, 0, pb(bytes));
            g.handle_tun(now, 7, pb(bytes));
        }
        assert!(g.malformed + g.unmatched >= 3);
    }

    #[test]
    fn kernel_routes_over_the_tunnel_give_the_overlay_next_hop() {
        let now = Instant::now();
        let (mut g, _) = Gre::from_config(now, &cfg(P2P));
        let peer = Ipv4Addr::new(198, 51, 100, 2);
        let lan = Prefix::new(Ipv4Addr::new(10, 2, 0, 0), 24);
        g.handle_tun(now, 1, pb(&ipv4_packet([10, 0, 0, 1], [10, 2, 0, 1])));
        assert_eq!(g.poll_output(), None);
        // A routing daemon routes 10.2.0.0/24 via 10.0.0.2 (statically mapped to the peer).
        g.kernel_route(1, lan, Ipv4Addr::new(10, 0, 0, 2), true);
        g.handle_tun(now, 1, pb(&ipv4_packet([10, 0, 0, 1], [10, 2, 0, 1])));
        assert!(matches!(g.poll_output(), Some(GreOut::Ip { dst, .. }) if dst == peer));
        // Gateways off the tunnel's subnet are not overlay next hops; a withdrawn route is gone.
        g.kernel_route(1, lan, Ipv4Addr::new(192, 0, 2, 9), true);
        g.kernel_route(1, lan, Ipv4Addr::new(10, 0, 0, 2), false);
        g.handle_tun(now, 1, pb(&ipv4_packet([10, 0, 0, 1], [10, 2, 0, 1])));
        assert_eq!(g.poll_output(), None);
        assert_eq!(g.tunnels[1].counters.no_route, 2);
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut p = ipv4_packet([10, 0, 0, 2], [10, 0, 0, 3]);
        assert!(decrement_ttl(&mut p));
        assert_eq!(p[8], 63);
        assert_eq!(nhrp::wire::checksum(&p[..20]), 0);
        p[8] = 1;
        assert!(!decrement_ttl(&mut p));
    }

    /// `shared`: the tunnels on one source and profile use the first one's SA database; others keep their own.
    #[test]
    fn shared_tunnels_on_one_source_use_one_sa_database() {
        let tunnel = |n: u8, src: &str, shared: &str| {
            format!(
                "interface Tunnel{n}\n device dmvpn{n}\n ip address 10.0.{n}.1 255.255.255.0\n \
                 tunnel source {src}\n tunnel mode gre multipoint\n tunnel key 10{n}\n \
                 tunnel protection ipsec profile IPS{shared}\n!\n"
            )
        };
        let text = format!(
            "crypto ikev2 keyring KR\n peer ANY\n  address 0.0.0.0 0.0.0.0\n  pre-shared-key k-0001\n!\n\
             crypto ikev2 profile PROF\n match identity remote address 0.0.0.0\n \
             authentication local pre-share\n authentication remote pre-share\n keyring local KR\n!\n\
             crypto ipsec transform-set TS esp-gcm 256\n mode transport\n!\n\
             crypto ipsec profile IPS\n set transform-set TS\n set ikev2-profile PROF\n!\n\
             interface GigabitEthernet0\n device eth0\n ip address 198.51.100.1 255.255.255.0\n!\n\
             interface GigabitEthernet1\n device eth1\n ip address 203.0.113.1 255.255.255.0\n!\n\
             {}{}{}",
            tunnel(0, "GigabitEthernet0", " shared"),
            tunnel(1, "GigabitEthernet1", ""),
            tunnel(2, "GigabitEthernet0", " shared"),
        );
        let (g, problems) = Gre::from_config(Instant::now(), &cfg(&text));
        assert!(problems.is_empty(), "{problems:?}");
        let sadbs: Vec<usize> = g.tunnels.iter().map(|t| t.sadb).collect();
        assert_eq!(sadbs, [0, 1, 0]);
        assert_eq!(
            g.tunnels[2].shared,
            Some(("IPS".to_string(), "GigabitEthernet0".to_string()))
        );
        assert_eq!(g.tunnels[1].shared, None);
    }
}

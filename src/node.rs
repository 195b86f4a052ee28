//! The coordinator: one appliance's protocol state, wired together, without I/O.
//!
//! [`Node`] owns the cores (failover monitors, the IKEv2 endpoint, one data-plane tunnel per static VTI) and
//! moves facts between them: `ike` emits `ChildSaEstablished` and the node installs the keys into the
//! tunnel; the tunnel emits `Acquire` and the node starts IKE. It is sans-io like the library crates (time
//! and bytes come in, [`Output`]s go out), so the daemon (TUN, kernel routes, real sockets) and the demo (an
//! in-process packet source on loopback sockets) drive the very same logic. The library crates stay unaware
//! of each other: every mapping between their types lives in this file.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dataplane::{
    InboundSa, Lifetime, OutboundSa, RecvMeta, SaParams, Tunnel, TunnelConfig, UdpPorts, Verdict,
};
use ike::{ChildSaKeys, EncrAlg, Endpoint, Identity, IkeSaId, IntegAlg, Keyring, Profile};

use crate::ios;
use crate::monitor::Failover;
use crate::pkt::PacketBuf;
use crate::vpnsip::VpnSip;

/// IKE's well-known ports (RFC 7296 §2.23).
pub const IKE_PORT: u16 = 500;
pub const NAT_T_PORT: u16 = 4500;
use crate::gre_esp::NAT_PEER_WAIT;

/// Two IKE SAs with one peer are duplicates of a simultaneous start only while the older one is this young.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);
/// Room for ESP around the largest inner packet.
const BUF_LEN: usize = dataplane::HEADROOM + 65535 + dataplane::TAILROOM;
/// Buffers of shaped packets kept for reuse (a scheduler's queues hold at most a few hundred packets).
const QOS_FREE_KEEP: usize = 1024;

/// What the node wants done.
#[derive(Debug)]
pub enum Output {
    /// A UDP datagram (IKE, or ESP in UDP).
    Udp {
        local: SocketAddr,
        remote: SocketAddr,
        payload: PacketBuf,
        /// IP TOS of the datagram (ESP copies the inner packet's, e.g. the CS4 of VPN-SIP's policy).
        tos: u8,
    },
    /// An ESP packet as IP protocol 50 (no NAT-T).
    RawEsp {
        dst: Ipv4Addr,
        payload: PacketBuf,
        tos: u8,
    },
    /// An IP packet for the inside of tunnel `tunnel` (write it to its TUN device).
    Tun { tunnel: usize, packet: PacketBuf },
    /// A DHCP message to send from `device` (UDP 68 -> `dst`:67); see [`Node::handle_dhcp`].
    Dhcp {
        device: String,
        dst: Ipv4Addr,
        payload: Vec<u8>,
    },
    /// Give `device` this address (a DHCP lease), replacing the one it had (`old`).
    SetAddress {
        device: String,
        addr: Ipv4Addr,
        prefix: u8,
        old: Option<(Ipv4Addr, u8)>,
    },
    /// Open a UDP socket on this address and feed what it receives to [`Node::handle_udp`]
    /// (SIP, and each VPN-SIP session's WAN port).
    OpenPort(SocketAddr),
    /// Close it again (the session ended).
    ClosePort(SocketAddr),
    /// SIP over TCP/TLS, and RFC 3263 lookups (see `sipnet.rs`); answers come to [`Node::handle_sip`].
    Sip(crate::sipnet::SipOut),
}

/// An interface that takes its address from DHCP (`ip address dhcp`).
pub struct DhcpIf {
    pub ios_name: String,
    pub device: String,
    pub client: monitors::dhcp::Client,
    pub lease: Option<monitors::dhcp::Lease>,
}

/// One static VTI (`interface TunnelN`, `tunnel mode ipsec ipv4`).
pub struct Svti {
    pub ios_name: String,
    /// The Linux device (TUN) it is.
    pub device: String,
    pub address: Option<(Ipv4Addr, u8)>,
    /// Shared with the data-plane workers (`crate::fastpath`): lock it for each use.
    pub dp: crate::fastpath::SharedTunnel,
    /// IKEv2 profile that keys it.
    pub profile: Option<String>,
    pub source: Option<Ipv4Addr>,
    /// `tunnel destination A` (None: `dynamic`).
    pub destination: Option<Ipv4Addr>,
    /// `tunnel destination dynamic`: the peer VPN-SIP learnt from SDP.
    pub peer: Option<Ipv4Addr>,
    pub ike_sa: Option<IkeSaId>,
    /// `service-policy output` (VPN-SIP: the implicit shaper while a session is up).
    pub egress: dataplane::qos::Egress,
    sa_template: SaTemplate,
}

/// What the IPsec profile says about every SA of a tunnel (lifetimes come with each CHILD_SA from IKE).
#[derive(Clone, Copy)]
struct SaTemplate {
    replay_window: u32,
    idle: Option<Duration>,
}

pub struct Node {
    pub config: config::Config,
    pub started: Instant,
    pub failover: Failover,
    pub ike: Endpoint,
    /// The IKEv1 endpoint, when a tunnel is keyed by IKEv1 (`crate::ikev1`).
    pub ikev1: Option<ike::v1::Endpoint>,
    /// The IKEv1 quick-mode parameter set of each tunnel kind (VTI, GRE).
    pub ikev1_sets: crate::ikev1::QuickModeSets,
    pub tunnels: Vec<Svti>,
    /// GRE and mGRE tunnels (DMVPN), with their NHRP nodes (`crate::gre`).
    pub gre: crate::gre::Gre,
    /// ESP for GRE tunnels with `tunnel protection` (`crate::gre_esp`).
    pub gre_esp: crate::gre_esp::GreEsp,
    /// Protected GRE packets ready to leave (released when their SA came up).
    gre_out: VecDeque<crate::gre::GreOut>,
    pub vpnsip: Option<VpnSip>,
    /// DHCP clients of interfaces with `ip address dhcp`, once the driver gave their MAC.
    pub dhcp: Vec<DhcpIf>,
    /// Inbound SPI -> tunnel index.
    pub(crate) spis: crate::fastpath::SpiMap,
    /// IKEv1 on-demand DPD: when each tunnel last decrypted a packet (`crate::ikev1`).
    pub(crate) v1_heard: HashMap<usize, Instant>,
    pub(crate) out: VecDeque<Output>,
    buf: Vec<u8>,
    /// Buffers of shaped packets that left their scheduler, for the next packets offered to one.
    qos_free: Vec<Vec<u8>>,
    /// Test hook (`lifeline run --sdp-fingerprint-override`): the VPN-SIP fingerprint we advertise.
    pub(crate) sdp_fingerprint_override: Option<ike::Fingerprint>,
    /// Tunnels that may have datagrams, events or a new deadline since [`Node::pump`] last looked at them
    /// ([`Node::touch`]); with `tunnel_deadlines` and the `tunnel_timers` heap this keeps the work per event
    /// independent of the number of tunnels (10 000 VPN-SIP tunnels on one appliance).
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
    /// Each tunnel's next deadline (data plane or QoS), as last computed.
    tunnel_deadlines: Vec<Option<Instant>>,
    /// Min-heap of (deadline, tunnel); entries that differ from `tunnel_deadlines` are stale and skipped.
    tunnel_timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Test hook (`run --debug-esp-keys FILE`): append each CHILD_SA's keys to FILE for tshark.
    pub esp_key_log: Option<std::path::PathBuf>,
    /// `show crypto pki certificates` (set by [`crate::pki::install`]).
    pub pki_view: Vec<crate::show::pki::CertView>,
    /// `run --dataplane-threads`: the data-plane workers' counters (`show crypto engine`); empty when
    /// every packet goes through this node loop (inline, as in the simulator).
    pub workers: Vec<std::sync::Arc<crate::fastpath::WorkerStats>>,
}

/// The appliance's randomness: the OS generator.
struct OsRng;

impl ike::Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) {
        // getrandom only fails when the kernel has no entropy source at all; there is no safe fallback.
        getrandom::fill(buf).expect("the OS random number generator failed");
    }
}

impl Node {
    /// Build every core from the configuration. Problems the validator let through (a tunnel whose
    /// source has no address, a profile that does not map) are returned for the log.
    pub fn new(now: Instant, config: config::Config, nonce: u32) -> (Node, Vec<String>) {
        let (failover, mut problems) = Failover::from_config(now, &config, nonce);
        let mut ike = Endpoint::new(Box::new(OsRng));
        ike.set_nat_t_port(NAT_T_PORT);
        let (gre, gre_problems) = crate::gre::Gre::from_config(now, &config);
        problems.extend(gre_problems);
        for p in &config.ikev2.profiles {
            match ike_profile(&config, p) {
                Ok(mut profile) => {
                    // Protected GRE: host-to-host GRE selectors (our tunnel source, any peer), transport mode.
                    if let Some(t) = gre
                        .tunnels
                        .iter()
                        .find(|t| t.protect.as_deref() == Some(p.name.as_str()))
                    {
                        profile.ts = ike::TsPolicy::Explicit(
                            vec![ike::wire::TrafficSelector::ipv4_host(t.source, 47)],
                            vec![ike::wire::TrafficSelector::Ipv4 {
                                ip_protocol: 47,
                                start_port: 0,
                                end_port: 65535,
                                start: Ipv4Addr::UNSPECIFIED,
                                end: Ipv4Addr::BROADCAST,
                            }],
                        );
                        profile.mode = ike::Mode::Transport;
                    }
                    ike.add_profile(profile)
                }
                Err(e) => problems.push(format!("crypto ikev2 profile {}: {e}", p.name)),
            }
        }
        let (ikev1, ikev1_sets, v1_problems) = crate::ikev1::endpoint(&config, Box::new(OsRng));
        problems.extend(v1_problems);
        let mut tunnels = Vec::new();
        for i in config.interfaces.iter().filter(|i| i.is_tunnel()) {
            if i.tunnel.effective_mode() != config::TunnelMode::IpsecIpv4 {
                continue;
            }
            match svti(&config, i) {
                Ok(mut t) => {
                    if let Err(e) = crate::qos::attach_static(&config, i, &mut t) {
                        problems.push(format!("interface {}: {e}", i.name));
                    }
                    tunnels.push(t)
                }
                Err(e) => problems.push(format!("interface {}: {e}", i.name)),
            }
        }
        // With a static backup WAN the SIP side starts now; with `ip address dhcp` it starts on the lease.
        let vpnsip = match VpnSip::static_wan(&config) {
            Some(wan) => match VpnSip::from_config(&config, &tunnels, wan, None) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("vpn-sip: {e}"));
                    None
                }
            },
            None => {
                if config.vpn_sip.enabled && VpnSip::dhcp_wan(&config).is_none() {
                    problems
                        .push("vpn-sip: the local number's interface has no IPv4 address".into());
                }
                None
            }
        };
        let n = tunnels.len();
        let node = Node {
            dirty: (0..n).collect(),
            is_dirty: vec![true; n],
            tunnel_deadlines: vec![None; n],
            tunnel_timers: BinaryHeap::new(),
            config,
            started: now,
            failover,
            ike,
            ikev1,
            ikev1_sets,
            tunnels,
            gre,
            gre_esp: crate::gre_esp::GreEsp::default(),
            gre_out: VecDeque::new(),
            vpnsip,
            dhcp: Vec::new(),
            spis: crate::fastpath::SpiMap::default(),
            v1_heard: HashMap::new(),
            esp_key_log: None,
            pki_view: Vec::new(),
            workers: Vec::new(),
            out: VecDeque::new(),
            buf: vec![0; BUF_LEN],
            qos_free: Vec::new(),
            sdp_fingerprint_override: None,
        };
        (node, problems)
    }

    /// Override every tunnel's IPsec idle timer (the demo compresses time; IOS allows 60 s at least).
    pub fn set_idle_timeout(&mut self, idle: Duration) {
        for t in &mut self.tunnels {
            t.sa_template.idle = Some(idle);
        }
    }

    /// Local addresses the IKE sockets must be bound to (each on [`IKE_PORT`] and [`NAT_T_PORT`]).
    pub fn ike_addresses(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self.tunnels.iter().filter_map(|t| t.source).collect();
        v.extend(
            self.gre
                .tunnels
                .iter()
                .filter(|t| t.protected())
                .map(|t| t.source),
        );
        v.sort();
        v.dedup();
        v
    }

    /// Bring up tunnels with a static destination (IOS initiates as soon as the tunnel is up).
    pub fn start(&mut self, now: Instant) {
        self.vpnsip_start(now);
        for idx in 0..self.tunnels.len() {
            if self.tunnels[idx].destination.is_some() {
                self.initiate(now, idx);
            }
        }
        self.pump(now);
    }

    fn initiate(&mut self, now: Instant, idx: usize) {
        if self.initiate_v1(now, idx) {
            return;
        }
        let t = &self.tunnels[idx];
        let (Some(src), Some(dst), Some(profile)) = (t.source, t.destination, t.profile.clone())
        else {
            return;
        };
        if t.ike_sa.is_some() {
            return;
        }
        let what = self.tunnels[idx].ios_name.clone();
        self.tunnels[idx].ike_sa = self.ike_initiate(now, src, dst, profile, &what);
    }

    /// Start IKEv2 from `src` to `dst` (UDP 500) with the IKEv2 profile named `profile`; `what` names the
    /// tunnel in the log.
    fn ike_initiate(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        profile: String,
        what: &str,
    ) -> Option<IkeSaId> {
        let params = ike::InitiateParams {
            local: SocketAddr::V4(SocketAddrV4::new(src, IKE_PORT)),
            remote: SocketAddr::V4(SocketAddrV4::new(dst, IKE_PORT)),
            profile,
            remote_id: None,
            expected_fingerprint: None,
        };
        match self.ike.initiate(now, params) {
            Ok(id) => {
                ios!(IKEV2, Informational, INITIATE, "{what} to {dst}");
                Some(id)
            }
            Err(e) => {
                ios!(IKEV2, Error, INITIATE_FAILED, "{what} to {dst}: {e}");
                None
            }
        }
    }

    /// A UDP datagram arrived on an IKE socket (`local` is the socket's address).
    pub fn handle_udp(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
        tos: u8,
    ) {
        if let Some(v) = &mut self.vpnsip
            && local == SocketAddr::V4(SocketAddrV4::new(v.wan, crate::vpnsip::SIP_PORT))
        {
            v.ua.handle_input(now, remote, payload);
            self.pump(now);
            return;
        }
        // A VPN-SIP session's WAN port is the inside IKE/ESP address after translation.
        let local = self.pat_inbound(local);
        if local.port() == NAT_T_PORT
            && let dataplane::Udp4500::Esp = dataplane::classify_udp4500(payload)
        {
            self.receive_esp(now, remote, payload, tos);
        } else {
            self.ike_input(now, local, remote, payload);
        }
        self.pump(now);
    }

    /// An ESP packet arrived as IP protocol 50 (outer header already stripped).
    pub fn handle_raw_esp(&mut self, now: Instant, from: Ipv4Addr, payload: &[u8], tos: u8) {
        self.receive_esp(
            now,
            SocketAddr::V4(SocketAddrV4::new(from, 0)),
            payload,
            tos,
        );
        self.pump(now);
    }

    fn receive_esp(&mut self, now: Instant, from: SocketAddr, payload: &[u8], tos: u8) {
        let spi = match payload.get(..4) {
            Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            None => return,
        };
        // IKEv1: ESP on the SPI of a quick mode we answered whose third message is still on its way
        // installs the SA now (`ike::v1::Endpoint::inbound_esp`), so the packet is not lost.
        let mut gre = self.gre_esp.owns(spi);
        if !gre
            && !self.spis.contains_key(&spi)
            && let Some(v1) = &mut self.ikev1
            && v1.inbound_esp(now, spi)
        {
            self.pump_ikev1(now);
            gre = self.gre_esp.owns(spi);
        }
        if gre {
            if let Some(o) = self.gre_esp.open(now, payload, from) {
                if let Some(old) = o.moved {
                    self.gre_peer_moved(o.tunnel, o.peer, old, from);
                }
                let local = self.gre.tunnels[o.tunnel].source;
                self.gre.handle_gre(now, local, o.peer, o.gre);
            }
            return;
        }
        let Some(idx) = self.spis.get(spi) else {
            // Unknown SPI: counted on the first tunnel that could own it would be guesswork; log once per
            // packet at debug level and let IKE's INVALID_SPI handling (peer-side) recover.
            tracing::debug!(spi, %from, "ESP with unknown SPI dropped");
            return;
        };
        let Some(slot) = self.buf.get_mut(..payload.len()) else {
            return;
        };
        slot.copy_from_slice(payload);
        let v = self.tunnels[idx].dp.lock().receive(
            now,
            &mut self.buf,
            0..payload.len(),
            RecvMeta { from, tos },
        );
        if matches!(v, Verdict::ToTunnel(_)) && self.ikev1.is_some() {
            self.v1_heard.insert(idx, now);
        }
        self.verdict(idx, v);
    }

    /// An IP packet was routed into tunnel `idx` (read from its TUN device).
    pub fn handle_tun(&mut self, now: Instant, idx: usize, packet: &[u8]) {
        if idx >= self.tunnels.len() {
            return;
        }
        self.v1_on_demand_dpd(now, idx);
        // (Queued in the shaper, the packet changes the tunnel's deadline.)
        self.touch(idx);
        if self.tunnels[idx].egress.is_attached() {
            // Shaped tunnel: the scheduler owns the packet until the shaper lets it go, in a buffer from
            // `qos_free` that comes back there when it leaves (sent or dropped): no allocation per packet.
            let start = dataplane::HEADROOM;
            let mut owned = self
                .qos_free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(crate::pkt::SMALL));
            owned.clear();
            owned.resize(start + packet.len() + dataplane::TAILROOM, 0);
            owned[start..start + packet.len()].copy_from_slice(packet);
            let pkt = dataplane::qos::Packet::new(owned, start..start + packet.len());
            match self.tunnels[idx].egress.offer(now, pkt) {
                dataplane::qos::Offer::Send(p) => {
                    self.encrypt(now, idx, p.bytes());
                    self.recycle_qos(p);
                }
                dataplane::qos::Offer::Dropped(d) => self.recycle_qos(d.packet),
                dataplane::qos::Offer::Queued => {}
            }
            self.drain_egress(now, idx);
        } else {
            self.encrypt(now, idx, packet);
        }
        self.pump(now);
    }

    fn encrypt(&mut self, now: Instant, idx: usize, packet: &[u8]) {
        let start = dataplane::HEADROOM;
        let Some(slot) = self.buf.get_mut(start..start + packet.len()) else {
            return;
        };
        slot.copy_from_slice(packet);
        let v = self.tunnels[idx]
            .dp
            .lock()
            .send(now, &mut self.buf, start..start + packet.len());
        self.verdict(idx, v);
    }

    /// Send what the tunnel's shaper releases now.
    fn drain_egress(&mut self, now: Instant, idx: usize) {
        while let Some(p) = self.tunnels[idx].egress.dequeue(now) {
            self.encrypt(now, idx, p.bytes());
            self.recycle_qos(p);
        }
    }

    /// A shaped packet left the scheduler: keep its buffer for the next one (at most [`QOS_FREE_KEEP`]).
    fn recycle_qos(&mut self, p: dataplane::qos::Packet) {
        if self.qos_free.len() < QOS_FREE_KEEP {
            if self.qos_free.capacity() == 0 {
                self.qos_free.reserve_exact(QOS_FREE_KEEP);
            }
            self.qos_free.push(p.into_parts().0);
        }
    }

    /// `clear crypto session`: delete every IKE SA (with DELETE notifications) and its CHILD_SAs. Static
    /// tunnels with a destination initiate again at once; the others on their next packet.
    pub fn clear_crypto_sessions(&mut self, now: Instant) -> usize {
        let ids: Vec<IkeSaId> = self.tunnels.iter().filter_map(|t| t.ike_sa).collect();
        let n = self.clear_vpnsip_sessions(now);
        for id in &ids {
            self.ike_delete(now, *id);
        }
        for (idx, t) in self.tunnels.iter_mut().enumerate() {
            t.ike_sa = None;
            let mut dp = t.dp.lock();
            for s in dp.inbound_spis() {
                self.spis.remove(&s);
            }
            dp.remove_sa();
            drop(dp);
            if !self.is_dirty[idx] {
                self.is_dirty[idx] = true;
                self.dirty.push(idx);
            }
        }
        self.pump(now);
        for idx in 0..self.tunnels.len() {
            if self.tunnels[idx].destination.is_some() {
                self.initiate(now, idx);
            }
        }
        self.pump(now);
        ios!(
            CRYPTO,
            Notice,
            CLEARED,
            "{} crypto session(s) cleared by the operator",
            ids.len().max(n)
        );
        ids.len().max(n)
    }

    /// `clear vpn-sip session` (Lifeline extension): end every VPN-SIP session (BYE, SAs, PAT entry).
    pub fn clear_vpnsip_sessions(&mut self, now: Instant) -> usize {
        let active: Vec<usize> = self
            .vpnsip
            .as_ref()
            .map(|v| {
                v.sessions
                    .iter()
                    .filter(|s| s.status != crate::show::vpnsip::SessionStatus::ReadyToConnect)
                    .map(|s| s.tunnel)
                    .collect()
            })
            .unwrap_or_default();
        for idx in &active {
            self.vpnsip_idle(now, *idx);
        }
        self.pump(now);
        active.len()
    }

    /// Interfaces with `ip address dhcp`: (IOS name, Linux device), for the driver to open DHCP sockets on.
    pub fn dhcp_interfaces(&self) -> Vec<(String, String)> {
        self.config
            .interfaces
            .iter()
            .filter(|i| matches!(i.ip, config::IpAddressing::Dhcp { .. }))
            .filter_map(|i| Some((i.name.clone(), i.linux_name()?.to_string())))
            .collect()
    }

    /// Start the DHCP client of `device` (the driver read its MAC address). Requests options 120 and 125.
    pub fn start_dhcp(
        &mut self,
        now: Instant,
        ios_name: &str,
        device: &str,
        mac: [u8; 6],
        seed: u64,
    ) {
        let mut client = monitors::dhcp::Client::new(
            monitors::dhcp::ClientConfig {
                mac,
                client_id: None,
                vendor_class: None,
                hostname: self.config.hostname.clone(),
            },
            seed,
        );
        client.start(now);
        self.dhcp.push(DhcpIf {
            ios_name: ios_name.to_string(),
            device: device.to_string(),
            client,
            lease: None,
        });
        self.pump(now);
    }

    /// A datagram arrived on `device`'s DHCP socket (UDP 68).
    pub fn handle_dhcp(&mut self, now: Instant, device: &str, payload: &[u8]) {
        if let Some(d) = self.dhcp.iter_mut().find(|d| d.device == device) {
            d.client.handle_input(now, payload);
        }
        self.pump(now);
    }

    fn dhcp_event(&mut self, now: Instant, idx: usize, ev: monitors::dhcp::DhcpEvent) {
        use monitors::dhcp::DhcpEvent;
        let (lease, lost) = match ev {
            DhcpEvent::Bound(l) | DhcpEvent::Renewed(l) => (Some(l), None),
            DhcpEvent::Lost { addr } => (None, Some(addr)),
        };
        let d = &mut self.dhcp[idx];
        let old = d.lease.as_ref().map(|l| (l.addr, mask_len(l.mask)));
        let ios = d.ios_name.clone();
        let device = d.device.clone();
        d.lease = lease.clone();
        if let Some(addr) = lost {
            ios!(DHCP, Warning, LOST, "{ios}: lease of {addr} lost");
            return;
        }
        let Some(l) = lease else { return };
        let prefix = mask_len(l.mask);
        if old != Some((l.addr, prefix)) {
            ios!(
                DHCP,
                Notice,
                ADDRESS_ASSIGN,
                "Interface {ios} assigned DHCP address {}, mask {}",
                l.addr,
                l.mask
            );
            self.out.push_back(Output::SetAddress {
                device,
                addr: l.addr,
                prefix,
                old,
            });
            self.failover
                .handle_interface(now, &ios, true, Some((l.addr, prefix)));
            if let Some(router) = l.router {
                self.failover.set_dhcp_default(now, &ios, router);
            }
        }
        // The VPN-SIP WAN: start the SIP side on the first lease, move the contact on a new address.
        let is_vpnsip_wan = self
            .config
            .vpn_sip
            .local_number()
            .is_some_and(|n| n.wan_interface == ios);
        if !is_vpnsip_wan {
            return;
        }
        match &mut self.vpnsip {
            None => match VpnSip::from_config(
                &self.config,
                &self.tunnels,
                l.addr,
                l.sip_servers.as_ref(),
            ) {
                Ok(v) => {
                    self.vpnsip = v;
                    self.vpnsip_start(now);
                }
                Err(e) => ios!(VPN_SIP, Error, NO_REGISTRAR, "{e}"),
            },
            Some(v) if v.wan != l.addr => {
                let old_sip = SocketAddr::V4(SocketAddrV4::new(v.wan, crate::vpnsip::SIP_PORT));
                let new_sip = SocketAddr::V4(SocketAddrV4::new(l.addr, crate::vpnsip::SIP_PORT));
                v.wan = l.addr;
                v.ua.set_contact(now, new_sip);
                self.out.push_back(Output::ClosePort(old_sip));
                self.out.push_back(Output::OpenPort(new_sip));
            }
            Some(_) => {}
        }
    }

    /// A Linux device's line protocol changed: tell the RIB and the track objects of the IOS interface it is.
    pub fn handle_link(&mut self, now: Instant, device: &str, up: bool) {
        let Some(i) = self
            .config
            .interfaces
            .iter()
            .find(|i| i.linux_name() == Some(device))
        else {
            return;
        };
        let (name, addr) = (i.name.clone(), interface_address(&self.config, &i.name));
        self.failover
            .handle_interface(now, &name, up && !i.shutdown, addr);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.failover.handle_timeout(now);
        if let Some(v) = &mut self.vpnsip {
            v.ua.handle_timeout(now);
        }
        for d in &mut self.dhcp {
            d.client.handle_timeout(now);
        }
        self.ike.handle_timeout(now);
        if let Some(v1) = &mut self.ikev1 {
            v1.handle_timeout(now);
        }
        if self.gre.poll_timeout().is_some_and(|t| t <= now) {
            self.gre.handle_timeout(now);
        }
        // Only the tunnels whose deadline has come.
        while let Some(Reverse((t, idx))) = self.tunnel_timers.peek().copied() {
            if t > now {
                break;
            }
            self.tunnel_timers.pop();
            if self.tunnel_deadlines[idx] != Some(t) {
                continue; // stale
            }
            self.tunnel_deadlines[idx] = None;
            self.tunnels[idx].dp.lock().handle_timeout(now);
            if self.tunnels[idx].egress.is_attached() {
                self.drain_egress(now, idx);
            }
            self.touch(idx);
        }
        // Protected GRE: the wait for a peer behind NAT to key us ended without its SA.
        for (tunnel, peer) in self.gre_esp.nat_waits_over(now) {
            if let Some(src) = self.gre.tunnels.get(tunnel).map(|t| t.source) {
                self.key_gre_peer(now, tunnel, src, peer);
            }
        }
        self.pump(now);
    }

    /// Marks the tunnels whose packets data-plane workers may seal and open without this loop
    /// (`crate::fastpath`); returns how many. Not fast, so everything still goes through the node: a
    /// tunnel with a `service-policy` (the shaper's queues and timers live here), every tunnel of an
    /// appliance with VPN-SIP (session PAT and the implicit shaper) or IKEv1 keying (on-demand DPD watches
    /// each packet), and tunnels without a fixed `tunnel destination`.
    pub fn enable_fast_path(&mut self) -> usize {
        let mut n = 0;
        for t in &self.tunnels {
            let fast = self.not_fast_because(t).is_none();
            t.dp.set_fast(fast);
            n += usize::from(fast);
        }
        n
    }

    /// Why tunnel `t` cannot be sealed and opened on the data-plane workers (`None`: it can).
    fn not_fast_because(&self, t: &Svti) -> Option<&'static str> {
        if self.config.vpn_sip.enabled {
            Some("VPN-SIP session PAT and shaper")
        } else if self.ikev1.is_some() {
            Some("IKEv1 keying")
        } else if t.destination.is_none() {
            Some("no fixed tunnel destination")
        } else if t.egress.is_attached() {
            Some("service-policy")
        } else {
            None
        }
    }

    /// The tunnels that stay on the node loop, each with why (for the start log).
    pub fn not_fast(&self) -> Vec<String> {
        self.tunnels
            .iter()
            .filter(|t| !t.dp.fast())
            .map(|t| {
                let why = self.not_fast_because(t).unwrap_or("no data-plane threads");
                format!("{} ({why})", t.ios_name)
            })
            .collect()
    }

    /// A data-plane worker left events or an earlier deadline in tunnel `idx`: drain and re-arm it.
    pub fn tunnel_touched(&mut self, now: Instant, idx: usize) {
        if let Some(t) = self.tunnels.get(idx) {
            t.dp.attention_taken();
            self.touch(idx);
            self.pump(now);
        }
    }

    /// Tunnel `idx` was acted on: [`Node::pump`] drains it and recomputes its deadline.
    pub(crate) fn touch(&mut self, idx: usize) {
        if let Some(d) = self.is_dirty.get_mut(idx)
            && !*d
        {
            *d = true;
            self.dirty.push(idx);
        }
    }

    /// Recompute tunnel `idx`'s deadline after it was drained.
    fn rearm_tunnel(&mut self, idx: usize) {
        let t = &self.tunnels[idx];
        let dp_next = t.dp.lock().poll_timeout();
        let next = match (dp_next, t.egress.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.tunnel_deadlines[idx] != next {
            self.tunnel_deadlines[idx] = next;
            if let Some(t) = next {
                self.tunnel_timers.push(Reverse((t, idx)));
            }
        }
    }

    /// The earliest live tunnel deadline (stale heap entries are dropped on the way).
    fn next_tunnel_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, idx))) = self.tunnel_timers.peek().copied() {
            if self.tunnel_deadlines[idx] == Some(t) {
                return Some(t);
            }
            self.tunnel_timers.pop();
        }
        None
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let mut next = self.failover.poll_timeout();
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        consider(self.ike.poll_timeout());
        consider(self.ikev1.as_ref().and_then(|e| e.poll_timeout()));
        consider(self.sip_timeout());
        consider(self.gre.poll_timeout());
        consider(self.gre_esp.nat_wait_deadline());
        for d in &self.dhcp {
            consider(d.client.poll_timeout());
        }
        let tunnels = self.next_tunnel_deadline();
        match (next, tunnels) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Turn a data-plane verdict into an output.
    fn verdict(&mut self, idx: usize, v: Verdict) {
        self.touch(idx);
        match v {
            Verdict::ToNetwork(tx) => {
                // A pooled block: no allocation per packet once the pool is warm (`crate::pkt`).
                let payload = PacketBuf::copy_from(&self.buf[tx.range.clone()]);
                match (tx.src, tx.dst, tx.udp) {
                    (IpAddr::V4(src), IpAddr::V4(dst), Some(UdpPorts { local, remote })) => {
                        let remote = SocketAddr::V4(SocketAddrV4::new(dst, remote));
                        let local = self
                            .pat_outbound(SocketAddr::V4(SocketAddrV4::new(src, local)), remote);
                        self.out.push_back(Output::Udp {
                            local,
                            remote,
                            payload,
                            tos: tx.tos,
                        })
                    }
                    (IpAddr::V4(_), IpAddr::V4(dst), None) => self.out.push_back(Output::RawEsp {
                        dst,
                        payload,
                        tos: tx.tos,
                    }),
                    _ => {} // IPv6 outer headers are not supported (the dataplane never produces them)
                }
            }
            Verdict::ToTunnel(range) => self.out.push_back(Output::Tun {
                tunnel: idx,
                packet: PacketBuf::copy_from(&self.buf[range]),
            }),
            Verdict::Queued | Verdict::Consumed | Verdict::Drop(_) => {}
        }
    }

    /// Move facts between the cores until nothing is left to move.
    pub(crate) fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(tx) = self.ike.poll_transmit() {
                let local = self.pat_outbound(tx.local, tx.remote);
                self.out.push_back(Output::Udp {
                    local,
                    remote: tx.remote,
                    payload: PacketBuf::from_vec(tx.payload),
                    tos: 0,
                });
                progressed = true;
            }
            progressed |= self.pump_ikev1(now);
            progressed |= self.pump_sip(now);
            for idx in 0..self.dhcp.len() {
                while let Some(tx) = self.dhcp[idx].client.poll_transmit() {
                    self.out.push_back(Output::Dhcp {
                        device: self.dhcp[idx].device.clone(),
                        dst: tx.dst,
                        payload: tx.payload,
                    });
                    progressed = true;
                }
                while let Some(ev) = self.dhcp[idx].client.poll_event() {
                    self.dhcp_event(now, idx, ev);
                    progressed = true;
                }
            }
            while let Some(ev) = self.ike.poll_event() {
                self.ike_event(now, ev);
                progressed = true;
            }
            // Only the tunnels acted on since the last look (an event may touch its own or another tunnel,
            // which puts it back on the list).
            while let Some(idx) = self.dirty.pop() {
                self.is_dirty[idx] = false;
                {
                    // Under one lock: a data-plane worker sealing this tunnel's next packet meanwhile
                    // would take a sequence number before the held packets not yet drained.
                    let t = self.tunnels[idx].dp.clone();
                    let mut dp = t.lock();
                    while let Some(v) = dp.poll_transmit(now, &mut self.buf) {
                        self.verdict(idx, v);
                        progressed = true;
                    }
                }
                loop {
                    let ev = self.tunnels[idx].dp.lock().poll_event();
                    let Some(ev) = ev else { break };
                    self.tunnel_event(now, idx, ev);
                    progressed = true;
                }
                self.rearm_tunnel(idx);
            }
            if !progressed {
                break;
            }
        }
    }

    pub(crate) fn ike_event(&mut self, now: Instant, ev: ike::Event) {
        match ev {
            ike::Event::IkeSaEstablished {
                ike_sa,
                peer,
                peer_id,
            } => {
                ios!(
                    IKEV2,
                    Notice,
                    SA_UP,
                    "IKE SA {} with {peer} ({peer_id}) established",
                    ike_sa.0
                );
            }
            ike::Event::ChildSaEstablished { ike_sa, child }
                if child.mode == ike::Mode::Transport
                    && child.ts_local.iter().any(|t| {
                        matches!(
                            t,
                            ike::wire::TrafficSelector::Ipv4 {
                                ip_protocol: 47,
                                ..
                            }
                        )
                    }) =>
            {
                self.install_gre_child(now, ike_sa, &child)
            }
            ike::Event::ChildSaEstablished { ike_sa, child } => {
                self.install_child(now, ike_sa, &child)
            }
            ike::Event::ChildSaDeleted {
                spi_in, spi_out, ..
            } if self.gre_esp.owns(spi_in) => {
                // The peer deleted the pair but keeps the IKE SA (IOS `clear crypto sa peer`, a child
                // terminated at strongSwan, an IKEv1 IPsec SA DELETE): nothing would key it again while that
                // IKE SA lives, so it goes too, and the next packet keys the peer anew.
                if let Some(id) = self.gre_esp.remove_child(spi_in, spi_out)
                    && self.ike_origin(now, id).is_some()
                {
                    ios!(
                        IPSEC,
                        Informational,
                        SA_GONE,
                        "GRE SA pair (SPI out 0x{spi_out:08x}) deleted without a successor: deleting IKE SA {} too",
                        id.0
                    );
                    self.ike_delete(now, id);
                }
            }
            ike::Event::ChildSaDeleted {
                spi_in, spi_out, ..
            } => {
                if let Some(idx) = self.spis.remove(&spi_in) {
                    self.touch(idx);
                    let mut dp = self.tunnels[idx].dp.lock();
                    dp.remove_inbound(spi_in);
                    if dp.outbound_spi() == Some(spi_out) {
                        dp.remove_sa();
                    }
                }
            }
            ike::Event::IkeSaDeleted { ike_sa, reason } => {
                self.gre_esp
                    .ike_gone(now, ike_sa, crate::gre_esp::negotiation_failed(&reason));
                ios!(
                    IKEV2,
                    Notice,
                    SA_DOWN,
                    "IKE SA {} deleted: {reason:?}",
                    ike_sa.0
                );
                let affected: Vec<usize> = (0..self.tunnels.len())
                    .filter(|&i| self.tunnels[i].ike_sa == Some(ike_sa))
                    .collect();
                let why = match &reason {
                    ike::DeleteReason::LocalRequest | ike::DeleteReason::PeerRequest => None,
                    other => Some(format!("IKE SA down: {other:?}")),
                };
                for idx in affected {
                    self.vpnsip_ike_down(now, idx, why.clone());
                }
                for (idx, t) in self
                    .tunnels
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, t)| t.ike_sa == Some(ike_sa))
                {
                    if !self.is_dirty[idx] {
                        self.is_dirty[idx] = true;
                        self.dirty.push(idx);
                    }
                    t.ike_sa = None;
                    let mut dp = t.dp.lock();
                    for s in dp.inbound_spis() {
                        self.spis.remove(&s);
                    }
                    dp.remove_sa();
                }
                // A refused negotiation (authentication, proposals) would be refused again at once: it is
                // retried by the next acquire, not here (this was a loop of hundreds of IKE SAs a second
                // against strongSwan with a wrong PSK or disjoint ESP proposals).
                if !matches!(
                    reason,
                    ike::DeleteReason::AuthFailed(_) | ike::DeleteReason::NegotiationFailed(_)
                ) {
                    self.reacquire(now);
                }
            }
            ike::Event::AuthFailed { peer, reason } => {
                ios!(IKEV2, Error, AUTH_FAILED, "peer {peer}: {reason}");
                self.vpnsip_auth_failed(now, peer, reason.to_string());
            }
        }
    }

    /// Two IKE SAs for one peer because both ends initiated at once (`new` brought `child`): keep exactly
    /// one, the same at both ends, the one with the lower initiator's SPI (RFC 7296 §2.8.2 picks among
    /// simultaneous rekeys by nonces alike); the other is deleted. True when `new` is the one kept.
    ///
    /// The SPIs are the only thing both ends see identically: addresses are not, behind NAT (each end
    /// compares its private address with the other's public one, so both could decide they were lower and
    /// each delete the SA the other kept).
    ///
    /// Only two young established SAs are compared: an `existing` SA up for [`DUPLICATE_WINDOW`] or more is
    /// replaced (the peer restarted or keyed us anew; RFC 7296 §2.4's INITIAL_CONTACT says the same). While `existing` (ours) is still negotiating, `new` is kept
    /// and `existing` judged when it is up (it comes back here then): our IKE may never get through (a NAT
    /// or filter in one direction), and keeping a stuck negotiation over a working SA lost the traffic;
    /// should the peer hold ours established and prefer it, its DELETE for `new` arrives meanwhile.
    fn keep_new_of_duplicates(
        &mut self,
        now: Instant,
        existing: IkeSaId,
        new: IkeSaId,
        child: &ChildSaKeys,
        what: &str,
    ) -> bool {
        let (existing_negotiating, existing_old) = match self.is_v1(existing) {
            true => (false, false),
            false => self
                .ike
                .snapshot(now)
                .ike_sas
                .iter()
                .find(|s| s.id == existing)
                .map_or((false, false), |s| {
                    (s.status == "IN-NEG", s.active >= DUPLICATE_WINDOW)
                }),
        };
        // Up for a while already: not a duplicate of a simultaneous start but an SA the peer no longer has
        // (it restarted, or keyed us anew); the new one replaces it, at both ends.
        if existing_old {
            ios!(
                IKEV2,
                Informational,
                DUPLICATE,
                "{what}IKE SA {} replaces {}, up for {}s or more",
                new.0,
                existing.0,
                DUPLICATE_WINDOW.as_secs()
            );
            self.ike_delete(now, existing);
            return true;
        }
        if existing_negotiating {
            ios!(
                IKEV2,
                Informational,
                DUPLICATE,
                "{what}duplicate IKE SA {} in use while {} still negotiates",
                new.0,
                existing.0
            );
            return true;
        }
        let keep_new = match (self.ike_origin(now, new), self.ike_origin(now, existing)) {
            (Some((_, new_spi)), Some((_, old_spi))) if new_spi != old_spi => new_spi < old_spi,
            // Equal SPIs (two random 64-bit numbers) or an SA already gone: the addresses decide, as
            // before, or the new one stays.
            (Some((we_initiated, _)), Some(_)) => {
                we_initiated == (child.local.ip() < child.remote.ip())
            }
            _ => true,
        };
        let (kept, gone) = if keep_new {
            (new, existing)
        } else {
            (existing, new)
        };
        ios!(
            IKEV2,
            Informational,
            DUPLICATE,
            "{what}duplicate IKE SA {} {}",
            new.0,
            if keep_new {
                format!("replaces {}", existing.0)
            } else {
                format!("deleted, keeping {}", kept.0)
            }
        );
        self.ike_delete(now, gone);
        keep_new
    }

    /// Static tunnels (with a `tunnel destination`) that lost their IKE SA while packets wait for one
    /// (the data plane raised its acquire while that SA was still negotiating, and raises no second one
    /// until the acquire times out): negotiate again now.
    pub(crate) fn reacquire(&mut self, now: Instant) {
        for idx in 0..self.tunnels.len() {
            let t = &self.tunnels[idx];
            if t.ike_sa.is_none() && t.destination.is_some() && t.dp.lock().is_acquiring() {
                self.initiate(now, idx);
            }
        }
    }

    /// Which tunnel a CHILD_SA belongs to: the one whose IKE SA it is, else the VPN-SIP tunnel whose SDP
    /// named the peer, else the one whose `tunnel destination` is the peer, else a static VTI without a
    /// destination and without an SA (never a VPN-SIP tunnel: those take peers only from SDP).
    fn tunnel_for(&self, ike_sa: IkeSaId, peer: IpAddr) -> Option<usize> {
        let peer = match peer {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => return None,
        };
        self.tunnels
            .iter()
            .position(|t| t.ike_sa == Some(ike_sa))
            .or_else(|| {
                // IKEv1: IPsec SAs made under a new ISAKMP SA with the tunnel's peer (the peer's phase-1
                // rekey: a new main mode, e.g. strongSwan's reauthentication) belong to the same tunnel.
                let v1 = self.ikev1.as_ref().filter(|v1| v1.owns(ike_sa))?;
                self.tunnels.iter().position(|t| {
                    t.ike_sa
                        .and_then(|old| v1.remote(old))
                        .is_some_and(|r| r.ip() == IpAddr::V4(peer))
                })
            })
            .or_else(|| self.tunnels.iter().position(|t| t.peer == Some(peer)))
            .or_else(|| {
                self.tunnels
                    .iter()
                    .position(|t| t.destination == Some(peer))
            })
            .or_else(|| {
                // A static VTI without `tunnel destination` answers whoever its profile authenticates.
                let vpn_sip = |i: usize| {
                    self.vpnsip
                        .as_ref()
                        .is_some_and(|v| v.sessions.iter().any(|s| s.tunnel == i))
                };
                (0..self.tunnels.len()).find(|&i| {
                    let t = &self.tunnels[i];
                    t.destination.is_none()
                        && t.peer.is_none()
                        && t.dp.lock().outbound_spi().is_none()
                        && !vpn_sip(i)
                })
            })
    }

    /// The next output of the GRE tunnels, with protected GRE sealed into ESP (or held while IKE keys the
    /// peer: the first packet for a peer starts the negotiation).
    pub fn poll_gre_output(&mut self, now: Instant) -> Option<crate::gre::GreOut> {
        use crate::gre::GreOut;
        loop {
            if let Some(o) = self.gre_out.pop_front() {
                return Some(o);
            }
            let o = self.gre.poll_output()?;
            let (tunnel, src, dst, payload) = match o {
                GreOut::Ip {
                    tunnel,
                    src,
                    dst,
                    payload,
                } if self.gre.tunnels[tunnel].protected() => (tunnel, src, dst, payload),
                o => return Some(o),
            };
            // `shared`: the tunnels on one source and profile use the first one's SA database.
            let sadb = self.gre.tunnels[tunnel].sadb;
            // A spoke's data for a peer whose SA does not come up goes through its NHS meanwhile (as the
            // packets before a resolution do): held, it would be lost if the direct SA never comes up (two
            // spokes both behind port-translating NATs cannot reach each other directly).
            if let Some(nhs) = self.gre_detour(now, tunnel, sadb, dst, &payload) {
                if self.gre_esp.want(now, sadb, dst) {
                    self.key_gre_peer(now, tunnel, src, dst);
                }
                // The packets that waited for this tunnel (with `shared`, other clouds' wait on).
                let key = self.gre.tunnels[tunnel].key;
                let mut packets = self
                    .gre_esp
                    .take_pending(sadb, dst, |g| ipv4_gre_key(g) == Some(key));
                packets.push(payload);
                for p in packets {
                    if let crate::gre_esp::Sealed::Esp(e) = self.gre_esp.seal(now, sadb, nhs, p) {
                        self.gre.tunnels[tunnel].counters.detoured += 1;
                        if let Some(o) = self.gre_esp_out(sadb, nhs, e) {
                            self.gre_out.push_back(o);
                        }
                    }
                }
                continue;
            }
            match self.gre_esp.seal(now, sadb, dst, payload) {
                crate::gre_esp::Sealed::Esp(e) => {
                    if self.gre.tunnels[tunnel].protect_v1 {
                        self.v1_gre_on_demand_dpd(now, sadb, dst);
                    }
                    if let Some(o) = self.gre_esp_out(sadb, dst, e) {
                        return Some(o);
                    }
                }
                crate::gre_esp::Sealed::Queued { initiate: true } => {
                    self.key_gre_peer(now, tunnel, src, dst);
                }
                crate::gre_esp::Sealed::Queued { initiate: false }
                | crate::gre_esp::Sealed::Dropped => {}
            }
        }
    }

    /// Where a protected GRE packet for `dst` goes instead while `dst`'s SA does not come up
    /// ([`crate::gre_esp::GreEsp::stalled`]): the NHS's NBMA address, when this is a spoke whose NHS has an
    /// SA and `dst` is not an NHS, and the packet is an IPv4 packet (the NHS routes it on; NHRP packets for
    /// `dst` are for `dst`).
    fn gre_detour(
        &self,
        now: Instant,
        tunnel: usize,
        sadb: usize,
        dst: Ipv4Addr,
        gre: &crate::pkt::PacketBuf,
    ) -> Option<Ipv4Addr> {
        if ipv4_gre_key(gre).is_none() || !self.gre_esp.stalled(now, sadb, dst) {
            return None;
        }
        let nhs = self.gre.tunnels[tunnel].detour_nbma(dst)?;
        self.gre_esp.ready(sadb, nhs).then_some(nhs)
    }

    /// Protected GRE for `dst` (from `src`, GRE tunnel `tunnel`) has packets waiting and no SA: start IKE
    /// with it, unless we wait for it (behind NAT) or it is keying us already.
    fn key_gre_peer(&mut self, now: Instant, tunnel: usize, src: Ipv4Addr, dst: Ipv4Addr) {
        let sadb = self.gre.tunnels[tunnel].sadb;
        if self.waits_for_natted_peer(now, tunnel, sadb, dst) {
            return;
        }
        // The peer is already keying us (it answers an NHRP packet of ours, or it sends first):
        // wait for its CHILD_SA instead of a second, crossing IKE SA. The packet stays queued;
        // should that negotiation fail, the next packet for the peer initiates.
        let answering = self.ike.snapshot(now).ike_sas.iter().any(|sa| {
            !sa.initiator
                && sa.status == "IN-NEG"
                && sa.remote.ip() == IpAddr::V4(dst)
                && sa.local.ip() == IpAddr::V4(src)
        }) || self.ikev1.as_ref().is_some_and(|v1| {
            // IKEv1: the peer's main mode with us is under way (its quick mode follows).
            v1.snapshot(now).iter().any(|sa| {
                !sa.initiator
                    && sa.state != "QM_IDLE"
                    && sa.src.ip() == IpAddr::V4(dst)
                    && sa.dst.ip() == IpAddr::V4(src)
            })
        });
        if answering {
            return;
        }
        let profile = self.gre.tunnels[tunnel].protect.clone();
        let Some(profile) = profile else {
            // No IKEv2 profile: IKEv1 main mode + quick mode with the GRE set.
            let id = self.initiate_gre_v1(now, tunnel, src, dst);
            if let Some(p) = self.gre_esp.peers.get_mut(&(sadb, dst)) {
                p.ike = id;
            }
            self.pump(now);
            return;
        };
        let what = format!("{} (GRE protection)", self.gre.tunnels[tunnel].ios_name);
        if let Some(id) = self.ike_initiate(now, src, dst, profile, &what)
            && let Some(p) = self.gre_esp.peers.get_mut(&(sadb, dst))
        {
            p.ike = Some(id);
        }
        self.pump(now);
    }

    /// A peer behind NAT keys us, not we it: a masquerading NAT holds no mapping for our IKE until the peer
    /// sent us something. So when NHRP knows `peer` behind NAT (its cache entry's NBMA is post-NAT) and we are
    /// not behind NAT ourselves, the packets for it wait for its SA (the NATed side initiates as soon as it
    /// sends to us: it learnt our NBMA address from a resolution or answers ours). After [`NAT_PEER_WAIT`]
    /// without that SA we initiate anyway (a static NAT or a port forward lets it through): a timer
    /// ([`crate::gre_esp::GreEsp::nat_waits_over`], in `handle_timeout`) ends the wait without waiting for
    /// another packet.
    fn waits_for_natted_peer(
        &mut self,
        now: Instant,
        tunnel: usize,
        sadb: usize,
        peer: Ipv4Addr,
    ) -> bool {
        let Some(core) = self.gre.tunnels[tunnel].nhrp.as_ref().map(|n| n.core()) else {
            return false;
        };
        if core.post_nat_nbma().is_some() || !core.nbma_is_natted(peer) {
            return false;
        }
        let Some(p) = self.gre_esp.peers.get_mut(&(sadb, peer)) else {
            return false;
        };
        match p.nat_wait {
            None => {
                p.nat_wait = Some(now);
                self.gre_esp.nat_wait_timer(now, tunnel, sadb, peer);
                ios!(
                    CRYPTO,
                    Informational,
                    NAT_PEER,
                    "{}: GRE peer {peer} is behind NAT, waiting for it to start IKE",
                    self.gre.tunnels[tunnel].ios_name
                );
                true
            }
            Some(t) if now < t + NAT_PEER_WAIT => true,
            Some(_) => {
                ios!(
                    CRYPTO,
                    Informational,
                    NAT_PEER,
                    "{}: GRE peer {peer} behind NAT did not start IKE within {}s, initiating",
                    self.gre.tunnels[tunnel].ios_name,
                    NAT_PEER_WAIT.as_secs()
                );
                false
            }
        }
    }

    /// The NAT of GRE peer `peer` (SA database `sadb`) rebound it from `old` to `from`: its newest
    /// authenticated ESP in UDP came from there ([`crate::gre_esp::GreEsp::open`] moved its ESP), so the
    /// IKEv2 SA (RFC 7296 §2.23) or the IKEv1 ISAKMP SA follows too, and its DPD and rekeys (and the SA
    /// pairs they install) reach the peer. The packet passed the integrity and anti-replay checks, so a replayed or forged packet
    /// cannot move it, nor a late one from the old port move it back.
    fn gre_peer_moved(&mut self, sadb: usize, peer: Ipv4Addr, old: SocketAddr, from: SocketAddr) {
        let Some(p) = self.gre_esp.peers.get(&(sadb, peer)) else {
            return;
        };
        let ike_sa = p.ike;
        ios!(
            CRYPTO,
            Notice,
            NAT_REBIND,
            "GRE peer {peer}: NAT mapping moved from {old} to {from}, following it"
        );
        // The ISAKMP SA of an IKEv1-keyed peer follows as well.
        match (ike_sa, &mut self.ikev1) {
            (Some(id), Some(v1)) if v1.owns(id) => {
                let _ = v1.peer_moved(id, from);
            }
            (Some(id), _) => {
                let _ = self.ike.peer_moved(id, from);
            }
            (None, _) => {}
        }
    }

    /// A transport-mode CHILD_SA with GRE selectors: the SA pair of a protected GRE tunnel's peer.
    fn install_gre_child(&mut self, now: Instant, ike_sa: IkeSaId, child: &ChildSaKeys) {
        let (IpAddr::V4(local), IpAddr::V4(peer)) = (child.local.ip(), child.remote.ip()) else {
            return;
        };
        let Some(tunnel) = self
            .gre
            .tunnels
            .iter()
            .find(|t| t.protected() && t.source == local)
            .map(|t| t.sadb)
        else {
            ios!(
                IPSEC,
                Warning,
                NO_TUNNEL,
                "GRE CHILD_SA with {peer} matches no protected GRE tunnel"
            );
            return;
        };
        // Both ends of a spoke pair may start IKE at once (each to answer the other's resolution): two IKE
        // SAs for one peer. (Rekeys come under the same IKE SA, or are an IKEv1 peer's phase-1 rekey.)
        if let Some(existing) = self
            .gre_esp
            .peers
            .get(&(tunnel, peer))
            .and_then(|p| p.ike)
            .filter(|e| *e != ike_sa)
            && self.ike_origin(now, existing).is_some()
            && !self.v1_peer_rekey(now, existing, ike_sa)
            && !self.keep_new_of_duplicates(
                now,
                existing,
                ike_sa,
                child,
                &format!("GRE peer {peer}: "),
            )
        {
            return;
        }
        let (out, inb) = match sa_pair(
            now,
            child,
            dataplane::Mode::Transport,
            64,
            None,
            self.esp_key_log.as_deref(),
        ) {
            Ok(p) => p,
            Err(SaPairError::Unsupported) => return,
            Err(SaPairError::BadKeys) => {
                ios!(IPSEC, Error, SA_FAILED, "GRE SA with {peer}: bad keys");
                return;
            }
        };
        ios!(
            IPSEC,
            Informational,
            SA_UP,
            "{}: transport-mode SA pair with {peer} for GRE (IKE SA {}, SPI in {:#010x} out {:#010x}){}",
            match &self.gre.tunnels[tunnel].shared {
                Some((profile, _)) => format!("{profile}-head-1 (shared)"),
                None => self.gre.tunnels[tunnel].ios_name.clone(),
            },
            ike_sa.0,
            child.spi_in,
            child.spi_out,
            if child.udp_encap {
                format!(" in UDP {} -> {}", child.local, child.remote)
            } else {
                String::new()
            }
        );
        let udp = child.udp_encap.then_some((child.local, child.remote));
        for e in self.gre_esp.install(now, tunnel, peer, out, inb, udp) {
            if let Some(o) = self.gre_esp_out(tunnel, peer, e) {
                self.gre_out.push_back(o);
            }
        }
        // (After `install`: a peer that keyed us before we sent it anything has its state only now.)
        if let Some(p) = self.gre_esp.peers.get_mut(&(tunnel, peer)) {
            p.ike = Some(ike_sa);
        }
    }

    /// A sealed GRE packet for `peer`: raw ESP as a GRE output, or (ESP in UDP, NAT-T) a UDP datagram on the
    /// IKE port-4500 socket, queued with the node's outputs as the SVTIs' ESP in UDP is.
    fn gre_esp_out(
        &mut self,
        tunnel: usize,
        peer: Ipv4Addr,
        esp: PacketBuf,
    ) -> Option<crate::gre::GreOut> {
        match self.gre_esp.udp(tunnel, peer) {
            Some((local, remote)) => {
                self.out.push_back(Output::Udp {
                    local,
                    remote,
                    payload: esp,
                    tos: 0,
                });
                None
            }
            None => Some(crate::gre::GreOut::Esp {
                dst: peer,
                payload: esp,
            }),
        }
    }

    fn install_child(&mut self, now: Instant, ike_sa: IkeSaId, child: &ChildSaKeys) {
        let Some(idx) = self.tunnel_for(ike_sa, child.remote.ip()) else {
            ios!(
                IPSEC,
                Warning,
                NO_TUNNEL,
                "CHILD_SA with {} matches no tunnel interface",
                child.remote
            );
            return;
        };
        // Both ends of a static VTI initiate at once and may end up with two IKE SAs for one tunnel.
        if let Some(existing) = self.tunnels[idx].ike_sa
            && existing != ike_sa
            && self.tunnels[idx].dp.lock().outbound_spi().is_some()
            && self.tunnels[idx].destination.is_some()
            && !self.v1_peer_rekey(now, existing, ike_sa)
            && !self.keep_new_of_duplicates(now, existing, ike_sa, child, "")
        {
            return;
        }
        self.touch(idx);
        let tpl = self.tunnels[idx].sa_template;
        let mode = match child.mode {
            ike::Mode::Tunnel => dataplane::Mode::Tunnel,
            ike::Mode::Transport => dataplane::Mode::Transport,
        };
        let (out, inb) = match sa_pair(
            now,
            child,
            mode,
            tpl.replay_window,
            tpl.idle,
            self.esp_key_log.as_deref(),
        ) {
            Ok(p) => p,
            Err(SaPairError::Unsupported) => return,
            Err(SaPairError::BadKeys) => {
                ios!(
                    IPSEC,
                    Error,
                    BAD_SA,
                    "keys for SPI {:#010x} rejected by the data plane",
                    child.spi_in
                );
                return;
            }
        };
        let t = &mut self.tunnels[idx];
        t.ike_sa = Some(ike_sa);
        let udp = child.udp_encap.then(|| UdpPorts {
            local: child.local.port(),
            remote: child.remote.port(),
        });
        {
            let mut dp = t.dp.lock();
            dp.set_destination(child.remote.ip(), udp);
            if dp.outbound_spi().is_some() {
                dp.replace_sa(now, out, inb);
            } else {
                dp.install_sa(now, out, inb);
            }
        }
        let (name, spi_in, spi_out, remote, encap) = (
            t.ios_name.clone(),
            child.spi_in,
            child.spi_out,
            child.remote,
            child.udp_encap,
        );
        crate::qos::refresh_encap(t);
        self.spis.insert(child.spi_in, idx);
        self.vpnsip_child_up(now, idx, ike_sa);
        // Packets held for the SA go through the tunnel's policy (shaped and marked) like the rest.
        if self.tunnels[idx].egress.is_attached() {
            let pending = self.tunnels[idx].dp.lock().take_pending();
            for p in pending {
                self.handle_tun(now, idx, &p);
            }
        }
        ios!(
            IPSEC,
            Notice,
            SA_INSTALLED,
            "{name}: SPI in {spi_in:#010x} out {spi_out:#010x} with {remote}{}",
            if encap { " (UDP-encapsulated)" } else { "" }
        );
    }

    fn tunnel_event(&mut self, now: Instant, idx: usize, ev: dataplane::Event) {
        match ev {
            dataplane::Event::Acquire { .. } => {
                if !self.vpnsip_acquire(now, idx) {
                    self.initiate(now, idx)
                }
            }
            dataplane::Event::AcquireFailed { dropped, .. } => {
                ios!(
                    IPSEC,
                    Warning,
                    ACQUIRE_FAILED,
                    "{}: {dropped} queued packets dropped",
                    self.tunnels[idx].ios_name
                )
            }
            dataplane::Event::Rekey {
                spi, inbound: true, ..
            } => {
                if let Some(id) = self.tunnels[idx].ike_sa {
                    self.ike_rekey_child(now, id, spi);
                }
            }
            dataplane::Event::Rekey { .. } | dataplane::Event::Expired { .. } => {}
            dataplane::Event::Idle { .. } => {
                ios!(
                    IPSEC,
                    Notice,
                    IDLE,
                    "{}: SA idle, deleting",
                    self.tunnels[idx].ios_name
                );
                if self.vpnsip_idle(now, idx) {
                    return;
                }
                if let Some(id) = self.tunnels[idx].ike_sa {
                    self.ike_delete(now, id);
                }
            }
            dataplane::Event::InvalidSpi { spi, from, .. } => {
                tracing::debug!(spi, %from, "invalid SPI");
            }
        }
    }
}

/// Why [`sa_pair`] made no SA pair.
enum SaPairError {
    /// A cipher the data plane does not have (IKE only negotiates what it offers: not reached).
    Unsupported,
    /// The data plane refused the keys.
    BadKeys,
}

/// The data plane's outbound and inbound SA for a negotiated CHILD_SA / IPsec SA pair (SVTI or GRE; IKEv2
/// or IKEv1), with the lifetimes IKE negotiated; both directions' keys go to the `--debug-esp-keys` file
/// when one is given.
fn sa_pair(
    now: Instant,
    child: &ChildSaKeys,
    mode: dataplane::Mode,
    replay_window: u32,
    idle: Option<Duration>,
    key_log: Option<&std::path::Path>,
) -> Result<(OutboundSa, InboundSa), SaPairError> {
    let (Some(encr), integ) = (map_encr(child.encr), child.integ.map(map_integ)) else {
        return Err(SaPairError::Unsupported);
    };
    let mut lifetime = Lifetime::from_ios(child.lifetime_kb, child.lifetime.as_secs());
    // IKE rekeys by time on its own (at 90 % of the lifetime); the data plane's soft limit only asks
    // for a rekey by volume, or both would rekey the same SA.
    lifetime.soft_time = None;
    if child.lifetime_kb == 0 {
        // `lifetime kilobytes disable`
        lifetime.soft_bytes = None;
        lifetime.hard_bytes = None;
    }
    let base = SaParams {
        spi: child.spi_out,
        encr,
        integ,
        enc_key: child.key_out.as_bytes(),
        integ_key: child.integ_key_out.as_bytes(),
        esn: child.esn,
        mode,
        replay_window: 0,
        lifetime,
        idle_timeout: idle,
    };
    let out = OutboundSa::new(now, &base);
    let inb = InboundSa::new(
        now,
        &SaParams {
            spi: child.spi_in,
            enc_key: child.key_in.as_bytes(),
            integ_key: child.integ_key_in.as_bytes(),
            replay_window,
            ..base.clone()
        },
    );
    if let Some(path) = key_log {
        crate::keylog::append(
            path,
            encr,
            integ,
            [
                crate::keylog::Direction {
                    src: child.local,
                    dst: child.remote,
                    spi: child.spi_out,
                    enc_key: child.key_out.as_bytes(),
                    integ_key: child.integ_key_out.as_bytes(),
                },
                crate::keylog::Direction {
                    src: child.remote,
                    dst: child.local,
                    spi: child.spi_in,
                    enc_key: child.key_in.as_bytes(),
                    integ_key: child.integ_key_in.as_bytes(),
                },
            ],
        );
    }
    match (out, inb) {
        (Ok(o), Ok(i)) => Ok((o, i)),
        _ => Err(SaPairError::BadKeys),
    }
}

fn mask_len(mask: Ipv4Addr) -> u8 {
    u32::from(mask).leading_ones() as u8
}

fn map_encr(e: EncrAlg) -> Option<dataplane::Encr> {
    use dataplane::crypto::AesKeyLen::*;
    Some(match e {
        EncrAlg::AesCbc128 => dataplane::Encr::AesCbc(Aes128),
        EncrAlg::AesCbc192 => dataplane::Encr::AesCbc(Aes192),
        EncrAlg::AesCbc256 => dataplane::Encr::AesCbc(Aes256),
        EncrAlg::AesGcm16_128 => dataplane::Encr::AesGcm16(Aes128),
        EncrAlg::AesGcm16_256 => dataplane::Encr::AesGcm16(Aes256),
    })
}

fn map_integ(i: IntegAlg) -> dataplane::Integ {
    match i {
        IntegAlg::HmacSha1_96 => dataplane::Integ::HmacSha1_96,
        IntegAlg::HmacSha256_128 => dataplane::Integ::HmacSha256_128,
        IntegAlg::HmacSha384_192 => dataplane::Integ::HmacSha384_192,
        IntegAlg::HmacSha512_256 => dataplane::Integ::HmacSha512_256,
    }
}

/// The IPv4 address an interface has in the configuration (`ip address`, or via `ip unnumbered`).
pub fn interface_address(cfg: &config::Config, name: &str) -> Option<(Ipv4Addr, u8)> {
    let i = cfg.interface(name)?;
    match &i.ip {
        config::IpAddressing::Static { primary, .. } => Some((primary.addr, primary.prefix_len)),
        config::IpAddressing::Unnumbered(other) if other != name => {
            interface_address(cfg, other).map(|(a, _)| (a, 32))
        }
        _ => None,
    }
}

/// The IPv4 address of a tunnel's `tunnel source` (an address, or an interface's address), if any.
pub(crate) fn tunnel_source(cfg: &config::Config, i: &config::Interface) -> Option<Ipv4Addr> {
    match &i.tunnel.source {
        Some(config::TunnelSource::Address(a)) => Some(*a),
        Some(config::TunnelSource::Interface(n)) => interface_address(cfg, n).map(|(a, _)| a),
        None => None,
    }
}

fn svti(cfg: &config::Config, i: &config::Interface) -> Result<Svti, String> {
    let device = i
        .linux_name()
        .ok_or("no Linux device name (add `device NAME`)")?
        .to_string();
    let source = tunnel_source(cfg, i);
    let destination = match &i.tunnel.destination {
        Some(config::TunnelDestination::Address(a)) => Some(*a),
        _ => None,
    };
    let protection = i.tunnel.protection.as_ref();
    let ipsec = protection.and_then(|p| cfg.effective_ipsec_profile(&p.ipsec_profile));
    let profile = protection
        .and_then(|p| p.ikev2_profile.clone())
        .or_else(|| ipsec.as_ref().and_then(|p| p.ikev2_profile.clone()));
    let id = i
        .name
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    let src = source.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut tc = TunnelConfig::new(id, IpAddr::V4(src), destination.map(IpAddr::V4));
    tc.ip_mtu = i.ip_mtu;
    tc.adjust_mss = i.tcp_adjust_mss;
    let address = interface_address(cfg, &i.name);
    if let Some((a, _)) = address {
        tc.icmp_source = a;
    }
    let sa_template = SaTemplate {
        replay_window: ipsec.as_ref().map_or(64, |p| p.replay_window.unwrap_or(0)),
        idle: ipsec.as_ref().and_then(|p| p.idle_time),
    };
    Ok(Svti {
        ios_name: i.name.clone(),
        device,
        address,
        dp: crate::fastpath::SharedTunnel::new(Tunnel::new(tc)),
        profile,
        source,
        destination,
        peer: None,
        ike_sa: None,
        egress: dataplane::qos::Egress::new(),
        sa_template,
    })
}

/// The key of a GRE packet that carries IPv4 (`None`: not IPv4, or not GRE).
fn ipv4_gre_key(gre: &[u8]) -> Option<Option<u32>> {
    use nhrp::wire::gre::{Packet, ProtocolType};
    let p = Packet::new_checked(gre).ok()?;
    (p.protocol_type() == ProtocolType::IPV4).then(|| p.key())
}

/// `crypto ikev2 profile` + the IPsec profile that uses it -> an `ike::Profile`.
pub(crate) fn ike_profile(
    cfg: &config::Config,
    p: &config::Ikev2Profile,
) -> Result<Profile, String> {
    let mut keyring = Keyring::default();
    if let Some(name) = &p.keyring_local {
        let kr = cfg
            .ikev2_keyring(name)
            .ok_or_else(|| format!("keyring {name} is not defined"))?;
        for peer in &kr.peers {
            // `pre-shared-key KEY` both ways, unless `pre-shared-key local|remote KEY` splits them.
            let key = |k: Option<&config::Secret>| k.map(|s| s.expose().as_bytes().to_vec());
            let local = key(peer
                .pre_shared_key_local
                .as_ref()
                .or(peer.pre_shared_key.as_ref()));
            let remote = key(peer
                .pre_shared_key_remote
                .as_ref()
                .or(peer.pre_shared_key.as_ref()));
            if local.is_none() && remote.is_none() {
                continue;
            }
            let (local, remote) = (local.as_deref(), remote.as_deref());
            let mut ids: Vec<Option<Identity>> =
                peer.identities.iter().map(|i| Some(identity(i))).collect();
            match peer.address {
                Some((a, mask)) if a.is_unspecified() || mask == Some(Ipv4Addr::UNSPECIFIED) => {
                    ids.push(None)
                }
                // `address A M`: every peer address in the subnet (was taken for A alone, so no peer
                // matched `address 192.0.2.0 255.255.255.0`).
                Some((a, Some(m))) if m != Ipv4Addr::BROADCAST => {
                    keyring = keyring.with_subnet_keys(a, m, local, remote);
                }
                Some((a, _)) => ids.push(Some(Identity::Ipv4(a))),
                None => {}
            }
            for id in ids {
                keyring = keyring.with_keys(id, local, remote);
            }
        }
    }
    // A profile that keys a VPN-SIP tunnel authenticates by SIP number (key-id) and checks SDP fingerprints.
    // Its identity is the local number of the tunnels it keys (validation: one number per profile).
    let keyed_number = cfg.interfaces.iter().find_map(|i| {
        let v = i.vpn_sip.as_ref()?;
        (cfg.tunnel_ikev2_profile(i).as_deref() == Some(p.name.as_str()))
            .then_some(v.local_number.as_str())
    });
    let vpn_sip = keyed_number.is_some();
    let local_id = match (&p.identity_local, keyed_number) {
        (Some(i), _) => identity(i),
        (None, Some(n)) => Identity::key_id(n),
        (None, None) => Identity::Ipv4(Ipv4Addr::UNSPECIFIED),
    };
    let mut profile = Profile::psk(&p.name, local_id, keyring);
    // The first line `lifeline check` does not warn about (`any`, `address 0.0.0.0` and a 0.0.0.0 mask
    // match any peer; a /32 mask is the address itself; another mask is the subnet).
    let (remote_id, remote_mask) = p
        .match_identity_remote
        .iter()
        .find_map(|m| match m {
            config::IdentityMatch::KeyId(k) => Some((Identity::key_id(k), None)),
            config::IdentityMatch::Address(a, m)
                if !a.is_unspecified() && m.is_none_or(|m| m == Ipv4Addr::BROADCAST) =>
            {
                Some((Identity::Ipv4(*a), None))
            }
            config::IdentityMatch::Address(a, Some(m))
                if !a.is_unspecified() && !m.is_unspecified() =>
            {
                let net = Ipv4Addr::from(u32::from(*a) & u32::from(*m));
                Some((Identity::Ipv4(net), Some(*m)))
            }
            config::IdentityMatch::Fqdn {
                domain: false,
                name,
            } => Some((Identity::Fqdn(name.clone()), None)),
            _ => None,
        })
        .unzip();
    profile.remote_id = remote_id;
    profile.remote_mask = remote_mask.flatten();
    profile.force_encap = p.nat_force_encap;
    profile.vpn_sip = vpn_sip;
    if let Some(d) = p.dpd.or(cfg.ikev2.dpd) {
        profile.dpd = Some(ike::Dpd {
            interval: d.interval,
            retry: d.retry,
            periodic: d.periodic,
        });
    }
    if let Some(l) = p.lifetime {
        profile.ike_lifetime = l;
    }
    // The IPsec profile that names this IKEv2 profile (directly or through a tunnel) sets the ESP side
    // (one per IKEv2 profile: `lifeline check` warns when tunnels of one IKEv2 profile differ).
    if let Some(ip) = cfg.ipsec_profile_of_ikev2(&p.name) {
        let esp: Vec<ike::EspProposal> =
            ip.transform_sets.iter().filter_map(esp_proposal).collect();
        if !esp.is_empty() {
            profile.esp_proposals = esp;
        }
        profile.child_lifetime = Duration::from_secs(u64::from(ip.lifetime_seconds));
        profile.child_lifetime_kb = ip.lifetime_kilobytes.unwrap_or(0);
        profile.pfs = ip.pfs_group.and_then(dh_group);
        if let Some(ts) = ip.transform_sets.first()
            && ts.mode == Some(config::IpsecMode::Transport)
        {
            profile.mode = ike::Mode::Transport;
        }
    }
    Ok(profile)
}

fn identity(i: &config::Ikev2Identity) -> Identity {
    match i {
        config::Ikev2Identity::KeyId(k) => Identity::key_id(k),
        config::Ikev2Identity::Fqdn(f) => Identity::Fqdn(f.clone()),
        config::Ikev2Identity::Email(e) => Identity::Email(e.clone()),
        config::Ikev2Identity::Address(a) => Identity::Ipv4(*a),
        // The certificate's subject, set when the credential is applied (`pki::apply`).
        config::Ikev2Identity::Dn => Identity::Ipv4(Ipv4Addr::UNSPECIFIED),
    }
}

pub(crate) fn dh_group(g: u16) -> Option<ike::DhGroup> {
    Some(match g {
        14 => ike::DhGroup::Modp2048,
        19 => ike::DhGroup::Ecp256,
        20 => ike::DhGroup::Ecp384,
        21 => ike::DhGroup::Ecp521,
        31 => ike::DhGroup::Curve25519,
        _ => return None,
    })
}

/// `crypto ipsec transform-set NAME esp-aes 256 esp-sha256-hmac` -> an ESP proposal.
pub(crate) fn esp_proposal(ts: &config::TransformSet) -> Option<ike::EspProposal> {
    let words: Vec<&str> = ts
        .transforms
        .iter()
        .flat_map(|t| t.split_whitespace())
        .collect();
    let bits = |i: usize| words.get(i + 1).and_then(|w| w.parse::<u16>().ok());
    let mut encr = None;
    let mut integ = None;
    for (i, w) in words.iter().enumerate() {
        match *w {
            "esp-aes" => {
                encr = Some(match bits(i) {
                    Some(256) => EncrAlg::AesCbc256,
                    Some(192) => EncrAlg::AesCbc192,
                    _ => EncrAlg::AesCbc128,
                })
            }
            "esp-gcm" => {
                encr = Some(match bits(i) {
                    Some(256) => EncrAlg::AesGcm16_256,
                    _ => EncrAlg::AesGcm16_128,
                })
            }
            "esp-sha-hmac" => integ = Some(IntegAlg::HmacSha1_96),
            "esp-sha256-hmac" => integ = Some(IntegAlg::HmacSha256_128),
            "esp-sha384-hmac" => integ = Some(IntegAlg::HmacSha384_192),
            "esp-sha512-hmac" => integ = Some(IntegAlg::HmacSha512_256),
            _ => {}
        }
    }
    let encr = encr?;
    let gcm = matches!(encr, EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256);
    Some(ike::EspProposal {
        encr,
        integ: if gcm { None } else { integ },
        esn: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_of(text: &str) -> ike::Profile {
        let parsed = config::parse(text);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let cfg = parsed.config;
        ike_profile(&cfg, &cfg.ikev2.profiles[0]).unwrap()
    }

    #[test]
    fn match_identity_remote_address_0_0_0_0_is_any_address() {
        let base = "crypto ikev2 keyring K\n peer any\n  address 0.0.0.0 0.0.0.0\n  pre-shared-key k\n!\n\
                    crypto ikev2 profile P\n match identity remote address MATCH\n \
                    authentication local pre-share\n authentication remote pre-share\n keyring local K\n!\n";
        let any = profile_of(&base.replace("MATCH", "0.0.0.0"));
        assert_eq!(any.remote_id, None);
        let one = profile_of(&base.replace("MATCH", "192.0.2.7"));
        assert_eq!(
            one.remote_id,
            Some(Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 7)))
        );
        // A /32 mask is the same address (it was taken for any peer).
        let host = profile_of(&base.replace("MATCH", "192.0.2.7 255.255.255.255"));
        assert_eq!(host.remote_id, one.remote_id);
    }

    /// `match identity remote address A M` is the subnet: a peer whose IPv4 identity or address is inside
    /// matches the profile, one outside does not (it matched any peer before, with a `lifeline check`
    /// warning); a 0.0.0.0 mask is any peer.
    #[test]
    fn match_identity_remote_address_with_a_mask_is_the_subnet() {
        let base = "crypto ikev2 keyring K\n peer any\n  address 0.0.0.0 0.0.0.0\n  pre-shared-key k\n!\n\
                    crypto ikev2 profile P\n match identity remote address MATCH\n \
                    authentication local pre-share\n authentication remote pre-share\n keyring local K\n!\n";
        let p = profile_of(&base.replace("MATCH", "10.20.0.1 255.255.0.0"));
        let ip = |s: &str| Identity::Ipv4(s.parse().unwrap());
        let at = |s: &str| IpAddr::V4(s.parse().unwrap());
        assert!(
            p.matches_remote(&ip("10.20.3.4"), at("192.0.2.1")),
            "identity inside"
        );
        assert!(
            p.matches_remote(&Identity::Fqdn("x".into()), at("10.20.9.9")),
            "address inside"
        );
        assert!(
            !p.matches_remote(&ip("10.21.0.1"), at("192.0.2.1")),
            "both outside"
        );
        assert!(!p.matches_remote(&Identity::Fqdn("x".into()), at("10.21.0.1")));
        let any = profile_of(&base.replace("MATCH", "10.20.0.1 0.0.0.0"));
        assert!(any.matches_remote(&ip("198.51.100.1"), at("198.51.100.1")));
    }

    /// `pre-shared-key local A` / `pre-shared-key remote B` split one keyring entry's keys: we sign with A
    /// and the peer must authenticate with B (both were B before, and a peer with only `local` was dropped).
    #[test]
    fn keyring_local_and_remote_keys_are_kept_apart() {
        let p = profile_of(
            "crypto ikev2 keyring K\n peer hub\n  address 192.0.2.1\n  pre-shared-key local mine\n\
             \x20 pre-shared-key remote theirs\n peer half\n  address 192.0.2.2\n  pre-shared-key local only\n!\n\
             crypto ikev2 profile P\n match identity remote any\n authentication local pre-share\n \
             authentication remote pre-share\n keyring local K\n!\n",
        );
        let text =
            |k: Option<&ike::Secret>| k.map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned());
        let hub = Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(text(p.keyring.lookup_local(&hub)).as_deref(), Some("mine"));
        assert_eq!(text(p.keyring.lookup(&hub)).as_deref(), Some("theirs"));
        let half = Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(text(p.keyring.lookup_local(&half)).as_deref(), Some("only"));
        assert_eq!(text(p.keyring.lookup(&half)), None);
    }

    /// `peer X` / `address 192.0.2.0 255.255.255.0` keys every peer in the subnet (IOS), and a /32 or an
    /// exact address still only its own; found against strongSwan in tests/guest_svti.rs, where the
    /// subnet was taken for the address 192.0.2.0 alone ("no key for peer identity 192.0.2.1").
    #[test]
    fn keyring_address_with_a_mask_keys_the_whole_subnet() {
        let p = profile_of(
            "crypto ikev2 keyring K\n peer lan\n  address 192.0.2.0 255.255.255.0\n  pre-shared-key wide\n\
             peer one\n  address 192.0.2.9\n  pre-shared-key exact\n\
             peer sub\n  address 192.0.2.16 255.255.255.240\n  pre-shared-key narrow\n!\n\
             crypto ikev2 profile P\n match identity remote any\n authentication local pre-share\n \
             authentication remote pre-share\n keyring local K\n!\n",
        );
        let key = |a: [u8; 4]| {
            p.keyring
                .lookup(&Identity::Ipv4(Ipv4Addr::from(a)))
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
        };
        assert_eq!(key([192, 0, 2, 1]).as_deref(), Some("wide"));
        assert_eq!(key([192, 0, 2, 254]).as_deref(), Some("wide"));
        assert_eq!(key([192, 0, 2, 9]).as_deref(), Some("exact"));
        assert_eq!(key([192, 0, 2, 20]).as_deref(), Some("narrow"));
        assert_eq!(key([198, 51, 100, 1]), None);
        assert_eq!(
            p.keyring
                .lookup(&Identity::Fqdn("192.0.2.1".into()))
                .map(|s| s.as_bytes().to_vec()),
            None
        );
    }
}

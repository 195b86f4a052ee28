//! IKEv1 in the appliance: a tunnel whose `tunnel protection ipsec profile` names no IKEv2 profile is keyed
//! by `ike::v1` (`crypto isakmp policy` / `crypto isakmp key` / `crypto ipsec transform-set`), as in the
//! seeds' IKEv1 static VTI (seed 002 ch. 3) and DMVPN configurations.
//!
//! The seam: both endpoints emit the same `ike::Event`s with the same `ChildSaKeys`, and the node installs
//! them through one path (`Node::ike_event`), so the data plane cannot tell which version keyed an SA. The
//! IKEv1 endpoint numbers its SA handles from [`V1_FIRST_ID`], so one `IkeSaId` space covers both endpoints
//! and every operation on a handle ([`Node::ike_delete`], [`Node::ike_rekey_child`], ...) goes to the
//! endpoint that owns it. UDP 500/4500 datagrams go to the endpoint named by the ISAKMP header's major
//! version ([`ike_major_version`]).
//!
//! Legacy algorithms (DES, 3DES, MD5, DH groups 1/2/5) in `crypto isakmp policy`, transform sets and
//! `set pfs` are refused with a log line naming the algorithm and its replacement; never silently.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use ike::v1;
use ike::{IkeSaId, Mode};

use crate::ios;
use crate::node::{IKE_PORT, NAT_T_PORT, Node};

/// IKEv1 SA handles start here (IKEv2's count from 1).
pub const V1_FIRST_ID: u64 = 1 << 32;

/// A second ISAKMP SA with a tunnel's peer is a simultaneous start (resolved as a duplicate) when the
/// first one has been up for less than this, else the peer's phase-1 rekey (IOS allows 60 s lifetimes
/// at least, so a rekey comes later than this).
pub const V1_REKEY_NOT_DUPLICATE: Duration = Duration::from_secs(10);

/// The major version of an IKE datagram (1 = ISAKMP/IKEv1, 2 = IKEv2), read from the header's version
/// octet (offset 17; after the 4-byte non-ESP marker on the NAT-T port). `None` when too short.
pub fn ike_major_version(local_port: u16, payload: &[u8]) -> Option<u8> {
    let off = if local_port == NAT_T_PORT { 4 } else { 0 };
    payload.get(off + 17).map(|v| v >> 4)
}

/// Whether tunnel interface `i` is keyed by IKEv1: it has tunnel protection and neither the protection
/// line nor its IPsec profile names an IKEv2 profile.
pub fn keyed_by_ikev1(cfg: &config::Config, i: &config::Interface) -> bool {
    let Some(tp) = i.tunnel.protection.as_ref() else {
        return false;
    };
    tp.ikev2_profile.is_none()
        && cfg
            .effective_ipsec_profile(&tp.ipsec_profile)
            .is_some_and(|p| p.ikev2_profile.is_none())
}

/// Legacy transform keywords and what to configure instead.
const LEGACY_TRANSFORMS: &[(&str, &str)] = &[
    ("esp-des", "esp-aes 256"),
    ("esp-3des", "esp-aes 256"),
    ("esp-md5-hmac", "esp-sha256-hmac"),
    ("ah-md5-hmac", "esp-sha256-hmac"),
    ("esp-null", "esp-aes 256 esp-sha256-hmac"),
];

fn policy(p: &config::IsakmpPolicy) -> Result<v1::IsakmpPolicy, String> {
    let mut out = v1::IsakmpPolicy::ios_default(p.priority);
    if let Some(e) = &p.encryption {
        let w: Vec<&str> = e.split_whitespace().collect();
        out.encryption = match w.as_slice() {
            ["des", ..] => v1::PolicyEncryption::Des,
            ["3des", ..] => v1::PolicyEncryption::TripleDes,
            ["aes"] => v1::PolicyEncryption::Aes(128),
            ["aes", bits] => v1::PolicyEncryption::Aes(bits.parse().unwrap_or(0)),
            _ => return Err(format!("encryption {e} is not supported")),
        };
    }
    if let Some(h) = &p.hash {
        out.hash = match h.as_str() {
            "md5" => v1::PolicyHash::Md5,
            "sha" | "sha1" => v1::PolicyHash::Hash(v1::HashAlg::Sha1),
            "sha256" => v1::PolicyHash::Hash(v1::HashAlg::Sha256),
            "sha384" => v1::PolicyHash::Hash(v1::HashAlg::Sha384),
            "sha512" => v1::PolicyHash::Hash(v1::HashAlg::Sha512),
            other => return Err(format!("hash {other} is not supported")),
        };
    }
    if let Some(a) = &p.authentication {
        out.authentication = match a.as_str() {
            "pre-share" => v1::AuthMethod::PreShare,
            "rsa-sig" => v1::AuthMethod::RsaSig,
            other => return Err(format!("authentication {other} is not supported")),
        };
    }
    if let Some(g) = p.group {
        out.group = g;
    }
    if let Some(l) = p.lifetime {
        out.lifetime = l;
    }
    Ok(out)
}

/// Which quick-mode parameter set ([`v1::Config::quick_mode`]) each kind of IKEv1 tunnel initiates with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuickModeSets {
    /// Static VTIs (`tunnel mode ipsec ipv4`): tunnel mode, 0.0.0.0/0 both ways.
    pub vti: Option<usize>,
    /// Protected GRE / mGRE: transport mode, host-to-host GRE (IP protocol 47) selectors per NBMA peer.
    pub gre: Option<usize>,
}

/// Whether interface `i` is a GRE or mGRE tunnel.
pub fn is_gre(i: &config::Interface) -> bool {
    matches!(
        i.tunnel.effective_mode(),
        config::TunnelMode::GreIp | config::TunnelMode::GreMultipoint
    )
}

/// The quick-mode parameters of IPsec profile `profile_name` (`None`, with the reason in `problems`, when
/// nothing usable is left after refusing legacy algorithms).
fn quick_mode(
    cfg: &config::Config,
    profile_name: &str,
    gre: bool,
    problems: &mut Vec<String>,
) -> Option<v1::QuickMode> {
    let Some(ip) = cfg.effective_ipsec_profile(profile_name) else {
        problems.push(format!(
            "crypto ipsec profile {profile_name} is not defined"
        ));
        return None;
    };
    let mut transform_sets = Vec::new();
    for ts in &ip.transform_sets {
        let legacy: Vec<String> = ts
            .transforms
            .iter()
            .flat_map(|t| t.split_whitespace())
            .filter_map(|w| {
                LEGACY_TRANSFORMS
                    .iter()
                    .find(|(l, _)| *l == w)
                    .map(|(l, r)| {
                        format!("{l} is a legacy algorithm and is refused; configure {r}")
                    })
            })
            .collect();
        if !legacy.is_empty() {
            problems.push(format!(
                "crypto ipsec transform-set {}: {}",
                ts.name,
                legacy.join("; ")
            ));
            continue;
        }
        match crate::node::esp_proposal(ts) {
            Some(p) => transform_sets.push(p),
            None => problems.push(format!(
                "crypto ipsec transform-set {} {}: no supported ESP cipher",
                ts.name,
                ts.transforms.join(" ")
            )),
        }
    }
    if transform_sets.is_empty() {
        problems.push(format!(
            "crypto ipsec profile {profile_name}: no usable transform set; IKEv1 tunnels stay down"
        ));
        return None;
    }
    let pfs = match ip.pfs_group {
        None => None,
        Some(g) => match crate::node::dh_group(g) {
            Some(d) => Some(d),
            None => {
                let what = match g {
                    1 => "set pfs (group1, 768-bit MODP)".to_string(),
                    2 | 5 => format!("set pfs group{g}"),
                    _ => format!("set pfs group{g} (unsupported)"),
                };
                problems.push(format!(
                    "crypto ipsec profile {profile_name}: {what} is a legacy algorithm and is refused; configure set pfs group14; IKEv1 tunnels stay down"
                ));
                return None;
            }
        },
    };
    if gre {
        let tunnel_mode: Vec<&str> = ip
            .transform_sets
            .iter()
            .filter(|t| t.mode != Some(config::IpsecMode::Transport))
            .map(|t| t.name.as_str())
            .collect();
        if !tunnel_mode.is_empty() {
            problems.push(format!(
                "crypto ipsec profile {profile_name}: transform set(s) {} in tunnel mode: GRE tunnel protection keyed by IKEv1 is negotiated in transport mode (configure `mode transport`, as the seeds recommend); a peer that insists on tunnel mode is refused",
                tunnel_mode.join(", ")
            ));
        }
    }
    let (mode, selectors) = if gre {
        // Tunnel protection on GRE: the GRE packet between the two NBMA addresses is what ESP protects,
        // in transport mode (a `mode tunnel` transform set would only add an outer header).
        (Mode::Transport, v1::Selectors::Host { protocol: 47 })
    } else {
        // A VTI carries any traffic: quick mode proposes 0.0.0.0/0 both ways, tunnel mode.
        (Mode::Tunnel, v1::Selectors::AnyAny)
    };
    Some(v1::QuickMode {
        transform_sets,
        mode,
        pfs,
        selectors,
        ipsec_lifetime: Duration::from_secs(u64::from(ip.lifetime_seconds)),
        ipsec_lifetime_kb: ip.lifetime_kilobytes.unwrap_or(0),
    })
}

/// The IKEv1 endpoint configuration of the appliance, or `None` when no tunnel is keyed by IKEv1; which
/// quick-mode set each kind of tunnel uses; and the problems to log (refused legacy algorithms with their
/// replacements, settings that do not map).
///
/// Static VTIs and protected GRE tunnels keyed by IKEv1 get one quick-mode parameter set each (the IPsec
/// profile of the first such tunnel of each kind): VTIs tunnel mode any/any, GRE transport mode with GRE
/// host selectors. A second tunnel of the same kind naming a different IPsec profile is reported.
pub fn endpoint_config(cfg: &config::Config) -> (Option<v1::Config>, QuickModeSets, Vec<String>) {
    let mut problems = Vec::new();
    let mut sets = QuickModeSets::default();
    let tunnels: Vec<&config::Interface> = cfg
        .interfaces
        .iter()
        .filter(|i| i.is_tunnel() && keyed_by_ikev1(cfg, i))
        .collect();
    if tunnels.is_empty() {
        return (None, sets, problems);
    }
    let mut quick_modes: Vec<v1::QuickMode> = Vec::new();
    for gre in [false, true] {
        let kind: Vec<&&config::Interface> = tunnels.iter().filter(|i| is_gre(i) == gre).collect();
        let Some(first) = kind.first() else {
            continue;
        };
        let profile_name = first
            .tunnel
            .protection
            .as_ref()
            .map(|p| p.ipsec_profile.clone())
            .unwrap_or_default();
        for t in &kind[1..] {
            let other = t
                .tunnel
                .protection
                .as_ref()
                .map(|p| p.ipsec_profile.as_str());
            if other != Some(profile_name.as_str()) {
                problems.push(format!(
                    "interface {}: IKEv1 uses the IPsec profile of {} ({profile_name}) for every {} tunnel; profile {} is not applied",
                    t.name,
                    first.name,
                    if gre { "GRE" } else { "IPsec (VTI)" },
                    other.unwrap_or("-")
                ));
            }
        }
        if let Some(q) = quick_mode(cfg, &profile_name, gre, &mut problems) {
            let idx = Some(quick_modes.len());
            if gre {
                sets.gre = idx;
            } else {
                sets.vti = idx;
            }
            quick_modes.push(q);
        }
    }
    if quick_modes.is_empty() {
        return (None, sets, problems);
    }
    let mut c = v1::Config::psk(v1::PresharedKey::new(b"", Ipv4Addr::UNSPECIFIED, None));
    c.keys.clear();
    c.policies.clear();
    for p in &cfg.isakmp.policies {
        match policy(p) {
            Ok(p) => c.policies.push(p),
            Err(e) => problems.push(format!("crypto isakmp policy {}: {e}", p.priority)),
        }
    }
    if cfg.isakmp.policies.is_empty() {
        problems.push(
            "IKEv1: no `crypto isakmp policy` is configured (configure one with encryption aes 256, authentication pre-share, group 14)"
                .into(),
        );
    }
    for k in &cfg.isakmp.keys {
        match &k.peer {
            config::IsakmpKeyPeer::Address(a, m) => c.keys.push(v1::PresharedKey::new(
                k.key.expose().as_bytes(),
                *a,
                *m,
            )),
            config::IsakmpKeyPeer::Hostname(h) => problems.push(format!(
                "crypto isakmp key ... hostname {h}: keys by hostname are not supported (use address)"
            )),
            config::IsakmpKeyPeer::Ipv6(a) => problems.push(format!(
                "crypto isakmp key ... address ipv6 {a}: IKEv1 is IPv4 only here"
            )),
        }
    }
    // Set 0 is the config's own fields; the rest go to `quick_modes`.
    let mut rest = quick_modes.into_iter();
    if let Some(q0) = rest.next() {
        c.transform_sets = q0.transform_sets;
        c.mode = q0.mode;
        c.selectors = q0.selectors;
        c.pfs = q0.pfs;
        c.ipsec_lifetime = q0.ipsec_lifetime;
        c.ipsec_lifetime_kb = q0.ipsec_lifetime_kb;
    }
    c.quick_modes = rest.collect();
    c.keepalive = cfg.isakmp.keepalive.map(|k| v1::Keepalive {
        interval: Duration::from_secs(u64::from(k.seconds)),
        retry: Duration::from_secs(u64::from(k.retry.unwrap_or(2))),
        periodic: k.periodic.unwrap_or(false),
    });
    // IOS sends NAT keepalives only when `crypto isakmp nat keepalive` is configured.
    c.nat_keepalive = cfg
        .isakmp
        .nat_keepalive
        .map(|s| Duration::from_secs(u64::from(s)));
    (Some(c), sets, problems)
}

/// Build the endpoint (its policy refusals are logged by the first pump).
pub fn endpoint(
    cfg: &config::Config,
    rng: Box<dyn ike::Rng + Send>,
) -> (Option<v1::Endpoint>, QuickModeSets, Vec<String>) {
    let (c, sets, problems) = endpoint_config(cfg);
    let ep = c.map(|c| {
        let mut e = v1::Endpoint::new(c, rng);
        e.set_first_id(V1_FIRST_ID);
        e.set_nat_t_port(NAT_T_PORT);
        e
    });
    (ep, sets, problems)
}

impl Node {
    /// Whether `id` is an IKEv1 handle.
    pub(crate) fn is_v1(&self, id: IkeSaId) -> bool {
        self.ikev1.as_ref().is_some_and(|e| e.owns(id))
    }

    /// Tunnel `idx` is keyed by IKEv1.
    pub(crate) fn tunnel_is_v1(&self, idx: usize) -> bool {
        self.ikev1.is_some()
            && self
                .config
                .interface(&self.tunnels[idx].ios_name)
                .is_some_and(|i| keyed_by_ikev1(&self.config, i))
    }

    /// An IKE datagram: to the endpoint of its version.
    pub(crate) fn ike_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) {
        match (ike_major_version(local.port(), payload), &mut self.ikev1) {
            (Some(1), Some(v1)) => v1.handle_input(now, local, remote, payload),
            (Some(1), None) => {
                tracing::debug!(%remote, "IKEv1 datagram without IKEv1 configuration dropped")
            }
            _ => self.ike.handle_input(now, local, remote, payload),
        }
    }

    /// Start main mode for IKEv1 tunnel `idx`; false when the tunnel is not keyed by IKEv1.
    pub(crate) fn initiate_v1(&mut self, now: Instant, idx: usize) -> bool {
        if !self.tunnel_is_v1(idx) {
            return false;
        }
        let t = &self.tunnels[idx];
        let (Some(src), Some(dst)) = (t.source, t.destination) else {
            return true;
        };
        if t.ike_sa.is_some() {
            return true;
        }
        let name = t.ios_name.clone();
        let (Some(v1), Some(set)) = (&mut self.ikev1, self.ikev1_sets.vti) else {
            return true;
        };
        match v1.initiate_with(
            now,
            SocketAddr::V4(SocketAddrV4::new(src, IKE_PORT)),
            SocketAddr::V4(SocketAddrV4::new(dst, IKE_PORT)),
            set,
        ) {
            Ok(id) => {
                ios!(
                    CRYPTO,
                    Informational,
                    IKMP_INITIATE,
                    "{name}: main mode to {dst}"
                );
                self.tunnels[idx].ike_sa = Some(id);
            }
            Err(e) => ios!(CRYPTO, Error, IKMP_INITIATE_FAILED, "{name}: {e}"),
        }
        true
    }

    /// Protected GRE tunnel `tunnel` keyed by IKEv1 has a packet for NBMA peer `dst` and no SA: start main
    /// mode from `src` with the GRE quick-mode set (transport mode, GRE host selectors).
    pub(crate) fn initiate_gre_v1(
        &mut self,
        now: Instant,
        tunnel: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Option<IkeSaId> {
        let name = self.gre.tunnels[tunnel].ios_name.clone();
        let (Some(v1), Some(set)) = (&mut self.ikev1, self.ikev1_sets.gre) else {
            // Said once at startup (the refused algorithms, "IKEv1 tunnels stay down"); not per packet.
            tracing::debug!(
                tunnel = %name,
                %dst,
                "no usable IKEv1 configuration for GRE protection: packet held, then dropped"
            );
            return None;
        };
        match v1.initiate_with(
            now,
            SocketAddr::V4(SocketAddrV4::new(src, IKE_PORT)),
            SocketAddr::V4(SocketAddrV4::new(dst, IKE_PORT)),
            set,
        ) {
            Ok(id) => {
                ios!(
                    CRYPTO,
                    Informational,
                    IKMP_INITIATE,
                    "{name}: main mode to {dst} (GRE protection)"
                );
                Some(id)
            }
            Err(e) => {
                ios!(CRYPTO, Error, IKMP_INITIATE_FAILED, "{name} to {dst}: {e}");
                None
            }
        }
    }

    /// `crypto isakmp keepalive S [R]` without `periodic` (IOS's on-demand DPD): traffic is going out of
    /// IKEv1 tunnel `idx`; if nothing came in for S seconds, ask the peer R-U-THERE (the endpoint sends at
    /// most one at a time, retries every R seconds and declares the peer dead after five).
    pub(crate) fn v1_on_demand_dpd(&mut self, now: Instant, idx: usize) {
        let Some(k) = self.config.isakmp.keepalive else {
            return;
        };
        if k.periodic == Some(true) || self.ikev1.is_none() {
            return;
        }
        let interval = Duration::from_secs(u64::from(k.seconds));
        let Some(id) = self.tunnels[idx].ike_sa.filter(|id| self.is_v1(*id)) else {
            return;
        };
        let heard = *self.v1_heard.entry(idx).or_insert(now);
        if now.saturating_duration_since(heard) >= interval
            && let Some(v1) = &mut self.ikev1
        {
            let _ = v1.dpd_probe(now, id);
            // Probe again only after another interval without traffic in.
            self.v1_heard.insert(idx, now);
        }
    }

    /// The same on-demand DPD for a protected GRE peer keyed by IKEv1 (SA database `sadb`, NBMA `peer`):
    /// a GRE packet is going out to it; if none of its ESP came in for S seconds, R-U-THERE on its ISAKMP SA.
    /// A peer declared dead takes its ISAKMP SA and IPsec SAs down, and the next packet for it negotiates
    /// anew.
    pub(crate) fn v1_gre_on_demand_dpd(&mut self, now: Instant, sadb: usize, peer: Ipv4Addr) {
        let Some(k) = self.config.isakmp.keepalive else {
            return;
        };
        if k.periodic == Some(true) || self.ikev1.is_none() {
            return;
        }
        let interval = Duration::from_secs(u64::from(k.seconds));
        let Some(p) = self.gre_esp.peers.get_mut(&(sadb, peer)) else {
            return;
        };
        let Some(id) = p.ike else {
            return;
        };
        let heard = *p.heard.get_or_insert(now);
        if now.saturating_duration_since(heard) < interval {
            return;
        }
        // Probe again only after another interval without traffic in.
        p.heard = Some(now);
        if self.is_v1(id)
            && let Some(v1) = &mut self.ikev1
        {
            let _ = v1.dpd_probe(now, id);
        }
    }

    /// IKEv1: whether ISAKMP SA `new` is the peer's phase-1 rekey of `existing` (a new main mode with the
    /// same peer once `existing` has been up for [`V1_REKEY_NOT_DUPLICATE`], e.g. strongSwan's
    /// reauthentication) rather than the other half of a simultaneous start: the tunnel moves to it and
    /// it is never deleted as a duplicate.
    pub(crate) fn v1_peer_rekey(&self, now: Instant, existing: IkeSaId, new: IkeSaId) -> bool {
        if !(self.is_v1(existing) && self.is_v1(new)) {
            return false;
        }
        self.ikev1.as_ref().is_some_and(|v1| {
            v1.snapshot(now)
                .iter()
                .any(|s| s.id == existing && s.active >= V1_REKEY_NOT_DUPLICATE)
        })
    }

    /// ISAKMP SA `gone` is going: each protected GRE peer it served whose outbound IPsec SA now lives under
    /// another ISAKMP SA (the endpoint passes IPsec SAs to the newest ISAKMP SA with the same peer, e.g.
    /// after the peer's phase-1 rekey or strongSwan's reauthentication) is served by that one from now on,
    /// as a VTI's tunnel follows it. Without this the peer kept its SA pair but had no ISAKMP SA until the
    /// next quick mode, so on-demand DPD sent nothing and a dead peer went unnoticed.
    fn v1_gre_follow_heirs(&mut self, now: Instant, gone: IkeSaId) {
        let Some(v1) = &self.ikev1 else {
            return;
        };
        if !self.gre_esp.peers.values().any(|p| p.ike == Some(gone)) {
            return;
        }
        let snap = v1.snapshot(now);
        for p in self.gre_esp.peers.values_mut() {
            if p.ike != Some(gone) {
                continue;
            }
            let Some(spi) = p.out.as_ref().map(|o| o.spi()) else {
                continue;
            };
            if let Some(heir) = snap
                .iter()
                .find(|s| s.id != gone && s.children.iter().any(|c| c.spi_out == spi))
            {
                p.ike = Some(heir.id);
            }
        }
    }

    /// Delete an IKE SA (DELETE notifications) in the endpoint that owns it.
    pub(crate) fn ike_delete(&mut self, now: Instant, id: IkeSaId) {
        if self.is_v1(id) {
            if let Some(v1) = &mut self.ikev1 {
                let _ = v1.delete_ike_sa(now, id);
            }
        } else {
            let _ = self.ike.delete_ike_sa(now, id);
        }
    }

    /// Rekey the CHILD_SA / IPsec SA with inbound SPI `spi` (quick mode for IKEv1).
    pub(crate) fn ike_rekey_child(&mut self, now: Instant, id: IkeSaId, spi: u32) {
        if self.is_v1(id) {
            if let Some(v1) = &mut self.ikev1 {
                let _ = v1.rekey_child(now, id, spi);
            }
        } else {
            let _ = self.ike.rekey_child(now, id, spi);
        }
    }

    /// Whether we initiated IKE SA `id`, and its initiator's SPI (IKEv1: the initiator cookie), which both
    /// ends know alike (None: unknown handle).
    pub(crate) fn ike_origin(&self, now: Instant, id: IkeSaId) -> Option<(bool, u64)> {
        if self.is_v1(id) {
            self.ikev1
                .as_ref()?
                .snapshot(now)
                .iter()
                .find(|s| s.id == id)
                .map(|s| (s.initiator, s.cky_i))
        } else {
            self.ike
                .snapshot(now)
                .ike_sas
                .iter()
                .find(|s| s.id == id)
                .map(|s| (s.initiator, s.spi_i))
        }
    }

    /// Move the IKEv1 endpoint's datagrams, log lines and events; true if anything moved.
    pub(crate) fn pump_ikev1(&mut self, now: Instant) -> bool {
        let Some(v1) = &mut self.ikev1 else {
            return false;
        };
        let mut progressed = false;
        let mut events = Vec::new();
        while let Some(tx) = v1.poll_transmit() {
            self.out.push_back(crate::node::Output::Udp {
                local: tx.local,
                remote: tx.remote,
                payload: crate::pkt::PacketBuf::from_vec(tx.payload),
                tos: 0,
            });
            progressed = true;
        }
        while let Some(d) = v1.poll_diagnostic() {
            ios!(CRYPTO, Warning, IKMP_REFUSED, "{d}");
        }
        while let Some(ev) = v1.poll_event() {
            events.push(ev);
        }
        for ev in events {
            progressed = true;
            self.ikev1_event(now, ev);
        }
        progressed
    }

    fn ikev1_event(&mut self, now: Instant, ev: ike::Event) {
        match ev {
            ike::Event::IkeSaEstablished { ike_sa, peer, .. } => {
                ios!(
                    CRYPTO,
                    Notice,
                    IKMP_SA_UP,
                    "ISAKMP SA {} with {peer} established (QM_IDLE)",
                    1001 + ike_sa.0.saturating_sub(V1_FIRST_ID)
                );
            }
            ike::Event::IkeSaDeleted { ike_sa, reason } => {
                // Protected GRE peers whose IPsec SA pair moved to a newer ISAKMP SA with the same peer
                // (see below) follow it, so on-demand DPD keeps its R-U-THERE channel; the others may
                // negotiate again (their IPsec SAs stay until they expire or are deleted).
                self.v1_gre_follow_heirs(now, ike_sa);
                self.gre_esp
                    .ike_gone(now, ike_sa, crate::gre_esp::negotiation_failed(&reason));
                ios!(
                    CRYPTO,
                    Notice,
                    IKMP_SA_DOWN,
                    "ISAKMP SA {} deleted: {reason:?}",
                    1001 + ike_sa.0.saturating_sub(V1_FIRST_ID)
                );
                // IKEv1 IPsec SAs outlive the ISAKMP SA that made them: after a peer's phase-1 rekey the
                // endpoint moved them to the newest ISAKMP SA with that peer (no ChildSaDeleted came).
                // Follow them there; otherwise the tunnel has no IKE SA any more.
                let mut heirs = Vec::new();
                if let Some(v1) = &self.ikev1 {
                    let snap = v1.snapshot(now);
                    for (i, t) in self.tunnels.iter().enumerate() {
                        if t.ike_sa != Some(ike_sa) {
                            continue;
                        }
                        let spi = t.dp.lock().outbound_spi();
                        let heir = snap.iter().find(|s| {
                            s.id != ike_sa && s.children.iter().any(|c| Some(c.spi_out) == spi)
                        });
                        heirs.push((i, heir.map(|h| h.id)));
                    }
                }
                for (i, heir) in heirs {
                    self.touch(i);
                    match heir {
                        Some(h) => self.tunnels[i].ike_sa = Some(h),
                        None => {
                            let t = &mut self.tunnels[i];
                            t.ike_sa = None;
                            let mut dp = t.dp.lock();
                            for s in dp.inbound_spis() {
                                self.spis.remove(&s);
                            }
                            dp.remove_sa();
                        }
                    }
                }
                self.reacquire(now);
            }
            ike::Event::AuthFailed { peer, reason } => {
                ios!(CRYPTO, Error, IKMP_AUTH_FAILED, "peer {peer}: {reason}");
            }
            ev @ (ike::Event::ChildSaEstablished { .. } | ike::Event::ChildSaDeleted { .. }) => {
                self.ike_event(now, ev)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> config::Config {
        config::parse(text).config
    }

    const SVTI: &str = "\
crypto isakmp policy 1
 encr aes
 authentication pre-share
 group 14
crypto isakmp key Cisco12345 address 0.0.0.0 0.0.0.0
crypto ipsec transform-set T1 esp-aes esp-sha-hmac
crypto ipsec profile P1
 set transform-set T1
!
interface Ethernet3/0
 ip address 10.0.149.203 255.255.255.0
!
interface Tunnel0
 ip address 10.0.51.203 255.255.255.0
 tunnel source 10.0.149.203
 tunnel destination 10.0.149.217
 tunnel mode ipsec ipv4
 tunnel protection ipsec profile P1
";

    #[test]
    fn seed_svti_maps_to_an_ikev1_endpoint_with_the_ios_defaults() {
        let cfg = parse(SVTI);
        let (c, _, problems) = endpoint_config(&cfg);
        assert!(problems.is_empty(), "{problems:?}");
        let c = c.unwrap();
        let (suites, refused) = c.suites();
        assert!(refused.is_empty());
        assert_eq!(suites.len(), 1);
        assert_eq!(suites[0].encr, ike::EncrAlg::AesCbc128);
        assert_eq!(suites[0].hash, v1::HashAlg::Sha1);
        assert_eq!(suites[0].lifetime, Duration::from_secs(86400));
        assert_eq!(c.ipsec_lifetime, Duration::from_secs(3600));
        assert_eq!(c.ipsec_lifetime_kb, 4_608_000);
        assert_eq!(c.keys.len(), 1);
        assert!(c.lookup_key(Ipv4Addr::new(10, 0, 149, 217)).is_some());
        assert_eq!(c.transform_sets.len(), 1);
    }

    #[test]
    fn svti_and_protected_mgre_get_their_own_quick_mode_sets() {
        // The seed SVTI plus an EX-1-style mGRE with its own transport-mode profile, both IKEv1.
        let text = format!(
            "{SVTI}crypto ipsec transform-set TG esp-aes 256 esp-sha256-hmac\n mode transport\n!\ncrypto ipsec profile PG\n set transform-set TG\n set security-association lifetime seconds 1800\n!\ninterface Tunnel1\n ip address 10.0.0.1 255.255.255.0\n tunnel source Ethernet3/0\n tunnel mode gre multipoint\n tunnel protection ipsec profile PG\n"
        );
        let cfg = parse(&text);
        let (c, sets, problems) = endpoint_config(&cfg);
        assert!(problems.is_empty(), "{problems:?}");
        let c = c.unwrap();
        assert_eq!(
            sets,
            QuickModeSets {
                vti: Some(0),
                gre: Some(1)
            }
        );
        let vti = c.quick_mode(0).unwrap();
        assert_eq!(vti.mode, Mode::Tunnel);
        assert_eq!(vti.selectors, v1::Selectors::AnyAny);
        assert_eq!(vti.transform_sets[0].encr, ike::EncrAlg::AesCbc128);
        let gre = c.quick_mode(1).unwrap();
        assert_eq!(gre.mode, Mode::Transport);
        assert_eq!(gre.selectors, v1::Selectors::Host { protocol: 47 });
        assert_eq!(gre.transform_sets[0].encr, ike::EncrAlg::AesCbc256);
        assert_eq!(gre.ipsec_lifetime, Duration::from_secs(1800));
        // GRE alone: its set is set 0.
        let gre_only = text.replace(" tunnel protection ipsec profile P1\n", "");
        let (c, sets, problems) = endpoint_config(&parse(&gre_only));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            sets,
            QuickModeSets {
                vti: None,
                gre: Some(0)
            }
        );
        assert_eq!(c.unwrap().mode, Mode::Transport);
        // A legacy GRE profile leaves the VTI keyed and says why GRE is not.
        let legacy = text.replace("TG esp-aes 256 esp-sha256-hmac", "TG esp-des esp-md5-hmac");
        let (c, sets, problems) = endpoint_config(&parse(&legacy));
        assert!(c.is_some());
        assert_eq!(
            sets,
            QuickModeSets {
                vti: Some(0),
                gre: None
            }
        );
        assert!(
            problems
                .join("\n")
                .contains("crypto ipsec profile PG: no usable transform set"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_ikev2_profile_keeps_the_tunnel_on_ikev2() {
        let text = SVTI.replace(
            " tunnel protection ipsec profile P1",
            " tunnel protection ipsec profile P1 ikev2-profile X",
        );
        let (c, _, _) = endpoint_config(&parse(&text));
        assert!(c.is_none());
    }

    #[test]
    fn legacy_algorithms_are_refused_naming_a_replacement() {
        // The 12.4 DMVPN seeds' policy: only `authentication pre-share`, so DES/SHA/group 1 by default.
        let text = SVTI
            .replace(" encr aes\n", "")
            .replace(" group 14\n", "")
            .replace("esp-aes esp-sha-hmac", "esp-des esp-md5-hmac");
        let cfg = parse(&text);
        let (c, _, problems) = endpoint_config(&cfg);
        assert!(c.is_none(), "no usable transform set: no endpoint");
        let all = problems.join("\n");
        assert!(
            all.contains("esp-des is a legacy algorithm and is refused; configure esp-aes 256"),
            "{all}"
        );
        assert!(all.contains("esp-md5-hmac"), "{all}");
        // With a good transform set the endpoint exists, and its policy refusal names DES and AES.
        let text = text.replace("esp-des esp-md5-hmac", "esp-aes 256 esp-sha256-hmac");
        let (c, _, problems) = endpoint_config(&parse(&text));
        assert!(problems.is_empty(), "{problems:?}");
        let (suites, refused) = c.unwrap().suites();
        assert!(suites.is_empty());
        let r = refused[0].1.to_string();
        assert!(r.contains("des") && r.contains("aes 256"), "{r}");
    }

    #[test]
    fn legacy_pfs_group_is_refused() {
        let text = SVTI.replace(
            " set transform-set T1",
            " set transform-set T1\n set pfs group2",
        );
        let (c, _, problems) = endpoint_config(&parse(&text));
        assert!(c.is_none());
        assert!(
            problems
                .join("\n")
                .contains("set pfs group2 is a legacy algorithm"),
            "{problems:?}"
        );
    }

    /// Two appliances keyed by IKEv1 with on-demand DPD (`crypto isakmp keepalive 10 2`) and a 60 s
    /// ISAKMP lifetime, joined in process (UDP, raw ESP and protected GRE delivered at once). `gre`: a
    /// protected point-to-point GRE tunnel; otherwise a static VTI. With `nat`, node 1 sits at
    /// 10.11.0.2 behind a NAT that shows it as 203.0.113.2 with ports from [`V1Pair::nat`].
    struct V1Pair {
        nodes: [Node; 2],
        /// Each node's address as the other sees it.
        wan: [Ipv4Addr; 2],
        /// Node 1's NAT: (its port, the public port); nothing else passes (raw ESP neither).
        nat: Option<Vec<(u16, u16)>>,
        /// A node that is "killed" neither receives nor sends nor runs its timers.
        alive: [bool; 2],
        /// Inner packets written to each node's tunnel.
        delivered: [usize; 2],
        gre: bool,
    }

    impl V1Pair {
        fn new(gre: bool, nat: bool) -> V1Pair {
            let public = if nat { "203.0.113.2" } else { "192.0.2.2" };
            let site = |me: usize| {
                let (wan, peer) = match (me, nat) {
                    (0, _) => ("192.0.2.1", public),
                    (_, false) => ("192.0.2.2", "192.0.2.1"),
                    (_, true) => ("10.11.0.2", "192.0.2.1"),
                };
                let (ts_mode, tunnel_mode) = if gre {
                    (" mode transport\n", "")
                } else {
                    ("", " tunnel mode ipsec ipv4\n")
                };
                let text = format!(
                    "crypto isakmp policy 10\n encr aes 256\n hash sha256\n authentication pre-share\n group 19\n lifetime 60\n\
                     crypto isakmp key k address 0.0.0.0 0.0.0.0\n\
                     crypto isakmp keepalive 10 2\n\
                     crypto ipsec transform-set T1 esp-aes 256 esp-sha256-hmac\n{ts_mode}\
                     crypto ipsec profile P1\n set transform-set T1\n!\n\
                     interface GigabitEthernet0\n ip address {wan} 255.255.255.0\n!\n\
                     interface Tunnel0\n ip address 10.0.0.{} 255.255.255.252\n tunnel source GigabitEthernet0\n\
                     {tunnel_mode} tunnel destination {peer}\n tunnel protection ipsec profile P1\n",
                    me + 1
                );
                let parsed = config::parse(&text);
                assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
                let (node, problems) = Node::new(Instant::now(), parsed.config, 7 + me as u32);
                assert!(problems.is_empty(), "{problems:?}");
                node
            };
            V1Pair {
                nodes: [site(0), site(1)],
                wan: [Ipv4Addr::new(192, 0, 2, 1), public.parse().unwrap()],
                nat: nat.then(|| vec![(500, 30500), (4500, 34500)]),
                alive: [true; 2],
                delivered: [0; 2],
                gre,
            }
        }

        /// Node `i` sends one inner packet into its tunnel.
        fn send(&mut self, now: Instant, i: usize) {
            let mut p = crate::bench::echo_packet(1, 1);
            p[12..16].copy_from_slice(&[10, 0, 0, i as u8 + 1]);
            p[16..20].copy_from_slice(&[10, 0, 0, 2 - i as u8]);
            p[10..12].copy_from_slice(&[0, 0]);
            let c = dataplane::wire::ipv4::checksum(&p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            if self.gre {
                let b = crate::pkt::PacketBuf::copy_with_headroom(crate::pkt::GRE_HEADROOM, &p);
                self.nodes[i].gre.handle_tun(now, 0, b);
            } else {
                self.nodes[i].handle_tun(now, 0, &p);
            }
            self.exchange(now);
        }

        /// Runs the live nodes' due timers, then delivers until nothing moves.
        fn tick(&mut self, now: Instant) {
            for i in 0..2 {
                if self.alive[i] && self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.nodes[i].handle_timeout(now);
                }
            }
            self.exchange(now);
        }

        fn exchange(&mut self, now: Instant) {
            enum Msg {
                Udp(SocketAddr, SocketAddr, Vec<u8>),
                Esp(Vec<u8>),
            }
            loop {
                let mut msgs = Vec::new();
                for i in 0..2 {
                    let n = &mut self.nodes[i];
                    // (Sealed GRE in UDP joins the node's outputs: the GRE side first.)
                    while let Some(o) = n.poll_gre_output(now) {
                        match o {
                            crate::gre::GreOut::Esp { payload, .. } => {
                                msgs.push((i, Msg::Esp(payload.to_vec())))
                            }
                            crate::gre::GreOut::Tun { .. } => self.delivered[i] += 1,
                            _ => {}
                        }
                    }
                    while let Some(o) = n.poll_output() {
                        match o {
                            crate::node::Output::Udp {
                                local,
                                remote,
                                payload,
                                ..
                            } => msgs.push((i, Msg::Udp(local, remote, payload.to_vec()))),
                            crate::node::Output::RawEsp { payload, .. } => {
                                msgs.push((i, Msg::Esp(payload.to_vec())))
                            }
                            crate::node::Output::Tun { .. } => self.delivered[i] += 1,
                            _ => {}
                        }
                    }
                }
                if msgs.is_empty() {
                    return;
                }
                for (i, m) in msgs {
                    let j = 1 - i;
                    if !(self.alive[i] && self.alive[j]) {
                        continue;
                    }
                    match (m, &self.nat) {
                        (Msg::Udp(local, remote, p), None) => {
                            self.nodes[j].handle_udp(now, remote, local, &p, 0)
                        }
                        (Msg::Esp(p), None) => {
                            self.nodes[j].handle_raw_esp(now, self.wan[i], &p, 0)
                        }
                        (Msg::Esp(_), Some(_)) => {}
                        (Msg::Udp(local, remote, p), Some(map)) => {
                            let public = |port| SocketAddr::new(self.wan[1].into(), port);
                            if i == 1 {
                                // Out through the NAT.
                                if let Some((_, out)) = map.iter().find(|(i, _)| *i == local.port())
                                {
                                    self.nodes[0].handle_udp(now, remote, public(*out), &p, 0)
                                }
                            } else if let Some((inside, _)) =
                                map.iter().find(|(_, o)| public(*o) == remote)
                            {
                                let to = SocketAddr::new([10, 11, 0, 2].into(), *inside);
                                self.nodes[1].handle_udp(now, to, local, &p, 0)
                            }
                        }
                    }
                }
            }
        }

        /// Node `i`'s established ISAKMP SAs.
        fn isakmp_sas(&self, now: Instant, i: usize) -> Vec<IkeSaId> {
            self.nodes[i]
                .ikev1
                .as_ref()
                .unwrap()
                .snapshot(now)
                .iter()
                .filter(|s| s.state == "QM_IDLE")
                .map(|s| s.id)
                .collect()
        }

        /// The ISAKMP SA node `i` would send R-U-THERE on for its peer, and whether it has an SA pair.
        fn served_by(&self, i: usize) -> (Option<IkeSaId>, bool) {
            let n = &self.nodes[i];
            if self.gre {
                let p = n.gre_esp.peers.get(&(0, self.wan[1 - i]));
                (p.and_then(|p| p.ike), p.is_some_and(|p| p.out.is_some()))
            } else {
                let t = &n.tunnels[0];
                (t.ike_sa, t.dp.lock().outbound_spi().is_some())
            }
        }
    }

    /// Node 0 rekeys phase 1 (60 s lifetime: a new main mode at 54 s, the old ISAKMP SA deleted 2 s
    /// later) while the IPsec SAs stay; node 1, the responder, sees the old ISAKMP SA deleted and its IPsec
    /// SAs move to the new one. Then node 0 dies: node 1's on-demand DPD must still declare it dead.
    /// Before the fix, a protected GRE peer lost its ISAKMP SA at the rekey (`ike` cleared, the SA pair
    /// kept), so no R-U-THERE went out and node 1 kept sending into the void until the IPsec SA expired.
    fn on_demand_dpd_survives_the_peers_phase1_rekey(gre: bool) {
        let t0 = Instant::now();
        let mut pair = V1Pair::new(gre, false);
        for n in &mut pair.nodes {
            n.start(t0);
        }
        let tick = Duration::from_millis(100);
        let mut now = t0;
        // Traffic both ways every 500 ms (node 1 answers once keyed). A static VTI may start main mode
        // at both ends; one ISAKMP SA is left. Its responder `r` survives, the initiator rekeys and dies.
        let mut first = None;
        while now < t0 + Duration::from_secs(62) {
            now += tick;
            pair.tick(now);
            if (now - t0).as_millis().is_multiple_of(500) {
                pair.send(now, 0);
                if pair.served_by(1).1 {
                    pair.send(now, 1);
                }
            }
            if first.is_none() && now >= t0 + Duration::from_secs(10) {
                let r = (0..2)
                    .find(|&i| {
                        let id = pair.served_by(i).0;
                        let snap = pair.nodes[i].ikev1.as_ref().unwrap().snapshot(now);
                        snap.iter().any(|s| Some(s.id) == id && !s.initiator)
                    })
                    .expect("no node serves its peer from a responder ISAKMP SA");
                assert!(pair.served_by(r).1, "node {r} not keyed");
                first = Some((r, pair.served_by(r).0.unwrap()));
            }
        }
        let (r, first) = first.unwrap();
        assert!(
            pair.delivered[0] > 50 && pair.delivered[1] > 50,
            "{:?}",
            pair.delivered
        );
        // Phase 1 was rekeyed: r's first ISAKMP SA is gone, a new one serves the (same) SA pair.
        let sas = pair.isakmp_sas(now, r);
        assert!(!sas.contains(&first) && sas.len() == 1, "{first:?} {sas:?}");
        let (served, keyed) = pair.served_by(r);
        assert!(keyed, "the IPsec SAs outlive the ISAKMP SA that made them");
        assert_eq!(served, Some(sas[0]), "not following the new ISAKMP SA");
        // The other node dies; r keeps sending. 10 s without ESP in, then 5 R-U-THEREs 2 s apart: dead
        // by about 22 s (30 s allowed; the new ISAKMP SA would only expire at about 116 s).
        pair.alive[1 - r] = false;
        let died = now;
        while pair.served_by(r).1 || !pair.isakmp_sas(now, r).is_empty() {
            now += tick;
            pair.tick(now);
            if (now - t0).as_millis().is_multiple_of(500) {
                pair.send(now, r);
            }
            assert!(
                now < died + Duration::from_secs(30),
                "node {r} did not declare its dead peer dead: {:?}",
                pair.nodes[r].ikev1.as_ref().unwrap().snapshot(now)
            );
        }
        assert!(now >= died + Duration::from_secs(18), "{:?}", now - died);
    }

    #[test]
    fn protected_gre_on_demand_dpd_survives_the_peers_phase1_rekey() {
        on_demand_dpd_survives_the_peers_phase1_rekey(true);
    }

    #[test]
    fn static_vti_on_demand_dpd_survives_the_peers_phase1_rekey() {
        on_demand_dpd_survives_the_peers_phase1_rekey(false);
    }

    /// Node 1 behind NAT keys a protected GRE tunnel with node 0 (ESP and IKE in UDP 4500); then its NAT
    /// rebinds it to a new public port and drops the old mapping. Its next ESP moves node 0's SA pair, and
    /// the ISAKMP SA must follow too: a quick mode node 0 starts afterwards reaches node 1 and installs a
    /// new SA pair at both ends. Before, the ISAKMP SA kept sending to the dead port (DPD, quick-mode
    /// rekeys and DELETEs were lost until a new main mode).
    #[test]
    fn protected_gre_isakmp_sa_follows_a_nat_rebinding() {
        let t0 = Instant::now();
        let mut pair = V1Pair::new(true, true);
        for n in &mut pair.nodes {
            n.start(t0);
        }
        let tick = Duration::from_millis(100);
        let mut now = t0;
        while !(pair.served_by(0).1 && pair.delivered[0] > 0 && pair.delivered[1] > 0) {
            now += tick;
            pair.tick(now);
            pair.send(now, 1);
            if pair.served_by(0).1 {
                pair.send(now, 0);
            }
            assert!(
                now < t0 + Duration::from_secs(10),
                "not keyed: {:?}",
                pair.delivered
            );
        }
        let peer = (0, pair.wan[1]);
        let esp = |pair: &V1Pair| pair.nodes[0].gre_esp.peers[&peer].udp.map(|(_, r)| r);
        let old = SocketAddr::new(pair.wan[1].into(), 34500);
        assert_eq!(esp(&pair), Some(old), "ESP in UDP through the NAT");
        let (Some(id), _) = pair.served_by(0) else {
            panic!("no ISAKMP SA")
        };
        let v1 = |pair: &V1Pair| pair.nodes[0].ikev1.as_ref().unwrap().remote(id);
        assert_eq!(v1(&pair), Some(old));
        // The NAT rebinds node 1's port 4500; its next ESP comes from the new port.
        pair.nat = Some(vec![(500, 30500), (4500, 34501)]);
        let new = SocketAddr::new(pair.wan[1].into(), 34501);
        let before = pair.delivered[0];
        now += tick;
        pair.send(now, 1);
        assert!(
            pair.delivered[0] > before,
            "ESP from the new port was not accepted"
        );
        assert_eq!(esp(&pair), Some(new), "the SA pair follows the new port");
        assert_eq!(v1(&pair), Some(new), "the ISAKMP SA follows the new port");
        // Another address is not followed.
        let elsewhere = SocketAddr::new([198, 51, 100, 7].into(), 34502);
        let ep = pair.nodes[0].ikev1.as_mut().unwrap();
        assert_eq!(ep.peer_moved(id, elsewhere), Ok(false));
        // A quick mode from node 0 (as a rekey would start one) reaches node 1 on the new port.
        let spi = pair.nodes[0].gre_esp.peers[&peer].spis[0];
        pair.nodes[0].ike_rekey_child(now, id, spi);
        let end = now + Duration::from_secs(5);
        while pair.nodes[1].gre_esp.peers[&(0, pair.wan[0])].spis.len() < 2 {
            now += tick;
            pair.tick(now);
            assert!(
                now < end,
                "node 0's quick mode did not reach node 1 after the rebinding"
            );
        }
        assert_eq!(pair.nodes[0].gre_esp.peers[&peer].spis.len(), 2);
        // And the new pair carries traffic both ways, in UDP to the new port.
        let got = pair.delivered;
        now += tick;
        pair.send(now, 0);
        pair.send(now, 1);
        assert!(pair.delivered[0] > got[0] && pair.delivered[1] > got[1]);
        assert_eq!(esp(&pair), Some(new));
    }

    #[test]
    fn version_octet_demultiplexes() {
        let mut v1 = vec![0u8; 28];
        v1[17] = 0x10;
        let mut v2 = vec![0u8; 28];
        v2[17] = 0x20;
        assert_eq!(ike_major_version(IKE_PORT, &v1), Some(1));
        assert_eq!(ike_major_version(IKE_PORT, &v2), Some(2));
        let mut nat = vec![0u8; 4];
        nat.extend_from_slice(&v1);
        assert_eq!(ike_major_version(NAT_T_PORT, &nat), Some(1));
        assert_eq!(ike_major_version(IKE_PORT, &[0u8; 10]), None);
    }
}

//! The typed model of an IOS configuration. Plain data: the parser fills it, the renderer prints
//! it, the validator checks it, the appliance reads it. Defaults are NOT filled in here (an unset
//! field is `None`, exactly as `show running-config` omits it); [`crate::defaults`] supplies them.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::secret::Secret;

/// An IPv4 address with a prefix length (`ip address A M`, `ip route P M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// The dotted netmask.
    pub fn mask(&self) -> Ipv4Addr {
        prefix_to_mask(self.prefix_len)
    }
    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.mask()))
    }
    /// True when the address has bits set outside the prefix.
    pub fn has_host_bits(&self) -> bool {
        self.network() != self.addr
    }
    /// True when `ip` lies inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask()) == u32::from(self.network())
    }
}

/// Dotted mask from a prefix length (0..=32; larger values saturate at /32).
pub fn prefix_to_mask(len: u8) -> Ipv4Addr {
    let len = u32::from(len.min(32));
    if len == 0 {
        Ipv4Addr::new(0, 0, 0, 0)
    } else {
        Ipv4Addr::from(u32::MAX << (32 - len))
    }
}

/// Prefix length from a dotted mask; `None` when the mask is not contiguous.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    if m.checked_shl(len).unwrap_or(0) == 0 {
        u8::try_from(len).ok()
    } else {
        None
    }
}

/// A command the model does not know, kept verbatim (keywords as typed, single spaces) with its
/// sub-commands, so that a real router configuration loads and renders back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsupported {
    pub text: String,
    pub children: Vec<Unsupported>,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub hostname: Option<String>,
    /// `ip name-server A [B ...]` (IPv4; every line adds): the DNS servers, e.g. for RFC 3263
    /// registrar discovery.
    pub name_servers: Vec<Ipv4Addr>,
    pub interfaces: Vec<Interface>,
    pub ip_routes: Vec<IpRoute>,
    pub ip_slas: Vec<IpSla>,
    pub tracks: Vec<Track>,
    pub vpn_sip: VpnSip,
    pub ikev2: Ikev2Config,
    pub ipsec: IpsecConfig,
    pub isakmp: IsakmpConfig,
    pub pki: PkiConfig,
    pub qos: QosConfig,
    pub nat: NatConfig,
    pub access_lists: Vec<AccessList>,
    /// Global commands Lifeline does not implement, in input order (blocks keep their children).
    pub unsupported: Vec<Unsupported>,
}

// ---------------------------------------------------------------------------------------------
// Interfaces

/// The interface type, from the canonical IOS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InterfaceKind {
    Tunnel,
    Loopback,
    GigabitEthernet,
    TenGigabitEthernet,
    FastEthernet,
    Ethernet,
    Vlan,
    Serial,
    Dialer,
    VirtualTemplate,
    PortChannel,
    Cellular,
    /// Any other type, spelled as written.
    Other(String),
}

impl InterfaceKind {
    /// The canonical IOS type name (`Tunnel`, `GigabitEthernet`, ...).
    pub fn ios_name(&self) -> &str {
        match self {
            InterfaceKind::Tunnel => "Tunnel",
            InterfaceKind::Loopback => "Loopback",
            InterfaceKind::GigabitEthernet => "GigabitEthernet",
            InterfaceKind::TenGigabitEthernet => "TenGigabitEthernet",
            InterfaceKind::FastEthernet => "FastEthernet",
            InterfaceKind::Ethernet => "Ethernet",
            InterfaceKind::Vlan => "Vlan",
            InterfaceKind::Serial => "Serial",
            InterfaceKind::Dialer => "Dialer",
            InterfaceKind::VirtualTemplate => "Virtual-Template",
            InterfaceKind::PortChannel => "Port-channel",
            InterfaceKind::Cellular => "Cellular",
            InterfaceKind::Other(s) => s,
        }
    }
}

/// IPv4 addressing of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IpAddressing {
    /// Nothing configured.
    #[default]
    Unset,
    /// `no ip address`.
    NoAddress,
    /// `ip address A M` (+ `ip address A M secondary` lines).
    Static {
        primary: Ipv4Net,
        secondary: Vec<Ipv4Net>,
    },
    /// `ip address dhcp [client-id IF] [hostname NAME]`.
    Dhcp {
        client_id: Option<String>,
        hostname: Option<String>,
    },
    /// `ip unnumbered IF` (canonical interface name).
    Unnumbered(String),
}

/// `ip nat inside|outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatSide {
    Inside,
    Outside,
}

/// `ip dhcp client request OPTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpClientRequest {
    /// `sip-server-address` (DHCP option 120, RFC 3361): the VPN-SIP registrar.
    SipServerAddress,
    /// `vendor-identifying-specific` (DHCP option 125, RFC 3925).
    VendorIdentifyingSpecific,
    /// Any other option keyword, as written (lower case).
    Other(String),
}

/// The interface bandwidth/direction of a `service-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// One `interface NAME` block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interface {
    /// Canonical IOS name (`Tunnel1`, `GigabitEthernet0/0/1`, `Loopback0`).
    pub name: String,
    pub kind: Option<InterfaceKind>,
    /// Words after the name on the `interface` line (`type tunnel`, `point-to-point`).
    pub name_suffix: Option<String>,
    /// Lifeline extension `device LINUXNAME`: the Linux network device this IOS interface is.
    pub device: Option<String>,
    pub description: Option<String>,
    pub ip: IpAddressing,
    pub nat: Option<NatSide>,
    pub dhcp_client_requests: Vec<DhcpClientRequest>,
    /// `ip mtu N`.
    pub ip_mtu: Option<u16>,
    /// `ip tcp adjust-mss N`.
    pub tcp_adjust_mss: Option<u16>,
    /// `bandwidth KBPS` (metric/QoS input only).
    pub bandwidth_kbps: Option<u32>,
    /// `delay N` (tens of microseconds).
    pub delay: Option<u32>,
    /// `load-interval S`.
    pub load_interval: Option<u32>,
    /// `ip vrf forwarding NAME` / `vrf forwarding NAME`.
    pub vrf_forwarding: Option<String>,
    /// `ip access-group ACL in|out`.
    pub access_groups: Vec<(String, Direction)>,
    /// `crypto map NAME`.
    pub crypto_map: Option<String>,
    /// `service-policy input|output NAME`.
    pub service_policies: Vec<(Direction, String)>,
    pub shutdown: bool,
    /// `no ip redirects`.
    pub no_ip_redirects: bool,
    pub tunnel: TunnelConfig,
    pub nhrp: NhrpConfig,
    /// `vpn-sip local-number L remote-number R bandwidth B [service-policy P]`.
    pub vpn_sip: Option<TunnelVpnSip>,
    /// Sub-commands Lifeline does not implement, kept verbatim.
    pub unsupported: Vec<Unsupported>,
}

impl Interface {
    /// The Linux device this interface binds to: `device NAME` when given; otherwise the IOS
    /// name for Tunnel and Loopback interfaces (Lifeline creates them) and for any interface
    /// whose IOS name is a valid Linux name; otherwise `None` (the appliance cannot bind it).
    pub fn linux_name(&self) -> Option<&str> {
        if let Some(d) = &self.device {
            return Some(d);
        }
        if crate::names::valid_linux_ifname(&self.name) {
            Some(&self.name)
        } else {
            None
        }
    }

    /// True for `interface TunnelN`.
    pub fn is_tunnel(&self) -> bool {
        self.kind == Some(InterfaceKind::Tunnel)
    }

    /// `service-policy output NAME`, if any.
    pub fn service_policy_output(&self) -> Option<&str> {
        self.service_policies
            .iter()
            .find(|(d, _)| *d == Direction::Output)
            .map(|(_, n)| n.as_str())
    }
}

/// `tunnel source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelSource {
    Interface(String),
    Address(Ipv4Addr),
}

/// `tunnel destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelDestination {
    Address(Ipv4Addr),
    /// `tunnel destination dynamic` (VPN-SIP: the peer address comes from SDP).
    Dynamic,
    Hostname(String),
}

/// `tunnel mode ...`. Unset means the IOS default, GRE over IPv4 point-to-point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelMode {
    GreIp,
    GreMultipoint,
    GreIpv6,
    IpsecIpv4,
    IpsecIpv6,
    /// Any other mode, as written (lower case); Lifeline does not implement it.
    Other(String),
}

/// `tunnel protection ipsec profile P [ikev2-profile I] [shared]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelProtection {
    pub ipsec_profile: String,
    pub ikev2_profile: Option<String>,
    pub shared: bool,
}

/// The `tunnel ...` sub-commands of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelConfig {
    pub source: Option<TunnelSource>,
    pub destination: Option<TunnelDestination>,
    pub mode: Option<TunnelMode>,
    pub key: Option<u32>,
    pub protection: Option<TunnelProtection>,
}

impl TunnelConfig {
    /// The mode in effect (`gre ip` when none is configured).
    pub fn effective_mode(&self) -> TunnelMode {
        self.mode.clone().unwrap_or(TunnelMode::GreIp)
    }
}

/// The per-tunnel VPN-SIP line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelVpnSip {
    pub local_number: String,
    pub remote_number: String,
    pub bandwidth_kbps: u32,
    pub service_policy: Option<String>,
}

/// `ip nhrp map multicast TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NhrpMulticast {
    Dynamic,
    Address(Ipv4Addr),
}

/// All `ip nhrp ...` sub-commands of an interface.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NhrpConfig {
    pub network_id: Option<u32>,
    /// `ip nhrp authentication STRING` (sent in clear in NHRP packets; at most 8 characters).
    pub authentication: Option<Secret>,
    /// `ip nhrp map TUNNEL-IP NBMA-IP`.
    pub maps: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub map_multicast: Vec<NhrpMulticast>,
    /// `ip nhrp nhs ADDR`.
    pub nhs: Vec<Ipv4Addr>,
    pub holdtime: Option<u32>,
    pub redirect: bool,
    pub shortcut: bool,
    pub registration_no_unique: bool,
    /// `ip nhrp registration timeout S`.
    pub registration_timeout: Option<u32>,
    /// `ip nhrp group NAME` (spoke).
    pub group: Option<String>,
    /// `ip nhrp map group NAME service-policy output POLICY` (hub).
    pub map_groups: Vec<(String, String)>,
    /// `ip nhrp max-send PKTS every SECONDS`.
    pub max_send: Option<(u32, u32)>,
}

impl NhrpConfig {
    /// True when any `ip nhrp` command is present.
    pub fn is_enabled(&self) -> bool {
        self.network_id.is_some()
            || self.authentication.is_some()
            || !self.maps.is_empty()
            || !self.map_multicast.is_empty()
            || !self.nhs.is_empty()
            || self.holdtime.is_some()
            || self.redirect
            || self.shortcut
            || self.registration_no_unique
            || self.registration_timeout.is_some()
            || self.group.is_some()
            || !self.map_groups.is_empty()
            || self.max_send.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Routing, IP SLA, track

/// `ip route [vrf V] PREFIX MASK {IF [NH] | NH} [DISTANCE] [tag T] [name N] [permanent] [track T]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRoute {
    pub vrf: Option<String>,
    pub prefix: Ipv4Net,
    pub interface: Option<String>,
    pub next_hop: Option<Ipv4Addr>,
    pub distance: Option<u8>,
    pub tag: Option<u32>,
    pub name: Option<String>,
    pub permanent: bool,
    pub track: Option<u32>,
}

/// The IP SLA operation type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaOperation {
    /// `icmp-echo DEST [source-interface IF | source-ip A]`.
    IcmpEcho {
        destination: Ipv4Addr,
        source_interface: Option<String>,
        source_ip: Option<Ipv4Addr>,
    },
}

/// `ip sla schedule N life {forever|S} start-time {now|pending|after hh:mm:ss|...} [recurring]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaSchedule {
    /// `None` = `life forever`.
    pub life: Option<Duration>,
    /// The start-time words as written (lower-cased keywords), e.g. `now`, `pending`.
    pub start_time: Option<String>,
    pub recurring: bool,
}

/// `ip sla N` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpSla {
    pub id: u32,
    pub operation: Option<SlaOperation>,
    /// `threshold MS`.
    pub threshold: Option<Duration>,
    /// `timeout MS`.
    pub timeout: Option<Duration>,
    /// `frequency S`.
    pub frequency: Option<Duration>,
    /// `request-data-size BYTES` (IOS default 28 for icmp-echo).
    pub request_data_size: Option<u16>,
    /// `tos N`: the IPv4 ToS byte of the probes (IOS default 0).
    pub tos: Option<u8>,
    pub tag: Option<String>,
    pub schedule: Option<SlaSchedule>,
    pub unsupported: Vec<Unsupported>,
}

/// What a track object follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackKind {
    /// `track N ip sla OP reachability`.
    IpSlaReachability(u32),
    /// `track N ip sla OP state`.
    IpSlaState(u32),
    /// `track N interface IF line-protocol`.
    InterfaceLineProtocol(String),
    /// `track N interface IF ip routing`.
    InterfaceIpRouting(String),
}

/// `track N ...` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    pub kind: TrackKind,
    /// `delay up S`.
    pub delay_up: Option<Duration>,
    /// `delay down S`.
    pub delay_down: Option<Duration>,
    pub unsupported: Vec<Unsupported>,
}

// ---------------------------------------------------------------------------------------------
// VPN-SIP

/// `vpn-sip local-number N address ipv4 IF [username U password [0|6|7] P]`. The credentials are a
/// Lifeline extension for several local numbers: a provider gives each number (line) its own digest
/// account; a number without them uses the `vpn-sip registrar ... username U password P` ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnSipLocalNumber {
    pub number: String,
    pub wan_interface: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// SIP transport for the Lifeline registrar extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

/// Lifeline extension: `vpn-sip registrar HOST [port N] [transport udp|tcp|tls] [ca-file PATH]
/// [username U password P]`: a fixed SIP registrar instead of the one learnt from DHCP
/// option 120. HOST is an IPv4 address or a domain (resolved as RFC 3263 says: NAPTR, SRV, A);
/// `dhcp` keeps option 120 as the registrar and takes the rest of the line. `ca-file` names a PEM
/// file of trust anchors for SIP over TLS (default: the system's). The password is a [`Secret`].
#[derive(Debug, Clone, PartialEq)]
pub struct VpnSipRegistrar {
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<SipTransport>,
    pub ca_file: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// Global `vpn-sip ...` commands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VpnSip {
    pub enabled: bool,
    /// Every `vpn-sip local-number N address ipv4 IF` line, in order. The seed shows one; Lifeline
    /// takes several (each registered on its own, each bound to the tunnels whose `vpn-sip
    /// local-number N remote-number R` line names it). The rules (distinct numbers, one WAN
    /// interface for all) are in the crate documentation, "Several local numbers".
    pub local_numbers: Vec<VpnSipLocalNumber>,
    pub tunnel_source: Option<String>,
    pub logging: bool,
    pub registrar: Option<VpnSipRegistrar>,
    /// `vpn-sip session-port range FIRST LAST` (Lifeline extension): the per-session WAN ports offered in
    /// SDP. `None`: 50001-65535 (`defaults::VPN_SIP_SESSION_PORTS`).
    pub session_ports: Option<(u16, u16)>,
}

impl VpnSip {
    /// The first local SIP number: its WAN interface is every number's (validation refuses others).
    pub fn local_number(&self) -> Option<&VpnSipLocalNumber> {
        self.local_numbers.first()
    }
    /// The `vpn-sip local-number N address ipv4 IF` line of number `n`.
    pub fn local_number_named(&self, n: &str) -> Option<&VpnSipLocalNumber> {
        self.local_numbers.iter().find(|l| l.number == n)
    }
    /// The per-session port range in effect (`vpn-sip session-port range`, else the default).
    pub fn effective_session_ports(&self) -> (u16, u16) {
        self.session_ports
            .unwrap_or(crate::defaults::VPN_SIP_SESSION_PORTS)
    }
}

// ---------------------------------------------------------------------------------------------
// IKEv2

/// An IKEv2 identity (`identity key-id X`, `identity fqdn X`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ikev2Identity {
    KeyId(String),
    Fqdn(String),
    Email(String),
    Address(Ipv4Addr),
    /// `identity local dn`: the subject of the profile's certificate.
    Dn,
}

/// `peer NAME` inside `crypto ikev2 keyring`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyringPeer {
    pub name: String,
    pub description: Option<String>,
    /// `address A [M]`.
    pub address: Option<(Ipv4Addr, Option<Ipv4Addr>)>,
    pub hostname: Option<String>,
    pub identities: Vec<Ikev2Identity>,
    /// `pre-shared-key KEY` (both directions).
    pub pre_shared_key: Option<Secret>,
    /// `pre-shared-key local KEY`.
    pub pre_shared_key_local: Option<Secret>,
    /// `pre-shared-key remote KEY`.
    pub pre_shared_key_remote: Option<Secret>,
    pub unsupported: Vec<Unsupported>,
}

/// `crypto ikev2 keyring NAME`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ikev2Keyring {
    pub name: String,
    pub peers: Vec<KeyringPeer>,
    /// Keyring-level sub-commands Lifeline does not implement.
    pub unsupported: Vec<Unsupported>,
}

impl Ikev2Keyring {
    /// The peer whose identity is `key-id ID` (VPN-SIP looks PSKs up by SIP number).
    pub fn peer_by_key_id(&self, id: &str) -> Option<&KeyringPeer> {
        self.peers.iter().find(|p| {
            p.identities
                .iter()
                .any(|i| matches!(i, Ikev2Identity::KeyId(k) if k == id))
        })
    }
}

/// `authentication local|remote METHOD`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    /// `pre-share [key [0|6] KEY]`.
    PreShare(Option<Secret>),
    RsaSig,
    EcdsaSig,
    Eap,
}

/// `match identity remote ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMatch {
    Any,
    Address(Ipv4Addr, Option<Ipv4Addr>),
    Fqdn { domain: bool, name: String },
    Email { domain: bool, name: String },
    KeyId(String),
}

/// `dpd INTERVAL RETRY on-demand|periodic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    pub interval: Duration,
    pub retry: Duration,
    pub periodic: bool,
}

/// `crypto ikev2 profile NAME`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ikev2Profile {
    pub name: String,
    pub description: Option<String>,
    pub match_identity_remote: Vec<IdentityMatch>,
    /// `match certificate MAP`.
    pub match_certificate: Vec<String>,
    /// `match address local A`.
    pub match_address_local: Vec<Ipv4Addr>,
    /// `match fvrf NAME|any`.
    pub match_fvrf: Option<String>,
    pub identity_local: Option<Ikev2Identity>,
    pub authentication_local: Vec<AuthMethod>,
    pub authentication_remote: Vec<AuthMethod>,
    pub keyring_local: Option<String>,
    /// `pki trustpoint NAME [sign|verify]`.
    pub pki_trustpoints: Vec<(String, Option<String>)>,
    pub nat_force_encap: bool,
    pub dpd: Option<Dpd>,
    pub lifetime: Option<Duration>,
    pub virtual_template: Option<u32>,
    pub unsupported: Vec<Unsupported>,
}

impl Ikev2Profile {
    /// True when the profile authenticates the peer (or itself) by pre-shared key.
    pub fn uses_pre_share(&self) -> bool {
        self.authentication_remote
            .iter()
            .chain(self.authentication_local.iter())
            .any(|a| matches!(a, AuthMethod::PreShare(_)))
    }
}

/// `crypto ikev2 proposal NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ikev2Proposal {
    pub name: String,
    /// Transform keywords in order (`aes-cbc-128`, `aes-gcm-256`, ...).
    pub encryption: Vec<String>,
    pub integrity: Vec<String>,
    pub prf: Vec<String>,
    pub group: Vec<u16>,
    pub unsupported: Vec<Unsupported>,
}

/// `crypto ikev2 policy NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ikev2Policy {
    pub name: String,
    pub proposals: Vec<String>,
    pub match_address_local: Vec<Ipv4Addr>,
    pub match_fvrf: Option<String>,
    pub unsupported: Vec<Unsupported>,
}

/// Global IKEv2 configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ikev2Config {
    pub keyrings: Vec<Ikev2Keyring>,
    pub profiles: Vec<Ikev2Profile>,
    pub proposals: Vec<Ikev2Proposal>,
    pub policies: Vec<Ikev2Policy>,
    /// Global `crypto ikev2 dpd INTERVAL RETRY on-demand|periodic`.
    pub dpd: Option<Dpd>,
    /// `crypto ikev2 nat keepalive S`.
    pub nat_keepalive: Option<u32>,
    /// `crypto ikev2 disconnect-revoked-peers`.
    pub disconnect_revoked_peers: bool,
}

// ---------------------------------------------------------------------------------------------
// IPsec

/// Transform-set mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsecMode {
    Tunnel,
    Transport,
}

/// `crypto ipsec transform-set NAME T1 [T2 [T3]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransformSet {
    pub name: String,
    /// Transform keywords, lower case, in order (`esp-aes 256` keeps its key size: `esp-aes`,
    /// `256`).
    pub transforms: Vec<String>,
    pub mode: Option<IpsecMode>,
    pub unsupported: Vec<Unsupported>,
}

/// `set security-association lifetime kilobytes N|disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KilobyteLifetime {
    Kilobytes(u64),
    Disable,
}

/// `set security-association replay window-size N` / `... replay disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    WindowSize(u32),
    Disable,
}

/// The SA settings shared by IPsec profiles, crypto map entries and the global
/// `crypto ipsec security-association ...` commands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaSettings {
    pub lifetime_seconds: Option<u32>,
    pub lifetime_kilobytes: Option<KilobyteLifetime>,
    pub idle_time: Option<Duration>,
    pub replay: Option<Replay>,
}

/// `crypto ipsec profile NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpsecProfile {
    pub name: String,
    pub description: Option<String>,
    pub transform_sets: Vec<String>,
    pub sa: SaSettings,
    /// `set pfs [groupN]`; `Some(1)` for a bare `set pfs`.
    pub pfs: Option<u16>,
    pub ikev2_profile: Option<String>,
    pub unsupported: Vec<Unsupported>,
}

/// `crypto map NAME SEQ [ipsec-isakmp|ipsec-manual ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CryptoMapEntry {
    pub name: String,
    pub seq: u32,
    /// The words after the sequence number as written (lower case), e.g. `ipsec-isakmp`.
    pub kind: Option<String>,
    pub match_address: Option<String>,
    pub peers: Vec<String>,
    pub transform_sets: Vec<String>,
    pub pfs: Option<u16>,
    pub sa: SaSettings,
    pub ikev2_profile: Option<String>,
    pub unsupported: Vec<Unsupported>,
}

/// Global IPsec configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpsecConfig {
    pub transform_sets: Vec<TransformSet>,
    pub profiles: Vec<IpsecProfile>,
    pub crypto_maps: Vec<CryptoMapEntry>,
    /// Global `crypto ipsec security-association ...`.
    pub global_sa: SaSettings,
}

// ---------------------------------------------------------------------------------------------
// ISAKMP (IKEv1)

/// `crypto isakmp policy N`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IsakmpPolicy {
    pub priority: u32,
    /// `encryption des|3des|aes [128|192|256]` as canonical words (`aes 256`).
    pub encryption: Option<String>,
    /// `hash sha|sha256|sha384|sha512|md5`.
    pub hash: Option<String>,
    /// `authentication pre-share|rsa-sig|rsa-encr`.
    pub authentication: Option<String>,
    pub group: Option<u16>,
    pub lifetime: Option<Duration>,
    pub unsupported: Vec<Unsupported>,
}

/// Where a `crypto isakmp key` applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsakmpKeyPeer {
    Address(Ipv4Addr, Option<Ipv4Addr>),
    Hostname(String),
    /// `address ipv6 PREFIX`, kept as written.
    Ipv6(String),
}

/// `crypto isakmp key [T] KEY address A [M] | hostname H [no-xauth]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IsakmpKey {
    pub key: Secret,
    pub peer: IsakmpKeyPeer,
    pub no_xauth: bool,
}

/// `crypto isakmp keepalive S [R] [periodic|on-demand]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsakmpKeepalive {
    pub seconds: u32,
    pub retry: Option<u32>,
    pub periodic: Option<bool>,
}

/// Global ISAKMP configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IsakmpConfig {
    pub policies: Vec<IsakmpPolicy>,
    pub keys: Vec<IsakmpKey>,
    pub keepalive: Option<IsakmpKeepalive>,
    /// `crypto isakmp nat keepalive S`.
    pub nat_keepalive: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// PKI

/// `enrollment ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrollment {
    SelfSigned,
    Url(String),
    Terminal,
}

/// `crypto pki trustpoint NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trustpoint {
    pub name: String,
    pub enrollment: Option<Enrollment>,
    /// `serial-number [none]`: `Some(true)` for `serial-number none`.
    pub serial_number_none: Option<bool>,
    pub subject_name: Option<String>,
    /// `revocation-check M [M...]` (`crl`, `none`, `ocsp`).
    pub revocation_check: Vec<String>,
    /// `rsakeypair LABEL [SIZE ...]` as written.
    pub rsakeypair: Option<String>,
    /// `fingerprint HEX`: the CA certificate's fingerprint as written (for a self-signed peer, its own
    /// certificate: Lifeline pins the peer certificate whose SHA-1 this is).
    pub fingerprint: Option<String>,
    pub unsupported: Vec<Unsupported>,
}

/// `crypto pki certificate map LABEL SEQ` with its rules (`issuer-name co cn = orange`), kept
/// as lower-cased field + operator + value words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateMap {
    pub label: String,
    pub seq: u32,
    pub rules: Vec<String>,
    pub unsupported: Vec<Unsupported>,
}

/// PKI configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PkiConfig {
    pub trustpoints: Vec<Trustpoint>,
    pub certificate_maps: Vec<CertificateMap>,
}

// ---------------------------------------------------------------------------------------------
// QoS (MQC)

/// A `match` criterion in a class map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassMatch {
    Any,
    /// `match protocol NAME` (`ip`).
    Protocol(String),
    /// `match access-group N` / `match access-group name N`.
    AccessGroup(String),
    /// `match [ip] dscp V...` (values as written, lower case: `ef`, `af41`, `46`).
    Dscp(Vec<String>),
    /// `match [ip] precedence N...`.
    Precedence(Vec<u8>),
}

/// `class-map [match-all|match-any] NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassMap {
    pub name: String,
    /// `true` for `match-any`; IOS default is `match-all`.
    pub match_any: bool,
    /// Whether `match-all` was written (IOS running-config always shows it).
    pub matches: Vec<ClassMatch>,
    pub unsupported: Vec<Unsupported>,
}

/// `police cir BPS [bc B] [be B]` + actions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Police {
    pub cir_bps: u64,
    pub bc: Option<u64>,
    pub be: Option<u64>,
    /// `conform-action ...` words (lower case), e.g. `transmit`.
    pub conform_action: Option<String>,
    pub exceed_action: Option<String>,
    pub violate_action: Option<String>,
}

/// One action inside `policy-map P` / `class C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QosAction {
    BandwidthPercent(u8),
    BandwidthKbps(u32),
    BandwidthRemainingPercent(u8),
    /// `priority [KBPS [BURST]] | priority percent P`.
    Priority {
        kbps: Option<u32>,
        percent: Option<u8>,
    },
    /// `queue-limit N packets`.
    QueueLimitPackets(u32),
    Police(Police),
    /// `set dscp V` / `set ip dscp V`.
    SetDscp(String),
    /// `set precedence N` / `set ip precedence N`.
    SetPrecedence(u8),
    /// `shape average BPS`.
    ShapeAverage(u64),
    /// `service-policy CHILD`.
    ServicePolicy(String),
    FairQueue,
}

/// `class NAME` inside a policy map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyClass {
    pub name: String,
    pub actions: Vec<QosAction>,
    pub unsupported: Vec<Unsupported>,
}

/// `policy-map NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyMap {
    pub name: String,
    pub description: Option<String>,
    pub classes: Vec<PolicyClass>,
    pub unsupported: Vec<Unsupported>,
}

/// MQC configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QosConfig {
    pub class_maps: Vec<ClassMap>,
    pub policy_maps: Vec<PolicyMap>,
}

// ---------------------------------------------------------------------------------------------
// NAT and access lists

/// Where `ip nat inside source list ACL ...` translates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatTarget {
    Interface(String),
    Pool(String),
}

/// `ip nat inside source list ACL {interface IF | pool P} [vrf V] [overload]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatInsideSource {
    pub list: String,
    pub target: NatTarget,
    pub vrf: Option<String>,
    pub overload: bool,
}

/// `ip nat inside source static [PROTO] LOCAL [LPORT] GLOBAL [GPORT] [extendable]`, kept as
/// lower-cased words after `static`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatStatic {
    pub words: String,
}

/// `ip nat pool NAME START END {netmask M | prefix-length N}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatPool {
    pub name: String,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub prefix_len: u8,
}

/// Global NAT configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatConfig {
    pub inside_source: Vec<NatInsideSource>,
    pub statics: Vec<NatStatic>,
    pub pools: Vec<NatPool>,
    /// `ip nat translation KIND VALUE` (`timeout 300`, `max-entries 300`).
    pub translation: Vec<(String, u32)>,
}

/// Address part of an access-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclAddress {
    Any,
    Host(Ipv4Addr),
    /// Address + wildcard mask.
    Wildcard(Ipv4Addr, Ipv4Addr),
}

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    Permit,
    Deny,
}

/// One access-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclEntry {
    Remark(String),
    Rule {
        seq: Option<u32>,
        action: AclAction,
        /// `None` for a standard list.
        protocol: Option<String>,
        source: AclAddress,
        /// Port operator words after the source (`eq 500`, `range 1 2`), lower case.
        source_port: Option<String>,
        destination: Option<AclAddress>,
        destination_port: Option<String>,
        /// Trailing options (`log`, `established`, `precedence 5`), lower case.
        options: Vec<String>,
    },
}

/// An access list, numbered (`access-list N ...` lines) or named (`ip access-list extended N`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessList {
    pub name: String,
    /// True for named lists (`ip access-list ...`).
    pub named: bool,
    /// True for extended lists.
    pub extended: bool,
    pub entries: Vec<AclEntry>,
    pub unsupported: Vec<Unsupported>,
}

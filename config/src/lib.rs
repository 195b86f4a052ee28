//! # `config`: the IOS configuration language of Lifeline
//!
//! Lifeline is configured with the Cisco IOS dialect its seeds document. This crate turns such a
//! text into a typed [`Config`] plus [`Diagnostic`]s ([`parse`]), checks the seeds' rules, and
//! prints the model back as `show running-config` does ([`render`]). It does no I/O and never
//! reads the clock.
//!
//! ## The language
//! - One command per line; `!` as the first non-blank character starts a comment (a `!` inside
//!   a word, as in `ip nhrp authentication BLUE!KEY`, does not). `end` returns to global mode,
//!   `exit` leaves one mode.
//! - **The command decides the mode**, not the indentation (many seed examples lost it): a line
//!   that the current sub-mode does not know is tried in the parent modes up to global, as IOS
//!   does. Indentation is only a hint for commands nobody knows.
//! - Keywords are case-insensitive and may be abbreviated to any prefix that is unique among
//!   the keywords possible at that position (`int tu1`, `sh`, `encr`). Object names
//!   (profiles, keyrings, trustpoints, maps) are case-sensitive. Interface names are
//!   canonicalised (`tu1` → `Tunnel1`, `gig0/0/1` → `GigabitEthernet0/0/1`, `lo 0` → `Loopback0`).
//! - `no COMMAND` removes or negates a modelled command (`no shutdown`, `no ip address`,
//!   `no interface Tunnel1`, `no ip route ...`).
//!
//! ## What is modelled
//! Interfaces (addresses incl. `dhcp`/`unnumbered`, NAT side, DHCP client options, MTU, MSS,
//! `tunnel source/destination [dynamic]/mode/key/protection ... [ikev2-profile] [shared]`, the
//! per-tunnel `vpn-sip` line, every `ip nhrp` command, `service-policy`, `crypto map`), static
//! routes with distance/track/name, IP SLA icmp-echo with threshold/timeout/frequency/schedule,
//! track objects, global VPN-SIP, IKEv2 keyrings/profiles/proposals/policies/dpd, ISAKMP
//! policies/keys/keepalives, IPsec transform sets/profiles/crypto maps and global SA settings,
//! PKI trustpoints and certificate maps, MQC class maps and policy maps, NAT, access lists.
//! Defaults the seeds state live in [`defaults`]; the model keeps unset values as `None`, and
//! [`Config::effective_ipsec_profile`] and friends apply the defaults.
//!
//! ## Validation (errors refuse the configuration, warnings do not)
//! Each finding is a [`Diagnostic`] with line, column, the offending words and a suggestion,
//! displayed as ``LINE:COL: error: MESSAGE: `WORDS` (suggestion: ...)``. Errors: malformed
//! values (addresses, non-contiguous masks, out-of-range numbers); VPN-SIP bandwidth not in
//! {64, 128, 256, 512, 1000}; a VPN-SIP tunnel without `tunnel mode ipsec ipv4`, without
//! `tunnel destination dynamic`, without tunnel protection, whose IPsec profile has no idle
//! time or whose IKEv2 profile lacks `nat force-encap`; the local-number rules below (see
//! "Several local numbers"); a remote number without a keyring peer
//! `identity key-id NUMBER` when the IKEv2 profile uses pre-shared keys; a VPN-SIP child policy
//! with anything but `priority`, `bandwidth percent` (and `queue-limit`); a static
//! `service-policy output` on a VPN-SIP tunnel; tunnels sharing a source with mGRE without
//! `shared` or with equal tunnel keys; two mGRE tunnels with the same tunnel source and tunnel key
//! (or both without a key); `shared` with `tunnel mode ipsec ipv4`; an invalid or
//! doubly-bound `device`. Warnings: unsupported commands, undefined references (names are
//! case-sensitive), VPN-SIP WAN/loopback without `ip nat outside`/`inside` or DHCP, routes with
//! host bits set (the network address is used), tunnel modes Lifeline does not implement,
//! `tunnel destination` on an mGRE tunnel (named on its own line).
//!
//! ## Several local numbers (Lifeline extension beyond the seed)
//! The seed configures one `vpn-sip local-number N address ipv4 IF`. Lifeline takes several such
//! lines; each number is registered with its own REGISTER (refreshed and retried on its own) and
//! serves the tunnels whose `vpn-sip local-number N remote-number R bandwidth B` line names it:
//! calls from such a tunnel go out with N as From, and an incoming INVITE is routed by the called
//! number (Request-URI user, else To) and then by the caller to one tunnel. The rules, each an
//! error with the line and a suggestion unless said otherwise:
//! - a number is configured once (`VPN-SIP local number N is configured twice`);
//! - every number names the first one's WAN interface (one SIP user agent with one contact
//!   address, one registrar learnt on that interface);
//! - a tunnel's local number is one of the configured numbers;
//! - a tunnel carries one VPN-SIP line: a second, different `vpn-sip local-number ...` line under
//!   the same tunnel is refused (IOS locks a VPN-SIP tunnel until the line is removed);
//! - a remote number is bound to one tunnel (incoming calls, the keyring lookup and IKE's peer
//!   identity all go by it);
//! - an IKEv2 profile keys tunnels of one local number only (its local identity, `key-id N`, is
//!   one number): tunnels of another number get their own profile;
//! - warning: a number that no tunnel uses registers, but every call to it is refused with 404.
//!
//! `no vpn-sip local-number N` removes number N; `no vpn-sip local-number` removes them all.
//!
//! ## Lifeline extensions (not IOS)
//! - Under an interface: `device LINUXNAME` binds the IOS interface to a Linux network device
//!   (IOS names such as `GigabitEthernet0/0/1` do not fit Linux's 15-byte limit). Tunnel and
//!   Loopback interfaces without `device` are created by Lifeline under their IOS names. See
//!   [`Interface::linux_name`].
//! - Global: `vpn-sip registrar HOST [port N] [transport udp|tcp|tls] [ca-file PATH] [username U password P]`,
//!   a fixed SIP registrar instead of DHCP option 120. The password is a [`Secret`].
//!
//! ## What is kept verbatim
//! Commands Lifeline does not implement (`duplex auto`, `router eigrp 1` with its block,
//! `ip vrf`, `crypto keyring`, `line vty`, banners, ...) are kept as [`Unsupported`] under the
//! mode they appeared in, reported as warnings, and rendered back, so a real router
//! configuration loads. Known commands with an argument Lifeline does not implement
//! (`tunnel protection ipsec policy`, `vpn-sip sip-local ...`) are kept the same way.
//!
//! The renderer prints single-line unsupported global commands first (before any mode opens),
//! unsupported blocks last, and unsupported sub-commands at the end of their block, so that
//! `render(parse(render(parse(x)))) == render(parse(x))` holds (tested on every seed fixture and
//! with proptest).
//!
//! ## What is absent
//! IPv6 addressing and routing, VRF semantics (the names are kept), routing protocols,
//! interactive PKI commands (`crypto pki enroll`), type-6/7 key decryption (keys are kept as
//! written), `default COMMAND`, and `show` formats other than running-config.
//!
//! ## Secrets
//! PSKs, NHRP authentication strings and passwords are [`Secret`]s: zeroized on drop, and
//! `Debug`/`Display` print only their length. The renderer prints them as IOS running-config
//! does (as entered, with the type digit if one was given), so a rendered configuration must
//! not be logged.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod defaults;
mod diag;
mod lex;
mod model;
mod names;
mod parser;
mod render;
mod secret;
mod validate;

use std::time::Duration;

pub use diag::{Diagnostic, Severity, redact_secrets};
pub use model::*;
pub use names::{canonicalize_interface, valid_linux_ifname};
pub use render::render;
pub use secret::Secret;
pub use validate::validate;

/// The result of [`parse`]: the model (always, even with errors) and the diagnostics in line
/// order.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when any diagnostic is an error (the appliance refuses such a configuration).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// Parse and validate an IOS configuration. Never panics, whatever the input.
pub fn parse(text: &str) -> Parsed {
    let p = parser::Parser::new().run(text);
    let mut diagnostics = p.diags;
    diagnostics.extend(validate::validate_with(&p.cfg, &p.spans));
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Parsed {
        config: p.cfg,
        diagnostics,
    }
}

/// An IPsec profile with every default applied (from [`defaults`], then the global
/// `crypto ipsec security-association ...` settings, then the profile's own `set` commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveIpsecProfile {
    pub name: String,
    /// The transform sets in preference order; the default set when none is configured.
    pub transform_sets: Vec<TransformSet>,
    pub lifetime_seconds: u32,
    /// `None` when volume-based rekeying is disabled.
    pub lifetime_kilobytes: Option<u64>,
    /// `None`: no idle timer.
    pub idle_time: Option<Duration>,
    /// `None` when anti-replay is disabled.
    pub replay_window: Option<u32>,
    pub pfs_group: Option<u16>,
    pub ikev2_profile: Option<String>,
}

/// IP SLA parameters with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveIpSla {
    pub id: u32,
    pub operation: Option<SlaOperation>,
    pub threshold: Duration,
    pub timeout: Duration,
    pub frequency: Duration,
    pub scheduled: bool,
}

impl Config {
    /// The interface with this IOS name (abbreviations accepted: `tu1`, `Tunnel 1`).
    pub fn interface(&self, ios_name: &str) -> Option<&Interface> {
        let n = canonicalize_interface(ios_name);
        self.interfaces.iter().find(|i| i.name == n)
    }

    /// The IKEv2 profile with this (case-sensitive) name.
    pub fn ikev2_profile(&self, name: &str) -> Option<&Ikev2Profile> {
        self.ikev2.profiles.iter().find(|p| p.name == name)
    }

    /// The IKEv2 keyring with this name.
    pub fn ikev2_keyring(&self, name: &str) -> Option<&Ikev2Keyring> {
        self.ikev2.keyrings.iter().find(|k| k.name == name)
    }

    /// The keyring peer that holds the pre-shared key for `key_id` (a remote SIP number) under
    /// IKEv2 profile `profile`: VPN-SIP looks PSKs up by SIP number, never by address.
    pub fn keyring_peer_for_key_id(&self, profile: &str, key_id: &str) -> Option<&KeyringPeer> {
        let kr = self.ikev2_profile(profile)?.keyring_local.as_deref()?;
        self.ikev2_keyring(kr)?.peer_by_key_id(key_id)
    }

    /// The policy map with this name.
    pub fn policy_map(&self, name: &str) -> Option<&PolicyMap> {
        self.qos.policy_maps.iter().find(|p| p.name == name)
    }

    /// Tunnel interfaces that carry a `vpn-sip local-number ... remote-number ...` line.
    pub fn vpn_sip_tunnels(&self) -> impl Iterator<Item = (&Interface, &TunnelVpnSip)> {
        self.interfaces
            .iter()
            .filter_map(|i| i.vpn_sip.as_ref().map(|v| (i, v)))
    }

    /// The IPsec profile whose ESP settings (transform sets, PFS, lifetimes) IKEv2 profile `ikev2`
    /// negotiates, for every tunnel it keys: the first tunnel's `tunnel protection ipsec profile X
    /// ikev2-profile ikev2`, else the first IPsec profile with `set ikev2-profile ikev2`.
    pub fn ipsec_profile_of_ikev2(&self, ikev2: &str) -> Option<EffectiveIpsecProfile> {
        self.interfaces
            .iter()
            .filter_map(|i| i.tunnel.protection.as_ref())
            .find(|tp| tp.ikev2_profile.as_deref() == Some(ikev2))
            .and_then(|tp| self.effective_ipsec_profile(&tp.ipsec_profile))
            .or_else(|| {
                self.ipsec
                    .profiles
                    .iter()
                    .find(|ip| ip.ikev2_profile.as_deref() == Some(ikev2))
                    .and_then(|ip| self.effective_ipsec_profile(&ip.name))
            })
    }

    /// The IKEv2 profile that keys tunnel `i`: `tunnel protection ... ikev2-profile P`, else the IPsec
    /// profile's `set ikev2-profile P`.
    pub fn tunnel_ikev2_profile(&self, i: &Interface) -> Option<String> {
        let tp = i.tunnel.protection.as_ref()?;
        tp.ikev2_profile.clone().or_else(|| {
            self.ipsec
                .profiles
                .iter()
                .find(|p| p.name == tp.ipsec_profile)
                .and_then(|p| p.ikev2_profile.clone())
        })
    }

    /// The IPsec profile `name` with defaults applied; `None` when it is not defined.
    pub fn effective_ipsec_profile(&self, name: &str) -> Option<EffectiveIpsecProfile> {
        let p = self.ipsec.profiles.iter().find(|p| p.name == name)?;
        let g = &self.ipsec.global_sa;
        let pick_kb = |s: &SaSettings| s.lifetime_kilobytes;
        let kb = pick_kb(&p.sa).or(pick_kb(g));
        let replay = p.sa.replay.or(g.replay);
        let transform_sets = if p.transform_sets.is_empty() {
            vec![TransformSet {
                name: defaults::DEFAULT_TRANSFORM_SET_NAME.to_string(),
                transforms: defaults::DEFAULT_TRANSFORMS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                mode: Some(defaults::DEFAULT_IPSEC_MODE),
                unsupported: vec![],
            }]
        } else {
            p.transform_sets
                .iter()
                .filter_map(|n| self.ipsec.transform_sets.iter().find(|t| &t.name == n))
                .cloned()
                .collect()
        };
        Some(EffectiveIpsecProfile {
            name: p.name.clone(),
            transform_sets,
            lifetime_seconds: p
                .sa
                .lifetime_seconds
                .or(g.lifetime_seconds)
                .unwrap_or(defaults::SA_LIFETIME_SECONDS),
            lifetime_kilobytes: match kb {
                Some(KilobyteLifetime::Kilobytes(k)) => Some(k),
                Some(KilobyteLifetime::Disable) => None,
                None => Some(defaults::SA_LIFETIME_KILOBYTES),
            },
            idle_time: p.sa.idle_time.or(g.idle_time).or(defaults::SA_IDLE_TIME),
            replay_window: match replay {
                Some(Replay::WindowSize(n)) => Some(n),
                Some(Replay::Disable) => None,
                None => Some(defaults::REPLAY_WINDOW),
            },
            pfs_group: p.pfs.or(defaults::PFS_GROUP),
            ikev2_profile: p.ikev2_profile.clone(),
        })
    }

    /// IP SLA operation `id` with defaults applied.
    pub fn effective_ip_sla(&self, id: u32) -> Option<EffectiveIpSla> {
        let s = self.ip_slas.iter().find(|s| s.id == id)?;
        Some(EffectiveIpSla {
            id,
            operation: s.operation.clone(),
            threshold: s.threshold.unwrap_or(defaults::SLA_THRESHOLD),
            timeout: s.timeout.unwrap_or(defaults::SLA_TIMEOUT),
            frequency: s.frequency.unwrap_or(defaults::SLA_FREQUENCY),
            scheduled: s.schedule.is_some(),
        })
    }
}

impl Ikev2Profile {
    /// IKE SA lifetime in effect.
    pub fn effective_lifetime(&self) -> Duration {
        self.lifetime.unwrap_or(defaults::IKEV2_LIFETIME)
    }
}

impl IpRoute {
    /// Administrative distance in effect.
    pub fn effective_distance(&self) -> u8 {
        self.distance.unwrap_or(defaults::ROUTE_DISTANCE)
    }
}

impl IsakmpPolicy {
    /// `(encryption, hash, authentication, group, lifetime)` with IOS defaults applied.
    pub fn effective(&self) -> (String, String, String, u16, Duration) {
        (
            self.encryption
                .clone()
                .unwrap_or_else(|| defaults::ISAKMP_ENCRYPTION.into()),
            self.hash
                .clone()
                .unwrap_or_else(|| defaults::ISAKMP_HASH.into()),
            self.authentication
                .clone()
                .unwrap_or_else(|| defaults::ISAKMP_AUTHENTICATION.into()),
            self.group.unwrap_or(defaults::ISAKMP_GROUP),
            self.lifetime.unwrap_or(defaults::ISAKMP_LIFETIME),
        )
    }
}

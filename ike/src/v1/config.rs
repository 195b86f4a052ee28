//! IKEv1 configuration as IOS builds it: `crypto isakmp policy N`, `crypto isakmp key K address A M`,
//! transform sets, `set pfs`, `crypto isakmp keepalive`, `crypto isakmp nat keepalive`.
//!
//! Legacy algorithms (DES, 3DES, MD5, DH groups 1/2/5) parse into the policy types so a seed
//! configuration loads, but they are refused with a [`Refusal`] that names the algorithm and its
//! replacement; never silently dropped. This implementation has no DES/MD5/MODP-768/1024 code at all,
//! so there is no extension that enables them (see the crate report).

use super::keys::HashAlg;
use crate::config::{EspProposal, Fingerprint, Mode, Retransmit};
use crate::crypto::{DhGroup, EncrAlg, Secret};
use std::net::Ipv4Addr;
use std::time::Duration;

/// `encryption` of an ISAKMP policy (attribute class 1, plus key length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyEncryption {
    /// `des` (DES-CBC, value 1). Legacy: refused.
    Des,
    /// `3des` (value 5). Legacy: refused.
    TripleDes,
    /// `aes [128|192|256]` (value 7).
    Aes(u16),
}

/// `hash` of an ISAKMP policy (attribute class 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyHash {
    /// `md5` (value 1). Legacy: refused.
    Md5,
    /// A supported hash.
    Hash(HashAlg),
}

/// `authentication` of an ISAKMP policy (attribute class 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `pre-share` (1).
    PreShare,
    /// `rsa-sig` (3).
    RsaSig,
}

impl AuthMethod {
    /// Attribute value.
    pub fn value(self) -> u16 {
        match self {
            AuthMethod::PreShare => 1,
            AuthMethod::RsaSig => 3,
        }
    }
}

/// One `crypto isakmp policy <priority>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpPolicy {
    /// Priority (lower = preferred).
    pub priority: u32,
    /// `encryption`.
    pub encryption: PolicyEncryption,
    /// `hash`.
    pub hash: PolicyHash,
    /// `authentication`.
    pub authentication: AuthMethod,
    /// `group` (the IKEv1 group number).
    pub group: u16,
    /// `lifetime` (seconds).
    pub lifetime: Duration,
}

impl IsakmpPolicy {
    /// A policy with the IOS defaults for every line it omits: `encryption des`, `hash sha`,
    /// `authentication rsa-sig`, `group 1`, `lifetime 86400` (IOS 12.4/15.x; seed digest IKE-1).
    pub fn ios_default(priority: u32) -> Self {
        IsakmpPolicy {
            priority,
            encryption: PolicyEncryption::Des,
            hash: PolicyHash::Hash(HashAlg::Sha1),
            authentication: AuthMethod::RsaSig,
            group: 1,
            lifetime: Duration::from_secs(86400),
        }
    }

    /// The usable suite, or why not (legacy or unsupported algorithm).
    pub fn suite(&self) -> Result<Suite, Refusal> {
        let encr = encr_from(self.encryption)?;
        let hash = match self.hash {
            PolicyHash::Md5 => return Err(Refusal::legacy("hash md5 (HMAC-MD5)", "hash sha256")),
            PolicyHash::Hash(h) => h,
        };
        let group = group_from(self.group)?;
        Ok(Suite {
            encr,
            hash,
            auth: self.authentication,
            group,
            lifetime: self.lifetime,
        })
    }
}

pub(crate) fn encr_from(e: PolicyEncryption) -> Result<EncrAlg, Refusal> {
    match e {
        PolicyEncryption::Des => Err(Refusal::legacy(
            "encryption des (DES-CBC, 56-bit key)",
            "encryption aes 256",
        )),
        PolicyEncryption::TripleDes => Err(Refusal::legacy(
            "encryption 3des (3DES-CBC, 64-bit block)",
            "encryption aes 256",
        )),
        PolicyEncryption::Aes(128) => Ok(EncrAlg::AesCbc128),
        PolicyEncryption::Aes(192) => Ok(EncrAlg::AesCbc192),
        PolicyEncryption::Aes(256) => Ok(EncrAlg::AesCbc256),
        PolicyEncryption::Aes(n) => Err(Refusal::Unsupported(format!("AES key length {n}"))),
    }
}

pub(crate) fn group_from(g: u16) -> Result<DhGroup, Refusal> {
    Ok(match g {
        1 => return Err(Refusal::legacy("group 1 (768-bit MODP)", "group 14")),
        2 => return Err(Refusal::legacy("group 2 (1024-bit MODP)", "group 14")),
        5 => return Err(Refusal::legacy("group 5 (1536-bit MODP)", "group 14")),
        14 => DhGroup::Modp2048,
        19 => DhGroup::Ecp256,
        20 => DhGroup::Ecp384,
        21 => DhGroup::Ecp521,
        31 => DhGroup::Curve25519,
        n => return Err(Refusal::Unsupported(format!("DH group {n}"))),
    })
}

/// The group number of a supported group (IKEv1 and IKEv2 share these numbers).
pub(crate) fn group_number(g: DhGroup) -> u16 {
    g.id().0
}

/// A usable phase-1 suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// Cipher.
    pub encr: EncrAlg,
    /// Hash (and HMAC PRF).
    pub hash: HashAlg,
    /// Authentication method.
    pub auth: AuthMethod,
    /// DH group.
    pub group: DhGroup,
    /// ISAKMP SA lifetime.
    pub lifetime: Duration,
}

/// Why a configured or offered algorithm is not used (shown in the log and in `poll_diagnostic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A legacy algorithm: its name and the replacement to configure.
    Legacy {
        /// E.g. `encryption des (DES-CBC, 56-bit key)`.
        what: String,
        /// E.g. `encryption aes 256`.
        replacement: &'static str,
    },
    /// Not implemented here.
    Unsupported(String),
}

impl Refusal {
    fn legacy(what: &str, replacement: &'static str) -> Self {
        Refusal::Legacy {
            what: what.to_string(),
            replacement,
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::Legacy { what, replacement } => write!(
                f,
                "{what} is a legacy algorithm and is refused; configure {replacement}"
            ),
            Refusal::Unsupported(s) => write!(f, "{s} is not supported"),
        }
    }
}

/// `crypto isakmp key <key> address <address> [<mask>]`.
#[derive(Debug, Clone)]
pub struct PresharedKey {
    /// Peer address.
    pub address: Ipv4Addr,
    /// Mask (0.0.0.0 = wildcard).
    pub mask: Ipv4Addr,
    /// The key.
    pub key: Secret,
}

impl PresharedKey {
    /// IOS semantics: without a mask the entry is for one host, except `address 0.0.0.0`, which is the
    /// wildcard (seen without a mask in the seeds).
    pub fn new(key: &[u8], address: Ipv4Addr, mask: Option<Ipv4Addr>) -> Self {
        let mask = mask.unwrap_or(if address.is_unspecified() {
            Ipv4Addr::UNSPECIFIED
        } else {
            Ipv4Addr::BROADCAST
        });
        PresharedKey {
            address,
            mask,
            key: Secret::from_slice(key),
        }
    }
    fn matches(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.mask);
        u32::from(ip) & m == u32::from(self.address) & m
    }
}

/// `authentication rsa-sig`: our key and certificate (IOS trustpoint) and the peer certificates we
/// trust (pinned by SHA-1; no CA path validation yet).
#[derive(Clone)]
pub struct RsaSig {
    /// PKCS#8 DER private key.
    pub key_pkcs8: Secret,
    /// Our DER certificate (sent in CERT; its subject is our ID_DER_ASN1_DN).
    pub cert_der: Vec<u8>,
    /// SHA-1 fingerprints of the peer certificates we accept.
    pub trusted_certs: Vec<Fingerprint>,
}

impl core::fmt::Debug for RsaSig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "RsaSig(cert {}, {} trusted)",
            Fingerprint::of_cert(&self.cert_der),
            self.trusted_certs.len()
        )
    }
}

/// Which traffic quick mode protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selectors {
    /// 0.0.0.0/0 both ways, any protocol (tunnel protection on a VTI).
    AnyAny,
    /// The two IKE peers' addresses for one IP protocol (47 = GRE, DMVPN).
    Host {
        /// IP protocol.
        protocol: u8,
    },
}

/// `crypto isakmp keepalive <seconds> [<retry>] [periodic|on-demand]` (RFC 3706 DPD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle seconds before a check.
    pub interval: Duration,
    /// Between retries (IOS default 2 s).
    pub retry: Duration,
    /// Periodic, or on demand (only when the appliance calls `dpd_probe`).
    pub periodic: bool,
}

/// The whole IKEv1 configuration of one endpoint.
#[derive(Debug, Clone)]
pub struct Config {
    /// ISAKMP policies (any order; used by priority).
    pub policies: Vec<IsakmpPolicy>,
    /// Pre-shared keys by peer address.
    pub keys: Vec<PresharedKey>,
    /// Transform sets in preference order.
    pub transform_sets: Vec<EspProposal>,
    /// `mode tunnel` / `mode transport`.
    pub mode: Mode,
    /// `set pfs groupN`.
    pub pfs: Option<DhGroup>,
    /// Quick mode selectors.
    pub selectors: Selectors,
    /// IPsec SA lifetime (default 3600 s).
    pub ipsec_lifetime: Duration,
    /// IPsec SA volume lifetime (default 4 608 000 KB).
    pub ipsec_lifetime_kb: u64,
    /// DPD.
    pub keepalive: Option<Keepalive>,
    /// `crypto isakmp nat keepalive <s>` (RFC 3948 keepalives when behind a NAT).
    pub nat_keepalive: Option<Duration>,
    /// Send INITIAL-CONTACT when we have no other SA with the peer.
    pub initial_contact: bool,
    /// Retransmission schedule.
    pub retransmit: Retransmit,
    /// Certificate authentication (for `authentication rsa-sig` policies).
    pub rsa: Option<RsaSig>,
    /// Further quick-mode parameter sets (one per IPsec profile use, e.g. GRE tunnel protection in
    /// transport mode with host selectors next to VTIs' tunnel mode any/any). Set 0 is this config's own
    /// `mode`/`selectors`/`pfs`/`transform_sets`/lifetimes; set `i` (1-based) is `quick_modes[i - 1]`. An
    /// initiation names its set ([`crate::v1::Endpoint::initiate_with`]); a responder accepts the first set
    /// whose selectors, mode, PFS and transforms all match the offer.
    pub quick_modes: Vec<QuickMode>,
}

/// One set of quick-mode parameters (what an IPsec profile says).
#[derive(Debug, Clone)]
pub struct QuickMode {
    /// Transform sets in preference order.
    pub transform_sets: Vec<EspProposal>,
    /// `mode tunnel` / `mode transport`.
    pub mode: Mode,
    /// `set pfs groupN`.
    pub pfs: Option<DhGroup>,
    /// Quick mode selectors.
    pub selectors: Selectors,
    /// IPsec SA lifetime.
    pub ipsec_lifetime: Duration,
    /// IPsec SA volume lifetime (KB).
    pub ipsec_lifetime_kb: u64,
}

impl Config {
    /// A PSK configuration with the seeds' defaults (policy 10: AES-256/SHA/pre-share/group 14).
    pub fn psk(key: PresharedKey) -> Self {
        Config {
            policies: vec![IsakmpPolicy {
                priority: 10,
                encryption: PolicyEncryption::Aes(256),
                hash: PolicyHash::Hash(HashAlg::Sha1),
                authentication: AuthMethod::PreShare,
                group: 14,
                lifetime: Duration::from_secs(86400),
            }],
            keys: vec![key],
            transform_sets: vec![EspProposal {
                encr: EncrAlg::AesCbc128,
                integ: Some(crate::crypto::IntegAlg::HmacSha1_96),
                esn: false,
            }],
            mode: Mode::Tunnel,
            pfs: None,
            selectors: Selectors::AnyAny,
            ipsec_lifetime: Duration::from_secs(3600),
            ipsec_lifetime_kb: 4_608_000,
            keepalive: None,
            nat_keepalive: Some(Duration::from_secs(20)),
            initial_contact: true,
            retransmit: Retransmit::default(),
            rsa: None,
            quick_modes: Vec::new(),
        }
    }

    /// Quick-mode parameter set `i` (0: this config's own fields); `None` past the last one.
    pub fn quick_mode(&self, i: usize) -> Option<QuickMode> {
        if i == 0 {
            return Some(QuickMode {
                transform_sets: self.transform_sets.clone(),
                mode: self.mode,
                pfs: self.pfs,
                selectors: self.selectors,
                ipsec_lifetime: self.ipsec_lifetime,
                ipsec_lifetime_kb: self.ipsec_lifetime_kb,
            });
        }
        self.quick_modes.get(i - 1).cloned()
    }

    /// How many quick-mode parameter sets there are (at least 1).
    pub fn quick_mode_count(&self) -> usize {
        1 + self.quick_modes.len()
    }

    /// The key for a peer address: the longest matching mask wins.
    pub fn lookup_key(&self, ip: Ipv4Addr) -> Option<&Secret> {
        self.keys
            .iter()
            .filter(|k| k.matches(ip))
            .max_by_key(|k| u32::from(k.mask).count_ones())
            .map(|k| &k.key)
    }

    /// Usable suites in priority order, and the refusals for the others.
    pub fn suites(&self) -> (Vec<Suite>, Vec<(u32, Refusal)>) {
        let mut ps: Vec<&IsakmpPolicy> = self.policies.iter().collect();
        ps.sort_by_key(|p| p.priority);
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for p in ps {
            match p.suite() {
                Ok(s) if s.auth == AuthMethod::RsaSig && self.rsa.is_none() => bad.push((
                    p.priority,
                    Refusal::Unsupported(
                        "authentication rsa-sig without a certificate and key".into(),
                    ),
                )),
                Ok(s) => ok.push(s),
                Err(r) => bad.push((p.priority, r)),
            }
        }
        (ok, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ios_default_policy_is_refused_naming_des_and_replacement() {
        let e = IsakmpPolicy {
            authentication: AuthMethod::PreShare,
            ..IsakmpPolicy::ios_default(10)
        }
        .suite()
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("des") && s.contains("aes 256"), "{s}");
    }

    #[test]
    fn md5_and_group2_are_refused_with_replacements() {
        let mut p = IsakmpPolicy {
            encryption: PolicyEncryption::Aes(128),
            hash: PolicyHash::Md5,
            authentication: AuthMethod::PreShare,
            ..IsakmpPolicy::ios_default(1)
        };
        assert!(p.suite().unwrap_err().to_string().contains("md5"));
        p.hash = PolicyHash::Hash(HashAlg::Sha256);
        p.group = 2;
        assert!(p.suite().unwrap_err().to_string().contains("group 14"));
        p.group = 14;
        assert!(p.suite().is_ok());
    }

    #[test]
    fn wildcard_key_matches_any_peer_and_host_key_wins() {
        let mut c = Config::psk(PresharedKey::new(b"wild", Ipv4Addr::UNSPECIFIED, None));
        c.keys.push(PresharedKey::new(
            b"host",
            Ipv4Addr::new(192, 0, 2, 7),
            None,
        ));
        assert_eq!(
            c.lookup_key(Ipv4Addr::new(198, 51, 100, 1))
                .unwrap()
                .as_bytes(),
            b"wild"
        );
        assert_eq!(
            c.lookup_key(Ipv4Addr::new(192, 0, 2, 7))
                .unwrap()
                .as_bytes(),
            b"host"
        );
        let c = Config::psk(PresharedKey::new(b"k", Ipv4Addr::new(192, 0, 2, 7), None));
        assert!(c.lookup_key(Ipv4Addr::new(192, 0, 2, 8)).is_none());
    }
}

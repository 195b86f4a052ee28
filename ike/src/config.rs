//! Identities, credentials, fingerprints and profiles (what the appliance builds from its IOS config).

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg, Secret};
use crate::wire::{IdType, Identification, TrafficSelector};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// An IKE identity (IDi/IDr).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_KEY_ID: for VPN-SIP, the SIP number.
    KeyId(Vec<u8>),
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR (strongSwan's `user@domain` identities).
    Email(String),
    /// ID_DER_ASN1_DN (raw DER).
    Dn(Vec<u8>),
    /// Anything else.
    Other(IdType, Vec<u8>),
}

impl Identity {
    /// A key-id identity from a string (the SIP number).
    pub fn key_id(s: &str) -> Self {
        Identity::KeyId(s.as_bytes().to_vec())
    }
    /// Identity match as used for `match identity remote`, keyrings and SDP expectations: exact, except that
    /// distinguished names compare by their RFC 4514 text, so `CN=x` as PrintableString and as UTF8String
    /// are the same name (strongSwan and certificates disagree on the string type).
    pub fn matches(&self, other: &Identity) -> bool {
        match (self, other) {
            (Identity::Dn(a), Identity::Dn(b)) => {
                a == b || dn_text(a).is_some_and(|x| Some(x) == dn_text(b))
            }
            _ => self == other,
        }
    }

    /// To the wire form.
    pub fn to_wire(&self) -> Identification {
        let (id_type, data) = match self {
            Identity::KeyId(v) => (IdType::ID_KEY_ID, v.clone()),
            Identity::Ipv4(a) => (IdType::ID_IPV4_ADDR, a.octets().to_vec()),
            Identity::Fqdn(s) => (IdType::ID_FQDN, s.as_bytes().to_vec()),
            Identity::Email(s) => (IdType::ID_RFC822_ADDR, s.as_bytes().to_vec()),
            Identity::Dn(v) => (IdType::ID_DER_ASN1_DN, v.clone()),
            Identity::Other(t, v) => (*t, v.clone()),
        };
        Identification { id_type, data }
    }
    /// From the wire form (never fails: unknown or malformed values become `Other`).
    pub fn from_wire(id: &Identification) -> Self {
        match id.id_type {
            IdType::ID_KEY_ID => Identity::KeyId(id.data.clone()),
            IdType::ID_IPV4_ADDR if id.data.len() == 4 => Identity::Ipv4(Ipv4Addr::new(
                id.data[0], id.data[1], id.data[2], id.data[3],
            )),
            IdType::ID_FQDN => match String::from_utf8(id.data.clone()) {
                Ok(s) => Identity::Fqdn(s),
                Err(_) => Identity::Other(id.id_type, id.data.clone()),
            },
            IdType::ID_RFC822_ADDR => match String::from_utf8(id.data.clone()) {
                Ok(s) => Identity::Email(s),
                Err(_) => Identity::Other(id.id_type, id.data.clone()),
            },
            IdType::ID_DER_ASN1_DN => Identity::Dn(id.data.clone()),
            t => Identity::Other(t, id.data.clone()),
        }
    }
}

fn dn_text(der: &[u8]) -> Option<String> {
    use der::Decode;
    x509_cert::name::Name::from_der(der)
        .ok()
        .map(|n| n.to_string())
}

impl core::fmt::Display for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Identity::KeyId(v) => match core::str::from_utf8(v) {
                Ok(s) => f.write_str(s),
                Err(_) => v.iter().try_for_each(|b| write!(f, "{b:02x}")),
            },
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Fqdn(s) | Identity::Email(s) => f.write_str(s),
            Identity::Dn(v) => match dn_text(v) {
                Some(t) => f.write_str(&t),
                None => v.iter().try_for_each(|b| write!(f, "{b:02x}")),
            },
            Identity::Other(_, v) => v.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self {
            Identity::KeyId(_) => "key-id",
            Identity::Ipv4(_) => "address",
            Identity::Fqdn(_) => "fqdn",
            Identity::Email(_) => "email",
            Identity::Dn(_) => "dn",
            Identity::Other(..) => "other",
        };
        write!(f, "{kind} {self}")
    }
}

/// A SHA-1 fingerprint as carried in SDP `a=fingerprint:SHA-1` (RFC 4572).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 20]);

impl Fingerprint {
    /// SHA-1 of a pre-shared key (the VPN-SIP PSK fingerprint).
    pub fn of_psk(psk: &[u8]) -> Self {
        Fingerprint(crate::crypto::sha1(&[psk]))
    }
    /// SHA-1 of a DER certificate.
    pub fn of_cert(der: &[u8]) -> Self {
        Fingerprint(crate::crypto::sha1(&[der]))
    }
    /// Parses `AB:CD:...` (case-insensitive, 20 bytes).
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        let mut n = 0;
        for part in s.trim().split(':') {
            if n == 20 || part.len() != 2 {
                return None;
            }
            out[n] = u8::from_str_radix(part, 16).ok()?;
            n += 1;
        }
        (n == 20).then_some(Fingerprint(out))
    }
    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Fingerprint) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

//= https://www.rfc-editor.org/rfc/rfc4572#section-5
//# fingerprint = 2UHEX *(":" 2UHEX) ; Each byte in upper-case hex, separated by colons.
impl core::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// One keyring entry: `peer` → `identity`/`address` → `pre-shared-key [local|remote]`.
#[derive(Debug, Clone)]
pub struct KeyringPeer {
    /// Peer name (IOS `peer <name>`), for show output.
    pub name: String,
    /// Identity matched; `None` = wildcard (any identity).
    pub identity: Option<Identity>,
    /// IOS `address A M` with a mask between /1 and /31: `identity` is `Ipv4(A)` and any IPv4 identity
    /// inside A/M matches (the longest mask wins); `None`: `identity` must match exactly.
    pub mask: Option<Ipv4Addr>,
    /// The key we sign our AUTH with (`pre-shared-key KEY` or `pre-shared-key local KEY`).
    pub local: Option<Secret>,
    /// The key the peer's AUTH must verify with (`pre-shared-key KEY` or `pre-shared-key remote KEY`).
    pub remote: Option<Secret>,
}

impl KeyringPeer {
    fn holds(&self, id: &Identity) -> bool {
        match (self.mask, &self.identity, id) {
            (None, Some(i), _) => i.matches(id),
            (Some(m), Some(Identity::Ipv4(net)), Identity::Ipv4(a)) => {
                u32::from(*a) & u32::from(m) == u32::from(*net)
            }
            _ => false,
        }
    }
}

/// IKEv2 keyring (PSKs looked up by peer identity, exact match first, then wildcard).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Entries.
    pub peers: Vec<KeyringPeer>,
}

impl Keyring {
    /// Adds an entry whose key is used both ways (`pre-shared-key KEY`).
    pub fn with(self, identity: Option<Identity>, psk: &[u8]) -> Self {
        self.with_keys(identity, Some(psk), Some(psk))
    }
    /// Adds an entry with separate keys (`pre-shared-key local KEY` / `pre-shared-key remote KEY`).
    pub fn with_keys(
        mut self,
        identity: Option<Identity>,
        local: Option<&[u8]>,
        remote: Option<&[u8]>,
    ) -> Self {
        let name = identity
            .as_ref()
            .map_or_else(|| "*".to_string(), |i| i.to_string());
        self.peers.push(KeyringPeer {
            name,
            identity,
            mask: None,
            local: local.map(Secret::from_slice),
            remote: remote.map(Secret::from_slice),
        });
        self
    }
    /// Adds an entry for the IPv4 identities inside `addr`/`mask` (IOS `address A M`), one key both ways.
    pub fn with_subnet(self, addr: Ipv4Addr, mask: Ipv4Addr, psk: &[u8]) -> Self {
        self.with_subnet_keys(addr, mask, Some(psk), Some(psk))
    }
    /// [`Keyring::with_subnet`] with separate local and remote keys.
    pub fn with_subnet_keys(
        mut self,
        addr: Ipv4Addr,
        mask: Ipv4Addr,
        local: Option<&[u8]>,
        remote: Option<&[u8]>,
    ) -> Self {
        let net = Ipv4Addr::from(u32::from(addr) & u32::from(mask));
        self.peers.push(KeyringPeer {
            name: format!("{net}/{}", u32::from(mask).count_ones()),
            identity: Some(Identity::Ipv4(net)),
            mask: Some(mask),
            local: local.map(Secret::from_slice),
            remote: remote.map(Secret::from_slice),
        });
        self
    }
    /// The entry for `id` alone, not the wildcard: an exact identity first, then the longest `address A M`
    /// holding an IPv4 identity.
    fn specific(&self, id: &Identity) -> Option<&KeyringPeer> {
        self.peers
            .iter()
            .find(|p| p.mask.is_none() && p.holds(id))
            .or_else(|| {
                self.peers
                    .iter()
                    .filter(|p| p.mask.is_some() && p.holds(id))
                    .max_by_key(|p| p.mask.map_or(0, |m| u32::from(m).count_ones()))
            })
    }
    /// The one entry for a peer known by `ids` (in order of preference: each one's exact or subnet entry),
    /// else the wildcard. Both the key we sign with and the key we verify with come from this entry.
    pub fn entry(&self, ids: &[Identity]) -> Option<&KeyringPeer> {
        ids.iter()
            .find_map(|id| self.specific(id))
            .or_else(|| self.peers.iter().find(|p| p.identity.is_none()))
    }
    /// The key the peer `id` must authenticate with (VPN-SIP: the remote SIP number as key-id): an exact
    /// identity first, then the longest `address A M` holding an IPv4 identity, then the wildcard.
    pub fn lookup(&self, id: &Identity) -> Option<&Secret> {
        self.entry(std::slice::from_ref(id))
            .and_then(|p| p.remote.as_ref())
    }
    /// The key we authenticate with towards the peer `id` (same entry as [`Keyring::lookup`]).
    pub fn lookup_local(&self, id: &Identity) -> Option<&Secret> {
        self.entry(std::slice::from_ref(id))
            .and_then(|p| p.local.as_ref())
    }
}

/// One IKE proposal (each type lists transforms in preference order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption (all AEAD, or all non-AEAD).
    pub encr: Vec<EncrAlg>,
    /// PRFs.
    pub prf: Vec<PrfAlg>,
    /// Integrity (empty with AEAD).
    pub integ: Vec<IntegAlg>,
    /// DH groups.
    pub dh: Vec<DhGroup>,
}

impl IkeProposal {
    /// The default proposal of this implementation, modelled on IOS XE's `default` IKEv2 proposal
    /// (AES-CBC 256/192/128, SHA-2/SHA-1, ECP and MODP-2048 groups; see the crate docs for the doubt about
    /// the exact IOS list).
    pub fn ios_default() -> Self {
        IkeProposal {
            encr: vec![EncrAlg::AesCbc256, EncrAlg::AesCbc192, EncrAlg::AesCbc128],
            prf: vec![
                PrfAlg::HmacSha512,
                PrfAlg::HmacSha384,
                PrfAlg::HmacSha256,
                PrfAlg::HmacSha1,
            ],
            integ: vec![
                IntegAlg::HmacSha512_256,
                IntegAlg::HmacSha384_192,
                IntegAlg::HmacSha256_128,
                IntegAlg::HmacSha1_96,
            ],
            dh: vec![
                DhGroup::Ecp256,
                DhGroup::Ecp384,
                DhGroup::Ecp521,
                DhGroup::Modp2048,
                DhGroup::Curve25519,
            ],
        }
    }
    /// An AEAD proposal (AES-GCM-16).
    pub fn gcm_default() -> Self {
        IkeProposal {
            encr: vec![EncrAlg::AesGcm16_256, EncrAlg::AesGcm16_128],
            prf: vec![PrfAlg::HmacSha512, PrfAlg::HmacSha384, PrfAlg::HmacSha256],
            integ: vec![],
            dh: vec![
                DhGroup::Ecp256,
                DhGroup::Ecp384,
                DhGroup::Curve25519,
                DhGroup::Modp2048,
            ],
        }
    }
}

/// One ESP proposal (an IOS transform set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspProposal {
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity (None for AES-GCM).
    pub integ: Option<IntegAlg>,
    /// Offer/accept extended sequence numbers.
    pub esn: bool,
}

impl EspProposal {
    /// IOS default transform set `esp-aes esp-sha-hmac` first, then GCM and AES-256.
    pub fn ios_defaults() -> Vec<EspProposal> {
        vec![
            EspProposal {
                encr: EncrAlg::AesCbc128,
                integ: Some(IntegAlg::HmacSha1_96),
                esn: false,
            },
            EspProposal {
                encr: EncrAlg::AesGcm16_128,
                integ: None,
                esn: false,
            },
            EspProposal {
                encr: EncrAlg::AesGcm16_256,
                integ: None,
                esn: false,
            },
            EspProposal {
                encr: EncrAlg::AesCbc256,
                integ: Some(IntegAlg::HmacSha1_96),
                esn: false,
            },
            EspProposal {
                encr: EncrAlg::AesCbc256,
                integ: Some(IntegAlg::HmacSha256_128),
                esn: false,
            },
        ]
    }
}

/// IPsec mode of the CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Tunnel mode (SVTI).
    Tunnel,
    /// Transport mode (GRE over IPsec, `USE_TRANSPORT_MODE`).
    Transport,
}

/// Which traffic the first CHILD_SA protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsPolicy {
    /// 0.0.0.0/0 both ways, any protocol (static VTI).
    AnyAny,
    /// Host to host for one IP protocol (47 = GRE), addresses of the IKE peers unless given.
    Host {
        /// Local address.
        local: Ipv4Addr,
        /// Remote address.
        remote: Ipv4Addr,
        /// IP protocol.
        protocol: u8,
    },
    /// Explicit selectors (local, remote).
    Explicit(Vec<TrafficSelector>, Vec<TrafficSelector>),
}

impl TsPolicy {
    /// (local, remote) selectors.
    pub fn selectors(&self) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
        match self {
            TsPolicy::AnyAny => (
                vec![TrafficSelector::IPV4_ANY],
                vec![TrafficSelector::IPV4_ANY],
            ),
            TsPolicy::Host {
                local,
                remote,
                protocol,
            } => (
                vec![TrafficSelector::ipv4_host(*local, *protocol)],
                vec![TrafficSelector::ipv4_host(*remote, *protocol)],
            ),
            TsPolicy::Explicit(l, r) => (l.clone(), r.clone()),
        }
    }
}

/// Dead peer detection (`dpd <interval> <retry> {on-demand|periodic}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Idle time before a liveness check.
    pub interval: Duration,
    /// Time between retries of an unanswered check.
    pub retry: Duration,
    /// Periodic (checks whenever the peer was silent for `interval`) or on demand (only when asked).
    pub periodic: bool,
}

/// Retransmission of requests (RFC 7296 §2.1): `initial`, doubling, at most `max_tries` sends in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// First timeout.
    pub initial: Duration,
    /// Total transmissions before giving up.
    pub max_tries: u32,
    /// Cap for one timeout.
    pub max_timeout: Duration,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit {
            initial: Duration::from_secs(2),
            max_tries: 6,
            max_timeout: Duration::from_secs(32),
        }
    }
}

/// How we authenticate ourselves (`authentication local ...`).
#[derive(Debug, Clone)]
pub enum LocalAuth {
    /// `pre-share`: the keyring key for the peer.
    Psk,
    /// `rsa-sig`: our certificate and key (RFC 7427 SHA-256 when the peer supports it, else method 1).
    Rsa(Box<crate::auth::RsaCredential>),
}

/// How the peer must authenticate (`authentication remote ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteAuth {
    /// `pre-share`.
    Psk,
    /// `rsa-sig`: a CERT whose key verifies AUTH; trusted by SDP fingerprint (VPN-SIP), pinned, or issued by
    /// a CA trustpoint of the profile.
    RsaSig,
}

/// An IKEv2 profile (IOS `crypto ikev2 profile` plus the IPsec profile it is used with).
#[derive(Debug, Clone)]
pub struct Profile {
    /// Name (shown by `show crypto session detail` as `Profile:`).
    pub name: String,
    /// `identity local ...`.
    pub local_id: Identity,
    /// `match identity remote ...`; `None` = `any`.
    pub remote_id: Option<Identity>,
    /// `match identity remote address A M` with a mask between /1 and /31: `remote_id` is `Ipv4(A)` and the
    /// profile matches a peer whose IPv4 identity, or whose address, is inside A/M.
    pub remote_mask: Option<Ipv4Addr>,
    /// `keyring local ...`.
    pub keyring: Keyring,
    /// `authentication local ...`.
    pub local_auth: LocalAuth,
    /// `authentication remote ...`.
    pub remote_auth: RemoteAuth,
    /// Pinned peer certificates (SHA-1), for RSA peers outside VPN-SIP.
    pub trusted_certs: Vec<Fingerprint>,
    /// `pki trustpoint NAME [verify]`: CA trustpoints (added with `Endpoint::add_trustpoint`) whose CA may
    /// issue the peer's certificate (chain, validity dates and CRL checked), for RSA peers outside VPN-SIP
    /// whose certificate is not pinned.
    pub ca_trustpoints: Vec<String>,
    /// `match certificate MAP`: the peer's certificate must also match this certificate map
    /// (`Endpoint::add_certificate_map`); a missing map refuses every certificate.
    pub certificate_map: Option<String>,
    /// IKE proposals in preference order.
    pub ike_proposals: Vec<IkeProposal>,
    /// ESP proposals in preference order.
    pub esp_proposals: Vec<EspProposal>,
    /// `set pfs groupN`.
    pub pfs: Option<DhGroup>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// Traffic selectors.
    pub ts: TsPolicy,
    /// `nat force-encap`: send NAT-D hashes that cannot match, so UDP encapsulation is used.
    pub force_encap: bool,
    /// DPD.
    pub dpd: Option<Dpd>,
    /// IKE SA lifetime (IOS default 86400 s).
    pub ike_lifetime: Duration,
    /// IPsec SA lifetime (IOS default 3600 s).
    pub child_lifetime: Duration,
    /// IPsec SA volume lifetime in KB (IOS default 4608000).
    pub child_lifetime_kb: u64,
    /// VPN-SIP session: the fingerprint from SDP must match (Capabilities:S).
    pub vpn_sip: bool,
    /// Retransmission schedule.
    pub retransmit: Retransmit,
}

impl Profile {
    /// `match identity remote`: does a peer with identity `id` at address `addr` match this profile?
    /// (`any` matches all; a subnet holds the peer's IPv4 identity or its address; else the identity.)
    pub fn matches_remote(&self, id: &Identity, addr: std::net::IpAddr) -> bool {
        let inside = |net: Ipv4Addr, m: Ipv4Addr, a: Ipv4Addr| {
            u32::from(a) & u32::from(m) == u32::from(net) & u32::from(m)
        };
        match (&self.remote_id, self.remote_mask) {
            (None, _) => true,
            (Some(Identity::Ipv4(net)), Some(m)) => {
                matches!(id, Identity::Ipv4(a) if inside(*net, m, *a))
                    || matches!(addr, std::net::IpAddr::V4(a) if inside(*net, m, a))
            }
            (Some(r), _) => r.matches(id),
        }
    }
    /// A PSK profile with IOS defaults.
    pub fn psk(name: &str, local_id: Identity, keyring: Keyring) -> Self {
        Profile {
            name: name.to_string(),
            local_id,
            remote_id: None,
            remote_mask: None,
            keyring,
            local_auth: LocalAuth::Psk,
            remote_auth: RemoteAuth::Psk,
            trusted_certs: Vec::new(),
            ca_trustpoints: Vec::new(),
            certificate_map: None,
            ike_proposals: vec![IkeProposal::ios_default()],
            esp_proposals: EspProposal::ios_defaults(),
            pfs: None,
            mode: Mode::Tunnel,
            ts: TsPolicy::AnyAny,
            force_encap: false,
            dpd: None,
            ike_lifetime: Duration::from_secs(86400),
            child_lifetime: Duration::from_secs(3600),
            child_lifetime_kb: 4_608_000,
            vpn_sip: false,
            retransmit: Retransmit::default(),
        }
    }
}

/// Parameters of [`crate::Endpoint::initiate`].
#[derive(Debug, Clone)]
pub struct InitiateParams {
    /// Local address and port the IKE socket is bound to (port 4500 means NAT-T framing from the start).
    pub local: SocketAddr,
    /// Peer address and port (VPN-SIP: the port from the peer's SDP).
    pub remote: SocketAddr,
    /// Profile name (must have been added with [`crate::Endpoint::add_profile`]).
    pub profile: String,
    /// The peer's identity (VPN-SIP: the remote SIP number as key-id): sent as IDr, used to look up the
    /// PSK and required to match the peer's IDr. `None`: the profile's `remote_id`, or any.
    pub remote_id: Option<Identity>,
    /// The fingerprint the peer's SDP carried (required when the profile is VPN-SIP).
    pub expected_fingerprint: Option<Fingerprint>,
}

//! The sans-io IKEv1 endpoint: main mode (PSK), quick mode, informational (DELETE, DPD), NAT-T.

use super::config::{
    AuthMethod, Config, QuickMode, Refusal, Selectors, Suite, encr_from, group_from, group_number,
};
use super::keys::{self, HashAlg, Phase1Keys};
use super::wire::{
    Attribute, Body, DOI_IPSEC, DeletePayload, ExchangeType, IdPayload, IdType, Message,
    NotifyPayload, NotifyType, Payload, PayloadType, Proposal, ProtocolId, SIT_IDENTITY_ONLY,
    SaPayload, Transform, emit_chain, parse_chain,
};
use crate::auth::AuthFailure;
use crate::config::{EspProposal, Fingerprint, Identity, Mode};
use crate::crypto::{DhGroup, DhKeyPair, EncrAlg, IntegAlg, Rng, Secret};
use crate::endpoint::{
    ChildSaKeys, ChildSaSnapshot, DeleteReason, Event, IkeSaId, NAT_T_PORT, Transmit,
};
use crate::wire::TrafficSelector;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

// See https://www.rfc-editor.org/rfc/rfc3947#section-3.1
// (paraphrase) The Vendor ID payload contains the MD5 hash of "RFC 3947"
/// Vendor ID of RFC 3947 NAT-T: MD5("RFC 3947").
pub const VID_NAT_T: [u8; 16] = [
    0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f,
];
// See https://www.rfc-editor.org/rfc/rfc3706#section-5.1
// (the 16 bytes listed there; the last two are the major and minor version 1.0)
/// Vendor ID announcing DPD (RFC 3706 §5.1).
pub const VID_DPD: [u8; 16] = [
    0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00,
];

/// CERT / CR encoding: X.509 certificate - signature (RFC 2408 §3.9).
const CERT_X509_SIG: u8 = 4;

/// Adapts the injected [`Rng`] to `rand_core` for RSA blinding.
struct BlindingRng<'a>(&'a mut (dyn Rng + Send));
impl rand_core::TryRng for BlindingRng<'_> {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}
impl rand_core::TryCryptoRng for BlindingRng<'_> {}

/// Nonce length we send.
const NONCE_LEN: usize = 32;
/// DPD: unanswered R-U-THERE retries before the peer is declared dead (IOS: 5).
const DPD_RETRIES: u32 = 5;

// Phase-1 attribute classes (RFC 2409 Appendix A).
const A_ENCR: u16 = 1;
const A_HASH: u16 = 2;
const A_AUTH: u16 = 3;
const A_GROUP: u16 = 4;
const A_LIFE_TYPE: u16 = 11;
const A_LIFE_DUR: u16 = 12;
const A_KEY_LEN: u16 = 14;
// IPsec DOI attribute classes (RFC 2407 §4.5).
const Q_LIFE_TYPE: u16 = 1;
const Q_LIFE_DUR: u16 = 2;
const Q_GROUP: u16 = 3;
const Q_ENCAP: u16 = 4;
const Q_AUTH: u16 = 5;
const Q_KEY_LEN: u16 = 6;
// ESP transform IDs (RFC 2407 §4.4.4, RFC 4106 §8.1).
const ESP_DES: u8 = 2;
const ESP_3DES: u8 = 3;
const ESP_AES: u8 = 12;
const ESP_AES_GCM_16: u8 = 20;

/// Error from an operator command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No ISAKMP policy is usable (all legacy or unsupported; see the diagnostics).
    #[error("no usable ISAKMP policy")]
    NoUsablePolicy,
    /// No pre-shared key for the peer address.
    #[error("no pre-shared key for {0}")]
    NoKey(IpAddr),
    /// No IKE SA with that id.
    #[error("no such ISAKMP SA")]
    NoSuchSa,
    /// No quick-mode parameter set with that index ([`Config::quick_mode`]).
    #[error("no quick-mode parameter set {0}")]
    NoSuchQuickMode(usize),
    /// IKEv1 here is IPv4 only.
    #[error("IKEv1 is IPv4 only here")]
    Ipv6,
}

/// A visible reason for something refused or failed (the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The peer, when there is one.
    pub peer: Option<SocketAddr>,
    /// What happened.
    pub reason: DiagnosticReason,
}

/// What a [`Diagnostic`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnosticReason {
    /// An ISAKMP policy of the configuration is not used.
    PolicySkipped {
        /// Its priority.
        priority: u32,
        /// Why.
        refusal: Refusal,
    },
    /// A peer started aggressive mode: refused with INVALID-EXCHANGE-TYPE.
    AggressiveModeRefused,
    /// Nothing the peer offered is acceptable (NO-PROPOSAL-CHOSEN sent); the refusals of what it offered.
    NoProposalChosen(Vec<Refusal>),
    /// The peer sent an error notification.
    PeerError(NotifyType),
    /// Authentication failed.
    Auth(AuthFailure),
}

impl core::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IKEv1")?;
        if let Some(p) = self.peer {
            write!(f, " peer {p}")?;
        }
        f.write_str(": ")?;
        match &self.reason {
            DiagnosticReason::PolicySkipped { priority, refusal } => {
                write!(f, "crypto isakmp policy {priority} skipped: {refusal}")
            }
            DiagnosticReason::AggressiveModeRefused => f.write_str(
                "aggressive mode refused (it sends the PSK hash before authenticating the peer); configure main mode on the peer",
            ),
            DiagnosticReason::NoProposalChosen(rs) => {
                f.write_str("no acceptable proposal")?;
                for r in rs {
                    write!(f, "; {r}")?;
                }
                Ok(())
            }
            DiagnosticReason::PeerError(n) => write!(f, "peer sent error notification {n:?}"),
            DiagnosticReason::Auth(a) => write!(f, "authentication failed: {a}"),
        }
    }
}

/// IOS-style ISAKMP SA state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P1State {
    /// Initiator sent MM1.
    I1,
    /// Initiator sent MM3.
    I2,
    /// Initiator sent MM5.
    I3,
    /// Responder sent MM2.
    R1,
    /// Responder sent MM4.
    R2,
    /// Phase 1 done.
    Established,
}

impl P1State {
    fn ios(self) -> &'static str {
        match self {
            P1State::I1 | P1State::R1 => "MM_SA_SETUP",
            P1State::I2 | P1State::R2 => "MM_KEY_EXCH",
            P1State::I3 => "MM_KEY_AUTH",
            P1State::Established => "QM_IDLE",
        }
    }
}

#[derive(Debug)]
struct Retrans {
    at: Instant,
    tries: u32,
    timeout: Duration,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QmState {
    /// Initiator sent QM1.
    I1,
    /// Responder sent QM2.
    R1,
    /// Done (kept to answer retransmissions).
    Done,
}

#[derive(Debug)]
struct Qm {
    state: QmState,
    iv: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    dh: Option<DhKeyPair>,
    spi_in: u32,
    /// Transform sets as offered (initiator) with the PFS group.
    offered: Vec<EspProposal>,
    chosen: Option<(EspProposal, u32)>,
    ids: (IdPayload, IdPayload),
    retrans: Option<Retrans>,
    last_rx: [u8; 20],
    last_tx: Vec<u8>,
    rekey_of: Option<u32>,
    keys: Option<ChildSaKeys>,
    pfs: Option<DhGroup>,
    /// Start of the exchange (finished exchanges are forgotten after a while).
    started: Instant,
}

#[derive(Debug)]
struct Child {
    keys: ChildSaKeys,
    pfs: Option<DhGroup>,
    initiator: bool,
    created: Instant,
    rekeyed: bool,
}

#[derive(Debug)]
struct Dpd {
    seq: u32,
    outstanding: Option<(u32, Instant, u32)>,
}

struct Sa {
    id: IkeSaId,
    initiator: bool,
    state: P1State,
    cky_i: u64,
    cky_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    suite: Option<Suite>,
    sai_b: Vec<u8>,
    dh: Option<DhKeyPair>,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    psk: Option<Secret>,
    keys: Option<Phase1Keys>,
    iv: Vec<u8>,
    p1_last_block: Vec<u8>,
    peer_nat_t: bool,
    peer_dpd: bool,
    nat_local: bool,
    nat_remote: bool,
    peer_id: Option<Identity>,
    retrans: Option<Retrans>,
    last_rx: [u8; 20],
    last_tx: Vec<u8>,
    started: Instant,
    established: Option<Instant>,
    qms: HashMap<u32, Qm>,
    children: Vec<Child>,
    dpd: Dpd,
    last_heard: Instant,
    next_nat_keepalive: Option<Instant>,
    /// This main mode replaces the ISAKMP SA with that id (phase-1 rekey by the original initiator).
    replaces: Option<IkeSaId>,
    /// The quick-mode parameter set ([`Config::quick_mode`]) this ISAKMP SA's quick modes use: named by
    /// the initiation, or the one the responder matched the peer's last offer with.
    qm_set: usize,
    /// The replacement of this SA has been started.
    p1_rekey_started: bool,
    /// Replaced by our phase-1 rekey: DELETE it then (not at once, so that the peer has adopted its IPsec
    /// SAs into the new ISAKMP SA before the old one goes; charon loses them otherwise).
    retire_at: Option<Instant>,
}

/// How long an ISAKMP SA replaced by our phase-1 rekey lives on before we DELETE it.
const RETIRE_DELAY: Duration = Duration::from_secs(2);

impl Sa {
    fn hash(&self) -> HashAlg {
        self.suite.map_or(HashAlg::Sha1, |s| s.hash)
    }
    fn encr(&self) -> EncrAlg {
        self.suite.map_or(EncrAlg::AesCbc128, |s| s.encr)
    }
    fn cookies(&self) -> Vec<u8> {
        let mut v = self.cky_i.to_be_bytes().to_vec();
        v.extend_from_slice(&self.cky_r.to_be_bytes());
        v
    }
    fn nat(&self) -> bool {
        self.peer_nat_t && (self.nat_local || self.nat_remote)
    }
}

/// `show crypto isakmp sa [detail]` data for one ISAKMP SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpSaSnapshot {
    /// Handle.
    pub id: IkeSaId,
    /// `conn-id` (IOS 15.x numbers from 1001).
    pub conn_id: u64,
    /// `dst`: the responder's address.
    pub dst: SocketAddr,
    /// `src`: the initiator's address.
    pub src: SocketAddr,
    /// `state` (`MM_SA_SETUP`, `MM_KEY_EXCH`, `MM_KEY_AUTH`, `QM_IDLE`).
    pub state: &'static str,
    /// `status` (`ACTIVE`).
    pub status: &'static str,
    /// We initiated.
    pub initiator: bool,
    /// The initiator's cookie (CKY-I): the same at both ends, e.g. to pick one of two duplicate SAs alike.
    pub cky_i: u64,
    /// Cipher (`Encr` in detail).
    pub encr: Option<EncrAlg>,
    /// Hash.
    pub hash: Option<HashAlg>,
    /// DH group number.
    pub dh_group: Option<u16>,
    /// `Auth`: `psk` or `rsig`.
    pub auth: &'static str,
    /// Remaining lifetime (`Lifetime` in detail, hh:mm:ss).
    pub remaining: Duration,
    /// Configured ISAKMP SA lifetime.
    pub lifetime: Duration,
    /// Time since phase 1 completed (zero while negotiating).
    pub active: Duration,
    /// The peer's identity once authenticated.
    pub peer_id: Option<Identity>,
    /// `Cap`: `D` (DPD), `N` (NAT-T in use).
    pub capabilities: String,
    /// IPsec SAs.
    pub children: Vec<ChildSaSnapshot>,
}

/// Renders `show crypto isakmp sa` in the IOS 15.x format (seed digest §3.7 (b)).
pub fn render_isakmp_sa(sas: &[IsakmpSaSnapshot]) -> String {
    let mut s = String::from("IPv4 Crypto ISAKMP SA\n");
    s.push_str(
        "dst                    src                   state                     conn-id  status\n",
    );
    for sa in sas {
        s.push_str(&format!(
            "{:<15} {:<15} {:<17} {:<8} {}\n",
            sa.dst.ip(),
            sa.src.ip(),
            sa.state,
            sa.conn_id,
            sa.status
        ));
    }
    s.push_str("\nIPv6 Crypto ISAKMP SA\n");
    s
}

/// One IKEv1 endpoint (one configuration; many ISAKMP SAs behind UDP 500 and 4500).
pub struct Endpoint {
    config: Config,
    /// `authentication rsa-sig`: our key, certificate and its subject (DER).
    rsa: Option<(rsa::RsaPrivateKey, Vec<u8>, Vec<u8>)>,
    suites: Vec<Suite>,
    rng: Box<dyn Rng + Send>,
    nat_t_port: u16,
    sas: BTreeMap<IkeSaId, Sa>,
    next_id: u64,
    /// The first handle ([`Endpoint::set_first_id`]); `conn-id` counts from it.
    first_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    diagnostics: VecDeque<Diagnostic>,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("v1::Endpoint")
            .field("sas", &self.sas.len())
            .finish()
    }
}

fn digest(b: &[u8]) -> [u8; 20] {
    crate::crypto::sha1(&[b])
}

fn ipv4(a: SocketAddr) -> Ipv4Addr {
    match a.ip() {
        IpAddr::V4(v) => v,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Top-level payloads with their raw bodies (for the `_b` inputs of the hashes); stops at the end of
/// the chain (padding after it is ignored). Also returns the chain's length.
fn raw_bodies(first: PayloadType, bytes: &[u8]) -> (Vec<(PayloadType, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut next = first;
    let mut off = 0usize;
    while next != PayloadType::NONE {
        let Some(h) = bytes.get(off..off + 4) else {
            break;
        };
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let Some(body) = bytes.get(off + 4..off + len.max(4)) else {
            break;
        };
        out.push((next, body));
        next = PayloadType(h[0]);
        off += len.max(4);
    }
    (out, off)
}

impl Endpoint {
    /// A new endpoint. Policies that cannot be used are reported through [`Endpoint::poll_diagnostic`].
    pub fn new(config: Config, mut rng: Box<dyn Rng + Send>) -> Self {
        let (mut suites, bad) = config.suites();
        let mut diagnostics: VecDeque<Diagnostic> = bad
            .into_iter()
            .map(|(priority, refusal)| Diagnostic {
                peer: None,
                reason: DiagnosticReason::PolicySkipped { priority, refusal },
            })
            .collect();
        let rsa = config.rsa.as_ref().and_then(|r| {
            use rsa::pkcs8::DecodePrivateKey;
            let checked = crate::auth::RsaCredential::from_der(r.key_pkcs8.as_bytes(), &r.cert_der)
                .map_err(|e| e.to_string());
            let key = rsa::RsaPrivateKey::from_pkcs8_der(r.key_pkcs8.as_bytes())
                .map_err(|e| e.to_string());
            let subject = match crate::auth::cert_subject(&r.cert_der) {
                Some(Identity::Dn(d)) => Ok(d),
                _ => Err("certificate has no subject".to_string()),
            };
            match (checked, key, subject) {
                (Ok(_), Ok(k), Ok(d)) => Some((k, r.cert_der.clone(), d)),
                (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
                    diagnostics.push_back(Diagnostic {
                        peer: None,
                        reason: DiagnosticReason::Auth(AuthFailure::BadCertificate(e)),
                    });
                    None
                }
            }
        });
        if rsa.is_none() {
            suites.retain(|s| s.auth != AuthMethod::RsaSig);
        }
        let mut b = [0u8; 1];
        rng.fill(&mut b);
        Endpoint {
            config,
            rsa,
            suites,
            rng,
            nat_t_port: NAT_T_PORT,
            sas: BTreeMap::new(),
            next_id: 1,
            first_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            diagnostics,
        }
    }

    /// Numbers this endpoint's ISAKMP SA handles from `first` (default 1), so that an appliance that also
    /// runs an IKEv2 endpoint has one [`IkeSaId`] space for both. Call it before the first SA exists.
    pub fn set_first_id(&mut self, first: u64) {
        if self.sas.is_empty() {
            self.next_id = first;
            self.first_id = first;
        }
    }

    /// Whether `id` is a handle this endpoint hands out (at or after its first id).
    pub fn owns(&self, id: IkeSaId) -> bool {
        id.0 >= self.first_id
    }

    /// The peer's address of ISAKMP SA `id` (None: unknown handle).
    pub fn remote(&self, id: IkeSaId) -> Option<SocketAddr> {
        self.sas.get(&id).map(|s| s.remote)
    }

    /// The peer's NAT rebound it to a new port (RFC 3947 leaves this open; RFC 7296 §2.23 is the IKEv2
    /// rule): authenticated, non-replayed ESP in UDP of an IPsec SA of ISAKMP SA `id` came from `remote`,
    /// the same address on a new port. The ISAKMP SA sends there from now on (DPD, quick modes, DELETEs),
    /// so the IPsec SAs it installs later carry the new port too. Only while NAT traversal is in use and
    /// for the peer's own address; returns whether it moved.
    pub fn peer_moved(&mut self, id: IkeSaId, remote: SocketAddr) -> Result<bool, CommandError> {
        let sa = self.sas.get_mut(&id).ok_or(CommandError::NoSuchSa)?;
        if sa.state != P1State::Established
            || !sa.nat()
            || remote.ip() != sa.remote.ip()
            || remote == sa.remote
        {
            return Ok(false);
        }
        sa.remote = remote;
        Ok(true)
    }

    /// Changes the NAT-T port (default 4500).
    pub fn set_nat_t_port(&mut self, port: u16) {
        self.nat_t_port = port;
    }

    fn random(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }
    fn random_u32(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let v = u32::from_be_bytes(b);
            if v > 255 {
                return v;
            }
        }
    }
    fn random_u64(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let v = u64::from_be_bytes(b);
            if v != 0 {
                return v;
            }
        }
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        let mut payload = Vec::with_capacity(msg.len() + 4);
        if local.port() == self.nat_t_port {
            payload.extend_from_slice(&[0, 0, 0, 0]);
        }
        payload.extend_from_slice(msg);
        self.transmits.push_back(Transmit {
            local,
            remote,
            payload,
        });
    }

    fn diag(&mut self, peer: Option<SocketAddr>, reason: DiagnosticReason) {
        self.diagnostics.push_back(Diagnostic { peer, reason });
    }

    // ---------------------------------------------------------------- proposals

    fn p1_transform(number: u8, s: &Suite) -> Transform {
        Transform {
            number,
            id: 1, // KEY_IKE
            attributes: vec![
                Attribute::Basic(A_ENCR, 7),
                Attribute::Basic(A_KEY_LEN, s.encr.key_bits()),
                Attribute::Basic(A_HASH, s.hash.value()),
                Attribute::Basic(A_AUTH, s.auth.value()),
                Attribute::Basic(A_GROUP, group_number(s.group)),
                Attribute::Basic(A_LIFE_TYPE, 1),
                Attribute::int(A_LIFE_DUR, s.lifetime.as_secs()),
            ],
        }
    }

    fn p1_sa(&self) -> SaPayload {
        SaPayload {
            doi: DOI_IPSEC,
            situation: SIT_IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::ISAKMP,
                spi: vec![],
                transforms: self
                    .suites
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Self::p1_transform((i + 1).min(255) as u8, s))
                    .collect(),
            }],
        }
    }

    /// Reads an offered phase-1 transform.
    fn parse_p1_transform(t: &Transform) -> Result<Suite, Refusal> {
        use super::config::{AuthMethod, PolicyEncryption};
        let encr = match (t.attr(A_ENCR), t.attr(A_KEY_LEN)) {
            (Some(1), _) => PolicyEncryption::Des,
            (Some(5), _) => PolicyEncryption::TripleDes,
            (Some(7), Some(k)) => PolicyEncryption::Aes(k as u16),
            (Some(7), None) => PolicyEncryption::Aes(128),
            (e, _) => return Err(Refusal::Unsupported(format!("IKE encryption {e:?}"))),
        };
        let encr = encr_from(encr)?;
        let hash = match t.attr(A_HASH) {
            Some(1) => {
                return Err(Refusal::Legacy {
                    what: "hash md5 (HMAC-MD5)".into(),
                    replacement: "hash sha256",
                });
            }
            Some(v) => HashAlg::from_value(v)
                .ok_or_else(|| Refusal::Unsupported(format!("IKE hash {v}")))?,
            None => return Err(Refusal::Unsupported("IKE proposal without hash".into())),
        };
        let auth = match t.attr(A_AUTH) {
            Some(1) => AuthMethod::PreShare,
            Some(3) => AuthMethod::RsaSig,
            v => return Err(Refusal::Unsupported(format!("IKE authentication {v:?}"))),
        };
        let group = group_from(t.attr(A_GROUP).unwrap_or(1).min(u64::from(u16::MAX)) as u16)?;
        let lifetime = if t.attr(A_LIFE_TYPE).unwrap_or(1) == 1 {
            Duration::from_secs(t.attr(A_LIFE_DUR).unwrap_or(86400))
        } else {
            Duration::from_secs(86400)
        };
        Ok(Suite {
            encr,
            hash,
            auth,
            group,
            lifetime,
        })
    }

    fn esp_transform(
        &self,
        number: u8,
        p: &EspProposal,
        pfs: Option<DhGroup>,
        udp: bool,
        q: &QuickMode,
    ) -> Transform {
        let (id, bits) = match p.encr {
            EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => (ESP_AES_GCM_16, p.encr.key_bits()),
            _ => (ESP_AES, p.encr.key_bits()),
        };
        //= https://www.rfc-editor.org/rfc/rfc3947#section-5.1
        //# UDP-Encapsulated-Tunnel         3
        //# UDP-Encapsulated-Transport      4
        let encap = match (q.mode, udp) {
            (Mode::Tunnel, false) => 1,
            (Mode::Transport, false) => 2,
            (Mode::Tunnel, true) => 3,
            (Mode::Transport, true) => 4,
        };
        let mut attributes = vec![
            Attribute::Basic(Q_LIFE_TYPE, 1),
            Attribute::int(Q_LIFE_DUR, q.ipsec_lifetime.as_secs()),
            Attribute::Basic(Q_LIFE_TYPE, 2),
            Attribute::int(Q_LIFE_DUR, q.ipsec_lifetime_kb),
            Attribute::Basic(Q_ENCAP, encap),
            Attribute::Basic(Q_KEY_LEN, bits),
        ];
        if let Some(i) = p.integ {
            attributes.push(Attribute::Basic(Q_AUTH, integ_value(i)));
        }
        if let Some(g) = pfs {
            attributes.push(Attribute::Basic(Q_GROUP, group_number(g)));
        }
        Transform {
            number,
            id,
            attributes,
        }
    }

    // ---------------------------------------------------------------- commands

    /// Starts main mode towards `remote` from `local` (UDP 500, or 4500 for NAT-T from the start), then
    /// quick mode for the configured selectors.
    pub fn initiate(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaId, CommandError> {
        self.start_main_mode(now, local, remote, None, 0)
    }

    /// As [`Endpoint::initiate`], with quick-mode parameter set `quick_mode` ([`Config::quick_mode`]).
    pub fn initiate_with(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        quick_mode: usize,
    ) -> Result<IkeSaId, CommandError> {
        if quick_mode >= self.config.quick_mode_count() {
            return Err(CommandError::NoSuchQuickMode(quick_mode));
        }
        self.start_main_mode(now, local, remote, None, quick_mode)
    }

    fn start_main_mode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        replaces: Option<IkeSaId>,
        qm_set: usize,
    ) -> Result<IkeSaId, CommandError> {
        if !remote.is_ipv4() || !local.is_ipv4() {
            return Err(CommandError::Ipv6);
        }
        if self.suites.is_empty() {
            return Err(CommandError::NoUsablePolicy);
        }
        let psk = self.config.lookup_key(ipv4(remote)).cloned();
        if psk.is_none() && self.suites.iter().all(|s| s.auth == AuthMethod::PreShare) {
            return Err(CommandError::NoKey(remote.ip()));
        }
        let id = IkeSaId(self.next_id);
        self.next_id += 1;
        let cky_i = self.random_u64();
        let sa_payload = self.p1_sa();
        let sai_b = Payload::Sa(sa_payload.clone()).body();
        let msg = Message {
            cookie_i: cky_i,
            cookie_r: 0,
            exchange: ExchangeType::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            body: Body::Plain(vec![
                Payload::Sa(sa_payload),
                Payload::VendorId(VID_NAT_T.to_vec()),
                Payload::VendorId(VID_DPD.to_vec()),
            ]),
        }
        .emit();
        let mut sa = self.new_sa(now, id, true, cky_i, 0, local, remote);
        sa.sai_b = sai_b;
        sa.psk = psk;
        sa.state = P1State::I1;
        sa.replaces = replaces;
        sa.qm_set = qm_set;
        self.send_request(now, &mut sa, msg);
        self.sas.insert(id, sa);
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_sa(
        &self,
        now: Instant,
        id: IkeSaId,
        initiator: bool,
        cky_i: u64,
        cky_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Sa {
        Sa {
            id,
            initiator,
            state: P1State::R1,
            cky_i,
            cky_r,
            local,
            remote,
            suite: None,
            sai_b: vec![],
            dh: None,
            gxi: vec![],
            gxr: vec![],
            ni: vec![],
            nr: vec![],
            psk: None,
            keys: None,
            iv: vec![],
            p1_last_block: vec![],
            peer_nat_t: false,
            peer_dpd: false,
            nat_local: false,
            nat_remote: false,
            peer_id: None,
            retrans: None,
            last_rx: [0; 20],
            last_tx: vec![],
            started: now,
            established: None,
            qms: HashMap::new(),
            children: vec![],
            dpd: Dpd {
                seq: 0,
                outstanding: None,
            },
            last_heard: now,
            next_nat_keepalive: None,
            replaces: None,
            qm_set: 0,
            p1_rekey_started: false,
            retire_at: None,
        }
    }

    fn send_request(&mut self, now: Instant, sa: &mut Sa, msg: Vec<u8>) {
        self.send(sa.local, sa.remote, &msg);
        let timeout = self.config.retransmit.initial;
        sa.retrans = Some(Retrans {
            at: now + timeout,
            tries: 1,
            timeout,
            payload: msg.clone(),
        });
        sa.last_tx = msg;
    }

    /// Deletes an ISAKMP SA and its IPsec SAs (DELETE notifications to the peer).
    pub fn delete_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        let mut sa = self.sas.remove(&id).ok_or(CommandError::NoSuchSa)?;
        if sa.state == P1State::Established {
            let spis: Vec<Vec<u8>> = sa
                .children
                .iter()
                .map(|c| c.keys.spi_in.to_be_bytes().to_vec())
                .collect();
            if !spis.is_empty() {
                self.send_info(
                    now,
                    &mut sa,
                    vec![Payload::Delete(DeletePayload {
                        doi: DOI_IPSEC,
                        protocol: ProtocolId::ESP,
                        spi_size: 4,
                        spis,
                    })],
                );
            }
            let ck = sa.cookies();
            self.send_info(
                now,
                &mut sa,
                vec![Payload::Delete(DeletePayload {
                    doi: DOI_IPSEC,
                    protocol: ProtocolId::ISAKMP,
                    spi_size: 16,
                    spis: vec![ck],
                })],
            );
        }
        self.finish(sa, DeleteReason::LocalRequest);
        Ok(())
    }

    /// On-demand DPD (`crypto isakmp keepalive ... on-demand`): the appliance has sent traffic and
    /// heard nothing; sends R-U-THERE unless one is outstanding.
    pub fn dpd_probe(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        let mut sa = self.sas.remove(&id).ok_or(CommandError::NoSuchSa)?;
        if sa.state == P1State::Established && sa.dpd.outstanding.is_none() {
            self.send_dpd(now, &mut sa, 0);
        }
        self.sas.insert(id, sa);
        Ok(())
    }

    /// ESP arrived for inbound SPI `spi_in`. When that is the SPI of a quick mode this endpoint answered
    /// and whose third message (the initiator's HASH(3)) has not been seen yet, the initiator evidently
    /// holds the keys (it installs them on our second message and only then sends with them), and the
    /// third message may simply still be on its way on the other socket: the IPsec SA is installed now
    /// (`ChildSaEstablished`), as it would be by the third message, which then only ends the exchange.
    /// Without this the first packets the initiator queued for the new SA (e.g. the NHRP registration that
    /// started it) are lost as ESP with an unknown SPI. Returns true when an SA was installed.
    pub fn inbound_esp(&mut self, now: Instant, spi_in: u32) -> bool {
        let found = self.sas.iter().find_map(|(id, sa)| {
            sa.qms
                .iter()
                .find(|(_, q)| {
                    q.state == QmState::R1 && q.keys.as_ref().is_some_and(|k| k.spi_in == spi_in)
                })
                .map(|(mid, _)| (*id, *mid))
        });
        let Some((id, mid)) = found else {
            return false;
        };
        let Some(mut sa) = self.sas.remove(&id) else {
            return false;
        };
        let mut installed = false;
        if let Some(q) = sa.qms.get_mut(&mid) {
            q.state = QmState::Done;
            q.retrans = None;
            q.last_tx = vec![];
            if let Some(keys) = q.keys.take() {
                let pfs = q.pfs;
                self.install_child(now, &mut sa, keys, pfs, false, None);
                installed = true;
            }
        }
        self.sas.insert(id, sa);
        installed
    }

    /// Starts a new quick mode to replace the IPsec SA with inbound SPI `spi_in`.
    pub fn rekey_child(
        &mut self,
        now: Instant,
        id: IkeSaId,
        spi_in: u32,
    ) -> Result<(), CommandError> {
        let mut sa = self.sas.remove(&id).ok_or(CommandError::NoSuchSa)?;
        if sa.state == P1State::Established {
            self.start_qm(now, &mut sa, Some(spi_in));
        }
        self.sas.insert(id, sa);
        Ok(())
    }

    fn finish(&mut self, sa: Sa, reason: DeleteReason) {
        for c in &sa.children {
            self.events.push_back(Event::ChildSaDeleted {
                ike_sa: sa.id,
                spi_in: c.keys.spi_in,
                spi_out: c.keys.spi_out,
            });
        }
        self.events.push_back(Event::IkeSaDeleted {
            ike_sa: sa.id,
            reason,
        });
    }

    fn fail(&mut self, sa: Sa, reason: DeleteReason, diag: DiagnosticReason) {
        self.diag(Some(sa.remote), diag);
        self.finish(sa, reason);
    }

    /// Sends an unencrypted informational notify (before keys exist, or when they are wrong).
    fn send_plain_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        cky_i: u64,
        cky_r: u64,
        kind: NotifyType,
    ) {
        let mut spi = cky_i.to_be_bytes().to_vec();
        spi.extend_from_slice(&cky_r.to_be_bytes());
        let m = Message {
            cookie_i: cky_i,
            cookie_r: cky_r,
            exchange: ExchangeType::INFORMATIONAL,
            flags: 0,
            message_id: 0,
            body: Body::Plain(vec![Payload::Notify(NotifyPayload {
                doi: DOI_IPSEC,
                protocol: ProtocolId::ISAKMP,
                kind,
                spi,
                data: vec![],
            })]),
        }
        .emit();
        self.send(local, remote, &m);
    }

    // ---------------------------------------------------------------- crypto helpers

    fn encrypt(sa: &Sa, iv: &mut Vec<u8>, payloads: &[Payload]) -> (PayloadType, Vec<u8>) {
        let mut pt = Vec::new();
        let first = emit_chain(payloads, &mut pt);
        //= https://www.rfc-editor.org/rfc/rfc2409#section-5.3
        //# Encrypted payloads are padded up to the nearest block size.
        while !pt.len().is_multiple_of(16) {
            pt.push(0);
        }
        let key = sa.keys.as_ref().map_or(&[][..], |k| k.enc_key.as_bytes());
        if sa.encr().cbc_encrypt(key, iv, &mut pt).is_ok()
            && let Some(last) = pt.len().checked_sub(16).and_then(|s| pt.get(s..))
        {
            *iv = last.to_vec();
        }
        (first, pt)
    }

    /// Decrypts; returns the plaintext and the IV for the next message (the caller commits it only when
    /// the message authenticates).
    fn decrypt(sa: &Sa, iv: &[u8], ct: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        if ct.is_empty() || !ct.len().is_multiple_of(16) {
            return None;
        }
        let next_iv = ct.get(ct.len() - 16..)?.to_vec();
        let mut pt = ct.to_vec();
        let key = sa.keys.as_ref()?.enc_key.as_bytes();
        sa.encr().cbc_decrypt(key, iv, &mut pt).ok()?;
        Some((pt, next_iv))
    }

    fn encrypted_msg(
        sa: &Sa,
        exchange: ExchangeType,
        mid: u32,
        first: PayloadType,
        ct: Vec<u8>,
    ) -> Vec<u8> {
        Message {
            cookie_i: sa.cky_i,
            cookie_r: sa.cky_r,
            exchange,
            flags: 0,
            message_id: mid,
            body: Body::Encrypted(first, ct),
        }
        .emit()
    }

    /// Sends an informational exchange (HASH(1) protected) with `payloads`.
    fn send_info(&mut self, _now: Instant, sa: &mut Sa, payloads: Vec<Payload>) {
        let Some(k) = sa.keys.as_ref() else { return };
        let mid = self.random_u32();
        let mut rest = Vec::new();
        emit_chain(&payloads, &mut rest);
        //= https://www.rfc-editor.org/rfc/rfc2409#section-5.7
        //# HASH(1) = prf(SKEYID_a, M-ID | N/D)
        let h = keys::qm_hash1(sa.hash().prf(), k.skeyid_a.as_bytes(), mid, &rest);
        let mut all = vec![Payload::Hash(h)];
        all.extend(payloads);
        let mut iv = keys::phase2_iv(sa.hash(), &sa.p1_last_block, mid, 16);
        let (first, ct) = Self::encrypt(sa, &mut iv, &all);
        let m = Self::encrypted_msg(sa, ExchangeType::INFORMATIONAL, mid, first, ct);
        self.send(sa.local, sa.remote, &m);
    }

    fn send_dpd(&mut self, now: Instant, sa: &mut Sa, retries: u32) {
        if retries == 0 {
            sa.dpd.seq = sa.dpd.seq.wrapping_add(1);
        }
        let seq = sa.dpd.seq;
        let ck = sa.cookies();
        // See https://www.rfc-editor.org/rfc/rfc3706#section-5.2
        // (paraphrase) the SPI field of the R-U-THERE and R-U-THERE-ACK notify ... CKY-I | CKY-R
        self.send_info(
            now,
            sa,
            vec![Payload::Notify(NotifyPayload {
                doi: DOI_IPSEC,
                protocol: ProtocolId::ISAKMP,
                kind: NotifyType::R_U_THERE,
                spi: ck,
                data: seq.to_be_bytes().to_vec(),
            })],
        );
        let retry = self
            .config
            .keepalive
            .map_or(Duration::from_secs(2), |k| k.retry);
        sa.dpd.outstanding = Some((seq, now + retry, retries));
    }

    // ---------------------------------------------------------------- input

    /// Feeds one UDP payload received on `local` from `remote`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) {
        let data = if local.port() == self.nat_t_port {
            //= https://www.rfc-editor.org/rfc/rfc3948#section-2.2
            //# The sender MUST use a one-octet-long payload with the value 0xFF.
            if datagram == [0xff] {
                return;
            }
            match datagram.split_first_chunk::<4>() {
                Some(([0, 0, 0, 0], rest)) => rest,
                _ => return,
            }
        } else {
            datagram
        };
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        let found = self
            .sas
            .values()
            .find(|s| {
                s.cky_i == msg.cookie_i
                    && (s.cky_r == msg.cookie_r || (s.state == P1State::I1 && s.initiator))
            })
            .map(|s| s.id);
        let Some(id) = found else {
            // A retransmitted MM1 (no responder cookie yet in it): answer with our MM2 again.
            let dup = self
                .sas
                .values()
                .find(|s| {
                    !s.initiator
                        && s.state == P1State::R1
                        && s.cky_i == msg.cookie_i
                        && msg.cookie_r == 0
                        && s.remote == remote
                })
                .map(|s| (s.local, s.remote, s.last_tx.clone()));
            if let Some((l, r, tx)) = dup {
                self.send(l, r, &tx);
                return;
            }
            self.on_unknown(now, local, remote, msg);
            return;
        };
        let Some(mut sa) = self.sas.remove(&id) else {
            return;
        };
        sa.last_heard = now;
        let keep = self.on_message(now, &mut sa, local, remote, msg, data);
        if keep {
            self.sas.insert(sa.id, sa);
        }
    }

    fn on_unknown(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, msg: Message) {
        if msg.cookie_r != 0 {
            return;
        }
        match msg.exchange {
            ExchangeType::IDENTITY_PROTECTION => self.on_mm1(now, local, remote, msg),
            // See https://www.rfc-editor.org/rfc/rfc2409#section-5
            // (paraphrase) Aggressive Mode ... does not provide identity protection
            ExchangeType::AGGRESSIVE => {
                self.diag(Some(remote), DiagnosticReason::AggressiveModeRefused);
                self.send_plain_notify(
                    local,
                    remote,
                    msg.cookie_i,
                    0,
                    NotifyType::INVALID_EXCHANGE_TYPE,
                );
            }
            _ => {}
        }
    }

    fn on_mm1(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, msg: Message) {
        let ps = msg.payloads();
        let Some(Payload::Sa(offer)) = ps.first() else {
            return;
        };
        if !remote.is_ipv4() {
            return;
        }
        let mut refusals = Vec::new();
        let mut chosen = None;
        'outer: for p in &offer.proposals {
            if p.protocol != ProtocolId::ISAKMP {
                continue;
            }
            for t in &p.transforms {
                match Self::parse_p1_transform(t) {
                    Ok(s) => {
                        // See https://www.cisco.com/c/en/us/td/docs/ios-xml/ios/sec_conn_ikevpn/configuration/xe-16/sec-ike-for-ipsec-vpns-xe-16-book.html
                        // (paraphrase) the remote peer's policy must specify a lifetime that is less than or equal to
                        //   the lifetime in the policy being compared
                        if self.suites.iter().any(|m| {
                            m.encr == s.encr
                                && m.hash == s.hash
                                && m.auth == s.auth
                                && m.group == s.group
                                && s.lifetime <= m.lifetime
                        }) {
                            chosen = Some((p.number, t.clone(), s));
                            break 'outer;
                        }
                        refusals.push(Refusal::Unsupported(format!(
                            "proposal {:?}/{:?}/{:?}/group {} (no matching crypto isakmp policy)",
                            s.encr,
                            s.hash,
                            s.auth,
                            group_number(s.group)
                        )));
                    }
                    Err(r) => refusals.push(r),
                }
            }
        }
        let Some((pnum, t, suite)) = chosen else {
            self.diag(Some(remote), DiagnosticReason::NoProposalChosen(refusals));
            self.send_plain_notify(
                local,
                remote,
                msg.cookie_i,
                0,
                NotifyType::NO_PROPOSAL_CHOSEN,
            );
            return;
        };
        let psk = self.config.lookup_key(ipv4(remote)).cloned();
        if psk.is_none() && suite.auth == AuthMethod::PreShare {
            self.diag(
                Some(remote),
                DiagnosticReason::Auth(AuthFailure::NoKey(remote.ip().to_string())),
            );
            self.send_plain_notify(
                local,
                remote,
                msg.cookie_i,
                0,
                NotifyType::AUTHENTICATION_FAILED,
            );
            return;
        }
        let id = IkeSaId(self.next_id);
        self.next_id += 1;
        let cky_r = self.random_u64();
        let mut sa = self.new_sa(now, id, false, msg.cookie_i, cky_r, local, remote);
        sa.sai_b = Payload::Sa(offer.clone()).body();
        sa.suite = Some(suite);
        sa.psk = psk;
        sa.state = P1State::R1;
        for p in ps {
            if let Payload::VendorId(v) = p {
                sa.peer_nat_t |= v.as_slice() == VID_NAT_T;
                sa.peer_dpd |= v.as_slice() == VID_DPD;
            }
        }
        let reply = Message {
            cookie_i: sa.cky_i,
            cookie_r: sa.cky_r,
            exchange: ExchangeType::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            body: Body::Plain(vec![
                Payload::Sa(SaPayload {
                    doi: DOI_IPSEC,
                    situation: offer.situation,
                    proposals: vec![Proposal {
                        number: pnum,
                        protocol: ProtocolId::ISAKMP,
                        spi: vec![],
                        transforms: vec![t],
                    }],
                }),
                Payload::VendorId(VID_NAT_T.to_vec()),
                Payload::VendorId(VID_DPD.to_vec()),
            ]),
        }
        .emit();
        self.send(local, remote, &reply);
        sa.last_tx = reply;
        // Half-open: dropped after the initiator's whole retransmission schedule.
        sa.retrans = Some(Retrans {
            at: now + self.half_open_timeout(),
            tries: u32::MAX,
            timeout: Duration::ZERO,
            payload: vec![],
        });
        self.sas.insert(id, sa);
    }

    fn half_open_timeout(&self) -> Duration {
        let r = self.config.retransmit;
        let mut t = Duration::ZERO;
        let mut d = r.initial;
        for _ in 0..r.max_tries {
            t += d;
            d = (d * 2).min(r.max_timeout);
        }
        t
    }

    /// Returns false when the SA is gone.
    fn on_message(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        local: SocketAddr,
        remote: SocketAddr,
        msg: Message,
        raw: &[u8],
    ) -> bool {
        let d = digest(raw);
        if sa.initiator
            && sa.state == P1State::I1
            && msg.exchange == ExchangeType::IDENTITY_PROTECTION
        {
            sa.cky_r = msg.cookie_r;
        }
        // Retransmitted request: answer with our last message of that exchange.
        if msg.exchange == ExchangeType::IDENTITY_PROTECTION && d == sa.last_rx {
            if !sa.last_tx.is_empty() && !sa.initiator {
                let tx = sa.last_tx.clone();
                self.send(sa.local, sa.remote, &tx);
            }
            return true;
        }
        if msg.exchange == ExchangeType::QUICK_MODE
            && let Some(q) = sa.qms.get(&msg.message_id)
            && q.last_rx == d
        {
            let tx = q.last_tx.clone();
            self.send(sa.local, sa.remote, &tx);
            return true;
        }
        match (msg.exchange, &msg.body) {
            (ExchangeType::INFORMATIONAL, Body::Plain(ps)) => {
                // Unprotected: only believed while phase 1 is in progress (RFC 2408 §5.14 leaves it to
                // the implementation); an established SA ignores it.
                if sa.state != P1State::Established {
                    for p in ps {
                        if let Payload::Notify(n) = p
                            && n.kind.is_error()
                        {
                            let reason = if n.kind == NotifyType::AUTHENTICATION_FAILED {
                                self.events.push_back(Event::AuthFailed {
                                    peer: sa.remote,
                                    reason: AuthFailure::PeerRejected,
                                });
                                DeleteReason::AuthFailed(AuthFailure::PeerRejected)
                            } else {
                                DeleteReason::NegotiationFailed(crate::wire::NotifyType(n.kind.0))
                            };
                            let sa = core::mem::replace(
                                sa,
                                self.new_sa(now, sa.id, false, 0, 0, local, remote),
                            );
                            self.fail(sa, reason, DiagnosticReason::PeerError(n.kind));
                            return false;
                        }
                    }
                }
                true
            }
            (ExchangeType::IDENTITY_PROTECTION, Body::Plain(ps)) => {
                let ps = ps.clone();
                self.on_mm_plain(now, sa, local, remote, &ps, raw, d)
            }
            (ExchangeType::IDENTITY_PROTECTION, Body::Encrypted(first, ct)) => {
                let (first, ct) = (*first, ct.clone());
                self.on_mm_encrypted(now, sa, local, remote, first, &ct, d)
            }
            (ExchangeType::QUICK_MODE, Body::Encrypted(first, ct))
                if sa.state == P1State::Established =>
            {
                let (first, ct) = (*first, ct.clone());
                self.on_qm(now, sa, msg.message_id, first, &ct, d);
                true
            }
            (ExchangeType::INFORMATIONAL, Body::Encrypted(first, ct))
                if sa.state == P1State::Established =>
            {
                let (first, ct) = (*first, ct.clone());
                self.on_info(now, sa, msg.message_id, first, &ct)
            }
            _ => true,
        }
    }

    fn nat_d_payloads(&self, sa: &Sa) -> Vec<Payload> {
        let h = sa.hash();
        // See https://www.rfc-editor.org/rfc/rfc3947#section-3.2
        // (paraphrase) The first NAT-D payload contains the remote end's IP address and port
        vec![
            Payload::NatD(keys::nat_d(h, sa.cky_i, sa.cky_r, sa.remote)),
            Payload::NatD(keys::nat_d(h, sa.cky_i, sa.cky_r, sa.local)),
        ]
    }

    fn detect_nat(sa: &mut Sa, ps: &[Payload]) {
        let nds: Vec<&Vec<u8>> = ps
            .iter()
            .filter_map(|p| {
                if let Payload::NatD(d) = p {
                    Some(d)
                } else {
                    None
                }
            })
            .collect();
        if let Some((first, rest)) = nds.split_first() {
            let h = sa.hash();
            sa.nat_local = **first != keys::nat_d(h, sa.cky_i, sa.cky_r, sa.local);
            let theirs = keys::nat_d(h, sa.cky_i, sa.cky_r, sa.remote);
            sa.nat_remote = !rest.iter().any(|d| **d == theirs);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_mm_plain(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        _local: SocketAddr,
        _remote: SocketAddr,
        ps: &[Payload],
        _raw: &[u8],
        d: [u8; 20],
    ) -> bool {
        match sa.state {
            P1State::I1 => {
                // MM2: the responder's choice.
                let Some(Payload::Sa(sa_p)) = ps.first() else {
                    return true;
                };
                let chosen = sa_p
                    .proposals
                    .first()
                    .and_then(|p| p.transforms.first())
                    .map(Self::parse_p1_transform);
                let suite = match chosen {
                    Some(Ok(s))
                        if self.suites.iter().any(|m| {
                            m.encr == s.encr
                                && m.hash == s.hash
                                && m.group == s.group
                                && m.auth == s.auth
                        }) =>
                    {
                        s
                    }
                    _ => {
                        let sa = self.take(sa, now);
                        self.fail(
                            sa,
                            DeleteReason::NegotiationFailed(
                                crate::wire::NotifyType::NO_PROPOSAL_CHOSEN,
                            ),
                            DiagnosticReason::NoProposalChosen(vec![Refusal::Unsupported(
                                "the responder's choice (not one we offered)".into(),
                            )]),
                        );
                        return false;
                    }
                };
                let Some(Payload::Sa(_)) = ps.first() else {
                    return true;
                };
                // The responder's cookie is in the header we matched on; take it from the last message.
                sa.suite = Some(suite);
                for p in ps {
                    if let Payload::VendorId(v) = p {
                        sa.peer_nat_t |= v.as_slice() == VID_NAT_T;
                        sa.peer_dpd |= v.as_slice() == VID_DPD;
                    }
                }
                let dh = suite.group.generate(&mut *self.rng);
                sa.gxi = dh.public().to_vec();
                sa.dh = Some(dh);
                sa.ni = self.random(NONCE_LEN);
                let mut out = vec![Payload::Ke(sa.gxi.clone()), Payload::Nonce(sa.ni.clone())];
                if suite.auth == AuthMethod::RsaSig {
                    out.push(Payload::CertReq(CERT_X509_SIG, vec![]));
                }
                if sa.peer_nat_t {
                    out.extend(self.nat_d_payloads(sa));
                }
                sa.last_rx = d;
                sa.state = P1State::I2;
                let m = Self::plain_msg(sa, out);
                self.send_request(now, sa, m);
                true
            }
            P1State::R1 => {
                // MM3.
                let (Some(gxi), Some(ni)) = (find_ke(ps), find_nonce(ps)) else {
                    return true;
                };
                let Some(suite) = sa.suite else { return true };
                let dh = suite.group.generate(&mut *self.rng);
                let Ok(gxy) = dh.agree(gxi) else {
                    self.send_plain_notify(
                        sa.local,
                        sa.remote,
                        sa.cky_i,
                        sa.cky_r,
                        NotifyType::INVALID_KEY_INFORMATION,
                    );
                    let sa = self.take(sa, now);
                    self.fail(
                        sa,
                        DeleteReason::NegotiationFailed(
                            crate::wire::NotifyType::INVALID_KE_PAYLOAD,
                        ),
                        DiagnosticReason::PeerError(NotifyType::INVALID_KEY_INFORMATION),
                    );
                    return false;
                };
                sa.gxi = gxi.to_vec();
                sa.gxr = dh.public().to_vec();
                sa.ni = ni.to_vec();
                sa.nr = self.random(NONCE_LEN);
                Self::detect_nat(sa, ps);
                self.derive_p1(sa, &gxy);
                let mut out = vec![Payload::Ke(sa.gxr.clone()), Payload::Nonce(sa.nr.clone())];
                if suite.auth == AuthMethod::RsaSig {
                    out.push(Payload::CertReq(CERT_X509_SIG, vec![]));
                }
                if sa.peer_nat_t {
                    out.extend(self.nat_d_payloads(sa));
                }
                sa.dh = Some(dh);
                sa.last_rx = d;
                sa.state = P1State::R2;
                let m = Self::plain_msg(sa, out);
                self.send(sa.local, sa.remote, &m);
                sa.last_tx = m;
                true
            }
            P1State::I2 => {
                // MM4.
                let (Some(gxr), Some(nr)) = (find_ke(ps), find_nonce(ps)) else {
                    return true;
                };
                let agreed = sa.dh.as_ref().map(|k| k.agree(gxr));
                let Some(Ok(gxy)) = agreed else {
                    let sa = self.take(sa, now);
                    self.fail(
                        sa,
                        DeleteReason::NegotiationFailed(
                            crate::wire::NotifyType::INVALID_KE_PAYLOAD,
                        ),
                        DiagnosticReason::PeerError(NotifyType::INVALID_KEY_INFORMATION),
                    );
                    return false;
                };
                sa.gxr = gxr.to_vec();
                sa.nr = nr.to_vec();
                Self::detect_nat(sa, ps);
                self.derive_p1(sa, &gxy);
                // See https://www.rfc-editor.org/rfc/rfc3947#section-4
                // (paraphrase) the initiator MUST change ports when sending the ID payload if there is NAT between the hosts
                if sa.nat() && sa.local.port() != self.nat_t_port {
                    sa.local.set_port(self.nat_t_port);
                    sa.remote.set_port(NAT_T_PORT);
                }
                let mut out = self.auth_payloads(sa, true);
                if self.config.initial_contact && !self.has_other_sa(sa) {
                    out.push(Payload::Notify(NotifyPayload {
                        doi: DOI_IPSEC,
                        protocol: ProtocolId::ISAKMP,
                        kind: NotifyType::INITIAL_CONTACT,
                        spi: sa.cookies(),
                        data: vec![],
                    }));
                }
                let mut iv = sa.iv.clone();
                let (first, ct) = Self::encrypt(sa, &mut iv, &out);
                sa.iv = iv;
                sa.last_rx = d;
                sa.state = P1State::I3;
                let m = Self::encrypted_msg(sa, ExchangeType::IDENTITY_PROTECTION, 0, first, ct);
                self.send_request(now, sa, m);
                true
            }
            _ => true,
        }
    }

    /// RFC 2409 keeps phase-2 SAs independent of the ISAKMP SA that made them: when `sa` goes, its
    /// IPsec SAs move to the newest established ISAKMP SA with the same peer, if there is one.
    fn pass_children_to_heir(&mut self, sa: &mut Sa) {
        let heir = self
            .sas
            .values_mut()
            .filter(|o| o.state == P1State::Established && o.remote.ip() == sa.remote.ip())
            .max_by_key(|o| o.established);
        if let Some(heir) = heir {
            heir.children.append(&mut sa.children);
        }
    }

    /// Ends our ISAKMP SA `sa`: its IPsec SAs go to an heir, the peer gets a DELETE, `sa` is finished.
    fn retire(&mut self, now: Instant, sa: &mut Sa, reason: DeleteReason) {
        self.pass_children_to_heir(sa);
        let ck = sa.cookies();
        self.send_info(
            now,
            sa,
            vec![Payload::Delete(DeletePayload {
                doi: DOI_IPSEC,
                protocol: ProtocolId::ISAKMP,
                spi_size: 16,
                spis: vec![ck],
            })],
        );
        let sa = self.take(sa, now);
        self.finish(sa, reason);
    }

    fn take(&self, sa: &mut Sa, now: Instant) -> Sa {
        let (id, l, r) = (sa.id, sa.local, sa.remote);
        core::mem::replace(sa, self.new_sa(now, id, false, 0, 0, l, r))
    }

    fn has_other_sa(&self, sa: &Sa) -> bool {
        self.sas.values().any(|o| {
            o.id != sa.id && o.remote.ip() == sa.remote.ip() && o.state == P1State::Established
        })
    }

    fn local_id(&self, sa: &Sa) -> IdPayload {
        //= https://www.rfc-editor.org/rfc/rfc2407#section-4.6.2
        //# During Phase I negotiations, the ID port and protocol fields MUST be set to zero or to UDP port 500.
        IdPayload {
            id_type: IdType::IPV4_ADDR,
            protocol: 17,
            port: 500,
            data: ipv4(sa.local).octets().to_vec(),
        }
    }

    /// ID and HASH (pre-shared key) or ID, CERT and SIG (signatures) for MM5 / MM6.
    fn auth_payloads(&mut self, sa: &Sa, initiator: bool) -> Vec<Payload> {
        let rsa = sa.suite.is_some_and(|s| s.auth == AuthMethod::RsaSig);
        let id = match (&self.rsa, rsa) {
            (Some((_, _, dn)), true) => IdPayload {
                id_type: IdType::DER_ASN1_DN,
                protocol: 0,
                port: 0,
                data: dn.clone(),
            },
            _ => self.local_id(sa),
        };
        let id_b = Payload::Id(id.clone()).body();
        let k = sa.keys.as_ref().map_or(&[][..], |k| k.skeyid.as_bytes());
        let prf = sa.hash().prf();
        let h = if initiator {
            keys::hash_i(
                prf, k, &sa.gxi, &sa.gxr, sa.cky_i, sa.cky_r, &sa.sai_b, &id_b,
            )
        } else {
            keys::hash_r(
                prf, k, &sa.gxi, &sa.gxr, sa.cky_i, sa.cky_r, &sa.sai_b, &id_b,
            )
        };
        match (&self.rsa, rsa) {
            (Some((key, cert, _)), true) => {
                //= https://www.rfc-editor.org/rfc/rfc2409#section-5.1
                //# SIG_I and SIG_R are the result of applying the negotiated digital signature
                //# algorithm to HASH_I and HASH_R respectively.
                // RSA: PKCS#1 v1.5 over the raw hash, no DigestInfo (what IOS and strongSwan do).
                let mut r = BlindingRng(&mut *self.rng);
                let sig = key
                    .sign_with_rng(&mut r, rsa::Pkcs1v15Sign::new_unprefixed(), &h)
                    .unwrap_or_default();
                vec![
                    Payload::Id(id),
                    Payload::Cert(CERT_X509_SIG, cert.clone()),
                    Payload::Sig(sig),
                ]
            }
            _ => vec![Payload::Id(id), Payload::Hash(h)],
        }
    }

    /// Checks HASH (PSK) or CERT + SIG (signatures, with a pinned certificate whose subject is the ID).
    fn verify_peer(
        &self,
        sa: &Sa,
        ps: &[Payload],
        id: &IdPayload,
        want: &[u8],
    ) -> Result<IdPayload, AuthFailure> {
        use subtle::ConstantTimeEq;
        if !sa.suite.is_some_and(|s| s.auth == AuthMethod::RsaSig) {
            let hash = ps
                .iter()
                .find_map(|p| {
                    if let Payload::Hash(h) = p {
                        Some(h)
                    } else {
                        None
                    }
                })
                .ok_or(AuthFailure::Missing("HASH"))?;
            return if want.len() == hash.len() && bool::from(want.ct_eq(hash)) {
                Ok(id.clone())
            } else {
                Err(AuthFailure::BadPsk)
            };
        }
        let cert = ps
            .iter()
            .find_map(|p| match p {
                Payload::Cert(CERT_X509_SIG, c) => Some(c),
                _ => None,
            })
            .ok_or(AuthFailure::Missing("CERT"))?;
        let sig = ps
            .iter()
            .find_map(|p| {
                if let Payload::Sig(s) = p {
                    Some(s)
                } else {
                    None
                }
            })
            .ok_or(AuthFailure::Missing("SIG"))?;
        let key = crate::auth::cert_public_key(cert)
            .map_err(|e| AuthFailure::BadCertificate(e.to_string()))?;
        key.verify(rsa::Pkcs1v15Sign::new_unprefixed(), want, sig)
            .map_err(|_| AuthFailure::BadSignature)?;
        let fp = Fingerprint::of_cert(cert);
        let trusted = self
            .config
            .rsa
            .as_ref()
            .is_some_and(|r| r.trusted_certs.iter().any(|t| t.ct_eq(&fp)));
        if !trusted {
            return Err(AuthFailure::UntrustedCertificate(fp));
        }
        let subject = crate::auth::cert_subject(cert);
        let claimed = Identity::Dn(id.data.clone());
        if id.id_type == IdType::DER_ASN1_DN && !subject.is_some_and(|s| s.matches(&claimed)) {
            return Err(AuthFailure::IdentityMismatch(claimed.to_string()));
        }
        Ok(id.clone())
    }

    fn plain_msg(sa: &Sa, payloads: Vec<Payload>) -> Vec<u8> {
        Message {
            cookie_i: sa.cky_i,
            cookie_r: sa.cky_r,
            exchange: ExchangeType::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            body: Body::Plain(payloads),
        }
        .emit()
    }

    fn derive_p1(&mut self, sa: &mut Sa, gxy: &Secret) {
        let Some(suite) = sa.suite else { return };
        let prf = suite.hash.prf();
        let skeyid = if suite.auth == AuthMethod::RsaSig {
            keys::skeyid_sig(prf, &sa.ni, &sa.nr, gxy.as_bytes())
        } else {
            let psk = sa.psk.as_ref().map_or(&[][..], |p| p.as_bytes());
            keys::skeyid_psk(prf, psk, &sa.ni, &sa.nr)
        };
        sa.keys = Some(keys::phase1_keys(
            prf,
            skeyid,
            gxy.as_bytes(),
            sa.cky_i,
            sa.cky_r,
            suite.encr,
        ));
        sa.iv = keys::phase1_iv(suite.hash, &sa.gxi, &sa.gxr, 16);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_mm_encrypted(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        local: SocketAddr,
        remote: SocketAddr,
        first: PayloadType,
        ct: &[u8],
        d: [u8; 20],
    ) -> bool {
        let expect_i = match sa.state {
            P1State::R2 => true,
            P1State::I3 => false,
            _ => return true,
        };
        let dec = Self::decrypt(sa, &sa.iv, ct);
        let parsed = dec
            .as_ref()
            .and_then(|(pt, _)| parse_chain(first, pt, true).ok().map(|ps| (ps, pt)));
        let ok = parsed.as_ref().and_then(|(ps, pt)| {
            let (raw, _) = raw_bodies(first, pt);
            let id_b = raw.iter().find(|(t, _)| *t == PayloadType::ID)?.1.to_vec();
            let Payload::Id(id) = ps.iter().find(|p| p.kind() == PayloadType::ID)? else {
                return None;
            };
            let k = sa.keys.as_ref()?.skeyid.as_bytes();
            let prf = sa.hash().prf();
            let want = if expect_i {
                keys::hash_i(
                    prf, k, &sa.gxi, &sa.gxr, sa.cky_i, sa.cky_r, &sa.sai_b, &id_b,
                )
            } else {
                keys::hash_r(
                    prf, k, &sa.gxi, &sa.gxr, sa.cky_i, sa.cky_r, &sa.sai_b, &id_b,
                )
            };
            Some(self.verify_peer(sa, ps, id, &want))
        });
        let rsa = sa.suite.is_some_and(|s| s.auth == AuthMethod::RsaSig);
        let (peer_id, failure) = match ok {
            Some(Ok(id)) => (Some(id), AuthFailure::BadPsk),
            Some(Err(f)) => (None, f),
            None if rsa => (None, AuthFailure::BadSignature),
            None => (None, AuthFailure::BadPsk),
        };
        let Some(peer_id) = peer_id else {
            // See https://www.rfc-editor.org/rfc/rfc2409#section-5
            // A wrong pre-shared key gives a wrong SKEYID_e and SKEYID: MM5/MM6 decrypt to garbage or the
            // HASH does not verify.
            self.events.push_back(Event::AuthFailed {
                peer: remote,
                reason: failure.clone(),
            });
            if expect_i {
                self.send_plain_notify(
                    local,
                    remote,
                    sa.cky_i,
                    sa.cky_r,
                    NotifyType::AUTHENTICATION_FAILED,
                );
            }
            let sa = self.take(sa, now);
            self.fail(
                sa,
                DeleteReason::AuthFailed(failure.clone()),
                DiagnosticReason::Auth(failure),
            );
            return false;
        };
        let Some(next_iv) = dec.as_ref().map(|(_, iv)| iv.clone()) else {
            return true;
        };
        let ps = parsed.map(|(p, _)| p).unwrap_or_default();
        sa.iv = next_iv;
        sa.last_rx = d;
        sa.peer_id = Some(Identity::from_wire(&crate::wire::Identification {
            id_type: crate::wire::IdType(match peer_id.id_type {
                IdType::IPV4_ADDR => 1,
                IdType::FQDN => 2,
                IdType::USER_FQDN => 3,
                IdType::DER_ASN1_DN => 9,
                IdType::KEY_ID => 11,
                t => t.0,
            }),
            data: peer_id.data.clone(),
        }));
        if expect_i {
            // MM5 received (perhaps on the NAT-T port now: follow it).
            sa.local = local;
            sa.remote = remote;
            let initial_contact = ps
                .iter()
                .any(|p| matches!(p, Payload::Notify(n) if n.kind == NotifyType::INITIAL_CONTACT));
            if initial_contact {
                self.initial_contact_from(now, sa);
            }
            let out = self.auth_payloads(sa, false);
            let mut iv = sa.iv.clone();
            let (first, ct) = Self::encrypt(sa, &mut iv, &out);
            sa.p1_last_block = iv.clone();
            sa.iv = iv;
            let m = Self::encrypted_msg(sa, ExchangeType::IDENTITY_PROTECTION, 0, first, ct);
            self.send(sa.local, sa.remote, &m);
            sa.last_tx = m;
            sa.retrans = None;
        } else {
            sa.p1_last_block = sa.iv.clone();
            sa.retrans = None;
        }
        sa.state = P1State::Established;
        sa.established = Some(now);
        if sa.nat_local {
            sa.next_nat_keepalive = self.config.nat_keepalive.map(|k| now + k);
        }
        if let Some(old_id) = sa.replaces.take()
            && let Some(mut old) = self.sas.remove(&old_id)
        {
            // Phase-1 rekey done: the IPsec SAs and the handle move to the new ISAKMP SA; the old one
            // is deleted (RFC 2409 leaves phase-2 SAs independent of the ISAKMP SA that made them).
            sa.children.append(&mut old.children);
            sa.id = old_id;
            // The old one lives on under a new handle for a moment, then is DELETEd.
            old.id = IkeSaId(self.next_id);
            self.next_id += 1;
            old.p1_rekey_started = true;
            old.retire_at = Some(now + RETIRE_DELAY);
            self.sas.insert(old.id, old);
            return true;
        }
        self.events.push_back(Event::IkeSaEstablished {
            ike_sa: sa.id,
            peer: sa.remote,
            peer_id: sa
                .peer_id
                .clone()
                .unwrap_or(Identity::Ipv4(ipv4(sa.remote))),
        });
        if sa.initiator {
            self.start_qm(now, sa, None);
        }
        true
    }

    // See https://www.rfc-editor.org/rfc/rfc2407#section-4.6.3.3
    // (paraphrase) the receiver of an INITIAL-CONTACT ... delete any SA's it has with the sending system
    // Only SAs established before this main mode began are the peer's forgotten state: a negotiation
    // still running (or finished since), e.g. our own main mode when both ends start at once and both
    // send INITIAL-CONTACT, is the peer's current state and stays (deleting it left each end with only a
    // responder SA, so neither started quick mode).
    fn initial_contact_from(&mut self, _now: Instant, sa: &Sa) {
        let old: Vec<IkeSaId> = self
            .sas
            .values()
            .filter(|o| {
                o.id != sa.id
                    && o.remote.ip() == sa.remote.ip()
                    && o.established.is_some_and(|e| e < sa.started)
            })
            .map(|o| o.id)
            .collect();
        for id in old {
            if let Some(o) = self.sas.remove(&id) {
                self.finish(o, DeleteReason::PeerRequest);
            }
        }
    }

    // ---------------------------------------------------------------- quick mode

    fn selectors(&self, sa: &Sa) -> (IdPayload, IdPayload) {
        Self::selectors_of(self.qm_set(sa.qm_set).selectors, sa)
    }

    /// Quick-mode parameter set `i`, or set 0 when `i` is out of range.
    fn qm_set(&self, i: usize) -> QuickMode {
        match self.config.quick_mode(i) {
            Some(q) => q,
            None => self.config.quick_mode(0).unwrap_or_else(|| unreachable!()),
        }
    }

    fn selectors_of(selectors: Selectors, sa: &Sa) -> (IdPayload, IdPayload) {
        match selectors {
            Selectors::AnyAny => {
                let any = IdPayload {
                    id_type: IdType::IPV4_ADDR_SUBNET,
                    protocol: 0,
                    port: 0,
                    data: vec![0; 8],
                };
                (any.clone(), any)
            }
            Selectors::Host { protocol } => (
                IdPayload {
                    id_type: IdType::IPV4_ADDR,
                    protocol,
                    port: 0,
                    data: ipv4(sa.local).octets().to_vec(),
                },
                IdPayload {
                    id_type: IdType::IPV4_ADDR,
                    protocol,
                    port: 0,
                    data: ipv4(sa.remote).octets().to_vec(),
                },
            ),
        }
    }

    fn start_qm(&mut self, now: Instant, sa: &mut Sa, rekey_of: Option<u32>) {
        let Some(k) = sa.keys.as_ref() else { return };
        let skeyid_a = k.skeyid_a.clone();
        let mid = self.random_u32();
        let spi_in = self.random_u32();
        let ni = self.random(NONCE_LEN);
        let q = self.qm_set(sa.qm_set);
        let pfs = q.pfs;
        let dh = pfs.map(|g| g.generate(&mut *self.rng));
        let udp = sa.nat();
        let offered = q.transform_sets.clone();
        let proposals = offered
            .iter()
            .enumerate()
            .map(|(i, p)| Proposal {
                number: (i + 1).min(255) as u8,
                protocol: ProtocolId::ESP,
                spi: spi_in.to_be_bytes().to_vec(),
                transforms: vec![self.esp_transform(1, p, pfs, udp, &q)],
            })
            .collect();
        let ids = self.selectors(sa);
        let mut rest = vec![
            Payload::Sa(SaPayload {
                doi: DOI_IPSEC,
                situation: SIT_IDENTITY_ONLY,
                proposals,
            }),
            Payload::Nonce(ni.clone()),
        ];
        if let Some(dh) = &dh {
            rest.push(Payload::Ke(dh.public().to_vec()));
        }
        rest.push(Payload::Id(ids.0.clone()));
        rest.push(Payload::Id(ids.1.clone()));
        let mut rest_b = Vec::new();
        emit_chain(&rest, &mut rest_b);
        let h = keys::qm_hash1(sa.hash().prf(), skeyid_a.as_bytes(), mid, &rest_b);
        let mut all = vec![Payload::Hash(h)];
        all.extend(rest);
        let mut iv = keys::phase2_iv(sa.hash(), &sa.p1_last_block, mid, 16);
        let (first, ct) = Self::encrypt(sa, &mut iv, &all);
        let m = Self::encrypted_msg(sa, ExchangeType::QUICK_MODE, mid, first, ct);
        self.send(sa.local, sa.remote, &m);
        let timeout = self.config.retransmit.initial;
        sa.qms.insert(
            mid,
            Qm {
                state: QmState::I1,
                iv,
                ni,
                nr: vec![],
                dh,
                spi_in,
                offered,
                chosen: None,
                ids,
                retrans: Some(Retrans {
                    at: now + timeout,
                    tries: 1,
                    timeout,
                    payload: m.clone(),
                }),
                last_rx: [0; 20],
                last_tx: m,
                rekey_of,
                keys: None,
                pfs,
                started: now,
            },
        );
    }

    /// Decrypts a phase-2 message; checks that HASH comes first; returns payloads, the raw bytes after
    /// the HASH payload, the hash and the next IV.
    #[allow(clippy::type_complexity)]
    fn open_p2(
        sa: &Sa,
        iv: &[u8],
        first: PayloadType,
        ct: &[u8],
    ) -> Option<(Vec<Payload>, Vec<u8>, Vec<u8>, Vec<u8>)> {
        let (pt, next_iv) = Self::decrypt(sa, iv, ct)?;
        let ps = parse_chain(first, &pt, true).ok()?;
        let (raw, end) = raw_bodies(first, &pt);
        let (t, hash) = raw.first()?;
        if *t != PayloadType::HASH {
            return None;
        }
        let rest = pt.get(4 + hash.len()..end)?.to_vec();
        Some((ps, rest, hash.to_vec(), next_iv))
    }

    fn on_qm(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        mid: u32,
        first: PayloadType,
        ct: &[u8],
        d: [u8; 20],
    ) {
        let Some(k) = sa.keys.as_ref() else { return };
        let a = k.skeyid_a.clone();
        let prf = sa.hash().prf();
        use subtle::ConstantTimeEq;
        let ct_ok = |x: &[u8], y: &[u8]| x.len() == y.len() && bool::from(x.ct_eq(y));
        match sa.qms.get(&mid).map(|q| q.state) {
            None => {
                // QM1 from the peer.
                let iv = keys::phase2_iv(sa.hash(), &sa.p1_last_block, mid, 16);
                let Some((ps, rest, hash, next_iv)) = Self::open_p2(sa, &iv, first, ct) else {
                    return;
                };
                if !ct_ok(&keys::qm_hash1(prf, a.as_bytes(), mid, &rest), &hash) {
                    return;
                }
                self.on_qm1(now, sa, mid, ps, next_iv, d);
            }
            Some(QmState::I1) => {
                let Some(q) = sa.qms.get(&mid) else { return };
                let Some((ps, rest, hash, next_iv)) = Self::open_p2(sa, &q.iv, first, ct) else {
                    return;
                };
                if !ct_ok(&keys::qm_hash2(prf, a.as_bytes(), mid, &q.ni, &rest), &hash) {
                    return;
                }
                self.on_qm2(now, sa, mid, ps, next_iv, d);
            }
            Some(QmState::R1) => {
                let Some(q) = sa.qms.get(&mid) else { return };
                let Some((_, _, hash, _)) = Self::open_p2(sa, &q.iv, first, ct) else {
                    return;
                };
                if !ct_ok(&keys::qm_hash3(prf, a.as_bytes(), mid, &q.ni, &q.nr), &hash) {
                    return;
                }
                let Some(q) = sa.qms.get_mut(&mid) else {
                    return;
                };
                q.state = QmState::Done;
                q.retrans = None;
                q.last_rx = d;
                q.last_tx = vec![];
                if let Some(keys) = q.keys.take() {
                    let pfs = q.pfs;
                    self.install_child(now, sa, keys, pfs, false, None);
                }
            }
            Some(QmState::Done) => {}
        }
    }

    fn parse_esp_transform(
        &self,
        t: &Transform,
    ) -> Result<(EspProposal, Mode, Option<u16>), Refusal> {
        let bits = t.attr(Q_KEY_LEN).unwrap_or(128);
        let encr = match (t.id, bits) {
            (ESP_DES, _) => {
                return Err(Refusal::Legacy {
                    what: "esp-des (DES-CBC)".into(),
                    replacement: "esp-aes 256",
                });
            }
            (ESP_3DES, _) => {
                return Err(Refusal::Legacy {
                    what: "esp-3des".into(),
                    replacement: "esp-aes 256",
                });
            }
            (ESP_AES, 128) => EncrAlg::AesCbc128,
            (ESP_AES, 192) => EncrAlg::AesCbc192,
            (ESP_AES, 256) => EncrAlg::AesCbc256,
            (ESP_AES_GCM_16, 128) => EncrAlg::AesGcm16_128,
            (ESP_AES_GCM_16, 256) => EncrAlg::AesGcm16_256,
            (id, b) => {
                return Err(Refusal::Unsupported(format!(
                    "ESP transform {id} key length {b}"
                )));
            }
        };
        let integ = match t.attr(Q_AUTH) {
            None => None,
            Some(1) => {
                return Err(Refusal::Legacy {
                    what: "esp-md5-hmac (HMAC-MD5-96)".into(),
                    replacement: "esp-sha256-hmac",
                });
            }
            Some(2) => Some(IntegAlg::HmacSha1_96),
            Some(5) => Some(IntegAlg::HmacSha256_128),
            Some(6) => Some(IntegAlg::HmacSha384_192),
            Some(7) => Some(IntegAlg::HmacSha512_256),
            Some(v) => {
                return Err(Refusal::Unsupported(format!(
                    "ESP authentication algorithm {v}"
                )));
            }
        };
        if encr.is_aead() == integ.is_some() {
            return Err(Refusal::Unsupported(
                "ESP transform with a missing or extra integrity algorithm".into(),
            ));
        }
        let mode = match t.attr(Q_ENCAP) {
            Some(1) | Some(3) | None => Mode::Tunnel,
            Some(2) | Some(4) => Mode::Transport,
            Some(v) => return Err(Refusal::Unsupported(format!("encapsulation mode {v}"))),
        };
        let group = t.attr(Q_GROUP).map(|g| g.min(u64::from(u16::MAX)) as u16);
        Ok((
            EspProposal {
                encr,
                integ,
                esn: false,
            },
            mode,
            group,
        ))
    }

    fn ids_acceptable(
        &self,
        sa: &Sa,
        selectors: Selectors,
        idci: &IdPayload,
        idcr: &IdPayload,
    ) -> bool {
        let (l, r) = Self::selectors_of(selectors, sa);
        match selectors {
            Selectors::AnyAny => *idci == r && *idcr == l,
            Selectors::Host { protocol } => {
                // Behind a NAT the peer names its private address (RFC 3947 NAT-OA); accept any host.
                let host = |i: &IdPayload| {
                    i.id_type == IdType::IPV4_ADDR && i.protocol == protocol && i.data.len() == 4
                };
                host(idci) && host(idcr) && (sa.nat() || (*idci == r && *idcr == l))
            }
        }
    }

    fn on_qm1(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        mid: u32,
        ps: Vec<Payload>,
        next_iv: Vec<u8>,
        d: [u8; 20],
    ) {
        let ids: Vec<&IdPayload> = ps
            .iter()
            .filter_map(|p| {
                if let Payload::Id(i) = p {
                    Some(i)
                } else {
                    None
                }
            })
            .collect();
        let (idci, idcr) = match ids.as_slice() {
            [a, b] => ((*a).clone(), (*b).clone()),
            _ => {
                let (l, r) = self.selectors(sa);
                (r, l)
            }
        };
        let (Some(Payload::Sa(offer)), Some(ni)) = (
            ps.iter().find(|p| p.kind() == PayloadType::SA),
            find_nonce(&ps),
        ) else {
            return;
        };
        let ke = find_ke(&ps);
        let mut refusals = Vec::new();
        let mut chosen = None;
        let mut chosen_set = sa.qm_set;
        'sets: for set in 0..self.config.quick_mode_count() {
            let q = self.qm_set(set);
            if !self.ids_acceptable(sa, q.selectors, &idci, &idcr) {
                refusals.push(Refusal::Unsupported(format!(
                    "proxy identities {idci:?} / {idcr:?}"
                )));
            } else {
                'o: for p in &offer.proposals {
                    if p.protocol != ProtocolId::ESP || p.spi.len() != 4 {
                        continue;
                    }
                    for t in &p.transforms {
                        match self.parse_esp_transform(t) {
                            Ok((ep, mode, group)) => {
                                // `mode transport` is a preference (IOS falls back to tunnel mode),
                                // except with host selectors (GRE): tunnel-mode GRE is not built here.
                                let mode_ok = mode == q.mode
                                    || (q.mode == Mode::Transport
                                        && mode == Mode::Tunnel
                                        && q.selectors == Selectors::AnyAny);
                                let pfs = match group.map(group_from) {
                                    None => Ok(None),
                                    Some(Ok(g)) => Ok(Some(g)),
                                    Some(Err(r)) => Err(r),
                                };
                                let pfs = match pfs {
                                    Ok(g) => g,
                                    Err(r) => {
                                        refusals.push(r);
                                        continue;
                                    }
                                };
                                let pfs_ok = match (q.pfs, pfs) {
                                    (Some(w), Some(g)) => w == g && ke.is_some(),
                                    (Some(_), None) => false,
                                    (None, Some(_)) => ke.is_some(),
                                    (None, None) => true,
                                };
                                let ts_ok = q
                                    .transform_sets
                                    .iter()
                                    .any(|c| c.encr == ep.encr && c.integ == ep.integ);
                                if mode_ok && pfs_ok && ts_ok {
                                    let spi = u32::from_be_bytes([
                                        p.spi[0], p.spi[1], p.spi[2], p.spi[3],
                                    ]);
                                    chosen = Some((p.number, t.clone(), ep, mode, pfs, spi));
                                    chosen_set = set;
                                    break 'o;
                                }
                                refusals.push(Refusal::Unsupported(format!("transform {:?}/{:?} mode {mode:?} PFS {pfs:?} (no matching transform set / mode / PFS)", ep.encr, ep.integ)));
                            }
                            Err(r) => refusals.push(r),
                        }
                    }
                }
            }
            if chosen.is_some() {
                break 'sets;
            }
        }
        sa.qm_set = chosen_set;
        let Some((pnum, t, ep, mode, pfs, spi_out)) = chosen.clone() else {
            self.diag(
                Some(sa.remote),
                DiagnosticReason::NoProposalChosen(refusals),
            );
            let ck = sa.cookies();
            self.send_info(
                now,
                sa,
                vec![Payload::Notify(NotifyPayload {
                    doi: DOI_IPSEC,
                    protocol: ProtocolId::ISAKMP,
                    kind: NotifyType::NO_PROPOSAL_CHOSEN,
                    spi: ck,
                    data: vec![],
                })],
            );
            return;
        };
        let dh = pfs.map(|g| g.generate(&mut *self.rng));
        let gqm = match (&dh, ke) {
            (Some(dh), Some(ke)) => match dh.agree(ke) {
                Ok(s) => Some(s),
                Err(_) => return,
            },
            _ => None,
        };
        let spi_in = self.random_u32();
        let nr = self.random(NONCE_LEN);
        let mut rest = vec![
            Payload::Sa(SaPayload {
                doi: DOI_IPSEC,
                situation: offer.situation,
                proposals: vec![Proposal {
                    number: pnum,
                    protocol: ProtocolId::ESP,
                    spi: spi_in.to_be_bytes().to_vec(),
                    transforms: vec![t],
                }],
            }),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(dh) = &dh {
            rest.push(Payload::Ke(dh.public().to_vec()));
        }
        if ids.len() == 2 {
            rest.push(Payload::Id(idci.clone()));
            rest.push(Payload::Id(idcr.clone()));
        }
        let mut rest_b = Vec::new();
        emit_chain(&rest, &mut rest_b);
        let Some(k) = sa.keys.as_ref() else { return };
        let h = keys::qm_hash2(sa.hash().prf(), k.skeyid_a.as_bytes(), mid, ni, &rest_b);
        let mut all = vec![Payload::Hash(h)];
        all.extend(rest);
        let mut iv = next_iv;
        let (first, ct) = Self::encrypt(sa, &mut iv, &all);
        let m = Self::encrypted_msg(sa, ExchangeType::QUICK_MODE, mid, first, ct);
        self.send(sa.local, sa.remote, &m);
        let mut keys = self.child_keys(
            sa,
            ep,
            mode,
            spi_in,
            spi_out,
            ni,
            &nr,
            gqm.as_ref(),
            (&idcr, &idci),
        );
        // See https://www.rfc-editor.org/rfc/rfc2407#section-4.5.4
        // (RESPONDER-LIFETIME, not sent here.) IOS and strongSwan take the shorter of the two
        // lifetimes; so do we.
        if let Some((_, t, ..)) = &chosen {
            let (secs, kb) = esp_lifetimes(t);
            if let Some(s) = secs {
                keys.lifetime = keys.lifetime.min(Duration::from_secs(s));
            }
            if let Some(k) = kb {
                keys.lifetime_kb = keys.lifetime_kb.min(k);
            }
        }
        let timeout = self.config.retransmit.initial;
        sa.qms.insert(
            mid,
            Qm {
                state: QmState::R1,
                iv,
                ni: ni.to_vec(),
                nr,
                dh: None,
                spi_in,
                offered: vec![],
                chosen: Some((ep, spi_out)),
                ids: (idcr, idci),
                retrans: Some(Retrans {
                    at: now + timeout,
                    tries: 1,
                    timeout,
                    payload: m.clone(),
                }),
                last_rx: d,
                last_tx: m,
                rekey_of: None,
                keys: Some(keys),
                pfs,
                started: now,
            },
        );
    }

    fn on_qm2(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        mid: u32,
        ps: Vec<Payload>,
        next_iv: Vec<u8>,
        d: [u8; 20],
    ) {
        let (Some(Payload::Sa(resp)), Some(nr)) = (
            ps.iter().find(|p| p.kind() == PayloadType::SA),
            find_nonce(&ps),
        ) else {
            return;
        };
        let Some(q) = sa.qms.get(&mid) else { return };
        let chosen = resp.proposals.first().and_then(|p| {
            let t = p.transforms.first()?;
            let spi: [u8; 4] = p.spi.as_slice().try_into().ok()?;
            let (ep, mode, group) = self.parse_esp_transform(t).ok()?;
            let ok = q
                .offered
                .iter()
                .any(|o| o.encr == ep.encr && o.integ == ep.integ)
                && group.map(group_from).and_then(Result::ok) == q.pfs;
            ok.then_some((ep, mode, u32::from_be_bytes(spi)))
        });
        let Some((ep, mode, spi_out)) = chosen else {
            self.diag(
                Some(sa.remote),
                DiagnosticReason::NoProposalChosen(vec![Refusal::Unsupported(
                    "the responder's quick mode choice (not one we offered)".into(),
                )]),
            );
            sa.qms.remove(&mid);
            return;
        };
        let gqm = match (&q.dh, find_ke(&ps)) {
            (Some(dh), Some(ke)) => match dh.agree(ke) {
                Ok(s) => Some(s),
                Err(_) => return,
            },
            (Some(_), None) => return,
            _ => None,
        };
        let (ni, ids, pfs, rekey_of) = (q.ni.clone(), q.ids.clone(), q.pfs, q.rekey_of);
        let Some(k) = sa.keys.as_ref() else { return };
        let h3 = keys::qm_hash3(sa.hash().prf(), k.skeyid_a.as_bytes(), mid, &ni, nr);
        let mut iv = next_iv;
        let (first, ct) = Self::encrypt(sa, &mut iv, &[Payload::Hash(h3)]);
        let m = Self::encrypted_msg(sa, ExchangeType::QUICK_MODE, mid, first, ct);
        self.send(sa.local, sa.remote, &m);
        let spi_in = q.spi_in;
        let keys = self.child_keys(
            sa,
            ep,
            mode,
            spi_in,
            spi_out,
            &ni,
            nr,
            gqm.as_ref(),
            (&ids.0, &ids.1),
        );
        if let Some(q) = sa.qms.get_mut(&mid) {
            q.state = QmState::Done;
            q.retrans = None;
            q.last_rx = d;
            q.last_tx = m;
            q.nr = nr.to_vec();
            q.chosen = Some((ep, spi_out));
        }
        self.install_child(now, sa, keys, pfs, true, rekey_of);
    }

    #[allow(clippy::too_many_arguments)]
    fn child_keys(
        &self,
        sa: &Sa,
        ep: EspProposal,
        mode: Mode,
        spi_in: u32,
        spi_out: u32,
        ni: &[u8],
        nr: &[u8],
        gqm: Option<&Secret>,
        ids: (&IdPayload, &IdPayload),
    ) -> ChildSaKeys {
        let prf = sa.hash().prf();
        let q = self.qm_set(sa.qm_set);
        let d = sa.keys.as_ref().map_or(&[][..], |k| k.skeyid_d.as_bytes());
        let elen = ep.encr.keymat_len();
        let ilen = ep.integ.map_or(0, IntegAlg::key_len);
        let g = gqm.map(Secret::as_bytes);
        let kin = keys::keymat(prf, d, g, ProtocolId::ESP.0, spi_in, ni, nr, elen + ilen);
        let kout = keys::keymat(prf, d, g, ProtocolId::ESP.0, spi_out, ni, nr, elen + ilen);
        let split = |k: &Secret| {
            let b = k.as_bytes();
            (
                Secret::from_slice(b.get(..elen).unwrap_or_default()),
                Secret::from_slice(b.get(elen..).unwrap_or_default()),
            )
        };
        let (key_in, integ_key_in) = split(&kin);
        let (key_out, integ_key_out) = split(&kout);
        ChildSaKeys {
            spi_in,
            spi_out,
            encr: ep.encr,
            integ: ep.integ,
            key_in,
            integ_key_in,
            key_out,
            integ_key_out,
            esn: false,
            mode,
            ts_local: vec![id_to_ts(ids.0)],
            ts_remote: vec![id_to_ts(ids.1)],
            udp_encap: sa.nat(),
            local: sa.local,
            remote: sa.remote,
            lifetime: q.ipsec_lifetime,
            lifetime_kb: q.ipsec_lifetime_kb,
        }
    }

    fn install_child(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        keys: ChildSaKeys,
        pfs: Option<DhGroup>,
        initiator: bool,
        rekey_of: Option<u32>,
    ) {
        self.events.push_back(Event::ChildSaEstablished {
            ike_sa: sa.id,
            child: keys.clone(),
        });
        if let Some(old) = rekey_of
            && let Some(c) = sa.children.iter_mut().find(|c| c.keys.spi_in == old)
        {
            c.rekeyed = true;
        }
        sa.children.push(Child {
            keys,
            pfs,
            initiator,
            created: now,
            rekeyed: false,
        });
    }

    // ---------------------------------------------------------------- informational

    fn on_info(
        &mut self,
        now: Instant,
        sa: &mut Sa,
        mid: u32,
        first: PayloadType,
        ct: &[u8],
    ) -> bool {
        let iv = keys::phase2_iv(sa.hash(), &sa.p1_last_block, mid, 16);
        let Some((ps, rest, hash, _)) = Self::open_p2(sa, &iv, first, ct) else {
            return true;
        };
        let Some(k) = sa.keys.as_ref() else {
            return true;
        };
        use subtle::ConstantTimeEq;
        let want = keys::qm_hash1(sa.hash().prf(), k.skeyid_a.as_bytes(), mid, &rest);
        if want.len() != hash.len() || !bool::from(want.ct_eq(&hash)) {
            return true;
        }
        for p in ps {
            match p {
                Payload::Notify(n) if n.kind == NotifyType::R_U_THERE => {
                    let ck = sa.cookies();
                    self.send_info(
                        now,
                        sa,
                        vec![Payload::Notify(NotifyPayload {
                            doi: DOI_IPSEC,
                            protocol: ProtocolId::ISAKMP,
                            kind: NotifyType::R_U_THERE_ACK,
                            spi: ck,
                            data: n.data,
                        })],
                    );
                }
                Payload::Notify(n) if n.kind == NotifyType::R_U_THERE_ACK => {
                    if let Some((seq, ..)) = sa.dpd.outstanding
                        && n.data.as_slice() == seq.to_be_bytes()
                    {
                        sa.dpd.outstanding = None;
                    }
                }
                Payload::Notify(n) if n.kind.is_error() => {
                    self.diag(Some(sa.remote), DiagnosticReason::PeerError(n.kind));
                    // A refused quick mode: forget the exchanges waiting for an answer.
                    sa.qms.retain(|_, q| q.state != QmState::I1);
                }
                Payload::Delete(d) if d.protocol == ProtocolId::ESP => {
                    for spi in d.spis {
                        let Ok(s) = <[u8; 4]>::try_from(spi.as_slice()) else {
                            continue;
                        };
                        let s = u32::from_be_bytes(s);
                        // See https://www.rfc-editor.org/rfc/rfc2408#section-3.15
                        // (paraphrase) SPIs (variable length) - Identifies the specific security association(s) to delete.
                        // Normally the sender's inbound SPI (our outbound); strongSwan names our inbound SPI
                        // when it failed to install the SA, so either identifies the pair.
                        if let Some(i) = sa
                            .children
                            .iter()
                            .position(|c| c.keys.spi_out == s || c.keys.spi_in == s)
                        {
                            let c = sa.children.remove(i);
                            self.events.push_back(Event::ChildSaDeleted {
                                ike_sa: sa.id,
                                spi_in: c.keys.spi_in,
                                spi_out: c.keys.spi_out,
                            });
                        }
                    }
                }
                Payload::Delete(d)
                    if d.protocol == ProtocolId::ISAKMP
                        && d.spis.iter().any(|s| *s == sa.cookies()) =>
                {
                    let mut sa = self.take(sa, now);
                    // The peer replaced this ISAKMP SA (phase-1 rekey): its IPsec SAs live on under
                    // the newest ISAKMP SA with the same peer.
                    self.pass_children_to_heir(&mut sa);
                    self.finish(sa, DeleteReason::PeerRequest);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    // ---------------------------------------------------------------- timers

    /// Drives retransmissions, DPD, NAT keepalives and lifetimes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<IkeSaId> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            if self.timeout_sa(now, &mut sa) {
                self.sas.insert(sa.id, sa);
            }
        }
    }

    fn next_retrans(&self, r: &mut Retrans, now: Instant) -> Option<Vec<u8>> {
        if now < r.at {
            return None;
        }
        if r.tries >= self.config.retransmit.max_tries {
            return Some(vec![]);
        }
        r.tries += 1;
        r.timeout = (r.timeout * 2).min(self.config.retransmit.max_timeout);
        r.at = now + r.timeout;
        Some(r.payload.clone())
    }

    fn timeout_sa(&mut self, now: Instant, sa: &mut Sa) -> bool {
        if let Some(mut r) = sa.retrans.take() {
            match self.next_retrans(&mut r, now) {
                Some(p) if p.is_empty() => {
                    let sa = self.take(sa, now);
                    self.finish(sa, DeleteReason::NegotiationTimeout);
                    return false;
                }
                Some(p) => {
                    self.send(sa.local, sa.remote, &p);
                    sa.retrans = Some(r);
                }
                None => sa.retrans = Some(r),
            }
        }
        if sa.state != P1State::Established {
            return true;
        }
        // Finished quick modes are kept only as long as the peer may still retransmit into them.
        let keep = self.half_open_timeout();
        sa.qms
            .retain(|_, q| q.state != QmState::Done || now < q.started + keep);
        // Quick mode retransmissions.
        let mids: Vec<u32> = sa.qms.keys().copied().collect();
        for mid in mids {
            let Some(q) = sa.qms.get_mut(&mid) else {
                continue;
            };
            let Some(mut r) = q.retrans.take() else {
                continue;
            };
            match self.next_retrans(&mut r, now) {
                Some(p) if p.is_empty() => {
                    sa.qms.remove(&mid);
                }
                Some(p) => {
                    if let Some(q) = sa.qms.get_mut(&mid) {
                        q.retrans = Some(r);
                    }
                    self.send(sa.local, sa.remote, &p);
                }
                None => {
                    if let Some(q) = sa.qms.get_mut(&mid) {
                        q.retrans = Some(r);
                    }
                }
            }
        }
        let est = sa.established.unwrap_or(sa.started);
        let lifetime = sa.suite.map_or(Duration::from_secs(86400), |s| s.lifetime);
        // Replaced by our phase-1 rekey: DELETE it now (IPsec SAs made under it meanwhile move on).
        if sa.retire_at.is_some_and(|t| now >= t)
            || (sa.retire_at.is_some() && now >= est + lifetime)
        {
            self.retire(now, sa, DeleteReason::LocalRequest);
            return false;
        }
        // ISAKMP lifetime: the original initiator replaces the SA at 90 %; hard expiry at 100 %.
        if sa.initiator && !sa.p1_rekey_started && now >= est + lifetime.mul_f64(0.9) {
            sa.p1_rekey_started = true;
            let _ = self.start_main_mode(now, sa.local, sa.remote, Some(sa.id), sa.qm_set);
        }
        if now >= est + lifetime {
            // The IPsec SAs outlive it (RFC 2409 keeps phase-2 SAs independent of the ISAKMP SA that made
            // them): when the peer already made a newer ISAKMP SA (its phase-1 rekey, e.g. strongSwan's
            // IKEv1 reauthentication), they move there, as when the peer DELETEs this one.
            self.retire(now, sa, DeleteReason::Expired);
            return false;
        }
        // IPsec lifetimes: rekey at 90 % (by the quick mode initiator), delete at 100 %.
        let mut rekey = Vec::new();
        let mut expired = Vec::new();
        for c in &sa.children {
            let life = c.keys.lifetime;
            if now >= c.created + life {
                expired.push(c.keys.spi_in);
            } else if c.initiator && !c.rekeyed && now >= c.created + life.mul_f64(0.9) {
                rekey.push(c.keys.spi_in);
            }
        }
        for spi in rekey {
            if let Some(c) = sa.children.iter_mut().find(|c| c.keys.spi_in == spi) {
                c.rekeyed = true;
            }
            self.start_qm(now, sa, Some(spi));
        }
        for spi in expired {
            if let Some(i) = sa.children.iter().position(|c| c.keys.spi_in == spi) {
                let c = sa.children.remove(i);
                self.send_info(
                    now,
                    sa,
                    vec![Payload::Delete(DeletePayload {
                        doi: DOI_IPSEC,
                        protocol: ProtocolId::ESP,
                        spi_size: 4,
                        spis: vec![spi.to_be_bytes().to_vec()],
                    })],
                );
                self.events.push_back(Event::ChildSaDeleted {
                    ike_sa: sa.id,
                    spi_in: c.keys.spi_in,
                    spi_out: c.keys.spi_out,
                });
            }
        }
        // DPD.
        if let Some(ka) = self.config.keepalive
            && sa.peer_dpd
        {
            match sa.dpd.outstanding {
                Some((_, at, tries)) if now >= at => {
                    if tries >= DPD_RETRIES {
                        let sa = self.take(sa, now);
                        self.finish(sa, DeleteReason::PeerDead);
                        return false;
                    }
                    self.send_dpd(now, sa, tries + 1);
                }
                None if ka.periodic && now >= sa.last_heard + ka.interval => {
                    self.send_dpd(now, sa, 0)
                }
                _ => {}
            }
        }
        // NAT keepalive.
        if let Some(at) = sa.next_nat_keepalive
            && now >= at
        {
            self.transmits.push_back(Transmit {
                local: sa.local,
                remote: sa.remote,
                payload: vec![0xff],
            });
            sa.next_nat_keepalive = self.config.nat_keepalive.map(|k| now + k);
        }
        true
    }

    /// The earliest time [`Endpoint::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for sa in self.sas.values() {
            if let Some(r) = &sa.retrans {
                add(r.at);
            }
            if sa.state != P1State::Established {
                continue;
            }
            for q in sa.qms.values() {
                if let Some(r) = &q.retrans {
                    add(r.at);
                }
            }
            let est = sa.established.unwrap_or(sa.started);
            let lifetime = sa.suite.map_or(Duration::from_secs(86400), |s| s.lifetime);
            add(est + lifetime);
            if let Some(t) = sa.retire_at {
                add(t);
            }
            if sa.initiator && !sa.p1_rekey_started {
                add(est + lifetime.mul_f64(0.9));
            }
            for c in &sa.children {
                let life = c.keys.lifetime;
                add(c.created + life);
                if c.initiator && !c.rekeyed {
                    add(c.created + life.mul_f64(0.9));
                }
            }
            if let Some(ka) = self.config.keepalive
                && sa.peer_dpd
            {
                match sa.dpd.outstanding {
                    Some((_, at, _)) => add(at),
                    None if ka.periodic => add(sa.last_heard + ka.interval),
                    None => {}
                }
            }
            if let Some(k) = sa.next_nat_keepalive {
                add(k);
            }
        }
        t
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event (the same [`Event`] type as IKEv2).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Next log line (refusals and failures, with their reasons).
    pub fn poll_diagnostic(&mut self) -> Option<Diagnostic> {
        self.diagnostics.pop_front()
    }

    /// `show crypto isakmp sa [detail]` data.
    pub fn snapshot(&self, now: Instant) -> Vec<IsakmpSaSnapshot> {
        self.sas
            .values()
            .map(|sa| {
                let (src, dst) = if sa.initiator {
                    (sa.local, sa.remote)
                } else {
                    (sa.remote, sa.local)
                };
                let est = sa.established.unwrap_or(now);
                let lifetime = sa.suite.map_or(Duration::from_secs(86400), |s| s.lifetime);
                let mut cap = String::new();
                if sa.peer_dpd && self.config.keepalive.is_some() {
                    cap.push('D');
                }
                if sa.nat() {
                    cap.push('N');
                }
                IsakmpSaSnapshot {
                    id: sa.id,
                    conn_id: 1001 + sa.id.0.saturating_sub(self.first_id),
                    dst,
                    src,
                    state: sa.state.ios(),
                    status: "ACTIVE",
                    initiator: sa.initiator,
                    cky_i: sa.cky_i,
                    encr: sa.suite.map(|s| s.encr),
                    hash: sa.suite.map(|s| s.hash),
                    dh_group: sa.suite.map(|s| group_number(s.group)),
                    auth: match sa.suite.map(|s| s.auth) {
                        Some(AuthMethod::RsaSig) => "rsig",
                        _ => "psk",
                    },
                    remaining: (est + lifetime).saturating_duration_since(now),
                    lifetime,
                    active: now.saturating_duration_since(est),
                    peer_id: sa.peer_id.clone().filter(|_| sa.established.is_some()),
                    capabilities: cap,
                    children: sa
                        .children
                        .iter()
                        .map(|c| ChildSaSnapshot {
                            spi_in: c.keys.spi_in,
                            spi_out: c.keys.spi_out,
                            encr: c.keys.encr,
                            integ: c.keys.integ,
                            mode: c.keys.mode,
                            esn: false,
                            pfs: c.pfs,
                            ts_local: c.keys.ts_local.clone(),
                            ts_remote: c.keys.ts_remote.clone(),
                            remaining: (c.created + c.keys.lifetime).saturating_duration_since(now),
                            lifetime_kb: c.keys.lifetime_kb,
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

fn integ_value(i: IntegAlg) -> u16 {
    match i {
        IntegAlg::HmacSha1_96 => 2,
        IntegAlg::HmacSha256_128 => 5,
        IntegAlg::HmacSha384_192 => 6,
        IntegAlg::HmacSha512_256 => 7,
    }
}

/// The (seconds, kilobytes) lifetimes of an ESP transform (each SA Life Type followed by its Duration).
fn esp_lifetimes(t: &Transform) -> (Option<u64>, Option<u64>) {
    let (mut secs, mut kb, mut kind) = (None, None, None);
    for a in &t.attributes {
        match (a.kind(), a.value()) {
            (Q_LIFE_TYPE, v) => kind = v,
            (Q_LIFE_DUR, Some(v)) => match kind {
                Some(1) => secs = Some(v),
                Some(2) => kb = Some(v),
                _ => {}
            },
            _ => {}
        }
    }
    (secs, kb)
}

fn find_ke(ps: &[Payload]) -> Option<&[u8]> {
    ps.iter().find_map(|p| {
        if let Payload::Ke(k) = p {
            Some(k.as_slice())
        } else {
            None
        }
    })
}

fn find_nonce(ps: &[Payload]) -> Option<&[u8]> {
    ps.iter().find_map(|p| {
        if let Payload::Nonce(k) = p {
            Some(k.as_slice())
        } else {
            None
        }
    })
}

/// Quick mode identity to an IKEv2-shaped selector (so the dataplane sees one type).
fn id_to_ts(id: &IdPayload) -> TrafficSelector {
    let a = |b: Option<&[u8]>| -> Ipv4Addr {
        b.and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)
    };
    let (start, end) = match id.id_type {
        IdType::IPV4_ADDR => {
            let x = a(id.data.get(0..4));
            (x, x)
        }
        IdType::IPV4_ADDR_SUBNET => {
            let n = u32::from(a(id.data.get(0..4)));
            let m = u32::from(a(id.data.get(4..8)));
            (Ipv4Addr::from(n & m), Ipv4Addr::from(n | !m))
        }
        IdType::IPV4_ADDR_RANGE => (a(id.data.get(0..4)), a(id.data.get(4..8))),
        _ => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST),
    };
    let (sp, ep) = if id.port == 0 {
        (0, 65535)
    } else {
        (id.port, id.port)
    };
    TrafficSelector::Ipv4 {
        ip_protocol: id.protocol,
        start_port: sp,
        end_port: ep,
        start,
        end,
    }
}

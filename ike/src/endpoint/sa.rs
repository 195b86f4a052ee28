//! One IKE SA: its exchanges, CHILD_SAs, timers.

use super::types::*;
use crate::auth::{
    AuthFailure, AuthVerified, CertTrust, PeerAuthInput, psk_auth, rsa_sign, signed_octets,
    verify_psk_peer, verify_rsa_peer_chain,
};
use crate::config::{Fingerprint, Identity, IkeProposal, InitiateParams, Mode, Profile};
use crate::config::{LocalAuth, RemoteAuth};
use crate::crypto::{DhGroup, DhKeyPair, Rng, sha1};
use crate::keys::{IkeKeys, IkeSuite, child_keymat, derive_ike_keys, skeyseed, skeyseed_rekey};
use crate::proposal::{self, EspSuite};
use crate::sk::{self, SkKeys};
use crate::wire::*;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Borrowed endpoint state an SA works with.
pub(crate) struct Ctx<'a> {
    pub rng: &'a mut dyn Rng,
    pub tx: &'a mut VecDeque<Transmit>,
    pub ev: &'a mut VecDeque<Event>,
    pub nat_t_port: u16,
    pub profiles: &'a [Arc<Profile>],
    pub expectations: &'a HashMap<Identity, Fingerprint>,
    /// VPN-SIP: the profile that answers a peer (its SIP number as key-id), when the call chose one.
    pub expected_profiles: &'a HashMap<Identity, String>,
    pub new_spis: Vec<u64>,
    pub dropped_spis: Vec<u64>,
    /// `crypto ikev2 fragmentation mtu N` (None: do not fragment).
    pub fragment_mtu: Option<u16>,
    /// Trustpoints and certificate maps.
    pub pki: &'a crate::pki::Pki,
    /// Wall-clock time now (from `Endpoint::set_wall_clock`), for certificate validity.
    pub wall: Option<std::time::SystemTime>,
}

static NO_PKI: std::sync::LazyLock<crate::pki::Pki> =
    std::sync::LazyLock::new(crate::pki::Pki::default);

static NO_EXPECTATIONS: std::sync::LazyLock<HashMap<Identity, Fingerprint>> =
    std::sync::LazyLock::new(HashMap::new);

static NO_EXPECTED_PROFILES: std::sync::LazyLock<HashMap<Identity, String>> =
    std::sync::LazyLock::new(HashMap::new);

impl<'a> Ctx<'a> {
    pub fn new(
        rng: &'a mut dyn Rng,
        tx: &'a mut VecDeque<Transmit>,
        ev: &'a mut VecDeque<Event>,
        nat_t_port: u16,
    ) -> Self {
        Ctx {
            rng,
            tx,
            ev,
            nat_t_port,
            profiles: &[],
            expectations: &NO_EXPECTATIONS,
            expected_profiles: &NO_EXPECTED_PROFILES,
            new_spis: Vec::new(),
            dropped_spis: Vec::new(),
            fragment_mtu: None,
            pki: &NO_PKI,
            wall: None,
        }
    }
    pub fn send_raw(&mut self, local: SocketAddr, remote: SocketAddr, raw: &[u8]) {
        self.send(local, remote, raw);
    }
    fn send(&mut self, local: SocketAddr, remote: SocketAddr, raw: &[u8]) {
        let mut payload = Vec::with_capacity(raw.len() + 4);
        if local.port() == self.nat_t_port {
            payload.extend_from_slice(&[0, 0, 0, 0]);
        }
        payload.extend_from_slice(raw);
        self.tx.push_back(Transmit {
            local,
            remote,
            payload,
        });
    }
    fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; 32];
        self.rng.fill(&mut n);
        n
    }
    fn child_spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let s = u32::from_be_bytes(b);
            if s > 255 {
                return s;
            }
        }
    }
    fn ike_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let s = u64::from_be_bytes(b);
            if s != 0 {
                return s;
            }
        }
    }
}

/// Operator or timer requests that need an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    RekeyChild(u32),
    RekeyIke,
    DeleteChild(u32),
    DeleteIke,
    Dpd,
}

/// What our outstanding request was, with the state needed to process its response.
enum Pending {
    Auth,
    RekeyChild {
        old_spi_in: u32,
        new_spi_in: u32,
        ni: Vec<u8>,
        dh: Option<DhKeyPair>,
    },
    RekeyIke {
        new_spi_i: u64,
        ni: Vec<u8>,
        dh: DhKeyPair,
    },
    DeleteChild(u32),
    DeleteIke,
    DeleteOldIke,
    Dpd,
}

struct Outstanding {
    msg_id: u32,
    /// The request as sent: one datagram, or its RFC 7383 fragments.
    raw: Vec<Vec<u8>>,
    tries: u32,
    next_at: Instant,
    pending: Pending,
}

/// The cryptographic channel of one IKE SA generation (changes on an IKE SA rekey).
struct Chan {
    spi_i: u64,
    spi_r: u64,
    /// We are the (rekey-)initiator of this generation: we set the I flag.
    initiator: bool,
    suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    next_req: u32,
    peer_next: u32,
    last_resp: Option<(u32, Vec<Vec<u8>>)>,
    reasm: Option<Reassembly>,
    out: Option<Outstanding>,
}

/// RFC 7383 reassembly of one message.
struct Reassembly {
    msg_id: u32,
    response: bool,
    total: u16,
    first_inner: PayloadType,
    parts: std::collections::BTreeMap<u16, Vec<u8>>,
    bytes: usize,
}

/// Bounds for reassembly (RFC 7383 §2.6: limit resources).
const MAX_FRAGMENTS: u16 = 64;
const MAX_REASSEMBLED: usize = 64 * 1024;

impl Chan {
    /// Opens an SK message, or adds an SKF fragment and returns the whole inner chain once complete.
    fn decrypt(&mut self, keys: &SkKeys, msg: &Message, raw: &[u8]) -> Option<Vec<Payload>> {
        match msg.payloads.last()? {
            Payload::Sk(skp) => sk::open(keys, raw, skp.first_inner, skp.data.len()).ok(),
            Payload::Skf(f) => {
                let h = msg.header;
                if f.total > MAX_FRAGMENTS {
                    return None;
                }
                //= https://www.rfc-editor.org/rfc/rfc7383#section-2.6
                //# the receiver MUST first check its integrity [...] before storing the fragment
                let plain = sk::open_raw(keys, raw, f.data.len() + 4, 4).ok()?;
                let same = self.reasm.as_ref().is_some_and(|r| {
                    r.msg_id == h.message_id && r.response == h.is_response() && r.total == f.total
                });
                if !same {
                    self.reasm = Some(Reassembly {
                        msg_id: h.message_id,
                        response: h.is_response(),
                        total: f.total,
                        first_inner: PayloadType::NONE,
                        parts: Default::default(),
                        bytes: 0,
                    });
                }
                let r = self.reasm.as_mut()?;
                if f.number == 1 {
                    r.first_inner = f.first_inner;
                }
                if r.parts.contains_key(&f.number) || r.bytes + plain.len() > MAX_REASSEMBLED {
                    return None;
                }
                r.bytes += plain.len();
                r.parts.insert(f.number, plain);
                if r.parts.len() < r.total as usize {
                    return None;
                }
                let r = self.reasm.take()?;
                let all: Vec<u8> = r.parts.into_values().flatten().collect();
                parse_chain(r.first_inner, &all).ok()
            }
            _ => None,
        }
    }

    fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
    fn out_keys(&self) -> Option<SkKeys> {
        let (s, k) = (self.suite?, self.keys.as_ref()?);
        let (e, a) = if self.initiator {
            (&k.sk_ei, &k.sk_ai)
        } else {
            (&k.sk_er, &k.sk_ar)
        };
        Some(SkKeys {
            encr: s.encr,
            integ: s.integ,
            sk_e: e.clone(),
            sk_a: a.clone(),
        })
    }
    fn in_keys(&self) -> Option<SkKeys> {
        let (s, k) = (self.suite?, self.keys.as_ref()?);
        let (e, a) = if self.initiator {
            (&k.sk_er, &k.sk_ar)
        } else {
            (&k.sk_ei, &k.sk_ai)
        };
        Some(SkKeys {
            encr: s.encr,
            integ: s.integ,
            sk_e: e.clone(),
            sk_a: a.clone(),
        })
    }
    fn header(&self, x: ExchangeType, response: bool, msg_id: u32) -> HeaderRepr {
        let mut flags = if self.initiator { FLAG_INITIATOR } else { 0 };
        if response {
            flags |= FLAG_RESPONSE;
        }
        HeaderRepr {
            initiator_spi: self.spi_i,
            responder_spi: self.spi_r,
            version: VERSION_2_0,
            exchange_type: x,
            flags,
            message_id: msg_id,
        }
    }
}

#[allow(clippy::large_enum_variant)] // one per IKE SA; boxing buys nothing
enum Phase {
    InitSent {
        ni: Vec<u8>,
        dh: DhKeyPair,
        req_raw: Vec<u8>,
        cookie: Option<Vec<u8>>,
        retries: u8,
    },
    AuthSent {
        sa_init_req: Vec<u8>,
        sa_init_resp: Vec<u8>,
        child_spi: u32,
    },
    RespInitDone {
        sa_init_req: Vec<u8>,
        sa_init_resp: Vec<u8>,
    },
    Established(Established),
    Dead,
}

/// Only reachable with an [`AuthVerified`] proof.
struct Established {
    _proof: AuthVerified,
    since: Instant,
}

struct Child {
    spi_in: u32,
    spi_out: u32,
    suite: EspSuite,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
    created: Instant,
    mode: Mode,
    rekey_at: Option<Instant>,
    expire_at: Option<Instant>,
    rekeyed: bool,
    /// Our CREATE_CHILD_SA rekeying this child is outstanding.
    rekey_in_flight: bool,
    /// Our completed rekey: (lowest nonce of that exchange, the new child's inbound SPI).
    our_rekey: Option<(Vec<u8>, u32)>,
    /// The peer rekeyed it while ours was in flight: (lowest nonce of its exchange, new inbound SPI).
    peer_rekey: Option<(Vec<u8>, u32)>,
}

impl IkeSa {
    /// Our IDi/IDr: the profile's `identity local`, or, when it names none (the unspecified IPv4
    /// address), the IKE SA's local address, as IOS does by default.
    fn local_identity(&self) -> Identity {
        match (&self.profile.local_id, self.local.ip()) {
            (Identity::Ipv4(a), std::net::IpAddr::V4(l)) if a.is_unspecified() => Identity::Ipv4(l),
            (id, _) => id.clone(),
        }
    }
}

pub(crate) struct IkeSa {
    id: IkeSaId,
    profile: Arc<Profile>,
    local: SocketAddr,
    remote: SocketAddr,
    expected_fp: Option<Fingerprint>,
    created: Instant,
    original_initiator: bool,
    chan: Chan,
    /// Earlier (or redundant) IKE SA generations kept until their DELETE exchange completes, by our SPI.
    retired: Vec<Chan>,
    /// A peer-initiated IKE SA rekey that crossed ours (RFC 7296 §2.8.2): its new channel and lowest nonce.
    peer_ike_rekey: Option<(Chan, Vec<u8>)>,
    phase: Phase,
    children: Vec<Child>,
    udp_encap: bool,
    local_nat: bool,
    peer_id: Option<Identity>,
    last_rx: Instant,
    queue: VecDeque<Cmd>,
    ike_rekey_at: Option<Instant>,
    ike_expire_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    first_child_ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
    deleting: bool,
    remote_expected: Option<Identity>,
    /// The keyring entry's keys for this peer (local: we sign with it, remote: the peer's AUTH must verify
    /// with it), chosen once: by the initiator for the peer it calls, by the responder from the IDi.
    psk: PskKeys,
    /// The peer's certificate as validated against a CA trustpoint (for `disconnect-revoked-peers`).
    peer_cert: Option<crate::pki::ValidatedCert>,
    /// Why our pending DELETE of the IKE SA was sent (default: a local request).
    delete_reason: Option<DeleteReason>,
    /// The peer announced SHA2-256 in SIGNATURE_HASH_ALGORITHMS (RFC 7427).
    peer_sha256: bool,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    peer_frag: bool,
}

/// The keys of the one keyring entry chosen for the peer ([`crate::Keyring::entry`]).
#[derive(Default)]
struct PskKeys {
    local: Option<crate::crypto::Secret>,
    remote: Option<crate::crypto::Secret>,
}

impl PskKeys {
    fn of(entry: Option<&crate::config::KeyringPeer>) -> Self {
        PskKeys {
            local: entry.and_then(|e| e.local.clone()),
            remote: entry.and_then(|e| e.remote.clone()),
        }
    }
}

const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(60);
const KEEPALIVE: Duration = Duration::from_secs(20);

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.23
//# the SHA-1 digest of the SPIs (in the order they appear in the header), IP address, and port from
//# which this packet was sent.
fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    sha1(&[
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
        &ip_bytes(addr.ip()),
        &addr.port().to_be_bytes(),
    ])
    .to_vec()
}

fn nat_notifies(
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    force: bool,
    rng: &mut dyn Rng,
) -> [Payload; 2] {
    let src = if force {
        // `nat force-encap`: a source hash that cannot match, so both ends see a NAT and encapsulate.
        let mut b = vec![0u8; 20];
        rng.fill(&mut b);
        b
    } else {
        nat_hash(spi_i, spi_r, local)
    };
    [
        Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, src)),
        Payload::Notify(Notify::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_hash(spi_i, spi_r, remote),
        )),
    ]
}

/// (we are behind a NAT, peer is behind a NAT), or None if the peer sent no NAT-D.
fn nat_detect(msg: &Message, local: SocketAddr, remote: SocketAddr) -> Option<(bool, bool)> {
    let (i, r) = (msg.header.initiator_spi, msg.header.responder_spi);
    let mut srcs = vec![];
    let mut dst = None;
    for p in &msg.payloads {
        if let Payload::Notify(n) = p {
            match n.notify_type {
                NotifyType::NAT_DETECTION_SOURCE_IP => srcs.push(n.data.clone()),
                NotifyType::NAT_DETECTION_DESTINATION_IP => dst = Some(n.data.clone()),
                _ => {}
            }
        }
    }
    let dst = dst?;
    let local_nat = dst != nat_hash(i, r, local);
    let remote_nat = !srcs.iter().any(|s| *s == nat_hash(i, r, remote));
    Some((local_nat, remote_nat))
}

//= https://www.rfc-editor.org/rfc/rfc7427#section-4
//# The Notification Data field contains the list of 16-bit hash algorithm identifiers
fn sig_hash_notify() -> Payload {
    let mut d = Vec::new();
    for h in [2u16, 3, 4] {
        d.extend_from_slice(&h.to_be_bytes());
    }
    Payload::Notify(Notify::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, d))
}

fn peer_supports_sha256(payloads: &[Payload]) -> bool {
    notify_of(payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some_and(|n| {
        n.data
            .chunks_exact(2)
            .any(|c| u16::from_be_bytes([c[0], c[1]]) == crate::auth::HASH_SHA2_256)
    })
}

/// Seals `inner`; when `limit` (max IKE message size) is given and exceeded, as RFC 7383 fragments.
fn seal_maybe_fragmented(
    keys: &SkKeys,
    header: &HeaderRepr,
    inner: &[Payload],
    limit: Option<usize>,
    ctx: &mut Ctx<'_>,
) -> Vec<Vec<u8>> {
    let whole = sk::seal(keys, header, inner, ctx.rng);
    let Some(limit) = limit.filter(|l| whole.len() > *l) else {
        return vec![whole];
    };
    let plain = chain_to_vec(inner);
    let bl = keys.encr.block_len();
    let icv = if keys.encr.is_aead() {
        keys.encr.tag_len()
    } else {
        keys.integ.map_or(0, crate::crypto::IntegAlg::icv_len)
    };
    let avail =
        limit.saturating_sub(HEADER_LEN + GENERIC_HEADER_LEN + 4 + keys.encr.iv_len() + icv);
    let chunk = (avail / bl * bl).saturating_sub(1).max(16);
    let total = plain.len().div_ceil(chunk);
    let first = inner
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type);
    plain
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let n = (i + 1) as u16;
            let mut hdr = [0u8; 4];
            hdr[..2].copy_from_slice(&n.to_be_bytes());
            hdr[2..].copy_from_slice(&(total as u16).to_be_bytes());
            let fi = if n == 1 { first } else { PayloadType::NONE };
            sk::seal_raw(keys, header, PayloadType::SKF, fi, &hdr, c, ctx.rng)
        })
        .collect()
}

fn error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
        _ => None,
    })
}

fn find<'m, T>(payloads: &'m [Payload], f: impl Fn(&'m Payload) -> Option<T>) -> Option<T> {
    payloads.iter().find_map(f)
}

fn notify_of(payloads: &[Payload], t: NotifyType) -> Option<&Notify> {
    find(payloads, |p| match p {
        Payload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

/// Intersection of two IPv4 selectors (None if disjoint).
fn ts_intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    match (a, b) {
        (
            TrafficSelector::Ipv4 {
                ip_protocol: p1,
                start_port: sp1,
                end_port: ep1,
                start: s1,
                end: e1,
            },
            TrafficSelector::Ipv4 {
                ip_protocol: p2,
                start_port: sp2,
                end_port: ep2,
                start: s2,
                end: e2,
            },
        ) => {
            let proto = match (*p1, *p2) {
                (0, p) | (p, 0) => p,
                (x, y) if x == y => x,
                _ => return None,
            };
            let (sp, ep) = ((*sp1).max(*sp2), (*ep1).min(*ep2));
            let (s, e) = ((*s1).max(*s2), (*e1).min(*e2));
            (sp <= ep && s <= e).then_some(TrafficSelector::Ipv4 {
                ip_protocol: proto,
                start_port: sp,
                end_port: ep,
                start: s,
                end: e,
            })
        }
        (
            TrafficSelector::Ipv6 {
                ip_protocol: p1,
                start_port: sp1,
                end_port: ep1,
                start: s1,
                end: e1,
            },
            TrafficSelector::Ipv6 {
                ip_protocol: p2,
                start_port: sp2,
                end_port: ep2,
                start: s2,
                end: e2,
            },
        ) => {
            let proto = match (*p1, *p2) {
                (0, p) | (p, 0) => p,
                (x, y) if x == y => x,
                _ => return None,
            };
            let (sp, ep) = ((*sp1).max(*sp2), (*ep1).min(*ep2));
            let (s, e) = ((*s1).max(*s2), (*e1).min(*e2));
            (sp <= ep && s <= e).then_some(TrafficSelector::Ipv6 {
                ip_protocol: proto,
                start_port: sp,
                end_port: ep,
                start: s,
                end: e,
            })
        }
        _ => None,
    }
}

/// Narrows the peer's selectors against ours (RFC 7296 §2.9): the first non-empty intersection.
fn narrow(peer: &[TrafficSelector], ours: &[TrafficSelector]) -> Option<Vec<TrafficSelector>> {
    for p in peer {
        for o in ours {
            if let Some(x) = ts_intersect(p, o) {
                return Some(vec![x]);
            }
        }
    }
    None
}

fn ts_of(payloads: &[Payload]) -> (Option<&Vec<TrafficSelector>>, Option<&Vec<TrafficSelector>>) {
    (
        find(payloads, |p| {
            if let Payload::TsI(t) = p {
                Some(t)
            } else {
                None
            }
        }),
        find(payloads, |p| {
            if let Payload::TsR(t) = p {
                Some(t)
            } else {
                None
            }
        }),
    )
}

fn sa_of(payloads: &[Payload]) -> Option<&Vec<Proposal>> {
    find(payloads, |p| {
        if let Payload::Sa(s) = p {
            Some(s)
        } else {
            None
        }
    })
}

fn nonce_of(payloads: &[Payload]) -> Option<&Vec<u8>> {
    find(payloads, |p| {
        if let Payload::Nonce(n) = p {
            Some(n)
        } else {
            None
        }
    })
}

fn ke_of(payloads: &[Payload]) -> Option<&KeyExchange> {
    find(payloads, |p| {
        if let Payload::Ke(k) = p {
            Some(k)
        } else {
            None
        }
    })
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.10
//# Nonces used in IKEv2 MUST be randomly chosen, MUST be at least 128 bits in size
fn nonce_ok(n: &[u8]) -> bool {
    (16..=256).contains(&n.len())
}

impl IkeSa {
    fn blank(
        id: IkeSaId,
        profile: Arc<Profile>,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        chan: Chan,
        phase: Phase,
    ) -> Self {
        let first_child_ts = profile.ts.selectors();
        IkeSa {
            id,
            original_initiator: chan.initiator,
            profile,
            local,
            remote,
            expected_fp: None,
            created: now,
            chan,
            retired: Vec::new(),
            peer_ike_rekey: None,
            phase,
            children: Vec::new(),
            udp_encap: false,
            local_nat: false,
            peer_id: None,
            last_rx: now,
            queue: VecDeque::new(),
            ike_rekey_at: None,
            ike_expire_at: None,
            keepalive_at: None,
            first_child_ts,
            deleting: false,
            remote_expected: None,
            psk: PskKeys::default(),
            peer_cert: None,
            delete_reason: None,
            peer_sha256: false,
            peer_frag: false,
        }
    }

    /// The peer's NAT mapping moved (RFC 7296 §2.23): with UDP encapsulation in use and the peer's address
    /// unchanged, its new port becomes the SA's remote (DPD, rekeys and the CHILD_SAs they make use it).
    /// True when it changed.
    pub fn follow_peer_port(&mut self, remote: SocketAddr) -> bool {
        if !self.udp_encap || remote.ip() != self.remote.ip() || remote == self.remote {
            return false;
        }
        self.remote = remote;
        true
    }

    pub fn is_half_open(&self) -> bool {
        matches!(self.phase, Phase::RespInitDone { .. })
    }

    pub fn is_dead(&self) -> bool {
        matches!(self.phase, Phase::Dead)
    }

    pub fn has_child(&self, spi_in: u32) -> bool {
        self.children.iter().any(|c| c.spi_in == spi_in)
    }

    pub fn spis(&self) -> Vec<u64> {
        let mut v = vec![self.chan.our_spi()];
        v.extend(self.retired.iter().map(Chan::our_spi));
        v.extend(self.peer_ike_rekey.as_ref().map(|(c, _)| c.our_spi()));
        v
    }
}

struct ChildAccept {
    sa: Payload,
    tsi: Payload,
    tsr: Payload,
    extra: Vec<Payload>,
    child: Child,
    keys: ChildSaKeys,
}

pub(crate) fn unprotected_error(spi_i: u64, n: Notify) -> Vec<u8> {
    Message {
        header: HeaderRepr {
            initiator_spi: spi_i,
            responder_spi: 0,
            version: VERSION_2_0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: FLAG_RESPONSE,
            message_id: 0,
        },
        payloads: vec![Payload::Notify(n)],
    }
    .to_vec()
}

impl IkeSa {
    // ---------------------------------------------------------------- IKE_SA_INIT, initiator

    pub fn initiate(
        now: Instant,
        id: IkeSaId,
        spi: u64,
        profile: Arc<Profile>,
        p: &InitiateParams,
        ctx: &mut Ctx<'_>,
    ) -> Self {
        let chan = Chan {
            spi_i: spi,
            spi_r: 0,
            initiator: true,
            suite: None,
            keys: None,
            ni: Vec::new(),
            nr: Vec::new(),
            next_req: 0,
            peer_next: 0,
            last_resp: None,
            reasm: None,
            out: None,
        };
        let group = profile
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .unwrap_or(DhGroup::Ecp256);
        let dh = group.generate(ctx.rng);
        let ni = ctx.nonce();
        let mut sa = IkeSa::blank(id, profile, p.local, p.remote, now, chan, Phase::Dead);
        sa.expected_fp = p.expected_fingerprint;
        // A subnet (`match identity remote address A M`) is no identity to send as IDr or to require.
        sa.remote_expected = p.remote_id.clone().or_else(|| {
            sa.profile
                .remote_mask
                .is_none()
                .then(|| sa.profile.remote_id.clone())?
        });
        // The keyring entry for the peer we call, once, for both directions (IOS): its address first, then
        // the identity we expect (VPN-SIP: the SIP number), then the wildcard - never another peer's entry.
        let called = match p.remote.ip() {
            IpAddr::V4(a) => Some(Identity::Ipv4(a)),
            IpAddr::V6(_) => None,
        };
        let ids: Vec<Identity> = called
            .into_iter()
            .chain(sa.remote_expected.clone())
            .collect();
        sa.psk = PskKeys::of(sa.profile.keyring.entry(&ids));
        sa.send_sa_init(now, ni, dh, None, 0, ctx);
        sa
    }

    fn send_sa_init(
        &mut self,
        now: Instant,
        ni: Vec<u8>,
        dh: DhKeyPair,
        cookie: Option<Vec<u8>>,
        retries: u8,
        ctx: &mut Ctx<'_>,
    ) {
        let mut payloads = Vec::new();
        if let Some(c) = &cookie {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.6
            //# the initiator [...] MUST retry the IKE_SA_INIT request, and include the Notify payload of type
            //# COOKIE containing the responder-supplied cookie data as the first payload
            payloads.push(Payload::Notify(Notify::new(NotifyType::COOKIE, c.clone())));
        }
        payloads.push(Payload::Sa(proposal::ike_sa_payload(
            &self.profile.ike_proposals,
            &[],
            Some(dh.group()),
        )));
        payloads.push(Payload::Ke(KeyExchange {
            group: dh.group().id(),
            data: dh.public().to_vec(),
        }));
        payloads.push(Payload::Nonce(ni.clone()));
        payloads.extend(nat_notifies(
            self.chan.spi_i,
            0,
            self.local,
            self.remote,
            self.profile.force_encap,
            ctx.rng,
        ));
        payloads.push(sig_hash_notify());
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.3
        //# The initiator indicates its support for IKE fragmentation [...] by including a Notify payload of
        //# type IKEV2_FRAGMENTATION_SUPPORTED
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            vec![],
        )));
        let msg = Message {
            header: self.chan.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads,
        };
        let raw = msg.to_vec();
        ctx.send(self.local, self.remote, &raw);
        self.chan.out = Some(Outstanding {
            msg_id: 0,
            raw: vec![raw.clone()],
            tries: 1,
            next_at: now + self.profile.retransmit.initial,
            pending: Pending::Auth,
        });
        self.phase = Phase::InitSent {
            ni,
            dh,
            req_raw: raw,
            cookie,
            retries,
        };
    }

    fn on_sa_init_response(&mut self, now: Instant, msg: &Message, raw: &[u8], ctx: &mut Ctx<'_>) {
        let Phase::InitSent {
            ni,
            dh,
            retries,
            cookie,
            req_raw,
        } = std::mem::replace(&mut self.phase, Phase::Dead)
        else {
            return;
        };
        if let Some(c) = msg.notify(NotifyType::COOKIE)
            && retries < 3
        {
            self.send_sa_init(now, ni, dh, Some(c.data.clone()), retries + 1, ctx);
            return;
        }
        if let Some(n) = msg.notify(NotifyType::INVALID_KE_PAYLOAD) {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-1.2
            //# In this case, the initiator MUST retry the IKE_SA_INIT with the corrected Diffie-Hellman group.
            let g = n
                .data
                .get(..2)
                .map(|b| DhId(u16::from_be_bytes([b[0], b[1]])));
            let ok = g
                .and_then(DhGroup::from_id)
                .filter(|g| self.profile.ike_proposals.iter().any(|p| p.dh.contains(g)));
            if let (Some(g), true) = (ok, retries < 3) {
                let dh = g.generate(ctx.rng);
                self.send_sa_init(now, ni, dh, cookie, retries + 1, ctx);
                return;
            }
            return self.fail(
                DeleteReason::NegotiationFailed(NotifyType::INVALID_KE_PAYLOAD),
                ctx,
            );
        }
        if let Some(e) = error_notify(&msg.payloads) {
            return self.fail(DeleteReason::NegotiationFailed(e), ctx);
        }
        let (Some(sa), Some(ke), Some(nr)) = (
            sa_of(&msg.payloads),
            ke_of(&msg.payloads),
            nonce_of(&msg.payloads),
        ) else {
            return self.fail(
                DeleteReason::NegotiationFailed(NotifyType::INVALID_SYNTAX),
                ctx,
            );
        };
        let suite = proposal::accept_ike(sa, &self.profile.ike_proposals)
            .filter(|s| s.dh == dh.group() && ke.group == s.dh.id());
        let Some(suite) = suite else {
            return self.fail(
                DeleteReason::NegotiationFailed(NotifyType::NO_PROPOSAL_CHOSEN),
                ctx,
            );
        };
        if !nonce_ok(nr) || msg.header.responder_spi == 0 {
            return self.fail(
                DeleteReason::NegotiationFailed(NotifyType::INVALID_SYNTAX),
                ctx,
            );
        }
        let Ok(gir) = dh.agree(&ke.data) else {
            return self.fail(
                DeleteReason::NegotiationFailed(NotifyType::INVALID_SYNTAX),
                ctx,
            );
        };
        self.chan.spi_r = msg.header.responder_spi;
        self.peer_sha256 = peer_supports_sha256(&msg.payloads);
        self.peer_frag = msg
            .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
            .is_some();
        let ss = skeyseed(suite.prf, &ni, nr, gir.as_bytes());
        self.chan.keys = Some(derive_ike_keys(
            &suite,
            ss.as_bytes(),
            &ni,
            nr,
            self.chan.spi_i,
            self.chan.spi_r,
        ));
        self.chan.suite = Some(suite);
        self.chan.ni = ni;
        self.chan.nr = nr.clone();
        self.chan.out = None;
        self.chan.next_req = 1;
        self.last_rx = now;
        if let Some((l, r)) = nat_detect(msg, self.local, self.remote) {
            self.local_nat = l;
            self.udp_encap = l || r || self.profile.force_encap;
        } else {
            self.udp_encap = self.profile.force_encap;
        }
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.23
        //# the initiator MUST [...] switch to port 4500 [...] if a NAT is detected
        if self.udp_encap && self.local.port() != ctx.nat_t_port {
            self.local.set_port(ctx.nat_t_port);
            if self.remote.port() == 500 {
                self.remote.set_port(4500);
            }
        }
        // No pre-shared key for the peer we call: stop here, before IKE_AUTH (an AUTH over an empty key
        // would only hand the peer a MAC). The half-open SA goes; the peer's times out.
        if self.missing_psk() {
            let reason = AuthFailure::NoKey(self.remote.ip().to_string());
            ctx.ev.push_back(Event::AuthFailed {
                peer: self.remote,
                reason: reason.clone(),
            });
            return self.fail(DeleteReason::AuthFailed(reason), ctx);
        }
        let child_spi = ctx.child_spi();
        self.phase = Phase::AuthSent {
            sa_init_req: req_raw,
            sa_init_resp: raw.to_vec(),
            child_spi,
        };
        self.send_auth_request(now, child_spi, ctx);
    }

    /// Largest IKE message we send unfragmented (None: never fragment).
    fn fragment_limit(&self, ctx: &Ctx<'_>) -> Option<usize> {
        let mtu = ctx.fragment_mtu.filter(|_| self.peer_frag)? as usize;
        let marker = if self.local.port() == ctx.nat_t_port {
            4
        } else {
            0
        };
        Some(mtu.saturating_sub(20 + 8 + marker))
    }

    /// Our CERT (RSA only) and AUTH payloads.
    fn our_auth(
        &self,
        prf: crate::crypto::PrfAlg,
        msg: &[u8],
        nonce: &[u8],
        sk_p: &[u8],
        id: &Identification,
        ctx: &mut Ctx<'_>,
    ) -> (Option<Payload>, Payload) {
        match &self.profile.local_auth {
            LocalAuth::Psk => {
                // Callers stop before signing without a key (`missing_psk`); an empty key never signs.
                let psk = self.psk.local.as_ref().map_or(&[][..], |k| k.as_bytes());
                let a = psk_auth(prf, psk, msg, nonce, sk_p, id);
                (
                    None,
                    Payload::Auth(Authentication {
                        method: AuthMethod::SHARED_KEY,
                        data: a.as_bytes().to_vec(),
                    }),
                )
            }
            LocalAuth::Rsa(cred) => {
                let octets = signed_octets(prf, msg, nonce, sk_p, id);
                let (method, data) = rsa_sign(cred, &octets, self.peer_sha256, ctx.rng);
                (
                    Some(Payload::Cert(Certificate {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: cred.cert_der().to_vec(),
                    })),
                    Payload::Auth(Authentication {
                        method: AuthMethod(method),
                        data,
                    }),
                )
            }
        }
    }

    /// The only way to an [`AuthVerified`]: PSK or RSA per `authentication remote`, plus the fingerprint.
    fn verify_peer(
        &self,
        input: &PeerAuthInput<'_>,
        inner: &[Payload],
        ctx: &Ctx<'_>,
    ) -> Result<(AuthVerified, Option<crate::pki::ValidatedCert>), AuthFailure> {
        match self.profile.remote_auth {
            RemoteAuth::Psk => verify_psk_peer(input, self.psk.remote.as_ref()).map(|p| (p, None)),
            RemoteAuth::RsaSig => {
                let chain: Vec<&[u8]> = inner
                    .iter()
                    .filter_map(|p| match p {
                        Payload::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => {
                            Some(c.data.as_slice())
                        }
                        _ => None,
                    })
                    .collect();
                let trust = CertTrust {
                    pinned: &self.profile.trusted_certs,
                    pki: ctx.pki,
                    trustpoints: &self.profile.ca_trustpoints,
                    map: self.profile.certificate_map.as_deref(),
                    now: ctx.wall,
                };
                verify_rsa_peer_chain(input, &chain, &trust)
            }
        }
    }

    /// The validated peer certificate, when a CA trustpoint anchored it.
    pub fn peer_cert(&self) -> Option<&crate::pki::ValidatedCert> {
        self.peer_cert.as_ref()
    }

    /// Deletes the IKE SA because the peer's certificate was revoked (`disconnect-revoked-peers`).
    pub fn disconnect_revoked(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        self.delete_reason = Some(DeleteReason::CertificateRevoked);
        if !matches!(self.phase, Phase::Established(_)) {
            return self.fail(DeleteReason::CertificateRevoked, ctx);
        }
        self.command(now, Cmd::DeleteIke, ctx);
    }

    /// A pre-shared key the profile needs for this peer but its keyring entry does not give (the key we sign
    /// with, or the one the peer's AUTH must verify with).
    fn missing_psk(&self) -> bool {
        (matches!(self.profile.local_auth, LocalAuth::Psk) && self.psk.local.is_none())
            || (self.profile.remote_auth == RemoteAuth::Psk && self.psk.remote.is_none())
    }

    fn send_auth_request(&mut self, now: Instant, child_spi: u32, ctx: &mut Ctx<'_>) {
        let Phase::AuthSent { sa_init_req, .. } = &self.phase else {
            return;
        };
        let (Some(suite), Some(keys)) = (self.chan.suite, self.chan.keys.as_ref()) else {
            return;
        };
        let idi = self.local_identity().to_wire();
        let (cert, auth) = self.our_auth(
            suite.prf,
            sa_init_req,
            &self.chan.nr,
            keys.sk_pi.as_bytes(),
            &idi,
            ctx,
        );
        let mut inner = vec![Payload::IdI(idi)];
        inner.extend(cert);
        inner.push(Payload::Notify(Notify::new(
            NotifyType::INITIAL_CONTACT,
            vec![],
        )));
        if self.profile.remote_auth == RemoteAuth::RsaSig {
            inner.push(Payload::CertReq(Certificate {
                encoding: CertEncoding::X509_SIGNATURE,
                data: vec![],
            }));
        }
        if let Some(r) = &self.remote_expected {
            inner.push(Payload::IdR(r.to_wire()));
        }
        inner.push(auth);
        if self.profile.mode == Mode::Transport {
            inner.push(Payload::Notify(Notify::new(
                NotifyType::USE_TRANSPORT_MODE,
                vec![],
            )));
        }
        inner.push(Payload::Sa(proposal::esp_sa_payload(
            &self.profile.esp_proposals,
            child_spi,
            None,
        )));
        let (l, r) = self.first_child_ts.clone();
        inner.push(Payload::TsI(l));
        inner.push(Payload::TsR(r));
        self.send_request(now, None, ExchangeType::IKE_AUTH, inner, Pending::Auth, ctx);
    }

    // ---------------------------------------------------------------- IKE_SA_INIT, responder

    #[allow(clippy::too_many_arguments)]
    pub fn respond_init(
        now: Instant,
        id: IkeSaId,
        spi: u64,
        profile: Arc<Profile>,
        proposals: &[IkeProposal],
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
        raw: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Option<IkeSa> {
        let spi_i = msg.header.initiator_spi;
        let (Some(sa), Some(ke), Some(ni)) = (
            sa_of(&msg.payloads),
            ke_of(&msg.payloads),
            nonce_of(&msg.payloads),
        ) else {
            return None;
        };
        if !nonce_ok(ni) || msg.header.message_id != 0 {
            return None;
        }
        let Some((number, suite)) = proposal::select_ike(sa, proposals, Some(ke.group)) else {
            ctx.send(
                local,
                remote,
                &unprotected_error(spi_i, Notify::new(NotifyType::NO_PROPOSAL_CHOSEN, vec![])),
            );
            return None;
        };
        if suite.dh.id() != ke.group {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.10.1
            //# INVALID_KE_PAYLOAD [...] The Notification Data contains the accepted D-H Group # in big endian order.
            let n = Notify::new(
                NotifyType::INVALID_KE_PAYLOAD,
                suite.dh.id().0.to_be_bytes().to_vec(),
            );
            ctx.send(local, remote, &unprotected_error(spi_i, n));
            return None;
        }
        let dh = suite.dh.generate(ctx.rng);
        let gir = dh.agree(&ke.data).ok()?;
        let nr = ctx.nonce();
        let ss = skeyseed(suite.prf, ni, &nr, gir.as_bytes());
        let keys = derive_ike_keys(&suite, ss.as_bytes(), ni, &nr, spi_i, spi);
        let chan = Chan {
            spi_i,
            spi_r: spi,
            initiator: false,
            suite: Some(suite),
            keys: Some(keys),
            ni: ni.clone(),
            nr: nr.clone(),
            next_req: 0,
            peer_next: 1,
            last_resp: None,
            reasm: None,
            out: None,
        };
        let mut s = IkeSa::blank(id, profile, local, remote, now, chan, Phase::Dead);
        let mut payloads = vec![
            Payload::Sa(vec![proposal::ike_chosen(number, &suite, &[])]),
            Payload::Ke(KeyExchange {
                group: suite.dh.id(),
                data: dh.public().to_vec(),
            }),
            Payload::Nonce(nr),
        ];
        payloads.extend(nat_notifies(
            spi_i,
            spi,
            local,
            remote,
            s.profile.force_encap,
            ctx.rng,
        ));
        payloads.push(sig_hash_notify());
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.3
        //# The initiator indicates its support for IKE fragmentation [...] by including a Notify payload of
        //# type IKEV2_FRAGMENTATION_SUPPORTED
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            vec![],
        )));
        if s.profile.remote_auth == RemoteAuth::RsaSig {
            payloads.push(Payload::CertReq(Certificate {
                encoding: CertEncoding::X509_SIGNATURE,
                data: vec![],
            }));
        }
        s.peer_sha256 = peer_supports_sha256(&msg.payloads);
        s.peer_frag = msg
            .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
            .is_some();
        let resp = Message {
            header: s.chan.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads,
        }
        .to_vec();
        if let Some((l, r)) = nat_detect(msg, local, remote) {
            s.local_nat = l;
            s.udp_encap = l || r || s.profile.force_encap;
        } else {
            s.udp_encap = s.profile.force_encap;
        }
        ctx.send(local, remote, &resp);
        s.phase = Phase::RespInitDone {
            sa_init_req: raw.to_vec(),
            sa_init_resp: resp,
        };
        Some(s)
    }

    pub fn retransmit_sa_init_response(&mut self, raw: &[u8], ctx: &mut Ctx<'_>) {
        if let Phase::RespInitDone {
            sa_init_req,
            sa_init_resp,
        } = &self.phase
            && sa_init_req == raw
        {
            ctx.send(self.local, self.remote, sa_init_resp);
        }
    }

    // ---------------------------------------------------------------- protected messages

    /// `None`: the current channel; `Some(spi)`: the retired one with that SPI of ours.
    fn chan_mut(&mut self, old: Option<u64>) -> Option<&mut Chan> {
        match old {
            None => Some(&mut self.chan),
            Some(spi) => self.retired.iter_mut().find(|c| c.our_spi() == spi),
        }
    }

    fn retire_drop(&mut self, spi: u64, ctx: &mut Ctx<'_>) {
        self.retired.retain(|c| c.our_spi() != spi);
        ctx.dropped_spis.push(spi);
    }

    fn send_request(
        &mut self,
        now: Instant,
        old: Option<u64>,
        x: ExchangeType,
        inner: Vec<Payload>,
        pending: Pending,
        ctx: &mut Ctx<'_>,
    ) {
        let first = match (&pending, self.profile.dpd) {
            (Pending::Dpd, Some(d)) => d.retry,
            _ => self.profile.retransmit.initial,
        };
        let (local, remote) = (self.local, self.remote);
        let frag = self.fragment_limit(ctx);
        let Some(chan) = self.chan_mut(old) else {
            return;
        };
        let Some(keys) = chan.out_keys() else { return };
        let id = chan.next_req;
        chan.next_req = chan.next_req.wrapping_add(1);
        let raw = seal_maybe_fragmented(&keys, &chan.header(x, false, id), &inner, frag, ctx);
        for r in &raw {
            ctx.send(local, remote, r);
        }
        chan.out = Some(Outstanding {
            msg_id: id,
            raw,
            tries: 1,
            next_at: now + first,
            pending,
        });
    }

    fn send_response(
        &mut self,
        old: Option<u64>,
        x: ExchangeType,
        msg_id: u32,
        inner: Vec<Payload>,
        ctx: &mut Ctx<'_>,
    ) {
        let (local, remote) = (self.local, self.remote);
        let frag = self.fragment_limit(ctx);
        let Some(chan) = self.chan_mut(old) else {
            return;
        };
        let Some(keys) = chan.out_keys() else { return };
        let raw = seal_maybe_fragmented(&keys, &chan.header(x, true, msg_id), &inner, frag, ctx);
        for r in &raw {
            ctx.send(local, remote, r);
        }
        chan.last_resp = Some((msg_id, raw));
    }

    pub fn handle_message(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
        raw: &[u8],
        ctx: &mut Ctx<'_>,
    ) {
        if self.is_dead() {
            return;
        }
        let h = msg.header;
        if h.exchange_type == ExchangeType::IKE_SA_INIT {
            if h.is_response()
                && self.chan.initiator
                && h.initiator_spi == self.chan.spi_i
                && matches!(self.phase, Phase::InitSent { .. })
            {
                self.on_sa_init_response(now, msg, raw, ctx);
            }
            return;
        }
        let peer_is_i = h.flags & FLAG_INITIATOR != 0;
        let matches = |c: &Chan| {
            c.spi_i == h.initiator_spi && c.spi_r == h.responder_spi && c.initiator != peer_is_i
        };
        let old = if matches(&self.chan) {
            None
        } else if let Some(c) = self.retired.iter().find(|c| matches(c)) {
            Some(c.our_spi())
        } else {
            return;
        };
        let Some(chan) = self.chan_mut(old) else {
            return;
        };
        let Some(keys) = chan.in_keys() else { return };
        if h.is_response() {
            if chan.out.as_ref().is_none_or(|o| o.msg_id != h.message_id) {
                return;
            }
            let Some(inner) = chan.decrypt(&keys, msg, raw) else {
                return;
            };
            let Some(out) = chan.out.take() else { return };
            self.last_rx = now;
            self.on_response(now, old, out.pending, &inner, ctx);
        } else {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.1
            //# the responder MUST remember each response until it receives a request whose sequence number is
            //# larger than or equal to the sequence number in the response plus its window size.
            if h.message_id.wrapping_add(1) == chan.peer_next {
                // RFC 7383 §2.6.1: answer a retransmitted fragmented request once, on its first fragment.
                let first = !matches!(msg.payloads.last(), Some(Payload::Skf(f)) if f.number != 1);
                if let Some((id, r)) = &chan.last_resp
                    && *id == h.message_id
                    && first
                {
                    let r = r.clone();
                    for d in &r {
                        ctx.send(self.local, self.remote, d);
                    }
                }
                return;
            }
            if h.message_id != chan.peer_next {
                return;
            }
            let Some(inner) = chan.decrypt(&keys, msg, raw) else {
                return;
            };
            chan.peer_next = chan.peer_next.wrapping_add(1);
            self.last_rx = now;
            // Follow the peer (NAT-T port float, NAT rebinding) after an authenticated request.
            self.local = local;
            self.remote = remote;
            self.on_request(now, old, h.exchange_type, h.message_id, &inner, ctx);
        }
        if !self.is_dead() {
            self.kick(now, ctx);
        }
    }

    // ---------------------------------------------------------------- requests from the peer

    fn on_request(
        &mut self,
        now: Instant,
        old: Option<u64>,
        x: ExchangeType,
        msg_id: u32,
        inner: &[Payload],
        ctx: &mut Ctx<'_>,
    ) {
        match x {
            ExchangeType::IKE_AUTH
                if old.is_none() && matches!(self.phase, Phase::RespInitDone { .. }) =>
            {
                self.on_auth_request(now, msg_id, inner, ctx)
            }
            ExchangeType::CREATE_CHILD_SA
                if old.is_none() && matches!(self.phase, Phase::Established(_)) =>
            {
                self.on_create_child_request(now, msg_id, inner, ctx)
            }
            ExchangeType::INFORMATIONAL if matches!(self.phase, Phase::Established(_)) => {
                self.on_info_request(old, msg_id, inner, ctx)
            }
            _ => {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25
                //# TEMPORARY_FAILURE [...] if the SA is being rekeyed
                let t = if old.is_some() {
                    NotifyType::TEMPORARY_FAILURE
                } else {
                    NotifyType::INVALID_SYNTAX
                };
                let n = Payload::Notify(Notify::new(t, vec![]));
                self.send_response(old, x, msg_id, vec![n], ctx);
            }
        }
    }

    fn on_auth_request(&mut self, now: Instant, msg_id: u32, inner: &[Payload], ctx: &mut Ctx<'_>) {
        let Phase::RespInitDone {
            sa_init_req,
            sa_init_resp,
        } = std::mem::replace(&mut self.phase, Phase::Dead)
        else {
            return;
        };
        let idi = find(inner, |p| {
            if let Payload::IdI(i) = p {
                Some(i)
            } else {
                None
            }
        });
        let auth = find(inner, |p| {
            if let Payload::Auth(a) = p {
                Some(a)
            } else {
                None
            }
        });
        let (Some(idi), Some(auth), Some(suite)) = (idi, auth, self.chan.suite) else {
            return self.reject_auth(msg_id, AuthFailure::Missing("IDi/AUTH"), ctx);
        };
        let peer = Identity::from_wire(idi);
        // A VPN-SIP call that named the profile for this peer wins (several local numbers: each
        // number's tunnels have their own profile and identity); else the first profile that matches.
        let chosen = ctx
            .expected_profiles
            .get(&peer)
            .and_then(|name| ctx.profiles.iter().find(|p| &p.name == name));
        let Some(profile) = chosen
            .or_else(|| {
                ctx.profiles
                    .iter()
                    .find(|p| p.matches_remote(&peer, self.remote.ip()))
            })
            .cloned()
        else {
            return self.reject_auth(msg_id, AuthFailure::IdentityMismatch(peer.to_string()), ctx);
        };
        if !profile.matches_remote(&peer, self.remote.ip()) {
            return self.reject_auth(msg_id, AuthFailure::IdentityMismatch(peer.to_string()), ctx);
        }
        self.profile = profile;
        self.first_child_ts = self.profile.ts.selectors();
        // The keyring entry for this initiator, once, for both directions: its IDi first, then its address
        // (a peer behind static NAT may send its private address), then the wildcard.
        let from = match self.remote.ip() {
            IpAddr::V4(a) => Some(Identity::Ipv4(a)),
            IpAddr::V6(_) => None,
        };
        let ids: Vec<Identity> = std::iter::once(peer.clone()).chain(from).collect();
        self.psk = PskKeys::of(self.profile.keyring.entry(&ids));
        if self.missing_psk() {
            return self.reject_auth(msg_id, AuthFailure::NoKey(peer.to_string()), ctx);
        }
        let fp = self.profile.vpn_sip.then(|| {
            ctx.expectations.get(&peer).copied().or_else(|| {
                ctx.expectations
                    .iter()
                    .find(|(k, _)| k.matches(&peer))
                    .map(|(_, f)| *f)
            })
        });
        let Some(keys) = self.chan.keys.as_ref() else {
            return;
        };
        let input = PeerAuthInput {
            prf: suite.prf,
            id: idi,
            method: auth.method.0,
            auth: &auth.data,
            signed_msg: &sa_init_req,
            nonce: &self.chan.nr,
            sk_p: keys.sk_pi.as_bytes(),
            // A subnet was checked above (`matches_remote`); an identity is checked again with the AUTH.
            expected_id: self
                .profile
                .remote_id
                .as_ref()
                .filter(|_| self.profile.remote_mask.is_none()),
            vpn_sip_fingerprint: fp,
        };
        let proof = match self.verify_peer(&input, inner, ctx) {
            Ok((p, cert)) => {
                self.peer_cert = cert;
                p
            }
            Err(reason) => return self.reject_auth(msg_id, reason, ctx),
        };
        self.peer_id = Some(peer.clone());
        let idr = self.local_identity().to_wire();
        let (cert, auth) = self.our_auth(
            suite.prf,
            &sa_init_resp,
            &self.chan.ni,
            keys.sk_pr.as_bytes(),
            &idr,
            ctx,
        );
        let mut resp = vec![Payload::IdR(idr)];
        resp.extend(cert);
        resp.push(auth);
        let (ni, nr) = (self.chan.ni.clone(), self.chan.nr.clone());
        let child = self.accept_child(now, inner, &ni, &nr, None, None, ctx);
        let child_keys = match child {
            Ok(a) => {
                resp.extend(a.extra);
                resp.push(a.sa);
                resp.push(a.tsi);
                resp.push(a.tsr);
                self.children.push(a.child);
                Some(a.keys)
            }
            Err(n) => {
                resp.push(Payload::Notify(Notify::new(n, vec![])));
                None
            }
        };
        self.send_response(None, ExchangeType::IKE_AUTH, msg_id, resp, ctx);
        self.established(now, proof, ctx);
        if let Some(k) = child_keys {
            ctx.ev.push_back(Event::ChildSaEstablished {
                ike_sa: self.id,
                child: k,
            });
        }
    }

    fn reject_auth(&mut self, msg_id: u32, reason: AuthFailure, ctx: &mut Ctx<'_>) {
        let n = Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, vec![]));
        self.send_response(None, ExchangeType::IKE_AUTH, msg_id, vec![n], ctx);
        ctx.ev.push_back(Event::AuthFailed {
            peer: self.remote,
            reason,
        });
        self.phase = Phase::Dead;
    }

    fn established(&mut self, now: Instant, proof: AuthVerified, ctx: &mut Ctx<'_>) {
        self.phase = Phase::Established(Established {
            _proof: proof,
            since: now,
        });
        self.arm_ike_timers(now);
        if self.local_nat {
            self.keepalive_at = Some(now + KEEPALIVE);
        }
        if let Some(p) = &self.peer_id {
            ctx.ev.push_back(Event::IkeSaEstablished {
                ike_sa: self.id,
                peer: self.remote,
                peer_id: p.clone(),
            });
        }
    }

    fn arm_ike_timers(&mut self, now: Instant) {
        let life = self.profile.ike_lifetime;
        self.ike_expire_at = Some(now + life);
        // Only the original initiator rekeys on its own, which avoids most simultaneous rekeys.
        self.ike_rekey_at = self.original_initiator.then(|| now + life.mul_f32(0.9));
    }

    /// Responder side of a CHILD_SA negotiation (IKE_AUTH or CREATE_CHILD_SA).
    #[allow(clippy::too_many_arguments)]
    fn accept_child(
        &mut self,
        now: Instant,
        req: &[Payload],
        ni: &[u8],
        nr: &[u8],
        ke_group: Option<DhId>,
        gir: Option<&[u8]>,
        ctx: &mut Ctx<'_>,
    ) -> Result<ChildAccept, NotifyType> {
        let sa = sa_of(req).ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let (number, spi_out, suite) =
            proposal::select_esp(sa, &self.profile.esp_proposals, ke_group)
                .ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let (Some(tsi), Some(tsr)) = ts_of(req) else {
            return Err(NotifyType::TS_UNACCEPTABLE);
        };
        let (our_local, our_remote) = self.first_child_ts.clone();
        let ts_remote = narrow(tsi, &our_remote).ok_or(NotifyType::TS_UNACCEPTABLE)?;
        let ts_local = narrow(tsr, &our_local).ok_or(NotifyType::TS_UNACCEPTABLE)?;
        let transport = notify_of(req, NotifyType::USE_TRANSPORT_MODE).is_some()
            && self.profile.mode == Mode::Transport;
        let mode = if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let spi_in = ctx.child_spi();
        let (Some(s), Some(k)) = (self.chan.suite, self.chan.keys.as_ref()) else {
            return Err(NotifyType::TEMPORARY_FAILURE);
        };
        let km = child_keymat(
            s.prf,
            k.sk_d.as_bytes(),
            gir,
            ni,
            nr,
            suite.encr,
            suite.integ,
        );
        // We are the responder of this exchange: inbound traffic uses the initiator's keys.
        let keys = self.child_keys(
            spi_in, spi_out, &suite, mode, &ts_local, &ts_remote, km, false,
        );
        let child = self.new_child(
            now,
            spi_in,
            spi_out,
            suite,
            mode,
            ts_local.clone(),
            ts_remote.clone(),
        );
        let extra = if transport {
            vec![Payload::Notify(Notify::new(
                NotifyType::USE_TRANSPORT_MODE,
                vec![],
            ))]
        } else {
            vec![]
        };
        Ok(ChildAccept {
            sa: Payload::Sa(vec![proposal::esp_chosen(number, &suite, spi_in)]),
            tsi: Payload::TsI(ts_remote),
            tsr: Payload::TsR(ts_local),
            extra,
            child,
            keys,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn child_keys(
        &self,
        spi_in: u32,
        spi_out: u32,
        suite: &EspSuite,
        mode: Mode,
        ts_local: &[TrafficSelector],
        ts_remote: &[TrafficSelector],
        km: crate::keys::ChildKeymat,
        exchange_initiator: bool,
    ) -> ChildSaKeys {
        let (key_out, integ_key_out, key_in, integ_key_in) = if exchange_initiator {
            (
                km.encr_i.clone(),
                km.integ_i.clone(),
                km.encr_r.clone(),
                km.integ_r.clone(),
            )
        } else {
            (
                km.encr_r.clone(),
                km.integ_r.clone(),
                km.encr_i.clone(),
                km.integ_i.clone(),
            )
        };
        ChildSaKeys {
            spi_in,
            spi_out,
            encr: suite.encr,
            integ: suite.integ,
            key_in,
            integ_key_in,
            key_out,
            integ_key_out,
            esn: suite.esn,
            mode,
            ts_local: ts_local.to_vec(),
            ts_remote: ts_remote.to_vec(),
            udp_encap: self.udp_encap,
            local: self.local,
            remote: self.remote,
            lifetime: self.profile.child_lifetime,
            lifetime_kb: self.profile.child_lifetime_kb,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_child(
        &self,
        now: Instant,
        spi_in: u32,
        spi_out: u32,
        suite: EspSuite,
        mode: Mode,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    ) -> Child {
        let life = self.profile.child_lifetime;
        Child {
            spi_in,
            spi_out,
            suite,
            ts_local,
            ts_remote,
            created: now,
            mode,
            rekey_at: self.original_initiator.then(|| now + life.mul_f32(0.9)),
            expire_at: Some(now + life),
            rekeyed: false,
            rekey_in_flight: false,
            our_rekey: None,
            peer_rekey: None,
        }
    }

    fn on_create_child_request(
        &mut self,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
        ctx: &mut Ctx<'_>,
    ) {
        let err = |n: NotifyType| vec![Payload::Notify(Notify::new(n, vec![]))];
        let (Some(sa), Some(ni)) = (sa_of(inner), nonce_of(inner)) else {
            return self.send_response(
                None,
                ExchangeType::CREATE_CHILD_SA,
                msg_id,
                err(NotifyType::INVALID_SYNTAX),
                ctx,
            );
        };
        if !nonce_ok(ni) {
            return self.send_response(
                None,
                ExchangeType::CREATE_CHILD_SA,
                msg_id,
                err(NotifyType::INVALID_SYNTAX),
                ctx,
            );
        }
        let ke = ke_of(inner);
        if sa.first().is_some_and(|p| p.protocol == ProtocolId::IKE) {
            return self.on_ike_rekey_request(now, msg_id, sa, ni, ke, ctx);
        }
        let nr = ctx.nonce();
        let mut dh_pub = None;
        let mut gir = None;
        if let Some(ke) = ke {
            let Some(g) = DhGroup::from_id(ke.group) else {
                return self.send_response(
                    None,
                    ExchangeType::CREATE_CHILD_SA,
                    msg_id,
                    err(NotifyType::INVALID_KE_PAYLOAD),
                    ctx,
                );
            };
            let dh = g.generate(ctx.rng);
            match dh.agree(&ke.data) {
                Ok(s) => gir = Some(s),
                Err(_) => {
                    return self.send_response(
                        None,
                        ExchangeType::CREATE_CHILD_SA,
                        msg_id,
                        err(NotifyType::INVALID_SYNTAX),
                        ctx,
                    );
                }
            }
            dh_pub = Some(KeyExchange {
                group: ke.group,
                data: dh.public().to_vec(),
            });
        }
        let rekey = notify_of(inner, NotifyType::REKEY_SA)
            .and_then(|n| <[u8; 4]>::try_from(n.spi.as_slice()).ok())
            .map(u32::from_be_bytes);
        if let Some(r) = rekey
            && !self.children.iter().any(|c| c.spi_out == r)
        {
            let mut v = Notify::new(NotifyType::CHILD_SA_NOT_FOUND, vec![]);
            v.protocol = ProtocolId::ESP;
            v.spi = r.to_be_bytes().to_vec();
            return self.send_response(
                None,
                ExchangeType::CREATE_CHILD_SA,
                msg_id,
                vec![Payload::Notify(v)],
                ctx,
            );
        }
        let acc = self.accept_child(
            now,
            inner,
            ni,
            &nr,
            dh_pub.as_ref().map(|k| k.group),
            gir.as_ref().map(|g| g.as_bytes()),
            ctx,
        );
        match acc {
            Err(n) => self.send_response(None, ExchangeType::CREATE_CHILD_SA, msg_id, err(n), ctx),
            Ok(a) => {
                let mut resp = vec![a.sa, Payload::Nonce(nr.clone())];
                if let Some(k) = dh_pub {
                    resp.push(Payload::Ke(k));
                }
                resp.push(a.tsi);
                resp.push(a.tsr);
                resp.extend(a.extra);
                self.send_response(None, ExchangeType::CREATE_CHILD_SA, msg_id, resp, ctx);
                if let Some(r) = rekey {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8.1
                    //# the redundant SA [...] SHOULD be deleted by the node that initiated the exchange
                    //# that created it: the one with the lowest of the four nonces
                    let peer_min = ni.as_slice().min(nr.as_slice()).to_vec();
                    let new_in = a.child.spi_in;
                    let mut redundant_ours = None;
                    for c in self.children.iter_mut().filter(|c| c.spi_out == r) {
                        c.rekeyed = true;
                        if c.rekey_in_flight {
                            c.peer_rekey = Some((peer_min.clone(), new_in));
                        } else if let Some((our_min, our_new)) = &c.our_rekey
                            && *our_min < peer_min
                        {
                            redundant_ours = Some(*our_new);
                        }
                    }
                    if let Some(x) = redundant_ours {
                        self.queue.push_back(Cmd::DeleteChild(x));
                    }
                }
                self.children.push(a.child);
                ctx.ev.push_back(Event::ChildSaEstablished {
                    ike_sa: self.id,
                    child: a.keys,
                });
            }
        }
    }

    fn on_ike_rekey_request(
        &mut self,
        now: Instant,
        msg_id: u32,
        sa: &[Proposal],
        ni: &[u8],
        ke: Option<&KeyExchange>,
        ctx: &mut Ctx<'_>,
    ) {
        let x = ExchangeType::CREATE_CHILD_SA;
        let err = |n: NotifyType, d: Vec<u8>| vec![Payload::Notify(Notify::new(n, d))];
        let Some(ke) = ke else {
            return self.send_response(
                None,
                x,
                msg_id,
                err(NotifyType::INVALID_SYNTAX, vec![]),
                ctx,
            );
        };
        let Some((number, suite)) =
            proposal::select_ike(sa, &self.profile.ike_proposals, Some(ke.group))
        else {
            return self.send_response(
                None,
                x,
                msg_id,
                err(NotifyType::NO_PROPOSAL_CHOSEN, vec![]),
                ctx,
            );
        };
        if suite.dh.id() != ke.group {
            return self.send_response(
                None,
                x,
                msg_id,
                err(
                    NotifyType::INVALID_KE_PAYLOAD,
                    suite.dh.id().0.to_be_bytes().to_vec(),
                ),
                ctx,
            );
        }
        let spi_i = sa
            .iter()
            .find(|p| p.number == number)
            .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
            .map(u64::from_be_bytes);
        let (Some(spi_i), Some(old_suite), Some(old_keys)) =
            (spi_i, self.chan.suite, self.chan.keys.as_ref())
        else {
            return self.send_response(
                None,
                x,
                msg_id,
                err(NotifyType::INVALID_SYNTAX, vec![]),
                ctx,
            );
        };
        let dh = suite.dh.generate(ctx.rng);
        let Ok(gir) = dh.agree(&ke.data) else {
            return self.send_response(
                None,
                x,
                msg_id,
                err(NotifyType::INVALID_SYNTAX, vec![]),
                ctx,
            );
        };
        let spi_r = ctx.ike_spi();
        let nr = ctx.nonce();
        let ss = skeyseed_rekey(
            old_suite.prf,
            old_keys.sk_d.as_bytes(),
            gir.as_bytes(),
            ni,
            &nr,
        );
        let keys = derive_ike_keys(&suite, ss.as_bytes(), ni, &nr, spi_i, spi_r);
        let resp = vec![
            Payload::Sa(vec![proposal::ike_chosen(
                number,
                &suite,
                &spi_r.to_be_bytes(),
            )]),
            Payload::Nonce(nr.clone()),
            Payload::Ke(KeyExchange {
                group: suite.dh.id(),
                data: dh.public().to_vec(),
            }),
        ];
        self.send_response(None, x, msg_id, resp, ctx);
        let new = Chan {
            spi_i,
            spi_r,
            initiator: false,
            suite: Some(suite),
            keys: Some(keys),
            ni: ni.to_vec(),
            nr,
            next_req: 0,
            peer_next: 0,
            last_resp: None,
            reasm: None,
            out: None,
        };
        let ours_in_flight = matches!(
            self.chan.out.as_ref().map(|o| &o.pending),
            Some(Pending::RekeyIke { .. })
        );
        if ours_in_flight {
            // Simultaneous IKE SA rekey: decide when our own response arrives.
            let min = ni.min(new.nr.as_slice()).to_vec();
            ctx.new_spis.push(new.our_spi());
            self.peer_ike_rekey = Some((new, min));
            return;
        }
        self.swap_chan(now, new, ctx);
    }

    /// Makes `new` current; the previous channel is retired until its DELETE. Returns its SPI (ours).
    fn swap_chan(&mut self, now: Instant, new: Chan, ctx: &mut Ctx<'_>) -> u64 {
        ctx.new_spis.push(new.our_spi());
        let old = std::mem::replace(&mut self.chan, new);
        let spi = old.our_spi();
        self.retired.push(old);
        self.original_initiator = self.chan.initiator;
        self.arm_ike_timers(now);
        spi
    }

    fn on_info_request(
        &mut self,
        old: Option<u64>,
        msg_id: u32,
        inner: &[Payload],
        ctx: &mut Ctx<'_>,
    ) {
        let x = ExchangeType::INFORMATIONAL;
        if old.is_none() && notify_of(inner, NotifyType::AUTHENTICATION_FAILED).is_some() {
            // The initiator did not accept our authentication (e.g. its SDP fingerprint does not match).
            self.send_response(old, x, msg_id, vec![], ctx);
            ctx.ev.push_back(Event::AuthFailed {
                peer: self.remote,
                reason: AuthFailure::PeerRejected,
            });
            return self.teardown(DeleteReason::AuthFailed(AuthFailure::PeerRejected), ctx);
        }
        let deletes: Vec<&Delete> = inner
            .iter()
            .filter_map(|p| {
                if let Payload::Delete(d) = p {
                    Some(d)
                } else {
                    None
                }
            })
            .collect();
        //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4.1
        //# Deleting an IKE SA implicitly closes any remaining Child SAs negotiated under it. The response to a
        //# request that deletes the IKE SA is an empty INFORMATIONAL response.
        if deletes.iter().any(|d| d.protocol == ProtocolId::IKE) {
            self.send_response(old, x, msg_id, vec![], ctx);
            if let Some(spi) = old {
                self.retire_drop(spi, ctx);
            } else {
                self.teardown(DeleteReason::PeerRequest, ctx);
            }
            return;
        }
        let mut ours = Vec::new();
        for d in deletes.iter().filter(|d| d.protocol == ProtocolId::ESP) {
            for spi in &d.spis {
                let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                    continue;
                };
                let spi = u32::from_be_bytes(b);
                if let Some(pos) = self.children.iter().position(|c| c.spi_out == spi) {
                    let c = self.children.remove(pos);
                    ours.push(c.spi_in.to_be_bytes().to_vec());
                    ctx.ev.push_back(Event::ChildSaDeleted {
                        ike_sa: self.id,
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                    });
                }
            }
        }
        let resp = if ours.is_empty() {
            vec![]
        } else {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4.1
            //# the responder [...] MUST include in its response the inbound SPIs of the pairs it deletes
            vec![Payload::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: ours,
            })]
        };
        self.send_response(old, x, msg_id, resp, ctx);
    }

    // ---------------------------------------------------------------- responses to our requests

    fn on_response(
        &mut self,
        now: Instant,
        old: Option<u64>,
        pending: Pending,
        inner: &[Payload],
        ctx: &mut Ctx<'_>,
    ) {
        match pending {
            Pending::Auth => self.on_auth_response(now, inner, ctx),
            Pending::RekeyChild {
                old_spi_in,
                new_spi_in,
                ni,
                dh,
            } => self.on_rekey_child_response(now, old_spi_in, new_spi_in, &ni, dh, inner, ctx),
            Pending::RekeyIke { new_spi_i, ni, dh } => {
                self.on_rekey_ike_response(now, new_spi_i, &ni, dh, inner, ctx)
            }
            Pending::DeleteChild(spi_in) => {
                if let Some(pos) = self.children.iter().position(|c| c.spi_in == spi_in) {
                    let c = self.children.remove(pos);
                    ctx.ev.push_back(Event::ChildSaDeleted {
                        ike_sa: self.id,
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                    });
                }
            }
            Pending::DeleteIke => {
                let why = self
                    .delete_reason
                    .take()
                    .unwrap_or(DeleteReason::LocalRequest);
                self.teardown(why, ctx)
            }
            Pending::DeleteOldIke => {
                if let Some(spi) = old {
                    self.retire_drop(spi, ctx);
                }
            }
            Pending::Dpd => {}
        }
    }

    fn on_auth_response(&mut self, now: Instant, inner: &[Payload], ctx: &mut Ctx<'_>) {
        let Phase::AuthSent {
            sa_init_resp,
            child_spi,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Dead)
        else {
            return;
        };
        if notify_of(inner, NotifyType::AUTHENTICATION_FAILED).is_some() {
            ctx.ev.push_back(Event::AuthFailed {
                peer: self.remote,
                reason: AuthFailure::PeerRejected,
            });
            return self.fail(DeleteReason::AuthFailed(AuthFailure::PeerRejected), ctx);
        }
        let idr = find(inner, |p| {
            if let Payload::IdR(i) = p {
                Some(i)
            } else {
                None
            }
        });
        let auth = find(inner, |p| {
            if let Payload::Auth(a) = p {
                Some(a)
            } else {
                None
            }
        });
        let (Some(idr), Some(auth), Some(suite)) = (idr, auth, self.chan.suite) else {
            let e = error_notify(inner).unwrap_or(NotifyType::INVALID_SYNTAX);
            return self.fail(DeleteReason::NegotiationFailed(e), ctx);
        };
        let Some(keys) = self.chan.keys.as_ref() else {
            return;
        };
        // `match identity remote address A M`: the responder's IDr or its address inside the subnet.
        let subnet_mismatch = (self.remote_expected.is_none()
            && !self
                .profile
                .matches_remote(&Identity::from_wire(idr), self.remote.ip()))
        .then(|| AuthFailure::IdentityMismatch(Identity::from_wire(idr).to_string()));
        let input = PeerAuthInput {
            prf: suite.prf,
            id: idr,
            method: auth.method.0,
            auth: &auth.data,
            signed_msg: &sa_init_resp,
            nonce: &self.chan.ni,
            sk_p: keys.sk_pr.as_bytes(),
            expected_id: self.remote_expected.as_ref(),
            vpn_sip_fingerprint: self.profile.vpn_sip.then_some(self.expected_fp),
        };
        let verified = match subnet_mismatch {
            Some(e) => Err(e),
            None => self.verify_peer(&input, inner, ctx),
        };
        let proof = match verified {
            Ok((p, cert)) => {
                self.peer_cert = cert;
                p
            }
            Err(reason) => {
                ctx.ev.push_back(Event::AuthFailed {
                    peer: self.remote,
                    reason: reason.clone(),
                });
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.2
                //# If the failure occurs on the initiator, the AUTHENTICATION_FAILED notification MAY be sent
                //# in a separate INFORMATIONAL exchange
                let n = Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, vec![]));
                self.send_request(
                    now,
                    None,
                    ExchangeType::INFORMATIONAL,
                    vec![n],
                    Pending::Dpd,
                    ctx,
                );
                return self.fail(DeleteReason::AuthFailed(reason), ctx);
            }
        };
        self.peer_id = Some(Identity::from_wire(idr));
        self.established(now, proof, ctx);
        let (ni, nr) = (self.chan.ni.clone(), self.chan.nr.clone());
        if let Some(k) = self.install_initiated_child(now, child_spi, &ni, &nr, None, None, inner) {
            ctx.ev.push_back(Event::ChildSaEstablished {
                ike_sa: self.id,
                child: k,
            });
        } else {
            // The peer refused the CHILD_SA but kept the IKE SA (RFC 7296 section 2.21.2 allows it;
            // strongSwan does it). This IKE SA was only brought up for its CHILD_SA, and one kept without
            // it would leave the tunnel down without a word: delete it with the peer's reason, so the
            // owner logs it and tries again later.
            let why = error_notify(inner).unwrap_or(NotifyType::NO_PROPOSAL_CHOSEN);
            self.delete_reason = Some(DeleteReason::NegotiationFailed(why));
            self.command(now, Cmd::DeleteIke, ctx);
        }
    }

    /// Initiator side: installs the CHILD_SA from a response (IKE_AUTH or CREATE_CHILD_SA).
    #[allow(clippy::too_many_arguments)]
    fn install_initiated_child(
        &mut self,
        now: Instant,
        spi_in: u32,
        ni: &[u8],
        nr: &[u8],
        pfs: Option<DhGroup>,
        gir: Option<&[u8]>,
        inner: &[Payload],
    ) -> Option<ChildSaKeys> {
        let sa = sa_of(inner)?;
        let (spi_out, suite) = proposal::accept_esp(sa, &self.profile.esp_proposals, pfs)?;
        let (Some(tsi), Some(tsr)) = ts_of(inner) else {
            return None;
        };
        let mode = if notify_of(inner, NotifyType::USE_TRANSPORT_MODE).is_some() {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let (s, k) = (self.chan.suite?, self.chan.keys.as_ref()?);
        let km = child_keymat(
            s.prf,
            k.sk_d.as_bytes(),
            gir,
            ni,
            nr,
            suite.encr,
            suite.integ,
        );
        let keys = self.child_keys(spi_in, spi_out, &suite, mode, tsi, tsr, km, true);
        let child = self.new_child(now, spi_in, spi_out, suite, mode, tsi.clone(), tsr.clone());
        self.children.push(child);
        Some(keys)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_rekey_child_response(
        &mut self,
        now: Instant,
        old_spi_in: u32,
        new_spi_in: u32,
        ni: &[u8],
        dh: Option<DhKeyPair>,
        inner: &[Payload],
        ctx: &mut Ctx<'_>,
    ) {
        let retry_later = |s: &mut Self| {
            for c in s.children.iter_mut().filter(|c| c.spi_in == old_spi_in) {
                c.rekey_in_flight = false;
                c.rekey_at = Some(now + Duration::from_secs(30));
            }
        };
        let Some(nr) = nonce_of(inner).filter(|n| nonce_ok(n)) else {
            return retry_later(self);
        };
        let gir = match (&dh, ke_of(inner)) {
            (Some(d), Some(ke)) if ke.group == d.group().id() => match d.agree(&ke.data) {
                Ok(g) => Some(g),
                Err(_) => return retry_later(self),
            },
            (None, None) => None,
            _ => return retry_later(self),
        };
        let Some(k) = self.install_initiated_child(
            now,
            new_spi_in,
            ni,
            nr,
            dh.as_ref().map(DhKeyPair::group),
            gir.as_ref().map(|g| g.as_bytes()),
            inner,
        ) else {
            return retry_later(self);
        };
        ctx.ev.push_back(Event::ChildSaEstablished {
            ike_sa: self.id,
            child: k,
        });
        let our_min = ni.min(nr.as_slice()).to_vec();
        let mut ours_redundant = false;
        for c in self.children.iter_mut().filter(|c| c.spi_in == old_spi_in) {
            c.rekeyed = true;
            c.rekey_in_flight = false;
            if let Some((peer_min, _)) = &c.peer_rekey {
                ours_redundant = our_min < *peer_min;
            }
            c.our_rekey = Some((our_min.clone(), new_spi_in));
        }
        if ours_redundant {
            // Simultaneous rekey and our exchange had the lowest nonce: our new SA is the redundant one.
            self.queue.push_front(Cmd::DeleteChild(new_spi_in));
        } else {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8
            //# the initiator [...] deletes the old SA
            self.queue.push_front(Cmd::DeleteChild(old_spi_in));
        }
    }

    /// Our IKE SA rekey failed: a crossing rekey by the peer (if any) wins; else try again later.
    fn ike_rekey_failed(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        match self.peer_ike_rekey.take() {
            Some((theirs, _)) => {
                self.swap_chan(now, theirs, ctx);
            }
            None => self.ike_rekey_at = Some(now + Duration::from_secs(30)),
        }
    }

    fn on_rekey_ike_response(
        &mut self,
        now: Instant,
        new_spi_i: u64,
        ni: &[u8],
        dh: DhKeyPair,
        inner: &[Payload],
        ctx: &mut Ctx<'_>,
    ) {
        let (Some(sa), Some(nr), Some(ke)) = (
            sa_of(inner),
            nonce_of(inner).filter(|n| nonce_ok(n)),
            ke_of(inner),
        ) else {
            return self.ike_rekey_failed(now, ctx);
        };
        let Some(suite) = proposal::accept_ike(sa, &self.profile.ike_proposals)
            .filter(|s| s.dh == dh.group() && ke.group == s.dh.id())
        else {
            return self.ike_rekey_failed(now, ctx);
        };
        let spi_r = sa
            .first()
            .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
            .map(u64::from_be_bytes);
        let (Some(spi_r), Some(old_suite), Some(old_keys), Ok(gir)) = (
            spi_r,
            self.chan.suite,
            self.chan.keys.as_ref(),
            dh.agree(&ke.data),
        ) else {
            return self.ike_rekey_failed(now, ctx);
        };
        let ss = skeyseed_rekey(
            old_suite.prf,
            old_keys.sk_d.as_bytes(),
            gir.as_bytes(),
            ni,
            nr,
        );
        let keys = derive_ike_keys(&suite, ss.as_bytes(), ni, nr, new_spi_i, spi_r);
        let new = Chan {
            spi_i: new_spi_i,
            spi_r,
            initiator: true,
            suite: Some(suite),
            keys: Some(keys),
            ni: ni.to_vec(),
            nr: nr.clone(),
            next_req: 0,
            peer_next: 0,
            last_resp: None,
            reasm: None,
            out: None,
        };
        let our_min = ni.min(nr.as_slice()).to_vec();
        let to_delete = match self.peer_ike_rekey.take() {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8.2
            //# the IKE SA [...] that was created with the lowest of the four nonces is redundant and SHOULD be
            //# closed [by its initiator]
            Some((theirs, peer_min)) if our_min < peer_min => {
                // Ours is redundant: the peer's becomes current (the peer deletes the old one); we delete ours.
                let ours = new.our_spi();
                ctx.new_spis.push(ours);
                self.retired.push(new);
                self.swap_chan(now, theirs, ctx);
                ours
            }
            Some((theirs, _)) => {
                // Ours survives: we delete the old one; the peer deletes its redundant one (kept to answer).
                ctx.new_spis.push(theirs.our_spi());
                self.retired.push(theirs);
                self.swap_chan(now, new, ctx)
            }
            None => self.swap_chan(now, new, ctx),
        };
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
        //# After the new equivalent IKE SA is created, the initiator deletes the old IKE SA
        let del = vec![Payload::Delete(Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: vec![],
        })];
        self.send_request(
            now,
            Some(to_delete),
            ExchangeType::INFORMATIONAL,
            del,
            Pending::DeleteOldIke,
            ctx,
        );
    }

    // ---------------------------------------------------------------- commands and timers

    pub fn command(&mut self, now: Instant, cmd: Cmd, ctx: &mut Ctx<'_>) {
        if !matches!(self.phase, Phase::Established(_)) {
            if cmd == Cmd::DeleteIke {
                self.fail(DeleteReason::LocalRequest, ctx);
            }
            return;
        }
        if !self.queue.contains(&cmd) {
            self.queue.push_back(cmd);
        }
        self.kick(now, ctx);
    }

    fn kick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        while matches!(self.phase, Phase::Established(_)) && self.chan.out.is_none() {
            let Some(cmd) = self.queue.pop_front() else {
                return;
            };
            self.start(now, cmd, ctx);
        }
    }

    fn start(&mut self, now: Instant, cmd: Cmd, ctx: &mut Ctx<'_>) {
        match cmd {
            Cmd::RekeyChild(spi_in) => {
                let Some(c) = self
                    .children
                    .iter()
                    .find(|c| c.spi_in == spi_in && !c.rekeyed)
                else {
                    return;
                };
                let (ts_l, ts_r, mode) = (c.ts_local.clone(), c.ts_remote.clone(), c.mode);
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi_in) {
                    c.rekey_in_flight = true;
                }
                let new_spi_in = ctx.child_spi();
                let ni = ctx.nonce();
                let dh = self.profile.pfs.map(|g| g.generate(ctx.rng));
                let mut rekey = Notify::new(NotifyType::REKEY_SA, vec![]);
                rekey.protocol = ProtocolId::ESP;
                rekey.spi = spi_in.to_be_bytes().to_vec();
                let mut inner = vec![Payload::Notify(rekey)];
                if mode == Mode::Transport {
                    inner.push(Payload::Notify(Notify::new(
                        NotifyType::USE_TRANSPORT_MODE,
                        vec![],
                    )));
                }
                inner.push(Payload::Sa(proposal::esp_sa_payload(
                    &self.profile.esp_proposals,
                    new_spi_in,
                    self.profile.pfs,
                )));
                inner.push(Payload::Nonce(ni.clone()));
                if let Some(d) = &dh {
                    inner.push(Payload::Ke(KeyExchange {
                        group: d.group().id(),
                        data: d.public().to_vec(),
                    }));
                }
                inner.push(Payload::TsI(ts_l));
                inner.push(Payload::TsR(ts_r));
                self.send_request(
                    now,
                    None,
                    ExchangeType::CREATE_CHILD_SA,
                    inner,
                    Pending::RekeyChild {
                        old_spi_in: spi_in,
                        new_spi_in,
                        ni,
                        dh,
                    },
                    ctx,
                );
            }
            Cmd::RekeyIke => {
                let Some(suite) = self.chan.suite else { return };
                let new_spi_i = ctx.ike_spi();
                let ni = ctx.nonce();
                let dh = suite.dh.generate(ctx.rng);
                let inner = vec![
                    Payload::Sa(proposal::ike_sa_payload(
                        &self.profile.ike_proposals,
                        &new_spi_i.to_be_bytes(),
                        Some(suite.dh),
                    )),
                    Payload::Nonce(ni.clone()),
                    Payload::Ke(KeyExchange {
                        group: suite.dh.id(),
                        data: dh.public().to_vec(),
                    }),
                ];
                ctx.new_spis.push(new_spi_i);
                self.send_request(
                    now,
                    None,
                    ExchangeType::CREATE_CHILD_SA,
                    inner,
                    Pending::RekeyIke { new_spi_i, ni, dh },
                    ctx,
                );
            }
            Cmd::DeleteChild(spi_in) => {
                if !self.has_child(spi_in) {
                    return;
                }
                let d = Delete {
                    protocol: ProtocolId::ESP,
                    spi_size: 4,
                    spis: vec![spi_in.to_be_bytes().to_vec()],
                };
                self.send_request(
                    now,
                    None,
                    ExchangeType::INFORMATIONAL,
                    vec![Payload::Delete(d)],
                    Pending::DeleteChild(spi_in),
                    ctx,
                );
            }
            Cmd::DeleteIke => {
                self.deleting = true;
                let d = Delete {
                    protocol: ProtocolId::IKE,
                    spi_size: 0,
                    spis: vec![],
                };
                self.send_request(
                    now,
                    None,
                    ExchangeType::INFORMATIONAL,
                    vec![Payload::Delete(d)],
                    Pending::DeleteIke,
                    ctx,
                );
            }
            Cmd::Dpd => {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4
                //# An INFORMATIONAL request with no payloads (other than the empty Encrypted payload required by
                //# the syntax) is commonly used as a check for liveness.
                self.send_request(
                    now,
                    None,
                    ExchangeType::INFORMATIONAL,
                    vec![],
                    Pending::Dpd,
                    ctx,
                );
            }
        }
    }

    fn retransmit_timeout(&self, tries: u32, pending: &Pending) -> Duration {
        if let (Pending::Dpd, Some(d)) = (pending, self.profile.dpd) {
            return d.retry;
        }
        let r = self.profile.retransmit;
        r.initial
            .saturating_mul(1u32 << tries.saturating_sub(1).min(16))
            .min(r.max_timeout)
    }

    fn max_tries(&self, pending: &Pending) -> u32 {
        match (pending, self.profile.dpd) {
            // IOS: the first probe plus five retries at the retry interval.
            (Pending::Dpd, Some(_)) => 6,
            _ => self.profile.retransmit.max_tries,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if self.is_dead() {
            return;
        }
        let slots: Vec<Option<u64>> = std::iter::once(None)
            .chain(self.retired.iter().map(|c| Some(c.our_spi())))
            .collect();
        for old in slots {
            let (local, remote) = (self.local, self.remote);
            let Some(chan) = self.chan_mut(old) else {
                continue;
            };
            let Some(out) = chan.out.as_mut() else {
                continue;
            };
            if out.next_at > now {
                continue;
            }
            let tries = out.tries;
            let raw = out.raw.clone();
            let p = chan.out.take();
            let Some(mut out) = p else { continue };
            if tries >= self.max_tries(&out.pending) {
                // Give up.
                if let Some(spi) = old {
                    self.retire_drop(spi, ctx);
                    continue;
                }
                match (&self.phase, &out.pending) {
                    (Phase::Established(_), Pending::DeleteIke) => {
                        let why = self
                            .delete_reason
                            .take()
                            .unwrap_or(DeleteReason::LocalRequest);
                        self.teardown(why, ctx)
                    }
                    (Phase::Established(_), _) => self.teardown(DeleteReason::PeerDead, ctx),
                    _ => self.fail(DeleteReason::NegotiationTimeout, ctx),
                }
                return;
            }
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.1
            //# If it does not receive a response within a timeout period, it MUST retransmit the request
            for r in &raw {
                ctx.send(local, remote, r);
            }
            out.tries += 1;
            out.next_at = now + self.retransmit_timeout(out.tries, &out.pending);
            if let Some(chan) = self.chan_mut(old) {
                chan.out = Some(out);
            }
        }
        if let Phase::RespInitDone { .. } = self.phase {
            if now >= self.created + HALF_OPEN_TIMEOUT {
                self.phase = Phase::Dead;
            }
            return;
        }
        if !matches!(self.phase, Phase::Established(_)) {
            return;
        }
        if self.ike_expire_at.is_some_and(|t| t <= now) {
            return self.teardown(DeleteReason::Expired, ctx);
        }
        if self.ike_rekey_at.is_some_and(|t| t <= now) {
            self.ike_rekey_at = None;
            self.command(now, Cmd::RekeyIke, ctx);
        }
        let mut cmds = Vec::new();
        for c in &mut self.children {
            if c.rekey_at.is_some_and(|t| t <= now) && !c.rekeyed {
                c.rekey_at = None;
                cmds.push(Cmd::RekeyChild(c.spi_in));
            }
            if c.expire_at.is_some_and(|t| t <= now) {
                c.expire_at = None;
                c.rekey_at = None;
                cmds.push(Cmd::DeleteChild(c.spi_in));
            }
        }
        for c in cmds {
            self.command(now, c, ctx);
        }
        if let Some(d) = self.profile.dpd
            && d.periodic
            && self.chan.out.is_none()
            && self.queue.is_empty()
            && now >= self.last_rx + d.interval
        {
            self.command(now, Cmd::Dpd, ctx);
        }
        if let Some(t) = self.keepalive_at
            && t <= now
        {
            //= https://www.rfc-editor.org/rfc/rfc3948#section-2.3
            //# A NAT-keepalive packet is a UDP packet with a single octet body with the value 0xFF.
            ctx.tx.push_back(Transmit {
                local: self.local,
                remote: self.remote,
                payload: vec![0xff],
            });
            self.keepalive_at = Some(now + KEEPALIVE);
        }
        self.kick(now, ctx);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        // A running minimum (this runs after every touch of the SA: no allocation).
        let mut min: Option<Instant> = None;
        let mut v = |t: Option<Instant>| {
            if let Some(t) = t {
                min = Some(min.map_or(t, |m| m.min(t)));
            }
        };
        v(self.chan.out.as_ref().map(|o| o.next_at));
        for o in self.retired.iter().filter_map(|c| c.out.as_ref()) {
            v(Some(o.next_at));
        }
        match self.phase {
            Phase::Dead => return None,
            Phase::RespInitDone { .. } => v(Some(self.created + HALF_OPEN_TIMEOUT)),
            Phase::Established(_) => {
                v(self.ike_rekey_at);
                v(self.ike_expire_at);
                v(self.keepalive_at);
                for c in &self.children {
                    if !c.rekeyed {
                        v(c.rekey_at);
                    }
                    v(c.expire_at);
                }
                if let Some(d) = self.profile.dpd
                    && d.periodic
                    && self.chan.out.is_none()
                {
                    v(Some(self.last_rx + d.interval));
                }
            }
            _ => {}
        }
        min
    }

    fn fail(&mut self, reason: DeleteReason, ctx: &mut Ctx<'_>) {
        self.phase = Phase::Dead;
        if self.original_initiator {
            ctx.ev.push_back(Event::IkeSaDeleted {
                ike_sa: self.id,
                reason,
            });
        }
    }

    fn teardown(&mut self, reason: DeleteReason, ctx: &mut Ctx<'_>) {
        for c in self.children.drain(..) {
            ctx.ev.push_back(Event::ChildSaDeleted {
                ike_sa: self.id,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
        self.phase = Phase::Dead;
        ctx.ev.push_back(Event::IkeSaDeleted {
            ike_sa: self.id,
            reason,
        });
    }

    pub fn snapshot(&self, now: Instant, fragment_mtu: Option<u16>) -> Option<IkeSaSnapshot> {
        let (status, active) = match &self.phase {
            Phase::Dead => return None,
            Phase::Established(e) => (
                if self.deleting { "DELETE" } else { "READY" },
                now.saturating_duration_since(e.since),
            ),
            _ => ("IN-NEG", Duration::ZERO),
        };
        let s = self.chan.suite;
        let mut caps = String::new();
        if self.profile.dpd.is_some() {
            caps.push('D');
        }
        if self.udp_encap && !self.profile.vpn_sip {
            caps.push('N');
        }
        if self.profile.vpn_sip {
            caps.push('S');
        }
        Some(IkeSaSnapshot {
            id: self.id,
            local: self.local,
            remote: self.remote,
            status,
            initiator: self.chan.initiator,
            spi_i: self.chan.spi_i,
            spi_r: self.chan.spi_r,
            encr: s.map(|s| s.encr),
            prf: s.map(|s| s.prf),
            integ: s.and_then(|s| s.integ),
            dh: s.map(|s| s.dh),
            auth: match self.profile.local_auth {
                LocalAuth::Psk => "PSK",
                LocalAuth::Rsa(_) => "RSA",
            },
            lifetime: self.profile.ike_lifetime,
            active,
            profile: self.profile.name.clone(),
            local_id: self.local_identity(),
            peer_id: self.peer_id.clone(),
            nat_t: self.udp_encap,
            capabilities: caps,
            dpd: self.profile.dpd,
            fragmentation: self.peer_frag && fragment_mtu.is_some(),
            local_next_msg_id: self.chan.next_req,
            remote_next_msg_id: self.chan.peer_next,
            children: self
                .children
                .iter()
                .map(|c| ChildSaSnapshot {
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    encr: c.suite.encr,
                    integ: c.suite.integ,
                    mode: c.mode,
                    esn: c.suite.esn,
                    pfs: c.suite.dh,
                    ts_local: c.ts_local.clone(),
                    ts_remote: c.ts_remote.clone(),
                    remaining: (c.created + self.profile.child_lifetime)
                        .saturating_duration_since(now),
                    lifetime_kb: self.profile.child_lifetime_kb,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod ts_tests {
    use super::*;

    #[test]
    fn narrowing_intersects_ranges_protocols_and_ports() {
        let any = TrafficSelector::IPV4_ANY;
        let lan = TrafficSelector::Ipv4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: [10, 1, 0, 0].into(),
            end: [10, 1, 0, 255].into(),
        };
        assert_eq!(
            narrow(std::slice::from_ref(&lan), std::slice::from_ref(&any)),
            Some(vec![lan.clone()])
        );
        let gre = TrafficSelector::ipv4_host([10, 1, 0, 7].into(), 47);
        assert_eq!(ts_intersect(&lan, &gre), Some(gre.clone()));
        let udp = TrafficSelector::ipv4_host([10, 1, 0, 7].into(), 17);
        assert_eq!(ts_intersect(&udp, &gre), None);
        let other = TrafficSelector::ipv4_host([10, 2, 0, 7].into(), 0);
        assert_eq!(narrow(&[other], &[lan]), None);
        let v6any = TrafficSelector::Ipv6 {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: std::net::Ipv6Addr::UNSPECIFIED,
            end: std::net::Ipv6Addr::from(u128::MAX),
        };
        let v6host = TrafficSelector::Ipv6 {
            ip_protocol: 58,
            start_port: 0,
            end_port: 65535,
            start: "2001:db8::1".parse().unwrap(),
            end: "2001:db8::1".parse().unwrap(),
        };
        assert_eq!(ts_intersect(&v6any, &v6host), Some(v6host.clone()));
        assert_eq!(ts_intersect(&any, &v6host), None);
    }
}

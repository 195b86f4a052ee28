//! The NHRP engine shared by [`Nhc`](crate::Nhc) and [`Nhs`](crate::Nhs).
//!
//! One engine per NHRP interface. It answers resolution requests for its own
//! addresses (every node), registers with its NHSes (client role), accepts
//! registrations and forwards resolution requests (server role), sends and
//! honours traffic indications, purges, and keeps the cache.

use crate::cache::{Cache, Entry, EntryFlags, EntryType, Prefix};
use crate::config::Config;
use crate::show::{NhsSnapshot, NhsStatus, Role, Snapshot, Traffic};
use crate::wire::gre;
use crate::wire::nhrp::{
    Addr, Cie, Code, ErrorCode, Extension, ExtensionBody, ExtensionType, Header, OpType, Packet,
    Repr, flags,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Registration/resolution retransmission starts here and doubles.
const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Back-off ceiling (FRR and IOS use 64 s).
const RETRY_MAX: Duration = Duration::from_secs(64);
/// Unanswered registrations before an NHS is declared down.
const NHS_DOWN_AFTER: u32 = 3;
/// Resolution requests sent before giving up (first + retries).
const RESOLUTION_TRIES: u32 = 3;
/// Lifetime of a negative entry after a failed resolution.
const NEGATIVE_HOLD: Duration = Duration::from_secs(30);
/// Used entries are re-resolved this long before they expire.
const REFRESH_LEAD: Duration = Duration::from_secs(120);
/// At most one traffic indication per (source spoke, destination) this often.
const REDIRECT_HOLDDOWN: Duration = Duration::from_secs(4);
/// Bytes of the offending packet quoted in a traffic indication.
const INDICATION_QUOTE: usize = 64;
/// Cisco clear-text authentication type.
const AUTH_CLEAR_TEXT: u32 = 1;

/// An NHRP packet to send, GRE-encapsulated by the caller (or with [`Transmit::to_gre`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination NBMA address (post-NAT where known).
    pub nbma_dst: Ipv4Addr,
    /// `tunnel key` for the GRE header.
    pub gre_key: Option<u32>,
    /// The NHRP packet.
    pub payload: Vec<u8>,
}

impl Transmit {
    /// GRE header (protocol 0x2001, key) plus the NHRP packet.
    pub fn to_gre(&self) -> Vec<u8> {
        gre::Repr {
            protocol: gre::ProtocolType::NHRP,
            key: self.gre_key,
            seq: None,
            checksum: false,
        }
        .encapsulate(&self.payload)
    }
}

/// Facts for the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Client: an NHS answered our registration (it was not up before).
    Registered { nhs: Ipv4Addr },
    /// Client: an NHS stopped answering (`%DMVPN-3-NHRP_ERROR`).
    NhsDown { nhs: Ipv4Addr },
    /// Client: the NHS refused the registration (e.g. code 14, already registered).
    RegistrationRejected { nhs: Ipv4Addr, code: Code },
    /// Server: a new client registered (`%DMVPN-5-NHRP_CACHE: Client .. Registered.`).
    PeerRegistered {
        protocol: Ipv4Addr,
        nbma: Ipv4Addr,
        claimed: Option<Ipv4Addr>,
    },
    /// Server: a registration expired or was replaced; drop its multicast copy and SA.
    PeerExpired { protocol: Ipv4Addr, nbma: Ipv4Addr },
    /// A protocol address now maps to an NBMA address: bring up IPsec to it.
    Resolved { protocol: Ipv4Addr, nbma: Ipv4Addr },
    /// A resolution got no (or a negative) answer: keep using the NHS path.
    ResolutionFailed { protocol: Ipv4Addr },
    /// Phase 3: install `prefix via nexthop` over the tunnel (overrides the RIB).
    ShortcutRoute { prefix: Prefix, nexthop: Ipv4Addr },
    /// An entry went away (purge, expiry): remove routes/SAs that used it.
    Purge { prefix: Prefix },
    /// `%NHRP-4-QUOTA`: the max-send quota dropped a packet (once per interval).
    QuotaExceeded,
    /// A peer reported an error.
    ErrorIndication { from: Ipv4Addr, code: ErrorCode },
    /// A packet failed the authentication check and was dropped.
    AuthFailure { from: Ipv4Addr },
}

/// Answer of [`Core::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Send directly to this NBMA address.
    Known { via: Ipv4Addr, nbma: Ipv4Addr },
    /// A request is outstanding: send via the NHS meanwhile.
    Pending,
    /// No shortcut (failed recently, or no NHS): send via the NHS.
    ViaNhs,
}

/// Why an input packet was dropped (counters for `show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drops {
    pub malformed: u64,
    pub auth: u64,
    pub quota: u64,
    pub unexpected: u64,
    /// Replies not relayed because their hop count ran out.
    pub hop_limit: u64,
}

#[derive(Debug, Clone)]
struct NhsState {
    proto: Ipv4Addr,
    nbma: Option<Ipv4Addr>,
    status: NhsStatus,
    up: bool,
    since: Instant,
    request_id: u32,
    next_action: Instant,
    backoff: Duration,
    failures: u32,
}

#[derive(Debug, Clone)]
struct Pending {
    target: Ipv4Addr,
    shortcut: bool,
    tries: u32,
    next_retry: Instant,
    backoff: Duration,
}

#[derive(Debug, Clone, Default)]
struct Quota {
    window_start: Option<Instant>,
    sent: u32,
    warned: bool,
}

/// The engine. See the module docs.
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    cache: Cache,
    traffic: Traffic,
    drops: Drops,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_request_id: u32,
    quota: Quota,
    nhs: Vec<NhsState>,
    pending: HashMap<u32, Pending>,
    pending_by_target: HashMap<Ipv4Addr, u32>,
    routes: BTreeMap<Prefix, Ipv4Addr>,
    redirects: HashMap<(Ipv4Addr, Ipv4Addr), Instant>,
    /// Server: who asked about a registered address (protocol -> requester (proto, NBMA)).
    requesters: HashMap<Ipv4Addr, BTreeSet<(Ipv4Addr, Ipv4Addr)>>,
    post_nat_nbma: Option<Ipv4Addr>,
    /// Server: registered clients that set the Cisco NAT-capable flag.
    nat_capable: HashSet<Ipv4Addr>,
    /// Local prefixes we answered for, and to whom (proto, NBMA).
    answered: HashMap<Prefix, BTreeSet<(Ipv4Addr, Ipv4Addr)>>,
}

fn v4(a: &Addr) -> Option<Ipv4Addr> {
    a.to_ipv4()
}

fn prefix_len_of(cie: &Cie) -> u8 {
    if cie.prefix_len > 32 {
        32
    } else {
        cie.prefix_len
    }
}

impl Core {
    /// An engine at `now`: static maps enter the cache, NHS registration starts at once.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let mut cache = Cache::new();
        for (proto, nbma) in &cfg.static_maps {
            cache.insert(Entry::new_static(*proto, *nbma, now));
        }
        let nhs = cfg
            .nhs
            .iter()
            .map(|proto| NhsState {
                proto: *proto,
                nbma: cfg
                    .static_maps
                    .iter()
                    .find(|(p, _)| p == proto)
                    .map(|(_, n)| *n),
                status: NhsStatus::Expecting,
                up: false,
                since: now,
                request_id: 0,
                next_action: now,
                backoff: RETRY_INITIAL,
                failures: 0,
            })
            .collect();
        Self {
            next_request_id: cfg.first_request_id,
            cfg,
            cache,
            traffic: Traffic::default(),
            drops: Drops::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            quota: Quota::default(),
            nhs,
            pending: HashMap::new(),
            pending_by_target: HashMap::new(),
            routes: BTreeMap::new(),
            redirects: HashMap::new(),
            requesters: HashMap::new(),
            post_nat_nbma: None,
            nat_capable: HashSet::new(),
            answered: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The cache (read-only).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Our NBMA address after NAT, when an NHS saw us behind NAT (its Registration Reply's NAT extension).
    pub fn post_nat_nbma(&self) -> Option<Ipv4Addr> {
        self.post_nat_nbma.filter(|p| *p != self.cfg.nbma_addr)
    }

    /// True when the cache knows `nbma` as a peer behind NAT: its NBMA address is the post-NAT one, and it
    /// claimed another (a NATed registration, or a NAT extension in a request or reply).
    pub fn nbma_is_natted(&self, nbma: Ipv4Addr) -> bool {
        self.cache
            .iter()
            .any(|e| e.nbma == Some(nbma) && e.claimed_nbma.is_some_and(|c| c != nbma))
    }

    /// Drop counters.
    pub fn drops(&self) -> Drops {
        self.drops
    }

    /// Next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let nhs = self
            .nhs
            .iter()
            .filter(|n| n.nbma.is_some())
            .map(|n| n.next_action);
        let pending = self.pending.values().map(|p| p.next_retry);
        let refresh = self.cache.iter().filter_map(Self::refresh_at);
        // The end of a max-send interval that saw packets: `show`'s usage goes back to 0%.
        let quota = self
            .quota
            .window_start
            .filter(|_| self.quota.sent > 0)
            .map(|s| s + self.cfg.max_send.1);
        nhs.chain(pending)
            .chain(refresh)
            .chain(self.cache.next_expiry())
            .chain(quota)
            .min()
    }

    /// When a used, resolved entry is re-resolved: [`REFRESH_LEAD`] before it
    /// expires, or half its lifetime before for short holding times.
    fn refresh_at(e: &Entry) -> Option<Instant> {
        if e.kind != EntryType::Dynamic || e.flags.registered || !e.flags.used {
            return None;
        }
        let t = e.expires?;
        let lead = REFRESH_LEAD.min(t.saturating_duration_since(e.created) / 2);
        Some(t.checked_sub(lead).unwrap_or(e.created))
    }

    /// Route oracle for the server role: `prefix` is reached via the tunnel
    /// address `nexthop` (the appliance mirrors RIB routes over this tunnel).
    pub fn add_route(&mut self, prefix: Prefix, nexthop: Ipv4Addr) {
        self.routes.insert(prefix, nexthop);
    }

    /// Removes a route added with [`Core::add_route`].
    pub fn remove_route(&mut self, prefix: &Prefix) {
        self.routes.remove(prefix);
    }

    /// NBMA addresses a multicast packet is replicated to: static
    /// `map multicast` entries plus registered clients with `map multicast dynamic`.
    pub fn multicast_targets(&self) -> Vec<Ipv4Addr> {
        let mut set: BTreeSet<Ipv4Addr> = self.cfg.multicast_static.iter().copied().collect();
        if self.cfg.multicast_dynamic {
            set.extend(
                self.cache
                    .iter()
                    .filter(|e| e.flags.registered)
                    .filter_map(|e| e.nbma),
            );
        }
        set.into_iter().collect()
    }

    /// Plain data for `show`.
    pub fn snapshot(&self) -> Snapshot {
        let usage = self
            .quota
            .sent
            .saturating_mul(100)
            .checked_div(self.cfg.max_send.0)
            .unwrap_or(0);
        Snapshot {
            interface: self.cfg.interface.clone(),
            tunnel_addr: self.cfg.tunnel_addr,
            nbma_addr: self.cfg.nbma_addr,
            role: if self.cfg.nhs.is_empty() {
                Role::Hub
            } else {
                Role::Spoke
            },
            protect: self.cfg.protect.clone(),
            entries: self.cache.iter().cloned().collect(),
            nhs: self
                .nhs
                .iter()
                .map(|n| NhsSnapshot {
                    proto: n.proto,
                    nbma: n.nbma,
                    status: n.status,
                    since: n.since,
                    up: n.up,
                })
                .collect(),
            traffic: self.traffic,
            max_send: self.cfg.max_send,
            usage_percent: usage,
            post_nat_nbma: self.post_nat_nbma,
            drops: self.drops,
        }
    }

    // ---------------------------------------------------------------- sending

    fn alloc_request_id(&mut self) -> u32 {
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        id
    }

    fn our_cie(&self, prefix_len: u8) -> Cie {
        Cie {
            code: Code::SUCCESS,
            prefix_len,
            mtu: self.cfg.mtu,
            holding_time: self.cfg.holdtime_secs(),
            preference: 0,
            nbma: self.cfg.nbma_addr.into(),
            nbma_sub: Addr::EMPTY,
            proto: self.cfg.tunnel_addr.into(),
        }
    }

    fn auth_extension(&self) -> Option<Extension> {
        self.cfg.authentication.as_ref().map(|k| Extension {
            compulsory: true,
            body: ExtensionBody::Authentication {
                auth_type: AUTH_CLEAR_TEXT,
                data: k.as_bytes().to_vec(),
            },
        })
    }

    /// Responder, forward and reverse transit (empty), authentication.
    fn request_extensions(&self) -> Vec<Extension> {
        let mut v = vec![
            Extension {
                compulsory: true,
                body: ExtensionBody::ResponderAddress(vec![]),
            },
            Extension {
                compulsory: true,
                body: ExtensionBody::ForwardTransit(vec![]),
            },
            Extension {
                compulsory: true,
                body: ExtensionBody::ReverseTransit(vec![]),
            },
        ];
        v.extend(self.auth_extension());
        v
    }

    /// Sends subject to the max-send quota.
    // seed 001:416 (NHRP-15): 100 packets every 10 seconds per interface by default.
    fn send(&mut self, now: Instant, nbma_dst: Ipv4Addr, repr: &Repr) {
        let (max, every) = self.cfg.max_send;
        let fresh = self.quota.window_start.is_none_or(|s| now >= s + every);
        if fresh {
            self.quota = Quota {
                window_start: Some(now),
                sent: 0,
                warned: false,
            };
        }
        if self.quota.sent >= max {
            self.drops.quota += 1;
            if !self.quota.warned {
                self.quota.warned = true;
                self.events.push_back(Event::QuotaExceeded);
            }
            return;
        }
        let Ok(payload) = repr.emit() else {
            return;
        };
        self.quota.sent += 1;
        self.traffic.count_sent(repr.op.0);
        self.out.push_back(Transmit {
            nbma_dst,
            gre_key: self.cfg.gre_key,
            payload,
        });
    }

    fn send_registration(&mut self, now: Instant, idx: usize) {
        let Some(n) = self.nhs.get(idx) else { return };
        let (nhs_proto, Some(nhs_nbma)) = (n.proto, n.nbma) else {
            return;
        };
        let request_id = self.alloc_request_id();
        let unique = if self.cfg.unique {
            flags::U_REGISTRATION
        } else {
            0
        };
        let mut r = Repr::ipv4(
            OpType::REGISTRATION_REQUEST,
            Header::Common {
                flags: unique | flags::NAT,
                request_id,
            },
            self.cfg.nbma_addr,
            self.cfg.tunnel_addr,
            nhs_proto,
        );
        r.hop_count = 1;
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.3
        //# If the U bit is set ... the Prefix Length field ... MUST be set to 0xFF
        let mut cie = self.our_cie(if self.cfg.unique { 0xFF } else { 32 });
        cie.nbma = Addr::EMPTY;
        cie.proto = Addr::EMPTY;
        r.cies.push(cie);
        r.extensions = self.request_extensions();
        // NAT extension: the NHS as we know it, so it can detect that it is NATed.
        r.extensions.push(Extension {
            compulsory: false,
            body: ExtensionBody::NatAddress(vec![Cie {
                prefix_len: 32,
                nbma: nhs_nbma.into(),
                proto: nhs_proto.into(),
                ..Cie::default()
            }]),
        });
        if let Some(n) = self.nhs.get_mut(idx) {
            n.request_id = request_id;
            n.next_action = now + n.backoff;
        }
        self.send(now, nhs_nbma, &r);
    }

    /// The NHS to send resolution requests to: the first one up, else the first known; (protocol, NBMA).
    pub fn active_nhs(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        self.nhs
            .iter()
            .find(|n| n.up && n.nbma.is_some())
            .or_else(|| self.nhs.iter().find(|n| n.nbma.is_some()))
            .and_then(|n| n.nbma.map(|nbma| (n.proto, nbma)))
    }

    /// True when `nbma` is one of this node's NHSes' NBMA addresses.
    pub fn is_nhs_nbma(&self, nbma: Ipv4Addr) -> bool {
        self.nhs.iter().any(|n| n.nbma == Some(nbma))
    }

    fn send_resolution(&mut self, now: Instant, request_id: u32, target: Ipv4Addr) {
        let Some((_, nhs_nbma)) = self.active_nhs() else {
            return;
        };
        let mut r = Repr::ipv4(
            OpType::RESOLUTION_REQUEST,
            Header::Common {
                flags: flags::Q | flags::NAT,
                request_id,
            },
            self.cfg.nbma_addr,
            self.cfg.tunnel_addr,
            target,
        );
        let mut cie = self.our_cie(0xFF);
        cie.nbma = Addr::EMPTY;
        cie.proto = Addr::EMPTY;
        r.cies.push(cie);
        r.extensions = self.request_extensions();
        if let Some(post) = self.post_nat_nbma.filter(|p| *p != self.cfg.nbma_addr) {
            r.extensions.push(Extension {
                compulsory: false,
                body: ExtensionBody::NatAddress(vec![Cie {
                    prefix_len: 32,
                    nbma: post.into(),
                    proto: self.cfg.tunnel_addr.into(),
                    ..Cie::default()
                }]),
            });
        }
        self.send(now, nhs_nbma, &r);
    }

    fn send_error(&mut self, now: Instant, to: Ipv4Addr, code: ErrorCode, offending: &Repr) {
        let mut r = Repr::ipv4(
            OpType::ERROR_INDICATION,
            Header::Error { code, offset: 0 },
            self.cfg.nbma_addr,
            self.cfg.tunnel_addr,
            v4(&offending.src_proto).unwrap_or(Ipv4Addr::UNSPECIFIED),
        );
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.7
        //# Contents of NHRP Packet in error
        // Wireshark flags extensions on an Error Indication as malformed (§5.2.7),
        // so none are sent, and received ones are accepted without authentication.
        r.payload = offending.emit().unwrap_or_default();
        self.send(now, to, &r);
    }

    // -------------------------------------------------------------- commands

    /// Data for `dst` wants to leave the tunnel: the shortcut if known, else
    /// start a resolution (the caller keeps forwarding via the NHS meanwhile).
    pub fn resolve(&mut self, now: Instant, dst: Ipv4Addr) -> Resolution {
        self.resolve_inner(now, dst, false)
    }

    fn resolve_inner(&mut self, now: Instant, dst: Ipv4Addr, shortcut: bool) -> Resolution {
        if let Some(e) = self.cache.lookup_used(dst)
            && let Some(nbma) = e.nbma
        {
            return Resolution::Known { via: e.via, nbma };
        }
        if self.pending_by_target.contains_key(&dst) {
            return Resolution::Pending;
        }
        if self
            .cache
            .lookup(dst)
            .is_some_and(|e| e.kind == EntryType::Negative)
            || self.active_nhs().is_none()
        {
            return Resolution::ViaNhs;
        }
        let id = self.alloc_request_id();
        self.pending.insert(
            id,
            Pending {
                target: dst,
                shortcut,
                tries: 1,
                next_retry: now + RETRY_INITIAL,
                backoff: RETRY_INITIAL,
            },
        );
        self.pending_by_target.insert(dst, id);
        let host = Prefix::host(dst);
        if self.cache.get(&host).is_none() {
            self.cache.insert(Entry {
                prefix: host,
                via: dst,
                nbma: None,
                claimed_nbma: None,
                kind: EntryType::Incomplete,
                flags: EntryFlags::default(),
                created: now,
                expires: Some(now + NEGATIVE_HOLD * 6),
            });
        }
        self.send_resolution(now, id, dst);
        Resolution::Pending
    }

    /// Hub, `ip nhrp redirect`: a data packet that arrived from `from_nbma` on
    /// this NHRP network is being forwarded back out of it. Sends a traffic
    /// indication to the sender (rate-limited per source and destination).
    pub fn handle_hairpin(&mut self, now: Instant, from_nbma: Ipv4Addr, packet: &[u8]) {
        if !self.cfg.redirect {
            return;
        }
        let (Some(src), Some(dst)) = (ipv4_field(packet, 12), ipv4_field(packet, 16)) else {
            return;
        };
        let key = (src, dst);
        if self
            .redirects
            .get(&key)
            .is_some_and(|t| now < *t + REDIRECT_HOLDDOWN)
        {
            return;
        }
        self.redirects.retain(|_, t| now < *t + REDIRECT_HOLDDOWN);
        self.redirects.insert(key, now);
        let mut r = Repr::ipv4(
            OpType::TRAFFIC_INDICATION,
            Header::Traffic {
                code: 0,
                reserved: 0,
            },
            self.cfg.nbma_addr,
            self.cfg.tunnel_addr,
            src,
        );
        r.hop_count = 1;
        r.payload = packet
            .get(..INDICATION_QUOTE.min(packet.len()))
            .unwrap_or_default()
            .to_vec();
        r.extensions.extend(self.auth_extension());
        self.send(now, from_nbma, &r);
    }

    /// `clear ip nhrp`: drops dynamic entries (static ones stay).
    pub fn clear_dynamic(&mut self, now: Instant) {
        let gone = self.cache.remove_where(|e| e.kind != EntryType::Static);
        for e in gone {
            self.entry_gone(now, &e);
        }
    }

    // ---------------------------------------------------------------- timers

    /// Time passed: registrations, retransmissions, refreshes, expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .quota
            .window_start
            .is_some_and(|s| now >= s + self.cfg.max_send.1)
        {
            self.quota = Quota::default();
        }
        for idx in 0..self.nhs.len() {
            let Some(n) = self.nhs.get_mut(idx) else {
                continue;
            };
            if n.nbma.is_none() || now < n.next_action {
                continue;
            }
            if n.status == NhsStatus::Expecting && n.request_id != 0 {
                // The last request went unanswered.
                n.failures += 1;
                n.backoff = (n.backoff * 2).min(RETRY_MAX);
                if n.failures >= NHS_DOWN_AFTER && n.up {
                    n.up = false;
                    n.since = now;
                    let nhs = n.proto;
                    self.events.push_back(Event::NhsDown { nhs });
                }
            }
            if let Some(n) = self.nhs.get_mut(idx) {
                n.status = NhsStatus::Expecting;
            }
            self.send_registration(now, idx);
        }

        let mut due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.next_retry)
            .map(|(id, _)| *id)
            .collect();
        // Deterministic order (HashMap iteration is not).
        due.sort_unstable();
        for id in due {
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            if p.tries >= RESOLUTION_TRIES {
                let target = p.target;
                self.fail_resolution(now, id, target);
                continue;
            }
            p.tries += 1;
            p.backoff = (p.backoff * 2).min(RETRY_MAX);
            p.next_retry = now + p.backoff;
            let target = p.target;
            self.send_resolution(now, id, target);
        }

        let refresh: Vec<(Prefix, Ipv4Addr)> = self
            .cache
            .iter()
            .filter(|e| Self::refresh_at(e).is_some_and(|t| now >= t))
            .map(|e| (e.prefix, e.prefix.addr()))
            .collect();
        for (prefix, target) in refresh {
            if let Some(e) = self.cache.get_mut(&prefix) {
                e.flags.used = false;
            }
            if !self.pending_by_target.contains_key(&target) && self.active_nhs().is_some() {
                let id = self.alloc_request_id();
                self.pending.insert(
                    id,
                    Pending {
                        target,
                        shortcut: false,
                        tries: 1,
                        next_retry: now + RETRY_INITIAL,
                        backoff: RETRY_INITIAL,
                    },
                );
                self.pending_by_target.insert(target, id);
                self.send_resolution(now, id, target);
            }
        }

        for e in self.cache.expire(now) {
            self.entry_gone(now, &e);
        }
    }

    fn fail_resolution(&mut self, now: Instant, id: u32, target: Ipv4Addr) {
        self.pending.remove(&id);
        self.pending_by_target.remove(&target);
        let host = Prefix::host(target);
        if self
            .cache
            .get(&host)
            .is_none_or(|e| e.kind == EntryType::Incomplete)
        {
            self.cache.insert(Entry {
                prefix: host,
                via: target,
                nbma: None,
                claimed_nbma: None,
                kind: EntryType::Negative,
                flags: EntryFlags::default(),
                created: now,
                expires: Some(now + NEGATIVE_HOLD),
            });
        }
        self.events
            .push_back(Event::ResolutionFailed { protocol: target });
    }

    /// Book-keeping when an entry leaves the cache.
    fn entry_gone(&mut self, now: Instant, e: &Entry) {
        match e.kind {
            EntryType::Incomplete | EntryType::Negative => return,
            EntryType::Static | EntryType::Dynamic => {}
        }
        if e.flags.registered {
            if let Some(nbma) = e.nbma {
                self.events.push_back(Event::PeerExpired {
                    protocol: e.prefix.addr(),
                    nbma,
                });
            }
            self.purge_requesters(now, e.prefix.addr());
            self.forget_via(e.prefix.addr());
        }
        self.events.push_back(Event::Purge { prefix: e.prefix });
    }

    /// Server: tell everyone who resolved `proto` through us to forget it.
    //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.5
    //# The NHRP Purge Request packet is sent in order to invalidate cached
    //# information in a station.
    fn purge_requesters(&mut self, now: Instant, proto: Ipv4Addr) {
        let Some(reqs) = self.requesters.remove(&proto) else {
            return;
        };
        for (req_proto, req_nbma) in reqs {
            self.send_purge(now, req_proto, req_nbma, Prefix::host(proto));
        }
    }

    fn send_purge(&mut self, now: Instant, to_proto: Ipv4Addr, to_nbma: Ipv4Addr, target: Prefix) {
        let id = self.alloc_request_id();
        let mut r = Repr::ipv4(
            OpType::PURGE_REQUEST,
            Header::Common {
                flags: 0,
                request_id: id,
            },
            self.cfg.nbma_addr,
            self.cfg.tunnel_addr,
            to_proto,
        );
        r.cies.push(Cie {
            prefix_len: target.prefix_len(),
            proto: target.addr().into(),
            ..Cie::default()
        });
        r.extensions.extend(self.auth_extension());
        self.send(now, to_nbma, &r);
    }

    /// A network behind this node appeared: answer resolutions for it.
    pub fn add_local_prefix(&mut self, prefix: Prefix) {
        if !self.cfg.local_prefixes.contains(&prefix) {
            self.cfg.local_prefixes.push(prefix);
        }
    }

    /// A network behind this node went away: purge it at every node we told
    /// about it (seed-dmvpn §4.8.5, Phase 3).
    pub fn remove_local_prefix(&mut self, now: Instant, prefix: Prefix) {
        self.cfg.local_prefixes.retain(|p| *p != prefix);
        let Some(reqs) = self.answered.remove(&prefix) else {
            return;
        };
        for (req_proto, req_nbma) in reqs {
            self.send_purge(now, req_proto, req_nbma, prefix);
        }
    }

    // ----------------------------------------------------------------- input

    /// An NHRP packet (GRE payload, type 0x2001) arrived from `nbma_from`
    /// (the outer source address, post-NAT, after ESP decapsulation).
    pub fn handle_input(&mut self, now: Instant, nbma_from: Ipv4Addr, nhrp: &[u8]) {
        let r = match Packet::parse(nhrp) {
            Ok(r) => r,
            Err(_) => {
                self.drops.malformed += 1;
                return;
            }
        };
        self.traffic.count_rcvd(r.op.0);
        // seed 001:510: must be set to the same value on all hubs and spokes.
        if let Some(key) = self
            .cfg
            .authentication
            .as_ref()
            .filter(|_| r.op != OpType::ERROR_INDICATION)
            && r.auth_secret() != Some(key.as_bytes())
        {
            self.drops.auth += 1;
            self.events
                .push_back(Event::AuthFailure { from: nbma_from });
            return;
        }
        let is_request = matches!(
            r.op,
            OpType::RESOLUTION_REQUEST | OpType::REGISTRATION_REQUEST | OpType::PURGE_REQUEST
        );
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.3
        //# If a receiver does not recognize an extension with the C bit set, it
        //# MUST ... send an Error Indication
        if r.extensions
            .iter()
            .any(|e| e.compulsory && matches!(e.body, ExtensionBody::Unknown { .. }))
        {
            if is_request {
                self.send_error(now, nbma_from, ErrorCode::UNRECOGNIZED_EXTENSION, &r);
            }
            self.drops.unexpected += 1;
            return;
        }
        match r.op {
            OpType::REGISTRATION_REQUEST => self.on_registration_request(now, nbma_from, r),
            OpType::REGISTRATION_REPLY => self.on_registration_reply(now, &r),
            OpType::RESOLUTION_REQUEST => self.on_resolution_request(now, nbma_from, r),
            OpType::RESOLUTION_REPLY => self.on_resolution_reply(now, nbma_from, &r),
            OpType::PURGE_REQUEST => self.on_purge_request(now, nbma_from, r),
            OpType::PURGE_REPLY => {}
            OpType::ERROR_INDICATION => {
                if let Header::Error { code, .. } = r.header {
                    self.events.push_back(Event::ErrorIndication {
                        from: nbma_from,
                        code,
                    });
                }
            }
            OpType::TRAFFIC_INDICATION => self.on_traffic_indication(now, &r),
            _ => self.drops.unexpected += 1,
        }
    }

    fn on_registration_request(&mut self, now: Instant, nbma_from: Ipv4Addr, mut r: Repr) {
        let (Some(proto), Some(claimed)) = (v4(&r.src_proto), v4(&r.src_nbma)) else {
            self.drops.malformed += 1;
            return;
        };
        let unique = r.flags() & flags::U_REGISTRATION != 0;
        let hold = r.cies.first().map_or(0, |c| c.holding_time);
        let hold = if hold == 0 {
            self.cfg.holdtime
        } else {
            Duration::from_secs(u64::from(hold))
        };
        // seed 001:3036: the hub compares the source IP of the encapsulating
        //= header with the source NBMA address inside the Registration Request.
        let nat = claimed != nbma_from;
        let key = Prefix::host(proto);
        let existing = self.cache.get(&key).cloned();
        let code = match &existing {
            Some(e)
                if e.kind == EntryType::Static
                    || (e.flags.unique
                        && e.nbma != Some(nbma_from)
                        && e.expires.is_some_and(|t| t > now)) =>
            {
                Code::ALREADY_REGISTERED
            }
            _ => Code::SUCCESS,
        };
        if code == Code::SUCCESS {
            if r.flags() & flags::NAT != 0 {
                self.nat_capable.insert(proto);
            } else {
                self.nat_capable.remove(&proto);
            }
            let same = existing
                .as_ref()
                .is_some_and(|e| e.nbma == Some(nbma_from) && e.flags.registered);
            if let Some(old) = existing.as_ref().filter(|_| !same)
                && old.flags.registered
            {
                if let Some(nbma) = old.nbma {
                    self.events.push_back(Event::PeerExpired {
                        protocol: proto,
                        nbma,
                    });
                }
                self.purge_requesters(now, proto);
                self.forget_via(proto);
            }
            let used = existing.as_ref().is_some_and(|e| same && e.flags.used);
            self.cache.insert(Entry {
                prefix: key,
                via: proto,
                nbma: Some(nbma_from),
                claimed_nbma: nat.then_some(claimed),
                kind: EntryType::Dynamic,
                flags: EntryFlags {
                    authoritative: true,
                    unique,
                    registered: true,
                    nat,
                    used,
                    ..Default::default()
                },
                created: existing
                    .as_ref()
                    .filter(|_| same)
                    .map_or(now, |e| e.created),
                expires: Some(now + hold),
            });
            if !same {
                self.events.push_back(Event::PeerRegistered {
                    protocol: proto,
                    nbma: nbma_from,
                    claimed: nat.then_some(claimed),
                });
            }
        }
        // Reply: same request ID, CIE code, responder = us, NAT ext with the post-NAT address.
        r.op = OpType::REGISTRATION_REPLY;
        r.hop_count = 255;
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.3
        //# If an NHC is configured with the protocol address of a serving NHS then
        //# the NHC may place the NHS's protocol address in the Destination Protocol
        //# Address field ... otherwise the NHC must place its own protocol address
        // §5.2.4 forms the reply from the request, but a client that did not know
        // us (FRR `nhs dynamic`) learns the NHS from this field: name ourselves
        // (as FRR's hub does; unchanged for IOS clients, which already put us here).
        r.dst_proto = self.cfg.tunnel_addr.into();
        for c in &mut r.cies {
            c.code = code;
        }
        let had_nat_ext = !r.nat_cies().is_empty() || r.flags() & flags::NAT != 0;
        let mut exts = vec![Extension {
            compulsory: true,
            body: ExtensionBody::ResponderAddress(vec![self.our_cie(32)]),
        }];
        for ty in [
            ExtensionType::FORWARD_TRANSIT,
            ExtensionType::REVERSE_TRANSIT,
        ] {
            if let Some(b) = r.extension(ty) {
                exts.push(Extension {
                    compulsory: true,
                    body: b.clone(),
                });
            }
        }
        exts.extend(self.auth_extension());
        if had_nat_ext {
            let mut cies: Vec<Cie> = r.nat_cies().to_vec();
            if nat {
                // seed 001:3103: the reply carries the spoke's post-NAT address.
                cies.push(Cie {
                    prefix_len: 32,
                    nbma: nbma_from.into(),
                    proto: proto.into(),
                    ..Cie::default()
                });
            }
            exts.push(Extension {
                compulsory: false,
                body: ExtensionBody::NatAddress(cies),
            });
        }
        r.extensions = exts;
        self.send(now, nbma_from, &r);
    }

    fn on_registration_reply(&mut self, now: Instant, r: &Repr) {
        let id = r.request_id();
        let Some(idx) = self
            .nhs
            .iter()
            .position(|n| n.request_id == id && n.status == NhsStatus::Expecting)
        else {
            self.drops.unexpected += 1;
            return;
        };
        let code = r.cies.first().map_or(Code::SUCCESS, |c| c.code);
        let interval = self.cfg.registration_interval();
        let our_proto = self.cfg.tunnel_addr;
        let Some(n) = self.nhs.get_mut(idx) else {
            return;
        };
        let nhs = n.proto;
        if code != Code::SUCCESS {
            n.status = NhsStatus::Waiting;
            n.next_action = now + interval;
            self.events
                .push_back(Event::RegistrationRejected { nhs, code });
            return;
        }
        n.status = NhsStatus::Responding;
        n.failures = 0;
        n.backoff = RETRY_INITIAL;
        n.next_action = now + interval;
        if !n.up {
            n.up = true;
            n.since = now;
            self.events.push_back(Event::Registered { nhs });
        }
        // Our post-NAT address, if the NHS saw one.
        self.post_nat_nbma = r
            .nat_cies()
            .iter()
            .find(|c| v4(&c.proto) == Some(our_proto))
            .and_then(|c| v4(&c.nbma));
        if let Some(e) = self.cache.get_mut(&Prefix::host(nhs)) {
            e.flags.used = true;
        }
    }

    /// True when `dst` is ours to answer: our tunnel address or a local prefix.
    fn answer_prefix(&self, dst: Ipv4Addr) -> Option<Prefix> {
        if dst == self.cfg.tunnel_addr {
            return Some(Prefix::host(dst));
        }
        self.cfg
            .local_prefixes
            .iter()
            .filter(|p| p.contains(dst))
            .max_by_key(|p| p.prefix_len())
            .copied()
    }

    fn on_resolution_request(&mut self, now: Instant, nbma_from: Ipv4Addr, mut r: Repr) {
        let (Some(src_proto), Some(src_nbma), Some(dst)) =
            (v4(&r.src_proto), v4(&r.src_nbma), v4(&r.dst_proto))
        else {
            self.drops.malformed += 1;
            return;
        };
        // Requester's reachable NBMA: its NAT extension; else, for a registered
        // client that sent this itself, the outer source; else the claimed source.
        let nat_ext = r
            .nat_cies()
            .iter()
            .find(|c| v4(&c.proto) == Some(src_proto))
            .and_then(|c| v4(&c.nbma));
        let direct = self
            .cache
            .get(&Prefix::host(src_proto))
            .is_some_and(|e| e.flags.registered && e.nbma == Some(nbma_from));
        let requester_nbma = nat_ext.unwrap_or(if direct { nbma_from } else { src_nbma });

        if let Some(prefix) = self.answer_prefix(dst) {
            self.answer_resolution(now, r, prefix, src_proto, src_nbma, requester_nbma);
            return;
        }

        // Forward towards the owner (server role).
        // seed 001:3115: Hubs always forward NHRP resolution requests to the end spoke
        let target = self
            .cache
            .lookup(dst)
            .filter(|e| e.is_complete() && e.via != src_proto)
            .map(|e| (e.via, e.nbma))
            .or_else(|| {
                let (_, nh) = self
                    .routes
                    .iter()
                    .filter(|(p, _)| p.contains(dst))
                    .max_by_key(|(p, _)| p.prefix_len())?;
                let e = self
                    .cache
                    .get(&Prefix::host(*nh))
                    .filter(|e| e.is_complete() && e.via != src_proto)?;
                Some((e.via, e.nbma))
            });
        let Some((target_proto, Some(target_nbma))) = target else {
            // Nobody to forward to: negative reply to the requester.
            r.op = OpType::RESOLUTION_REPLY;
            for c in &mut r.cies {
                c.code = Code::NO_BINDING;
            }
            if r.cies.is_empty() {
                r.cies.push(Cie {
                    code: Code::NO_BINDING,
                    ..Cie::default()
                });
            }
            r.hop_count = 255;
            self.send(now, nbma_from, &r);
            return;
        };
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.3.2
        //# If a Next Hop Server finds its own address in the Forward Transit NHS
        //# Record ... then it MUST ... return an Error Indication ... "NHRP Loop Detected"
        let ours = Addr::from(self.cfg.tunnel_addr);
        let looped = matches!(r.extension(ExtensionType::FORWARD_TRANSIT),
            Some(ExtensionBody::ForwardTransit(c)) if c.iter().any(|c| c.proto == ours));
        if looped {
            self.send_error(now, nbma_from, ErrorCode::LOOP_DETECTED, &r);
            return;
        }
        if r.hop_count <= 1 {
            self.send_error(now, nbma_from, ErrorCode::HOP_COUNT_EXCEEDED, &r);
            return;
        }
        r.hop_count -= 1;
        let me = self.our_cie(32);
        match r.extension_mut(ExtensionType::FORWARD_TRANSIT) {
            Some(ExtensionBody::ForwardTransit(c)) => c.push(me),
            _ => r.extensions.push(Extension {
                compulsory: true,
                body: ExtensionBody::ForwardTransit(vec![me]),
            }),
        }
        // seed 001:3110: the hub adds a NAT extension for a NATed requester.
        if direct && nat_ext.is_none() && src_nbma != nbma_from {
            r.extensions.push(Extension {
                compulsory: false,
                body: ExtensionBody::NatAddress(vec![Cie {
                    prefix_len: 32,
                    nbma: nbma_from.into(),
                    proto: src_proto.into(),
                    ..Cie::default()
                }]),
            });
        }
        // seed 001:3110: when forwarding to a node that is not NAT-capable, the
        // hub rewrites the source NBMA to the requester's post-NAT address.
        let target_registered = self
            .cache
            .get(&Prefix::host(target_proto))
            .is_some_and(|e| e.flags.registered);
        if target_registered
            && !self.nat_capable.contains(&target_proto)
            && requester_nbma != src_nbma
        {
            r.src_nbma = requester_nbma.into();
        }
        self.requesters
            .entry(target_proto)
            .or_default()
            .insert((src_proto, requester_nbma));
        self.send(now, target_nbma, &r);
    }

    fn answer_resolution(
        &mut self,
        now: Instant,
        mut r: Repr,
        prefix: Prefix,
        src_proto: Ipv4Addr,
        src_nbma: Ipv4Addr,
        requester_nbma: Ipv4Addr,
    ) {
        // Learn the requester (we will talk to it directly).
        let hold = r.cies.first().map_or(0, |c| c.holding_time);
        let hold = if hold == 0 {
            self.cfg.holdtime
        } else {
            Duration::from_secs(u64::from(hold))
        };
        let key = Prefix::host(src_proto);
        if self
            .cache
            .get(&key)
            .is_none_or(|e| e.kind != EntryType::Static && !e.flags.registered)
        {
            let created = self
                .cache
                .get(&key)
                .filter(|e| e.nbma == Some(requester_nbma))
                .map_or(now, |e| e.created);
            self.cache.insert(Entry {
                prefix: key,
                via: src_proto,
                nbma: Some(requester_nbma),
                claimed_nbma: (requester_nbma != src_nbma).then_some(src_nbma),
                kind: EntryType::Dynamic,
                flags: EntryFlags {
                    router: r.flags() & flags::Q != 0,
                    implicit: true,
                    nat: requester_nbma != src_nbma,
                    ..Default::default()
                },
                created,
                expires: Some(now + hold),
            });
            self.events.push_back(Event::Resolved {
                protocol: src_proto,
                nbma: requester_nbma,
            });
        }
        if !prefix.is_host() || prefix.addr() != self.cfg.tunnel_addr {
            self.answered
                .entry(prefix)
                .or_default()
                .insert((src_proto, requester_nbma));
        }
        // seed 001:3119: the responder sends an NHRP resolution reply directly
        r.op = OpType::RESOLUTION_REPLY;
        r.hop_count = 255;
        r.header = Header::Common {
            flags: r.flags() | flags::A | flags::NAT,
            request_id: r.request_id(),
        };
        let me = self.our_cie(prefix.prefix_len());
        r.cies = vec![me];
        let mut exts = vec![Extension {
            compulsory: true,
            body: ExtensionBody::ResponderAddress(vec![me]),
        }];
        if let Some(b) = r.extension(ExtensionType::FORWARD_TRANSIT) {
            exts.push(Extension {
                compulsory: true,
                body: b.clone(),
            });
        }
        exts.push(Extension {
            compulsory: true,
            body: ExtensionBody::ReverseTransit(vec![]),
        });
        exts.extend(self.auth_extension());
        if let Some(post) = self.post_nat_nbma.filter(|p| *p != self.cfg.nbma_addr) {
            exts.push(Extension {
                compulsory: false,
                body: ExtensionBody::NatAddress(vec![Cie {
                    prefix_len: 32,
                    nbma: post.into(),
                    proto: self.cfg.tunnel_addr.into(),
                    ..Cie::default()
                }]),
            });
        }
        r.extensions = exts;
        // A requester behind NAT cannot be reached before it has sent us something: a masquerading NAT
        // holds no mapping for us yet (and, with tunnel protection, drops our IKE towards it too). The reply
        // goes back through the NHS, which relays it over the requester's registration (RFC 2332 §5.2.2
        // returns replies along the request's path; FRR's responders always do), and the requester, knowing
        // our NBMA address now, comes to us directly. A hub (no NHS), or a node that is the requester's
        // NHS itself (registered here at that post-NAT address, so its NAT holds a mapping towards us),
        // answers directly: its own NHS would not know the requester.
        let our_client = self
            .cache
            .get(&key)
            .is_some_and(|e| e.flags.registered && e.nbma == Some(requester_nbma));
        let to = match self.active_nhs() {
            Some((_, nhs)) if requester_nbma != src_nbma && !our_client => nhs,
            _ => requester_nbma,
        };
        self.send(now, to, &r);
    }

    /// Where to relay a Resolution Reply for requester `requester` that came
    /// from `nbma_from`: a registered client, else a complete cache entry or a
    /// route over the cloud (server role), never back to the sender.
    fn reply_next_hop(&self, requester: Ipv4Addr, nbma_from: Ipv4Addr) -> Option<Ipv4Addr> {
        if requester == self.cfg.tunnel_addr {
            return None;
        }
        let complete = |e: &&Entry| e.is_complete() && e.nbma != Some(nbma_from);
        if let Some(e) = self.cache.get(&Prefix::host(requester)).filter(complete) {
            return e.nbma;
        }
        let (_, nh) = self
            .routes
            .iter()
            .filter(|(p, _)| p.contains(requester))
            .max_by_key(|(p, _)| p.prefix_len())?;
        self.cache.get(&Prefix::host(*nh)).filter(complete)?.nbma
    }

    /// A Resolution Reply relayed through us: a responder we know behind NAT (a registered client whose
    /// claimed NBMA differs from where its packets come from) gets its post-NAT address in a NAT extension,
    /// as the hub does for a NATed requester's request (seed 001:3110, FRR `nhrp_peer_forward`), unless the
    /// responder put one there itself; for a requester that is not NAT-capable the CIE's NBMA is rewritten
    /// to the post-NAT address instead.
    fn relay_reply_nat(&self, r: &mut Repr, nbma_from: Ipv4Addr) {
        let Some((via, claimed)) = r
            .cies
            .first()
            .filter(|c| c.code == Code::SUCCESS)
            .and_then(|c| Some((v4(&c.proto)?, v4(&c.nbma))))
        else {
            return;
        };
        let registered = self
            .cache
            .get(&Prefix::host(via))
            .filter(|e| e.flags.registered)
            .and_then(|e| e.nbma);
        // Its registration, else the reply's outer source when it came straight from the responder.
        let post = registered.or_else(|| {
            v4(&r
                .extension(ExtensionType::RESPONDER_ADDRESS)
                .and_then(|b| match b {
                    ExtensionBody::ResponderAddress(c) => c.first().map(|c| c.proto),
                    _ => None,
                })?)
            .filter(|a| *a == via)
            .map(|_| nbma_from)
        });
        let Some(post) = post.filter(|p| claimed.is_some_and(|c| c != *p)) else {
            return;
        };
        if r.nat_cies().iter().any(|c| v4(&c.proto) == Some(via)) {
            return;
        }
        let requester = v4(&r.src_proto);
        let requester_capable = requester.is_some_and(|q| {
            self.nat_capable.contains(&q)
                || !self
                    .cache
                    .get(&Prefix::host(q))
                    .is_some_and(|e| e.flags.registered)
        });
        if !requester_capable && let Some(c) = r.cies.first_mut() {
            c.nbma = post.into();
            return;
        }
        let cie = Cie {
            prefix_len: 32,
            nbma: post.into(),
            proto: via.into(),
            ..Cie::default()
        };
        match r.extension_mut(ExtensionType::NAT_ADDRESS) {
            Some(ExtensionBody::NatAddress(c)) => c.push(cie),
            _ => r.extensions.push(Extension {
                compulsory: false,
                body: ExtensionBody::NatAddress(vec![cie]),
            }),
        }
    }

    /// A Resolution Reply relayed through us: keep the responder's own binding (RFC 2332 §5.2.2, "an NHS
    /// ... which forwards a reply may cache the information") - its tunnel address at its (post-NAT) NBMA
    /// address, only when it is not registered or static here. The reply's target *prefix* is not cached:
    /// a cache entry beats the hub's routes, so a responder's summary (or a /0) would pull traffic for
    /// other spokes' LANs to it, and the hub would not hear when the prefix moves (review of `a34dac9`).
    /// The entry goes with its holding time, or with the responder's registration.
    fn learn_relayed_reply(&mut self, now: Instant, r: &Repr) {
        let Some(cie) = r.cies.first() else {
            return;
        };
        let (Some(via), Some(claimed)) = (v4(&cie.proto), v4(&cie.nbma)) else {
            return;
        };
        if cie.code != Code::SUCCESS || via == self.cfg.tunnel_addr {
            return;
        }
        let b = ReplyBinding::of(r, cie, via, claimed);
        let host = Prefix::host(via);
        if self
            .cache
            .get(&host)
            .is_some_and(|e| e.kind == EntryType::Static || e.flags.registered)
        {
            return;
        }
        b.install(&mut self.cache, now, host);
    }

    /// Entries learnt from relayed replies through `proto`, whose registration went away or moved.
    fn forget_via(&mut self, proto: Ipv4Addr) {
        let gone = self.cache.remove_where(|e| {
            e.kind == EntryType::Dynamic && !e.flags.registered && e.via == proto
        });
        for e in gone {
            self.events.push_back(Event::Purge { prefix: e.prefix });
        }
    }

    fn on_resolution_reply(&mut self, now: Instant, nbma_from: Ipv4Addr, r: &Repr) {
        // FRR responders send the reply along their route to the requester,
        // i.e. through the hub: relay it like a request (guest-to-dmvpn item 2).
        if let Some(to) = v4(&r.src_proto).and_then(|req| self.reply_next_hop(req, nbma_from)) {
            if r.hop_count <= 1 {
                self.drops.hop_limit += 1;
                return;
            }
            let mut fwd = r.clone();
            fwd.hop_count -= 1;
            self.relay_reply_nat(&mut fwd, nbma_from);
            self.learn_relayed_reply(now, &fwd);
            self.send(now, to, &fwd);
            return;
        }
        let id = r.request_id();
        let Some(p) = self.pending.remove(&id) else {
            self.drops.unexpected += 1;
            return;
        };
        self.pending_by_target.remove(&p.target);
        let Some(cie) = r.cies.first() else {
            self.fail_resolution(now, id, p.target);
            return;
        };
        let Some(via) = v4(&cie.proto).filter(|_| cie.code == Code::SUCCESS) else {
            self.fail_resolution(now, id, p.target);
            return;
        };
        let claimed = v4(&cie.nbma).unwrap_or(nbma_from);
        let b = ReplyBinding::of(r, cie, via, claimed);
        let nbma = b.nbma;
        let prefix = Prefix::new(p.target, prefix_len_of(cie));
        let host = Prefix::host(p.target);
        if prefix != host
            && self
                .cache
                .get(&host)
                .is_some_and(|e| e.kind == EntryType::Incomplete)
        {
            self.cache.remove(&host);
        }
        b.install(&mut self.cache, now, prefix);
        let peer = Prefix::host(via);
        if !prefix.contains(via)
            && self
                .cache
                .get(&peer)
                .is_none_or(|e| e.kind != EntryType::Static)
        {
            b.install(&mut self.cache, now, peer);
        }
        self.events.push_back(Event::Resolved {
            protocol: via,
            nbma,
        });
        if p.shortcut || prefix.prefix_len() < 32 || via != p.target {
            self.events.push_back(Event::ShortcutRoute {
                prefix,
                nexthop: via,
            });
        }
    }

    fn on_purge_request(&mut self, now: Instant, nbma_from: Ipv4Addr, mut r: Repr) {
        let mut targets: Vec<Prefix> = r
            .cies
            .iter()
            .filter_map(|c| v4(&c.proto).map(|a| Prefix::new(a, prefix_len_of(c))))
            .collect();
        if targets.is_empty() {
            targets.extend(v4(&r.dst_proto).map(Prefix::host));
        }
        for t in &targets {
            let gone = self.cache.remove_where(|e| {
                e.kind == EntryType::Dynamic && (e.prefix == *t || t.contains(e.via))
            });
            for e in gone {
                self.events.push_back(Event::Purge { prefix: e.prefix });
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.5
        //# N ... When set, this bit tells the receiver of the Purge Request that
        //# the requester does not expect to receive an NHRP Purge Reply.
        if r.flags() & flags::N == 0 {
            r.op = OpType::PURGE_REPLY;
            r.hop_count = 255;
            r.extensions
                .retain(|e| e.body.ty() == ExtensionType::AUTHENTICATION);
            self.send(now, nbma_from, &r);
        }
    }

    fn on_traffic_indication(&mut self, now: Instant, r: &Repr) {
        if !self.cfg.shortcut {
            return;
        }
        // The quoted packet's destination is what to resolve (seed-dmvpn §4.8.3).
        let Some(dst) = ipv4_field(&r.payload, 16) else {
            self.drops.malformed += 1;
            return;
        };
        if self
            .cache
            .lookup(dst)
            .is_some_and(|e| e.is_complete() && e.kind == EntryType::Dynamic)
        {
            return;
        }
        let _ = self.resolve_inner(now, dst, true);
    }
}

/// An IPv4 address at `offset` of an IPv4 header (None unless version 4).
fn ipv4_field(packet: &[u8], offset: usize) -> Option<Ipv4Addr> {
    if packet.first().map(|b| b >> 4) != Some(4) {
        return None;
    }
    let b = packet.get(offset..offset + 4)?;
    Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

/// What a successful Resolution Reply binds: the responder's protocol address `via` to its NBMA address
/// (post-NAT when the reply's NAT extension says so, else the claimed one), for the CIE's holding time.
/// Used by the requester and by a hub that relays the reply.
struct ReplyBinding {
    via: Ipv4Addr,
    nbma: Ipv4Addr,
    claimed: Ipv4Addr,
    hold: Duration,
    flags: EntryFlags,
}

impl ReplyBinding {
    fn of(r: &Repr, cie: &Cie, via: Ipv4Addr, claimed: Ipv4Addr) -> ReplyBinding {
        let nbma = r
            .nat_cies()
            .iter()
            .find(|c| v4(&c.proto) == Some(via))
            .and_then(|c| v4(&c.nbma))
            .unwrap_or(claimed);
        ReplyBinding {
            via,
            nbma,
            claimed,
            hold: Duration::from_secs(u64::from(cie.holding_time.max(1))),
            flags: EntryFlags {
                router: r.flags() & flags::Q != 0,
                authoritative: r.flags() & flags::A != 0,
                nat: nbma != claimed,
                ..Default::default()
            },
        }
    }

    /// A dynamic cache entry for `prefix` (its creation time kept while the NBMA address is unchanged).
    fn install(&self, cache: &mut Cache, now: Instant, prefix: Prefix) {
        let created = cache
            .get(&prefix)
            .filter(|e| e.nbma == Some(self.nbma))
            .map_or(now, |e| e.created);
        cache.insert(Entry {
            prefix,
            via: self.via,
            nbma: Some(self.nbma),
            claimed_nbma: (self.nbma != self.claimed).then_some(self.claimed),
            kind: EntryType::Dynamic,
            flags: self.flags,
            created,
            expires: Some(now + self.hold),
        });
    }
}

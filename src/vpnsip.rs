//! VPN-SIP: the SIP-triggered backup VPN (seed 002, chapter 4), as one state machine per VPN-SIP tunnel.
//!
//! ```text
//! READY_TO_CONNECT --acquire--> NEGOTIATING_SIP (I) --200 OK--> NEGOTIATING_IKE (I) --CHILD_SA--> SESSION_UP (I)
//! READY_TO_CONNECT --INVITE---> NEGOTIATING_IKE (R) --CHILD_SA--> SESSION_UP (R)
//! any --idle timer | BYE | IKE delete | failure--> READY_TO_CONNECT (PAT entry and port gone)
//! ```
//! The SIP user agent, the IKE endpoint and the tunnels stay unaware of each other; these methods of
//! [`Node`] move the facts: an `Acquire` places the INVITE, the SDP answer points the tunnel at the peer and
//! installs the PAT entry, IKE's fingerprint check uses what SDP delivered, the idle timer sends BYE.
//!
//! PAT: inside, IKE and ESP run on the tunnel source (a loopback address) port 4500, as on the Cisco; on the
//! WAN they use the per-session port from SDP. The node translates in both directions with
//! `dataplane::PatTable`, through a socket per session port that the driver opens on [`Output::OpenPort`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use dataplane::PatTable;
use ike::Identity;
use sip::{CallId, EndedBy, IkeSdp, IkeTransport, Setup, UaConfig, UserAgent};

use crate::ios;
use crate::node::{NAT_T_PORT, Node, Output, interface_address};
use crate::show::vpnsip::{Role, SessionStatus, SessionView};

/// SIP's port (RFC 3261 §19.1.2).
pub const SIP_PORT: u16 = 5060;
/// First per-session IKE port offered in SDP by default (the seed's samples use 50001 and up).
pub const FIRST_SESSION_PORT: u16 = config::defaults::VPN_SIP_SESSION_PORTS.0;
/// Last per-session port by default: 50001..=65535 holds 15 535 concurrent sessions (Lifeline's goal is
/// 10 000 per appliance; the seed's router holds 300). `vpn-sip session-port range A B` changes both.
pub const LAST_SESSION_PORT: u16 = config::defaults::VPN_SIP_SESSION_PORTS.1;

/// One VPN-SIP tunnel's session.
pub struct Session {
    pub tunnel: usize,
    pub local_number: String,
    pub remote_number: String,
    pub configured_kbps: u32,
    pub service_policy: Option<String>,
    pub status: SessionStatus,
    pub since: Instant,
    pub call: Option<CallId>,
    /// Our per-session WAN port (0 when idle).
    pub port: u16,
    /// The peer's WAN address and port from its SDP.
    pub remote: Option<SocketAddrV4>,
    pub negotiated_kbps: u32,
    pub ike_sa: Option<ike::IkeSaId>,
    pub crypto_handle: u32,
    pub sip_call_seq: u32,
    pub last_failure: Option<String>,
    /// How many sessions this tunnel has had (`SIP callID` grows with it).
    pub calls: u32,
    /// Failed attempts in a row (SIP call or IKE failures); reset when a session comes up.
    pub failures: u32,
    /// After a failure, no new call before this time (packets routed into the tunnel meanwhile are dropped
    /// and counted, as without an SA): 1 s, doubling per failure, at most [`RETRY_MAX`].
    pub retry_at: Option<Instant>,
}

/// First delay before a new call after a failed session.
pub const RETRY_BASE: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest delay between attempts.
pub const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// The delay after `failures` failed attempts in a row (1 s, 2 s, 4 s, ... at most 60 s).
pub fn retry_delay(failures: u32) -> std::time::Duration {
    RETRY_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// The SIP side of one appliance: the user agent, the sessions and the PAT table.
pub struct VpnSip {
    pub ua: UserAgent,
    /// Where the registrar comes from (host, port, transport, TLS trust anchors).
    pub discovery: crate::sipnet::Discover,
    /// The host is a domain that RFC 3263 has not resolved yet.
    pub resolve_pending: bool,
    /// RFC 3263's targets, best first; a failed registration moves to the next one.
    pub targets: Vec<sip::discovery::Target>,
    pub wan: Ipv4Addr,
    /// Inside IKE/ESP address (`vpn-sip tunnel source`).
    pub inside: Ipv4Addr,
    pub sessions: Vec<Session>,
    pub pat: PatTable,
    pub logging: bool,
    next_port: u16,
    /// The per-session port range (inclusive).
    ports: (u16, u16),
    /// Ports held by a session (`Session::port`).
    used_ports: std::collections::HashSet<u16>,
    /// Tunnel index -> session index, and SIP call -> session index (O(1) lookups per event).
    by_tunnel: std::collections::HashMap<usize, usize>,
    by_call: std::collections::HashMap<CallId, usize>,
    /// (Called local number, calling remote number) -> session index (incoming calls).
    by_number: std::collections::HashMap<(String, String), usize>,
    /// Calls to one of our numbers from a caller no tunnel of that number is bound to (refused with 404).
    pub unknown_caller_calls: u64,
}

/// The user agent's randomness: the OS generator.
struct OsRandom;

impl sip::Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the OS random number generator failed");
    }
}

impl VpnSip {
    /// Build the SIP side from the configuration, or say why VPN-SIP cannot run.
    /// The backup WAN's address, when the configuration gives it (`ip address A M`); `None` when it comes
    /// from DHCP (`ip address dhcp`) or is missing.
    pub fn static_wan(cfg: &config::Config) -> Option<Ipv4Addr> {
        let local = cfg.vpn_sip.local_number()?;
        interface_address(cfg, &local.wan_interface).map(|(a, _)| a)
    }

    /// The interface VPN-SIP registers from, when it takes its address by DHCP.
    pub fn dhcp_wan(cfg: &config::Config) -> Option<&config::Interface> {
        if !cfg.vpn_sip.enabled {
            return None;
        }
        let i = cfg.interface(&cfg.vpn_sip.local_number()?.wan_interface)?;
        matches!(i.ip, config::IpAddressing::Dhcp { .. }).then_some(i)
    }

    /// Build the SIP side. `wan` is the backup WAN's address (configured or leased); `dhcp_sip_servers`
    /// is DHCP option 120 when the WAN has a lease. The registrar is `vpn-sip registrar HOST` when HOST is
    /// an address, else the first address of option 120 (`vpn-sip registrar dhcp` keeps only the
    /// credentials of the line).
    pub fn from_config(
        cfg: &config::Config,
        tunnels: &[crate::node::Svti],
        wan: Ipv4Addr,
        dhcp_sip_servers: Option<&monitors::dhcp::SipServers>,
    ) -> Result<Option<VpnSip>, String> {
        if !cfg.vpn_sip.enabled {
            return Ok(None);
        }
        let local = cfg
            .vpn_sip
            .local_number()
            .ok_or("vpn-sip enable without vpn-sip local-number")?;
        let inside = cfg
            .vpn_sip
            .tunnel_source
            .as_deref()
            .and_then(|i| interface_address(cfg, i))
            .map(|(a, _)| a)
            .unwrap_or(wan);
        let reg = cfg.vpn_sip.registrar.as_ref();
        let transport = reg.and_then(|r| r.transport).map(|t| match t {
            config::SipTransport::Udp => sip::Transport::Udp,
            config::SipTransport::Tcp => sip::Transport::Tcp,
            config::SipTransport::Tls => sip::Transport::Tls,
        });
        let port = reg.and_then(|r| r.port);
        // The registrar: `vpn-sip registrar HOST` (an address or a domain), else DHCP option 120.
        let host = match (reg.map(|r| r.host.as_str()), dhcp_sip_servers) {
            (Some(h), _) if h != "dhcp" => h.to_string(),
            (_, Some(monitors::dhcp::SipServers::Addrs(a))) if !a.is_empty() => a[0].to_string(),
            (_, Some(monitors::dhcp::SipServers::Domains(d))) if !d.is_empty() => d[0].clone(),
            _ => {
                return Err(format!(
                    "no SIP registrar: {} got no DHCP option 120 and no `vpn-sip registrar HOST` is configured",
                    local.wan_interface
                ));
            }
        };
        let discovery = crate::sipnet::Discover {
            host: host.clone(),
            port,
            transport,
            ca_file: reg.and_then(|r| r.ca_file.clone()),
        };
        // An address needs no DNS; a domain waits for RFC 3263 ([`Node::vpnsip_start`]).
        let (registrar, transport, pending) = match host.parse::<Ipv4Addr>() {
            Ok(ip) => {
                let t = transport.unwrap_or(sip::Transport::Udp);
                let port = port.unwrap_or(t.default_port());
                (SocketAddr::V4(SocketAddrV4::new(ip, port)), t, false)
            }
            Err(_) => (
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                transport.unwrap_or(sip::Transport::Udp),
                true,
            ),
        };
        let domain = host;
        let mut ua_cfg = UaConfig::new(
            local.number.clone(),
            domain,
            registrar,
            SocketAddr::V4(SocketAddrV4::new(wan, SIP_PORT)),
        );
        ua_cfg.transport = transport;
        if let Some((Some(u), Some(p))) = reg.map(|r| (&r.username, &r.password)) {
            ua_cfg.credentials = Some((u.clone(), sip::Secret::new(p.expose())));
        }
        // Several local numbers: each registers on its own (its own account when it has one).
        ua_cfg.extra_numbers = cfg.vpn_sip.local_numbers[1..]
            .iter()
            .map(|l| l.number.clone())
            .collect();
        ua_cfg.number_credentials = cfg
            .vpn_sip
            .local_numbers
            .iter()
            .filter_map(|l| match (&l.username, &l.password) {
                (Some(u), Some(p)) => {
                    Some((l.number.clone(), (u.clone(), sip::Secret::new(p.expose()))))
                }
                _ => None,
            })
            .collect();
        let ua = UserAgent::new(ua_cfg, Box::new(OsRandom));
        let mut sessions = Vec::new();
        for (idx, t) in tunnels.iter().enumerate() {
            let Some(i) = cfg.interface(&t.ios_name) else {
                continue;
            };
            let Some(v) = &i.vpn_sip else { continue };
            sessions.push(Session {
                tunnel: idx,
                local_number: v.local_number.clone(),
                remote_number: v.remote_number.clone(),
                configured_kbps: v.bandwidth_kbps,
                service_policy: v.service_policy.clone(),
                status: SessionStatus::ReadyToConnect,
                since: Instant::now(),
                call: None,
                port: 0,
                remote: None,
                negotiated_kbps: 0,
                ike_sa: None,
                crypto_handle: 0x8000_0000 | (idx as u32 + 1),
                sip_call_seq: 0,
                last_failure: None,
                calls: 0,
                failures: 0,
                retry_at: None,
            });
        }
        let by_tunnel = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (s.tunnel, i))
            .collect();
        // (Validation binds a remote number to one tunnel; should two share a pair, the first answers.)
        let mut by_number = std::collections::HashMap::new();
        for (i, s) in sessions.iter().enumerate() {
            by_number
                .entry((s.local_number.clone(), s.remote_number.clone()))
                .or_insert(i);
        }
        Ok(Some(VpnSip {
            ua,
            discovery,
            resolve_pending: pending,
            targets: Vec::new(),
            wan,
            inside,
            sessions,
            pat: PatTable::new(),
            logging: cfg.vpn_sip.logging,
            next_port: cfg.vpn_sip.effective_session_ports().0,
            ports: cfg.vpn_sip.effective_session_ports(),
            used_ports: Default::default(),
            by_tunnel,
            by_call: Default::default(),
            by_number,
            unknown_caller_calls: 0,
        }))
    }

    /// Session `sidx` holds `port` and `call` (0 / `None`: releases them).
    fn bind(&mut self, sidx: usize, port: u16, call: Option<CallId>) {
        let s = &mut self.sessions[sidx];
        if s.port != 0 {
            self.used_ports.remove(&s.port);
        }
        if let Some(c) = s.call {
            self.by_call.remove(&c);
        }
        s.port = port;
        s.call = call;
        if port != 0 {
            self.used_ports.insert(port);
        }
        if let Some(c) = call {
            self.by_call.insert(c, sidx);
        }
    }

    /// A free per-session WAN port (round robin over the range, so a port just released is reused last), or
    /// `None` when every port of the range is held by a session. O(1) unless the range is nearly full.
    fn alloc_port(&mut self) -> Option<u16> {
        let (first, last) = self.ports;
        if self.used_ports.len() > usize::from(last - first) {
            return None;
        }
        loop {
            let p = self.next_port;
            self.next_port = if p >= last { first } else { p + 1 };
            if !self.used_ports.contains(&p) {
                return Some(p);
            }
        }
    }

    pub fn views(&self, now: Instant, ios_names: impl Fn(usize) -> String) -> Vec<SessionView> {
        self.sessions
            .iter()
            .map(|s| SessionView {
                interface: ios_names(s.tunnel),
                status: s.status,
                uptime: now.saturating_duration_since(s.since),
                remote_number: s.remote_number.clone(),
                local_number: s.local_number.clone(),
                remote: s
                    .remote
                    .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                local: SocketAddrV4::new(self.wan, s.port),
                crypto_handle: s.crypto_handle,
                sip_handle: s.call.map_or(0, |c| 0x8000_0000 | c.0 as u32),
                sip_call_id: s.call.map(|_| s.sip_call_seq),
                configured_kbps: s.configured_kbps,
                negotiated_kbps: s.negotiated_kbps,
                service_policy: s.service_policy.clone(),
                last_failure: s.last_failure.clone(),
                retries: s.failures,
                next_attempt: s
                    .retry_at
                    .filter(|&t| t > now)
                    .map(|t| t.saturating_duration_since(now)),
            })
            .collect()
    }
}

fn to_sip_fp(fp: ike::Fingerprint) -> sip::Fingerprint {
    sip::Fingerprint::new(sip::HashFunc::Sha1, fp.0.to_vec())
}

fn to_ike_fp(fp: &sip::Fingerprint) -> Option<ike::Fingerprint> {
    let bytes: [u8; 20] = fp.bytes.as_slice().try_into().ok()?;
    (fp.hash == sip::HashFunc::Sha1).then_some(ike::Fingerprint(bytes))
}

impl Node {
    /// Start registering (called once the drivers are up).
    pub(crate) fn vpnsip_start(&mut self, now: Instant) {
        if let Some(v) = &mut self.vpnsip {
            self.out
                .push_back(Output::OpenPort(SocketAddr::V4(SocketAddrV4::new(
                    v.wan, SIP_PORT,
                ))));
        }
        self.sip_discover_or_register(now);
    }

    fn session_index(&self, tunnel: usize) -> Option<usize> {
        self.vpnsip.as_ref()?.by_tunnel.get(&tunnel).copied()
    }

    /// The IKEv2 profile of a VPN-SIP tunnel, and our fingerprint towards its remote number.
    fn vpnsip_credentials(&self, sidx: usize) -> Option<(String, ike::Fingerprint)> {
        let v = self.vpnsip.as_ref()?;
        let s = &v.sessions[sidx];
        let profile = self.tunnels[s.tunnel].profile.clone()?;
        let fp = self
            .ike
            .local_fingerprint_for(&profile, &Identity::key_id(&s.remote_number))?;
        Some((profile, self.sdp_fingerprint_override.unwrap_or(fp)))
    }

    /// The data plane asked for an SA on tunnel `idx`. Returns false if it is not a VPN-SIP tunnel.
    pub(crate) fn vpnsip_acquire(&mut self, now: Instant, idx: usize) -> bool {
        let Some(sidx) = self.session_index(idx) else {
            return false;
        };
        let creds = self.vpnsip_credentials(sidx);
        let Some(v) = &mut self.vpnsip else {
            return false;
        };
        if v.sessions[sidx].status != SessionStatus::ReadyToConnect {
            return true;
        }
        if v.sessions[sidx].retry_at.is_some_and(|t| t > now) {
            // Backing off after a failure: no new call yet (the packet is dropped, as without an SA).
            self.tunnels[idx].dp.lock().acquire_failed();
            self.touch(idx);
            return true;
        }
        let Some((_, fp)) = creds else {
            v.sessions[sidx].last_failure =
                Some("no pre-shared key for the remote number (keyring key-id)".into());
            self.tunnels[idx].dp.lock().acquire_failed();
            self.touch(idx);
            return true;
        };
        let local = v.sessions[sidx].local_number.clone();
        if !v.ua.is_registered_as(&local) {
            v.sessions[sidx].last_failure = Some(format!("SIP number {local} not registered"));
            self.tunnels[idx].dp.lock().acquire_failed();
            self.touch(idx);
            return true;
        }
        let Some(port) = v.alloc_port() else {
            let (first, last) = v.ports;
            v.sessions[sidx].last_failure =
                Some(format!("no free session port ({first}-{last} all in use)"));
            self.tunnels[idx].dp.lock().acquire_failed();
            self.touch(idx);
            return true;
        };
        let offer = IkeSdp {
            addr: v.wan,
            port,
            transport: IkeTransport::UdpEncap,
            setup: Setup::Active,
            fingerprint: to_sip_fp(fp),
            bandwidth_kbps: v.sessions[sidx].configured_kbps,
        };
        let remote = v.sessions[sidx].remote_number.clone();
        let call = v.ua.invite_from(now, &local, &remote, offer);
        v.bind(sidx, port, Some(call));
        let s = &mut v.sessions[sidx];
        s.calls += 1;
        s.sip_call_seq = 1550 + s.calls;
        s.status = SessionStatus::NegotiatingSip(Role::Initiator);
        s.since = now;
        s.last_failure = None;
        let wan = v.wan;
        self.out
            .push_back(Output::OpenPort(SocketAddr::V4(SocketAddrV4::new(
                wan, port,
            ))));
        ios!(
            VPN_SIP,
            Informational,
            CALL,
            "{}: INVITE from {local} to {remote} (port {port})",
            self.tunnels[idx].ios_name
        );
        true
    }

    /// Events of the SIP user agent.
    pub(crate) fn sip_event(&mut self, now: Instant, ev: sip::Event) {
        match ev {
            sip::Event::Registered {
                number,
                expires,
                contact,
            } => {
                ios!(
                    VPN_SIP,
                    Notice,
                    REGISTERED,
                    "{number} registered {contact} for {expires} s"
                )
            }
            sip::Event::RegistrationFailed { number, reason } => {
                ios!(VPN_SIP, Warning, REGISTRATION_FAILED, "{number}: {reason}");
                // The registrar is shared: the first number's failures move to the next target (every
                // number's would skip targets).
                let first = self
                    .vpnsip
                    .as_ref()
                    .is_some_and(|v| v.ua.config().local_number == number);
                if first {
                    self.sip_next_target();
                }
            }
            sip::Event::Unregistered { number } => {
                ios!(
                    VPN_SIP,
                    Notice,
                    UNREGISTERED,
                    "{number}: registration ended"
                )
            }
            sip::Event::CallAnswered {
                call,
                answer,
                negotiated,
            } => self.call_answered(now, call, &answer, &negotiated),
            sip::Event::IncomingCall {
                call,
                from_number,
                to_number,
                offer,
            } => self.incoming_call(now, call, &from_number, &to_number, &offer),
            sip::Event::IncomingCallRejected {
                from_number,
                to_number,
                status,
                reason,
            } => {
                ios!(
                    VPN_SIP,
                    Warning,
                    CALL_REFUSED,
                    "call from {from_number} to {to_number} refused {status}: {reason}"
                )
            }
            sip::Event::CallConfirmed { .. } => {}
            sip::Event::CallFailed {
                call,
                status,
                reason,
            } => {
                if let Some(sidx) = self.session_by_call(call) {
                    self.end_session(
                        now,
                        sidx,
                        Some(format!("SIP call failed: {status} {reason}")),
                        false,
                    );
                }
            }
            sip::Event::CallEnded { call, by, reason } => {
                if let Some(sidx) = self.session_by_call(call) {
                    let who = match by {
                        EndedBy::Remote => "peer",
                        EndedBy::Local => "local",
                    };
                    ios!(
                        VPN_SIP,
                        Informational,
                        CALL_ENDED,
                        "call ended by {who}: {reason}"
                    );
                    self.end_session(now, sidx, None, false);
                }
            }
        }
    }

    fn session_by_call(&self, call: CallId) -> Option<usize> {
        self.vpnsip.as_ref()?.by_call.get(&call).copied()
    }

    fn call_answered(&mut self, now: Instant, call: CallId, answer: &IkeSdp, n: &sip::Negotiated) {
        let Some(sidx) = self.session_by_call(call) else {
            return;
        };
        let creds = self.vpnsip_credentials(sidx);
        let Some(v) = &mut self.vpnsip else { return };
        let peer = SocketAddrV4::new(answer.addr, answer.port);
        let s = &mut v.sessions[sidx];
        s.remote = Some(peer);
        s.negotiated_kbps = n.bandwidth_kbps;
        s.status = SessionStatus::NegotiatingIke(Role::Initiator);
        let (tunnel, port, remote_number) = (s.tunnel, s.port, s.remote_number.clone());
        let inside = SocketAddr::V4(SocketAddrV4::new(v.inside, NAT_T_PORT));
        let outside = SocketAddr::V4(SocketAddrV4::new(v.wan, port));
        let _ = v
            .pat
            .insert(sidx as u64, inside, outside, SocketAddr::V4(peer));
        self.tunnels[tunnel].peer = Some(answer.addr);
        let Some(expected) = to_ike_fp(&answer.fingerprint) else {
            self.end_session(
                now,
                sidx,
                Some("peer fingerprint is not SHA-1".into()),
                true,
            );
            return;
        };
        let Some((profile, _)) = creds else { return };
        if n.initiator == sip::IkeInitiator::Offerer {
            let params = ike::InitiateParams {
                local: inside,
                remote: SocketAddr::V4(peer),
                profile,
                remote_id: Some(Identity::key_id(&remote_number)),
                expected_fingerprint: Some(expected),
            };
            match self.ike.initiate(now, params) {
                Ok(id) => {
                    self.tunnels[tunnel].ike_sa = Some(id);
                    if let Some(v) = &mut self.vpnsip {
                        v.sessions[sidx].ike_sa = Some(id);
                    }
                }
                Err(e) => self.end_session(now, sidx, Some(format!("IKE: {e}")), true),
            }
        } else {
            self.ike
                .expect_peer_on(Identity::key_id(&remote_number), expected, &profile);
        }
    }

    /// A call from `from` to our number `to`: the tunnel bound to that pair answers it.
    fn incoming_call(&mut self, now: Instant, call: CallId, from: &str, to: &str, offer: &IkeSdp) {
        let Some(sidx) = self
            .vpnsip
            .as_ref()
            .and_then(|v| v.by_number.get(&(to.to_owned(), from.to_owned())).copied())
        else {
            if let Some(v) = &mut self.vpnsip {
                v.unknown_caller_calls += 1;
                let _ =
                    v.ua.reject(now, call, 404, Some("no VPN-SIP tunnel for this number"));
            }
            ios!(
                VPN_SIP,
                Warning,
                CALL_REFUSED,
                "call from {from} to {to} refused 404: no VPN-SIP tunnel binds {to} to {from}"
            );
            return;
        };
        let creds = self.vpnsip_credentials(sidx);
        let Some(v) = &mut self.vpnsip else { return };
        if v.sessions[sidx].status != SessionStatus::ReadyToConnect {
            let _ = v.ua.reject(now, call, 486, Some("session already active"));
            return;
        }
        let Some((profile, fp)) = creds else {
            let _ = v.ua.reject(
                now,
                call,
                488,
                Some("no pre-shared key for the caller's number"),
            );
            return;
        };
        let Some(expected) = to_ike_fp(&offer.fingerprint) else {
            let _ =
                v.ua.reject(now, call, 488, Some("fingerprint must be SHA-1"));
            return;
        };
        let Some(port) = v.alloc_port() else {
            let _ = v.ua.reject(now, call, 503, Some("no free session port"));
            return;
        };
        let bw = v.sessions[sidx].configured_kbps;
        let (answer, n) = match sip::answer_for(offer, v.wan, port, to_sip_fp(fp), bw, true) {
            Ok(a) => a,
            Err(e) => {
                let _ = v.ua.reject(now, call, e.status(), Some(&e.to_string()));
                v.sessions[sidx].last_failure = Some(format!("refused offer: {e}"));
                return;
            }
        };
        if let Err(e) = v.ua.answer(now, call, &answer) {
            v.sessions[sidx].last_failure = Some(format!("cannot answer: {e}"));
            return;
        }
        let peer = SocketAddrV4::new(offer.addr, offer.port);
        let inside = SocketAddr::V4(SocketAddrV4::new(v.inside, NAT_T_PORT));
        let outside = SocketAddr::V4(SocketAddrV4::new(v.wan, port));
        let _ = v
            .pat
            .insert(sidx as u64, inside, outside, SocketAddr::V4(peer));
        v.bind(sidx, port, Some(call));
        let s = &mut v.sessions[sidx];
        s.remote = Some(peer);
        s.negotiated_kbps = n.bandwidth_kbps;
        s.calls += 1;
        s.sip_call_seq = 1550 + s.calls;
        s.status = SessionStatus::NegotiatingIke(Role::Responder);
        s.since = now;
        s.last_failure = None;
        let tunnel = s.tunnel;
        self.tunnels[tunnel].peer = Some(offer.addr);
        self.out.push_back(Output::OpenPort(outside));
        self.ike
            .expect_peer_on(Identity::key_id(from), expected, &profile);
        ios!(
            VPN_SIP,
            Informational,
            CALL,
            "{}: call from {from} answered (port {port})",
            self.tunnels[tunnel].ios_name
        );
    }

    /// A CHILD_SA came up on tunnel `idx`.
    pub(crate) fn vpnsip_child_up(&mut self, now: Instant, idx: usize, ike_sa: ike::IkeSaId) {
        let Some(sidx) = self.session_index(idx) else {
            return;
        };
        let Some(v) = &mut self.vpnsip else { return };
        let s = &mut v.sessions[sidx];
        let role = match s.status {
            SessionStatus::NegotiatingIke(r)
            | SessionStatus::NegotiatingSip(r)
            | SessionStatus::SessionUp(r) => r,
            SessionStatus::ReadyToConnect => Role::Responder,
        };
        if !matches!(s.status, SessionStatus::SessionUp(_)) {
            s.since = now;
        }
        s.failures = 0;
        s.retry_at = None;
        let first = !matches!(s.status, SessionStatus::SessionUp(_));
        s.status = SessionStatus::SessionUp(role);
        s.ike_sa = Some(ike_sa);
        let kbps = s.negotiated_kbps;
        let policy = s.service_policy.clone();
        // Shape the tunnel to the negotiated bandwidth: `VPN-SIP-TunnelN-Bandwidth`, CS4-marked,
        // with `vpn-sip ... service-policy P` as its child; charged the outer packet's length.
        if first && kbps > 0 {
            self.touch(idx);
            let attached =
                crate::qos::vpn_sip_child(&self.config, policy.as_deref()).and_then(|child| {
                    let t = &mut self.tunnels[idx];
                    let (id, encap) = {
                        let dp = t.dp.lock();
                        (dp.id(), dp.encap())
                    };
                    t.egress
                        .attach_vpn_sip(id, kbps, child, encap)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = attached {
                self.end_session(now, sidx, Some(format!("QoS: {e}")), true);
                return;
            }
        }
        let Some(v) = &mut self.vpnsip else { return };
        if v.logging {
            ios!(
                VPN_SIP,
                Notice,
                SESSION_UP,
                "{} remote number {} {} bandwidth {} kbps",
                self.tunnels[idx].ios_name,
                v.sessions[sidx].remote_number,
                v.sessions[sidx]
                    .remote
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                v.sessions[sidx].negotiated_kbps
            );
        }
    }

    /// The tunnel went idle (IPsec idle timer): delete the SAs and send BYE without waiting for IKE.
    pub(crate) fn vpnsip_idle(&mut self, now: Instant, idx: usize) -> bool {
        let Some(sidx) = self.session_index(idx) else {
            return false;
        };
        self.end_session(now, sidx, None, true);
        true
    }

    /// The IKE SA of tunnel `idx` went away (peer delete, DPD, auth failure).
    pub(crate) fn vpnsip_ike_down(&mut self, now: Instant, idx: usize, why: Option<String>) {
        let Some(sidx) = self.session_index(idx) else {
            return;
        };
        let active = self
            .vpnsip
            .as_ref()
            .is_some_and(|v| v.sessions[sidx].status != SessionStatus::ReadyToConnect);
        if active {
            self.end_session(now, sidx, why, true);
        }
    }

    /// An authentication failure with `peer`: fail the session that was negotiating with it.
    pub(crate) fn vpnsip_auth_failed(&mut self, now: Instant, peer: SocketAddr, reason: String) {
        let Some(v) = &self.vpnsip else { return };
        let inside_peer = v
            .pat
            .snapshot()
            .into_iter()
            .find(|e| e.peer == peer)
            .map(|e| e.session);
        let sidx = inside_peer.map(|s| s as usize).or_else(|| {
            v.sessions
                .iter()
                .position(|s| matches!(s.status, SessionStatus::NegotiatingIke(_)))
        });
        if let Some(sidx) = sidx {
            self.end_session(
                now,
                sidx,
                Some(format!("IKE authentication failed: {reason}")),
                true,
            );
        }
    }

    /// Back to READY_TO_CONNECT: SAs, call, PAT entry and port gone.
    fn end_session(&mut self, now: Instant, sidx: usize, failure: Option<String>, hangup: bool) {
        let Some(v) = &mut self.vpnsip else { return };
        let s = &mut v.sessions[sidx];
        if s.status == SessionStatus::ReadyToConnect && s.call.is_none() {
            return;
        }
        let was_up = matches!(s.status, SessionStatus::SessionUp(_));
        let (call, port) = (s.call, s.port);
        v.bind(sidx, 0, None);
        if let Some(call) = call
            && hangup
        {
            let _ = v.ua.hangup(now, call);
        }
        let s = &mut v.sessions[sidx];
        let tunnel = s.tunnel;
        let remote_number = s.remote_number.clone();
        s.status = SessionStatus::ReadyToConnect;
        s.remote = None;
        s.negotiated_kbps = 0;
        s.since = now;
        if failure.is_some() {
            s.last_failure = failure.clone();
            s.failures = s.failures.saturating_add(1);
            s.retry_at = Some(now + retry_delay(s.failures));
        }
        let ike_sa = s.ike_sa.take().or(self.tunnels[tunnel].ike_sa);
        v.pat.remove_session(sidx as u64);
        let wan = v.wan;
        let logging = v.logging;
        self.ike.forget_peer(&Identity::key_id(&remote_number));
        if let Some(id) = ike_sa {
            let _ = self.ike.delete_ike_sa(now, id);
        }
        self.touch(tunnel);
        let t = &mut self.tunnels[tunnel];
        t.ike_sa = None;
        t.peer = None;
        // The implicit policy lives exactly as long as the session; queued packets go with it.
        if t.egress.is_vpn_sip() {
            let _ = t.egress.detach();
        }
        let mut dp = t.dp.lock();
        for s in dp.inbound_spis() {
            self.spis.remove(&s);
        }
        dp.remove_sa();
        dp.acquire_failed();
        if port != 0 {
            self.out
                .push_back(Output::ClosePort(SocketAddr::V4(SocketAddrV4::new(
                    wan, port,
                ))));
        }
        match (&failure, logging) {
            (Some(f), _) => ios!(
                VPN_SIP,
                Warning,
                SESSION_FAILED,
                "{} remote number {remote_number}: {f}",
                t.ios_name
            ),
            (None, true) if was_up => {
                ios!(
                    VPN_SIP,
                    Notice,
                    SESSION_DOWN,
                    "{} remote number {remote_number}",
                    t.ios_name
                )
            }
            _ => {}
        }
    }

    /// Outbound: a datagram from the inside IKE/ESP address leaves on the session's WAN port.
    pub(crate) fn pat_outbound(&self, local: SocketAddr, remote: SocketAddr) -> SocketAddr {
        self.vpnsip
            .as_ref()
            .and_then(|v| v.pat.outside_for(local, remote))
            .unwrap_or(local)
    }

    /// Inbound: a datagram that arrived on a session's WAN port belongs to the inside address.
    pub(crate) fn pat_inbound(&self, local: SocketAddr) -> SocketAddr {
        self.vpnsip
            .as_ref()
            .and_then(|v| v.pat.inside_for(local))
            .map_or(local, |e| e.inside)
    }

    /// Drain the user agent into outputs and events.
    pub(crate) fn pump_sip(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let mut events = Vec::new();
        if let Some(v) = &mut self.vpnsip {
            while let Some(tx) = v.ua.poll_transmit() {
                self.out.push_back(crate::sipnet::transmit(v, tx));
                progressed = true;
            }
            while let Some(ev) = v.ua.poll_event() {
                events.push(ev);
            }
        }
        for ev in events {
            self.sip_event(now, ev);
            progressed = true;
        }
        progressed
    }

    /// Seconds until the next SIP timer, for [`Node::poll_timeout`].
    pub(crate) fn sip_timeout(&self) -> Option<Instant> {
        self.vpnsip.as_ref().and_then(|v| v.ua.poll_timeout())
    }
}

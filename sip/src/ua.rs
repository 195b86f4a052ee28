//! The VPN-SIP user agent, sans-io: registration of the local number (digest auth, refresh,
//! re-registration on a contact change, backoff while the registrar is away) and IKE calls
//! (INVITE/100/180/200/ACK, BYE, CANCEL, OPTIONS; 486/488/603/408 on both sides).
//!
//! All requests outside a dialog go to the registrar (it is the outbound proxy); in-dialog
//! requests follow the Record-Route set (loose routing) or the remote target. Responses go back
//! to the source address of the request (symmetric response routing, RFC 3581 style).

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::digest::{Challenge, Secret};
use crate::msg::{Headers, Message, Method, NameAddr, Request, Response, SipUri, reason_phrase};
use crate::random::{Random, hex};
use crate::sdp::{IkeSdp, Negotiated, Rejection, negotiate};
use crate::transaction::{State as TxState, Transaction, Transmit, TxEvent};

/// SIP transport. The UA builds messages the same way for each; over `Tcp`/`Tls` (reliable) the
/// retransmission timers A, E and G are off and timers D, I, K are zero (RFC 3261 §17), the Contact
/// carries `;transport=tcp|tls`, and the driver frames the byte stream
/// ([`crate::stream::StreamFramer`]) and owns the connection (and TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    pub fn reliable(self) -> bool {
        self != Transport::Udp
    }

    /// RFC 3261 §19.1.2: 5060 for UDP and TCP, 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }

    /// The URI `transport` parameter value.
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// User agent configuration.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// `vpn-sip local-number`: the user part of our AoR.
    pub local_number: String,
    /// Further local numbers (Lifeline extension beyond the seed). Each is registered with its own
    /// REGISTER dialog (Call-ID, CSeq, refresh and backoff of its own), places calls with
    /// [`UserAgent::invite_from`] and is called: an INVITE is accepted when its Request-URI user (or,
    /// without one, its To user) is one of the numbers, else refused with 404.
    pub extra_numbers: Vec<String>,
    /// Registrar domain (from DHCP option 120 or configuration).
    pub domain: String,
    /// Where REGISTER and out-of-dialog requests go.
    pub registrar: SocketAddr,
    /// Our address on the backup WAN (Contact and Via).
    pub contact: SocketAddr,
    /// Digest username and password.
    pub credentials: Option<(String, Secret)>,
    /// A local number's own digest account (a provider gives each line one); numbers not listed use
    /// `credentials`.
    pub number_credentials: Vec<(String, (String, Secret))>,
    /// Requested registration lifetime in seconds.
    pub expires: u32,
    pub transport: Transport,
    /// First retry delay after a failed registration; doubles per failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl UaConfig {
    pub fn new(
        local_number: impl Into<String>,
        domain: impl Into<String>,
        registrar: SocketAddr,
        contact: SocketAddr,
    ) -> UaConfig {
        UaConfig {
            local_number: local_number.into(),
            extra_numbers: Vec::new(),
            domain: domain.into(),
            registrar,
            contact,
            credentials: None,
            number_credentials: Vec::new(),
            expires: 3600,
            transport: Transport::Udp,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
        }
    }

    /// The digest account of local number `number`.
    pub fn credentials_for(&self, number: &str) -> Option<(String, Secret)> {
        self.number_credentials
            .iter()
            .find(|(n, _)| n == number)
            .map(|(_, c)| c.clone())
            .or_else(|| self.credentials.clone())
    }

    /// Every local number: `local_number` first, then `extra_numbers`.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.local_number.as_str())
            .chain(self.extra_numbers.iter().map(String::as_str))
    }
}

/// Handle of a call inside this UA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Local,
    Remote,
}

/// Facts for the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `number`'s binding is confirmed (first time or refresh).
    Registered {
        number: String,
        expires: u32,
        contact: SocketAddr,
    },
    RegistrationFailed {
        number: String,
        reason: String,
    },
    /// `number` has no binding any more (removed, lapsed or stopped).
    Unregistered {
        number: String,
    },
    /// A new call with a valid RFC 6193 offer: answer with [`UserAgent::answer`] or refuse with
    /// [`UserAgent::reject`].
    IncomingCall {
        call: CallId,
        from_number: String,
        /// The called local number (Request-URI user, else To user).
        to_number: String,
        offer: IkeSdp,
    },
    /// An incoming call refused by the UA itself (bad SDP: 488; not our number: 404).
    IncomingCallRejected {
        from_number: String,
        /// The number that was called (empty if the request named none).
        to_number: String,
        status: u16,
        reason: String,
    },
    /// Our INVITE was answered with an acceptable SDP answer (ACK sent).
    CallAnswered {
        call: CallId,
        answer: IkeSdp,
        negotiated: Negotiated,
    },
    /// The caller acknowledged our 200 OK.
    CallConfirmed {
        call: CallId,
    },
    /// Our INVITE failed (final status from the peer, 408 on timeout, 488 if its answer SDP is
    /// unacceptable: then the UA also sent BYE).
    CallFailed {
        call: CallId,
        status: u16,
        reason: String,
    },
    CallEnded {
        call: CallId,
        by: EndedBy,
        reason: String,
    },
}

/// Misuse of the command API (local errors, not peer misbehaviour).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UaError {
    #[error("no such call")]
    UnknownCall,
    #[error("the call is not in a state that allows this")]
    WrongState,
    #[error("answer rejected: {0}")]
    Rejected(#[from] Rejection),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RegState {
    Idle,
    Registering,
    Registered { at: Instant, expires: u32 },
    Backoff,
}

#[derive(Debug)]
struct Registration {
    /// The local number this REGISTER dialog binds.
    number: String,
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// Contact to remove in the next REGISTER (after a WAN address change).
    old_contact: Option<SocketAddr>,
    /// A REGISTER with these credentials was already rejected once.
    auth_sent_for: Option<String>,
    nc: u32,
    failures: u32,
    /// Why the last REGISTER failed (cleared on success).
    last_failure: Option<String>,
    /// Refresh (when registered) or retry (after a failure) at this time.
    next: Option<Instant>,
    expires_req: u32,
    unregistering: bool,
    /// The binding the registrar last confirmed, and until when it holds. `show` and
    /// [`UserAgent::is_registered`] follow this, so a failed refresh does not hide a binding that
    /// is still valid.
    bound: Option<(SocketAddr, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Caller,
    Callee,
}

/// Call states as `show` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE sent, nothing or 100 back.
    Calling,
    /// 180/183 received.
    Ringing,
    /// INVITE received, waiting for the appliance.
    Incoming,
    /// 200 OK sent, waiting for ACK.
    Answered,
    Confirmed,
}

#[derive(Debug)]
struct Call {
    id: CallId,
    role: Role,
    state: CallState,
    call_id: String,
    local_uri: String,
    remote_uri: String,
    remote_number: String,
    /// Our number in this call (From as caller, the called number as callee).
    local_number: String,
    local_tag: String,
    remote_tag: Option<String>,
    remote_target: Option<String>,
    route_set: Vec<String>,
    local_cseq: u32,
    invite_cseq: u32,
    /// Caller: the INVITE as last sent (for CANCEL and the auth retry).
    invite: Option<Request>,
    offer: Option<IkeSdp>,
    /// Caller: the ACK for the 2xx, re-sent on 2xx retransmissions.
    ack: Option<Transmit>,
    auth_tried: bool,
    cancel_pending: bool,
    /// Callee: branch of the INVITE server transaction.
    server_branch: Option<String>,
    ended: bool,
    /// Callee hung up after its 200 OK but before the ACK: BYE waits for the ACK.
    bye_pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The REGISTER dialog of `regs[i]`.
    Register(usize),
    Call(CallId),
    None,
}

/// One call as `show vpn-sip session` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    pub call: CallId,
    pub sip_call_id: String,
    pub remote_number: String,
    pub local_number: String,
    pub role: Role,
    pub state: CallState,
}

/// One local number's registration, for `show vpn-sip registration-status` (one row per number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRegistration {
    pub local_number: String,
    pub registration: RegistrationStatus,
    pub failures: u32,
    pub failure: Option<String>,
    pub retry_in: Option<Duration>,
}

/// Registration as `show vpn-sip registration-status` / `show vpn-sip sip registrar` need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    NotRegistered,
    Registered {
        contact: SocketAddr,
        /// Seconds left before the binding expires.
        expires_in: u32,
        call_id: String,
    },
}

/// Plain data for `show`. `local_number`, `registration` and `registration_*` describe the first
/// number; `registrations` has every number, the first one included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub local_number: String,
    pub domain: String,
    pub transport: Transport,
    pub registration: RegistrationStatus,
    /// Failed REGISTERs in a row, the last one's reason, and when the next attempt goes out (backoff:
    /// `retry_base` doubling up to `retry_max`). Zero / `None` while registrations succeed.
    pub registration_failures: u32,
    pub registration_failure: Option<String>,
    pub registration_retry_in: Option<Duration>,
    pub registrations: Vec<NumberRegistration>,
    pub calls: Vec<CallSnapshot>,
    /// Datagrams that failed to parse.
    pub parse_errors: u64,
    /// INVITEs to a number that is not ours, refused with 404 (counted drops).
    pub unknown_number_calls: u64,
}

/// The sans-io SIP user agent.
pub struct UserAgent {
    cfg: UaConfig,
    rng: Box<dyn Random + Send>,
    txs: Vec<(Transaction, Owner)>,
    /// One REGISTER dialog per local number, in [`UaConfig::numbers`] order.
    regs: Vec<Registration>,
    calls: Vec<Call>,
    next_call: u64,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    parse_errors: u64,
    unknown_number_calls: u64,
    /// ACKs of ended calls, re-sent if their 2xx is retransmitted (bounded, newest last).
    recent_acks: VecDeque<(String, Transmit)>,
}

const RECENT_ACKS: usize = 32;

impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAgent")
            .field("cfg", &self.cfg)
            .field(
                "regs",
                &self.regs.iter().map(|r| &r.state).collect::<Vec<_>>(),
            )
            .field("calls", &self.calls.len())
            .field("transactions", &self.txs.len())
            .finish()
    }
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";
const USER_AGENT: &str = "lifeline";

fn number_of(uri: &str) -> String {
    SipUri::parse(uri)
        .and_then(|u| u.user)
        .unwrap_or_else(|| uri.to_owned())
}

fn warning_text(r: &Response) -> Option<String> {
    // Warning: 399 host "text"
    let w = r.headers.get("Warning")?;
    let start = w.find('"')?;
    let end = w.rfind('"')?;
    (end > start).then(|| w[start + 1..end].to_owned())
}

impl UserAgent {
    pub fn new(cfg: UaConfig, mut rng: Box<dyn Random + Send>) -> UserAgent {
        let mut regs = Vec::new();
        for number in cfg.numbers() {
            if regs.iter().any(|r: &Registration| r.number == number) {
                continue;
            }
            let call_id = Self::make_call_id(&mut *rng, cfg.contact);
            let from_tag = hex(&mut *rng, 8);
            regs.push(Registration {
                number: number.to_owned(),
                state: RegState::Idle,
                call_id,
                from_tag,
                cseq: 0,
                old_contact: None,
                auth_sent_for: None,
                nc: 0,
                failures: 0,
                last_failure: None,
                next: None,
                expires_req: cfg.expires,
                unregistering: false,
                bound: None,
            });
        }
        UserAgent {
            regs,
            cfg,
            rng,
            txs: Vec::new(),
            calls: Vec::new(),
            next_call: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            parse_errors: 0,
            unknown_number_calls: 0,
            recent_acks: VecDeque::new(),
        }
    }

    /// Forget a call, keeping its 2xx ACK for retransmitted 2xx responses.
    fn forget_call(&mut self, id: CallId) {
        if let Some(c) = self.calls.iter().find(|c| c.id == id)
            && let Some(ack) = &c.ack
        {
            self.recent_acks.push_back((c.call_id.clone(), ack.clone()));
            if self.recent_acks.len() > RECENT_ACKS {
                self.recent_acks.pop_front();
            }
        }
        self.calls.retain(|c| c.id != id);
    }

    /// Call-ID in the form the seed shows: four groups of 8 upper-case hex digits `@host`.
    fn make_call_id(rng: &mut dyn Random, contact: SocketAddr) -> String {
        let h = hex(rng, 16).to_ascii_uppercase();
        format!(
            "{}-{}-{}-{}@{}",
            &h[0..8],
            &h[8..16],
            &h[16..24],
            &h[24..32],
            contact.ip()
        )
    }

    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    /// Our current contact address (the address the driver's socket is bound to).
    pub fn contact(&self) -> SocketAddr {
        self.cfg.contact
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{}", hex(&mut *self.rng, 10))
    }

    fn aor(&self, number: &str) -> String {
        format!("sip:{number}@{}", self.cfg.domain)
    }

    /// Our Contact for `number`: the registrar's lookup puts this URI, with `number` as its user, in
    /// the Request-URI of calls to `number`, which is how an INVITE finds its local number.
    fn contact_uri(&self, number: &str, addr: SocketAddr) -> String {
        let t = self.cfg.transport;
        if t.reliable() {
            format!("sip:{number}@{addr};transport={}", t.param())
        } else {
            format!("sip:{number}@{addr}")
        }
    }

    fn via(&mut self) -> String {
        let b = self.branch();
        format!(
            "SIP/2.0/{} {};branch={b};rport",
            self.cfg.transport.token(),
            self.cfg.contact
        )
    }

    fn start_client(&mut self, now: Instant, req: Request, to: SocketAddr, owner: Owner) {
        let tx = Transaction::client(now, req, to, self.cfg.transport.reliable(), &mut self.out);
        self.txs.push((tx, owner));
    }

    // ---------------------------------------------------------------- registration

    /// (Re-)register every local number now (one REGISTER each).
    pub fn register(&mut self, now: Instant) {
        for r in 0..self.regs.len() {
            self.regs[r].unregistering = false;
            self.regs[r].auth_sent_for = None;
            self.send_register(now, r, None);
        }
    }

    /// Remove our bindings (a REGISTER with expires=0 per number).
    pub fn unregister(&mut self, now: Instant) {
        for r in 0..self.regs.len() {
            self.regs[r].unregistering = true;
            self.regs[r].auth_sent_for = None;
            self.send_register(now, r, None);
        }
    }

    /// The backup-WAN address changed: re-register the new contact and remove the old one.
    pub fn set_contact(&mut self, now: Instant, addr: SocketAddr) {
        if addr == self.cfg.contact {
            return;
        }
        let old = self.cfg.contact;
        self.cfg.contact = addr;
        for reg in &mut self.regs {
            reg.bound = None;
            if matches!(
                reg.state,
                RegState::Registered { .. } | RegState::Registering
            ) {
                reg.old_contact = Some(old);
            }
        }
        // transactions in flight were sent from the old address: their answers are lost
        self.txs.retain(|(_, o)| !matches!(o, Owner::Register(_)));
        self.register(now);
    }

    fn send_register(&mut self, now: Instant, r: usize, auth: Option<(String, &'static str)>) {
        self.txs.retain(|(_, o)| *o != Owner::Register(r));
        let reg = &mut self.regs[r];
        reg.cseq += 1;
        reg.state = RegState::Registering;
        reg.next = None;
        let expires = if reg.unregistering {
            0
        } else {
            reg.expires_req
        };
        let (number, from_tag, call_id, cseq, old_contact) = (
            reg.number.clone(),
            reg.from_tag.clone(),
            reg.call_id.clone(),
            reg.cseq,
            reg.old_contact,
        );
        let mut h = Headers::default();
        let via = self.via();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        let aor = self.aor(&number);
        h.push(
            "From",
            NameAddr::new(aor.clone())
                .with_param("tag", Some(&from_tag))
                .to_string(),
        );
        h.push("To", NameAddr::new(aor).to_string());
        h.push("Call-ID", call_id);
        h.push("CSeq", format!("{cseq} REGISTER"));
        let mut contacts = vec![format!(
            "<{}>;expires={expires}",
            self.contact_uri(&number, self.cfg.contact)
        )];
        if let Some(old) = old_contact {
            contacts.push(format!("<{}>;expires=0", self.contact_uri(&number, old)));
        }
        h.push("Contact", contacts.join(", "));
        h.push("Expires", expires.to_string());
        if let Some((value, name)) = auth {
            h.push(name, value);
        }
        h.push("User-Agent", USER_AGENT);
        let req = Request {
            method: Method::Register,
            uri: format!("sip:{}", self.cfg.domain),
            headers: h,
            body: Vec::new(),
        };
        let to = self.cfg.registrar;
        self.start_client(now, req, to, Owner::Register(r));
    }

    /// Stop registering without sending anything (the backup WAN lost its address): forget the
    /// binding, cancel the REGISTER in flight and the retries. [`UserAgent::register`] restarts.
    /// Send to another registrar (RFC 3263 chose it, or the next target after a failure) over
    /// `transport`. Takes effect with the next request; call [`UserAgent::register`] to
    /// register there now.
    pub fn set_registrar(&mut self, registrar: SocketAddr, transport: Transport) {
        self.cfg.registrar = registrar;
        self.cfg.transport = transport;
    }

    /// The driver could not deliver to `remote` (connection refused, reset or closed, TLS
    /// failure). Client transactions waiting on it end at once as if they had timed out
    /// (RFC 3261 §8.1.3.1 treats a transport error like a 503; for us both mean "try later").
    pub fn transport_error(&mut self, now: Instant, remote: SocketAddr) {
        let mut fired = Vec::new();
        for (tx, owner) in self.txs.iter_mut() {
            if tx.is_client()
                && tx.peer == remote
                && matches!(
                    tx.state,
                    TxState::Calling | TxState::Trying | TxState::Proceeding
                )
            {
                tx.state = TxState::Terminated;
                fired.push((*owner, tx.method.clone()));
            }
        }
        for (owner, method) in fired {
            if let Owner::Register(r) = owner {
                self.registration_failed(
                    now,
                    r,
                    format!("no connection to the registrar {remote}"),
                );
            } else {
                self.tx_events(now, owner, method, VecDeque::from([TxEvent::Timeout]));
            }
        }
        self.reap();
    }

    pub fn stop_registration(&mut self) {
        self.txs.retain(|(_, o)| !matches!(o, Owner::Register(_)));
        for reg in &mut self.regs {
            reg.state = RegState::Idle;
            reg.next = None;
            reg.failures = 0;
            if reg.bound.take().is_some() {
                self.events.push_back(Event::Unregistered {
                    number: reg.number.clone(),
                });
            }
        }
    }

    fn registration_failed(&mut self, now: Instant, r: usize, reason: String) {
        let reg = &mut self.regs[r];
        reg.state = RegState::Backoff;
        reg.auth_sent_for = None;
        let shift = reg.failures.min(16);
        let delay = self
            .cfg
            .retry_base
            .saturating_mul(1u32 << shift)
            .min(self.cfg.retry_max);
        reg.failures += 1;
        reg.next = Some(now + delay);
        reg.last_failure = Some(reason.clone());
        self.events.push_back(Event::RegistrationFailed {
            number: reg.number.clone(),
            reason,
        });
    }

    fn on_register_response(&mut self, now: Instant, r: usize, resp: Response) {
        if resp.status < 200 {
            return;
        }
        let number = self.regs[r].number.clone();
        if resp.status < 300 {
            let reg = &mut self.regs[r];
            reg.failures = 0;
            reg.last_failure = None;
            reg.auth_sent_for = None;
            reg.old_contact = None;
            if reg.unregistering {
                reg.state = RegState::Idle;
                reg.next = None;
                reg.bound = None;
                self.events.push_back(Event::Unregistered { number });
                return;
            }
            let mine = self.contact_uri(&number, self.cfg.contact);
            let mut granted = None;
            for c in resp.headers.get_all("Contact") {
                if let Some(na) = NameAddr::parse(c)
                    && let (Some(u), Some(m)) = (na.sip_uri(), SipUri::parse(&mine))
                    && u.user == m.user
                    && u.socket_addr() == m.socket_addr()
                {
                    granted = na.param("expires").and_then(|e| e.parse::<u32>().ok());
                }
            }
            let expires = granted
                .or_else(|| resp.headers.get("Expires").and_then(|e| e.parse().ok()))
                .unwrap_or(self.regs[r].expires_req);
            if expires == 0 {
                self.registration_failed(now, r, "registrar granted no binding".into());
                return;
            }
            let contact = self.cfg.contact;
            let reg = &mut self.regs[r];
            reg.state = RegState::Registered { at: now, expires };
            reg.bound = Some((contact, now + Duration::from_secs(u64::from(expires))));
            // refresh at half the granted lifetime (at least 1 s ahead)
            reg.next = Some(now + Duration::from_secs(u64::from(expires / 2).max(1)));
            self.events.push_back(Event::Registered {
                number,
                expires,
                contact,
            });
            return;
        }
        match resp.status {
            401 | 407 => {
                let (hdr, auth_hdr) = if resp.status == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let Some((user, pass)) = self.cfg.credentials_for(&number) else {
                    self.registration_failed(now, r, "registrar requires authentication".into());
                    return;
                };
                let Some(ch) = resp.headers.get(hdr).and_then(|v| Challenge::parse(v).ok()) else {
                    self.registration_failed(now, r, "unusable authentication challenge".into());
                    return;
                };
                //= https://www.rfc-editor.org/rfc/rfc3261#section-22.2
                //# If the credentials were not accepted, the UAC MAY retry the request with
                //# different credentials ... a retry with the same credentials is useless
                let reg = &mut self.regs[r];
                if reg.auth_sent_for.is_some() && !ch.stale {
                    self.registration_failed(now, r, "authentication failed".into());
                    return;
                }
                if reg.auth_sent_for.as_deref() == Some(&ch.nonce) {
                    reg.nc += 1;
                } else {
                    reg.nc = 1;
                }
                reg.auth_sent_for = Some(ch.nonce.clone());
                let nc = reg.nc;
                let cnonce = hex(&mut *self.rng, 8);
                let uri = format!("sip:{}", self.cfg.domain);
                let cred = ch.respond(&user, &pass, "REGISTER", &uri, nc, &cnonce);
                self.send_register(now, r, Some((cred.to_header(), auth_hdr)));
            }
            423 => {
                let min = resp
                    .headers
                    .get("Min-Expires")
                    .and_then(|m| m.parse::<u32>().ok());
                match min {
                    Some(m) if m > self.regs[r].expires_req => {
                        self.regs[r].expires_req = m;
                        self.send_register(now, r, None);
                    }
                    _ => self.registration_failed(now, r, "423 without usable Min-Expires".into()),
                }
            }
            s => {
                let reason = format!("{s} {}", resp.reason);
                self.registration_failed(now, r, reason);
            }
        }
    }

    // ---------------------------------------------------------------- calls

    fn call_mut(&mut self, id: CallId) -> Option<&mut Call> {
        self.calls.iter_mut().find(|c| c.id == id)
    }

    /// Place a call to `remote_number` at the registrar's domain with an RFC 6193 offer, from the
    /// first local number.
    pub fn invite(&mut self, now: Instant, remote_number: &str, offer: IkeSdp) -> CallId {
        let local = self.cfg.local_number.clone();
        self.invite_from(now, &local, remote_number, offer)
    }

    /// Place a call from `local_number` (one of [`UaConfig::numbers`]: it is the From user and the
    /// Contact user) to `remote_number`.
    pub fn invite_from(
        &mut self,
        now: Instant,
        local_number: &str,
        remote_number: &str,
        offer: IkeSdp,
    ) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        let call_id = Self::make_call_id(&mut *self.rng, self.cfg.contact);
        let local_tag = hex(&mut *self.rng, 8);
        let call = Call {
            id,
            role: Role::Caller,
            state: CallState::Calling,
            call_id,
            local_uri: self.aor(local_number),
            remote_uri: self.aor(remote_number),
            remote_number: remote_number.to_owned(),
            local_number: local_number.to_owned(),
            local_tag,
            remote_tag: None,
            remote_target: None,
            route_set: Vec::new(),
            local_cseq: 0,
            invite_cseq: 0,
            invite: None,
            offer: Some(offer),
            ack: None,
            auth_tried: false,
            cancel_pending: false,
            server_branch: None,
            ended: false,
            bye_pending: false,
        };
        self.calls.push(call);
        self.send_invite(now, id, None);
        id
    }

    fn send_invite(&mut self, now: Instant, id: CallId, auth: Option<(String, &'static str)>) {
        let via = self.via();
        let number = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.local_number.clone())
            .unwrap_or_default();
        let contact = format!("<{}>", self.contact_uri(&number, self.cfg.contact));
        let sid = u64::from_le_bytes({
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            b
        }) >> 1;
        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
            return;
        };
        call.local_cseq += 1;
        call.invite_cseq = call.local_cseq;
        let mut h = Headers::default();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            NameAddr::new(call.local_uri.clone())
                .with_param("tag", Some(&call.local_tag))
                .to_string(),
        );
        h.push("To", NameAddr::new(call.remote_uri.clone()).to_string());
        h.push("Call-ID", call.call_id.clone());
        h.push("CSeq", format!("{} INVITE", call.local_cseq));
        h.push("Contact", contact);
        h.push("Allow", ALLOW);
        if let Some((v, name)) = auth {
            h.push(name, v);
        }
        h.push("User-Agent", USER_AGENT);
        h.push("Content-Type", "application/sdp");
        let body = call
            .offer
            .as_ref()
            .map(|o| o.to_sdp(sid, 1).into_bytes())
            .unwrap_or_default();
        let req = Request {
            method: Method::Invite,
            uri: call.remote_uri.clone(),
            headers: h,
            body,
        };
        call.invite = Some(req.clone());
        let to = self.cfg.registrar;
        self.start_client(now, req, to, Owner::Call(id));
    }

    /// Build an in-dialog request and the address of its next hop.
    fn dialog_request(&mut self, id: CallId, method: Method) -> Option<(Request, SocketAddr)> {
        let via = self.via();
        let registrar = self.cfg.registrar;
        let call = self.calls.iter_mut().find(|c| c.id == id)?;
        let seq = if method == Method::Ack {
            call.invite_cseq
        } else {
            call.local_cseq += 1;
            call.local_cseq
        };
        let target = call
            .remote_target
            .clone()
            .unwrap_or_else(|| call.remote_uri.clone());
        let mut h = Headers::default();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        for r in &call.route_set {
            h.push("Route", r.clone());
        }
        h.push(
            "From",
            NameAddr::new(call.local_uri.clone())
                .with_param("tag", Some(&call.local_tag))
                .to_string(),
        );
        let mut to = NameAddr::new(call.remote_uri.clone());
        if let Some(t) = &call.remote_tag {
            to = to.with_param("tag", Some(t));
        }
        h.push("To", to.to_string());
        h.push("Call-ID", call.call_id.clone());
        h.push("CSeq", format!("{seq} {method}"));
        h.push("User-Agent", USER_AGENT);
        let next_hop = call
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .and_then(|na| na.sip_uri())
            .and_then(|u| u.socket_addr())
            .or_else(|| SipUri::parse(&target).and_then(|u| u.socket_addr()))
            .unwrap_or(registrar);
        Some((
            Request {
                method,
                uri: target,
                headers: h,
                body: Vec::new(),
            },
            next_hop,
        ))
    }

    fn send_bye(&mut self, now: Instant, id: CallId) {
        if let Some((req, to)) = self.dialog_request(id, Method::Bye) {
            self.start_client(now, req, to, Owner::None);
        }
    }

    fn end_call(&mut self, id: CallId, by: EndedBy, reason: impl Into<String>) {
        if let Some(c) = self.call_mut(id)
            && !c.ended
        {
            c.ended = true;
            self.events.push_back(Event::CallEnded {
                call: id,
                by,
                reason: reason.into(),
            });
        }
        self.forget_call(id);
    }

    fn fail_call(&mut self, id: CallId, status: u16, reason: String) {
        if let Some(c) = self.call_mut(id)
            && !c.ended
        {
            c.ended = true;
            self.events.push_back(Event::CallFailed {
                call: id,
                status,
                reason,
            });
        }
        self.forget_call(id);
    }

    fn on_invite_response(&mut self, now: Instant, id: CallId, resp: Response) {
        let Some(call) = self.call_mut(id) else {
            // call already gone (cancelled): a late 2xx still gets ACK + BYE
            return;
        };
        let status = resp.status;
        if status < 200 {
            if status > 100 {
                call.state = CallState::Ringing;
            }
            if let Some(tag) = resp.to().and_then(|t| t.tag().map(str::to_owned)) {
                call.remote_tag = Some(tag);
            }
            if call.cancel_pending {
                call.cancel_pending = false;
                self.send_cancel(now, id);
            }
            return;
        }
        if status < 300 {
            call.remote_tag = resp.to().and_then(|t| t.tag().map(str::to_owned));
            call.remote_target = resp
                .headers
                .get_all("Contact")
                .next()
                .and_then(NameAddr::parse)
                .map(|na| na.uri);
            //= https://www.rfc-editor.org/rfc/rfc3261#section-12.1.2
            //# The route set MUST be set to the list of URIs in the Record-Route header field
            //# from the response, taken in reverse order and preserving all URI parameters.
            let mut rs: Vec<String> = resp
                .headers
                .get_all("Record-Route")
                .map(str::to_owned)
                .collect();
            rs.reverse();
            call.route_set = rs;
            call.state = CallState::Confirmed;
            let cancelled = call.cancel_pending || call.ended;
            let offer = call.offer.clone();
            if let Some((ack, to)) = self.dialog_request(id, Method::Ack) {
                let t = Transmit {
                    to,
                    payload: ack.to_bytes(),
                };
                self.out.push_back(t.clone());
                if let Some(c) = self.call_mut(id) {
                    c.ack = Some(t);
                }
            }
            if cancelled {
                self.send_bye(now, id);
                self.end_call(id, EndedBy::Local, "cancelled");
                return;
            }
            let answer = std::str::from_utf8(&resp.body)
                .map_err(|_| Rejection::Sdp(crate::sdp::SdpError::NotUtf8))
                .and_then(|b| IkeSdp::parse(b).map_err(Rejection::from));
            let result = answer.and_then(|a| {
                let n = match &offer {
                    Some(o) => negotiate(o, &a)?,
                    None => return Err(Rejection::Sdp(crate::sdp::SdpError::NoIkeMedia)),
                };
                Ok((a, n))
            });
            match result {
                Ok((answer, negotiated)) => self.events.push_back(Event::CallAnswered {
                    call: id,
                    answer,
                    negotiated,
                }),
                Err(rej) => {
                    self.send_bye(now, id);
                    self.fail_call(id, rej.status(), rej.to_string());
                }
            }
            return;
        }
        if (status == 401 || status == 407) && !call.auth_tried {
            call.auth_tried = true;
            let (hdr, auth_hdr) = if status == 401 {
                ("WWW-Authenticate", "Authorization")
            } else {
                ("Proxy-Authenticate", "Proxy-Authorization")
            };
            let uri = call.remote_uri.clone();
            let number = call.local_number.clone();
            let creds = self.cfg.credentials_for(&number);
            if let (Some((user, pass)), Some(ch)) = (
                creds,
                resp.headers.get(hdr).and_then(|v| Challenge::parse(v).ok()),
            ) {
                let cnonce = hex(&mut *self.rng, 8);
                let cred = ch.respond(&user, &pass, "INVITE", &uri, 1, &cnonce);
                self.send_invite(now, id, Some((cred.to_header(), auth_hdr)));
                return;
            }
        }
        let reason = warning_text(&resp).unwrap_or_else(|| resp.reason.clone());
        if status == 487 && self.call_mut(id).is_some_and(|c| c.ended) {
            self.calls.retain(|c| c.id != id);
            return;
        }
        self.fail_call(id, status, reason);
    }

    fn send_cancel(&mut self, now: Instant, id: CallId) {
        let Some(invite) = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.invite.clone())
        else {
            return;
        };
        //= https://www.rfc-editor.org/rfc/rfc3261#section-9.1
        //# The Request-URI, Call-ID, To, the numeric part of CSeq, and From header fields in
        //# the CANCEL request MUST be identical to those in the request being cancelled,
        //# including tags. ... the CANCEL MUST have a single Via header field value matching
        //# the top Via value in the request being cancelled.
        let mut h = Headers::default();
        if let Some(v) = invite.headers.get_all("Via").next() {
            h.push("Via", v);
        }
        h.push("Max-Forwards", "70");
        for n in ["From", "To", "Call-ID"] {
            h.push(n, invite.headers.get(n).unwrap_or_default());
        }
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        h.push("CSeq", format!("{seq} CANCEL"));
        for r in invite.headers.get_all("Route") {
            h.push("Route", r);
        }
        let req = Request {
            method: Method::Cancel,
            uri: invite.uri.clone(),
            headers: h,
            body: Vec::new(),
        };
        let to = self.cfg.registrar;
        self.start_client(now, req, to, Owner::None);
    }

    /// Answer an incoming call with our SDP (200 OK). The answer must fit the offer
    /// ([`crate::sdp::answer_for`] builds one that does).
    pub fn answer(&mut self, now: Instant, id: CallId, answer: &IkeSdp) -> Result<(), UaError> {
        let number = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.local_number.clone())
            .ok_or(UaError::UnknownCall)?;
        let contact = format!("<{}>", self.contact_uri(&number, self.cfg.contact));
        let sid = u64::from_le_bytes({
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            b
        }) >> 1;
        let call = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .ok_or(UaError::UnknownCall)?;
        if call.state != CallState::Incoming {
            return Err(UaError::WrongState);
        }
        if let Some(offer) = &call.offer {
            negotiate(offer, answer)?;
        }
        let branch = call.server_branch.clone().unwrap_or_default();
        let tag = call.local_tag.clone();
        let Some((tx, _)) = self
            .txs
            .iter_mut()
            .find(|(t, _)| t.matches(&branch, &Method::Invite, false))
        else {
            return Err(UaError::WrongState);
        };
        let mut resp = tx.request.response(200, "OK", Some(&tag));
        resp.headers.push("Contact", contact);
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = answer.to_sdp(sid, 1).into_bytes();
        tx.respond(now, resp, &mut self.out);
        if let Some(c) = self.call_mut(id) {
            c.state = CallState::Answered;
        }
        Ok(())
    }

    /// Refuse an incoming call (486 Busy Here, 488 Not Acceptable Here, 603 Decline, ...).
    /// `reason` travels in a `Warning: 399` header so the caller can show it.
    pub fn reject(
        &mut self,
        now: Instant,
        id: CallId,
        status: u16,
        reason: Option<&str>,
    ) -> Result<(), UaError> {
        let call = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .ok_or(UaError::UnknownCall)?;
        if call.state != CallState::Incoming || !(300..700).contains(&status) {
            return Err(UaError::WrongState);
        }
        let branch = call.server_branch.clone().unwrap_or_default();
        let tag = call.local_tag.clone();
        self.respond_server(now, &branch, &Method::Invite, status, Some(&tag), reason);
        self.calls.retain(|c| c.id != id);
        Ok(())
    }

    /// End a call: CANCEL (caller, not answered yet), 603 (callee, not answered yet) or BYE.
    /// `CallEnded { by: Local }` is reported at once, without waiting for the peer.
    pub fn hangup(&mut self, now: Instant, id: CallId) -> Result<(), UaError> {
        let call = self
            .calls
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or(UaError::UnknownCall)?;
        match (call.role, call.state) {
            (Role::Caller, CallState::Calling | CallState::Ringing) => {
                //= https://www.rfc-editor.org/rfc/rfc3261#section-9.1
                //# If no provisional response has been received, the CANCEL request MUST NOT
                //# be sent; rather, the client MUST wait for the arrival of a provisional
                //# response before sending the request.
                let got_provisional = self.txs.iter().any(|(t, o)| {
                    *o == Owner::Call(id)
                        && t.method == Method::Invite
                        && t.state == TxState::Proceeding
                });
                call.ended = true;
                self.events.push_back(Event::CallEnded {
                    call: id,
                    by: EndedBy::Local,
                    reason: "cancelled".into(),
                });
                if got_provisional {
                    self.send_cancel(now, id);
                } else if let Some(c) = self.call_mut(id) {
                    c.cancel_pending = true;
                }
                // keep the call record: the INVITE transaction still runs (487 or a late 2xx)
            }
            (Role::Callee, CallState::Incoming) => {
                self.reject(now, id, 603, None)?;
                self.events.push_back(Event::CallEnded {
                    call: id,
                    by: EndedBy::Local,
                    reason: "declined".into(),
                });
            }
            (Role::Callee, CallState::Answered) => {
                //= https://www.rfc-editor.org/rfc/rfc3261#section-15
                //# The callee's UA MUST NOT send a BYE on a confirmed dialog until it has
                //# received an ACK for its 2xx response or until the server transaction times out.
                call.ended = true;
                call.bye_pending = true;
                self.events.push_back(Event::CallEnded {
                    call: id,
                    by: EndedBy::Local,
                    reason: "local hangup".into(),
                });
            }
            _ => {
                self.send_bye(now, id);
                self.end_call(id, EndedBy::Local, "local hangup");
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- input

    /// A datagram arrived from `from`.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match Message::parse(data) {
            Ok(Message::Response(r)) => self.on_response(now, r),
            Ok(Message::Request(r)) => self.on_request(now, from, r),
            Err(_) => self.parse_errors += 1,
        }
        self.reap();
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let Some(branch) = resp.top_via().and_then(|v| v.branch().map(str::to_owned)) else {
            return;
        };
        let Some(method) = resp.cseq().map(|c| c.method) else {
            return;
        };
        let Some(idx) = self
            .txs
            .iter()
            .position(|(t, _)| t.matches(&branch, &method, true))
        else {
            // 2xx retransmission after the INVITE transaction ended: re-send our ACK
            if method == Method::Invite && (200..300).contains(&resp.status) {
                let cid = resp.call_id().to_owned();
                let ack = self
                    .calls
                    .iter()
                    .find(|c| c.call_id == cid)
                    .and_then(|c| c.ack.clone())
                    .or_else(|| {
                        self.recent_acks
                            .iter()
                            .rev()
                            .find(|(id, _)| *id == cid)
                            .map(|(_, a)| a.clone())
                    });
                if let Some(ack) = ack {
                    self.out.push_back(ack);
                }
            }
            return;
        };
        let mut events = VecDeque::new();
        let owner = self.txs[idx].1;
        self.txs[idx]
            .0
            .on_response(now, resp, &mut self.out, &mut events);
        self.tx_events(now, owner, method, events);
    }

    fn tx_events(&mut self, now: Instant, owner: Owner, method: Method, events: VecDeque<TxEvent>) {
        for ev in events {
            match (owner, ev) {
                (Owner::Register(reg), TxEvent::Response(r)) => {
                    self.on_register_response(now, reg, r)
                }
                (Owner::Register(reg), TxEvent::Timeout) => {
                    self.registration_failed(now, reg, "registrar did not answer".into())
                }
                (Owner::Call(id), TxEvent::Response(r)) if method == Method::Invite => {
                    self.on_invite_response(now, id, r)
                }
                (Owner::Call(id), TxEvent::Timeout) if method == Method::Invite => {
                    let st = self.calls.iter().find(|c| c.id == id).map(|c| c.role);
                    match st {
                        Some(Role::Caller) => {
                            if self.call_mut(id).is_some_and(|c| c.ended) {
                                self.calls.retain(|c| c.id != id);
                            } else {
                                self.fail_call(id, 408, "Request Timeout".into());
                            }
                        }
                        Some(Role::Callee) => {
                            //= https://www.rfc-editor.org/rfc/rfc3261#section-13.3.1.4
                            //# If the server retransmits the 2xx response for 64*T1 seconds
                            //# without receiving an ACK, the dialog is confirmed, but the
                            //# session SHOULD be terminated. This is accomplished with a BYE
                            self.send_bye(now, id);
                            self.end_call(id, EndedBy::Local, "no ACK for 200 OK");
                        }
                        None => {}
                    }
                }
                _ => {}
            }
        }
    }

    fn respond_server(
        &mut self,
        now: Instant,
        branch: &str,
        method: &Method,
        status: u16,
        tag: Option<&str>,
        warning: Option<&str>,
    ) {
        let host = self.cfg.contact.ip();
        if let Some((tx, _)) = self
            .txs
            .iter_mut()
            .find(|(t, _)| t.matches(branch, method, false))
        {
            let mut resp = tx.request.response(status, reason_phrase(status), tag);
            if let Some(w) = warning {
                let w = w.replace(['"', '\\'], "'");
                resp.headers.push("Warning", format!("399 {host} \"{w}\""));
            }
            if status == 200 && *method == Method::Options {
                resp.headers.push("Allow", ALLOW);
                resp.headers.push("Accept", "application/sdp");
            }
            tx.respond(now, resp, &mut self.out);
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, req: Request) {
        let branch = req
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let method = req.method.clone();
        // retransmission or ACK of a non-2xx final
        if let Some(idx) = self
            .txs
            .iter()
            .position(|(t, _)| t.matches(&branch, &method, false))
        {
            let mut events = VecDeque::new();
            self.txs[idx]
                .0
                .on_request(now, &method, &mut self.out, &mut events);
            return;
        }
        if method == Method::Ack {
            self.on_2xx_ack(now, &req);
            return;
        }
        let reliable = self.cfg.transport.reliable();
        let tx = Transaction::server(req.clone(), from, reliable);
        self.txs.push((tx, Owner::None));
        let to_tag = req.to().and_then(|t| t.tag().map(str::to_owned));
        match method {
            Method::Invite if to_tag.is_none() => self.on_invite(now, &branch, req),
            Method::Invite => {
                // re-INVITE: not supported in VPN-SIP sessions
                self.respond_server(now, &branch, &method, 488, None, Some("re-INVITE"));
            }
            Method::Bye => {
                let cid = req.call_id().to_owned();
                let found = self
                    .calls
                    .iter()
                    .find(|c| c.call_id == cid && to_tag.as_deref() == Some(c.local_tag.as_str()))
                    .map(|c| c.id);
                match found {
                    Some(id) => {
                        self.respond_server(now, &branch, &method, 200, None, None);
                        let reason = req
                            .headers
                            .get("Reason")
                            .map(str::to_owned)
                            .unwrap_or_else(|| "BYE".into());
                        self.end_call(id, EndedBy::Remote, reason);
                    }
                    None => self.respond_server(now, &branch, &method, 481, None, None),
                }
            }
            Method::Cancel => self.on_cancel(now, &branch),
            Method::Options => {
                let tag = hex(&mut *self.rng, 8);
                self.respond_server(now, &branch, &method, 200, Some(&tag), None)
            }
            Method::Register => self.respond_server(now, &branch, &method, 405, None, None),
            _ => self.respond_server(now, &branch, &method, 501, None, None),
        }
    }

    fn on_2xx_ack(&mut self, now: Instant, req: &Request) {
        let cid = req.call_id();
        let Some((id, branch)) = self
            .calls
            .iter()
            .find(|c| c.call_id == cid && c.role == Role::Callee)
            .map(|c| (c.id, c.server_branch.clone().unwrap_or_default()))
        else {
            return;
        };
        let mut events = VecDeque::new();
        if let Some((tx, _)) = self
            .txs
            .iter_mut()
            .find(|(t, _)| t.matches(&branch, &Method::Invite, false))
        {
            tx.on_ack(now, &mut events);
        }
        if let Some(c) = self.call_mut(id)
            && c.state == CallState::Answered
        {
            c.state = CallState::Confirmed;
            if c.bye_pending {
                self.send_bye(now, id);
                self.forget_call(id);
            } else {
                self.events.push_back(Event::CallConfirmed { call: id });
            }
        }
    }

    fn on_invite(&mut self, now: Instant, branch: &str, req: Request) {
        let from_number = req.from().map(|f| number_of(&f.uri)).unwrap_or_default();
        self.respond_server(now, branch, &Method::Invite, 100, None, None);
        let local_tag = hex(&mut *self.rng, 8);
        // The called number: the Request-URI's user (the registrar rewrote it to the Contact we
        // registered for that number), else the To user.
        let to_number = SipUri::parse(&req.uri)
            .and_then(|u| u.user)
            .or_else(|| {
                req.to()
                    .and_then(|t| SipUri::parse(&t.uri))
                    .and_then(|u| u.user)
            })
            .unwrap_or_default();
        if !self.cfg.numbers().any(|n| n == to_number) {
            self.unknown_number_calls += 1;
            self.respond_server(now, branch, &Method::Invite, 404, Some(&local_tag), None);
            self.events.push_back(Event::IncomingCallRejected {
                from_number,
                to_number,
                status: 404,
                reason: "not our number".into(),
            });
            return;
        }
        let offer = std::str::from_utf8(&req.body)
            .map_err(|_| crate::sdp::SdpError::NotUtf8)
            .and_then(IkeSdp::parse);
        let offer = match offer {
            Ok(o) => o,
            Err(e) => {
                let reason = e.to_string();
                self.respond_server(
                    now,
                    branch,
                    &Method::Invite,
                    e.status(),
                    Some(&local_tag),
                    Some(&reason),
                );
                self.events.push_back(Event::IncomingCallRejected {
                    from_number,
                    to_number,
                    status: e.status(),
                    reason,
                });
                return;
            }
        };
        let id = CallId(self.next_call);
        self.next_call += 1;
        let route_set: Vec<String> = req
            .headers
            .get_all("Record-Route")
            .map(str::to_owned)
            .collect();
        let call = Call {
            id,
            role: Role::Callee,
            state: CallState::Incoming,
            call_id: req.call_id().to_owned(),
            local_uri: req.to().map(|t| t.uri).unwrap_or_default(),
            remote_uri: req.from().map(|f| f.uri).unwrap_or_default(),
            remote_number: from_number.clone(),
            local_number: to_number.clone(),
            local_tag: local_tag.clone(),
            remote_tag: req.from().and_then(|f| f.tag().map(str::to_owned)),
            remote_target: req
                .headers
                .get_all("Contact")
                .next()
                .and_then(NameAddr::parse)
                .map(|na| na.uri),
            route_set,
            local_cseq: 0,
            invite_cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
            invite: None,
            offer: Some(offer.clone()),
            ack: None,
            auth_tried: false,
            cancel_pending: false,
            server_branch: Some(branch.to_owned()),
            ended: false,
            bye_pending: false,
        };
        self.calls.push(call);
        let owner_idx = self
            .txs
            .iter()
            .position(|(t, _)| t.matches(branch, &Method::Invite, false));
        if let Some(i) = owner_idx {
            self.txs[i].1 = Owner::Call(id);
        }
        self.respond_server(now, branch, &Method::Invite, 180, Some(&local_tag), None);
        self.events.push_back(Event::IncomingCall {
            call: id,
            from_number,
            to_number,
            offer,
        });
    }

    fn on_cancel(&mut self, now: Instant, branch: &str) {
        //= https://www.rfc-editor.org/rfc/rfc3261#section-9.2
        //# If the UAS did not find a matching transaction for the CANCEL according to the
        //# procedure above, it SHOULD respond to the CANCEL with a 481 ... If the original
        //# request has not been answered, the UAS SHOULD respond with 487 (Request Terminated).
        let call = self
            .calls
            .iter()
            .find(|c| c.server_branch.as_deref() == Some(branch))
            .map(|c| (c.id, c.state, c.local_tag.clone()));
        match call {
            Some((id, CallState::Incoming, tag)) => {
                self.respond_server(now, branch, &Method::Cancel, 200, Some(&tag), None);
                self.respond_server(now, branch, &Method::Invite, 487, Some(&tag), None);
                self.end_call(id, EndedBy::Remote, "cancelled");
            }
            Some((_, _, tag)) => {
                self.respond_server(now, branch, &Method::Cancel, 200, Some(&tag), None)
            }
            None => self.respond_server(now, branch, &Method::Cancel, 481, None, None),
        }
    }

    // ---------------------------------------------------------------- time

    /// Time passed: fire transaction timers, refresh or retry the registration.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut fired = Vec::new();
        for (tx, owner) in self.txs.iter_mut() {
            if tx.poll_timeout().is_some_and(|t| t <= now) {
                let mut events = VecDeque::new();
                tx.handle_timeout(now, &mut self.out, &mut events);
                fired.push((*owner, tx.method.clone(), events));
            }
        }
        for (owner, method, events) in fired {
            self.tx_events(now, owner, method, events);
        }
        // Each number refreshes (or retries) on its own schedule.
        for r in 0..self.regs.len() {
            let reg = &mut self.regs[r];
            if reg.next.is_some_and(|t| t <= now) {
                reg.next = None;
                if matches!(reg.state, RegState::Registered { .. } | RegState::Backoff) {
                    reg.auth_sent_for = None;
                    self.send_register(now, r, None);
                }
            }
            let reg = &mut self.regs[r];
            if reg.bound.is_some_and(|(_, until)| until <= now) {
                reg.bound = None;
                self.events.push_back(Event::Unregistered {
                    number: reg.number.clone(),
                });
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        self.txs.retain(|(t, _)| t.state != TxState::Terminated);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.txs.iter().filter_map(|(t, _)| t.poll_timeout()).min();
        let regs = self
            .regs
            .iter()
            .flat_map(|r| [r.next, r.bound.map(|(_, until)| until)])
            .flatten()
            .min();
        [tx, regs].into_iter().flatten().min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Every local number has a binding.
    pub fn is_registered(&self) -> bool {
        self.regs.iter().all(|r| r.bound.is_some())
    }

    /// At least one local number has a binding.
    pub fn any_registered(&self) -> bool {
        self.regs.iter().any(|r| r.bound.is_some())
    }

    /// Local number `number` has a binding (it can place calls).
    pub fn is_registered_as(&self, number: &str) -> bool {
        self.regs
            .iter()
            .any(|r| r.number == number && r.bound.is_some())
    }

    fn number_snapshot(r: &Registration, now: Instant) -> NumberRegistration {
        let registration = match r.bound {
            Some((contact, until)) if until > now => {
                let left = until.saturating_duration_since(now).as_secs();
                RegistrationStatus::Registered {
                    contact,
                    expires_in: u32::try_from(left).unwrap_or(u32::MAX),
                    call_id: r.call_id.clone(),
                }
            }
            _ => RegistrationStatus::NotRegistered,
        };
        NumberRegistration {
            local_number: r.number.clone(),
            registration,
            failures: r.failures,
            failure: r.last_failure.clone(),
            retry_in: match r.state {
                RegState::Backoff => r.next.map(|t| t.saturating_duration_since(now)),
                _ => None,
            },
        }
    }

    /// Plain data for `show` (`now` turns the expiry into a countdown).
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let registrations: Vec<NumberRegistration> = self
            .regs
            .iter()
            .map(|r| Self::number_snapshot(r, now))
            .collect();
        let first = registrations
            .first()
            .cloned()
            .unwrap_or(NumberRegistration {
                local_number: self.cfg.local_number.clone(),
                registration: RegistrationStatus::NotRegistered,
                failures: 0,
                failure: None,
                retry_in: None,
            });
        Snapshot {
            local_number: first.local_number,
            domain: self.cfg.domain.clone(),
            transport: self.cfg.transport,
            registration: first.registration,
            registration_failures: first.failures,
            registration_failure: first.failure,
            registration_retry_in: first.retry_in,
            registrations,
            calls: self
                .calls
                .iter()
                .filter(|c| !c.ended)
                .map(|c| CallSnapshot {
                    call: c.id,
                    sip_call_id: c.call_id.clone(),
                    remote_number: c.remote_number.clone(),
                    local_number: c.local_number.clone(),
                    role: c.role,
                    state: c.state,
                })
                .collect(),
            parse_errors: self.parse_errors,
            unknown_number_calls: self.unknown_number_calls,
        }
    }
}

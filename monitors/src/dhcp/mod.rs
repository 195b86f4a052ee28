//! DHCPv4 client core (RFC 2131), sans-io, on the `dhcproto` codec.
//!
//! INIT → SELECTING → REQUESTING → BOUND → RENEWING → REBINDING, requesting option 120 (SIP servers,
//! RFC 3361) and option 125 (V-I vendor-specific, RFC 3925) and decoding both ([`options`]). The appliance
//! owns a UDP socket bound to 0.0.0.0:68 with `SO_BROADCAST` and bound to the device, sends every
//! [`Transmit`] to port 67 and feeds every datagram from port 67 to [`Client::handle_input`].
//!
//! Rules (each has a test): offers/acks are accepted only for our xid and hardware address; the first valid
//! offer is taken; REQUEST carries the offered address and the server identifier; ACK binds, NAK restarts;
//! T1 (default lease/2) starts unicast renewal, T2 (default 7/8 lease) broadcast rebinding, and expiry
//! loses the lease; retransmissions back off 4, 8, 16, 32, 64 s (±1 s) while selecting and requesting (four
//! tries, then restart), and halve the remaining time (at least 60 s) while renewing and rebinding.
//!
//! Absent: DHCPDECLINE after an ARP conflict check, INIT-REBOOT, the initial 1-10 s random wait (the
//! caller may delay [`Client::start`]), DHCPINFORM.

pub mod options;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Encodable};

pub use options::{SipServers, VendorInfo};

/// What the client says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Ethernet address (chaddr).
    pub mac: [u8; 6],
    /// Option 61; `None`: type 1 + MAC.
    pub client_id: Option<Vec<u8>>,
    /// Option 60 (vendor class identifier).
    pub vendor_class: Option<Vec<u8>>,
    /// Option 12.
    pub hostname: Option<String>,
}

/// A datagram for UDP port 67.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address to use (0.0.0.0 until bound).
    pub src: Ipv4Addr,
    /// 255.255.255.255, or the server when renewing.
    pub dst: Ipv4Addr,
    pub payload: Vec<u8>,
}

/// A lease as the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease: Duration,
    pub t1: Duration,
    pub t2: Duration,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Option 120, if sent and valid.
    pub sip_servers: Option<SipServers>,
    /// Option 125 blocks, if sent and valid.
    pub vendor: Vec<VendorInfo>,
    /// When the lease started (the ACK arrived).
    pub bound_at: Instant,
}

impl Lease {
    pub fn expires_at(&self) -> Instant {
        self.bound_at + self.lease
    }
}

/// Facts for the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpEvent {
    Bound(Lease),
    Renewed(Lease),
    /// The address may no longer be used (NAK or expiry).
    Lost {
        addr: Ipv4Addr,
    },
}

/// Current state name, for `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateName {
    Stopped,
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Offer {
    addr: Ipv4Addr,
    server: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Stopped,
    Init {
        at: Instant,
    },
    Selecting {
        xid: u32,
        attempt: u32,
        retx_at: Instant,
    },
    Requesting {
        xid: u32,
        offer: Offer,
        attempt: u32,
        retx_at: Instant,
    },
    Bound {
        lease: Lease,
    },
    Renewing {
        xid: u32,
        lease: Lease,
        retx_at: Instant,
    },
    Rebinding {
        xid: u32,
        lease: Lease,
        retx_at: Instant,
    },
}

/// Tries of a REQUEST in the REQUESTING state before starting over.
pub const REQUEST_TRIES: u32 = 4;
const MIN_RENEW_RETX: Duration = Duration::from_secs(60);

/// The DHCP client state machine.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    state: State,
    rng: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DhcpEvent>,
}

impl Client {
    /// `seed` (random, injected) drives xids and retransmission jitter.
    pub fn new(cfg: ClientConfig, seed: u64) -> Self {
        Client {
            cfg,
            state: State::Stopped,
            rng: seed | 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn next_u32(&mut self) -> u32 {
        // xorshift64*: deterministic from the injected seed; not for secrets.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// Backoff for try `attempt` (0-based): 4, 8, 16, 32, 64 s, randomised by ±1 s.
    fn backoff(&mut self, attempt: u32) -> Duration {
        //= https://www.rfc-editor.org/rfc/rfc2131#section-4.1
        //# the delay before the first retransmission SHOULD be 4 seconds randomized by the value of a
        //# uniform random number chosen from the range -1 to +1. ... The delay before the next
        //# retransmission SHOULD be 8 seconds ... up to a maximum of 64 seconds.
        let base = 4u64 << attempt.min(4);
        let jitter_ms = u64::from(self.next_u32() % 2001);
        Duration::from_millis(base * 1000 + jitter_ms).saturating_sub(Duration::from_secs(1))
    }

    /// Starts (or restarts) address acquisition.
    pub fn start(&mut self, now: Instant) {
        self.state = State::Init { at: now };
        self.handle_timeout(now);
    }

    /// Stops the client; a bound lease is released with DHCPRELEASE.
    pub fn release(&mut self, _now: Instant) {
        let lease = match &self.state {
            State::Bound { lease }
            | State::Renewing { lease, .. }
            | State::Rebinding { lease, .. } => Some(lease.clone()),
            _ => None,
        };
        if let Some(l) = lease {
            let xid = self.next_u32();
            let mut m = self.base_message(xid, l.addr, MessageType::Release);
            m.opts_mut().insert(DhcpOption::ServerIdentifier(l.server));
            self.send(l.addr, l.server, &m);
            self.events.push_back(DhcpEvent::Lost { addr: l.addr });
        }
        self.state = State::Stopped;
    }

    pub fn state(&self) -> StateName {
        match self.state {
            State::Stopped => StateName::Stopped,
            State::Init { .. } => StateName::Init,
            State::Selecting { .. } => StateName::Selecting,
            State::Requesting { .. } => StateName::Requesting,
            State::Bound { .. } => StateName::Bound,
            State::Renewing { .. } => StateName::Renewing,
            State::Rebinding { .. } => StateName::Rebinding,
        }
    }

    /// The current lease, if any.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound { lease }
            | State::Renewing { lease, .. }
            | State::Rebinding { lease, .. } => Some(lease),
            _ => None,
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<DhcpEvent> {
        self.events.pop_front()
    }

    /// The next instant at which [`Client::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Stopped => None,
            State::Init { at } => Some(*at),
            State::Selecting { retx_at, .. } | State::Requesting { retx_at, .. } => Some(*retx_at),
            State::Bound { lease } => Some(lease.bound_at + lease.t1),
            State::Renewing { lease, retx_at, .. } => {
                Some((*retx_at).min(lease.bound_at + lease.t2))
            }
            State::Rebinding { lease, retx_at, .. } => Some((*retx_at).min(lease.expires_at())),
        }
    }

    fn base_message(&self, xid: u32, ciaddr: Ipv4Addr, ty: MessageType) -> Message {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(xid, ciaddr, z, z, z, &self.cfg.mac);
        if ciaddr.is_unspecified() {
            // We cannot receive unicast before we have an address.
            m.set_flags(Flags::default().set_broadcast());
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(ty));
        let cid = self.cfg.client_id.clone().unwrap_or_else(|| {
            let mut v = vec![1];
            v.extend_from_slice(&self.cfg.mac);
            v
        });
        o.insert(DhcpOption::ClientIdentifier(cid));
        if ty != MessageType::Release {
            o.insert(DhcpOption::ParameterRequestList(vec![
                OptionCode::SubnetMask,
                OptionCode::Router,
                OptionCode::DomainNameServer,
                OptionCode::DomainName,
                OptionCode::AddressLeaseTime,
                OptionCode::Renewal,
                OptionCode::Rebinding,
                OptionCode::from(options::OPTION_SIP_SERVERS),
                OptionCode::from(options::OPTION_VI_VENDOR_SPECIFIC),
            ]));
            o.insert(DhcpOption::MaxMessageSize(1500));
            if let Some(vc) = &self.cfg.vendor_class {
                o.insert(DhcpOption::ClassIdentifier(vc.clone()));
            }
            if let Some(h) = &self.cfg.hostname {
                o.insert(DhcpOption::Hostname(h.clone()));
            }
        }
        m
    }

    fn send(&mut self, src: Ipv4Addr, dst: Ipv4Addr, m: &Message) {
        // Encoding our own message only fails on an impossible option; drop it rather than panic.
        if let Ok(payload) = m.to_vec() {
            self.transmits.push_back(Transmit { src, dst, payload });
        }
    }

    fn send_discover(&mut self, xid: u32) {
        let m = self.base_message(xid, Ipv4Addr::UNSPECIFIED, MessageType::Discover);
        self.send(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, &m);
    }

    fn send_request_selecting(&mut self, xid: u32, offer: &Offer) {
        //= https://www.rfc-editor.org/rfc/rfc2131#section-4.3.2
        //# DHCPREQUEST generated during SELECTING state: Client inserts the address of the selected
        //# server in 'server identifier', 'ciaddr' MUST be zero, 'requested IP address' MUST be
        //# filled in with the yiaddr value from the chosen DHCPOFFER.
        let mut m = self.base_message(xid, Ipv4Addr::UNSPECIFIED, MessageType::Request);
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(offer.server));
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.addr));
        self.send(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, &m);
    }

    fn send_request_bound(&mut self, xid: u32, lease: &Lease, unicast: bool) {
        //# DHCPREQUEST generated during RENEWING state: 'server identifier' MUST NOT be filled in,
        //# 'requested IP address' option MUST NOT be filled in, 'ciaddr' MUST be filled in with
        //# client's IP address. ... This message will be unicast
        //# DHCPREQUEST generated during REBINDING state: ... This message MUST be broadcast
        let m = self.base_message(xid, lease.addr, MessageType::Request);
        let dst = if unicast {
            lease.server
        } else {
            Ipv4Addr::BROADCAST
        };
        self.send(lease.addr, dst, &m);
    }

    /// Retransmissions, T1, T2 and expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Several deadlines may have passed (a late driver): loop until nothing is due.
        for _ in 0..8 {
            let Some(due) = self.poll_timeout() else {
                return;
            };
            if due > now {
                return;
            }
            let state = std::mem::replace(&mut self.state, State::Stopped);
            self.state = match state {
                State::Stopped => State::Stopped,
                State::Init { .. } => {
                    let xid = self.next_u32();
                    self.send_discover(xid);
                    State::Selecting {
                        xid,
                        attempt: 0,
                        retx_at: now + self.backoff(0),
                    }
                }
                State::Selecting { xid, attempt, .. } => {
                    self.send_discover(xid);
                    let a = attempt + 1;
                    State::Selecting {
                        xid,
                        attempt: a,
                        retx_at: now + self.backoff(a),
                    }
                }
                State::Requesting {
                    xid,
                    offer,
                    attempt,
                    ..
                } => {
                    if attempt + 1 >= REQUEST_TRIES {
                        State::Init { at: now }
                    } else {
                        self.send_request_selecting(xid, &offer);
                        let a = attempt + 1;
                        State::Requesting {
                            xid,
                            offer,
                            attempt: a,
                            retx_at: now + self.backoff(a),
                        }
                    }
                }
                State::Bound { lease } => {
                    let xid = self.next_u32();
                    self.send_request_bound(xid, &lease, true);
                    let retx_at = now + half_remaining(now, lease.bound_at + lease.t2);
                    State::Renewing {
                        xid,
                        lease,
                        retx_at,
                    }
                }
                State::Renewing { xid, lease, .. } => {
                    let t2 = lease.bound_at + lease.t2;
                    if now >= t2 {
                        let xid = self.next_u32();
                        self.send_request_bound(xid, &lease, false);
                        let retx_at = now + half_remaining(now, lease.expires_at());
                        State::Rebinding {
                            xid,
                            lease,
                            retx_at,
                        }
                    } else {
                        //= https://www.rfc-editor.org/rfc/rfc2131#section-4.4.5
                        //# the client SHOULD wait one-half of the remaining time until T2 (in RENEWING
                        //# state) and one-half of the remaining lease time (in REBINDING state), down
                        //# to a minimum of 60 seconds, before retransmitting the DHCPREQUEST message.
                        self.send_request_bound(xid, &lease, true);
                        let retx_at = now + half_remaining(now, t2);
                        State::Renewing {
                            xid,
                            lease,
                            retx_at,
                        }
                    }
                }
                State::Rebinding { xid, lease, .. } => {
                    if now >= lease.expires_at() {
                        self.events.push_back(DhcpEvent::Lost { addr: lease.addr });
                        State::Init { at: now }
                    } else {
                        self.send_request_bound(xid, &lease, false);
                        let retx_at = now + half_remaining(now, lease.expires_at());
                        State::Rebinding {
                            xid,
                            lease,
                            retx_at,
                        }
                    }
                }
            };
        }
    }

    /// Feeds a datagram received on port 68. Malformed or foreign messages are ignored (returns false).
    pub fn handle_input(&mut self, now: Instant, payload: &[u8]) -> bool {
        let Ok(msg) = Message::from_bytes(payload) else {
            return false;
        };
        // dhcproto 0.15 decodes any hlen, but `chaddr()` slices by it and panics above 16: check it first.
        if usize::from(msg.hlen()) != self.cfg.mac.len() {
            return false;
        }
        if msg.opcode() != Opcode::BootReply || msg.chaddr() != self.cfg.mac.as_slice() {
            return false;
        }
        let Some(ty) = msg.opts().msg_type() else {
            return false;
        };
        match self.on_message(now, &msg, ty) {
            Some(next) => {
                self.state = next;
                true
            }
            None => false,
        }
    }

    /// The next state, or `None` to ignore the message and stay.
    fn on_message(&mut self, now: Instant, msg: &Message, ty: MessageType) -> Option<State> {
        match (&self.state, ty) {
            (State::Selecting { xid, .. }, MessageType::Offer) if msg.xid() == *xid => {
                let xid = *xid;
                let server = server_id(msg)?;
                let addr = msg.yiaddr();
                if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
                    return None;
                }
                let offer = Offer { addr, server };
                self.send_request_selecting(xid, &offer);
                let retx_at = now + self.backoff(0);
                Some(State::Requesting {
                    xid,
                    offer,
                    attempt: 0,
                    retx_at,
                })
            }
            (State::Requesting { xid, offer, .. }, MessageType::Ack) if msg.xid() == *xid => {
                let lease = lease_from(now, msg, None).filter(|l| l.addr == offer.addr)?;
                self.events.push_back(DhcpEvent::Bound(lease.clone()));
                Some(State::Bound { lease })
            }
            (State::Requesting { xid, .. }, MessageType::Nak) if msg.xid() == *xid => {
                //= https://www.rfc-editor.org/rfc/rfc2131#section-3.1
                //# If the client receives a DHCPNAK message, the client restarts the configuration process.
                Some(State::Init { at: now })
            }
            (
                State::Renewing { xid, lease, .. } | State::Rebinding { xid, lease, .. },
                MessageType::Ack,
            ) if msg.xid() == *xid => {
                let new = lease_from(now, msg, Some(lease)).filter(|l| l.addr == lease.addr)?;
                self.events.push_back(DhcpEvent::Renewed(new.clone()));
                Some(State::Bound { lease: new })
            }
            (
                State::Renewing { xid, lease, .. } | State::Rebinding { xid, lease, .. },
                MessageType::Nak,
            ) if msg.xid() == *xid => {
                self.events.push_back(DhcpEvent::Lost { addr: lease.addr });
                Some(State::Init { at: now })
            }
            _ => None,
        }
    }

    /// Data for `show vpn-sip sip dhcp`.
    pub fn snapshot(&self) -> DhcpSnapshot {
        DhcpSnapshot {
            state: self.state(),
            lease: self.lease().cloned(),
        }
    }
}

/// Plain data for `show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSnapshot {
    pub state: StateName,
    pub lease: Option<Lease>,
}

fn half_remaining(now: Instant, until: Instant) -> Duration {
    let rem = until.saturating_duration_since(now);
    (rem / 2)
        .max(MIN_RENEW_RETX)
        .min(rem.max(Duration::from_millis(1)))
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
        _ => None,
    }
}

fn unknown(msg: &Message, code: u8) -> Option<&[u8]> {
    match msg.opts().get(OptionCode::from(code)) {
        Some(DhcpOption::Unknown(u)) => Some(u.data()),
        _ => None,
    }
}

/// Builds a lease from an ACK; `None` if a required option is missing (the peer misbehaved).
fn lease_from(now: Instant, msg: &Message, previous: Option<&Lease>) -> Option<Lease> {
    let o = msg.opts();
    //= https://www.rfc-editor.org/rfc/rfc2131#section-4.3.1
    //# 'IP address lease time' ... MUST (in response to DHCPREQUEST)
    let lease_secs = match o.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(s)) => *s,
        _ => return None,
    };
    let server = server_id(msg).or(previous.map(|l| l.server))?;
    let lease = Duration::from_secs(u64::from(lease_secs));
    //= https://www.rfc-editor.org/rfc/rfc2131#section-4.4.5
    //# T1 defaults to (0.5 * duration_of_lease).  T2 defaults to (0.875 * duration_of_lease).
    let mut t1 = match o.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(s)) => Duration::from_secs(u64::from(*s)),
        _ => lease / 2,
    };
    let mut t2 = match o.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(s)) => Duration::from_secs(u64::from(*s)),
        _ => lease * 7 / 8,
    };
    if !(t1 < t2 && t2 <= lease) {
        t1 = lease / 2;
        t2 = lease * 7 / 8;
    }
    let mask = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => *m,
        _ => previous.map_or(Ipv4Addr::new(255, 255, 255, 0), |l| l.mask),
    };
    let router = match o.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let dns = match o.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    };
    let domain = match o.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(d)) => Some(d.clone()),
        _ => None,
    };
    let sip_servers =
        unknown(msg, options::OPTION_SIP_SERVERS).and_then(|d| SipServers::parse(d).ok());
    let vendor = unknown(msg, options::OPTION_VI_VENDOR_SPECIFIC)
        .and_then(|d| VendorInfo::parse_all(d).ok())
        .unwrap_or_default();
    Some(Lease {
        addr: msg.yiaddr(),
        mask,
        router,
        server,
        lease,
        t1,
        t2,
        dns,
        domain,
        sip_servers,
        vendor,
        bound_at: now,
    })
}

/// Builds a server reply (OFFER/ACK/NAK) to `request`, for tests and simulations.
pub fn server_reply(
    request: &[u8],
    ty: MessageType,
    yiaddr: Ipv4Addr,
    server: Ipv4Addr,
    extra: Vec<DhcpOption>,
) -> Option<Vec<u8>> {
    let req = Message::from_bytes(request).ok()?;
    if req.hlen() > 16 {
        return None;
    }
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(req.xid(), z, yiaddr, server, z, req.chaddr());
    m.set_opcode(Opcode::BootReply);
    m.opts_mut().insert(DhcpOption::MessageType(ty));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    for o in extra {
        m.opts_mut().insert(o);
    }
    m.to_vec().ok()
}

/// A raw option for [`server_reply`] (options 120 and 125 are not typed in `dhcproto`).
pub fn raw_option(code: u8, data: Vec<u8>) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(code), data))
}

#[cfg(test)]
mod tests;

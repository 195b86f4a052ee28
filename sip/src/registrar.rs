//! A small registrar and stateless proxy, sans-io: enough for the embedded demo, the in-process
//! simulation and unprivileged tests, not a carrier-grade server.
//!
//! - REGISTER: digest challenge (401, MD5, qop=auth) when users are configured; bindings with
//!   expiry (raised to `min_expires` like Kamailio, never 423); `Contact: *` with `Expires: 0`.
//! - INVITE and other out-of-dialog requests to `user@domain`: optional 407 challenge for INVITE,
//!   then forwarded to the registered contact with `Record-Route` (loose routing), or 404.
//! - In-dialog requests (Route = us): forwarded to the Request-URI. Responses: top Via removed,
//!   forwarded to the next Via (`received`/`rport`).
//!
//! Stateless (RFC 3261 §16.11): the branch of a forwarded request is derived from the incoming
//! branch, so retransmissions and CANCEL take the same path; the end points' transactions do the
//! retransmitting.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::digest::{Algorithm, Challenge, Credentials, Secret};
use crate::msg::{Message, Method, NameAddr, Request, Response, SipUri, Via, reason_phrase};
use crate::random::{Random, hex};
use crate::transaction::Transmit;

/// Registrar configuration.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// The domain we serve (`lifeline.test`).
    pub domain: String,
    /// Our own address (Via, Record-Route, and requests addressed to it).
    pub addr: SocketAddr,
    /// Users and passwords; `None` accepts everybody without digest.
    pub users: Option<Vec<(String, Secret)>>,
    /// Challenge out-of-dialog INVITEs with 407 (as the Kamailio test bed does).
    pub challenge_invites: bool,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
}

impl RegistrarConfig {
    pub fn new(domain: impl Into<String>, addr: SocketAddr) -> RegistrarConfig {
        RegistrarConfig {
            domain: domain.into(),
            addr,
            users: None,
            challenge_invites: false,
            min_expires: 60,
            max_expires: 86_400,
            default_expires: 3600,
        }
    }
}

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub aor: String,
    pub contact: String,
    pub addr: SocketAddr,
    pub expires_at: Instant,
    pub call_id: String,
}

/// Registrar counters and bindings for `show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarSnapshot {
    pub bindings: Vec<(String, String, u64)>,
    pub forwarded_requests: u64,
    pub forwarded_responses: u64,
    pub challenges: u64,
    pub parse_errors: u64,
}

/// The sans-io registrar/proxy.
pub struct Registrar {
    cfg: RegistrarConfig,
    rng: Box<dyn Random + Send>,
    bindings: HashMap<String, Vec<Binding>>,
    nonces: VecDeque<String>,
    out: VecDeque<Transmit>,
    forwarded_requests: u64,
    forwarded_responses: u64,
    challenges: u64,
    parse_errors: u64,
}

impl fmt::Debug for Registrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registrar")
            .field("domain", &self.cfg.domain)
            .field("addr", &self.cfg.addr)
            .field("aors", &self.bindings.len())
            .finish()
    }
}

const MAX_NONCES: usize = 1024;

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Registrar {
    pub fn new(cfg: RegistrarConfig, rng: Box<dyn Random + Send>) -> Registrar {
        Registrar {
            cfg,
            rng,
            bindings: HashMap::new(),
            nonces: VecDeque::new(),
            out: VecDeque::new(),
            forwarded_requests: 0,
            forwarded_responses: 0,
            challenges: 0,
            parse_errors: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.cfg.addr
    }

    /// Current bindings of `user` (expired ones are dropped in `handle_timeout`).
    pub fn lookup(&self, user: &str) -> &[Binding] {
        self.bindings.get(user).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match Message::parse(data) {
            Ok(Message::Request(r)) => self.on_request(now, from, r),
            Ok(Message::Response(r)) => self.on_response(r),
            Err(_) => self.parse_errors += 1,
        }
    }

    fn local_tag(&self, req: &Request) -> String {
        format!("{:016x}", fnv(req.call_id()) ^ fnv(&self.cfg.domain))
    }

    fn reply(&mut self, to: SocketAddr, req: &Request, status: u16, extra: &[(&str, String)]) {
        let tag = self.local_tag(req);
        let mut resp = req.response(status, reason_phrase(status), Some(&tag));
        for (n, v) in extra {
            resp.headers.push(n, v.clone());
        }
        resp.headers.push("Server", "lifeline-registrar");
        self.out.push_back(Transmit {
            to,
            payload: resp.to_bytes(),
        });
    }

    fn is_us(&self, uri: &SipUri) -> bool {
        uri.host.eq_ignore_ascii_case(&self.cfg.domain)
            || uri.socket_addr() == Some(self.cfg.addr)
            || (uri.port.is_none()
                && uri
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip == self.cfg.addr.ip()))
    }

    fn challenge(&mut self) -> Challenge {
        let nonce = hex(&mut *self.rng, 16);
        self.nonces.push_back(nonce.clone());
        if self.nonces.len() > MAX_NONCES {
            self.nonces.pop_front();
        }
        self.challenges += 1;
        Challenge {
            realm: self.cfg.domain.clone(),
            nonce,
            opaque: None,
            algorithm: Algorithm::Md5,
            qop_auth: true,
            stale: false,
        }
    }

    /// `Some(true)` when credentials in `header` authenticate `user`; `Some(false)` when
    /// present but wrong; `None` when no users are configured (open registrar).
    fn authenticated(&self, req: &Request, header: &str, user: &str) -> Option<bool> {
        let users = self.cfg.users.as_ref()?;
        let ok = req
            .headers
            .get(header)
            .and_then(|v| Credentials::parse(v).ok())
            .filter(|c| c.username == user && c.realm == self.cfg.domain)
            .filter(|c| self.nonces.contains(&c.nonce))
            .is_some_and(|c| {
                users
                    .iter()
                    .find(|(u, _)| u == user)
                    .is_some_and(|(_, p)| c.verify(p, req.method.as_str()))
            });
        Some(ok)
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, mut req: Request) {
        // the ACK for a final response we generated ourselves (401/404/407) ends here
        if req.method == Method::Ack
            && req.to().and_then(|t| t.tag().map(str::to_owned)) == Some(self.local_tag(&req))
        {
            return;
        }
        let Some(ruri) = SipUri::parse(&req.uri) else {
            if req.method != Method::Ack {
                self.reply(from, &req, 416, &[]);
            }
            return;
        };
        // loose routing: drop our own Route entry
        let first_route_is_us = req
            .headers
            .get_all("Route")
            .next()
            .and_then(NameAddr::parse)
            .and_then(|na| na.sip_uri())
            .is_some_and(|u| self.is_us(&u));
        if first_route_is_us {
            req.headers.pop_first("Route");
        }
        let max_fwd = req
            .headers
            .get("Max-Forwards")
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(70);
        let next_route = req.headers.get_all("Route").next().map(str::to_owned);
        if let Some(next) = next_route {
            let hop = NameAddr::parse(&next)
                .and_then(|na| na.sip_uri())
                .and_then(|u| u.socket_addr());
            if let Some(hop) = hop {
                self.forward(from, req, hop, max_fwd, false);
            }
            return;
        }
        if !self.is_us(&ruri) {
            // addressed to a contact (in-dialog without Route): forward there
            if let Some(hop) = ruri.socket_addr()
                && hop != self.cfg.addr
            {
                self.forward(from, req, hop, max_fwd, false);
            } else if req.method != Method::Ack {
                self.reply(from, &req, 404, &[]);
            }
            return;
        }
        match (&req.method, ruri.user.as_deref()) {
            (Method::Register, _) => self.on_register(now, from, &req),
            (Method::Options, None) => self.reply(from, &req, 200, &[]),
            (_, Some(user)) => {
                let user = user.to_owned();
                if req.method == Method::Invite && self.cfg.challenge_invites {
                    let caller = req
                        .from()
                        .and_then(|f| f.sip_uri())
                        .and_then(|u| u.user)
                        .unwrap_or_default();
                    if self.authenticated(&req, "Proxy-Authorization", &caller) == Some(false) {
                        let ch = self.challenge().to_header();
                        self.reply(from, &req, 407, &[("Proxy-Authenticate", ch)]);
                        return;
                    }
                }
                let target = self
                    .lookup(&user)
                    .iter()
                    .filter(|b| b.expires_at > now)
                    .max_by_key(|b| b.expires_at)
                    .map(|b| (b.contact.clone(), b.addr));
                match target {
                    Some((contact, addr)) => {
                        req.uri = contact;
                        let rr = req.method == Method::Invite;
                        self.forward(from, req, addr, max_fwd, rr);
                    }
                    None if req.method == Method::Ack => {}
                    None => self.reply(from, &req, 404, &[]),
                }
            }
            _ => {
                if req.method != Method::Ack {
                    self.reply(from, &req, 404, &[]);
                }
            }
        }
    }

    fn forward(
        &mut self,
        from: SocketAddr,
        mut req: Request,
        to: SocketAddr,
        max_fwd: u32,
        record_route: bool,
    ) {
        //= https://www.rfc-editor.org/rfc/rfc3261#section-16.6
        //# If the copy contains a Max-Forwards header field, the proxy MUST decrement its value
        //# by one (1).
        if max_fwd == 0 {
            if req.method != Method::Ack {
                self.reply(from, &req, 483, &[]);
            }
            return;
        }
        req.headers.set("Max-Forwards", (max_fwd - 1).to_string());
        // mark where the top Via really came from (RFC 3261 §18.2.1, RFC 3581)
        let Some(top) = req.headers.pop_first("Via") else {
            return;
        };
        let Some(mut via) = Via::parse(&top) else {
            return;
        };
        via.params.retain(|(n, _)| {
            !n.eq_ignore_ascii_case("received") && !n.eq_ignore_ascii_case("rport")
        });
        via.params
            .push(("received".into(), Some(from.ip().to_string())));
        via.params
            .push(("rport".into(), Some(from.port().to_string())));
        let in_branch = via.branch().unwrap_or("").to_owned();
        req.headers.push_front("Via", via.to_string());
        // ACK for a non-2xx and CANCEL share the INVITE's branch, so derive from it alone
        let branch = format!(
            "z9hG4bK{:016x}",
            fnv(&in_branch) ^ fnv(&self.cfg.addr.to_string())
        );
        req.headers.push_front(
            "Via",
            format!("SIP/2.0/UDP {};branch={branch}", self.cfg.addr),
        );
        if record_route {
            req.headers
                .push_front("Record-Route", format!("<sip:{};lr>", self.cfg.addr));
        }
        self.forwarded_requests += 1;
        self.out.push_back(Transmit {
            to,
            payload: req.to_bytes(),
        });
    }

    fn on_response(&mut self, mut resp: Response) {
        let Some(top) = resp.top_via() else { return };
        let ours = top.host.parse::<std::net::IpAddr>().ok() == Some(self.cfg.addr.ip())
            && top.port.unwrap_or(5060) == self.cfg.addr.port();
        if !ours {
            return;
        }
        resp.headers.pop_first("Via");
        let Some(next) = resp.top_via().and_then(|v| v.response_addr()) else {
            return;
        };
        self.forwarded_responses += 1;
        self.out.push_back(Transmit {
            to: next,
            payload: resp.to_bytes(),
        });
    }

    fn on_register(&mut self, now: Instant, from: SocketAddr, req: &Request) {
        let Some(user) = req.to().and_then(|t| t.sip_uri()).and_then(|u| u.user) else {
            self.reply(from, req, 400, &[]);
            return;
        };
        //= https://www.rfc-editor.org/rfc/rfc3261#section-10.3
        //# 3. A registrar SHOULD authenticate the UAC.
        if self.authenticated(req, "Authorization", &user) == Some(false) {
            let ch = self.challenge().to_header();
            self.reply(from, req, 401, &[("WWW-Authenticate", ch)]);
            return;
        }
        let header_expires = req
            .headers
            .get("Expires")
            .and_then(|e| e.parse::<u32>().ok());
        let call_id = req.call_id().to_owned();
        let contacts: Vec<String> = req.headers.get_all("Contact").map(str::to_owned).collect();
        let list = self.bindings.entry(user.clone()).or_default();
        if contacts.iter().any(|c| c == "*") {
            //# If the request has additional Contact fields or a registration duration other
            //# than zero, the request is invalid
            if contacts.len() != 1 || header_expires != Some(0) {
                self.reply(from, req, 400, &[]);
                return;
            }
            list.clear();
        }
        for c in contacts.iter().filter(|c| *c != "*") {
            let Some(na) = NameAddr::parse(c) else {
                continue;
            };
            let exp = na
                .param("expires")
                .and_then(|e| e.parse::<u32>().ok())
                .or(header_expires)
                .unwrap_or(self.cfg.default_expires);
            list.retain(|b| b.contact != na.uri);
            if exp == 0 {
                continue;
            }
            let exp = exp.clamp(self.cfg.min_expires, self.cfg.max_expires);
            let addr = na.sip_uri().and_then(|u| u.socket_addr()).unwrap_or(from);
            list.push(Binding {
                aor: user.clone(),
                contact: na.uri.clone(),
                addr,
                expires_at: now + Duration::from_secs(u64::from(exp)),
                call_id: call_id.clone(),
            });
        }
        let current: Vec<(String, String)> = list
            .iter()
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                (
                    "Contact".to_owned(),
                    format!("<{}>;expires={left}", b.contact),
                )
            })
            .collect();
        if list.is_empty() {
            self.bindings.remove(&user);
        }
        let extra: Vec<(&str, String)> = current
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        self.reply(from, req, 200, &extra);
    }

    /// Drop expired bindings.
    pub fn handle_timeout(&mut self, now: Instant) {
        for list in self.bindings.values_mut() {
            list.retain(|b| b.expires_at > now);
        }
        self.bindings.retain(|_, l| !l.is_empty());
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings
            .values()
            .flat_map(|l| l.iter().map(|b| b.expires_at))
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn snapshot(&self, now: Instant) -> RegistrarSnapshot {
        let mut bindings: Vec<(String, String, u64)> = self
            .bindings
            .values()
            .flatten()
            .map(|b| {
                (
                    b.aor.clone(),
                    b.contact.clone(),
                    b.expires_at.saturating_duration_since(now).as_secs(),
                )
            })
            .collect();
        bindings.sort();
        RegistrarSnapshot {
            bindings,
            forwarded_requests: self.forwarded_requests,
            forwarded_responses: self.forwarded_responses,
            challenges: self.challenges,
            parse_errors: self.parse_errors,
        }
    }
}

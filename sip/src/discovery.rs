//! Locating the registrar by DNS (RFC 3263 §4), sans-io.
//!
//! [`Discovery`] asks for DNS records one query at a time ([`Discovery::poll_query`]); the driver
//! answers each with what the resolver returned ([`Discovery::answer`], an empty answer for
//! NXDOMAIN, no data or a failed lookup) and, when no query is left, takes the ordered list of
//! [`Target`]s to try ([`Discovery::targets`]). The order is: NAPTR order/preference (or our
//! transport preference when there are no NAPTR records), then SRV priority and RFC 2782
//! weighted choice, then the addresses of each SRV target. An IP literal needs no DNS at all.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::random::Random;
use crate::ua::Transport;

/// A NAPTR record (RFC 3403) as the resolver returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    Naptr,
    Srv,
    A,
}

/// One DNS question for the driver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    pub kind: QueryKind,
    pub name: String,
}

/// The records answering a [`Query`] (empty: no such name, no data, or the lookup failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Naptr(Vec<Naptr>),
    Srv(Vec<Srv>),
    A(Vec<Ipv4Addr>),
}

/// A place to send SIP requests to, with the transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The NAPTR service field for a transport (RFC 3263 §4.1).
pub fn naptr_service(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "SIP+D2U",
        Transport::Tcp => "SIP+D2T",
        Transport::Tls => "SIPS+D2T",
    }
}

/// The SRV owner name prefix for a transport (RFC 3263 §4.1: `_sips._tcp`, `_sip._tcp`, `_sip._udp`).
pub fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    }
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Naptr,
    Srv,
    A,
    Done,
}

/// RFC 3263 resolution of one registrar host.
#[derive(Debug, Clone)]
pub struct Discovery {
    host: String,
    port: Option<u16>,
    transport: Option<Transport>,
    supported: Vec<Transport>,
    stage: Stage,
    queue: VecDeque<Query>,
    /// SRV names to query, with their transport, in the order they are preferred.
    srv_plan: Vec<(Transport, String)>,
    srv: HashMap<String, Vec<Srv>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    /// Transport for the A-record fallback (no SRV records at all).
    fallback: Transport,
    literal: Option<IpAddr>,
}

impl Discovery {
    /// Resolve `host`: a domain or an IP literal, with the port and transport the configuration
    /// gives (either may be absent). `supported` lists the transports the caller can use, most
    /// preferred first; NAPTR and SRV records for others are ignored.
    pub fn new(
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        supported: &[Transport],
    ) -> Discovery {
        let host = norm(host);
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        let mut d = Discovery {
            host: host.clone(),
            port,
            transport,
            supported: supported.to_vec(),
            stage: Stage::Done,
            queue: VecDeque::new(),
            srv_plan: Vec::new(),
            srv: HashMap::new(),
            a: HashMap::new(),
            fallback: transport.unwrap_or(Transport::Udp),
            literal,
        };
        //= https://www.rfc-editor.org/rfc/rfc3263#section-4.1
        //# If the TARGET was not a numeric IP address, but a port is present in the URI, the
        //# client performs an A or AAAA record lookup of the domain name.
        if literal.is_some() {
            d.stage = Stage::Done;
        } else if port.is_some() {
            d.stage = Stage::A;
            d.queue.push_back(Query {
                kind: QueryKind::A,
                name: host,
            });
        } else if let Some(t) = transport {
            //# If [the transport is] specified but the port is not, ... the client performs an
            //# SRV query for that transport.
            d.srv_plan = vec![(t, format!("{}.{host}", srv_prefix(t)))];
            d.start_srv();
        } else {
            d.stage = Stage::Naptr;
            d.queue.push_back(Query {
                kind: QueryKind::Naptr,
                name: host,
            });
        }
        d
    }

    /// The next DNS question, or `None` when [`Discovery::targets`] is ready.
    pub fn poll_query(&self) -> Option<Query> {
        self.queue.front().cloned()
    }

    /// True when no query is outstanding.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    fn start_srv(&mut self) {
        self.stage = Stage::Srv;
        for (_, name) in &self.srv_plan {
            self.queue.push_back(Query {
                kind: QueryKind::Srv,
                name: name.clone(),
            });
        }
        if self.queue.is_empty() {
            self.start_a_fallback();
        }
    }

    fn start_a_fallback(&mut self) {
        self.stage = Stage::A;
        self.queue.push_back(Query {
            kind: QueryKind::A,
            name: self.host.clone(),
        });
    }

    /// The records for the query [`Discovery::poll_query`] returned. An answer that does not fit
    /// the outstanding query is ignored.
    pub fn answer(&mut self, query: &Query, answer: Answer) {
        let Some(pos) = self.queue.iter().position(|q| q == query) else {
            return;
        };
        let Some(q) = self.queue.remove(pos) else {
            return;
        };
        match (q.kind, answer) {
            (QueryKind::Naptr, Answer::Naptr(records)) => self.on_naptr(records),
            (QueryKind::Naptr, _) => self.on_naptr(Vec::new()),
            (QueryKind::Srv, Answer::Srv(records)) => {
                self.srv.insert(norm(&q.name), records);
            }
            (QueryKind::Srv, _) => {
                self.srv.insert(norm(&q.name), Vec::new());
            }
            (QueryKind::A, Answer::A(addrs)) => {
                self.a.insert(norm(&q.name), addrs);
            }
            (QueryKind::A, _) => {
                self.a.insert(norm(&q.name), Vec::new());
            }
        }
        if !self.queue.is_empty() {
            return;
        }
        match self.stage {
            Stage::Srv => {
                let mut names: Vec<String> = Vec::new();
                for (_, n) in &self.srv_plan {
                    for s in self.srv.get(&norm(n)).into_iter().flatten() {
                        let t = norm(&s.target);
                        //= https://www.rfc-editor.org/rfc/rfc2782
                        //# A Target of "." means that the service is decidedly not available at
                        //# this domain.
                        if !t.is_empty() && !names.contains(&t) {
                            names.push(t);
                        }
                    }
                }
                if names.is_empty() {
                    //= https://www.rfc-editor.org/rfc/rfc3263#section-4.2
                    //# If no SRV records were found, the client performs an A or AAAA record
                    //# lookup of the domain name.
                    self.start_a_fallback();
                } else {
                    self.stage = Stage::A;
                    for name in names {
                        match name.parse::<Ipv4Addr>() {
                            Ok(ip) => {
                                self.a.insert(name, vec![ip]);
                            }
                            Err(_) => self.queue.push_back(Query {
                                kind: QueryKind::A,
                                name,
                            }),
                        }
                    }
                    if self.queue.is_empty() {
                        self.stage = Stage::Done;
                    }
                }
            }
            Stage::Naptr => {}
            Stage::A | Stage::Done => self.stage = Stage::Done,
        }
    }

    fn on_naptr(&mut self, records: Vec<Naptr>) {
        //= https://www.rfc-editor.org/rfc/rfc3263#section-4.1
        //# The services relevant for the task of transport protocol selection are those with
        //# NAPTR service fields with values "SIP+D2X" and "SIPS+D2X" ... the client discards any
        //# records whose services fields are not applicable.
        let mut usable: Vec<(u16, u16, Transport, String)> = records
            .into_iter()
            .filter(|r| r.flags.eq_ignore_ascii_case("s"))
            .filter_map(|r| {
                let t = self
                    .supported
                    .iter()
                    .copied()
                    .find(|t| r.services.eq_ignore_ascii_case(naptr_service(*t)))?;
                let name = norm(&r.replacement);
                (!name.is_empty()).then_some((r.order, r.preference, t, name))
            })
            .collect();
        //# ... the client SHOULD pick the first record ... by order, then preference.
        usable.sort_by_key(|(o, p, _, _)| (*o, *p));
        self.srv_plan = usable.into_iter().map(|(_, _, t, n)| (t, n)).collect();
        self.srv_plan.dedup();
        if let (None, Some((t, _))) = (self.transport, self.srv_plan.first()) {
            // the A fallback keeps the transport the NAPTR records chose
            self.fallback = *t;
        }
        if self.srv_plan.is_empty() {
            //# If no NAPTR records are found, the client constructs SRV queries for those
            //# transport protocols it supports, and does a query for each.
            self.srv_plan = self
                .supported
                .iter()
                .map(|t| (*t, format!("{}.{}", srv_prefix(*t), self.host)))
                .collect();
        }
        self.start_srv();
    }

    /// Where to send requests, best first (empty: nothing found). `rng` orders SRV records of
    /// equal priority by weight (RFC 2782).
    pub fn targets(&self, rng: &mut dyn Random) -> Vec<Target> {
        if let Some(ip) = self.literal {
            let t = self.transport.unwrap_or(Transport::Udp);
            return vec![Target {
                transport: t,
                addr: SocketAddr::new(ip, self.port.unwrap_or(t.default_port())),
            }];
        }
        let mut out = Vec::new();
        let push = |out: &mut Vec<Target>, t: Transport, ips: &[Ipv4Addr], port: u16| {
            for ip in ips {
                let tg = Target {
                    transport: t,
                    addr: SocketAddr::new(IpAddr::V4(*ip), port),
                };
                if !out.contains(&tg) {
                    out.push(tg);
                }
            }
        };
        for (t, name) in &self.srv_plan {
            let Some(records) = self.srv.get(&norm(name)) else {
                continue;
            };
            for s in srv_order(records, rng) {
                if let Some(ips) = self.a.get(&norm(&s.target)) {
                    push(&mut out, *t, ips, s.port);
                }
            }
        }
        if out.is_empty()
            && let Some(ips) = self.a.get(&self.host)
        {
            let t = self.fallback;
            push(&mut out, t, ips, self.port.unwrap_or(t.default_port()));
        }
        out
    }
}

/// RFC 2782 order: ascending priority; within a priority, repeatedly pick a record at random
/// with probability proportional to its weight (weight 0 records first in the running sum,
/// so they are picked rarely unless all are 0). Records with target "." are dropped.
pub fn srv_order(records: &[Srv], rng: &mut dyn Random) -> Vec<Srv> {
    let mut rs: Vec<Srv> = records
        .iter()
        .filter(|s| !norm(&s.target).is_empty())
        .cloned()
        .collect();
    rs.sort_by_key(|s| s.priority);
    let mut out = Vec::with_capacity(rs.len());
    let mut i = 0;
    while i < rs.len() {
        let p = rs[i].priority;
        let mut group: Vec<Srv> = rs[i..]
            .iter()
            .take_while(|s| s.priority == p)
            .cloned()
            .collect();
        i += group.len();
        //= https://www.rfc-editor.org/rfc/rfc2782
        //# To select a target to be contacted next, arrange all SRV RRs (that have not been
        //# ordered yet) in any order, except that all those with weight 0 are placed at the
        //# beginning of the list.
        group.sort_by_key(|s| s.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|s| u32::from(s.weight)).sum();
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            let pick = if total == 0 {
                0
            } else {
                let r = u32::from_be_bytes(b) % (total + 1);
                let mut sum = 0u32;
                group
                    .iter()
                    .position(|s| {
                        sum += u32::from(s.weight);
                        sum >= r
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    const ALL: [Transport; 3] = [Transport::Tls, Transport::Tcp, Transport::Udp];

    fn naptr(order: u16, pref: u16, svc: &str, repl: &str) -> Naptr {
        Naptr {
            order,
            preference: pref,
            flags: "S".into(),
            services: svc.into(),
            replacement: repl.into(),
        }
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    /// Run a discovery against a fixed zone; returns the queries asked, in order, and the targets.
    fn run(mut d: Discovery, zone: &[(Query, Answer)]) -> (Vec<Query>, Vec<Target>) {
        let mut asked = Vec::new();
        while let Some(q) = d.poll_query() {
            asked.push(q.clone());
            let ans = zone
                .iter()
                .find(|(zq, _)| *zq == q)
                .map(|(_, a)| a.clone())
                .unwrap_or(match q.kind {
                    QueryKind::Naptr => Answer::Naptr(vec![]),
                    QueryKind::Srv => Answer::Srv(vec![]),
                    QueryKind::A => Answer::A(vec![]),
                });
            d.answer(&q, ans);
            assert!(asked.len() < 50, "discovery loops");
        }
        assert!(d.is_done());
        (asked, d.targets(&mut SeededRandom::new(7)))
    }

    fn q(kind: QueryKind, name: &str) -> Query {
        Query {
            kind,
            name: name.into(),
        }
    }

    fn tg(t: Transport, a: &str) -> Target {
        Target {
            transport: t,
            addr: a.parse().unwrap(),
        }
    }

    #[test]
    fn naptr_chooses_transport_then_srv_then_a() {
        let zone = [
            (
                q(QueryKind::Naptr, "example.test"),
                Answer::Naptr(vec![
                    naptr(20, 10, "SIP+D2U", "_sip._udp.example.test."),
                    naptr(10, 50, "SIP+D2T", "_sip._tcp.example.test."),
                    naptr(10, 40, "SIPS+D2T", "_sips._tcp.example.test."),
                    naptr(5, 1, "E2U+sip", "!^.*$!sip:x@y!"),
                ]),
            ),
            (
                q(QueryKind::Srv, "_sips._tcp.example.test"),
                Answer::Srv(vec![srv(0, 0, 5071, "tls.example.test.")]),
            ),
            (
                q(QueryKind::Srv, "_sip._tcp.example.test"),
                Answer::Srv(vec![srv(0, 0, 5070, "sip.example.test.")]),
            ),
            (
                q(QueryKind::Srv, "_sip._udp.example.test"),
                Answer::Srv(vec![srv(0, 0, 5060, "sip.example.test.")]),
            ),
            (
                q(QueryKind::A, "tls.example.test"),
                Answer::A(vec!["192.0.2.5".parse().unwrap()]),
            ),
            (
                q(QueryKind::A, "sip.example.test"),
                Answer::A(vec!["192.0.2.6".parse().unwrap()]),
            ),
        ];
        let (asked, targets) = run(Discovery::new("Example.test.", None, None, &ALL), &zone);
        assert_eq!(asked[0], q(QueryKind::Naptr, "example.test"));
        assert_eq!(
            targets,
            [
                tg(Transport::Tls, "192.0.2.5:5071"),
                tg(Transport::Tcp, "192.0.2.6:5070"),
                tg(Transport::Udp, "192.0.2.6:5060"),
            ]
        );
        // without TLS support the SIPS record is discarded: TCP first
        let (_, targets) = run(
            Discovery::new(
                "example.test",
                None,
                None,
                &[Transport::Udp, Transport::Tcp],
            ),
            &zone,
        );
        assert_eq!(targets[0], tg(Transport::Tcp, "192.0.2.6:5070"));
        assert_eq!(targets.len(), 2);
    }

    #[test]
    fn without_naptr_srv_per_supported_transport_in_preference_order() {
        let zone = [
            (
                q(QueryKind::Srv, "_sip._udp.example.test"),
                Answer::Srv(vec![srv(0, 0, 5060, "reg.example.test")]),
            ),
            (
                q(QueryKind::Srv, "_sip._tcp.example.test"),
                Answer::Srv(vec![srv(0, 0, 5080, "reg.example.test")]),
            ),
            (
                q(QueryKind::A, "reg.example.test"),
                Answer::A(vec!["198.51.100.1".parse().unwrap()]),
            ),
        ];
        let (asked, targets) = run(Discovery::new("example.test", None, None, &ALL), &zone);
        assert_eq!(
            asked,
            [
                q(QueryKind::Naptr, "example.test"),
                q(QueryKind::Srv, "_sips._tcp.example.test"),
                q(QueryKind::Srv, "_sip._tcp.example.test"),
                q(QueryKind::Srv, "_sip._udp.example.test"),
                q(QueryKind::A, "reg.example.test"),
            ]
        );
        assert_eq!(
            targets,
            [
                tg(Transport::Tcp, "198.51.100.1:5080"),
                tg(Transport::Udp, "198.51.100.1:5060"),
            ]
        );
    }

    #[test]
    fn a_only_fallback_uses_udp_and_default_port() {
        let zone = [(
            q(QueryKind::A, "example.test"),
            Answer::A(vec!["203.0.113.9".parse().unwrap()]),
        )];
        let (asked, targets) = run(Discovery::new("example.test", None, None, &ALL), &zone);
        assert_eq!(asked.last(), Some(&q(QueryKind::A, "example.test")));
        assert_eq!(targets, [tg(Transport::Udp, "203.0.113.9:5060")]);
        // a configured transport keeps its default port
        let (asked, targets) = run(
            Discovery::new("example.test", None, Some(Transport::Tls), &ALL),
            &zone,
        );
        assert_eq!(
            asked,
            [
                q(QueryKind::Srv, "_sips._tcp.example.test"),
                q(QueryKind::A, "example.test")
            ]
        );
        assert_eq!(targets, [tg(Transport::Tls, "203.0.113.9:5061")]);
    }

    #[test]
    fn explicit_port_skips_naptr_and_srv() {
        let zone = [(
            q(QueryKind::A, "example.test"),
            Answer::A(vec!["203.0.113.9".parse().unwrap()]),
        )];
        let (asked, targets) = run(
            Discovery::new("example.test", Some(5099), Some(Transport::Tcp), &ALL),
            &zone,
        );
        assert_eq!(asked, [q(QueryKind::A, "example.test")]);
        assert_eq!(targets, [tg(Transport::Tcp, "203.0.113.9:5099")]);
    }

    #[test]
    fn ip_literal_needs_no_dns() {
        let d = Discovery::new("192.0.2.1", None, Some(Transport::Tls), &ALL);
        assert!(d.is_done() && d.poll_query().is_none());
        assert_eq!(
            d.targets(&mut SeededRandom::new(1)),
            [tg(Transport::Tls, "192.0.2.1:5061")]
        );
    }

    #[test]
    fn nothing_found_is_empty_and_dot_target_means_no_service() {
        let zone = [(
            q(QueryKind::Srv, "_sip._udp.example.test"),
            Answer::Srv(vec![srv(0, 0, 5060, ".")]),
        )];
        let (_, targets) = run(Discovery::new("example.test", None, None, &ALL), &zone);
        assert!(targets.is_empty());
    }

    #[test]
    fn unrelated_or_mismatched_answers_are_ignored() {
        let mut d = Discovery::new("example.test", None, None, &ALL);
        d.answer(&q(QueryKind::A, "other.test"), Answer::A(vec![]));
        assert_eq!(d.poll_query(), Some(q(QueryKind::Naptr, "example.test")));
        // a wrong record type counts as no records
        d.answer(&q(QueryKind::Naptr, "example.test"), Answer::A(vec![]));
        assert_eq!(d.poll_query().map(|q| q.kind), Some(QueryKind::Srv));
    }

    #[test]
    fn srv_priority_first_and_weights_are_proportional() {
        let records = [
            srv(20, 0, 1, "backup"),
            srv(10, 90, 2, "heavy"),
            srv(10, 10, 3, "light"),
        ];
        let mut heavy_first = 0;
        let mut rng = SeededRandom::new(42);
        for _ in 0..1000 {
            let o = srv_order(&records, &mut rng);
            assert_eq!(o.len(), 3);
            assert_eq!(o[2].target, "backup");
            if o[0].target == "heavy" {
                heavy_first += 1;
            }
        }
        assert!((850..=950).contains(&heavy_first), "{heavy_first}");
    }
}

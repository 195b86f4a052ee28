//! RFC 3263 registrar discovery over real DNS: `sip::discovery::Discovery` decides what to ask and how to
//! order the answers; hickory-resolver asks. Name servers come from the backup WAN's DHCP lease (option 6)
//! when it has some, else from the system (`/etc/resolv.conf`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use sip::discovery::{Answer, Discovery, Naptr, QueryKind, Srv, Target};

use crate::ios;
use crate::sipnet::Discover;

/// The transports the appliance can use, in the order it prefers them when DNS offers a choice without
/// NAPTR records (RFC 3263 §4.1 leaves the order to the client): TLS, then TCP, then UDP.
pub const SUPPORTED: [sip::Transport; 3] = [
    sip::Transport::Tls,
    sip::Transport::Tcp,
    sip::Transport::Udp,
];

fn resolver(name_servers: &[Ipv4Addr]) -> anyhow::Result<TokioResolver> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    // the name is what the configuration or option 120 says: no search list
    opts.ndots = 0;
    let builder = if name_servers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = name_servers
            .iter()
            .map(|ip| NameServerConfig::udp_and_tcp(IpAddr::V4(*ip)))
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], servers),
            TokioRuntimeProvider::default(),
        )
    };
    Ok(builder.with_options(opts).build()?)
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// Resolve once: the ordered targets (possibly none).
pub async fn discover(d: &Discover, name_servers: &[Ipv4Addr]) -> anyhow::Result<Vec<Target>> {
    let mut disc = Discovery::new(&d.host, d.port, d.transport, &SUPPORTED);
    if disc.is_done() {
        return Ok(disc.targets(&mut OsRandom));
    }
    let r = resolver(name_servers)?;
    while let Some(q) = disc.poll_query() {
        let name = fqdn(&q.name);
        let answer = match q.kind {
            QueryKind::Naptr => Answer::Naptr(
                r.lookup(name.as_str(), RecordType::NAPTR)
                    .await
                    .map(|l| {
                        l.answers()
                            .iter()
                            .filter_map(|rec| match &rec.data {
                                RData::NAPTR(n) => Some(Naptr {
                                    order: n.order,
                                    preference: n.preference,
                                    flags: String::from_utf8_lossy(&n.flags).into_owned(),
                                    services: String::from_utf8_lossy(&n.services).into_owned(),
                                    replacement: n.replacement.to_ascii(),
                                }),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            QueryKind::Srv => Answer::Srv(
                r.lookup(name.as_str(), RecordType::SRV)
                    .await
                    .map(|l| {
                        l.answers()
                            .iter()
                            .filter_map(|rec| match &rec.data {
                                RData::SRV(s) => Some(Srv {
                                    priority: s.priority,
                                    weight: s.weight,
                                    port: s.port,
                                    target: s.target.to_ascii(),
                                }),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            QueryKind::A => Answer::A(
                r.lookup(name.as_str(), RecordType::A)
                    .await
                    .map(|l| {
                        l.answers()
                            .iter()
                            .filter_map(|rec| match &rec.data {
                                RData::A(a) => Some(a.0),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        };
        disc.answer(&q, answer);
    }
    Ok(disc.targets(&mut OsRandom))
}

/// Resolve until at least one target is found, retrying after 1, 2, 4, ... 60 s.
pub async fn discover_until_found(d: &Discover, name_servers: &[Ipv4Addr]) -> Vec<Target> {
    let mut wait = Duration::from_secs(1);
    loop {
        match discover(d, name_servers).await {
            Ok(t) if !t.is_empty() => return t,
            Ok(_) => ios!(
                VPN_SIP,
                Warning,
                NO_REGISTRAR,
                "{}: DNS has no SIP service, SRV or address records (RFC 3263); retrying in {} s",
                d.host,
                wait.as_secs()
            ),
            Err(e) => ios!(
                VPN_SIP,
                Warning,
                NO_REGISTRAR,
                "{}: resolver: {e:#}; retrying in {} s",
                d.host,
                wait.as_secs()
            ),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// SRV weight choice needs randomness; it is not secret.
struct OsRandom;

impl sip::Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the OS random number generator failed");
    }
}

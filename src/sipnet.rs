//! The node's side of SIP transports and registrar discovery, sans-io like the rest of [`Node`].
//!
//! - UDP SIP leaves as [`Output::Udp`] from the WAN address's port 5060, as before.
//! - TCP and TLS SIP leave as [`Output::Sip`] ([`SipOut::Stream`]); the driver
//!   (`os::sip_transport`) keeps one connection per (local, remote) pair, frames the byte stream and
//!   hands back [`SipIn`]s. The connection's source is the contact address (WAN:5060), so a registrar
//!   that looks up our contact finds the connection we registered over (RFC 3261 §18 connection reuse).
//! - A registrar given as a domain (configuration or DHCP option 120's domain encoding) is resolved by the
//!   driver (`resolve.rs`, hickory) with [`sip::discovery::Discovery`] (RFC 3263) on [`SipOut::Resolve`];
//!   the targets come back as [`SipIn::Resolved`], and a failed registration moves to the next target.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use sip::Transport;
use sip::discovery::Target;

use crate::ios;
use crate::node::{Node, Output};
use crate::vpnsip::{SIP_PORT, VpnSip};

/// Where the registrar comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discover {
    /// An IPv4 address or a domain.
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
    /// PEM trust anchors for TLS (`ca-file`); `None`: the system's.
    pub ca_file: Option<String>,
}

/// SIP work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipOut {
    /// A message over a stream transport, from `local` (our contact) to `remote`. `server_name` is the
    /// name the registrar's TLS certificate must carry (RFC 5922: the SIP domain, or the address).
    Stream {
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        server_name: String,
        ca_file: Option<String>,
        payload: Vec<u8>,
    },
    /// Resolve the registrar (RFC 3263) through `name_servers` (`ip name-server`, else DHCP option 6;
    /// empty: the system's resolver);
    /// answer with [`SipIn::Resolved`] once at least one target is known.
    Resolve {
        discover: Discover,
        name_servers: Vec<Ipv4Addr>,
    },
}

/// What the SIP driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipIn {
    /// A complete SIP message from a stream connection to `remote`.
    Message { remote: SocketAddr, bytes: Vec<u8> },
    /// A connection to `remote` is up.
    Connected { remote: SocketAddr },
    /// A connection to `remote` failed or closed.
    Lost { remote: SocketAddr, error: String },
    /// RFC 3263 targets for the registrar, best first.
    Resolved(Vec<Target>),
}

/// The output for one UA transmission.
pub(crate) fn transmit(v: &VpnSip, tx: sip::Transmit) -> Output {
    let local = SocketAddr::V4(SocketAddrV4::new(v.wan, SIP_PORT));
    let transport = v.ua.config().transport;
    if transport.reliable() {
        Output::Sip(SipOut::Stream {
            transport,
            local,
            remote: tx.to,
            server_name: v.discovery.host.clone(),
            ca_file: v.discovery.ca_file.clone(),
            payload: tx.payload,
        })
    } else {
        Output::Udp {
            local,
            remote: tx.to,
            payload: crate::pkt::PacketBuf::from_vec(tx.payload),
            tos: 0,
        }
    }
}

impl Node {
    /// Register now, or first ask the driver to resolve the registrar's domain.
    pub(crate) fn sip_discover_or_register(&mut self, now: Instant) {
        let Some(v) = &mut self.vpnsip else { return };
        if !v.resolve_pending {
            v.ua.register(now);
            return;
        }
        // `ip name-server` first, else the backup WAN lease's option 6, else the system's resolver
        let mut name_servers: Vec<Ipv4Addr> = self.config.name_servers.clone();
        name_servers.extend(
            self.dhcp
                .iter()
                .filter(|d| {
                    self.config
                        .vpn_sip
                        .local_number()
                        .is_some_and(|n| n.wan_interface == d.ios_name)
                })
                .filter_map(|d| d.lease.as_ref())
                .flat_map(|l| l.dns.iter().copied())
                .filter(|_| self.config.name_servers.is_empty()),
        );
        ios!(
            VPN_SIP,
            Informational,
            RESOLVING,
            "locating SIP registrar {} (RFC 3263)",
            v.discovery.host
        );
        self.out.push_back(Output::Sip(SipOut::Resolve {
            discover: v.discovery.clone(),
            name_servers,
        }));
    }

    /// A registration failed: with several RFC 3263 targets, the next attempt goes to the next one.
    pub(crate) fn sip_next_target(&mut self) {
        let Some(v) = &mut self.vpnsip else { return };
        if v.targets.len() < 2 {
            return;
        }
        let cur = v.ua.config().registrar;
        let i = v.targets.iter().position(|t| t.addr == cur).unwrap_or(0);
        let next = v.targets[(i + 1) % v.targets.len()];
        ios!(
            VPN_SIP,
            Notice,
            NEXT_REGISTRAR,
            "trying SIP registrar {} over {}",
            next.addr,
            next.transport.token()
        );
        v.ua.set_registrar(next.addr, next.transport);
    }

    /// Input from the SIP driver (stream transports and the resolver).
    pub fn handle_sip(&mut self, now: Instant, ev: SipIn) {
        let Some(v) = &mut self.vpnsip else { return };
        match ev {
            SipIn::Message { remote, bytes } => v.ua.handle_input(now, remote, &bytes),
            SipIn::Connected { remote } => {
                ios!(
                    VPN_SIP,
                    Informational,
                    CONNECTED,
                    "SIP connection to {remote} up"
                )
            }
            SipIn::Lost { remote, error } => {
                ios!(
                    VPN_SIP,
                    Warning,
                    CONNECTION_LOST,
                    "SIP connection to {remote}: {error}"
                );
                let registered_there = v.ua.any_registered() && v.ua.config().registrar == remote;
                v.ua.transport_error(now, remote);
                // The binding points at a connection that is gone: register again (the driver reconnects,
                // with backoff while the registrar stays away).
                if registered_there {
                    v.ua.register(now);
                }
            }
            SipIn::Resolved(targets) => {
                let Some(first) = targets.first().copied() else {
                    return;
                };
                ios!(
                    VPN_SIP,
                    Notice,
                    REGISTRAR_FOUND,
                    "SIP registrar {}: {}",
                    v.discovery.host,
                    targets
                        .iter()
                        .map(|t| format!("{} {}", t.transport.token(), t.addr))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                v.targets = targets;
                v.resolve_pending = false;
                v.ua.set_registrar(first.addr, first.transport);
                v.ua.register(now);
            }
        }
        self.pump(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
hostname b
ip name-server 192.0.2.53
vpn-sip enable
vpn-sip local-number 1001 address ipv4 GigabitEthernet1
vpn-sip registrar lifeline.test transport tcp username 1001 password secret1001
interface GigabitEthernet1
 device eth-bak
 ip address 198.51.100.2 255.255.255.0
";

    fn drain(node: &mut Node) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = node.poll_output() {
            v.push(o);
        }
        v
    }

    /// A domain registrar waits for RFC 3263; the targets it gets decide the transport; REGISTER leaves over
    /// the stream from WAN:5060; a lost connection fails the REGISTER at once and moves to the next target.
    #[test]
    fn domain_registrar_resolves_then_registers_over_the_chosen_stream() {
        let parsed = config::parse(CFG);
        let now = Instant::now();
        let (mut node, problems) = Node::new(now, parsed.config, 1);
        assert!(problems.is_empty(), "{problems:?}");
        node.start(now);
        let out = drain(&mut node);
        let resolve = out.iter().find_map(|o| match o {
            Output::Sip(SipOut::Resolve {
                discover,
                name_servers,
            }) => Some((discover.clone(), name_servers.clone())),
            _ => None,
        });
        let (d, ns) = resolve.expect("a Resolve output");
        assert_eq!(d.host, "lifeline.test");
        assert_eq!(d.transport, Some(Transport::Tcp));
        assert_eq!(ns, [Ipv4Addr::new(192, 0, 2, 53)]);
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Sip(SipOut::Stream { .. }) | Output::Udp { .. })),
            "nothing is sent before the registrar is known"
        );
        let first: SocketAddr = "192.0.2.5:5070".parse().unwrap();
        let second: SocketAddr = "192.0.2.6:5060".parse().unwrap();
        node.handle_sip(
            now,
            SipIn::Resolved(vec![
                Target {
                    transport: Transport::Tcp,
                    addr: first,
                },
                Target {
                    transport: Transport::Udp,
                    addr: second,
                },
            ]),
        );
        let out = drain(&mut node);
        let Some(Output::Sip(SipOut::Stream {
            transport,
            local,
            remote,
            server_name,
            payload,
            ..
        })) = out
            .iter()
            .find(|o| matches!(o, Output::Sip(SipOut::Stream { .. })))
        else {
            panic!("no REGISTER over a stream: {:?}", out.len())
        };
        assert_eq!(*transport, Transport::Tcp);
        assert_eq!(*remote, first);
        assert_eq!(*local, "198.51.100.2:5060".parse().unwrap());
        assert_eq!(server_name, "lifeline.test");
        let text = String::from_utf8_lossy(payload);
        assert!(
            text.starts_with("REGISTER sip:lifeline.test SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains(";transport=tcp>"), "{text}");
        // the connection is refused: the next attempt goes to the UDP target
        node.handle_sip(
            now,
            SipIn::Lost {
                remote: first,
                error: "refused".into(),
            },
        );
        let cfg = node.vpnsip.as_ref().unwrap().ua.config();
        assert_eq!((cfg.registrar, cfg.transport), (second, Transport::Udp));
    }
}

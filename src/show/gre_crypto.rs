//! `show crypto map` and `show crypto socket` for protected GRE tunnels (seed-dmvpn §3.8 (a), §3.9): the crypto
//! map IOS generates for `tunnel protection` (`<TunnelN>-head-0`, a template entry from the IPsec profile plus one
//! PROFILE INSTANCE per NBMA peer, in creation order) and its tunnel-protection sockets, one per NBMA peer.
//!
//! With `shared` (§3.8 (b), §3.9) the tunnels on one source and profile have one map, `<profile>-head-1`, headed
//! by `Crypto Map: "<name>" idb: <source interface> local address: <NBMA>`, the template at 65536 and the
//! instances from 65537, the transform sets one per line, and every sharing tunnel under `Interfaces using`
//! (last configured first, as the seed lists `Tunnel1` before `Tunnel0`); its sockets print `Shd Peers` and
//! `Flags: shared`. The seed's `IPsec-isakmp` is Cisco's documentation capitalisation (seed-dmvpn §6): IOS
//! prints `ipsec-isakmp`, and so does Lifeline.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Serialize;

use crate::node::Node;

/// IOS's defaults when neither the profile nor `crypto ipsec security-association lifetime` sets one.
const DEFAULT_LIFETIME_KB: u64 = 4_608_000;
const DEFAULT_LIFETIME_S: u32 = 3600;

#[derive(Serialize, Debug)]
pub struct Instance {
    /// Sequence number in the map (20, 30, ... in creation order; 10 is the template).
    pub seq: u32,
    pub peer: Ipv4Addr,
    /// `access-list permit gre host <local> host <peer>`.
    pub acl: String,
    /// The socket: `Open` with an SA pair installed, `Closed` while IKE negotiates.
    pub socket_state: &'static str,
    /// ESP in UDP (NAT-T): the peer's address and port as seen after NAT.
    pub udp_encap: Option<SocketAddr>,
}

#[derive(Serialize, Debug)]
pub struct GreCryptoMap {
    /// `<TunnelN>-head-0`, or `<profile>-head-1` when shared.
    pub name: String,
    /// The first tunnel using the map.
    pub interface: String,
    /// `shared`: the `tunnel source` interface (IOS's `idb:`).
    pub shared_idb: Option<String>,
    /// Every tunnel using the map, as `Interfaces using crypto map` lists them.
    pub interfaces: Vec<String>,
    pub local: Ipv4Addr,
    pub ipsec_profile: String,
    /// `None`: `lifetime kilobytes disable`.
    pub lifetime_kb: Option<u64>,
    pub lifetime_s: u32,
    pub pfs: bool,
    pub transform_sets: Vec<String>,
    pub instances: Vec<Instance>,
}

/// The generated maps of every protected GRE tunnel.
pub fn maps(node: &Node) -> Vec<GreCryptoMap> {
    let cfg = &node.config;
    let mut out = Vec::new();
    for (idx, t) in node.gre.tunnels.iter().enumerate() {
        if t.sadb != idx {
            // Part of an earlier tunnel's shared map.
            continue;
        }
        let Some(prot) = cfg
            .interface(&t.ios_name)
            .and_then(|i| i.tunnel.protection.as_ref())
        else {
            continue;
        };
        let profile = cfg
            .ipsec
            .profiles
            .iter()
            .find(|p| p.name == prot.ipsec_profile);
        let sa = profile.map(|p| &p.sa);
        let global = &cfg.ipsec.global_sa;
        let lifetime_kb = match sa
            .and_then(|s| s.lifetime_kilobytes.as_ref())
            .or(global.lifetime_kilobytes.as_ref())
        {
            Some(config::KilobyteLifetime::Kilobytes(k)) => Some(*k),
            Some(config::KilobyteLifetime::Disable) => None,
            None => Some(DEFAULT_LIFETIME_KB),
        };
        let lifetime_s = sa
            .and_then(|s| s.lifetime_seconds)
            .or(global.lifetime_seconds)
            .unwrap_or(DEFAULT_LIFETIME_S);
        let mut peers: Vec<_> = node
            .gre_esp
            .peers
            .iter()
            .filter(|((tu, _), _)| *tu == idx)
            .collect();
        peers.sort_by_key(|(_, p)| p.seq);
        let (first_seq, step) = if t.shared.is_some() {
            (65_537, 1)
        } else {
            (20, 10)
        };
        let instances = peers
            .iter()
            .enumerate()
            .map(|(i, ((_, peer), p))| Instance {
                seq: first_seq + step * i as u32,
                peer: *peer,
                acl: format!("access-list permit gre host {} host {peer}", t.source),
                socket_state: if p.out.is_some() { "Open" } else { "Closed" },
                udp_encap: p.udp.map(|(_, r)| r),
            })
            .collect();
        let mut interfaces: Vec<String> = node
            .gre
            .tunnels
            .iter()
            .filter(|o| o.sadb == idx)
            .map(|o| o.ios_name.clone())
            .collect();
        interfaces.reverse();
        out.push(GreCryptoMap {
            name: match &t.shared {
                Some((profile, _)) => format!("{profile}-head-1"),
                None => format!("{}-head-0", t.ios_name),
            },
            interface: t.ios_name.clone(),
            shared_idb: t.shared.as_ref().map(|(_, idb)| idb.clone()),
            interfaces,
            local: t.source,
            ipsec_profile: prot.ipsec_profile.clone(),
            lifetime_kb,
            lifetime_s,
            pfs: profile.is_some_and(|p| p.pfs.is_some()),
            transform_sets: profile
                .map(|p| p.transform_sets.clone())
                .unwrap_or_default(),
            instances,
        });
    }
    out
}

/// `show crypto map` (seed-dmvpn §3.8 (a), the unshared form).
pub fn crypto_map(maps: &[GreCryptoMap]) -> String {
    let mut out = String::new();
    for m in maps {
        let lifetime = match m.lifetime_kb {
            Some(kb) => format!("{kb} kilobytes/{} seconds", m.lifetime_s),
            None => format!("{} seconds", m.lifetime_s),
        };
        let shared = m.shared_idb.is_some();
        let sets = if shared {
            let lines: String = m
                .transform_sets
                .iter()
                .map(|t| format!("    {t},\n"))
                .collect();
            format!("{{\n{lines}  }}")
        } else {
            let line: String = m.transform_sets.iter().map(|t| format!("{t}, ")).collect();
            format!("{{{line}}}")
        };
        let common = format!(
            "  Security association lifetime: {lifetime}\n  PFS (Y/N): {}\n  Transform sets={sets}\n",
            if m.pfs { "Y" } else { "N" },
        );
        if let Some(idb) = &m.shared_idb {
            let _ = writeln!(
                out,
                "Crypto Map: \"{}\" idb: {idb} local address: {}",
                m.name, m.local
            );
        }
        let template = if shared { 65_536 } else { 10 };
        let _ = writeln!(out, "Crypto Map \"{}\" {template} ipsec-isakmp", m.name);
        let _ = writeln!(out, "  Profile name: {}", m.ipsec_profile);
        out.push_str(&common);
        for i in &m.instances {
            let _ = writeln!(out, "Crypto Map \"{}\" {} ipsec-isakmp", m.name, i.seq);
            out.push_str("  Map is a PROFILE INSTANCE.\n");
            let _ = writeln!(out, "  Peer = {}", i.peer);
            out.push_str("  Extended IP access list\n");
            let _ = writeln!(out, "    {}", i.acl);
            let _ = writeln!(out, "  Current peer: {}", i.peer);
            out.push_str(&common);
        }
        let _ = writeln!(out, "  Interfaces using crypto map {}:", m.name);
        for i in &m.interfaces {
            let _ = writeln!(out, "{}{i}", if shared { "    " } else { "  " });
        }
    }
    out
}

/// `show crypto socket` (seed-dmvpn §3.9; unshared sockets carry the tunnel's short name where shared ones
/// print `Shd`, and no `Flags: shared`).
pub fn crypto_socket(maps: &[GreCryptoMap]) -> String {
    let n: usize = maps.iter().map(|m| m.instances.len()).sum();
    let mut out = format!("Number of Crypto Socket connections {n}\n");
    let host = |a: Ipv4Addr| format!("({a}/255.255.255.255/0/47)");
    for m in maps {
        for i in &m.instances {
            let shared = m.shared_idb.is_some();
            let _ = writeln!(
                out,
                "  {} Peers (local/remote): {}\n/{}",
                if shared {
                    "Shd".to_string()
                } else {
                    nhrp::show::short_name(&m.interface)
                },
                m.local,
                i.peer
            );
            let _ = writeln!(
                out,
                "  Local Ident (addr/mask/port/prot): {}",
                host(m.local)
            );
            let _ = writeln!(
                out,
                "  Remote Ident (addr/mask/port/prot): {}",
                host(i.peer)
            );
            if shared {
                out.push_str("  Flags: shared\n");
            }
            let _ = writeln!(out, "  IPsec Profile: \"{}\"", m.ipsec_profile);
            let _ = writeln!(out, "  Socket State: {}", i.socket_state);
            out.push_str("  Client: \"TUNNEL SEC\" (Client State: Active)\n");
        }
    }
    out.push_str("Crypto Sockets in Listen state:\n");
    for m in maps {
        let _ = writeln!(
            out,
            "Client: \"TUNNEL SEC\" Profile: \"{}\" Map-name: \"{}\"",
            m.ipsec_profile, m.name
        );
    }
    out
}

/// The `--json` form of both commands.
pub fn json(maps: &[GreCryptoMap]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "maps": maps })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<GreCryptoMap> {
        let inst = |seq, peer: &str| Instance {
            seq,
            peer: peer.parse().unwrap(),
            acl: format!("access-list permit gre host 172.17.63.19 host {peer}"),
            socket_state: "Open",
            udp_encap: None,
        };
        vec![GreCryptoMap {
            name: "Tunnel5-head-0".into(),
            interface: "Tunnel5".into(),
            shared_idb: None,
            interfaces: vec!["Tunnel5".into()],
            local: "172.17.63.19".parse().unwrap(),
            ipsec_profile: "vpnprof".into(),
            lifetime_kb: Some(4_608_000),
            lifetime_s: 3600,
            pfs: false,
            transform_sets: vec!["trans2".into()],
            instances: vec![
                inst(20, "172.16.175.75"),
                inst(30, "172.17.63.20"),
                inst(40, "172.16.175.76"),
            ],
        }]
    }

    /// seed 001 lines 884-918 (seed-dmvpn §3.8 (a)), verbatim.
    #[test]
    fn crypto_map_matches_the_seed_sample() {
        let seed = "\
Crypto Map \"Tunnel5-head-0\" 10 ipsec-isakmp
  Profile name: vpnprof
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={trans2, }
Crypto Map \"Tunnel5-head-0\" 20 ipsec-isakmp
  Map is a PROFILE INSTANCE.
  Peer = 172.16.175.75
  Extended IP access list
    access-list permit gre host 172.17.63.19 host 172.16.175.75
  Current peer: 172.16.175.75
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={trans2, }
Crypto Map \"Tunnel5-head-0\" 30 ipsec-isakmp
  Map is a PROFILE INSTANCE.
  Peer = 172.17.63.20
  Extended IP access list
    access-list permit gre host 172.17.63.19 host 172.17.63.20
  Current peer: 172.17.63.20
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={trans2, }
Crypto Map \"Tunnel5-head-0\" 40 ipsec-isakmp
  Map is a PROFILE INSTANCE.
  Peer = 172.16.175.76
  Extended IP access list
    access-list permit gre host 172.17.63.19 host 172.16.175.76
  Current peer: 172.16.175.76
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={trans2, }
  Interfaces using crypto map Tunnel5-head-0:
  Tunnel5
";
        assert_eq!(crypto_map(&sample()), seed);
    }

    /// seed 001 lines 3589-3615 (§3.9) with the unshared differences: `Tu5` for `Shd`, no `Flags: shared`,
    /// the `<TunnelN>-head-0` map.
    #[test]
    fn crypto_socket_follows_the_seed_sample() {
        let text = crypto_socket(&sample());
        let first = "\
Number of Crypto Socket connections 3
  Tu5 Peers (local/remote): 172.17.63.19
/172.16.175.75
  Local Ident (addr/mask/port/prot): (172.17.63.19/255.255.255.255/0/47)
  Remote Ident (addr/mask/port/prot): (172.16.175.75/255.255.255.255/0/47)
  IPsec Profile: \"vpnprof\"
  Socket State: Open
  Client: \"TUNNEL SEC\" (Client State: Active)
";
        assert!(text.starts_with(first), "{text}");
        assert!(text.ends_with(
            "Crypto Sockets in Listen state:\nClient: \"TUNNEL SEC\" Profile: \"vpnprof\" Map-name: \"Tunnel5-head-0\"\n"
        ));
        assert_eq!(text.matches("Socket State: Open").count(), 3);
    }

    fn shared_sample(peers: &[&str]) -> Vec<GreCryptoMap> {
        vec![GreCryptoMap {
            name: "vpnprof-head-1".into(),
            interface: "Tunnel0".into(),
            shared_idb: Some("Ethernet0/0".into()),
            interfaces: vec!["Tunnel1".into(), "Tunnel0".into()],
            local: "172.17.0.11".parse().unwrap(),
            ipsec_profile: "vpnprof".into(),
            lifetime_kb: Some(4_608_000),
            lifetime_s: 3600,
            pfs: false,
            transform_sets: vec!["trans2".into()],
            instances: peers
                .iter()
                .enumerate()
                .map(|(i, peer)| Instance {
                    seq: 65_537 + i as u32,
                    peer: peer.parse().unwrap(),
                    acl: format!("access-list permit gre host 172.17.0.11 host {peer}"),
                    socket_state: "Open",
                    udp_encap: None,
                })
                .collect(),
        }]
    }

    /// seed 001 lines 3616-3665 (seed-dmvpn §3.8 (b), shared), verbatim but for the documentation's
    /// `IPsec-isakmp` (IOS prints `ipsec-isakmp`, seed-dmvpn §6).
    #[test]
    fn shared_crypto_map_matches_the_seed_sample() {
        let seed = "\
Crypto Map: \"vpnprof-head-1\" idb: Ethernet0/0 local address: 172.17.0.11
Crypto Map \"vpnprof-head-1\" 65536 IPsec-isakmp
  Profile name: vpnprof
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={
    trans2,
  }
Crypto Map \"vpnprof-head-1\" 65537 IPsec-isakmp
  Map is a PROFILE INSTANCE.
  Peer = 172.17.0.5
  Extended IP access list
    access-list permit gre host 172.17.0.11 host 172.17.0.5
  Current peer: 172.17.0.5
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={
    trans2,
  }
Crypto Map \"vpnprof-head-1\" 65538 IPsec-isakmp
  Map is a PROFILE INSTANCE.
  Peer = 172.17.0.1
  Extended IP access list
    access-list permit gre host 172.17.0.11 host 172.17.0.1
  Current peer: 172.17.0.1
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={
    trans2,
  }
Crypto Map \"vpnprof-head-1\" 65539 IPsec-isakmp
  Map is a PROFILE INSTANCE.
  Peer = 172.17.0.12
  Extended IP access list
    access-list permit gre host 172.17.0.11 host 172.17.0.12
  Current peer: 172.17.0.12
  Security association lifetime: 4608000 kilobytes/3600 seconds
  PFS (Y/N): N
  Transform sets={
    trans2,
  }
  Interfaces using crypto map vpnprof-head-1:
    Tunnel1
    Tunnel0
"
        .replace("IPsec-isakmp", "ipsec-isakmp");
        let text = crypto_map(&shared_sample(&["172.17.0.5", "172.17.0.1", "172.17.0.12"]));
        assert_eq!(text, seed);
    }

    /// seed 001 lines 3589-3615 (seed-dmvpn §3.9, shared), verbatim (the sockets in the seed's order).
    #[test]
    fn shared_crypto_socket_matches_the_seed_sample() {
        let seed = "\
Number of Crypto Socket connections 3
  Shd Peers (local/remote): 172.17.0.11
/172.17.0.12
  Local Ident (addr/mask/port/prot): (172.17.0.11/255.255.255.255/0/47)
  Remote Ident (addr/mask/port/prot): (172.17.0.12/255.255.255.255/0/47)
  Flags: shared
  IPsec Profile: \"vpnprof\"
  Socket State: Open
  Client: \"TUNNEL SEC\" (Client State: Active)
  Shd Peers (local/remote): 172.17.0.11
/172.17.0.5
  Local Ident (addr/mask/port/prot): (172.17.0.11/255.255.255.255/0/47)
  Remote Ident (addr/mask/port/prot): (172.17.0.5/255.255.255.255/0/47)
  Flags: shared
  IPsec Profile: \"vpnprof\"
  Socket State: Open
  Client: \"TUNNEL SEC\" (Client State: Active)
  Shd Peers (local/remote): 172.17.0.11
/172.17.0.1
  Local Ident (addr/mask/port/prot): (172.17.0.11/255.255.255.255/0/47)
  Remote Ident (addr/mask/port/prot): (172.17.0.1/255.255.255.255/0/47)
  Flags: shared
  IPsec Profile: \"vpnprof\"
  Socket State: Open
  Client: \"TUNNEL SEC\" (Client State: Active)
Crypto Sockets in Listen state:
Client: \"TUNNEL SEC\" Profile: \"vpnprof\" Map-name: \"vpnprof-head-1\"
";
        let text = crypto_socket(&shared_sample(&["172.17.0.12", "172.17.0.5", "172.17.0.1"]));
        assert_eq!(text, seed);
    }
}

//! `show dmvpn [detail]`, `show ip nhrp [brief]`, `show ip nhrp traffic` for the running daemon: the nhrp
//! crate renders the IOS text from each mGRE tunnel's NHRP snapshot; `--json` gives the same facts as data.

use std::time::Instant;

use nhrp::show::{NhsStatus, Role};
use nhrp::{EntryType, Snapshot};
use serde_json::{Value, json};

use crate::gre::Gre;

fn secs_until(now: Instant, t: Option<Instant>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(t.saturating_duration_since(now).as_secs())
    })
}

fn entry_type(k: EntryType) -> &'static str {
    match k {
        EntryType::Static => "static",
        EntryType::Dynamic => "dynamic",
        EntryType::Incomplete => "incomplete",
        EntryType::Negative => "negative",
    }
}

/// One tunnel's NHRP state as JSON (cache, NHSes, traffic counters, GRE counters).
fn tunnel_json(s: &Snapshot, gre: Option<&crate::gre::GreTunnel>, now: Instant) -> Value {
    let entries: Vec<Value> = s
        .entries
        .iter()
        .map(|e| {
            json!({
                "prefix": format!("{}/{}", e.prefix.addr(), e.prefix.prefix_len()),
                "via": e.via.to_string(),
                "nbma": e.nbma.map(|a| a.to_string()),
                "claimed_nbma": e.claimed_nbma.map(|a| a.to_string()),
                "type": entry_type(e.kind),
                "flags": e.flags.words(),
                "up_s": now.saturating_duration_since(e.created).as_secs(),
                "expires_s": secs_until(now, e.expires),
            })
        })
        .collect();
    let nhs: Vec<Value> = s
        .nhs
        .iter()
        .map(|n| {
            json!({
                "address": n.proto.to_string(),
                "nbma": n.nbma.map(|a| a.to_string()),
                "up": n.up,
                "status": match n.status {
                    NhsStatus::Expecting => "E",
                    NhsStatus::Responding => "R",
                    NhsStatus::Waiting => "W",
                },
                "since_s": now.saturating_duration_since(n.since).as_secs(),
            })
        })
        .collect();
    json!({
        "interface": s.interface,
        "tunnel_address": s.tunnel_addr.to_string(),
        "nbma_address": s.nbma_addr.to_string(),
        "role": match s.role { Role::Hub => "hub", Role::Spoke => "spoke" },
        "post_nat_nbma": s.post_nat_nbma.map(|a| a.to_string()),
        "entries": entries,
        "nhs": nhs,
        "traffic": { "sent": s.traffic.sent, "rcvd": s.traffic.rcvd },
        "drops": {
            "authentication": s.drops.auth,
            "quota": s.drops.quota,
            "malformed": s.drops.malformed,
            "unexpected": s.drops.unexpected,
            "hop_limit": s.drops.hop_limit,
        },
        "max_send": { "packets": s.max_send.0, "seconds": s.max_send.1.as_secs(), "usage_percent": s.usage_percent },
        "gre": gre.map(|t| json!({
            "key": t.key,
            "mtu": t.mtu,
            "rx_packets": t.counters.rx_packets,
            "tx_packets": t.counters.tx_packets,
            "hairpinned": t.counters.hairpinned,
            "detoured": t.counters.detoured,
            "no_route": t.counters.no_route,
            "nhrp_in": t.counters.nhrp_in,
            "nhrp_out": t.counters.nhrp_out,
            "multicast_out": t.counters.multicast_out,
            "multicast_in": t.counters.multicast_in,
        })),
    })
}

/// Which rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Dmvpn,
    DmvpnDetail,
    Nhrp,
    NhrpBrief,
    NhrpTraffic,
}

pub fn render(gre: &Gre, view: View, json: bool) -> String {
    let now = Instant::now();
    let snaps: Vec<(Snapshot, &crate::gre::GreTunnel)> = gre
        .tunnels
        .iter()
        .filter_map(|t| t.nhrp.as_ref().map(|n| (n.snapshot(), t)))
        .collect();
    if json {
        let v: Vec<Value> = snaps
            .iter()
            .map(|(s, t)| tunnel_json(s, Some(t), now))
            .collect();
        return json!({ "tunnels": v }).to_string();
    }
    if snaps.is_empty() {
        return "% No NHRP-enabled tunnel interface\n".into();
    }
    let refs: Vec<&Snapshot> = snaps.iter().map(|(s, _)| s).collect();
    match view {
        View::Dmvpn => nhrp::show::show_dmvpn(&refs, now),
        View::DmvpnDetail => nhrp::show::show_dmvpn_detail(&refs, now),
        View::Nhrp => nhrp::show::show_ip_nhrp(&refs, now),
        View::NhrpBrief => nhrp::show::show_ip_nhrp_brief(&refs),
        View::NhrpTraffic => nhrp::show::show_ip_nhrp_traffic(&refs),
    }
}

/// The `--json` form of [`gre_ipsec_sa`]: one row per (tunnel, NBMA peer), the shared SA database under each
/// tunnel that uses it, with the SAs' counters and lifetimes and the ESP-in-UDP ports behind NAT.
pub fn gre_ipsec_sa_json(node: &crate::node::Node, now: std::time::Instant) -> serde_json::Value {
    let sa = |spi: u32,
              cipher: &dataplane::crypto::Cipher,
              mode: dataplane::Mode,
              replay: Option<u32>,
              rem: (Option<u64>, Option<std::time::Duration>),
              c: dataplane::SaCounters| {
        serde_json::json!({
            "spi": format!("{spi:08X}"),
            "encr": format!("{:?}", cipher.encr()),
            "integ": cipher.integ().map(|i| format!("{i:?}")),
            "mode": format!("{mode:?}").to_ascii_lowercase(),
            "replay_window": replay,
            "remaining_kb": rem.0.map(|b| b / 1024),
            "remaining_s": rem.1.map(|d| d.as_secs()),
            "packets": c.packets,
            "bytes": c.bytes,
            "errors": c.errors,
            "replay_failures": c.replay_failures,
            "auth_failures": c.auth_failures,
        })
    };
    let mut peers: Vec<_> = node.gre_esp.peers.iter().collect();
    peers.sort_by_key(|((t, p), _)| (*t, *p));
    let rows: Vec<serde_json::Value> = node
        .gre
        .tunnels
        .iter()
        .flat_map(|t| {
            peers
                .iter()
                .filter(move |((sadb, _), _)| *sadb == t.sadb)
                .map(move |((_, peer), p)| (t, *peer, *p))
        })
        .map(|(t, peer, p)| {
            let inbound: Vec<&dataplane::InboundSa> = p
                .spis
                .iter()
                .filter_map(|s| node.gre_esp.inbound.get(s).map(|(i, _, _)| i))
                .collect();
            serde_json::json!({
                "interface": t.ios_name,
                "crypto_map_tag": match &t.shared {
                    Some((profile, _)) => format!("{profile}-head-1"),
                    None => format!("{}-head-0", t.ios_name),
                },
                "shared": t.shared.is_some(),
                "source": t.source.to_string(),
                "peer": peer.to_string(),
                "udp_encap": p.udp.map(|(l, r)| serde_json::json!({"local": l.to_string(), "remote": r.to_string()})),
                "outbound": p.out.as_ref().map(|o| sa(o.spi(), o.cipher(), o.mode(), None, o.remaining(now), o.counters())),
                "inbound": inbound.iter().map(|i| {
                    let w = i.replay_window();
                    sa(i.spi(), i.cipher(), i.mode(), w.enabled().then_some(w.size()), i.remaining(now), i.counters())
                }).collect::<Vec<_>>(),
                "encaps": p.encrypted,
                "decaps": p.decrypted,
                "queued": p.pending.len(),
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// The `show crypto ipsec sa` blocks of protected GRE tunnels: one per (tunnel, NBMA peer of its SA database: with
/// `shared`, every peer of the shared SADB under each tunnel), host-to-host GRE
/// selectors, transport mode (the IOS shape of seed-dmvpn §3.10, without the fields Lifeline does not keep).
pub fn gre_ipsec_sa(node: &crate::node::Node) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut peers: Vec<_> = node.gre_esp.peers.iter().collect();
    peers.sort_by_key(|((t, p), _)| (*t, *p));
    // A shared SA database is printed whole under each tunnel that uses it (seed-dmvpn SH-9, §3.10 (a)).
    let rows = node.gre.tunnels.iter().flat_map(|t| {
        peers
            .iter()
            .filter(move |((sadb, _), _)| *sadb == t.sadb)
            .map(move |((_, peer), sa)| (t, peer, *sa))
    });
    for (t, peer, sa) in rows {
        let tag = match &t.shared {
            Some((profile, _)) => format!("{profile}-head-1"),
            None => format!("{}-head-0", t.ios_name),
        };
        let host = |a: std::net::Ipv4Addr| format!("({a}/255.255.255.255/47/0)");
        let inbound: Vec<&dataplane::InboundSa> = sa
            .spis
            .iter()
            .filter_map(|s| node.gre_esp.inbound.get(s).map(|(i, _, _)| i))
            .collect();
        let encaps = sa.out.as_ref().map_or(0, |o| o.counters().packets);
        let decaps: u64 = inbound.iter().map(|i| i.counters().packets).sum();
        let _ = writeln!(out, "interface: {}", t.ios_name);
        let _ = writeln!(out, "    Crypto map tag: {tag}, local addr {}\n", t.source);
        let _ = writeln!(out, "   protected vrf: (none)");
        let _ = writeln!(
            out,
            "   local  ident (addr/mask/prot/port): {}",
            host(t.source)
        );
        let _ = writeln!(
            out,
            "   remote ident (addr/mask/prot/port): {}",
            host(*peer)
        );
        // Behind NAT the peer's port after translation (ESP in UDP), as IOS prints it.
        let port = sa.udp.map_or(500, |(_, r)| r.port());
        let _ = writeln!(out, "   current_peer {peer} port {port}");
        let _ = writeln!(out, "     PERMIT, flags={{origin_is_acl,}}");
        let _ = writeln!(
            out,
            "    #pkts encaps: {encaps}, #pkts encrypt: {encaps}, #pkts digest: {encaps}"
        );
        let _ = writeln!(
            out,
            "    #pkts decaps: {decaps}, #pkts decrypt: {decaps}, #pkts verify: {decaps}"
        );
        let _ = writeln!(
            out,
            "\n     local crypto endpt.: {}, remote crypto endpt.: {peer}",
            t.source
        );
        let _ = writeln!(
            out,
            "     current outbound spi: 0x{:X}({})\n",
            sa.out.as_ref().map_or(0, |o| o.spi()),
            sa.out.as_ref().map_or(0, |o| o.spi())
        );
        let transform = |c: &dataplane::crypto::Cipher| match c.integ() {
            Some(i) => format!("{} {}", c.encr().ios_name(), i.ios_name()),
            None => c.encr().ios_name(),
        };
        out.push_str("     inbound esp sas:\n");
        for i in &inbound {
            let _ = writeln!(
                out,
                "      spi: 0x{:X}({})\n        transform: {} ,\n        in use settings ={{Transport, }}",
                i.spi(),
                i.spi(),
                transform(i.cipher())
            );
        }
        out.push_str("     outbound esp sas:\n");
        if let Some(o) = &sa.out {
            let _ = writeln!(
                out,
                "      spi: 0x{:X}({})\n        transform: {} ,\n        in use settings ={{Transport, }}",
                o.spi(),
                o.spi(),
                transform(o.cipher())
            );
        }
        out.push('\n');
    }
    out
}

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
        "gre": gre.map(|t| json!({
            "key": t.key,
            "mtu": t.mtu,
            "rx_packets": t.counters.rx_packets,
            "tx_packets": t.counters.tx_packets,
            "hairpinned": t.counters.hairpinned,
            "no_route": t.counters.no_route,
            "nhrp_in": t.counters.nhrp_in,
            "nhrp_out": t.counters.nhrp_out,
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

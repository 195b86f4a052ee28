//! Operator view: `show ip nhrp [brief]`, `show dmvpn [detail]`,
//! `show ip nhrp traffic`, in the IOS 15.x shapes of the seeds (seed-dmvpn §3).
//!
//! Renderers take plain [`Snapshot`]s and `now`, so the appliance can render
//! several tunnel interfaces at once. `show dmvpn detail` prints the NHRP part
//! only: the appliance appends `Crypto Session Details:` from the IKE/ESP cores.

use crate::cache::{Entry, EntryType};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Role shown as `Type:Hub` / `Type:Spoke` (spoke = has `ip nhrp nhs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Hub,
    Spoke,
}

/// NHS status letters of the `show dmvpn` legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhsStatus {
    /// E: registration sent, no reply yet.
    Expecting,
    /// R: the NHS answers registrations.
    Responding,
    /// W: waiting before retrying.
    Waiting,
}

/// One configured NHS as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NhsSnapshot {
    pub proto: Ipv4Addr,
    pub nbma: Option<Ipv4Addr>,
    pub status: NhsStatus,
    /// Time of the last up/down transition.
    pub since: Instant,
    pub up: bool,
}

/// Per-type packet counters, index = packet type - 1 (types 1..=8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    pub sent: [u64; 8],
    pub rcvd: [u64; 8],
}

impl Traffic {
    /// Counts a sent packet of a type (other types are not shown).
    pub fn count_sent(&mut self, op: u8) {
        if let Some(c) = usize::from(op)
            .checked_sub(1)
            .and_then(|i| self.sent.get_mut(i))
        {
            *c += 1;
        }
    }

    /// Counts a received packet.
    pub fn count_rcvd(&mut self, op: u8) {
        if let Some(c) = usize::from(op)
            .checked_sub(1)
            .and_then(|i| self.rcvd.get_mut(i))
        {
            *c += 1;
        }
    }
}

/// Everything `show` needs about one NHRP interface.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `Tunnel0`.
    pub interface: String,
    pub tunnel_addr: Ipv4Addr,
    pub nbma_addr: Ipv4Addr,
    pub role: Role,
    /// Tunnel protection profile name, if any.
    pub protect: Option<String>,
    pub entries: Vec<Entry>,
    pub nhs: Vec<NhsSnapshot>,
    pub traffic: Traffic,
    /// `ip nhrp max-send` packets and interval.
    pub max_send: (u32, Duration),
    /// Share of the max-send quota used in the current interval, percent.
    pub usage_percent: u32,
    /// Our post-NAT address as the NHS reported it.
    pub post_nat_nbma: Option<Ipv4Addr>,
    /// Packets dropped: received ones (malformed, failed authentication, unexpected, hop count) and ones
    /// the max-send quota kept from being sent.
    pub drops: crate::node::Drops,
}

/// `hh:mm:ss` below a day, then `XdYYh`, then `XwYd` (IOS up-time format).
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 86_400 {
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else if s < 7 * 86_400 {
        format!("{}d{:02}h", s / 86_400, (s / 3600) % 24)
    } else {
        format!("{}w{}d", s / (7 * 86_400), (s / 86_400) % 7)
    }
}

/// `Tunnel0` -> `Tu0`, as IOS abbreviates interfaces in tables.
pub fn short_name(interface: &str) -> String {
    match interface.strip_prefix("Tunnel") {
        Some(n) => format!("Tu{n}"),
        None => interface.to_string(),
    }
}

/// `show ip nhrp` (detail form).
pub fn show_ip_nhrp(snaps: &[&Snapshot], now: Instant) -> String {
    let mut out = String::new();
    for s in snaps {
        for e in &s.entries {
            let created = fmt_duration(now.saturating_duration_since(e.created));
            let expire = match e.expires {
                None => "never expire".to_string(),
                Some(t) => format!("expire {}", fmt_duration(t.saturating_duration_since(now))),
            };
            if e.kind == EntryType::Incomplete {
                let _ = writeln!(
                    out,
                    "{}, {} created {created}, {expire}",
                    e.prefix, s.interface
                );
            } else {
                let _ = writeln!(
                    out,
                    "{} via {}, {} created {created}, {expire}",
                    e.prefix, e.via, s.interface
                );
            }
            let flags = e.flags.words();
            let flags = if e.kind == EntryType::Negative && flags.is_empty() {
                "negative".into()
            } else {
                flags
            };
            let _ = writeln!(out, "  Type: {}, Flags: {flags}", e.kind.as_str());
            if let Some(nbma) = e.nbma {
                let _ = writeln!(out, "  NBMA address: {nbma}");
            }
            if let Some(c) = e.claimed_nbma {
                let _ = writeln!(out, "  (Claimed NBMA address: {c})");
            }
        }
    }
    out
}

/// `show ip nhrp brief`.
pub fn show_ip_nhrp_brief(snaps: &[&Snapshot]) -> String {
    let mut out = String::from(
        "   Target             Via            NBMA           Mode   Intfc   Claimed\n",
    );
    for s in snaps {
        let intf = short_name(&s.interface);
        for e in &s.entries {
            let nbma = e
                .nbma
                .map_or_else(|| "UNKNOWN".to_string(), |a| a.to_string());
            let claimed = e
                .claimed_nbma
                .map_or_else(|| "<   >".to_string(), |c| format!("< {c} >"));
            let _ = writeln!(
                out,
                "{:<20} {:<15} {:<15} {:<8} {:<7} {claimed}",
                e.prefix.to_string(),
                e.via.to_string(),
                nbma,
                e.kind.as_str(),
                intf
            );
        }
    }
    out
}

const LEGEND: &str = "Legend: Attrb --> S - Static, D - Dynamic, I - Incomplete
        N - NATed, L - Local, X - No Socket
        # Ent --> Number of NHRP entries with same NBMA peer
        NHS Status: E --> Expecting Replies, R --> Responding, W --> Waiting
        UpDn Time --> Up or Down Time for a Tunnel
=================================================================
";

/// One `show dmvpn` row: the entries that share an NBMA peer.
struct PeerRow<'a> {
    nbma: Option<Ipv4Addr>,
    entries: Vec<&'a Entry>,
}

fn peer_rows(s: &Snapshot) -> Vec<PeerRow<'_>> {
    let mut by_nbma: BTreeMap<Option<Ipv4Addr>, Vec<&Entry>> = BTreeMap::new();
    for e in &s.entries {
        if e.kind == EntryType::Negative {
            continue;
        }
        by_nbma.entry(e.nbma).or_default().push(e);
    }
    // Incomplete entries (no NBMA yet) sort last.
    let mut rows: Vec<PeerRow<'_>> = by_nbma
        .into_iter()
        .map(|(nbma, entries)| PeerRow { nbma, entries })
        .collect();
    rows.sort_by_key(|r| (r.nbma.is_none(), r.nbma));
    rows
}

impl PeerRow<'_> {
    /// The entry that names the peer: its /32 whose target is its own tunnel address.
    fn main(&self) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.prefix.is_host() && e.prefix.addr() == e.via)
            .or_else(|| self.entries.first())
            .copied()
    }

    fn attrb(&self) -> String {
        let mut a = String::new();
        if self.entries.iter().any(|e| e.kind == EntryType::Static) {
            a.push('S');
        } else if self.entries.iter().any(|e| e.kind == EntryType::Dynamic) {
            a.push('D');
        }
        if self.entries.iter().any(|e| e.kind == EntryType::Incomplete) {
            a.push('I');
        }
        if self
            .entries
            .iter()
            .any(|e| e.claimed_nbma.is_some() || e.flags.nat)
        {
            a.push('N');
        }
        a
    }

    /// State and the instant of the last transition.
    fn state(main: &Entry, s: &Snapshot) -> (&'static str, Instant) {
        if main.kind == EntryType::Incomplete {
            return ("NHRP", main.created);
        }
        if let Some(nhs) = s.nhs.iter().find(|n| n.proto == main.via) {
            return (if nhs.up { "UP" } else { "NHRP" }, nhs.since);
        }
        ("UP", main.created)
    }
}

/// `show dmvpn` (IOS 15.x form).
pub fn show_dmvpn(snaps: &[&Snapshot], now: Instant) -> String {
    let mut out = String::from(LEGEND);
    for s in snaps {
        let rows = peer_rows(s);
        let role = match s.role {
            Role::Hub => "Hub",
            Role::Spoke => "Spoke",
        };
        let _ = write!(
            out,
            "\nInterface: {}, IPv4 NHRP Details\nType:{role}, NHRP Peers:{},\n\n",
            s.interface,
            rows.len()
        );
        out.push_str(" # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb\n");
        out.push_str(" ----- --------------- --------------- ----- -------- -----\n");
        for r in &rows {
            let Some(main) = r.main() else { continue };
            let (state, since) = PeerRow::state(main, s);
            let nbma = r
                .nbma
                .map_or_else(|| "UNKNOWN".to_string(), |a| a.to_string());
            let _ = writeln!(
                out,
                "{:>6} {:<15} {:>15} {:>5} {:>8} {:>5}",
                r.entries.len(),
                nbma,
                main.via.to_string(),
                state,
                fmt_duration(now.saturating_duration_since(since)),
                r.attrb()
            );
        }
    }
    out
}

/// `show dmvpn detail`, NHRP part (12.4(22)T shape with the 15.x legend).
pub fn show_dmvpn_detail(snaps: &[&Snapshot], now: Instant) -> String {
    let mut out = String::from(LEGEND);
    for s in snaps {
        let rows = peer_rows(s);
        let role = match s.role {
            Role::Hub => "Hub",
            Role::Spoke => "Spoke",
        };
        let _ = writeln!(
            out,
            "Interface {} is up/up, Addr. is {}, VRF \"\"",
            s.interface, s.tunnel_addr
        );
        let _ = writeln!(
            out,
            "  Tunnel Src./Dest. addr: {}/MGRE, Tunnel VRF \"\"",
            s.nbma_addr
        );
        let _ = writeln!(
            out,
            "  Protocol/Transport: \"multi-GRE/IP\", Protect \"{}\"",
            s.protect.as_deref().unwrap_or("")
        );
        let _ = writeln!(out, "Type:{role}, Total NBMA Peers (v4/v6): {}", rows.len());
        out.push_str(
            " # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb    Target Network\n",
        );
        out.push_str(
            " ----- --------------- --------------- ----- -------- ----- -----------------\n",
        );
        for r in &rows {
            let Some(main) = r.main() else { continue };
            let (state, since) = PeerRow::state(main, s);
            let nbma = r
                .nbma
                .map_or_else(|| "UNKNOWN".to_string(), |a| a.to_string());
            let _ = writeln!(
                out,
                "{:>6} {:<15} {:>15} {:>5} {:>8} {:>5} {:>17}",
                r.entries.len(),
                nbma,
                main.via.to_string(),
                state,
                fmt_duration(now.saturating_duration_since(since)),
                r.attrb(),
                main.prefix.to_string()
            );
            for e in r.entries.iter().filter(|e| e.prefix != main.prefix) {
                let _ = writeln!(out, "{:>65}", e.prefix.to_string());
            }
        }
        for n in &s.nhs {
            let letter = match n.status {
                NhsStatus::Expecting => "E",
                NhsStatus::Responding => "RE",
                NhsStatus::Waiting => "W",
            };
            let _ = writeln!(out, "IPv4 NHS: {} {letter}", n.proto);
        }
    }
    out
}

/// `show ip nhrp traffic`.
pub fn show_ip_nhrp_traffic(snaps: &[&Snapshot]) -> String {
    let mut out = String::new();
    for s in snaps {
        let _ = writeln!(
            out,
            "{}: Max-send limit:{}Pkts/{}Sec, Usage:{}%",
            s.interface,
            s.max_send.0,
            s.max_send.1.as_secs(),
            s.usage_percent
        );
        for (label, c) in [("Sent", &s.traffic.sent), ("Rcvd", &s.traffic.rcvd)] {
            let total: u64 = c.iter().sum();
            let _ = writeln!(out, "{label}: Total {total}");
            let _ = writeln!(
                out,
                "    {} Resolution Request  {} Resolution Reply  {} Registration Request",
                c[0], c[1], c[2]
            );
            let _ = writeln!(
                out,
                "    {} Registration Reply   {} Purge Request    {} Purge Reply",
                c[3], c[4], c[5]
            );
            let _ = writeln!(
                out,
                "    {} Error Indication     {} Traffic Indication",
                c[6], c[7]
            );
        }
        // Lifeline's addition (not in IOS' output): shown once something was dropped.
        let d = &s.drops;
        let total = d.auth + d.quota + d.malformed + d.unexpected + d.hop_limit;
        if total > 0 {
            let _ = writeln!(out, "Dropped: Total {total}");
            let _ = writeln!(
                out,
                "    {} Authentication  {} Max-send quota  {} Malformed",
                d.auth, d.quota, d.malformed
            );
            let _ = writeln!(
                out,
                "    {} Unexpected  {} Hop count exceeded",
                d.unexpected, d.hop_limit
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;

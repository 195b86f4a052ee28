//! `show` commands: the IOS command table, abbreviation matching and the renderers' dispatch.
//!
//! The daemon task owns the state; [`answer`] runs inside it with a shared reference, so no `show` can race
//! a state change.

pub mod crypto;
pub mod dmvpn;
pub mod gre_crypto;
pub mod isakmp;
pub mod pki;
pub mod vpnsip;

use std::time::{Instant, SystemTime};

use crate::node::Node;

/// IOS prints start times on the wall clock (`*10:42:07.123 UTC Mon Nov 23 2026`); the cores keep
/// `Instant`s, so the conversion happens here, at the edge.
fn wall_clock(now: Instant, at: Instant) -> String {
    let wall = SystemTime::now() - now.saturating_duration_since(at);
    let secs = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("*{h:02}:{m:02}:{s:02} UTC")
}

/// Every `show` command the daemon answers. Later features add rows here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowCommand {
    RunningConfig,
    Version,
    IpSlaStatistics,
    IpSlaSummary,
    Track,
    IpRouteStatic,
    VpnSipSession,
    VpnSipRegistrationStatus,
    VpnSipSipRegistrar,
    VpnSipSipDhcp,
    IpNatTranslations,
    CryptoIpsecSa,
    CryptoIkev2Sa,
    CryptoIsakmpSa,
    CryptoSession,
    Interfaces,
    PolicyMapInterface,
    Dmvpn,
    DmvpnDetail,
    IpNhrp,
    IpNhrpBrief,
    IpNhrpTraffic,
    CryptoPkiCertificates,
    CryptoPkiTrustpoints,
    CryptoMap,
    CryptoSocket,
    CryptoEngine,
}

/// The command table: words as IOS spells them. Input words may be any unique prefix, case-insensitive.
const TABLE: &[(&[&str], ShowCommand)] = &[
    (&["show", "running-config"], ShowCommand::RunningConfig),
    (&["show", "version"], ShowCommand::Version),
    (
        &["show", "ip", "sla", "statistics"],
        ShowCommand::IpSlaStatistics,
    ),
    (&["show", "ip", "sla", "summary"], ShowCommand::IpSlaSummary),
    (&["show", "track"], ShowCommand::Track),
    (
        &["show", "ip", "route", "static"],
        ShowCommand::IpRouteStatic,
    ),
    (&["show", "vpn-sip", "session"], ShowCommand::VpnSipSession),
    (
        &["show", "vpn-sip", "registration-status"],
        ShowCommand::VpnSipRegistrationStatus,
    ),
    (
        &["show", "vpn-sip", "sip", "registrar"],
        ShowCommand::VpnSipSipRegistrar,
    ),
    (
        &["show", "vpn-sip", "sip", "dhcp"],
        ShowCommand::VpnSipSipDhcp,
    ),
    (
        &["show", "ip", "nat", "translations"],
        ShowCommand::IpNatTranslations,
    ),
    (
        &["show", "crypto", "ipsec", "sa"],
        ShowCommand::CryptoIpsecSa,
    ),
    (
        &["show", "crypto", "ikev2", "sa"],
        ShowCommand::CryptoIkev2Sa,
    ),
    (
        &["show", "crypto", "isakmp", "sa"],
        ShowCommand::CryptoIsakmpSa,
    ),
    (&["show", "crypto", "session"], ShowCommand::CryptoSession),
    (
        &["show", "crypto", "pki", "certificates"],
        ShowCommand::CryptoPkiCertificates,
    ),
    (
        &["show", "crypto", "pki", "trustpoints"],
        ShowCommand::CryptoPkiTrustpoints,
    ),
    (&["show", "crypto", "map"], ShowCommand::CryptoMap),
    (&["show", "crypto", "socket"], ShowCommand::CryptoSocket),
    (&["show", "crypto", "engine"], ShowCommand::CryptoEngine),
    (&["show", "interfaces"], ShowCommand::Interfaces),
    (
        &["show", "policy-map", "interface"],
        ShowCommand::PolicyMapInterface,
    ),
    (&["show", "dmvpn"], ShowCommand::Dmvpn),
    (&["show", "dmvpn", "detail"], ShowCommand::DmvpnDetail),
    (&["show", "ip", "nhrp"], ShowCommand::IpNhrp),
    (&["show", "ip", "nhrp", "brief"], ShowCommand::IpNhrpBrief),
    (
        &["show", "ip", "nhrp", "traffic"],
        ShowCommand::IpNhrpTraffic,
    ),
];

/// Resolve the operator's words to a command and its trailing arguments.
pub fn resolve(words: &[String]) -> Result<(ShowCommand, Vec<String>), String> {
    let mut best: Vec<(usize, ShowCommand)> = Vec::new();
    for (pattern, cmd) in TABLE {
        if words.len() < pattern.len() {
            continue;
        }
        let matches = pattern
            .iter()
            .zip(words)
            .all(|(p, w)| !w.is_empty() && p.starts_with(&w.to_ascii_lowercase()));
        if matches {
            best.push((pattern.len(), *cmd));
        }
    }
    let longest = best.iter().map(|(n, _)| *n).max();
    let Some(longest) = longest else {
        return Err(format!("% Invalid input detected: `{}`", words.join(" ")));
    };
    let mut winners: Vec<_> = best.into_iter().filter(|(n, _)| *n == longest).collect();
    if winners.len() > 1 {
        return Err(format!("% Ambiguous command: \"{}\"", words.join(" ")));
    }
    let (n, cmd) = winners.remove(0);
    Ok((cmd, words[n..].to_vec()))
}

/// Produce the reply text (or JSON) for one command.
pub fn answer(
    node: &Node,
    started: Instant,
    cmd: ShowCommand,
    args: &[String],
    json: bool,
) -> String {
    let now = Instant::now();
    match cmd {
        ShowCommand::Dmvpn => dmvpn::render(&node.gre, dmvpn::View::Dmvpn, json),
        ShowCommand::DmvpnDetail => dmvpn::render(&node.gre, dmvpn::View::DmvpnDetail, json),
        ShowCommand::IpNhrp => dmvpn::render(&node.gre, dmvpn::View::Nhrp, json),
        ShowCommand::IpNhrpBrief => dmvpn::render(&node.gre, dmvpn::View::NhrpBrief, json),
        ShowCommand::IpNhrpTraffic => dmvpn::render(&node.gre, dmvpn::View::NhrpTraffic, json),
        ShowCommand::CryptoMap | ShowCommand::CryptoSocket if json => {
            gre_crypto::json(&gre_crypto::maps(node))
        }
        ShowCommand::CryptoMap => gre_crypto::crypto_map(&gre_crypto::maps(node)),
        ShowCommand::CryptoSocket => gre_crypto::crypto_socket(&gre_crypto::maps(node)),
        ShowCommand::CryptoEngine => crypto_engine(&node.workers, json),
        ShowCommand::CryptoPkiCertificates if json => {
            serde_json::to_string_pretty(&node.pki_view).unwrap_or_default()
        }
        ShowCommand::CryptoPkiCertificates => pki::certificates(&node.pki_view, SystemTime::now()),
        ShowCommand::CryptoPkiTrustpoints => {
            let names: Vec<String> = node
                .config
                .pki
                .trustpoints
                .iter()
                .map(|t| t.name.clone())
                .collect();
            pki::trustpoints(&names, &node.pki_view)
        }
        ShowCommand::VpnSipSession => {
            let Some(v) = &node.vpnsip else {
                return "% VPN-SIP is not enabled\n".into();
            };
            // `show vpn-sip session [remote-number N] [detail]`
            let words: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
            let detail = words
                .iter()
                .any(|w| !w.is_empty() && "detail".starts_with(w.as_str()));
            let filter = words
                .iter()
                .position(|w| w.len() > 1 && "remote-number".starts_with(w.as_str()))
                .and_then(|i| args.get(i + 1));
            let mut views = v.views(now, |t| node.tunnels[t].ios_name.clone());
            if let Some(n) = filter {
                views.retain(|s| &s.remote_number == n);
            }
            if json {
                serde_json::to_string_pretty(&views).unwrap_or_default()
            } else {
                vpnsip::session(&views, detail)
            }
        }
        ShowCommand::VpnSipRegistrationStatus => match &node.vpnsip {
            Some(v) => {
                let mut out = sip::show::registration_status(&v.ua.snapshot(now));
                // Lifeline extension: calls to one of our numbers from a caller no tunnel is bound to.
                if v.unknown_caller_calls > 0 {
                    out.push_str(&format!(
                        "Calls from numbers without a VPN-SIP tunnel refused (404): {}\n",
                        v.unknown_caller_calls
                    ));
                }
                out
            }
            None => "% VPN-SIP is not enabled\n".into(),
        },
        ShowCommand::VpnSipSipRegistrar => match &node.vpnsip {
            Some(v) => sip::show::registrar_table(&v.ua.snapshot(now)),
            None => "% VPN-SIP is not enabled\n".into(),
        },
        ShowCommand::CryptoIpsecSa if json => {
            let mut v = crypto::ipsec_sa_json(node, now);
            // Protected GRE: one row per (tunnel, NBMA peer), as the text form lists them after the VTIs.
            v["gre"] = dmvpn::gre_ipsec_sa_json(node, now);
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        ShowCommand::CryptoIpsecSa | ShowCommand::Interfaces => {
            // `show interfaces TunnelN` names one tunnel; `show crypto ipsec sa` lists them all.
            // (`show crypto ipsec sa interface Tunnel0` names it after the keyword, as IOS does.)
            let args: Vec<&String> = args
                .iter()
                .filter(|a| !(a.len() >= 2 && "interface".starts_with(&a.to_ascii_lowercase())))
                .collect();
            let wanted = args.first().map(|a| config::canonicalize_interface(a));
            let mut out = String::new();
            for (i, t) in node.tunnels.iter().enumerate() {
                if wanted.as_ref().is_some_and(|w| *w != t.ios_name) {
                    continue;
                }
                let profile = node
                    .config
                    .interface(&t.ios_name)
                    .and_then(|i| i.tunnel.protection.as_ref())
                    .map(|p| p.ipsec_profile.clone())
                    .unwrap_or_default();
                let tag = format!("{}-head-0", t.ios_name);
                let ctx = dataplane::show::ShowContext {
                    interface: &t.ios_name,
                    crypto_map_tag: &tag,
                    profile: &profile,
                    egress_interface: "-",
                    pfs_group: None,
                    first_conn_id: 2001 + 2 * i as u32,
                };
                let snap = t.dp.lock().snapshot(now);
                out.push_str(&if cmd == ShowCommand::CryptoIpsecSa {
                    dataplane::show::render_crypto_ipsec_sa(&snap, &ctx)
                } else {
                    dataplane::show::render_interface_tunnel(&snap, &ctx)
                });
                out.push('\n');
            }
            if cmd == ShowCommand::CryptoIpsecSa {
                out.push_str(&dmvpn::gre_ipsec_sa(node));
            }
            out
        }
        ShowCommand::PolicyMapInterface => {
            let wanted = args.first().map(|a| config::canonicalize_interface(a));
            let mut out = String::new();
            for t in &node.tunnels {
                if wanted.as_ref().is_some_and(|w| *w != t.ios_name) {
                    continue;
                }
                if let Some(snap) = t.egress.snapshot(now) {
                    out.push_str(&if json {
                        dataplane::qos::show::policy_map_interface_json(&t.ios_name, &snap)
                    } else {
                        dataplane::qos::show::policy_map_interface(&t.ios_name, &snap)
                    });
                }
            }
            out
        }
        ShowCommand::CryptoIkev2Sa if json => {
            serde_json::to_string_pretty(&crypto::ikev2_sa_json(&crypto::ikev2_sa_rows(node, now)))
                .unwrap_or_default()
        }
        ShowCommand::CryptoIkev2Sa => crypto::ikev2_sa(
            &crypto::ikev2_sa_rows(node, now),
            crypto::wants_detail(args),
        ),
        ShowCommand::CryptoIsakmpSa => {
            // `show crypto isakmp sa [detail]`
            let views = isakmp::views(node, now);
            if json {
                serde_json::to_string_pretty(&views).unwrap_or_default()
            } else if crypto::wants_detail(args) {
                isakmp::isakmp_sa_detail(&views)
            } else {
                isakmp::isakmp_sa(&views)
            }
        }
        ShowCommand::CryptoSession => {
            // `show crypto session [detail] [interface TunnelN]`
            let mut views = crypto::session_views(node, now);
            if let Some(w) = crypto::interface_filter(args) {
                views.retain(|v| v.interface == w);
            }
            if json {
                serde_json::to_string_pretty(&views).unwrap_or_default()
            } else {
                crypto::crypto_session(&views, crypto::wants_detail(args))
            }
        }
        ShowCommand::VpnSipSipDhcp => {
            let wan = node
                .config
                .vpn_sip
                .local_number()
                .map(|n| n.wan_interface.clone());
            let Some(d) = node.dhcp.iter().find(|d| Some(&d.ios_name) == wan.as_ref()) else {
                return "% The VPN-SIP interface does not use DHCP\n".into();
            };
            monitors::show::vpn_sip_sip_dhcp(
                &d.ios_name,
                d.lease.as_ref().and_then(|l| l.sip_servers.as_ref()),
            )
        }
        ShowCommand::IpNatTranslations => {
            let rows = node
                .vpnsip
                .as_ref()
                .map(|v| v.pat.snapshot())
                .unwrap_or_default();
            dataplane::render_ip_nat_translations(&rows)
        }
        ShowCommand::RunningConfig => {
            let text = config::render(&node.config);
            if json {
                serde_json::json!({ "running-config": text }).to_string()
            } else {
                format!(
                    "Building configuration...\n\nCurrent configuration : {} bytes\n{}",
                    text.len(),
                    text
                )
            }
        }
        ShowCommand::IpSlaStatistics => {
            let now = Instant::now();
            let clock = |at: Instant| wall_clock(now, at);
            monitors::show::sla_statistics(&node.failover.sla.snapshot(), now, &clock)
        }
        ShowCommand::IpSlaSummary => {
            monitors::show::sla_summary(&node.failover.sla.snapshot(), Instant::now())
        }
        ShowCommand::Track => monitors::show::track(
            &node.failover.tracker.snapshot(),
            &node.failover.rib.tracked_by(),
            Instant::now(),
        ),
        ShowCommand::IpRouteStatic => {
            monitors::show::ip_route_static(&node.failover.rib.snapshot())
        }
        ShowCommand::Version => {
            let uptime = started.elapsed().as_secs();
            if json {
                serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "uptime_s": uptime })
                    .to_string()
            } else {
                format!(
                    "Lifeline Software, Version {}\nlifeline uptime is {} seconds\n",
                    env!("CARGO_PKG_VERSION"),
                    uptime
                )
            }
        }
    }
}

/// `show crypto engine` (Lifeline's take on IOS's crypto engine listing): the data-plane threads of
/// `run --dataplane-threads N` and what each sealed, opened and passed to the control loop.
fn crypto_engine(workers: &[std::sync::Arc<crate::fastpath::WorkerStats>], json: bool) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let rows: Vec<(&str, u64, u64, u64, u64, &str)> = workers
        .iter()
        .map(|w| {
            (
                w.name.as_str(),
                w.sealed.load(Relaxed),
                w.opened.load(Relaxed),
                w.to_node.load(Relaxed),
                w.dropped.load(Relaxed),
                w.role.get().map_or("", String::as_str),
            )
        })
        .collect();
    if json {
        let threads: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, sealed, opened, to_node, dropped, serves)| {
                serde_json::json!({
                    "name": name, "sealed": sealed, "opened": opened,
                    "to_control": to_node, "dropped_control_full": dropped, "serves": serves,
                })
            })
            .collect();
        return serde_json::json!({ "dataplane_threads": rows.len(), "threads": threads })
            .to_string();
    }
    let mut out = String::from(
        "crypto engine name:  Lifeline software crypto engine\ncrypto engine type:  software\n",
    );
    if rows.is_empty() {
        out.push_str(
            "data-plane threads:  0 (inline: the control thread seals and opens every packet)\n",
        );
        return out;
    }
    out.push_str(&format!("data-plane threads:  {}\n", rows.len()));
    out.push_str(&format!(
        "  {:<10} {:>12} {:>12} {:>12} {:>12}  {}\n",
        "Thread", "Sealed", "Opened", "To control", "Ctl full", "Serves"
    ));
    for (name, sealed, opened, to_node, dropped, serves) in rows {
        out.push_str(&format!(
            "  {name:<10} {sealed:>12} {opened:>12} {to_node:>12} {dropped:>12}  {serves}\n"
        ));
    }
    out.push_str("  (Ctl full: packets dropped because the control loop's queue was full)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn show_abbreviations_resolve() {
        assert_eq!(
            resolve(&words("sh run")).unwrap().0,
            ShowCommand::RunningConfig
        );
        assert_eq!(
            resolve(&words("SHOW Running-Config")).unwrap().0,
            ShowCommand::RunningConfig
        );
        assert_eq!(resolve(&words("sh ver")).unwrap().0, ShowCommand::Version);
    }

    #[test]
    fn show_rejects_unknown_words() {
        assert!(
            resolve(&words("show bogus"))
                .unwrap_err()
                .contains("Invalid input")
        );
        assert!(resolve(&words("show")).is_err());
    }
}

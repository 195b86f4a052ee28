//! Validation: the seeds' rules, each a diagnostic with position, words and suggestion.

use std::collections::HashMap;

use crate::defaults;
use crate::diag::{Diagnostic, Span};
use crate::model::*;
use crate::parser::Spans;

/// Validate a model built without source text (positions are 0).
pub fn validate(config: &Config) -> Vec<Diagnostic> {
    validate_with(config, &Spans::default())
}

fn with_words(mut s: Span, fallback: impl Into<String>) -> Span {
    if s.words.is_empty() {
        s.words = fallback.into();
    }
    s
}

pub(crate) fn validate_with(c: &Config, spans: &Spans) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    vpn_sip_global(c, spans, &mut d);
    for i in &c.interfaces {
        if let Some(v) = &i.vpn_sip {
            vpn_sip_tunnel(c, i, v, spans, &mut d);
        }
        tunnel_rules(i, spans, &mut d);
    }
    shared_sources(c, spans, &mut d);
    devices(c, spans, &mut d);
    routes(c, spans, &mut d);
    references(c, spans, &mut d);
    d
}

fn vpn_sip_global(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    //= seed 002 L3052: "IP NAT must be configured on secondary link and the loopback interface
    //= configured as the VPN-SIP tunnel source."
    if let Some(l) = c.vpn_sip.local_number() {
        let sp = with_words(
            spans.get("vpn-sip:local-number:0"),
            format!(
                "vpn-sip local-number {} address ipv4 {}",
                l.number, l.wan_interface
            ),
        );
        match c.interface(&l.wan_interface) {
            None => d.push(Diagnostic::warning(
                &sp,
                format!("VPN-SIP WAN interface {} is not defined", l.wan_interface),
                Some(format!(
                    "configure `interface {}` with `ip address dhcp` and `ip nat outside`",
                    l.wan_interface
                )),
            )),
            Some(wan) => {
                if wan.nat != Some(NatSide::Outside) {
                    d.push(Diagnostic::warning(
                        &sp,
                        format!(
                            "VPN-SIP WAN interface {} needs `ip nat outside`",
                            l.wan_interface
                        ),
                        Some(format!(
                            "add `ip nat outside` under interface {}",
                            l.wan_interface
                        )),
                    ));
                }
                let dhcp = matches!(wan.ip, IpAddressing::Dhcp { .. });
                if !dhcp && c.vpn_sip.registrar.is_none() {
                    d.push(Diagnostic::warning(
                        &sp,
                        format!(
                            "VPN-SIP WAN interface {} has no `ip address dhcp`, so no registrar is learnt (DHCP option 120) and none is configured",
                            l.wan_interface
                        ),
                        Some(
                            "add `ip address dhcp` and `ip dhcp client request sip-server-address`, or `vpn-sip registrar HOST`"
                                .into(),
                        ),
                    ));
                }
            }
        }
    }
    if let Some(src) = &c.vpn_sip.tunnel_source {
        let sp = with_words(
            spans.get("vpn-sip:tunnel-source"),
            format!("vpn-sip tunnel source {src}"),
        );
        match c.interface(src) {
            None => d.push(Diagnostic::warning(
                &sp,
                format!("VPN-SIP tunnel source {src} is not defined"),
                Some(format!(
                    "configure `interface {src}` with an address and `ip nat inside`"
                )),
            )),
            Some(lo) if lo.nat != Some(NatSide::Inside) => d.push(Diagnostic::warning(
                &sp,
                format!("VPN-SIP tunnel source {src} needs `ip nat inside`"),
                Some(format!("add `ip nat inside` under interface {src}")),
            )),
            Some(_) => {}
        }
    }

    //= seed 002 L3337: "you must configure" one local number; the chapter allows only one.
    for (n, _) in c.vpn_sip.local_numbers.iter().enumerate().skip(1) {
        let sp = with_words(
            spans.get(&format!("vpn-sip:local-number:{n}")),
            "vpn-sip local-number",
        );
        d.push(Diagnostic::error(
            &sp,
            "only one VPN-SIP local number may be configured",
            Some("remove this line or the other `vpn-sip local-number` line".into()),
        ));
    }
}

fn vpn_sip_tunnel(
    c: &Config,
    i: &Interface,
    v: &TunnelVpnSip,
    spans: &Spans,
    d: &mut Vec<Diagnostic>,
) {
    let name = &i.name;
    let line = with_words(
        spans.get(&format!("if:{name}:vpn-sip")),
        "vpn-sip local-number",
    );
    //= seed 002 L3298: "Allowed values are 64, 128, 256, 512, and 1000 kbps."
    if !defaults::VPN_SIP_BANDWIDTHS_KBPS.contains(&v.bandwidth_kbps) {
        let near = defaults::VPN_SIP_BANDWIDTHS_KBPS
            .iter()
            .copied()
            .min_by_key(|b| b.abs_diff(v.bandwidth_kbps))
            .unwrap_or(64);
        d.push(Diagnostic::error(
            &with_words(
                spans.get(&format!("if:{name}:vpn-sip:bandwidth")),
                format!("bandwidth {}", v.bandwidth_kbps),
            ),
            "VPN-SIP bandwidth must be 64, 128, 256, 512 or 1000 kbps",
            Some(format!("bandwidth {near}")),
        ));
    }
    if !c.vpn_sip.enabled {
        d.push(Diagnostic::warning(
            &line,
            format!("VPN-SIP tunnel {name} is configured but `vpn-sip enable` is missing"),
            Some("add `vpn-sip enable`".into()),
        ));
    }
    if !i.is_tunnel() {
        d.push(Diagnostic::error(
            &line,
            format!("`vpn-sip local-number` belongs on a Tunnel interface, not {name}"),
            Some("move this line under `interface TunnelN`".into()),
        ));
        return;
    }
    if i.tunnel.mode != Some(TunnelMode::IpsecIpv4) {
        d.push(Diagnostic::error(
            &line,
            format!("VPN-SIP tunnel {name} needs `tunnel mode ipsec ipv4`"),
            Some(format!(
                "add `tunnel mode ipsec ipv4` under interface {name}"
            )),
        ));
    }
    if i.tunnel.destination != Some(TunnelDestination::Dynamic) {
        d.push(Diagnostic::error(
            &line,
            format!("VPN-SIP tunnel {name} needs `tunnel destination dynamic`"),
            Some(format!(
                "add `tunnel destination dynamic` under interface {name}"
            )),
        ));
    }
    if let Some(l) = c.vpn_sip.local_number()
        && l.number != v.local_number
    {
        d.push(Diagnostic::error(
            &line,
            format!(
                "only one local SIP number: this tunnel uses {} but `vpn-sip local-number` is {}",
                v.local_number, l.number
            ),
            Some(format!("use local-number {}", l.number)),
        ));
    }
    // Static service policy vs the implicit VPN-SIP shaper.
    //= seed 002 L3557 / seed-vpnsip §10.6: a static `service-policy output` is refused.
    if let Some(p) = i.service_policy_output() {
        d.push(Diagnostic::error(
            &with_words(
                spans.get(&format!("if:{name}:service-policy:Output")),
                format!("service-policy output {p}"),
            ),
            format!(
                "a static `service-policy output` is not allowed on VPN-SIP tunnel {name}: VPN-SIP attaches its own shaper"
            ),
            Some(format!(
                "remove it and use `vpn-sip ... bandwidth {} service-policy {p}`",
                v.bandwidth_kbps
            )),
        ));
    }
    if let Some(p) = &v.service_policy {
        child_policy(c, name, p, spans, d);
    }
    let Some(prot) = &i.tunnel.protection else {
        d.push(Diagnostic::error(
            &line,
            format!("VPN-SIP tunnel {name} needs `tunnel protection ipsec profile`"),
            Some(
                "add `tunnel protection ipsec profile P ikev2-profile I` with an IPsec profile that sets an idle time"
                    .into(),
            ),
        ));
        return;
    };
    //= seed 002 L3094: "The idle-time configuration under the IPsec Profile is mandatory"
    let prot_span = with_words(
        spans.get(&format!("if:{name}:tunnel-protection")),
        format!("tunnel protection ipsec profile {}", prot.ipsec_profile),
    );
    let idle = c
        .ipsec
        .profiles
        .iter()
        .find(|p| p.name == prot.ipsec_profile)
        .and_then(|p| p.sa.idle_time);
    if idle.is_none() {
        d.push(Diagnostic::error(
            &prot_span,
            format!(
                "IPsec profile {} of VPN-SIP tunnel {name} needs an idle time",
                prot.ipsec_profile
            ),
            Some(format!(
                "add `set security-association idle-time {}` under `crypto ipsec profile {}`",
                defaults::VPN_SIP_RECOMMENDED_IDLE_TIME.as_secs(),
                prot.ipsec_profile
            )),
        ));
    }
    //= seed 002 L3032: IKEv2 looks the PSK up by the peer's SIP number (`identity key-id`).
    let Some(ikp) = prot.ikev2_profile.as_ref() else {
        return;
    };
    let Some(profile) = c.ikev2.profiles.iter().find(|p| &p.name == ikp) else {
        return;
    };
    //= seed 002 L3240: "the nat force-encap command must be configured on both peers"
    if !profile.nat_force_encap {
        d.push(Diagnostic::error(
            &prot_span,
            format!("IKEv2 profile {ikp} of VPN-SIP tunnel {name} needs `nat force-encap`"),
            Some(format!(
                "add `nat force-encap` under `crypto ikev2 profile {ikp}`"
            )),
        ));
    }
    if !profile.uses_pre_share() {
        return;
    }
    let remote_span = with_words(
        spans.get(&format!("if:{name}:vpn-sip:remote")),
        format!("remote-number {}", v.remote_number),
    );
    let Some(kr_name) = &profile.keyring_local else {
        d.push(Diagnostic::error(
            &remote_span,
            format!(
                "IKEv2 profile {ikp} authenticates by pre-share but has no `keyring local`, so remote number {} has no key",
                v.remote_number
            ),
            Some(format!("add `keyring local KEYRING` under `crypto ikev2 profile {ikp}`")),
        ));
        return;
    };
    let has = c
        .ikev2
        .keyrings
        .iter()
        .find(|k| &k.name == kr_name)
        .and_then(|k| k.peer_by_key_id(&v.remote_number))
        .is_some();
    if !has {
        d.push(Diagnostic::error(
            &remote_span,
            format!(
                "remote number {} has no peer with `identity key-id {}` in keyring {kr_name}",
                v.remote_number, v.remote_number
            ),
            Some(format!(
                "add `peer NAME` / `identity key-id {}` / `pre-shared-key KEY` under `crypto ikev2 keyring {kr_name}`",
                v.remote_number
            )),
        ));
    }
}

//= seed 002 L3135: "bandwidth <kbps>" is not supported in child classes; only PQ and
//= `bandwidth percent`.
fn child_policy(c: &Config, tunnel: &str, p: &str, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let Some(pm) = c.qos.policy_maps.iter().find(|x| x.name == p) else {
        d.push(Diagnostic::warning(
            &with_words(
                spans.get(&format!("if:{tunnel}:vpn-sip:policy")),
                format!("service-policy {p}"),
            ),
            format!("policy-map {p} is not defined"),
            Some(format!("define `policy-map {p}`")),
        ));
        return;
    };
    for (k, cl) in pm.classes.iter().enumerate() {
        for (a, act) in cl.actions.iter().enumerate() {
            let ok = matches!(
                act,
                QosAction::BandwidthPercent(_) | QosAction::Priority { .. }
            ) || matches!(act, QosAction::QueueLimitPackets(_));
            if !ok {
                let sp = spans.get(&format!("qos:{}:{k}:{a}", pm.name));
                d.push(Diagnostic::error(
                    &with_words(sp, format!("{act:?}")),
                    format!(
                        "VPN-SIP child policy {} (class {}) may contain only `priority` and `bandwidth percent`",
                        pm.name, cl.name
                    ),
                    Some("use `priority` or `bandwidth percent P`".into()),
                ));
            }
        }
    }
}

fn tunnel_rules(i: &Interface, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let name = &i.name;
    //= seed-ipsec-vti §5.1: "`shared` must not be used with `tunnel mode ipsec ipv4`."
    if let Some(p) = &i.tunnel.protection
        && p.shared
        && i.tunnel.mode == Some(TunnelMode::IpsecIpv4)
    {
        d.push(Diagnostic::error(
            &with_words(
                spans.get(&format!("if:{name}:tunnel-protection")),
                "tunnel protection ipsec profile",
            ),
            format!("`shared` cannot be used with `tunnel mode ipsec ipv4` on {name}"),
            Some("remove `shared`".into()),
        ));
    }
    if let Some(TunnelMode::Other(m)) = &i.tunnel.mode {
        d.push(Diagnostic::warning(
            &with_words(
                spans.get(&format!("if:{name}:tunnel-mode")),
                format!("tunnel mode {m}"),
            ),
            format!("tunnel mode `{m}` is not implemented by Lifeline"),
            Some("use gre ip, gre multipoint, ipsec ipv4 or ipsec ipv6".into()),
        ));
    }
}

//= seed 000 L32-44: tunnels that share a tunnel source with tunnel protection need `shared`
//= and distinct tunnel keys.
fn shared_sources(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let mut by_src: HashMap<String, Vec<&Interface>> = HashMap::new();
    for i in &c.interfaces {
        if !i.is_tunnel() || i.tunnel.protection.is_none() {
            continue;
        }
        let src = match &i.tunnel.source {
            Some(TunnelSource::Interface(n)) => n.clone(),
            Some(TunnelSource::Address(a)) => a.to_string(),
            None => continue,
        };
        by_src.entry(src).or_default().push(i);
    }
    let mut groups: Vec<_> = by_src.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for (src, tunnels) in groups {
        if tunnels.len() < 2
            || !tunnels
                .iter()
                .any(|t| t.tunnel.mode == Some(TunnelMode::GreMultipoint))
        {
            continue;
        }
        let mut keys: HashMap<Option<u32>, &str> = HashMap::new();
        for t in &tunnels {
            let name = &t.name;
            if let Some(p) = &t.tunnel.protection
                && !p.shared
            {
                d.push(Diagnostic::error(
                    &with_words(
                        spans.get(&format!("if:{name}:tunnel-protection")),
                        format!("tunnel protection ipsec profile {}", p.ipsec_profile),
                    ),
                    format!(
                        "tunnels sharing tunnel source {src} with mGRE need `shared` on their tunnel protection ({name})"
                    ),
                    Some(format!(
                        "tunnel protection ipsec profile {} shared",
                        p.ipsec_profile
                    )),
                ));
            }
            match keys.get(&t.tunnel.key) {
                Some(other) => {
                    let words = match t.tunnel.key {
                        Some(k) => format!("tunnel key {k}"),
                        None => format!("interface {name}"),
                    };
                    let sp = match t.tunnel.key {
                        Some(_) => spans.get(&format!("if:{name}:tunnel-key")),
                        None => spans.get(&format!("if:{name}")),
                    };
                    d.push(Diagnostic::error(
                        &with_words(sp, words),
                        format!(
                            "tunnels sharing tunnel source {src} need distinct tunnel keys: {name} and {other} have the same key"
                        ),
                        Some(format!("set a different `tunnel key` on {name}")),
                    ));
                }
                None => {
                    keys.insert(t.tunnel.key, name);
                }
            }
        }
    }
}

fn routes(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    for (n, r) in c.ip_routes.iter().enumerate() {
        if r.interface.is_none() && r.next_hop.is_none() {
            d.push(Diagnostic::error(
                &with_words(spans.get(&format!("route:{n}")), "ip route"),
                "a static route needs an interface or a next hop",
                None,
            ));
        }
    }
}

/// Undefined references: warnings (IOS accepts them; the feature just does not work).
fn references(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let mut warn = |key: String, words: String, msg: String, sugg: String| {
        d.push(Diagnostic::warning(
            &with_words(spans.get(&key), words),
            msg,
            Some(sugg),
        ));
    };
    for i in &c.interfaces {
        if let Some(p) = &i.tunnel.protection {
            if !c.ipsec.profiles.iter().any(|x| x.name == p.ipsec_profile) {
                warn(
                    format!("if:{}:tunnel-protection", i.name),
                    format!("tunnel protection ipsec profile {}", p.ipsec_profile),
                    format!("IPsec profile {} is not defined", p.ipsec_profile),
                    format!(
                        "define `crypto ipsec profile {}` (names are case-sensitive)",
                        p.ipsec_profile
                    ),
                );
            }
            if let Some(ik) = &p.ikev2_profile
                && !c.ikev2.profiles.iter().any(|x| &x.name == ik)
            {
                warn(
                    format!("if:{}:tunnel-protection", i.name),
                    format!("ikev2-profile {ik}"),
                    format!("IKEv2 profile {ik} is not defined"),
                    format!("define `crypto ikev2 profile {ik}` (names are case-sensitive)"),
                );
            }
        }
    }
    for p in &c.ikev2.profiles {
        if let Some(k) = &p.keyring_local
            && !c.ikev2.keyrings.iter().any(|x| &x.name == k)
        {
            warn(
                format!("ikev2-profile:{}:keyring", p.name),
                format!("keyring local {k}"),
                format!("IKEv2 keyring {k} is not defined"),
                format!("define `crypto ikev2 keyring {k}`"),
            );
        }
        for (t, _) in &p.pki_trustpoints {
            if !c.pki.trustpoints.iter().any(|x| &x.name == t) {
                warn(
                    format!("ikev2-profile:{}:pki:{t}", p.name),
                    format!("pki trustpoint {t}"),
                    format!("trustpoint {t} is not defined"),
                    format!("define `crypto pki trustpoint {t}` (names are case-sensitive)"),
                );
            }
        }
    }
    for p in &c.ipsec.profiles {
        for t in &p.transform_sets {
            if !c.ipsec.transform_sets.iter().any(|x| &x.name == t) {
                warn(
                    format!("ipsec-profile:{}:ts", p.name),
                    format!("set transform-set {t}"),
                    format!(
                        "transform set {t} is not defined (IPsec profile {})",
                        p.name
                    ),
                    format!("define `crypto ipsec transform-set {t} ...`"),
                );
            }
        }
    }
    for t in &c.tracks {
        if let TrackKind::IpSlaReachability(n) | TrackKind::IpSlaState(n) = t.kind
            && !c.ip_slas.iter().any(|s| s.id == n)
        {
            warn(
                format!("track:{}", t.id),
                format!("track {} ip sla {n}", t.id),
                format!("IP SLA {n} is not defined"),
                format!("define `ip sla {n}`"),
            );
        }
    }
    for (n, r) in c.ip_routes.iter().enumerate() {
        if let Some(t) = r.track
            && !c.tracks.iter().any(|x| x.id == t)
        {
            warn(
                format!("route:{n}:line"),
                format!("track {t}"),
                format!("track object {t} is not defined"),
                format!("define `track {t} ip sla N reachability`"),
            );
        }
    }
}

/// Lifeline extension `device`: one Linux device per IOS interface.
fn devices(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for i in &c.interfaces {
        let Some(dev) = i.linux_name() else { continue };
        if let Some(other) = seen.get(dev) {
            d.push(Diagnostic::error(
                &with_words(
                    spans.get(&format!("if:{}:device", i.name)),
                    format!("device {dev}"),
                ),
                format!("Linux device {dev} is already bound to interface {other}"),
                Some(format!("bind {} to another device", i.name)),
            ));
        } else {
            seen.insert(dev, &i.name);
        }
    }
}

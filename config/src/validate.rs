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
    mgre_demux(c, spans, &mut d);
    devices(c, spans, &mut d);
    proposals(c, spans, &mut d);
    transform_sets(c, spans, &mut d);
    isakmp_policies(c, spans, &mut d);
    qos_references(c, spans, &mut d);
    overlapping_addresses(c, spans, &mut d);
    routes(c, spans, &mut d);
    references(c, spans, &mut d);
    ikev2_profile_esp(c, spans, &mut d);
    ikev2_match_identity(c, spans, &mut d);
    d
}

/// `match identity remote` lines the IKEv2 side enforces: `key-id`, one `address A [M]` (an exact address,
/// or with a mask the subnet, holding the peer's IPv4 identity or its address) and `fqdn` without `domain`,
/// the first such line of a profile; `any`, `address 0.0.0.0` and a 0.0.0.0 mask match any peer. Any other
/// line (`fqdn domain`, `email`, a second line) is not enforced, so the profile would match any peer:
/// warned, not silently widened.
fn ikev2_match_identity(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    for p in &c.ikev2.profiles {
        let mut enforced = false;
        for m in &p.match_identity_remote {
            let exact = match m {
                IdentityMatch::Any => continue,
                IdentityMatch::Address(a, m)
                    if a.is_unspecified() || m.is_some_and(|m| m.is_unspecified()) =>
                {
                    continue;
                }
                IdentityMatch::KeyId(_)
                | IdentityMatch::Fqdn { domain: false, .. }
                | IdentityMatch::Address(..) => true,
                IdentityMatch::Fqdn { domain: true, .. } | IdentityMatch::Email { .. } => false,
            };
            let why = if !exact {
                "Lifeline enforces key-id, one address (or subnet) or fqdn"
            } else if enforced {
                "Lifeline enforces only the first of several"
            } else {
                enforced = true;
                continue;
            };
            d.push(Diagnostic::warning(
                &with_words(
                    spans.get(&format!("ikev2-profile:{}:match:{m:?}", p.name)),
                    format!("match identity remote {m:?}"),
                ),
                format!(
                    "crypto ikev2 profile {}: this `match identity remote` is not enforced ({why}): \
                     the line does not restrict which peers the profile matches",
                    p.name
                ),
                Some("one `match identity remote key-id|address A [M]|fqdn NAME` per profile, or `any`".into()),
            ));
        }
    }
}

/// One IKEv2 profile negotiates one IPsec profile's ESP settings ([`Config::ipsec_profile_of_ikev2`]):
/// a tunnel whose own IPsec profile asks for other transform sets, PFS or lifetimes under the same IKEv2
/// profile would silently get the other one's (found against strongSwan: a CBC tunnel proposed GCM).
fn ikev2_profile_esp(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let esp = |p: &crate::EffectiveIpsecProfile| {
        (
            p.transform_sets.clone(),
            p.pfs_group,
            p.lifetime_seconds,
            p.lifetime_kilobytes,
        )
    };
    for i in c.interfaces.iter().filter(|i| i.is_tunnel()) {
        let Some(tp) = i.tunnel.protection.as_ref() else {
            continue;
        };
        let (Some(ikev2), Some(own)) = (
            c.tunnel_ikev2_profile(i),
            c.effective_ipsec_profile(&tp.ipsec_profile),
        ) else {
            continue;
        };
        let Some(used) = c.ipsec_profile_of_ikev2(&ikev2) else {
            continue;
        };
        if used.name != own.name && esp(&used) != esp(&own) {
            d.push(Diagnostic::warning(
                &with_words(
                    spans.get(&format!("if:{}:tunnel-protection", i.name)),
                    format!("tunnel protection ipsec profile {}", own.name),
                ),
                format!(
                    "{}: IKEv2 profile {ikev2} negotiates the transform sets, PFS and lifetimes of IPsec \
                     profile {} for every tunnel it keys, not those of {}",
                    i.name, used.name, own.name
                ),
                Some(format!(
                    "give IPsec profile {} an IKEv2 profile of its own (`set ikev2-profile`)",
                    own.name
                )),
            ));
        }
    }
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

    //= seed 002 L3337: "you must configure" a local number. Lifeline takes several (an extension): each
    //= is distinct, and all register from the first one's WAN interface (one SIP user agent, one
    //= contact address, one registrar learnt on that interface).
    let mut seen: Vec<&str> = Vec::new();
    let first_wan = c.vpn_sip.local_number().map(|l| l.wan_interface.as_str());
    for (n, l) in c.vpn_sip.local_numbers.iter().enumerate() {
        let sp = with_words(
            spans.get(&format!("vpn-sip:local-number:{n}")),
            format!(
                "vpn-sip local-number {} address ipv4 {}",
                l.number, l.wan_interface
            ),
        );
        if seen.contains(&l.number.as_str()) {
            d.push(Diagnostic::error(
                &sp,
                format!("VPN-SIP local number {} is configured twice", l.number),
                Some("remove this line".into()),
            ));
            continue;
        }
        seen.push(&l.number);
        if let Some(first) = first_wan
            && first != l.wan_interface
        {
            d.push(Diagnostic::error(
                &sp,
                format!(
                    "every VPN-SIP local number registers from one WAN interface: {} is on {} but {} is on {first}",
                    l.number, l.wan_interface, c.vpn_sip.local_numbers[0].number
                ),
                Some(format!("use `address ipv4 {first}`")),
            ));
        }
    }
    vpn_sip_bindings(c, spans, d);
}

/// Several local numbers: which tunnel answers which call, and which IKE identity it shows.
fn vpn_sip_bindings(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let tunnels: Vec<(&Interface, &TunnelVpnSip)> = c
        .interfaces
        .iter()
        .filter_map(|i| i.vpn_sip.as_ref().map(|v| (i, v)))
        .collect();
    for (k, (i, v)) in tunnels.iter().enumerate() {
        let name = &i.name;
        // An incoming call is routed by the called number to its tunnels, then by the caller; IKE
        // finds the session, the keyring entry and the SDP fingerprint by the caller's key-id.
        if let Some((other, _)) = tunnels[..k]
            .iter()
            .find(|(_, o)| o.remote_number == v.remote_number)
        {
            d.push(Diagnostic::error(
                &with_words(
                    spans.get(&format!("if:{name}:vpn-sip:remote")),
                    format!("remote-number {}", v.remote_number),
                ),
                format!(
                    "remote number {} is already bound to {}: a remote number has one VPN-SIP tunnel (calls and IKE identities are matched by it)",
                    v.remote_number, other.name
                ),
                Some(format!(
                    "remove this line or the one under interface {}",
                    other.name
                )),
            ));
        }
        // The IKEv2 profile's identity (key-id) is one local number: tunnels of another number need
        // their own profile.
        let Some(ikp) = c.tunnel_ikev2_profile(i) else {
            continue;
        };
        if let Some((other, ov)) = tunnels[..k].iter().find(|(o, ov)| {
            ov.local_number != v.local_number
                && c.tunnel_ikev2_profile(o).as_deref() == Some(ikp.as_str())
        }) {
            d.push(Diagnostic::error(
                &with_words(
                    spans.get(&format!("if:{name}:tunnel-protection")),
                    "tunnel protection ipsec profile",
                ),
                format!(
                    "IKEv2 profile {ikp} keys {} for local number {} and {name} for local number {}: a profile shows one local identity",
                    other.name, ov.local_number, v.local_number
                ),
                Some(format!(
                    "give the tunnels of local number {} their own `crypto ikev2 profile` (with `identity local key-id {}`)",
                    v.local_number, v.local_number
                )),
            ));
        }
    }
    // A number no tunnel uses registers, but every call to it is refused.
    if !tunnels.is_empty() && c.vpn_sip.local_numbers.len() > 1 {
        for (n, l) in c.vpn_sip.local_numbers.iter().enumerate() {
            if !tunnels.iter().any(|(_, v)| v.local_number == l.number) {
                d.push(Diagnostic::warning(
                    &with_words(
                        spans.get(&format!("vpn-sip:local-number:{n}")),
                        format!("vpn-sip local-number {}", l.number),
                    ),
                    format!(
                        "local number {} is bound to no VPN-SIP tunnel: it registers, but calls to it are refused (404)",
                        l.number
                    ),
                    Some(format!(
                        "add `vpn-sip local-number {} remote-number R bandwidth B` under a Tunnel interface",
                        l.number
                    )),
                ));
            }
        }
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
    if let Some(first) = c.vpn_sip.local_number()
        && c.vpn_sip.local_number_named(&v.local_number).is_none()
    {
        let known: Vec<&str> = c
            .vpn_sip
            .local_numbers
            .iter()
            .map(|l| l.number.as_str())
            .collect();
        d.push(Diagnostic::error(
            &line,
            format!(
                "{name} uses local number {}, which no `vpn-sip local-number {} address ipv4 ...` line configures (configured: {})",
                v.local_number,
                v.local_number,
                known.join(", ")
            ),
            Some(format!(
                "use local-number {} or add `vpn-sip local-number {} address ipv4 {}`",
                known.join(" | "),
                v.local_number,
                first.wan_interface
            )),
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
    if i.tunnel.mode == Some(TunnelMode::GreMultipoint)
        && matches!(
            i.tunnel.destination,
            Some(TunnelDestination::Address(_) | TunnelDestination::Hostname(_))
        )
    {
        //= seed-dmvpn §6.2 A8: mGRE with a `tunnel destination` (001:1211-1213): the warning names
        //= the destination line itself, never only the interface.
        d.push(Diagnostic::warning(
            &with_words(
                spans.get(&format!("if:{name}:tunnel-destination")),
                "tunnel destination",
            ),
            format!("`tunnel destination` has no meaning on mGRE tunnel {name} (NHRP gives each peer's address)"),
            Some("remove `tunnel destination` or use `tunnel mode gre ip`".into()),
        ));
    }
    if i.tunnel.destination == Some(TunnelDestination::Dynamic) && i.vpn_sip.is_none() {
        d.push(Diagnostic::warning(
            &with_words(spans.get(&format!("if:{name}")), format!("interface {name}")),
            format!("`tunnel destination dynamic` on {name} needs a `vpn-sip local-number ... remote-number ...` line to learn the peer"),
            Some("add `vpn-sip local-number L remote-number R bandwidth B`".into()),
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
    for (src, tunnels) in &groups {
        shared_profile_per_source(src, tunnels, spans, d);
    }
    shared_profile_names(&groups, spans, d);
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

//= seed 000 L32-33, 001 L3195: all tunnels with the same tunnel source must use "the same IPsec profile
//= name, and the **shared** keyword". Lifeline keeps one SA database per (source, profile), and an SA keyed
//= with the source's peer can only go to one of them: two `shared` groups with different profiles on one
//= source would split the peers between them, so it is refused.
fn shared_profile_per_source(
    src: &str,
    tunnels: &[&Interface],
    spans: &Spans,
    d: &mut Vec<Diagnostic>,
) {
    let mut first: Option<(&str, &str)> = None;
    for t in tunnels {
        let Some(p) = t.tunnel.protection.as_ref().filter(|p| p.shared) else {
            continue;
        };
        match first {
            None => first = Some((&t.name, &p.ipsec_profile)),
            Some((other, profile)) if profile != p.ipsec_profile => {
                let name = &t.name;
                d.push(Diagnostic::error(
                    &with_words(
                        spans.get(&format!("if:{name}:tunnel-protection")),
                        format!("tunnel protection ipsec profile {} shared", p.ipsec_profile),
                    ),
                    format!(
                        "tunnels sharing tunnel source {src} with `shared` must use one IPsec profile: {other} uses {profile}, {name} uses {}",
                        p.ipsec_profile
                    ),
                    Some(format!("tunnel protection ipsec profile {profile} shared")),
                ));
            }
            Some(_) => {}
        }
    }
}

//= seed 000 L41-42, 001 L3199-3205: "Different IPsec profile names must be used for shared and unshared
//= tunnels" and "a different IPsec profile must be used for each set of shared tunnels". Lifeline keeps
//= them apart by source anyway, so these are warnings.
fn shared_profile_names(
    groups: &[(String, Vec<&Interface>)],
    spans: &Spans,
    d: &mut Vec<Diagnostic>,
) {
    // Profile -> (source, tunnel) of its first shared use.
    let mut shared_by: HashMap<&str, (&str, &str)> = HashMap::new();
    for (src, tunnels) in groups {
        for t in tunnels {
            if let Some(p) = t.tunnel.protection.as_ref().filter(|p| p.shared) {
                shared_by.entry(&p.ipsec_profile).or_insert((src, &t.name));
            }
        }
    }
    for (src, tunnels) in groups {
        for t in tunnels {
            let Some(p) = &t.tunnel.protection else {
                continue;
            };
            let Some((first_src, first)) = shared_by.get(p.ipsec_profile.as_str()) else {
                continue;
            };
            let name = &t.name;
            let msg = if !p.shared {
                format!(
                    "IPsec profile {} is used with `shared` on {first} and without it on {name}: shared and unshared tunnels need different profiles",
                    p.ipsec_profile
                )
            } else if first_src != src {
                format!(
                    "IPsec profile {} is shared on tunnel source {first_src} ({first}) and on {src} ({name}): each set of shared tunnels needs its own profile",
                    p.ipsec_profile
                )
            } else {
                continue;
            };
            d.push(Diagnostic::warning(
                &with_words(
                    spans.get(&format!("if:{name}:tunnel-protection")),
                    format!("tunnel protection ipsec profile {}", p.ipsec_profile),
                ),
                msg,
                Some(format!("use another `crypto ipsec profile` on {name}")),
            ));
        }
    }
}

//= seed-dmvpn TUN-6 (000:65, 001:3231): for mGRE the pair (tunnel source, tunnel key) must be unique
//= per device; §6.2 A26 (001:243): two mGRE interfaces without a key need different sources.
//= Tunnels that are all protected are reported by `shared_sources` (distinct keys).
fn mgre_demux(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(String, Option<u32>), &Interface> = HashMap::new();
    for t in &c.interfaces {
        if !t.is_tunnel() || t.tunnel.mode != Some(TunnelMode::GreMultipoint) {
            continue;
        }
        let src = match &t.tunnel.source {
            Some(TunnelSource::Interface(n)) => n.clone(),
            Some(TunnelSource::Address(a)) => a.to_string(),
            None => continue,
        };
        let k = (src, t.tunnel.key);
        match seen.get(&k) {
            Some(other) if t.tunnel.protection.is_none() || other.tunnel.protection.is_none() => {
                let name = &t.name;
                let (sp, words) = match t.tunnel.key {
                    Some(key) => (
                        spans.get(&format!("if:{name}:tunnel-key")),
                        format!("tunnel key {key}"),
                    ),
                    None => (
                        spans.get(&format!("if:{name}")),
                        format!("interface {name}"),
                    ),
                };
                let key = match t.tunnel.key {
                    Some(key) => format!("tunnel key {key}"),
                    None => "no tunnel key".to_string(),
                };
                d.push(Diagnostic::error(
                    &with_words(sp, words),
                    format!(
                        "mGRE tunnels {} and {name} have the same tunnel source {} and {key}: incoming GRE cannot be told apart",
                        other.name, k.0
                    ),
                    Some(format!(
                        "set a different `tunnel key` or `tunnel source` on {name}"
                    )),
                ));
            }
            Some(_) => {}
            None => {
                seen.insert(k, t);
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
                    //= seed-dmvpn §6.1: `tunnel protection ipsec profile vpnprof!` (001:1135, 1162,
                    //= 1235): a `!` starts a comment only at the start of a line, so it is part of the name.
                    match p.ipsec_profile.strip_suffix('!') {
                        Some(base) if !base.is_empty() => format!(
                            "a `!` is a comment only at the start of a line: did you mean `{base}`?"
                        ),
                        _ => format!(
                            "define `crypto ipsec profile {}` (names are case-sensitive)",
                            p.ipsec_profile
                        ),
                    },
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
                    match did_you_mean(t, c.ipsec.transform_sets.iter().map(|x| x.name.as_str())) {
                        Some(m) => format!("did you mean `{m}`? (names are case-sensitive)"),
                        None => format!("define `crypto ipsec transform-set {t} ...`"),
                    },
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

/// `Some(candidate)` that differs from `name` only by case, or is one edit away.
fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(&str, usize)> = None;
    for cand in candidates {
        let dist = if cand.eq_ignore_ascii_case(name) {
            0
        } else {
            edit_distance(&name.to_ascii_lowercase(), &cand.to_ascii_lowercase())
        };
        if dist <= 1 && best.is_none_or(|(_, d)| dist < d) {
            best = Some((cand, dist));
        }
    }
    best.map(|(c, _)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(x) = cur.get_mut(j + 1) {
                *x = sub.min(del).min(ins);
            }
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

const IKEV2_ENCRYPTION: &[&str] = &[
    "aes-cbc-128",
    "aes-cbc-192",
    "aes-cbc-256",
    "aes-gcm-128",
    "aes-gcm-256",
    "3des",
    "des",
];
const IKEV2_INTEGRITY: &[&str] = &["sha1", "sha256", "sha384", "sha512", "md5"];
const IKEV2_GROUPS: &[u16] = &[1, 2, 5, 14, 15, 16, 19, 20, 21, 24];

//= seed-ipsec-vti IK2-1: "encryption: aes-cbc-128, aes-cbc-192, aes-cbc-256, 3des. integrity:
//= sha1, sha256, sha384, sha512, md5. group: 1 2 5 14 15 16 19 20 24."
fn proposals(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    for p in &c.ikev2.proposals {
        let checks: [(&str, &Vec<String>, &[&str]); 3] = [
            ("encryption", &p.encryption, IKEV2_ENCRYPTION),
            ("integrity", &p.integrity, IKEV2_INTEGRITY),
            ("prf", &p.prf, IKEV2_INTEGRITY),
        ];
        for (kind, vals, known) in checks {
            for v in vals.iter().filter(|v| !known.contains(&v.as_str())) {
                let sugg = did_you_mean(v, known.iter().copied())
                    .map(|k| format!("{kind} {k}"))
                    .or_else(|| Some(format!("one of {}", known.join(", "))));
                d.push(Diagnostic::error(
                    &with_words(
                        spans.get(&format!("proposal:{}:{kind}", p.name)),
                        format!("{kind} {v}"),
                    ),
                    format!(
                        "unknown IKEv2 {kind} transform `{v}` in proposal {}",
                        p.name
                    ),
                    sugg,
                ));
            }
        }
        for g in p.group.iter().filter(|g| !IKEV2_GROUPS.contains(g)) {
            d.push(Diagnostic::error(
                &with_words(
                    spans.get(&format!("proposal:{}:group", p.name)),
                    format!("group {g}"),
                ),
                format!("unknown DH group {g} in IKEv2 proposal {}", p.name),
                Some("use 14, 19, 20, 21 or 24 (1, 2, 5, 15, 16 are accepted)".into()),
            ));
        }
    }
}

/// Weak algorithms are accepted with a warning (IOS XE 17.6 behaviour).
fn transform_sets(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    const WEAK: &[&str] = &[
        "esp-des",
        "esp-3des",
        "esp-md5-hmac",
        "ah-md5-hmac",
        "esp-null",
    ];
    for t in &c.ipsec.transform_sets {
        let sp = with_words(
            spans.get(&format!("transform-set:{}", t.name)),
            format!(
                "crypto ipsec transform-set {} {}",
                t.name,
                t.transforms.join(" ")
            ),
        );
        let weak: Vec<&str> = t
            .transforms
            .iter()
            .map(String::as_str)
            .filter(|x| WEAK.contains(x))
            .collect();
        if !weak.is_empty() {
            d.push(Diagnostic::warning(
                &sp,
                format!(
                    "transform set {} uses weak algorithms: {}",
                    t.name,
                    weak.join(", ")
                ),
                Some("use esp-aes 256 esp-sha256-hmac or esp-gcm 256".into()),
            ));
        }
        let integrity = t
            .transforms
            .iter()
            .any(|x| x.ends_with("-hmac") || x.starts_with("esp-gcm") || x.starts_with("esp-gmac"));
        if !integrity {
            d.push(Diagnostic::warning(
                &sp,
                format!(
                    "transform set {} has no integrity transform (no authentication, no anti-replay)",
                    t.name
                ),
                Some("add esp-sha256-hmac".into()),
            ));
        }
    }
}

/// Legacy ISAKMP algorithms (DES, 3DES, MD5, DH groups 1/2/5), written or implied by the IOS defaults
/// (`encryption des`, `hash sha`, `group 1`): the policy loads, and Lifeline's IKEv1 refuses it with the
/// same replacement named here (seed digest IKE-1: the 12.4 DMVPN examples set only `authentication`).
fn isakmp_policies(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    for p in &c.isakmp.policies {
        let encr = p.encryption.as_deref().unwrap_or("des");
        let hash = p.hash.as_deref().unwrap_or("sha");
        let group = p.group.unwrap_or(1);
        let mut legacy = Vec::new();
        let implied = |set: bool| if set { "" } else { " (IOS default)" };
        if encr == "des" || encr == "3des" {
            legacy.push((
                format!("encryption {encr}{}", implied(p.encryption.is_some())),
                "encryption aes 256",
            ));
        }
        if hash == "md5" {
            legacy.push(("hash md5".to_string(), "hash sha256"));
        }
        if matches!(group, 1 | 2 | 5) {
            legacy.push((
                format!("group {group}{}", implied(p.group.is_some())),
                "group 14",
            ));
        }
        if legacy.is_empty() {
            continue;
        }
        let what: Vec<&str> = legacy.iter().map(|(w, _)| w.as_str()).collect();
        let with: Vec<&str> = legacy.iter().map(|(_, r)| *r).collect();
        d.push(Diagnostic::warning(
            &with_words(
                spans.get(&format!("isakmp-policy:{}", p.priority)),
                format!("crypto isakmp policy {}", p.priority),
            ),
            format!(
                "crypto isakmp policy {} uses legacy algorithms that Lifeline's IKEv1 refuses: {}",
                p.priority,
                what.join(", ")
            ),
            Some(format!("configure {}", with.join(", "))),
        ));
    }
}

fn qos_references(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let pm_names = || c.qos.policy_maps.iter().map(|p| p.name.as_str());
    for i in &c.interfaces {
        for (dir, p) in &i.service_policies {
            if c.policy_map(p).is_none() {
                let d_kw = match dir {
                    Direction::Input => "input",
                    Direction::Output => "output",
                };
                d.push(Diagnostic::warning(
                    &with_words(
                        spans.get(&format!("if:{}:service-policy:{dir:?}", i.name)),
                        format!("service-policy {d_kw} {p}"),
                    ),
                    format!("policy-map {p} is not defined"),
                    Some(match did_you_mean(p, pm_names()) {
                        Some(m) => format!("did you mean `{m}`? (names are case-sensitive)"),
                        None => format!("define `policy-map {p}`"),
                    }),
                ));
            }
        }
    }
    for pm in &c.qos.policy_maps {
        for cl in &pm.classes {
            if cl.name != "class-default" && !c.qos.class_maps.iter().any(|m| m.name == cl.name) {
                d.push(Diagnostic::warning(
                    &with_words(
                        spans.get(&format!("policy-map:{}", pm.name)),
                        format!("class {}", cl.name),
                    ),
                    format!(
                        "class-map {} (policy-map {}) is not defined",
                        cl.name, pm.name
                    ),
                    Some(format!("define `class-map match-all {}`", cl.name)),
                ));
            }
            for a in &cl.actions {
                if let QosAction::ServicePolicy(child) = a
                    && c.policy_map(child).is_none()
                {
                    d.push(Diagnostic::warning(
                        &with_words(
                            spans.get(&format!("policy-map:{}", pm.name)),
                            format!("service-policy {child}"),
                        ),
                        format!("policy-map {child} is not defined"),
                        Some(format!("define `policy-map {child}`")),
                    ));
                }
            }
        }
    }
}

fn overlapping_addresses(c: &Config, spans: &Spans, d: &mut Vec<Diagnostic>) {
    let mut seen: Vec<(&str, Ipv4Net)> = Vec::new();
    for i in &c.interfaces {
        let IpAddressing::Static { primary, secondary } = &i.ip else {
            continue;
        };
        if i.vrf_forwarding.is_some() {
            continue;
        }
        for n in std::iter::once(primary).chain(secondary.iter()) {
            if let Some((other, _)) = seen
                .iter()
                .find(|(_, m)| m.contains(n.addr) || n.contains(m.addr))
            {
                d.push(Diagnostic::warning(
                    &with_words(
                        spans.get(&format!("if:{}", i.name)),
                        format!("ip address {} {}", n.addr, n.mask()),
                    ),
                    format!(
                        "{} {} on {} overlaps with {other}",
                        n.addr,
                        n.mask(),
                        i.name
                    ),
                    Some("use non-overlapping subnets".into()),
                ));
            } else {
                seen.push((&i.name, *n));
            }
        }
    }
}

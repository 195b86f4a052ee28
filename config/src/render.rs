//! `show running-config`: the model printed in a canonical order with IOS indentation
//! (one space per level, `!` between blocks, keywords lower case, names as written).

use std::fmt::Write as _;

use crate::model::*;

struct Out {
    s: String,
}

impl Out {
    fn line(&mut self, depth: usize, text: impl AsRef<str>) {
        for _ in 0..depth {
            self.s.push(' ');
        }
        self.s.push_str(text.as_ref());
        self.s.push('\n');
    }
    fn bang(&mut self) {
        self.s.push_str("!\n");
    }
    fn unsupported(&mut self, depth: usize, u: &[Unsupported]) {
        for x in u {
            self.line(depth, &x.text);
            self.unsupported(depth + 1, &x.children);
        }
    }
}

fn secs(d: &std::time::Duration) -> u64 {
    d.as_secs()
}

fn net(n: &Ipv4Net) -> String {
    format!("{} {}", n.addr, n.mask())
}

fn identity(i: &Ikev2Identity) -> String {
    match i {
        Ikev2Identity::KeyId(k) => format!("key-id {k}"),
        Ikev2Identity::Fqdn(k) => format!("fqdn {k}"),
        Ikev2Identity::Email(k) => format!("email {k}"),
        Ikev2Identity::Address(a) => format!("address {a}"),
        Ikev2Identity::Dn => "dn".to_string(),
    }
}

fn auth(a: &AuthMethod) -> String {
    match a {
        AuthMethod::PreShare(None) => "pre-share".into(),
        AuthMethod::PreShare(Some(k)) => format!("pre-share key {}", k.ios_text()),
        AuthMethod::RsaSig => "rsa-sig".into(),
        AuthMethod::EcdsaSig => "ecdsa-sig".into(),
        AuthMethod::Eap => "eap".into(),
    }
}

fn dpd(d: &Dpd) -> String {
    format!(
        "dpd {} {} {}",
        secs(&d.interval),
        secs(&d.retry),
        if d.periodic { "periodic" } else { "on-demand" }
    )
}

fn sa_lines(sa: &SaSettings, prefix: &str) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(s) = sa.lifetime_seconds {
        v.push(format!("{prefix}security-association lifetime seconds {s}"));
    }
    match sa.lifetime_kilobytes {
        Some(KilobyteLifetime::Kilobytes(k)) => v.push(format!(
            "{prefix}security-association lifetime kilobytes {k}"
        )),
        Some(KilobyteLifetime::Disable) => v.push(format!(
            "{prefix}security-association lifetime kilobytes disable"
        )),
        None => {}
    }
    match sa.replay {
        Some(Replay::WindowSize(n)) => v.push(format!(
            "{prefix}security-association replay window-size {n}"
        )),
        Some(Replay::Disable) => v.push(format!("{prefix}security-association replay disable")),
        None => {}
    }
    if let Some(t) = &sa.idle_time {
        v.push(format!(
            "{prefix}security-association idle-time {}",
            secs(t)
        ));
    }
    v
}

fn acl_addr(a: &AclAddress) -> String {
    match a {
        AclAddress::Any => "any".into(),
        AclAddress::Host(h) => format!("host {h}"),
        AclAddress::Wildcard(a, w) => format!("{a} {w}"),
    }
}

fn ace(e: &AclEntry) -> String {
    match e {
        AclEntry::Remark(r) => format!("remark {r}"),
        AclEntry::Rule {
            seq,
            action,
            protocol,
            source,
            source_port,
            destination,
            destination_port,
            options,
        } => {
            let mut s = String::new();
            if let Some(n) = seq {
                let _ = write!(s, "{n} ");
            }
            s.push_str(match action {
                AclAction::Permit => "permit",
                AclAction::Deny => "deny",
            });
            if let Some(p) = protocol {
                let _ = write!(s, " {p}");
            }
            let _ = write!(s, " {}", acl_addr(source));
            if let Some(p) = source_port {
                let _ = write!(s, " {p}");
            }
            if let Some(d) = destination {
                let _ = write!(s, " {}", acl_addr(d));
            }
            if let Some(p) = destination_port {
                let _ = write!(s, " {p}");
            }
            for o in options {
                let _ = write!(s, " {o}");
            }
            s
        }
    }
}

/// Render the configuration as `show running-config` prints it.
pub fn render(config: &Config) -> String {
    let mut o = Out { s: String::new() };
    let c = config;
    o.bang();
    if let Some(h) = &c.hostname {
        o.line(0, format!("hostname {h}"));
        o.bang();
    }
    if !c.name_servers.is_empty() {
        let list: Vec<String> = c.name_servers.iter().map(|a| a.to_string()).collect();
        o.line(0, format!("ip name-server {}", list.join(" ")));
        o.bang();
    }

    // Global commands Lifeline does not implement that are single lines: first, while no
    // mode is open, so that they read back as global commands.
    let mut any = false;
    for u in c
        .unsupported
        .iter()
        .filter(|u| !crate::parser::renders_as_block(u))
    {
        o.line(0, &u.text);
        any = true;
    }
    if any {
        o.bang();
    }

    // Blocks Lifeline does not implement (`router eigrp`, `ip vrf`, banners), verbatim, also before any
    // interface: printed after the interfaces, an opener that is also an interface sub-command
    // (`ip vrf forwarding X` vs `ip vrf X`) would be read back into the last interface.
    for u in c
        .unsupported
        .iter()
        .filter(|u| crate::parser::renders_as_block(u))
    {
        o.line(0, &u.text);
        match crate::parser::banner_state(&u.text) {
            Some((delim, false)) => {
                // Banner text lines verbatim, then the delimiter if the text never closed it.
                for ch in &u.children {
                    o.line(0, &ch.text);
                }
                if !u.children.iter().any(|ch| ch.text.contains(delim.as_str())) {
                    o.line(0, &delim);
                }
            }
            _ => o.unsupported(1, &u.children),
        }
        o.bang();
    }

    // PKI
    for t in &c.pki.trustpoints {
        o.line(0, format!("crypto pki trustpoint {}", t.name));
        match &t.enrollment {
            Some(Enrollment::SelfSigned) => o.line(1, "enrollment selfsigned"),
            Some(Enrollment::Terminal) => o.line(1, "enrollment terminal"),
            Some(Enrollment::Url(u)) => o.line(1, format!("enrollment url {u}")),
            None => {}
        }
        match t.serial_number_none {
            Some(true) => o.line(1, "serial-number none"),
            Some(false) => o.line(1, "serial-number"),
            None => {}
        }
        if let Some(s) = &t.subject_name {
            o.line(1, format!("subject-name {s}"));
        }
        if !t.revocation_check.is_empty() {
            o.line(
                1,
                format!("revocation-check {}", t.revocation_check.join(" ")),
            );
        }
        if let Some(r) = &t.rsakeypair {
            o.line(1, format!("rsakeypair {r}"));
        }
        if let Some(f) = &t.fingerprint {
            o.line(1, format!("fingerprint {f}"));
        }
        o.unsupported(1, &t.unsupported);
        o.bang();
    }
    for m in &c.pki.certificate_maps {
        o.line(
            0,
            format!("crypto pki certificate map {} {}", m.label, m.seq),
        );
        for r in &m.rules {
            o.line(1, r);
        }
        o.unsupported(1, &m.unsupported);
        o.bang();
    }

    // IKEv2
    for p in &c.ikev2.proposals {
        o.line(0, format!("crypto ikev2 proposal {}", p.name));
        if !p.encryption.is_empty() {
            o.line(1, format!("encryption {}", p.encryption.join(" ")));
        }
        if !p.integrity.is_empty() {
            o.line(1, format!("integrity {}", p.integrity.join(" ")));
        }
        if !p.prf.is_empty() {
            o.line(1, format!("prf {}", p.prf.join(" ")));
        }
        if !p.group.is_empty() {
            let g: Vec<String> = p.group.iter().map(|g| g.to_string()).collect();
            o.line(1, format!("group {}", g.join(" ")));
        }
        o.unsupported(1, &p.unsupported);
        o.bang();
    }
    for p in &c.ikev2.policies {
        o.line(0, format!("crypto ikev2 policy {}", p.name));
        if let Some(v) = &p.match_fvrf {
            o.line(1, format!("match fvrf {v}"));
        }
        for a in &p.match_address_local {
            o.line(1, format!("match address local {a}"));
        }
        for pr in &p.proposals {
            o.line(1, format!("proposal {pr}"));
        }
        o.unsupported(1, &p.unsupported);
        o.bang();
    }
    for k in &c.ikev2.keyrings {
        o.line(0, format!("crypto ikev2 keyring {}", k.name));
        // Before the peers, or they would read back as peer sub-commands.
        o.unsupported(1, &k.unsupported);
        for p in &k.peers {
            o.line(1, format!("peer {}", p.name));
            if let Some(d) = &p.description {
                o.line(2, format!("description {d}"));
            }
            if let Some((a, m)) = &p.address {
                match m {
                    Some(m) => o.line(2, format!("address {a} {m}")),
                    None => o.line(2, format!("address {a}")),
                }
            }
            if let Some(h) = &p.hostname {
                o.line(2, format!("hostname {h}"));
            }
            for i in &p.identities {
                o.line(2, format!("identity {}", identity(i)));
            }
            if let Some(s) = &p.pre_shared_key {
                o.line(2, format!("pre-shared-key {}", s.ios_text()));
            }
            if let Some(s) = &p.pre_shared_key_local {
                o.line(2, format!("pre-shared-key local {}", s.ios_text()));
            }
            if let Some(s) = &p.pre_shared_key_remote {
                o.line(2, format!("pre-shared-key remote {}", s.ios_text()));
            }
            o.unsupported(2, &p.unsupported);
            o.line(1, "!");
        }
        o.bang();
    }
    for p in &c.ikev2.profiles {
        o.line(0, format!("crypto ikev2 profile {}", p.name));
        if let Some(d) = &p.description {
            o.line(1, format!("description {d}"));
        }
        for m in &p.match_certificate {
            o.line(1, format!("match certificate {m}"));
        }
        if let Some(v) = &p.match_fvrf {
            o.line(1, format!("match fvrf {v}"));
        }
        for a in &p.match_address_local {
            o.line(1, format!("match address local {a}"));
        }
        for m in &p.match_identity_remote {
            let t = match m {
                IdentityMatch::Any => "any".to_string(),
                IdentityMatch::Address(a, None) => format!("address {a}"),
                IdentityMatch::Address(a, Some(mk)) => format!("address {a} {mk}"),
                IdentityMatch::Fqdn { domain, name } => {
                    format!("fqdn {}{name}", if *domain { "domain " } else { "" })
                }
                IdentityMatch::Email { domain, name } => {
                    format!("email {}{name}", if *domain { "domain " } else { "" })
                }
                IdentityMatch::KeyId(k) => format!("key-id {k}"),
            };
            o.line(1, format!("match identity remote {t}"));
        }
        if let Some(i) = &p.identity_local {
            o.line(1, format!("identity local {}", identity(i)));
        }
        for a in &p.authentication_remote {
            o.line(1, format!("authentication remote {}", auth(a)));
        }
        for a in &p.authentication_local {
            o.line(1, format!("authentication local {}", auth(a)));
        }
        if let Some(k) = &p.keyring_local {
            o.line(1, format!("keyring local {k}"));
        }
        for (t, u) in &p.pki_trustpoints {
            match u {
                Some(u) => o.line(1, format!("pki trustpoint {t} {u}")),
                None => o.line(1, format!("pki trustpoint {t}")),
            }
        }
        if let Some(l) = &p.lifetime {
            o.line(1, format!("lifetime {}", secs(l)));
        }
        if let Some(d) = &p.dpd {
            o.line(1, dpd(d));
        }
        if p.nat_force_encap {
            o.line(1, "nat force-encap");
        }
        if let Some(v) = p.virtual_template {
            o.line(1, format!("virtual-template {v}"));
        }
        o.unsupported(1, &p.unsupported);
        o.bang();
    }
    let mut any = false;
    if let Some(d) = &c.ikev2.dpd {
        o.line(0, format!("crypto ikev2 {}", dpd(d)));
        any = true;
    }
    if let Some(k) = c.ikev2.nat_keepalive {
        o.line(0, format!("crypto ikev2 nat keepalive {k}"));
        any = true;
    }
    if c.ikev2.disconnect_revoked_peers {
        o.line(0, "crypto ikev2 disconnect-revoked-peers");
        any = true;
    }
    if any {
        o.bang();
    }

    // ISAKMP
    for p in &c.isakmp.policies {
        o.line(0, format!("crypto isakmp policy {}", p.priority));
        if let Some(e) = &p.encryption {
            o.line(1, format!("encryption {e}"));
        }
        if let Some(h) = &p.hash {
            o.line(1, format!("hash {h}"));
        }
        if let Some(a) = &p.authentication {
            o.line(1, format!("authentication {a}"));
        }
        if let Some(g) = p.group {
            o.line(1, format!("group {g}"));
        }
        if let Some(l) = &p.lifetime {
            o.line(1, format!("lifetime {}", secs(l)));
        }
        o.unsupported(1, &p.unsupported);
        o.bang();
    }
    let mut any = false;
    for k in &c.isakmp.keys {
        let peer = match &k.peer {
            IsakmpKeyPeer::Address(a, None) => format!("address {a}"),
            IsakmpKeyPeer::Address(a, Some(m)) => format!("address {a} {m}"),
            IsakmpKeyPeer::Hostname(h) => format!("hostname {h}"),
            IsakmpKeyPeer::Ipv6(p) => format!("address ipv6 {p}"),
        };
        let nx = if k.no_xauth { " no-xauth" } else { "" };
        o.line(
            0,
            format!("crypto isakmp key {} {peer}{nx}", k.key.ios_text()),
        );
        any = true;
    }
    if let Some(k) = &c.isakmp.keepalive {
        let mut s = format!("crypto isakmp keepalive {}", k.seconds);
        if let Some(r) = k.retry {
            let _ = write!(s, " {r}");
        }
        match k.periodic {
            Some(true) => s.push_str(" periodic"),
            Some(false) => s.push_str(" on-demand"),
            None => {}
        }
        o.line(0, s);
        any = true;
    }
    if let Some(k) = c.isakmp.nat_keepalive {
        o.line(0, format!("crypto isakmp nat keepalive {k}"));
        any = true;
    }
    if any {
        o.bang();
    }

    // IPsec
    let g = sa_lines(&c.ipsec.global_sa, "crypto ipsec ");
    for l in &g {
        o.line(0, l);
    }
    if !g.is_empty() {
        o.bang();
    }
    for t in &c.ipsec.transform_sets {
        o.line(
            0,
            format!(
                "crypto ipsec transform-set {} {}",
                t.name,
                t.transforms.join(" ")
            ),
        );
        match t.mode {
            Some(IpsecMode::Tunnel) => o.line(1, "mode tunnel"),
            Some(IpsecMode::Transport) => o.line(1, "mode transport"),
            None => {}
        }
        o.unsupported(1, &t.unsupported);
        o.bang();
    }
    for p in &c.ipsec.profiles {
        o.line(0, format!("crypto ipsec profile {}", p.name));
        if let Some(d) = &p.description {
            o.line(1, format!("description {d}"));
        }
        for l in sa_lines(&p.sa, "set ") {
            o.line(1, l);
        }
        if !p.transform_sets.is_empty() {
            o.line(
                1,
                format!("set transform-set {}", p.transform_sets.join(" ")),
            );
        }
        if let Some(g) = p.pfs {
            o.line(1, format!("set pfs group{g}"));
        }
        if let Some(i) = &p.ikev2_profile {
            o.line(1, format!("set ikev2-profile {i}"));
        }
        o.unsupported(1, &p.unsupported);
        o.bang();
    }
    for m in &c.ipsec.crypto_maps {
        match &m.kind {
            Some(k) => o.line(0, format!("crypto map {} {} {k}", m.name, m.seq)),
            None => o.line(0, format!("crypto map {} {}", m.name, m.seq)),
        }
        for p in &m.peers {
            o.line(1, format!("set peer {p}"));
        }
        for l in sa_lines(&m.sa, "set ") {
            o.line(1, l);
        }
        if !m.transform_sets.is_empty() {
            o.line(
                1,
                format!("set transform-set {}", m.transform_sets.join(" ")),
            );
        }
        if let Some(g) = m.pfs {
            o.line(1, format!("set pfs group{g}"));
        }
        if let Some(i) = &m.ikev2_profile {
            o.line(1, format!("set ikev2-profile {i}"));
        }
        if let Some(a) = &m.match_address {
            o.line(1, format!("match address {a}"));
        }
        o.unsupported(1, &m.unsupported);
        o.bang();
    }

    // QoS
    for cm in &c.qos.class_maps {
        o.line(
            0,
            format!(
                "class-map {} {}",
                if cm.match_any {
                    "match-any"
                } else {
                    "match-all"
                },
                cm.name
            ),
        );
        for m in &cm.matches {
            let t = match m {
                ClassMatch::Any => "any".to_string(),
                ClassMatch::Protocol(p) => format!("protocol {p}"),
                ClassMatch::AccessGroup(a) => {
                    if a.chars().all(|c| c.is_ascii_digit()) {
                        format!("access-group {a}")
                    } else {
                        format!("access-group name {a}")
                    }
                }
                ClassMatch::Dscp(v) => format!("dscp {}", v.join(" ")),
                ClassMatch::Precedence(v) => format!(
                    "precedence {}",
                    v.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            };
            o.line(1, format!("match {t}"));
        }
        o.unsupported(1, &cm.unsupported);
        o.bang();
    }
    for pm in &c.qos.policy_maps {
        o.line(0, format!("policy-map {}", pm.name));
        if let Some(d) = &pm.description {
            o.line(1, format!("description {d}"));
        }
        // Before the classes, or they would read back as class sub-commands.
        o.unsupported(1, &pm.unsupported);
        for cl in &pm.classes {
            o.line(1, format!("class {}", cl.name));
            // Before the actions: after a `police` line they would read back as police actions.
            o.unsupported(2, &cl.unsupported);
            for a in &cl.actions {
                match a {
                    QosAction::BandwidthPercent(p) => o.line(2, format!("bandwidth percent {p}")),
                    QosAction::BandwidthKbps(k) => o.line(2, format!("bandwidth {k}")),
                    QosAction::BandwidthRemainingPercent(p) => {
                        o.line(2, format!("bandwidth remaining percent {p}"))
                    }
                    QosAction::Priority { kbps, percent } => match (kbps, percent) {
                        (_, Some(p)) => o.line(2, format!("priority percent {p}")),
                        (Some(k), None) => o.line(2, format!("priority {k}")),
                        (None, None) => o.line(2, "priority"),
                    },
                    QosAction::QueueLimitPackets(n) => {
                        o.line(2, format!("queue-limit {n} packets"))
                    }
                    QosAction::Police(p) => {
                        let mut s = format!("police cir {}", p.cir_bps);
                        if let Some(b) = p.bc {
                            let _ = write!(s, " bc {b}");
                        }
                        if let Some(b) = p.be {
                            let _ = write!(s, " be {b}");
                        }
                        o.line(2, s);
                        if let Some(a) = &p.conform_action {
                            o.line(3, format!("conform-action {a}"));
                        }
                        if let Some(a) = &p.exceed_action {
                            o.line(3, format!("exceed-action {a}"));
                        }
                        if let Some(a) = &p.violate_action {
                            o.line(3, format!("violate-action {a}"));
                        }
                    }
                    QosAction::SetDscp(d) => o.line(2, format!("set dscp {d}")),
                    QosAction::SetPrecedence(p) => o.line(2, format!("set precedence {p}")),
                    QosAction::ShapeAverage(b) => o.line(2, format!("shape average {b}")),
                    QosAction::ServicePolicy(p) => o.line(2, format!("service-policy {p}")),
                    QosAction::FairQueue => o.line(2, "fair-queue"),
                }
            }
        }
        o.bang();
    }

    // Interfaces
    for i in &c.interfaces {
        render_interface(&mut o, i);
        o.bang();
    }

    // VPN-SIP
    let v = &c.vpn_sip;
    let mut any = false;
    if v.enabled {
        o.line(0, "vpn-sip enable");
        any = true;
    }
    for l in &v.local_numbers {
        let mut s = format!(
            "vpn-sip local-number {} address ipv4 {}",
            l.number, l.wan_interface
        );
        if let (Some(u), Some(p)) = (&l.username, &l.password) {
            let _ = write!(s, " username {u} password {}", p.ios_text());
        }
        o.line(0, s);
        any = true;
    }
    if let Some(s) = &v.tunnel_source {
        o.line(0, format!("vpn-sip tunnel source {s}"));
        any = true;
    }
    if v.logging {
        o.line(0, "vpn-sip logging");
        any = true;
    }
    if let Some((first, last)) = v.session_ports {
        o.line(0, format!("vpn-sip session-port range {first} {last}"));
        any = true;
    }
    if let Some(r) = &v.registrar {
        let mut s = format!("vpn-sip registrar {}", r.host);
        if let Some(p) = r.port {
            let _ = write!(s, " port {p}");
        }
        match r.transport {
            Some(SipTransport::Udp) => s.push_str(" transport udp"),
            Some(SipTransport::Tcp) => s.push_str(" transport tcp"),
            Some(SipTransport::Tls) => s.push_str(" transport tls"),
            None => {}
        }
        if let Some(f) = &r.ca_file {
            let _ = write!(s, " ca-file {f}");
        }
        if let Some(u) = &r.username {
            let _ = write!(s, " username {u}");
        }
        if let Some(p) = &r.password {
            let _ = write!(s, " password {}", p.ios_text());
        }
        o.line(0, s);
        any = true;
    }
    if any {
        o.bang();
    }

    // NAT
    let mut any = false;
    for p in &c.nat.pools {
        o.line(
            0,
            format!(
                "ip nat pool {} {} {} netmask {}",
                p.name,
                p.start,
                p.end,
                prefix_to_mask(p.prefix_len)
            ),
        );
        any = true;
    }
    for n in &c.nat.inside_source {
        let mut s = format!("ip nat inside source list {} ", n.list);
        match &n.target {
            NatTarget::Interface(i) => {
                let _ = write!(s, "interface {i}");
            }
            NatTarget::Pool(p) => {
                let _ = write!(s, "pool {p}");
            }
        }
        if let Some(v) = &n.vrf {
            let _ = write!(s, " vrf {v}");
        }
        if n.overload {
            s.push_str(" overload");
        }
        o.line(0, s);
        any = true;
    }
    for st in &c.nat.statics {
        o.line(0, format!("ip nat inside source static {}", st.words));
        any = true;
    }
    for (k, v) in &c.nat.translation {
        o.line(0, format!("ip nat translation {k} {v}"));
        any = true;
    }
    if any {
        o.bang();
    }

    // Routes
    for r in &c.ip_routes {
        let mut s = String::from("ip route ");
        if let Some(v) = &r.vrf {
            let _ = write!(s, "vrf {v} ");
        }
        let _ = write!(s, "{} {}", r.prefix.addr, r.prefix.mask());
        if let Some(i) = &r.interface {
            let _ = write!(s, " {i}");
        }
        if let Some(n) = &r.next_hop {
            let _ = write!(s, " {n}");
        }
        if let Some(d) = r.distance {
            let _ = write!(s, " {d}");
        }
        if let Some(t) = r.tag {
            let _ = write!(s, " tag {t}");
        }
        if let Some(n) = &r.name {
            let _ = write!(s, " name {n}");
        }
        if r.permanent {
            s.push_str(" permanent");
        }
        if let Some(t) = r.track {
            let _ = write!(s, " track {t}");
        }
        o.line(0, s);
    }
    if !c.ip_routes.is_empty() {
        o.bang();
    }

    // Access lists
    for a in &c.access_lists {
        if a.named {
            o.line(
                0,
                format!(
                    "ip access-list {} {}",
                    if a.extended { "extended" } else { "standard" },
                    a.name
                ),
            );
            for e in &a.entries {
                o.line(1, ace(e));
            }
            o.unsupported(1, &a.unsupported);
        } else {
            for e in &a.entries {
                o.line(0, format!("access-list {} {}", a.name, ace(e)));
            }
        }
        o.bang();
    }

    // IP SLA and track
    for s in &c.ip_slas {
        o.line(0, format!("ip sla {}", s.id));
        if let Some(SlaOperation::IcmpEcho {
            destination,
            source_interface,
            source_ip,
        }) = &s.operation
        {
            let mut l = format!("icmp-echo {destination}");
            if let Some(i) = source_interface {
                let _ = write!(l, " source-interface {i}");
            }
            if let Some(a) = source_ip {
                let _ = write!(l, " source-ip {a}");
            }
            o.line(1, l);
        }
        if let Some(t) = &s.threshold {
            o.line(1, format!("threshold {}", t.as_millis()));
        }
        if let Some(t) = &s.timeout {
            o.line(1, format!("timeout {}", t.as_millis()));
        }
        if let Some(t) = &s.frequency {
            o.line(1, format!("frequency {}", secs(t)));
        }
        if let Some(n) = s.request_data_size {
            o.line(1, format!("request-data-size {n}"));
        }
        if let Some(n) = s.tos {
            o.line(1, format!("tos {n}"));
        }
        if let Some(t) = &s.tag {
            o.line(1, format!("tag {t}"));
        }
        o.unsupported(1, &s.unsupported);
        if let Some(sc) = &s.schedule {
            let mut l = format!("ip sla schedule {}", s.id);
            match &sc.life {
                None => l.push_str(" life forever"),
                Some(d) => {
                    let _ = write!(l, " life {}", secs(d));
                }
            }
            if let Some(st) = &sc.start_time {
                let _ = write!(l, " start-time {st}");
            }
            if sc.recurring {
                l.push_str(" recurring");
            }
            o.line(0, l);
        }
        o.bang();
    }
    for t in &c.tracks {
        let k = match &t.kind {
            TrackKind::IpSlaReachability(n) => format!("ip sla {n} reachability"),
            TrackKind::IpSlaState(n) => format!("ip sla {n} state"),
            TrackKind::InterfaceLineProtocol(i) => format!("interface {i} line-protocol"),
            TrackKind::InterfaceIpRouting(i) => format!("interface {i} ip routing"),
        };
        o.line(0, format!("track {} {k}", t.id));
        match (&t.delay_up, &t.delay_down) {
            (Some(u), Some(d)) => o.line(1, format!("delay up {} down {}", secs(u), secs(d))),
            (Some(u), None) => o.line(1, format!("delay up {}", secs(u))),
            (None, Some(d)) => o.line(1, format!("delay down {}", secs(d))),
            (None, None) => {}
        }
        o.unsupported(1, &t.unsupported);
        o.bang();
    }

    o.line(0, "end");
    o.s
}

fn render_interface(o: &mut Out, i: &Interface) {
    match &i.name_suffix {
        Some(s) => o.line(0, format!("interface {} {s}", i.name)),
        None => o.line(0, format!("interface {}", i.name)),
    }
    if let Some(d) = &i.device {
        o.line(1, format!("device {d}"));
    }
    if let Some(d) = &i.description {
        o.line(1, format!("description {d}"));
    }
    if let Some(b) = i.bandwidth_kbps {
        o.line(1, format!("bandwidth {b}"));
    }
    if let Some(v) = &i.vrf_forwarding {
        o.line(1, format!("ip vrf forwarding {v}"));
    }
    // IOS prints the DHCP client requests before `ip address dhcp`.
    for r in &i.dhcp_client_requests {
        let t = match r {
            DhcpClientRequest::SipServerAddress => "sip-server-address",
            DhcpClientRequest::VendorIdentifyingSpecific => "vendor-identifying-specific",
            DhcpClientRequest::Other(o) => o.as_str(),
        };
        o.line(1, format!("ip dhcp client request {t}"));
    }
    match &i.ip {
        IpAddressing::Unset => {}
        IpAddressing::NoAddress => o.line(1, "no ip address"),
        IpAddressing::Static { primary, secondary } => {
            o.line(1, format!("ip address {}", net(primary)));
            for s in secondary {
                o.line(1, format!("ip address {} secondary", net(s)));
            }
        }
        IpAddressing::Dhcp {
            client_id,
            hostname,
        } => {
            let mut s = String::from("ip address dhcp");
            if let Some(c) = client_id {
                let _ = write!(s, " client-id {c}");
            }
            if let Some(h) = hostname {
                let _ = write!(s, " hostname {h}");
            }
            o.line(1, s);
        }
        IpAddressing::Unnumbered(n) => o.line(1, format!("ip unnumbered {n}")),
    }
    for (acl, d) in &i.access_groups {
        let d = match d {
            Direction::Input => "in",
            Direction::Output => "out",
        };
        o.line(1, format!("ip access-group {acl} {d}"));
    }
    if i.no_ip_redirects {
        o.line(1, "no ip redirects");
    }
    if let Some(m) = i.ip_mtu {
        o.line(1, format!("ip mtu {m}"));
    }
    let n = &i.nhrp;
    if let Some(a) = &n.authentication {
        o.line(1, format!("ip nhrp authentication {}", a.expose()));
    }
    if let Some(g) = &n.group {
        o.line(1, format!("ip nhrp group {g}"));
    }
    for (a, b) in &n.maps {
        o.line(1, format!("ip nhrp map {a} {b}"));
    }
    for m in &n.map_multicast {
        match m {
            NhrpMulticast::Dynamic => o.line(1, "ip nhrp map multicast dynamic"),
            NhrpMulticast::Address(a) => o.line(1, format!("ip nhrp map multicast {a}")),
        }
    }
    for (g, p) in &n.map_groups {
        o.line(
            1,
            format!("ip nhrp map group {g} service-policy output {p}"),
        );
    }
    if let Some(v) = n.network_id {
        o.line(1, format!("ip nhrp network-id {v}"));
    }
    if let Some(v) = n.holdtime {
        o.line(1, format!("ip nhrp holdtime {v}"));
    }
    for a in &n.nhs {
        o.line(1, format!("ip nhrp nhs {a}"));
    }
    if let Some((p, s)) = n.max_send {
        o.line(1, format!("ip nhrp max-send {p} every {s}"));
    }
    if n.registration_no_unique {
        o.line(1, "ip nhrp registration no-unique");
    }
    if let Some(t) = n.registration_timeout {
        o.line(1, format!("ip nhrp registration timeout {t}"));
    }
    if n.redirect {
        o.line(1, "ip nhrp redirect");
    }
    if n.shortcut {
        o.line(1, "ip nhrp shortcut");
    }
    match i.nat {
        Some(NatSide::Inside) => o.line(1, "ip nat inside"),
        Some(NatSide::Outside) => o.line(1, "ip nat outside"),
        None => {}
    }
    if let Some(m) = i.tcp_adjust_mss {
        o.line(1, format!("ip tcp adjust-mss {m}"));
    }
    if let Some(l) = i.load_interval {
        o.line(1, format!("load-interval {l}"));
    }
    if let Some(d) = i.delay {
        o.line(1, format!("delay {d}"));
    }
    if i.shutdown {
        o.line(1, "shutdown");
    }
    let t = &i.tunnel;
    match &t.source {
        Some(TunnelSource::Interface(n)) => o.line(1, format!("tunnel source {n}")),
        Some(TunnelSource::Address(a)) => o.line(1, format!("tunnel source {a}")),
        None => {}
    }
    match &t.mode {
        Some(TunnelMode::GreIp) => o.line(1, "tunnel mode gre ip"),
        Some(TunnelMode::GreMultipoint) => o.line(1, "tunnel mode gre multipoint"),
        Some(TunnelMode::GreIpv6) => o.line(1, "tunnel mode gre ipv6"),
        Some(TunnelMode::IpsecIpv4) => o.line(1, "tunnel mode ipsec ipv4"),
        Some(TunnelMode::IpsecIpv6) => o.line(1, "tunnel mode ipsec ipv6"),
        Some(TunnelMode::Other(m)) => o.line(1, format!("tunnel mode {m}")),
        None => {}
    }
    match &t.destination {
        Some(TunnelDestination::Address(a)) => o.line(1, format!("tunnel destination {a}")),
        Some(TunnelDestination::Dynamic) => o.line(1, "tunnel destination dynamic"),
        Some(TunnelDestination::Hostname(h)) => o.line(1, format!("tunnel destination {h}")),
        None => {}
    }
    if let Some(k) = t.key {
        o.line(1, format!("tunnel key {k}"));
    }
    if let Some(p) = &t.protection {
        let mut s = format!("tunnel protection ipsec profile {}", p.ipsec_profile);
        if let Some(i) = &p.ikev2_profile {
            let _ = write!(s, " ikev2-profile {i}");
        }
        if p.shared {
            s.push_str(" shared");
        }
        o.line(1, s);
    }
    if let Some(v) = &i.vpn_sip {
        let mut s = format!(
            "vpn-sip local-number {} remote-number {} bandwidth {}",
            v.local_number, v.remote_number, v.bandwidth_kbps
        );
        if let Some(p) = &v.service_policy {
            let _ = write!(s, " service-policy {p}");
        }
        o.line(1, s);
    }
    if let Some(m) = &i.crypto_map {
        o.line(1, format!("crypto map {m}"));
    }
    for (d, p) in &i.service_policies {
        let d = match d {
            Direction::Input => "input",
            Direction::Output => "output",
        };
        o.line(1, format!("service-policy {d} {p}"));
    }
    o.unsupported(1, &i.unsupported);
}

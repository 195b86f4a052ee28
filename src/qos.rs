//! The configuration's MQC (`class-map`, `policy-map`, the `access-list`s they match) mapped onto
//! the data plane's [`PolicySpec`], and the egress policy of a tunnel:
//! - a static `service-policy output NAME` on a (non-VPN-SIP) tunnel is attached when the node is
//!   built ([`attach_static`]);
//! - a VPN-SIP tunnel's `vpn-sip ... service-policy NAME` becomes the child of the implicit
//!   `VPN-SIP-TunnelN-Bandwidth` shaper when the session comes up ([`vpn_sip_child`]).
//!
//! Every shaper, DRR share and `bytes output` counter is charged the outer packet's layer-3 length
//! (`dataplane::Tunnel::encap`), kept in step with the installed SA by [`refresh_encap`].
//!
//! Anything the scheduler cannot do is refused with a message naming the command (for the log and
//! the VPN-SIP failure reason), never approximated.
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use config::{AclAction, AclAddress, ClassMatch, Config, QosAction};
use dataplane::qos::spec::CLASS_DEFAULT;
use dataplane::qos::{
    Acl, AclEntry, ClassSpec, Classifier, Dscp, Match, PoliceAction, PoliceSpec, PolicySpec,
    Queueing, Rate, ShapeSpec,
};

use crate::node::Svti;

/// `policy-map NAME` (and the `service-policy CHILD` under one of its classes) as a [`PolicySpec`].
pub fn policy_spec(cfg: &Config, name: &str) -> Result<PolicySpec, String> {
    build(cfg, name, 0)
}

fn build(cfg: &Config, name: &str, depth: usize) -> Result<PolicySpec, String> {
    let pm = cfg
        .policy_map(name)
        .ok_or_else(|| format!("policy-map {name} is not defined"))?;
    let mut spec = PolicySpec::new(name);
    for cl in &pm.classes {
        let where_ = || format!("policy-map {name} class {}", cl.name);
        let classifier = if cl.name == CLASS_DEFAULT {
            Classifier::any()
        } else {
            classifier(cfg, &cl.name).map_err(|e| format!("{}: {e}", where_()))?
        };
        let mut c = ClassSpec::new(cl.name.clone(), classifier);
        for a in &cl.actions {
            action(cfg, &mut c, a, depth).map_err(|e| format!("{}: {e}", where_()))?;
        }
        spec.classes.push(c);
    }
    Ok(spec)
}

fn action(cfg: &Config, c: &mut ClassSpec, a: &QosAction, depth: usize) -> Result<(), String> {
    match a {
        QosAction::BandwidthPercent(p) => c.queueing = Queueing::Bandwidth(Rate::Percent(*p)),
        QosAction::BandwidthKbps(k) => c.queueing = Queueing::Bandwidth(Rate::Kbps(*k)),
        QosAction::Priority { kbps, percent } => {
            c.queueing = Queueing::Priority {
                rate: kbps.map(Rate::Kbps).or(percent.map(Rate::Percent)),
                burst_bytes: None,
            }
        }
        QosAction::QueueLimitPackets(n) => c.queue_limit = Some(*n),
        QosAction::Police(p) => c.police = Some(police(p)?),
        QosAction::SetDscp(w) => {
            c.set_dscp =
                Some(Dscp::from_ios(w).ok_or_else(|| format!("`set dscp {w}`: unknown DSCP"))?)
        }
        QosAction::ShapeAverage(bps) => c.shape = Some(ShapeSpec::average(*bps)),
        QosAction::ServicePolicy(child) => {
            if depth > 0 {
                return Err(format!(
                    "`service-policy {child}`: more than two levels of policy are not supported"
                ));
            }
            c.child = Some(Box::new(build(cfg, child, depth + 1)?));
        }
        QosAction::BandwidthRemainingPercent(_) => {
            return Err("`bandwidth remaining percent` is not supported".into());
        }
        QosAction::SetPrecedence(_) => {
            return Err("`set precedence` is not supported (use `set dscp`)".into());
        }
        QosAction::FairQueue => return Err("`fair-queue` is not supported".into()),
    }
    Ok(())
}

fn police(p: &config::Police) -> Result<PoliceSpec, String> {
    let act = |w: &Option<String>, default: PoliceAction, which: &str| match w {
        None => Ok(default),
        Some(w) => PoliceAction::from_ios(w).ok_or_else(|| {
            format!("`{which} {w}` is not supported (transmit, drop, set-dscp-transmit)")
        }),
    };
    let mut s = PoliceSpec::cir(p.cir_bps);
    s.bc_bytes = p.bc;
    s.be_bytes = p.be;
    s.conform = act(&p.conform_action, PoliceAction::Transmit, "conform-action")?;
    s.exceed = act(&p.exceed_action, PoliceAction::Drop, "exceed-action")?;
    s.violate = match &p.violate_action {
        None => None,
        w => Some(act(w, PoliceAction::Drop, "violate-action")?),
    };
    Ok(s)
}

fn classifier(cfg: &Config, name: &str) -> Result<Classifier, String> {
    let cm = cfg
        .qos
        .class_maps
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| format!("class-map {name} is not defined"))?;
    let mut matches = Vec::new();
    for m in &cm.matches {
        matches.push(match m {
            ClassMatch::Any => Match::Any,
            ClassMatch::Protocol(p) => Match::protocol(p)
                .ok_or_else(|| format!("`match protocol {p}` is not supported (ip, ipv6)"))?,
            ClassMatch::Dscp(words) => Match::Dscp(
                words
                    .iter()
                    .map(|w| {
                        Dscp::from_ios(w).ok_or_else(|| format!("`match dscp {w}`: unknown DSCP"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            ClassMatch::Precedence(ps) => Match::Precedence(ps.clone()),
            ClassMatch::AccessGroup(acl_name) => Match::AccessGroup(acl(cfg, acl_name)?),
        });
    }
    Ok(Classifier {
        match_any: cm.match_any,
        matches,
    })
}

/// An IPv4 access list as the classifier's [`Acl`].
fn acl(cfg: &Config, name: &str) -> Result<Acl, String> {
    let l = cfg
        .access_lists
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| format!("access-list {name} is not defined"))?;
    let mut entries = Vec::new();
    for e in &l.entries {
        let config::AclEntry::Rule {
            action,
            protocol,
            source,
            source_port,
            destination,
            destination_port,
            options,
            ..
        } = e
        else {
            continue;
        };
        let what = |x: &str| format!("access-list {name}: {x}");
        let protocol = match protocol.as_deref() {
            None | Some("ip") => None,
            Some(p) => Some(
                protocol_number(p)
                    .ok_or_else(|| what(&format!("protocol `{p}` is not supported")))?,
            ),
        };
        let mut dscp = None;
        let mut opts = options.iter();
        while let Some(o) = opts.next() {
            match o.as_str() {
                "log" | "log-input" => {}
                "dscp" => {
                    let w = opts.next().map(String::as_str).unwrap_or("");
                    dscp = Some(
                        Dscp::from_ios(w)
                            .ok_or_else(|| what(&format!("`dscp {w}`: unknown DSCP")))?,
                    );
                }
                other => {
                    return Err(what(&format!(
                        "option `{other}` is not supported in a class map"
                    )));
                }
            }
        }
        entries.push(AclEntry {
            permit: *action == AclAction::Permit,
            protocol,
            src: prefix(source).map_err(|e| what(&e))?,
            dst: match destination {
                Some(d) => prefix(d).map_err(|e| what(&e))?,
                None => (Ipv4Addr::UNSPECIFIED, 0),
            },
            src_ports: ports(source_port.as_deref()).map_err(|e| what(&e))?,
            dst_ports: ports(destination_port.as_deref()).map_err(|e| what(&e))?,
            dscp,
        });
    }
    Ok(Acl {
        name: name.to_string(),
        entries,
    })
}

fn protocol_number(p: &str) -> Option<u8> {
    Some(match p {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ahp" => 51,
        "ospf" => 89,
        "eigrp" => 88,
        other => other.parse().ok()?,
    })
}

/// `any`, `host A`, `A WILDCARD` (contiguous wildcards only) as (network, prefix length).
fn prefix(a: &AclAddress) -> Result<(Ipv4Addr, u8), String> {
    match a {
        AclAddress::Any => Ok((Ipv4Addr::UNSPECIFIED, 0)),
        AclAddress::Host(h) => Ok((*h, 32)),
        AclAddress::Wildcard(addr, w) => {
            let mask = !u32::from(*w);
            if mask.leading_ones() + mask.trailing_zeros() != 32 {
                return Err(format!(
                    "`{addr} {w}`: a non-contiguous wildcard is not supported"
                ));
            }
            Ok((
                Ipv4Addr::from(u32::from(*addr) & mask),
                u8::try_from(mask.leading_ones()).unwrap_or(32),
            ))
        }
    }
}

/// `eq P`, `range A B`, `gt P`, `lt P` (numbers or the common IOS port names).
fn ports(words: Option<&str>) -> Result<Option<RangeInclusive<u16>>, String> {
    let Some(words) = words else { return Ok(None) };
    let w: Vec<&str> = words.split_whitespace().collect();
    let port = |s: &str| port_number(s).ok_or_else(|| format!("port `{s}` is not known"));
    let r = match w.as_slice() {
        ["eq", p] => {
            let p = port(p)?;
            p..=p
        }
        ["range", a, b] => port(a)?..=port(b)?,
        ["gt", p] => port(p)?.saturating_add(1)..=u16::MAX,
        ["lt", p] => 0..=port(p)?.saturating_sub(1),
        _ => return Err(format!("port match `{words}` is not supported")),
    };
    Ok(Some(r))
}

fn port_number(s: &str) -> Option<u16> {
    Some(match s {
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "bootps" => 67,
        "bootpc" => 68,
        "tftp" => 69,
        "www" => 80,
        "ntp" => 123,
        "snmp" => 161,
        "bgp" => 179,
        "https" => 443,
        "isakmp" => 500,
        "syslog" => 514,
        "non500-isakmp" => 4500,
        "sip" => 5060,
        other => other.parse().ok()?,
    })
}

/// The child policy of a VPN-SIP tunnel's implicit shaper (`vpn-sip ... service-policy NAME`), if
/// configured.
pub fn vpn_sip_child(cfg: &Config, name: Option<&str>) -> Result<Option<PolicySpec>, String> {
    name.map(|n| policy_spec(cfg, n)).transpose()
}

/// Attaches the static `service-policy output NAME` of tunnel `i` (not on a VPN-SIP tunnel: the
/// validator refuses that, seed 002 L3131, and the session would fail). Percentages without a
/// shaper refer to the interface's `bandwidth`.
pub fn attach_static(cfg: &Config, i: &config::Interface, t: &mut Svti) -> Result<(), String> {
    let Some(name) = i.service_policy_output() else {
        return Ok(());
    };
    if i.vpn_sip.is_some() {
        return Err(format!(
            "`service-policy output {name}` is not applied on VPN-SIP tunnel {}: VPN-SIP attaches its own shaper",
            i.name
        ));
    }
    let spec = policy_spec(cfg, name)?;
    let link = i.bandwidth_kbps.map(|k| u64::from(k) * 1000);
    t.egress
        .attach_static(&spec, link)
        .map_err(|e| format!("`service-policy output {name}`: {e}"))?;
    refresh_encap(t);
    Ok(())
}

/// Charges the tunnel's attached policy with its current encapsulation (call after an SA install).
pub fn refresh_encap(t: &mut Svti) {
    let e = t.dp.lock().encap();
    t.egress.set_encap(e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn cfg(text: &str) -> Config {
        let p = config::parse(text);
        let errors: Vec<_> = p.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        p.config
    }

    fn udp(dscp: u8, dport: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[1] = dscp << 2;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, 2, 0, 1]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    const MQC: &str = "\
access-list 101 permit udp any any eq 5201
ip access-list extended VOICE
 permit udp 10.1.0.0 0.0.255.255 any range 16384 32767 dscp ef
!
class-map match-all BULK
 match access-group 101
class-map match-any RTP
 match access-group name VOICE
 match dscp ef
class-map match-all UDP
 match protocol ip
!
policy-map CHILD
 class RTP
  priority percent 20
 class BULK
  bandwidth percent 60
  queue-limit 12 packets
 class class-default
  police cir 64000 conform-action transmit exceed-action set-dscp-transmit af11
  set dscp af21
policy-map PARENT
 class class-default
  shape average 1000000
  service-policy CHILD
policy-map KBPS
 class UDP
  bandwidth 600
policy-map DEEP
 class class-default
  shape average 2000000
  service-policy PARENT
!
interface Tunnel0
 ip address 172.16.0.1 255.255.255.252
 tunnel source 198.51.100.1
 tunnel destination 198.51.100.2
 tunnel mode ipsec ipv4
 service-policy output PARENT
";

    #[test]
    fn every_mqc_action_maps_onto_the_spec() {
        let c = cfg(MQC);
        let p = policy_spec(&c, "PARENT").unwrap();
        assert_eq!(p.classes.len(), 1);
        let d = &p.classes[0];
        assert_eq!(d.shape, Some(ShapeSpec::average(1_000_000)));
        assert_eq!(d.shape.unwrap().bc_bits, 4000);
        let child = d.child.as_ref().unwrap();
        assert_eq!(child.name, "CHILD");
        let [rtp, bulk, def] = &child.classes[..] else {
            panic!("{child:?}")
        };
        assert_eq!(
            rtp.queueing,
            Queueing::Priority {
                rate: Some(Rate::Percent(20)),
                burst_bytes: None
            }
        );
        assert!(rtp.classifier.match_any);
        assert_eq!(bulk.queueing, Queueing::Bandwidth(Rate::Percent(60)));
        assert_eq!(bulk.queue_limit, Some(12));
        assert!(!bulk.classifier.match_any);
        let pol = def.police.unwrap();
        assert_eq!(pol.cir_bps, 64000);
        assert_eq!(pol.exceed, PoliceAction::SetDscpTransmit(Dscp::AF11));
        assert_eq!(def.set_dscp, Some(Dscp::AF21));
        p.validate(None).unwrap();
        // The classifiers see the packet fields the access lists name.
        assert!(bulk.classifier.matches(&udp(0, 5201, 100)));
        assert!(!bulk.classifier.matches(&udp(0, 5202, 100)));
        assert!(rtp.classifier.matches(&udp(46, 20000, 100)));
        assert!(
            rtp.classifier.matches(&udp(46, 5, 100)),
            "match-any: dscp ef alone"
        );
        assert!(!rtp.classifier.matches(&udp(0, 20000, 100)));
        let k = policy_spec(&c, "KBPS").unwrap();
        assert_eq!(k.classes[0].queueing, Queueing::Bandwidth(Rate::Kbps(600)));
    }

    #[test]
    fn what_the_scheduler_cannot_do_is_refused_with_the_command() {
        let c = cfg(MQC);
        let e = policy_spec(&c, "DEEP").unwrap_err();
        assert!(e.contains("more than two levels"), "{e}");
        assert!(policy_spec(&c, "NOPE").unwrap_err().contains("not defined"));
        let c = cfg("\
access-list 102 permit ip 10.0.0.0 0.255.0.255 any
access-list 103 permit ip 10.0.0.0 0.255.255.255 any
class-map X
 match access-group 103
class-map Y
 match access-group 102
policy-map P
 class X
  bandwidth remaining percent 10
policy-map Q
 class Y
  bandwidth percent 10
");
        assert!(
            policy_spec(&c, "P")
                .unwrap_err()
                .contains("bandwidth remaining")
        );
        let e = policy_spec(&c, "Q").unwrap_err();
        assert!(e.contains("non-contiguous wildcard"), "{e}");
    }

    #[test]
    fn static_service_policy_is_attached_to_the_tunnel_and_shapes_it() {
        let c = cfg(MQC);
        let now = Instant::now();
        let (mut node, problems) = crate::node::Node::new(now, c, 1);
        assert!(problems.is_empty(), "{problems:?}");
        let t = &mut node.tunnels[0];
        assert!(t.egress.is_attached());
        assert!(!t.egress.is_vpn_sip());
        let s = t.egress.scheduler().unwrap();
        assert_eq!(s.name(), "PARENT");
        // No SA yet: the IOS default transform, raw ESP.
        assert_eq!(s.encap().wire_len(46), 20 + 8 + 16 + 48 + 12);
        let snap = t.egress.snapshot(now + Duration::from_secs(1)).unwrap();
        let text = dataplane::qos::show::policy_map_interface("Tunnel0", &snap);
        assert!(text.contains("Service-policy output: PARENT"), "{text}");
        assert!(text.contains("Service-policy : CHILD"), "{text}");
        assert!(
            text.contains("shape (average) cir 1000000, bc 4000, be 4000"),
            "{text}"
        );
        assert!(text.contains("bandwidth 60% (600 kbps)"), "{text}");
    }
}

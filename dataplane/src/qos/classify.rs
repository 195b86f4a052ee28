//! Class-map matching over the inner packet's IP header.
//!
//! Every accessor is bounds-checked: a truncated or non-IP packet matches only `match any`.
use super::Dscp;
use core::fmt;
use core::ops::RangeInclusive;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// IP protocol numbers used by the ACL matcher.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// A caller-supplied classifier over the inner packet bytes.
pub type PacketPredicate = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// One `match` statement of a class map.
#[derive(Clone)]
pub enum Match {
    /// `match any`.
    Any,
    /// `match protocol ip`: any IPv4 packet.
    ProtocolIp,
    /// `match protocol ipv6`: any IPv6 packet.
    ProtocolIpv6,
    /// `match [ip] dscp V...`: any of the listed code points.
    Dscp(Vec<Dscp>),
    /// `match [ip] precedence N...`: any of the listed precedences (0..=7).
    Precedence(Vec<u8>),
    /// `match access-group N`: a permit by the (IPv4) access list.
    AccessGroup(Acl),
    /// A caller-supplied predicate over the inner packet bytes (e.g. an access list the appliance
    /// evaluates itself). The label is what `show` prints after `Match: `.
    Func { label: String, f: PacketPredicate },
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Func { label, .. } => write!(f, "Func({label:?})"),
            other => f.write_str(&other.show_label()),
        }
    }
}

impl Match {
    /// `match protocol NAME` for the protocol names the scheduler understands (`ip`, `ipv6`).
    pub fn protocol(name: &str) -> Option<Match> {
        match name.trim().to_ascii_lowercase().as_str() {
            "ip" => Some(Match::ProtocolIp),
            "ipv6" => Some(Match::ProtocolIpv6),
            _ => None,
        }
    }

    /// Whether the packet matches this statement.
    pub fn matches(&self, pkt: &[u8]) -> bool {
        match self {
            Match::Any => true,
            Match::ProtocolIp => ip_version(pkt) == Some(4) && pkt.len() >= 20,
            Match::ProtocolIpv6 => ip_version(pkt) == Some(6) && pkt.len() >= 40,
            Match::Dscp(list) => header_dscp(pkt).is_some_and(|d| list.contains(&d)),
            Match::Precedence(list) => {
                header_dscp(pkt).is_some_and(|d| list.contains(&d.precedence()))
            }
            Match::AccessGroup(acl) => acl.permits(pkt),
            Match::Func { f, .. } => f(pkt),
        }
    }

    /// The text IOS prints after `Match: ` (`any`, `protocol ip`, `ip dscp ef`, ...).
    pub fn show_label(&self) -> String {
        match self {
            Match::Any => "any".into(),
            Match::ProtocolIp => "protocol ip".into(),
            Match::ProtocolIpv6 => "protocol ipv6".into(),
            Match::Dscp(l) => {
                let v: Vec<String> = l.iter().map(|d| d.ios_name()).collect();
                format!("ip dscp {}", v.join(" "))
            }
            Match::Precedence(l) => {
                let v: Vec<String> = l.iter().map(|p| p.to_string()).collect();
                format!("ip precedence {}", v.join(" "))
            }
            Match::AccessGroup(acl) => format!("access-group {}", acl.name),
            Match::Func { label, .. } => label.clone(),
        }
    }
}

/// `class-map [match-all|match-any]`: the combination of `match` statements.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// `true` = `match-any`, `false` = `match-all` (the IOS default).
    pub match_any: bool,
    pub matches: Vec<Match>,
}

impl Classifier {
    /// The classifier of `class-default`: `match-any` / `match any`.
    pub fn any() -> Self {
        Classifier {
            match_any: true,
            matches: vec![Match::Any],
        }
    }

    /// Whether the packet belongs to the class. A class map without `match` statements matches
    /// nothing.
    pub fn matches(&self, pkt: &[u8]) -> bool {
        if self.matches.is_empty() {
            return false;
        }
        if self.match_any {
            self.matches.iter().any(|m| m.matches(pkt))
        } else {
            self.matches.iter().all(|m| m.matches(pkt))
        }
    }
}

/// A minimal extended IPv4 access list: first matching entry wins, implicit deny at the end.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// Number or name, as `show` prints it.
    pub name: String,
    pub entries: Vec<AclEntry>,
}

/// `permit|deny PROTO SRC [ports] DST [ports] [dscp D]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub permit: bool,
    /// `None` = `ip` (any protocol).
    pub protocol: Option<u8>,
    /// Source prefix (address, prefix length); `(0.0.0.0, 0)` = `any`.
    pub src: (Ipv4Addr, u8),
    pub dst: (Ipv4Addr, u8),
    /// TCP/UDP source port range; only TCP/UDP packets (first fragments) can match when set.
    pub src_ports: Option<RangeInclusive<u16>>,
    pub dst_ports: Option<RangeInclusive<u16>>,
    pub dscp: Option<Dscp>,
}

impl AclEntry {
    /// `permit ip any any`.
    pub fn permit_any() -> Self {
        AclEntry {
            permit: true,
            protocol: None,
            src: (Ipv4Addr::UNSPECIFIED, 0),
            dst: (Ipv4Addr::UNSPECIFIED, 0),
            src_ports: None,
            dst_ports: None,
            dscp: None,
        }
    }

    fn matches(&self, h: &Ipv4Fields) -> bool {
        if self.protocol.is_some_and(|p| p != h.protocol) {
            return false;
        }
        if !prefix_contains(self.src, h.src) || !prefix_contains(self.dst, h.dst) {
            return false;
        }
        if self.dscp.is_some_and(|d| d != h.dscp) {
            return false;
        }
        if self.src_ports.is_some() || self.dst_ports.is_some() {
            let Some((sp, dp)) = h.ports else {
                return false;
            };
            if self.src_ports.as_ref().is_some_and(|r| !r.contains(&sp))
                || self.dst_ports.as_ref().is_some_and(|r| !r.contains(&dp))
            {
                return false;
            }
        }
        true
    }
}

impl Acl {
    /// Whether the access list permits the (IPv4) packet. Non-IPv4 packets are denied.
    pub fn permits(&self, pkt: &[u8]) -> bool {
        let Some(h) = Ipv4Fields::parse(pkt) else {
            return false;
        };
        self.entries
            .iter()
            .find(|e| e.matches(&h))
            .is_some_and(|e| e.permit)
    }
}

fn prefix_contains((net, len): (Ipv4Addr, u8), addr: Ipv4Addr) -> bool {
    let len = u32::from(len.min(32));
    if len == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - len);
    (u32::from(net) & mask) == (u32::from(addr) & mask)
}

struct Ipv4Fields {
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dscp: Dscp,
    ports: Option<(u16, u16)>,
}

impl Ipv4Fields {
    fn parse(p: &[u8]) -> Option<Self> {
        if ip_version(p) != Some(4) || p.len() < 20 {
            return None;
        }
        let ihl = usize::from(p.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        let protocol = *p.get(9)?;
        let src = Ipv4Addr::new(*p.get(12)?, *p.get(13)?, *p.get(14)?, *p.get(15)?);
        let dst = Ipv4Addr::new(*p.get(16)?, *p.get(17)?, *p.get(18)?, *p.get(19)?);
        let frag_offset = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]) & 0x1fff;
        let ports = if frag_offset == 0 && (protocol == PROTO_TCP || protocol == PROTO_UDP) {
            p.get(ihl..ihl + 4).map(|b| {
                (
                    u16::from_be_bytes([b[0], b[1]]),
                    u16::from_be_bytes([b[2], b[3]]),
                )
            })
        } else {
            None
        };
        Some(Ipv4Fields {
            protocol,
            src,
            dst,
            dscp: Dscp(p.get(1)? >> 2),
            ports,
        })
    }
}

/// IP version nibble of the first byte.
#[inline]
pub(crate) fn ip_version(pkt: &[u8]) -> Option<u8> {
    pkt.first().map(|b| b >> 4)
}

/// DSCP of an IPv4 (TOS byte) or IPv6 (traffic class) header.
pub(crate) fn header_dscp(pkt: &[u8]) -> Option<Dscp> {
    match ip_version(pkt)? {
        4 if pkt.len() >= 20 => Some(Dscp(pkt.get(1)? >> 2)),
        6 if pkt.len() >= 40 => {
            let tc = ((pkt.first()? & 0x0f) << 4) | (pkt.get(1)? >> 4);
            Some(Dscp(tc >> 2))
        }
        _ => None,
    }
}

/// Rewrites the DSCP, keeping ECN; IPv4 header checksum updated incrementally.
pub(crate) fn set_header_dscp(pkt: &mut [u8], dscp: Dscp) -> bool {
    let d = dscp.0 & 0x3f;
    match ip_version(pkt) {
        Some(4) if pkt.len() >= 20 => {
            let old_word = u16::from_be_bytes([pkt[0], pkt[1]]);
            pkt[1] = (d << 2) | (pkt[1] & 0x03);
            let new_word = u16::from_be_bytes([pkt[0], pkt[1]]);
            //= https://www.rfc-editor.org/rfc/rfc1624#section-3
            //# HC' = ~(~HC + ~m + m')
            let hc = u16::from_be_bytes([pkt[10], pkt[11]]);
            let mut sum = u32::from(!hc) + u32::from(!old_word) + u32::from(new_word);
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            let new_hc = !(sum as u16);
            pkt[10..12].copy_from_slice(&new_hc.to_be_bytes());
            true
        }
        Some(6) if pkt.len() >= 40 => {
            let tc = ((pkt[0] & 0x0f) << 4) | (pkt[1] >> 4);
            let tc = (d << 2) | (tc & 0x03);
            pkt[0] = (pkt[0] & 0xf0) | (tc >> 4);
            pkt[1] = (pkt[1] & 0x0f) | (tc << 4);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(tos: u8, proto: u8, src: [u8; 4], dst: [u8; 4], ports: (u16, u16)) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[1] = tos;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&ports.0.to_be_bytes());
        p[22..24].copy_from_slice(&ports.1.to_be_bytes());
        let ck = checksum(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p
    }

    fn checksum(h: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in h.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn dscp_names_round_trip() {
        assert_eq!(Dscp::from_ios("cs4"), Some(Dscp::CS4));
        assert_eq!(Dscp::from_ios("EF"), Some(Dscp(46)));
        assert_eq!(Dscp::from_ios("46"), Some(Dscp::EF));
        assert_eq!(Dscp::from_ios("64"), None);
        assert_eq!(Dscp::CS4.ios_name(), "cs4");
        assert_eq!(Dscp(1).ios_name(), "1");
    }

    #[test]
    fn set_dscp_keeps_ecn_and_fixes_ipv4_checksum() {
        for tos in [0u8, 0x01, 0x02, 0x03, 0xb8, 0xff] {
            let mut p = ipv4(tos, 17, [10, 0, 0, 1], [10, 0, 0, 2], (1, 2));
            assert!(set_header_dscp(&mut p, Dscp::CS4));
            assert_eq!(p[1], 0x80 | (tos & 3));
            assert_eq!(checksum(&p[..20]), 0, "tos {tos:#x}");
        }
    }

    #[test]
    fn set_dscp_on_ipv6_traffic_class() {
        let mut p = vec![0u8; 40];
        p[0] = 0x6b; // version 6, tc high nibble 0xb
        p[1] = 0x9f; // tc low nibble 0x9 (ECN 01), flow label bits
        assert_eq!(header_dscp(&p), Some(Dscp(0xb9 >> 2)));
        assert!(set_header_dscp(&mut p, Dscp::EF));
        assert_eq!(header_dscp(&p), Some(Dscp::EF));
        assert_eq!(p[1] & 0x3f, 0x1f, "ECN and flow label kept");
    }

    #[test]
    fn truncated_and_non_ip_packets_match_only_any() {
        let all = [
            Match::ProtocolIp,
            Match::Dscp(vec![Dscp(0)]),
            Match::Precedence(vec![0]),
            Match::AccessGroup(Acl {
                name: "1".into(),
                entries: vec![AclEntry::permit_any()],
            }),
        ];
        for pkt in [&[][..], &[0x45][..], &[0x45; 19][..], &[0x10; 40][..]] {
            for m in &all {
                assert!(!m.matches(pkt), "{m:?} {pkt:?}");
            }
            assert!(Match::Any.matches(pkt));
        }
    }

    #[test]
    fn acl_first_match_wins_with_implicit_deny() {
        let acl = Acl {
            name: "100".into(),
            entries: vec![
                AclEntry {
                    permit: false,
                    protocol: Some(PROTO_UDP),
                    src: (Ipv4Addr::UNSPECIFIED, 0),
                    dst: (Ipv4Addr::new(10, 0, 0, 0), 8),
                    src_ports: None,
                    dst_ports: Some(5060..=5061),
                    dscp: None,
                },
                AclEntry {
                    permit: true,
                    protocol: Some(PROTO_UDP),
                    src: (Ipv4Addr::new(192, 168, 1, 0), 24),
                    dst: (Ipv4Addr::UNSPECIFIED, 0),
                    src_ports: None,
                    dst_ports: Some(16384..=32767),
                    dscp: None,
                },
            ],
        };
        let rtp = ipv4(0, 17, [192, 168, 1, 5], [10, 1, 1, 1], (4000, 20000));
        let sip = ipv4(0, 17, [192, 168, 1, 5], [10, 1, 1, 1], (4000, 5060));
        let other = ipv4(0, 6, [192, 168, 1, 5], [10, 1, 1, 1], (4000, 20000));
        let outside = ipv4(0, 17, [192, 168, 2, 5], [10, 1, 1, 1], (4000, 20000));
        assert!(acl.permits(&rtp));
        assert!(!acl.permits(&sip));
        assert!(!acl.permits(&other));
        assert!(!acl.permits(&outside));
    }

    #[test]
    fn match_all_needs_every_statement_match_any_one() {
        let ef = ipv4(Dscp::EF.0 << 2, 17, [1, 1, 1, 1], [2, 2, 2, 2], (1, 2));
        let both = [Match::ProtocolIp, Match::Dscp(vec![Dscp::EF])];
        let all = Classifier {
            match_any: false,
            matches: both.to_vec(),
        };
        assert!(all.matches(&ef));
        let be = ipv4(0, 17, [1, 1, 1, 1], [2, 2, 2, 2], (1, 2));
        assert!(!all.matches(&be));
        let any = Classifier {
            match_any: true,
            matches: both.to_vec(),
        };
        assert!(any.matches(&be));
        assert!(Match::Precedence(vec![5]).matches(&ef));
        assert!(
            !Classifier {
                match_any: false,
                matches: vec![]
            }
            .matches(&ef)
        );
    }
}

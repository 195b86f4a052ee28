//! Text for `show crypto ipsec sa` and `show interfaces TunnelN`, in the seeds' formats
//! (seed-ipsec-vti §3.4 and §3.8). The appliance supplies what the data plane does not know (crypto
//! map tag, profile name, PFS/DH group, interface names).

use crate::crypto::Integ;
use crate::sa::Mode;
use crate::tunnel::{SaSnapshot, TunnelSnapshot, TunnelState};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Names and values from outside the data plane.
#[derive(Debug, Clone)]
pub struct ShowContext<'a> {
    /// `Tunnel0`.
    pub interface: &'a str,
    /// `Tunnel0-head-0`.
    pub crypto_map_tag: &'a str,
    /// IPsec profile name (`show interfaces`: `Tunnel protection via IPsec (profile "P1")`).
    pub profile: &'a str,
    /// Egress interface for `ip mtu idb` (`Ethernet0/0`).
    pub egress_interface: &'a str,
    /// `PFS (Y/N): N, DH group: none`.
    pub pfs_group: Option<u16>,
    /// First `conn id`/`flow_id` number to print (IOS numbers SAs globally).
    pub first_conn_id: u32,
}

fn ident_any(a: Option<IpAddr>) -> &'static str {
    match a {
        Some(IpAddr::V6(_)) => "(::/0/0/0)",
        _ => "(0.0.0.0/0.0.0.0/0/0)",
    }
}

fn transform(sa: &SaSnapshot) -> String {
    match sa.integ {
        Some(i) => format!("{} {}", sa.encr.ios_name(), Integ::ios_name(i)),
        None => sa.encr.ios_name(),
    }
}

fn sa_block(out: &mut String, sa: &SaSnapshot, udp: bool, conn_id: u32, ctx: &ShowContext<'_>) {
    let mode = match (sa.mode, udp) {
        (Mode::Tunnel, false) => "Tunnel, ",
        (Mode::Tunnel, true) => "Tunnel UDP-Encaps, ",
        (Mode::Transport, false) => "Transport, ",
        (Mode::Transport, true) => "Transport UDP-Encaps, ",
    };
    let kb = sa.remaining_kb.map_or("-".to_owned(), |v| v.to_string());
    let secs = sa.remaining_secs.map_or("-".to_owned(), |v| v.to_string());
    let _ = writeln!(out, " spi: 0x{:08X}({})", sa.spi, sa.spi);
    let _ = writeln!(out, "  transform: {} ,", transform(sa));
    let _ = writeln!(out, "  in use settings ={{{mode}}}");
    let _ = writeln!(
        out,
        "  conn id: {conn_id}, flow_id: {conn_id}, sibling_flags FFFFFFFF80000040, crypto map: {}",
        ctx.crypto_map_tag
    );
    let _ = writeln!(
        out,
        "  sa timing: remaining key lifetime (k/sec): ({kb}/{secs})"
    );
    let _ = writeln!(out, "  IV size: {} bytes", sa.iv_size);
    let replay = if sa.replay_window.is_some() { "Y" } else { "N" };
    let _ = writeln!(out, "  replay detection support: {replay}");
    let _ = writeln!(out, "  Status: ACTIVE(ACTIVE)");
    out.push('\n');
}

/// The `interface: TunnelN` section of `show crypto ipsec sa`.
pub fn render_crypto_ipsec_sa(s: &TunnelSnapshot, ctx: &ShowContext<'_>) -> String {
    let mut out = String::new();
    let c = &s.counters;
    let peer = s
        .destination
        .map_or("0.0.0.0".to_owned(), |a| a.to_string());
    let peer_port = s.udp_encap.map_or(500, |u| u.remote);
    let _ = writeln!(out, "interface: {}", ctx.interface);
    let _ = writeln!(
        out,
        "  Crypto map tag: {}, local addr {}",
        ctx.crypto_map_tag, s.source
    );
    out.push('\n');
    let _ = writeln!(out, "  protected vrf: (none)");
    let _ = writeln!(
        out,
        "  local ident (addr/mask/prot/port): {}",
        ident_any(Some(s.source))
    );
    let _ = writeln!(
        out,
        "  remote ident (addr/mask/prot/port): {}",
        ident_any(s.destination)
    );
    let _ = writeln!(out, "  current_peer {peer} port {peer_port}");
    let _ = writeln!(out, "    PERMIT, flags={{origin_is_acl,}}");
    let _ = writeln!(
        out,
        "    #pkts encaps: {0}, #pkts encrypt: {0}, #pkts digest: {0}",
        c.encaps
    );
    let _ = writeln!(
        out,
        "    #pkts decaps: {0}, #pkts decrypt: {0}, #pkts verify: {0}",
        c.decaps
    );
    let _ = writeln!(out, "    #pkts compressed: 0, #pkts decompressed: 0");
    let _ = writeln!(out, "    #pkts not compressed: 0, #pkts compr. failed: 0");
    let _ = writeln!(
        out,
        "    #pkts not decompressed: 0, #pkts decompress failed: 0"
    );
    let _ = writeln!(
        out,
        "    #send errors {}, #recv errors {}",
        c.send_errors, c.recv_errors
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "  local crypto endpt.: {}, remote crypto endpt.: {peer}",
        s.source
    );
    let (mtu_kw, idb_kw) = if s.source.is_ipv6() {
        ("ipv6 mtu", "ipv6 mtu idb")
    } else {
        ("ip mtu", "ip mtu idb")
    };
    let _ = writeln!(
        out,
        "  plaintext mtu {}, path mtu {}, {mtu_kw} {}, {idb_kw} {}",
        s.plaintext_mtu, s.path_mtu, s.path_mtu, ctx.egress_interface
    );
    let _ = writeln!(
        out,
        "  current outbound spi: 0x{:X}({})",
        s.outbound.as_ref().map_or(0, |o| o.spi),
        s.outbound.as_ref().map_or(0, |o| o.spi)
    );
    match ctx.pfs_group {
        Some(g) => {
            let _ = writeln!(out, "  PFS (Y/N): Y, DH group: group{g}");
        }
        None => {
            let _ = writeln!(out, "  PFS (Y/N): N, DH group: none");
        }
    }
    out.push('\n');
    let udp = s.udp_encap.is_some();
    let mut conn = ctx.first_conn_id;
    out.push_str("  inbound esp sas:\n");
    for sa in &s.inbound {
        sa_block(&mut out, sa, udp, conn, ctx);
        conn += 1;
    }
    out.push_str("  inbound ah sas:\n\n  inbound pcp sas:\n\n  outbound esp sas:\n");
    if let Some(sa) = &s.outbound {
        sa_block(&mut out, sa, udp, conn, ctx);
    }
    out.push_str("  outbound ah sas:\n\n  outbound pcp sas:\n");
    out
}

/// The tunnel-specific lines of `show interfaces TunnelN` (seed-ipsec-vti §3.2, IOS XE additions
/// `Tunnel transport MTU`). The MTU line shows the effective tunnel IP MTU.
pub fn render_interface_tunnel(s: &TunnelSnapshot, ctx: &ShowContext<'_>) -> String {
    let mut out = String::new();
    let line = match s.state {
        TunnelState::Up => "up",
        TunnelState::Idle | TunnelState::Acquiring => "down",
    };
    let _ = writeln!(out, "{} is up, line protocol is {line}", ctx.interface);
    out.push_str("  Hardware is Tunnel\n");
    let _ = writeln!(
        out,
        "  MTU {} bytes, BW 100 Kbit/sec, DLY 50000 usec,",
        s.ip_mtu
    );
    out.push_str("  Encapsulation TUNNEL, loopback not set\n  Keepalive not set\n");
    let dst = s
        .destination
        .map_or("dynamic".to_owned(), |a| a.to_string());
    let _ = writeln!(out, "  Tunnel source {}, destination {dst}", s.source);
    out.push_str("  Tunnel protocol/transport ipsec/ip, key disabled, sequencing disabled\n");
    out.push_str("  Tunnel TTL 255\n");
    let _ = writeln!(out, "  Tunnel transport MTU {} bytes", s.path_mtu);
    let _ = writeln!(
        out,
        "  Tunnel protection via IPsec (profile \"{}\")",
        ctx.profile
    );
    let drops: u64 = s.drops.iter().sum();
    let _ = writeln!(
        out,
        "  Input queue: 0/75/0/0 (size/max/drops/flushes); Total output drops: {drops}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DropReason;
    use crate::crypto::{AesKeyLen, Encr};
    use crate::sa::SaCounters;
    use crate::tunnel::{DfBit, TunnelCounters};
    use std::net::Ipv4Addr;

    fn snap() -> TunnelSnapshot {
        let sa = |spi| SaSnapshot {
            spi,
            encr: Encr::AesCbc(AesKeyLen::Aes128),
            integ: Some(Integ::HmacSha1_96),
            mode: Mode::Tunnel,
            iv_size: 16,
            replay_window: Some(64),
            remaining_kb: Some(4_377_587),
            remaining_secs: Some(76),
            counters: SaCounters::default(),
        };
        TunnelSnapshot {
            id: 0,
            source: IpAddr::V4(Ipv4Addr::new(10, 10, 10, 1)),
            destination: Some(IpAddr::V4(Ipv4Addr::new(10, 10, 10, 2))),
            udp_encap: None,
            state: TunnelState::Up,
            path_mtu: 1500,
            plaintext_mtu: 1438,
            ip_mtu: 1438,
            df_bit: DfBit::Copy,
            queue_len: 0,
            outbound: Some(sa(0x4776_A36B)),
            inbound: vec![sa(0xA97E_DEE7)],
            counters: TunnelCounters::default(),
            drops: [0; DropReason::COUNT],
        }
    }

    fn ctx() -> ShowContext<'static> {
        ShowContext {
            interface: "Tunnel0",
            crypto_map_tag: "Tunnel0-head-0",
            profile: "prof",
            egress_interface: "Ethernet0/0",
            pfs_group: None,
            first_conn_id: 4,
        }
    }

    #[test]
    fn crypto_ipsec_sa_has_seed_lines() {
        let s = render_crypto_ipsec_sa(&snap(), &ctx());
        for want in [
            "interface: Tunnel0",
            "  Crypto map tag: Tunnel0-head-0, local addr 10.10.10.1",
            "  local ident (addr/mask/prot/port): (0.0.0.0/0.0.0.0/0/0)",
            "  current_peer 10.10.10.2 port 500",
            "    #pkts encaps: 0, #pkts encrypt: 0, #pkts digest: 0",
            "    #pkts decaps: 0, #pkts decrypt: 0, #pkts verify: 0",
            "    #send errors 0, #recv errors 0",
            "  local crypto endpt.: 10.10.10.1, remote crypto endpt.: 10.10.10.2",
            "  plaintext mtu 1438, path mtu 1500, ip mtu 1500, ip mtu idb Ethernet0/0",
            "  current outbound spi: 0x4776A36B(1198957419)",
            " spi: 0xA97EDEE7(2843664103)",
            "  transform: esp-aes esp-sha-hmac ,",
            "  in use settings ={Tunnel, }",
            "  sa timing: remaining key lifetime (k/sec): (4377587/76)",
            "  IV size: 16 bytes",
            "  replay detection support: Y",
            "  Status: ACTIVE(ACTIVE)",
        ] {
            assert!(s.lines().any(|l| l == want), "missing {want:?} in\n{s}");
        }
        let inbound = s.find("inbound esp sas").unwrap();
        let outbound = s.find("outbound esp sas").unwrap();
        assert!(s[inbound..outbound].contains("0xA97EDEE7"));
        assert!(s[outbound..].contains("0x4776A36B"));
    }

    #[test]
    fn interface_tunnel_shows_mtus_and_protection() {
        let s = render_interface_tunnel(&snap(), &ctx());
        assert!(s.contains("Tunnel0 is up, line protocol is up"));
        assert!(s.contains("  MTU 1438 bytes"));
        assert!(s.contains("  Tunnel transport MTU 1500 bytes"));
        assert!(s.contains("  Tunnel protocol/transport ipsec/ip"));
        assert!(s.contains("  Tunnel protection via IPsec (profile \"prof\")"));
    }
}

//! `show crypto isakmp sa [detail]` (IKEv1) and the IKEv1 part of `show crypto session`.
//!
//! The plain form is the IOS 15.x layout of the seed digest `seed-dmvpn.md` §3.7 (b) (seed 003 lines
//! 264-289): section headers, `dst src state conn-id status`, `dst` = the responder. The seeds have no
//! `detail` sample; its layout is the IOS 15.x one ([ext]: legend, `C-id Local Remote I-VRF Status Encr
//! Hash Auth DH Lifetime Cap.`, the `Engine-id:Conn-id` line), fed from the same snapshot.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ike::v1::{HashAlg, IsakmpSaSnapshot};
use ike::{EncrAlg, IkeSaSnapshot};

use crate::node::Node;
use crate::show::vpnsip::hms;

/// One ISAKMP SA as `show crypto isakmp sa [detail] --json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IsakmpSaView {
    pub conn_id: u64,
    /// The responder's address.
    pub dst: SocketAddr,
    /// The initiator's address.
    pub src: SocketAddr,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: String,
    pub status: String,
    /// `Encr` (`aes`), with the key length in bits.
    pub encr: Option<String>,
    pub key_bits: Option<u16>,
    pub hash: Option<String>,
    /// `psk` or `rsig`.
    pub auth: String,
    pub dh_group: Option<u16>,
    /// Time left of the ISAKMP SA lifetime (`Lifetime`).
    pub lifetime_left_s: u64,
    /// `Cap.`: `D` (DPD), `N` (NAT-T).
    pub capabilities: String,
}

fn encr(e: EncrAlg) -> (&'static str, u16) {
    match e {
        EncrAlg::AesCbc128 => ("aes", 128),
        EncrAlg::AesCbc192 => ("aes", 192),
        EncrAlg::AesCbc256 => ("aes", 256),
        EncrAlg::AesGcm16_128 => ("aes-gcm", 128),
        EncrAlg::AesGcm16_256 => ("aes-gcm", 256),
    }
}

fn hash(h: HashAlg) -> &'static str {
    match h {
        HashAlg::Sha1 => "sha",
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    }
}

/// A view of one endpoint snapshot entry.
pub fn view(s: &IsakmpSaSnapshot) -> IsakmpSaView {
    let (local, remote) = if s.initiator {
        (s.src, s.dst)
    } else {
        (s.dst, s.src)
    };
    IsakmpSaView {
        conn_id: s.conn_id,
        dst: s.dst,
        src: s.src,
        local,
        remote,
        state: s.state.to_string(),
        status: s.status.to_string(),
        encr: s.encr.map(|e| encr(e).0.to_string()),
        key_bits: s.encr.map(|e| encr(e).1),
        hash: s.hash.map(|h| hash(h).to_string()),
        auth: s.auth.to_string(),
        dh_group: s.dh_group,
        lifetime_left_s: s.remaining.as_secs(),
        capabilities: s.capabilities.clone(),
    }
}

/// Every ISAKMP SA of the node, in conn-id order.
pub fn views(node: &Node, now: Instant) -> Vec<IsakmpSaView> {
    let mut v: Vec<IsakmpSaView> = node
        .ikev1
        .as_ref()
        .map(|e| e.snapshot(now).iter().map(view).collect())
        .unwrap_or_default();
    v.sort_by_key(|s| s.conn_id);
    v
}

/// `show crypto isakmp sa` (IOS 15.x, seed digest §3.7 (b)).
pub fn isakmp_sa(sas: &[IsakmpSaView]) -> String {
    let mut s = String::from("IPv4 Crypto ISAKMP SA\n");
    s.push_str(
        "dst                    src                   state                     conn-id  status\n",
    );
    for sa in sas {
        let _ = writeln!(
            s,
            "{:<15} {:<15} {:<17} {:<8} {}",
            sa.dst.ip(),
            sa.src.ip(),
            sa.state,
            sa.conn_id,
            sa.status
        );
    }
    s.push_str("\nIPv6 Crypto ISAKMP SA\n");
    s
}

const DETAIL_LEGEND: &str = "\
Codes: C - IKE configuration mode, D - Dead Peer Detection
       K - Keepalives, N - NAT-traversal
       T - cTCP encapsulation, X - IKE Extended Authentication
       psk - Preshared key, rsig - RSA signature
       renc - RSA encryption
";

/// `show crypto isakmp sa detail`.
pub fn isakmp_sa_detail(sas: &[IsakmpSaView]) -> String {
    let mut s = String::from(DETAIL_LEGEND);
    s.push_str("IPv4 Crypto ISAKMP SA\n\n");
    s.push_str(
        "C-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap.\n\n",
    );
    for sa in sas {
        let _ = writeln!(
            s,
            "{:<5} {:<15} {:<15} {:<6} {:<6} {:<4} {:<6} {:<4} {:<2} {} {}",
            sa.conn_id,
            sa.local.ip(),
            sa.remote.ip(),
            "",
            sa.status,
            sa.encr.as_deref().unwrap_or(""),
            sa.hash.as_deref().unwrap_or(""),
            sa.auth,
            sa.dh_group.map(|g| g.to_string()).unwrap_or_default(),
            hms(Duration::from_secs(sa.lifetime_left_s)),
            sa.capabilities
        );
        let _ = writeln!(
            s,
            "       Engine-id:Conn-id =  SW:{}\n",
            sa.conn_id.saturating_sub(1000)
        );
    }
    s.push_str("IPv6 Crypto ISAKMP SA\n");
    s
}

/// An ISAKMP SA in the shape `show crypto session` takes (`IKE SA:` line, status, capabilities,
/// lifetime): `READY` once in QM_IDLE, `IN-NEG` before.
pub fn as_session_sa(s: &IsakmpSaSnapshot) -> IkeSaSnapshot {
    let v = view(s);
    IkeSaSnapshot {
        id: s.id,
        local: v.local,
        remote: v.remote,
        status: if s.state == "QM_IDLE" {
            "READY"
        } else {
            "IN-NEG"
        },
        initiator: s.initiator,
        spi_i: 0,
        spi_r: 0,
        encr: s.encr,
        prf: None,
        integ: None,
        dh: None,
        auth: s.auth,
        lifetime: s.lifetime,
        active: s.active,
        profile: String::new(),
        local_id: ike::Identity::Ipv4(match v.local.ip() {
            std::net::IpAddr::V4(a) => a,
            std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        }),
        peer_id: s.peer_id.clone(),
        nat_t: s.capabilities.contains('N'),
        capabilities: s.capabilities.clone(),
        dpd: None,
        fragmentation: false,
        local_next_msg_id: 0,
        remote_next_msg_id: 0,
        children: s.children.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whitespace runs collapsed, blank lines dropped (the seeds' PDF spacing is not reliable).
    fn masked(s: &str) -> String {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sa(conn_id: u64, dst: &str, src: &str, initiator: bool) -> IsakmpSaView {
        let d: SocketAddr = format!("{dst}:500").parse().unwrap();
        let s: SocketAddr = format!("{src}:500").parse().unwrap();
        let (local, remote) = if initiator { (s, d) } else { (d, s) };
        IsakmpSaView {
            conn_id,
            dst: d,
            src: s,
            local,
            remote,
            state: "QM_IDLE".into(),
            status: "ACTIVE".into(),
            encr: Some("aes".into()),
            key_bits: Some(256),
            hash: Some("sha".into()),
            auth: "psk".into(),
            dh_group: Some(14),
            lifetime_left_s: 86_346,
            capabilities: "D".into(),
        }
    }

    /// seed 003 lines 273-280 (DMVPN-SPOKE-1), the digest's §3.7 (b) second sample.
    #[test]
    fn plain_form_matches_the_seed_sample() {
        let seed = "IPv4 Crypto ISAKMP SA
dst                    src                   state                     conn-id  status
192.168.1.1     192.168.1.2     QM_IDLE           1002     ACTIVE
192.168.1.2     192.168.1.1     QM_IDLE           1003     ACTIVE
192.168.1.3     192.168.1.1     QM_IDLE           1001     ACTIVE

IPv6 Crypto ISAKMP SA
";
        let rows = [
            sa(1002, "192.168.1.1", "192.168.1.2", false),
            sa(1003, "192.168.1.2", "192.168.1.1", true),
            sa(1001, "192.168.1.3", "192.168.1.1", true),
        ];
        let out = isakmp_sa(&rows);
        assert_eq!(masked(&out), masked(seed));
        // Column starts as in the seed's header: exact text, not only the words.
        assert_eq!(out, seed);
    }

    #[test]
    fn detail_form_has_the_ios_columns() {
        let out = isakmp_sa_detail(&[sa(1001, "192.168.1.3", "192.168.1.1", true)]);
        let expected = "\
Codes: C - IKE configuration mode, D - Dead Peer Detection
       K - Keepalives, N - NAT-traversal
       T - cTCP encapsulation, X - IKE Extended Authentication
       psk - Preshared key, rsig - RSA signature
       renc - RSA encryption
IPv4 Crypto ISAKMP SA

C-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap.

1001  192.168.1.1     192.168.1.3            ACTIVE aes  sha    psk  14 23:59:06 D
       Engine-id:Conn-id =  SW:1

IPv6 Crypto ISAKMP SA
";
        assert_eq!(out, expected);
    }

    #[test]
    fn json_has_every_field() {
        let v = serde_json::to_value([sa(1001, "192.168.1.3", "192.168.1.1", true)]).unwrap();
        for k in [
            "conn_id",
            "dst",
            "src",
            "local",
            "remote",
            "state",
            "status",
            "encr",
            "key_bits",
            "hash",
            "auth",
            "dh_group",
            "lifetime_left_s",
            "capabilities",
        ] {
            assert!(v[0].get(k).is_some(), "{k} missing in {v}");
        }
    }
}

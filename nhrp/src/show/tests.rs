use super::*;
use crate::cache::{EntryFlags, Prefix};
use crate::testutil::{ip, normalise, t0};

fn entry(
    proto: &str,
    nbma: &str,
    kind: EntryType,
    flags: EntryFlags,
    now: Instant,
    hold: Option<u64>,
) -> Entry {
    Entry {
        prefix: Prefix::host(ip(proto)),
        via: ip(proto),
        nbma: Some(ip(nbma)),
        claimed_nbma: None,
        kind,
        flags,
        created: now,
        expires: hold.map(|h| now + Duration::from_secs(h)),
    }
}

fn snap(interface: &str, role: Role, entries: Vec<Entry>) -> Snapshot {
    Snapshot {
        interface: interface.into(),
        tunnel_addr: ip("10.0.0.11"),
        nbma_addr: ip("172.17.0.11"),
        role,
        protect: None,
        entries,
        nhs: vec![],
        traffic: Traffic::default(),
        max_send: (100, Duration::from_secs(10)),
        usage_percent: 0,
        post_nat_nbma: None,
        drops: Default::default(),
    }
}

/// seed-dmvpn §3.2 (a), seed `001` lines 3564-3576.
#[test]
fn show_ip_nhrp_matches_spoke_sample() {
    let now = t0();
    let used = EntryFlags {
        used: true,
        ..Default::default()
    };
    let router = EntryFlags {
        router: true,
        ..Default::default()
    };
    let t0s = snap(
        "Tunnel0",
        Role::Spoke,
        vec![
            entry("10.0.0.1", "172.17.0.1", EntryType::Static, used, now, None),
            entry(
                "10.0.0.12",
                "172.17.0.12",
                EntryType::Dynamic,
                router,
                now,
                Some(112),
            ),
        ],
    );
    let t1s = snap(
        "Tunnel1",
        Role::Spoke,
        vec![
            entry("10.0.1.1", "172.17.0.5", EntryType::Static, used, now, None),
            entry(
                "10.0.1.12",
                "172.17.0.12",
                EntryType::Dynamic,
                router,
                now,
                Some(297),
            ),
        ],
    );
    let got = show_ip_nhrp(&[&t0s, &t1s], now + Duration::from_secs(2));
    let seed = "10.0.0.1/32 via 10.0.0.1, Tunnel0 created 00:06:52, never expire
  Type: static, Flags: used
  NBMA address: 172.17.0.1
10.0.0.12/32 via 10.0.0.12, Tunnel0 created 00:03:17, expire 00:01:52
  Type: dynamic, Flags: router
  NBMA address: 172.17.0.12
10.0.1.1/32 via 10.0.1.1, Tunnel1 created 00:13:45, never expire
  Type: static, Flags: used
  NBMA address: 172.17.0.5
10.0.1.12/32 via 10.0.1.12, Tunnel1 created 00:00:02, expire 00:04:57
  Type: dynamic, Flags: router
  NBMA address: 172.17.0.12
";
    assert_eq!(normalise(&got), normalise(seed), "{got}");
    // Two-space indentation of continuation lines, as IOS prints it.
    assert!(got.lines().nth(1).unwrap().starts_with("  Type: static"));
    assert!(got.contains("created 00:00:02, expire 00:01:50"));
}

/// seed-dmvpn §3.2 (c), seed `001` lines 3057-3060: spoke behind NAT on the hub.
#[test]
fn show_ip_nhrp_prints_claimed_nbma_for_nated_spoke() {
    let now = t0();
    let flags = EntryFlags {
        authoritative: true,
        unique: true,
        registered: true,
        used: true,
        ..Default::default()
    };
    let mut e = entry(
        "10.0.0.11",
        "172.18.2.1",
        EntryType::Dynamic,
        flags,
        now,
        Some(359),
    );
    e.claimed_nbma = Some(ip("172.16.2.1"));
    let s = snap("Tunnel0", Role::Hub, vec![e]);
    let got = show_ip_nhrp(&[&s], now + Duration::from_secs(21));
    let seed = "10.0.0.11/32 via 10.0.0.11, Tunnel0 created 00:00:21, expire 00:05:38
Type: dynamic, Flags: authoritative unique registered used
NBMA address: 172.18.2.1
(Claimed NBMA address: 172.16.2.1)";
    assert_eq!(normalise(&got), normalise(seed), "{got}");
}

/// seed-dmvpn §3.3, seed `003` lines 196-200 (spoke 1).
#[test]
fn show_ip_nhrp_brief_matches_blog_sample() {
    let now = t0();
    let f = EntryFlags::default();
    let s = snap(
        "Tunnel1",
        Role::Spoke,
        vec![
            entry(
                "192.168.10.1",
                "192.168.1.1",
                EntryType::Dynamic,
                f,
                now,
                Some(300),
            ),
            entry(
                "192.168.10.2",
                "192.168.1.2",
                EntryType::Dynamic,
                f,
                now,
                Some(300),
            ),
            entry(
                "192.168.10.3",
                "192.168.1.3",
                EntryType::Static,
                f,
                now,
                None,
            ),
        ],
    );
    let seed = "Target                      Via                    NBMA            Mode     Intfc   Claimed
192.168.10.1/32      192.168.10.1    192.168.1.1     dynamic  Tu1     <   >
192.168.10.2/32      192.168.10.2    192.168.1.2     dynamic  Tu1     <   >
192.168.10.3/32      192.168.10.3    192.168.1.3     static       Tu1     <   >";
    assert_eq!(normalise(&show_ip_nhrp_brief(&[&s])), normalise(seed));
}

/// seed-dmvpn §3.4 (a), seed `003` lines 211-225 (hub).
#[test]
fn show_dmvpn_matches_hub_sample() {
    let now = t0();
    let f = EntryFlags {
        registered: true,
        ..Default::default()
    };
    let s = snap(
        "Tunnel3",
        Role::Hub,
        vec![
            entry(
                "192.168.10.1",
                "192.168.1.1",
                EntryType::Dynamic,
                f,
                now,
                Some(7200),
            ),
            entry(
                "192.168.10.2",
                "192.168.1.2",
                EntryType::Dynamic,
                f,
                now + Duration::from_secs(5),
                Some(7200),
            ),
        ],
    );
    let got = show_dmvpn(&[&s], now + Duration::from_secs(1195));
    let seed = "Legend: Attrb --> S - Static, D - Dynamic, I - Incomplete
        N - NATed, L - Local, X - No Socket
        # Ent --> Number of NHRP entries with same NBMA peer
        NHS Status: E --> Expecting Replies, R --> Responding, W --> Waiting
        UpDn Time --> Up or Down Time for a Tunnel
=================================================================

Interface: Tunnel3, IPv4 NHRP Details
Type:Hub, NHRP Peers:2,

 # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb
 ----- --------------- --------------- ----- -------- -----
     1    192.168.1.1          192.168.10.1       UP     00:19:55     D
     1    192.168.1.2          192.168.10.2       UP     00:19:50     D";
    assert_eq!(normalise(&got), normalise(seed), "{got}");
    assert!(got.contains("00:19:55") && got.contains("00:19:50"));
    // Column layout from the intact separator line (`003:223`).
    assert!(
        got.contains("\n     1 192.168.1.1        192.168.10.1    UP 00:19:55     D\n"),
        "{got}"
    );
}

/// seed-dmvpn §3.4 (a), seed `003` lines 230-244 (spoke 1: hub static, spoke 2 dynamic).
#[test]
fn show_dmvpn_matches_spoke_sample() {
    let now = t0();
    let f = EntryFlags::default();
    let mut s = snap(
        "Tunnel1",
        Role::Spoke,
        vec![
            entry(
                "192.168.10.2",
                "192.168.1.2",
                EntryType::Dynamic,
                f,
                now,
                Some(300),
            ),
            entry(
                "192.168.10.3",
                "192.168.1.3",
                EntryType::Static,
                f,
                now,
                None,
            ),
        ],
    );
    s.nhs.push(NhsSnapshot {
        proto: ip("192.168.10.3"),
        nbma: Some(ip("192.168.1.3")),
        status: NhsStatus::Responding,
        since: now,
        up: true,
    });
    let got = show_dmvpn(&[&s], now + Duration::from_secs(515));
    let seed = "Interface: Tunnel1, IPv4 NHRP Details
Type:Spoke, NHRP Peers:2,

 # Ent  Peer NBMA Addr  Peer Tunnel Add  State  UpDn Tm Attrb
 ----- --------------- --------------- ----- -------- -----
     1    192.168.1.2           192.168.10.2        UP     00:08:35     D
     1    192.168.1.3           192.168.10.3        UP     00:22:09     S";
    let got_n = normalise(&got);
    assert_eq!(got_n[5..], normalise(seed)[..], "{got}");
    // An NHS that stopped answering is shown in state NHRP.
    s.nhs[0].up = false;
    assert!(show_dmvpn(&[&s], now).contains("NHRP 00:00:00     S"));
}

/// seed-dmvpn §3.5, seed `001` lines 2441-2463 (the NHRP part, groups not carried).
#[test]
fn show_dmvpn_detail_lists_target_networks() {
    let now = t0();
    let f = EntryFlags {
        registered: true,
        ..Default::default()
    };
    let mut s = snap(
        "Tunnel1",
        Role::Hub,
        vec![
            entry(
                "20.1.1.2",
                "200.0.0.2",
                EntryType::Dynamic,
                f,
                now,
                Some(300),
            ),
            entry(
                "20.1.1.3",
                "200.0.0.3",
                EntryType::Dynamic,
                f,
                now,
                Some(300),
            ),
            entry(
                "20.1.1.4",
                "200.0.0.4",
                EntryType::Dynamic,
                f,
                now,
                Some(300),
            ),
        ],
    );
    s.tunnel_addr = ip("20.1.1.1");
    s.nbma_addr = ip("200.0.0.1");
    s.protect = Some("DMVPN".into());
    let got = show_dmvpn_detail(&[&s], now + Duration::from_secs(1160));
    let seed = r#"Interface Tunnel1 is up/up, Addr. is 20.1.1.1, VRF ""
  Tunnel Src./Dest. addr: 200.0.0.1/MGRE, Tunnel VRF ""
  Protocol/Transport: "multi-GRE/IP", Protect "DMVPN"
Type:Hub, Total NBMA Peers (v4/v6): 3
# Ent Peer NBMA Addr Peer Tunnel Add State UpDn Tm Attrb Target Network
-----
  1      200.0.0.2      20.1.1.2  UP 00:19:20  D      20.1.1.2/32
  1      200.0.0.3      20.1.1.3  UP 00:19:20  D      20.1.1.3/32
  1      200.0.0.4      20.1.1.4  UP 00:19:23  D      20.1.1.4/32"#;
    let mut want = normalise(seed);
    // The seed's header lost the space in "# Ent"; ours keeps IOS 15's " # Ent".
    want[4] =
        normalise(" # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb    Target Network")
            [0]
        .clone();
    assert_eq!(normalise(&got)[5..], want[..], "{got}");
}

/// seed-dmvpn §3.6, seed `001` lines 956-964.
#[test]
fn show_ip_nhrp_traffic_matches_sample_and_totals_are_sums() {
    let now = t0();
    let mut s = snap("Tunnel7", Role::Spoke, vec![]);
    s.traffic = Traffic {
        sent: [18, 10, 42, 0, 3, 6, 0, 0],
        rcvd: [10, 15, 0, 36, 6, 2, 0, 0],
    };
    let got = show_ip_nhrp_traffic(&[&s]);
    let seed = "Tunnel7: Max-send limit:100Pkts/10Sec, Usage:0%
Sent: Total 79
    18 Resolution Request  10 Resolution Reply  42 Registration Request
    0 Registration Reply   3 Purge Request    6 Purge Reply
    0 Error Indication     0 Traffic Indication
Rcvd: Total 69
    10 Resolution Request  15 Resolution Reply  0 Registration Request
    36 Registration Reply  6 Purge Request    2 Purge Reply
    0 Error Indication     0 Traffic Indication";
    assert_eq!(normalise(&got), normalise(seed), "{got}");
    let _ = now;
}

#[test]
fn show_ip_nhrp_traffic_adds_drops_once_something_was_dropped() {
    let mut s = snap("Tunnel0", Role::Hub, vec![]);
    assert!(!show_ip_nhrp_traffic(&[&s]).contains("Dropped"));
    s.drops.auth = 3;
    s.drops.quota = 2;
    let got = show_ip_nhrp_traffic(&[&s]);
    assert!(
        got.ends_with(
            "Dropped: Total 5\n    3 Authentication  2 Max-send quota  0 Malformed\n    0 Unexpected  0 Hop count exceeded\n"
        ),
        "{got}"
    );
}

#[test]
fn durations_use_ios_uptime_format() {
    assert_eq!(fmt_duration(Duration::from_secs(3 * 60 + 17)), "00:03:17");
    assert_eq!(
        fmt_duration(Duration::from_secs(86_400 + 5 * 3600)),
        "1d05h"
    );
    assert_eq!(fmt_duration(Duration::from_secs(21 * 86_400)), "3w0d");
}

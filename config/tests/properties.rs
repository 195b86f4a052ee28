//! Properties: parse never panics; render(parse(x)) is a fixpoint for generated configurations.
#![allow(clippy::unwrap_used)]

use lifeline_config::{parse, render};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "A",
        "b",
        "IPROF",
        "keys",
        "vpn-sip-ipsec",
        "P1",
        "x_2",
    ])
    .prop_map(str::to_string)
}

fn ip() -> impl Strategy<Value = String> {
    (0u8..=255, 0u8..=255, 0u8..=3, 0u8..=255).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}"))
}

fn mask() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "255.255.255.255",
        "255.255.255.0",
        "255.255.0.0",
        "255.0.0.0",
        "0.0.0.0",
        "255.0.255.0",
    ])
    .prop_map(str::to_string)
}

fn ifname() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "Tunnel",
            "tu",
            "Loopback",
            "lo ",
            "GigabitEthernet0/",
            "gi",
            "Vlan",
            "Ethernet",
        ]),
        0u8..4,
    )
        .prop_map(|(k, n)| format!("{k}{n}"))
}

fn interface_line() -> BoxedStrategy<String> {
    prop_oneof![
        (ip(), mask()).prop_map(|(a, m)| format!("ip address {a} {m}")),
        (ip(), mask()).prop_map(|(a, m)| format!("ip address {a} {m} secondary")),
        Just("ip address dhcp".to_string()),
        Just("no ip address".to_string()),
        ifname().prop_map(|i| format!("ip unnumbered {i}")),
        prop::sample::select(vec![
            "ip nat inside",
            "ip nat outside",
            "shutdown",
            "no shutdown",
            "duplex auto",
            "speed 100",
            "ip nhrp redirect",
            "ip nhrp shortcut",
            "ip nhrp map multicast dynamic",
            "tunnel destination dynamic",
            "tunnel mode ipsec ipv4",
            "tunnel mode gre multipoint",
            "tunnel mode ipsec dual-overlay",
            "ip dhcp client request sip-server-address",
            "no ip redirects",
            "vpn-sip sip-local 1 sip-remote 2 bandwidth 64"
        ])
        .prop_map(str::to_string),
        (0u32..5000).prop_map(|n| format!("ip mtu {n}")),
        (0u32..2000).prop_map(|n| format!("ip tcp adjust-mss {n}")),
        (0u32..1000).prop_map(|n| format!("tunnel key {n}")),
        ifname().prop_map(|i| format!("tunnel source {i}")),
        ip().prop_map(|a| format!("tunnel destination {a}")),
        (name(), prop::option::of(name()), any::<bool>()).prop_map(|(p, i, s)| {
            let mut l = format!("tunnel protection ipsec profile {p}");
            if let Some(i) = i {
                l.push_str(&format!(" ikev2-profile {i}"));
            }
            if s {
                l.push_str(" shared");
            }
            l
        }),
        (
            0u32..10,
            0u32..10,
            prop::sample::select(vec![64u32, 128, 300, 1000]),
            prop::option::of(name())
        )
            .prop_map(|(l, r, b, p)| {
                let mut s = format!("vpn-sip local-number 55{l} remote-number 12{r} bandwidth {b}");
                if let Some(p) = p {
                    s.push_str(&format!(" service-policy {p}"));
                }
                s
            }),
        (ip(), ip()).prop_map(|(a, b)| format!("ip nhrp map {a} {b}")),
        ip().prop_map(|a| format!("ip nhrp nhs {a}")),
        (1u32..100).prop_map(|n| format!("ip nhrp network-id {n}")),
        name().prop_map(|n| format!("ip nhrp authentication {n}!X")),
        name().prop_map(|n| format!("service-policy output {n}")),
        prop::sample::select(vec!["eth0", "wan1", "bad/name"]).prop_map(|d| format!("device {d}")),
        "[a-z]{1,8}( [a-z0-9]{1,6}){0,3}".prop_map(|s| format!("description {s}")),
    ]
    .boxed()
}

fn block() -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        (ifname(), prop::collection::vec(interface_line(), 0..8)).prop_map(|(i, l)| {
            let mut v = vec![format!("interface {i}")];
            v.extend(l);
            v
        }),
        (
            name(),
            prop::collection::vec((name(), 0u32..5, name()), 0..3)
        )
            .prop_map(|(k, peers)| {
                let mut v = vec![format!("crypto ikev2 keyring {k}")];
                for (p, id, psk) in peers {
                    v.push(format!("peer {p}"));
                    v.push(format!("identity key-id 12{id}"));
                    v.push(format!("pre-shared-key {psk}"));
                }
                v
            }),
        (name(), any::<bool>(), prop::option::of(name())).prop_map(|(n, psk, kr)| {
            let m = if psk { "pre-share" } else { "rsa-sig" };
            let mut v = vec![
                format!("crypto ikev2 profile {n}"),
                "match identity remote any".into(),
                "identity local key-id 5678".into(),
                format!("authentication remote {m}"),
                format!("authentication local {m}"),
                "nat force-encap".into(),
                "dpd 10 6 periodic".into(),
            ];
            if let Some(k) = kr {
                v.push(format!("keyring local {k}"));
            }
            v
        }),
        (
            name(),
            prop::option::of(60u32..200),
            prop::option::of(name())
        )
            .prop_map(|(n, idle, ts)| {
                let mut v = vec![format!("crypto ipsec profile {n}")];
                if let Some(i) = idle {
                    v.push(format!("set security-association idle-time {i}"));
                }
                if let Some(t) = ts {
                    v.push(format!("set transform-set {t}"));
                }
                v.push("set pfs group14".into());
                v
            }),
        name().prop_map(|n| vec![
            format!("crypto ipsec transform-set {n} esp-aes esp-sha-hmac"),
            "mode transport".into()
        ]),
        (1u32..20).prop_map(|n| vec![
            format!("crypto isakmp policy {n}"),
            "encr aes 256".into(),
            "hash sha".into(),
            "authentication pre-share".into(),
            "group 14".into()
        ]),
        (
            ip(),
            mask(),
            ifname(),
            prop::option::of(1u32..300),
            prop::option::of(1u32..5)
        )
            .prop_map(|(a, m, i, d, t)| {
                let mut s = format!("ip route {a} {m} {i}");
                if let Some(d) = d {
                    s.push_str(&format!(" {d}"));
                }
                if let Some(t) = t {
                    s.push_str(&format!(" track {t}"));
                }
                vec![s]
            }),
        (1u32..4, ip()).prop_map(|(n, a)| vec![
            format!("ip sla {n}"),
            format!("icmp-echo {a}"),
            "threshold 500".into(),
            "timeout 500".into(),
            "frequency 2".into(),
            format!("ip sla schedule {n} life forever start-time now")
        ]),
        (1u32..4, 1u32..4).prop_map(|(t, s)| vec![format!("track {t} ip sla {s} reachability")]),
        (0u32..3, ifname()).prop_map(|(n, i)| vec![
            "vpn-sip enable".into(),
            format!("vpn-sip local-number 55{n} address ipv4 {i}"),
            "vpn-sip tunnel source Loopback1".into(),
            "vpn-sip logging".into()
        ]),
        (name(), name()).prop_map(|(c, p)| vec![
            format!("class-map match-all {c}"),
            "match protocol ip".into(),
            format!("policy-map {p}"),
            format!("class {c}"),
            "bandwidth percent 60".into(),
            "queue-limit 12 packets".into(),
            "police cir 8000".into(),
            "conform-action transmit".into(),
            "exceed-action drop".into(),
            "shape average 64000".into()
        ]),
        (100u32..110, ip()).prop_map(|(n, a)| vec![
            format!("access-list {n} permit ip host {a} any"),
            format!("access-list {n} deny udp any eq 500 any log")
        ]),
        Just(vec![
            "router eigrp 1".to_string(),
            "network 10.0.0.0".into(),
            "no auto-summary".into(),
            "address-family ipv4 vrf x".into(),
            "redistribute connected".into(),
            "exit-address-family".into()
        ]),
        Just(vec![
            "ip vrf red".to_string(),
            "rd 1:1".into(),
            "route-target export 1:1".into()
        ]),
        Just(vec![
            "banner motd ^C".to_string(),
            "hello".into(),
            "^C".into()
        ]),
        "[a-z][a-z-]{0,10}( [A-Za-z0-9.:/-]{1,8}){0,4}".prop_map(|s| vec![s]),
        Just(vec!["end".to_string()]),
        Just(vec!["exit".to_string()]),
    ]
    .boxed()
}

/// A generated configuration: blocks of lines with random indentation, `!` separators and
/// keyword case.
fn config_text() -> impl Strategy<Value = String> {
    prop::collection::vec((block(), 0usize..3, any::<bool>(), any::<bool>()), 0..12).prop_map(
        |blocks| {
            let mut s = String::new();
            for (lines, indent, bang, upper) in blocks {
                for (k, l) in lines.iter().enumerate() {
                    let ind = if k == 0 { 0 } else { indent };
                    let l = if upper && k == 0 {
                        l.to_uppercase()
                    } else {
                        l.clone()
                    };
                    s.push_str(&" ".repeat(ind));
                    s.push_str(&l);
                    s.push('\n');
                }
                if bang {
                    s.push_str("!\n");
                }
            }
            s
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn render_parse_is_a_fixpoint_on_generated_configurations(text in config_text()) {
        let p = parse(&text);
        let first = render(&p.config);
        let again = parse(&first);
        if !p.has_errors() {
            prop_assert!(!again.has_errors(), "{:?}\n{}", again.diagnostics, first);
        }
        let second = render(&again.config);
        prop_assert_eq!(&first, &second, "input:\n{}", text);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let p = parse(&text);
        let _ = render(&p.config);
    }

    #[test]
    fn parse_never_panics_on_ios_like_word_soup(
        lines in prop::collection::vec(
            (0usize..4, prop::collection::vec(
                prop::sample::select(vec![
                    "interface", "int", "tu1", "Tunnel", "1", "ip", "address", "route", "no", "crypto",
                    "ikev2", "ipsec", "isakmp", "profile", "keyring", "peer", "set", "security-association",
                    "idle-time", "vpn-sip", "local-number", "remote-number", "bandwidth", "tunnel", "mode",
                    "protection", "shared", "10.0.0.1", "255.255.255.0", "0", "65536", "!", "end", "exit",
                    "police", "cir", "class", "policy-map", "class-map", "match", "access-list", "101", "permit",
                    "deny", "any", "host", "eq", "track", "sla", "icmp-echo", "schedule", "banner", "^C",
                    "address-family", "router", "nhrp", "map", "multicast", "dynamic", "key", "pre-shared-key",
                    "registrar", "conform-action", "transmit", "exceed-action", "drop", "identity", "key-id", "quit", "certificate", "chain", "line", "vty",
                    "exit-address-family", "description", "priority", "percent", "shape", "average",
                    "neighbor", "network", "redistribute", "pool", "hostname", "encr", "aes", "group", "password", "username", "device", "dpd", "10", "6", "periodic", "",
                ]),
                0..8,
            )),
            0..40,
        )
    ) {
        let text: String = lines
            .iter()
            .map(|(ind, w)| format!("{}{}\n", " ".repeat(*ind), w.join(" ")))
            .collect();
        let p = parse(&text);
        let first = render(&p.config);
        let again = parse(&first);
        if !p.has_errors() {
            prop_assert!(!again.has_errors(), "{:?}\n{}", again.diagnostics, first);
        }
        let second = render(&again.config);
        prop_assert_eq!(&first, &second, "input:\n{}", text);
    }
}

#[test]
fn deeply_alternating_nested_blocks_do_not_overflow() {
    let mut text = String::from("router bgp 1\n");
    for i in 0..20_000 {
        text.push_str(if i % 2 == 0 { "class a\n" } else { "peer b\n" });
    }
    let p = parse(&text);
    let r = render(&p.config);
    assert_eq!(render(&parse(&r).config), r);
}

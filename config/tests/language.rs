//! The language: abbreviations, case, `no`, modes without indentation, unsupported commands,
//! extensions, defaults.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use lifeline_config::*;

#[test]
fn keywords_are_case_insensitive_and_abbreviable() {
    let p = parse(
        "int tu1\n ip add 10.0.0.1 255.255.255.0\n TUNNEL MODE IPsec ipv4\n tun dest dyn\n sh\n\
         cry isakmp pol 10\n encr aes 256\n auth pre-share\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let t = p.config.interface("Tunnel1").unwrap();
    assert_eq!(t.name, "Tunnel1");
    assert!(t.shutdown);
    assert_eq!(t.tunnel.mode, Some(TunnelMode::IpsecIpv4));
    assert_eq!(t.tunnel.destination, Some(TunnelDestination::Dynamic));
    let pol = &p.config.isakmp.policies[0];
    assert_eq!(pol.encryption.as_deref(), Some("aes 256"));
    assert_eq!(pol.authentication.as_deref(), Some("pre-share"));
}

#[test]
fn ambiguous_abbreviation_is_not_guessed() {
    // `i` could be `interface` or `ip`: kept verbatim as unsupported, no interface created.
    let p = parse("i Tunnel1\n");
    assert!(p.config.interfaces.is_empty());
    assert_eq!(p.config.unsupported.len(), 1);
    assert!(!p.has_errors());
}

#[test]
fn interface_names_are_canonicalised() {
    let p = parse("interface gig0/0/1\ninterface lo0\ninterface tunnel 5\ninterface Fa0/1\n");
    let names: Vec<&str> = p
        .config
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "GigabitEthernet0/0/1",
            "Loopback0",
            "Tunnel5",
            "FastEthernet0/1"
        ]
    );
    assert!(p.config.interface("gi0/0/1").is_some());
}

#[test]
fn object_names_are_case_sensitive() {
    let p = parse(
        "crypto pki trustpoint Self\n enrollment selfsigned\ncrypto ikev2 profile P\n pki trustpoint self\n",
    );
    let w: Vec<String> = p.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        [
            "4:2: warning: trustpoint self is not defined: `pki trustpoint self` (suggestion: define `crypto pki trustpoint self` (names are case-sensitive))"
        ]
    );
}

#[test]
fn mode_is_decided_by_the_command_without_indentation() {
    let p = parse(
        "crypto ikev2 keyring keys\npeer peer1\nidentity key-id 1234\npre-shared-key psk1\n!\npeer abc\nidentity fqdn example.com\npre-shared-key psk2\ninterface Tunnel1\ntunnel source Loopback1\nip route 0.0.0.0 0.0.0.0 Tunnel1 250\n",
    );
    assert!(!p.has_errors());
    let kr = p.config.ikev2_keyring("keys").unwrap();
    assert_eq!(kr.peers.len(), 2);
    assert_eq!(kr.peer_by_key_id("1234").unwrap().name, "peer1");
    assert_eq!(
        kr.peers[1].pre_shared_key.as_ref().unwrap().expose(),
        "psk2"
    );
    assert_eq!(
        p.config.interface("Tunnel1").unwrap().tunnel.source,
        Some(TunnelSource::Interface("Loopback1".into()))
    );
    assert_eq!(p.config.ip_routes[0].effective_distance(), 250);
}

#[test]
fn bang_inside_a_word_is_kept() {
    let p = parse("interface Tunnel0\n ip nhrp authentication BLUE!KEY\n");
    let a = p
        .config
        .interface("Tunnel0")
        .unwrap()
        .nhrp
        .authentication
        .clone()
        .unwrap();
    assert_eq!(a.expose(), "BLUE!KEY");
}

#[test]
fn no_commands_remove_and_negate() {
    let p = parse(
        "interface Tunnel1\n ip address 10.0.0.1 255.255.255.0\n shutdown\n tunnel key 5\n\
         no shutdown\n no tunnel key\n no ip address\n\
         interface Tunnel2\nno interface Tunnel2\n\
         ip route 10.0.0.0 255.0.0.0 Tunnel1\nno ip route 10.0.0.0 255.0.0.0 Tunnel1\n\
         vpn-sip enable\nno vpn-sip enable\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let t = p.config.interface("Tunnel1").unwrap();
    assert!(!t.shutdown);
    assert_eq!(t.tunnel.key, None);
    assert_eq!(t.ip, IpAddressing::NoAddress);
    assert!(p.config.interface("Tunnel2").is_none());
    assert!(p.config.ip_routes.is_empty());
    assert!(!p.config.vpn_sip.enabled);
    assert!(render(&p.config).contains(" no ip address\n"));
}

#[test]
fn unsupported_commands_are_kept_warned_and_rendered() {
    let text = "interface GigabitEthernet0/4\n ip address dhcp\n duplex auto\n speed auto\n!\nrouter eigrp 1\n network 10.0.0.0\n no auto-summary\n!\nip cef\n";
    let p = parse(text);
    assert!(!p.has_errors());
    let w: Vec<String> = p.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        [
            "3:2: warning: sub-command not implemented by Lifeline; kept verbatim: `duplex auto`",
            "4:2: warning: sub-command not implemented by Lifeline; kept verbatim: `speed auto`",
            "6:1: warning: command not implemented by Lifeline; kept verbatim: `router eigrp 1`",
            "10:1: warning: command not implemented by Lifeline; kept verbatim: `ip cef`",
        ]
    );
    let r = render(&p.config);
    assert!(
        r.contains("interface GigabitEthernet0/4\n ip address dhcp\n duplex auto\n speed auto\n!"),
        "{r}"
    );
    // Unsupported globals come first, single lines then blocks, so none can be read back into an
    // interface (fuzz finding `config_render_fixpoint-global-line-not-a-fixpoint`).
    assert!(
        r.starts_with("!\nip cef\n!\nrouter eigrp 1\n network 10.0.0.0\n no auto-summary\n!\n"),
        "{r}"
    );
}

#[test]
fn vpn_sip_variant_syntax_is_kept_verbatim_not_modelled() {
    let p = parse("interface Tunnel1\n vpn-sip sip-local 1 sip-remote 2 bandwidth 1000\n");
    assert!(!p.has_errors());
    let t = p.config.interface("Tunnel1").unwrap();
    assert!(t.vpn_sip.is_none());
    assert_eq!(
        t.unsupported[0].text,
        "vpn-sip sip-local 1 sip-remote 2 bandwidth 1000"
    );
}

#[test]
fn device_extension_binds_linux_names() {
    let p = parse(
        "interface GigabitEthernet0/0/1\n device eth1\ninterface Tunnel1\ninterface GigabitEthernet10\n",
    );
    assert!(!p.has_errors());
    assert_eq!(
        p.config.interface("Gi0/0/1").unwrap().linux_name(),
        Some("eth1")
    );
    assert_eq!(
        p.config.interface("Tunnel1").unwrap().linux_name(),
        Some("Tunnel1")
    );
    assert_eq!(
        p.config
            .interface("GigabitEthernet10")
            .unwrap()
            .linux_name(),
        None
    );
    assert!(render(&p.config).contains("interface GigabitEthernet0/0/1\n device eth1\n"));
}

#[test]
fn registrar_extension_hides_its_password_in_debug() {
    let p = parse(
        "vpn-sip registrar sip.example.net port 5060 transport tcp username branch1 password s3cret\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let r = p.config.vpn_sip.registrar.clone().unwrap();
    assert_eq!(r.host, "sip.example.net");
    assert_eq!(r.port, Some(5060));
    assert_eq!(r.transport, Some(SipTransport::Tcp));
    assert_eq!(r.password.as_ref().unwrap().expose(), "s3cret");
    assert!(!format!("{:?}", p.config).contains("s3cret"));
    assert!(render(&p.config).contains(
        "vpn-sip registrar sip.example.net port 5060 transport tcp username branch1 password s3cret\n"
    ));
}

#[test]
fn registrar_password_without_username_is_an_error() {
    let p = parse("vpn-sip registrar 192.0.2.5 password x\n");
    let e: Vec<String> = p.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        e,
        [
            "1:1: error: a registrar password needs a username: `vpn-sip registrar 192.0.2.5 password <hidden>` (suggestion: add `username USER` before `password`)"
        ]
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let p = parse(
        "crypto ikev2 keyring k\n peer p\n  pre-shared-key 0 topsecret\ncrypto isakmp key alsosecret address 0.0.0.0 0.0.0.0\n",
    );
    let dbg = format!("{:?}", p.config);
    assert!(
        !dbg.contains("topsecret") && !dbg.contains("alsosecret"),
        "{dbg}"
    );
    let r = render(&p.config);
    assert!(r.contains("  pre-shared-key 0 topsecret\n"), "{r}");
    assert!(
        r.contains("crypto isakmp key alsosecret address 0.0.0.0 0.0.0.0\n"),
        "{r}"
    );
}

#[test]
fn effective_ipsec_profile_applies_the_seed_defaults() {
    let p = parse("crypto ipsec profile IPROF\n set security-association idle-time 120\n");
    let e = p.config.effective_ipsec_profile("IPROF").unwrap();
    assert_eq!(e.transform_sets.len(), 1);
    assert_eq!(e.transform_sets[0].name, "default");
    assert_eq!(e.transform_sets[0].transforms, ["esp-aes", "esp-sha-hmac"]);
    assert_eq!(e.transform_sets[0].mode, Some(IpsecMode::Tunnel));
    assert_eq!(e.lifetime_seconds, 3600);
    assert_eq!(e.lifetime_kilobytes, Some(4_608_000));
    assert_eq!(e.replay_window, Some(64));
    assert_eq!(e.idle_time, Some(Duration::from_secs(120)));
    assert_eq!(e.pfs_group, None);
}

#[test]
fn effective_ipsec_profile_prefers_profile_then_global_settings() {
    let p = parse(
        "crypto ipsec security-association replay window-size 1024\ncrypto ipsec security-association lifetime seconds 7200\n\
         crypto ipsec transform-set T esp-aes 256 esp-sha256-hmac\n mode transport\n\
         crypto ipsec profile P\n set transform-set T\n set security-association lifetime kilobytes disable\n set pfs group14\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let e = p.config.effective_ipsec_profile("P").unwrap();
    assert_eq!(
        e.transform_sets[0].transforms,
        ["esp-aes", "256", "esp-sha256-hmac"]
    );
    assert_eq!(e.transform_sets[0].mode, Some(IpsecMode::Transport));
    assert_eq!(e.lifetime_seconds, 7200);
    assert_eq!(e.lifetime_kilobytes, None);
    assert_eq!(e.replay_window, Some(1024));
    assert_eq!(e.pfs_group, Some(14));
}

#[test]
fn ip_sla_and_track_with_defaults() {
    let p = parse(
        "ip sla 1\n icmp-echo 192.0.2.11 source-interface Gi0/0/1\n threshold 500\nip sla schedule 1 life forever start-time now\ntrack 1 ip sla 1 reachability\n delay down 10\nip sla 2\n icmp-echo 192.0.2.12\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let s = p.config.effective_ip_sla(1).unwrap();
    assert_eq!(s.threshold, Duration::from_millis(500));
    assert_eq!(s.timeout, Duration::from_millis(5000));
    assert_eq!(s.frequency, Duration::from_secs(60));
    assert!(s.scheduled);
    assert_eq!(
        s.operation,
        Some(SlaOperation::IcmpEcho {
            destination: Ipv4Addr::new(192, 0, 2, 11),
            source_interface: Some("GigabitEthernet0/0/1".into()),
            source_ip: None
        })
    );
    assert!(!p.config.effective_ip_sla(2).unwrap().scheduled);
    assert_eq!(p.config.tracks[0].kind, TrackKind::IpSlaReachability(1));
    assert_eq!(p.config.tracks[0].delay_down, Some(Duration::from_secs(10)));
}

#[test]
fn nhrp_and_mgre_are_modelled() {
    let p = parse(
        "interface Tunnel0\n ip nhrp authentication donttell\n ip nhrp map multicast dynamic\n ip nhrp map 10.0.0.1 172.17.0.1\n\
         ip nhrp map multicast 172.17.0.1\n ip nhrp network-id 99\n ip nhrp holdtime 300\n ip nhrp nhs 10.0.0.1\n\
         ip nhrp redirect\n ip nhrp shortcut\n ip nhrp registration no-unique\n ip nhrp group spoke_group1\n\
         ip nhrp map group g1 service-policy output qos1\n ip nhrp max-send 100 every 10\n ip tcp adjust-mss 1360\n ip mtu 1400\n\
         tunnel mode gre multipoint\n tunnel key 100000\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    assert_eq!(p.warnings().count(), 0, "{:?}", p.diagnostics);
    let t = p.config.interface("Tunnel0").unwrap();
    let n = &t.nhrp;
    assert_eq!(n.network_id, Some(99));
    assert_eq!(n.map_multicast.len(), 2);
    assert_eq!(
        n.maps,
        vec![(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(172, 17, 0, 1))]
    );
    assert!(n.redirect && n.shortcut && n.registration_no_unique);
    assert_eq!(n.max_send, Some((100, 10)));
    assert_eq!(t.tcp_adjust_mss, Some(1360));
    assert_eq!(t.ip_mtu, Some(1400));
    assert_eq!(t.tunnel.key, Some(100_000));
}

#[test]
fn qos_mqc_is_modelled() {
    let p = parse(
        "class-map match-any VOICE\n match dscp ef\n match access-group 101\n match ip precedence 5\n\
         policy-map CHILD\n class VOICE\n  priority percent 30\n class class-default\n  bandwidth percent 60\n  queue-limit 12 packets\n\
         policy-map VTI\n class class-default\n  police cir 8000\n   conform-action transmit\n   exceed-action drop\n  set dscp cs4\n  shape average 512000\n  service-policy CHILD\n\
         interface Tunnel0\n service-policy output VTI\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    assert_eq!(p.warnings().count(), 0, "{:?}", p.diagnostics);
    let cm = &p.config.qos.class_maps[0];
    assert!(cm.match_any);
    assert_eq!(cm.matches.len(), 3);
    let vti = p.config.policy_map("VTI").unwrap();
    assert_eq!(vti.classes[0].actions.len(), 4);
    assert!(
        matches!(&vti.classes[0].actions[0], QosAction::Police(pl) if pl.conform_action.as_deref() == Some("transmit") && pl.exceed_action.as_deref() == Some("drop"))
    );
    assert_eq!(
        p.config
            .interface("Tunnel0")
            .unwrap()
            .service_policy_output(),
        Some("VTI")
    );
}

#[test]
fn isakmp_and_ikev2_global_knobs_are_modelled() {
    let p = parse(
        "crypto isakmp keepalive 10 3 periodic\ncrypto isakmp nat keepalive 20\ncrypto ikev2 dpd 10 6 on-demand\n\
         crypto ikev2 proposal PR\n encryption aes-cbc-128 aes-cbc-256\n integrity sha1\n group 14 19\n\
         crypto ikev2 policy POL\n proposal PR\n\
         crypto ikev2 profile X\n dpd 10 6 periodic\n lifetime 3600\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    assert_eq!(p.warnings().count(), 0, "{:?}", p.diagnostics);
    let c = &p.config;
    assert_eq!(c.isakmp.keepalive.unwrap().retry, Some(3));
    assert_eq!(c.isakmp.nat_keepalive, Some(20));
    assert!(!c.ikev2.dpd.unwrap().periodic);
    assert_eq!(c.ikev2.proposals[0].group, vec![14, 19]);
    assert!(c.ikev2.profiles[0].dpd.unwrap().periodic);
}

#[test]
fn access_lists_are_modelled() {
    let p = parse(
        "access-list 110 permit gre host 10.0.0.1 host 10.0.0.2\naccess-list 101 permit udp any eq isakmp any\n\
         ip access-list extended NAT\n deny ip 10.0.0.0 0.0.0.255 10.1.0.0 0.0.0.255\n permit ip 10.0.0.0 0.0.0.255 any\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    assert_eq!(p.warnings().count(), 0, "{:?}", p.diagnostics);
    assert_eq!(p.config.access_lists.len(), 3);
    let r = render(&p.config);
    assert!(
        r.contains("access-list 101 permit udp any eq isakmp any\n"),
        "{r}"
    );
    assert!(
        r.contains("ip access-list extended NAT\n deny ip 10.0.0.0 0.0.0.255 10.1.0.0 0.0.0.255\n"),
        "{r}"
    );
}

#[test]
fn render_is_canonical_and_lower_cases_keywords() {
    let p = parse("VPN-SIP ENABLE\nInterface TUNNEL1\n  Tunnel Mode IPSEC IPV4\n");
    assert_eq!(
        render(&p.config),
        "!\ninterface Tunnel1\n tunnel mode ipsec ipv4\n!\nvpn-sip enable\n!\nend\n"
    );
}

#[test]
fn diagnostics_serialise_to_json_for_the_appliance() {
    let p = parse("interface Tunnel1\n vpn-sip local-number 1 remote-number 2 bandwidth 300\n");
    let j = serde_json::to_value(&p.diagnostics).unwrap();
    let bw = j
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["words"] == "bandwidth 300")
        .unwrap();
    assert_eq!(bw["severity"], "error");
    assert_eq!(bw["line"], 2);
    assert_eq!(bw["column"], 41);
    assert_eq!(bw["suggestion"], "bandwidth 256");
}

#[test]
fn psk_is_found_by_remote_sip_number() {
    let p = parse(
        "crypto ikev2 keyring keys\n peer a\n  identity key-id 0312341111\n  pre-shared-key psk1\n\
         crypto ikev2 profile test\n authentication remote pre-share\n keyring local keys\n",
    );
    let peer = p
        .config
        .keyring_peer_for_key_id("test", "0312341111")
        .unwrap();
    assert_eq!(peer.pre_shared_key.as_ref().unwrap().expose(), "psk1");
    assert!(
        p.config
            .keyring_peer_for_key_id("test", "312341111")
            .is_none()
    );
    assert_eq!(
        p.config.ikev2_profile("test").unwrap().effective_lifetime(),
        Duration::from_secs(86_400)
    );
}

#[test]
fn ocr_tunnell_is_not_canonicalised_but_suggested() {
    let p = parse("interface Tunnell\n ip address 10.0.0.1 255.255.255.0\n");
    assert!(p.config.interfaces.is_empty());
    let w: Vec<String> = p.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        [
            "1:1: warning: command not implemented by Lifeline; kept verbatim: `interface Tunnell` (suggestion: did you mean `interface Tunnel1`? (`l` read for `1`))"
        ]
    );
}

#[test]
fn ip_sla_request_data_size_and_tos_are_modelled_and_rendered() {
    let p = lifeline_config::parse(
        "ip sla 7\n icmp-echo 192.0.2.11 source-interface GigabitEthernet0\n request-data-size 100\n tos 160\n frequency 2\n",
    );
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let s = &p.config.ip_slas[0];
    assert_eq!(s.request_data_size, Some(100));
    assert_eq!(s.tos, Some(160));
    let text = lifeline_config::render(&p.config);
    assert!(text.contains(" request-data-size 100\n"), "{text}");
    assert!(text.contains(" tos 160\n"), "{text}");
    let bad = lifeline_config::parse("ip sla 7\n tos 300\n");
    assert!(bad.has_errors());
}

#[test]
fn diagnostics_never_quote_secrets() {
    let text = "crypto ikev2 keyring KR\n peer x\n  pre-shared-key local topsecret1 extra words\n\
                crypto isakmp key topsecret2 address 0.0.0.0 0.0.0.0 junk\n\
                vpn-sip registrar 192.0.2.1 username u password 7 topsecret3 junk\n\
                interface Tunnel0\n ip nhrp authentication topsecret4 junk\n";
    let p = lifeline_config::parse(text);
    assert!(!p.diagnostics.is_empty());
    for d in &p.diagnostics {
        let shown = format!("{d} {}", serde_json::to_string(d).unwrap());
        assert!(
            !shown.contains("topsecret"),
            "secret in a diagnostic: {shown}"
        );
    }
    assert_eq!(
        lifeline_config::redact_secrets("pre-shared-key local 0 abc"),
        "pre-shared-key local 0 <hidden>"
    );
    assert_eq!(
        lifeline_config::redact_secrets("tunnel key 100"),
        "tunnel key 100"
    );
}

#[test]
fn registrar_extension_takes_a_tls_trust_anchor_file() {
    let line = "vpn-sip registrar sip.example.net transport tls ca-file /etc/lifeline/sip-ca.pem username b1 password 0 s3cret\n";
    let p = parse(line);
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    let r = p.config.vpn_sip.registrar.clone().unwrap();
    assert_eq!(r.transport, Some(SipTransport::Tls));
    assert_eq!(r.port, None);
    assert_eq!(r.ca_file.as_deref(), Some("/etc/lifeline/sip-ca.pem"));
    assert!(render(&p.config).contains(
        "vpn-sip registrar sip.example.net transport tls ca-file /etc/lifeline/sip-ca.pem username b1 password 0 s3cret\n"
    ));
    let bad = parse("vpn-sip registrar 192.0.2.5 transport sctp\n");
    assert!(bad.has_errors());
}

#[test]
fn ip_name_server_is_modelled_and_renders_back() {
    let p = parse("ip name-server 198.51.100.1 198.51.100.2\nip name-server 203.0.113.53\n");
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    assert_eq!(
        p.config.name_servers,
        [
            "198.51.100.1".parse::<std::net::Ipv4Addr>().unwrap(),
            "198.51.100.2".parse().unwrap(),
            "203.0.113.53".parse().unwrap()
        ]
    );
    let text = render(&p.config);
    assert!(
        text.contains("ip name-server 198.51.100.1 198.51.100.2 203.0.113.53\n"),
        "{text}"
    );
    assert_eq!(parse(&text).config.name_servers, p.config.name_servers);
    let p = parse("ip name-server 198.51.100.1 198.51.100.2\nno ip name-server 198.51.100.1\n");
    assert_eq!(
        p.config.name_servers,
        ["198.51.100.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    // IPv6 and VRF forms are kept verbatim
    let p = parse("ip name-server vrf mgmt 192.0.2.53\n");
    assert!(p.config.name_servers.is_empty());
    assert!(render(&p.config).contains("ip name-server vrf mgmt 192.0.2.53\n"));
}

#[test]
fn vpn_sip_session_port_range_is_parsed_rendered_and_checked() {
    // Lifeline extension: the per-session WAN ports VPN-SIP offers in SDP.
    let p = parse("vpn-sip session-port range 40000 40999\n");
    assert!(!p.has_errors(), "{:?}", p.diagnostics);
    assert_eq!(p.config.vpn_sip.session_ports, Some((40000, 40999)));
    assert_eq!(p.config.vpn_sip.effective_session_ports(), (40000, 40999));
    assert!(render(&p.config).contains("vpn-sip session-port range 40000 40999\n"));
    assert_eq!(
        parse("!\n").config.vpn_sip.effective_session_ports(),
        (50001, 65535)
    );
    // An empty range or a privileged port is an error, not a silent default.
    assert!(parse("vpn-sip session-port range 50002 50001\n").has_errors());
    assert!(parse("vpn-sip session-port range 500 50001\n").has_errors());
    let p = parse("vpn-sip session-port range 40000 40999\nno vpn-sip session-port range\n");
    assert_eq!(p.config.vpn_sip.session_ports, None);
}

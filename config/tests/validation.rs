//! One test per validation rule: a broken configuration and the exact diagnostic.
#![allow(clippy::unwrap_used)]

use lifeline_config::{Severity, parse};

/// A complete, valid VPN-SIP configuration (pre-shared keys), after the seed's steps.
const BASE: &str = "\
crypto ikev2 keyring keys
 peer peer1
  identity key-id 1234
  pre-shared-key key123
crypto ikev2 profile IPROF
 match identity remote any
 identity local key-id 5678
 authentication remote pre-share
 authentication local pre-share
 keyring local keys
 nat force-encap
crypto ipsec profile IPROF
 set security-association idle-time 120
interface Loopback1
 ip address 192.0.2.1 255.255.255.255
 ip nat inside
interface GigabitEthernet8
 ip address dhcp
 ip nat outside
interface Tunnel1
 ip unnumbered Loopback1
 tunnel source Loopback1
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile IPROF ikev2-profile IPROF
 vpn-sip local-number 5678 remote-number 1234 bandwidth 1000
vpn-sip enable
vpn-sip local-number 5678 address ipv4 GigabitEthernet8
vpn-sip tunnel source Loopback1
";

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn base_vpn_sip_configuration_is_clean() {
    let p = parse(BASE);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
}

#[test]
fn vpn_sip_bandwidth_must_be_in_the_allowed_set() {
    let t = with("bandwidth 1000", "bandwidth 300");
    assert_eq!(
        errors(&t),
        vec![
            "26:47: error: VPN-SIP bandwidth must be 64, 128, 256, 512 or 1000 kbps: `bandwidth 300` (suggestion: bandwidth 256)"
        ]
    );
}

#[test]
fn vpn_sip_tunnel_needs_tunnel_mode_ipsec_ipv4() {
    let t = with(" tunnel mode ipsec ipv4\n", " tunnel mode gre ip\n");
    assert_eq!(
        errors(&t),
        vec![
            "26:2: error: VPN-SIP tunnel Tunnel1 needs `tunnel mode ipsec ipv4`: `vpn-sip local-number 5678 remote-number 1234 bandwidth 1000` (suggestion: add `tunnel mode ipsec ipv4` under interface Tunnel1)"
        ]
    );
}

#[test]
fn vpn_sip_tunnel_needs_tunnel_destination_dynamic() {
    let t = with(
        "tunnel destination dynamic",
        "tunnel destination 198.51.100.7",
    );
    assert_eq!(
        errors(&t),
        vec![
            "26:2: error: VPN-SIP tunnel Tunnel1 needs `tunnel destination dynamic`: `vpn-sip local-number 5678 remote-number 1234 bandwidth 1000` (suggestion: add `tunnel destination dynamic` under interface Tunnel1)"
        ]
    );
}

#[test]
fn vpn_sip_ipsec_profile_needs_an_idle_time() {
    let t = with(
        " set security-association idle-time 120\n",
        " set security-association lifetime seconds 3600\n",
    );
    assert_eq!(
        errors(&t),
        vec![
            "25:2: error: IPsec profile IPROF of VPN-SIP tunnel Tunnel1 needs an idle time: `tunnel protection ipsec profile IPROF ikev2-profile IPROF` (suggestion: add `set security-association idle-time 120` under `crypto ipsec profile IPROF`)"
        ]
    );
}

/// BASE plus a second local number 5679 on Tunnel2 (remote 4321, its own IKEv2 profile IPROF2).
fn two_numbers() -> String {
    let mut t = BASE.replacen(
        "crypto ikev2 profile IPROF\n",
        "\
 peer peer2
  identity key-id 4321
  pre-shared-key key456
crypto ikev2 profile IPROF2
 match identity remote any
 identity local key-id 5679
 authentication remote pre-share
 authentication local pre-share
 keyring local keys
 nat force-encap
crypto ikev2 profile IPROF
",
        1,
    );
    t.push_str(
        "\
interface Tunnel2
 ip unnumbered Loopback1
 tunnel source Loopback1
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile IPROF ikev2-profile IPROF2
 vpn-sip local-number 5679 remote-number 4321 bandwidth 512
vpn-sip local-number 5679 address ipv4 GigabitEthernet8
",
    );
    t
}

fn warnings(text: &str) -> Vec<String> {
    parse(text)
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn several_local_numbers_each_on_its_tunnel_are_clean() {
    let p = parse(&two_numbers());
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let numbers: Vec<&str> = p
        .config
        .vpn_sip
        .local_numbers
        .iter()
        .map(|l| l.number.as_str())
        .collect();
    assert_eq!(numbers, ["5678", "5679"]);
    // The running configuration keeps both lines, in order.
    let text = lifeline_config::render(&p.config);
    let a = text.find("vpn-sip local-number 5678 address ipv4").unwrap();
    let b = text.find("vpn-sip local-number 5679 address ipv4").unwrap();
    assert!(a < b, "{text}");
}

#[test]
fn no_vpn_sip_local_number_n_removes_only_that_number() {
    let t = format!("{}no vpn-sip local-number 5678\n", two_numbers());
    let p = parse(&t);
    let numbers: Vec<&str> = p
        .config
        .vpn_sip
        .local_numbers
        .iter()
        .map(|l| l.number.as_str())
        .collect();
    assert_eq!(numbers, ["5679"]);
}

#[test]
fn a_local_number_may_carry_its_own_digest_account() {
    let t = two_numbers().replace(
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet8",
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet8 username u5679 password 0 s5679",
    );
    let p = parse(&t);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let l = &p.config.vpn_sip.local_numbers[1];
    assert_eq!(l.username.as_deref(), Some("u5679"));
    assert_eq!(l.password.as_ref().map(|p| p.expose()), Some("s5679"));
    assert!(p.config.vpn_sip.local_numbers[0].username.is_none());
    assert!(lifeline_config::render(&p.config).contains(
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet8 username u5679 password 0 s5679\n"
    ));
    // A diagnostic about the line never shows the password.
    let t = format!(
        "{}vpn-sip local-number 5679 address ipv4 GigabitEthernet8 username u password s3cr3t\n",
        two_numbers()
    );
    let e = errors(&t);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("configured twice") && !e[0].contains("s3cr3t"),
        "{e:?}"
    );
    // username and password go together
    let t = two_numbers().replace(
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet8",
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet8 username u5679",
    );
    assert_eq!(
        errors(&t),
        vec![
            "46:2: error: Tunnel2 uses local number 5679, which no `vpn-sip local-number 5679 address ipv4 ...` line configures (configured: 5678): `vpn-sip local-number 5679 remote-number 4321 bandwidth 512` (suggestion: use local-number 5678 or add `vpn-sip local-number 5679 address ipv4 GigabitEthernet8`)",
            "47:1: error: a local number's username and password go together: `vpn-sip local-number 5679 address ipv4 GigabitEthernet8 username u5679` (suggestion: give both `username U` and `password P`, or neither)"
        ]
    );
}

#[test]
fn a_local_number_may_be_configured_once() {
    let t = format!("{BASE}vpn-sip local-number 5678 address ipv4 GigabitEthernet8\n");
    assert_eq!(
        errors(&t),
        vec![
            "30:1: error: VPN-SIP local number 5678 is configured twice: `vpn-sip local-number 5678 address ipv4 GigabitEthernet8` (suggestion: remove this line)"
        ]
    );
}

#[test]
fn every_local_number_registers_from_the_same_wan_interface() {
    let t = two_numbers().replace(
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet8",
        "vpn-sip local-number 5679 address ipv4 GigabitEthernet9",
    );
    assert_eq!(
        errors(&t),
        vec![
            "47:1: error: every VPN-SIP local number registers from one WAN interface: 5679 is on GigabitEthernet9 but 5678 is on GigabitEthernet8: `vpn-sip local-number 5679 address ipv4 GigabitEthernet9` (suggestion: use `address ipv4 GigabitEthernet8`)"
        ]
    );
}

#[test]
fn vpn_sip_tunnel_local_number_must_be_configured() {
    let t = with(
        "local-number 5678 remote-number",
        "local-number 5679 remote-number",
    );
    assert_eq!(
        errors(&t),
        vec![
            "26:2: error: Tunnel1 uses local number 5679, which no `vpn-sip local-number 5679 address ipv4 ...` line configures (configured: 5678): `vpn-sip local-number 5679 remote-number 1234 bandwidth 1000` (suggestion: use local-number 5678 or add `vpn-sip local-number 5679 address ipv4 GigabitEthernet8`)"
        ]
    );
}

#[test]
fn a_remote_number_is_bound_to_one_tunnel() {
    let t = two_numbers().replace("remote-number 4321", "remote-number 1234");
    assert_eq!(
        errors(&t),
        vec![
            "46:28: error: remote number 1234 is already bound to Tunnel1: a remote number has one VPN-SIP tunnel (calls and IKE identities are matched by it): `remote-number 1234` (suggestion: remove this line or the one under interface Tunnel1)"
        ]
    );
}

#[test]
fn tunnels_of_two_local_numbers_need_two_ikev2_profiles() {
    let t = two_numbers().replace("ikev2-profile IPROF2", "ikev2-profile IPROF");
    assert_eq!(
        errors(&t),
        vec![
            "45:2: error: IKEv2 profile IPROF keys Tunnel1 for local number 5678 and Tunnel2 for local number 5679: a profile shows one local identity: `tunnel protection ipsec profile IPROF ikev2-profile IPROF` (suggestion: give the tunnels of local number 5679 their own `crypto ikev2 profile` (with `identity local key-id 5679`))"
        ]
    );
}

#[test]
fn the_shared_profile_rule_follows_the_ipsec_profiles_ikev2_profile() {
    // Tunnel2 names no IKEv2 profile: its IPsec profile's `set ikev2-profile IPROF` keys it.
    let t = two_numbers()
        .replace(
            " set security-association idle-time 120\n",
            " set security-association idle-time 120\n set ikev2-profile IPROF\n",
        )
        .replace(
            "tunnel protection ipsec profile IPROF ikev2-profile IPROF2",
            "tunnel protection ipsec profile IPROF",
        );
    let e = errors(&t);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("IKEv2 profile IPROF keys Tunnel1 for local number 5678 and Tunnel2 for local number 5679"),
        "{e:?}"
    );
}

#[test]
fn a_tunnel_is_bound_to_one_local_number() {
    let t = with(
        " vpn-sip local-number 5678 remote-number 1234 bandwidth 1000\n",
        " vpn-sip local-number 5678 remote-number 1234 bandwidth 1000\n vpn-sip local-number 5679 remote-number 1234 bandwidth 1000\n",
    );
    assert_eq!(
        errors(&t),
        vec![
            "27:2: error: Tunnel1 is already bound to local-number 5678 remote-number 1234; a tunnel carries one VPN-SIP binding: `vpn-sip local-number 5679 remote-number 1234 bandwidth 1000` (suggestion: remove the other line (`no vpn-sip`) or bind local-number 5679 to another tunnel)"
        ]
    );
}

#[test]
fn a_local_number_without_a_tunnel_is_a_warning() {
    let t = format!(
        "{}vpn-sip local-number 5680 address ipv4 GigabitEthernet8\n",
        two_numbers()
    );
    assert!(errors(&t).is_empty(), "{:?}", errors(&t));
    assert_eq!(
        warnings(&t),
        vec![
            "48:1: warning: local number 5680 is bound to no VPN-SIP tunnel: it registers, but calls to it are refused (404): `vpn-sip local-number 5680 address ipv4 GigabitEthernet8` (suggestion: add `vpn-sip local-number 5680 remote-number R bandwidth B` under a Tunnel interface)"
        ]
    );
}

#[test]
fn remote_number_needs_a_keyring_peer_with_that_key_id() {
    let t = with("identity key-id 1234", "identity key-id 4321");
    assert_eq!(
        errors(&t),
        vec![
            "26:28: error: remote number 1234 has no peer with `identity key-id 1234` in keyring keys: `remote-number 1234` (suggestion: add `peer NAME` / `identity key-id 1234` / `pre-shared-key KEY` under `crypto ikev2 keyring keys`)"
        ]
    );
}

#[test]
fn remote_number_needs_no_keyring_when_the_profile_uses_certificates() {
    let t = with("identity key-id 1234", "identity key-id 4321")
        .replace(
            "authentication remote pre-share",
            "authentication remote rsa-sig",
        )
        .replace(
            "authentication local pre-share",
            "authentication local rsa-sig",
        );
    assert_eq!(errors(&t), Vec::<String>::new());
}

#[test]
fn vpn_sip_child_policy_may_only_use_priority_and_bandwidth_percent() {
    let t = format!(
        "{}policy-map CHILD\n class class-default\n  shape average 64000\n",
        with("bandwidth 1000", "bandwidth 1000 service-policy CHILD")
    );
    assert_eq!(
        errors(&t),
        vec![
            "32:3: error: VPN-SIP child policy CHILD (class class-default) may contain only `priority` and `bandwidth percent`: `shape average 64000` (suggestion: use `priority` or `bandwidth percent P`)"
        ]
    );
}

#[test]
fn vpn_sip_child_policy_with_priority_and_bandwidth_percent_is_accepted() {
    let t = format!(
        "{}class-map match-all UDP\n match protocol ip\npolicy-map CBWFQ\n class UDP\n  bandwidth percent 60\n  queue-limit 12 packets\n class class-default\n  priority percent 10\n",
        with("bandwidth 1000", "bandwidth 1000 service-policy CBWFQ")
    );
    assert_eq!(errors(&t), Vec::<String>::new());
}

#[test]
fn static_service_policy_output_on_a_vpn_sip_tunnel_is_refused() {
    let t = format!(
        "{}policy-map SHAPE\n class class-default\n  shape average 64000\n",
        with(
            " vpn-sip local-number 5678 remote-number 1234 bandwidth 1000\n",
            " vpn-sip local-number 5678 remote-number 1234 bandwidth 1000\n service-policy output SHAPE\n"
        )
    );
    assert_eq!(
        errors(&t),
        vec![
            "27:2: error: a static `service-policy output` is not allowed on VPN-SIP tunnel Tunnel1: VPN-SIP attaches its own shaper: `service-policy output SHAPE` (suggestion: remove it and use `vpn-sip ... bandwidth 1000 service-policy SHAPE`)"
        ]
    );
}

const MGRE: &str = "\
crypto ipsec profile P
interface Tunnel0
 ip address 10.0.0.1 255.255.255.0
 tunnel source Ethernet0
 tunnel mode gre multipoint
 tunnel key 100
 tunnel protection ipsec profile P shared
interface Tunnel1
 ip address 10.0.1.1 255.255.255.0
 tunnel source Ethernet0
 tunnel mode gre multipoint
 tunnel key 101
 tunnel protection ipsec profile P shared
";

#[test]
fn mgre_tunnels_sharing_a_source_with_distinct_keys_and_shared_are_accepted() {
    assert_eq!(errors(MGRE), Vec::<String>::new());
}

#[test]
fn mgre_tunnels_sharing_a_source_need_shared() {
    let t = MGRE.replacen(
        "profile P shared\ninterface Tunnel1",
        "profile P\ninterface Tunnel1",
        1,
    );
    assert_eq!(
        errors(&t),
        vec![
            "7:2: error: tunnels sharing tunnel source Ethernet0 with mGRE need `shared` on their tunnel protection (Tunnel0): `tunnel protection ipsec profile P` (suggestion: tunnel protection ipsec profile P shared)"
        ]
    );
}

#[test]
fn mgre_tunnels_sharing_a_source_need_distinct_keys() {
    let t = MGRE.replace("tunnel key 101", "tunnel key 100");
    assert_eq!(
        errors(&t),
        vec![
            "12:2: error: tunnels sharing tunnel source Ethernet0 need distinct tunnel keys: Tunnel1 and Tunnel0 have the same key: `tunnel key 100` (suggestion: set a different `tunnel key` on Tunnel1)"
        ]
    );
}

/// seed 000 L32, 001 L3195: the `shared` tunnels of one source use one IPsec profile; two shared groups with
/// different profiles on one source are refused, naming both tunnels and both profiles.
#[test]
fn shared_tunnels_on_one_source_need_one_ipsec_profile() {
    let t = format!("crypto ipsec profile Q\n{MGRE}");
    let t = {
        // Tunnel1's protection names Q.
        let at = t.rfind("profile P shared").unwrap();
        format!(
            "{}profile Q shared{}",
            &t[..at],
            &t[at + "profile P shared".len()..]
        )
    };
    assert_eq!(
        errors(&t),
        vec![
            "14:2: error: tunnels sharing tunnel source Ethernet0 with `shared` must use one IPsec profile: Tunnel0 uses P, Tunnel1 uses Q: `tunnel protection ipsec profile Q shared` (suggestion: tunnel protection ipsec profile P shared)"
        ]
    );
    // Point-to-point tunnels to one destination are held to the same rule.
    let p2p = t.replace("tunnel mode gre multipoint", "tunnel destination 192.0.2.1");
    assert_eq!(errors(&p2p).len(), 1, "{:?}", errors(&p2p));
    // On two sources, two profiles are what IOS asks for.
    let two_sources = t.replacen("tunnel source Ethernet0", "tunnel source Ethernet1", 1);
    assert_eq!(errors(&two_sources), Vec::<String>::new());
    assert_eq!(warnings(&two_sources), Vec::<String>::new());
}

/// seed 000 L41-42, 001 L3199-3205: one profile for a shared and an unshared tunnel, or for two sets of shared
/// tunnels, is a warning.
#[test]
fn one_profile_for_shared_and_unshared_tunnels_is_a_warning() {
    let mixed = MGRE.replacen("tunnel source Ethernet0", "tunnel source Ethernet1", 1);
    let mixed = {
        let at = mixed.rfind("profile P shared").unwrap();
        format!(
            "{}profile P{}",
            &mixed[..at],
            &mixed[at + "profile P shared".len()..]
        )
    };
    assert_eq!(errors(&mixed), Vec::<String>::new());
    assert_eq!(
        warnings(&mixed),
        vec![
            "13:2: warning: IPsec profile P is used with `shared` on Tunnel0 and without it on Tunnel1: shared and unshared tunnels need different profiles: `tunnel protection ipsec profile P` (suggestion: use another `crypto ipsec profile` on Tunnel1)"
        ]
    );
    let two_sets = MGRE.replacen("tunnel source Ethernet0", "tunnel source Ethernet1", 1);
    assert_eq!(errors(&two_sets), Vec::<String>::new());
    assert_eq!(warnings(&two_sets).len(), 1, "{:?}", warnings(&two_sets));
    assert!(warnings(&two_sets)[0].contains("each set of shared tunnels needs its own profile"));
}

/// seed-dmvpn TUN-6 / §6.2 A26: two unprotected mGRE tunnels on one source need different keys.
#[test]
fn unprotected_mgre_tunnels_on_one_source_need_distinct_keys() {
    let t = MGRE
        .replace(" tunnel protection ipsec profile P shared\n", "")
        .replace(" tunnel key 100\n", "")
        .replace(" tunnel key 101\n", "");
    assert_eq!(
        errors(&t),
        vec![
            "6:11: error: mGRE tunnels Tunnel0 and Tunnel1 have the same tunnel source Ethernet0 and no tunnel key: incoming GRE cannot be told apart: `Tunnel1` (suggestion: set a different `tunnel key` or `tunnel source` on Tunnel1)"
        ]
    );
    let keyed = MGRE
        .replace(" tunnel protection ipsec profile P shared\n", "")
        .replace("tunnel key 101", "tunnel key 100");
    assert_eq!(
        errors(&keyed),
        vec![
            "11:2: error: mGRE tunnels Tunnel0 and Tunnel1 have the same tunnel source Ethernet0 and tunnel key 100: incoming GRE cannot be told apart: `tunnel key 100` (suggestion: set a different `tunnel key` or `tunnel source` on Tunnel1)"
        ]
    );
    let other_source = t.replacen("tunnel source Ethernet0", "tunnel source Ethernet1", 1);
    assert_eq!(errors(&other_source), Vec::<String>::new());
}

/// seed-dmvpn §6.2 A8: `tunnel destination` on mGRE is a warning that names the destination line.
#[test]
fn tunnel_destination_on_mgre_names_its_line() {
    let t = MGRE.replacen(
        " tunnel key 100\n",
        " tunnel key 100\n tunnel destination 172.17.0.1\n",
        1,
    );
    let w: Vec<String> = parse(&t)
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("tunnel destination"))
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        w,
        vec![
            "7:2: warning: `tunnel destination` has no meaning on mGRE tunnel Tunnel0 (NHRP gives each peer's address): `tunnel destination 172.17.0.1` (suggestion: remove `tunnel destination` or use `tunnel mode gre ip`)"
        ]
    );
}

/// seed-dmvpn §6.1: PDF hyphenation (`network- id`, `adjust- mss`) is an error with a hint.
#[test]
fn hyphenated_keywords_are_refused_with_a_hint() {
    let t = "interface Tunnel5\n ip nhrp network- id 99\n ip tcp adjust- mss 1360\n";
    assert_eq!(
        errors(t),
        vec![
            "2:19: error: invalid network-id: `id` (suggestion: `network- id` looks like one keyword split by a hyphenation: write `network-id`)",
            "3:17: error: invalid TCP MSS: `mss` (suggestion: `adjust- mss` looks like one keyword split by a hyphenation: write `adjust-mss`)",
        ]
    );
}

/// seed-dmvpn §6.1: a glued `!` is part of the profile name; the suggestion says so.
#[test]
fn glued_bang_in_a_profile_name_is_named() {
    let t = MGRE.replace(
        "profile P shared\ninterface Tunnel1",
        "profile P!\ninterface Tunnel1",
    );
    let w: Vec<String> = parse(&t)
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("not defined"))
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        w,
        vec![
            "7:2: warning: IPsec profile P! is not defined: `tunnel protection ipsec profile P!` (suggestion: a `!` is a comment only at the start of a line: did you mean `P`?)"
        ]
    );
}

#[test]
fn shared_is_refused_with_tunnel_mode_ipsec_ipv4() {
    let t = with("ikev2-profile IPROF\n", "ikev2-profile IPROF shared\n");
    assert_eq!(
        errors(&t),
        vec![
            "25:2: error: `shared` cannot be used with `tunnel mode ipsec ipv4` on Tunnel1: `tunnel protection ipsec profile IPROF ikev2-profile IPROF shared` (suggestion: remove `shared`)"
        ]
    );
}

#[test]
fn device_must_be_a_valid_linux_interface_name() {
    let t = with(
        " ip nat outside\n",
        " ip nat outside\n device GigabitEthernet0/0/1\n",
    );
    assert_eq!(
        errors(&t),
        vec![
            "20:9: error: not a valid Linux interface name (1-15 characters, no `/`, `:` or spaces): `GigabitEthernet0/0/1` (suggestion: use the name `ip link` shows, such as eth1)"
        ]
    );
}

#[test]
fn route_with_host_bits_is_a_warning_with_a_hint_and_uses_the_network() {
    let p = parse("ip route 192.0.2.168 255.255.255.0 Tunnel1 254\n");
    assert!(!p.has_errors());
    let w: Vec<String> = p.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "1:10: warning: inconsistent address and mask: the prefix has host bits set; the network address is used: `192.0.2.168 255.255.255.0` (suggestion: ip route 192.0.2.0 255.255.255.0 ...)"
        ]
    );
    assert_eq!(p.config.ip_routes[0].prefix.addr.to_string(), "192.0.2.0");
}

#[test]
fn non_contiguous_mask_is_an_error() {
    assert_eq!(
        errors("ip route 10.0.0.0 255.0.255.0 Tunnel1\n"),
        vec![
            "1:19: error: netmask is not contiguous: `255.0.255.0` (suggestion: use a mask such as 255.255.255.0)"
        ]
    );
}

#[test]
fn vpn_sip_ikev2_profile_needs_nat_force_encap() {
    let t = with(" nat force-encap\n", "");
    assert_eq!(
        errors(&t),
        vec![
            "24:2: error: IKEv2 profile IPROF of VPN-SIP tunnel Tunnel1 needs `nat force-encap`: `tunnel protection ipsec profile IPROF ikev2-profile IPROF` (suggestion: add `nat force-encap` under `crypto ikev2 profile IPROF`)"
        ]
    );
}

#[test]
fn vpn_sip_wan_and_loopback_need_nat_outside_and_inside() {
    let t = with(" ip nat outside\n", "").replacen(" ip nat inside\n", "", 1);
    let p = parse(&t);
    assert!(!p.has_errors());
    let w: Vec<String> = p.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "26:1: warning: VPN-SIP WAN interface GigabitEthernet8 needs `ip nat outside`: `vpn-sip local-number 5678 address ipv4 GigabitEthernet8` (suggestion: add `ip nat outside` under interface GigabitEthernet8)",
            "27:1: warning: VPN-SIP tunnel source Loopback1 needs `ip nat inside`: `vpn-sip tunnel source Loopback1` (suggestion: add `ip nat inside` under interface Loopback1)"
        ]
    );
}

#[test]
fn two_interfaces_cannot_bind_the_same_linux_device() {
    let t = "interface GigabitEthernet0/0/0\n device eth0\ninterface GigabitEthernet0/0/1\n device eth0\n";
    assert_eq!(
        errors(t),
        vec![
            "4:2: error: Linux device eth0 is already bound to interface GigabitEthernet0/0/0: `device eth0` (suggestion: bind GigabitEthernet0/0/1 to another device)"
        ]
    );
}

#[test]
fn ikev2_proposal_transforms_must_be_known() {
    let t = "crypto ikev2 proposal p1\n encryption aes-cbc-128 aes-cbc-196\n integrity sha1\n group 14\n";
    assert_eq!(
        errors(t),
        vec![
            "2:2: error: unknown IKEv2 encryption transform `aes-cbc-196` in proposal p1: `encryption aes-cbc-128 aes-cbc-196` (suggestion: encryption aes-cbc-192)"
        ]
    );
}

#[test]
fn weak_transform_sets_and_undefined_names_are_warnings_with_hints() {
    let p = parse(
        "crypto ipsec transform-set cisco esp-des\ncrypto ipsec profile P\n set transform-set Cisco\n",
    );
    assert!(!p.has_errors());
    let w: Vec<String> = p.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "1:1: warning: transform set cisco uses weak algorithms: esp-des: `crypto ipsec transform-set cisco esp-des` (suggestion: use esp-aes 256 esp-sha256-hmac or esp-gcm 256)",
            "1:1: warning: transform set cisco has no integrity transform (no authentication, no anti-replay): `crypto ipsec transform-set cisco esp-des` (suggestion: add esp-sha256-hmac)",
            "3:2: warning: transform set Cisco is not defined (IPsec profile P): `set transform-set Cisco` (suggestion: did you mean `cisco`? (names are case-sensitive))"
        ]
    );
}

#[test]
fn legacy_isakmp_policy_is_a_warning_naming_the_replacement() {
    // The 12.4 DMVPN seeds' policy: only `authentication pre-share`, so DES and group 1 by IOS default.
    let t = "crypto isakmp policy 1\n authentication pre-share\ncrypto isakmp policy 2\n encryption aes 256\n hash md5\n group 14\ncrypto isakmp policy 3\n encr aes\n group 14\n";
    let p = parse(t);
    assert!(!p.has_errors());
    let w: Vec<String> = p.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "1:1: warning: crypto isakmp policy 1 uses legacy algorithms that Lifeline's IKEv1 refuses: encryption des (IOS default), group 1 (IOS default): `crypto isakmp policy 1` (suggestion: configure encryption aes 256, group 14)",
            "3:1: warning: crypto isakmp policy 2 uses legacy algorithms that Lifeline's IKEv1 refuses: hash md5: `crypto isakmp policy 2` (suggestion: configure hash sha256)"
        ]
    );
}

/// Two static VTIs whose IPsec profiles (GCM, CBC) name one IKEv2 profile: that profile negotiates the
/// first one's transform sets for both (tests/guest_svti.rs: Tunnel1 proposed GCM to a CBC-only peer), so
/// the second tunnel gets a warning; with its own IKEv2 profile, or the same ESP settings, nothing.
#[test]
fn tunnels_of_one_ikev2_profile_with_different_esp_settings_are_warned() {
    let t = "\
crypto ikev2 keyring KR
 peer any
  address 0.0.0.0 0.0.0.0
  pre-shared-key k
crypto ikev2 profile PROF
 match identity remote any
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
crypto ipsec transform-set GCM esp-gcm 256
 mode tunnel
crypto ipsec transform-set CBC esp-aes 256 esp-sha256-hmac
 mode tunnel
crypto ipsec profile P-GCM
 set transform-set GCM
 set ikev2-profile PROF
crypto ipsec profile P-CBC
 set transform-set CBC
 set ikev2-profile PROF
interface GigabitEthernet0
 ip address 192.0.2.11 255.255.255.0
interface Tunnel0
 ip address 172.16.0.1 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
 tunnel destination 192.0.2.1
 tunnel protection ipsec profile P-GCM
interface Tunnel1
 ip address 172.16.1.1 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
 tunnel destination 192.0.2.2
 tunnel protection ipsec profile P-CBC
";
    assert_eq!(errors(t), Vec::<String>::new());
    let w = warnings(t);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(
            "Tunnel1: IKEv2 profile PROF negotiates the transform sets, PFS and lifetimes of IPsec profile P-GCM for every tunnel it keys, not those of P-CBC"
        ) && w[0].contains("tunnel protection ipsec profile P-CBC"),
        "{w:?}"
    );
    // Its own IKEv2 profile: no warning.
    let own = t
        .replace(
            "crypto ipsec transform-set GCM",
            "crypto ikev2 profile PROF2\n match identity remote any\n authentication local pre-share\n \
             authentication remote pre-share\n keyring local KR\ncrypto ipsec transform-set GCM",
        )
        .replace(
            " set transform-set CBC\n set ikev2-profile PROF\n",
            " set transform-set CBC\n set ikev2-profile PROF2\n",
        );
    assert_eq!(warnings(&own), Vec::<String>::new());
    // Two profile names with the same ESP settings: nothing to warn about.
    let same = t.replace(" set transform-set CBC\n", " set transform-set GCM\n");
    assert_eq!(warnings(&same), Vec::<String>::new());
}

/// `match identity remote` lines the IKEv2 side cannot enforce (`fqdn domain`, `email`, a second line)
/// would make the profile match any peer: each is warned; `any`, `address 0.0.0.0`, one exact address
/// (also with 255.255.255.255), one subnet (`address A M`, enforced since session 5: the peer's IPv4
/// identity or address must be inside), key-id or fqdn are not.
#[test]
fn unenforced_match_identity_remote_lines_are_warned() {
    let profile = |lines: &str| {
        format!(
            "crypto ikev2 keyring KR\n peer any\n  address 0.0.0.0 0.0.0.0\n  pre-shared-key k\n\
             crypto ikev2 profile PROF\n{lines} authentication local pre-share\n \
             authentication remote pre-share\n keyring local KR\n"
        )
    };
    for ok in [
        " match identity remote any\n",
        " match identity remote address 0.0.0.0\n",
        " match identity remote address 192.0.2.1\n",
        " match identity remote address 192.0.2.1 255.255.255.255\n",
        " match identity remote address 10.0.0.0 255.0.0.0\n",
        " match identity remote address 10.1.2.3 0.0.0.0\n",
        " match identity remote key-id site1\n",
        " match identity remote fqdn hub.example.net\n",
    ] {
        assert_eq!(warnings(&profile(ok)), Vec::<String>::new(), "{ok}");
    }
    for bad in [
        " match identity remote address 10.0.0.0 255.0.0.0\n match identity remote address 192.0.2.0 255.255.255.0\n",
        " match identity remote fqdn domain example.net\n",
        " match identity remote email admin@example.net\n",
        " match identity remote key-id site1\n match identity remote key-id site2\n",
    ] {
        let w = warnings(&profile(bad));
        assert_eq!(w.len(), 1, "{bad}: {w:?}");
        assert!(
            w[0].contains(
                "crypto ikev2 profile PROF: this `match identity remote` is not enforced"
            ),
            "{w:?}"
        );
    }
}

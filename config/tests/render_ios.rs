//! The renderer against `show running-config` samples in the seeds.
#![allow(clippy::unwrap_used)]

use lifeline_config::{parse, render};

/// seed 002 L4083-4122 (EX-4.22), the IKEv2 part of a real running-config, with the keys
/// of the corrected EX-4.23 and without the seed's duplicated ` !` line.
const SEED_RUNNING_CONFIG: &str = "\
crypto ikev2 keyring keys
 peer peer1
  identity key-id 0312341111
  pre-shared-key psk1
 !
 peer NONID
  identity fqdn example.com
  pre-shared-key psk1
 !
!
crypto ikev2 profile test
 match identity remote any
 identity local key-id 0623458888
 authentication remote pre-share
 authentication local pre-share
 keyring local keys
 dpd 10 6 periodic
 nat force-encap
!
";

#[test]
fn ikev2_keyring_and_profile_render_like_ios_running_config() {
    // Input without indentation, in another order, with abbreviations.
    let p = parse(
        "crypto ikev2 profile test\nnat force-encap\ndpd 10 6 periodic\nkeyring local keys\nauth local pre-share\n\
         auth remote pre-share\nidentity local key-id 0623458888\nmatch identity remote any\n\
         crypto ikev2 keyring keys\npeer peer1\nidentity key-id 0312341111\npre-shared-key psk1\n\
         peer NONID\nidentity fqdn example.com\npre-shared-key psk1\n",
    );
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    assert_eq!(render(&p.config), format!("!\n{SEED_RUNNING_CONFIG}end\n"));
}

/// seed 002 L3807-3822 (EX-4.19) and L3962-3981 (EX-4.21): `show running-config interface`.
#[test]
fn vpn_sip_tunnel_and_wan_render_like_ios_running_config() {
    let p = parse(
        "interface Tunnel1\n ip address 10.5.5.5 255.255.255.255\n tunnel source Loopback11\n\n\
         tunnel mode ipsec ipv4\ntunnel destination dynamic\ntunnel protection ipsec profile test-prof ikev2-profile test\n\
         vpn-sip local-number 0623458888 remote-number 0312341111 bandwidth 1000\n\
         interface GigabitEthernet0/4\n ip dhcp client request sip-server-address\n ip dhcp client request vendor-identifying-specific\n\
         ip address dhcp\n ip nat outside\n ip virtual-reassembly in\n duplex auto\n speed auto\n",
    );
    // A fragment: its IPsec profile is elsewhere, so validation reports the missing idle time.
    let r = render(&p.config);
    assert!(
        r.contains(
            "interface Tunnel1\n ip address 10.5.5.5 255.255.255.255\n tunnel source Loopback11\n tunnel mode ipsec ipv4\n \
             tunnel destination dynamic\n tunnel protection ipsec profile test-prof ikev2-profile test\n \
             vpn-sip local-number 0623458888 remote-number 0312341111 bandwidth 1000\n!\n"
        ),
        "{r}"
    );
    assert!(
        r.contains(
            "interface GigabitEthernet0/4\n ip dhcp client request sip-server-address\n \
             ip dhcp client request vendor-identifying-specific\n ip address dhcp\n ip nat outside\n \
             ip virtual-reassembly in\n duplex auto\n speed auto\n!\n"
        ),
        "{r}"
    );
}

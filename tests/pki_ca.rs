//! CA trustpoints in the appliance, against strongSwan: `crypto pki trustpoint CA` with the CA certificate
//! accepted by `lifeline pki authenticate CA FILE`, `revocation-check crl` with the CA's CRL beside it, our
//! own certificate issued by that CA (placed as for `enrollment terminal`), `identity local dn`, and
//! `match certificate` with a certificate map on the issuer.
//!
//! 1. strongSwan presents a certificate issued by the CA: the SVTI comes up, pings cross it both ways,
//!    `show crypto pki certificates` / `trustpoints` list ours and the CA's in the IOS layout.
//! 2. strongSwan presents a certificate the CA revoked (in the CRL): no SA; Lifeline logs the refusal
//!    with the reason ("revoked").
//! 3. `revocation-check crl` and no CRL at all: a valid certificate is refused too ("no current CRL"), as
//!    IOS refuses when it cannot fetch the CRL.
//!
//! The test PKI is the IKE crate's (ike/tests/data, see its README). Root and strongSwan are needed:
//! skipped with a message otherwise, failed when `LIFELINE_REQUIRE_NETNS=1`.
#![allow(clippy::unwrap_used)]
mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::lifeline::{BIN, Lifeline};
use common::strongswan::{Charon, strongswan_available};
use common::*;

const A_WAN: &str = "198.51.100.1";
const B_WAN: &str = "198.51.100.2";
const A_LAN: &str = "10.1.0.1";
const B_LAN: &str = "10.2.0.1";

static SERIAL: Mutex<()> = Mutex::new(());

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ike/tests/data")
        .join(file)
}

fn lifeline_config() -> String {
    format!(
        "\
hostname branch
!
crypto pki trustpoint CA
 enrollment url http://192.0.2.9/
 serial-number none
 revocation-check crl
 rsakeypair branch
!
crypto pki certificate map data 1
 issuer-name co cn = lifeline test ca
!
crypto ikev2 profile PROF
 match certificate data
 identity local dn
 authentication local rsa-sig
 authentication remote rsa-sig
 pki trustpoint CA
!
crypto ipsec transform-set TS esp-gcm 256
 mode tunnel
!
crypto ipsec profile IPS
 set transform-set TS
 set ikev2-profile PROF
!
interface GigabitEthernet0
 device eth0
 ip address {A_WAN} 255.255.255.0
!
interface Tunnel0
 ip address 172.16.0.1 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
 tunnel destination {B_WAN}
 tunnel protection ipsec profile IPS
!
ip route 10.2.0.0 255.255.255.0 Tunnel0
"
    )
}

/// strongSwan's side: route-based, authenticating with `cert` (issued by `x509ca`'s CA), trusting the test CA.
fn strongswan_conf(cert: &str) -> String {
    format!(
        r#"connections {{
    lifeline {{
        version = 2
        local_addrs = {B_WAN}
        remote_addrs = {A_WAN}
        proposals = aes256-sha256-ecp256,aes256-sha256-modp2048
        send_cert = always
        dpd_delay = 0
        local {{
            auth = pubkey
            certs = {cert}
        }}
        remote {{
            auth = pubkey
            id = "O=Lifeline Test, CN=branch.lifeline.test"
        }}
        children {{
            svti {{
                mode = tunnel
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = aes256gcm16
                start_action = none
            }}
        }}
    }}
}}
"#
    )
}

/// Authenticate the CA, place our certificate, key and the CA's CRL (if any) in a fresh state directory,
/// and start the appliance with it.
fn start_site(ns: &Netns, crl: Option<&str>) -> Lifeline {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pkica-{}", ns.name));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = dir.join("branch.cfg");
    std::fs::write(&cfg, lifeline_config()).unwrap();
    let out = Command::new(BIN)
        .args(["pki", "authenticate", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .arg("CA")
        .arg(data("ca.der"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Fingerprint SHA1:"),
        "pki authenticate: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(crl) = crl {
        std::fs::copy(data(crl), state.join("pki/CA.crl")).unwrap();
    }
    std::fs::copy(data("lifeline-ca.pk8.der"), state.join("pki/branch.key")).unwrap();
    std::fs::copy(data("lifeline-ca.der"), state.join("pki/CA.crt")).unwrap();
    Lifeline::start_with(
        ns,
        "pkica-site",
        &lifeline_config(),
        &[OsStr::new("--state-dir"), state.as_os_str()],
    )
}

fn topology() -> (Netns, Netns) {
    wan_pair("ca", A_WAN, A_LAN, B_WAN, B_LAN)
}

fn charon(b: &Netns, cert: &str, key: &str) -> Charon {
    let (c, k, ca) = (data(cert), data(key), data("ca.der"));
    let creds: [(&str, &Path); 3] = [("x509", &c), ("private", &k), ("x509ca", &ca)];
    let charon = Charon::start_with_creds(b, &strongswan_conf(cert), &creds);
    charon.route_based(b, &["10.1.0.0/24"], B_LAN);
    charon
}

#[test]
fn ca_issued_certificates_bring_the_tunnel_up_and_show_crypto_pki_lists_them() {
    if !strongswan_available("ca_issued_certificates_bring_the_tunnel_up") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = topology();
    let _sw = charon(&b, "swan-ca.der", "swan-ca.pk8.der");
    let site = start_site(&a, Some("ca-empty.crl.der"));
    let took = ping_until(&a, A_LAN, B_LAN, Duration::from_secs(20));
    println!("CA-validated SVTI to strongSwan: first answer after {took:?}");
    ping_until(&b, B_LAN, A_LAN, Duration::from_secs(5));
    assert!(site.log().contains("CA_LOADED"), "{}", site.log());

    let certs = site.show(&["show", "crypto", "pki", "certificates"]);
    println!("{certs}");
    assert!(
        certs.starts_with("Certificate\n  Status: Available\n"),
        "{certs}"
    );
    for want in [
        "CA Certificate\n  Status: Available\n",
        "  Certificate Usage: Signature\n",
        "  Subject:\n    cn=branch.lifeline.test\n    o=Lifeline Test\n",
        "  Issuer: \n    cn=Lifeline Test CA\n    o=Lifeline Test\n",
        "  Associated Trustpoints: CA \n",
        "    start date: ",
    ] {
        assert!(certs.contains(want), "{want:?} missing:\n{certs}");
    }
    let tps = site.show(&["show", "crypto", "pki", "trustpoints"]);
    println!("{tps}");
    assert!(
        tps.starts_with("Trustpoint CA:\n    Subject Name: \n    cn=Lifeline Test CA\n"),
        "{tps}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&site.show(&["show", "crypto", "pki", "certificates", "--json"]))
            .unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
}

#[test]
fn a_revoked_certificate_or_a_missing_crl_is_refused_with_the_reason() {
    if !strongswan_available("a_revoked_certificate_or_a_missing_crl_is_refused") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (cert, key, crl, reason) in [
        (
            "swan-revoked.der",
            "swan-revoked.pk8.der",
            Some("ca.crl.der"),
            "revoked",
        ),
        ("swan-ca.der", "swan-ca.pk8.der", None, "no current CRL"),
    ] {
        let (a, b) = topology();
        let sw = charon(&b, cert, key);
        let site = start_site(&a, crl);
        site.wait_log("AUTH_FAILED", Duration::from_secs(20));
        let log = site.log();
        assert!(
            log.lines()
                .any(|l| l.contains("AUTH_FAILED") && l.contains(reason)),
            "no refusal naming `{reason}`:\n{log}"
        );
        assert!(!log.contains("SA_INSTALLED"), "{log}");
        assert!(
            !a.try_run(&["ping", "-c", "1", "-W", "1", "-I", A_LAN, B_LAN]),
            "traffic crossed a refused tunnel"
        );
        drop(sw);
    }
}

//! IKEv1 interop with a real strongSwan (charon 5.9, `version = 1`) in a network namespace.
//!
//! Root only: skipped with a message when not root or strongSwan is missing, and FAILS instead when
//! `LIFELINE_REQUIRE_NETNS=1`. Uses the crate's own harness (`tests/swan/mod.rs`, shared with
//! `strongswan.rs`): one namespace runs charon at 192.0.2.1, ours is 192.0.2.2 (a veth between them);
//! the charon config is written by this test (below). It then re-runs this binary inside ours, where
//! [`inner_strongswan_v1_peer`] drives a `v1::Endpoint` over a real UDP socket on port 500:
//! 1. we initiate main mode + quick mode (tunnel 0.0.0.0/0, no PFS), check charon's SAs, DPD runs,
//!    then we DELETE;
//! 2. charon initiates, we respond; charon deletes;
//! 3. we initiate transport mode for GRE (protocol 47, host to host) with PFS (ECP-256); the testbed's
//!    kernel-libipsec cannot install transport mode, so charon deletes that IPsec SA again, which we
//!    must process;
//! 4. RSA signatures (charon's `v1rsa` at a second address 192.0.2.3, DN identities, self-signed test
//!    certificates from `tests/data`, ours pinned there as CA, charon's pinned here): we initiate;
//! 5. the same, charon initiates and terminates;
//! 6. charon (at .4) tries aggressive mode: refused with INVALID-EXCHANGE-TYPE and a log line;
//! 7. charon (at .5) has the wrong PSK: AUTHENTICATION-FAILED, `AuthFailed { BadPsk }` here.
//!
//! kernel-libipsec also makes charon fake a NAT (it only does UDP-encapsulated ESP), so every run
//! exercises NAT-D detection and the float to 4500.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod swan;

use lifeline_ike::v1::{
    AuthMethod, Config, Endpoint, HashAlg, IsakmpPolicy, Keepalive, PolicyEncryption, PolicyHash,
    PresharedKey, RsaSig, Selectors,
};
use lifeline_ike::{ChildSaKeys, DeleteReason, DhGroup, Event, Mode, Rng};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};
use swan::{Charon, Cred, Netns};

const PSK: &str = "lifeline-ikev1-interop-psk";

/// charon's side: main mode PSK with IP identities; child `gre` (transport, GRE, PFS ecp256) first so
/// that a 0.0.0.0/0 proposal cannot match it, then `net` (tunnel 0.0.0.0/0).
const CHARON_CONF: &str = r#"
connections {
    v1 {
        version = 1
        aggressive = no
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes256-sha1-modp2048,aes128-sha256-ecp256
        dpd_delay = 2s
        local {
            auth = psk
            id = 192.0.2.1
        }
        remote {
            auth = psk
            id = 192.0.2.2
        }
        children {
            gre {
                mode = transport
                local_ts = dynamic[gre]
                remote_ts = dynamic[gre]
                esp_proposals = aes128-sha1-ecp256
                start_action = none
            }
            net {
                mode = tunnel
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = aes128-sha1,aes256-sha256
                start_action = none
            }
        }
    }
    v1rsa {
        version = 1
        aggressive = no
        local_addrs = 192.0.2.3
        remote_addrs = 192.0.2.2
        proposals = aes256-sha256-modp2048
        dpd_delay = 0
        send_cert = always
        local {
            auth = pubkey
            certs = cert2000.der
            id = "CN=branch2000"
        }
        remote {
            auth = pubkey
            id = "CN=branch1000"
        }
        children {
            net2 {
                mode = tunnel
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = aes256-sha256
                start_action = none
            }
        }
    }
    v1am {
        version = 1
        aggressive = yes
        local_addrs = 192.0.2.4
        remote_addrs = 192.0.2.2
        proposals = aes256-sha1-modp2048
        local {
            auth = psk
            id = 192.0.2.4
        }
        remote {
            auth = psk
            id = 192.0.2.2
        }
        children {
            am {
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = aes128-sha1
                start_action = none
            }
        }
    }
    v1bad {
        version = 1
        local_addrs = 192.0.2.5
        remote_addrs = 192.0.2.2
        proposals = aes256-sha1-modp2048
        local {
            auth = psk
            id = 192.0.2.5
        }
        remote {
            auth = psk
            id = 192.0.2.2
        }
        children {
            bad {
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = aes128-sha1
                start_action = none
            }
        }
    }
}
secrets {
    ike-am {
        id-1 = 192.0.2.4
        id-2 = 192.0.2.2
        secret = "lifeline-ikev1-interop-psk"
    }
    ike-bad {
        id-1 = 192.0.2.5
        id-2 = 192.0.2.2
        secret = "not-the-lifeline-psk"
    }
    ike-v1 {
        id-1 = 192.0.2.1
        id-2 = 192.0.2.2
        secret = "lifeline-ikev1-interop-psk"
    }
}
"#;

#[test]
fn strongswan_ikev1_interop_both_roles() {
    if !swan::available("strongswan_ikev1_interop_both_roles", &[]) {
        return;
    }
    let sw = Netns::new("sw1");
    let ll = Netns::new("ll1");
    swan::veth(&sw, "eth0", "192.0.2.1/24", &ll, "eth0", "192.0.2.2/24");
    sw.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    // More charon addresses, one per connection below (charon picks its IKE config by address):
    // .3 RSA, .4 aggressive mode, .5 wrong PSK.
    for a in ["192.0.2.3/24", "192.0.2.4/24", "192.0.2.5/24"] {
        sw.run(&["ip", "addr", "add", a, "dev", "eth0"]);
    }
    // Credentials for `v1rsa`; Lifeline's self-signed cert1000 is charon's CA.
    let cred = |dir, name| Cred {
        dir,
        name,
        der: std::fs::read(swan::data(name)).unwrap(),
    };
    let charon = Charon::start(
        &sw,
        CHARON_CONF,
        &[
            cred("x509", "cert2000.der"),
            cred("x509ca", "cert1000.der"),
            cred("private", "key2000.pk8.der"),
        ],
        "",
        2,
    );
    let (ok, out) = ll.rerun(
        "inner_strongswan_v1_peer",
        Some(&charon.state),
        &[],
        Duration::from_secs(120),
    );
    let log = charon.log();
    assert!(ok, "inner test failed:\n{out}\n--- charon.log ---\n{log}");
    eprintln!("{out}");
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("error")
                || l.contains("invalid")
                || l.contains("failed")
                || l.contains("discard"))
                && !l.contains("[knl]")
                && !l.contains("[esp]")
                // the refusals we provoke on purpose (scenarios 6 and 7)
                && !l.contains("<v1am|")
                && !l.contains("<v1bad|")
                && !l.contains("initiate failed")
        })
        .collect();
    eprintln!("charon complaints: {complaints:#?}");
    assert!(complaints.is_empty(), "{complaints:#?}");
    assert_eq!(
        log.matches("] established between 192.0.2.1[192.0.2.1]...192.0.2.2[192.0.2.2]")
            .count(),
        3,
        "{log}"
    );
    // charon's DPD requests were answered.
    assert!(log.contains("[ HASH N(DPD_ACK) ]"), "{log}");
    // Transport mode for GRE with PFS was negotiated (charon then cannot install it, see the inner test).
    assert!(
        log.contains("selected proposal: ESP:AES_CBC_128/HMAC_SHA1_96/ECP_256/NO_EXT_SEQ"),
        "{log}"
    );
    assert!(log.contains("IPsec SA: unsupported mode"), "{log}");
    // 6. Aggressive mode refused with INVALID-EXCHANGE-TYPE (RFC 2408 value 7; charon 5.9 prints the
    // IKEv2 name of 7, INVALID_SYNTAX). 7. Wrong PSK answered AUTHENTICATION-FAILED (charon, holding keys
    // by then, rightly ignores it as unprotected and times out).
    assert!(
        log.contains("parsed INFORMATIONAL_V1 request 0 [ N(INVAL_SYN) ]"),
        "{log}"
    );
    assert!(
        log.contains("parsed INFORMATIONAL_V1 request 0 [ N(AUTH_FAILED) ]"),
        "{log}"
    );
    // RSA signatures, both roles.
    assert_eq!(
        log.matches("] established between 192.0.2.3[CN=branch2000]...192.0.2.2[CN=branch1000]")
            .count(),
        2,
        "{log}"
    );
}

struct OsRng(std::fs::File);
impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) {
        use std::io::Read;
        self.0.read_exact(buf).unwrap();
    }
}

fn swanctl(args: &[&str]) -> Child {
    swan::inner_swanctl(args)
}

fn list_sas() -> String {
    let o = swanctl(&["--list-sas"]).wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Our two IKE sockets (500 and 4500: kernel-libipsec makes charon fake a NAT, so we float).
struct Socks {
    s500: UdpSocket,
    s4500: UdpSocket,
}

impl Socks {
    fn bind() -> Self {
        let s500 = UdpSocket::bind("192.0.2.2:500").unwrap();
        let s4500 = UdpSocket::bind("192.0.2.2:4500").unwrap();
        for s in [&s500, &s4500] {
            s.set_read_timeout(Some(Duration::from_millis(25))).unwrap();
        }
        Socks { s500, s4500 }
    }
    fn local(&self) -> SocketAddr {
        self.s500.local_addr().unwrap()
    }
}

fn drive(ep: &mut Endpoint, socks: &Socks, seen: &mut Vec<Event>, done: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 65536];
    loop {
        while let Some(t) = ep.poll_transmit() {
            let s = if t.local.port() == 4500 {
                &socks.s4500
            } else {
                &socks.s500
            };
            s.send_to(&t.payload, t.remote).unwrap();
        }
        while let Some(e) = ep.poll_event() {
            println!("event: {e:?}");
            seen.push(e);
        }
        while let Some(d) = ep.poll_diagnostic() {
            println!("diagnostic: {d}");
        }
        if done(seen) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out; events: {seen:?}");
        for s in [&socks.s500, &socks.s4500] {
            match s.recv_from(&mut buf) {
                Ok((n, from)) => {
                    ep.handle_input(Instant::now(), s.local_addr().unwrap(), from, &buf[..n])
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        if ep.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            ep.handle_timeout(Instant::now());
        }
    }
}

fn child_keys(ev: &[Event]) -> Vec<ChildSaKeys> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaEstablished { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect()
}

fn config() -> Config {
    let mut c = Config::psk(PresharedKey::new(
        PSK.as_bytes(),
        Ipv4Addr::new(192, 0, 2, 1),
        None,
    ));
    c.keepalive = Some(Keepalive {
        interval: Duration::from_secs(2),
        retry: Duration::from_secs(2),
        periodic: true,
    });
    c
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_ikev1_interop_both_roles"]
fn inner_strongswan_v1_peer() {
    if !swan::is_inner("inner_strongswan_v1_peer") {
        return;
    }
    let sock = Socks::bind();
    let rng = || Box::new(OsRng(std::fs::File::open("/dev/urandom").unwrap()));
    let remote: SocketAddr = "192.0.2.1:500".parse().unwrap();

    // 1. We initiate (tunnel 0/0, no PFS); DPD both ways for a few seconds; we delete.
    let mut ep = Endpoint::new(config(), rng());
    let id = ep.initiate(Instant::now(), sock.local(), remote).unwrap();
    let mut seen = Vec::new();
    drive(&mut ep, &sock, &mut seen, |e| !child_keys(e).is_empty());
    let c = &child_keys(&seen)[0];
    println!(
        "as initiator: {:08x}_i {:08x}_o {:?} {:?}",
        c.spi_in, c.spi_out, c.encr, c.ts_remote
    );
    let t = Instant::now() + Duration::from_millis(300);
    drive(&mut ep, &sock, &mut seen, |_| Instant::now() > t);
    let list = list_sas();
    println!("{list}");
    assert!(
        list.contains("ESTABLISHED") && list.contains("INSTALLED"),
        "{list}"
    );
    assert!(list.contains(&format!("{:08x}", c.spi_out)), "{list}");
    let t = Instant::now() + Duration::from_secs(6);
    drive(&mut ep, &sock, &mut seen, |_| Instant::now() > t);
    assert!(
        !seen.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. })),
        "{seen:?}"
    );
    ep.delete_ike_sa(Instant::now(), id).unwrap();
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
    });
    let t = Instant::now() + Duration::from_millis(500);
    drive(&mut ep, &sock, &mut seen, |_| Instant::now() > t);
    let list = list_sas();
    assert!(!list.contains("ESTABLISHED"), "charon deleted: {list}");

    // 2. charon initiates, we respond; charon terminates.
    let mut ep = Endpoint::new(config(), rng());
    let mut seen = Vec::new();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "v1",
        "--child",
        "net",
        "--timeout",
        "15",
    ]);
    drive(&mut ep, &sock, &mut seen, |e| !child_keys(e).is_empty());
    let out = init.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "swanctl --initiate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let c = &child_keys(&seen)[0];
    println!(
        "as responder: {:08x}_i {:08x}_o {:?} {:?} {:?}",
        c.spi_in, c.spi_out, c.encr, c.ts_local, c.ts_remote
    );
    let term = swanctl(&["--terminate", "--ike", "v1", "--timeout", "10"]);
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter().any(|e| {
            matches!(
                e,
                Event::IkeSaDeleted {
                    reason: DeleteReason::PeerRequest,
                    ..
                }
            )
        })
    });
    assert!(term.wait_with_output().unwrap().status.success());

    // 3. Transport mode for GRE with PFS.
    let mut cfg = config();
    cfg.mode = Mode::Transport;
    cfg.selectors = Selectors::Host { protocol: 47 };
    cfg.pfs = Some(DhGroup::Ecp256);
    let mut ep = Endpoint::new(cfg, rng());
    let id = ep.initiate(Instant::now(), sock.local(), remote).unwrap();
    let mut seen = Vec::new();
    drive(&mut ep, &sock, &mut seen, |e| !child_keys(e).is_empty());
    let c = &child_keys(&seen)[0];
    assert_eq!(c.mode, Mode::Transport);
    // kernel-libipsec has no transport mode ("IPsec SA: unsupported mode"), so charon, having
    // negotiated the SA with us, fails to install it and DELETEs it: the DELETE must reach us.
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { spi_out, .. } if *spi_out == c.spi_out))
    });
    ep.delete_ike_sa(Instant::now(), id).unwrap();
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
    });
    let t = Instant::now() + Duration::from_millis(500);
    drive(&mut ep, &sock, &mut seen, |_| Instant::now() > t);

    // 4. RSA signatures (pinned certificate), we initiate to charon's second address; 5. charon initiates.
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let rd = |f: &str| std::fs::read(data.join(f)).unwrap();
    let mut cfg = config();
    cfg.keys.clear();
    cfg.keepalive = None;
    cfg.policies = vec![IsakmpPolicy {
        priority: 1,
        encryption: PolicyEncryption::Aes(256),
        hash: PolicyHash::Hash(HashAlg::Sha256),
        authentication: AuthMethod::RsaSig,
        group: 14,
        lifetime: Duration::from_secs(86400),
    }];
    cfg.transform_sets[0].encr = lifeline_ike::EncrAlg::AesCbc256;
    cfg.transform_sets[0].integ = Some(lifeline_ike::IntegAlg::HmacSha256_128);
    cfg.rsa = Some(RsaSig {
        key_pkcs8: lifeline_ike::Secret::new(rd("key1000.pk8.der")),
        cert_der: rd("cert1000.der"),
        trusted_certs: vec![lifeline_ike::Fingerprint::of_cert(&rd("cert2000.der"))],
    });
    let mut ep = Endpoint::new(cfg, rng());
    let id = ep
        .initiate(
            Instant::now(),
            sock.local(),
            "192.0.2.3:500".parse().unwrap(),
        )
        .unwrap();
    let mut seen = Vec::new();
    drive(&mut ep, &sock, &mut seen, |e| !child_keys(e).is_empty());
    assert!(
        matches!(&seen[0], Event::IkeSaEstablished { peer_id, .. } if peer_id.to_string() == "CN=branch2000"),
        "{seen:?}"
    );
    ep.delete_ike_sa(Instant::now(), id).unwrap();
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
    });
    let t = Instant::now() + Duration::from_millis(500);
    drive(&mut ep, &sock, &mut seen, |_| Instant::now() > t);
    let mut seen = Vec::new();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "v1rsa",
        "--child",
        "net2",
        "--timeout",
        "15",
    ]);
    drive(&mut ep, &sock, &mut seen, |e| !child_keys(e).is_empty());
    assert!(init.wait_with_output().unwrap().status.success());
    let term = swanctl(&["--terminate", "--ike", "v1rsa", "--timeout", "10"]);
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
    });
    assert!(term.wait_with_output().unwrap().status.success());

    // 6. charon tries aggressive mode: refused with a notify and a log line.
    let mut cfg = config();
    cfg.keys.push(PresharedKey::new(
        PSK.as_bytes(),
        Ipv4Addr::UNSPECIFIED,
        None,
    ));
    let mut ep = Endpoint::new(cfg, rng());
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "v1am",
        "--child",
        "am",
        "--timeout",
        "5",
    ]);
    let mut diags = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while diags.is_empty() && Instant::now() < deadline {
        if let Ok((n, from)) = sock.s500.recv_from(&mut buf) {
            ep.handle_input(Instant::now(), sock.local(), from, &buf[..n]);
        }
        while let Some(t) = ep.poll_transmit() {
            sock.s500.send_to(&t.payload, t.remote).unwrap();
        }
        while let Some(d) = ep.poll_diagnostic() {
            println!("diagnostic: {d}");
            diags.push(d.to_string());
        }
    }
    assert!(
        diags
            .iter()
            .any(|d| d.contains("aggressive mode refused") && d.contains("192.0.2.4")),
        "{diags:?}"
    );
    assert!(!init.wait_with_output().unwrap().status.success());
    // 7. charon with the wrong PSK: we reject it and say why.
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "v1bad",
        "--child",
        "bad",
        "--timeout",
        "5",
    ]);
    let mut seen = Vec::new();
    drive(&mut ep, &sock, &mut seen, |e| {
        e.iter().any(|e| {
            matches!(
                e,
                Event::AuthFailed {
                    reason: lifeline_ike::AuthFailure::BadPsk,
                    ..
                }
            )
        })
    });
    assert!(!init.wait_with_output().unwrap().status.success());
}

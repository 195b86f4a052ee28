//! Interop with a real strongSwan (charon 5.9, kernel-libipsec) in network namespaces.
//!
//! Root only: skipped with a message when not root or strongSwan is missing, and FAILS instead when
//! `LIFELINE_REQUIRE_NETNS=1`. Everything comes from this crate (harness `tests/swan/mod.rs`, charon
//! configuration `tests/interop/`, credentials `tests/data/`), so it runs from any checkout. Each outer
//! test builds its namespaces (charon at 192.0.2.1, ours at 192.0.2.2 over a veth, or behind a NAT
//! namespace), starts a private charon, then re-runs this test binary inside our namespace, where an
//! `inner_*` test drives an `Endpoint` over real UDP sockets (the library may not do I/O; a test may):
//! * `strongswan_interop_both_directions`: PSK with key-id identities and RSA with DN identities
//!   (self-signed), IKE_AUTH fragmented both ways, CHILD_SA and IKE SA rekeys and DELETE, both roles;
//! * `strongswan_each_dh_group`: groups 14, 19, 20, 21, 31, each in both roles (AES-GCM and CBC+SHA2);
//! * `strongswan_dpd_detects_killed_charon`: `dpd 10 2 periodic`, charon killed with SIGKILL;
//! * `strongswan_fragments_4096_bit_certificates_over_1280_mtu`: RSA-4096 both ways on a 1280-byte veth;
//! * `strongswan_nat_traversal_through_masquerade`: we sit behind an nftables masquerade namespace;
//! * `strongswan_ca_issued_certificates`: both certificates issued by a test CA; we validate the chain
//!   to our CA trustpoint with a CRL and a certificate map; a new CRL disconnects the IKE SA of charon's
//!   revoked certificate (`disconnect-revoked-peers`), which is then refused in both roles.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod swan;

use lifeline_ike::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use swan::{Charon, Cred, Netns};

const PSK: &[u8] = b"lifeline-interop-psk";

struct OsRng(std::fs::File);
impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) {
        use std::io::Read;
        self.0.read_exact(buf).unwrap();
    }
}

fn endpoint() -> Endpoint {
    Endpoint::new(Box::new(OsRng(
        std::fs::File::open("/dev/urandom").unwrap(),
    )))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(swan::data(name)).unwrap()
}

fn cred(dir: &'static str, name: &'static str) -> Cred<'static> {
    Cred {
        dir,
        name,
        der: read(name),
    }
}

/// Two namespaces on one veth: charon's (192.0.2.1/24, 10.1.0.1 on lo) and ours (192.0.2.2/24).
fn pair(mtu: Option<u32>) -> (Netns, Netns) {
    let sw = Netns::new("sw");
    let ll = Netns::new("ll");
    swan::veth(&sw, "eth0", "192.0.2.1/24", &ll, "eth0", "192.0.2.2/24");
    sw.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    if let Some(m) = mtu {
        let m = m.to_string();
        sw.run(&["ip", "link", "set", "eth0", "mtu", &m]);
        ll.run(&["ip", "link", "set", "eth0", "mtu", &m]);
    }
    (sw, ll)
}

/// Runs inner test `inner` in `ll`; panics with its output and charon's log unless it passed.
fn run_inner(ll: &Netns, charon: &Charon, inner: &str, env: &[(&str, &str)], secs: u64) -> String {
    let (ok, out) = ll.rerun(inner, Some(&charon.state), env, Duration::from_secs(secs));
    assert!(
        ok,
        "inner test {inner} failed:\n{out}\n--- charon.log ---\n{}",
        charon.log()
    );
    eprintln!("{out}");
    out
}

/// Our side in the inner process: the endpoint, its sockets on 500 and 4500 and what it reported.
struct Peer {
    ep: Endpoint,
    s500: UdpSocket,
    s4500: UdpSocket,
    seen: Vec<Event>,
    /// Largest IKE datagram (UDP payload) sent and received.
    max_tx: usize,
    max_rx: usize,
    /// NAT keepalives (RFC 3948) sent.
    keepalives: usize,
}

impl Peer {
    fn bind(ip: &str, ep: Endpoint) -> Peer {
        let s500 = UdpSocket::bind(format!("{ip}:500")).unwrap();
        let s4500 = UdpSocket::bind(format!("{ip}:4500")).unwrap();
        for s in [&s500, &s4500] {
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        }
        Peer {
            ep,
            s500,
            s4500,
            seen: Vec::new(),
            max_tx: 0,
            max_rx: 0,
            keepalives: 0,
        }
    }

    fn addr(&self, port: u16) -> SocketAddr {
        if port == 4500 {
            self.s4500.local_addr().unwrap()
        } else {
            self.s500.local_addr().unwrap()
        }
    }

    fn initiate(
        &mut self,
        from_port: u16,
        remote: &str,
        profile: &str,
        remote_id: Identity,
        fp: Option<Fingerprint>,
    ) -> IkeSaId {
        let local = self.addr(from_port);
        self.ep
            .initiate(
                Instant::now(),
                InitiateParams {
                    local,
                    remote: remote.parse().unwrap(),
                    profile: profile.into(),
                    remote_id: Some(remote_id),
                    expected_fingerprint: fp,
                },
            )
            .unwrap()
    }

    /// Runs until `done` holds (or `secs` pass: panic).
    fn drive(&mut self, secs: u64, done: impl Fn(&Endpoint, &[Event]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 65536];
        loop {
            while let Some(t) = self.ep.poll_transmit() {
                let s = if t.local.port() == 4500 {
                    &self.s4500
                } else {
                    &self.s500
                };
                self.max_tx = self.max_tx.max(t.payload.len());
                self.keepalives += usize::from(t.payload == [0xff]);
                s.send_to(&t.payload, t.remote).unwrap();
            }
            while let Some(e) = self.ep.poll_event() {
                println!("event: {e:?}");
                self.seen.push(e);
            }
            if done(&self.ep, &self.seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; events so far: {:?}",
                self.seen
            );
            for s in [&self.s500, &self.s4500] {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        self.max_rx = self.max_rx.max(n);
                        self.ep.handle_input(
                            Instant::now(),
                            s.local_addr().unwrap(),
                            from,
                            &buf[..n],
                        )
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("recv: {e}"),
                }
            }
            if self.ep.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                self.ep.handle_timeout(Instant::now());
            }
        }
    }

    /// Drives for `d` whatever happens.
    fn idle(&mut self, d: Duration) {
        let t = Instant::now() + d;
        self.drive(d.as_secs() + 5, |_, _| Instant::now() > t);
    }

    fn children(&self) -> Vec<ChildSaKeys> {
        child_keys(&self.seen)
    }
}

fn child_keys(ev: &[Event]) -> Vec<ChildSaKeys> {
    ev.iter()
        .filter_map(|e| {
            if let Event::ChildSaEstablished { child, .. } = e {
                Some(child.clone())
            } else {
                None
            }
        })
        .collect()
}

fn deleted(ev: &[Event]) -> bool {
    ev.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
}

fn swanctl(args: &[&str]) -> std::process::Child {
    swan::inner_swanctl(args)
}

/// swanctl, waited for; panics unless it succeeded.
fn swanctl_ok(args: &[&str]) -> String {
    let out = swanctl(args).wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "swanctl {args:?}: {text}");
    text
}

// ------------------------------------------------------------------ PSK + RSA, rekeys, both roles

#[test]
fn strongswan_interop_both_directions() {
    if !swan::available("strongswan_interop_both_directions", &[]) {
        return;
    }
    let (sw, ll) = pair(None);
    let conf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/charon.conf"),
    )
    .unwrap();
    // Lifeline's self-signed cert1000 is installed as charon's CA (pinned).
    let charon = Charon::start(
        &sw,
        &conf,
        &[
            cred("x509", "cert2000.der"),
            cred("x509ca", "cert1000.der"),
            cred("private", "key2000.pk8.der"),
        ],
        "fragment_size = 576",
        2,
    );
    run_inner(&ll, &charon, "inner_strongswan_peer", &[], 90);
    let log = charon.log();
    // charon must not have complained about anything we sent.
    let complaints = swan::complaints(&log, &[]);
    assert!(complaints.is_empty(), "{complaints:#?}");
    // One IKE SA each way (charon numbers them; an INVALID_KE round may take a number).
    let established = log
        .matches("] established between 192.0.2.1[2000]...192.0.2.2[1000]")
        .count();
    assert_eq!(established, 2, "{log}");
    assert!(log.matches("CHILD_SA net{").count() >= 2, "{log}");
    assert!(
        log.contains("established between 192.0.2.1[CN=branch2000]...192.0.2.2[CN=branch1000]"),
        "{log}"
    );
    assert!(
        log.contains("parsed IKE_AUTH request 1 [ EF(1/"),
        "we fragmented IKE_AUTH: {log}"
    );
    assert!(
        log.contains("generating IKE_AUTH response 1 [ EF(1/"),
        "charon fragmented to us: {log}"
    );
}

/// Runs the endpoint over `sock` until `done` sees the event it waits for (or 20 s pass).
fn drive1(
    ep: &mut Endpoint,
    sock: &UdpSocket,
    seen: &mut Vec<Event>,
    done: impl Fn(&Endpoint, &[Event]) -> bool,
) {
    let local = sock.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 65536];
    loop {
        while let Some(t) = ep.poll_transmit() {
            sock.send_to(&t.payload, t.remote).unwrap();
        }
        while let Some(e) = ep.poll_event() {
            println!("event: {e:?}");
            seen.push(e);
        }
        if done(ep, seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; events so far: {seen:?}"
        );
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => ep.handle_input(Instant::now(), local, from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
        if ep.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            ep.handle_timeout(Instant::now());
        }
    }
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_interop_both_directions"]
fn inner_strongswan_peer() {
    if !swan::is_inner("inner_strongswan_peer") {
        return;
    }
    let sock = UdpSocket::bind("192.0.2.2:4500").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut ep = endpoint();
    let charon = Identity::key_id("2000");
    let mut p = Profile::psk(
        "IPROF",
        Identity::key_id("1000"),
        Keyring::default().with(Some(charon.clone()), PSK),
    );
    p.force_encap = true;
    p.vpn_sip = true;
    p.remote_id = Some(charon.clone());
    ep.add_profile(p);
    ep.expect_peer(charon.clone(), Fingerprint::of_psk(PSK));
    ep.set_fragment_mtu(Some(576));
    // RSA profile: DN identities (strongSwan checks them against the certificates).
    let cred = RsaCredential::from_der(&read("key1000.pk8.der"), &read("cert1000.der")).unwrap();
    let charon_cert = read("cert2000.der");
    let charon_dn = lifeline_ike::auth::cert_subject(&charon_cert).unwrap();
    let mut r = Profile::psk("RSA", cred.subject_identity().unwrap(), Keyring::default());
    r.local_auth = LocalAuth::Rsa(Box::new(cred));
    r.remote_auth = RemoteAuth::RsaSig;
    r.remote_id = Some(charon_dn.clone());
    r.force_encap = true;
    r.vpn_sip = true;
    ep.add_profile(r);
    ep.expect_peer(charon_dn.clone(), Fingerprint::of_cert(&charon_cert));

    // 1. We initiate, charon responds.
    let remote: SocketAddr = "192.0.2.1:4500".parse().unwrap();
    let id = ep
        .initiate(
            Instant::now(),
            InitiateParams {
                local: sock.local_addr().unwrap(),
                remote,
                profile: "IPROF".into(),
                remote_id: Some(charon.clone()),
                expected_fingerprint: Some(Fingerprint::of_psk(PSK)),
            },
        )
        .unwrap();
    let mut seen = Vec::new();
    drive1(&mut ep, &sock, &mut seen, |_, e| !child_keys(e).is_empty());
    assert!(matches!(&seen[0], Event::IkeSaEstablished { peer_id, .. } if *peer_id == charon));
    let c = &child_keys(&seen)[0];
    println!(
        "as initiator: CHILD_SA {:08x}_i {:08x}_o {:?} {:?}",
        c.spi_in, c.spi_out, c.encr, c.ts_remote
    );
    assert!(c.udp_encap);
    let list = swanctl(&["--list-sas"]).wait_with_output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    println!("{list}");
    assert!(
        list.contains("ESTABLISHED") && list.contains("INSTALLED"),
        "{list}"
    );
    assert!(
        list.contains(&format!("{:08x}", c.spi_out)),
        "charon's inbound SPI is our outbound"
    );
    // Rekey the CHILD_SA (no PFS) and then the IKE SA, both initiated by us.
    ep.rekey_child(Instant::now(), id, c.spi_in).unwrap();
    drive1(&mut ep, &sock, &mut seen, |_, e| {
        e.iter().any(|e| matches!(e, Event::ChildSaDeleted { .. }))
    });
    assert_eq!(child_keys(&seen).len(), 2);
    let spi_before = ep.snapshot(Instant::now()).ike_sas[0].spi_i;
    ep.rekey_ike_sa(Instant::now(), id).unwrap();
    drive1(&mut ep, &sock, &mut seen, |ep, _| {
        let s = ep.snapshot(Instant::now());
        s.ike_sas.len() == 1 && s.ike_sas[0].spi_i != spi_before
    });
    // Let the DELETE of the old IKE SA complete.
    let t = Instant::now() + Duration::from_millis(300);
    drive1(&mut ep, &sock, &mut seen, |_, _| Instant::now() > t);
    let list = swanctl(&["--list-sas"]).wait_with_output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    println!("after our rekeys:\n{list}");
    let new_spi = format!("{:016x}", ep.snapshot(Instant::now()).ike_sas[0].spi_i);
    assert!(
        list.contains(&new_spi),
        "charon uses the rekeyed IKE SA {new_spi}: {list}"
    );
    assert_eq!(
        list.matches("ESTABLISHED").count(),
        1,
        "old IKE SA deleted: {list}"
    );
    let c2 = &child_keys(&seen)[1];
    assert!(list.contains(&format!("{:08x}", c2.spi_out)), "{list}");
    ep.delete_ike_sa(Instant::now(), id).unwrap();
    drive1(&mut ep, &sock, &mut seen, |_, e| {
        e.iter().any(|e| {
            matches!(
                e,
                Event::IkeSaDeleted {
                    reason: DeleteReason::LocalRequest,
                    ..
                }
            )
        })
    });

    // 2. charon initiates, we respond; then charon deletes.
    let mut seen = Vec::new();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "lifeline",
        "--child",
        "net",
        "--timeout",
        "15",
    ]);
    drive1(&mut ep, &sock, &mut seen, |_, e| !child_keys(e).is_empty());
    let out = init.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "swanctl --initiate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let c = &child_keys(&seen)[0];
    println!(
        "as responder: CHILD_SA {:08x}_i {:08x}_o {:?} {:?} {:?}",
        c.spi_in, c.spi_out, c.encr, c.ts_local, c.ts_remote
    );
    // charon rekeys the CHILD_SA, then the IKE SA.
    let rk = swanctl(&["--rekey", "--child", "net"]);
    drive1(&mut ep, &sock, &mut seen, |_, e| {
        e.iter().any(|e| matches!(e, Event::ChildSaDeleted { .. }))
    });
    assert!(rk.wait_with_output().unwrap().status.success());
    assert_eq!(child_keys(&seen).len(), 2);
    let spi_before = ep.snapshot(Instant::now()).ike_sas[0].spi_i;
    let rk = swanctl(&["--rekey", "--ike", "lifeline"]);
    drive1(&mut ep, &sock, &mut seen, |ep, _| {
        ep.snapshot(Instant::now()).ike_sas[0].spi_i != spi_before
    });
    let t = Instant::now() + Duration::from_millis(300);
    drive1(&mut ep, &sock, &mut seen, |_, _| Instant::now() > t);
    assert!(rk.wait_with_output().unwrap().status.success());
    let term = swanctl(&["--terminate", "--ike", "lifeline", "--timeout", "10"]);
    drive1(&mut ep, &sock, &mut seen, |_, e| {
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
    let out = term.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "swanctl --terminate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(ep.snapshot(Instant::now()).ike_sas.is_empty());

    // 3. RSA certificates (RFC 7427 SHA-256), IKE_AUTH fragmented both ways: we initiate, then charon.
    let mut seen = Vec::new();
    let id = ep
        .initiate(
            Instant::now(),
            InitiateParams {
                local: sock.local_addr().unwrap(),
                remote,
                profile: "RSA".into(),
                remote_id: Some(charon_dn.clone()),
                expected_fingerprint: Some(Fingerprint::of_cert(&charon_cert)),
            },
        )
        .unwrap();
    drive1(&mut ep, &sock, &mut seen, |_, e| !child_keys(e).is_empty());
    assert_eq!(ep.snapshot(Instant::now()).ike_sas[0].auth, "RSA");
    ep.delete_ike_sa(Instant::now(), id).unwrap();
    drive1(&mut ep, &sock, &mut seen, |_, e| {
        e.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
    });
    let mut seen = Vec::new();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "lifeline-rsa",
        "--child",
        "net",
        "--timeout",
        "15",
    ]);
    drive1(&mut ep, &sock, &mut seen, |_, e| !child_keys(e).is_empty());
    assert!(init.wait_with_output().unwrap().status.success());
    let term = swanctl(&["--terminate", "--ike", "lifeline-rsa", "--timeout", "10"]);
    drive1(&mut ep, &sock, &mut seen, |_, e| {
        e.iter().any(|e| matches!(e, Event::IkeSaDeleted { .. }))
    });
    assert!(term.wait_with_output().unwrap().status.success());
}

// ------------------------------------------------------------------ helpers for the scenarios below

/// A charon connection `name` with PSK key-id identities (charon 2000, Lifeline 1000).
fn psk_conn(name: &str, local: &str, remote: &str, ike: &str, esp: &str, extra: &str) -> String {
    format!(
        r#"
    {name} {{
        version = 2
        local_addrs = {local}
        remote_addrs = {remote}
        proposals = {ike}
        dpd_delay = 0
        {extra}
        local {{
            auth = psk
            id = keyid:2000
        }}
        remote {{
            auth = psk
            id = keyid:1000
        }}
        children {{
            net {{
                mode = tunnel
                local_ts = 10.1.0.0/24
                remote_ts = 0.0.0.0/0
                esp_proposals = {esp}
                start_action = none
            }}
        }}
    }}"#
    )
}

fn psk_swanctl(conns: &[String]) -> String {
    format!(
        "connections {{{}\n}}\nsecrets {{\n    ike-lifeline {{\n        id-1 = keyid:1000\n        \
         id-2 = keyid:2000\n        secret = \"{}\"\n    }}\n}}\n",
        conns.concat(),
        String::from_utf8_lossy(PSK)
    )
}

/// Our PSK profile `name` (key-id 1000, charon is 2000) with one IKE proposal.
fn psk_profile(name: &str, ike: IkeProposal) -> Profile {
    let charon = Identity::key_id("2000");
    let mut p = Profile::psk(
        name,
        Identity::key_id("1000"),
        Keyring::default().with(Some(charon.clone()), PSK),
    );
    p.remote_id = Some(charon);
    p.ike_proposals = vec![ike];
    p
}

/// (group, IANA number, strongSwan keyword, strongSwan's log name, IKE cipher: GCM when true).
const GROUPS: [(DhGroup, u16, &str, &str, bool); 5] = [
    (DhGroup::Modp2048, 14, "modp2048", "MODP_2048", false),
    (DhGroup::Ecp256, 19, "ecp256", "ECP_256", true),
    (DhGroup::Ecp384, 20, "ecp384", "ECP_384", false),
    (DhGroup::Ecp521, 21, "ecp521", "ECP_521", false),
    (DhGroup::Curve25519, 31, "curve25519", "CURVE_25519", true),
];

// ------------------------------------------------------------------ each DH group, both roles

#[test]
fn strongswan_each_dh_group() {
    if !swan::available("strongswan_each_dh_group", &[]) {
        return;
    }
    let (sw, ll) = pair(None);
    // One charon address per group (charon picks its IKE config by address): 192.0.2.<group>.
    let mut conns = Vec::new();
    for (_, n, kw, _, gcm) in GROUPS {
        sw.run(&[
            "ip",
            "addr",
            "add",
            &format!("192.0.2.{n}/24"),
            "dev",
            "eth0",
        ]);
        let (ike, esp) = if gcm {
            (format!("aes256gcm16-prfsha256-{kw}"), "aes128gcm16")
        } else {
            (format!("aes256-sha256-{kw}"), "aes256-sha256")
        };
        conns.push(psk_conn(
            &format!("dh{n}"),
            &format!("192.0.2.{n}"),
            "192.0.2.2",
            &ike,
            esp,
            "",
        ));
    }
    let charon = Charon::start(&sw, &psk_swanctl(&conns), &[], "", 2);
    run_inner(&ll, &charon, "inner_each_dh_group", &[], 55);
    let log = charon.log();
    let complaints = swan::complaints(&log, &[]);
    assert!(complaints.is_empty(), "{complaints:#?}");
    for (_, n, _, name, gcm) in GROUPS {
        let ike = if gcm {
            format!("IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/{name}")
        } else {
            format!("IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/{name}")
        };
        let selected = log
            .lines()
            .filter(|l| l.contains(&format!("selected proposal: {ike}")))
            .count();
        assert_eq!(
            selected, 2,
            "group {n}: one IKE SA each way with {ike}:\n{log}"
        );
        let up = log
            .lines()
            .filter(|l| {
                l.contains(&format!("<dh{n}|"))
                    && l.contains("CHILD_SA net{")
                    && l.contains("established")
            })
            .count();
        assert_eq!(up, 2, "group {n}: {log}");
    }
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_each_dh_group"]
fn inner_each_dh_group() {
    if !swan::is_inner("inner_each_dh_group") {
        return;
    }
    let mut ep = endpoint();
    for (g, n, _, _, gcm) in GROUPS {
        let base = if gcm {
            IkeProposal::gcm_default()
        } else {
            IkeProposal::ios_default()
        };
        ep.add_profile(psk_profile(
            &format!("DH{n}"),
            IkeProposal {
                dh: vec![g],
                ..base
            },
        ));
    }
    let mut p = Peer::bind("192.0.2.2", ep);
    let charon = Identity::key_id("2000");
    for (g, n, _, _, _) in GROUPS {
        // We initiate.
        p.seen.clear();
        let id = p.initiate(
            500,
            &format!("192.0.2.{n}:500"),
            &format!("DH{n}"),
            charon.clone(),
            None,
        );
        p.drive(20, |_, e| !child_keys(e).is_empty());
        let s = p.ep.snapshot(Instant::now());
        assert_eq!(s.ike_sas[0].dh, Some(g), "group {n} as initiator");
        let spi = format!("{:08x}", p.children()[0].spi_out);
        let list = swanctl_ok(&["--list-sas", "--ike", &format!("dh{n}")]);
        assert!(
            list.contains("ESTABLISHED") && list.contains(&spi),
            "{list}"
        );
        p.ep.delete_ike_sa(Instant::now(), id).unwrap();
        p.drive(10, |_, e| deleted(e));
        println!("group {n}: initiator OK ({})", s.ike_sas[0].remote);
        // charon initiates.
        p.seen.clear();
        let init = swanctl(&[
            "--initiate",
            "--ike",
            &format!("dh{n}"),
            "--child",
            "net",
            "--timeout",
            "15",
        ]);
        p.drive(20, |_, e| !child_keys(e).is_empty());
        let s = p.ep.snapshot(Instant::now());
        assert_eq!(s.ike_sas[0].dh, Some(g), "group {n} as responder");
        assert!(init.wait_with_output().unwrap().status.success());
        let term = swanctl(&["--terminate", "--ike", &format!("dh{n}"), "--timeout", "10"]);
        p.drive(10, |_, e| deleted(e));
        assert!(term.wait_with_output().unwrap().status.success());
        println!("group {n}: responder OK");
    }
}

// ------------------------------------------------------------------ DPD against a killed charon

/// `dpd 10 2 periodic`: a check after 10 s of silence, then retries every 2 s, six sends in all (IOS).
const DPD: Dpd = Dpd {
    interval: Duration::from_secs(10),
    retry: Duration::from_secs(2),
    periodic: true,
};

#[test]
fn strongswan_dpd_detects_killed_charon() {
    if !swan::available("strongswan_dpd_detects_killed_charon", &["kill"]) {
        return;
    }
    let (sw, ll) = pair(None);
    let conf = psk_swanctl(&[psk_conn(
        "lifeline",
        "192.0.2.1",
        "192.0.2.2",
        "aes256-sha256-ecp256",
        "aes256gcm16",
        "",
    )]);
    let charon = Charon::start(&sw, &conf, &[], "", 1);
    let pid = charon.pid().unwrap().to_string();
    let out = run_inner(
        &ll,
        &charon,
        "inner_dpd_killed",
        &[("LIFELINE_CHARON_PID", &pid)],
        55,
    );
    assert!(out.contains("peer dead after"), "{out}");
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_dpd_detects_killed_charon"]
fn inner_dpd_killed() {
    if !swan::is_inner("inner_dpd_killed") {
        return;
    }
    let mut ep = endpoint();
    let mut prof = psk_profile("DPD", IkeProposal::ios_default());
    prof.dpd = Some(DPD);
    ep.add_profile(prof);
    let mut p = Peer::bind("192.0.2.2", ep);
    let id = p.initiate(500, "192.0.2.1:500", "DPD", Identity::key_id("2000"), None);
    p.drive(20, |_, e| !child_keys(e).is_empty());
    // DPD answered while charon lives: 12 s of silence from us needs at least one check.
    p.idle(Duration::from_secs(12));
    assert!(!deleted(&p.seen), "{:?}", p.seen);
    assert_eq!(p.ep.snapshot(Instant::now()).ike_sas[0].status, "READY");
    let log = swan::inner_charon_log();
    assert!(
        log.contains("parsed INFORMATIONAL request")
            && log.contains("generating INFORMATIONAL response"),
        "charon answered our liveness check: {log}"
    );
    let pid = std::env::var("LIFELINE_CHARON_PID").unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let killed = Instant::now();
    p.drive(40, |_, e| {
        e.iter().any(|e| {
            matches!(
                e,
                Event::IkeSaDeleted {
                    reason: DeleteReason::PeerDead,
                    ..
                }
            )
        })
    });
    let took = killed.elapsed();
    // At most: the interval of silence, then six sends 2 s apart (plus scheduling slack).
    let bound = DPD.interval + DPD.retry * 6 + Duration::from_secs(1);
    println!("peer dead after {took:?} (bound {bound:?})");
    assert!(took <= bound, "{took:?} > {bound:?}");
    assert!(took >= DPD.retry * 5, "declared dead too early: {took:?}");
    assert!(p.ep.snapshot(Instant::now()).ike_sas.is_empty());
    let _ = id;
}

// ------------------------------------------------------------------ RSA-4096 over a 1280-byte MTU

#[test]
fn strongswan_fragments_4096_bit_certificates_over_1280_mtu() {
    if !swan::available(
        "strongswan_fragments_4096_bit_certificates_over_1280_mtu",
        &[],
    ) {
        return;
    }
    let (sw, ll) = pair(Some(1280));
    let conf = r#"
connections {
    rsa4096 {
        version = 2
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes256-sha256-ecp256
        fragmentation = yes
        send_cert = always
        dpd_delay = 0
        local {
            auth = pubkey
            certs = swan4096.der
            id = "CN=swan4096.lifeline.test"
        }
        remote {
            auth = pubkey
            id = "CN=branch4096.lifeline.test"
        }
        children {
            net {
                local_ts = 10.1.0.0/24
                remote_ts = 0.0.0.0/0
                esp_proposals = aes256gcm16
                start_action = none
            }
        }
    }
}
"#;
    // Lifeline's self-signed certificate is pinned at charon as a CA; charon's is pinned here.
    let charon = Charon::start(
        &sw,
        conf,
        &[
            cred("x509", "swan4096.der"),
            cred("x509ca", "lifeline4096.der"),
            cred("private", "swan4096.pk8.der"),
        ],
        "fragment_size = 1280",
        2,
    );
    run_inner(&ll, &charon, "inner_rsa4096_1280", &[], 55);
    let log = charon.log();
    let complaints = swan::complaints(&log, &[]);
    assert!(complaints.is_empty(), "{complaints:#?}");
    assert_eq!(
        log.matches("established between 192.0.2.1[CN=swan4096.lifeline.test]...192.0.2.2[CN=branch4096.lifeline.test]")
            .count(),
        2,
        "{log}"
    );
    // Both IKE_AUTH requests and responses went as RFC 7383 fragments, each way.
    for pat in [
        "parsed IKE_AUTH request 1 [ EF(1/",
        "generating IKE_AUTH response 1 [ EF(1/",
        "generating IKE_AUTH request 1 [ EF(1/",
        "parsed IKE_AUTH response 1 [ EF(1/",
    ] {
        assert!(log.contains(pat), "{pat}: {log}");
    }
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_fragments_4096_bit_certificates_over_1280_mtu"]
fn inner_rsa4096_1280() {
    if !swan::is_inner("inner_rsa4096_1280") {
        return;
    }
    let mut ep = endpoint();
    ep.set_fragment_mtu(Some(1280));
    let cred =
        RsaCredential::from_der(&read("lifeline4096.pk8.der"), &read("lifeline4096.der")).unwrap();
    let theirs = read("swan4096.der");
    let their_dn = lifeline_ike::auth::cert_subject(&theirs).unwrap();
    let mut r = Profile::psk("RSA", cred.subject_identity().unwrap(), Keyring::default());
    r.local_auth = LocalAuth::Rsa(Box::new(cred));
    r.remote_auth = RemoteAuth::RsaSig;
    r.remote_id = Some(their_dn.clone());
    r.trusted_certs = vec![Fingerprint::of_cert(&theirs)];
    ep.add_profile(r);
    let mut p = Peer::bind("192.0.2.2", ep);
    let id = p.initiate(500, "192.0.2.1:500", "RSA", their_dn, None);
    p.drive(20, |_, e| !child_keys(e).is_empty());
    assert_eq!(p.ep.snapshot(Instant::now()).ike_sas[0].auth, "RSA");
    p.ep.delete_ike_sa(Instant::now(), id).unwrap();
    p.drive(10, |_, e| deleted(e));
    p.seen.clear();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "rsa4096",
        "--child",
        "net",
        "--timeout",
        "15",
    ]);
    p.drive(20, |_, e| !child_keys(e).is_empty());
    assert!(init.wait_with_output().unwrap().status.success());
    let term = swanctl(&["--terminate", "--ike", "rsa4096", "--timeout", "10"]);
    p.drive(10, |_, e| deleted(e));
    assert!(term.wait_with_output().unwrap().status.success());
    // Every datagram fit the 1280-byte link (IPv4 20 + UDP 8); a certificate alone is > 1300 bytes.
    println!(
        "largest IKE datagram: sent {} received {}",
        p.max_tx, p.max_rx
    );
    assert!(p.max_tx + 28 <= 1280 && p.max_rx + 28 <= 1280);
}

// ------------------------------------------------------------------ NAT traversal through a real NAT

#[test]
fn strongswan_nat_traversal_through_masquerade() {
    if !swan::available("strongswan_nat_traversal_through_masquerade", &["nft"]) {
        return;
    }
    // charon 192.0.2.1 --- 192.0.2.254 [nat: masquerade] 198.51.100.1 --- 198.51.100.2 us
    let sw = Netns::new("sw");
    let nat = Netns::new("nat");
    let ll = Netns::new("ll");
    swan::veth(&sw, "eth0", "192.0.2.1/24", &nat, "wan0", "192.0.2.254/24");
    swan::veth(
        &nat,
        "lan0",
        "198.51.100.1/24",
        &ll,
        "eth0",
        "198.51.100.2/24",
    );
    sw.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    ll.run(&["ip", "route", "add", "default", "via", "198.51.100.1"]);
    nat.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let mut nft = nat.cmd("nft");
    nft.args(["add table ip llnat; \
         add chain ip llnat post { type nat hook postrouting priority srcnat; policy accept; }; \
         add rule ip llnat post oifname \"wan0\" masquerade"]);
    swan::sh(&mut nft);
    let conf = psk_swanctl(&[psk_conn(
        "lifeline",
        "192.0.2.1",
        "%any",
        "aes256-sha256-curve25519",
        "aes256gcm16",
        "",
    )]);
    let charon = Charon::start(&sw, &conf, &[], "", 2);
    run_inner(&ll, &charon, "inner_nat", &[], 55);
    let log = charon.log();
    let complaints = swan::complaints(&log, &[]);
    assert!(complaints.is_empty(), "{complaints:#?}");
    // charon saw us at the NAT's address, floated to 4500.
    assert!(
        log.contains("established between 192.0.2.1[2000]...192.0.2.254[1000]"),
        "{log}"
    );
    assert!(log.contains("192.0.2.254[4500]"), "{log}");
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_nat_traversal_through_masquerade"]
fn inner_nat() {
    if !swan::is_inner("inner_nat") {
        return;
    }
    let mut ep = endpoint();
    ep.add_profile(psk_profile("NAT", IkeProposal::ios_default()));
    let mut p = Peer::bind("198.51.100.2", ep);
    let id = p.initiate(500, "192.0.2.1:500", "NAT", Identity::key_id("2000"), None);
    p.drive(20, |_, e| !child_keys(e).is_empty());
    let c = &p.children()[0];
    assert!(c.udp_encap);
    let s = &p.ep.snapshot(Instant::now()).ike_sas[0];
    assert_eq!(s.local.port(), 4500, "floated to 4500: {s:?}");
    assert_eq!(s.remote, "192.0.2.1:4500".parse().unwrap());
    assert!(s.nat_t);
    let list = swanctl_ok(&["--list-sas"]);
    println!("{list}");
    assert!(
        list.contains("192.0.2.254[1000]") || list.contains("192.0.2.254"),
        "{list}"
    );
    // charon's requests reach us through the NAT's mapping: it rekeys the CHILD_SA.
    let rk = swanctl(&["--rekey", "--child", "net"]);
    p.drive(20, |_, e| {
        e.iter().any(|e| matches!(e, Event::ChildSaDeleted { .. }))
    });
    assert!(rk.wait_with_output().unwrap().status.success());
    assert_eq!(p.children().len(), 2);
    // We are behind a NAT: RFC 3948 keepalives every 20 s keep the mapping.
    let t = Instant::now() + Duration::from_secs(21);
    let before = p.keepalives;
    p.drive(25, |_, _| Instant::now() > t);
    assert!(p.keepalives > before, "no NAT keepalive in 21 s");
    p.ep.delete_ike_sa(Instant::now(), id).unwrap();
    p.drive(10, |_, e| deleted(e));
}

// ------------------------------------------------------------------ CA-issued certificates, CRL

/// charon with certificates issued by the test CA: `ca` at .1 (valid), `revoked` at .3 (in the CA's CRL).
fn ca_conn(name: &str, addr: &str, cert: &str, id: &str) -> String {
    format!(
        r#"
    {name} {{
        version = 2
        local_addrs = {addr}
        remote_addrs = 192.0.2.2
        proposals = aes256-sha256-ecp256
        fragmentation = yes
        send_cert = always
        dpd_delay = 0
        local {{
            auth = pubkey
            certs = {cert}
            id = "{id}"
        }}
        remote {{
            auth = pubkey
            id = "O=Lifeline Test, CN=branch.lifeline.test"
        }}
        children {{
            net {{
                local_ts = 10.1.0.0/24
                remote_ts = 0.0.0.0/0
                esp_proposals = aes256gcm16
                start_action = none
            }}
        }}
    }}"#
    )
}

#[test]
fn strongswan_ca_issued_certificates() {
    if !swan::available("strongswan_ca_issued_certificates", &[]) {
        return;
    }
    let (sw, ll) = pair(None);
    sw.run(&["ip", "addr", "add", "192.0.2.3/24", "dev", "eth0"]);
    let conf = format!(
        "connections {{{}{}\n}}\n",
        ca_conn(
            "ca",
            "192.0.2.1",
            "swan-ca.der",
            "O=Lifeline Test, CN=swan.lifeline.test"
        ),
        ca_conn(
            "revoked",
            "192.0.2.3",
            "swan-revoked.der",
            "O=Lifeline Test, CN=revoked.lifeline.test"
        ),
    );
    // charon trusts the same CA (x509ca), not our certificate itself.
    let charon = Charon::start(
        &sw,
        &conf,
        &[
            cred("x509", "swan-ca.der"),
            cred("x509", "swan-revoked.der"),
            cred("x509ca", "ca.der"),
            cred("private", "swan-ca.pk8.der"),
            cred("private", "swan-revoked.pk8.der"),
        ],
        "fragment_size = 1280",
        2,
    );
    run_inner(&ll, &charon, "inner_ca", &[], 55);
    let log = charon.log();
    let complaints = swan::complaints(&log, &["<revoked|", "initiate failed"]);
    assert!(complaints.is_empty(), "{complaints:#?}");
    assert_eq!(
        log.matches(
            "established between 192.0.2.1[O=Lifeline Test, CN=swan.lifeline.test]...192.0.2.2[O=Lifeline Test, CN=branch.lifeline.test]"
        )
        .count(),
        2,
        "{log}"
    );
    // charon validated our certificate against the CA too.
    assert!(
        log.contains("reached self-signed root ca with a path length of 0"),
        "{log}"
    );
    // disconnect-revoked-peers: our DELETE after the new CRL.
    // (charon also treats our AUTHENTICATION_FAILED INFORMATIONAL of step 4 as a DELETE: two in all.)
    assert_eq!(
        log.matches("received DELETE for IKE_SA revoked[").count(),
        2,
        "{log}"
    );
    // The revoked certificate: as responder charon completes IKE_AUTH before we check its certificate
    // (RFC 7296: the initiator then reports AUTHENTICATION_FAILED in an INFORMATIONAL, which charon treats
    // as a DELETE); as initiator it gets AUTHENTICATION_FAILED in our IKE_AUTH response.
    assert!(
        log.lines().any(|l| l.contains("<revoked|")
            && l.contains("parsed INFORMATIONAL request")
            && l.contains("[ N(AUTH_FAILED) ]")),
        "{log}"
    );
    assert!(
        log.contains("received AUTHENTICATION_FAILED notify error"),
        "{log}"
    );
}

#[test]
#[ignore = "runs inside the netns, started by strongswan_ca_issued_certificates"]
fn inner_ca() {
    if !swan::is_inner("inner_ca") {
        return;
    }
    let mut ep = endpoint();
    ep.set_wall_clock(Instant::now(), std::time::SystemTime::now());
    ep.set_fragment_mtu(Some(1280));
    // The CA's CRL starts empty; the one revoking charon's second certificate comes later.
    let mut tp = Trustpoint::new("LIFELINE-CA", &read("ca.der"), RevocationCheck::Crl).unwrap();
    tp.set_crl(&read("ca-empty.crl.der"), std::time::SystemTime::now())
        .unwrap();
    ep.add_trustpoint(tp);
    ep.set_disconnect_revoked_peers(true);
    ep.add_certificate_map(CertificateMap {
        name: "FROM-OUR-CA".into(),
        entries: vec![(
            10,
            vec![
                MapRule::parse("issuer-name eq o = lifeline test, cn = lifeline test ca").unwrap(),
            ],
        )],
    });
    let cred =
        RsaCredential::from_der(&read("lifeline-ca.pk8.der"), &read("lifeline-ca.der")).unwrap();
    let mut r = Profile::psk("CA", cred.subject_identity().unwrap(), Keyring::default());
    r.local_auth = LocalAuth::Rsa(Box::new(cred));
    r.remote_auth = RemoteAuth::RsaSig;
    r.ca_trustpoints = vec!["LIFELINE-CA".into()];
    r.certificate_map = Some("FROM-OUR-CA".into());
    ep.add_profile(r);
    let mut p = Peer::bind("192.0.2.2", ep);
    let initiate = |p: &mut Peer, remote: &str| {
        let local = p.addr(500);
        p.ep.initiate(
            Instant::now(),
            InitiateParams {
                local,
                remote: remote.parse().unwrap(),
                profile: "CA".into(),
                remote_id: None,
                expected_fingerprint: None,
            },
        )
        .unwrap()
    };
    // 1. We initiate to the valid certificate; 2. charon initiates.
    let id = initiate(&mut p, "192.0.2.1:500");
    p.drive(20, |_, e| !child_keys(e).is_empty());
    p.ep.delete_ike_sa(Instant::now(), id).unwrap();
    p.drive(10, |_, e| deleted(e));
    p.seen.clear();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "ca",
        "--child",
        "net",
        "--timeout",
        "15",
    ]);
    p.drive(20, |_, e| !child_keys(e).is_empty());
    assert!(init.wait_with_output().unwrap().status.success());
    let term = swanctl(&["--terminate", "--ike", "ca", "--timeout", "10"]);
    p.drive(10, |_, e| deleted(e));
    assert!(term.wait_with_output().unwrap().status.success());
    // 3. disconnect-revoked-peers: an IKE SA with the (not yet revoked) certificate, then the new CRL.
    p.seen.clear();
    let id = initiate(&mut p, "192.0.2.3:500");
    p.drive(20, |_, e| !child_keys(e).is_empty());
    let gone =
        p.ep.set_crl(Instant::now(), "LIFELINE-CA", &read("ca.crl.der"))
            .unwrap();
    assert_eq!(gone, vec![id]);
    p.drive(10, |_, e| {
        e.iter().any(|e| {
            matches!(
                e,
                Event::IkeSaDeleted {
                    reason: DeleteReason::CertificateRevoked,
                    ..
                }
            )
        })
    });
    let list = swanctl_ok(&["--list-sas"]);
    assert!(!list.contains("revoked"), "charon deleted it too: {list}");
    // 4. The revoked certificate: refused as initiator and as responder, with the reason.
    let revoked = |e: &Event| {
        matches!(
            e,
            Event::AuthFailed {
                reason: AuthFailure::Certificate(PkiError::Revoked { .. }),
                ..
            }
        )
    };
    p.seen.clear();
    initiate(&mut p, "192.0.2.3:500");
    p.drive(20, |_, e| e.iter().any(revoked));
    p.drive(10, |_, e| deleted(e));
    p.seen.clear();
    let init = swanctl(&[
        "--initiate",
        "--ike",
        "revoked",
        "--child",
        "net",
        "--timeout",
        "10",
    ]);
    p.drive(20, |_, e| e.iter().any(revoked));
    let out = init.wait_with_output().unwrap();
    assert!(!out.status.success(), "charon's initiation must fail");
    println!("{:?}", p.seen.iter().find(|e| revoked(e)));
    assert!(child_keys(&p.seen).is_empty());
}

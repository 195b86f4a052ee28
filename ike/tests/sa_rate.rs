//! Benchmark: IKE SAs (IKE_SA_INIT + IKE_AUTH with the first CHILD_SA) established per second by a
//! *responder*, Lifeline's and strongSwan's, in the same run on the same machine, driven by the same
//! initiator (a Lifeline `Endpoint` keeping `WINDOW` handshakes in flight over real UDP sockets).
//!
//! `cargo test --release -p lifeline-ike --test sa_rate -- --ignored --nocapture`
//! (root; strongSwan as for `strongswan.rs`; figures in docs/performance.md).
//!
//! Layout: one namespace runs charon at 192.0.2.1 (over a veth); this binary re-runs itself in the other
//! namespace (192.0.2.2), where a thread runs Lifeline's responder on the loopback (127.0.0.2:4500) and
//! the main thread is the initiator (127.0.0.1:4500 towards Lifeline, 192.0.2.2:4500 towards charon,
//! NAT-T framing from the first message on both). Debian has no `load-tester` plugin, so strongSwan is
//! measured as a responder only, with the same initiator. Cases: PSK and RSA-2048 (RFC 7427 SHA-256),
//! DH group 19 and 31, IKE AES-CBC-256/HMAC-SHA-256, ESP AES-GCM-128.
//!
//! Per case it prints SA/s (N / time from the first request to the last CHILD_SA at the initiator) and
//! the responder's CPU time per SA (Lifeline: its thread, from /proc/thread-self/stat; charon: the whole
//! process, from /proc/PID/stat; 10 ms ticks). The two responders share the 2 CPUs with the initiator, so
//! SA/s is bounded by the slower side; CPU per SA is the responder's own cost. charon also installs each
//! CHILD_SA into kernel-libipsec (user-space ESP) and a route, which Lifeline's responder leaves to the
//! data plane.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod swan;

use lifeline_ike::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use swan::{Charon, Cred, Netns};

const PSK: &[u8] = b"lifeline-bench-psk";
/// Handshakes in flight at the initiator.
const WINDOW: usize = 32;

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

#[derive(Clone, Copy, Debug)]
enum Auth {
    Psk,
    Rsa,
}

const CASES: [(Auth, DhGroup, &str, usize); 4] = [
    (Auth::Psk, DhGroup::Ecp256, "ecp256", 1000),
    (Auth::Psk, DhGroup::Curve25519, "curve25519", 1000),
    (Auth::Rsa, DhGroup::Ecp256, "ecp256", 300),
    (Auth::Rsa, DhGroup::Curve25519, "curve25519", 300),
];

/// A profile named "P": we are `local` (key-id for PSK, cert`local` for RSA), the peer is `remote`.
fn profile(auth: Auth, g: DhGroup, local: &str, remote: &str) -> Profile {
    let mut p = match auth {
        Auth::Psk => {
            let mut p = Profile::psk(
                "P",
                Identity::key_id(local),
                Keyring::default().with(Some(Identity::key_id(remote)), PSK),
            );
            p.remote_id = Some(Identity::key_id(remote));
            p
        }
        Auth::Rsa => {
            let cred = RsaCredential::from_der(
                &read(&format!("key{local}.pk8.der")),
                &read(&format!("cert{local}.der")),
            )
            .unwrap();
            let theirs = read(&format!("cert{remote}.der"));
            let mut p = Profile::psk("P", cred.subject_identity().unwrap(), Keyring::default());
            p.local_auth = LocalAuth::Rsa(Box::new(cred));
            p.remote_auth = RemoteAuth::RsaSig;
            p.trusted_certs = vec![Fingerprint::of_cert(&theirs)];
            p.remote_id = lifeline_ike::auth::cert_subject(&theirs);
            p
        }
    };
    p.force_encap = true;
    p.ike_proposals = vec![IkeProposal {
        encr: vec![EncrAlg::AesCbc256],
        prf: vec![PrfAlg::HmacSha256],
        integ: vec![IntegAlg::HmacSha256_128],
        dh: vec![g],
    }];
    p.esp_proposals = vec![EspProposal {
        encr: EncrAlg::AesGcm16_128,
        integ: None,
        esn: false,
    }];
    p
}

fn charon_conf(auth: Auth, kw: &str) -> String {
    let (local, remote) = match auth {
        Auth::Psk => (
            "auth = psk\n            id = keyid:2000",
            "auth = psk\n            id = keyid:1000",
        ),
        Auth::Rsa => (
            "auth = pubkey\n            certs = cert2000.der\n            id = \"CN=branch2000\"",
            "auth = pubkey\n            id = \"CN=branch1000\"",
        ),
    };
    format!(
        r#"connections {{
    bench {{
        version = 2
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        local_port = 4500
        remote_port = 4500
        encap = yes
        unique = never
        send_cert = always
        proposals = aes256-sha256-{kw}
        dpd_delay = 0
        local {{
            {local}
        }}
        remote {{
            {remote}
        }}
        children {{
            net {{
                local_ts = 10.1.0.0/24
                remote_ts = 0.0.0.0/0
                esp_proposals = aes128gcm16
                start_action = none
            }}
        }}
    }}
}}
secrets {{
    ike-bench {{
        id-1 = keyid:1000
        id-2 = keyid:2000
        secret = "{}"
    }}
}}
"#,
        String::from_utf8_lossy(PSK)
    )
}

/// utime + stime of /proc/`path`/stat, in seconds (USER_HZ = 100).
fn cpu_secs(stat_path: &str) -> f64 {
    let s = std::fs::read_to_string(stat_path).unwrap();
    // Fields after the parenthesised command name.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
#[ignore = "benchmark: cargo test --release -p lifeline-ike --test sa_rate -- --ignored --nocapture"]
fn ike_sa_setup_rate_lifeline_vs_strongswan() {
    if !swan::available("ike_sa_setup_rate_lifeline_vs_strongswan", &[]) {
        return;
    }
    let sw = Netns::new("rsw");
    let ll = Netns::new("rll");
    swan::veth(&sw, "eth0", "192.0.2.1/24", &ll, "eth0", "192.0.2.2/24");
    sw.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    println!(
        "| auth | DH group | N | Lifeline SA/s | Lifeline responder CPU ms/SA | strongSwan SA/s | strongSwan responder CPU ms/SA |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, (auth, _, kw, n)) in CASES.iter().enumerate() {
        // Low log level, no DoS protection (one initiator address, many half-open SAs on purpose).
        let charon = Charon::start(
            &sw,
            &charon_conf(*auth, kw),
            &[
                Cred {
                    dir: "x509",
                    name: "cert2000.der",
                    der: read("cert2000.der"),
                },
                Cred {
                    dir: "x509ca",
                    name: "cert1000.der",
                    der: read("cert1000.der"),
                },
                Cred {
                    dir: "private",
                    name: "key2000.pk8.der",
                    der: read("key2000.pk8.der"),
                },
            ],
            "    dos_protection = no\n    init_limit_half_open = 0\n    cookie_threshold = 1000000\n    \
             block_threshold = 1000000",
            0,
        );
        let pid = charon.pid().unwrap().to_string();
        let case = i.to_string();
        let (ok, out) = ll.rerun(
            "inner_rate",
            Some(&charon.state),
            &[("LIFELINE_RATE_CASE", &case), ("LIFELINE_CHARON_PID", &pid)],
            Duration::from_secs(300),
        );
        assert!(ok, "{out}\n{}", charon.log());
        // (The test harness prints "test inner_rate ... " before the row, on the same line.)
        for l in out
            .lines()
            .filter_map(|l| l.find("| PSK").or(l.find("| RSA")).map(|i| &l[i..]))
        {
            println!("{l}");
        }
        let _ = n;
    }
}

/// Runs `n` handshakes with at most `WINDOW` in flight from `sock` to `remote`; returns seconds taken.
fn initiate_many(ep: &mut Endpoint, sock: &UdpSocket, remote: SocketAddr, n: usize) -> f64 {
    let local = sock.local_addr().unwrap();
    sock.set_nonblocking(true).unwrap();
    let (mut started, mut done, mut inflight) = (0usize, 0usize, 0usize);
    let t0 = Instant::now();
    let mut buf = [0u8; 65536];
    let mut last_progress = Instant::now();
    while done < n {
        while inflight < WINDOW && started < n {
            ep.initiate(
                Instant::now(),
                InitiateParams {
                    local,
                    remote,
                    profile: "P".into(),
                    remote_id: None,
                    expected_fingerprint: None,
                },
            )
            .unwrap();
            started += 1;
            inflight += 1;
        }
        while let Some(t) = ep.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.remote);
        }
        while let Some(e) = ep.poll_event() {
            match e {
                Event::ChildSaEstablished { .. } => {
                    done += 1;
                    inflight -= 1;
                    last_progress = Instant::now();
                }
                Event::IkeSaEstablished { .. } | Event::ChildSaDeleted { .. } => {}
                other => panic!("unexpected {other:?} after {done} SAs"),
            }
        }
        let mut got = false;
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            got = true;
            ep.handle_input(Instant::now(), local, from, &buf[..len]);
            while let Some(t) = ep.poll_transmit() {
                let _ = sock.send_to(&t.payload, t.remote);
            }
        }
        if ep.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            ep.handle_timeout(Instant::now());
        }
        if !got {
            std::thread::sleep(Duration::from_micros(50));
        }
        assert!(
            last_progress.elapsed() < Duration::from_secs(20),
            "stalled at {done}/{n}: {:?}",
            ep.snapshot(Instant::now()).ike_sas.first()
        );
    }
    t0.elapsed().as_secs_f64()
}

#[test]
#[ignore = "runs inside the netns, started by ike_sa_setup_rate_lifeline_vs_strongswan"]
fn inner_rate() {
    if !swan::is_inner("inner_rate") {
        return;
    }
    let case: usize = std::env::var("LIFELINE_RATE_CASE")
        .unwrap()
        .parse()
        .unwrap();
    let (auth, g, kw, n) = CASES[case];
    let (a_local, b_local) = match auth {
        Auth::Psk => ("1000", "2000"),
        Auth::Rsa => ("1000", "2000"),
    };

    // Lifeline responder on the loopback, in its own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let rsock = UdpSocket::bind("127.0.0.2:4500").unwrap();
    rsock
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let stop2 = stop.clone();
    let responder = std::thread::spawn(move || {
        let mut ep = endpoint();
        ep.add_profile(profile(auth, g, b_local, a_local));
        let local = rsock.local_addr().unwrap();
        let cpu0 = cpu_secs("/proc/thread-self/stat");
        let mut buf = [0u8; 65536];
        let mut sas = 0usize;
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((len, from)) = rsock.recv_from(&mut buf) {
                ep.handle_input(Instant::now(), local, from, &buf[..len]);
            }
            while let Some(t) = ep.poll_transmit() {
                let _ = rsock.send_to(&t.payload, t.remote);
            }
            while let Some(e) = ep.poll_event() {
                sas += usize::from(matches!(e, Event::ChildSaEstablished { .. }));
            }
            if ep.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                ep.handle_timeout(Instant::now());
            }
        }
        (sas, cpu_secs("/proc/thread-self/stat") - cpu0)
    });

    let mut ini = endpoint();
    ini.add_profile(profile(auth, g, a_local, b_local));
    let isock = UdpSocket::bind("127.0.0.1:4500").unwrap();
    let secs_ll = initiate_many(&mut ini, &isock, "127.0.0.2:4500".parse().unwrap(), n);
    stop.store(true, Ordering::Relaxed);
    let (sas, cpu_ll) = responder.join().unwrap();
    assert_eq!(sas, n);

    // strongSwan responder over the veth.
    let pid = std::env::var("LIFELINE_CHARON_PID").unwrap();
    let stat = format!("/proc/{pid}/stat");
    let mut ini = endpoint();
    ini.add_profile(profile(auth, g, a_local, b_local));
    let isock = UdpSocket::bind("192.0.2.2:4500").unwrap();
    let cpu0 = cpu_secs(&stat);
    let secs_sw = initiate_many(&mut ini, &isock, "192.0.2.1:4500".parse().unwrap(), n);
    let cpu_sw = cpu_secs(&stat) - cpu0;
    let list = swan::inner_swanctl(&["--list-sas"])
        .wait_with_output()
        .unwrap();
    let established = String::from_utf8_lossy(&list.stdout)
        .matches("ESTABLISHED")
        .count();
    assert_eq!(established, n, "charon holds every IKE SA");
    let grp = match g {
        DhGroup::Ecp256 => "19",
        DhGroup::Curve25519 => "31",
        _ => kw,
    };
    println!(
        "| {} | {grp} ({kw}) | {n} | {:.0} | {:.2} | {:.0} | {:.2} |",
        match auth {
            Auth::Psk => "PSK",
            Auth::Rsa => "RSA-2048",
        },
        n as f64 / secs_ll,
        cpu_ll * 1000.0 / n as f64,
        n as f64 / secs_sw,
        cpu_sw * 1000.0 / n as f64,
    );
}

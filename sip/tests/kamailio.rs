//! Interop with a real Kamailio (registrar + proxy, digest on), using the test bed's
//! `kamailio.cfg`/`users.cfg` (the project's copy in `tests/peers/kamailio/`, from the team's SIP test bed;
//! override with `LIFELINE_SIP_TESTBED`).
//! Kamailio listens on 127.0.0.77:5060 in the current network namespace; two user agents driven
//! over real UDP sockets on 127.0.0.78/79 register with digest, call each other through the
//! proxy (407 challenge, Record-Route), hang up, get refused with 486, and unregister; Kamailio's
//! location table (`kamcmd ul.dump`) is checked along the way.
//!
//! Root-only: skipped with a message when not root, unless `LIFELINE_REQUIRE_NETNS` is set, in
//! which case it fails if it cannot run.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeline_sip::*;

const KAM_IP: &str = "127.0.0.77";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `Ok(())` to run, `Err(reason)` to skip (or fail when the environment demands the test).
fn can_run() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("not root".into());
    }
    let bed = std::env::var("LIFELINE_SIP_TESTBED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/peers/kamailio"
            ))
        });
    if !bed.join("kamailio.cfg").exists() {
        return Err(format!("no kamailio.cfg in {}", bed.display()));
    }
    for tool in ["kamailio", "kamcmd"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("{tool} not installed"));
        }
    }
    Ok(bed)
}

/// Kamailio started by this test; stopped (TERM to the main process we spawned) on drop.
struct Kamailio {
    child: Child,
    dir: PathBuf,
}

impl Kamailio {
    fn start(bed: &std::path::Path, ip: &str) -> Kamailio {
        let dir =
            std::env::temp_dir().join(format!("lifeline-sip-kam-{}-{ip}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ctl = format!("CTL_SOCK=\"unix:{}/ctl\"", dir.display());
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-f"])
            .arg(bed.join("kamailio.cfg"))
            .args([
                "-A",
                &format!("LISTEN_IP=\"{ip}\""),
                "-A",
                "SIP_DOMAIN=\"lifeline.test\"",
            ])
            .args(["-A", &ctl, "-Y"])
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("pid"))
            .arg("-w")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap())
            .spawn()
            .unwrap();
        let k = Kamailio { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if k.kamcmd("core.uptime").is_some() {
                return k;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "kamailio did not come up; see {}/kamailio.log",
            k.dir.display()
        );
    }

    fn kamcmd(&self, cmd: &str) -> Option<String> {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}/ctl", self.dir.display()))
            .arg(cmd)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // keep the log when the test failed
                if !std::thread::panicking() {
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UA core plus its UDP socket: the smallest possible driver.
struct Driver {
    ua: UserAgent,
    sock: UdpSocket,
}

impl Driver {
    fn new(number: &str, ip: &str, seed: u64, kam_ip: &str) -> Driver {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_nonblocking(true).unwrap();
        let contact = sock.local_addr().unwrap();
        let mut cfg = UaConfig::new(
            number,
            "lifeline.test",
            format!("{kam_ip}:5060").parse().unwrap(),
            contact,
        );
        cfg.credentials = Some((number.into(), Secret::new(format!("secret{number}"))));
        cfg.expires = 600;
        Driver {
            ua: UserAgent::new(cfg, Box::new(SeededRandom::new(seed))),
            sock,
        }
    }
}

/// Pump both drivers in real time until `done` returns true on the collected events.
fn pump(
    ds: &mut [Driver],
    secs: u64,
    mut done: impl FnMut(&[(usize, Event)]) -> bool,
) -> Vec<(usize, Event)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        for d in ds.iter_mut() {
            while let Some(t) = d.ua.poll_transmit() {
                d.sock.send_to(&t.payload, t.to).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(2));
        for (i, d) in ds.iter_mut().enumerate() {
            while let Ok((n, from)) = d.sock.recv_from(&mut buf) {
                d.ua.handle_input(Instant::now(), from, &buf[..n]);
            }
            let now = Instant::now();
            if d.ua.poll_timeout().is_some_and(|t| t <= now) {
                d.ua.handle_timeout(now);
            }
            while let Some(e) = d.ua.poll_event() {
                events.push((i, e));
            }
        }
        if done(&events) {
            // flush what the last step queued (ACK, 200 to BYE)
            for d in ds.iter_mut() {
                while let Some(t) = d.ua.poll_transmit() {
                    d.sock.send_to(&t.payload, t.to).unwrap();
                }
            }
            return events;
        }
    }
    panic!("timed out; events so far: {events:?}");
}

fn bed_or_skip() -> Option<PathBuf> {
    match can_run() {
        Ok(b) => Some(b),
        Err(why) if std::env::var_os("LIFELINE_REQUIRE_NETNS").is_none() => {
            eprintln!("skipping kamailio interop test: {why}");
            None
        }
        Err(why) => panic!("LIFELINE_REQUIRE_NETNS is set but the test cannot run: {why}"),
    }
}

fn offer(ip: SocketAddr, port: u16) -> IkeSdp {
    let SocketAddr::V4(v4) = ip else { panic!() };
    IkeSdp {
        addr: *v4.ip(),
        port,
        transport: IkeTransport::UdpEncap,
        setup: Setup::Active,
        fingerprint: Fingerprint::new(HashFunc::Sha1, vec![0x4A; 20]),
        bandwidth_kbps: 512,
    }
}

#[test]
fn kamailio_register_call_hangup_reject_unregister() {
    let Some(bed) = bed_or_skip() else { return };
    let kam = Kamailio::start(&bed, KAM_IP);
    let mut ds = [
        Driver::new("1001", "127.0.0.78", 1, KAM_IP),
        Driver::new("1002", "127.0.0.79", 2, KAM_IP),
    ];

    // register both with digest (401 then 200)
    let now = Instant::now();
    for d in ds.iter_mut() {
        d.ua.register(now);
    }
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .filter(|(_, e)| matches!(e, Event::Registered { .. }))
            .count()
            == 2
    });
    assert!(
        ev.iter()
            .all(|(_, e)| matches!(e, Event::Registered { expires: 600, .. })),
        "{ev:?}"
    );
    let ul = kam.kamcmd("ul.dump").unwrap();
    for d in &ds {
        let c = d.ua.contact();
        assert!(
            ul.contains(&format!("sip:{}@{}", d.ua.config().local_number, c)),
            "{ul}"
        );
    }

    // call 1001 -> 1002 through the proxy (407 challenge, Record-Route), answer, hang up
    let a_contact = ds[0].ua.contact();
    let now = Instant::now();
    let a_call = ds[0].ua.invite(now, "1002", offer(a_contact, 50001));
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(i, e)| *i == 1 && matches!(e, Event::IncomingCall { .. }))
    });
    let Some((b_call, got)) = ev.iter().find_map(|(_, e)| match e {
        Event::IncomingCall {
            call,
            from_number,
            to_number: _,
            offer,
        } => {
            assert_eq!(from_number, "1001");
            Some((*call, offer.clone()))
        }
        _ => None,
    }) else {
        panic!()
    };
    assert_eq!(
        got,
        offer(a_contact, 50001),
        "Kamailio must pass the SDP unchanged"
    );
    let (answer, _) = answer_for(
        &got,
        Ipv4Addr::new(127, 0, 0, 79),
        50002,
        Fingerprint::new(HashFunc::Sha1, vec![0xD2; 20]),
        64,
        true,
    )
    .unwrap();
    ds[1].ua.answer(Instant::now(), b_call, &answer).unwrap();
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::CallAnswered { .. }))
            && ev
                .iter()
                .any(|(_, e)| matches!(e, Event::CallConfirmed { .. }))
    });
    let neg = ev.iter().find_map(|(_, e)| match e {
        Event::CallAnswered {
            call,
            negotiated,
            answer: a,
        } if *call == a_call => {
            assert_eq!(a, &answer);
            Some(negotiated.clone())
        }
        _ => None,
    });
    assert_eq!(neg.unwrap().bandwidth_kbps, 64);
    ds[0].ua.hangup(Instant::now(), a_call).unwrap();
    pump(&mut ds, 10, |ev| {
        ev.iter().any(|(i, e)| {
            *i == 1
                && matches!(
                    e,
                    Event::CallEnded {
                        by: EndedBy::Remote,
                        ..
                    }
                )
        })
    });

    // refused call: 486 reaches the caller through the proxy
    let a_call = ds[0]
        .ua
        .invite(Instant::now(), "1002", offer(a_contact, 50003));
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::IncomingCall { .. }))
    });
    let b_call = ev
        .iter()
        .find_map(|(_, e)| match e {
            Event::IncomingCall { call, .. } => Some(*call),
            _ => None,
        })
        .unwrap();
    ds[1].ua.reject(Instant::now(), b_call, 486, None).unwrap();
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::CallFailed { .. }))
    });
    assert!(
        ev.contains(&(
            0,
            Event::CallFailed {
                call: a_call,
                status: 486,
                reason: "Busy Here".into()
            }
        )),
        "{ev:?}"
    );

    // unknown number: 404 from Kamailio
    let c = ds[0]
        .ua
        .invite(Instant::now(), "1009", offer(a_contact, 50005));
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::CallFailed { .. }))
    });
    assert!(
        ev.iter()
            .any(|(_, e)| matches!(e, Event::CallFailed { call, status: 404, .. } if *call == c)),
        "{ev:?}"
    );

    // unregister 1001: gone from the location table
    ds[0].ua.unregister(Instant::now());
    pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::Unregistered { .. }))
    });
    let ul = kam.kamcmd("ul.dump").unwrap();
    assert!(!ul.contains("sip:1001@"), "{ul}");
    assert!(ul.contains("sip:1002@"), "{ul}");

    // 1002's WAN address changes: re-register the new contact, the old binding goes away
    let old = ds[1].ua.contact();
    let sock = UdpSocket::bind(("127.0.0.80", 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let new = sock.local_addr().unwrap();
    ds[1].sock = sock;
    ds[1].ua.set_contact(Instant::now(), new);
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(i, e)| *i == 1 && matches!(e, Event::Registered { .. }))
    });
    assert!(
        ev.contains(&(
            1,
            Event::Registered {
                number: "1002".into(),
                expires: 600,
                contact: new
            }
        )),
        "{ev:?}"
    );
    let ul = kam.kamcmd("ul.dump").unwrap();
    assert!(ul.contains(&format!("sip:1002@{new}")), "{ul}");
    assert!(!ul.contains(&format!("sip:1002@{old}")), "{ul}");

    // REGISTER over TCP through the stream framer
    register_over_tcp(&kam);
}

fn register_over_tcp(kam: &Kamailio) {
    use lifeline_sip::stream::StreamFramer;
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(format!("{KAM_IP}:5060")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = tcp.local_addr().unwrap();
    let mut cfg = UaConfig::new(
        "1003",
        "lifeline.test",
        format!("{KAM_IP}:5060").parse().unwrap(),
        local,
    );
    cfg.credentials = Some(("1003".into(), Secret::new("secret1003")));
    cfg.transport = Transport::Tcp;
    let mut ua = UserAgent::new(cfg, Box::new(SeededRandom::new(3)));
    ua.register(Instant::now());
    let mut framer = StreamFramer::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no registration over TCP");
        while let Some(t) = ua.poll_transmit() {
            tcp.write_all(&t.payload).unwrap();
        }
        if let Ok(n) = tcp.read(&mut buf) {
            framer.push(&buf[..n]);
        }
        while let Some(m) = framer.next_message().unwrap() {
            ua.handle_input(
                Instant::now(),
                format!("{KAM_IP}:5060").parse().unwrap(),
                &m,
            );
        }
        if let Some(Event::Registered { .. }) = ua.poll_event() {
            break;
        }
    }
    let ul = kam.kamcmd("ul.dump").unwrap();
    assert!(ul.contains(&format!("sip:1003@{local}")), "{ul}");
}

const KAM2_IP: &str = "127.0.0.88";
const SIPP_IP: &str = "127.0.0.90";

/// Run sipp against the second Kamailio; traces go to the Kamailio run directory.
fn sipp(kam: &Kamailio, name: &str, scenario: &std::path::Path, args: &[&str]) -> Child {
    let mut c = Command::new("sipp");
    c.arg(format!("{KAM2_IP}:5060"))
        .arg("-sf")
        .arg(scenario)
        .args([
            "-i", SIPP_IP, "-p", "5062", "-m", "1", "-nostdin", "-timeout", "15s",
        ])
        .args([
            "-timeout_error",
            "-trace_msg",
            "-trace_logs",
            "-message_file",
        ])
        .arg(kam.dir.join(format!("{name}.msg")))
        .arg("-log_file")
        .arg(kam.dir.join(format!("{name}.log")))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().unwrap()
}

fn wait_ok(mut child: Child, name: &str, kam: &Kamailio) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(
                st.success(),
                "sipp {name} failed ({st}); see {}/{name}.*",
                kam.dir.display()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("sipp {name} did not finish");
}

/// SIPp as callee and as caller, with RFC 6193 SDP, through Kamailio; our UA is 1001.
#[test]
fn sipp_rfc6193_caller_and_callee_scenarios() {
    let Some(bed) = bed_or_skip() else { return };
    if !Command::new("sh")
        .args(["-c", "command -v sipp"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var_os("LIFELINE_REQUIRE_NETNS").is_none(),
            "sipp not installed"
        );
        eprintln!("skipping sipp scenarios: sipp not installed");
        return;
    }
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp");
    let kam = Kamailio::start(&bed, KAM2_IP);
    let mut ds = [Driver::new("1001", "127.0.0.89", 7, KAM2_IP)];
    ds[0].ua.register(Instant::now());
    pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::Registered { .. }))
    });
    let reg_args = [
        "-nd",
        "-key",
        "user",
        "1003",
        "-key",
        "domain",
        "lifeline.test",
        "-key",
        "contact_port",
        "5062",
        "-key",
        "expires",
        "600",
        "-au",
        "1003",
        "-ap",
        "secret1003",
    ];
    let r = sipp(
        &kam,
        "register_1003",
        &bed.join("scenarios/register.xml"),
        &reg_args,
    );
    wait_ok(r, "register_1003", &kam);
    let a = ds[0].ua.contact();

    // 1. SIPp callee with a VPN-SIP answer: negotiated bandwidth = min(512, 256)
    let uas = sipp(
        &kam,
        "uas_vpnsip",
        &ours.join("uas_vpnsip.xml"),
        &["-key", "user", "1003"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let call = ds[0].ua.invite(Instant::now(), "1003", offer(a, 50001));
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::CallAnswered { .. } | Event::CallFailed { .. }))
    });
    let Some(Event::CallAnswered {
        negotiated, answer, ..
    }) = ev.into_iter().map(|(_, e)| e).next()
    else {
        panic!("not answered")
    };
    assert_eq!(negotiated.bandwidth_kbps, 256);
    assert_eq!(answer.setup, Setup::Passive);
    assert_eq!(answer.port, 50012);
    std::thread::sleep(Duration::from_millis(200));
    ds[0].ua.hangup(Instant::now(), call).unwrap();
    pump(&mut ds, 2, |_| true);
    std::thread::sleep(Duration::from_millis(100));
    pump(&mut ds, 2, |_| true);
    wait_ok(uas, "uas_vpnsip", &kam);

    // 2. the test bed's generic callee answers without b=AS: ACK, BYE, 488 reported locally
    let uas = sipp(
        &kam,
        "uas_no_bw",
        &bed.join("scenarios/uas_answer.xml"),
        &["-key", "user", "1003"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let call = ds[0].ua.invite(Instant::now(), "1003", offer(a, 50003));
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::CallFailed { .. }))
    });
    assert!(
        ev.iter().any(|(_, e)| matches!(e, Event::CallFailed { call: c, status: 488, reason } if *c == call && reason.contains("b=AS"))),
        "{ev:?}"
    );
    for _ in 0..20 {
        pump(&mut ds, 1, |_| true);
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_ok(uas, "uas_no_bw", &kam);

    // 3. SIPp caller with a VPN-SIP offer (407 at the proxy): we answer, it ACKs and BYEs
    let uac_args = [
        "-key",
        "user",
        "1003",
        "-key",
        "callee",
        "1001",
        "-key",
        "domain",
        "lifeline.test",
        "-au",
        "1003",
        "-ap",
        "secret1003",
    ];
    let uac = sipp(&kam, "uac_vpnsip", &ours.join("uac_vpnsip.xml"), &uac_args);
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::IncomingCall { .. }))
    });
    let Some(Event::IncomingCall {
        call,
        from_number,
        to_number: _,
        offer: got,
    }) = ev.into_iter().map(|(_, e)| e).next()
    else {
        panic!()
    };
    assert_eq!(from_number, "1003");
    assert_eq!(got.bandwidth_kbps, 1000);
    assert_eq!(
        got.fingerprint.hex(),
        "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"
    );
    let (ans, neg) = answer_for(
        &got,
        Ipv4Addr::new(127, 0, 0, 89),
        50002,
        Fingerprint::new(HashFunc::Sha1, vec![0xD2; 20]),
        64,
        true,
    )
    .unwrap();
    assert_eq!(neg.bandwidth_kbps, 64);
    ds[0].ua.answer(Instant::now(), call, &ans).unwrap();
    pump(&mut ds, 10, |ev| {
        ev.iter().any(|(_, e)| {
            matches!(
                e,
                Event::CallEnded {
                    by: EndedBy::Remote,
                    ..
                }
            )
        })
    });
    wait_ok(uac, "uac_vpnsip", &kam);

    // 4. SIPp caller without b=AS: refused with 488 and a Warning naming b=AS
    let uac = sipp(
        &kam,
        "uac_no_bw",
        &ours.join("uac_no_bandwidth.xml"),
        &uac_args,
    );
    let ev = pump(&mut ds, 10, |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::IncomingCallRejected { .. }))
    });
    assert!(
        ev.iter()
            .any(|(_, e)| matches!(e, Event::IncomingCallRejected { status: 488, .. })),
        "{ev:?}"
    );
    for _ in 0..20 {
        pump(&mut ds, 1, |_| true);
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_ok(uac, "uac_no_bw", &kam);
}

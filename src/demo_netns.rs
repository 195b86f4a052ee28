//! `lifeline demo --netns` (root): the demo's story with the real drivers. Three network namespaces, two
//! `lifeline run` daemons (TUN devices, kernel routes in table 4711, IP SLA probes on raw sockets, per-session
//! UDP ports) and the built-in registrar (`lifeline registrar`, hidden) in a third namespace that also routes
//! between the two backup WANs:
//!
//! ```text
//!  branch ns ---- primary 192.0.2.0/24 ---------------------------------- hq ns
//!   LAN 10.1.0.1 (lo)   \                                                / LAN 10.2.0.1 (lo)
//!                        backup 198.51.100.0/24 -- reg ns (router) -- 203.0.113.0/24
//!                                                 registrar 198.51.100.1:5060
//! ```
//! Timeline: registration -> pings over the primary -> the primary is cut (nftables drop on the branch) ->
//! the tracked route leaves, the backup route into Tunnel0 enters table 4711 -> ping: the first packet is
//! queued, INVITE/200/ACK, IKEv2, ESP in UDP from the session port -> the primary comes back -> the route
//! returns -> the IPsec idle timer (compressed to 3 s) deletes the SA and sends BYE -> READY_TO_CONNECT.
//! Everything is removed at the end (namespaces, daemons, the temporary directory unless something failed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

const IDLE_S: &str = "3";
const REGISTRAR_IP: &str = "198.51.100.1";

/// One side of the story.
struct Side {
    me: &'static str,
    number: &'static str,
    peer_number: &'static str,
    wan: &'static str,
    primary: &'static str,
    primary_peer: &'static str,
    inside: &'static str,
    remote_lan: &'static str,
    bandwidth: u32,
}

fn appliance_config(side: &Side) -> String {
    let Side {
        me,
        number,
        peer_number,
        wan,
        primary,
        primary_peer,
        inside,
        remote_lan,
        bandwidth,
    } = side;
    format!(
        "\
hostname {me}
!
crypto ikev2 keyring vpn-sip-keyring
 peer far-end
  identity key-id {peer_number}
  pre-shared-key lifeline-netns-demo-key
!
crypto ikev2 profile vpn-sip-profile
 match identity remote any
 authentication local pre-share
 authentication remote pre-share
 keyring local vpn-sip-keyring
 nat force-encap
!
crypto ipsec transform-set GCM esp-gcm 256
 mode tunnel
!
crypto ipsec profile vpn-sip-ipsec
 set transform-set GCM
 set security-association idle-time 120
 set ikev2-profile vpn-sip-profile
!
vpn-sip enable
vpn-sip local-number {number} address ipv4 GigabitEthernet1
vpn-sip tunnel source Loopback11
vpn-sip registrar {REGISTRAR_IP} port 5060
vpn-sip logging
!
interface Loopback11
 ip address {inside} 255.255.255.255
 ip nat inside
!
interface GigabitEthernet0
 description primary WAN
 device eth-pri
 ip address {primary} 255.255.255.0
!
interface GigabitEthernet1
 description backup WAN
 device eth-bak
 ip address {wan} 255.255.255.0
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number {number} remote-number {peer_number} bandwidth {bandwidth}
!
ip sla 1
 icmp-echo {primary_peer} source-interface GigabitEthernet0
 threshold 300
 timeout 300
 frequency 1
ip sla schedule 1 life forever start-time now
track 1 ip sla 1 reachability
!
ip route {remote_lan} 255.255.0.0 {primary_peer} track 1
ip route {remote_lan} 255.255.0.0 Tunnel0 250
"
    )
}

/// A network namespace, deleted with its interfaces on drop.
struct Ns(String);

impl Ns {
    fn new(role: &str) -> anyhow::Result<Ns> {
        let name = format!("lldemo-{role}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Ns(name);
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }

    fn run(&self, argv: &[&str]) -> anyhow::Result<String> {
        let mut c = self.cmd(argv[0]);
        c.args(&argv[1..]);
        run(&mut c)
    }

    fn ok(&self, argv: &[&str]) -> bool {
        let mut c = self.cmd(argv[0]);
        c.args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().is_ok_and(|s| s.success())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A child process, terminated (TERM, then KILL) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t0 = Instant::now();
        while matches!(self.0.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(c: &mut Command) -> anyhow::Result<String> {
    let out = c.output().with_context(|| format!("cannot run {c:?}"))?;
    ensure!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn veth(a: &Ns, a_if: &str, a_addr: &str, b: &Ns, b_if: &str, b_addr: &str) -> anyhow::Result<()> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp_a = format!("lv{}a{n}", std::process::id() % 100_000);
    let tmp_b = format!("lv{}b{n}", std::process::id() % 100_000);
    run(Command::new("ip").args([
        "link", "add", &tmp_a, "netns", &a.0, "type", "veth", "peer", "name", &tmp_b, "netns", &b.0,
    ]))?;
    a.run(&["ip", "link", "set", &tmp_a, "name", a_if])?;
    b.run(&["ip", "link", "set", &tmp_b, "name", b_if])?;
    a.run(&["ip", "addr", "add", a_addr, "dev", a_if])?;
    b.run(&["ip", "addr", "add", b_addr, "dev", b_if])?;
    a.run(&["ip", "link", "set", a_if, "up"])?;
    b.run(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

/// One appliance: its daemon, control socket and log.
struct Appliance {
    name: &'static str,
    sock: PathBuf,
    log: PathBuf,
    _daemon: Proc,
}

impl Appliance {
    fn start(
        exe: &Path,
        dir: &Path,
        ns: &Ns,
        name: &'static str,
        cfg: &str,
    ) -> anyhow::Result<Self> {
        let path = dir.join(format!("{name}.cfg"));
        std::fs::write(&path, cfg)?;
        let sock = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let child = ns
            .cmd(&exe.to_string_lossy())
            .args(["run", "--idle-override", IDLE_S, "-c"])
            .arg(&path)
            .arg("--socket")
            .arg(&sock)
            .arg("--state-dir")
            .arg(dir.join(format!("{name}-state")))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start lifeline run")?;
        Ok(Appliance {
            name,
            sock,
            log,
            _daemon: Proc(child),
        })
    }

    fn show(&self, what: &str) -> String {
        let mut words = vec!["show".to_string()];
        words.extend(what.split_whitespace().map(String::from));
        crate::control::request(&self.sock, &crate::control::Request { words, json: false })
            .map(|r| r.output)
            .unwrap_or_default()
    }

    /// The IOS-style log lines with this mnemonic prefix (`%VPN_SIP`, `%IKEV2`, ...).
    fn log_lines(&self, prefix: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let from = l.find(prefix)?;
                let line = &l[from..];
                // (without the structured-log suffix)
                Some(line.split(" tag=").next().unwrap_or(line).to_string())
            })
            .collect()
    }
}

struct Clock(Instant);

impl Clock {
    fn say(&self, what: impl std::fmt::Display) {
        println!("[{:>7.3} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            bail!("{what}: not within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn ping(ns: &Ns, wait_s: &str) -> bool {
    ns.ok(&[
        "ping", "-c", "1", "-W", wait_s, "-I", "10.1.0.1", "10.2.0.1",
    ])
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// `lifeline demo --netns`.
pub fn run_netns() -> anyhow::Result<ExitCode> {
    ensure!(
        crate::control::current_uid() == 0,
        "`lifeline demo --netns` creates network namespaces, TUN devices and routes: run it as root \
         (`lifeline demo` needs no root)"
    );
    for tool in ["ip", "nft", "ping"] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "`lifeline demo --netns` needs `{tool}` (iproute2, nftables, iputils-ping)"
        );
    }
    let exe = std::env::current_exe().context("cannot find the lifeline executable")?;
    let dir = std::env::temp_dir().join(format!("lifeline-demo-netns-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = story(&exe, &dir);
    match &result {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => eprintln!("configurations and daemon logs kept in {}", dir.display()),
    }
    result
}

fn story(exe: &Path, dir: &Path) -> anyhow::Result<ExitCode> {
    let clock = Clock(Instant::now());
    println!(
        "Lifeline demo in network namespaces: the same story with TUN devices, kernel routes and real"
    );
    println!(
        "sockets; two `lifeline run` daemons and the built-in registrar, each in its own namespace.\n"
    );
    let branch = Ns::new("br")?;
    let hq = Ns::new("hq")?;
    let reg = Ns::new("rg")?;
    veth(
        &branch,
        "eth-pri",
        "192.0.2.1/24",
        &hq,
        "eth-pri",
        "192.0.2.11/24",
    )?;
    veth(
        &branch,
        "eth-bak",
        "198.51.100.2/24",
        &reg,
        "r-br",
        "198.51.100.1/24",
    )?;
    veth(
        &hq,
        "eth-bak",
        "203.0.113.2/24",
        &reg,
        "r-hq",
        "203.0.113.1/24",
    )?;
    reg.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    branch.run(&[
        "ip",
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "198.51.100.1",
    ])?;
    hq.run(&[
        "ip",
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "203.0.113.1",
    ])?;
    branch.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"])?;
    hq.run(&["ip", "addr", "add", "10.2.0.1/24", "dev", "lo"])?;
    clock.say(format!(
        "namespaces {}, {}, {}: primary 192.0.2.0/24, backup WANs 198.51.100.0/24 and 203.0.113.0/24",
        branch.0, hq.0, reg.0
    ));

    let registrar = Proc(
        reg.cmd(&exe.to_string_lossy())
            .args(["registrar", "--listen", &format!("{REGISTRAR_IP}:5060")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registrar.log"))?)
            .spawn()
            .context("cannot start the registrar")?,
    );
    let a = Appliance::start(
        exe,
        dir,
        &branch,
        "branch",
        &appliance_config(&Side {
            me: "branch",
            number: "0388883001",
            peer_number: "0388884001",
            wan: "198.51.100.2",
            primary: "192.0.2.1",
            primary_peer: "192.0.2.11",
            inside: "10.9.9.1",
            remote_lan: "10.2.0.0",
            bandwidth: 1000,
        }),
    )?;
    let h = Appliance::start(
        exe,
        dir,
        &hq,
        "headend",
        &appliance_config(&Side {
            me: "headend",
            number: "0388884001",
            peer_number: "0388883001",
            wan: "203.0.113.2",
            primary: "192.0.2.11",
            primary_peer: "192.0.2.1",
            inside: "10.9.9.2",
            remote_lan: "10.1.0.0",
            bandwidth: 512,
        }),
    )?;
    wait(
        "both appliances registered",
        Duration::from_secs(15),
        || {
            [&a, &h].iter().all(|x| {
                x.show("vpn-sip registration-status")
                    .contains(": registered")
            })
        },
    )?;
    for x in [&a, &h] {
        clock.say(format!(
            "{}: {}",
            x.name,
            x.show("vpn-sip registration-status").trim()
        ));
    }
    wait("the primary answers", Duration::from_secs(10), || {
        ping(&branch, "1")
    })?;
    clock.say("ping 10.1.0.1 -> 10.2.0.1 answered over the primary");
    clock.say(format!(
        "branch kernel table 4711:\n{}",
        indent(&branch.run(&["ip", "route", "show", "table", "4711"])?)
    ));

    // The primary fails (nftables drops everything on the branch's primary link).
    branch.run(&["nft", "add", "table", "inet", "lldemo"])?;
    for (chain, hook, dir_kw) in [("in", "input", "iifname"), ("out", "output", "oifname")] {
        branch.run(&[
            "nft",
            "add",
            "chain",
            "inet",
            "lldemo",
            chain,
            &format!("{{ type filter hook {hook} priority 0 ; }}"),
        ])?;
        branch.run(&[
            "nft", "add", "rule", "inet", "lldemo", chain, dir_kw, "eth-pri", "drop",
        ])?;
    }
    let cut = Instant::now();
    clock.say("primary cut (nftables drop on the branch's eth-pri)");
    wait("both routes into Tunnel0", Duration::from_secs(10), || {
        [&a, &h].iter().all(|x| {
            x.show("ip route static")
                .contains("is directly connected, Tunnel0")
        })
    })?;
    clock.say(format!(
        "IP SLA lost, track 1 down, route moved on both ends {:?} after the cut; branch kernel table 4711:\n{}",
        cut.elapsed(),
        indent(&branch.run(&["ip", "route", "show", "table", "4711"])?)
    ));
    let first = Instant::now();
    ensure!(
        ping(&branch, "5"),
        "the first packet into Tunnel0 was not answered\nbranch:\n{}\nhead end:\n{}",
        a.show("vpn-sip session detail"),
        h.show("vpn-sip session detail")
    );
    clock.say(format!(
        "first ping answered through Tunnel0 {:?} after it was sent (SIP call, IKEv2, ESP)",
        first.elapsed()
    ));
    for l in a.log_lines("%VPN_SIP") {
        println!("            branch  {l}");
    }
    for l in h.log_lines("%VPN_SIP") {
        println!("            headend {l}");
    }
    branch.run(&[
        "ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1",
    ])?;
    clock.say("5 more pings answered through the tunnel");
    for (x, what) in [
        (&a, "vpn-sip session detail"),
        (&h, "vpn-sip session detail"),
        (&a, "ip nat translations"),
        (&a, "crypto session detail"),
        (&a, "policy-map interface Tunnel0"),
    ] {
        println!("\n{}# show {what}\n{}", x.name, x.show(what));
    }
    println!(
        "branch: the TUN device and the SIP and session-port sockets (ip -br link show type tun; ss -una):\n{}{}",
        indent(&branch.run(&["ip", "-br", "link", "show", "type", "tun"])?),
        indent(
            &branch
                .run(&["ss", "-una"])
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("198.51.100.2:") || l.contains("Local"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    );

    // The primary returns; traffic moves back; the idle timer ends the session.
    branch.run(&["nft", "delete", "table", "inet", "lldemo"])?;
    clock.say("primary back");
    wait("route back to the primary", Duration::from_secs(10), || {
        a.show("ip route static").contains("via 192.0.2.11")
    })?;
    ensure!(
        ping(&branch, "2"),
        "no answer over the primary after it came back"
    );
    clock.say("route back to GigabitEthernet0 via 192.0.2.11; ping answered over the primary");
    wait(
        "the idle timer ends the session",
        Duration::from_secs(15),
        || {
            [&a, &h].iter().all(|x| {
                x.show("vpn-sip session detail")
                    .contains("READY_TO_CONNECT")
            })
        },
    )?;
    clock.say(format!(
        "IPsec idle timer ({IDLE_S} s): SA deleted, BYE sent, both ends READY_TO_CONNECT"
    ));
    let nat = a.show("ip nat translations");
    ensure!(
        !nat.contains("udp "),
        "PAT entry survived the session:\n{nat}"
    );
    println!("\nbranch# show ip nat translations\n{nat}");
    println!(
        "branch# show vpn-sip session\n{}",
        a.show("vpn-sip session")
    );
    drop(registrar);
    clock.say("done: daemons stopped, namespaces removed");
    Ok(ExitCode::SUCCESS)
}

/// `lifeline registrar --listen ADDR` (hidden): the built-in SIP registrar and proxy on one UDP socket,
/// for `lifeline demo --netns`.
pub fn registrar(listen: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    let sock =
        std::net::UdpSocket::bind(listen).with_context(|| format!("cannot bind {listen}"))?;
    let mut r = sip::Registrar::new(
        sip::RegistrarConfig::new(listen.ip().to_string(), listen),
        Box::new(sip::SeededRandom::new(u64::from(std::process::id()))),
    );
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        let wait = r
            .poll_timeout()
            .map_or(Duration::from_millis(500), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(500));
        sock.set_read_timeout(Some(wait))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => r.handle_input(Instant::now(), from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        r.handle_timeout(Instant::now());
        while let Some(tx) = r.poll_transmit() {
            let _ = sock.send_to(&tx.payload, tx.to);
        }
    }
}

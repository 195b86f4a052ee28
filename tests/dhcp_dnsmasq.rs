//! DHCP options 120/125 from a real dnsmasq reach the SIP user agent (issue SIP: "Option 120/125 from
//! dnsmasq reach the user agent in a netns test").
//!
//! ```text
//!  netns ll-dhc (client)                         netns ll-dhs (server)
//!  dh-c0 (no address until bound) <--- veth ---> dh-s0 198.51.100.1/24 + 198.51.100.10/24
//!  monitors::dhcp::Client on 0.0.0.0:68          dnsmasq on UDP 67 (tests/common/dnsmasq.rs)
//!  sip::UserAgent on <lease>:5060                sip::Registrar on 198.51.100.10:5060
//! ```
//! The test thread cannot switch namespaces, so the outer test re-runs this test binary inside them
//! (`ip netns exec NS <exe> --exact inner_...`): once as the registrar in the server namespace, and twice as
//! the client: with no vendor class (option 120 encoding 1, addresses) and with vendor class
//! `lifeline-sipnames` (encoding 0, compressed names). Each client run takes a lease from dnsmasq over a
//! real socket, checks the lease and options 120/125, puts the address on the interface, registers a SIP
//! number with Contact = leased address:5060, renews at T1 (unicast) and rebinds at T2 (broadcast) on a
//! skewed client clock (same address and options back from dnsmasq), and releases the lease. The address
//! run also changes the WAN address (a second lease under another client identifier): the UA moves its
//! contact, and the registrar keeps only the new one.
//!
//! Registrar address: in the address run it is the first option-120 address (port 5060). The names need
//! DNS, which the test bed turns off (`port=0`), so the names run takes the domain from option 120 and the
//! registrar's address from option 125 sub-option 2 (a test-bed convention: the product spec says nothing
//! about what option 125 carries).
//!
//! Root only: skipped with a message otherwise, and a failure instead when `LIFELINE_REQUIRE_NETNS=1`.
#![allow(clippy::unwrap_used)]
mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::dnsmasq::{self, DhcpServerConfig, Dnsmasq};
use common::*;
use monitors::dhcp::{Client, ClientConfig, DhcpEvent, Lease, SipServers, StateName};

/// Marks an inner run: `client` or `registrar`.
const INNER_ENV: &str = "LIFELINE_DHCP_INNER";
/// Client run: `addrs` (no vendor class) or `names` (vendor class lifeline-sipnames).
const CASE_ENV: &str = "LIFELINE_DHCP_CASE";
/// Client run: the SIP number to register.
const NUMBER_ENV: &str = "LIFELINE_DHCP_NUMBER";
/// Registrar run: how many bindings to wait for before exiting.
const EXPECT_ENV: &str = "LIFELINE_DHCP_EXPECT";
const IF_SRV: &str = "dh-s0";
const IF_CLI: &str = "dh-c0";
const SIP_PORT: u16 = 5060;

fn registrar_addr() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(dnsmasq::SIP_ADDRS[0], SIP_PORT))
}

/// Re-runs this test binary inside `ns` with only `test` selected, bounded by `timeout`.
fn inner_cmd(ns: &Netns, test: &str, timeout_s: u32) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new("timeout");
    c.args([&timeout_s.to_string(), "ip", "netns", "exec", &ns.name])
        .arg(exe)
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An inner run under `timeout`, stopped with SIGTERM on drop: `timeout` passes it on to the test binary
/// inside the namespace (a SIGKILL would orphan that one until its own deadline).
struct Inner(std::process::Child);

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The address after `tag` on the first line that has it (`LEASE a`, `MOVED n contact a:p -> b:p`).
fn addr_after(log: &str, tag: &str) -> Option<Ipv4Addr> {
    log.lines().find_map(|l| {
        let rest = l.split_once(tag)?.1;
        let word = rest.split_whitespace().last()?;
        let ip = word.rsplit_once(':').map_or(word, |(ip, _)| ip);
        ip.parse().ok()
    })
}

/// Runs one client case in `cli`; returns its output and the leased address it printed.
fn run_client(cli: &Netns, case: &str, number: &str, dns: &Dnsmasq) -> (String, Ipv4Addr) {
    let out = inner_cmd(cli, "inner_dhcp_client", 20)
        .env(INNER_ENV, "client")
        .env(CASE_ENV, case)
        .env(NUMBER_ENV, number)
        .output()
        .unwrap();
    let log = text(&out);
    assert!(
        out.status.success(),
        "client run `{case}` failed ({}):\n{log}\n{}",
        out.status,
        dns.output()
    );
    eprintln!("--- client run `{case}` ---\n{log}");
    let lease = addr_after(&log, "LEASE ")
        .unwrap_or_else(|| panic!("client run `{case}` printed no LEASE line:\n{log}"));
    (log, lease)
}

#[test]
fn dnsmasq_options_120_125_reach_the_user_agent() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    let name = "dnsmasq_options_120_125_reach_the_user_agent";
    if !netns_available(name) {
        return;
    }
    if !dnsmasq::installed() {
        let required = std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "dnsmasq is not installed (scripts/install-deps installs dnsmasq-base)"
        );
        eprintln!("SKIP {name}: dnsmasq not installed");
        return;
    }
    let started = Instant::now();
    let srv = Netns::new("dhs");
    let cli = Netns::new("dhc");
    sh(Command::new("ip").args([
        "link", "add", IF_SRV, "netns", &srv.name, "type", "veth", "peer", "name", IF_CLI, "netns",
        &cli.name,
    ]));
    srv.run(&["ip", "addr", "add", "198.51.100.1/24", "dev", IF_SRV]);
    // the registrar's address (option 120's first entry) lives on the server side too
    srv.run(&["ip", "addr", "add", "198.51.100.10/24", "dev", IF_SRV]);
    srv.run(&["ip", "link", "set", IF_SRV, "up"]);
    cli.run(&["ip", "link", "set", IF_CLI, "up"]);
    let _cap = Capture::start(&srv, IF_SRV, "dhcp-dnsmasq");

    let cfg = DhcpServerConfig::testbed(IF_SRV);
    let dns = Dnsmasq::start(&srv, &cfg).unwrap();

    // the registrar, in the server namespace, until it has seen both numbers register
    let reg_out =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dhcp-registrar-{}.out", srv.name));
    let reg = inner_cmd(&srv, "inner_registrar", 30)
        .env(INNER_ENV, "registrar")
        .env(EXPECT_ENV, "3")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&reg_out).unwrap())
        .stderr(std::fs::File::create(reg_out.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let mut reg = Inner(reg);
    let read_reg = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&reg_out).unwrap_or_default(),
            std::fs::read_to_string(reg_out.with_extension("err")).unwrap_or_default()
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_reg().contains("READY ") {
        assert!(
            Instant::now() < deadline,
            "registrar did not start:\n{}",
            read_reg()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (log_a, lease_a) = run_client(&cli, "addrs", "1001", &dns);
    let moved = addr_after(&log_a, "MOVED ")
        .unwrap_or_else(|| panic!("client run `addrs` printed no MOVED line:\n{log_a}"));
    let (_, lease_n) = run_client(&cli, "names", "1002", &dns);
    for a in [lease_a, moved, lease_n] {
        assert!(cfg.in_pool(a), "{a} outside the dnsmasq range");
    }

    // the registrar exits on its own once the three bindings were made
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = reg.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "registrar still running:\n{}",
            read_reg()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let reg_log = read_reg();
    assert!(status.success(), "registrar run failed:\n{reg_log}");
    eprintln!("--- registrar run ---\n{reg_log}");
    let has = |tag: &str, number: &str, addr: Ipv4Addr| {
        let contact = format!("sip:{number}@{addr}:{SIP_PORT}");
        reg_log
            .lines()
            .any(|l| l.contains(tag) && l.contains(&contact))
    };
    // each registration reached the registrar with the leased address as its contact ...
    for (number, addr) in [("1001", lease_a), ("1001", moved), ("1002", lease_n)] {
        assert!(has("BINDING ", number, addr), "{number}@{addr}:\n{reg_log}");
    }
    // ... and after the address change only the new contact of 1001 is left
    assert!(has("FINAL ", "1001", moved), "{reg_log}");
    assert!(!has("FINAL ", "1001", lease_a), "{reg_log}");
    assert!(has("FINAL ", "1002", lease_n), "{reg_log}");
    let _ = std::fs::remove_file(&reg_out);
    let _ = std::fs::remove_file(reg_out.with_extension("err"));

    // dnsmasq's side of the story: both leases acknowledged with options 120 and 125, then released
    let log = dns.log();
    assert!(
        log.contains(&format!("DHCPACK({IF_SRV}) {lease_a}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("DHCPACK({IF_SRV}) {lease_n}")),
        "{log}"
    );
    assert!(log.contains("vendor class: lifeline-sipnames"), "{log}");
    assert!(log.contains("option:120"), "{log}");
    assert!(log.contains("option:125"), "{log}");
    assert!(log.contains(&format!("DHCPACK({IF_SRV}) {moved}")), "{log}");
    assert!(log.matches("DHCPRELEASE").count() >= 3, "{log}");
    // and the release emptied dnsmasq's lease file
    let deadline = Instant::now() + Duration::from_secs(2);
    while [lease_n, moved]
        .iter()
        .any(|a| dns.leases().contains(&format!(" {a} ")))
    {
        assert!(Instant::now() < deadline, "lease kept:\n{}", dns.leases());
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    eprintln!("dhcp_dnsmasq: done in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

/// The client side, inside the client namespace (started by the outer test).
#[test]
#[ignore = "runs inside a netns, started by dnsmasq_options_120_125_reach_the_user_agent"]
fn inner_dhcp_client() {
    if std::env::var(INNER_ENV).as_deref() != Ok("client") {
        return;
    }
    let case = std::env::var(CASE_ENV).unwrap();
    let number = std::env::var(NUMBER_ENV).unwrap();
    let names = match case.as_str() {
        "addrs" => false,
        "names" => true,
        other => panic!("unknown case {other}"),
    };
    let mac = read_mac(IF_CLI);
    let sock = dhcp_socket(IF_CLI);
    let mut client = Client::new(
        ClientConfig {
            mac,
            client_id: None,
            vendor_class: names.then(|| dnsmasq::SIPNAMES_CLASS.as_bytes().to_vec()),
            hostname: Some("lifeline-branch".into()),
        },
        0x11fe_11e0 ^ u64::from(std::process::id()),
    );
    let lease = acquire(&mut client, &sock);
    // (the harness's "test inner_dhcp_client ... " shares the first line)
    println!("\nLEASE {}", lease.addr);
    println!(
        "  mask {} router {:?} server {} lease {:?}\n  option 120 {:?}\n  option 125 {}",
        lease.mask,
        lease.router,
        lease.server,
        lease.lease,
        lease.sip_servers,
        lease
            .vendor
            .iter()
            .map(|v| {
                let subs: Vec<String> = v
                    .suboptions
                    .iter()
                    .map(|(c, d)| match std::str::from_utf8(d) {
                        Ok(t) if t.bytes().all(|b| b.is_ascii_graphic()) => format!("{c}={t}"),
                        _ => format!(
                            "{c}=0x{}",
                            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
                        ),
                    })
                    .collect();
                format!("enterprise {} [{}]", v.enterprise, subs.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    );

    // the lease as dnsmasq was configured to give it
    let cfg = DhcpServerConfig::testbed("-");
    assert!(cfg.in_pool(lease.addr), "{}", lease.addr);
    assert_eq!(lease.mask, cfg.mask);
    assert_eq!(lease.router, Some(cfg.router));
    assert_eq!(lease.server, cfg.router);
    assert_eq!(lease.lease, Duration::from_secs(u64::from(cfg.lease_secs)));
    // option 120 in the encoding the vendor class selected
    let expected = if names {
        SipServers::Domains(dnsmasq::SIP_NAMES.map(String::from).to_vec())
    } else {
        SipServers::Addrs(dnsmasq::SIP_ADDRS.to_vec())
    };
    assert_eq!(lease.sip_servers.as_ref(), Some(&expected));
    // option 125: one enterprise-9 block with exactly the two sub-options (dnsmasq reverses their order)
    assert_eq!(lease.vendor.len(), 1, "{:?}", lease.vendor);
    let v = &lease.vendor[0];
    assert_eq!(v.enterprise, dnsmasq::ENTERPRISE);
    assert_eq!(v.suboptions.len(), 2, "{:?}", v.suboptions);
    assert_eq!(v.suboption(1), Some(dnsmasq::SUB1_URI.as_bytes()));
    assert_eq!(v.suboption(2), Some(&dnsmasq::SUB2_ADDR.octets()[..]));

    // what the user agent is configured with, straight from the lease
    let (domain, registrar) = match lease.sip_servers.as_ref().unwrap() {
        SipServers::Addrs(a) => (
            a[0].to_string(),
            SocketAddr::V4(SocketAddrV4::new(a[0], SIP_PORT)),
        ),
        SipServers::Domains(d) => {
            let ip: [u8; 4] = v.suboption(2).unwrap().try_into().unwrap();
            (
                d[0].clone(),
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), SIP_PORT)),
            )
        }
    };
    assert_eq!(registrar, registrar_addr());
    let contact = SocketAddr::V4(SocketAddrV4::new(lease.addr, SIP_PORT));

    // apply the lease (the appliance does this over rtnetlink), register, release
    let prefix = u32::from(lease.mask).count_ones();
    let cidr = format!("{}/{prefix}", lease.addr);
    sh(Command::new("ip").args(["addr", "add", &cidr, "dev", IF_CLI]));
    let sip_sock = sip_socket(contact);
    let cfg = sip::UaConfig::new(&number, &domain, registrar, contact);
    let mut ua = sip::UserAgent::new(cfg, Box::new(sip::SeededRandom::new(0x5e1f)));
    ua.register(Instant::now());
    let registered = until_registered(&mut ua, &sip_sock);
    println!("REGISTERED {number}@{domain} via {registrar} contact {registered}");
    assert_eq!(registered, contact);

    // the backup WAN's address changes (Cisco: "may change based on DHCP assignment"): a new lease under
    // another client identifier while the first is still held, so dnsmasq picks another address; the
    // UA re-registers from it and removes the old contact
    let mut moved_lease = None;
    if !names {
        let mut client2 = Client::new(
            ClientConfig {
                mac,
                client_id: Some(b"\0lifeline-wan-2".to_vec()),
                vendor_class: None,
                hostname: Some("lifeline-branch".into()),
            },
            0x22fe_22e0 ^ u64::from(std::process::id()),
        );
        let lease2 = acquire(&mut client2, &sock);
        assert!(cfg_pool_contains(lease2.addr), "{}", lease2.addr);
        assert_ne!(lease2.addr, lease.addr);
        assert_eq!(lease2.sip_servers, lease.sip_servers);
        let cidr2 = format!("{}/{prefix}", lease2.addr);
        sh(Command::new("ip").args(["addr", "add", &cidr2, "dev", IF_CLI]));
        let contact2 = SocketAddr::V4(SocketAddrV4::new(lease2.addr, SIP_PORT));
        let sip_sock2 = sip_socket(contact2);
        ua.set_contact(Instant::now(), contact2);
        let registered2 = until_registered(&mut ua, &sip_sock2);
        println!("\nMOVED {number} contact {registered} -> {registered2}");
        assert_eq!(registered2, contact2);
        moved_lease = Some((client2, lease2, cidr2));
    }

    // renewing (T1: unicast to the server) and rebinding (T2: broadcast) against dnsmasq, on a skewed
    // clock; the options come back unchanged
    let t1 = lease.bound_at + lease.t1;
    let renewed = renew_at(&mut client, &sock, &lease, t1, lease.server);
    println!("RENEWED at T1 {}", renewed.addr);
    let t2 = renewed.bound_at + renewed.t2;
    let rebound = renew_at(&mut client, &sock, &renewed, t2, Ipv4Addr::BROADCAST);
    println!("REBOUND at T2 {}", rebound.addr);

    client.release(Instant::now());
    while let Some(t) = client.poll_transmit() {
        sock.send_to(&t.payload, SocketAddrV4::new(t.dst, 67))
            .unwrap();
    }
    assert!(matches!(
        client.poll_event(),
        Some(DhcpEvent::Lost { addr }) if addr == lease.addr
    ));
    if let Some((mut client2, lease2, cidr2)) = moved_lease {
        client2.release(Instant::now());
        while let Some(t) = client2.poll_transmit() {
            sock.send_to(&t.payload, SocketAddrV4::new(t.dst, 67))
                .unwrap();
        }
        assert!(matches!(
            client2.poll_event(),
            Some(DhcpEvent::Lost { addr }) if addr == lease2.addr
        ));
        sh(Command::new("ip").args(["addr", "del", &cidr2, "dev", IF_CLI]));
    }
    sh(Command::new("ip").args(["addr", "del", &cidr, "dev", IF_CLI]));
}

fn cfg_pool_contains(a: Ipv4Addr) -> bool {
    DhcpServerConfig::testbed("-").in_pool(a)
}

fn read_mac(ifname: &str) -> [u8; 6] {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).unwrap();
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// UDP 0.0.0.0:68 with SO_BROADCAST, bound to the device (what the appliance's DHCP driver opens).
fn dhcp_socket(ifname: &str) -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_broadcast(true).unwrap();
    s.bind_device(Some(ifname.as_bytes())).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.into()
}

/// Drives the client over the socket until it is bound (10 s at most).
fn acquire(client: &mut Client, sock: &UdpSocket) -> Lease {
    client.start(Instant::now());
    match next_event(client, sock, Duration::ZERO).0 {
        DhcpEvent::Bound(l) => l,
        other => panic!("expected Bound, got {other:?}"),
    }
}

/// Drives the client over the socket until it reports an event (10 s at most). The client's clock is
/// the real one plus `skew`: a skew past T1 or T2 makes it renew or rebind now, against the real server.
/// Also returns the destinations of the datagrams sent meanwhile.
fn next_event(client: &mut Client, sock: &UdpSocket, skew: Duration) -> (DhcpEvent, Vec<Ipv4Addr>) {
    let clock = || Instant::now() + skew;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    let mut sent = Vec::new();
    loop {
        while let Some(t) = client.poll_transmit() {
            sock.send_to(&t.payload, SocketAddrV4::new(t.dst, 67))
                .unwrap();
            sent.push(t.dst);
        }
        if let Some(ev) = client.poll_event() {
            return (ev, sent);
        }
        assert!(
            Instant::now() < deadline,
            "no DHCP event within 10 s (state {:?})",
            client.state()
        );
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from.port() == 67 => {
                client.handle_input(clock(), &buf[..n]);
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => panic!("recv: {e}"),
        }
        let now = clock();
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
    }
}

/// Moves the client's clock past `at` (T1 or T2 of `lease`) and waits for the renewed lease; the
/// last request went to `dst` (the server at T1, broadcast at T2).
fn renew_at(
    client: &mut Client,
    sock: &UdpSocket,
    lease: &Lease,
    at: Instant,
    dst: Ipv4Addr,
) -> Lease {
    let skew = at.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
    let (renewed, sent) = match next_event(client, sock, skew) {
        (DhcpEvent::Renewed(l), sent) => (l, sent),
        (other, _) => panic!("expected Renewed, got {other:?}"),
    };
    assert_eq!(sent.last(), Some(&dst), "{sent:?}");
    // same address, same options, a fresh lease timer
    assert_eq!(renewed.addr, lease.addr);
    assert_eq!(renewed.sip_servers, lease.sip_servers);
    assert_eq!(renewed.vendor, lease.vendor);
    assert_eq!(renewed.lease, lease.lease);
    assert!(renewed.bound_at >= at);
    assert_eq!(client.state(), StateName::Bound);
    renewed
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn sip_socket(contact: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind(contact).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    sock
}

/// Drives the user agent over `sock` until it reports `Registered`; returns the Contact it reports.
fn until_registered(ua: &mut sip::UserAgent, sock: &UdpSocket) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 65536];
    loop {
        while let Some(t) = ua.poll_transmit() {
            sock.send_to(&t.payload, t.to).unwrap();
        }
        match ua.poll_event() {
            Some(sip::Event::Registered {
                contact, expires, ..
            }) => {
                assert!(expires > 0);
                assert!(ua.is_registered());
                return contact;
            }
            Some(other) => panic!("unexpected SIP event {other:?}"),
            None => {}
        }
        assert!(Instant::now() < deadline, "not registered within 5 s");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => ua.handle_input(Instant::now(), from, &buf[..n]),
            Err(e) if would_block(&e) => {}
            Err(e) => panic!("recv: {e}"),
        }
        let now = Instant::now();
        if ua.poll_timeout().is_some_and(|t| t <= now) {
            ua.handle_timeout(now);
        }
    }
}

/// The registrar side, inside the server namespace (started by the outer test): serves until the expected
/// number of bindings exist (then 300 ms more for retransmissions), 25 s at most.
#[test]
#[ignore = "runs inside a netns, started by dnsmasq_options_120_125_reach_the_user_agent"]
fn inner_registrar() {
    if std::env::var(INNER_ENV).as_deref() != Ok("registrar") {
        return;
    }
    let expect: usize = std::env::var(EXPECT_ENV).unwrap().parse().unwrap();
    let addr = registrar_addr();
    let sock = UdpSocket::bind(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // open registrar (no digest) serving the names domain; REGISTERs to its IP literal are accepted too
    let cfg = sip::RegistrarConfig::new(dnsmasq::SIP_NAMES[0], addr);
    let mut reg = sip::Registrar::new(cfg, Box::new(sip::SeededRandom::new(0x5e9)));
    println!("READY {addr}");
    std::io::stdout().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut linger: Option<Instant> = None;
    let mut buf = [0u8; 65536];
    loop {
        let now = Instant::now();
        assert!(now < deadline, "only {} of {expect} bindings", seen.len());
        if linger.is_some_and(|t| now >= t) {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => reg.handle_input(Instant::now(), from, &buf[..n]),
            Err(e) if would_block(&e) => {}
            Err(e) => panic!("recv: {e}"),
        }
        while let Some(t) = reg.poll_transmit() {
            sock.send_to(&t.payload, t.to).unwrap();
        }
        let now = Instant::now();
        if reg.poll_timeout().is_some_and(|t| t <= now) {
            reg.handle_timeout(now);
        }
        for (aor, contact, expires) in reg.snapshot(now).bindings {
            if !seen.iter().any(|(a, c)| *a == aor && *c == contact) {
                println!("BINDING {aor} {contact} expires {expires}");
                std::io::stdout().flush().unwrap();
                seen.push((aor, contact));
            }
        }
        if seen.len() >= expect && linger.is_none() {
            linger = Some(now + Duration::from_millis(300));
        }
    }
    for (aor, contact, _) in reg.snapshot(Instant::now()).bindings {
        println!("FINAL {aor} {contact}");
    }
}

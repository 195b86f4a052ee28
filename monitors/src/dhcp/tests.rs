use super::*;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 115);

fn client() -> Client {
    Client::new(
        ClientConfig {
            mac: MAC,
            client_id: None,
            vendor_class: None,
            hostname: Some("branch1".into()),
        },
        42,
    )
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn decode(t: &Transmit) -> Message {
    Message::from_bytes(&t.payload).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Lease options as dnsmasq in the test bed sends them (option 120 encoding 1, option 125 enterprise 9).
fn ack_options(lease: u32) -> Vec<DhcpOption> {
    vec![
        DhcpOption::AddressLeaseTime(lease),
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        DhcpOption::Router(vec![SERVER]),
        raw_option(120, hex("01 c633640a c633640b")),
        raw_option(
            125,
            hex("00000009 1e 0204c633640a 01167369703a3139382e35312e3130302e31303a35303630"),
        ),
    ]
}

/// Runs DISCOVER/OFFER/REQUEST/ACK; returns the bound lease.
fn bind(c: &mut Client, t0: Instant, ack_opts: Vec<DhcpOption>) -> Lease {
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(&discover.payload, MessageType::Offer, ADDR, SERVER, vec![]).unwrap();
    assert!(c.handle_input(t0 + Duration::from_millis(5), &offer));
    let request = c.poll_transmit().unwrap();
    let ack = server_reply(&request.payload, MessageType::Ack, ADDR, SERVER, ack_opts).unwrap();
    assert!(c.handle_input(t0 + Duration::from_millis(10), &ack));
    match c.poll_event() {
        Some(DhcpEvent::Bound(l)) => l,
        other => panic!("expected Bound, got {other:?}"),
    }
}

#[test]
fn discover_is_broadcast_and_requests_options_120_and_125() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    assert_eq!(c.state(), StateName::Selecting);
    let t = c.poll_transmit().unwrap();
    assert_eq!((t.src, t.dst), (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
    let m = decode(&t);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
    assert!(m.flags().broadcast());
    assert_eq!(m.chaddr(), MAC);
    let Some(DhcpOption::ParameterRequestList(prl)) =
        m.opts().get(OptionCode::ParameterRequestList)
    else {
        panic!("no PRL")
    };
    assert!(prl.contains(&OptionCode::from(120)) && prl.contains(&OptionCode::from(125)));
    assert_eq!(
        m.opts().get(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("branch1".into()))
    );
    // Deterministic xid from the injected seed.
    assert_eq!(m.xid(), client_xid_for_seed(42));
}

fn client_xid_for_seed(seed: u64) -> u32 {
    let mut c = Client::new(
        ClientConfig {
            mac: MAC,
            client_id: None,
            vendor_class: None,
            hostname: None,
        },
        seed,
    );
    c.next_u32()
}

#[test]
fn full_exchange_binds_with_typed_sip_servers_and_vendor_info() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(&discover.payload, MessageType::Offer, ADDR, SERVER, vec![]).unwrap();
    assert!(c.handle_input(t0, &offer));
    assert_eq!(c.state(), StateName::Requesting);
    let req = decode(&c.poll_transmit().unwrap());
    assert_eq!(req.opts().msg_type(), Some(MessageType::Request));
    assert_eq!(req.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        req.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(ADDR))
    );
    assert_eq!(
        req.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        req.xid(),
        decode(&Transmit {
            src: ADDR,
            dst: ADDR,
            payload: discover.payload
        })
        .xid()
    );
    let ack = server_reply(
        &req.to_vec().unwrap(),
        MessageType::Ack,
        ADDR,
        SERVER,
        ack_options(600),
    )
    .unwrap();
    assert!(c.handle_input(t0 + secs(1), &ack));
    let Some(DhcpEvent::Bound(l)) = c.poll_event() else {
        panic!("not bound")
    };
    assert_eq!(c.state(), StateName::Bound);
    assert_eq!(
        (l.addr, l.mask, l.router, l.server),
        (ADDR, Ipv4Addr::new(255, 255, 255, 0), Some(SERVER), SERVER)
    );
    assert_eq!((l.lease, l.t1, l.t2), (secs(600), secs(300), secs(525)));
    assert_eq!(
        l.sip_servers,
        Some(SipServers::Addrs(vec![
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 11)
        ]))
    );
    assert_eq!(l.vendor.len(), 1);
    assert_eq!(l.vendor[0].enterprise, 9);
    assert_eq!(
        l.vendor[0].suboption(1),
        Some(&b"sip:198.51.100.10:5060"[..])
    );
    assert_eq!(c.poll_timeout(), Some(t0 + secs(1) + secs(300)));
}

#[test]
fn ack_with_domain_name_encoding_and_compression_decodes_names() {
    let t0 = crate::test_t0();
    let mut c = client();
    let opts = vec![
        DhcpOption::AddressLeaseTime(600),
        raw_option(
            120,
            hex("00 03736970 086c6966656c696e65 0474657374 00 0473697032 c004"),
        ),
    ];
    let l = bind(&mut c, t0, opts);
    assert_eq!(
        l.sip_servers,
        Some(SipServers::Domains(vec![
            "sip.lifeline.test".into(),
            "sip2.lifeline.test".into()
        ]))
    );
    assert!(l.vendor.is_empty());
}

#[test]
fn malformed_option_120_is_dropped_but_lease_is_kept() {
    let t0 = crate::test_t0();
    let mut c = client();
    let l = bind(
        &mut c,
        t0,
        vec![
            DhcpOption::AddressLeaseTime(600),
            raw_option(120, vec![1, 2, 3]),
        ],
    );
    assert_eq!(l.sip_servers, None);
}

#[test]
fn foreign_replies_are_ignored() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(&discover.payload, MessageType::Offer, ADDR, SERVER, vec![]).unwrap();
    // Wrong xid.
    let mut m = Message::from_bytes(&offer).unwrap();
    m.set_xid(m.xid() ^ 1);
    assert!(!c.handle_input(t0, &m.to_vec().unwrap()));
    // Wrong hardware address.
    let mut m = Message::from_bytes(&offer).unwrap();
    m.set_chaddr(&[2, 0, 0, 0, 0, 0x43]);
    assert!(!c.handle_input(t0, &m.to_vec().unwrap()));
    // A request (another client's broadcast), not a reply.
    assert!(!c.handle_input(t0, &discover.payload));
    // No server identifier.
    let mut m = Message::from_bytes(&offer).unwrap();
    m.opts_mut().remove(OptionCode::ServerIdentifier);
    assert!(!c.handle_input(t0, &m.to_vec().unwrap()));
    // An ACK while selecting.
    let ack = server_reply(
        &discover.payload,
        MessageType::Ack,
        ADDR,
        SERVER,
        ack_options(600),
    )
    .unwrap();
    assert!(!c.handle_input(t0, &ack));
    assert_eq!(c.state(), StateName::Selecting);
    assert!(c.poll_transmit().is_none());
}

#[test]
fn garbage_input_never_panics() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(
        &discover.payload,
        MessageType::Offer,
        ADDR,
        SERVER,
        ack_options(600),
    )
    .unwrap();
    for cut in 0..offer.len() {
        c.handle_input(t0, &offer[..cut]);
    }
    for i in 0..offer.len() {
        let mut m = offer.clone();
        m[i] ^= 0xff;
        c.handle_input(t0, &m);
    }
}

#[test]
fn selecting_retransmits_with_exponential_backoff() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    c.poll_transmit().unwrap();
    let mut last = t0;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let next = c.poll_timeout().unwrap();
        gaps.push(next.duration_since(last).as_secs_f64());
        c.handle_timeout(next);
        assert!(c.poll_transmit().is_some());
        last = next;
    }
    for (gap, base) in gaps.iter().zip([4.0, 8.0, 16.0, 32.0, 64.0, 64.0]) {
        assert!((gap - base).abs() <= 1.0, "gap {gap} vs {base}");
    }
}

#[test]
fn requesting_gives_up_after_four_tries_and_rediscovers() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(&discover.payload, MessageType::Offer, ADDR, SERVER, vec![]).unwrap();
    c.handle_input(t0, &offer);
    let mut requests = 1;
    c.poll_transmit().unwrap();
    loop {
        let at = c.poll_timeout().unwrap();
        c.handle_timeout(at);
        let m = decode(&c.poll_transmit().unwrap());
        if m.opts().msg_type() == Some(MessageType::Discover) {
            break;
        }
        requests += 1;
    }
    assert_eq!(requests, REQUEST_TRIES);
    assert_eq!(c.state(), StateName::Selecting);
}

#[test]
fn nak_while_requesting_restarts_discovery() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(&discover.payload, MessageType::Offer, ADDR, SERVER, vec![]).unwrap();
    c.handle_input(t0, &offer);
    let req = c.poll_transmit().unwrap();
    let nak = server_reply(
        &req.payload,
        MessageType::Nak,
        Ipv4Addr::UNSPECIFIED,
        SERVER,
        vec![],
    )
    .unwrap();
    assert!(c.handle_input(t0, &nak));
    c.handle_timeout(t0);
    assert_eq!(
        decode(&c.poll_transmit().unwrap()).opts().msg_type(),
        Some(MessageType::Discover)
    );
}

#[test]
fn ack_without_lease_time_is_ignored() {
    let t0 = crate::test_t0();
    let mut c = client();
    c.start(t0);
    let discover = c.poll_transmit().unwrap();
    let offer = server_reply(&discover.payload, MessageType::Offer, ADDR, SERVER, vec![]).unwrap();
    c.handle_input(t0, &offer);
    let req = c.poll_transmit().unwrap();
    let ack = server_reply(&req.payload, MessageType::Ack, ADDR, SERVER, vec![]).unwrap();
    assert!(!c.handle_input(t0, &ack));
    assert_eq!(c.state(), StateName::Requesting);
}

#[test]
fn t1_renews_by_unicast_and_ack_extends_the_lease() {
    let t0 = crate::test_t0();
    let mut c = client();
    let l = bind(&mut c, t0, ack_options(600));
    let t1 = l.bound_at + l.t1;
    c.handle_timeout(t1 - Duration::from_millis(1));
    assert!(c.poll_transmit().is_none());
    c.handle_timeout(t1);
    assert_eq!(c.state(), StateName::Renewing);
    let t = c.poll_transmit().unwrap();
    assert_eq!((t.src, t.dst), (ADDR, SERVER));
    let m = decode(&t);
    assert_eq!(m.ciaddr(), ADDR);
    assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
    assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());
    let ack = server_reply(&t.payload, MessageType::Ack, ADDR, SERVER, ack_options(600)).unwrap();
    assert!(c.handle_input(t1 + secs(1), &ack));
    let Some(DhcpEvent::Renewed(n)) = c.poll_event() else {
        panic!("not renewed")
    };
    assert_eq!(n.bound_at, t1 + secs(1));
    assert_eq!(c.state(), StateName::Bound);
}

#[test]
fn renewing_retransmits_at_half_remaining_then_rebinds_then_loses_at_expiry() {
    let t0 = crate::test_t0();
    let mut c = client();
    let l = bind(&mut c, t0, ack_options(3600)); // T1 1800 s, T2 3150 s
    let (t1, t2, exp) = (l.bound_at + l.t1, l.bound_at + l.t2, l.expires_at());
    c.handle_timeout(t1);
    c.poll_transmit().unwrap();
    // Half of the 1350 s left until T2.
    assert_eq!(c.poll_timeout(), Some(t1 + secs(675)));
    let mut sent = Vec::new();
    while c.state() != StateName::Init && c.state() != StateName::Selecting {
        let at = c.poll_timeout().unwrap();
        c.handle_timeout(at);
        while let Some(t) = c.poll_transmit() {
            sent.push((at, c.state(), t.dst));
        }
        if at >= exp {
            break;
        }
    }
    assert!(sent.iter().any(|(at, s, dst)| *at == t2
        && *s == StateName::Rebinding
        && *dst == Ipv4Addr::BROADCAST));
    // No retransmission gap under 60 s except the final one before a deadline.
    assert_eq!(c.poll_event(), Some(DhcpEvent::Lost { addr: ADDR }));
    assert!(c.lease().is_none());
}

#[test]
fn nak_while_renewing_loses_the_address() {
    let t0 = crate::test_t0();
    let mut c = client();
    let l = bind(&mut c, t0, ack_options(600));
    c.handle_timeout(l.bound_at + l.t1);
    let t = c.poll_transmit().unwrap();
    let nak = server_reply(
        &t.payload,
        MessageType::Nak,
        Ipv4Addr::UNSPECIFIED,
        SERVER,
        vec![],
    )
    .unwrap();
    assert!(c.handle_input(l.bound_at + l.t1, &nak));
    assert_eq!(c.poll_event(), Some(DhcpEvent::Lost { addr: ADDR }));
    assert_eq!(c.state(), StateName::Init);
}

#[test]
fn release_sends_dhcprelease_and_stops() {
    let t0 = crate::test_t0();
    let mut c = client();
    bind(&mut c, t0, ack_options(600));
    c.release(t0 + secs(5));
    let t = c.poll_transmit().unwrap();
    assert_eq!((t.src, t.dst), (ADDR, SERVER));
    assert_eq!(decode(&t).opts().msg_type(), Some(MessageType::Release));
    assert_eq!(c.state(), StateName::Stopped);
    assert_eq!(c.poll_timeout(), None);
}

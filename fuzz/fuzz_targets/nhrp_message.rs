//! Inbound NHRP (RFC 2332 with the Cisco/FRR extensions): arbitrary bytes through the parser and
//! into a hub (NHS) and a spoke (NHC) state machine, then their timers. Must never panic; a packet
//! that parses must re-emit to bytes that parse to the same meaning.
//!
//! The first input byte is a mode: with bit 0 set, the target writes the right `ar$pktsz` and RFC
//! 1071 checksum into the rest, so the fuzzer reaches the CIE and extension parsers instead of
//! stopping at the checksum.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nhrp::wire::nhrp::{FIXED_HEADER_LEN, Packet};
use nhrp::{Config, Nhc, NhrpNode, Nhs};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn drain(node: &mut dyn NhrpNode) {
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= FIXED_HEADER_LEN && bytes.len() <= usize::from(u16::MAX) {
        let len = bytes.len() as u16;
        bytes[10..12].copy_from_slice(&len.to_be_bytes());
        bytes[12..14].fill(0);
        let c = nhrp::wire::checksum(&bytes);
        bytes[12..14].copy_from_slice(&c.to_be_bytes());
    }

    if let Ok(repr) = Packet::parse(&bytes) {
        if let Ok(emitted) = repr.emit() {
            let again = Packet::parse(&emitted).expect("own packet parses");
            assert_eq!(again, repr);
        }
    }

    let now = *ORIGIN.get_or_init(Instant::now);
    let from = Ipv4Addr::new(198, 51, 100, 7);
    let mut hub_cfg = Config::new("Tunnel0", Ipv4Addr::new(10, 0, 0, 1), 24, Ipv4Addr::new(192, 0, 2, 1));
    hub_cfg.redirect = true;
    let mut hub = Nhs::new(hub_cfg, now);
    let mut spoke_cfg = Config::new("Tunnel0", Ipv4Addr::new(10, 0, 0, 2), 24, Ipv4Addr::new(198, 51, 100, 2));
    spoke_cfg.nhs = vec![Ipv4Addr::new(10, 0, 0, 1)];
    spoke_cfg.static_maps = vec![(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 1))];
    spoke_cfg.shortcut = true;
    let mut spoke = Nhc::new(spoke_cfg, now);
    for node in [&mut hub as &mut dyn NhrpNode, &mut spoke] {
        drain(node);
        node.handle_input(now, from, &bytes);
        drain(node);
        let later = now + Duration::from_secs(3600);
        node.handle_timeout(later);
        drain(node);
        let _ = node.snapshot();
    }
});

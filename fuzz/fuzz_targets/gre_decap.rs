//! Inbound GRE (RFC 2784/2890) as the raw protocol-47 socket hands it over: arbitrary bytes through
//! the header view, the validating parse, the tunnel demultiplexer and, for NHRP payloads, the NHRP
//! parser. Must never panic; a header that parses must re-emit to the same header.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use nhrp::demux::{GreDemux, TunnelId};
use nhrp::wire::gre::{Packet, ProtocolType, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = Repr::parse(&packet) else {
        return;
    };
    // Round trip of the header (checksum recomputed over the same payload).
    let payload = packet.payload();
    let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
    let mut out = Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut out);
    out.payload_mut().copy_from_slice(payload);
    if repr.checksum {
        out.fill_checksum();
    }
    let again = Packet::new_checked(&buf[..]).expect("own header is well formed");
    assert_eq!(Repr::parse(&again).expect("own header parses"), repr);

    let local = Ipv4Addr::new(192, 0, 2, 1);
    let mut demux = GreDemux::new();
    let _ = demux.add_p2p(TunnelId(1), local, Ipv4Addr::new(192, 0, 2, 2), Some(100_000));
    let _ = demux.add_mgre(TunnelId(2), local, repr.key);
    let _ = demux.lookup(local, Ipv4Addr::new(192, 0, 2, 2), repr.key);
    if repr.protocol == ProtocolType::NHRP {
        let _ = nhrp::wire::nhrp::Packet::parse(payload);
    }
});

//! IKEv1 (ISAKMP) messages, three ways, from one input:
//! 1. the unauthenticated decode: `ike::v1::wire::Message::parse`; whatever it accepts must survive
//!    `emit` and parse back to the same message;
//! 2. the decrypted-payload decode: the first byte is the header's next-payload type and the rest is a
//!    decrypted body as the endpoint hands it to `parse_chain(first, body, true)` (trailing CBC padding
//!    allowed); an accepted chain must emit and parse again to the same payloads;
//! 3. the endpoint itself: a responder `ike::v1::Endpoint` (wildcard PSK, group 19) fed the input on
//!    UDP 500 and, with the non-ESP marker, on 4500 (main mode, informational and quick mode entry
//!    points, NAT-T keepalive and marker handling), then its timers.
//!
//! Never panics; round trips hold.
#![no_main]

use ike::v1::wire::{self, PayloadType};
use ike::v1::{Config, Endpoint, PresharedKey};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A deterministic generator: the same input takes the same path.
struct Counter(u64);
impl ike::Rng for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (self.0 >> 33) as u8;
        }
    }
}

fn base() -> Instant {
    static T: OnceLock<Instant> = OnceLock::new();
    // A fixed base per process (library crates never read the clock; the harness may).
    #[allow(clippy::disallowed_methods)]
    *T.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    // 1. unauthenticated decode
    if let Ok(msg) = wire::Message::parse(data) {
        let bytes = msg.emit();
        let again = wire::Message::parse(&bytes).expect("emitted message must parse");
        assert_eq!(again, msg, "parse(emit(m)) != m");
    }

    // 2. decrypted-payload decode
    if let Some((&first, body)) = data.split_first() {
        if let Ok(ps) = wire::parse_chain(PayloadType(first), body, true) {
            let mut out = Vec::new();
            let first = wire::emit_chain(&ps, &mut out);
            let again = wire::parse_chain(first, &out, false).expect("emitted chain must parse");
            assert_eq!(again, ps, "parse_chain(emit_chain(ps)) != ps");
        }
    }

    // 3. the responder endpoint
    let mut c = Config::psk(PresharedKey::new(b"fuzz", Ipv4Addr::UNSPECIFIED, None));
    c.policies[0].group = 19;
    let mut ep = Endpoint::new(c, Box::new(Counter(1)));
    let now = base();
    let local: SocketAddr = "192.0.2.1:500".parse().expect("address");
    let remote: SocketAddr = "198.51.100.2:500".parse().expect("address");
    ep.handle_input(now, local, remote, data);
    let mut marked = vec![0u8; 4];
    marked.extend_from_slice(data);
    let local4500: SocketAddr = "192.0.2.1:4500".parse().expect("address");
    let remote4500: SocketAddr = "198.51.100.2:4500".parse().expect("address");
    ep.handle_input(now, local4500, remote4500, &marked);
    ep.handle_input(now, local4500, remote4500, data);
    ep.handle_timeout(now + Duration::from_secs(3));
    while ep.poll_transmit().is_some() {}
    while ep.poll_event().is_some() {}
    while ep.poll_diagnostic().is_some() {}
    let _ = ep.snapshot(now);
});

//! Property tests: codec round trips and the RIB/FIB against a naive model.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use lifeline_monitors::dhcp::{SipServers, VendorInfo};
use lifeline_monitors::icmp::{EchoKind, EchoRepr};
use lifeline_monitors::rib::{Fib, Ipv4Prefix, Rib, RouteTarget, StaticRoute};
use proptest::prelude::*;

proptest! {
    #[test]
    fn echo_parse_of_emit_is_identity(req in any::<bool>(), ident in any::<u16>(), seq in any::<u16>(),
                                      data in proptest::collection::vec(any::<u8>(), 0..80)) {
        let kind = if req { EchoKind::Request } else { EchoKind::Reply };
        let r = EchoRepr { kind, ident, seq_no: seq, data: &data };
        let bytes = r.to_vec();
        prop_assert_eq!(EchoRepr::parse_bytes(&bytes).unwrap(), r);
    }

    #[test]
    fn echo_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = EchoRepr::parse_bytes(&bytes);
    }

    #[test]
    fn option120_addresses_round_trip(addrs in proptest::collection::vec(any::<u32>(), 1..8)) {
        let s = SipServers::Addrs(addrs.into_iter().map(Ipv4Addr::from).collect());
        prop_assert_eq!(SipServers::parse(&s.emit()).unwrap(), s);
    }

    #[test]
    fn option120_names_round_trip(names in proptest::collection::vec("[a-z0-9]{1,12}(\\.[a-z0-9-]{1,12}){0,3}", 1..4)) {
        let s = SipServers::Domains(names);
        prop_assert_eq!(SipServers::parse(&s.emit()).unwrap(), s);
    }

    #[test]
    fn option_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = SipServers::parse(&bytes);
        let _ = VendorInfo::parse_all(&bytes);
    }

    #[test]
    fn option125_round_trips(ent in any::<u32>(),
                             subs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..6)) {
        let v = VendorInfo { enterprise: ent, suboptions: subs };
        prop_assert_eq!(VendorInfo::parse_all(&v.emit()).unwrap(), vec![v]);
    }

    /// Interface routes (all interfaces up) with random prefixes and distances: the FIB fed by RIB events
    /// answers like a naive longest-prefix, then lowest-distance, search over the configuration.
    #[test]
    fn fib_matches_naive_longest_prefix_model(
        routes in proptest::collection::vec((any::<u32>(), 0u8..=32, 0usize..4, 1u8..=4), 1..30),
        dsts in proptest::collection::vec(any::<u32>(), 1..40),
        remove in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let ifs = ["A", "B", "C", "D"];
        let mut rib = Rib::new();
        for i in ifs {
            rib.set_interface(i, true, None);
        }
        // Model: (prefix, interface) -> distance, with re-adds replacing.
        let mut model: BTreeMap<(Ipv4Prefix, &str), u8> = BTreeMap::new();
        for &(a, len, i, d) in &routes {
            let p = Ipv4Prefix::containing(Ipv4Addr::from(a), len);
            rib.add_static(StaticRoute { distance: d, ..StaticRoute::new(p, RouteTarget::Interface(ifs[i].into())) }).unwrap();
            model.insert((p, ifs[i]), d);
        }
        // Remove some.
        let keys: Vec<_> = model.keys().cloned().collect();
        for (k, r) in keys.iter().zip(&remove) {
            if *r {
                rib.remove_static(k.0, &RouteTarget::Interface(k.1.into())).unwrap();
                model.remove(k);
            }
        }
        let mut fib = Fib::new();
        while let Some(ev) = rib.poll_event() {
            fib.apply(&ev);
        }
        for d in dsts {
            let dst = Ipv4Addr::from(d);
            let best_len = model.keys().filter(|(p, _)| p.contains(dst)).map(|(p, _)| p.prefix_len()).max();
            let want: Vec<String> = match best_len {
                None => vec![],
                Some(l) => {
                    let cands: Vec<(&str, u8)> = model.iter()
                        .filter(|((p, _), _)| p.contains(dst) && p.prefix_len() == l)
                        .map(|((_, i), d)| (*i, *d)).collect();
                    let min = cands.iter().map(|c| c.1).min().unwrap();
                    let mut v: Vec<String> = cands.iter().filter(|c| c.1 == min).map(|c| c.0.to_owned()).collect();
                    v.sort();
                    v
                }
            };
            let got: Vec<String> = fib.lookup(dst).map(|h| h.iter().map(|n| n.interface.clone()).collect()).unwrap_or_default();
            prop_assert_eq!(got, want);
        }
    }
}

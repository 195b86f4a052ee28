//! IKEv2 message parser: `ike::wire::Message::parse` must never panic, and whatever it accepts must
//! survive `emit` and parse back to the same message (the wire module's round-trip property).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = ike::wire::Message::parse(data) {
        let bytes = msg.to_vec();
        let again = ike::wire::Message::parse(&bytes).expect("emitted message must parse");
        assert_eq!(again, msg, "parse(emit(m)) != m");
    }
});

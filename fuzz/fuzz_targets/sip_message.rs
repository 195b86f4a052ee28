//! SIP message parser (`sip::msg::Message::parse`, one datagram) on arbitrary bytes: never panics, and
//! an accepted request or response, serialised again with `to_bytes`, parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::msg::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let bytes = match &msg {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        };
        if let Err(e) = Message::parse(&bytes) {
            panic!(
                "serialised message does not parse: {e:?}\n{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
});

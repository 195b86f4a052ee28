//! SIP digest headers: `WWW-Authenticate`/`Proxy-Authenticate` challenge and `Authorization`
//! credentials parsers on arbitrary text (lossy UTF-8). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sip::digest::Challenge::parse(&text);
    let _ = sip::digest::Credentials::parse(&text);
});

//! RFC 6193 SDP body: `sip::IkeSdp::parse` on arbitrary text (lossy UTF-8) must never panic, and an
//! accepted body rendered with `to_sdp` must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(sdp) = sip::IkeSdp::parse(&text) {
        let rendered = sdp.to_sdp(1, 1);
        if let Err(e) = sip::IkeSdp::parse(&rendered) {
            panic!("rendered SDP does not parse: {e:?}\n{rendered}");
        }
    }
});

//! Inbound ESP: arbitrary bytes as one received packet, through the data plane's own fuzz entry
//! (`dataplane::decapsulate_fuzz_entry`: AES-GCM and AES-CBC+HMAC SAs and a tunnel's receive and
//! send paths). Must never panic. The data plane never reads the clock, so the target supplies one
//! fixed origin for every input (runs stay reproducible).
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let now = *ORIGIN.get_or_init(Instant::now);
    dataplane::decapsulate_fuzz_entry(now, data);
});

//! IOS configuration text: `config::parse` on arbitrary bytes (lossy UTF-8) must never panic, nor
//! may `config::render` of whatever it built, nor parsing that rendering again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = config::parse(&text);
    let _ = parsed.has_errors();
    let rendered = config::render(&parsed.config);
    let reparsed = config::parse(&rendered);
    let _ = config::render(&reparsed.config);
});

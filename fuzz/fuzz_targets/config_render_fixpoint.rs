//! The config crate's rendering property on arbitrary input (the fixtures test's property, beyond the
//! seed examples): after one parse/render cycle the rendering is a fixpoint,
//! `render(parse(render(parse(x)))) == render(parse(x))`, and when `x` parsed without errors, so
//! does its rendering (`show running-config` never prints a configuration that would not load).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first = config::parse(&text);
    let once = config::render(&first.config);
    let again = config::parse(&once);
    if !first.has_errors() {
        assert!(
            !again.has_errors(),
            "the rendering has errors: {:?}\n--- rendering\n{once}",
            again.diagnostics
        );
    }
    let twice = config::render(&again.config);
    assert_eq!(once, twice, "rendering is not a fixpoint");
});

//! The config crate's rendering property on arbitrary input: after one parse/render cycle the
//! rendering is a fixpoint, `render(parse(render(parse(x)))) == render(parse(x))`, and a rendering
//! never has errors (the property the fixtures test checks on the seed examples).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = config::render(&config::parse(&text).config);
    let again = config::parse(&once);
    assert!(
        !again.has_errors(),
        "the rendering has errors: {:?}\n--- rendering\n{once}",
        again.diagnostics
    );
    let twice = config::render(&again.config);
    assert_eq!(once, twice, "rendering is not a fixpoint");
});

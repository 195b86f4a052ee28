//! SIP over a stream transport (TCP, TLS): arbitrary bytes pushed into `sip::stream::StreamFramer` in
//! chunks whose sizes the first input byte chooses, frames taken out until none is buffered or the
//! framer reports an error, each frame given to `Message::parse`. Never panics, never buffers more
//! than the framing limit plus one chunk, and chunking never changes the frames: the same bytes
//! pushed at once frame identically (up to the first error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::msg::{MAX_MESSAGE, Message};
use sip::stream::StreamFramer;

/// Frames of `chunks` pushed one after another; stops at the first framing error.
fn frames<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Vec<u8>>, bool) {
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_message() {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        assert!(framer.pending() <= MAX_MESSAGE + chunk.len() + 4);
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let size = usize::from(size.max(1));
    let (chunked, chunked_err) = frames(rest.chunks(size));
    for frame in &chunked {
        let _ = Message::parse(frame);
    }
    let (whole, whole_err) = frames(std::iter::once(rest));
    if !chunked_err && !whole_err {
        assert_eq!(chunked, whole, "chunking changed the frames");
    }
});

//! Test helpers.

use std::net::Ipv4Addr;
use std::time::Instant;

/// A base instant for virtual time (the only clock read in the crate, tests only).
#[allow(clippy::disallowed_methods)]
pub(crate) fn t0() -> Instant {
    Instant::now()
}

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn is_time(t: &str) -> bool {
    let b = t.as_bytes();
    let hms = b.len() == 8
        && b.iter().enumerate().all(|(i, c)| {
            if i == 2 || i == 5 {
                *c == b':'
            } else {
                c.is_ascii_digit()
            }
        });
    let unit = |a: u8, z: u8| {
        let mut parts = t.split(a as char);
        matches!((parts.next(), parts.next(), parts.next()), (Some(x), Some(y), None)
            if !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())
            && y.strip_suffix(z as char).is_some_and(|y| !y.is_empty() && y.bytes().all(|c| c.is_ascii_digit())))
    };
    hms || unit(b'w', b'd') || unit(b'd', b'h')
}

/// Lines as whitespace-separated tokens, time fields masked, blank lines and
/// separator runs dropped (the seeds lost the column layout).
pub(crate) fn normalise(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| {
                    let bare = t.trim_end_matches(',');
                    if is_time(bare) {
                        t.replacen(bare, "<T>", 1)
                    } else {
                        t.to_string()
                    }
                })
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty() && !l.iter().all(|t| t.chars().all(|c| c == '-' || c == '=')))
        .collect()
}

#[test]
fn masks_ios_time_formats() {
    assert!(is_time("00:19:55"));
    assert!(is_time("3w0d"));
    assert!(is_time("2d03h"));
    assert!(!is_time("10.0.0.1"));
    assert!(!is_time("never"));
    assert_eq!(
        normalise("expire 00:01:52, x\n\n-----"),
        vec![vec!["expire", "<T>,", "x"]]
    );
}

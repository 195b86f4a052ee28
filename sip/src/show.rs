//! Renderers for the `show vpn-sip` commands that this crate owns the data of (seed formats,
//! seed-vpnsip.md §6.2 and §6.3; the registrar table is rendered space-aligned with a full-width
//! `=` separator, the seed's tab/wrap garbling is not reproduced).

use std::fmt::Write as _;

use crate::ua::{NumberRegistration, RegistrationStatus, Snapshot};

/// `show vpn-sip registration-status`:
/// `SIP registration of local number <n> : registered <ip>` or `: not registered`, one line per
/// local number (the seed shows one; Lifeline may have several).
pub fn registration_status(s: &Snapshot) -> String {
    let mut out = String::new();
    for r in &s.registrations {
        out.push_str(&registration_line(r));
        // Lifeline extension (not in the seed): the registration retries while the registrar is away.
        if r.failures > 0 {
            let _ = write!(out, "  Retries: {}", r.failures);
            if let Some(d) = r.retry_in {
                let _ = write!(out, ", next attempt in {} s", d.as_secs_f64().ceil() as u64);
            }
            if let Some(f) = &r.failure {
                let _ = write!(out, " (last failure: {f})");
            }
            out.push('\n');
        }
    }
    // Lifeline extension: INVITEs to a number that is none of ours (refused with 404).
    if s.unknown_number_calls > 0 {
        let _ = writeln!(
            out,
            "Calls to unknown numbers refused (404): {}",
            s.unknown_number_calls
        );
    }
    out
}

fn registration_line(r: &NumberRegistration) -> String {
    match &r.registration {
        RegistrationStatus::Registered { contact, .. } => format!(
            "SIP registration of local number {} : registered {}\n",
            r.local_number,
            contact.ip()
        ),
        RegistrationStatus::NotRegistered => format!(
            "SIP registration of local number {} : not registered\n",
            r.local_number
        ),
    }
}

/// `show vpn-sip sip registrar`: header, separator, one row per registered line (local number).
pub fn registrar_table(s: &Snapshot) -> String {
    let header = format!(
        "{:<14}{:<17}{:<14}{:<16}{:<11}{}",
        "Line", "destination", "expires(sec)", "contact", "transport", "call-id"
    );
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "=".repeat(header.len()));
    for r in &s.registrations {
        if let RegistrationStatus::Registered {
            contact,
            expires_in,
            call_id,
        } = &r.registration
        {
            let _ = writeln!(
                out,
                "{:<14}{:<17}{:<14}{:<16}{:<11}{}",
                r.local_number,
                s.domain,
                expires_in,
                contact.ip(),
                s.transport.token(),
                call_id
            );
        }
    }
    out
}

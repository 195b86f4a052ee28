//! Renderers for the `show vpn-sip` commands that this crate owns the data of (seed formats,
//! seed-vpnsip.md §6.2 and §6.3; the registrar table is rendered space-aligned with a full-width
//! `=` separator, the seed's tab/wrap garbling is not reproduced).

use std::fmt::Write as _;

use crate::ua::{RegistrationStatus, Snapshot};

/// `show vpn-sip registration-status`:
/// `SIP registration of local number <n> : registered <ip>` or `: not registered`.
pub fn registration_status(s: &Snapshot) -> String {
    let mut out = registration_line(s);
    // Lifeline extension (not in the seed): the registration retries while the registrar is away.
    if s.registration_failures > 0 {
        let _ = write!(out, "  Retries: {}", s.registration_failures);
        if let Some(d) = s.registration_retry_in {
            let _ = write!(out, ", next attempt in {} s", d.as_secs_f64().ceil() as u64);
        }
        if let Some(r) = &s.registration_failure {
            let _ = write!(out, " (last failure: {r})");
        }
        out.push('\n');
    }
    out
}

fn registration_line(s: &Snapshot) -> String {
    match &s.registration {
        RegistrationStatus::Registered { contact, .. } => format!(
            "SIP registration of local number {} : registered {}\n",
            s.local_number,
            contact.ip()
        ),
        RegistrationStatus::NotRegistered => format!(
            "SIP registration of local number {} : not registered\n",
            s.local_number
        ),
    }
}

/// `show vpn-sip sip registrar`: header, separator, one row per registered line.
pub fn registrar_table(s: &Snapshot) -> String {
    let header = format!(
        "{:<14}{:<17}{:<14}{:<16}{:<11}{}",
        "Line", "destination", "expires(sec)", "contact", "transport", "call-id"
    );
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "=".repeat(header.len()));
    if let RegistrationStatus::Registered {
        contact,
        expires_in,
        call_id,
    } = &s.registration
    {
        let _ = writeln!(
            out,
            "{:<14}{:<17}{:<14}{:<16}{:<11}{}",
            s.local_number,
            s.domain,
            expires_in,
            contact.ip(),
            s.transport.token(),
            call_id
        );
    }
    out
}

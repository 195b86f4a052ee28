//! `show crypto pki certificates` and `show crypto pki trustpoints`: the appliance's certificates and the
//! CA certificates of its trustpoints, in the IOS layout. Built once at start ([`crate::pki::view`]):
//! certificates change only with a restart.

use std::time::SystemTime;

use serde::Serialize;

/// What kind of certificate a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CertKind {
    /// The appliance's own, issued by a CA (`Certificate`).
    Router,
    /// The appliance's own, self-signed (`Router Self-Signed Certificate`).
    RouterSelfSigned,
    /// A trustpoint's CA (`CA Certificate`).
    Ca,
}

/// One certificate as the two commands show it (never any key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertView {
    pub kind: CertKind,
    pub trustpoint: String,
    pub serial_hex: String,
    /// RDNs, most specific first, lower-case attribute names (`cn=...`, `o=...`), as IOS lists them.
    pub issuer: Vec<String>,
    pub subject: Vec<String>,
    #[serde(skip)]
    pub not_before: SystemTime,
    #[serde(skip)]
    pub not_after: SystemTime,
    pub start_date: String,
    pub end_date: String,
    /// SHA-1, IOS style (`4907CC36 B1957258 ...`).
    pub fingerprint_sha1: String,
}

/// IOS's certificate date: `10:42:07 UTC Nov 23 2026`.
pub fn ios_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}:{:02}:{:02} UTC {} {} {}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        MONTHS[(m - 1) as usize],
        d,
        y
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn status(c: &CertView, now: SystemTime) -> &'static str {
    if now < c.not_before {
        "Pending"
    } else if now > c.not_after {
        "Expired"
    } else {
        "Available"
    }
}

/// `show crypto pki certificates`: own certificates first, then CA certificates (as IOS orders them).
pub fn certificates(certs: &[CertView], now: SystemTime) -> String {
    let mut out = String::new();
    let mut rows: Vec<&CertView> = certs.iter().filter(|c| c.kind != CertKind::Ca).collect();
    rows.extend(certs.iter().filter(|c| c.kind == CertKind::Ca));
    for c in rows {
        let (title, usage) = match c.kind {
            CertKind::Router => ("Certificate", "General Purpose"),
            CertKind::RouterSelfSigned => ("Router Self-Signed Certificate", "General Purpose"),
            CertKind::Ca => ("CA Certificate", "Signature"),
        };
        out.push_str(&format!(
            "{title}\n  Status: {}\n  Certificate Serial Number (hex): {}\n  Certificate Usage: {usage}\n  Issuer: \n",
            status(c, now),
            c.serial_hex
        ));
        for r in &c.issuer {
            out.push_str(&format!("    {r}\n"));
        }
        out.push_str("  Subject:\n");
        for r in &c.subject {
            out.push_str(&format!("    {r}\n"));
        }
        out.push_str(&format!(
            "  Validity Date: \n    start date: {}\n    end   date: {}\n  Associated Trustpoints: {} \n\n",
            c.start_date, c.end_date, c.trustpoint
        ));
    }
    out
}

/// `show crypto pki trustpoints`: each configured trustpoint, with its CA's subject when authenticated.
pub fn trustpoints(names: &[String], certs: &[CertView]) -> String {
    let mut out = String::new();
    for n in names {
        out.push_str(&format!("Trustpoint {n}:\n"));
        match certs
            .iter()
            .find(|c| c.kind == CertKind::Ca && &c.trustpoint == n)
        {
            Some(ca) => {
                out.push_str("    Subject Name: \n");
                for r in &ca.subject {
                    out.push_str(&format!("    {r}\n"));
                }
                out.push_str(&format!(
                    "          Serial Number (hex): {}\n    Certificate configured.\n",
                    ca.serial_hex
                ));
            }
            None => out.push_str("    Not authenticated.\n"),
        }
        if certs
            .iter()
            .any(|c| c.kind != CertKind::Ca && &c.trustpoint == n)
        {
            out.push_str("    Router certificate configured.\n");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_print_the_ios_way() {
        assert_eq!(ios_date(SystemTime::UNIX_EPOCH), "00:00:00 UTC Jan 1 1970");
        // 2026-11-23 16:05:09 UTC
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_449_909);
        assert_eq!(ios_date(t), "16:05:09 UTC Nov 23 2026");
        // A leap day.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(ios_date(t), "00:00:00 UTC Feb 29 2000");
    }
}

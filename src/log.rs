//! Structured logs with IOS-like message tags (`%FACILITY-SEVERITY-MNEMONIC: text`).
//!
//! Every operator-visible event goes through [`ios!`], so the tag is a field of the tracing event (for JSON
//! logs) and the start of the human line (for syslog-minded readers). Secrets never reach this module: the
//! configuration types print `<hidden>` for them.

use tracing_subscriber::EnvFilter;

/// Severity levels as IOS numbers them (0 emergencies … 7 debugging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Severity {
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

/// Log an IOS-style message: `ios!(VPN_SIP, Notice, SESSION_UP, "remote number {} up", n)`.
#[macro_export]
macro_rules! ios {
    ($fac:ident, $sev:ident, $mnemonic:ident, $($arg:tt)+) => {{
        let severity = $crate::log::Severity::$sev;
        let tag = format!("%{}-{}-{}", stringify!($fac), severity as u8, stringify!($mnemonic));
        $crate::log::emit(severity, &tag, format_args!($($arg)+));
    }};
}

/// The one place that maps an IOS severity onto a tracing level.
pub fn emit(severity: Severity, tag: &str, text: std::fmt::Arguments<'_>) {
    match severity {
        Severity::Alert | Severity::Critical | Severity::Error => {
            tracing::error!(tag, "{tag}: {text}")
        }
        Severity::Warning => tracing::warn!(tag, "{tag}: {text}"),
        Severity::Notice | Severity::Informational => tracing::info!(tag, "{tag}: {text}"),
        Severity::Debug => tracing::debug!(tag, "{tag}: {text}"),
    }
}

/// Install the global subscriber: human lines on stderr, or JSON lines with `--log-json`.
/// `RUST_LOG` overrides the level (default `info`).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) is harmless.
    let _ = result;
}

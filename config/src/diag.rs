//! Diagnostics: errors and warnings with a position, the offending words and a suggestion.

use std::fmt;

use serde::Serialize;

/// How bad a diagnostic is. Errors refuse the configuration; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding. `line` and `column` are 1-based (column in characters); both are 0 for a finding
/// about the model as a whole when no source position is known (a programmatically built
/// [`crate::Config`]).
///
/// Display: `LINE:COL: error: MESSAGE: `WORDS` (suggestion: ...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub line: usize,
    pub column: usize,
    pub words: String,
    pub message: String,
    pub suggestion: Option<String>,
}

impl Diagnostic {
    pub(crate) fn error(
        pos: &Span,
        message: impl Into<String>,
        suggestion: Option<String>,
    ) -> Self {
        // Diagnostics are logged and printed: the secrets of the line they quote never are. (Messages and
        // suggestions are Lifeline's own words.)
        Diagnostic {
            severity: Severity::Error,
            line: pos.line,
            column: pos.column,
            words: redact_secrets(&pos.words),
            message: message.into(),
            suggestion,
        }
    }

    pub(crate) fn warning(
        pos: &Span,
        message: impl Into<String>,
        suggestion: Option<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, message, suggestion)
        }
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Replace the secret in an IOS command line with `<hidden>`: the word after `pre-shared-key [local|remote]
/// [0|6|7]`, `password [0|7]`, `secret [0|5|7]`, `crypto isakmp key`, `ip nhrp authentication`.
pub fn redact_secrets(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut hide_next = false;
    for (i, w) in words.iter().enumerate() {
        let lw = w.to_ascii_lowercase();
        if hide_next && !w.is_empty() {
            let qualifier = matches!(lw.as_str(), "local" | "remote" | "0" | "5" | "6" | "7");
            if !qualifier {
                out.push("<hidden>");
                hide_next = false;
                continue;
            }
        }
        out.push(w);
        let prev = i
            .checked_sub(1)
            .and_then(|p| words.get(p))
            .map(|p| p.to_ascii_lowercase());
        hide_next |= match lw.as_str() {
            "pre-shared-key" | "password" | "secret" => true,
            "key" => prev.as_deref() == Some("isakmp"),
            "authentication" => prev.as_deref() == Some("nhrp"),
            _ => false,
        };
    }
    out.join(" ")
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}: `{}`",
            self.line, self.column, self.severity, self.message, self.words
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, " (suggestion: {s})")?;
        }
        Ok(())
    }
}

/// A source position plus the words found there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub line: usize,
    pub column: usize,
    pub words: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_display_has_position_words_and_suggestion() {
        let d = Diagnostic::error(
            &Span {
                line: 3,
                column: 44,
                words: "bandwidth 300".into(),
            },
            "VPN-SIP bandwidth must be 64, 128, 256, 512 or 1000 kbps",
            Some("bandwidth 256".into()),
        );
        assert_eq!(
            d.to_string(),
            "3:44: error: VPN-SIP bandwidth must be 64, 128, 256, 512 or 1000 kbps: `bandwidth 300` (suggestion: bandwidth 256)"
        );
    }
}

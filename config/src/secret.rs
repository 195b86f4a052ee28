//! Secrets (pre-shared keys, passwords, NHRP authentication strings).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A configured secret. `Debug` and `Display` print its length, never its bytes; the value is
/// zeroized on drop. The renderer is the only place that prints it (the way IOS running-config
/// does: as entered, with the encryption-type digit if one was given). The appliance must never
/// log a rendered configuration at a level that reaches a remote log.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    encryption_type: Option<u8>,
    value: String,
}

impl Secret {
    /// A clear-text secret as entered (IOS type 0 or no type digit).
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            encryption_type: None,
            value: value.into(),
        }
    }

    /// A secret with the IOS encryption-type digit that preceded it (`0`, `6`, `7`).
    pub fn with_type(encryption_type: Option<u8>, value: impl Into<String>) -> Self {
        Secret {
            encryption_type,
            value: value.into(),
        }
    }

    /// The IOS encryption-type digit, when one was written (`pre-shared-key 0 cisco`).
    pub fn encryption_type(&self) -> Option<u8> {
        self.encryption_type
    }

    /// The secret bytes. Callers must not log them.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True when the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The IOS running-config form: `[TYPE ]VALUE`.
    pub(crate) fn ios_text(&self) -> String {
        match self.encryption_type {
            Some(t) => format!("{t} {}", self.value),
            None => self.value.clone(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.value.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret: {} bytes>", self.value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_never_print_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(7 bytes)");
        assert_eq!(format!("{s}"), "<secret: 7 bytes>");
        assert!(!format!("{s:?}{s}").contains("hunter2"));
    }
}

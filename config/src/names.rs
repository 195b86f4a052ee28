//! Keyword matching (case-insensitive, abbreviable to any unique prefix) and interface names.

use crate::model::InterfaceKind;

/// Match `tok` against the keywords possible at this position: an exact (case-insensitive)
/// match wins; otherwise `tok` must be a prefix of exactly one candidate.
pub(crate) fn match_kw(tok: &str, candidates: &[&'static str]) -> Option<&'static str> {
    if tok.is_empty() {
        return None;
    }
    let lower = tok.to_ascii_lowercase();
    if let Some(k) = candidates.iter().find(|k| **k == lower) {
        return Some(k);
    }
    let mut found = None;
    for k in candidates {
        if k.starts_with(&lower) {
            if found.is_some() {
                return None;
            }
            found = Some(*k);
        }
    }
    found
}

type KindCtor = fn() -> InterfaceKind;

const KINDS: &[(&str, KindCtor)] = &[
    ("tunnel", || InterfaceKind::Tunnel),
    ("loopback", || InterfaceKind::Loopback),
    ("gigabitethernet", || InterfaceKind::GigabitEthernet),
    ("tengigabitethernet", || InterfaceKind::TenGigabitEthernet),
    ("fastethernet", || InterfaceKind::FastEthernet),
    ("ethernet", || InterfaceKind::Ethernet),
    ("vlan", || InterfaceKind::Vlan),
    ("serial", || InterfaceKind::Serial),
    ("dialer", || InterfaceKind::Dialer),
    ("virtual-template", || InterfaceKind::VirtualTemplate),
    ("port-channel", || InterfaceKind::PortChannel),
    ("cellular", || InterfaceKind::Cellular),
    // Known IOS types that share prefixes with the ones above; they stay `Other`.
    ("virtual-access", || {
        InterfaceKind::Other("Virtual-Access".into())
    }),
    ("null", || InterfaceKind::Other("Null".into())),
    ("bdi", || InterfaceKind::Other("BDI".into())),
    ("atm", || InterfaceKind::Other("ATM".into())),
    ("embedded-service-engine", || {
        InterfaceKind::Other("Embedded-Service-Engine".into())
    }),
];

const KIND_NAMES: &[&str] = &[
    "tunnel",
    "loopback",
    "gigabitethernet",
    "tengigabitethernet",
    "fastethernet",
    "ethernet",
    "vlan",
    "serial",
    "dialer",
    "virtual-template",
    "port-channel",
    "cellular",
    "virtual-access",
    "null",
    "bdi",
    "atm",
    "embedded-service-engine",
];

/// Split `Tunnel1` / `gig0/0/1` into type and number.
fn split_type_number(tok: &str) -> (&str, &str) {
    let idx = tok
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .unwrap_or(tok.len());
    tok.split_at(idx)
}

fn is_if_number(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '/' || c == '.' || c == ':')
}

/// Canonicalise an interface reference that starts at `toks[0]`. Returns the canonical name,
/// its kind and how many tokens it used (1 for `Tunnel1`, 2 for `tunnel 1`). `None` when the
/// tokens do not look like an interface name.
pub(crate) fn canonical_interface(toks: &[&str]) -> Option<(String, InterfaceKind, usize)> {
    let first = *toks.first()?;
    let (ty, num) = split_type_number(first);
    if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
        return None;
    }
    let (num, used) = if num.is_empty() {
        match toks.get(1) {
            Some(n) if is_if_number(n) => (*n, 2),
            _ => return None,
        }
    } else if is_if_number(num) {
        (num, 1)
    } else {
        return None;
    };
    let kind = match match_kw(ty, KIND_NAMES) {
        Some(k) => KINDS
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, f)| f())
            .unwrap_or_else(|| InterfaceKind::Other(ty.to_string())),
        None => InterfaceKind::Other(ty.to_string()),
    };
    Some((format!("{}{}", kind.ios_name(), num), kind, used))
}

/// Canonicalise a bare interface name such as `int tu1` would produce (public helper).
pub fn canonicalize_interface(name: &str) -> String {
    let toks: Vec<&str> = name.split_whitespace().collect();
    canonical_interface(&toks)
        .map(|(n, _, _)| n)
        .unwrap_or_else(|| name.trim().to_string())
}

/// A valid Linux network device name: 1..=15 bytes, no `/`, `:`, whitespace or NUL, not `.`/`..`.
pub fn valid_linux_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0' || !c.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_exact_match_beats_prefix() {
        assert_eq!(match_kw("key", &["key", "keyring"]), Some("key"));
        assert_eq!(match_kw("keyr", &["key", "keyring"]), Some("keyring"));
        assert_eq!(match_kw("k", &["key", "keyring"]), None);
        assert_eq!(match_kw("INT", &["interface", "ip"]), Some("interface"));
        assert_eq!(match_kw("i", &["interface", "ip"]), None);
    }

    #[test]
    fn interface_names_are_canonicalised() {
        assert_eq!(canonicalize_interface("tu1"), "Tunnel1");
        assert_eq!(canonicalize_interface("gig0/0/1"), "GigabitEthernet0/0/1");
        assert_eq!(canonicalize_interface("lo0"), "Loopback0");
        assert_eq!(canonicalize_interface("loopback 11"), "Loopback11");
        assert_eq!(canonicalize_interface("tunnel 0"), "Tunnel0");
        assert_eq!(canonicalize_interface("fa0/0"), "FastEthernet0/0");
        assert_eq!(canonicalize_interface("Ethernet0"), "Ethernet0");
        assert_eq!(canonicalize_interface("Vlan101"), "Vlan101");
        assert_eq!(
            canonicalize_interface("virtual-template1"),
            "Virtual-Template1"
        );
        assert_eq!(canonicalize_interface("Foo3"), "Foo3");
    }

    #[test]
    fn linux_ifname_rules() {
        assert!(valid_linux_ifname("eth0"));
        assert!(valid_linux_ifname("Tunnel1"));
        assert!(!valid_linux_ifname("GigabitEthernet8/1"));
        assert!(!valid_linux_ifname("GigabitEthernet10"));
        assert!(!valid_linux_ifname(""));
    }
}

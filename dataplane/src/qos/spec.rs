//! Plain descriptions of a policy, one-to-one with the configuration model.
//!
//! The appliance maps `config::QosConfig` onto these types (this crate does not depend on
//! `config`):
//!
//! | configuration | here |
//! |---|---|
//! | `policy-map P` | [`PolicySpec`] `{ name: P, classes }` |
//! | `class C` (+ `class-map [match-any] C` / `match ...`) | [`ClassSpec`] `{ name: C, classifier }` |
//! | `priority [kbps [burst]]` / `priority percent P` | [`Queueing::Priority`] |
//! | `bandwidth kbps` / `bandwidth percent P` | [`Queueing::Bandwidth`] |
//! | `queue-limit N packets` | `queue_limit: Some(N)` |
//! | `police cir BPS [bc B] [be B]` + actions | `police: Some(`[`PoliceSpec`]`)` |
//! | `set [ip] dscp V` | `set_dscp: Some(`[`Dscp`]`)` |
//! | `shape average BPS` | `shape: Some(`[`ShapeSpec::average`]`(BPS))` (class-default of a parent) |
//! | `service-policy CHILD` (inside a class) | `child: Some(Box<PolicySpec>)` |
use super::classify::{Classifier, Match};
use super::{DEFAULT_QUEUE_LIMIT, Dscp};

/// Name of the default class.
pub const CLASS_DEFAULT: &str = "class-default";

/// A rate written as kbps or as a percentage of the parent (the shaper's CIR, or the link rate
/// when there is no shaper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Kbps(u32),
    Percent(u8),
}

impl Rate {
    /// The rate in bit/s against a parent rate in bit/s.
    pub fn bps(self, parent_bps: u64) -> u64 {
        match self {
            Rate::Kbps(k) => u64::from(k) * 1000,
            Rate::Percent(p) => parent_bps.saturating_mul(u64::from(p)) / 100,
        }
    }
}

/// The queueing action of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Queueing {
    /// No queueing action: the class shares what the `bandwidth` classes leave (class-default).
    #[default]
    Fifo,
    /// `priority` (LLQ): served before every other class. With a rate, a conditional policer
    /// (`burst_bytes`, IOS default 200 ms at the rate) drops what exceeds it while the tunnel is
    /// congested (`b/w exceed drops`). Without a rate, unlimited strict priority.
    Priority {
        rate: Option<Rate>,
        burst_bytes: Option<u32>,
    },
    /// `bandwidth`: a CBWFQ share (weight) under congestion.
    Bandwidth(Rate),
}

/// A policer action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoliceAction {
    Transmit,
    Drop,
    /// `set-dscp-transmit V`.
    SetDscpTransmit(Dscp),
}

impl PoliceAction {
    /// Parses the IOS words of `conform-action ...` (`transmit`, `drop`, `set-dscp-transmit af11`).
    pub fn from_ios(words: &str) -> Option<Self> {
        let mut it = words.split_whitespace();
        match it.next()? {
            "transmit" => Some(PoliceAction::Transmit),
            "drop" => Some(PoliceAction::Drop),
            "set-dscp-transmit" => Some(PoliceAction::SetDscpTransmit(Dscp::from_ios(it.next()?)?)),
            _ => None,
        }
    }

    /// IOS words for `show`.
    pub fn ios_words(self) -> String {
        match self {
            PoliceAction::Transmit => "transmit".into(),
            PoliceAction::Drop => "drop".into(),
            PoliceAction::SetDscpTransmit(d) => format!("set-dscp-transmit {}", d.ios_name()),
        }
    }
}

/// `police cir BPS [bc BYTES] [be BYTES]` with its actions: a single-rate policer (RFC 2697).
/// Two-colour (conform/exceed) without a violate action, three-colour with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoliceSpec {
    pub cir_bps: u64,
    /// Committed burst in bytes; default: 250 ms at `cir`, at least 1500 bytes (IOS XE).
    pub bc_bytes: Option<u64>,
    /// Excess burst in bytes; default: 0 (two-colour) or `bc` (three-colour).
    pub be_bytes: Option<u64>,
    pub conform: PoliceAction,
    pub exceed: PoliceAction,
    pub violate: Option<PoliceAction>,
}

impl PoliceSpec {
    /// `police cir BPS` with IOS defaults (`conform-action transmit`, `exceed-action drop`).
    pub fn cir(cir_bps: u64) -> Self {
        PoliceSpec {
            cir_bps,
            bc_bytes: None,
            be_bytes: None,
            conform: PoliceAction::Transmit,
            exceed: PoliceAction::Drop,
            violate: None,
        }
    }

    /// Effective committed burst in bytes.
    pub fn bc(&self) -> u64 {
        self.bc_bytes
            .unwrap_or_else(|| (self.cir_bps / 32).max(1500))
    }

    /// Effective excess burst in bytes.
    pub fn be(&self) -> u64 {
        match (self.be_bytes, self.violate) {
            (Some(b), _) => b,
            (None, Some(_)) => self.bc(),
            (None, None) => 0,
        }
    }
}

/// `shape average CIR` of a parent class-default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeSpec {
    pub cir_bps: u64,
    /// Committed burst in **bits** (as IOS prints it).
    pub bc_bits: u64,
    /// Excess burst in bits.
    pub be_bits: u64,
}

impl ShapeSpec {
    /// `shape average CIR` with the IOS XE defaults: `bc = be = CIR x Tc`, `Tc = 4 ms`.
    ///
    /// Derivation from every shaper sample in the seeds: `cir 1000000, bc 4000, be 4000` (VPN-SIP,
    /// 002 L3580), `cir 3000000, bc 12000, be 12000` and `cir 2000000, bc 8000, be 8000` (DMVPN
    /// per-tunnel QoS, 001 L2559/L2640): bc = cir / 250 bits in all three, i.e. 4 ms of CIR, and
    /// be = bc.
    pub fn average(cir_bps: u64) -> Self {
        let bc = cir_bps / 250;
        ShapeSpec {
            cir_bps,
            bc_bits: bc,
            be_bits: bc,
        }
    }
}

/// One `class` inside a policy map.
#[derive(Debug, Clone)]
pub struct ClassSpec {
    pub name: String,
    pub classifier: Classifier,
    pub queueing: Queueing,
    /// `queue-limit N packets`; default [`DEFAULT_QUEUE_LIMIT`].
    pub queue_limit: Option<u32>,
    pub police: Option<PoliceSpec>,
    pub set_dscp: Option<Dscp>,
    /// Only on the class-default of a parent policy.
    pub shape: Option<ShapeSpec>,
    /// `service-policy CHILD`: only on the class-default of a parent policy.
    pub child: Option<Box<PolicySpec>>,
}

impl ClassSpec {
    /// A class with no actions.
    pub fn new(name: impl Into<String>, classifier: Classifier) -> Self {
        ClassSpec {
            name: name.into(),
            classifier,
            queueing: Queueing::Fifo,
            queue_limit: None,
            police: None,
            set_dscp: None,
            shape: None,
            child: None,
        }
    }

    /// `class class-default` with no actions.
    pub fn class_default() -> Self {
        ClassSpec::new(CLASS_DEFAULT, Classifier::any())
    }

    /// Effective queue limit in packets.
    pub fn queue_limit(&self) -> u32 {
        self.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT)
    }

    pub fn is_default(&self) -> bool {
        self.name == CLASS_DEFAULT
    }
}

/// A `policy-map`.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub name: String,
    /// In configuration order; `class-default` is implied (with no actions) when absent, and is
    /// always evaluated last.
    pub classes: Vec<ClassSpec>,
}

/// Why a policy cannot be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "class {0}: shape and service-policy are supported only on the class-default of a parent policy with no other class"
    )]
    HierarchyUnsupported(String),
    #[error("child policy {0}: nested shape or service-policy is not supported")]
    NestedTooDeep(String),
    #[error("class {0}: a percentage needs a parent rate (a shaper or the link rate)")]
    NoParentRate(String),
    #[error("class {0}: rate is zero")]
    ZeroRate(String),
    #[error("class {0}: queue-limit must be at least 1")]
    ZeroQueueLimit(String),
    #[error("class {0}: priority is not allowed in class-default")]
    PriorityInDefault(String),
    #[error("class {0} appears twice")]
    DuplicateClass(String),
    #[error("policy {0}: bandwidth and priority exceed 100% of {1} bps")]
    Oversubscribed(String, u64),
    #[error(
        "class {0}: {1} is not supported in a VPN-SIP child policy (priority and bandwidth percent only)"
    )]
    NotAllowedInVpnSip(String, &'static str),
}

impl PolicySpec {
    pub fn new(name: impl Into<String>) -> Self {
        PolicySpec {
            name: name.into(),
            classes: Vec::new(),
        }
    }

    /// The implicit VPN-SIP parent policy of `Tunnel<tunnel_id>` (QOS-1/QOS-2): named
    /// `VPN-SIP-Tunnel<N>-Bandwidth`, one class-default (`match any`) that marks `dscp cs4`, shapes
    /// (`shape average`) at `negotiated_kbps x 1000` with bc = be = 4 ms of CIR, queue limit 64,
    /// and holds the user's policy (from `vpn-sip ... service-policy P`) as its child.
    pub fn vpn_sip(tunnel_id: u32, negotiated_kbps: u32, child: Option<PolicySpec>) -> Self {
        let mut default = ClassSpec::class_default();
        default.set_dscp = Some(Dscp::CS4);
        default.shape = Some(ShapeSpec::average(u64::from(negotiated_kbps) * 1000));
        default.queue_limit = Some(DEFAULT_QUEUE_LIMIT);
        default.child = child.map(Box::new);
        PolicySpec {
            name: format!("VPN-SIP-Tunnel{tunnel_id}-Bandwidth"),
            classes: vec![default],
        }
    }

    /// QOS-3: "For the class policies included in the `policy-map` attached to the VPN-SIP tunnel,
    /// only Priority Queueing and Class-Based Weighted Fair Queueing (CBWFQ) are supported", and
    /// for CBWFQ only `bandwidth percent`, because the session bandwidth varies (seed 002
    /// L3134-3135). `queue-limit` is allowed (EX-4.15).
    pub fn check_vpn_sip_child(&self) -> Result<(), SpecError> {
        for c in &self.classes {
            let bad = if matches!(c.queueing, Queueing::Bandwidth(Rate::Kbps(_))) {
                Some("bandwidth in kbps")
            } else if c.police.is_some() {
                Some("police")
            } else if c.set_dscp.is_some() {
                Some("set dscp")
            } else if c.shape.is_some() {
                Some("shape")
            } else if c.child.is_some() {
                Some("service-policy")
            } else {
                None
            };
            if let Some(what) = bad {
                return Err(SpecError::NotAllowedInVpnSip(c.name.clone(), what));
            }
        }
        Ok(())
    }

    /// Classes with `class-default` moved last (added when absent).
    pub(crate) fn normalized(&self) -> Vec<ClassSpec> {
        let mut out: Vec<ClassSpec> = self
            .classes
            .iter()
            .filter(|c| !c.is_default())
            .cloned()
            .collect();
        let default = self
            .classes
            .iter()
            .find(|c| c.is_default())
            .cloned()
            .unwrap_or_else(ClassSpec::class_default);
        let mut default = default;
        default.classifier = Classifier {
            match_any: true,
            matches: vec![Match::Any],
        };
        out.push(default);
        out
    }

    /// Whether this is a parent policy (a single class-default with a shaper or a child).
    pub fn is_parent(&self) -> bool {
        self.classes
            .iter()
            .any(|c| c.shape.is_some() || c.child.is_some())
    }

    /// Checks the policy against what the scheduler supports. `link_bps` is the rate percentages
    /// refer to when the policy has no shaper.
    pub fn validate(&self, link_bps: Option<u64>) -> Result<(), SpecError> {
        let classes = self.normalized();
        check_duplicates(self)?;
        if self.is_parent() {
            if classes.len() != 1 {
                let bad = classes
                    .iter()
                    .find(|c| c.shape.is_some() || c.child.is_some())
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                return Err(SpecError::HierarchyUnsupported(bad));
            }
            let parent = &classes[0];
            let rate = parent.shape.map(|s| s.cir_bps).or(link_bps);
            if parent.shape.is_some_and(|s| s.cir_bps == 0) {
                return Err(SpecError::ZeroRate(parent.name.clone()));
            }
            check_leaf_classes(&self.name, &classes, rate, true)?;
            if let Some(child) = &parent.child {
                if child.is_parent() {
                    return Err(SpecError::NestedTooDeep(child.name.clone()));
                }
                check_duplicates(child)?;
                check_leaf_classes(&child.name, &child.normalized(), rate, false)?;
            }
            Ok(())
        } else {
            check_leaf_classes(&self.name, &classes, link_bps, false)
        }
    }
}

fn check_duplicates(p: &PolicySpec) -> Result<(), SpecError> {
    for (i, c) in p.classes.iter().enumerate() {
        if p.classes[..i].iter().any(|o| o.name == c.name) {
            return Err(SpecError::DuplicateClass(c.name.clone()));
        }
    }
    Ok(())
}

fn check_leaf_classes(
    policy: &str,
    classes: &[ClassSpec],
    parent_bps: Option<u64>,
    parent_form: bool,
) -> Result<(), SpecError> {
    let mut reserved: u64 = 0;
    for c in classes {
        if !parent_form && (c.shape.is_some() || c.child.is_some()) {
            return Err(SpecError::HierarchyUnsupported(c.name.clone()));
        }
        if c.queue_limit == Some(0) {
            return Err(SpecError::ZeroQueueLimit(c.name.clone()));
        }
        let rate = match c.queueing {
            Queueing::Fifo => None,
            Queueing::Priority { rate, .. } => {
                if c.is_default() {
                    return Err(SpecError::PriorityInDefault(c.name.clone()));
                }
                rate
            }
            Queueing::Bandwidth(r) => Some(r),
        };
        if let Some(r) = rate {
            let bps = match (r, parent_bps) {
                (Rate::Percent(_), None) => return Err(SpecError::NoParentRate(c.name.clone())),
                (r, p) => r.bps(p.unwrap_or(0)),
            };
            if bps == 0 {
                return Err(SpecError::ZeroRate(c.name.clone()));
            }
            reserved = reserved.saturating_add(bps);
        }
        if c.police.is_some_and(|p| p.cir_bps == 0) {
            return Err(SpecError::ZeroRate(c.name.clone()));
        }
    }
    if let Some(p) = parent_bps
        && reserved > p
    {
        return Err(SpecError::Oversubscribed(policy.to_string(), p));
    }
    Ok(())
}

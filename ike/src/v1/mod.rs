//! IKEv1 (RFC 2408/2409) with the IPsec DOI (RFC 2407), NAT-T (RFC 3947/3948) and DPD (RFC 3706).

pub mod config;
mod endpoint;
pub mod keys;
pub mod wire;

pub use config::{
    AuthMethod, Config, IsakmpPolicy, Keepalive, PolicyEncryption, PolicyHash, PresharedKey,
    QuickMode, Refusal, RsaSig, Selectors, Suite,
};
pub use endpoint::{
    CommandError, Diagnostic, DiagnosticReason, Endpoint, IsakmpSaSnapshot, VID_DPD, VID_NAT_T,
    render_isakmp_sa,
};
pub use keys::HashAlg;

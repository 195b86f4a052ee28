//! IKEv1 (RFC 2408/2409) with the IPsec DOI (RFC 2407), NAT-T (RFC 3947/3948) and DPD (RFC 3706).

pub mod keys;
pub mod wire;

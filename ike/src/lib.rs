//! Sans-io IKEv2 (RFC 7296) for Lifeline.
//!
//! No sockets, no threads, no clock reads: time comes in as `now`, randomness through [`Rng`].
//!
//! # Entry points
//! * [`Endpoint`]: one per appliance (it may serve the UDP 500 and 4500 sockets together; the
//!   4-byte non-ESP marker is stripped/added on the NAT-T port). Configure with
//!   [`Endpoint::add_profile`], [`Endpoint::expect_peer`] (VPN-SIP: the SDP fingerprint of the remote
//!   SIP number), [`Endpoint::set_fragment_mtu`], [`Endpoint::set_cookie_threshold`]; drive with
//!   `initiate`, `handle_input`, `handle_timeout`, `poll_transmit`, `poll_timeout`, `poll_event`,
//!   `snapshot`; operate with `delete_ike_sa`, `rekey_child`, `rekey_ike_sa`, `dpd_probe`.
//! * [`Event`]: `IkeSaEstablished`, `ChildSaEstablished` (a [`ChildSaKeys`] for the dataplane, also
//!   after every rekey), `ChildSaDeleted`, `IkeSaDeleted`, `AuthFailed`.
//! * [`wire::Message::parse`]: the fuzz entry point (never panics, rejects trailing bytes).
//!
//! # What is here
//! IKE_SA_INIT/IKE_AUTH as initiator and responder; PSK (one keyring entry per peer, chosen by the address
//! called then the expected identity as initiator, by IDi then address as responder, then the wildcard; its
//! local key signs, its remote key verifies; no key: no IKE_AUTH) and RSA
//! (method 1 SHA-1, RFC 7427 method 14 SHA-256) with CERT/CERTREQ; identities KEY_ID, IPv4, FQDN,
//! RFC822, DN; the VPN-SIP fingerprint check, enforced by the type system (an established IKE SA
//! holds an [`AuthVerified`] that only the verifiers make); first CHILD_SA (tunnel any/any or
//! transport host-to-host, selector narrowing); CREATE_CHILD_SA rekey of CHILD_SAs (with/without PFS)
//! and of the IKE SA (the [`IkeSaId`] survives), simultaneous CHILD_SA and IKE SA rekeys (RFC 7296 §2.8.1, §2.8.2; only the original initiator
//! rekeys on its own); INFORMATIONAL DELETE and DPD (periodic or on demand);
//! retransmission with exponential backoff; message-ID window 1; lifetimes (rekey at 90 % by the
//! original initiator, hard expiry); NAT-T with `nat force-encap`, port float, keepalives; RFC 7383
//! fragmentation; cookies; INVALID_KE_PAYLOAD retry. Transforms: AES-CBC-128/192/256,
//! AES-GCM-16-128/256, HMAC-SHA1-96, HMAC-SHA2-256/384/512, PRF HMAC-SHA1/SHA2, DH 14, 19, 20, 21, 31,
//! ESN.
//!
//! RSA peers are trusted by SDP fingerprint (VPN-SIP), a pinned certificate, or a chain to a CA
//! trustpoint ([`pki`]: validity at the injected wall clock, CRL with `revocation-check crl|crl none|none`,
//! certificate maps, `disconnect-revoked-peers` on a changed CRL).
//!
//! # What is absent (see the report in the commit history)
//! CRL distribution points / fetching (the appliance passes CRLs as bytes); ECDSA; EAP; CP payloads
//! (not used by VPN-SIP); MOBIKE; an IPv6 `TsPolicy::AnyAny` (IPv6 selectors are parsed and narrowed,
//! but only proposed through `TsPolicy::Explicit`); volume lifetimes (the appliance counts bytes and calls `rekey_child`); window sizes
//! above 1; IKEv1.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod crypto;
mod endpoint;
pub mod keys;
pub mod pki;
pub mod proposal;
pub mod sk;
pub mod v1;
pub mod wire;

pub use auth::{AuthFailure, AuthVerified, CredentialError, RsaCredential};
pub use config::{
    Dpd, EspProposal, Fingerprint, Identity, IkeProposal, InitiateParams, Keyring, KeyringPeer,
    LocalAuth, Mode, Profile, RemoteAuth, Retransmit, TsPolicy,
};
pub use crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg, Rng, Secret};
pub use endpoint::*;
pub use pki::{
    CertificateMap, MapField, MapOp, MapRule, Pki, PkiError, RevocationCheck, Trustpoint,
};

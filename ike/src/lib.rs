//! Sans-io IKEv2 (RFC 7296) for Lifeline.
//!
//! No sockets, no threads, no clock reads: time comes in as `now`, randomness through [`Rng`].
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod crypto;
mod endpoint;
pub mod keys;
pub mod proposal;
pub mod sk;
pub mod wire;

pub use auth::{AuthFailure, AuthVerified, CredentialError, RsaCredential};
pub use config::{
    Dpd, EspProposal, Fingerprint, Identity, IkeProposal, InitiateParams, Keyring, KeyringPeer,
    LocalAuth, Mode, Profile, RemoteAuth, Retransmit, TsPolicy,
};
pub use crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg, Rng, Secret};
pub use endpoint::*;

//! Sans-io IKEv2 (RFC 7296) for Lifeline.
//!
//! No sockets, no threads, no clock reads: time comes in as `now`, randomness through [`Rng`].
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod crypto;
pub mod keys;
pub mod sk;
pub mod wire;

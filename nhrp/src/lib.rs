//! NHRP (RFC 2332) and GRE (RFC 2784/2890) for DMVPN, sans-io.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cache;
pub mod show;
pub mod wire;

#[cfg(test)]
mod testutil;

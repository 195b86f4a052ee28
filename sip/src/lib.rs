//! Lifeline's SIP side of VPN-SIP, sans-io.
//!
//! - [`sdp`]: RFC 6193 SDP for IKE (offer/answer, 488 reasons).
//! - [`digest`]: HTTP digest for SIP (RFC 3261 §22, RFC 7616: MD5, SHA-256, `-sess`, qop=auth).
//!
//! No sockets, threads or clock reads: time comes in as `now`, randomness through [`Random`].
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod digest;
pub mod msg;
pub mod sdp;
pub mod transaction;

pub use sdp::{
    Fingerprint, HashFunc, IkeInitiator, IkeSdp, IkeTransport, Negotiated, Rejection, SdpError,
    Setup, answer_for, negotiate,
};

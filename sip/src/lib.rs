//! Lifeline's SIP side of VPN-SIP, sans-io.
//!
//! - [`ua::UserAgent`]: registration (digest, refresh, re-registration on a WAN address change,
//!   backoff) and IKE calls (INVITE/CANCEL/BYE/OPTIONS) with RFC 3261 §17 transactions.
//! - [`sdp`]: RFC 6193 SDP for IKE (offer/answer, 488 reasons).
//! - [`digest`]: HTTP digest for SIP (RFC 3261 §22, RFC 7616: MD5, SHA-256, `-sess`, qop=auth).
//! - [`registrar::Registrar`]: a small registrar + stateless proxy for the demo and tests.
//! - [`msg`]: the SIP message codec; [`show`]: the `show vpn-sip` renderers; [`sim`]: an
//!   in-process network in virtual time.
//!
//! No sockets, threads or clock reads: time comes in as `now`, randomness through
//! [`random::Random`]. [`stream::StreamFramer`] frames TCP/TLS byte streams for a driver that owns
//! the connection (and TLS). Absent: connection management and TLS themselves,
//! re-INVITE (answered 488), forking, SIP Identity, PRACK. DNS itself is the driver's:
//! [`discovery::Discovery`] is the RFC 3263 selection logic (NAPTR -> SRV -> A) as a state machine.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod digest;
pub mod discovery;
pub mod msg;
pub mod random;
pub mod registrar;
pub mod sdp;
pub mod show;
pub mod sim;
pub mod stream;
pub mod transaction;
pub mod ua;

pub use digest::Secret;
pub use random::{Random, SeededRandom};
pub use registrar::{Registrar, RegistrarConfig};
pub use sdp::{
    Fingerprint, HashFunc, IkeInitiator, IkeSdp, IkeTransport, Negotiated, Rejection, SdpError,
    Setup, answer_for, negotiate,
};
pub use transaction::Transmit;
pub use ua::{
    CallId, EndedBy, Event, NumberRegistration, Snapshot, Transport, UaConfig, UaError, UserAgent,
};

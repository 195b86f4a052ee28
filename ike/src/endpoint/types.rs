//! Public types of the endpoint: events, transmits, keys for the dataplane, snapshots.

use crate::auth::AuthFailure;
use crate::config::{Identity, Mode};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg, Secret};
use crate::wire::{NotifyType, TrafficSelector};
use std::net::SocketAddr;
use std::time::Duration;

/// Stable local handle of an IKE SA (survives IKE SA rekeys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// A UDP payload to send (the non-ESP marker is already prepended on the NAT-T port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Local address/port to send from.
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// Everything the dataplane needs to install one CHILD_SA pair.
#[derive(Debug, Clone)]
pub struct ChildSaKeys {
    /// Our inbound SPI (the peer sends with it).
    pub spi_in: u32,
    /// The peer's inbound SPI (we send with it).
    pub spi_out: u32,
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity (None for AES-GCM).
    pub integ: Option<IntegAlg>,
    /// Inbound cipher key (for GCM: key || 4-byte salt).
    pub key_in: Secret,
    /// Inbound integrity key.
    pub integ_key_in: Secret,
    /// Outbound cipher key (for GCM: key || salt).
    pub key_out: Secret,
    /// Outbound integrity key.
    pub integ_key_out: Secret,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Tunnel or transport.
    pub mode: Mode,
    /// Local traffic selectors.
    pub ts_local: Vec<TrafficSelector>,
    /// Remote traffic selectors.
    pub ts_remote: Vec<TrafficSelector>,
    /// ESP in UDP (RFC 3948) between `local` and `remote`.
    pub udp_encap: bool,
    /// Local IKE address/port (the ESP-in-UDP source).
    pub local: SocketAddr,
    /// Peer IKE address/port (the ESP-in-UDP destination).
    pub remote: SocketAddr,
    /// Time lifetime.
    pub lifetime: Duration,
    /// Volume lifetime in KB.
    pub lifetime_kb: u64,
}

/// Why an IKE SA went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReason {
    /// We deleted it.
    LocalRequest,
    /// The peer deleted it.
    PeerRequest,
    /// DPD or a request got no answer.
    PeerDead,
    /// IKE_SA_INIT/IKE_AUTH got no answer.
    NegotiationTimeout,
    /// The peer refused (error notify) or nothing acceptable was proposed.
    NegotiationFailed(NotifyType),
    /// Authentication failed (either side).
    AuthFailed(AuthFailure),
    /// Hard lifetime reached.
    Expired,
    /// `crypto ikev2 disconnect-revoked-peers`: a new CRL revoked the peer's certificate.
    CertificateRevoked,
}

/// Facts for the coordinator.
#[derive(Debug, Clone)]
pub enum Event {
    /// The IKE SA is authenticated.
    IkeSaEstablished {
        /// Handle.
        ike_sa: IkeSaId,
        /// Peer address.
        peer: SocketAddr,
        /// Peer identity (verified).
        peer_id: Identity,
    },
    /// A CHILD_SA pair is ready (also after a rekey: a new pair).
    ChildSaEstablished {
        /// Handle.
        ike_sa: IkeSaId,
        /// Keys for the dataplane.
        child: ChildSaKeys,
    },
    /// A CHILD_SA pair is gone.
    ChildSaDeleted {
        /// Handle.
        ike_sa: IkeSaId,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
    },
    /// The IKE SA is gone (its CHILD_SAs were reported deleted before this).
    IkeSaDeleted {
        /// Handle.
        ike_sa: IkeSaId,
        /// Reason.
        reason: DeleteReason,
    },
    /// A peer failed authentication (or rejected ours).
    AuthFailed {
        /// Peer address.
        peer: SocketAddr,
        /// Why.
        reason: AuthFailure,
    },
}

/// `show` data for one IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaSnapshot {
    /// Handle (IOS `Tunnel-id`/`connid`).
    pub id: IkeSaId,
    /// Local address/port.
    pub local: SocketAddr,
    /// Remote address/port.
    pub remote: SocketAddr,
    /// IOS status word: `READY`, `IN-NEG`, `DELETE`.
    pub status: &'static str,
    /// We initiated this IKE SA (`Role: Initiator`).
    pub initiator: bool,
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI.
    pub spi_r: u64,
    /// Negotiated cipher.
    pub encr: Option<EncrAlg>,
    /// PRF.
    pub prf: Option<PrfAlg>,
    /// Integrity.
    pub integ: Option<IntegAlg>,
    /// DH group.
    pub dh: Option<DhGroup>,
    /// `Auth sign`/`Auth verify` (always `PSK` in this version).
    pub auth: &'static str,
    /// Configured lifetime.
    pub lifetime: Duration,
    /// Time since establishment (`Active time`).
    pub active: Duration,
    /// Profile name.
    pub profile: String,
    /// Local identity.
    pub local_id: Identity,
    /// Peer identity once known.
    pub peer_id: Option<Identity>,
    /// NAT-T in use.
    pub nat_t: bool,
    /// `Capabilities:` letters (`S` = VPN-SIP, `D` = DPD, `N` = NAT-T seen).
    pub capabilities: String,
    /// DPD configuration (`DPD configured for N seconds, retry M`).
    pub dpd: Option<crate::config::Dpd>,
    /// RFC 7383 fragmentation in use towards the peer.
    pub fragmentation: bool,
    /// Our next request message ID (`Local next msg id`).
    pub local_next_msg_id: u32,
    /// The peer's next expected request message ID (`Remote next msg id`).
    pub remote_next_msg_id: u32,
    /// CHILD_SAs.
    pub children: Vec<ChildSaSnapshot>,
}

/// `show` data for one CHILD_SA pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaSnapshot {
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity.
    pub integ: Option<IntegAlg>,
    /// Mode.
    pub mode: Mode,
    /// Extended sequence numbers.
    pub esn: bool,
    /// PFS group used when this pair was created (`PFS (Y/N)`, `DH group`).
    pub pfs: Option<DhGroup>,
    /// Local selectors.
    pub ts_local: Vec<TrafficSelector>,
    /// Remote selectors.
    pub ts_remote: Vec<TrafficSelector>,
    /// Seconds left of the time lifetime.
    pub remaining: Duration,
    /// Volume lifetime in KB.
    pub lifetime_kb: u64,
}

/// Everything `show` needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// IKE SAs.
    pub ike_sas: Vec<IkeSaSnapshot>,
}

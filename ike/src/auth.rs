//! Peer authentication (RFC 7296 §2.15) and the VPN-SIP fingerprint check.
//!
//! [`AuthVerified`] can only be made by [`verify_psk_peer`]; the established IKE SA holds one, so an SA
//! that skipped the AUTH or fingerprint check does not compile.

use crate::config::{Fingerprint, Identity, Keyring};
use crate::crypto::{PrfAlg, Secret};
use crate::wire::Identification;

/// Proof that the peer's AUTH payload verified and, for VPN-SIP, that its key matched the SDP fingerprint.
#[derive(Debug)]
pub struct AuthVerified(());

/// Why a peer was not accepted (shown by the appliance).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No pre-shared key in the keyring for the peer's identity.
    #[error("no key for peer identity {0}")]
    NoKey(String),
    /// The AUTH payload did not verify with the configured key.
    #[error("AUTH payload did not verify (pre-shared key mismatch)")]
    BadPsk,
    /// AUTH verified but the key's SHA-1 is not the fingerprint received in SDP.
    #[error("fingerprint mismatch: SDP offered {expected}, peer key hashes to {actual}")]
    FingerprintMismatch {
        /// From SDP.
        expected: Fingerprint,
        /// Of the key actually used.
        actual: Fingerprint,
    },
    /// A VPN-SIP session without a fingerprint from SDP.
    #[error("VPN-SIP session without an SDP fingerprint for the peer")]
    NoFingerprint,
    /// The identity does not match the profile.
    #[error("peer identity {0} does not match the profile")]
    IdentityMismatch(String),
    /// An authentication method we do not support here.
    #[error("unsupported authentication method {0}")]
    UnsupportedMethod(u8),
    /// The peer sent AUTHENTICATION_FAILED.
    #[error("peer rejected our authentication")]
    PeerRejected,
    /// A required payload was missing.
    #[error("missing {0} payload")]
    Missing(&'static str),
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.15
//# AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <InitiatorSignedOctets>)
/// The PSK AUTH value: `signed_msg` is RealMessage1 (initiator) or RealMessage2 (responder), `nonce` the
/// peer's nonce, `sk_p` SK_pi or SK_pr of the signer, `id` the signer's ID payload.
pub fn psk_auth(
    prf: PrfAlg,
    psk: &[u8],
    signed_msg: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id: &Identification,
) -> Secret {
    //# InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
    //# MACedIDForI = prf(SK_pi, RestOfInitIDPayload)
    let rest = [&[id.id_type.0, 0, 0, 0][..], &id.data].concat();
    let maced_id = prf.prf(sk_p, &[&rest]);
    let key = prf.prf(psk, &[b"Key Pad for IKEv2"]);
    prf.prf(key.as_bytes(), &[signed_msg, nonce, maced_id.as_bytes()])
}

/// What the verifier needs to check a PSK-authenticated peer.
#[derive(Debug)]
pub struct PeerAuthInput<'a> {
    /// PRF of the IKE SA.
    pub prf: PrfAlg,
    /// The peer's ID payload.
    pub id: &'a Identification,
    /// The peer's AUTH method.
    pub method: u8,
    /// The peer's AUTH data.
    pub auth: &'a [u8],
    /// The message the peer signed (its IKE_SA_INIT message).
    pub signed_msg: &'a [u8],
    /// Our nonce (the one the peer signs).
    pub nonce: &'a [u8],
    /// The peer's SK_p.
    pub sk_p: &'a [u8],
    /// `match identity remote`.
    pub expected_id: Option<&'a Identity>,
    /// Fingerprint from SDP when the session is VPN-SIP (`Some(None)`: VPN-SIP but none was received).
    pub vpn_sip_fingerprint: Option<Option<Fingerprint>>,
}

/// Verifies the peer: identity match, PSK lookup by identity, AUTH, then the VPN-SIP fingerprint.
pub fn verify_psk_peer(
    input: &PeerAuthInput<'_>,
    keyring: &Keyring,
) -> Result<AuthVerified, AuthFailure> {
    let peer = Identity::from_wire(input.id);
    if let Some(exp) = input.expected_id
        && *exp != peer
    {
        return Err(AuthFailure::IdentityMismatch(peer.to_string()));
    }
    if input.method != crate::wire::AuthMethod::SHARED_KEY.0 {
        return Err(AuthFailure::UnsupportedMethod(input.method));
    }
    let psk = keyring
        .lookup(&peer)
        .ok_or_else(|| AuthFailure::NoKey(peer.to_string()))?;
    let want = psk_auth(
        input.prf,
        psk.as_bytes(),
        input.signed_msg,
        input.nonce,
        input.sk_p,
        input.id,
    );
    if !want.ct_eq(input.auth) {
        return Err(AuthFailure::BadPsk);
    }
    //= /work/shared/spec/seed-vpnsip.md IK-5
    //# hash(received certificate or looked-up PSK) == SDP fingerprint, in addition to AUTH validation.
    if let Some(fp) = input.vpn_sip_fingerprint {
        let expected = fp.ok_or(AuthFailure::NoFingerprint)?;
        let actual = Fingerprint::of_psk(psk.as_bytes());
        if !expected.ct_eq(&actual) {
            return Err(AuthFailure::FingerprintMismatch { expected, actual });
        }
    }
    Ok(AuthVerified(()))
}

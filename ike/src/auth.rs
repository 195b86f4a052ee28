//! Peer authentication (RFC 7296 §2.15) and the VPN-SIP fingerprint check.
//!
//! [`AuthVerified`] can only be made by [`verify_psk_peer`]; the established IKE SA holds one, so an SA
//! that skipped the AUTH or fingerprint check does not compile.

use crate::config::{Fingerprint, Identity};
use crate::crypto::{PrfAlg, Secret};
use crate::wire::Identification;

/// Proof that the peer's AUTH payload verified and, for VPN-SIP, that its key matched the SDP fingerprint.
#[derive(Debug)]
pub struct AuthVerified(());

/// Why a peer was not accepted (shown by the appliance).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No pre-shared key in the keyring for the peer (its identity, or the address we call).
    #[error("no pre-shared key for peer {0}")]
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
    /// The RSA signature in AUTH did not verify with the certificate's key.
    #[error("AUTH signature did not verify")]
    BadSignature,
    /// The peer's certificate does not parse or holds no RSA key.
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// Not a VPN-SIP session and the certificate is not pinned.
    #[error("untrusted certificate {0}")]
    UntrustedCertificate(Fingerprint),
    /// A required payload was missing.
    #[error("missing {0} payload")]
    Missing(&'static str),
    /// The certificate chain, its CRL check or the certificate map refused the peer.
    #[error("certificate refused: {0}")]
    Certificate(crate::pki::PkiError),
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

/// Verifies the peer: identity match, AUTH with `psk` (the remote key of the keyring entry chosen for this
/// peer, [`crate::Keyring::entry`]; `None`: there is none), then the VPN-SIP fingerprint.
pub fn verify_psk_peer(
    input: &PeerAuthInput<'_>,
    psk: Option<&Secret>,
) -> Result<AuthVerified, AuthFailure> {
    let peer = Identity::from_wire(input.id);
    if let Some(exp) = input.expected_id
        && !exp.matches(&peer)
    {
        return Err(AuthFailure::IdentityMismatch(peer.to_string()));
    }
    if input.method != crate::wire::AuthMethod::SHARED_KEY.0 {
        return Err(AuthFailure::UnsupportedMethod(input.method));
    }
    let psk = psk.ok_or_else(|| AuthFailure::NoKey(peer.to_string()))?;
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
    //= seed 002 chapter 4 (digest seed-vpnsip.md, IK-5)
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

// ------------------------------------------------------------------------------------------ RSA

/// An RSA private key and its certificate (IOS trustpoint with `rsakeypair`).
#[derive(Clone)]
pub struct RsaCredential {
    key: rsa::RsaPrivateKey,
    cert_der: Vec<u8>,
}

impl core::fmt::Debug for RsaCredential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "RsaCredential(cert {})",
            Fingerprint::of_cert(&self.cert_der)
        )
    }
}

/// Errors loading a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The private key is not PKCS#8 RSA.
    #[error("private key: {0}")]
    Key(String),
    /// The certificate does not parse or holds no RSA key.
    #[error("certificate: {0}")]
    Cert(String),
    /// The certificate's key is not the private key's.
    #[error("certificate does not match the private key")]
    Mismatch,
}

/// The subject of a DER certificate as an ID_DER_ASN1_DN identity.
pub fn cert_subject(cert_der: &[u8]) -> Option<Identity> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    Some(Identity::Dn(
        cert.tbs_certificate().subject().to_der().ok()?,
    ))
}

/// The RSA public key inside a DER X.509 certificate.
pub fn cert_public_key(cert_der: &[u8]) -> Result<rsa::RsaPublicKey, CredentialError> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| CredentialError::Cert(e.to_string()))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CredentialError::Cert(e.to_string()))?;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(&spki)
        .map_err(|e| CredentialError::Cert(e.to_string()))?;
    rsa::RsaPublicKey::try_from(spki).map_err(|e| CredentialError::Cert(e.to_string()))
}

impl RsaCredential {
    /// From a PKCS#8 DER private key and a DER certificate for it.
    pub fn from_der(pkcs8_key: &[u8], cert_der: &[u8]) -> Result<Self, CredentialError> {
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_key)
            .map_err(|e| CredentialError::Key(e.to_string()))?;
        if cert_public_key(cert_der)? != key.to_public_key() {
            return Err(CredentialError::Mismatch);
        }
        Ok(RsaCredential {
            key,
            cert_der: cert_der.to_vec(),
        })
    }
    /// The certificate (sent in CERT; its SHA-1 is the SDP fingerprint).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
    /// SHA-1 fingerprint of the certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_cert(&self.cert_der)
    }
    /// The certificate's subject as an ID_DER_ASN1_DN identity (what strongSwan expects with certificates).
    pub fn subject_identity(&self) -> Option<Identity> {
        cert_subject(&self.cert_der)
    }
}

/// Adapts the injected [`crate::Rng`] to `rand_core` for RSA blinding.
struct BlindingRng<'a>(&'a mut dyn crate::crypto::Rng);
impl rand_core::TryRng for BlindingRng<'_> {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}
impl rand_core::TryCryptoRng for BlindingRng<'_> {}

//= https://www.rfc-editor.org/rfc/rfc7427#appendix-A.1.2
//# sha256WithRSAEncryption: 30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00
const ALG_RSA_SHA256: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const ALG_RSA_SHA384: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const ALG_RSA_SHA512: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
const ALG_RSA_SHA1: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];

/// RFC 7427 hash algorithm number for SHA2-256 (SIGNATURE_HASH_ALGORITHMS).
pub const HASH_SHA2_256: u16 = 2;

/// The octets a signer signs: `msg | nonce | prf(SK_p, RestOfIDPayload)` (RFC 7296 §2.15).
pub fn signed_octets(
    prf: PrfAlg,
    msg: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id: &Identification,
) -> Vec<u8> {
    let rest = [&[id.id_type.0, 0, 0, 0][..], &id.data].concat();
    let maced = prf.prf(sk_p, &[&rest]);
    [msg, nonce, maced.as_bytes()].concat()
}

/// Signs with RSA: method 14 with SHA-256 when the peer announced SHA2-256 (RFC 7427), else method 1
/// (PKCS#1 v1.5 with SHA-1). Blinded with the injected RNG. Returns (method, AUTH data).
pub fn rsa_sign(
    cred: &RsaCredential,
    octets: &[u8],
    rfc7427_sha256: bool,
    rng: &mut dyn crate::crypto::Rng,
) -> (u8, Vec<u8>) {
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    let mut r = BlindingRng(rng);
    if rfc7427_sha256 {
        let k = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(cred.key.clone());
        let sig = k.sign_with_rng(&mut r, octets).to_vec();
        let mut d = vec![ALG_RSA_SHA256.len() as u8];
        d.extend_from_slice(&ALG_RSA_SHA256);
        d.extend_from_slice(&sig);
        (crate::wire::AuthMethod::DIGITAL_SIGNATURE.0, d)
    } else {
        let k = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(cred.key.clone());
        (
            crate::wire::AuthMethod::RSA_SIG.0,
            k.sign_with_rng(&mut r, octets).to_vec(),
        )
    }
}

/// An RSASSA-PKCS1-v1_5 signature `sig` over `m` with digest `D` verifies with `key`.
pub(crate) fn pkcs1v15_verifies<D: sha2::Digest + der::oid::AssociatedOid>(
    key: &rsa::RsaPublicKey,
    sig: &[u8],
    m: &[u8],
) -> bool {
    use rsa::signature::Verifier;
    let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone())
        .verify(m, &s)
        .is_ok()
}

fn rsa_verify(key: &rsa::RsaPublicKey, method: u8, data: &[u8], octets: &[u8]) -> bool {
    match method {
        1 => pkcs1v15_verifies::<sha1::Sha1>(key, data, octets),
        14 => {
            let Some((&n, rest)) = data.split_first() else {
                return false;
            };
            let Some((alg, sig)) = rest.split_at_checked(n as usize) else {
                return false;
            };
            match alg {
                a if a == ALG_RSA_SHA256 => pkcs1v15_verifies::<sha2::Sha256>(key, sig, octets),
                a if a == ALG_RSA_SHA384 => pkcs1v15_verifies::<sha2::Sha384>(key, sig, octets),
                a if a == ALG_RSA_SHA512 => pkcs1v15_verifies::<sha2::Sha512>(key, sig, octets),
                a if a == ALG_RSA_SHA1 => pkcs1v15_verifies::<sha1::Sha1>(key, sig, octets),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Verifies an RSA-signing peer: its certificate's key checks the AUTH payload (method 1 or 14), then the
/// certificate must be the one fingerprinted in SDP (VPN-SIP) or one of the pinned `trusted` ones.
pub fn verify_rsa_peer(
    input: &PeerAuthInput<'_>,
    cert_der: Option<&[u8]>,
    trusted: &[Fingerprint],
) -> Result<AuthVerified, AuthFailure> {
    let chain: Vec<&[u8]> = cert_der.into_iter().collect();
    let trust = CertTrust {
        pinned: trusted,
        pki: &crate::pki::Pki::default(),
        trustpoints: &[],
        map: None,
        now: None,
    };
    verify_rsa_peer_chain(input, &chain, &trust).map(|(v, _)| v)
}

/// How an RSA peer's certificate may be trusted outside VPN-SIP.
#[derive(Debug, Clone, Copy)]
pub struct CertTrust<'a> {
    /// Pinned certificates (SHA-1 of the DER).
    pub pinned: &'a [Fingerprint],
    /// The endpoint's trustpoints and maps.
    pub pki: &'a crate::pki::Pki,
    /// The profile's CA trustpoints (by name).
    pub trustpoints: &'a [String],
    /// The profile's certificate map (by name).
    pub map: Option<&'a str>,
    /// Wall-clock time for validity dates (None: chains cannot be validated).
    pub now: Option<std::time::SystemTime>,
}

/// [`verify_rsa_peer`] with CA trustpoints: `chain` is the peer's CERT payloads (end entity first). After
/// the AUTH signature verifies, the certificate must match the SDP fingerprint (VPN-SIP), or be pinned,
/// or chain to one of `trust.trustpoints` (validity at `trust.now`, CRL per the trustpoint); then it must
/// match `trust.map` when one is set. Returns what the chain validation found (for
/// `disconnect-revoked-peers`).
pub fn verify_rsa_peer_chain(
    input: &PeerAuthInput<'_>,
    chain: &[&[u8]],
    trust: &CertTrust<'_>,
) -> Result<(AuthVerified, Option<crate::pki::ValidatedCert>), AuthFailure> {
    let cert_der = chain.first().copied();
    let trusted = trust.pinned;
    let peer = Identity::from_wire(input.id);
    if let Some(exp) = input.expected_id
        && !exp.matches(&peer)
    {
        return Err(AuthFailure::IdentityMismatch(peer.to_string()));
    }
    let cert = cert_der.ok_or(AuthFailure::Missing("CERT"))?;
    let key = cert_public_key(cert).map_err(|e| AuthFailure::BadCertificate(e.to_string()))?;
    let octets = signed_octets(
        input.prf,
        input.signed_msg,
        input.nonce,
        input.sk_p,
        input.id,
    );
    if !rsa_verify(&key, input.method, input.auth, &octets) {
        return Err(AuthFailure::BadSignature);
    }
    let actual = Fingerprint::of_cert(cert);
    let mut validated = None;
    match input.vpn_sip_fingerprint {
        Some(fp) => {
            let expected = fp.ok_or(AuthFailure::NoFingerprint)?;
            if !expected.ct_eq(&actual) {
                return Err(AuthFailure::FingerprintMismatch { expected, actual });
            }
        }
        None => {
            if !trusted.iter().any(|t| t.ct_eq(&actual)) {
                if trust.trustpoints.is_empty() {
                    return Err(AuthFailure::UntrustedCertificate(actual));
                }
                validated = Some(
                    trust
                        .pki
                        .validate(trust.trustpoints, chain, trust.now)
                        .map_err(AuthFailure::Certificate)?,
                );
            }
        }
    }
    if let Some(name) = trust.map {
        let ok = trust.pki.map(name).is_some_and(|m| m.matches(cert));
        if !ok {
            return Err(AuthFailure::Certificate(crate::pki::PkiError::MapMismatch(
                name.to_string(),
            )));
        }
    }
    Ok((AuthVerified(()), validated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IdType;

    struct Ctr(u8);
    impl crate::crypto::Rng for Ctr {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(7);
                *b = self.0;
            }
        }
    }

    fn cred() -> RsaCredential {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        RsaCredential::from_der(
            &std::fs::read(format!("{dir}/key1000.pk8.der")).unwrap(),
            &std::fs::read(format!("{dir}/cert1000.der")).unwrap(),
        )
        .unwrap()
    }

    fn check(method_14: bool) {
        let c = cred();
        let id = Identification {
            id_type: IdType::ID_KEY_ID,
            data: b"1000".to_vec(),
        };
        let (method, data) = rsa_sign(
            &c,
            &signed_octets(PrfAlg::HmacSha256, b"msg", b"nonce", b"skp", &id),
            method_14,
            &mut Ctr(0),
        );
        assert_eq!(method, if method_14 { 14 } else { 1 });
        if method_14 {
            assert_eq!(data[0], 15);
            assert_eq!(&data[1..16], &ALG_RSA_SHA256);
            assert_eq!(data.len(), 16 + 256);
        } else {
            assert_eq!(data.len(), 256);
        }
        let input = |auth: &'_ [u8]| -> Result<AuthVerified, AuthFailure> {
            let i = PeerAuthInput {
                prf: PrfAlg::HmacSha256,
                id: &id,
                method,
                auth,
                signed_msg: b"msg",
                nonce: b"nonce",
                sk_p: b"skp",
                expected_id: None,
                vpn_sip_fingerprint: Some(Some(c.fingerprint())),
            };
            verify_rsa_peer(&i, Some(c.cert_der()), &[])
        };
        assert!(input(&data).is_ok());
        let mut bad = data.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(input(&bad).unwrap_err(), AuthFailure::BadSignature);
        assert_eq!(input(&data[..10]).unwrap_err(), AuthFailure::BadSignature);
    }

    #[test]
    fn rsa_method_1_sha1_signs_and_verifies() {
        check(false);
    }

    #[test]
    fn rsa_rfc7427_sha256_signs_and_verifies() {
        check(true);
    }

    #[test]
    fn psk_auth_is_deterministic_and_key_dependent() {
        let id = Identification {
            id_type: IdType::ID_KEY_ID,
            data: b"1000".to_vec(),
        };
        let a = psk_auth(PrfAlg::HmacSha256, b"k1", b"m", b"n", b"s", &id);
        assert_eq!(
            a,
            psk_auth(PrfAlg::HmacSha256, b"k1", b"m", b"n", b"s", &id)
        );
        assert_ne!(
            a,
            psk_auth(PrfAlg::HmacSha256, b"k2", b"m", b"n", b"s", &id)
        );
    }
}

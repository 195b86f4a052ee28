//! CA trustpoints, certificate maps and CRLs (IOS `crypto pki trustpoint` with a CA certificate,
//! `revocation-check crl|none`, `crypto pki certificate map`, `crypto ikev2 disconnect-revoked-peers`).
//!
//! Parsing is `x509-cert`'s, signatures are checked with `rsa` (PKCS#1 v1.5 with SHA-1/256/384/512);
//! this module only decides *what* to check. Time is passed in (`now: SystemTime`): the crate reads no
//! clock. Limits: RSA CAs only; the chain may hold intermediates (sent by the peer in further CERT
//! payloads), but a CRL is checked only for certificates issued directly by the trustpoint's CA; no
//! name constraints or policy processing; no CRL distribution points (the appliance fetches and
//! passes the CRL as bytes).

use std::time::SystemTime;

use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

/// Why a certificate (chain) or CRL was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// Not a DER X.509 certificate / CRL, or an unusable key.
    #[error("cannot parse {0}")]
    Parse(String),
    /// No trustpoint's CA issued the chain.
    #[error("no trusted CA for issuer {0}")]
    UnknownIssuer(String),
    /// A signature in the chain (or of the CRL) does not verify.
    #[error("bad signature on {0}")]
    BadSignature(String),
    /// Outside notBefore..notAfter at `now`.
    #[error("certificate {0} is not valid at this time")]
    Expired(String),
    /// An issuing certificate that is not a CA (basicConstraints / keyUsage).
    #[error("{0} is not a CA")]
    NotCa(String),
    /// The chain is longer than we follow.
    #[error("certificate chain too long")]
    ChainTooLong,
    /// The certificate's serial is in the CA's CRL.
    #[error("certificate {subject} (serial {serial}) is revoked")]
    Revoked {
        /// Subject DN.
        subject: String,
        /// Serial number, hex.
        serial: String,
    },
    /// `revocation-check crl` without a current CRL.
    #[error("no current CRL for trustpoint {0}")]
    CrlUnavailable(String),
    /// No wall clock was given to the endpoint (`Endpoint::set_wall_clock`).
    #[error("no wall clock: cannot check validity dates")]
    NoClock,
    /// The certificate map does not match the peer's certificate.
    #[error("certificate does not match certificate map {0}")]
    MapMismatch(String),
}

/// `revocation-check ...` of a trustpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationCheck {
    /// `revocation-check none`: never checked.
    None,
    /// `revocation-check crl`: a current CRL is required; a revoked certificate is refused.
    Crl,
    /// `revocation-check crl none`: checked against the CRL when there is a current one, else accepted.
    CrlOrNone,
}

#[derive(Debug, Clone)]
struct Crl {
    /// DER of the CRL (to notice a changed download).
    der: Vec<u8>,
    next_update: Option<SystemTime>,
    revoked: Vec<Vec<u8>>,
}

/// A CA trustpoint: the CA certificate, its revocation policy and its current CRL.
#[derive(Debug, Clone)]
pub struct Trustpoint {
    /// Trustpoint name (`crypto pki trustpoint NAME`).
    pub name: String,
    /// `revocation-check`.
    pub revocation: RevocationCheck,
    ca: Certificate,
    ca_der: Vec<u8>,
    ca_key: rsa::RsaPublicKey,
    crl: Option<Crl>,
}

/// What a successful chain validation found (kept by the IKE SA for `disconnect-revoked-peers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCert {
    /// The trustpoint that anchored the chain.
    pub trustpoint: String,
    /// End-entity serial number (DER content octets).
    pub serial: Vec<u8>,
    /// Whether the end entity was issued directly by the trustpoint's CA (CRL applies).
    pub direct: bool,
}

fn parse_cert(der: &[u8]) -> Result<Certificate, PkiError> {
    Certificate::from_der(der).map_err(|e| PkiError::Parse(format!("certificate: {e}")))
}

fn subject_str(c: &Certificate) -> String {
    c.tbs_certificate().subject().to_string()
}

fn name_der(n: &x509_cert::name::Name) -> Vec<u8> {
    n.to_der().unwrap_or_default()
}

fn rsa_key(c: &Certificate) -> Result<rsa::RsaPublicKey, PkiError> {
    let der = c.to_der().map_err(|e| PkiError::Parse(e.to_string()))?;
    crate::auth::cert_public_key(&der).map_err(|e| PkiError::Parse(e.to_string()))
}

/// Verifies `sig` over `tbs` (DER) with `key` for the signature algorithm `alg`.
fn verify_sig(
    key: &rsa::RsaPublicKey,
    alg: &spki::AlgorithmIdentifierOwned,
    tbs: &[u8],
    sig: &[u8],
) -> bool {
    use crate::auth::pkcs1v15_verifies as v;
    match alg.oid.to_string().as_str() {
        "1.2.840.113549.1.1.5" => v::<sha1::Sha1>(key, sig, tbs),
        "1.2.840.113549.1.1.11" => v::<sha2::Sha256>(key, sig, tbs),
        "1.2.840.113549.1.1.12" => v::<sha2::Sha384>(key, sig, tbs),
        "1.2.840.113549.1.1.13" => v::<sha2::Sha512>(key, sig, tbs),
        _ => false,
    }
}

fn signed_by(c: &Certificate, key: &rsa::RsaPublicKey) -> bool {
    let Ok(tbs) = c.tbs_certificate().to_der() else {
        return false;
    };
    let Some(sig) = c.signature().as_bytes() else {
        return false;
    };
    verify_sig(key, c.signature_algorithm(), &tbs, sig)
}

fn check_dates(c: &Certificate, now: SystemTime) -> Result<(), PkiError> {
    let v = c.tbs_certificate().validity();
    if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
        return Err(PkiError::Expired(subject_str(c)));
    }
    Ok(())
}

/// A CA must say so when it has extensions (v1 certificates without extensions are accepted).
fn check_ca(c: &Certificate) -> Result<(), PkiError> {
    let tbs = c.tbs_certificate();
    if tbs.extensions().is_none() {
        return Ok(());
    }
    let bc = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    if !bc.is_some_and(|(_, b)| b.ca) {
        return Err(PkiError::NotCa(subject_str(c)));
    }
    if let Some((_, ku)) = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| PkiError::Parse(e.to_string()))?
        && !ku.0.contains(KeyUsages::KeyCertSign)
    {
        return Err(PkiError::NotCa(subject_str(c)));
    }
    Ok(())
}

impl Trustpoint {
    /// A trustpoint from its CA certificate (DER). The CA must be an RSA CA (basicConstraints CA:TRUE
    /// when the certificate has extensions).
    pub fn new(name: &str, ca_der: &[u8], revocation: RevocationCheck) -> Result<Self, PkiError> {
        let ca = parse_cert(ca_der)?;
        check_ca(&ca)?;
        let ca_key = rsa_key(&ca)?;
        Ok(Trustpoint {
            name: name.to_string(),
            revocation,
            ca,
            ca_der: ca_der.to_vec(),
            ca_key,
            crl: None,
        })
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The CA's subject (RFC 4514 string).
    pub fn ca_subject(&self) -> String {
        subject_str(&self.ca)
    }

    /// Installs a CRL (DER) for this CA after checking its issuer and signature and that it is current at
    /// `now`. Returns true when its content differs from the previous one (IOS acts on changed CRLs only).
    pub fn set_crl(&mut self, crl_der: &[u8], now: SystemTime) -> Result<bool, PkiError> {
        let crl = <CertificateList>::from_der(crl_der)
            .map_err(|e| PkiError::Parse(format!("CRL: {e}")))?;
        let tbs = &crl.tbs_cert_list;
        if name_der(&tbs.issuer) != name_der(self.ca.tbs_certificate().subject()) {
            return Err(PkiError::UnknownIssuer(tbs.issuer.to_string()));
        }
        let raw = tbs.to_der().map_err(|e| PkiError::Parse(e.to_string()))?;
        let sig = crl.signature.as_bytes().unwrap_or_default();
        if !verify_sig(&self.ca_key, &crl.signature_algorithm, &raw, sig) {
            return Err(PkiError::BadSignature(format!(
                "CRL of {}",
                self.ca_subject()
            )));
        }
        if tbs.this_update.to_system_time() > now {
            return Err(PkiError::Expired(format!("CRL of {}", self.ca_subject())));
        }
        let next_update = tbs.next_update.map(|t| t.to_system_time());
        let revoked = tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| r.serial_number.as_bytes().to_vec())
            .collect();
        let changed = self.crl.as_ref().is_none_or(|c| c.der != crl_der);
        self.crl = Some(Crl {
            der: crl_der.to_vec(),
            next_update,
            revoked,
        });
        Ok(changed)
    }

    /// The CRL check of a certificate issued directly by this CA.
    fn check_revocation(
        &self,
        serial: &[u8],
        subject: &str,
        now: SystemTime,
    ) -> Result<(), PkiError> {
        let current = self
            .crl
            .as_ref()
            .filter(|c| c.next_update.is_none_or(|n| now <= n));
        match (self.revocation, current) {
            (RevocationCheck::None, _) => Ok(()),
            (RevocationCheck::Crl, None) => Err(PkiError::CrlUnavailable(self.name.clone())),
            (RevocationCheck::CrlOrNone, None) => Ok(()),
            (_, Some(crl)) => {
                if crl.revoked.iter().any(|s| s == serial) {
                    Err(PkiError::Revoked {
                        subject: subject.to_string(),
                        serial: serial.iter().map(|b| format!("{b:02X}")).collect(),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Is the (already validated) certificate with this serial revoked by the current CRL?
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revocation != RevocationCheck::None
            && self
                .crl
                .as_ref()
                .is_some_and(|c| c.revoked.iter().any(|s| s == serial))
    }

    /// Validates `chain` (end entity first, then any intermediates in any order) up to this CA at `now`:
    /// signatures, validity dates of every certificate, CA flags of issuers, and the CRL of the CA for a
    /// certificate it issued directly.
    pub fn validate(&self, chain: &[&[u8]], now: SystemTime) -> Result<ValidatedCert, PkiError> {
        let certs: Vec<Certificate> = chain
            .iter()
            .map(|d| parse_cert(d))
            .collect::<Result<_, _>>()?;
        let ee = certs
            .first()
            .ok_or(PkiError::Parse("no certificate".into()))?;
        check_ca(&self.ca)?;
        check_dates(&self.ca, now)?;
        let ca_subject = name_der(self.ca.tbs_certificate().subject());
        let mut cur = ee;
        for depth in 0..5 {
            check_dates(cur, now)?;
            if depth > 0 {
                check_ca(cur)?;
            }
            let issuer = name_der(cur.tbs_certificate().issuer());
            if issuer == ca_subject {
                if !signed_by(cur, &self.ca_key) {
                    return Err(PkiError::BadSignature(subject_str(cur)));
                }
                let serial = ee.tbs_certificate().serial_number().as_bytes().to_vec();
                let direct = depth == 0;
                if direct {
                    self.check_revocation(&serial, &subject_str(ee), now)?;
                }
                return Ok(ValidatedCert {
                    trustpoint: self.name.clone(),
                    serial,
                    direct,
                });
            }
            let next = certs[1..]
                .iter()
                .find(|c| name_der(c.tbs_certificate().subject()) == issuer)
                .ok_or_else(|| {
                    PkiError::UnknownIssuer(cur.tbs_certificate().issuer().to_string())
                })?;
            let key = rsa_key(next)?;
            if !signed_by(cur, &key) {
                return Err(PkiError::BadSignature(subject_str(cur)));
            }
            cur = next;
        }
        Err(PkiError::ChainTooLong)
    }
}

// ------------------------------------------------------------------------------- certificate maps

/// Which name a certificate-map rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapField {
    /// `subject-name`.
    SubjectName,
    /// `issuer-name`.
    IssuerName,
}

/// The comparison of a rule (`eq`, `ne`, `co`, `nc`), case-insensitive as on IOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `nc`: does not contain.
    Nc,
}

/// One line of a certificate map entry, e.g. `issuer-name co cn = orange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRule {
    /// The name examined.
    pub field: MapField,
    /// The comparison.
    pub op: MapOp,
    /// The value (blanks around `=` and `,` and case do not matter).
    pub value: String,
}

impl MapRule {
    /// Parses an IOS line: `subject-name|issuer-name eq|ne|co|nc VALUE`.
    pub fn parse(line: &str) -> Option<MapRule> {
        let mut w = line.trim().splitn(3, char::is_whitespace);
        let field = match w.next()? {
            "subject-name" => MapField::SubjectName,
            "issuer-name" => MapField::IssuerName,
            _ => return None,
        };
        let op = match w.next()? {
            "eq" => MapOp::Eq,
            "ne" => MapOp::Ne,
            "co" => MapOp::Co,
            "nc" => MapOp::Nc,
            _ => return None,
        };
        let value = w.next()?.trim().to_string();
        (!value.is_empty()).then_some(MapRule { field, op, value })
    }
}

/// Lower case, no blanks around `=` and `,`.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let kv: Vec<&str> = part.splitn(2, '=').map(str::trim).collect();
        out.push_str(&kv.join("=").to_lowercase());
    }
    out
}

/// A DN as IOS compares it: attributes in certificate order (most general first, e.g.
/// `o=lifeline test,cn=branch.lifeline.test`), lower case. A rule's value matches either this order or
/// the reverse (RFC 4514) one.
fn dn_forms(n: &x509_cert::name::Name) -> [String; 2] {
    let rfc4514 = normalize(&n.to_string());
    let mut parts: Vec<&str> = rfc4514.split(',').collect();
    parts.reverse();
    [parts.join(","), rfc4514]
}

/// `crypto pki certificate map NAME SEQ`: entries in sequence order; a certificate matches the map when
/// every rule of some entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateMap {
    /// Map name (`match certificate NAME` in the IKEv2 profile).
    pub name: String,
    /// (sequence number, rules).
    pub entries: Vec<(u32, Vec<MapRule>)>,
}

impl CertificateMap {
    /// Whether the DER certificate matches.
    pub fn matches(&self, cert_der: &[u8]) -> bool {
        let Ok(c) = Certificate::from_der(cert_der) else {
            return false;
        };
        let subject = dn_forms(c.tbs_certificate().subject());
        let issuer = dn_forms(c.tbs_certificate().issuer());
        let mut entries: Vec<&(u32, Vec<MapRule>)> = self.entries.iter().collect();
        entries.sort_by_key(|e| e.0);
        entries.iter().any(|(_, rules)| {
            !rules.is_empty()
                && rules.iter().all(|r| {
                    let forms = match r.field {
                        MapField::SubjectName => &subject,
                        MapField::IssuerName => &issuer,
                    };
                    let v = normalize(&r.value);
                    match r.op {
                        MapOp::Eq => forms.contains(&v),
                        MapOp::Ne => forms.iter().all(|f| *f != v),
                        MapOp::Co => forms.iter().any(|f| f.contains(&v)),
                        MapOp::Nc => forms.iter().all(|f| !f.contains(&v)),
                    }
                })
        })
    }
}

// ------------------------------------------------------------------------------- the endpoint's store

/// The endpoint's PKI: trustpoints, certificate maps and `crypto ikev2 disconnect-revoked-peers`.
#[derive(Debug, Clone, Default)]
pub struct Pki {
    /// CA trustpoints by name.
    pub trustpoints: Vec<Trustpoint>,
    /// Certificate maps by name.
    pub maps: Vec<CertificateMap>,
    /// `crypto ikev2 disconnect-revoked-peers`: a changed CRL deletes IKE SAs of revoked peers.
    pub disconnect_revoked_peers: bool,
}

impl Pki {
    /// The trustpoint named `name`.
    pub fn trustpoint(&self, name: &str) -> Option<&Trustpoint> {
        self.trustpoints.iter().find(|t| t.name == name)
    }

    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&CertificateMap> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// Validates a peer's chain against the named trustpoints (first success wins; else the first
    /// trustpoint's error, as IOS reports it).
    pub fn validate(
        &self,
        names: &[String],
        chain: &[&[u8]],
        now: Option<SystemTime>,
    ) -> Result<ValidatedCert, PkiError> {
        let now = now.ok_or(PkiError::NoClock)?;
        let mut first_err = None;
        for n in names {
            let Some(tp) = self.trustpoint(n) else {
                continue;
            };
            match tp.validate(chain, now) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| PkiError::UnknownIssuer(String::from("(no trustpoint)"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn data(n: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{n}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// 2027-01-01: inside every test certificate's validity (made 2026-11-23, 10 years).
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600)
    }

    fn tp(rev: RevocationCheck) -> Trustpoint {
        Trustpoint::new("CA", &data("ca.der"), rev).unwrap()
    }

    #[test]
    fn ca_issued_certificate_validates_and_others_do_not() {
        let t = tp(RevocationCheck::None);
        let v = t.validate(&[&data("swan-ca.der")], now()).unwrap();
        assert!(v.direct && v.trustpoint == "CA");
        t.validate(&[&data("lifeline-ca.der")], now()).unwrap();
        // Another CA's certificate, and a self-signed one.
        assert!(matches!(
            t.validate(&[&data("stranger.der")], now()),
            Err(PkiError::UnknownIssuer(_))
        ));
        assert!(matches!(
            t.validate(&[&data("cert2000.der")], now()),
            Err(PkiError::UnknownIssuer(_))
        ));
        // Garbage.
        assert!(matches!(
            t.validate(&[b"junk"], now()),
            Err(PkiError::Parse(_))
        ));
        assert!(matches!(t.validate(&[], now()), Err(PkiError::Parse(_))));
    }

    #[test]
    fn a_forged_issuer_name_does_not_verify() {
        // stranger.der re-signed? We cannot forge without a key: flip a byte of the signature instead.
        let mut c = data("swan-ca.der");
        let n = c.len() - 5;
        c[n] ^= 0x55;
        assert!(matches!(
            tp(RevocationCheck::None).validate(&[&c], now()),
            Err(PkiError::BadSignature(_))
        ));
    }

    #[test]
    fn validity_dates_are_checked_against_now() {
        let t = tp(RevocationCheck::None);
        let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(2_200_000_000); // 2039
        for when in [before, after] {
            assert!(matches!(
                t.validate(&[&data("swan-ca.der")], when),
                Err(PkiError::Expired(_))
            ));
        }
    }

    #[test]
    fn a_non_ca_certificate_cannot_be_a_trustpoint_or_issuer() {
        assert!(matches!(
            Trustpoint::new("X", &data("swan-ca.der"), RevocationCheck::None),
            Err(PkiError::NotCa(_))
        ));
        // The self-signed v3 test certificate has basicConstraints CA:TRUE (OpenSSL's default for req -x509).
        assert!(Trustpoint::new("S", &data("cert1000.der"), RevocationCheck::None).is_ok());
    }

    #[test]
    fn crl_revokes_and_policy_decides_without_one() {
        // revocation-check crl: no CRL yet -> refused.
        let mut t = tp(RevocationCheck::Crl);
        assert_eq!(
            t.validate(&[&data("swan-ca.der")], now()),
            Err(PkiError::CrlUnavailable("CA".into()))
        );
        assert!(t.set_crl(&data("ca-empty.crl.der"), now()).unwrap());
        assert!(
            !t.set_crl(&data("ca-empty.crl.der"), now()).unwrap(),
            "unchanged"
        );
        t.validate(&[&data("swan-revoked.der")], now()).unwrap();
        assert!(t.set_crl(&data("ca.crl.der"), now()).unwrap());
        let e = t.validate(&[&data("swan-revoked.der")], now()).unwrap_err();
        assert!(
            matches!(e, PkiError::Revoked { ref subject, .. } if subject.contains("revoked.lifeline.test")),
            "{e}"
        );
        t.validate(&[&data("swan-ca.der")], now()).unwrap();
        let serial = t.validate(&[&data("swan-ca.der")], now()).unwrap().serial;
        assert!(!t.is_revoked(&serial));
        // revocation-check crl none: no CRL -> accepted; with the CRL -> refused.
        let mut t = tp(RevocationCheck::CrlOrNone);
        t.validate(&[&data("swan-revoked.der")], now()).unwrap();
        t.set_crl(&data("ca.crl.der"), now()).unwrap();
        assert!(t.validate(&[&data("swan-revoked.der")], now()).is_err());
        // revocation-check none: the CRL is ignored.
        let mut t = tp(RevocationCheck::None);
        t.set_crl(&data("ca.crl.der"), now()).unwrap();
        t.validate(&[&data("swan-revoked.der")], now()).unwrap();
    }

    #[test]
    fn crl_of_another_issuer_or_tampered_is_refused() {
        let mut other = Trustpoint::new("O", &data("other-ca.der"), RevocationCheck::Crl).unwrap();
        assert!(matches!(
            other.set_crl(&data("ca.crl.der"), now()),
            Err(PkiError::UnknownIssuer(_))
        ));
        let mut bad = data("ca.crl.der");
        let n = bad.len() - 3;
        bad[n] ^= 1;
        assert!(matches!(
            tp(RevocationCheck::Crl).set_crl(&bad, now()),
            Err(PkiError::BadSignature(_))
        ));
        assert!(matches!(
            tp(RevocationCheck::Crl).set_crl(b"\x30\x03\x02\x01\x00", now()),
            Err(PkiError::Parse(_))
        ));
        // Before its thisUpdate.
        let early = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(matches!(
            tp(RevocationCheck::Crl).set_crl(&data("ca.crl.der"), early),
            Err(PkiError::Expired(_))
        ));
    }

    #[test]
    fn certificate_maps_match_subject_and_issuer_like_ios() {
        let swan = data("swan-ca.der");
        let m = |lines: &[&str]| CertificateMap {
            name: "M".into(),
            entries: vec![(
                10,
                lines.iter().map(|l| MapRule::parse(l).unwrap()).collect(),
            )],
        };
        assert!(m(&["issuer-name co cn = lifeline test ca"]).matches(&swan));
        assert!(m(&["issuer-name eq o = Lifeline Test, cn = Lifeline Test CA"]).matches(&swan));
        assert!(m(&["issuer-name eq CN=Lifeline Test CA,O=Lifeline Test"]).matches(&swan));
        assert!(m(&["subject-name co swan", "issuer-name co lifeline"]).matches(&swan));
        assert!(!m(&["subject-name co swan", "issuer-name co orange"]).matches(&swan));
        assert!(m(&["subject-name nc orange"]).matches(&swan));
        assert!(!m(&["subject-name nc swan"]).matches(&swan));
        assert!(m(&["subject-name ne cn=other"]).matches(&swan));
        assert!(!m(&["subject-name eq cn=swan"]).matches(&swan));
        // A second entry can match where the first does not.
        let mut two = m(&["subject-name co orange"]);
        two.entries.push((
            20,
            vec![MapRule::parse("subject-name co swan.lifeline").unwrap()],
        ));
        assert!(two.matches(&swan));
        assert!(!two.matches(b"junk"));
        assert_eq!(MapRule::parse("alt-subject-name co x"), None);
        assert_eq!(MapRule::parse("subject-name lt x"), None);
        assert_eq!(MapRule::parse("subject-name co "), None);
    }
}

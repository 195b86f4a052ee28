//! `crypto pki trustpoint`: the appliance's RSA key pairs and certificates.
//!
//! IOS creates a self-signed certificate with the interactive `crypto pki enroll NAME`; Lifeline does the
//! same for every trustpoint with `enrollment selfsigned` when it starts (or on `lifeline pki enroll`), if
//! the state directory does not already hold them, and reuses them afterwards so the certificate (and its
//! SDP fingerprint) stays stable across restarts:
//!
//! - `STATE_DIR/pki/LABEL.key`: the key pair of `rsakeypair LABEL [SIZE]` (default label: the trustpoint's
//!   name; default size 2048 bits), PKCS#8 DER, mode 0600 in a 0700 directory;
//! - `STATE_DIR/pki/TRUSTPOINT.crt`: the trustpoint's certificate, DER (`openssl x509 -inform der`).
//!
//! A trustpoint with another enrollment (`terminal`, `url`) is used when the operator placed both files
//! there. Key material is never logged or shown; only certificate fingerprints are.
//!
//! Trust in a peer's certificate outside VPN-SIP (where the SDP fingerprint decides):
//!
//! - **CA trustpoint** (IOS `crypto pki authenticate NAME`, here `lifeline pki authenticate NAME FILE`):
//!   the CA certificate is kept as `STATE_DIR/pki/NAME.ca.crt` (DER or PEM). A verify trustpoint with a CA
//!   accepts peer certificates that chain to it, valid at the wall clock, checked against the CA's CRL per
//!   `revocation-check` (IOS default `crl`: a current CRL is required; `crl none`: used when present;
//!   `none`: never). The CRL is `STATE_DIR/pki/NAME.crl` (DER or PEM; no HTTP/LDAP fetching: place it
//!   there, e.g. from cron). A trustpoint's `fingerprint` is then the CA certificate's, as in IOS, and a CA
//!   file that does not match it is refused. `match certificate MAP` in the IKEv2 profile applies
//!   `crypto pki certificate map MAP` to the peer's certificate.
//! - **Pinned peer** (no CA file): a verify trustpoint's `fingerprint HEX` pins the peer certificate with
//!   that SHA-1, which for a self-signed peer is the peer's own certificate.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::ios;

/// Where `lifeline run` keeps generated keys and certificates unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/lifeline";

/// Default modulus of a generated key pair (`rsakeypair LABEL` without a size; IOS XE's default).
pub const DEFAULT_KEY_BITS: usize = 2048;

/// One trustpoint's credential.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub trustpoint: String,
    pub key_label: String,
    pub key_bits: usize,
    pub credential: ike::RsaCredential,
    /// True when this start generated it (else it was loaded).
    pub generated: bool,
    pub cert_path: PathBuf,
}

/// A trustpoint's CA certificate (and CRL), as `crypto pki authenticate` left them.
#[derive(Debug, Clone)]
pub struct CaCert {
    pub der: Vec<u8>,
    pub path: PathBuf,
    /// `NAME.crl` when present.
    pub crl: Option<Vec<u8>>,
    pub crl_path: PathBuf,
}

/// The credentials of every trustpoint that has one, and the CA certificates of CA trustpoints.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub trustpoints: BTreeMap<String, Enrolled>,
    pub cas: BTreeMap<String, CaCert>,
}

impl Store {
    pub fn get(&self, trustpoint: &str) -> Option<&Enrolled> {
        self.trustpoints.get(trustpoint)
    }
}

/// `rsakeypair LABEL [SIZE ...]` -> (label, bits).
fn key_spec(tp: &config::Trustpoint) -> anyhow::Result<(String, usize)> {
    let mut words = tp.rsakeypair.as_deref().unwrap_or("").split_whitespace();
    let label = words.next().unwrap_or(&tp.name).to_string();
    let bits = match words.next() {
        Some(w) => w
            .parse::<usize>()
            .ok()
            .filter(|b| (1024..=4096).contains(b) && b % 8 == 0)
            .with_context(|| format!("rsakeypair {label}: key size {w} is not 1024..4096"))?,
        None => DEFAULT_KEY_BITS,
    };
    if label.is_empty()
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || label.starts_with('.')
    {
        bail!("rsakeypair label {label:?}: use letters, digits, '-', '_' and '.' only");
    }
    Ok((label, bits))
}

/// The subject of a self-signed certificate: `subject-name` as written, else `CN=<hostname>`.
fn subject(cfg: &config::Config, tp: &config::Trustpoint) -> anyhow::Result<x509_cert::name::Name> {
    let text = match &tp.subject_name {
        Some(s) => s.clone(),
        None => format!(
            "CN={}",
            cfg.hostname.clone().unwrap_or_else(|| "lifeline".into())
        ),
    };
    x509_cert::name::Name::from_str(&text)
        .map_err(|e| anyhow::anyhow!("trustpoint {}: subject-name {text}: {e}", tp.name))
}

/// Trustpoints the appliance needs a credential for: `enrollment selfsigned` ones, and any named by an
/// IKEv2 profile with `authentication local rsa-sig`.
fn wanted(cfg: &config::Config) -> Vec<&config::Trustpoint> {
    cfg.pki
        .trustpoints
        .iter()
        .filter(|tp| {
            tp.enrollment == Some(config::Enrollment::SelfSigned)
                || cfg.ikev2.profiles.iter().any(|p| {
                    signs_with_rsa(p)
                        && p.pki_trustpoints
                            .iter()
                            .any(|(n, u)| *n == tp.name && u.as_deref().is_none_or(|u| u == "sign"))
                })
        })
        .collect()
}

fn signs_with_rsa(p: &config::Ikev2Profile) -> bool {
    p.authentication_local
        .iter()
        .any(|m| matches!(m, config::AuthMethod::RsaSig))
}

fn verifies_rsa(p: &config::Ikev2Profile) -> bool {
    p.authentication_remote
        .iter()
        .any(|m| matches!(m, config::AuthMethod::RsaSig))
}

/// DER from a file holding DER or PEM (any label).
fn read_der_or_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let (_, der) = pem_rfc7468::decode_vec(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not PEM: {e}", path.display()))?;
        Ok(der)
    } else {
        Ok(bytes)
    }
}

/// Where `crypto pki authenticate NAME` keeps the CA certificate and its CRL.
pub fn ca_paths(state_dir: &Path, trustpoint: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = state_dir.join("pki");
    let name = file_safe(trustpoint)?;
    Ok((
        dir.join(format!("{name}.ca.crt")),
        dir.join(format!("{name}.crl")),
    ))
}

/// The CA certificates (and CRLs) of the configured trustpoints present in the state directory. A CA that
/// does not match the trustpoint's `fingerprint` is an error (IOS refuses it at `crypto pki authenticate`).
fn load_cas(cfg: &config::Config, state_dir: &Path) -> anyhow::Result<BTreeMap<String, CaCert>> {
    let mut cas = BTreeMap::new();
    for tp in &cfg.pki.trustpoints {
        let (path, crl_path) = ca_paths(state_dir, &tp.name)?;
        if !path.exists() {
            continue;
        }
        let der = read_der_or_pem(&path)?;
        check_ca_fingerprint(tp, &der)?;
        let crl = if crl_path.exists() {
            Some(read_der_or_pem(&crl_path)?)
        } else {
            None
        };
        ios!(
            PKI,
            Informational,
            CA_LOADED,
            "trustpoint {}: CA certificate {} loaded, fingerprint SHA1 {}{}",
            tp.name,
            path.display(),
            ios_fingerprint(&ike::Fingerprint::of_cert(&der)),
            if crl.is_some() { ", with CRL" } else { "" }
        );
        cas.insert(
            tp.name.clone(),
            CaCert {
                der,
                path,
                crl,
                crl_path,
            },
        );
    }
    Ok(cas)
}

/// With a CA certificate, a trustpoint's `fingerprint` is the CA's (IOS).
fn check_ca_fingerprint(tp: &config::Trustpoint, der: &[u8]) -> anyhow::Result<()> {
    let Some(f) = &tp.fingerprint else {
        return Ok(());
    };
    let want = parse_fingerprint(f).with_context(|| {
        format!(
            "trustpoint {}: fingerprint {f} is not a SHA-1 (40 hex digits)",
            tp.name
        )
    })?;
    let got = ike::Fingerprint::of_cert(der);
    if got != want {
        bail!(
            "trustpoint {}: the CA certificate's fingerprint {} is not the configured {}",
            tp.name,
            ios_fingerprint(&got),
            ios_fingerprint(&want)
        );
    }
    Ok(())
}

/// `lifeline pki authenticate NAME FILE` (IOS `crypto pki authenticate NAME`): checks that FILE is a CA
/// certificate (and that it matches the trustpoint's `fingerprint`, when one is configured) and keeps it in
/// the state directory. Returns its path and SHA-1 fingerprint.
pub fn authenticate(
    cfg: &config::Config,
    state_dir: &Path,
    trustpoint: &str,
    file: &Path,
) -> anyhow::Result<(PathBuf, ike::Fingerprint)> {
    let tp = cfg
        .pki
        .trustpoints
        .iter()
        .find(|t| t.name == trustpoint)
        .with_context(|| format!("crypto pki trustpoint {trustpoint} is not configured"))?;
    let der = read_der_or_pem(file)?;
    ike::pki::Trustpoint::new(trustpoint, &der, ike::pki::RevocationCheck::None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    check_ca_fingerprint(tp, &der)?;
    let (path, _) = ca_paths(state_dir, trustpoint)?;
    let dir = state_dir.join("pki");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&path, &der, 0o644)?;
    Ok((path, ike::Fingerprint::of_cert(&der)))
}

/// `revocation-check` words as the IKE library's policy (IOS default: `crl`).
pub fn revocation(tp: &config::Trustpoint) -> ike::pki::RevocationCheck {
    let w: Vec<&str> = tp.revocation_check.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["none", ..] => ike::pki::RevocationCheck::None,
        [_, "none", ..] => ike::pki::RevocationCheck::CrlOrNone,
        _ => ike::pki::RevocationCheck::Crl,
    }
}

/// Load or create the credentials of every trustpoint that needs one, and load the CA certificates of CA
/// trustpoints (see the module comment).
pub fn enroll(cfg: &config::Config, state_dir: &Path) -> anyhow::Result<Store> {
    let mut store = Store {
        cas: load_cas(cfg, state_dir)?,
        ..Store::default()
    };
    let tps = wanted(cfg);
    if tps.is_empty() {
        return Ok(store);
    }
    let dir = state_dir.join("pki");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    for tp in tps {
        let Some(e) = enroll_one(cfg, tp, &dir)? else {
            ios!(
                PKI,
                Informational,
                NO_CERT,
                "trustpoint {}: no key pair in {} (enrollment other than selfsigned: place LABEL.key and {}.crt there)",
                tp.name,
                dir.display(),
                tp.name
            );
            continue;
        };
        let fp = ios_fingerprint(&e.credential.fingerprint());
        if e.generated {
            ios!(
                PKI,
                Notice,
                CERT_ENROLL,
                "trustpoint {}: self-signed certificate {} generated with key pair {} ({} bits), fingerprint SHA1 {fp}",
                e.trustpoint,
                e.cert_path.display(),
                e.key_label,
                e.key_bits
            );
        } else {
            ios!(
                PKI,
                Informational,
                CERT_LOADED,
                "trustpoint {}: certificate {} loaded, key pair {} ({} bits), fingerprint SHA1 {fp}",
                e.trustpoint,
                e.cert_path.display(),
                e.key_label,
                e.key_bits
            );
        }
        store.trustpoints.insert(tp.name.clone(), e);
    }
    Ok(store)
}

fn enroll_one(
    cfg: &config::Config,
    tp: &config::Trustpoint,
    dir: &Path,
) -> anyhow::Result<Option<Enrolled>> {
    let (label, bits) = key_spec(tp)?;
    let key_path = dir.join(format!("{label}.key"));
    let cert_path = dir.join(format!("{}.crt", file_safe(&tp.name)?));
    let self_signed = tp.enrollment == Some(config::Enrollment::SelfSigned);
    let mut generated = false;
    let key = if key_path.exists() {
        read_key(&key_path)?
    } else if self_signed {
        generated = true;
        let key = generate_key(bits)
            .with_context(|| format!("rsakeypair {label}: key generation failed"))?;
        write_key(&key_path, &key)?;
        key
    } else {
        return Ok(None);
    };
    let key_der = pkcs8(&key)?;
    // An existing certificate is reused when it belongs to the key; otherwise a self-signed trustpoint
    // makes a new one (IOS regenerates the self-signed certificate when the key pair changes).
    if let Ok(cert) = std::fs::read(&cert_path)
        && let Ok(c) = ike::RsaCredential::from_der(&key_der, &cert)
    {
        return Ok(Some(Enrolled {
            trustpoint: tp.name.clone(),
            key_label: label,
            key_bits: bits,
            credential: c,
            generated,
            cert_path,
        }));
    }
    if !self_signed {
        bail!(
            "trustpoint {}: no certificate for key pair {label} at {}",
            tp.name,
            cert_path.display()
        );
    }
    let cert = self_signed_cert(&key, subject(cfg, tp)?)?;
    write_atomic(&cert_path, &cert, 0o644)?;
    let credential = ike::RsaCredential::from_der(&key_der, &cert)
        .map_err(|e| anyhow::anyhow!("trustpoint {}: {e}", tp.name))?;
    Ok(Some(Enrolled {
        trustpoint: tp.name.clone(),
        key_label: label,
        key_bits: bits,
        credential,
        generated: true,
        cert_path,
    }))
}

fn file_safe(name: &str) -> anyhow::Result<&str> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("trustpoint name {name:?}: use letters, digits, '-', '_' and '.' only");
    }
    Ok(name)
}

/// The OS generator as a `rand_core` RNG for key generation and the serial number.
struct OsRng;
impl rand_core::TryRng for OsRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        // Same policy as the IKE endpoint's generator: no entropy source at all is not survivable.
        getrandom::fill(dst).expect("the OS random number generator failed");
        Ok(())
    }
}
impl rand_core::TryCryptoRng for OsRng {}

fn generate_key(bits: usize) -> anyhow::Result<rsa::RsaPrivateKey> {
    rsa::RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| anyhow::anyhow!("{e}"))
}

fn pkcs8(key: &rsa::RsaPrivateKey) -> anyhow::Result<zeroizing::Der> {
    use rsa::pkcs8::EncodePrivateKey;
    let doc = key
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("cannot encode the key pair: {e}"))?;
    Ok(zeroizing::Der(doc))
}

mod zeroizing {
    /// PKCS#8 bytes that are wiped on drop (`SecretDocument`).
    pub struct Der(pub rsa::pkcs8::SecretDocument);
    impl std::ops::Deref for Der {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
}

fn read_key(path: &Path) -> anyhow::Result<rsa::RsaPrivateKey> {
    use rsa::pkcs8::DecodePrivateKey;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        ios!(
            PKI,
            Warning,
            KEY_PERMISSIONS,
            "{} was readable by others; restricting it to 0600",
            path.display()
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    rsa::RsaPrivateKey::from_pkcs8_der(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a PKCS#8 RSA key: {e}", path.display()))
}

fn write_key(path: &Path, key: &rsa::RsaPrivateKey) -> anyhow::Result<()> {
    let der = pkcs8(key)?;
    write_atomic(path, &der, 0o600)
}

/// Write `bytes` to `path` through a temporary file created with `mode` (never wider), then rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot create {}", path.display()))
}

/// A self-signed X.509 v3 certificate for `key`: sha256WithRSAEncryption, valid from one hour ago for ten
/// years, a random positive serial, basicConstraints CA (a self-signed certificate is its own CA, as IOS
/// makes it), keyUsage digitalSignature + keyCertSign, subjectKeyIdentifier.
fn self_signed_cert(
    key: &rsa::RsaPrivateKey,
    subject: x509_cert::name::Name,
) -> anyhow::Result<Vec<u8>> {
    use der::Encode;
    use x509_cert::builder::{Builder, CertificateBuilder};
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_key(&key.to_public_key())
        .map_err(|e| anyhow::anyhow!("public key: {e}"))?;
    let mut serial = [0u8; 9];
    getrandom::fill(&mut serial[1..]).map_err(|e| anyhow::anyhow!("serial number: {e}"))?;
    serial[1] &= 0x7f;
    serial[1] |= 0x40;
    let serial = x509_cert::serial_number::SerialNumber::new(&serial[1..])
        .map_err(|e| anyhow::anyhow!("serial number: {e}"))?;
    let now = std::time::SystemTime::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or(std::time::UNIX_EPOCH);
    let validity = x509_cert::time::Validity::new(
        x509_cert::time::Time::try_from(now).map_err(|e| anyhow::anyhow!("validity: {e}"))?,
        x509_cert::time::Time::try_from(now + Duration::from_secs(10 * 365 * 86400))
            .map_err(|e| anyhow::anyhow!("validity: {e}"))?,
    );
    let builder = CertificateBuilder::new(SelfSigned { subject }, serial, validity, spki)
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
    let cert = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
    cert.to_der()
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))
}

struct SelfSigned {
    subject: x509_cert::name::Name,
}

impl x509_cert::builder::profile::BuilderProfile for SelfSigned {
    fn get_issuer(&self, subject: &x509_cert::name::Name) -> x509_cert::name::Name {
        subject.clone()
    }
    fn get_subject(&self) -> x509_cert::name::Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        use x509_cert::ext::ToExtension;
        use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
        let mut ext = Vec::new();
        ext.push(
            BasicConstraints {
                ca: true,
                path_len_constraint: None,
            }
            .to_extension(tbs.subject(), &ext)?,
        );
        ext.push(
            KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign)
                .to_extension(tbs.subject(), &ext)?,
        );
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        ext.push(ski.to_extension(tbs.subject(), &ext)?);
        Ok(ext)
    }
}

/// A fingerprint the IOS way: `4907CC36 B1957258 5DFE23B2 649E7DDA 99BDB7C3`.
pub fn ios_fingerprint(fp: &ike::Fingerprint) -> String {
    fp.0.chunks(4)
        .map(|c| c.iter().map(|b| format!("{b:02X}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a trustpoint's `fingerprint` (SHA-1: 40 hex digits; spaces and colons ignored).
pub fn parse_fingerprint(s: &str) -> Option<ike::Fingerprint> {
    let hex: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'\t'))
        .collect();
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(ike::Fingerprint(out))
}

/// Applies `authentication local|remote rsa-sig` and `pki trustpoint` of `p` to `profile` (built by the
/// node with PSK defaults). Errors name what is missing.
pub fn apply(
    cfg: &config::Config,
    p: &config::Ikev2Profile,
    profile: &mut ike::Profile,
    store: &Store,
) -> Result<(), String> {
    let usable = |usage: &Option<String>, want: &str| usage.as_deref().is_none_or(|u| u == want);
    if signs_with_rsa(p) {
        let cred = p
            .pki_trustpoints
            .iter()
            .filter(|(_, u)| usable(u, "sign"))
            .find_map(|(n, _)| store.get(n))
            .ok_or_else(|| {
                if p.pki_trustpoints.is_empty() {
                    "authentication local rsa-sig needs `pki trustpoint NAME`".to_string()
                } else {
                    "authentication local rsa-sig: no trustpoint of `pki trustpoint` has a certificate"
                        .to_string()
                }
            })?;
        if p.identity_local == Some(config::Ikev2Identity::Dn) {
            profile.local_id = cred.credential.subject_identity().ok_or_else(|| {
                format!(
                    "identity local dn: the certificate of trustpoint {} has no usable subject",
                    cred.trustpoint
                )
            })?;
        }
        profile.local_auth = ike::LocalAuth::Rsa(Box::new(cred.credential.clone()));
    }
    if verifies_rsa(p) {
        profile.remote_auth = ike::RemoteAuth::RsaSig;
        for (name, usage) in &p.pki_trustpoints {
            if !usable(usage, "verify") {
                continue;
            }
            let Some(tp) = cfg.pki.trustpoints.iter().find(|t| &t.name == name) else {
                return Err(format!("pki trustpoint {name} is not defined"));
            };
            if store.cas.contains_key(name) {
                // A CA trustpoint: certificates that chain to it (its `fingerprint` is the CA's).
                profile.ca_trustpoints.push(name.clone());
            } else if let Some(f) = &tp.fingerprint {
                let fp = parse_fingerprint(f).ok_or_else(|| {
                    format!("trustpoint {name}: fingerprint {f} is not a SHA-1 (40 hex digits)")
                })?;
                profile.trusted_certs.push(fp);
            }
        }
        if let Some(map) = p.match_certificate.first() {
            if !cfg.pki.certificate_maps.iter().any(|m| &m.label == map) {
                return Err(format!(
                    "match certificate {map}: crypto pki certificate map {map} is not defined"
                ));
            }
            profile.certificate_map = Some(map.clone());
        }
        if !profile.vpn_sip && profile.trusted_certs.is_empty() && profile.ca_trustpoints.is_empty()
        {
            return Err(
                "authentication remote rsa-sig: no peer certificate can be trusted (authenticate a CA for \
                 a verify trustpoint with `lifeline pki authenticate`, or add its `fingerprint`)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// CA trustpoints (with their CRLs) and certificate maps into the IKEv2 endpoint, which is told the wall
/// clock `wall` at `now` to check validity dates. Problems with a CRL are logged, not fatal: with
/// `revocation-check crl` the peers of that CA are then refused with the reason.
fn install_cas(
    node: &mut crate::node::Node,
    store: &Store,
    now: std::time::Instant,
    wall: std::time::SystemTime,
) -> Vec<String> {
    let mut problems = Vec::new();
    let cfg = node.config.clone();
    node.ike.set_wall_clock(now, wall);
    for tp in &cfg.pki.trustpoints {
        let Some(ca) = store.cas.get(&tp.name) else {
            continue;
        };
        match ike::pki::Trustpoint::new(&tp.name, &ca.der, revocation(tp)) {
            Ok(t) => node.ike.add_trustpoint(t),
            Err(e) => {
                problems.push(format!(
                    "trustpoint {}: {}: {e}",
                    tp.name,
                    ca.path.display()
                ));
                continue;
            }
        }
        match &ca.crl {
            Some(crl) => {
                if let Err(e) = node.ike.set_crl(now, &tp.name, crl) {
                    ios!(
                        PKI,
                        Warning,
                        CRL_REJECTED,
                        "trustpoint {}: CRL {} not used: {e}",
                        tp.name,
                        ca.crl_path.display()
                    );
                }
            }
            None if revocation(tp) == ike::pki::RevocationCheck::Crl => ios!(
                PKI,
                Warning,
                CRL_UNAVAILABLE,
                "trustpoint {}: revocation-check crl and no CRL at {}: certificates of this CA are refused",
                tp.name,
                ca.crl_path.display()
            ),
            None => {}
        }
    }
    for m in &cfg.pki.certificate_maps {
        let mut rules = Vec::new();
        for r in &m.rules {
            match ike::pki::MapRule::parse(r) {
                Some(rule) => rules.push(rule),
                None => problems.push(format!(
                    "crypto pki certificate map {} {}: rule `{r}` is not `subject-name|issuer-name eq|ne|co|nc VALUE`",
                    m.label, m.seq
                )),
            }
        }
        let entry = (m.seq, rules);
        let mut map = node
            .ike
            .pki()
            .map(&m.label)
            .cloned()
            .unwrap_or(ike::pki::CertificateMap {
                name: m.label.clone(),
                entries: Vec::new(),
            });
        map.entries.push(entry);
        node.ike.add_certificate_map(map);
    }
    problems
}

/// One certificate for `show crypto pki certificates` (None when the DER does not parse).
fn cert_view(
    der: &[u8],
    kind: crate::show::pki::CertKind,
    trustpoint: &str,
) -> Option<crate::show::pki::CertView> {
    use der::Decode;
    let c = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = c.tbs_certificate();
    // IOS lists the RDNs most specific first with lower-case attribute names.
    let rdns = |n: &x509_cert::name::Name| -> Vec<String> {
        n.to_string()
            .split(',')
            .map(|r| match r.split_once('=') {
                Some((k, v)) => format!("{}={v}", k.trim().to_lowercase()),
                None => r.to_string(),
            })
            .collect()
    };
    let v = tbs.validity();
    let (nb, na) = (v.not_before.to_system_time(), v.not_after.to_system_time());
    let mut kind = kind;
    if kind == crate::show::pki::CertKind::Router && tbs.issuer() == tbs.subject() {
        kind = crate::show::pki::CertKind::RouterSelfSigned;
    }
    Some(crate::show::pki::CertView {
        kind,
        trustpoint: trustpoint.to_string(),
        serial_hex: tbs
            .serial_number()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
        issuer: rdns(tbs.issuer()),
        subject: rdns(tbs.subject()),
        not_before: nb,
        not_after: na,
        start_date: crate::show::pki::ios_date(nb),
        end_date: crate::show::pki::ios_date(na),
        fingerprint_sha1: ios_fingerprint(&ike::Fingerprint::of_cert(der)),
    })
}

/// The certificates `show crypto pki certificates` lists: the appliance's own, then the CAs'.
pub fn view(store: &Store) -> Vec<crate::show::pki::CertView> {
    let own = store.trustpoints.values().filter_map(|e| {
        cert_view(
            e.credential.cert_der(),
            crate::show::pki::CertKind::Router,
            &e.trustpoint,
        )
    });
    let cas = store
        .cas
        .iter()
        .filter_map(|(n, ca)| cert_view(&ca.der, crate::show::pki::CertKind::Ca, n));
    own.chain(cas).collect()
}

/// Profiles that use certificates, rebuilt with the credentials (`Node::new` built them for PSK), after
/// the CA trustpoints they may name.
pub fn install(
    node: &mut crate::node::Node,
    store: &Store,
    now: std::time::Instant,
    wall: std::time::SystemTime,
) -> Vec<String> {
    let mut problems = install_cas(node, store, now, wall);
    node.pki_view = view(store);
    let cfg = node.config.clone();
    for p in cfg
        .ikev2
        .profiles
        .iter()
        .filter(|p| signs_with_rsa(p) || verifies_rsa(p))
    {
        let built = crate::node::ike_profile(&cfg, p).and_then(|mut prof| {
            apply(&cfg, p, &mut prof, store)?;
            Ok(prof)
        });
        match built {
            Ok(prof) => node.ike.add_profile(prof),
            Err(e) => problems.push(format!("crypto ikev2 profile {}: {e}", p.name)),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> config::Config {
        let parsed = config::parse(text);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        parsed.config
    }

    const SEED: &str = "\
hostname peer4
crypto pki trustpoint selfCert
 rsakeypair myRSA 1024
 enrollment selfsigned
 revocation-check none
!
crypto ikev2 profile vpn-sip-profile
 match identity remote any
 authentication local rsa-sig
 authentication remote rsa-sig
 pki trustpoint selfCert
 nat force-encap
!
";

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifeline-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn selfsigned_is_generated_once_with_a_private_key_file_and_reused() {
        let c = cfg(SEED);
        let dir = tmp("once");
        let a = enroll(&c, &dir).unwrap();
        let e = a.get("selfCert").unwrap();
        assert!(e.generated);
        assert_eq!((e.key_label.as_str(), e.key_bits), ("myRSA", 1024));
        let key = dir.join("pki/myRSA.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.join("pki"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // The certificate is self-signed with the configured subject and CN from the hostname.
        let der = std::fs::read(dir.join("pki/selfCert.crt")).unwrap();
        assert_eq!(
            ike::auth::cert_subject(&der),
            ike::auth::cert_subject(e.credential.cert_der())
        );
        let subject = format!(
            "{}",
            {
                use der::Decode;
                x509_cert::Certificate::from_der(&der).unwrap()
            }
            .tbs_certificate()
            .subject()
        );
        assert_eq!(subject, "CN=peer4");
        // Second start: same certificate, nothing generated.
        let b = enroll(&c, &dir).unwrap();
        let f = b.get("selfCert").unwrap();
        assert!(!f.generated);
        assert_eq!(f.credential.fingerprint(), e.credential.fingerprint());
        // A key made readable by others is restricted again.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        enroll(&c, &dir).unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The key is never in the credential's Debug output.
        assert!(!format!("{:?}", b).contains("PRIVATE"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lost_certificate_is_remade_for_the_same_key_and_a_foreign_one_is_refused() {
        let c = cfg(SEED);
        let dir = tmp("remake");
        let a = enroll(&c, &dir).unwrap();
        std::fs::remove_file(dir.join("pki/selfCert.crt")).unwrap();
        let b = enroll(&c, &dir).unwrap();
        let (ea, eb) = (a.get("selfCert").unwrap(), b.get("selfCert").unwrap());
        assert_ne!(ea.credential.fingerprint(), eb.credential.fingerprint());
        assert_eq!(
            ike::auth::cert_public_key(ea.credential.cert_der()).unwrap(),
            ike::auth::cert_public_key(eb.credential.cert_der()).unwrap()
        );
        // A terminal-enrolled trustpoint without files has no credential, and a profile signing with it
        // is refused with the reason.
        let t = cfg(
            "crypto pki trustpoint T\n enrollment terminal\n rsakeypair K\n!\n\
                     crypto ikev2 profile P\n authentication local rsa-sig\n pki trustpoint T\n!\n",
        );
        let store = enroll(&t, &dir).unwrap();
        assert!(store.get("T").is_none());
        let mut prof = ike::Profile::psk("P", ike::Identity::key_id("1"), Default::default());
        let err = apply(&t, &t.ikev2.profiles[0], &mut prof, &store).unwrap_err();
        assert!(err.contains("no trustpoint"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn profiles_sign_with_the_trustpoint_and_pin_verify_fingerprints() {
        let c = cfg(&format!(
            "{SEED}crypto pki trustpoint peer\n enrollment terminal\n fingerprint 4907CC36 B1957258 \
             5DFE23B2 649E7DDA 99BDB7C3\n!\ncrypto ikev2 profile svti\n identity local fqdn a.example\n \
             authentication local rsa-sig\n authentication remote rsa-sig\n pki trustpoint selfCert sign\n \
             pki trustpoint peer verify\n!\n"
        ));
        let dir = tmp("apply");
        let store = enroll(&c, &dir).unwrap();
        let p = c.ikev2.profiles.iter().find(|p| p.name == "svti").unwrap();
        let mut prof = ike::Profile::psk(
            "svti",
            ike::Identity::Fqdn("a.example".into()),
            Default::default(),
        );
        apply(&c, p, &mut prof, &store).unwrap();
        assert!(matches!(prof.local_auth, ike::LocalAuth::Rsa(_)));
        assert_eq!(prof.remote_auth, ike::RemoteAuth::RsaSig);
        assert_eq!(
            prof.trusted_certs,
            vec![parse_fingerprint("4907CC36B19572585DFE23B2649E7DDA99BDB7C3").unwrap()]
        );
        // Without a pin and outside VPN-SIP nothing could be trusted: refused with the reason.
        let q = c
            .ikev2
            .profiles
            .iter()
            .find(|p| p.name == "vpn-sip-profile")
            .unwrap();
        let mut prof = ike::Profile::psk("x", ike::Identity::key_id("1"), Default::default());
        let err = apply(&c, q, &mut prof, &store).unwrap_err();
        assert!(err.contains("fingerprint"), "{err}");
        prof.vpn_sip = true;
        prof.trusted_certs.clear();
        apply(&c, q, &mut prof, &store).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn test_pki(file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("ike/tests/data")
            .join(file)
    }

    #[test]
    fn a_ca_trustpoint_is_authenticated_checked_against_its_fingerprint_and_used_to_verify() {
        let ca_fp = ios_fingerprint(&ike::Fingerprint::of_cert(
            &std::fs::read(test_pki("ca.der")).unwrap(),
        ));
        let text = |fp: &str| {
            format!(
                "crypto pki trustpoint CA\n enrollment url http://192.0.2.9/\n revocation-check crl\n                  rsakeypair peer2\n{fp}!\ncrypto pki certificate map data 1\n issuer-name co cn = lifeline test ca\n!\n\
                 crypto ikev2 profile P\n identity local dn\n authentication local rsa-sig\n                  authentication remote rsa-sig\n pki trustpoint CA\n match certificate data\n!\n"
            )
        };
        let dir = tmp("ca");
        // A wrong `fingerprint` refuses the CA, as `crypto pki authenticate` does.
        let wrong = cfg(&text(
            " fingerprint 4907CC36 B1957258 5DFE23B2 649E7DDA 99BDB7C3\n",
        ));
        let err = authenticate(&wrong, &dir, "CA", &test_pki("ca.der")).unwrap_err();
        assert!(err.to_string().contains("is not the configured"), "{err}");
        // A certificate that is not a CA is refused.
        let c = cfg(&text(&format!(" fingerprint {ca_fp}\n")));
        let err = authenticate(&c, &dir, "CA", &test_pki("swan-ca.der")).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
        // The right one is kept (PEM accepted too) and loaded with the CRL placed beside it.
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            pem_b64(&std::fs::read(test_pki("ca.der")).unwrap())
        );
        let pem_path = dir.join("ca.pem");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&pem_path, pem).unwrap();
        let (kept, fp) = authenticate(&c, &dir, "CA", &pem_path).unwrap();
        assert_eq!(ios_fingerprint(&fp), ca_fp);
        assert_eq!(kept, dir.join("pki/CA.ca.crt"));
        std::fs::copy(test_pki("ca.crl.der"), dir.join("pki/CA.crl")).unwrap();
        // Our own certificate, issued by that CA, placed as for `enrollment terminal|url`.
        std::fs::copy(test_pki("lifeline-ca.pk8.der"), dir.join("pki/peer2.key")).unwrap();
        std::fs::copy(test_pki("lifeline-ca.der"), dir.join("pki/CA.crt")).unwrap();
        let store = enroll(&c, &dir).unwrap();
        assert!(store.cas["CA"].crl.is_some());
        let mut prof = ike::Profile::psk("P", ike::Identity::key_id("1"), Default::default());
        apply(&c, &c.ikev2.profiles[0], &mut prof, &store).unwrap();
        assert_eq!(prof.ca_trustpoints, vec!["CA".to_string()]);
        assert!(
            prof.trusted_certs.is_empty(),
            "the fingerprint is the CA's, not a pin"
        );
        assert_eq!(prof.certificate_map.as_deref(), Some("data"));
        // `identity local dn`: the subject of our certificate.
        assert!(
            matches!(&prof.local_id, ike::Identity::Dn(d) if d.len() > 20),
            "{:?}",
            prof.local_id
        );
        assert_eq!(
            revocation(&c.pki.trustpoints[0]),
            ike::pki::RevocationCheck::Crl
        );
        // show crypto pki certificates: ours (issued by the CA), then the CA's.
        let v = view(&store);
        let out = crate::show::pki::certificates(&v, std::time::SystemTime::now());
        assert!(
            out.starts_with("Certificate\n  Status: Available\n"),
            "{out}"
        );
        assert!(
            out.contains("CA Certificate\n  Status: Available\n"),
            "{out}"
        );
        assert!(
            out.contains("    cn=Lifeline Test CA\n    o=Lifeline Test\n"),
            "{out}"
        );
        assert!(out.contains("  Associated Trustpoints: CA \n"), "{out}");
        assert!(!out.contains("PRIVATE"));
        let tps = crate::show::pki::trustpoints(&["CA".to_string()], &v);
        assert!(
            tps.contains("Trustpoint CA:\n    Subject Name: \n    cn=Lifeline Test CA\n"),
            "{tps}"
        );
        assert!(tps.contains("Certificate configured."), "{tps}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Base64 with 64-column lines, for writing a PEM fixture.
    fn pem_b64(der: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for ch in der.chunks(3) {
            let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= ch.len() {
                    s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s.as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn fingerprints_print_and_parse_the_ios_way() {
        let fp = parse_fingerprint("49:07:cc:36:b1:95:72:58:5d:fe:23:b2:64:9e:7d:da:99:bd:b7:c3")
            .unwrap();
        assert_eq!(
            ios_fingerprint(&fp),
            "4907CC36 B1957258 5DFE23B2 649E7DDA 99BDB7C3"
        );
        assert!(parse_fingerprint("4907CC36").is_none());
        assert!(parse_fingerprint(&"zz".repeat(20)).is_none());
    }
}

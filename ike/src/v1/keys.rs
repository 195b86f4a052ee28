//! IKEv1 key derivation (RFC 2409 §5, §5.5, Appendix B) and the exchange hashes.
//!
//! Pure functions over byte strings; the endpoint feeds them the `_b` bodies (payload bodies without
//! the generic header) exactly as sent.

use crate::crypto::{EncrAlg, PrfAlg, Secret};

/// The negotiated hash (ISAKMP attribute class 2). The PRF is its HMAC (RFC 2409 §4: "the HMAC version
/// of the negotiated hash algorithm is used as a pseudo-random function").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA (attribute value 2).
    Sha1,
    /// SHA2-256 (4).
    Sha256,
    /// SHA2-384 (5).
    Sha384,
    /// SHA2-512 (6).
    Sha512,
}

impl HashAlg {
    /// ISAKMP attribute value.
    pub fn value(self) -> u16 {
        match self {
            HashAlg::Sha1 => 2,
            HashAlg::Sha256 => 4,
            HashAlg::Sha384 => 5,
            HashAlg::Sha512 => 6,
        }
    }
    /// From an ISAKMP attribute value (MD5 = 1 and Tiger = 3 are not supported here).
    pub fn from_value(v: u64) -> Option<Self> {
        Some(match v {
            2 => HashAlg::Sha1,
            4 => HashAlg::Sha256,
            5 => HashAlg::Sha384,
            6 => HashAlg::Sha512,
            _ => return None,
        })
    }
    /// The HMAC PRF.
    pub fn prf(self) -> PrfAlg {
        match self {
            HashAlg::Sha1 => PrfAlg::HmacSha1,
            HashAlg::Sha256 => PrfAlg::HmacSha256,
            HashAlg::Sha384 => PrfAlg::HmacSha384,
            HashAlg::Sha512 => PrfAlg::HmacSha512,
        }
    }
    /// Plain hash over the concatenation of `parts`.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        use sha2::Digest;
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<sha1::Sha1>(parts),
            HashAlg::Sha256 => run::<sha2::Sha256>(parts),
            HashAlg::Sha384 => run::<sha2::Sha384>(parts),
            HashAlg::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
    /// IOS name (`show crypto isakmp sa detail`: `sha`, `sha256`, ...).
    pub fn ios_name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5
//# For pre-shared keys:       SKEYID = prf(pre-shared-key, Ni_b | Nr_b)
/// SKEYID for pre-shared key authentication.
pub fn skeyid_psk(prf: PrfAlg, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Secret {
    prf.prf(psk, &[ni_b, nr_b])
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5
//# For signatures:            SKEYID = prf(Ni_b | Nr_b, g^xy)
/// SKEYID for signature authentication.
pub fn skeyid_sig(prf: PrfAlg, ni_b: &[u8], nr_b: &[u8], gxy: &[u8]) -> Secret {
    let mut k = ni_b.to_vec();
    k.extend_from_slice(nr_b);
    let s = prf.prf(&k, &[gxy]);
    zeroize::Zeroize::zeroize(&mut k);
    s
}

/// The phase-1 keying material.
#[derive(Debug, Clone)]
pub struct Phase1Keys {
    /// SKEYID.
    pub skeyid: Secret,
    /// SKEYID_d (phase-2 keying).
    pub skeyid_d: Secret,
    /// SKEYID_a (phase-2 and informational hashes).
    pub skeyid_a: Secret,
    /// SKEYID_e.
    pub skeyid_e: Secret,
    /// The cipher key, expanded from SKEYID_e (Appendix B).
    pub enc_key: Secret,
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5
//# SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//# SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//# SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
/// SKEYID_d/a/e and the cipher key.
pub fn phase1_keys(
    prf: PrfAlg,
    skeyid: Secret,
    gxy: &[u8],
    cky_i: u64,
    cky_r: u64,
    encr: EncrAlg,
) -> Phase1Keys {
    let (ci, cr) = (cky_i.to_be_bytes(), cky_r.to_be_bytes());
    let k = skeyid.as_bytes();
    let d = prf.prf(k, &[gxy, &ci, &cr, &[0]]);
    let a = prf.prf(k, &[d.as_bytes(), gxy, &ci, &cr, &[1]]);
    let e = prf.prf(k, &[a.as_bytes(), gxy, &ci, &cr, &[2]]);
    let enc_key = expand_enc_key(prf, e.as_bytes(), encr.key_bits() as usize / 8);
    Phase1Keys {
        skeyid,
        skeyid_d: d,
        skeyid_a: a,
        skeyid_e: e,
        enc_key,
    }
}

//= https://www.rfc-editor.org/rfc/rfc2409#appendix-B
//# Ka = K1 | K2 | K3
//# and
//# K1 = prf(SKEYID_e, 0)
//# K2 = prf(SKEYID_e, K1)
/// The cipher key from SKEYID_e: truncated when long enough, else expanded (K1 = prf(SKEYID_e, 0x00)).
pub fn expand_enc_key(prf: PrfAlg, skeyid_e: &[u8], len: usize) -> Secret {
    if skeyid_e.len() >= len {
        return Secret::from_slice(&skeyid_e[..len]);
    }
    let mut out = Vec::with_capacity(len + prf.out_len());
    let mut k = prf.prf(skeyid_e, &[&[0]]);
    while out.len() < len {
        out.extend_from_slice(k.as_bytes());
        k = prf.prf(skeyid_e, &[k.as_bytes()]);
    }
    out.truncate(len);
    Secret::new(out)
}

// See https://www.rfc-editor.org/rfc/rfc2409#appendix-B
// (paraphrase) IV for the first encrypted message is derived by hashing the DH public values:
//   IV = hash(g^xi | g^xr)
/// Phase-1 IV (cut to the cipher block).
pub fn phase1_iv(hash: HashAlg, gxi: &[u8], gxr: &[u8], block: usize) -> Vec<u8> {
    let mut h = hash.hash(&[gxi, gxr]);
    h.truncate(block);
    h
}

// See https://www.rfc-editor.org/rfc/rfc2409#appendix-B
// (paraphrase) the IV is derived from a hash of the last phase 1 CBC output block and the phase 2 message id
/// IV of a quick mode or informational exchange with message ID `mid`.
pub fn phase2_iv(hash: HashAlg, last_p1_block: &[u8], mid: u32, block: usize) -> Vec<u8> {
    let mut h = hash.hash(&[last_p1_block, &mid.to_be_bytes()]);
    h.truncate(block);
    h
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5
//# HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b )
/// HASH_I.
#[allow(clippy::too_many_arguments)]
pub fn hash_i(
    prf: PrfAlg,
    skeyid: &[u8],
    gxi: &[u8],
    gxr: &[u8],
    cky_i: u64,
    cky_r: u64,
    sai_b: &[u8],
    idii_b: &[u8],
) -> Vec<u8> {
    prf.prf(
        skeyid,
        &[
            gxi,
            gxr,
            &cky_i.to_be_bytes(),
            &cky_r.to_be_bytes(),
            sai_b,
            idii_b,
        ],
    )
    .as_bytes()
    .to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5
//# HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b )
/// HASH_R.
#[allow(clippy::too_many_arguments)]
pub fn hash_r(
    prf: PrfAlg,
    skeyid: &[u8],
    gxi: &[u8],
    gxr: &[u8],
    cky_i: u64,
    cky_r: u64,
    sai_b: &[u8],
    idir_b: &[u8],
) -> Vec<u8> {
    prf.prf(
        skeyid,
        &[
            gxr,
            gxi,
            &cky_r.to_be_bytes(),
            &cky_i.to_be_bytes(),
            sai_b,
            idir_b,
        ],
    )
    .as_bytes()
    .to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5.5
//# HASH(1) is the prf over the message id (M-ID) from the ISAKMP header concatenated with the entire
//# message that follows the hash including all payload headers, but excluding any padding added for
//# encryption.
/// Quick mode HASH(1), and the HASH of informational exchanges (RFC 2409 §5.7): `rest` is everything
/// after the HASH payload.
pub fn qm_hash1(prf: PrfAlg, skeyid_a: &[u8], mid: u32, rest: &[u8]) -> Vec<u8> {
    prf.prf(skeyid_a, &[&mid.to_be_bytes(), rest])
        .as_bytes()
        .to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5.5
//# HASH(2) is identical to HASH(1) except the initiator's nonce-- Ni, minus the payload header-- is
//# added after M-ID but before the complete message.
/// Quick mode HASH(2).
pub fn qm_hash2(prf: PrfAlg, skeyid_a: &[u8], mid: u32, ni_b: &[u8], rest: &[u8]) -> Vec<u8> {
    prf.prf(skeyid_a, &[&mid.to_be_bytes(), ni_b, rest])
        .as_bytes()
        .to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5.5
//# HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
/// Quick mode HASH(3).
pub fn qm_hash3(prf: PrfAlg, skeyid_a: &[u8], mid: u32, ni_b: &[u8], nr_b: &[u8]) -> Vec<u8> {
    prf.prf(skeyid_a, &[&[0], &mid.to_be_bytes(), ni_b, nr_b])
        .as_bytes()
        .to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc2409#section-5.5
//# KEYMAT = prf(SKEYID_d, protocol | SPI | Ni_b | Nr_b).
//# ...
//# KEYMAT = prf(SKEYID_d, g(qm)^xy | protocol | SPI | Ni_b | Nr_b)
//# ...
//# K1 = prf(SKEYID_d, [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
//# K2 = prf(SKEYID_d, K1 | [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
/// Quick mode KEYMAT for the SA with `spi` (the receiver's SPI), `len` bytes (cipher key first, then
/// the integrity key); `gqm` is the PFS shared secret.
#[allow(clippy::too_many_arguments)]
pub fn keymat(
    prf: PrfAlg,
    skeyid_d: &[u8],
    gqm: Option<&[u8]>,
    protocol: u8,
    spi: u32,
    ni_b: &[u8],
    nr_b: &[u8],
    len: usize,
) -> Secret {
    let g = gqm.unwrap_or(&[]);
    let spi = spi.to_be_bytes();
    let mut out = Vec::with_capacity(len + prf.out_len());
    let mut k = Secret::default();
    while out.len() < len {
        k = prf.prf(skeyid_d, &[k.as_bytes(), g, &[protocol], &spi, ni_b, nr_b]);
        out.extend_from_slice(k.as_bytes());
    }
    out.truncate(len);
    Secret::new(out)
}

//= https://www.rfc-editor.org/rfc/rfc3947#section-3.2
//# HASH = HASH(CKY-I | CKY-R | IP | Port)
/// NAT-D hash of one address.
pub fn nat_d(hash: HashAlg, cky_i: u64, cky_r: u64, addr: std::net::SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    hash.hash(&[
        &cky_i.to_be_bytes(),
        &cky_r.to_be_bytes(),
        &ip,
        &addr.port().to_be_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    //! Known answers computed by `ike/src/v1/kdf_kat.py` with Python `cryptography` (OpenSSL HMAC and
    //! hashes), independently of this code.
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const CKY_I: u64 = 0x0102_0304_0506_0708;
    const CKY_R: u64 = 0x1112_1314_1516_1718;

    fn ni() -> Vec<u8> {
        (0u8..20).collect()
    }
    fn nr() -> Vec<u8> {
        (20u8..40).collect()
    }
    fn gxy() -> Vec<u8> {
        vec![0xaa; 32]
    }
    fn gxi() -> Vec<u8> {
        vec![0x11; 32]
    }
    fn gxr() -> Vec<u8> {
        vec![0x22; 32]
    }

    include!("kat_values.rs");

    #[test]
    fn skeyid_psk_and_derivatives_match_python_cryptography() {
        for (hash, exp) in [(HashAlg::Sha1, &SHA1), (HashAlg::Sha256, &SHA256)] {
            let prf = hash.prf();
            let skeyid = skeyid_psk(prf, b"cisco123", &ni(), &nr());
            assert_eq!(skeyid.as_bytes(), h(exp.skeyid_psk), "{hash:?}");
            let k = phase1_keys(prf, skeyid, &gxy(), CKY_I, CKY_R, EncrAlg::AesCbc256);
            assert_eq!(k.skeyid_d.as_bytes(), h(exp.skeyid_d), "{hash:?}");
            assert_eq!(k.skeyid_a.as_bytes(), h(exp.skeyid_a), "{hash:?}");
            assert_eq!(k.skeyid_e.as_bytes(), h(exp.skeyid_e), "{hash:?}");
            assert_eq!(k.enc_key.as_bytes(), h(exp.enc_key_aes256), "{hash:?}");
        }
    }

    #[test]
    fn skeyid_sig_matches_python_cryptography() {
        let s = skeyid_sig(PrfAlg::HmacSha1, &ni(), &nr(), &gxy());
        assert_eq!(s.as_bytes(), h(SHA1.skeyid_sig));
    }

    #[test]
    fn sha1_skeyid_e_is_expanded_for_aes256_per_appendix_b() {
        // 20-byte SKEYID_e, 32-byte key: K1 | K2 cut to 32.
        let e = vec![0x5a; 20];
        let k = expand_enc_key(PrfAlg::HmacSha1, &e, 32);
        let k1 = PrfAlg::HmacSha1.prf(&e, &[&[0]]);
        let k2 = PrfAlg::HmacSha1.prf(&e, &[k1.as_bytes()]);
        assert_eq!(&k.as_bytes()[..20], k1.as_bytes());
        assert_eq!(&k.as_bytes()[20..], &k2.as_bytes()[..12]);
        // Long enough: plain truncation.
        assert_eq!(
            expand_enc_key(PrfAlg::HmacSha1, &e, 16).as_bytes(),
            &e[..16]
        );
    }

    #[test]
    fn phase1_hashes_and_ivs_match_python_cryptography() {
        for (hash, exp) in [(HashAlg::Sha1, &SHA1), (HashAlg::Sha256, &SHA256)] {
            let prf = hash.prf();
            let skeyid = h(exp.skeyid_psk);
            let sai_b = h("0000000100000001");
            let id_b = h("01000000c0000201");
            assert_eq!(
                hash_i(prf, &skeyid, &gxi(), &gxr(), CKY_I, CKY_R, &sai_b, &id_b),
                h(exp.hash_i)
            );
            assert_eq!(
                hash_r(prf, &skeyid, &gxi(), &gxr(), CKY_I, CKY_R, &sai_b, &id_b),
                h(exp.hash_r)
            );
            assert_eq!(phase1_iv(hash, &gxi(), &gxr(), 16), h(exp.iv1));
            assert_eq!(phase2_iv(hash, &[0x33; 16], 0xdead_beef, 16), h(exp.iv2));
        }
    }

    #[test]
    fn quick_mode_hashes_and_keymat_match_python_cryptography() {
        for (hash, exp) in [(HashAlg::Sha1, &SHA1), (HashAlg::Sha256, &SHA256)] {
            let prf = hash.prf();
            let a = h(exp.skeyid_a);
            let d = h(exp.skeyid_d);
            let mid = 0xdead_beef;
            let rest = h("0a000018aabbccdd");
            assert_eq!(qm_hash1(prf, &a, mid, &rest), h(exp.qm_hash1));
            assert_eq!(qm_hash2(prf, &a, mid, &ni(), &rest), h(exp.qm_hash2));
            assert_eq!(qm_hash3(prf, &a, mid, &ni(), &nr()), h(exp.qm_hash3));
            assert_eq!(
                keymat(prf, &d, None, 3, 0xc0ff_ee01, &ni(), &nr(), 52).as_bytes(),
                h(exp.keymat)
            );
            assert_eq!(
                keymat(prf, &d, Some(&[0xbb; 32]), 3, 0xc0ff_ee01, &ni(), &nr(), 52).as_bytes(),
                h(exp.keymat_pfs)
            );
        }
    }

    #[test]
    fn nat_d_matches_python_cryptography() {
        let a: std::net::SocketAddr = "192.0.2.1:500".parse().unwrap();
        assert_eq!(nat_d(HashAlg::Sha1, CKY_I, CKY_R, a), h(SHA1.nat_d));
    }
}

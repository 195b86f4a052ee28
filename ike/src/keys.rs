//! Key derivation (RFC 7296 §2.13, §2.14, §2.17, §2.18).

use crate::crypto::{EncrAlg, IntegAlg, PrfAlg, Secret};

/// The negotiated IKE SA transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    /// Encryption.
    pub encr: EncrAlg,
    /// PRF.
    pub prf: PrfAlg,
    /// Integrity (None for AEAD ciphers).
    pub integ: Option<IntegAlg>,
    /// DH group.
    pub dh: crate::crypto::DhGroup,
}

/// The seven IKE SA keys.
#[derive(Debug, Clone)]
pub struct IkeKeys {
    /// SK_d: derives CHILD_SA keys and the next SKEYSEED.
    pub sk_d: Secret,
    /// SK_ai.
    pub sk_ai: Secret,
    /// SK_ar.
    pub sk_ar: Secret,
    /// SK_ei (with salt for GCM).
    pub sk_ei: Secret,
    /// SK_er.
    pub sk_er: Secret,
    /// SK_pi.
    pub sk_pi: Secret,
    /// SK_pr.
    pub sk_pr: Secret,
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.14
//# SKEYSEED = prf(Ni | Nr, g^ir)
/// SKEYSEED for a new IKE SA.
pub fn skeyseed(prf: PrfAlg, ni: &[u8], nr: &[u8], gir: &[u8]) -> Secret {
    let mut key = Vec::with_capacity(ni.len() + nr.len());
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    let k = Secret::new(key);
    prf.prf(k.as_bytes(), &[gir])
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
//# SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
/// SKEYSEED for a rekeyed IKE SA (`prf_old` is the old SA's PRF).
pub fn skeyseed_rekey(
    prf_old: PrfAlg,
    sk_d_old: &[u8],
    gir_new: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Secret {
    prf_old.prf(sk_d_old, &[gir_new, ni, nr])
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.14
//# {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//#                 = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
/// Derives the seven keys.
pub fn derive_ike_keys(
    suite: &IkeSuite,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let p = suite.prf.out_len();
    let a = suite.integ.map_or(0, IntegAlg::key_len);
    let e = suite.encr.keymat_len();
    let mut seed = Vec::with_capacity(ni.len() + nr.len() + 16);
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    seed.extend_from_slice(&spi_i.to_be_bytes());
    seed.extend_from_slice(&spi_r.to_be_bytes());
    let km = suite
        .prf
        .prf_plus(skeyseed, &seed, p + 2 * a + 2 * e + 2 * p);
    let b = km.as_bytes();
    let mut off = 0;
    let mut take = |n: usize| {
        let s = Secret::from_slice(&b[off..off + n]);
        off += n;
        s
    };
    IkeKeys {
        sk_d: take(p),
        sk_ai: take(a),
        sk_ar: take(a),
        sk_ei: take(e),
        sk_er: take(e),
        sk_pi: take(p),
        sk_pr: take(p),
    }
}

/// CHILD_SA keys in both directions, as seen from the IKE initiator.
#[derive(Debug, Clone)]
pub struct ChildKeymat {
    /// Initiator-to-responder encryption key (with salt for GCM).
    pub encr_i: Secret,
    /// Initiator-to-responder integrity key (empty for AEAD).
    pub integ_i: Secret,
    /// Responder-to-initiator encryption key.
    pub encr_r: Secret,
    /// Responder-to-initiator integrity key.
    pub integ_r: Secret,
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-2.17
//# KEYMAT = prf+(SK_d, Ni | Nr)
//# [...] KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)
//# [...] All keys for SAs carrying data from the initiator to the responder are taken before SAs going
//# from the responder to the initiator. [...] encryption keys MUST be taken from the first bits and the
//# integrity keys MUST be taken from the remaining bits.
/// KEYMAT for a CHILD_SA (`gir` only with PFS).
pub fn child_keymat(
    prf: PrfAlg,
    sk_d: &[u8],
    gir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    encr: EncrAlg,
    integ: Option<IntegAlg>,
) -> ChildKeymat {
    let e = encr.keymat_len();
    let a = integ.map_or(0, IntegAlg::key_len);
    let mut seed = Vec::new();
    if let Some(g) = gir {
        seed.extend_from_slice(g);
    }
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    let seed = Secret::new(seed);
    let km = prf.prf_plus(sk_d, seed.as_bytes(), 2 * (e + a));
    let b = km.as_bytes();
    ChildKeymat {
        encr_i: Secret::from_slice(&b[..e]),
        integ_i: Secret::from_slice(&b[e..e + a]),
        encr_r: Secret::from_slice(&b[e + a..2 * e + a]),
        integ_r: Secret::from_slice(&b[2 * e + a..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DhGroup;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Expected values computed independently by `ike/tools/kdf_kat.py` (Python `cryptography` 48 HMAC,
    /// i.e. OpenSSL), from the same inputs.
    fn kat(prf: PrfAlg, integ: IntegAlg, exp: &[&str; 11]) {
        let ni: Vec<u8> = (0..32).collect();
        let nr: Vec<u8> = (32..64).collect();
        let gir = [0xaa; 32];
        let gir_new = [0xbb; 32];
        let suite = IkeSuite {
            encr: EncrAlg::AesCbc256,
            prf,
            integ: Some(integ),
            dh: DhGroup::Curve25519,
        };
        let ss = skeyseed(prf, &ni, &nr, &gir);
        assert_eq!(ss.as_bytes(), h(exp[0]));
        let k = derive_ike_keys(
            &suite,
            ss.as_bytes(),
            &ni,
            &nr,
            0x0102030405060708,
            0x1112131415161718,
        );
        for (got, want) in [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ]
        .iter()
        .zip(&exp[1..8])
        {
            assert_eq!(got.as_bytes(), h(want));
        }
        let km = child_keymat(
            prf,
            k.sk_d.as_bytes(),
            None,
            &ni,
            &nr,
            EncrAlg::AesGcm16_128,
            None,
        );
        let all = [
            km.encr_i.as_bytes(),
            km.integ_i.as_bytes(),
            km.encr_r.as_bytes(),
            km.integ_r.as_bytes(),
        ]
        .concat();
        assert_eq!(all, h(exp[8]));
        assert_eq!(km.encr_i.len(), 20, "GCM-128 key + 4-byte salt");
        let km = child_keymat(
            prf,
            k.sk_d.as_bytes(),
            Some(&gir_new),
            &ni,
            &nr,
            EncrAlg::AesGcm16_128,
            None,
        );
        let all = [km.encr_i.as_bytes(), km.encr_r.as_bytes()].concat();
        assert_eq!(all, h(exp[9]));
        assert_eq!(
            skeyseed_rekey(prf, k.sk_d.as_bytes(), &gir_new, &ni, &nr).as_bytes(),
            h(exp[10])
        );
    }

    #[test]
    fn key_derivation_matches_independent_hmac_sha256() {
        kat(
            PrfAlg::HmacSha256,
            IntegAlg::HmacSha256_128,
            &[
                "e5e25bf1d8a1d28d8abdd6576e23b6e0d4cf5474849df97169ba32c7c9859121",
                "6f34353460d10aa36e430ec3027673b0885ab8c2958840c020786ca612787bd5",
                "bd7633e6e3c35af266e3754bdc3474f8254aa450ed2c34496ded58b8e22b5953",
                "f198f85a6fd4ef955774d688c17b466f53699d5134c751e616ca8fa019a97836",
                "0c43d5e261c65199f6fe62a2b94e2a8afb3527fbdcbbb71c2b27facb77ef85f7",
                "618df338ed9e4f0b9152c612e23208d4a3cf7c3de0b20dc6b323cfa59065a1cc",
                "81e2d841fe02351843e06509c78604a18d594f9272bd0d901767c2f40d1eeee8",
                "ca62585fca5794a22a69f031d8e63ea42789a47d3bcc2a5d2895b53cd5efb708",
                "b7a08794d901a9b01c5e8692200e281fe82411ab300bef449352212307b0234718190e3522d2f332",
                "ff7d0705ea6f1204f88e79030d9cc86d3edea0dcf7c62f2b41c5533da315b555216c27f5944754e6",
                "e7bec8ac599ab2fe7b56ba12a682a04a5c190d6997e5533f8ff5fc5c0652995a",
            ],
        );
    }

    #[test]
    fn key_derivation_matches_independent_hmac_sha1() {
        kat(
            PrfAlg::HmacSha1,
            IntegAlg::HmacSha1_96,
            &[
                "3e439a5992ae4344d008d91750ceb7b1f7a62314",
                "723ddd64a27d9484733a7c3e88ad4be5133d7d62",
                "c1970dffa830daac764fcc13e3f86193fb3c7d55",
                "afb67b850d3ab4a2c28215ce94d6b0732fcca506",
                "43d6b22f477b7c39bf51ea05ba1b4b2e2d1f81a08942ad6e1b9462f234ce5c4a",
                "1047750c326302d93ec5dccc7a9ff253e7aa9f887ec49ac092428b9028f83afc",
                "f2028ee32437f8e5071bc1633c1e30976c067114",
                "e6cc479cb698290ce9a5278a8635ee5d75dff102",
                "5b0e3fdf3484d93885c21ce57c582eadcbc5e8130d18256af5ee3449f81406fbad7dd4241c2bf6c2",
                "8de77c2310234692fe7a257219616952e335ae5ddd88722b18e56f6d16a44d82b6be1d8a3aa300c0",
                "df70de6d0fedf66f05611e5e53a083b1c677d680",
            ],
        );
    }
}

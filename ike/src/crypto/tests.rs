use super::*;

pub(crate) fn h(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Replays fixed bytes (then zeros), so DH secrets are pinned.
struct Fixed(Vec<u8>);
impl Rng for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        buf[n..].fill(0);
        self.0.drain(..n);
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

#[test]
fn hmac_sha1_matches_rfc2202() {
    // RFC 2202 §3 test cases 1 and 2.
    let p = PrfAlg::HmacSha1;
    assert_eq!(
        p.prf(&[0x0b; 20], &[b"Hi There"]).as_bytes(),
        h("b617318655057264e28bc0b6fb378c8ef146be00")
    );
    assert_eq!(
        p.prf(b"Jefe", &[b"what do ya ", b"want for nothing?"])
            .as_bytes(),
        h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    );
    // HMAC-SHA1-96 is the first 12 bytes.
    assert_eq!(
        IntegAlg::HmacSha1_96.compute(b"Jefe", &[b"what do ya want for nothing?"]),
        h("effcdf6ae5eb2fa2d27416d5")
    );
}

#[test]
fn hmac_sha2_matches_rfc4231() {
    // RFC 4231 §4.2 (test case 1) and §4.3 (test case 2).
    assert_eq!(
        PrfAlg::HmacSha256
            .prf(&[0x0b; 20], &[b"Hi There"])
            .as_bytes(),
        h("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    );
    let d: &[&[u8]] = &[b"what do ya want for nothing?"];
    assert_eq!(
        PrfAlg::HmacSha256.prf(b"Jefe", d).as_bytes(),
        h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    assert_eq!(
        PrfAlg::HmacSha384.prf(b"Jefe", d).as_bytes(),
        h(
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
        )
    );
    assert_eq!(
        PrfAlg::HmacSha512.prf(b"Jefe", d).as_bytes(),
        h(
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        )
    );
    // RFC 4868 truncations.
    assert_eq!(
        IntegAlg::HmacSha256_128.compute(b"Jefe", d),
        h("5bdcc146bf60754e6a042426089575c7")
    );
    assert_eq!(
        IntegAlg::HmacSha384_192.compute(b"Jefe", d),
        h("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47")
    );
    assert_eq!(
        IntegAlg::HmacSha512_256.compute(b"Jefe", d),
        h("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554")
    );
    assert!(IntegAlg::HmacSha256_128.verify(b"Jefe", d, &h("5bdcc146bf60754e6a042426089575c7")));
    assert!(!IntegAlg::HmacSha256_128.verify(b"Jefe", d, &h("5bdcc146bf60754e6a042426089575c8")));
}

#[test]
fn aes_cbc_matches_rfc3602_case1() {
    let key = h("06a9214036b8a15b512e03d534120006");
    let iv = h("3dafba429d9eb430b422da802c9fac41");
    let mut buf = b"Single block msg".to_vec();
    EncrAlg::AesCbc128.cbc_encrypt(&key, &iv, &mut buf).unwrap();
    assert_eq!(buf, h("e353779c1079aeb82708942dbe77181a"));
    EncrAlg::AesCbc128.cbc_decrypt(&key, &iv, &mut buf).unwrap();
    assert_eq!(buf, b"Single block msg");
}

#[test]
fn aes_cbc_matches_rfc3602_case2() {
    let key = h("c286696d887c9aa0611bbb3e2025a45a");
    let iv = h("562e17996d093d28ddb3ba695a2e6f58");
    let mut buf = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    EncrAlg::AesCbc128.cbc_encrypt(&key, &iv, &mut buf).unwrap();
    assert_eq!(
        buf,
        h("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")
    );
}

#[test]
fn aes_gcm_matches_gcm_spec_test_case_3() {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 3 (also checked with Python
    // `cryptography` AESGCM). IKE/ESP layout: keymat = key || salt, nonce = salt || 8-byte IV.
    let key = h("feffe9928665731c6d6a8f9467308308");
    let nonce = h("cafebabefacedbaddecaf888");
    let keymat = [key.as_slice(), &nonce[..4]].concat();
    let mut buf = h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                     1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    );
    let tag = EncrAlg::AesGcm16_128
        .gcm_seal(&keymat, &nonce[4..], &[], &mut buf)
        .unwrap();
    assert_eq!(
        buf,
        h(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
           21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
        )
    );
    assert_eq!(tag, h("4d5c2af327cd64a62cf35abd2ba6fab4"));
    let mut bad = buf.clone();
    bad[0] ^= 1;
    assert_eq!(
        EncrAlg::AesGcm16_128.gcm_open(&keymat, &nonce[4..], &[], &mut bad, &tag),
        Err(CryptoError::Integrity)
    );
    EncrAlg::AesGcm16_128
        .gcm_open(&keymat, &nonce[4..], &[], &mut buf, &tag)
        .unwrap();
    assert_eq!(&buf[..4], &h("d9313225")[..]);
}

#[test]
fn aes_gcm_256_matches_gcm_spec_test_case_15() {
    // Test case 15 of the GCM specification (AES-256, same IV/plaintext as case 3/4).
    let key = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    let nonce = h("cafebabefacedbaddecaf888");
    let keymat = [key.as_slice(), &nonce[..4]].concat();
    let mut buf = h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                     1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    );
    let tag = EncrAlg::AesGcm16_256
        .gcm_seal(&keymat, &nonce[4..], &[], &mut buf)
        .unwrap();
    assert_eq!(
        buf,
        h(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
           8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
        )
    );
    assert_eq!(tag, h("b094dac5d93471bdec1a502270e3cc6c"));
}

#[test]
fn ecp256_matches_rfc5903_section_8_1() {
    let i = h("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433");
    let r = h("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53");
    let a = DhGroup::Ecp256.generate(&mut Fixed(i));
    let b = DhGroup::Ecp256.generate(&mut Fixed(r));
    assert_eq!(
        a.public(),
        h(
            "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180
           5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
        )
    );
    assert_eq!(
        b.public(),
        h(
            "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63
           56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
        )
    );
    let s = h("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
    assert_eq!(a.agree(b.public()).unwrap().as_bytes(), s);
    assert_eq!(b.agree(a.public()).unwrap().as_bytes(), s);
}

#[test]
fn ecp384_and_ecp521_agree_and_reject_off_curve_points() {
    for g in [DhGroup::Ecp384, DhGroup::Ecp521] {
        let a = g.generate(&mut Fixed(vec![0x11; 66]));
        let b = g.generate(&mut Fixed(vec![0x01; 66]));
        assert_eq!(a.public().len(), g.public_len());
        assert_eq!(a.agree(b.public()).unwrap(), b.agree(a.public()).unwrap());
        let mut bad = b.public().to_vec();
        bad[3] ^= 0x40;
        assert_eq!(a.agree(&bad), Err(CryptoError::BadPublicValue));
        assert_eq!(a.agree(&bad[1..]), Err(CryptoError::BadPublicValue));
    }
}

#[test]
fn x25519_matches_rfc7748_section_6_1() {
    let a = DhGroup::Curve25519.generate(&mut Fixed(h(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    )));
    let b = DhGroup::Curve25519.generate(&mut Fixed(h(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    )));
    assert_eq!(
        a.public(),
        h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        b.public(),
        h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    );
    let s = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(a.agree(b.public()).unwrap().as_bytes(), s);
    assert_eq!(
        a.agree(&[0u8; 32]),
        Err(CryptoError::BadPublicValue),
        "all-zero shared secret"
    );
}

#[test]
fn modp2048_matches_python_pow() {
    // Expected: SHA-256 of pow(2, x, p) and pow(g^y, x, p) computed with Python's built-in pow()
    // (x = bytes 1..=64, y = bytes 101..=164, p = RFC 3526 group 14).
    let a = DhGroup::Modp2048.generate(&mut Fixed((1..=64).collect()));
    let b = DhGroup::Modp2048.generate(&mut Fixed((101..=164).collect()));
    assert_eq!(
        sha256(a.public()),
        h("5141ed60d422816c251a9a61f4dc090fc6161ec870357a0af29fb84a0bb34e5e")
    );
    let s = a.agree(b.public()).unwrap();
    assert_eq!(
        sha256(s.as_bytes()),
        h("2653ad553ee4f0365eb3fcf8d54978fa2f6f1e7cdfed5b9bee3750cb25c7ca24")
    );
    assert_eq!(s, b.agree(a.public()).unwrap());
    let mut one = vec![0u8; 256];
    one[255] = 1;
    assert_eq!(
        a.agree(&one),
        Err(CryptoError::BadPublicValue),
        "y = 1 is rejected"
    );
}

#[test]
fn prf_plus_concatenates_iterations() {
    let p = PrfAlg::HmacSha1;
    let t1 = p.prf(b"k", &[b"seed", &[1]]);
    let t2 = p.prf(b"k", &[t1.as_bytes(), b"seed", &[2]]);
    let out = p.prf_plus(b"k", b"seed", 30);
    assert_eq!(
        out.as_bytes(),
        [t1.as_bytes(), &t2.as_bytes()[..10]].concat()
    );
}

#[test]
fn secret_debug_prints_length_only() {
    assert_eq!(
        format!("{:?}", Secret::from_slice(b"topsecret")),
        "Secret(9 bytes)"
    );
}

#[test]
fn aes_cbc_192_and_256_match_sp800_38a() {
    // NIST SP 800-38A F.2.3 and F.2.5, first block (also checked with Python `cryptography`).
    let iv = h("000102030405060708090a0b0c0d0e0f");
    for (alg, key, ct) in [
        (
            EncrAlg::AesCbc192,
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            "4f021db243bc633d7178183a9fa071e8",
        ),
        (
            EncrAlg::AesCbc256,
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6",
        ),
    ] {
        let mut buf = h("6bc1bee22e409f96e93d7e117393172a");
        alg.cbc_encrypt(&h(key), &iv, &mut buf).unwrap();
        assert_eq!(buf, h(ct), "{alg:?}");
        alg.cbc_decrypt(&h(key), &iv, &mut buf).unwrap();
        assert_eq!(buf, h("6bc1bee22e409f96e93d7e117393172a"));
    }
    assert_eq!(
        EncrAlg::AesCbc256.cbc_encrypt(&[0; 16], &iv, &mut [0; 16]),
        Err(CryptoError::Malformed),
        "wrong key size"
    );
}

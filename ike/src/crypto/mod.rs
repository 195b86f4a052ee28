//! Transforms: PRF and prf+, integrity, SK-payload ciphers, Diffie-Hellman groups.
//!
//! Small closed enums over RustCrypto; every algorithm maps to and from its IANA transform ID.

use crate::wire::{DhId, EncrId, IntegId, PrfId};
use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Injected randomness (SPIs, nonces, DH secrets, IVs). Tests pin it.
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Secret bytes: zeroized on drop, `Debug` prints only the length.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes.
    pub fn new(v: Vec<u8>) -> Self {
        Self(v)
    }
    /// Copies a slice.
    pub fn from_slice(s: &[u8]) -> Self {
        Self(s.to_vec())
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.ct_eq(other).into()
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Crypto failure (peer data rejected or an integrity check failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's public value is malformed or not on the curve / out of range.
    #[error("invalid DH public value")]
    BadPublicValue,
    /// ICV / tag mismatch.
    #[error("integrity check failed")]
    Integrity,
    /// Ciphertext length or padding malformed.
    #[error("malformed ciphertext")]
    Malformed,
}

macro_rules! hmac_all {
    ($h:ty, $key:expr, $parts:expr) => {{
        // HMAC accepts any key length, so this cannot fail.
        let mut m = match <Hmac<$h> as KeyInit>::new_from_slice($key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        for p in $parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }};
}

/// Pseudorandom functions (RFC 7296 §2.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1 (RFC 2104).
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    HmacSha256,
    /// PRF_HMAC_SHA2_384.
    HmacSha384,
    /// PRF_HMAC_SHA2_512.
    HmacSha512,
}

impl PrfAlg {
    /// IANA ID.
    pub fn id(self) -> PrfId {
        match self {
            PrfAlg::HmacSha1 => PrfId::PRF_HMAC_SHA1,
            PrfAlg::HmacSha256 => PrfId::PRF_HMAC_SHA2_256,
            PrfAlg::HmacSha384 => PrfId::PRF_HMAC_SHA2_384,
            PrfAlg::HmacSha512 => PrfId::PRF_HMAC_SHA2_512,
        }
    }
    /// From an IANA ID.
    pub fn from_id(id: PrfId) -> Option<Self> {
        Some(match id {
            PrfId::PRF_HMAC_SHA1 => PrfAlg::HmacSha1,
            PrfId::PRF_HMAC_SHA2_256 => PrfAlg::HmacSha256,
            PrfId::PRF_HMAC_SHA2_384 => PrfAlg::HmacSha384,
            PrfId::PRF_HMAC_SHA2_512 => PrfAlg::HmacSha512,
            _ => return None,
        })
    }
    /// Output length (= preferred key length) in bytes.
    pub fn out_len(self) -> usize {
        match self {
            PrfAlg::HmacSha1 => 20,
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }
    /// `prf(key, parts[0] | parts[1] | ...)`.
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        Secret(match self {
            PrfAlg::HmacSha1 => hmac_all!(sha1::Sha1, key, parts),
            PrfAlg::HmacSha256 => hmac_all!(sha2::Sha256, key, parts),
            PrfAlg::HmacSha384 => hmac_all!(sha2::Sha384, key, parts),
            PrfAlg::HmacSha512 => hmac_all!(sha2::Sha512, key, parts),
        })
    }

    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.13
    //# prf+ (K,S) = T1 | T2 | T3 | T4 | ...
    //# where:
    //# T1 = prf (K, S | 0x01)
    //# T2 = prf (K, T1 | S | 0x02)
    /// prf+(key, seed) truncated to `len` bytes (at most 255 iterations).
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Secret {
        let mut out = Vec::with_capacity(len + self.out_len());
        let mut t = Secret::default();
        let mut i: u8 = 1;
        while out.len() < len {
            t = self.prf(key, &[t.as_bytes(), seed, &[i]]);
            out.extend_from_slice(t.as_bytes());
            if i == 255 {
                break;
            }
            i += 1;
        }
        out.truncate(len);
        Secret(out)
    }
}

/// Integrity algorithms (truncated HMACs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256.
    HmacSha512_256,
}

impl IntegAlg {
    /// IANA ID.
    pub fn id(self) -> IntegId {
        match self {
            IntegAlg::HmacSha1_96 => IntegId::AUTH_HMAC_SHA1_96,
            IntegAlg::HmacSha256_128 => IntegId::AUTH_HMAC_SHA2_256_128,
            IntegAlg::HmacSha384_192 => IntegId::AUTH_HMAC_SHA2_384_192,
            IntegAlg::HmacSha512_256 => IntegId::AUTH_HMAC_SHA2_512_256,
        }
    }
    /// From an IANA ID.
    pub fn from_id(id: IntegId) -> Option<Self> {
        Some(match id {
            IntegId::AUTH_HMAC_SHA1_96 => IntegAlg::HmacSha1_96,
            IntegId::AUTH_HMAC_SHA2_256_128 => IntegAlg::HmacSha256_128,
            IntegId::AUTH_HMAC_SHA2_384_192 => IntegAlg::HmacSha384_192,
            IntegId::AUTH_HMAC_SHA2_512_256 => IntegAlg::HmacSha512_256,
            _ => return None,
        })
    }
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 20,
            IntegAlg::HmacSha256_128 => 32,
            IntegAlg::HmacSha384_192 => 48,
            IntegAlg::HmacSha512_256 => 64,
        }
    }
    /// ICV length in bytes.
    pub fn icv_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 12,
            IntegAlg::HmacSha256_128 => 16,
            IntegAlg::HmacSha384_192 => 24,
            IntegAlg::HmacSha512_256 => 32,
        }
    }
    /// Truncated MAC over `parts`.
    pub fn compute(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut full = match self {
            IntegAlg::HmacSha1_96 => hmac_all!(sha1::Sha1, key, parts),
            IntegAlg::HmacSha256_128 => hmac_all!(sha2::Sha256, key, parts),
            IntegAlg::HmacSha384_192 => hmac_all!(sha2::Sha384, key, parts),
            IntegAlg::HmacSha512_256 => hmac_all!(sha2::Sha512, key, parts),
        };
        full.truncate(self.icv_len());
        full
    }
    /// Constant-time check of `icv`.
    pub fn verify(self, key: &[u8], parts: &[&[u8]], icv: &[u8]) -> bool {
        let c = self.compute(key, parts);
        c.len() == icv.len() && bool::from(c.ct_eq(icv))
    }
}

/// Encryption algorithms for the SK payload (and, as names, for ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// ENCR_AES_CBC, 128-bit key (RFC 3602).
    AesCbc128,
    /// ENCR_AES_CBC, 192-bit key.
    AesCbc192,
    /// ENCR_AES_CBC, 256-bit key.
    AesCbc256,
    /// ENCR_AES_GCM_16, 128-bit key (RFC 4106 / RFC 5282).
    AesGcm16_128,
    /// ENCR_AES_GCM_16, 256-bit key.
    AesGcm16_256,
}

impl EncrAlg {
    /// IANA ID.
    pub fn id(self) -> EncrId {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesCbc192 | EncrAlg::AesCbc256 => EncrId::ENCR_AES_CBC,
            EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => EncrId::ENCR_AES_GCM_16,
        }
    }
    /// Key Length attribute value in bits.
    pub fn key_bits(self) -> u16 {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesGcm16_128 => 128,
            EncrAlg::AesCbc192 => 192,
            EncrAlg::AesCbc256 | EncrAlg::AesGcm16_256 => 256,
        }
    }
    /// From ID and key length.
    pub fn from_id(id: EncrId, key_bits: Option<u16>) -> Option<Self> {
        Some(match (id, key_bits?) {
            (EncrId::ENCR_AES_CBC, 128) => EncrAlg::AesCbc128,
            (EncrId::ENCR_AES_CBC, 192) => EncrAlg::AesCbc192,
            (EncrId::ENCR_AES_CBC, 256) => EncrAlg::AesCbc256,
            (EncrId::ENCR_AES_GCM_16, 128) => EncrAlg::AesGcm16_128,
            (EncrId::ENCR_AES_GCM_16, 256) => EncrAlg::AesGcm16_256,
            _ => return None,
        })
    }
    /// True for combined-mode (AEAD) ciphers: no separate integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(self, EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256)
    }
    /// Keying material length in bytes (for GCM: key plus the 4-byte salt, RFC 5282 §7.1).
    pub fn keymat_len(self) -> usize {
        self.key_bits() as usize / 8 + if self.is_aead() { 4 } else { 0 }
    }
    /// IV length in bytes.
    pub fn iv_len(self) -> usize {
        if self.is_aead() { 8 } else { 16 }
    }
    /// Tag length (AEAD only).
    pub fn tag_len(self) -> usize {
        if self.is_aead() { 16 } else { 0 }
    }
    /// Padding block size.
    pub fn block_len(self) -> usize {
        if self.is_aead() { 1 } else { 16 }
    }

    /// AES-CBC encryption in place (`buf` a multiple of 16 bytes).
    pub fn cbc_encrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
        fn run<C: BlockModeEncrypt>(mut c: C, buf: &mut [u8]) {
            for chunk in buf.chunks_exact_mut(16) {
                let mut b = cbc::cipher::Block::<C>::default();
                b.copy_from_slice(chunk);
                c.encrypt_block(&mut b);
                chunk.copy_from_slice(&b);
            }
        }
        if !buf.len().is_multiple_of(16) {
            return Err(CryptoError::Malformed);
        }
        let e = |_| CryptoError::Malformed;
        match self {
            EncrAlg::AesCbc128 => run(
                cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv).map_err(e)?,
                buf,
            ),
            EncrAlg::AesCbc192 => run(
                cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv).map_err(e)?,
                buf,
            ),
            EncrAlg::AesCbc256 => run(
                cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).map_err(e)?,
                buf,
            ),
            _ => return Err(CryptoError::Malformed),
        }
        Ok(())
    }

    /// AES-CBC decryption in place.
    pub fn cbc_decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
        fn run<C: BlockModeDecrypt>(mut c: C, buf: &mut [u8]) {
            for chunk in buf.chunks_exact_mut(16) {
                let mut b = cbc::cipher::Block::<C>::default();
                b.copy_from_slice(chunk);
                c.decrypt_block(&mut b);
                chunk.copy_from_slice(&b);
            }
        }
        if !buf.len().is_multiple_of(16) {
            return Err(CryptoError::Malformed);
        }
        let e = |_| CryptoError::Malformed;
        match self {
            EncrAlg::AesCbc128 => run(
                cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).map_err(e)?,
                buf,
            ),
            EncrAlg::AesCbc192 => run(
                cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).map_err(e)?,
                buf,
            ),
            EncrAlg::AesCbc256 => run(
                cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).map_err(e)?,
                buf,
            ),
            _ => return Err(CryptoError::Malformed),
        }
        Ok(())
    }

    /// AES-GCM seal in place; `keymat` = key || 4-byte salt; returns the 16-byte tag.
    pub fn gcm_seal(
        self,
        keymat: &[u8],
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<Vec<u8>, CryptoError> {
        use aes_gcm::aead::{AeadInOut, KeyInit as _};
        let (key, nonce) = gcm_parts(self, keymat, iv)?;
        let tag = match self {
            EncrAlg::AesGcm16_128 => aes_gcm::Aes128Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::Malformed)?
                .encrypt_inout_detached(&nonce.into(), aad, buf.into()),
            EncrAlg::AesGcm16_256 => aes_gcm::Aes256Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::Malformed)?
                .encrypt_inout_detached(&nonce.into(), aad, buf.into()),
            _ => return Err(CryptoError::Malformed),
        }
        .map_err(|_| CryptoError::Malformed)?;
        Ok(tag.to_vec())
    }

    /// AES-GCM open in place.
    pub fn gcm_open(
        self,
        keymat: &[u8],
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CryptoError> {
        use aes_gcm::aead::{AeadInOut, KeyInit as _};
        let (key, nonce) = gcm_parts(self, keymat, iv)?;
        let tag: [u8; 16] = tag.try_into().map_err(|_| CryptoError::Malformed)?;
        match self {
            EncrAlg::AesGcm16_128 => aes_gcm::Aes128Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::Malformed)?
                .decrypt_inout_detached(&nonce.into(), aad, buf.into(), &tag.into()),
            EncrAlg::AesGcm16_256 => aes_gcm::Aes256Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::Malformed)?
                .decrypt_inout_detached(&nonce.into(), aad, buf.into(), &tag.into()),
            _ => return Err(CryptoError::Malformed),
        }
        .map_err(|_| CryptoError::Integrity)
    }
}

//= https://www.rfc-editor.org/rfc/rfc5282#section-4
//# The nonce is the concatenation of the salt and the IV
fn gcm_parts<'a>(
    alg: EncrAlg,
    keymat: &'a [u8],
    iv: &[u8],
) -> Result<(&'a [u8], [u8; 12]), CryptoError> {
    if keymat.len() != alg.keymat_len() || iv.len() != 8 {
        return Err(CryptoError::Malformed);
    }
    let (key, salt) = keymat.split_at(keymat.len() - 4);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);
    Ok((key, nonce))
}

/// Diffie-Hellman groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 14: 2048-bit MODP (RFC 3526).
    Modp2048,
    /// Group 19: 256-bit random ECP (RFC 5903).
    Ecp256,
    /// Group 20: 384-bit random ECP.
    Ecp384,
    /// Group 21: 521-bit random ECP.
    Ecp521,
    /// Group 31: Curve25519 (RFC 8031).
    Curve25519,
}

/// RFC 3526 §3 2048-bit MODP prime, as printed by `openssl genpkey -genparam -algorithm DH -pkeyopt group:modp_2048`.
const MODP2048_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/// Bits of private exponent for MODP-2048 (RFC 3526 §8 suggests ≥ 2× the 110-bit strength; we use 512).
const MODP_EXP_BITS: u32 = 512;

impl DhGroup {
    /// All supported groups.
    pub const ALL: [DhGroup; 5] = [
        DhGroup::Modp2048,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];

    /// IANA ID.
    pub fn id(self) -> DhId {
        match self {
            DhGroup::Modp2048 => DhId::MODP_2048,
            DhGroup::Ecp256 => DhId::ECP_256,
            DhGroup::Ecp384 => DhId::ECP_384,
            DhGroup::Ecp521 => DhId::ECP_521,
            DhGroup::Curve25519 => DhId::CURVE25519,
        }
    }
    /// From an IANA ID.
    pub fn from_id(id: DhId) -> Option<Self> {
        DhGroup::ALL.into_iter().find(|g| g.id() == id)
    }
    /// Length of the KE data in bytes.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Ecp521 => 132,
            DhGroup::Curve25519 => 32,
        }
    }

    /// Generates a key pair from injected randomness.
    pub fn generate(self, rng: &mut dyn Rng) -> DhKeyPair {
        let secret = match self {
            DhGroup::Modp2048 => {
                let mut x = Zeroizing::new([0u8; 256]);
                rng.fill(&mut x[256 - MODP_EXP_BITS as usize / 8..]);
                DhSecret::Modp(x)
            }
            DhGroup::Ecp256 => {
                DhSecret::P256(ec_secret(rng, |b| p256::SecretKey::from_slice(b).ok(), 32))
            }
            DhGroup::Ecp384 => {
                DhSecret::P384(ec_secret(rng, |b| p384::SecretKey::from_slice(b).ok(), 48))
            }
            DhGroup::Ecp521 => {
                DhSecret::P521(ec_secret(rng, |b| p521::SecretKey::from_slice(b).ok(), 66))
            }
            DhGroup::Curve25519 => {
                let mut b = Zeroizing::new([0u8; 32]);
                rng.fill(&mut b[..]);
                DhSecret::X25519(x25519_dalek::StaticSecret::from(*b))
            }
        };
        let public = secret.public();
        DhKeyPair {
            group: self,
            secret,
            public,
        }
    }
}

fn ec_secret<K>(rng: &mut dyn Rng, f: impl Fn(&[u8]) -> Option<K>, len: usize) -> K {
    let mut b = Zeroizing::new(vec![0u8; len]);
    loop {
        rng.fill(&mut b);
        if len == 66 {
            // P-521 scalars are 521 bits: keep the top byte to one bit so most draws are in range.
            b[0] &= 1;
        }
        if let Some(k) = f(&b) {
            return k;
        }
    }
}

enum DhSecret {
    Modp(Zeroizing<[u8; 256]>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

type ModpParams = crypto_bigint::modular::FixedMontyParams<{ crypto_bigint::U2048::LIMBS }>;

/// Montgomery parameters of the RFC 3526 prime, computed once.
static MODP_PARAMS: std::sync::LazyLock<ModpParams> = std::sync::LazyLock::new(|| {
    let p = crypto_bigint::U2048::from_be_hex(MODP2048_P);
    // The RFC 3526 prime is odd.
    let odd = crypto_bigint::Odd::new(p).expect("RFC 3526 prime is odd");
    crypto_bigint::modular::FixedMontyParams::new(odd)
});

fn modp_pow(base: &crypto_bigint::U2048, exp: &[u8; 256]) -> Vec<u8> {
    use crypto_bigint::modular::FixedMontyForm;
    let params = &*MODP_PARAMS;
    let e = Zeroizing::new(crypto_bigint::U2048::from_be_slice(exp));
    let r = FixedMontyForm::new(base, params)
        .pow_bounded_exp(&*e, MODP_EXP_BITS)
        .retrieve();
    r.to_be_bytes().to_vec()
}

fn ec_sec1(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(4);
    v.extend_from_slice(data);
    v
}

impl DhSecret {
    fn public(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToSec1Point;
        match self {
            DhSecret::Modp(x) => modp_pow(&crypto_bigint::U2048::from_u8(2), x),
            //= https://www.rfc-editor.org/rfc/rfc5903#section-7
            //# The Diffie-Hellman public value is obtained by concatenating the x and y values.
            DhSecret::P256(k) => k.public_key().to_sec1_point(false).as_bytes()[1..].to_vec(),
            DhSecret::P384(k) => k.public_key().to_sec1_point(false).as_bytes()[1..].to_vec(),
            DhSecret::P521(k) => k.public_key().to_sec1_point(false).as_bytes()[1..].to_vec(),
            DhSecret::X25519(s) => x25519_dalek::PublicKey::from(s).as_bytes().to_vec(),
        }
    }
}

/// An ephemeral DH key pair.
pub struct DhKeyPair {
    group: DhGroup,
    secret: DhSecret,
    public: Vec<u8>,
}

impl core::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DhKeyPair({:?})", self.group)
    }
}

impl DhKeyPair {
    /// Group.
    pub fn group(&self) -> DhGroup {
        self.group
    }
    /// KE data to send.
    pub fn public(&self) -> &[u8] {
        &self.public
    }
    /// Computes g^ir from the peer's KE data (validated).
    pub fn agree(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError::BadPublicValue);
        }
        let bad = |_| CryptoError::BadPublicValue;
        Ok(match &self.secret {
            DhSecret::Modp(x) => {
                use crypto_bigint::U2048;
                let y = U2048::from_be_slice(peer);
                let p = U2048::from_be_hex(MODP2048_P);
                //= https://www.rfc-editor.org/rfc/rfc7296#section-5.1
                //# 1 < y < p-1
                if y <= U2048::ONE || y >= p.wrapping_sub(&U2048::ONE) {
                    return Err(CryptoError::BadPublicValue);
                }
                Secret(modp_pow(&y, x))
            }
            DhSecret::P256(k) => {
                let pk = p256::PublicKey::from_sec1_bytes(&ec_sec1(peer)).map_err(bad)?;
                Secret(k.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            DhSecret::P384(k) => {
                let pk = p384::PublicKey::from_sec1_bytes(&ec_sec1(peer)).map_err(bad)?;
                Secret(k.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            DhSecret::P521(k) => {
                let pk = p521::PublicKey::from_sec1_bytes(&ec_sec1(peer)).map_err(bad)?;
                Secret(k.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            DhSecret::X25519(s) => {
                let mut b = [0u8; 32];
                b.copy_from_slice(peer);
                let ss = s.diffie_hellman(&x25519_dalek::PublicKey::from(b));
                //= https://www.rfc-editor.org/rfc/rfc8031#section-2.3
                //# Receivers MUST check whether the computed Diffie-Hellman shared secret is the all-zero value
                if !ss.was_contributory() {
                    return Err(CryptoError::BadPublicValue);
                }
                Secret(ss.as_bytes().to_vec())
            }
        })
    }
}

/// SHA-1 of `data` (fingerprints, NAT-D, CERTREQ).
pub fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests;

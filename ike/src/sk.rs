//! The Encrypted and Authenticated payload (RFC 7296 §3.14, RFC 5282 for AES-GCM).

use crate::crypto::{CryptoError, EncrAlg, IntegAlg, Rng, Secret};
use crate::wire::{self, GENERIC_HEADER_LEN, HEADER_LEN, HeaderRepr, Payload, PayloadType};

/// Keys protecting one direction of an IKE SA.
#[derive(Debug, Clone)]
pub struct SkKeys {
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity (None for AEAD).
    pub integ: Option<IntegAlg>,
    /// SK_e (with salt for GCM).
    pub sk_e: Secret,
    /// SK_a (empty for AEAD).
    pub sk_a: Secret,
}

impl SkKeys {
    fn icv_len(&self) -> usize {
        if self.encr.is_aead() {
            self.encr.tag_len()
        } else {
            self.integ.map_or(0, IntegAlg::icv_len)
        }
    }
}

/// Builds a whole protected message: header, SK payload with the encrypted `inner` chain.
pub fn seal(keys: &SkKeys, header: &HeaderRepr, inner: &[Payload], rng: &mut dyn Rng) -> Vec<u8> {
    let first_inner = inner
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type);
    let plain = wire::chain_to_vec(inner);
    seal_raw(keys, header, PayloadType::SK, first_inner, &[], &plain, rng)
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-3.14
//# The ICV is computed over the entire message, from the IKE SA header to the end of the
//# encrypted content (not including the ICV itself).
/// Seals `plain` as the only payload of a message (SK, or SKF when `skf_hdr` holds the 4 fragment bytes).
pub(crate) fn seal_raw(
    keys: &SkKeys,
    header: &HeaderRepr,
    ptype: PayloadType,
    first_inner: PayloadType,
    skf_hdr: &[u8],
    plain: &[u8],
    rng: &mut dyn Rng,
) -> Vec<u8> {
    let bl = keys.encr.block_len();
    let pad = (bl - (plain.len() + 1) % bl) % bl;
    let ct_len = plain.len() + pad + 1;
    let iv_len = keys.encr.iv_len();
    let icv_len = keys.icv_len();
    let body_len = skf_hdr.len() + iv_len + ct_len + icv_len;
    let total = HEADER_LEN + GENERIC_HEADER_LEN + body_len;
    let mut out = vec![0u8; total];
    header.emit(ptype, total as u32, &mut out[..HEADER_LEN]);
    out[HEADER_LEN] = first_inner.0;
    out[HEADER_LEN + 2..HEADER_LEN + 4]
        .copy_from_slice(&((GENERIC_HEADER_LEN + body_len) as u16).to_be_bytes());
    let hdr_end = HEADER_LEN + GENERIC_HEADER_LEN + skf_hdr.len();
    out[HEADER_LEN + GENERIC_HEADER_LEN..hdr_end].copy_from_slice(skf_hdr);
    let iv_end = hdr_end + iv_len;
    rng.fill(&mut out[hdr_end..iv_end]);
    let ct_end = iv_end + ct_len;
    out[iv_end..iv_end + plain.len()].copy_from_slice(plain);
    // Padding bytes are zero; the last byte is the pad length.
    out[ct_end - 1] = pad as u8;
    let (head, rest) = out.split_at_mut(iv_end);
    let iv = &head[hdr_end..];
    let (ct, icv) = rest.split_at_mut(ct_len);
    if keys.encr.is_aead() {
        //= https://www.rfc-editor.org/rfc/rfc5282#section-5.1
        //# the associated data MUST consist of the partial packet from the first octet of the IKEv2 Header
        //# through the last octet of the Encrypted Payload header.
        let aad = &head[..hdr_end];
        match keys.encr.gcm_seal(keys.sk_e.as_bytes(), iv, aad, ct) {
            Ok(tag) => icv.copy_from_slice(&tag),
            Err(_) => icv.fill(0),
        }
    } else {
        if keys.encr.cbc_encrypt(keys.sk_e.as_bytes(), iv, ct).is_err() {
            ct.fill(0);
        }
        if let Some(integ) = keys.integ {
            let mac = integ.compute(keys.sk_a.as_bytes(), &[&out[..ct_end]]);
            out[ct_end..].copy_from_slice(&mac);
        }
    }
    out
}

/// Verifies and decrypts the SK payload at the end of `raw` (whose parse gave `data` as the SK body).
/// Returns the inner payload chain.
pub fn open(
    keys: &SkKeys,
    raw: &[u8],
    first_inner: PayloadType,
    data_len: usize,
) -> Result<Vec<Payload>, SkError> {
    let plain = open_raw(keys, raw, data_len, 0)?;
    Ok(wire::parse_chain(first_inner, &plain)?)
}

/// Decrypts the encrypted body that ends `raw`: `data_len` bytes, of which the first `skf_hdr_len` are the
/// SKF fragment fields (0 for SK).
pub(crate) fn open_raw(
    keys: &SkKeys,
    raw: &[u8],
    data_len: usize,
    skf_hdr_len: usize,
) -> Result<Vec<u8>, SkError> {
    let iv_len = keys.encr.iv_len();
    let icv_len = keys.icv_len();
    let start = raw.len().checked_sub(data_len).ok_or(SkError::Malformed)?;
    let iv_start = start + skf_hdr_len;
    if data_len < skf_hdr_len + iv_len + icv_len + 1 {
        return Err(SkError::Malformed);
    }
    let ct_start = iv_start + iv_len;
    let ct_end = raw.len() - icv_len;
    let iv = &raw[iv_start..ct_start];
    let icv = &raw[ct_end..];
    let mut ct = raw[ct_start..ct_end].to_vec();
    if keys.encr.is_aead() {
        keys.encr
            .gcm_open(keys.sk_e.as_bytes(), iv, &raw[..iv_start], &mut ct, icv)?;
    } else {
        let integ = keys.integ.ok_or(SkError::Malformed)?;
        if !integ.verify(keys.sk_a.as_bytes(), &[&raw[..ct_end]], icv) {
            return Err(SkError::Crypto(CryptoError::Integrity));
        }
        keys.encr.cbc_decrypt(keys.sk_e.as_bytes(), iv, &mut ct)?;
    }
    let pad = *ct.last().ok_or(SkError::Malformed)? as usize;
    let keep = ct.len().checked_sub(pad + 1).ok_or(SkError::Malformed)?;
    ct.truncate(keep);
    Ok(ct)
}

/// Failure to open an SK payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// Integrity or decryption failure.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    /// Lengths do not add up.
    #[error("malformed encrypted payload")]
    Malformed,
    /// The decrypted chain does not parse.
    #[error("inner payloads: {0}")]
    Wire(#[from] wire::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ExchangeType, FLAG_INITIATOR, Message, Notify, NotifyType, VERSION_2_0};

    struct Counter(u8);
    impl Rng for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn hdr() -> HeaderRepr {
        HeaderRepr {
            initiator_spi: 1,
            responder_spi: 2,
            version: VERSION_2_0,
            exchange_type: ExchangeType::INFORMATIONAL,
            flags: FLAG_INITIATOR,
            message_id: 5,
        }
    }

    fn keys(encr: EncrAlg, integ: Option<IntegAlg>) -> SkKeys {
        SkKeys {
            encr,
            integ,
            sk_e: Secret::new(vec![7; encr.keymat_len()]),
            sk_a: Secret::new(vec![9; integ.map_or(0, IntegAlg::key_len)]),
        }
    }

    #[test]
    fn seal_then_open_round_trips_for_every_cipher() {
        let inner = vec![
            Payload::Notify(Notify::new(NotifyType::INITIAL_CONTACT, vec![])),
            Payload::Nonce(vec![0x42; 17]),
        ];
        for (e, i) in [
            (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha1_96)),
            (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha256_128)),
            (EncrAlg::AesCbc192, Some(IntegAlg::HmacSha384_192)),
            (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha512_256)),
            (EncrAlg::AesGcm16_128, None),
            (EncrAlg::AesGcm16_256, None),
        ] {
            let k = keys(e, i);
            let raw = seal(&k, &hdr(), &inner, &mut Counter(0));
            let m = Message::parse(&raw).unwrap();
            let Some(Payload::Sk(sk)) = m.payloads.last() else {
                panic!()
            };
            assert_eq!(sk.first_inner, PayloadType::NOTIFY);
            let back = open(&k, &raw, sk.first_inner, sk.data.len()).unwrap();
            assert_eq!(back, inner, "{e:?}");
            // Any flipped bit is caught (header, IV, ciphertext or ICV).
            for pos in [0, 20, HEADER_LEN + 5, raw.len() - 1] {
                let mut bad = raw.clone();
                bad[pos] ^= 0x10;
                assert!(
                    open(&k, &bad, sk.first_inner, sk.data.len()).is_err(),
                    "{e:?} byte {pos}"
                );
            }
        }
    }
}

//! The decrypted side of IKEv2 (RFC 7296 §3.14, RFC 5282): what an attacker who holds the SA's keys,
//! or a buggy peer, can put inside an Encrypted payload. Fixed keys; the first input byte picks the
//! mode and transform, the second the first inner payload type.
//!
//! - Mode "sealed": the rest of the input is the plaintext (payload chain, padding and pad-length byte
//!   all attacker-chosen; zero-extended to the cipher block for CBC). The target frames and encrypts it
//!   as a real IKE_AUTH message; the message must parse, and `ike::sk::open` (ICV/tag check, decrypt,
//!   padding, inner chain parse) must not panic. An inner chain that parses must re-emit to bytes
//!   that parse to the same chain.
//! - Mode "raw": the rest is a whole received message; on a parse, an SK payload is opened with the
//!   fixed keys (the length arithmetic before the ICV check sees attacker-chosen lengths).
#![no_main]

use ike::crypto::{EncrAlg, IntegAlg, Secret};
use ike::sk::{self, SkKeys};
use ike::wire::{
    self, ExchangeType, GENERIC_HEADER_LEN, HEADER_LEN, HeaderRepr, Message, Payload, PayloadType,
    VERSION_2_0,
};
use libfuzzer_sys::fuzz_target;

fn keys(sel: u8) -> SkKeys {
    match sel % 3 {
        0 => SkKeys {
            encr: EncrAlg::AesGcm16_128,
            integ: None,
            sk_e: Secret::from_slice(&[0x11; 20]),
            sk_a: Secret::from_slice(&[]),
        },
        1 => SkKeys {
            encr: EncrAlg::AesCbc128,
            integ: Some(IntegAlg::HmacSha256_128),
            sk_e: Secret::from_slice(&[0x22; 16]),
            sk_a: Secret::from_slice(&[0x33; 32]),
        },
        _ => SkKeys {
            encr: EncrAlg::AesCbc256,
            integ: Some(IntegAlg::HmacSha1_96),
            sk_e: Secret::from_slice(&[0x44; 32]),
            sk_a: Secret::from_slice(&[0x55; 20]),
        },
    }
}

/// An IKE_AUTH request whose SK payload carries `plain` (already padded by the caller).
fn seal(k: &SkKeys, first_inner: PayloadType, plain: &[u8]) -> Vec<u8> {
    let iv_len = k.encr.iv_len();
    let icv_len = if k.encr.is_aead() {
        k.encr.tag_len()
    } else {
        k.integ.map_or(0, IntegAlg::icv_len)
    };
    let body = iv_len + plain.len() + icv_len;
    let total = HEADER_LEN + GENERIC_HEADER_LEN + body;
    let header = HeaderRepr {
        initiator_spi: 0x0102_0304_0506_0708,
        responder_spi: 0x1112_1314_1516_1718,
        version: VERSION_2_0,
        exchange_type: ExchangeType::IKE_AUTH,
        flags: 0x08,
        message_id: 1,
    };
    let mut out = vec![0u8; total];
    header.emit(PayloadType::SK, total as u32, &mut out[..HEADER_LEN]);
    out[HEADER_LEN] = first_inner.0;
    out[HEADER_LEN + 2..HEADER_LEN + 4]
        .copy_from_slice(&((GENERIC_HEADER_LEN + body) as u16).to_be_bytes());
    let iv_start = HEADER_LEN + GENERIC_HEADER_LEN;
    let ct_start = iv_start + iv_len;
    let ct_end = ct_start + plain.len();
    out[iv_start..ct_start].fill(0x5a);
    out[ct_start..ct_end].copy_from_slice(plain);
    let (head, rest) = out.split_at_mut(ct_start);
    let (ct, icv) = rest.split_at_mut(plain.len());
    if k.encr.is_aead() {
        let tag = k
            .encr
            .gcm_seal(k.sk_e.as_bytes(), &head[iv_start..], &head[..iv_start], ct)
            .expect("fixed GCM key");
        icv.copy_from_slice(&tag);
    } else {
        k.encr
            .cbc_encrypt(k.sk_e.as_bytes(), &head[iv_start..], ct)
            .expect("whole blocks, fixed key");
        let integ = k.integ.expect("CBC has integrity");
        let mac = integ.compute(k.sk_a.as_bytes(), &[&out[..ct_end]]);
        out[ct_end..].copy_from_slice(&mac);
    }
    out
}

fn open_last_sk(k: &SkKeys, msg: &Message, raw: &[u8]) -> Option<Vec<Payload>> {
    match msg.payloads.last()? {
        Payload::Sk(p) => sk::open(k, raw, p.first_inner, p.data.len()).ok(),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, first, rest @ ..] = data else {
        return;
    };
    let k = keys(*mode >> 1);
    if mode & 1 == 0 {
        let mut plain = rest.to_vec();
        if plain.is_empty() {
            plain.push(0);
        }
        let bl = k.encr.block_len();
        if !k.encr.is_aead() {
            plain.resize(plain.len().div_ceil(bl) * bl, 0);
        }
        let raw = seal(&k, PayloadType(*first), &plain);
        let msg = Message::parse(&raw).expect("a framed IKE_AUTH message parses");
        if let Some(chain) = open_last_sk(&k, &msg, &raw) {
            let bytes = wire::chain_to_vec(&chain);
            let first = chain.first().map_or(PayloadType::NONE, Payload::payload_type);
            let again = wire::parse_chain(first, &bytes).expect("own chain parses");
            assert_eq!(again, chain);
        }
    } else if let Ok(msg) = Message::parse(rest) {
        let _ = open_last_sk(&k, &msg, rest);
    }
});

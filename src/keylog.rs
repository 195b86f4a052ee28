//! Test hook: the ESP keys of every installed CHILD_SA, appended to a file in Wireshark's `esp_sa` UAT
//! format so a capture can be decrypted by an independent dissector (`tshark -o
//! esp.enable_encryption_decode:TRUE -o uat:esp_sa:...`, see `tests/svti_strongswan.rs`).
//!
//! Only `lifeline run --debug-esp-keys FILE` (a hidden option, for tests) turns this on. Keys never go
//! to the log or to `show` output; this file is the one place they leave the process, and only when asked.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use dataplane::{Encr, Integ};

/// Wireshark's name for the transform (its `esp_encryption_type_vals` / `esp_authentication_type_vals`).
fn wireshark_names(encr: Encr, integ: Option<Integ>) -> (&'static str, &'static str) {
    let e = match encr {
        Encr::AesGcm16(_) => "AES-GCM with 16 octet ICV [RFC4106]",
        Encr::AesCbc(_) => "AES-CBC [RFC3602]",
    };
    let a = match integ {
        None => "NULL",
        Some(Integ::HmacSha1_96) => "HMAC-SHA-1-96 [RFC2404]",
        Some(Integ::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC-SHA-512-256 [RFC4868]",
    };
    (e, a)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// One `esp_sa` record: (source, destination, SPI, encryption key, integrity key).
pub struct Direction<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub spi: u32,
    pub enc_key: &'a [u8],
    pub integ_key: &'a [u8],
}

/// The UAT line for one direction of an SA (GCM keys carry their 4-byte salt, as Wireshark expects).
pub fn uat_line(encr: Encr, integ: Option<Integ>, d: &Direction<'_>) -> String {
    let (e, a) = wireshark_names(encr, integ);
    format!(
        "\"IPv4\",\"{}\",\"{}\",\"{:#010x}\",\"{e}\",\"{}\",\"{a}\",\"{}\"\n",
        d.src.ip(),
        d.dst.ip(),
        d.spi,
        hex(d.enc_key),
        if integ.is_some() {
            hex(d.integ_key)
        } else {
            String::new()
        },
    )
}

/// Appends both directions of an SA to `path`; a failure is reported once on stderr (a test hook only).
pub fn append(path: &Path, encr: Encr, integ: Option<Integ>, dirs: [Direction<'_>; 2]) {
    let text: String = dirs.iter().map(|d| uat_line(encr, integ, d)).collect();
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = r {
        eprintln!("--debug-esp-keys {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::crypto::AesKeyLen;

    #[test]
    fn lines_are_in_wiresharks_esp_sa_format() {
        let d = Direction {
            src: "198.51.100.1:4500".parse().unwrap(),
            dst: "198.51.100.2:4500".parse().unwrap(),
            spi: 0xc0ffee,
            enc_key: &[0xab; 4],
            integ_key: &[0x01, 0x02],
        };
        assert_eq!(
            uat_line(Encr::AesGcm16(AesKeyLen::Aes128), None, &d),
            "\"IPv4\",\"198.51.100.1\",\"198.51.100.2\",\"0x00c0ffee\",\
             \"AES-GCM with 16 octet ICV [RFC4106]\",\"0xabababab\",\"NULL\",\"\"\n"
        );
        assert_eq!(
            uat_line(
                Encr::AesCbc(AesKeyLen::Aes256),
                Some(Integ::HmacSha256_128),
                &d
            ),
            "\"IPv4\",\"198.51.100.1\",\"198.51.100.2\",\"0x00c0ffee\",\"AES-CBC [RFC3602]\",\
             \"0xabababab\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x0102\"\n"
        );
    }
}

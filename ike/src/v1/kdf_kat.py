#!/usr/bin/env python3
"""Independent computation of the IKEv1 KATs in ike/src/v1/keys.rs (writes kat_values.rs beside it).

Uses HMAC and hashes of Python `cryptography` (OpenSSL), not our Rust code. RFC 2409 §5, §5.5, App. B;
RFC 3947 §3.2. Run: python3 ike/src/v1/kdf_kat.py > ike/src/v1/kat_values.rs
"""
import struct
from cryptography.hazmat.primitives import hashes, hmac


def prf(alg, key, *parts):
    h = hmac.HMAC(key, alg())
    for p in parts:
        h.update(p)
    return h.finalize()


def hsh(alg, *parts):
    d = hashes.Hash(alg())
    for p in parts:
        d.update(p)
    return d.finalize()


cky_i = bytes.fromhex("0102030405060708")
cky_r = bytes.fromhex("1112131415161718")
ni = bytes(range(20))
nr = bytes(range(20, 40))
gxy = b"\xaa" * 32
gxi = b"\x11" * 32
gxr = b"\x22" * 32
sai_b = bytes.fromhex("0000000100000001")
id_b = bytes.fromhex("01000000c0000201")
mid = struct.pack(">I", 0xDEADBEEF)
rest = bytes.fromhex("0a000018aabbccdd")
spi = struct.pack(">I", 0xC0FFEE01)


def keymat(alg, d, g, n):
    out, k = b"", b""
    while len(out) < n:
        k = prf(alg, d, k, g, b"\x03", spi, ni, nr)
        out += k
    return out[:n]


print("struct Kat {")
fields = ["skeyid_psk", "skeyid_sig", "skeyid_d", "skeyid_a", "skeyid_e", "enc_key_aes256", "hash_i",
          "hash_r", "iv1", "iv2", "qm_hash1", "qm_hash2", "qm_hash3", "keymat", "keymat_pfs", "nat_d"]
for f in fields:
    print(f"    {f}: &'static str,")
print("}")
for name, alg in (("SHA1", hashes.SHA1), ("SHA256", hashes.SHA256)):
    v = {}
    skeyid = prf(alg, b"cisco123", ni, nr)
    v["skeyid_psk"] = skeyid
    v["skeyid_sig"] = prf(alg, ni + nr, gxy)
    d = prf(alg, skeyid, gxy, cky_i, cky_r, b"\x00")
    a = prf(alg, skeyid, d, gxy, cky_i, cky_r, b"\x01")
    e = prf(alg, skeyid, a, gxy, cky_i, cky_r, b"\x02")
    v["skeyid_d"], v["skeyid_a"], v["skeyid_e"] = d, a, e
    if len(e) >= 32:
        v["enc_key_aes256"] = e[:32]
    else:
        k1 = prf(alg, e, b"\x00")
        k2 = prf(alg, e, k1)
        v["enc_key_aes256"] = (k1 + k2)[:32]
    v["hash_i"] = prf(alg, skeyid, gxi, gxr, cky_i, cky_r, sai_b, id_b)
    v["hash_r"] = prf(alg, skeyid, gxr, gxi, cky_r, cky_i, sai_b, id_b)
    v["iv1"] = hsh(alg, gxi, gxr)[:16]
    v["iv2"] = hsh(alg, b"\x33" * 16, mid)[:16]
    v["qm_hash1"] = prf(alg, a, mid, rest)
    v["qm_hash2"] = prf(alg, a, mid, ni, rest)
    v["qm_hash3"] = prf(alg, a, b"\x00", mid, ni, nr)
    v["keymat"] = keymat(alg, d, b"", 52)
    v["keymat_pfs"] = keymat(alg, d, b"\xbb" * 32, 52)
    v["nat_d"] = hsh(alg, cky_i, cky_r, bytes([192, 0, 2, 1]), struct.pack(">H", 500))
    print(f"const {name}: Kat = Kat {{")
    for f in fields:
        print(f'    {f}: "{v[f].hex()}",')
    print("};")

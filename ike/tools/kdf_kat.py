#!/usr/bin/env python3
"""Independent computation of the IKEv2 key-derivation KAT in ike/src/keys.rs tests.

Uses the HMAC of Python `cryptography` (OpenSSL), not our Rust code. RFC 7296 §2.13, §2.14, §2.17, §2.18.
Run: python3 ike/tools/kdf_kat.py
"""
from cryptography.hazmat.primitives import hashes, hmac

def prf(alg, key, data):
    h = hmac.HMAC(key, alg())
    h.update(data)
    return h.finalize()

def prf_plus(alg, key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(alg, key, t + seed + bytes([i]))
        out += t
        i += 1
    return out[:n]

ni = bytes(range(32))
nr = bytes(range(32, 64))
gir = b"\xaa" * 32
gir_new = b"\xbb" * 32
spii = bytes.fromhex("0102030405060708")
spir = bytes.fromhex("1112131415161718")

for name, alg, klen in (("SHA256", hashes.SHA256, 32), ("SHA1", hashes.SHA1, 20)):
    skeyseed = prf(alg, ni + nr, gir)
    # AES-CBC-256 (32) + HMAC integ key (klen) + PRF key (klen)
    lens = [klen, klen, klen, 32, 32, klen, klen]
    km = prf_plus(alg, skeyseed, ni + nr + spii + spir, sum(lens))
    print(name, "SKEYSEED", skeyseed.hex())
    off = 0
    for n, l in zip(["SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr"], lens):
        print(name, n, km[off:off + l].hex())
        off += l
    sk_d = km[:klen]
    print(name, "KEYMAT", prf_plus(alg, sk_d, ni + nr, 40).hex())
    print(name, "KEYMAT_PFS", prf_plus(alg, sk_d, gir_new + ni + nr, 40).hex())
    print(name, "SKEYSEED_REKEY", prf(alg, sk_d, gir_new + ni + nr).hex())

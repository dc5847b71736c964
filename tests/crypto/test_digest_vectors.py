"""BLAKE3 against the official test vectors (hash, keyed_hash, derive_key; full XOF output)."""

from __future__ import annotations

from vaultd import crypto

from .vectors import h, load_json, report


def test_blake3_official_vectors() -> None:
    doc = load_json("blake3/test_vectors.json")
    key = doc["key"].encode()
    ctx = doc["context_string"]
    checked = 0
    for case in doc["cases"]:
        data = bytes(i % 251 for i in range(case["input_len"]))
        for mode, want_hex in (("hash", case["hash"]), ("keyed_hash", case["keyed_hash"]), ("derive_key", case["derive_key"])):
            want = h(want_hex)
            assert len(want) == 131
            if mode == "hash":
                full, short = crypto.blake3(data, len(want)), crypto.blake3(data)
                hasher = crypto.Blake3Hasher()
            elif mode == "keyed_hash":
                full, short = crypto.blake3_keyed(key, data, len(want)), crypto.blake3_keyed(key, data)
                hasher = crypto.Blake3Hasher(key=key)
            else:
                full, short = crypto.blake3_derive_key(ctx, data, len(want)), crypto.blake3_derive_key(ctx, data)
                hasher = None
            assert full == want, (mode, case["input_len"])
            assert short == want[:32], (mode, case["input_len"])
            if hasher is not None:
                for i in range(0, len(data), 1000):
                    hasher.update(data[i : i + 1000])
                assert hasher.digest(len(want)) == want
            checked += 1
    report("BLAKE3 official vectors", cases=len(doc["cases"]), checked=checked)
    assert checked == 105

"""AES-256-GCM against Wycheproof (aes_gcm_test.json)."""

from __future__ import annotations

import pytest

from vaultd import crypto
from vaultd.errors import IntegrityError, InvalidArgument

from .vectors import h, report, wycheproof


def test_wycheproof_aes_gcm() -> None:
    valid = invalid = refused_iv = other_keys = 0
    bad_items: list[tuple[bytes, bytes, bytes, bytes]] = []
    for group, t in wycheproof("aes_gcm_test"):
        key, iv, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
        sealed = h(t["ct"]) + h(t["tag"])
        if group["keySize"] != 256:
            # The core is AES-256 only: a 16- or 24-byte key is refused outright.
            with pytest.raises(InvalidArgument):
                crypto.aead_open(key, iv if len(iv) == 12 else bytes(12), sealed, aad)
            other_keys += 1
            continue
        assert group["tagSize"] == 128
        if group["ivSize"] != 96:
            # Only 96-bit nonces are accepted (no GHASH-derived counters): refused, never misused.
            with pytest.raises(InvalidArgument):
                crypto.aead_open(key, iv, sealed, aad)
            with pytest.raises(InvalidArgument):
                crypto.aead_seal(key, iv, msg, aad)
            refused_iv += 1
            continue
        if t["result"] == "valid":
            assert crypto.aead_seal(key, iv, msg, aad) == sealed, t["tcId"]
            assert crypto.aead_open(key, iv, sealed, aad) == msg, t["tcId"]
            valid += 1
        else:
            assert t["result"] == "invalid"
            with pytest.raises(IntegrityError):
                crypto.aead_open(key, iv, sealed, aad)
            bad_items.append((key, iv, sealed, aad))
            invalid += 1
    # The batch form refuses each invalid item, naming it.
    for i, (key, iv, sealed, aad) in enumerate(bad_items):
        good = crypto.aead_seal(key, iv, b"x" * i, aad)
        with pytest.raises(IntegrityError, match=r"^item 1: "):
            crypto.aead_open_batch([key, key], [iv, iv], [good, sealed], [aad, aad])
    report(
        "wycheproof AES-GCM",
        aes256_iv96_valid_passed=valid,
        aes256_iv96_invalid_rejected=invalid,
        aes256_other_iv_sizes_refused_as_unsupported=refused_iv,
        aes128_192_keys_refused_as_unsupported=other_keys,
    )
    assert valid + invalid == 66 and valid > 0 and invalid > 0
    assert valid + invalid + refused_iv + other_keys == 316

"""Ed25519 and ECDSA P-256 / SHA-256 (DER and P1363) against Wycheproof, through the batch calls."""

from __future__ import annotations

from vaultd import crypto

from .vectors import h, report, wycheproof


def _check(name: str, verify: object) -> tuple[int, int]:
    keys: list[bytes] = []
    msgs: list[bytes] = []
    sigs: list[bytes] = []
    want: list[bool] = []
    ids: list[int] = []
    for group, t in wycheproof(name):
        pk = group["publicKey"]
        keys.append(h(pk["pk"] if "pk" in pk else pk["uncompressed"]))
        msgs.append(h(t["msg"]))
        sigs.append(h(t["sig"]))
        assert t["result"] in ("valid", "invalid"), t
        want.append(t["result"] == "valid")
        ids.append(t["tcId"])
    got = verify(keys, msgs, sigs)  # type: ignore[operator]
    wrong = [ids[i] for i in range(len(want)) if got[i] != want[i]]
    assert not wrong, f"{name}: tcIds with the wrong answer: {wrong}"
    # Only the valid ones, in one batch: every one accepted (the batch equation path).
    ok = [i for i in range(len(want)) if want[i]]
    assert all(verify([keys[i] for i in ok], [msgs[i] for i in ok], [sigs[i] for i in ok]))  # type: ignore[operator]
    # Each invalid one hidden among valid ones: refused, and only it.
    a, b, c = ok[0], ok[1], ok[-1]
    for i in range(len(want)):
        if not want[i]:
            pick = [a, b, i, c]
            got4 = verify([keys[j] for j in pick], [msgs[j] for j in pick], [sigs[j] for j in pick])  # type: ignore[operator]
            assert got4 == [True, True, False, True], ids[i]
    return sum(want), len(want) - sum(want)


def test_wycheproof_ed25519() -> None:
    valid, invalid = _check("ed25519_test", crypto.ed25519_verify_batch)
    report("wycheproof Ed25519", valid_accepted=valid, invalid_rejected=invalid)
    assert (valid, invalid) == (88, 63)


def test_wycheproof_ecdsa_p256_der() -> None:
    valid, invalid = _check("ecdsa_secp256r1_sha256_test", lambda k, m, s: crypto.ecdsa_p256_verify_batch(k, m, s, True))
    report("wycheproof ECDSA P-256 SHA-256 DER", valid_accepted=valid, invalid_rejected=invalid)
    assert (valid, invalid) == (174, 310)


def test_wycheproof_ecdsa_p256_p1363() -> None:
    valid, invalid = _check(
        "ecdsa_secp256r1_sha256_p1363_test", lambda k, m, s: crypto.ecdsa_p256_verify_batch(k, m, s, False)
    )
    report("wycheproof ECDSA P-256 SHA-256 P1363", valid_accepted=valid, invalid_rejected=invalid)
    assert (valid, invalid) == (173, 89)


def test_ed25519_signing_key_against_the_pyca_sign_input() -> None:
    """``Ed25519SigningKey`` (the journal's signing key) against the 1024 known answers of the Ed25519
    reference's sign.input, as shipped by the PyCA's cryptography-vectors: public key and signature
    of each message, byte for byte (Ed25519 is deterministic)."""
    import cryptography_vectors

    n = 0
    with cryptography_vectors.open_vector_file("asymmetric/Ed25519/sign.input", "r") as f:
        for line in f:
            sk_pk, pk, msg, sig_msg, _ = line.split(":")
            key = crypto.Ed25519SigningKey(bytes.fromhex(sk_pk)[:32])
            assert key.public_key() == bytes.fromhex(pk), n
            assert key.sign(bytes.fromhex(msg)) == bytes.fromhex(sig_msg)[:64], n
            n += 1
    report("PyCA Ed25519 sign.input", signatures=n)
    assert n == 1024

"""Receipts verified both by the project's verifier and by an independent implementation written here
from the specifications (RFC 9162, c2sp.org/signed-note, the leaf layout), using only hashlib and
cryptography; and each broken receipt fails naming the check that failed."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import lmdb
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import encode_consistency_proof, verify_consistency, verify_receipt
from vaultd.journal.signer import Ed25519Signer

NAME = "vaultd.test/journal"


# ---- independent verifier ----------------------------------------------------------------------
def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _independent_root(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2, written out as in the RFC."""
    fn, sn, r = index, size - 1, _h(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def _independent_leaf_sha256(leaf: bytes) -> bytes | None:
    pos = 1
    pos += 1 + leaf[pos]  # operation
    for _ in range(2):  # vault, name
        pos += 2 + struct.unpack(">H", leaf[pos:pos + 2])[0]
    pos += 8
    n = leaf[pos]
    return leaf[pos + 1:pos + 1 + n] if n else None


def independent_verify(receipt: bytes, document: bytes, public_key: ed25519.Ed25519PublicKey) -> None:
    r = json.loads(receipt)
    leaf = base64.b64decode(r["leaf"])
    assert leaf[0] == 1
    assert _independent_leaf_sha256(leaf) == _h(document), "document digest"
    text, sigs = r["checkpoint"].encode().rsplit(b"\n\n", 1)
    text += b"\n"
    lines = text.decode().split("\n")
    name = lines[0]
    pub = public_key.public_bytes_raw()
    key_id = _h(name.encode() + b"\n\x01" + pub)[:4]
    ok = False
    for line in sigs.decode().strip("\n").split("\n"):
        _, sname, b64 = line.split(" ")
        raw = base64.b64decode(b64)
        if sname == name and raw[:4] == key_id:
            public_key.verify(raw[4:], text)
            ok = True
    assert ok, "no signature by the key"
    assert int(lines[1]) == r["tree_size"]
    root = base64.b64decode(lines[2])
    path = [base64.b64decode(p) for p in r["inclusion_proof"]]
    assert _independent_root(r["leaf_index"], r["tree_size"], leaf, path) == root, "inclusion"


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture()
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = lmdb.open(str(tmp_path / "db"), max_dbs=16, map_size=1 << 26)
    j = Journal(env, Ed25519Signer.load_or_create(tmp_path / "k.pem", NAME), state_dir=tmp_path / "state")
    for batch in range(4):
        with env.begin(write=True) as txn:
            for k in range(5):
                doc = b"document %d-%d" % (batch, k)
                j.append(txn, Leaf.make("deposit", vault="permits", name=f"d{batch}-{k}", version=1,
                                        sha256=_h(doc), actor_kind="service", actor_name="permits",
                                        time_ns=batch * 10 + k))
        j.sign_head()
    yield j
    env.close()


def test_every_receipt_verifies_both_ways(journal: Journal) -> None:
    pub = journal.verifier.public_key
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    for index in range(20):
        doc = b"document %d-%d" % (index // 5, index % 5)
        rec = journal.receipt("deposit", index)
        independent_verify(rec, doc, pub)
        res = verify_receipt(rec, doc, journal.verifier.vkey())
        assert res.ok, res.report()
        assert [c[0] for c in res.checks] == ["receipt-format", "leaf-encoding", "receipt-kind", "document-sha256",
                                              "checkpoint-signature", "checkpoint-size", "inclusion-proof"]
        assert verify_receipt(rec, doc, journal.verifier.public_key_pem()).ok  # PEM key form


def _mutate(rec: bytes, **changes: object) -> bytes:
    obj = json.loads(rec)
    obj.update(changes)
    return json.dumps(obj).encode()


def test_broken_receipts_name_the_failed_check(journal: Journal, tmp_path: Path) -> None:
    rec = journal.receipt("deposit", 7)
    doc = b"document 1-2"
    obj = json.loads(rec)
    pub = journal.verifier.public_key
    vkey = journal.verifier.vkey()
    proof = obj["inclusion_proof"]
    flipped = base64.b64encode(bytes([base64.b64decode(proof[0])[0] ^ 1]) + base64.b64decode(proof[0])[1:]).decode()
    other = Ed25519Signer.load_or_create(tmp_path / "other.pem", NAME).verifier().vkey()
    leaf = bytearray(base64.b64decode(obj["leaf"]))
    leaf[-5] ^= 1  # the last byte of the time (before the outcome "ok" and the extra count)
    cases = [
        (b"not json", doc, vkey, "receipt-format"),
        (_mutate(rec, version=2), doc, vkey, "receipt-format"),
        (_mutate(rec, leaf=base64.b64encode(b"\x01xx").decode()), doc, vkey, "leaf-encoding"),
        (rec, b"another document", vkey, "document-sha256"),
        (rec, doc, other, "checkpoint-signature"),
        (_mutate(rec, checkpoint=obj["checkpoint"].replace("\n20\n", "\n21\n")), doc, vkey, "checkpoint-signature"),
        (_mutate(rec, tree_size=19), doc, vkey, "checkpoint-size"),
        (_mutate(rec, inclusion_proof=[flipped] + proof[1:]), doc, vkey, "inclusion-proof"),
        (_mutate(rec, inclusion_proof=proof[:-1]), doc, vkey, "inclusion-proof"),
        (_mutate(rec, leaf_index=8), doc, vkey, "inclusion-proof"),
        (_mutate(rec, leaf=base64.b64encode(bytes(leaf)).decode()), doc, vkey, "inclusion-proof"),
    ]
    for bad, document, key, failed in cases:
        res = verify_receipt(bad, document, key)
        assert not res.ok and res.failed == failed, (failed, res.report())
        if failed in ("inclusion-proof", "checkpoint-signature", "document-sha256") and key == vkey:
            with pytest.raises((AssertionError, InvalidSignature, ValueError)):
                independent_verify(bad, document, pub)


def test_consistency_between_checkpoints(journal: Journal, tmp_path: Path) -> None:
    old = journal.head().note
    with journal.env.begin(write=True) as txn:
        journal.append(txn, Leaf.make("read", vault="permits", name="d0-0", version=1, actor_kind="service",
                                      actor_name="permits", time_ns=99))
    new = journal.sign_head().note
    proof = encode_consistency_proof(20, 21, journal.consistency(20, 21))
    res = verify_consistency(old, new, proof, journal.verifier.vkey())
    assert res.ok, res.report()
    res = verify_consistency(new, old, proof, journal.verifier.vkey())
    assert not res.ok and res.failed == "consistency-proof"
    wrong = encode_consistency_proof(20, 21, [b"\x00" * 32])
    res = verify_consistency(old, new, wrong, journal.verifier.vkey())
    assert not res.ok and res.failed == "consistency-proof"
    forged = new.replace(new.split(b"\n")[2], base64.b64encode(b"\x07" * 32))
    res = verify_consistency(old, forged, proof, journal.verifier.vkey())
    assert not res.ok and res.failed == "new-checkpoint-signature"

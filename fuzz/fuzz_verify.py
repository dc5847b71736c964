"""What ``vaultctl verify`` and ``verify-consistency`` read from outside: receipts, signed
checkpoints (C2SP signed notes), consistency proofs, verifier keys. Any bytes are either accepted
or refused through a failed check or a VaultError (InvalidArgument, IntegrityError); a receipt that
verifies must be one the journal made (a mutated receipt never verifies)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris
import lmdb

import _harness

with atheris.instrument_imports(include=["vaultd"]):
    from vaultd.errors import VaultError
    from vaultd.journal.checkpoint import Checkpoint, SignedNote, Verifier, load_verifier, open_checkpoint
    from vaultd.journal.hook import leaf_factory, open_journal
    from vaultd.journal.receipt import parse_consistency_proof, parse_receipt, verify_consistency, verify_receipt
    from vaultd.journal.receipt import encode_consistency_proof


def _journal_material() -> tuple[Verifier, list[bytes], dict[bytes, bytes], list[bytes]]:
    """A real journal in a temporary LMDB: its key, receipts (with their documents), checkpoints."""
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-verify-"))
    env = lmdb.open(str(tmp / "env"), max_dbs=16, map_size=1 << 26)
    j = open_journal(env, tmp / "state", name="fuzz.example/journal", fsync=False)
    receipts: dict[bytes, bytes] = {}
    notes: list[bytes] = []
    for i in range(5):
        doc = b"document %d" % i
        import hashlib

        with env.begin(write=True) as txn:
            idx = j.append(txn, leaf_factory("deposit", vault="citizen-a", name=f"d{i}", version=1,
                                             sha256=hashlib.sha256(doc).digest(), time_ns=1_700_000_000 + i))
        head = j.sign_head()
        notes.append(head.note)
        receipts[j.receipt("deposit", idx, head)] = doc
    proofs = [encode_consistency_proof(1, 5, j.consistency(1, 5)),
              b"\n".join(__import__("base64").b64encode(h) for h in j.consistency(2, 5))]
    j.close()
    return j.verifier, notes, receipts, proofs


VERIFIER, NOTES, RECEIPTS, PROOFS = _journal_material()
VKEY = VERIFIER.vkey()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    kind, blob = data[0] % 5, data[1:]
    if kind == 0:  # a receipt
        try:
            parse_receipt(blob)
        except VaultError:
            pass
        for doc in (b"document 0", None):
            res = verify_receipt(blob, doc, VKEY)
            if res.ok:
                assert blob in RECEIPTS and (doc is None or RECEIPTS[blob] == doc), "a forged receipt verified"
    elif kind == 1:  # a signed checkpoint
        try:
            note = SignedNote.parse(blob)
            Checkpoint.parse_body(note.text)
        except VaultError:
            pass
        try:
            cp = open_checkpoint(blob, VERIFIER)
            assert blob in NOTES or cp.size in (1, 2, 3, 4, 5), "a forged checkpoint verified"
        except VaultError:
            pass
    elif kind == 2:  # a consistency proof between two real checkpoints
        try:
            parse_consistency_proof(blob)
        except VaultError:
            pass
        res = verify_consistency(NOTES[0], NOTES[-1], blob, VKEY)
        if res.ok:
            assert parse_consistency_proof(blob)[2] == parse_consistency_proof(PROOFS[0])[2]
    elif kind == 3:  # a checkpoint pair with a real proof
        res = verify_consistency(blob, NOTES[-1], PROOFS[0], VKEY)
        if res.ok:
            assert blob in NOTES
    else:  # a verifier key or a PEM public key
        try:
            load_verifier(blob)
        except (VaultError, ValueError):
            pass  # ValueError: the documented refusal of a malformed key


SEEDS = [b"\x00" + r for r in RECEIPTS] + [b"\x01" + n for n in NOTES] + [b"\x02" + p for p in PROOFS] + \
        [b"\x03" + NOTES[0], b"\x04" + VKEY.encode(), b"\x04" + VERIFIER.public_key_pem()]

if __name__ == "__main__":
    _harness.run(test_one_input, SEEDS)

"""Receipts (evidence files) and their offline verification.

A receipt is canonical JSON (sorted keys, no spaces, ASCII) with base64 byte fields::

    {"checkpoint": "<signed note text>", "format": "vaultd.receipt", "inclusion_proof": ["<b64>", ...],
     "kind": "deposit" | "destroy" | "delivery" | "event", "leaf": "<b64 canonical leaf>",
     "leaf_index": N, "tree_size": M, "version": 1}

It holds everything needed to check, with no server: the leaf (what, which object, SHA-256 of the
content, who, when, outcome), its index, the inclusion proof into the tree of ``tree_size`` leaves, and
the journal's signed checkpoint of that size.

:func:`verify_receipt` runs each check in order and names the first one that fails. The ``kind`` is
not covered by any signature, so it is checked against the leaf: a deposit, destroy or delivery receipt
must hold a deposit, destroy or read entry whose outcome is "ok"; an event receipt holds any entry. It uses only
hashlib, cryptography and the pure-Python proof code of :mod:`vaultd.journal.proofs`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultd.errors import IntegrityError, InvalidArgument
from vaultd.journal import proofs
from vaultd.journal.checkpoint import (
    Checkpoint,
    CheckpointError,
    SignedNote,
    Verifier,
    load_verifier,
    open_checkpoint,
)
from vaultd.journal.leaf import Leaf, LeafError, Op, Outcome

__all__ = [
    "RECEIPT_FORMAT",
    "RECEIPT_VERSION",
    "EvidenceReceipt",
    "VerifyResult",
    "make_receipt",
    "parse_receipt",
    "verify_receipt",
    "verify_consistency",
    "encode_consistency_proof",
    "parse_consistency_proof",
]

RECEIPT_FORMAT = "vaultd.receipt"
PROOF_FORMAT = "vaultd.consistency-proof"
RECEIPT_VERSION = 1
MAX_RECEIPT_SIZE = 256 * 1024
KINDS = ("deposit", "destroy", "delivery", "event")
# The operation a receipt of each kind proves, carried out (outcome "ok"). The kind is not signed: a
# verifier checks it against the leaf, which is. An "event" receipt proves only that the entry, whatever
# it records (a refusal, a failure), is in the journal.
KIND_OPERATION = {"deposit": Op.DEPOSIT, "destroy": Op.DESTROY, "delivery": Op.READ}


def canonical_json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class EvidenceReceipt:
    kind: str
    leaf: bytes
    leaf_index: int
    tree_size: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: bytes

    def encode(self) -> bytes:
        return canonical_json(
            {
                "format": RECEIPT_FORMAT,
                "version": RECEIPT_VERSION,
                "kind": self.kind,
                "leaf": base64.b64encode(self.leaf).decode(),
                "leaf_index": self.leaf_index,
                "tree_size": self.tree_size,
                "inclusion_proof": [base64.b64encode(h).decode() for h in self.inclusion_proof],
                "checkpoint": self.checkpoint.decode("utf-8"),
            }
        )

    def decoded_leaf(self) -> Leaf:
        return Leaf.decode(self.leaf)


def make_receipt(kind: str, leaf: bytes, index: int, size: int, proof: list[bytes], checkpoint: bytes) -> bytes:
    if kind not in KINDS:
        raise InvalidArgument(f"receipt kind {kind!r}")
    return EvidenceReceipt(kind, leaf, index, size, tuple(proof), checkpoint).encode()


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"receipt {what}: expected base64 text")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidArgument(f"receipt {what}: not valid base64") from None


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise InvalidArgument(f"receipt {what}: expected an unsigned integer")
    return value


def parse_receipt(data: bytes) -> EvidenceReceipt:
    """Parse a receipt strictly: bounded size, known format and version, exact field set and types."""
    if len(data) > MAX_RECEIPT_SIZE:
        raise InvalidArgument(f"receipt: {len(data)} bytes, more than {MAX_RECEIPT_SIZE}")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("receipt: not JSON") from None
    want = {"format", "version", "kind", "leaf", "leaf_index", "tree_size", "inclusion_proof", "checkpoint"}
    if not isinstance(obj, dict) or set(obj) != want:
        raise InvalidArgument("receipt: not a vaultd receipt (unexpected or missing fields)")
    if obj["format"] != RECEIPT_FORMAT or obj["version"] != RECEIPT_VERSION:
        raise InvalidArgument(f"receipt: unsupported format {obj['format']!r} version {obj['version']!r}")
    if obj["kind"] not in KINDS:
        raise InvalidArgument(f"receipt: unknown kind {obj['kind']!r}")
    proof = obj["inclusion_proof"]
    if not isinstance(proof, list) or len(proof) > proofs.MAX_PROOF_HASHES:
        raise InvalidArgument("receipt inclusion_proof: expected a short list")
    if not isinstance(obj["checkpoint"], str):
        raise InvalidArgument("receipt checkpoint: expected text")
    return EvidenceReceipt(
        obj["kind"],
        _b64(obj["leaf"], "leaf"),
        _int(obj["leaf_index"], "leaf_index"),
        _int(obj["tree_size"], "tree_size"),
        tuple(_b64(h, "inclusion_proof") for h in proof),
        obj["checkpoint"].encode("utf-8"),
    )


@dataclass
class VerifyResult:
    """Outcome of an offline verification: each check by name, in order, with what it found."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    leaf: Leaf | None = None
    checkpoint: Checkpoint | None = None
    kind: str | None = None  # the receipt's kind, once it is parsed

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    @property
    def failed(self) -> str | None:
        """Name of the first failed check, or None."""
        return next((name for name, passed, _ in self.checks if not passed), None)

    def add(self, name: str, passed: bool, detail: str) -> bool:
        self.checks.append((name, passed, detail))
        return passed

    def report(self) -> str:
        return "\n".join(f"{'OK  ' if p else 'FAIL'} {name}: {detail}" for name, p, detail in self.checks)


def _read(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def _verifier_for(public_key: Verifier | bytes | str | Path, note: bytes) -> Verifier:
    if isinstance(public_key, Verifier):
        return public_key
    data = public_key if isinstance(public_key, (bytes, str)) and not _is_path(public_key) else _read(public_key)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if "-----BEGIN" not in text:
        return load_verifier(text)
    # A PEM key carries no name: take the signer's name from the note whose key id matches this key.
    for sig in SignedNote.parse(note).signatures:
        v = load_verifier(text, name=sig.name)
        if v.key_id == sig.key_id:
            return v
    raise CheckpointError("checkpoint signature: no signature on the checkpoint matches the given public key")


def _is_path(value: bytes | str) -> bool:
    if isinstance(value, bytes):
        return False
    return "\n" not in value and "-----BEGIN" not in value and "+" not in value


def _sha256_of(document: bytes | str | Path) -> bytes:
    if isinstance(document, bytes):
        return hashlib.sha256(document).digest()
    h = hashlib.sha256()
    with open(document, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def verify_receipt(
    receipt: bytes | str | Path,
    document: bytes | str | Path | None,
    public_key: Verifier | bytes | str | Path,
) -> VerifyResult:
    """Check a receipt offline. ``document`` is the document's bytes or a path (None for a destroy or
    event receipt: the digest check is then reported as not applicable). ``public_key`` is a verifier key
    string (``name+id+key``), a PEM public key, a path to either, or a :class:`Verifier`."""
    res = VerifyResult()
    try:
        rec = parse_receipt(_read(receipt))
    except (InvalidArgument, OSError) as e:
        res.add("receipt-format", False, str(e))
        return res
    res.kind = rec.kind
    res.add("receipt-format", True, f"{rec.kind} receipt, leaf {rec.leaf_index} of tree size {rec.tree_size}")
    try:
        leaf = Leaf.decode(rec.leaf)
        res.leaf = leaf
        res.add("leaf-encoding", True, f"{leaf.operation} {leaf.vault}/{leaf.name} v{leaf.version} by "
                f"{leaf.actor_kind}:{leaf.actor_name} at {leaf.time_ns} ns, outcome {leaf.outcome}")
    except LeafError as e:
        res.add("leaf-encoding", False, str(e))
        return res
    want = KIND_OPERATION.get(rec.kind)
    if want is None:
        res.add("receipt-kind", True, f"an event receipt: the entry records {leaf.operation}, outcome "
                f"{leaf.outcome} (evidence that it is journaled, not that it was carried out)")
    elif leaf.operation != want:
        res.add("receipt-kind", False, f"a {rec.kind} receipt must prove a {want} entry, but the entry records "
                f"{leaf.operation}")
    elif leaf.outcome != Outcome.OK:
        res.add("receipt-kind", False, f"the {want} was not carried out: the entry's outcome is {leaf.outcome}")
    else:
        res.add("receipt-kind", True, f"a {rec.kind} receipt of a {want} entry, outcome {leaf.outcome}")
    if document is not None:
        if leaf.sha256 is None:
            res.add("document-sha256", False, "the journal entry records no content digest")
        else:
            try:
                got = _sha256_of(document)
            except OSError as e:
                res.add("document-sha256", False, f"cannot read the document: {e.strerror}")
                return res
            if hmac.compare_digest(got, leaf.sha256):
                res.add("document-sha256", True, f"document SHA-256 {got.hex()} matches the journal entry")
            else:
                res.add("document-sha256", False,
                        f"document SHA-256 {got.hex()} differs from the journal entry's {leaf.sha256.hex()}")
    elif rec.kind == "deposit":
        res.add("document-sha256", False, "a deposit receipt is verified against its document: none given")
    try:
        verifier = _verifier_for(public_key, rec.checkpoint)
        cp = open_checkpoint(rec.checkpoint, verifier)
        res.checkpoint = cp
        res.add("checkpoint-signature", True, f"signed by {verifier.name} (key id {verifier.key_id.hex()}), "
                f"origin {cp.origin}, size {cp.size}")
    except (CheckpointError, InvalidArgument, ValueError, OSError) as e:
        res.add("checkpoint-signature", False, str(e))
        return res
    if cp.size != rec.tree_size:
        res.add("checkpoint-size", False, f"the proof is for tree size {rec.tree_size}, the checkpoint is {cp.size}")
        return res
    res.add("checkpoint-size", True, f"tree size {cp.size}")
    try:
        proofs.verify_inclusion(rec.leaf_index, rec.tree_size, proofs.leaf_hash(rec.leaf),
                                list(rec.inclusion_proof), cp.root)
        res.add("inclusion-proof", True, f"leaf {rec.leaf_index} is in the signed tree of size {cp.size}")
    except proofs.ProofError as e:
        res.add("inclusion-proof", False, str(e))
    return res


def encode_consistency_proof(old_size: int, new_size: int, proof: list[bytes]) -> bytes:
    return canonical_json({"format": PROOF_FORMAT, "version": 1, "old_size": old_size, "new_size": new_size,
                           "proof": [base64.b64encode(h).decode() for h in proof]})


def parse_consistency_proof(data: bytes) -> tuple[int | None, int | None, list[bytes]]:
    """A consistency proof: our JSON form, or plain text with one base64 hash per line (tlog style)."""
    if len(data) > MAX_RECEIPT_SIZE:
        raise InvalidArgument("consistency proof: too large")
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise InvalidArgument("consistency proof: not JSON") from None
        if not isinstance(obj, dict) or obj.get("format") != PROOF_FORMAT or obj.get("version") != 1:
            raise InvalidArgument("consistency proof: not a vaultd consistency proof")
        hashes = obj.get("proof")
        if not isinstance(hashes, list) or len(hashes) > proofs.MAX_PROOF_HASHES:
            raise InvalidArgument("consistency proof: expected a short list of hashes")
        return (_int(obj.get("old_size"), "old_size"), _int(obj.get("new_size"), "new_size"),
                [_b64(h, "proof") for h in hashes])
    lines = [line for line in text.split("\n") if line]
    if len(lines) > proofs.MAX_PROOF_HASHES:
        raise InvalidArgument("consistency proof: too many lines")
    return None, None, [_b64(line, "proof") for line in lines]


def verify_consistency(
    cp1: bytes | str | Path,
    cp2: bytes | str | Path,
    proof: bytes | str | Path | list[bytes],
    public_key: Verifier | bytes | str | Path | None = None,
) -> VerifyResult:
    """Check that checkpoint ``cp2`` extends checkpoint ``cp1``. With ``public_key``, both checkpoints'
    signatures are checked too (without it, only the proof against the two roots is)."""
    res = VerifyResult()
    notes = []
    for label, src in (("old", cp1), ("new", cp2)):
        try:
            notes.append(_read(src))
        except OSError as e:
            res.add(f"{label}-checkpoint", False, f"cannot read: {e.strerror}")
            return res
    cps: list[Checkpoint] = []
    for label, note in zip(("old", "new"), notes):
        try:
            if public_key is not None:
                v = _verifier_for(public_key, note)
                cps.append(open_checkpoint(note, v))
                res.add(f"{label}-checkpoint-signature", True, f"signed by {v.name}, size {cps[-1].size}")
            else:
                cps.append(Checkpoint.parse_body(SignedNote.parse(note).text))
                res.add(f"{label}-checkpoint-format", True, f"size {cps[-1].size} (signature not checked)")
        except (CheckpointError, InvalidArgument, ValueError, OSError) as e:
            res.add(f"{label}-checkpoint-signature" if public_key is not None else f"{label}-checkpoint-format",
                    False, str(e))
            return res
    old, new = cps
    if old.origin != new.origin:
        res.add("origin", False, f"different journals: {old.origin!r} and {new.origin!r}")
        return res
    res.add("origin", True, old.origin)
    try:
        if isinstance(proof, list):
            sizes: tuple[int | None, int | None] = (None, None)
            hashes = proof
        else:
            s1, s2, hashes = parse_consistency_proof(_read(proof))
            sizes = (s1, s2)
    except (InvalidArgument, OSError) as e:
        res.add("consistency-proof", False, str(e))
        return res
    if sizes[0] is not None and (sizes[0], sizes[1]) != (old.size, new.size):
        res.add("consistency-proof", False,
                f"the proof is from size {sizes[0]} to {sizes[1]}, the checkpoints are {old.size} and {new.size}")
        return res
    try:
        proofs.verify_consistency(old.size, new.size, hashes, old.root, new.root)
        res.add("consistency-proof", True, f"the tree of size {new.size} extends the tree of size {old.size}")
    except IntegrityError as e:
        res.add("consistency-proof", False, str(e))
    return res

"""The tamper-evident journal of vaultd: an RFC 6962 / RFC 9162 Merkle log in LMDB.

- ``leaf``: the canonical, versioned encoding of one operation
- ``tree``: the Merkle tree in LMDB (append in the caller's transaction, O(log n) proofs)
- ``proofs``: pure-Python proof verification (server self-checks and offline verification)
- ``checkpoint``: C2SP tlog-checkpoint signed notes (Ed25519, ECDSA P-256)
- ``signer``: the journal key (Ed25519 key file, or ECDSA P-256 in a PKCS#11 token)
- ``journal``: leaves, signed heads (consistency-checked), receipts, proof of delivery
- ``receipt``: the evidence file format and ``verify_receipt`` / ``verify_consistency``
- ``hook``: how the journal plugs into the store's single writer
"""

from vaultd.journal.checkpoint import Checkpoint, CheckpointError, Verifier, load_verifier, open_checkpoint
from vaultd.journal.journal import Journal, SignedHead
from vaultd.journal.leaf import Leaf, LeafError, Op, Outcome
from vaultd.journal.proofs import ProofError, verify_consistency as verify_consistency_proof, verify_inclusion
from vaultd.journal.receipt import VerifyResult, verify_consistency, verify_receipt
from vaultd.journal.signer import Ed25519Signer, Pkcs11EcdsaSigner
from vaultd.journal.tree import MerkleTree

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Ed25519Signer",
    "Journal",
    "Leaf",
    "LeafError",
    "MerkleTree",
    "Op",
    "Outcome",
    "Pkcs11EcdsaSigner",
    "ProofError",
    "SignedHead",
    "Verifier",
    "VerifyResult",
    "load_verifier",
    "open_checkpoint",
    "verify_consistency",
    "verify_consistency_proof",
    "verify_inclusion",
    "verify_receipt",
]

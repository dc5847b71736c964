"""The crypto core of vaultd, typed: the one module that imports the Rust extension ``_vaultcore``.

Every function takes any C-contiguous buffer of unsigned bytes (``bytes``, ``bytearray``,
``memoryview``, an LMDB ``buffers=True`` view, ...) and borrows it without a copy; results are ``bytes``.
Batch calls release the GIL once per call (above 64 KiB of work) and spread their items over the
core's thread pool (``set_num_threads``). Failures raise the classes of :mod:`vaultd.errors`:

- :class:`~vaultd.errors.InvalidArgument`: a key, nonce or hash of the wrong length, chunk sizes out of
  range, batch lists of unequal length (a batch error names the item: ``"item 3: ..."``);
- :class:`~vaultd.errors.IntegrityError`: an AEAD tag or a chunk id that does not check out. Nothing
  that failed its check is returned; a batch raises for its lowest failing index (``"item 7: ..."``);
- :class:`~vaultd.errors.ResourceExhausted`: a :class:`SealingKey` reached its nonce budget.

Algorithms: FastCDC 2020 (normalisation level 1, the paper's gear table), BLAKE3, SHA-256,
AES-256-GCM (96-bit nonce, 128-bit tag appended to the ciphertext), Ed25519 (RFC 8032, strict
verification), ECDSA P-256 with SHA-256, RFC 6962 Merkle trees over SHA-256. CPU features (AES-NI,
VAES, VPCLMULQDQ, AVX2, SHA-NI) are detected at run time.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import TYPE_CHECKING

from vaultd import _vaultcore as _core

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_MIN_SIZE",
    "DEFAULT_AVG_SIZE",
    "DEFAULT_MAX_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "HASH_SIZE",
    "Chunk",
    "SealingKey",
    "Ed25519SigningKey",
    "Sha256Hasher",
    "Blake3Hasher",
    "MerkleTree",
    "MerkleExtension",
    "set_num_threads",
    "num_threads",
    "cpu_features",
    "chunk_boundaries",
    "blake3",
    "blake3_keyed",
    "blake3_derive_key",
    "sha256",
    "aead_seal",
    "aead_open",
    "aead_seal_batch",
    "aead_open_batch",
    "seal",
    "open_sealed",
    "ingest",
    "open_chunks",
    "chunk_aad",
    "ed25519_public_key",
    "ed25519_sign_batch",
    "ed25519_verify_batch",
    "ecdsa_p256_verify_batch",
    "leaf_encode",
    "journal_record",
    "merkle_leaf_hash",
    "merkle_node_hash",
    "merkle_root",
    "merkle_inclusion_proof",
    "merkle_consistency_proof",
    "merkle_verify_inclusion",
    "merkle_verify_consistency",
]

#: Default FastCDC sizes, chosen for documents of 10 KiB to 1 GiB (see :func:`chunk_boundaries`).
DEFAULT_MIN_SIZE: int = _core.DEFAULT_MIN_SIZE
DEFAULT_AVG_SIZE: int = _core.DEFAULT_AVG_SIZE
DEFAULT_MAX_SIZE: int = _core.DEFAULT_MAX_SIZE
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
HASH_SIZE = 32

Chunk = _core.Chunk
SealingKey = _core.SealingKey
# An Ed25519 private key kept by the core (zeroized on drop); signs with the GIL released.
Ed25519SigningKey = _core.Ed25519SigningKey
Sha256Hasher = _core.Sha256Hasher
Blake3Hasher = _core.Blake3Hasher
MerkleTree = _core.MerkleTree
# The journal's in-memory tree of a group commit and its receipts (vaultd.journal.tree.Extension).
MerkleExtension = _core.MerkleExtension


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for batch calls from now on (default: one per CPU)."""
    _core.set_num_threads(n)


def num_threads() -> int:
    """Threads batch calls use."""
    return _core.num_threads()


def cpu_features() -> list[str]:
    """The x86-64 features detected at run time (e.g. ``aes``, ``avx2``, ``vaes``, ``sha``)."""
    return _core.cpu_features()


# --- chunking and digests -------------------------------------------------------------------------


def chunk_boundaries(
    data: Buffer,
    min_size: int = DEFAULT_MIN_SIZE,
    avg_size: int = DEFAULT_AVG_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
) -> list[int]:
    """FastCDC (2020) cut points of ``data``: the end offset of each chunk; the last is ``len(data)``.

    Empty data has no chunk. Sizes must satisfy 64 <= min <= 1 MiB, 256 <= avg <= 4 MiB,
    1 KiB <= max <= 16 MiB and min <= avg <= max.

    Defaults (64 KiB / 256 KiB / 1 MiB), for documents of 10 KiB to 1 GiB: a document under 64 KiB is
    one chunk (splitting small office files buys no dedup and costs an id, a nonce, a tag and an index
    entry per piece); a 1 GiB document makes about 3,300 chunks (average length is about min + avg
    with normalisation level 1), so its manifest stays near 200 KiB; an edit in a large document
    rewrites about 300 KiB; a buffer of a few MiB still yields 10 or more chunks to spread over the
    cores; the maximum equals one gRPC data message. Smaller averages dedup more finely but multiply
    per-chunk costs (the benchmark measures 4 KiB, 64 KiB and 1 MiB).
    """
    return _core.chunk_boundaries(data, min_size, avg_size, max_size)


def blake3(data: Buffer, length: int = 32) -> bytes:
    """BLAKE3 of ``data`` (``length`` bytes of extendable output; 32 is the standard digest)."""
    return _core.blake3(data, length)


def blake3_keyed(key32: Buffer, data: Buffer, length: int = 32) -> bytes:
    """Keyed BLAKE3 (a PRF/MAC) under a 32-byte key."""
    return _core.blake3_keyed(key32, data, length)


def blake3_derive_key(context: str, material: Buffer, length: int = 32) -> bytes:
    """BLAKE3 key derivation: a key for the purpose ``context`` (a fixed, unique string) from ``material``."""
    return _core.blake3_derive_key(context, material, length)


def sha256(data: Buffer) -> bytes:
    """SHA-256 of ``data``."""
    return _core.sha256(data)


# --- AEAD -------------------------------------------------------------------------------------------


def aead_seal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer) -> bytes:
    """AES-256-GCM: ``ciphertext || tag`` (16 bytes). The caller guarantees the nonce is never reused
    under the key; prefer :func:`seal` / :class:`SealingKey`, which choose nonces themselves."""
    return _core.aead_seal(key, nonce, plaintext, aad)


def aead_open(key: Buffer, nonce: Buffer, ciphertext_with_tag: Buffer, aad: Buffer) -> bytes:
    """Opens :func:`aead_seal` output; raises IntegrityError on any change (no data returned)."""
    return _core.aead_open(key, nonce, ciphertext_with_tag, aad)


def aead_seal_batch(
    keys: Sequence[Buffer], nonces: Sequence[Buffer], plaintexts: Sequence[Buffer], aads: Sequence[Buffer]
) -> list[bytes]:
    """:func:`aead_seal` over lists of one length, in parallel."""
    return _core.aead_seal_batch(keys, nonces, plaintexts, aads)


def aead_open_batch(
    keys: Sequence[Buffer], nonces: Sequence[Buffer], ciphertexts: Sequence[Buffer], aads: Sequence[Buffer]
) -> list[bytes]:
    """:func:`aead_open` over lists of one length, in parallel; IntegrityError names the first bad item."""
    return _core.aead_open_batch(keys, nonces, ciphertexts, aads)


def seal(key: Buffer, plaintext: Buffer, aad: Buffer = b"") -> bytes:
    """AES-256-GCM with a nonce chosen here: returns ``nonce (12) || ciphertext || tag (16)``.

    The nonce is 96 bits from the operating system's CSPRNG (getrandom). Random 96-bit nonces collide
    among q messages with probability below q**2 / 2**97, so one key may seal at most 2**32 messages
    (probability < 2**-33, inside NIST SP 800-38D's 2**-32 bound); owners of long-lived keys count
    seals and rotate before that (a :class:`SealingKey` counts for you and refuses past 2**32).
    """
    return _core.SealingKey(key).seal(plaintext, aad)


def open_sealed(key: Buffer, sealed: Buffer, aad: Buffer = b"") -> bytes:
    """Opens :func:`seal` output; raises IntegrityError on any change."""
    return _core.SealingKey(key).open(sealed, aad)


# --- the deposit path -------------------------------------------------------------------------------


def chunk_aad(aad_prefix: bytes, chunk_id: bytes) -> bytes:
    """The exact AAD a chunk is sealed with by :func:`ingest`: ``aad_prefix || chunk_id``."""
    return aad_prefix + chunk_id


def ingest(
    data: Buffer,
    dedup_key: Buffer,
    data_key: Buffer,
    aad_prefix: Buffer,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    avg_size: int = DEFAULT_AVG_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
    last: bool = True,
    known: Container[bytes] | None = None,
    hasher: Sha256Hasher | None = None,
) -> list[Chunk]:
    """Chunks, identifies and seals one buffer of a document in one call.

    For each FastCDC chunk (see :func:`chunk_boundaries`) returns a :class:`Chunk` with ``offset`` and
    ``length`` in ``data``, ``chunk_id`` = keyed BLAKE3 of the plaintext under ``dedup_key`` (32 bytes),
    and ``nonce`` (12 random bytes) and ``sealed`` (``ciphertext || tag``, AES-256-GCM under
    ``data_key`` with AAD = ``aad_prefix || chunk_id``). Chunks whose id is ``in known`` (any container
    of ``bytes``, e.g. the set of ids a vault holds) are not sealed: their ``nonce`` and ``sealed`` are
    None. Ids and seals are computed in parallel with the GIL released.

    All sealed chunks of one call live in one ``bytes`` object, each as ``nonce || ciphertext || tag``;
    ``sealed`` (``ciphertext || tag``) and ``stored`` (``nonce || ciphertext || tag``, the stored form)
    are read-only ``memoryview`` objects into it, so a store can keep a chunk with no copy
    (``bytes(c.stored)`` copies it out). The object is freed when the last view of it is.

    Streaming a document in several buffers: pass ``last=False`` for all but the final buffer. The
    final chunk of such a buffer (cut by the buffer's end, not its content) is then left out; the
    caller prepends ``data[end:]`` (``end`` = offset + length of the last returned chunk, 0 if none)
    to its next buffer, so chunk boundaries do not depend on how the document was split.
    ``hasher``, if given, is updated with exactly the consumed bytes (the whole buffer when ``last``).
    """
    return _core.ingest(
        data,
        dedup_key,
        data_key,
        aad_prefix,
        min_size=min_size,
        avg_size=avg_size,
        max_size=max_size,
        last=last,
        known=known,
        hasher=hasher,
    )


def open_chunks(
    data_key: Buffer,
    dedup_key: Buffer,
    aad_prefix: Buffer,
    chunk_ids: Sequence[Buffer],
    nonces: Sequence[Buffer],
    sealed: Sequence[Buffer],
    groups: Sequence[int] | None = None,
    field: int | None = None,
) -> list[bytes]:
    """Opens chunks sealed by :func:`ingest` (in parallel), re-deriving each id from the plaintext.

    One ``bytes`` per chunk; with ``groups`` (counts of consecutive chunks, adding up to their
    number), one per group: its chunks' plaintexts end to end, each opened into its place. With
    ``field`` (1 to 15), each ``bytes`` is that protobuf length-delimited field around the plaintext
    (an encoded message with one bytes field, framed where it is written).

    Raises IntegrityError naming the lowest bad index when a tag fails or a plaintext's keyed BLAKE3
    differs from its claimed id (compared in constant time); returns no data in that case.
    """
    return _core.open_chunks(data_key, dedup_key, aad_prefix, chunk_ids, nonces, sealed, groups, field)


# --- signatures -------------------------------------------------------------------------------------


def ed25519_public_key(private_key: Buffer) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 private key (seed)."""
    return _core.ed25519_public_key(private_key)


def ed25519_sign_batch(private_key: Buffer, messages: Sequence[Buffer]) -> list[bytes]:
    """Ed25519 signatures (64 bytes) of every message under one private key, in parallel."""
    return _core.ed25519_sign_batch(private_key, messages)


def ed25519_verify_batch(
    public_keys: Sequence[Buffer], messages: Sequence[Buffer], signatures: Sequence[Buffer]
) -> list[bool]:
    """One answer per item, as the strict single check gives it (RFC 8032 cofactorless equation,
    canonical S, canonical A and R, small-order A or R refused).

    Items are checked 128 at a time with one batch equation (random 128-bit weights), batches
    spread over the pool; items whose A or R encoding the single check would refuse never enter a
    batch, and when a batch fails each of its items is checked alone. One caveat of every Ed25519
    batch verifier: a signature whose R or A carries a small-torsion component (which only the key's
    owner can make) fails the strict single check but can pass the batch equation with probability
    up to 1/2; signatures from a signer not trusted on that point are checked in lists of one item.
    """
    return _core.ed25519_verify_batch(public_keys, messages, signatures)


def ecdsa_p256_verify_batch(
    public_keys_sec1: Sequence[Buffer], messages: Sequence[Buffer], signatures: Sequence[Buffer], der: bool
) -> list[bool]:
    """ECDSA P-256 / SHA-256 over the messages; signatures DER (strict) or P1363 (``r || s``)."""
    return _core.ecdsa_p256_verify_batch(public_keys_sec1, messages, signatures, der)


# --- journal leaves ---------------------------------------------------------------------------------


def leaf_encode(
    operation: str, vault: str, name: str, version: int, sha256: bytes | None, actor_kind: str,
    actor_name: str, kiosk: str, time_ns: int, outcome: str, extra: Sequence[tuple[str, bytes]],
) -> bytes | None:
    """The canonical version-1 bytes of a journal leaf (``vaultd.journal.leaf``), or None when a field
    is not valid (the reference encoder in Python then names it). ``extra`` is sorted by key.
    Raises TypeError or OverflowError for a field of the wrong type or an integer out of range."""
    return _core.leaf_encode(operation, vault, name, version, sha256, actor_kind, actor_name, kiosk,
                             time_ns, outcome, extra)


# --- RFC 6962 Merkle trees --------------------------------------------------------------------------


def journal_record(index: int, border: tuple[bytes, ...], leaf: Buffer) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    """The stored record of journal leaf ``index`` appended at the tree's right border ``border`` (see
    ``vaultd.journal.tree.MerkleTree.border``), its leaf hash, and the border one leaf later (the
    entries not replaced are the same objects). ``vaultd.journal.tree._record_at`` is the reference."""
    return _core.journal_record(index, border, leaf)


def merkle_leaf_hash(data: Buffer) -> bytes:
    """SHA-256(0x00 || data)."""
    return _core.merkle_leaf_hash(data)


def merkle_node_hash(left: Buffer, right: Buffer) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _core.merkle_node_hash(left, right)


def merkle_root(leaf_hashes: Sequence[Buffer]) -> bytes:
    """MTH of the leaves (SHA-256 of the empty string for no leaf)."""
    return _core.merkle_root(leaf_hashes)


def merkle_inclusion_proof(leaf_hashes: Sequence[Buffer], index: int) -> list[bytes]:
    """PATH(index, leaves): the audit path of one leaf in the tree of all ``leaf_hashes``."""
    return _core.merkle_inclusion_proof(leaf_hashes, index)


def merkle_consistency_proof(leaf_hashes: Sequence[Buffer], size1: int) -> list[bytes]:
    """PROOF(size1, leaves): the tree of the first ``size1`` leaves is a prefix of the whole tree."""
    return _core.merkle_consistency_proof(leaf_hashes, size1)


def merkle_verify_inclusion(
    leaf_hash: Buffer, index: int, tree_size: int, proof: Sequence[Buffer], root: Buffer
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    return _core.merkle_verify_inclusion(leaf_hash, index, tree_size, proof, root)


def merkle_verify_consistency(
    size1: int, size2: int, root1: Buffer, root2: Buffer, proof: Sequence[Buffer]
) -> bool:
    """RFC 9162 section 2.1.4.2 (equal sizes: empty proof and equal roots; size1 = 0 refused)."""
    return _core.merkle_verify_consistency(size1, size2, root1, root2, proof)

"""Stored bytes read back by the core (vaultd.core): sealed chunks opened with a vault's keys,
manifests and JSON records decoded. Whatever the bytes, opening a chunk either returns the exact
plaintext that was sealed under that id or raises IntegrityError; a damaged manifest or record is an
IntegrityError; nothing else escapes and no other bytes are ever returned as data."""

from __future__ import annotations

import os

import atheris

import _harness

with atheris.instrument_imports(include=["vaultd"]):
    from vaultd import crypto
    from vaultd.core import content as C
    from vaultd.core import vaults as V
    from vaultd.errors import IntegrityError
    from vaultd.keys.envelope import VaultKeys

KEYS = VaultKeys(data_key=os.urandom(32), dedup_key=os.urandom(32), data_key_version=1)
PREFIX = C.aad_prefix("citizen-fuzz", 1)
PLAIN = b"a chunk of a citizen's document " * 40
CID = crypto.blake3_keyed(KEYS.dedup_key, PLAIN)
NONCE = os.urandom(12)
SEALED = NONCE + crypto.aead_seal(KEYS.data_key, NONCE, PLAIN, PREFIX + CID)
assert C.open_many(KEYS, PREFIX, [CID], [SEALED]) == [PLAIN]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    kind, blob = data[0] % 3, data[1:]
    if kind == 0:
        try:
            out = C.open_many(KEYS, PREFIX, [CID], [blob])
        except IntegrityError:
            return
        assert blob == SEALED and out == [PLAIN], "bytes other than the sealed chunk opened"
    elif kind == 1:
        try:
            entries = V._manifest_entries(blob, "fuzz")
        except IntegrityError:
            return
        assert sum(36 for _ in entries) == len(blob)
    else:
        try:
            V._record(blob, "fuzz")
        except IntegrityError:
            return


SEEDS = [b"\x00" + SEALED, b"\x01" + CID + (len(PLAIN)).to_bytes(4, "big"), b'\x02{"latest":1,"next":2}']

if __name__ == "__main__":
    _harness.run(test_one_input, SEEDS)

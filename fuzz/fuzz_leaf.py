"""Journal leaf decoding (vaultd.journal.leaf.Leaf.decode): any bytes either decode or raise
LeafError; a decoded leaf is canonical (it encodes back to exactly the input), so no two byte
strings can stand for the same journal entry."""

from __future__ import annotations

import atheris

import _harness

with atheris.instrument_imports(include=["vaultd"]):
    from vaultd.journal.leaf import Leaf, LeafError


def test_one_input(data: bytes) -> None:
    try:
        leaf = Leaf.decode(data)
    except LeafError:
        return
    assert leaf.encode() == data, "a non-canonical leaf was accepted"


SEEDS = [
    Leaf.make("deposit", vault="citizen-a", name="doc.pdf", version=3, sha256=b"\x11" * 32,
              actor=None, time_ns=1_700_000_000_000_000_000, outcome="ok", extra={"size": b"123"}).encode(),
    Leaf.make("read", vault="permits", name="x", version=1, sha256=None, actor=None, time_ns=1,
              outcome="denied", extra={}).encode(),
]

if __name__ == "__main__":
    _harness.run(test_one_input, SEEDS)

"""Canonical leaf encoding: round trip, determinism, strict bounded decoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.journal.leaf import Leaf, LeafError
from vaultd.types import Identity


def _leaf() -> Leaf:
    return Leaf.make("deposit", vault="citizen-alice", name="permits/2026/é.pdf", version=3, sha256=b"\x01" * 32,
                     actor=Identity("service", "permits"), time_ns=1_700_000_000_123_456_789,
                     extra={"requester": "service:permits", "b": b"\x00\xff"})


def test_known_encoding() -> None:
    raw = _leaf().encode()
    assert raw[0] == 1 and raw[1] == len("deposit") and raw[2:9] == b"deposit"
    assert raw.hex().endswith("0201620002" + "00ff" + "09726571756573746572000f" + b"service:permits".hex())
    assert Leaf.decode(raw) == _leaf()


def test_identity_and_kiosk() -> None:
    leaf = Leaf.make("login", actor=Identity("citizen", "alice", kiosk="kiosk-7"), time_ns=1)
    assert Leaf.decode(leaf.encode()).kiosk == "kiosk-7"


@settings(max_examples=200, deadline=None)
@given(
    op=st.from_regex(r"[a-z][a-z0-9_.-]{0,31}", fullmatch=True),
    vault=st.text(st.characters(min_codepoint=0x20, blacklist_characters="\x7f", blacklist_categories=("Cs",)), max_size=40),
    version=st.integers(0, 2**64 - 1),
    digest=st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
    t=st.integers(0, 2**64 - 1),
    extra=st.dictionaries(st.from_regex(r"[a-z0-9_.-]{1,8}", fullmatch=True), st.binary(max_size=50), max_size=5),
)
def test_round_trip(op: str, vault: str, version: int, digest: bytes | None, t: int, extra: dict) -> None:
    leaf = Leaf.make(op, vault=vault, name="x", version=version, sha256=digest, actor_kind="service",
                     actor_name="n", time_ns=t, extra=extra)
    raw = leaf.encode()
    assert Leaf.decode(raw) == leaf
    assert Leaf.decode(raw).encode() == raw


def test_strict_decoding() -> None:
    raw = _leaf().encode()
    with pytest.raises(LeafError, match="unexpected bytes"):
        Leaf.decode(raw + b"\x00")
    for cut in (0, 1, 5, 20, len(raw) - 1):
        with pytest.raises(LeafError, match="truncated"):
            Leaf.decode(raw[:cut])
    with pytest.raises(LeafError, match="version 2"):
        Leaf.decode(b"\x02" + raw[1:])
    with pytest.raises(LeafError, match="operation"):
        Leaf.decode(b"\x01\x07DEPOSIT" + raw[9:])
    bad_len = raw[:9] + struct.pack(">H", 129) + b"a" * 129 + raw[9 + 2 + len("citizen-alice"):]
    with pytest.raises(LeafError, match="vault: 129 bytes"):
        Leaf.decode(bad_len)
    bad_utf8 = raw.replace(b"citizen-alice", b"citizen-al\xffce")
    with pytest.raises(LeafError, match="UTF-8"):
        Leaf.decode(bad_utf8)
    with pytest.raises(LeafError, match="too large|more than"):
        Leaf.decode(b"\x01" * 200_000)


def test_invalid_values_refused() -> None:
    with pytest.raises(LeafError):
        Leaf.make("deposit", sha256=b"short", time_ns=1)
    with pytest.raises(LeafError):
        Leaf.make("deposit", name="a\nb", time_ns=1)
    with pytest.raises(LeafError):
        Leaf.make("deposit", vault="v" * 129, time_ns=1)
    with pytest.raises(LeafError):
        Leaf.make("deposit", time_ns=-1)
    with pytest.raises(LeafError):
        Leaf.make("deposit", time_ns=1, extra={"BAD": b""})


def test_make_encoded_carries_the_fields_it_encodes() -> None:
    """The journal appends these bytes without decoding them again: the leaf they carry must be
    exactly what decoding gives."""
    from vaultd.journal.leaf import EncodedLeaf

    raw = Leaf.make_encoded("deposit", vault="permits", name="doc-1", version=3, sha256=b"\x07" * 32,
                            actor_kind="service", actor_name="permits", time_ns=1234,
                            extra={"size": "10", "depositor": "service:permits"})
    assert type(raw) is EncodedLeaf
    assert raw.leaf == Leaf.decode(bytes(raw)) and raw.leaf.encode() == bytes(raw)
    assert (raw.operation, raw.outcome) == ("deposit", "ok")


_TEXT = st.text(st.characters(min_codepoint=0x20, blacklist_characters="\x7f", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(op=st.from_regex(r"[a-z][a-z0-9_.-]{0,31}", fullmatch=True), vault=_TEXT, name=_TEXT,
       version=st.integers(0, 2**64 - 1), digest=st.one_of(st.none(), st.binary(min_size=32, max_size=32)))
def test_with_version_is_the_leaf_made_with_that_version(op: str, vault: str, name: str, version: int,
                                                         digest: bytes | None) -> None:
    """The writer splices a deposit's version into a leaf made beforehand: the bytes and the leaf
    they carry are exactly those of the leaf made with that version from the start."""
    kw = dict(vault=vault, name=name, sha256=digest, actor_kind="service", actor_name="permits", time_ns=77,
              extra={"size": "12"})
    template = Leaf.make_encoded(op, version=0, **kw)  # type: ignore[arg-type]
    spliced = template.with_version(version)
    direct = Leaf.make_encoded(op, version=version, **kw)  # type: ignore[arg-type]
    assert bytes(spliced) == bytes(direct)
    assert spliced.leaf == direct.leaf == Leaf.decode(bytes(spliced))
    assert spliced.leaf.version == version and template.leaf.version == 0
    assert bytes(template) == bytes(Leaf.make_encoded(op, version=0, **kw))  # type: ignore[arg-type]  # unchanged
    with pytest.raises(LeafError, match="version"):
        template.with_version(1 << 64)


_ANY_TEXT = st.one_of(
    st.text(max_size=40),  # control characters included
    st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), min_size=100, max_size=300),
    st.from_regex(r"[a-z][a-z0-9_.-]{0,40}", fullmatch=True),
)


@settings(max_examples=500, deadline=None)
@given(op=_ANY_TEXT, vault=_ANY_TEXT, name=_ANY_TEXT, kind=_ANY_TEXT, actor=_ANY_TEXT, kiosk=_ANY_TEXT,
       outcome=_ANY_TEXT, version=st.integers(-1, 2**64), t=st.integers(-1, 2**64),
       digest=st.one_of(st.none(), st.binary(min_size=31, max_size=33)),
       extra=st.lists(st.tuples(st.one_of(st.from_regex(r"[a-z0-9_.-]{1,8}", fullmatch=True), st.text(max_size=3)),
                                st.binary(max_size=50)), max_size=4))
def test_core_encoder_is_the_reference_encoder(op: str, vault: str, name: str, kind: str, actor: str, kiosk: str,
                                               outcome: str, version: int, t: int, digest: bytes | None,
                                               extra: list[tuple[str, bytes]]) -> None:
    """The Rust core's encoder writes exactly the reference encoder's bytes, and accepts nothing the
    reference refuses (fields built directly, invalid ones included)."""
    leaf = Leaf(op, vault, name, version, digest, kind, actor, t, outcome, kiosk, tuple(extra))
    try:
        want = leaf.encode_reference()
    except LeafError:
        want = None
    try:
        got = crypto.leaf_encode(op, vault, name, version, digest, kind, actor, kiosk, t, outcome, tuple(extra))
    except (TypeError, OverflowError):
        got = None
    assert got == want
    if want is None:
        with pytest.raises(LeafError):
            leaf.encode()
    else:
        assert leaf.encode() == want
    # make_encoded (every deposit's leaf) builds no Leaf: the same bytes and refusals, and the fields
    # it carries are the leaf's
    fields = dict(extra)
    ref = Leaf(op, vault, name, version, digest, kind, actor, t, outcome, kiosk, tuple(sorted(fields.items())))
    kw = dict(vault=vault, name=name, version=version, sha256=digest, actor_kind=kind, actor_name=actor,
              kiosk=kiosk, time_ns=t, outcome=outcome, extra=fields)
    try:
        want_made = ref.encode_reference()
    except LeafError:
        with pytest.raises(LeafError):
            Leaf.make_encoded(op, **kw)  # type: ignore[arg-type]
    else:
        made = Leaf.make_encoded(op, **kw)  # type: ignore[arg-type]
        assert bytes(made) == want_made and made.leaf == ref
        assert (made.operation, made.outcome) == (op, outcome)


def test_core_encoder_refuses_what_the_reference_refuses() -> None:
    big = "é" * 513  # 1,026 bytes of UTF-8 in 513 characters
    cases = [dict(name=big), dict(vault="v" * 129), dict(actor_kind="k" * 17), dict(name="a\x7fb"),
             dict(extra=(("b", b""), ("a", b""))), dict(extra=(("a", b"x" * 4097),)), dict(sha256=b"\x00" * 31)]
    base = _leaf()
    for change in cases:
        leaf = Leaf(**{**{f: getattr(base, f) for f in base.__slots__}, **change})  # type: ignore[arg-type]
        with pytest.raises(LeafError):
            leaf.encode_reference()
        assert crypto.leaf_encode(leaf.operation, leaf.vault, leaf.name, leaf.version, leaf.sha256,
                                  leaf.actor_kind, leaf.actor_name, leaf.kiosk, leaf.time_ns, leaf.outcome,
                                  leaf.extra) is None

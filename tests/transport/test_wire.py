"""The hand-read wire format: a Deposit data message is received as a view of its bytes, and
whatever that reading accepts, protobuf parses to the same data; everything else goes to protobuf."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import types as t
from vaultd.core.vaults import stat_wire_size
from vaultd.transport import convert
from vaultd.transport.server import _DepositData, _lenient, _Malformed
from vaultd.v1 import vault_pb2 as pb
from vaultd.wire import only_field, varint


def _overlong(n: int, extra: int) -> bytes:
    """``n`` as a varint padded with ``extra`` continuation bytes (valid protobuf, not minimal)."""
    out = bytearray(varint(n))
    if extra:
        out[-1] |= 0x80
        out += b"\x80" * (extra - 1) + b"\x00"
    return bytes(out)


messages = st.one_of(
    st.binary(max_size=300).map(lambda d: pb.DepositRequest(data=d).SerializeToString()),
    st.builds(lambda d, s: pb.DepositRequest(data=d, end=pb.DepositEnd(size=s)).SerializeToString(),
              st.binary(max_size=50), st.integers(0, 2**40)),
    st.builds(lambda d, v: pb.DepositRequest(header=pb.DepositHeader(vault=v, name="n"), data=d).SerializeToString(),
              st.binary(max_size=50), st.text(max_size=10)),
    st.builds(lambda d, x: b"\x12" + _overlong(len(d), x) + d, st.binary(max_size=200), st.integers(0, 4)),
    st.builds(lambda a, b: b"\x12" + varint(len(a)) + a + b"\x12" + varint(len(b)) + b,
              st.binary(max_size=20), st.binary(max_size=20)),  # repeated field: protobuf keeps the last
    st.binary(max_size=40),  # anything at all, most of it not a message
)


@settings(max_examples=600, deadline=None)
@given(messages)
def test_a_view_is_taken_only_where_protobuf_reads_the_same_data(raw: bytes) -> None:
    view = only_field(raw, 2)
    parsed = _lenient(pb.DepositRequest)(raw)
    if view is not None:
        assert isinstance(parsed, _DepositData) and parsed.data == view and parsed.data.obj is raw
        assert view.readonly and view.obj is raw  # no copy: a view of the received message
        reference = pb.DepositRequest.FromString(raw)
        assert bytes(view) == reference.data
        assert not any(reference.HasField(f) for f in ("header", "end"))
    else:
        assert not isinstance(parsed, _DepositData)
        if not isinstance(parsed, _Malformed):
            assert isinstance(parsed, pb.DepositRequest)


def test_data_messages_become_views_and_others_are_parsed() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: a three-byte length
    raw = pb.DepositRequest(data=data).SerializeToString()
    got = _lenient(pb.DepositRequest)(raw)
    assert isinstance(got, _DepositData) and got.data == data and not got.HasField("header")
    header = pb.DepositRequest(header=pb.DepositHeader(vault="supplier-1", name="a")).SerializeToString()
    assert _lenient(pb.DepositRequest)(header).header.vault == "supplier-1"
    last = pb.DepositRequest(data=b"xy", end=pb.DepositEnd(size=2)).SerializeToString()
    parsed = _lenient(pb.DepositRequest)(last)
    assert isinstance(parsed, pb.DepositRequest) and parsed.end.size == 2 and parsed.data == b"xy"
    # a length that runs past the message, or stops short of it, is not a data-only message
    assert only_field(b"\x12\x05abc", 2) is None and only_field(b"\x12\x01abc", 2) is None
    assert isinstance(_lenient(pb.DepositRequest)(b"\x12\x05abc"), _Malformed)
    # other messages are not read by hand, even with the same bytes
    assert not isinstance(_lenient(pb.ReadRequest)(raw), _DepositData)


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
stats = st.builds(
    t.ObjectStat, vault=texts, name=texts, version=st.integers(0, 2**64 - 1), object_id=texts,
    size=st.integers(0, 2**64 - 1), sha256=st.binary(min_size=32, max_size=32), hash_algorithm=texts,
    content_type=texts, metadata=st.dictionaries(texts, texts, max_size=64), depositor=texts,
    deposited_at_ns=st.integers(-2**63, 2**63 - 1), retain_until=st.none() | st.integers(-2**63, 2**63 - 1),
    legal_hold=st.booleans())


@given(stats)
@settings(max_examples=300, deadline=None)
def test_stat_wire_size_bounds_a_list_entry(s: t.ObjectStat) -> None:
    """The core ends a List page by this estimate: it is never below an entry's encoded size."""
    assert stat_wire_size(s) >= pb.ListResponse(objects=[convert.stat_to_pb(s)]).ByteSize()

from __future__ import annotations

import pytest
from core_support import PERMITS, pieces, random_bytes

from vaultd.core.vaults import Vaults
from vaultd.errors import InvalidArgument, NotFound
from vaultd.types import DepositHeader

V = "citizen-bob"


@pytest.mark.parametrize(
    "offset,length",
    [(0, None), (0, 1), (1, 10), (65_535, 2), (300_000, 1 << 20), ((10 << 20) - 5, None), (10 << 20, None), (5, 0)],
)
def test_read_offset_length(vaults: Vaults, offset: int, length: int | None) -> None:
    data = random_bytes(10 << 20, 11)
    vaults.deposit(PERMITS, DepositHeader(V, "o"), pieces(data, 1 << 20))
    _, it = vaults.read(PERMITS, V, "o", offset=offset, length=length)
    end = len(data) if length is None else offset + length
    assert b"".join(it) == data[offset:end]


def test_read_errors(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "o"), [b"abc"])
    with pytest.raises(InvalidArgument):
        vaults.read(PERMITS, V, "o", offset=4)
    with pytest.raises(InvalidArgument):
        vaults.read(PERMITS, V, "o", offset=-1)
    with pytest.raises(NotFound):
        vaults.read(PERMITS, V, "nope")
    with pytest.raises(NotFound):
        vaults.read(PERMITS, V, "o", version=2)
    with pytest.raises(NotFound):
        vaults.read(PERMITS, "citizen-ghost", "o")


def test_list_pages_prefix_versions_count(vaults: Vaults) -> None:
    names = [f"dir/{i:03d}" for i in range(25)] + ["other"]
    for n in names:
        vaults.deposit(PERMITS, DepositHeader(V, n), [n.encode()])
    vaults.deposit(PERMITS, DepositHeader(V, "dir/003"), [b"v2"])
    seen: list[str] = []
    token = ""
    while True:
        page, token = vaults.list(PERMITS, V, "dir/", page_size=10, page_token=token)
        assert len(page) <= 10
        seen += [s.name for s in page]
        if not token:
            break
    assert seen == names[:25]
    page, _ = vaults.list(PERMITS, V, "dir/003")
    assert [(s.name, s.version) for s in page] == [("dir/003", 2)]
    allv: list[tuple[str, int]] = []
    token = ""
    while True:
        page, token = vaults.list(PERMITS, V, "dir/00", page_size=3, page_token=token, versions=True)
        allv += [(s.name, s.version) for s in page]
        if not token:
            break
    assert allv == [(f"dir/00{i}", 1) for i in range(3)] + [("dir/003", 1), ("dir/003", 2)] + [
        (f"dir/00{i}", 1) for i in range(4, 10)
    ]
    assert vaults.count(PERMITS, V) == 26
    assert vaults.count(PERMITS, V, "dir/") == 25
    with pytest.raises(InvalidArgument):
        vaults.list(PERMITS, V, page_token="garbage!")

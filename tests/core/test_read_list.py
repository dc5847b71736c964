from __future__ import annotations

import base64
import json

import pytest
from core_support import PERMITS, pieces, random_bytes

from vaultd.core.vaults import MAX_META, Vaults, stat_wire_size
from vaultd.errors import InvalidArgument, NotFound
from vaultd.store.keys import NAME_KEY_MAX, name_key
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


def _all_pages(vaults: Vaults, prefix: str, page_size: int, versions: bool,
               max_bytes: int | None = None) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    token = ""
    for _ in range(1000):
        page, token = vaults.list(PERMITS, V, prefix, page_size=page_size, page_token=token, versions=versions,
                                  max_bytes=max_bytes)
        assert len(page) <= page_size
        out += [(s.name, s.version) for s in page]
        if not token:
            return out
    raise AssertionError("the listing does not end")


@pytest.mark.parametrize("versions", [True, False])
@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_list_pages_resume_by_key_with_long_names(vaults: Vaults, page_size: int, versions: bool) -> None:
    """Names over NAME_KEY_MAX bytes are keyed by a digest, so key order is not name order: a page
    resumes at the key of its last entry, and every (name, version) comes back exactly once."""
    long = "p/" + "x" * (NAME_KEY_MAX + 20)
    names = [long + "1", long + "2", long + "3", "p/a", "p/" + "x" * 10, "p/z"]
    assert sorted(names, key=name_key) != sorted(names)  # the digest orders the long ones otherwise
    expected: list[tuple[str, int]] = []
    for n in names:
        for v in (1, 2):
            vaults.deposit(PERMITS, DepositHeader(V, n), [f"{n}{v}".encode()])
            if versions:
                expected.append((n, v))
        if not versions:
            expected.append((n, 2))
    vaults.deposit(PERMITS, DepositHeader(V, "q/outside"), [b"x"])
    got = _all_pages(vaults, "p/", page_size, versions)
    assert sorted(got) == sorted(expected)
    assert len(got) == len(expected)
    # and in one page: the same entries in the same (key) order
    assert _all_pages(vaults, "p/", 1000, versions) == got


def test_list_ends_a_page_at_max_bytes(vaults: Vaults) -> None:
    md = {f"k{i:02d}" + "k" * 100: "v" * 1000 for i in range(MAX_META)}
    for i in range(12):
        vaults.deposit(PERMITS, DepositHeader(V, f"big/{i:02d}", metadata=md), [b"x"])
        vaults.deposit(PERMITS, DepositHeader(V, f"big/{i:02d}", metadata=md), [b"y"])
    one, _ = vaults.list(PERMITS, V, "big/", page_size=1)
    budget = 3 * stat_wire_size(one[0]) + 10
    for versions in (False, True):
        page, token = vaults.list(PERMITS, V, "big/", page_size=1000, versions=versions, max_bytes=budget)
        assert len(page) == 3 and token
        got = _all_pages(vaults, "big/", 1000, versions, max_bytes=budget)
        assert sorted(got) == sorted((f"big/{i:02d}", v) for i in range(12) for v in ((1, 2) if versions else (2,)))
    # a budget below one entry still lists one entry per page
    page, token = vaults.list(PERMITS, V, "big/", page_size=1000, max_bytes=1)
    assert len(page) == 1 and token


def test_list_page_token_refused_unless_from_the_same_listing(vaults: Vaults) -> None:
    for n in ("a/1", "a/2", "b/1", "b/2"):
        vaults.deposit(PERMITS, DepositHeader(V, n), [b"x"])
        vaults.deposit(PERMITS, DepositHeader(V, n), [b"y"])
    vaults.create_vault(PERMITS, "citizen-carol")
    vaults.deposit(PERMITS, DepositHeader("citizen-carol", "a/1"), [b"x"])
    vaults.deposit(PERMITS, DepositHeader("citizen-carol", "a/2"), [b"x"])
    _, token = vaults.list(PERMITS, V, "a/", page_size=1)
    assert token
    assert [s.name for s in vaults.list(PERMITS, V, "a/", page_size=1, page_token=token)[0]] == ["a/2"]
    scope = json.loads(base64.urlsafe_b64decode(token))[0]

    def tok(v: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(v).encode()).decode()

    bad = [
        tok([1, 0]), tok(["\ud800", 0]), tok([["a"], 0]),  # the shapes of the former tokens
        tok([scope, 1, 0]), tok([scope, "\ud800", 0]), tok([scope, ["a"], 0]), tok([scope, "a/1", "1"]),
        tok([scope, "a/1", True]), tok([scope, "a/1", -1]), tok([scope, "a/1", 1 << 64]), tok([scope, "a/1"]),
        tok([scope, "b/1", 0]),  # a name outside the prefix
        tok([scope, "a/\x00", 0]), tok([scope, "a/" + "x" * 2000, 0]), tok({"a": 1}), tok([[[[[]]]]] * 3),
        tok([[]] * 5000), "[" * 3000, base64.urlsafe_b64encode(b"[" * 3000).decode(), "\u00e9", "garbage!",
    ]
    for t in bad:
        with pytest.raises(InvalidArgument, match="invalid page token"):
            vaults.list(PERMITS, V, "a/", page_size=1, page_token=t)
    # a token of one listing is refused by another: other prefix, other vault, other versions flag
    for vault, prefix, versions in ((V, "b/", False), (V, "", False), ("citizen-carol", "a/", False),
                                    (V, "a/", True)):
        with pytest.raises(InvalidArgument, match="invalid page token"):
            vaults.list(PERMITS, vault, prefix, page_size=1, page_token=token, versions=versions)

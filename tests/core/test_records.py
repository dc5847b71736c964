"""The deposit unit's record encodings made without the general encoder (object head, request record)
are byte for byte what the general encoder writes, and the head's fast reading agrees with JSON's.
Stored records are compared and hashed as bytes (request retries, backups), so any difference would
be a change of format."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd.core.vaults import _dumps, _head_bytes, _next_version, _request_record

versions = st.integers(min_value=0, max_value=2**63 - 1)
texts = st.text(max_size=40)  # any Unicode, escapes and surrogates included
metadata = st.dictionaries(texts, texts, max_size=4)


@given(versions)
def test_head_bytes_are_the_encoders(latest: int) -> None:
    head = _head_bytes(latest, latest + 1)
    assert head == _dumps({"next": latest + 1, "latest": latest})
    assert _next_version(head) == latest + 1


@given(st.one_of(versions.map(lambda v: {"next": v + 1, "latest": v}),
                 st.fixed_dictionaries({"next": versions, "latest": versions, "extra": texts})))
def test_next_version_of_any_stored_head(head: dict[str, object]) -> None:
    """Heads in the fast path's exact form and heads it does not know (older or hand-made forms, with
    spaces or more fields) give the same next version as JSON."""
    for raw in (_dumps(head), json.dumps(head).encode(), json.dumps(head, indent=1).encode()):
        assert _next_version(raw) == head["next"]
    assert _next_version(None) == 1


@settings(max_examples=300)
@given(vault=texts, name=texts, version=versions, request_id=texts, dedup=versions, stored=versions,
       meta=metadata, retain=st.none() | versions, index=st.none() | versions)
def test_request_record_is_the_encoders(vault: str, name: str, version: int, request_id: str, dedup: int,
                                        stored: int, meta: dict[str, str], retain: int | None,
                                        index: int | None) -> None:
    rec: dict[str, object] = {
        "object_id": "ab" * 16, "size": stored, "sha256": "00" * 32, "content_type": name,
        "metadata": meta, "depositor": vault, "deposited_at_ns": dedup, "retain_until": retain,
        "legal_hold": False, "request_id": request_id,
    }
    if index is not None:
        rec["journal_index"] = index
    expected = _dumps({"vault": vault, "name": name, "version": version, "stat": rec,
                       "request_id": request_id, "dedup_bytes": dedup, "stored_bytes": stored})
    assert _request_record(vault, name, version, _dumps(rec), request_id, dedup, stored) == expected
    assert json.loads(expected)["stat"] == rec

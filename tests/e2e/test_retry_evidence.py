"""An idempotent retry (same request id) returns the first receipt with its evidence, which verifies
offline, through the real daemon."""

from __future__ import annotations

import json

from servers import RunningServer, new_vault_id
from vaultd.journal.receipt import verify_receipt


def test_a_retry_returns_the_first_receipt_with_its_evidence(vault_server: RunningServer) -> None:
    c = vault_server.client("permits")
    vault = new_vault_id()
    c.create_vault(vault)
    doc = b"application form 2026-0099\n" * 40
    first = c.deposit(vault, "form.txt", doc, request_id="req-0099")
    c.deposit(vault, "other.txt", b"later work")  # the journal grows meanwhile
    again = c.deposit(vault, "form.txt", doc, request_id="req-0099")
    assert again.stat == first.stat and again.request_id == "req-0099"
    assert first.evidence and again.evidence
    a, b = json.loads(first.evidence), json.loads(again.evidence)
    assert a["kind"] == b["kind"] == "deposit"
    assert a["leaf_index"] == b["leaf_index"] and a["leaf"] == b["leaf"]  # the same journal entry
    key = c.journal_public_key().verifier_key
    assert verify_receipt(again.evidence, doc, key).ok
    assert c.count(vault) == 2  # nothing stored twice

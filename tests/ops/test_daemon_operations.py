"""The daemon's operations wiring, over a real daemon (mTLS, LMDB, journal): storage counters kept
with the data, the recording helpers of the writer, the Rust core, the journal and integrity
errors, the certificates watched, the gauges set at start from what is recorded, and the scheduled
scrub configured like every other setting."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from servers import RunningServer, new_vault_id, start_server
from vaultd.config import load_config
from vaultd.errors import IntegrityError, VaultError
from vaultd.types import Identity

OPERATOR = Identity("operator", "admin")


def sample(srv: RunningServer, name: str, labels: dict[str, str] | None = None) -> float | None:
    """A value as a scrape would see it (storage gauges are read by the scrape itself)."""
    return srv.daemon.metrics.registry.get_sample_value(name, labels or {})


def test_storage_counters_follow_deposits_destroys_rotation_and_restart(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    c = srv.client("permits")
    v1, v2 = new_vault_id(), new_vault_id()
    try:
        assert sample(srv, "vaultd_store_logical_bytes") == 0
        assert sample(srv, "vaultd_key_kek_versions_in_use") == 0
        c.create_vault(v1)
        c.create_vault(v2)
        same = os.urandom(70_000)
        c.deposit(v1, "a", same)
        c.deposit(v1, "a", same)  # a second version: logical bytes count it, stored bytes do not
        c.deposit(v1, "b", os.urandom(3_000))
        c.deposit(v2, "c", os.urandom(12_345))
        assert sample(srv, "vaultd_store_logical_bytes") == 2 * 70_000 + 3_000 + 12_345
        assert sample(srv, "vaultd_store_object_versions") == 4
        assert sample(srv, "vaultd_store_vaults") == 2
        stored = sample(srv, "vaultd_store_stored_bytes")
        assert stored is not None and 70_000 + 15_345 <= stored < 2 * 70_000 + 15_345
        assert sample(srv, "vaultd_key_kek_versions_in_use") == 1

        c.destroy(v1, "a", version=1)
        assert sample(srv, "vaultd_store_logical_bytes") == 70_000 + 3_000 + 12_345

        # rotation re-wraps every vault key: still one version in use, the new one
        op = srv.client("op-admin")
        new = op.rotate_keys()
        assert sample(srv, "vaultd_key_kek_current_version") == new == 2
        assert sample(srv, "vaultd_key_kek_versions_in_use") == 1

        # destroying a vault gives back its whole share at once
        op.destroy_vault(v2)
        assert sample(srv, "vaultd_store_logical_bytes") == 70_000 + 3_000
        assert sample(srv, "vaultd_store_vaults") == 1
        journal_leaves = sample(srv, "vaultd_journal_leaves")
        assert journal_leaves == srv.daemon.journal.tree.size()
    finally:
        srv.stop()

    # the counters live in the store: a restarted daemon reads them, no scan
    again = start_server(tmp_path / "a")
    try:
        assert sample(again, "vaultd_store_logical_bytes") == 73_000
        assert sample(again, "vaultd_key_kek_versions_in_use") == 1
        # a store without the stats record (made before it existed) is counted once at open
        store = again.daemon.vaults.store
        store.write(lambda t: t.raw.drop(store.databases()["stats"], delete=False))
    finally:
        again.stop()
    counted = start_server(tmp_path / "a")
    try:
        assert sample(counted, "vaultd_store_logical_bytes") == 73_000
        assert sample(counted, "vaultd_key_kek_versions_in_use") == 1
    finally:
        counted.stop()


def test_recording_helpers_and_integrity_errors(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    try:
        d = srv.daemon
        c = srv.client("permits")
        vault = new_vault_id()
        c.create_vault(vault)
        data = os.urandom(200_000)
        c.deposit(vault, "doc", data)
        assert c.read_bytes(vault, "doc") == data
        # the writer: every committed transaction observed, with its batch size and time
        committed = sample(srv, "vaultd_writer_transactions_total", {"outcome": "committed"})
        assert committed is not None and committed >= 3
        assert sample(srv, "vaultd_writer_batch_operations_count") == committed
        assert (sample(srv, "vaultd_writer_batch_operations_sum") or 0) >= committed
        assert sample(srv, "vaultd_writer_queue_operations") is not None
        # the Rust core: one ingest of the document's bytes, its chunks opened for the read
        assert sample(srv, "vaultd_crypto_batch_bytes_sum", {"operation": "ingest"}) == len(data)
        chunks = sample(srv, "vaultd_crypto_batch_items_sum", {"operation": "ingest"})
        assert chunks is not None and chunks >= 1
        assert sample(srv, "vaultd_crypto_batch_items_sum", {"operation": "open"}) == chunks
        # the journal: each leaf appended is counted once a checkpoint covers it
        size = d.journal.head().checkpoint.size
        assert sample(srv, "vaultd_journal_leaves_appended_total") == size
        assert (sample(srv, "vaultd_journal_checkpoints_signed_total") or 0) >= 3
        c.inclusion_proof(0)
        assert sample(srv, "vaultd_journal_proofs_served_total", {"kind": "inclusion"}) == 1

        # one flipped bit in a sealed chunk: the read refuses it and counts it, check counts it
        store = d.vaults.store
        with store.read() as r:
            cid = next(iter(r.iter_chunks(vault)))[0]

        def corrupt(t) -> None:  # type: ignore[no-untyped-def]
            sealed = bytearray(t.get_chunk(vault, cid))
            sealed[40] ^= 1
            t.raw.put(vault.encode() + b"\0" + cid, bytes(sealed), db=store.databases()["chunks"])

        store.write(corrupt)
        with pytest.raises(IntegrityError):
            c.read_bytes(vault, "doc")
        assert sample(srv, "vaultd_integrity_errors_total", {"where": "read"}) == 1
        report = d.vaults.check(OPERATOR, vault)
        assert len(report.problems) == 1
        assert sample(srv, "vaultd_integrity_errors_total", {"where": "check"}) == 1
        assert sample(srv, "vaultd_integrity_errors_total", {"where": "scrub"}) == 0
    finally:
        srv.stop()


def test_certificates_watched_and_start_gauges(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a", scrub_interval=0.3, scrub_bytes_per_second=0, scrub_busy_share=0.5)
    try:
        from cryptography import x509

        # the scheduled scrub gives way to the calls this daemon's server counts
        scrub = srv.daemon.scrubber
        assert scrub.traffic is srv.daemon.traffic and scrub.busy_share == 0.5

        pki = srv.data_dir / "pki"
        for role, path in (("server", pki / "server.pem"), ("client_ca", pki / "ca.pem"),
                           ("citizen_ca", srv.data_dir / "citizen-ca" / "ca.pem")):
            want = min(c.not_valid_after_utc.timestamp()
                       for c in x509.load_pem_x509_certificates(path.read_bytes()))
            assert sample(srv, "vaultd_certificate_expiry_timestamp_seconds", {"role": role}) == want
        c = srv.client("permits")
        vault = new_vault_id()
        c.create_vault(vault)
        c.deposit(vault, "doc", os.urandom(5000))
        # the scheduled scrub (interval from the configuration): a clean pass, in the metrics
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                srv.daemon.scrubber.last and srv.daemon.scrubber.last.objects >= 1):
            time.sleep(0.05)
        last = srv.daemon.scrubber.last
        assert last is not None and last.clean and last.objects >= 1
        clean_at = sample(srv, "vaultd_scrub_last_success_timestamp_seconds")
        assert clean_at is not None and abs(clean_at - time.time()) < 30
        signed_at = sample(srv, "vaultd_journal_last_checkpoint_timestamp_seconds")
        assert signed_at is not None and abs(signed_at - time.time()) < 30
    finally:
        srv.stop()
    assert srv.daemon.scrubber._thread is None  # stopped with the daemon

    # restarted without a schedule: the gauges come from what the store and journal recorded
    again = start_server(tmp_path / "a", scrub_interval=0)
    try:
        assert again.daemon.scrubber is None
        assert sample(again, "vaultd_scrub_last_problems") == 0
        restored = sample(again, "vaultd_scrub_last_success_timestamp_seconds")
        assert restored is not None and abs(restored - clean_at) < 2  # the last clean pass, not now
        head_at = sample(again, "vaultd_journal_last_checkpoint_timestamp_seconds")
        assert head_at is not None and head_at >= signed_at - 1
        assert again.daemon.metrics_port is None  # metrics off in this test server

        # a store whose stats record holds no scrub (older): the last check leaf of the journal
        def forget(t) -> None:  # type: ignore[no-untyped-def]
            t.put_stat("scrub/last_clean_ns", 0)
            t.put_stat("scrub/last_problems", 0)

        again.daemon.vaults.store.write(forget)
    finally:
        again.stop()
    third = start_server(tmp_path / "a", scrub_interval=0)
    try:
        from vaultd.scrub import last_pass

        assert last_pass(third.daemon.vaults.store) == (None, None)
        from_leaf = sample(third, "vaultd_scrub_last_success_timestamp_seconds")
        assert from_leaf is not None and abs(from_leaf - restored) < 1e-3
        assert sample(third, "vaultd_scrub_last_problems") == 0
    finally:
        third.stop()


def test_scrub_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "vaultd.toml"
    toml.write_text("scrub_interval = 3600\nscrub_bytes_per_second = 1048576\n")
    cfg = load_config(toml, env={})
    assert (cfg.scrub_interval, cfg.scrub_bytes_per_second) == (3600.0, 1048576.0)
    cfg = load_config(toml, env={"VAULTD_SCRUB_INTERVAL": "60"})
    assert cfg.scrub_interval == 60.0
    cfg = load_config(toml, env={"VAULTD_SCRUB_INTERVAL": "60"},
                      overrides={"scrub_interval": 0.0, "scrub_bytes_per_second": None})
    assert (cfg.scrub_interval, cfg.scrub_bytes_per_second) == (0.0, 1048576.0)
    from vaultd.cli.daemon import build_parser

    args = build_parser().parse_args(["serve", "--scrub-interval", "120", "--scrub-bytes-per-second", "5e6"])
    assert (args.scrub_interval, args.scrub_bytes_per_second) == (120.0, 5e6)
    bad = load_config(None, env={"VAULTD_SCRUB_INTERVAL": "-1"}, overrides={"dev": True})
    with pytest.raises(VaultError):
        bad.resolved().validate()
    assert load_config(None, env={}).scrub_busy_share == 0.02
    assert load_config(None, env={"VAULTD_SCRUB_BUSY_SHARE": "0.25"}).scrub_busy_share == 0.25
    args = build_parser().parse_args(["serve", "--scrub-busy-share", "1"])
    assert args.scrub_busy_share == 1.0
    for share in ("0", "-0.1", "1.5"):
        bad = load_config(None, env={"VAULTD_SCRUB_BUSY_SHARE": share}, overrides={"dev": True})
        with pytest.raises(VaultError, match="scrub_busy_share"):
            bad.resolved().validate()


def test_master_key_rotation_deadline(tmp_path: Path) -> None:
    """vaultd_key_expiry_timestamp_seconds{role="kek"}: when the current master key version came into
    use plus key_max_age_days; a rotation moves it; it survives a restart (kept in the store)."""
    before = time.time()
    srv = start_server(tmp_path / "k", key_max_age_days=30.0)
    try:
        since = sample(srv, "vaultd_key_kek_current_since_timestamp_seconds")
        assert since is not None and before - 1 <= since <= time.time() + 1
        assert sample(srv, "vaultd_key_expiry_timestamp_seconds", {"role": "kek"}) == since + 30 * 86400
        time.sleep(1.1)  # the record has a one-second resolution
        srv.client("op-admin").rotate_keys()
        rotated = sample(srv, "vaultd_key_kek_current_since_timestamp_seconds")
        assert rotated is not None and rotated > since
        assert sample(srv, "vaultd_key_expiry_timestamp_seconds", {"role": "kek"}) == rotated + 30 * 86400
    finally:
        srv.stop()
    again = start_server(tmp_path / "k", key_max_age_days=30.0)
    try:
        assert sample(again, "vaultd_key_kek_current_since_timestamp_seconds") == rotated
    finally:
        again.stop()

"""vaultd.metrics: names, conventions, scrape-time storage gauges and the HTTP endpoint."""

from __future__ import annotations

import re
import urllib.request

import pytest

from vaultd.metrics import STORAGE_GAUGES, Metrics, parse_listen, start_metrics_server

FORBIDDEN_LABELS = {"vault", "vault_id", "user", "identity", "name", "object", "digest", "sha256"}


def test_names_follow_conventions() -> None:
    m = Metrics()
    families = [f for f in m.registry.collect() if f.name.startswith("vaultd_")]
    assert len(families) > 30
    for f in families:
        assert re.fullmatch(r"vaultd_[a-z0-9_]+", f.name), f.name
        if f.type == "counter":
            # prometheus-client strips _total from the family name and adds it to the sample
            assert any(s.name.endswith("_total") for s in f.samples) or not f.samples, f.name
        for s in f.samples:
            assert not (set(s.labels) & FORBIDDEN_LABELS), (s.name, s.labels)
    text = m.exposition().decode()
    for unit_hint in ("_seconds", "_bytes"):
        assert unit_hint in text
    assert "_milliseconds" not in text and "_kilobytes" not in text


def test_storage_source_read_at_scrape_time() -> None:
    m = Metrics()
    state = {"objects": 1.0}
    m.set_storage_source(lambda: {"objects": state["objects"], "stored_bytes": 300,
                                  "logical_bytes": 900, "map_size_bytes": 1 << 30,
                                  "map_used_bytes": 1 << 20})
    assert m.registry.get_sample_value("vaultd_store_objects") == 1
    state["objects"] = 7
    assert m.registry.get_sample_value("vaultd_store_objects") == 7
    assert m.registry.get_sample_value("vaultd_lmdb_map_used_bytes") == 1 << 20
    m.set_storage_source(None)
    assert m.registry.get_sample_value("vaultd_store_objects") is None


def test_failing_or_unknown_source_counts_errors_and_keeps_the_rest() -> None:
    m = Metrics()
    m.set_storage_source(lambda: {"chunks": 5, "no_such_key": 1})
    text = m.exposition().decode()  # one scrape
    assert "vaultd_store_chunks 5.0" in text
    assert "vaultd_metrics_source_errors_total 1.0" in text  # reported in the same scrape

    def broken() -> dict[str, float]:
        raise OSError("lmdb gone")

    m.set_storage_source(broken)
    text = m.exposition().decode()
    assert "vaultd_store_chunks " not in text
    assert "process_cpu_seconds_total" in text  # the rest of the scrape still works
    assert "vaultd_metrics_source_errors_total 2.0" in text


def test_every_storage_key_has_a_distinct_gauge() -> None:
    names = [n for n, _ in STORAGE_GAUGES.values()]
    assert len(names) == len(set(names))
    m = Metrics()
    m.set_storage_source(lambda: {k: i for i, k in enumerate(STORAGE_GAUGES)})
    for i, (name, _) in enumerate(STORAGE_GAUGES.values()):
        assert m.registry.get_sample_value(name) == i


def test_recording_helpers() -> None:
    m = Metrics()
    m.observe_commit(12, 0.004)
    m.observe_commit(1, 0.001)
    m.observe_commit(3, 0.5, committed=False)
    assert m.registry.get_sample_value("vaultd_writer_batch_operations_sum") == 13
    assert m.registry.get_sample_value("vaultd_writer_transactions_total",
                                       {"outcome": "committed"}) == 2
    assert m.registry.get_sample_value("vaultd_writer_transactions_total",
                                       {"outcome": "aborted"}) == 1
    with m.time_crypto("ingest", 64, 4 << 20):
        pass
    assert m.registry.get_sample_value("vaultd_crypto_batch_items_sum",
                                       {"operation": "ingest"}) == 64
    m.checkpoint_signed(at=1_700_000_000)
    assert m.registry.get_sample_value(
        "vaultd_journal_last_checkpoint_timestamp_seconds") == 1_700_000_000
    m.proof_served("inclusion")
    assert m.registry.get_sample_value("vaultd_journal_proofs_served_total",
                                       {"kind": "inclusion"}) == 1
    m.scrub_finished(objects=10, nbytes=1000, problems=0, at=1_700_000_100)
    m.scrub_finished(objects=10, nbytes=1000, problems=2, at=1_700_000_200)
    # a scrub that found problems is not a success
    assert m.registry.get_sample_value(
        "vaultd_scrub_last_success_timestamp_seconds") == 1_700_000_100
    assert m.registry.get_sample_value("vaultd_scrub_last_problems") == 2
    assert m.registry.get_sample_value("vaultd_scrub_errors_total") == 2
    m.integrity_error("read")
    assert m.registry.get_sample_value("vaultd_integrity_errors_total", {"where": "read"}) == 1
    m.set_certificate_expiry("server", 1_800_000_000)
    assert m.registry.get_sample_value("vaultd_certificate_expiry_timestamp_seconds",
                                       {"role": "server"}) == 1_800_000_000


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:0", ("::1", 0)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("bad", ["9464", ":9464", "host:", "host:99999", "host:x"])
def test_parse_listen_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(bad)


def test_http_endpoint_serves_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_commit(5, 0.01)
    with start_metrics_server(a, "127.0.0.1:0") as sa, start_metrics_server(b, "127.0.0.1:0") as sb:
        assert sa.port != sb.port and sa.port > 0
        ta = urllib.request.urlopen(sa.url, timeout=5).read().decode()
        tb = urllib.request.urlopen(sb.url, timeout=5).read().decode()
    assert 'vaultd_writer_transactions_total{outcome="committed"} 1.0' in ta
    assert 'vaultd_writer_transactions_total{outcome="committed"} 0.0' in tb


def test_watched_certificate_follows_renewal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    from ops_tls import make_tls

    m = Metrics()
    first = make_tls(days=30)
    path = tmp_path / "server.pem"
    path.write_bytes(first.cert_pem)
    assert m.watch_certificate("server", path) == first.not_after.timestamp()
    renewed = make_tls(days=90)
    path.write_bytes(renewed.cert_pem + first.ca_pem)  # a bundle: the earliest expiry counts
    os.utime(path, ns=(1, 10**18))  # a distinct modification time, whatever the clock's grain
    from cryptography import x509

    expiry = min(c.not_valid_after_utc.timestamp()
                 for c in x509.load_pem_x509_certificates(path.read_bytes()))
    assert expiry < renewed.not_after.timestamp() - 50 * 86400  # the old CA's, not the new cert's
    m.exposition()
    assert m.registry.get_sample_value("vaultd_certificate_expiry_timestamp_seconds",
                                       {"role": "server"}) == expiry
    path.write_bytes(renewed.cert_pem)
    os.utime(path, ns=(2, 2 * 10**18))
    m.exposition()
    assert m.registry.get_sample_value("vaultd_certificate_expiry_timestamp_seconds",
                                       {"role": "server"}) == renewed.not_after.timestamp()
    path.unlink()  # unreadable: the last value stays, the error is counted
    text = m.exposition().decode()
    assert "vaultd_metrics_source_errors_total 1.0" in text

"""ops/grafana/vaultd.json: valid dashboard JSON, every expression parses as PromQL (promtool)
and reads only metrics vaultd/metrics.py defines (or recording rules of alerts.yml), and the
dashboard covers each area the operators watch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from vaultd.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "vaultd.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:
    raise RuntimeError("promtool not found: install the Debian package 'prometheus' (scripts/setup)")

# PromQL functions and keywords that look like identifiers in an expression
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "time", "le", "without", "on",
    "ignoring", "and", "or", "unless", "avg", "max", "min", "count", "label_values",
}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def expressions(d: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(d) for t in p.get("targets", [])]


def concrete(expr: str) -> str:
    """Grafana variables replaced by values Prometheus accepts."""
    return expr.replace("$__rate_interval", "1m").replace("$instance", ".*")


def recorded() -> set[str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def test_structure() -> None:
    d = load()
    assert d["uid"] and d["title"] == "vaultd"
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
    names = {v["name"] for v in d["templating"]["list"]}
    assert names == {"datasource", "instance"}


def test_expressions_read_only_defined_metrics() -> None:
    d = load()
    defined = Metrics().metric_names() | recorded()
    exprs = expressions(d) + [v["definition"] for v in d["templating"]["list"] if "definition" in v]
    assert len(exprs) >= 30
    for expr in exprs:
        no_labels = re.sub(r"\{[^}]*\}", "", expr)
        no_strings = re.sub(r'"[^"]*"', "", no_labels)
        no_ranges = re.sub(r"\[[^\]]*\]", "", no_strings)
        idents = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", no_ranges)) - PROMQL_WORDS
        idents = {i for i in idents if not re.fullmatch(r"[0-9.e]+", i)}
        assert idents, expr
        unknown = {i for i in idents if i not in defined}
        # the labels used by "by (...)" are not metrics
        unknown -= {"grpc_method", "grpc_code", "grpc_service", "grpc_type", "operation", "kind",
                    "outcome", "where", "role", "instance"}
        assert unknown == set(), f"{expr}: {unknown}"


def test_expressions_parse(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": concrete(e)}
        for i, e in enumerate(expressions(load()))]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_covers_every_area() -> None:
    d = load()
    rows = {p["title"] for p in d["panels"] if p["type"] == "row"}
    assert rows >= {"Traffic", "Errors", "Latency", "Storage and deduplication", "Journal",
                    "Scrub and integrity", "Keys and certificates"}
    text = " ".join(expressions(d))
    for needle in ("vaultd_grpc_server_handled_total", "histogram_quantile",
                   "vaultd_store_logical_bytes{instance=~\"$instance\"}) / sum(vaultd_store_stored_bytes",
                   "vaultd_lmdb_map_used_bytes", "vaultd_journal_last_checkpoint_timestamp_seconds",
                   "vaultd_scrub_last_success_timestamp_seconds",
                   "vaultd_certificate_expiry_timestamp_seconds", "vaultd_key_kek_versions_in_use"):
        assert needle in text, needle

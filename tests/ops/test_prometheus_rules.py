"""The Prometheus scrape config and alert rules: promtool checks and unit tests, and the
conventions every alert must keep (severity, runbook link to an existing anchor, tests both
firing and not firing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vaultd.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "ops" / "prometheus"
RUNBOOK = ROOT / "ops" / "RUNBOOK.md"
TESTS = ("alerts_test.yml", "alerts_days_test.yml")

PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:  # a failure, not a skip: the rule tests are part of the suite
    raise RuntimeError("promtool not found: install the Debian package 'prometheus' (scripts/setup)")


def promtool(*args: str) -> str:
    done = subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def alert_rules() -> list[dict]:  # type: ignore[type-arg]
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_check_rules() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in out


def test_check_config() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "valid prometheus config" in out


def test_rule_unit_tests() -> None:
    out = promtool("test", "rules", *TESTS)
    assert out.count("SUCCESS") == len(TESTS)


def test_unit_tests_fail_when_a_rule_is_wrong(tmp_path: Path) -> None:
    # the unit tests can fail: loosen one threshold and they must catch it
    broken = (PROM / "alerts.yml").read_text().replace(
        "vaultd:grpc_server_errors:ratio_rate5m > 0.05", "vaultd:grpc_server_errors:ratio_rate5m > 0.001")
    assert broken != (PROM / "alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROM / "alerts_test.yml", tmp_path)
    done = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "VaultdHighErrorRatio" in done.stdout + done.stderr


def test_every_alert_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for name in TESTS:
        doc = yaml.safe_load((PROM / name).read_text())
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert len(names) >= 12
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:  # GitHub's rule: lower case, drop punctuation, spaces to hyphens
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_alert_has_severity_and_a_runbook_section() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "ops/RUNBOOK.md", url
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in ops/RUNBOOK.md"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("name", ["alerts.yml"])
def test_rules_use_only_defined_metrics(name: str) -> None:
    """Every vaultd_ metric the rules read is one vaultd/metrics.py defines."""
    defined = Metrics().metric_names()
    text = (PROM / name).read_text()
    used = set(re.findall(r"\b(vaultd_[a-z0-9_]+)", text))
    assert used, "no vaultd metric in the rules"
    assert used - defined == set()

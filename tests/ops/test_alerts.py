"""The Prometheus files in ops/prometheus/ are valid and their alert rules behave as their unit tests say.

``promtool`` (Debian package ``prometheus``) checks the rules and the deployment's
scrape config and runs ``alerts_test.yml``; these tests also hold every alert to
the house rules: a ``for:``, a severity, a summary and a description that quote
the value, and at least one unit-test case where it fires and one where it must not.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

OPS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
SEVERITIES = {"warning", "critical"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not installed (apt-get install prometheus)"
    return path


def run_promtool(*args: str | Path) -> str:
    """Run promtool; fail with everything it printed unless it succeeds."""
    done = subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)
    output = f"$ promtool {' '.join(map(str, args))}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, output
    return output


def load(name: str) -> Any:
    return yaml.safe_load((OPS / name).read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load("alerts.yml")["groups"] for rule in group["rules"] if "alert" in rule]


def alert_cases() -> list[dict[str, Any]]:
    return [case for test in load("alerts_test.yml")["tests"] for case in test.get("alert_rule_test", [])]


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` finds every alert of alerts.yml valid."""
    output = run_promtool("check", "rules", OPS / "alerts.yml")
    assert f"SUCCESS: {len(alert_rules())} rules found" in output, output


@pytest.mark.integration
def test_promtool_accepts_the_deployment_config(tmp_path: Path) -> None:
    """prometheus.yml (rule file made absolute, as in a copy elsewhere) passes `promtool check config`."""
    config = load("prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    assert config["global"]["scrape_interval"] == "15s"
    targets = {job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
               for job in config["scrape_configs"]}  # fmt: skip
    assert targets == {"indexer": ["indexer:9101"], "scorer": ["scorer:9102"]}
    config["rule_files"] = [str(OPS / "alerts.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    output = run_promtool("check", "config", copy)
    assert "SUCCESS: 1 rule files found" in output, output


@pytest.mark.integration
def test_alert_unit_tests_pass() -> None:
    """`promtool test rules` runs every case of alerts_test.yml against alerts.yml and all pass."""
    assert load("alerts_test.yml")["rule_files"] == ["alerts.yml"]
    output = run_promtool("test", "rules", OPS / "alerts_test.yml")
    assert "SUCCESS" in output, output


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_for_severity_and_templated_annotations(rule: dict[str, Any]) -> None:
    assert "for" in rule
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip()
    assert "$value" in rule["annotations"]["description"]


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    """Each alert of alerts.yml is expected to fire in some case of alerts_test.yml, and expected silent in another."""
    names = {rule["alert"] for rule in alert_rules()}
    cases = alert_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - silent == set(), "alerts without a case where they stay silent"
    assert {case["alertname"] for case in cases} <= names, "cases name an alert alerts.yml does not define"

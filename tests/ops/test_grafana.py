"""The Grafana provisioning and the QF Sentinel dashboard fit the code's metrics and the compose deployment.

Every panel reads the provisioned Prometheus data source, every expression
parses (``promtool``) and names only series that IndexerMetrics and
ScorerMetrics export, and the panels an operator needs are there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.scorer.metrics import ScorerMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "ops" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "qf-sentinel.json"
METRIC = re.compile(r"\bqf_(?:indexer|scorer)_[a-z_]+")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")
REQUIRED_PANELS = {
    "Indexer head lag", "Blocks behind", "Events ingested per second by event", "Reorgs", "Last reorg depth",
    "RPC requests and errors per second by endpoint", "Analytics view refresh time",
    "Scorer requests per second by method", "Scorer latency p50 / p95 / p99", "Decisions per second by level",
    "Rate-limit rejections per second", "Model version", "Error ratio by code",
}  # fmt: skip


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    """The panels that show data (rows only group them)."""
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def exported(registry: CollectorRegistry) -> set[str]:
    """Series names a registry exposes: counters with their ``_total``, histograms by their base name."""
    return {f"{m.name}_total" if m.type == "counter" else m.name for m in registry.collect()}


def provisioning(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((GRAFANA / "provisioning" / path).read_text())
    return loaded


def test_the_dashboard_is_identified_for_provisioning() -> None:
    """The JSON parses, with the uid and schema version the provider and links rely on."""
    board = dashboard()
    assert board["uid"] == "qf-sentinel"
    assert board["title"] == "QF Sentinel"
    assert 36 <= board["schemaVersion"] <= 41
    assert board["id"] is None  # Grafana assigns ids; a fixed one would clash across instances


def test_every_panel_queries_the_prometheus_data_source() -> None:
    """Each data panel and each of its queries use the data source of uid `prometheus`, with an expression."""
    assert panels()
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == "prometheus", panel["title"]
            assert target["expr"].strip(), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Ids are unique and no two panels claim the same grid cell."""
    all_panels = dashboard()["panels"]
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_required_panels_exist() -> None:
    """Indexer lag, throughput, reorgs, RPC health, refresh time; scorer traffic, latency, decisions, model."""
    missing = REQUIRED_PANELS - {p["title"] for p in panels()}
    assert missing == set()


def test_every_metric_in_the_dashboard_is_exported_by_the_code() -> None:
    """Each qf_* series named in an expression is one IndexerMetrics or ScorerMetrics registers."""
    known = exported(IndexerMetrics().registry) | exported(ScorerMetrics().registry)
    used = {HISTOGRAM_SUFFIX.sub("", name) for expr in expressions() for name in METRIC.findall(expr)}
    assert len(used) >= 10, used
    assert used - known == set()


def test_histogram_quantiles_aggregate_buckets_by_le() -> None:
    """Every quantile is taken over `_bucket` series that keep the `le` label."""
    quantiles = [expr for expr in expressions() if "histogram_quantile" in expr]
    assert len(quantiles) >= 5
    for expr in quantiles:
        assert "_bucket" in expr, expr
        grouping = re.search(r"sum by \(([^)]*)\)", expr)
        assert grouping is not None, expr
        assert "le" in [label.strip() for label in grouping.group(1).split(",")], expr


@pytest.mark.integration
def test_promtool_parses_every_expression(tmp_path: Path) -> None:
    """Each query, with Grafana's $__rate_interval filled in, is valid PromQL (as recording rules)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt-get install prometheus)"
    rules = [{"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "1m")}
             for n, expr in enumerate(expressions())]  # fmt: skip
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_the_data_source_is_the_compose_prometheus() -> None:
    """The provisioned data source has the dashboard's uid and points at the compose service `prometheus`."""
    sources = provisioning("datasources/prometheus.yml")["datasources"]
    assert [(s["uid"], s["type"], s["url"]) for s in sources] == [
        ("prometheus", "prometheus", "http://prometheus:9090")
    ]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "prometheus" in compose["services"]
    scrape = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    assert sources[0]["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


def test_the_dashboard_provider_reads_the_mounted_directory() -> None:
    """The file provider's path is where compose mounts ops/grafana/dashboards, and provisioning is mounted too."""
    providers = provisioning("dashboards/dashboards.yml")["providers"]
    assert [p["type"] for p in providers] == ["file"]
    path = providers[0]["options"]["path"]
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert f"./ops/grafana/dashboards:{path}:ro" in grafana["volumes"]
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{path}/{DASHBOARD.name}"

"""A real Prometheus scrapes the test worker; the rules and dashboard in deploy/ hold up.

Needs the Debian package ``prometheus`` (the server and ``promtool``); skipped,
with the reason, only when it is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.demo import stop_process
from stream.devstack import die_with_parent, free_port
from stream.metrics import Metrics
from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import eventually, unique, wait_ok

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA = DEPLOY / "grafana" / "rapport.json"
#: Metrics the deploy files use that the engine does not export yet (asked for).
PLANNED = {"rapport_consumer_lag"}
#: Grafana variables, replaced by what they mean for one Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$job": "rapport",
    "$instance": ".*",
}


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"Debian package prometheus is not installed (no {name} on PATH)")
    return found


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def prometheus(
    worker: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A Prometheus server scraping the session worker every second, with the deploy rules."""
    server = binary("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "rapport",
                        "static_configs": [{"targets": [f"127.0.0.1:{settings.web_port}"]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    log = work / "prometheus.log"
    proc = subprocess.Popen(
        [
            server,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{base}/-/ready", proc, log, name="prometheus", timeout=30)
        yield base
    finally:
        stop_process(proc, grace=10)


async def test_prometheus_scrapes_the_engines_series(
    prometheus: str, worker: str, producer: EventProducer
) -> None:
    cid = unique("prom")
    event = {
        "event_id": unique("e"),
        "ts": "2026-11-22T10:00:00Z",
        "customer_id": cid,
        "type": "page_view",
    }
    await producer.send("clicks", event)
    await producer.flush()

    def accepted_clicks() -> list[dict[str, Any]]:
        body = api(prometheus, "/api/v1/query", query="rapport_events_total")
        assert body["status"] == "success"
        return [
            r
            for r in body["data"]["result"]
            if r["metric"].get("topic") == "clicks" and r["metric"].get("outcome") == "accepted"
        ]

    series = await eventually(accepted_clicks, timeout=60)
    assert series[0]["metric"]["job"] == "rapport"
    assert float(series[0]["value"][1]) >= 1

    def freshness() -> list[dict[str, Any]]:
        query = "time() - max(rapport_event_time_watermark_seconds > 0)"
        return api(prometheus, "/api/v1/query", query=query)["data"]["result"]

    await eventually(freshness, timeout=30)  # a number; negative when events come from the future
    up = api(prometheus, "/api/v1/query", query='up{job="rapport"}')["data"]["result"]
    assert [r["value"][1] for r in up] == ["1"]

    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = api(prometheus, "/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = all(rule.get("lastEvaluation", "").startswith("2") for rule in rules)
        return rules if rules and evaluated else None

    rules = await eventually(rules_evaluated, timeout=30)
    assert {rule["health"] for rule in rules} == {"ok"}, rules
    assert {rule["name"] for rule in rules} >= {
        "RapportWorkerDown",
        "RapportConsumerLagGrowing",
        "RapportEventTimeBehind",
        "RapportDeadLetterRateHigh",
    }
    firing = api(prometheus, "/api/v1/alerts")["data"]["alerts"]
    assert not [a for a in firing if a["labels"]["alertname"] == "RapportWorkerDown"]


def test_alert_rules_pass_promtool() -> None:
    promtool = binary("promtool")
    folder = RULES.parent
    for args in (
        ["check", "rules", "alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        done = subprocess.run([promtool, *args], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def grafana_queries() -> list[str]:
    dashboard = json.loads(GRAFANA.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            queries.append(expr)
    return queries


def test_grafana_queries_are_valid_promql(prometheus: str) -> None:
    queries = grafana_queries()
    assert len(queries) >= 20
    for query in queries:
        assert "$" not in query, query
        body = api(prometheus, "/api/v1/query", query=query)
        assert body["status"] == "success", (query, body)


def exported_names() -> set[str]:
    """Every series name the engine's metrics can produce."""
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",),
        }[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_deploy_files_use_only_metrics_the_engine_exports() -> None:
    used = set(re.findall(r"rapport_[a-z_]+", RULES.read_text() + GRAFANA.read_text()))
    assert used - PLANNED <= exported_names(), used - PLANNED - exported_names()

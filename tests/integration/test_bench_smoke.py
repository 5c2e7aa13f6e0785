"""The speed bench still runs end to end and yields every figure (so it does not rot).

A tiny run (2,000 events, one run, 3 s of latency) through ``bench/run.py`` as a user
starts it, on its own embedded broker and Redis; about half a minute.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_bench(result: Path, log: Path) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    argv = [sys.executable, "bench/run.py", "--events", "2000", "--runs", "1"]
    argv += ["--latency-seconds", "3", "--json", str(result)]
    with log.open("wb") as out:
        bench = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        return bench.wait(timeout=90)
    except subprocess.TimeoutExpired:
        bench.terminate()  # the bench stops its worker, broker and Redis on SIGTERM
        bench.wait(timeout=30)
        raise


def test_bench_yields_a_positive_value_for_every_figure(tmp_path: Path) -> None:
    result, log = tmp_path / "bench.json", tmp_path / "bench.log"
    assert run_bench(result, log) == 0, log.read_text()[-3000:]
    document = orjson.loads(result.read_bytes())
    median = document["median"]
    assert set(median) == set(document["units"]), "a figure is missing"
    (run,) = document["runs"]
    for figures in (median, run["figures"]):
        bad = {k: v for k, v in figures.items() if v is None or not math.isfinite(v) or v <= 0}
        assert not bad, f"figures not positive: {bad}"
    latency = run["details"]["latency"]
    assert latency["decided"] == latency["triggers"] > 0
    assert run["details"]["rapport"]["counted_input"] >= document["config"]["events"]

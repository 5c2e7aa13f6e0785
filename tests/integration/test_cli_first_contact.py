"""First contact with the command line: what a person can fix is one line, never a traceback.

Each case runs ``rapport`` as a user does (a subprocess, a fresh environment)
and fails before anything starts, so each takes about a second.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.devstack import free_port
from stream.settings import Settings

#: Exit code of a command stopped by something the user can fix.
USER_ERROR = 2


def rapport(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
    )


def fresh_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """No RAPPORT_* from the test run (it may point at the tests' servers), but these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env.update(RAPPORT_DATA_DIR=str(data_dir), RAPPORT_WEB_PORT=str(free_port()))
    env.update({f"RAPPORT_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def assert_one_clear_line(run: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = run.stdout + run.stderr
    assert run.returncode == USER_ERROR, output
    assert "Traceback" not in output and "╭" not in output, output
    assert len(run.stderr.strip().splitlines()) == 1, output
    for text in expected:
        assert text in run.stderr, output


@pytest.fixture
def nothing_listening() -> str:
    """A kafka:// URL of a loopback port nobody serves."""
    return f"kafka://127.0.0.1:{free_port()}"


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "orders.jsonl"
    path.write_text('{"customer_id": "c1", "order_id": "o1"}\n')
    return path


@pytest.mark.parametrize(
    "command",
    [("tail", "offers"), ("import", "HISTORY", "--topic", "orders"), ("worker",)],
    ids=["tail", "import", "worker"],
)
def test_an_unreachable_broker_is_one_line_naming_the_setting(
    command: tuple[str, ...],
    nothing_listening: str,
    history: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    env = fresh_env(tmp_path, kafka_url=nothing_listening, redis_url=settings.redis_url or "")
    args = [str(history) if arg == "HISTORY" else arg for arg in command]
    run = rapport(*args, env=env, cwd=tmp_path)
    assert_one_clear_line(run, f"cannot reach the Kafka broker at {nothing_listening}")
    assert "RAPPORT_KAFKA_URL" in run.stderr


def test_an_unset_broker_url_says_which_default_was_tried(tmp_path: Path) -> None:
    run = rapport("tail", "offers", env=fresh_env(tmp_path), cwd=tmp_path)
    if run.returncode == 0:  # pragma: no cover - a Kafka happens to serve the default port
        pytest.skip("something serves the default kafka://127.0.0.1:9092 here")
    assert_one_clear_line(run, "kafka://127.0.0.1:9092 (the default)", "RAPPORT_KAFKA_URL")


def test_a_worker_without_redis_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    run = rapport("worker", env=fresh_env(tmp_path, redis_url=redis_url), cwd=tmp_path)
    assert_one_clear_line(run, f"cannot reach Redis at {redis_url}", "RAPPORT_REDIS_URL")


def test_invalid_settings_are_all_named_before_anything_starts(tmp_path: Path) -> None:
    env = fresh_env(
        tmp_path, log_level="verbose", redis_url="localhost", kafka_url="localhost:9092"
    )
    run = rapport("worker", env=env, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == USER_ERROR, output
    assert "Traceback" not in output, output
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 3, output  # one line per invalid setting
    assert any("RAPPORT_LOG_LEVEL='verbose'" in ln and "debug, info" in ln for ln in lines)
    assert any("RAPPORT_REDIS_URL='localhost'" in ln and "redis://" in ln for ln in lines)
    assert any("RAPPORT_KAFKA_URL='localhost:9092'" in ln for ln in lines)


@pytest.mark.parametrize("command", ["worker", "demo"])
def test_a_missing_campaign_file_is_refused_at_start(command: str, tmp_path: Path) -> None:
    env = fresh_env(tmp_path, campaigns="/missing.yaml")
    run = rapport(command, env=env, cwd=tmp_path)
    assert_one_clear_line(run, "RAPPORT_CAMPAIGNS", "/missing.yaml", "cannot read")
    assert "embedded" not in run.stderr  # the demo started nothing


def test_an_invalid_campaign_file_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "campaigns.yaml"
    bad.write_text("campaigns:\n  - id: [\n")
    run = rapport("demo", env=fresh_env(tmp_path, campaigns=str(bad)), cwd=tmp_path)
    assert_one_clear_line(run, "RAPPORT_CAMPAIGNS", f"{bad}:3")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--rate", "-5"), ("--customers", "0"), ("--duration", "0")],
)
def test_a_demo_option_out_of_range_is_a_usage_error(
    option: str, value: str, tmp_path: Path
) -> None:
    run = rapport("demo", option, value, env=fresh_env(tmp_path), cwd=tmp_path)
    assert run.returncode == USER_ERROR, run.stderr
    assert "Traceback" not in run.stderr and f"Invalid value for '{option}'" in run.stderr


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other process listens on."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_worker_whose_port_is_taken_does_not_start(taken_port: int, tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    env["RAPPORT_WEB_PORT"] = str(taken_port)
    run = rapport("worker", env=env, cwd=tmp_path)
    assert_one_clear_line(run, f"127.0.0.1:{taken_port}", "RAPPORT_WEB_PORT")

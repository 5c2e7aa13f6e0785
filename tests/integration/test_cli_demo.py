"""``rapport demo`` against running servers, with its port taken, losing its worker, and
stopped by Ctrl-C: run as a user runs it (a subprocess), outcomes read from outside."""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agents.demo import stop_process
from stream.devstack import free_port
from stream.settings import Settings
from tests.integration.conftest import delete_keys, isolated, read_topic, worker_env
from tests.integration.test_cli import listening

#: Printed once the demo's worker answers /health, just before the shoppers start.
READY = "worker log"


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """The tests' running broker and Redis, with topics, keys, group and port of the demo's
    own; a short session timeout, so its worker joins its group within a second."""
    own = isolated(settings, "demo", session_timeout=2.0)
    yield own
    delete_keys(own)


def demo(env: dict[str, str], out: Path, *args: str, **popen: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "demo", "--customers", "50", *args],
        env=env,
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        **popen,  # type: ignore[call-overload]
    )


def wait_for(text: str, out: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = out.read_text()
        if text in seen:
            return seen
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never printed:\n{out.read_text()[-3000:]}")


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]


async def test_the_demo_runs_against_running_servers_and_leaves_them_running(
    own: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "demo.out"
    proc = demo(worker_env(own, tmp_path), out, "--duration", "4", "--rate", "100")
    try:
        assert proc.wait(timeout=90) == 0, out.read_text()[-3000:]
    finally:
        stop_process(proc)
    text = out.read_text()
    assert "stopped the worker; the broker and Redis it was pointed at keep running." in text
    assert "Traceback" not in text, text
    decisions = await read_topic(own, "decisions", lambda v: True, timeout=10)
    assert decisions and decisions[0]["customer_id"]  # the demo's worker processed events
    assert redis.Redis.from_url(own.redis_url or "").ping()


@pytest.fixture
def someone_elses_worker() -> Iterator[int]:
    """An HTTP server answering 200 everywhere, as another demo's worker does; its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'rapport_events_total{outcome="accepted"} 16652.0\n')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_demo_whose_port_is_taken_starts_nothing_and_says_so(
    own: Settings, someone_elses_worker: int, tmp_path: Path
) -> None:
    out = tmp_path / "demo.out"
    env = worker_env(own, tmp_path) | {"RAPPORT_WEB_PORT": str(someone_elses_worker)}
    proc = demo(env, out, "--duration", "3")
    try:
        code = proc.wait(timeout=90)
    finally:
        stop_process(proc)
    text = out.read_text()
    assert code == 2, text
    assert f"127.0.0.1:{someone_elses_worker}" in text and "RAPPORT_WEB_PORT" in text, text
    assert READY not in text and "Traceback" not in text, text


def test_the_demo_stops_and_says_so_when_its_worker_stops(own: Settings, tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    proc = demo(worker_env(own, tmp_path), out)  # no --duration: until Ctrl-C
    try:
        wait_for(READY, out, proc)
        (worker,) = children(proc.pid)
        os.kill(worker, signal.SIGKILL)
        code = proc.wait(timeout=60)
    finally:
        stop_process(proc)
    text = out.read_text()
    assert code == 1, text
    assert "the worker exited with code -9" in text, text
    assert "Traceback" not in text, text


def test_ctrl_c_stops_the_worker_first_then_the_embedded_servers(
    settings: Settings, tmp_path: Path
) -> None:
    """The terminal sends SIGINT to the demo's whole process group; only the demo may act on
    it, stopping its worker (SIGTERM, waited for) before the broker and Redis it needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env |= {
        "RAPPORT_DATA_DIR": str(tmp_path),
        "RAPPORT_WEB_PORT": str(free_port()),
        "RAPPORT_SESSION_TIMEOUT": "2",
        "RAPPORT_CAMPAIGNS": settings.campaigns or "",
    }
    out = tmp_path / "demo.out"
    proc = demo(env, out, start_new_session=True)  # the terminal's foreground group
    try:
        text = wait_for(READY, out, proc)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=60)
    finally:
        stop_process(proc)
    worker_log = (tmp_path / "demo" / "worker.log").read_text()
    assert "Signal received: 15" in worker_log, worker_log[-3000:]  # the demo's SIGTERM
    assert "Signal received: 2 " not in worker_log, worker_log[-3000:]  # not the terminal's
    assert "[ERROR]" not in worker_log, worker_log[-3000:]
    text = out.read_text()
    assert code == 0, text
    assert "stopped the worker, the embedded broker and the embedded Redis." in text, text
    ports = [int(p) for p in re.findall(r"(?:kafka|redis)://127\.0\.0\.1:(\d+)", text)]
    assert len(ports) >= 2 and not any(listening(p) for p in ports), text

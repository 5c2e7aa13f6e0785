"""``rapport worker`` as a process: it stops when its output goes away, and never runs
without its HTTP port.

``rapport worker 2>&1 | tee log`` then Ctrl-C used to leave the worker running:
``tee`` died first, faust's SIGINT handler failed writing to the closed pipe
before scheduling the shutdown. Here ``cat`` plays ``tee``, in the worker's
process group as a shell runs a pipeline.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.demo import stop_process
from stream.devstack import die_with_parent
from stream.settings import Settings
from tests.integration.conftest import delete_keys, isolated, wait_ok, worker_env

#: Generous bound on a clean stop (about a second here); only a hang reaches it.
STOP_TIMEOUT = 30


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """A worker of its own (topics, keys, group, port) that joins its group quickly."""
    own = isolated(settings, "proc", session_timeout=2.0)
    yield own
    delete_keys(own)


@contextlib.contextmanager
def piped_worker(
    settings: Settings, work: Path
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path]]:
    """``rapport worker 2>&1 | cat > log``; yields the worker, the reader and the log."""
    log = work / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "worker"],
        env=worker_env(settings, work / "data"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,  # a pipeline's group, as a shell makes
        preexec_fn=die_with_parent,
    )
    assert worker.stdout is not None
    with log.open("wb") as out:
        reader = subprocess.Popen(
            ["cat"], stdin=worker.stdout, stdout=out, process_group=worker.pid
        )
    worker.stdout.close()  # the reader holds the pipe's only reading end
    try:
        wait_ok(
            f"http://127.0.0.1:{settings.web_port}/health", worker, log, name="worker", timeout=60
        )
        yield worker, reader, log
    finally:
        stop_process(worker)
        stop_process(reader)


@pytest.mark.parametrize("ctrl_c", [True, False], ids=["ctrl-c", "reader-gone"])
def test_the_worker_stops_when_the_reader_of_its_output_goes_away(
    own: Settings, tmp_path: Path, ctrl_c: bool
) -> None:
    with piped_worker(own, tmp_path) as (worker, reader, log):
        reader.send_signal(signal.SIGINT)  # Ctrl-C: the pipeline's reader dies first
        reader.wait()
        if ctrl_c:
            worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=STOP_TIMEOUT) == 0, log.read_text()[-3000:]


def test_a_failed_bind_of_the_http_server_stops_the_worker_clearly(
    own: Settings, tmp_path: Path
) -> None:
    """The port is taken after the command line's check (a race): faust's bind fails."""
    script = (
        "from agents.worker import run_worker; from stream.settings import Settings; "
        "run_worker(Settings())"
    )
    with socket.create_server((own.web_host, own.web_port)):
        run = subprocess.run(
            [sys.executable, "-c", script],
            env=worker_env(own, tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("stream.app.WebPortUnavailable"), run.stderr[-3000:]
    assert f"{own.web_host}:{own.web_port}" in last and "RAPPORT_WEB_PORT" in last

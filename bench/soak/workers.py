"""``rapport worker`` processes the soak runs, kills and restarts, like a supervisor would.

Every worker of a pool shares the settings (topics, Redis prefix, consumer group) but has an
HTTP port of its own. ``supervise`` notices a worker that stopped by itself (not killed by
the soak): it records the exit with its last log lines, then starts it again, as systemd or
Kubernetes would. Peak memory is the kernel's high-water mark (``VmHWM``) of each
incarnation, sampled while it lives.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from agents.demo import stop_process
from bench.speed.procs import start_worker
from stream.devstack import free_port
from stream.settings import Settings

#: Log lines that mean trouble (faust and the engine log through ``logging``).
TROUBLE = re.compile(r"\[ERROR\]|\bERROR\b|Traceback \(most recent call last\)|CRITICAL")


@dataclass(frozen=True, slots=True)
class Exit:
    """A worker that stopped by itself."""

    slot: int
    code: int | None
    at: float  # monotonic
    tail: str


@dataclass
class Slot:
    """One worker position: its settings and its incarnations (one log each)."""

    number: int
    settings: Settings
    work: Path
    proc: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    logs: list[Path] = field(default_factory=list)
    peak_kib: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    @property
    def log(self) -> Path:
        return self.logs[-1]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample_memory(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                self.peak_kib = max(self.peak_kib, int(match.group(1)))


class WorkerPool:
    def __init__(self, settings: Settings, work: Path, count: int) -> None:
        self.slots = [
            Slot(n, settings.model_copy(update=self._own(work, n)), work) for n in range(count)
        ]
        self.exits: list[Exit] = []
        self.kills = 0

    @staticmethod
    def _own(work: Path, number: int) -> dict[str, object]:
        """An HTTP port and a faust data directory of the worker's own."""
        return {"web_port": free_port(), "data_dir": str(work / f"worker{number}-data")}

    def start(self, slot: Slot) -> None:
        slot.incarnation += 1
        log = slot.work / f"worker{slot.number}-{slot.incarnation}.log"
        slot.logs.append(log)
        slot.proc = start_worker(slot.settings, log)

    def start_all(self, timeout: float = 120) -> None:
        for slot in self.slots:
            self.start(slot)
        for slot in self.slots:
            self.wait_healthy(slot, timeout)

    def wait_healthy(self, slot: Slot, timeout: float = 120) -> None:
        """Until ``/health`` answers 200 (a worker that exits meanwhile is restarted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervise()
            try:
                with urllib.request.urlopen(f"{slot.base}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"worker {slot.number} not healthy in {timeout:.0f}s; see {slot.log}")

    def kill9(self, slot: Slot) -> None:
        """SIGKILL, then a new incarnation at once."""
        assert slot.proc is not None
        slot.sample_memory()
        slot.proc.kill()
        slot.proc.wait()
        self.kills += 1
        self.start(slot)

    def supervise(self) -> list[Exit]:
        """Restart every worker that stopped by itself; return those exits."""
        found = []
        for slot in self.slots:
            slot.sample_memory()
            if slot.proc is not None and slot.proc.poll() is not None:
                tail = slot.log.read_text(errors="replace")[-2500:]
                found.append(Exit(slot.number, slot.proc.returncode, time.monotonic(), tail))
                self.start(slot)
        self.exits += found
        return found

    def any_base(self) -> str:
        """The HTTP base of a live worker (the API reads Redis only: any worker will do)."""
        for slot in self.slots:
            if slot.alive():
                return slot.base
        return self.slots[0].base

    def peak_mib(self) -> float:
        for slot in self.slots:
            slot.sample_memory()
        return max(slot.peak_kib for slot in self.slots) / 1024

    def close(self) -> None:
        for slot in self.slots:
            if slot.proc is not None:
                stop_process(slot.proc, grace=20)

    def trouble(self) -> list[tuple[Path, str]]:
        """Every ERROR / Traceback line of every incarnation's log."""
        found = []
        for slot in self.slots:
            for log in slot.logs:
                with contextlib.suppress(OSError):
                    for line in log.read_text(errors="replace").splitlines():
                        if TROUBLE.search(line):
                            found.append((log, line.strip()))
        return found

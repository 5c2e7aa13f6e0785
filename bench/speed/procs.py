"""The processes the bench runs and watches: consumers as subprocesses, and their CPU.

Consumers run as children configured the way operators configure Rapport
(``RAPPORT_*`` variables), die with the bench (``die_with_parent``), and are
stopped with ``agents.demo.stop_process``. CPU time comes from
``/proc/<pid>/stat`` (utime + stime of all threads), so no psutil is needed.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stream.devstack import die_with_parent
from stream.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOOP_APP = Path(__file__).with_name("noop_app.py")
POLL_SECONDS = 0.1
MACHINE = "machine"


class BenchError(RuntimeError):
    """A phase could not be measured; the message says what happened and where the log is."""


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child read exactly these settings (and no stray ones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"RAPPORT_{name.upper()}"] = str(value)
    return env


def spawn(argv: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``rapport worker``, as in production."""
    return spawn([sys.executable, "-m", "agents.cli", "worker"], settings, log)


def start_noop(
    settings: Settings, log: Path, *, path: str, records: int, min_seconds: float
) -> subprocess.Popen[bytes]:
    """The faust no-op consumer (``noop_app.py`` next to this file) on ``path``:
    ``stream`` (faust's per-message path) or ``batch`` (the batch fast path). It reads
    the ``records`` pre-loaded records again until its window lasts ``min_seconds``."""
    argv = [sys.executable, str(NOOP_APP), "--path", path, "--records", str(records)]
    return spawn([*argv, "--min-seconds", str(min_seconds)], settings, log)


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy (not idle or waiting for I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from 3 (state) on
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment of a measurement: monotonic time, events done, CPU seconds per process."""

    t: float
    count: float
    cpu: dict[str, float]


def mark(count: float, pids: Mapping[str, int]) -> Mark:
    """Now; ``cpu`` also holds ``machine``: busy seconds of every core, whoever used them."""
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    cpu[MACHINE] = machine_busy_seconds()
    return Mark(time.monotonic(), count, cpu)


@dataclass(frozen=True)
class Window:
    """From the first mark with progress to the first mark at the target."""

    first: Mark
    last: Mark

    @property
    def seconds(self) -> float:
        return self.last.t - self.first.t

    @property
    def events(self) -> float:
        return self.last.count - self.first.count

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan

    def cpu(self, name: str) -> float:
        return self.last.cpu[name] - self.first.cpu[name]

    def cpu_per_1k(self, name: str) -> float:
        return 1000 * self.cpu(name) / self.events if self.events else math.nan

    def cores(self) -> dict[str, float]:
        """CPU used per process over the window, in cores (1.0 = one core busy).

        ``other``: what the rest of the machine used meanwhile (other programs).
        """
        seconds = self.seconds or math.nan  # a window of one poll says nothing
        used = {name: self.cpu(name) / seconds for name in self.first.cpu}
        mine = sum(v for k, v in used.items() if k != MACHINE)
        used["other"] = max(0.0, used[MACHINE] - mine)  # both sampled: noise on short windows
        return {name: round(value, 3) for name, value in used.items()}


async def watch(
    count: Callable[[], Awaitable[float]],
    *,
    target: int,
    pids: Mapping[str, int],
    children: Mapping[subprocess.Popen[bytes], Path],
    on_progress: Callable[[float], None],
    finished: Callable[[float], bool] | None = None,
    start_timeout: float = 90.0,
    stall_timeout: float = 60.0,
) -> Window:
    """Poll ``count`` until it reaches ``target`` (or, if given, until ``finished(count)``);
    the window starts at the first progress.

    ``children``: the consumer processes doing the work and their logs (all must live).
    """
    finished = finished or (lambda done: done >= target)
    log = ", ".join(str(path) for path in children.values())
    started = time.monotonic()
    first: Mark | None = None
    last_change, last_count = started, 0.0
    while True:
        done = await count()
        now = mark(done, pids)
        on_progress(min(done, target))
        if first is None and done > 0:
            first = now
        if first is not None and finished(done):
            return Window(first, now)
        if done != last_count:
            last_change, last_count = now.t, done
        for proc, proc_log in children.items():
            check_alive(proc, proc_log)
        if first is None and now.t - started > start_timeout:
            raise BenchError(f"no event consumed within {start_timeout:.0f}s; see {log}")
        if first is not None and now.t - last_change > stall_timeout:
            raise BenchError(f"stuck at {done:,.0f} of {target:,} events; see {log}")
        await asyncio.sleep(POLL_SECONDS)


def check_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        raise BenchError(f"the consumer exited with code {proc.returncode}; see {log}")

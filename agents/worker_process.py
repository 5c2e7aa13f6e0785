"""``rapport worker`` as an operating-system process: how it stops, and its HTTP port.

faust's worker (mode's), on SIGINT, first writes a line to stderr and only then
schedules its shutdown. Under ``rapport worker 2>&1 | tee log`` the terminal's
Ctrl-C stops ``tee`` too, that write fails on the closed pipe, and the worker
went on running with nobody reading its output. Here every stop signal
(SIGINT, SIGTERM, SIGPIPE) schedules the shutdown before anything is written,
and an output pipe whose reader has gone stops the worker as SIGPIPE would,
even while it is idle and writes nothing.

A worker that cannot bind its HTTP port stops (faust fails its start); ``run``
turns that failure into ``WebPortUnavailable``, one line for the command line.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import stat
from collections.abc import Iterator
from typing import Any, NoReturn

import faust

from stream.app import WebPortUnavailable, web_port_unavailable
from stream.settings import Settings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
#: How often the worker looks whether its output pipes still have a reader.
OUTPUT_CHECK_SECONDS = 1.0
#: What a failed bind of the HTTP server raises (aiohttp passes the OS error on).
BIND_ERRORS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)
OUTPUT_FDS = (1, 2)


class RapportWorker(faust.Worker):
    """faust's worker, stopping cleanly on every stop signal and on a closed output."""

    def __init__(self, app: faust.App, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.settings = settings
        self.unservable: WebPortUnavailable | None = None

    def run(self) -> NoReturn:
        """Run until stopped; raise ``WebPortUnavailable`` if the HTTP server could not bind."""
        try:
            self.execute_from_commandline()
        except SystemExit:
            if self.unservable is not None:
                raise self.unservable from None
            raise

    async def start(self) -> None:
        try:
            await super().start()
        except OSError as exc:
            if exc.errno in BIND_ERRORS:
                self.unservable = web_port_unavailable(self.settings, os.strerror(exc.errno))
            raise

    def _install_signal_handlers_unix(self) -> None:
        super()._install_signal_handlers_unix()
        for sig in STOP_SIGNALS:
            self.loop.add_signal_handler(sig, self.stop_quietly, sig)

    def stop_quietly(self, sig: signal.Signals) -> None:
        """Schedule the shutdown before writing anything: a write may fail on a closed pipe.

        Outputs whose reader has gone are pointed at /dev/null first, so the
        shutdown's own log lines (and Python's last flush) cannot fail either.
        """
        silence(closed_outputs())
        self._schedule_shutdown(sig)  # mode's: runs once, later signals are ignored
        with contextlib.suppress(OSError, ValueError):
            self._flag_as_shutdown_by_signal()  # faust's: stops the start-up spinner

    @faust.Worker.timer(OUTPUT_CHECK_SECONDS)
    async def _watch_output(self) -> None:
        if closed_outputs():
            self.stop_quietly(signal.SIGPIPE)


def closed_outputs() -> list[int]:
    """stdout/stderr descriptors that are pipes whose reading end is closed.

    A pipe's writing end polls as POLLERR once no reader is left (Linux); a
    terminal or a file never does, so only pipes are looked at.
    """
    closed = []
    for fd in OUTPUT_FDS:
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
        except OSError:
            continue
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are reported without asking
        if poller.poll(0):
            closed.append(fd)
    return closed


def silence(fds: list[int]) -> None:
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextlib.contextmanager
def quiet_kafka_client() -> Iterator[None]:
    """Mute aiokafka's own log lines (``Unable connect to ...``) while connecting from the
    command line: a broker it cannot reach is reported once, as one line, by ``agents.cli``."""
    client = logging.getLogger("aiokafka")
    level = client.level
    client.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client.setLevel(level)

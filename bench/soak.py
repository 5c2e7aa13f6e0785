"""Replay a shop's history at scale into real workers, with faults, and check every customer.

    .venv/bin/python bench/soak.py --customers 20000            # about 1,000,000 records
    .venv/bin/python bench/soak.py --customers 20000 --faults --workers 2

Generates a ten-month history (``bench/soak/history.py``: sessions, wholesale baskets of up
to 150 lines, cancellations and refunds out of order, anonymous browsing then ``identify``,
consent flips, 5% redelivered, 0.1% malformed, a few records from the year 2100, quiet days
that make delayed campaigns fall due in bursts), starts its own Redis (append-only file) and
broker, runs ``rapport worker`` processes on the event clock, replays the history at full
speed and compares every customer with an independent reference
(``tests/integration/independent.py``). With ``--faults`` the replay runs in phases, each
hit by a fault (kill -9 of a worker, Redis paused by SIGSTOP, Redis killed and restarted
from its AOF, finally the broker restarted) and checked in full before the next.

Prints records, duration, events/s, the workers' peak memory (VmHWM), Redis memory, the
fault schedule and PASS/FAIL per check; exit code 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the project root holds bench/ and tests/
    sys.path.insert(0, str(ROOT))

from bench.soak.harness import Config, Soak, fault_plan  # noqa: E402
from bench.soak.history import Shape  # noqa: E402
from bench.soak.report import render  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/soak.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=20_000, help="customers in the history")
    parser.add_argument("--seed", type=int, default=11, help="seed of the history and faults")
    parser.add_argument(
        "--records-per-customer", type=float, default=50.0, help="mean records per customer"
    )
    parser.add_argument("--workers", type=int, default=1, help="rapport worker processes")
    parser.add_argument(
        "--faults", action="store_true", help="kill -9, Redis pause/restart, broker restart"
    )
    parser.add_argument(
        "--pause-seconds", type=float, default=30.0, help="how long Redis stays SIGSTOPped"
    )
    parser.add_argument(
        "--lease-seconds", type=float, default=30.0, help="RAPPORT_TIMER_LEASE_SECONDS"
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=3600.0, help="most seconds a phase may take"
    )
    parser.add_argument("--work", type=Path, help="directory for logs and Redis (default: temp)")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace, work: Path) -> Config:
    shape = Shape(
        customers=args.customers, seed=args.seed, records_per_customer=args.records_per_customer
    )
    config = Config(
        shape=shape,
        work=work,
        workers=args.workers,
        timer_lease_seconds=args.lease_seconds,
        phase_timeout=args.phase_timeout,
    )
    if args.faults:
        config.phases, config.faults = fault_plan(args.seed, args.workers, args.pause_seconds)
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rapport-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory (logs, Redis AOF): {work}", flush=True)
    report = asyncio.run(Soak(config_from(args, work), say=lambda s: print(s, flush=True)).run())
    print(render(report))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

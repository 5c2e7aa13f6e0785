"""The soak's report: figures, the fault schedule, and PASS/FAIL per check with examples."""

from __future__ import annotations

from bench.soak.harness import Report

EXAMPLES = 5  # problems shown per failed check


def render(report: Report) -> str:
    rate = report.records / report.replay_seconds if report.replay_seconds else 0.0
    lines = [
        "",
        "== soak",
        f"customers        {report.config.shape.customers:,} (seed {report.config.shape.seed})",
        f"records          {report.records:,} {report.counts}",
        f"workers          {report.config.workers}",
        f"duration         {report.replay_seconds:.1f} s (first send to drained, all phases)",
        f"events/s         {rate:,.0f}",
        f"worker peak RSS  {report.peak_rss_mib:,.1f} MiB (VmHWM, largest incarnation)",
        "redis memory     "
        + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in report.redis_memory.items()),
        "faults           " + ("none" if not report.config.faults else ""),
    ]
    lines += [f"  - {f.describe()}" for f in report.config.faults]
    for phase in report.phases:
        lines.append(
            f"-- phase {phase.number + 1}: {phase.records:,} records in {phase.seconds:.1f} s"
            + (f"; {'; '.join(phase.faults)}" if phase.faults else "")
        )
        for result in phase.results:
            verdict = "PASS" if result.ok else f"FAIL ({len(result.problems)})"
            verdict = "SKIP (does not apply)" if result.skipped else verdict
            lines.append(f"   {result.name:20} {verdict}")
            lines += [f"       {p[:300]}" for p in result.problems[:EXAMPLES]]
    if report.trouble:
        lines.append(f"-- ERROR/Traceback lines in worker logs: {len(report.trouble)}")
        lines += [f"   {t[:300]}" for t in report.trouble[:10]]
    lines.append(f"== {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)

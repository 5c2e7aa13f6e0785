"""The marketing dashboard: ``GET /dashboard`` (page), ``/dashboard/data`` (JSON), static files.

The page and its script, styles and charting library (uPlot, MIT, vendored in
``agents/static/vendor``) are served by the worker itself: nothing is fetched
from another origin at view time, and the page's Content-Security-Policy says
so. The page polls ``/dashboard/data`` every few seconds; what it shows and
where each number comes from is in ``stream/stats.py``.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

import faust
from faust.web import Request, Response, View

from agents.api import GuardedView, reader_guard
from agents.context import Context
from agents.results import all_reports
from stream.stats import CampaignRow, CampaignSource, DashboardStats

#: Seconds between snapshots of this worker's counters (rates over the last minute).
SAMPLE_SECONDS = 2.0
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
#: Same-origin only: the page works offline and cannot leak to a CDN.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def static_files() -> dict[str, bytes]:
    """Served name -> content of every file under ``agents/static`` (names are unique)."""
    found: dict[str, bytes] = {}
    pending: list[Traversable] = [resources.files("agents") / "static"]
    while pending:
        folder = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append(entry)
            elif entry.name in found:
                raise RuntimeError(f"two static files are named {entry.name!r}")
            else:
                found[entry.name] = entry.read_bytes()
    return found


def content_type(name: str) -> str:
    suffix = name[name.rfind(".") :] if "." in name else ""
    return CONTENT_TYPES.get(suffix, "text/plain")


def register_dashboard(
    app: faust.App, ctx: Context, *, campaigns: CampaignSource | None = None
) -> DashboardStats:
    """Add the dashboard routes and the sampling timer; ``campaigns`` overrides the source.

    By default the campaign table shows ``agents.results``: exposed customers per group,
    conversions and the uplift interval of every campaign.
    """
    stats = DashboardStats(
        ctx.store,
        ctx.metrics.registry,
        clock_mode=ctx.settings.clock,
        segments=lambda: ctx.step.segments,  # follows campaign-file reloads
        currency=ctx.settings.default_currency,
        campaigns=campaigns or campaign_rows_of(ctx),
    )
    files = static_files()
    page = files["dashboard.html"].decode()

    @app.page("/dashboard")
    class DashboardView(View):
        async def get(self, request: Request) -> Response:
            return self.html(
                page,
                headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"},
            )

    @app.page("/dashboard/data")
    class DashboardDataView(GuardedView):
        guard = reader_guard(ctx)

        async def get(self, request: Request) -> Response:
            """Redis down or busy: 503 with an ``error`` the page shows while it keeps polling."""
            body = await stats.data()
            return self.json(body, headers={"Cache-Control": "no-store"})

    @app.page("/dashboard/static/{name}")
    class DashboardStaticView(View):
        async def get(self, request: Request, name: str) -> Response:
            found = files.get(name)
            if found is None:
                return self.json({"error": f"no static file {name!r}"}, status=404)
            return self.bytes(
                found,
                content_type=content_type(name),
                headers={"Cache-Control": "max-age=300"},
            )

    @app.timer(SAMPLE_SECONDS, name="rapport.dashboard_sampler")
    async def sample_counters() -> None:
        stats.sample()

    return stats


def campaign_rows_of(ctx: Context) -> CampaignSource:
    async def read() -> list[CampaignRow]:
        rows = []
        for report in await all_reports(ctx):
            treated, held = report["treatment"], report["holdout"]
            if not treated["exposed_customers"] and not held["exposed_customers"]:
                continue  # a campaign that has not run yet
            rate = report["uplift"]["conversion_rate"]
            rows.append(
                CampaignRow(
                    campaign=report["campaign"],
                    sent=treated["exposed_customers"],
                    holdout=held["exposed_customers"],
                    converted=treated["converted_customers"],
                    uplift=rate["estimate"],
                    uplift_low=rate["low"],
                    uplift_high=rate["high"],
                )
            )
        return sorted(rows, key=lambda row: (-(row.sent or 0), row.campaign))

    return read

"""The dashboard in a real headless Chromium (Selenium), against a real worker, broker and Redis.

Needs the Debian packages ``chromium`` and ``chromium-driver`` and the pip
package ``selenium``; skipped, with the reason, only when they are missing.
The screenshot is kept under the test's tmp dir and copied to
``bench/results/dashboard.png`` (git-ignored) for people to look at.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.rfm import score_population
from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import eventually, http_get, unique

webdriver = pytest.importorskip("selenium.webdriver", reason="pip package selenium not installed")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
DAY = 86_400_000
BUYERS = 40
WIDTH = 1440


#: What each order holds, in turn: two pairs bought together, and a product bought alone.
BASKETS = (("p-shoe", "p-sock"), ("p-hat", "p-scarf"), ("p-belt",))


def order(cid: str, ts: int, total: float, products: tuple[str, ...]) -> dict[str, Any]:
    price = round(total / len(products), 2)
    return {
        "event_id": unique("e"),
        "ts": ts,
        "customer_id": cid,
        "order_id": unique("o"),
        "total": total,
        "items": [
            {"product_id": p, "category": "fashion", "quantity": 1, "unit_price": price}
            for p in products
        ],
    }


def shop_history(now: int) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int, float]]]:
    """Orders of ``BUYERS`` customers spread over recency, frequency and spend.

    Returns the events and what the RFM index should hold for each buyer.
    """
    events, expected = [], {}
    for i in range(BUYERS):
        cid = f"dash-{i:02d}-{unique('c')}"
        orders = 1 + (i * 7) % 6
        last = now - ((i * 37) % 240) * DAY - i * 1000
        revenue = 0.0
        for j in range(orders):
            total = float(15 + (i * 53 + j * 31) % 400)
            basket = BASKETS[(i + j) % len(BASKETS)]
            events.append(order(cid, last - j * 4 * DAY, total, basket))
            revenue += total
        expected[cid] = (last, orders, revenue)
    return events, expected


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Debian packages chromium and chromium-driver are not installed "
            "(apt-get install -y chromium chromium-driver)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--lang=en-US",
        f"--window-size={WIDTH},1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
async def shop(event_worker: str, event_settings: Settings) -> dict[str, tuple[int, int, float]]:
    """The shop's order history, produced once and indexed by the worker."""
    now = int(time.time() * 1000)
    events, expected = shop_history(now)
    async with EventProducer(event_settings, event_settings.kafka_url or "") as producer:
        for event in events:
            await producer.send("orders", event)
        consenting = list(expected)[:8]
        for cid in consenting:  # some customers can be emailed, so some decisions are "sent"
            await producer.send(
                "customers",
                {
                    "event_id": unique("e"),
                    "ts": now,
                    "customer_id": cid,
                    "email": f"{cid}@example.org",
                    "consent": {"email": True},
                },
            )

    def indexed() -> dict[str, Any] | None:
        status, body = http_get(f"{event_worker}/dashboard/data")
        return body if status == 200 and body["rfm"]["buyers"] == BUYERS else None

    await eventually(indexed, timeout=60)
    return expected


def grid_counts(data: dict[str, Any]) -> dict[tuple[int, int], int]:
    return {
        (row["r"], cell["f"]): cell["customers"]
        for row in data["rfm"]["grid"]
        for cell in row["cells"]
    }


def test_static_files_are_served_and_unknown_names_are_not(event_worker: str) -> None:
    with urllib.request.urlopen(f"{event_worker}/dashboard", timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        page = answer.read().decode()
    assert "/dashboard/static/uPlot.iife.min.js" in page
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    with urllib.request.urlopen(f"{event_worker}/dashboard/static/uPlot.iife.min.js") as answer:
        assert answer.headers["Content-Type"].startswith("text/javascript")
        assert b"uPlot" in answer.read(200)
    assert http_get(f"{event_worker}/dashboard/static/..%2Fdashboard.py")[0] == 404
    assert http_get(f"{event_worker}/dashboard/static/nothing.js")[0] == 404


def test_data_matches_the_rfm_of_the_indexed_population(
    event_worker: str, shop: dict[str, tuple[int, int, float]]
) -> None:
    status, data = http_get(f"{event_worker}/dashboard/data")
    assert status == 200
    now = max(last for last, _, _ in shop.values())  # event clock: the newest event time
    scores = score_population(shop, now=now)
    expected = Counter((s.r, s.f) for s in scores.values())
    assert {k: v for k, v in grid_counts(data).items() if v} == dict(expected)
    assert data["rfm"]["revenue"] == round(sum(rev for _, _, rev in shop.values()), 2)
    assert sum(t["customers"] for t in data["rfm"]["tiers"]) == BUYERS
    assert sum(s["customers"] for s in data["rfm"]["lifecycle"]) == BUYERS
    assert sum(s["customers"] for s in data["rfm"]["segments"]) == BUYERS
    assert data["prospects_indexed"] is False
    # The 8 consenting shoppers were welcomed (some held until the quiet hours end): the
    # table holds the campaigns that have results (the data is cached for a few seconds).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = {
            c["campaign"]: c for c in http_get(f"{event_worker}/dashboard/data")[1]["campaigns"]
        }
        if "welcome" in rows:
            break
        time.sleep(0.5)
    assert 1 <= rows["welcome"]["sent"] <= 8
    assert all((c["sent"] or 0) + (c["holdout"] or 0) > 0 for c in rows.values())
    pairs = {(a["product_id"], a["other_product_id"]) for a in data["associations"]}
    assert {frozenset(p) for p in pairs} == {frozenset(b) for b in BASKETS if len(b) == 2}
    assert all(a["lift"] > 1 and a["confidence"] == 1.0 for a in data["associations"])
    assert data["worker"]["totals"]["events"] >= len(shop)


def test_dashboard_renders_live_data_in_chromium(
    event_worker: str,
    event_settings: Settings,
    shop: dict[str, tuple[int, int, float]],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    browser.get(f"{event_worker}/dashboard")
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    # rendered twice (so the charts have a history), with non-zero grid counts
    wait.until(
        lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-updates") or 0) >= 2
    )
    wait.until(
        lambda d: (
            sum(
                int(c.get_attribute("data-count"))
                for c in d.find_elements(By.CSS_SELECTOR, "#rfm-grid .cell")
            )
            == BUYERS
        )
    )
    headings = {h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2")}
    assert {"RFM grid", "Lifecycle", "Tiers", "Campaigns", "Throughput", "Freshness"} <= headings

    _, data = http_get(f"{event_worker}/dashboard/data")
    assert browser.find_element(By.ID, "kpi-buyers").text == str(data["rfm"]["buyers"]) == "40"
    (r, f), biggest = max(grid_counts(data).items(), key=lambda item: item[1])
    cell = browser.find_element(By.CSS_SELECTOR, f'#rfm-grid .cell[data-r="{r}"][data-f="{f}"]')
    assert cell.find_element(By.CLASS_NAME, "count").text == str(biggest)
    assert not browser.find_element(By.ID, "campaigns-empty").is_displayed()
    first = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#associations tbody td")]
    top = data["associations"][0]
    assert first[:2] == [top["product_id"], top["other_product_id"]]
    assert not browser.find_element(By.ID, "associations-empty").is_displayed()
    assert "Prospects (no order yet) are not indexed" in browser.page_source
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-throughput canvas")

    # Nothing was loaded from another origin, and the console is clean (no CSP violation).
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert urls and all(u.startswith(event_worker) for u in urls)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    shot = screenshot(browser, tmp_path / "dashboard.png")
    check_png(shot)
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, RESULTS / "dashboard.png")


def test_campaign_table_shows_the_campaign_results(
    event_worker: str,
    event_settings: Settings,
    shop: dict[str, tuple[int, int, float]],
    browser: WebDriver,
) -> None:
    """A real welcome sent by the worker appears in the table, from GET /campaigns."""
    cid = f"dash-welcome-{uuid.uuid4().hex[:8]}"
    asyncio.run(_opt_in(event_settings, cid))
    url = f"{event_worker}/campaigns/welcome"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as answer:
            welcome = orjson.loads(answer.read())
        if welcome["treatment"]["exposed_customers"] >= 1:
            break
        time.sleep(0.3)
    sent = welcome["treatment"]["exposed_customers"]
    assert sent >= 1

    browser.get(f"{event_worker}/dashboard")
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)

    def welcome_row(d: WebDriver) -> list[str] | None:
        for row in d.find_elements(By.CSS_SELECTOR, "#campaigns tbody tr"):
            cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
            if cells and cells[0] == "welcome":
                return cells
        return None

    cells = wait.until(welcome_row)
    assert int(cells[1]) >= sent
    assert not browser.find_element(By.ID, "campaigns-empty").is_displayed()


async def _opt_in(settings: Settings, cid: str) -> None:
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        await producer.send(
            "customers",
            {
                "event_id": f"opt-{cid}",
                "ts": 1_795_341_600_000,
                "customer_id": cid,
                "email": f"{cid}@example.com",
                "consent": {"email": True},
            },
        )


def screenshot(browser: WebDriver, path: Path) -> Path:
    """The whole page: the viewport is made as tall as the document first."""
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    time.sleep(0.5)  # charts follow the new size (ResizeObserver)
    assert browser.save_screenshot(str(path))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]
    return path


def check_png(path: Path) -> None:
    """A real picture: PNG header, not tiny, and (with Pillow) not one flat colour."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(raw) > 20_000, f"screenshot only {len(raw)} bytes"
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        assert image.width >= WIDTH - 20 and image.height > 900
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
        assert len(colours) > 50, "the screenshot is (nearly) a single colour"

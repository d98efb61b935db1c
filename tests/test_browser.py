"""One real browser session: ``streamlit run app.py`` on a free loopback port, every page opened in
Debian's Chromium, page titles checked, no exception box, a screenshot of each page saved under
``tests/artifacts/`` (git-ignored). Skipped with a reason where Chromium or Playwright is absent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
# The first request to a fresh server asks for a page other than the home page on purpose: that is
# when Streamlit would run a pages/ file without app.py (see ui.context.page_inputs).
PAGES = [("warehouse", "Warehouse", "warehouse"), ("", "Executive KPIs", "executive_kpis"),
         ("import_data", "Import data", "import_data"), ("data_quality", "Data quality", "data_quality"),
         ("basket_rules", "Basket rules", "basket_rules"), ("heatmaps", "Heatmaps", "heatmaps"),
         ("funnels", "Funnels", "funnels"), ("rfm_segments", "RFM segments", "rfm_segments"),
         ("clusters", "Member clusters", "clusters"), ("member_tags", "Member tags", "member_tags"),
         ("member_360?member=M00000007", "Member 360", "member_360"),
         ("campaign_targeting", "Campaign targeting", "campaign_targeting"),
         ("experiments", "Experiment read-out", "experiments"), ("programme", "Programme", "programme"),
         ("campaign_results", "Campaign results", "campaign_results"),
         ("experiments?campaign=CMP0030", "Experiment read-out", "experiments_linked")]
#: Tabs (and views inside them) of the programme pages: each is clicked and photographed.
TABS = {"programme": [("Tiers", None), ("Tiers", "Upgrades and downgrades"), ("Tiers", "Retention and spend"),
                      ("Tiers", "Next threshold"), ("Threshold what-if", None), ("Points", None),
                      ("Points", "About to expire"), ("Member value", None)],
        "campaign_results": [("Campaigns", None), ("By type and channel", None), ("ROI over time", None),
                             ("Retention", None), ("Send frequency", None)]}

pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium); CI installs it",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise AssertionError(f"streamlit did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield chromium
        chromium.close()


def wait_until_idle(page) -> None:
    """Wait until Streamlit has finished running (it shows a status widget while a run is going on,
    and a page may rerun once, so the widget must stay away for a moment)."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=60_000)
    running = """() => !!document.querySelector('[data-testid="stStatusWidget"]')"""
    quiet_since = time.monotonic()
    deadline = quiet_since + 90
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        if page.evaluate(running):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
    raise AssertionError("the app kept running for 90 s")


def test_every_page_in_a_real_browser(browser, duck_warehouse, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url}, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        for path, title, name in PAGES:
            page.goto(f"{base}/{path}")
            wait_until_idle(page)
            assert page.locator("h1").first.inner_text().strip() == title
            assert page.locator('[data-testid="stException"]').count() == 0
            page.get_by_role("button", name="Refresh data").wait_for(timeout=30_000)  # app.py's sidebar
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        # the KPI page is interactive and its state lands in the URL, ready to share
        page.goto(f"{base}/")
        wait_until_idle(page)
        assert page.locator('[data-testid="stMetric"]').count() == 11
        page.get_by_text("Member tier", exact=True).last.click()
        wait_until_idle(page)
        assert "breakdown_by=Member+tier" in page.url
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "executive_kpis_by_tier.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_first_run_shows_progress_then_the_kpis(browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"MEMBERLENS_DATA_DIR": str(tmp_path), "MEMBERLENS_DEMO_MEMBERS": "30000", "MEMBERLENS_WAREHOUSE_URL": ""}
    process, base = start_app(env, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/")
        page.get_by_text("Building the demo warehouse").wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "first_run.png"))
        page.get_by_role("heading", name="Executive KPIs").wait_for(timeout=120_000)
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert (tmp_path / "warehouse.duckdb").exists()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_funnel_steps_are_edited_in_the_grid(browser, duck_warehouse, tmp_path: Path) -> None:
    """The step editor is a canvas grid AppTest cannot drive: deleting three of the four default steps
    gives a clear message instead of a funnel, and the page keeps working."""
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url}, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{base}/funnels")
        wait_until_idle(page)
        page.get_by_text("Entered (members)", exact=True).first.wait_for(timeout=30_000)
        grid = page.locator('[data-testid="stDataFrameResizable"]').first
        grid.locator("canvas").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)  # the grid draws its rows after the canvas appears
        box = grid.bounding_box()
        for row in (2, 3, 4):  # the row markers of steps 2-4 (35 px rows under a 35 px header)
            if row > 2:
                page.keyboard.down("Control")
            page.mouse.click(box["x"] + 15, box["y"] + 35 * row + 17)
            if row > 2:
                page.keyboard.up("Control")
            page.wait_for_timeout(200)
        page.keyboard.press("Delete")
        message = page.get_by_text("A funnel has 2 to 8 steps, not 1. Edit the steps above.")
        message.wait_for(timeout=30_000)
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "funnels_one_step.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_every_tab_of_the_programme_pages(browser, duck_warehouse, tmp_path: Path) -> None:
    """Programme and Campaign results: each tab (and view) clicked in Chromium, no exception box, a screenshot
    each; and a campaign's read-out link opens that campaign."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url}, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        for path, tabs in TABS.items():
            page.goto(f"{base}/{path}")
            wait_until_idle(page)
            for tab, view in tabs:
                page.get_by_role("tab", name=tab).click()
                wait_until_idle(page)
                if view is not None:
                    page.get_by_text(view, exact=True).first.click()
                    wait_until_idle(page)
                assert page.locator('[data-testid="stException"]').count() == 0, (path, tab, view)
                assert page.locator(".js-plotly-plot, [data-testid='stDataFrame']").count() > 0, (path, tab, view)
                name = "_".join(w.lower().replace("-", "_") for w in (tab, view or "") if w).replace(" ", "_")
                page.screenshot(path=str(ARTIFACTS / f"{path}_{name}.png"), full_page=True)
        page.goto(f"{base}/experiments?campaign=CMP0030")
        wait_until_idle(page)
        assert "CMP0030 · " in page.content()  # the selectbox shows that campaign
    finally:
        process.terminate()
        process.wait(timeout=20)

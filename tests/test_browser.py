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

from tests.conftest import PROJECT_ROOT, store_models

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
         ("experiments?campaign=CMP0030", "Experiment read-out", "experiments_linked"),
         ("recommendations?member=M00000007", "Recommendations", "recommendations"),
         ("privacy_requests", "Privacy requests", "privacy_requests"), ("audit_log", "Audit log", "audit_log"),
         ("admin_users", "Users and roles", "admin_users")]
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
    """Streamlit serving the app with ``env`` on a free port; unless ``env`` names one, with an app-state database
    of its own beside ``log`` (the session's shared one holds the users, roles and settings earlier tests made:
    with them, the app would not open for an anonymous reader as a fresh install does)."""
    env = {"MEMBERLENS_STATE_URL": f"sqlite:///{log.parent / 'app_state.sqlite'}", **env}
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


def open_tab(page, name: str) -> None:
    """Click the tab ``name`` until it is the selected one: a click that lands while the page is still
    re-rendering can be lost, and the panel under it would then stay hidden."""
    tab = page.get_by_role("tab", name=name)
    for _attempt in range(5):
        tab.click()
        try:
            page.wait_for_function("t => t.getAttribute('aria-selected') === 'true'", arg=tab.element_handle(),
                                   timeout=5_000)
            return
        except sync_api.TimeoutError:
            wait_until_idle(page)
    raise AssertionError(f"the tab {name!r} would not open")


def test_every_page_in_a_real_browser(browser, duck_warehouse, tmp_path: Path) -> None:
    from analytics.kpis import KPIS
    from analytics.recommend_store import train_version
    from analytics.storage.appstate import open_state

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    state_url = f"sqlite:///{tmp_path}/state.sqlite"  # with a stored recommender, so its page shows lists
    train_version(duck_warehouse.engine, open_state(state_url), "browser test")
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url, "MEMBERLENS_STATE_URL": state_url,
                               "MEMBERLENS_RECOMMENDER_DIR": ""}, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        for path, title, name in PAGES:
            page.goto(f"{base}/{path}")
            wait_until_idle(page)
            assert page.locator("h1").first.inner_text().strip() == title
            assert page.locator('[data-testid="stException"]').count() == 0
            page.get_by_role("button", name="Refresh data").wait_for(timeout=30_000)  # app.py's sidebar
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        # the recommendations' evaluation tab: the algorithms side by side, measured out of time
        page.goto(f"{base}/recommendations?member=M00000007")
        wait_until_idle(page)
        open_tab(page, "Evaluation")
        page.get_by_text("Best of those evaluated", exact=False).or_(page.get_by_text("In use (v1)")).first.wait_for(
            timeout=120_000)
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "recommendations_evaluation.png"), full_page=True)
        # the KPI page is interactive and its state lands in the URL, ready to share
        page.goto(f"{base}/")
        wait_until_idle(page)
        assert page.locator('[data-testid="stMetric"]').count() == len(KPIS)
        page.get_by_text("Member tier", exact=True).last.click()
        wait_until_idle(page)
        assert "breakdown_by=Member+tier" in page.url
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "executive_kpis_by_tier.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_every_page_in_chinese_and_back(browser, duck_warehouse, tmp_path: Path) -> None:
    """Every page opened with ``?lang=zh-CN``: its title in Chinese, Chinese text drawn (CI installs a CJK font, so
    the screenshots show characters, not boxes), no exception; the language stays across a page change and the
    sidebar's switch brings English back, into the URL too."""
    import re

    from analytics.i18n import _, using

    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url,
                               "MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite"}, tmp_path / "app.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, locale="en-GB")
        for path, title, name in PAGES:
            page.goto(f"{base}/{path}{'&' if '?' in path else '?'}lang=zh-CN")
            wait_until_idle(page)
            with using("zh_CN"):
                assert page.locator("h1").first.inner_text().strip() == _(title), path
            assert page.locator('[data-testid="stException"]').count() == 0, path
            main = page.locator("[data-testid='stMain']").first.inner_text()
            assert re.search(r"[\u4e00-\u9fff]", main), path
            page.screenshot(path=str(ARTIFACTS / f"{name}_zh.png"), full_page=True)
        page.goto(f"{base}/?lang=zh-CN")
        wait_until_idle(page)
        page.get_by_role("link", name="RFM 分层").click()  # the navigation, in Chinese
        wait_until_idle(page)
        assert page.locator("h1").first.inner_text().strip() == "RFM 分层" and "lang=zh-CN" in page.url
        page.get_by_text("English", exact=True).click()  # the sidebar's switch
        wait_until_idle(page)
        assert page.locator("h1").first.inner_text().strip() == "RFM segments" and "lang=en" in page.url
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


def test_predictions_tabs_in_a_real_browser(browser, duck_warehouse, trained_models: dict, tmp_path: Path) -> None:
    """The Predictions page with stored models: every tab opens without an error box, with its charts drawn."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    store_models(state_url, duck_warehouse.engine, trained_models)
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url, "MEMBERLENS_STATE_URL": state_url},
                              tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(f"{base}/predictions")
        wait_until_idle(page)
        assert page.locator("h1").first.inner_text().strip() == "Predictions"
        for tab, name in (("Scores and risk bands", "scores"), ("Churn model card", "churn_card"),
                          ("Propensity model card", "propensity_card"), ("Lifetime value", "clv")):
            open_tab(page, tab)
            wait_until_idle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, tab
            assert page.locator(".js-plotly-plot").count() >= 2, tab
            page.screenshot(path=str(ARTIFACTS / f"predictions_{name}.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_signed_in_users_in_a_real_browser(browser, duck_warehouse, tmp_path: Path) -> None:
    """Sign-in configured: the sign-in page, then a marketer restricted to South China (signed in by the cookie
    Streamlit sets after an OpenID Connect sign-in, signed with the configured secret): only their pages, their
    region's members, pseudonymous exports; and a privacy officer on their pages."""
    import json

    from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

    from analytics.access import local_principal
    from analytics.storage.appstate import open_state
    from analytics.storage.users import grant

    secret = "browser-test-cookie-secret-0123456789abcdef"
    secrets = tmp_path / "secrets.toml"
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    state = open_state(state_url)
    grant(state, local_principal(), "mia@example.com", "marketer", name="Mia", regions=["South China"])
    grant(state, local_principal(), "po@example.com", "privacy_officer", name="Po")
    state.dispose()
    env = {"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url, "MEMBERLENS_STATE_URL": state_url,
           "STREAMLIT_SECRETS_FILES": str(secrets)}

    def write_secrets(base: str) -> None:
        secrets.write_text(f'[auth]\nredirect_uri = "{base}/oauth2callback"\ncookie_secret = "{secret}"\n'
                           'client_id = "memberlens"\nclient_secret = "unused"\n'
                           'server_metadata_url = "https://login.example.com/.well-known/openid-configuration"\n')

    write_secrets("http://127.0.0.1")  # the redirect is never followed: nobody signs in with a provider here
    process, base = start_app(env, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{base}/")
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
        assert page.locator('[data-testid="stMetric"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "sign_in.png"))
        for identity, pages, shot in (("mia@example.com", ["", "campaign_targeting"], "signed_in_marketer"),
                                      ("po@example.com", ["", "audit_log"], "signed_in_privacy_officer")):
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            payload = {"email": identity, "name": identity.split("@")[0].title(), "is_logged_in": True,
                       "origin": base, "provider": "default"}
            cookie = create_signed_value(secret, "_streamlit_user", json.dumps(payload)).decode()
            context.add_cookies([{"name": "_streamlit_user", "value": cookie, "url": base}])
            tab = context.new_page()
            for path in pages:
                tab.goto(f"{base}/{path}")
                wait_until_idle(tab)
                assert tab.locator('[data-testid="stException"]').count() == 0
                tab.screenshot(path=str(ARTIFACTS / f"{shot}_{path or 'home'}.png"), full_page=True)
            navigation = tab.locator('[data-testid="stSidebarNav"]').inner_text()
            if identity.startswith("mia"):
                assert "Campaign targeting" in navigation and "Member 360" not in navigation
                assert "Users and roles" not in navigation and "Refresh data" not in tab.content()
                assert "Only: South China" in tab.locator('[data-testid="stSidebar"]').inner_text()
            else:
                assert "Audit log" in navigation and "Executive KPIs" not in navigation
            context.close()
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
                open_tab(page, tab)
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

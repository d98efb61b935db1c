"""The marketer's job in a real browser (issue 23): "build a win-back campaign for lapsed high-value Beauty buyers
with a 10 % holdout" on the Campaign targeting page, in Chromium, the way a person does it: the starter's recency
row replaced, conditions added with the picker (Beauty chosen from the known categories), the sizes and the
funnel of counts read, the look-back switched to see why the old page found nobody, the control group's size
checked and the audience saved. Screenshots go to ``tests/artifacts/targeting_job_*.png``. Skipped with a reason
where Chromium or Playwright is absent (tests/test_browser.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics import targeting
from tests.conftest import default_filters
from tests.reference_lookback import LookbackReference
from tests.test_browser import ARTIFACTS, browser, open_tab, start_app, wait_until_idle  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.browser


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox labelled ``label``."""
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    wait_until_idle(page)


def _delete_row(page, row: int) -> None:
    """Delete a row of the conditions grid (a canvas: its row marker, then Delete)."""
    grid = page.locator('[data-testid="stDataFrameResizable"]').first
    grid.locator("canvas").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 35 * row + 17)  # 35 px rows under a 35 px header
    page.wait_for_timeout(200)
    page.keyboard.press("Delete")
    wait_until_idle(page)


def _add(page) -> None:
    page.get_by_role("button", name="Add", exact=True).click()
    wait_until_idle(page)


def _metric(page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_win_back_campaign_job_in_a_real_browser(browser, duck_warehouse, tmp_path: Path) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url, "MEMBERLENS_STATE_URL": state_url},
                              tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        page.goto(f"{base}/campaign_targeting")
        wait_until_idle(page)
        assert page.locator("h1").first.inner_text().strip() == "Campaign targeting"
        # high-value: the starter's tier row stays; its "last order 0 - 90 days" row goes
        _delete_row(page, 2)
        # lapsed: last order 90 - 365 days ago, typed in the picker
        _pick(page, "Field", "Days since last order")
        page.get_by_label("Values", exact=True).first.fill("90 - 365")
        page.keyboard.press("Enter")
        wait_until_idle(page)
        _add(page)
        # Beauty buyers: chosen from the known categories
        _pick(page, "Field", "Bought a category")
        values = page.get_by_label("Values", exact=True).first
        values.click()
        page.get_by_role("option", name="Beauty", exact=True).first.click()
        page.keyboard.press("Escape")
        wait_until_idle(page)
        _add(page)
        assert "10%" in page.locator('[data-testid="stSlider"]').filter(has_text="Control group").first.inner_text()
        spec = {**_spec(duck_warehouse), "lookback": "recency"}
        ref = LookbackReference(duck_warehouse, spec)
        expected = ref.group(spec["rules"]) & ref.uncapped()
        sizes = targeting.preview(duck_warehouse.engine, targeting.parse_spec(spec))
        assert sizes.targeted == len(expected) > 0
        assert _metric(page, "Targeted") == f"{sizes.targeted:,}"
        assert _metric(page, "Control") == f"{sizes.control:,}"
        funnel = page.get_by_text("All members: 2,000 →").first
        funnel.wait_for(timeout=30_000)
        steps = ref.funnel()
        chain = funnel.inner_text()
        assert f"Bought a category is one of Beauty (since {ref.default.isoformat()}): {steps[-2][1]:,} →" in chain
        assert chain.endswith(f"(frequency cap): {steps[-1][1]:,}") and steps[-1][1] == sizes.targeted
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "targeting_job_built.png"), full_page=True)
        # the old reading: "bought Beauty" over the 90-day range finds nobody, and the page says which row
        page.get_by_text("over the audience window", exact=True).click()
        wait_until_idle(page)
        assert _metric(page, "Targeted") == "0"
        page.get_by_text("removes the last").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "targeting_job_window_lookback.png"), full_page=True)
        page.get_by_text("as far back as the recency condition reaches", exact=True).click()
        wait_until_idle(page)
        assert _metric(page, "Targeted") == f"{sizes.targeted:,}"
        # the control group of a few members: its size is the problem, not how the arms were assigned
        open_tab(page, "Control balance")
        wait_until_idle(page)
        small = page.get_by_text("too small", exact=False).first
        small.wait_for(timeout=30_000)
        assert "check how the arms were assigned" not in page.locator("main").inner_text()
        page.screenshot(path=str(ARTIFACTS / "targeting_job_balance.png"), full_page=True)
        # save it for the campaign
        open_tab(page, "Save")
        wait_until_idle(page)
        page.get_by_label("Audience name", exact=True).fill("Win-back: lapsed high-value Beauty buyers")
        page.keyboard.press("Enter")
        wait_until_idle(page)
        page.get_by_role("button", name="Save", exact=True).click()
        wait_until_idle(page)
        page.get_by_text("version 1").first.wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "targeting_job_saved.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)
    from analytics.storage.appstate import load_audience, open_state

    saved = load_audience(open_state(state_url), "Win-back: lapsed high-value Beauty buyers", 1)
    assert saved.spec["lookback"] == "recency" and saved.spec["holdout"] == 0.1
    assert saved.spec["rules"] == spec["rules"] and saved.size == sizes.targeted


def _spec(w) -> dict:
    filters = default_filters(w)
    return {"version": 1, "kind": "audience", "start": filters.start.isoformat(), "end": filters.end.isoformat(),
            "rules": {"match": "all", "conditions": [
                {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                {"field": "days_since_last_order", "op": "between", "value": [90, 365]},
                {"field": "bought_category", "op": "in", "value": ["Beauty"]}]},
            "frequency_cap_days": 7, "max_size": None, "holdout": 0.1, "campaign_key": "campaign"}

"""A job done in a real browser, as a user would (issue 23): "which members are slipping away and what do they
share?" RFM segments -> the At Risk members (by value) -> one of them in Member 360 (a click on the id in the list)
-> the clusters' portraits. Screenshots of each step are saved under ``tests/artifacts/`` (git-ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.member_rows import audience_rows
from analytics.rfm import segment_audience
from tests.conftest import default_filters
from tests.test_browser import ARTIFACTS, browser, open_tab, start_app, wait_until_idle  # noqa: F401 (browser: a fixture)
from ui.format import money

pytestmark = pytest.mark.browser


def test_which_members_are_slipping_away_and_what_they_share(browser, duck_warehouse, tmp_path: Path) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    filters = default_filters(duck_warehouse)
    at_risk = audience_rows(duck_warehouse.engine, segment_audience(filters, ("At Risk",)))
    first = at_risk.iloc[0]
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url}, tmp_path / "streamlit.log")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 3000})
        page = context.new_page()
        # 1. RFM segments: the two groups on the cards are named by what they hold
        page.goto(f"{base}/rfm_segments")
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.get_by_text("At Risk + Can't Lose Them", exact=True).first.wait_for(timeout=30_000)
        page.get_by_text("Lapsed", exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "job_slipping_1_rfm.png"), full_page=True)
        # 2. the At Risk members, most valuable first
        open_tab(page, "Members of a segment")
        wait_until_idle(page)
        page.get_by_label("Segment", exact=True).click()
        page.get_by_role("option", name="At Risk", exact=True).click()
        wait_until_idle(page)
        page.get_by_text(f"{len(at_risk):,} members", exact=False).first.wait_for(timeout=30_000)
        grid = page.locator('[data-testid="stDataFrameResizable"]').last
        grid.scroll_into_view_if_needed()
        grid.locator("canvas").first.wait_for(timeout=30_000)
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / "job_slipping_2_at_risk_members.png"), full_page=True)
        # 3. a click on the first member's id opens their Member 360 page, on the same range
        box = grid.bounding_box()
        cell = (box["x"] + 40, box["y"] + 35 + 17)  # first column, first row under the header
        page.mouse.move(*cell)
        page.wait_for_timeout(300)
        with context.expect_page(timeout=30_000) as opened:
            page.mouse.click(*cell)
        member = opened.value
        member.wait_for_load_state()
        wait_until_idle(member)
        assert f"member={first['member_id']}" in member.url  # (the default dates are left out of the URL)
        assert member.locator("h1").first.inner_text().strip() == "Member 360"
        assert member.locator('[data-testid="stException"]').count() == 0
        metrics = member.locator('[data-testid="stMetric"]')
        metrics.first.wait_for(timeout=60_000)
        text = " ".join(metrics.all_inner_texts())
        assert "At Risk" in text and "Cluster" in text
        assert money(float(first["net_sales"])) in text  # the figure the list showed, on the member's page
        member.screenshot(path=str(ARTIFACTS / "job_slipping_3_member_360.png"), full_page=True)
        # 4. what they share: the clusters' portraits
        page.goto(f"{base}/clusters")
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "job_slipping_4_clusters.png"), full_page=True)
        open_tab(page, "Choosing k")
        page.get_by_text("Compare k = 2 … 10").click()
        wait_until_idle(page)
        page.get_by_text("Suggested: k =", exact=False).first.wait_for(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "job_slipping_5_choosing_k.png"), full_page=True)
        # the transition matrix, and the members of one move
        page.goto(f"{base}/rfm_segments")
        wait_until_idle(page)
        page.get_by_text("Transition matrix", exact=True).click()
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.get_by_text("moved from", exact=False).first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "job_slipping_6_migration.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)

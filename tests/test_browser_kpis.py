"""The executive's job "how did we do last quarter, and why?" in Chromium: pick Last quarter in the sidebar,
compare with the same period last year, break the repurchase rate down by member tier; type dates and press
Enter; open a link whose dates reach outside the data. Screenshots go to ``tests/artifacts`` (look at them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics import kpis
from analytics.filters import Filters, period_range
from analytics.storage.warehouse import data_span
from tests.test_browser import ARTIFACTS, browser, start_app, sync_api, wait_until_idle  # noqa: F401 - a fixture
from ui.format import format_value

pytestmark = pytest.mark.browser


def _pick(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key}").click()
    page.get_by_role("option", name=option).first.click()
    wait_until_idle(page)


def _wait_for_address(page, part: str) -> None:
    """Wait until the page's address holds ``part`` (Streamlit rewrites it in place, without navigating)."""
    try:
        page.wait_for_function("part => window.location.search.includes(part)", arg=part, timeout=15_000)
    except sync_api.TimeoutError:
        page.screenshot(path=str(ARTIFACTS / "kpis_address_not_updated.png"), full_page=True)
        raise AssertionError(f"{part} never reached the address: {page.url}") from None


def test_last_quarter_against_last_year_and_why(browser, duck_warehouse, tmp_path: Path) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    span = data_span(duck_warehouse.engine)
    quarter = Filters(*period_range("last_quarter", span.first_day, span.last_day))
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url,
                               "MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite"},
                              tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 2300})
        # A fresh server's first session starts with a rerun (ui.context.page_inputs), after which a value set from
        # code reaches the address only at the next change; the flow below is that of any later visit.
        page.goto(f"{base}/")
        wait_until_idle(page)
        page.goto(f"{base}/")
        wait_until_idle(page)
        _pick(page, "period", "Last quarter")
        _wait_for_address(page, f"dates={quarter.start}&dates={quarter.end}")
        page.get_by_text("Same period last year", exact=True).click()
        wait_until_idle(page)
        summary = kpis.kpi_summary(duck_warehouse.engine, quarter, "year_ago")
        caption = page.get_by_text("Last quarter: ", exact=False).first.inner_text()
        assert f"compared with the same period last year: {summary.compared.start.day} " in caption
        net_sales = page.locator('[data-testid="stMetric"]').filter(has_text="Net sales (GMV)")
        assert format_value(summary["net_sales"].current, "currency") in net_sales.inner_text()
        _pick(page, "breakdown_kpi", "Repurchase rate")
        page.locator(".st-key-breakdown_by").get_by_text("Member tier", exact=True).click()
        wait_until_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        for key in ("compare=Same+period+last+year", "breakdown_kpi=Repurchase+rate", "breakdown_by=Member+tier"):
            assert key in page.url  # the whole answer is a link to share
        result = kpis.kpi_breakdown(duck_warehouse.engine, quarter, "tier", "repurchase_rate", "year_ago")
        gold = result.rows.set_index("value").loc["gold"]
        chart = page.locator(".st-key-breakdown_chart")
        assert format_value(gold["current"], "ratio") in chart.inner_text()
        page.locator(".st-key-breakdown_chart").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "kpis_last_quarter_yoy_repurchase_by_tier.png"), full_page=True)

        # dates typed in the sidebar box apply on Enter
        start, end = quarter.start.replace(day=10), quarter.end.replace(day=20)
        box = page.get_by_role("textbox", name="Type dates")
        box.fill(f"{start} to {end}")
        box.press("Enter")
        wait_until_idle(page)
        _wait_for_address(page, f"dates={start}&dates={end}")
        assert page.locator(".st-key-period input").input_value().startswith("Custom range")
        page.screenshot(path=str(ARTIFACTS / "kpis_typed_dates.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_link_outside_the_data_is_narrowed_and_says_so(browser, duck_warehouse, tmp_path: Path) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    span = data_span(duck_warehouse.engine)
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url,
                               "MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite"},
                              tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{base}/?dates=2020-01-01&dates={span.last_day.year + 3}-01-01")
        wait_until_idle(page)
        page.get_by_text("The link asked for 1 Jan 2020").wait_for(timeout=30_000)
        wait_until_idle(page)
        field = page.locator('[data-testid="stDateInputField"]').inner_text().replace("\n", "")
        assert field.replace(" ", "") == f"{span.first_day}–{span.last_day}"
        assert page.get_by_text(f"All data: {span.first_day.day} ", exact=False).count() == 1
        page.screenshot(path=str(ARTIFACTS / "kpis_link_outside_the_data.png"))
        # Streamlit drops the refused value from the address; the narrowed one is in it from the next change on
        page.get_by_text("Same period last year", exact=True).click()
        wait_until_idle(page)
        assert f"dates={span.first_day}&dates={span.last_day}" in page.url
    finally:
        process.terminate()
        process.wait(timeout=20)

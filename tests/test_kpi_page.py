"""The KPI page's flow "how did we do last quarter, and why?" under AppTest: last quarter from the sidebar, the
same period last year, a ratio KPI broken down by tier; every figure read back as a user reads it
(``tests.figures.read_figure``) equals the analytics result, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from analytics import kpis
from analytics.filters import Filters, period_range
from analytics.storage.warehouse import data_span
from tests.conftest import open_page
from tests.figures import read_figure


def _check(shown: str, expected: float | None, what: object) -> None:
    if expected is None:
        assert shown == "—", (what, shown)
    else:
        assert read_figure(shown).close_to(expected), (what, shown, expected)


def _check_change(shown: str, value: kpis.KpiValue, what: object) -> None:
    if value.definition.is_ratio:
        if value.change is None:
            assert shown == "—", what
        else:
            _check(shown.removesuffix(" pp"), value.change * 100, what)
    elif value.change_pct is None:
        assert shown in ("new", "—"), (what, shown)
    else:
        _check(shown, value.change_pct, what)


def _table(at):
    assert len(at.dataframe) == 1  # the breakdown table is the page's only table
    return at.dataframe[0].value


def test_last_quarter_against_last_year_and_why(warehouse, monkeypatch) -> None:
    at = open_page(warehouse.url, "pages/executive_kpis.py", monkeypatch)
    span = data_span(warehouse.engine)
    at.sidebar.selectbox(key="period").set_value("last_quarter").run()
    at.segmented_control(key="compare").set_value("year_ago").run()
    assert not at.exception, [e.value for e in at.exception]
    filters = Filters(*period_range("last_quarter", span.first_day, span.last_day))
    summary = kpis.kpi_summary(warehouse.engine, filters, "year_ago")
    caption = at.caption[0].value
    assert caption.startswith(f"Last quarter: {filters.start.day} {filters.start:%b %Y} – ")
    assert f"compared with the same period last year: {summary.compared.start.day} {summary.compared.start:%b %Y}" \
        in caption
    cards = {m.label: m for m in at.metric}
    for definition in kpis.KPIS:
        value = summary[definition.key]
        _check(cards[definition.label].value, value.current, definition.key)
        _check_change(cards[definition.label].delta or "—", value, definition.key)
        assert f"The same period last year ({summary.compared.start.day} " in cards[definition.label].help

    # why: the repurchase rate by member tier
    at.selectbox(key="breakdown_kpi").set_value("repurchase_rate").run()
    at.segmented_control(key="breakdown_by").set_value("tier").run()
    assert not at.exception, [e.value for e in at.exception]
    result = kpis.kpi_breakdown(warehouse.engine, filters, "tier", "repurchase_rate", "year_ago")
    table = _table(at)
    assert list(table.columns) == ["Member tier", "Repurchase rate", "Same period last year", "Change",
                                   "Share of active members"]
    assert list(table["Member tier"]) == [v.capitalize() for v in result.rows["value"]]
    for (_, row), (_, expected) in zip(table.iterrows(), result.rows.iterrows(), strict=True):
        value = kpis.KpiValue(result.kpi, _none(expected["current"]), _none(expected["previous"]))
        _check(row["Repurchase rate"], value.current, row["Member tier"])
        _check(row["Same period last year"], value.previous, row["Member tier"])
        _check_change(row["Change"], value, row["Member tier"])
        _check(row["Share of active members"], expected["share"], row["Member tier"])
    total = next(c.value for c in at.caption if c.value.startswith("Total: "))
    card = summary["repurchase_rate"]
    assert total.startswith(f"Total: {cards['Repurchase rate'].value} against ")  # the total is the card
    _check(total.split(" against ")[1].split(" (")[0], card.previous, "total")
    assert "is not a sum" in total


def _none(value: float) -> float | None:
    return None if value != value else float(value)


def test_net_sales_by_channel_read_back_with_their_part_of_the_change(duck_warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/executive_kpis.py", monkeypatch)
    span = data_span(duck_warehouse.engine)
    filters = Filters(*span.last_days(90))
    result = kpis.kpi_breakdown(duck_warehouse.engine, filters, "channel", "net_sales")
    table = _table(at)
    assert list(table.columns)[-1] == "Part of the total's change"
    for (_, row), (_, expected) in zip(table.iterrows(), result.rows.iterrows(), strict=True):
        _check(row["Net sales (GMV)"], expected["current"], row["Sales channel"])
        _check(row["Previous period"], expected["previous"], row["Sales channel"])
        _check(row["Share of total"], expected["share"], row["Sales channel"])
        _check(row["Part of the total's change"].removesuffix(" pp"), expected["contribution"] * 100,
               row["Sales channel"])
    # the bars carry the same figures, formatted the same way
    chart = next(c for c in at.get("plotly_chart") if "breakdown_chart" in str(c.proto.id))
    texts = [t for trace in json.loads(chart.proto.spec)["data"] if trace["name"] == "This period"
             for t in trace["text"]]
    assert texts == list(table["Net sales (GMV)"])


def test_only_breakdowns_that_apply_are_offered(duck_warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/executive_kpis.py", monkeypatch)
    at.selectbox(key="breakdown_kpi").set_value("session_conversion").run()
    assert not at.exception, [e.value for e in at.exception]
    control = at.segmented_control(key="breakdown_by")
    assert list(control.options) == ["Member tier", "Region", "New vs returning"]
    at.segmented_control(key="breakdown_by").set_value("customer_type").run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(_table(at)["New vs returning"]) <= {"New", "Returning", "Not yet bought", "Guest"}


def test_trend_says_how_each_point_is_computed_and_marks_partial_periods(duck_warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/executive_kpis.py", monkeypatch)
    at.selectbox(key="trend_kpi").set_value("repurchase_rate").run()
    at.segmented_control(key="trend_grain").set_value("week").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("trailing window as long as the selected range (90 days)" in c and "the last point is the card" in c
               for c in captions)
    chart = next(c for c in at.get("plotly_chart") if "trend_chart" in str(c.proto.id))
    repurchase = json.loads(chart.proto.spec)["data"]
    assert len(repurchase) == 1  # a trailing window is never partial
    at.selectbox(key="trend_kpi").set_value("net_sales").run()
    captions = [c.value for c in at.caption]
    span = data_span(duck_warehouse.engine)
    trend = kpis.kpi_trend(duck_warehouse.engine, Filters(*span.last_days(90)), "net_sales", "week")
    assert trend["partial"].iloc[-1] == (span.last_day.weekday() != 6)
    if trend["partial"].iloc[-1]:
        days = int(trend["days"].iloc[-1])
        assert any(f"the last week has only {days} day" in c and "Hollow points on a dashed line" in c
                   for c in captions)
        traces = json.loads(next(c for c in at.get("plotly_chart") if "trend_chart" in str(c.proto.id)).proto.spec)
        assert any(t.get("line", {}).get("dash") == "dash" for t in traces["data"])
        assert any(t.get("name") == "Partial week" for t in traces["data"])


def test_both_conversions_say_how_they_differ(duck_warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/executive_kpis.py", monkeypatch)
    card = next(m for m in at.metric if m.label == "Session conversion")
    assert "Not the Funnels page's session conversion" in card.help
    at.switch_page("pages/funnels.py").run()
    assert not at.exception, [e.value for e in at.exception]
    funnel = next(m for m in at.metric if m.label == "Overall conversion")
    assert "Not the Executive KPIs page's session conversion" in funnel.help


@pytest.mark.parametrize("comparison", ["previous", "year_ago"])
def test_a_comparison_before_the_data_is_flagged(duck_warehouse, monkeypatch, comparison: str) -> None:
    at = open_page(duck_warehouse.url, "pages/executive_kpis.py", monkeypatch)
    at.sidebar.selectbox(key="period").set_value("year_to_date").run()
    at.segmented_control(key="compare").set_value(comparison).run()
    span = data_span(duck_warehouse.engine)
    filters = Filters(*period_range("year_to_date", span.first_day, span.last_day))
    missing = kpis.comparison_coverage(filters, comparison, span.first_day)
    warnings = [w.value for w in at.warning]
    assert bool(missing) == any("before the first day of data" in w for w in warnings), (missing, warnings)

"""What users read: every headline figure a page shows, read back from the page (AppTest) as a user reads it
(``tests.figures.read_figure``: "¥2.3K" is 2,300 ± 50), equals the analytics result it comes from, on filters
that put the figures in every magnitude band: hundreds, tens of thousands, millions.

The defect this guards against: amounts from 10,000 to 999,999 were written ten times too small ("¥2.3K" beside
orders adding up to ¥22,799.54), and the page tests compared the page with the same formatter, so they agreed.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from analytics import kpis, rfm
from analytics.clustering import ClusterSettings, cluster_members
from analytics.experiments import campaign_list, read_out
from analytics.filters import Filters
from analytics.heatmaps import activity_rhythm, category_affinity
from analytics.rfm import member_rfm
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse, open_page
from tests.figures import read_figure

BANDS = {"hundreds": (100, 1_000), "tens of thousands": (10_000, 100_000), "millions": (1e6, 1e7)}


def _band(value: float) -> str | None:
    return next((name for name, (low, high) in BANDS.items() if low <= abs(value) < high), None)


def _set_dates(at, start: date, end: date):
    at.sidebar.date_input(key="dates").set_value((start, end)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _kpi_filters(warehouse: Warehouse) -> list[Filters]:
    """A day, a fortnight of one tier and the whole span: between them, KPIs in every band."""
    span = data_span(warehouse.engine)
    return [Filters(span.last_day, span.last_day),
            Filters(span.last_day - timedelta(days=13), span.last_day, tiers=("gold",)),
            Filters(span.first_day, span.last_day)]


def test_kpi_cards_read_back_as_the_kpis(warehouse: Warehouse, monkeypatch) -> None:
    """Each of the nine cards, and its change, on three filters, DuckDB and PostgreSQL."""
    at = open_page(warehouse.url, "pages/executive_kpis.py", monkeypatch)
    bands: set[str] = set()
    for filters in _kpi_filters(warehouse):
        if filters.tiers:
            at.sidebar.multiselect(key="tier").set_value(list(filters.tiers))
        _set_dates(at, filters.start, filters.end)
        summary = kpis.kpi_summary(warehouse.engine, filters)
        cards = {m.label.replace(" (channel filter not applied)", ""): m for m in at.metric}
        for definition in kpis.KPIS:
            value = summary[definition.key]
            if value.current is None:  # e.g. no campaign started in a single day: no ROI, shown as missing
                assert cards[definition.label].value == "—", definition.key
                continue
            shown = read_figure(cards[definition.label].value)
            assert shown.close_to(value.current), (definition.key, filters, cards[definition.label].value,
                                                   value.current)
            delta = cards[definition.label].delta
            if definition.is_ratio and value.change is not None:
                assert read_figure(delta.removesuffix(" pp")).close_to(value.change * 100), (definition.key, delta)
            elif value.change_pct is not None:
                assert read_figure(delta).close_to(value.change_pct), (definition.key, delta)
            if definition.unit != "ratio":
                bands.add(_band(value.current))
        at.sidebar.multiselect(key="tier").set_value([]).run()
    assert set(BANDS) <= bands, bands  # the filters did put figures in every band


def test_rfm_cards_read_back_as_the_segment_summary(duck_warehouse: Warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/rfm_segments.py", monkeypatch)
    span = data_span(duck_warehouse.engine)
    seen: set[str] = set()
    for filters in (Filters(span.last_day - timedelta(days=1), span.last_day), Filters(span.first_day, span.last_day)):
        _set_dates(at, filters.start, filters.end)
        summary = rfm.segment_summary(duck_warehouse.engine, filters).set_index("segment")
        metrics = {m.label: m for m in at.metric}
        cards = {label: m.value for label, m in metrics.items()}
        assert read_figure(cards["Members scored"]).close_to(summary["members"].sum())
        assert read_figure(cards["Their net sales"]).close_to(summary["sales"].sum())
        for group, parts in rfm.COMBINED.items():
            assert read_figure(cards[group]).close_to(summary.loc[list(parts), "members"].sum()), group
            members_part, sales_part = metrics[group].delta.split(" · ")
            assert read_figure(members_part.removesuffix(" of members")).close_to(
                summary.loc[list(parts), "member_share"].sum())
            assert read_figure(sales_part.removesuffix(" of sales")).close_to(
                summary.loc[list(parts), "sales_share"].sum())
        assert read_figure(cards[rfm.LAPSED]).close_to(rfm.lapsed_summary(duck_warehouse.engine, filters).members)
        seen.add(_band(summary["sales"].sum()))
    assert {"tens of thousands", "millions"} <= seen, seen


def test_cluster_cards_read_back_as_the_clusters(duck_warehouse: Warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/clusters.py", monkeypatch)
    span = data_span(duck_warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    _set_dates(at, filters.start, filters.end)
    result = cluster_members(duck_warehouse.engine, filters, ClusterSettings())
    cards = {m.label: m.value for m in at.metric}
    assert read_figure(cards["Members clustered"]).close_to(len(result.members))
    assert _band(result.total_sales) == "millions"
    assert read_figure(cards["Their net sales"]).close_to(result.total_sales)
    assert read_figure(cards["Cluster 1's share of sales"]).close_to(result.portraits.iloc[0]["sales_share"])


def test_heatmap_hover_amounts_read_back(duck_warehouse: Warehouse, monkeypatch) -> None:
    """Net sales per weekday and hour, and spend per tier and category: the amounts in the hover texts, each
    read back, are the heatmap's values (compared as sorted lists: rounding keeps the order)."""
    at = open_page(duck_warehouse.url, "pages/heatmaps.py", monkeypatch)
    span = data_span(duck_warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    _set_dates(at, filters.start, filters.end)
    at.session_state["heatmaps_tab"] = "Activity rhythm"  # only the open tab is drawn
    at.run()
    at.segmented_control(key="hm_measure").set_value("net_sales").run()
    assert not at.exception, [e.value for e in at.exception]
    for tab, key, values in (
            ("Activity rhythm", "hm_rhythm_chart",
             activity_rhythm(duck_warehouse.engine, filters, "net_sales")["value"]),
            ("Category affinity", "hm_affinity_chart",
             category_affinity(duck_warehouse.engine, filters, "tier")["spend"])):
        at.session_state["heatmaps_tab"] = tab
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        expected = sorted(float(v) for v in values)
        shown = sorted((read_figure(t) for t in _money_in_hovers(at, key)), key=lambda f: f.value)
        assert len(shown) == len(expected), key
        assert all(f.close_to(v) for f, v in zip(shown, expected, strict=True)), key
        assert {"tens of thousands", "millions"} & {_band(v) for v in expected}, key


def _money_in_hovers(at, key: str) -> list[str]:
    """The money figure in each cell's hover text of the chart ``key``."""
    import json
    import re

    chart = next(c for c in at.get("plotly_chart") if key in str(c.proto.id))
    figure = json.loads(chart.proto.spec)
    hovers = [str(t) for trace in figure["data"] for t in (trace.get("hovertext") or [])]
    return [m[-1] for m in (re.findall(r"-?[¥£$€][\d.,]+(?:万亿|[KMBT万亿])?", h) for h in hovers) if m]


def test_experiment_revenue_per_member_reads_back(duck_warehouse: Warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/experiments.py", monkeypatch)
    listed = campaign_list(duck_warehouse.engine)
    campaign = listed.sort_values("members").iloc[-1]["campaign_id"]
    at.selectbox(key="experiment_campaign").set_value(campaign).run()
    assert not at.exception, [e.value for e in at.exception]
    result = read_out(duck_warehouse.engine, campaign)
    cards = {m.label: m.value for m in at.metric}
    assert read_figure(cards["Revenue per member"]).close_to(result.treatment.revenue_per_member)
    assert read_figure(cards["Conversion, treatment"]).close_to(result.treatment.rate)
    assert read_figure(cards["Conversion, control"]).close_to(result.control.rate)


def test_member_360_net_sales_is_the_sum_of_the_orders_listed(duck_warehouse: Warehouse, monkeypatch) -> None:
    """The defect as found: the net sales card beside a table of orders that add up to ten times as much.
    Checked for the member with the largest net sales in the tens of thousands and one in the hundreds, against a
    pandas sum of their completed orders."""
    span = data_span(duck_warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    orders = duck_warehouse.frame("orders")
    done = orders[(orders["status"] == "completed") & orders["member_id"].notna()]
    totals = done.groupby("member_id")["net_amount"].sum()
    picks = [totals[(totals >= 10_000) & (totals < 100_000)].idxmax(),
             totals[(totals >= 100) & (totals < 1000)].index[0]]
    assert _band(totals[picks[0]]) == "tens of thousands" and _band(totals[picks[1]]) == "hundreds"
    rfm_rows = read_frame(duck_warehouse.engine, select(member_rfm(filters))).set_index("member_id")
    for member_id in picks:
        at = open_page(duck_warehouse.url, "pages/member_360.py", monkeypatch)
        _set_dates(at, filters.start, filters.end)
        at.text_input(key="m360_search").input(member_id).run()
        assert not at.exception, [e.value for e in at.exception]
        cards = {m.label: m.value for m in at.metric}
        assert read_figure(cards["Net sales in the range"]).close_to(totals[member_id]), (member_id,
                                                                                         cards, totals[member_id])
        assert float(rfm_rows.loc[member_id, "monetary"]) == pytest.approx(totals[member_id])

"""The Programme and Campaign results pages under Streamlit's AppTest, on DuckDB and PostgreSQL: every tab and view
runs without an exception, and the figures the cards show, read back as a user reads them (tests/figures.py),
are the analytics' results. The read-out page opens the campaign a link names."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import campaign_results, member_value, programme_points, programme_tiers, programme_whatif
from analytics.filters import Filters
from analytics.storage.warehouse import data_span
from tests.conftest import default_filters, direct_page, open_page
from tests.figures import read_figure


def _run(target):
    """Run the app (``target``: the AppTest, or a widget just changed) and check it raised nothing."""
    at = target.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _cards(at) -> dict[str, object]:
    return {m.label: m for m in at.metric}


def _close(text: str, value: float) -> bool:
    return read_figure(text.removesuffix("×")).close_to(value)


def test_programme_tiers_views(warehouse, monkeypatch) -> None:
    at = open_page(warehouse.url, "pages/programme.py", monkeypatch)
    assert [t.value for t in at.title] == ["Programme"]
    filters = default_filters(warehouse)
    counts = programme_tiers.tier_counts_over_time(warehouse.engine, filters, "day")
    last = counts[counts["period_start"] == counts["period_start"].max()].set_index("tier")["members"]
    cards = _cards(at)
    for tier, n in last.items():
        assert _close(cards[f"{tier.capitalize()} members"].value, n), tier
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 1  # members per tier, sales per tier

    _run(at.segmented_control(key="programme_tier_view").set_value("flows"))
    moved = programme_tiers.flow_summary(programme_tiers.tier_flows(warehouse.engine,
                                                                    filters.start - timedelta(days=1), filters.end))
    cards = _cards(at)
    for key, text in (("up", "Moved up"), ("down", "Moved down"), ("stayed", "Stayed"), ("joined", "Joined")):
        assert _close(cards[text].value, moved[key]), key
    assert moved["up"] > 0 and moved["down"] > 0
    _run(at.segmented_control(key="programme_flow_view").set_value("matrix"))

    _run(at.segmented_control(key="programme_tier_view").set_value("value"))
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 1

    _run(at.segmented_control(key="programme_tier_view").set_value("gap"))
    summary = programme_tiers.gap_summary(programme_tiers.upgrade_gap(warehouse.engine, filters))
    cards = _cards(at)
    for row in summary.itertuples():
        assert _close(cards[f"{row.tier.capitalize()} near {row.next_tier.capitalize()}"].value, row.near_share)


def test_programme_whatif_tab(warehouse, monkeypatch) -> None:
    at = open_page(warehouse.url, "pages/programme.py", monkeypatch)
    at.session_state["programme_tab"] = "Threshold what-if"
    _run(at)
    cards = _cards(at)
    assert read_figure(cards["Would move up"].value).value == 0 == read_figure(cards["Would move down"].value).value
    at.number_input(key="whatif_threshold_silver").set_value(2_000.0)
    at.number_input(key="whatif_threshold_gold").set_value(8_000.0)
    at.number_input(key="whatif_rate_gold").set_value(2.5)
    _run(at.number_input(key="whatif_rate_silver").set_value(1.0))
    rule = programme_whatif.TierRule((2_000, 8_000, 20_000))
    result = programme_whatif.whatif_tiers(warehouse.engine, default_filters(warehouse).end, rule,
                                           {"silver": 0.01, "gold": 0.025})
    cards = _cards(at)
    assert _close(cards["Would move down"].value, result.moved("down")) and result.moved("down") > 0
    assert _close(cards["Would move up"].value, result.moved("up"))
    assert _close(cards["Benefits cost, today's tiers"].value, result.cost_today)
    assert _close(cards["Benefits cost, edited rule"].value, result.cost_whatif)
    assert any(f"{result.moved('down'):,} members" in m.value for m in at.markdown)  # who would move, listed
    _run(at.number_input(key="whatif_threshold_gold").set_value(1_500.0))  # below silver: refused, explained
    assert any("increase" in e.value for e in at.error)


def test_programme_points_and_value_tabs(warehouse, monkeypatch) -> None:
    at = open_page(warehouse.url, "pages/programme.py", monkeypatch)
    filters = default_filters(warehouse)
    at.session_state["programme_tab"] = "Points"
    _run(at)
    summary = programme_points.summarise_points(programme_points.points_flows(warehouse.engine, filters, "day"))
    cards = _cards(at)
    assert _close(cards["Issued"].value, summary.issued) and _close(cards["Redeemed"].value, summary.redeemed)
    assert _close(cards["Redemption rate"].value, summary.redemption_rate)
    assert _close(cards["Breakage rate"].value, summary.breakage_rate)
    assert _close(cards["Liability"].value, summary.liability_value)
    _run(at.number_input(key="programme_points_rate").set_value(50))
    assert _close(_cards(at)["Liability"].value, summary.liability / 50)
    _run(at.segmented_control(key="programme_points_view").set_value("expiring"))
    table = programme_points.expiring_summary(warehouse.engine, filters).set_index("days")
    cards = _cards(at)
    for days in (30, 60, 90):
        assert _close(cards[f"Within {days} days (members)"].value, table.loc[days, "members"])
    assert any(f"{table.loc[90, 'members']:,} members" in m.value for m in at.markdown)

    at.session_state["programme_tab"] = "Member value"
    _run(at)
    rows = member_value.member_vs_guest(warehouse.engine, filters).set_index("measure")
    cards = _cards(at)
    assert _close(cards["Spend per member buyer"].value, rows.loc["spend_per_buyer", "members"])
    assert _close(cards["Spend per guest buyer"].value, rows.loc["spend_per_buyer", "guests"])
    assert _close(cards["Members spend"].value, rows.loc["spend_per_buyer", "ratio"])
    assert _close(cards["Member repurchase rate"].value, rows.loc["repurchase_rate", "members"])


def test_campaign_results_page(warehouse, monkeypatch) -> None:
    at = open_page(warehouse.url, "pages/campaign_results.py", monkeypatch)
    span = data_span(warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    _run(at.sidebar.date_input(key="dates").set_value((filters.start, filters.end)))
    results = campaign_results.campaign_results(warehouse.engine, filters)
    summary = campaign_results.summarise_results(results)
    cards = _cards(at)
    assert _close(cards["Campaigns"].value, summary.campaigns)
    assert _close(cards["Incremental revenue"].value, summary.incremental_revenue)
    assert _close(cards["Coupon and message cost"].value, summary.cost)
    assert _close(cards["Realised ROI"].value, summary.roi)
    shown = at.dataframe[0].value
    assert list(shown["campaign_id"]) == list(results["campaign_id"])
    assert list(shown["read_out"]) == [f"/experiments?campaign={c}" for c in results["campaign_id"]]
    for tab in ("By type and channel", "ROI over time", "Retention", "Send frequency"):
        at.session_state["results_tab"] = tab
        _run(at)
    frequency = campaign_results.send_frequency(warehouse.engine, filters, 4)
    assert _close(_cards(at)["Reached too often"].value, frequency.over_cap)
    _run(at.number_input(key="results_cap").set_value(1))
    assert _close(_cards(at)["Reached too often"].value,
                  campaign_results.send_frequency(warehouse.engine, filters, 1).over_cap)
    _run(at.selectbox(key="results_type").set_value("coupon"))
    assert _close(_cards(at)["Campaigns"].value, int((results["type"] == "coupon").sum()))


def test_a_campaign_link_opens_its_read_out(duck_warehouse, monkeypatch) -> None:
    at, run = direct_page(duck_warehouse, "pages/experiments.py", monkeypatch)
    at.query_params["campaign"] = "CMP0030"
    run()
    assert at.selectbox(key="experiment_campaign").value == "CMP0030"
    at.selectbox(key="experiment_campaign").set_value("CMP0031")  # the user's choice then wins
    run()
    assert at.selectbox(key="experiment_campaign").value == "CMP0031"
    at.query_params["campaign"] = "NOPE"
    run()
    assert any("not here" in w.value for w in at.warning)


@pytest.mark.parametrize("page", ["pages/programme.py", "pages/campaign_results.py"])
def test_pages_say_so_when_the_range_is_empty_of_campaigns(duck_warehouse, monkeypatch, page) -> None:
    at = open_page(duck_warehouse.url, page, monkeypatch)
    span = data_span(duck_warehouse.engine)
    _run(at.sidebar.date_input(key="dates").set_value((span.first_day, span.first_day + timedelta(days=2))))
    if page.endswith("campaign_results.py"):
        assert any("No campaign started" in i.value for i in at.info)


def test_expiring_points_go_to_campaign_targeting(duck_warehouse, monkeypatch) -> None:
    """"Use in Campaign targeting" under the expiring points opens the targeting page with those members as a
    condition: its matching count is the starter conditions AND the expiring members, computed independently."""
    from analytics import targeting

    at = open_page(duck_warehouse.url, "pages/programme.py", monkeypatch)
    at.session_state["programme_tab"] = "Points"
    _run(at)
    _run(at.segmented_control(key="programme_points_view").set_value("expiring"))
    _run(at.number_input(key="points_expiring_min").set_value(500))
    _run(at.button(key="points_expiring_members_target").click())
    assert [t.value for t in at.title] == ["Campaign targeting"]
    filters = default_filters(duck_warehouse)
    audience = programme_points.ExpiringPointsAudience(filters, 90, 500)
    assert any(audience.describe() in m.value for m in at.markdown)
    starter = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(filters.start),
                                    "end": str(filters.end), "frequency_cap_days": 7, "holdout": 0.1,
                                    "campaign_key": "campaign", "rules": {"match": "all", "conditions": [
                                        {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                                        {"field": "days_since_last_order", "op": "between", "value": [0, 90]},
                                        {"field": "segment", "op": "in", "value": audience.to_json()}]}})
    expected = targeting.preview(duck_warehouse.engine, starter)
    assert expected.matching > 0
    assert {m.label: m.value for m in at.metric}["Matching"] == f"{expected.matching:,}"

"""KPIs that answer "why": every KPI by channel, tier, region, category, new vs returning and campaign, the
same-period-last-year comparison and the trend definitions, against independent pandas computations on DuckDB
and PostgreSQL; and the breakdown row of a value is the card itself under a filter to that value."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from analytics import kpis
from analytics.errors import InputError
from analytics.filters import Filters
from analytics.storage.warehouse import data_span
from tests.reference import period_kpis
from tests.reference_breakdowns import (
    is_empty,
    reference_breakdown,
    reference_other,
    reference_trailing_repurchase,
)


def close(actual: float | None, expected: float | None) -> bool:
    missing = actual is None or (isinstance(actual, float) and pd.isna(actual))
    if expected is None:
        return missing
    return not missing and actual == pytest.approx(expected, rel=1e-9, abs=1e-6)


def _cases(span) -> dict[str, tuple[Filters, str]]:
    return {
        "last quarter vs a year earlier": (Filters(date(2026, 7, 1), date(2026, 9, 30)), "year_ago"),
        "90 days of app and web, gold and silver, vs previous":
            (Filters(span.last_day - timedelta(days=89), span.last_day, ("app", "web"), ("gold", "silver")),
             "previous"),
    }


@pytest.mark.parametrize("by", kpis.BREAKDOWNS)
def test_every_breakdown_matches_pandas(warehouse, by: str) -> None:
    """Each value's row, for every KPI the breakdown applies to, in both periods; and its total is the card."""
    span = data_span(warehouse.engine)
    checked = 0
    for name, (filters, comparison) in _cases(span).items():
        summary = kpis.kpi_summary(warehouse.engine, filters, comparison)
        compared = filters.compared(comparison)
        expected = reference_breakdown(warehouse.frame, by, filters, compared)
        for kpi in kpis.KPI_BY_KEY:
            if by not in kpis.dimensions_for(kpi):
                continue
            result = kpis.kpi_breakdown(warehouse.engine, filters, by, kpi, comparison)
            rows = result.rows.set_index("value")
            wanted = {v: pair for v, pair in expected.items()
                      if not (is_empty(pair["cur"], kpi) and is_empty(pair["prev"], kpi))}
            if result.folded:
                folded = set(wanted) - set(rows.index)
                assert len(folded) == result.folded, (name, kpi)
                wanted = {v: p for v, p in wanted.items() if v not in folded}
                wanted["other"] = reference_other(warehouse.frame, by, filters, compared, folded)
            assert set(rows.index) == set(wanted), (name, kpi, set(rows.index) ^ set(wanted))
            for value, want in wanted.items():
                got = rows.loc[value]
                assert close(got["current"], _filled(want["cur"][kpi], kpi)), (name, kpi, value, got["current"],
                                                                              want["cur"][kpi])
                assert close(got["previous"], _filled(want["prev"][kpi], kpi)), (name, kpi, value, got["previous"],
                                                                                want["prev"][kpi])
                checked += 1
            card = summary[kpi]
            assert close(result.total.current, card.current) and close(result.total.previous, card.previous), kpi
            if result.dimension.adds_up(kpi):
                assert rows["current"].sum() == pytest.approx(card.current or 0.0)
                if card.change_pct is not None:
                    assert rows["contribution"].sum() == pytest.approx(card.change_pct)
    assert checked > 10


def _filled(value: float | None, kpi: str) -> float | None:
    sums = kpis.KPI_BY_KEY[kpi].unit != "ratio" and kpi != "aov"
    return 0.0 if value is None and sums else value


@pytest.mark.parametrize("kpi", [k.key for k in kpis.KPIS if k.uses_channel_filter])
def test_a_channel_row_is_the_card_filtered_to_that_channel(warehouse, kpi: str) -> None:
    """One definition: the breakdown's row for a channel equals the card with the channel filter on that channel."""
    span = data_span(warehouse.engine)
    filters = Filters(*span.last_days(120))
    rows = kpis.kpi_breakdown(warehouse.engine, filters, "channel", kpi).rows.set_index("value")
    for channel in rows.index:
        card = kpis.kpi_summary(warehouse.engine, Filters(filters.start, filters.end, (channel,)))[kpi]
        assert close(rows.loc[channel, "current"], card.current), (kpi, channel)
        assert close(rows.loc[channel, "previous"], card.previous), (kpi, channel)


def test_campaign_roi_has_no_breakdown(duck_warehouse) -> None:
    assert kpis.dimensions_for("campaign_roi") == ()
    with pytest.raises(InputError, match="Campaign ROI \\(realised\\) has no breakdown"):
        kpis.kpi_breakdown(duck_warehouse.engine, Filters(date(2026, 7, 1), date(2026, 9, 30)), "tier", "campaign_roi")


@pytest.mark.parametrize("kpi", [k.key for k in kpis.KPIS if "tier" in kpis.dimensions_for(k.key)])
def test_a_tier_row_is_the_card_filtered_to_that_tier(duck_warehouse, kpi: str) -> None:
    span = data_span(duck_warehouse.engine)
    filters = Filters(span.last_day - timedelta(days=59), span.last_day)
    rows = kpis.kpi_breakdown(duck_warehouse.engine, filters, "tier", kpi, "year_ago").rows.set_index("value")
    tiers = [t for t in rows.index if t not in ("guest", "unknown")]
    assert len(tiers) >= 3
    for tier in tiers:
        card = kpis.kpi_summary(duck_warehouse.engine, Filters(filters.start, filters.end, (), (tier,)), "year_ago")
        assert close(rows.loc[tier, "current"], card[kpi].current), (kpi, tier)
        assert close(rows.loc[tier, "previous"], card[kpi].previous), (kpi, tier)


def test_year_over_year_summary_matches_pandas(warehouse) -> None:
    filters = Filters(date(2026, 4, 1), date(2026, 6, 30), ("app",))
    summary = kpis.kpi_summary(warehouse.engine, filters, "year_ago")
    last_year = Filters(date(2025, 4, 1), date(2025, 6, 30), ("app",))
    assert summary.compared == last_year
    now = period_kpis(warehouse.frame, filters, filters.start_ts, filters.end_ts)
    before = period_kpis(warehouse.frame, last_year, last_year.start_ts, last_year.end_ts)
    for definition in kpis.KPIS:
        assert close(summary[definition.key].current, now[definition.key]), definition.key
        assert close(summary[definition.key].previous, before[definition.key]), definition.key
    frame = summary.to_frame()
    assert (frame["previous_start"] == last_year.start).all() and (frame["previous_end"] == last_year.end).all()


def test_a_year_ago_comparison_may_overlap_a_long_range(duck_warehouse) -> None:
    """Two years compared with the two years before: each period is computed on its own, so the overlap counts
    in both, as it should."""
    span = data_span(duck_warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    summary = kpis.kpi_summary(duck_warehouse.engine, filters, "year_ago")
    before = summary.compared
    assert before.end >= filters.start  # they overlap
    expected = period_kpis(duck_warehouse.frame, before, before.start_ts, before.end_ts)
    assert close(summary["net_sales"].previous, expected["net_sales"])
    assert close(summary["repurchase_rate"].previous, expected["repurchase_rate"])


def test_breakdowns_fold_the_smallest_values_into_other(duck_warehouse, monkeypatch) -> None:
    span = data_span(duck_warehouse.engine)
    filters = Filters(*span.last_days(120))
    full = kpis.kpi_breakdown(duck_warehouse.engine, filters, "region", "net_sales")
    monkeypatch.setattr(kpis, "MAX_BREAKDOWN_VALUES", 4)
    folded = kpis.kpi_breakdown(duck_warehouse.engine, filters, "region", "net_sales")
    assert len(folded.rows) == 4 and folded.rows["value"].iloc[-1] == "other"
    assert folded.folded == len(full.rows) - 3  # guest and the two largest regions kept
    kept = set(folded.rows["value"]) - {"other"}
    assert "guest" in kept  # guests are never folded away
    other = full.rows[~full.rows["value"].isin(kept)]
    row = folded.rows.set_index("value").loc["other"]
    assert row["current"] == pytest.approx(other["current"].sum())
    assert row["previous"] == pytest.approx(other["previous"].sum())
    assert folded.rows["current"].sum() == pytest.approx(full.rows["current"].sum())


def test_a_breakdown_that_does_not_apply_is_refused_with_the_ones_that_do(duck_warehouse) -> None:
    filters = Filters(date(2026, 1, 1), date(2026, 1, 31))
    with pytest.raises(ValueError, match=r"Session conversion cannot be broken down by sales channel.*member tier"):
        kpis.kpi_breakdown(duck_warehouse.engine, filters, "channel", "session_conversion")
    with pytest.raises(ValueError, match="Unknown breakdown"):
        kpis.kpi_breakdown(duck_warehouse.engine, filters, "weather", "orders")
    with pytest.raises(ValueError, match="Unknown comparison"):
        kpis.kpi_summary(duck_warehouse.engine, filters, "last_decade")  # type: ignore[arg-type]
    assert kpis.dimensions_for("points_liability") == ("tier", "region", "customer_type")
    assert kpis.dimensions_for("aov") == kpis.BREAKDOWNS


def test_campaign_rows_carry_the_campaign_names(duck_warehouse) -> None:
    span = data_span(duck_warehouse.engine)
    result = kpis.kpi_breakdown(duck_warehouse.engine, Filters(*span.last_days(365)), "campaign", "orders")
    campaigns = duck_warehouse.frame("campaigns").set_index("campaign_id")["name"]
    named = result.rows[~result.rows["value"].isin(["no_campaign", "other"])]
    assert len(named) >= 3
    assert (named["name"] == named["value"].map(campaigns)).all()


# --- trends ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_repurchase_trend_is_the_card_over_trailing_windows(warehouse, grain: str) -> None:
    """Each point is the card's repurchase rate over the range's length ending on its bucket's last day, so the
    last point is the card (the defect: 6-9 % per week against a card of 50 %)."""
    span = data_span(warehouse.engine)
    filters = Filters(span.last_day - timedelta(days=59), span.last_day, ("app", "mini_program"))
    trend = kpis.kpi_trend(warehouse.engine, filters, "repurchase_rate", grain)
    ends = [min(d, pd.Timestamp(filters.end)).date() for d in kpis._bucket_ends(pd.DatetimeIndex(
        trend["period_start"]), grain) - pd.Timedelta(days=1)]
    expected = reference_trailing_repurchase(warehouse.frame, filters, ends)
    assert all(close(g, w) for g, w in zip(trend["value"], expected, strict=True)), (list(trend["value"]), expected)
    assert trend["value"].iloc[-1] == pytest.approx(kpis.kpi_summary(warehouse.engine, filters)["repurchase_rate"]
                                                    .current)
    assert not trend["partial"].any()


@pytest.mark.parametrize("kpi", ["aov", "session_conversion", "member_sales_share", "active_members", "orders"])
def test_per_period_trends_are_the_card_over_each_bucket(warehouse, kpi: str) -> None:
    filters = Filters(date(2026, 2, 11), date(2026, 5, 20), (), ("gold", "silver", "basic"))
    trend = kpis.kpi_trend(warehouse.engine, filters, kpi, "month")
    for start, value in zip(trend["period_start"], trend["value"], strict=True):
        lo, hi = max(start, pd.Timestamp(filters.start)), min(start + pd.offsets.MonthBegin(1),
                                                               pd.Timestamp(filters.end_ts))
        assert close(value, period_kpis(warehouse.frame, filters, lo, hi)[kpi]), (kpi, start)


def test_partial_buckets_are_marked(duck_warehouse) -> None:
    filters = Filters(date(2026, 2, 11), date(2026, 5, 20))  # a Wednesday to a Wednesday
    weeks = kpis.kpi_trend(duck_warehouse.engine, filters, "net_sales", "week")
    assert list(weeks["partial"]) == [True] + [False] * (len(weeks) - 2) + [True]
    assert weeks["days"].iloc[0] == 5 and weeks["days"].iloc[-1] == 3 and weeks["days"].sum() == filters.days
    months = kpis.kpi_trend(duck_warehouse.engine, filters, "net_sales", "month")
    assert list(months["partial"]) == [True, False, False, True]
    assert list(months["days"]) == [18, 31, 30, 20]
    days = kpis.kpi_trend(duck_warehouse.engine, filters, "net_sales", "day")
    assert not days["partial"].any()
    liability = kpis.kpi_trend(duck_warehouse.engine, filters, "points_liability", "month")
    assert not liability["partial"].any()  # a balance is whole on any day
    assert "trailing window as long as the selected range (99 days)" in kpis.trend_note("repurchase_rate", "week",
                                                                                         filters)


def test_comparison_coverage_counts_days_before_the_data() -> None:
    filters = Filters(date(2025, 1, 1), date(2025, 3, 31))
    assert kpis.comparison_coverage(filters, "year_ago", date(2024, 11, 16)) == 91  # all of Q1 2024 (leap year)
    assert kpis.comparison_coverage(filters, "previous", date(2024, 11, 16)) == 44  # 3 Oct - 15 Nov 2024
    assert kpis.comparison_coverage(filters, "previous", date(2024, 1, 1)) == 0


def test_breakdown_sql_is_portable_and_bound() -> None:
    """No FILTER clause; dates, channels, tiers and kept values travel as bound parameters."""
    from sqlalchemy.dialects import postgresql

    filters = Filters(date(2026, 1, 1), date(2026, 1, 31), ("app",), ("gold",))
    for key in kpis.BREAKDOWNS:
        grouping = kpis._Grouping(kpis.DIMENSION_BY_KEY[key], keep=("x'; DROP TABLE orders; --",))
        statement = kpis._both_periods("orders", filters, filters.year_ago(), grouping, per_member=True)
        compiled = statement.compile(dialect=postgresql.dialect())
        assert "FILTER (" not in str(compiled).upper()
        assert "DROP TABLE" not in str(compiled)
        bound = list(compiled.params.values())
        assert filters.start_ts in bound and ["gold"] in bound and ["app"] in bound


# --- command line ---------------------------------------------------------------------------------

def test_command_line_breakdown_and_year_over_year(duck_warehouse) -> None:
    import io

    from tests.conftest import run

    done = run("analytics", "kpis", "--url", duck_warehouse.url, "--start", "2026-07-01", "--end", "2026-09-30",
               "--by", "tier", "--kpi", "repurchase_rate", "--compare", "year_ago")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(io.StringIO(done.stdout), keep_default_na=False, na_values=[""])
    filters = Filters(date(2026, 7, 1), date(2026, 9, 30))
    expected = kpis.kpi_breakdown(duck_warehouse.engine, filters, "tier", "repurchase_rate", "year_ago").rows
    assert list(table["value"]) == list(expected["value"])
    assert table["current"].to_numpy() == pytest.approx(expected["current"].to_numpy())
    assert "Repurchase rate by member tier: total" in done.stderr
    done = run("analytics", "kpis", "--url", duck_warehouse.url, "--compare", "year_ago", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert '"previous_start"' in done.stdout
    refused = run("analytics", "kpis", "--url", duck_warehouse.url, "--by", "channel", "--kpi", "points_liability")
    assert refused.returncode == 2 and "cannot be broken down by sales channel" in refused.stderr

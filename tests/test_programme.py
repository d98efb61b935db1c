"""The membership programme (tiers, the threshold what-if, points, member value) against independent pandas
computations (tests/reference_programme.py), on DuckDB and PostgreSQL."""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import audiences, member_value, programme_points, programme_tiers, programme_whatif
from analytics.errors import InputError, SpecError
from analytics.filters import Filters
from analytics.member_rows import member_count
from analytics.programme import EVALUATION_MONTHS, add_months, evaluation_day, evaluation_months
from analytics.storage.contract import TIERS
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests import reference_programme as ref

RANGES = {
    "last 90 days": lambda span: Filters(*span.last_days(90)),
    "summer 2025, app": lambda span: Filters(date(2025, 6, 3), date(2025, 9, 17), ("app",)),
    "whole history": lambda span: Filters(span.first_day, span.last_day),
}


def _filters(warehouse, case: str) -> Filters:
    return RANGES[case](data_span(warehouse.engine))


# ---- the rule ------------------------------------------------------------------------------------------------------

def test_the_evaluation_calendar() -> None:
    assert evaluation_day(date(2026, 11, 15)) == date(2026, 11, 1)
    assert evaluation_months(date(2026, 11, 15)) == (date(2025, 11, 1), date(2026, 11, 1))
    assert evaluation_months(date(2026, 1, 1), 3) == (date(2025, 10, 1), date(2026, 1, 1))
    assert add_months(date(2026, 1, 31), -1) == date(2025, 12, 1)
    assert add_months(date(2025, 12, 5), 1) == date(2026, 1, 1)


# ---- tiers ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_members_per_tier_over_time(warehouse, grain: str) -> None:
    filters = _filters(warehouse, "summer 2025, app")
    got = programme_tiers.tier_counts_over_time(warehouse.engine, filters, grain)
    grid = programme_tiers.periods(filters, grain)
    assert sorted(set(got["period_start"])) == list(grid)
    step = {"day": pd.Timedelta(days=1), "week": pd.Timedelta(days=7), "month": pd.offsets.MonthBegin(1)}[grain]
    checked = grid if grain != "day" else grid[::9]
    for start in checked:
        moment = min(start + step, ref.end_of(filters.end))
        expected = ref.tier_counts(warehouse.frame, moment)
        shown = got[got["period_start"] == start].set_index("tier")["members"]
        assert {t: int(n) for t, n in shown.items() if n} == expected, (start, moment)
    change = programme_tiers.tier_count_change(got).set_index("tier")
    last = ref.tier_counts(warehouse.frame, ref.end_of(filters.end))
    assert {t: int(n) for t, n in change["last"].items() if n} == last
    assert (change["change"] == change["last"] - change["first"]).all()


def test_tier_counts_on_the_last_day_are_the_members_tiers(warehouse) -> None:
    span = data_span(warehouse.engine)
    got = programme_tiers.tier_counts_over_time(warehouse.engine, Filters(*span.last_days(30)), "day")
    last = got[got["period_start"] == got["period_start"].max()].set_index("tier")["members"]
    members = warehouse.frame("members")
    registered = members[members["registered_at"] < ref.end_of(span.last_day)]
    assert last[last > 0].to_dict() == registered["tier"].value_counts().to_dict()


@pytest.mark.parametrize("days", [(date(2025, 6, 30), date(2025, 12, 31)), (date(2026, 2, 14), date(2026, 2, 14)),
                                  (date(2024, 12, 31), date(2026, 11, 1))])
def test_tier_flows_match_pandas(warehouse, days) -> None:
    before, after = days
    got = programme_tiers.tier_flows(warehouse.engine, before, after)
    was, now = ref.tiers_at(warehouse.frame, ref.end_of(before)), ref.tiers_at(warehouse.frame, ref.end_of(after))
    pairs = pd.DataFrame({"to_tier": now, "from_tier": was.reindex(now.index).fillna(ref.JOINED)})
    expected = pairs.groupby(["from_tier", "to_tier"]).size().to_dict()
    assert {(r.from_tier, r.to_tier): r.members for r in got.itertuples()} == expected
    matrix = programme_tiers.flow_matrix(got)
    assert int(matrix.to_numpy().sum()) == len(now)
    if before == after:  # nobody moves in no time
        assert (got["from_tier"] == got["to_tier"]).all()
    with pytest.raises(InputError, match="before the first"):
        programme_tiers.tier_flows(warehouse.engine, after + timedelta(days=1), after)


@pytest.mark.parametrize("case", list(RANGES))
def test_time_to_reach_each_tier(warehouse, case: str) -> None:
    filters = _filters(warehouse, case)
    got = programme_tiers.time_to_tier(warehouse.engine, filters).set_index("tier")
    changes = warehouse.frame("tier_changes")
    changes = changes[changes["changed_at"] < ref.end_of(filters.end)]
    registered = warehouse.frame("members").set_index("member_id")["registered_at"]
    rank = {t: i for i, t in enumerate(TIERS)}
    for i, tier in enumerate(TIERS[1:], start=1):
        first = changes[changes["to_tier"].map(rank) >= i].groupby("member_id")["changed_at"].min()
        first = first[(first >= pd.Timestamp(filters.start)) & (first < ref.end_of(filters.end))]
        days = ((first - registered.reindex(first.index)).dt.total_seconds() / 86400).to_numpy()
        assert got.loc[tier, "members"] == len(days)
        for q, column in ((0.5, "median_days"), (0.25, "p25_days"), (0.75, "p75_days")):
            expected = ref.percentile(days, q)
            assert (math.isnan(expected) and math.isnan(got.loc[tier, column])) or got.loc[tier, column] == \
                pytest.approx(expected, rel=1e-9), (tier, column)
    if case == "whole history":
        assert got["members"].min() > 0


@pytest.mark.parametrize("case", list(RANGES))
def test_retention_and_spend_by_tier(warehouse, case: str) -> None:
    filters = _filters(warehouse, case)
    got = programme_tiers.tier_performance(warehouse.engine, filters).set_index("tier")
    held = ref.tiers_at(warehouse.frame, pd.Timestamp(filters.start_ts))
    o = ref.completed(warehouse.frame)
    o = o[o["member_id"].notna()]
    if filters.channels:
        o = o[o["channel"].isin(filters.channels)]
    prev = filters.previous()
    now = o[(o["ordered_at"] >= pd.Timestamp(filters.start_ts)) & (o["ordered_at"] < pd.Timestamp(filters.end_ts))]
    before = o[(o["ordered_at"] >= pd.Timestamp(prev.start_ts)) & (o["ordered_at"] < pd.Timestamp(prev.end_ts))]
    frame = pd.DataFrame({"tier": held})
    frame["active"] = frame.index.isin(now["member_id"])
    frame["before"] = frame.index.isin(before["member_id"])
    frame["net"] = now.groupby("member_id")["net_amount"].sum().reindex(frame.index).fillna(0.0)
    for tier, rows in frame.groupby("tier"):
        row = got.loc[tier]
        assert row["members"] == len(rows) and row["active"] == rows["active"].sum()
        assert row["net_sales"] == pytest.approx(rows["net"].sum(), rel=1e-9, abs=1e-6)
        assert row["spend_per_member"] == pytest.approx(rows["net"].sum() / len(rows), rel=1e-9, abs=1e-9)
        assert row["previous_active"] == rows["before"].sum()
        assert row["retained"] == (rows["before"] & rows["active"]).sum()
        if rows["before"].sum():
            assert row["retention"] == pytest.approx((rows["before"] & rows["active"]).sum() / rows["before"].sum())
    assert set(got.index) == set(frame["tier"])


@pytest.mark.parametrize("case", ["last 90 days", "summer 2025, app"])
def test_spend_still_needed_for_the_next_tier(warehouse, case: str) -> None:
    filters = _filters(warehouse, case)
    got = programme_tiers.upgrade_gap(warehouse.engine, filters)
    held = ref.tiers_at(warehouse.frame, ref.end_of(filters.end))
    since = pd.Timestamp(add_months(filters.end, -(EVALUATION_MONTHS - 1)))
    spent = ref.spend(warehouse.frame, since, ref.end_of(filters.end)).reindex(held.index).fillna(0.0)
    following = dict(itertools.pairwise(TIERS))
    expected: dict[tuple[str, int], list[int]] = {}
    for member, tier in held.items():
        if tier not in following:
            continue
        threshold = ref.default_thresholds()[following[tier]]
        needed = threshold - spent[member]
        key = (tier, -1 if needed <= 0 else min(math.floor(needed * 10 / threshold + 1e-12), 9))
        counts = expected.setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += int(needed > 0 and spent[member] >= 0.8 * threshold)
    assert {(r.tier, r.bin): [r.members, r.near] for r in got.itertuples()} == expected
    summary = programme_tiers.gap_summary(got).set_index("tier")
    for tier in summary.index:
        assert summary.loc[tier, "members"] == (held == tier).sum()
    # the near share is the "Tier upgrade near" tag's rule on the data's last day
    if case == "last 90 days":
        from analytics.tags import tag_coverage
        tags = tag_coverage(warehouse.engine, filters).set_index("tag")
        assert summary["near"].sum() == tags.loc["tier_upgrade_near", "members"]


@pytest.mark.parametrize("case", list(RANGES))
def test_sales_per_tier_when_ordered(warehouse, case: str) -> None:
    filters = _filters(warehouse, case)
    got = programme_tiers.sales_by_tier(warehouse.engine, filters).set_index("tier")
    o = ref.completed(warehouse.frame)
    o = o[(o["ordered_at"] >= pd.Timestamp(filters.start_ts)) & (o["ordered_at"] < pd.Timestamp(filters.end_ts))]
    if filters.channels:
        o = o[o["channel"].isin(filters.channels)]
    o = o.reset_index(drop=True)
    o["tier"] = ref.tier_at_times(warehouse.frame, o["member_id"], o["ordered_at"])
    expected = o.groupby("tier").agg(orders=("order_id", "size"), net=("net_amount", "sum"),
                                     buyers=("member_id", "nunique"))
    assert set(got.index) == set(expected.index)
    for tier, row in expected.iterrows():
        assert got.loc[tier, "orders"] == row["orders"] and got.loc[tier, "buyers"] == row["buyers"]
        assert got.loc[tier, "net_sales"] == pytest.approx(row["net"], rel=1e-9)
    assert got["sales_share"].sum() == pytest.approx(1.0)


# ---- the threshold what-if -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("day_of", [lambda span: span.last_day, lambda span: date(2025, 12, 31),
                                    lambda span: date(2025, 3, 1), lambda span: span.first_day + timedelta(days=3)])
def test_whatif_with_todays_rule_reproduces_todays_tiers(warehouse, day_of) -> None:
    day = day_of(data_span(warehouse.engine))
    result = programme_whatif.whatif_tiers(warehouse.engine, day, programme_whatif.TierRule.today())
    assert result.moved("up") == result.moved("down") == 0
    assert (result.moves["today_tier"] == result.moves["whatif_tier"]).all()
    expected = ref.tier_counts(warehouse.frame, ref.end_of(day))
    assert {t: n for t, n in zip(result.tiers["tier"], result.tiers["whatif"], strict=True) if n} == expected
    if day == data_span(warehouse.engine).last_day:  # and, on the data's last day, the members table's tiers
        members = warehouse.frame("members")
        assert expected == members[members["registered_at"] < ref.end_of(day)]["tier"].value_counts().to_dict()


@pytest.mark.parametrize("rule", [programme_whatif.TierRule((2_000, 8_000, 30_000)),
                                  programme_whatif.TierRule((500, 2_500, 10_000), months=6, measure="net"),
                                  programme_whatif.TierRule((1_000, 5_000, 20_000), months=3)])
def test_whatif_tiers_moves_and_cost_match_pandas(warehouse, rule) -> None:
    day = data_span(warehouse.engine).last_day - timedelta(days=20)
    rates = {"basic": 0.0, "silver": 0.01, "gold": 0.025, "diamond": 0.04}
    result = programme_whatif.whatif_tiers(warehouse.engine, day, rule, rates)
    today = ref.tiers_at(warehouse.frame, ref.end_of(day))
    evaluated = pd.Timestamp(evaluation_day(day))
    column = "gross_amount" if rule.measure == "gross" else "net_amount"
    spent = ref.spend(warehouse.frame, pd.Timestamp(add_months(evaluation_day(day), -rule.months)), evaluated,
                      column).reindex(today.index).fillna(0.0)
    whatif = ref.tier_by_spend(spent, {t: rule.threshold(t) for t in TIERS})
    year = ref.spend(warehouse.frame, pd.Timestamp(add_months(evaluation_day(day), -12)), evaluated
                     ).reindex(today.index).fillna(0.0)
    assert result.tiers.set_index("tier")["whatif"].to_dict() == {t: int((whatif == t).sum()) for t in TIERS}
    moves = pd.DataFrame({"a": today, "b": whatif}).groupby(["a", "b"]).size().to_dict()
    assert {(r.today_tier, r.whatif_tier): r.members for r in result.moves.itertuples()} == moves
    rank = {t: i for i, t in enumerate(TIERS)}
    assert result.moved("up") == int((whatif.map(rank) > today.map(rank)).sum())
    assert result.moved("down") == int((whatif.map(rank) < today.map(rank)).sum())
    assert result.cost_today == pytest.approx(float((year * today.map(rates)).sum()), rel=1e-9)
    assert result.cost_whatif == pytest.approx(float((year * whatif.map(rates)).sum()), rel=1e-9)
    assert result.moved("up") + result.moved("down") > 0  # the rules do move members
    # who would move: the audience holds exactly those members
    for direction, chosen in (("up", whatif.map(rank) > today.map(rank)), ("down", whatif.map(rank) < today.map(rank))):
        audience = programme_whatif.TierMoveAudience(day, rule, direction)
        ids = read_frame(warehouse.engine, audience.member_ids())
        assert set(ids.iloc[:, 0]) == set(today.index[chosen])
        assert audiences.loads(audiences.dumps(audience)) == audience


def test_whatif_refuses_impossible_rules() -> None:
    with pytest.raises(InputError, match="increase"):
        programme_whatif.TierRule((5_000, 1_000, 20_000))
    with pytest.raises(InputError, match="Give 3 thresholds"):
        programme_whatif.TierRule((1_000, 5_000))
    with pytest.raises(InputError, match="months"):
        programme_whatif.TierRule((1_000, 5_000, 20_000), months=0)
    with pytest.raises(InputError, match="above 0"):
        programme_whatif.TierRule((0, 5_000, 20_000))
    with pytest.raises(InputError, match="numbers"):
        programme_whatif.parse_thresholds("1000,lots,20000")
    with pytest.raises(InputError, match="share from 0 to 1"):
        programme_whatif.check_rates({"gold": 3})
    with pytest.raises(InputError, match="Unknown tier"):
        programme_whatif.check_rates({"platinum": 0.1})
    with pytest.raises(SpecError, match="increase"):
        audiences.parse_audience({"version": 1, "kind": "tier_whatif", "day": "2026-01-01",
                                  "thresholds": [3, 2, 1], "direction": "up"})
    with pytest.raises(SpecError, match="up or down"):
        audiences.parse_audience({"version": 1, "kind": "tier_whatif", "day": "2026-01-01",
                                  "thresholds": [1, 2, 3], "direction": "sideways"})


# ---- points --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grain", ["day", "week", "month"])
@pytest.mark.parametrize("case", ["last 90 days", "whole history"])
def test_points_flows_and_liability(warehouse, grain: str, case: str) -> None:
    filters = _filters(warehouse, case)
    got = programme_points.points_flows(warehouse.engine, filters, grain, 50)
    ledger = warehouse.frame("points_ledger")
    inside = ledger[(ledger["occurred_at"] >= pd.Timestamp(filters.start_ts))
                    & (ledger["occurred_at"] < pd.Timestamp(filters.end_ts))].copy()
    if grain == "week":
        inside["period"] = inside["occurred_at"].dt.normalize() - pd.to_timedelta(inside["occurred_at"].dt.day_of_week,
                                                                                  unit="D")
    else:
        inside["period"] = inside["occurred_at"].dt.to_period("D" if grain == "day" else "M").dt.start_time
    sums = inside.pivot_table(index="period", columns="reason", values="delta", aggfunc="sum").fillna(0)
    by = got.set_index("period_start")
    for period, row in sums.iterrows():
        assert by.loc[period, "earned"] == row.get("earn", 0) and by.loc[period, "bonus"] == row.get("bonus", 0)
        assert by.loc[period, "redeemed"] == -row.get("redeem", 0)
        assert by.loc[period, "expired"] == -row.get("expire", 0)
    assert len(got) == len(programme_tiers.periods(filters, grain))
    assert got.loc[:, ["earned", "bonus", "redeemed", "expired"]].to_numpy().sum() == int(inside["delta"].abs().sum())
    # liability: the ledger summed up to the end of each period
    for row in got.itertuples():
        upto = min(row.period_start + {"day": pd.Timedelta(days=1), "week": pd.Timedelta(days=7),
                                       "month": pd.offsets.MonthBegin(1)}[grain], ref.end_of(filters.end))
        assert row.liability == ledger.loc[ledger["occurred_at"] < upto, "delta"].sum()
        assert row.liability_value == pytest.approx(row.liability / 50)
    summary = programme_points.summarise_points(got, 50)
    issued = inside.loc[inside["reason"].isin(["earn", "bonus"]), "delta"].sum()
    assert summary.issued == issued
    assert summary.redemption_rate == pytest.approx(-inside.loc[inside["reason"] == "redeem", "delta"].sum() / issued)
    assert summary.breakage_rate == pytest.approx(-inside.loc[inside["reason"] == "expire", "delta"].sum() / issued)
    assert summary.opening == ledger.loc[ledger["occurred_at"] < pd.Timestamp(filters.start_ts), "delta"].sum()
    if case == "whole history":
        assert summary.breakage_rate > 0  # points do expire in the demo


def test_points_tier_filter_keeps_members_of_those_tiers(warehouse) -> None:
    filters = Filters(*data_span(warehouse.engine).last_days(90), tiers=("gold", "diamond"))
    got = programme_points.points_flows(warehouse.engine, filters, "month")
    members = warehouse.frame("members")
    chosen = set(members.loc[members["tier"].isin(filters.tiers), "member_id"])
    ledger = warehouse.frame("points_ledger")
    assert got["liability"].iloc[-1] == ledger.loc[ledger["member_id"].isin(chosen)
                                                   & (ledger["occurred_at"] < pd.Timestamp(filters.end_ts)),
                                                   "delta"].sum()


@pytest.mark.parametrize("case", ["last 90 days", "whole history"])
def test_points_by_tier_when_written(warehouse, case: str) -> None:
    filters = _filters(warehouse, case)
    got = programme_points.points_by_tier(warehouse.engine, filters).set_index("tier")
    ledger = warehouse.frame("points_ledger")
    rows = ledger[(ledger["occurred_at"] >= pd.Timestamp(filters.start_ts))
                  & (ledger["occurred_at"] < pd.Timestamp(filters.end_ts))].reset_index(drop=True)
    rows["tier"] = ref.tier_at_times(warehouse.frame, rows["member_id"], rows["occurred_at"])
    for tier, part in rows.groupby("tier"):
        sums = part.groupby("reason")["delta"].sum()
        assert got.loc[tier, "earned"] == sums.get("earn", 0) and got.loc[tier, "bonus"] == sums.get("bonus", 0)
        assert got.loc[tier, "redeemed"] == -sums.get("redeem", 0)
        assert got.loc[tier, "expired"] == -sums.get("expire", 0)
        assert got.loc[tier, "redeemers"] == part.loc[part["reason"] == "redeem", "member_id"].nunique()
    assert set(got.index) == set(rows["tier"])


@pytest.mark.parametrize("end", [date(2025, 10, 31), date(2025, 12, 1), date(2026, 11, 15), date(2026, 6, 30)])
def test_points_about_to_expire_spend_oldest_lots_first(warehouse, end: date) -> None:
    filters = Filters(end - timedelta(days=30), end)
    due = ref.fifo_expiring(warehouse.frame, end)
    got = programme_points.expiring_summary(warehouse.engine, filters, 100).set_index("days")
    gap = (date(end.year, 12, 31) - end).days
    for days in (30, 60, 90):
        within = gap <= days
        assert got.loc[days, "members"] == (len(due) if within else 0), (end, days)
        assert got.loc[days, "points"] == (int(due.sum()) if within else 0)
        assert got.loc[days, "value"] == pytest.approx(got.loc[days, "points"] / 100)
        audience = programme_points.ExpiringPointsAudience(filters, days, 500)
        expected = set(due[due >= 500].index) if within else set()
        assert set(read_frame(warehouse.engine, audience.member_ids()).iloc[:, 0]) == expected
        assert member_count(warehouse.engine, audience.member_ids()) == len(expected)
    if end == date(2026, 11, 15):
        assert len(due) > 0


def test_expiring_audience_round_trip_and_refusals() -> None:
    filters = Filters(date(2026, 10, 1), date(2026, 11, 15), ("app",), tiers=("gold",))
    audience = programme_points.ExpiringPointsAudience(filters, 60, 250)
    assert audiences.loads(audiences.dumps(audience)) == audience  # the channel filter is no part of it
    assert "60 days" in audience.describe() and "250 points" in audience.describe()
    with pytest.raises(SpecError, match="days"):
        audiences.parse_audience({**audience.to_json(), "days": 0})
    with pytest.raises(SpecError, match="does not know"):
        audiences.parse_audience({**audience.to_json(), "channels": ["app"]})
    with pytest.raises(InputError, match="Points per currency unit"):
        programme_points.check_points_per_unit(0)


# ---- member value --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [*list(RANGES), "gold, web"])
def test_members_against_guests(warehouse, case: str) -> None:
    span = data_span(warehouse.engine)
    filters = (Filters(*span.last_days(180), ("web",), ("gold",)) if case == "gold, web"
               else RANGES[case](span))
    got = member_value.member_vs_guest(warehouse.engine, filters).set_index("measure")
    o = ref.completed(warehouse.frame)
    o = o[(o["ordered_at"] >= pd.Timestamp(filters.start_ts)) & (o["ordered_at"] < pd.Timestamp(filters.end_ts))]
    if filters.channels:
        o = o[o["channel"].isin(filters.channels)]
    members = warehouse.frame("members")
    guests = o[o["member_id"].isna()]
    mine = o[o["member_id"].notna()]
    if filters.tiers:
        mine = mine[mine["member_id"].isin(members.loc[members["tier"].isin(filters.tiers), "member_id"])]
    per = mine.groupby("member_id")["net_amount"].agg(["size", "sum"])
    expected_members = {"buyers": len(per), "orders": len(mine), "net_sales": mine["net_amount"].sum(),
                        "spend_per_buyer": mine["net_amount"].sum() / len(per),
                        "orders_per_buyer": len(mine) / len(per),
                        "aov": mine["net_amount"].mean(), "repurchase_rate": (per["size"] >= 2).mean()}
    expected_guests = {"buyers": len(guests), "orders": len(guests), "net_sales": guests["net_amount"].sum(),
                       "spend_per_buyer": guests["net_amount"].mean(), "orders_per_buyer": 1.0,
                       "aov": guests["net_amount"].mean(), "repurchase_rate": 0.0}
    for measure in member_value.MEASURES:
        assert got.loc[measure, "members"] == pytest.approx(expected_members[measure], rel=1e-9), measure
        assert got.loc[measure, "guests"] == pytest.approx(expected_guests[measure], rel=1e-9), measure
        if expected_guests[measure]:
            assert got.loc[measure, "ratio"] == pytest.approx(expected_members[measure] / expected_guests[measure])
    assert np.isnan(got.loc["repurchase_rate", "ratio"])
    assert member_value.value_ratio(got.reset_index()) == pytest.approx(got.loc["spend_per_buyer", "ratio"])


@pytest.mark.parametrize("case", ["last 90 days", "whole history"])
def test_new_members_first_90_days_by_channel(warehouse, case: str) -> None:
    filters = _filters(warehouse, case)
    got = member_value.new_member_value(warehouse.engine, filters).set_index("acquisition_channel")
    members = warehouse.frame("members")
    joiners = members[(members["registered_at"] >= pd.Timestamp(filters.start_ts))
                      & (members["registered_at"] < pd.Timestamp(filters.end_ts))].set_index("member_id")
    o = ref.completed(warehouse.frame)
    o = o[o["member_id"].isin(joiners.index)].copy()
    o["registered_at"] = o["member_id"].map(joiners["registered_at"])
    o = o[(o["ordered_at"] >= o["registered_at"]) & (o["ordered_at"] < o["registered_at"] + pd.Timedelta(days=90))]
    newest = warehouse.frame("orders")["ordered_at"].max()
    for channel, rows in joiners.groupby(joiners["acquisition_channel"].fillna("unknown")):
        theirs = o[o["member_id"].isin(rows.index)]
        assert got.loc[channel, "members"] == len(rows)
        assert got.loc[channel, "buyers"] == theirs["member_id"].nunique()
        assert got.loc[channel, "orders"] == len(theirs)
        assert got.loc[channel, "value_per_member"] == pytest.approx(theirs["net_amount"].sum() / len(rows), rel=1e-9,
                                                                     abs=1e-9)
        assert got.loc[channel, "full_window"] == int((rows["registered_at"] + pd.Timedelta(days=90) <= newest).sum())
    assert list(got["value_per_member"]) == sorted(got["value_per_member"], reverse=True)


# ---- the command line ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["programme", "whatif", "--thresholds", "5000,1000,20000"], "increase"),
    (["programme", "whatif", "--thresholds", "1000,5000"], "Give 3 thresholds"),
    (["programme", "whatif", "--benefit-rates", "1,2"], "needs 4 values"),
    (["programme", "whatif", "--months", "40"], "1 to 36 months"),
    (["programme", "points", "--points-per-unit", "0"], "Points per currency unit"),
    (["campaigns", "--margin", "2"], "margin"),
])
def test_cli_refuses_bad_programme_arguments(duck_warehouse, capsys, args, message: str) -> None:
    from analytics.cli import main

    assert main([*args, "--url", duck_warehouse.url]) == 2
    assert message in capsys.readouterr().err


def test_cli_whatif_is_the_analysis(duck_warehouse, capsys) -> None:
    from analytics.cli import main

    assert main(["programme", "whatif", "--thresholds", "1500,6000,25000", "--format", "json",
                 "--url", duck_warehouse.url]) == 0
    import json

    printed = json.loads(capsys.readouterr().out)
    result = programme_whatif.whatif_tiers(duck_warehouse.engine, data_span(duck_warehouse.engine).last_day,
                                           programme_whatif.TierRule((1_500, 6_000, 25_000)))
    assert [row["whatif"] for row in printed] == list(result.tiers["whatif"])

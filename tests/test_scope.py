"""Row-level restriction (regions, sales channels) and members left out (erased, objecting to profiling) reach the SQL
of every analysis.

The reference is the warehouse as the restricted user may see it, selected with pandas (:class:`Scoped`: the members
of the user's regions, with an order in the user's channels, not left out; their orders in those channels, their
events, points ...). The existing pandas references (KPIs, RFM, tags, heatmaps, funnels) run unchanged on those
frames with unrestricted filters, and must equal what the SQL computes with the scope in its filters. On DuckDB and
PostgreSQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import experiments, heatmaps, kpis, member360, rfm, tags, targeting
from analytics.audience_report import audience_profile, overlap_matrix
from analytics.clustering import ClusterSettings, cluster_members
from analytics.filters import OPEN_SCOPE, Filters, Scope
from analytics.funnels import FunnelSpec, FunnelStep, funnel_report
from analytics.member_rows import member_count, member_rows
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse
from tests.funnel_reference import reference_attempts, reference_counts
from tests.reference import pandas_rfm, reference_summary
from tests.test_funnels import demo_log
from tests.test_heatmaps import completed, retention_reference
from tests.test_tags_and_member360 import Reference as TagReference


class Scoped:
    """The warehouse as a user with ``scope`` sees it, selected with pandas only (a stand-in for ``Warehouse`` in the
    pandas references: it has ``frame``)."""

    def __init__(self, warehouse: Warehouse, scope: Scope) -> None:
        self.warehouse, self.scope = warehouse, scope
        m, o = warehouse.frame("members"), warehouse.frame("orders")
        keep = m
        if scope.regions:
            keep = keep[keep["region"].isin(scope.regions)]
        if scope.channels:
            keep = keep[keep["member_id"].isin(o.loc[o["channel"].isin(scope.channels), "member_id"])]
        if scope.excluded:
            keep = keep[~keep["member_id"].isin(scope.excluded)]
        self.ids = set(keep["member_id"])

    def _members_rows(self, frame: pd.DataFrame, orders: bool = False) -> pd.DataFrame:
        s = self.scope
        if s.regions or (s.channels and not orders):  # members' rows only, of the members in scope
            return frame[frame["member_id"].isin(self.ids)]
        if s.excluded:  # guests and anonymous visitors stay
            return frame[frame["member_id"].isna() | ~frame["member_id"].isin(s.excluded)]
        return frame

    def frame(self, table: str) -> pd.DataFrame:
        f = self.warehouse.frame(table)
        if table == "members":
            return f[f["member_id"].isin(self.ids)]
        if table == "orders":
            f = f[f["channel"].isin(self.scope.channels)] if self.scope.channels else f
            return self._members_rows(f, orders=True)
        if table == "order_items":
            return f[f["order_id"].isin(self.frame("orders")["order_id"])]
        if table in ("events", "points_ledger", "tier_changes", "campaign_members"):
            return self._members_rows(f)
        return f


def some_members(warehouse: Warehouse, n: int, seed: int = 3) -> tuple[str, ...]:
    """``n`` members who bought (so leaving them out changes figures)."""
    buyers = warehouse.frame("orders")["member_id"].dropna().drop_duplicates().sort_values()
    return tuple(buyers.sample(n, random_state=seed))


SCOPES = {
    "region": lambda w: Scope(regions=("South China",)),
    "channel": lambda w: Scope(channels=("mini_program",)),
    "excluded": lambda w: Scope(excluded=some_members(w, 60)),
    "region_and_excluded": lambda w: Scope(regions=("East China", "North China"), excluded=some_members(w, 60)),
}


def window(warehouse: Warehouse, days: int = 365, scope: Scope = OPEN_SCOPE) -> Filters:
    span = data_span(warehouse.engine)
    return Filters(span.last_day - timedelta(days=days - 1), span.last_day, scope=scope)


@pytest.fixture(params=list(SCOPES))
def scope(request: pytest.FixtureRequest, warehouse: Warehouse) -> tuple[str, Scope]:
    return request.param, SCOPES[request.param](warehouse)


def ids_of(warehouse: Warehouse, select) -> set[str]:
    got = read_frame(warehouse.engine, select, hash_joins=True).iloc[:, 0].tolist()
    assert len(got) == len(set(got))
    return set(got)


# --- the analyses, each against its pandas reference on the scoped frames ------------------------------------

def test_kpis(warehouse: Warehouse, scope) -> None:
    name, s = scope
    filters = window(warehouse, 90, s)
    summary = kpis.kpi_summary(warehouse.engine, filters)
    expected = reference_summary(Scoped(warehouse, s).frame, replace(filters, scope=Scope()))
    unscoped = kpis.kpi_summary(warehouse.engine, replace(filters, scope=Scope()))
    assert summary["net_sales"].current < unscoped["net_sales"].current  # the scope changes the figures
    for key, (current, previous) in expected.items():
        for got, want in ((summary[key].current, current), (summary[key].previous, previous)):
            assert got == pytest.approx(want, nan_ok=True) if want is not None else got is None, (name, key)


def test_rfm(warehouse: Warehouse, scope) -> None:
    name, s = scope
    filters = window(warehouse, 365, s)
    view = Scoped(warehouse, s)
    got = rfm.rfm_members(warehouse.engine, filters).sort_values("member_id", ignore_index=True)
    want = pandas_rfm(view.frame("orders"), view.frame("members"), replace(filters, scope=Scope()))
    assert got["member_id"].tolist() == want["member_id"].tolist() and set(got["member_id"]) <= view.ids
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score", "segment"):
        assert got[column].tolist() == want[column].tolist(), (name, column)


@pytest.mark.parametrize("tag", ["high_value", "new_member", "dormant_90", "discount_seeker", "night_owl",
                                 "birthday_month", "points_expiring", "tier_upgrade_near"])
def test_tags(warehouse: Warehouse, scope, tag: str) -> None:
    name, s = scope
    filters = window(warehouse, 365, s)
    view = Scoped(warehouse, s)
    # the tier programme counts a member's spend in every channel (the tag is about the member): under a channel
    # scope its reference reads every channel's orders, then keeps the members in scope
    source = warehouse if (s.channels and tag == "tier_upgrade_near") else view
    expected = getattr(TagReference(source, replace(filters, scope=Scope())), tag)()
    if tag == "tier_upgrade_near":  # the reference computes it over every member; the scope keeps its own
        expected &= view.ids
    assert ids_of(warehouse, tags.tag_member_ids(filters, tag)) == expected, (name, tag)


def test_heatmaps(warehouse: Warehouse, scope) -> None:
    name, s = scope
    filters = window(warehouse, 180, s)
    view = Scoped(warehouse, s)
    done = completed(view, replace(filters, scope=Scope()))
    rhythm = heatmaps.activity_rhythm(warehouse.engine, filters, "net_sales")
    assert rhythm["value"].sum() == pytest.approx(done["net_amount"].sum())
    table = heatmaps.cohort_retention(warehouse.engine, filters, "first_purchase", "month", max_periods=6)
    _cohorts, joined = retention_reference(view, replace(filters, scope=Scope()), "first_purchase", "month")
    expected = joined[joined["period"] <= 6].groupby(["cohort", "period"])["member_id"].nunique()
    got = table.set_index(["cohort", "period"])["active"]
    assert got[got > 0].sort_index().tolist() == expected.sort_index().tolist(), name


def test_funnels(warehouse: Warehouse, scope) -> None:
    name, s = scope
    filters = window(warehouse, 28, s)
    funnel = FunnelSpec(tuple(FunnelStep(k) for k in ("product_view", "add_to_cart", "checkout", "purchase")),
                        2 * 86_400, "ordered", "member")
    expected = reference_attempts(funnel, demo_log(Scoped(warehouse, s)), filters.start_ts, filters.end_ts)
    report = funnel_report(warehouse.engine, funnel, filters)
    assert report.total["units"].tolist() == reference_counts(funnel, expected), name


def test_clusters_train_only_on_members_in_scope(warehouse: Warehouse, scope) -> None:
    name, s = scope
    filters = window(warehouse, 365, s)
    view = Scoped(warehouse, s)
    result = cluster_members(warehouse.engine, filters, ClusterSettings(k=3, min_orders=2))
    o = view.frame("orders")
    o = o[(o["status"] == "completed") & o["member_id"].notna() & (o["ordered_at"] >= filters.start_ts)
          & (o["ordered_at"] < filters.end_ts)]
    counts = o.groupby("member_id").size()
    assert set(result.members["member_id"]) == set(counts[counts >= 2].index), name


def test_targeting_member_lists_and_member_360(warehouse: Warehouse, scope) -> None:
    """Conditions on members' attributes and their own orders: the scoped audience is the unscoped one within the
    scope (for regions and members left out; a channel restriction also narrows the orders the conditions read)."""
    name, s = scope
    filters = window(warehouse, 90, s)
    view = Scoped(warehouse, s)
    spec = {"version": 1, "kind": "audience", "start": str(filters.start), "end": str(filters.end), "holdout": 0.2,
            "campaign_key": "scope", "rules": {"match": "all", "conditions": [
                {"field": "tier", "op": "in", "value": ["silver", "gold", "diamond"]}]}}
    open_audience = targeting.parse_spec(spec)
    scoped_audience = replace(open_audience, window=filters)
    everyone = set(targeting.targeted_members(warehouse.engine, open_audience)["member_id"])
    got = targeting.targeted_members(warehouse.engine, scoped_audience)
    assert set(got["member_id"]) == everyone & view.ids, name
    sizes = targeting.preview(warehouse.engine, scoped_audience)
    assert sizes.targeted == len(got) and sizes.control == int((got["arm"] == "control").sum())
    # any list of any audience, counted and listed through the scope: the unscoped list within the scope
    listed = member_rows(warehouse.engine, open_audience.member_ids(), filters, scope=s)
    assert set(listed["member_id"]) == everyone & view.ids
    assert member_count(warehouse.engine, open_audience.member_ids(), s) == len(everyone & view.ids)
    # campaign reports count the members in scope only
    profile = audience_profile(warehouse.engine, scoped_audience)
    tier_rows = profile.mix[profile.mix["dimension"] == "tier"]
    assert int(tier_rows["all_members"].sum()) == len(view.ids)
    matrix = overlap_matrix(warehouse.engine, {"a": open_audience}, s)
    assert int(matrix.loc["a", "a"]) == len(everyone & view.ids)
    # Member 360: a member outside the scope is not found
    outside = sorted(set(warehouse.frame("members")["member_id"]) - view.ids)[0]
    inside = sorted(view.ids)[0]
    assert member360.member_profile(warehouse.engine, outside, scope=s) is None
    assert member360.member_profile(warehouse.engine, inside, scope=s)["member_id"] == inside
    assert member360.find_members(warehouse.engine, outside, scope=s).empty


def test_experiment_read_out_counts_the_campaign_members_in_scope(warehouse: Warehouse, scope) -> None:
    _name, s = scope
    view = Scoped(warehouse, s)
    listed = experiments.campaign_list(warehouse.engine, s)
    campaign = listed.sort_values("members").iloc[-1]["campaign_id"]
    cm = view.frame("campaign_members")
    mine = cm[cm["campaign_id"] == campaign]
    assert int(listed.set_index("campaign_id").loc[campaign, "members"]) == len(mine)
    arms = experiments.arm_totals(warehouse.engine, campaign, s)
    for arm in ("treatment", "control"):
        rows = mine[mine["arm"] == arm]
        assert (arms[arm].members, arms[arm].conversions) == (len(rows), int(rows["converted_order_id"].notna().sum()))


# --- suppression: no path returns a member left out ----------------------------------------------------------

def _random_audiences(warehouse: Warehouse, filters: Filters, draw) -> list:
    from analytics.funnels import dropoff_audience
    from analytics.heatmaps import cell_audience
    from analytics.rule_views import rule_audience

    kind = draw(st.sampled_from(["rfm", "tag", "funnel", "cell", "rule", "campaign"]))
    if kind == "rfm":
        return rfm.segment_audience(filters, tuple(draw(st.sets(st.sampled_from(list(rfm.SEGMENTS)), min_size=1))))
    if kind == "tag":
        return tags.tag_audience(filters, draw(st.sampled_from(["high_value", "dormant_90", "night_owl",
                                                                  "birthday_month", "new_member"])))
    if kind == "funnel":
        funnel = FunnelSpec((FunnelStep("product_view"), FunnelStep("add_to_cart"), FunnelStep("purchase")),
                            86_400 * draw(st.integers(1, 7)), "ordered", "member")
        return dropoff_audience(funnel, filters, draw(st.integers(1, 2)))
    if kind == "cell":
        return cell_audience(filters, "rhythm", draw(st.integers(0, 6)), draw(st.integers(0, 23)),
                             {"measure": "orders"})
    if kind == "rule":
        return rule_audience(draw(st.sampled_from(["Beauty", "Electronics", "Home"])),
                             draw(st.sampled_from(["Pets", "Groceries", "Apparel"])), "category", filters.start,
                             filters.end, filters.scope)
    conditions = [{"field": "tier", "op": "in", "value": draw(st.sets(st.sampled_from(["basic", "silver", "gold",
                                                                                      "diamond"]), min_size=1))},
                  {"field": "days_since_last_order", "op": "between", "value": [0, draw(st.integers(10, 365))]}]
    made = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(filters.start),
                                 "end": str(filters.end), "holdout": 0.1, "campaign_key": "p",
                                 "max_size": draw(st.none() | st.integers(1, 500)),
                                 "rules": {"match": draw(st.sampled_from(["all", "any"])),
                                           "conditions": [{**c, "value": sorted(c["value"])} if c["op"] == "in"
                                                          else c for c in conditions]}})
    return replace(made, window=replace(made.window, scope=filters.scope))  # as the targeting page builds it


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_suppressed_members_never_come_back_on_any_member_path(duck_warehouse: Warehouse, data) -> None:
    """Random audiences of every kind, with random members suppressed (erased or objecting): listing, counting and
    exporting through the listing scope equals the audience's members minus the suppressed, and an audience made
    under a scope that leaves them out never contains them."""
    from analytics.access import Principal
    from analytics.exports import member_export

    warehouse = duck_warehouse
    buyers = sorted(warehouse.frame("orders")["member_id"].dropna().unique())
    suppressed = tuple(data.draw(st.lists(st.sampled_from(buyers), min_size=1, max_size=40, unique=True)))
    s = Scope(excluded=suppressed)
    filters = window(warehouse, 120)
    audience = _random_audiences(warehouse, filters, data.draw)
    everyone = ids_of(warehouse, audience.member_ids())
    listed = set(member_rows(warehouse.engine, audience.member_ids(), filters, scope=s)["member_id"])
    assert listed == everyone - set(suppressed)
    assert member_count(warehouse.engine, audience.member_ids(), s) == len(listed)
    exported = member_export(warehouse.engine, audience, Principal("a@example.com", role="analyst"), s)
    assert set(exported.frame["member_id"]) == listed
    made_under_scope = _random_audiences(warehouse, replace(filters, scope=s), data.draw)
    assert ids_of(warehouse, made_under_scope.member_ids()).isdisjoint(suppressed)


def test_suppressed_members_are_out_of_models_and_recommendations(duck_warehouse: Warehouse) -> None:
    from analytics.rules import load_baskets

    warehouse = duck_warehouse
    suppressed = some_members(warehouse, 200, seed=11)
    filters = window(warehouse, 365, Scope(excluded=suppressed))
    clustered = cluster_members(warehouse.engine, filters, ClusterSettings(k=3, min_orders=1))
    assert set(clustered.members["member_id"]).isdisjoint(suppressed) and len(clustered.members) > 0
    baskets = load_baskets(warehouse.engine, filters, "category")
    unscoped = load_baskets(warehouse.engine, replace(filters, scope=Scope()), "category")
    o = warehouse.frame("orders")
    theirs = o[o["member_id"].isin(suppressed) & (o["status"] == "completed") & (o["ordered_at"] >= filters.start_ts)
               & (o["ordered_at"] < filters.end_ts)]
    assert unscoped.count - baskets.count == theirs["order_id"].nunique() > 0
    scores = rfm.rfm_members(warehouse.engine, filters)
    assert set(scores["member_id"]).isdisjoint(suppressed)

"""Heatmaps against an independent pandas computation over the raw rows, on DuckDB and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pandas as pd
import pytest

from analytics.filters import Filters, cohort_range
from analytics.heatmaps import (
    HEATMAPS,
    activity_rhythm,
    affinity_cell_members,
    browsing_cell_members,
    browsing_hotspots,
    category_affinity,
    cell_members,
    cohort_retention,
    retention_cell_members,
    rhythm_cell_members,
)
from analytics.member_rows import member_count
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests.conftest import PROJECT_ROOT, Warehouse, default_filters, open_page


def window(warehouse: Warehouse, days: int = 180, **options: tuple[str, ...]) -> Filters:
    span = data_span(warehouse.engine)
    return Filters(span.last_day - timedelta(days=days - 1), span.last_day, **options)


def completed(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Completed orders in the range that pass the channel and tier filters."""
    o = warehouse.frame("orders")
    done = o[(o["status"] == "completed") & (o["ordered_at"] >= pd.Timestamp(filters.start_ts))
             & (o["ordered_at"] < pd.Timestamp(filters.end_ts))]
    if filters.channels:
        done = done[done["channel"].isin(filters.channels)]
    return done[done["member_id"].isin(tier_members(warehouse, filters))] if filters.tiers else done


def tier_members(warehouse: Warehouse, filters: Filters) -> pd.Series:
    m = warehouse.frame("members")
    return m.loc[m["tier"].isin(filters.tiers), "member_id"]


def retention_reference(warehouse: Warehouse, filters: Filters, cohort: str, period: str,
                        ) -> tuple[pd.Series, pd.DataFrame]:
    """Pandas retention: each cohort member's cohort start (indexed by member id), and one row per member and
    period in which they bought (``member_id``, ``cohort``, ``active``, ``period``)."""
    o = warehouse.frame("orders")
    buys = o[(o["status"] == "completed") & o["member_id"].notna()]
    if cohort == "first_purchase":
        starts = buys.groupby("member_id")["ordered_at"].min()  # over every channel: the member's first purchase
    else:
        starts = warehouse.frame("members").set_index("member_id")["registered_at"]
    starts = starts[(starts >= pd.Timestamp(filters.start_ts)) & (starts < pd.Timestamp(filters.end_ts))]
    if filters.tiers:
        starts = starts[starts.index.isin(tier_members(warehouse, filters))]
    if filters.channels:
        buys = buys[buys["channel"].isin(filters.channels)]
    freq = "M" if period == "month" else "W-SUN"
    cohorts = starts.dt.to_period(freq).dt.start_time
    active = buys.assign(active=buys["ordered_at"].dt.to_period(freq).dt.start_time)[["member_id", "active"]]
    joined = active.merge(cohorts.rename("cohort").reset_index(), on="member_id").drop_duplicates()
    joined = joined[joined["active"] >= joined["cohort"]]
    if period == "month":
        joined["period"] = ((joined["active"].dt.year - joined["cohort"].dt.year) * 12
                            + joined["active"].dt.month - joined["cohort"].dt.month)
    else:
        joined["period"] = (joined["active"] - joined["cohort"]).dt.days // 7
    return cohorts, joined


def ids(warehouse: Warehouse, select) -> set[str]:
    """The member ids a one-column select returns, checking that they come without repeats."""
    got = read_frame(warehouse.engine, select).iloc[:, 0].tolist()
    assert len(got) == len(set(got)), "member ids are repeated"
    return set(got)


@pytest.mark.parametrize(("cohort", "period"), [("first_purchase", "month"), ("registration", "week")])
def test_cohort_retention_matches_pandas(warehouse: Warehouse, cohort: str, period: str) -> None:
    filters = window(warehouse)
    table = cohort_retention(warehouse.engine, filters, cohort, period, max_periods=6)
    cohorts, joined = retention_reference(warehouse, filters, cohort, period)
    expected = joined[joined["period"] <= 6].groupby(["cohort", "period"])["member_id"].nunique()
    got = table.set_index(["cohort", "period"])["active"]
    assert (got[got > 0].sort_index() == expected.sort_index()).all() and len(got[got > 0]) == len(expected)
    sizes = cohorts.value_counts()
    assert table.groupby("cohort")["size"].first().sort_index().tolist() == sizes.sort_index().tolist()
    assert (table["share"] == table["active"] / table["size"]).all()
    if cohort == "first_purchase":
        assert (table.loc[table["period"] == 0, "share"] == 1).all()


def test_activity_rhythm_matches_pandas(warehouse: Warehouse) -> None:
    filters = window(warehouse)
    rhythm = activity_rhythm(warehouse.engine, filters, "net_sales").set_index(["weekday", "hour"])["value"]
    done = completed(warehouse, filters)
    expected = done.groupby([done["ordered_at"].dt.day_of_week, done["ordered_at"].dt.hour])["net_amount"].sum()
    assert len(rhythm) == 7 * 24
    for (weekday, hour), value in expected.items():
        assert rhythm[(weekday, hour)] == pytest.approx(value)
    assert rhythm.sum() == pytest.approx(done["net_amount"].sum())
    orders_count = activity_rhythm(warehouse.engine, filters, "orders")["value"].sum()
    assert orders_count == len(done)


def test_category_affinity_matches_pandas(warehouse: Warehouse) -> None:
    filters = window(warehouse)
    affinity = category_affinity(warehouse.engine, filters, "tier")
    done = completed(warehouse, filters)
    lines = (warehouse.frame("order_items").merge(done[["order_id", "member_id"]], on="order_id")
             .merge(warehouse.frame("products")[["product_id", "category"]], on="product_id")
             .merge(warehouse.frame("members")[["member_id", "tier"]], on="member_id"))
    spend = lines.groupby(["tier", "category"])["line_amount"].sum()
    share = spend / spend.groupby(level=0).transform("sum")
    overall = lines.groupby("category")["line_amount"].sum() / lines["line_amount"].sum()
    got = affinity.set_index(["group", "category"])
    for (tier, category), value in share.items():
        assert got.loc[(tier, category), "share"] == pytest.approx(value)
        assert got.loc[(tier, category), "index"] == pytest.approx(100 * value / overall[category])


def test_browsing_hotspots_match_pandas(warehouse: Warehouse) -> None:
    filters = window(warehouse, 30)
    hot = browsing_hotspots(warehouse.engine, filters, "event_type").set_index(["page", "column"])["events"]
    e = warehouse.frame("events")
    e = e[(e["occurred_at"] >= pd.Timestamp(filters.start_ts)) & (e["occurred_at"] < pd.Timestamp(filters.end_ts))]
    expected = e.assign(page=e["page"].fillna("unknown")).groupby(["page", "event_type"]).size()
    assert hot.sort_index().tolist() == expected.sort_index().tolist()


def test_retention_command_line(duck_warehouse: Warehouse) -> None:
    done = subprocess.run([sys.executable, "-m", "analytics", "retention", "--url", duck_warehouse.url, "--cohort",
                           "registration", "--period", "week"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "cohort,size,period,active,share"


# --- the members behind one cell --------------------------------------------------------------------------------


@pytest.mark.parametrize(("cohort", "period", "options"), [
    ("first_purchase", "month", {}),
    ("registration", "week", {}),
    ("first_purchase", "month", {"tiers": ("gold", "silver"), "channels": ("app", "web")}),
])
def test_retention_cell_members_match_pandas(warehouse: Warehouse, cohort: str, period: str, options: dict) -> None:
    """Every cell of the table: its members are the cohort's members active in that period, and as many as
    the cell's ``active`` figure."""
    filters = window(warehouse, **options)
    table = cohort_retention(warehouse.engine, filters, cohort, period, max_periods=3)
    _, joined = retention_reference(warehouse, filters, cohort, period)
    checked = 0
    for row in table.itertuples():
        expected = set(joined.loc[(joined["cohort"] == row.cohort) & (joined["period"] == row.period), "member_id"])
        got = ids(warehouse, retention_cell_members(filters, row.cohort, row.period, cohort, period))
        assert got == expected, (row.cohort, row.period)
        assert len(got) == row.active
        checked += len(got)
    assert checked > 0, "no cell had members: the test would prove nothing"
    first = table.iloc[0]
    assert ids(warehouse, retention_cell_members(filters, first["cohort"].date().isoformat(), 0, cohort, period)) \
        == ids(warehouse, retention_cell_members(filters, first["cohort"], 0, cohort, period))  # a date as text


def test_retention_cell_members_of_any_activity(duck_warehouse: Warehouse) -> None:
    """With "bought or browsed", members who only browsed in a period are behind that period's cell too."""
    filters = window(duck_warehouse)
    both = cohort_retention(duck_warehouse.engine, filters, "registration", "month", "any", 3).merge(
        cohort_retention(duck_warehouse.engine, filters, "registration", "month", "purchase", 3),
        on=["cohort", "period"], suffixes=("_any", "_bought"))
    row = both.loc[(both["active_any"] - both["active_bought"]).idxmax()]
    assert row["active_any"] > row["active_bought"], "some member only browsed: the test would prove nothing"
    members = ids(duck_warehouse, retention_cell_members(filters, row["cohort"], row["period"], "registration",
                                                         "month", "any"))
    buyers = ids(duck_warehouse, retention_cell_members(filters, row["cohort"], row["period"], "registration",
                                                        "month", "purchase"))
    assert len(members) == row["active_any"] and len(buyers) == row["active_bought"] and buyers < members


@pytest.mark.parametrize("options", [{}, {"tiers": ("diamond", "gold")}, {"channels": ("app",)}])
def test_affinity_cell_members_match_pandas(warehouse: Warehouse, options: dict) -> None:
    filters = window(warehouse, **options)
    affinity = category_affinity(warehouse.engine, filters, "tier")
    lines = (warehouse.frame("order_items").merge(completed(warehouse, filters)[["order_id", "member_id"]],
                                                  on="order_id")
             .merge(warehouse.frame("products")[["product_id", "category"]], on="product_id")
             .merge(warehouse.frame("members")[["member_id", "tier"]], on="member_id"))
    buyers = lines.groupby(["tier", "category"])["member_id"].agg(set)
    assert len(affinity) == len(buyers)
    for row in affinity.itertuples():
        assert ids(warehouse, affinity_cell_members(filters, row.group, row.category, "tier")) \
            == buyers[(row.group, row.category)], (row.group, row.category)
    assert not ids(warehouse, affinity_cell_members(filters, "no such tier", affinity["category"].iloc[0]))


def test_affinity_cell_members_by_region(duck_warehouse: Warehouse) -> None:
    filters = window(duck_warehouse)
    affinity = category_affinity(duck_warehouse.engine, filters, "region")
    row = affinity.iloc[len(affinity) // 2]
    lines = (duck_warehouse.frame("order_items").merge(completed(duck_warehouse, filters), on="order_id")
             .merge(duck_warehouse.frame("products")[["product_id", "category"]], on="product_id")
             .merge(duck_warehouse.frame("members")[["member_id", "region"]], on="member_id"))
    expected = set(lines.loc[(lines["region"].fillna("unknown") == row["group"])
                             & (lines["category"] == row["category"]), "member_id"])
    assert expected and ids(duck_warehouse, affinity_cell_members(filters, row["group"], row["category"], "region")) \
        == expected


@pytest.mark.parametrize("options", [{}, {"tiers": ("basic",), "channels": ("app", "mini_program")}])
def test_rhythm_cell_members_match_pandas(warehouse: Warehouse, options: dict) -> None:
    """Members with a completed order that weekday and hour; the guest orders counted in the figure are not."""
    filters = window(warehouse, **options)
    done = completed(warehouse, filters)
    done = done.assign(weekday=done["ordered_at"].dt.day_of_week, hour=done["ordered_at"].dt.hour)
    for weekday, hour in [(0, 9), (4, 20), (6, 23), (2, 3)]:
        here = done[(done["weekday"] == weekday) & (done["hour"] == hour)]
        expected = set(here["member_id"].dropna())
        for measure in ("orders", "net_sales"):
            assert ids(warehouse, rhythm_cell_members(filters, weekday, hour, measure)) == expected
    busiest = done.groupby(["weekday", "hour"]).size().idxmax()
    assert ids(warehouse, rhythm_cell_members(filters, *busiest)), "the busiest hour has members"
    if not options:
        assert done["member_id"].isna().any(), "the demo shop has guest orders: they must not be listed"


def test_rhythm_cell_members_of_events(warehouse: Warehouse) -> None:
    filters = window(warehouse, 30)
    e = warehouse.frame("events")
    e = e[(e["occurred_at"] >= pd.Timestamp(filters.start_ts)) & (e["occurred_at"] < pd.Timestamp(filters.end_ts))]
    here = e[(e["occurred_at"].dt.day_of_week == 5) & (e["occurred_at"].dt.hour == 21)]
    assert here["member_id"].isna().any() and here["member_id"].notna().any()
    assert ids(warehouse, rhythm_cell_members(filters, 5, 21, "events")) == set(here["member_id"].dropna())


@pytest.mark.parametrize(("across", "options"), [("hour", {}), ("event_type", {}), ("hour", {"tiers": ("gold",)})])
def test_browsing_cell_members_match_pandas(warehouse: Warehouse, across: str, options: dict) -> None:
    filters = window(warehouse, 30, **options)
    hot = browsing_hotspots(warehouse.engine, filters, across)
    e = warehouse.frame("events")
    e = e[(e["occurred_at"] >= pd.Timestamp(filters.start_ts)) & (e["occurred_at"] < pd.Timestamp(filters.end_ts))]
    if filters.tiers:
        e = e[e["member_id"].isin(tier_members(warehouse, filters))]
    e = e.assign(page=e["page"].fillna("unknown"),
                 column=e["occurred_at"].dt.hour if across == "hour" else e["event_type"])
    members = e.dropna(subset=["member_id"]).groupby(["page", "column"])["member_id"].agg(set)
    for row in hot.sample(12, random_state=1).itertuples():
        expected = members.get((row.page, row.column), set())
        assert ids(warehouse, browsing_cell_members(filters, row.page, row.column, across)) == expected


def test_cell_members_dispatches_to_each_heatmap(duck_warehouse: Warehouse) -> None:
    """The one entry point the app's cache uses gives what each heatmap's own function gives."""
    filters = window(duck_warehouse)
    cases = [
        (retention_cell_members(filters, "2026-09-01", 1, "first_purchase", "month"),
         cell_members(filters, "retention", "2026-09-01", "1", cohort="first_purchase", period="month",
                      activity="purchase")),
        (rhythm_cell_members(filters, 3, 20, "orders"), cell_members(filters, "rhythm", "3", 20, measure="orders")),
        (affinity_cell_members(filters, "gold", "Beauty", "tier"),
         cell_members(filters, "affinity", "gold", "Beauty", by="tier")),
        (browsing_cell_members(filters, "home", 21, "hour"), cell_members(filters, "browsing", "home", "21",
                                                                          across="hour")),
    ]
    for direct, dispatched in cases:
        assert ids(duck_warehouse, dispatched) == ids(duck_warehouse, direct)
    assert all(ids(duck_warehouse, direct) for direct, _ in cases)


@pytest.mark.parametrize("call", [
    lambda f: retention_cell_members(f, "2026-09-01", 1, "first_order"),
    lambda f: retention_cell_members(f, "2026-09-01", -1),
    lambda f: rhythm_cell_members(f, 7, 0),
    lambda f: rhythm_cell_members(f, 0, 24),
    lambda f: rhythm_cell_members(f, 0, 0, "visits"),
    lambda f: affinity_cell_members(f, "gold", "Beauty", "city"),
    lambda f: browsing_cell_members(f, "home", 24),
    lambda f: browsing_cell_members(f, "home", "add_to_cart", "device"),
    lambda f: cell_members(f, "funnel", 0, 0),
])
def test_cell_members_refuse_unknown_options(call) -> None:
    with pytest.raises(ValueError):
        call(Filters(pd.Timestamp("2026-01-01").date(), pd.Timestamp("2026-01-31").date()))


def clicked(row: object, column: object) -> dict:
    """The selection Streamlit holds after a click on a cell's marker (its keys travel as text)."""
    point = {"curve_number": 1, "point_number": 0, "point_index": 0, "customdata": [str(row), str(column)]}
    return {"selection": {"points": [point], "point_indices": [0], "box": [], "lasso": []}}


#: The page's tab of each heatmap (only the open tab is computed and drawn).
TABS = {"retention": "Cohort retention", "rhythm": "Activity rhythm", "affinity": "Category affinity",
        "browsing": "Browsing hotspots"}


def test_clicking_a_cell_shows_its_figures_and_masked_members(warehouse: Warehouse, monkeypatch) -> None:
    """The page under AppTest, on DuckDB and PostgreSQL: a click on a cell of each heatmap (as the browser
    sends it), in its tab, shows the cell's figures, the number of its members, a masked preview and a download."""
    at = open_page(warehouse.url, "pages/heatmaps.py", monkeypatch)
    filters = default_filters(warehouse)
    span = data_span(warehouse.engine)
    recent = Filters(*cohort_range("month", span.first_day, span.last_day))  # the retention tab's default
    table = cohort_retention(warehouse.engine, recent, max_periods=12)
    assert table["cohort"].nunique() == 12  # not the three or four of the sidebar's 90 days
    retention = table[(table["period"] == 1) & (table["active"] > 0)].iloc[0]
    affinity = category_affinity(warehouse.engine, filters, "tier").iloc[0]
    hot = browsing_hotspots(warehouse.engine, filters, "hour").sort_values("events").iloc[-1]
    cells = {
        "retention": (retention["cohort"].date().isoformat(), 1,
                      {"cohort": "first_purchase", "period": "month", "activity": "purchase"}),
        "rhythm": (2, 20, {"measure": "orders"}),
        "affinity": (affinity["group"], affinity["category"], {"by": "tier"}),
        "browsing": (hot["page"], int(hot["column"]), {"across": "hour"}),
    }
    headline = {
        "retention": lambda text: f"**Cohort {retention['cohort']:%Y-%m} ({retention['size']:,} members), month 1: "
                                  f"{retention['active']:,} active, {retention['share']:.1%}**" in text,
        "rhythm": lambda text: any(t.startswith("**Wednesday 20:00–20:59: ") and t.endswith(" completed orders**")
                                   for t in text),
        "affinity": lambda text: f"**{affinity['group'].capitalize()} · {affinity['category']}: index "
                                 f"{affinity['index']:.0f} (100 = average); " in " ".join(text),
        "browsing": lambda text: f"**{hot['page']} · {int(hot['column']):02d}:00–{int(hot['column']):02d}:59: "
                                 f"{hot['events']:,} events**" in text,
    }
    members = warehouse.frame("members").set_index("member_id")
    assert list(cells) == list(HEATMAPS)
    for heatmap, (row, column, options) in cells.items():
        at.session_state["heatmaps_tab"] = TABS[heatmap]
        at.session_state[f"hm_{heatmap}_chart"] = clicked(row, column)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.get("plotly_chart")) == 1, heatmap  # the open tab's heatmap alone
        text = [m.value for m in at.markdown]
        assert headline[heatmap](text), heatmap
        count = member_count(warehouse.engine, cell_members(recent if heatmap == "retention" else filters, heatmap,
                                                            row, column, **options))
        assert count and any(t.startswith(f"**{count:,}** member") for t in text), heatmap
        previews = [df.value for df in at.dataframe]
        assert [len(p) for p in previews] == [min(count, 100)], heatmap
        shown = previews[0].dropna(subset=["phone"])
        assert len(shown) and not shown["phone"].isin(members["phone"]).any()
        assert shown["phone"].str.fullmatch(r"\d{3}\*+\d{4}").all()
        labels = [b.label for b in at.get("download_button")]
        assert sum(label.startswith("Download the ") and label.endswith(" (CSV)") for label in labels) == (
            2 if heatmap == "retention" else 1), heatmap  # the retention tab also offers its cohort table


def test_a_click_on_an_empty_cell_says_so(duck_warehouse: Warehouse, monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/heatmaps.py", monkeypatch)
    span = data_span(duck_warehouse.engine)
    table = cohort_retention(duck_warehouse.engine, Filters(*cohort_range("month", span.first_day, span.last_day)))
    last = table["cohort"].max()
    assert table.loc[table["cohort"] == last, "period"].max() < 3  # the newest cohort has no month 3 yet
    at.session_state["hm_retention_chart"] = clicked(last.date().isoformat(), 3)
    at.run()
    assert not at.exception
    text = [m.value for m in at.markdown]
    assert "**Nothing in this cell** for these filters." in text
    assert not at.dataframe and not any("behind this cell" in t for t in text)
    at.session_state["heatmaps_tab"] = TABS["rhythm"]
    at.session_state["hm_rhythm_chart"] = clicked("not a weekday", 3)  # e.g. a click on an older drawing
    at.run()
    assert not at.exception
    text = [m.value for m in at.markdown]
    assert not at.dataframe and not any("behind this cell" in t or "Nothing in this cell" in t for t in text)


def test_retention_defaults_to_the_last_twelve_months_and_says_so(duck_warehouse: Warehouse, monkeypatch) -> None:
    """Whatever the sidebar's 90 days, the cohort heatmap opens on the last 12 monthly cohorts (12 weekly ones by
    week), says which dates, and follows the sidebar's range when asked."""
    at = open_page(duck_warehouse.url, "pages/heatmaps.py", monkeypatch)
    span = data_span(duck_warehouse.engine)
    recent = Filters(*cohort_range("month", span.first_day, span.last_day))
    assert recent.start.day == 1 and (recent.end.year - recent.start.year) * 12 + recent.end.month \
        - recent.start.month == 11
    captions = [c.value for c in at.caption]
    assert f"Cohorts of {recent.start:%d %b %Y} – {recent.end:%d %b %Y}: the last 12 months of data, not the " \
           "sidebar's dates." in captions
    chart = next(c for c in at.get("plotly_chart") if "hm_retention_chart" in str(c.proto.id))
    assert f"{recent.start:%Y-%m}" in chart.proto.spec and f"{recent.end:%Y-%m}" in chart.proto.spec
    at.segmented_control(key="hm_period").set_value("week").run()
    weeks = Filters(*cohort_range("week", span.first_day, span.last_day))
    assert weeks.start.weekday() == 0 and (weeks.end - weeks.start).days // 7 == 11
    assert any(c.value.startswith(f"Cohorts of {weeks.start:%d %b %Y}") for c in at.caption)
    at.radio(key="hm_cohort_range").set_value("sidebar").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(c.value.startswith("Cohorts of ") for c in at.caption)
    table = cohort_retention(duck_warehouse.engine, default_filters(duck_warehouse), period="month")
    assert table["cohort"].nunique() <= 4  # what the sidebar's default range gives: the defect

"""Member tags and the member 360 view against independent pandas computations, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import math
from collections import deque
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from analytics import member360
from analytics.audiences import parse_audience
from analytics.cluster_features import AGE_BANDS
from analytics.filters import Filters
from analytics.member360 import (
    find_members,
    member_profile,
    member_summary,
    order_timeline,
    points_history,
    tier_history,
    top_members,
)
from analytics.member_rows import MEMBER_COLUMNS, MEMBER_ROW_COLUMNS, member_rows
from analytics.privacy import mask_email, mask_name, mask_phone
from analytics.programme import TIER_THRESHOLDS
from analytics.rfm import member_rfm
from analytics.storage.contract import TIERS, WAREHOUSE_TABLES, members
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from analytics.tags import (
    CATEGORY_LOVER,
    TAGS,
    member_tags,
    resolve_tag,
    tag_audience,
    tag_coverage,
    tag_member_ids,
)
from tests.conftest import Warehouse
from tests.reference_members import pandas_member_values

SIMPLE_TAGS = [t.key for t in TAGS if not t.is_family]


def tag_audience_spec(filters: Filters, key: str) -> dict:
    """A tag audience as the JSON a page downloads."""
    return tag_audience(filters, key).to_json()


def audience_member_ids(spec: dict):
    """The members of a downloaded tag audience, parsed at the test's edge."""
    return parse_audience(spec, allowed=["tag"]).member_ids()
FILTER_CASES = [{}, {"tiers": ("silver", "gold")}, {"channels": ("app",)}]


def year_to(warehouse: Warehouse, **kw) -> Filters:
    """The last 365 days of data: the reference day is the last day with orders."""
    span = data_span(warehouse.engine)
    return Filters(span.last_day - timedelta(days=364), span.last_day, **kw)


def cents(values: pd.Series) -> pd.Series:
    return (values.astype("float64") * 100).round().astype("int64")


def ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(day, datetime.min.time()))


# ---- the tag definitions, written again with pandas only -----------------------------------------------------------


class Reference:
    """Every tag's member set under ``filters``, computed from the module docstring with pandas."""

    def __init__(self, warehouse: Warehouse, filters: Filters) -> None:
        self.f = filters
        self.members = warehouse.frame("members")
        self.orders = warehouse.frame("orders")
        self.items = warehouse.frame("order_items")
        self.products = warehouse.frame("products")
        self.ledger = warehouse.frame("points_ledger")
        self.start, self.end = ts(filters.start), ts(filters.end + timedelta(days=1))  # end is exclusive
        m = self.members
        self.scope = set(m.loc[m["tier"].isin(filters.tiers), "member_id"]) if filters.tiers else set(m["member_id"])

    def scoped_orders(self) -> pd.DataFrame:
        """Completed member orders through the channel and tier filters, any time."""
        o = self.orders
        o = o[(o["status"] == "completed") & o["member_id"].notna() & o["member_id"].isin(self.scope)]
        return o[o["channel"].isin(self.f.channels)] if self.f.channels else o

    def window(self) -> pd.DataFrame:
        o = self.scoped_orders()
        return o[(o["ordered_at"] >= self.start) & (o["ordered_at"] < self.end)]

    def high_value(self) -> set[str]:
        per = self.window().assign(c=lambda d: cents(d["net_amount"])).groupby("member_id")["c"].sum()
        n = len(per)
        values = per.to_numpy()
        scores = {mid: 1 + math.floor(5 * int((values < v).sum()) / n) for mid, v in per.items()}
        return {mid for mid, s in scores.items() if s == 5}

    def new_member(self) -> set[str]:
        m = self.members
        since = self.end - pd.Timedelta(days=30)
        return set(m.loc[(m["registered_at"] >= since) & (m["registered_at"] < self.end), "member_id"]) & self.scope

    def dormant_90(self) -> set[str]:
        o = self.scoped_orders()
        last = o[o["ordered_at"] < self.end].groupby("member_id")["ordered_at"].max()
        return set(last[last < self.end - pd.Timedelta(days=90)].index)

    def discount_seeker(self) -> set[str]:
        w = self.window().assign(g=lambda d: cents(d["gross_amount"]), d=lambda d: cents(d["discount_amount"]))
        per = w.groupby("member_id").agg(n=("order_id", "size"), g=("g", "sum"), d=("d", "sum"))
        return set(per[(per["n"] >= 2) & (per["g"] > 0) & (per["d"] * 100 >= per["g"] * 20)].index)

    def night_owl(self) -> set[str]:
        w = self.window()
        hour = w["ordered_at"].dt.hour
        per = w.assign(night=(hour >= 22) | (hour < 6)).groupby("member_id").agg(n=("order_id", "size"),
                                                                                 night=("night", "sum"))
        return set(per[(per["n"] >= 3) & (per["night"] * 2 >= per["n"])].index)

    def category_lovers(self) -> dict[str, set[str]]:
        w = self.window()
        n_orders = w.groupby("member_id").size()
        lines = (w[["order_id", "member_id"]].merge(self.items, on="order_id")
                 .merge(self.products[["product_id", "category"]], on="product_id", how="left"))
        lines["c"] = cents(lines["line_amount"])
        total = lines.groupby("member_id")["c"].sum()
        per = lines.groupby(["member_id", "category"])["c"].sum().reset_index()
        per["total"] = per["member_id"].map(total)
        per["orders"] = per["member_id"].map(n_orders)
        lovers = per[(per["orders"] >= 3) & (per["total"] > 0) & (per["c"] * 100 >= per["total"] * 60)]
        found: dict[str, set[str]] = {c: set() for c in self.products["category"].dropna().unique()}
        for member_id, category in lovers[["member_id", "category"]].itertuples(index=False):
            found[category].add(member_id)
        return found

    def birthday_month(self) -> set[str]:
        m = self.members
        month = pd.to_datetime(m["birth_date"]).dt.month
        return set(m.loc[month == self.f.end.month, "member_id"]) & self.scope

    def points_expiring(self) -> set[str]:
        """A first-in-first-out walk through each member's lots (not the closed form the SQL uses): what is
        left at the reference day of the lots earned before this year expires on 31 December."""
        year_start = pd.Timestamp(self.f.end.year, 1, 1)
        ledger = self.ledger[self.ledger["occurred_at"] < self.end]
        # credits before debits at the same moment (an order earns and redeems at once)
        ledger = ledger.assign(debit=ledger["delta"] < 0).sort_values(["member_id", "occurred_at", "debit"])
        found = set()
        for member_id, rows in ledger.groupby("member_id", sort=False):
            lots: deque[list] = deque()
            for at, delta in zip(rows["occurred_at"], rows["delta"], strict=True):
                if delta > 0:
                    lots.append([at, int(delta)])
                    continue
                owed = -int(delta)
                while owed and lots:
                    used = min(owed, lots[0][1])
                    lots[0][1] -= used
                    owed -= used
                    if not lots[0][1]:
                        lots.popleft()
            if sum(points for at, points in lots if at < year_start) >= 500:
                found.add(member_id)
        return found & self.scope

    def tier_upgrade_near(self) -> set[str]:
        o = self.orders
        # the next evaluation (1st of next month) counts the twelve calendar months ending with this one
        day = self.end - pd.Timedelta(days=1)  # self.end: midnight after the reference day
        since = pd.Timestamp(day.year, day.month, 1) - pd.DateOffset(months=11)
        o = o[(o["status"] == "completed") & (o["ordered_at"] >= since) & (o["ordered_at"] < self.end)]
        spend = cents(o["gross_amount"]).groupby(o["member_id"]).sum()
        m = self.members.assign(spend=lambda d: d["member_id"].map(spend).fillna(0).astype("int64"))
        nxt = {tier: round(TIER_THRESHOLDS[TIERS[n + 1]] * 100) for n, tier in enumerate(TIERS[:-1])}
        m["next"] = m["tier"].map(nxt)
        near = m[m["next"].notna() & (m["spend"] * 100 >= m["next"] * 80) & (m["spend"] < m["next"])]
        return set(near["member_id"]) & self.scope

    def all_tags(self) -> dict[str, set[str]]:
        found = {key: getattr(self, key)() for key in SIMPLE_TAGS}
        found.update({CATEGORY_LOVER + c: ids for c, ids in self.category_lovers().items()})
        return found


def members_frame(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.frame("members")


def sql_ids(warehouse: Warehouse, filters: Filters, key: str) -> set[str]:
    frame = read_frame(warehouse.engine, tag_member_ids(filters, key), hash_joins=True)
    ids = frame.iloc[:, 0].tolist()
    assert len(ids) == len(set(ids)), f"{key}: a member listed twice"
    return set(ids)


@pytest.fixture(scope="module")
def reference_cache() -> dict:
    return {}


def expected_tags(warehouse: Warehouse, filters: Filters, cache: dict) -> dict[str, set[str]]:
    if (warehouse.name, filters) not in cache:
        cache[(warehouse.name, filters)] = Reference(warehouse, filters).all_tags()
    return cache[(warehouse.name, filters)]


# ---- tags -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", FILTER_CASES)
def test_every_tag_matches_pandas(warehouse: Warehouse, kw: dict, reference_cache: dict) -> None:
    filters = year_to(warehouse, **kw)
    expected = expected_tags(warehouse, filters, reference_cache)
    for key, ids in expected.items():
        assert sql_ids(warehouse, filters, key) == ids, key
    sizes = {key: len(expected[key]) for key in SIMPLE_TAGS}
    lovers = {k: len(v) for k, v in expected.items() if k.startswith(CATEGORY_LOVER)}
    if not kw:  # the demo has members with every tag over the last year (discount seekers are rare: 2)
        assert all(sizes.values()), sizes
        assert sum(1 for n in lovers.values() if n) >= 6, lovers
    else:  # narrower scopes: discounts are rare, so discount seekers may vanish
        assert sum(1 for n in sizes.values() if n) >= len(SIMPLE_TAGS) - 1, sizes
        assert sum(1 for n in lovers.values() if n) >= 5, lovers
    if kw.get("tiers"):  # the tier filter scopes every tag
        m = members_frame(warehouse)
        assert set().union(*expected.values()) <= set(m.loc[m["tier"].isin(kw["tiers"]), "member_id"])


@pytest.mark.parametrize("kw", FILTER_CASES)
def test_coverage_counts_are_the_tag_set_sizes(warehouse: Warehouse, kw: dict, reference_cache: dict) -> None:
    filters = year_to(warehouse, **kw)
    expected = expected_tags(warehouse, filters, reference_cache)
    coverage = tag_coverage(warehouse.engine, filters)
    assert list(coverage.columns) == ["tag", "label", "rule", "members", "share"]
    expected_rows = {k: len(v) for k, v in expected.items() if v or not k.startswith(CATEGORY_LOVER)}
    assert dict(zip(coverage["tag"], coverage["members"], strict=True)) == expected_rows
    # registry order, the family expanded in its place, sorted by category
    keys = coverage["tag"].tolist()
    lovers = [k for k in keys if k.startswith(CATEGORY_LOVER)]
    assert lovers == sorted(lovers)
    assert [k for k in keys if not k.startswith(CATEGORY_LOVER)] == SIMPLE_TAGS
    first = keys.index(lovers[0])
    assert keys[first:first + len(lovers)] == lovers and keys[first - 1] == "night_owl"
    m = members_frame(warehouse)
    scope = m["tier"].isin(kw["tiers"]).sum() if kw.get("tiers") else len(m)
    assert coverage["share"].tolist() == pytest.approx((coverage["members"] / scope).tolist())
    for row in coverage.itertuples(index=False):
        assert row.label == resolve_tag(row.tag).label and row.rule == resolve_tag(row.tag).rule


def test_member_tags_match_the_tag_sets(warehouse: Warehouse, reference_cache: dict) -> None:
    filters = year_to(warehouse)
    expected = expected_tags(warehouse, filters, reference_cache)
    sample = sorted({min(ids) for ids in expected.values() if ids} | {"M00000001", "M00000002"})
    for member_id in sample:
        got = member_tags(warehouse.engine, filters, member_id)
        assert list(got.columns) == ["tag", "label", "rule"]
        mine = {k for k, ids in expected.items() if member_id in ids}
        assert set(got["tag"]) == mine, member_id
        assert got["label"].tolist() == [resolve_tag(k).label for k in got["tag"]]
    assert member_tags(warehouse.engine, filters, "' OR 1=1 --").empty
    assert member_tags(warehouse.engine, filters, "no such member").empty


def test_tags_come_in_registry_order_for_one_member(duck_warehouse: Warehouse) -> None:
    filters = year_to(duck_warehouse)
    coverage_order = [t.key for t in TAGS]
    counts = {}
    for key in SIMPLE_TAGS:
        for member_id in sql_ids(duck_warehouse, filters, key):
            counts[member_id] = counts.get(member_id, 0) + 1
    busiest = max(sorted(counts), key=counts.get)
    got = member_tags(duck_warehouse.engine, filters, busiest)["tag"].tolist()
    assert len(got) >= 3
    family_index = coverage_order.index(CATEGORY_LOVER)
    ranks = [family_index if k.startswith(CATEGORY_LOVER) else coverage_order.index(k) for k in got]
    assert ranks == sorted(ranks)


def test_unknown_tags_are_refused_clearly(duck_warehouse: Warehouse) -> None:
    filters = year_to(duck_warehouse)
    with pytest.raises(ValueError, match=r"Unknown tag 'vip'; choose one of high_value, new_member"):
        tag_member_ids(filters, "vip")
    with pytest.raises(ValueError, match="names no category"):
        tag_member_ids(filters, CATEGORY_LOVER)
    with pytest.raises(ValueError, match="Unknown tag"):
        tag_audience_spec(filters, "High value")  # a label is not a key
    with pytest.raises(ValueError, match="Unknown tag"):
        tag_member_ids(filters, "high_value ")
    with pytest.raises(ValueError, match="Not a version-1 tag audience"):
        audience_member_ids({"version": 1, "kind": "rfm_segment"})
    with pytest.raises(ValueError, match="Not a version-1 tag audience"):
        audience_member_ids({**tag_audience_spec(filters, "night_owl"), "version": 2})


def test_the_category_is_a_bound_parameter(duck_warehouse: Warehouse) -> None:
    filters = year_to(duck_warehouse)
    hostile = "Beauty' OR '1'='1"
    statement = tag_member_ids(filters, CATEGORY_LOVER + hostile)
    assert "OR '1'='1" not in str(statement.compile(duck_warehouse.engine))
    assert sql_ids(duck_warehouse, filters, CATEGORY_LOVER + hostile) == set()
    assert sql_ids(duck_warehouse, filters, CATEGORY_LOVER + "Beauty")
    assert resolve_tag(CATEGORY_LOVER + "Mother & Baby").label == "Category lover: Mother & Baby"


@pytest.mark.parametrize("key", ["night_owl", "points_expiring", CATEGORY_LOVER + "Electronics"])
def test_audience_spec_round_trips_through_json(warehouse: Warehouse, key: str) -> None:
    filters = year_to(warehouse, channels=("app", "web"))
    spec = tag_audience_spec(filters, key)
    loaded = json.loads(json.dumps(spec))
    assert loaded == spec
    assert loaded["version"] == 1 and loaded["kind"] == "tag" and loaded["tag"] == key
    assert loaded["source"] == f"Tag {resolve_tag(key).label}" and loaded["channels"] == ["app", "web"]
    got = set(read_frame(warehouse.engine, audience_member_ids(loaded), hash_joins=True).iloc[:, 0])
    assert got == sql_ids(warehouse, filters, key) and got


# ---- member 360 -----------------------------------------------------------------------------------------------------


def table_counts(warehouse: Warehouse) -> dict[str, int]:
    with warehouse.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in WAREHOUSE_TABLES}


HOSTILE = ["' OR 1=1 --", "%", "_", "; DROP TABLE members", "M%", "M_000", "M0000000_", "\\", "M0000001\\",
           "M00000010' --", "张", "M0000000１", "🙂", "M0000001\x00", "  M0000001  ", "", "   ", "m0000001"]


def pandas_find(ids: list[str], text: str, limit: int = 20) -> list[tuple[str, str]]:
    """The forgiving search written from its definition with plain Python: each id under its best match (the id
    in any case; its trailing number after the typed text; the start of the id; part of it), best first, then by
    id."""
    import re

    needle = text.strip()[:100].lower()
    if not needle or "\x00" in needle:
        return []
    shape = re.compile(r"^([^0-9]*?)\s*0*([0-9]+)$")
    typed = shape.match(needle)
    found = {}
    for member_id in ids:
        low = member_id.lower()
        own = shape.match(low)
        if low == needle:
            found[member_id] = 0
        elif typed and own and int(own[2]) == int(typed[2]) and own[1].strip().startswith(typed[1].strip()):
            found[member_id] = 1
        elif low.startswith(needle):
            found[member_id] = 2
        elif needle in low:
            found[member_id] = 3
    kinds = ("id", "number", "prefix", "contains")
    return [(i, kinds[found[i]]) for i in sorted(found, key=lambda i: (found[i], i))][:limit]


@pytest.mark.parametrize("text", [*HOSTILE, "M00000010", "M0000012", "M", "28", "m28", "M 0028", "0028", "m00000028",
                                  "M000000", "12"])
def test_find_members_is_forgiving_literal_and_changes_nothing(warehouse: Warehouse, text: str) -> None:
    """Case-insensitive, the number alone ("28" finds M00000028), the start or any part of an id, best matches
    first; the text is matched literally (``%``, ``_``, quotes are plain characters) and nothing is written."""
    before = table_counts(warehouse)
    got = find_members(warehouse.engine, text)
    assert table_counts(warehouse) == before
    expected = pandas_find(sorted(members_frame(warehouse)["member_id"]), text)
    assert list(zip(got["member_id"], got["match"], strict=True)) == expected, text
    assert list(got.columns) == [*MEMBER_COLUMNS, "match"]


def test_the_number_alone_finds_the_member(duck_warehouse: Warehouse) -> None:
    for text in ("28", "m28", "M 28", "0028", "m00000028", "  M00000028 "):
        got = find_members(duck_warehouse.engine, text)
        assert got["member_id"].iloc[0] == "M00000028" and got["match"].iloc[0] in ("id", "number"), text
        assert (got["match"].isin(["id", "number"])).sum() == 1, text  # one member is meant: the page opens it
    several = find_members(duck_warehouse.engine, "28")
    assert len(several) > 5 and set(several["match"].iloc[1:]) == {"contains"}  # the others are listed


def test_find_members_limit_masking_and_value(warehouse: Warehouse) -> None:
    got = find_members(warehouse.engine, "M000001", limit=7)
    assert got["member_id"].tolist() == ["M00000001", *(f"M000001{n:02d}" for n in range(6))]  # the number 1 first
    raw = members_frame(warehouse).set_index("member_id").loc[got["member_id"]]
    assert got["name"].tolist() == [mask_name(v) for v in raw["name"]]
    assert got["phone"].tolist() == [mask_phone(v) for v in raw["phone"]]
    assert got["email"].tolist() == [mask_email(v) for v in raw["email"]]
    for column in ("name", "phone", "email"):  # nothing personal shown as it is
        assert not set(got[column].dropna()) & set(raw[column].dropna()), column
    filters = Filters(*data_span(warehouse.engine).last_days(365))
    valued = find_members(warehouse.engine, "M000001", limit=7, window=filters)
    assert valued["member_id"].tolist() == got["member_id"].tolist()
    assert list(valued.columns) == [*MEMBER_ROW_COLUMNS, "match"]
    rows = member_rows(warehouse.engine, select(members.c.member_id).where(members.c.member_id.in_(
        got["member_id"].tolist())), filters).set_index("member_id")
    assert valued.set_index("member_id")["net_sales"].to_dict() == rows["net_sales"].to_dict()


@given(text=st.text(alphabet="Mm0123_%\\' ;-张", max_size=10))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_find_members_follows_its_definition(duck_warehouse: Warehouse, text: str) -> None:
    expected = pandas_find(sorted(members_frame(duck_warehouse)["member_id"]), text)
    got = find_members(duck_warehouse.engine, text)
    assert list(zip(got["member_id"], got["match"], strict=True)) == expected


def test_top_members_are_the_biggest_buyers_of_the_range(warehouse: Warehouse) -> None:
    filters = Filters(*data_span(warehouse.engine).last_days(90))
    top = top_members(warehouse.engine, filters, 10)
    expected = pandas_member_values(warehouse.frame("orders"), warehouse.frame("members"),
                                    set(warehouse.frame("members")["member_id"]), filters).head(10)
    assert top["member_id"].tolist() == expected["member_id"].tolist()
    assert top["net_sales"].round(2).tolist() == expected["net_sales"].tolist()
    assert top["segment"].tolist() == expected["segment"].tolist()


def test_member_profile_is_masked_unless_asked(warehouse: Warehouse) -> None:
    m = members_frame(warehouse).set_index("member_id")
    member_id = m[m["birth_date"].notna() & m["name"].notna() & m["phone"].notna()].index[0]
    raw = m.loc[member_id]
    as_of = date(2026, 11, 15)
    masked = member_profile(warehouse.engine, member_id, as_of=as_of)
    plain = member_profile(warehouse.engine, member_id, unmasked=True)
    exact = member_profile(warehouse.engine, member_id, unmasked=True, as_of=as_of)
    assert set(masked) == {c.name for c in members.columns} | {"age", "age_band"}
    assert masked["name"] == mask_name(raw["name"]) != raw["name"]
    assert masked["phone"] == mask_phone(raw["phone"]) != raw["phone"]
    assert masked["email"] == mask_email(raw["email"])
    assert (plain["name"], plain["phone"], plain["email"]) == (raw["name"], raw["phone"], raw["email"])
    for column in ("tier", "city", "points_balance", "registered_at"):
        assert masked[column] == plain[column] == raw[column], column
    birth = pd.Timestamp(raw["birth_date"]).date()
    age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
    # masked: never the birth date or the exact age, only the band
    assert masked["birth_date"] is None and masked["age"] is None
    assert masked["age_band"] == next(label for lo, hi, label in AGE_BANDS if lo <= age < hi) == exact["age_band"]
    assert plain["birth_date"] == raw["birth_date"] and exact["age"] == age
    assert plain["age"] is None and plain["age_band"] is None  # no reference date, no age
    assert member_profile(warehouse.engine, "' OR 1=1 --") is None


def test_age_in_whole_years() -> None:
    age = member360._age
    assert age(date(2000, 3, 1), date(2026, 2, 28)) == 25
    assert age(date(2000, 3, 1), date(2026, 3, 1)) == 26
    assert age(date(2000, 2, 29), date(2026, 2, 28)) == 25
    assert age(None, date(2026, 1, 1)) is None


def test_points_history_running_balance(warehouse: Warehouse) -> None:
    ledger = warehouse.frame("points_ledger")
    m = members_frame(warehouse).set_index("member_id")
    # the demo ledger is complete: every member's balance is exactly the sum of their ledger rows
    sums = ledger.groupby("member_id")["delta"].sum().reindex(m.index, fill_value=0)
    assert (sums == m["points_balance"]).all()
    busiest = ledger["member_id"].value_counts().index[0]
    sample = [busiest, *sorted(ledger["member_id"].unique())[:25:5], "M00000001"]
    for member_id in sample:
        got = points_history(warehouse.engine, member_id)
        assert list(got.columns) == ["occurred_at", "delta", "reason", "order_id", "balance", "entry_id"]
        mine = ledger[ledger["member_id"] == member_id].sort_values(["occurred_at", "entry_id"])
        assert got["entry_id"].tolist() == mine["entry_id"].tolist()
        assert got["balance"].tolist() == mine["delta"].cumsum().tolist()
        assert got["balance"].iloc[-1] == m.loc[member_id, "points_balance"]
    assert points_history(warehouse.engine, "nobody").empty


def test_tier_history(warehouse: Warehouse) -> None:
    changes = warehouse.frame("tier_changes")
    member_id = changes["member_id"].value_counts().index[0]
    got = tier_history(warehouse.engine, member_id)
    mine = changes[changes["member_id"] == member_id].sort_values("changed_at")
    assert got["changed_at"].tolist() == mine["changed_at"].tolist()
    assert got["to_tier"].tolist() == mine["to_tier"].tolist()
    assert got["to_tier"].iloc[-1] == members_frame(warehouse).set_index("member_id").loc[member_id, "tier"]
    assert tier_history(warehouse.engine, "nobody").empty


def test_order_timeline(warehouse: Warehouse) -> None:
    o = warehouse.frame("orders")
    items = warehouse.frame("order_items").merge(warehouse.frame("products")[["product_id", "category"]],
                                                 on="product_id", how="left")
    member_id = o["member_id"].value_counts().index[0]
    mine = o[o["member_id"] == member_id].sort_values(["ordered_at", "order_id"], ascending=False)
    got = order_timeline(warehouse.engine, member_id)
    assert got["order_id"].tolist() == mine["order_id"].tolist()
    assert set(mine["status"]) <= set(got["status"])
    assert got["gross"].tolist() == pytest.approx(mine["gross_amount"].tolist())
    assert got["net"].tolist() == pytest.approx(mine["net_amount"].tolist())
    lines = items[items["order_id"].isin(mine["order_id"])]
    count = lines.groupby("order_id").size()
    assert got["items"].tolist() == [int(count.get(i, 0)) for i in got["order_id"]]
    per = lines.groupby(["order_id", "category"])["line_amount"].sum().reset_index()
    per = per.sort_values(["order_id", "line_amount", "category"], ascending=[True, False, True])
    top = per.drop_duplicates("order_id").set_index("order_id")["category"]
    assert got["top_category"].tolist() == [top.get(i) for i in got["order_id"]]
    assert order_timeline(warehouse.engine, member_id, limit=3)["order_id"].tolist() == got["order_id"].tolist()[:3]
    assert order_timeline(warehouse.engine, "nobody").empty


def test_member_summary_is_the_rfm_row(warehouse: Warehouse) -> None:
    from analytics.rfm import rfm_members

    filters = year_to(warehouse)
    scored = rfm_members(warehouse.engine, filters).set_index("member_id")
    for member_id in scored.index[:3]:
        summary = member_summary(warehouse.engine, filters, member_id)
        row = scored.loc[member_id]
        assert summary["segment"] == row["segment"] and summary["m_score"] == row["m_score"]
        assert summary["recency_days"] == row["recency_days"] and summary["frequency"] == row["frequency"]
        assert summary["monetary"] == pytest.approx(row["monetary"])
    unscored = sorted(set(members_frame(warehouse)["member_id"]) - set(scored.index))[0]
    assert member_summary(warehouse.engine, filters, unscored) is None


# ---- pages ----------------------------------------------------------------------------------------------------------

def test_tags_page_shows_coverage_and_masked_members(warehouse: Warehouse, monkeypatch) -> None:
    """Under AppTest on DuckDB and PostgreSQL: the coverage table equals tag_coverage for the page's default range,
    and a tag's members are listed masked."""
    from tests.conftest import default_filters, open_page

    at = open_page(warehouse.url, "pages/member_tags.py", monkeypatch)
    filters = default_filters(warehouse)
    expected = tag_coverage(warehouse.engine, filters)
    table = next(df.value for df in at.dataframe if "rule" in df.value.columns)
    assert table.set_index("tag")["members"].to_dict() == expected.set_index("tag")["members"].to_dict()
    at.selectbox(key="tag_members_pick").set_value("dormant_90")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    dormant = set(read_frame(warehouse.engine, tag_member_ids(filters, "dormant_90"))["member_id"])
    assert any(m.value.startswith(f"**{len(dormant):,} members** are tagged") for m in at.markdown)
    preview = next(df.value for df in at.dataframe if "phone" in df.value.columns)
    assert len(preview) == min(len(dormant), 100) and set(preview["member_id"]) <= dormant
    assert not preview["name"].dropna().isin(warehouse.frame("members")["name"]).any()


def test_member_360_page_finds_a_member_and_shows_their_history(warehouse: Warehouse, monkeypatch) -> None:
    """The start page suggests the range's top members (linked); a number alone opens its member; a prefix lists
    several to pick from; masked contact details, RFM segment, the cluster (computed on the spot with the default
    settings, or those chosen on Member clusters) and every order."""
    from analytics.clustering import ClusterSettings, cluster_members
    from tests.conftest import default_filters, open_page
    from ui.cached import CLUSTER_SETTINGS_KEY

    at = open_page(warehouse.url, "pages/member_360.py", monkeypatch)
    filters = default_filters(warehouse)
    assert not at.metric  # no member yet: the top members of the range instead of an empty box
    suggested = next(df.value for df in at.dataframe if "profile" in df.value.columns)
    assert suggested["member_id"].tolist() == top_members(warehouse.engine, filters, 10)["member_id"].tolist()
    assert (suggested["profile"].str.rsplit("member=", n=1).str[1] == suggested["member_id"]).all()
    rfm_rows = read_frame(warehouse.engine, select(member_rfm(filters)))
    member_id = str(rfm_rows["member_id"].min())
    number = str(int(member_id[1:]))
    at.text_input(key="m360_search").input(number).run()  # the number alone opens the member
    assert not at.exception, [e.value for e in at.exception]
    cards = {m.label: m.value for m in at.metric}
    assert cards["RFM segment"] == rfm_rows.set_index("member_id").loc[member_id, "segment"]
    assert at.query_params["member"] == [member_id] or at.query_params["member"] == member_id
    default = cluster_members(warehouse.engine, filters, ClusterSettings()).members.set_index("member_id")
    assert cards["Cluster"] == f"{default.loc[member_id, 'cluster']} of {ClusterSettings().k}"
    at.text_input(key="m360_search").input(member_id[:-1] + "_").run()  # nothing: "_" is a plain character
    assert any("No member id" in i.value for i in at.info)
    prefix = member_id[:-2]
    at.text_input(key="m360_search").input(prefix.lower()).run()  # the start of ids, any case: pick one
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="m360_pick").set_value(member_id).run()
    assert not at.exception, [e.value for e in at.exception]
    settings = ClusterSettings(k=4)
    at.session_state[CLUSTER_SETTINGS_KEY] = settings
    at.run()
    clusters = cluster_members(warehouse.engine, filters, settings).members.set_index("member_id")
    assert {m.label: m.value for m in at.metric}["Cluster"] == f"{clusters.loc[member_id, 'cluster']} of 4"
    assert any(clusters.loc[member_id, "cluster_name"] in m.value for m in at.markdown)
    raw = warehouse.frame("members").set_index("member_id").loc[member_id]
    page_text = " ".join(m.value for m in at.markdown)
    assert mask_phone(raw["phone"]) in page_text and raw["phone"] not in page_text
    orders = next(df.value for df in at.dataframe if "top_category" in df.value.columns)
    all_orders = warehouse.frame("orders")
    assert sorted(orders["order_id"]) == sorted(all_orders.loc[all_orders["member_id"] == member_id, "order_id"])
    at.text_input(key="m360_search").input("'; DROP TABLE members; --").run()
    assert not at.exception
    assert any("No member id" in i.value for i in at.info)
    at.text_input(key="m360_search").input("[Verify](https://example.com)").run()
    assert any("\\[Verify\\]\\(https" in i.value for i in at.info)  # shown as typed: no link

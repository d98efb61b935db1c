"""Masking of personal data on concrete values, and the member rows behind a figure (with what each member is worth,
against pandas) on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, union_all

from analytics.filters import Filters
from analytics.heatmaps import affinity_cell_members, category_affinity
from analytics.member_rows import MEMBER_ROW_COLUMNS, audience_rows, member_count, member_rows, value_window
from analytics.privacy import mask_email, mask_members, mask_name, mask_phone
from analytics.rfm import LAPSED, lapsed_summary, segment_audience, segment_summary
from analytics.storage.contract import members
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse
from tests.reference_members import pandas_member_values


@pytest.mark.parametrize(("value", "masked"), [
    ("张涵涵", "张**"), ("Wang Fang", "W**"), ("李", "李**"), ("", ""), (None, None),
])
def test_mask_name(value: str | None, masked: str | None) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(("value", "masked"), [
    ("18994935836", "189****5836"),   # a mainland mobile number: first 3 and last 4 digits
    ("+8618994935836", "+86*******5836"),
    ("12345678", "****5678"),         # 8 to 10 characters: only the last 4, so at least half is starred
    ("0755123456", "******3456"),
    ("1234567", "*****67"),           # shorter: only the last 2
    ("12", "*12"),
    ("", ""), (None, None),
])
def test_mask_phone(value: str | None, masked: str | None) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(("value", "masked"), [
    ("liyu@gmail.com", "l***@gmail.com"), ("a@qq.com", "a***@qq.com"), ("@qq.com", "****@qq.com"),
    ("no-at-sign", "n**"), ("", ""), (None, None),
])
def test_mask_email(value: str | None, masked: str | None) -> None:
    assert mask_email(value) == masked


def test_mask_members_masks_the_personal_columns_only_and_keeps_missing_values() -> None:
    frame = pd.DataFrame({"member_id": ["M1", "M2"], "name": ["张涵涵", None], "phone": ["18994935836", np.nan],
                          "email": [None, "liyu@gmail.com"], "city": ["Chengdu", "Hangzhou"]})
    original = frame.copy()
    masked = mask_members(frame)
    assert masked["name"].tolist()[0] == "张**" and pd.isna(masked["name"].iloc[1])
    assert masked["phone"].tolist()[0] == "189****5836" and pd.isna(masked["phone"].iloc[1])
    assert pd.isna(masked["email"].iloc[0]) and masked["email"].iloc[1] == "l***@gmail.com"
    assert masked[["member_id", "city"]].equals(original[["member_id", "city"]])
    pd.testing.assert_frame_equal(frame, original)  # the caller's frame is not changed
    assert mask_members(frame[["member_id", "city"]]).equals(frame[["member_id", "city"]])  # no PII, nothing to do


def some_ids(warehouse: Warehouse, n: int = 250):
    """A select of the ids of the first ``n`` gold members (by id), and those ids."""
    raw = warehouse.frame("members")
    chosen = sorted(raw.loc[raw["tier"] == "gold", "member_id"])[:n]
    return select(members.c.member_id).where(members.c.member_id.in_(chosen)), chosen


def _window(warehouse: Warehouse, **kw) -> Filters:
    span = data_span(warehouse.engine)
    return Filters(span.last_day - timedelta(days=89), span.last_day, **kw)


def _values(rows: pd.DataFrame) -> pd.DataFrame:
    """The value columns of member rows in the reference's types."""
    out = rows[["member_id", "net_sales", "orders", "last_order", "tier", "segment"]].copy()
    out["net_sales"] = out["net_sales"].round(2)
    out["last_order"] = pd.to_datetime(out["last_order"]).astype("datetime64[us]")
    return out.reset_index(drop=True)


def _reference(warehouse: Warehouse, ids, window: Filters) -> pd.DataFrame:
    expected = pandas_member_values(warehouse.frame("orders"), warehouse.frame("members"), set(ids), window)
    expected["last_order"] = pd.to_datetime(expected["last_order"]).astype("datetime64[us]")
    return expected


def test_member_rows_are_masked_and_carry_their_value(warehouse: Warehouse) -> None:
    """Gold members, some with orders in the range, some lapsed, some who never bought: every value column equals
    pandas' (net sales and orders in the range, the last order up to its end, tier, RFM segment or Lapsed), sorted
    by net sales then id; personal columns masked."""
    query, chosen = some_ids(warehouse)
    window = _window(warehouse)
    rows = member_rows(warehouse.engine, query, window)
    assert list(rows.columns) == list(MEMBER_ROW_COLUMNS)
    expected = _reference(warehouse, chosen, window)
    assert len(chosen) > 100 and len(rows) == len(chosen)
    pd.testing.assert_frame_equal(_values(rows), expected, check_dtype=False)
    assert {"Lapsed", None} & set(expected["segment"].where(expected["segment"].notna(), None)) \
        and (expected["net_sales"] > 0).sum() > 10  # the sample has each kind of member
    raw = warehouse.frame("members").set_index("member_id").loc[rows["member_id"]]
    for column, mask in (("name", mask_name), ("phone", mask_phone), ("email", mask_email)):
        wanted = [mask(v) if isinstance(v, str) else None for v in raw[column]]
        got = [v if isinstance(v, str) else None for v in rows[column]]
        assert got == wanted, column
        present = raw[column].dropna()
        assert len(present) and not rows[column].isin(present).any(), f"an unmasked {column} came through"
    assert rows["city"].tolist() == raw["city"].tolist()
    unmasked = member_rows(warehouse.engine, query, window, unmasked=True)
    assert unmasked["phone"].fillna("").tolist() == raw["phone"].fillna("").tolist()


@pytest.mark.parametrize("kw", [{"channels": ("app",)}, {"tiers": ("gold", "silver")}])
def test_value_columns_follow_the_channel_and_tier_filters(warehouse: Warehouse, kw: dict) -> None:
    query, chosen = some_ids(warehouse)
    window = _window(warehouse, **kw)
    pd.testing.assert_frame_equal(_values(member_rows(warehouse.engine, query, window)),
                                  _reference(warehouse, chosen, window), check_dtype=False)


@pytest.mark.parametrize("limit", [0, 1, 100])
def test_a_preview_is_the_start_of_the_whole_list(warehouse: Warehouse, limit: int) -> None:
    query, chosen = some_ids(warehouse)
    window = _window(warehouse)
    whole = member_rows(warehouse.engine, query, window)
    rows = member_rows(warehouse.engine, query, window, limit)
    pd.testing.assert_frame_equal(rows, whole.head(limit), check_dtype=False)
    assert member_count(warehouse.engine, query) == len(chosen)
    # a preview's statement counts the whole list too (what the page's headline shows)
    assert rows.attrs.get("total") == (len(whole) if limit else None) and len(whole) > limit


def test_member_count_counts_distinct_members(warehouse: Warehouse) -> None:
    query, _ = some_ids(warehouse, 40)
    twice = select(union_all(query, query).subquery().c[0])
    assert member_count(warehouse.engine, twice) == 40
    assert len(member_rows(warehouse.engine, twice, _window(warehouse))) == 40


@pytest.mark.parametrize("segments", [("At Risk",), ("At Risk", "Can't Lose Them"), (LAPSED,), ("Lost", LAPSED)])
def test_a_segment_lists_the_same_rows_by_either_path(warehouse: Warehouse, segments: tuple[str, ...]) -> None:
    """An RFM segment's list scores the range once (segment_rows); it equals the general path (its ids through
    member_rows) row for row, and its count is the segment's size on the RFM page."""
    window = _window(warehouse)
    audience = segment_audience(window, segments)
    fast = audience_rows(warehouse.engine, audience)
    general = member_rows(warehouse.engine, audience.member_ids(), window)
    pd.testing.assert_frame_equal(fast, general, check_dtype=False)
    assert len(fast) == member_count(warehouse.engine, audience.member_ids()) > 0
    summary = segment_summary(warehouse.engine, window).set_index("segment")["members"]
    lapsed = lapsed_summary(warehouse.engine, window).members
    assert len(fast) == sum(lapsed if s == LAPSED else int(summary[s]) for s in segments)
    assert set(fast["segment"]) == set(segments)
    head = audience_rows(warehouse.engine, audience, limit=20)
    pd.testing.assert_frame_equal(head, fast.head(20), check_dtype=False)
    assert head.attrs["total"] == len(fast)


def test_the_listed_net_sales_add_up_to_the_segments_sales(duck_warehouse: Warehouse) -> None:
    window = _window(duck_warehouse)
    summary = segment_summary(duck_warehouse.engine, window).set_index("segment")
    rows = audience_rows(duck_warehouse.engine, segment_audience(window, ("Champions",)))
    assert rows["net_sales"].sum() == pytest.approx(summary.loc["Champions", "sales"])
    assert rows["orders"].sum() == summary.loc["Champions", "orders"]


def test_value_windows_of_every_kind(duck_warehouse: Warehouse) -> None:
    from analytics.rule_views import rule_audience
    from analytics.tags import tag_audience

    window = _window(duck_warehouse)
    assert value_window(tag_audience(window, "night_owl")) == window
    assert value_window(rule_audience("Beauty", "Pets", "category", window.start, window.end)) == Filters(
        window.start, window.end)

    class Scored:
        as_of = window.end

    assert value_window(Scored()) == Filters(window.end - timedelta(days=89), window.end)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no date range"):
        value_window(object())  # type: ignore[arg-type]


def test_member_rows_of_a_heatmap_cell(warehouse: Warehouse) -> None:
    """The preview and the export of a cell: its members, masked, as many as counted, by value."""
    span = data_span(warehouse.engine)
    filters = Filters(span.last_day - timedelta(days=89), span.last_day)
    cells = category_affinity(warehouse.engine, filters, "tier")
    counts = [member_count(warehouse.engine, affinity_cell_members(filters, g, c, "tier"))
              for g, c in zip(cells["group"], cells["category"], strict=True)]
    cell = cells.iloc[int(np.argmax(counts))]
    ids = affinity_cell_members(filters, cell["group"], cell["category"], "tier")
    rows = member_rows(warehouse.engine, ids, filters)
    preview = member_rows(warehouse.engine, ids, filters, 20)
    assert max(counts) == len(rows) > 20 and len(preview) == 20
    assert rows["tier"].eq(cell["group"]).all()
    assert preview["member_id"].tolist() == rows["member_id"].tolist()[:20]
    assert rows["net_sales"].is_monotonic_decreasing
    assert rows["phone"].dropna().str.fullmatch(r"\d{3}\*+\d{4}").all()

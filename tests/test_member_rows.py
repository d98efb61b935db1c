"""Masking of personal data on concrete values, and the member rows behind a figure on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, union_all

from analytics.filters import Filters
from analytics.heatmaps import affinity_cell_members, category_affinity
from analytics.member_rows import MEMBER_ROW_COLUMNS, member_count, member_rows
from analytics.privacy import mask_email, mask_members, mask_name, mask_phone
from analytics.storage.contract import members
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse


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


def test_member_rows_are_masked_and_ordered(warehouse: Warehouse) -> None:
    query, chosen = some_ids(warehouse)
    assert len(chosen) > 100
    rows = member_rows(warehouse.engine, query)
    assert list(rows.columns) == list(MEMBER_ROW_COLUMNS)
    assert rows["member_id"].tolist() == chosen
    raw = warehouse.frame("members").set_index("member_id").loc[chosen]
    for column, mask in (("name", mask_name), ("phone", mask_phone), ("email", mask_email)):
        expected = [mask(v) if isinstance(v, str) else None for v in raw[column]]
        got = [v if isinstance(v, str) else None for v in rows[column]]
        assert got == expected, column
        present = raw[column].dropna()
        assert len(present) and not rows[column].isin(present).any(), f"an unmasked {column} came through"
    assert rows["tier"].eq("gold").all() and rows["city"].tolist() == raw["city"].tolist()
    unmasked = member_rows(warehouse.engine, query, unmasked=True)
    assert unmasked["phone"].fillna("").tolist() == raw["phone"].fillna("").tolist()


@pytest.mark.parametrize("limit", [0, 1, 100])
def test_member_rows_respect_the_limit(warehouse: Warehouse, limit: int) -> None:
    query, chosen = some_ids(warehouse)
    rows = member_rows(warehouse.engine, query, limit)
    assert rows["member_id"].tolist() == chosen[:limit]
    assert member_count(warehouse.engine, query) == len(chosen)


def test_member_count_counts_distinct_members(warehouse: Warehouse) -> None:
    query, _ = some_ids(warehouse, 40)
    twice = select(union_all(query, query).subquery().c[0])
    assert member_count(warehouse.engine, twice) == 40
    assert len(member_rows(warehouse.engine, twice)) == 40


def test_member_rows_of_a_heatmap_cell(warehouse: Warehouse) -> None:
    """The preview and the export of a cell: its members, masked, as many as counted."""
    span = data_span(warehouse.engine)
    filters = Filters(span.last_day - timedelta(days=89), span.last_day)
    cells = category_affinity(warehouse.engine, filters, "tier")
    counts = [member_count(warehouse.engine, affinity_cell_members(filters, g, c, "tier"))
              for g, c in zip(cells["group"], cells["category"], strict=True)]
    cell = cells.iloc[int(np.argmax(counts))]
    ids = affinity_cell_members(filters, cell["group"], cell["category"], "tier")
    rows = member_rows(warehouse.engine, ids)
    preview = member_rows(warehouse.engine, ids, 20)
    assert max(counts) == len(rows) > 20 and len(preview) == 20
    assert rows["tier"].eq(cell["group"]).all()
    assert preview["member_id"].tolist() == rows["member_id"].tolist()[:20]
    assert rows["phone"].dropna().str.fullmatch(r"\d{3}\*+\d{4}").all()
